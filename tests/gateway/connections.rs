//! Hostile clients and slow upstreams at the connection level: `Expect:
//! 100-continue`, the client header / idle / write timeouts, the upstream connect timeout,
//! and `retry_on_timeout`. Everything over real sockets; every deadline in a test is
//! checked with a wide margin (the machine is slow and shared).

use crate::harness::*;
use berry_mock::{MockProvider, Mode};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// [`quiet_settings`] with long attempt and stream timeouts (so only the limit under test
/// can cut) and the admin API on (token `adm`); `extra` lines add keys or replace them.
fn settings(extra: &str) -> String {
    let base = quiet_settings()
        .replace(
            "request_timeout_seconds = 2",
            "request_timeout_seconds = 20",
        )
        .replace(
            "stream_idle_timeout_seconds = 2",
            "stream_idle_timeout_seconds = 30",
        );
    let replaced = |line: &str| {
        extra.lines().any(|e| {
            let key = e.split('=').next().unwrap_or_default().trim();
            !key.is_empty() && line.split('=').next().unwrap_or_default().trim() == key
        })
    };
    let kept: Vec<&str> = base.lines().filter(|l| !replaced(l)).collect();
    format!("{}\nadmin_token = \"adm\"\n{extra}\n", kept.join("\n"))
}

/// A failover model over `a` (first) and `b` with `extra` settings.
fn failover(extra: &str, a: &MockProvider, b: &MockProvider) -> String {
    two_backend_model(&settings(extra), "failover", a, b)
}

/// The value of `key` in `/admin/config`'s settings.
fn admin_setting(gw: &Gateway, key: &str) -> serde_json::Value {
    let r = gw.get("/admin/config", Some("adm"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["settings"][key].clone()
}

/// A chat completion sent the way curl sends large bodies: the head with `Expect:
/// 100-continue`, the body only after the interim `100 Continue`.
fn chat_expecting_continue(gw: &Gateway) -> Resp {
    let body = r#"{"model":"model-x","messages":[{"role":"user","content":"hi"}]}"#;
    let mut c = Client::connect(gw.addr).unwrap();
    c.write_raw(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let interim = c.line().unwrap().unwrap_or_default();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim:?}");
    while c.line().unwrap().is_some_and(|l| !l.is_empty()) {}
    c.write_raw(body.as_bytes()).unwrap();
    c.read_response(false)
        .unwrap_or_else(|e| panic!("no final answer after the 100 Continue: {e}"))
}

#[test]
fn expect_continue_changes_nothing_about_retries_and_error_answers() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&failover("", &a, &b));
    settle(&gw, &[&a, &b]);

    // the first backend resets every connection: the request moves on to the second
    a.set_mode(Mode::ResetOnAccept);
    let r = chat_expecting_continue(&gw);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served_by(&r), "b");

    // every backend fails: an error answer still follows the 100 Continue
    b.set_mode(Mode::ResetOnAccept);
    let r = chat_expecting_continue(&gw);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_error");
    assert_eq!(r.json()["error"]["type"], "upstream_error");
}

/// Writes `head` and then trickles `X-Pad` header bytes one at a time until the gateway
/// closes the connection; returns how long that took (`None`: still open after `limit`).
fn trickle_head(addr: SocketAddr, limit: Duration) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let t0 = Instant::now();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nX-Pad: ")
        .unwrap();
    let mut buf = [0u8; 256];
    while t0.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(t0.elapsed()),
            Ok(_) => {} // an answer is not expected; keep watching for the close
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(t0.elapsed()),
        }
        if s.write_all(b"a").is_err() {
            return Some(t0.elapsed());
        }
    }
    None
}

