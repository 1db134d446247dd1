//! Per-user quotas (a user's `[rate_limit]` in the config): sliding-window request quotas,
//! token budgets and a concurrency cap. Not to be confused with the providers' own rate
//! limits, which the proxy reads from their response headers (`proxy::provider_limits`).
//!
//! Enforced in this process ([`LocalQuota`]) unless `[settings.shared_state]` is set, in
//! which case every replica enforces them together on Redis (`crate::shared`), falling back
//! to the local state when Redis cannot answer and `on_unavailable = "local"`.
//!
//! Spend budgets (a user's and its team's, per UTC day and month, [`budget`]) are checked
//! at the same admission, in the same Redis round trip when shared; the request's cost is
//! settled when it ends ([`Grant::finish`]). A team's `max_concurrent` is held here too.
//!
//! Order: a request reaches the quota only after it was authenticated, its body
//! read and its model resolved and permitted; a refused request consumes nothing (with
//! shared state, a request refused for its budget still counts in the user's request
//! windows: both are decided by one round trip).

pub mod budget;
pub mod local;

pub use local::{ConcurrencySlot, LocalQuota};

pub use crate::vocab::limits::{
    Counter, QuotaLimit, QuotaRefusal, DAY_MS, HOUR_MS, MINUTE_MS, WINDOWS,
};

use crate::auth::{TeamSlot, UserEntry};
use crate::config::{OnUnavailable, RateLimit};
use crate::error::ApiError;
use crate::shared::{Admission, Lease, SharedLink, SharedState};
use crate::spend::{Balance, Charge, Ledger};
use std::sync::Arc;

/// What an admitted request holds until it ends; [`Grant::finish`] settles it.
#[derive(Debug, Default)]
pub struct Grant {
    /// A local concurrency slot (released on drop, also when the request dies).
    slot: Option<ConcurrencySlot>,
    /// Admitted by the shared state: its lease (released on drop) and where to report the
    /// request's tokens.
    shared: Option<(Arc<SharedState>, Option<Lease>)>,
    /// A slot of the team's `max_concurrent` (released on drop).
    team_slot: Option<TeamSlot>,
    /// Where the request's cost is settled: this replica's ledger, and the shared state
    /// when there is one (also when Redis could not admit: the write waits for it).
    spend: Option<(Arc<Ledger>, Option<Arc<SharedState>>)>,
}

/// What a finished request is charged, as [`Grant::finish`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// Prompt + output tokens, for the token budgets.
    pub tokens: u64,
    /// The spend to settle, `None` when the request reached no backend or has no usage.
    pub charge: Option<Charge<'a>>,
    /// The process clock (ms), for the token budgets' sliding windows.
    pub now_ms: u64,
}

impl Grant {
    /// The request ended: its tokens (prompt + output) are counted against the user's
    /// token budgets (in Redis when it admitted the request, else here); its cost is added
    /// to the spend ledger (and queued for Redis with shared state); the concurrency slots
    /// and lease are released.
    pub fn finish(self, user: &UserEntry, done: &Finished<'_>) {
        if let (Some(c), Some((ledger, shared))) = (&done.charge, &self.spend) {
            let balance = ledger.settle(c);
            match shared {
                Some(state) => state.settle_spend(c, budget_flags(user)),
                None => publish_spend(user, &balance),
            }
        }
        if let Some((limit, local)) = user.limits() {
            match self.shared {
                Some((state, lease)) => state.finish(&user.id, limit, lease, done.tokens),
                None => local.add_tokens(limit, done.tokens, done.now_ms),
            }
        }
        drop(self.slot);
        drop(self.team_slot);
    }
}

/// Whether the user and its team have a budget (their spend is a gauge).
fn budget_flags(user: &UserEntry) -> [bool; 2] {
    [
        !user.budget.is_empty(),
        user.team.as_ref().is_some_and(|t| !t.budget.is_empty()),
    ]
}

