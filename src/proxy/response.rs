//! The upstream response: retry-or-pass decision on the status line, and watching the body
//! (usage, end of stream, garbage) as it streams through unchanged, but for the usage-only
//! chunk of a stream whose client did not ask for usage (the gateway's own to read).

use super::ctx::{Answer, BodyWatch, Gate, Proxied};
use super::decision::{
    action_for, rule, Failure, FailureAction, ERROR_EVENT_MESSAGE, GARBAGE_MESSAGE,
    INCOMPLETE_MESSAGE, INVALID_JSON_MESSAGE, NOT_A_STREAM_MESSAGE,
};
use super::headers::retain_returned;
use super::translation::{Issued, Translation};
use super::upstream::situation;
use crate::fault::UpstreamBroken;
use crate::providers::KeyRefusalProbe;
use crate::routing::Outcome;
use crate::usage::{Preamble, SseScanner};
use crate::vocab::Operation;
use bytes::{Bytes, BytesMut};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use std::time::SystemTime;

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

/// What the response hook knows about the client side.
#[derive(Debug, Clone, Copy)]
pub struct ClientSide {
    /// The client speaks HTTP/1.1 (a changed body is sent chunked).
    pub h1: bool,
    /// A final head already went to the client (an earlier attempt's stream failed before
    /// its commit point on a session that cannot hold a head back, see
    /// [`hold_head_until_commit`]): only another event stream can follow it.
    pub head_sent: bool,
}

