//! The event-stream scanner: usage, completion, in-band errors and breakage of a
//! `text/event-stream` response body.

use bytes::{Bytes, BytesMut};
use memchr::memmem;
use serde::de::IgnoredAny;
use serde::Deserialize;
use smallvec::SmallVec;
use std::ops::Range;
use std::sync::LazyLock;

use super::document::{analyse, is_ws, starts_json, Found, JsonValidity, ERROR};
use crate::sse::{SseDecoder, SseError, SseFrame};
use crate::vocab::TokenUsage;

/// What a dialect's event stream sends before its commit point (its first content event),
/// which the gateway holds back: a dialect plugs in with a variant here and the names of
/// its preamble events ([`Preamble::events`]). Every other named event is content; an
/// unnamed event (an OpenAI chunk) is content when it carries some (see
/// [`SseScanner::reached_content`]). Blank `data:` lines, `[DONE]`, comments, error events
/// and terminal events are never content. One byte, so the scanner stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preamble {
    /// OpenAI chat and legacy completion chunks (unnamed events only).
    OpenAiChunks,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses.
    Responses,
    /// Gemini `streamGenerateContent?alt=sse`: unnamed chunks, content once a candidate
    /// has a part; complete at the chunk with a `finishReason` (there is no terminal event).
    Gemini,
    /// Any of the above, for a stream whose dialect is not known.
    #[default]
    Any,
}

impl Preamble {
    /// The named events held back as preamble.
    pub fn events(self) -> &'static [&'static [u8]] {
        const ANTHROPIC: [&[u8]; 3] = [b"message_start", b"ping", b"content_block_start"];
        const RESPONSES: [&[u8]; 4] = [
            b"response.created",
            b"response.in_progress",
            b"response.output_item.added",
            b"response.content_part.added",
        ];
        const ANY: [&[u8]; 7] = [
            ANTHROPIC[0],
            ANTHROPIC[1],
            ANTHROPIC[2],
            RESPONSES[0],
            RESPONSES[1],
            RESPONSES[2],
            RESPONSES[3],
        ];
        match self {
            Preamble::OpenAiChunks | Preamble::Gemini => &[],
            Preamble::Anthropic => &ANTHROPIC,
            Preamble::Responses => &RESPONSES,
            Preamble::Any => &ANY,
        }
    }

    /// Whether the event `name` (empty: unnamed) with `data` is held back as preamble.
    pub fn holds(self, name: &[u8], data: &[u8]) -> bool {
        if self == Preamble::Gemini {
            !gemini_chunk(data).content
        } else if name.is_empty() {
            !is_openai_content(data)
        } else {
            self.events().contains(&name)
        }
    }
}

/// What [`SseScanner`] accumulates (apart from the decoder).
#[derive(Debug, Default)]
struct Observed {
    /// The stream's dialect: which events come before its commit point.
    preamble: Preamble,
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

