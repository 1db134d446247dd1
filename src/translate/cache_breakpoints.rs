//! Automatic prompt-cache breakpoints for a translated Messages request.
//!
//! Anthropic caches a prompt prefix only up to a block marked `cache_control`; clients of
//! other APIs (OpenAI chat and Responses, Gemini) cannot mark one, so their agent sessions
//! would pay full input price every turn. [`add`] marks, with `{"type":"ephemeral"}`: the
//! last system block, the last tool definition, and the last content block of each of the
//! last two user turns (a string system prompt or user content becomes one text block), at
//! most four markers, Anthropic's limit. The last user turn's marker writes the cache the
//! next turn reads through the one before it.
//!
//! The body is spliced, not re-serialised ([`crate::body::apply_edits`]): every other byte
//! stays as the translator wrote it. The caller decides whether to mark at all (the
//! provider's `auto_cache`, and a client that set markers of its own: [`has_markers`]).

use crate::body::{apply_edits, Edit};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::ops::Range;

/// The marker inserted as a block's first member.
const MARKER: &[u8] = br#""cache_control":{"type":"ephemeral"},"#;

/// Most markers Anthropic accepts in one request.
pub const MAX_BREAKPOINTS: usize = 4;

/// User turns whose last block is marked.
const USER_TURNS: usize = 2;

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    messages: Option<Vec<Turn<'a>>>,
}

#[derive(Deserialize)]
struct Turn<'a> {
    #[serde(borrow, default)]
    role: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// Whether a client body carries cache markers of its own (a `"cache_control"` key; the
/// same word inside a string is escaped differently, so it does not count).
pub fn has_markers(body: &[u8]) -> bool {
    memchr::memmem::find(body, br#""cache_control""#).is_some()
}

/// `body` (a Messages request) with the automatic breakpoints; `None` when it gets none
/// (nothing to mark, markers already present, or not a Messages request object).
pub fn add(body: &[u8]) -> Option<Vec<u8>> {
    if has_markers(body) {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let req: Request<'_> = serde_json::from_str(text).ok()?;
    let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::with_capacity(MAX_BREAKPOINTS);
    if let Some(system) = req.system {
        mark_content(text, system, &mut edits);
    }
    if let Some(last) = req.tools.as_ref().and_then(|t| t.last()) {
        mark_object(text, last, &mut edits);
    }
    let turns = req.messages.as_deref().unwrap_or_default();
    let users = turns
        .iter()
        .rev()
        .filter(|t| t.role.is_some_and(|r| r.get() == r#""user""#))
        .take(USER_TURNS);
    for turn in users {
        if let Some(content) = turn.content {
            mark_content(text, content, &mut edits);
        }
    }
    if edits.is_empty() {
        return None;
    }
    edits.truncate(MAX_BREAKPOINTS);
    let mut spliced: Vec<Edit<'_>> = edits
        .iter()
        .map(|(range, bytes)| Edit {
            range: range.clone(),
            bytes,
        })
        .collect();
    Some(apply_edits(body, &mut spliced))
}

/// Byte span of `part` (borrowed from `whole`) in `whole`.
fn span(whole: &str, part: &RawValue) -> Range<usize> {
    let start = (part.get().as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    start..start + part.get().len()
}

/// Marks a `system` or message `content` value: a non-empty string becomes one marked text
/// block, an array gets its last block marked.
fn mark_content(text: &str, value: &RawValue, edits: &mut Vec<(Range<usize>, Vec<u8>)>) {
    let raw = value.get();
    if raw.starts_with('"') {
        if raw.len() <= 2 {
            return; // an empty text block cannot be cached
        }
        let mut block = Vec::with_capacity(raw.len() + 80);
        block.extend_from_slice(br#"[{"type":"text","text":"#);
        block.extend_from_slice(raw.as_bytes());
        block.extend_from_slice(br#","cache_control":{"type":"ephemeral"}}]"#);
        edits.push((span(text, value), block));
    } else if raw.starts_with('[') {
        if let Ok(blocks) = serde_json::from_str::<Vec<&RawValue>>(raw) {
            if let Some(last) = blocks.last() {
                mark_object(text, last, edits);
            }
        }
    }
}

/// Marks a non-empty object by inserting the marker as its first member.
fn mark_object(text: &str, value: &RawValue, edits: &mut Vec<(Range<usize>, Vec<u8>)>) {
    let raw = value.get();
    let empty = raw
        .get(1..)
        .is_some_and(|rest| rest.trim_start().starts_with('}'));
    if !raw.starts_with('{') || empty {
        return;
    }
    let at = span(text, value).start + 1;
    edits.push((at..at, MARKER.to_vec()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn marked(body: Value) -> Value {
        let out = add(body.to_string().as_bytes()).expect("marked");
        serde_json::from_slice(&out).expect("valid JSON")
    }

    const EPH: &str = "ephemeral";

    #[test]
    fn system_tools_and_the_last_two_user_turns_are_marked() {
        let v = marked(json!({
            "model": "m",
            "system": "be brief",
            "tools": [{"name": "a", "input_schema": {}}, {"name": "b", "input_schema": {}}],
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "two"}, {"type": "text", "text": "2b"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
                {"role": "user", "content": "three"}
            ]
        }));
        assert_eq!(v["system"][0]["text"], "be brief");
        assert_eq!(v["system"][0]["cache_control"]["type"], EPH);
        assert!(v["tools"][0].get("cache_control").is_none());
        assert_eq!(v["tools"][1]["cache_control"]["type"], EPH);
        assert_eq!(
            v["messages"][0]["content"], "one",
            "third-last user turn untouched"
        );
        assert!(v["messages"][2]["content"][0]
            .get("cache_control")
            .is_none());
        assert_eq!(v["messages"][2]["content"][1]["cache_control"]["type"], EPH);
        assert!(v["messages"][3]["content"][0]
            .get("cache_control")
            .is_none());
        assert_eq!(v["messages"][4]["content"][0]["text"], "three");
        assert_eq!(v["messages"][4]["content"][0]["cache_control"]["type"], EPH);
        let n = v.to_string().matches("cache_control").count();
        assert_eq!(n, MAX_BREAKPOINTS);
    }

    #[test]
    fn nothing_to_mark_or_already_marked_is_left_alone() {
        let none = json!({"model": "m", "messages": [{"role": "assistant", "content": "x"}]});
        assert_eq!(add(none.to_string().as_bytes()), None);
        let own = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]}]});
        assert_eq!(add(own.to_string().as_bytes()), None);
        assert!(has_markers(own.to_string().as_bytes()));
        let word = json!({"model": "m", "messages": [{"role": "user", "content": "say \"cache_control\""}]});
        assert!(!has_markers(word.to_string().as_bytes()));
        assert_eq!(add(b"not json"), None);
        let empty =
            json!({"model": "m", "system": "", "messages": [{"role": "user", "content": ""}]});
        assert_eq!(add(empty.to_string().as_bytes()), None);
    }

    #[test]
    fn other_bytes_are_kept() {
        let body =
            br#"{"model":"m",  "max_tokens":1e3,"messages":[{"role":"user","content":"h\u00e9"}]}"#;
        let out = add(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"m",  "max_tokens":1e3,"messages":[{"role":"user","content":[{"type":"text","text":"h\u00e9","cache_control":{"type":"ephemeral"}}]}]}"#
        );
    }
}
