//! Every Prometheus metric of the gateway, defined once.
//!
//! Metrics live in the process-wide default registry so both the client listener's
//! `/metrics` and the optional separate metrics listener expose the same families. Labels
//! are low-cardinality: model names, user ids, provider ids and backend ids from the
//! config — never a token, key, request id or URL.

use crate::vocab::{BackendType, Operation, Outcome};
use once_cell::sync::Lazy;
use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, Encoder, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, TextEncoder,
};
use std::sync::{Arc, OnceLock};

/// Latency buckets in seconds, from a fast cached reply to a long generation.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];
/// Gateway-internal time in seconds: microseconds to tens of milliseconds.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
];
/// Cost per request in USD: a fraction of a cent to tens of dollars.
const COST_BUCKETS: &[f64] = &[0.00001, 0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0];
/// Token counts per request: powers of 4 up to ~4M (OTel GenAI suggests powers of 4).
const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
];

macro_rules! metric {
    ($name:ident: $ty:ty = $init:expr) => {
        #[doc = concat!("`", stringify!($name), "` (see README, Observability).")]
        pub static $name: Lazy<$ty> = Lazy::new(|| $init.expect("metric registers once"));
    };
}

metric!(REQUESTS: IntCounterVec = register_int_counter_vec!(
    "berry_requests_total",
    "Client requests on proxied endpoints by model, user id and final status code.",
    &["model", "user", "code"]
));
metric!(UPSTREAM_ATTEMPTS: IntCounterVec = register_int_counter_vec!(
    "berry_upstream_attempts_total",
    "Upstream attempts by provider, backend and outcome (success, connect_error, timeout, http_4xx, http_429, http_5xx, stream_error, client_closed).",
    &["provider", "backend", "outcome"]
));
metric!(RETRIES: IntCounterVec = register_int_counter_vec!(
    "berry_retries_total",
    "Extra attempts made on another backend after a failure before the first byte.",
    &["model"]
));
metric!(LAST_RESORT: IntCounterVec = register_int_counter_vec!(
    "berry_last_resort_selections_total",
    "Attempts sent to a backend although none was available (all unhealthy, open or cooling down).",
    &["model"]
));
metric!(AFFINITY: IntCounterVec = register_int_counter_vec!(
    "berry_affinity_total",
    "Backend selections by session affinity: kept (the session's backend), moved (a new backend for the session), none (no session key, or affinity off).",
    &["model", "result"]
));
metric!(INFLIGHT: IntGaugeVec = register_int_gauge_vec!(
    "berry_inflight_requests",
    "Proxied requests currently being served, by model.",
    &["model"]
));
metric!(REQUEST_DURATION: HistogramVec = register_histogram_vec!(
    "berry_request_duration_seconds",
    "Time from request start to the last response byte, by model.",
    &["model"],
    LATENCY_BUCKETS.to_vec()
));
metric!(TTFB: HistogramVec = register_histogram_vec!(
    "berry_time_to_first_byte_seconds",
    "Time from attempt start to upstream response headers, by model and provider.",
    &["model", "provider"],
    LATENCY_BUCKETS.to_vec()
));
metric!(OVERHEAD: Histogram = register_histogram!(
    "berry_gateway_overhead_seconds",
    "Time spent in the gateway itself per request: auth, body scan, routing and rewrite before the upstream request, plus response header handling.",
    OVERHEAD_BUCKETS.to_vec()
));
metric!(TOKENS: IntCounterVec = register_int_counter_vec!(
    "berry_tokens_total",
    "Tokens reported by upstream usage, by model, user, team (\"-\" without one), provider and type (input, output, cache_read, cache_write).",
    &["model", "user", "team", "provider", "type"]
));
metric!(COST: prometheus::CounterVec = prometheus::register_counter_vec!(
    "berry_cost_usd_total",
    "Cost in USD of the tokens reported by upstream usage at the backend model's price, by user, team (\"-\" without one), client-facing model and backend id.",
    &["user", "team", "model", "backend"]
));
metric!(CACHE_SAVINGS: prometheus::CounterVec = prometheus::register_counter_vec!(
    "berry_cache_savings_usd_total",
    "USD saved by prompt-cache reads: cache_read tokens × (input price − cache_read price) of the backend, by team (\"-\" without one) and client-facing model.",
    &["team", "model"]
));
metric!(BUDGET_USD: prometheus::GaugeVec = prometheus::register_gauge_vec!(
    "berry_budget_usd",
    "A configured spend budget in USD, by scope (user, team), id and window (day, month).",
    &["scope", "id", "window"]
));
metric!(SPEND_USD: prometheus::GaugeVec = prometheus::register_gauge_vec!(
    "berry_spend_usd",
    "Spend in USD in the current window as this replica last knew it (with shared state the fleet's, read back from Redis at settlement), by scope (user, team), id and window, for every budgeted user and team.",
    &["scope", "id", "window"]
));
metric!(BUDGET_EXCEEDED: IntCounterVec = register_int_counter_vec!(
    "berry_budget_exceeded_total",
    "Requests refused because a spend budget was used up, by scope (user, team) and window (day, month).",
    &["scope", "window"]
));
metric!(UNPRICED_TOKENS: IntCounterVec = register_int_counter_vec!(
    "berry_unpriced_tokens_total",
    "Tokens (all types) reported by upstream usage for a backend model without a price (counted at cost 0), by backend model name.",
    &["model"]
));
metric!(BACKEND_UP: IntGaugeVec = register_int_gauge_vec!(
    "berry_backend_up",
    "1 when the backend is available for new requests (provider healthy, circuit not open, not cooling down).",
    &["provider", "backend"]
));
metric!(CIRCUIT_STATE: IntGaugeVec = register_int_gauge_vec!(
    "berry_circuit_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    &["provider", "backend"]
));
metric!(BACKEND_CONFIDENCE: prometheus::GaugeVec = prometheus::register_gauge_vec!(
    "berry_backend_confidence",
    "smart_ai confidence of the backend (0..1).",
    &["provider", "backend"]
));
metric!(BACKEND_LATENCY: prometheus::GaugeVec = prometheus::register_gauge_vec!(
    "berry_backend_latency_ewma_seconds",
    "EWMA of time to first byte (absent until measured).",
    &["provider", "backend"]
));
metric!(BACKEND_COOLDOWN: prometheus::GaugeVec = prometheus::register_gauge_vec!(
    "berry_backend_cooldown_seconds",
    "Seconds of 429 cooldown left.",
    &["provider", "backend"]
));
metric!(HEALTH_CHECKS: IntCounterVec = register_int_counter_vec!(
    "berry_health_checks_total",
    "Active health checks by provider and result (success, failure).",
    &["provider", "result"]
));
metric!(CONFIG_RELOADS: IntCounterVec = register_int_counter_vec!(
    "berry_config_reloads_total",
    "Config reloads by result (success, error).",
    &["result"]
));
metric!(BUILD_INFO: IntGaugeVec = register_int_gauge_vec!(
    "berry_build_info",
    "Always 1; the label carries the gateway version.",
    &["version"]
));
metric!(USER_RATE_LIMITED: IntCounterVec = register_int_counter_vec!(
    "berry_user_rate_limited_total",
    "Requests refused by a user's own rate limit, by user id and window.",
    &["user", "window"]
));
metric!(PROVIDER_LIMIT_COOLDOWNS: IntCounterVec = register_int_counter_vec!(
    "berry_provider_limit_cooldowns_total",
    "Backends cooled down because a response said the account's rate-limit budget is spent, by source (x_ratelimit, anthropic_ratelimit, retry_after_ms).",
    &["provider", "backend", "source"]
));
metric!(DROPPED_TOOLS: IntCounterVec = register_int_counter_vec!(
    "berry_dropped_tools_total",
    "Hosted tools (web_search, file_search, mcp, ...) left out of Responses API requests translated for a backend that cannot run them, by tool type.",
    &["tool"]
));
metric!(STREAM_FAILURES: IntCounterVec = register_int_counter_vec!(
    "berry_stream_failures_total",
    "Upstream event streams that broke the stream rules, by kind (incomplete, error_event, invalid) and whether the client saw it (phase: preamble = before the commit point, retried or reported; content = after it).",
    &["provider", "kind", "phase"]
));
metric!(INVALID_REQUESTS: IntCounterVec = register_int_counter_vec!(
    "berry_invalid_requests_total",
    "Request bodies refused with 400 before routing, by reason (invalid_json, invalid_utf8, not_an_object, bad_model, duplicate_key, case_folded_key, too_deep).",
    &["reason"]
));
metric!(CLIENT_TIMEOUTS: IntCounterVec = register_int_counter_vec!(
    "berry_client_timeouts_total",
    "Client connections closed by a client limit, by kind: header (request head not complete within client_header_timeout_seconds), idle (no next request within client_idle_timeout_seconds), write (client accepted no response bytes within client_write_timeout_seconds).",
    &["kind"]
));
metric!(TIMEOUTS_NOT_RETRIED: IntCounterVec = register_int_counter_vec!(
    "berry_timeouts_not_retried_total",
    "Attempts that timed out after their request was sent and were answered with 504 instead of retried, because retry_on_timeout = false, by model.",
    &["model"]
));
// The shared-state families appear once `[settings.shared_state]` starts (not in `init`):
// a replica without Redis exports no `berry_shared_state_up 0` to alert on.
metric!(SHARED_STATE_UP: IntGauge = register_int_gauge!(
    "berry_shared_state_up",
    "1 while the shared-state Redis answers, 0 while it is down (limits then follow on_unavailable)."
));
metric!(SHARED_STATE_ERRORS: IntCounterVec = register_int_counter_vec!(
    "berry_shared_state_errors_total",
    "Failed or timed-out shared-state Redis operations, by op (admit, flush, poll, probe).",
    &["op"]
));
metric!(SHARED_STATE_FALLBACKS: IntCounterVec = register_int_counter_vec!(
    "berry_shared_state_fallbacks_total",
    "Admissions decided by settings.shared_state.on_unavailable because Redis could not answer in time, by that setting (local, deny, allow).",
    &["on_unavailable"]
));
metric!(GENAI_DURATION: HistogramVec = register_histogram_vec!(
    "gen_ai_server_request_duration_seconds",
    "OpenTelemetry GenAI: request duration.",
    &["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"],
    LATENCY_BUCKETS.to_vec()
));
metric!(GENAI_TTFT: HistogramVec = register_histogram_vec!(
    "gen_ai_server_time_to_first_token_seconds",
    "OpenTelemetry GenAI: time to the first response byte (first token for streams).",
    &["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"],
    LATENCY_BUCKETS.to_vec()
));
metric!(GENAI_TOKENS: HistogramVec = register_histogram_vec!(
    "gen_ai_client_token_usage",
    "OpenTelemetry GenAI: tokens per request by type (input, output).",
    &["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"],
    TOKEN_BUCKETS.to_vec()
));
metric!(GENAI_COST: HistogramVec = register_histogram_vec!(
    "gen_ai_client_cost_usd",
    "OpenTelemetry GenAI: cost per request in USD (the gen_ai.usage.cost attribute), priced backends only.",
    &["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"],
    COST_BUCKETS.to_vec()
));

