//! Active health checks per provider account, as a Pingora background service.
//!
//! Each enabled provider is probed with `GET {base_url}/models` and its own credentials,
//! using Pingora's [`HttpHealthCheck`] for the probe itself. The first round runs at
//! start-up; afterwards a healthy provider is probed every `health_check_interval`, an
//! unhealthy one every `recovery_check_interval`. Every probe runs in its own task with
//! `health_check_timeout` as a hard deadline, so one hanging provider never delays the
//! others. A failed probe marks the provider unhealthy and counts as a breaker failure for
//! each of its backends; a passing one marks it healthy again.

use crate::clock::now_ms;
use crate::providers::ProviderRoute;
use crate::snapshot::{Snapshot, SnapshotCell};
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_error::{Error, ErrorType};
use pingora_http::RequestHeader;
use pingora_load_balancing::health_check::{HealthCheck, HttpHealthCheck};
use pingora_load_balancing::Backend;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often the scheduler looks for due probes.
const TICK: Duration = Duration::from_millis(100);

/// The background service running all provider probes.
pub struct HealthChecker {
    snapshots: Arc<SnapshotCell>,
}

impl HealthChecker {
    /// A checker probing the providers of whatever snapshot is current.
    pub fn new(snapshots: Arc<SnapshotCell>) -> Self {
        HealthChecker { snapshots }
    }
}

/// A provider's probe, rebuilt when its config changes (a new `ProviderRoute`).
struct Probe {
    route: Arc<ProviderRoute>,
    check: Arc<HttpHealthCheck>,
    next_due_ms: u64,
    running: Option<tokio::task::JoinHandle<()>>,
}

/// Builds the Pingora HTTP health check for a provider: `GET {base}/models` with the
/// provider's credential and extra headers. Any 2xx passes, and so does 429: a
/// rate-limited account is reachable and authenticated (passive 429 handling cools its
/// backends down instead).
pub fn build_check(p: &ProviderRoute, timeout: Duration) -> Result<HttpHealthCheck, Box<Error>> {
    let mut check = HttpHealthCheck::new(&p.endpoint.host, p.endpoint.tls);
    let path = p.upstream_path("/v1/models", None, None);
    let mut req = RequestHeader::build("GET", path.as_bytes(), None)?;
    req.insert_header(http::header::HOST, p.host_header.clone())?;
    for (name, value) in &p.headers {
        req.insert_header(name.clone(), value.clone())?;
    }
    req.insert_header(http::header::USER_AGENT, "berry-gateway-health-check")?;
    check.req = req;
    check.reuse_connection = true;
    let o = &mut check.peer_template.options;
    // A pooled connection's idle watcher holds the check's connection pool until the
    // connection closes: without an idle timeout, every check replaced by a reload kept
    // its pool and socket for good.
    o.idle_timeout = Some(Duration::from_secs(120));
    o.connection_timeout = Some(timeout);
    o.total_connection_timeout = Some(timeout);
    o.read_timeout = Some(timeout);
    o.write_timeout = Some(timeout);
    if p.endpoint.tls {
        o.alpn = pingora_core::protocols::ALPN::H2H1;
    }
    check.validator = Some(Box::new(|resp| {
        if resp.status.is_success() || resp.status == http::StatusCode::TOO_MANY_REQUESTS {
            Ok(())
        } else {
            Error::e_explain(
                ErrorType::CustomCode("health check status", resp.status.as_u16()),
                "GET /models answered neither 2xx nor 429",
            )
        }
    }));
    Ok(check)
}

/// Runs one probe of `route` with a hard deadline. `Err` carries a short reason without
/// secrets.
pub async fn probe(
    route: &ProviderRoute,
    check: &HttpHealthCheck,
    timeout: Duration,
) -> Result<(), String> {
    if route.addrs.needs_dns() {
        route.addrs.refresh().await;
    }
    let Some(addr) = route.addrs.pick() else {
        return Err("host did not resolve".into());
    };
    let backend = Backend {
        addr: pingora_core::protocols::l4::socket::SocketAddr::Inet(addr),
        weight: 1,
        ext: Default::default(),
    };
    match tokio::time::timeout(timeout, check.check(&backend)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(match e.etype() {
            ErrorType::CustomCode(_, code) => format!("status {code}"),
            other => format!("{other:?}"),
        }),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Applies a probe result to provider health, breaker state and metrics.
pub fn apply_result(snap: &Snapshot, route: &ProviderRoute, result: &Result<(), String>) {
    let now = now_ms();
    let ok = result.is_ok();
    let was_healthy = route
        .health
        .record_check(ok, result.as_ref().err().cloned(), now);
    crate::metrics::HEALTH_CHECKS
        .with_label_values(&[route.id.as_str(), if ok { "success" } else { "failure" }])
        .inc();
    if !ok {
        for m in &snap.table.models {
            for b in m.backends.iter().filter(|b| b.provider.id == route.id) {
                b.state.record_health_failure(now, &snap.table.breaker);
            }
        }
    }
    match (was_healthy, ok) {
        (true, false) => log::warn!(
            "provider {} failed its health check ({}); marked unhealthy",
            route.id,
            result.as_ref().err().map_or("", String::as_str)
        ),
        (false, true) => log::info!(
            "provider {} passed its health check; healthy again",
            route.id
        ),
        _ => {}
    }
}

impl HealthChecker {
    /// One scheduler pass: (re)builds probes for the current snapshot and starts the due ones.
    fn tick(&self, probes: &mut HashMap<String, Probe>) {
        let snap = self.snapshots.load();
        let s = &snap.table.settings;
        let now = now_ms();
        probes.retain(|id, _| {
            snap.table
                .providers
                .iter()
                .any(|p| p.enabled && p.id == *id)
        });
        for route in snap.table.providers.iter().filter(|p| p.enabled) {
            let stale = probes
                .get(&route.id)
                .is_none_or(|p| !Arc::ptr_eq(&p.route, route));
            if stale {
                let check = match build_check(route, s.health_check_timeout) {
                    Ok(c) => Arc::new(c),
                    Err(e) => {
                        log::error!("provider {}: cannot build health check: {e}", route.id);
                        continue;
                    }
                };
                let due = probes.get(&route.id).map_or(0, |p| p.next_due_ms);
                probes.insert(
                    route.id.clone(),
                    Probe {
                        route: Arc::clone(route),
                        check,
                        next_due_ms: due,
                        running: None,
                    },
                );
            }
            let Some(p) = probes.get_mut(&route.id) else {
                continue;
            };
            if p.running.as_ref().is_some_and(|h| !h.is_finished()) || now < p.next_due_ms {
                continue;
            }
            let interval = if route.health.is_healthy() {
                s.health_check_interval
            } else {
                s.recovery_check_interval
            };
            p.next_due_ms = now + crate::clock::ms(interval);
            let (route, check, cell, timeout) = (
                Arc::clone(&p.route),
                Arc::clone(&p.check),
                Arc::clone(&self.snapshots),
                s.health_check_timeout,
            );
            p.running = Some(tokio::spawn(async move {
                let result = probe(&route, &check, timeout).await;
                apply_result(&cell.load(), &route, &result);
            }));
        }
    }
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut probes: HashMap<String, Probe> = HashMap::new();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = ticker.tick() => self.tick(&mut probes),
            }
        }
        for p in probes.values() {
            if let Some(h) = &p.running {
                h.abort();
            }
        }
    }
}
