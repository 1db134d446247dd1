//! Upstream error answers of one dialect in the client's dialect.
//!
//! Shapes: OpenAI `{"error":{"message","type","param","code"}}`; Anthropic
//! `{"type":"error","error":{"type","message"}}`.
//!
//! Status: kept, except Anthropic's 529 → 503. Message: the provider's `error.message` when
//! the body has the expected shape, otherwise a generic "The upstream provider answered with
//! status N." — and always "The upstream provider refused the gateway's credentials." for
//! 401/403 (the provider's text may quote part of the key). The body is always well-formed,
//! whatever the upstream sent; it is written by [`crate::wire::error`].
//!
//! Anthropic → OpenAI (`type`; `code` = the Anthropic type when the body named a known one,
//! else `null`; `param` always `null`):
//!
//! | Anthropic `error.type` (or status when absent/unknown) | OpenAI `type` |
//! |---|---|
//! | `invalid_request_error` (400, other 4xx) | `invalid_request_error` |
//! | `authentication_error` (401) | `authentication_error` |
//! | `permission_error` (403) | `permission_error` |
//! | `not_found_error` (404) | `invalid_request_error` |
//! | `request_too_large` (413) | `invalid_request_error` |
//! | `rate_limit_error` (429) | `rate_limit_error` |
//! | `api_error` (500, other 5xx) | `server_error` |
//! | `overloaded_error` (503, 529) | `server_error` |
//!
//! OpenAI → Anthropic: `type` = [`anthropic_error_type`] of the status (OpenAI's own types are
//! not a closed set: `insufficient_quota`, `tokens`, `server_error`, …):
//!
//! | status | Anthropic `type` |
//! |---|---|
//! | 400, 405, 408, 411, 415, 422 | `invalid_request_error` |
//! | 401 | `authentication_error` |
//! | 403 | `permission_error` |
//! | 404 | `not_found_error` |
//! | 413 | `request_too_large` |
//! | 429 | `rate_limit_error` |
//! | 503, 529 | `overloaded_error` |
//! | other (500, other 5xx, other 4xx) | `api_error` |
//!
//! In-band stream errors have no status: their type is mapped by name
//! ([`anthropic_type_to_openai`], [`openai_type_to_anthropic`]).

use crate::wire::error::{
    AnthropicError, AnthropicErrorIn, ErrorBodyIn, OpenAiError, OpenAiErrorIn,
};
use crate::wire::raw::Str;

/// Message used instead of the provider's text when it refused the gateway's credentials.
pub const CREDENTIALS_MESSAGE: &str = "The upstream provider refused the gateway's credentials.";

/// Anthropic error types the gateway emits or recognizes.
const ANTHROPIC_TYPES: [&str; 8] = [
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
];

/// Anthropic error `type` for a status: the gateway's one table
/// ([`crate::error::anthropic_error_type`]).
pub use crate::error::anthropic_error_type;

/// `t` when it is one of the Anthropic error types (as a static string).
pub(crate) fn known_anthropic_type(t: &str) -> Option<&'static str> {
    ANTHROPIC_TYPES.iter().find(|k| **k == t).copied()
}

/// OpenAI error `type` for a status (used when an Anthropic body names no known type).
pub fn openai_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

/// OpenAI error `type` for an Anthropic error `type` (unknown → `server_error`).
pub fn anthropic_type_to_openai(t: &str) -> &'static str {
    match t {
        "invalid_request_error" | "not_found_error" | "request_too_large" => {
            "invalid_request_error"
        }
        "authentication_error" => "authentication_error",
        "permission_error" => "permission_error",
        "rate_limit_error" => "rate_limit_error",
        _ => "server_error",
    }
}

