//! The client speaks OpenAI chat completions, the backend Anthropic Messages (SPEC §11).
//!
//! * [`request`]: chat request body → Messages request body.
//! * [`response`]: Messages response (`message` JSON) → `chat.completion` JSON + usage.
//! * [`Stream`]: Messages event stream → `chat.completion.chunk` stream.
//! * [`stream_error_event`]: the OpenAI-dialect error event the gateway appends to a stream it
//!   cuts.
//!
//! Request mapping:
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

use super::json::{self, inner, is_null, is_obj, is_str, push_str, push_u64, Obj, Str};
use super::stream::{EventTranslator, Phase, Progress, StreamTranslator};
use super::{Refusal, TokenUsage, UpstreamBroken};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Default `max_tokens` when the client gave none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

const PROVIDER: &str = "Anthropic";

// ---------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Msg<'a> {
    #[serde(borrow)]
    role: Str<'a>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
    #[serde(borrow, default)]
    tool_call_id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow, rename = "type", default)]
    ty: Option<Str<'a>>,
    #[serde(borrow)]
    function: FnCall<'a>,
}

#[derive(Deserialize)]
struct FnCall<'a> {
    #[serde(borrow)]
    name: &'a RawValue,
    #[serde(borrow, default)]
    arguments: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, rename = "type")]
    ty: Str<'a>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow, default)]
    image_url: Option<ImageUrl<'a>>,
}

#[derive(Deserialize)]
struct ImageUrl<'a> {
    #[serde(borrow)]
    url: Str<'a>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow, rename = "type")]
    ty: Str<'a>,
    #[serde(borrow, default)]
    function: Option<FnDef<'a>>,
}

#[derive(Deserialize)]
struct FnDef<'a> {
    #[serde(borrow)]
    name: &'a RawValue,
    #[serde(borrow, default)]
    description: Option<&'a RawValue>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct NamedChoice<'a> {
    #[serde(borrow, rename = "type")]
    ty: Str<'a>,
    #[serde(borrow, default)]
    function: Option<NamedFn<'a>>,
}

#[derive(Deserialize)]
struct NamedFn<'a> {
    #[serde(borrow)]
    name: &'a RawValue,
}

#[derive(Deserialize)]
struct ResponseFormat<'a> {
    #[serde(borrow, rename = "type")]
    ty: Str<'a>,
}

fn parse<'a, T: Deserialize<'a>>(param: &str, raw: &'a RawValue) -> Result<T, Refusal> {
    serde_json::from_str(raw.get()).map_err(|e| Refusal::invalid(param, e))
}

/// The request fields that matter, raw.
#[derive(Default)]
struct Fields<'a> {
    messages: Option<&'a RawValue>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    stop: Option<&'a RawValue>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    tools: Option<&'a RawValue>,
    tool_choice: Option<&'a RawValue>,
    parallel_tool_calls: Option<bool>,
    stream: Option<bool>,
    user: Option<&'a RawValue>,
}

