//! Observers for upstream LLM response bodies.
//!
//! The gateway forwards every upstream body chunk unchanged and immediately (but for the
//! usage-only chunk a client did not ask for, see [`SseScanner::feed_hiding_usage`]); the
//! types in this module only *observe* those chunks (chunk boundaries are arbitrary: they may split an SSE
//! line, a JSON token, a UTF-8 character or a `\r\n` pair) and report:
//!
//! * the [`TokenUsage`] of the response,
//! * for SSE streams ([`SseScanner`]): whether the stream completed (`data: [DONE]` /
//!   `event: message_stop`), whether the upstream reported an error in-band, and whether the
//!   stream is broken ([`SseError`]),
//! * for non-stream JSON bodies ([`JsonUsageScanner`]): the top-level `usage` member and
//!   whether the body is one JSON value.
//!
//! Layout: `document` reads one JSON document (its `usage` objects and their mapping onto
//! [`TokenUsage`], its validity); `json_scan` holds the non-stream body scanner and
//! `sse_scan` the event-stream scanner. This file only re-exports them.
//!
//! # Usage mapping
//!
//! A `usage` object maps onto the gateway's token partition (a missing or `null` count is 0,
//! e.g. embeddings have no `completion_tokens`):
//!
//! * Output: `output_tokens`, else `completion_tokens`.
//! * OpenAI Responses spelling (`input_tokens` with `input_tokens_details`): the input count
//!   is the whole prompt and `input_tokens_details.cached_tokens` a part of it, mapped with
//!   [`TokenUsage::from_openai`] (reasoning tokens are within `output_tokens`). In a stream
//!   the usage is in the `response` object of `response.completed` (or `.incomplete`).
//! * Anthropic spelling (the object has `input_tokens`, which wins over
//!   `prompt_tokens`): [`TokenUsage::from_anthropic`]: `input_tokens` as is (Anthropic's
//!   already excludes cached tokens), `cache_read_input_tokens` → `cache_read`,
//!   `cache_creation_input_tokens` → `cache_write`. The same cache members count in an
//!   object with no prompt count at all (Anthropic's `message_delta`).
//!   `prompt_tokens_details` is ignored.
//! * OpenAI spelling (`prompt_tokens`, no `input_tokens`): [`TokenUsage::from_openai`] of
//!   `prompt_tokens` and `prompt_tokens_details.cached_tokens` (`input = prompt - cached`
//!   saturating at 0, `cache_read = cached`, `cache_write = 0`; Anthropic cache members in
//!   such an object are ignored, they would count the prompt twice). Such an object sets all
//!   three prompt counts, even without `prompt_tokens_details`. `cached_tokens` without
//!   `prompt_tokens` is ignored.
//!
//! So `input + cache_read + cache_write` is the whole prompt in both dialects, unless an
//! OpenAI upstream reports more cached than prompt tokens.
//!
//! # Design
//!
//! [`SseScanner`] runs the [`SseDecoder`](crate::sse::SseDecoder) (framing, one reused event
//! buffer) and parses every event's data once with `serde_json`. A memmem prefilter decides
//! how: a payload that may carry findings (`"usage"` followed by an object, or `"error"` /
//! `"message"` members) is deserialized by a map visitor that reads the top-level `usage`,
//! `error` and `message.usage` and skips everything else with `IgnoredAny`; any other payload
//! (most stream chunks) is only validated with `IgnoredAny`, about twice as fast.
//! [`JsonUsageScanner`] keeps the body (up to [`JSON_BODY_CAP`]) and parses it once, when
//! asked for a verdict.
//!
//! JSON validity is exactly `serde_json`'s `IgnoredAny`: unlimited nesting (its skipping is
//! iterative), no control characters in strings, escapes checked, UTF-8 not checked.
//! Member names are matched on their raw bytes (an escaped `"us\u0061ge"` is not `usage`).
//!
//! [`TokenUsage`]: crate::vocab::TokenUsage
//! [`TokenUsage::from_anthropic`]: crate::vocab::TokenUsage::from_anthropic
//! [`TokenUsage::from_openai`]: crate::vocab::TokenUsage::from_openai

mod document;
mod json_scan;
mod sse_scan;

pub use crate::sse::{SseError, MAX_SSE_LINE};
pub use json_scan::{JsonUsageScanner, JSON_BODY_CAP, USAGE_CAPTURE_CAP};
pub use sse_scan::{content_bytes, Preamble, SseScanner};

#[cfg(test)]
mod tests;
