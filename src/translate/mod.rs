//! Translation between the two client/backend dialects (SPEC §11): OpenAI chat completions
//! and Anthropic Messages. Pure functions and state machines over bytes: no I/O, no Pingora.
//!
//! * [`chat_to_messages`]: the client speaks OpenAI chat, the backend Anthropic Messages.
//! * [`messages_to_chat`]: the client speaks Anthropic Messages, the backend OpenAI chat.
//! * [`errors`]: upstream error answers of one dialect in the other's shape.
//!
//! Contracts shared by every translator:
//! * Nothing panics and nothing loops on any input; malformed input is an `Err`.
//! * Requests: a field the target dialect cannot express and that would change the answer
//!   is a [`Refusal`] naming it; harmless fields without an equivalent are dropped.
//! * Upstream answers that are not the expected shape (malformed JSON, wrong types,
//!   impossible event order) are [`UpstreamBroken`].
//! * Streams ([`chat_to_messages::Stream`], [`messages_to_chat::Stream`]) accept input split
//!   anywhere and produce the same bytes for every split (they decode with
//!   [`crate::sse::SseDecoder`] and translate whole events). Memory is bounded: one event
//!   (the decoder's limit) plus a few small fields.
//! * JSON string literals (text, tool arguments, ids) are copied verbatim from input to
//!   output, never decoded and re-encoded, so content is byte-for-byte what the provider sent.

pub mod chat_to_messages;
pub mod errors;
mod json;
pub mod messages_to_chat;
pub mod stream;

pub use crate::vocab::TokenUsage;

/// A client request the target dialect cannot express: 400 invalid_request_error with
/// `param` = the field and a message naming it.
///
/// `param` is the top-level request field at fault (`messages` for anything inside the
/// conversation). It is empty only when the body is not a JSON object at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The field at fault (e.g. `n`, `logprobs`, `messages`).
    pub param: String,
    /// A client-facing message that names the field.
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(param: &str, message: impl Into<String>) -> Self {
        Refusal {
            param: param.to_owned(),
            message: message.into(),
        }
    }

    /// "`param` is not supported ..." for a field with no equivalent.
    pub(crate) fn unsupported(param: &str, provider: &str) -> Self {
        Refusal::new(
            param,
            format!(
                "The parameter `{param}` is not supported for this model ({provider} backend)."
            ),
        )
    }

    /// A field whose value does not have the expected shape.
    pub(crate) fn invalid(param: &str, why: impl fmt::Display) -> Self {
        Refusal::new(param, format!("Invalid value for `{param}`: {why}"))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

/// A broken upstream body/stream (malformed JSON, impossible event order, an early end):
/// the proxy treats it as an upstream failure (retry before the commit point, error event
/// after).
pub use crate::fault::UpstreamBroken;

use std::fmt;

#[cfg(test)]
mod tests;
