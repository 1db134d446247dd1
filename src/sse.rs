//! Incremental decoder for `text/event-stream` bodies (server-sent events framing).
//!
//! [`SseDecoder`] turns a byte stream that arrives in arbitrary chunks (a chunk may split a
//! line, a `\r\n` pair or a UTF-8 character) into events: an event name and its `data` (all
//! `data` lines of one event joined with `\n`). It knows nothing about what the data means:
//! the usage observer ([`crate::usage::SseScanner`]) and stream translation build on it.
//!
//! Framing (the WHATWG event-stream format, strict about field names):
//!
//! * Lines end with `\n`, `\r\n` or `\r`; a `\r\n` pair split across chunks is one terminator.
//! * One UTF-8 BOM at the very start of the stream is skipped.
//! * A line starting with `:` is a comment. A blank line ends (dispatches) the current event.
//! * Other lines are fields: `name:value`, `name: value` (one space after the colon is not part
//!   of the value) or a bare `name` (empty value). The names are `data`, `event`, `id` and
//!   `retry`; any other line is [`SseError::Garbage`], detected at its first byte that cannot
//!   belong to one of those names. `id` and `retry` values are not kept.
//! * A blank line dispatches an event only if the event had at least one `data` line
//!   (`data` with an empty value counts); an event name without data is dropped, as the
//!   standard says.
//!
//! Memory: the decoder keeps the current event's data and name in two reused buffers (never
//! the stream); buffers that grew beyond [`RETAIN_CAPACITY`] are released after the event.
//! A line longer than the limit ([`MAX_SSE_LINE`] by default), or an event whose data grows
//! beyond it, is [`SseError::LineTooLong`]. Nothing here panics on any input.

use memchr::memchr2;

/// Default limit, in bytes, for one line (without its terminator) and for the data of one
/// event (all its `data` values joined with `\n`).
pub const MAX_SSE_LINE: usize = 1 << 20;

/// Event buffers whose capacity grew beyond this are released when their event ends, so an
/// occasional large event does not pin memory for the rest of a long stream.
pub const RETAIN_CAPACITY: usize = 16 << 10;

/// Why an event stream is considered broken. Errors are sticky: once a decoder (or scanner)
/// returned one, every later call returns the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// A line that is not SSE: not blank, not a comment (`:`), and not a `data`, `event`,
    /// `id` or `retry` field (with or without a colon). Detected at the first offending byte
    /// of the field name (or at a partial BOM at the stream start).
    Garbage,
    /// A `data` payload that its consumer rejected. [`SseDecoder`] never reports it; the usage
    /// scanner reports it for a payload that is neither `[DONE]` nor one JSON value.
    InvalidData,
    /// A line longer than the decoder's limit ([`MAX_SSE_LINE`] by default) without a line
    /// terminator, or an event whose data exceeds that limit.
    LineTooLong,
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SseError::Garbage => "not an event stream",
            SseError::InvalidData => "invalid event data",
            SseError::LineTooLong => "event stream line or event too long",
        })
    }
}

impl std::error::Error for SseError {}

/// One dispatched event. Borrows the decoder's buffers: valid until the next call on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The value of the event's last `event` line; empty when it had none (the standard's
    /// default type is then `message`).
    pub event: &'a [u8],
    /// The event's `data` values joined with `\n` (no trailing `\n`). May be empty
    /// (`data:` with an empty value).
    pub data: &'a [u8],
}

/// What [`SseDecoder::next_frame`] reports. Borrows the decoder's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseFrame<'a> {
    /// A `data` line ended. Carries the current event's data so far (this line included,
    /// earlier lines joined with `\n`). The event itself is reported later by
    /// [`SseFrame::Event`].
    Data(&'a [u8]),
    /// An `event` line ended: the current event's name is now this value.
    EventType(&'a [u8]),
    /// A blank line dispatched an event that had at least one `data` line.
    Event(SseEvent<'a>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Data,
    Event,
    Id,
    Retry,
}

impl Field {
    fn name(self) -> &'static [u8] {
        match self {
            Field::Data => b"data",
            Field::Event => b"event",
            Field::Id => b"id",
            Field::Retry => b"retry",
        }
    }
}

/// Where in a line the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Stream start: bytes of a UTF-8 BOM matched so far.
    Bom(u8),
    /// At the first byte of a line.
    Start,
    /// Inside a field name; bytes of the name matched so far.
    Name(Field, u8),
    /// Right after `name:`; one optional space is skipped.
    AfterColon(Field),
    /// Inside a `data` or `event` value (kept).
    Value(Field),
    /// Inside a comment, `id` or `retry` value (not kept).
    Skip,
}

