//! Provider accounts at run time: upstream URL joining, credential headers per API dialect,
//! resolved addresses, and the health-probe request.
//!
//! Dialects differ only in how credentials travel: openai/gemini
//! `Authorization: Bearer`, azure `api-key`, anthropic `x-api-key` + `anthropic-version`.

use crate::config::{BackendType, Endpoint, Provider};
use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `anthropic-version` sent to Anthropic-dialect providers unless configured in `headers`.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Client headers that carry credentials; removed before a request goes upstream.
pub const CLIENT_CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "x-api-key", "api-key"];

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
    pub endpoint: Endpoint,
    pub enabled: bool,
    /// `Host` header value.
    pub host_header: HeaderValue,
    /// Credential and configured extra headers, set on every upstream request. Values are
    /// marked sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Attempt timeout for this provider (connect + response headers).
    pub timeout: Duration,
    /// Most attempts one client request may send to this provider.
    pub max_attempts: Option<u32>,
    pub health: Arc<ProviderHealth>,
    pub addrs: Arc<ResolvedAddrs>,
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
        let mut headers = credential_headers(p.backend_type, p.api_key.expose())
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
        Ok(ProviderRoute {
            id: p.id.clone(),
            name: p.name.clone(),
            backend_type: p.backend_type,
            endpoint: p.endpoint.clone(),
            enabled: p.enabled,
            host_header,
            headers,
            timeout: p.timeout.unwrap_or(default_timeout),
            max_attempts: p.max_retries.map(|r| r.saturating_add(1)),
            health,
            addrs,
        })
    }

    /// Upstream path and query for a client path: the base URL's path prefix + the client
    /// path after `/v1`, then the base URL's query and the client's query.
    /// `/v1/chat/completions?x=1` with base `https://h/openai/v1?api-version=2` →
    /// `/openai/v1/chat/completions?api-version=2&x=1`.
    pub fn upstream_path(&self, client_path: &str, client_query: Option<&str>) -> String {
        let rest = client_path.strip_prefix("/v1").unwrap_or(client_path);
        let rest = if rest.is_empty() { "/" } else { rest };
        let mut out = String::with_capacity(self.endpoint.path_prefix.len() + rest.len() + 32);
        out.push_str(&self.endpoint.path_prefix);
        if !rest.starts_with('/') {
            out.push('/');
        }
        out.push_str(rest);
        let queries = [self.endpoint.query.as_deref(), client_query];
        let mut sep = '?';
        for q in queries.into_iter().flatten().filter(|q| !q.is_empty()) {
            out.push(sep);
            out.push_str(q);
            sep = '&';
        }
        out
    }
}

/// Credential headers for a dialect; the value is marked sensitive.
pub fn credential_headers(
    backend_type: BackendType,
    api_key: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, http::header::InvalidHeaderValue> {
    let sensitive = |v: String| {
        HeaderValue::from_str(&v).map(|mut h| {
            h.set_sensitive(true);
            h
        })
    };
    Ok(match backend_type {
        BackendType::OpenAi | BackendType::Gemini => vec![(
            http::header::AUTHORIZATION,
            sensitive(format!("Bearer {api_key}"))?,
        )],
        BackendType::Azure => vec![(
            HeaderName::from_static("api-key"),
            sensitive(api_key.to_string())?,
        )],
        BackendType::Anthropic => vec![
            (
                HeaderName::from_static("x-api-key"),
                sensitive(api_key.to_string())?,
            ),
            (
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            ),
        ],
    })
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
            headers: vec![("OpenAI-Organization".into(), Secret::new("org-1"))],
        };
        let addrs = Arc::new(ResolvedAddrs::new(&p.endpoint.host, p.endpoint.port));
        ProviderRoute::build(&p, Duration::from_secs(30), Default::default(), addrs).unwrap()
    }

    #[test]
    fn joins_paths_and_queries() {
        let p = provider("https://api.openai.com/v1", BackendType::OpenAi);
        assert_eq!(
            p.upstream_path("/v1/chat/completions", None),
            "/v1/chat/completions"
        );
        let p = provider(
            "https://x.azure.com/openai/v1?api-version=2",
            BackendType::Azure,
        );
        assert_eq!(
            p.upstream_path("/v1/chat/completions", Some("a=b")),
            "/openai/v1/chat/completions?api-version=2&a=b"
        );
        let p = provider("http://127.0.0.1:9000", BackendType::OpenAi);
        assert_eq!(p.upstream_path("/v1/embeddings", None), "/embeddings");
        assert_eq!(p.max_attempts, Some(3));
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
