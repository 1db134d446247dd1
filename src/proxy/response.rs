//! The upstream response: retry-or-pass decision on the status line, and watching the body
//! (usage, end of stream, garbage) as it streams through unchanged.

use super::ctx::{Answer, BodyWatch, Proxied};
use super::decision::{decide, rule, Failure, Verdict, GARBAGE_MESSAGE, INVALID_JSON_MESSAGE};
use super::headers::strip_account_headers;
use super::translation::{wants_stream_usage, Translation};
use super::upstream::situation;
use crate::routing::Outcome;
use crate::translate::TokenUsage;
use crate::usage::Usage;
use bytes::Bytes;
use http::HeaderName;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use std::time::SystemTime;

/// Response headers not passed back to the client.
static DROPPED_RESPONSE_HEADERS: [HeaderName; 3] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Parses `Retry-After` (delay-seconds or HTTP-date) into milliseconds from now.
pub fn retry_after_ms(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value).ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some((secs * 1000.0) as u64);
        }
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

/// Handles upstream response headers. A failure status (5xx, 429) that [`decide`] says to
/// retry becomes an error carrying that verdict, so Pingora runs the next attempt;
/// anything else is let through to the client and starts the [`Answer`]. A head that
/// reaches the client (informational ones included) never carries the headers that reveal
/// the provider account ([`strip_account_headers`]); code that reads them (rate limits)
/// runs before the strip.
pub fn on_response_header(
    p: &mut Proxied,
    request_id: &str,
    started: std::time::Instant,
    h1_client: bool,
    resp: &mut ResponseHeader,
) -> Result<()> {
    let status = resp.status.as_u16();
    if status < 200 {
        strip_account_headers(resp);
        return Ok(()); // informational; the final header follows
    }
    let Some(attempt) = p.attempt.as_mut() else {
        return Err(Error::explain(
            ErrorType::InternalError,
            "response without an attempt",
        ));
    };
    attempt.watchdog = None;
    attempt.got_headers = true;
    let translation = attempt.translation;
    let ttfb = attempt.started.elapsed();
    attempt.state().observe_ttfb_ms(ttfb.as_secs_f64() * 1000.0);
    if crate::metrics::per_request() {
        crate::metrics::TTFB
            .with_label_values(&[&p.request.model.name, &attempt.backend.provider.id])
            .observe(ttfb.as_secs_f64());
    }
    let retry_after = resp
        .headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| retry_after_ms(v.as_bytes()));
    let outcome = Outcome::from_status(status, retry_after);
    if outcome != Outcome::Success {
        p.finish_attempt(outcome);
        let verdict = decide(Failure::Status(outcome), &situation(p, false, false));
        if verdict != Verdict::PassThrough {
            let e = Error::explain(ErrorType::HTTPStatus(status), "upstream failure status");
            return Err(rule(e, verdict));
        }
    }
    for h in &DROPPED_RESPONSE_HEADERS {
        resp.remove_header(h);
    }
    strip_account_headers(resp);
    resp.insert_header(super::upstream::X_REQUEST_ID.clone(), request_id)?;
    let sse = is_event_stream(resp);
    let include_usage =
        translation == Translation::ChatToMessages && sse && wants_stream_usage(&p.request.body);
    let watch = match translation.answer(status, sse, include_usage) {
        Some(t) => {
            translated_head(resp, translation.client_status(status), h1_client)?;
            BodyWatch::Translate(Box::new(t))
        }
        None => body_watch(status, sse, resp),
    };
    p.answer = Some(Answer {
        ttfb: started.elapsed(),
        watch,
        usage: None,
        sse,
        held: None,
        complete: false,
    });
    Ok(())
}

