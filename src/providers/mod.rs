//! Provider accounts at run time: the API [`Dialect`] each speaks (upstream URL, credential
//! headers, health-probe path — one module per dialect), resolved addresses, and health.

pub mod anthropic;
pub mod azure;
pub mod gemini;
mod header;
pub mod openai;

use crate::config::{BackendType, Endpoint, Provider};
use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use anthropic::ANTHROPIC_VERSION;

/// The API a provider speaks, with what its addressing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Azure(azure::Form),
    Anthropic,
    Gemini,
}

/// The body of an answer that may be a provider's refusal of the gateway's key in another
/// shape than 401/403 (Gemini answers a refused key with 400 and the reason
/// `API_KEY_INVALID`): read up to [`KeyRefusalProbe::MAX`] bytes, then asked whether it
/// is one.
#[derive(Debug, Clone)]
pub struct KeyRefusalProbe {
    body: Vec<u8>,
}

impl KeyRefusalProbe {
    /// Most body bytes examined (a longer answer is not a key refusal).
    pub const MAX: usize = 16 << 10;

    /// A probe for an answer of `status` from a provider speaking `dialect`, when that
    /// answer may be a refused key; `None` otherwise.
    pub fn of(dialect: &Dialect, status: u16) -> Option<Self> {
        (matches!(dialect, Dialect::Gemini) && status == 400)
            .then(|| KeyRefusalProbe { body: Vec::new() })
    }

    /// Reads the next body chunk (beyond [`KeyRefusalProbe::MAX`] bytes, nothing more).
    pub fn feed(&mut self, chunk: &[u8]) {
        let room = Self::MAX.saturating_sub(self.body.len());
        self.body
            .extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
    }

    /// Whether the body read so far refuses the gateway's key.
    pub fn refused(&self) -> bool {
        memchr::memmem::find(&self.body, b"API_KEY_INVALID").is_some()
    }
}

impl Dialect {
    /// The dialect of a configured provider.
    pub fn of(p: &Provider) -> Dialect {
        match p.backend_type {
            BackendType::OpenAi => Dialect::OpenAi,
            BackendType::Gemini => Dialect::Gemini,
            BackendType::Anthropic => Dialect::Anthropic,
            BackendType::Azure => Dialect::Azure(azure::Form::of(
                &p.endpoint.path_prefix,
                p.api_version
                    .as_deref()
                    .unwrap_or(crate::config::DEFAULT_AZURE_API_VERSION),
            )),
        }
    }

    /// The path prefix every upstream request of this dialect goes under, from the base
    /// URL's path.
    pub fn path_prefix(&self, base_path: &str) -> String {
        match self {
            Dialect::OpenAi => base_path.to_string(),
            Dialect::Gemini => gemini::path_prefix(base_path),
            Dialect::Anthropic => anthropic::path_prefix(base_path),
            Dialect::Azure(form) => azure::path_prefix(base_path, form),
        }
    }

    /// Credential headers for `api_key` (values marked sensitive).
    pub fn credentials(
        &self,
        api_key: &str,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, http::header::InvalidHeaderValue> {
        match self {
            Dialect::OpenAi | Dialect::Gemini => openai::credentials(api_key),
            Dialect::Azure(_) => azure::credentials(api_key),
            Dialect::Anthropic => anthropic::credentials(api_key),
        }
    }
}

/// [`ProviderRoute::identity`] of a configured provider (never printed; the key only
/// enters a hash).
pub fn identity(p: &Provider) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.backend_type.as_str().hash(&mut h);
    p.api_version.hash(&mut h);
    let e = &p.endpoint;
    (e.tls, &e.host, e.port, &e.path_prefix, &e.query).hash(&mut h);
    p.api_key.expose().hash(&mut h);
    h.finish()
}

/// Addresses a provider host resolves to, refreshed off the request path.
#[derive(Debug)]
pub struct ResolvedAddrs {
    host: String,
    port: u16,
    addrs: ArcSwap<Vec<SocketAddr>>,
    next: AtomicUsize,
}

