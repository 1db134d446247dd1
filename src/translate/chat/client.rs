//! The client speaks OpenAI chat, the backend the hub (Anthropic Messages): a chat request
//! into a Messages request, a Messages response into a `chat.completion` (the stream is
//! [`super::client_stream`]). The mapping tables are in [`super`].

use super::{arguments_object, bad_msg, finish_reason, parse};
use crate::translate::{Untranslatable, UpstreamBroken};
use crate::vocab::TokenUsage;
use crate::wire::anthropic::{
    AnswerBlock, Block, MessageResponse, MessagesRequest, Metadata, Msg as Turn, Source, Tool,
    ToolChoice,
};
use crate::wire::openai_chat::{
    ChatCompletion, ChatRequest, Choice, FnCall, Msg as ChatMsg, NamedChoice, Part, ResponseFormat,
    ResponseMessage, ToolCall, Usage,
};
use crate::wire::raw::{self, inner_of, Lazy, Members, Raw, Str};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Default `max_tokens` when the client gave none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

const PROVIDER: &str = "Anthropic";

/// Reads a chat request member by member: `null` members count as absent, a member of the
/// wrong type is an [`Untranslatable`] naming it, and members the hub cannot express are
/// refused here (see the module docs of [`super`]).
fn read_request(body: &[u8]) -> Result<ChatRequest<'_>, Untranslatable> {
    let members: Members<'_> = crate::wire::raw::read(body).map_err(|e| {
        Untranslatable::new("", format!("The request body is not a JSON object: {e}"))
    })?;
    let mut r = ChatRequest::default();
    for (k, v) in members.0 {
        let raw = Raw::Borrowed(v);
        let key = k.as_str();
        let present = (!raw.is_null()).then(|| raw.clone());
        match key {
            "messages" => r.messages = Some(Lazy::Raw(raw)),
            "max_tokens" => r.max_tokens = parse(key, &raw)?,
            "max_completion_tokens" => r.max_completion_tokens = parse(key, &raw)?,
            "stop" => r.stop = present,
            "temperature" => r.temperature = parse(key, &raw)?,
            "top_p" => r.top_p = parse(key, &raw)?,
            "tools" => r.tools = present.map(Lazy::Raw),
            "tool_choice" => r.tool_choice = present.map(Lazy::Raw),
            "parallel_tool_calls" => r.parallel_tool_calls = parse(key, &raw)?,
            "stream" => r.stream = parse(key, &raw)?,
            "user" => r.user = present,
            "n" => {
                let n: Option<u64> = parse(key, &raw)?;
                if n.unwrap_or(1) != 1 {
                    return Err(Untranslatable::new(
                        key,
                        format!("`n` > 1 is not supported for this model ({PROVIDER} backend)."),
                    ));
                }
            }
            "logprobs" => {
                let lp: Option<bool> = parse(key, &raw)?;
                if lp == Some(true) {
                    return Err(Untranslatable::unsupported(key, PROVIDER));
                }
            }
            "top_logprobs" | "audio" | "prediction" | "functions" | "function_call"
            | "web_search_options"
                if present.is_some() =>
            {
                return Err(Untranslatable::unsupported(key, PROVIDER));
            }
            "modalities" => {
                let m: Option<Vec<Str<'_>>> = parse(key, &raw)?;
                if m.iter().flatten().any(|s| s.as_str() != "text") {
                    return Err(Untranslatable::new(
                        key,
                        format!("`modalities` other than text are not supported for this model ({PROVIDER} backend)."),
                    ));
                }
            }
            "response_format" => {
                let rf: Option<ResponseFormat<'_>> = parse(key, &raw)?;
                if rf.is_some_and(|rf| rf.ty.as_str() != "text") {
                    return Err(Untranslatable::new(
                        key,
                        format!("`response_format` (structured output) is not supported for this model ({PROVIDER} backend)."),
                    ));
                }
            }
            _ => r.rest.0.push((k, v)), // dropped by the mapping: see the module docs
        }
    }
    Ok(r)
}

