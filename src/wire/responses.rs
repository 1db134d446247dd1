//! OpenAI Responses API (`POST /v1/responses`): request items and tools as read, and the
//! `Response` object and stream events as written.
//!
//! Reading borrows from the input: text, ids, arguments and schemas are [`Raw`] (copied
//! verbatim); an item is one struct with a `type` discriminator rather than a tagged enum
//! (see [`super::raw`]). A top-level request is read member by member by the translator
//! (so that an error names the member), so it has no type here. Writing is by derive,
//! members in the order declared.

use super::raw::{List, Raw, Str};
use serde::{Deserialize, Serialize};

/// One item of `input` (or of the gateway's stored history): the members of its kind are
/// set. A message may omit `type` (the "easy" input message `{role, content}`).
#[derive(Debug, Deserialize)]
pub struct Item<'a> {
    /// `message`, `function_call`, `function_call_output`, `custom_tool_call`,
    /// `custom_tool_call_output`, `reasoning`, …
    #[serde(borrow, rename = "type", default)]
    pub ty: Option<Str<'a>>,
    /// `message`: `user`, `assistant`, `system` or `developer`.
    #[serde(borrow, default)]
    pub role: Option<Str<'a>>,
    /// `message`: a string or content parts.
    #[serde(borrow, default)]
    pub content: Option<Raw<'a>>,
    /// The item's id.
    #[serde(borrow, default)]
    pub id: Option<Raw<'a>>,
    /// Calls and their outputs: the call's id.
    #[serde(borrow, default)]
    pub call_id: Option<Raw<'a>>,
    /// Calls: the tool's name.
    #[serde(borrow, default)]
    pub name: Option<Raw<'a>>,
    /// `function_call`: the arguments, a string holding a JSON object.
    #[serde(borrow, default)]
    pub arguments: Option<Raw<'a>>,
    /// `custom_tool_call`: the input string.
    #[serde(borrow, default)]
    pub input: Option<Raw<'a>>,
    /// Call outputs: a string or content parts.
    #[serde(borrow, default)]
    pub output: Option<Raw<'a>>,
    /// `reasoning`: summary parts.
    #[serde(borrow, default)]
    pub summary: Option<Raw<'a>>,
    /// `reasoning`: the opaque content a provider issued.
    #[serde(borrow, default)]
    pub encrypted_content: Option<Raw<'a>>,
}

/// A content part of a message or of a call output: `input_text`, `output_text`,
/// `refusal`, `input_image`, `input_file` (the members of its kind are set).
#[derive(Debug, Deserialize)]
pub struct ContentPart<'a> {
    /// The part's kind.
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
    /// Text parts.
    #[serde(borrow, default)]
    pub text: Option<Raw<'a>>,
    /// `refusal`.
    #[serde(borrow, default)]
    pub refusal: Option<Raw<'a>>,
    /// `input_image`: a data URL or an http(s) URL.
    #[serde(borrow, default)]
    pub image_url: Option<Raw<'a>>,
    /// `input_image`: `low`, `high`, `auto`.
    #[serde(borrow, default)]
    pub detail: Option<Raw<'a>>,
    /// An uploaded file's id.
    #[serde(borrow, default)]
    pub file_id: Option<Raw<'a>>,
    /// `input_file`: a data URL.
    #[serde(borrow, default)]
    pub file_data: Option<Raw<'a>>,
    /// `input_file`: a URL.
    #[serde(borrow, default)]
    pub file_url: Option<Raw<'a>>,
    /// `input_file`: its name.
    #[serde(borrow, default)]
    pub filename: Option<Raw<'a>>,
}

/// A tool: `function`, `custom`, or a hosted tool (`web_search`, `namespace`, …).
#[derive(Debug, Deserialize)]
pub struct Tool<'a> {
    /// The tool's kind.
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
    /// `function`, `custom`: its name.
    #[serde(borrow, default)]
    pub name: Option<Raw<'a>>,
    /// What it does.
    #[serde(borrow, default)]
    pub description: Option<Raw<'a>>,
    /// `function`: its parameters' JSON schema.
    #[serde(borrow, default)]
    pub parameters: Option<Raw<'a>>,
    /// `function`: strict schema adherence.
    #[serde(borrow, default)]
    pub strict: Option<Raw<'a>>,
    /// `custom`: `{type: text}` or `{type: grammar, syntax, definition}`.
    #[serde(borrow, default)]
    pub format: Option<Raw<'a>>,
}

