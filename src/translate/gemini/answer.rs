//! Backend answers as `GenerateContentResponse` objects: the non-stream answers
//! ([`from_chat`], [`from_messages`]) and what the streams share (framing, finish reasons,
//! usage, function-call arguments).
//!
//! | chat `finish_reason` | Anthropic `stop_reason` | `finishReason` |
//! |---|---|---|
//! | `stop`, `tool_calls`, `function_call`, none | `end_turn`, `stop_sequence`, `tool_use`, `pause_turn`, none | `STOP` |
//! | `length` | `max_tokens`, `model_context_window_exceeded` | `MAX_TOKENS` |
//! | `content_filter` | `refusal` | `SAFETY` |
//! | a call whose arguments are not a JSON object (the call is dropped) | same | `MALFORMED_FUNCTION_CALL` |
//! | other | other | `OTHER` |
//!
//! `usageMetadata`: `promptTokenCount` = the whole prompt (cache reads and writes
//! included), `cachedContentTokenCount` = cache reads, `thoughtsTokenCount` = chat's
//! `reasoning_tokens` (unknown for Anthropic: 0), `candidatesTokenCount` = output − thoughts,
//! `totalTokenCount` = prompt + output.

use super::context::AnswerContext;
use crate::translate::responses::messages::JSON_ANSWER_TOOL;
use crate::translate::UpstreamBroken;
use crate::vocab::TokenUsage;
use crate::wire::anthropic::{AnswerBlock, MessageResponse};
use crate::wire::gemini::{
    Candidate, ContentOut, FunctionCallOut, GenerateContentResponse, PartOut, UsageMetadata,
};
use crate::wire::openai_chat::{ChatCompletion, Usage};
use crate::wire::raw::{self, Raw, Str};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// `finishReason` of a call whose arguments are not a JSON object.
pub const MALFORMED: &str = "MALFORMED_FUNCTION_CALL";

/// `finishReason` for a chat `finish_reason`.
#[must_use]
pub fn finish_of_chat(r: Option<&str>) -> &'static str {
    match r {
        None | Some("stop" | "tool_calls" | "function_call") => "STOP",
        Some("length") => "MAX_TOKENS",
        Some("content_filter") => "SAFETY",
        Some(_) => "OTHER",
    }
}

/// `finishReason` for an Anthropic `stop_reason`.
#[must_use]
pub fn finish_of_anthropic(r: Option<&str>) -> &'static str {
    match r {
        None | Some("end_turn" | "stop_sequence" | "tool_use" | "pause_turn") => "STOP",
        Some("max_tokens" | "model_context_window_exceeded") => "MAX_TOKENS",
        Some("refusal") => "SAFETY",
        Some(_) => "OTHER",
    }
}

/// `usageMetadata` for the gateway's counts and the thinking tokens among the output.
#[must_use]
pub fn usage_metadata(u: TokenUsage, thoughts: u64) -> UsageMetadata {
    let prompt = u.prompt_tokens();
    let thoughts = thoughts.min(u.output);
    UsageMetadata {
        prompt_token_count: prompt,
        candidates_token_count: u.output - thoughts,
        cached_content_token_count: u.cache_read,
        thoughts_token_count: thoughts,
        total_token_count: prompt.saturating_add(u.output),
    }
}

/// A function call's arguments (the decoded text of chat's `arguments`, or Anthropic's
/// streamed input) as a JSON object; empty text is `{}`; `None` when not a JSON object.
#[must_use]
pub fn args_object(text: &str) -> Option<Raw<'static>> {
    let t = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if t.is_empty() {
        return Some(Raw::constant("{}"));
    }
    if !t.starts_with('{') {
        return None;
    }
    RawValue::from_string(t.to_owned()).ok().map(Raw::Owned)
}

/// How chunks are framed: SSE `data:` events, or the elements of one JSON array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framer {
    sse: bool,
    /// The array's `[` was written.
    opened: bool,
    /// The array's `]` was written.
    closed: bool,
}

