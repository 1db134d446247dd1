//! Pingora's failure hooks: each error is described as a [`Failure`], recorded against the
//! attempt's backend, and ruled on by [`action_for`]; the final hook carries the action out
//! (an OpenAI-shaped error, or a final SSE error event when the response had started).

use super::ctx::{Answer, BodyWatch, Proxied, RequestCtx, RequestPhase};
use super::decision::{
    action_for, action_of, rule, timeout_retry_withheld, Failure, FailureAction, BROKEN_MESSAGE,
};
use super::upstream::situation;
use crate::error::{ApiError, ClientApi};
use crate::fault::{BodyFault, UpstreamBroken};
use crate::routing::Outcome;
use crate::wire::error::{anthropic_stream_cut_event, openai_stream_cut_event};
use bytes::Bytes;
use pingora_error::{Error, ErrorSource, ErrorType};
use pingora_proxy::{FailToProxy, Session};

/// Describes a Pingora error of the current attempt. `deadline_fired`: the header
/// watchdog shut the connection down.
pub fn describe(e: &Error, deadline_fired: bool) -> Failure {
    if let Some(broken) = e
        .cause
        .as_deref()
        .and_then(|c| c.downcast_ref::<UpstreamBroken>())
    {
        return Failure::InvalidBody(*broken);
    }
    if deadline_fired {
        return Failure::Transport {
            outcome: Outcome::Timeout,
            stalled: false,
        };
    }
    if *e.esource() == ErrorSource::Downstream {
        return Failure::ClientGone;
    }
    let outcome = match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout => Outcome::Timeout,
        // A failure status found in the body (a key refused in a provider's own shape).
        ErrorType::HTTPStatus(code) => return Failure::Status(Outcome::from_status(*code, None)),
        _ => Outcome::ConnectError,
    };
    Failure::Transport {
        outcome,
        stalled: matches!(e.etype(), ErrorType::ReadTimedout),
    }
}

/// `fail_to_connect`: the connection (TCP/TLS) to the backend could not be made.
pub fn on_connect_error(ctx: &mut RequestCtx, e: Box<Error>) -> Box<Error> {
    let Some(p) = ctx.proxied_mut() else {
        return rule(e, FailureAction::Answer(ApiError::internal()));
    };
    let timed_out = matches!(
        e.etype(),
        ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout
    );
    let failure = Failure::Connect { timed_out };
    p.finish_attempt(failure.outcome(false));
    let action = action_for(failure, &situation(p, false, false));
    rule(e, action)
}

/// `error_while_proxy`: an error after the connection was made (or reused).
pub fn on_proxy_error(
    session: &Session,
    ctx: &mut RequestCtx,
    e: Box<Error>,
    client_reused: bool,
) -> Box<Error> {
    if action_of(&e).is_some() {
        return e; // ruled where it was raised (a failure status)
    }
    let head_sent = super::respond::final_head_sent(session);
    let Some(p) = ctx.proxied_mut() else {
        let action = if head_sent {
            FailureAction::Cut(BROKEN_MESSAGE)
        } else {
            FailureAction::Answer(ApiError::internal())
        };
        return rule(e, action);
    };
    let (deadline_fired, got_headers) = p
        .attempt
        .as_mut()
        .map_or((false, false), |a| (a.take_deadline_fired(), a.got_headers));
    let failure = describe(&e, deadline_fired);
    let stale_pooled = client_reused
        && !got_headers
        && !deadline_fired
        && matches!(
            e.etype(),
            ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
        );
    let situation = situation(p, head_sent, stale_pooled);
    let mut action = action_for(failure, &situation);
    if let (Failure::InvalidBody(broken), FailureAction::Answer(_), Some(a)) =
        (failure, &action, &p.answer)
    {
        // The provider said why in its error event: an overload is a 503, as its status
        // would have been.
        if broken.fault == BodyFault::ErrorEvent && reports_overload(a) {
            action = FailureAction::Answer(ApiError::upstream_overloaded(situation.attempts));
        }
    }
    if let (Failure::InvalidBody(broken), Some(a)) = (failure, &p.answer) {
        count_stream_failure(p, a, broken.fault, situation.committed);
    }
    if timeout_retry_withheld(failure, &situation) && crate::metrics::per_request() {
        crate::metrics::TIMEOUTS_NOT_RETRIED
            .with_label_values(&[&p.request.model.name])
            .inc();
    }
    if action == FailureAction::RetryStale {
        // A pooled keep-alive connection the provider had already closed: not the
        // backend's fault; try again (same or another backend) without counting it.
        p.stale_retry_used = true;
        p.tried.pop();
        p.attempts = p.attempts.saturating_sub(1);
    } else {
        // After the head arrived, a broken connection is a broken stream.
        p.finish_attempt(failure.outcome(situation.committed || got_headers));
    }
    if action == FailureAction::Retry {
        p.answer = None;
    }
    rule(e, action)
}

/// Whether the held bytes of a broken answer (the upstream's error event, passed on or
/// translated) name an overload (`overloaded_error`, or OpenAI-style `overloaded`).
fn reports_overload(a: &Answer) -> bool {
    let held = a.held.as_deref().unwrap_or_default();
    memchr::memmem::find(held, b"overloaded").is_some()
}

