//! A Responses request (and the gateway's stored history of earlier turns) read into a
//! neutral form that each backend mapping writes out: the conversation as entries, the
//! tools the backend can run, and the settings. What no backend can express is refused
//! here; what only some can is left to the mapping.

use super::items::decoded;
pub(crate) use super::items::{bad_input, parse};
pub use super::items::{Call, Content, Entry, Output, Thinking, REASONING_MARK};
use crate::translate::Untranslatable;
use crate::wire::raw::{self, Members, Raw, Str};
use crate::wire::responses::{
    CustomFormat, Item, NamedToolChoice, Reasoning as WireReasoning, TextConfig, Tool,
};
use serde::Deserialize;
use std::borrow::Cow;

/// The parameters schema of a `custom` tool written as a function tool: one string `input`.
pub const CUSTOM_INPUT_SCHEMA: &str = r#"{"type":"object","properties":{"input":{"type":"string","description":"The raw input of the tool, exactly as its grammar describes."}},"required":["input"],"additionalProperties":false}"#;

/// The schema of a function tool that declares none.
const EMPTY_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// A request in the neutral form. `null` members count as absent.
#[derive(Debug, Default)]
pub struct Request<'a> {
    /// `instructions` (a JSON string as sent).
    pub instructions: Option<Raw<'a>>,
    /// The history's items, then `input`'s, in order.
    pub conversation: Vec<Entry<'a>>,
    /// The `function` and `custom` tools.
    pub tools: Vec<ToolDef<'a>>,
    /// Hosted tool types dropped (each once, in order).
    pub dropped_tools: Vec<String>,
    /// `tool_choice`.
    pub tool_choice: Option<Choice<'a>>,
    /// `parallel_tool_calls`.
    pub parallel_tool_calls: Option<bool>,
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// `max_output_tokens`.
    pub max_output_tokens: Option<u64>,
    /// `reasoning.effort`.
    pub effort: Option<Effort>,
    /// `text.format` other than `text`.
    pub format: Option<Format<'a>>,
    /// `stream`.
    pub stream: bool,
    /// `user`, else `safety_identifier` (a JSON string).
    pub user: Option<Raw<'a>>,
}

/// `reasoning.effort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// `none`.
    None,
    /// `minimal`.
    Minimal,
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `xhigh`.
    XHigh,
}

impl Effort {
    /// The API's name of the effort.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::None => "none",
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::XHigh => "xhigh",
        }
    }
}

/// `tool_choice`.
#[derive(Debug, Clone)]
pub enum Choice<'a> {
    /// `auto` (also `allowed_tools` in mode `auto`).
    Auto,
    /// `none`.
    None,
    /// `required` (also `allowed_tools` in mode `required`).
    Required,
    /// `{type: function|custom, name}`: the tool (one of [`Request::tools`]).
    Named(Raw<'a>),
}

/// `text.format` other than `text`.
#[derive(Debug, Clone)]
pub enum Format<'a> {
    /// `json_schema`.
    JsonSchema {
        /// The schema's name (a string).
        name: Raw<'a>,
        /// The schema (an object).
        schema: Raw<'a>,
        /// What the answer is (a string).
        description: Option<Raw<'a>>,
        /// Strict adherence.
        strict: Option<bool>,
    },
    /// `json_object`.
    JsonObject,
}

/// A tool the backend runs as a function.
#[derive(Debug, Clone)]
pub enum ToolDef<'a> {
    /// `function`.
    Function {
        /// Its name (a string).
        name: Raw<'a>,
        /// Its description (a string).
        description: Option<Raw<'a>>,
        /// Its parameters' schema (an object).
        parameters: Option<Raw<'a>>,
        /// Strict adherence.
        strict: Option<bool>,
    },
    /// `custom`: freeform input, maybe with a grammar.
    Custom {
        /// Its name (a string).
        name: Raw<'a>,
        /// The description a function needs: the tool's, then its grammar.
        description: Option<Raw<'a>>,
    },
}

impl<'a> ToolDef<'a> {
    /// The tool's name (a JSON string).
    #[must_use]
    pub fn name(&self) -> &Raw<'a> {
        match self {
            ToolDef::Function { name, .. } | ToolDef::Custom { name, .. } => name,
        }
    }

    /// The description of the tool as a function (a custom tool's names its grammar).
    #[must_use]
    pub fn function_description(&self) -> Option<&Raw<'a>> {
        match self {
            ToolDef::Function { description, .. } | ToolDef::Custom { description, .. } => {
                description.as_ref()
            }
        }
    }

    /// The parameters schema of the tool as a function ([`CUSTOM_INPUT_SCHEMA`] for a
    /// custom tool, an empty object schema when a function declares none).
    #[must_use]
    pub fn function_parameters(&self) -> Raw<'a> {
        match self {
            ToolDef::Function {
                parameters: Some(p),
                ..
            } => p.clone(),
            ToolDef::Function { .. } => Raw::constant(EMPTY_SCHEMA),
            ToolDef::Custom { .. } => Raw::constant(CUSTOM_INPUT_SCHEMA),
        }
    }
}

