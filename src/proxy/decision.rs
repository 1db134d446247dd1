//! The one retry decision: every way an attempt can fail (connect, timeout, status,
//! invalid body, broken stream, client gone) is described as a [`Failure`], and
//! [`action_for`] turns it and the request's [`Situation`] into a [`FailureAction`]: try another
//! backend, let the upstream's answer through, answer a local error, or cut the response.
//!
//! The action travels to Pingora's final-error hook inside the error itself
//! ([`Ruling`], the error's cause), so no hook has to leave notes for another.

use crate::error::ApiError;
use crate::fault::{BodyFault, UpstreamBroken};
use crate::routing::Outcome;
use pingora_error::{Error, ErrorType};

/// Message of the final SSE error event when a stream stalls past the idle timeout.
pub const STALLED_MESSAGE: &str = "The upstream stream stalled and was cut off.";
/// Message of the final SSE error event when the upstream connection breaks mid-response.
pub const BROKEN_MESSAGE: &str = "The upstream connection failed in the middle of the response.";
/// Why a stream was cut: the upstream sent bytes that are not an event stream.
pub const GARBAGE_MESSAGE: &str = "The upstream provider sent an invalid stream.";
/// Why a non-stream 2xx answer was refused: it is not one complete JSON value.
pub const INVALID_JSON_MESSAGE: &str = "The upstream provider sent an invalid JSON response.";
/// Why a stream failed: it ended before its terminal event (`[DONE]`, `message_stop`).
pub const INCOMPLETE_MESSAGE: &str = "The upstream stream ended before it was complete.";
/// Why a stream failed: the upstream sent an in-band error event (passed on to the client).
pub const ERROR_EVENT_MESSAGE: &str = "The upstream provider reported an error in the stream.";
/// Why a stream failed: a later attempt answered a stream request without an event stream.
pub const NOT_A_STREAM_MESSAGE: &str = "The upstream provider answered without an event stream.";
/// Why a stream was cut: a later attempt answered with a failure status.
pub const STATUS_MESSAGE: &str = "The upstream provider answered with an error status.";

/// What went wrong with the current attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection (DNS, TCP, TLS); `timed_out` when the connect deadline passed.
    Connect { timed_out: bool },
    /// The upstream answered with a failure status (`Outcome::from_status`).
    Status(Outcome),
    /// The connection failed after it was made: before the response head (`Timeout`,
    /// `ConnectError`) or while the body was streaming (`stalled` = read timeout).
    Transport { outcome: Outcome, stalled: bool },
    /// The body contradicts its head or breaks the stream rules: a 2xx JSON answer that is
    /// not JSON, garbage in an event stream, a stream without its terminal event, an
    /// in-band error event. Its `why` is what a cut stream's final event says.
    InvalidBody(UpstreamBroken),
    /// The client went away.
    ClientGone,
}

impl Failure {
    /// The outcome recorded for the backend (breaker, confidence, metrics).
    pub fn outcome(self, committed: bool) -> Outcome {
        match self {
            Failure::Connect { timed_out: true } => Outcome::Timeout,
            Failure::Connect { timed_out: false } => Outcome::ConnectError,
            Failure::ClientGone => Outcome::ClientClosed,
            Failure::InvalidBody(_) => Outcome::StreamError,
            Failure::Status(o) => o,
            Failure::Transport { .. } if committed => Outcome::StreamError,
            Failure::Transport { outcome, .. } => outcome,
        }
    }

    /// A timeout on a live connection after the request went out (waiting for the
    /// response head, or a read timeout): the provider may still be generating, and
    /// billing. Connect timeouts are not (nothing reached the provider). A request-body
    /// write timeout is counted here too: Pingora reports it like the others, and how much
    /// of the request the provider took is unknown.
    fn timed_out_after_sending(self) -> bool {
        matches!(
            self,
            Failure::Transport {
                outcome: Outcome::Timeout,
                ..
            }
        )
    }