/// `fail_to_proxy`: the proxy loop ended with an error. Carries out the action the error
/// holds and returns the status.
pub async fn on_final_error(session: &mut Session, ctx: &mut RequestCtx, e: &Error) -> FailToProxy {
    super::respond::note_client_error(e);
    let head_sent = super::respond::final_head_sent(session);
    let action = match action_of(e) {
        // A head is out (a stream that failed before its commit point): an error can only
        // travel inside the stream now.
        Some(FailureAction::Answer(_) | FailureAction::PassThrough) if head_sent => {
            FailureAction::Cut(BROKEN_MESSAGE)
        }
        Some(v) => v.clone(),
        // Not from an upstream attempt (e.g. the client failed while sending its body).
        None if *e.esource() == ErrorSource::Downstream => FailureAction::Abandon,
        None if head_sent => FailureAction::Cut(BROKEN_MESSAGE),
        None => FailureAction::Answer(ApiError::internal()),
    };
    match action {
        FailureAction::Abandon => {
            if let Some(p) = ctx.proxied_mut() {
                p.finish_attempt(Outcome::ClientClosed);
            }
            let error_code = if head_sent {
                ctx.status
            } else {
                ctx.status = 499;
                0
            };
            FailToProxy {
                error_code,
                can_reuse_downstream: false,
            }
        }
        FailureAction::Cut(message) => {
            if let RequestPhase::Proxied(p) = &mut ctx.phase {
                cut_stream(session, p, ctx.api, message, ctx.request_id.as_str()).await;
            }
            FailToProxy {
                error_code: ctx.status,
                can_reuse_downstream: false,
            }
        }
        FailureAction::Answer(err) => answer(session, ctx, err).await,
        // A retry action that ran out of Pingora's own loop bound, or a pass-through
        // that still became an error: answer what the attempts amount to.
        FailureAction::Retry | FailureAction::RetryStale | FailureAction::PassThrough => {
            let err = match ctx.proxied() {
                Some(p) if p.last_outcome == Some(Outcome::Timeout) => {
                    ApiError::upstream_timeout(p.attempts)
                }
                Some(p) => ApiError::upstream_failed(p.attempts),
                None => ApiError::internal(),
            };
            answer(session, ctx, err).await
        }
    }
}

/// Ends a started response: records the broken stream and, for an event stream, sends
/// the final error event (no `[DONE]` follows).
async fn cut_stream(
    session: &mut Session,
    p: &mut Proxied,
    api: ClientApi,
    message: &str,
    request_id: &str,
) {
    p.finish_attempt(Outcome::StreamError);
    let Some(answer) = p.answer.as_mut() else {
        // The head came from an earlier attempt whose stream failed before its commit
        // point; this one never answered: the stream still needs its final error event.
        send_final(session, error_event(api, message, 0), request_id).await;
        return;
    };
    // What the client should still get goes first (a held preamble, an upstream error event
    // passed on, translated events); an event stream then gets the final error event, on an
    // event boundary, unless it already carries an upstream one.
    let mut event = answer.take_unsent();
    if answer.is_sse() && !answer.sent_error_event() {
        if answer.ends_mid_event() {
            event.extend_from_slice(b"\n\n");
        }
        let own = match &answer.watch {
            BodyWatch::Translate(t) => t.cut_event(message),
            _ => None,
        };
        // A passed-through Responses stream numbers its events from 0.
        let sequence_number = match &answer.watch {
            BodyWatch::Sse(s) => s.events(),
            _ => 0,
        };
        let own = own.unwrap_or_else(|| error_event(api, message, sequence_number));
        event.extend_from_slice(&own);
    }
    send_final(session, event, request_id).await;
}

/// The gateway's final error event in the client's API (`sequence_number`: the next one
/// of a Responses stream, which numbers its events).
fn error_event(api: ClientApi, message: &str, sequence_number: u64) -> Vec<u8> {
    match api {
        ClientApi::OpenAi => openai_stream_cut_event(message),
        ClientApi::Anthropic => anthropic_stream_cut_event(message),
        ClientApi::OpenAiResponses => crate::translate::responses::stream_error_event(
            sequence_number,
            "stream_error",
            message,
        ),
        // A passed-through Gemini event stream (a JSON-array stream is never cut with an
        // event: it is not an event stream).
        ClientApi::Gemini => {
            crate::translate::gemini::stream_error_chunk(true, false, 502, message)
        }
    }
}

/// Writes the last bytes of a cut response and ends it.
async fn send_final(session: &mut Session, event: Vec<u8>, request_id: &str) {
    if event.is_empty() {
        return;
    }
    if let Err(we) = session
        .write_response_body(Some(Bytes::from(event)), true)
        .await
    {
        log::debug!("request {request_id}: final error event not delivered: {we}");
    }
}

/// Counts a stream that broke the stream rules (`berry_stream_failures_total`).
fn count_stream_failure(p: &Proxied, answer: &Answer, fault: BodyFault, committed: bool) {
    if !answer.is_sse() || !crate::metrics::per_request() {
        return;
    }
    let kind = fault.label();
    let phase = if committed { "content" } else { "preamble" };
    if let Some(b) = p.last_backend() {
        crate::metrics::STREAM_FAILURES
            .with_label_values(&[&b.provider.id, kind, phase])
            .inc();
    }
}

async fn answer(session: &mut Session, ctx: &mut RequestCtx, err: ApiError) -> FailToProxy {
    let status = err.status;
    let response = crate::api::LocalResponse::error(&err, ctx.api);
    if let Err(we) = super::respond::send(session, ctx, response).await {
        super::respond::note_client_error(&we);
        log::debug!(
            "request {}: error response not delivered: {we}",
            ctx.request_id
        );
    }
    FailToProxy {
        error_code: status,
        can_reuse_downstream: false,
    }
}
