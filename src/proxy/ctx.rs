//! Per-request state carried through the Pingora hooks.

use crate::error::ApiError;
use crate::routing::{BackendState, Outcome};
use crate::snapshot::Snapshot;
use crate::usage::{JsonUsageScanner, SseScanner, Usage};
use bytes::Bytes;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::watchdog::Watchdog;

/// Which OpenAI operation a proxied request is (metrics' `gen_ai_operation_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    TextCompletion,
    Embeddings,
}

impl Operation {
    /// OpenTelemetry GenAI operation name.
    pub fn otel_name(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::TextCompletion => "text_completion",
            Operation::Embeddings => "embeddings",
        }
    }
}

/// The validated proxied request: who, which model, and the body to forward.
#[derive(Debug)]
pub struct ProxyRequest {
    pub op: Operation,
    /// Index into `snapshot.users.users`.
    pub user: usize,
    /// Index into `snapshot.table.models`.
    pub model: usize,
    /// The client's body exactly as received.
    pub body: Bytes,
    /// Span of the `model` value (with quotes) in `body`.
    pub model_span: std::ops::Range<usize>,
    /// The request asked for a stream.
    pub stream: bool,
    /// Insertion adding `stream_options.include_usage` (when configured and missing).
    pub include_usage: Option<(std::ops::Range<usize>, &'static [u8])>,
}

/// Keeps a backend's in-flight count and half-open probe slot honest: dropping the
/// attempt (request finished, failed or abandoned) ends it exactly once.
#[derive(Debug)]
pub struct Attempt {
    /// Index into the model's backends.
    pub backend: usize,
    pub state: Arc<BackendState>,
    pub started: Instant,
    pub probe: bool,
    /// Set once the outcome was fed into the backend state.
    pub recorded: bool,
    /// Response headers arrived from this attempt.
    pub got_headers: bool,
}

impl Attempt {
    /// Starts an attempt on `state` (counts it in flight).
    pub fn begin(backend: usize, state: Arc<BackendState>, probe: bool) -> Attempt {
        state.begin_request();
        Attempt {
            backend,
            state,
            started: Instant::now(),
            probe,
            recorded: false,
            got_headers: false,
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.state.end_request();
        if self.probe && !self.recorded {
            self.state.release_probe();
        }
    }
}

/// Holds one unit of `berry_inflight_requests{model}`.
#[derive(Debug)]
pub struct InflightGuard(prometheus::IntGauge);

impl InflightGuard {
    /// Counts one request of `model` in flight until dropped.
    pub fn new(model: &str) -> Self {
        let g = crate::metrics::INFLIGHT.with_label_values(&[model]);
        g.inc();
        InflightGuard(g)
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// How the response body is being watched.
#[derive(Debug)]
pub enum BodyWatch {
    None,
    Json(Box<JsonUsageScanner>),
    Sse(Box<SseScanner>),
}

/// Everything one request accumulates on its way through the hooks.
pub struct RequestCtx {
    pub started: Instant,
    /// `x-request-id` (client's when valid, else generated).
    pub request_id: String,
    pub snapshot: Option<Arc<Snapshot>>,
    pub request: Option<ProxyRequest>,
    /// The authenticated user (index into `snapshot.users.users`), once known.
    pub user: Option<usize>,
    /// The current attempt's rewritten body (sent by `request_body_filter`).
    pub attempt_body: Bytes,
    /// `attempt_body` went out for the current attempt.
    pub attempt_body_sent: bool,
    /// Backends already tried (indices into the model's backends).
    pub tried: SmallVec<[usize; 4]>,
    /// Attempts started so far.
    pub attempts: u32,
    pub attempt: Option<Attempt>,
    /// Outcome of the latest finished attempt.
    pub last_outcome: Option<Outcome>,
    /// A retryable failure on a reused pooled connection is retried once on the same backend.
    pub stale_retry_used: bool,
    /// Error to answer in `fail_to_proxy` when the proxy loop ends without a response.
    pub local_error: Option<ApiError>,
    /// Final status sent to the client.
    pub status: u16,
    /// Time from request start to upstream response headers of the answering attempt.
    pub ttfb: Option<Duration>,
    /// Gateway-internal time (request processing + response header handling).
    pub overhead: Duration,
    /// When the request body had been read (start of routing work).
    pub body_read_at: Option<Instant>,
    pub watch: BodyWatch,
    pub usage: Option<Usage>,
    /// The upstream body ended normally.
    pub body_complete: bool,
    /// Why the stream was cut after the first byte (message of the final error event).
    pub stream_failure: Option<&'static str>,
    pub watchdog: Option<Watchdog>,
    /// Upstream socket of the current attempt (for the header watchdog).
    pub upstream_fd: Option<i32>,
    pub rng: fastrand::Rng,
    /// The request is for a proxied endpoint (chat, completions, embeddings).
    pub proxied: bool,
    /// Counts the request in `berry_inflight_requests` while held.
    pub inflight: Option<InflightGuard>,
    /// Local endpoint responses are logged at debug level only.
    pub quiet_log: bool,
}

/// Requests with a live context (being served) in this process.
static ACTIVE_REQUESTS: AtomicUsize = AtomicUsize::new(0);

/// Number of requests currently being served (used to exit early on graceful stop).
pub fn active_requests() -> usize {
    ACTIVE_REQUESTS.load(Ordering::Acquire)
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        ACTIVE_REQUESTS.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RequestCtx {
    /// A fresh context (counted in [`active_requests`] until dropped).
    pub fn new() -> Self {
        ACTIVE_REQUESTS.fetch_add(1, Ordering::AcqRel);
        RequestCtx {
            started: Instant::now(),
            request_id: String::new(),
            snapshot: None,
            request: None,
            user: None,
            attempt_body: Bytes::new(),
            attempt_body_sent: false,
            tried: SmallVec::new(),
            attempts: 0,
            attempt: None,
            last_outcome: None,
            stale_retry_used: false,
            local_error: None,
            status: 0,
            ttfb: None,
            overhead: Duration::ZERO,
            body_read_at: None,
            watch: BodyWatch::None,
            usage: None,
            body_complete: false,
            stream_failure: None,
            watchdog: None,
            upstream_fd: None,
            rng: fastrand::Rng::new(),
            proxied: false,
            inflight: None,
            quiet_log: false,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
