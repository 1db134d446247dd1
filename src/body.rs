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
//! serde_json skips values iteratively (no stack overflow) but without any nesting limit, so
//! depth is checked here, linearly. A body with at most [`MAX_DEPTH`] bytes `[`/`{` cannot be
//! too deep (typical chat bodies: one vectorised count). Otherwise each top-level array or
//! object is taken apart one level more (its elements as [`RawValue`]s), and only an element
//! with enough bytes and brackets to be too deep is walked bracket by bracket, so a long
//! `messages` array of ordinary messages is never walked.

use std::fmt;
use std::ops::Range;

use memchr::{memchr, memrchr};
use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;

/// Nesting limit for objects and arrays; deeper bodies are refused with [`BodyError::TooDeep`].
///
/// The top-level object is depth 1, so a body may contain up to `MAX_DEPTH - 1` further levels
/// of nested containers.
pub const MAX_DEPTH: usize = 128;

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

/// `reason` strings of [`BodyError::InvalidJson`].
mod reason {
    pub const EOF: &str = "unexpected end of input";
    pub const EXPECTED_VALUE: &str = "expected a JSON value";
    pub const EXPECTED_OBJECT: &str = "expected a JSON object";
    pub const EXPECTED_KEY: &str = "expected a string key";
    pub const EXPECTED_COLON: &str = "expected ':'";
    pub const EXPECTED_COMMA_OR_BRACE: &str = "expected ',' or '}'";
    pub const EXPECTED_COMMA_OR_BRACKET: &str = "expected ',' or ']'";
    pub const TRAILING_COMMA: &str = "trailing comma";
    pub const INVALID_LITERAL: &str = "invalid literal";
    pub const INVALID_NUMBER: &str = "invalid number";
    pub const CONTROL_CHAR: &str = "unescaped control character in string";
    pub const INVALID_ESCAPE: &str = "invalid escape sequence";
    pub const LONE_SURROGATE: &str = "unpaired surrogate in \\u escape";
    pub const TRAILING: &str = "trailing characters after the top-level object";
    pub const SYNTAX: &str = "syntax error";
    pub const STREAM_NOT_BOOL: &str = "'stream' must be true, false or null";
    pub const DUPLICATE_STREAM: &str = "duplicate 'stream' key";
    pub const DUPLICATE_STREAM_OPTIONS: &str = "duplicate 'stream_options' key";
    pub const CASE_FOLDED_KEY: &str =
        "a key that differs from 'model' or 'stream' only in letter case";
}

/// JSON whitespace (RFC 8259): space, tab, LF, CR. Notably not a byte-order mark.
const WS: [char; 4] = [' ', '\t', '\n', '\r'];

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

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

#[cold]
fn invalid(offset: usize, reason: &'static str) -> BodyError {
    BodyError::InvalidJson { offset, reason }
}

/// Byte offset of `part` in `whole`; `part` must be a sub-slice of `whole` (serde_json lends
/// keys and [`RawValue`]s out of the text it parses).
#[inline]
fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize)
}

/// The object keys the scanner reacts to, compared after JSON unescaping, by [`Key::of`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Model,
    Stream,
    StreamOptions,
    /// Only meaningful directly inside `stream_options`.
    IncludeUsage,
    /// Not `model` or `stream`, but equal to one of them under Unicode case folding
    /// (`MODEL`, `Model`, `ſtream`): refused at the top level, because providers whose JSON
    /// decoders match keys case-insensitively would read it.
    Folded,
    Other,
}

impl Key {
    /// Classify a decoded object key. Every key the scanner decodes passes through here.
    #[inline]
    fn of(key: &str) -> Key {
        match key {
            "model" => Key::Model,
            "stream" => Key::Stream,
            "stream_options" => Key::StreamOptions,
            "include_usage" => Key::IncludeUsage,
            k if folds_to(k, "model") || folds_to(k, "stream") => Key::Folded,
            _ => Key::Other,
        }
    }
}

