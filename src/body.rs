//! Single-pass scanner and byte-splicing rewriter for OpenAI-compatible request bodies.
//!
//! The gateway reads a client body once with [`scan`], which validates the *whole* body as
//! strict RFC 8259 JSON and records where the top-level `"model"` value lives. The body is then
//! rewritten with [`apply_edits`] by splicing byte ranges, so every byte the gateway did not
//! deliberately change (key order, whitespace, escapes, number spellings) reaches the provider
//! unchanged. Nothing is ever re-serialised.
//!
//! # Security contract
//!
//! The gateway and the provider must never disagree about which model a body names (that would
//! bypass model access control) nor about whether the request streams (that would bypass usage
//! accounting). Therefore [`scan`] refuses, rather than guesses, whenever a reasonable parser
//! could read the body differently:
//!
//! * invalid UTF-8, invalid JSON, or anything but whitespace after the top-level object;
//! * more than one top-level key that *decodes* to `model` (`"mo\u0064el"` is `model`);
//! * a `model` value that is not a non-empty string;
//! * unpaired UTF-16 surrogate escapes in any string the scanner decodes (top-level keys, the
//!   model value, keys directly inside `stream_options`), since decoders differ on those;
//! * a top-level `stream` that is not `true`, `false` or `null` (lenient providers coerce
//!   e.g. `"true"` or `1` to `true`), and duplicate top-level `stream` / `stream_options` keys.
//!   These are reported as [`BodyError::InvalidJson`] with a descriptive `reason`;
//! * nesting deeper than [`MAX_DEPTH`].
//!
//! Strings that are not decoded (message contents, nested keys, …) are validated against the
//! RFC 8259 grammar only, which permits unpaired surrogate escapes such as `"\ud800"`.
//!
//! # Performance
//!
//! UTF-8 is validated once up front with [`std::str::from_utf8`] (SIMD), together with a
//! vectorised check for control bytes; the tokenizer then works on bytes in one linear pass.
//! String contents are skipped to the next `"` or `\` with an inline SWAR check of the first
//! word(s) (most strings are short keys and roles, where a library call's fixed cost dominates),
//! then `memchr2` (SIMD) for long runs. Only when the body contains a control byte somewhere
//! (e.g. pretty-printed JSON) are string runs also checked for unescaped control characters.
//! Only top-level keys, the `model` value and the keys directly inside `stream_options` are
//! decoded; escape-free keys are compared in place. The scanner is iterative (no recursion,
//! a 128-bit container stack) and allocates nothing except the `model` [`String`]. Internal
//! errors are a packed 8-byte word so hot-path `Result`s stay in registers.

use std::fmt;
use std::num::NonZeroU64;
use std::ops::Range;

use memchr::memchr2;

/// Nesting limit for objects and arrays; deeper bodies are refused with [`BodyError::TooDeep`].
///
/// The top-level object is depth 1, so a body may contain up to `MAX_DEPTH - 1` further levels
/// of nested containers.
pub const MAX_DEPTH: usize = 128;

// The container stack of `Parser::skip_value` is a `u128` bit set.
const _: () = assert!(MAX_DEPTH >= 2 && MAX_DEPTH <= 128);

/// What [`scan`] learned about a request body. All offsets are byte offsets into the scanned body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestScan {
    /// Span of the top-level `model` value, INCLUDING its two quote characters, so replacing it
    /// with [`json_string_literal`] output yields valid JSON.
    pub model_span: Range<usize>,
    /// The model name after JSON unescaping. Never empty.
    pub model: String,
    /// `true` iff the top-level `stream` value is `true`; `false` when it is absent, `false`,
    /// or `null` (any other value is refused by [`scan`]).
    pub stream: bool,
    /// Offset of the closing `}` of the top-level object.
    ///
    /// A successfully scanned object always has a `model` member, so it is never empty: text
    /// inserted just before `object_end` must start with a comma (`,"key":value`) and never
    /// needs a trailing one.
    pub object_end: usize,
    /// Shape of the top-level `stream_options` member.
    pub stream_options: StreamOptions,
}

/// Shape of the top-level `stream_options` member, as needed by [`include_usage_edit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOptions {
    /// There is no top-level `stream_options` key.
    Absent,
    /// `stream_options` is an object.
    Object {
        /// Offset of the object's `{`.
        open_brace: usize,
        /// The object has no members (`{}`, possibly with inner whitespace).
        empty: bool,
        /// The object already has an `include_usage` key (compared after unescaping; any value).
        has_include_usage: bool,
    },
    /// `stream_options` is present but not an object (e.g. `null`): leave it alone.
    Other,
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

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for BodyError {}

/// `reason` strings of [`BodyError::InvalidJson`].
mod reason {
    pub const EOF: &str = "unexpected end of input";
    pub const EXPECTED_VALUE: &str = "expected a JSON value";
    pub const EXPECTED_OBJECT: &str = "expected a JSON object";
    pub const EXPECTED_KEY: &str = "expected a string key";
    pub const EXPECTED_COLON: &str = "expected ':'";
    pub const EXPECTED_COMMA_OR_BRACE: &str = "expected ',' or '}'";
    pub const EXPECTED_COMMA_OR_BRACKET: &str = "expected ',' or ']'";
    pub const INVALID_LITERAL: &str = "invalid literal";
    pub const INVALID_NUMBER: &str = "invalid number";
    pub const CONTROL_CHAR: &str = "unescaped control character in string";
    pub const UNTERMINATED_STRING: &str = "unterminated string";
    pub const INVALID_ESCAPE: &str = "invalid escape sequence";
    pub const INVALID_UNICODE_ESCAPE: &str = "invalid \\u escape";
    pub const LONE_SURROGATE: &str = "unpaired surrogate in \\u escape";
    pub const TRAILING: &str = "trailing characters after the top-level object";
    pub const STREAM_NOT_BOOL: &str = "'stream' must be true, false or null";
    pub const DUPLICATE_STREAM: &str = "duplicate 'stream' key";
    pub const DUPLICATE_STREAM_OPTIONS: &str = "duplicate 'stream_options' key";
}

/// Syntax error kinds, kept as a one-byte code on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Eof,
    ExpectedValue,
    ExpectedObject,
    ExpectedKey,
    ExpectedColon,
    ExpectedCommaOrBrace,
    ExpectedCommaOrBracket,
    InvalidLiteral,
    InvalidNumber,
    ControlChar,
    UnterminatedString,
    InvalidEscape,
    InvalidUnicodeEscape,
    LoneSurrogate,
    Trailing,
    TooDeep,
}

/// All codes, indexed by discriminant (used to decode a [`Fail`]).
const CODES: [Code; 16] = [
    Code::Eof,
    Code::ExpectedValue,
    Code::ExpectedObject,
    Code::ExpectedKey,
    Code::ExpectedColon,
    Code::ExpectedCommaOrBrace,
    Code::ExpectedCommaOrBracket,
    Code::InvalidLiteral,
    Code::InvalidNumber,
    Code::ControlChar,
    Code::UnterminatedString,
    Code::InvalidEscape,
    Code::InvalidUnicodeEscape,
    Code::LoneSurrogate,
    Code::Trailing,
    Code::TooDeep,
];

/// Internal error: byte offset and [`Code`] packed into one non-zero word, so `Result<T, Fail>`
/// is returned in registers instead of through memory (a measurable win on short tokens).
/// Converted to [`BodyError`] only once, when `scan` returns.
#[derive(Debug, Clone, Copy)]
struct Fail(NonZeroU64);

impl Fail {
    #[cold]
    #[inline(never)]
    fn new(offset: usize, code: Code) -> Fail {
        let packed = ((offset as u64) << 8) | (code as u64 + 1);
        Fail(NonZeroU64::new(packed).unwrap_or(NonZeroU64::MIN))
    }
}

impl From<Fail> for BodyError {
    #[cold]
    fn from(f: Fail) -> BodyError {
        let word = f.0.get();
        let offset = usize::try_from(word >> 8).unwrap_or(usize::MAX);
        let code = CODES
            .get(usize::from((word & 0xff) as u8).wrapping_sub(1))
            .copied()
            .unwrap_or(Code::TooDeep);
        let reason = match code {
            Code::Eof => reason::EOF,
            Code::ExpectedValue => reason::EXPECTED_VALUE,
            Code::ExpectedObject => reason::EXPECTED_OBJECT,
            Code::ExpectedKey => reason::EXPECTED_KEY,
            Code::ExpectedColon => reason::EXPECTED_COLON,
            Code::ExpectedCommaOrBrace => reason::EXPECTED_COMMA_OR_BRACE,
            Code::ExpectedCommaOrBracket => reason::EXPECTED_COMMA_OR_BRACKET,
            Code::InvalidLiteral => reason::INVALID_LITERAL,
            Code::InvalidNumber => reason::INVALID_NUMBER,
            Code::ControlChar => reason::CONTROL_CHAR,
            Code::UnterminatedString => reason::UNTERMINATED_STRING,
            Code::InvalidEscape => reason::INVALID_ESCAPE,
            Code::InvalidUnicodeEscape => reason::INVALID_UNICODE_ESCAPE,
            Code::LoneSurrogate => reason::LONE_SURROGATE,
            Code::Trailing => reason::TRAILING,
            Code::TooDeep => return BodyError::TooDeep,
        };
        BodyError::InvalidJson { offset, reason }
    }
}

type Res<T> = Result<T, Fail>;

#[inline]
fn invalid<T>(offset: usize, code: Code) -> Res<T> {
    Err(Fail::new(offset, code))
}

