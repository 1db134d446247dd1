//! What the mock reads from a request: the head facts that steer the answer
//! ([`Head`]: route and API, auth, `x-mock-*` overrides, connection close) and the
//! copy kept for tests ([`RecordedRequest`]).

use std::time::Duration;

use http::header::{AUTHORIZATION, CONNECTION};
use http::request::Parts;
use http::{HeaderValue, Method, Version};
use serde_json::{Map, Value};

use crate::azure::deployment_route;
use crate::gemini::{gemini_route, GeminiRoute};
use crate::limits::RateLimitHeaders;
use crate::route::{responses_route, route, Api, Endpoint};
use crate::{Mode, MAX_CHUNKS};

/// A copy of a request the mock received (see
/// [`MockProvider::last_request`](crate::MockProvider::last_request)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Request method, e.g. `POST`.
    pub method: String,
    /// Request target as sent (path and query), e.g. `/v1/chat/completions`.
    pub path: String,
    /// The query string (without `?`) when the target has one, e.g.
    /// `api-version=2024-10-21`; see [`query_param`](Self::query_param).
    pub query: Option<String>,
    /// All request headers, names lowercased, values lossily UTF-8; in arrival order,
    /// except that repeated names are grouped at their first occurrence.
    pub headers: Vec<(String, String)>,
    /// Decoded request body (chunked transfer coding removed).
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Value of query parameter `name` (exact name; first occurrence; not
    /// percent-decoded; `Some("")` for a bare `name` or `name=`).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        query_param(self.query.as_deref()?, name)
    }

    /// The copy of a request with head `parts` and (decoded) `body`.
    pub(crate) fn new(parts: &Parts, body: &[u8]) -> RecordedRequest {
        RecordedRequest {
            method: parts.method.as_str().to_string(),
            path: parts.uri.to_string(),
            query: parts.uri.query().map(str::to_string),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        }
    }
}

/// Per-request overrides read from `x-mock-*` headers (see
/// [`MockProvider`](crate::MockProvider)). The last occurrence of a header wins.
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    /// `x-mock-mode`.
    pub mode: Option<Mode>,
    /// `x-mock-delay-ms`: delay before the response head, on top of any mode.
    pub delay: Option<Duration>,
    /// `x-mock-chunks`, capped at [`MAX_CHUNKS`].
    pub chunks: Option<u32>,
    /// `x-mock-interval-ms`.
    pub interval: Option<Duration>,
    /// `x-mock-retry-after`: `Retry-After` value on 429s.
    pub retry_after: Option<String>,
    /// `x-mock-cache-read: N`: prompt tokens read from the provider's cache.
    pub cache_read: Option<u64>,
    /// `x-mock-cache-write: N`: prompt tokens written to the provider's cache.
    pub cache_write: Option<u64>,
    /// `x-mock-tool-use: NAME`: answer with a call of this tool of the request.
    pub tool_use: Option<String>,
    /// `x-mock-tool-input: {JSON object}`: the input of the tool call.
    pub tool_input: Option<Map<String, Value>>,
    /// `x-mock-limits: SPEC`: rate-limit headers on the answer, whatever it is.
    pub limits: Option<RateLimitHeaders>,
    /// Set when an override value does not parse: the request gets a 400 with this
    /// message.
    pub invalid: Option<String>,
}

/// The facts of a request head the answer depends on.
#[derive(Debug)]
pub(crate) struct Head {
    /// The route.
    pub endpoint: Endpoint,
    /// The API the request speaks (see [`Api`]).
    pub api: Api,
    /// Azure deployments form: the deployment named by the path.
    pub deployment: Option<String>,
    /// Responses API by-id routes: the response id named by the path.
    pub response_id: Option<String>,
    /// Gemini `…/models/{model}…` routes: the model named by the path.
    pub path_model: Option<String>,
    /// The query string (without `?`).
    pub query: Option<String>,
    /// The `api-version` query parameter.
    pub api_version: Option<String>,
    /// The request carries an `anthropic-version` header.
    pub anthropic_version: bool,
    /// The API key the request presents in its API's header(s), if any.
    pub key: Option<String>,
    /// The answer must close the connection (`Connection: close`, HTTP/1.0 without
    /// keep-alive, or `HEAD`).
    pub close: bool,
    /// The request carries the expected API key in a header of its API (always true
    /// when none is expected).
    pub auth_ok: bool,
    /// `x-mock-*` overrides.
    pub overrides: Overrides,
}

