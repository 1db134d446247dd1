//! [`Answer`]: the values one successful answer is built from, whatever its dialect,
//! and the deterministic usage accounting.
//!
//! * `prompt_tokens = body_len / 4 + 1` (`body_len` = decoded request body length):
//!   the prompt tokens neither read from nor written to a cache (Anthropic
//!   `input_tokens`); cache reads and writes (`x-mock-cache-read` / `-write`) come on
//!   top (OpenAI `prompt_tokens` = `prompt_tokens + cache_read`),
//! * `completion_tokens` = number of content chunks (at least 1 for a tool call),
//! * the reply text is `"tok0 tok1 … "` (one `tok<i> ` per chunk), identical for
//!   streamed and non-streamed answers.

use std::borrow::Cow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::json::{json_str, push_json_escaped, push_u64};
use crate::tools::ToolCall;

/// The request body fields the mock reads (everything else is ignored).
#[derive(Deserialize, Default)]
pub(crate) struct ReqFields<'a> {
    /// Borrowed from the body unless it contains escapes; `null` / absent → "".
    #[serde(borrow, default, deserialize_with = "de_model")]
    pub model: Cow<'a, str>,
    /// `stream` (absent / `null` → not streamed).
    #[serde(default)]
    pub stream: Option<bool>,
    /// `stream_options` (OpenAI: `include_usage` adds a usage event).
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// `tools` (see [`crate::tools`]).
    #[serde(default)]
    pub tools: Option<Value>,
    /// `tool_choice` (see [`crate::tools`]).
    #[serde(default)]
    pub tool_choice: Option<Value>,
}

/// `stream_options` of an OpenAI request.
#[derive(Deserialize)]
pub(crate) struct StreamOptions {
    /// Send a final usage event before `[DONE]`.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

impl<'a> ReqFields<'a> {
    /// The fields of `body`; an empty / all-whitespace body has none of them.
    /// `Err` when the body is not a JSON object of the expected shape.
    pub(crate) fn parse(body: &'a [u8]) -> Result<ReqFields<'a>, serde_json::Error> {
        if body.iter().all(u8::is_ascii_whitespace) {
            Ok(ReqFields::default())
        } else {
            serde_json::from_slice(body)
        }
    }

    /// Whether the client asked for a streamed answer.
    pub(crate) fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the client asked for the OpenAI usage event.
    pub(crate) fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

fn de_model<'de, D>(d: D) -> Result<Cow<'de, str>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a model name string or null")
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_string()))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_str(self)
        }
    }
    d.deserialize_option(V)
}

/// Per-answer values shared by the body and stream builders of every dialect.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    /// Sequence number, used in ids (`chatcmpl-mock-<id>`).
    pub id: u64,
    /// Unix seconds.
    pub created: u64,
    /// The model, as a quoted JSON string.
    pub model_json: Bytes,
    /// The mock's name as a quoted JSON string (`system_fingerprint`).
    pub fingerprint_json: Bytes,
    /// Prompt tokens outside any cache: `body_len / 4 + 1`.
    pub prompt_tokens: u64,
    /// Prompt tokens read from the cache.
    pub cache_read: u64,
    /// Prompt tokens written to the cache.
    pub cache_write: u64,
    /// Completion tokens = content chunks (text chunks or tool-input pieces).
    pub completion_tokens: u32,
    /// OpenAI streams: send the usage event.
    pub include_usage: bool,
    /// The answer is a call of this tool instead of text.
    pub tool: Option<ToolCall>,
    /// The reply text when it is not `tok0 tok1 … ` (the answer to a tool's output, see
    /// [`crate::tools::tool_output_reply`]); streamed in `completion_tokens` pieces.
    pub text: Option<String>,
}

impl Answer {
    /// The answer to a request whose decoded body is `body_len` bytes long, naming
    /// `model`, with `chunks` content chunks.
    pub(crate) fn new(
        id: u64,
        model: &str,
        fingerprint_json: Bytes,
        body_len: usize,
        chunks: u32,
        include_usage: bool,
    ) -> Answer {
        Answer {
            id,
            created: unix_now(),
            model_json: Bytes::from(json_str(model)),
            fingerprint_json,
            prompt_tokens: body_len as u64 / 4 + 1,
            cache_read: 0,
            cache_write: 0,
            completion_tokens: chunks,
            include_usage,
            tool: None,
            text: None,
        }
    }