/// The head of a translated answer: the client's status, no `Content-Length` (the body
/// changes size), chunked to an HTTP/1.1 client.
fn translated_head(resp: &mut ResponseHeader, status: u16, h1_client: bool) -> Result<()> {
    resp.set_status(status)?;
    resp.remove_header(&http::header::CONTENT_LENGTH);
    if h1_client {
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(())
}

/// Passthrough usage in the gateway's token partition.
fn tokens(u: Usage) -> TokenUsage {
    TokenUsage {
        input: u.input_tokens,
        output: u.output_tokens,
        cache_read: u.cache_read_tokens,
        cache_write: u.cache_write_tokens,
    }
}

fn is_event_stream(resp: &ResponseHeader) -> bool {
    resp.headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| starts_with_ci(v.as_bytes(), b"text/event-stream"))
}

/// How a passed-through response body is watched: usage and validity of 2xx JSON, usage
/// and breakage of event streams; nothing for compressed or other bodies.
fn body_watch(status: u16, sse: bool, resp: &ResponseHeader) -> BodyWatch {
    let encoded = resp
        .headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let content_type = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes())
        .unwrap_or(b"");
    if encoded {
        BodyWatch::None
    } else if sse {
        BodyWatch::Sse(Box::default())
    } else if status < 300 && status != 204 && status != 205 && contains_ci(content_type, b"json") {
        BodyWatch::Json(Box::default())
    } else {
        BodyWatch::None
    }
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn contains_ci(s: &[u8], needle: &[u8]) -> bool {
    s.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Observes one upstream body chunk of the answer. A body found broken (an event stream
/// with garbage, a 2xx JSON answer that is not one complete JSON value) is dropped and
/// turned into an error carrying [`Failure::InvalidBody`]; the failure hook decides.
pub fn on_body_chunk(answer: &mut Answer, body: &mut Option<Bytes>, end: bool) -> Result<()> {
    let broken = match &mut answer.watch {
        BodyWatch::None => None,
        BodyWatch::Json(scan) => {
            if let Some(b) = body {
                scan.feed(b);
            }
            if scan.is_invalid() || (end && !scan.is_complete()) {
                Some(INVALID_JSON_MESSAGE)
            } else {
                if end {
                    answer.usage = scan.usage().map(tokens);
                }
                None
            }
        }
        BodyWatch::Sse(scan) => {
            let bad = body.as_ref().is_some_and(|b| scan.feed(b).is_err());
            if let Some(u) = scan.usage() {
                answer.usage = Some(tokens(u));
            }
            bad.then_some(GARBAGE_MESSAGE)
        }
        BodyWatch::Translate(t) => match t.chunk(body.as_deref(), end) {
            Ok(out) => {
                *body = out;
                if let Some(u) = t.usage() {
                    answer.usage = Some(u);
                }
                None
            }
            Err(broken) => {
                answer.held = (!broken.pending.is_empty()).then(|| Bytes::from(broken.pending));
                Some(broken.reason.0)
            }
        },
    };
    if let Some(message) = broken {
        *body = None;
        return Err(Error::because(
            ErrorType::Custom("upstream_invalid_body"),
            "upstream body contradicts its head",
            InvalidBody(message),
        ));
    }
    if end {
        answer.complete = true;
    }
    Ok(())
}

/// The cause of an `upstream_invalid_body` error: which [`Failure::InvalidBody`] it is.
#[derive(Debug, Clone, Copy)]
pub struct InvalidBody(pub &'static str);

impl std::fmt::Display for InvalidBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidBody {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after_ms(b"2"), Some(2000));
        assert_eq!(retry_after_ms(b" 0 "), Some(0));
        assert_eq!(retry_after_ms(b"1.5"), Some(1500));
        assert_eq!(retry_after_ms(b"soon"), None);
        let future = SystemTime::now() + std::time::Duration::from_secs(30);
        let v = httpdate::fmt_http_date(future);
        let ms = retry_after_ms(v.as_bytes()).unwrap();
        assert!((28_000..=30_000).contains(&ms), "{ms}");
        let past = httpdate::fmt_http_date(SystemTime::now() - std::time::Duration::from_secs(30));
        assert_eq!(retry_after_ms(past.as_bytes()), Some(0));
    }
}
