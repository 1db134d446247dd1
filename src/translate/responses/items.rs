//! The items of `input` (and of the stored history) read into conversation entries.

use crate::translate::Untranslatable;
use crate::wire::raw::{Raw, Str};
use crate::wire::responses::{ContentPart, Item};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// What starts the `encrypted_content` of a reasoning item the gateway issued for an
/// Anthropic thinking block; the rest is a JSON object `{"thinking","signature"}` or
/// `{"redacted"}`.
pub const REASONING_MARK: &str = "berry:anthropic-thinking:v1:";

/// One entry of the conversation.
#[derive(Debug)]
pub enum Entry<'a> {
    /// Text of a `system` or `developer` message (a JSON string).
    System(Raw<'a>),
    /// A user message.
    User(Vec<Content<'a>>),
    /// An assistant message (text only).
    Assistant(Vec<Content<'a>>),
    /// A `function_call` or `custom_tool_call`.
    Call(Call<'a>),
    /// A `function_call_output` or `custom_tool_call_output`.
    Result {
        /// The call answered (a JSON string).
        call_id: Raw<'a>,
        /// Its output.
        output: Output<'a>,
    },
    /// A reasoning item the gateway issued for an Anthropic thinking block.
    Reasoning(Thinking),
}

/// A tool call of the conversation.
#[derive(Debug)]
pub struct Call<'a> {
    /// The call's id (a JSON string).
    pub call_id: Raw<'a>,
    /// The tool's name (a JSON string).
    pub name: Raw<'a>,
    /// The arguments as a JSON string holding an object (a custom call's are
    /// `{"input": <input>}`).
    pub arguments: Raw<'a>,
    /// The arguments as the object.
    pub input: Raw<'a>,
    /// A `custom_tool_call`.
    pub custom: bool,
}

/// A content part.
#[derive(Debug)]
pub enum Content<'a> {
    /// Text (a JSON string).
    Text(Raw<'a>),
    /// An image: a `data:` or http(s) URL (decoded).
    Image(Cow<'a, str>),
    /// A file: a `data:` URL (decoded) or a URL, and its name.
    File {
        /// `file_data`.
        data: Option<Cow<'a, str>>,
        /// `file_url`.
        url: Option<Cow<'a, str>>,
    },
}

/// A call's output.
#[derive(Debug)]
pub enum Output<'a> {
    /// A string (a JSON string).
    Text(Raw<'a>),
    /// Content parts.
    Parts(Vec<Content<'a>>),
}

/// A thinking block carried by a reasoning item the gateway issued.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Thinking {
    /// The thinking text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// Its signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// A `redacted_thinking` block's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<String>,
}

impl Thinking {
    /// The `encrypted_content` that carries this block: [`REASONING_MARK`] then the JSON.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut s = String::from(REASONING_MARK);
        s.push_str(&serde_json::to_string(self).unwrap_or_default());
        s
    }

    /// The block an `encrypted_content` carries, when the gateway issued it.
    #[must_use]
    pub fn decode(encrypted: &str) -> Option<Thinking> {
        let t: Thinking = serde_json::from_str(encrypted.strip_prefix(REASONING_MARK)?).ok()?;
        let whole = t.thinking.is_some() && t.signature.is_some() && t.redacted.is_none();
        let redacted = t.thinking.is_none() && t.signature.is_none() && t.redacted.is_some();
        (whole || redacted).then_some(t)
    }
}

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

/// Something inside `input` (or the stored history) that cannot be read.
pub(crate) fn bad_input(why: impl std::fmt::Display) -> Untranslatable {
    Untranslatable::new("input", format!("Invalid item in `input`: {why}."))
}

/// A string member decoded (borrowed from the input when it has no escapes).
pub(super) fn decoded<'a>(raw: &Raw<'a>) -> Option<Cow<'a, str>> {
    match raw {
        Raw::Text(t) => Some(t.clone()),
        _ => raw.parse::<Str<'a>>().and_then(Result::ok).map(|s| s.0),
    }
}

/// Adds the entry of one item (items that carry nothing for a backend add none).
pub(super) fn entry<'a>(
    it: Item<'a>,
    conv: &mut Vec<Entry<'a>>,
    calls: &mut Vec<Cow<'a, str>>,
) -> Result<(), Untranslatable> {
    let ty = it.ty.as_ref().map_or("message", Str::as_str);
    match ty {
        "message" => {
            let Some(role) = it.role else {
                return Err(bad_input("a message needs a `role`"));
            };
            let Some(content) = it.content.filter(|c| !c.is_null()) else {
                return Err(bad_input("a message needs `content`"));
            };
            match role.as_str() {
                "system" | "developer" => system_text(&content, conv),
                "user" => {
                    let parts = contents(&content, true)?;
                    if !parts.is_empty() {
                        conv.push(Entry::User(parts));
                    }
                    Ok(())
                }
                "assistant" => {
                    let parts = contents(&content, false)?;
                    if !parts.is_empty() {
                        conv.push(Entry::Assistant(parts));
                    }
                    Ok(())
                }
                _ => Err(bad_input("unknown role")),
            }
        }
        "function_call" | "custom_tool_call" => {
            let custom = ty == "custom_tool_call";
            let (Some(call_id), Some(name)) =
                (it.call_id.filter(Raw::is_str), it.name.filter(Raw::is_str))
            else {
                return Err(bad_input("a call needs a string `call_id` and `name`"));
            };
            let (arguments, input) = if custom {
                let Some(inp) = it.input.filter(Raw::is_str) else {
                    return Err(bad_input("a custom tool call needs a string `input`"));
                };
                custom_arguments(&inp)?
            } else {
                let Some(args) = it.arguments.filter(Raw::is_str) else {
                    return Err(bad_input("a function call needs string `arguments`"));
                };
                let input = arguments_object(&args)?;
                (args, input)
            };
            if let Some(id) = decoded(&call_id) {
                calls.push(id);
            }
            conv.push(Entry::Call(Call {
                call_id,
                name,
                arguments,
                input,
                custom,
            }));
            Ok(())
        }
        "function_call_output" | "custom_tool_call_output" => {
            let Some(call_id) = it.call_id.filter(Raw::is_str) else {
                return Err(bad_input("a call output needs a string `call_id`"));
            };
            let id = decoded(&call_id).unwrap_or_default();
            if !calls.contains(&id) {
                return Err(bad_input(format_args!(
                    "no tool call found for the output with call_id `{id}`"
                )));
            }
            let output = match it.output {
                Some(o) if o.is_str() => Output::Text(o),
                Some(o) if !o.is_null() => Output::Parts(contents(&o, true)?),
                _ => return Err(bad_input("a call output needs `output`")),
            };
            conv.push(Entry::Result { call_id, output });
            Ok(())
        }
        "reasoning" => {
            let thinking = it
                .encrypted_content
                .as_ref()
                .and_then(decoded)
                .and_then(|e| Thinking::decode(&e));
            if let Some(t) = thinking {
                conv.push(Entry::Reasoning(t));
            }
            Ok(())
        }
        "item_reference" => Err(bad_input("`item_reference` items are not supported")),
        _ => Err(bad_input(format_args!("unknown item type `{ty}`"))),
    }
}

