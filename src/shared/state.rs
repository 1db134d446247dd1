//! The handle to the shared state and its request-path operations: admission (one
//! awaited `EVALSHA`, pipelined with the reads of the budgeted spend), the writes queued
//! for the background worker (tokens and spend at request end, lease releases, published
//! cooldowns), and the spend endpoints' reads.

use super::scripts::{self, cooldown_key, spend_key, user_key, USER_KEYS};
use super::spend::{cost_read, counter, SpendOp};
use super::worker::{flush_loop, lock, poll_loop, probe_loop, renew_loop, Inner, Op};
use crate::clock;
use crate::config::{RateLimit, SharedSettings};
use crate::metrics::{SHARED_STATE_ERRORS, SHARED_STATE_UP};
use crate::routing::state::BackendState;
use crate::spend::{Charge, Period, Scope, Totals};
use crate::vocab::limits::{Counter, QuotaLimit, QuotaRefusal, WINDOWS};
use crate::vocab::outcome::MAX_COOLDOWN_MS;
use arc_swap::{ArcSwap, ArcSwapOption};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// A held concurrency slot. Dropping it (or passing it to [`SharedState::finish`]) releases
/// the slot: the release is queued for the flusher and renewal stops, so even a lost release
/// frees the slot within the lease TTL. Not `Clone`: one slot, one release.
pub struct Lease {
    id: String,
    user: Arc<str>,
    owner: Weak<Inner>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.id)
            .field("user", &self.user)
            .finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(inner) = self.owner.upgrade() {
            lock(&inner.held).remove(&self.id);
            inner.enqueue(Op::Release {
                user: Arc::clone(&self.user),
                id: std::mem::take(&mut self.id),
            });
        }
    }
}

/// The answer of [`SharedState::try_admit`].
#[derive(Debug)]
pub enum Admission {
    /// Counted in every request window; the lease is `Some` iff `max_concurrent` is set.
    Admitted(Option<Lease>),
    /// Refused (by the limit with the longest wait among those that failed, as the local
    /// limiter decides; concurrency waits 1 s); nothing was consumed.
    Refused(QuotaRefusal),
}

/// Redis is down, timed out or answered with an error: apply `on_unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shared state (Redis) unavailable")
    }
}

impl std::error::Error for Unavailable {}

/// The handle to the shared state: cheap to share (`Arc`), safe from any runtime thread.
/// Dropping the last handle stops its background tasks (its leases then expire in Redis
/// within the lease TTL).
pub struct SharedState {
    inner: Arc<Inner>,
    tasks: Vec<AbortHandle>,
}

impl fmt::Debug for SharedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedState")
            .field("redis", &self.inner.label)
            .field("up", &self.is_up())
            .finish()
    }
}

impl Drop for SharedState {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// `scheme://host[:port][/db]` of a Redis URL: user, password and query dropped.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(invalid redis_url)".into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let path = &rest[end..];
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    format!("{scheme}://{host}{path}")
}

