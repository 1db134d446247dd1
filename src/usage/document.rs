//! What one JSON document contributes: its `usage` objects mapped onto [`TokenUsage`], an
//! in-band error, and whether it is one valid JSON value. Shared by the non-stream body
//! scanner and the event-stream scanner.

use std::fmt;
use std::sync::LazyLock;

use memchr::memmem;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::vocab::TokenUsage;

// ---------------------------------------------------------------------------------------------
// What one JSON document contributes
// ---------------------------------------------------------------------------------------------

const HAS_INPUT: u8 = 1;
const HAS_OUTPUT: u8 = 2;
pub(super) const ERROR: u8 = 4;
const HAS_CACHE_READ: u8 = 8;
const HAS_CACHE_WRITE: u8 = 16;
const HAS_COUNT: u8 = HAS_INPUT | HAS_OUTPUT | HAS_CACHE_READ | HAS_CACHE_WRITE;

/// Findings of one JSON document: usage counts (merged in document order) and whether it had
/// a non-null top-level `error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Found {
    /// The counts; only those flagged in `flags` were seen.
    counts: TokenUsage,
    /// `HAS_INPUT` | `HAS_OUTPUT` | `HAS_CACHE_READ` | `HAS_CACHE_WRITE` | `ERROR`.
    pub(super) flags: u8,
}

impl Found {
    /// Merge later findings into these (a later count replaces an earlier one).
    pub(super) fn merge(&mut self, later: Found) {
        let (to, from) = (&mut self.counts, later.counts);
        if later.flags & HAS_INPUT != 0 {
            to.input = from.input;
        }
        if later.flags & HAS_OUTPUT != 0 {
            to.output = from.output;
        }
        if later.flags & HAS_CACHE_READ != 0 {
            to.cache_read = from.cache_read;
        }
        if later.flags & HAS_CACHE_WRITE != 0 {
            to.cache_write = from.cache_write;
        }
        self.flags |= later.flags;
    }

    /// The counts, once at least one was seen.
    pub(super) fn usage(&self) -> Option<TokenUsage> {
        (self.flags & HAS_COUNT != 0).then_some(self.counts)
    }
}

/// Member names we look at (anything else is `Other`).
enum Key {
    Usage,
    Error,
    Message,
    /// `prompt_tokens`, `completion_tokens`, `input_tokens`, `output_tokens`,
    /// `cache_read_input_tokens`, `cache_creation_input_tokens` (index into the usage counts).
    Count(usize),
    /// `prompt_tokens_details` (OpenAI).
    PromptDetails,
    /// `input_tokens_details` (OpenAI Responses: its `cached_tokens` are part of
    /// `input_tokens`).
    InputDetails,
    /// `response` (OpenAI Responses stream events carry the response object in it).
    Response,
    /// `usageMetadata` (Gemini's usage object, see [`GeminiUsage`]).
    UsageMetadata,
    /// `promptTokenCount`, `candidatesTokenCount`, `cachedContentTokenCount`,
    /// `thoughtsTokenCount` (inside `usageMetadata`; index into its counts).
    GeminiCount(usize),
    /// `cached_tokens` (inside `prompt_tokens_details`).
    CachedTokens,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_bytes<E: de::Error>(self, s: &[u8]) -> Result<Key, E> {
                Ok(match s {
                    b"usage" => Key::Usage,
                    b"error" => Key::Error,
                    b"message" => Key::Message,
                    b"prompt_tokens" => Key::Count(0),
                    b"completion_tokens" => Key::Count(1),
                    b"input_tokens" => Key::Count(2),
                    b"output_tokens" => Key::Count(3),
                    b"cache_read_input_tokens" => Key::Count(4),
                    b"cache_creation_input_tokens" => Key::Count(5),
                    b"prompt_tokens_details" => Key::PromptDetails,
                    b"input_tokens_details" => Key::InputDetails,
                    b"response" => Key::Response,
                    b"usageMetadata" => Key::UsageMetadata,
                    b"promptTokenCount" => Key::GeminiCount(0),
                    b"candidatesTokenCount" => Key::GeminiCount(1),
                    b"cachedContentTokenCount" => Key::GeminiCount(2),
                    b"thoughtsTokenCount" => Key::GeminiCount(3),
                    b"cached_tokens" => Key::CachedTokens,
                    _ => Key::Other,
                })
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                self.visit_bytes(s.as_bytes())
            }
        }
        // Not `deserialize_bytes`: serde_json's raw string path accepts control characters.
        d.deserialize_identifier(V)
    }
}

