//! Test harness: the real `berry-gateway` binary listening on a loopback port the kernel
//! picks (port 0; the harness reads the bound port back from the gateway's own socket, so
//! a test never reaches another test's gateway), the project's mock providers in-process,
//! and a small blocking HTTP/1.1 client that records when each response chunk arrived.

#![allow(dead_code)]

pub use berry_test_support::{Client, Resp};

/// A real `redis-server` per test (shared-state tests); declared once for every module.
#[allow(dead_code)] // each test uses part of the helper
#[path = "../common/redis.rs"]
pub mod redis_server;

use berry_mock::{MockGuard, MockOptions, MockProvider, Mode};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The client listener address the harness starts a gateway on: the kernel picks the port.
pub const LISTEN_ANY: &str = "127.0.0.1:0";

/// A `metrics_listen` for test configs: another loopback address (told apart from the
/// client listener by it), the port picked by the kernel and read back by the harness.
pub const METRICS_LISTEN_ANY: &str = "127.0.0.2:0";

/// A free loopback port (probed: bound, then released; another process may take it
/// before it is used). Only for addresses a test needs before starting a process, such
/// as a `metrics_listen` in a config text; a gateway's client listener is on [`LISTEN_ANY`].
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("probe a free port")
}

/// A fresh temporary directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "berry-test-{tag}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Starts a mock provider named `name` on its own runtime.
pub fn mock(name: &str) -> MockGuard {
    mock_with(name, |_| {})
}

/// Starts a mock provider after adjusting its options.
pub fn mock_with(name: &str, f: impl FnOnce(&mut MockOptions)) -> MockGuard {
    let mut o = MockOptions {
        name: name.to_string(),
        ..MockOptions::default()
    };
    f(&mut o);
    MockProvider::start_background(o).expect("start mock")
}

/// Sets a mock's mode (convenience).
pub fn set_mode(m: &MockProvider, mode: Mode) {
    m.set_mode(mode);
}

/// A running gateway process.
pub struct Gateway {
    pub child: Option<Child>,
    /// The client listener as bound (read from the gateway's socket).
    pub addr: SocketAddr,
    /// The `--listen` value the gateway was started with ([`LISTEN_ANY`]): a process that
    /// takes the listeners over on upgrade (`-u`) names them the same way.
    pub listen: String,
    /// Where `/metrics` is served: the config's `settings.metrics_listen` when it sets
    /// one (the client listener then answers 404), else the client listener.
    pub metrics_addr: SocketAddr,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
}

/// The gateway binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_berry-gateway")
}

/// Pingora server conf for tests: unique pid/upgrade paths, short grace periods.
pub fn pingora_conf(dir: &Path) -> PathBuf {
    let p = dir.join("pingora.yaml");
    std::fs::write(
        &p,
        format!(
            "---\nversion: 1\nthreads: 2\npid_file: {d}/gw.pid\nupgrade_sock: {d}/upgrade.sock\ngrace_period_seconds: 10\ngraceful_shutdown_timeout_seconds: 2\n",
            d = dir.display()
        ),
    )
    .expect("write pingora conf");
    p
}

impl Gateway {
    /// Writes `config` (TOML) and starts the gateway on a free port; waits until it answers.
    pub fn start(config: &str) -> Gateway {
        Self::start_with(config, "toml", &[], &[])
    }