    /// Whether another backend could do better (the request itself is not at fault).
    fn retryable(self) -> bool {
        match self {
            Failure::InvalidBody(_) => true,
            Failure::ClientGone => false,
            other => other.outcome(false).is_retryable(),
        }
    }
}

/// What the decision needs to know about the request besides the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Situation {
    /// Content of this answer already went to the client: its head, or for a stream the
    /// events up to and past its commit point (the first content event).
    pub committed: bool,
    /// A final response head already went to the client (from this attempt or an earlier
    /// one whose stream failed before its commit point): the failure can only be reported
    /// inside the stream, never as a status.
    pub head_sent: bool,
    /// The retry budget allows another attempt and an eligible backend remains.
    pub can_retry: bool,
    /// The failure hit a reused pooled connection before any response head, in a way a
    /// connection the provider had already closed fails (and the free retry for that is
    /// unused): not the backend's fault.
    pub stale_pooled: bool,
    /// Attempts made so far (reported in the error message).
    pub attempts: u32,
    /// `retry_on_timeout`: a timeout after the request was sent may be retried. When
    /// false it is answered with 504 instead (the provider may still be billing).
    pub retry_on_timeout: bool,
}

/// What to do about a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureAction {
    /// Try another backend (the failure counts against this one).
    Retry,
    /// The pooled connection was stale: try again without counting this attempt.
    RetryStale,
    /// Let the upstream's own failure answer reach the client (no attempt left).
    PassThrough,
    /// Nothing reached the client yet: answer this error.
    Answer(ApiError),
    /// The response had started: end it (event streams with a final error event carrying
    /// this message, no `[DONE]`) and close the connection.
    Cut(&'static str),
    /// The client is gone: nothing to send.
    Abandon,
}

impl FailureAction {
    /// Whether Pingora should run another attempt.
    pub fn retries(&self) -> bool {
        matches!(self, FailureAction::Retry | FailureAction::RetryStale)
    }
}

/// The decision. Pure: same inputs, same action.
pub fn action_for(failure: Failure, s: &Situation) -> FailureAction {
    if failure == Failure::ClientGone {
        return FailureAction::Abandon;
    }
    if s.committed {
        return FailureAction::Cut(cut_message(failure));
    }
    if s.stale_pooled && matches!(failure, Failure::Transport { .. }) {
        return FailureAction::RetryStale;
    }
    let timeout_allows = s.retry_on_timeout || !failure.timed_out_after_sending();
    if failure.retryable() && s.can_retry && timeout_allows {
        return FailureAction::Retry;
    }
    if s.head_sent {
        return FailureAction::Cut(cut_message(failure));
    }
    match failure {
        // The provider's body may quote the key: never passed through.
        Failure::Status(Outcome::AuthError) => {
            FailureAction::Answer(ApiError::upstream_auth_failed(s.attempts))
        }
        Failure::Status(_) => FailureAction::PassThrough,
        // The provider said it failed (or just stopped): not an invalid answer.
        Failure::InvalidBody(UpstreamBroken {
            fault: BodyFault::Incomplete | BodyFault::ErrorEvent,
            ..
        }) => FailureAction::Answer(ApiError::upstream_failed(s.attempts)),
        Failure::InvalidBody(_) => FailureAction::Answer(ApiError::upstream_invalid(s.attempts)),
        f if f.outcome(false) == Outcome::Timeout => {
            FailureAction::Answer(ApiError::upstream_timeout(s.attempts))
        }
        _ => FailureAction::Answer(ApiError::upstream_failed(s.attempts)),
    }
}

/// What the final error event of a cut stream says about `failure`.
fn cut_message(failure: Failure) -> &'static str {
    match failure {
        Failure::InvalidBody(broken) => broken.why,
        Failure::Transport { stalled: true, .. } => STALLED_MESSAGE,
        Failure::Status(_) => STATUS_MESSAGE,
        _ => BROKEN_MESSAGE,
    }
}

