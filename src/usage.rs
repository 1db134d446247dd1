//! Zero-copy observers for upstream LLM response bodies.
//!
//! The gateway forwards every upstream body chunk unchanged and immediately; the types in this
//! module only *observe* those chunks (chunk boundaries are arbitrary: they may split an SSE
//! line, a JSON token, a UTF-8 character or a `\r\n` pair) and report:
//!
//! * the token [`Usage`] of the response,
//! * for SSE streams ([`SseScanner`]): whether the stream completed (`data: [DONE]` /
//!   `event: message_stop`), whether the upstream reported an error in-band, and whether the
//!   stream is broken ([`SseError`]),
//! * for non-stream JSON bodies ([`JsonUsageScanner`]): the top-level `usage` member.
//!
//! # Design
//!
//! Both scanners share one resumable JSON tokenizer that consumes input byte by byte (with fast
//! paths for string bodies) and keeps only a few bytes of state between chunks: a 128-level
//! container bit stack, the lexical state, and a small key matcher. No payload bytes are
//! buffered, except the value of a `usage` member, which is copied (capped at
//! [`USAGE_CAPTURE_CAP`] bytes) and handed to `serde_json` once its closing brace is seen.
//! The SSE layer finds line ends with `memchr` and never stores partial lines either.
//!
//! Each scanner is a few hundred bytes plus the capture buffer (allocated only when a `usage`
//! object is seen, typically < 512 bytes). Nothing in this module panics on any input, uses
//! recursion or `unsafe`.
//!
//! # Limitations (by design, to stay allocation- and copy-free)
//!
//! * JSON validation is structural (brackets, strings, escapes, numbers, literals, commas and
//!   colons); UTF-8 validity inside strings is not checked.
//! * Nesting deeper than [`MAX_JSON_DEPTH`] is treated as invalid (`serde_json` rejects it too).
//! * Member names are matched on their raw bytes: a key written with escapes (`"us\u0061ge"`)
//!   is not recognised as `usage`.

use memchr::memchr2;
use serde::Deserialize;

/// Maximum number of bytes of a `usage` object that are copied for parsing. A larger `usage`
/// value is ignored (real ones are a few hundred bytes).
pub const USAGE_CAPTURE_CAP: usize = 4096;

/// Maximum length of one SSE line (excluding its terminator) before
/// [`SseError::LineTooLong`] is reported.
pub const MAX_SSE_LINE: usize = 1 << 20;

/// Maximum JSON container nesting accepted by the tokenizer; deeper payloads are invalid.
pub const MAX_JSON_DEPTH: u8 = 128;

/// Token usage of one response.
///
/// Maps the OpenAI names (`prompt_tokens` / `completion_tokens`) and the Anthropic / OpenAI
/// Responses names (`input_tokens` / `output_tokens`); when both spellings are present in one
/// object the `input_tokens` / `output_tokens` spelling wins. A missing count is 0 (e.g.
/// embeddings have no `completion_tokens`). Anthropic cache counters
/// (`cache_read_input_tokens`, ...) are not included in `input_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt / input tokens.
    pub input_tokens: u64,
    /// Completion / output tokens.
    pub output_tokens: u64,
}

/// Why an SSE stream is considered broken. Reported by [`SseScanner::feed`] at the exact byte
/// where the problem becomes certain, so the outcome does not depend on chunk boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// A line that is not SSE: not blank, not a comment (`:`), and not a `data`, `event`,
    /// `id` or `retry` field (with or without a colon). Detected at the first offending byte
    /// of the field name.
    Garbage,
    /// A `data:` payload (all `data` lines of one event joined with `\n`) that is neither
    /// `[DONE]` nor one valid JSON value. Structural errors are reported as soon as the
    /// offending byte arrives; an incomplete or empty payload is reported when the event's
    /// terminating blank line arrives.
    InvalidData,
    /// A line longer than [`MAX_SSE_LINE`] bytes without a line terminator.
    LineTooLong,
}

// ---------------------------------------------------------------------------------------------
// Usage parsing
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Resumable JSON tokenizer
// ---------------------------------------------------------------------------------------------

/// Number grammar states (RFC 8259).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpInt,
}

impl Num {
    /// Whether a number may end in this state.
    fn terminal(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::ExpInt)
    }

    fn step(self, b: u8) -> Option<Num> {
        match (self, b) {
            (Num::Minus, b'0') => Some(Num::Zero),
            (Num::Minus, b'1'..=b'9') => Some(Num::Int),
            (Num::Int, b'0'..=b'9') => Some(Num::Int),
            (Num::Zero | Num::Int, b'.') => Some(Num::Dot),
            (Num::Dot | Num::Frac, b'0'..=b'9') => Some(Num::Frac),
            (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Some(Num::Exp),
            (Num::Exp, b'+' | b'-') => Some(Num::ExpSign),
            (Num::Exp | Num::ExpSign | Num::ExpInt, b'0'..=b'9') => Some(Num::ExpInt),
            _ => None,
        }
    }
}

