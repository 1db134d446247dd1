//! The client speaks Anthropic Messages, the backend OpenAI chat completions (SPEC §11).
//!
//! * [`request`]: Messages request body → chat request body.
//! * [`response`]: `chat.completion` JSON → Messages `message` JSON + usage.
//! * [`Stream`]: `chat.completion.chunk` stream → Messages event stream.
//! * [`stream_error_event`]: the Anthropic-dialect error event the gateway appends to a
//!   stream it cuts.
//!
//! Request mapping:
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

use super::json::{
    self, inner, is_null, is_obj, is_str, push_escaped, push_str, push_u64, Obj, OpenAiUsage, Str,
};
use super::stream::{EventTranslator, Phase, Progress, StreamTranslator};
use super::{Refusal, TokenUsage, UpstreamBroken};
use serde::Deserialize;
use serde_json::value::RawValue;

const PROVIDER: &str = "OpenAI-compatible";

// ---------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Msg<'a> {
    #[serde(borrow)]
    role: Str<'a>,
    #[serde(borrow)]
    content: &'a RawValue,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(borrow, rename = "type")]
    ty: Str<'a>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_use_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Source<'a> {
    #[serde(borrow, rename = "type")]
    ty: Str<'a>,
    #[serde(borrow, default)]
    media_type: Option<Str<'a>>,
    #[serde(borrow, default)]
    data: Option<Str<'a>>,
    #[serde(borrow, default)]
    url: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow, rename = "type", default)]
    ty: Option<Str<'a>>,
    #[serde(borrow)]
    name: &'a RawValue,
    #[serde(borrow, default)]
    description: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input_schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolChoice<'a> {
    #[serde(borrow, rename = "type")]
    ty: Str<'a>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(default)]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    user_id: Option<&'a RawValue>,
}

fn parse<'a, T: Deserialize<'a>>(param: &str, raw: &'a RawValue) -> Result<T, Refusal> {
    serde_json::from_str(raw.get()).map_err(|e| Refusal::invalid(param, e))
}

fn bad_msg(why: &str) -> Refusal {
    Refusal::new(
        "messages",
        format!("Unsupported content in `messages`: {why}."),
    )
}

#[derive(Default)]
struct Fields<'a> {
    messages: Option<&'a RawValue>,
    system: Option<&'a RawValue>,
    max_tokens: Option<u64>,
    stop_sequences: Option<&'a RawValue>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    tools: Option<&'a RawValue>,
    tool_choice: Option<&'a RawValue>,
    metadata: Option<&'a RawValue>,
    stream: Option<bool>,
}

