//! Hot reload: on SIGHUP and when the config file changes, load and validate the
//! file off the request path, build a new snapshot carrying runtime state over, and swap
//! it in atomically. A bad file keeps the old config and logs every problem.

use crate::clock::now_ms;
use crate::config;
use crate::snapshot::{Snapshot, SnapshotCell};
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the config file's metadata and content are compared.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Why a reload did not take effect.
#[derive(Debug)]
pub enum ReloadError {
    Config(config::ConfigError),
    Build(String),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Config(e) => write!(f, "{e}"),
            ReloadError::Build(e) => write!(f, "{e}"),
        }
    }
}

/// Loads `path` and swaps a new snapshot into `cell`. On error the current snapshot stays.
/// Counts `berry_config_reloads_total{result}`.
pub async fn reload(cell: &SnapshotCell, path: &std::path::Path) -> Result<u64, ReloadError> {
    let result = load_and_build(cell, path).await;
    match &result {
        Ok(generation) => {
            crate::metrics::CONFIG_RELOADS
                .with_label_values(&["success"])
                .inc();
            log::info!(
                "config reloaded from {} (generation {generation})",
                path.display()
            );
        }
        Err(e) => {
            crate::metrics::CONFIG_RELOADS
                .with_label_values(&["error"])
                .inc();
            log::error!("config reload refused; keeping the current config. {e}");
        }
    }
    result
}

async fn load_and_build(cell: &SnapshotCell, path: &std::path::Path) -> Result<u64, ReloadError> {
    let p = path.to_path_buf();
    let cfg = tokio::task::spawn_blocking(move || config::load_file(&p))
        .await
        .map_err(|e| ReloadError::Build(format!("reload task failed: {e}")))?
        .map_err(ReloadError::Config)?;
    for w in &cfg.warnings {
        log::warn!("config: {w}");
    }
    let prev = cell.load();
    if cfg.settings.listen != prev.table.settings.listen {
        log::warn!("settings.listen changed; listeners change only on restart or upgrade");
    }
    if cfg.settings.metrics_listen != prev.table.settings.metrics_listen {
        log::warn!(
            "settings.metrics_listen changed; the metrics listener (and whether the client \
             listener serves /metrics) changes only on restart or upgrade"
        );
    }
    if cfg.settings.shared_state != prev.table.settings.shared_state {
        log::warn!(
            "settings.shared_state changed; the Redis connection changes only on restart or \
             upgrade"
        );
    }
    let next = Snapshot::build(&cfg, Some(&prev), now_ms()).map_err(ReloadError::Build)?;
    for addrs in next.table.dns_hosts() {
        if addrs.pick().is_none() && !addrs.refresh().await {
            log::warn!("provider host {:?} does not resolve yet", addrs.key().0);
        }
    }
    let generation = next.generation;
    cell.store(next);
    Ok(generation)
}

/// Detects content changes of a file cheaply: the content is read and hashed only when
/// its size or modification time changed (editors that rewrite an identical file do not
/// trigger a reload).
#[derive(Default)]
struct FileWatch {
    meta: Option<(u64, std::time::SystemTime)>,
    hash: Option<u64>,
}

impl FileWatch {
    fn new(path: &std::path::Path) -> Self {
        let mut w = FileWatch::default();
        w.changed(path);
        w
    }

    /// True when the content differs from the last observation.
    fn changed(&mut self, path: &std::path::Path) -> bool {
        use std::hash::{Hash, Hasher};
        let meta = std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)));
        if meta.is_none() || meta == self.meta {
            return false;
        }
        self.meta = meta;
        let Ok(bytes) = std::fs::read(path) else {
            return false;
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        let hash = Some(h.finish());
        let changed = self.hash.is_some() && hash != self.hash;
        self.hash = hash;
        changed
    }
}

/// Background service: reload on SIGHUP or when the file's content changes.
pub struct ConfigReloader {
    cell: Arc<SnapshotCell>,
    path: PathBuf,
}

impl ConfigReloader {
    /// Watches `path` and reloads into `cell`.
    pub fn new(cell: Arc<SnapshotCell>, path: PathBuf) -> Self {
        ConfigReloader { cell, path }
    }
}

#[async_trait]
impl BackgroundService for ConfigReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("cannot listen for SIGHUP: {e}");
                None
            }
        };
        let mut watch = FileWatch::new(&self.path);
        let mut ticker = tokio::time::interval(WATCH_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let signalled = async {
                match hup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = signalled => {
                    log::info!("SIGHUP received; reloading {}", self.path.display());
                    watch.changed(&self.path);
                    let _ = reload(&self.cell, &self.path).await;
                }
                _ = ticker.tick() => {
                    if watch.changed(&self.path) {
                        log::info!("{} changed; reloading", self.path.display());
                        let _ = reload(&self.cell, &self.path).await;
                    }
                }
            }
        }
    }
}

/// Background service: re-resolves provider host names every `interval`.
pub struct DnsRefresher {
    cell: Arc<SnapshotCell>,
    interval: Duration,
}

impl DnsRefresher {
    /// Refreshes the hosts of the current snapshot every `interval`.
    pub fn new(cell: Arc<SnapshotCell>, interval: Duration) -> Self {
        DnsRefresher { cell, interval }
    }
}

#[async_trait]
impl BackgroundService for DnsRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = ticker.tick() => {
                    for addrs in self.cell.load().table.dns_hosts() {
                        if !addrs.refresh().await {
                            log::warn!("provider host {:?} does not resolve", addrs.key().0);
                        }
                    }
                }
            }
        }
    }
}