/// Anthropic error `type` for an OpenAI in-band error's `type` / `code` (no status known).
pub fn openai_type_to_anthropic(t: Option<&str>, code: Option<&str>) -> &'static str {
    for s in [t, code].into_iter().flatten() {
        if let Some(k) = ANTHROPIC_TYPES.iter().find(|k| **k == s) {
            return k;
        }
        if s.contains("rate_limit") || s == "tokens" || s == "requests" {
            return "rate_limit_error";
        }
        if s.contains("overloaded") {
            return "overloaded_error";
        }
    }
    match t {
        Some("invalid_request_error") => "invalid_request_error",
        _ => "api_error",
    }
}

/// The message a client sees for an upstream error: never the provider's own text for
/// 401/403 (it may quote the key), the provider's message otherwise, or a generic one.
fn client_message<'a>(status: u16, upstream: Option<&'a Str<'a>>) -> std::borrow::Cow<'a, str> {
    match upstream {
        _ if status == 401 || status == 403 => CREDENTIALS_MESSAGE.into(),
        Some(m) => m.as_str().into(),
        None => format!("The upstream provider answered with status {status}.").into(),
    }
}

/// An upstream Anthropic error answer in OpenAI's shape: (status, body). Status kept, except
/// 529 → 503. See the module docs for the type table and the message rules.
pub fn anthropic_to_openai(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let out_status = if status == 529 { 503 } else { status };
    let parsed = serde_json::from_slice::<ErrorBodyIn<AnthropicErrorIn<'_>>>(body).ok();
    let known_type = parsed
        .as_ref()
        .and_then(|b| b.error.ty.as_ref())
        .and_then(|t| known_anthropic_type(t.as_str()));
    let ty = match known_type {
        Some(t) => anthropic_type_to_openai(t),
        None => openai_error_type(status),
    };
    let message = client_message(
        status,
        parsed.as_ref().and_then(|b| b.error.message.as_ref()),
    );
    (out_status, openai_error(ty, known_type, &message).body())
}

/// An upstream OpenAI error answer in Anthropic's shape: (status, body). Status kept; `type`
/// from the status ([`anthropic_error_type`]). See the module docs for the message rules.
pub fn openai_to_anthropic(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let parsed = serde_json::from_slice::<ErrorBodyIn<OpenAiErrorIn<'_>>>(body).ok();
    let message = client_message(
        status,
        parsed.as_ref().and_then(|b| b.error.message.as_ref()),
    );
    (
        status,
        AnthropicError {
            kind: anthropic_error_type(status),
            message: &message,
        }
        .body(),
    )
}

/// An upstream OpenAI-compatible error answer (of a chat completions server) for an
/// OpenAI-dialect client of another API (the Responses API): (status, body). Status kept;
/// `type` the provider's when it is a string, else from the status; `code` and `param`
/// `null` (a chat server's codes name chat parameters). The message rules are the module's.
pub fn openai_to_openai(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let parsed = serde_json::from_slice::<ErrorBodyIn<OpenAiErrorIn<'_>>>(body).ok();
    let message = client_message(
        status,
        parsed.as_ref().and_then(|b| b.error.message.as_ref()),
    );
    let ty = parsed
        .as_ref()
        .and_then(|b| b.error.ty.as_ref())
        .map(|t| t.as_str())
        .filter(|t| {
            !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
        .unwrap_or_else(|| openai_error_type(status));
    (status, openai_error(ty, None, &message).body())
}

/// `data: {"error":{…}}\n\n`.
pub(crate) fn openai_stream_error(ty: &str, code: Option<&str>, message: &str) -> Vec<u8> {
    openai_error(ty, code, message).event()
}

/// `event: error\ndata: {"type":"error","error":{…}}\n\n`.
pub(crate) fn anthropic_stream_error(ty: &str, message: &str) -> Vec<u8> {
    AnthropicError { kind: ty, message }.event()
}

/// A translated OpenAI error: `param` is always `null`.
fn openai_error<'a>(ty: &'a str, code: Option<&'a str>, message: &'a str) -> OpenAiError<'a> {
    OpenAiError {
        message,
        kind: ty,
        param: None,
        code,
    }
}