/// Whether `retry_on_timeout = false` alone kept this failure from being retried
/// (counted in `berry_timeouts_not_retried_total`).
pub fn timeout_retry_withheld(failure: Failure, s: &Situation) -> bool {
    let lenient = Situation {
        retry_on_timeout: true,
        ..*s
    };
    !s.retry_on_timeout
        && !action_for(failure, s).retries()
        && action_for(failure, &lenient).retries()
}

/// An action attached to the Pingora error that carries it to `fail_to_proxy`; the
/// error's original cause is kept as this one's source.
#[derive(Debug)]
pub struct Ruling {
    pub action: FailureAction,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl std::fmt::Display for Ruling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gateway verdict: {:?}", self.action)
    }
}

impl std::error::Error for Ruling {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// Attaches `action` to `e` (and sets its retry flag to match).
pub fn rule(mut e: Box<Error>, action: FailureAction) -> Box<Error> {
    e.set_retry(action.retries());
    let cause = e.cause.take();
    e.set_cause(Ruling { action, cause });
    e
}

/// A new gateway error of `name` carrying `action`.
pub fn ruled(name: &'static str, action: FailureAction) -> Box<Error> {
    rule(Error::new(ErrorType::Custom(name)), action)
}

/// The action attached to `e`, if the gateway ruled on it.
pub fn action_of(e: &Error) -> Option<&FailureAction> {
    e.cause
        .as_deref()
        .and_then(|c| c.downcast_ref::<Ruling>())
        .map(|r| &r.action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(committed: bool, can_retry: bool, stale_pooled: bool) -> Situation {
        Situation {
            committed,
            head_sent: committed,
            can_retry,
            stale_pooled,
            attempts: 2,
            retry_on_timeout: true,
        }
    }

    /// `s` with `retry_on_timeout = false`.
    fn no_timeout_retry(s: Situation) -> Situation {
        Situation {
            retry_on_timeout: false,
            ..s
        }
    }

    const CONNECT: Failure = Failure::Connect { timed_out: false };
    const CONNECT_TIMEOUT: Failure = Failure::Connect { timed_out: true };
    const HEADER_TIMEOUT: Failure = Failure::Transport {
        outcome: Outcome::Timeout,
        stalled: false,
    };
    const RESET: Failure = Failure::Transport {
        outcome: Outcome::ConnectError,
        stalled: false,
    };
    const STALL: Failure = Failure::Transport {
        outcome: Outcome::Timeout,
        stalled: true,
    };
    const S503: Failure = Failure::Status(Outcome::ServerError);
    const S429: Failure = Failure::Status(Outcome::RateLimited {
        retry_after_ms: None,
    });
    const GARBAGE: Failure = Failure::InvalidBody(UpstreamBroken::invalid(GARBAGE_MESSAGE));
    const S401: Failure = Failure::Status(Outcome::AuthError);
    const INCOMPLETE: Failure =
        Failure::InvalidBody(UpstreamBroken::incomplete(INCOMPLETE_MESSAGE));
    const ERROR_EVENT: Failure =
        Failure::InvalidBody(UpstreamBroken::error_event(ERROR_EVENT_MESSAGE));

    /// A head went out, no content yet (a stream before its commit point).
    fn head_only(can_retry: bool) -> Situation {
        Situation {
            committed: false,
            head_sent: true,
            can_retry,
            stale_pooled: false,
            attempts: 2,
            retry_on_timeout: true,
        }
    }
    const NOT_JSON: Failure = Failure::InvalidBody(UpstreamBroken::invalid(INVALID_JSON_MESSAGE));

    /// The whole table: (failure, committed, can_retry, stale_pooled) → action.
    #[test]
    fn decision_table() {
        let failed = FailureAction::Answer(ApiError::upstream_failed(2));
        let timeout = FailureAction::Answer(ApiError::upstream_timeout(2));
        let invalid = FailureAction::Answer(ApiError::upstream_invalid(2));
        let cases: Vec<(Failure, Situation, FailureAction)> = vec![
            // before the first byte, with a backend left: retry every backend failure
            (CONNECT, s(false, true, false), FailureAction::Retry),
            (CONNECT_TIMEOUT, s(false, true, false), FailureAction::Retry),
            (HEADER_TIMEOUT, s(false, true, false), FailureAction::Retry),
            (RESET, s(false, true, false), FailureAction::Retry),
            (S503, s(false, true, false), FailureAction::Retry),
            (S429, s(false, true, false), FailureAction::Retry),
            (GARBAGE, s(false, true, false), FailureAction::Retry),
            (NOT_JSON, s(false, true, false), FailureAction::Retry),
            // nothing left: answer with the error that says what happened
            (CONNECT, s(false, false, false), failed.clone()),
            (RESET, s(false, false, false), failed.clone()),
            (CONNECT_TIMEOUT, s(false, false, false), timeout.clone()),
            (HEADER_TIMEOUT, s(false, false, false), timeout.clone()),
            (NOT_JSON, s(false, false, false), invalid.clone()),
            (GARBAGE, s(false, false, false), invalid),
            // a failure status with nothing left is the upstream's own answer
            (S503, s(false, false, false), FailureAction::PassThrough),
            (S429, s(false, false, false), FailureAction::PassThrough),
            // client errors are never retried
            (
                Failure::Status(Outcome::ClientError),
                s(false, true, false),
                FailureAction::PassThrough,
            ),
            (
                Failure::Status(Outcome::ModelError),
                s(false, true, false),
                FailureAction::PassThrough,
            ),
            // a stale pooled connection is retried without counting, even with no backend left
            (RESET, s(false, false, true), FailureAction::RetryStale),
            (
                HEADER_TIMEOUT,
                s(false, true, true),
                FailureAction::RetryStale,
            ),
            // after the first byte: never retry, cut with the right message
            (
                RESET,
                s(true, true, false),
                FailureAction::Cut(BROKEN_MESSAGE),
            ),
            (
                STALL,
                s(true, true, false),
                FailureAction::Cut(STALLED_MESSAGE),
            ),
            (
                GARBAGE,
                s(true, true, false),
                FailureAction::Cut(GARBAGE_MESSAGE),
            ),
            (
                NOT_JSON,
                s(true, false, false),
                FailureAction::Cut(INVALID_JSON_MESSAGE),
            ),
            (
                RESET,
                s(true, true, true),
                FailureAction::Cut(BROKEN_MESSAGE),
            ),
            // a refused key is retried; with nothing left the provider's body stays hidden
            (S401, s(false, true, false), FailureAction::Retry),
            (
                S401,
                s(false, false, false),
                FailureAction::Answer(ApiError::upstream_auth_failed(2)),
            ),
            // a stream whose head went out before its commit point: retried while possible,
            // then reported inside the stream (never a status after a head)
            (INCOMPLETE, head_only(true), FailureAction::Retry),
            (ERROR_EVENT, head_only(true), FailureAction::Retry),
            (
                INCOMPLETE,
                head_only(false),
                FailureAction::Cut(INCOMPLETE_MESSAGE),
            ),
            (
                ERROR_EVENT,
                head_only(false),
                FailureAction::Cut(ERROR_EVENT_MESSAGE),
            ),
            (S503, head_only(false), FailureAction::Cut(STATUS_MESSAGE)),
            (S401, head_only(false), FailureAction::Cut(STATUS_MESSAGE)),
            (
                CONNECT,
                head_only(false),
                FailureAction::Cut(BROKEN_MESSAGE),
            ),
            (HEADER_TIMEOUT, head_only(true), FailureAction::Retry),
            // the same before any head went out (head and preamble in one read)
            (ERROR_EVENT, s(false, false, false), failed.clone()),
            (INCOMPLETE, s(false, false, false), failed.clone()),
            // the client left: nothing to answer, whatever else holds
            (
                Failure::ClientGone,
                s(false, true, false),
                FailureAction::Abandon,
            ),
            (
                Failure::ClientGone,
                s(true, false, true),
                FailureAction::Abandon,
            ),
            // retry_on_timeout = false: a timeout after the request was sent is answered
            // (504), even with a backend left ...
            (
                HEADER_TIMEOUT,
                no_timeout_retry(s(false, true, false)),
                timeout.clone(),
            ),
            (
                STALL,
                no_timeout_retry(s(false, true, false)),
                timeout.clone(),
            ),
            // ... while connect errors, connect timeouts and failure answers still move on
            (
                CONNECT_TIMEOUT,
                no_timeout_retry(s(false, true, false)),
                FailureAction::Retry,
            ),
            (
                CONNECT,
                no_timeout_retry(s(false, true, false)),
                FailureAction::Retry,
            ),
            (
                RESET,
                no_timeout_retry(s(false, true, false)),
                FailureAction::Retry,
            ),
            (
                S503,
                no_timeout_retry(s(false, true, false)),
                FailureAction::Retry,
            ),
            // a stale pooled connection never carried the request to a live provider
            (
                RESET,
                no_timeout_retry(s(false, false, true)),
                FailureAction::RetryStale,
            ),
            // after the first byte nothing changes
            (
                STALL,
                no_timeout_retry(s(true, true, false)),
                FailureAction::Cut(STALLED_MESSAGE),
            ),
        ];
        for (failure, situation, want) in cases {
            assert_eq!(
                action_for(failure, &situation),
                want,
                "{failure:?} in {situation:?}"
            );
        }
    }

    #[test]
    fn a_withheld_timeout_retry_is_told_apart() {
        let strict = no_timeout_retry(s(false, true, false));
        assert!(timeout_retry_withheld(HEADER_TIMEOUT, &strict));
        assert!(timeout_retry_withheld(STALL, &strict));
        // retried anyway, or not retryable for another reason
        assert!(!timeout_retry_withheld(CONNECT_TIMEOUT, &strict));
        assert!(!timeout_retry_withheld(
            HEADER_TIMEOUT,
            &s(false, true, false)
        ));
        let last = no_timeout_retry(s(false, false, false));
        assert!(!timeout_retry_withheld(HEADER_TIMEOUT, &last));
        let committed = no_timeout_retry(s(true, true, false));
        assert!(!timeout_retry_withheld(STALL, &committed));
    }

    #[test]
    fn outcomes_recorded_for_the_backend() {
        assert_eq!(CONNECT.outcome(false), Outcome::ConnectError);
        assert_eq!(CONNECT_TIMEOUT.outcome(false), Outcome::Timeout);
        assert_eq!(HEADER_TIMEOUT.outcome(false), Outcome::Timeout);
        assert_eq!(RESET.outcome(true), Outcome::StreamError);
        assert_eq!(STALL.outcome(true), Outcome::StreamError);
        assert_eq!(GARBAGE.outcome(false), Outcome::StreamError);
        assert_eq!(Failure::ClientGone.outcome(true), Outcome::ClientClosed);
    }

    #[test]
    fn the_action_travels_in_the_error() {
        let mut e = Error::new(ErrorType::ConnectRefused);
        e.set_cause("refused by peer");
        let e = rule(e, FailureAction::Retry);
        assert!(e.retry());
        assert_eq!(action_of(&e), Some(&FailureAction::Retry));
        // the original cause is kept behind the ruling
        let src = std::error::Error::source(e.cause.as_deref().unwrap()).unwrap();
        assert_eq!(src.to_string(), "refused by peer");
        let e = ruled("x", FailureAction::Abandon);
        assert!(!e.retry());
        assert_eq!(action_of(&e), Some(&FailureAction::Abandon));
        assert_eq!(action_of(&Error::new(ErrorType::ReadError)), None);
    }
}
