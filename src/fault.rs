//! How an upstream answer broke the body rules. One type for every place that
//! finds a broken body (the passthrough scanners, the translators), so the retry decision,
//! the client's error and the `kind` label of `berry_stream_failures_total` follow the
//! kind, never the wording.

use std::fmt;

/// The kind of a broken upstream body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// Not what the head promised: a 2xx JSON answer that is not JSON, bytes that are not
    /// an event stream, events that break the dialect's shape or order. A client left
    /// without a backend gets `upstream_invalid`.
    Invalid,
    /// A stream that ended before its terminal event (`[DONE]`, `message_stop`): the
    /// provider stopped, it did not lie. A client left without a backend gets
    /// `upstream_failed`.
    Incomplete,
    /// The provider reported an error inside the stream (passed on to the client). A client
    /// left without a backend gets `upstream_failed`.
    ErrorEvent,
}

impl BodyFault {
    /// The `kind` label of `berry_stream_failures_total`.
    pub fn label(self) -> &'static str {
        match self {
            BodyFault::Invalid => "invalid",
            BodyFault::Incomplete => "incomplete",
            BodyFault::ErrorEvent => "error_event",
        }
    }
}

/// A broken upstream body: its kind, and why in words (the text of a cut stream's final
/// error event; never upstream bytes, so it cannot carry a secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamBroken {
    pub fault: BodyFault,
    pub why: &'static str,
}

impl UpstreamBroken {
    /// A body that is not what its head promised.
    pub const fn invalid(why: &'static str) -> Self {
        UpstreamBroken {
            fault: BodyFault::Invalid,
            why,
        }
    }

    /// A stream that ended before its terminal event.
    pub const fn incomplete(why: &'static str) -> Self {
        UpstreamBroken {
            fault: BodyFault::Incomplete,
            why,
        }
    }

    /// A stream that carried the provider's in-band error event.
    pub const fn error_event(why: &'static str) -> Self {
        UpstreamBroken {
            fault: BodyFault::ErrorEvent,
            why,
        }
    }
}

impl fmt::Display for UpstreamBroken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upstream answer broken: {}", self.why)
    }
}

impl std::error::Error for UpstreamBroken {}