/// Translate an OpenAI chat request body into an Anthropic Messages request body whose
/// `model` is `model` (the backend's real model). See the module docs of [`super`] for the
/// mapping; a field that cannot be expressed is an [`Untranslatable`] naming it.
pub fn request(body: &[u8], model: &str) -> Result<Vec<u8>, Untranslatable> {
    let r = read_request(body)?;
    let Some(messages) = r.messages.as_ref().and_then(Lazy::raw) else {
        return Err(Untranslatable::new("messages", "`messages` is required."));
    };
    let msgs: Vec<ChatMsg<'_>> = parse("messages", messages)?;
    let (system, turns) = map_messages(&msgs)?;
    let mut out = MessagesRequest {
        model: Str::from(model),
        max_tokens: Some(
            r.max_completion_tokens
                .or(r.max_tokens)
                .unwrap_or(DEFAULT_MAX_TOKENS),
        ),
        system,
        messages: Some(Lazy::Value(turns)),
        temperature: r.temperature.map(|t| t.min(1.0)),
        top_p: r.top_p,
        stream: r.stream,
        ..MessagesRequest::default()
    };
    if let Some(stop) = r.stop {
        out.stop_sequences = Some(if stop.is_str() {
            Lazy::Value(vec![stop])
        } else {
            let v: Vec<Raw<'_>> = parse("stop", &stop)?;
            if !v.iter().all(Raw::is_str) {
                return Err(Untranslatable::invalid(
                    "stop",
                    "expected a string or strings",
                ));
            }
            Lazy::Raw(stop)
        });
    }
    let mut has_tools = false;
    if let Some(tools) = r.tools.as_ref().and_then(Lazy::raw) {
        let tools: Vec<crate::wire::openai_chat::Tool<'_>> = parse("tools", tools)?;
        has_tools = !tools.is_empty();
        let mut mapped = Vec::with_capacity(tools.len());
        for t in tools {
            let Some(func) = t.function.filter(|_| t.ty.as_str() == "function") else {
                return Err(Untranslatable::new(
                    "tools",
                    format!(
                        "Only `function` tools are supported for this model ({PROVIDER} backend)."
                    ),
                ));
            };
            if !func.name.is_str() {
                return Err(Untranslatable::invalid(
                    "tools",
                    "a function name must be a string",
                ));
            }
            let description = func.description.filter(|d| !d.is_null());
            if description.as_ref().is_some_and(|d| !d.is_str()) {
                return Err(Untranslatable::invalid(
                    "tools",
                    "a description must be a string",
                ));
            }
            let input_schema = match func.parameters.filter(|p| !p.is_null()) {
                Some(p) if p.is_obj() => p,
                Some(_) => {
                    return Err(Untranslatable::invalid(
                        "tools",
                        "`parameters` must be an object",
                    ))
                }
                None => Raw::constant(r#"{"type":"object","properties":{}}"#),
            };
            mapped.push(Tool {
                ty: None,
                name: func.name,
                description,
                input_schema: Some(input_schema),
            });
        }
        if has_tools {
            out.tools = Some(Lazy::Value(mapped));
        }
    }
    let no_parallel = r.parallel_tool_calls == Some(false);
    if let Some(tc) = r.tool_choice.as_ref().and_then(Lazy::raw) {
        let mut choice = if tc.is_str() {
            let s: Str<'_> = parse("tool_choice", tc)?;
            let ty = match s.as_str() {
                "auto" => "auto",
                "required" => "any",
                "none" => "none",
                _ => return Err(Untranslatable::invalid("tool_choice", "unknown value")),
            };
            tool_choice(ty, None)
        } else {
            let c: NamedChoice<'_> = parse("tool_choice", tc)?;
            match (c.ty.as_str(), c.function) {
                ("function", Some(func)) if func.name.is_str() => {
                    tool_choice("tool", Some(func.name))
                }
                _ => {
                    return Err(Untranslatable::new(
                        "tool_choice",
                        format!(
                        "This `tool_choice` is not supported for this model ({PROVIDER} backend)."
                    ),
                    ))
                }
            }
        };
        if no_parallel && choice.ty.as_str() != "none" {
            choice.disable_parallel_tool_use = Some(true);
        }
        out.tool_choice = Some(Lazy::Value(choice));
    } else if no_parallel && has_tools {
        let mut choice = tool_choice("auto", None);
        choice.disable_parallel_tool_use = Some(true);
        out.tool_choice = Some(Lazy::Value(choice));
    }
    if let Some(u) = r.user {
        if !u.is_str() {
            return Err(Untranslatable::invalid("user", "expected a string"));
        }
        out.metadata = Some(Lazy::Value(Metadata { user_id: Some(u) }));
    }
    let mut bytes = Vec::with_capacity(body.len() + 128);
    raw::write(&mut bytes, &out);
    Ok(bytes)
}

fn tool_choice<'a>(ty: &'static str, name: Option<Raw<'a>>) -> ToolChoice<'a> {
    ToolChoice {
        ty: Str::from_static(ty),
        name,
        disable_parallel_tool_use: None,
    }
}

/// The system text (from system and developer messages, joined with a blank line) and the
/// turns (consecutive same-role turns merged).
fn map_messages<'m>(
    msgs: &'m [ChatMsg<'_>],
) -> Result<(Option<Raw<'m>>, Vec<Turn<'m>>), Untranslatable> {
    let mut system: Vec<&'m RawValue> = Vec::new();
    let mut turns: Vec<Turn<'m>> = Vec::with_capacity(msgs.len());
    // Role of the last turn (true = user).
    let mut open: Option<bool> = None;
    for m in msgs {
        let mut blocks = Vec::new();
        let user = match m.role.as_str() {
            "system" | "developer" => {
                if let Some(c) = m
                    .content
                    .as_ref()
                    .and_then(Lazy::raw)
                    .filter(|c| !c.is_null())
                {
                    system_text(c, &mut system)?;
                }
                continue;
            }
            "user" => {
                if let Some(c) = m.content.as_ref().and_then(Lazy::raw) {
                    content_blocks(c, &mut blocks, false)?;
                }
                true
            }
            "assistant" => {
                if let Some(c) = m.content.as_ref().and_then(Lazy::raw) {
                    content_blocks(c, &mut blocks, true)?;
                }
                for tc in m.tool_calls.iter().flatten() {
                    blocks.push(tool_use(tc)?);
                }
                false
            }
            "tool" => {
                let Some(id) = m.tool_call_id.as_ref().filter(|id| id.is_str()) else {
                    return Err(bad_msg("a `tool` message needs a string `tool_call_id`"));
                };
                let mut block = Block::new("tool_result");
                block.tool_use_id = Some(tool_id(id));
                if let Some(c) = m
                    .content
                    .as_ref()
                    .and_then(Lazy::raw)
                    .filter(|c| !c.is_null())
                {
                    block.content = Some(if c.is_str() {
                        Lazy::Raw(c.clone())
                    } else {
                        let mut inner = Vec::new();
                        content_blocks(c, &mut inner, false)?;
                        Lazy::Value(inner)
                    });
                }
                blocks.push(block);
                true
            }
            "function" => return Err(bad_msg("the `function` role is not supported")),
            _ => return Err(bad_msg("unknown role")),
        };
        if blocks.is_empty() {
            continue;
        }
        match (open, turns.last_mut()) {
            (
                Some(r),
                Some(Turn {
                    content: Lazy::Value(last),
                    ..
                }),
            ) if r == user => {
                last.append(&mut blocks);
            }
            _ => turns.push(Turn {
                role: Str::from_static(if user { "user" } else { "assistant" }),
                content: Lazy::Value(blocks),
            }),
        }
        open = Some(user);
    }
    let system = (!system.is_empty()).then(|| Raw::joined(&system, "\\n\\n"));
    Ok((system, turns))
}

