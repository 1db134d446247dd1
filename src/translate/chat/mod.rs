//! OpenAI chat completions to and from the hub (Anthropic Messages), both ways round:
//!
//! * [`client`] and [`client_stream`]: the client speaks chat, the backend Messages (chat
//!   request → Messages request; Messages response and events → chat).
//! * [`backend`] and [`backend_stream`]: the client speaks Messages, the backend chat
//!   (Messages request → chat request; chat response and chunks → Messages).
//!
//! Chat request → Messages request:
//!
//! | OpenAI chat | Anthropic Messages |
//! |---|---|
//! | `model` | the backend's model (argument) |
//! | `system` / `developer` messages (string or text parts), anywhere | top-level `system` string, joined with a blank line |
//! | `max_completion_tokens`, else `max_tokens`, else 4096 | `max_tokens` |
//! | `stop` (string or array) | `stop_sequences` |
//! | `temperature` (clamped to ≤ 1.0), `top_p` | same |
//! | `tools` (`type: function`) | `{name, description, input_schema}` (`parameters`, default empty object schema) |
//! | `tool_choice` `auto` / `none` / `required` / `{type: function, function: {name}}` | `{type: auto}` / `{type: none}` / `{type: any}` / `{type: tool, name}` |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use: true` (tool_choice `auto` when absent) |
//! | user/assistant `content` string or parts (`text`, `refusal`, `image_url`) | content blocks (`text`; `image` with a base64 source for `data:` URLs, a url source for http(s)) |
//! | assistant `tool_calls` | `tool_use` blocks, `input` = the parsed `arguments` (empty = `{}`) |
//! | `tool` messages | `tool_result` blocks (`tool_use_id` = `tool_call_id`) in a user turn |
//! | consecutive same-role turns (after the above) | merged into one turn |
//! | `stream` | `stream` |
//! | `user` | `metadata.user_id` |
//!
//! Refused (400, `param` = the field): `n` > 1, `logprobs: true`, `top_logprobs`, `audio`,
//! `modalities` containing `audio`, `response_format` other than `text`, `prediction`,
//! `functions`, `function_call`, `web_search_options`; inside `messages`: `function` role,
//! `input_audio` / `file` / unknown content parts, non-object tool arguments, images
//! that are neither `data:…;base64,` nor http(s) URLs.
//! Dropped (harmless or advisory): `presence_penalty`, `frequency_penalty`, `logit_bias`,
//! `seed`, `stream_options`, `store`, `metadata`, `service_tier`, `reasoning_effort`,
//! `parallel_tool_calls: true`, `n: 1`, `logprobs: false`, message `name`, image `detail`,
//! and any other unknown field. `null` values count as absent.
//!
//! Messages request → chat request:
//!
//! | Anthropic Messages | OpenAI chat |
//! |---|---|
//! | `model` | the backend's model (argument) |
//! | `system` (string or text blocks, joined with a blank line) | first message, role `system` |
//! | user `content` string / blocks `text`, `image` (base64 → data URL, url → url) | user message (a string for one text block, else parts) |
//! | user `tool_result` blocks | one `tool` message each (`tool_call_id` = `tool_use_id`, content = its text blocks joined with `\n`), before the user's other content; images in a tool result join the user message after the tool messages |
//! | assistant `text` blocks | `content` (concatenated; `null` when there are tool calls and no text) |
//! | assistant `tool_use` blocks | `tool_calls` (`arguments` = the input serialized) |
//! | assistant `thinking` / `redacted_thinking` blocks | dropped |
//! | `max_tokens` | `max_tokens` |
//! | `stop_sequences` | `stop` |
//! | `temperature`, `top_p` | same |
//! | `tools` (custom tools: `name`, `description`, `input_schema`) | function tools (`parameters` = `input_schema`) |
//! | `tool_choice` auto / any / tool / none | `auto` / `required` / `{type: function, function: {name}}` / `none` |
//! | `tool_choice.disable_parallel_tool_use: true` | `parallel_tool_calls: false` (only with tools) |
//! | `metadata.user_id` | `user` |
//! | `stream: true` | `stream: true` + `stream_options: {include_usage: true}` |
//!
//! Refused (400, `param` = the field): server tools (a `tools` entry whose `type` is not
//! `custom`), `mcp_servers`, `container`; inside `messages`: `document`, `search_result`,
//! server tool blocks and any other block type not listed above (also inside
//! `tool_result`), roles other than user/assistant.
//! Dropped: `top_k`, `thinking`, `service_tier`, `cache_control` everywhere,
//! `tool_result.is_error`, `citations`, other `metadata` fields, and any unknown field.
//! `null` values count as absent.

pub mod backend;
pub mod backend_stream;
pub mod client;
pub mod client_stream;

use super::Untranslatable;
use crate::wire::openai_chat::{Msg, NamedChoice, NamedFn, Part, ToolChoice};
use crate::wire::raw::{Lazy, Raw, Str};
use serde::Deserialize;

/// Parses a member read raw; an error names `param`.
pub(crate) fn parse<'a, T: Deserialize<'a>>(
    param: &str,
    raw: &Raw<'a>,
) -> Result<T, Untranslatable> {
    match raw.parse() {
        Some(r) => r.map_err(|e| Untranslatable::invalid(param, e)),
        None => Err(Untranslatable::invalid(param, "not an input value")),
    }
}

/// Something inside `messages` the target cannot express.
pub(crate) fn bad_msg(why: &str) -> Untranslatable {
    Untranslatable::new(
        "messages",
        format!("Unsupported content in `messages`: {why}."),
    )
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, null, unknown
        _ => "stop",
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        // stop, null, unknown
        _ => "end_turn",
    }
}

/// A tool call's `arguments` (a string holding a JSON object; empty = `{}`) as the raw
/// object, or `None` when it is not one.
pub(crate) fn arguments_object(args: &str) -> Option<Raw<'_>> {
    let a = args.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if a.is_empty() {
        return Some(empty_object());
    }
    match serde_json::from_str::<&serde_json::value::RawValue>(a) {
        Ok(v) if v.get().starts_with('{') => Some(Raw::Borrowed(v)),
        _ => None,
    }
}

/// The JSON text `{}` as a raw value.
pub(crate) fn empty_object() -> Raw<'static> {
    Raw::constant("{}")
}

/// A chat request's `tool_choice` of `mode` (`auto`, `none` or `required`).
pub(crate) fn tool_choice_mode(mode: &'static str) -> Lazy<'static, ToolChoice<'static>> {
    Lazy::Value(ToolChoice::Mode(Str::from_static(mode)))
}

/// A chat request's `tool_choice` naming the function `name`.
pub(crate) fn tool_choice_named<'a>(name: &Raw<'a>) -> Lazy<'a, ToolChoice<'a>> {
    Lazy::Value(ToolChoice::Named(NamedChoice {
        ty: Str::from_static("function"),
        function: Some(NamedFn { name: name.clone() }),
    }))
}

/// A chat request message of `role` with `content` (no tool calls).
pub(crate) fn message<'a>(role: &'static str, content: Option<Lazy<'a, Vec<Part<'a>>>>) -> Msg<'a> {
    Msg {
        role: Str::from_static(role),
        tool_call_id_out: None,
        content,
        tool_calls: None,
        tool_call_id: None,
    }
}