static PER_REQUEST: Lazy<bool> = Lazy::new(|| {
    !std::env::var("BERRY_REQUEST_METRICS").is_ok_and(|v| v.eq_ignore_ascii_case("off"))
});

/// Whether per-request metrics are recorded. `BERRY_REQUEST_METRICS=off` turns them off
/// (backend gauges, health checks and reloads are still exported); it exists to measure
/// the cost of metrics on the load benchmark.
#[inline]
pub fn per_request() -> bool {
    *PER_REQUEST
}

// ---------------------------------------------------------------------------------------
// Handles resolved once per snapshot
// ---------------------------------------------------------------------------------------
//
// `with_label_values` hashes the label values, takes the vector's lock and clones the
// series' handle (two more shared atomics) on every call. The per-request series whose
// labels come from the config (model, provider, backend, backend type) are resolved once
// instead and kept in the snapshot's `ModelRoute` / `Backend`: each handle is resolved on its
// first use, so a series appears in the registry exactly when `with_label_values` would have
// created it (never earlier: `/metrics` is unchanged). A reload builds new, empty caches;
// the series themselves live in the process-wide registry and carry on. Series labelled by
// user (`berry_requests_total`, `berry_tokens_total`) are still looked up per request.

/// The per-request handles of one model (`ModelRoute::metrics`).
#[derive(Debug)]
pub struct ModelMetrics {
    /// Client-facing name of the model (the `model` label).
    model: Arc<str>,
    duration: OnceLock<Histogram>,
    inflight: OnceLock<IntGauge>,
    retries: OnceLock<IntCounter>,
    last_resort: OnceLock<IntCounter>,
    /// `berry_affinity_total{model,result}`, indexed like [`AFFINITY_RESULTS`].
    affinity: [OnceLock<IntCounter>; 3],
}

