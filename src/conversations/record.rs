//! What the gateway keeps per response id, and the JSON-array splicing the conversation
//! history is built with.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One response id the gateway passed on (native backend) or issued (translated backend).
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The user that created it: nobody else may continue, read or delete it.
    pub user: String,
    /// The gateway model it was created on (how a continuation is routed).
    pub model: String,
    /// The provider account that produced it: continuations go there only.
    pub provider: String,
    /// The gateway translated it (and stored the conversation); otherwise the provider
    /// holds it.
    pub translated: bool,
    /// Unix seconds.
    pub created_at: u64,
    /// Translated: every item of the conversation through this response (earlier turns,
    /// this turn's input, this response's output), a JSON array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Box<RawValue>>,
    /// Translated: the input items of this response (earlier turns included), a JSON array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_items: Option<Box<RawValue>>,
    /// Translated: the `Response` object as the client received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Box<RawValue>>,
}

impl StoredResponse {
    /// Bytes the record holds (what the memory store's bound counts).
    pub fn size(&self) -> usize {
        let raw = |r: &Option<Box<RawValue>>| r.as_ref().map_or(0, |v| v.get().len());
        192 + self.user.len()
            + self.model.len()
            + self.provider.len()
            + raw(&self.conversation)
            + raw(&self.input_items)
            + raw(&self.response)
    }
}

/// Whether `id` can name a stored response: 1 to 256 bytes of letters, digits and `_-.:`
/// (what providers and the gateway issue). Anything else is never looked up.
pub fn valid_id(id: &str) -> bool {
    (1..=256).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// The concatenation of JSON arrays given as their bytes (each `[...]`, whitespace
/// allowed around it); the elements are carried verbatim. `None` when a part is not an
/// array.
pub fn concat_arrays(parts: &[&[u8]]) -> Option<Vec<u8>> {
    let mut all: Vec<&RawValue> = Vec::new();
    for part in parts {
        all.extend(serde_json::from_slice::<Vec<&RawValue>>(part).ok()?);
    }
    serde_json::to_vec(&all).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_concatenate_and_empty_ones_vanish() {
        let out = concat_arrays(&[b"[1,2]", b" [ ] ", b"\n[{\"a\":[3]}]"]).unwrap();
        assert_eq!(out, b"[1,2,{\"a\":[3]}]");
        assert_eq!(concat_arrays(&[b"[]", b"[]"]).unwrap(), b"[]");
        assert!(concat_arrays(&[b"[1]", b"{}"]).is_none());
        assert!(concat_arrays(&[b"]"]).is_none());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
    }

    #[test]
    fn ids_are_checked_before_any_lookup() {
        assert!(valid_id("resp_0123abc"));
        assert!(valid_id("resp-1.2:3"));
        assert!(!valid_id(""));
        assert!(!valid_id("resp 1"));
        assert!(!valid_id("resp\n1"));
        assert!(!valid_id(&"a".repeat(257)));
    }
}