/// Translate an Anthropic Messages request body into an OpenAI chat request body whose
/// `model` is `model` (the backend's real model). A streaming request also asks for usage
/// (`stream_options.include_usage`). See the module docs for the mapping; a field that cannot
/// be expressed is a [`Refusal`] naming it.
pub fn request(body: &[u8], model: &str) -> Result<Vec<u8>, Refusal> {
    let obj: Obj<'_> = serde_json::from_slice(body)
        .map_err(|e| Refusal::new("", format!("The request body is not a JSON object: {e}")))?;
    let mut f = Fields::default();
    for (k, v) in &obj.0 {
        let key = k.as_str();
        let v = Some(*v).filter(|v| !is_null(v));
        match key {
            "messages" => f.messages = v,
            "system" => f.system = v,
            "max_tokens" => f.max_tokens = v.map(|v| parse(key, v)).transpose()?,
            "stop_sequences" => f.stop_sequences = v,
            "temperature" => f.temperature = v.map(|v| parse(key, v)).transpose()?,
            "top_p" => f.top_p = v.map(|v| parse(key, v)).transpose()?,
            "tools" => f.tools = v,
            "tool_choice" => f.tool_choice = v,
            "metadata" => f.metadata = v,
            "stream" => f.stream = v.map(|v| parse(key, v)).transpose()?,
            "mcp_servers" | "container" if v.is_some() => {
                return Err(Refusal::unsupported(key, PROVIDER));
            }
            _ => {} // dropped: see the module docs
        }
    }
    let Some(messages) = f.messages else {
        return Err(Refusal::new("messages", "`messages` is required."));
    };
    let mut out = Vec::with_capacity(body.len() + 128);
    out.extend_from_slice(b"{\"model\":");
    push_str(&mut out, model);
    out.extend_from_slice(b",\"messages\":[");
    let mut first = true;
    if let Some(system) = f.system {
        system_message(system, "system", &mut out, &mut first)?;
    }
    let msgs: Vec<Msg<'_>> = parse("messages", messages)?;
    let mut parts = Vec::new();
    for m in &msgs {
        match m.role.as_str() {
            "user" => user_message(m.content, &mut out, &mut first, &mut parts)?,
            "assistant" => assistant_message(m.content, &mut out, &mut first)?,
            // Claude Code sends `system` turns inside `messages`; OpenAI takes them as is.
            "system" => system_message(m.content, "messages", &mut out, &mut first)?,
            _ => return Err(bad_msg("roles must be user, assistant or system")),
        }
    }
    out.push(b']');
    if let Some(n) = f.max_tokens {
        out.extend_from_slice(b",\"max_tokens\":");
        push_u64(&mut out, n);
    }
    if let Some(stop) = f.stop_sequences {
        let v: Vec<&RawValue> = parse("stop_sequences", stop)?;
        if !v.iter().all(|s| is_str(s)) {
            return Err(Refusal::invalid("stop_sequences", "expected strings"));
        }
        if !v.is_empty() {
            out.extend_from_slice(b",\"stop\":");
            out.extend_from_slice(json::text(stop).as_bytes());
        }
    }
    if let Some(t) = f.temperature {
        out.extend_from_slice(b",\"temperature\":");
        json::push_f64(&mut out, t);
    }
    if let Some(p) = f.top_p {
        out.extend_from_slice(b",\"top_p\":");
        json::push_f64(&mut out, p);
    }
    let mut has_tools = false;
    if let Some(tools) = f.tools {
        let tools: Vec<Tool<'_>> = parse("tools", tools)?;
        if !tools.is_empty() {
            has_tools = true;
            out.extend_from_slice(b",\"tools\":[");
            for (i, t) in tools.iter().enumerate() {
                if t.ty.as_ref().is_some_and(|t| t.as_str() != "custom") {
                    return Err(Refusal::new(
                        "tools",
                        format!("Server tools are not supported for this model ({PROVIDER} backend); only custom tools are."),
                    ));
                }
                if !is_str(t.name) {
                    return Err(Refusal::invalid("tools", "a tool name must be a string"));
                }
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"type\":\"function\",\"function\":{\"name\":");
                out.extend_from_slice(json::text(t.name).as_bytes());
                if let Some(d) = t.description.filter(|d| !is_null(d)) {
                    if !is_str(d) {
                        return Err(Refusal::invalid("tools", "a description must be a string"));
                    }
                    out.extend_from_slice(b",\"description\":");
                    out.extend_from_slice(json::text(d).as_bytes());
                }
                out.extend_from_slice(b",\"parameters\":");
                match t.input_schema.filter(|s| !is_null(s)) {
                    Some(s) if is_obj(s) => out.extend_from_slice(json::text(s).as_bytes()),
                    Some(_) => {
                        return Err(Refusal::invalid(
                            "tools",
                            "`input_schema` must be an object",
                        ))
                    }
                    None => out.extend_from_slice(b"{\"type\":\"object\",\"properties\":{}}"),
                }
                out.extend_from_slice(b"}}");
            }
            out.push(b']');
        }
    }
    if let Some(tc) = f.tool_choice {
        let c: ToolChoice<'_> = parse("tool_choice", tc)?;
        out.extend_from_slice(b",\"tool_choice\":");
        match c.ty.as_str() {
            "auto" => out.extend_from_slice(b"\"auto\""),
            "any" => out.extend_from_slice(b"\"required\""),
            "none" => out.extend_from_slice(b"\"none\""),
            "tool" => {
                let Some(name) = c.name.filter(|n| is_str(n)) else {
                    return Err(Refusal::invalid("tool_choice", "`name` is required"));
                };
                out.extend_from_slice(b"{\"type\":\"function\",\"function\":{\"name\":");
                out.extend_from_slice(json::text(name).as_bytes());
                out.extend_from_slice(b"}}");
            }
            _ => return Err(Refusal::invalid("tool_choice", "unknown type")),
        }
        if c.disable_parallel_tool_use == Some(true) && has_tools {
            out.extend_from_slice(b",\"parallel_tool_calls\":false");
        }
    }
    if let Some(md) = f.metadata {
        let md: Metadata<'_> = parse("metadata", md)?;
        if let Some(u) = md.user_id.filter(|u| !is_null(u)) {
            if !is_str(u) {
                return Err(Refusal::invalid("metadata", "`user_id` must be a string"));
            }
            out.extend_from_slice(b",\"user\":");
            out.extend_from_slice(json::text(u).as_bytes());
        }
    }
    match f.stream {
        Some(true) => {
            out.extend_from_slice(b",\"stream\":true,\"stream_options\":{\"include_usage\":true}")
        }
        Some(false) => out.extend_from_slice(b",\"stream\":false"),
        None => {}
    }
    out.push(b'}');
    Ok(out)
}