/// The text of a system or developer message.
fn system_text<'a>(content: &Raw<'a>, conv: &mut Vec<Entry<'a>>) -> Result<(), Untranslatable> {
    if content.is_str() {
        if !content.is_empty_str() {
            conv.push(Entry::System(content.clone()));
        }
        return Ok(());
    }
    for c in contents(content, false)? {
        match c {
            Content::Text(t) => conv.push(Entry::System(t)),
            _ => {
                return Err(bad_input(
                    "system and developer messages may only hold text",
                ))
            }
        }
    }
    Ok(())
}

/// Content (a string or parts) as content parts; empty text is skipped. `user`: images and
/// files are allowed.
fn contents<'a>(c: &Raw<'a>, user: bool) -> Result<Vec<Content<'a>>, Untranslatable> {
    if c.is_str() {
        return Ok(if c.is_empty_str() {
            Vec::new()
        } else {
            vec![Content::Text(c.clone())]
        });
    }
    let parts: Vec<ContentPart<'a>> = parse("input", c)?;
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        match p.ty.as_str() {
            "input_text" | "output_text" | "text" | "summary_text" => {
                let Some(t) = p.text.filter(Raw::is_str) else {
                    return Err(bad_input("a text part needs a string `text`"));
                };
                if !t.is_empty_str() {
                    out.push(Content::Text(t));
                }
            }
            "refusal" => {
                let Some(t) = p.refusal.filter(Raw::is_str) else {
                    return Err(bad_input("a refusal part needs a string `refusal`"));
                };
                out.push(Content::Text(t));
            }
            "input_image" if user => {
                let Some(url) = p
                    .image_url
                    .as_ref()
                    .filter(|u| u.is_str())
                    .and_then(decoded)
                else {
                    return Err(bad_input(
                        "an `input_image` needs an `image_url` (uploaded files are not supported)",
                    ));
                };
                if !(url.starts_with("data:")
                    || url.starts_with("https://")
                    || url.starts_with("http://"))
                {
                    return Err(bad_input("image URLs must be data: or http(s) URLs"));
                }
                out.push(Content::Image(url));
            }
            "input_file" if user => {
                let data = p
                    .file_data
                    .as_ref()
                    .filter(|u| u.is_str())
                    .and_then(decoded);
                let url = p.file_url.as_ref().filter(|u| u.is_str()).and_then(decoded);
                if data.is_none() && url.is_none() {
                    return Err(bad_input(
                        "an `input_file` needs `file_data` or `file_url` (uploaded files are not supported)",
                    ));
                }
                out.push(Content::File { data, url });
            }
            _ => {
                return Err(bad_input(format_args!(
                    "unknown content part `{}`",
                    p.ty.as_str()
                )))
            }
        }
    }
    Ok(out)
}

/// A function call's `arguments` (a JSON string holding an object; empty = `{}`) as the
/// object.
fn arguments_object<'a>(args: &Raw<'a>) -> Result<Raw<'a>, Untranslatable> {
    let bad = || bad_input("a function call's `arguments` must hold a JSON object");
    let text = decoded(args).ok_or_else(bad)?;
    let t = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if t.is_empty() {
        return Ok(Raw::constant("{}"));
    }
    match serde_json::from_str::<Box<RawValue>>(t) {
        Ok(v) if v.get().starts_with('{') => Ok(Raw::Owned(v)),
        _ => Err(bad()),
    }
}

/// A custom call's `input` (a JSON string) as function arguments `{"input": <input>}`: the
/// string form and the object.
fn custom_arguments<'a>(input: &Raw<'a>) -> Result<(Raw<'a>, Raw<'a>), Untranslatable> {
    let bad = || bad_input("a custom tool call's `input` must be a string");
    let json = match input.borrowed_string() {
        Some(s) => s.get().to_owned(),
        None => serde_json::to_string(&decoded(input).ok_or_else(bad)?).map_err(|_| bad())?,
    };
    let object = format!("{{\"input\":{json}}}");
    let raw = RawValue::from_string(object.clone()).map_err(|_| bad())?;
    Ok((Raw::Text(Cow::Owned(object)), Raw::Owned(raw)))
}