/// Handles upstream response headers. Provider rate-limit headers cool the backend down. A
/// failure status (5xx, 429, 401/403) that [`action_for`] says to retry or answer locally
/// becomes an error carrying that action, so Pingora runs the next attempt or the final
/// hook answers; anything else is let through to the client and starts the [`Answer`]. A
/// head that reaches the client (informational ones included) carries only the upstream
/// headers [`retain_returned`] keeps; code that reads others (provider rate limits) runs
/// before. An answer that may be the provider's refusal of the gateway's key in another
/// shape ([`KeyRefusalProbe`]) is held back whole, head included, until its body decides.
pub fn on_response_header(
    p: &mut Proxied,
    request_id: &super::ctx::RequestId,
    started: std::time::Instant,
    client: ClientSide,
    resp: &mut ResponseHeader,
) -> Result<()> {
    let status = resp.status.as_u16();
    if status < 200 {
        retain_returned(resp)?;
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
    let key_probe = KeyRefusalProbe::of(&attempt.backend.provider.dialect, status)
        .filter(|_| !client.head_sent);
    let ttfb = attempt.started.elapsed();
    attempt.state().observe_ttfb_ms(ttfb.as_secs_f64() * 1000.0);
    if crate::metrics::per_request() {
        attempt.backend.metrics.ttfb().observe(ttfb.as_secs_f64());
    }
    let cooldown = super::provider_limits::requested_cooldown(&resp.headers, SystemTime::now());
    let retry_after = cooldown
        .filter(|l| l.source == super::provider_limits::RETRY_AFTER_MS)
        .map(|l| l.ms)
        .or_else(|| {
            resp.headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| retry_after_ms(v.as_bytes()))
        });
    let outcome = Outcome::from_status(status, retry_after);
    if let Some(asked) = cooldown {
        // A 429 cools its backend down as an outcome (`finish_attempt` below), locally and
        // on the shared state; the headers' cooldown is applied here only when longer.
        if outcome.cooldown_ms().is_none_or(|own| asked.ms > own) {
            attempt
                .state()
                .cool_down_for(asked.ms, crate::clock::now_ms());
            if let Some(shared) = &p.shared {
                shared.publish_cooldown(&attempt.backend.id, asked.ms);
            }
        }
        if crate::metrics::per_request() {
            crate::metrics::PROVIDER_LIMIT_COOLDOWNS
                .with_label_values(&[
                    attempt.backend.provider.id.as_str(),
                    &attempt.backend.id,
                    asked.source,
                ])
                .inc();
        }
    }
    let sse = is_event_stream(resp);
    if key_probe.is_some() {
        // Its body decides: a refused key fails the attempt at the body's end
        // (`on_body_chunk`); any other answer passes, and the request's end records it.
    } else if outcome != Outcome::Success {
        p.finish_attempt(outcome);
        let action = action_for(
            Failure::Status(outcome),
            &situation(p, client.head_sent, false),
        );
        if action != FailureAction::PassThrough {
            let e = Error::explain(ErrorType::HTTPStatus(status), "upstream failure status");
            return Err(rule(e, action));
        }
    } else if client.head_sent && !sse {
        // The client already has an event-stream head: only a stream can follow it.
        let failure = Failure::InvalidBody(UpstreamBroken::invalid(NOT_A_STREAM_MESSAGE));
        p.finish_attempt(failure.outcome(false));
        let action = action_for(failure, &situation(p, true, false));
        let e = Error::explain(
            ErrorType::Custom("upstream_not_a_stream"),
            NOT_A_STREAM_MESSAGE,
        );
        return Err(rule(e, action));
    }
    retain_returned(resp)?;
    if let Some(id) = request_id.header() {
        resp.insert_header(super::upstream::X_REQUEST_ID, id)?;
    }
    let include_usage =
        // The client asked for usage itself when the gateway did not have to ask in its place.
        translation == Translation::ChatToMessages && sse && p.request.include_usage.is_none();
    let issued = match (
        super::responses::answer_context(p, translation),
        super::gemini::answer_context(p, translation),
    ) {
        (Some(cx), _) => Issued::Responses(cx),
        (None, Some(cx)) => Issued::Gemini(cx),
        (None, None) => Issued::Plain,
    };
    // A Gemini client that did not ask for `alt=sse` gets its stream as a JSON array.
    let client_sse = sse && p.request.gemini.is_none_or(|g| g.sse);
    let watch = match translation.answer(status, sse, include_usage, issued) {
        Some(t) => {
            let content_type = if client_sse && (200..300).contains(&status) {
                "text/event-stream"
            } else {
                "application/json"
            };
            translated_head(
                resp,
                translation.client_status(status),
                content_type,
                client.h1,
            )?;
            BodyWatch::Translate(Box::new(t))
        }
        None => body_watch(status, sse, resp, stream_preamble(p.request.op)),
    };
    let stream = sse && (200..300).contains(&status);
    let held_whole = key_probe.is_some();
    if stream {
        // A later attempt's events may follow these in the same response (failover before
        // the commit point): the framing must not depend on this upstream's length.
        own_framing(resp, client.h1)?;
    }
    // Only a stream in the client's own dialect: a translator writes its own events.
    let usage_hold = (matches!(watch, BodyWatch::Sse(_))
        && super::request::hides_usage_chunk(&p.request))
    .then(BytesMut::new);
    p.answer = Some(Answer {
        ttfb: started.elapsed(),
        watch,
        usage: None,
        sse,
        held: None,
        complete: false,
        gate: if stream || held_whole {
            Gate::closed()
        } else {
            Gate::Open
        },
        broke_mid_event: false,
        key_refusal_probe: key_probe,
        content_bytes: 0,
        estimated: false,
        usage_hold,
    });
    Ok(())
}

/// Holds the answer's head back with its preamble: a stream before its commit point (its
/// [`Gate`] is closed) reaches the client only at that point, head included, so when every
/// attempt fails before it the client gets the ordinary error answer instead of a `200`
/// head. The head goes out with the first bytes the gate releases (or at the body's end).
/// A session that cannot hold a head (not HTTP/1) sends it at once, as before.
pub fn hold_head_until_commit(session: &mut Session, p: &Proxied) {
    if p.answer.as_ref().is_some_and(|a| !a.gate.is_open()) {
        session.as_downstream_mut().hold_response_header();
    }
}