/// What to do with an object value; any other JSON value is skipped and yields the default.
pub(super) trait ObjectHandler<'de>: Sized {
    type Out: Default;
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error>;
}

/// Deserializes any JSON value: objects go to the handler, everything else is skipped.
pub(super) struct Lenient<H>(pub(super) H);

macro_rules! skip_scalars {
    ($($name:ident($t:ty)),*) => {
        $(fn $name<E: de::Error>(self, _: $t) -> Result<Self::Value, E> {
            Ok(H::Out::default())
        })*
    };
}

impl<'de, H: ObjectHandler<'de>> Visitor<'de> for Lenient<H> {
    type Value = H::Out;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    skip_scalars!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str)
    );
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(H::Out::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(H::Out::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.object(map)
    }
}

impl<'de, H: ObjectHandler<'de>> DeserializeSeed<'de> for Lenient<H> {
    type Value = H::Out;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<H::Out, D::Error> {
        d.deserialize_any(self)
    }
}

/// A count: `Ok(None)` for `null`, `Err(())` for anything but `null` or a `u64`.
fn count<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Result<Option<u64>, ()>, A::Error> {
    // A number is a `Value` without allocation.
    Ok(match map.next_value::<serde_json::Value>()? {
        serde_json::Value::Null => Ok(None),
        v => v.as_u64().map(Some).ok_or(()),
    })
}

/// The value of `prompt_tokens_details`: `Ok(cached_tokens)` for `null` or an object whose
/// `cached_tokens` is absent, `null` or a `u64`; `Err(())` for anything else (another kind of
/// value, a bad or repeated `cached_tokens`), which spoils the enclosing usage object.
struct PromptDetails;

type Details = Result<Option<u64>, ()>;

