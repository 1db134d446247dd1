//! Per-backend and per-provider runtime state: circuit breaker, cooldown, latency EWMA,
//! in-flight count, smart_ai confidence, recent outcomes.
//!
//! State is shared between requests through `Arc`s held by the routing snapshot and carried
//! over to the next snapshot on reload for backends that still exist. Reads are atomics;
//! the breaker and confidence use a `std` mutex held for a few instructions, never across
//! an await. Every method takes `now_ms` (see [`crate::clock`]) so tests control time.

use crate::config::SmartAiSettings;
pub use crate::vocab::outcome::{Outcome, DEFAULT_COOLDOWN_MS, MAX_COOLDOWN_MS};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

/// Circuit breaker thresholds (from `[settings]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    pub failure_threshold: u32,
    pub open_ms: u64,
    pub success_threshold: u32,
}

/// Externally visible circuit state; the number is the `berry_circuit_state` gauge value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

impl CircuitState {
    /// Lower-case name for JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::HalfOpen => "half_open",
            CircuitState::Open => "open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        until_ms: u64,
    },
    HalfOpen {
        probe_in_flight: bool,
        successes: u32,
    },
}

/// Whether a backend can take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// Half-open (or open with its timeout elapsed) and no probe in flight: one request may
    /// go, after [`BackendState::try_claim_probe`].
    Probe,
    Unavailable,
}

/// Weight of a new sample in the latency EWMA.
pub const EWMA_ALPHA: f64 = 0.3;

/// Runtime state of one backend (model key + provider id + real model).
#[derive(Debug)]
pub struct BackendState {
    breaker: Mutex<Breaker>,
    cooldown_until_ms: AtomicU64,
    /// f64 bits of the EWMA of time to first byte in ms; `NEVER` = not measured.
    ewma_ms_bits: AtomicU64,
    inflight: AtomicU32,
    /// smart_ai confidence and the time it was last updated.
    confidence: Mutex<(f64, u64)>,
    /// Bit history of the last 64 outcomes, newest in bit 0 (1 = failure).
    recent_failures: AtomicU64,
    recent_len: AtomicU32,
    successes: AtomicU64,
    failures: AtomicU64,
}

const NEVER: u64 = u64::MAX;