/// The head of a translated answer: the client's status, the client dialect's own
/// `content_type` (never the upstream's: a `text/html` error page is translated into a
/// JSON error) and the gateway's own framing of an unencoded body.
fn translated_head(
    resp: &mut ResponseHeader,
    status: u16,
    content_type: &'static str,
    h1_client: bool,
) -> Result<()> {
    resp.set_status(status)?;
    resp.insert_header(http::header::CONTENT_TYPE, content_type)?;
    resp.remove_header(&http::header::CONTENT_ENCODING);
    own_framing(resp, h1_client)
}

/// Framing of a body whose size the gateway decides: no `Content-Length`, chunked to an
/// HTTP/1.1 client.
fn own_framing(resp: &mut ResponseHeader, h1_client: bool) -> Result<()> {
    resp.remove_header(&http::header::CONTENT_LENGTH);
    if h1_client {
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(())
}

fn is_event_stream(resp: &ResponseHeader) -> bool {
    resp.headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| starts_with_ci(v.as_bytes(), b"text/event-stream"))
}

/// What a passed-through stream (in the client's own dialect) sends before its commit
/// point. A dialect's stream plugs in here with its [`Preamble`].
fn stream_preamble(op: Operation) -> Preamble {
    match op {
        Operation::Chat | Operation::TextCompletion => Preamble::OpenAiChunks,
        Operation::Messages => Preamble::Anthropic,
        Operation::Responses => Preamble::Responses,
        Operation::GenerateContent => Preamble::Gemini,
        _ => Preamble::Any,
    }
}

