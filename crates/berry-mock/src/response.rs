//! Building responses: status (with the mock's reason phrases), the headers every
//! answer carries (`x-mock-name`, `Connection: close` when the request asked for it,
//! the provider headers of the request: rate-limit and account headers), and the three
//! answer shapes (JSON, error in the route's dialect, event stream).

use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderName, HeaderValue, Response, StatusCode};
use hyper::ext::ReasonPhrase;

use crate::body::MockBody;
use crate::faults::FixedBody;
use crate::route::Api;
use crate::{anthropic, azure, gemini, openai};

/// The `x-mock-name` response header.
pub(crate) const X_MOCK_NAME: HeaderName = HeaderName::from_static("x-mock-name");

/// Reason phrase of the status line: the usual one for the statuses the mock
/// commonly sends, `Mock Status` for any other.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Mock Status",
    }
}

/// The header value `x-mock-name` carries for a mock called `name` (characters other
/// than visible ASCII and space dropped).
pub(crate) fn name_header(name: &str) -> Option<HeaderValue> {
    let clean: String = name
        .chars()
        .filter(|c| *c == ' ' || c.is_ascii_graphic())
        .collect();
    HeaderValue::from_str(&clean).ok()
}

/// Appends the headers that reveal a provider account: `openai-organization`,
/// `openai-project`, `anthropic-organization-id` and a `set-cookie`.
pub(crate) fn push_account_headers(out: &mut Vec<(HeaderName, HeaderValue)>) {
    for (n, v) in [
        ("openai-organization", "org-mock-account"),
        ("openai-project", "proj_mock_account"),
        (
            "anthropic-organization-id",
            "5f0c3a9e-2b1d-4c7a-9e8f-0a1b2c3d4e5f",
        ),
        (
            "set-cookie",
            "__cf_bm=mock-account-cookie; path=/; HttpOnly; Secure; SameSite=None",
        ),
    ] {
        out.push((HeaderName::from_static(n), HeaderValue::from_static(v)));
    }
}

/// What every answer to one request shares.
#[derive(Clone, Copy)]
pub(crate) struct Reply<'a> {
    /// `x-mock-name` value.
    pub name: Option<&'a HeaderValue>,
    /// Send `Connection: close` (hyper then closes after the answer).
    pub close: bool,
    /// The API of the route: the shape of error bodies.
    pub api: Api,
    /// Headers added to the answer (provider rate-limit / account headers).
    pub extra: &'a [(HeaderName, HeaderValue)],
}

impl Reply<'_> {
    /// A response with `status` (1xx and invalid codes become 500), the common
    /// headers and `content_type`.
    fn response(
        &self,
        status: u16,
        content_type: &'static str,
        body: MockBody,
    ) -> Response<MockBody> {
        let status = match StatusCode::from_u16(status) {
            Ok(s) if !s.is_informational() => s,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        if status != StatusCode::OK {
            resp.extensions_mut().insert(ReasonPhrase::from_static(
                reason(status.as_u16()).as_bytes(),
            ));
        }
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(name) = self.name {
            h.insert(X_MOCK_NAME, name.clone());
        }
        if self.close {
            h.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        for (n, v) in self.extra {
            h.append(n.clone(), v.clone());
        }
        resp
    }

    /// A JSON answer. `body.announced_len`, when set, is sent as `Content-Length`
    /// (otherwise hyper sends the body's real length).
    pub(crate) fn json(&self, status: u16, body: FixedBody) -> Response<MockBody> {
        let mut resp = self.response(status, "application/json", body.body);
        if let Some(len) = body.announced_len {
            resp.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        resp
    }

    /// An error answer in the shape of the route's API (OpenAI
    /// [`openai::error_body`], Anthropic [`anthropic::error_body`], Azure
    /// [`azure::error_body`], Gemini [`gemini::error_body`]), with `Retry-After: retry_after` when given (control
    /// characters dropped).
    pub(crate) fn error(
        &self,
        status: u16,
        message: &str,
        retry_after: Option<&str>,
    ) -> Response<MockBody> {
        let body = match self.api {
            Api::OpenAi => openai::error_body(status, message),
            Api::Anthropic => anthropic::error_body(status, message),
            Api::Azure => azure::error_body(status, message),
            Api::Gemini => gemini::error_body(status, message),
        };
        let mut resp = self.response(status, "application/json", MockBody::full(body));
        if let Some(ra) = retry_after {
            let clean: Vec<u8> = ra
                .bytes()
                .filter(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f))
                .collect();
            if let Ok(v) = HeaderValue::from_bytes(&clean) {
                resp.headers_mut().insert(RETRY_AFTER, v);
            }
        }
        resp
    }

    /// A 200 `application/json` answer playing `body` (chunked; a JSON array sent
    /// element by element).
    pub(crate) fn json_stream(&self, body: MockBody) -> Response<MockBody> {
        self.response(200, "application/json", body)
    }

    /// A 200 `text/event-stream` answer playing `body` (chunked).
    pub(crate) fn event_stream(&self, body: MockBody) -> Response<MockBody> {
        let mut resp = self.response(200, "text/event-stream", body);
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn statuses_headers_and_reasons() {
        let name = name_header("mock\u{e9} a\n").unwrap();
        assert_eq!(name, "mock a");
        let r = Reply {
            name: Some(&name),
            close: true,
            api: Api::OpenAi,
            extra: &[],
        };
        let resp = r.error(429, "slow down", Some("7\r\n"));
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[RETRY_AFTER], "7");
        assert_eq!(resp.headers()[CONNECTION], "close");
        assert_eq!(resp.headers()[X_MOCK_NAME], "mock a");
        assert_eq!(
            resp.extensions().get::<ReasonPhrase>().unwrap().as_bytes(),
            b"Too Many Requests"
        );
        let resp = Reply {
            name: None,
            close: false,
            api: Api::OpenAi,
            extra: &[],
        }
        .error(418, "x", None);
        assert_eq!(
            resp.extensions().get::<ReasonPhrase>().unwrap().as_bytes(),
            b"Mock Status"
        );
        assert!(resp.headers().get(CONNECTION).is_none());
        assert_eq!(
            Reply {
                name: None,
                close: false,
                api: Api::OpenAi,
                extra: &[],
            }
            .error(101, "x", None)
            .status(),
            500
        );
    }

    #[test]
    fn dialect_errors_and_extra_headers() {
        let mut extra = Vec::new();
        push_account_headers(&mut extra);
        let r = Reply {
            name: None,
            close: false,
            api: Api::Anthropic,
            extra: &extra,
        };
        let resp = r.error(529, "Overloaded", None);
        assert_eq!(resp.headers()["openai-organization"], "org-mock-account");
        assert!(resp.headers().contains_key("set-cookie"));
        assert_eq!(
            resp.extensions().get::<ReasonPhrase>().unwrap().as_bytes(),
            b"Overloaded"
        );
    }
}