/// The `result` labels of `berry_affinity_total`: kept, moved, none.
pub const AFFINITY_RESULTS: [&str; 3] = ["kept", "moved", "none"];

impl ModelMetrics {
    /// Empty handles of the model whose client-facing name is `model`.
    pub fn new(model: &str) -> Self {
        ModelMetrics {
            model: model.into(),
            duration: OnceLock::new(),
            inflight: OnceLock::new(),
            retries: OnceLock::new(),
            last_resort: OnceLock::new(),
            affinity: Default::default(),
        }
    }

    /// `berry_request_duration_seconds{model}`.
    pub fn request_duration(&self) -> &Histogram {
        self.duration
            .get_or_init(|| REQUEST_DURATION.with_label_values(&[&self.model]))
    }

    /// `berry_inflight_requests{model}`.
    pub fn inflight(&self) -> &IntGauge {
        self.inflight
            .get_or_init(|| INFLIGHT.with_label_values(&[&self.model]))
    }

    /// `berry_retries_total{model}`.
    pub fn retries(&self) -> &IntCounter {
        self.retries
            .get_or_init(|| RETRIES.with_label_values(&[&self.model]))
    }

    /// `berry_last_resort_selections_total{model}`.
    pub fn last_resort(&self) -> &IntCounter {
        self.last_resort
            .get_or_init(|| LAST_RESORT.with_label_values(&[&self.model]))
    }