/// Reads a Responses request and the history of earlier turns (a JSON array of items,
/// treated as if prepended to `input`). Refuses what no backend can express (`background:
/// true`, `conversation`, `prompt`, `top_logprobs`, unknown or malformed items, an output
/// whose call is not in the conversation, …); `provider` names the backend in messages.
pub fn read_request<'a>(
    body: &'a [u8],
    history: Option<&'a [u8]>,
    provider: &str,
) -> Result<Request<'a>, Untranslatable> {
    let members: Members<'a> = raw::read(body).map_err(|e| {
        Untranslatable::new("", format!("The request body is not a JSON object: {e}"))
    })?;
    let mut r = Request::default();
    let mut input = None;
    let mut tools = None;
    let mut choice = None;
    for (k, v) in members.0 {
        let raw = Raw::Borrowed(v);
        let key = k.as_str();
        if raw.is_null() {
            continue;
        }
        match key {
            "input" => input = Some(raw),
            "instructions" => {
                if !raw.is_str() {
                    return Err(Untranslatable::invalid(key, "expected a string"));
                }
                r.instructions = Some(raw);
            }
            "tools" => tools = Some(raw),
            "tool_choice" => choice = Some(raw),
            "parallel_tool_calls" => r.parallel_tool_calls = parse(key, &raw)?,
            "temperature" => r.temperature = parse(key, &raw)?,
            "top_p" => r.top_p = parse(key, &raw)?,
            "max_output_tokens" => r.max_output_tokens = parse(key, &raw)?,
            "stream" => r.stream = parse::<Option<bool>>(key, &raw)?.unwrap_or(false),
            "reasoning" => {
                let re: WireReasoning<'_> = parse(key, &raw)?;
                r.effort = match re.effort.as_ref().map(Str::as_str) {
                    None => None,
                    Some("none") => Some(Effort::None),
                    Some("minimal") => Some(Effort::Minimal),
                    Some("low") => Some(Effort::Low),
                    Some("medium") => Some(Effort::Medium),
                    Some("high") => Some(Effort::High),
                    Some("xhigh") => Some(Effort::XHigh),
                    Some(_) => return Err(Untranslatable::invalid(key, "unknown effort")),
                };
            }
            "text" => {
                let t: TextConfig<'a> = parse(key, &raw)?;
                r.format =
                    match t.format {
                        None => None,
                        Some(f) => match f.ty.as_str() {
                            "text" => None,
                            "json_object" => Some(Format::JsonObject),
                            "json_schema" => match (f.name.filter(Raw::is_str), f.schema) {
                                (Some(name), Some(schema)) if schema.is_obj() => {
                                    Some(Format::JsonSchema {
                                        name,
                                        schema,
                                        description: f.description.filter(Raw::is_str),
                                        strict: f.strict,
                                    })
                                }
                                _ => return Err(Untranslatable::invalid(
                                    key,
                                    "`json_schema` needs a string `name` and an object `schema`",
                                )),
                            },
                            _ => return Err(Untranslatable::invalid(key, "unknown `format.type`")),
                        },
                    };
            }
            "user" | "safety_identifier" => {
                if !raw.is_str() {
                    return Err(Untranslatable::invalid(key, "expected a string"));
                }
                if key == "user" || r.user.is_none() {
                    r.user = Some(raw);
                }
            }
            "background" if parse::<Option<bool>>(key, &raw)? == Some(true) => {
                return Err(Untranslatable::unsupported(key, provider));
            }
            "top_logprobs" if parse::<Option<u64>>(key, &raw)?.unwrap_or(0) > 0 => {
                return Err(Untranslatable::unsupported(key, provider));
            }
            "conversation" | "prompt" => return Err(Untranslatable::unsupported(key, provider)),
            // model, previous_response_id (resolved by the gateway into `history`), store,
            // include, metadata, truncation, service_tier, stream_options, prompt_cache_key,
            // prompt_cache_retention, max_tool_calls and anything unknown: advisory.
            _ => {}
        }
    }
    let mut calls: Vec<Cow<'a, str>> = Vec::new();
    if let Some(h) = history {
        let items: Vec<Item<'a>> = raw::read(h).map_err(bad_input)?;
        for it in items {
            super::items::entry(it, &mut r.conversation, &mut calls)?;
        }
    }
    match input {
        Some(i) if i.is_str() => r.conversation.push(Entry::User(vec![Content::Text(i)])),
        Some(i) => {
            let items: Vec<Item<'a>> = parse("input", &i)?;
            for it in items {
                super::items::entry(it, &mut r.conversation, &mut calls)?;
            }
        }
        None => {}
    }
    if let Some(t) = tools {
        read_tools(&t, &mut r)?;
    }
    if let Some(c) = choice {
        r.tool_choice = Some(read_choice(&c, &r.tools)?);
    }
    Ok(r)
}

