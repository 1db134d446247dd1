//! The validated, immutable configuration the rest of the gateway is built from.
//!
//! Every value here has passed `validate`: references resolve, numbers are in range,
//! defaults are filled in. Secrets are wrapped in [`Secret`] so they never reach a log
//! line through `Debug`.

pub use crate::vocab::BackendType;
pub use crate::vocab::Price;
use std::fmt;
use std::time::Duration;

/// A secret string (API key, user token, admin token). `Debug` and `Display` print a
/// placeholder; use [`Secret::expose`] where the value is really needed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself. Callers must not log or echo it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Load-balancing strategy of a model (see `routing::strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    WeightedRandom,
    RoundRobin,
    Random,
    LeastLatency,
    Failover,
    WeightedFailover,
    LeastConnections,
    SmartAi,
}

impl Strategy {
    /// Every strategy with its config spelling.
    pub const ALL: [(&'static str, Strategy); 8] = [
        ("weighted_random", Strategy::WeightedRandom),
        ("round_robin", Strategy::RoundRobin),
        ("random", Strategy::Random),
        ("least_latency", Strategy::LeastLatency),
        ("failover", Strategy::Failover),
        ("weighted_failover", Strategy::WeightedFailover),
        ("least_connections", Strategy::LeastConnections),
        ("smart_ai", Strategy::SmartAi),
    ];

    /// Parses the config spelling (`weighted_random`, ...).
    pub fn parse(s: &str) -> Option<Strategy> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, st)| *st)
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, st)| *st == self)
            .map(|(n, _)| *n)
            .unwrap_or("weighted_random")
    }
}

/// A provider's `base_url`, split into the parts a connection and a request need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` (TLS with SNI) or `http`.
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash, e.g. `/v1` (empty for none).
    pub path_prefix: String,
    /// Query string of the base URL without `?`, appended to every upstream request.
    pub query: Option<String>,
}

impl Endpoint {
    /// The value of the `Host` header: host, plus the port when it is not the scheme default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Settings for Berry's `smart_ai` confidence strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct SmartAiSettings {
    pub initial_confidence: f64,
    pub min_confidence: f64,
    pub exploration_ratio: f64,
    pub non_premium_stability_bonus: f64,
    pub enable_time_decay: bool,
    pub lightweight_check_interval: Duration,
    pub success_boost: f64,
    pub network_error_penalty: f64,
    pub auth_error_penalty: f64,
    pub rate_limit_penalty: f64,
    pub server_error_penalty: f64,
    pub model_error_penalty: f64,
    pub timeout_penalty: f64,
}

impl Default for SmartAiSettings {
    fn default() -> Self {
        SmartAiSettings {
            initial_confidence: 0.8,
            min_confidence: 0.05,
            exploration_ratio: 0.2,
            non_premium_stability_bonus: 1.1,
            enable_time_decay: true,
            lightweight_check_interval: Duration::from_secs(600),
            success_boost: 0.1,
            network_error_penalty: 0.3,
            auth_error_penalty: 0.8,
            rate_limit_penalty: 0.1,
            server_error_penalty: 0.2,
            model_error_penalty: 0.3,
            timeout_penalty: 0.2,
        }
    }
}

