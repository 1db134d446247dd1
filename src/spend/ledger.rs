//! This replica's spend ledger: cost (whole micro-dollars) and tokens per user, team,
//! model and backend, per UTC day and month.
//!
//! It lives outside the config snapshot (one per process, keyed by id), so a reload keeps
//! it, and a user moved to another team charges the new team from then on. Each
//! settlement and each lookup is a few hash-map operations under one short lock, never
//! held across an await. Day periods older than [`KEEP_DAYS`] and month periods older
//! than [`KEEP_MONTHS`] are dropped when a new period starts.

use super::window::{Period, Window, WINDOWS};
use crate::vocab::TokenUsage;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Day periods kept for reading.
pub const KEEP_DAYS: i64 = 92;
/// Month periods kept for reading.
pub const KEEP_MONTHS: i64 = 25;

/// What spend is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    User,
    Team,
    /// The client-facing model.
    Model,
    /// The backend id (as in the access log).
    Backend,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::User, Scope::Team, Scope::Model, Scope::Backend];

    /// `user`, `team`, `model` or `backend`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Team => "team",
            Scope::Model => "model",
            Scope::Backend => "backend",
        }
    }

    /// The scope named `s`.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Spend of one id in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Cost in whole micro-dollars.
    pub micros: u64,
    pub tokens: TokenUsage,
}

impl Totals {
    /// Adds `micros` and `tokens` (saturating).
    pub fn add(&mut self, micros: u64, tokens: &TokenUsage) {
        self.micros = self.micros.saturating_add(micros);
        let t = &mut self.tokens;
        t.input = t.input.saturating_add(tokens.input);
        t.output = t.output.saturating_add(tokens.output);
        t.cache_read = t.cache_read.saturating_add(tokens.cache_read);
        t.cache_write = t.cache_write.saturating_add(tokens.cache_write);
    }
}

/// One finished request's charge.
#[derive(Debug, Clone, Copy)]
pub struct Charge<'a> {
    pub user: &'a str,
    /// The user's team at admission, if any.
    pub team: Option<&'a str>,
    pub model: &'a str,
    pub backend: &'a str,
    /// Cost in whole micro-dollars.
    pub micros: u64,
    pub usage: TokenUsage,
    /// When it is charged (ms since 1970, UTC): picks the day and month.
    pub at_ms: i64,
}

/// The spend of a user and of its team after a settlement: `[day, month]` micro-dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    pub user: [u64; 2],
    pub team: Option<[u64; 2]>,
}

/// Keys are configured ids (users, teams, models, backends), never client input, so the
/// hasher is `foldhash`'s fast one rather than SipHash (a settlement hashes a dozen keys).
type Book = HashMap<(Scope, Period), HashMap<Arc<str>, Totals, Fast>, Fast>;
type Fast = foldhash::fast::RandomState;

/// The in-process ledger. Share it (`Arc`) between the request path and the endpoints.
#[derive(Debug, Default)]
pub struct Ledger {
    book: Mutex<Book>,
}

impl Ledger {
    fn book(&self) -> MutexGuard<'_, Book> {
        // A poisoned lock only means a panic elsewhere; the data is plain sums.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `c` to its user, team, model and backend in the day and month of `c.at_ms`;
    /// returns the user's and team's totals after it.
    pub fn settle(&self, c: &Charge<'_>) -> Balance {
        let mut book = self.book();
        let mut balance = Balance::default();
        let mut team = [0u64; 2];
        for (w, window) in WINDOWS.into_iter().enumerate() {
            let period = Period::containing(window, c.at_ms);
            let ids = [
                (Scope::User, Some(c.user)),
                (Scope::Team, c.team),
                (Scope::Model, Some(c.model)),
                (Scope::Backend, Some(c.backend)),
            ];
            for (scope, id) in ids {
                let Some(id) = id else { continue };
                let after = add(&mut book, scope, period, id, c.micros, &c.usage);
                match scope {
                    Scope::User => balance.user[w] = after,
                    Scope::Team => team[w] = after,
                    _ => {}
                }
            }
        }
        balance.team = c.team.map(|_| team);
        balance
    }

    /// Micro-dollars `id` of `scope` spent in `period`.
    pub fn spent(&self, scope: Scope, id: &str, period: Period) -> u64 {
        self.book()
            .get(&(scope, period))
            .and_then(|ids| ids.get(id))
            .map_or(0, |t| t.micros)
    }