#[test]
fn a_client_trickling_its_request_head_is_closed_after_the_header_timeout() {
    let a = mock("a");
    let b = mock("b");
    // Start with a long header timeout; the short one arrives by reload, and applies to
    // the next connection.
    let gw = Gateway::start(&failover("client_header_timeout_seconds = 60", &a, &b));
    assert_eq!(admin_setting(&gw, "client_header_timeout_seconds"), 60.0);
    gw.write_config(&failover("client_header_timeout_seconds = 1", &a, &b));
    assert!(
        wait_until(Duration::from_secs(15), || admin_setting(
            &gw,
            "client_header_timeout_seconds"
        ) == 1.0),
        "the reload did not apply"
    );

    // one byte every 200 ms: no single read ever waits long, the whole head never ends
    let closed = trickle_head(gw.addr, Duration::from_secs(15));
    let took = closed.expect("a trickling client was not closed within 15 s");
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    assert_eq!(
        metric(&gw, "berry_client_timeouts_total", &[("kind", "header")]),
        1.0
    );
    // a client that sends its head at once is unaffected
    assert_eq!(gw.chat("tok", "model-x").status, 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&failover("client_idle_timeout_seconds = 2", &a, &b));
    assert_eq!(admin_setting(&gw, "client_idle_timeout_seconds"), 2.0);
    let mut c = Client::connect(gw.addr).unwrap();
    assert_eq!(c.request("GET", "/health", &[], b"").status, 200);
    // well within the idle timeout the connection is reused
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.request("GET", "/health", &[], b"").status, 200);
    let t0 = Instant::now();
    assert!(
        c.closed_within(Duration::from_secs(8)),
        "an idle connection stayed open"
    );
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(
        metric(&gw, "berry_client_timeouts_total", &[("kind", "idle")]),
        1.0
    );
}

#[test]
fn a_streaming_client_that_stops_reading_is_cut_and_its_upstream_released() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&failover("client_write_timeout_seconds = 1", &a, &b));
    settle(&gw, &[&a, &b]);
    assert_eq!(admin_setting(&gw, "client_write_timeout_seconds"), 1.0);
    // A stream far larger than every socket buffer on the way (≈ 15 MB), sent at once.
    a.set_stream_shape(berry_mock::MAX_CHUNKS, Duration::ZERO);
    let idle_connections = a.active_connections();

    // A client with a small receive buffer that sends its request and never reads.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&gw.addr.into()).unwrap();
    let mut client: TcpStream = sock.into();
    let body = r#"{"model":"model-x","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    client
        .write_all(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || a.hits_for("/chat/completions")
            == 1),
        "the stream did not start"
    );
    // The gateway's writes block once the buffers are full; after the write timeout the
    // client is cut and the upstream connection closed.
    assert!(
        wait_until(Duration::from_secs(30), || a.active_connections()
            <= idle_connections),
        "the upstream connection stayed open ({} open)",
        a.active_connections()
    );
    // counted when the write fails, which may come just after the upstream is dropped
    let write_timeouts = || metric(&gw, "berry_client_timeouts_total", &[("kind", "write")]);
    assert!(
        wait_until(Duration::from_secs(5), || write_timeouts() == 1.0),
        "{}",
        gw.metrics_text()
    );
    // the client's connection is closed too: it ends without the stream's end
    client
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut received = Vec::new();
    let _ = client.read_to_end(&mut received);
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(!text.contains("[DONE]"), "the whole stream was delivered");
    drop(client);
    // the gateway serves on
    a.set_stream_shape(5, Duration::from_millis(1));
    assert_eq!(gw.chat_stream("tok", "model-x").status, 200);
}

/// A provider address that answers the gateway's start-up health check, then accepts no
/// connection: its listening socket has a backlog of 0, nobody accepts, and one queued
/// connection fills it, so the kernel drops every further SYN (the connect hangs).
struct Blackhole {
    addr: SocketAddr,
    serving: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<socket2::Socket>>,
    _listener_and_filler: Option<(socket2::Socket, TcpStream)>,
}