    /// The same answer with the reply text `text` (instead of `tok0 tok1 … `), in as
    /// many pieces as the answer has content chunks (at least 1).
    pub(crate) fn with_text(mut self, text: Option<String>) -> Answer {
        if text.is_some() {
            self.completion_tokens = self.completion_tokens.max(1);
        }
        self.text = text;
        self
    }

    /// Appends the whole reply text, JSON-escaped, without quotes.
    pub(crate) fn push_text(&self, out: &mut Vec<u8>) {
        match &self.text {
            Some(t) => push_json_escaped(out, t),
            None => push_reply_text(out, self.completion_tokens),
        }
    }

    /// The whole reply text.
    pub(crate) fn reply_text(&self) -> String {
        let mut out = Vec::new();
        match &self.text {
            Some(t) => return t.clone(),
            None => push_reply_text(&mut out, self.completion_tokens),
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Appends content chunk `i` of the reply text, JSON-escaped, without quotes.
    pub(crate) fn push_text_piece(&self, out: &mut Vec<u8>, i: u32) {
        match &self.text {
            Some(t) => push_json_escaped(out, piece(t, i, self.completion_tokens)),
            None => push_chunk_text(out, i),
        }
    }

    /// The same answer with these cache token counts.
    pub(crate) fn with_cache(mut self, read: u64, write: u64) -> Answer {
        self.cache_read = read;
        self.cache_write = write;
        self
    }

    /// The same answer as a call of `tool` (`completion_tokens` at least 1: one per
    /// input piece).
    pub(crate) fn with_tool(mut self, tool: Option<ToolCall>) -> Answer {
        if tool.is_some() {
            self.completion_tokens = self.completion_tokens.max(1);
        }
        self.tool = tool;
        self
    }

    /// OpenAI `prompt_tokens`: `prompt_tokens + cache_read`.
    pub(crate) fn openai_prompt_tokens(&self) -> u64 {
        self.prompt_tokens + self.cache_read
    }

    /// OpenAI `total_tokens`: `openai_prompt_tokens() + completion_tokens`.
    pub(crate) fn total_tokens(&self) -> u64 {
        self.openai_prompt_tokens() + u64::from(self.completion_tokens)
    }
}

/// Appends the reply text of `chunks` chunks: `tok0 tok1 … `.
pub(crate) fn push_reply_text(out: &mut Vec<u8>, chunks: u32) {
    for i in 0..chunks {
        push_chunk_text(out, i);
    }
}

/// Appends the text of content chunk `i`: `tok<i> `.
pub(crate) fn push_chunk_text(out: &mut Vec<u8>, i: u32) {
    out.extend_from_slice(b"tok");
    push_u64(out, u64::from(i));
    out.push(b' ');
}

/// Piece `i` of `n` of `s` (`n` ≥ 1): consecutive pieces of about equal length, cut at
/// character boundaries, that concatenate to `s` (some may be empty when `n` exceeds
/// the length).
pub(crate) fn piece(s: &str, i: u32, n: u32) -> &str {
    let n = u64::from(n.max(1));
    let len = s.len() as u64;
    let at = |k: u64| {
        let mut b = usize::try_from(k.min(n) * len / n).unwrap_or(s.len());
        while !s.is_char_boundary(b) {
            b += 1;
        }
        b
    };
    let (from, to) = (at(u64::from(i)), at(u64::from(i) + 1));
    s.get(from..to).unwrap_or("")
}

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn request_fields_borrow_the_model() {
        let f = ReqFields::parse(br#"{"model":"gpt","stream":true,"x":[1,{"y":2}]}"#).unwrap();
        assert!(matches!(f.model, Cow::Borrowed("gpt")));
        assert!(f.stream());
        let f = ReqFields::parse(br#"{"model":"a\"b"}"#).unwrap();
        assert_eq!(f.model, "a\"b");
        let f = ReqFields::parse(br#"{"model":null}"#).unwrap();
        assert_eq!(f.model, "");
        let f = ReqFields::parse(b" \n").unwrap();
        assert!(f.model.is_empty() && !f.stream() && !f.include_usage());
        assert!(ReqFields::parse(br#"{"model":5}"#).is_err());
        assert!(ReqFields::parse(b"[1,2]").is_err());
    }

    #[test]
    fn accounting() {
        let a = Answer::new(1, "m", Bytes::from_static(b"\"n\""), 17, 3, false);
        assert_eq!((a.prompt_tokens, a.total_tokens()), (5, 8));
        let mut t = Vec::new();
        push_reply_text(&mut t, 3);
        assert_eq!(t, b"tok0 tok1 tok2 ");
    }
}