/// Adds the text of a system message (string or text parts) to `system`.
fn system_text<'m>(c: &Raw<'m>, system: &mut Vec<&'m RawValue>) -> Result<(), Untranslatable> {
    if let Some(s) = c.borrowed_string() {
        if !inner_of(s).is_empty() {
            system.push(s);
        }
        return Ok(());
    }
    let parts: Vec<Part<'m>> = parse("messages", c)?;
    for p in &parts {
        match (
            p.ty.as_str(),
            p.text.as_ref().and_then(Raw::borrowed_string),
        ) {
            ("text", Some(t)) => {
                if !inner_of(t).is_empty() {
                    system.push(t);
                }
            }
            _ => return Err(bad_msg("system messages may only contain text")),
        }
    }
    Ok(())
}

/// Content (string or parts) → Anthropic blocks appended to `blocks`.
fn content_blocks<'m>(
    c: &'m Raw<'_>,
    blocks: &mut Vec<Block<'m>>,
    assistant: bool,
) -> Result<(), Untranslatable> {
    if c.is_null() {
        return Ok(());
    }
    if c.is_str() {
        text_block(c.clone(), blocks);
        return Ok(());
    }
    let parts: Vec<Part<'m>> = parse("messages", c)?;
    for p in parts {
        match p.ty.as_str() {
            "text" => match p.text.filter(Raw::is_str) {
                Some(t) => text_block(t, blocks),
                None => return Err(bad_msg("a text part needs a string `text`")),
            },
            "refusal" if assistant => match p.refusal.filter(Raw::is_str) {
                Some(t) => text_block(t, blocks),
                None => return Err(bad_msg("a refusal part needs a string `refusal`")),
            },
            "image_url" if !assistant => {
                let Some(img) = p.image_url else {
                    return Err(bad_msg("an image_url part needs `image_url.url`"));
                };
                blocks.push(image_block(img.url)?);
            }
            "input_audio" => return Err(bad_msg("audio input is not supported")),
            "file" => return Err(bad_msg("file inputs are not supported")),
            _ => return Err(bad_msg("unknown content part type")),
        }
    }
    Ok(())
}