/// Lexical / structural state of the tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Expecting a value (payload start, after `:`, after `,` in an array).
    Value,
    /// After `[`: a value or `]`.
    ValueOrEnd,
    /// After `{`: a key or `}`.
    KeyOrEnd,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value inside a container: `,` or the matching closer.
    CommaOrEnd,
    /// The top-level value is complete: only whitespace may follow.
    Done,
    /// Inside a string (key or value).
    Str,
    /// After a backslash inside a string.
    Esc,
    /// Inside `\uXXXX`: number of hex digits still expected.
    Hex(u8),
    /// Inside a number.
    Num(Num),
    /// Inside a literal: index into `LITERALS`, bytes matched so far.
    Lit(u8, u8),
    /// SSE mode: `[` as the first byte of the payload (may be `[DONE]`).
    TopBracket,
    /// SSE mode: bytes of `[DONE]` matched so far.
    DoneLit(u8),
    /// SSE mode: `[DONE]` complete: only whitespace may follow.
    DoneEnd,
    /// Not valid JSON; sticky until reset.
    Invalid,
}

const LITERALS: [&[u8]; 3] = [b"true", b"false", b"null"];
const DONE: &[u8] = b"[DONE]";

/// Key matcher states: the key being matched (index into `KEY_NAMES`) or a wildcard awaiting
/// the first byte.
const K_NONE: u8 = 0;
const K_USAGE: u8 = 1;
const K_ERROR: u8 = 2;
const K_MESSAGE: u8 = 3;
/// First byte of a top-level key pending.
const K_ANY_TOP: u8 = 4;
/// First byte of a key directly inside top-level `message` pending.
const K_ANY_MSG: u8 = 5;
const KEY_NAMES: [&[u8]; 4] = [b"", b"usage", b"error", b"message"];