/// Frame kinds, without borrows (mapped to [`SseFrame`] at the API boundary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    EventType,
    Event,
}

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Drop the first `n` bytes of `input` (all of it if shorter).
#[inline]
fn advance(input: &mut &[u8], n: usize) {
    *input = input.get(n..).unwrap_or_default();
}

/// Incremental event-stream decoder (see the [module docs](self) for the framing rules).
///
/// Contract:
/// * Input may be split anywhere; the sequence of frames, events and errors is the same for
///   every split of the same bytes.
/// * Work is one linear pass (`memchr` for line ends); `data` / `event` values are copied once
///   into reused buffers. No allocation except growing those buffers.
/// * Errors are sticky ([`SseError`]); `InvalidData` is never produced here.
#[derive(Debug)]
pub struct SseDecoder {
    /// Data of the current event (values joined with `\n`).
    data: Vec<u8>,
    /// Name of the current event.
    event: Vec<u8>,
    /// Bytes of the current line seen so far (without the terminator).
    line_len: usize,
    /// Line / event size limit.
    max: usize,
    line: Line,
    /// The previous line ended with a `\r` at the end of a chunk: a `\n` next belongs to it.
    after_cr: bool,
    /// The current event has at least one `data` line.
    has_data: bool,
    /// A field line (not a comment) was started since the last blank line.
    in_event: bool,
    /// An event was just dispatched: its buffers are cleared at the next call.
    dispatched: bool,
    failed: Option<SseError>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder at the start of a stream with the [`MAX_SSE_LINE`] limit. Does not allocate.
    pub fn new() -> Self {
        Self::with_limit(MAX_SSE_LINE)
    }

    /// A decoder whose line / event-data limit is `max` bytes.
    pub fn with_limit(max: usize) -> Self {
        SseDecoder {
            data: Vec::new(),
            event: Vec::new(),
            line_len: 0,
            max,
            line: Line::Bom(0),
            after_cr: false,
            has_data: false,
            in_event: false,
            dispatched: false,
            failed: None,
        }
    }