    /// `berry_affinity_total{model,result}`; `result` indexes [`AFFINITY_RESULTS`].
    pub fn affinity(&self, result: usize) -> Option<&IntCounter> {
        let name = *AFFINITY_RESULTS.get(result)?;
        let slot = self.affinity.get(result)?;
        Some(slot.get_or_init(|| AFFINITY.with_label_values(&[&self.model, name])))
    }
}

/// Distinct `outcome` labels (`Outcome::label`) of `berry_upstream_attempts_total`.
const OUTCOMES: usize = 8;

/// One slot per distinct `o.label()`, below [`OUTCOMES`].
fn outcome_slot(o: Outcome) -> usize {
    match o {
        Outcome::Success => 0,
        Outcome::ConnectError => 1,
        Outcome::Timeout => 2,
        Outcome::RateLimited { .. } => 3,
        Outcome::ServerError => 4,
        Outcome::AuthError | Outcome::ModelError | Outcome::ClientError => 5,
        Outcome::StreamError => 6,
        Outcome::ClientClosed => 7,
    }
}

/// Operations, indexed by [`operation_slot`].
const OPERATIONS: usize = 10;

fn operation_slot(op: Operation) -> usize {
    match op {
        Operation::Chat => 0,
        Operation::TextCompletion => 1,
        Operation::Embeddings => 2,
        Operation::Messages => 3,
        Operation::CountTokens => 4,
        Operation::Responses => 5,
        Operation::ResponsesCompact => 6,
        Operation::ResponseById => 7,
        Operation::GenerateContent => 8,
        Operation::GeminiCountTokens => 9,
    }
}