    /// Every id of `scope` with spend in `period`, and its totals (unordered).
    pub fn rows(&self, scope: Scope, period: Period) -> Vec<(Arc<str>, Totals)> {
        self.book()
            .get(&(scope, period))
            .map(|ids| ids.iter().map(|(k, v)| (Arc::clone(k), *v)).collect())
            .unwrap_or_default()
    }
}

/// Adds to the totals of `id` in `(scope, period)` (created at zero; a new period drops
/// the periods of its window too old to keep) and returns its micro-dollars after. The id
/// is copied only the first time it appears in the period.
fn add(
    book: &mut Book,
    scope: Scope,
    period: Period,
    id: &str,
    micros: u64,
    usage: &TokenUsage,
) -> u64 {
    if !book.contains_key(&(scope, period)) {
        prune(book, period);
    }
    let ids = book.entry((scope, period)).or_default();
    if let Some(t) = ids.get_mut(id) {
        t.add(micros, usage);
        return t.micros;
    }
    let t = ids.entry(Arc::from(id)).or_default();
    t.add(micros, usage);
    t.micros
}

/// Drops the periods of `current`'s window that ended long enough before it.
fn prune(book: &mut Book, current: Period) {
    const DAY_MS: i64 = 86_400_000;
    let keep_ms = match current.window {
        Window::Day => KEEP_DAYS * DAY_MS,
        Window::Month => KEEP_MONTHS * 31 * DAY_MS,
    };
    let oldest = current.start_ms().saturating_sub(keep_ms);
    book.retain(|(_, p), _| p.window != current.window || p.end_ms() > oldest);
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn charge<'a>(user: &'a str, team: Option<&'a str>, micros: u64, at_ms: i64) -> Charge<'a> {
        Charge {
            user,
            team,
            model: "m",
            backend: "m/p/x",
            micros,
            usage: TokenUsage {
                input: 10,
                output: 5,
                cache_read: 2,
                cache_write: 1,
            },
            at_ms,
        }
    }

    #[test]
    fn charges_land_in_every_scope_and_window() {
        let l = Ledger::default();
        let t0 = 1_796_601_600_000; // 2026-12-07T00:00:00Z
        let b = l.settle(&charge("alice", Some("red"), 300, t0 + 5));
        assert_eq!(
            b,
            Balance {
                user: [300, 300],
                team: Some([300, 300])
            }
        );
        let b = l.settle(&charge("bob", Some("red"), 200, t0 + DAY));
        assert_eq!(
            b,
            Balance {
                user: [200, 200],
                team: Some([200, 500])
            },
            "new day, same month"
        );
        let b = l.settle(&charge("bob", None, 1, t0 + DAY + 1));
        assert_eq!(
            b,
            Balance {
                user: [201, 201],
                team: None
            }
        );
        let day = Period::containing(Window::Day, t0);
        let month = Period::containing(Window::Month, t0);
        assert_eq!(l.spent(Scope::Team, "red", day), 300);
        assert_eq!(l.spent(Scope::Team, "red", month), 500);
        assert_eq!(l.spent(Scope::Model, "m", month), 501);
        assert_eq!(l.spent(Scope::Backend, "m/p/x", day), 300);
        assert_eq!(l.spent(Scope::User, "carol", day), 0);
        let rows = l.rows(Scope::User, month);
        assert_eq!(rows.len(), 2);
        let bob = rows.iter().find(|(id, _)| &**id == "bob").unwrap().1;
        assert_eq!(bob.tokens.input, 20);
        assert_eq!(bob.tokens.cache_write, 2);
    }

    #[test]
    fn old_periods_are_dropped_when_a_new_one_starts() {
        let l = Ledger::default();
        let t0 = 1_796_601_600_000;
        l.settle(&charge("alice", None, 1, t0));
        let old = Period::containing(Window::Day, t0);
        l.settle(&charge("alice", None, 1, t0 + 10 * DAY));
        assert_eq!(l.spent(Scope::User, "alice", old), 1, "kept");
        l.settle(&charge("alice", None, 1, t0 + (KEEP_DAYS + 2) * DAY));
        assert_eq!(l.spent(Scope::User, "alice", old), 0, "dropped");
        let month = Period::containing(Window::Month, t0);
        assert_eq!(
            l.spent(Scope::User, "alice", month),
            2,
            "months are kept longer"
        );
    }
}
