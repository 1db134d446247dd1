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
    /// Anything else: a 404 with an OpenAI-shaped error body.
    NotFound,
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
}
