//! Per-user limits: sliding-window request quotas, token budgets and a concurrency cap.
//!
//! Enforced in this process ([`LocalQuota`]) unless `[settings.shared_state]` is set, in
//! which case every replica enforces them together on Redis (`crate::shared`), falling back
//! to the local state when Redis cannot answer and `on_unavailable = "local"`.
//!
//! Order (SPEC §4): a request reaches the quota only after it was authenticated, its body
//! read and its model resolved and permitted; a refused request consumes nothing.

pub mod local;

pub use local::{ConcurrencySlot, LocalQuota};

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    RequestsPerMinute,
    RequestsPerHour,
    RequestsPerDay,
    TokensPerMinute,
    TokensPerDay,
    Concurrency,
}

impl Limit {
    /// Metric label and the word in the client's message.
    pub fn label(self) -> &'static str {
        match self {
            Limit::RequestsPerMinute => "minute",
            Limit::RequestsPerHour => "hour",
            Limit::RequestsPerDay => "day",
            Limit::TokensPerMinute => "tokens_minute",
            Limit::TokensPerDay => "tokens_day",
            Limit::Concurrency => "concurrency",
        }
    }

    /// A token budget (answered `user_token_budget_exceeded`).
    pub fn is_tokens(self) -> bool {
        matches!(self, Limit::TokensPerMinute | Limit::TokensPerDay)
    }
}

/// Window lengths in ms.
pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 3_600_000;
pub const DAY_MS: u64 = 86_400_000;

/// The windowed limits with their lengths: three request windows, then two token windows.
/// The local limiter keeps its counters in this order, and the shared-state scripts their
/// keys and window lengths (`shared::scripts`).
pub const WINDOWS: [(Limit, u64); 5] = [
    (Limit::RequestsPerMinute, MINUTE_MS),
    (Limit::RequestsPerHour, HOUR_MS),
    (Limit::RequestsPerDay, DAY_MS),
    (Limit::TokensPerMinute, MINUTE_MS),
    (Limit::TokensPerDay, DAY_MS),
];

/// `limit`'s maximum in each window of [`WINDOWS`], in that order (`None`: not limited).
pub fn window_maxima(limit: &RateLimit) -> [Option<u64>; 5] {
    [
        limit.per_minute,
        limit.per_hour,
        limit.per_day,
        limit.tokens_per_minute,
        limit.tokens_per_day,
    ]
}

/// A refused admission: the limit, and whole seconds until it could admit (≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub limit: Limit,
    pub retry_after_secs: u64,
}

impl Refusal {
    /// Adds the failure of `limit`, which could admit in `wait_ms`, to the refusal so far:
    /// a request failing several limits is refused by the one with the longest wait (the
    /// first on a tie), in whole seconds, at least 1. The local limiter and the shared
    /// state's reply reader both decide this way.
    pub fn keep_longest(refusal: &mut Option<Refusal>, limit: Limit, wait_ms: u64) {
        let secs = wait_ms.div_ceil(1000).max(1);
        if refusal.is_none_or(|r| secs > r.retry_after_secs) {
            *refusal = Some(Refusal {
                limit,
                retry_after_secs: secs,
            });
        }
    }
}

use crate::auth::UserEntry;
use crate::config::{OnUnavailable, RateLimit};
use crate::error::ApiError;
use crate::shared::{Admission, Lease, SharedLink, SharedState};
use std::sync::Arc;

/// What an admitted request holds until it ends; [`Grant::finish`] settles it.
#[derive(Debug, Default)]
pub struct Grant {
    /// A local concurrency slot (released on drop, also when the request dies).
    slot: Option<ConcurrencySlot>,
    /// Admitted by the shared state: its lease (released on drop) and where to report the
    /// request's tokens.
    shared: Option<(Arc<SharedState>, Option<Lease>)>,
}

impl Grant {
    /// The request ended with `tokens` (prompt + output): counted against the user's token
    /// budgets (in Redis when it admitted the request, else here); the concurrency slot or
    /// lease is released.
    pub fn finish(self, user: &UserEntry, tokens: u64, now_ms: u64) {
        let Some((limit, local)) = user.limits() else {
            return;
        };
        match self.shared {
            Some((state, lease)) => state.finish(&user.id, limit, lease, tokens),
            None => local.add_tokens(limit, tokens, now_ms),
        }
        drop(self.slot);
    }
}

/// Admits one request of `user` against its limits, or the answer that refuses it (nothing
/// consumed then): on the shared state when `shared` links one (one Redis round trip,
/// bounded by its timeout), else — or when Redis cannot answer and `on_unavailable` is
/// `local` — in this process. Counts refusals in `berry_user_rate_limited_total` and
/// fallbacks in `berry_shared_state_fallbacks_total`.
pub async fn admit(
    user: &UserEntry,
    shared: Option<&SharedLink>,
    now_ms: u64,
) -> Result<Grant, ApiError> {
    let Some((limit, local)) = user.limits() else {
        return Ok(Grant::default());
    };
    if let Some(link) = shared {
        if let Some(state) = link.get() {
            match state.admit(&user.id, limit).await {
                Ok(Admission::Admitted(lease)) => {
                    return Ok(Grant {
                        slot: None,
                        shared: Some((Arc::clone(state), lease)),
                    })
                }
                Ok(Admission::Refused(r)) => return Err(refused(user, r)),
                Err(_unavailable) => {}
            }
        }
        match link.fall_back() {
            OnUnavailable::Deny => return Err(ApiError::shared_state_unavailable()),
            OnUnavailable::Allow => return Ok(Grant::default()),
            OnUnavailable::Local => {}
        }
    }
    match local.admit(limit, now_ms) {
        Ok(slot) => Ok(Grant { slot, shared: None }),
        Err(r) => Err(refused(user, r)),
    }
}

/// The client's answer to a refusal (and its metric).
fn refused(user: &UserEntry, r: Refusal) -> ApiError {
    crate::metrics::USER_RATE_LIMITED
        .with_label_values(&[&user.id, r.limit.label()])
        .inc();
    match r.limit {
        Limit::Concurrency => ApiError::user_concurrency_exceeded(r.retry_after_secs),
        Limit::TokensPerMinute => {
            ApiError::user_token_budget_exceeded("minute", r.retry_after_secs)
        }
        Limit::TokensPerDay => ApiError::user_token_budget_exceeded("day", r.retry_after_secs),
        l => ApiError::user_rate_limited(l.label(), r.retry_after_secs),
    }
}