/// Validate and scan a whole request body.
///
/// The body must be exactly one JSON object, optionally surrounded by JSON whitespace
/// (space, tab, CR, LF; no BOM). The whole body is validated in a single linear pass;
/// nothing is allocated except [`RequestScan::model`]. Never panics, never recurses.
///
/// Error precedence (deterministic): [`BodyError::InvalidUtf8`], then [`BodyError::NotAnObject`],
/// then the first syntax error / [`BodyError::TooDeep`] in document order, then
/// [`BodyError::DuplicateModel`], then a problem with the (first) `model` value
/// ([`BodyError::ModelNotString`] / [`BodyError::EmptyModel`]), then the first `stream` /
/// `stream_options` ambiguity, then [`BodyError::MissingModel`].
pub fn scan(body: &[u8]) -> Result<RequestScan, BodyError> {
    let text = std::str::from_utf8(body).map_err(|_| BodyError::InvalidUtf8)?;
    let mut p = Parser {
        s: text,
        b: body,
        pos: 0,
        has_control: contains_control(body),
    };
    p.skip_ws();
    match p.peek() {
        Some(b'{') => p.pos += 1,
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            return Err(BodyError::NotAnObject);
        }
        _ => return p.eof_or(Code::ExpectedObject).map_err(BodyError::from),
    }

    let mut model: Option<(Range<usize>, String)> = None;
    let mut model_seen = false;
    let mut duplicate_model = false;
    let mut model_err: Option<BodyError> = None;
    let mut other_err: Option<BodyError> = None;
    let mut stream_seen = false;
    let mut stream = false;
    let mut stream_options = StreamOptions::Absent;
    let mut stream_options_seen = false;

    p.skip_ws();
    let object_end = if p.peek() == Some(b'}') {
        p.pos += 1;
        p.pos - 1
    } else {
        loop {
            let key_start = p.pos;
            if p.peek() != Some(b'"') {
                return p.eof_or(Code::ExpectedKey).map_err(BodyError::from);
            }
            let mut key = KeyBuf::new();
            p.string(&mut key)?;
            p.skip_ws();
            p.expect_byte(b':', Code::ExpectedColon)?;
            p.skip_ws();
            let value_start = p.pos;

            if key.is(b"model") {
                if model_seen {
                    duplicate_model = true;
                    p.skip_value(1)?;
                } else {
                    model_seen = true;
                    if p.peek() == Some(b'"') {
                        let mut name = String::new();
                        p.string(&mut name)?;
                        if name.is_empty() {
                            model_err = Some(BodyError::EmptyModel);
                        } else {
                            model = Some((value_start..p.pos, name));
                        }
                    } else {
                        p.skip_value(1)?;
                        model_err = Some(BodyError::ModelNotString);
                    }
                }
            } else if key.is(b"stream") {
                let value = match p.peek() {
                    Some(b't') => p.literal(b"true").map(|()| Some(true))?,
                    Some(b'f') => p.literal(b"false").map(|()| Some(false))?,
                    Some(b'n') => p.literal(b"null").map(|()| Some(false))?,
                    _ => p.skip_value(1).map(|()| None)?,
                };
                if stream_seen {
                    other_err.get_or_insert(BodyError::InvalidJson {
                        offset: key_start,
                        reason: reason::DUPLICATE_STREAM,
                    });
                } else if value.is_none() {
                    other_err.get_or_insert(BodyError::InvalidJson {
                        offset: value_start,
                        reason: reason::STREAM_NOT_BOOL,
                    });
                }
                stream_seen = true;
                stream = value == Some(true);
            } else if key.is(b"stream_options") {
                let shape = if p.peek() == Some(b'{') {
                    p.stream_options_object()?
                } else {
                    p.skip_value(1)?;
                    StreamOptions::Other
                };
                if stream_options_seen {
                    other_err.get_or_insert(BodyError::InvalidJson {
                        offset: key_start,
                        reason: reason::DUPLICATE_STREAM_OPTIONS,
                    });
                }
                stream_options_seen = true;
                stream_options = shape;
            } else {
                p.skip_value(1)?;
            }

            p.skip_ws();
            match p.peek() {
                Some(b',') => {
                    p.pos += 1;
                    p.skip_ws();
                }
                Some(b'}') => {
                    p.pos += 1;
                    break p.pos - 1;
                }
                _ => {
                    return p
                        .eof_or(Code::ExpectedCommaOrBrace)
                        .map_err(BodyError::from);
                }
            }
        }
    };

    p.skip_ws();
    if p.pos != body.len() {
        return invalid(p.pos, Code::Trailing).map_err(BodyError::from);
    }
    if duplicate_model {
        return Err(BodyError::DuplicateModel);
    }
    if let Some(e) = model_err {
        return Err(e);
    }
    if let Some(e) = other_err {
        return Err(e);
    }
    let Some((model_span, model)) = model else {
        return Err(BodyError::MissingModel);
    };
    Ok(RequestScan {
        model_span,
        model,
        stream,
        object_end,
        stream_options,
    })
}

/// One splice: replace `range` of the original body with `bytes`. An empty range is an insertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit<'a> {
    /// Byte range of the original body to replace (`start..start` to insert at `start`).
    pub range: Range<usize>,
    /// Replacement bytes.
    pub bytes: &'a [u8],
}

/// Apply `edits` to `body`, producing a new body with exactly one allocation of the final size.
///
/// Edits may be given in any order; they are sorted (stably) by range, so insertions at the same
/// offset are applied in the order given, and an insertion at `x` comes before a replacement
/// starting at `x`. Ranges must lie within `body` and must not overlap (checked with
/// `debug_assert!`). In release builds, out-of-bounds or overlapping ranges are clamped to the
/// unconsumed part of `body` instead of panicking.
///
/// The output `Vec` is the only allocation (the in-place stable sort needs no scratch memory for
/// up to 20 edits; the gateway makes at most two).
pub fn apply_edits(body: &[u8], edits: &mut [Edit<'_>]) -> Vec<u8> {
    // Stable sort; allocation-free for the handful of edits the gateway makes.
    edits.sort_by_key(|e| (e.range.start, e.range.end));

    let mut total = 0usize;
    let mut cursor = 0usize;
    for e in edits.iter() {
        debug_assert!(
            e.range.start <= e.range.end && e.range.end <= body.len(),
            "edit {:?} out of bounds for body of {} bytes",
            e.range,
            body.len()
        );
        debug_assert!(e.range.start >= cursor, "overlapping edits");
        let (start, end) = clamp_range(&e.range, cursor, body.len());
        total = total
            .saturating_add(start.saturating_sub(cursor))
            .saturating_add(e.bytes.len());
        cursor = end;
    }
    total = total.saturating_add(body.len().saturating_sub(cursor));

    let mut out = Vec::with_capacity(total);
    cursor = 0;
    for e in edits.iter() {
        let (start, end) = clamp_range(&e.range, cursor, body.len());
        out.extend_from_slice(body.get(cursor..start).unwrap_or_default());
        out.extend_from_slice(e.bytes);
        cursor = end;
    }
    out.extend_from_slice(body.get(cursor..).unwrap_or_default());
    debug_assert_eq!(out.len(), total);
    out
}

/// Clamp `r` to `cursor..len` (requires `cursor <= len`, which `apply_edits` maintains).
#[inline]
fn clamp_range(r: &Range<usize>, cursor: usize, len: usize) -> (usize, usize) {
    let start = r.start.max(cursor).min(len);
    let end = r.end.max(start).min(len);
    (start, end)
}

/// Encode `s` as a JSON string literal, including the surrounding quotes.
///
/// Escapes `"` and `\`, uses the short escapes `\b \f \n \r \t`, and `\u00XX` (lowercase hex) for
/// all other control characters below U+0020. Everything else (including `/`, DEL and non-ASCII)
/// is copied verbatim, so the result is valid JSON whose decoded value is exactly `s`.
pub fn json_string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is the index of an ASCII byte, hence a char boundary.
        out.push_str(s.get(start..i).unwrap_or_default());
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
    out
}

/// The edit that makes a streaming request ask the provider for a final usage chunk.
///
/// Returns `None` when `!scan.stream`. Otherwise:
/// * `stream_options` absent: insert `,"stream_options":{"include_usage":true}` just before
///   [`RequestScan::object_end`] (the object always has `model`, so the leading comma is right);
/// * `stream_options` is an object without `include_usage`: insert `"include_usage":true` right
///   after its `{`, followed by a comma when the object is not empty;
/// * otherwise (`include_usage` already present with any value, or `stream_options` not an
///   object): `None`.
///
/// The edit is an insertion and never overlaps [`RequestScan::model_span`], so it can be applied
/// together with a model replacement in one [`apply_edits`] call.
pub fn include_usage_edit(scan: &RequestScan) -> Option<Edit<'static>> {
    if !scan.stream {
        return None;
    }
    match scan.stream_options {
        StreamOptions::Absent => Some(Edit {
            range: scan.object_end..scan.object_end,
            bytes: br#","stream_options":{"include_usage":true}"#,
        }),
        StreamOptions::Object {
            open_brace,
            empty,
            has_include_usage: false,
        } => {
            let at = open_brace.saturating_add(1);
            Some(Edit {
                range: at..at,
                bytes: if empty {
                    br#""include_usage":true"#
                } else {
                    br#""include_usage":true,"#
                },
            })
        }
        StreamOptions::Object {
            has_include_usage: true,
            ..
        }
        | StreamOptions::Other => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer internals
// ---------------------------------------------------------------------------------------------

/// Receives the decoded contents of a string. `'a` is the lifetime of the body, so sinks may
/// borrow unescaped runs instead of copying them.
trait Sink<'a> {
    /// Whether the string is decoded at all. Decoding sinks also reject unpaired surrogates.
    const DECODE: bool;
    /// A run of the body without escapes (never empty).
    fn push_str(&mut self, s: &'a str);
    /// One character produced by an escape sequence.
    fn push_char(&mut self, c: char);
}

/// Validate-only sink: grammar check, no decoding, unpaired surrogates allowed (RFC 8259).
struct Skip;

impl Sink<'_> for Skip {
    const DECODE: bool = false;
    #[inline]
    fn push_str(&mut self, _: &str) {}
    #[inline]
    fn push_char(&mut self, _: char) {}
}

impl Sink<'_> for String {
    const DECODE: bool = true;
    #[inline]
    fn push_str(&mut self, s: &str) {
        String::push_str(self, s);
    }
    #[inline]
    fn push_char(&mut self, c: char) {
        self.push(c);
    }
}

/// Decoded object key, for comparison against the few keys the scanner looks for.
///
/// A key without escapes (the normal case) is a single run and is only borrowed. Otherwise it is
/// decoded into a 16-byte buffer; longer keys just set `overflow`, since they cannot equal any key
/// we look for.
struct KeyBuf<'a> {
    first: &'a [u8],
    buf: [u8; 16],
    len: usize,
    spilled: bool,
    overflow: bool,
}

