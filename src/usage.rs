//! Observers for upstream LLM response bodies.
//!
//! The gateway forwards every upstream body chunk unchanged and immediately; the types in this
//! module only *observe* those chunks (chunk boundaries are arbitrary: they may split an SSE
//! line, a JSON token, a UTF-8 character or a `\r\n` pair) and report:
//!
//! * the token [`Usage`] of the response,
//! * for SSE streams ([`SseScanner`]): whether the stream completed (`data: [DONE]` /
//!   `event: message_stop`), whether the upstream reported an error in-band, and whether the
//!   stream is broken ([`SseError`]),
//! * for non-stream JSON bodies ([`JsonUsageScanner`]): the top-level `usage` member and
//!   whether the body is one JSON value.
//!
//! # Design
//!
//! [`SseScanner`] runs the [`SseDecoder`] (framing, one reused event
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

use std::fmt;
use std::sync::{LazyLock, OnceLock};

use memchr::memmem;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::sse::{SseDecoder, SseFrame};
pub use crate::sse::{SseError, MAX_SSE_LINE};

/// Non-stream bodies up to this size are kept whole and validated exactly when the body
/// ends. Above it, only the last [`USAGE_CAPTURE_CAP`] bytes are kept (see
/// [`JsonUsageScanner`]).
pub const JSON_BODY_CAP: usize = 256 << 10;

/// How many trailing bytes of a non-stream body larger than [`JSON_BODY_CAP`] are kept to find
/// its top-level `usage` member in (providers put it at the end; real ones are a few hundred
/// bytes).
pub const USAGE_CAPTURE_CAP: usize = 4096;

/// Token usage of one response, in the gateway's token partition: the prompt is split into
/// `input_tokens` (neither read from nor written to a prompt cache), `cache_read_tokens` and
/// `cache_write_tokens`, so `input + cache_read + cache_write` is the whole prompt in both
/// dialects (unless an OpenAI upstream reports more cached than prompt tokens), and
/// `output_tokens` is the completion.
///
/// How a `usage` object maps (a missing or `null` count is 0, e.g. embeddings have no
/// `completion_tokens`):
///
/// * Output: `output_tokens`, else `completion_tokens`.
/// * Anthropic / OpenAI Responses spelling (the object has `input_tokens`, which wins over
///   `prompt_tokens`): `input_tokens` as is (Anthropic's already excludes cached tokens),
///   `cache_read_input_tokens` → `cache_read_tokens`, `cache_creation_input_tokens` →
///   `cache_write_tokens`. The same cache members count in an object with no prompt count at
///   all (Anthropic's `message_delta`). `prompt_tokens_details` is ignored.
/// * OpenAI spelling (`prompt_tokens`, no `input_tokens`): `prompt_tokens` is the whole prompt
///   and `prompt_tokens_details.cached_tokens` the part read from the cache, so
///   `cache_read_tokens = cached_tokens`, `input_tokens = prompt_tokens - cached_tokens`
///   (saturating at 0) and `cache_write_tokens = 0` (OpenAI reports no cache writes; Anthropic
///   cache members in such an object are ignored, they would count the prompt twice).
///   Such an object sets all three prompt counts, even without `prompt_tokens_details`.
///   `cached_tokens` without `prompt_tokens` is ignored.
///
/// OpenAI Responses' `input_tokens_details.cached_tokens` is not read: there the cached
/// tokens stay in `input_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens neither read from nor written to a prompt cache.
    pub input_tokens: u64,
    /// Completion / output tokens.
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's prompt cache (Anthropic
    /// `cache_read_input_tokens`, OpenAI `prompt_tokens_details.cached_tokens`).
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache (Anthropic
    /// `cache_creation_input_tokens`; always 0 for OpenAI).
    pub cache_write_tokens: u64,
}

// ---------------------------------------------------------------------------------------------
// What one JSON document contributes
// ---------------------------------------------------------------------------------------------

const HAS_INPUT: u8 = 1;
const HAS_OUTPUT: u8 = 2;
const ERROR: u8 = 4;
const HAS_CACHE_READ: u8 = 8;
const HAS_CACHE_WRITE: u8 = 16;
const HAS_COUNT: u8 = HAS_INPUT | HAS_OUTPUT | HAS_CACHE_READ | HAS_CACHE_WRITE;

/// Findings of one JSON document: usage counts (merged in document order) and whether it had
/// a non-null top-level `error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Found {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    /// `HAS_INPUT` | `HAS_OUTPUT` | `HAS_CACHE_READ` | `HAS_CACHE_WRITE` | `ERROR`.
    flags: u8,
}

impl Found {
    /// Merge later findings into these (a later count replaces an earlier one).
    fn merge(&mut self, later: Found) {
        if later.flags & HAS_INPUT != 0 {
            self.input = later.input;
        }
        if later.flags & HAS_OUTPUT != 0 {
            self.output = later.output;
        }
        if later.flags & HAS_CACHE_READ != 0 {
            self.cache_read = later.cache_read;
        }
        if later.flags & HAS_CACHE_WRITE != 0 {
            self.cache_write = later.cache_write;
        }
        self.flags |= later.flags;
    }

    fn usage(&self) -> Option<Usage> {
        (self.flags & HAS_COUNT != 0).then_some(Usage {
            input_tokens: self.input,
            output_tokens: self.output,
            cache_read_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
        })
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
trait ObjectHandler<'de>: Sized {
    type Out: Default;
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error>;
}

/// Deserializes any JSON value: objects go to the handler, everything else is skipped.
struct Lenient<H>(H);

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

/// A `usage` object: its counts (mapped as documented on [`Usage`]), or `None` when a count
/// is neither `null` nor a `u64`, a count or `prompt_tokens_details` is repeated, or
/// `prompt_tokens_details` is neither `null` nor a valid object (such an object is ignored as
/// a whole).
struct UsageObject;

impl<'de> ObjectHandler<'de> for UsageObject {
    type Out = Option<Found>;
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Found>, A::Error> {
        // prompt_tokens, completion_tokens, input_tokens, output_tokens,
        // cache_read_input_tokens, cache_creation_input_tokens.
        let mut vals = [None; 6];
        let mut cached = None;
        // Bit i: count i seen; bit 6: prompt_tokens_details seen.
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
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if bad {
            return Ok(None);
        }
        let [prompt, completion, input, output, cache_read, cache_write] = vals;
        let mut found = Found::default();
        if let Some(n) = output.or(completion) {
            found.output = n;
            found.flags |= HAS_OUTPUT;
        }
        match (input, prompt) {
            // OpenAI: the prompt count is the whole prompt, `cached_tokens` a part of it.
            (None, Some(prompt)) => {
                let cached = cached.unwrap_or(0);
                found.input = prompt.saturating_sub(cached);
                found.cache_read = cached;
                found.flags |= HAS_INPUT | HAS_CACHE_READ | HAS_CACHE_WRITE;
            }
            // Anthropic: uncached input and the cache counts are reported apart.
            (input, _) => {
                if let Some(n) = input {
                    found.input = n;
                    found.flags |= HAS_INPUT;
                }
                if let Some(n) = cache_read {
                    found.cache_read = n;
                    found.flags |= HAS_CACHE_READ;
                }
                if let Some(n) = cache_write {
                    found.cache_write = n;
                    found.flags |= HAS_CACHE_WRITE;
                }
            }
        }
        Ok(Some(found))
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
                Key::Error if self.sse => {
                    if map.next_value::<Option<IgnoredAny>>()?.is_some() {
                        found.flags |= ERROR;
                    }
                }
                Key::Message if self.sse => {
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

/// Whether `doc` is valid JSON, and if not whether more bytes could make it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Exactly one JSON value (whitespace around it allowed).
    Valid,
    /// A prefix of a JSON value: the input ended too early.
    Incomplete,
    /// Not JSON, or something other than whitespace after the value.
    Invalid,
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether a JSON value can start with byte `b`.
#[inline]
fn starts_json(b: u8) -> bool {
    matches!(
        b,
        b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
    )
}

/// Parse `doc` once: validate it and collect its findings. The findings of the first value
/// are returned even when garbage follows it (the verdict is then `Invalid`).
fn analyse(doc: &[u8], sse: bool) -> (Found, Verdict) {
    let top_object = doc.iter().find(|&&b| !is_ws(b)) == Some(&b'{');
    if top_object && may_carry(doc, sse) {
        let mut de = serde_json::Deserializer::from_slice(doc);
        if let Ok(found) = de.deserialize_map(Lenient(TopObject { sse })) {
            let verdict = match de.end() {
                Ok(()) => Verdict::Valid,
                Err(_) => Verdict::Invalid,
            };
            return (found, verdict);
        }
        // Extraction is stricter than validation in corner cases (a key that is not UTF-8, a
        // count out of `f64` range): fall through to plain validation.
    }
    let verdict = match serde_json::from_slice::<IgnoredAny>(doc) {
        Ok(_) => Verdict::Valid,
        Err(e) if e.is_eof() => Verdict::Incomplete,
        Err(_) => Verdict::Invalid,
    };
    (Found::default(), verdict)
}

static USAGE_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"usage\""));
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
        || (sse
            && (key_then(doc, &ERROR_KEY, |b| b != b'n')
                || key_then(doc, &MESSAGE_KEY, |b| b == b'{')))
}

/// Whether an OpenAI stream chunk carries content (see [`SseScanner::reached_content`]).
/// Invalid JSON is not content (the scanner reports it separately).
fn is_openai_content(data: &[u8]) -> bool {
    use std::borrow::Cow;
    #[derive(Deserialize)]
    struct Chunk<'a> {
        #[serde(default, borrow)]
        choices: Option<Vec<Choice<'a>>>,
    }
    #[derive(Deserialize)]
    struct Choice<'a> {
        #[serde(default, borrow)]
        delta: Option<Delta<'a>>,
        #[serde(default, borrow)]
        text: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct Delta<'a> {
        #[serde(default, borrow)]
        content: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        refusal: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        reasoning_content: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        reasoning: Option<Cow<'a, str>>,
        #[serde(default)]
        tool_calls: Option<Vec<IgnoredAny>>,
        #[serde(default)]
        function_call: Option<IgnoredAny>,
    }
    let non_empty = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|s| !s.is_empty());
    let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(data) else {
        return false;
    };
    chunk.choices.unwrap_or_default().iter().any(|c| {
        non_empty(&c.text)
            || c.delta.as_ref().is_some_and(|d| {
                non_empty(&d.content)
                    || non_empty(&d.refusal)
                    || non_empty(&d.reasoning_content)
                    || non_empty(&d.reasoning)
                    || d.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
                    || d.function_call.is_some()
            })
    })
}

