//! [`Shared`]: the state of one mock shared by its handles, the accept loop and every
//! connection: configuration, the current mode and stream shape, counters, the last
//! recorded request and the listener slot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::anthropic;
use crate::json::json_str;
use crate::openai::models_body;
use crate::response::name_header;
use crate::{MockOptions, Mode, RecordedRequest, MAX_CHUNKS};

/// Distinct paths [`Shared::count_request`] keeps counts for; later new paths only
/// count in the total.
const MAX_TRACKED_PATHS: usize = 10_000;

/// The open listening socket of a mock; its accept loop ends when it is taken.
pub(crate) struct ListenerSlot {
    /// `None` once closed.
    pub listener: Mutex<Option<TcpListener>>,
    /// Wakes the accept loop when the listener is closed.
    pub stop: Notify,
}

/// State shared by every handle, the accept loop and the connections of one mock.
pub(crate) struct Shared {
    /// The bound address (the real port when started on port 0).
    pub addr: SocketAddr,
    /// The runtime the mock serves on.
    pub handle: Handle,
    /// [`MockOptions::name`].
    pub name: String,
    /// The name as a quoted JSON string (`system_fingerprint`).
    pub fingerprint_json: Bytes,
    /// The `x-mock-name` header value.
    pub name_header: Option<HeaderValue>,
    /// The model echoed when a request names none.
    pub default_model: String,
    /// The `GET …/models` body.
    pub models_body: Bytes,
    /// The `GET …/models` body for Anthropic clients.
    pub anthropic_models_body: Bytes,
    /// The `GET …/models` body for Gemini clients.
    pub gemini_models_body: Bytes,
    /// [`MockOptions::expected_api_key`].
    pub expected_api_key: Option<String>,
    /// [`MockOptions::require_anthropic_version`].
    pub require_anthropic_version: bool,
    /// [`MockOptions::account_headers`].
    pub account_headers: bool,
    record: AtomicBool,
    /// Fast path: the mode is [`Mode::Ok`] (no lock needed).
    mode_ok: AtomicBool,
    mode: Mutex<Mode>,
    chunks: AtomicU32,
    interval_ns: AtomicU64,
    /// Requests counted by [`Shared::count_request`].
    pub hits: AtomicU64,
    /// Accepted TCP connections.
    pub accepted: AtomicU64,
    /// Open connections.
    pub active: AtomicUsize,
    next_id: AtomicU64,
    per_path: Mutex<HashMap<String, u64>>,
    last: Mutex<Option<RecordedRequest>>,
    /// The open listener, if any.
    pub slot: Mutex<Option<Arc<ListenerSlot>>>,
    /// Bumped by `stop_listening`; every open connection closes when it changes.
    pub kill: tokio::sync::watch::Sender<u64>,
    /// The Responses API answers kept by id.
    pub responses: crate::responses::Store,
    /// Simulated Anthropic prompt caches ([`MockOptions::prompt_cache`]); `None` when off.
    pub prompt_cache: Option<crate::prompt_cache::PromptCache>,
}

/// Locks `m`, ignoring poisoning (the data stays consistent: every critical section
/// is a single assignment or map update).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn duration_to_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Shared {
    /// The state of a mock configured by `opts`, bound to `addr`, serving on `handle`.
    pub(crate) fn new(opts: MockOptions, addr: SocketAddr, handle: Handle) -> Shared {
        Shared {
            addr,
            handle,
            fingerprint_json: Bytes::from(json_str(&opts.name)),
            name_header: name_header(&opts.name),
            name: opts.name,
            default_model: opts
                .models
                .first()
                .cloned()
                .unwrap_or_else(|| "mock-model".to_string()),
            models_body: Bytes::from(models_body(&opts.models)),
            anthropic_models_body: Bytes::from(anthropic::models_body(&opts.models)),
            gemini_models_body: Bytes::from(crate::gemini::models_body(&opts.models)),
            expected_api_key: opts.expected_api_key,
            require_anthropic_version: opts.require_anthropic_version,
            account_headers: opts.account_headers,
            record: AtomicBool::new(opts.record_requests),
            mode_ok: AtomicBool::new(opts.mode == Mode::Ok),
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
            responses: crate::responses::Store::default(),
            prompt_cache: opts
                .prompt_cache
                .then(crate::prompt_cache::PromptCache::default),
        }
    }

    /// The current mode.
    pub(crate) fn current_mode(&self) -> Mode {
        if self.mode_ok.load(Ordering::Acquire) {
            Mode::Ok
        } else {
            lock(&self.mode).clone()
        }
    }

    /// Switches the mode.
    pub(crate) fn set_mode(&self, m: Mode) {
        let mut g = lock(&self.mode);
        self.mode_ok.store(m == Mode::Ok, Ordering::Release);
        *g = m;
    }

    /// Content chunks per streamed answer.
    pub(crate) fn chunks(&self) -> u32 {
        self.chunks.load(Ordering::Relaxed)
    }

    /// Pause between two streamed content events.
    pub(crate) fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns.load(Ordering::Relaxed))
    }

    /// Sets the stream shape (`chunks` capped at [`MAX_CHUNKS`]).
    pub(crate) fn set_stream_shape(&self, chunks: u32, interval: Duration) {
        self.chunks.store(chunks.min(MAX_CHUNKS), Ordering::Relaxed);
        self.interval_ns
            .store(duration_to_ns(interval), Ordering::Relaxed);
    }

    /// The next answer id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether requests are recorded.
    pub(crate) fn recording(&self) -> bool {
        self.record.load(Ordering::Relaxed)
    }

    /// Turns recording on or off (off also forgets the last request).
    pub(crate) fn set_recording(&self, on: bool) {
        self.record.store(on, Ordering::Relaxed);
        if !on {
            *lock(&self.last) = None;
        }
    }

    /// Keeps `rec` as the last request.
    pub(crate) fn record(&self, rec: RecordedRequest) {
        *lock(&self.last) = Some(rec);
    }

    /// The last recorded request.
    pub(crate) fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.last).clone()
    }

    /// Counts a request for `path` (query string excluded).
    pub(crate) fn count_request(&self, path: &str) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        let mut map = lock(&self.per_path);
        if let Some(n) = map.get_mut(path) {
            *n += 1;
        } else if map.len() < MAX_TRACKED_PATHS {
            map.insert(path.to_string(), 1);
        }
    }

    /// Requests whose path ends with `suffix`.
    pub(crate) fn hits_for(&self, suffix: &str) -> u64 {
        lock(&self.per_path)
            .iter()
            .filter(|(p, _)| p.ends_with(suffix))
            .map(|(_, n)| *n)
            .sum()
    }

    /// Resets the counters and forgets the last request.
    pub(crate) fn reset_counters(&self) {
        self.hits.store(0, Ordering::Relaxed);
        self.accepted.store(0, Ordering::Relaxed);
        lock(&self.per_path).clear();
        *lock(&self.last) = None;
    }
}
