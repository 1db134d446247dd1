//! Client authentication and per-user policy: token → user, allowed models, tags, and the
//! user's request quotas.
//!
//! Tokens are looked up by their SHA-256 digest (the map lookup compares digests, never a
//! token prefix) and confirmed with a constant-time comparison. Unknown, missing and
//! disabled tokens are indistinguishable to the caller.

use crate::config::{Config, RateLimit};
use crate::routing::Table;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// A user as the request path needs it.
#[derive(Debug)]
pub struct UserEntry {
    /// Config key; the only user identifier that reaches logs and metrics.
    pub id: Arc<str>,
    pub name: String,
    pub tags: Vec<String>,
    /// Model indices (into the table) this user may use; `None` = all.
    allowed: Option<Vec<bool>>,
    digest: [u8; 32],
    enabled: bool,
    rate: Option<(RateLimit, Arc<RateState>)>,
}

impl UserEntry {
    /// Whether the user may use the table's model at `model_index`.
    pub fn may_use(&self, model_index: usize) -> bool {
        match &self.allowed {
            None => true,
            Some(bits) => bits.get(model_index).copied().unwrap_or(false),
        }
    }

    /// Takes one request from the user's quotas. `Err((window, retry_after_secs))` when a
    /// window is exhausted; then nothing is consumed.
    pub fn take_quota(&self, now_ms: u64) -> Result<(), (&'static str, u64)> {
        match &self.rate {
            None => Ok(()),
            Some((limit, state)) => state.take(limit, now_ms),
        }
    }
}

/// All users of a snapshot.
#[derive(Debug, Default)]
pub struct Users {
    by_digest: HashMap<[u8; 32], usize>,
    /// Shared so a request can hold its user for its whole life.
    pub users: Vec<Arc<UserEntry>>,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Users {
    /// Builds the user directory; quota state carries over from `prev` by user id.
    pub fn build(cfg: &Config, table: &Table, prev: Option<&Users>) -> Users {
        let prev_rates: HashMap<&str, &Arc<RateState>> = prev
            .map(|p| {
                p.users
                    .iter()
                    .filter_map(|u| u.rate.as_ref().map(|(_, s)| (&*u.id, s)))
                    .collect()
            })
            .unwrap_or_default();
        let mut users = Vec::with_capacity(cfg.users.len());
        let mut by_digest = HashMap::with_capacity(cfg.users.len());
        for u in &cfg.users {
            let allowed = (!u.allowed_models.is_empty()).then(|| {
                let mut bits = vec![false; table.models.len()];
                for m in &u.allowed_models {
                    if let Some(i) = table.model_index_by_key_or_name(m) {
                        bits[i] = true;
                    }
                }
                bits
            });
            let rate = u.rate_limit.map(|limit| {
                let state = prev_rates
                    .get(u.id.as_str())
                    .map(|s| Arc::clone(s))
                    .unwrap_or_default();
                (limit, state)
            });
            let d = digest(u.token.expose().as_bytes());
            by_digest.insert(d, users.len());
            users.push(Arc::new(UserEntry {
                id: u.id.as_str().into(),
                name: u.name.clone(),
                tags: u.tags.clone(),
                allowed,
                digest: d,
                enabled: u.enabled,
                rate,
            }));
        }
        Users { by_digest, users }
    }

    /// The enabled user owning `token`, if any.
    pub fn authenticate(&self, token: &[u8]) -> Option<&Arc<UserEntry>> {
        self.authenticate_index(token)
            .and_then(|i| self.users.get(i))
    }

    /// Index (into `users`) of the enabled user owning `token`, if any.
    pub fn authenticate_index(&self, token: &[u8]) -> Option<usize> {
        let d = digest(token);
        let i = *self.by_digest.get(&d)?;
        let user = self.users.get(i)?;
        (bool::from(user.digest.ct_eq(&d)) && user.enabled).then_some(i)
    }
}

/// The client token from `Authorization: Bearer <t>` or, failing that, `x-api-key: <t>`.
pub fn client_token<'a>(
    authorization: Option<&'a [u8]>,
    x_api_key: Option<&'a [u8]>,
) -> Option<&'a [u8]> {
    if let Some(v) = authorization {
        if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ") {
            let t = v[7..].trim_ascii();
            if !t.is_empty() {
                return Some(t);
            }
        }
    }
    x_api_key.map(|v| v.trim_ascii()).filter(|t| !t.is_empty())
}