#[inline]
fn next_msg(out: &mut Vec<u8>, first: &mut bool) {
    if !*first {
        out.push(b',');
    }
    *first = false;
}

/// A system prompt (a string or text blocks, joined with a blank line) as an OpenAI
/// `system` message; nothing for an empty one. `field` names the request field at fault.
fn system_message(
    system: &RawValue,
    field: &str,
    out: &mut Vec<u8>,
    first: &mut bool,
) -> Result<(), Refusal> {
    let mut text = Vec::new();
    if let Some(s) = inner(system) {
        text.extend_from_slice(s.as_bytes());
    } else {
        let blocks: Vec<Block<'_>> = parse(field, system)?;
        for b in &blocks {
            match (b.ty.as_str(), b.text.and_then(inner)) {
                ("text", Some(t)) => {
                    if !text.is_empty() && !t.is_empty() {
                        text.extend_from_slice(b"\\n\\n");
                    }
                    text.extend_from_slice(t.as_bytes());
                }
                _ => {
                    return Err(Refusal::invalid(
                        field,
                        "system prompts support only text blocks",
                    ))
                }
            }
        }
    }
    if !text.is_empty() {
        if !*first {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"role\":\"system\",\"content\":\"");
        out.extend_from_slice(&text);
        out.extend_from_slice(b"\"}");
        *first = false;
    }
    Ok(())
}

/// A user turn: its `tool_result` blocks as `tool` messages, then one user message with the
/// rest (if any). `parts` is a reused buffer.
fn user_message(
    content: &RawValue,
    out: &mut Vec<u8>,
    first: &mut bool,
    parts: &mut Vec<u8>,
) -> Result<(), Refusal> {
    if is_str(content) {
        next_msg(out, first);
        out.extend_from_slice(b"{\"role\":\"user\",\"content\":");
        out.extend_from_slice(json::text(content).as_bytes());
        out.push(b'}');
        return Ok(());
    }
    let blocks: Vec<Block<'_>> = parse("messages", content)?;
    parts.clear();
    let mut n_parts = 0usize;
    let mut only_text: Option<&str> = None;
    for b in &blocks {
        match b.ty.as_str() {
            "text" => {
                let Some(t) = b.text.filter(|t| is_str(t)) else {
                    return Err(bad_msg("a text block needs a string `text`"));
                };
                if n_parts > 0 {
                    parts.push(b',');
                }
                n_parts += 1;
                only_text = Some(json::text(t));
                parts.extend_from_slice(b"{\"type\":\"text\",\"text\":");
                parts.extend_from_slice(json::text(t).as_bytes());
                parts.push(b'}');
            }
            "image" => {
                if n_parts > 0 {
                    parts.push(b',');
                }
                n_parts += 1;
                only_text = None;
                image_part(b.source.as_ref(), parts)?;
            }
            "tool_result" => {
                let Some(id) = b.tool_use_id.filter(|v| is_str(v)) else {
                    return Err(bad_msg("a tool_result block needs a string `tool_use_id`"));
                };
                next_msg(out, first);
                out.extend_from_slice(b"{\"role\":\"tool\",\"tool_call_id\":");
                out.extend_from_slice(json::text(id).as_bytes());
                out.extend_from_slice(b",\"content\":");
                match b.content.filter(|c| !is_null(c)) {
                    None => out.extend_from_slice(b"\"\""),
                    Some(c) if is_str(c) => out.extend_from_slice(json::text(c).as_bytes()),
                    Some(c) => {
                        let inner_blocks: Vec<Block<'_>> = parse("messages", c)?;
                        out.push(b'"');
                        let mut any = false;
                        for ib in &inner_blocks {
                            match (ib.ty.as_str(), ib.text.and_then(inner)) {
                                ("text", Some(t)) => {
                                    if any {
                                        out.extend_from_slice(b"\\n");
                                    }
                                    any = true;
                                    out.extend_from_slice(t.as_bytes());
                                }
                                // OpenAI tool messages hold text only: images go to the user
                                // message that follows the tool messages.
                                ("image", _) => {
                                    if n_parts > 0 {
                                        parts.push(b',');
                                    }
                                    n_parts += 1;
                                    only_text = None;
                                    image_part(ib.source.as_ref(), parts)?;
                                }
                                _ => {
                                    return Err(bad_msg(
                                        "tool results may only contain text and images for this backend",
                                    ))
                                }
                            }
                        }
                        out.push(b'"');
                    }
                }
                out.push(b'}');
            }
            _ => return Err(bad_msg(unsupported_block(b.ty.as_str()))),
        }
    }
    if n_parts == 0 {
        return Ok(());
    }
    next_msg(out, first);
    out.extend_from_slice(b"{\"role\":\"user\",\"content\":");
    match only_text {
        Some(t) if n_parts == 1 => out.extend_from_slice(t.as_bytes()),
        _ => {
            out.push(b'[');
            out.extend_from_slice(parts);
            out.push(b']');
        }
    }
    out.push(b'}');
    Ok(())
}

