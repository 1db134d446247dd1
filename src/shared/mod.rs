//! Shared state across replicas (SPEC §13): per-user request windows, token budgets and
//! concurrency caps that hold for the whole fleet, and backend cooldowns learnt by one
//! replica applied by all. Everything that talks to Redis (or Valkey ≥ 7) lives here.
//!
//! Cost on the request path: one awaited round trip per admission (one `EVALSHA`), bounded
//! by `timeout`, and none for a user without limits. Everything else is off the path:
//! `finish` and `publish_cooldown` queue their writes for a flusher (one pipeline per batch);
//! lease renewal, the cooldown poller and the health probe are background tasks.
//!
//! Time comes from Redis (`TIME` inside the scripts), so replicas with skewed clocks agree.
//! The windows are the local limiter's (`quota::local::Counter`): two fixed windows per length and
//! the sliding estimate `previous × (1 − elapsed/len) + current`; Retry-After is computed by
//! the same `Counter::wait_ms`.
//!
//! Failure model: an error or a timeout marks Redis down (`berry_shared_state_up` 0,
//! `berry_shared_state_errors_total{op}` + 1). While down, [`SharedState::admit`] returns
//! [`Unavailable`] at once (the caller applies `on_unavailable`) and writes stay queued
//! (bounded); a probe every 500 ms brings it back (and rebuilds the connection if it stays
//! dead). A lease whose release is lost expires by itself within the lease TTL; leases are
//! renewed with `ZADD XX`, so one that expired during an outage is not brought back.

mod scripts;
pub mod service;

pub use service::{SharedLink, SharedStateService};

use crate::clock;
use crate::config::RateLimit;
use crate::config::Secret;
use crate::metrics::{SHARED_STATE_ERRORS, SHARED_STATE_UP};
use crate::quota::local::Counter;
pub use crate::quota::Limit;
use crate::quota::{window_maxima, Refusal, WINDOWS};
use crate::routing::state::{BackendState, MAX_COOLDOWN_MS};
use arc_swap::{ArcSwap, ArcSwapOption};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Value};
use scripts::{cooldown_key, user_key, USER_KEYS};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::{interval, timeout, MissedTickBehavior};

/// Default key prefix.
pub const DEFAULT_KEY_PREFIX: &str = "berry:";
/// Default bound on one Redis round trip on the request path.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Default lifetime of a concurrency lease that is not renewed.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// The flusher sends queued writes at least this often…
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// …or as soon as this many are queued.
const FLUSH_BATCH: usize = 256;
/// Queued writes beyond this are dropped (counted as flush errors): memory stays bounded
/// while Redis is slow.
const QUEUE_CAP: usize = 65_536;
/// Commands per pipeline (bounds how long one batch holds the shared connection).
const PIPELINE_MAX: usize = 256;
/// Lease ids or cooldown keys per script call (bounds the Lua stack).
const IDS_PER_CALL: usize = 500;
/// Cooldown poll period (a cooldown reaches every replica within this plus one flush).
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Health probe period.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long a down-state probe waits for a (re)connection before its timed `SCRIPT LOAD`.
const CONNECT_BUDGET: Duration = Duration::from_secs(1);
/// Consecutive failed probes after which the connection is rebuilt from scratch (a
/// half-open TCP connection never errors by itself).
const REBUILD_AFTER: u32 = 4;
/// Longest accepted round-trip bound (`timeout_ms`).
const MAX_TIMEOUT: Duration = Duration::from_secs(10);
/// Smallest accepted lease TTL.
const MIN_LEASE_TTL: Duration = Duration::from_millis(300);

/// Connection settings (`[settings.shared_state]`).
#[derive(Debug, Clone)]
pub struct SharedSettings {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS with rustls and the
    /// system roots). May carry a password: never logged (logs show scheme, host and port).
    pub redis_url: Secret,
    /// Prefix of every key (default `berry:`); no `{` or `}` (they would break the per-user
    /// hash tags).
    pub key_prefix: String,
    /// Bound on one round trip on the request path (admission, probe); background writes get
    /// 4× this (at least 200 ms). Default 50 ms.
    pub timeout: Duration,
    /// Lifetime of a concurrency lease without renewal; leases still held are renewed every
    /// third of it, so a replica that dies frees its slots within this. Default 30 s.
    pub lease_ttl: Duration,
}

