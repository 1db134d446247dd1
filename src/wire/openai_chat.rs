//! OpenAI chat completions: request, response and stream chunks.
//!
//! Each type reads what the translators need and is written by derive, members in the
//! order declared (absent ones skipped unless noted). Text, ids, tool arguments and
//! schemas are [`Raw`]: copied verbatim. Reading is lenient the way the gateway has always
//! been: members nobody reads are not type-checked.

use super::raw::{Lazy, List, Raw, Rest, Str};
use serde::{Deserialize, Serialize};

/// A chat completions request (`POST /v1/chat/completions`). Read member by member (see
/// the translators) so that an error names the member; `rest` holds the members not
/// named here.
#[derive(Debug, Default, Serialize)]
pub struct ChatRequest<'a> {
    /// The model.
    pub model: Str<'a>,
    /// The conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Lazy<'a, Vec<Msg<'a>>>>,
    /// Output limit (legacy name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Output limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    /// Stop sequences: a string or strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Raw<'a>>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Function tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Lazy<'a, Vec<Tool<'a>>>>,
    /// `"auto"` / `"none"` / `"required"` or a named function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Lazy<'a, ToolChoice<'a>>>,
    /// Whether the model may call several tools at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// The end user (a string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Raw<'a>>,
    /// Streaming.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Reasoning effort (`low`, `medium`, `high`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<Str<'a>>,
    /// Structured output (as written: `json_schema` or `json_object`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormatOut<'a>>,
    /// Members not named above, verbatim.
    #[serde(flatten, skip_serializing_if = "Rest::is_empty")]
    pub rest: Rest<'a>,
}

/// `stream_options`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
pub struct StreamOptions {
    /// A final chunk with `choices: []` and the usage.
    pub include_usage: bool,
}

/// One message of the conversation (request side).
#[derive(Debug, Deserialize, Serialize)]
pub struct Msg<'a> {
    /// `system`, `developer`, `user`, `assistant`, `tool`, `function`.
    #[serde(borrow)]
    pub role: Str<'a>,
    /// For `tool` messages: the call answered (as written; see `tool_call_id`).
    #[serde(
        rename = "tool_call_id",
        skip_deserializing,
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_call_id_out: Option<Raw<'a>>,
    /// A string or content parts; `null` when written as `None`.
    #[serde(borrow, default)]
    pub content: Option<Lazy<'a, Vec<Part<'a>>>>,
    /// The assistant's tool calls.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    /// For `tool` messages: the call answered (as read). Written members come in the order
    /// clients expect and read members in the order the gateway has always read them
    /// (serde reads a struct from an array by position), hence the two fields.
    #[serde(borrow, default, skip_serializing)]
    pub tool_call_id: Option<Raw<'a>>,
}

/// A content part: `text`, `refusal`, `image_url` (others are read to be refused).
#[derive(Debug, Deserialize, Serialize)]
pub struct Part<'a> {
    /// The part's kind.
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
    /// `text` parts.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Raw<'a>>,
    /// `refusal` parts.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Raw<'a>>,
    /// `image_url` parts.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl<'a>>,
}

/// `image_url`: a `data:` or http(s) URL.
#[derive(Debug, Deserialize, Serialize)]
pub struct ImageUrl<'a> {
    /// The URL (read decoded; written verbatim when it comes from the other dialect).
    #[serde(borrow, deserialize_with = "super::raw::string")]
    pub url: Raw<'a>,
}

/// A tool call of an assistant message (request history and response).
#[derive(Debug, Deserialize, Serialize)]
pub struct ToolCall<'a> {
    /// The call's id.
    #[serde(borrow)]
    pub id: Raw<'a>,
    /// `function`.
    #[serde(
        borrow,
        rename = "type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ty: Option<Str<'a>>,
    /// The function called.
    #[serde(borrow)]
    pub function: FnCall<'a>,
}