fn unsupported_block(ty: &str) -> &'static str {
    match ty {
        "document" => "document blocks are not supported by this backend",
        "search_result" => "search_result blocks are not supported by this backend",
        "tool_use" => "tool_use blocks belong in assistant turns",
        _ => "this content block type is not supported by this backend",
    }
}

fn image_part(source: Option<&Source<'_>>, parts: &mut Vec<u8>) -> Result<(), Refusal> {
    let Some(s) = source else {
        return Err(bad_msg("an image block needs a `source`"));
    };
    parts.extend_from_slice(b"{\"type\":\"image_url\",\"image_url\":{\"url\":");
    match s.ty.as_str() {
        "base64" => {
            let (Some(mt), Some(data)) = (&s.media_type, &s.data) else {
                return Err(bad_msg("a base64 image needs `media_type` and `data`"));
            };
            parts.extend_from_slice(b"\"data:");
            push_escaped(parts, mt.as_str());
            parts.extend_from_slice(b";base64,");
            push_escaped(parts, data.as_str());
            parts.push(b'"');
        }
        "url" => {
            let Some(u) = s.url.filter(|u| is_str(u)) else {
                return Err(bad_msg("a url image needs a string `url`"));
            };
            parts.extend_from_slice(json::text(u).as_bytes());
        }
        _ => return Err(bad_msg("image sources must be base64 or url")),
    }
    parts.extend_from_slice(b"}}");
    Ok(())
}