impl SharedSettings {
    /// Settings for `redis_url` with every default.
    pub fn new(redis_url: Secret) -> Self {
        SharedSettings {
            redis_url,
            key_prefix: DEFAULT_KEY_PREFIX.to_string(),
            timeout: DEFAULT_TIMEOUT,
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }

    /// Every problem of these settings, as (field of `[settings.shared_state]`, message),
    /// empty when `start` can use them. The config validation reports these under their
    /// key paths; `start` refuses settings that have any. No message contains the URL.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        // The client crate parses the URL as it will when connecting.
        let url = self.redis_url.expose();
        let has_host = |rest: &str| !rest.is_empty() && !rest.starts_with('/');
        let url_ok = match url.split_once("://") {
            Some(("redis" | "rediss", rest)) => has_host(rest) && redis::Client::open(url).is_ok(),
            _ => false,
        };
        if !url_ok {
            out.push((
                "redis_url",
                "must be a redis://host[:port][/db] or rediss://… URL".to_string(),
            ));
        }
        if self
            .key_prefix
            .chars()
            .any(|c| c.is_control() || c == '{' || c == '}')
        {
            out.push((
                "key_prefix",
                "must not contain control characters or braces (braces are Redis hash tags)"
                    .to_string(),
            ));
        }
        if !(Duration::from_millis(1)..=MAX_TIMEOUT).contains(&self.timeout) {
            out.push((
                "timeout_ms",
                format!(
                    "must be between 1 and {} (got {})",
                    MAX_TIMEOUT.as_millis(),
                    self.timeout.as_millis()
                ),
            ));
        }
        if self.lease_ttl < MIN_LEASE_TTL {
            out.push((
                "lease_ttl",
                format!("must be at least {} ms", MIN_LEASE_TTL.as_millis()),
            ));
        }
        out
    }

    fn background_timeout(&self) -> Duration {
        self.timeout
            .saturating_mul(4)
            .max(Duration::from_millis(200))
    }
}

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

/// The answer of [`SharedState::admit`].
#[derive(Debug)]
pub enum Admission {
    /// Counted in every request window; the lease is `Some` iff `max_concurrent` is set.
    Admitted(Option<Lease>),
    /// Refused (by the limit with the longest wait among those that failed, as the local
    /// limiter decides; concurrency waits 1 s); nothing was consumed.
    Refused(Refusal),
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

/// A queued write.
enum Op {
    Tokens {
        user: Arc<str>,
        minute: u64,
        day: u64,
    },
    Release {
        user: Arc<str>,
        id: String,
    },
    Cooldown {
        backend: Arc<str>,
        ms: u64,
    },
}

/// One user's share of a batch.
#[derive(Default)]
struct UserBatch {
    minute: u64,
    day: u64,
    release: Vec<String>,
    renew: Vec<String>,
}

/// State shared by the handle, the leases and the background tasks.
struct Inner {
    prefix: String,
    timeout: Duration,
    background_timeout: Duration,
    lease_ttl_ms: u64,
    /// `scheme://host:port/db` of the URL, for logs (no credentials).
    label: String,
    /// `None` when the URL is invalid: the state stays down.
    client: Option<redis::Client>,
    conn: ArcSwapOption<ConnectionManager>,
    up: AtomicBool,
    queue: Mutex<Vec<Op>>,
    queue_ready: Notify,
    /// Leases held by this replica (id → user), renewed in the background.
    held: Mutex<HashMap<String, Arc<str>>>,
    /// Backends whose shared cooldowns this replica applies: (cooldown key, state).
    watched: ArcSwap<Vec<(String, Arc<BackendState>)>>,
}

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data stays consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Whether Redis is considered up: false from start until the first probe answers, and
    /// from any failed or timed-out operation (admission, write, poll, probe) until a probe
    /// answers again. While false, limited admissions return `Unavailable` at once.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
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
    pub async fn admit(&self, user_id: &str, limits: &RateLimit) -> Result<Admission, Unavailable> {
        self.admit_at(user_id, limits, 0).await
    }