impl Head {
    /// Reads the head `parts`; `expected_key` is the API key requests must carry.
    pub(crate) fn read(parts: &Parts, expected_key: Option<&str>) -> Head {
        let (method, path) = (parts.method.as_str(), parts.uri.path());
        let (mut endpoint, deployment) = match deployment_route(method, path) {
            Some((d, ep)) => (ep, Some(d)),
            None => (route(method, path), None),
        };
        let mut response_id = None;
        if endpoint == Endpoint::NotFound && deployment.is_none() {
            if let Some((ep, id)) = responses_route(method, path) {
                (endpoint, response_id) = (ep, id);
            }
        }
        let anthropic_version = parts.headers.contains_key("anthropic-version");
        let mut path_model = None;
        let gemini = match gemini_route(method, path) {
            Some(GeminiRoute {
                endpoint: ep,
                model,
                explicit,
            }) if deployment.is_none()
                && response_id.is_none()
                && (explicit || (!anthropic_version && google_flavoured(parts))) =>
            {
                (endpoint, path_model) = (ep, model);
                true
            }
            _ => false,
        };
        let api = if gemini {
            Api::Gemini
        } else if deployment.is_some() {
            Api::Azure
        } else if path.ends_with("/messages")
            || path.ends_with("/messages/count_tokens")
            || (endpoint == Endpoint::Models && anthropic_version)
        {
            Api::Anthropic
        } else {
            Api::OpenAi
        };
        Head {
            endpoint,
            api,
            deployment,
            response_id,
            path_model,
            query: parts.uri.query().map(str::to_string),
            api_version: parts
                .uri
                .query()
                .and_then(|q| query_param(q, "api-version"))
                .map(str::to_string),
            anthropic_version,
            key: presented_key(parts, api).map(str::to_string),
            close: wants_close(parts),
            auth_ok: expected_key.is_none_or(|k| carries_key(parts, api, k)),
            overrides: read_overrides(parts),
        }
    }
}

impl Head {
    /// Value of query parameter `name` (see [`RecordedRequest::query_param`]).
    pub(crate) fn query_param(&self, name: &str) -> Option<&str> {
        query_param(self.query.as_deref()?, name)
    }
}

/// Value of parameter `name` in query string `query` (see
/// [`RecordedRequest::query_param`]).
pub(crate) fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        (n == name).then_some(v)
    })
}

/// Approximate size of the request head as it was sent (request line and header
/// lines), to hold requests to [`MAX_HEAD_BYTES`](crate::MAX_HEAD_BYTES).
pub(crate) fn head_size(parts: &Parts) -> usize {
    let target = parts.uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + parts.uri.authority().map_or(0, |a| a.as_str().len() + 8);
    let line = parts.method.as_str().len() + target + 12;
    let headers: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    line + headers + 2
}

/// A request to a Gemini-or-OpenAI ambiguous path (`GET …/models[/{model}]`) is Gemini's
/// when its path starts with `/v1beta/` (outside Google's `/openai/` endpoint) or it
/// presents a Google key (`x-goog-api-key`, `?key=`).
fn google_flavoured(parts: &Parts) -> bool {
    let path = parts.uri.path();
    (path.starts_with("/v1beta/") && !path.contains("/openai/"))
        || parts.headers.contains_key("x-goog-api-key")
        || parts
            .uri
            .query()
            .and_then(|q| query_param(q, "key"))
            .is_some()
}

fn header_str(v: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(v.as_bytes()).ok().map(str::trim)
}

fn has_token(v: &HeaderValue, token: &str) -> bool {
    header_str(v).is_some_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn wants_close(parts: &Parts) -> bool {
    let http10 = parts.version == Version::HTTP_10;
    // Answers to HEAD are closed so that a client that expects a body stays in sync.
    let head_method = parts.method == Method::HEAD;
    let mut close = http10 || head_method;
    for v in parts.headers.get_all(CONNECTION) {
        if has_token(v, "close") {
            close = true;
        } else if http10 && !head_method && has_token(v, "keep-alive") {
            close = false;
        }
    }
    close
}

/// The key of one header of `api`: `Authorization: Bearer key` (OpenAI), `x-api-key`
/// (OpenAI, Anthropic), `api-key` (OpenAI, Azure), `x-goog-api-key` (Gemini).
fn key_in<'p>(api: Api, name: &http::HeaderName, v: &'p HeaderValue) -> Option<&'p str> {
    match (api, name.as_str()) {
        (Api::OpenAi, "authorization") => header_str(v).and_then(|s| {
            let (scheme, rest) = s.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        }),
        (Api::OpenAi | Api::Anthropic, "x-api-key")
        | (Api::OpenAi | Api::Azure, "api-key")
        | (Api::Gemini, "x-goog-api-key") => header_str(v),
        _ => None,
    }
}