fn assistant_message(
    content: &RawValue,
    out: &mut Vec<u8>,
    first: &mut bool,
) -> Result<(), Refusal> {
    next_msg(out, first);
    out.extend_from_slice(b"{\"role\":\"assistant\",\"content\":");
    if is_str(content) {
        out.extend_from_slice(json::text(content).as_bytes());
        out.push(b'}');
        return Ok(());
    }
    let blocks: Vec<Block<'_>> = parse("messages", content)?;
    let mut any_text = false;
    for b in &blocks {
        match b.ty.as_str() {
            "text" => {
                let Some(t) = b.text.and_then(inner) else {
                    return Err(bad_msg("a text block needs a string `text`"));
                };
                if !any_text {
                    out.push(b'"');
                    any_text = true;
                }
                out.extend_from_slice(t.as_bytes());
            }
            "tool_use" | "thinking" | "redacted_thinking" => {}
            _ => return Err(bad_msg(unsupported_block(b.ty.as_str()))),
        }
    }
    let mut n_tools = 0usize;
    for b in blocks.iter().filter(|b| b.ty.as_str() == "tool_use") {
        let (Some(id), Some(name)) = (b.id.filter(|v| is_str(v)), b.name.filter(|v| is_str(v)))
        else {
            return Err(bad_msg("a tool_use block needs a string `id` and `name`"));
        };
        if n_tools == 0 {
            if any_text {
                out.push(b'"');
            } else {
                out.extend_from_slice(b"null");
            }
            out.extend_from_slice(b",\"tool_calls\":[");
        } else {
            out.push(b',');
        }
        n_tools += 1;
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(json::text(id).as_bytes());
        out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
        out.extend_from_slice(json::text(name).as_bytes());
        out.extend_from_slice(b",\"arguments\":");
        match b.input.filter(|i| !is_null(i)) {
            Some(i) if is_obj(i) => push_str(out, json::text(i)),
            None => out.extend_from_slice(b"\"{}\""),
            Some(_) => return Err(bad_msg("tool_use `input` must be an object")),
        }
        out.extend_from_slice(b"}}");
    }
    if n_tools > 0 {
        out.extend_from_slice(b"]}");
    } else if any_text {
        out.extend_from_slice(b"\"}");
    } else {
        out.extend_from_slice(b"\"\"}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Completion<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    message: OMessage<'a>,
    #[serde(borrow, default)]
    finish_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct OMessage<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<OToolCall<'a>>>,
}

#[derive(Deserialize)]
struct OToolCall<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    function: OFunction<'a>,
}

#[derive(Deserialize)]
struct OFunction<'a> {
    #[serde(borrow)]
    name: &'a RawValue,
    #[serde(borrow, default)]
    arguments: Option<Str<'a>>,
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

/// `{"input_tokens":…,"cache_creation_input_tokens":0,"cache_read_input_tokens":…,"output_tokens":…}`
fn push_anthropic_usage(out: &mut Vec<u8>, u: TokenUsage) {
    out.extend_from_slice(b"{\"input_tokens\":");
    push_u64(out, u.input);
    out.extend_from_slice(b",\"cache_creation_input_tokens\":");
    push_u64(out, u.cache_write);
    out.extend_from_slice(b",\"cache_read_input_tokens\":");
    push_u64(out, u.cache_read);
    out.extend_from_slice(b",\"output_tokens\":");
    push_u64(out, u.output);
    out.push(b'}');
}

/// A tool call's `arguments` (a JSON string holding a JSON object; empty = `{}`) as raw JSON.
fn arguments_json<'a>(args: Option<&'a Str<'_>>) -> Option<&'a str> {
    let a = args.map(|a| a.as_str()).unwrap_or("");
    let a = a.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if a.is_empty() {
        return Some("{}");
    }
    match serde_json::from_str::<&RawValue>(a) {
        Ok(v) if is_obj(v) => Some(a),
        _ => None,
    }
}

/// Translate an OpenAI `chat.completion` body into an Anthropic `message` body, and report
/// its usage (input = prompt − cached, cache_read = cached). Content: one text block for
/// `message.content` (or `message.refusal`), then one `tool_use` block per tool call (input =
/// the parsed arguments). Only the first choice is used. Malformed JSON, no choices, or tool
/// arguments that are not a JSON object are [`UpstreamBroken`].
pub fn response(body: &[u8]) -> Result<(Vec<u8>, TokenUsage), UpstreamBroken> {
    let c: Completion<'_> = serde_json::from_slice(body)
        .map_err(|_| UpstreamBroken::invalid("invalid completion JSON"))?;
    let Some(choice) = c.choices.first() else {
        return Err(UpstreamBroken::invalid("completion without choices"));
    };
    let usage = c.usage.map(|u| u.tokens()).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(b"{\"id\":");
    match c.id.filter(|v| is_str(v)) {
        Some(id) => out.extend_from_slice(json::text(id).as_bytes()),
        None => out.extend_from_slice(b"\"msg_gateway\""),
    }
    out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    match c.model.filter(|v| is_str(v)) {
        Some(m) => out.extend_from_slice(json::text(m).as_bytes()),
        None => out.extend_from_slice(b"\"\""),
    }
    out.extend_from_slice(b",\"content\":[");
    let mut n = 0usize;
    let m = &choice.message;
    let text = match (
        m.content.filter(|v| !is_null(v)),
        m.refusal.filter(|v| !is_null(v)),
    ) {
        (Some(t), _) if is_str(t) => Some(t),
        (Some(_), _) => return Err(UpstreamBroken::invalid("message content not a string")),
        (None, Some(r)) if is_str(r) => Some(r),
        (None, Some(_)) => return Err(UpstreamBroken::invalid("message refusal not a string")),
        (None, None) => None,
    };
    if let Some(t) = text.filter(|t| json::text(t) != "\"\"") {
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        out.extend_from_slice(json::text(t).as_bytes());
        out.push(b'}');
        n += 1;
    }
    for tc in m.tool_calls.iter().flatten() {
        if !is_str(tc.id) || !is_str(tc.function.name) {
            return Err(UpstreamBroken::invalid("tool call id/name not strings"));
        }
        let Some(input) = arguments_json(tc.function.arguments.as_ref()) else {
            return Err(UpstreamBroken::invalid(
                "tool call arguments not a JSON object",
            ));
        };
        if n > 0 {
            out.push(b',');
        }
        n += 1;
        out.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
        out.extend_from_slice(json::text(tc.id).as_bytes());
        out.extend_from_slice(b",\"name\":");
        out.extend_from_slice(json::text(tc.function.name).as_bytes());
        out.extend_from_slice(b",\"input\":");
        out.extend_from_slice(input.as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"stop_reason\":\"");
    out.extend_from_slice(
        stop_reason(choice.finish_reason.as_ref().map(|s| s.as_str())).as_bytes(),
    );
    out.extend_from_slice(b"\",\"stop_sequence\":null,\"usage\":");
    push_anthropic_usage(&mut out, usage);
    out.push(b'}');
    Ok((out, usage))
}

// ---------------------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChunkChoice<'a>>>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
    #[serde(borrow, default)]
    error: Option<super::errors::OpenAiInner<'a>>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<ChunkDelta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct ChunkDelta<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    function: Option<FnDelta<'a>>,
}

#[derive(Deserialize)]
struct FnDelta<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text,
    /// A `tool_use` block for this OpenAI tool-call index.
    Tool(u64),
}