/// Translate an OpenAI chat request body into an Anthropic Messages request body whose
/// `model` is `model` (the backend's real model). See the module docs for the mapping; a
/// field that cannot be expressed is a [`Refusal`] naming it.
pub fn request(body: &[u8], model: &str) -> Result<Vec<u8>, Refusal> {
    let obj: Obj<'_> = serde_json::from_slice(body)
        .map_err(|e| Refusal::new("", format!("The request body is not a JSON object: {e}")))?;
    let mut f = Fields::default();
    for (k, v) in &obj.0 {
        let (key, v) = (k.as_str(), *v);
        match key {
            "messages" => f.messages = Some(v),
            "max_tokens" => f.max_tokens = parse(key, v)?,
            "max_completion_tokens" => f.max_completion_tokens = parse(key, v)?,
            "stop" => f.stop = Some(v).filter(|v| !is_null(v)),
            "temperature" => f.temperature = parse(key, v)?,
            "top_p" => f.top_p = parse(key, v)?,
            "tools" => f.tools = Some(v).filter(|v| !is_null(v)),
            "tool_choice" => f.tool_choice = Some(v).filter(|v| !is_null(v)),
            "parallel_tool_calls" => f.parallel_tool_calls = parse(key, v)?,
            "stream" => f.stream = parse(key, v)?,
            "user" => f.user = Some(v).filter(|v| !is_null(v)),
            "n" => {
                let n: Option<u64> = parse(key, v)?;
                if n.unwrap_or(1) != 1 {
                    return Err(Refusal::new(
                        key,
                        format!("`n` > 1 is not supported for this model ({PROVIDER} backend)."),
                    ));
                }
            }
            "logprobs" => {
                let lp: Option<bool> = parse(key, v)?;
                if lp == Some(true) {
                    return Err(Refusal::unsupported(key, PROVIDER));
                }
            }
            "top_logprobs" | "audio" | "prediction" | "functions" | "function_call"
            | "web_search_options"
                if !is_null(v) =>
            {
                return Err(Refusal::unsupported(key, PROVIDER));
            }
            "modalities" => {
                let m: Option<Vec<Str<'_>>> = parse(key, v)?;
                if m.iter().flatten().any(|s| s.as_str() != "text") {
                    return Err(Refusal::new(
                        key,
                        format!("`modalities` other than text are not supported for this model ({PROVIDER} backend)."),
                    ));
                }
            }
            "response_format" => {
                let rf: Option<ResponseFormat<'_>> = parse(key, v)?;
                if rf.is_some_and(|rf| rf.ty.as_str() != "text") {
                    return Err(Refusal::new(
                        key,
                        format!("`response_format` (structured output) is not supported for this model ({PROVIDER} backend)."),
                    ));
                }
            }
            _ => {} // dropped: see the module docs
        }
    }

    let mut out = Vec::with_capacity(body.len() + 128);
    out.extend_from_slice(b"{\"model\":");
    push_str(&mut out, model);
    out.extend_from_slice(b",\"max_tokens\":");
    push_u64(
        &mut out,
        f.max_completion_tokens
            .or(f.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS),
    );
    let Some(messages) = f.messages else {
        return Err(Refusal::new("messages", "`messages` is required."));
    };
    let msgs: Vec<Msg<'_>> = parse("messages", messages)?;
    write_messages(&msgs, &mut out)?;
    if let Some(stop) = f.stop {
        out.extend_from_slice(b",\"stop_sequences\":");
        if is_str(stop) {
            out.push(b'[');
            out.extend_from_slice(json::text(stop).as_bytes());
            out.push(b']');
        } else {
            let v: Vec<&RawValue> = parse("stop", stop)?;
            if !v.iter().all(|s| is_str(s)) {
                return Err(Refusal::invalid("stop", "expected a string or strings"));
            }
            out.extend_from_slice(json::text(stop).as_bytes());
        }
    }
    if let Some(t) = f.temperature {
        out.extend_from_slice(b",\"temperature\":");
        json::push_f64(&mut out, t.min(1.0));
    }
    if let Some(p) = f.top_p {
        out.extend_from_slice(b",\"top_p\":");
        json::push_f64(&mut out, p);
    }
    let mut has_tools = false;
    if let Some(tools) = f.tools {
        let tools: Vec<Tool<'_>> = parse("tools", tools)?;
        has_tools = !tools.is_empty();
        if has_tools {
            out.extend_from_slice(b",\"tools\":[");
        }
        for (i, t) in tools.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let Some(func) = t.function.as_ref().filter(|_| t.ty.as_str() == "function") else {
                return Err(Refusal::new(
                    "tools",
                    format!(
                        "Only `function` tools are supported for this model ({PROVIDER} backend)."
                    ),
                ));
            };
            if !is_str(func.name) {
                return Err(Refusal::invalid(
                    "tools",
                    "a function name must be a string",
                ));
            }
            out.extend_from_slice(b"{\"name\":");
            out.extend_from_slice(json::text(func.name).as_bytes());
            if let Some(d) = func.description.filter(|d| !is_null(d)) {
                if !is_str(d) {
                    return Err(Refusal::invalid("tools", "a description must be a string"));
                }
                out.extend_from_slice(b",\"description\":");
                out.extend_from_slice(json::text(d).as_bytes());
            }
            out.extend_from_slice(b",\"input_schema\":");
            match func.parameters.filter(|p| !is_null(p)) {
                Some(p) if is_obj(p) => out.extend_from_slice(json::text(p).as_bytes()),
                Some(_) => return Err(Refusal::invalid("tools", "`parameters` must be an object")),
                None => out.extend_from_slice(b"{\"type\":\"object\",\"properties\":{}}"),
            }
            out.push(b'}');
        }
        if has_tools {
            out.push(b']');
        }
    }
    let no_parallel = f.parallel_tool_calls == Some(false);
    if let Some(tc) = f.tool_choice {
        out.extend_from_slice(b",\"tool_choice\":");
        let mut none = false;
        if is_str(tc) {
            let s: Str<'_> = parse("tool_choice", tc)?;
            match s.as_str() {
                "auto" => out.extend_from_slice(b"{\"type\":\"auto\""),
                "required" => out.extend_from_slice(b"{\"type\":\"any\""),
                "none" => {
                    none = true;
                    out.extend_from_slice(b"{\"type\":\"none\"");
                }
                _ => return Err(Refusal::invalid("tool_choice", "unknown value")),
            }
        } else {
            let c: NamedChoice<'_> = parse("tool_choice", tc)?;
            match (c.ty.as_str(), c.function) {
                ("function", Some(func)) if is_str(func.name) => {
                    out.extend_from_slice(b"{\"type\":\"tool\",\"name\":");
                    out.extend_from_slice(json::text(func.name).as_bytes());
                }
                _ => {
                    return Err(Refusal::new(
                        "tool_choice",
                        format!(
                        "This `tool_choice` is not supported for this model ({PROVIDER} backend)."
                    ),
                    ))
                }
            }
        }
        if no_parallel && !none {
            out.extend_from_slice(b",\"disable_parallel_tool_use\":true");
        }
        out.push(b'}');
    } else if no_parallel && has_tools {
        out.extend_from_slice(
            b",\"tool_choice\":{\"type\":\"auto\",\"disable_parallel_tool_use\":true}",
        );
    }
    if let Some(u) = f.user {
        if !is_str(u) {
            return Err(Refusal::invalid("user", "expected a string"));
        }
        out.extend_from_slice(b",\"metadata\":{\"user_id\":");
        out.extend_from_slice(json::text(u).as_bytes());
        out.push(b'}');
    }
    if let Some(s) = f.stream {
        out.extend_from_slice(if s {
            b",\"stream\":true"
        } else {
            b",\"stream\":false"
        });
    }
    out.push(b'}');
    Ok(out)
}

