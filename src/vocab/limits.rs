//! A user's limits in the terms both enforcers share (the in-process limiter and the
//! Redis-shared state): which limit, the windows and their lengths, the sliding-window
//! arithmetic, and a refusal with its Retry-After.

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaLimit {
    RequestsPerMinute,
    RequestsPerHour,
    RequestsPerDay,
    TokensPerMinute,
    TokensPerDay,
    Concurrency,
}

impl QuotaLimit {
    /// Metric label and the word in the client's message.
    pub fn label(self) -> &'static str {
        match self {
            QuotaLimit::RequestsPerMinute => "minute",
            QuotaLimit::RequestsPerHour => "hour",
            QuotaLimit::RequestsPerDay => "day",
            QuotaLimit::TokensPerMinute => "tokens_minute",
            QuotaLimit::TokensPerDay => "tokens_day",
            QuotaLimit::Concurrency => "concurrency",
        }
    }

    /// A token budget (answered `user_token_budget_exceeded`).
    pub fn is_tokens(self) -> bool {
        matches!(self, QuotaLimit::TokensPerMinute | QuotaLimit::TokensPerDay)
    }
}

/// Window lengths in ms.
pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 3_600_000;
pub const DAY_MS: u64 = 86_400_000;

/// The windowed limits with their lengths: three request windows, then two token windows.
/// The local limiter keeps its counters in this order, and the shared-state scripts their
/// keys and window lengths (`shared::scripts`).
pub const WINDOWS: [(QuotaLimit, u64); 5] = [
    (QuotaLimit::RequestsPerMinute, MINUTE_MS),
    (QuotaLimit::RequestsPerHour, HOUR_MS),
    (QuotaLimit::RequestsPerDay, DAY_MS),
    (QuotaLimit::TokensPerMinute, MINUTE_MS),
    (QuotaLimit::TokensPerDay, DAY_MS),
];

/// A refused admission: the limit, and whole seconds until it could admit (≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaRefusal {
    pub limit: QuotaLimit,
    pub retry_after_secs: u64,
}

impl QuotaRefusal {
    /// Adds the failure of `limit`, which could admit in `wait_ms`, to the refusal so far:
    /// a request failing several limits is refused by the one with the longest wait (the
    /// first on a tie), in whole seconds, at least 1. The local limiter and the shared
    /// state's reply reader both decide this way.
    pub fn keep_longest(refusal: &mut Option<QuotaRefusal>, limit: QuotaLimit, wait_ms: u64) {
        let secs = wait_ms.div_ceil(1000).max(1);
        if refusal.is_none_or(|r| secs > r.retry_after_secs) {
            *refusal = Some(QuotaRefusal {
                limit,
                retry_after_secs: secs,
            });
        }
    }
}

/// Two fixed windows (current and previous) of one length: the sliding-window estimate is
/// `previous × (1 − elapsed/len) + current`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counter {
    pub(crate) start_ms: u64,
    pub(crate) current: u64,
    pub(crate) previous: u64,
}

impl Counter {
    /// Moves the windows forward to `now_ms`.
    pub fn roll(&mut self, now_ms: u64, len: u64) {
        // An empty counter (a new one included) is anchored at the current window: that
        // loses nothing. No start time means "not started", so a first window that
        // really starts at 0 rolls like any other.
        if self.current == 0 && self.previous == 0 {
            self.start_ms = now_ms - now_ms % len;
        }
        let elapsed_windows = now_ms.saturating_sub(self.start_ms) / len;
        if elapsed_windows >= 1 {
            self.previous = if elapsed_windows == 1 {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.start_ms += elapsed_windows * len;
        }
    }

    /// The sliding-window count at `now_ms` (after [`roll`](Self::roll)).
    pub fn estimate(&self, now_ms: u64, len: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.start_ms) as f64 / len as f64;
        self.previous as f64 * (1.0 - elapsed).max(0.0) + self.current as f64
    }

    /// Milliseconds until the estimate plus `need` fits under `limit` (at least 1).
    pub fn wait_ms(&self, now_ms: u64, len: u64, limit: u64, need: u64) -> u64 {
        let end = self.start_ms + len;
        if self.current + need > limit || self.previous == 0 {
            // Only the next window can make room.
            return end.saturating_sub(now_ms).max(1);
        }
        // previous × (1 − t/len) + current + need ≤ limit ⇒ t ≥ len × (1 − room/previous)
        let room = (limit - self.current - need) as f64;
        let t = len as f64 * (1.0 - room / self.previous as f64);
        let at = self.start_ms + t.ceil().max(0.0) as u64;
        at.saturating_sub(now_ms).clamp(1, len)
    }
}