/// `[settings]` after defaults and validation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Client listener addresses (`ip:port`).
    pub listen: Vec<String>,
    pub health_check_interval: Duration,
    pub health_check_timeout: Duration,
    pub recovery_check_interval: Duration,
    /// Per attempt: connect + time to response headers.
    pub request_timeout: Duration,
    /// Longest allowed gap between two upstream body chunks.
    pub stream_idle_timeout: Duration,
    /// Extra attempts on other backends before the first response byte.
    pub max_retries: u32,
    pub circuit_breaker_failure_threshold: u32,
    pub circuit_breaker_timeout: Duration,
    pub circuit_breaker_success_threshold: u32,
    pub max_request_body_bytes: u64,
    /// Enables `/admin/*` when set.
    pub admin_token: Option<Secret>,
    /// Separate Prometheus listener.
    pub metrics_listen: Option<String>,
    /// `/metrics` requires the admin token.
    pub metrics_auth: bool,
    /// Parsed for compatibility only: every OpenAI-dialect stream asks its backend for
    /// usage whatever this says.
    pub stream_include_usage: bool,
    /// Limits shared across replicas; `None` = in this process only.
    pub shared_state: Option<SharedStateConfig>,
    /// A client's whole request head must arrive within this (from the connection's
    /// start, or from the first byte of a later request on a kept-alive connection).
    pub client_header_timeout: Duration,
    /// Longest wait for the next request on a kept-alive client connection.
    pub client_idle_timeout: Duration,
    /// A client that accepts no response bytes for this long is cut (and its upstream
    /// attempt released).
    pub client_write_timeout: Duration,
    /// Bound on TCP connect + TLS handshake of one attempt (capped by the attempt timeout).
    pub connect_timeout: Duration,
    /// Retry an attempt that timed out after its request was sent (the provider may still
    /// be generating, and billing). Connect errors and connect timeouts are always retried.
    pub retry_on_timeout: bool,
    pub smart_ai: SmartAiSettings,
    /// `[settings.responses]`.
    pub responses: super::ResponsesSettings,
}

/// Per-user limits; `None` = unlimited for that one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per sliding minute, hour, day.
    pub per_minute: Option<u64>,
    pub per_hour: Option<u64>,
    pub per_day: Option<u64>,
    /// Token budgets (all prompt tokens, cached or not, plus output, from usage) per
    /// sliding minute and day: a request is admitted while the window has room for one more
    /// token; its tokens count when it ends.
    pub tokens_per_minute: Option<u64>,
    pub tokens_per_day: Option<u64>,
    /// Requests in flight at once.
    pub max_concurrent: Option<u64>,
}

impl RateLimit {
    /// Nothing is limited: admission needs no bookkeeping at all.
    pub fn is_empty(&self) -> bool {
        *self == RateLimit::default()
    }

    /// The maximum in each window of [`crate::vocab::limits::WINDOWS`], in that order
    /// (`None`: not limited).
    pub fn window_maxima(&self) -> [Option<u64>; 5] {
        [
            self.per_minute,
            self.per_hour,
            self.per_day,
            self.tokens_per_minute,
            self.tokens_per_day,
        ]
    }
}

/// What a replica does when the shared state (Redis) cannot answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnavailable {
    /// Enforce the limits in this replica alone (the default).
    Local,
    /// Refuse with 503 `shared_state_unavailable`.
    Deny,
    /// Admit without limits.
    Allow,
}

impl OnUnavailable {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnavailable::Local => "local",
            OnUnavailable::Deny => "deny",
            OnUnavailable::Allow => "allow",
        }
    }
}

/// `[settings.shared_state]`: per-user limits and backend cooldowns shared by every
/// replica on one Redis (or Valkey).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedStateConfig {
    /// `redis://` or `rediss://` (may carry a password: never printed).
    pub redis_url: Secret,
    /// Prefix of every key (default `berry:`).
    pub key_prefix: String,
    /// Longest a request waits on Redis (default 50 ms).
    pub timeout: Duration,
    pub on_unavailable: OnUnavailable,
}

/// A gateway user (`[users.<id>]`).
#[derive(Debug, Clone)]
pub struct User {
    /// The table key; used in metrics and logs (never the token).
    pub id: String,
    pub name: String,
    pub token: Secret,
    /// Model keys or client-facing names; empty = every model.
    pub allowed_models: Vec<String>,
    pub enabled: bool,
    pub tags: Vec<String>,
    pub rate_limit: Option<RateLimit>,
    /// The user's team (a key of `teams`).
    pub team: Option<String>,
    /// The user's own spend budgets.
    pub budget: super::teams::Budget,
}

