//! A `GenerateContentRequest` into an OpenAI chat completions request.
//!
//! | Gemini | chat completions |
//! |---|---|
//! | `systemInstruction` text parts | one `system` message first (joined with `\n`) |
//! | `user` turn: `text`, `inlineData` image (→ `data:` URL), `fileData` image URL | a user message: a string for one text part, else `text` / `image_url` parts |
//! | `user` turn: `functionResponse` | a `tool` message each (before the turn's other content), `tool_call_id` = the paired call's id, content = the `response` object's JSON text |
//! | `model` turn: `text` (not `thought`) and `functionCall` | one assistant message: texts concatenated, `tool_calls` (`id` = `call_<n>`, `arguments` = `args` as JSON text) |
//! | `tools[].functionDeclarations` | function tools (`parametersJsonSchema` as is, else `parameters` converted to JSON Schema) |
//! | `functionCallingConfig` AUTO / NONE / ANY (one allowed name) / ANY | `auto` / `none` / named / `required` (only with tools) |
//! | `temperature`, `topP` | same |
//! | `maxOutputTokens` | `max_completion_tokens` |
//! | `stopSequences` | `stop` |
//! | `responseMimeType` `application/json` + schema / without | `response_format` `json_schema` (`name` `response`) / `json_object` |
//! | `thinkingConfig` budget / level | `reasoning_effort` low (≤ 2,048) / medium (≤ 8,192) / high; budget 0 and `MINIMAL`: none sent |
//! | stream | `stream: true` + `stream_options.include_usage: true` |
//!
//! Refused besides [`super::request`]'s refusals: PDFs and images in `model` turns.

use super::context::{RequestContext, TranslatedRequest};
use super::request::{self, Choice, Item, Request, Role, Turn};
use crate::translate::chat::{message, tool_choice_mode, tool_choice_named};
use crate::translate::Untranslatable;
use crate::wire::openai_chat::{
    ChatRequest, FnCall, FnDef, ImageUrl, JsonSchemaFormat, Msg, Part, ResponseFormatOut,
    StreamOptions, Tool, ToolCall,
};
use crate::wire::raw::{self, Lazy, Raw, Str};
use std::borrow::Cow;

/// Translates a `GenerateContentRequest` into a chat completions request for `cx.model`.
///
/// # Errors
/// A malformed request or one chat completions cannot express ([`Untranslatable`]).
pub fn to_chat(body: &[u8], cx: &RequestContext<'_>) -> Result<TranslatedRequest, Untranslatable> {
    let r = request::read(body)?;
    let has_tools = !r.tools.is_empty();
    let tools: Vec<Tool<'_>> = r
        .tools
        .iter()
        .map(|d| Tool {
            ty: Str::from_static("function"),
            function: Some(FnDef {
                name: d.name.clone(),
                description: d.description.clone(),
                parameters: Some(d.schema.clone()),
                strict: None,
            }),
        })
        .collect();
    let tool_choice = r.choice.as_ref().filter(|_| has_tools).map(|c| match c {
        Choice::Auto => tool_choice_mode("auto"),
        Choice::None => tool_choice_mode("none"),
        Choice::Any => tool_choice_mode("required"),
        Choice::Named(n) => tool_choice_named(n),
    });
    let response_format = r.json.as_ref().map(|schema| match schema {
        Some(s) => ResponseFormatOut {
            ty: Str::from_static("json_schema"),
            json_schema: Some(JsonSchemaFormat {
                name: Raw::text("response"),
                description: None,
                schema: Some(s.clone()),
                strict: None,
            }),
        },
        None => ResponseFormatOut {
            ty: Str::from_static("json_object"),
            json_schema: None,
        },
    });
    let stop = (!r.stop.is_empty()).then(|| {
        let mut s = Vec::new();
        raw::write(&mut s, &r.stop);
        serde_json::value::RawValue::from_string(String::from_utf8(s).unwrap_or_default())
            .map_or(Raw::Null, Raw::Owned)
    });
    let out = ChatRequest {
        model: Str::from(cx.model),
        messages: Some(Lazy::Value(messages(&r)?)),
        max_completion_tokens: r.max_output_tokens,
        stop: stop.filter(|s| !s.is_null()),
        temperature: r.temperature,
        top_p: r.top_p,
        tools: has_tools.then_some(Lazy::Value(tools)),
        tool_choice,
        stream: cx.stream.then_some(true),
        stream_options: cx.stream.then_some(StreamOptions {
            include_usage: true,
        }),
        reasoning_effort: r.thinking.effort().map(Str::from_static),
        response_format,
        ..ChatRequest::default()
    };
    let mut bytes = Vec::with_capacity(body.len() + 256);
    raw::write(&mut bytes, &out);
    Ok(TranslatedRequest { body: bytes })
}

