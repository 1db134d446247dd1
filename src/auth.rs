//! Client authentication and per-user policy: token → user, allowed models, tags, the
//! user's limits, team and spend budgets (enforced by [`crate::quota`]).
//!
//! Tokens are looked up by their SHA-256 digest (the map lookup compares digests, never a
//! token prefix) and confirmed with a constant-time comparison. Unknown, missing and
//! disabled tokens are indistinguishable to the caller.

use crate::config::{Budget, Config, RateLimit};
use crate::quota::LocalQuota;
use crate::routing::Table;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// A team as the request path needs it.
#[derive(Debug)]
pub struct TeamEntry {
    /// Config key; the team identifier in metrics, logs and the spend endpoints.
    pub id: Arc<str>,
    pub name: String,
    pub budget: Budget,
    pub max_concurrent: Option<u64>,
    /// Requests of the team in flight in this replica; carried across reloads by team id.
    in_flight: Arc<AtomicU64>,
}

/// A held slot of a team's `max_concurrent`; released when dropped.
#[derive(Debug)]
pub struct TeamSlot(Arc<AtomicU64>);

impl Drop for TeamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl TeamEntry {
    /// Takes one of the team's concurrency slots: `Ok(None)` without a cap, `Err(())`
    /// when the cap is reached (nothing taken).
    #[allow(clippy::result_unit_err)]
    pub fn try_take_slot(&self) -> Result<Option<TeamSlot>, ()> {
        let Some(max) = self.max_concurrent else {
            return Ok(None);
        };
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| Some(TeamSlot(Arc::clone(&self.in_flight))))
            .map_err(|_| ())
    }

    /// Requests of the team in flight in this replica (held slots).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }
}

/// The `window` label of `Budget::by_window`'s entries.
const BUDGET_WINDOWS: [&str; 2] = ["day", "month"];

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
    rate: Option<(RateLimit, Arc<LocalQuota>)>,
    /// The user's team in this snapshot.
    pub team: Option<Arc<TeamEntry>>,
    /// The user's own spend budgets.
    pub budget: Budget,
}

impl UserEntry {
    /// Whether the user may use the table's model at `model_index`.
    pub fn may_use(&self, model_index: usize) -> bool {
        match &self.allowed {
            None => true,
            Some(bits) => bits.get(model_index).copied().unwrap_or(false),
        }
    }

    /// The user's limits and their in-process state; `None` when the user has none (an
    /// empty `[rate_limit]` table is none: the config drops it).
    pub fn limits(&self) -> Option<(&RateLimit, &LocalQuota)> {
        self.rate.as_ref().map(|(l, q)| (l, &**q))
    }

    /// The user's team id, if any.
    pub fn team_id(&self) -> Option<&str> {
        self.team.as_deref().map(|t| &*t.id)
    }
}