    /// [`SharedState::admit`] at a chosen Redis time in ms (`0` = Redis `TIME`). Tests only:
    /// replays the local limiter's scenarios at chosen instants.
    #[doc(hidden)]
    pub async fn admit_at(
        &self,
        user_id: &str,
        limits: &RateLimit,
        now_ms: u64,
    ) -> Result<Admission, Unavailable> {
        if limits.is_empty() {
            return Ok(Admission::Admitted(None));
        }
        let inner = &self.inner;
        if !self.is_up() {
            return Err(Unavailable);
        }
        let Some(mut conn) = inner.connection() else {
            return Err(Unavailable);
        };
        let windows = window_maxima(limits);
        let lease_id = limits
            .max_concurrent
            .map(|_| crate::random_id::random_hex_string());
        let mut inv = scripts::ADMIT.script.prepare_invoke();
        for suffix in USER_KEYS {
            inv.key(user_key(&inner.prefix, user_id, suffix));
        }
        inv.arg(now_ms);
        for w in windows {
            match w {
                Some(l) => inv.arg(l),
                None => inv.arg(""),
            };
        }
        match limits.max_concurrent {
            Some(m) => inv.arg(m),
            None => inv.arg(""),
        };
        inv.arg(lease_id.as_deref().unwrap_or(""))
            .arg(inner.lease_ttl_ms);
        let reply: Vec<i64> = match timeout(inner.timeout, inv.invoke_async(&mut conn)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                inner.mark_down("admit", &e);
                return Err(Unavailable);
            }
            Err(_) => {
                inner.mark_down("admit", &"timed out");
                return Err(Unavailable);
            }
        };
        let Some(admission) = decide(&reply, &windows) else {
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

    /// A cooldown learnt here (429 Retry-After, rate-limit headers): every replica keeps
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
/// `quota::local::Counter::wait_ms` as the local limiter does; concurrency waits 1 s.
/// `Some(Ok(()))`: admitted; `Some(Err(_))`: refused; `None`: not a reply of the script.
fn decide(reply: &[i64], windows: &[Option<u64>; 5]) -> Option<Result<(), Refusal>> {
    let [admitted, now, rest @ ..] = reply else {
        return None;
    };
    if *admitted == 1 {
        return Some(Ok(()));
    }
    let now = u64::try_from(*now).ok()?;
    let u = |x: i64| u64::try_from(x).unwrap_or(0);
    let mut worst: Option<Refusal> = None;
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
            6 => (Limit::Concurrency, 1000),
            _ => return None,
        };
        Refusal::keep_longest(&mut worst, limit, wait_ms);
    }
    worst.map(Err)
}

impl Inner {
    fn connection(&self) -> Option<ConnectionManager> {
        self.conn.load().as_deref().cloned()
    }

