//! Which client request headers reach a provider, and which provider response headers reach
//! the client.
//!
//! Requests: an allow-list. The gateway's built-in list ([`FORWARDED`], plus
//! [`ANTHROPIC_CLIENT_HEADERS`] on the Anthropic routes to a backend that speaks Anthropic)
//! and the provider's precomputed `forward_headers`; every other client header stays at
//! the gateway (cookies, `openai-organization`, `x-forwarded-*`, the client's credentials,
//! hop-by-hop and framing headers, `accept-encoding`, …). The gateway then sets its own.
//!
//! Responses: an allow-list too ([`RETURNED`]; the upstream's request id is returned as
//! [`X_UPSTREAM_REQUEST_ID`]): nothing that reveals the provider account, its region,
//! deployment or gateway, nor a redirect target, reaches the client.
//!
//! Both filters remove entries in place: no header is copied or re-serialised. A removed
//! name is removed by `HeaderName` (a copy of the enum for the standard names, a reference
//! count for the others), so neither of Pingora's two maps parses it again.

use super::ctx::Operation;
use super::translation::Translation;
use http::header::{
    ACCEPT, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, TRANSFER_ENCODING,
    USER_AGENT,
};
use http::{HeaderMap, HeaderName};
use pingora_http::{RequestHeader, ResponseHeader};

/// Client headers every upstream request may carry.
pub static FORWARDED: [HeaderName; 4] = [
    CONTENT_TYPE,
    ACCEPT,
    USER_AGENT,
    HeaderName::from_static("openai-beta"),
];

/// Anthropic client headers, forwarded on `/v1/messages` and `/v1/messages/count_tokens`
/// to backends that speak Anthropic (never to an OpenAI-family backend a Messages request
/// is translated for, nor on the OpenAI routes unless the provider lists them).
pub static ANTHROPIC_CLIENT_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
];

/// Upstream response headers an answer may carry to the client: the content type, retry
/// hints and OpenAI's processing time, and the framing of a body passed through unchanged
/// (`content-length`, `transfer-encoding`, `content-encoding`).
pub static RETURNED: [HeaderName; 7] = [
    CONTENT_TYPE,
    RETRY_AFTER,
    HeaderName::from_static("retry-after-ms"),
    HeaderName::from_static("openai-processing-ms"),
    CONTENT_LENGTH,
    TRANSFER_ENCODING,
    CONTENT_ENCODING,
];

/// The upstream's request id headers (OpenAI `x-request-id`, Anthropic `request-id`),
/// returned as [`X_UPSTREAM_REQUEST_ID`] (the answer's `x-request-id` is the gateway's).
static UPSTREAM_REQUEST_IDS: [HeaderName; 2] = [
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("request-id"),
];

/// The header carrying the upstream's own request id back to the client.
pub const X_UPSTREAM_REQUEST_ID: &str = "x-upstream-request-id";

/// What happens to the client's [`ANTHROPIC_CLIENT_HEADERS`] on one upstream request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnthropicHeaders {
    /// Forwarded: an Anthropic route served by a backend that speaks Anthropic.
    Forward,
    /// Forwarded only when the provider lists them in `forward_headers` (the OpenAI routes).
    IfListed,
    /// Never forwarded: a Messages request translated for an OpenAI-family backend, which
    /// they mean nothing to.
    Drop,
}

/// What one upstream request may carry of the client's headers.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    pub anthropic: AnthropicHeaders,
    /// The provider's `forward_headers`.
    pub provider: &'a [HeaderName],
}

impl<'a> Forwarding<'a> {
    /// The rule for an attempt of `op` sent with `translation` to a provider whose
    /// `forward_headers` are `provider`.
    pub fn for_attempt(
        op: Operation,
        translation: Translation,
        provider: &'a [HeaderName],
    ) -> Self {
        let anthropic = match (op, translation) {
            (_, Translation::MessagesToChat) => AnthropicHeaders::Drop,
            (Operation::Messages | Operation::CountTokens, _) => AnthropicHeaders::Forward,
            _ => AnthropicHeaders::IfListed,
        };
        Forwarding {
            anthropic,
            provider,
        }
    }

