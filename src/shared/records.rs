//! Opaque records kept in Redis under the key prefix, with a time to live: what other
//! modules store for the fleet (the Responses API conversation store) without knowing
//! Redis. One command per call, bounded by the shared state's timeouts.

use super::state::{SharedState, Unavailable};
use std::time::Duration;

impl SharedState {
    /// The record under `key` (prefixed), `None` when absent or expired. Bounded by
    /// `timeout_ms`; `Err(Unavailable)` at once while Redis is down.
    pub async fn get_record(&self, key: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.record_key(key));
        self.record_command("record_get", cmd, false).await
    }

    /// Stores `value` under `key` (prefixed) for `ttl` (at least one second). Bounded by
    /// the background timeout (a record may be large).
    pub async fn put_record(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), Unavailable> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.record_key(key))
            .arg(value)
            .arg("EX")
            .arg(ttl.as_secs().max(1));
        self.record_command::<redis::Value>("record_put", cmd, true)
            .await
            .map(drop)
    }

    /// Deletes the record under `key` (prefixed); whether it existed.
    pub async fn delete_record(&self, key: &str) -> Result<bool, Unavailable> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.record_key(key));
        self.record_command::<u64>("record_delete", cmd, false)
            .await
            .map(|n| n > 0)
    }

    fn record_key(&self, key: &str) -> String {
        format!("{}rec:{key}", self.inner().prefix)
    }

    async fn record_command<T: redis::FromRedisValue>(
        &self,
        op: &str,
        cmd: redis::Cmd,
        background: bool,
    ) -> Result<T, Unavailable> {
        let inner = self.inner();
        let mut conn = self.live_connection()?;
        let limit = if background {
            inner.background_timeout
        } else {
            inner.timeout
        };
        inner
            .bounded(op, limit, cmd.query_async::<T>(&mut conn))
            .await
            .ok_or(Unavailable)
    }
}