fn bad_msg(why: &str) -> Refusal {
    Refusal::new(
        "messages",
        format!("Unsupported content in `messages`: {why}."),
    )
}

/// `,"system":"…","messages":[…]` from the chat messages.
fn write_messages(msgs: &[Msg<'_>], out: &mut Vec<u8>) -> Result<(), Refusal> {
    // System text: escaped inner characters joined by a blank line.
    let mut system: Vec<u8> = Vec::new();
    let mut turns: Vec<u8> = Vec::with_capacity(msgs.len() * 64);
    let mut blocks: Vec<u8> = Vec::new();
    // Role of the turn open in `turns` (true = user).
    let mut open: Option<bool> = None;
    for m in msgs {
        blocks.clear();
        let user = match m.role.as_str() {
            "system" | "developer" => {
                let Some(c) = m.content.filter(|c| !is_null(c)) else {
                    continue;
                };
                system_text(c, &mut system)?;
                continue;
            }
            "user" => {
                if let Some(c) = m.content {
                    content_blocks(c, &mut blocks, false)?;
                }
                true
            }
            "assistant" => {
                if let Some(c) = m.content {
                    content_blocks(c, &mut blocks, true)?;
                }
                for tc in m.tool_calls.iter().flatten() {
                    tool_use(tc, &mut blocks)?;
                }
                false
            }
            "tool" => {
                let Some(id) = m.tool_call_id.filter(|id| is_str(id)) else {
                    return Err(bad_msg("a `tool` message needs a string `tool_call_id`"));
                };
                sep(&mut blocks);
                blocks.extend_from_slice(b"{\"type\":\"tool_result\",\"tool_use_id\":");
                push_tool_id(&mut blocks, id);
                if let Some(c) = m.content.filter(|c| !is_null(c)) {
                    if is_str(c) {
                        blocks.extend_from_slice(b",\"content\":");
                        blocks.extend_from_slice(json::text(c).as_bytes());
                    } else {
                        let mut inner_blocks = Vec::new();
                        content_blocks(c, &mut inner_blocks, false)?;
                        blocks.extend_from_slice(b",\"content\":[");
                        blocks.extend_from_slice(&inner_blocks);
                        blocks.push(b']');
                    }
                }
                blocks.push(b'}');
                true
            }
            "function" => return Err(bad_msg("the `function` role is not supported")),
            _ => return Err(bad_msg("unknown role")),
        };
        if blocks.is_empty() {
            continue;
        }
        match open {
            Some(r) if r == user => turns.push(b','),
            Some(_) => {
                turns.extend_from_slice(b"]},");
                open_turn(&mut turns, user);
            }
            None => open_turn(&mut turns, user),
        }
        open = Some(user);
        turns.extend_from_slice(&blocks);
    }
    if open.is_some() {
        turns.extend_from_slice(b"]}");
    }
    if !system.is_empty() {
        out.extend_from_slice(b",\"system\":\"");
        out.extend_from_slice(&system);
        out.push(b'"');
    }
    out.extend_from_slice(b",\"messages\":[");
    out.extend_from_slice(&turns);
    out.push(b']');
    Ok(())
}

fn open_turn(turns: &mut Vec<u8>, user: bool) {
    turns.extend_from_slice(if user {
        b"{\"role\":\"user\",\"content\":["
    } else {
        b"{\"role\":\"assistant\",\"content\":["
    });
}

#[inline]
fn sep(blocks: &mut Vec<u8>) {
    if !blocks.is_empty() {
        blocks.push(b',');
    }
}

/// Append the text of a system message (string or text parts) to `system`.
fn system_text(c: &RawValue, system: &mut Vec<u8>) -> Result<(), Refusal> {
    let mut add = |s: &str| {
        if s.is_empty() {
            return;
        }
        if !system.is_empty() {
            system.extend_from_slice(b"\\n\\n");
        }
        system.extend_from_slice(s.as_bytes());
    };
    if let Some(s) = inner(c) {
        add(s);
        return Ok(());
    }
    let parts: Vec<Part<'_>> = parse("messages", c)?;
    for p in &parts {
        match (p.ty.as_str(), p.text.and_then(inner)) {
            ("text", Some(t)) => add(t),
            _ => return Err(bad_msg("system messages may only contain text")),
        }
    }
    Ok(())
}

/// Content (string or parts) → Anthropic blocks appended (comma-separated) to `blocks`.
fn content_blocks(c: &RawValue, blocks: &mut Vec<u8>, assistant: bool) -> Result<(), Refusal> {
    if is_null(c) {
        return Ok(());
    }
    if is_str(c) {
        text_block(json::text(c), blocks);
        return Ok(());
    }
    let parts: Vec<Part<'_>> = parse("messages", c)?;
    for p in &parts {
        match p.ty.as_str() {
            "text" => match p.text.filter(|t| is_str(t)) {
                Some(t) => text_block(json::text(t), blocks),
                None => return Err(bad_msg("a text part needs a string `text`")),
            },
            "refusal" if assistant => match p.refusal.filter(|t| is_str(t)) {
                Some(t) => text_block(json::text(t), blocks),
                None => return Err(bad_msg("a refusal part needs a string `refusal`")),
            },
            "image_url" if !assistant => {
                let Some(img) = &p.image_url else {
                    return Err(bad_msg("an image_url part needs `image_url.url`"));
                };
                image_block(img.url.as_str(), blocks)?;
            }
            "input_audio" => return Err(bad_msg("audio input is not supported")),
            "file" => return Err(bad_msg("file inputs are not supported")),
            _ => return Err(bad_msg("unknown content part type")),
        }
    }
    Ok(())
}

/// A text block from a raw string literal; empty text is skipped (Anthropic rejects it).
fn text_block(raw_str: &str, blocks: &mut Vec<u8>) {
    if raw_str == "\"\"" {
        return;
    }
    sep(blocks);
    blocks.extend_from_slice(b"{\"type\":\"text\",\"text\":");
    blocks.extend_from_slice(raw_str.as_bytes());
    blocks.push(b'}');
}

fn image_block(url: &str, blocks: &mut Vec<u8>) -> Result<(), Refusal> {
    sep(blocks);
    if let Some(rest) = url.strip_prefix("data:") {
        let Some((meta, data)) = rest.split_once(',') else {
            return Err(bad_msg("malformed data URL"));
        };
        let Some(media_type) = meta.strip_suffix(";base64") else {
            return Err(bad_msg("image data URLs must be base64"));
        };
        blocks.extend_from_slice(
            b"{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":",
        );
        push_str(blocks, media_type);
        blocks.extend_from_slice(b",\"data\":");
        push_str(blocks, data);
        blocks.extend_from_slice(b"}}");
        Ok(())
    } else if url.starts_with("https://") || url.starts_with("http://") {
        blocks.extend_from_slice(b"{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":");
        push_str(blocks, url);
        blocks.extend_from_slice(b"}}");
        Ok(())
    } else {
        Err(bad_msg("image URLs must be data: or http(s) URLs"))
    }
}

/// A tool-call id (a raw string literal) as Anthropic accepts it (`^[a-zA-Z0-9_-]+$`): other
/// characters become `_`, an empty id `_`. The mapping is the same for `tool_use.id` and
/// `tool_result.tool_use_id`, so a call and its result still pair up.
fn push_tool_id(out: &mut Vec<u8>, raw: &RawValue) {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    match inner(raw) {
        Some(s) if !s.is_empty() && s.chars().all(ok) => {
            out.extend_from_slice(json::text(raw).as_bytes())
        }
        _ => {
            let decoded = serde_json::from_str::<Str<'_>>(raw.get())
                .map(|s| s.0)
                .unwrap_or_default();
            out.push(b'"');
            for c in decoded.chars() {
                out.push(if ok(c) { c as u8 } else { b'_' });
            }
            if decoded.is_empty() {
                out.push(b'_');
            }
            out.push(b'"');
        }
    }
}

fn tool_use(tc: &ToolCall<'_>, blocks: &mut Vec<u8>) -> Result<(), Refusal> {
    if tc.ty.as_ref().is_some_and(|t| t.as_str() != "function") {
        return Err(bad_msg("only function tool calls are supported"));
    }
    if !is_str(tc.id) || !is_str(tc.function.name) {
        return Err(bad_msg(
            "a tool call needs a string `id` and `function.name`",
        ));
    }
    let args = tc
        .function
        .arguments
        .as_ref()
        .map(|a| a.as_str())
        .unwrap_or("");
    let args = args.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    let input = if args.is_empty() {
        "{}"
    } else {
        match serde_json::from_str::<&RawValue>(args) {
            Ok(v) if is_obj(v) => args,
            _ => {
                return Err(bad_msg(
                    "tool call `arguments` must be a JSON object encoded as a string",
                ))
            }
        }
    };
    sep(blocks);
    blocks.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
    push_tool_id(blocks, tc.id);
    blocks.extend_from_slice(b",\"name\":");
    blocks.extend_from_slice(json::text(tc.function.name).as_bytes());
    blocks.extend_from_slice(b",\"input\":");
    blocks.extend_from_slice(input.as_bytes());
    blocks.push(b'}');
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct AMessage<'a> {
    #[serde(borrow, rename = "type", default)]
    ty: Option<Str<'a>>,
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    model: &'a RawValue,
    #[serde(borrow, default)]
    content: Vec<ABlock<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<Str<'a>>,
    #[serde(default)]
    usage: Option<json::AnthropicUsage>,
}

#[derive(Deserialize)]
struct ABlock<'a> {
    #[serde(borrow, rename = "type")]
    ty: Str<'a>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
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

fn tokens(u: &json::AnthropicUsage) -> TokenUsage {
    TokenUsage {
        input: u.input_tokens.unwrap_or(0),
        output: u.output_tokens.unwrap_or(0),
        cache_read: u.cache_read_input_tokens.unwrap_or(0),
        cache_write: u.cache_creation_input_tokens.unwrap_or(0),
    }
}

fn push_openai_usage(out: &mut Vec<u8>, u: TokenUsage) {
    let prompt = u
        .input
        .saturating_add(u.cache_read)
        .saturating_add(u.cache_write);
    out.extend_from_slice(b"{\"prompt_tokens\":");
    push_u64(out, prompt);
    out.extend_from_slice(b",\"completion_tokens\":");
    push_u64(out, u.output);
    out.extend_from_slice(b",\"total_tokens\":");
    push_u64(out, prompt.saturating_add(u.output));
    out.extend_from_slice(b",\"prompt_tokens_details\":{\"cached_tokens\":");
    push_u64(out, u.cache_read);
    out.extend_from_slice(b"}}");
}

/// Translate an Anthropic Messages response (a `message` object) into a `chat.completion`
/// JSON body, and report its usage. `created` is now; `model` is the backend's model as the
/// response names it. Text blocks are concatenated into `message.content` (`null` when there
/// is none), `tool_use` blocks become `tool_calls` (arguments = the serialized input), and
/// thinking and other blocks are dropped. Anything not shaped like a message is
/// [`UpstreamBroken`].
pub fn response(body: &[u8]) -> Result<(Vec<u8>, TokenUsage), UpstreamBroken> {
    response_at(body, json::now_secs())
}

/// [`response`] with a fixed `created` timestamp.
pub fn response_at(body: &[u8], created: u64) -> Result<(Vec<u8>, TokenUsage), UpstreamBroken> {
    let m: AMessage<'_> = serde_json::from_slice(body)
        .map_err(|_| UpstreamBroken::invalid("invalid message JSON"))?;
    if m.ty.as_ref().is_some_and(|t| t.as_str() != "message") {
        return Err(UpstreamBroken::invalid("not a message object"));
    }
    if !is_str(m.id) || !is_str(m.model) {
        return Err(UpstreamBroken::invalid("message id/model not strings"));
    }
    let usage = m.usage.as_ref().map(tokens).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(json::text(m.id).as_bytes());
    out.extend_from_slice(b",\"object\":\"chat.completion\",\"created\":");
    push_u64(&mut out, created);
    out.extend_from_slice(b",\"model\":");
    out.extend_from_slice(json::text(m.model).as_bytes());
    out.extend_from_slice(
        b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":",
    );
    let mut any_text = false;
    for b in &m.content {
        if b.ty.as_str() == "text" {
            let Some(t) = b.text.and_then(inner) else {
                return Err(UpstreamBroken::invalid("text block without string text"));
            };
            if !any_text {
                out.push(b'"');
                any_text = true;
            }
            out.extend_from_slice(t.as_bytes());
        }
    }
    if any_text {
        out.push(b'"');
    } else {
        out.extend_from_slice(b"null");
    }
    let mut k = 0usize;
    for b in &m.content {
        if b.ty.as_str() != "tool_use" {
            continue;
        }
        let (Some(id), Some(name)) = (b.id.filter(|v| is_str(v)), b.name.filter(|v| is_str(v)))
        else {
            return Err(UpstreamBroken::invalid("tool_use block without id/name"));
        };
        out.extend_from_slice(if k == 0 { b",\"tool_calls\":[" } else { b"," });
        k += 1;
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(json::text(id).as_bytes());
        out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
        out.extend_from_slice(json::text(name).as_bytes());
        out.extend_from_slice(b",\"arguments\":");
        match b.input {
            Some(i) if is_obj(i) => push_str(&mut out, json::text(i)),
            None => out.extend_from_slice(b"\"{}\""),
            Some(_) => return Err(UpstreamBroken::invalid("tool_use input not an object")),
        }
        out.extend_from_slice(b"}}");
    }
    if k > 0 {
        out.push(b']');
    }
    out.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":\"");
    out.extend_from_slice(finish_reason(m.stop_reason.as_ref().map(|s| s.as_str())).as_bytes());
    out.extend_from_slice(b"\"}],\"usage\":");
    push_openai_usage(&mut out, usage);
    out.push(b'}');
    Ok((out, usage))
}

// ---------------------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, rename = "type")]
    ty: Str<'a>,
    #[serde(borrow, default)]
    message: Option<StartMessage<'a>>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    content_block: Option<ABlock<'a>>,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    usage: Option<json::AnthropicUsage>,
    #[serde(borrow, default)]
    error: Option<ErrorBody<'a>>,
}