    /// Starts with a config file extension, extra args and extra environment.
    pub fn start_with(config: &str, ext: &str, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let dir = temp_dir("gw");
        let config_path = dir.join(format!("berry.{ext}"));
        std::fs::write(&config_path, config).expect("write config");
        let log_path = dir.join("gateway.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let conf = pingora_conf(&dir);
        let mut cmd = Command::new(binary());
        cmd.arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg(LISTEN_ANY)
            .arg("-c")
            .arg(&conf)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("BIND_ADDRESS")
            .env_remove("CONFIG_PATH")
            .stdout(Stdio::null())
            .stderr(log);
        // An empty value removes the variable (e.g. `RUST_LOG`, to run on the binary's
        // default log filter).
        for (k, v) in env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let child = cmd.spawn().expect("spawn gateway");
        let unbound: SocketAddr = LISTEN_ANY.parse().expect("addr");
        let metrics = metrics_listen_of(config);
        let mut gw = Gateway {
            child: Some(child),
            addr: unbound,
            listen: LISTEN_ANY.to_string(),
            metrics_addr: metrics.unwrap_or(unbound),
            dir,
            config_path,
            log_path,
        };
        let (addr, metrics_addr) = gw.wait_ready(metrics);
        gw.addr = addr;
        gw.metrics_addr = metrics_addr.unwrap_or(addr);
        gw
    }

    /// Waits until this gateway process has bound its listeners and answers `/health` on
    /// the client one; the bound client and metrics addresses. Panics with the log when
    /// the process exits or does not get there within 20 s.
    fn wait_ready(&mut self, metrics: Option<SocketAddr>) -> (SocketAddr, Option<SocketAddr>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut bound = None;
        while Instant::now() < deadline {
            let pid = match self.child.as_mut().map(|c| (c.id(), c.try_wait())) {
                Some((pid, Ok(None))) => pid,
                _ => panic!("gateway exited before it was ready; log:\n{}", self.log()),
            };
            if bound.is_none() {
                bound = bound_listeners(pid, metrics);
            }
            if let Some((client, metrics)) = bound {
                // the listener is this process's own: whatever answers is this gateway
                if try_request(client, "GET", "/health", &[], b"")
                    .is_ok_and(|r| r.status == 200 || r.status == 503)
                {
                    return (client, metrics);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("gateway did not start; log:\n{}", self.log());
    }

    /// The gateway's captured stderr (logs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Replaces the config file (the gateway reloads on change).
    pub fn write_config(&self, config: &str) {
        let tmp = self.dir.join("next.tmp");
        std::fs::write(&tmp, config).expect("write config");
        std::fs::rename(&tmp, &self.config_path).expect("replace config");
    }

    /// Sends a signal to the gateway process.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// POST JSON to `path` with a bearer token.
    pub fn post(&self, path: &str, token: &str, body: &str) -> Resp {
        self.post_with(path, token, body, &[])
    }

    /// POST JSON with extra request headers (e.g. `x-mock-mode` to steer the mock).
    pub fn post_with(&self, path: &str, token: &str, body: &str, extra: &[(&str, &str)]) -> Resp {
        let auth = format!("Bearer {token}");
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        headers.extend_from_slice(extra);
        request(self.addr, "POST", path, &headers, body.as_bytes())
    }

    /// Chat completion for `model` (non-stream).
    pub fn chat(&self, token: &str, model: &str) -> Resp {
        self.post(
            "/v1/chat/completions",
            token,
            &format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#),
        )
    }

    /// Streaming chat completion for `model`.
    pub fn chat_stream(&self, token: &str, model: &str) -> Resp {
        self.post(
            "/v1/chat/completions",
            token,
            &format!(
                r#"{{"model":"{model}","stream":true,"messages":[{{"role":"user","content":"hi"}}]}}"#
            ),
        )
    }

    /// GET with optional bearer token.
    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        request(self.addr, "GET", path, &headers, b"")
    }

    /// `GET /metrics` where the gateway serves it ([`Gateway::metrics_addr`]).
    pub fn metrics(&self) -> Resp {
        request(self.metrics_addr, "GET", "/metrics", &[], b"")
    }

    /// The Prometheus text of [`Gateway::metrics`].
    pub fn metrics_text(&self) -> String {
        self.metrics().text()
    }

    /// Stops the gateway (SIGTERM, then kill) and returns its log.
    pub fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.log()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The client listener of gateway process `pid` once bound (see [`bound_listeners`]).
pub fn client_listener(pid: u32, metrics: Option<SocketAddr>) -> Option<SocketAddr> {
    bound_listeners(pid, metrics).map(|(client, _)| client)
}

/// The listeners of gateway process `pid` once bound, read from its sockets: the client
/// listener (its one listening socket on 127.0.0.1 other than `metrics`) and, when the
/// config sets `metrics_listen` (`metrics`), the metrics listener (port 0: the socket on
/// that IP). `None` while one is missing.
pub fn bound_listeners(
    pid: u32,
    metrics: Option<SocketAddr>,
) -> Option<(SocketAddr, Option<SocketAddr>)> {
    let listeners = berry_test_support::process::tcp_listeners(pid).ok()?;
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.addr).collect();
    let metrics = match metrics {
        None => None,
        Some(m) if m.port() == 0 => Some(*addrs.iter().find(|a| a.ip() == m.ip())?),
        Some(m) => Some(*addrs.iter().find(|a| **a == m)?),
    };
    let client = LISTEN_ANY.parse::<SocketAddr>().ok()?.ip();
    let mut clients = addrs
        .iter()
        .filter(|a| Some(**a) != metrics && a.ip() == client);
    let first = *clients.next()?;
    assert!(
        clients.next().is_none(),
        "gateway {pid} has several client listeners: {addrs:?}"
    );
    Some((first, metrics))
}

/// Sends one request on a new connection and reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Like [`request`] but returns I/O errors.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Resp> {
    let mut c = Client::connect(addr)?;
    if let Err(e) = c.send(method, path, headers, body) {
        // The server may answer (e.g. 413) and stop reading before the body is written.
        if !matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            return Err(e);
        }
    }
    c.read_response(method == "HEAD")
}

/// `settings.metrics_listen` of a TOML (`metrics_listen = "…"`) or YAML
/// (`metrics_listen: "…"`) config text, if it sets one.
fn metrics_listen_of(config: &str) -> Option<SocketAddr> {
    config.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("metrics_listen")?.trim_start();
        let value = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':'))?;
        value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .parse()
            .ok()
    })
}

