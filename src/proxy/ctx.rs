//! Per-request state carried through the Pingora hooks, typed by the phase the request is
//! in, so no hook can see a half-built request:
//!
//! * [`RequestPhase::Received`] — `request_filter` has not decided yet;
//! * [`RequestPhase::Local`] — the gateway answered itself (a local endpoint, or a refusal);
//! * [`RequestPhase::Proxied`] — admitted: user, model and body are known, and
//!   [`Proxied::attempt`] is the attempt in progress with its backend resolved once.

pub use super::admitted::ProxyRequest;
use crate::auth::UserEntry;
use crate::clock::now_ms;
use crate::providers::KeyRefusalProbe;
use crate::quota::Grant;
use crate::routing::{Backend, BackendState, ModelRoute, Outcome};
use crate::shared::SharedState;
use crate::snapshot::Snapshot;
use crate::usage::{JsonUsageScanner, SseScanner};
use crate::vocab::ClientApi;
pub use crate::vocab::Operation;
use crate::vocab::TokenUsage;
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::translation::{AnswerTranslator, Translation};
use super::watchdog::Watchdog;

/// One attempt of a proxied request on one backend. Holds the backend's in-flight count
/// and half-open probe slot: dropping the attempt (finished, failed or abandoned) ends
/// them exactly once.
#[derive(Debug)]
pub struct Attempt {
    /// Index into the model's backends (what `tried` records).
    pub index: usize,
    /// The backend this attempt was sent to, resolved when it was selected.
    pub backend: Arc<Backend>,
    pub started: Instant,
    /// This attempt is the half-open circuit's probe.
    pub probe: bool,
    /// The outcome was fed into the backend state.
    pub recorded: bool,
    /// Response headers arrived from this attempt.
    pub got_headers: bool,
    /// The rewritten body for this backend; handed over (left empty) when
    /// `request_body_filter` sends it.
    pub body: Bytes,
    /// `body` went out.
    pub body_sent: bool,
    /// Upstream socket (for the header watchdog), once connected.
    pub upstream_fd: Option<i32>,
    /// Header deadline of an HTTP/1 stream, while armed.
    pub watchdog: Option<Watchdog>,
    /// How this attempt is carried between the client's API and the backend's.
    pub translation: Translation,
    /// Hosted tools the translated request left out (`x-berry-dropped-tools`).
    pub dropped_tools: Vec<String>,
}

impl Attempt {
    /// Starts an attempt on `backend` (counts it in flight).
    pub fn begin(
        index: usize,
        backend: Arc<Backend>,
        probe: bool,
        body: Bytes,
        translation: Translation,
    ) -> Attempt {
        backend.state.begin_request();
        Attempt {
            index,
            backend,
            started: Instant::now(),
            probe,
            recorded: false,
            got_headers: false,
            body,
            body_sent: false,
            upstream_fd: None,
            watchdog: None,
            translation,
            dropped_tools: Vec::new(),
        }
    }

    /// The same attempt, naming the hosted tools its translated request left out.
    pub fn with_dropped_tools(mut self, tools: Vec<String>) -> Attempt {
        self.dropped_tools = tools;
        self
    }

    /// The backend's runtime state.
    pub fn state(&self) -> &BackendState {
        &self.backend.state
    }

    /// Whether the header watchdog fired (the attempt hit its header deadline). Disarms it.
    pub fn take_deadline_fired(&mut self) -> bool {
        self.watchdog.take().is_some_and(|w| w.fired())
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.backend.state.end_request();
        if self.probe && !self.recorded {
            self.backend.state.release_probe();
        }
    }
}

/// Holds one unit of `berry_inflight_requests{model}`.
#[derive(Debug)]
pub struct InflightGuard(prometheus::IntGauge);

