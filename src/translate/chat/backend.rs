//! The client speaks the hub (Anthropic Messages), the backend OpenAI chat: a Messages
//! request into a chat request, a `chat.completion` into a Messages response (the stream is
//! [`super::backend_stream`]). The mapping tables are in [`super`].

use super::{arguments_object, bad_msg, parse, stop_reason};
use crate::translate::{Untranslatable, UpstreamBroken};
use crate::vocab::TokenUsage;
use crate::wire::anthropic::{
    Block, MessageResponse, MessagesRequest, Metadata, Msg as Turn, Source, ToolChoice, Usage,
};
use crate::wire::openai_chat::{
    ChatCompletion, ChatRequest, FnCall, FnDef, ImageUrl, Msg as ChatMsg, NamedChoice, NamedFn,
    Part, StreamOptions, Tool, ToolCall, ToolChoice as ChatToolChoice,
};
use crate::wire::raw::{self, inner_of, Lazy, Members, Raw, Str};

const PROVIDER: &str = "OpenAI-compatible";

/// Reads a Messages request member by member: `null` members count as absent, a member of
/// the wrong type is an [`Untranslatable`] naming it, and members chat cannot express are
/// refused here (see the module docs of [`super`]).
fn read_request(body: &[u8]) -> Result<MessagesRequest<'_>, Untranslatable> {
    let members: Members<'_> = crate::wire::raw::read(body).map_err(|e| {
        Untranslatable::new("", format!("The request body is not a JSON object: {e}"))
    })?;
    let mut r = MessagesRequest::default();
    for (k, member) in members.0 {
        let key = k.as_str();
        let raw = Raw::Borrowed(member);
        let v = (!raw.is_null()).then_some(raw);
        match key {
            "messages" => r.messages = v.map(Lazy::Raw),
            "system" => r.system = v,
            "max_tokens" => r.max_tokens = v.map(|v| parse(key, &v)).transpose()?,
            "stop_sequences" => r.stop_sequences = v.map(Lazy::Raw),
            "temperature" => r.temperature = v.map(|v| parse(key, &v)).transpose()?,
            "top_p" => r.top_p = v.map(|v| parse(key, &v)).transpose()?,
            "tools" => r.tools = v.map(Lazy::Raw),
            "tool_choice" => r.tool_choice = v.map(Lazy::Raw),
            "metadata" => r.metadata = v.map(Lazy::Raw),
            "stream" => r.stream = v.map(|v| parse(key, &v)).transpose()?,
            "mcp_servers" | "container" if v.is_some() => {
                return Err(Untranslatable::unsupported(key, PROVIDER));
            }
            _ => r.rest.0.push((k, member)), // dropped by the mapping: see the module docs
        }
    }
    Ok(r)
}

