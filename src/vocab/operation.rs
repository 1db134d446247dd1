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
}

impl Operation {
    /// OpenTelemetry GenAI operation name.
    pub fn otel_name(self) -> &'static str {
        match self {
            Operation::Chat | Operation::Messages => "chat",
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
        }
    }

    /// Whether a backend of type `backend` can serve this operation: chat both ways,
    /// OpenAI-only endpoints on OpenAI-compatible backends, token counting on Anthropic.
    pub fn served_by(self, backend: BackendType) -> bool {
        let anthropic = backend == BackendType::Anthropic;
        match self {
            Operation::Chat | Operation::Messages => true,
            Operation::TextCompletion | Operation::Embeddings => !anthropic,
            Operation::CountTokens => anthropic,
        }
    }
}