impl InflightGuard {
    /// Counts one request of `model` in flight until dropped.
    pub fn new(model: &ModelRoute) -> Self {
        let g = model.metrics.inflight().clone();
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
#[derive(Debug, Default)]
pub enum BodyWatch {
    #[default]
    None,
    Json(Box<JsonUsageScanner>),
    Sse(Box<SseScanner>),
    /// A translated answer (the translator also reads its usage).
    Translate(Box<AnswerTranslator>),
}

/// Most preamble bytes a stream's [`Gate`] holds back; past this the stream is released.
pub const MAX_PREAMBLE: usize = 16 << 10;

/// The commit point of a stream: its preamble (role-only chunks, `message_start`, `ping`,
/// `content_block_start`) is held back until the first content event, so a failure in that
/// window can be retried on another backend without the client seeing two streams.
#[derive(Debug, Default)]
pub enum Gate {
    /// Everything passes (not a stream, or the commit point was reached).
    #[default]
    Open,
    /// Holding these bytes (at most about [`MAX_PREAMBLE`] plus one chunk).
    Closed(BytesMut),
}

impl Gate {
    /// A gate holding a stream until its commit point.
    pub fn closed() -> Gate {
        Gate::Closed(BytesMut::new())
    }

    /// Whether the answer's bytes reach the client as they come.
    pub fn is_open(&self) -> bool {
        matches!(self, Gate::Open)
    }

    /// Passes `body` on, or holds it: while closed the chunk is kept, and when `commit` (the
    /// first content event or the stream's end is in it) or the held bytes exceed
    /// [`MAX_PREAMBLE`], everything held is released in `body` and the gate opens.
    pub fn pass(&mut self, body: &mut Option<Bytes>, commit: bool) {
        let Gate::Closed(held) = self else {
            return;
        };
        if commit && held.is_empty() {
            *self = Gate::Open; // nothing held: the chunk goes as it is
            return;
        }
        if let Some(b) = body.take() {
            held.extend_from_slice(&b);
        }
        if commit || held.len() > MAX_PREAMBLE {
            let released = std::mem::take(held).freeze();
            *body = (!released.is_empty()).then_some(released);
            *self = Gate::Open;
        }
    }

    /// The bytes held back so far (the gate stays as it is, now empty).
    pub fn take_held(&mut self) -> Bytes {
        match self {
            Gate::Open => Bytes::new(),
            Gate::Closed(held) => std::mem::take(held).freeze(),
        }
    }
}

/// The upstream answer being passed to the client (set when its head is let through).
#[derive(Debug, Default)]
pub struct Answer {
    /// Time from request start to the answering attempt's response headers.
    pub ttfb: Duration,
    pub watch: BodyWatch,
    pub usage: Option<TokenUsage>,
    /// The client is sent an event stream.
    pub sse: bool,
    /// Bytes not yet sent when the answer broke (a held preamble, the chunk with an
    /// in-band error event, translated events); the cut sends them first.
    pub held: Option<Bytes>,
    /// The upstream body ended normally.
    pub complete: bool,
    /// Holds a stream's preamble until its commit point.
    pub gate: Gate,
    /// The client may have received part of an event (the stream broke on garbage): the
    /// final error event needs a blank line first.
    pub broke_mid_event: bool,
    /// A provider's failure answer that may be its refusal of the gateway's key in another
    /// shape than 401/403 (Gemini's 400 `API_KEY_INVALID`): the body read so far, held
    /// back with the head until its end decides.
    pub key_refusal_probe: Option<KeyRefusalProbe>,
    /// Bytes of generated text the upstream stream carried so far
    /// ([`content_bytes`](crate::usage::content_bytes)): what an abandoned stream's output
    /// is estimated from.
    pub content_bytes: u64,
    /// `usage` holds an estimate (a stream that ended before the backend reported all of
    /// it), not only the backend's own counts.
    pub estimated: bool,
    /// A passed-through stream whose usage-only chunk the client must not get (it did not
    /// ask for usage): the bytes of the event not complete yet, held back until it is
    /// known not to be that chunk ([`SseScanner::feed_hiding_usage`]). `None`: the stream
    /// goes as it comes.
    pub usage_hold: Option<BytesMut>,
}

impl Answer {
    /// Whether the client is being sent an event stream.
    pub fn is_sse(&self) -> bool {
        self.sse
    }

    /// Whether the stream already carries the client's error event (an upstream one,
    /// passed on or translated). An upstream error event in a chunk dropped as garbage
    /// never reached the client.
    pub fn sent_error_event(&self) -> bool {
        match &self.watch {
            BodyWatch::Translate(t) => t.sent_error_event(),
            BodyWatch::Sse(s) => s.saw_error_event() && !self.broke_mid_event,
            _ => false,
        }
    }

    /// Whether content of this answer reached the client (not just a held preamble).
    pub fn released(&self) -> bool {
        self.gate.is_open()
    }

    /// Whether the bytes the client has of this stream may end inside an event, so a final
    /// error event must start with a blank line.
    pub fn ends_mid_event(&self) -> bool {
        self.broke_mid_event || matches!(&self.watch, BodyWatch::Sse(s) if s.is_mid_event())
    }

    /// Everything of this answer not sent yet, in order: bytes kept when it broke, then a
    /// preamble still held back.
    pub fn take_unsent(&mut self) -> Vec<u8> {
        let mut out = self.held.take().map(Vec::from).unwrap_or_default();
        out.extend_from_slice(&self.gate.take_held());
        out
    }
}

/// A request the gateway answered itself.
#[derive(Debug)]
pub struct LocalAnswer {
    pub snapshot: Arc<Snapshot>,
    /// A proxied endpoint was asked for and refused (counted in `berry_requests_total`).
    pub refused: bool,
    /// The authenticated user, when known before the refusal.
    pub user: Option<Arc<UserEntry>>,
    /// Health checks and scrapes are logged at debug level only.
    pub quiet: bool,
}

impl LocalAnswer {
    /// A local answer on `snapshot`; `refused`: of a proxied endpoint; `quiet`: logged at
    /// debug level. The user is set once known.
    pub fn new(snapshot: Arc<Snapshot>, refused: bool, quiet: bool) -> Self {
        LocalAnswer {
            snapshot,
            refused,
            user: None,
            quiet,
        }
    }
}

/// An admitted request on its way through the upstream attempts.
#[derive(Debug)]
pub struct Proxied {
    pub snapshot: Arc<Snapshot>,
    pub request: ProxyRequest,
    /// Backends already tried (indices into the model's backends).
    pub tried: SmallVec<[usize; 4]>,
    /// Attempts started so far.
    pub attempts: u32,
    /// The one free retry for a stale pooled connection was used.
    pub stale_retry_used: bool,
    /// Outcome of the latest finished attempt.
    pub last_outcome: Option<Outcome>,
    /// The attempt in progress (or the last one, until the request ends).
    pub attempt: Option<Attempt>,
    /// The answer being passed to the client, once its head was let through.
    pub answer: Option<Answer>,
    /// Counts the request in `berry_inflight_requests` while held.
    pub inflight: Option<InflightGuard>,
    /// What the user's limits granted (a concurrency slot), settled when the request ends.
    pub grant: Option<Grant>,
    /// The replicas' shared state, where backend cooldowns learnt here are published.
    pub shared: Option<Arc<SharedState>>,
    /// Bytes of the client's request body (kept when the body itself is released).
    pub prompt_bytes: usize,
    /// The request body's copies were released ([`super::request::release_request_body`]).
    pub body_released: bool,
}

impl Proxied {
    /// A freshly admitted request holding `grant`, publishing cooldowns to `shared` when
    /// set; no attempt yet.
    pub fn new(
        snapshot: Arc<Snapshot>,
        request: ProxyRequest,
        grant: Grant,
        shared: Option<Arc<SharedState>>,
    ) -> Self {
        let inflight = crate::metrics::per_request().then(|| InflightGuard::new(&request.model));
        let prompt_bytes = request.body.len();
        Proxied {
            snapshot,
            request,
            tried: SmallVec::new(),
            attempts: 0,
            stale_retry_used: false,
            last_outcome: None,
            attempt: None,
            answer: None,
            inflight,
            grant: Some(grant),
            shared,
            prompt_bytes,
            body_released: false,
        }
    }

    /// Records `outcome` for the current attempt (breaker, cooldown, confidence, provider
    /// health, `berry_upstream_attempts_total`) unless it was recorded already.
    pub fn finish_attempt(&mut self, outcome: Outcome) {
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        if attempt.recorded {
            return;
        }
        attempt.recorded = true;
        self.last_outcome = Some(outcome);
        let table = &self.snapshot.table;
        let backend = &attempt.backend;
        backend
            .state
            .record(outcome, now_ms(), &table.breaker, &table.settings.smart_ai);
        if let (Some(ms), Some(shared)) = (outcome.cooldown_ms(), &self.shared) {
            shared.publish_cooldown(&backend.id, ms);
        }
        if outcome == Outcome::Success {
            backend.provider.health.mark_healthy_by_traffic();
        }
        if crate::metrics::per_request() {
            if let Some(c) = backend.metrics.upstream_attempts(outcome) {
                c.inc();
            }
        }
    }

    /// The backend of the latest attempt, if any was made.
    pub fn last_backend(&self) -> Option<&Arc<Backend>> {
        self.attempt.as_ref().map(|a| &a.backend)
    }
}

/// Where a request is in its life: undecided, answered by the gateway, or proxied.
#[derive(Debug, Default)]
pub enum RequestPhase {
    /// `request_filter` has not decided yet.
    #[default]
    Received,
    /// Answered by the gateway itself.
    Local(LocalAnswer),
    /// Admitted and proxied.
    Proxied(Box<Proxied>),
}

/// A request's id (`x-request-id`): the client's when valid, else 32 random hex digits
/// ([`super::request::request_id`]); empty until `request_filter` sets it. Held as a header
/// value, so the upstream request and the answer carry it by reference count (no copy, no
/// formatting); logs use [`RequestId::as_str`] or `Display`.
#[derive(Debug, Clone, Default)]
pub struct RequestId(Option<HeaderValue>);

impl RequestId {
    /// Wraps `value`, which must be printable ASCII (what [`RequestId::as_str`] returns).
    pub fn new(value: HeaderValue) -> Self {
        RequestId(Some(value))
    }

    /// The id as text (empty when unset).
    pub fn as_str(&self) -> &str {
        self.0
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The id as a header value (a reference-counted clone), `None` when unset.
    pub fn header(&self) -> Option<HeaderValue> {
        self.0.clone()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything one request accumulates on its way through the hooks.
#[derive(Debug)]
pub struct RequestCtx {
    pub started: Instant,
    /// `x-request-id` (client's when valid, else generated).
    pub request_id: RequestId,
    pub rng: fastrand::Rng,
    /// Final status sent to the client (0 until one is sent).
    pub status: u16,
    /// Gateway-internal time (request processing + response header handling).
    pub overhead: Duration,
    /// The API the client speaks (the shape of every error it gets).
    pub api: ClientApi,
    pub phase: RequestPhase,
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
            request_id: RequestId::default(),
            rng: fastrand::Rng::new(),
            status: 0,
            overhead: Duration::ZERO,
            api: ClientApi::OpenAi,
            phase: RequestPhase::Received,
        }
    }

    /// The admitted request, when this one is proxied.
    pub fn proxied(&self) -> Option<&Proxied> {
        match &self.phase {
            RequestPhase::Proxied(p) => Some(p),
            _ => None,
        }
    }

    /// The admitted request, when this one is proxied.
    pub fn proxied_mut(&mut self) -> Option<&mut Proxied> {
        match &mut self.phase {
            RequestPhase::Proxied(p) => Some(p),
            _ => None,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(gate: &mut Gate, chunk: &'static [u8], commit: bool) -> Option<Bytes> {
        let mut body = Some(Bytes::from_static(chunk));
        gate.pass(&mut body, commit);
        body
    }

    #[test]
    fn a_gate_holds_the_preamble_until_the_commit_point() {
        let mut gate = Gate::closed();
        assert_eq!(pass(&mut gate, b"role ", false), None);
        assert_eq!(pass(&mut gate, b"ping ", false), None);
        assert!(!gate.is_open());
        assert_eq!(
            pass(&mut gate, b"content", true).as_deref(),
            Some(&b"role ping content"[..])
        );
        assert!(gate.is_open());
        // open: chunks pass untouched
        assert_eq!(
            pass(&mut gate, b"more", false).as_deref(),
            Some(&b"more"[..])
        );
        // nothing held and the first chunk commits: passed as it is
        let mut gate = Gate::closed();
        assert_eq!(
            pass(&mut gate, b"content", true).as_deref(),
            Some(&b"content"[..])
        );
        // a long preamble is released once it passes the cap
        let mut gate = Gate::closed();
        let big = vec![b'x'; MAX_PREAMBLE + 1].leak();
        let mut body = Some(Bytes::from_static(big));
        gate.pass(&mut body, false);
        assert_eq!(body.map(|b| b.len()), Some(MAX_PREAMBLE + 1));
        assert!(gate.is_open());
        // what a failure takes is what was held
        let mut gate = Gate::closed();
        pass(&mut gate, b"role ", false);
        assert_eq!(&gate.take_held()[..], b"role ");
        assert_eq!(&gate.take_held()[..], b"");
    }
}
