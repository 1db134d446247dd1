//! [`MockOptions`]: how a mock is configured at start.

use std::net::SocketAddr;
use std::time::Duration;

use crate::Mode;

/// Configuration of a [`MockProvider`](crate::MockProvider).
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// Address to bind; default `127.0.0.1:0` (any free port).
    pub listen: SocketAddr,
    /// Model ids listed by `GET …/models`; the first one is also the default `model`
    /// echoed when a request names none.
    pub models: Vec<String>,
    /// Content chunks per streamed answer (= `completion_tokens`); default 5.
    pub chunks: u32,
    /// Pause between two streamed content events; default 20 ms.
    pub chunk_interval: Duration,
    /// When `Some(k)`, requests must carry the key in a header of their API, otherwise
    /// they get a 401 in their API's error shape: OpenAI routes `Authorization: Bearer
    /// k`, `x-api-key: k` or `api-key: k`; Anthropic routes (`…/messages*`, `…/models`
    /// with `anthropic-version`) `x-api-key: k`; Azure deployment routes `api-key: k`;
    /// Gemini routes `x-goog-api-key: k` or `?key=k` (a wrong key: Google's 400
    /// `API_KEY_INVALID`; none: 403 `PERMISSION_DENIED`).
    pub expected_api_key: Option<String>,
    /// Refuse Anthropic requests (`…/messages`, `…/messages/count_tokens`) without an
    /// `anthropic-version` header with a 400 `invalid_request_error`, as the real API
    /// does; default false (such requests get the mock's lenient historic answer).
    pub require_anthropic_version: bool,
    /// Put the provider-account headers (`openai-organization`, `openai-project`,
    /// `anthropic-organization-id`, `set-cookie`) on every answer, errors included;
    /// default false. See also [`Mode::AccountHeaders`].
    pub account_headers: bool,
    /// Keep a copy of the last request for
    /// [`MockProvider::last_request`](crate::MockProvider::last_request); default
    /// true. Turn it off for benchmarks.
    pub record_requests: bool,
    /// Initial fault mode; default [`Mode::Ok`].
    pub mode: Mode,
    /// Simulate Anthropic prompt caching per account (API key): a Messages request with
    /// `cache_control` markers reports `cache_creation_input_tokens` for a prefix this
    /// account sends the first time and `cache_read_input_tokens` for one it sent before
    /// (see the `prompt_cache` module); `x-mock-cache-*` headers still win. Default false
    /// (cache tokens only from those headers).
    pub prompt_cache: bool,
    /// Name of this mock: sent as `system_fingerprint` in chat / completion answers
    /// and as the `x-mock-name` response header, so tests can tell mocks apart.
    pub name: String,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            models: vec![
                "gpt-4o-mini".to_string(),
                "gpt-4o".to_string(),
                "text-embedding-3-small".to_string(),
            ],
            chunks: 5,
            chunk_interval: Duration::from_millis(20),
            expected_api_key: None,
            require_anthropic_version: false,
            account_headers: false,
            record_requests: true,
            mode: Mode::Ok,
            prompt_cache: false,
            name: "mock".to_string(),
        }
    }
}