impl<'a> KeyBuf<'a> {
    #[inline]
    fn new() -> Self {
        KeyBuf {
            first: &[],
            buf: [0; 16],
            len: 0,
            spilled: false,
            overflow: false,
        }
    }

    #[inline]
    fn is(&self, key: &[u8]) -> bool {
        if self.spilled {
            !self.overflow && self.buf.get(..self.len) == Some(key)
        } else {
            self.first == key
        }
    }

    /// Switch from borrowing to the buffer (first escape seen).
    #[cold]
    fn spill(&mut self) {
        self.spilled = true;
        let first = std::mem::take(&mut self.first);
        self.append(first);
    }

    #[inline]
    fn append(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        match self.buf.get_mut(self.len..end) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(bytes);
                self.len = end;
            }
            _ => self.overflow = true,
        }
    }
}

impl<'a> Sink<'a> for KeyBuf<'a> {
    const DECODE: bool = true;
    #[inline]
    fn push_str(&mut self, s: &'a str) {
        if !self.spilled && self.first.is_empty() {
            self.first = s.as_bytes();
        } else {
            if !self.spilled {
                self.spill();
            }
            self.append(s.as_bytes());
        }
    }
    #[inline]
    fn push_char(&mut self, c: char) {
        if !self.spilled {
            self.spill();
        }
        let mut tmp = [0u8; 4];
        self.append(c.encode_utf8(&mut tmp).as_bytes());
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Flags (high bit of each byte) the bytes of `word` that are `"`, `\` or < 0x20.
///
/// Each term is the classic "has zero / has less than" SWAR test. Borrows can only create false
/// positives in bytes *above* a true positive, so the lowest flag (the first byte in memory order
/// for a little-endian load) is exact.
#[inline]
fn special_flags(word: u64) -> u64 {
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x;
    (zero_in(quote) | zero_in(backslash) | (word.wrapping_sub(ONES * 0x20) & !word)) & HIGH
}

#[inline]
fn load_word(chunk: &[u8]) -> u64 {
    u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or([b'"'; 8]))
}

/// Whether `b` contains any byte < 0x20. A branch-free min-reduction (vectorised); bodies
/// without control bytes, the common case, have to be read in full anyway.
#[inline]
fn contains_control(b: &[u8]) -> bool {
    b.iter().fold(u8::MAX, |m, &x| m.min(x)) < 0x20
}

/// Offset of the first `"` or `\` at or after `i`, or `b.len()` if none. Only valid when the
/// body has no control bytes (see `Parser::has_control`).
///
/// The first 16 bytes are checked inline with SWAR (most strings in a chat body are short keys
/// and roles, where a library call's fixed cost dominates); longer runs use `memchr2` (SIMD).
#[inline]
fn next_quote_or_backslash(b: &[u8], mut i: usize) -> usize {
    for _ in 0..2 {
        let Some(chunk) = b.get(i..i.saturating_add(8)) else {
            let tail = b.get(i..).unwrap_or_default();
            return i + tail
                .iter()
                .position(|&x| x == b'"' || x == b'\\')
                .unwrap_or(tail.len());
        };
        let word = load_word(chunk);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let flags = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash))
            & HIGH;
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = b.get(i..).unwrap_or_default();
    i + memchr2(b'"', b'\\', rest).unwrap_or(rest.len())
}

