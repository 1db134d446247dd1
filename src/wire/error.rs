//! Error bodies and in-stream error events, for every dialect: the one place they are written.
//!
//! Shapes (members in this order, serialised by derive, compact):
//! * OpenAI body: `{"error":{"message":…,"type":…,"param":…,"code":…}}`; as a stream event
//!   `data: <body>\n\n`.
//! * Anthropic body: `{"type":"error","error":{"type":…,"message":…}}`; as a stream event
//!   `event: error\ndata: <body>\n\n`.
//!
//! Strings are escaped by `serde_json`, so a `\n` or `\r` in a message cannot split an event's
//! `data:` line: every event is one well-formed SSE event whose data is one JSON value.
//!
//! Writing uses [`OpenAiError`] and [`AnthropicError`] (every member set). Reading an
//! upstream's error uses their lenient twins [`OpenAiErrorIn`] and [`AnthropicErrorIn`]
//! (every member optional, other members ignored), inside [`ErrorBodyIn`] for a whole body.

use super::raw::Str;
use serde::{Deserialize, Serialize};

/// An OpenAI error: the inner object of `{"error":{…}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OpenAiError<'a> {
    /// Human-readable text.
    pub message: &'a str,
    /// `error.type`, e.g. `invalid_request_error`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// `error.param` (the offending request member), `null` when none.
    pub param: Option<&'a str>,
    /// `error.code`, `null` when none.
    pub code: Option<&'a str>,
}

/// An Anthropic error: the inner object of `{"type":"error","error":{…}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AnthropicError<'a> {
    /// `error.type`, e.g. `overloaded_error`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// Human-readable text.
    pub message: &'a str,
}

/// An upstream error body as read: `{"error":{…}, …}` (other members, such as Anthropic's
/// `"type":"error"`, ignored). `E` is [`OpenAiErrorIn`] or [`AnthropicErrorIn`].
#[derive(Debug, Deserialize)]
pub struct ErrorBodyIn<E> {
    /// The inner error object.
    pub error: E,
}

/// An OpenAI error as read (a body's `error`, or an in-band stream error): every member
/// optional, `param` and other members ignored.
#[derive(Debug, Deserialize)]
pub struct OpenAiErrorIn<'a> {
    /// Human-readable text, when a string.
    #[serde(borrow, default)]
    pub message: Option<Str<'a>>,
    /// `error.type`, when a string.
    #[serde(borrow, rename = "type", default)]
    pub ty: Option<Str<'a>>,
    /// `error.code`: any JSON value (providers send strings, numbers or `null`).
    #[serde(default)]
    pub code: Option<serde_json::Value>,
}

impl OpenAiErrorIn<'_> {
    /// `code` when it is a string.
    #[must_use]
    pub fn code_str(&self) -> Option<&str> {
        self.code.as_ref().and_then(|c| c.as_str())
    }
}

/// An Anthropic error as read (a body's `error`, or an `error` event's): both members
/// optional, other members ignored. Written back (members present only) when an event that
/// carries it is re-serialised.
#[derive(Debug, Deserialize, Serialize)]
pub struct AnthropicErrorIn<'a> {
    /// e.g. `overloaded_error`.
    #[serde(
        borrow,
        rename = "type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ty: Option<Str<'a>>,
    /// The message.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Str<'a>>,
}

/// `{"error":{…}}`.
#[derive(Serialize)]
struct OpenAiEnvelope<'a> {
    error: &'a OpenAiError<'a>,
}

/// `{"type":"error","error":{…}}` (the tag is written first).
#[derive(Serialize)]
#[serde(tag = "type", rename = "error")]
struct AnthropicEnvelope<'a> {
    error: &'a AnthropicError<'a>,
}

/// Appends `value` as compact JSON, or `fallback` if serialising fails (it cannot for these
/// string-only types into a `Vec`; the output stays well-formed regardless).
fn push_json<T: Serialize>(out: &mut Vec<u8>, value: &T, fallback: &[u8]) {
    let start = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        out.extend_from_slice(fallback);
    }
}

