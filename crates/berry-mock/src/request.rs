//! What the mock reads from a request: the head facts that steer the answer
//! ([`Head`]: route, auth, `x-mock-*` overrides, connection close) and the copy kept
//! for tests ([`RecordedRequest`]).

use std::time::Duration;

use http::header::{AUTHORIZATION, CONNECTION};
use http::request::Parts;
use http::{HeaderValue, Method, Version};

use crate::route::{route, Endpoint};
use crate::{Mode, MAX_CHUNKS};

/// A copy of a request the mock received (see
/// [`MockProvider::last_request`](crate::MockProvider::last_request)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Request method, e.g. `POST`.
    pub method: String,
    /// Request target as sent (path and query), e.g. `/v1/chat/completions`.
    pub path: String,
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

    /// The copy of a request with head `parts` and (decoded) `body`.
    pub(crate) fn new(parts: &Parts, body: &[u8]) -> RecordedRequest {
        RecordedRequest {
            method: parts.method.as_str().to_string(),
            path: parts.uri.to_string(),
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
    /// Set when an override value does not parse: the request gets a 400 with this
    /// message.
    pub invalid: Option<String>,
}

/// The facts of a request head the answer depends on.
#[derive(Debug)]
pub(crate) struct Head {
    /// The route.
    pub endpoint: Endpoint,
    /// The answer must close the connection (`Connection: close`, HTTP/1.0 without
    /// keep-alive, or `HEAD`).
    pub close: bool,
    /// The request carries the expected API key (always true when none is expected).
    pub auth_ok: bool,
    /// `x-mock-*` overrides.
    pub overrides: Overrides,
}

impl Head {
    /// Reads the head `parts`; `expected_key` is the API key requests must carry.
    pub(crate) fn read(parts: &Parts, expected_key: Option<&str>) -> Head {
        Head {
            endpoint: route(parts.method.as_str(), parts.uri.path()),
            close: wants_close(parts),
            auth_ok: expected_key.is_none_or(|k| carries_key(parts, k)),
            overrides: read_overrides(parts),
        }
    }
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

/// `Authorization: Bearer key`, `x-api-key: key` or `api-key: key`.
fn carries_key(parts: &Parts, key: &str) -> bool {
    parts.headers.iter().any(|(name, v)| {
        if *name == AUTHORIZATION {
            let given = header_str(v).and_then(|s| {
                let (scheme, rest) = s.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
            given == Some(key)
        } else if name.as_str() == "x-api-key" || name.as_str() == "api-key" {
            header_str(v) == Some(key)
        } else {
            false
        }
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
