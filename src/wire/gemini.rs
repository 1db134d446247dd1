//! The native Gemini API (`generateContent`, `streamGenerateContent`, `countTokens`): the
//! request as a client sends it, the answer as the gateway writes it, and Google's error
//! shape.
//!
//! Request types read what the translators use; members are read under their JSON
//! (lowerCamelCase) names and, as Google's JSON parser also accepts them, their proto
//! (snake_case) names. Text, names, arguments, schemas and data are [`Raw`]: copied
//! verbatim. Answer types are written by derive, members in the order declared (absent
//! ones skipped).

use super::raw::{Raw, Str};
use serde::{Deserialize, Serialize};

/// A `Content`: a turn (`user` / `model`; `function` in older clients) or the system
/// instruction.
#[derive(Debug, Deserialize)]
pub struct Content<'a> {
    /// `user`, `model` (absent: `user`).
    #[serde(borrow, default)]
    pub role: Option<Str<'a>>,
    /// The turn's parts.
    #[serde(borrow, default)]
    pub parts: Vec<Part<'a>>,
}

/// One part of a `Content` (the members of its kind are set).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part<'a> {
    /// Text (a JSON string).
    #[serde(borrow, default)]
    pub text: Option<Raw<'a>>,
    /// The text is the model's thinking.
    #[serde(default)]
    pub thought: Option<bool>,
    /// An opaque signature of the model's thinking (only usable with Google).
    #[serde(borrow, default, alias = "thought_signature")]
    pub thought_signature: Option<Raw<'a>>,
    /// Inline bytes.
    #[serde(borrow, default, alias = "inline_data")]
    pub inline_data: Option<Blob<'a>>,
    /// A file by URI.
    #[serde(borrow, default, alias = "file_data")]
    pub file_data: Option<FileData<'a>>,
    /// A call the model made.
    #[serde(borrow, default, alias = "function_call")]
    pub function_call: Option<FunctionCall<'a>>,
    /// The client's answer to a call.
    #[serde(borrow, default, alias = "function_response")]
    pub function_response: Option<FunctionResponse<'a>>,
    /// Code the model generated (Google's code execution tool).
    #[serde(borrow, default, alias = "executable_code")]
    pub executable_code: Option<Raw<'a>>,
    /// The result of executed code.
    #[serde(borrow, default, alias = "code_execution_result")]
    pub code_execution_result: Option<Raw<'a>>,
}

/// `inlineData`: base64 bytes of a media type.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob<'a> {
    /// e.g. `image/png`.
    #[serde(borrow, alias = "mime_type")]
    pub mime_type: Str<'a>,
    /// Base64 data.
    #[serde(borrow)]
    pub data: Str<'a>,
}

/// `fileData`: a file by URI.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData<'a> {
    /// The media type, when given.
    #[serde(borrow, default, alias = "mime_type")]
    pub mime_type: Option<Str<'a>>,
    /// The URI (read decoded).
    #[serde(borrow, alias = "file_uri")]
    pub file_uri: Str<'a>,
}

/// `functionCall`.
#[derive(Debug, Deserialize)]
pub struct FunctionCall<'a> {
    /// The call's id (some clients and Vertex set one).
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    /// The function.
    #[serde(borrow)]
    pub name: Raw<'a>,
    /// Its arguments (a JSON object).
    #[serde(borrow, default)]
    pub args: Option<Raw<'a>>,
}

/// `functionResponse`.
#[derive(Debug, Deserialize)]
pub struct FunctionResponse<'a> {
    /// The call answered, when the client kept its id.
    #[serde(borrow, default)]
    pub id: Option<Str<'a>>,
    /// The function called.
    #[serde(borrow)]
    pub name: Raw<'a>,
    /// The result (a JSON object).
    #[serde(borrow, default)]
    pub response: Option<Raw<'a>>,
}

/// One entry of `tools`: function declarations, or one of Google's own tools (dropped).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool<'a> {
    /// The functions the model may call.
    #[serde(borrow, default, alias = "function_declarations")]
    pub function_declarations: Option<Vec<FunctionDeclaration<'a>>>,
}

/// A function the model may call.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeclaration<'a> {
    /// Its name.
    #[serde(borrow)]
    pub name: Raw<'a>,
    /// What it does.
    #[serde(borrow, default)]
    pub description: Option<Raw<'a>>,
    /// Its parameters in Google's OpenAPI subset (upper-case types).
    #[serde(borrow, default)]
    pub parameters: Option<Raw<'a>>,
    /// Its parameters as JSON Schema.
    #[serde(borrow, default, alias = "parameters_json_schema")]
    pub parameters_json_schema: Option<Raw<'a>>,
}

/// `toolConfig`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig<'a> {
    /// How functions may be called.
    #[serde(borrow, default, alias = "function_calling_config")]
    pub function_calling_config: Option<FunctionCallingConfig<'a>>,
}

/// `toolConfig.functionCallingConfig`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig<'a> {
    /// `AUTO`, `ANY`, `NONE`, `VALIDATED`.
    #[serde(borrow, default)]
    pub mode: Option<Str<'a>>,
    /// With `ANY`: the functions the model may call.
    #[serde(borrow, default, alias = "allowed_function_names")]
    pub allowed_function_names: Option<Vec<Raw<'a>>>,
}