/// A text block; empty text is skipped (Anthropic rejects it).
fn text_block<'m>(text: Raw<'m>, blocks: &mut Vec<Block<'m>>) {
    if !text.is_empty_str() {
        blocks.push(Block::text(text));
    }
}

fn image_block(url: Raw<'_>) -> Result<Block<'_>, Untranslatable> {
    let Raw::Text(url) = url else {
        return Err(bad_msg("an image_url part needs `image_url.url`"));
    };
    let mut block = Block::new("image");
    if url.starts_with("data:") {
        let (media_type, data) = match &url {
            // Borrowed from the body: slices of it, no copy.
            Cow::Borrowed(s) => {
                let (m, d) = data_url(s)?;
                (Str::from(m), Str::from(d))
            }
            Cow::Owned(s) => {
                let (m, d) = data_url(s)?;
                (Str::from(m.to_owned()), Str::from(d.to_owned()))
            }
        };
        block.source = Some(Source {
            ty: Str::from_static("base64"),
            media_type: Some(media_type),
            data: Some(data),
            url: None,
        });
        Ok(block)
    } else if url.starts_with("https://") || url.starts_with("http://") {
        block.source = Some(Source {
            ty: Str::from_static("url"),
            media_type: None,
            data: None,
            url: Some(Raw::Text(url)),
        });
        Ok(block)
    } else {
        Err(bad_msg("image URLs must be data: or http(s) URLs"))
    }
}

/// A `data:<media type>;base64,<data>` URL's media type and data.
fn data_url(url: &str) -> Result<(&str, &str), Untranslatable> {
    let rest = url.strip_prefix("data:").unwrap_or(url);
    let Some((meta, data)) = rest.split_once(',') else {
        return Err(bad_msg("malformed data URL"));
    };
    let Some(media_type) = meta.strip_suffix(";base64") else {
        return Err(bad_msg("image data URLs must be base64"));
    };
    Ok((media_type, data))
}

/// A tool-call id as Anthropic accepts it (`^[a-zA-Z0-9_-]+$`): other characters become
/// `_`, an empty id `_`. The mapping is the same for `tool_use.id` and
/// `tool_result.tool_use_id`, so a call and its result still pair up.
fn tool_id<'m>(raw: &Raw<'m>) -> Raw<'m> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    match raw.inner() {
        Some(s) if !s.is_empty() && s.chars().all(ok) => raw.clone(),
        _ => {
            let decoded = raw
                .parse::<Str<'_>>()
                .and_then(Result::ok)
                .map(|s| s.0)
                .unwrap_or_default();
            let mut id: String = decoded
                .chars()
                .map(|c| if ok(c) { c } else { '_' })
                .collect();
            if id.is_empty() {
                id.push('_');
            }
            Raw::Text(Cow::Owned(id))
        }
    }
}

