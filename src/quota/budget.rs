//! Spend budgets at admission: which budgets apply to a user's request (its own and its
//! team's, per UTC day and month), whether each has room, and the refusal when one has
//! not. The figures come from this replica's ledger or, with shared state, from Redis.

use crate::auth::UserEntry;
use crate::error::ApiError;
use crate::spend::{micros, Ledger, Period, Scope, Window, WINDOWS};
use smallvec::SmallVec;

/// One budget that applies to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applicable<'a> {
    /// `Scope::User` or `Scope::Team`.
    pub scope: Scope,
    pub id: &'a str,
    /// The current period of the budget's window.
    pub period: Period,
    /// The budget in whole micro-dollars.
    pub limit: u64,
}

/// Up to four budgets: the user's day and month, the team's day and month.
pub type Budgets<'a> = SmallVec<[Applicable<'a>; 4]>;

/// The budgets that apply to a request of `user` at `now_ms` (ms since 1970, UTC), user
/// first, day before month. Empty for a user without budgets in a team without budgets.
pub fn applicable(user: &UserEntry, now_ms: i64) -> Budgets<'_> {
    let mut out = Budgets::new();
    let team = user.team.as_deref();
    let owners = [
        (Scope::User, &*user.id, Some(user.budget)),
        (
            Scope::Team,
            team.map_or("", |t| &*t.id),
            team.map(|t| t.budget),
        ),
    ];
    for (scope, id, budget) in owners {
        let Some(budget) = budget else { continue };
        for (window, usd) in WINDOWS.into_iter().zip(budget.by_window()) {
            if let Some(usd) = usd {
                out.push(Applicable {
                    scope,
                    id,
                    period: Period::containing(window, now_ms),
                    limit: micros(usd),
                });
            }
        }
    }
    out
}

/// What each budget's owner spent in its current period, from this replica's ledger.
pub fn spent_locally(ledger: &Ledger, budgets: &[Applicable<'_>]) -> SmallVec<[u64; 4]> {
    budgets
        .iter()
        .map(|b| ledger.spent(b.scope, b.id, b.period))
        .collect()
}

/// Admits while every budget has room (`spent < limit`). Otherwise the refusal names the
/// exhausted budget whose window ends last (the first such on a tie) and `Retry-After` is
/// the seconds until it ends; counts `berry_budget_exceeded_total{scope,window}`.
pub fn check(budgets: &[Applicable<'_>], spent: &[u64], now_ms: i64) -> Result<(), ApiError> {
    let exhausted = budgets
        .iter()
        .zip(spent)
        .filter(|(b, s)| **s >= b.limit)
        .map(|(b, _)| b);
    let mut worst: Option<&Applicable<'_>> = None;
    for b in exhausted {
        if worst.is_none_or(|w| b.period.end_ms() > w.period.end_ms()) {
            worst = Some(b);
        }
    }
    let Some(b) = worst else {
        return Ok(());
    };
    let window = b.period.window.as_str();
    crate::metrics::BUDGET_EXCEEDED
        .with_label_values(&[b.scope.as_str(), window])
        .inc();
    let scope = if b.scope == Scope::Team {
        "team"
    } else {
        "user"
    };
    Err(ApiError::budget_exceeded(
        scope,
        b.id,
        window,
        b.period.seconds_left(now_ms),
    ))
}

/// The `window` of `Budget::by_window`'s index `i`.
pub fn window_of(i: usize) -> Window {
    WINDOWS.get(i).copied().unwrap_or(Window::Day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_796_601_600_000; // 2026-12-07T00:00:00Z
    const HOUR: i64 = 3_600_000;

    fn budget(scope: Scope, id: &str, window: Window, limit: u64) -> Applicable<'_> {
        Applicable {
            scope,
            id,
            period: Period::containing(window, T0),
            limit,
        }
    }

    #[test]
    fn admitted_while_spent_is_below_every_budget() {
        let b = [
            budget(Scope::User, "alice", Window::Day, 100),
            budget(Scope::Team, "red", Window::Month, 1000),
        ];
        assert!(check(&b, &[99, 999], T0).is_ok());
        let e = check(&b, &[100, 5], T0 + HOUR).unwrap_err();
        assert_eq!(
            (e.status, e.code, e.param.as_deref()),
            (429, "budget_exceeded", Some("user"))
        );
        assert_eq!(
            e.retry_after,
            Some(23 * 3600),
            "the day ends at midnight UTC"
        );
        assert!(e.message.contains("per day"), "{}", e.message);
    }

    #[test]
    fn several_exhausted_name_the_one_ending_last() {
        let b = [
            budget(Scope::User, "alice", Window::Day, 100),
            budget(Scope::User, "alice", Window::Month, 1000),
            budget(Scope::Team, "red", Window::Day, 10),
        ];
        let e = check(&b, &[100, 1000, 10], T0).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("user"));
        assert!(e.message.contains("per month"), "{}", e.message);
        // 2026-12-07 → 2027-01-01: 25 days
        assert_eq!(e.retry_after, Some(25 * 86_400));
        let e = check(&b, &[100, 0, 10], T0).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("user"), "a tie names the first");
        let e = check(&b, &[0, 0, 10], T0).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("team"));
        assert!(e.message.contains("team `red`"), "{}", e.message);
        assert!(!e.message.contains("10"), "no amounts: {}", e.message);
    }

    #[test]
    fn a_zero_budget_admits_nothing() {
        let b = [budget(Scope::Team, "frozen", Window::Month, 0)];
        assert!(check(&b, &[0], T0).is_err());
        assert!(check(&[], &[], T0).is_ok());
    }
}