/// Translates an OpenAI `chat.completion.chunk` stream into an Anthropic Messages event
/// stream (`event: <type>\ndata: <json>\n\n`) that the official SDKs accumulate.
///
/// Chunks → events: the first chunk → `message_start` (id and model from the chunk, empty
/// content, usage 0 unless the chunk carries usage); non-empty `delta.content` (or
/// `delta.refusal`) → a text block (`content_block_start` when none is open, then
/// `content_block_delta` / `text_delta`); `tool_calls` deltas → one `tool_use` block per
/// tool-call index (opened with `id`, `name`, `input: {}`; arguments as `input_json_delta`),
/// a new block closing the previous one; `finish_reason` → closes the open block and sets
/// `stop_reason` (stop → end_turn, length → max_tokens, tool_calls → tool_use,
/// content_filter → refusal); `usage` (any chunk) → usage; `[DONE]` → `message_delta`
/// (`stop_reason`, `stop_sequence: null`, `usage` with `output_tokens`, plus
/// `input_tokens` and `cache_read_input_tokens` when known), then `message_stop`. Role-only
/// and empty chunks, choices other than index 0 and `reasoning_content` produce nothing.
/// An in-band `data: {"error": …}` (or an `event: error`) → `event: error` with the
/// Anthropic error shape; the stream is then over (no `message_stop`; later input ignored).
///
/// [`UpstreamBroken`] (sticky): not SSE, data that is neither `[DONE]` nor a JSON object, a
/// tool-call delta for a tool call whose block was already closed, a new tool call without
/// a function name, `[DONE]` before any chunk, data after `[DONE]`.
pub type Stream = StreamTranslator<State>;

/// The per-event state of an OpenAI → Anthropic stream ([`Stream`]).
#[derive(Debug)]
pub struct State {
    /// Usage: from the backend's usage chunk (`None` until one arrived). Commit point: the
    /// first content event (a `text_delta`, a `tool_use` block start or an
    /// `input_json_delta`). Error: an in-band `data: {"error": …}`.
    progress: Progress,
    open: Open,
    /// Anthropic index of the next block.
    next_block: u64,
    /// Highest tool-call index opened so far.
    last_tool: Option<u64>,
    /// Hash of the id of the last tool call opened (0: none / no id).
    tool_id: u64,
    /// Hash of the message id (for generated tool-call ids).
    msg_hash: u64,
    stop_reason: Option<&'static str>,
    /// Reused scratch buffer for one event's JSON.
    buf: Vec<u8>,
}

impl Default for Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Stream {
    /// A translator at the start of a stream.
    pub fn new() -> Self {
        StreamTranslator::with_state(State {
            progress: Progress::default(),
            open: Open::None,
            next_block: 0,
            last_tool: None,
            tool_id: 0,
            msg_hash: 0,
            stop_reason: None,
            buf: Vec::new(),
        })
    }
}

impl EventTranslator for State {
    const ENDED_EARLY: &'static str = "stream ended before [DONE]";

