//! The building blocks every wire type is made of: strings borrowed from the input, JSON
//! values carried verbatim, values parsed only when a mapping needs them, and the unknown
//! members of an object.
//!
//! Why not serde's tagged enums and `#[serde(flatten)]` for reading: both buffer the input
//! into serde's private `Content` tree, which cannot hand out a `&RawValue` (serde_json
//! needs its own deserializer for that) and allocates per value. So a wire type is a struct
//! whose discriminator (`type`, `role`) is a [`Str`] field, whose polymorphic members
//! (string-or-array content, string-or-object choices) are [`Lazy`], and whose unknown
//! members are a [`Rest`] that the reader of a top-level body fills from [`Members`] and
//! that is written back flattened.

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A JSON string, borrowed from the input when it has no escapes; written as a JSON string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Str<'a>(pub Cow<'a, str>);

impl<'a> Str<'a> {
    /// The decoded string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A string the gateway writes.
    #[must_use]
    pub const fn from_static(s: &'static str) -> Str<'static> {
        Str(Cow::Borrowed(s))
    }
}

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Self {
        Str(Cow::Borrowed(s))
    }
}

impl From<String> for Str<'_> {
    fn from(s: String) -> Self {
        Str(Cow::Owned(s))
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

impl Serialize for Str<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A JSON value the gateway does not decode: read as the input's bytes and written back
/// byte for byte, so text, ids and tool arguments reach the other side exactly as sent.
#[derive(Debug, Clone)]
pub enum Raw<'a> {
    /// A value of the input, verbatim (reading always gives this).
    Borrowed(&'a RawValue),
    /// A value the gateway assembled from verbatim pieces (e.g. joined text).
    Owned(Box<RawValue>),
    /// A string the gateway encodes (a generated id, a serialized tool input).
    Text(Cow<'a, str>),
    /// `null`.
    Null,
}

impl<'a> Raw<'a> {
    /// A string the gateway writes.
    #[must_use]
    pub const fn text(s: &'a str) -> Self {
        Raw::Text(Cow::Borrowed(s))
    }

    /// The input's JSON text of this value, without surrounding whitespace (`None` for a
    /// value the gateway made that is not raw JSON).
    #[must_use]
    pub fn json(&self) -> Option<&str> {
        match self {
            Raw::Borrowed(r) => Some(trim(r.get())),
            Raw::Owned(r) => Some(trim(r.get())),
            Raw::Text(_) | Raw::Null => None,
        }
    }

    /// Whether this is a JSON string.
    #[must_use]
    pub fn is_str(&self) -> bool {
        match self {
            Raw::Text(_) => true,
            Raw::Null => false,
            _ => self.json().is_some_and(|t| t.starts_with('"')),
        }
    }

    /// Whether this is a JSON object.
    #[must_use]
    pub fn is_obj(&self) -> bool {
        self.json().is_some_and(|t| t.starts_with('{'))
    }

    /// Whether this is `null`.
    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(self, Raw::Null) || self.json() == Some("null")
    }

    /// Whether this is the empty string `""` (as the input wrote it).
    #[must_use]
    pub fn is_empty_str(&self) -> bool {
        match self {
            Raw::Text(t) => t.is_empty(),
            _ => self.json() == Some("\"\""),
        }
    }

    /// The escaped characters between the quotes of a raw string (`None` if not a raw
    /// string): valid inside any other JSON string literal.
    #[must_use]
    pub fn inner(&self) -> Option<&str> {
        self.json()?.strip_prefix('"')?.strip_suffix('"')
    }

    /// [`Raw::inner`] of a value read from the input, borrowed for as long as the input.
    #[must_use]
    pub fn borrowed_inner(&self) -> Option<&'a str> {
        self.borrowed_string().map(inner_of)
    }

    /// A JSON string read from the input, as its raw value.
    #[must_use]
    pub fn borrowed_string(&self) -> Option<&'a RawValue> {
        match self {
            Raw::Borrowed(r) if trim(r.get()).starts_with('"') => Some(r),
            _ => None,
        }
    }

    /// A JSON string whose content is the contents of the `strings` (raw JSON strings)
    /// joined by `sep` (escaped): the input's text verbatim, never decoded and re-encoded.
    /// One string is passed on as it is.
    #[must_use]
    pub fn joined(strings: &[&'a RawValue], sep: &str) -> Raw<'a> {
        if let [one] = strings {
            return Raw::Borrowed(one);
        }
        let len: usize = strings.iter().map(|r| r.get().len() + sep.len()).sum();
        let mut s = String::with_capacity(len + 2);
        s.push('"');
        for (i, r) in strings.iter().enumerate() {
            if i > 0 {
                s.push_str(sep);
            }
            s.push_str(inner_of(r));
        }
        s.push('"');
        match RawValue::from_string(s) {
            Ok(r) => Raw::Owned(r),
            // Unreachable for JSON strings; an empty string keeps the output valid.
            Err(_) => Raw::text(""),
        }
    }

    /// A constant JSON value (e.g. a default schema); `null` if `json` is not JSON.
    #[must_use]
    pub fn constant(json: &'static str) -> Raw<'static> {
        serde_json::from_str::<&'static RawValue>(json).map_or(Raw::Null, Raw::Borrowed)
    }

    /// The value parsed as `T` (`None` for a value the gateway made).
    ///
    /// # Errors
    /// The value is not a `T`.
    pub fn parse<T: Deserialize<'a>>(&self) -> Option<Result<T, serde_json::Error>> {
        match self {
            Raw::Borrowed(r) => Some(serde_json::from_str(r.get())),
            _ => None,
        }
    }
}

/// The escaped characters between the quotes of a raw JSON string (the whole text if it is
/// not one).
#[must_use]
pub fn inner_of(r: &RawValue) -> &str {
    let t = trim(r.get());
    t.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(t)
}

fn trim(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(Raw::Borrowed)
    }
}

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Raw::Borrowed(r) => r.serialize(s),
            Raw::Owned(r) => r.serialize(s),
            Raw::Text(t) => s.serialize_str(t),
            Raw::Null => s.serialize_unit(),
        }
    }
}

