//! The spend endpoints: `GET /admin/spend` (the admin token: spend by user, team, model or
//! backend in a day or month) and `GET /v1/me/spend` (a user's own token: its own and its
//! team's spend and budgets, nobody else's). Figures come from Redis when shared state is
//! on and answering, else from this replica's ledger (since it started).

use super::{check_admin, LocalResponse};
use crate::auth::request_token;
use crate::error::ApiError;
use crate::shared::SharedState;
use crate::snapshot::Snapshot;
use crate::spend::{now_unix_ms, usd, Ledger, Period, Scope, Totals, Window, WINDOWS};
use pingora_http::RequestHeader;
use serde::Serialize;

/// The parameters of `/admin/spend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Query {
    by: Scope,
    period: Period,
}

/// Reads `by`, `window` and `at` from a query string; `Err` names the bad parameter.
/// Every parameter appears at most once; unknown ones are refused.
fn parse_query(query: Option<&str>, now_ms: i64) -> Result<Query, ApiError> {
    let (mut by, mut window, mut at) = (None, None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            "by" => &mut by,
            "window" => &mut window,
            "at" => &mut at,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Unknown query parameter `{}`; use by, window and at.",
                    k.chars().take(64).collect::<String>()
                )))
            }
        };
        if slot.replace(v).is_some() {
            let name = match k {
                "by" => "by",
                "window" => "window",
                _ => "at",
            };
            return Err(ApiError::bad_parameter(
                name,
                format!("The query parameter `{name}` is given more than once."),
            ));
        }
    }
    let by = match by {
        None => {
            return Err(ApiError::bad_parameter(
                "by",
                "The query parameter `by` is required: user, team, model or backend.",
            ))
        }
        Some(v) => Scope::parse(v).ok_or_else(|| {
            ApiError::bad_parameter(
                "by",
                "The query parameter `by` must be user, team, model or backend.",
            )
        })?,
    };
    let window = match window {
        None => {
            return Err(ApiError::bad_parameter(
                "window",
                "The query parameter `window` is required: day or month.",
            ))
        }
        Some(v) => Window::parse(v).ok_or_else(|| {
            ApiError::bad_parameter(
                "window",
                "The query parameter `window` must be day or month.",
            )
        })?,
    };
    let period = match at {
        None => Period::containing(window, now_ms),
        Some(v) => Period::parse(window, v).ok_or_else(|| {
            ApiError::bad_parameter(
                "at",
                match window {
                    Window::Day => "The query parameter `at` must be a date, YYYY-MM-DD.",
                    Window::Month => {
                        "The query parameter `at` must be a month, YYYY-MM (or a date in it)."
                    }
                },
            )
        })?,
    };
    Ok(Query { by, period })
}

/// The answer of `/admin/spend`.
#[derive(Serialize)]
struct SpendReport<'a> {
    by: &'static str,
    window: &'static str,
    period: String,
    source: &'static str,
    rows: Vec<SpendRow<'a>>,
}

/// A row of `/admin/spend`.
#[derive(Serialize)]
struct SpendRow<'a> {
    id: &'a str,
    cost_usd: f64,
    tokens: RowTokens,
}

#[derive(Serialize)]
struct RowTokens {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
}

impl<'a> SpendRow<'a> {
    fn new(id: &'a str, t: &Totals) -> Self {
        SpendRow {
            id,
            cost_usd: usd(t.micros),
            tokens: RowTokens {
                input: t.tokens.input,
                output: t.tokens.output,
                cache_read: t.tokens.cache_read,
                cache_write: t.tokens.cache_write,
            },
        }
    }
}

/// The answer of `/v1/me/spend`.
#[derive(Serialize)]
struct MySpend<'a> {
    user: Figures<'a>,
    team: Option<Figures<'a>>,
}

/// One scope's spend this UTC day and month, and its budgets.
#[derive(Serialize)]
struct Figures<'a> {
    id: &'a str,
    cost_usd_day: f64,
    cost_usd_month: f64,
    budget_usd_per_day: Option<f64>,
    budget_usd_per_month: Option<f64>,
}

impl<'a> Figures<'a> {
    /// `spent`: micro-dollars of the day, then of the month.
    fn new(id: &'a str, spent: &[u64], budget: crate::config::Budget) -> Self {
        Figures {
            id,
            cost_usd_day: usd(spent.first().copied().unwrap_or(0)),
            cost_usd_month: usd(spent.get(1).copied().unwrap_or(0)),
            budget_usd_per_day: budget.usd_per_day,
            budget_usd_per_month: budget.usd_per_month,
        }
    }
}

