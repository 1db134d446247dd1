//! The client speaks OpenAI chat completions, the backend Anthropic Messages: the proxy's
//! entry points for this pair (the mapping is [`super::chat`]'s, see its module docs).
//!
//! * [`request`]: chat request body → Messages request body.
//! * [`response`]: Messages response (`message` JSON) → `chat.completion` JSON + usage.
//! * [`Stream`]: Messages event stream → `chat.completion.chunk` stream.
//! * [`stream_error_event`]: the OpenAI-dialect error event the gateway appends to a stream it
//!   cuts.

pub use super::chat::client::{request, response, response_at, DEFAULT_MAX_TOKENS};
pub use super::chat::client_stream::{State, Stream, MAX_ID_BYTES, MAX_OPEN_BLOCKS};
pub use super::chat::finish_reason;

/// The client-dialect error event the gateway appends when it cuts a stream: OpenAI
/// `data: {"error":{"message":…,"type":"upstream_error","param":null,"code":"stream_error"}}\n\n`
/// (the same event the proxy sends for untranslated streams). The caller sends a blank line
/// first when the client may be mid-event; a translated stream never is (only whole events
/// are emitted).
pub fn stream_error_event(message: &str) -> Vec<u8> {
    super::errors::openai_stream_error("upstream_error", Some("stream_error"), message)
}