/// Reads a JSON string as [`Raw::Text`] (decoded; errors as for [`Str`]), for a member the
/// gateway reads as text but may write verbatim (`#[serde(deserialize_with = ...)]`).
///
/// # Errors
/// The value is not a string.
pub fn string<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Raw<'a>, D::Error> {
    Str::deserialize(d).map(|s| Raw::Text(s.0))
}

/// A member read as raw JSON and parsed only where a mapping needs it (so an error names
/// the member at fault), or a value the gateway built to write.
#[derive(Debug, Clone)]
pub enum Lazy<'a, T> {
    /// As read (or a raw value the gateway passes on).
    Raw(Raw<'a>),
    /// As built.
    Value(T),
}

impl<'a, T> Lazy<'a, T> {
    /// The raw value as read (`None` for a built value).
    #[must_use]
    pub fn raw(&self) -> Option<&Raw<'a>> {
        match self {
            Lazy::Raw(r) => Some(r),
            Lazy::Value(_) => None,
        }
    }
}

impl<T: Default> Default for Lazy<'_, T> {
    fn default() -> Self {
        Lazy::Value(T::default())
    }
}

impl<'de: 'a, 'a, T> Deserialize<'de> for Lazy<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Raw::deserialize(d).map(Lazy::Raw)
    }
}

impl<T: Serialize> Serialize for Lazy<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Lazy::Raw(r) => r.serialize(s),
            Lazy::Value(v) => v.serialize(s),
        }
    }
}

/// A JSON array: read into a `Vec`, written from a borrowed slice when the gateway builds
/// one per event (no allocation).
#[derive(Debug, Clone)]
pub enum List<'a, T> {
    /// Borrowed elements.
    Borrowed(&'a [T]),
    /// Owned elements (reading gives this).
    Owned(Vec<T>),
}

impl<T> std::ops::Deref for List<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            List::Borrowed(s) => s,
            List::Owned(v) => v,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<'_, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::deserialize(d).map(List::Owned)
    }
}

impl<T: Serialize> Serialize for List<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// The members of an object that its type does not name, in input order, verbatim; written
/// back flattened into the object. Filled by the reader of a top-level body (see
/// [`Members`]); nested objects drop their unknown members (no mapping passes them on).
#[derive(Debug, Clone, Default)]
pub struct Rest<'a>(pub Vec<(Str<'a>, &'a RawValue)>);

impl Rest<'_> {
    /// No members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Rest<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The members of a JSON object, in input order, values unparsed: how a top-level request
/// is read, so that each member is parsed on its own and an error names it.
pub struct Members<'a>(pub Vec<(Str<'a>, &'a RawValue)>);

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
        while let Some(k) = map.next_key::<Str<'de>>()? {
            let val: &'de RawValue = map.next_value()?;
            v.push((k, val));
        }
        Ok(Members(v))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MembersVisitor).map(|o| Members(o.0))
    }
}

