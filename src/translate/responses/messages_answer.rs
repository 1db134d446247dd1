//! An Anthropic Messages answer (a `message` object) into a Responses `Response` object.

use super::context::AnswerContext;
use super::contract::TranslatedAnswer;
use super::emit::{Finish, Writer};
use super::messages::JSON_ANSWER_TOOL;
use crate::translate::UpstreamBroken;
use crate::wire::anthropic::{AnswerBlock, MessageResponse};
use crate::wire::raw::{Raw, Str};
use std::borrow::Cow;

/// Anthropic `stop_reason` → how the Responses answer ended.
#[must_use]
pub fn finish_of(stop_reason: Option<&str>) -> Finish {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => Finish::MaxTokens,
        Some("refusal") => Finish::ContentFilter,
        _ => Finish::Completed,
    }
}

/// Translates a Messages answer into a `Response` object: text blocks → one `message` item
/// per run of text blocks, `tool_use` → `function_call` (or `custom_tool_call` for a custom
/// tool of the request; the forced JSON-answer tool → a `message` whose text is its input),
/// `thinking` / `redacted_thinking` → `reasoning` (the signature kept in
/// `encrypted_content`); other blocks are dropped.
///
/// # Errors
/// Not a message object, or blocks of the wrong shape ([`UpstreamBroken`]).
pub fn from_messages(body: &[u8], cx: &AnswerContext) -> Result<TranslatedAnswer, UpstreamBroken> {
    let broken = || UpstreamBroken::invalid("invalid message JSON");
    let m: MessageResponse<'_, Vec<AnswerBlock<'_>>> =
        crate::wire::raw::read(body).map_err(|_| broken())?;
    let str_of = |r: &Option<Raw<'_>>| -> Result<Option<String>, UpstreamBroken> {
        match r {
            Some(r) if !r.is_null() => Ok(Some(
                r.parse::<Str<'_>>()
                    .and_then(Result::ok)
                    .ok_or_else(broken)?
                    .0
                    .into_owned(),
            )),
            _ => Ok(None),
        }
    };
    if str_of(&m.ty)?.is_some_and(|t| t != "message") {
        return Err(UpstreamBroken::invalid("not a message object"));
    }
    let stop = str_of(&m.stop_reason)?;
    let usage = m.usage.as_ref().map(|u| u.tokens()).unwrap_or_default();
    let mut w = Writer::new(cx.clone(), false);
    let mut scratch = Vec::new();
    let out = &mut scratch;
    let mut text: Option<usize> = None;
    for b in &m.content {
        match b.ty.as_str() {
            "text" => {
                let Some(t) = b.text.as_ref().filter(|t| t.is_str()) else {
                    return Err(UpstreamBroken::invalid("text block without string text"));
                };
                let ix = match text {
                    Some(ix) => ix,
                    None => w.open_message(out)?,
                };
                text = Some(ix);
                w.text_delta(out, ix, t)?;
            }
            "tool_use" => {
                let (Some(id), Some(name)) = (
                    b.id.as_ref().filter(|v| v.is_str()),
                    b.name.as_ref().filter(|v| v.is_str()),
                ) else {
                    return Err(UpstreamBroken::invalid("tool_use block without id/name"));
                };
                let input = match &b.input {
                    Some(i) if i.is_obj() => i.json().unwrap_or("{}"),
                    None => "{}",
                    Some(_) => return Err(UpstreamBroken::invalid("tool_use input not an object")),
                };
                let args = Raw::Text(Cow::Borrowed(input));
                if cx.json_answer() && name.inner() == Some(JSON_ANSWER_TOOL) {
                    let ix = match text {
                        Some(ix) => ix,
                        None => w.open_message(out)?,
                    };
                    text = Some(ix);
                    w.text_delta(out, ix, &args)?;
                    continue;
                }
                if let Some(ix) = text.take() {
                    w.close(out, ix)?;
                }
                let ix = w.open_call(out, id, name)?;
                w.args_delta(out, ix, &args)?;
                w.close(out, ix)?;
            }
            "thinking" | "redacted_thinking" => {
                if let Some(ix) = text.take() {
                    w.close(out, ix)?;
                }
                let ix = w.open_reasoning(out)?;
                if b.ty.as_str() == "thinking" {
                    if let Some(t) = &b.thinking {
                        w.reasoning_delta(out, ix, t)?;
                    }
                    if let Some(s) = b.signature.as_ref().filter(|s| s.is_str()) {
                        w.reasoning_signature(ix, s)?;
                    }
                } else if let Some(d) = &b.data {
                    w.reasoning_redacted(ix, d)?;
                }
                w.close(out, ix)?;
            }
            _ => {} // server tools and their results, unknown blocks: dropped
        }
    }
    let finish = finish_of(stop.as_deref());
    w.finish(out, finish, usage)?;
    Ok(TranslatedAnswer {
        body: w.response_body(finish, usage),
        usage,
        output_items: w.output_items(),
    })
}