/// Translate an Anthropic Messages request body into an OpenAI chat request body whose
/// `model` is `model` (the backend's real model). A streaming request also asks for usage
/// (`stream_options.include_usage`). See the module docs of [`super`] for the mapping; a
/// field that cannot be expressed is an [`Untranslatable`] naming it.
pub fn request(body: &[u8], model: &str) -> Result<Vec<u8>, Untranslatable> {
    let r = read_request(body)?;
    let Some(messages) = r.messages.as_ref().and_then(Lazy::raw) else {
        return Err(Untranslatable::new("messages", "`messages` is required."));
    };
    let mut out_msgs: Vec<ChatMsg<'_>> = Vec::new();
    if let Some(system) = &r.system {
        system_message(system, "system", &mut out_msgs)?;
    }
    let msgs: Vec<Turn<'_>> = parse("messages", messages)?;
    for m in &msgs {
        let Some(content) = m.content.raw() else {
            continue;
        };
        match m.role.as_str() {
            "user" => user_message(content, &mut out_msgs)?,
            "assistant" => out_msgs.push(assistant_message(content)?),
            // Claude Code sends `system` turns inside `messages`; OpenAI takes them as is.
            "system" => system_message(content, "messages", &mut out_msgs)?,
            _ => return Err(bad_msg("roles must be user, assistant or system")),
        }
    }
    let mut out = ChatRequest {
        model: Str::from(model),
        messages: Some(Lazy::Value(out_msgs)),
        max_tokens: r.max_tokens,
        ..ChatRequest::default()
    };
    if let Some(stop) = r.stop_sequences.as_ref().and_then(Lazy::raw) {
        let v: Vec<Raw<'_>> = parse("stop_sequences", stop)?;
        if !v.iter().all(Raw::is_str) {
            return Err(Untranslatable::invalid(
                "stop_sequences",
                "expected strings",
            ));
        }
        if !v.is_empty() {
            out.stop = Some(stop.clone());
        }
    }
    out.temperature = r.temperature;
    out.top_p = r.top_p;
    let mut has_tools = false;
    if let Some(tools) = r.tools.as_ref().and_then(Lazy::raw) {
        let tools: Vec<crate::wire::anthropic::Tool<'_>> = parse("tools", tools)?;
        let mut mapped = Vec::with_capacity(tools.len());
        for t in tools {
            if t.ty.as_ref().is_some_and(|t| t.as_str() != "custom") {
                return Err(Untranslatable::new(
                    "tools",
                    format!("Server tools are not supported for this model ({PROVIDER} backend); only custom tools are."),
                ));
            }
            if !t.name.is_str() {
                return Err(Untranslatable::invalid(
                    "tools",
                    "a tool name must be a string",
                ));
            }
            let description = t.description.filter(|d| !d.is_null());
            if description.as_ref().is_some_and(|d| !d.is_str()) {
                return Err(Untranslatable::invalid(
                    "tools",
                    "a description must be a string",
                ));
            }
            let parameters = match t.input_schema.filter(|s| !s.is_null()) {
                Some(s) if s.is_obj() => s,
                Some(_) => {
                    return Err(Untranslatable::invalid(
                        "tools",
                        "`input_schema` must be an object",
                    ))
                }
                None => Raw::constant(r#"{"type":"object","properties":{}}"#),
            };
            mapped.push(Tool {
                ty: Str::from_static("function"),
                function: Some(FnDef {
                    name: t.name,
                    description,
                    parameters: Some(parameters),
                    strict: None,
                }),
            });
        }
        if !mapped.is_empty() {
            has_tools = true;
            out.tools = Some(Lazy::Value(mapped));
        }
    }
    if let Some(tc) = r.tool_choice.as_ref().and_then(Lazy::raw) {
        let c: ToolChoice<'_> = parse("tool_choice", tc)?;
        let mode = |m: &'static str| ChatToolChoice::Mode(Str::from_static(m));
        let choice = match c.ty.as_str() {
            "auto" => mode("auto"),
            "any" => mode("required"),
            "none" => mode("none"),
            "tool" => {
                let Some(name) = c.name.filter(Raw::is_str) else {
                    return Err(Untranslatable::invalid("tool_choice", "`name` is required"));
                };
                ChatToolChoice::Named(NamedChoice {
                    ty: Str::from_static("function"),
                    function: Some(NamedFn { name }),
                })
            }
            _ => return Err(Untranslatable::invalid("tool_choice", "unknown type")),
        };
        out.tool_choice = Some(Lazy::Value(choice));
        if c.disable_parallel_tool_use == Some(true) && has_tools {
            out.parallel_tool_calls = Some(false);
        }
    }
    if let Some(md) = r.metadata.as_ref().and_then(Lazy::raw) {
        let md: Metadata<'_> = parse("metadata", md)?;
        if let Some(u) = md.user_id.filter(|u| !u.is_null()) {
            if !u.is_str() {
                return Err(Untranslatable::invalid(
                    "metadata",
                    "`user_id` must be a string",
                ));
            }
            out.user = Some(u);
        }
    }
    out.stream = r.stream;
    if r.stream == Some(true) {
        out.stream_options = Some(StreamOptions {
            include_usage: true,
        });
    }
    let mut bytes = Vec::with_capacity(body.len() + 128);
    raw::write(&mut bytes, &out);
    Ok(bytes)
}

fn message<'m>(role: &'static str, content: Option<Lazy<'m, Vec<Part<'m>>>>) -> ChatMsg<'m> {
    ChatMsg {
        role: Str::from_static(role),
        tool_call_id_out: None,
        content,
        tool_calls: None,
        tool_call_id: None,
    }
}

