//! A `GenerateContentRequest` (and a `countTokens` request) into an Anthropic Messages
//! request.
//!
//! | Gemini | Anthropic Messages |
//! |---|---|
//! | `systemInstruction` text parts | `system` (joined with `\n`) |
//! | `user` turn: `text`, `inlineData` image / PDF, `fileData` image / PDF URL | user blocks `text`, `image` / `document` (base64 or url source) |
//! | `user` turn: `functionResponse` | `tool_result` (first in the turn), `tool_use_id` = the paired call's id, content = the `response` object's JSON text |
//! | `model` turn: `text` (not `thought`), `functionCall` | assistant `text`, `tool_use` (`id` = `call_<n>`, `input` = `args`) |
//! | consecutive turns of one role | merged; empty turns dropped |
//! | `tools[].functionDeclarations` | tools with `input_schema` (converted from the OpenAPI subset, or `parametersJsonSchema` as is) |
//! | `functionCallingConfig` AUTO / NONE / ANY (one allowed name) / ANY | `auto` / `none` / `tool` / `any` (only with tools) |
//! | `temperature` (capped at 1), `topP` | same (dropped with thinking on) |
//! | `maxOutputTokens` (default 4,096) | `max_tokens` |
//! | `stopSequences` | `stop_sequences` |
//! | `responseMimeType` `application/json` (+ `responseJsonSchema` / `responseSchema`, an object schema) | a tool `respond_with_json` whose input is the answer, forced (answered as a text part) |
//! | `thinkingConfig` budget (0 off, -1 → 4,096) / level low 1,024, medium 4,096, high 16,384 | `thinking` budget, at least 1,024 and below `max_tokens` (off under a forced tool) |
//!
//! Refused besides [`super::request`]'s refusals: a JSON answer schema that is not an object
//! (a tool's input is an object).

use super::context::{RequestContext, TranslatedRequest};
use super::request::{self, Choice, Item, Request, Role, Thinking as Think};
use crate::translate::responses::messages::{token_limits, JSON_ANSWER_TOOL};
use crate::translate::{Untranslatable, UpstreamBroken};
use crate::wire::anthropic::{Block, MessagesRequest, Msg, Source, Thinking, Tool, ToolChoice};
use crate::wire::gemini::{AnthropicTokenCount, CountTokensResponse};
use crate::wire::raw::{self, Lazy, Members, Raw, Str};

/// Translates a `GenerateContentRequest` into a Messages request for `cx.model`.
///
/// # Errors
/// A malformed request or one Anthropic cannot express ([`Untranslatable`]).
pub fn to_messages(
    body: &[u8],
    cx: &RequestContext<'_>,
) -> Result<TranslatedRequest, Untranslatable> {
    let r = request::read(body)?;
    let (tools, choice) = tools(&r)?;
    let forced = choice
        .as_ref()
        .is_some_and(|c| matches!(c.ty.as_str(), "any" | "tool"));
    let budget = match r.thinking {
        Think::Budget(b) if !forced => Some(b),
        _ => None,
    };
    let (max_tokens, budget) = token_limits(r.max_output_tokens, budget);
    let mut out = MessagesRequest {
        model: Str::from(cx.model),
        max_tokens: Some(max_tokens),
        system: system(&r),
        messages: Some(Lazy::Value(turns(&r))),
        stop_sequences: (!r.stop.is_empty()).then(|| Lazy::Value(r.stop.clone())),
        stream: cx.stream.then_some(true),
        ..MessagesRequest::default()
    };
    match budget {
        Some(b) => {
            out.thinking = Some(Thinking {
                ty: "enabled",
                budget_tokens: b,
            });
        }
        None => {
            out.temperature = r.temperature.map(|t| t.min(1.0));
            out.top_p = r.top_p;
        }
    }
    if !tools.is_empty() {
        out.tools = Some(Lazy::Value(tools));
        out.tool_choice = choice.map(Lazy::Value);
    }
    let mut bytes = Vec::with_capacity(body.len() + 256);
    raw::write(&mut bytes, &out);
    Ok(TranslatedRequest { body: bytes })
}

/// Translates a `countTokens` body (`{contents}` or `{generateContentRequest}`) into an
/// Anthropic `count_tokens` body for `cx.model`: `model`, `system`, `messages`, `tools`
/// (the JSON-answer tool included when the request asks for JSON).
///
/// # Errors
/// A malformed request or one Anthropic cannot express ([`Untranslatable`]).
pub fn count_tokens_to_messages(
    body: &[u8],
    cx: &RequestContext<'_>,
) -> Result<TranslatedRequest, Untranslatable> {
    let members = raw::read::<Members<'_>>(body)
        .map_err(|_| Untranslatable::new("", "The request body must be a JSON object."))?;
    let inner = members
        .0
        .iter()
        .find(|(k, _)| {
            matches!(
                k.as_str(),
                "generateContentRequest" | "generate_content_request"
            )
        })
        .map(|(_, v)| *v);
    let r = match inner {
        Some(v) => {
            if !Raw::Borrowed(v).is_obj() {
                return Err(Untranslatable::invalid(
                    "generateContentRequest",
                    "must be an object",
                ));
            }
            request::read(v.get().as_bytes())?
        }
        None => request::read(body)?,
    };
    let (tools, choice) = tools(&r)?;
    let mut out = MessagesRequest {
        model: Str::from(cx.model),
        system: system(&r),
        messages: Some(Lazy::Value(turns(&r))),
        ..MessagesRequest::default()
    };
    if !tools.is_empty() {
        out.tools = Some(Lazy::Value(tools));
        out.tool_choice = choice.map(Lazy::Value);
    }
    let mut bytes = Vec::with_capacity(body.len() + 128);
    raw::write(&mut bytes, &out);
    Ok(TranslatedRequest { body: bytes })
}