impl Framer {
    /// Framing for `alt=sse` (`sse`) or the JSON array.
    #[must_use]
    pub fn new(sse: bool) -> Self {
        Framer {
            sse,
            opened: false,
            closed: false,
        }
    }

    /// The JSON array was opened and is not closed yet.
    #[must_use]
    pub fn array_open(&self) -> bool {
        !self.sse && self.opened && !self.closed
    }

    /// Appends one chunk (`last`: the array's terminal element).
    pub fn chunk(&mut self, out: &mut Vec<u8>, r: &GenerateContentResponse<'_>, last: bool) {
        if self.sse {
            crate::translate::stream::emit(out, "", r);
            return;
        }
        out.extend_from_slice(if self.opened { b",\r\n" } else { b"[" });
        self.opened = true;
        raw::write(out, r);
        if last {
            out.push(b']');
            self.closed = true;
        }
    }

    /// Appends the final error chunk (closing the array).
    pub fn error(&mut self, out: &mut Vec<u8>, status: u16, message: &str) {
        out.extend_from_slice(&super::errors::stream_error_chunk(
            self.sse,
            self.array_open(),
            status,
            message,
        ));
        self.opened = true;
        self.closed = true;
    }
}

/// One `GenerateContentResponse` for `cx`.
#[must_use]
pub fn response<'a>(
    cx: &'a AnswerContext,
    parts: &'a [PartOut<'a>],
    finish: Option<&'static str>,
    usage: Option<UsageMetadata>,
) -> GenerateContentResponse<'a> {
    GenerateContentResponse {
        candidates: [Candidate {
            content: ContentOut {
                parts,
                role: "model",
            },
            finish_reason: finish,
            index: 0,
        }],
        usage_metadata: usage,
        model_version: &cx.model_version,
        response_id: &cx.response_id,
    }
}

/// A function-call part.
#[must_use]
pub fn call_part<'a>(name: Raw<'a>, args: Raw<'a>) -> PartOut<'a> {
    PartOut {
        text: None,
        thought: None,
        function_call: Some(FunctionCallOut { name, args }),
    }
}

/// Translates a `chat.completion` into a `GenerateContentResponse` (first choice): reasoning
/// text → a `thought` part (with `includeThoughts`), `content` (else `refusal`) → a text
/// part, each tool call → a `functionCall` part (see the module docs for a call whose
/// arguments are not an object).
///
/// # Errors
/// Malformed JSON, no choices, text or calls of the wrong type ([`UpstreamBroken`]).
pub fn from_chat(body: &[u8], cx: &AnswerContext) -> Result<(Vec<u8>, TokenUsage), UpstreamBroken> {
    let c: ChatCompletion<'_> =
        raw::read(body).map_err(|_| UpstreamBroken::invalid("invalid completion JSON"))?;
    let Some(choice) = c.choices.first() else {
        return Err(UpstreamBroken::invalid("completion without choices"));
    };
    let m = &choice.message;
    let mut parts = Vec::new();
    if cx.include_thoughts {
        let r = [&m.reasoning_content, &m.reasoning]
            .into_iter()
            .flatten()
            .find(|r| r.is_str() && !r.is_empty_str());
        if let Some(r) = r {
            parts.push(PartOut::text(r.clone(), true));
        }
    }
    let text = [&m.content, &m.refusal]
        .into_iter()
        .flatten()
        .find(|t| !t.is_null());
    match text {
        Some(t) if !t.is_str() => return Err(UpstreamBroken::invalid("content not a string")),
        Some(t) if !t.is_empty_str() => parts.push(PartOut::text(t.clone(), false)),
        _ => {}
    }
    let mut malformed = false;
    for tc in m.tool_calls.iter().flatten() {
        if !tc.function.name.is_str() || tc.function.name.is_empty_str() {
            return Err(UpstreamBroken::invalid("tool call without a name"));
        }
        let args = tc.function.arguments.as_ref().map_or("", Str::as_str);
        match args_object(args) {
            Some(a) => parts.push(call_part(tc.function.name.clone(), a)),
            None => malformed = true,
        }
    }
    let finish = if malformed {
        MALFORMED
    } else {
        finish_of_chat(choice.finish_reason.as_ref().map(Str::as_str))
    };
    let u = c.usage.unwrap_or_default();
    let usage = u.tokens();
    let thoughts = thoughts_of(&u);
    let mut out = Vec::with_capacity(body.len() + 256);
    raw::write(
        &mut out,
        &response(
            cx,
            &parts,
            Some(finish),
            Some(usage_metadata(usage, thoughts)),
        ),
    );
    Ok((out, usage))
}