/// How a passed-through response body is watched: usage and validity of 2xx JSON, usage
/// and breakage of event streams (held until the commit point its `preamble` sets);
/// nothing for compressed or other bodies.
fn body_watch(status: u16, sse: bool, resp: &ResponseHeader, preamble: Preamble) -> BodyWatch {
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
        BodyWatch::Sse(Box::new(SseScanner::with_preamble(preamble)))
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

/// How a broken answer ends: what broke, and whether the current chunk is kept for the
/// client (an in-band error event is passed on) or dropped (garbage).
struct Breakage {
    broken: UpstreamBroken,
    keep_chunk: bool,
}

/// Observes one upstream body chunk of the answer and passes it through the stream's
/// [`Gate`]. A body found broken (garbage in an event stream, an in-band error event, a
/// stream that ends before its terminal event, a 2xx JSON answer that is not one complete
/// JSON value) becomes an error carrying [`Failure::InvalidBody`]; what the client should
/// still get is kept in [`Answer::held`] for a cut, and the failure hook decides. An
/// answer held whole for its [`KeyRefusalProbe`] that turns out to refuse the gateway's key
/// becomes an `HTTPStatus(401)` error, never reaching the client.
pub fn on_body_chunk(answer: &mut Answer, body: &mut Option<Bytes>, end: bool) -> Result<()> {
    if let Some(probe) = answer.key_refusal_probe.as_mut() {
        if let Some(b) = body.as_deref() {
            probe.feed(b);
        }
        // Decided only while nothing of it went out (a body past the gate's cap is not a
        // key refusal, and went on as it came).
        if end && !answer.gate.is_open() && probe.refused() {
            answer.gate.take_held();
            *body = None;
            // Ruled as a 401 would have been (`failure::describe`): a backend failure,
            // retried, its body never passed on.
            return Err(Error::explain(
                ErrorType::HTTPStatus(401),
                "the provider refused the gateway's key",
            ));
        }
    }
    if answer.sse {
        if let Some(b) = body.as_deref() {
            let n = crate::usage::content_bytes(b);
            answer.content_bytes = answer.content_bytes.saturating_add(n as u64);
        }
    }
    let (broken, commit) = match &mut answer.watch {
        BodyWatch::None => (None, true),
        BodyWatch::Json(scan) => {
            if let Some(b) = body {
                scan.feed(b);
            }
            if scan.is_invalid() || (end && !scan.is_complete()) {
                (
                    Some(drop_chunk(UpstreamBroken::invalid(INVALID_JSON_MESSAGE))),
                    true,
                )
            } else {
                if end {
                    answer.usage = scan.usage();
                }
                (None, true)
            }
        }
        BodyWatch::Sse(scan) => {
            // A hidden usage-only chunk is left out of `body` (its usage still read).
            let garbage = match (body.as_ref(), answer.usage_hold.as_mut()) {
                (Some(b), Some(hold)) => match scan.feed_hiding_usage(b, hold) {
                    Ok(out) => {
                        *body = out;
                        false
                    }
                    Err(_) => true,
                },
                (Some(b), None) => scan.feed(b).is_err(),
                (None, _) => false,
            };
            if let Some(u) = scan.usage() {
                answer.usage = Some(u);
            }
            let broken = if garbage {
                answer.broke_mid_event = true;
                // Garbage after an in-band error event in the same chunk: the provider
                // said it failed; the dropped chunk takes that event with it, so the
                // gateway's own error event stands in for it.
                Some(drop_chunk(if scan.saw_error_event() {
                    UpstreamBroken::error_event(ERROR_EVENT_MESSAGE)
                } else {
                    UpstreamBroken::invalid(GARBAGE_MESSAGE)
                }))
            } else if scan.saw_error_event() {
                Some(keep_chunk(UpstreamBroken::error_event(ERROR_EVENT_MESSAGE)))
            } else if end && !scan.finished() {
                Some(keep_chunk(UpstreamBroken::incomplete(INCOMPLETE_MESSAGE)))
            } else {
                None
            };
            if end || broken.as_ref().is_some_and(|b| b.keep_chunk) {
                // The stream stops here: an event held back whole goes out as it came.
                if let Some(hold) = answer.usage_hold.as_mut() {
                    append(body, hold.split().freeze());
                }
            }
            (broken, end || scan.reached_content() || scan.finished())
        }
        BodyWatch::Translate(t) => match t.chunk(body.as_deref(), end) {
            Ok(out) => {
                *body = out;
                if let Some(u) = t.usage() {
                    answer.usage = Some(u);
                }
                (None, end || t.started_content())
            }
            Err(broken) => {
                *body = (!broken.pending.is_empty()).then(|| Bytes::from(broken.pending));
                (Some(keep_chunk(broken.reason)), true)
            }
        },
    };
    if let Some(b) = broken {
        let mut unsent = answer.gate.take_held();
        let chunk = body.take().filter(|_| b.keep_chunk);
        if let Some(chunk) = chunk {
            unsent = if unsent.is_empty() {
                chunk
            } else {
                let mut all = Vec::with_capacity(unsent.len() + chunk.len());
                all.extend_from_slice(&unsent);
                all.extend_from_slice(&chunk);
                Bytes::from(all)
            };
        }
        answer.held = (!unsent.is_empty()).then_some(unsent);
        return Err(Error::because(
            ErrorType::Custom("upstream_invalid_body"),
            "upstream body contradicts its head",
            b.broken,
        ));
    }
    // An answer held whole goes out at its end (or past the gate's cap).
    let commit = end || (commit && answer.key_refusal_probe.is_none());
    answer.gate.pass(body, commit);
    if end {
        answer.complete = true;
    }
    Ok(())
}

/// `body` followed by `more`.
fn append(body: &mut Option<Bytes>, more: Bytes) {
    if more.is_empty() {
        return;
    }
    *body = Some(match body.take() {
        Some(b) if !b.is_empty() => {
            let mut all = Vec::with_capacity(b.len() + more.len());
            all.extend_from_slice(&b);
            all.extend_from_slice(&more);
            Bytes::from(all)
        }
        _ => more,
    });
}

fn drop_chunk(broken: UpstreamBroken) -> Breakage {
    Breakage {
        broken,
        keep_chunk: false,
    }
}

fn keep_chunk(broken: UpstreamBroken) -> Breakage {
    Breakage {
        broken,
        keep_chunk: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::BodyFault;

    /// An SSE answer under watch, as `on_response_header` starts it.
    fn sse_answer() -> Answer {
        Answer {
            ttfb: std::time::Duration::ZERO,
            watch: BodyWatch::Sse(Box::default()),
            usage: None,
            sse: true,
            held: None,
            complete: false,
            gate: Gate::closed(),
            broke_mid_event: false,
            key_refusal_probe: None,
            content_bytes: 0,
            estimated: false,
            usage_hold: None,
        }
    }

    fn fault_of(e: &Error) -> UpstreamBroken {
        *e.cause
            .as_deref()
            .and_then(|c| c.downcast_ref::<UpstreamBroken>())
            .unwrap()
    }

    #[test]
    fn an_error_event_is_passed_on_unless_garbage_in_its_chunk_drops_it() {
        let error = "data: {\"error\":{\"message\":\"overloaded\"}}\n\n";
        // alone in its chunk: kept for the client, and no gateway event follows it
        let mut answer = sse_answer();
        let mut body = Some(Bytes::from(error));
        let e = on_body_chunk(&mut answer, &mut body, false).unwrap_err();
        assert_eq!(fault_of(&e).fault, BodyFault::ErrorEvent);
        assert_eq!(answer.held.as_deref(), Some(error.as_bytes()));
        assert!(answer.sent_error_event());
        // followed by garbage in the same chunk: the chunk is dropped with the event in
        // it, so the client must get the gateway's error event instead
        let mut answer = sse_answer();
        let mut body = Some(Bytes::from(format!("{error}data: {{not json\n\n")));
        let e = on_body_chunk(&mut answer, &mut body, false).unwrap_err();
        assert_eq!(fault_of(&e).fault, BodyFault::ErrorEvent);
        assert!(answer.held.is_none());
        assert!(!answer.sent_error_event());
        // garbage alone: an invalid answer
        let mut answer = sse_answer();
        let mut body = Some(Bytes::from_static(b"data: {not json\n\n"));
        let e = on_body_chunk(&mut answer, &mut body, false).unwrap_err();
        assert_eq!(fault_of(&e).fault, BodyFault::Invalid);
        assert!(!answer.sent_error_event());
    }

    #[test]
    fn a_translated_head_is_labelled_as_the_clients_dialect() {
        for (status, content_type) in [(502, "application/json"), (200, "text/event-stream")] {
            let mut resp = ResponseHeader::build(status, None).unwrap();
            resp.insert_header("content-type", "text/html; charset=utf-8")
                .unwrap();
            resp.insert_header("content-encoding", "gzip").unwrap();
            resp.insert_header("content-length", "120").unwrap();
            translated_head(&mut resp, status, content_type, true).unwrap();
            assert_eq!(resp.headers["content-type"], content_type);
            assert!(resp.headers.get("content-encoding").is_none());
            assert!(resp.headers.get("content-length").is_none());
            assert_eq!(resp.headers["transfer-encoding"], "chunked");
        }
    }

    #[test]
    fn each_dialect_commits_at_its_own_first_content_event() {
        let reached = |op: Operation, events: &[&str]| {
            let mut s = SseScanner::with_preamble(stream_preamble(op));
            for e in events {
                s.feed(e.as_bytes()).unwrap();
            }
            s.reached_content()
        };
        let role =
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
        let text = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        assert!(!reached(Operation::Chat, &[role]));
        assert!(reached(Operation::Chat, &[role, text]));
        let event = |name: &str| format!("event: {name}\ndata: {{\"type\":\"{name}\"}}\n\n");
        let anthropic = ["message_start", "ping", "content_block_start"].map(event);
        let anthropic: Vec<&str> = anthropic.iter().map(String::as_str).collect();
        assert!(!reached(Operation::Messages, &anthropic));
        let delta = event("content_block_delta");
        assert!(reached(Operation::Messages, &[anthropic[0], &delta]));
        let responses = [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ]
        .map(event);
        let responses: Vec<&str> = responses.iter().map(String::as_str).collect();
        assert!(!reached(Operation::Responses, &responses));
        let delta = event("response.output_text.delta");
        assert!(reached(Operation::Responses, &[responses[0], &delta]));
        // a dialect's preamble is its own: Responses events are content to a Messages stream
        assert!(reached(Operation::Messages, &[responses[0]]));
    }

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