/// All users of a snapshot.
#[derive(Debug, Default)]
pub struct Users {
    by_digest: HashMap<[u8; 32], usize>,
    /// Shared so a request can hold its user for its whole life.
    pub users: Vec<Arc<UserEntry>>,
    /// Every team, in config order.
    pub teams: Vec<Arc<TeamEntry>>,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Users {
    /// Builds the user directory; quota state carries over from `prev` by user id.
    pub fn build(cfg: &Config, table: &Table, prev: Option<&Users>) -> Users {
        let prev_rates: HashMap<&str, &Arc<LocalQuota>> = prev
            .map(|p| {
                p.users
                    .iter()
                    .filter_map(|u| u.rate.as_ref().map(|(_, s)| (&*u.id, s)))
                    .collect()
            })
            .unwrap_or_default();
        let prev_teams: HashMap<&str, &Arc<AtomicU64>> = prev
            .map(|p| p.teams.iter().map(|t| (&*t.id, &t.in_flight)).collect())
            .unwrap_or_default();
        let teams: Vec<Arc<TeamEntry>> = cfg
            .teams
            .iter()
            .map(|t| {
                Arc::new(TeamEntry {
                    id: t.id.as_str().into(),
                    name: t.name.clone(),
                    budget: t.budget,
                    max_concurrent: t.max_concurrent,
                    in_flight: prev_teams
                        .get(t.id.as_str())
                        .map(|n| Arc::clone(n))
                        .unwrap_or_default(),
                })
            })
            .collect();
        let team_by_id: HashMap<&str, &Arc<TeamEntry>> =
            teams.iter().map(|t| (&*t.id, t)).collect();
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
                team: u
                    .team
                    .as_deref()
                    .and_then(|t| team_by_id.get(t))
                    .map(|t| Arc::clone(t)),
                budget: u.budget,
            }));
        }
        drop(team_by_id);
        let built = Users {
            by_digest,
            users,
            teams,
        };
        built.publish_budgets(prev);
        built
    }

    /// Sets `berry_budget_usd{scope,id,window}` for every budget of this directory (and
    /// creates its `berry_spend_usd` series, keeping its value) and removes both series of
    /// `prev`'s budgets that no longer exist.
    fn publish_budgets(&self, prev: Option<&Users>) {
        let series = |u: &Users| -> Vec<(&'static str, Arc<str>, usize, f64)> {
            let users = u.users.iter().map(|x| ("user", &x.id, x.budget));
            let teams = u.teams.iter().map(|x| ("team", &x.id, x.budget));
            users
                .chain(teams)
                .flat_map(|(scope, id, b)| {
                    b.by_window()
                        .into_iter()
                        .enumerate()
                        .filter_map(move |(w, usd)| Some((scope, Arc::clone(id), w, usd?)))
                })
                .collect()
        };
        let now = series(self);
        if let Some(prev) = prev {
            let kept: std::collections::HashSet<(&str, &Arc<str>, usize)> =
                now.iter().map(|(s, i, w, _)| (*s, i, *w)).collect();
            for (scope, id, w, _) in series(prev) {
                if !kept.contains(&(scope, &id, w)) {
                    let labels = [scope, &*id, BUDGET_WINDOWS[w]];
                    let _ = crate::metrics::BUDGET_USD.remove_label_values(&labels);
                    let _ = crate::metrics::SPEND_USD.remove_label_values(&labels);
                }
            }
        }
        for (scope, id, w, usd) in now {
            let labels = [scope, &*id, BUDGET_WINDOWS[w]];
            crate::metrics::BUDGET_USD
                .with_label_values(&labels)
                .set(usd);
            // The spend series exists from the start (at 0 until the first settlement).
            crate::metrics::SPEND_USD.with_label_values(&labels);
        }
    }

    /// The team with id `id`.
    pub fn team(&self, id: &str) -> Option<&Arc<TeamEntry>> {
        self.teams.iter().find(|t| &*t.id == id)
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
/// `x-api-key` headers; on the Gemini API's routes (`/v1beta/…`, `…/models/{m}:{method}`)
/// also Google's `x-goog-api-key` header or `?key=` query parameter.
pub fn request_token(req: &pingora_http::RequestHeader) -> Option<&[u8]> {
    let header = |name: &str| req.headers.get(name).map(|v| v.as_bytes());
    client_token(header("authorization"), header("x-api-key")).or_else(|| {
        let path = req.uri.path();
        let gemini =
            path.starts_with("/v1beta/") || (path.starts_with("/v1/models/") && path.contains(':'));
        if !gemini {
            return None;
        }
        header("x-goog-api-key")
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
            .or_else(|| query_key(req.uri.query()))
    })
}

/// The `key` parameter of a query string (Google's API-key parameter), as sent.
fn query_key(query: Option<&str>) -> Option<&[u8]> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .map(str::as_bytes)
        .filter(|t| !t.is_empty())
}

/// Compares a presented secret with the expected one in constant time (admin token).
pub fn secret_matches(presented: &[u8], expected: &str) -> bool {
    bool::from(digest(presented).ct_eq(&digest(expected.as_bytes())))
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
[users.carol.rate_limit]
[users.dave]
token = "tok-dave"
[users.dave.rate_limit]
requests_per_minute = 5
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
    fn an_empty_rate_limit_table_limits_nothing() {
        let (_, u) = users();
        let carol = u.authenticate(b"tok-carol").unwrap();
        assert!(
            carol.limits().is_none(),
            "empty table: no quota bookkeeping"
        );
        let dave = u.authenticate(b"tok-dave").unwrap();
        assert_eq!(dave.limits().map(|(l, _)| l.per_minute), Some(Some(5)));
    }

    #[test]
    fn teams_carry_their_in_flight_requests_across_a_rebuild() {
        let text = |team: &str| {
            format!(
                "[teams.red]\nmax_concurrent = 1\nbudget_usd_per_month = 3\n[teams.blue]\n\
                 [users.a]\ntoken = \"ta\"\nteam = \"{team}\"\nbudget_usd_per_day = 2\n"
            )
        };
        let cfg = load_str(&text("red"), Format::Toml, &|_| None).unwrap();
        let t = Table::build(&cfg, None, 0).unwrap();
        let u = Users::build(&cfg, &t, None);
        let a = u.authenticate(b"ta").unwrap();
        assert_eq!(a.team_id(), Some("red"));
        assert_eq!(a.budget.by_window(), [Some(2.0), None]);
        let red = a.team.as_ref().unwrap();
        assert_eq!(red.budget.by_window(), [None, Some(3.0)]);
        let slot = red.try_take_slot().unwrap();
        assert!(slot.is_some());
        assert!(red.try_take_slot().is_err(), "cap of 1");
        // a rebuild keeps the held slot; the user moves to blue
        let cfg2 = load_str(&text("blue"), Format::Toml, &|_| None).unwrap();
        let u2 = Users::build(&cfg2, &t, Some(&u));
        assert_eq!(u2.team("red").unwrap().in_flight(), 1);
        assert!(u2.team("red").unwrap().try_take_slot().is_err());
        let a2 = u2.authenticate(b"ta").unwrap();
        assert_eq!(a2.team_id(), Some("blue"));
        assert!(
            matches!(a2.team.as_ref().unwrap().try_take_slot(), Ok(None)),
            "no cap"
        );
        drop(slot);
        assert_eq!(u2.team("red").unwrap().in_flight(), 0);
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
}