impl Blackhole {
    fn start() -> Blackhole {
        let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        l.listen(0).unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        let serving = Arc::new(AtomicBool::new(true));
        let served = Arc::new(AtomicU64::new(0));
        let (on, count) = (Arc::clone(&serving), Arc::clone(&served));
        let thread = std::thread::spawn(move || {
            while on.load(Ordering::Acquire) {
                match l.accept() {
                    Ok((s, _)) => {
                        let mut s: TcpStream = s.into();
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let body = r#"{"object":"list","data":[]}"#;
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        count.fetch_add(1, Ordering::AcqRel);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            l
        });
        Blackhole {
            addr,
            serving,
            served,
            thread: Some(thread),
            _listener_and_filler: None,
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Stops answering and fills the accept queue; checks that a connect now hangs.
    fn close_the_door(&mut self) {
        self.serving.store(false, Ordering::Release);
        let listener = self.thread.take().unwrap().join().unwrap();
        let filler = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        let probe = TcpStream::connect_timeout(&self.addr, Duration::from_millis(300));
        assert!(
            probe.is_err(),
            "a full accept queue does not drop SYNs on this machine"
        );
        self._listener_and_filler = Some((listener, filler));
    }
}

#[test]
fn connect_timeout_bounds_each_attempt_and_the_next_backend_answers() {
    let mut hole = Blackhole::start();
    let b = mock("b");
    let cfg = format!(
        r#"{s}
{u}
[providers.a]
base_url = "{hole}"
api_key = "key-a"
{pb}
[models.m]
name = "model-x"
strategy = "failover"
[[models.m.backends]]
provider = "a"
model = "real-a"
priority = 1
[[models.m.backends]]
provider = "b"
model = "real-b"
priority = 2
"#,
        s = settings("connect_timeout_seconds = 1"),
        u = user("u", "tok", ""),
        hole = hole.base_url(),
        pb = provider("b", &b),
    );
    let gw = Gateway::start(&cfg);
    assert_eq!(admin_setting(&gw, "connect_timeout_seconds"), 1.0);
    assert!(
        wait_until(Duration::from_secs(10), || hole
            .served
            .load(Ordering::Acquire)
            >= 1
            && b.hits_for("/models") >= 1
            && metric(
                &gw,
                "berry_health_checks_total",
                &[("result", "success")]
            ) >= 2.0),
        "start-up health checks did not pass"
    );
    hole.close_the_door();

    let t0 = Instant::now();
    let r = gw.chat("tok", "model-x");
    let took = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served_by(&r), "b");
    // the attempt timeout (20 s) would have waited much longer
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "a was not tried: {took:?}"
    );
    assert_eq!(
        metric(
            &gw,
            "berry_upstream_attempts_total",
            &[("provider", "a"), ("outcome", "timeout")]
        ),
        1.0
    );
}

#[test]
fn retry_on_timeout_false_answers_504_without_trying_the_next_backend() {
    let a = mock("a");
    let b = mock("b");
    let strict = Gateway::start(&failover(
        "request_timeout_seconds = 1\nretry_on_timeout = false",
        &a,
        &b,
    ));
    settle(&strict, &[&a, &b]);
    assert_eq!(admin_setting(&strict, "retry_on_timeout"), false);
    a.set_mode(Mode::Hang);
    for (stream, r) in [
        (false, strict.chat("tok", "model-x")),
        (true, strict.chat_stream("tok", "model-x")),
    ] {
        assert_eq!(r.status, 504, "stream {stream}: {}", r.text());
        assert_eq!(r.error_code(), "upstream_timeout", "stream {stream}");
    }
    assert_eq!(a.hits_for("/chat/completions"), 2);
    assert_eq!(
        b.hits_for("/chat/completions"),
        0,
        "a timed-out request was retried"
    );
    assert_eq!(
        metric(
            &strict,
            "berry_timeouts_not_retried_total",
            &[("model", "model-x")]
        ),
        2.0
    );
    drop(strict);

    // by default the same timeout moves on to the next backend
    a.set_mode(Mode::Ok);
    a.reset_counters();
    b.reset_counters();
    let lenient = Gateway::start(&failover("request_timeout_seconds = 1", &a, &b));
    settle(&lenient, &[&a, &b]);
    assert_eq!(admin_setting(&lenient, "retry_on_timeout"), true);
    a.set_mode(Mode::Hang);
    let r = lenient.chat("tok", "model-x");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served_by(&r), "b");
    assert_eq!(a.hits_for("/chat/completions"), 1);
}