impl<'de> Visitor<'de> for PromptDetails {
    type Value = Details;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Details, E> {
        Ok(Err(()))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Details, E> {
        Ok(Err(()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Details, E> {
        Ok(Err(()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Details, E> {
        Ok(Err(()))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Details, E> {
        Ok(Err(()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Details, E> {
        Ok(Ok(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Details, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Details, A::Error> {
        let mut cached = Ok(None);
        let mut seen = false;
        while let Some(key) = map.next_key::<Key>()? {
            if let Key::CachedTokens = key {
                let n = count(&mut map)?;
                cached = if seen { Err(()) } else { cached.and(n) };
                seen = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(cached)
    }
}

impl<'de> DeserializeSeed<'de> for PromptDetails {
    type Value = Details;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Details, D::Error> {
        d.deserialize_any(self)
    }
}

/// A `usage` object: its counts (mapped as documented in the module docs), or `None` when a count
/// is neither `null` nor a `u64`, a count or `prompt_tokens_details` is repeated, or
/// `prompt_tokens_details` is neither `null` nor a valid object (such an object is ignored as
/// a whole).
pub(super) struct UsageObject;

impl<'de> ObjectHandler<'de> for UsageObject {
    type Out = Option<Found>;
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Found>, A::Error> {
        // prompt_tokens, completion_tokens, input_tokens, output_tokens,
        // cache_read_input_tokens, cache_creation_input_tokens.
        let mut vals = [None; 6];
        let mut cached = None;
        let mut input_cached = None;
        // Bit i: count i seen; bit 6: prompt_tokens_details seen; bit 7:
        // input_tokens_details seen.
        let mut seen = 0u8;
        let mut bad = false;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Count(i) => {
                    bad |= seen & (1 << i) != 0;
                    seen |= 1 << i;
                    match (count(&mut map)?, vals.get_mut(i)) {
                        (Ok(n), Some(slot)) => *slot = n,
                        _ => bad = true,
                    }
                }
                Key::PromptDetails => {
                    bad |= seen & (1 << 6) != 0;
                    seen |= 1 << 6;
                    match map.next_value_seed(PromptDetails)? {
                        Ok(n) => cached = n,
                        Err(()) => bad = true,
                    }
                }
                Key::InputDetails => {
                    bad |= seen & (1 << 7) != 0;
                    seen |= 1 << 7;
                    match map.next_value_seed(PromptDetails)? {
                        Ok(n) => input_cached = Some(n.unwrap_or(0)),
                        Err(()) => bad = true,
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if bad {
            return Ok(None);
        }
        let [prompt, completion, input, output, cache_read, cache_write] = vals;
        let output = output.or(completion);
        let flag = |n: Option<u64>, bit: u8| if n.is_some() { bit } else { 0 };
        let (counts, flags) = match (input, prompt) {
            // OpenAI Responses: `input_tokens` is the whole prompt when it comes with
            // `input_tokens_details`, whose `cached_tokens` are a part of it.
            (Some(input), _) if input_cached.is_some() => (
                TokenUsage::from_openai(input, output.unwrap_or(0), input_cached.unwrap_or(0)),
                HAS_INPUT | HAS_CACHE_READ | HAS_CACHE_WRITE,
            ),
            // OpenAI: the prompt count is the whole prompt, `cached_tokens` a part of it; it
            // sets all three prompt counts.
            (None, Some(prompt)) => (
                TokenUsage::from_openai(prompt, output.unwrap_or(0), cached.unwrap_or(0)),
                HAS_INPUT | HAS_CACHE_READ | HAS_CACHE_WRITE,
            ),
            // Anthropic: uncached input and the cache counts are reported apart.
            (input, _) => (
                TokenUsage::from_anthropic(
                    input.unwrap_or(0),
                    output.unwrap_or(0),
                    cache_read.unwrap_or(0),
                    cache_write.unwrap_or(0),
                ),
                flag(input, HAS_INPUT)
                    | flag(cache_read, HAS_CACHE_READ)
                    | flag(cache_write, HAS_CACHE_WRITE),
            ),
        };
        Ok(Some(Found {
            counts,
            flags: flags | flag(output, HAS_OUTPUT),
        }))
    }
}

/// Gemini's `usageMetadata` object: `promptTokenCount` is the whole prompt,
/// `cachedContentTokenCount` a part of it; output is `candidatesTokenCount` plus
/// `thoughtsTokenCount`. `None` when a count is neither `null` nor a `u64`, or repeated.
pub(super) struct GeminiUsage;

impl<'de> ObjectHandler<'de> for GeminiUsage {
    type Out = Option<Found>;
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Found>, A::Error> {
        let mut vals = [None; 4];
        let mut seen = 0u8;
        let mut bad = false;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::GeminiCount(i) => {
                    bad |= seen & (1 << i) != 0;
                    seen |= 1 << i;
                    match (count(&mut map)?, vals.get_mut(i)) {
                        (Ok(n), Some(slot)) => *slot = n,
                        _ => bad = true,
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let [prompt, candidates, cached, thoughts] = vals;
        if bad || vals.iter().all(Option::is_none) {
            return Ok(None);
        }
        let output = candidates
            .unwrap_or(0)
            .saturating_add(thoughts.unwrap_or(0));
        let mut flags = if candidates.is_some() || thoughts.is_some() {
            HAS_OUTPUT
        } else {
            0
        };
        if prompt.is_some() {
            flags |= HAS_INPUT | HAS_CACHE_READ | HAS_CACHE_WRITE;
        }
        Ok(Some(Found {
            counts: TokenUsage::from_openai(prompt.unwrap_or(0), output, cached.unwrap_or(0)),
            flags,
        }))
    }
}

/// The top-level object: its `usage`; in SSE mode also `error` and `message.usage`
/// (Anthropic's `message_start`: the `message` object is read as a non-SSE top level).
struct TopObject {
    sse: bool,
}

impl<'de> ObjectHandler<'de> for TopObject {
    type Out = Found;
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let mut found = Found::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Usage => {
                    if let Some(counts) = map.next_value_seed(Lenient(UsageObject))? {
                        found.merge(counts);
                    }
                }
                Key::UsageMetadata => {
                    if let Some(counts) = map.next_value_seed(Lenient(GeminiUsage))? {
                        found.merge(counts);
                    }
                }
                Key::Error if self.sse => {
                    if map.next_value::<Option<IgnoredAny>>()?.is_some() {
                        found.flags |= ERROR;
                    }
                }
                Key::Message | Key::Response if self.sse => {
                    found.merge(map.next_value_seed(Lenient(TopObject { sse: false }))?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// A top-level array whose elements' `usageMetadata` are merged in order (Gemini's
/// streamed JSON array: the last element carries the final usage). Other members, other
/// dialects' `usage` among them, do not count in an array.
struct Elements;

/// One element of [`Elements`]: its `usageMetadata` only.
struct GeminiElement;

impl<'de> ObjectHandler<'de> for GeminiElement {
    type Out = Found;
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let mut found = Found::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::UsageMetadata => {
                    if let Some(counts) = map.next_value_seed(Lenient(GeminiUsage))? {
                        found.merge(counts);
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

impl<'de> Visitor<'de> for Elements {
    type Value = Found;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Found, A::Error> {
        let mut found = Found::default();
        while let Some(f) = seq.next_element_seed(Lenient(GeminiElement))? {
            found.merge(f);
        }
        Ok(found)
    }
}

/// Whether a document is valid JSON, and if not whether more bytes could make it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JsonValidity {
    /// Exactly one JSON value (whitespace around it allowed).
    Valid,
    /// A prefix of a JSON value: the input ended too early.
    Incomplete,
    /// Not JSON, or something other than whitespace after the value.
    Invalid,
}

#[inline]
pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether a JSON value can start with byte `b`.
#[inline]
pub(super) fn starts_json(b: u8) -> bool {
    matches!(
        b,
        b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
    )
}

/// Parse `doc` once: validate it and collect its findings. The findings of the first value
/// are returned even when garbage follows it (the verdict is then `Invalid`).
pub(super) fn analyse(doc: &[u8], sse: bool) -> (Found, JsonValidity) {
    let first = doc.iter().find(|&&b| !is_ws(b));
    let top_object = first == Some(&b'{');
    if !sse && first == Some(&b'[') && may_carry(doc, sse) {
        // Gemini's streamed JSON array: each element is a response object.
        let mut de = serde_json::Deserializer::from_slice(doc);
        if let Ok(found) = de.deserialize_seq(Elements) {
            let verdict = match de.end() {
                Ok(()) => JsonValidity::Valid,
                Err(_) => JsonValidity::Invalid,
            };
            return (found, verdict);
        }
    }
    if top_object && may_carry(doc, sse) {
        let mut de = serde_json::Deserializer::from_slice(doc);
        if let Ok(found) = de.deserialize_map(Lenient(TopObject { sse })) {
            let verdict = match de.end() {
                Ok(()) => JsonValidity::Valid,
                Err(_) => JsonValidity::Invalid,
            };
            return (found, verdict);
        }
        // Extraction is stricter than validation in corner cases (a key that is not UTF-8, a
        // count out of `f64` range): fall through to plain validation.
    }
    let verdict = match serde_json::from_slice::<IgnoredAny>(doc) {
        Ok(_) => JsonValidity::Valid,
        Err(e) if e.is_eof() => JsonValidity::Incomplete,
        Err(_) => JsonValidity::Invalid,
    };
    (Found::default(), verdict)
}

static USAGE_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"usage\""));
static USAGE_METADATA_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"usageMetadata\""));
static ERROR_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"error\""));
static MESSAGE_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"message\""));

/// Prefilter: whether `doc` may have a member that contributes findings, i.e. contains
/// `"usage"` followed by `:` and an object, or (SSE) `"error"` followed by `:` and a non-null
/// value, or `"message"` followed by `:` and an object (anywhere: the parse decides whether
/// it is top-level). Most stream chunks have none (`"usage":null`) and are only validated,
/// which is about twice as fast as extracting. Consequence: a member name is recognised by
/// its raw bytes; an escaped spelling (`"us\u0061ge"`) is not.
fn may_carry(doc: &[u8], sse: bool) -> bool {
    fn key_then(doc: &[u8], f: &memmem::Finder<'_>, ok: fn(u8) -> bool) -> bool {
        f.find_iter(doc).any(|pos| {
            let rest = doc.get(pos + f.needle().len()..).unwrap_or_default();
            let mut it = rest.iter().copied().filter(|&b| !is_ws(b));
            it.next() == Some(b':') && it.next().is_some_and(ok)
        })
    }
    key_then(doc, &USAGE_KEY, |b| b == b'{')
        || key_then(doc, &USAGE_METADATA_KEY, |b| b == b'{')
        || (sse
            && (key_then(doc, &ERROR_KEY, |b| b != b'n')
                || key_then(doc, &MESSAGE_KEY, |b| b == b'{')))
}