/// Some header of `api` carries `key` (Gemini: or the `key` query parameter).
fn carries_key(parts: &Parts, api: Api, key: &str) -> bool {
    parts
        .headers
        .iter()
        .any(|(name, v)| key_in(api, name, v) == Some(key))
        || (api == Api::Gemini && query_key(parts) == Some(key))
}

/// The `key` query parameter (Gemini's other place for the key), not percent-decoded.
fn query_key(parts: &Parts) -> Option<&str> {
    parts.uri.query().and_then(|q| query_param(q, "key"))
}

/// The first key a header of `api` presents (`Authorization` first for OpenAI; Gemini:
/// `x-goog-api-key`, else `?key=`).
fn presented_key(parts: &Parts, api: Api) -> Option<&str> {
    if api == Api::Gemini {
        let header = parts.headers.get("x-goog-api-key").and_then(header_str);
        return header.or_else(|| query_key(parts));
    }
    let auth = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| key_in(api, &AUTHORIZATION, v));
    auth.or_else(|| {
        parts
            .headers
            .iter()
            .find_map(|(name, v)| key_in(api, name, v))
    })
}

fn read_overrides(parts: &Parts) -> Overrides {
    let mut o = Overrides::default();
    for (name, v) in &parts.headers {
        let Some(key) = name.as_str().strip_prefix("x-mock-") else {
            continue;
        };
        let num = || header_str(v).and_then(|s| s.parse::<u64>().ok());
        match key {
            "mode" => match header_str(v).map(str::parse::<Mode>) {
                Some(Ok(m)) => o.mode = Some(m),
                Some(Err(e)) => o.invalid = Some(format!("x-mock-mode: {e}")),
                None => o.invalid = Some("x-mock-mode is not UTF-8".to_string()),
            },
            "delay-ms" => match num() {
                Some(ms) => o.delay = Some(Duration::from_millis(ms)),
                None => o.invalid = Some("invalid x-mock-delay-ms".to_string()),
            },
            "chunks" => match num() {
                Some(c) => o.chunks = Some(u32::try_from(c).unwrap_or(MAX_CHUNKS).min(MAX_CHUNKS)),
                None => o.invalid = Some("invalid x-mock-chunks".to_string()),
            },
            "interval-ms" => match num() {
                Some(ms) => o.interval = Some(Duration::from_millis(ms)),
                None => o.invalid = Some("invalid x-mock-interval-ms".to_string()),
            },
            "retry-after" => o.retry_after = header_str(v).map(str::to_string),
            "cache-read" => match num() {
                Some(n) => o.cache_read = Some(n),
                None => o.invalid = Some("invalid x-mock-cache-read".to_string()),
            },
            "cache-write" => match num() {
                Some(n) => o.cache_write = Some(n),
                None => o.invalid = Some("invalid x-mock-cache-write".to_string()),
            },
            "tool-use" => match header_str(v).filter(|s| !s.is_empty()) {
                Some(name) => o.tool_use = Some(name.to_string()),
                None => o.invalid = Some("invalid x-mock-tool-use".to_string()),
            },
            "tool-input" => match serde_json::from_slice::<Value>(v.as_bytes()) {
                Ok(Value::Object(m)) => o.tool_input = Some(m),
                _ => o.invalid = Some("x-mock-tool-input is not a JSON object".to_string()),
            },
            "limits" => match header_str(v).map(str::parse::<RateLimitHeaders>) {
                Some(Ok(l)) => o.limits = Some(l),
                Some(Err(e)) => o.invalid = Some(format!("x-mock-limits: {e}")),
                None => o.invalid = Some("x-mock-limits is not UTF-8".to_string()),
            },
            _ => {}
        }
    }
    o
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parts(req: http::request::Builder) -> Parts {
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn overrides_and_auth() {
        let p = parts(
            http::Request::post("/v1/chat/completions?x=1")
                .header("X-Mock-Mode", "close:2")
                .header("x-mock-chunks", "9999999999")
                .header("x-mock-interval-ms", "7")
                .header("x-mock-retry-after", " 5 ")
                .header("api-key", "k"),
        );
        let h = Head::read(&p, Some("k"));
        assert_eq!(h.endpoint, Endpoint::Chat);
        assert!(h.auth_ok && !h.close);
        assert_eq!(
            h.overrides.mode,
            Some(Mode::CloseMidStream { after_chunks: 2 })
        );
        assert_eq!(h.overrides.chunks, Some(MAX_CHUNKS));
        assert_eq!(h.overrides.interval, Some(Duration::from_millis(7)));
        assert_eq!(h.overrides.retry_after.as_deref(), Some("5"));
        assert!(h.overrides.invalid.is_none());

        let p = parts(
            http::Request::get("/v1/models")
                .header("authorization", "Bearer nope")
                .header("x-mock-delay-ms", "soon"),
        );
        let h = Head::read(&p, Some("k"));
        assert!(!h.auth_ok);
        assert!(h.overrides.invalid.is_some());
        assert!(Head::read(&p, None).auth_ok);
    }

    #[test]
    fn api_keys_and_new_overrides() {
        let p = parts(
            http::Request::post("/v1/messages?beta=true")
                .header("authorization", "Bearer k")
                .header("api-key", "k")
                .header("anthropic-version", "2023-06-01")
                .header("x-mock-cache-read", "12")
                .header("x-mock-cache-write", "3")
                .header("x-mock-tool-use", "get_weather")
                .header("x-mock-tool-input", r#"{"city":"Paris"}"#)
                .header("x-mock-limits", "tokens:1s"),
        );
        let h = Head::read(&p, Some("k"));
        assert_eq!((h.endpoint, h.api), (Endpoint::Messages, Api::Anthropic));
        assert!(h.anthropic_version);
        assert!(!h.auth_ok, "Anthropic takes the key from x-api-key only");
        assert_eq!(h.key, None);
        let o = &h.overrides;
        assert_eq!((o.cache_read, o.cache_write), (Some(12), Some(3)));
        assert_eq!(o.tool_use.as_deref(), Some("get_weather"));
        assert_eq!(o.tool_input.as_ref().unwrap()["city"], "Paris");
        assert_eq!(o.limits.as_ref().unwrap().to_string(), "tokens:1s");
        assert!(o.invalid.is_none());

        let p = parts(
            http::Request::post("/openai/deployments/dep/embeddings?x=1&api-version=2024-10-21")
                .header("authorization", "Bearer k")
                .header("api-key", "k2"),
        );
        let h = Head::read(&p, Some("k"));
        assert_eq!((h.endpoint, h.api), (Endpoint::Embeddings, Api::Azure));
        assert_eq!(h.deployment.as_deref(), Some("dep"));
        assert_eq!(h.api_version.as_deref(), Some("2024-10-21"));
        assert!(!h.auth_ok, "Azure takes the key from api-key only");
        assert_eq!(h.key.as_deref(), Some("k2"));

        let p = parts(http::Request::get("/v1/models").header("anthropic-version", "x"));
        assert_eq!(Head::read(&p, None).api, Api::Anthropic);
        let h = Head::read(&parts(http::Request::get("/v1/messages")), None);
        assert_eq!((h.endpoint, h.api), (Endpoint::NotFound, Api::Anthropic));
        let p = parts(http::Request::get("/v1/models").header("x-api-key", "z"));
        let h = Head::read(&p, None);
        assert_eq!((h.api, h.key.as_deref()), (Api::OpenAi, Some("z")));

        for bad in [
            ("x-mock-cache-read", "many"),
            ("x-mock-tool-input", "[1]"),
            ("x-mock-tool-use", ""),
            ("x-mock-limits", "bytes"),
        ] {
            let p = parts(http::Request::post("/v1/chat/completions").header(bad.0, bad.1));
            assert!(Head::read(&p, None).overrides.invalid.is_some(), "{bad:?}");
        }
        assert_eq!(query_param("a=1&b&c=", "b"), Some(""));
        assert_eq!(query_param("a=1&b&c=", "c"), Some(""));
        assert_eq!(query_param("a=1", "z"), None);
    }

    #[test]
    fn connection_close_rules() {
        let close = |b: http::request::Builder| Head::read(&parts(b), None).close;
        assert!(!close(http::Request::get("/")));
        assert!(close(http::Request::get("/").header("connection", "Close")));
        assert!(close(http::Request::head("/")));
        assert!(close(http::Request::get("/").version(Version::HTTP_10)));
        assert!(!close(
            http::Request::get("/")
                .version(Version::HTTP_10)
                .header("connection", "keep-alive")
        ));
    }
}
