//! Shared state across replicas: per-user request windows, token budgets and
//! concurrency caps that hold for the whole fleet, spend per user, team, model and backend
//! per UTC day and month (integer micro-dollars, `spend`), and backend cooldowns learnt by
//! one replica applied by all. Everything that talks to Redis (or Valkey ≥ 7) lives here.
//!
//! Cost on the request path: one awaited round trip per admission (one `EVALSHA`), bounded
//! by `timeout`, and none for a user without limits. Everything else is off the path:
//! `finish` and `publish_cooldown` queue their writes for a flusher (one pipeline per batch);
//! lease renewal, the cooldown poller and the health probe are background tasks.
//!
//! Time comes from Redis (`TIME` inside the scripts), so replicas with skewed clocks agree.
//! The windows are the local limiter's (`vocab::limits::Counter`): two fixed windows per
//! length and the sliding estimate `previous × (1 − elapsed/len) + current`; Retry-After is
//! computed by the same `Counter::wait_ms`.
//!
//! Failure model: an error or a timeout marks Redis down (`berry_shared_state_up` 0,
//! `berry_shared_state_errors_total{op}` + 1). While down, [`SharedState::try_admit`] returns
//! [`Unavailable`] at once (the caller applies `on_unavailable`) and writes stay queued
//! (bounded); a probe every 500 ms brings it back (and rebuilds the connection if it stays
//! dead). A lease whose release is lost expires by itself within the lease TTL; leases are
//! renewed with `ZADD XX`, so one that expired during an outage is not brought back.
//!
//! Files: [`state`] (the handle: admission and the writes it queues), `worker` (the
//! connection, the flusher, renewal, the cooldown poller and the probe), `scripts` (the Lua
//! scripts and key layout), [`service`] (the Pingora background service and the request
//! path's [`SharedLink`]). The settings are the config's ([`SharedSettings`]).

pub mod affinity;
pub mod records;
mod scripts;
pub mod service;
mod spend;
pub mod state;
mod worker;

pub use crate::config::shared_state::{
    SharedSettings, DEFAULT_KEY_PREFIX, DEFAULT_LEASE_TTL, DEFAULT_TIMEOUT,
};
pub use crate::vocab::limits::QuotaLimit;
pub use service::{SharedLink, SharedStateService};
pub use state::{Admission, Lease, SharedState, Unavailable};