impl OpenAiError<'_> {
    /// The JSON body `{"error":{"message":…,"type":…,"param":…,"code":…}}`.
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.len_hint());
        self.push_body(&mut out);
        out
    }

    /// The stream event `data: {"error":{…}}\n\n`: one `data:` line, then the blank line.
    /// A caller whose client may be in the middle of an event sends `\n\n` first.
    pub fn event(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(72 + self.len_hint());
        out.extend_from_slice(b"data: ");
        self.push_body(&mut out);
        out.extend_from_slice(b"\n\n");
        out
    }

    fn push_body(&self, out: &mut Vec<u8>) {
        push_json(out, &OpenAiEnvelope { error: self }, b"{\"error\":{}}");
    }

    fn len_hint(&self) -> usize {
        self.message.len()
            + self.kind.len()
            + self.param.map_or(0, str::len)
            + self.code.map_or(0, str::len)
    }
}

impl AnthropicError<'_> {
    /// The JSON body `{"type":"error","error":{"type":…,"message":…}}`.
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.len_hint());
        self.push_body(&mut out);
        out
    }

    /// The stream event `event: error\ndata: {"type":"error","error":{…}}\n\n`.
    /// A caller whose client may be in the middle of an event sends `\n\n` first.
    pub fn event(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(68 + self.len_hint());
        out.extend_from_slice(b"event: error\ndata: ");
        self.push_body(&mut out);
        out.extend_from_slice(b"\n\n");
        out
    }

    fn push_body(&self, out: &mut Vec<u8>) {
        push_json(
            out,
            &AnthropicEnvelope { error: self },
            b"{\"type\":\"error\"}",
        );
    }

    fn len_hint(&self) -> usize {
        self.message.len() + self.kind.len()
    }
}

/// The gateway's final error event on an OpenAI-dialect stream it cuts:
/// `data: {"error":{"message":<message>,"type":"upstream_error","param":null,"code":"stream_error"}}\n\n`.
pub fn openai_stream_cut_event(message: &str) -> Vec<u8> {
    OpenAiError {
        message,
        kind: "upstream_error",
        param: None,
        code: Some("stream_error"),
    }
    .event()
}

/// The gateway's final error event on an Anthropic-dialect stream it cuts:
/// `event: error\ndata: {"type":"error","error":{"type":"api_error","message":<message>}}\n\n`.
pub fn anthropic_stream_cut_event(message: &str) -> Vec<u8> {
    AnthropicError {
        kind: "api_error",
        message,
    }
    .event()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_shapes() {
        let e = OpenAiError {
            message: "",
            kind: "t",
            param: None,
            code: Some("c"),
        };
        assert_eq!(
            e.body(),
            b"{\"error\":{\"message\":\"\",\"type\":\"t\",\"param\":null,\"code\":\"c\"}}"
        );
        assert_eq!(
            e.event(),
            b"data: {\"error\":{\"message\":\"\",\"type\":\"t\",\"param\":null,\"code\":\"c\"}}\n\n"
        );
        let e = OpenAiError {
            message: "m",
            kind: "t",
            param: Some("model"),
            code: None,
        };
        assert_eq!(
            e.body(),
            b"{\"error\":{\"message\":\"m\",\"type\":\"t\",\"param\":\"model\",\"code\":null}}"
        );
    }

    #[test]
    fn anthropic_shapes() {
        let e = AnthropicError {
            kind: "api_error",
            message: "gone",
        };
        assert_eq!(
            e.body(),
            b"{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"gone\"}}"
        );
        assert_eq!(
            e.event(),
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"gone\"}}\n\n"
        );
        assert_eq!(anthropic_stream_cut_event("gone"), e.event());
    }

    #[test]
    fn events_are_one_line_of_json() {
        let msg = "upstream said \"no\"\nline2\r\\ \t\u{1}\u{1f} é 😀";
        for (ev, prefix) in [
            (openai_stream_cut_event(msg), &b"data: "[..]),
            (anthropic_stream_cut_event(msg), b"event: error\ndata: "),
        ] {
            let line = ev
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(b"\n\n"))
                .unwrap_or_default();
            assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
            let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
            assert_eq!(v["error"]["message"], msg);
        }
    }
}
