//! Translation between client and backend dialects. Pure functions and state machines over
//! bytes and the typed wire schemas of [`crate::wire`]: no I/O, no Pingora.
//!
//! Why a hub: clients speak four APIs (OpenAI chat, OpenAI Responses, Anthropic Messages,
//! Gemini) and so do backends. Pairwise translators grow as N² files; mapping every dialect
//! to and from one shared representation grows as 2N mappings in N modules. The hub is the
//! Anthropic Messages schema ([`crate::wire::anthropic`]) because that API is the richest of
//! the four: typed content blocks, `tool_use` ids that pair calls and results, thinking
//! blocks with their signatures, `cache_control`, and cache reads and writes counted apart.
//! Chat completions as the hub (LiteLLM's choice) would lose thinking signatures, cache
//! writes and reasoning items on the way through. The hub's types carry what today's
//! mappings use (text, images, tool use and results, usage); a dialect that needs more of
//! the Messages API (thinking and signatures for Responses reasoning items, say) adds those
//! members to [`crate::wire::anthropic`] with its module. Mapping out of the hub drops, per
//! target, only what the target cannot express: refused when it would change the answer,
//! dropped when advisory.
//!
//! Layout: one module per non-hub dialect, holding both directions of its mapping (its API
//! as the client's, the hub's API as the backend's; and the hub's API as the client's, its
//! API as the backend's): today [`chat`]. Adding OpenAI Responses is `src/wire/responses.rs`
//! (its schema) plus `src/translate/responses/` (its mapping to and from the hub); Gemini is
//! `src/wire/gemini.rs` plus `src/translate/gemini/`. The entry points take and return
//! bytes; [`chat_to_messages`] and [`messages_to_chat`] are the proxy's entry points for
//! today's two pairs, and the proxy picks the pair per attempt
//! (`proxy::translation::Translation`), one variant per pair. A pair of two non-hub
//! dialects (a Responses client on a chat backend) is the client module's mapping into the
//! hub followed by the backend module's mapping out of it.
//!
//! * [`errors`]: upstream error answers of one dialect in the other's shape.
//! * [`stream`]: the stream shell every event translator runs in.
//! * `anthropic_in`, `chat_in`: reading and checking a backend's event stream (Anthropic
//!   events, chat chunks), shared by every translator out of it.
//!
//! Contracts shared by every translator:
//! * Nothing panics and nothing loops on any input; malformed input is an `Err`.
//! * Requests: a field the target dialect cannot express and that would change the answer
//!   is an [`Untranslatable`] naming it; harmless fields without an equivalent are dropped.
//! * Upstream answers that are not the expected shape (malformed JSON, wrong types,
//!   impossible event order) are [`UpstreamBroken`].
//! * Streams ([`chat_to_messages::Stream`], [`messages_to_chat::Stream`]) accept input split
//!   anywhere and produce the same bytes for every split (they decode with
//!   [`crate::sse::SseDecoder`] and translate whole events). Memory is bounded: one event
//!   (the decoder's limit) plus a few small fields.
//! * JSON strings (text, tool arguments, ids) are carried as [`crate::wire::raw::Raw`] and
//!   written verbatim, never decoded and re-encoded, so content is byte-for-byte what the
//!   provider sent. All JSON is written by the wire types' derived `Serialize`.

pub(crate) mod anthropic_in;
pub mod cache_breakpoints;
pub mod chat;
pub(crate) mod chat_in;
pub mod chat_to_messages;
pub mod errors;
pub mod gemini;
pub mod messages_to_chat;
pub mod responses;
pub mod stream;

/// A client request the target dialect cannot express: 400 invalid_request_error with
/// `param` = the field and a message naming it.
///
/// `param` is the top-level request field at fault (`messages` for anything inside the
/// conversation). It is empty only when the body is not a JSON object at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslatable {
    /// The field at fault (e.g. `n`, `logprobs`, `messages`).
    pub param: String,
    /// A client-facing message that names the field.
    pub message: String,
}

impl Untranslatable {
    pub(crate) fn new(param: &str, message: impl Into<String>) -> Self {
        Untranslatable {
            param: param.to_owned(),
            message: message.into(),
        }
    }

    /// "`param` is not supported ..." for a field with no equivalent.
    pub(crate) fn unsupported(param: &str, provider: &str) -> Self {
        Untranslatable::new(
            param,
            format!(
                "The parameter `{param}` is not supported for this model ({provider} backend)."
            ),
        )
    }

    /// A field whose value does not have the expected shape.
    pub(crate) fn invalid(param: &str, why: impl fmt::Display) -> Self {
        Untranslatable::new(param, format!("Invalid value for `{param}`: {why}"))
    }
}

impl fmt::Display for Untranslatable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Untranslatable {}

/// A broken upstream body/stream (malformed JSON, impossible event order, an early end):
/// the proxy treats it as an upstream failure (retry before the commit point, error event
/// after).
pub use crate::fault::UpstreamBroken;

use std::fmt;

/// Unix time in seconds (0 if the clock is before 1970).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