/// A custom tool's `format`.
#[derive(Debug, Deserialize)]
pub struct CustomFormat<'a> {
    /// `text` or `grammar`.
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
    /// `grammar`: `lark` or `regex`.
    #[serde(borrow, default)]
    pub syntax: Option<Str<'a>>,
    /// `grammar`: the grammar.
    #[serde(borrow, default)]
    pub definition: Option<Raw<'a>>,
}

/// `tool_choice` as an object: `{type: function|custom, name}`, `{type: allowed_tools, …}`,
/// or a hosted tool's type.
#[derive(Debug, Deserialize)]
pub struct NamedToolChoice<'a> {
    /// The kind.
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
    /// `function`, `custom`: the tool.
    #[serde(borrow, default)]
    pub name: Option<Raw<'a>>,
}

/// `reasoning`.
#[derive(Debug, Deserialize)]
pub struct Reasoning<'a> {
    /// `none`, `minimal`, `low`, `medium`, `high`, `xhigh`.
    #[serde(borrow, default)]
    pub effort: Option<Str<'a>>,
}

/// `text`.
#[derive(Debug, Deserialize)]
pub struct TextConfig<'a> {
    /// The answer's format.
    #[serde(borrow, default)]
    pub format: Option<TextFormat<'a>>,
}

/// `text.format`: `text`, `json_object`, `json_schema` (with `name`, `schema`, …).
#[derive(Debug, Deserialize)]
pub struct TextFormat<'a> {
    /// The kind.
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
    /// `json_schema`: the schema's name.
    #[serde(borrow, default)]
    pub name: Option<Raw<'a>>,
    /// `json_schema`: the schema.
    #[serde(borrow, default)]
    pub schema: Option<Raw<'a>>,
    /// `json_schema`: what the answer is.
    #[serde(borrow, default)]
    pub description: Option<Raw<'a>>,
    /// `json_schema`: strict adherence.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// The `Response` object (non-stream answer; `response` of the `response.*` lifecycle
/// events). `status`, `incomplete_details` and `usage` are written even when `null`.
#[derive(Debug, Serialize)]
pub struct Response<'a, E: Serialize> {
    /// `resp_…`.
    pub id: &'a str,
    /// `response`.
    pub object: &'static str,
    /// Unix seconds.
    pub created_at: u64,
    /// `in_progress`, `completed`, `incomplete`.
    pub status: &'static str,
    /// Always `null` here.
    pub error: Raw<'a>,
    /// `{reason}` when incomplete.
    pub incomplete_details: Option<IncompleteDetails>,
    /// The backend's model.
    pub model: &'a str,
    /// The output items.
    pub output: List<'a, OutputItem<'a>>,
    /// Token usage (`null` while in progress).
    pub usage: Option<Usage>,
    /// The request's settings echoed (`instructions`, `tools`, `tool_choice`, …).
    #[serde(flatten)]
    pub echo: &'a E,
}

/// `incomplete_details`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IncompleteDetails {
    /// `max_output_tokens` or `content_filter`.
    pub reason: &'static str,
}

/// An output item: `message`, `function_call`, `custom_tool_call`, `reasoning` (the members
/// of its kind are set).
#[derive(Debug, Serialize)]
pub struct OutputItem<'a> {
    /// The kind.
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// `msg_…`, `fc_…`, `ctc_…`, `rs_…`.
    pub id: &'a str,
    /// `in_progress`, `completed`, `incomplete` (not on reasoning items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// `message`: `assistant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// `message`: its parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<List<'a, OutputPart<'a>>>,
    /// Calls: the call's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<&'a Raw<'a>>,
    /// Calls: the tool's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a Raw<'a>>,
    /// `function_call`: the arguments (a string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<&'a Raw<'a>>,
    /// `custom_tool_call`: the input (a string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<&'a Raw<'a>>,
    /// `reasoning`: summary parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<List<'a, OutputPart<'a>>>,
    /// `reasoning`: the opaque content the gateway issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<&'a Raw<'a>>,
}

