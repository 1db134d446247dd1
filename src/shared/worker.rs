//! The shared state's background work: the connection to Redis, the write queue and its
//! flusher (one pipeline per batch), lease renewal, the cooldown poller and the health
//! probe that marks Redis up and down.

use super::scripts::{self, cooldown_key, user_key, USER_KEYS};
use crate::clock;
use crate::metrics::{SHARED_STATE_ERRORS, SHARED_STATE_UP};
use crate::routing::state::BackendState;
use arc_swap::{ArcSwap, ArcSwapOption};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{interval, timeout, MissedTickBehavior};

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

/// A queued write.
pub(super) enum Op {
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
    /// A settled request's spend (`super::spend`).
    Spend(Box<super::spend::SpendOp>),
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
pub(super) struct Inner {
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    pub(super) background_timeout: Duration,
    pub(super) lease_ttl_ms: u64,
    /// `scheme://host:port/db` of the URL, for logs (no credentials).
    pub(super) label: String,
    /// `None` when the URL is invalid: the state stays down.
    pub(super) client: Option<redis::Client>,
    pub(super) conn: ArcSwapOption<ConnectionManager>,
    pub(super) up: AtomicBool,
    pub(super) queue: Mutex<Vec<Op>>,
    pub(super) queue_ready: Notify,
    /// Leases held by this replica (id → user), renewed in the background.
    pub(super) held: Mutex<HashMap<String, Arc<str>>>,
    /// Backends whose shared cooldowns this replica applies: (cooldown key, state).
    pub(super) watched: ArcSwap<Vec<(String, Arc<BackendState>)>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data stays consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub(super) fn connection(&self) -> Option<ConnectionManager> {
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
    /// `call`'s reply within `limit`; `None` after a transport failure or the timeout,
    /// either of which marks Redis down ([`Inner::mark_down`], counted under `op`).
    pub(super) async fn bounded<T>(
        &self,
        op: &str,
        limit: Duration,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match timeout(limit, call).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.mark_down(op, &e);
                None
            }
            Err(_) => {
                self.mark_down(op, &"timed out");
                None
            }
        }
    }

    pub(super) fn mark_down(&self, op: &str, err: &dyn fmt::Display) {
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

    pub(super) fn enqueue(&self, op: Op) {
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
    pub(super) async fn flush_ops(&self, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        let mut users: HashMap<Arc<str>, UserBatch> = HashMap::new();
        let mut cooldowns: HashMap<Arc<str>, u64> = HashMap::new();
        let mut spend = Vec::new();
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
                Op::Spend(s) => spend.push(*s),
            }
        }
        if !spend.is_empty() {
            let (cmds, batch) = super::spend::batch(&self.prefix, spend);
            if let Some(values) = self.query(&cmds, "flush").await {
                let failed = super::spend::publish(&batch, values);
                if failed > 0 {
                    SHARED_STATE_ERRORS
                        .with_label_values(&["flush"])
                        .inc_by(failed as u64);
                    log::warn!("shared state: {failed} spend settlement(s) failed");
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

    /// Sends `cmds` as one pipeline and returns their replies; a transport failure or a
    /// timeout marks Redis down (`None`: the writes are lost, as in [`Inner::send`]).
    async fn query(&self, cmds: &[Cmd], op: &str) -> Option<Vec<Value>> {
        let mut conn = self.connection()?;
        self.bounded(op, self.background_timeout, pipeline(&mut conn, cmds))
            .await
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
            return self
                .bounded("probe", self.timeout, ping.query_async::<Value>(&mut conn))
                .await
                .is_some();
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
            let call = inv.invoke_async(&mut conn);
            let Some(ttls) = self
                .bounded::<Vec<i64>>("poll", self.background_timeout, call)
                .await
            else {
                return;
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

pub(super) async fn probe_loop(inner: Arc<Inner>) {
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

pub(super) async fn flush_loop(inner: Arc<Inner>) {
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

pub(super) async fn renew_loop(inner: Arc<Inner>, every: Duration) {
    let mut tick = interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        inner.renew().await;
    }
}

pub(super) async fn poll_loop(inner: Arc<Inner>) {
    let mut tick = interval(POLL_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        inner.poll().await;
    }
}