/// Reads a `T` from JSON bytes, as `serde_json::from_slice` does (same result, same
/// errors): the bytes are checked as UTF-8 once, up front, rather than string by string
/// (input that is not UTF-8 as a whole falls back to `from_slice`, which skips ignored
/// members without checking them).
///
/// # Errors
/// The bytes are not JSON, or not a `T`.
pub fn read<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(bytes) {
        Ok(s) => serde_json::from_str(s),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// Appends `value` as compact JSON to `out` (the translators' one way to write JSON).
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing to a Vec fails only for a map with non-string keys, which no wire type has.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Appends one JSON object: the members of `head` (an object [`write`] wrote earlier, kept to
/// be reused event after event) followed by those of `tail`. Equal to writing a value whose
/// members are `head`'s then `tail`'s, without serializing `head` again.
pub fn write_after<T: Serialize + ?Sized>(out: &mut Vec<u8>, head: &[u8], tail: &T) {
    join_after(out, head, |out| write(out, tail));
}

/// [`write_after`] with the tail written by `write_tail`.
fn join_after(out: &mut Vec<u8>, head: &[u8], write_tail: impl FnOnce(&mut Vec<u8>)) {
    let open = match head.split_last() {
        Some((b'}', open)) if open.len() > 1 => open,
        _ => return write_tail(out),
    };
    out.extend_from_slice(open);
    let at = out.len();
    write_tail(out);
    if out.get(at..) == Some(b"{}") {
        out.truncate(at);
        out.push(b'}');
    } else if let Some(b) = out.get_mut(at) {
        // `tail`'s opening brace becomes the separator after `head`'s members.
        *b = b',';
    }
}

/// What a [`Template`]'s value holds where the hole is: a string no value the gateway
/// builds from constants contains.
const HOLE: &str = "\"\\u0000hole\\u0000\"";

/// A value [`write`] wrote once with one member left open (the hole), for a value written
/// event after event that differs only in that member: each use writes the bytes before
/// the hole, the member (by its `Serialize`), then the bytes after. Equal to writing the
/// whole value with that member set, without serializing the rest again. The value must
/// hold only constants apart from the hole (nothing read from the input).
#[derive(Debug)]
pub struct Template {
    bytes: Vec<u8>,
    hole: usize,
}

impl Template {
    /// The value `build` makes with the placeholder it is given in the member to fill;
    /// `None` if the placeholder does not appear exactly once in what it writes.
    #[must_use]
    pub fn new<T: Serialize>(build: impl FnOnce(Raw<'static>) -> T) -> Option<Template> {
        let mut bytes = Vec::new();
        write(&mut bytes, &build(Raw::constant(HOLE)));
        let hole = HOLE.as_bytes();
        let mut at = bytes
            .windows(hole.len())
            .enumerate()
            .filter(|(_, w)| *w == hole);
        let (hole_at, _) = at.next()?;
        if at.next().is_some() {
            return None;
        }
        bytes.drain(hole_at..hole_at + hole.len());
        Some(Template {
            bytes,
            hole: hole_at,
        })
    }

    /// Appends the value with `member` in the hole.
    pub fn write<T: Serialize + ?Sized>(&self, out: &mut Vec<u8>, member: &T) {
        let (before, after) = self.bytes.split_at(self.hole);
        out.extend_from_slice(before);
        write(out, member);
        out.extend_from_slice(after);
    }

    /// [`write_after`] with this template (filled with `member`) as the tail.
    pub fn write_after<T: Serialize + ?Sized>(&self, out: &mut Vec<u8>, head: &[u8], member: &T) {
        join_after(out, head, |out| self.write(out, member));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of<'a>(r: &Raw<'a>) -> &'a RawValue {
        match r {
            Raw::Borrowed(v) => v,
            _ => unreachable!(),
        }
    }

    #[test]
    fn members_and_str() {
        let o: Members = serde_json::from_str(r#" {"a\u0062": 1, "c": "x\n", "a":[1]} "#).unwrap();
        let keys: Vec<&str> = o.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ab", "c", "a"]);
        assert_eq!(Raw::Borrowed(o.0[1].1).inner(), Some("x\\n"));
        assert!(serde_json::from_str::<Members>("[1]").is_err());
        assert!(serde_json::from_str::<Members>("{\"a\":1} x").is_err());
    }

    #[test]
    fn raw_writes_verbatim_and_encodes_text() {
        let r: Raw = serde_json::from_str(r#""\u00e9\/""#).unwrap();
        let mut out = Vec::new();
        write(&mut out, &r);
        assert_eq!(out, br#""\u00e9\/""#);
        out.clear();
        let (a, b): (&RawValue, &RawValue) = (
            serde_json::from_str(r#""a\n""#).unwrap(),
            serde_json::from_str(r#""b""#).unwrap(),
        );
        write(&mut out, &Raw::joined(&[a, b], "\\n\\n"));
        assert_eq!(out, br#""a\n\n\nb""#);
        out.clear();
        let s = "a\"b\\c\nd\re\tf\u{1}g\u{7f}h\u{e9}\u{1F600}";
        write(&mut out, &Raw::text(s));
        assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s);
        out.clear();
        write(&mut out, &Raw::Null);
        assert_eq!(out, b"null");
        for (head, tail, want) in [
            (&b"{\"a\":1}"[..], Rest::default(), &b"{\"a\":1}"[..]),
            (b"{}", Rest::default(), b"{}"),
        ] {
            out.clear();
            write_after(&mut out, head, &tail);
            assert_eq!(out, want);
        }
        let tpl = Template::new(|hole| Rest(vec![(Str::from("a"), one_of(&hole))])).unwrap();
        out.clear();
        tpl.write_after(&mut out, b"{\"h\":0}", &Raw::text("x\n"));
        assert_eq!(out, b"{\"h\":0,\"a\":\"x\\n\"}");
        assert!(Template::new(|hole| [hole.clone(), hole]).is_none());
        assert!(Template::new(|_| 1).is_none());
        out.clear();
        let one: &RawValue = serde_json::from_str("2").unwrap();
        write_after(&mut out, b"{\"a\":1}", &Rest(vec![(Str::from("b"), one)]));
        assert_eq!(out, b"{\"a\":1,\"b\":2}");
    }
}