/// Config snippet for a provider pointing at a mock. Like a real provider it receives
/// none of the mock's `x-mock-*` steering headers; see [`steered_provider`].
pub fn provider(id: &str, m: &MockProvider) -> String {
    format!(
        "[providers.{id}]\nbase_url = \"{}\"\napi_key = \"key-{id}\"\n",
        m.base_url()
    )
}

/// The `forward_headers` line that lets a client steer the mock per request: every
/// `x-mock-*` request header the mock reads (the gateway forwards only allowed headers).
pub const MOCK_STEERING: &str = r#"forward_headers = ["x-mock-mode", "x-mock-delay-ms", "x-mock-chunks", "x-mock-interval-ms", "x-mock-retry-after", "x-mock-cache-read", "x-mock-cache-write", "x-mock-tool-use", "x-mock-tool-input", "x-mock-limits"]
"#;

/// [`provider`] that forwards the mock's steering headers ([`MOCK_STEERING`]).
pub fn steered_provider(id: &str, m: &MockProvider) -> String {
    format!("{}{MOCK_STEERING}", provider(id, m))
}

/// Standard fast-test settings (intervals of a second or less).
pub const FAST_SETTINGS: &str = r#"
[settings]
health_check_interval_seconds = 0.5
health_check_timeout_seconds = 0.5
recovery_check_interval_seconds = 0.5
request_timeout_seconds = 2
stream_idle_timeout_seconds = 2
max_retries = 2
circuit_breaker_failure_threshold = 3
circuit_breaker_timeout_seconds = 1
circuit_breaker_success_threshold = 2
"#;

/// Like [`FAST_SETTINGS`] but the active health check runs only once, at start-up, so
/// tests that inspect a mock's last request are not raced by health probes.
pub fn quiet_settings() -> String {
    FAST_SETTINGS
        .replace(
            "health_check_interval_seconds = 0.5",
            "health_check_interval_seconds = 3600",
        )
        .replace(
            "recovery_check_interval_seconds = 0.5",
            "recovery_check_interval_seconds = 3600",
        )
}

/// Waits until every mock answered the gateway's start-up health check and the gateway
/// recorded each result (`berry_health_checks_total` counts one check per mock), so a
/// test that then inspects a mock's last request or a backend's state is not raced by it.
///
/// A mock behind several providers is listed once per provider: it must have received
/// that many probes (a probe that timed out under load is counted before it arrives).
pub fn settle(gw: &Gateway, mocks: &[&MockProvider]) {
    let probes = |m: &MockProvider| mocks.iter().filter(|o| o.addr() == m.addr()).count() as u64;
    assert!(
        wait_until(Duration::from_secs(5), || mocks
            .iter()
            .all(|m| m.hits_for("/models") >= probes(m))
            && metric(gw, "berry_health_checks_total", &[])
                >= mocks.len() as f64),
        "start-up health checks did not arrive; metrics:\n{}",
        gw.metrics_text()
    );
}

/// Sum of the samples of metric `name` (from the gateway's `/metrics`, wherever it is
/// served) whose labels include every `(label, value)` of `want`.
pub fn metric(gw: &Gateway, name: &str, want: &[(&str, &str)]) -> f64 {
    metric_in(&gw.metrics_text(), name, want)
}

/// [`metric`] on an already scraped exposition text.
pub fn metric_in(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let (n, labels) = head.split_once('{').unwrap_or((head, "}"));
            let labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
            let matches = n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"").as_str()));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The admin API's view of every backend (`GET /admin/backends`), in config order.
pub fn admin_backends(gw: &Gateway, admin_token: &str) -> Vec<serde_json::Value> {
    let r = gw.get("/admin/backends", Some(admin_token));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["backends"].as_array().unwrap().clone()
}

/// A config with user `u` (token `tok`), providers `a` and `b` on the two mocks (both
/// forward the mock's steering headers), and model `model-x` (key `m`) over backends
/// `real-a` (weight 0.8, priority 1) and `real-b` (weight 0.2, priority 2) with `strategy`.
pub fn two_backend_model(
    settings: &str,
    strategy: &str,
    a: &MockProvider,
    b: &MockProvider,
) -> String {
    format!(
        r#"{settings}
{u}
{pa}
{pb}
[models.m]
name = "model-x"
strategy = "{strategy}"
[[models.m.backends]]
provider = "a"
model = "real-a"
weight = 0.8
priority = 1
[[models.m.backends]]
provider = "b"
model = "real-b"
weight = 0.2
priority = 2
"#,
        u = user("u", "tok", ""),
        pa = steered_provider("a", a),
        pb = steered_provider("b", b),
    )
}

/// Which mock answered a non-stream chat completion (its `system_fingerprint`).
pub fn served_by(r: &Resp) -> String {
    r.json()["system_fingerprint"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A user table entry.
pub fn user(id: &str, token: &str, extra: &str) -> String {
    format!("[users.{id}]\ntoken = \"{token}\"\n{extra}\n")
}

pub use berry_test_support::wait_until;