    /// Whether the client header `name` may reach the provider.
    pub fn allows(&self, name: &HeaderName) -> bool {
        if FORWARDED.contains(name) {
            return true;
        }
        if ANTHROPIC_CLIENT_HEADERS.contains(name) {
            return match self.anthropic {
                AnthropicHeaders::Forward => true,
                AnthropicHeaders::IfListed => self.provider.contains(name),
                AnthropicHeaders::Drop => false,
            };
        }
        self.provider.contains(name)
    }
}

/// Removes every client header `rule` does not allow from the upstream request, except
/// the names in `overwritten`: headers the caller sets right after, whatever the client
/// sent (`Host`, `Content-Length`). Those keep their place and get the caller's value in
/// place, which is cheaper than removing them from both of Pingora's maps and adding them
/// again; the caller must set every one of them.
pub fn retain_forwarded(up: &mut RequestHeader, rule: &Forwarding<'_>, overwritten: &[HeaderName]) {
    remove_where(up, |n| !rule.allows(n) && !overwritten.contains(n));
}

/// Keeps only the [`RETURNED`] headers of an upstream answer's head, and its request id
/// (the first of `x-request-id`, `request-id`) as [`X_UPSTREAM_REQUEST_ID`]. Code that
/// reads other upstream headers (provider rate limits) must run before; the gateway's own
/// headers are added after.
pub fn retain_returned(resp: &mut ResponseHeader) -> pingora_error::Result<()> {
    let upstream_id = UPSTREAM_REQUEST_IDS
        .iter()
        .find_map(|n| resp.headers.get(n))
        .cloned();
    remove_where(resp, |n| !RETURNED.contains(n));
    if let Some(id) = upstream_id {
        resp.insert_header(X_UPSTREAM_REQUEST_ID, id)?;
    }
    Ok(())
}

/// A Pingora message head whose headers can be removed by name (keeping its case map in
/// step).
trait Head {
    fn map(&self) -> &HeaderMap;
    fn remove(&mut self, name: &HeaderName);
}

impl Head for RequestHeader {
    fn map(&self) -> &HeaderMap {
        &self.headers
    }
    fn remove(&mut self, name: &HeaderName) {
        self.remove_header(name);
    }
}

impl Head for ResponseHeader {
    fn map(&self) -> &HeaderMap {
        &self.headers
    }
    fn remove(&mut self, name: &HeaderName) {
        self.remove_header(name);
    }
}