/// The client token of a request head: [`client_token`] of its `Authorization` and
/// `x-api-key` headers.
pub fn request_token(req: &pingora_http::RequestHeader) -> Option<&[u8]> {
    let header = |name: &str| req.headers.get(name).map(|v| v.as_bytes());
    client_token(header("authorization"), header("x-api-key"))
}

/// Compares a presented secret with the expected one in constant time (admin token).
pub fn secret_matches(presented: &[u8], expected: &str) -> bool {
    bool::from(digest(presented).ct_eq(&digest(expected.as_bytes())))
}

const WINDOWS: [(&str, u64); 3] = [("minute", 60_000), ("hour", 3_600_000), ("day", 86_400_000)];

/// Sliding-window request counters for one user: per window the current and previous
/// fixed-window counts (O(1) memory, no timestamps per request). The estimate for the
/// sliding window is `previous × (1 − elapsed/window) + current`.
#[derive(Debug, Default)]
pub struct RateState {
    windows: Mutex<[Counter; 3]>,
}

/// One window's state: its start and the current and previous fixed-window counts. The
/// shared (Redis) limiter keeps the same three numbers per window and rolls them the same
/// way in its script; it computes Retry-After with [`Counter::wait_ms`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counter {
    pub(crate) start_ms: u64,
    pub(crate) current: u64,
    pub(crate) previous: u64,
}

impl Counter {
    fn roll(&mut self, now_ms: u64, len: u64) {
        if self.start_ms == 0 {
            self.start_ms = now_ms - now_ms % len;
        }
        let elapsed_windows = now_ms.saturating_sub(self.start_ms) / len;
        if elapsed_windows >= 1 {
            self.previous = if elapsed_windows == 1 {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.start_ms += elapsed_windows * len;
        }
    }

    fn estimate(&self, now_ms: u64, len: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.start_ms) as f64 / len as f64;
        self.previous as f64 * (1.0 - elapsed).max(0.0) + self.current as f64
    }

    /// Milliseconds until one more request fits under `limit`.
    pub(crate) fn wait_ms(&self, now_ms: u64, len: u64, limit: u64) -> u64 {
        let end = self.start_ms + len;
        if self.current + 1 > limit || self.previous == 0 {
            // Only the next window can make room.
            return end.saturating_sub(now_ms).max(1);
        }
        // previous × (1 − t/len) + current + 1 ≤ limit  ⇒  t ≥ len × (1 − (limit − current − 1)/previous)
        let room = (limit - self.current - 1) as f64;
        let t = len as f64 * (1.0 - room / self.previous as f64);
        let at = self.start_ms + t.ceil().max(0.0) as u64;
        at.saturating_sub(now_ms).clamp(1, len)
    }
}