fn system<'a>(r: &Request<'a>) -> Option<Raw<'a>> {
    let texts: Vec<&Raw<'a>> = r.system.iter().filter(|t| !t.is_empty_str()).collect();
    (!texts.is_empty()).then(|| request::join(&texts, "\\n"))
}

type ToolsAndChoice<'a> = (Vec<Tool<'a>>, Option<ToolChoice<'a>>);

/// The tools and the tool choice (a JSON answer adds a tool and forces it).
fn tools<'a>(r: &Request<'a>) -> Result<ToolsAndChoice<'a>, Untranslatable> {
    let mut tools: Vec<Tool<'a>> = r
        .tools
        .iter()
        .map(|d| Tool {
            ty: None,
            name: d.name.clone(),
            description: d.description.clone(),
            input_schema: Some(d.schema.clone()),
        })
        .collect();
    let choice = |ty: &'static str, name: Option<Raw<'a>>| ToolChoice {
        ty: Str::from_static(ty),
        name,
        disable_parallel_tool_use: None,
    };
    let c = match &r.json {
        Some(schema) => {
            let schema = match schema {
                Some(s) if !super::schema::is_object_schema(s) => {
                    return Err(Untranslatable::invalid(
                        "generationConfig",
                        "the response schema must describe an object for this model (Anthropic backend)",
                    ))
                }
                Some(s) => s.clone(),
                None => Raw::constant(r#"{"type":"object"}"#),
            };
            let answer = Tool {
                ty: None,
                name: Raw::text(JSON_ANSWER_TOOL),
                description: Some(Raw::text(
                    "Give your final answer by calling this tool: its input is the answer.",
                )),
                input_schema: Some(schema),
            };
            match &r.choice {
                Some(Choice::Named(n)) if !tools.is_empty() => {
                    tools.push(answer);
                    Some(choice("tool", Some(n.clone())))
                }
                Some(Choice::Auto | Choice::Any) if !tools.is_empty() => {
                    tools.push(answer);
                    Some(choice("any", None))
                }
                _ => {
                    tools.clear();
                    tools.push(answer);
                    Some(choice("tool", Some(Raw::text(JSON_ANSWER_TOOL))))
                }
            }
        }
        None => r.choice.as_ref().map(|c| match c {
            Choice::Auto => choice("auto", None),
            Choice::None => choice("none", None),
            Choice::Any => choice("any", None),
            Choice::Named(n) => choice("tool", Some(n.clone())),
        }),
    };
    Ok((tools, c))
}

/// The turns as Messages turns: same-role turns merged, tool results first in a user turn.
fn turns<'r, 'a>(r: &'r Request<'a>) -> Vec<Msg<'r>> {
    let mut merged: Vec<(Role, Vec<Block<'r>>)> = Vec::with_capacity(r.turns.len());
    for t in &r.turns {
        let mut blocks: Vec<Block<'r>> = t.items.iter().map(block).collect();
        if blocks.is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some((role, last)) if *role == t.role => last.append(&mut blocks),
            _ => merged.push((t.role, blocks)),
        }
    }
    merged
        .into_iter()
        .map(|(role, mut blocks)| {
            if role == Role::User {
                blocks.sort_by_key(|b| b.ty.as_str() != "tool_result");
            }
            Msg {
                role: Str::from_static(match role {
                    Role::User => "user",
                    Role::Model => "assistant",
                }),
                content: Lazy::Value(blocks),
            }
        })
        .collect()
}

fn block<'r>(i: &'r Item<'_>) -> Block<'r> {
    match i {
        Item::Text(t) => Block::text(t.clone()),
        Item::Inline { media_type, data } => {
            let pdf = media_type.as_str() == "application/pdf";
            let mut b = Block::new(if pdf { "document" } else { "image" });
            b.source = Some(Source {
                ty: Str::from_static("base64"),
                media_type: Some(Str::from(media_type.as_str())),
                data: Some(Str::from(data.as_str())),
                url: None,
            });
            b
        }
        Item::Url { url, pdf } => {
            let mut b = Block::new(if *pdf { "document" } else { "image" });
            b.source = Some(Source {
                ty: Str::from_static("url"),
                media_type: None,
                data: None,
                url: Some(Raw::text(url.as_str())),
            });
            b
        }
        Item::Call { id, name, args } => {
            let mut b = Block::new("tool_use");
            b.id = Some(Raw::text(id));
            b.name = Some(name.clone());
            b.input = Some(args.clone());
            b
        }
        Item::Result { id, response } => {
            let mut b = Block::new("tool_result");
            b.tool_use_id = Some(Raw::text(id));
            b.content = Some(Lazy::Raw(response.clone()));
            b
        }
    }
}

/// Translates Anthropic's `count_tokens` answer (`{"input_tokens": n}`) into the
/// `countTokens` answer (`{"totalTokens": n}`).
///
/// # Errors
/// Not the expected shape ([`UpstreamBroken`]).
pub fn count_tokens_from_messages(body: &[u8]) -> Result<Vec<u8>, UpstreamBroken> {
    let c: AnthropicTokenCount =
        raw::read(body).map_err(|_| UpstreamBroken::invalid("invalid count_tokens JSON"))?;
    let mut out = Vec::with_capacity(32);
    raw::write(
        &mut out,
        &CountTokensResponse {
            total_tokens: c.input_tokens,
        },
    );
    Ok(out)
}
