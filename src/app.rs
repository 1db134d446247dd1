//! Wiring: config → snapshot → Pingora server with the proxy service, background services
//! (health checks, reload, DNS), the optional metrics listener, and signal handling.

use crate::cli::Cli;
use crate::clock::now_ms;
use crate::config::{self, Config};
use crate::connection::ClientApp;
use crate::health::HealthChecker;
use crate::proxy::BerryProxy;
use crate::reload::{ConfigReloader, DnsRefresher};
use crate::shared::{SharedLink, SharedStateService};
use crate::snapshot::{Snapshot, SnapshotCell};
use async_trait::async_trait;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::listeners::ListenerConfig;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::L4BufferSettings;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::ShutdownWatch;
use pingora_core::server::{ExecutionPhase, Server};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How often provider host names are re-resolved.
const DNS_REFRESH: Duration = Duration::from_secs(30);
/// Upper bound on Pingora's own retry loop; the gateway's `max_retries` decides earlier.
const PINGORA_MAX_RETRIES: usize = 64;

/// Loads the config at `path`, printing every problem to stderr on failure.
pub fn load_config_or_report(path: &Path) -> Result<Config, ExitCode> {
    match config::load_file(path) {
        Ok(cfg) => Ok(cfg),
        Err(e) => {
            eprint!("{e}");
            Err(ExitCode::from(1))
        }
    }
}

