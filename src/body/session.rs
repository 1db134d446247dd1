//! Session keys: what ties the requests of one agent session together, reduced to a hash
//! at once. The raw key is never kept: [`SessionKey`] is the only form that leaves the
//! request scan or the header read, and its `Display` (16 hex digits) is what may be stored
//! or logged.
//!
//! The hash is the first 64 bits of SHA-256 (`sha2`, already a dependency): the same value on
//! every replica, architecture and build, so replicas agree on a session's backend through
//! Redis and through rendezvous hashing alike.

use sha2::{Digest, Sha256};
use std::fmt;

/// The 64-bit hash of a session key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey(pub u64);

impl SessionKey {
    /// The hash of `raw`; `None` for an empty key (treated as no key).
    pub fn of(raw: &[u8]) -> Option<SessionKey> {
        if raw.is_empty() {
            return None;
        }
        let digest = Sha256::digest(raw);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Some(SessionKey(u64::from_be_bytes(first)))
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The session keys a request body carries (hashed), found by the one body scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BodySessionKeys {
    /// The top-level `prompt_cache_key` string (OpenAI chat and Responses; Codex).
    pub prompt_cache_key: Option<SessionKey>,
    /// `metadata.user_id` (Anthropic Messages; Claude Code puts its session in it).
    pub metadata_user_id: Option<SessionKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_empty_keys_are_none() {
        let a = SessionKey::of(b"session-1").unwrap();
        assert_eq!(SessionKey::of(b"session-1"), Some(a));
        assert_ne!(SessionKey::of(b"session-2"), Some(a));
        assert_eq!(SessionKey::of(b""), None);
        // first 8 bytes of SHA-256("abc") = ba7816bf8f01cfea
        assert_eq!(
            SessionKey::of(b"abc").unwrap().to_string(),
            "ba7816bf8f01cfea"
        );
    }

    #[test]
    fn the_scan_finds_prompt_cache_key_and_metadata_user_id() {
        let keys = |body: &str| super::super::scan(body.as_bytes()).unwrap().session;
        let k = |s: &str| SessionKey::of(s.as_bytes());
        let s = keys(
            r#"{"model":"m","prompt_cache_key":"p\u0031","metadata":{"x":[1],"user_id":"u"}}"#,
        );
        assert_eq!(s.prompt_cache_key, k("p1"));
        assert_eq!(s.metadata_user_id, k("u"));
        // anything but a non-empty string is no key, and never a refusal
        let s = keys(r#"{"model":"m","prompt_cache_key":7,"metadata":{"user_id":""}}"#);
        assert_eq!(s, BodySessionKeys::default());
        let s = keys(r#"{"model":"m","prompt_cache_key":"\ud800","metadata":"x"}"#);
        assert_eq!(s, BodySessionKeys::default());
        // nested keys of the same name are not the top-level ones; the first one counts
        let s = keys(
            r#"{"model":"m","x":{"prompt_cache_key":"n"},"prompt_cache_key":"a","prompt_cache_key":"b"}"#,
        );
        assert_eq!(s.prompt_cache_key, k("a"));
        // a deep metadata value is still depth-checked
        let deep = format!(
            r#"{{"model":"m","metadata":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(super::super::scan(deep.as_bytes()).is_err());
    }
}