fn messages<'r, 'a>(r: &'r Request<'a>) -> Result<Vec<Msg<'r>>, Untranslatable> {
    let mut out = Vec::with_capacity(r.turns.len() + 1);
    if !r.system.is_empty() {
        let texts: Vec<&Raw<'a>> = r.system.iter().collect();
        out.push(message(
            "system",
            Some(Lazy::Raw(request::join(&texts, "\\n"))),
        ));
    }
    for t in &r.turns {
        match t.role {
            Role::Model => model_turn(t, &mut out)?,
            Role::User => user_turn(t, &mut out)?,
        }
    }
    Ok(out)
}

fn model_turn<'r>(t: &'r Turn<'_>, out: &mut Vec<Msg<'r>>) -> Result<(), Untranslatable> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for i in &t.items {
        match i {
            Item::Text(x) => texts.push(x),
            Item::Call { id, name, args } => calls.push(ToolCall {
                id: Raw::text(id),
                ty: Some(Str::from_static("function")),
                function: FnCall {
                    name: name.clone(),
                    arguments: Some(Str::from(args.json().unwrap_or("{}"))),
                },
            }),
            _ => {
                return Err(Untranslatable::invalid(
                    "contents",
                    "a `model` turn may only hold text and function calls for this model (chat completions backend)",
                ))
            }
        }
    }
    if texts.is_empty() && calls.is_empty() {
        return Ok(());
    }
    let content = (!texts.is_empty()).then(|| Lazy::Raw(request::join(&texts, "")));
    let mut m = message("assistant", content);
    if !calls.is_empty() {
        m.tool_calls = Some(calls);
    }
    out.push(m);
    Ok(())
}

fn user_turn<'r>(t: &'r Turn<'_>, out: &mut Vec<Msg<'r>>) -> Result<(), Untranslatable> {
    let mut parts = Vec::new();
    for i in &t.items {
        match i {
            Item::Result { id, response } => {
                let mut m = message("tool", Some(Lazy::Raw(response.clone())));
                m.tool_call_id_out = Some(Raw::text(id));
                out.push(m);
            }
            Item::Text(x) => parts.push(Part {
                ty: Str::from_static("text"),
                text: Some(x.clone()),
                refusal: None,
                image_url: None,
            }),
            Item::Inline { .. } | Item::Url { .. } if is_pdf(i) => {
                return Err(Untranslatable::invalid(
                    "contents",
                    "PDF documents are not supported for this model (chat completions backend)",
                ));
            }
            Item::Inline { media_type, data } => parts.push(image(Raw::Text(Cow::Owned(format!(
                "data:{};base64,{}",
                media_type.as_str(),
                data.as_str()
            ))))),
            Item::Url { url, .. } => parts.push(image(Raw::text(url.as_str()))),
            Item::Call { .. } => {} // refused when read
        }
    }
    match parts.as_mut_slice() {
        [] => {}
        [Part {
            text: Some(t),
            image_url: None,
            ..
        }] => {
            let t = t.clone();
            out.push(message("user", Some(Lazy::Raw(t))));
        }
        _ => out.push(message("user", Some(Lazy::Value(parts)))),
    }
    Ok(())
}

fn is_pdf(i: &Item<'_>) -> bool {
    match i {
        Item::Inline { media_type, .. } => media_type.as_str() == "application/pdf",
        Item::Url { pdf, .. } => *pdf,
        _ => false,
    }
}

fn image(url: Raw<'_>) -> Part<'_> {
    Part {
        ty: Str::from_static("image_url"),
        text: None,
        refusal: None,
        image_url: Some(ImageUrl { url }),
    }
}
