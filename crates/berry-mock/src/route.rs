//! Which answer a request asks for, from its method and path, and which provider
//! API ([`Api`]) it speaks.

/// The provider API a request speaks: it decides the auth header, the error shape and
/// the dialect of the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// OpenAI (also Azure's `/openai/v1/…` form): key in `Authorization: Bearer`,
    /// `x-api-key` or `api-key`.
    OpenAi,
    /// Anthropic Messages (any method on `…/messages` and `…/messages/count_tokens`,
    /// `…/models` with an `anthropic-version` header): key in `x-api-key`.
    Anthropic,
    /// Azure OpenAI deployments (`…/openai/deployments/{deployment}/…`): key in
    /// `api-key`, `api-version` query parameter required.
    Azure,
    /// The native Gemini API (`…/models/{model}:{method}`, and `GET …/models[/{model}]`
    /// under `/v1beta/` or with a Google key): key in `x-goog-api-key` or `?key=`.
    Gemini,
}

/// The endpoints the mock answers. Matching is on the path **suffix**, so
/// `/v1/chat/completions`, `/openai/v1/chat/completions` and `/chat/completions`
/// are the same route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST …/chat/completions` (OpenAI chat).
    Chat,
    /// `POST …/completions` (OpenAI legacy completions).
    Completions,
    /// `POST …/embeddings`.
    Embeddings,
    /// `POST …/messages` (Anthropic style).
    Messages,
    /// `POST …/messages/count_tokens` (Anthropic).
    CountTokens,
    /// `GET …/models`.
    Models,
    /// `POST …/responses` (OpenAI Responses API).
    Responses,
    /// `POST …/responses/compact`.
    ResponsesCompact,
    /// `GET …/responses/{id}`.
    ResponseGet,
    /// `DELETE …/responses/{id}`.
    ResponseDelete,
    /// `GET …/responses/{id}/input_items`.
    ResponseInputItems,
    /// `POST …/responses/{id}/cancel`.
    ResponseCancel,
    /// `POST …/models/{model}:generateContent` (Gemini).
    GeminiGenerate,
    /// `POST …/models/{model}:streamGenerateContent` (Gemini; `?alt=sse` for SSE).
    GeminiStream,
    /// `POST …/models/{model}:countTokens` (Gemini).
    GeminiCountTokens,
    /// `GET …/models/{model}` (Gemini).
    GeminiModel,
    /// Anything else: a 404 with an error body in the shape of the request's API.
    NotFound,
}

impl Endpoint {
    /// One of the Responses API routes.
    pub(crate) fn is_responses(self) -> bool {
        matches!(
            self,
            Endpoint::Responses
                | Endpoint::ResponsesCompact
                | Endpoint::ResponseGet
                | Endpoint::ResponseDelete
                | Endpoint::ResponseInputItems
                | Endpoint::ResponseCancel
        )
    }
}

/// The Responses API route of `method` and `path`, with the response id the path
/// names, `None` when the path has no `responses` segment. After the last `responses`
/// segment: nothing (`POST`), `compact` (`POST`), `{id}` (`GET`, `DELETE`),
/// `{id}/input_items` (`GET`), `{id}/cancel` (`POST`); anything else is
/// [`Endpoint::NotFound`].
pub(crate) fn responses_route(method: &str, path: &str) -> Option<(Endpoint, Option<String>)> {
    let segments: Vec<&str> = path.split('/').collect();
    let at = segments.iter().rposition(|s| *s == "responses")?;
    let rest = &segments[at + 1..];
    let id = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Some(match (method, rest) {
        ("POST", [] | [""]) => (Endpoint::Responses, None),
        ("POST", ["compact"]) => (Endpoint::ResponsesCompact, None),
        ("GET", [i]) if !i.is_empty() => (Endpoint::ResponseGet, id(i)),
        ("DELETE", [i]) if !i.is_empty() => (Endpoint::ResponseDelete, id(i)),
        ("GET", [i, "input_items"]) if !i.is_empty() => (Endpoint::ResponseInputItems, id(i)),
        ("POST", [i, "cancel"]) if !i.is_empty() => (Endpoint::ResponseCancel, id(i)),
        _ => (Endpoint::NotFound, None),
    })
}

/// The endpoint for `method` and `path` (the path without its query string).
pub(crate) fn route(method: &str, path: &str) -> Endpoint {
    let ep = if path.ends_with("/messages/count_tokens") {
        Endpoint::CountTokens
    } else if path.ends_with("/chat/completions") {
        Endpoint::Chat
    } else if path.ends_with("/completions") {
        Endpoint::Completions
    } else if path.ends_with("/embeddings") {
        Endpoint::Embeddings
    } else if path.ends_with("/messages") {
        Endpoint::Messages
    } else if path.ends_with("/models") {
        return if method == "GET" {
            Endpoint::Models
        } else {
            Endpoint::NotFound
        };
    } else {
        Endpoint::NotFound
    };
    if method == "POST" {
        ep
    } else {
        Endpoint::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_matches_suffixes() {
        assert_eq!(route("POST", "/v1/chat/completions"), Endpoint::Chat);
        assert_eq!(route("POST", "/openai/v1/chat/completions"), Endpoint::Chat);
        assert_eq!(route("POST", "/v1/completions"), Endpoint::Completions);
        assert_eq!(route("POST", "/v1/embeddings"), Endpoint::Embeddings);
        assert_eq!(route("POST", "/anthropic/v1/messages"), Endpoint::Messages);
        assert_eq!(
            route("POST", "/v1/messages/count_tokens"),
            Endpoint::CountTokens
        );
        assert_eq!(
            route("GET", "/v1/messages/count_tokens"),
            Endpoint::NotFound
        );
        assert_eq!(route("GET", "/v1/models"), Endpoint::Models);
        assert_eq!(route("GET", "/v1/chat/completions"), Endpoint::NotFound);
        assert_eq!(route("POST", "/v1/models"), Endpoint::NotFound);
        assert_eq!(route("POST", "/v1/other"), Endpoint::NotFound);
        assert_eq!(route("HEAD", "/v1/models"), Endpoint::NotFound);
    }

    #[test]
    fn responses_routes_and_ids() {
        let r = |m, p| responses_route(m, p);
        assert_eq!(
            r("POST", "/v1/responses"),
            Some((Endpoint::Responses, None))
        );
        assert_eq!(
            r("POST", "/openai/v1/responses"),
            Some((Endpoint::Responses, None))
        );
        assert_eq!(
            r("POST", "/v1/responses/compact"),
            Some((Endpoint::ResponsesCompact, None))
        );
        let id = Some("resp_1".to_string());
        assert_eq!(
            r("GET", "/v1/responses/resp_1"),
            Some((Endpoint::ResponseGet, id.clone()))
        );
        assert_eq!(
            r("DELETE", "/v1/responses/resp_1"),
            Some((Endpoint::ResponseDelete, id.clone()))
        );
        assert_eq!(
            r("GET", "/v1/responses/resp_1/input_items"),
            Some((Endpoint::ResponseInputItems, id.clone()))
        );
        assert_eq!(
            r("POST", "/v1/responses/resp_1/cancel"),
            Some((Endpoint::ResponseCancel, id))
        );
        assert_eq!(r("GET", "/v1/responses"), Some((Endpoint::NotFound, None)));
        assert_eq!(
            r("PUT", "/v1/responses/x"),
            Some((Endpoint::NotFound, None))
        );
        assert_eq!(
            r("GET", "/v1/responses/x/y/z"),
            Some((Endpoint::NotFound, None))
        );
        assert_eq!(r("POST", "/v1/chat/completions"), None);
    }
}
