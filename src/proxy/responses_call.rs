//! The Responses API's side of one admitted request: what it continues, where it is pinned,
//! the id the gateway issues, and the native answer's id once seen.

use crate::conversations::StoredResponse;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Most bytes of a native answer's start kept to find its response id in.
const ID_CAPTURE_CAP: usize = 64 << 10;

/// The Responses API's side of one admitted request.
#[derive(Debug, Default)]
pub struct ResponsesCall {
    /// `store` of the request (default true): a completed answer is recorded.
    pub store: bool,
    /// The stored response this request continues (`previous_response_id`).
    pub previous: Option<Arc<StoredResponse>>,
    /// The provider account every attempt must use (it holds the continued or requested
    /// response).
    pub pinned: Option<String>,
    /// The id of the stored response a by-id request names.
    pub previous_id: Option<String>,
    /// The id the gateway gives a translated answer (`resp_` + 32 hex digits).
    pub issued_id: String,
    /// Finds a native answer's response id.
    pub capture: IdCapture,
    /// The completed answer was recorded.
    pub saved: bool,
}

impl ResponsesCall {
    /// The conversation a translated continuation rebuilds (a JSON array of items).
    pub fn history(&self) -> Option<&[u8]> {
        self.previous
            .as_ref()
            .filter(|p| p.translated)
            .and_then(|p| p.conversation.as_ref())
            .map(|c| c.get().as_bytes())
    }
}

/// Finds the response id at the start of a native Responses answer: the top-level `id` of
/// a JSON body, or `response.id` of the first stream event (`response.created`). Reads at
/// most the first [`ID_CAPTURE_CAP`] bytes, and stops parsing as soon as the id is found.
#[derive(Debug, Default)]
pub struct IdCapture {
    buf: Vec<u8>,
    id: Option<String>,
    gave_up: bool,
}

impl IdCapture {
    /// Starts over (a new attempt's answer).
    pub fn reset(&mut self) {
        *self = IdCapture::default();
    }

    /// The id, once found.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Looks at the answer's next chunk (`sse`: an event stream).
    pub fn feed(&mut self, chunk: &[u8], sse: bool) {
        if self.id.is_some() || self.gave_up {
            return;
        }
        let room = ID_CAPTURE_CAP.saturating_sub(self.buf.len());
        self.buf
            .extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        let doc = if sse {
            match memchr::memmem::find(&self.buf, b"data:") {
                Some(i) => self.buf.get(i + 5..).unwrap_or_default(),
                None => &[],
            }
        } else {
            &self.buf[..]
        };
        let mut found = None;
        let mut de = serde_json::Deserializer::from_slice(doc);
        let _ = FindId {
            out: &mut found,
            inside_response: !sse,
        }
        .deserialize(&mut de);
        self.id = found;
        if self.id.is_none() && self.buf.len() >= ID_CAPTURE_CAP {
            self.gave_up = true;
        }
    }
}

/// Reads a JSON object up to its `id` (inside `response` first, for stream events) and
/// stops there with an error: the rest of the document may not have arrived yet.
struct FindId<'s> {
    out: &'s mut Option<String>,
    /// This object is the response itself (its `id` is the one).
    inside_response: bool,
}

impl<'de> DeserializeSeed<'de> for FindId<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FindId<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match (&*key, self.inside_response) {
                ("id", true) => {
                    let id = map.next_value::<Cow<'de, str>>()?;
                    *self.out = Some(id.into_owned());
                    return Err(de::Error::custom("found"));
                }
                ("response", false) => {
                    return map.next_value_seed(FindId {
                        out: self.out,
                        inside_response: true,
                    });
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(chunks: &[&[u8]], sse: bool) -> Option<String> {
        let mut c = IdCapture::default();
        for ch in chunks {
            c.feed(ch, sse);
        }
        c.id().map(str::to_string)
    }

    #[test]
    fn the_id_is_found_early_in_any_split() {
        let json = br#"{"id":"resp_abc","object":"response","output":[{"id":"msg_1"}"#;
        for k in 0..json.len() {
            assert_eq!(
                capture(&[&json[..k], &json[k..]], false).as_deref(),
                Some("resp_abc"),
                "split at {k}"
            );
        }
        let sse = b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"object\":\"response\",\"id\":\"resp_s\",\"output\":[]}}\n\n";
        for k in 0..sse.len() {
            assert_eq!(
                capture(&[&sse[..k], &sse[k..]], true).as_deref(),
                Some("resp_s"),
                "split at {k}"
            );
        }
        // nested ids of other objects are not the response's
        assert_eq!(
            capture(&[br#"{"object":"x","output":[{"id":"msg_1"}]}"#], false),
            None
        );
        assert_eq!(
            capture(&[b"data: {\"item\":{\"id\":\"msg_1\"}}\n\n"], true),
            None
        );
    }
}
