//! Per-user quotas (a user's `[rate_limit]` in the config): sliding-window request quotas,
//! token budgets and a concurrency cap. Not to be confused with the providers' own rate
//! limits, which the proxy reads from their response headers (`proxy::provider_limits`).
//!
//! Enforced in this process ([`LocalQuota`]) unless `[settings.shared_state]` is set, in
//! which case every replica enforces them together on Redis (`crate::shared`), falling back
//! to the local state when Redis cannot answer and `on_unavailable = "local"`.
//!
//! Order: a request reaches the quota only after it was authenticated, its body
//! read and its model resolved and permitted; a refused request consumes nothing.

pub mod local;

pub use local::{ConcurrencySlot, LocalQuota};

pub use crate::vocab::limits::{
    Counter, QuotaLimit, QuotaRefusal, DAY_MS, HOUR_MS, MINUTE_MS, WINDOWS,
};

use crate::auth::UserEntry;
use crate::config::OnUnavailable;
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
pub async fn admit_user(
    user: &UserEntry,
    shared: Option<&SharedLink>,
    now_ms: u64,
) -> Result<Grant, ApiError> {
    let Some((limit, local)) = user.limits() else {
        return Ok(Grant::default());
    };
    if let Some(link) = shared {
        if let Some(state) = link.get() {
            match state.try_admit(&user.id, limit).await {
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
    match local.try_take(limit, now_ms) {
        Ok(slot) => Ok(Grant { slot, shared: None }),
        Err(r) => Err(refused(user, r)),
    }
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