    fn event(&mut self, name: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        if self.progress.phase == Phase::Errored || data.is_empty() {
            return Ok(());
        }
        if data == b"[DONE]" {
            return self.done(out);
        }
        if self.progress.phase == Phase::Done {
            return Err(UpstreamBroken::invalid("data after [DONE]"));
        }
        let c: Chunk<'_> = serde_json::from_slice(data)
            .map_err(|_| UpstreamBroken::invalid("invalid chunk JSON"))?;
        if name == b"error" || c.error.is_some() {
            let (ty, msg) = match &c.error {
                Some(e) => (
                    super::errors::openai_type_to_anthropic(
                        e.ty.as_ref().map(|t| t.as_str()),
                        e.code_str(),
                    ),
                    e.message.as_ref().map(|m| m.as_str()),
                ),
                None => ("api_error", None),
            };
            out.extend_from_slice(&super::errors::anthropic_stream_error(
                ty,
                msg.unwrap_or("The upstream provider reported an error."),
            ));
            self.progress.phase = Phase::Errored;
            return Ok(());
        }
        if let Some(u) = &c.usage {
            self.progress.usage = Some(u.tokens());
        }
        if self.progress.phase == Phase::Start {
            self.progress.phase = Phase::Open;
            let b = &mut self.buf;
            b.clear();
            b.extend_from_slice(b"{\"type\":\"message_start\",\"message\":{\"id\":");
            match c.id.filter(|v| is_str(v)) {
                Some(id) => {
                    self.msg_hash = fnv1a(json::text(id).as_bytes());
                    b.extend_from_slice(json::text(id).as_bytes());
                }
                None => b.extend_from_slice(b"\"msg_gateway\""),
            }
            b.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
            match c.model.filter(|v| is_str(v)) {
                Some(m) => b.extend_from_slice(json::text(m).as_bytes()),
                None => b.extend_from_slice(b"\"\""),
            }
            b.extend_from_slice(
                b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":",
            );
            push_anthropic_usage(b, self.progress.usage.unwrap_or_default());
            b.extend_from_slice(b"}}");
            emit(out, b"message_start", &self.buf);
        }
        let Some(choice) = c
            .choices
            .iter()
            .flatten()
            .find(|ch| ch.index.unwrap_or(0) == 0)
        else {
            return Ok(());
        };
        if let Some(d) = &choice.delta {
            for t in [d.content, d.refusal].into_iter().flatten() {
                if is_null(t) {
                    continue;
                }
                if !is_str(t) {
                    return Err(UpstreamBroken::invalid("delta content not a string"));
                }
                let t = json::text(t);
                if t == "\"\"" {
                    continue;
                }
                if self.open != Open::Text {
                    self.close(out);
                    self.open_block(out, Open::Text, b"{\"type\":\"text\",\"text\":\"\"}");
                }
                self.delta(out, b"text_delta\",\"text\":", t);
            }
            for tc in d.tool_calls.iter().flatten() {
                self.tool_delta(tc, out)?;
            }
        }
        if let Some(fr) = &choice.finish_reason {
            self.close(out);
            self.stop_reason = Some(stop_reason(Some(fr.as_str())));
        }
        Ok(())
    }

    fn progress(&self) -> &Progress {
        &self.progress
    }
}

/// FNV-1a, 64 bits (never 0 for the inputs that matter: 0 means "none").
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

/// Append `n` as 16 lowercase hex digits.
fn push_hex(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&crate::random_id::hex32(u128::from(n))[16..]);
}

/// `event: <name>\ndata: <json>\n\n`.
fn emit(out: &mut Vec<u8>, name: &[u8], data: &[u8]) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name);
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