impl ResolvedAddrs {
    /// Addresses for `host:port`; IP literals are resolved at once, names are empty until
    /// [`ResolvedAddrs::refresh_blocking`] or [`ResolvedAddrs::refresh`] runs.
    pub fn new(host: &str, port: u16) -> Self {
        let initial = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => Vec::new(),
        };
        ResolvedAddrs {
            host: host.to_string(),
            port,
            addrs: ArcSwap::from_pointee(initial),
            next: AtomicUsize::new(0),
        }
    }

    /// True for a host name (needs DNS), false for an IP literal.
    pub fn needs_dns(&self) -> bool {
        self.host.parse::<IpAddr>().is_err()
    }

    /// `host:port` key under which resolutions are shared.
    pub fn key(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }

    /// The next address in rotation; `None` when the host has not resolved (yet).
    pub fn pick(&self) -> Option<SocketAddr> {
        let addrs = self.addrs.load();
        if addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % addrs.len();
        addrs.get(i).copied()
    }

    /// Resolves now with the system resolver (blocking; start-up only). Keeps the old
    /// addresses when resolution fails. Returns whether any address is known.
    pub fn refresh_blocking(&self) -> bool {
        if self.needs_dns() {
            if let Ok(iter) = (self.host.as_str(), self.port).to_socket_addrs() {
                let v: Vec<SocketAddr> = iter.collect();
                if !v.is_empty() {
                    self.addrs.store(Arc::new(v));
                }
            }
        }
        !self.addrs.load().is_empty()
    }

    /// Resolves asynchronously (background refresh, reload). Keeps the old addresses when
    /// resolution fails. Returns whether any address is known.
    pub async fn refresh(&self) -> bool {
        if self.needs_dns() {
            if let Ok(iter) = tokio::net::lookup_host((self.host.as_str(), self.port)).await {
                let v: Vec<SocketAddr> = iter.collect();
                if !v.is_empty() {
                    self.addrs.store(Arc::new(v));
                }
            }
        }
        !self.addrs.load().is_empty()
    }
}

/// A provider account ready for requests.
#[derive(Debug)]
pub struct ProviderRoute {
    pub id: String,
    pub name: String,
    pub backend_type: BackendType,
    pub dialect: Dialect,
    /// The base URL, with the path prefix every request of the dialect goes under.
    pub endpoint: Endpoint,
    pub enabled: bool,
    /// `Host` header value.
    pub host_header: HeaderValue,
    /// Credential and configured extra headers, set on every upstream request. Values are
    /// marked sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Client request headers this provider also receives, beyond the gateway's built-in
    /// allow-list (`forward_headers`, validated and lower-case; built once per reload).
    pub forward_headers: Vec<HeaderName>,
    /// Attempt timeout for this provider (connect + response headers).
    pub timeout: Duration,
    /// Most attempts one client request may send to this provider.
    pub max_attempts: Option<u32>,
    pub health: Arc<ProviderHealth>,
    pub addrs: Arc<ResolvedAddrs>,
    /// What makes this the same account across reloads: a digest of its API, base URL and
    /// key. A provider whose identity changed starts with fresh health and backend state.
    pub identity: u64,
    /// Serves the OpenAI Responses API natively (`responses_api`; default: openai and
    /// azure `/openai/v1` providers); otherwise Responses requests are translated.
    pub responses_api: bool,
    /// `gemini` providers: the key as Google's native API takes it (`x-goog-api-key`,
    /// marked sensitive), for native Gemini calls.
    pub gemini_key: Option<HeaderValue>,
    /// Translated Messages requests get automatic prompt-cache breakpoints (`auto_cache`).
    pub auto_cache: bool,
}

