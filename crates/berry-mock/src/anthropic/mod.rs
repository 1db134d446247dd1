//! The Anthropic Messages API: `POST …/messages` (a `message` body, [`messages_body`],
//! or its event stream, [`MessagesStream`]), `POST …/messages/count_tokens`
//! ([`count_tokens_body`]), `GET …/models` asked with `anthropic-version`
//! ([`models_body`]), request validation ([`validate`]) and Anthropic-shaped errors
//! ([`error_body`]).
//!
//! A request is *native* when it carries an `anthropic-version` header, as every
//! Anthropic client sends it: native `…/messages` requests are validated like the real
//! API and their streams carry a `ping` after `content_block_start`. Requests without
//! the header keep the mock's historic lenient answer (no validation, no `ping`), unless
//! [`MockOptions::require_anthropic_version`](crate::MockOptions::require_anthropic_version)
//! is set, which refuses them with a 400. `count_tokens` is always validated.
//!
//! Usage: `input_tokens` = the prompt tokens outside the cache (see
//! [`crate::answer`]), `cache_read_input_tokens` / `cache_creation_input_tokens` from
//! `x-mock-cache-read` / `x-mock-cache-write` (default 0), or from the simulated prompt
//! cache when [`MockOptions::prompt_cache`](crate::MockOptions::prompt_cache) is on (then
//! they come out of `input_tokens`; see `prompt_cache`), `output_tokens` = content
//! events. A tool call (see [`crate::tools`]) is one `tool_use` block (id
//! `toolu_mock_<n>`) with `stop_reason` `tool_use`.

mod events;
mod message;
pub(crate) mod validate;

pub(crate) use events::MessagesStream;
pub(crate) use message::messages_body;

use crate::json::{push_json_str, push_u64};

/// The message of the 400 for a missing `anthropic-version` header.
pub(crate) const VERSION_REQUIRED: &str = "anthropic-version: header is required";
/// The message of a 401 on an Anthropic route.
pub(crate) const INVALID_KEY: &str = "invalid x-api-key";
/// The message of a 529.
pub(crate) const OVERLOADED: &str = "Overloaded";

/// The Anthropic error `type` for an answer status.
fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// Anthropic-shaped error body for `status`:
/// `{"type":"error","error":{"type":…,"message":…}}` (400 / other 4xx
/// `invalid_request_error`, 401 `authentication_error`, 403 `permission_error`, 404
/// `not_found_error`, 413 `request_too_large`, 429 `rate_limit_error`, 529
/// `overloaded_error`, other 5xx `api_error`).
pub(crate) fn error_body(status: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"type\":\"error\",\"error\":{\"type\":\"");
    out.extend_from_slice(error_type(status).as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    push_json_str(&mut out, message);
    out.extend_from_slice(b"}}");
    out
}

/// `count_tokens` body: `{"input_tokens":N}`.
pub(crate) fn count_tokens_body(input_tokens: u64) -> Vec<u8> {
    let mut out = b"{\"input_tokens\":".to_vec();
    push_u64(&mut out, input_tokens);
    out.push(b'}');
    out
}

/// Anthropic's `GET /v1/models` body listing `models`: `data` of
/// `{"type":"model","id":…,"display_name":…,"created_at":"2025-01-01T00:00:00Z"}`,
/// `has_more` false, `first_id` / `last_id`.
pub(crate) fn models_body(models: &[String]) -> Vec<u8> {
    let mut out = b"{\"data\":[".to_vec();
    for (i, m) in models.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"type\":\"model\",\"id\":");
        push_json_str(&mut out, m);
        out.extend_from_slice(b",\"display_name\":");
        push_json_str(&mut out, m);
        out.extend_from_slice(b",\"created_at\":\"2025-01-01T00:00:00Z\"}");
    }
    out.extend_from_slice(b"],\"has_more\":false,\"first_id\":");
    let id = |m: Option<&String>| m.map_or_else(|| b"null".to_vec(), |m| crate::json::json_str(m));
    out.extend_from_slice(&id(models.first()));
    out.extend_from_slice(b",\"last_id\":");
    out.extend_from_slice(&id(models.last()));
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Value;

    #[test]
    fn shapes() {
        let v: Value = serde_json::from_slice(&error_body(529, OVERLOADED)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "overloaded_error");
        assert_eq!(v["error"]["message"], "Overloaded");
        for (s, t) in [
            (400, "invalid_request_error"),
            (429, "rate_limit_error"),
            (503, "api_error"),
        ] {
            let v: Value = serde_json::from_slice(&error_body(s, "m")).unwrap();
            assert_eq!(v["error"]["type"], t);
        }
        let v: Value = serde_json::from_slice(&models_body(&["a".into(), "b".into()])).unwrap();
        assert_eq!(v["data"][1]["id"], "b");
        assert_eq!(v["data"][0]["type"], "model");
        assert_eq!(
            (v["first_id"].as_str(), v["last_id"].as_str()),
            (Some("a"), Some("b"))
        );
        let v: Value = serde_json::from_slice(&models_body(&[])).unwrap();
        assert!(v["first_id"].is_null());
        assert_eq!(count_tokens_body(7), b"{\"input_tokens\":7}");
    }
}
