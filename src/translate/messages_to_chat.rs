//! The client speaks Anthropic Messages, the backend OpenAI chat completions: the proxy's
//! entry points for this pair (the mapping is [`super::chat`]'s, see its module docs).
//!
//! * [`request`]: Messages request body → chat request body.
//! * [`response`]: `chat.completion` JSON → Messages `message` JSON + usage.
//! * [`Stream`]: `chat.completion.chunk` stream → Messages event stream.
//! * [`stream_error_event`]: the Anthropic-dialect error event the gateway appends to a
//!   stream it cuts.

pub use super::chat::backend::{request, response};
pub use super::chat::backend_stream::{State, Stream};
pub use super::chat::stop_reason;

/// The client-dialect error event the gateway appends when it cuts a stream:
/// `event: error\ndata: {"type":"error","error":{"type":"api_error","message":…}}\n\n`. The
/// caller sends a blank line first when the client may be mid-event; a translated stream
/// never is (only whole events are emitted).
pub fn stream_error_event(message: &str) -> Vec<u8> {
    super::errors::anthropic_stream_error("api_error", message)
}
