//! The native Gemini API on the proxy path: admitting a `models/{model}:{method}` call (the
//! model is in the path, not the body), the native upstream URL and credential of a
//! `gemini` backend, and the context a translated answer is issued in.

use super::admitted::{GeminiCall, ProxyRequest};
use super::ctx::Proxied;
use super::translation::Translation;
use crate::auth::UserEntry;
use crate::body::BodyError;
use crate::error::ApiError;
use crate::snapshot::Snapshot;
use crate::translate::gemini::AnswerContext;
use crate::vocab::{GeminiMethod, Operation};
use crate::wire::gemini::Content;
use bytes::Bytes;
use std::sync::Arc;

/// Whether a Gemini call's query asks for server-sent events (`alt=sse`).
pub fn wants_sse(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"))
}

/// Validates a Gemini API call: the body must be one JSON object (as every request body)
/// without a `model` member (the path names the model; a second name could disagree), the
/// model must exist and be the user's, a backend of it must serve the method, and every
/// backend the call may reach must be able to express it. Nothing is sent upstream on a
/// refusal.
pub fn validate(
    method: GeminiMethod,
    model: &str,
    sse: bool,
    body: Bytes,
    user: Arc<UserEntry>,
    snap: &Snapshot,
) -> Result<ProxyRequest, ApiError> {
    match crate::body::scan(&body) {
        Err(BodyError::MissingModel) => {}
        Ok(_) => {
            return Err(ApiError::bad_request(
                "A Gemini API call names its model in the path; the body must not have a `model` member.",
            )
            .with_param("model"))
        }
        Err(e) => {
            crate::metrics::INVALID_REQUESTS
                .with_label_values(&[e.kind()])
                .inc();
            return Err(ApiError::bad_request(e.message()));
        }
    }
    check_shape(method, &body)?;
    let model = model.strip_prefix("models/").unwrap_or(model);
    let route = snap
        .table
        .model_index(model)
        .and_then(|i| snap.table.models.get(i))
        .ok_or_else(|| ApiError::model_not_found(model))?;
    if !user.may_use(route.index) {
        return Err(ApiError::model_not_allowed(model));
    }
    let op = method.operation();
    if !route.backends.iter().any(|b| b.provider.serves(op)) {
        let what = match method {
            GeminiMethod::CountTokens => {
                "countTokens needs a gemini or anthropic backend, and this model has none"
            }
            _ => "no backend of this model serves the Gemini API",
        };
        return Err(ApiError::bad_request(format!(
            "Model '{}': {what}.",
            route.name
        )));
    }
    let stream = method == GeminiMethod::StreamGenerate;
    let mut checked = smallvec::SmallVec::<[Translation; 2]>::new();
    for b in route.backends.iter().filter(|b| b.provider.serves(op)) {
        let t = Translation::of(op, &b.provider);
        if t != Translation::None && !checked.contains(&t) {
            checked.push(t);
            t.check_gemini(&body, stream)?;
        }
    }
    Ok(ProxyRequest {
        op,
        user,
        model: Arc::clone(route),
        body,
        model_span: 0..0,
        stream,
        include_usage: None,
        responses: None,
        gemini: Some(GeminiCall { method, sse }),
        session: Default::default(),
    })
}

/// A body that is not a request of `method` (a `GenerateContentRequest`: `contents`, an
/// array of contents with their parts; `countTokens` also takes it wrapped in
/// `generateContentRequest`) is refused here, whichever backend would have served it.
fn check_shape(method: GeminiMethod, body: &[u8]) -> Result<(), ApiError> {
    // The members are read for their shape only.
    #[allow(dead_code)]
    #[derive(serde::Deserialize)]
    struct Generate<'a> {
        #[serde(borrow)]
        contents: Vec<Content<'a>>,
    }
    #[allow(dead_code)]
    #[derive(serde::Deserialize)]
    struct Count<'a> {
        #[serde(borrow, default)]
        contents: Option<Vec<Content<'a>>>,
        #[serde(borrow, default, rename = "generateContentRequest")]
        request: Option<Generate<'a>>,
    }
    let shaped = match method {
        GeminiMethod::CountTokens => crate::wire::raw::read::<Count<'_>>(body).map(drop),
        _ => crate::wire::raw::read::<Generate<'_>>(body).map(drop),
    };
    shaped.map_err(|_| {
        ApiError::bad_request(
            "The body is not a GenerateContentRequest: `contents` must be an array of contents, each with an array of `parts`.",
        )
        .with_param("contents")
    })
}

/// The upstream path and query of a native call on a `gemini` backend:
/// `/v1beta/models/{backend model}:{method}`, with `alt=sse` when the client asked for it.
pub fn native_path(real_model: &str, call: GeminiCall) -> String {
    let mut path = String::with_capacity(real_model.len() + 48);
    path.push_str("/v1beta/models/");
    // A model name is a path segment: anything outside the unreserved set is escaped.
    for b in real_model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            path.push(char::from(b));
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path.push(':');
    path.push_str(call.method.as_str());
    if call.sse && call.method == GeminiMethod::StreamGenerate {
        path.push_str("?alt=sse");
    }
    path
}

/// The context a translated answer to a Gemini client is issued in: the backend's real
/// model as `modelVersion`, a fresh `responseId`, the client's framing and what its
/// request asked of the answer. `None` for other attempts.
pub fn answer_context(p: &Proxied, t: Translation) -> Option<AnswerContext> {
    if !t.is_gemini() || p.request.op != Operation::GenerateContent {
        return None;
    }
    let call = p.request.gemini?;
    let model = p.attempt.as_ref()?.backend.real_model.clone();
    let id = crate::random_id::random_hex_string();
    Some(AnswerContext::for_request(
        &p.request.body,
        model,
        id,
        call.sse,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_paths_keep_only_alt_sse() {
        let call = |method, sse| GeminiCall { method, sse };
        assert_eq!(
            native_path("gemini-2.5-flash", call(GeminiMethod::StreamGenerate, true)),
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            native_path(
                "gemini-2.5-flash",
                call(GeminiMethod::StreamGenerate, false)
            ),
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
        );
        assert_eq!(
            native_path("a b/c", call(GeminiMethod::Generate, true)),
            "/v1beta/models/a%20b%2Fc:generateContent"
        );
        assert!(wants_sse(Some("key=x&alt=sse")));
        assert!(!wants_sse(Some("alt=json")));
        assert!(!wants_sse(None));
    }
}