    /// A fresh connection manager (connects lazily, reconnects by itself on I/O errors).
    fn rebuild_connection(&self) {
        let Some(client) = &self.client else { return };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_BUDGET))
            .set_number_of_retries(3)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(PROBE_EVERY);
        match ConnectionManager::new_lazy_with_config(client.clone(), config) {
            Ok(c) => self.conn.store(Some(Arc::new(c))),
            Err(e) => log::warn!("shared state: Redis client at {}: {e}", self.label),
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            SHARED_STATE_UP.set(1);
            log::info!("shared state: Redis at {} is up", self.label);
        }
    }

    /// Counts a failed `op` and marks Redis down (admissions get `Unavailable` at once until
    /// the probe sees it back).
    fn mark_down(&self, op: &str, err: &dyn fmt::Display) {
        SHARED_STATE_ERRORS.with_label_values(&[op]).inc();
        if self.up.swap(false, Ordering::AcqRel) {
            SHARED_STATE_UP.set(0);
            log::warn!(
                "shared state: Redis at {} unavailable ({op}: {err}); on_unavailable applies until it answers again",
                self.label
            );
        } else {
            log::debug!("shared state: {op} failed: {err}");
        }
    }

    fn enqueue(&self, op: Op) {
        let len = {
            let mut q = lock(&self.queue);
            if q.len() >= QUEUE_CAP {
                None
            } else {
                q.push(op);
                Some(q.len())
            }
        };
        match len {
            None => {
                SHARED_STATE_ERRORS.with_label_values(&["flush"]).inc();
                log::debug!("shared state: write queue full, write dropped");
            }
            Some(FLUSH_BATCH) => self.queue_ready.notify_one(),
            Some(_) => {}
        }
    }

    /// Sends one batch: per user one `UPDATE` script (tokens, releases), the cooldowns in
    /// one `COOL_SET` script, in pipelines of at most `PIPELINE_MAX` commands.
    async fn flush_ops(&self, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        let mut users: HashMap<Arc<str>, UserBatch> = HashMap::new();
        let mut cooldowns: HashMap<Arc<str>, u64> = HashMap::new();
        for op in ops {
            match op {
                Op::Tokens { user, minute, day } => {
                    let b = users.entry(user).or_default();
                    b.minute = b.minute.saturating_add(minute);
                    b.day = b.day.saturating_add(day);
                }
                Op::Release { user, id } => users.entry(user).or_default().release.push(id),
                Op::Cooldown { backend, ms } => {
                    let e = cooldowns.entry(backend).or_default();
                    *e = (*e).max(ms);
                }
            }
        }
        let mut cmds = self.update_cmds(users);
        let cooldowns: Vec<(String, u64)> = cooldowns
            .into_iter()
            .map(|(b, ms)| (cooldown_key(&self.prefix, &b), ms))
            .collect();
        for chunk in cooldowns.chunks(IDS_PER_CALL) {
            let mut c = evalsha(&scripts::COOL_SET, chunk.len());
            for (k, _) in chunk {
                c.arg(k);
            }
            for (_, ms) in chunk {
                c.arg(ms);
            }
            cmds.push(c);
        }
        self.send(cmds, "flush").await;
    }

    /// `UPDATE` script calls for per-user batches (ids split over calls of `IDS_PER_CALL`).
    fn update_cmds(&self, users: HashMap<Arc<str>, UserBatch>) -> Vec<Cmd> {
        let mut cmds = Vec::with_capacity(users.len());
        for (user, b) in users {
            let (mut minute, mut day) = (b.minute, b.day);
            let mut release = b.release.as_slice();
            let mut renew = b.renew.as_slice();
            loop {
                let r = release.len().min(IDS_PER_CALL);
                let n = renew.len().min(IDS_PER_CALL - r);
                let mut c = evalsha(&scripts::UPDATE, 3);
                for suffix in &USER_KEYS[3..] {
                    c.arg(user_key(&self.prefix, &user, suffix));
                }
                c.arg(0)
                    .arg(minute)
                    .arg(day)
                    .arg(self.lease_ttl_ms)
                    .arg(r)
                    .arg(&release[..r])
                    .arg(&renew[..n]);
                cmds.push(c);
                (minute, day) = (0, 0);
                release = &release[r..];
                renew = &renew[n..];
                if release.is_empty() && renew.is_empty() {
                    break;
                }
            }
        }
        cmds
    }

    /// Sends `cmds` in pipelines; a transport failure or timeout marks Redis down and drops
    /// that pipeline and the rest (a timed-out pipeline may have been applied: sending it
    /// again could count tokens twice; a lost release expires with its lease), a command's
    /// own error is counted and logged.
    async fn send(&self, cmds: Vec<Cmd>, op: &str) {
        for chunk in cmds.chunks(PIPELINE_MAX) {
            let Some(mut conn) = self.connection() else {
                return;
            };
            match timeout(self.background_timeout, pipeline(&mut conn, chunk)).await {
                Ok(Ok(values)) => {
                    let mut errors = values.iter().filter_map(|v| match v {
                        Value::ServerError(e) => Some(e),
                        _ => None,
                    });
                    if let Some(first) = errors.next() {
                        let n = 1 + errors.count();
                        SHARED_STATE_ERRORS
                            .with_label_values(&[op])
                            .inc_by(n as u64);
                        log::warn!("shared state: {n} {op} command(s) failed, first: {first}");
                    }
                }
                Ok(Err(e)) => return self.mark_down(op, &e),
                Err(_) => return self.mark_down(op, &"timed out"),
            }
        }
    }

    /// One probe: a `PING` while up; while down, a `SCRIPT LOAD` of every script (so
    /// admissions need only `EVALSHA`) within the timeout, after the connection had up to
    /// `CONNECT_BUDGET` to come back. Returns whether Redis answered.
    async fn probe(&self) -> bool {
        if self.conn.load().is_none() {
            self.rebuild_connection();
        }
        let Some(mut conn) = self.connection() else {
            return false;
        };
        if self.up.load(Ordering::Acquire) {
            let ping = redis::cmd("PING");
            return match timeout(self.timeout, ping.query_async::<Value>(&mut conn)).await {
                Ok(Ok(_)) => true,
                Ok(Err(e)) => {
                    self.mark_down("probe", &e);
                    false
                }
                Err(_) => {
                    self.mark_down("probe", &"timed out");
                    false
                }
            };
        }
        let ping = redis::cmd("PING");
        let ready = match timeout(CONNECT_BUDGET, ping.query_async::<Value>(&mut conn)).await {
            Ok(Ok(_)) => match timeout(self.timeout, load_scripts(&mut conn)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_string()),
            },
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_string()),
        };
        match ready {
            Ok(()) => {
                self.mark_up();
                true
            }
            Err(e) => {
                self.mark_down("probe", &e);
                false
            }
        }
    }

    /// Renews every lease this replica still holds (one `UPDATE` per user, `ZADD XX`).
    async fn renew(&self) {
        if !self.up.load(Ordering::Acquire) {
            return;
        }
        let mut users: HashMap<Arc<str>, UserBatch> = HashMap::new();
        for (id, user) in lock(&self.held).iter() {
            users
                .entry(Arc::clone(user))
                .or_default()
                .renew
                .push(id.clone());
        }
        if users.is_empty() {
            return;
        }
        let cmds = self.update_cmds(users);
        self.send(cmds, "flush").await;
    }

    /// Reads the watched backends' shared cooldowns and applies them.
    async fn poll(&self) {
        let watched = self.watched.load_full();
        if watched.is_empty() || !self.up.load(Ordering::Acquire) {
            return;
        }
        let Some(mut conn) = self.connection() else {
            return;
        };
        for chunk in watched.chunks(IDS_PER_CALL) {
            let mut inv = scripts::COOL_POLL.script.prepare_invoke();
            for (key, _) in chunk {
                inv.key(key);
            }
            let ttls: Vec<i64> =
                match timeout(self.background_timeout, inv.invoke_async(&mut conn)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => return self.mark_down("poll", &e),
                    Err(_) => return self.mark_down("poll", &"timed out"),
                };
            let now = clock::now_ms();
            for ((_, state), ttl) in chunk.iter().zip(ttls) {
                if let Ok(ms) = u64::try_from(ttl) {
                    if ms > 0 {
                        state.cool_down_for(ms, now);
                    }
                }
            }
        }
    }
}

