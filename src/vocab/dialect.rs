//! The dialects the gateway speaks: the API a client speaks, and the API a backend
//! provider speaks.

/// The API a client speaks (chosen by the route it called).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientApi {
    /// `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and the local endpoints.
    #[default]
    OpenAi,
    /// `/v1/messages`, `/v1/messages/count_tokens`.
    Anthropic,
    /// `/v1/responses` and its sub-routes: OpenAI-shaped errors, Responses stream events.
    OpenAiResponses,
    /// The native Gemini API (`/v1beta/models/...`): Google-shaped errors.
    Gemini,
}

/// The API dialect of a provider: decides credential headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendType {
    OpenAi,
    Azure,
    Anthropic,
    Gemini,
}

impl BackendType {
    /// Parses `openai | azure | anthropic | claude | gemini`.
    pub fn parse(s: &str) -> Option<BackendType> {
        match s {
            "openai" => Some(BackendType::OpenAi),
            "azure" => Some(BackendType::Azure),
            "anthropic" | "claude" => Some(BackendType::Anthropic),
            "gemini" => Some(BackendType::Gemini),
            _ => None,
        }
    }

    /// The canonical config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendType::OpenAi => "openai",
            BackendType::Azure => "azure",
            BackendType::Anthropic => "anthropic",
            BackendType::Gemini => "gemini",
        }
    }
}
