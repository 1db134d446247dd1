//! The remembered session moves of one model (see [`super::affinity`]): bounded, in memory,
//! carried over on reload.

use crate::body::SessionKey;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Sessions whose move one model remembers at most (least recently used dropped first).
pub const MAX_REMEMBERED_MOVES: usize = 16_384;

/// The remembered moves of one model's sessions: session → (backend id hash, until ms).
/// Bounded to [`MAX_REMEMBERED_MOVES`]; carried over on reload.
#[derive(Debug)]
pub struct SessionMoves {
    map: Mutex<LruCache<u64, (u64, u64)>>,
    /// A move was ever remembered (until then lookups take no lock).
    used: AtomicBool,
}

impl Default for SessionMoves {
    fn default() -> Self {
        SessionMoves::with_capacity(MAX_REMEMBERED_MOVES)
    }
}

impl SessionMoves {
    /// A map remembering at most `capacity` sessions (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        SessionMoves {
            map: Mutex::new(LruCache::new(cap)),
            used: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<u64, (u64, u64)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The backend `session` was moved to, while the move is younger than its TTL.
    pub fn get(&self, session: SessionKey, now_ms: u64) -> Option<u64> {
        if !self.used.load(Ordering::Relaxed) {
            return None;
        }
        let mut map = self.lock();
        match map.get(&session.0) {
            Some(&(backend, until)) if until > now_ms => Some(backend),
            Some(_) => {
                map.pop(&session.0);
                None
            }
            None => None,
        }
    }

    /// Remembers that `session` moved to `backend` (an id hash) until `until_ms`.
    pub fn remember(&self, session: SessionKey, backend: u64, until_ms: u64) {
        self.lock().put(session.0, (backend, until_ms));
        self.used.store(true, Ordering::Relaxed);
    }

    /// Sessions remembered (expired ones included until they are looked up or evicted).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_expire_and_stay_bounded() {
        let m = SessionMoves::with_capacity(2);
        m.remember(SessionKey(1), 7, 100);
        assert_eq!(m.get(SessionKey(1), 99), Some(7));
        assert_eq!(m.get(SessionKey(1), 100), None);
        for k in 0..10 {
            m.remember(SessionKey(k), k, 1000);
        }
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(SessionKey(9), 0), Some(9));
        assert_eq!(m.get(SessionKey(0), 0), None);
    }
}
