//! Upstream failures: classifying them, deciding retries, and the final answer when the
//! proxy loop gives up (an OpenAI-shaped error, or a final SSE error event mid-stream).

use super::ctx::{BodyWatch, RequestCtx};
use super::outcome::finish_attempt;
use super::upstream::can_retry;
use crate::error::ApiError;
use crate::routing::Outcome;
use crate::usage::sse_error_event;
use bytes::Bytes;
use pingora_error::{Error, ErrorSource, ErrorType};
use pingora_proxy::{FailToProxy, Session};

/// The outcome a transport-level error means for the backend.
pub fn classify(e: &Error, header_deadline_passed: bool) -> Outcome {
    if header_deadline_passed {
        return Outcome::Timeout;
    }
    if *e.esource() == ErrorSource::Downstream {
        return Outcome::ClientClosed;
    }
    match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout => Outcome::Timeout,
        ErrorType::HTTPStatus(code) => Outcome::from_status(*code, None),
        _ => Outcome::ConnectError,
    }
}

/// The answer when every attempt failed without a usable response.
fn final_error(outcome: Option<Outcome>, attempts: u32) -> ApiError {
    match outcome {
        Some(Outcome::Timeout) => ApiError::upstream_timeout(attempts),
        _ => ApiError::upstream_failed(attempts),
    }
}

/// `fail_to_connect`: the connection (TCP/TLS) to the backend failed.
pub fn on_connect_error(ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
    let outcome = classify(&e, false);
    finish_attempt(ctx, outcome);
    let retry = ctx.snapshot.as_ref().is_some_and(|s| can_retry(ctx, s));
    if !retry {
        ctx.local_error = Some(final_error(Some(outcome), ctx.attempts));
    }
    e.set_retry(retry);
    e
}

/// `error_while_proxy`: an error after the connection was made (or reused).
pub fn on_proxy_error(
    session: &Session,
    ctx: &mut RequestCtx,
    mut e: Box<Error>,
    client_reused: bool,
) -> Box<Error> {
    if matches!(e.etype(), ErrorType::HTTPStatus(_)) && e.retry() {
        // Our own retry signal from the response header hook; already recorded.
        return e;
    }
    let deadline_passed = ctx.watchdog.take().is_some_and(|w| w.fired());
    let outcome = classify(&e, deadline_passed);
    if session.response_written().is_some() {
        // Bytes reached the client: never retry; the stream gets a final error event.
        if outcome != Outcome::ClientClosed && ctx.stream_failure.is_none() {
            ctx.stream_failure = Some(match e.etype() {
                ErrorType::ReadTimedout => "The upstream stream stalled and was cut off.",
                _ => "The upstream connection failed in the middle of the response.",
            });
        }
        let o = if outcome == Outcome::ClientClosed {
            outcome
        } else {
            Outcome::StreamError
        };
        finish_attempt(ctx, o);
        e.set_retry(false);
        return e;
    }
    let got_headers = ctx.attempt.as_ref().is_some_and(|a| a.got_headers);
    let stale_pooled = client_reused
        && !got_headers
        && !deadline_passed
        && !ctx.stale_retry_used
        && matches!(
            e.etype(),
            ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
        );
    if stale_pooled && outcome != Outcome::ClientClosed {
        // A pooled keep-alive connection the provider had already closed: not the
        // backend's fault; try again (same or another backend) without counting it.
        ctx.stale_retry_used = true;
        ctx.tried.pop();
        ctx.attempts = ctx.attempts.saturating_sub(1);
        e.set_retry(true);
        return e;
    }
    // A body found broken (garbage) before any byte reached the client is a failed
    // attempt like any other: retry it elsewhere.
    let invalid = ctx.stream_failure.is_some();
    finish_attempt(
        ctx,
        if invalid {
            Outcome::StreamError
        } else {
            outcome
        },
    );
    let retry = (invalid || outcome.is_retryable())
        && outcome != Outcome::ClientClosed
        && ctx.snapshot.as_ref().is_some_and(|s| can_retry(ctx, s));
    if retry {
        ctx.stream_failure = None;
        ctx.watch = BodyWatch::None;
        ctx.usage = None;
    } else if invalid {
        ctx.local_error = Some(ApiError::upstream_invalid(ctx.attempts));
    } else if outcome != Outcome::ClientClosed {
        ctx.local_error = Some(final_error(Some(outcome), ctx.attempts));
    }
    e.set_retry(retry);
    e
}

/// `fail_to_proxy`: the proxy loop ended with an error. Writes the error response (or the
/// final SSE error event when the response had started) and returns the status.
pub async fn on_final_error(session: &mut Session, ctx: &mut RequestCtx, e: &Error) -> FailToProxy {
    let client_gone = *e.esource() == ErrorSource::Downstream
        && matches!(
            e.etype(),
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed
        );
    if session.response_written().is_some() {
        if !client_gone {
            finish_attempt(ctx, Outcome::StreamError);
            if matches!(ctx.watch, BodyWatch::Sse(_)) {
                let msg = ctx
                    .stream_failure
                    .unwrap_or("The upstream stream failed in the middle of the response.");
                let event = sse_error_event(msg, "upstream_error", "stream_error");
                if let Err(we) = session
                    .write_response_body(Some(Bytes::from(event)), true)
                    .await
                {
                    log::debug!(
                        "request {}: final error event not delivered: {we}",
                        ctx.request_id
                    );
                }
            }
        } else {
            finish_attempt(ctx, Outcome::ClientClosed);
        }
        return FailToProxy {
            error_code: ctx.status,
            can_reuse_downstream: false,
        };
    }
    if client_gone {
        finish_attempt(ctx, Outcome::ClientClosed);
        ctx.status = 499;
        return FailToProxy {
            error_code: 0,
            can_reuse_downstream: false,
        };
    }
    let err = ctx.local_error.take().unwrap_or_else(|| {
        if ctx.request.is_some() {
            final_error(ctx.last_outcome, ctx.attempts)
        } else {
            ApiError::internal()
        }
    });
    let status = err.status;
    if let Err(we) = super::respond::send(session, ctx, (&err).into()).await {
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
