//! Berry's own OpenAI-compatible **mock provider**.
//!
//! A small, fast HTTP/1.1 server (tokio + httparse, no hyper) that answers the
//! OpenAI-style endpoints Berry Gateway proxies to, with switchable fault modes
//! so integration tests, benchmarks and the demo can script upstream behaviour.
//!
//! * Endpoints are matched on the path **suffix**, so `/v1/chat/completions`,
//!   `/openai/v1/chat/completions` and `/chat/completions` are all the same route:
//!   `POST …/chat/completions`, `POST …/completions`, `POST …/embeddings`,
//!   `POST …/messages` (Anthropic style), `GET …/models`; anything else is a 404
//!   with an OpenAI-shaped error body.
//! * Faults ([`Mode`]) apply to every endpoint and can be switched at runtime with
//!   [`MockProvider::set_mode`] or per request with `x-mock-*` headers
//!   (see [`Mode`]'s docs and [`MockProvider`]).
//! * Token accounting is deterministic: `prompt_tokens = body_len / 4 + 1`
//!   (`body_len` = decoded request body length), `completion_tokens` = number of
//!   content chunks; the reply text is `"tok0 tok1 … "` (one `tok<i> ` per chunk),
//!   identical for streamed and non-streamed answers.
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! use berry_gateway::mock::{MockOptions, MockProvider, Mode};
//! let mock = MockProvider::start_background(MockOptions::default())?;
//! println!("upstream at {}", mock.base_url()); // http://127.0.0.1:PORT/v1
//! mock.set_mode(Mode::Status(503));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::Notify;

/// Largest accepted request head (request line + headers); larger heads get a 413.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest accepted (decoded) request body; larger bodies get a 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Upper bound applied to any configured / requested number of stream chunks.
pub const MAX_CHUNKS: u32 = 100_000;

const MAX_HEADERS: usize = 128;
const MAX_TRACKED_PATHS: usize = 10_000;
const READ_RESERVE: usize = 8 * 1024;
const BIG_BUFFER: usize = 1024 * 1024;
const GARBAGE_SSE: &[u8] = b"\x00\x01NOT SSE{{{\n";
const GARBAGE_JSON: &[u8] = b"\x00\x01NOT JSON{{{";
const DEFAULT_SLOW: Duration = Duration::from_millis(1000);

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// Behaviour of the mock, switchable at runtime ([`MockProvider::set_mode`]) or per
/// request (`x-mock-mode` header). Applies to every endpoint, `/models` included.
///
/// Text form (used by the CLI `--mode` and the `x-mock-mode` header, case-insensitive):
/// `ok`, `NNN` (any status 100–599, e.g. `500`, `503`), `429` / `429:VALUE`
/// (rate limited, optional `Retry-After` value), `hang`, `close` / `close:N`
/// (close mid stream after N chunk events, default 1), `garbage`, `slow` / `slow:MS`
/// (header delay, default 1000 ms), `reset`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Normal answers.
    #[default]
    Ok,
    /// Answer every request with this status and an OpenAI-shaped error body
    /// (`type` is `server_error` for 5xx, `invalid_request_error` otherwise).
    Status(u16),
    /// 429 with an OpenAI-shaped `rate_limit_exceeded` body; the `Retry-After` header
    /// carries `retry_after` verbatim when it is `Some`.
    RateLimited {
        /// Value of the `Retry-After` response header (`None`: header omitted).
        retry_after: Option<String>,
    },
    /// Sleep this long after reading the request, before sending the response head;
    /// then answer normally.
    SlowHeaders(Duration),
    /// Read the request and never answer; the socket stays open until the client
    /// closes it.
    Hang,
    /// Streaming: send the head and `after_chunks` content events, then close the TCP
    /// connection without the terminating zero-size chunk. Non-streaming: send the head
    /// (with the full `Content-Length`) and half of the body, then close.
    CloseMidStream {
        /// Number of content events sent before the connection is closed.
        after_chunks: u32,
    },
    /// Streaming: head, one good event, the chunk interval, then a chunk holding the non-SSE line
    /// `\x00\x01NOT SSE{{{\n`, then the rest of the stream as usual (well-formed HTTP
    /// framing, terminating chunk included). Non-streaming: 200 with a
    /// `Content-Type: application/json` body of non-JSON bytes.
    Garbage,
    /// Accept the TCP connection and close it immediately (with RST) without reading.
    /// Connections that were already open are closed the same way at their next
    /// request; as a per-request override (`x-mock-mode: reset`) the request is read
    /// and the connection is then closed without an answer.
    ResetOnAccept,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        let (word, arg) = match lower.split_once(':') {
            Some((w, a)) => (w.trim(), Some(a.trim())),
            None => (lower.as_str(), None),
        };
        // The 429 argument is kept verbatim (original case).
        let raw_arg = s.split_once(':').map(|(_, a)| a.trim().to_string());
        let bad = || {
            format!("invalid mock mode {s:?} (expected ok|NNN|429[:retry-after]|hang|close[:N]|garbage|slow[:MS]|reset)")
        };
        match (word, arg) {
            ("ok", None) => Ok(Mode::Ok),
            ("hang", None) => Ok(Mode::Hang),
            ("garbage", None) => Ok(Mode::Garbage),
            ("reset", None) => Ok(Mode::ResetOnAccept),
            ("close", None) => Ok(Mode::CloseMidStream { after_chunks: 1 }),
            ("close", Some(n)) => n
                .parse()
                .map(|after_chunks| Mode::CloseMidStream { after_chunks })
                .map_err(|_| bad()),
            ("slow", None) => Ok(Mode::SlowHeaders(DEFAULT_SLOW)),
            ("slow", Some(ms)) => ms
                .parse()
                .map(|ms| Mode::SlowHeaders(Duration::from_millis(ms)))
                .map_err(|_| bad()),
            ("429", retry) => Ok(Mode::RateLimited {
                retry_after: retry.and(raw_arg).filter(|v| !v.is_empty()),
            }),
            (code, None) => match code.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => Ok(Mode::Status(c)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Ok => f.write_str("ok"),
            Mode::Status(s) => write!(f, "{s}"),
            Mode::RateLimited { retry_after: None } => f.write_str("429"),
            Mode::RateLimited {
                retry_after: Some(v),
            } => write!(f, "429:{v}"),
            Mode::SlowHeaders(d) => write!(f, "slow:{}", d.as_millis()),
            Mode::Hang => f.write_str("hang"),
            Mode::CloseMidStream { after_chunks } => write!(f, "close:{after_chunks}"),
            Mode::Garbage => f.write_str("garbage"),
            Mode::ResetOnAccept => f.write_str("reset"),
        }
    }
}

