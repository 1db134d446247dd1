//! The streamed `GenerateContentResponse`s of `:streamGenerateContent`, framed as SSE
//! (`?alt=sse`: one `data: {chunk}` event each, no event names, no terminal marker) or
//! as one JSON array (`[{chunk}`, `,\r\n{chunk}`, …, `]`).
//!
//! Content chunk `i` carries one part (the text `tok<i> `, or for a tool call the whole
//! `functionCall`), `index` 0 and a `usageMetadata` with the prompt tokens only; the
//! terminal chunk carries an empty text part, `finishReason` `STOP` and the full
//! `usageMetadata`. The in-band error is a `{"error":{"code":500,…,"status":"INTERNAL"}}`
//! chunk (in the array: its last element, which closes it). Google sends nothing before
//! the first chunk, so there is no preamble.

use std::cell::Cell;

use bytes::Bytes;

use super::body::{parts, response_id, usage};
use super::error_body;
use crate::answer::Answer;
use crate::json::{json_str, push_json_str, push_u64};
use crate::stream::{sse, Dialect};

/// The message of the in-band error chunk.
const ERROR_MESSAGE: &str = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting";

/// The chunks of one streamed Gemini answer.
pub(crate) struct GeminiStream {
    ans: Answer,
    /// `"modelVersion":…,"responseId":…` (the tail every chunk ends with).
    ids: Vec<u8>,
    sse: bool,
    /// The array framing: whether the opening `[` has been sent (chunks are built once,
    /// in order).
    opened: Cell<bool>,
}

impl GeminiStream {
    /// The stream of `ans` on `model`; `sse`: SSE framing, else the JSON array.
    pub(crate) fn new(ans: Answer, model: &str, sse: bool) -> GeminiStream {
        let mut ids = b"\"modelVersion\":".to_vec();
        ids.extend_from_slice(&json_str(model));
        ids.extend_from_slice(b",\"responseId\":");
        push_json_str(&mut ids, &response_id(ans.id));
        GeminiStream {
            ans,
            ids,
            sse,
            opened: Cell::new(false),
        }
    }

    /// `chunk` (one JSON object) in the stream's framing; `last` closes the array.
    fn frame(&self, chunk: &[u8], last: bool) -> Bytes {
        if self.sse {
            return sse(None, |e| e.extend_from_slice(chunk));
        }
        let mut out = Vec::with_capacity(chunk.len() + 4);
        out.extend_from_slice(if self.opened.replace(true) {
            b",\r\n"
        } else {
            b"["
        });
        out.extend_from_slice(chunk);
        if last {
            out.push(b']');
        }
        Bytes::from(out)
    }

    /// `,"usageMetadata":{…prompt only…},` + the ids + `}`.
    fn push_partial_tail(&self, e: &mut Vec<u8>) {
        let prompt = self.ans.openai_prompt_tokens();
        e.extend_from_slice(b",\"usageMetadata\":{\"promptTokenCount\":");
        push_u64(e, prompt);
        e.extend_from_slice(b",\"totalTokenCount\":");
        push_u64(e, prompt);
        e.extend_from_slice(b"},");
        e.extend_from_slice(&self.ids);
        e.push(b'}');
    }
}

impl Dialect for GeminiStream {
    fn content(&self, i: u32) -> Bytes {
        // Built by hand: the hot path of long streams.
        let mut e = Vec::with_capacity(256);
        e.extend_from_slice(b"{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":");
        match &self.ans.tool {
            None => {
                e.extend_from_slice(b"[{\"text\":\"");
                self.ans.push_text_piece(&mut e, i);
                e.extend_from_slice(b"\"}]");
            }
            Some(_) => e.extend_from_slice(parts(&self.ans).to_string().as_bytes()),
        }
        e.extend_from_slice(b"},\"index\":0}]");
        self.push_partial_tail(&mut e);
        self.frame(&e, false)
    }

    fn tail(&self, _out: &mut Vec<Bytes>) {}

    fn terminal(&self) -> Bytes {
        let mut e = Vec::with_capacity(256);
        e.extend_from_slice(
            b"{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":",
        );
        e.extend_from_slice(usage(&self.ans).to_string().as_bytes());
        e.push(b',');
        e.extend_from_slice(&self.ids);
        e.push(b'}');
        self.frame(&e, true)
    }

    fn error_event(&self) -> Bytes {
        self.frame(&error_body(500, ERROR_MESSAGE), true)
    }

    fn early_preamble(&self, _out: &mut Vec<Bytes>) {}
}

/// The whole stream as one JSON value per chunk (tests).
#[cfg(test)]
pub(super) fn chunk_values(s: &GeminiStream, chunks: u32) -> Vec<serde_json::Value> {
    let mut raw: Vec<u8> = Vec::new();
    for i in 0..chunks {
        raw.extend_from_slice(&s.content(i));
    }
    raw.extend_from_slice(&s.terminal());
    let text = String::from_utf8_lossy(&raw).into_owned();
    if s.sse {
        text.split("\n\n")
            .filter_map(|ev| ev.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    } else {
        match serde_json::from_str(&text) {
            Ok(serde_json::Value::Array(a)) => a,
            _ => Vec::new(),
        }
    }
}
