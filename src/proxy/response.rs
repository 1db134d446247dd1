//! The upstream response: retry-or-pass decision on the status line, and watching the body
//! (usage, end of stream, garbage) as it streams through unchanged.

use super::ctx::{BodyWatch, RequestCtx};
use super::outcome::finish_attempt;
use super::upstream::can_retry;
use crate::routing::Outcome;
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

/// Handles upstream response headers. A retryable status (5xx, 429) with another attempt
/// possible becomes an error so Pingora retries; anything else passes through.
pub fn on_response_header(ctx: &mut RequestCtx, resp: &mut ResponseHeader) -> Result<()> {
    ctx.watchdog = None;
    let Some(snap) = ctx.snapshot.clone() else {
        return Ok(());
    };
    let status = resp.status.as_u16();
    if status < 200 {
        return Ok(()); // informational; the final header follows
    }
    let mut ttfb_ms = 0.0;
    if let Some(a) = ctx.attempt.as_mut() {
        a.got_headers = true;
        let ttfb = a.started.elapsed();
        ttfb_ms = ttfb.as_secs_f64() * 1000.0;
        a.state.observe_ttfb_ms(ttfb_ms);
    }
    let retry_after = resp
        .headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| retry_after_ms(v.as_bytes()));
    let outcome = Outcome::from_status(status, retry_after);
    if let (Some(req), Some(a), true) = (
        ctx.request.as_ref(),
        ctx.attempt.as_ref(),
        crate::metrics::per_request(),
    ) {
        if let Some(b) = snap
            .table
            .models
            .get(req.model)
            .and_then(|m| m.backends.get(a.backend))
        {
            crate::metrics::TTFB
                .with_label_values(&[&snap.table.models[req.model].name, &b.provider.id])
                .observe(ttfb_ms / 1000.0);
        }
    }
    if outcome.is_retryable() {
        finish_attempt(ctx, outcome);
        if can_retry(ctx, &snap) {
            let mut e = Error::explain(
                ErrorType::HTTPStatus(status),
                "retryable upstream status; trying another backend",
            );
            e.set_retry(true);
            return Err(e);
        }
    }
    ctx.status = status;
    ctx.ttfb = Some(ctx.started.elapsed());
    if outcome != Outcome::Success {
        finish_attempt(ctx, outcome);
    }
    for h in &DROPPED_RESPONSE_HEADERS {
        resp.remove_header(h);
    }
    resp.insert_header(
        super::upstream::X_REQUEST_ID.clone(),
        ctx.request_id.as_str(),
    )?;
    let encoded = resp
        .headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let content_type = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes())
        .unwrap_or(b"");
    ctx.watch = if encoded {
        BodyWatch::None
    } else if starts_with_ci(content_type, b"text/event-stream") {
        BodyWatch::Sse(Box::default())
    } else if status < 300 && status != 204 && status != 205 && contains_ci(content_type, b"json") {
        BodyWatch::Json(Box::default())
    } else {
        BodyWatch::None
    };
    Ok(())
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn contains_ci(s: &[u8], needle: &[u8]) -> bool {
    s.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Why a stream was cut (the message of the final SSE error event).
pub const GARBAGE_MESSAGE: &str = "The upstream provider sent an invalid stream.";

/// Why a non-stream 2xx answer was refused. Setting it marks the attempt's body as broken,
/// so the failure path retries it or answers 502 `upstream_invalid_response` (a cut
/// connection when the head was already sent).
pub const INVALID_JSON_MESSAGE: &str = "The upstream provider sent an invalid JSON response.";

/// Observes one upstream body chunk. Errors when the body turns out broken: an SSE stream
/// with garbage (ended with an error event instead of forwarding the bad bytes), or a 2xx
/// JSON body that is not one complete JSON value (the bad bytes are never forwarded).
pub fn on_body_chunk(ctx: &mut RequestCtx, body: &mut Option<Bytes>, end: bool) -> Result<()> {
    match &mut ctx.watch {
        BodyWatch::None => {}
        BodyWatch::Json(scan) => {
            if let Some(b) = body {
                scan.feed(b);
            }
            // A 2xx JSON answer that is not JSON, or ends before its value does, is a
            // failed attempt: never passed on as a success.
            if scan.is_invalid() || (end && !scan.is_complete()) {
                *body = None;
                ctx.stream_failure = Some(INVALID_JSON_MESSAGE);
                finish_attempt(ctx, Outcome::StreamError);
                return Err(Error::explain(
                    ErrorType::Custom("upstream_invalid_body"),
                    "upstream sent a 2xx JSON response that is not valid JSON",
                ));
            }
            if end {
                ctx.usage = scan.usage();
            }
        }
        BodyWatch::Sse(scan) => {
            if let Some(b) = body {
                if scan.feed(b).is_err() {
                    *body = None;
                    ctx.stream_failure = Some(GARBAGE_MESSAGE);
                    finish_attempt(ctx, Outcome::StreamError);
                    return Err(Error::explain(
                        ErrorType::Custom("upstream_invalid_stream"),
                        "upstream sent data that is not a valid event stream",
                    ));
                }
            }
            if let Some(u) = scan.usage() {
                ctx.usage = Some(u);
            }
        }
    }
    if end {
        ctx.body_complete = true;
    }
    Ok(())
}

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