fn tool_use<'m>(tc: &'m ToolCall<'_>) -> Result<Block<'m>, Untranslatable> {
    if tc.ty.as_ref().is_some_and(|t| t.as_str() != "function") {
        return Err(bad_msg("only function tool calls are supported"));
    }
    if !tc.id.is_str() || !tc.function.name.is_str() {
        return Err(bad_msg(
            "a tool call needs a string `id` and `function.name`",
        ));
    }
    let args = tc.function.arguments.as_ref().map_or("", Str::as_str);
    let Some(input) = arguments_object(args) else {
        return Err(bad_msg(
            "tool call `arguments` must be a JSON object encoded as a string",
        ));
    };
    let mut block = Block::new("tool_use");
    block.id = Some(tool_id(&tc.id));
    block.name = Some(tc.function.name.clone());
    block.input = Some(input);
    Ok(block)
}

/// Translate an Anthropic Messages response (a `message` object) into a `chat.completion`
/// JSON body, and report its usage. `created` is now; `model` is the backend's model as the
/// response names it. Text blocks are concatenated into `message.content` (`null` when there
/// is none), `tool_use` blocks become `tool_calls` (arguments = the serialized input), and
/// thinking and other blocks are dropped. Anything not shaped like a message is
/// [`UpstreamBroken`].
pub fn response(body: &[u8]) -> Result<(Vec<u8>, TokenUsage), UpstreamBroken> {
    response_at(body, crate::translate::now_secs())
}

/// [`response`] with a fixed `created` timestamp.
pub fn response_at(body: &[u8], created: u64) -> Result<(Vec<u8>, TokenUsage), UpstreamBroken> {
    let broken = || UpstreamBroken::invalid("invalid message JSON");
    let m: MessageResponse<'_, Vec<AnswerBlock<'_>>> =
        crate::wire::raw::read(body).map_err(|_| broken())?;
    let stop = match &m.stop_reason {
        Some(r) => Some(
            r.parse::<Str<'_>>()
                .and_then(Result::ok)
                .ok_or_else(broken)?,
        ),
        None => None,
    };
    let ty = match &m.ty {
        Some(t) => Some(
            t.parse::<Str<'_>>()
                .and_then(Result::ok)
                .ok_or_else(broken)?,
        ),
        None => None,
    };
    let blocks = &m.content;
    if ty.is_some_and(|t| t.as_str() != "message") {
        return Err(UpstreamBroken::invalid("not a message object"));
    }
    if !m.id.is_str() || !m.model.is_str() {
        return Err(UpstreamBroken::invalid("message id/model not strings"));
    }
    let usage = m.usage.as_ref().map(|u| u.tokens()).unwrap_or_default();
    let mut text = Vec::new();
    for b in blocks.iter().filter(|b| b.ty.as_str() == "text") {
        let Some(t) = b.text.as_ref().and_then(Raw::borrowed_string) else {
            return Err(UpstreamBroken::invalid("text block without string text"));
        };
        text.push(t);
    }
    let content = (!text.is_empty()).then(|| Raw::joined(&text, ""));
    let mut calls = Vec::new();
    for b in blocks.iter().filter(|b| b.ty.as_str() == "tool_use") {
        let (Some(id), Some(name)) = (
            b.id.as_ref().filter(|v| v.is_str()),
            b.name.as_ref().filter(|v| v.is_str()),
        ) else {
            return Err(UpstreamBroken::invalid("tool_use block without id/name"));
        };
        let arguments = match &b.input {
            Some(i) if i.is_obj() => Str::from(i.json().unwrap_or("{}")),
            None => Str::from_static("{}"),
            Some(_) => return Err(UpstreamBroken::invalid("tool_use input not an object")),
        };
        calls.push(ToolCall {
            id: id.clone(),
            ty: Some(Str::from_static("function")),
            function: FnCall {
                name: name.clone(),
                arguments: Some(arguments),
            },
        });
    }
    let completion = ChatCompletion {
        id: Some(m.id.clone()),
        object: Some(Str::from_static("chat.completion")),
        created: Some(created),
        model: Some(m.model.clone()),
        choices: vec![Choice {
            index: Some(0),
            message: ResponseMessage {
                role: Some(Raw::text("assistant")),
                content,
                refusal: None,
                tool_calls: (!calls.is_empty()).then_some(calls),
                reasoning_content: None,
                reasoning: None,
            },
            logprobs: None,
            finish_reason: Some(Str::from_static(finish_reason(
                stop.as_ref().map(Str::as_str),
            ))),
        }],
        usage: Some(Usage::of(usage)),
    };
    let mut out = Vec::with_capacity(body.len() + 256);
    raw::write(&mut out, &completion);
    Ok((out, usage))
}