/// Token kinds of `gen_ai_client_token_usage` (`gen_ai_token_type`), in slot order.
pub const TOKEN_KINDS: [&str; 4] = ["input", "output", "cache_read", "cache_write"];

/// The per-request handles of one backend (`Backend::metrics`).
#[derive(Debug)]
pub struct BackendMetrics {
    /// Client-facing name of the backend's model (the `model` label).
    model: Arc<str>,
    /// The provider's id (the `provider` label).
    provider: Arc<str>,
    /// The backend's id (the `backend` label).
    backend: Arc<str>,
    /// The provider's backend type (`gen_ai_provider_name`).
    backend_type: &'static str,
    ttfb: OnceLock<Histogram>,
    attempts: [OnceLock<IntCounter>; OUTCOMES],
    /// GenAI series by operation (boxed on first use: most backends see one operation).
    genai: [OnceLock<Box<GenAiMetrics>>; OPERATIONS],
}

/// The `gen_ai_*` series of one (operation, backend type, model).
#[derive(Debug, Default)]
struct GenAiMetrics {
    duration: OnceLock<Histogram>,
    ttft: OnceLock<Histogram>,
    tokens: [OnceLock<Histogram>; TOKEN_KINDS.len()],
    cost: OnceLock<Histogram>,
}

impl BackendMetrics {
    /// Empty handles of backend `backend` of provider `provider` (whose backend type is
    /// `backend_type`), serving the model whose client-facing name is `model`.
    pub fn new(model: &str, provider: &str, backend: &str, backend_type: BackendType) -> Self {
        BackendMetrics {
            model: model.into(),
            provider: provider.into(),
            backend: backend.into(),
            backend_type: backend_type.as_str(),
            ttfb: OnceLock::new(),
            attempts: Default::default(),
            genai: Default::default(),
        }
    }

    /// `berry_time_to_first_byte_seconds{model, provider}`.
    pub fn ttfb(&self) -> &Histogram {
        self.ttfb
            .get_or_init(|| TTFB.with_label_values(&[&*self.model, &*self.provider]))
    }

    /// `berry_upstream_attempts_total{provider, backend, outcome}` (always `Some`: the slots
    /// cover every outcome).
    pub fn upstream_attempts(&self, outcome: Outcome) -> Option<&IntCounter> {
        let cell = self.attempts.get(outcome_slot(outcome))?;
        Some(cell.get_or_init(|| {
            UPSTREAM_ATTEMPTS.with_label_values(&[&*self.provider, &*self.backend, outcome.label()])
        }))
    }

    /// The `gen_ai_*` handles of `op` (always `Some`: the slots cover every operation).
    fn genai(&self, op: Operation) -> Option<&GenAiMetrics> {
        let cell = self.genai.get(operation_slot(op))?;
        Some(cell.get_or_init(Box::default))
    }

    /// Labels of the `gen_ai_*` series of `op`.
    fn genai_labels(&self, op: Operation) -> [&str; 3] {
        [op.otel_name(), self.backend_type, &self.model]
    }

    /// `gen_ai_server_request_duration_seconds` of `op` (always `Some`).
    pub fn genai_duration(&self, op: Operation) -> Option<&Histogram> {
        let g = self.genai(op)?;
        Some(
            g.duration
                .get_or_init(|| GENAI_DURATION.with_label_values(&self.genai_labels(op))),
        )
    }

    /// `gen_ai_server_time_to_first_token_seconds` of `op` (always `Some`).
    pub fn genai_ttft(&self, op: Operation) -> Option<&Histogram> {
        let g = self.genai(op)?;
        Some(
            g.ttft
                .get_or_init(|| GENAI_TTFT.with_label_values(&self.genai_labels(op))),
        )
    }

