//! The serde visitors of [`scan`](super::scan): the top-level members, the `stream_options`
//! object, and the depth check of the values under the top level.

use std::fmt;
use std::ops::Range;

use memchr::memrchr;
use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;

use super::depth::too_deep;
use super::outcome::{
    invalid, is_ws, offset_in, reason, syntax_error, BodyError, IncludeUsage, RequestScan,
    StreamOptions, MAX_DEPTH,
};
use super::session::{BodySessionKeys, SessionKey};

/// The object keys the scanner reacts to, compared after JSON unescaping, by [`Key::of`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Model,
    Stream,
    StreamOptions,
    /// Only meaningful directly inside `stream_options`.
    IncludeUsage,
    /// `prompt_cache_key`: a session key.
    PromptCache,
    /// `metadata`: its `user_id` is a session key.
    Metadata,
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
            "prompt_cache_key" => Key::PromptCache,
            "metadata" => Key::Metadata,
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
pub(super) struct Members<'a> {
    /// The whole body; every key and [`RawValue`] serde_json lends out borrows from it.
    text: &'a str,
    /// The body has more than [`MAX_DEPTH`] opening brackets, so values are depth-checked.
    pub(super) check_depth: bool,
    /// The first `model` member: its span and decoded name, or what is wrong with its value.
    model: Option<Result<(Range<usize>, String), BodyError>>,
    duplicate_model: bool,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    /// The first `stream` / `stream_options` ambiguity.
    ambiguity: Option<BodyError>,
    /// Session keys (hashed): the first `prompt_cache_key`, `metadata.user_id`.
    session: BodySessionKeys,
    /// Why our own checks stopped the parse (too deep, or an unpaired surrogate in the model
    /// value or a `stream_options` key); serde_json then fails with a placeholder error.
    pub(super) abort: Option<BodyError>,
}

impl<'a> Members<'a> {
    pub(super) fn new(text: &'a str, check_depth: bool) -> Self {
        Members {
            text,
            check_depth,
            model: None,
            duplicate_model: false,
            stream: None,
            stream_options: None,
            ambiguity: None,
            session: BodySessionKeys::default(),
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
            StreamOptions::Other {
                start: at,
                end: at.saturating_add(raw.get().len()),
            }
        };
        if self.stream_options.is_some() {
            let key = key_start(self.text.as_bytes(), at);
            self.ambiguity
                .get_or_insert(invalid(key, reason::DUPLICATE_STREAM_OPTIONS));
        }
        self.stream_options = Some(shape);
        Ok(())
    }

    /// The value of a top-level `prompt_cache_key`: a non-empty string is a session key
    /// (anything else is ignored, never refused).
    fn prompt_cache_key(&mut self, raw: &'a RawValue) -> Result<(), BodyError> {
        self.fits(raw, 1)?;
        if self.session.prompt_cache_key.is_none() {
            self.session.prompt_cache_key = session_key(raw.get());
        }
        Ok(())
    }

    /// The value of a top-level `metadata`: its `user_id` string is a session key. The
    /// value (small) is read one level deep; nested keys are compared undecoded.
    fn metadata(&mut self, raw: &'a RawValue) -> Result<(), BodyError> {
        self.fits(raw, 1)?;
        if self.session.metadata_user_id.is_some() || !raw.get().starts_with('{') {
            return Ok(());
        }
        if let Ok(members) = raw_members(raw.get()) {
            self.session.metadata_user_id = members
                .iter()
                .find(|(k, _)| k.get() == "\"user_id\"")
                .and_then(|(_, v)| session_key(v.get()));
        }
        Ok(())
    }

    /// The verdict on a body that parsed and is not too deep (see [`scan`] for the order).
    pub(super) fn finish(self, body: &[u8]) -> Result<RequestScan, BodyError> {
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
            session: self.session,
        })
    }
}

/// Visits the members of the top-level object.
pub(super) struct TopLevel<'m, 'a>(pub(super) &'m mut Members<'a>);

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
                Key::PromptCache => m.prompt_cache_key(map.next_value()?),
                Key::Metadata => m.metadata(map.next_value()?),
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

/// Visits a `stream_options` object: (has no members, its `include_usage` keys, with value
/// offsets relative to the object's text).
struct OptionsVisitor<'a>(&'a str);

impl<'a> Visitor<'a> for OptionsVisitor<'a> {
    type Value = (bool, IncludeUsage);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut empty = true;
        let mut include_usage = IncludeUsage::Absent;
        while let Some((key, _)) = map.next_key_seed(KeySeed(self.0))? {
            empty = false;
            if key != Key::IncludeUsage {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let raw = map.next_value::<&RawValue>()?;
            let start = offset_in(self.0, raw.get());
            let end = start.saturating_add(raw.get().len());
            let is_true = raw.get() == "true";
            include_usage = match (include_usage, is_true) {
                (_, true) => IncludeUsage::True,
                (IncludeUsage::Absent, false) => IncludeUsage::Value { start, end },
                (_, false) => IncludeUsage::Several,
            };
        }
        Ok((empty, include_usage))
    }
}

/// Shape of a `stream_options` object whose (already validated) text `literal` starts at
/// byte `at` of the body. Parses the literal a second time, one level deep, to decode its keys.
fn stream_options_object(literal: &str, at: usize) -> Result<StreamOptions, BodyError> {
    let mut de = serde_json::Deserializer::from_str(literal);
    let (empty, include_usage) = (&mut de)
        .deserialize_map(OptionsVisitor(literal))
        .map_err(|e| syntax_error(literal, at, &e))?;
    let include_usage = match include_usage {
        IncludeUsage::Value { start, end } => IncludeUsage::Value {
            start: start.saturating_add(at),
            end: end.saturating_add(at),
        },
        other => other,
    };
    Ok(StreamOptions::Object {
        open_brace: at,
        end: at.saturating_add(literal.len()),
        empty,
        include_usage,
    })
}

/// The session key of a (validated) JSON value: a non-empty string, hashed; `None` for
/// anything else (including a string serde_json will not decode).
fn session_key(literal: &str) -> Option<SessionKey> {
    if !literal.starts_with('"') {
        return None;
    }
    match literal.get(1..literal.len().saturating_sub(1)) {
        Some(inner) if !inner.contains('\\') => SessionKey::of(inner.as_bytes()),
        _ => serde_json::from_str::<String>(literal)
            .ok()
            .and_then(|s| SessionKey::of(s.as_bytes())),
    }
}

/// The members of a (validated) JSON object literal, keys and values undecoded.
fn raw_members(literal: &str) -> Result<Vec<(&RawValue, &RawValue)>, serde_json::Error> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(&'de RawValue, &'de RawValue)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(pair) = map.next_entry::<&RawValue, &RawValue>()? {
                out.push(pair);
            }
            Ok(out)
        }
    }
    serde_json::Deserializer::from_str(literal).deserialize_map(Pairs)
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