/// Offset of the first `"`, `\` or control byte at or after `i`, or `b.len()` if none.
///
/// Strings in chat bodies are mostly short (keys, roles), where a library call's fixed cost
/// dominates, so the first 32 bytes are checked inline with SWAR; longer runs are skipped with
/// `memchr2` (SIMD) to the next `"`/`\`, and the skipped bytes are then checked for control
/// characters.
#[inline]
fn next_special(b: &[u8], mut i: usize) -> usize {
    for _ in 0..4 {
        let Some(chunk) = b.get(i..i.saturating_add(8)) else {
            let tail = b.get(i..).unwrap_or_default();
            return i + tail
                .iter()
                .position(|&x| x == b'"' || x == b'\\' || x < 0x20)
                .unwrap_or(tail.len());
        };
        let flags = special_flags(load_word(chunk));
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = b.get(i..).unwrap_or_default();
    let k = memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    i + find_control(rest.get(..k).unwrap_or_default()).unwrap_or(k)
}

/// Offset of the first byte < 0x20 in `seg` (SWAR, eight bytes at a time).
#[inline]
fn find_control(seg: &[u8]) -> Option<usize> {
    let mut chunks = seg.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = load_word(chunk);
        let flags = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
        if flags != 0 {
            return Some(base + (flags.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&x| x < 0x20)
        .map(|p| base + p)
}

/// Value of a hex digit, or a negative number (so an OR of shifted values stays negative).
#[inline]
fn hex_value(c: u8) -> i32 {
    const TABLE: [i8; 256] = {
        let mut t = [-1i8; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as i8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as i8;
            t[b'A' as usize + i] = 10 + i as i8;
            i += 1;
        }
        t
    };
    i32::from(TABLE[usize::from(c)])
}

#[inline]
fn skip_digits(b: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}

/// Byte cursor over a body already known to be valid UTF-8 (`s` and `b` are the same bytes).
struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    /// The body contains at least one byte < 0x20 somewhere, so string contents must be checked
    /// for unescaped control characters. When false (the common case: bodies produced by
    /// `JSON.stringify` / `json.dumps` are single-line), no string can contain one and only `"`
    /// and `\` need to be located.
    has_control: bool,
}

impl<'a> Parser<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Error at the current position: "unexpected end of input" if at the end, else `reason`.
    #[cold]
    fn eof_or<T>(&self, code: Code) -> Res<T> {
        if self.pos >= self.b.len() {
            invalid(self.pos, Code::Eof)
        } else {
            invalid(self.pos, code)
        }
    }

    #[inline]
    fn expect_byte(&mut self, c: u8, code: Code) -> Res<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.eof_or(code)
        }
    }

    /// `true`, `false` or `null` at the current position.
    fn literal(&mut self, lit: &'static [u8]) -> Res<()> {
        let end = self.pos.saturating_add(lit.len());
        match self.b.get(self.pos..end) {
            Some(x) if x == lit => {
                self.pos = end;
                Ok(())
            }
            Some(_) => invalid(self.pos, Code::InvalidLiteral),
            None => {
                let rest = self.b.get(self.pos..).unwrap_or_default();
                if lit.starts_with(rest) {
                    invalid(self.b.len(), Code::Eof)
                } else {
                    invalid(self.pos, Code::InvalidLiteral)
                }
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` at the current position.
    fn number(&mut self) -> Res<()> {
        let b = self.b;
        let mut i = self.pos;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = skip_digits(b, i + 1),
            Some(_) => return invalid(i, Code::InvalidNumber),
            None => return invalid(i, Code::Eof),
        }
        if b.get(i) == Some(&b'.') {
            i = Self::digits1(b, i + 1)?;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            i = Self::digits1(b, i)?;
        }
        self.pos = i;
        Ok(())
    }

    /// One or more digits starting at `i`; returns the offset after them.
    #[inline]
    fn digits1(b: &[u8], i: usize) -> Res<usize> {
        match b.get(i) {
            Some(b'0'..=b'9') => Ok(skip_digits(b, i + 1)),
            Some(_) => invalid(i, Code::InvalidNumber),
            None => invalid(i, Code::Eof),
        }
    }

    /// A string starting at the current position (which must hold `"`); on success the position
    /// is just past the closing quote and `sink` has received the decoded contents.
    #[inline(always)]
    fn string<S: Sink<'a>>(&mut self, sink: &mut S) -> Res<()> {
        let b = self.b;
        let mut i = self.pos.saturating_add(1);
        loop {
            let j = if self.has_control {
                next_special(b, i)
            } else {
                next_quote_or_backslash(b, i)
            };
            if S::DECODE && j > i {
                // Both ends sit next to ASCII bytes (`"`, `\` or an escape), i.e. on char
                // boundaries, so this never yields None.
                sink.push_str(self.s.get(i..j).unwrap_or_default());
            }
            match b.get(j) {
                Some(b'"') => {
                    self.pos = j + 1;
                    return Ok(());
                }
                Some(b'\\') => i = self.escape(j, sink)?,
                Some(_) => return invalid(j, Code::ControlChar),
                None => return invalid(b.len(), Code::UnterminatedString),
            }
        }
    }

    /// Escape sequence whose `\` is at `i`; returns the offset after it.
    fn escape<S: Sink<'a>>(&self, i: usize, sink: &mut S) -> Res<usize> {
        let c = match self.b.get(i + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(i, sink),
            Some(_) => return invalid(i, Code::InvalidEscape),
            None => return invalid(self.b.len(), Code::Eof),
        };
        if S::DECODE {
            sink.push_char(c);
        }
        Ok(i + 2)
    }

    /// Four hex digits at `at`.
    #[inline]
    fn hex4(&self, at: usize) -> Res<u32> {
        if let Some(&[a, b, c, d]) = self.b.get(at..at.saturating_add(4)) {
            let v = (hex_value(a) << 12) | (hex_value(b) << 8) | (hex_value(c) << 4) | hex_value(d);
            if v >= 0 {
                return Ok(v as u32);
            }
        }
        self.hex4_error(at)
    }

    #[cold]
    #[inline(never)]
    fn hex4_error(&self, at: usize) -> Res<u32> {
        for k in 0..4 {
            match self.b.get(at + k) {
                Some(&c) if hex_value(c) >= 0 => {}
                Some(_) => return invalid(at + k, Code::InvalidUnicodeEscape),
                None => return invalid(self.b.len(), Code::Eof),
            }
        }
        invalid(at, Code::InvalidUnicodeEscape)
    }

    /// `\uXXXX` (plus its low-surrogate partner when decoding) whose `\` is at `i`.
    fn unicode_escape<S: Sink<'a>>(&self, i: usize, sink: &mut S) -> Res<usize> {
        let hi = self.hex4(i + 2)?;
        let mut end = i + 6;
        if !S::DECODE {
            return Ok(end);
        }
        let cp = match hi {
            0xD800..=0xDBFF => match self.b.get(end..end + 2) {
                Some(b"\\u") => {
                    let lo = self.hex4(end + 2)?;
                    if !(0xDC00..=0xDFFF).contains(&lo) {
                        return invalid(i, Code::LoneSurrogate);
                    }
                    end += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                }
                Some(_) => return invalid(i, Code::LoneSurrogate),
                None => return invalid(self.b.len(), Code::Eof),
            },
            0xDC00..=0xDFFF => return invalid(i, Code::LoneSurrogate),
            _ => hi,
        };
        match char::from_u32(cp) {
            Some(c) => sink.push_char(c),
            None => return invalid(i, Code::LoneSurrogate),
        }
        Ok(end)
    }

    /// Validate one JSON value at the current position (leading whitespace already skipped),
    /// iteratively. `depth` is the number of containers already open around the value.
    fn skip_value(&mut self, depth: usize) -> Res<()> {
        // Bit `n` is set when the n-th container opened here is an array. Because
        // `depth >= 1` and `depth + n < MAX_DEPTH <= 128` whenever a bit is written, `n < 127`.
        let mut stack: u128 = 0;
        let mut n: usize = 0;
        'value: loop {
            match self.peek() {
                Some(b'{') => {
                    if depth + n >= MAX_DEPTH {
                        return invalid(self.pos, Code::TooDeep);
                    }
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        stack &= !1u128.wrapping_shl(n as u32);
                        n += 1;
                        self.member_key()?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    if depth + n >= MAX_DEPTH {
                        return invalid(self.pos, Code::TooDeep);
                    }
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        stack |= 1u128.wrapping_shl(n as u32);
                        n += 1;
                        continue 'value;
                    }
                }
                Some(b'"') => self.string(&mut Skip)?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return self.eof_or(Code::ExpectedValue),
            }
            // A value is complete: continue or close the enclosing containers.
            loop {
                let Some(top) = n.checked_sub(1) else {
                    return Ok(());
                };
                let is_array = stack.wrapping_shr(top as u32) & 1 == 1;
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_ws();
                        if !is_array {
                            self.member_key()?;
                        }
                        continue 'value;
                    }
                    Some(b']') if is_array => {
                        self.pos += 1;
                        n = top;
                    }
                    Some(b'}') if !is_array => {
                        self.pos += 1;
                        n = top;
                    }
                    _ => {
                        return self.eof_or(if is_array {
                            Code::ExpectedCommaOrBracket
                        } else {
                            Code::ExpectedCommaOrBrace
                        });
                    }
                }
            }
        }
    }

    /// `"key" ws : ws` inside a nested object; the key is validated, not decoded.
    #[inline]
    fn member_key(&mut self) -> Res<()> {
        if self.peek() != Some(b'"') {
            return self.eof_or(Code::ExpectedKey);
        }
        self.string(&mut Skip)?;
        self.skip_ws();
        self.expect_byte(b':', Code::ExpectedColon)?;
        self.skip_ws();
        Ok(())
    }

    /// The top-level `stream_options` object (depth 2) at the current position (`{`).
    fn stream_options_object(&mut self) -> Res<StreamOptions> {
        let open_brace = self.pos;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(StreamOptions::Object {
                open_brace,
                empty: true,
                has_include_usage: false,
            });
        }
        let mut has_include_usage = false;
        loop {
            if self.peek() != Some(b'"') {
                return self.eof_or(Code::ExpectedKey);
            }
            let mut key = KeyBuf::new();
            self.string(&mut key)?;
            has_include_usage |= key.is(b"include_usage");
            self.skip_ws();
            self.expect_byte(b':', Code::ExpectedColon)?;
            self.skip_ws();
            self.skip_value(2)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(StreamOptions::Object {
                        open_brace,
                        empty: false,
                        has_include_usage,
                    });
                }
                _ => return self.eof_or(Code::ExpectedCommaOrBrace),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    // ------------------------------------------------------------------ helpers

    fn ok(body: &str) -> RequestScan {
        match scan(body.as_bytes()) {
            Ok(s) => s,
            Err(e) => panic!("scan({body:?}) failed: {e:?}"),
        }
    }

    fn fail(body: &str) -> BodyError {
        match scan(body.as_bytes()) {
            Ok(s) => panic!("scan({body:?}) unexpectedly succeeded: {s:?}"),
            Err(e) => e,
        }
    }

    fn span<'a>(body: &'a str, s: &RequestScan) -> &'a str {
        &body[s.model_span.clone()]
    }

    fn replace_model(body: &[u8], s: &RequestScan, name: &str) -> Vec<u8> {
        let lit = json_string_literal(name);
        apply_edits(
            body,
            &mut [Edit {
                range: s.model_span.clone(),
                bytes: lit.as_bytes(),
            }],
        )
    }

    /// The gateway's full rewrite: real model name + include_usage when streaming.
    fn rewrite(body: &[u8], name: &str) -> Vec<u8> {
        let s = scan(body).expect("scan");
        let lit = json_string_literal(name);
        let mut edits = vec![Edit {
            range: s.model_span.clone(),
            bytes: lit.as_bytes(),
        }];
        edits.extend(include_usage_edit(&s));
        apply_edits(body, &mut edits)
    }

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    fn invalid_reason(e: &BodyError) -> &'static str {
        match e {
            BodyError::InvalidJson { reason, .. } => reason,
            other => panic!("expected InvalidJson, got {other:?}"),
        }
    }

    // ------------------------------------------------------------------ happy paths

    #[test]
    fn happy_path() {
        let body =
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
        let s = ok(body);
        assert_eq!(s.model, "gpt-4o");
        assert_eq!(span(body, &s), r#""gpt-4o""#);
        assert_eq!(s.model_span, 9..17);
        assert!(s.stream);
        assert_eq!(s.object_end, body.len() - 1);
        assert_eq!(s.stream_options, StreamOptions::Absent);
    }

    #[test]
    fn surrounding_whitespace_is_allowed() {
        let body = " \r\n\t{ \"model\" :\t\"m\" \n}\n\r\t ";
        let s = ok(body);
        assert_eq!(s.model, "m");
        assert_eq!(&body[s.object_end..=s.object_end], "}");
        assert_eq!(s.object_end, body.rfind('}').unwrap());
    }

    #[test]
    fn escaped_key_is_model() {
        let body = r#"{"mo\u0064el":"gpt-4","x":1}"#;
        let s = ok(body);
        assert_eq!(s.model, "gpt-4");
        assert_eq!(span(body, &s), r#""gpt-4""#);
        // Every escape form in a key.
        assert_eq!(ok(r#"{"\u006d\u006F\u0064\u0065\u006c":"a"}"#).model, "a");
        assert!(ok(r#"{"str\u0065am":true,"model":"a"}"#).stream);
    }

    #[test]
    fn escaped_value_is_unescaped() {
        let body = r#"{"model":"gpt\u002d4"}"#;
        let s = ok(body);
        assert_eq!(s.model, "gpt-4");
        assert_eq!(span(body, &s), r#""gpt\u002d4""#);

        let body = r#"{"model":"a\"b\\c\/d\be\ff\ng\rh\ti\u00e9j\ud83d\ude00k\u4E2D"}"#;
        let s = ok(body);
        let expected: String = serde_json::from_str(span(body, &s)).unwrap();
        assert_eq!(s.model, expected);
        assert_eq!(s.model, "a\"b\\c/d\u{8}e\u{c}f\ng\rh\tiéj😀k中");
    }

    #[test]
    fn model_splice_preserves_every_other_byte() {
        let body = "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"h\\u00e9llo \\\"w\\\" — 中文 😀\\n\"} ],\n\t\"model\"  :  \"gpt\\u002d4\" ,\"temperature\":1.50E+0,\"z\":[ ],\"a\":{}\r\n}  ";
        let s = ok(body);
        assert_eq!(s.model, "gpt-4");
        let out = replace_model(body.as_bytes(), &s, "openai/gpt-4o \"x\"");
        let expected = "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"h\\u00e9llo \\\"w\\\" — 中文 😀\\n\"} ],\n\t\"model\"  :  \"openai/gpt-4o \\\"x\\\"\" ,\"temperature\":1.50E+0,\"z\":[ ],\"a\":{}\r\n}  ";
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
        let rescanned = scan(&out).unwrap();
        assert_eq!(rescanned.model, "openai/gpt-4o \"x\"");
        // Only the span changed.
        assert_eq!(
            &out[..s.model_span.start],
            &body.as_bytes()[..s.model_span.start]
        );
        let tail = &body.as_bytes()[s.model_span.end..];
        assert_eq!(&out[out.len() - tail.len()..], tail);
    }

    #[test]
    fn nested_model_keys_are_ignored() {
        let body = r#"{"messages":[{"model":"evil","content":{"model":1}}],"model":"good","metadata":{"model":"x","mo\u0064el":"y"},"tools":[{"model":""}]}"#;
        assert_eq!(ok(body).model, "good");
        // Nested stream / stream_options keys are ignored too.
        let s = ok(r#"{"model":"m","x":{"stream":true,"stream_options":{}}}"#);
        assert!(!s.stream);
        assert_eq!(s.stream_options, StreamOptions::Absent);
    }

    // ------------------------------------------------------------------ model errors

    #[test]
    fn duplicate_model_is_refused() {
        for body in [
            r#"{"model":"a","model":"b"}"#,
            r#"{"model":"a","model":"a"}"#,
            r#"{"model":"a","mo\u0064el":"b"}"#,
            r#"{"\u006dodel":"a","messages":[],"model":"b"}"#,
            r#"{"model":"a","model":1}"#,
            r#"{"model":1,"model":"a"}"#,
            r#"{"model":"","model":"a"}"#,
            r#"{"model":"a","x":{"model":"b"},"model":null}"#,
        ] {
            assert_eq!(fail(body), BodyError::DuplicateModel, "{body}");
        }
    }

    #[test]
    fn non_string_model_is_refused() {
        for v in [
            "1",
            "-1.5e3",
            "null",
            "true",
            "false",
            "{}",
            "[]",
            r#"{"a":"b"}"#,
            r#"["gpt-4"]"#,
        ] {
            let body = format!(r#"{{"model":{v},"stream":true}}"#);
            assert_eq!(fail(&body), BodyError::ModelNotString, "{body}");
        }
    }

    #[test]
    fn empty_and_missing_model() {
        assert_eq!(fail(r#"{"model":""}"#), BodyError::EmptyModel);
        assert_eq!(fail(r#"{"model" : "" , "x":1}"#), BodyError::EmptyModel);
        for body in [
            "{}",
            " { } ",
            r#"{"messages":[]}"#,
            r#"{"Model":"x"}"#,
            r#"{"model ":"x"}"#,
            r#"{"models":"x"}"#,
            r#"{"mode":"x"}"#,
            r#"{"model\u0000":"x"}"#,
            r#"{"a":{"model":"x"}}"#,
        ] {
            assert_eq!(fail(body), BodyError::MissingModel, "{body}");
        }
        // Escaped content that is not empty is fine.
        assert_eq!(ok(r#"{"model":"\u0020"}"#).model, " ");
    }

    #[test]
    fn syntax_errors_take_precedence_over_semantic_ones() {
        assert!(matches!(
            fail(r#"{"model":"a","model":"b",}"#),
            BodyError::InvalidJson { .. }
        ));
        assert!(matches!(
            fail(r#"{"model":1} x"#),
            BodyError::InvalidJson { .. }
        ));
        assert_eq!(fail(r#"{"x":[[[]]],"model":1}"#), BodyError::ModelNotString);
    }

    // ------------------------------------------------------------------ encoding / grammar

    #[test]
    fn invalid_utf8_is_refused() {
        for body in [
            &b"{\"model\":\"gpt\xff\"}"[..],
            b"{\"model\":\"m\",\"c\":\"\xed\xa0\x80\"}", // UTF-8 encoded surrogate
            b"{\"model\":\"m\",\"c\":\"\xc0\xaf\"}",     // overlong
            b"{\"model\":\"m\",\"c\":\"\xe4\xb8\"}",     // truncated sequence
            b"\xef\xbb\xbf{\"model\":\"m\"}\xff",
        ] {
            assert_eq!(scan(body), Err(BodyError::InvalidUtf8));
        }
        // A UTF-8 BOM is valid UTF-8 but not JSON whitespace.
        assert!(matches!(
            scan(b"\xef\xbb\xbf{\"model\":\"m\"}"),
            Err(BodyError::InvalidJson { offset: 0, .. })
        ));
    }

    #[test]
    fn trailing_garbage_is_refused() {
        for body in [
            r#"{"model":"x"}x"#,
            r#"{"model":"x"}{}"#,
            r#"{"model":"x"}{"model":"y"}"#,
            r#"{"model":"x"} ,"#,
            r#"{"model":"x"}]"#,
            "{\"model\":\"x\"}\u{0}",
            "{\"model\":\"x\"}\u{a0}",
            r#"{"model":"x"}//"#,
        ] {
            let e = fail(body);
            assert_eq!(invalid_reason(&e), reason::TRAILING, "{body}");
        }
    }

    #[test]
    fn non_objects_are_refused() {
        for body in [
            "[]",
            r#"[{"model":"x"}]"#,
            r#""model""#,
            "1",
            "-1",
            "null",
            "true",
            "false",
        ] {
            assert_eq!(fail(body), BodyError::NotAnObject, "{body}");
        }
        for body in ["", "   ", "\n", "x", "}", "'", "\u{0}"] {
            assert!(
                matches!(fail(body), BodyError::InvalidJson { .. }),
                "{body:?}"
            );
        }
    }

    #[test]
    fn grammar_violations_are_refused_like_serde() {
        let cases = [
            // numbers
            "01",
            "-",
            "-01",
            "1.",
            ".5",
            "1.e3",
            "1e",
            "1e+",
            "+1",
            "0x1",
            "NaN",
            "Infinity",
            "-Infinity",
            "1_000",
            "1..2",
            "--1",
            "1e1.5",
            // literals
            "tru",
            "nul",
            "True",
            "NULL",
            "fals",
            "truee",
            "nulll",
            // strings
            "'x'",
            "\"a\u{1}b\"",
            "\"a\nb\"",
            "\"tab\there\"",
            "\"\u{1f}\"",
            r#""\x""#,
            r#""\u12G4""#,
            r#""\u123""#,
            r#""\U0041""#,
            r#""\'""#,
            r#""\"#,
            r#""abc"#,
            // containers
            "[1,]",
            "[,1]",
            "[1 2]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{\"a\":}",
            "{a:1}",
            "{1:1}",
            "{\"a\":1 \"b\":2}",
            "[",
            "]",
            "{",
            "[}",
            "{]",
            "[1}",
            "{\"a\":1]",
            // misc
            "/*c*/1",
            "1 // c",
            "undefined",
            "\u{a0}1",
        ];
        for v in cases {
            let body = format!(r#"{{"model":"m","v":{v}}}"#);
            assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(&body).is_err(),
                "serde accepts {body:?}"
            );
            assert!(
                matches!(fail(&body), BodyError::InvalidJson { .. }),
                "{body:?}"
            );
        }
        for k in [r#""a"#, "a", "1", "null", r#""\q""#, "\"\u{7}\""] {
            let body = format!(r#"{{"model":"m",{k}:1}}"#);
            assert!(
                matches!(fail(&body), BodyError::InvalidJson { .. }),
                "{body:?}"
            );
        }
    }

    #[test]
    fn grammar_edge_cases_are_accepted() {
        let cases = [
            "0",
            "-0",
            "1.5e+10",
            "1E-2",
            "-0.0e0",
            "123456789012345678901234567890",
            "1e999",
            "0.000001",
            "[]",
            "{}",
            "[[],{},[{}]]",
            r#"{"":""}"#,
            r#""""#,
            r#""\/\\\"\b\f\n\r\t""#,
            r#""\uD83D\uDE00""#,
            "\"\u{7f}\u{2028}😀\"",
            // RFC 8259 permits unpaired surrogate escapes in strings the scanner doesn't decode.
            r#""\ud800""#,
            r#""\udc00\ud800""#,
            r#"{"\ud800":1}"#,
            " [ 1 , 2 ] ",
            "\t{\n\"a\"\r:\t[ true ,false, null ] }\n",
        ];
        for v in cases {
            let body = format!(r#"{{"model":"m","v":{v}}}"#);
            assert_eq!(ok(&body).model, "m", "{body}");
        }
    }

    #[test]
    fn lone_surrogates_in_decoded_strings_are_refused() {
        for body in [
            r#"{"model":"gpt\ud800"}"#,
            r#"{"model":"gpt\udc00"}"#,
            r#"{"model":"gpt\ud800\u0041"}"#,
            r#"{"model":"gpt\ud800\ud800"}"#,
            r#"{"model":"gpt\ude00\ud83d"}"#,
            r#"{"model":"gpt\ud800\n"}"#,
            // top-level keys are decoded too: "mo\ud800del" must not be read as anything.
            r#"{"model":"a","mo\ud800del":"b"}"#,
            r#"{"model":"a","stream_options":{"include_usage\udfff":true}}"#,
        ] {
            let e = fail(body);
            assert_eq!(invalid_reason(&e), reason::LONE_SURROGATE, "{body}");
            assert!(serde_json::from_str::<Value>(body).is_err());
        }
    }

    #[test]
    fn unescaped_control_characters_are_refused_everywhere() {
        for c in (0u8..0x20).map(char::from) {
            for body in [
                format!(r#"{{"model":"a{c}b"}}"#),
                format!(r#"{{"mo{c}del":"a"}}"#),
                format!(r#"{{"model":"a","x":["{c}"]}}"#),
                format!(r#"{{"model":"a","x":{{"k{c}":1}}}}"#),
                format!("{{\"model\":\"a\",\"x\":\"{}{c}\"}}", "y".repeat(100)),
            ] {
                let e = fail(&body);
                assert_eq!(invalid_reason(&e), reason::CONTROL_CHAR, "{body:?}");
            }
        }
    }

    /// Exercises every code path of the string skipper (SWAR words, short tails, the `memchr2`
    /// path, with and without control bytes elsewhere in the body) at every offset.
    #[test]
    fn string_scanning_at_every_offset() {
        for len in 0..90 {
            let text = "abcdefghijklmnopqrstuvwxyz0123456789".repeat(3)[..len].to_owned();
            for tail in ["", "\n"] {
                // Plain string; `tail` (raw whitespace after the object) switches to the
                // control-aware path.
                let body = format!(r#"{{"model":"m{text}","x":"{text}"}}{tail}"#);
                assert_eq!(ok(&body).model, format!("m{text}"));
                for p in 0..=len {
                    // An escape at every position, in the model (decoded) and elsewhere.
                    let (a, b) = text.split_at(p);
                    let body = format!(r#"{{"model":"m{a}\"\u00e9{b}","x":"{a}\\{b}"}}{tail}"#);
                    assert_eq!(ok(&body).model, format!("m{a}\"é{b}"), "{body:?}");
                    // A raw control character at every position is refused at its offset.
                    for c in ['\u{0}', '\n', '\u{1f}'] {
                        let body = format!(r#"{{"model":"m","x":"{a}{c}{b}"}}{tail}"#);
                        let at = r#"{"model":"m","x":""#.len() + p;
                        assert_eq!(
                            scan(body.as_bytes()),
                            Err(BodyError::InvalidJson {
                                offset: at,
                                reason: reason::CONTROL_CHAR
                            }),
                            "{body:?}"
                        );
                    }
                    // A stray quote at every position ends the string early.
                    let body = format!(r#"{{"model":"m","x":"{a}"{b}"}}{tail}"#);
                    assert!(scan(body.as_bytes()).is_err(), "{body:?}");
                }
            }
        }
    }

    #[test]
    fn every_prefix_of_a_valid_body_is_refused() {
        let bodies = [
            r#"{"model":"gpt\u002d4","messages":[{"role":"user","content":"h\u00e9 \"x\" 😀\n","n":[1,-2.5e+3,true,false,null,{}]}],"stream":true,"stream_options":{"include_usage":false}}"#,
            r#"{"mo\u0064el":"a\ud83d\ude00","x":-0.0E-0,"y":[[[]]],"z":{"":""}}"#,
            " { \"model\" : \"m\" , \"t\" : 1 } ",
        ];
        for body in bodies {
            let full = scan(body.as_bytes()).expect("valid");
            for end in 0..=full.object_end {
                let prefix = &body.as_bytes()[..end];
                assert!(scan(prefix).is_err(), "prefix {:?} accepted", &body[..end]);
            }
        }
    }

    // ------------------------------------------------------------------ depth

    fn nested_arrays(n: usize) -> String {
        format!(r#"{{"model":"m","a":{}{}}}"#, "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn depth_limit() {
        // The top-level object is depth 1.
        assert_eq!(ok(&nested_arrays(126)).model, "m");
        assert_eq!(ok(&nested_arrays(127)).model, "m");
        assert_eq!(fail(&nested_arrays(128)), BodyError::TooDeep);
        assert_eq!(fail(&nested_arrays(129)), BodyError::TooDeep);

        let objects = |n: usize| {
            format!(
                r#"{{"model":"m","a":{}1{}}}"#,
                r#"{"k":"#.repeat(n),
                "}".repeat(n)
            )
        };
        assert!(scan(objects(127).as_bytes()).is_ok());
        assert_eq!(scan(objects(128).as_bytes()), Err(BodyError::TooDeep));

        // Mixed, and inside stream_options (depth 2 for the stream_options object itself).
        let mixed = |n: usize| {
            let open: String = (0..n)
                .map(|i| if i % 2 == 0 { "[" } else { r#"{"k":"# })
                .collect();
            let close: String = (0..n)
                .rev()
                .map(|i| if i % 2 == 0 { "]" } else { "}" })
                .collect();
            (open, close)
        };
        let (o, c) = mixed(126);
        assert!(
            scan(format!(r#"{{"model":"m","stream_options":{{"x":{o}1{c}}}}}"#).as_bytes()).is_ok()
        );
        let (o, c) = mixed(127);
        assert_eq!(
            scan(format!(r#"{{"model":"m","stream_options":{{"x":{o}1{c}}}}}"#).as_bytes()),
            Err(BodyError::TooDeep)
        );
    }

    #[test]
    fn very_deep_input_does_not_overflow_the_stack() {
        let body = format!(r#"{{"model":"m","a":{}"#, "[".repeat(1_000_000));
        assert_eq!(scan(body.as_bytes()), Err(BodyError::TooDeep));
        let body = format!(r#"{{"model":"m","a":{}"#, r#"{"a":"#.repeat(200_000));
        assert_eq!(scan(body.as_bytes()), Err(BodyError::TooDeep));
    }

    // ------------------------------------------------------------------ stream / stream_options

    #[test]
    fn stream_flag() {
        assert!(ok(r#"{"model":"m","stream":true}"#).stream);
        assert!(ok(r#"{"stream" : true ,"model":"m"}"#).stream);
        assert!(!ok(r#"{"model":"m","stream":false}"#).stream);
        assert!(!ok(r#"{"model":"m","stream":null}"#).stream);
        assert!(!ok(r#"{"model":"m"}"#).stream);
        for v in [r#""true""#, "1", "0", "{}", "[]", r#""""#] {
            let body = format!(r#"{{"model":"m","stream":{v}}}"#);
            assert_eq!(
                invalid_reason(&fail(&body)),
                reason::STREAM_NOT_BOOL,
                "{body}"
            );
        }
        for body in [
            r#"{"model":"m","stream":true,"stream":false}"#,
            r#"{"model":"m","stream":false,"str\u0065am":true}"#,
        ] {
            assert_eq!(invalid_reason(&fail(body)), reason::DUPLICATE_STREAM);
        }
        assert_eq!(
            invalid_reason(&fail(
                r#"{"model":"m","stream_options":null,"stream_options":{}}"#
            )),
            reason::DUPLICATE_STREAM_OPTIONS
        );
    }

    #[test]
    fn stream_options_shapes() {
        let body = r#"{"model":"m","stream_options": { } }"#;
        let s = ok(body);
        let StreamOptions::Object {
            open_brace,
            empty,
            has_include_usage,
        } = s.stream_options
        else {
            panic!("{:?}", s.stream_options)
        };
        assert_eq!(&body[open_brace..=open_brace], "{");
        assert!(empty && !has_include_usage);

        let s = ok(r#"{"model":"m","stream_options":{"a":[1,{"include_usage":1}],"b":{}}}"#);
        assert!(matches!(
            s.stream_options,
            StreamOptions::Object {
                empty: false,
                has_include_usage: false,
                ..
            }
        ));
        for v in [
            r#"{"include_usage":false}"#,
            r#"{"x":1,"include_usage":null}"#,
            r#"{"include\u005fusage":true}"#,
        ] {
            let s = ok(&format!(r#"{{"model":"m","stream_options":{v}}}"#));
            assert!(
                matches!(
                    s.stream_options,
                    StreamOptions::Object {
                        empty: false,
                        has_include_usage: true,
                        ..
                    }
                ),
                "{v}"
            );
        }
        for v in ["null", "[]", "1", r#""x""#, "true"] {
            let s = ok(&format!(r#"{{"model":"m","stream_options":{v}}}"#));
            assert_eq!(s.stream_options, StreamOptions::Other, "{v}");
        }
    }

    #[test]
    fn include_usage_edit_cases() {
        // (body, expected rewritten body with model "p/m")
        let cases = [
            (
                r#"{"model":"m","stream":true}"#,
                Some(r#"{"model":"p/m","stream":true,"stream_options":{"include_usage":true}}"#),
            ),
            (
                "{\"stream\":true,\"model\":\"m\" \n}",
                Some(
                    "{\"stream\":true,\"model\":\"p/m\" \n,\"stream_options\":{\"include_usage\":true}}",
                ),
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{}}"#,
                Some(r#"{"model":"p/m","stream":true,"stream_options":{"include_usage":true}}"#),
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{ }}"#,
                Some(r#"{"model":"p/m","stream":true,"stream_options":{"include_usage":true }}"#),
            ),
            (
                r#"{"stream_options":{"foo":1},"model":"m","stream":true}"#,
                Some(
                    r#"{"stream_options":{"include_usage":true,"foo":1},"model":"p/m","stream":true}"#,
                ),
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#,
                None,
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
                None,
            ),
            (r#"{"model":"m","stream":true,"stream_options":null}"#, None),
            (r#"{"model":"m","stream":false}"#, None),
            (r#"{"model":"m","stream":null,"stream_options":{}}"#, None),
            (r#"{"model":"m"}"#, None),
        ];
        for (body, expected) in cases {
            let s = ok(body);
            let edit = include_usage_edit(&s);
            assert_eq!(edit.is_some(), expected.is_some(), "{body}");
            let out = rewrite(body.as_bytes(), "p/m");
            let expected =
                expected.map_or_else(|| body.replace(r#""m""#, r#""p/m""#), str::to_owned);
            assert_eq!(std::str::from_utf8(&out).unwrap(), expected, "{body}");
            let v = json(&out);
            assert_eq!(v["model"], "p/m");
            if s.stream && !matches!(s.stream_options, StreamOptions::Other) {
                assert!(v["stream_options"]["include_usage"].is_boolean(), "{body}");
            }
            if edit.is_some() {
                assert_eq!(v["stream_options"]["include_usage"], true);
                // The rewritten body must itself scan cleanly and need no further edit.
                let again = scan(&out).unwrap();
                assert_eq!(include_usage_edit(&again), None);
                assert_eq!(again.model, "p/m");
            }
        }
    }

    // ------------------------------------------------------------------ splicing helpers

    #[test]
    fn apply_edits_sorts_and_allocates_once() {
        let body = b"0123456789";
        let mut edits = [
            Edit {
                range: 10..10,
                bytes: b"<end>",
            },
            Edit {
                range: 2..4,
                bytes: b"",
            },
            Edit {
                range: 0..0,
                bytes: b"<start>",
            },
            Edit {
                range: 5..6,
                bytes: b"FIVE",
            },
            Edit {
                range: 5..5,
                bytes: b"+",
            },
            Edit {
                range: 5..5,
                bytes: b"+",
            },
        ];
        let out = apply_edits(body, &mut edits);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "<start>014++FIVE6789<end>"
        );
        assert_eq!(out.capacity(), out.len());

        assert_eq!(apply_edits(body, &mut []), body.to_vec());
        assert_eq!(
            apply_edits(
                b"",
                &mut [Edit {
                    range: 0..0,
                    bytes: b"x"
                }]
            ),
            b"x".to_vec()
        );
        let out = apply_edits(
            body,
            &mut [Edit {
                range: 0..10,
                bytes: b"all",
            }],
        );
        assert_eq!(out, b"all".to_vec());
        assert_eq!(out.capacity(), 3);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "overlapping edits")]
    fn apply_edits_rejects_overlap_in_debug() {
        let mut edits = [
            Edit {
                range: 0..5,
                bytes: b"a",
            },
            Edit {
                range: 3..4,
                bytes: b"b",
            },
        ];
        apply_edits(b"0123456789", &mut edits);
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn apply_edits_clamps_bad_ranges_in_release() {
        let mut edits = [
            Edit {
                range: 0..5,
                bytes: b"a",
            },
            Edit {
                range: 3..7,
                bytes: b"b",
            },
            Edit {
                range: 50..60,
                bytes: b"c",
            },
        ];
        let out = apply_edits(b"0123456789", &mut edits);
        assert_eq!(out, b"ab789c".to_vec());
        assert_eq!(out.capacity(), out.len());
    }

    #[test]
    fn json_string_literal_round_trips() {
        assert_eq!(json_string_literal(""), r#""""#);
        assert_eq!(json_string_literal("gpt-4o"), r#""gpt-4o""#);
        assert_eq!(
            json_string_literal("a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}/\u{7f}é😀"),
            "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f/\u{7f}é😀\""
        );
        let all_controls: String = (0u8..0x20).map(char::from).collect();
        for s in [
            all_controls.as_str(),
            "\"\\\"\\",
            "中文 \u{2028}\u{2029} \u{feff}",
            "x",
        ] {
            let lit = json_string_literal(s);
            assert_eq!(serde_json::from_str::<String>(&lit).unwrap(), s);
            // And it scans back to the same model name.
            let body = format!(r#"{{"model":{lit}}}"#);
            if !s.is_empty() {
                assert_eq!(ok(&body).model, s);
            }
        }
    }

    #[test]
    fn error_messages_do_not_echo_the_body() {
        let secret = "sk-SECRET";
        let mut bodies = vec![
            format!(r#"{{"model":"{secret}" x}}"#).into_bytes(),
            format!(r#"{{"model":"{secret}\q"}}"#).into_bytes(),
            format!(r#"{{"{secret}":1}}"#).into_bytes(),
            format!(r#"{{"model":1,"k":"{secret}"}}"#).into_bytes(),
            format!(r#"["{secret}"]"#).into_bytes(),
        ];
        bodies.push([br#"{"model":""#, secret.as_bytes(), b"\xff\"}"].concat());
        for body in &bodies {
            let e = scan(body).unwrap_err();
            let msg = e.message();
            assert!(!msg.contains("SECRET"), "{msg}");
            assert_eq!(e.to_string(), msg);
            assert!(!msg.is_empty());
        }
        let e = BodyError::InvalidJson {
            offset: 7,
            reason: reason::TRAILING,
        };
        assert!(e.message().contains('7'));
        assert!(BodyError::TooDeep.message().contains("128"));
        let _: &dyn std::error::Error = &e;
    }

    #[test]
    fn internal_error_codes_round_trip() {
        for (i, &code) in CODES.iter().enumerate() {
            assert_eq!(code as usize, i, "CODES must be in discriminant order");
            let e = BodyError::from(Fail::new(1234, code));
            match code {
                Code::TooDeep => assert_eq!(e, BodyError::TooDeep),
                _ => assert!(
                    matches!(e, BodyError::InvalidJson { offset: 1234, .. }),
                    "{e:?}"
                ),
            }
        }
        let e = BodyError::from(Fail::new(7, Code::LoneSurrogate));
        assert_eq!(
            e,
            BodyError::InvalidJson {
                offset: 7,
                reason: reason::LONE_SURROGATE
            }
        );
    }

    // ------------------------------------------------------------------ large bodies

    #[test]
    fn one_mebibyte_body() {
        let chunk = "Line with \\\"quotes\\\", a backslash \\\\, tab\\t, caf\\u00e9, emoji \\ud83d\\ude00, raw 中文 and é. ";
        let mut content = String::new();
        while content.len() < (1 << 20) {
            content.push_str(chunk);
        }
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":"{content}"}},{{"role":"user","content":"{}"}}],"model":"gpt\u002d4o","stream":true}}"#,
            "x".repeat(100_000)
        );
        assert!(body.len() > 1 << 20);
        let s = ok(&body);
        assert_eq!(s.model, "gpt-4o");
        assert!(s.stream);
        assert_eq!(s.object_end, body.len() - 1);
        let out = rewrite(body.as_bytes(), "provider-model");
        let (a, b) = (json(body.as_bytes()), json(&out));
        assert_eq!(a["messages"], b["messages"]);
        assert_eq!(b["model"], "provider-model");
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(
            out.len(),
            body.len() - r#""gpt\u002d4o""#.len()
                + r#""provider-model""#.len()
                + r#","stream_options":{"include_usage":true}"#.len()
        );
    }

    // ------------------------------------------------------------------ property tests

    /// Top-level members in document order, decoded by serde_json (duplicates preserved).
    #[derive(Debug, Clone, PartialEq)]
    struct Entries(Vec<(String, Value)>);

    impl<'de> serde::Deserialize<'de> for Entries {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Entries;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Entries, A::Error> {
                    let mut v = Vec::new();
                    while let Some(entry) = m.next_entry::<String, Value>()? {
                        v.push(entry);
                    }
                    Ok(Entries(v))
                }
            }
            d.deserialize_map(V)
        }
    }

    #[derive(Debug, PartialEq)]
    enum Shape {
        Absent,
        Object {
            empty: bool,
            has_include_usage: bool,
        },
        Other,
    }

    fn shape_of(body: &[u8], so: &StreamOptions) -> Shape {
        match *so {
            StreamOptions::Absent => Shape::Absent,
            StreamOptions::Other => Shape::Other,
            StreamOptions::Object {
                open_brace,
                empty,
                has_include_usage,
            } => {
                assert_eq!(body.get(open_brace), Some(&b'{'));
                Shape::Object {
                    empty,
                    has_include_usage,
                }
            }
        }
    }

    /// What `scan` must return according to serde_json, or None when serde_json cannot decode
    /// the body as a map (not an object, out-of-range number, unpaired surrogate, ...).
    /// Any `InvalidJson` is represented by `offset: 0, reason: ""`.
    fn oracle(body: &[u8]) -> Option<Result<(String, bool, Shape), BodyError>> {
        let Ok(text) = std::str::from_utf8(body) else {
            return Some(Err(BodyError::InvalidUtf8));
        };
        let Entries(entries) = serde_json::from_str(text).ok()?;
        let values = |key: &'static str| -> Vec<&Value> {
            entries
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v)
                .collect()
        };
        let any_invalid = Err(BodyError::InvalidJson {
            offset: 0,
            reason: "",
        });
        let models = values("model");
        if models.len() > 1 {
            return Some(Err(BodyError::DuplicateModel));
        }
        let model = match models.first() {
            Some(Value::String(s)) if s.is_empty() => return Some(Err(BodyError::EmptyModel)),
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Some(Err(BodyError::ModelNotString)),
            None => None,
        };
        let streams = values("stream");
        let stream = match streams.as_slice() {
            [] | [Value::Null] | [Value::Bool(false)] => false,
            [Value::Bool(true)] => true,
            _ => return Some(any_invalid),
        };
        let shapes = values("stream_options");
        let shape = match shapes.as_slice() {
            [] => Shape::Absent,
            [Value::Object(o)] => Shape::Object {
                empty: o.is_empty(),
                has_include_usage: o.contains_key("include_usage"),
            },
            [_] => Shape::Other,
            _ => return Some(any_invalid),
        };
        Some(match model {
            Some(m) => Ok((m, stream, shape)),
            None => Err(BodyError::MissingModel),
        })
    }

    fn same_error(a: &BodyError, b: &BodyError) -> bool {
        matches!(
            (a, b),
            (BodyError::InvalidJson { .. }, BodyError::InvalidJson { .. })
        ) || a == b
    }

    /// Checks `scan(body)` against the oracle; on success also checks spans and the rewrite.
    fn check_against_oracle(body: &[u8], expected: Result<(String, bool, Shape), BodyError>) {
        let got = scan(body);
        let shown = String::from_utf8_lossy(body);
        match (&got, expected) {
            (Ok(s), Ok((model, stream, shape))) => {
                assert_eq!(s.model, model, "{shown}");
                assert_eq!(s.stream, stream, "{shown}");
                assert_eq!(shape_of(body, &s.stream_options), shape, "{shown}");
                let lit = &body[s.model_span.clone()];
                assert_eq!(
                    serde_json::from_slice::<String>(lit).unwrap(),
                    s.model,
                    "{shown}"
                );
                assert_eq!(body[s.object_end], b'}');
                assert!(body[s.object_end + 1..]
                    .iter()
                    .all(|b| b" \t\r\n".contains(b)));
                check_rewrite(body, s);
            }
            (Err(e), Err(x)) => assert!(same_error(e, &x), "{shown}: got {e:?}, expected {x:?}"),
            (got, expected) => panic!("{shown}: got {got:?}, expected {expected:?}"),
        }
    }

    /// The rewritten body differs from the original exactly by the model value and include_usage.
    fn check_rewrite(body: &[u8], s: &RequestScan) {
        let name = "prov/\"m\"\n\u{1}é";
        let out = rewrite(body, name);
        let Entries(mut expected) = serde_json::from_slice(body).unwrap();
        let Entries(got) = serde_json::from_slice(&out).unwrap();
        for (k, v) in expected.iter_mut() {
            if k == "model" {
                *v = Value::String(name.to_owned());
            }
        }
        if s.stream {
            match s.stream_options {
                StreamOptions::Absent => expected.push((
                    "stream_options".to_owned(),
                    serde_json::json!({"include_usage": true}),
                )),
                StreamOptions::Object {
                    has_include_usage: false,
                    ..
                } => {
                    for (k, v) in expected.iter_mut() {
                        if k == "stream_options" {
                            v["include_usage"] = Value::Bool(true);
                        }
                    }
                }
                _ => {}
            }
        }
        assert_eq!(got, expected, "{}", String::from_utf8_lossy(&out));
        let again = scan(&out).expect("rewritten body scans");
        assert_eq!(again.model, name);
        assert_eq!(again.stream, s.stream);
        if s.stream {
            assert_eq!(include_usage_edit(&again), None);
        }
    }

    /// Minimal 64-bit LCG (Knuth's MMIX constants); deterministic per seed.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
        fn below(&mut self, n: usize) -> usize {
            self.next() as usize % n.max(1)
        }
        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }
        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[self.below(xs.len())]
        }
    }

    const CHAR_POOL: &[char] = &[
        'a',
        'b',
        'z',
        'A',
        'Z',
        '0',
        '9',
        ' ',
        '-',
        '_',
        '.',
        ':',
        '"',
        '\\',
        '/',
        '\n',
        '\t',
        '\r',
        '\u{8}',
        '\u{c}',
        '\u{0}',
        '\u{1}',
        '\u{1f}',
        '\u{7f}',
        'é',
        '中',
        '😀',
        '\u{2028}',
        '\u{ffff}',
        '\u{10ffff}',
    ];

    fn gen_ws(r: &mut Lcg, out: &mut String) {
        if r.chance(25) {
            for _ in 0..=r.below(3) {
                out.push(r.pick(&[' ', '\t', '\n', '\r']));
            }
        }
    }

    fn gen_text(r: &mut Lcg, min: usize) -> String {
        let n = min + r.below(10);
        (0..n).map(|_| r.pick(CHAR_POOL)).collect()
    }

    /// `content` as a JSON string literal, escaping characters at random (always when required).
    fn gen_literal(r: &mut Lcg, out: &mut String, content: &str) {
        out.push('"');
        for c in content.chars() {
            let must = c == '"' || c == '\\' || (c as u32) < 0x20;
            if !must && !r.chance(15) {
                out.push(c);
                continue;
            }
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '/' => Some("\\/"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                _ => None,
            };
            match short {
                Some(s) if r.chance(60) => out.push_str(s),
                _ => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        if r.chance(50) {
                            out.push_str(&format!("\\u{u:04x}"));
                        } else {
                            out.push_str(&format!("\\u{u:04X}"));
                        }
                    }
                }
            }
        }
        out.push('"');
    }

    fn gen_number(r: &mut Lcg, out: &mut String) {
        if r.chance(20) {
            out.push('-');
        }
        if r.chance(25) {
            out.push('0');
        } else {
            out.push(r.pick(&['1', '2', '5', '9']));
            for _ in 0..r.below(5) {
                out.push(r.pick(&['0', '1', '7', '9']));
            }
        }
        if r.chance(30) {
            out.push('.');
            for _ in 0..=r.below(3) {
                out.push(r.pick(&['0', '3', '9']));
            }
        }
        if r.chance(20) {
            out.push(r.pick(&['e', 'E']));
            if r.chance(60) {
                out.push(r.pick(&['+', '-']));
            }
            for _ in 0..=r.below(2) {
                out.push(r.pick(&['0', '1', '8']));
            }
        }
    }

    fn gen_key(r: &mut Lcg, out: &mut String, key: &str) {
        gen_literal(r, out, key);
        gen_ws(r, out);
        out.push(':');
        gen_ws(r, out);
    }

    fn gen_value(r: &mut Lcg, out: &mut String, depth: usize) {
        let kinds = if depth >= 4 { 5 } else { 7 };
        match r.below(kinds) {
            0 => {
                let t = gen_text(r, 0);
                gen_literal(r, out, &t);
            }
            1 => gen_number(r, out),
            2 => out.push_str("true"),
            3 => out.push_str("false"),
            4 => out.push_str("null"),
            5 => {
                out.push('[');
                gen_ws(r, out);
                for i in 0..r.below(4) {
                    if i > 0 {
                        out.push(',');
                        gen_ws(r, out);
                    }
                    gen_value(r, out, depth + 1);
                    gen_ws(r, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                gen_ws(r, out);
                for i in 0..r.below(4) {
                    if i > 0 {
                        out.push(',');
                        gen_ws(r, out);
                    }
                    let key = match r.below(4) {
                        0 => "model".to_owned(),
                        1 => "stream".to_owned(),
                        _ => gen_text(r, 0),
                    };
                    gen_key(r, out, &key);
                    gen_value(r, out, depth + 1);
                    gen_ws(r, out);
                }
                out.push('}');
            }
        }
    }

    /// A random valid JSON object shaped like a chat request (sometimes with deliberate
    /// semantic problems: missing/duplicate/non-string model, odd `stream` values, ...).
    fn gen_body(r: &mut Lcg) -> String {
        let mut members: Vec<String> = Vec::new();
        let model_count = match r.below(20) {
            0 => 0,
            1 => 2,
            _ => 1,
        };
        for _ in 0..model_count {
            let mut m = String::new();
            gen_key(r, &mut m, "model");
            match r.below(20) {
                0 => m.push_str(r#""""#),
                1..=3 => gen_value(r, &mut m, 1),
                _ => {
                    let t = gen_text(r, 1);
                    gen_literal(r, &mut m, &t);
                }
            }
            members.push(m);
        }
        let stream_count = match r.below(20) {
            0..=7 => 0,
            8 => 2,
            _ => 1,
        };
        for _ in 0..stream_count {
            let mut m = String::new();
            gen_key(r, &mut m, "stream");
            if r.chance(5) {
                gen_value(r, &mut m, 1);
            } else {
                m.push_str(r.pick(&["true", "true", "false", "null"]));
            }
            members.push(m);
        }
        let options_count = match r.below(20) {
            0..=9 => 0,
            10 => 2,
            _ => 1,
        };
        for _ in 0..options_count {
            let mut m = String::new();
            gen_key(r, &mut m, "stream_options");
            if r.chance(20) {
                gen_value(r, &mut m, 1);
            } else {
                m.push('{');
                gen_ws(r, &mut m);
                for i in 0..r.below(3) {
                    if i > 0 {
                        m.push(',');
                        gen_ws(r, &mut m);
                    }
                    let key =
                        r.pick(&["include_usage", "include_usage", "other", "include_usage "]);
                    gen_key(r, &mut m, key);
                    gen_value(r, &mut m, 2);
                    gen_ws(r, &mut m);
                }
                m.push('}');
            }
            members.push(m);
        }
        for _ in 0..r.below(5) {
            let key = match r.below(8) {
                0 => "messages".to_owned(),
                1 => "Model".to_owned(),
                2 => "model ".to_owned(),
                3 => "streams".to_owned(),
                _ => gen_text(r, 0),
            };
            if ["model", "stream", "stream_options"].contains(&key.as_str()) {
                continue;
            }
            let mut m = String::new();
            gen_key(r, &mut m, &key);
            gen_value(r, &mut m, 1);
            members.push(m);
        }
        // Fisher-Yates shuffle.
        for i in (1..members.len()).rev() {
            let j = r.below(i + 1);
            members.swap(i, j);
        }
        let mut body = String::new();
        gen_ws(r, &mut body);
        body.push('{');
        gen_ws(r, &mut body);
        for (i, m) in members.iter().enumerate() {
            if i > 0 {
                body.push(',');
                gen_ws(r, &mut body);
            }
            body.push_str(m);
            gen_ws(r, &mut body);
        }
        body.push('}');
        gen_ws(r, &mut body);
        body
    }

    #[test]
    fn property_scan_agrees_with_serde_json() {
        let mut r = Lcg(0x5eed_0001);
        let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
        for i in 0..600 {
            let body = gen_body(&mut r);
            assert!(
                serde_json::from_str::<Value>(&body).is_ok(),
                "generator produced invalid JSON: {body}"
            );
            let expected = oracle(body.as_bytes()).expect("generated bodies are objects");
            let key = match &expected {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("{e:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            };
            *outcomes.entry(key).or_default() += 1;
            check_against_oracle(body.as_bytes(), expected);
            // Every strict prefix that cuts into the object must be refused.
            if i % 10 == 0 {
                let end = body.rfind('}').unwrap();
                for p in 0..=end {
                    assert!(
                        scan(&body.as_bytes()[..p]).is_err(),
                        "{:?}",
                        &body.as_bytes()[..p]
                    );
                }
            }
        }
        // The generator must exercise both successes and several error kinds.
        assert!(outcomes["ok"] > 300, "{outcomes:?}");
        for kind in [
            "InvalidJson",
            "MissingModel",
            "EmptyModel",
            "ModelNotString",
            "DuplicateModel",
        ] {
            assert!(
                outcomes.get(kind).is_some_and(|&n| n >= 5),
                "{kind}: {outcomes:?}"
            );
        }
    }

    const INTERESTING: &[u8] = &[
        b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'\n', b'0', b'1', b'-', b'+', b'.',
        b'e', b'u', b'd', b'8', b't', b'n', b'm', b'/', 0x00, 0x1f, 0x7f, 0x80, 0xbf, 0xc3, 0xed,
        0xf0, 0xff,
    ];

    /// No panics on mutated input, and the outcome stays consistent with serde_json.
    fn check_mutated(m: &[u8]) {
        let got = scan(m);
        let Ok(text) = std::str::from_utf8(m) else {
            assert_eq!(got, Err(BodyError::InvalidUtf8));
            return;
        };
        let grammar_ok = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
        if !grammar_ok {
            assert!(
                matches!(
                    got,
                    Err(BodyError::InvalidJson { .. } | BodyError::NotAnObject)
                ),
                "{text:?}: serde rejects, scan gave {got:?}"
            );
            return;
        }
        if let Err(BodyError::InvalidJson { reason, .. }) = &got {
            let stricter_than_grammar = [
                reason::LONE_SURROGATE,
                reason::STREAM_NOT_BOOL,
                reason::DUPLICATE_STREAM,
                reason::DUPLICATE_STREAM_OPTIONS,
            ];
            assert!(
                stricter_than_grammar.contains(reason),
                "{text:?}: serde accepts, scan says {reason}"
            );
        }
        match oracle(m) {
            Some(expected) => check_against_oracle(m, expected),
            None => {
                if !text
                    .trim_start_matches([' ', '\t', '\n', '\r'])
                    .starts_with('{')
                {
                    assert_eq!(got, Err(BodyError::NotAnObject), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn fuzz_mutations_never_panic_and_stay_consistent() {
        let mut r = Lcg(0xf022_2024);
        let mut ok_count = 0;
        for _ in 0..400 {
            let body = gen_body(&mut r).into_bytes();
            for _ in 0..50 {
                let mut m = body.clone();
                for _ in 0..=r.below(3) {
                    let at = r.below(m.len() + 1);
                    match r.below(7) {
                        0 | 1 if at < m.len() => m[at] = r.pick(INTERESTING),
                        2 => m.insert(at, r.pick(INTERESTING)),
                        3 if at < m.len() => {
                            m.remove(at);
                        }
                        4 => m.truncate(at),
                        5 => {
                            let end = (at + r.below(16)).min(m.len());
                            let dup = m[at..end].to_vec();
                            m.splice(at..at, dup);
                        }
                        _ if at < m.len() => m[at] = r.next() as u8,
                        _ => {}
                    }
                }
                check_mutated(&m);
                ok_count += usize::from(scan(&m).is_ok());
            }
        }
        assert!(ok_count > 0);
    }

    #[test]
    fn fuzz_random_bytes_never_panic() {
        let mut r = Lcg(42);
        for len in 0..2000 {
            let bytes: Vec<u8> = (0..len % 97).map(|_| r.pick(INTERESTING)).collect();
            check_mutated(&bytes);
            let mut prefixed = br#"{"model":"m","x":"#.to_vec();
            prefixed.extend_from_slice(&bytes);
            check_mutated(&prefixed);
        }
    }
}