/// `doc` is the `[DONE]` sentinel (whitespace around it allowed).
fn is_done(doc: &[u8]) -> bool {
    let start = doc.iter().position(|&b| !is_ws(b)).unwrap_or(doc.len());
    let end = doc
        .iter()
        .rposition(|&b| !is_ws(b))
        .map_or(start, |i| i + 1);
    doc.get(start..end) == Some(b"[DONE]")
}

// ---------------------------------------------------------------------------------------------
// Non-stream JSON
// ---------------------------------------------------------------------------------------------

/// The result of the one parse of a whole body.
#[derive(Debug, Clone, Copy)]
struct JsonVerdict {
    usage: Option<Usage>,
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
    verdict: OnceLock<JsonVerdict>,
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
        self.verdict.take();
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
    /// contained a recognised count (mapped as documented on [`Usage`]: a missing count is 0;
    /// several top-level `usage` members merge in order). `None` when the body has no such
    /// object (yet), it is `null` or not an object, has a count that is not a `u64`, a
    /// repeated count or `prompt_tokens_details`, or a `prompt_tokens_details` that is
    /// neither `null` nor an object with a valid `cached_tokens` (once), or the body's first
    /// value is not valid JSON up to its end.
    /// Garbage after a complete value does not hide its usage.
    pub fn usage(&self) -> Option<Usage> {
        self.verdict().usage
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
        self.verdict().complete
    }

    fn verdict(&self) -> JsonVerdict {
        *self.verdict.get_or_init(|| self.compute())
    }

    fn compute(&self) -> JsonVerdict {
        if self.is_invalid() {
            return JsonVerdict {
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
            return JsonVerdict {
                usage: tail_usage(self.buf.get(from..).unwrap_or_default()),
                complete,
            };
        }
        let (found, verdict) = analyse(&self.buf, false);
        JsonVerdict {
            usage: found.usage(),
            complete: verdict == Verdict::Valid,
        }
    }
}

/// The last top-level `"usage":{...}` member in `tail`, the end of a large body.
///
/// A candidate `"usage"` must not follow a backslash (then it is inside a string), and be a
/// key whose object value parses; it is top-level when the rest of the tail, after that
/// value, closes exactly one object: `{"u":0` followed by the rest is one JSON value.
fn tail_usage(tail: &[u8]) -> Option<Usage> {
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

// ---------------------------------------------------------------------------------------------
// SSE
// ---------------------------------------------------------------------------------------------

/// What [`SseScanner`] accumulates (apart from the decoder).
#[derive(Debug, Default)]
struct Observed {
    /// All usage counts and the `error` flag of the valid events so far.
    found: Found,
    events: u64,
    finished: bool,
    error_event: bool,
    /// The stream's first content event was seen (see [`SseScanner::reached_content`]).
    content: bool,
    err: Option<SseError>,
    /// The current event's first `data` line has been looked at.
    first_line_done: bool,
    /// The current event's data starts with a byte that can start JSON (or `[DONE]`).
    data_started: bool,
    /// Leading bytes of the current event's data already known to be whitespace.
    ws_checked: u32,
    /// The first data line alone was one valid JSON value: its length and findings (reused
    /// at dispatch when no more lines followed).
    first_parse: Option<(u32, Found)>,
}

impl Observed {
    /// The current event's data so far must start (after whitespace) like a JSON value or
    /// `[DONE]`: a payload that cannot is reported at its first byte.
    fn check_start(&mut self, data: &[u8]) -> Result<(), SseError> {
        if self.data_started {
            return Ok(());
        }
        let from = self.ws_checked as usize;
        let rest = data.get(from..).unwrap_or_default();
        match rest.iter().position(|&b| !is_ws(b)) {
            Some(i) => {
                if !rest.get(i).copied().is_some_and(starts_json) {
                    return Err(SseError::InvalidData);
                }
                self.data_started = true;
            }
            // Data is at most MAX_SSE_LINE (< u32::MAX) long.
            None => self.ws_checked = u32::try_from(data.len()).unwrap_or(u32::MAX),
        }
        Ok(())
    }

    fn on_frame(&mut self, frame: SseFrame<'_>) -> Result<(), SseError> {
        match frame {
            SseFrame::Data(data) => {
                self.check_start(data)?;
                if is_done(data) {
                    self.finished = true;
                    self.first_line_done = true;
                } else if !self.first_line_done {
                    // The usual event is one `data` line: parse it now, so a malformed one is
                    // reported at its line end, and keep the result for the dispatch.
                    self.first_line_done = true;
                    match analyse(data, true) {
                        (found, Verdict::Valid) => {
                            self.first_parse = u32::try_from(data.len()).ok().map(|n| (n, found));
                        }
                        (_, Verdict::Incomplete) => {}
                        (_, Verdict::Invalid) => return Err(SseError::InvalidData),
                    }
                }
            }
            SseFrame::EventType(name) => match name {
                b"message_stop" => self.finished = true,
                b"error" => self.error_event = true,
                b"content_block_delta" => self.content = true,
                _ => {}
            },
            SseFrame::Event(ev) => {
                let first = self.first_parse.take();
                self.first_line_done = false;
                self.data_started = false;
                self.ws_checked = 0;
                if ev.data.iter().all(|&b| is_ws(b)) {
                    // `data:` with nothing in it: valid framing, nothing to observe.
                } else if !is_done(ev.data) {
                    if !self.content && ev.event.is_empty() {
                        self.content = is_openai_content(ev.data);
                    }
                    let found = match first {
                        Some((n, found)) if n as usize == ev.data.len() => found,
                        _ => match analyse(ev.data, true) {
                            (found, Verdict::Valid) => found,
                            _ => return Err(SseError::InvalidData),
                        },
                    };
                    self.found.merge(found);
                }
                self.events += 1;
            }
        }
        Ok(())
    }
}

/// Incremental observer of a `text/event-stream` response body.
///
/// Contract:
/// * [`feed`](Self::feed) accepts the body in arbitrary chunks (a chunk may split a line, a
///   JSON token, a UTF-8 character or a `\r\n` pair). All results (including which error) are
///   identical however the body is split.
/// * Framing is [`SseDecoder`]'s: `\n`, `\r\n` and `\r` line ends,
///   one leading BOM ignored, comments, `data` / `event` / `id` / `retry` fields with an
///   optional space after the colon, `data` lines joined with `\n`, a blank line ends an
///   event. Any other line is [`SseError::Garbage`]; a line or event over [`MAX_SSE_LINE`]
///   is [`SseError::LineTooLong`].
/// * Every event's data must be `[DONE]` or one JSON value, else [`SseError::InvalidData`]:
///   at its first non-whitespace byte when that cannot start JSON, at the end of its first
///   `data` line when that line alone is already malformed, otherwise at the blank line.
/// * Each data payload is parsed once with `serde_json`; memory is the decoder's event buffer
///   (about the largest event) plus the 192-byte scanner itself. Never panics on any input.
#[derive(Debug, Default)]
pub struct SseScanner {
    dec: SseDecoder,
    obs: Observed,
}

impl SseScanner {
    /// A scanner positioned at the start of a stream. Does not allocate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Observe the next chunk.
    ///
    /// Returns `Err` once the stream is known to be broken (see [`SseError`]); the bytes after
    /// the offending one are not examined, and every later call returns the same error without
    /// looking at its chunk. `Ok` means "no problem detected so far" — a stream that simply
    /// stops early is detected with [`finished`](Self::finished), not here.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), SseError> {
        if let Some(e) = self.obs.err {
            return Err(e);
        }
        let r = self.feed_inner(chunk);
        if let Err(e) = r {
            self.obs.err = Some(e);
        }
        r
    }

    fn feed_inner(&mut self, chunk: &[u8]) -> Result<(), SseError> {
        let mut input = chunk;
        loop {
            match self.dec.next_frame(&mut input) {
                Ok(Some(frame)) => self.obs.on_frame(frame)?,
                Ok(None) => break,
                Err(e) => {
                    // A payload that went wrong earlier in the stream wins.
                    self.obs.check_start(self.dec.pending_data())?;
                    return Err(e);
                }
            }
        }
        self.obs.check_start(self.dec.pending_data())
    }

    /// Usage seen so far, merged field by field in stream order: OpenAI's final chunk
    /// (`"usage":{...}` with `prompt_tokens_details.cached_tokens`; `"usage":null` on other
    /// chunks is ignored), Anthropic's `message_start` (`message.usage`: input and cache
    /// counts) and `message_delta` (`usage`: output, possibly input and cache counts again).
    /// A later count replaces an earlier one of the same kind (an OpenAI `prompt_tokens`
    /// sets all three prompt counts, see [`Usage`]).
    /// Counts come from complete, valid events only (their blank line seen). `None` until a
    /// usage object with at least one recognised count has been seen; malformed usage objects
    /// (see [`JsonUsageScanner::usage`]) are skipped.
    pub fn usage(&self) -> Option<Usage> {
        self.obs.found.usage()
    }

    /// True once a `data: [DONE]` line (terminated by a line end) or an
    /// `event: message_stop` line was seen: the upstream completed the stream. Stays true.
    pub fn finished(&self) -> bool {
        self.obs.finished
    }

    /// True once a complete event's data was a JSON object with a non-null top-level `error`
    /// member (OpenAI `data: {"error":{...}}`, Anthropic `{"type":"error","error":{...}}`),
    /// or an `event: error` line was seen. Stays true.
    pub fn saw_error_event(&self) -> bool {
        self.obs.error_event || self.obs.found.flags & ERROR != 0
    }

    /// True once the stream reached its first content event — its commit point: an
    /// Anthropic `content_block_delta`, or an OpenAI chunk (an event without a name) whose
    /// choices carry non-empty `delta.content`, `delta.tool_calls`, `delta.function_call`,
    /// `delta.refusal`, `delta.reasoning_content` / `delta.reasoning`, or a non-empty legacy
    /// `text`. Role-only chunks, `message_start`, `ping` and `content_block_start` are
    /// preamble. Each event is classified only until the first content event. Stays true.
    pub fn reached_content(&self) -> bool {
        self.obs.content
    }

    /// Whether the bytes fed so far end inside an event (a line or a field block without
    /// its blank line): a stream that stops here was cut mid-event.
    pub fn is_mid_event(&self) -> bool {
        self.dec.is_mid_event()
    }

    /// Number of complete events observed: blocks with at least one `data` line whose
    /// terminating blank line has been seen (comment-only blocks do not count).
    pub fn events(&self) -> u64 {
        self.obs.events
    }
}

// ---------------------------------------------------------------------------------------------
// Error event
// ---------------------------------------------------------------------------------------------

#[derive(serde::Serialize)]
struct ErrorEvent<'a> {
    error: ErrorBody<'a>,
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<()>,
    code: &'a str,
}

