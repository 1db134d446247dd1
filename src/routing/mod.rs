//! Routing: model name → candidate backends → one backend per attempt.
//!
//! `table` holds the immutable snapshot built from config, `strategy` the pure selection
//! rules, `state` the per-backend runtime state that outlives snapshots, `affinity` the
//! selection for requests with a session key (rendezvous hashing), `moves` the sessions'
//! remembered moves. Nothing here
//! touches a socket, so all of it is unit-testable.

pub mod affinity;
pub mod moves;
pub mod state;
pub mod strategy;
pub mod table;

pub use affinity::{AffinityResult, Session};
pub use moves::SessionMoves;
pub use state::{
    Availability, BackendState, BreakerSettings, CircuitState, Outcome, DEFAULT_COOLDOWN_MS,
    MAX_COOLDOWN_MS,
};
pub use table::{Backend, ModelRoute, SelectInput, Selected, Table};
