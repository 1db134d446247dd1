//! Anthropic prompt caching, simulated per account (API key), when
//! [`MockOptions::prompt_cache`](crate::MockOptions::prompt_cache) is on.
//!
//! A Messages request is read as Anthropic reads its prompt: tools, then system, then the
//! messages' content blocks, in order (a string is one block). Every block carrying
//! `cache_control` ends a cacheable prefix. The longest such prefix this account (and model)
//! sent before is *read* from the cache; the rest up to the last marker is *written*. Token
//! counts are the prefix's bytes / 4 (the blocks without their `cache_control`), capped so
//! read + write never exceed the request's prompt tokens. Prefixes are never evicted by time;
//! the cache forgets everything once it holds [`MAX_PREFIXES`].

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::Hasher;
use std::sync::Mutex;

use serde_json::Value;

use crate::state::lock;

/// Prefixes remembered before the cache is emptied.
pub(crate) const MAX_PREFIXES: usize = 100_000;

/// The prefixes seen, by hash of (account, model, prefix).
#[derive(Default)]
pub(crate) struct PromptCache {
    seen: Mutex<HashSet<u64>>,
}

/// Cache tokens of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CacheUse {
    /// Tokens read from the cache (`cache_read_input_tokens`).
    pub read: u64,
    /// Tokens written to it (`cache_creation_input_tokens`).
    pub write: u64,
}

impl PromptCache {
    /// The cache use of a Messages request `body` on `account`; `None` when it has no
    /// `cache_control` marker (or is not JSON). Records its prefixes as cached.
    pub(crate) fn use_for(&self, account: &str, body: &[u8]) -> Option<CacheUse> {
        if !body.windows(15).any(|w| w == b"\"cache_control\"") {
            return None;
        }
        let v: Value = serde_json::from_slice(body).ok()?;
        let mut h = DefaultHasher::new();
        h.write(account.as_bytes());
        h.write_u8(0);
        h.write(
            v.get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .as_bytes(),
        );
        let mut len = 0u64;
        let mut markers: Vec<(u64, u64)> = Vec::new();
        for block in blocks(&v) {
            let marked = block.get("cache_control").is_some();
            let mut plain = block.clone();
            if let Some(o) = plain.as_object_mut() {
                o.remove("cache_control");
            }
            let bytes = plain.to_string();
            h.write(bytes.as_bytes());
            len += bytes.len() as u64;
            if marked {
                markers.push((h.finish(), len));
            }
        }
        let &(_, last_len) = markers.last()?;
        let mut seen = lock(&self.seen);
        let read_len = markers
            .iter()
            .filter(|(hash, _)| seen.contains(hash))
            .map(|&(_, l)| l)
            .max()
            .unwrap_or(0);
        if seen.len() + markers.len() > MAX_PREFIXES {
            seen.clear();
        }
        seen.extend(markers.iter().map(|&(hash, _)| hash));
        Some(CacheUse {
            read: read_len / 4,
            write: (last_len - read_len) / 4,
        })
    }
}

/// The prompt's blocks in cache order: tools, system, then every message's content.
fn blocks(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    if let Some(tools) = v.get("tools").and_then(Value::as_array) {
        out.extend(tools);
    }
    if let Some(system) = v.get("system") {
        push_content(&mut out, system);
    }
    if let Some(messages) = v.get("messages").and_then(Value::as_array) {
        for m in messages {
            if let Some(c) = m.get("content") {
                push_content(&mut out, c);
            }
        }
    }
    out
}

/// A content value's blocks: an array's elements, or the value itself.
fn push_content<'a>(out: &mut Vec<&'a Value>, c: &'a Value) {
    match c {
        Value::Array(a) => out.extend(a),
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn turn(n: usize) -> Vec<u8> {
        let mut messages = Vec::new();
        for i in 0..n {
            messages.push(json!({"role": "user", "content": [
                {"type": "text", "text": format!("question {i} {}", "x".repeat(400))}]}));
            messages.push(json!({"role": "assistant", "content": "answer"}));
        }
        messages.pop();
        let last = messages.len() - 1;
        messages[last]["content"][0]["cache_control"] = json!({"type": "ephemeral"});
        json!({"model": "claude", "system": "sys", "messages": messages})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn first_write_then_read_per_account() {
        let c = PromptCache::default();
        let first = c.use_for("k1", &turn(1)).unwrap();
        assert_eq!(first.read, 0);
        assert!(first.write > 100, "{first:?}");
        let again = c.use_for("k1", &turn(1)).unwrap();
        assert_eq!((again.read, again.write), (first.write, 0));
        // another account has a cold cache
        assert_eq!(c.use_for("k2", &turn(1)).unwrap().read, 0);
        // no marker, no cache use
        assert_eq!(
            c.use_for("k1", br#"{"model":"claude","messages":[]}"#),
            None
        );
    }

    #[test]
    fn the_next_turn_reads_the_previous_prefix_when_it_is_still_marked() {
        let c = PromptCache::default();
        let mut two: Value = serde_json::from_slice(&turn(2)).unwrap();
        two["messages"][0]["content"][0]["cache_control"] = json!({"type": "ephemeral"});
        let first = c.use_for("k", &turn(1)).unwrap();
        let second = c.use_for("k", two.to_string().as_bytes()).unwrap();
        assert_eq!(second.read, first.write);
        assert!(second.write > 0);
    }
}
