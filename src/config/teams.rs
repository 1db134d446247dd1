//! Teams and spend budgets: `[teams.<id>]` (`name`, `budget_usd_per_day`,
//! `budget_usd_per_month`, `max_concurrent`) and the same budget keys on `[users.<id>]`,
//! with `team = "<id>"`.

pub use super::given::Given;
use super::problem::Problems;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};

/// `[teams.<id>]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileTeam {
    pub name: Option<String>,
    pub budget_usd_per_day: Given,
    pub budget_usd_per_month: Given,
    pub max_concurrent: Option<u64>,
}

/// Spend budgets in USD: per UTC calendar day and per UTC calendar month. A request is
/// admitted while what was spent in each set window is below its budget.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    pub usd_per_day: Option<f64>,
    pub usd_per_month: Option<f64>,
}

impl Budget {
    /// `[day, month]`.
    pub fn by_window(&self) -> [Option<f64>; 2] {
        [self.usd_per_day, self.usd_per_month]
    }

    /// No budget set.
    pub fn is_empty(&self) -> bool {
        self.usd_per_day.is_none() && self.usd_per_month.is_none()
    }

    /// Checks the budget keys found at `path` (each a finite number >= 0).
    pub(super) fn check(path: &str, day: Given, month: Given, p: &mut Problems) -> Budget {
        Budget {
            usd_per_day: usd(&format!("{path}.budget_usd_per_day"), day, p),
            usd_per_month: usd(&format!("{path}.budget_usd_per_month"), month, p),
        }
    }
}

/// One amount of USD, or a problem at `path`.
fn usd(path: &str, g: Given, p: &mut Problems) -> Option<f64> {
    let Given::Value(v) = g else {
        return None;
    };
    match v.as_f64() {
        Some(x) if x.is_finite() && x >= 0.0 => Some(x),
        _ => {
            let got = super::given::shown(&v);
            p.add(
                path.to_string(),
                format!("must be an amount of USD >= 0 (got {got})"),
            );
            None
        }
    }
}

/// A validated team.
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    /// The table key; used in metrics, logs and the spend endpoints.
    pub id: String,
    pub name: String,
    pub budget: Budget,
    /// Requests of all the team's users in flight at once (in this replica).
    pub max_concurrent: Option<u64>,
}

/// Validates every `[teams.<id>]`.
pub(super) fn validate_teams(file: BTreeMap<String, FileTeam>, p: &mut Problems) -> Vec<Team> {
    file.into_iter()
        .map(|(id, ft)| {
            let path = format!("teams.{id}");
            let budget = Budget::check(&path, ft.budget_usd_per_day, ft.budget_usd_per_month, p);
            if ft.max_concurrent == Some(0) {
                p.add(format!("{path}.max_concurrent"), "must be at least 1");
            }
            Team {
                name: ft.name.unwrap_or_else(|| id.clone()),
                budget,
                max_concurrent: ft.max_concurrent.filter(|&n| n > 0),
                id,
            }
        })
        .collect()
}

/// Checks a user's `team` (at `path`, `users.<id>.team`) against the teams.
pub(super) fn check_team_ref(
    path: &str,
    team: Option<String>,
    teams: &HashSet<&str>,
    p: &mut Problems,
) -> Option<String> {
    let t = team?;
    if teams.contains(t.as_str()) {
        Some(t)
    } else {
        p.add(
            format!("{path}.team"),
            format!("`{t}` names no team (add [teams.{t}])"),
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, Format};

    fn problems(text: &str) -> Vec<String> {
        match load_str(text, Format::Toml, &|_| None) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn teams_and_budgets_load() {
        let cfg = load_str(
            "[teams.red]\nname = \"Red team\"\nbudget_usd_per_day = 5\nbudget_usd_per_month = 100.5\nmax_concurrent = 3\n\
             [teams.blue]\n\
             [users.a]\ntoken = \"ta\"\nteam = \"red\"\nbudget_usd_per_day = 0.25\n\
             [users.b]\ntoken = \"tb\"\n",
            Format::Toml,
            &|_| None,
        )
        .unwrap();
        let red = cfg.teams.iter().find(|t| t.id == "red").unwrap();
        assert_eq!(red.name, "Red team");
        assert_eq!(red.budget.by_window(), [Some(5.0), Some(100.5)]);
        assert_eq!(red.max_concurrent, Some(3));
        let blue = cfg.teams.iter().find(|t| t.id == "blue").unwrap();
        assert!(blue.budget.is_empty());
        assert_eq!(blue.name, "blue");
        let a = cfg.users.iter().find(|u| u.id == "a").unwrap();
        assert_eq!(a.team.as_deref(), Some("red"));
        assert_eq!(a.budget.by_window(), [Some(0.25), None]);
        let b = cfg.users.iter().find(|u| u.id == "b").unwrap();
        assert_eq!((b.team.as_deref(), b.budget.is_empty()), (None, true));
    }

    #[test]
    fn bad_budgets_and_teams_are_named_by_key_path() {
        let got = problems(
            "[teams.red]\nbudget_usd_per_day = -1\nbudget_usd_per_month = \"lots\"\nmax_concurrent = 0\n\
             [users.a]\ntoken = \"ta\"\nteam = \"green\"\nbudget_usd_per_month = true\n",
        );
        assert_eq!(
            got,
            [
                "teams.red.budget_usd_per_day: must be an amount of USD >= 0 (got -1)",
                "teams.red.budget_usd_per_month: must be an amount of USD >= 0 (got the string \"lots\")",
                "teams.red.max_concurrent: must be at least 1",
                "users.a.team: `green` names no team (add [teams.green])",
                "users.a.budget_usd_per_month: must be an amount of USD >= 0 (got true)",
            ],
        );
        let got = problems("[teams.red]\nmax_concurrent = \"two\"\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("teams.red.max_concurrent"), "{got:?}");
        let got = problems("[teams.red]\nbudget = 3\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("teams.red.budget:"),
            "unknown key: {got:?}"
        );
    }
}