impl BackendState {
    /// Fresh state: circuit closed, no cooldown, never measured, confidence `initial`.
    pub fn new(initial_confidence: f64, now_ms: u64) -> Self {
        BackendState {
            breaker: Mutex::new(Breaker::Closed { failures: 0 }),
            cooldown_until_ms: AtomicU64::new(0),
            ewma_ms_bits: AtomicU64::new(NEVER),
            inflight: AtomicU32::new(0),
            confidence: Mutex::new((initial_confidence, now_ms)),
            recent_failures: AtomicU64::new(0),
            recent_len: AtomicU32::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // A poisoned lock only means a panic elsewhere; the data is plain Copy state.
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Circuit state at `now_ms` (an open circuit whose timeout passed reads as half-open).
    pub fn circuit(&self, now_ms: u64) -> CircuitState {
        match *self.breaker() {
            Breaker::Closed { .. } => CircuitState::Closed,
            Breaker::Open { until_ms } if now_ms < until_ms => CircuitState::Open,
            Breaker::Open { .. } | Breaker::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Availability by breaker and cooldown (provider health is checked by the caller).
    pub fn availability(&self, now_ms: u64) -> Availability {
        if self.cooldown_until_ms.load(Ordering::Relaxed) > now_ms {
            return Availability::Unavailable;
        }
        match *self.breaker() {
            Breaker::Closed { .. } => Availability::Available,
            Breaker::Open { until_ms } if now_ms < until_ms => Availability::Unavailable,
            Breaker::Open { .. } => Availability::Probe,
            Breaker::HalfOpen {
                probe_in_flight, ..
            } => {
                if probe_in_flight {
                    Availability::Unavailable
                } else {
                    Availability::Probe
                }
            }
        }
    }

    /// Claims the single half-open probe slot. True when this caller may send the probe.
    pub fn try_claim_probe(&self, now_ms: u64) -> bool {
        let mut b = self.breaker();
        match *b {
            Breaker::Open { until_ms } if now_ms >= until_ms => {
                *b = Breaker::HalfOpen {
                    probe_in_flight: true,
                    successes: 0,
                };
                true
            }
            Breaker::HalfOpen {
                probe_in_flight: false,
                successes,
            } => {
                *b = Breaker::HalfOpen {
                    probe_in_flight: true,
                    successes,
                };
                true
            }
            _ => false,
        }
    }

    /// Releases a claimed probe slot without an outcome (the request went away).
    pub fn release_probe(&self) {
        let mut b = self.breaker();
        if let Breaker::HalfOpen { successes, .. } = *b {
            *b = Breaker::HalfOpen {
                probe_in_flight: false,
                successes,
            };
        }
    }

    /// Makes the backend unavailable for `ms` from `now_ms` (capped at
    /// [`MAX_COOLDOWN_MS`]); an already longer cooldown is kept. Neutral otherwise: no
    /// breaker failure, no confidence change.
    pub fn cool_down_for(&self, ms: u64, now_ms: u64) {
        self.cooldown_until_ms.fetch_max(
            now_ms.saturating_add(ms.min(MAX_COOLDOWN_MS)),
            Ordering::Relaxed,
        );
    }

    /// Feeds one attempt outcome into breaker, cooldown, history and confidence.
    pub fn record(
        &self,
        outcome: Outcome,
        now_ms: u64,
        breaker: &BreakerSettings,
        smart: &SmartAiSettings,
    ) {
        if let Some(ms) = outcome.cooldown_ms() {
            self.cool_down_for(ms, now_ms);
        }
        let failure = outcome.is_breaker_failure();
        let success = outcome == Outcome::Success;
        if failure || success {
            self.push_history(failure);
        }
        if success {
            self.successes.fetch_add(1, Ordering::Relaxed);
        } else if failure {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        {
            let mut b = self.breaker();
            *b = match (*b, success, failure) {
                (Breaker::Closed { .. }, true, _) => Breaker::Closed { failures: 0 },
                (Breaker::Closed { failures }, _, true) => {
                    if failures + 1 >= breaker.failure_threshold {
                        Breaker::Open {
                            until_ms: now_ms.saturating_add(breaker.open_ms),
                        }
                    } else {
                        Breaker::Closed {
                            failures: failures + 1,
                        }
                    }
                }
                (Breaker::HalfOpen { successes, .. }, true, _) => {
                    if successes + 1 >= breaker.success_threshold {
                        Breaker::Closed { failures: 0 }
                    } else {
                        Breaker::HalfOpen {
                            probe_in_flight: false,
                            successes: successes + 1,
                        }
                    }
                }
                (Breaker::HalfOpen { .. }, _, true) => Breaker::Open {
                    until_ms: now_ms.saturating_add(breaker.open_ms),
                },
                (Breaker::HalfOpen { successes, .. }, false, false) => Breaker::HalfOpen {
                    probe_in_flight: false,
                    successes,
                },
                (state, _, _) => state,
            };
        }
        self.adjust_confidence(outcome, now_ms, smart);
    }

    /// Counts a failed active health check of this backend's provider as a breaker failure.
    pub fn record_health_failure(&self, now_ms: u64, breaker: &BreakerSettings) {
        let mut b = self.breaker();
        if let Breaker::Closed { failures } = *b {
            *b = if failures + 1 >= breaker.failure_threshold {
                Breaker::Open {
                    until_ms: now_ms.saturating_add(breaker.open_ms),
                }
            } else {
                Breaker::Closed {
                    failures: failures + 1,
                }
            };
        }
    }

    fn push_history(&self, failure: bool) {
        let _ = self
            .recent_failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some((h << 1) | u64::from(failure))
            });
        let _ = self
            .recent_len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some((n + 1).min(64))
            });
    }

    /// Milliseconds of cooldown left at `now_ms` (0 = none).
    pub fn cooldown_remaining_ms(&self, now_ms: u64) -> u64 {
        self.cooldown_until_ms
            .load(Ordering::Relaxed)
            .saturating_sub(now_ms)
    }

    /// Adds a time-to-first-byte sample to the EWMA.
    pub fn observe_ttfb_ms(&self, ms: f64) {
        if !ms.is_finite() || ms < 0.0 {
            return;
        }
        let _ = self
            .ewma_ms_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let next = if bits == NEVER {
                    ms
                } else {
                    let old = f64::from_bits(bits);
                    old + EWMA_ALPHA * (ms - old)
                };
                Some(next.to_bits())
            });
    }

    /// EWMA of time to first byte in ms; `None` before the first measurement.
    pub fn ewma_ms(&self) -> Option<f64> {
        match self.ewma_ms_bits.load(Ordering::Relaxed) {
            NEVER => None,
            bits => Some(f64::from_bits(bits)),
        }
    }

    /// Requests currently being served by this backend.
    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Marks one more request in flight; pair with [`BackendState::end_request`].
    pub fn begin_request(&self) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks a request finished.
    pub fn end_request(&self) {
        let _ = self
            .inflight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// smart_ai confidence at `now_ms`, with time decay toward `initial_confidence` applied
    /// when enabled (time constant `lightweight_check_interval`).
    pub fn confidence(&self, now_ms: u64, smart: &SmartAiSettings) -> f64 {
        let (c, at) = *self.confidence.lock().unwrap_or_else(|e| e.into_inner());
        decayed(c, at, now_ms, smart)
    }

    fn adjust_confidence(&self, outcome: Outcome, now_ms: u64, smart: &SmartAiSettings) {
        let delta = match outcome {
            Outcome::Success => smart.success_boost,
            Outcome::ConnectError | Outcome::StreamError => -smart.network_error_penalty,
            Outcome::AuthError => -smart.auth_error_penalty,
            Outcome::RateLimited { .. } => -smart.rate_limit_penalty,
            Outcome::ServerError => -smart.server_error_penalty,
            Outcome::ModelError => -smart.model_error_penalty,
            Outcome::Timeout => -smart.timeout_penalty,
            Outcome::ClientError | Outcome::ClientClosed => 0.0,
        };
        let mut g = self.confidence.lock().unwrap_or_else(|e| e.into_inner());
        let c = decayed(g.0, g.1, now_ms, smart);
        *g = ((c + delta).clamp(smart.min_confidence, 1.0), now_ms);
    }

    /// Last outcomes, oldest first (`true` = success), at most 64.
    pub fn recent_outcomes(&self) -> Vec<bool> {
        let h = self.recent_failures.load(Ordering::Relaxed);
        let n = self.recent_len.load(Ordering::Relaxed).min(64);
        (0..n).rev().map(|i| h & (1u64 << i) == 0).collect()
    }

    /// Totals since start (or since this backend first appeared).
    pub fn totals(&self) -> (u64, u64) {
        (
            self.successes.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

/// Confidence decays exponentially toward the initial value with time constant
/// `lightweight_check_interval` when `enable_time_decay` is set.
fn decayed(c: f64, at_ms: u64, now_ms: u64, smart: &SmartAiSettings) -> f64 {
    if !smart.enable_time_decay || now_ms <= at_ms {
        return c;
    }
    let tau = smart.lightweight_check_interval.as_secs_f64().max(0.001) * 1000.0;
    let k = (-((now_ms - at_ms) as f64) / tau).exp();
    smart.initial_confidence + (c - smart.initial_confidence) * k
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: BreakerSettings = BreakerSettings {
        failure_threshold: 3,
        open_ms: 1000,
        success_threshold: 2,
    };

    fn smart() -> SmartAiSettings {
        SmartAiSettings::default()
    }

    #[test]
    fn breaker_opens_after_threshold_and_half_opens_after_timeout() {
        let s = BackendState::new(0.8, 0);
        let sm = smart();
        for t in 0..2 {
            s.record(Outcome::ServerError, t, &B, &sm);
            assert_eq!(s.availability(t), Availability::Available);
        }
        s.record(Outcome::ServerError, 10, &B, &sm);
        assert_eq!(s.circuit(10), CircuitState::Open);
        assert_eq!(s.availability(500), Availability::Unavailable);
        assert_eq!(s.availability(1010), Availability::Probe);
        assert_eq!(s.circuit(1010), CircuitState::HalfOpen);
        // exactly one probe at a time
        assert!(s.try_claim_probe(1010));
        assert!(!s.try_claim_probe(1011));
        assert_eq!(s.availability(1011), Availability::Unavailable);
        s.record(Outcome::Success, 1020, &B, &sm);
        assert_eq!(s.circuit(1020), CircuitState::HalfOpen);
        assert!(s.try_claim_probe(1021));
        s.record(Outcome::Success, 1030, &B, &sm);
        assert_eq!(s.circuit(1030), CircuitState::Closed);
        assert_eq!(s.availability(1030), Availability::Available);
    }

    #[test]
    fn half_open_failure_reopens() {
        let s = BackendState::new(0.8, 0);
        let sm = smart();
        for _ in 0..3 {
            s.record(Outcome::Timeout, 0, &B, &sm);
        }
        assert!(s.try_claim_probe(1000));
        s.record(Outcome::ConnectError, 1000, &B, &sm);
        assert_eq!(s.circuit(1500), CircuitState::Open);
        assert_eq!(s.availability(1999), Availability::Unavailable);
        assert_eq!(s.availability(2000), Availability::Probe);
    }

    #[test]
    fn released_probe_frees_the_slot() {
        let s = BackendState::new(0.8, 0);
        let sm = smart();
        for _ in 0..3 {
            s.record(Outcome::ServerError, 0, &B, &sm);
        }
        assert!(s.try_claim_probe(1000));
        s.release_probe();
        assert!(s.try_claim_probe(1000));
    }

    #[test]
    fn success_resets_consecutive_failures() {
        let s = BackendState::new(0.8, 0);
        let sm = smart();
        for _ in 0..10 {
            s.record(Outcome::ServerError, 0, &B, &sm);
            s.record(Outcome::ServerError, 0, &B, &sm);
            s.record(Outcome::Success, 0, &B, &sm);
        }
        assert_eq!(s.circuit(0), CircuitState::Closed);
    }

    #[test]
    fn rate_limit_cools_down_without_opening() {
        let s = BackendState::new(0.8, 0);
        let sm = smart();
        for _ in 0..10 {
            s.record(
                Outcome::RateLimited {
                    retry_after_ms: Some(2000),
                },
                100,
                &B,
                &sm,
            );
        }
        assert_eq!(s.circuit(100), CircuitState::Closed);
        assert_eq!(s.availability(2099), Availability::Unavailable);
        assert_eq!(s.availability(2100), Availability::Available);
        s.record(
            Outcome::RateLimited {
                retry_after_ms: None,
            },
            3000,
            &B,
            &sm,
        );
        assert_eq!(s.cooldown_remaining_ms(3000), DEFAULT_COOLDOWN_MS);
        s.record(
            Outcome::RateLimited {
                retry_after_ms: Some(10_000_000),
            },
            3000,
            &B,
            &sm,
        );
        assert_eq!(s.cooldown_remaining_ms(3000), MAX_COOLDOWN_MS);
    }

    #[test]
    fn client_errors_are_neutral() {
        let s = BackendState::new(0.8, 0);
        let sm = smart();
        for _ in 0..10 {
            s.record(Outcome::ClientError, 0, &B, &sm);
            s.record(Outcome::ModelError, 0, &B, &sm);
        }
        assert_eq!(s.circuit(0), CircuitState::Closed);
        assert!(s.recent_outcomes().is_empty());
    }

    #[test]
    fn ewma_tracks_samples() {
        let s = BackendState::new(0.8, 0);
        assert_eq!(s.ewma_ms(), None);
        s.observe_ttfb_ms(100.0);
        assert_eq!(s.ewma_ms(), Some(100.0));
        s.observe_ttfb_ms(0.0);
        assert!((s.ewma_ms().unwrap() - 70.0).abs() < 1e-9);
    }

    #[test]
    fn confidence_moves_by_configured_amounts_and_decays_back() {
        let s = BackendState::new(0.8, 0);
        let sm = smart();
        s.record(Outcome::ServerError, 0, &B, &sm);
        assert!((s.confidence(0, &sm) - 0.6).abs() < 1e-9);
        s.record(Outcome::AuthError, 0, &B, &sm);
        assert!((s.confidence(0, &sm) - sm.min_confidence).abs() < 1e-9);
        s.record(Outcome::Success, 0, &B, &sm);
        assert!((s.confidence(0, &sm) - 0.15).abs() < 1e-9);
        // after many time constants it is back near the initial value
        let later = 20 * 600_000;
        assert!((s.confidence(later, &sm) - 0.8).abs() < 1e-3);
        let mut no_decay = sm.clone();
        no_decay.enable_time_decay = false;
        assert!((s.confidence(later, &no_decay) - 0.15).abs() < 1e-9);
        for _ in 0..20 {
            s.record(Outcome::Success, 0, &B, &sm);
        }
        assert!((s.confidence(0, &sm) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn history_keeps_order() {
        let s = BackendState::new(0.8, 0);
        let sm = smart();
        s.record(Outcome::Success, 0, &B, &sm);
        s.record(Outcome::ServerError, 0, &B, &sm);
        s.record(Outcome::Success, 0, &B, &sm);
        assert_eq!(s.recent_outcomes(), vec![true, false, true]);
        assert_eq!(s.totals(), (2, 1));
    }

    #[test]
    fn inflight_never_underflows() {
        let s = BackendState::new(0.8, 0);
        s.end_request();
        assert_eq!(s.inflight(), 0);
        s.begin_request();
        s.begin_request();
        s.end_request();
        assert_eq!(s.inflight(), 1);
    }
}
