//! Monotonic milliseconds since process start: the one clock of routing state.
//!
//! State and strategies take `now_ms` as an argument so tests inject time; only the proxy,
//! health checks and the in-process user quotas read this clock.

use once_cell::sync::Lazy;
use std::time::{Duration, Instant};

static START: Lazy<Instant> = Lazy::new(Instant::now);

/// Milliseconds since the first call in this process (monotonic, never 0 after start-up).
#[inline]
pub fn now_ms() -> u64 {
    START.elapsed().as_millis() as u64 + 1
}

/// A duration in whole milliseconds (saturating).
#[inline]
pub fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}