impl<'a> OutputItem<'a> {
    /// An item of kind `ty` with id `id` and no other member set.
    #[must_use]
    pub fn new(ty: &'static str, id: &'a str) -> Self {
        OutputItem {
            ty,
            id,
            status: None,
            role: None,
            content: None,
            call_id: None,
            name: None,
            arguments: None,
            input: None,
            summary: None,
            encrypted_content: None,
        }
    }
}

/// A part: `output_text` (with `annotations: []`) or `summary_text`.
#[derive(Debug, Serialize)]
pub struct OutputPart<'a> {
    /// The kind.
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// The text.
    pub text: &'a Raw<'a>,
    /// `output_text`: always empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<List<'a, Raw<'a>>>,
}

/// Response `usage`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Usage {
    /// The whole prompt (cached included).
    pub input_tokens: u64,
    /// Its cached part.
    pub input_tokens_details: InputTokensDetails,
    /// Generated tokens (reasoning included).
    pub output_tokens: u64,
    /// Their reasoning part.
    pub output_tokens_details: OutputTokensDetails,
    /// Input + output.
    pub total_tokens: u64,
}

/// `usage.input_tokens_details`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct InputTokensDetails {
    /// Prompt tokens read from the cache.
    pub cached_tokens: u64,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OutputTokensDetails {
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// The gateway's partition in the Responses shape: `input_tokens` is the whole prompt,
    /// `cached_tokens` its cache reads.
    #[must_use]
    pub fn of(u: crate::vocab::TokenUsage, reasoning_tokens: u64) -> Self {
        let input = u.prompt_tokens();
        Usage {
            input_tokens: input,
            input_tokens_details: InputTokensDetails {
                cached_tokens: u.cache_read,
            },
            output_tokens: u.output,
            output_tokens_details: OutputTokensDetails { reasoning_tokens },
            total_tokens: input.saturating_add(u.output),
        }
    }
}

/// One stream event's data (`type` and `sequence_number` first; the members of its kind
/// set).
#[derive(Debug, Serialize)]
pub struct Event<'a, R: Serialize = ()> {
    /// `response.created`, `response.output_text.delta`, …
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// Strictly increasing from 0.
    pub sequence_number: u64,
    /// Lifecycle events: the response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<&'a R>,
    /// Item events: the item's index in `output`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_index: Option<u64>,
    /// Item events: the item's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<&'a str>,
    /// Part events of a message: the part's index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_index: Option<u64>,
    /// Summary events of a reasoning item: the part's index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary_index: Option<u64>,
    /// `output_item.added` / `.done`: the item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<&'a OutputItem<'a>>,
    /// Part events: the part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<&'a OutputPart<'a>>,
    /// Delta events: the piece (a string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<&'a Raw<'a>>,
    /// Text `.done` events: the whole text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a Raw<'a>>,
    /// `function_call_arguments.done`: the whole arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<&'a Raw<'a>>,
    /// `custom_tool_call_input.done`: the whole input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<&'a Raw<'a>>,
    /// Output text events: always empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<List<'a, Raw<'a>>>,
    /// `error`: the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'a str>,
    /// `error`: the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
    /// `error`: always `null` (written only with `code`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<Raw<'a>>,
}

impl<'a, R: Serialize> Event<'a, R> {
    /// An event of kind `ty` with number `sequence_number` and no other member set.
    #[must_use]
    pub fn new(ty: &'static str, sequence_number: u64) -> Self {
        Event {
            ty,
            sequence_number,
            response: None,
            output_index: None,
            item_id: None,
            content_index: None,
            summary_index: None,
            item: None,
            part: None,
            delta: None,
            text: None,
            arguments: None,
            input: None,
            logprobs: None,
            code: None,
            message: None,
            param: None,
        }
    }
}