/// `generationConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig<'a> {
    /// Sampling temperature (0–2).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, alias = "top_p")]
    pub top_p: Option<f64>,
    /// Output limit.
    #[serde(default, alias = "max_output_tokens")]
    pub max_output_tokens: Option<u64>,
    /// Stop sequences.
    #[serde(borrow, default, alias = "stop_sequences")]
    pub stop_sequences: Option<Vec<Raw<'a>>>,
    /// Number of candidates (only 1 is served).
    #[serde(default, alias = "candidate_count")]
    pub candidate_count: Option<u64>,
    /// `text/plain`, `application/json`, `text/x.enum`.
    #[serde(borrow, default, alias = "response_mime_type")]
    pub response_mime_type: Option<Str<'a>>,
    /// The answer's schema in Google's OpenAPI subset.
    #[serde(borrow, default, alias = "response_schema")]
    pub response_schema: Option<Raw<'a>>,
    /// The answer's schema as JSON Schema.
    #[serde(
        borrow,
        default,
        alias = "response_json_schema",
        alias = "_responseJsonSchema"
    )]
    pub response_json_schema: Option<Raw<'a>>,
    /// Log probabilities of the chosen tokens.
    #[serde(default, alias = "response_logprobs")]
    pub response_logprobs: Option<bool>,
    /// Number of top log probabilities.
    #[serde(default)]
    pub logprobs: Option<u64>,
    /// Thinking.
    #[serde(borrow, default, alias = "thinking_config")]
    pub thinking_config: Option<ThinkingConfig<'a>>,
}

/// `generationConfig.thinkingConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig<'a> {
    /// Thinking tokens: 0 off, -1 dynamic.
    #[serde(default, alias = "thinking_budget")]
    pub thinking_budget: Option<i64>,
    /// `LOW`, `MEDIUM`, `HIGH` (`MINIMAL`).
    #[serde(borrow, default, alias = "thinking_level")]
    pub thinking_level: Option<Str<'a>>,
    /// Answer the thinking as `thought` parts.
    #[serde(default, alias = "include_thoughts")]
    pub include_thoughts: Option<bool>,
}

/// A `GenerateContentResponse` (one stream chunk, or the whole answer).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse<'a> {
    /// One candidate.
    pub candidates: [Candidate<'a>; 1],
    /// Token counts (on the whole answer and a stream's last chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_metadata: Option<UsageMetadata>,
    /// The backend's model.
    pub model_version: &'a str,
    /// The answer's id.
    pub response_id: &'a str,
}

/// A candidate of an answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate<'a> {
    /// The model's turn.
    pub content: ContentOut<'a>,
    /// Why generation stopped (the answer's last chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<&'static str>,
    /// Always 0.
    pub index: u32,
}

/// The model's turn in an answer.
#[derive(Debug, Serialize)]
pub struct ContentOut<'a> {
    /// The parts (skipped when empty).
    #[serde(skip_serializing_if = "<[PartOut<'a>]>::is_empty")]
    pub parts: &'a [PartOut<'a>],
    /// `model`.
    pub role: &'static str,
}

/// A part of an answer: text (possibly thinking) or a function call.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartOut<'a> {
    /// Text (a JSON string, verbatim).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Raw<'a>>,
    /// `true` on thinking text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// A call of a declared function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCallOut<'a>>,
}

impl<'a> PartOut<'a> {
    /// A text part (thinking when `thought`).
    #[must_use]
    pub fn text(text: Raw<'a>, thought: bool) -> Self {
        PartOut {
            text: Some(text),
            thought: thought.then_some(true),
            function_call: None,
        }
    }
}

/// A `functionCall` of an answer.
#[derive(Debug, Serialize)]
pub struct FunctionCallOut<'a> {
    /// The function (a JSON string, verbatim).
    pub name: Raw<'a>,
    /// The arguments (a JSON object, verbatim).
    pub args: Raw<'a>,
}

/// `usageMetadata`: the prompt counts cache reads in; candidates exclude thoughts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// The whole prompt (cached part included).
    pub prompt_token_count: u64,
    /// Output tokens besides thinking.
    pub candidates_token_count: u64,
    /// Prompt tokens read from a cache (skipped when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub cached_content_token_count: u64,
    /// Thinking tokens (skipped when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub thoughts_token_count: u64,
    /// Prompt + candidates + thoughts.
    pub total_token_count: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Google's error answer: `{"error":{"code","message","status"}}`.
#[derive(Debug, Serialize)]
pub struct GoogleError<'a> {
    /// The error.
    pub error: GoogleErrorBody<'a>,
}

/// The `error` member of [`GoogleError`].
#[derive(Debug, Serialize)]
pub struct GoogleErrorBody<'a> {
    /// The HTTP status.
    pub code: u16,
    /// What went wrong.
    pub message: &'a str,
    /// The canonical status name (`INVALID_ARGUMENT`, …).
    pub status: &'a str,
}

/// Anthropic's `count_tokens` answer (read).
#[derive(Debug, Deserialize)]
pub struct AnthropicTokenCount {
    /// The prompt's tokens.
    pub input_tokens: u64,
}

/// The `countTokens` answer (written).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensResponse {
    /// The prompt's tokens.
    pub total_tokens: u64,
}

/// Google's canonical status name of an HTTP status (`INVALID_ARGUMENT`, `UNAUTHENTICATED`,
/// `PERMISSION_DENIED`, `NOT_FOUND`, `RESOURCE_EXHAUSTED`, `UNAVAILABLE`, `INTERNAL`).
pub fn google_status(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        502..=504 | 529 => "UNAVAILABLE",
        500..=599 => "INTERNAL",
        _ if status < 500 => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    }
}

/// A Google-shaped error body `{"error":{"code","message","status"}}` for `status` (529 is
/// reported as 503).
pub fn google_error_body(status: u16, message: &str) -> Vec<u8> {
    let status = if status == 529 { 503 } else { status };
    let mut out = Vec::with_capacity(message.len() + 64);
    super::raw::write(
        &mut out,
        &GoogleError {
            error: GoogleErrorBody {
                code: status,
                message,
                status: google_status(status),
            },
        },
    );
    out
}