impl State {
    fn tool_delta(&mut self, tc: &ToolDelta<'_>, out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        // An empty id counts as absent (some providers send `""` on continuation deltas).
        let id = tc.id.filter(|v| is_str(v) && json::text(v) != "\"\"");
        let id_hash = id.map(|v| fnv1a(json::text(v).as_bytes()));
        let new_id = id_hash.is_some_and(|h| h != self.tool_id);
        let index = match (tc.index, self.last_tool) {
            (Some(i), _) => i,
            // No index (some providers): a new id starts a new call, otherwise the current one.
            (None, Some(l)) if new_id => l.saturating_add(1),
            (None, Some(l)) => l,
            (None, None) => 0,
        };
        let args = tc
            .function
            .as_ref()
            .and_then(|f| f.arguments)
            .filter(|a| !is_null(a));
        if let Some(a) = args {
            if !is_str(a) {
                return Err(UpstreamBroken::invalid("tool call arguments not a string"));
            }
        }
        if self.open != Open::Tool(index) || new_id {
            // A new call: a higher index, or a different id (some providers number every
            // call 0).
            if !new_id && self.last_tool.is_some_and(|l| index <= l) {
                return Err(UpstreamBroken::invalid(
                    "tool call delta after its block closed",
                ));
            }
            let Some(name) = tc
                .function
                .as_ref()
                .and_then(|f| f.name)
                .filter(|n| is_str(n) && json::text(n) != "\"\"")
            else {
                return Err(UpstreamBroken::invalid("new tool call without a name"));
            };
            self.close(out);
            let mut start = Vec::with_capacity(96);
            start.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
            match id {
                Some(id) => start.extend_from_slice(json::text(id).as_bytes()),
                None => {
                    // Unique enough across a conversation: the message id's hash + the block.
                    start.extend_from_slice(b"\"toolu_");
                    push_hex(&mut start, self.msg_hash);
                    start.push(b'_');
                    push_u64(&mut start, self.next_block);
                    start.push(b'"');
                }
            }
            start.extend_from_slice(b",\"name\":");
            start.extend_from_slice(json::text(name).as_bytes());
            start.extend_from_slice(b",\"input\":{}}");
            self.open_block(out, Open::Tool(index), &start);
            self.last_tool = Some(self.last_tool.map_or(index, |l| l.max(index)));
            self.tool_id = id_hash.unwrap_or(0);
            self.progress.started = true;
        }
        if let Some(a) = args {
            let a = json::text(a);
            if a != "\"\"" {
                self.delta(out, b"input_json_delta\",\"partial_json\":", a);
            }
        }
        Ok(())
    }

    fn open_block(&mut self, out: &mut Vec<u8>, kind: Open, block: &[u8]) {
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(b"{\"type\":\"content_block_start\",\"index\":");
        push_u64(b, self.next_block);
        b.extend_from_slice(b",\"content_block\":");
        b.extend_from_slice(block);
        b.push(b'}');
        emit(out, b"content_block_start", &self.buf);
        self.open = kind;
    }

    /// `content_block_delta` for the open block; `kind` is `<type>","<field>":`.
    fn delta(&mut self, out: &mut Vec<u8>, kind: &[u8], raw: &str) {
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(b"{\"type\":\"content_block_delta\",\"index\":");
        push_u64(b, self.next_block);
        b.extend_from_slice(b",\"delta\":{\"type\":\"");
        b.extend_from_slice(kind);
        b.extend_from_slice(raw.as_bytes());
        b.extend_from_slice(b"}}");
        emit(out, b"content_block_delta", &self.buf);
        self.progress.started = true;
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open == Open::None {
            return;
        }
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(b"{\"type\":\"content_block_stop\",\"index\":");
        push_u64(b, self.next_block);
        b.push(b'}');
        emit(out, b"content_block_stop", &self.buf);
        self.open = Open::None;
        self.next_block += 1;
    }

    fn done(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        match self.progress.phase {
            Phase::Start => return Err(UpstreamBroken::invalid("[DONE] before any chunk")),
            Phase::Done => return Err(UpstreamBroken::invalid("second [DONE]")),
            _ => {}
        }
        self.close(out);
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(b"{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"");
        b.extend_from_slice(self.stop_reason.unwrap_or("end_turn").as_bytes());
        b.extend_from_slice(b"\",\"stop_sequence\":null},\"usage\":");
        match self.progress.usage {
            Some(u) => {
                b.extend_from_slice(b"{\"input_tokens\":");
                push_u64(b, u.input);
                b.extend_from_slice(b",\"cache_read_input_tokens\":");
                push_u64(b, u.cache_read);
                b.extend_from_slice(b",\"output_tokens\":");
                push_u64(b, u.output);
                b.push(b'}');
            }
            None => b.extend_from_slice(b"{\"output_tokens\":0}"),
        }
        b.push(b'}');
        emit(out, b"message_delta", &self.buf);
        emit(out, b"message_stop", b"{\"type\":\"message_stop\"}");
        self.progress.phase = Phase::Done;
        Ok(())
    }
}

/// The client-dialect error event the gateway appends when it cuts a stream:
/// `event: error\ndata: {"type":"error","error":{"type":"api_error","message":…}}\n\n`. The
/// caller sends a blank line first when the client may be mid-event; a translated stream
/// never is (only whole events are emitted).
pub fn stream_error_event(message: &str) -> Vec<u8> {
    super::errors::anthropic_stream_error("api_error", message)
}