/// The `tools`: function and custom tools kept, the others named in `dropped_tools`.
fn read_tools<'a>(raw: &Raw<'a>, r: &mut Request<'a>) -> Result<(), Untranslatable> {
    let tools: Vec<Tool<'a>> = parse("tools", raw)?;
    for t in tools {
        let ty = t.ty.as_str();
        if ty != "function" && ty != "custom" {
            if !r.dropped_tools.iter().any(|d| d == ty) {
                r.dropped_tools.push(ty.to_owned());
            }
            continue;
        }
        let Some(name) = t.name.filter(Raw::is_str) else {
            return Err(Untranslatable::invalid(
                "tools",
                "a tool needs a string `name`",
            ));
        };
        let description = t.description.filter(|d| !d.is_null());
        if description.as_ref().is_some_and(|d| !d.is_str()) {
            return Err(Untranslatable::invalid(
                "tools",
                "a description must be a string",
            ));
        }
        if ty == "function" {
            let parameters = t.parameters.filter(|p| !p.is_null());
            if parameters.as_ref().is_some_and(|p| !p.is_obj()) {
                return Err(Untranslatable::invalid(
                    "tools",
                    "`parameters` must be an object",
                ));
            }
            let strict = match t.strict.filter(|s| !s.is_null()) {
                Some(s) => Some(parse::<bool>("tools", &s)?),
                None => None,
            };
            r.tools.push(ToolDef::Function {
                name,
                description,
                parameters,
                strict,
            });
        } else {
            let format: Option<CustomFormat<'_>> = match t.format.filter(|f| !f.is_null()) {
                Some(f) => Some(parse("tools", &f)?),
                None => None,
            };
            r.tools.push(ToolDef::Custom {
                name,
                description: custom_description(description.as_ref(), format.as_ref()),
            });
        }
    }
    Ok(())
}

/// A custom tool's description as a function's: its own, then its grammar (if any).
fn custom_description<'a>(
    description: Option<&Raw<'a>>,
    format: Option<&CustomFormat<'_>>,
) -> Option<Raw<'a>> {
    let grammar = format.filter(|f| f.ty.as_str() == "grammar").and_then(|f| {
        let def = f.definition.as_ref().and_then(decoded)?;
        let syntax = f.syntax.as_ref().map_or("lark", Str::as_str);
        Some(format!(
            "Call this tool with one argument, `input`: a string that follows this {syntax} grammar:\n{def}"
        ))
    });
    match (description, grammar) {
        (d, None) => d.cloned(),
        (None, Some(g)) => Some(Raw::Text(Cow::Owned(g))),
        (Some(d), Some(g)) => {
            let d = decoded(d).unwrap_or_default();
            Some(Raw::Text(Cow::Owned(format!("{d}\n\n{g}"))))
        }
    }
}

fn read_choice<'a>(raw: &Raw<'a>, tools: &[ToolDef<'a>]) -> Result<Choice<'a>, Untranslatable> {
    const KEY: &str = "tool_choice";
    if raw.is_str() {
        let s: Str<'_> = parse(KEY, raw)?;
        return match s.as_str() {
            "auto" => Ok(Choice::Auto),
            "none" => Ok(Choice::None),
            "required" => Ok(Choice::Required),
            _ => Err(Untranslatable::invalid(KEY, "unknown value")),
        };
    }
    let c: NamedToolChoice<'a> = parse(KEY, raw)?;
    match c.ty.as_str() {
        "function" | "custom" => {
            let Some(name) = c.name.filter(Raw::is_str) else {
                return Err(Untranslatable::invalid(KEY, "a named choice needs a `name`"));
            };
            let want = decoded(&name).unwrap_or_default();
            if !tools
                .iter()
                .any(|t| decoded(t.name()).as_deref() == Some(&*want))
            {
                return Err(Untranslatable::invalid(KEY, "the tool named is not in `tools`"));
            }
            Ok(Choice::Named(name))
        }
        "allowed_tools" => {
            #[derive(Deserialize)]
            struct Allowed<'b> {
                #[serde(borrow, default)]
                mode: Option<Str<'b>>,
            }
            let a: Allowed<'_> = parse(KEY, raw)?;
            match a.mode.as_ref().map(Str::as_str) {
                Some("required") => Ok(Choice::Required),
                _ => Ok(Choice::Auto),
            }
        }
        _ => Err(Untranslatable::new(
            KEY,
            "A `tool_choice` naming a hosted tool is not supported for this model (the tool is not available on its backend).",
        )),
    }
}

/// The escaped characters of a JSON string value (a raw string's inner text, or a text
/// value encoded).
#[must_use]
pub fn escaped<'r>(raw: &'r Raw<'_>) -> Cow<'r, str> {
    match raw.inner() {
        Some(s) => Cow::Borrowed(s),
        None => {
            let mut out = Vec::new();
            raw::write(&mut out, raw);
            let s = String::from_utf8(out).unwrap_or_default();
            let inner = s
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or("");
            Cow::Owned(inner.to_owned())
        }
    }
}