/// Configuration of a [`MockProvider`].
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// Address to bind; default `127.0.0.1:0` (any free port).
    pub listen: SocketAddr,
    /// Model ids listed by `GET …/models`; the first one is also the default `model`
    /// echoed when a request names none.
    pub models: Vec<String>,
    /// Content chunks per streamed answer (= `completion_tokens`); default 5.
    pub chunks: u32,
    /// Pause between two streamed content events; default 20 ms.
    pub chunk_interval: Duration,
    /// When `Some(k)`, requests must carry `Authorization: Bearer k`, `x-api-key: k`
    /// or `api-key: k`, otherwise they get a 401 OpenAI-shaped error.
    pub expected_api_key: Option<String>,
    /// Keep a copy of the last request for [`MockProvider::last_request`]; default
    /// true. Turn it off for benchmarks.
    pub record_requests: bool,
    /// Initial fault mode; default [`Mode::Ok`].
    pub mode: Mode,
    /// Name of this mock: sent as `system_fingerprint` in chat / completion answers
    /// and as the `x-mock-name` response header, so tests can tell mocks apart.
    pub name: String,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            models: vec![
                "gpt-4o-mini".to_string(),
                "gpt-4o".to_string(),
                "text-embedding-3-small".to_string(),
            ],
            chunks: 5,
            chunk_interval: Duration::from_millis(20),
            expected_api_key: None,
            record_requests: true,
            mode: Mode::Ok,
            name: "mock".to_string(),
        }
    }
}

/// A copy of a request the mock received (see [`MockProvider::last_request`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Request method, e.g. `POST`.
    pub method: String,
    /// Request target as sent (path and query), e.g. `/v1/chat/completions`.
    pub path: String,
    /// All request headers in arrival order (names as sent, values lossily UTF-8).
    pub headers: Vec<(String, String)>,
    /// Decoded request body (chunked transfer coding removed).
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Handle to a running mock provider. Cheap to clone (an `Arc` inside).
///
/// The listening socket is closed when the last handle is dropped; connections that
/// are already open keep being served by their runtime.
///
/// Per-request overrides, read from request headers (the gateway forwards client
/// headers, so tests can steer a mock through it):
/// `x-mock-mode` (a [`Mode`] in text form), `x-mock-delay-ms: N` (delay before the
/// response head, on top of any mode), `x-mock-chunks: N`, `x-mock-interval-ms: N`
/// (stream shape), `x-mock-retry-after: V` (value of `Retry-After` on 429s).
/// An unparsable override value gets a 400.
#[derive(Clone)]
pub struct MockProvider {
    shared: Arc<Shared>,
    _life: Arc<LifeToken>,
}

impl fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockProvider")
            .field("name", &self.shared.name)
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

/// A [`MockProvider`] running on its own background runtime (2 worker threads),
/// returned by [`MockProvider::start_background`]. Dereferences to the provider;
/// dropping it closes the listener and shuts that runtime down (open connections
/// are dropped).
pub struct MockGuard {
    provider: MockProvider,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Deref for MockGuard {
    type Target = MockProvider;
    fn deref(&self) -> &MockProvider {
        &self.provider
    }
}

impl fmt::Debug for MockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MockGuard").field(&self.provider).finish()
    }
}

