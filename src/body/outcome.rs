//! What a body scan concludes: the scan result, the errors with their reasons, and the
//! helpers the scanner's parts share to build them.

use std::fmt;
use std::ops::Range;

/// Nesting limit for objects and arrays; deeper bodies are refused with [`BodyError::TooDeep`].
///
/// The top-level object is depth 1, so a body may contain up to `MAX_DEPTH - 1` further levels
/// of nested containers.
pub const MAX_DEPTH: usize = 128;

/// What [`scan`](super::scan) learned about a request body. All offsets are byte offsets into
/// the scanned body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestScan {
    /// Span of the top-level `model` value, INCLUDING its two quote characters, so replacing it
    /// with [`json_string_literal`](super::json_string_literal) output yields valid JSON.
    pub model_span: Range<usize>,
    /// The model name after JSON unescaping. Never empty.
    pub model: String,
    /// `true` iff the top-level `stream` value is `true`; `false` when it is absent, `false`,
    /// or `null` (any other value is refused by [`scan`](super::scan)).
    pub stream: bool,
    /// Offset of the closing `}` of the top-level object.
    ///
    /// A successfully scanned object always has a `model` member, so it is never empty: text
    /// inserted just before `object_end` must start with a comma (`,"key":value`) and never
    /// needs a trailing one.
    pub object_end: usize,
    /// Shape of the top-level `stream_options` member.
    pub stream_options: StreamOptions,
    /// Session keys the body carries (hashed).
    pub session: super::session::BodySessionKeys,
}

/// Shape of the top-level `stream_options` member, as needed by
/// [`include_usage_edit`](super::include_usage_edit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOptions {
    /// There is no top-level `stream_options` key.
    Absent,
    /// `stream_options` is an object.
    Object {
        /// Offset of the object's `{`.
        open_brace: usize,
        /// Offset just past the object's `}`.
        end: usize,
        /// The object has no members (`{}`, possibly with inner whitespace).
        empty: bool,
        /// The object's `include_usage` keys (compared after unescaping).
        include_usage: IncludeUsage,
    },
    /// `stream_options` is present but not an object (e.g. `null`): its value spans
    /// `start..end`.
    Other {
        /// Offset of the value's first byte.
        start: usize,
        /// Offset just past the value's last byte.
        end: usize,
    },
}

/// The `include_usage` members of a `stream_options` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeUsage {
    /// No `include_usage` key.
    Absent,
    /// The last `include_usage` key has the literal value `true` (what a JSON reader that
    /// keeps the last of duplicate keys decodes).
    True,
    /// Exactly one `include_usage` key, whose value (anything but `true`) spans `start..end`.
    Value {
        /// Offset of the value's first byte.
        start: usize,
        /// Offset just past the value's last byte.
        end: usize,
    },
    /// Several `include_usage` keys, the last not `true`.
    Several,
}

/// Why a request body was refused. Every variant maps to an HTTP 400 for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body is not valid UTF-8.
    InvalidUtf8,
    /// Syntax error (or an ambiguity the gateway refuses, see the module docs) at byte `offset`.
    InvalidJson {
        /// Byte offset into the body where the problem was detected.
        offset: usize,
        /// Short, static description; never contains body content.
        reason: &'static str,
    },
    /// The body is a JSON value other than an object (it starts with `[`, `"`, a digit, …).
    NotAnObject,
    /// The top-level object has no `model` key.
    MissingModel,
    /// The top-level `model` is `""`.
    EmptyModel,
    /// The top-level `model` is not a string.
    ModelNotString,
    /// The top-level object has more than one key that decodes to `model`.
    DuplicateModel,
    /// Objects/arrays are nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl BodyError {
    /// Human-readable message for an OpenAI-style 400 error.
    ///
    /// Never echoes body content; at most a byte offset and a static reason are included.
    pub fn message(&self) -> String {
        match self {
            BodyError::InvalidUtf8 => "Request body is not valid UTF-8.".to_owned(),
            BodyError::InvalidJson { offset, reason } => {
                format!("Request body is not valid JSON: {reason} at byte offset {offset}.")
            }
            BodyError::NotAnObject => "Request body must be a JSON object.".to_owned(),
            BodyError::MissingModel => "Missing required parameter: 'model'.".to_owned(),
            BodyError::EmptyModel => "Parameter 'model' must not be empty.".to_owned(),
            BodyError::ModelNotString => "Parameter 'model' must be a string.".to_owned(),
            BodyError::DuplicateModel => {
                "Request body contains more than one 'model' parameter.".to_owned()
            }
            BodyError::TooDeep => {
                format!("Request body is nested deeper than {MAX_DEPTH} levels.")
            }
        }
    }
}

