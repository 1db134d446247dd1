//! The in-process store: least recently used records go first once the byte bound is
//! passed; a record older than its time to live is gone.

use super::record::StoredResponse;
use lru::LruCache;
use std::sync::{Arc, Mutex, MutexGuard};

struct Entry {
    record: Arc<StoredResponse>,
    size: usize,
    expires_at_ms: u64,
}

struct Inner {
    lru: LruCache<String, Entry>,
    bytes: usize,
}

/// A byte-bounded LRU map of response id → record, with expiry. Operations take one
/// short lock (never across an await).
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `id` unless expired at `now_ms` (an expired one is dropped).
    pub fn get(&self, id: &str, now_ms: u64) -> Option<Arc<StoredResponse>> {
        let mut inner = self.lock();
        let expired = inner.lru.get(id).map(|e| e.expires_at_ms <= now_ms)?;
        if expired {
            if let Some(e) = inner.lru.pop(id) {
                inner.bytes = inner.bytes.saturating_sub(e.size);
            }
            return None;
        }
        inner.lru.get(id).map(|e| Arc::clone(&e.record))
    }

    /// Keeps `record` under `id` until `expires_at_ms`, then drops least recently used
    /// records until at most `max_bytes` are held. A record larger than `max_bytes` alone
    /// is not kept.
    pub fn put(&self, id: String, record: StoredResponse, expires_at_ms: u64, max_bytes: usize) {
        let size = record.size();
        let mut inner = self.lock();
        if let Some(old) = inner.lru.pop(&id) {
            inner.bytes = inner.bytes.saturating_sub(old.size);
        }
        if size > max_bytes {
            return;
        }
        inner.bytes += size;
        inner.lru.put(
            id,
            Entry {
                record: Arc::new(record),
                size,
                expires_at_ms,
            },
        );
        while inner.bytes > max_bytes {
            match inner.lru.pop_lru() {
                Some((_, e)) => inner.bytes = inner.bytes.saturating_sub(e.size),
                None => break,
            }
        }
    }

    /// Drops `id`; whether it was held.
    pub fn remove(&self, id: &str) -> bool {
        let mut inner = self.lock();
        match inner.lru.pop(id) {
            Some(e) => {
                inner.bytes = inner.bytes.saturating_sub(e.size);
                true
            }
            None => false,
        }
    }

    /// Bytes held (what the bound counts).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(user: &str, pad: usize) -> StoredResponse {
        StoredResponse {
            user: user.into(),
            model: "m".into(),
            provider: "p".repeat(pad),
            translated: false,
            created_at: 0,
            conversation: None,
            input_items: None,
            response: None,
        }
    }

    #[test]
    fn least_recently_used_go_first_past_the_bound() {
        let s = MemoryStore::default();
        let size = rec("a", 100).size();
        s.put("a".into(), rec("a", 100), 1000, size * 2);
        s.put("b".into(), rec("b", 100), 1000, size * 2);
        assert!(s.get("a", 0).is_some()); // a is now the most recent
        s.put("c".into(), rec("c", 100), 1000, size * 2);
        assert!(s.get("b", 0).is_none());
        assert!(s.get("a", 0).is_some() && s.get("c", 0).is_some());
        assert_eq!(s.bytes(), size * 2);
        // a record larger than the bound is not kept, and replaces nothing else
        s.put("big".into(), rec("x", size * 3), 1000, size * 2);
        assert!(s.get("big", 0).is_none());
        assert_eq!(s.bytes(), size * 2);
    }

    #[test]
    fn records_expire_and_can_be_removed() {
        let s = MemoryStore::default();
        s.put("a".into(), rec("a", 1), 100, 1 << 20);
        assert!(s.get("a", 99).is_some());
        assert!(s.get("a", 100).is_none());
        assert_eq!(s.bytes(), 0);
        s.put("b".into(), rec("b", 1), 100, 1 << 20);
        assert!(s.remove("b"));
        assert!(!s.remove("b"));
        assert_eq!(s.bytes(), 0);
    }
}