    /// `gen_ai_client_cost_usd` of `op` (always `Some`).
    pub fn genai_cost(&self, op: Operation) -> Option<&Histogram> {
        let g = self.genai(op)?;
        Some(
            g.cost
                .get_or_init(|| GENAI_COST.with_label_values(&self.genai_labels(op))),
        )
    }

    /// `gen_ai_client_token_usage` of `op` for token kind `TOKEN_KINDS[kind]` (`None` only
    /// for a kind out of range).
    pub fn genai_tokens(&self, op: Operation, kind: usize) -> Option<&Histogram> {
        let name = *TOKEN_KINDS.get(kind)?;
        let slot = self.genai(op)?.tokens.get(kind)?;
        Some(slot.get_or_init(|| {
            let [o, t, m] = self.genai_labels(op);
            GENAI_TOKENS.with_label_values(&[o, t, m, name])
        }))
    }
}

/// Registers every metric (so families appear before their first sample) and sets build info.
pub fn init() {
    BUILD_INFO
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
    Lazy::force(&REQUESTS);
    Lazy::force(&UPSTREAM_ATTEMPTS);
    Lazy::force(&RETRIES);
    Lazy::force(&LAST_RESORT);
    Lazy::force(&AFFINITY);
    Lazy::force(&INFLIGHT);
    Lazy::force(&REQUEST_DURATION);
    Lazy::force(&TTFB);
    Lazy::force(&OVERHEAD);
    Lazy::force(&TOKENS);
    Lazy::force(&COST);
    Lazy::force(&UNPRICED_TOKENS);
    Lazy::force(&BACKEND_UP);
    Lazy::force(&CIRCUIT_STATE);
    Lazy::force(&BACKEND_CONFIDENCE);
    Lazy::force(&BACKEND_LATENCY);
    Lazy::force(&BACKEND_COOLDOWN);
    Lazy::force(&HEALTH_CHECKS);
    // Both results exist from the start, so `increase(...{result="error"})` works on the
    // first failed reload.
    for result in ["success", "error"] {
        CONFIG_RELOADS.with_label_values(&[result]);
    }
    Lazy::force(&USER_RATE_LIMITED);
    for kind in ["header", "idle", "write"] {
        CLIENT_TIMEOUTS.with_label_values(&[kind]);
    }
    Lazy::force(&TIMEOUTS_NOT_RETRIED);
    Lazy::force(&GENAI_DURATION);
    Lazy::force(&GENAI_TTFT);
    Lazy::force(&GENAI_TOKENS);
    Lazy::force(&GENAI_COST);
}

/// The default registry in Prometheus text format.
pub fn render() -> (Vec<u8>, String) {
    let encoder = TextEncoder::new();
    let mut buf = Vec::with_capacity(16 * 1024);
    let families = prometheus::gather();
    if let Err(e) = encoder.encode(&families, &mut buf) {
        log::error!("encoding metrics failed: {e}");
    }
    (buf, encoder.format_type().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_slots_match_the_labels() {
        let all = [
            Outcome::Success,
            Outcome::ConnectError,
            Outcome::Timeout,
            Outcome::RateLimited {
                retry_after_ms: None,
            },
            Outcome::ServerError,
            Outcome::AuthError,
            Outcome::ModelError,
            Outcome::ClientError,
            Outcome::StreamError,
            Outcome::ClientClosed,
        ];
        // Same slot exactly when same label, every slot used.
        for o in all {
            assert!(outcome_slot(o) < OUTCOMES);
            for p in all {
                assert_eq!(outcome_slot(o) == outcome_slot(p), o.label() == p.label());
            }
        }
        let used: std::collections::HashSet<_> = all.iter().map(|&o| outcome_slot(o)).collect();
        assert_eq!(used.len(), OUTCOMES);
    }
}
