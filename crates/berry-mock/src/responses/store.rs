//! [`Store`]: the responses a mock has produced, by id, for `previous_response_id` and
//! the by-id routes. Bounded: past [`MAX_STORED`] entries the oldest is forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::Value;

use crate::state::lock;

/// Most responses kept.
pub(crate) const MAX_STORED: usize = 4096;

/// One stored response.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    /// The `response` object as it was answered.
    pub response: Value,
    /// The request's input items (each with an `id`).
    pub input_items: Vec<Value>,
}

/// The mock's responses by id (insertion order kept for eviction).
#[derive(Default)]
pub(crate) struct Store {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Stored>,
    order: VecDeque<String>,
}

impl Store {
    /// Keeps `stored` under `id` (forgetting the oldest entry when full).
    pub(crate) fn insert(&self, id: String, stored: Stored) {
        let mut g = lock(&self.inner);
        if g.map.insert(id.clone(), stored).is_none() {
            g.order.push_back(id);
        }
        while g.map.len() > MAX_STORED {
            let Some(old) = g.order.pop_front() else {
                break;
            };
            g.map.remove(&old);
        }
    }

    /// A copy of the response stored under `id`.
    pub(crate) fn get(&self, id: &str) -> Option<Stored> {
        lock(&self.inner).map.get(id).cloned()
    }

    /// Whether `id` is stored.
    pub(crate) fn contains(&self, id: &str) -> bool {
        lock(&self.inner).map.contains_key(id)
    }

    /// Forgets `id`; false when it was not stored.
    pub(crate) fn remove(&self, id: &str) -> bool {
        let mut g = lock(&self.inner);
        let found = g.map.remove(id).is_some();
        if found {
            g.order.retain(|k| k != id);
        }
        found
    }

    /// Sets the `status` of the response stored under `id`; its new value, `None` when
    /// it is not stored.
    pub(crate) fn set_status(&self, id: &str, status: &str) -> Option<Value> {
        let mut g = lock(&self.inner);
        let stored = g.map.get_mut(id)?;
        if let Some(obj) = stored.response.as_object_mut() {
            obj.insert("status".to_string(), Value::from(status));
        }
        Some(stored.response.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bounded_by_insertion_order() {
        let s = Store::default();
        let item = |n: u64| Stored {
            response: serde_json::json!({"n": n, "status": "completed"}),
            input_items: Vec::new(),
        };
        for n in 0..(MAX_STORED as u64 + 2) {
            s.insert(format!("r{n}"), item(n));
        }
        assert!(!s.contains("r0") && !s.contains("r1") && s.contains("r2"));
        assert_eq!(
            s.set_status("r2", "cancelled").unwrap()["status"],
            "cancelled"
        );
        assert!(s.remove("r2"));
        assert!(!s.remove("r2"));
        assert!(s.get("r3").is_some());
    }
}