/// The function of a tool call.
#[derive(Debug, Deserialize, Serialize)]
pub struct FnCall<'a> {
    /// Its name.
    #[serde(borrow)]
    pub name: Raw<'a>,
    /// Its arguments: a JSON object encoded as a string.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Str<'a>>,
}

/// A tool the model may call.
#[derive(Debug, Deserialize, Serialize)]
pub struct Tool<'a> {
    /// `function` (others are refused).
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
    /// The function.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FnDef<'a>>,
}

/// A function tool's definition.
#[derive(Debug, Deserialize, Serialize)]
pub struct FnDef<'a> {
    /// Its name.
    #[serde(borrow)]
    pub name: Raw<'a>,
    /// What it does.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Raw<'a>>,
    /// Its JSON schema.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Raw<'a>>,
    /// Strict schema adherence (written only).
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `tool_choice`: a mode string or a named function.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ToolChoice<'a> {
    /// `auto`, `none`, `required`.
    Mode(Str<'a>),
    /// `{type: function, function: {name}}`.
    Named(NamedChoice<'a>),
}

/// A named `tool_choice`.
#[derive(Debug, Deserialize, Serialize)]
pub struct NamedChoice<'a> {
    /// `function`.
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
    /// The function.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub function: Option<NamedFn<'a>>,
}

/// The function a named `tool_choice` forces.
#[derive(Debug, Deserialize, Serialize)]
pub struct NamedFn<'a> {
    /// Its name.
    #[serde(borrow)]
    pub name: Raw<'a>,
}

/// `response_format` (only its kind is read).
#[derive(Debug, Deserialize)]
pub struct ResponseFormat<'a> {
    /// `text`, `json_object`, `json_schema`.
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
}

/// `response_format` as the gateway writes it.
#[derive(Debug, Serialize)]
pub struct ResponseFormatOut<'a> {
    /// `json_schema` or `json_object`.
    #[serde(rename = "type")]
    pub ty: Str<'a>,
    /// For `json_schema`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchemaFormat<'a>>,
}

/// `response_format.json_schema`.
#[derive(Debug, Serialize)]
pub struct JsonSchemaFormat<'a> {
    /// The format's name.
    pub name: Raw<'a>,
    /// What the format is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Raw<'a>>,
    /// The JSON schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<Raw<'a>>,
    /// Strict schema adherence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A `chat.completion` response.
#[derive(Debug, Deserialize, Serialize)]
pub struct ChatCompletion<'a> {
    /// The completion's id.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Raw<'a>>,
    /// `chat.completion`.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub object: Option<Str<'a>>,
    /// Unix seconds.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// The model that answered.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Raw<'a>>,
    /// The choices (the gateway reads and writes one).
    #[serde(borrow)]
    pub choices: Vec<Choice<'a>>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// A choice of a `chat.completion`.
#[derive(Debug, Deserialize, Serialize)]
pub struct Choice<'a> {
    /// Its index.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The answer.
    #[serde(borrow)]
    pub message: ResponseMessage<'a>,
    /// Log probabilities (written as `null`).
    #[serde(skip_deserializing, default)]
    pub logprobs: Option<Raw<'a>>,
    /// Why generation stopped (written as `null` when `None`).
    #[serde(borrow, default)]
    pub finish_reason: Option<Str<'a>>,
}

/// The assistant message of a response.
#[derive(Debug, Deserialize, Serialize)]
pub struct ResponseMessage<'a> {
    /// `assistant`.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub role: Option<Raw<'a>>,
    /// The text (written as `null` when `None`).
    #[serde(borrow, default)]
    pub content: Option<Raw<'a>>,
    /// A refusal's text.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Raw<'a>>,
    /// Tool calls.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,

    /// Reasoning text (vLLM, DeepSeek; read only).
    #[serde(borrow, default, skip_serializing)]
    pub reasoning_content: Option<Raw<'a>>,
    /// Reasoning text (Ollama, newer vLLM; read only).
    #[serde(borrow, default, skip_serializing)]
    pub reasoning: Option<Raw<'a>>,
}

