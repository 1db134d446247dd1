//! The operations a client can ask the gateway to proxy.

use super::dialect::BackendType;

/// Which operation a proxied request is (metrics' `gen_ai_operation_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// OpenAI `/v1/chat/completions`.
    Chat,
    /// OpenAI `/v1/completions`.
    TextCompletion,
    /// OpenAI `/v1/embeddings`.
    Embeddings,
    /// Anthropic `/v1/messages`.
    Messages,
    /// Anthropic `/v1/messages/count_tokens`.
    CountTokens,
    /// OpenAI Responses `POST /v1/responses`.
    Responses,
    /// OpenAI Responses `POST /v1/responses/compact`: native backends only.
    ResponsesCompact,
    /// A stored response by id (`GET`/`DELETE /v1/responses/{id}`, its `input_items`,
    /// `cancel`): sent to the account that produced it, never charged.
    ResponseById,
    /// Gemini `models/{model}:generateContent` and `:streamGenerateContent`.
    GenerateContent,
    /// Gemini `models/{model}:countTokens`: native Gemini, or Anthropic's token counting.
    GeminiCountTokens,
}

/// The method of a Gemini API call (`models/{model}:{method}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeminiMethod {
    /// `generateContent`.
    Generate,
    /// `streamGenerateContent`.
    StreamGenerate,
    /// `countTokens`.
    CountTokens,
}

impl GeminiMethod {
    /// Parses the method part of a path.
    pub fn parse(s: &str) -> Option<GeminiMethod> {
        match s {
            "generateContent" => Some(GeminiMethod::Generate),
            "streamGenerateContent" => Some(GeminiMethod::StreamGenerate),
            "countTokens" => Some(GeminiMethod::CountTokens),
            _ => None,
        }
    }

    /// The method as it appears in a path.
    pub fn as_str(self) -> &'static str {
        match self {
            GeminiMethod::Generate => "generateContent",
            GeminiMethod::StreamGenerate => "streamGenerateContent",
            GeminiMethod::CountTokens => "countTokens",
        }
    }

    /// The operation a call of this method is.
    pub fn operation(self) -> Operation {
        match self {
            GeminiMethod::CountTokens => Operation::GeminiCountTokens,
            _ => Operation::GenerateContent,
        }
    }
}

impl Operation {
    /// OpenTelemetry GenAI operation name.
    pub fn otel_name(self) -> &'static str {
        match self {
            Operation::Chat | Operation::Messages | Operation::Responses => "chat",
            Operation::ResponsesCompact => "compact",
            Operation::ResponseById => "retrieve",
            Operation::GenerateContent => "generate_content",
            Operation::GeminiCountTokens => "count_tokens",
            Operation::TextCompletion => "text_completion",
            Operation::Embeddings => "embeddings",
            Operation::CountTokens => "count_tokens",
        }
    }

    /// The endpoint, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Operation::Chat => "/v1/chat/completions",
            Operation::TextCompletion => "/v1/completions",
            Operation::Embeddings => "/v1/embeddings",
            Operation::Messages => "/v1/messages",
            Operation::CountTokens => "/v1/messages/count_tokens",
            Operation::Responses => "/v1/responses",
            Operation::ResponsesCompact => "/v1/responses/compact",
            Operation::ResponseById => "/v1/responses/{id}",
            Operation::GenerateContent => "models/{model}:generateContent",
            Operation::GeminiCountTokens => "models/{model}:countTokens",
        }
    }

    /// Whether a backend of type `backend` can serve this operation (`responses_api`: the
    /// backend speaks the Responses API natively): chat both ways, OpenAI-only endpoints on
    /// OpenAI-compatible backends, token counting on Anthropic, Responses everywhere
    /// (translated where not native), its compaction and stored responses only natively.
    pub fn served_by(self, backend: BackendType, responses_api: bool) -> bool {
        let anthropic = backend == BackendType::Anthropic;
        match self {
            Operation::Chat | Operation::Messages | Operation::Responses => true,
            Operation::TextCompletion | Operation::Embeddings => !anthropic,
            Operation::CountTokens => anthropic,
            Operation::ResponsesCompact | Operation::ResponseById => responses_api,
            Operation::GenerateContent => true,
            Operation::GeminiCountTokens => anthropic || backend == BackendType::Gemini,
        }
    }

    /// Whether the answer's token usage is charged (a stored response read back is not).
    pub fn charged(self) -> bool {
        self != Operation::ResponseById
    }
}
