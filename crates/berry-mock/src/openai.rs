//! OpenAI-format bodies: chat / legacy completions (plain and streamed), embeddings,
//! the model list and error bodies.
//!
//! A chat answer that calls a tool (see [`crate::tools`]) has `"content":null`, one
//! `tool_calls` entry (id `call_mock_<n>`, `arguments` = the input JSON as a string)
//! and `finish_reason` `tool_calls`; streamed, chunk 0 carries the role, id, type and
//! name, and each chunk one piece of `arguments`. Usage has
//! `prompt_tokens_details.cached_tokens` when the answer read from the cache.

use bytes::Bytes;

use crate::answer::Answer;
use crate::json::{push_json_str, push_u64};
use crate::stream::{sse, Dialect};

fn push_usage(out: &mut Vec<u8>, ans: &Answer) {
    out.extend_from_slice(b"{\"prompt_tokens\":");
    push_u64(out, ans.openai_prompt_tokens());
    out.extend_from_slice(b",\"completion_tokens\":");
    push_u64(out, u64::from(ans.completion_tokens));
    out.extend_from_slice(b",\"total_tokens\":");
    push_u64(out, ans.total_tokens());
    if ans.cache_read > 0 {
        out.extend_from_slice(b",\"prompt_tokens_details\":{\"cached_tokens\":");
        push_u64(out, ans.cache_read);
        out.push(b'}');
    }
    out.push(b'}');
}

/// `"finish_reason":"…"` of a finished chat answer.
fn finish_reason(ans: &Answer) -> &'static [u8] {
    if ans.tool.is_some() {
        b"\"tool_calls\""
    } else {
        b"\"stop\""
    }
}

/// The id of the tool call of answer `id`.
fn push_call_id(out: &mut Vec<u8>, id: u64) {
    out.extend_from_slice(b"\"call_mock_");
    push_u64(out, id);
    out.push(b'"');
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
        b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":",
    );
    match &ans.tool {
        None => {
            out.push(b'"');
            ans.push_text(&mut out);
            out.push(b'"');
        }
        Some(call) => {
            out.extend_from_slice(b"null,\"tool_calls\":[{\"id\":");
            push_call_id(&mut out, ans.id);
            out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
            push_json_str(&mut out, &call.name);
            out.extend_from_slice(b",\"arguments\":");
            push_json_str(&mut out, &call.input);
            out.extend_from_slice(b"}}]");
        }
    }
    out.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":");
    out.extend_from_slice(finish_reason(ans));
    out.extend_from_slice(b"}],\"usage\":");
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
    ans.push_text(&mut out);
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

/// OpenAI's 401 message for a refused `key`, quoting part of it like OpenAI does: the
/// first 6 and last 4 characters around stars (keys shorter than 10 characters whole).
pub(crate) fn incorrect_key_message(key: Option<&str>) -> String {
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".to_string();
    };
    let chars: Vec<char> = key.chars().collect();
    let shown: String = if chars.len() < 10 {
        key.to_string()
    } else {
        let head: String = chars[..6].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}{}{tail}", "*".repeat((chars.len() - 10).max(3)))
    };
    format!("Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys.")
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

/// OpenAI's in-band stream error: `data: {"error":{…}}`.
const ERROR_EVENT: &[u8] = b"data: {\"error\":{\"message\":\"The server had an error while processing your request. Sorry about that!\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n";

/// Which OpenAI stream format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `chat.completion.chunk` events with `delta`s.
    Chat,
    /// `text_completion` events with `text`.
    Legacy,
}

/// An OpenAI stream: content events, a finish event, the usage event when asked for
/// (`stream_options.include_usage`), then `data: [DONE]`. Its in-band error event is
/// `data: {"error":{"message":…,"type":"server_error","param":null,"code":null}}`; its
/// early preamble a chunk without content (chat: `{"role":"assistant","content":""}`,
/// legacy: `"text":""`).
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
                    match &self.ans.tool {
                        None => {
                            e.extend_from_slice(b"\"content\":\"");
                            self.ans.push_text_piece(e, i);
                            e.push(b'"');
                        }
                        Some(call) => {
                            if i == 0 {
                                e.extend_from_slice(b"\"content\":null,");
                            }
                            e.extend_from_slice(b"\"tool_calls\":[{\"index\":0,");
                            if i == 0 {
                                e.extend_from_slice(b"\"id\":");
                                push_call_id(e, self.ans.id);
                                e.extend_from_slice(b",\"type\":\"function\",");
                            }
                            e.extend_from_slice(b"\"function\":{");
                            if i == 0 {
                                e.extend_from_slice(b"\"name\":");
                                push_json_str(e, &call.name);
                                e.push(b',');
                            }
                            e.extend_from_slice(b"\"arguments\":");
                            push_json_str(e, call.piece(i, self.ans.completion_tokens));
                            e.extend_from_slice(b"}}]");
                        }
                    }
                    e.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":null}]}");
                }
                Flavor::Legacy => {
                    e.extend_from_slice(b"{\"text\":\"");
                    self.ans.push_text_piece(e, i);
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
                Flavor::Chat => {
                    e.extend_from_slice(
                        b"{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":",
                    );
                    e.extend_from_slice(finish_reason(&self.ans));
                    e.extend_from_slice(b"}]}");
                }
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
    }

    fn terminal(&self) -> Bytes {
        sse(None, |e| e.extend_from_slice(b"[DONE]"))
    }

    fn error_event(&self) -> Bytes {
        Bytes::from_static(ERROR_EVENT)
    }

    fn early_preamble(&self, out: &mut Vec<Bytes>) {
        out.push(sse(None, |e| {
            e.extend_from_slice(&self.prefix);
            e.extend_from_slice(match self.flavor {
                Flavor::Chat => b"{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}",
                Flavor::Legacy => b"{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}",
            });
        }));
    }
}
