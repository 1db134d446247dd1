//! A Responses request (with the stored history of earlier turns) into an Anthropic
//! Messages request. The mapping table is in [`super`].

use super::contract::{RequestContext, TranslatedRequest};
use super::input::{self, escaped, Choice, Content, Effort, Entry, Format, Output, Request};
use crate::translate::Untranslatable;
use crate::wire::anthropic::{
    Block, MessagesRequest, Metadata, Msg as Turn, Source, Thinking, Tool, ToolChoice,
};
use crate::wire::raw::{self, Lazy, Raw, Str};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The backend named in refusals.
pub const PROVIDER: &str = "Anthropic";

/// The tool a JSON answer (`text.format` `json_schema` / `json_object`) is forced through:
/// its input is the answer.
pub const JSON_ANSWER_TOOL: &str = "respond_with_json";

/// `max_tokens` when the client gave no `max_output_tokens` and thinking is off.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Output tokens left for the answer besides the thinking budget when the client gave no
/// `max_output_tokens`.
pub const ANSWER_TOKENS: u64 = 4096;

/// The smallest thinking budget Anthropic accepts.
pub const MIN_BUDGET: u64 = 1024;

/// The thinking budget of a reasoning effort (`None`: thinking off).
#[must_use]
pub fn budget_of(effort: Option<Effort>) -> Option<u64> {
    match effort? {
        Effort::None | Effort::Minimal => None,
        Effort::Low => Some(1024),
        Effort::Medium => Some(4096),
        Effort::High | Effort::XHigh => Some(16_384),
    }
}

/// `max_tokens` and the thinking budget for a request: the budget stays below `max_tokens`
/// and at least [`MIN_BUDGET`]; without `max_output_tokens`, `max_tokens` is the budget +
/// [`ANSWER_TOKENS`]; with it, the budget is lowered to `max_output_tokens` − 1 (thinking
/// off when that is below the minimum).
#[must_use]
pub fn token_limits(max_output_tokens: Option<u64>, budget: Option<u64>) -> (u64, Option<u64>) {
    match (max_output_tokens, budget) {
        (Some(m), Some(b)) => {
            let b = b.min(m.saturating_sub(1));
            (m, (b >= MIN_BUDGET).then_some(b))
        }
        (Some(m), None) => (m, None),
        (None, Some(b)) => (b.saturating_add(ANSWER_TOKENS), Some(b)),
        (None, None) => (DEFAULT_MAX_TOKENS, None),
    }
}

/// Translates a Responses request into a Messages request body for `cx.model`.
///
/// # Errors
/// A field the backend cannot express, or a malformed request ([`Untranslatable`]).
pub fn to_messages(
    body: &[u8],
    cx: &RequestContext<'_>,
) -> Result<TranslatedRequest, Untranslatable> {
    let r = input::read_request(body, cx.history, PROVIDER)?;
    let (tools, choice) = map_tools(&r);
    let forced = choice
        .as_ref()
        .is_some_and(|c| matches!(c.ty.as_str(), "any" | "tool"));
    let budget = if forced { None } else { budget_of(r.effort) };
    let (mut max_tokens, mut budget) = token_limits(r.max_output_tokens, budget);
    let mut turns = map_conversation(&r.conversation, budget.is_some())?;
    if budget.is_some() && !thinking_replayable(&turns) {
        // Anthropic refuses thinking when the assistant turn of an open tool loop does not
        // start with its thinking block (a reasoning item the gateway did not issue).
        (max_tokens, budget) = token_limits(r.max_output_tokens, None);
        for t in &mut turns {
            if let Lazy::Value(blocks) = &mut t.content {
                blocks.retain(|b| !matches!(b.ty.as_str(), "thinking" | "redacted_thinking"));
            }
        }
    }
    let mut out = MessagesRequest {
        model: Str::from(cx.model),
        max_tokens: Some(max_tokens),
        system: system_text(&r),
        messages: Some(Lazy::Value(turns)),
        stream: r.stream.then_some(true),
        ..MessagesRequest::default()
    };
    if let Some(b) = budget {
        out.thinking = Some(Thinking {
            ty: "enabled",
            budget_tokens: b,
        });
    } else {
        out.temperature = r.temperature.map(|t| t.min(1.0));
        out.top_p = r.top_p;
    }
    if !tools.is_empty() {
        out.tools = Some(Lazy::Value(tools));
        out.tool_choice = choice.map(Lazy::Value);
    }
    if let Some(u) = r.user.clone() {
        out.metadata = Some(Lazy::Value(Metadata { user_id: Some(u) }));
    }
    let mut bytes = Vec::with_capacity(body.len() + 256);
    raw::write(&mut bytes, &out);
    Ok(TranslatedRequest {
        body: bytes,
        dropped_tools: r.dropped_tools,
    })
}

