//! OpenAI-format bodies: chat / legacy completions (plain and streamed), embeddings,
//! the model list and error bodies.

use bytes::Bytes;

use crate::answer::{push_chunk_text, push_reply_text, Answer};
use crate::json::{push_json_str, push_u64};
use crate::stream::{sse, Dialect};

fn push_usage(out: &mut Vec<u8>, ans: &Answer) {
    out.extend_from_slice(b"{\"prompt_tokens\":");
    push_u64(out, ans.prompt_tokens);
    out.extend_from_slice(b",\"completion_tokens\":");
    push_u64(out, u64::from(ans.completion_tokens));
    out.extend_from_slice(b",\"total_tokens\":");
    push_u64(out, ans.total_tokens());
    out.push(b'}');
}

/// `chat.completion` body.
pub(crate) fn chat_body(ans: &Answer) -> Vec<u8> {
    let mut out = Vec::with_capacity(384);
    out.extend_from_slice(b"{\"id\":\"chatcmpl-mock-");
    push_u64(&mut out, ans.id);
    out.extend_from_slice(b"\",\"object\":\"chat.completion\",\"created\":");
    push_u64(&mut out, ans.created);
    out.extend_from_slice(b",\"model\":");
    out.extend_from_slice(&ans.model_json);
    out.extend_from_slice(b",\"system_fingerprint\":");
    out.extend_from_slice(&ans.fingerprint_json);
    out.extend_from_slice(
        b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"",
    );
    push_reply_text(&mut out, ans.completion_tokens);
    out.extend_from_slice(b"\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":");
    push_usage(&mut out, ans);
    out.push(b'}');
    out
}

/// `text_completion` (legacy completions) body.
pub(crate) fn legacy_body(ans: &Answer) -> Vec<u8> {
    let mut out = Vec::with_capacity(384);
    out.extend_from_slice(b"{\"id\":\"cmpl-mock-");
    push_u64(&mut out, ans.id);
    out.extend_from_slice(b"\",\"object\":\"text_completion\",\"created\":");
    push_u64(&mut out, ans.created);
    out.extend_from_slice(b",\"model\":");
    out.extend_from_slice(&ans.model_json);
    out.extend_from_slice(b",\"system_fingerprint\":");
    out.extend_from_slice(&ans.fingerprint_json);
    out.extend_from_slice(b",\"choices\":[{\"text\":\"");
    push_reply_text(&mut out, ans.completion_tokens);
    out.extend_from_slice(
        b"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":",
    );
    push_usage(&mut out, ans);
    out.push(b'}');
    out
}

/// Embeddings body: one fixed 3-dimensional vector; usage has prompt tokens only.
pub(crate) fn embeddings_body(ans: &Answer) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.1,0.2,0.3]}],\"model\":");
    out.extend_from_slice(&ans.model_json);
    out.extend_from_slice(b",\"usage\":{\"prompt_tokens\":");
    push_u64(&mut out, ans.prompt_tokens);
    out.extend_from_slice(b",\"total_tokens\":");
    push_u64(&mut out, ans.prompt_tokens);
    out.extend_from_slice(b"}}");
    out
}

/// `GET …/models` body listing `models`.
pub(crate) fn models_body(models: &[String]) -> Vec<u8> {
    let mut out = b"{\"object\":\"list\",\"data\":[".to_vec();
    for (i, m) in models.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        push_json_str(&mut out, m);
        out.extend_from_slice(b",\"object\":\"model\",\"created\":0,\"owned_by\":\"mock\"}");
    }
    out.extend_from_slice(b"]}");
    out
}

