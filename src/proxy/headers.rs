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
//! Both filters copy the kept entries (names and values by reference count) into a head of
//! their own, sized for the headers still to come and without a case map: the head they
//! start from carried the sender's header case in a second map, and both maps grew as
//! headers were added, for as long as the answer streams. Header names go out in lower
//! case.

use super::ctx::Operation;
use super::translation::Translation;
use http::header::{
    ACCEPT, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, TRANSFER_ENCODING,
    USER_AGENT,
};
use http::HeaderName;
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

/// The upstream request's head: `client`'s method, URI and version and the client headers
/// `rule` allows, in a head of its own with room for `room` more (the headers the gateway
/// sets), written in lower case (header names are case-insensitive). Pingora hands the
/// filter a clone of the client's head, with no spare capacity and the client's header case
/// in a second map: every header added grew both maps, for as long as the answer streams.
pub fn forwarded_head(
    client: &RequestHeader,
    rule: &Forwarding<'_>,
    room: usize,
) -> pingora_error::Result<RequestHeader> {
    let forwarded = || client.headers.iter().filter(|(n, _)| rule.allows(n));
    let size = forwarded().count() + room;
    let mut up = RequestHeader::build_no_case(client.method.clone(), b"/", Some(size))?;
    up.set_version(client.version);
    up.set_uri(client.uri.clone());
    for (name, value) in forwarded() {
        up.append_header(name.clone(), value.clone())?;
    }
    Ok(up)
}

/// Keeps only the [`RETURNED`] headers of an upstream answer's head, and its request id
/// (the first of `x-request-id`, `request-id`) as [`X_UPSTREAM_REQUEST_ID`], in a head of
/// their own with room for [`ROOM_AFTER_RETURNED`] more (written in lower case: header
/// names are case-insensitive). Code that reads other upstream headers (provider rate
/// limits) must run before; the gateway's own headers are added after.
pub fn retain_returned(resp: &mut ResponseHeader) -> pingora_error::Result<()> {
    let upstream_id = UPSTREAM_REQUEST_IDS
        .iter()
        .find_map(|n| resp.headers.get(n))
        .cloned();
    let returned = |n: &HeaderName| RETURNED.contains(n);
    let kept = resp.headers.iter().filter(|(n, _)| returned(n)).count();
    let room = kept + usize::from(upstream_id.is_some()) + ROOM_AFTER_RETURNED;
    let mut head = ResponseHeader::build_no_case(resp.status, Some(room))?;
    head.set_version(resp.version);
    for (name, value) in resp.headers.iter().filter(|(n, _)| returned(n)) {
        head.append_header(name.clone(), value.clone())?;
    }
    if let Some(id) = upstream_id {
        head.insert_header(X_UPSTREAM_REQUEST_ID, id)?;
    }
    *resp = head;
    Ok(())
}

/// Headers added to an answer's head after [`retain_returned`]: the gateway's own
/// (`x-request-id`, dropped tools, framing of a translated answer) and Pingora's
/// (`date`, `connection`, `transfer-encoding`), with one to spare.
pub const ROOM_AFTER_RETURNED: usize = 7;

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

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
        let client = request(&CLIENT);
        let rule = Forwarding::for_attempt(Operation::Chat, Translation::None, &[]);
        let up = forwarded_head(&client, &rule, 4).unwrap();
        assert_eq!(
            names(&up.headers),
            ["accept", "content-type", "openai-beta", "user-agent"]
        );
        assert_eq!(up.headers["openai-beta"], "assistants=v2");
        assert_eq!(
            (&up.method, up.uri.path()),
            (&client.method, client.uri.path())
        );
        // a head of its own: no case map, and room for the headers the gateway sets
        assert!(!up.has_case());
        assert!(up.headers.capacity() >= up.headers.len() + 4);
        let mut wire = Vec::new();
        up.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert!(wire.contains("openai-beta: assistants=v2"), "{wire}");
        assert!(
            !wire.contains("ookie") && !wire.contains("ustom") && !wire.contains("ost:"),
            "{wire}"
        );
    }

    #[test]
    fn anthropic_and_provider_headers() {
        let custom = [
            HeaderName::from_static("x-custom"),
            HeaderName::from_static("anthropic-beta"),
        ];
        let client = request(&CLIENT);
        let rule = Forwarding::for_attempt(Operation::Messages, Translation::None, &custom[..1]);
        let up = forwarded_head(&client, &rule, 0).unwrap();
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
        // a head of its own: no case map, and room for the headers still to come
        assert!(!resp.has_case());
        assert!(resp.headers.capacity() >= resp.headers.len() + ROOM_AFTER_RETURNED);
        let mut wire = Vec::new();
        resp.header_to_h1_wire(&mut wire);
        assert!(String::from_utf8(wire)
            .unwrap()
            .contains("retry-after-ms: "));
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("request-id", "req_anthropic").unwrap();
        retain_returned(&mut resp).unwrap();
        assert_eq!(resp.headers[X_UPSTREAM_REQUEST_ID], "req_anthropic");
    }
}