/// Whether the last assistant turn, when it calls tools, starts with a thinking block (as
/// Anthropic requires with thinking on).
fn thinking_replayable(turns: &[Turn<'_>]) -> bool {
    let Some(Turn {
        content: Lazy::Value(blocks),
        ..
    }) = turns.iter().rev().find(|t| t.role.as_str() == "assistant")
    else {
        return true;
    };
    let calls = blocks.iter().any(|b| b.ty.as_str() == "tool_use");
    !calls
        || blocks
            .first()
            .is_some_and(|b| matches!(b.ty.as_str(), "thinking" | "redacted_thinking"))
}

/// The system prompt: `instructions`, then the system and developer messages, joined with
/// a blank line.
fn system_text<'a>(r: &Request<'a>) -> Option<Raw<'a>> {
    let mut parts: Vec<Cow<'_, str>> = Vec::new();
    if let Some(i) = &r.instructions {
        if !i.is_empty_str() {
            parts.push(escaped(i));
        }
    }
    for e in &r.conversation {
        if let Entry::System(t) = e {
            parts.push(escaped(t));
        }
    }
    if parts.is_empty() {
        return None;
    }
    let mut s = String::from("\"");
    s.push_str(&parts.join("\\n\\n"));
    s.push('"');
    RawValue::from_string(s).ok().map(Raw::Owned)
}

/// The tools and the tool choice (JSON answers add a tool and force it).
fn map_tools<'a>(r: &Request<'a>) -> (Vec<Tool<'a>>, Option<ToolChoice<'a>>) {
    let mut tools: Vec<Tool<'a>> = r
        .tools
        .iter()
        .map(|t| Tool {
            ty: None,
            name: t.name().clone(),
            description: t.function_description().cloned(),
            input_schema: Some(t.function_parameters()),
        })
        .collect();
    let choice = |ty: &'static str, name: Option<Raw<'a>>| ToolChoice {
        ty: Str::from_static(ty),
        name,
        disable_parallel_tool_use: None,
    };
    let mut c = match &r.format {
        Some(f) => {
            let (description, schema) = match f {
                Format::JsonSchema {
                    description,
                    schema,
                    ..
                } => (description.clone(), schema.clone()),
                Format::JsonObject => (None, Raw::constant(r#"{"type":"object"}"#)),
            };
            let description = description.unwrap_or(Raw::text(
                "Give your final answer by calling this tool: its input is the answer.",
            ));
            let answer = Tool {
                ty: None,
                name: Raw::text(JSON_ANSWER_TOOL),
                description: Some(description),
                input_schema: Some(schema),
            };
            match &r.tool_choice {
                Some(Choice::Named(n)) => Some(choice("tool", Some(n.clone()))),
                Some(Choice::None) => {
                    tools.clear();
                    tools.push(answer);
                    Some(choice("tool", Some(Raw::text(JSON_ANSWER_TOOL))))
                }
                _ if tools.is_empty() => {
                    tools.push(answer);
                    Some(choice("tool", Some(Raw::text(JSON_ANSWER_TOOL))))
                }
                _ => {
                    tools.push(answer);
                    Some(choice("any", None))
                }
            }
        }
        None => r.tool_choice.as_ref().map(|c| match c {
            Choice::Auto => choice("auto", None),
            Choice::None => choice("none", None),
            Choice::Required => choice("any", None),
            Choice::Named(n) => choice("tool", Some(n.clone())),
        }),
    };
    if r.parallel_tool_calls == Some(false) && !tools.is_empty() {
        let c = c.get_or_insert_with(|| choice("auto", None));
        if c.ty.as_str() != "none" {
            c.disable_parallel_tool_use = Some(true);
        }
    }
    (tools, c)
}

/// The conversation as turns: consecutive same-role turns merged, a user turn's tool
/// results first. Thinking blocks are sent back only when thinking is on.
fn map_conversation<'m>(
    conv: &'m [Entry<'_>],
    thinking: bool,
) -> Result<Vec<Turn<'m>>, Untranslatable> {
    let mut turns: Vec<(bool, Vec<Block<'m>>)> = Vec::with_capacity(conv.len());
    for e in conv {
        let mut blocks = Vec::new();
        let user = match e {
            Entry::System(_) => continue,
            Entry::User(parts) => {
                for p in parts {
                    blocks.push(content_block(p)?);
                }
                true
            }
            Entry::Assistant(parts) => {
                for p in parts {
                    if let Content::Text(t) = p {
                        blocks.push(Block::text(t.clone()));
                    }
                }
                false
            }
            Entry::Call(c) => {
                let mut b = Block::new("tool_use");
                b.id = Some(tool_id(&c.call_id));
                b.name = Some(c.name.clone());
                b.input = Some(c.input.clone());
                blocks.push(b);
                false
            }
            Entry::Result { call_id, output } => {
                let mut b = Block::new("tool_result");
                b.tool_use_id = Some(tool_id(call_id));
                b.content = match output {
                    Output::Text(t) if t.is_empty_str() => None,
                    Output::Text(t) => Some(Lazy::Raw(t.clone())),
                    Output::Parts(parts) => {
                        let mut inner = Vec::with_capacity(parts.len());
                        for p in parts {
                            inner.push(content_block(p)?);
                        }
                        Some(Lazy::Value(inner))
                    }
                };
                blocks.push(b);
                true
            }
            Entry::Reasoning(t) => {
                if !thinking {
                    continue;
                }
                let b = match (&t.redacted, &t.thinking, &t.signature) {
                    (Some(d), _, _) => {
                        let mut b = Block::new("redacted_thinking");
                        b.data = Some(Raw::text(d));
                        b
                    }
                    (None, Some(th), Some(sig)) => {
                        let mut b = Block::new("thinking");
                        b.thinking = Some(Raw::text(th));
                        b.signature = Some(Raw::text(sig));
                        b
                    }
                    _ => continue,
                };
                blocks.push(b);
                false
            }
        };
        match turns.last_mut() {
            Some((role, last)) if *role == user => last.append(&mut blocks),
            _ => turns.push((user, blocks)),
        }
    }
    Ok(turns
        .into_iter()
        .filter(|(_, b)| !b.is_empty())
        .map(|(user, mut blocks)| {
            if user {
                // Anthropic wants a user turn's tool results before its other content.
                blocks.sort_by_key(|b| b.ty.as_str() != "tool_result");
            }
            Turn {
                role: Str::from_static(if user { "user" } else { "assistant" }),
                content: Lazy::Value(blocks),
            }
        })
        .collect())
}