#[derive(Deserialize)]
struct StartMessage<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    model: &'a RawValue,
    #[serde(default)]
    usage: Option<json::AnthropicUsage>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, rename = "type", default)]
    ty: Option<Str<'a>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    partial_json: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stop_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ErrorBody<'a> {
    #[serde(borrow, rename = "type", default)]
    pub ty: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub message: Option<Str<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    /// A `tool_use` block: its OpenAI `tool_calls[].index`.
    Tool(u32),
    /// Thinking, server tools, unknown: dropped.
    Other,
}

/// Longest `id` + `model` (as JSON) accepted in `message_start`: both are repeated in every
/// chunk.
pub const MAX_ID_BYTES: usize = 1024;

/// Most content blocks open at the same time (Anthropic opens one at a time).
pub const MAX_OPEN_BLOCKS: usize = 16;

/// Translates an Anthropic Messages event stream into an OpenAI `chat.completion.chunk`
/// stream (SPEC §11).
///
/// Events → chunks: `message_start` → a chunk with `delta: {role: assistant, content: ""}`
/// (id and model from the message); `content_block_start` of a `tool_use` block → a chunk
/// opening `tool_calls[{index: k, id, type, function: {name, arguments: ""}}]` (k counts tool
/// blocks from 0); `text_delta` → `delta.content`; `input_json_delta` →
/// `tool_calls[{index: k, function: {arguments}}]`; thinking / signature / citation deltas,
/// `ping`, text block starts and block stops → nothing; the first `message_delta` → a chunk
/// with `delta: {}` and the mapped `finish_reason`; `message_stop` → the usage chunk
/// (`choices: []`, only when `include_usage`), then `data: [DONE]`. An `error` event →
/// `data: {"error": {...}}` (see [`super::errors`]), after which the stream is over (no
/// `[DONE]`; later input is ignored).
///
/// [`UpstreamBroken`] (sticky): a stream that is not SSE, event data that is not a JSON
/// object with a `type`, content before `message_start`, a second `message_start`, a delta or
/// stop for a block that is not open, a delta of the wrong kind for its block, events after
/// `message_stop` (other than `ping`), more than [`MAX_OPEN_BLOCKS`] open blocks, an id and
/// model longer than [`MAX_ID_BYTES`] together.
/// Unknown event and delta types are ignored (Anthropic may add them).
pub type Stream = StreamTranslator<State>;