/// OpenAI-shaped error body for `status`: `type` / `code` follow the status
/// (401 `invalid_api_key`, 404 `not_found`, 413 `request_too_large`, 429
/// `rate_limit_exceeded` of type `requests`, 5xx `server_error` / `mock_failure`,
/// anything else `invalid_request_error` / `invalid_request`).
pub(crate) fn error_body(status: u16, message: &str) -> Vec<u8> {
    let (etype, code) = match status {
        401 => ("invalid_request_error", "invalid_api_key"),
        404 => ("invalid_request_error", "not_found"),
        413 => ("invalid_request_error", "request_too_large"),
        429 => ("requests", "rate_limit_exceeded"),
        500..=599 => ("server_error", "mock_failure"),
        _ => ("invalid_request_error", "invalid_request"),
    };
    let mut out = Vec::with_capacity(160 + message.len());
    out.extend_from_slice(b"{\"error\":{\"message\":");
    push_json_str(&mut out, message);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(etype.as_bytes());
    out.extend_from_slice(b"\",\"param\":null,\"code\":\"");
    out.extend_from_slice(code.as_bytes());
    out.extend_from_slice(b"\"}}");
    out
}

/// Which OpenAI stream format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `chat.completion.chunk` events with `delta`s.
    Chat,
    /// `text_completion` events with `text`.
    Legacy,
}

/// An OpenAI stream: content events, a finish event, the usage event when asked for
/// (`stream_options.include_usage`), then `data: [DONE]`.
pub(crate) struct OpenAiStream {
    flavor: Flavor,
    ans: Answer,
    /// The part every event starts with, up to and including `"choices":[`.
    prefix: Vec<u8>,
}

impl OpenAiStream {
    /// The stream of `ans` in `flavor`.
    pub(crate) fn new(flavor: Flavor, ans: Answer) -> OpenAiStream {
        let mut prefix = Vec::with_capacity(192);
        match flavor {
            Flavor::Chat => {
                prefix.extend_from_slice(b"{\"id\":\"chatcmpl-mock-");
                push_u64(&mut prefix, ans.id);
                prefix.extend_from_slice(b"\",\"object\":\"chat.completion.chunk\",\"created\":");
            }
            Flavor::Legacy => {
                prefix.extend_from_slice(b"{\"id\":\"cmpl-mock-");
                push_u64(&mut prefix, ans.id);
                prefix.extend_from_slice(b"\",\"object\":\"text_completion\",\"created\":");
            }
        }
        push_u64(&mut prefix, ans.created);
        prefix.extend_from_slice(b",\"model\":");
        prefix.extend_from_slice(&ans.model_json);
        prefix.extend_from_slice(b",\"system_fingerprint\":");
        prefix.extend_from_slice(&ans.fingerprint_json);
        prefix.extend_from_slice(b",\"choices\":[");
        OpenAiStream {
            flavor,
            ans,
            prefix,
        }
    }
}

impl Dialect for OpenAiStream {
    fn content(&self, i: u32) -> Bytes {
        sse(None, |e| {
            e.extend_from_slice(&self.prefix);
            match self.flavor {
                Flavor::Chat => {
                    e.extend_from_slice(b"{\"index\":0,\"delta\":{");
                    if i == 0 {
                        e.extend_from_slice(b"\"role\":\"assistant\",");
                    }
                    e.extend_from_slice(b"\"content\":\"");
                    push_chunk_text(e, i);
                    e.extend_from_slice(b"\"},\"logprobs\":null,\"finish_reason\":null}]}");
                }
                Flavor::Legacy => {
                    e.extend_from_slice(b"{\"text\":\"");
                    push_chunk_text(e, i);
                    e.extend_from_slice(
                        b"\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}",
                    );
                }
            }
        })
    }

    fn tail(&self, out: &mut Vec<Bytes>) {
        out.push(sse(None, |e| {
            e.extend_from_slice(&self.prefix);
            match self.flavor {
                Flavor::Chat => e.extend_from_slice(
                    b"{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}",
                ),
                Flavor::Legacy => e.extend_from_slice(
                    b"{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}]}",
                ),
            }
        }));
        if self.ans.include_usage {
            out.push(sse(None, |e| {
                e.extend_from_slice(&self.prefix);
                e.extend_from_slice(b"],\"usage\":");
                push_usage(e, &self.ans);
                e.push(b'}');
            }));
        }
        out.push(sse(None, |e| e.extend_from_slice(b"[DONE]")));
    }
}