/// Whether `key` equals the lowercase ASCII `word` under Unicode case folding (each char
/// upper-cased, then lower-cased: `ſ` → `S` → `s`, the Kelvin sign `K` → `k`).
#[inline]
fn folds_to(key: &str, word: &str) -> bool {
    if key.is_ascii() {
        return key.eq_ignore_ascii_case(word);
    }
    key.chars()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .eq(word.chars())
}

/// Deserializes an object key of the text `.0` into its [`Key`] class, plus the offset of the
/// key's closing quote when serde_json lends the key straight from the text (it has no
/// escapes). The decoded key is borrowed either way (from the text, or from serde_json's
/// scratch buffer), never copied; serde_json refuses keys with unpaired surrogate escapes.
struct KeySeed<'a>(&'a str);

impl<'a> DeserializeSeed<'a> for KeySeed<'a> {
    type Value = (Key, Option<usize>);

    #[inline]
    fn deserialize<D: de::Deserializer<'a>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'a> Visitor<'a> for KeySeed<'a> {
    type Value = (Key, Option<usize>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    #[inline]
    fn visit_borrowed_str<E: de::Error>(self, key: &'a str) -> Result<Self::Value, E> {
        let end = offset_in(self.0, key).saturating_add(key.len());
        Ok((Key::of(key), Some(end)))
    }

    #[inline]
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok((Key::of(key), None))
    }
}

/// What the top-level visitor has seen so far. Semantic problems are recorded and the parse
/// goes on (syntax errors anywhere take precedence); only `abort` stops it.
struct Members<'a> {
    /// The whole body; every key and [`RawValue`] serde_json lends out borrows from it.
    text: &'a str,
    /// The body has more than [`MAX_DEPTH`] opening brackets, so values are depth-checked.
    check_depth: bool,
    /// The first `model` member: its span and decoded name, or what is wrong with its value.
    model: Option<Result<(Range<usize>, String), BodyError>>,
    duplicate_model: bool,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    /// The first `stream` / `stream_options` ambiguity.
    ambiguity: Option<BodyError>,
    /// Why our own checks stopped the parse (too deep, or an unpaired surrogate in the model
    /// value or a `stream_options` key); serde_json then fails with a placeholder error.
    abort: Option<BodyError>,
}

impl<'a> Members<'a> {
    fn new(text: &'a str, check_depth: bool) -> Self {
        Members {
            text,
            check_depth,
            model: None,
            duplicate_model: false,
            stream: None,
            stream_options: None,
            ambiguity: None,
            abort: None,
        }
    }

    /// Record `e` as the verdict and return the serde error that stops the parse.
    #[cold]
    fn abort<E: de::Error>(&mut self, e: BodyError) -> E {
        self.abort = Some(e);
        E::custom("aborted")
    }

    /// Byte span of `raw` in the body.
    #[inline]
    fn span(&self, raw: &RawValue) -> Range<usize> {
        let start = offset_in(self.text, raw.get());
        start..start.saturating_add(raw.get().len())
    }

    /// Refuses `raw` if, enclosed by `outer` containers, it nests deeper than [`MAX_DEPTH`].
    #[inline]
    fn fits(&self, raw: &RawValue, outer: usize) -> Result<(), BodyError> {
        let raw = raw.get().as_bytes();
        // A complete value nested `d` deep is at least `2 * d` bytes long.
        let short = raw.len() / 2 <= MAX_DEPTH.saturating_sub(outer);
        if !self.check_depth || short || !too_deep(raw, outer) {
            return Ok(());
        }
        Err(BodyError::TooDeep)
    }

    /// The value of a top-level `model` key.
    fn model(&mut self, raw: &'a RawValue) -> Result<(), BodyError> {
        self.fits(raw, 1)?;
        if self.model.is_some() {
            self.duplicate_model = true;
            return Ok(());
        }
        let span = self.span(raw);
        let literal = raw.get();
        self.model = Some(if !literal.starts_with('"') {
            Err(BodyError::ModelNotString)
        } else if literal.len() == 2 {
            Err(BodyError::EmptyModel)
        } else {
            let name = decode_string(literal, span.start)?;
            Ok((span, name))
        });
        Ok(())
    }