/// The per-event state of an Anthropic → OpenAI stream ([`Stream`]).
#[derive(Debug)]
pub struct State {
    include_usage: bool,
    created: u64,
    /// `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,`
    head: Vec<u8>,
    /// Usage: input and cache tokens from `message_start`, output from the latest
    /// `message_delta` (`None` before `message_start`). Commit point: the first content
    /// chunk (text delta, tool call start or arguments delta). Error: an `event: error`.
    progress: Progress,
    /// Open blocks: (Anthropic index, kind).
    blocks: Vec<(u64, Block)>,
    next_tool: u32,
    finished: bool,
}

impl Stream {
    /// A translator at the start of a stream. `include_usage`: the client asked for
    /// `stream_options.include_usage` (a final usage chunk with `choices: []`).
    pub fn new(include_usage: bool) -> Self {
        Self::new_at(include_usage, json::now_secs())
    }

    /// [`Stream::new`] with a fixed `created` timestamp.
    pub fn new_at(include_usage: bool, created: u64) -> Self {
        StreamTranslator::with_state(State {
            include_usage,
            created,
            head: Vec::new(),
            progress: Progress::default(),
            blocks: Vec::new(),
            next_tool: 0,
            finished: false,
        })
    }
}

impl EventTranslator for State {
    const ENDED_EARLY: &'static str = "stream ended before message_stop";

