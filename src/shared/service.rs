//! The replica's link to the shared state: a background service starts [`SharedState`] on
//! its runtime, keeps the watched backends in step with reloads, and flushes queued writes
//! on shutdown; the request path reads the started state through [`SharedLink`].

use super::state::SharedState;
use crate::config::SharedSettings;
use crate::config::{OnUnavailable, SharedStateConfig};
use crate::snapshot::SnapshotCell;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How often the service looks for a reloaded snapshot (new backends to watch).
const RELOAD_CHECK: Duration = Duration::from_millis(500);

/// The shared state as the request path sees it: `None` until the service started it
/// (the first milliseconds), which the request path treats like an unreachable Redis.
#[derive(Debug)]
pub struct SharedLink {
    state: OnceLock<Arc<SharedState>>,
    on_unavailable: OnUnavailable,
    /// `berry_shared_state_fallbacks_total{on_unavailable}` of this link's mode.
    fallbacks: prometheus::IntCounter,
}

impl SharedLink {
    /// A link whose requests follow `on_unavailable` while the state cannot answer.
    pub fn new(on_unavailable: OnUnavailable) -> Self {
        SharedLink {
            state: OnceLock::new(),
            on_unavailable,
            fallbacks: crate::metrics::SHARED_STATE_FALLBACKS
                .with_label_values(&[on_unavailable.as_str()]),
        }
    }

    /// The started shared state.
    pub fn get(&self) -> Option<&Arc<SharedState>> {
        self.state.get()
    }

    /// Counts one request that Redis could not answer in time and returns what to do with
    /// it (the link's `on_unavailable`).
    pub fn fall_back(&self) -> OnUnavailable {
        self.fallbacks.inc();
        self.on_unavailable
    }
}

/// Background service owning the replica's [`SharedState`].
pub struct SharedStateService {
    link: Arc<SharedLink>,
    settings: SharedSettings,
    cell: Arc<SnapshotCell>,
}

impl SharedStateService {
    /// A service that connects with `config` and publishes the state into `link`.
    pub fn new(config: &SharedStateConfig, link: Arc<SharedLink>, cell: Arc<SnapshotCell>) -> Self {
        let settings = SharedSettings {
            key_prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            ..SharedSettings::new(config.redis_url.clone())
        };
        SharedStateService {
            link,
            settings,
            cell,
        }
    }
}

#[async_trait]
impl BackgroundService for SharedStateService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let state = SharedState::start(self.settings.clone());
        let _ = self.link.state.set(Arc::clone(&state));
        let mut generation = 0;
        let mut ticker = tokio::time::interval(RELOAD_CHECK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = ticker.tick() => {
                    let snap = self.cell.load();
                    if snap.generation != generation {
                        generation = snap.generation;
                        let backends = snap
                            .table
                            .models
                            .iter()
                            .flat_map(|m| m.backends.iter())
                            .map(|b| (Arc::clone(&b.id), Arc::clone(&b.state)))
                            .collect();
                        state.watch_backends(backends);
                    }
                }
            }
        }
        state.flush().await;
    }
}