/// `GET /admin/spend?by=…&window=…[&at=…]`: the admin token (a user's token → 403), a bad
/// or missing parameter → 400 naming it. Rows by cost, highest first.
pub async fn admin_spend(
    req: &RequestHeader,
    snap: &Snapshot,
    shared: Option<&SharedState>,
    ledger: &Ledger,
) -> LocalResponse {
    if let Err(e) = check_admin(snap, req) {
        let user_token = request_token(req).is_some_and(|t| snap.users.authenticate(t).is_some());
        let e = if e.status == 401 && user_token {
            ApiError::admin_forbidden()
        } else {
            e
        };
        return (&e).into();
    }
    let q = match parse_query(req.uri.query(), now_unix_ms()) {
        Ok(q) => q,
        Err(e) => return (&e).into(),
    };
    let shared_rows = match shared {
        Some(s) => s.spend_rows(q.by, q.period).await.ok(),
        None => None,
    };
    let source = if shared_rows.is_some() {
        "shared"
    } else {
        "local"
    };
    let mut rows: Vec<(String, Totals)> = shared_rows.unwrap_or_else(|| {
        ledger
            .rows(q.by, q.period)
            .into_iter()
            .map(|(id, t)| (id.to_string(), t))
            .collect()
    });
    rows.sort_by(|a, b| b.1.micros.cmp(&a.1.micros).then_with(|| a.0.cmp(&b.0)));
    let report = SpendReport {
        by: q.by.as_str(),
        window: q.period.window.as_str(),
        period: q.period.to_string(),
        source,
        rows: rows.iter().map(|(id, t)| SpendRow::new(id, t)).collect(),
    };
    LocalResponse::json(200, &report)
}

/// `GET /v1/me/spend`: the caller's own spend and budgets, and its team's (`null` without
/// a team), in the current UTC day and month. 401 without a valid user token.
pub async fn me_spend(
    req: &RequestHeader,
    snap: &Snapshot,
    shared: Option<&SharedState>,
    ledger: &Ledger,
) -> LocalResponse {
    let Some(user) = request_token(req).and_then(|t| snap.users.authenticate(t)) else {
        return (&ApiError::unauthorized()).into();
    };
    let now = now_unix_ms();
    let periods = WINDOWS.map(|w| Period::containing(w, now));
    let team = user.team.as_deref();
    let mut reads: Vec<(Scope, &str, Period)> = periods
        .iter()
        .map(|p| (Scope::User, &*user.id, *p))
        .collect();
    if let Some(t) = team {
        reads.extend(periods.iter().map(|p| (Scope::Team, &*t.id, *p)));
    }
    let spent = match shared {
        Some(s) => s.spend_of(&reads).await.ok(),
        None => None,
    };
    let spent = spent.unwrap_or_else(|| {
        reads
            .iter()
            .map(|(scope, id, p)| ledger.spent(*scope, id, *p))
            .collect()
    });
    let answer = MySpend {
        user: Figures::new(&user.id, &spent, user.budget),
        team: team.map(|t| Figures::new(&t.id, spent.get(2..).unwrap_or(&[]), t.budget)),
    };
    LocalResponse::json(200, &answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_601_600_000 + 3_600_000; // 2026-12-07T01:00:00Z

    fn param(q: &str) -> Option<String> {
        parse_query(Some(q), NOW).err().map(|e| {
            e.param
                .map(|p| p.to_string())
                .unwrap_or_else(|| e.message.to_string())
        })
    }

    #[test]
    fn parameters() {
        let q = parse_query(Some("by=team&window=month"), NOW).unwrap();
        assert_eq!(
            (q.by, q.period.to_string()),
            (Scope::Team, "2026-12".into())
        );
        let q = parse_query(Some("window=day&by=backend&at=2026-11-30"), NOW).unwrap();
        assert_eq!(
            (q.by, q.period.to_string()),
            (Scope::Backend, "2026-11-30".into())
        );
        assert_eq!(param("window=day").as_deref(), Some("by"));
        assert_eq!(param("by=user").as_deref(), Some("window"));
        assert_eq!(param("by=users&window=day").as_deref(), Some("by"));
        assert_eq!(param("by=user&window=week").as_deref(), Some("window"));
        assert_eq!(
            param("by=user&window=day&at=2026-12").as_deref(),
            Some("at")
        );
        assert_eq!(
            param("by=user&window=month&at=12/2026").as_deref(),
            Some("at")
        );
        assert_eq!(param("by=user&by=team&window=day").as_deref(), Some("by"));
        let unknown = param("by=user&window=day&team=red").unwrap();
        assert!(unknown.contains("`team`"), "{unknown}");
        assert!(param("").is_some());
    }
}