impl SharedState {
    /// Starts the shared state: spawns the health probe (which connects), the flusher, the
    /// lease renewal and the cooldown poller on the current tokio runtime (call it from a
    /// Pingora background service). Returns at once; the state is down until the first
    /// probe answers (within milliseconds of a reachable Redis). Invalid settings (see
    /// [`SharedSettings::problems`]) or no runtime: logged, and the state stays down.
    pub fn start(settings: SharedSettings) -> Arc<SharedState> {
        let label = redact_url(settings.redis_url.expose());
        let client = match settings.problems().first() {
            None => redis::Client::open(settings.redis_url.expose()).ok(),
            Some((field, e)) => {
                log::error!("shared state disabled: {field} {e}");
                None
            }
        };
        SHARED_STATE_UP.set(0);
        for op in ["admit", "flush", "poll", "probe"] {
            SHARED_STATE_ERRORS.with_label_values(&[op]);
        }
        let inner = Arc::new(Inner {
            prefix: settings.key_prefix.clone(),
            timeout: settings.timeout,
            background_timeout: settings.background_timeout(),
            lease_ttl_ms: clock::ms(settings.lease_ttl).max(1),
            label,
            client,
            conn: ArcSwapOption::empty(),
            up: AtomicBool::new(false),
            queue: Mutex::new(Vec::new()),
            queue_ready: Notify::new(),
            held: Mutex::new(HashMap::new()),
            watched: ArcSwap::from_pointee(Vec::new()),
        });
        let mut tasks = Vec::new();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if inner.client.is_some() => {
                let renew_every = (settings.lease_ttl / 3).max(Duration::from_millis(50));
                tasks.push(rt.spawn(probe_loop(Arc::clone(&inner))).abort_handle());
                tasks.push(rt.spawn(flush_loop(Arc::clone(&inner))).abort_handle());
                tasks.push(
                    rt.spawn(renew_loop(Arc::clone(&inner), renew_every))
                        .abort_handle(),
                );
                tasks.push(rt.spawn(poll_loop(Arc::clone(&inner))).abort_handle());
                log::info!("shared state: Redis at {}", inner.label);
            }
            Ok(_) => {}
            Err(_) => log::error!("shared state needs a tokio runtime; it stays down"),
        }
        Arc::new(SharedState { inner, tasks })
    }

    /// The Redis connection while the shared state is up; `Err(Unavailable)` at once
    /// otherwise (no round trip is tried against a Redis known to be down).
    pub(super) fn live_connection(&self) -> Result<redis::aio::ConnectionManager, Unavailable> {
        if !self.is_up() {
            return Err(Unavailable);
        }
        self.inner.connection().ok_or(Unavailable)
    }

    /// Whether Redis is considered up: false from start until the first probe answers, and
    /// from any failed or timed-out operation (admission, write, poll, probe) until a probe
    /// answers again. While false, limited admissions return `Unavailable` at once.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    pub(super) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Admits one request of `user_id` against `limits`: one `EVALSHA` checks every
    /// configured window and the concurrency cap, and only if all pass counts the request in
    /// the request windows and takes a lease (a refused request consumes nothing). Token
    /// windows are checked here and filled by [`SharedState::finish`].
    ///
    /// A user without limits is admitted at once (no round trip, even while Redis is down).
    /// Otherwise `Err(Unavailable)` at once while Redis is known down, or after at most the
    /// timeout when the round trip fails or is slow (which marks it down). A request the
    /// script counted before a timeout stays counted, and its lease expires within the TTL.
    pub async fn try_admit(
        &self,
        user_id: &str,
        limits: &RateLimit,
    ) -> Result<Admission, Unavailable> {
        self.try_admit_at(user_id, limits, 0).await
    }

    /// [`SharedState::try_admit`] at a chosen Redis time in ms (`0` = Redis `TIME`). Tests only:
    /// replays the local limiter's scenarios at chosen instants.
    #[doc(hidden)]
    pub async fn try_admit_at(
        &self,
        user_id: &str,
        limits: &RateLimit,
        now_ms: u64,
    ) -> Result<Admission, Unavailable> {
        if limits.is_empty() {
            return Ok(Admission::Admitted(None));
        }
        let inner = &self.inner;
        let mut conn = self.live_connection()?;
        let lease_id = limits
            .max_concurrent
            .map(|_| crate::random_id::random_hex_string());
        let (keys, args) = self.admit_keys_args(user_id, limits, lease_id.as_deref(), now_ms);
        let mut inv = scripts::ADMIT.script.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let reply: Vec<i64> = inner
            .bounded("admit", inner.timeout, inv.invoke_async(&mut conn))
            .await
            .ok_or(Unavailable)?;
        self.admission_of(user_id, limits, &reply, lease_id)
    }

    /// The admission script's keys and arguments (see `scripts::ADMIT_BODY`).
    fn admit_keys_args(
        &self,
        user_id: &str,
        limits: &RateLimit,
        lease_id: Option<&str>,
        now_ms: u64,
    ) -> (Vec<String>, Vec<String>) {
        let inner = &self.inner;
        let keys = USER_KEYS
            .iter()
            .map(|suffix| user_key(&inner.prefix, user_id, suffix))
            .collect();
        let opt = |v: Option<u64>| v.map_or_else(String::new, |n| n.to_string());
        let mut args = vec![now_ms.to_string()];
        args.extend(limits.window_maxima().into_iter().map(opt));
        args.push(opt(limits.max_concurrent));
        args.push(lease_id.unwrap_or("").to_string());
        args.push(inner.lease_ttl_ms.to_string());
        (keys, args)
    }

    /// The admission script as an `EVALSHA` command for a pipeline, and its lease id.
    fn admit_invocation(&self, user_id: &str, limits: &RateLimit) -> (redis::Cmd, Option<String>) {
        let lease_id = limits
            .max_concurrent
            .map(|_| crate::random_id::random_hex_string());
        let (keys, args) = self.admit_keys_args(user_id, limits, lease_id.as_deref(), 0);
        let mut c = redis::cmd("EVALSHA");
        c.arg(scripts::ADMIT.script.get_hash())
            .arg(keys.len())
            .arg(keys)
            .arg(args);
        (c, lease_id)
    }

    /// The admission of the script's `reply`: refused, or admitted with its lease (held
    /// and renewed by this replica from now on).
    fn admission_of(
        &self,
        user_id: &str,
        limits: &RateLimit,
        reply: &[i64],
        lease_id: Option<String>,
    ) -> Result<Admission, Unavailable> {
        let inner = &self.inner;
        let Some(admission) = read_admission_reply(reply, &limits.window_maxima()) else {
            inner.mark_down("admit", &"unexpected script reply");
            return Err(Unavailable);
        };
        Ok(match admission {
            Ok(()) => Admission::Admitted(lease_id.map(|id| {
                let user: Arc<str> = user_id.into();
                lock(&inner.held).insert(id.clone(), Arc::clone(&user));
                Lease {
                    id,
                    user,
                    owner: Arc::downgrade(inner),
                }
            })),
            Err(r) => Admission::Refused(r),
        })
    }

    /// [`SharedState::try_admit`] and, in the same round trip (one pipeline), the spend in
    /// micro-dollars of each `(scope, id, period)` of `reads` (the budgets that apply), in
    /// order. Without reads this is `try_admit`; without limits only the reads are sent.
    pub async fn try_admit_with_spend(
        &self,
        user_id: &str,
        limits: &RateLimit,
        reads: &[(Scope, &str, Period)],
    ) -> Result<(Admission, SmallVec<[u64; 4]>), Unavailable> {
        if reads.is_empty() {
            return Ok((self.try_admit(user_id, limits).await?, SmallVec::new()));
        }
        let inner = &self.inner;
        let mut conn = self.live_connection()?;
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let admit = (!limits.is_empty()).then(|| self.admit_invocation(user_id, limits));
        if let Some((cmd, _)) = &admit {
            pipe.add_command(cmd.clone());
        }
        for (scope, id, period) in reads {
            pipe.add_command(cost_read(&inner.prefix, *scope, id, period));
        }
        let values: Vec<redis::Value> = inner
            .bounded("admit", inner.timeout, pipe.query_async(&mut conn))
            .await
            .ok_or(Unavailable)?;
        let (first, spent) = match &admit {
            Some(_) => values
                .split_first()
                .map_or((None, &[][..]), |(f, r)| (Some(f), r)),
            None => (None, &values[..]),
        };
        if spent.len() != reads.len()
            || spent
                .iter()
                .any(|v| matches!(v, redis::Value::ServerError(_)))
        {
            inner.mark_down("admit", &"unexpected spend reply");
            return Err(Unavailable);
        }
        let spent = spent.iter().map(counter).collect();
        let admission = match (admit, first) {
            (None, _) => Admission::Admitted(None),
            (Some((_, lease_id)), Some(v)) => {
                let reply: Vec<i64> = match v {
                    // Redis restarted and lost its scripts: this one admission pays a second
                    // round trip (the invocation loads the script).
                    redis::Value::ServerError(e)
                        if e.kind() == Some(redis::ServerErrorKind::NoScript) =>
                    {
                        return Ok((self.try_admit(user_id, limits).await?, spent));
                    }
                    v => match redis::FromRedisValue::from_redis_value(v.clone()) {
                        Ok(r) => r,
                        Err(_) => {
                            inner.mark_down("admit", &"unexpected script reply");
                            return Err(Unavailable);
                        }
                    },
                };
                self.admission_of(user_id, limits, &reply, lease_id)?
            }
            (Some(_), None) => {
                inner.mark_down("admit", &"unexpected script reply");
                return Err(Unavailable);
            }
        };
        Ok((admission, spent))
    }

    /// The spend in micro-dollars of each `(scope, id, period)` of `reads`, in order (one
    /// pipeline, bounded by the timeout).
    pub async fn spend_of(&self, reads: &[(Scope, &str, Period)]) -> Result<Vec<u64>, Unavailable> {
        let inner = &self.inner;
        let mut conn = self.live_connection()?;
        let mut pipe = redis::pipe();
        for (scope, id, period) in reads {
            pipe.add_command(cost_read(&inner.prefix, *scope, id, period));
        }
        let call = pipe.query_async::<Vec<redis::Value>>(&mut conn);
        match inner.bounded("admit", inner.timeout, call).await {
            Some(v) if v.len() == reads.len() => Ok(v.iter().map(counter).collect()),
            _ => Err(Unavailable),
        }
    }

    /// Every id of `scope` with spend in `period` (the fleet's), with its totals: one
    /// `HGETALL`, bounded by the background timeout.
    pub async fn spend_rows(
        &self,
        scope: Scope,
        period: Period,
    ) -> Result<Vec<(String, Totals)>, Unavailable> {
        let inner = &self.inner;
        let mut conn = self.live_connection()?;
        let mut c = redis::cmd("HGETALL");
        c.arg(spend_key(
            &inner.prefix,
            scope.as_str(),
            &period.to_string(),
        ));
        inner
            .bounded("admit", inner.background_timeout, c.query_async(&mut conn))
            .await
            .map(super::spend::rows)
            .ok_or(Unavailable)
    }

    /// Request end: queues `charge` for Redis (added to its user, team, model and backend
    /// in its day and month). `gauged`: whether the user and the team have a budget (their
    /// fleet-wide spend, read back, sets `berry_spend_usd`). Never blocks; the flusher is
    /// woken at once so other replicas see the spend within one round trip.
    pub fn settle_spend(&self, charge: &Charge<'_>, gauged: [bool; 2]) {
        self.inner
            .enqueue(Op::Spend(Box::new(SpendOp::new(charge, gauged))));
        self.inner.queue_ready.notify_one();
    }

    /// Request end: releases `lease` and adds `tokens` (prompt + output) to the user's
    /// configured token windows. Never blocks: queued for the flusher, which sends a batch
    /// every 50 ms or 256 writes in one pipeline (one script call per user). While Redis is
    /// down writes stay queued (up to 65,536, then dropped and counted as flush errors) and
    /// are sent when it is back; tokens then land in the window current at that time.
    pub fn finish(&self, user_id: &str, limits: &RateLimit, lease: Option<Lease>, tokens: u64) {
        drop(lease);
        let minute = if limits.tokens_per_minute.is_some() {
            tokens
        } else {
            0
        };
        let day = if limits.tokens_per_day.is_some() {
            tokens
        } else {
            0
        };
        if minute > 0 || day > 0 {
            self.inner.enqueue(Op::Tokens {
                user: user_id.into(),
                minute,
                day,
            });
        }
    }

    /// A cooldown learnt here (429 Retry-After, provider rate-limit headers): every replica keeps
    /// `backend_id` off until it expires (capped at 300 s like local cooldowns). Never
    /// blocks (queued). Redis keeps the longer of what it holds and `ms`.
    pub fn publish_cooldown(&self, backend_id: &Arc<str>, ms: u64) {
        if ms == 0 {
            return;
        }
        self.inner.enqueue(Op::Cooldown {
            backend: Arc::clone(backend_id),
            ms: ms.min(MAX_COOLDOWN_MS),
        });
    }

    /// The backends whose shared cooldowns this replica applies (call again on every config
    /// reload: the list is replaced). The poller reads their remaining cooldowns (`PTTL`, so
    /// no clock skew between replicas) every 500 ms in one script call and applies each with
    /// `state.cool_down_for(ms, now)` (which keeps a longer local cooldown).
    pub fn watch_backends(&self, backends: Vec<(Arc<str>, Arc<BackendState>)>) {
        let list = backends
            .into_iter()
            .map(|(id, state)| (cooldown_key(&self.inner.prefix, &id), state))
            .collect();
        self.inner.watched.store(Arc::new(list));
    }

    /// Sends the queued writes now and waits for the answer (bounded by the background
    /// timeout per pipeline): for a graceful shutdown, and for tests. Sends nothing while
    /// Redis is down (the writes stay queued).
    pub async fn flush(&self) {
        if !self.is_up() {
            return;
        }
        let ops = std::mem::take(&mut *lock(&self.inner.queue));
        self.inner.flush_ops(ops).await;
    }
}