/// Chat's `reasoning_tokens` (0 when absent).
#[must_use]
pub fn thoughts_of(u: &Usage) -> u64 {
    u.completion_tokens_details
        .and_then(|d| d.reasoning_tokens)
        .unwrap_or(0)
}

/// Translates an Anthropic `message` into a `GenerateContentResponse`: text blocks → text
/// parts, `tool_use` → `functionCall` parts (the JSON-answer tool → a text part holding its
/// input), `thinking` → `thought` parts (with `includeThoughts`); other blocks dropped.
///
/// # Errors
/// Not a message object, or blocks of the wrong shape ([`UpstreamBroken`]).
pub fn from_messages(
    body: &[u8],
    cx: &AnswerContext,
) -> Result<(Vec<u8>, TokenUsage), UpstreamBroken> {
    let broken = || UpstreamBroken::invalid("invalid message JSON");
    let m: MessageResponse<'_, Vec<AnswerBlock<'_>>> = raw::read(body).map_err(|_| broken())?;
    if m.ty.as_ref().is_some_and(|t| t.inner() != Some("message")) {
        return Err(UpstreamBroken::invalid("not a message object"));
    }
    let stop = match &m.stop_reason {
        Some(r) if r.is_str() => r.parse::<Str<'_>>().and_then(Result::ok),
        Some(r) if !r.is_null() => return Err(broken()),
        _ => None,
    };
    let mut parts = Vec::with_capacity(m.content.len());
    let mut malformed = false;
    for b in &m.content {
        match b.ty.as_str() {
            "text" => {
                let Some(t) = b.text.as_ref().filter(|t| t.is_str()) else {
                    return Err(UpstreamBroken::invalid("text block without string text"));
                };
                if !t.is_empty_str() {
                    parts.push(PartOut::text(t.clone(), false));
                }
            }
            "tool_use" => {
                let Some(name) = b.name.as_ref().filter(|v| v.is_str()) else {
                    return Err(UpstreamBroken::invalid("tool_use block without a name"));
                };
                let input = match &b.input {
                    Some(i) if i.is_obj() => i.clone(),
                    None => Raw::constant("{}"),
                    Some(_) => {
                        malformed = true;
                        continue;
                    }
                };
                if cx.json_answer && name.inner() == Some(JSON_ANSWER_TOOL) {
                    let text = input.json().unwrap_or("{}").to_owned();
                    parts.push(PartOut::text(Raw::Text(Cow::Owned(text)), false));
                } else {
                    parts.push(call_part(name.clone(), input));
                }
            }
            "thinking" if cx.include_thoughts => {
                if let Some(t) = b
                    .thinking
                    .as_ref()
                    .filter(|t| t.is_str() && !t.is_empty_str())
                {
                    parts.push(PartOut::text(t.clone(), true));
                }
            }
            _ => {} // redacted thinking, server tools, unknown: dropped
        }
    }
    let finish = if malformed {
        MALFORMED
    } else {
        finish_of_anthropic(stop.as_ref().map(Str::as_str))
    };
    let usage = m.usage.map(|u| u.tokens()).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + 256);
    raw::write(
        &mut out,
        &response(cx, &parts, Some(finish), Some(usage_metadata(usage, 0))),
    );
    Ok((out, usage))
}