/// A provider account (`[providers.<id>]`).
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub endpoint: Endpoint,
    pub api_key: Secret,
    pub models: Vec<String>,
    pub enabled: bool,
    /// Overrides `settings.request_timeout` for attempts against this provider.
    pub timeout: Option<Duration>,
    /// Cap on attempts sent to this provider within one client request (1 + this).
    pub max_retries: Option<u32>,
    pub backend_type: BackendType,
    /// Azure's `api-version` query parameter: `api_version`, else Berry's
    /// `headers."api-version"`, else [`DEFAULT_AZURE_API_VERSION`]. `None` for other types.
    pub api_version: Option<String>,
    /// Extra headers sent upstream; values may hold secrets. (`api-version` of an azure
    /// provider is not among them: it travels in the query.)
    pub headers: Vec<(String, Secret)>,
    /// Client request headers forwarded to this provider in addition to the built-in
    /// allow-list (`content-type`, `accept`, `user-agent`, `openai-beta`, and on the
    /// Anthropic routes `anthropic-version`, `anthropic-beta`): valid header names,
    /// lower-case, without duplicates, none of [`crate::config::validate::UNFORWARDABLE`].
    pub forward_headers: Vec<String>,
    /// `responses_api`: serves `/v1/responses` natively (`None`: the dialect's default).
    pub responses_api: Option<bool>,
    /// `auto_cache`: translated requests to this (Anthropic) provider get automatic
    /// prompt-cache breakpoints unless the client set its own (default true).
    pub auto_cache: bool,
}

/// `api-version` of Azure OpenAI requests when the provider sets none.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// Berry's billing hint on a backend; informational.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingMode {
    PerToken,
    PerRequest,
}

/// One `[[models.<key>.backends]]` entry.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Provider id (a key of `providers`).
    pub provider: String,
    /// Real upstream model name.
    pub model: String,
    pub weight: f64,
    /// 1 = highest.
    pub priority: u32,
    pub enabled: bool,
    pub tags: Vec<String>,
    pub billing_mode: BillingMode,
    /// USD per million tokens: the backend's own `price` over `[prices]` over the built-in
    /// catalog, for the backend's `model`. `None`: unpriced (its requests cost 0).
    pub price: Option<Price>,
}

/// A client-facing model (`[models.<key>]`).
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub key: String,
    /// Client-facing name (unique).
    pub name: String,
    pub strategy: Strategy,
    pub enabled: bool,
    pub backends: Vec<BackendConfig>,
    /// Session affinity: requests with a session key stay on one backend.
    pub affinity: Affinity,
    /// How long a session that moved off its backend stays on the new one.
    pub affinity_ttl: Duration,
}

/// `[models.X] affinity`: how requests carrying a session key are routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Affinity {
    /// Weighted rendezvous hashing of the session key over the usable backends (default).
    #[default]
    Session,
    /// The model's strategy, as for requests without a key.
    None,
}

impl Affinity {
    /// Parses the config spelling (`session`, `none`).
    pub fn parse(s: &str) -> Option<Affinity> {
        match s {
            "session" => Some(Affinity::Session),
            "none" => Some(Affinity::None),
            _ => None,
        }
    }
}

/// `affinity_ttl_seconds` when unset: one hour.
pub const DEFAULT_AFFINITY_TTL: Duration = Duration::from_secs(3600);

/// A whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub users: Vec<User>,
    /// `[teams.<id>]`, in key order.
    pub teams: Vec<super::teams::Team>,
    pub providers: Vec<Provider>,
    pub models: Vec<ModelConfig>,
    /// Complete prices by backend model name (built-in catalog with `[prices]` over it).
    pub prices: std::collections::BTreeMap<String, Price>,
    /// Non-fatal findings (printed by `--check-config` and logged on load).
    pub warnings: Vec<String>,
}