/// Bytes that stop the string fast path: `"`, `\` and control characters.
const STR_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Index of the first byte at or after `i` that ends the string fast path (`"`, `\\` or a
/// control character), or `seg.len()`.
#[inline]
fn scan_string(seg: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Most strings are short: 8 bytes at a time (SWAR), up to 32 bytes. For each byte the
    // classic `(v - 1) & !v & 0x80` zero test is exact for the lowest match, which is the
    // one we want (little-endian).
    let short_end = i + 32;
    while i < short_end {
        let Some(w) = seg.get(i..i + 8).and_then(|s| <[u8; 8]>::try_from(s).ok()) else {
            break;
        };
        let x = u64::from_le_bytes(w);
        let q = x ^ (LO * u64::from(b'"'));
        let bs = x ^ (LO * u64::from(b'\\'));
        let m = ((q.wrapping_sub(LO) & !q)
            | (bs.wrapping_sub(LO) & !bs)
            | (x.wrapping_sub(LO * 0x20) & !x))
            & HI;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i < short_end {
        // Fewer than 8 bytes left in the segment.
        while let Some(&b) = seg.get(i) {
            if STR_STOP[usize::from(b)] {
                return i;
            }
            i += 1;
        }
        return i;
    }
    // Long string: vectorised search for the quote / backslash, then a vectorisable check
    // for control characters in between.
    let rest = seg.get(i..).unwrap_or_default();
    let span_len = memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    let span = rest.get(..span_len).unwrap_or_default();
    if span.iter().fold(0u8, |acc, &b| acc | u8::from(b < 0x20)) != 0 {
        return i + span.iter().position(|&b| b < 0x20).unwrap_or(span_len);
    }
    i + span_len
}

/// `hay` starts with `needle` (tiny needles; avoids a `memcmp` call).
#[inline]
fn starts_with_small(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && needle.iter().zip(hay).all(|(a, b)| a == b)
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Resumable, allocation-free JSON structure validator that captures `usage` objects.
#[derive(Debug)]
struct Tokenizer {
    /// Container stack: bit `d` set = the container at depth `d + 1` is an object.
    stack: u128,
    st: St,
    depth: u8,
    /// The current string is an object key.
    str_is_key: bool,
    /// Key matcher for the current key string (`K_*`).
    key: u8,
    /// Bytes of `KEY_NAMES[key]` matched so far.
    kpos: u8,
    /// Recognised key whose value is expected next (`K_*`, never a wildcard).
    pending: u8,
    /// Inside the object value of top-level `message` (SSE / Anthropic `message_start`).
    in_message: bool,
    /// Copying a `usage` object into `cap`.
    capturing: bool,
    /// Depth at which the captured object's value started (its closer returns here).
    cap_depth: u8,
    /// The capture exceeded `USAGE_CAPTURE_CAP`: ignore it.
    cap_overflow: bool,
    /// SSE mode: accept `[DONE]`, recognise top-level `error` and `message.usage`.
    sse: bool,
    /// A top-level `"error"` member with a non-null value was seen.
    error_seen: bool,
    /// At least one usage object with a recognised count was parsed.
    usage_seen: bool,
    usage: Usage,
    cap: Vec<u8>,
}

impl Tokenizer {
    fn new(sse: bool) -> Self {
        Tokenizer {
            stack: 0,
            st: St::Value,
            depth: 0,
            str_is_key: false,
            key: K_NONE,
            kpos: 0,
            pending: K_NONE,
            in_message: false,
            capturing: false,
            cap_depth: 0,
            cap_overflow: false,
            sse,
            error_seen: false,
            usage_seen: false,
            usage: Usage::default(),
            cap: Vec::new(),
        }
    }

    /// Prepare for a new payload, keeping the accumulated usage / error flags.
    fn reset_payload(&mut self) {
        self.stack = 0;
        self.st = St::Value;
        self.depth = 0;
        self.str_is_key = false;
        self.key = K_NONE;
        self.kpos = 0;
        self.pending = K_NONE;
        self.in_message = false;
        self.capturing = false;
        self.cap_overflow = false;
        self.cap.clear();
    }

    fn usage(&self) -> Option<Usage> {
        self.usage_seen.then_some(self.usage)
    }

    fn invalid(&self) -> bool {
        self.st == St::Invalid
    }

    /// Whether the bytes fed so far form exactly one complete JSON value (or `[DONE]`),
    /// assuming the payload ends here.
    fn complete(&self) -> bool {
        match self.st {
            St::Done | St::DoneEnd => true,
            St::Num(n) => self.depth == 0 && n.terminal(),
            _ => false,
        }
    }

    #[inline]
    fn top_is_object(&self) -> bool {
        self.depth > 0 && (self.stack >> (self.depth - 1)) & 1 == 1
    }

    #[inline]
    fn value_done(&mut self) {
        self.st = if self.depth == 0 {
            St::Done
        } else {
            St::CommaOrEnd
        };
    }

    #[inline]
    fn push(&mut self, object: bool) {
        if self.depth >= MAX_JSON_DEPTH {
            self.st = St::Invalid;
            return;
        }
        let bit = 1u128 << self.depth;
        if object {
            self.stack |= bit;
            self.st = St::KeyOrEnd;
        } else {
            self.stack &= !bit;
            self.st = St::ValueOrEnd;
        }
        self.depth += 1;
    }

    /// Close the innermost container (`object` tells which closer was seen).
    #[inline]
    fn close(&mut self, object: bool) {
        if self.depth == 0 || self.top_is_object() != object {
            self.st = St::Invalid;
            return;
        }
        self.depth -= 1;
        if self.depth < 2 {
            self.in_message = false;
        }
        self.value_done();
    }

    /// `}` at `seg[i]`: close the object and complete a capture that ends here.
    #[inline]
    fn close_object(&mut self, seg: &[u8], i: usize, cap_from: usize) {
        self.close(true);
        if self.capturing && self.st != St::Invalid && self.depth == self.cap_depth {
            self.capture(seg.get(cap_from..=i).unwrap_or_default());
            self.finish_capture();
        }
    }

    #[inline]
    fn key_start(&mut self) {
        self.st = St::Str;
        self.str_is_key = true;
        self.kpos = 0;
        self.key = if self.depth == 1 {
            K_ANY_TOP
        } else if self.depth == 2 && self.in_message {
            K_ANY_MSG
        } else {
            K_NONE
        };
    }

    /// Advance the key matcher over raw (unescaped) key bytes.
    fn match_key(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match self.key {
                K_NONE => return,
                K_ANY_TOP => {
                    self.key = match b {
                        b'u' => K_USAGE,
                        b'e' if self.sse => K_ERROR,
                        b'm' if self.sse => K_MESSAGE,
                        _ => K_NONE,
                    };
                    self.kpos = 1;
                }
                K_ANY_MSG => {
                    self.key = if b == b'u' { K_USAGE } else { K_NONE };
                    self.kpos = 1;
                }
                k => {
                    let name = KEY_NAMES.get(usize::from(k)).copied().unwrap_or(b"");
                    if name.get(usize::from(self.kpos)) == Some(&b) {
                        self.kpos += 1;
                    } else {
                        self.key = K_NONE;
                    }
                }
            }
        }
    }

    #[inline]
    fn end_string(&mut self) {
        if self.str_is_key {
            let k = self.key;
            let full = matches!(k, K_USAGE | K_ERROR | K_MESSAGE)
                && KEY_NAMES.get(usize::from(k)).map(|n| n.len()) == Some(usize::from(self.kpos));
            self.pending = if full { k } else { K_NONE };
            self.key = K_NONE;
            self.st = St::Colon;
        } else {
            self.value_done();
        }
    }

    /// Start of a value at byte `b` (position `i` in the current segment).
    #[inline(always)]
    fn value_start(&mut self, b: u8, i: usize, cap_from: &mut usize) {
        if is_ws(b) {
            return;
        }
        let pending = std::mem::replace(&mut self.pending, K_NONE);
        if pending == K_ERROR && b != b'n' {
            self.error_seen = true;
        }
        match b {
            b'{' => {
                if pending == K_USAGE && !self.capturing {
                    self.capturing = true;
                    self.cap_depth = self.depth;
                    self.cap_overflow = false;
                    self.cap.clear();
                    *cap_from = i;
                } else if pending == K_MESSAGE {
                    self.in_message = true;
                }
                self.push(true);
            }
            b'[' => {
                if self.depth == 0 && self.sse {
                    self.st = St::TopBracket;
                } else {
                    self.push(false);
                }
            }
            b'"' => {
                self.st = St::Str;
                self.str_is_key = false;
                self.key = K_NONE;
            }
            b'-' => self.st = St::Num(Num::Minus),
            b'0' => self.st = St::Num(Num::Zero),
            b'1'..=b'9' => self.st = St::Num(Num::Int),
            b't' => self.st = St::Lit(0, 1),
            b'f' => self.st = St::Lit(1, 1),
            b'n' => self.st = St::Lit(2, 1),
            _ => self.st = St::Invalid,
        }
    }

    /// Fast path right after a number / literal started at `seg[*i - 1]`: consume the rest of
    /// it if available, then what [`Self::fast_comma`] handles. Leaves any unusual case to
    /// the general loop.
    #[inline]
    fn scalar_fast(&mut self, seg: &[u8], i: &mut usize, cap_from: &mut usize) {
        match self.st {
            St::Num(mut num) => {
                while let Some(next) = seg.get(*i).and_then(|&c| num.step(c)) {
                    num = next;
                    *i += 1;
                }
                self.st = St::Num(num);
                if *i < seg.len() && num.terminal() {
                    self.value_done();
                    self.fast_comma(seg, i, cap_from);
                }
            }
            St::Lit(l, p) => {
                let lit = LITERALS.get(usize::from(l)).copied().unwrap_or(b"");
                let rest = lit.get(usize::from(p)..).unwrap_or_default();
                if starts_with_small(seg.get(*i..).unwrap_or_default(), rest) {
                    *i += rest.len();
                    self.value_done();
                    self.fast_comma(seg, i, cap_from);
                }
            }
            _ => {}
        }
    }

    /// After a value ended: consume immediately following closers (`}` / `]`, completing a
    /// capture if one ends there), then a `,` with the opening of the next member (`"` of a
    /// key, or `"` / `{"` of an array element). Straight-line code: it saves round trips
    /// through the general dispatch. Stops at anything else; the caller re-checks `self.st`.
    #[inline]
    fn fast_comma(&mut self, seg: &[u8], i: &mut usize, cap_from: &mut usize) {
        while self.st == St::CommaOrEnd {
            match seg.get(*i) {
                Some(b'}') => {
                    self.close_object(seg, *i, *cap_from);
                    if self.st == St::Invalid {
                        return;
                    }
                    *i += 1;
                }
                Some(b']') => {
                    self.close(false);
                    if self.st == St::Invalid {
                        return;
                    }
                    *i += 1;
                }
                Some(b',') => {
                    if self.top_is_object() {
                        if seg.get(*i + 1) == Some(&b'"') {
                            *i += 2;
                            self.key_start();
                        }
                    } else {
                        *i += 1;
                        self.st = St::Value;
                        self.open_fast(seg, i, cap_from);
                    }
                    return;
                }
                _ => return,
            }
        }
    }

    /// Expecting a value inside a container: consume a following `"` or `{"` opening.
    #[inline]
    fn open_fast(&mut self, seg: &[u8], i: &mut usize, cap_from: &mut usize) {
        if let Some(&c @ (b'"' | b'{')) = seg.get(*i) {
            self.value_start(c, *i, cap_from);
            *i += 1;
            if self.st == St::KeyOrEnd && seg.get(*i) == Some(&b'"') {
                *i += 1;
                self.key_start();
            }
        }
    }

    /// Append captured bytes, respecting the cap.
    fn capture(&mut self, bytes: &[u8]) {
        if self.cap_overflow {
            return;
        }
        if self.cap.len() + bytes.len() > USAGE_CAPTURE_CAP {
            self.cap_overflow = true;
            self.cap.clear();
            return;
        }
        if self.cap.capacity() == 0 {
            self.cap.reserve(256.max(bytes.len()));
        }
        self.cap.extend_from_slice(bytes);
    }

    /// The captured `usage` object is complete: parse and merge it.
    fn finish_capture(&mut self) {
        self.capturing = false;
        if !self.cap_overflow {
            if let Ok(raw) = serde_json::from_slice::<RawUsage>(&self.cap) {
                let input = raw.input_tokens.or(raw.prompt_tokens);
                let output = raw.output_tokens.or(raw.completion_tokens);
                if let Some(v) = input {
                    self.usage.input_tokens = v;
                }
                if let Some(v) = output {
                    self.usage.output_tokens = v;
                }
                if input.is_some() || output.is_some() {
                    self.usage_seen = true;
                }
            }
        }
        self.cap_overflow = false;
        self.cap.clear();
    }

    /// Feed a run of payload bytes. Stops early (state `Invalid`) at the first invalid byte.
    fn run(&mut self, seg: &[u8]) {
        let n = seg.len();
        let mut i = 0usize;
        // Start of the not-yet-copied part of a capture within `seg`.
        let mut cap_from = 0usize;
        'bytes: while let Some(&b) = seg.get(i) {
            match self.st {
                St::Str => {
                    // Hot loop: stays here across `"key":value,"key":value` sequences so
                    // the common path needs no state dispatch.
                    loop {
                        let start = i;
                        i = scan_string(seg, i);
                        if self.key != K_NONE {
                            self.match_key(seg.get(start..i).unwrap_or_default());
                        }
                        let Some(&c) = seg.get(i) else {
                            break 'bytes;
                        };
                        i += 1;
                        match c {
                            b'"' if self.str_is_key => {
                                self.end_string();
                                // `:` and the value, when they follow immediately.
                                if seg.get(i) != Some(&b':') {
                                    break;
                                }
                                i += 1;
                                self.st = St::Value;
                                let Some(&v) = seg.get(i) else { break };
                                self.value_start(v, i, &mut cap_from);
                                i += 1;
                                match self.st {
                                    St::Str => continue,
                                    St::Num(_) | St::Lit(..) => {
                                        self.scalar_fast(seg, &mut i, &mut cap_from);
                                        if self.st == St::Str {
                                            continue;
                                        }
                                    }
                                    St::KeyOrEnd if seg.get(i) == Some(&b'"') => {
                                        i += 1;
                                        self.key_start();
                                        continue;
                                    }
                                    St::ValueOrEnd => {
                                        self.open_fast(seg, &mut i, &mut cap_from);
                                        if self.st == St::Str {
                                            continue;
                                        }
                                    }
                                    St::Invalid => return,
                                    _ => {}
                                }
                                break;
                            }
                            b'"' => {
                                self.value_done();
                                self.fast_comma(seg, &mut i, &mut cap_from);
                                if self.st == St::Str {
                                    continue;
                                }
                                break;
                            }
                            b'\\' => {
                                self.key = K_NONE;
                                self.st = St::Esc;
                                break;
                            }
                            _ => {
                                self.st = St::Invalid;
                                return;
                            }
                        }
                    }
                    continue;
                }
                St::Esc => match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.st = St::Str,
                    b'u' => self.st = St::Hex(4),
                    _ => {
                        self.st = St::Invalid;
                        return;
                    }
                },
                St::Hex(k) => {
                    if !b.is_ascii_hexdigit() {
                        self.st = St::Invalid;
                        return;
                    }
                    self.st = if k <= 1 { St::Str } else { St::Hex(k - 1) };
                }
                St::Value => self.value_start(b, i, &mut cap_from),
                St::ValueOrEnd => {
                    if b == b']' {
                        self.close(false);
                    } else {
                        self.value_start(b, i, &mut cap_from);
                    }
                }
                St::KeyOrEnd | St::Key => match b {
                    b'"' => self.key_start(),
                    b'}' if self.st == St::KeyOrEnd => self.close_object(seg, i, cap_from),
                    _ if is_ws(b) => {}
                    _ => {
                        self.st = St::Invalid;
                        return;
                    }
                },
                St::Colon => match b {
                    b':' => self.st = St::Value,
                    _ if is_ws(b) => {}
                    _ => {
                        self.st = St::Invalid;
                        return;
                    }
                },
                St::CommaOrEnd => match b {
                    b',' => {
                        self.st = if self.top_is_object() {
                            St::Key
                        } else {
                            St::Value
                        };
                    }
                    b'}' => self.close_object(seg, i, cap_from),
                    b']' => self.close(false),
                    _ if is_ws(b) => {}
                    _ => {
                        self.st = St::Invalid;
                        return;
                    }
                },
                St::Num(mut num) => {
                    // Consume the whole run of number bytes available.
                    while let Some(next) = seg.get(i).and_then(|&c| num.step(c)) {
                        num = next;
                        i += 1;
                    }
                    self.st = St::Num(num);
                    if i >= n {
                        break;
                    }
                    if !num.terminal() {
                        self.st = St::Invalid;
                        return;
                    }
                    // The number ends before `seg[i]`, which is examined next.
                    self.value_done();
                    self.fast_comma(seg, &mut i, &mut cap_from);
                    continue;
                }
                St::Lit(l, p) => {
                    let lit = LITERALS.get(usize::from(l)).copied().unwrap_or(b"");
                    let rest = lit.get(usize::from(p)..).unwrap_or_default();
                    if rest.len() > 1 && starts_with_small(seg.get(i..).unwrap_or_default(), rest) {
                        // Fast path: the rest of the literal is all here.
                        i += rest.len();
                        self.value_done();
                        self.fast_comma(seg, &mut i, &mut cap_from);
                        continue;
                    }
                    if lit.get(usize::from(p)) != Some(&b) {
                        self.st = St::Invalid;
                        return;
                    }
                    if usize::from(p) + 1 == lit.len() {
                        self.value_done();
                    } else {
                        self.st = St::Lit(l, p + 1);
                    }
                }
                St::TopBracket => {
                    if b == b'D' {
                        self.st = St::DoneLit(2);
                    } else {
                        // A plain top-level array: re-examine `b` as its first element.
                        self.push(false);
                        continue;
                    }
                }
                St::DoneLit(p) => {
                    if DONE.get(usize::from(p)) != Some(&b) {
                        self.st = St::Invalid;
                        return;
                    }
                    self.st = if usize::from(p) + 1 == DONE.len() {
                        St::DoneEnd
                    } else {
                        St::DoneLit(p + 1)
                    };
                }
                St::Done | St::DoneEnd => {
                    if !is_ws(b) {
                        self.st = St::Invalid;
                        return;
                    }
                }
                St::Invalid => return,
            }
            if self.st == St::Invalid {
                return;
            }
            i += 1;
        }
        if self.capturing {
            self.capture(seg.get(cap_from..).unwrap_or_default());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Non-stream JSON
// ---------------------------------------------------------------------------------------------

/// Incremental scanner for a non-stream JSON response body (OpenAI chat / completions /
/// embeddings, Anthropic messages).
///
/// Contract:
/// * [`feed`](Self::feed) accepts the body in arbitrary chunks; results do not depend on how
///   the body is split. It never panics and never copies the body, except the value of the
///   top-level `usage` member (at most [`USAGE_CAPTURE_CAP`] bytes), which is parsed with
///   `serde_json` when its closing brace arrives.
/// * Only the **top-level** `usage` member counts; `usage` keys nested deeper (e.g. inside
///   `choices`) are ignored.
/// * Once the body is found not to be JSON, or after the top-level value is complete, further
///   bytes are ignored; a usage found before that point is kept.
#[derive(Debug)]
pub struct JsonUsageScanner {
    tok: Tokenizer,
}

impl Default for JsonUsageScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonUsageScanner {
    /// A scanner positioned at the start of a body. Does not allocate.
    pub fn new() -> Self {
        JsonUsageScanner {
            tok: Tokenizer::new(false),
        }
    }

    /// Observe the next chunk of the body. O(chunk length); never panics.
    pub fn feed(&mut self, chunk: &[u8]) {
        if matches!(self.tok.st, St::Invalid | St::Done) {
            return;
        }
        self.tok.run(chunk);
    }

    /// The usage from the top-level `usage` object, once that object has been seen complete
    /// and parsed, and contained `prompt_tokens`/`input_tokens` and/or
    /// `completion_tokens`/`output_tokens` (a missing count is 0). `None` when the body has no
    /// top-level usage object (yet), or it is `null`, not an object, has a count that is not a
    /// `u64` or a duplicated count field, or exceeds [`USAGE_CAPTURE_CAP`].
    pub fn usage(&self) -> Option<Usage> {
        self.tok.usage()
    }

    /// Whether the bytes fed so far cannot begin a JSON value (the body is not JSON).
    /// Bytes after a complete top-level value are not examined.
    pub fn is_invalid(&self) -> bool {
        self.tok.invalid()
    }

    /// Whether the bytes fed so far form exactly one complete JSON value, assuming the body
    /// ends here. False for an empty or truncated body.
    pub fn is_complete(&self) -> bool {
        self.tok.complete()
    }
}

// ---------------------------------------------------------------------------------------------
// SSE
// ---------------------------------------------------------------------------------------------

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// At the first byte of a line.
    Start,
    /// Inside a field name; bytes of the name matched so far.
    Name(Field, u8),
    /// Right after `field:`; one optional space is skipped.
    AfterColon(Field),
    /// Inside a `data` value (fed to the tokenizer).
    Data,
    /// Inside an `event` value (matched against interesting names).
    Event,
    /// Inside a comment, `id` or `retry` value.
    Skip,
}

const E_NONE: u8 = 0;
const E_STOP: u8 = 1;
const E_ERROR: u8 = 2;
const E_ANY: u8 = 3;
const EVENT_NAMES: [&[u8]; 3] = [b"", b"message_stop", b"error"];
const BOM: &[u8] = b"\xEF\xBB\xBF";
const BOM_DONE: u8 = 3;

/// Incremental observer of a `text/event-stream` response body.
///
/// Contract:
/// * [`feed`](Self::feed) accepts the body in arbitrary chunks (a chunk may split a line, a
///   JSON token, a UTF-8 character or a `\r\n` pair). All results (including which error, and
///   when relative to the byte stream) are identical however the body is split.
/// * Work per chunk is a single linear pass (`memchr` for line ends, a byte-resumable JSON
///   tokenizer for `data` payloads). No line or payload bytes are buffered; only the value of
///   a `usage` object (capped at [`USAGE_CAPTURE_CAP`]) is copied and parsed with `serde_json`.
/// * Line terminators `\n`, `\r\n` and `\r` are accepted; a blank line ends an event. One
///   space after `field:` is optional; one leading UTF-8 BOM is ignored. The `data` lines of one event are joined with `\n`, so
///   a JSON payload may span several `data` lines.
/// * Never panics on any input.
#[derive(Debug)]
pub struct SseScanner {
    tok: Tokenizer,
    events: u64,
    /// Bytes of the current line seen so far (excluding the terminator).
    line_len: usize,
    line: Line,
    /// The previous line ended with `\r`: a following `\n` belongs to it.
    after_cr: bool,
    /// The current event has at least one `data` line.
    has_data: bool,
    /// Event name matcher (`E_*`) and bytes matched.
    ev: u8,
    ev_pos: u8,
    /// Bytes of a leading UTF-8 BOM matched; `BOM_DONE` once past the stream start.
    bom: u8,
    finished: bool,
    error_event: bool,
    err: Option<SseError>,
}

impl Default for SseScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl SseScanner {
    /// A scanner positioned at the start of a stream. Does not allocate.
    pub fn new() -> Self {
        SseScanner {
            tok: Tokenizer::new(true),
            events: 0,
            line_len: 0,
            line: Line::Start,
            after_cr: false,
            has_data: false,
            ev: E_NONE,
            ev_pos: 0,
            bom: 0,
            finished: false,
            error_event: false,
            err: None,
        }
    }

    /// Observe the next chunk.
    ///
    /// Returns `Err` once the stream is known to be broken (see [`SseError`]); the bytes after
    /// the offending one are not examined, and every later call returns the same error without
    /// looking at its chunk. `Ok` means "no problem detected so far" — a stream that simply
    /// stops early is detected with [`finished`](Self::finished), not here.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), SseError> {
        if let Some(e) = &self.err {
            return Err(e.clone());
        }
        let r = self.feed_inner(chunk);
        if let Err(e) = &r {
            self.err = Some(e.clone());
        }
        r
    }

    /// Usage seen so far, merged field by field in stream order: OpenAI's final chunk
    /// (`"usage":{...}`; `"usage":null` on other chunks is ignored), Anthropic's
    /// `message_start` (`message.usage.input_tokens`) and `message_delta`
    /// (`usage.output_tokens`). A later count replaces an earlier one of the same kind.
    /// `None` until a usage object with at least one recognised count has been parsed; usage
    /// objects that are malformed (see [`JsonUsageScanner::usage`]) are skipped.
    pub fn usage(&self) -> Option<Usage> {
        self.tok.usage()
    }

    /// True once a `data: [DONE]` line (terminated by a line end) or an
    /// `event: message_stop` line was seen: the upstream completed the stream. Stays true.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// True once a `data` payload was a top-level JSON object with a non-null `error` member
    /// (OpenAI `data: {"error":{...}}`, Anthropic `{"type":"error","error":{...}}`), or an
    /// `event: error` line was seen. Stays true.
    pub fn saw_error_event(&self) -> bool {
        self.error_event || self.tok.error_seen
    }

    /// Number of complete events observed: blocks with at least one `data` line whose
    /// terminating blank line has been seen (comment-only blocks do not count).
    pub fn events(&self) -> u64 {
        self.events
    }

    fn feed_inner(&mut self, chunk: &[u8]) -> Result<(), SseError> {
        let n = chunk.len();
        let mut i = 0usize;
        while let Some(&b) = chunk.get(i) {
            if self.bom != BOM_DONE {
                // One leading U+FEFF is ignored (SSE spec).
                if BOM.get(usize::from(self.bom)) == Some(&b) {
                    self.bom += 1;
                    i += 1;
                    continue;
                }
                if self.bom != 0 {
                    return Err(SseError::Garbage);
                }
                self.bom = BOM_DONE;
            }
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    i += 1;
                    continue;
                }
            }
            match self.line {
                Line::Start if matches!(b, b'd' | b'e') => {
                    // Fast path: a whole `data:` / `event:` prefix in this chunk.
                    let (f, name): (Field, &[u8]) = if b == b'd' {
                        (Field::Data, b"data:")
                    } else {
                        (Field::Event, b"event:")
                    };
                    let rest = chunk.get(i..).unwrap_or_default();
                    if starts_with_small(rest, name) {
                        i += name.len();
                        self.line_len = name.len();
                        match chunk.get(i) {
                            None => self.line = Line::AfterColon(f),
                            Some(&c) => {
                                if c == b' ' {
                                    i += 1;
                                    self.line_len += 1;
                                }
                                self.field_value_start(f);
                            }
                        }
                    } else {
                        i += 1;
                        self.line_len = 1;
                        self.line = Line::Name(f, 1);
                    }
                }
                Line::Start => {
                    i += 1;
                    self.line_len = 1;
                    self.line = match b {
                        b'\n' | b'\r' => {
                            self.line_len = 0;
                            self.after_cr = b == b'\r';
                            self.dispatch()?;
                            Line::Start
                        }
                        b':' => Line::Skip,
                        b'd' => Line::Name(Field::Data, 1),
                        b'e' => Line::Name(Field::Event, 1),
                        b'i' => Line::Name(Field::Id, 1),
                        b'r' => Line::Name(Field::Retry, 1),
                        _ => return Err(SseError::Garbage),
                    };
                }
                Line::Name(f, k) => {
                    i += 1;
                    self.line_len += 1;
                    let name = f.name();
                    if usize::from(k) < name.len() {
                        if name.get(usize::from(k)) != Some(&b) {
                            return Err(SseError::Garbage);
                        }
                        self.line = Line::Name(f, k + 1);
                    } else {
                        match b {
                            b':' => self.line = Line::AfterColon(f),
                            b'\n' | b'\r' => {
                                // A field name alone: the field with an empty value.
                                self.field_value_start(f);
                                self.end_line(b)?;
                            }
                            _ => return Err(SseError::Garbage),
                        }
                    }
                }
                Line::AfterColon(f) => {
                    if b == b' ' {
                        i += 1;
                        self.line_len += 1;
                    }
                    self.field_value_start(f);
                }
                Line::Data | Line::Event | Line::Skip => {
                    let rest = chunk.get(i..).unwrap_or_default();
                    let budget = MAX_SSE_LINE.saturating_sub(self.line_len);
                    let window = rest.get(..rest.len().min(budget + 1)).unwrap_or(rest);
                    match memchr2(b'\n', b'\r', window) {
                        Some(p) => {
                            self.value_bytes(rest.get(..p).unwrap_or_default())?;
                            let term = rest.get(p).copied().unwrap_or(b'\n');
                            i += p + 1;
                            self.end_line(term)?;
                        }
                        None if window.len() > budget => {
                            self.value_bytes(rest.get(..budget).unwrap_or_default())?;
                            return Err(SseError::LineTooLong);
                        }
                        None => {
                            self.value_bytes(rest)?;
                            self.line_len += rest.len();
                            i = n;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The value of field `f` starts (after the colon and optional space).
    fn field_value_start(&mut self, f: Field) {
        self.line = match f {
            Field::Data => {
                self.has_data = true;
                Line::Data
            }
            Field::Event => {
                self.ev = E_ANY;
                self.ev_pos = 0;
                Line::Event
            }
            Field::Id | Field::Retry => Line::Skip,
        };
    }

    /// Bytes of the current line's value (never containing a line terminator).
    fn value_bytes(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        match self.line {
            Line::Data => {
                self.tok.run(bytes);
                if self.tok.invalid() {
                    return Err(SseError::InvalidData);
                }
            }
            Line::Event => {
                for &b in bytes {
                    match self.ev {
                        E_NONE => break,
                        E_ANY => {
                            self.ev = match b {
                                b'm' => E_STOP,
                                b'e' => E_ERROR,
                                _ => E_NONE,
                            };
                            self.ev_pos = 1;
                        }
                        e => {
                            let name = EVENT_NAMES.get(usize::from(e)).copied().unwrap_or(b"");
                            if name.get(usize::from(self.ev_pos)) == Some(&b) {
                                self.ev_pos += 1;
                            } else {
                                self.ev = E_NONE;
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The current (non-blank) line ended with terminator byte `term`.
    fn end_line(&mut self, term: u8) -> Result<(), SseError> {
        match self.line {
            Line::Data => {
                // Consecutive data lines are joined with '\n': JSON whitespace. Skipped when
                // the payload is already complete (whitespace cannot change that state).
                if !matches!(self.tok.st, St::Done | St::DoneEnd) {
                    self.tok.run(b"\n");
                }
                if self.tok.invalid() {
                    return Err(SseError::InvalidData);
                }
                if self.tok.st == St::DoneEnd {
                    self.finished = true;
                }
            }
            Line::Event => {
                let full = EVENT_NAMES.get(usize::from(self.ev)).map(|n| n.len())
                    == Some(usize::from(self.ev_pos));
                match self.ev {
                    E_STOP if full => self.finished = true,
                    E_ERROR if full => self.error_event = true,
                    _ => {}
                }
                self.ev = E_NONE;
            }
            _ => {}
        }
        self.line = Line::Start;
        self.line_len = 0;
        self.after_cr = term == b'\r';
        Ok(())
    }

    /// A blank line: the current event (if any) is complete.
    fn dispatch(&mut self) -> Result<(), SseError> {
        if self.has_data {
            if !self.tok.complete() {
                return Err(SseError::InvalidData);
            }
            self.events += 1;
            self.has_data = false;
        }
        self.tok.reset_payload();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Error event
// ---------------------------------------------------------------------------------------------

/// Append `s` to `out` as a JSON string literal (quotes included).
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            // `b` < 0x20: both nibbles index the 16-entry table.
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// The terminal SSE event the gateway sends when a stream breaks after its first byte:
///
/// `data: {"error":{"message":<message>,"type":<error_type>,"param":null,"code":<code>}}\n\n`
///
/// All three arguments are emitted as JSON strings with `"`, `\` and control characters
/// (including `\n` / `\r`, which would otherwise split the SSE line) escaped, so the payload is
/// always one valid JSON line. The output starts with a blank-line-free `data:` line and ends
/// with `\n\n`; if the client may be in the middle of an event, the caller should send a `\n\n`
/// first.
pub fn sse_error_event(message: &str, error_type: &str, code: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len() + error_type.len() + code.len());
    out.extend_from_slice(b"data: {\"error\":{\"message\":");
    push_json_str(&mut out, message);
    out.extend_from_slice(b",\"type\":");
    push_json_str(&mut out, error_type);
    out.extend_from_slice(b",\"param\":null,\"code\":");
    push_json_str(&mut out, code);
    out.extend_from_slice(b"}}\n\n");
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
        Some(Usage {
            input_tokens,
            output_tokens,
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
            "data: \n\n",
            "data\n\n",
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
        ] {
            let o = split_invariant(good.as_bytes());
            assert_eq!((o.result, o.events), (Ok(()), 1), "{good:?}");
        }
        // Too deep.
        let deep = format!("data: {}{}\n\n", "[".repeat(200), "]".repeat(200));
        assert_eq!(whole(deep.as_bytes()).result, Err(SseError::InvalidData));
        let ok = format!("data: {}{}\n\n", "[".repeat(128), "]".repeat(128));
        assert_eq!(whole(ok.as_bytes()).result, Ok(()));
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
        // Capture larger than the cap is ignored; a later normal one is used.
        let big = format!(
            "data: {{\"usage\":{{\"prompt_tokens\":1,\"pad\":\"{}\"}}}}\n\n",
            "x".repeat(USAGE_CAPTURE_CAP)
        );
        assert_eq!(whole(big.as_bytes()).usage, None);
        let big2 = format!("{big}data: {{\"usage\":{{\"prompt_tokens\":2}}}}\n\n");
        assert_eq!(whole(big2.as_bytes()).usage, u(2, 0));
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
        // Escaped key is not recognised (documented).
        assert_eq!(
            whole(b"data: {\"us\\u0061ge\":{\"prompt_tokens\":1}}\n\n").usage,
            None
        );
        // Usage committed as soon as its object closes, even if the payload breaks later.
        let o = whole(b"data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}, oops\n\n");
        assert_eq!((o.result, o.usage), (Err(SseError::InvalidData), u(5, 6)));
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

    #[test]
    fn scanner_is_small() {
        assert!(std::mem::size_of::<SseScanner>() <= 160);
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

    fn serde_valid(payload: &[u8]) -> Option<bool> {
        match serde_json::from_slice::<serde::de::IgnoredAny>(payload) {
            Ok(_) => Some(true),
            // Numbers out of f64 range are a serde_json limit, not a syntax question.
            Err(e) if e.to_string().contains("out of range") => None,
            Err(_) => Some(false),
        }
    }

    /// The tokenizer and serde_json agree on validity, directly and through SSE framing.
    #[test]
    fn tokenizer_matches_serde_json() {
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
            for sse in [false, true] {
                let mut t = Tokenizer::new(sse);
                for c in random_chunks(&mut rng, &p, 9) {
                    t.run(c);
                }
                assert_eq!(
                    !t.invalid() && t.complete(),
                    expect,
                    "sse={sse} payload {:?}",
                    String::from_utf8_lossy(&p)
                );
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
            let expect_result = if expect {
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
        assert_eq!(
            verdict(&[b"[1,2]", b"ignored after the value"]),
            (false, true)
        );
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
                    for f in ["prompt_tokens", "completion_tokens", "input_tokens", "x"] {
                        if rng.below(2) == 0 {
                            parts.push(format!("\"{f}\":{}", rng.below(100_000)));
                        }
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
            let expect = v.get("usage").filter(|x| x.is_object()).and_then(|x| {
                let raw: RawUsage = serde_json::from_value(x.clone()).ok()?;
                let i = raw.input_tokens.or(raw.prompt_tokens);
                let o = raw.output_tokens.or(raw.completion_tokens);
                (i.is_some() || o.is_some()).then(|| Usage {
                    input_tokens: i.unwrap_or(0),
                    output_tokens: o.unwrap_or(0),
                })
            });
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
        const TOKENS: [&str; 22] = [
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
}