    /// Decode from `input` until the next frame, advancing `input` past the bytes consumed.
    ///
    /// Returns `Ok(Some(frame))` at the end of a `data` or `event` line and at a blank line
    /// that dispatches an event; `input` then starts right after that line's terminator (a
    /// `\r` that ends the chunk is consumed, and a `\n` starting the next chunk is skipped).
    /// Returns `Ok(None)` once `input` is empty (a partial line is kept). Returns `Err` when
    /// the stream is broken; `input` is left at the offending byte, and every later call
    /// returns the same error.
    ///
    /// The frame borrows the decoder: drop it before the next call.
    pub fn next_frame(&mut self, input: &mut &[u8]) -> Result<Option<SseFrame<'_>>, SseError> {
        Ok(self.step(input)?.map(|kind| match kind {
            Kind::Data => SseFrame::Data(&self.data),
            Kind::EventType => SseFrame::EventType(&self.event),
            Kind::Event => SseFrame::Event(SseEvent {
                event: &self.event,
                data: &self.data,
            }),
        }))
    }

    /// Decode a whole chunk, calling `on_event` for every event it completes (line frames are
    /// skipped). On `Err`, the events before the offending byte have been delivered.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut on_event: impl FnMut(SseEvent<'_>),
    ) -> Result<(), SseError> {
        let mut input = chunk;
        while let Some(frame) = self.next_frame(&mut input)? {
            if let SseFrame::Event(ev) = frame {
                on_event(ev);
            }
        }
        Ok(())
    }

    /// Whether a line has started but its terminator has not arrived yet (including a partial
    /// BOM at the stream start). A stream that ends here was cut mid-line.
    pub fn is_mid_line(&self) -> bool {
        !matches!(self.line, Line::Start | Line::Bom(0))
    }

    /// Whether an event is being received: a line is in progress, or a field line (`data`,
    /// `event`, `id`, `retry`; not a comment) was seen since the last blank line. A stream
    /// that ends here was cut mid-event (a complete event ends with a blank line).
    pub fn is_mid_event(&self) -> bool {
        self.is_mid_line() || self.in_event
    }

    /// The data of the event being received so far, including a partial current `data` line;
    /// empty between events.
    pub fn pending_data(&self) -> &[u8] {
        if self.dispatched {
            &[]
        } else {
            &self.data
        }
    }

    /// The error this decoder stopped at, if any.
    pub fn error(&self) -> Option<SseError> {
        self.failed
    }

    /// Release or clear the buffers of the event just dispatched.
    fn clear_event(&mut self) {
        if self.data.capacity() > RETAIN_CAPACITY {
            self.data = Vec::new();
        } else {
            self.data.clear();
        }
        if self.event.capacity() > RETAIN_CAPACITY {
            self.event = Vec::new();
        } else {
            self.event.clear();
        }
    }

    /// Consume the line terminator that `input` starts with.
    #[inline]
    fn eat_eol(&mut self, input: &mut &[u8]) {
        *input = match *input {
            [b'\r', b'\n', rest @ ..] => rest,
            [b'\r'] => {
                self.after_cr = true;
                &[]
            }
            [_, rest @ ..] => rest,
            [] => &[],
        };
    }

    /// The value of field `f` starts (after the colon and optional space).
    #[inline]
    fn value_start(&mut self, f: Field) -> Result<(), SseError> {
        self.in_event = true;
        self.line = match f {
            Field::Data => {
                if self.has_data {
                    if self.data.len() >= self.max {
                        return Err(SseError::LineTooLong);
                    }
                    self.data.push(b'\n');
                }
                self.has_data = true;
                Line::Value(Field::Data)
            }
            Field::Event => {
                self.event.clear();
                Line::Value(Field::Event)
            }
            Field::Id | Field::Retry => Line::Skip,
        };
        Ok(())
    }

    /// After `name:` was consumed: skip one optional space and start the value.
    #[inline]
    fn after_colon(&mut self, f: Field, input: &mut &[u8]) -> Result<(), SseError> {
        match input.split_first() {
            None => {
                self.line = Line::AfterColon(f);
                Ok(())
            }
            Some((&b' ', rest)) => {
                *input = rest;
                self.line_len += 1;
                self.value_start(f)
            }
            Some(_) => self.value_start(f),
        }
    }

    /// A non-blank line ended: the frame it produces, if any.
    #[inline]
    fn end_line(&mut self) -> Option<Kind> {
        let kind = match self.line {
            Line::Value(Field::Data) => Some(Kind::Data),
            Line::Value(Field::Event) => Some(Kind::EventType),
            _ => None,
        };
        self.line = Line::Start;
        self.line_len = 0;
        kind
    }

    /// [`Self::decode`], with sticky errors.
    fn step(&mut self, input: &mut &[u8]) -> Result<Option<Kind>, SseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = self.decode(input);
        if let Err(e) = r {
            self.failed = Some(e);
        }
        r
    }

    fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Kind>, SseError> {
        if self.dispatched {
            self.dispatched = false;
            self.clear_event();
        }
        if self.after_cr {
            if let Some((&b, rest)) = input.split_first() {
                self.after_cr = false;
                if b == b'\n' {
                    *input = rest;
                }
            }
        }
        loop {
            let Some(&b) = input.first() else {
                return Ok(None);
            };
            match self.line {
                Line::Bom(k) => {
                    if BOM.get(usize::from(k)) == Some(&b) {
                        advance(input, 1);
                        self.line = if usize::from(k) + 1 == BOM.len() {
                            Line::Start
                        } else {
                            Line::Bom(k + 1)
                        };
                    } else if k == 0 {
                        self.line = Line::Start;
                    } else {
                        return Err(SseError::Garbage);
                    }
                }
                Line::Start => match b {
                    b'\n' | b'\r' => {
                        self.eat_eol(input);
                        self.in_event = false;
                        if self.has_data {
                            self.has_data = false;
                            self.dispatched = true;
                            return Ok(Some(Kind::Event));
                        }
                        self.event.clear();
                    }
                    b':' => {
                        advance(input, 1);
                        self.line_len = 1;
                        self.line = Line::Skip;
                    }
                    b'd' | b'e' | b'i' | b'r' => {
                        let f = match b {
                            b'd' => Field::Data,
                            b'e' => Field::Event,
                            b'i' => Field::Id,
                            _ => Field::Retry,
                        };
                        // Fast path: the whole `name:` is in this chunk.
                        let name = f.name();
                        if input.get(name.len()) == Some(&b':') && input.starts_with(name) {
                            advance(input, name.len() + 1);
                            self.line_len = name.len() + 1;
                            // The line has started, as on the byte-wise path, even when
                            // the value is refused right away (data over the limit).
                            self.line = Line::AfterColon(f);
                            self.after_colon(f, input)?;
                        } else {
                            advance(input, 1);
                            self.line_len = 1;
                            self.line = Line::Name(f, 1);
                        }
                    }
                    _ => return Err(SseError::Garbage),
                },
                Line::Name(f, k) => {
                    let name = f.name();
                    if let Some(&expect) = name.get(usize::from(k)) {
                        if b != expect {
                            return Err(SseError::Garbage);
                        }
                        advance(input, 1);
                        self.line_len += 1;
                        self.line = Line::Name(f, k + 1);
                    } else {
                        match b {
                            b':' => {
                                advance(input, 1);
                                self.line_len += 1;
                                self.after_colon(f, input)?;
                            }
                            b'\n' | b'\r' => {
                                // A bare field name: the field with an empty value.
                                self.value_start(f)?;
                                self.eat_eol(input);
                                if let Some(kind) = self.end_line() {
                                    return Ok(Some(kind));
                                }
                            }
                            _ => return Err(SseError::Garbage),
                        }
                    }
                }
                Line::AfterColon(f) => {
                    if b == b' ' {
                        advance(input, 1);
                        self.line_len += 1;
                    }
                    self.value_start(f)?;
                }
                Line::Value(_) | Line::Skip => {
                    let keep_data = self.line == Line::Value(Field::Data);
                    let mut budget = self.max.saturating_sub(self.line_len);
                    if keep_data {
                        budget = budget.min(self.max.saturating_sub(self.data.len()));
                    }
                    let window = input
                        .get(..input.len().min(budget.saturating_add(1)))
                        .unwrap_or(input);
                    let (value, too_long) = match memchr2(b'\n', b'\r', window) {
                        Some(p) => (window.get(..p).unwrap_or_default(), false),
                        None if window.len() > budget => {
                            (window.get(..budget).unwrap_or_default(), true)
                        }
                        None => (window, false),
                    };
                    match self.line {
                        Line::Value(Field::Data) => self.data.extend_from_slice(value),
                        Line::Value(_) => self.event.extend_from_slice(value),
                        _ => {}
                    }
                    self.line_len += value.len();
                    advance(input, value.len());
                    if too_long {
                        return Err(SseError::LineTooLong);
                    }
                    if !input.is_empty() {
                        // At the terminator.
                        self.eat_eol(input);
                        if let Some(kind) = self.end_line() {
                            return Ok(Some(kind));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything observable: the frames (owned) and the final error.
    #[derive(Debug, PartialEq)]
    struct Trace {
        frames: Vec<(u8, Vec<u8>, Vec<u8>)>,
        result: Result<(), SseError>,
        mid_line: bool,
        mid_event: bool,
        pending: Vec<u8>,
    }

    fn run<'a>(max: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Trace {
        let mut d = SseDecoder::with_limit(max);
        let mut frames = Vec::new();
        let mut result = Ok(());
        for c in chunks {
            let mut input = c;
            loop {
                match d.next_frame(&mut input) {
                    Ok(Some(SseFrame::Data(x))) => frames.push((b'd', Vec::new(), x.to_vec())),
                    Ok(Some(SseFrame::EventType(x))) => frames.push((b't', x.to_vec(), Vec::new())),
                    Ok(Some(SseFrame::Event(ev))) => {
                        frames.push((b'E', ev.event.to_vec(), ev.data.to_vec()))
                    }
                    Ok(None) => break,
                    Err(e) => {
                        if result.is_ok() {
                            result = Err(e);
                        }
                        break;
                    }
                }
            }
            if result.is_err() {
                let e = d.error();
                assert!(e.is_some());
                assert_eq!(d.next_frame(&mut &b"\n\n"[..]).err(), e, "sticky");
            }
        }
        Trace {
            frames,
            result,
            mid_line: d.is_mid_line(),
            mid_event: d.is_mid_event(),
            pending: d.pending_data().to_vec(),
        }
    }

    /// Every two-way split, byte at a time, and some three-way splits agree with the whole.
    fn split_invariant(body: &[u8]) -> Trace {
        let w = run(MAX_SSE_LINE, [body]);
        for k in 0..=body.len() {
            assert_eq!(
                run(MAX_SSE_LINE, [&body[..k], &body[k..]]),
                w,
                "split at {k}"
            );
        }
        assert_eq!(run(MAX_SSE_LINE, body.chunks(1)), w, "byte at a time");
        for k in 0..body.len() {
            let j = (k * 7 + 3) % (body.len() + 1);
            let (a, b) = (k.min(j), k.max(j));
            assert_eq!(
                run(MAX_SSE_LINE, [&body[..a], &body[a..b], &body[b..]]),
                w,
                "split at {a},{b}"
            );
        }
        w
    }

    fn events(t: &Trace) -> Vec<(&[u8], &[u8])> {
        t.frames
            .iter()
            .filter(|f| f.0 == b'E')
            .map(|f| (f.1.as_slice(), f.2.as_slice()))
            .collect()
    }

    #[test]
    fn framing_rules() {
        let body =
            "\u{feff}: hello\nretry: 10\nid: 1\nevent: a\ndata: x\ndata:y\ndata\ndata:  z \n\n\
                    event: lonely\n\ndata: 2\n\nevent: b\nevent:c\ndata:3\n\n: tail\n";
        for eol in ["\n", "\r\n", "\r"] {
            let t = split_invariant(body.replace('\n', eol).as_bytes());
            assert_eq!(t.result, Ok(()));
            assert_eq!(
                events(&t),
                vec![(&b"a"[..], &b"x\ny\n\n z "[..]), (b"", b"2"), (b"c", b"3"),]
            );
            assert!(!t.mid_event && !t.mid_line && t.pending.is_empty());
        }
        // Mixed terminators in one stream.
        let t = split_invariant(b"data: 1\r\n\rdata: 2\r\r\nevent: e\n\r\n");
        assert_eq!(events(&t), vec![(&b""[..], &b"1"[..]), (b"", b"2")]);
        // Line frames carry the data so far and the event name.
        let t = run(MAX_SSE_LINE, [&b"event: e\ndata: 1\ndata: 2\n\n"[..]]);
        let kinds: Vec<u8> = t.frames.iter().map(|f| f.0).collect();
        assert_eq!(kinds, b"tddE");
        assert_eq!(t.frames[1].2, b"1");
        assert_eq!(t.frames[2].2, b"1\n2");
        assert_eq!(t.frames[0].1, b"e");
    }

    #[test]
    fn mid_line_and_mid_event() {
        let t = run(MAX_SSE_LINE, [&b"data: {\"a\""[..]]);
        assert!(t.mid_line && t.mid_event);
        assert_eq!(t.pending, b"{\"a\"");
        let t = run(MAX_SSE_LINE, [&b"data: 1\n"[..]]);
        assert!(!t.mid_line && t.mid_event);
        assert_eq!(t.pending, b"1");
        let t = run(MAX_SSE_LINE, [&b"id: 1\n"[..]]);
        assert!(!t.mid_line && t.mid_event);
        let t = run(MAX_SSE_LINE, [&b": comment\n"[..]]);
        assert!(!t.mid_line && !t.mid_event);
        let t = run(MAX_SSE_LINE, [&b"data: 1\n\n"[..]]);
        assert!(!t.mid_line && !t.mid_event && t.pending.is_empty());
        let t = run(MAX_SSE_LINE, [&b"\xEF\xBB"[..]]);
        assert!(t.mid_line && t.result.is_ok());
        // `\r` at a chunk end: the line is over; a `\n` next is part of it.
        let t = run(MAX_SSE_LINE, [&b"data: 1\r"[..]]);
        assert!(!t.mid_line && t.mid_event);
    }

    #[test]
    fn garbage_and_bom() {
        for bad in [
            &b"<html>"[..],
            b"dat: x\n",
            b"datax\n",
            b"date\n",
            b" data: 1\n",
            b"Data: 1\n",
            b"idx\n",
            b"\xEF\xBBdata: 1\n\n",
            b"\xEF\xBB\xBF\xEF\xBB\xBFdata: 1\n\n",
            b"data: 1\n\n\xEF\xBB\xBFdata: 1\n\n",
        ] {
            let t = split_invariant(bad);
            assert_eq!(
                t.result,
                Err(SseError::Garbage),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let t = split_invariant(b"data: 1\n\nnope\ndata: 2\n\n");
        assert_eq!(events(&t), vec![(&b""[..], &b"1"[..])]);
        // The offending byte is where `input` stops.
        let mut d = SseDecoder::new();
        let mut input = &b"data: 1\n\nxyz"[..];
        assert!(matches!(
            d.next_frame(&mut input),
            Ok(Some(SseFrame::Data(b"1")))
        ));
        assert!(matches!(
            d.next_frame(&mut input),
            Ok(Some(SseFrame::Event(_)))
        ));
        assert_eq!(d.next_frame(&mut input), Err(SseError::Garbage));
        assert_eq!(input, b"xyz");
    }

    #[test]
    fn limits() {
        // A line of exactly `max` bytes is fine; one more is too long, however split.
        let max = 64;
        let mut ok = b"data: ".to_vec();
        ok.resize(max, b'a');
        ok.extend_from_slice(b"\n\n");
        assert_eq!(run(max, [&ok[..]]).result, Ok(()));
        let mut long = b": ".to_vec();
        long.resize(max + 1, b'c');
        long.push(b'\n');
        for k in 0..long.len() {
            assert_eq!(
                run(max, [&long[..k], &long[k..]]).result,
                Err(SseError::LineTooLong),
                "split at {k}"
            );
        }
        // The data of one event is bounded too (separators included).
        let line = format!("data: {}\n", "b".repeat(20));
        let three = line.repeat(3);
        assert_eq!(run(max, [three.as_bytes()]).result, Ok(()));
        let four = line.repeat(4);
        assert_eq!(
            run(max, [four.as_bytes()]).result,
            Err(SseError::LineTooLong)
        );
        // An event name counts as a line.
        let ev = format!("event: {}\n", "e".repeat(max));
        assert_eq!(run(max, [ev.as_bytes()]).result, Err(SseError::LineTooLong));
    }

    /// Regression (found by tests/fuzz): a `data` line that starts when the event's data is
    /// already at the limit fails in the same state (mid-line) however the input is split;
    /// the fast path for a whole `data:` used to fail still "at the line start".
    #[test]
    fn data_over_the_limit_at_a_line_start_is_split_invariant() {
        let max = 8;
        // Three lines fill the event's data to exactly `max` (`123\n123\n`); the fourth
        // cannot even add its `\n` separator.
        let body = b"data:123\ndata:123\ndata:\ndata:}\n\n";
        let whole = run(max, [&body[..]]);
        assert_eq!(whole.result, Err(SseError::LineTooLong));
        assert!(whole.mid_line && whole.mid_event);
        for k in 0..=body.len() {
            assert_eq!(run(max, [&body[..k], &body[k..]]), whole, "split at {k}");
        }
        assert_eq!(run(max, body.chunks(1)), whole, "byte at a time");
    }

    #[test]
    fn buffers_are_reused_and_released() {
        let mut d = SseDecoder::new();
        let big = format!("data: {}\n\n", "x".repeat(RETAIN_CAPACITY * 2));
        let mut n = 0;
        assert_eq!(d.feed(big.as_bytes(), |_| n += 1), Ok(()));
        assert_eq!(d.feed(b"data: 1\n\n", |_| n += 1), Ok(()));
        assert_eq!(n, 2);
        assert!(d.data.capacity() <= RETAIN_CAPACITY);
        let cap = d.data.capacity();
        for _ in 0..100 {
            assert_eq!(d.feed(b"data: 12\n\n", |_| n += 1), Ok(()));
        }
        assert_eq!(d.data.capacity(), cap);
    }
}
