//! The in-process quota of one user: O(1) memory per window, one short lock per admission
//! and per finished request (never held across an await).

use crate::config::RateLimit;
use crate::vocab::limits::{Counter, QuotaLimit, QuotaRefusal, WINDOWS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Windows {
    /// Requests per minute, hour, day.
    requests: [Counter; 3],
    /// Tokens per minute, day.
    tokens: [Counter; 2],
}

/// One user's quota in this process. Carried across reloads by user id.
#[derive(Debug, Default)]
pub struct LocalQuota {
    windows: Mutex<Windows>,
    in_flight: Arc<AtomicU64>,
}

/// A held concurrency slot; released when dropped (the request ended, however).
#[derive(Debug)]
pub struct ConcurrencySlot(Arc<AtomicU64>);

impl Drop for ConcurrencySlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LocalQuota {
    fn windows(&self) -> std::sync::MutexGuard<'_, Windows> {
        // A poisoned lock only means a panic elsewhere; the data is plain counters.
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one request from this user's in-process quota when every configured limit has
    /// room, or refuses (the longest wait among the failing limits) without consuming
    /// anything. Token budgets admit while the window has room for one more token (the
    /// request rule, counted in tokens). A granted request with `max_concurrent` holds a
    /// slot until the returned guard is dropped.
    pub fn try_take(
        &self,
        limit: &RateLimit,
        now_ms: u64,
    ) -> Result<Option<ConcurrencySlot>, QuotaRefusal> {
        let mut refusal: Option<QuotaRefusal> = None;
        let mut guard = self.windows();
        let w = &mut *guard;
        let maxima = limit.window_maxima();
        let counters = w.requests.iter_mut().chain(w.tokens.iter_mut());
        for ((c, (name, len)), max) in counters.zip(WINDOWS).zip(maxima) {
            let Some(max) = max else { continue };
            c.roll(now_ms, len);
            // Room for one more request; a token budget admits while there is room for
            // one more token.
            if c.estimate(now_ms, len) + 1.0 > max as f64 {
                QuotaRefusal::keep_longest(&mut refusal, name, c.wait_ms(now_ms, len, max, 1));
            }
        }
        let slot = match limit.max_concurrent {
            None => None,
            Some(max) => {
                let taken = self
                    .in_flight
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < max && refusal.is_none()).then_some(n + 1)
                    });
                match taken {
                    Ok(_) => Some(ConcurrencySlot(Arc::clone(&self.in_flight))),
                    Err(n) if n >= max => {
                        QuotaRefusal::keep_longest(&mut refusal, QuotaLimit::Concurrency, 1000);
                        None
                    }
                    Err(_) => None, // refused by another limit: nothing taken
                }
            }
        };
        if let Some(r) = refusal {
            drop(slot);
            return Err(r);
        }
        for (c, max) in w.requests.iter_mut().zip(maxima) {
            if max.is_some() {
                c.current += 1;
            }
        }
        Ok(slot)
    }

    /// Adds a finished request's tokens (all prompt tokens, cached or not, plus output) to
    /// the token windows.
    pub fn add_tokens(&self, limit: &RateLimit, tokens: u64, now_ms: u64) {
        if tokens == 0 || (limit.tokens_per_minute.is_none() && limit.tokens_per_day.is_none()) {
            return;
        }
        let mut w = self.windows();
        for (c, &(_, len)) in w.tokens.iter_mut().zip(&WINDOWS[3..]) {
            c.roll(now_ms, len);
            c.current = c.current.saturating_add(tokens);
        }
    }

    /// Requests of this user in flight here (held concurrency slots).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::MINUTE_MS;

    fn rpm(n: u64) -> RateLimit {
        RateLimit {
            per_minute: Some(n),
            ..RateLimit::default()
        }
    }

    #[test]
    fn minute_limit_boundaries() {
        let s = LocalQuota::default();
        let l = rpm(3);
        let t0 = 60_000 * 10; // window start
        for i in 0..3 {
            assert!(s.try_take(&l, t0 + i).is_ok(), "request {i}");
        }
        let r = s.try_take(&l, t0 + 10).unwrap_err();
        assert_eq!(
            (r.limit, r.retry_after_secs),
            (QuotaLimit::RequestsPerMinute, 60)
        );
        // refusals do not consume: still refused, then the next window admits with the
        // previous window weighing in (3 × (1 − elapsed) + current)
        assert!(s.try_take(&l, t0 + 59_999).is_err());
        // 1/3 into the next window the previous 3 count as 2: one more fits
        assert!(s.try_take(&l, t0 + 60_000 + 20_001).is_ok());
        assert!(s.try_take(&l, t0 + 60_000 + 20_002).is_err());
        // two windows later everything is forgotten
        for i in 0..3 {
            assert!(s.try_take(&l, t0 + 180_000 + i).is_ok());
        }
    }

    #[test]
    fn the_first_window_after_start_is_a_real_window() {
        // the process clock starts near 0, so the first minute window starts at 0
        let s = LocalQuota::default();
        let l = rpm(2);
        assert!(s.try_take(&l, 10_000).is_ok());
        assert!(s.try_take(&l, 40_000).is_ok());
        assert!(s.try_take(&l, 45_000).is_err());
        // 40 s into the second window the first one's 2 weigh 2/3: one more fits
        assert!(s.try_take(&l, 100_000).is_ok());
        assert!(s.try_take(&l, 100_001).is_err());
        // and a window later they are forgotten
        assert!(s.try_take(&l, 180_000).is_ok());
    }

    #[test]
    fn retry_after_reaches_a_time_that_admits() {
        let s = LocalQuota::default();
        let l = rpm(10);
        let t0 = 600_000;
        for i in 0..10 {
            s.try_take(&l, t0 + 30_000 + i).unwrap();
        }
        // next window, 5 s in: the previous 10 weigh ~9.2, refused until enough decays
        let now = t0 + 65_000;
        let r = s.try_take(&l, now).unwrap_err();
        assert!(
            s.try_take(&l, now + r.retry_after_secs * 1000).is_ok(),
            "{r:?}"
        );
    }

    #[test]
    fn every_limit_is_checked_and_none_consumed_on_refusal() {
        let s = LocalQuota::default();
        let l = RateLimit {
            per_minute: Some(5),
            per_hour: Some(2),
            max_concurrent: Some(10),
            ..RateLimit::default()
        };
        let a = s.try_take(&l, 1).unwrap();
        let b = s.try_take(&l, 2).unwrap();
        let r = s.try_take(&l, 3).unwrap_err();
        assert_eq!(r.limit, QuotaLimit::RequestsPerHour);
        assert_eq!(s.in_flight(), 2, "the refused request holds no slot");
        drop((a, b));
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn token_budgets_admit_while_under_budget() {
        let s = LocalQuota::default();
        let l = RateLimit {
            tokens_per_minute: Some(100),
            ..RateLimit::default()
        };
        let t0 = 1_000_000_000 * MINUTE_MS;
        assert!(s.try_take(&l, t0).is_ok());
        s.add_tokens(&l, 99, t0 + 1);
        assert!(
            s.try_take(&l, t0 + 2).is_ok(),
            "99 < 100: still under budget"
        );
        s.add_tokens(&l, 30, t0 + 3);
        let r = s.try_take(&l, t0 + 4).unwrap_err();
        assert_eq!(r.limit, QuotaLimit::TokensPerMinute);
        assert!(r.limit.is_tokens());
        // the window slides: well into the next minute the old tokens weigh less
        assert!(s.try_take(&l, t0 + 60_000 + 40_000).is_ok());
    }

    #[test]
    fn concurrency_slots_are_held_until_dropped() {
        let s = LocalQuota::default();
        let l = RateLimit {
            max_concurrent: Some(2),
            ..RateLimit::default()
        };
        let a = s.try_take(&l, 1).unwrap();
        let _b = s.try_take(&l, 2).unwrap();
        let r = s.try_take(&l, 3).unwrap_err();
        assert_eq!((r.limit, r.retry_after_secs), (QuotaLimit::Concurrency, 1));
        drop(a);
        assert!(s.try_take(&l, 4).is_ok());
    }
}