/// OpenAI `usage`: `prompt_tokens` is the whole prompt, `cached_tokens` a part of it (see
/// [`crate::vocab::TokenUsage::from_openai`]).
#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize)]
pub struct Usage {
    /// The whole prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    /// Generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    /// Prompt + completion.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// The prompt's breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// The completion's breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize)]
pub struct CompletionTokensDetails {
    /// Generated tokens spent on reasoning (a part of `completion_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
}

impl Usage {
    /// The counts in the gateway's partition (absent counts are 0).
    #[must_use]
    pub fn tokens(&self) -> crate::vocab::TokenUsage {
        // `cached_tokens` without `prompt_tokens` means nothing (as in the usage scanner).
        let cached = self
            .prompt_tokens
            .and(self.prompt_tokens_details)
            .and_then(|d| d.cached_tokens);
        crate::vocab::TokenUsage::from_openai(
            self.prompt_tokens.unwrap_or(0),
            self.completion_tokens.unwrap_or(0),
            cached.unwrap_or(0),
        )
    }

    /// `usage` for the gateway's counts: prompt = all prompt tokens, cached = cache reads.
    #[must_use]
    pub fn of(u: crate::vocab::TokenUsage) -> Self {
        let prompt = u.prompt_tokens();
        Usage {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(u.output),
            total_tokens: Some(prompt.saturating_add(u.output)),
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: Some(u.cache_read),
            }),
            completion_tokens_details: None,
        }
    }
}

/// A `chat.completion.chunk` stream event's data.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ChatChunk<'a> {
    /// The completion's id.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Raw<'a>>,
    /// `chat.completion.chunk`.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub object: Option<Str<'a>>,
    /// Unix seconds.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// The model.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Raw<'a>>,
    /// The choices' deltas (`[]` on the usage chunk).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<List<'a, ChunkChoice<'a>>>,
    /// Token usage (the last chunk, when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// An in-band error, parsed as [`super::error::OpenAiErrorIn`] where it is translated.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Raw<'a>>,
}

/// One choice's delta in a chunk.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChunkChoice<'a> {
    /// The choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// What it adds.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<ChunkDelta<'a>>,
    /// Log probabilities (written as `null`).
    #[serde(skip_deserializing, default)]
    pub logprobs: Option<Raw<'a>>,
    /// Why generation stopped (written as `null` when `None`).
    #[serde(borrow, default)]
    pub finish_reason: Option<Str<'a>>,
}

/// A chunk's delta.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ChunkDelta<'a> {
    /// `assistant` on the first chunk.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub role: Option<Raw<'a>>,
    /// Text.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Raw<'a>>,
    /// Refusal text.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Raw<'a>>,
    /// Tool-call pieces.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<List<'a, ToolCallDelta<'a>>>,
    /// Reasoning text (vLLM, DeepSeek; read only).
    #[serde(borrow, default, skip_serializing)]
    pub reasoning_content: Option<Raw<'a>>,
    /// Reasoning text (Ollama, newer vLLM; read only).
    #[serde(borrow, default, skip_serializing)]
    pub reasoning: Option<Raw<'a>>,
}

/// A piece of a streamed tool call.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ToolCallDelta<'a> {
    /// Which call (some providers omit it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The call's id (first piece).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Raw<'a>>,
    /// `function` (first piece).
    #[serde(
        skip_deserializing,
        rename = "type",
        skip_serializing_if = "Option::is_none"
    )]
    pub ty: Option<Raw<'a>>,
    /// Name (first piece) and argument text.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDelta<'a>>,
}

/// A piece of a streamed function call.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionDelta<'a> {
    /// The name (first piece).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Raw<'a>>,
    /// The next piece of the arguments' text (a string).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Raw<'a>>,
}
