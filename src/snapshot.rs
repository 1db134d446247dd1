//! The routing snapshot a request runs on, and the atomic holder that reload swaps.
//!
//! A request loads the current snapshot once (`ArcSwap::load_full`) and keeps it in its
//! context until it ends, so a reload never changes the rules under an in-flight request.

use crate::auth::Users;
use crate::config::Config;
use crate::routing::Table;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Everything a request needs from configuration, immutable once built.
#[derive(Debug)]
pub struct Snapshot {
    pub table: Table,
    pub users: Users,
    /// Number of this snapshot (1 = loaded at start-up, +1 per successful reload).
    pub generation: u64,
    /// Non-fatal config findings.
    pub warnings: Vec<String>,
}

impl Snapshot {
    /// Builds a snapshot, carrying runtime state over from `prev`.
    pub fn build(cfg: &Config, prev: Option<&Snapshot>, now_ms: u64) -> Result<Snapshot, String> {
        let table = Table::build(cfg, prev.map(|p| &p.table), now_ms)?;
        let users = Users::build(cfg, &table, prev.map(|p| &p.users));
        Ok(Snapshot {
            table,
            users,
            generation: prev.map_or(1, |p| p.generation + 1),
            warnings: cfg.warnings.clone(),
        })
    }
}

/// The current snapshot, swapped whole on reload.
#[derive(Debug)]
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
}

impl SnapshotCell {
    /// Holds `initial` as the current snapshot.
    pub fn new(initial: Snapshot) -> Self {
        SnapshotCell {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// The current snapshot; keep the `Arc` for the whole request.
    #[inline]
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the current snapshot; in-flight requests keep the one they loaded.
    pub fn store(&self, next: Snapshot) {
        self.current.store(Arc::new(next));
    }
}
