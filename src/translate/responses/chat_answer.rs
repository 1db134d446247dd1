//! A chat completions answer (`chat.completion`) into a Responses `Response` object.

use super::context::AnswerContext;
use super::contract::TranslatedAnswer;
use super::emit::{Finish, Writer};
use crate::translate::UpstreamBroken;
use crate::wire::openai_chat::{ChatCompletion, Usage};
use crate::wire::raw::{Raw, Str};
use std::borrow::Cow;

/// Chat `finish_reason` → how the Responses answer ended (`length` → incomplete for
/// `max_output_tokens`, `content_filter` → incomplete for `content_filter`).
#[must_use]
pub fn finish_of(finish_reason: Option<&str>) -> Finish {
    match finish_reason {
        Some("length") => Finish::MaxTokens,
        Some("content_filter") => Finish::ContentFilter,
        // stop, tool_calls, function_call, null, unknown
        _ => Finish::Completed,
    }
}

/// `usage.completion_tokens_details.reasoning_tokens` (0 when absent).
pub(crate) fn reasoning_tokens(u: &Usage) -> u64 {
    u.completion_tokens_details
        .and_then(|d| d.reasoning_tokens)
        .unwrap_or(0)
}

/// The reasoning text of a message or delta: `reasoning_content`, else `reasoning` (a
/// non-empty JSON string), `None` when neither is.
pub(crate) fn reasoning_text<'r, 'a>(
    reasoning_content: &'r Option<Raw<'a>>,
    reasoning: &'r Option<Raw<'a>>,
) -> Result<Option<&'r Raw<'a>>, UpstreamBroken> {
    match [reasoning_content, reasoning]
        .into_iter()
        .flatten()
        .find(|r| !r.is_null())
    {
        Some(r) if !r.is_str() => Err(UpstreamBroken::invalid("reasoning text not a string")),
        Some(r) => Ok((!r.is_empty_str()).then_some(r)),
        None => Ok(None),
    }
}

/// Translates a `chat.completion` into a `Response` object (first choice only): reasoning
/// text (`reasoning_content` / `reasoning`) → a `reasoning` item with one summary part;
/// `content` (else `refusal`) → a `message` item; each tool call → a `function_call` item
/// (`call_id` = the call's id), or a `custom_tool_call` whose `input` is unpacked from the
/// `{"input": …}` arguments when the name is a custom tool of the request. Usage: input =
/// `prompt_tokens`, cached = `prompt_tokens_details.cached_tokens`, output =
/// `completion_tokens`, reasoning = `completion_tokens_details.reasoning_tokens`.
///
/// # Errors
/// Malformed JSON, no choices, text or tool calls of the wrong type ([`UpstreamBroken`]).
pub fn from_chat(body: &[u8], cx: &AnswerContext) -> Result<TranslatedAnswer, UpstreamBroken> {
    let c: ChatCompletion<'_> = crate::wire::raw::read(body)
        .map_err(|_| UpstreamBroken::invalid("invalid completion JSON"))?;
    let Some(choice) = c.choices.first() else {
        return Err(UpstreamBroken::invalid("completion without choices"));
    };
    let usage = c.usage.as_ref().map(Usage::tokens).unwrap_or_default();
    let m = &choice.message;
    let mut w = Writer::new(cx.clone(), false);
    if let Some(u) = &c.usage {
        w.set_reasoning_tokens(reasoning_tokens(u));
    }
    let mut scratch = Vec::new();
    let out = &mut scratch;
    if let Some(r) = reasoning_text(&m.reasoning_content, &m.reasoning)? {
        let ix = w.open_reasoning(out)?;
        w.reasoning_delta(out, ix, r)?;
        w.close(out, ix)?;
    }
    let text = match (
        m.content.as_ref().filter(|v| !v.is_null()),
        m.refusal.as_ref().filter(|v| !v.is_null()),
    ) {
        (Some(t), _) if t.is_str() => Some(t),
        (Some(_), _) => return Err(UpstreamBroken::invalid("message content not a string")),
        (None, Some(r)) if r.is_str() => Some(r),
        (None, Some(_)) => return Err(UpstreamBroken::invalid("message refusal not a string")),
        (None, None) => None,
    };
    if let Some(t) = text.filter(|t| !t.is_empty_str()) {
        let ix = w.open_message(out)?;
        w.text_delta(out, ix, t)?;
        w.close(out, ix)?;
    }
    for (k, tc) in m.tool_calls.iter().flatten().enumerate() {
        if !tc.function.name.is_str() || tc.function.name.is_empty_str() {
            return Err(UpstreamBroken::invalid("tool call without a name"));
        }
        let id = match &tc.id {
            id if id.is_str() && !id.is_empty_str() => id.clone(),
            _ => Raw::Text(Cow::Owned(format!("call_{}_{k}", id_suffix(cx)))),
        };
        let ix = w.open_call(out, &id, &tc.function.name)?;
        if let Some(args) = &tc.function.arguments {
            w.args_delta(out, ix, &Raw::Text(Cow::Borrowed(args.as_str())))?;
        }
        w.close(out, ix)?;
    }
    let finish = finish_of(choice.finish_reason.as_ref().map(Str::as_str));
    w.finish(out, finish, usage)?;
    Ok(TranslatedAnswer {
        body: w.response_body(finish, usage),
        usage,
        output_items: w.output_items(),
    })
}

/// The response id without its `resp_` prefix (for the ids of calls the backend left
/// without one).
pub(crate) fn id_suffix(cx: &AnswerContext) -> &str {
    cx.response_id
        .strip_prefix("resp_")
        .unwrap_or(&cx.response_id)
}
