//! Session moves shared by every replica: when a session moves to another backend (its
//! backend failed), the move is kept in Redis for the model's `affinity_ttl`, so every
//! replica sends the session's next requests where its prompt cache now lives.
//!
//! One record per moved session, `rec:aff:<model key>:<session hash>` holding the backend's
//! id hash in hex (both sides compute it from the same config). Only sessions with a key
//! ever read it (one `GET`, bounded by `timeout_ms`); the write is off the request path.

use super::state::{SharedState, Unavailable};
use crate::body::SessionKey;
use std::sync::Arc;
use std::time::Duration;

fn record_key(model_key: &str, session: SessionKey) -> String {
    format!("aff:{model_key}:{session}")
}

impl SharedState {
    /// The backend (its id hash) `session` of `model_key` was moved to, while the move
    /// lasts. `Err(Unavailable)` at once while Redis is down, or after `timeout_ms`.
    pub async fn session_backend(
        &self,
        model_key: &str,
        session: SessionKey,
    ) -> Result<Option<u64>, Unavailable> {
        let value = self.get_record(&record_key(model_key, session)).await?;
        Ok(value
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| u64::from_str_radix(&s, 16).ok()))
    }

    /// Shares that `session` of `model_key` moved to `backend` (an id hash) for `ttl`.
    /// Never blocks: the write runs on its own task (a lost write leaves the other
    /// replicas on the rendezvous ranking, which moves them off a failed backend by itself).
    pub fn share_session_move(
        self: &Arc<Self>,
        model_key: &str,
        session: SessionKey,
        backend: u64,
        ttl: Duration,
    ) {
        let state = Arc::clone(self);
        let key = record_key(model_key, session);
        let value = format!("{backend:016x}");
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            if state.put_record(&key, value.as_bytes(), ttl).await.is_err() {
                log::debug!("session move not shared: shared state unavailable");
            }
        });
    }
}
