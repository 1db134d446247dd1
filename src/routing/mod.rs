//! Routing: model name → candidate backends → one backend per attempt.
//!
//! `table` holds the immutable snapshot built from config, `strategy` the pure selection
//! rules, `state` the per-backend runtime state that outlives snapshots. Nothing here
//! touches a socket, so all of it is unit-testable.

pub mod state;
pub mod strategy;
pub mod table;

pub use state::{
    Availability, BackendState, BreakerSettings, CircuitState, Outcome, DEFAULT_COOLDOWN_MS,
    MAX_COOLDOWN_MS,
};
pub use table::{Backend, ModelRoute, SelectInput, Selected, Table};