/// Removes every header (all values) whose name `drop` selects. Each round finds one such
/// name, takes it out of the map's borrow (a clone: no allocation for a standard name) and
/// removes it; the rounds are bounded by the number of names, so a name that would not go
/// away cannot loop.
fn remove_where<H: Head>(h: &mut H, drop: impl Fn(&HeaderName) -> bool) {
    for _ in 0..h.map().keys_len() {
        let Some(name) = h.map().keys().find(|n| drop(n)).cloned() else {
            return;
        };
        h.remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    /// The header names, sorted (removal does not keep the map's order; nothing needs it).
    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut v: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        v.sort_unstable();
        v
    }

    const CLIENT: [(&str, &str); 14] = [
        ("Host", "gw"),
        ("Authorization", "Bearer tok"),
        ("Content-Type", "application/json"),
        ("Accept", "text/event-stream"),
        ("User-Agent", "sdk/1"),
        ("OpenAI-Beta", "assistants=v2"),
        ("OpenAI-Organization", "org-client"),
        ("Cookie", "a=b"),
        ("Cookie", "c=d"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "x"),
        ("X-Custom", "1"),
        (
            "X-A-Header-Name-Longer-Than-Sixty-Four-Bytes-Which-Takes-The-Slow-Path",
            "1",
        ),
    ];

    #[test]
    fn only_allowed_client_headers_remain() {
        let mut up = request(&CLIENT);
        let rule = Forwarding::for_attempt(Operation::Chat, Translation::None, &[]);
        retain_forwarded(&mut up, &rule, &[]);
        assert_eq!(
            names(&up.headers),
            ["accept", "content-type", "openai-beta", "user-agent"]
        );
        // the case map follows: the wire form has only those, in the client's case
        let mut wire = Vec::new();
        up.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert!(wire.contains("OpenAI-Beta: assistants=v2"), "{wire}");
        assert!(
            !wire.contains("Cookie") && !wire.contains("X-Custom"),
            "{wire}"
        );
    }

    #[test]
    fn overwritten_headers_keep_their_place_and_get_the_new_value() {
        let mut up = request(&CLIENT);
        let rule = Forwarding::for_attempt(Operation::Chat, Translation::None, &[]);
        retain_forwarded(&mut up, &rule, &[http::header::HOST]);
        assert_eq!(
            names(&up.headers),
            [
                "accept",
                "content-type",
                "host",
                "openai-beta",
                "user-agent"
            ]
        );
        up.insert_header(http::header::HOST, "provider.example")
            .unwrap();
        let mut wire = Vec::new();
        up.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert!(wire.starts_with("Host: provider.example\r\n"), "{wire}");
        assert!(!wire.contains("gw"), "{wire}");
    }

    #[test]
    fn anthropic_and_provider_headers() {
        let custom = [
            HeaderName::from_static("x-custom"),
            HeaderName::from_static("anthropic-beta"),
        ];
        let mut up = request(&CLIENT);
        let rule = Forwarding::for_attempt(Operation::Messages, Translation::None, &custom[..1]);
        retain_forwarded(&mut up, &rule, &[]);
        assert_eq!(
            names(&up.headers),
            [
                "accept",
                "anthropic-beta",
                "anthropic-version",
                "content-type",
                "openai-beta",
                "user-agent",
                "x-custom"
            ]
        );
        // a provider may list an Anthropic header for the OpenAI routes ...
        let rule = Forwarding::for_attempt(Operation::Chat, Translation::ChatToMessages, &custom);
        assert!(rule.allows(&custom[1]));
        assert!(!rule.allows(&ANTHROPIC_CLIENT_HEADERS[0]));
        // ... but a translated Messages request never carries them
        let rule =
            Forwarding::for_attempt(Operation::Messages, Translation::MessagesToChat, &custom);
        assert_eq!(rule.anthropic, AnthropicHeaders::Drop);
        assert!(!rule.allows(&custom[1]));
        assert!(!rule.allows(&ANTHROPIC_CLIENT_HEADERS[0]));
        assert!(rule.allows(&custom[0]));
        let rule = Forwarding::for_attempt(Operation::CountTokens, Translation::None, &[]);
        assert!(rule.allows(&ANTHROPIC_CLIENT_HEADERS[1]));
    }

    #[test]
    fn only_returned_upstream_headers_remain() {
        let mut resp = ResponseHeader::build(302, None).unwrap();
        for (n, v) in [
            ("Content-Type", "application/json"),
            ("Content-Length", "2"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("OpenAI-Organization", "org-x"),
            ("openai-project", "proj"),
            ("anthropic-organization-id", "uuid"),
            ("x-ratelimit-remaining-requests", "0"),
            ("X-RateLimit-Reset-Tokens", "1s"),
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("retry-after", "1"),
            ("retry-after-ms", "20"),
            ("request-id", "req_anthropic"),
            ("x-request-id", "req_openai"),
            ("openai-processing-ms", "12"),
            ("x-ms-region", "East US"),
            ("azureml-model-deployment", "gpt-4o-prod-eastus"),
            ("apim-request-id", "5f0c"),
            ("Location", "https://internal.example/v1"),
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("Strict-Transport-Security", "max-age=1"),
        ] {
            resp.append_header(n.to_string(), v).unwrap();
        }
        retain_returned(&mut resp).unwrap();
        assert_eq!(
            names(&resp.headers),
            [
                "content-length",
                "content-type",
                "openai-processing-ms",
                "retry-after",
                "retry-after-ms",
                "x-upstream-request-id"
            ]
        );
        // OpenAI's name first when both came
        assert_eq!(resp.headers[X_UPSTREAM_REQUEST_ID], "req_openai");
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("request-id", "req_anthropic").unwrap();
        retain_returned(&mut resp).unwrap();
        assert_eq!(resp.headers[X_UPSTREAM_REQUEST_ID], "req_anthropic");
    }
}