/// `EVALSHA <script> <nkeys>`; the caller adds keys then args.
fn evalsha(lua: &scripts::Lua, nkeys: usize) -> Cmd {
    let mut c = redis::cmd("EVALSHA");
    c.arg(lua.script.get_hash()).arg(nkeys);
    c
}

/// Loads every script (one pipeline).
async fn load_scripts(conn: &mut ConnectionManager) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for s in scripts::all() {
        pipe.cmd("SCRIPT").arg("LOAD").arg(&s.code);
    }
    pipe.query_async::<Vec<String>>(conn).await.map(drop)
}

/// Sends `cmds` as one pipeline and returns each reply (errors included). Commands that
/// failed with `NOSCRIPT` (Redis restarted and lost its script cache) are sent again once
/// after the scripts are loaded, so none is applied twice.
async fn pipeline(conn: &mut ConnectionManager, cmds: &[Cmd]) -> redis::RedisResult<Vec<Value>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for c in cmds {
        pipe.add_command(c.clone());
    }
    let mut values: Vec<Value> = pipe.query_async(conn).await?;
    let missing: Vec<usize> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| is_noscript(v))
        .map(|(i, _)| i)
        .collect();
    if missing.is_empty() {
        return Ok(values);
    }
    load_scripts(conn).await?;
    let mut again = redis::pipe();
    again.ignore_errors();
    for &i in &missing {
        if let Some(c) = cmds.get(i) {
            again.add_command(c.clone());
        }
    }
    let retried: Vec<Value> = again.query_async(conn).await?;
    for (i, v) in missing.into_iter().zip(retried) {
        if let Some(slot) = values.get_mut(i) {
            *slot = v;
        }
    }
    Ok(values)
}