/// A user content part as a block: text, an image, or a PDF document.
fn content_block<'m>(c: &'m Content<'_>) -> Result<Block<'m>, Untranslatable> {
    match c {
        Content::Text(t) => Ok(Block::text(t.clone())),
        Content::Image(url) => {
            let mut b = Block::new("image");
            b.source = Some(source(url, "image/")?);
            Ok(b)
        }
        Content::File { data: Some(d), .. } if d.starts_with("data:image/") => {
            let mut b = Block::new("image");
            b.source = Some(source(d, "image/")?);
            Ok(b)
        }
        Content::File { data, url } => {
            let mut b = Block::new("document");
            b.source = Some(match (data, url) {
                (Some(d), _) => source(d, "application/pdf")?,
                (None, Some(u)) => source(u, "")?,
                (None, None) => return Err(input::bad_input("an `input_file` needs data")),
            });
            Ok(b)
        }
    }
}

/// A source: base64 from a `data:` URL whose media type starts with `media`, else a url
/// source for an http(s) URL.
fn source<'m>(url: &'m str, media: &str) -> Result<Source<'m>, Untranslatable> {
    if let Some(rest) = url.strip_prefix("data:") {
        let Some((meta, data)) = rest.split_once(',') else {
            return Err(input::bad_input("malformed data URL"));
        };
        let Some(media_type) = meta.strip_suffix(";base64") else {
            return Err(input::bad_input("data URLs must be base64"));
        };
        if !media_type.starts_with(media) {
            return Err(input::bad_input(format_args!(
                "files of type `{media_type}` are not supported for this model ({PROVIDER} backend takes PDF documents and images)"
            )));
        }
        return Ok(Source {
            ty: Str::from_static("base64"),
            media_type: Some(Str::from(media_type)),
            data: Some(Str::from(data)),
            url: None,
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Source {
            ty: Str::from_static("url"),
            media_type: None,
            data: None,
            url: Some(Raw::text(url)),
        });
    }
    Err(input::bad_input(
        "file and image URLs must be data: or http(s) URLs",
    ))
}

/// A call id as Anthropic accepts it (`^[a-zA-Z0-9_-]+$`): other characters become `_`,
/// an empty id `_`. The same for a call and its result, so they still pair up.
fn tool_id<'m>(raw: &Raw<'m>) -> Raw<'m> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    match raw.inner() {
        Some(s) if !s.is_empty() && s.chars().all(ok) => raw.clone(),
        _ => {
            let decoded = raw
                .parse::<Str<'_>>()
                .and_then(Result::ok)
                .map(|s| s.0.into_owned())
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