/// Reads the admission script's reply: `{admitted, now, (index, s, c, p)*}`. Retry-After is
/// the longest wait among the failing checks (the first on a tie), each computed by
/// `vocab::limits::Counter::wait_ms` as the local limiter does; concurrency waits 1 s.
/// `Some(Ok(()))`: admitted; `Some(Err(_))`: refused; `None`: not a reply of the script.
fn read_admission_reply(
    reply: &[i64],
    windows: &[Option<u64>; 5],
) -> Option<Result<(), QuotaRefusal>> {
    let [admitted, now, rest @ ..] = reply else {
        return None;
    };
    if *admitted == 1 {
        return Some(Ok(()));
    }
    let now = u64::try_from(*now).ok()?;
    let u = |x: i64| u64::try_from(x).unwrap_or(0);
    let mut worst: Option<QuotaRefusal> = None;
    for check in rest.chunks_exact(4) {
        let (limit, wait_ms) = match usize::try_from(check[0]).ok()? {
            i @ 1..=5 => {
                let (limit, len) = WINDOWS[i - 1];
                let max = windows[i - 1]?;
                let counter = Counter {
                    start_ms: u(check[1]),
                    current: u(check[2]),
                    previous: u(check[3]),
                };
                (limit, counter.wait_ms(now, len, max, 1))
            }
            6 => (QuotaLimit::Concurrency, 1000),
            _ => return None,
        };
        QuotaRefusal::keep_longest(&mut worst, limit, wait_ms);
    }
    worst.map(Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_url_has_no_credentials() {
        assert_eq!(
            redact_url("redis://user:s3cret@cache.internal:6380/2?protocol=resp3"),
            "redis://cache.internal:6380/2"
        );
        assert_eq!(
            redact_url("rediss://:p@ss@host"),
            "rediss://host",
            "last @ ends the userinfo"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("nonsense"), "(invalid redis_url)");
    }

    #[test]
    fn labels() {
        assert_eq!(QuotaLimit::RequestsPerMinute.label(), "minute");
        assert_eq!(QuotaLimit::TokensPerDay.label(), "tokens_day");
        assert!(QuotaLimit::TokensPerMinute.is_tokens());
        assert!(!QuotaLimit::Concurrency.is_tokens());
        assert!(RateLimit::default().is_empty());
        assert!(!RateLimit {
            max_concurrent: Some(1),
            ..Default::default()
        }
        .is_empty());
    }

    #[test]
    fn retry_after_is_the_longest_wait() {
        let w = [Some(3), Some(100), None, None, None];
        // minute window full (3 in the current window, 10 s into it): 50 s to wait;
        // concurrency: 1 s → the minute wins.
        let start = 600_000;
        let reply = [0, start + 10_000, 1, start, 3, 0, 6, 0, 0, 0];
        assert_eq!(
            read_admission_reply(&reply, &w),
            Some(Err(QuotaRefusal {
                limit: QuotaLimit::RequestsPerMinute,
                retry_after_secs: 50
            }))
        );
        assert_eq!(read_admission_reply(&[1, start], &w), Some(Ok(())));
        assert!(read_admission_reply(&[0], &w).is_none());
        assert!(read_admission_reply(&[0, start, 9, 0, 0, 0], &w).is_none());
    }
}
