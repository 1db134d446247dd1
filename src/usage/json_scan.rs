//! The non-stream body scanner: a whole JSON response body, its validity and its top-level
//! `usage`.

use std::sync::OnceLock;

use memchr::memmem;
use serde::de::{DeserializeSeed, IgnoredAny};

use super::document::{analyse, is_ws, starts_json, JsonValidity, Lenient, UsageObject};
use crate::vocab::TokenUsage;

/// Non-stream bodies up to this size are kept whole and validated exactly when the body
/// ends. Above it, only the last [`USAGE_CAPTURE_CAP`] bytes are kept (see
/// [`JsonUsageScanner`]).
pub const JSON_BODY_CAP: usize = 256 << 10;

/// How many trailing bytes of a non-stream body larger than [`JSON_BODY_CAP`] are kept to find
/// its top-level `usage` member in (providers put it at the end; real ones are a few hundred
/// bytes).
pub const USAGE_CAPTURE_CAP: usize = 4096;

/// What the one parse of a whole body found: its top-level usage and whether it is complete.
#[derive(Debug, Clone, Copy)]
struct JsonFindings {
    usage: Option<TokenUsage>,
    complete: bool,
}

/// Observer of a non-stream JSON response body (OpenAI chat / completions / embeddings,
/// Anthropic messages).
///
/// Contract:
/// * [`feed`](Self::feed) accepts the body in arbitrary chunks; results do not depend on how
///   the body is split. Bodies up to [`JSON_BODY_CAP`] bytes are copied into one buffer;
///   [`is_complete`](Self::is_complete) / [`usage`](Self::usage) parse it once with
///   `serde_json` (cached until the next `feed`), so call them when the body has ended.
/// * Only the **top-level** `usage` member counts; `usage` keys nested deeper (e.g. inside
///   `choices`) are ignored.
/// * A body larger than [`JSON_BODY_CAP`] is not kept: only its last [`USAGE_CAPTURE_CAP`]
///   bytes are, in which the last top-level `"usage":{...}` member is looked for (it is at
///   the end in OpenAI and Anthropic replies; a body whose usage comes earlier reports none).
///   Such a body is not validated: it is complete when its last non-whitespace byte closes
///   what its first one opened (`{`…`}`, `[`…`]`, `"`…`"`), so a valid large body is never
///   reported invalid or incomplete.
/// * Never panics.
#[derive(Debug, Default)]
pub struct JsonUsageScanner {
    /// The body so far; once it outgrew [`JSON_BODY_CAP`], its last bytes (at least
    /// [`USAGE_CAPTURE_CAP`], at most twice that).
    buf: Vec<u8>,
    over_cap: bool,
    /// First and last non-whitespace bytes seen.
    first: Option<u8>,
    last: Option<u8>,
    findings: OnceLock<JsonFindings>,
}

impl JsonUsageScanner {
    /// A scanner positioned at the start of a body. Does not allocate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Observe the next chunk of the body: O(chunk length) (a copy and a scan for its first /
    /// last non-whitespace byte). Never panics.
    pub fn feed(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        self.findings.take();
        if self.first.is_none() {
            self.first = chunk.iter().copied().find(|&b| !is_ws(b));
        }
        if let Some(&b) = chunk.iter().rev().find(|&&b| !is_ws(b)) {
            self.last = Some(b);
        }
        if !self.over_cap {
            if self.buf.len() + chunk.len() <= JSON_BODY_CAP {
                self.buf.extend_from_slice(chunk);
                return;
            }
            self.over_cap = true;
        }
        // Keep a tail of USAGE_CAPTURE_CAP..=2*USAGE_CAPTURE_CAP bytes.
        if chunk.len() >= USAGE_CAPTURE_CAP {
            self.buf.clear();
            self.buf.shrink_to(2 * USAGE_CAPTURE_CAP);
            let from = chunk.len() - USAGE_CAPTURE_CAP;
            self.buf
                .extend_from_slice(chunk.get(from..).unwrap_or_default());
        } else {
            self.buf.extend_from_slice(chunk);
            if self.buf.len() > 2 * USAGE_CAPTURE_CAP {
                let cut = self.buf.len() - USAGE_CAPTURE_CAP;
                self.buf.drain(..cut);
                self.buf.shrink_to(2 * USAGE_CAPTURE_CAP);
            }
        }
    }