    /// Observes one frame. `Some(usage_only)` at an event's end: whether the event is a
    /// usage-only chunk (only told when `hide_usage`); `None` for a line.
    fn on_frame(
        &mut self,
        frame: SseFrame<'_>,
        hide_usage: bool,
    ) -> Result<Option<bool>, SseError> {
        let mut usage_only = None;
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
                        (found, JsonValidity::Valid) => {
                            self.first_parse = u32::try_from(data.len()).ok().map(|n| (n, found));
                        }
                        (_, JsonValidity::Incomplete) => {}
                        (_, JsonValidity::Invalid) => return Err(SseError::InvalidData),
                    }
                }
            }
            SseFrame::EventType(name) => match name {
                b"message_stop" | b"response.completed" | b"response.incomplete" => {
                    self.finished = true
                }
                b"error" | b"response.failed" => self.error_event = true,
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
                    // An error or terminal event is never the first content event.
                    if !self.content && !self.error_event && !self.finished {
                        self.content = !self.preamble.holds(ev.event, ev.data);
                    }
                    // Only the last chunk names a finish reason: the others are not parsed again.
                    if self.preamble == Preamble::Gemini
                        && memchr::memmem::find(ev.data, b"\"finishReason\"").is_some()
                        && gemini_chunk(ev.data).finished
                    {
                        self.finished = true;
                    }
                    let found = match first {
                        Some((n, found)) if n as usize == ev.data.len() => found,
                        _ => match analyse(ev.data, true) {
                            (found, JsonValidity::Valid) => found,
                            _ => return Err(SseError::InvalidData),
                        },
                    };
                    if hide_usage && ev.event.is_empty() && found.usage().is_some() {
                        usage_only = Some(is_usage_only(ev.data));
                    }
                    self.found.merge(found);
                }
                self.events += 1;
                return Ok(Some(usage_only.unwrap_or(false)));
            }
        }
        Ok(usage_only)
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
///   event. Any other line is [`SseError::Garbage`]; a line or event over [`MAX_SSE_LINE`](crate::sse::MAX_SSE_LINE)
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
    /// A scanner positioned at the start of a stream of any known dialect
    /// ([`Preamble::Any`]). Does not allocate.
    pub fn new() -> Self {
        Self::default()
    }

    /// A scanner for a stream whose events before its commit point are `preamble`.
    pub fn with_preamble(preamble: Preamble) -> Self {
        SseScanner {
            dec: SseDecoder::default(),
            obs: Observed {
                preamble,
                ..Observed::default()
            },
        }
    }

    /// Observes `chunk` like [`feed`](Self::feed) and returns the bytes the client gets:
    /// the stream without its usage-only chunks (OpenAI's last chunk: an unnamed event
    /// whose data has `"choices":[]` and a `usage` object; its usage is still read).
    /// `held` carries the bytes of an event not complete at a chunk's end from one call to
    /// the next (start with it empty, feed every chunk this way): they are sent with the
    /// chunk that completes the event, and whatever is in `held` when the stream ends or
    /// breaks goes to the client as it came. Everything else is passed on at once,
    /// untouched. `None` when nothing is to be sent now.
    pub fn feed_hiding_usage(
        &mut self,
        chunk: &Bytes,
        held: &mut BytesMut,
    ) -> Result<Option<Bytes>, SseError> {
        if let Some(e) = self.obs.err {
            return Err(e);
        }
        // Byte ranges of `chunk` holding usage-only chunks; the first may have begun in an
        // earlier chunk (its bytes are held).
        let had_held = !held.is_empty();
        let mut hidden: SmallVec<[Range<usize>; 1]> = SmallVec::new();
        let mut drop_held = false;
        let mut event_start = 0usize;
        let mut input: &[u8] = chunk;
        let r = loop {
            match self.dec.next_frame(&mut input) {
                Ok(Some(frame)) => match self.obs.on_frame(frame, true) {
                    Ok(Some(usage_only)) => {
                        let end = chunk.len().saturating_sub(input.len());
                        if usage_only {
                            let begun_before = event_start == 0 && had_held;
                            // Line ends leading an event's bytes may end the previous event
                            // (a `\r\n` split across chunks): they stay.
                            let lead = if begun_before {
                                0
                            } else {
                                line_ends(chunk.get(event_start..end).unwrap_or_default())
                            };
                            drop_held |= begun_before;
                            hidden.push(event_start.saturating_add(lead)..end);
                        }
                        event_start = end;
                    }
                    Ok(None) => {}
                    Err(e) => break Err(e),
                },
                Ok(None) => break self.obs.check_start(self.dec.pending_data()),
                Err(e) => break self.obs.check_start(self.dec.pending_data()).and(Err(e)),
            }
        };
        if let Err(e) = r {
            self.obs.err = Some(e);
            return Err(e);
        }
        let keep_end = if self.dec.is_mid_event() {
            event_start
        } else {
            chunk.len()
        };
        if drop_held {
            held.truncate(line_ends(held));
        }
        if keep_end == 0 {
            // Still inside the event the held bytes began: it all waits.
            held.extend_from_slice(chunk);
            return Ok(None);
        }
        let out = if held.is_empty() && hidden.is_empty() {
            chunk.slice(..keep_end)
        } else {
            let mut out = held.split();
            let mut from = 0;
            for r in hidden.iter().chain(std::iter::once(&(keep_end..keep_end))) {
                out.extend_from_slice(chunk.get(from..r.start.max(from)).unwrap_or_default());
                from = r.end.max(from);
            }
            out.freeze()
        };
        held.extend_from_slice(chunk.get(keep_end..).unwrap_or_default());
        Ok((!out.is_empty()).then_some(out))
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
                Ok(Some(frame)) => {
                    self.obs.on_frame(frame, false)?;
                }
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
    /// sets all three prompt counts, see [`crate::usage`]).
    /// Counts come from complete, valid events only (their blank line seen). `None` until a
    /// usage object with at least one recognised count has been seen; malformed usage objects
    /// (see [`JsonUsageScanner::usage`](super::JsonUsageScanner::usage)) are skipped.
    pub fn usage(&self) -> Option<TokenUsage> {
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

    /// True once the stream reached its first content event — its commit point: the first
    /// complete event its [`Preamble`] does not hold, e.g. an Anthropic
    /// `content_block_delta`, or an OpenAI chunk (an event without a name) whose choices
    /// carry non-empty `delta.content`, `delta.tool_calls`, `delta.function_call`,
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

/// What a Gemini stream chunk says about the stream.
#[derive(Debug, Default, Clone, Copy)]
struct GeminiChunk {
    /// A candidate carries at least one part.
    content: bool,
    /// A candidate carries a `finishReason`: the last chunk.
    finished: bool,
}

/// Reads a Gemini `GenerateContentResponse` chunk (invalid JSON says nothing: the scanner
/// reports it separately).
fn gemini_chunk(data: &[u8]) -> GeminiChunk {
    #[derive(Deserialize)]
    struct Chunk<'a> {
        #[serde(default, borrow)]
        candidates: Option<Vec<Candidate<'a>>>,
    }
    #[derive(Deserialize)]
    struct Candidate<'a> {
        #[serde(default)]
        content: Option<Content>,
        #[serde(default, rename = "finishReason", borrow)]
        finish_reason: Option<std::borrow::Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct Content {
        #[serde(default)]
        parts: Option<Vec<IgnoredAny>>,
    }
    let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(data) else {
        return GeminiChunk::default();
    };
    let candidates = chunk.candidates.unwrap_or_default();
    GeminiChunk {
        content: candidates.iter().any(|c| {
            c.content
                .as_ref()
                .and_then(|c| c.parts.as_ref())
                .is_some_and(|p| !p.is_empty())
        }),
        finished: candidates.iter().any(|c| c.finish_reason.is_some()),
    }
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

/// Number of `\r` / `\n` bytes `bytes` starts with.
fn line_ends(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Whether an OpenAI chunk (already known to carry usage) is the usage-only one: its
/// `choices` is an empty array.
fn is_usage_only(data: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Chunk {
        #[serde(default)]
        choices: Option<Vec<IgnoredAny>>,
    }
    serde_json::from_slice::<Chunk>(data).is_ok_and(|c| c.choices.is_some_and(|c| c.is_empty()))
}

/// Keys whose string values are generated text in the stream dialects the gateway passes
/// on (OpenAI chat and completions, Anthropic Messages, Responses, Gemini): what
/// [`content_bytes`] counts.
const CONTENT_KEYS: [&[u8]; 9] = [
    b"content",
    b"text",
    b"refusal",
    b"reasoning_content",
    b"reasoning",
    b"arguments",
    b"partial_json",
    b"thinking",
    b"delta",
];

/// An estimate of the generated text in `bytes`, a piece of an event stream: the total
/// length of the string values of [`CONTENT_KEYS`] members (escapes counted as written).
/// One `memchr` pass over the piece for the `":"` between a key and a string value, so it
/// costs about what passing the bytes on does; a member split across two pieces is missed
/// (an estimate). Used to charge a stream the client abandoned before its usage came.
pub fn content_bytes(bytes: &[u8]) -> usize {
    let mut total = 0usize;
    let mut from = 0usize;
    static FINDER: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\":\""));
    while let Some(at) = bytes.get(from..).and_then(|rest| FINDER.find(rest)) {
        let colon = from + at;
        let value = colon + 3;
        let key = bytes.get(..colon).unwrap_or_default();
        let is_content = CONTENT_KEYS.iter().any(|k| {
            key.ends_with(k)
                && key.len() > k.len()
                && key.get(key.len() - k.len() - 1) == Some(&b'"')
        });
        if !is_content {
            from = value;
            continue;
        }
        let end = string_end(bytes, value);
        total = total.saturating_add(end.saturating_sub(value));
        from = end.saturating_add(1).max(value);
    }
    total
}

/// Offset of the closing quote of the JSON string whose contents start at `i` (the first
/// `"` not escaped by an odd run of backslashes), or `bytes.len()`.
fn string_end(bytes: &[u8], mut i: usize) -> usize {
    while let Some(q) = bytes.get(i..).and_then(|rest| memchr::memchr(b'"', rest)) {
        let q = i + q;
        let run = bytes.get(i..q).unwrap_or_default();
        if run.iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 0 {
            return q;
        }
        i = q + 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str =
        "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
    const TEXT: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hello \\\"you\\\"\"}}],\"usage\":null}\r\n\r\n";
    const KEEPALIVE: &str = ": keep-alive\n\n";
    const USAGE: &str = "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    /// Feeds `stream` split at `cuts` to a scanner hiding usage chunks; what the client gets
    /// (the held bytes flushed at the end) and the usage read.
    fn hide(stream: &str, cuts: &[usize]) -> (String, Option<TokenUsage>) {
        let mut s = SseScanner::with_preamble(Preamble::OpenAiChunks);
        let mut held = BytesMut::new();
        let bytes = Bytes::copy_from_slice(stream.as_bytes());
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
            if let Some(b) = s
                .feed_hiding_usage(&bytes.slice(from..cut), &mut held)
                .unwrap()
            {
                out.extend_from_slice(&b);
            }
            from = cut;
        }
        out.extend_from_slice(&held);
        (String::from_utf8(out).unwrap(), s.usage())
    }

    #[test]
    fn the_usage_only_chunk_is_hidden_however_the_stream_is_split() {
        let stream = [ROLE, KEEPALIVE, TEXT, USAGE, DONE].concat();
        let want = [ROLE, KEEPALIVE, TEXT, DONE].concat();
        let usage = Some(TokenUsage {
            input: 7,
            output: 3,
            ..TokenUsage::default()
        });
        assert_eq!(hide(&stream, &[]), (want.clone(), usage));
        for i in 0..=stream.len() {
            assert_eq!(hide(&stream, &[i]), (want.clone(), usage), "split at {i}");
            for j in (i..=stream.len()).step_by(7) {
                assert_eq!(hide(&stream, &[i, j]), (want.clone(), usage), "{i}, {j}");
            }
        }
    }

    #[test]
    fn only_usage_only_chunks_are_hidden() {
        // usage on a chunk with choices, a named event, a stream cut inside an event
        let with_choices =
            "data: {\"choices\":[{\"delta\":{}}],\"usage\":{\"prompt_tokens\":1}}\n\n";
        let named = "event: x\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n";
        for stream in [
            [ROLE, with_choices, DONE].concat(),
            [ROLE, named, DONE].concat(),
            [ROLE, "data: {\"choi"].concat(),
        ] {
            assert_eq!(hide(&stream, &[]).0, stream);
            assert_eq!(hide(&stream, &[ROLE.len() + 3]).0, stream);
        }
    }

    #[test]
    fn content_bytes_counts_generated_text_only() {
        assert_eq!(content_bytes(ROLE.as_bytes()), 0);
        assert_eq!(content_bytes(TEXT.as_bytes()), r#"Hello \"you\""#.len());
        assert_eq!(content_bytes(USAGE.as_bytes()), 0);
        let anthropic = "data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"abc\"}}\n\ndata: {\"delta\":{\"partial_json\":\"{\\\"a\\\\\\\\\"}}\n\n";
        assert_eq!(content_bytes(anthropic.as_bytes()), 3 + r#"{\"a\\\\"#.len());
        // a key that only ends like one (`subtext`), and a piece cut inside a value
        assert_eq!(content_bytes(br#"{"subtext":"abc","content":"de"#), 2);
    }
}