impl ProviderRoute {
    /// Builds the runtime provider; `health` and `addrs` come from the previous snapshot when
    /// the provider (or host) already existed. Fails only on header values the validator
    /// already refused.
    pub fn build(
        p: &Provider,
        default_timeout: Duration,
        health: Arc<ProviderHealth>,
        addrs: Arc<ResolvedAddrs>,
    ) -> Result<ProviderRoute, String> {
        let host_header = HeaderValue::from_str(&p.endpoint.host_header())
            .map_err(|_| format!("providers.{}.base_url: invalid host", p.id))?;
        let dialect = Dialect::of(p);
        let mut endpoint = p.endpoint.clone();
        endpoint.path_prefix = dialect.path_prefix(&p.endpoint.path_prefix);
        let mut headers = dialect
            .credentials(p.api_key.expose())
            .map_err(|_| format!("providers.{}.api_key: not a valid header value", p.id))?;
        for (name, value) in &p.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("providers.{}.headers.{name}: invalid name", p.id))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| format!("providers.{}.headers.{name}: invalid value", p.id))?;
            value.set_sensitive(true);
            headers.retain(|(n, _)| *n != name);
            headers.push((name, value));
        }
        let forward_headers = p
            .forward_headers
            .iter()
            .map(|name| {
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("providers.{}.forward_headers: `{name}` is invalid", p.id))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProviderRoute {
            id: p.id.clone(),
            name: p.name.clone(),
            backend_type: p.backend_type,
            endpoint,
            enabled: p.enabled,
            host_header,
            headers,
            forward_headers,
            timeout: p.timeout.unwrap_or(default_timeout),
            max_attempts: p.max_retries.map(|r| r.saturating_add(1)),
            health,
            addrs,
            identity: identity(p),
            gemini_key: match p.backend_type {
                BackendType::Gemini => Some(
                    header::sensitive(p.api_key.expose().to_string()).map_err(|_| {
                        format!("providers.{}.api_key: not a valid header value", p.id)
                    })?,
                ),
                _ => None,
            },
            responses_api: p.responses_api.unwrap_or(matches!(
                dialect,
                Dialect::OpenAi | Dialect::Azure(azure::Form::V1)
            )) && matches!(
                dialect,
                Dialect::OpenAi | Dialect::Azure(_) | Dialect::Gemini
            ),
            dialect,
            auto_cache: p.auto_cache,
        })
    }

    /// Whether this provider can serve `op` (natively or translated).
    pub fn serves(&self, op: crate::vocab::Operation) -> bool {
        op.served_by(self.backend_type, self.responses_api)
    }

    /// Upstream path and query of a request for `client_path` (`/v1/...`) served by the
    /// backend model `model`: the dialect's prefix + the client path after `/v1`, then only
    /// the gateway's own query parameters: Azure's `api-version` (from config), the base
    /// URL's query, then `route_query`. The client's query string never reaches a provider:
    /// `route_query` is for parameters a gateway route itself needs upstream (the native
    /// Gemini routes' `alt=sse`). `/v1/chat/completions` with base
    /// `https://h/openai/v1?a=2` and `route_query` `x=1` → `/openai/v1/chat/completions?a=2&x=1`;
    /// an Azure deployments-form provider sends
    /// `/openai/deployments/{model}/chat/completions?api-version=…`.
    pub fn upstream_path(
        &self,
        client_path: &str,
        route_query: Option<&str>,
        model: Option<&str>,
    ) -> String {
        let rest = client_path.strip_prefix("/v1").unwrap_or(client_path);
        let rest = if rest.is_empty() { "/" } else { rest };
        let mut out = String::with_capacity(self.endpoint.path_prefix.len() + rest.len() + 64);
        out.push_str(&self.endpoint.path_prefix);
        let version = match &self.dialect {
            Dialect::Azure(form @ azure::Form::Deployments { .. }) => {
                out.push_str(&azure::deployment_path(model, rest));
                azure::version_query(form, self.endpoint.query.as_deref())
            }
            _ => {
                if !rest.starts_with('/') {
                    out.push('/');
                }
                out.push_str(rest);
                None
            }
        };
        let queries = [
            version.as_deref(),
            self.endpoint.query.as_deref(),
            route_query,
        ];
        let mut sep = '?';
        for q in queries.into_iter().flatten().filter(|q| !q.is_empty()) {
            out.push(sep);
            out.push_str(q);
            sep = '&';
        }
        out
    }
}