    /// The usage from the top-level `usage` object(s) of the body fed so far, when one
    /// contained a recognised count (mapped as documented in [`crate::usage`]: a missing count is 0;
    /// several top-level `usage` members merge in order). `None` when the body has no such
    /// object (yet), it is `null` or not an object, has a count that is not a `u64`, a
    /// repeated count or `prompt_tokens_details`, or a `prompt_tokens_details` that is
    /// neither `null` nor an object with a valid `cached_tokens` (once), or the body's first
    /// value is not valid JSON up to its end.
    /// Garbage after a complete value does not hide its usage.
    pub fn usage(&self) -> Option<TokenUsage> {
        self.findings().usage
    }

    /// Whether the body cannot be JSON, judged from its first non-whitespace byte (which
    /// must start a JSON value). Cheap; meant to be asked after every chunk. A body that
    /// starts well but is malformed later is reported by [`is_complete`](Self::is_complete).
    pub fn is_invalid(&self) -> bool {
        self.first.is_some_and(|b| !starts_json(b))
    }

    /// Whether the bytes fed so far form exactly one complete JSON value (whitespace around
    /// it allowed), assuming the body ends here. False for an empty, truncated or malformed
    /// body and for garbage after the value. For a body over [`JSON_BODY_CAP`], see the type
    /// docs.
    pub fn is_complete(&self) -> bool {
        self.findings().complete
    }

    /// How many bytes the scanner holds room for (memory stays bounded over the cap).
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn findings(&self) -> JsonFindings {
        *self.findings.get_or_init(|| self.compute())
    }

    fn compute(&self) -> JsonFindings {
        if self.is_invalid() {
            return JsonFindings {
                usage: None,
                complete: false,
            };
        }
        if self.over_cap {
            let complete = match self.first {
                Some(b'{') => self.last == Some(b'}'),
                Some(b'[') => self.last == Some(b']'),
                Some(b'"') => self.last == Some(b'"'),
                _ => true,
            };
            // Exactly the last USAGE_CAPTURE_CAP bytes, whatever the chunking.
            let from = self.buf.len().saturating_sub(USAGE_CAPTURE_CAP);
            return JsonFindings {
                usage: tail_usage(self.buf.get(from..).unwrap_or_default()),
                complete,
            };
        }
        let (found, verdict) = analyse(&self.buf, false);
        JsonFindings {
            usage: found.usage(),
            complete: verdict == JsonValidity::Valid,
        }
    }
}

/// The last top-level `"usage":{...}` member in `tail`, the end of a large body.
///
/// A candidate `"usage"` must not follow a backslash (then it is inside a string), and be a
/// key whose object value parses; it is top-level when the rest of the tail, after that
/// value, closes exactly one object: `{"u":0` followed by the rest is one JSON value.
fn tail_usage(tail: &[u8]) -> Option<TokenUsage> {
    for pos in memmem::rfind_iter(tail, b"\"usage\"") {
        if pos == 0 || tail.get(pos - 1) == Some(&b'\\') {
            continue;
        }
        let after = tail.get(pos + 7..).unwrap_or_default();
        let Some(colon) = after.iter().position(|&b| !is_ws(b)) else {
            continue;
        };
        if after.get(colon) != Some(&b':') {
            continue;
        }
        let value = after.get(colon + 1..).unwrap_or_default();
        if value.iter().find(|&&b| !is_ws(b)) != Some(&b'{') {
            continue;
        }
        let mut stream = serde_json::Deserializer::from_slice(value).into_iter::<IgnoredAny>();
        if !matches!(stream.next(), Some(Ok(_))) {
            continue;
        }
        let end = stream.byte_offset();
        let rest = value.get(end..).unwrap_or_default();
        let mut probe = Vec::with_capacity(rest.len() + 6);
        probe.extend_from_slice(b"{\"u\":0");
        probe.extend_from_slice(rest);
        if serde_json::from_slice::<IgnoredAny>(&probe).is_err() {
            continue;
        }
        let mut de = serde_json::Deserializer::from_slice(value.get(..end).unwrap_or_default());
        return Lenient(UsageObject)
            .deserialize(&mut de)
            .ok()
            .flatten()?
            .usage();
    }
    None
}
