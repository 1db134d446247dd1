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

/// A refused admission: the limit, and whole seconds until it could admit (≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub limit: Limit,
    pub retry_after_secs: u64,
}

use crate::auth::UserEntry;
use crate::error::ApiError;

/// What an admitted request holds until it ends; [`Grant::finish`] settles it.
#[derive(Debug, Default)]
pub struct Grant {
    /// A local concurrency slot (released on drop, also when the request dies).
    slot: Option<ConcurrencySlot>,
}

impl Grant {
    /// The request ended with `tokens` (input + output): counted against the user's token
    /// budgets; the concurrency slot is released.
    pub fn finish(self, user: &UserEntry, tokens: u64, now_ms: u64) {
        if let Some((limit, local)) = user.limits() {
            local.add_tokens(limit, tokens, now_ms);
        }
        drop(self.slot);
    }
}

/// Admits one request of `user` against its limits, or the 429 that refuses it (nothing
/// consumed then). Counts refusals in `berry_user_rate_limited_total{user,window}`.
pub fn admit(user: &UserEntry, now_ms: u64) -> Result<Grant, ApiError> {
    let Some((limit, local)) = user.limits() else {
        return Ok(Grant::default());
    };
    match local.admit(limit, now_ms) {
        Ok(slot) => Ok(Grant { slot }),
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
