//! Small JSON helpers shared by the translators: borrowed strings, raw values, a top-level
//! object splitter and an output writer that copies JSON string literals without re-escaping.
//!
//! The translators read with `serde_json` into borrowed structs (`&RawValue` for anything
//! passed through) and write their output by hand: a JSON string literal from the input
//! (`"text": "..."`) is valid verbatim in the output, so it is copied, never decoded and
//! re-encoded.

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A JSON string, borrowed from the input when it has no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub Cow<'a, str>);

impl Str<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Str<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Str(Cow::Owned(v)))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor).map(|s| Str(s.0))
    }
}

/// The members of a JSON object, in input order, values unparsed.
pub(crate) struct Obj<'a>(pub Vec<(Str<'a>, &'a RawValue)>);

struct ObjVisitor;

impl<'de> Visitor<'de> for ObjVisitor {
    type Value = Obj<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
        while let Some(k) = map.next_key::<Str<'de>>()? {
            let val: &'de RawValue = map.next_value()?;
            v.push((k, val));
        }
        Ok(Obj(v))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Obj<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjVisitor).map(|o| Obj(o.0))
    }
}

/// The raw text of a value, without surrounding whitespace.
#[inline]
pub(crate) fn text(raw: &RawValue) -> &str {
    raw.get()
        .trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// Whether a raw value is a JSON string literal.
#[inline]
pub(crate) fn is_str(raw: &RawValue) -> bool {
    text(raw).starts_with('"')
}

/// Whether a raw value is a JSON object.
#[inline]
pub(crate) fn is_obj(raw: &RawValue) -> bool {
    text(raw).starts_with('{')
}

/// Whether a raw value is `null`.
#[inline]
pub(crate) fn is_null(raw: &RawValue) -> bool {
    text(raw) == "null"
}

/// The escaped characters between the quotes of a raw string literal (`None` if not a
/// string). Valid inside any other JSON string literal.
#[inline]
pub(crate) fn inner(raw: &RawValue) -> Option<&str> {
    let t = text(raw);
    t.strip_prefix('"')?.strip_suffix('"')
}

/// Append `s` as a JSON string literal.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_escaped(out, s);
    out.push(b'"');
}

/// Append the JSON-escaped characters of `s` (no quotes).
pub(crate) fn push_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
}

/// Append a decimal number.
#[inline]
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Append a finite float the way `serde_json` writes it (`null` for a non-finite one).
pub(crate) fn push_f64(out: &mut Vec<u8>, f: f64) {
    if serde_json::to_writer(&mut *out, &f).is_err() {
        out.extend_from_slice(b"null");
    }
}

/// Unix time in seconds (0 if the clock is before 1970).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Token counts as both dialects report them (absent fields are 0).
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
pub(crate) struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

/// OpenAI `usage`.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
pub(crate) struct OpenAiUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_details: Option<OpenAiPromptDetails>,
}

/// OpenAI `usage.prompt_tokens_details`.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
pub(crate) struct OpenAiPromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

impl OpenAiUsage {
    /// In the gateway's partition: input = prompt − cached.
    pub(crate) fn tokens(&self) -> super::TokenUsage {
        let prompt = self.prompt_tokens.unwrap_or(0);
        let cached = self
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(prompt);
        super::TokenUsage {
            input: prompt - cached,
            output: self.completion_tokens.unwrap_or(0),
            cache_read: cached,
            cache_write: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let s = "a\"b\\c\nd\re\tf\u{1}g\u{7f}h\u{e9}\u{1F600}";
        let mut out = Vec::new();
        push_str(&mut out, s);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, s);
        let mut n = Vec::new();
        for v in [0, 7, 10, 12345, u64::MAX] {
            n.clear();
            push_u64(&mut n, v);
            assert_eq!(n, v.to_string().as_bytes());
        }
    }

    #[test]
    fn obj_and_str() {
        let o: Obj = serde_json::from_str(r#" {"a\u0062": 1, "c": "x\n", "a":[1]} "#).unwrap();
        let keys: Vec<&str> = o.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ab", "c", "a"]);
        assert_eq!(inner(o.0[1].1), Some("x\\n"));
        assert!(serde_json::from_str::<Obj>("[1]").is_err());
        assert!(serde_json::from_str::<Obj>("{\"a\":1} x").is_err());
    }
}