    /// The value of a top-level `stream` key.
    fn stream(&mut self, raw: &'a RawValue) -> Result<(), BodyError> {
        self.fits(raw, 1)?;
        let value = match raw.get() {
            "true" => Some(true),
            "false" | "null" => Some(false),
            _ => None,
        };
        let at = self.span(raw).start;
        if self.stream.is_some() {
            let key = key_start(self.text.as_bytes(), at);
            self.ambiguity
                .get_or_insert(invalid(key, reason::DUPLICATE_STREAM));
        } else if value.is_none() {
            self.ambiguity
                .get_or_insert(invalid(at, reason::STREAM_NOT_BOOL));
        }
        self.stream = Some(value == Some(true));
        Ok(())
    }

    /// The value of a top-level `stream_options` key.
    fn stream_options(&mut self, raw: &'a RawValue) -> Result<(), BodyError> {
        self.fits(raw, 1)?;
        let at = self.span(raw).start;
        let shape = if raw.get().starts_with('{') {
            stream_options_object(raw.get(), at)?
        } else {
            StreamOptions::Other
        };
        if self.stream_options.is_some() {
            let key = key_start(self.text.as_bytes(), at);
            self.ambiguity
                .get_or_insert(invalid(key, reason::DUPLICATE_STREAM_OPTIONS));
        }
        self.stream_options = Some(shape);
        Ok(())
    }

    /// The verdict on a body that parsed and is not too deep (see [`scan`] for the order).
    fn finish(self, body: &[u8]) -> Result<RequestScan, BodyError> {
        if self.duplicate_model {
            return Err(BodyError::DuplicateModel);
        }
        let model = self.model.transpose()?;
        if let Some(e) = self.ambiguity {
            return Err(e);
        }
        let (model_span, model) = model.ok_or(BodyError::MissingModel)?;
        Ok(RequestScan {
            model_span,
            model,
            stream: self.stream.unwrap_or(false),
            // Only whitespace follows the object's `}` (serde_json checked).
            object_end: body.iter().rposition(|&b| !is_ws(b)).unwrap_or(0),
            stream_options: self.stream_options.unwrap_or(StreamOptions::Absent),
        })
    }
}

/// Visits the members of the top-level object.
struct TopLevel<'m, 'a>(&'m mut Members<'a>);

impl<'a> Visitor<'a> for TopLevel<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<(), A::Error> {
        let m = self.0;
        let text = m.text;
        while let Some((key, key_end)) = map.next_key_seed(KeySeed(text))? {
            let done = match key {
                Key::Model => m.model(map.next_value()?),
                Key::Stream => m.stream(map.next_value()?),
                Key::StreamOptions => m.stream_options(map.next_value()?),
                Key::Folded => {
                    let at = key_end.unwrap_or(0);
                    m.ambiguity
                        .get_or_insert(invalid(at, reason::CASE_FOLDED_KEY));
                    map.next_value::<IgnoredAny>().map(|_| Ok(()))?
                }
                Key::IncludeUsage | Key::Other if !m.check_depth => {
                    map.next_value::<IgnoredAny>()?;
                    Ok(())
                }
                // Depth-checked: an array or object is checked element by element (so a long
                // `messages` array of shallow messages is never walked), anything else skipped.
                Key::IncludeUsage | Key::Other => {
                    match key_end.and_then(|end| value_byte(text.as_bytes(), end)) {
                        Some(b'[' | b'{') => map.next_value_seed(Children(&mut *m)).map(Ok),
                        Some(_) => map.next_value::<IgnoredAny>().map(|_| Ok(())),
                        None => map.next_value().map(|raw| m.fits(raw, 1)),
                    }?
                }
            };
            if let Err(e) = done {
                return Err(m.abort(e));
            }
        }
        Ok(())
    }
}

/// The first byte of the value of the member whose key's closing quote is at `key_end`
/// (whitespace and the colon skipped, as serde_json does next), if the colon is there.
fn value_byte(b: &[u8], key_end: usize) -> Option<u8> {
    let mut rest = b.get(key_end.checked_add(1)?..)?.iter().copied();
    let mut next = || rest.find(|&c| !is_ws(c));
    match next()? {
        b':' => next(),
        _ => None,
    }
}