impl BodyError {
    /// A fixed label for metrics (`berry_invalid_requests_total{reason}`): never body
    /// content.
    pub fn kind(&self) -> &'static str {
        match self {
            BodyError::InvalidUtf8 => "invalid_utf8",
            BodyError::InvalidJson {
                reason: reason::CASE_FOLDED_KEY,
                ..
            } => "case_folded_key",
            BodyError::InvalidJson {
                reason: reason::DUPLICATE_STREAM | reason::DUPLICATE_STREAM_OPTIONS,
                ..
            }
            | BodyError::DuplicateModel => "duplicate_key",
            BodyError::InvalidJson { .. } => "invalid_json",
            BodyError::NotAnObject => "not_an_object",
            BodyError::MissingModel | BodyError::EmptyModel | BodyError::ModelNotString => {
                "bad_model"
            }
            BodyError::TooDeep => "too_deep",
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for BodyError {}

/// The `reason` strings of [`BodyError::InvalidJson`]: static, never body content, one per
/// kind of problem, so callers can tell the problems apart by comparing with these constants.
///
/// All but the last five are violations of the JSON grammar. The last five (`LONE_SURROGATE`,
/// `STREAM_NOT_BOOL`, `DUPLICATE_STREAM`, `DUPLICATE_STREAM_OPTIONS`, `CASE_FOLDED_KEY`) refuse
/// bodies the grammar allows but that parsers could read differently (see the module docs).
pub mod reason {
    /// The body ends inside the object.
    pub const EOF: &str = "unexpected end of input";
    /// No value where one must start.
    pub const EXPECTED_VALUE: &str = "expected a JSON value";
    /// The body does not start with `{` (nor with another JSON value).
    pub const EXPECTED_OBJECT: &str = "expected a JSON object";
    /// An object member does not start with a string key.
    pub const EXPECTED_KEY: &str = "expected a string key";
    /// A key is not followed by `:`.
    pub const EXPECTED_COLON: &str = "expected ':'";
    /// An object member is not followed by `,` or `}`.
    pub const EXPECTED_COMMA_OR_BRACE: &str = "expected ',' or '}'";
    /// An array element is not followed by `,` or `]`.
    pub const EXPECTED_COMMA_OR_BRACKET: &str = "expected ',' or ']'";
    /// A `,` directly before `}` or `]`.
    pub const TRAILING_COMMA: &str = "trailing comma";
    /// A misspelt `true`, `false` or `null`.
    pub const INVALID_LITERAL: &str = "invalid literal";
    /// A number outside the JSON grammar (or beyond what serde_json represents).
    pub const INVALID_NUMBER: &str = "invalid number";
    /// A byte below 0x20 inside a string.
    pub const CONTROL_CHAR: &str = "unescaped control character in string";
    /// A backslash escape JSON does not define.
    pub const INVALID_ESCAPE: &str = "invalid escape sequence";
    /// An unpaired UTF-16 surrogate escape in a string the scanner decodes.
    pub const LONE_SURROGATE: &str = "unpaired surrogate in \\u escape";
    /// Something other than whitespace after the top-level object.
    pub const TRAILING: &str = "trailing characters after the top-level object";
    /// Any other syntax error.
    pub const SYNTAX: &str = "syntax error";
    /// A top-level `stream` that is not `true`, `false` or `null`.
    pub const STREAM_NOT_BOOL: &str = "'stream' must be true, false or null";
    /// A second top-level key that decodes to `stream`.
    pub const DUPLICATE_STREAM: &str = "duplicate 'stream' key";
    /// A second top-level key that decodes to `stream_options`.
    pub const DUPLICATE_STREAM_OPTIONS: &str = "duplicate 'stream_options' key";
    /// A top-level key equal to `model` or `stream` under Unicode case folding only.
    pub const CASE_FOLDED_KEY: &str =
        "a key that differs from 'model' or 'stream' only in letter case";
}

/// JSON whitespace (RFC 8259): space, tab, LF, CR. Notably not a byte-order mark.
pub(super) const WS: [char; 4] = [' ', '\t', '\n', '\r'];

#[inline]
pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cold]
pub(super) fn invalid(offset: usize, reason: &'static str) -> BodyError {
    BodyError::InvalidJson { offset, reason }
}

/// Byte offset of `part` in `whole`; `part` must be a sub-slice of `whole` (serde_json lends
/// keys and [`RawValue`]s out of the text it parses).
#[inline]
pub(super) fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize)
}