/// `--check-config`: validate, print summary and warnings.
pub fn check_config(path: &Path) -> ExitCode {
    match load_config_or_report(path) {
        Ok(cfg) => {
            println!("configuration {} is valid", path.display());
            print!("{}", config::summary(&cfg));
            for w in &cfg.warnings {
                println!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Builds the first snapshot, resolving provider host names (blocking; start-up only).
pub fn initial_snapshot(cfg: &Config) -> Result<Snapshot, String> {
    let snap = Snapshot::build(cfg, None, now_ms())?;
    for addrs in snap.table.dns_hosts() {
        if !addrs.refresh_blocking() {
            log::warn!(
                "provider host {:?} does not resolve; its backends fail until it does",
                addrs.key().0
            );
        }
    }
    for w in &snap.warnings {
        log::warn!("config: {w}");
    }
    Ok(snap)
}

/// Pingora server configuration from `-c` (or defaults), with the gateway's requirements.
fn server_conf(cli: &Cli) -> Result<ServerConf, String> {
    let opt = &cli.pingora;
    let mut conf = match &opt.conf {
        Some(path) => ServerConf::load_yaml_with_opt_override(opt)
            .map_err(|e| format!("server conf {path}: {e}"))?,
        None => {
            let mut c = ServerConf::new_with_opt_override(opt).unwrap_or_default();
            c.threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            c
        }
    };
    conf.max_retries = conf.max_retries.max(PINGORA_MAX_RETRIES);
    Ok(conf)
}

/// Runs the gateway until it is stopped. Returns only on start-up failure.
pub fn run_gateway(cli: Cli, cfg: Config, config_path: &Path) -> ExitCode {
    crate::metrics::init();
    let snapshot = match initial_snapshot(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let listen = cli.listen_addrs(&cfg.settings.listen);
    for addr in &listen {
        if addr.parse::<std::net::SocketAddr>().is_err() {
            eprintln!("cannot start: listen address `{addr}` is not ip:port");
            return ExitCode::from(1);
        }
    }
    let conf = match server_conf(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let cell = Arc::new(SnapshotCell::new(snapshot));

    let mut opt = cli.pingora;
    opt.conf = None; // already loaded into `conf`
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();

    // The proxy runs under the gateway's own connection loop (client limits, see
    // `crate::connection`). `/metrics` stays off the client listener when it has its own.
    let mut berry = BerryProxy::new(Arc::clone(&cell), cfg.settings.metrics_listen.is_none());
    // Limits shared with the other replicas: connected by a background service (on its
    // runtime), read by the request path through the link.
    if let Some(shared) = &cfg.settings.shared_state {
        let link = Arc::new(SharedLink::new(shared.on_unavailable));
        berry = berry.with_shared_state(Arc::clone(&link));
        server.add_service(background_service(
            "shared state",
            SharedStateService::new(shared, link, Arc::clone(&cell)),
        ));
    }
    let client_app = ClientApp::new(
        pingora_proxy::http_proxy(&server.configuration, berry),
        Arc::clone(&cell),
    );
    let mut proxy = Service::new("berry-gateway".to_string(), client_app);
    for addr in &listen {
        // A 2 KiB read buffer per client connection instead of Pingora's 64 KiB: it is
        // allocated zeroed and kept for the connection's life (a held stream's too), and a
        // small request still arrives in one read; large bodies are read past it.
        proxy.add_listener(
            ListenerConfig::tcp(addr.as_str())
                .tcp_socket_options(crate::listener::client_socket_options())
                .l4_buffer(L4BufferSettings::new(2 * 1024, 1460)),
        );
    }
    server.add_service(proxy);
    server.add_service(background_service(
        "health checks",
        HealthChecker::new(Arc::clone(&cell)),
    ));
    server.add_service(background_service(
        "config reload",
        ConfigReloader::new(Arc::clone(&cell), config_path.to_path_buf()),
    ));
    server.add_service(background_service(
        "dns refresh",
        DnsRefresher::new(Arc::clone(&cell), DNS_REFRESH),
    ));
    if let Some(addr) = &cfg.settings.metrics_listen {
        let mut metrics = Service::new(
            "berry-gateway metrics".to_string(),
            pingora_core::apps::http_app::HttpServer::new_app(MetricsApp {
                cell: Arc::clone(&cell),
            }),
        );
        metrics.add_tcp(addr);
        server.add_service(metrics);
    }
    let drain = DrainWatcher::new(&server);
    server.add_service(background_service("drain watcher", drain));
    log::info!(
        "berry-gateway {} listening on {} ({} models, config {})",
        env!("CARGO_PKG_VERSION"),
        listen.join(", "),
        cell.load().table.models.len(),
        config_path.display()
    );
    server.run_forever()
}

/// After a graceful stop or upgrade hand-over, Pingora sleeps out the whole grace period.
/// This service ends the process as soon as no request is in flight (still bounded by the
/// grace period, after which Pingora stops anyway). It subscribes to the server's phases
/// before start-up but starts its watcher thread only when services start, i.e. after
/// `-d` has forked (a thread blocked on the channel must not exist across the fork).
struct DrainWatcher {
    phases: std::sync::Mutex<Option<tokio::sync::broadcast::Receiver<ExecutionPhase>>>,
}

impl DrainWatcher {
    fn new(server: &Server) -> Self {
        DrainWatcher {
            phases: std::sync::Mutex::new(Some(server.watch_execution_phase())),
        }
    }
}

#[async_trait]
impl BackgroundService for DrainWatcher {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let Some(mut phases) = self.phases.lock().ok().and_then(|mut p| p.take()) else {
            return;
        };
        crate::logbuf::start_background();
        let spawned = std::thread::Builder::new()
            .name("drain-watch".into())
            .spawn(move || loop {
                match phases.blocking_recv() {
                    Ok(ExecutionPhase::ShutdownGracePeriod) => {
                        while crate::proxy::ctx::active_requests() > 0 {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        log::info!("no request in flight; exiting");
                        crate::logbuf::flush();
                        std::process::exit(0);
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            });
        if let Err(e) = spawned {
            log::warn!("drain watcher not started ({e}); shutdown waits the full grace period");
        }
    }
}

/// The separate Prometheus listener (`settings.metrics_listen`).
struct MetricsApp {
    cell: Arc<SnapshotCell>,
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let snap = self.cell.load();
        let req = session.req_header();
        let r = if req.uri.path() != "/metrics" {
            (&crate::error::ApiError::route_not_found(req.uri.path())).into()
        } else {
            crate::api::metrics_endpoint(&snap, req, now_ms())
        };
        let mut resp = http::Response::builder()
            .status(r.status)
            .header(http::header::CONTENT_TYPE, r.content_type)
            .header(http::header::CONTENT_LENGTH, r.body.len());
        for (name, value) in &r.headers {
            resp = resp.header(*name, value.as_str());
        }
        resp.body(r.body)
            .unwrap_or_else(|_| http::Response::new(Vec::new()))
    }
}