/// Depth-checks the elements (or member values) of a top-level array (or object), each as a
/// [`RawValue`] enclosed by two containers. Aborts the parse with `TooDeep`.
struct Children<'m, 'a>(&'m mut Members<'a>);

impl<'de> DeserializeSeed<'de> for Children<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Children<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array or object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<&RawValue>()? {
            if let Err(e) = self.0.fits(raw, 2) {
                return Err(self.0.abort(e));
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys as `RawValue`s too: `IgnoredAny` would make serde_json decode them (and refuse
        // unpaired surrogates, which nested keys may contain).
        while let Some((_, raw)) = map.next_entry::<&RawValue, &RawValue>()? {
            if let Err(e) = self.0.fits(raw, 2) {
                return Err(self.0.abort(e));
            }
        }
        Ok(())
    }
}

/// Visits a `stream_options` object: (has no members, has an `include_usage` key).
struct OptionsVisitor<'a>(&'a str);

impl<'a> Visitor<'a> for OptionsVisitor<'a> {
    type Value = (bool, bool);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<(bool, bool), A::Error> {
        let (mut empty, mut has_include_usage) = (true, false);
        while let Some((key, _)) = map.next_key_seed(KeySeed(self.0))? {
            map.next_value::<IgnoredAny>()?;
            empty = false;
            has_include_usage |= key == Key::IncludeUsage;
        }
        Ok((empty, has_include_usage))
    }
}

/// Shape of a `stream_options` object whose (already validated) text `literal` starts at
/// byte `at` of the body. Parses the literal a second time, one level deep, to decode its keys.
fn stream_options_object(literal: &str, at: usize) -> Result<StreamOptions, BodyError> {
    let mut de = serde_json::Deserializer::from_str(literal);
    let (empty, has_include_usage) = (&mut de)
        .deserialize_map(OptionsVisitor(literal))
        .map_err(|e| syntax_error(literal, at, &e))?;
    Ok(StreamOptions::Object {
        open_brace: at,
        empty,
        has_include_usage,
    })
}

/// Decode the (already validated) JSON string literal `literal`, which starts at byte `at` of
/// the body. Refuses unpaired surrogate escapes.
fn decode_string(literal: &str, at: usize) -> Result<String, BodyError> {
    match literal.get(1..literal.len().saturating_sub(1)) {
        Some(inner) if !inner.contains('\\') => Ok(inner.to_owned()),
        _ => serde_json::from_str(literal).map_err(|e| syntax_error(literal, at, &e)),
    }
}

