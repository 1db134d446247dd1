//! Errors in Google's shape: `{"error":{"code":N,"message":"…","status":"…"}}`.
//!
//! | HTTP status | `status` |
//! |---|---|
//! | 400, 413, 422, other 4xx | `INVALID_ARGUMENT` |
//! | 401 | `UNAUTHENTICATED` |
//! | 403 | `PERMISSION_DENIED` |
//! | 404 | `NOT_FOUND` |
//! | 429 | `RESOURCE_EXHAUSTED` |
//! | 502, 503, 504 (Anthropic 529 → 503) | `UNAVAILABLE` |
//! | 500, other 5xx | `INTERNAL` |
//!
//! Upstream error answers keep their status (529 → 503); the message is the provider's
//! `error.message`, a generic one when the body has no such member, and never the
//! provider's text for 401/403 (it may quote the key).

use crate::translate::errors::{known_anthropic_type, CREDENTIALS_MESSAGE};
use crate::wire::error::{AnthropicErrorIn, ErrorBodyIn, OpenAiErrorIn};
use crate::wire::gemini::{GoogleError, GoogleErrorBody};
use crate::wire::raw::{self, Str};

/// Google's canonical status name for an HTTP status (see the module table).
pub use crate::wire::gemini::google_status as status_name;

/// A Google-shaped error body for `status` (529 is reported as 503).
pub use crate::wire::gemini::google_error_body as error_body;

fn error(status: u16, message: &str) -> GoogleError<'_> {
    GoogleError {
        error: GoogleErrorBody {
            code: status,
            message,
            status: status_name(status),
        },
    }
}

fn client_message<'a>(status: u16, upstream: Option<&'a Str<'a>>) -> std::borrow::Cow<'a, str> {
    match upstream {
        _ if status == 401 || status == 403 => CREDENTIALS_MESSAGE.into(),
        Some(m) => m.as_str().into(),
        None => format!("The upstream provider answered with status {status}.").into(),
    }
}

/// An upstream OpenAI-shaped error answer in Google's shape: (status, body).
#[must_use]
pub fn from_openai_error(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let parsed = serde_json::from_slice::<ErrorBodyIn<OpenAiErrorIn<'_>>>(body).ok();
    relayed(
        status,
        parsed.as_ref().and_then(|b| b.error.message.as_ref()),
    )
}

/// An upstream Anthropic error answer in Google's shape: (status, body); 529 → 503.
#[must_use]
pub fn from_anthropic_error(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let parsed = serde_json::from_slice::<ErrorBodyIn<AnthropicErrorIn<'_>>>(body).ok();
    relayed(
        status,
        parsed.as_ref().and_then(|b| b.error.message.as_ref()),
    )
}

/// An upstream error answer with `status` and the provider's `message` (if it had one) in
/// Google's shape: (status, body); 529 → 503.
fn relayed(status: u16, message: Option<&Str<'_>>) -> (u16, Vec<u8>) {
    let m = client_message(status, message);
    let status = if status == 529 { 503 } else { status };
    (status, error_body(status, &m))
}

/// The gateway's final error chunk of a stream: `data: {"error":…}\n\n` (SSE), or the
/// `{"error":…}` element closing the JSON array (`,\r\n{…}]` when `array_open`, else
/// `[{…}]`: the array was not started).
#[must_use]
pub fn stream_error_chunk(sse: bool, array_open: bool, status: u16, message: &str) -> Vec<u8> {
    let status = if status == 529 { 503 } else { status };
    let mut out = Vec::with_capacity(message.len() + 80);
    let e = error(status, message);
    if sse {
        crate::translate::stream::emit(&mut out, "", &e);
    } else {
        out.extend_from_slice(if array_open { b",\r\n" } else { b"[" });
        raw::write(&mut out, &e);
        out.push(b']');
    }
    out
}

/// The status of an in-band Anthropic error by its `type` (unknown → 500).
#[must_use]
pub fn anthropic_type_status(ty: Option<&str>) -> u16 {
    match ty.and_then(known_anthropic_type) {
        Some("invalid_request_error" | "request_too_large") => 400,
        Some("authentication_error") => 401,
        Some("permission_error") => 403,
        Some("not_found_error") => 404,
        Some("rate_limit_error") => 429,
        Some("overloaded_error") => 503,
        _ => 500,
    }
}

/// The status of an in-band OpenAI error by its `type` / `code` (unknown → 500).
#[must_use]
pub fn openai_type_status(ty: Option<&str>, code: Option<&str>) -> u16 {
    let t = crate::translate::errors::openai_type_to_anthropic(ty, code);
    anthropic_type_status(Some(t))
}

/// The message of an in-band error as the client sees it (never the provider's text for
/// 401/403).
#[must_use]
pub fn in_band_message(status: u16, upstream: Option<&str>) -> &str {
    match upstream {
        _ if status == 401 || status == 403 => CREDENTIALS_MESSAGE,
        Some(m) => m,
        None => "The upstream provider reported an error.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn v(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn statuses() {
        for (s, n) in [
            (400, "INVALID_ARGUMENT"),
            (401, "UNAUTHENTICATED"),
            (403, "PERMISSION_DENIED"),
            (404, "NOT_FOUND"),
            (413, "INVALID_ARGUMENT"),
            (429, "RESOURCE_EXHAUSTED"),
            (500, "INTERNAL"),
            (503, "UNAVAILABLE"),
            (529, "UNAVAILABLE"),
        ] {
            assert_eq!(status_name(s), n, "{s}");
        }
        assert_eq!(
            v(&error_body(529, "m")),
            json!({"error": {"code": 503, "message": "m", "status": "UNAVAILABLE"}})
        );
    }

    #[test]
    fn upstream_errors() {
        let (s, b) = from_anthropic_error(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
        );
        assert_eq!(s, 503);
        assert_eq!(v(&b)["error"]["message"], "busy");
        let (s, b) = from_openai_error(401, br#"{"error":{"message":"key sk-abc","type":"x"}}"#);
        assert_eq!(s, 401);
        assert_eq!(v(&b)["error"]["message"], CREDENTIALS_MESSAGE);
        assert_eq!(v(&b)["error"]["status"], "UNAUTHENTICATED");
        let (s, b) = from_openai_error(429, b"not json");
        assert_eq!(s, 429);
        assert_eq!(v(&b)["error"]["status"], "RESOURCE_EXHAUSTED");
    }

    #[test]
    fn stream_error_chunks() {
        let sse = stream_error_chunk(true, false, 500, "x");
        assert_eq!(
            sse,
            b"data: {\"error\":{\"code\":500,\"message\":\"x\",\"status\":\"INTERNAL\"}}\n\n"
        );
        let open = stream_error_chunk(false, true, 429, "x");
        assert!(open.starts_with(b",\r\n{\"error\"") && open.ends_with(b"}]"));
        let closed = stream_error_chunk(false, false, 429, "x");
        assert!(closed.starts_with(b"[{\"error\"") && closed.ends_with(b"}]"));
        assert_eq!(v(&closed)[0]["error"]["code"], 429);
    }
}
