//! The Responses API's stored responses: which provider account produced each response id
//! (so a continuation or a by-id request reaches that account and no other), and for
//! responses the gateway translated, the conversation so far (so the next turn can be
//! rebuilt for a backend that keeps no state).
//!
//! Records live in Redis when shared state is configured and up (any replica continues a
//! conversation), otherwise in this process ([`memory::MemoryStore`], bounded by
//! `store_max_bytes`). Both expire after `store_ttl_seconds`. Ids are scoped to the user
//! that created them: a lookup by another user finds nothing.

pub mod memory;
pub mod record;

pub use record::{concat_arrays, valid_id, StoredResponse};

use crate::config::ResponsesSettings;
use crate::shared::SharedState;
use std::sync::Arc;

/// The store shared by every request of the process (it outlives config reloads).
#[derive(Default)]
pub struct ConversationStore {
    memory: memory::MemoryStore,
}

impl std::fmt::Debug for ConversationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversationStore")
            .field("memory_bytes", &self.memory.bytes())
            .finish()
    }
}

/// Where a record is kept for this call: Redis when the shared state is up.
fn redis(shared: Option<&SharedState>) -> Option<&SharedState> {
    shared.filter(|s| s.is_up())
}

impl ConversationStore {
    /// The record of `id` if it exists, has not expired and belongs to `user`.
    pub async fn get(
        &self,
        shared: Option<&SharedState>,
        id: &str,
        user: &str,
    ) -> Option<Arc<StoredResponse>> {
        if !valid_id(id) {
            return None;
        }
        let record = match redis(shared) {
            Some(s) => match s.get_record(id).await {
                Ok(bytes) => bytes
                    .and_then(|b| serde_json::from_slice::<StoredResponse>(&b).ok())
                    .map(Arc::new),
                // Redis failed just now: what this replica kept meanwhile is all there is.
                Err(_) => self.memory.get(id, crate::clock::now_ms()),
            },
            None => self.memory.get(id, crate::clock::now_ms()),
        };
        record.filter(|r| r.user == user)
    }

    /// Keeps `record` under `id` for `settings.store_ttl`. Memory is written at once;
    /// Redis in a spawned task (the caller is on the response path, which must not wait).
    /// A Redis write that fails keeps the record in memory instead.
    pub fn put(
        &self,
        shared: Option<&Arc<SharedState>>,
        id: String,
        record: StoredResponse,
        settings: &ResponsesSettings,
        store: &Arc<ConversationStore>,
    ) {
        if !valid_id(&id) {
            return;
        }
        if let Some(s) = shared.filter(|s| s.is_up()) {
            let Ok(bytes) = serde_json::to_vec(&record) else {
                return;
            };
            let (s, store, settings) = (Arc::clone(s), Arc::clone(store), settings.clone());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if s.put_record(&id, &bytes, settings.store_ttl).await.is_err() {
                        if let Ok(record) = serde_json::from_slice::<StoredResponse>(&bytes) {
                            store.put_memory(id, record, &settings);
                        }
                    }
                });
                return;
            }
        }
        self.put_memory(id, record, settings);
    }

    fn put_memory(&self, id: String, record: StoredResponse, settings: &ResponsesSettings) {
        let ttl_ms = u64::try_from(settings.store_ttl.as_millis()).unwrap_or(u64::MAX);
        let expires = crate::clock::now_ms().saturating_add(ttl_ms);
        let max = usize::try_from(settings.store_max_bytes).unwrap_or(usize::MAX);
        self.memory.put(id, record, expires, max);
    }

    /// Deletes `id` (the caller checked that it is the user's); whether it was held.
    pub async fn delete(&self, shared: Option<&SharedState>, id: &str) -> bool {
        let in_memory = self.memory.remove(id);
        match redis(shared) {
            Some(s) => s.delete_record(id).await.unwrap_or(false) || in_memory,
            None => in_memory,
        }
    }
}