/// Active health of one provider account (shared by all its backends).
#[derive(Debug)]
pub struct ProviderHealth {
    healthy: AtomicBool,
    checks: AtomicU64,
    last_check_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    /// Short reason of the last failed check (never contains a secret).
    last_error: Mutex<Option<String>>,
}

impl Default for ProviderHealth {
    fn default() -> Self {
        ProviderHealth {
            healthy: AtomicBool::new(true),
            checks: AtomicU64::new(0),
            last_check_ms: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            last_error: Mutex::new(None),
        }
    }
}

impl ProviderHealth {
    /// False only after an active check failed (a provider counts as healthy until then).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records an active check result. Returns the previous health.
    pub fn record_check(&self, ok: bool, error: Option<String>, now_ms: u64) -> bool {
        self.checks.fetch_add(1, Ordering::Relaxed);
        self.last_check_ms.store(now_ms, Ordering::Relaxed);
        if ok {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        } else {
            self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        }
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
        self.healthy.swap(ok, Ordering::Relaxed)
    }

    /// Marks the provider healthy after real traffic succeeded through it.
    pub fn mark_healthy_by_traffic(&self) {
        if !self.healthy.load(Ordering::Relaxed) {
            self.healthy.store(true, Ordering::Relaxed);
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Number of active checks run.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// `now_ms` of the last check (0 = never).
    pub fn last_check_ms(&self) -> u64 {
        self.last_check_ms.load(Ordering::Relaxed)
    }

    /// Consecutive failed checks.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Reason of the last failed check.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{endpoint::parse_base_url, Secret};

    fn provider(url: &str, bt: BackendType) -> ProviderRoute {
        let p = Provider {
            id: "p".into(),
            name: "P".into(),
            endpoint: parse_base_url(url).unwrap(),
            api_key: Secret::new("sk-test"),
            models: vec![],
            enabled: true,
            timeout: None,
            max_retries: Some(2),
            backend_type: bt,
            api_version: (bt == BackendType::Azure)
                .then(|| crate::config::DEFAULT_AZURE_API_VERSION.to_string()),
            headers: vec![("OpenAI-Organization".into(), Secret::new("org-1"))],
            forward_headers: vec!["x-trace".into()],
            responses_api: None,
            auto_cache: true,
        };
        let addrs = Arc::new(ResolvedAddrs::new(&p.endpoint.host, p.endpoint.port));
        ProviderRoute::build(&p, Duration::from_secs(30), Default::default(), addrs).unwrap()
    }

    #[test]
    fn only_gemini_400s_are_probed_for_a_refused_key() {
        let body = br#"[{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}]"#;
        let mut probe = KeyRefusalProbe::of(&Dialect::Gemini, 400).unwrap();
        let (a, b) = body.split_at(70);
        probe.feed(a);
        assert!(!probe.refused());
        probe.feed(b);
        assert!(probe.refused());
        let mut probe = KeyRefusalProbe::of(&Dialect::Gemini, 400).unwrap();
        probe.feed(br#"{"error":{"status":"INVALID_ARGUMENT","message":"bad field"}}"#);
        assert!(!probe.refused());
        assert!(KeyRefusalProbe::of(&Dialect::Gemini, 401).is_none());
        assert!(KeyRefusalProbe::of(&Dialect::OpenAi, 400).is_none());
        // the probe reads at most MAX bytes
        let mut probe = KeyRefusalProbe::of(&Dialect::Gemini, 400).unwrap();
        probe.feed(&vec![b' '; KeyRefusalProbe::MAX]);
        probe.feed(b"API_KEY_INVALID");
        assert!(!probe.refused());
    }

    #[test]
    fn joins_paths_and_queries() {
        let p = provider("https://api.openai.com/v1", BackendType::OpenAi);
        assert_eq!(
            p.upstream_path("/v1/chat/completions", None, Some("gpt-4o")),
            "/v1/chat/completions"
        );
        let p = provider(
            "https://x.azure.com/openai/v1?api-version=2",
            BackendType::Azure,
        );
        assert_eq!(
            p.upstream_path("/v1/chat/completions", Some("a=b"), Some("gpt-4o")),
            "/openai/v1/chat/completions?api-version=2&a=b"
        );
        let p = provider("http://127.0.0.1:9000", BackendType::OpenAi);
        assert_eq!(p.upstream_path("/v1/embeddings", None, None), "/embeddings");
        assert_eq!(p.max_attempts, Some(3));
    }

    #[test]
    fn azure_deployments_form() {
        for base in [
            "https://r.openai.azure.com",
            "https://r.openai.azure.com/openai/",
        ] {
            let p = provider(base, BackendType::Azure);
            assert_eq!(
                p.upstream_path("/v1/chat/completions", None, Some("gpt-4o")),
                "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
            );
            assert_eq!(
                p.upstream_path("/v1/embeddings", Some("x=1"), Some("emb 3/large")),
                "/openai/deployments/emb%203%2Flarge/embeddings?api-version=2024-10-21&x=1"
            );
            // the health probe lists the resource's models
            assert_eq!(
                p.upstream_path("/v1/models", None, None),
                "/openai/models?api-version=2024-10-21"
            );
        }
        // an api-version in the base URL is not sent twice
        let p = provider(
            "https://r.openai.azure.com?api-version=2024-02-01",
            BackendType::Azure,
        );
        assert_eq!(
            p.upstream_path("/v1/completions", None, Some("d")),
            "/openai/deployments/d/completions?api-version=2024-02-01"
        );
    }

    #[test]
    fn gemini_and_anthropic_prefixes() {
        let p = provider(
            "https://generativelanguage.googleapis.com",
            BackendType::Gemini,
        );
        assert_eq!(
            p.upstream_path("/v1/chat/completions", None, Some("gemini-2.0-flash")),
            "/v1beta/openai/chat/completions"
        );
        let p = provider(
            "https://generativelanguage.googleapis.com/v1beta/openai/",
            BackendType::Gemini,
        );
        assert_eq!(
            p.upstream_path("/v1/models", None, None),
            "/v1beta/openai/models"
        );
        for base in ["https://api.anthropic.com", "https://api.anthropic.com/v1"] {
            let p = provider(base, BackendType::Anthropic);
            assert_eq!(p.upstream_path("/v1/models", None, None), "/v1/models");
        }
    }

    #[test]
    fn credentials_per_dialect() {
        let names = |bt| {
            provider("https://h/v1", bt)
                .headers
                .iter()
                .map(|(n, _)| n.as_str().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(BackendType::OpenAi),
            ["authorization", "openai-organization"]
        );
        assert_eq!(
            names(BackendType::Azure),
            ["api-key", "openai-organization"]
        );
        assert_eq!(
            names(BackendType::Anthropic),
            ["x-api-key", "anthropic-version", "openai-organization"]
        );
        let p = provider("https://h/v1", BackendType::OpenAi);
        assert_eq!(p.headers[0].1.to_str().unwrap(), "Bearer sk-test");
        assert_eq!(p.forward_headers, [HeaderName::from_static("x-trace")]);
        assert!(p.headers[0].1.is_sensitive());
        assert!(!format!("{:?}", p.headers).contains("sk-test"));
    }

    #[test]
    fn ip_literals_resolve_without_dns() {
        let a = ResolvedAddrs::new("127.0.0.1", 8080);
        assert!(!a.needs_dns());
        assert_eq!(a.pick(), Some("127.0.0.1:8080".parse().unwrap()));
        let b = ResolvedAddrs::new("localhost", 8080);
        assert!(b.needs_dns());
        assert_eq!(b.pick(), None);
        assert!(b.refresh_blocking());
        assert!(b.pick().is_some());
    }
}
