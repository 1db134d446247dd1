//! The public handles: [`MockProvider`] and [`MockGuard`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::server::{bind_listener, install, stop_listening};
use crate::state::{lock, Shared};
use crate::{MockOptions, Mode, RecordedRequest};

/// Handle to a running mock provider. Cheap to clone (an `Arc` inside).
///
/// The listening socket is closed when the last handle is dropped; connections that
/// are already open keep being served by their runtime.
///
/// Per-request overrides, read from request headers (tests can steer a mock through
/// the gateway as long as it forwards them):
/// `x-mock-mode` (a [`Mode`] in text form), `x-mock-delay-ms: N` (delay before the
/// response head, on top of any mode), `x-mock-chunks: N`, `x-mock-interval-ms: N`
/// (stream shape), `x-mock-retry-after: V` (value of `Retry-After` on 429s),
/// `x-mock-cache-read: N` / `x-mock-cache-write: N` (prompt tokens read from / written
/// to the cache: Anthropic `cache_read_input_tokens` / `cache_creation_input_tokens`,
/// OpenAI `prompt_tokens_details.cached_tokens`), `x-mock-tool-use: NAME` (answer with a
/// call of that tool of the request; a request whose last input is the tool's output is
/// answered with the text `tool output: <output>` instead), `x-mock-tool-input: {JSON}`
/// (its input),
/// `x-mock-limits: SPEC` (rate-limit headers on the answer, whatever it is; see
/// [`RateLimitHeaders`](crate::RateLimitHeaders)).
/// An unparsable override value gets a 400.
///
/// A gateway that forwards only allow-listed client headers needs the
/// `x-mock-*` headers in the provider's `forward_headers`; otherwise set the mode on
/// the mock itself ([`MockProvider::set_mode`]: every fault is a [`Mode`]).
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

/// Last user handle gone → stop listening (tasks only hold `Arc<Shared>`).
struct LifeToken(Arc<Shared>);

impl Drop for LifeToken {
    fn drop(&mut self) {
        stop_listening(&self.0);
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
        install(&shared, listener);
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
    /// [`MAX_CHUNKS`](crate::MAX_CHUNKS)) and pause between two content events.
    pub fn set_stream_shape(&self, chunks: u32, interval: Duration) {
        self.shared.set_stream_shape(chunks, interval);
    }

    /// Turn request recording ([`MockProvider::last_request`]) on or off.
    pub fn set_recording(&self, on: bool) {
        self.shared.set_recording(on);
    }

    /// Total requests received (heads parsed) since start or the last
    /// [`reset_counters`](Self::reset_counters). Unparsable input and heads rejected
    /// as too large are not counted.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::Relaxed)
    }

    /// Requests whose path (query string excluded) ends with `path_suffix`, e.g.
    /// `hits_for("/chat/completions")`. Note `"/completions"` also matches chat paths.
    pub fn hits_for(&self, path_suffix: &str) -> u64 {
        self.shared.hits_for(path_suffix)
    }

    /// Reset hit counters, per-path counts, the accepted-connection count and the
    /// recorded last request.
    pub fn reset_counters(&self) {
        self.shared.reset_counters();
    }

    /// The last request received (when recording is on).
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.last_request()
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
        stop_listening(&self.shared);
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
        install(&self.shared, listener);
        Ok(())
    }
}
