//! The admitted request: who sent it, which model it asked for, the client's body, and the
//! body each attempt sends (the client's bytes with the backend's model spliced in).

use crate::auth::UserEntry;
use crate::routing::ModelRoute;
use crate::vocab::Operation;
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;

/// The validated proxied request: who, which model, and the body to forward.
#[derive(Debug)]
pub struct ProxyRequest {
    pub op: Operation,
    pub user: Arc<UserEntry>,
    pub model: Arc<ModelRoute>,
    /// The client's body exactly as received.
    pub body: Bytes,
    /// Span of the `model` value (with quotes) in `body`.
    pub model_span: Range<usize>,
    /// The request asked for a stream.
    pub stream: bool,
    /// Insertion adding `stream_options.include_usage` (when configured and missing).
    pub include_usage: Option<(Range<usize>, &'static [u8])>,
    /// The Responses API's side of the request (continuation, pinned account, ids).
    pub responses: Option<Box<super::responses_call::ResponsesCall>>,
    /// A Gemini API call: its method and framing (the model came from the path).
    pub gemini: Option<GeminiCall>,
    /// The request's session (key hash, remembered move) for session affinity.
    pub session: crate::routing::Session,
}

/// A Gemini API call's method, and whether its stream is server-sent events (`alt=sse`)
/// rather than a streamed JSON array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeminiCall {
    pub method: crate::vocab::GeminiMethod,
    pub sse: bool,
}

impl ProxyRequest {
    /// The stored conversation a translated Responses request continues (a JSON array of
    /// items), if any.
    pub fn history(&self) -> Option<&[u8]> {
        self.responses.as_ref().and_then(|r| r.history())
    }

    /// The provider account every attempt of this request must use, if pinned.
    pub fn pinned_provider(&self) -> Option<&str> {
        self.responses.as_ref().and_then(|r| r.pinned.as_deref())
    }
}

/// The body for one attempt: the client's bytes with the `model` value replaced by the
/// backend's real model (and `include_usage` added when configured). Reuses the client's
/// bytes untouched when nothing changes.
pub fn attempt_body(req: &ProxyRequest, model_literal: &[u8]) -> Bytes {
    let same_model = req.body.get(req.model_span.clone()) == Some(model_literal);
    if same_model && req.include_usage.is_none() {
        return req.body.clone();
    }
    let mut edits: smallvec::SmallVec<[crate::body::Edit<'_>; 2]> = smallvec::SmallVec::new();
    edits.push(crate::body::Edit {
        range: req.model_span.clone(),
        bytes: model_literal,
    });
    if let Some((range, bytes)) = &req.include_usage {
        edits.push(crate::body::Edit {
            range: range.clone(),
            bytes,
        });
    }
    Bytes::from(crate::body::apply_edits(&req.body, &mut edits))
}