/// Offset of the opening quote of the key whose value starts at `value_start` (for error
/// offsets; the body is valid JSON up to `value_start`). Falls back to `value_start`.
#[cold]
fn key_start(b: &[u8], value_start: usize) -> usize {
    let last_non_ws = |end: usize| b.get(..end)?.iter().rposition(|&c| !is_ws(c));
    let found = (|| {
        let colon = last_non_ws(value_start)?;
        let mut end = last_non_ws(colon)?; // the key's closing quote
        loop {
            // The opening quote is the first one to the left not escaped by a backslash.
            let quote = memrchr(b'"', b.get(..end)?)?;
            let backslashes = b.get(..quote)?.iter().rev().take_while(|&&c| c == b'\\');
            if backslashes.count() % 2 == 0 {
                return Some(quote);
            }
            end = quote;
        }
    })();
    found.unwrap_or(value_start)
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
fn syntax_error(text: &str, at: usize, e: &serde_json::Error) -> BodyError {
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

/// Whether `b` holds at most `limit` bytes `[` or `{` (inside strings too), in which case
/// containers in `b` nest at most `limit` deep. Vectorised (a byte counter per 64-byte chunk)
/// and stops as soon as the limit is exceeded.
fn few_openers(b: &[u8], limit: usize) -> bool {
    let mut n = 0usize;
    for chunk in b.chunks(64) {
        n += usize::from(
            chunk
                .iter()
                .map(|&c| u8::from(c | 0x20 == b'{'))
                .sum::<u8>(),
        );
        if n > limit {
            return false;
        }
    }
    true
}

/// Whether a `[` or `{` outside strings in `b` opens a container nested deeper than
/// [`MAX_DEPTH`] when `outer` containers enclose `b` (the top-level object is depth 1).
///
/// `b` must be valid JSON or a prefix of it (text that serde_json parsed up to `b.len()`), so
/// every `"` outside a string opens one. Linear: returns at once when `b` has too few opening
/// brackets to be too deep, and otherwise jumps over string contents with `memchr`.
fn too_deep(b: &[u8], outer: usize) -> bool {
    if few_openers(b, MAX_DEPTH.saturating_sub(outer)) {
        return false;
    }
    let mut depth = outer;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => {
                i = string_end(b, i + 1);
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// Offset just past the closing quote of the string whose contents start at `i`, or `b.len()`.
/// A `"` closes the string unless an odd number of backslashes precedes it.
fn string_end(b: &[u8], mut i: usize) -> usize {
    loop {
        let Some(q) = b.get(i..).and_then(|rest| memchr(b'"', rest)) else {
            return b.len();
        };
        let q = i + q;
        // `b[i - 1]` is a quote, so a backslash run never extends to the left of `i`.
        let run = b.get(i..q).unwrap_or_default();
        if run.iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 0 {
            return q + 1;
        }
        i = q + 1;
    }
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

/// Encode `s` as a JSON string literal, including the surrounding quotes (serde_json's encoder).
///
/// Escapes `"` and `\`, uses the short escapes `\b \f \n \r \t`, and `\u00XX` (lowercase hex) for
/// all other control characters below U+0020. Everything else (including `/`, DEL and non-ASCII)
/// is copied verbatim, so the result is valid JSON whose decoded value is exactly `s`.
pub fn json_string_literal(s: &str) -> String {
    // Serialising a `str` into memory cannot fail (serde_json only fails on I/O errors or
    // non-string map keys), so the empty fallback is unreachable.
    serde_json::to_string(s).unwrap_or_default()
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
            for body in [
                body,
                many_brackets(&format!(r#""v":{v}"#)),
                many_brackets(&format!(r#""v":[{v}]"#)),
                many_brackets(&format!(r#""v":{{"k":{v}}}"#)),
            ] {
                assert!(
                    matches!(fail(&body), BodyError::InvalidJson { .. }),
                    "{body:?}"
                );
            }
        }
        for k in [r#""a"#, "a", "1", "null", r#""\q""#, "\"\u{7}\""] {
            for body in [
                format!(r#"{{"model":"m",{k}:1}}"#),
                many_brackets(&format!(r#""v":{{{k}:1}}"#)),
            ] {
                assert!(
                    matches!(fail(&body), BodyError::InvalidJson { .. }),
                    "{body:?}"
                );
            }
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
            // Also in a body with many brackets, where values are taken apart for depth checks.
            for body in [
                format!(r#"{{"model":"m","v":{v}}}"#),
                many_brackets(&format!(r#""v":{v}"#)),
                many_brackets(&format!(r#""v":[{v}],"w":{{"k":{v}}},"\u0078":{v}"#)),
            ] {
                assert_eq!(ok(&body).model, "m", "{body}");
            }
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

    /// Strings of every length up to 90 bytes with an escape, a raw control character or a stray
    /// quote at every offset (serde_json's word-at-a-time string skipper, decoded and skipped
    /// strings, with and without newlines elsewhere in the body); control characters are
    /// reported at their exact offset.
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

    /// `member` in a body with more than MAX_DEPTH brackets in total, so that values are
    /// depth-checked rather than cleared by the bracket count.
    fn many_brackets(member: &str) -> String {
        format!(
            r#"{{"model":"m","messages":[{}{{}}],{member}}}"#,
            "{},".repeat(MAX_DEPTH)
        )
    }

    /// `body` (an object) with a first member holding more than MAX_DEPTH brackets.
    fn with_many_brackets(body: &str) -> String {
        let open = body.find('{').expect("an object");
        let (head, tail) = body.split_at(open + 1);
        let comma = if tail.trim_start().starts_with('}') {
            ""
        } else {
            ","
        };
        format!(
            r#"{head}"pad":[{}[]]{comma}{tail}"#,
            "[],".repeat(MAX_DEPTH)
        )
    }

    fn arrays(n: usize) -> String {
        format!("{}{}", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn depth_limit_in_bodies_with_many_brackets() {
        let ok_and_too_deep = |member: &dyn Fn(usize) -> String, deepest_ok: usize| {
            let body = many_brackets(&member(deepest_ok));
            assert!(scan(body.as_bytes()).is_ok(), "{}", member(deepest_ok));
            let body = many_brackets(&member(deepest_ok + 1));
            assert_eq!(
                scan(body.as_bytes()),
                Err(BodyError::TooDeep),
                "{}",
                member(1)
            );
        };
        // A top-level array or object, checked element by element.
        ok_and_too_deep(&|n| format!(r#""a":{}"#, arrays(n)), 127);
        ok_and_too_deep(&|n| format!(r#""a":{{"k":{}}}"#, arrays(n)), 126);
        ok_and_too_deep(&|n| format!(r#""a":[1,"x",{{}},{}]"#, arrays(n)), 126);
        // An escaped key: the value is checked as a whole.
        ok_and_too_deep(&|n| format!(r#""\u0061":{}"#, arrays(n)), 127);
        // The messages array itself (depth 2) holding a deep element.
        ok_and_too_deep(&|n| format!(r#""b":[{{"x":1}},{}]"#, arrays(n)), 126);
        // Quotes, escaped quotes and backslashes before the brackets.
        ok_and_too_deep(
            &|n| format!(r#""b":[{{"c":"a\\\"[[[\\","d":{}}}]"#, arrays(n)),
            125,
        );
        ok_and_too_deep(
            &|n| format!(r#""stream_options":{{"x":{}}}"#, arrays(n)),
            126,
        );
        // Too deep is reported before what is wrong with a model or stream value.
        let body = many_brackets(&format!(r#""stream":{}"#, arrays(127)));
        assert_eq!(invalid_reason(&fail(&body)), reason::STREAM_NOT_BOOL);
        let body = many_brackets(&format!(r#""stream":{}"#, arrays(128)));
        assert_eq!(fail(&body), BodyError::TooDeep);
        let messages = vec!["{}"; 200].join(",");
        let body = format!(r#"{{"messages":[{messages}],"model":{}}}"#, arrays(127));
        assert_eq!(fail(&body), BodyError::ModelNotString);
        let body = format!(r#"{{"messages":[{messages}],"model":{}}}"#, arrays(128));
        assert_eq!(fail(&body), BodyError::TooDeep);
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let brackets = "[{".repeat(300);
        for member in [
            format!(r#""a":"{brackets}""#),
            format!(r#""a":["{brackets}"]"#),
            format!(r#""a":{{"{brackets}":"{brackets}"}}"#),
            format!(r#""{brackets}":1"#),
        ] {
            for body in [
                many_brackets(&member),
                format!(r#"{{"model":"m",{member}}}"#),
            ] {
                assert_eq!(ok(&body).model, "m", "{member}");
            }
        }
    }

    #[test]
    fn too_deep_and_syntax_errors_in_document_order() {
        for pad in [
            "",
            r#""p":[[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[]],"#,
        ] {
            let deep = arrays(128);
            let body = format!(r#"{{{pad}"model":"m","a":{deep},"b":x}}"#);
            assert_eq!(fail(&body), BodyError::TooDeep, "{body}");
            let body = format!(r#"{{{pad}"model":"m","b":x,"a":{deep}}}"#);
            assert!(
                matches!(fail(&body), BodyError::InvalidJson { .. }),
                "{body}"
            );
            let body = format!(r#"{{{pad}"model":"m","a":[{deep},x]}}"#);
            assert_eq!(fail(&body), BodyError::TooDeep, "{body}");
            let body = format!(r#"{{{pad}"model":"m","a":[x,{deep}]}}"#);
            assert!(
                matches!(fail(&body), BodyError::InvalidJson { .. }),
                "{body}"
            );
            // Too deep, then the body ends.
            let body = format!(r#"{{{pad}"model":"m","a":[1,{}"#, "[".repeat(200));
            assert_eq!(fail(&body), BodyError::TooDeep, "{body}");
        }
    }

    #[test]
    fn error_offsets() {
        let at = |body: &str| match fail(body) {
            BodyError::InvalidJson { offset, reason } => (offset, reason),
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(
            at(r#"{"model":"m","v":[1 2]}"#),
            (20, reason::EXPECTED_COMMA_OR_BRACKET)
        );
        assert_eq!(
            at("{\"model\":\"m\",\n\"v\" 1}"),
            (18, reason::EXPECTED_COLON)
        );
        assert_eq!(
            at("{\"model\":\"m\",\n\n\"v\":[}"),
            (20, reason::EXPECTED_VALUE)
        );
        assert_eq!(
            at("{\"model\":\"m\",\n\"v\":\n}"),
            (19, reason::EXPECTED_VALUE)
        );
        assert_eq!(at(r#"{"model":"m","v":[1,]}"#).0, 20);
        assert_eq!(at(r#"{"model":"m","v":"#), (17, reason::EOF));
        assert_eq!(at("{\"model\":\"m\"}\n\n x"), (16, reason::TRAILING));
        // Duplicate keys point at the (second) key, however it is spelled.
        assert_eq!(
            at(r#"{"model":"m","stream":true, "str\u0065am" :false}"#),
            (28, reason::DUPLICATE_STREAM)
        );
        assert_eq!(
            at(r#"{"model":"m","stream_options":{},"x\"y":1,"stream_options":null}"#),
            (42, reason::DUPLICATE_STREAM_OPTIONS)
        );
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
        let folded = |k: &str| {
            k != "model"
                && k != "stream"
                && (super::folds_to(k, "model") || super::folds_to(k, "stream"))
        };
        if entries.iter().any(|(k, _)| folded(k)) {
            return Some(any_invalid);
        }
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
            // The same with depth checks on (values taken apart one level).
            let padded = with_many_brackets(&body);
            let expected = oracle(padded.as_bytes()).expect("padded bodies are objects");
            check_against_oracle(padded.as_bytes(), expected);
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
                reason::CASE_FOLDED_KEY,
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
            let body = gen_body(&mut r);
            // Every other body with depth checks on.
            let body = if r.chance(50) {
                with_many_brackets(&body)
            } else {
                body
            };
            let body = body.into_bytes();
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

#[cfg(test)]
mod case_folding_tests {
    use super::*;

    #[test]
    fn case_folded_model_and_stream_keys_are_refused() {
        for body in [
            r#"{"model":"a","MODEL":"b"}"#,
            r#"{"model":"a","Model":"b"}"#,
            r#"{"MoDeL":"b","model":"a"}"#,
            r#"{"model":"a","STREAM":true}"#,
            r#"{"model":"a","\u017ftream":true}"#,
            "{\"model\":\"a\",\"\u{17f}TREAM\":false}",
            r#"{"model":"a","\u212aey":1,"MODE\u004C":1}"#,
            r#"{"model":"a","mo\u0044el":"b"}"#,
        ] {
            match scan(body.as_bytes()) {
                Err(BodyError::InvalidJson { reason, .. }) => {
                    assert_eq!(reason, reason::CASE_FOLDED_KEY, "{body}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        // look-alikes that do not fold to the reserved names, and nested keys, are fine
        for body in [
            r#"{"model":"a","models":1,"streams":2,"Stream_options":3}"#,
            r#"{"model":"a","messages":[{"MODEL":"x","Stream":1}]}"#,
            r#"{"model":"a","m\u00f6del":1,"\u212aey":1}"#,
        ] {
            assert!(scan(body.as_bytes()).is_ok(), "{body}");
        }
    }
}
