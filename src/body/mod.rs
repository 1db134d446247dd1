//! Request-body scanner and byte-splicing rewriter for OpenAI-compatible request bodies.
//!
//! The gateway reads a client body once with [`scan`], which validates the *whole* body as
//! strict RFC 8259 JSON (with [`serde_json`]) and records where the top-level `"model"` value
//! lives. The body is then rewritten with [`apply_edits`] by splicing byte ranges, so every
//! byte the gateway did not deliberately change (key order, whitespace, escapes, number
//! spellings) reaches the provider unchanged. Nothing is ever re-serialised.
//!
//! # Security contract
//!
//! The gateway and the provider must never disagree about which model a body names (that would
//! bypass model access control) nor about whether the request streams (that would bypass usage
//! accounting). Therefore [`scan`] refuses, rather than guesses, whenever a reasonable parser
//! could read the body differently:
//!
//! * invalid UTF-8, a leading byte-order mark, invalid JSON, or anything but whitespace after
//!   the top-level object;
//! * more than one top-level key that *decodes* to `model` (`"mo\u0064el"` is `model`);
//! * a `model` value that is not a non-empty string;
//! * unpaired UTF-16 surrogate escapes in any string the scanner decodes (top-level keys, the
//!   model value, keys directly inside `stream_options`), since decoders differ on those;
//! * a top-level `stream` that is not `true`, `false` or `null` (lenient providers coerce
//!   e.g. `"true"` or `1` to `true`), and duplicate top-level `stream` / `stream_options` keys.
//!   These are reported as [`BodyError::InvalidJson`] with a descriptive `reason`;
//! * a top-level key other than `model` / `stream` that equals one of them under Unicode
//!   case folding (`MODEL`, `Model`, `ſtream`): some providers' JSON decoders match keys
//!   case-insensitively and would read it (also an [`BodyError::InvalidJson`] reason);
//! * nesting deeper than [`MAX_DEPTH`].
//!
//! Strings that are not decoded (message contents, nested keys, …) are validated against the
//! RFC 8259 grammar only, which permits unpaired surrogate escapes such as `"\ud800"`.
//!
//! # How
//!
//! UTF-8 is validated once up front ([`std::str::from_utf8`]; serde_json's `from_slice` would
//! not check strings it skips), then one [`serde_json`] pass over the `str` runs a map visitor
//! on the top-level object. Every top-level key is decoded (serde_json lends it, from the body
//! or from its scratch buffer, so no key is copied) and classified in one place, `Key::of`.
//! The values of `model`, `stream` and `stream_options` are taken as [`RawValue`]s, whose
//! address inside the body is their byte span; all other values are validated and skipped as
//! [`IgnoredAny`]. Besides the `model` [`String`], the only allocation is serde_json's scratch
//! buffer (escaped keys, nested containers being skipped).
//!
//! The same pass finds the request's session keys ([`BodySessionKeys`], hashed at once:
//! [`SessionKey`]): a top-level `prompt_cache_key` string, and the `user_id` string of a
//! top-level `metadata` object (that small object is read one level deep, its keys
//! undecoded). Neither is ever a reason to refuse a body.
//!
//! serde_json skips values iteratively (no stack overflow) but without any nesting limit, so
//! depth is checked here, linearly. A body with at most [`MAX_DEPTH`] bytes `[`/`{` cannot be
//! too deep (typical chat bodies: one vectorised count). Otherwise each top-level array or
//! object is taken apart one level more (its elements as [`RawValue`]s), and only an element
//! with enough bytes and brackets to be too deep is walked bracket by bracket, so a long
//! `messages` array of ordinary messages is never walked.
//!
//! Files: this one holds [`scan`]; `outcome` its result and error types ([`RequestScan`],
//! [`BodyError`], [`reason`]); `members` the serde visitors over the top-level members;
//! `depth` the nesting check; `session` the session keys; `edits` the splices ([`Edit`], [`apply_edits`],
//! [`include_usage_edit`], [`json_string_literal`]).
//!
//! [`RawValue`]: serde_json::value::RawValue
//! [`IgnoredAny`]: serde::de::IgnoredAny

mod depth;
mod edits;
mod members;
mod outcome;
mod session;

use serde::de::Deserializer as _;

use depth::{few_openers, too_deep};
pub use edits::{
    apply_edits, client_asked_for_usage, include_usage_edit, json_string_literal, Edit,
};
use members::{Members, TopLevel};
use outcome::{invalid, syntax_error, WS};
pub use outcome::{reason, BodyError, IncludeUsage, RequestScan, StreamOptions, MAX_DEPTH};
pub use session::{BodySessionKeys, SessionKey};

/// Validate and scan a whole request body.
///
/// The body must be exactly one JSON object, optionally surrounded by JSON whitespace
/// (space, tab, CR, LF; no BOM). Runs in time linear in the body length, recurses at most
/// two containers deep (skipped values are walked iteratively) and never panics. Allocates
/// [`RequestScan::model`] and serde_json's scratch buffer, nothing else.
///
/// Error precedence (deterministic): [`BodyError::InvalidUtf8`], then [`BodyError::NotAnObject`],
/// then the first syntax error / [`BodyError::TooDeep`] in document order, then
/// [`BodyError::DuplicateModel`], then a problem with the (first) `model` value
/// ([`BodyError::ModelNotString`] / [`BodyError::EmptyModel`]), then the first `stream` /
/// `stream_options` ambiguity, then [`BodyError::MissingModel`].
pub fn scan(body: &[u8]) -> Result<RequestScan, BodyError> {
    let text = std::str::from_utf8(body).map_err(|_| BodyError::InvalidUtf8)?;
    let start = text.len() - text.trim_start_matches(WS).len();
    match body.get(start) {
        Some(b'{') => {}
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            return Err(BodyError::NotAnObject);
        }
        Some(_) => return Err(invalid(start, reason::EXPECTED_OBJECT)),
        None => return Err(invalid(start, reason::EOF)),
    }

    // A body with at most MAX_DEPTH opening brackets (typical chat bodies) cannot nest too
    // deeply, so its values need no depth checks.
    let mut members = Members::new(text, !few_openers(body, MAX_DEPTH));
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = (&mut de)
        .deserialize_map(TopLevel(&mut members))
        .and_then(|()| de.end());
    if let Err(e) = parsed {
        if let Some(err) = members.abort {
            return Err(err); // our own verdict, already in document order
        }
        let err = syntax_error(text, 0, &e);
        // The value serde_json failed on was not depth-checked; a container in it that opens
        // too deep before the syntax error comes first in document order.
        let at = match err {
            BodyError::InvalidJson { offset, .. } => offset,
            _ => body.len(),
        };
        if members.check_depth && too_deep(body.get(..at).unwrap_or(body), 0) {
            return Err(BodyError::TooDeep);
        }
        return Err(err);
    }
    members.finish(body)
}

#[cfg(test)]
mod tests;