    fn event(&mut self, name: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        if self.progress.phase == Phase::Errored || data.is_empty() {
            return Ok(());
        }
        let ev: Event<'_> = serde_json::from_slice(data)
            .map_err(|_| UpstreamBroken::invalid("invalid event JSON"))?;
        let ty = ev.ty.as_str();
        if name == b"error" || ty == "error" {
            let (t, m) = match &ev.error {
                Some(e) => (
                    e.ty.as_ref().map(|t| t.as_str()),
                    e.message.as_ref().map(|m| m.as_str()),
                ),
                None => (None, None),
            };
            out.extend_from_slice(&super::errors::openai_stream_error(
                super::errors::anthropic_type_to_openai(t.unwrap_or("api_error")),
                t.and_then(super::errors::known_anthropic_type),
                m.unwrap_or("The upstream provider reported an error."),
            ));
            self.progress.phase = Phase::Errored;
            return Ok(());
        }
        if ty == "ping" {
            return Ok(());
        }
        match self.progress.phase {
            Phase::Start if ty != "message_start" => {
                return Err(UpstreamBroken::invalid("event before message_start"))
            }
            Phase::Done => return Err(UpstreamBroken::invalid("event after message_stop")),
            _ => {}
        }
        match ty {
            "message_start" => {
                if self.progress.phase != Phase::Start {
                    return Err(UpstreamBroken::invalid("second message_start"));
                }
                let Some(m) = ev.message else {
                    return Err(UpstreamBroken::invalid("message_start without message"));
                };
                if !is_str(m.id) || !is_str(m.model) {
                    return Err(UpstreamBroken::invalid("message id/model not strings"));
                }
                // They are repeated in every chunk: a huge one would multiply the output.
                if m.id.get().len() + m.model.get().len() > MAX_ID_BYTES {
                    return Err(UpstreamBroken::invalid("message id/model too long"));
                }
                self.head.clear();
                self.head.extend_from_slice(b"data: {\"id\":");
                self.head.extend_from_slice(json::text(m.id).as_bytes());
                self.head
                    .extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
                push_u64(&mut self.head, self.created);
                self.head.extend_from_slice(b",\"model\":");
                self.head.extend_from_slice(json::text(m.model).as_bytes());
                self.head.push(b',');
                self.progress.usage = Some(m.usage.as_ref().map(tokens).unwrap_or_default());
                self.progress.phase = Phase::Open;
                self.chunk(out, &[b"{\"role\":\"assistant\",\"content\":\"\"}"], None);
            }
            "content_block_start" => {
                let (Some(index), Some(b)) = (ev.index, ev.content_block) else {
                    return Err(UpstreamBroken::invalid(
                        "content_block_start without index/block",
                    ));
                };
                if self.blocks.iter().any(|(i, _)| *i == index) {
                    return Err(UpstreamBroken::invalid("content block started twice"));
                }
                if self.blocks.len() >= MAX_OPEN_BLOCKS {
                    return Err(UpstreamBroken::invalid("too many open content blocks"));
                }
                let kind = match b.ty.as_str() {
                    "text" => Block::Text,
                    "tool_use" => {
                        let (Some(id), Some(name)) =
                            (b.id.filter(|v| is_str(v)), b.name.filter(|v| is_str(v)))
                        else {
                            return Err(UpstreamBroken::invalid("tool_use block without id/name"));
                        };
                        let k = self.next_tool;
                        self.next_tool = k.saturating_add(1);
                        let mut d = Vec::with_capacity(128);
                        d.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                        push_u64(&mut d, u64::from(k));
                        d.extend_from_slice(b",\"id\":");
                        d.extend_from_slice(json::text(id).as_bytes());
                        d.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                        d.extend_from_slice(json::text(name).as_bytes());
                        d.extend_from_slice(b",\"arguments\":");
                        // Anthropic sends `input: {}` and streams the input; a provider that
                        // sends it whole here gets it passed as the first arguments.
                        match b.input {
                            Some(i) if is_obj(i) && json::text(i) != "{}" => {
                                push_str(&mut d, json::text(i))
                            }
                            _ => d.extend_from_slice(b"\"\""),
                        }
                        d.extend_from_slice(b"}}]}");
                        self.chunk(out, &[&d], None);
                        self.progress.started = true;
                        Block::Tool(k)
                    }
                    _ => Block::Other,
                };
                self.blocks.push((index, kind));
            }
            "content_block_delta" => {
                let (Some(index), Some(d)) = (ev.index, ev.delta) else {
                    return Err(UpstreamBroken::invalid(
                        "content_block_delta without index/delta",
                    ));
                };
                let Some(&(_, kind)) = self.blocks.iter().find(|(i, _)| *i == index) else {
                    return Err(UpstreamBroken::invalid(
                        "delta for a block that is not open",
                    ));
                };
                match (d.ty.as_ref().map(|t| t.as_str()), kind) {
                    (Some("text_delta"), Block::Text) => {
                        let Some(t) = d.text.filter(|t| is_str(t)) else {
                            return Err(UpstreamBroken::invalid("text_delta without text"));
                        };
                        let t = json::text(t);
                        if t != "\"\"" {
                            self.chunk(out, &[b"{\"content\":", t.as_bytes(), b"}"], None);
                            self.progress.started = true;
                        }
                    }
                    (Some("input_json_delta"), Block::Tool(k)) => {
                        let Some(p) = d.partial_json.filter(|t| is_str(t)) else {
                            return Err(UpstreamBroken::invalid(
                                "input_json_delta without partial_json",
                            ));
                        };
                        let p = json::text(p);
                        if p != "\"\"" {
                            let mut num = Vec::with_capacity(10);
                            push_u64(&mut num, u64::from(k));
                            self.chunk(
                                out,
                                &[
                                    b"{\"tool_calls\":[{\"index\":",
                                    &num,
                                    b",\"function\":{\"arguments\":",
                                    p.as_bytes(),
                                    b"}}]}",
                                ],
                                None,
                            );
                            self.progress.started = true;
                        }
                    }
                    (Some("text_delta"), _) | (Some("input_json_delta"), _)
                        if kind != Block::Other =>
                    {
                        return Err(UpstreamBroken::invalid(
                            "delta kind does not match its block",
                        ));
                    }
                    _ => {} // thinking, signature, citations, unknown: dropped
                }
            }
            "content_block_stop" => {
                let Some(index) = ev.index else {
                    return Err(UpstreamBroken::invalid("content_block_stop without index"));
                };
                let Some(pos) = self.blocks.iter().position(|(i, _)| *i == index) else {
                    return Err(UpstreamBroken::invalid("stop for a block that is not open"));
                };
                self.blocks.swap_remove(pos);
            }
            "message_delta" => {
                if let Some(u) = &ev.usage {
                    let cur = self.progress.usage.get_or_insert_with(TokenUsage::default);
                    if let Some(o) = u.output_tokens {
                        cur.output = o;
                    }
                    if let Some(i) = u.input_tokens {
                        cur.input = i;
                    }
                    if let Some(c) = u.cache_read_input_tokens {
                        cur.cache_read = c;
                    }
                    if let Some(c) = u.cache_creation_input_tokens {
                        cur.cache_write = c;
                    }
                }
                if !self.finished {
                    let reason = ev
                        .delta
                        .as_ref()
                        .and_then(|d| d.stop_reason.as_ref())
                        .map(|s| s.as_str());
                    self.finished = true;
                    self.chunk(out, &[b"{}"], Some(finish_reason(reason)));
                }
            }
            "message_stop" => {
                if !self.finished {
                    self.finished = true;
                    self.chunk(out, &[b"{}"], Some("stop"));
                }
                if self.include_usage {
                    out.extend_from_slice(&self.head);
                    out.extend_from_slice(b"\"choices\":[],\"usage\":");
                    push_openai_usage(out, self.progress.usage.unwrap_or_default());
                    out.extend_from_slice(b"}\n\n");
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.progress.phase = Phase::Done;
            }
            _ => {} // unknown event types are ignored
        }
        Ok(())
    }

    fn progress(&self) -> &Progress {
        &self.progress
    }
}

impl State {
    /// One chunk: `head` + `"choices":[{"index":0,"delta":<delta>,"logprobs":null,"finish_reason":…}]}`.
    /// `delta` is the delta object's JSON in pieces (concatenated).
    fn chunk(&self, out: &mut Vec<u8>, delta: &[&[u8]], finish: Option<&str>) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b"\"choices\":[{\"index\":0,\"delta\":");
        for piece in delta {
            out.extend_from_slice(piece);
        }
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(f) => {
                out.push(b'"');
                out.extend_from_slice(f.as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]}\n\n");
    }
}

/// The client-dialect error event the gateway appends when it cuts a stream: OpenAI
/// `data: {"error":{"message":…,"type":"upstream_error","param":null,"code":"stream_error"}}\n\n`
/// (the same event the proxy sends for untranslated streams). The caller sends a blank line
/// first when the client may be mid-event; a translated stream never is (only whole events
/// are emitted).
pub fn stream_error_event(message: &str) -> Vec<u8> {
    super::errors::openai_stream_error("upstream_error", Some("stream_error"), message)
}