/// A system prompt (a string or text blocks, joined with a blank line) as an OpenAI
/// `system` message; nothing for an empty one. `field` names the request field at fault.
fn system_message<'m>(
    system: &Raw<'m>,
    field: &str,
    out: &mut Vec<ChatMsg<'m>>,
) -> Result<(), Untranslatable> {
    let text = if let Some(s) = system.borrowed_inner() {
        (!s.is_empty()).then(|| system.clone())
    } else {
        let blocks: Vec<Block<'m>> = parse(field, system)?;
        let mut pieces = Vec::with_capacity(blocks.len());
        for b in &blocks {
            match (
                b.ty.as_str(),
                b.text.as_ref().and_then(Raw::borrowed_string),
            ) {
                ("text", Some(t)) => {
                    if !inner_of(t).is_empty() {
                        pieces.push(t);
                    }
                }
                _ => {
                    return Err(Untranslatable::invalid(
                        field,
                        "system prompts support only text blocks",
                    ))
                }
            }
        }
        (!pieces.is_empty()).then(|| Raw::joined(&pieces, "\\n\\n"))
    };
    if let Some(text) = text {
        out.push(message("system", Some(Lazy::Raw(text))));
    }
    Ok(())
}

/// A user turn: its `tool_result` blocks as `tool` messages, then one user message with the
/// rest (if any).
fn user_message<'m>(content: &Raw<'m>, out: &mut Vec<ChatMsg<'m>>) -> Result<(), Untranslatable> {
    if content.is_str() {
        out.push(message("user", Some(Lazy::Raw(content.clone()))));
        return Ok(());
    }
    let blocks: Vec<Block<'m>> = parse("messages", content)?;
    let mut parts: Vec<Part<'m>> = Vec::new();
    let mut only_text: Option<Raw<'m>> = None;
    for b in blocks {
        match b.ty.as_str() {
            "text" => {
                let Some(t) = b.text.filter(Raw::is_str) else {
                    return Err(bad_msg("a text block needs a string `text`"));
                };
                only_text = Some(t.clone());
                parts.push(Part {
                    ty: Str::from_static("text"),
                    text: Some(t),
                    refusal: None,
                    image_url: None,
                });
            }
            "image" => {
                only_text = None;
                parts.push(image_part(b.source)?);
            }
            "tool_result" => {
                let Some(id) = b.tool_use_id.filter(Raw::is_str) else {
                    return Err(bad_msg("a tool_result block needs a string `tool_use_id`"));
                };
                let text = match b.content.as_ref().and_then(Lazy::raw) {
                    None => Raw::text(""),
                    Some(c) if c.is_str() => c.clone(),
                    Some(c) => {
                        let inner: Vec<Block<'m>> = parse("messages", c)?;
                        let mut pieces = Vec::with_capacity(inner.len());
                        for ib in inner {
                            match (ib.ty.as_str(), ib.text.as_ref().and_then(Raw::borrowed_string)) {
                                ("text", Some(t)) => pieces.push(t),
                                // OpenAI tool messages hold text only: images go to the user
                                // message that follows the tool messages.
                                ("image", _) => {
                                    only_text = None;
                                    parts.push(image_part(ib.source)?);
                                }
                                _ => {
                                    return Err(bad_msg(
                                        "tool results may only contain text and images for this backend",
                                    ))
                                }
                            }
                        }
                        Raw::joined(&pieces, "\\n")
                    }
                };
                let mut m = message("tool", Some(Lazy::Raw(text)));
                m.tool_call_id_out = Some(id);
                out.push(m);
            }
            _ => return Err(bad_msg(unsupported_block(b.ty.as_str()))),
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let content = match only_text {
        Some(t) if parts.len() == 1 => Lazy::Raw(t),
        _ => Lazy::Value(parts),
    };
    out.push(message("user", Some(content)));
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

fn image_part(source: Option<Source<'_>>) -> Result<Part<'_>, Untranslatable> {
    let Some(s) = source else {
        return Err(bad_msg("an image block needs a `source`"));
    };
    let url = match s.ty.as_str() {
        "base64" => {
            let (Some(mt), Some(data)) = (&s.media_type, &s.data) else {
                return Err(bad_msg("a base64 image needs `media_type` and `data`"));
            };
            Raw::Text(format!("data:{};base64,{}", mt.as_str(), data.as_str()).into())
        }
        "url" => {
            let Some(u) = s.url.filter(Raw::is_str) else {
                return Err(bad_msg("a url image needs a string `url`"));
            };
            u
        }
        _ => return Err(bad_msg("image sources must be base64 or url")),
    };
    Ok(Part {
        ty: Str::from_static("image_url"),
        text: None,
        refusal: None,
        image_url: Some(ImageUrl { url }),
    })
}

fn assistant_message<'m>(content: &Raw<'m>) -> Result<ChatMsg<'m>, Untranslatable> {
    if content.is_str() {
        return Ok(message("assistant", Some(Lazy::Raw(content.clone()))));
    }
    let blocks: Vec<Block<'m>> = parse("messages", content)?;
    let mut text = Vec::new();
    for b in &blocks {
        match b.ty.as_str() {
            "text" => {
                let Some(t) = b.text.as_ref().and_then(Raw::borrowed_string) else {
                    return Err(bad_msg("a text block needs a string `text`"));
                };
                text.push(t);
            }
            "tool_use" | "thinking" | "redacted_thinking" => {}
            _ => return Err(bad_msg(unsupported_block(b.ty.as_str()))),
        }
    }
    let mut calls = Vec::new();
    for b in blocks.into_iter().filter(|b| b.ty.as_str() == "tool_use") {
        let (Some(id), Some(name)) = (b.id.filter(Raw::is_str), b.name.filter(Raw::is_str)) else {
            return Err(bad_msg("a tool_use block needs a string `id` and `name`"));
        };
        let arguments = match b.input.filter(|i| !i.is_null()) {
            Some(i) if i.is_obj() => match i {
                Raw::Borrowed(r) => Str::from(r.get()),
                _ => Str::from_static("{}"),
            },
            None => Str::from_static("{}"),
            Some(_) => return Err(bad_msg("tool_use `input` must be an object")),
        };
        calls.push(ToolCall {
            id,
            ty: Some(Str::from_static("function")),
            function: FnCall {
                name,
                arguments: Some(arguments),
            },
        });
    }
    let content = match (text.is_empty(), calls.is_empty()) {
        (false, _) => Some(Raw::joined(&text, "")),
        (true, false) => None,
        (true, true) => Some(Raw::text("")),
    };
    let mut m = message("assistant", content.map(Lazy::Raw));
    m.tool_calls = (!calls.is_empty()).then_some(calls);
    Ok(m)
}

/// Translate an OpenAI `chat.completion` body into an Anthropic `message` body, and report
/// its usage (input = prompt − cached, cache_read = cached). Content: one text block for
/// `message.content` (or `message.refusal`), then one `tool_use` block per tool call (input =
/// the parsed arguments). Only the first choice is used. Malformed JSON, no choices, or tool
/// arguments that are not a JSON object are [`UpstreamBroken`].
pub fn response(body: &[u8]) -> Result<(Vec<u8>, TokenUsage), UpstreamBroken> {
    let c: ChatCompletion<'_> = crate::wire::raw::read(body)
        .map_err(|_| UpstreamBroken::invalid("invalid completion JSON"))?;
    let Some(choice) = c.choices.first() else {
        return Err(UpstreamBroken::invalid("completion without choices"));
    };
    let usage = c.usage.map(|u| u.tokens()).unwrap_or_default();
    let m = &choice.message;
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
    let mut content: Vec<Block<'_, Raw<'_>>> = Vec::new();
    if let Some(t) = text.filter(|t| !t.is_empty_str()) {
        content.push(Block::text(t.clone()));
    }
    for tc in m.tool_calls.iter().flatten() {
        if !tc.id.is_str() || !tc.function.name.is_str() {
            return Err(UpstreamBroken::invalid("tool call id/name not strings"));
        }
        let args = tc.function.arguments.as_ref().map_or("", Str::as_str);
        let Some(input) = arguments_object(args) else {
            return Err(UpstreamBroken::invalid(
                "tool call arguments not a JSON object",
            ));
        };
        let mut block = Block::new("tool_use");
        block.id = Some(tc.id.clone());
        block.name = Some(tc.function.name.clone());
        block.input = Some(input);
        content.push(block);
    }
    let message = MessageResponse {
        id: c
            .id
            .clone()
            .filter(Raw::is_str)
            .unwrap_or(Raw::text("msg_gateway")),
        ty: Some(Raw::text("message")),
        role: Some(Raw::text("assistant")),
        model: c.model.clone().filter(Raw::is_str).unwrap_or(Raw::text("")),
        content: Lazy::Value(content),
        stop_reason: Some(Raw::text(stop_reason(
            choice.finish_reason.as_ref().map(Str::as_str),
        ))),
        stop_sequence: None,
        usage: Some(Usage::of(usage)),
    };
    let mut out = Vec::with_capacity(body.len() + 256);
    raw::write(&mut out, &message);
    Ok((out, usage))
}