impl RateState {
    /// Admits one request against every configured window, or refuses without consuming.
    pub fn take(&self, limit: &RateLimit, now_ms: u64) -> Result<(), (&'static str, u64)> {
        let limits = [limit.per_minute, limit.per_hour, limit.per_day];
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut refusal: Option<(&'static str, u64)> = None;
        for (i, (name, len)) in WINDOWS.iter().enumerate() {
            let Some(max) = limits[i] else { continue };
            w[i].roll(now_ms, *len);
            if w[i].estimate(now_ms, *len) + 1.0 > max as f64 {
                let wait = w[i].wait_ms(now_ms, *len, max).div_ceil(1000).max(1);
                if refusal.is_none_or(|(_, r)| wait > r) {
                    refusal = Some((name, wait));
                }
            }
        }
        if let Some(r) = refusal {
            return Err(r);
        }
        for (i, _) in WINDOWS.iter().enumerate() {
            if limits[i].is_some() {
                w[i].current += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, Format};

    fn users() -> (Table, Users) {
        let cfg = load_str(
            r#"
[users.alice]
token = "tok-alice"
allowed_models = ["m1", "second"]
tags = ["premium"]
[users.bob]
token = "tok-bob"
enabled = false
[users.carol]
token = "tok-carol"
[providers.p]
base_url = "http://127.0.0.1:1/v1"
api_key = "k"
[models.m1]
name = "first"
[[models.m1.backends]]
provider = "p"
model = "x"
[models.m2]
name = "second"
[[models.m2.backends]]
provider = "p"
model = "y"
[models.m3]
name = "third"
[[models.m3.backends]]
provider = "p"
model = "z"
"#,
            Format::Toml,
            &|_| None,
        )
        .unwrap();
        let t = Table::build(&cfg, None, 0).unwrap();
        let u = Users::build(&cfg, &t, None);
        (t, u)
    }

    #[test]
    fn tokens_resolve_to_enabled_users_only() {
        let (_, u) = users();
        assert_eq!(&*u.authenticate(b"tok-alice").unwrap().id, "alice");
        assert!(u.authenticate(b"tok-bob").is_none(), "disabled");
        assert!(u.authenticate(b"tok-nobody").is_none());
        assert!(u.authenticate(b"").is_none());
        assert!(u.authenticate(b"tok-alic").is_none());
    }

    #[test]
    fn allowed_models_by_key_or_name() {
        let (t, u) = users();
        let alice = u.authenticate(b"tok-alice").unwrap();
        assert!(alice.may_use(t.model_index("first").unwrap()));
        assert!(alice.may_use(t.model_index("second").unwrap()));
        assert!(!alice.may_use(t.model_index("third").unwrap()));
        let carol = u.authenticate(b"tok-carol").unwrap();
        assert!(carol.may_use(t.model_index("third").unwrap()));
        assert_eq!(alice.tags, vec!["premium"]);
    }

    #[test]
    fn token_extraction() {
        assert_eq!(client_token(Some(b"Bearer abc"), None), Some(&b"abc"[..]));
        assert_eq!(client_token(Some(b"bearer  abc "), None), Some(&b"abc"[..]));
        assert_eq!(
            client_token(Some(b"Basic abc"), Some(b"k")),
            Some(&b"k"[..])
        );
        assert_eq!(client_token(None, Some(b"k")), Some(&b"k"[..]));
        assert_eq!(client_token(Some(b"Bearer "), None), None);
        assert_eq!(client_token(None, None), None);
    }

    #[test]
    fn admin_secret_compare() {
        assert!(secret_matches(b"adm", "adm"));
        assert!(!secret_matches(b"adm2", "adm"));
    }

    #[test]
    fn minute_limit_boundaries() {
        let s = RateState::default();
        let l = RateLimit {
            per_minute: Some(3),
            ..Default::default()
        };
        let t0 = 60_000 * 10; // window start
        for i in 0..3 {
            assert!(s.take(&l, t0 + i).is_ok(), "request {i}");
        }
        let (w, retry) = s.take(&l, t0 + 10).unwrap_err();
        assert_eq!(w, "minute");
        assert_eq!(retry, 60);
        // refusals do not consume: still refused, then the next window admits with the
        // previous window weighing in (3 × (1 − elapsed) + current)
        assert!(s.take(&l, t0 + 59_999).is_err());
        // 1/3 into the next window the previous 3 count as 2: one more fits
        assert!(s.take(&l, t0 + 60_000 + 20_001).is_ok());
        assert!(s.take(&l, t0 + 60_000 + 20_002).is_err());
        // two windows later everything is forgotten
        for i in 0..3 {
            assert!(s.take(&l, t0 + 180_000 + i).is_ok());
        }
    }

    #[test]
    fn retry_after_reaches_a_time_that_admits() {
        let s = RateState::default();
        let l = RateLimit {
            per_minute: Some(10),
            ..Default::default()
        };
        let t0 = 600_000;
        for i in 0..10 {
            s.take(&l, t0 + 30_000 + i).unwrap();
        }
        // next window, 5 s in: previous 10 weigh ~9.2 → refused until enough decays
        let now = t0 + 65_000;
        let (_, retry) = s.take(&l, now).unwrap_err();
        assert!(s.take(&l, now + retry * 1000).is_ok(), "retry {retry}");
    }

    #[test]
    fn every_window_is_checked_and_none_consumed_on_refusal() {
        let s = RateState::default();
        let l = RateLimit {
            per_minute: Some(100),
            per_hour: Some(2),
            per_day: Some(1000),
        };
        assert!(s.take(&l, 1).is_ok());
        assert!(s.take(&l, 2).is_ok());
        let (w, _) = s.take(&l, 3).unwrap_err();
        assert_eq!(w, "hour");
    }
}