/// The gateway's final error event of a cut Anthropic stream:
/// `event: error` + `data: {"type":"error","error":{"type":"api_error","message":..}}`.
pub fn anthropic_error_event(message: &str) -> Vec<u8> {
    let event = serde_json::json!({
        "type": "error",
        "error": {"type": "api_error", "message": message},
    });
    let mut out = b"event: error\ndata: ".to_vec();
    if serde_json::to_writer(&mut out, &event).is_err() {
        out.extend_from_slice(b"{\"type\":\"error\"}");
    }
    out.extend_from_slice(b"\n\n");
    out
}

/// The terminal SSE event the gateway sends when a stream breaks after its first byte:
///
/// `data: {"error":{"message":<message>,"type":<error_type>,"param":null,"code":<code>}}\n\n`
///
/// The JSON is written by `serde_json` (compact, so `\n` / `\r` in the arguments are escaped
/// and cannot split the line): the payload is always one valid JSON line. The output starts
/// with a `data:` line and ends with `\n\n`; if the client may be in the middle of an event,
/// the caller should send a `\n\n` first.
pub fn sse_error_event(message: &str, error_type: &str, code: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len() + error_type.len() + code.len());
    out.extend_from_slice(b"data: ");
    let event = ErrorEvent {
        error: ErrorBody {
            message,
            kind: error_type,
            param: None,
            code,
        },
    };
    // Serialising strings into a Vec cannot fail; keep the event well-formed regardless.
    if serde_json::to_writer(&mut out, &event).is_err() {
        out.truncate(6);
        out.extend_from_slice(
            b"{\"error\":{\"message\":\"\",\"type\":\"\",\"param\":null,\"code\":\"\"}}",
        );
    }
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- helpers ---------------------------------------------------------------------------

    /// Everything observable about an SSE scan.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        result: Result<(), SseError>,
        usage: Option<Usage>,
        finished: bool,
        error_event: bool,
        events: u64,
    }

    fn scan<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
        let mut s = SseScanner::new();
        let mut result = Ok(());
        for c in chunks {
            let r = s.feed(c);
            if result.is_err() {
                assert_eq!(r, result, "errors must be sticky");
            }
            result = r;
        }
        Outcome {
            result,
            usage: s.usage(),
            finished: s.finished(),
            error_event: s.saw_error_event(),
            events: s.events(),
        }
    }

    fn whole(body: &[u8]) -> Outcome {
        scan([body])
    }

    /// Small deterministic PRNG (no extra crates).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.below(xs.len() as u64) as usize]
        }
    }

    /// Split `body` into random chunks (sizes 0..=max).
    fn random_chunks<'a>(rng: &mut Lcg, body: &'a [u8], max: u64) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let k = (rng.below(max + 1) as usize).min(rest.len());
            out.push(&rest[..k]);
            rest = &rest[k..];
        }
        out
    }

    /// Feed `body` whole, split at every single point, one byte at a time and in random
    /// chunks; all outcomes must be identical. Returns the outcome.
    fn split_invariant(body: &[u8]) -> Outcome {
        let w = whole(body);
        for k in 0..=body.len() {
            assert_eq!(scan([&body[..k], &body[k..]]), w, "split at {k}");
        }
        assert_eq!(scan(body.chunks(1)), w, "byte at a time");
        let mut rng = Lcg(body.len() as u64);
        for _ in 0..20 {
            assert_eq!(scan(random_chunks(&mut rng, body, 17)), w, "random chunks");
        }
        w
    }

    fn json_usage<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Option<Usage> {
        let mut s = JsonUsageScanner::new();
        for c in chunks {
            s.feed(c);
        }
        s.usage()
    }

    fn json_split_invariant(body: &[u8]) -> Option<Usage> {
        let w = json_usage([body]);
        for k in 0..=body.len() {
            assert_eq!(json_usage([&body[..k], &body[k..]]), w, "split at {k}");
        }
        assert_eq!(json_usage(body.chunks(1)), w, "byte at a time");
        w
    }

    fn u(input_tokens: u64, output_tokens: u64) -> Option<Usage> {
        uc(input_tokens, output_tokens, 0, 0)
    }

    /// Usage with cache counts: input (uncached), output, cache read, cache write.
    fn uc(
        input_tokens: u64,
        output_tokens: u64,
        cache_read_tokens: u64,
        cache_write_tokens: u64,
    ) -> Option<Usage> {
        Some(Usage {
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
        })
    }

    fn with_endings(body: &str, eol: &str) -> Vec<u8> {
        body.replace('\n', eol).into_bytes()
    }

    // ----- sample streams --------------------------------------------------------------------

    const OPENAI: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"H\u{e9}llo \\\"q\\\" \\\\ \\u00e9 \u{1F600}\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
        "data: [DONE]\n\n",
    );

    const ANTHROPIC: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    /// Multi-line data, fields without a space, comments, id/retry, decoy keys.
    const MIXED: &str = concat!(
        "retry: 1000\n",
        ":comment without space\n",
        "id: 7\n",
        "event: chunk\n",
        "data:{\"choices\":[{\"usage\":{\"prompt_tokens\":999}}],\n",
        "data:  \"error\": null,\n",
        "id\n",
        "data: \"message\": {\"x\": {\"usage\": {\"input_tokens\": 777}}},\n",
        "data: \"usage\"\n",
        "data: :\n",
        "data: {\"prompt_tokens\": 3, \"completion_tokens\": 4}, \"n\": [1, -2.5e-3, 0, true, false, null]}\n",
        "\n",
        "event\n",
        "data: 42\n",
        "\n",
        "data:[DONE]\n",
        "\n",
    );

    // ----- SSE -------------------------------------------------------------------------------

    #[test]
    fn openai_stream_with_usage_and_done() {
        let o = split_invariant(OPENAI.as_bytes());
        assert_eq!(
            o,
            Outcome {
                result: Ok(()),
                usage: u(9, 12),
                finished: true,
                error_event: false,
                events: 5,
            }
        );
    }

    #[test]
    fn usage_null_never_overwrites() {
        let body = concat!(
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12}}\n\n",
            "data: {\"choices\":[],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\":{}}\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(split_invariant(body.as_bytes()).usage, u(9, 12));
        let early_null = "data: {\"usage\":null}\n\ndata: {\"choices\":[]}\n\n";
        let o = split_invariant(early_null.as_bytes());
        assert_eq!((o.usage, o.finished, o.events), (None, false, 2));
    }

    #[test]
    fn anthropic_stream() {
        let o = split_invariant(ANTHROPIC.as_bytes());
        assert_eq!(
            o,
            Outcome {
                result: Ok(()),
                usage: u(25, 15),
                finished: true,
                error_event: false,
                events: 7,
            }
        );
    }

    #[test]
    fn mixed_fields_multiline_data_and_decoys() {
        let o = split_invariant(MIXED.as_bytes());
        assert_eq!(
            o,
            Outcome {
                result: Ok(()),
                usage: u(3, 4),
                finished: true,
                error_event: false,
                events: 3,
            }
        );
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        for body in [OPENAI, ANTHROPIC, MIXED] {
            let lf = whole(body.as_bytes());
            assert_eq!(lf.result, Ok(()));
            for eol in ["\r\n", "\r"] {
                assert_eq!(split_invariant(&with_endings(body, eol)), lf, "eol {eol:?}");
            }
        }
        // Mixed terminators in one stream, and `\r` `\n` split across chunks.
        let mixed = b"data: {\"usage\":{\"input_tokens\":1}}\r\n\rdata: [DONE]\r\r\n";
        let o = split_invariant(mixed);
        assert_eq!(
            (o.result, o.usage, o.finished, o.events),
            (Ok(()), u(1, 0), true, 2)
        );
    }

    #[test]
    fn leading_bom_is_ignored_once() {
        let o = split_invariant("\u{feff}data: [DONE]\n\n".as_bytes());
        assert_eq!((o.result, o.finished, o.events), (Ok(()), true, 1));
        for bad in [
            "\u{feff}\u{feff}data: 1\n\n",
            "data: 1\n\n\u{feff}data: 1\n\n",
        ] {
            assert_eq!(
                split_invariant(bad.as_bytes()).result,
                Err(SseError::Garbage)
            );
        }
        assert_eq!(
            split_invariant(b"\xEF\xBBdata: 1\n\n").result,
            Err(SseError::Garbage)
        );
    }

    #[test]
    fn done_detection() {
        for body in [
            "data: [DONE]\n\n",
            "data:[DONE]\n\n",
            "data: [DONE]\n",
            "data:  [DONE]  \r\n",
        ] {
            let o = split_invariant(body.as_bytes());
            assert!(o.finished, "{body:?}");
            assert_eq!(o.result, Ok(()));
        }
        // Not terminated by a line end yet: not finished (but not broken either).
        assert!(!whole(b"data: [DONE]").finished);
        assert!(!whole(b"data: [DON").finished);
        for bad in [
            "data: [DONE]x\n",
            "data: [DONe]\n",
            "data: [ DONE]\n",
            "data: DONE\n",
        ] {
            let o = split_invariant(bad.as_bytes());
            assert_eq!(o.result, Err(SseError::InvalidData), "{bad:?}");
            assert!(!o.finished);
        }
        // A JSON array payload is still fine.
        assert_eq!(whole(b"data: [1, [2], {}]\n\n").result, Ok(()));
        // Anthropic end.
        assert!(whole(b"event: message_stop\n").finished);
        assert!(!whole(b"event: message_stopped\n").finished);
        assert!(!whole(b"event: message_sto\n").finished);
    }

    #[test]
    fn truncated_streams_are_not_finished() {
        for body in [OPENAI, ANTHROPIC] {
            let full = body.as_bytes();
            let cut = body
                .rfind("data: [DONE]")
                .or(body.rfind("event: message_stop"));
            let cut = cut.unwrap_or(0);
            for end in [cut, cut + 5, full.len() / 2, 0] {
                let o = whole(&full[..end]);
                assert_eq!(o.result, Ok(()));
                assert!(!o.finished, "cut at {end}");
            }
        }
        // Truncated right after the usage chunk: usage is still reported.
        let cut = OPENAI.find("data: [DONE]").unwrap_or(0);
        let o = whole(&OPENAI.as_bytes()[..cut]);
        assert_eq!((o.usage, o.finished), (u(9, 12), false));
    }

    #[test]
    fn garbage_lines() {
        for bad in [
            "<html><body>502 Bad Gateway</body></html>\n",
            "HTTP/1.1 200 OK\r\n",
            "{\"id\":1}\n",
            "dat: x\n",
            "datax: 1\n",
            "events: x\n",
            "date\n",
            " data: {}\n",
            "\u{0}\n",
        ] {
            let body = format!("data: {{\"a\":1}}\n\n{bad}data: [DONE]\n\n");
            let o = split_invariant(body.as_bytes());
            assert_eq!(o.result, Err(SseError::Garbage), "{bad:?}");
            assert_eq!(o.events, 1);
            assert!(!o.finished);
        }
        // Detected at the first offending byte, before any line end.
        let mut s = SseScanner::new();
        assert_eq!(s.feed(b"<"), Err(SseError::Garbage));
        assert_eq!(s.feed(b"data: [DONE]\n\n"), Err(SseError::Garbage));
        assert!(!s.finished());
    }

    #[test]
    fn invalid_data() {
        for bad in [
            "data: hello\n\n",
            "data: {\"a\":1,}\n\n",
            "data: {\"a\" 1}\n\n",
            "data: {\"a\":1}}\n\n",
            "data: {\"a\":[1}\n\n",
            "data: {\"a\":01}\n\n",
            "data: {\"a\":1.}\n\n",
            "data: {\"a\":tru}\n\n",
            "data: {\"a\":\"x\\q\"}\n\n",
            "data: {\"a\":\"\\u12g4\"}\n\n",
            "data: {\"a\":\"tab\there\"}\n\n",
            "data: {\"a\":\"split\ndata: string\"}\n\n",
            "data: {\"a\":1} {\"b\":2}\n\n",
            "data: {\"a\":\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":1}\n\n",
        ] {
            let o = split_invariant(bad.as_bytes());
            assert_eq!(o.result, Err(SseError::InvalidData), "{bad:?}");
            assert_eq!(o.events, 0, "{bad:?}");
        }
        // Valid scalars / arrays / multi-line payloads.
        for good in [
            "data: 1\n\n",
            "data: -0.5e+7\n\n",
            "data: \"s\"\n\n",
            "data: null\n\n",
            "data: {\ndata: }\n\n",
            "data: [\ndata: 1,\ndata: 2]\n\n",
            "data: 1\ndata:\n\n",
            // empty data is valid framing with nothing to observe (SPEC §12)
            "data: \n\n",
            "data\n\n",
            "data:  \t\n\n",
        ] {
            let o = split_invariant(good.as_bytes());
            assert_eq!((o.result, o.events), (Ok(()), 1), "{good:?}");
        }
        // Nesting is not limited (serde_json skips values without recursion); balance is.
        let deep = format!("data: {}{}\n\n", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(whole(deep.as_bytes()).result, Ok(()));
        let deep = format!("data: {{\"a\":{}{}}}\n\n", "[".repeat(200), "]".repeat(199));
        assert_eq!(whole(deep.as_bytes()).result, Err(SseError::InvalidData));
    }

    #[test]
    fn line_too_long() {
        let prefix = b"data: \"";
        // Line content exactly at the cap: fine.
        let mut body = prefix.to_vec();
        body.resize(MAX_SSE_LINE - 1, b'a');
        body.extend_from_slice(b"\"\n\ndata: [DONE]\n\n");
        assert_eq!(whole(&body).result, Ok(()));
        let mut s = SseScanner::new();
        for c in body.chunks(4096) {
            assert_eq!(s.feed(c), Ok(()));
        }
        assert!(s.finished());

        // One byte more: too long, whatever the chunking.
        let mut body = prefix.to_vec();
        body.resize(MAX_SSE_LINE, b'a');
        body.extend_from_slice(b"\"\n\n");
        assert_eq!(whole(&body).result, Err(SseError::LineTooLong));
        assert_eq!(scan(body.chunks(1000)).result, Err(SseError::LineTooLong));
        let k = MAX_SSE_LINE;
        assert_eq!(
            scan([&body[..k], &body[k..]]).result,
            Err(SseError::LineTooLong)
        );
        // Comments count too; an earlier invalid byte wins over the length.
        let mut c = vec![b':'; MAX_SSE_LINE + 10];
        c.push(b'\n');
        assert_eq!(whole(&c).result, Err(SseError::LineTooLong));
        let mut d = b"data: x".to_vec();
        d.resize(MAX_SSE_LINE + 10, b'a');
        assert_eq!(whole(&d).result, Err(SseError::InvalidData));
        assert_eq!(scan(d.chunks(7)).result, Err(SseError::InvalidData));
    }

    #[test]
    fn error_events() {
        let openai = "data: {\"id\":\"1\",\"choices\":[]}\n\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n";
        let o = split_invariant(openai.as_bytes());
        assert_eq!(
            (o.result, o.error_event, o.events, o.finished),
            (Ok(()), true, 2, false)
        );

        let anthropic = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        assert!(split_invariant(anthropic.as_bytes()).error_event);
        assert!(whole(b"event: error\n\n").error_event);
        assert!(whole(b"data: {\"error\":\"boom\"}\n\n").error_event);

        for benign in [
            "data: {\"error\":null}\n\n",
            "data: {\"choices\":[{\"error\":{\"message\":\"x\"}}]}\n\n",
            "data: {\"x\":{\"error\":{}}}\n\n",
            "data: {\"errors\":{}}\n\n",
            "data: {\"err\":{}}\n\n",
            "data: \"error\"\n\n",
            "data: [\"error\", {\"error\": 1}]\n\n",
            "event: errors\n\n",
        ] {
            let o = split_invariant(benign.as_bytes());
            assert!(!o.error_event, "{benign:?}");
            assert_eq!(o.result, Ok(()), "{benign:?}");
        }
    }

    #[test]
    fn usage_edge_cases() {
        // A large usage object is parsed like any other (no capture cap any more); a later
        // one replaces its counts.
        let big = format!(
            "data: {{\"usage\":{{\"prompt_tokens\":1,\"pad\":\"{}\"}}}}\n\n",
            "x".repeat(USAGE_CAPTURE_CAP)
        );
        assert_eq!(whole(big.as_bytes()).usage, u(1, 0));
        let big2 = format!("{big}data: {{\"usage\":{{\"prompt_tokens\":2}}}}\n\n");
        assert_eq!(whole(big2.as_bytes()).usage, u(2, 0));
        // A repeated count spoils the object; a bad one spoils it even when valid ones follow.
        assert_eq!(
            whole(b"data: {\"usage\":{\"prompt_tokens\":1,\"prompt_tokens\":2}}\n\n").usage,
            None
        );
        assert_eq!(
            whole(b"data: {\"usage\":{\"prompt_tokens\":\"1\",\"completion_tokens\":2}}\n\n").usage,
            None
        );
        assert_eq!(
            whole(b"data: {\"usage\":{\"prompt_tokens\":null,\"completion_tokens\":2}}\n\n").usage,
            u(0, 2)
        );
        // Non-integer counts are ignored.
        assert_eq!(
            whole(b"data: {\"usage\":{\"prompt_tokens\":1.5}}\n\n").usage,
            None
        );
        assert_eq!(
            whole(b"data: {\"usage\":{\"prompt_tokens\":-1}}\n\n").usage,
            None
        );
        // Both spellings: input_tokens/output_tokens win.
        let both = b"data: {\"usage\":{\"prompt_tokens\":1,\"input_tokens\":2,\"completion_tokens\":3,\"output_tokens\":4}}\n\n";
        assert_eq!(whole(both).usage, u(2, 4));
        // Escaped key is not recognised (documented: the prefilter matches raw bytes).
        assert_eq!(
            whole(b"data: {\"us\\u0061ge\":{\"prompt_tokens\":1}}\n\n").usage,
            None
        );
        // Escapes inside a recognised usage object are fine (serde_json parses it).
        assert_eq!(
            whole(b"data: {\"usage\":{\"prompt\\u005ftokens\":1}}\n\n").usage,
            u(1, 0)
        );
        // Counts come from valid events only: a payload that breaks later contributes none.
        let o = whole(b"data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}, oops\n\n");
        assert_eq!((o.result, o.usage), (Err(SseError::InvalidData), None));
        // ... nor does one whose blank line has not arrived yet.
        let o = split_invariant(b"data: {\"usage\":{\"prompt_tokens\":5}}\n");
        assert_eq!((o.result, o.usage, o.events), (Ok(()), None, 0));
        // `message.usage` only applies while inside the top-level `message` object.
        let sibling =
            b"data: {\"message\":{\"id\":1},\"other\":{\"usage\":{\"input_tokens\":9}}}\n\n";
        assert_eq!(split_invariant(sibling).usage, None);
        let deeper = b"data: {\"message\":{\"x\":{\"usage\":{\"input_tokens\":9}}}}\n\n";
        assert_eq!(split_invariant(deeper).usage, None);
        // OpenAI Responses-style nested `response.usage` is not top-level: ignored.
        assert_eq!(
            whole(b"data: {\"response\":{\"usage\":{\"input_tokens\":1}}}\n\n").usage,
            None
        );
    }

    /// OpenAI stream whose final usage chunk reports cached prompt tokens.
    const OPENAI_CACHED: &str = concat!(
        "data: {\"id\":\"chatcmpl-2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-2\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-2\",\"choices\":[],\"usage\":{\"prompt_tokens\":2006,\"completion_tokens\":300,\"total_tokens\":2306,\"prompt_tokens_details\":{\"cached_tokens\":1920,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
        "data: [DONE]\n\n",
    );

    /// Anthropic stream with cache counts in `message_start` and (cumulative, as the current
    /// API sends them) again in `message_delta`.
    const ANTHROPIC_CACHED: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet\",\"stop_reason\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":2048,\"cache_read_input_tokens\":1024,\"cache_creation\":{\"ephemeral_5m_input_tokens\":2048,\"ephemeral_1h_input_tokens\":0},\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":2048,\"cache_read_input_tokens\":1024,\"output_tokens\":42}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    #[test]
    fn openai_stream_cached_tokens() {
        let o = split_invariant(OPENAI_CACHED.as_bytes());
        assert_eq!(
            o,
            Outcome {
                result: Ok(()),
                usage: uc(86, 300, 1920, 0),
                finished: true,
                error_event: false,
                events: 4,
            }
        );
        for eol in ["\r\n", "\r"] {
            assert_eq!(split_invariant(&with_endings(OPENAI_CACHED, eol)), o);
        }
    }

    #[test]
    fn anthropic_stream_cache_counts() {
        let o = split_invariant(ANTHROPIC_CACHED.as_bytes());
        assert_eq!(
            o,
            Outcome {
                result: Ok(()),
                usage: uc(12, 42, 1024, 2048),
                finished: true,
                error_event: false,
                events: 4,
            }
        );
        for eol in ["\r\n", "\r"] {
            assert_eq!(split_invariant(&with_endings(ANTHROPIC_CACHED, eol)), o);
        }
        // Cache counts only in `message_start`, output only in `message_delta`: merged.
        let body = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":500,\"output_tokens\":1}}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n",
        );
        assert_eq!(split_invariant(body.as_bytes()).usage, uc(3, 7, 500, 0));
        // A later cache count replaces an earlier one; a count without input is kept.
        let body = concat!(
            "data: {\"message\":{\"usage\":{\"input_tokens\":3,\"cache_read_input_tokens\":500}}}\n\n",
            "data: {\"usage\":{\"cache_read_input_tokens\":600,\"cache_creation_input_tokens\":9}}\n\n",
        );
        assert_eq!(split_invariant(body.as_bytes()).usage, uc(3, 0, 600, 9));
    }

    #[test]
    fn cache_count_edge_cases() {
        let sse = |usage: &str| {
            let body = format!("data: {{\"choices\":[],\"usage\":{usage}}}\n\n");
            let o = split_invariant(body.as_bytes());
            assert_eq!(o.result, Ok(()), "{usage}");
            // The same object as a non-stream body agrees.
            let json = format!("{{\"usage\":{usage}}}");
            assert_eq!(json_split_invariant(json.as_bytes()), o.usage, "{usage}");
            o.usage
        };
        // OpenAI: cached tokens come out of the prompt count (saturating).
        let details = |d: &str| {
            format!(
                "{{\"prompt_tokens\":10,\"completion_tokens\":2,\"prompt_tokens_details\":{d}}}"
            )
        };
        assert_eq!(sse(&details("{\"cached_tokens\":4}")), uc(6, 2, 4, 0));
        assert_eq!(sse(&details("{\"cached_tokens\":10}")), uc(0, 2, 10, 0));
        assert_eq!(sse(&details("{\"cached_tokens\":11}")), uc(0, 2, 11, 0));
        assert_eq!(sse(&details("{\"audio_tokens\":3}")), uc(10, 2, 0, 0));
        assert_eq!(sse(&details("{\"cached_tokens\":null}")), uc(10, 2, 0, 0));
        assert_eq!(sse(&details("null")), uc(10, 2, 0, 0));
        assert_eq!(sse(&details("{}")), uc(10, 2, 0, 0));
        // Details before the prompt count, nested decoys, escapes in the key.
        assert_eq!(
            sse("{\"prompt_tokens_details\":{\"x\":{\"cached_tokens\":9},\"cached\\u005ftokens\":3},\"prompt_tokens\":5}"),
            uc(2, 0, 3, 0)
        );
        // `cached_tokens` outside `prompt_tokens_details` means nothing.
        assert_eq!(
            sse("{\"prompt_tokens\":5,\"cached_tokens\":3}"),
            uc(5, 0, 0, 0)
        );
        // Malformed details spoil the whole usage object, like a malformed count.
        for bad in [
            "{\"cached_tokens\":\"4\"}",
            "{\"cached_tokens\":-1}",
            "{\"cached_tokens\":1.5}",
            "{\"cached_tokens\":1,\"cached_tokens\":1}",
            "[4]",
            "4",
            "\"x\"",
            "true",
        ] {
            assert_eq!(sse(&details(bad)), None, "{bad}");
        }
        assert_eq!(
            sse("{\"prompt_tokens\":5,\"prompt_tokens_details\":null,\"prompt_tokens_details\":null}"),
            None
        );
        assert_eq!(
            sse("{\"cache_read_input_tokens\":1,\"cache_read_input_tokens\":2}"),
            None
        );
        assert_eq!(sse("{\"cache_creation_input_tokens\":\"1\"}"), None);
        // Cached tokens without a prompt count are ignored.
        assert_eq!(
            sse("{\"prompt_tokens_details\":{\"cached_tokens\":3}}"),
            None
        );
        assert_eq!(
            sse("{\"completion_tokens\":1,\"prompt_tokens_details\":{\"cached_tokens\":3}}"),
            uc(0, 1, 0, 0)
        );
        // `input_tokens` wins: Anthropic mapping, details ignored.
        assert_eq!(
            sse("{\"prompt_tokens\":100,\"input_tokens\":7,\"cache_read_input_tokens\":90,\"cache_creation_input_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":90}}"),
            uc(7, 0, 90, 3)
        );
        // OpenAI spelling: Anthropic cache members would count the prompt twice; ignored.
        assert_eq!(
            sse("{\"prompt_tokens\":100,\"cache_read_input_tokens\":90,\"cache_creation_input_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":90}}"),
            uc(10, 0, 90, 0)
        );
        // Cache counts alone are usage; null counts are absent.
        assert_eq!(sse("{\"cache_read_input_tokens\":5}"), uc(0, 0, 5, 0));
        assert_eq!(sse("{\"cache_creation_input_tokens\":5}"), uc(0, 0, 0, 5));
        assert_eq!(sse("{\"cache_read_input_tokens\":null}"), None);
        assert_eq!(
            sse("{\"input_tokens\":1,\"cache_read_input_tokens\":null,\"cache_creation_input_tokens\":0}"),
            uc(1, 0, 0, 0)
        );

        // An OpenAI prompt count sets the whole prompt partition, so a later one without
        // details does not leave a stale cache count behind.
        let body = concat!(
            "data: {\"usage\":{\"prompt_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
            "data: {\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\n",
        );
        assert_eq!(split_invariant(body.as_bytes()).usage, uc(12, 3, 0, 0));
        let body = concat!(
            "data: {\"usage\":{\"input_tokens\":1,\"cache_creation_input_tokens\":50}}\n\n",
            "data: {\"usage\":{\"prompt_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
        );
        assert_eq!(split_invariant(body.as_bytes()).usage, uc(6, 0, 4, 0));
        // ... while a later output-only count keeps the earlier prompt counts.
        let body = concat!(
            "data: {\"usage\":{\"prompt_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
            "data: {\"usage\":{\"completion_tokens\":3}}\n\n",
        );
        assert_eq!(split_invariant(body.as_bytes()).usage, uc(6, 3, 4, 0));
        // A spoiled object contributes nothing.
        let body = concat!(
            "data: {\"usage\":{\"prompt_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
            "data: {\"usage\":{\"prompt_tokens\":99,\"prompt_tokens_details\":7}}\n\n",
        );
        assert_eq!(split_invariant(body.as_bytes()).usage, uc(6, 0, 4, 0));
    }

    #[test]
    fn scanner_is_small() {
        // 160 before the cache counts: they add 16 bytes to the committed findings and 16 to
        // those of a pending first data line.
        assert!(std::mem::size_of::<SseScanner>() <= 192);
        assert!(std::mem::size_of::<JsonUsageScanner>() <= 128);
    }

    // ----- JSON ------------------------------------------------------------------------------

    #[test]
    fn json_openai_chat() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello \"there\"\n","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp_1"}"#;
        assert_eq!(json_split_invariant(body), u(9, 12));
        let pretty = serde_json::to_vec_pretty(
            &serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(json_split_invariant(&pretty), u(9, 12));
    }

    #[test]
    fn json_embeddings_and_anthropic() {
        let emb = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,1e-7]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
        assert_eq!(json_split_invariant(emb), u(8, 0));
        let msg = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet","content":[{"type":"text","text":"Hi!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":25}}"#;
        assert_eq!(json_split_invariant(msg), u(10, 25));
    }

    #[test]
    fn json_cache_counts() {
        let openai = br#"{"id":"chatcmpl-3","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;
        assert_eq!(json_split_invariant(openai), uc(86, 300, 1920, 0));
        let pretty = serde_json::to_vec_pretty(
            &serde_json::from_slice::<serde_json::Value>(openai).unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(json_split_invariant(&pretty), uc(86, 300, 1920, 0));
        let anthropic = br#"{"id":"msg_2","type":"message","role":"assistant","model":"claude-sonnet","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":12,"cache_creation_input_tokens":2048,"cache_read_input_tokens":1024,"cache_creation":{"ephemeral_5m_input_tokens":2048,"ephemeral_1h_input_tokens":0},"output_tokens":42,"service_tier":"standard"}}"#;
        assert_eq!(json_split_invariant(anthropic), uc(12, 42, 1024, 2048));
        // Only the top-level usage counts, cache members included.
        let nested = br#"{"choices":[{"usage":{"cache_read_input_tokens":99}}],"usage":{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":1}}}"#;
        assert_eq!(json_split_invariant(nested), uc(2, 0, 1, 0));
        // Over the cap the usage is found in the tail the same way.
        let tail = r#","usage":{"prompt_tokens":8,"prompt_tokens_details":{"cached_tokens":5}}}"#;
        let body = big_body(tail);
        for size in [1000, 4096, JSON_BODY_CAP + 1] {
            assert_eq!(
                json_verdict(body.chunks(size)),
                (uc(3, 0, 5, 0), false, true)
            );
        }
        let tail = r#","usage":{"input_tokens":8,"cache_read_input_tokens":5,"cache_creation_input_tokens":6}}"#;
        assert_eq!(
            json_verdict([&big_body(tail)[..]]),
            (uc(8, 0, 5, 6), false, true)
        );
    }

    #[test]
    fn json_nested_usage_ignored_and_missing() {
        let nested = br#"{"choices":[{"usage":{"prompt_tokens":99,"completion_tokens":99}}],"meta":{"usage":{"input_tokens":5}},"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        assert_eq!(json_split_invariant(nested), u(1, 2));
        let only_nested = br#"{"choices":[{"usage":{"prompt_tokens":99}}],"x":"\"usage\":{\"prompt_tokens\":7}"}"#;
        assert_eq!(json_split_invariant(only_nested), None);
        assert_eq!(json_split_invariant(br#"{"id":"x","choices":[]}"#), None);
        assert_eq!(json_split_invariant(br#"{"usage":null}"#), None);
        assert_eq!(
            json_split_invariant(br#"[{"usage":{"prompt_tokens":1}}]"#),
            None
        );
        assert_eq!(json_split_invariant(b""), None);
        // Error bodies have no usage; `message` / `error` are not special in JSON mode.
        let err = br#"{"error":{"message":"bad","usage":{"prompt_tokens":1}},"message":{"usage":{"input_tokens":3}}}"#;
        assert_eq!(json_split_invariant(err), None);
        // Garbage after the value, or before usage: stops scanning.
        assert_eq!(
            json_split_invariant(br#"{"usage":{"prompt_tokens":4}} trailing"#),
            u(4, 0)
        );
        assert_eq!(
            json_split_invariant(br#"{"a":x,"usage":{"prompt_tokens":4}}"#),
            None
        );
    }

    /// A body over JSON_BODY_CAP: `{"object":"list","data":[...big...]<tail>`.
    fn big_body(tail: &str) -> Vec<u8> {
        let mut b = b"{\"object\":\"list\",\"data\":[".to_vec();
        while b.len() < JSON_BODY_CAP + 10_000 {
            b.extend_from_slice(b"{\"embedding\":[0.0023064255,-0.009327292,1e-7],\"usage\":{\"prompt_tokens\":5}},");
        }
        b.extend_from_slice(b"{}]");
        b.extend_from_slice(tail.as_bytes());
        b
    }

    fn json_verdict<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Option<Usage>, bool, bool) {
        let mut s = JsonUsageScanner::new();
        for c in chunks {
            s.feed(c);
        }
        (s.usage(), s.is_invalid(), s.is_complete())
    }

    #[test]
    fn json_over_the_cap() {
        let cases: [(&str, Option<Usage>, bool); 8] = [
            // Embeddings: usage is last.
            (
                r#","model":"m","usage":{"prompt_tokens":8,"total_tokens":8}}"#,
                u(8, 0),
                true,
            ),
            // Chat: a few members after it; whitespace around.
            (
                " ,\"usage\" : {\"prompt_tokens\":1,\"completion_tokens\":2} ,\"x\":[1,{}]}\n ",
                u(1, 2),
                true,
            ),
            // Nested: not top-level.
            (r#","meta":{"usage":{"prompt_tokens":8}}}"#, None, true),
            (r#","meta":[{"usage":{"prompt_tokens":8}}]}"#, None, true),
            // Inside a string, and a key that merely ends with "usage".
            (r#","s":"\"usage\":{\"prompt_tokens\":8}"}"#, None, true),
            (r#","my \"usage":{"prompt_tokens":8}}"#, None, true),
            // Truncated inside the usage object: incomplete. Cut right after a `}`: over the
            // cap that is not noticed (documented), but the usage is not trusted either.
            (r#","usage":{"prompt_tokens":8,"#, None, false),
            (r#","usage":{"prompt_tokens":8}"#, None, true),
        ];
        for (tail, usage, complete) in cases {
            let body = big_body(tail);
            let whole = json_verdict([&body[..]]);
            assert_eq!(whole, (usage, false, complete), "{tail}");
            for size in [1000, 4096, 4097, 65536, JSON_BODY_CAP + 1] {
                assert_eq!(
                    json_verdict(body.chunks(size)),
                    whole,
                    "{tail} chunks of {size}"
                );
            }
            let k = body.len() - tail.len() / 2;
            assert_eq!(json_verdict([&body[..k], &body[k..]]), whole, "{tail}");
        }
        // The usage must lie in the last USAGE_CAPTURE_CAP bytes.
        let pad = format!(",\"pad\":\"{}\"}}", "p".repeat(USAGE_CAPTURE_CAP));
        let body = big_body(&format!(",\"usage\":{{\"prompt_tokens\":8}}{pad}"));
        assert_eq!(json_verdict(body.chunks(3000)), (None, false, true));
        // Not JSON at all is still caught by its first byte; an array closes with `]`.
        let mut html = b"<html>".to_vec();
        html.resize(JSON_BODY_CAP + 5, b'x');
        assert_eq!(json_verdict([&html[..]]), (None, true, false));
        let mut arr = b"[".to_vec();
        while arr.len() < JSON_BODY_CAP + 5 {
            arr.extend_from_slice(b"1,");
        }
        arr.extend_from_slice(b"1]  ");
        assert_eq!(json_verdict(arr.chunks(7000)), (None, false, true));
        assert_eq!(json_verdict([&arr[..arr.len() - 3]]), (None, false, false));
        // Memory stays bounded once over the cap.
        let mut s = JsonUsageScanner::new();
        for c in body.chunks(100) {
            s.feed(c);
        }
        assert!(
            s.buf.capacity() <= 2 * USAGE_CAPTURE_CAP + 100,
            "{}",
            s.buf.capacity()
        );
    }

    // ----- sse_error_event -------------------------------------------------------------------

    #[test]
    fn error_event_is_valid_sse_json() {
        let msg = "upstream said \"no\"\nline2\r\\ \t\u{1}\u{1f} é 😀";
        let ev = sse_error_event(msg, "upstream_error", "stream_broken");
        assert!(ev.starts_with(b"data: "));
        assert!(ev.ends_with(b"}\n\n"));
        let line = &ev[6..ev.len() - 2];
        assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
        let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
        assert_eq!(v["error"]["message"], msg);
        assert_eq!(v["error"]["type"], "upstream_error");
        assert_eq!(v["error"]["code"], "stream_broken");
        assert!(v["error"]["param"].is_null());
        // And our own scanner accepts it as a complete error event.
        let o = split_invariant(&ev);
        assert_eq!((o.result, o.error_event, o.events), (Ok(()), true, 1));
        assert_eq!(
            sse_error_event("", "t", "c"),
            b"data: {\"error\":{\"message\":\"\",\"type\":\"t\",\"param\":null,\"code\":\"c\"}}\n\n"
        );
    }

    // ----- differential / fuzz ---------------------------------------------------------------

    /// Random valid JSON (ASCII, bounded depth), built without recursion.
    fn gen_json(rng: &mut Lcg, out: &mut Vec<u8>) {
        const KEYS: [&str; 9] = [
            "usage",
            "error",
            "message",
            "a",
            "usag",
            "usages",
            "type",
            "",
            "prompt_tokens",
        ];
        const SCALARS: [&str; 14] = [
            "0",
            "-0",
            "12",
            "-3.25",
            "1e5",
            "2E-3",
            "0.5e+2",
            "18446744073709551615",
            "true",
            "false",
            "null",
            "\"\"",
            "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00aF\"",
            "\"usage\"",
        ];
        const WS: [&str; 5] = ["", "", " ", "\t", "\n"];
        // (is_object, remaining members, first member, keys used so far)
        let mut stack: Vec<(bool, u64, bool, u16)> = Vec::new();
        let mut need_value = true;
        loop {
            if need_value {
                out.extend_from_slice(rng.pick(&WS).as_bytes());
                let kinds = if stack.len() < 6 { 9 } else { 5 };
                match rng.below(kinds) {
                    0..=4 => out.extend_from_slice(rng.pick(&SCALARS).as_bytes()),
                    5 | 6 => {
                        out.push(b'{');
                        stack.push((true, rng.below(5), true, 0));
                    }
                    _ => {
                        out.push(b'[');
                        stack.push((false, rng.below(5), true, 0));
                    }
                }
                out.extend_from_slice(rng.pick(&WS).as_bytes());
                need_value = false;
            }
            let Some(top) = stack.last_mut() else { break };
            if top.1 == 0 {
                out.push(if top.0 { b'}' } else { b']' });
                stack.pop();
                continue;
            }
            if !top.2 {
                out.push(b',');
            }
            top.2 = false;
            top.1 -= 1;
            if top.0 {
                out.extend_from_slice(rng.pick(&WS).as_bytes());
                // Unique keys per object (duplicate-key semantics differ between serde_json's
                // `Value` and struct deserialisation, which would confuse the oracle).
                let mut k = rng.below(KEYS.len() as u64) as usize;
                while top.3 & (1 << k) != 0 {
                    k = (k + 1) % KEYS.len();
                }
                top.3 |= 1 << k;
                out.push(b'"');
                out.extend_from_slice(KEYS[k].as_bytes());
                out.push(b'"');
                out.extend_from_slice(rng.pick(&WS).as_bytes());
                out.push(b':');
            }
            need_value = true;
        }
    }

    fn mutate(rng: &mut Lcg, v: &mut Vec<u8>) {
        const ALPHA: &[u8] = b"{}[]\":,0123456789-+.eEtrufalsn \\/bx\t\n";
        for _ in 0..rng.below(3) + 1 {
            let at = rng.below(v.len() as u64 + 1) as usize;
            let c = *rng.pick(ALPHA);
            match rng.below(3) {
                0 if at < v.len() => {
                    v.remove(at);
                }
                1 if at < v.len() => v[at] = c,
                _ => v.insert(at, c),
            }
        }
    }

    /// The oracle for usage objects: serde's derived deserializer.
    #[derive(serde::Deserialize)]
    struct RawUsage {
        #[serde(default)]
        prompt_tokens: Option<u64>,
        #[serde(default)]
        completion_tokens: Option<u64>,
        #[serde(default)]
        input_tokens: Option<u64>,
        #[serde(default)]
        output_tokens: Option<u64>,
        #[serde(default)]
        cache_read_input_tokens: Option<u64>,
        #[serde(default)]
        cache_creation_input_tokens: Option<u64>,
    }

    /// The oracle's reading of a usage object (see [`Usage`]); `None` when malformed or
    /// without a recognised count.
    fn oracle_usage(x: &serde_json::Value) -> Option<Usage> {
        let raw: RawUsage = serde_json::from_value(x.clone()).ok()?;
        let cached = match x.get("prompt_tokens_details") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Object(d)) => match d.get("cached_tokens") {
                None | Some(serde_json::Value::Null) => None,
                Some(n) => Some(n.as_u64()?),
            },
            Some(_) => return None,
        };
        let output = raw.output_tokens.or(raw.completion_tokens);
        let (input, cache_read, cache_write) = match (raw.input_tokens, raw.prompt_tokens) {
            (None, Some(p)) => {
                let c = cached.unwrap_or(0);
                (Some(p.saturating_sub(c)), Some(c), Some(0))
            }
            (i, _) => (
                i,
                raw.cache_read_input_tokens,
                raw.cache_creation_input_tokens,
            ),
        };
        [input, output, cache_read, cache_write]
            .iter()
            .any(Option::is_some)
            .then(|| Usage {
                input_tokens: input.unwrap_or(0),
                output_tokens: output.unwrap_or(0),
                cache_read_tokens: cache_read.unwrap_or(0),
                cache_write_tokens: cache_write.unwrap_or(0),
            })
    }

    fn serde_valid(payload: &[u8]) -> Option<bool> {
        match serde_json::from_slice::<serde::de::IgnoredAny>(payload) {
            Ok(_) => Some(true),
            // Numbers out of f64 range are a serde_json limit, not a syntax question.
            Err(e) if e.to_string().contains("out of range") => None,
            Err(_) => Some(false),
        }
    }

    /// The scanners and serde_json agree on validity, as a JSON body and through SSE framing.
    #[test]
    fn validity_matches_serde_json() {
        let mut rng = Lcg(0x5eed);
        let (mut valid, mut invalid) = (0, 0);
        for iter in 0..6000 {
            let mut p = Vec::new();
            gen_json(&mut rng, &mut p);
            if iter % 2 == 1 {
                mutate(&mut rng, &mut p);
            }
            let Some(expect) = serde_valid(&p) else {
                continue;
            };
            if expect {
                valid += 1;
            } else {
                invalid += 1;
            }
            // As a non-stream body.
            let mut j = JsonUsageScanner::new();
            for c in random_chunks(&mut rng, &p, 9) {
                j.feed(c);
            }
            assert_eq!(
                !j.is_invalid() && j.is_complete(),
                expect,
                "payload {:?}",
                String::from_utf8_lossy(&p)
            );
            if j.is_invalid() {
                assert!(!expect);
            }
            // Through SSE framing: each newline in the payload becomes a new data line.
            let mut body = b"data: ".to_vec();
            for &b in &p {
                if b == b'\n' || b == b'\r' {
                    body.extend_from_slice(b"\ndata: ");
                } else {
                    body.push(b);
                }
            }
            body.extend_from_slice(b"\n\n");
            let o = scan(random_chunks(&mut rng, &body, 13));
            // A payload of only whitespace is an empty event: valid framing.
            let blank = p.iter().all(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
            let expect_result = if expect || blank {
                Ok(())
            } else {
                Err(SseError::InvalidData)
            };
            assert_eq!(
                o.result,
                expect_result,
                "{:?}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(o, whole(&body));
        }
        assert!(valid > 2000 && invalid > 1000, "{valid} {invalid}");
    }

    /// The scanner's verdict on a whole body: not JSON, truncated, or one complete value.
    #[test]
    fn json_scanner_validity() {
        let verdict = |chunks: &[&[u8]]| {
            let mut s = JsonUsageScanner::new();
            for c in chunks {
                s.feed(c);
            }
            (s.is_invalid(), s.is_complete())
        };
        let body: &[u8] = b" \r\n{\"id\":\"x\",\"usage\":{\"prompt_tokens\":1}}\n";
        for k in 0..=body.len() {
            assert_eq!(
                verdict(&[&body[..k], &body[k..]]),
                (false, true),
                "split at {k}"
            );
        }
        assert_eq!(verdict(&[b"\x00\x01NOT JSON{{{"]), (true, false));
        assert_eq!(verdict(&[b"<html>502 Bad Gateway</html>"]), (true, false));
        assert_eq!(verdict(&[b"{\"id\":\"x\",\"choi"]), (false, false));
        assert_eq!(verdict(&[]), (false, false));
        // Garbage after the value: not one JSON value (the old tokenizer stopped looking once
        // a value was complete in an earlier chunk; the verdict no longer depends on chunks).
        assert_eq!(
            verdict(&[b"[1,2]", b"ignored after the value"]),
            (false, false)
        );
        assert_eq!(verdict(&[b"[1,2]ignored"]), (false, false));
        assert_eq!(verdict(&[b"[1,2", b"]", b" \n"]), (false, true));
        assert_eq!(verdict(&[b"{\"a\":x}"]), (false, false));
    }

    /// Top-level `usage` extraction agrees with serde_json::Value for random documents.
    #[test]
    fn json_usage_matches_serde_json() {
        let mut rng = Lcg(42);
        let mut found = 0;
        for _ in 0..3000 {
            let mut doc = b"{".to_vec();
            let keys = ["a", "choices", "usage", "b"];
            let mut first = true;
            for k in keys {
                if rng.below(4) == 0 {
                    continue;
                }
                if !first {
                    doc.push(b',');
                }
                first = false;
                doc.extend_from_slice(format!("\"{k}\":").as_bytes());
                if k == "usage" && rng.below(4) != 0 {
                    let mut parts = Vec::new();
                    for f in [
                        "prompt_tokens",
                        "completion_tokens",
                        "input_tokens",
                        "x",
                        "cache_read_input_tokens",
                        "cache_creation_input_tokens",
                    ] {
                        if rng.below(2) == 0 {
                            parts.push(format!("\"{f}\":{}", rng.below(100_000)));
                        }
                    }
                    if rng.below(2) == 0 {
                        let details = match rng.below(6) {
                            0 => "null".to_owned(),
                            1 => {
                                let mut v = Vec::new();
                                gen_json(&mut rng, &mut v);
                                String::from_utf8_lossy(&v).into_owned()
                            }
                            2 => "{\"audio_tokens\":1}".to_owned(),
                            3 => "{\"cached_tokens\":null}".to_owned(),
                            _ => format!(
                                "{{\"audio_tokens\":0,\"cached_tokens\":{}}}",
                                rng.below(150_000)
                            ),
                        };
                        parts.push(format!("\"prompt_tokens_details\":{details}"));
                    }
                    if rng.below(3) == 0 {
                        let mut nested = Vec::new();
                        gen_json(&mut rng, &mut nested);
                        parts.push(format!("\"details\":{}", String::from_utf8_lossy(&nested)));
                    }
                    doc.extend_from_slice(format!("{{{}}}", parts.join(",")).as_bytes());
                } else {
                    gen_json(&mut rng, &mut doc);
                }
            }
            doc.push(b'}');
            let v: serde_json::Value = match serde_json::from_slice(&doc) {
                Ok(v) => v,
                Err(_) => continue,
            };
            let expect = v
                .get("usage")
                .filter(|x| x.is_object())
                .and_then(oracle_usage);
            if expect.is_some() {
                found += 1;
            }
            assert_eq!(
                json_usage(random_chunks(&mut rng, &doc, 11)),
                expect,
                "{}",
                String::from_utf8_lossy(&doc)
            );
        }
        assert!(found > 500, "{found}");
    }

    /// Random bytes and random SSE-ish token soup: never panics, split-invariant.
    #[test]
    fn fuzz_never_panics() {
        const TOKENS: [&str; 24] = [
            "data: ",
            "data:",
            "event: ",
            "message_stop",
            "error",
            "\n",
            "\r",
            "\r\n",
            "\n\n",
            ": x",
            "{",
            "}",
            "[",
            "]",
            "\"usage\":",
            "\"message\":",
            "\"error\":",
            "{\"prompt_tokens\":3}",
            "{\"prompt_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":2}}",
            "{\"input_tokens\":1,\"cache_read_input_tokens\":2,\"cache_creation_input_tokens\":3}",
            "[DONE]",
            "1",
            ",",
            "\"s\"",
        ];
        let mut rng = Lcg(7);
        for iter in 0..4000 {
            let len = rng.below(300) as usize;
            let body: Vec<u8> = if iter % 2 == 0 {
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                let mut b = Vec::new();
                while b.len() < len {
                    b.extend_from_slice(rng.pick(&TOKENS).as_bytes());
                }
                b
            };
            let w = whole(&body);
            assert_eq!(scan(random_chunks(&mut rng, &body, 7)), w);
            assert_eq!(scan(body.chunks(1)), w);
            let mut j = JsonUsageScanner::new();
            for c in random_chunks(&mut rng, &body, 5) {
                j.feed(c);
            }
            assert_eq!(j.usage(), json_usage([&body[..]]));
        }
    }

    #[test]
    fn the_first_content_event_is_the_commit_point() {
        let content = |events: &[&str]| {
            let mut s = SseScanner::new();
            for e in events {
                s.feed(e.as_bytes()).unwrap();
            }
            s.reached_content()
        };
        let role = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
        assert!(!content(&[role, ": ping\n\n", "data:\n\n"]));
        for first in [
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"refusal\":\"no\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hm\"}}]}\n\n",
            "data: {\"choices\":[{\"text\":\"Hi\",\"index\":0}]}\n\n",
        ] {
            assert!(content(&[role, first]), "{first}");
        }
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n";
        let ping = "event: ping\ndata: {\"type\":\"ping\"}\n\n";
        let block = "event: content_block_start\ndata: {\"type\":\"content_block_start\"}\n\n";
        let delta = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n";
        assert!(!content(&[start, ping, block]));
        assert!(content(&[start, ping, block, delta]));
        // cut inside an event: the scanner knows the client may have half an event
        let mut s = SseScanner::new();
        s.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"He")
            .unwrap();
        assert!(s.is_mid_event() && !s.reached_content());
    }
}