/// serde_json error messages (their prefix, before " at line … column …") and our reasons.
const SERDE_REASONS: [(&str, &str); 15] = [
    ("EOF while parsing", reason::EOF),
    ("expected `:`", reason::EXPECTED_COLON),
    ("expected `,` or `}`", reason::EXPECTED_COMMA_OR_BRACE),
    ("expected `,` or `]`", reason::EXPECTED_COMMA_OR_BRACKET),
    ("expected ident", reason::INVALID_LITERAL),
    ("expected value", reason::EXPECTED_VALUE),
    ("key must be a string", reason::EXPECTED_KEY),
    ("trailing comma", reason::TRAILING_COMMA),
    ("trailing characters", reason::TRAILING),
    ("invalid escape", reason::INVALID_ESCAPE),
    ("invalid number", reason::INVALID_NUMBER),
    ("number out of range", reason::INVALID_NUMBER),
    ("control character", reason::CONTROL_CHAR),
    ("lone leading surrogate", reason::LONE_SURROGATE),
    ("unexpected end of hex escape", reason::LONE_SURROGATE),
];

/// Convert a serde_json error from parsing `text`, which starts at byte `at` of the body.
///
/// serde_json reports the 1-based line and the column (bytes since the last newline) of the
/// byte after the offending one; this turns that into the byte offset of the offending byte,
/// or the end of `text` for a premature end. Its error codes are not public, so the reason is
/// taken from the message prefix (never body content; unknown messages become a generic
/// "syntax error").
#[cold]
#[inline(never)]
pub(super) fn syntax_error(text: &str, at: usize, e: &serde_json::Error) -> BodyError {
    let message = e.to_string();
    if message.starts_with("recursion limit exceeded") {
        return BodyError::TooDeep; // not reachable: the scanner's serde nesting is at most 2
    }
    let reason = SERDE_REASONS
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or(reason::SYNTAX, |&(_, reason)| reason);
    let b = text.as_bytes();
    let offset = if e.is_eof() {
        b.len()
    } else {
        let line_start = match e.line().checked_sub(2) {
            None => 0,
            Some(n) => memchr::memchr_iter(b'\n', b)
                .nth(n)
                .map_or(b.len(), |nl| nl + 1),
        };
        let mut offset = line_start.saturating_add(e.column()).saturating_sub(1);
        // For a control character in a skipped string serde_json reports the column of the
        // character itself rather than the one after it.
        if reason == reason::CONTROL_CHAR && b.get(offset).is_some_and(|&c| c >= 0x20) {
            offset += 1;
        }
        offset.min(b.len())
    };
    invalid(at.saturating_add(offset), reason)
}