fn is_noscript(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::NoScript))
}

async fn probe_loop(inner: Arc<Inner>) {
    let mut tick = interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failures = 0u32;
    loop {
        tick.tick().await;
        if inner.probe().await {
            failures = 0;
        } else {
            failures += 1;
            if failures % REBUILD_AFTER == 0 {
                inner.rebuild_connection();
            }
        }
    }
}

async fn flush_loop(inner: Arc<Inner>) {
    let mut tick = interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = inner.queue_ready.notified() => {}
        }
        // While Redis is down the writes stay queued (bounded by QUEUE_CAP) and go out
        // once the probe sees it back: releases and tokens are late, not lost.
        if !inner.up.load(Ordering::Acquire) {
            continue;
        }
        let ops = std::mem::take(&mut *lock(&inner.queue));
        inner.flush_ops(ops).await;
    }
}

async fn renew_loop(inner: Arc<Inner>, every: Duration) {
    let mut tick = interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        inner.renew().await;
    }
}

async fn poll_loop(inner: Arc<Inner>) {
    let mut tick = interval(POLL_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        inner.poll().await;
    }
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
    fn settings_validation() {
        let fields = |s: &SharedSettings| s.problems().into_iter().map(|p| p.0).collect::<Vec<_>>();
        let ok = SharedSettings::new(Secret::new("redis://127.0.0.1:6379/0"));
        assert_eq!(fields(&ok), Vec::<&str>::new());
        assert!(fields(&SharedSettings::new(Secret::new("rediss://h:6380"))).is_empty());
        for bad in [
            "http://user:pw@h",
            "redis://",
            "redis:///0",
            "rediss:/h",
            "pw",
        ] {
            let s = SharedSettings::new(Secret::new(bad));
            let p = s.problems();
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert_eq!(p[0].0, "redis_url");
            assert!(!p[0].1.contains("pw"), "{p:?}");
        }
        let mut braces = ok.clone();
        braces.key_prefix = "a{b}:".into();
        assert_eq!(fields(&braces), ["key_prefix"]);
        let mut short = ok.clone();
        short.lease_ttl = Duration::from_millis(10);
        assert_eq!(fields(&short), ["lease_ttl"]);
        let mut zero = ok.clone();
        zero.timeout = Duration::ZERO;
        assert_eq!(fields(&zero), ["timeout_ms"]);
        let mut long = ok;
        long.timeout = Duration::from_millis(10_001);
        assert_eq!(fields(&long), ["timeout_ms"]);
        let dbg = format!(
            "{:?}",
            SharedSettings::new(Secret::new("redis://u:hunter2@h"))
        );
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn labels() {
        assert_eq!(Limit::RequestsPerMinute.label(), "minute");
        assert_eq!(Limit::TokensPerDay.label(), "tokens_day");
        assert!(Limit::TokensPerMinute.is_tokens());
        assert!(!Limit::Concurrency.is_tokens());
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
            decide(&reply, &w),
            Some(Err(Refusal {
                limit: Limit::RequestsPerMinute,
                retry_after_secs: 50
            }))
        );
        assert_eq!(decide(&[1, start], &w), Some(Ok(())));
        assert!(decide(&[0], &w).is_none());
        assert!(decide(&[0, start, 9, 0, 0, 0], &w).is_none());
    }
}
