//! `[settings.responses]`: the gateway's store of Responses API conversations held for
//! translated backends (and of which account produced each response id).

use super::problem::Problems;
use serde::Deserialize;
use std::time::Duration;

/// Default bound of the in-memory store: 64 MiB.
pub const DEFAULT_STORE_MAX_BYTES: u64 = 64 << 20;
/// Default time a stored response stays continuable: one day.
pub const DEFAULT_STORE_TTL_SECONDS: f64 = 86_400.0;

/// `[settings.responses]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileResponses {
    pub store_max_bytes: Option<u64>,
    pub store_ttl_seconds: Option<f64>,
}

/// `[settings.responses]` after defaults and validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsesSettings {
    /// Most bytes of stored conversations kept in memory (least recently used go first).
    /// Unused when shared state holds them (Redis bounds them by TTL).
    pub store_max_bytes: u64,
    /// How long a stored response can be continued or read back.
    pub store_ttl: Duration,
}

impl Default for ResponsesSettings {
    fn default() -> Self {
        ResponsesSettings {
            store_max_bytes: DEFAULT_STORE_MAX_BYTES,
            store_ttl: Duration::from_secs_f64(DEFAULT_STORE_TTL_SECONDS),
        }
    }
}

/// Validates `[settings.responses]`: `store_max_bytes` ≥ 1 MiB (a conversation of a coding
/// agent alone is often larger), `store_ttl_seconds` > 0 and ≥ 1.
pub(super) fn validate(f: Option<FileResponses>, p: &mut Problems) -> ResponsesSettings {
    let f = f.unwrap_or_default();
    let store_max_bytes = match f.store_max_bytes {
        Some(n) if n < 1 << 20 => {
            p.add(
                "settings.responses.store_max_bytes",
                format!("must be at least 1048576 (1 MiB), got {n}"),
            );
            DEFAULT_STORE_MAX_BYTES
        }
        Some(n) => n,
        None => DEFAULT_STORE_MAX_BYTES,
    };
    let path = "settings.responses.store_ttl_seconds";
    let mut store_ttl = p.seconds(path, f.store_ttl_seconds, DEFAULT_STORE_TTL_SECONDS);
    if store_ttl < Duration::from_secs(1) {
        p.add(path, "must be at least 1 second");
        store_ttl = Duration::from_secs_f64(DEFAULT_STORE_TTL_SECONDS);
    }
    ResponsesSettings {
        store_max_bytes,
        store_ttl,
    }
}