impl Drop for MockGuard {
    fn drop(&mut self) {
        self.provider.stop_listening();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl MockProvider {
    /// Bind `opts.listen` and serve on the **current** tokio runtime.
    ///
    /// Fails if called outside a tokio runtime or if the address cannot be bound.
    pub async fn start(opts: MockOptions) -> io::Result<MockProvider> {
        let handle = Handle::try_current().map_err(io::Error::other)?;
        let listener = bind_listener(&handle, opts.listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(opts, addr, handle));
        shared.install(listener);
        Ok(MockProvider {
            _life: Arc::new(LifeToken(shared.clone())),
            shared,
        })
    }

    /// For synchronous tests: start the mock on a dedicated multi-thread runtime
    /// (2 worker threads) owned by a background thread; returns once it listens.
    /// Dropping the returned guard shuts that runtime down.
    pub fn start_background(opts: MockOptions) -> io::Result<MockGuard> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<MockProvider>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("berry-mock".to_string())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("berry-mock-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                match rt.block_on(MockProvider::start(opts)) {
                    Ok(p) => {
                        let _ = ready_tx.send(Ok(p));
                        rt.block_on(async {
                            let _ = stop_rx.await;
                        });
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        match ready_rx.recv() {
            Ok(Ok(provider)) => Ok(MockGuard {
                provider,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other("mock provider thread died during start"))
            }
        }
    }

    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://ADDR/v1`, the base URL an OpenAI client would be configured with.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.shared.addr)
    }

    /// The configured name ([`MockOptions::name`]).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Switch the fault mode for all following requests (and, for
    /// [`Mode::ResetOnAccept`], connections).
    pub fn set_mode(&self, m: Mode) {
        self.shared.set_mode(m);
    }

    /// The current fault mode.
    pub fn mode(&self) -> Mode {
        self.shared.current_mode()
    }

    /// Change the stream shape: content chunks per answer (capped at
    /// [`MAX_CHUNKS`]) and pause between two content events.
    pub fn set_stream_shape(&self, chunks: u32, interval: Duration) {
        self.shared
            .chunks
            .store(chunks.min(MAX_CHUNKS), Ordering::Relaxed);
        self.shared
            .interval_ns
            .store(duration_to_ns(interval), Ordering::Relaxed);
    }

    /// Turn request recording ([`MockProvider::last_request`]) on or off.
    pub fn set_recording(&self, on: bool) {
        self.shared.record.store(on, Ordering::Relaxed);
        if !on {
            *lock(&self.shared.last) = None;
        }
    }

    /// Total requests received (heads parsed) since start or the last
    /// [`reset_counters`](Self::reset_counters). Unparsable input is not counted.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::Relaxed)
    }

    /// Requests whose path (query string excluded) ends with `path_suffix`, e.g.
    /// `hits_for("/chat/completions")`. Note `"/completions"` also matches chat paths.
    pub fn hits_for(&self, path_suffix: &str) -> u64 {
        lock(&self.shared.per_path)
            .iter()
            .filter(|(p, _)| p.ends_with(path_suffix))
            .map(|(_, n)| *n)
            .sum()
    }

    /// Reset hit counters, per-path counts, the accepted-connection count and the
    /// recorded last request.
    pub fn reset_counters(&self) {
        self.shared.hits.store(0, Ordering::Relaxed);
        self.shared.accepted.store(0, Ordering::Relaxed);
        lock(&self.shared.per_path).clear();
        *lock(&self.shared.last) = None;
    }

    /// The last request received (when recording is on).
    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.shared.last).clone()
    }

    /// Currently open client connections.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Relaxed)
    }

    /// TCP connections accepted since start or the last
    /// [`reset_counters`](Self::reset_counters) (including ones reset by
    /// [`Mode::ResetOnAccept`]).
    pub fn accepted_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Whether the listening socket is open.
    pub fn is_listening(&self) -> bool {
        lock(&self.shared.slot).is_some()
    }

    /// Close the listening socket and every open connection now, like a provider that
    /// went away: new connects are refused, in-flight requests are cut. No-op on the
    /// listener when not listening.
    pub fn stop_listening(&self) {
        self.shared.stop_listening();
    }

    /// Bind the same address again after [`stop_listening`](Self::stop_listening)
    /// (SO_REUSEADDR; retried for up to ~1 s while the port is still in use — this
    /// blocks the calling thread meanwhile). No-op when already listening.
    pub fn resume_listening(&self) -> io::Result<()> {
        if self.is_listening() {
            return Ok(());
        }
        let mut attempt = 0;
        let listener = loop {
            match bind_listener(&self.shared.handle, self.shared.addr) {
                Ok(l) => break l,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < 20 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        };
        self.shared.install(listener);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Shared state and listener management
// ---------------------------------------------------------------------------

/// Last user handle gone → stop listening (tasks only hold `Arc<Shared>`).
struct LifeToken(Arc<Shared>);

impl Drop for LifeToken {
    fn drop(&mut self) {
        self.0.stop_listening();
    }
}

struct ListenerSlot {
    listener: Mutex<Option<TcpListener>>,
    stop: Notify,
}

impl ListenerSlot {
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Option<io::Result<TcpStream>>> {
        match &*lock(&self.listener) {
            None => Poll::Ready(None),
            Some(l) => l.poll_accept(cx).map(|r| Some(r.map(|(s, _)| s))),
        }
    }
}

struct Shared {
    addr: SocketAddr,
    handle: Handle,
    name: String,
    name_json: Vec<u8>,
    name_header: Vec<u8>,
    default_model: String,
    models_body: Vec<u8>,
    expected_api_key: Option<String>,
    record: AtomicBool,
    mode_ok: AtomicBool,
    mode: Mutex<Mode>,
    chunks: AtomicU32,
    interval_ns: AtomicU64,
    hits: AtomicU64,
    accepted: AtomicU64,
    active: AtomicUsize,
    next_id: AtomicU64,
    per_path: Mutex<HashMap<String, u64>>,
    last: Mutex<Option<RecordedRequest>>,
    slot: Mutex<Option<Arc<ListenerSlot>>>,
    /// Bumped by `stop_listening`; every open connection closes when it changes.
    kill: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    fn new(opts: MockOptions, addr: SocketAddr, handle: Handle) -> Shared {
        let mut name_json = Vec::new();
        push_json_str(&mut name_json, &opts.name);
        let clean_name: String = opts
            .name
            .chars()
            .filter(|c| *c == ' ' || c.is_ascii_graphic())
            .collect();
        let name_header = format!("x-mock-name: {clean_name}\r\n").into_bytes();
        let mut models_body = b"{\"object\":\"list\",\"data\":[".to_vec();
        for (i, m) in opts.models.iter().enumerate() {
            if i > 0 {
                models_body.push(b',');
            }
            models_body.extend_from_slice(b"{\"id\":");
            push_json_str(&mut models_body, m);
            models_body
                .extend_from_slice(b",\"object\":\"model\",\"created\":0,\"owned_by\":\"mock\"}");
        }
        models_body.extend_from_slice(b"]}");
        let mode_ok = opts.mode == Mode::Ok;
        Shared {
            addr,
            handle,
            name: opts.name,
            name_json,
            name_header,
            default_model: opts
                .models
                .first()
                .cloned()
                .unwrap_or_else(|| "mock-model".to_string()),
            models_body,
            expected_api_key: opts.expected_api_key,
            record: AtomicBool::new(opts.record_requests),
            mode_ok: AtomicBool::new(mode_ok),
            mode: Mutex::new(opts.mode),
            chunks: AtomicU32::new(opts.chunks.min(MAX_CHUNKS)),
            interval_ns: AtomicU64::new(duration_to_ns(opts.chunk_interval)),
            hits: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            per_path: Mutex::new(HashMap::new()),
            last: Mutex::new(None),
            slot: Mutex::new(None),
            kill: tokio::sync::watch::channel(0).0,
        }
    }

    fn current_mode(&self) -> Mode {
        if self.mode_ok.load(Ordering::Acquire) {
            Mode::Ok
        } else {
            lock(&self.mode).clone()
        }
    }

    fn set_mode(&self, m: Mode) {
        let mut g = lock(&self.mode);
        self.mode_ok.store(m == Mode::Ok, Ordering::Release);
        *g = m;
    }

    fn install(self: &Arc<Self>, listener: TcpListener) {
        let slot = Arc::new(ListenerSlot {
            listener: Mutex::new(Some(listener)),
            stop: Notify::new(),
        });
        *lock(&self.slot) = Some(slot.clone());
        self.handle.spawn(accept_loop(self.clone(), slot));
    }

    fn stop_listening(&self) {
        let slot = lock(&self.slot).take();
        if let Some(slot) = slot {
            // Dropping the listener closes the socket synchronously.
            let listener = lock(&slot.listener).take();
            drop(listener);
            slot.stop.notify_one();
        }
        // A provider that went away has no live connections either.
        self.kill.send_modify(|g| *g += 1);
    }

    fn count_request(&self, path: &str) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        let mut map = lock(&self.per_path);
        if let Some(n) = map.get_mut(path) {
            *n += 1;
        } else if map.len() < MAX_TRACKED_PATHS {
            map.insert(path.to_string(), 1);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn duration_to_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn bind_listener(handle: &Handle, addr: SocketAddr) -> io::Result<TcpListener> {
    let _rt = handle.enter();
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept_loop(shared: Arc<Shared>, slot: Arc<ListenerSlot>) {
    // Subscribed before the first accept: every connection this loop accepts sees a
    // `stop_listening` that happens after it, even one racing the accept itself.
    let killed = shared.kill.subscribe();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = slot.stop.notified() => return,
            r = poll_fn(|cx| slot.poll_accept(cx)) => r,
        };
        match accepted {
            None => return,
            Some(Ok(sock)) => {
                tokio::spawn(serve_conn(shared.clone(), sock, killed.clone()));
            }
            Some(Err(e)) => {
                // EMFILE and friends: back off briefly instead of spinning.
                log::debug!("mock accept error: {e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Connection handling
// ---------------------------------------------------------------------------

struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What to do with the connection after a response.
enum Next {
    KeepAlive,
    /// Graceful close (response complete, `Connection: close` sent).
    Close,
    /// Drop the socket now.
    Abort,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Messages,
    Models,
    NotFound,
}

enum BodyKind {
    None,
    Length(usize),
    Chunked,
}

/// Owned facts extracted from a parsed request head.
struct Head {
    endpoint: Endpoint,
    body: BodyKind,
    close: bool,
    expect_continue: bool,
    auth_ok: bool,
    mode: Option<Mode>,
    bad_override: Option<String>,
    delay: Option<Duration>,
    chunks: Option<u32>,
    interval: Option<Duration>,
    retry_after: Option<String>,
    record: Option<RecordedRequest>,
}

enum HeadError {
    Bad(&'static str),
    TooLarge(&'static str),
}

/// Serve one connection until it closes or `killed` changes (`stop_listening`).
async fn serve_conn(
    shared: Arc<Shared>,
    sock: TcpStream,
    mut killed: tokio::sync::watch::Receiver<u64>,
) {
    shared.accepted.fetch_add(1, Ordering::Relaxed);
    if shared.current_mode() == Mode::ResetOnAccept {
        let _ = sock.set_zero_linger();
        return;
    }
    let _ = sock.set_nodelay(true);
    shared.active.fetch_add(1, Ordering::Relaxed);
    let _active = ActiveGuard(shared.clone());
    let mut conn = Conn {
        sock,
        buf: BytesMut::with_capacity(READ_RESERVE),
        out: Vec::with_capacity(1024),
        scratch: Vec::with_capacity(1024),
        chunked_body: Vec::new(),
    };
    loop {
        let next = tokio::select! {
            // Kill first: a request that arrives after `stop_listening` on a pooled
            // connection must never be served.
            biased;
            _ = killed.changed() => Next::Abort,
            n = conn.serve_one(&shared) => n,
        };
        match next {
            Next::KeepAlive => {}
            Next::Close => {
                linger_close(&mut conn.sock).await;
                return;
            }
            Next::Abort => return,
        }
    }
}

/// Half-close and drain briefly so the peer reads our last response instead of a RST.
async fn linger_close(sock: &mut TcpStream) {
    let _ = sock.shutdown().await;
    let drain = async {
        let mut b = [0u8; 4096];
        let mut total = 0usize;
        while total < BIG_BUFFER {
            match sock.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
}

/// Read and discard until the peer closes ([`Mode::Hang`]).
async fn hang(sock: &mut TcpStream) {
    let mut b = [0u8; 4096];
    loop {
        match sock.read(&mut b).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

struct Conn {
    sock: TcpStream,
    buf: BytesMut,
    out: Vec<u8>,
    scratch: Vec<u8>,
    chunked_body: Vec<u8>,
}

impl Conn {
    async fn read_more(&mut self, want: usize) -> bool {
        self.buf.reserve(want.max(READ_RESERVE));
        matches!(self.sock.read_buf(&mut self.buf).await, Ok(n) if n > 0)
    }

    async fn reject(&mut self, sh: &Shared, status: u16, msg: &str) -> Next {
        self.out.clear();
        push_error(
            &mut self.out,
            &mut self.scratch,
            sh,
            status,
            msg,
            None,
            true,
        );
        let _ = self.sock.write_all(&self.out).await;
        Next::Close
    }

    async fn serve_one(&mut self, sh: &Shared) -> Next {
        // --- head
        let mut head = loop {
            if !self.buf.is_empty() {
                match parse_head(sh, &self.buf) {
                    Ok(Some((head, n))) => {
                        self.buf.advance(n);
                        break head;
                    }
                    Ok(None) if self.buf.len() > MAX_HEAD_BYTES => {
                        return self
                            .reject(sh, 413, "request head larger than 64 KiB")
                            .await;
                    }
                    Ok(None) => {}
                    Err(HeadError::Bad(msg)) => return self.reject(sh, 400, msg).await,
                    Err(HeadError::TooLarge(msg)) => return self.reject(sh, 413, msg).await,
                }
            }
            if !self.read_more(READ_RESERVE).await {
                return Next::Abort;
            }
        };

        // --- body
        let needs_body = !matches!(head.body, BodyKind::None);
        if head.expect_continue
            && needs_body
            && self.buf.is_empty()
            && self
                .sock
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return Next::Abort;
        }
        let consumed = match head.body {
            BodyKind::None => 0,
            BodyKind::Length(n) => {
                while self.buf.len() < n {
                    let want = (n - self.buf.len()).min(BIG_BUFFER);
                    if !self.read_more(want).await {
                        return Next::Abort;
                    }
                }
                n
            }
            BodyKind::Chunked => {
                self.chunked_body.clear();
                let mut dec = Dechunker::default();
                loop {
                    match dec.feed(&mut self.buf, &mut self.chunked_body) {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(HeadError::Bad(msg)) => return self.reject(sh, 400, msg).await,
                        Err(HeadError::TooLarge(msg)) => return self.reject(sh, 413, msg).await,
                    }
                    if !self.read_more(64 * 1024).await {
                        return Next::Abort;
                    }
                }
                0
            }
        };
        let Conn {
            sock,
            buf,
            out,
            scratch,
            chunked_body,
        } = self;
        let body: &[u8] = match head.body {
            BodyKind::Chunked => chunked_body,
            _ => &buf[..consumed],
        };
        if let Some(mut rec) = head.record.take() {
            rec.body = body.to_vec();
            *lock(&sh.last) = Some(rec);
        }

        let next = respond(sh, &head, body, sock, out, scratch).await;

        buf.advance(consumed);
        if buf.is_empty() && buf.capacity() > BIG_BUFFER {
            *buf = BytesMut::with_capacity(READ_RESERVE);
        }
        if chunked_body.capacity() > BIG_BUFFER {
            *chunked_body = Vec::new();
        }
        if out.capacity() > BIG_BUFFER {
            *out = Vec::with_capacity(1024);
        }
        if scratch.capacity() > BIG_BUFFER {
            *scratch = Vec::with_capacity(1024);
        }
        next
    }
}

fn header_str(v: &[u8]) -> Option<&str> {
    std::str::from_utf8(v).ok().map(str::trim)
}

fn has_token(v: &[u8], token: &str) -> bool {
    header_str(v).is_some_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn route(method: &str, path: &str) -> Endpoint {
    let post = method == "POST";
    let ep = if path.ends_with("/chat/completions") {
        Endpoint::Chat
    } else if path.ends_with("/completions") {
        Endpoint::Completions
    } else if path.ends_with("/embeddings") {
        Endpoint::Embeddings
    } else if path.ends_with("/messages") {
        Endpoint::Messages
    } else if path.ends_with("/models") {
        return if method == "GET" {
            Endpoint::Models
        } else {
            Endpoint::NotFound
        };
    } else {
        Endpoint::NotFound
    };
    if post {
        ep
    } else {
        Endpoint::NotFound
    }
}

fn parse_head(sh: &Shared, buf: &[u8]) -> Result<Option<(Head, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooLarge("too many request headers"))
        }
        Err(_) => return Err(HeadError::Bad("malformed HTTP request")),
    };
    if n > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge("request head larger than 64 KiB"));
    }
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("/");
    let path = target.split('?').next().unwrap_or(target);
    let http10 = req.version == Some(0);
    // Answers always carry a body; closing keeps HEAD clients in sync.
    let head_method = method.eq_ignore_ascii_case("HEAD");

    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = http10 || head_method;
    let mut expect_continue = false;
    let mut auth_ok = sh.expected_api_key.is_none();
    let mut mode_raw: Option<&[u8]> = None;
    let mut bad_override: Option<String> = None;
    let mut delay = None;
    let mut chunks = None;
    let mut interval = None;
    let mut retry_after = None;

    for h in req.headers.iter() {
        let name = h.name;
        let v = h.value;
        if name.eq_ignore_ascii_case("content-length") {
            let len = header_str(v)
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(HeadError::Bad("invalid Content-Length"))?;
            if len > MAX_BODY_BYTES as u64 {
                return Err(HeadError::TooLarge("request body larger than 64 MiB"));
            }
            let len = len as usize;
            if content_length.is_some_and(|prev| prev != len) {
                return Err(HeadError::Bad("conflicting Content-Length headers"));
            }
            content_length = Some(len);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header_str(v)
                .and_then(|s| s.rsplit(',').next())
                .map(str::trim);
            if last.is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
                chunked = true;
            } else {
                return Err(HeadError::Bad("unsupported Transfer-Encoding"));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            if has_token(v, "close") {
                close = true;
            } else if http10 && !head_method && has_token(v, "keep-alive") {
                close = false;
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = has_token(v, "100-continue");
        } else if let Some(key) = name
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("x-mock-"))
            .and_then(|_| name.get(7..))
        {
            let num = || header_str(v).and_then(|s| s.parse::<u64>().ok());
            if key.eq_ignore_ascii_case("mode") {
                mode_raw = Some(v);
            } else if key.eq_ignore_ascii_case("delay-ms") {
                match num() {
                    Some(ms) => delay = Some(Duration::from_millis(ms)),
                    None => bad_override = Some("invalid x-mock-delay-ms".to_string()),
                }
            } else if key.eq_ignore_ascii_case("chunks") {
                match num() {
                    Some(c) => chunks = Some(c.min(u64::from(MAX_CHUNKS)) as u32),
                    None => bad_override = Some("invalid x-mock-chunks".to_string()),
                }
            } else if key.eq_ignore_ascii_case("interval-ms") {
                match num() {
                    Some(ms) => interval = Some(Duration::from_millis(ms)),
                    None => bad_override = Some("invalid x-mock-interval-ms".to_string()),
                }
            } else if key.eq_ignore_ascii_case("retry-after") {
                retry_after = header_str(v).map(str::to_string);
            }
        } else if !auth_ok {
            if let Some(key) = sh.expected_api_key.as_deref() {
                if name.eq_ignore_ascii_case("authorization") {
                    let given = header_str(v).and_then(|s| {
                        let (scheme, rest) = s.split_once(' ')?;
                        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
                    });
                    auth_ok = given == Some(key);
                } else if name.eq_ignore_ascii_case("x-api-key")
                    || name.eq_ignore_ascii_case("api-key")
                {
                    auth_ok = header_str(v) == Some(key);
                }
            }
        }
    }

    let mode = match mode_raw {
        None => None,
        Some(raw) => match header_str(raw).map(Mode::from_str) {
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                bad_override = Some(format!("x-mock-mode: {e}"));
                None
            }
            None => {
                bad_override = Some("x-mock-mode is not UTF-8".to_string());
                None
            }
        },
    };

    let body = if chunked {
        // RFC 9112: with both, Transfer-Encoding wins and the connection must close.
        if content_length.is_some() {
            close = true;
        }
        BodyKind::Chunked
    } else {
        match content_length {
            Some(0) | None => BodyKind::None,
            Some(n) => BodyKind::Length(n),
        }
    };

    sh.count_request(path);
    let record = sh.record.load(Ordering::Relaxed).then(|| RecordedRequest {
        method: method.to_string(),
        path: target.to_string(),
        headers: req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    });

    Ok(Some((
        Head {
            endpoint: route(method, path),
            body,
            close,
            expect_continue,
            auth_ok,
            mode,
            bad_override,
            delay,
            chunks,
            interval,
            retry_after,
            record,
        },
        n,
    )))
}

/// Incremental decoder for `Transfer-Encoding: chunked` request bodies.
#[derive(Default)]
struct Dechunker {
    state: ChunkState,
    trailer_bytes: usize,
}

#[derive(Default, Clone, Copy)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
}

impl Dechunker {
    /// Consume what `buf` holds; decoded bytes go to `out`. `Ok(true)` once the
    /// terminating chunk and trailers are read.
    fn feed(&mut self, buf: &mut BytesMut, out: &mut Vec<u8>) -> Result<bool, HeadError> {
        loop {
            match self.state {
                ChunkState::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        buf.advance(n);
                        if size == 0 {
                            self.state = ChunkState::Trailer;
                        } else if size > (MAX_BODY_BYTES - out.len()) as u64 {
                            return Err(HeadError::TooLarge("request body larger than 64 MiB"));
                        } else {
                            self.state = ChunkState::Data(size as usize);
                        }
                    }
                    Ok(httparse::Status::Partial) => {
                        if buf.len() > 1024 {
                            return Err(HeadError::Bad("invalid chunk size line"));
                        }
                        return Ok(false);
                    }
                    Err(_) => return Err(HeadError::Bad("invalid chunk size")),
                },
                ChunkState::Data(rem) => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    let take = rem.min(buf.len());
                    out.extend_from_slice(&buf[..take]);
                    buf.advance(take);
                    self.state = if take == rem {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(rem - take)
                    };
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(false);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(HeadError::Bad("missing CRLF after chunk data"));
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => match buf.windows(2).position(|w| w == b"\r\n") {
                    Some(i) => {
                        buf.advance(i + 2);
                        self.trailer_bytes += i + 2;
                        if i == 0 {
                            self.state = ChunkState::Done;
                        } else if self.trailer_bytes > MAX_HEAD_BYTES {
                            return Err(HeadError::TooLarge("chunked trailers too large"));
                        }
                    }
                    None => {
                        if buf.len() + self.trailer_bytes > MAX_HEAD_BYTES {
                            return Err(HeadError::TooLarge("chunked trailers too large"));
                        }
                        return Ok(false);
                    }
                },
                ChunkState::Done => return Ok(true),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct ReqFields<'a> {
    /// Borrowed from the body unless it contains escapes; `null` / absent → "".
    #[serde(borrow, default, deserialize_with = "de_model")]
    model: Cow<'a, str>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

fn de_model<'de, D>(d: D) -> Result<Cow<'de, str>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a model name string or null")
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_string()))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_str(self)
        }
    }
    d.deserialize_option(V)
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    CloseAfter(u32),
    Garbage,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    Chat,
    Legacy,
    Messages,
}

/// Per-answer values shared by the body builders.
struct Answer {
    id: u64,
    created: u64,
    model_json: Vec<u8>,
    p: u64,
    c: u32,
    include_usage: bool,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn keep(close: bool) -> Next {
    if close {
        Next::Close
    } else {
        Next::KeepAlive
    }
}

async fn send(sock: &mut TcpStream, out: &[u8], close: bool) -> Next {
    match sock.write_all(out).await {
        Ok(()) => keep(close),
        Err(_) => Next::Abort,
    }
}

async fn respond(
    sh: &Shared,
    head: &Head,
    body: &[u8],
    sock: &mut TcpStream,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Next {
    out.clear();
    let close = head.close;
    if let Some(msg) = &head.bad_override {
        push_error(out, scratch, sh, 400, msg, None, close);
        return send(sock, out, close).await;
    }
    let mode = match &head.mode {
        Some(m) => m.clone(),
        None => sh.current_mode(),
    };
    match mode {
        Mode::Hang => {
            hang(sock).await;
            return Next::Abort;
        }
        Mode::ResetOnAccept => {
            let _ = sock.set_zero_linger();
            return Next::Abort;
        }
        _ => {}
    }
    let delay = head.delay.or(match mode {
        Mode::SlowHeaders(d) => Some(d),
        _ => None,
    });
    if let Some(d) = delay.filter(|d| !d.is_zero()) {
        tokio::time::sleep(d).await;
    }
    match &mode {
        Mode::Status(s) => {
            let msg = if *s == 429 {
                "Rate limit reached (mock)"
            } else {
                "Mock upstream failure"
            };
            push_error(
                out,
                scratch,
                sh,
                *s,
                msg,
                head.retry_after.as_deref(),
                close,
            );
            return send(sock, out, close).await;
        }
        Mode::RateLimited { retry_after } => {
            let ra = head.retry_after.as_deref().or(retry_after.as_deref());
            push_error(
                out,
                scratch,
                sh,
                429,
                "Rate limit reached (mock)",
                ra,
                close,
            );
            return send(sock, out, close).await;
        }
        _ => {}
    }
    if !head.auth_ok {
        push_error(
            out,
            scratch,
            sh,
            401,
            "Incorrect API key provided (mock)",
            None,
            close,
        );
        return send(sock, out, close).await;
    }
    let fault = match mode {
        Mode::CloseMidStream { after_chunks } => Fault::CloseAfter(after_chunks),
        Mode::Garbage => Fault::Garbage,
        _ => Fault::None,
    };

    let endpoint = head.endpoint;
    if endpoint == Endpoint::NotFound {
        push_error(
            out,
            scratch,
            sh,
            404,
            "Unknown endpoint (mock)",
            None,
            close,
        );
        return send(sock, out, close).await;
    }
    if endpoint == Endpoint::Models {
        scratch.clear();
        scratch.extend_from_slice(&sh.models_body);
        return send_json(sock, out, scratch, sh, fault, close).await;
    }

    let trimmed = body.iter().all(u8::is_ascii_whitespace);
    let fields = if trimmed {
        ReqFields {
            model: Cow::Borrowed(""),
            stream: None,
            stream_options: None,
        }
    } else {
        match serde_json::from_slice::<ReqFields<'_>>(body) {
            Ok(f) => f,
            Err(_) => {
                push_error(
                    out,
                    scratch,
                    sh,
                    400,
                    "We could not parse the JSON body of your request (mock)",
                    None,
                    close,
                );
                return send(sock, out, close).await;
            }
        }
    };
    let model: &str = if fields.model.is_empty() {
        &sh.default_model
    } else {
        &fields.model
    };
    let mut model_json = Vec::with_capacity(model.len() + 2);
    push_json_str(&mut model_json, model);
    let ans = Answer {
        id: sh.next_id.fetch_add(1, Ordering::Relaxed),
        created: unix_now(),
        model_json,
        p: body.len() as u64 / 4 + 1,
        c: head
            .chunks
            .unwrap_or_else(|| sh.chunks.load(Ordering::Relaxed)),
        include_usage: fields
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
    };
    let stream = fields.stream.unwrap_or(false) && endpoint != Endpoint::Embeddings;
    if stream {
        let interval = head
            .interval
            .unwrap_or_else(|| Duration::from_nanos(sh.interval_ns.load(Ordering::Relaxed)));
        let kind = match endpoint {
            Endpoint::Completions => StreamKind::Legacy,
            Endpoint::Messages => StreamKind::Messages,
            _ => StreamKind::Chat,
        };
        return write_stream(sock, out, scratch, sh, kind, &ans, fault, interval, close).await;
    }
    scratch.clear();
    match endpoint {
        Endpoint::Chat => push_chat_body(scratch, sh, &ans),
        Endpoint::Completions => push_legacy_body(scratch, sh, &ans),
        Endpoint::Embeddings => push_embeddings_body(scratch, &ans),
        _ => push_messages_body(scratch, &ans),
    }
    send_json(sock, out, scratch, sh, fault, close).await
}

/// 200 JSON answer with `body`, honouring the non-stream faults.
async fn send_json(
    sock: &mut TcpStream,
    out: &mut Vec<u8>,
    body: &[u8],
    sh: &Shared,
    fault: Fault,
    close: bool,
) -> Next {
    out.clear();
    match fault {
        Fault::Garbage => {
            push_head(
                out,
                sh,
                200,
                b"application/json",
                Some(GARBAGE_JSON.len()),
                close,
                None,
            );
            out.extend_from_slice(GARBAGE_JSON);
            send(sock, out, close).await
        }
        Fault::CloseAfter(_) => {
            push_head(
                out,
                sh,
                200,
                b"application/json",
                Some(body.len()),
                false,
                None,
            );
            out.extend_from_slice(&body[..body.len() / 2]);
            let _ = sock.write_all(out).await;
            let _ = sock.shutdown().await;
            Next::Abort
        }
        Fault::None => {
            push_head(
                out,
                sh,
                200,
                b"application/json",
                Some(body.len()),
                close,
                None,
            );
            out.extend_from_slice(body);
            send(sock, out, close).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_stream(
    sock: &mut TcpStream,
    out: &mut Vec<u8>,
    ev: &mut Vec<u8>,
    sh: &Shared,
    kind: StreamKind,
    ans: &Answer,
    fault: Fault,
    interval: Duration,
    close: bool,
) -> Next {
    out.clear();
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n",
    );
    out.extend_from_slice(&sh.name_header);
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");

    // The part every OpenAI-style chunk starts with.
    let mut prefix = Vec::with_capacity(160);
    match kind {
        StreamKind::Chat => {
            prefix.extend_from_slice(b"{\"id\":\"chatcmpl-mock-");
            push_u64(&mut prefix, ans.id);
            prefix.extend_from_slice(b"\",\"object\":\"chat.completion.chunk\",\"created\":");
        }
        StreamKind::Legacy => {
            prefix.extend_from_slice(b"{\"id\":\"cmpl-mock-");
            push_u64(&mut prefix, ans.id);
            prefix.extend_from_slice(b"\",\"object\":\"text_completion\",\"created\":");
        }
        StreamKind::Messages => {}
    }
    if kind != StreamKind::Messages {
        push_u64(&mut prefix, ans.created);
        prefix.extend_from_slice(b",\"model\":");
        prefix.extend_from_slice(&ans.model_json);
        prefix.extend_from_slice(b",\"system_fingerprint\":");
        prefix.extend_from_slice(&sh.name_json);
        prefix.extend_from_slice(b",\"choices\":[");
    }

    if kind == StreamKind::Messages {
        push_sse(out, ev, Some("message_start"), |e| {
            e.extend_from_slice(b"{\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
            e.extend_from_slice(&ans.model_json);
            e.extend_from_slice(b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":");
            push_u64(e, ans.p);
            e.extend_from_slice(b",\"output_tokens\":0}}}");
        });
        push_sse(out, ev, Some("content_block_start"), |e| {
            e.extend_from_slice(b"{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
        });
    }

    for i in 0..ans.c {
        if i > 0 && !interval.is_zero() {
            if sock.write_all(out).await.is_err() {
                return Next::Abort;
            }
            out.clear();
            tokio::time::sleep(interval).await;
        }
        if fault == Fault::CloseAfter(i) {
            return abort_stream(sock, out).await;
        }
        push_sse(
            out,
            ev,
            event_name(kind, "content_block_delta"),
            |e| match kind {
                StreamKind::Chat => {
                    e.extend_from_slice(&prefix);
                    e.extend_from_slice(b"{\"index\":0,\"delta\":{");
                    if i == 0 {
                        e.extend_from_slice(b"\"role\":\"assistant\",");
                    }
                    e.extend_from_slice(b"\"content\":\"tok");
                    push_u64(e, u64::from(i));
                    e.extend_from_slice(b" \"},\"logprobs\":null,\"finish_reason\":null}]}");
                }
                StreamKind::Legacy => {
                    e.extend_from_slice(&prefix);
                    e.extend_from_slice(b"{\"text\":\"tok");
                    push_u64(e, u64::from(i));
                    e.extend_from_slice(
                        b" \",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}",
                    );
                }
                StreamKind::Messages => {
                    e.extend_from_slice(b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tok");
                    push_u64(e, u64::from(i));
                    e.extend_from_slice(b" \"}}");
                }
            },
        );
        if fault == Fault::Garbage && i == 0 {
            if !interval.is_zero() {
                // Let the good event reach the client first: the garbage is mid-stream.
                if sock.write_all(out).await.is_err() {
                    return Next::Abort;
                }
                out.clear();
                tokio::time::sleep(interval).await;
            }
            push_chunk(out, GARBAGE_SSE);
        }
    }
    if let Fault::CloseAfter(n) = fault {
        if n >= ans.c {
            return abort_stream(sock, out).await;
        }
    }
    if fault == Fault::Garbage && ans.c == 0 {
        push_chunk(out, GARBAGE_SSE);
    }

    match kind {
        StreamKind::Chat | StreamKind::Legacy => {
            push_sse(out, ev, None, |e| {
                e.extend_from_slice(&prefix);
                if kind == StreamKind::Chat {
                    e.extend_from_slice(b"{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}");
                } else {
                    e.extend_from_slice(
                        b"{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}]}",
                    );
                }
            });
            if ans.include_usage {
                push_sse(out, ev, None, |e| {
                    e.extend_from_slice(&prefix);
                    e.extend_from_slice(b"],\"usage\":");
                    push_usage(e, ans);
                    e.push(b'}');
                });
            }
            push_sse(out, ev, None, |e| e.extend_from_slice(b"[DONE]"));
        }
        StreamKind::Messages => {
            push_sse(out, ev, Some("content_block_stop"), |e| {
                e.extend_from_slice(b"{\"type\":\"content_block_stop\",\"index\":0}");
            });
            push_sse(out, ev, Some("message_delta"), |e| {
                e.extend_from_slice(b"{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":");
                push_u64(e, u64::from(ans.c));
                e.extend_from_slice(b"}}");
            });
            push_sse(out, ev, Some("message_stop"), |e| {
                e.extend_from_slice(b"{\"type\":\"message_stop\"}");
            });
        }
    }
    out.extend_from_slice(b"0\r\n\r\n");
    send(sock, out, close).await
}

fn event_name(kind: StreamKind, name: &'static str) -> Option<&'static str> {
    (kind == StreamKind::Messages).then_some(name)
}

async fn abort_stream(sock: &mut TcpStream, out: &[u8]) -> Next {
    if !out.is_empty() {
        let _ = sock.write_all(out).await;
    }
    let _ = sock.shutdown().await;
    Next::Abort
}

// ---------------------------------------------------------------------------
// Body / framing builders (no serde_json::Value on the hot path)
// ---------------------------------------------------------------------------

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Mock Status",
    }
}

fn push_head(
    out: &mut Vec<u8>,
    sh: &Shared,
    status: u16,
    content_type: &[u8],
    content_length: Option<usize>,
    close: bool,
    retry_after: Option<&str>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(content_type);
    if let Some(len) = content_length {
        out.extend_from_slice(b"\r\nContent-Length: ");
        push_u64(out, len as u64);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&sh.name_header);
    if let Some(ra) = retry_after {
        out.extend_from_slice(b"Retry-After: ");
        out.extend(ra.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Complete error response (head + OpenAI-shaped body) into `out`.
fn push_error(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    sh: &Shared,
    status: u16,
    message: &str,
    retry_after: Option<&str>,
    close: bool,
) {
    let status = if (100..=599).contains(&status) {
        status
    } else {
        500
    };
    let (etype, code) = match status {
        401 => ("invalid_request_error", "invalid_api_key"),
        404 => ("invalid_request_error", "not_found"),
        413 => ("invalid_request_error", "request_too_large"),
        429 => ("requests", "rate_limit_exceeded"),
        500..=599 => ("server_error", "mock_failure"),
        _ => ("invalid_request_error", "invalid_request"),
    };
    scratch.clear();
    scratch.extend_from_slice(b"{\"error\":{\"message\":");
    push_json_str(scratch, message);
    scratch.extend_from_slice(b",\"type\":\"");
    scratch.extend_from_slice(etype.as_bytes());
    scratch.extend_from_slice(b"\",\"param\":null,\"code\":\"");
    scratch.extend_from_slice(code.as_bytes());
    scratch.extend_from_slice(b"\"}}");
    push_head(
        out,
        sh,
        status,
        b"application/json",
        Some(scratch.len()),
        close,
        retry_after,
    );
    out.extend_from_slice(scratch);
}

fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    push_hex(out, data.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// One SSE event (`event:` line optional) framed as its own HTTP chunk.
fn push_sse(
    out: &mut Vec<u8>,
    ev: &mut Vec<u8>,
    event: Option<&str>,
    data: impl FnOnce(&mut Vec<u8>),
) {
    ev.clear();
    if let Some(name) = event {
        ev.extend_from_slice(b"event: ");
        ev.extend_from_slice(name.as_bytes());
        ev.push(b'\n');
    }
    ev.extend_from_slice(b"data: ");
    data(ev);
    ev.extend_from_slice(b"\n\n");
    push_chunk(out, ev);
}

fn push_reply_text(out: &mut Vec<u8>, c: u32) {
    for i in 0..c {
        out.extend_from_slice(b"tok");
        push_u64(out, u64::from(i));
        out.push(b' ');
    }
}

fn push_usage(out: &mut Vec<u8>, ans: &Answer) {
    out.extend_from_slice(b"{\"prompt_tokens\":");
    push_u64(out, ans.p);
    out.extend_from_slice(b",\"completion_tokens\":");
    push_u64(out, u64::from(ans.c));
    out.extend_from_slice(b",\"total_tokens\":");
    push_u64(out, ans.p + u64::from(ans.c));
    out.push(b'}');
}

fn push_chat_body(out: &mut Vec<u8>, sh: &Shared, ans: &Answer) {
    out.extend_from_slice(b"{\"id\":\"chatcmpl-mock-");
    push_u64(out, ans.id);
    out.extend_from_slice(b"\",\"object\":\"chat.completion\",\"created\":");
    push_u64(out, ans.created);
    out.extend_from_slice(b",\"model\":");
    out.extend_from_slice(&ans.model_json);
    out.extend_from_slice(b",\"system_fingerprint\":");
    out.extend_from_slice(&sh.name_json);
    out.extend_from_slice(
        b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"",
    );
    push_reply_text(out, ans.c);
    out.extend_from_slice(b"\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":");
    push_usage(out, ans);
    out.push(b'}');
}

fn push_legacy_body(out: &mut Vec<u8>, sh: &Shared, ans: &Answer) {
    out.extend_from_slice(b"{\"id\":\"cmpl-mock-");
    push_u64(out, ans.id);
    out.extend_from_slice(b"\",\"object\":\"text_completion\",\"created\":");
    push_u64(out, ans.created);
    out.extend_from_slice(b",\"model\":");
    out.extend_from_slice(&ans.model_json);
    out.extend_from_slice(b",\"system_fingerprint\":");
    out.extend_from_slice(&sh.name_json);
    out.extend_from_slice(b",\"choices\":[{\"text\":\"");
    push_reply_text(out, ans.c);
    out.extend_from_slice(
        b"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":",
    );
    push_usage(out, ans);
    out.push(b'}');
}

fn push_embeddings_body(out: &mut Vec<u8>, ans: &Answer) {
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.1,0.2,0.3]}],\"model\":");
    out.extend_from_slice(&ans.model_json);
    out.extend_from_slice(b",\"usage\":{\"prompt_tokens\":");
    push_u64(out, ans.p);
    out.extend_from_slice(b",\"total_tokens\":");
    push_u64(out, ans.p);
    out.extend_from_slice(b"}}");
}

fn push_messages_body(out: &mut Vec<u8>, ans: &Answer) {
    out.extend_from_slice(
        b"{\"id\":\"msg_mock\",\"type\":\"message\",\"role\":\"assistant\",\"model\":",
    );
    out.extend_from_slice(&ans.model_json);
    out.extend_from_slice(b",\"content\":[{\"type\":\"text\",\"text\":\"");
    push_reply_text(out, ans.c);
    out.extend_from_slice(
        b"\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":",
    );
    push_u64(out, ans.p);
    out.extend_from_slice(b",\"output_tokens\":");
    push_u64(out, u64::from(ans.c));
    out.extend_from_slice(b"}}");
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut b = [0u8; 20];
    let mut i = b.len();
    loop {
        i -= 1;
        b[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&b[i..]);
}

fn push_hex(out: &mut Vec<u8>, mut n: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut b = [0u8; 16];
    let mut i = b.len();
    loop {
        i -= 1;
        b[i] = DIGITS[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&b[i..]);
}

/// `s` as a quoted JSON string.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn mode_parsing_round_trips() {
        for s in [
            "ok", "500", "503", "429", "429:7", "hang", "close:3", "garbage", "slow:250", "reset",
        ] {
            let m: Mode = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
        }
        assert_eq!(
            "close".parse::<Mode>().unwrap(),
            Mode::CloseMidStream { after_chunks: 1 }
        );
        assert_eq!(
            "SLOW".parse::<Mode>().unwrap(),
            Mode::SlowHeaders(DEFAULT_SLOW)
        );
        assert_eq!(
            "429:Wed, 21 Oct 2015".parse::<Mode>().unwrap(),
            Mode::RateLimited {
                retry_after: Some("Wed, 21 Oct 2015".to_string())
            }
        );
        assert!("nope".parse::<Mode>().is_err());
        assert!("700".parse::<Mode>().is_err());
        assert!("slow:x".parse::<Mode>().is_err());
    }

    #[test]
    fn request_fields_borrow_the_model() {
        let f: ReqFields<'_> =
            serde_json::from_slice(br#"{"model":"gpt","stream":true,"x":[1,{"y":2}]}"#).unwrap();
        assert!(matches!(f.model, Cow::Borrowed("gpt")));
        assert_eq!(f.stream, Some(true));
        let f: ReqFields<'_> = serde_json::from_slice(br#"{"model":"a\"b"}"#).unwrap();
        assert_eq!(f.model, "a\"b");
        let f: ReqFields<'_> = serde_json::from_slice(br#"{"model":null}"#).unwrap();
        assert_eq!(f.model, "");
        assert!(serde_json::from_slice::<ReqFields<'_>>(br#"{"model":5}"#).is_err());
    }

    #[test]
    fn json_string_escaping() {
        let mut v = Vec::new();
        push_json_str(&mut v, "a\"b\\c\n\u{1}é");
        let back: String = serde_json::from_slice(&v).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{1}é");
    }

    #[test]
    fn number_formatting() {
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            let mut v = Vec::new();
            push_u64(&mut v, n);
            assert_eq!(v, n.to_string().into_bytes());
        }
        for n in [0usize, 1, 15, 16, 255, 4096, 123_456] {
            let mut v = Vec::new();
            push_hex(&mut v, n);
            assert_eq!(v, format!("{n:x}").into_bytes());
        }
    }

    #[test]
    fn dechunker_handles_split_input() {
        let raw = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for split in 1..raw.len() {
            let mut dec = Dechunker::default();
            let mut out = Vec::new();
            let mut buf = BytesMut::from(&raw[..split]);
            let mut done = matches!(dec.feed(&mut buf, &mut out), Ok(true));
            buf.extend_from_slice(&raw[split..]);
            if !done {
                done = matches!(dec.feed(&mut buf, &mut out), Ok(true));
            }
            assert!(done, "split {split}");
            assert_eq!(out, b"Wikipedia");
            assert_eq!(&buf[..], b"NEXT");
        }
        let mut buf = BytesMut::from(&b"zz\r\n"[..]);
        assert!(Dechunker::default()
            .feed(&mut buf, &mut Vec::new())
            .is_err());
    }

    #[test]
    fn routing_matches_suffixes() {
        assert!(route("POST", "/v1/chat/completions") == Endpoint::Chat);
        assert!(route("POST", "/openai/v1/chat/completions") == Endpoint::Chat);
        assert!(route("POST", "/v1/completions") == Endpoint::Completions);
        assert!(route("POST", "/v1/embeddings") == Endpoint::Embeddings);
        assert!(route("POST", "/anthropic/v1/messages") == Endpoint::Messages);
        assert!(route("GET", "/v1/models") == Endpoint::Models);
        assert!(route("GET", "/v1/chat/completions") == Endpoint::NotFound);
        assert!(route("POST", "/v1/models") == Endpoint::NotFound);
        assert!(route("POST", "/v1/other") == Endpoint::NotFound);
    }
}
