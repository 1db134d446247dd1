//! Settings of the Redis-shared state (`[settings.shared_state]`): the connection, key
//! prefix and timeouts one replica uses, with their defaults and their validation.

use super::file::FileSharedState;
use super::model::{OnUnavailable, Secret, SharedStateConfig};
use super::problem::Problems;
use std::time::Duration;

/// Default key prefix.
pub const DEFAULT_KEY_PREFIX: &str = "berry:";
/// Default bound on one Redis round trip on the request path.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Default lifetime of a concurrency lease that is not renewed.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);
/// Longest accepted round-trip bound (`timeout_ms`).
const MAX_TIMEOUT: Duration = Duration::from_secs(10);
/// Smallest accepted lease TTL.
const MIN_LEASE_TTL: Duration = Duration::from_millis(300);

/// Connection settings (`[settings.shared_state]`).
#[derive(Debug, Clone)]
pub struct SharedSettings {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS with rustls and the
    /// system roots). May carry a password: never logged (logs show scheme, host and port).
    pub redis_url: Secret,
    /// Prefix of every key (default `berry:`); no `{` or `}` (they would break the per-user
    /// hash tags).
    pub key_prefix: String,
    /// Bound on one round trip on the request path (admission, probe); background writes get
    /// 4× this (at least 200 ms). Default 50 ms.
    pub timeout: Duration,
    /// Lifetime of a concurrency lease without renewal; leases still held are renewed every
    /// third of it, so a replica that dies frees its slots within this. Default 30 s.
    pub lease_ttl: Duration,
}

impl SharedSettings {
    /// Settings for `redis_url` with every default.
    pub fn new(redis_url: Secret) -> Self {
        SharedSettings {
            redis_url,
            key_prefix: DEFAULT_KEY_PREFIX.to_string(),
            timeout: DEFAULT_TIMEOUT,
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }

    /// Every problem of these settings, as (field of `[settings.shared_state]`, message),
    /// empty when `start` can use them. The config validation reports these under their
    /// key paths; `start` refuses settings that have any. No message contains the URL.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        // The client crate parses the URL as it will when connecting.
        let url = self.redis_url.expose();
        let has_host = |rest: &str| !rest.is_empty() && !rest.starts_with('/');
        let url_ok = match url.split_once("://") {
            Some(("redis" | "rediss", rest)) => has_host(rest) && redis::Client::open(url).is_ok(),
            _ => false,
        };
        if !url_ok {
            out.push((
                "redis_url",
                "must be a redis://host[:port][/db] or rediss://… URL".to_string(),
            ));
        }
        if self
            .key_prefix
            .chars()
            .any(|c| c.is_control() || c == '{' || c == '}')
        {
            out.push((
                "key_prefix",
                "must not contain control characters or braces (braces are Redis hash tags)"
                    .to_string(),
            ));
        }
        if !(Duration::from_millis(1)..=MAX_TIMEOUT).contains(&self.timeout) {
            out.push((
                "timeout_ms",
                format!(
                    "must be between 1 and {} (got {})",
                    MAX_TIMEOUT.as_millis(),
                    self.timeout.as_millis()
                ),
            ));
        }
        if self.lease_ttl < MIN_LEASE_TTL {
            out.push((
                "lease_ttl",
                format!("must be at least {} ms", MIN_LEASE_TTL.as_millis()),
            ));
        }
        out
    }

    /// Bound on one background round trip (flush, renewal, poll): 4× `timeout`, at least
    /// 200 ms.
    pub fn background_timeout(&self) -> Duration {
        self.timeout
            .saturating_mul(4)
            .max(Duration::from_millis(200))
    }
}

/// `[settings.shared_state]`: a `redis://` / `rediss://` URL with a host, a prefix, a
/// timeout of 1..=10000 ms, and what to do when Redis does not answer.
pub(super) fn validate_shared_state(
    s: FileSharedState,
    p: &mut Problems,
) -> Option<SharedStateConfig> {
    const PATH: &str = "settings.shared_state";
    let url = match s.redis_url {
        None => {
            p.add(format!("{PATH}.redis_url"), "is required");
            return None;
        }
        Some(u) => u,
    };
    let mut settings = SharedSettings::new(Secret::new(url));
    if let Some(prefix) = s.key_prefix {
        settings.key_prefix = prefix;
    }
    if let Some(ms) = s.timeout_ms {
        settings.timeout = Duration::from_millis(ms);
    }
    // The messages never echo the URL: it may carry a password.
    for (field, message) in settings.problems() {
        p.add(format!("{PATH}.{field}"), message);
    }
    let on_unavailable = match s.on_unavailable.as_deref() {
        None | Some("local") => OnUnavailable::Local,
        Some("deny") => OnUnavailable::Deny,
        Some("allow") => OnUnavailable::Allow,
        Some(other) => {
            p.add(
                format!("{PATH}.on_unavailable"),
                format!("`{other}` is not one of local, deny, allow"),
            );
            OnUnavailable::Local
        }
    };
    Some(SharedStateConfig {
        redis_url: settings.redis_url,
        key_prefix: settings.key_prefix,
        timeout: settings.timeout,
        on_unavailable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validation() {
        let fields = |s: &SharedSettings| s.problems().into_iter().map(|p| p.0).collect::<Vec<_>>();
        let ok = SharedSettings::new(Secret::new("redis://127.0.0.1:6379/0"));
        assert_eq!(fields(&ok), Vec::<&str>::new());
        assert!(fields(&SharedSettings::new(Secret::new("rediss://h:6380"))).is_empty());
        for bad in [
            "http://user:pw@h",
            "redis://",
            "redis:///0",
            "rediss:/h",
            "pw",
        ] {
            let s = SharedSettings::new(Secret::new(bad));
            let p = s.problems();
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert_eq!(p[0].0, "redis_url");
            assert!(!p[0].1.contains("pw"), "{p:?}");
        }
        let mut braces = ok.clone();
        braces.key_prefix = "a{b}:".into();
        assert_eq!(fields(&braces), ["key_prefix"]);
        let mut short = ok.clone();
        short.lease_ttl = Duration::from_millis(10);
        assert_eq!(fields(&short), ["lease_ttl"]);
        let mut zero = ok.clone();
        zero.timeout = Duration::ZERO;
        assert_eq!(fields(&zero), ["timeout_ms"]);
        let mut long = ok;
        long.timeout = Duration::from_millis(10_001);
        assert_eq!(fields(&long), ["timeout_ms"]);
        let dbg = format!(
            "{:?}",
            SharedSettings::new(Secret::new("redis://u:hunter2@h"))
        );
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }
}