/// Sets `berry_spend_usd` of the user and team (those with a budget) from this replica's
/// ledger.
fn publish_spend(user: &UserEntry, balance: &Balance) {
    let [user_gauged, team_gauged] = budget_flags(user);
    let set = |scope: &str, id: &str, micros: [u64; 2]| {
        for (w, m) in micros.into_iter().enumerate() {
            crate::metrics::SPEND_USD
                .with_label_values(&[scope, id, budget::window_of(w).as_str()])
                .set(crate::spend::usd(m));
        }
    };
    if user_gauged {
        set("user", &user.id, balance.user);
    }
    if let (true, Some(team), Some(t)) = (team_gauged, user.team_id(), balance.team) {
        set("team", team, t);
    }
}

/// Admits one request of `user` against its limits, its and its team's spend budgets and
/// its team's concurrency cap, or the answer that refuses it (nothing consumed then): on
/// the shared state when `shared` links one (one Redis round trip for limits and budgets
/// together, bounded by its timeout; none for a user with neither), else — or when Redis
/// cannot answer and `on_unavailable` is `local` — in this process. Counts refusals in
/// `berry_user_rate_limited_total` / `berry_budget_exceeded_total` and fallbacks in
/// `berry_shared_state_fallbacks_total`. `now_ms` is the process clock, `wall_ms` the UTC
/// wall clock (ms since 1970) that picks the budgets' day and month.
pub async fn admit_user(
    user: &UserEntry,
    shared: Option<&SharedLink>,
    ledger: &Arc<Ledger>,
    now_ms: u64,
    wall_ms: i64,
) -> Result<Grant, ApiError> {
    let team_slot = match user.team.as_deref().map(|t| t.try_take_slot()) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(slot))) => Some(slot),
        Some(Err(())) => return Err(ApiError::team_concurrency_exceeded(1)),
    };
    let state = shared.and_then(|l| l.get());
    let mut grant = Grant {
        team_slot,
        spend: Some((Arc::clone(ledger), state.cloned())),
        ..Grant::default()
    };
    let budgets = budget::applicable(user, wall_ms);
    let limits = user.limits();
    if limits.is_none() && budgets.is_empty() {
        return Ok(grant);
    }
    let no_limits = RateLimit::default();
    if let Some(link) = shared {
        if let Some(state) = state {
            let limit = limits.map_or(&no_limits, |(l, _)| l);
            let reads: smallvec::SmallVec<[_; 4]> =
                budgets.iter().map(|b| (b.scope, b.id, b.period)).collect();
            match state.try_admit_with_spend(&user.id, limit, &reads).await {
                Ok((Admission::Admitted(lease), spent)) => {
                    // A lease taken for a request its budget refuses is released on drop.
                    budget::check(&budgets, &spent, wall_ms)?;
                    grant.shared = Some((Arc::clone(state), lease));
                    return Ok(grant);
                }
                Ok((Admission::Refused(r), _)) => return Err(refused(user, r)),
                Err(_unavailable) => {}
            }
        }
        match link.fall_back() {
            OnUnavailable::Deny => return Err(ApiError::shared_state_unavailable()),
            OnUnavailable::Allow => return Ok(grant),
            OnUnavailable::Local => {}
        }
    }
    budget::check(&budgets, &budget::spent_locally(ledger, &budgets), wall_ms)?;
    if let Some((limit, local)) = limits {
        grant.slot = local
            .try_take(limit, now_ms)
            .map_err(|r| refused(user, r))?;
    }
    Ok(grant)
}

/// The client's answer to a refusal (and its metric).
fn refused(user: &UserEntry, r: QuotaRefusal) -> ApiError {
    crate::metrics::USER_RATE_LIMITED
        .with_label_values(&[&user.id, r.limit.label()])
        .inc();
    match r.limit {
        QuotaLimit::Concurrency => ApiError::user_concurrency_exceeded(r.retry_after_secs),
        QuotaLimit::TokensPerMinute => {
            ApiError::user_token_budget_exceeded("minute", r.retry_after_secs)
        }
        QuotaLimit::TokensPerDay => ApiError::user_token_budget_exceeded("day", r.retry_after_secs),
        l => ApiError::user_rate_limited(l.label(), r.retry_after_secs),
    }
}
