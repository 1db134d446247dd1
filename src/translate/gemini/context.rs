//! What the Gemini translations need besides the bytes they translate.

use crate::wire::gemini::GenerationConfig;
use crate::wire::raw::{self, Members, Raw};

/// The backends named in refusals of what neither can express.
pub(crate) const PROVIDERS: &str = "translated";

/// What a request translation needs besides the client's body.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The backend's real model, written into the upstream body.
    pub model: &'a str,
    /// `streamGenerateContent` (chat backends also get `stream_options.include_usage`).
    pub stream: bool,
}

/// A translated request.
#[derive(Debug, Clone)]
pub struct TranslatedRequest {
    /// The upstream body.
    pub body: Vec<u8>,
}

/// What an answer translation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerContext {
    /// The backend's real model (`modelVersion`).
    pub model_version: String,
    /// `responseId`.
    pub response_id: String,
    /// `alt=sse` framing (else the streamed JSON array).
    pub sse: bool,
    /// The request asked for JSON (`responseMimeType: application/json`): the Anthropic
    /// JSON-answer tool's input is answered as a text part.
    pub json_answer: bool,
    /// The request asked for thoughts (`thinkingConfig.includeThoughts`): thinking is
    /// answered as `thought: true` parts (else dropped).
    pub include_thoughts: bool,
}

impl AnswerContext {
    /// A context with `json_answer` and `include_thoughts` off.
    #[must_use]
    pub fn new(model_version: String, response_id: String, sse: bool) -> Self {
        AnswerContext {
            model_version,
            response_id,
            sse,
            json_answer: false,
            include_thoughts: false,
        }
    }

    /// A context with `json_answer` and `include_thoughts` read (leniently: a malformed body
    /// leaves them off) from the client's request body.
    #[must_use]
    pub fn for_request(
        request: &[u8],
        model_version: String,
        response_id: String,
        sse: bool,
    ) -> Self {
        let mut cx = AnswerContext::new(model_version, response_id, sse);
        let Ok(members) = raw::read::<Members<'_>>(request) else {
            return cx;
        };
        let Some((_, g)) = members
            .0
            .iter()
            .find(|(k, _)| matches!(k.as_str(), "generationConfig" | "generation_config"))
        else {
            return cx;
        };
        if let Some(Ok(g)) = Raw::Borrowed(g).parse::<GenerationConfig<'_>>() {
            cx.json_answer = g
                .response_mime_type
                .is_some_and(|m| m.as_str() == "application/json");
            cx.include_thoughts = g
                .thinking_config
                .and_then(|t| t.include_thoughts)
                .unwrap_or(false);
        }
        cx
    }
}
