//! Session affinity: the requests of one session (one agent conversation) go to one backend
//! while it is usable, so the provider account's prompt cache stays warm.
//!
//! A session's backend is chosen by weighted rendezvous hashing: every backend gets the score
//! `-ln(u) / weight`, `u` a uniform number in (0, 1) derived from the hash of (session key,
//! backend id), and the lowest score wins. A backend then wins with probability
//! `weight / Σ weight` across sessions, every replica computes the same ranking without
//! talking to the others, and a backend leaving or joining moves only the sessions that
//! ranked it first. (`failover` ranks by priority first, so sessions stay on the
//! highest-priority backends like every other request.)
//!
//! When the session's backend is not usable (unhealthy, circuit open, cooling down, or
//! already tried by this request), the session moves to its next-ranked usable backend and
//! the move is remembered for the model's `affinity_ttl` in [`super::moves::SessionMoves`] (bounded), and
//! by the caller in the shared state, so later requests follow the cache to its new home.

use super::state::Availability;
use super::table::{Backend, ModelRoute, SelectInput, Selected};
use crate::body::{BodySessionKeys, SessionKey};
use crate::config::Strategy;
use smallvec::SmallVec;

/// The outcome of one selection, as `berry_affinity_total{result}` counts it (the value is
/// the index into [`crate::metrics::AFFINITY_RESULTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityResult {
    /// The session went to its backend.
    Kept = 0,
    /// The session went to another backend (and stays there for the TTL when it was usable).
    Moved = 1,
    /// No session key, or affinity is off for the model.
    None = 2,
}

/// What a request knows about its session, from admission to its last attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session {
    /// Session keys found in the body.
    pub body: BodySessionKeys,
    /// The session key in force (body or headers, first present), if any.
    pub key: Option<SessionKey>,
    /// The backend (its [`Backend::id_hash`]) the session was moved to earlier and must
    /// stay on, when a move is remembered.
    pub remembered: Option<u64>,
    /// The session's backend (index into the model's backends), fixed by the first
    /// selection: a later attempt elsewhere is a move.
    pub home: Option<usize>,
    /// The latest selection moved the session to the backend now in `remembered`; the
    /// caller shares the move (once) and clears this.
    pub moved: bool,
}

/// splitmix64's finalizer: a bijective mix of 64 bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The rendezvous score of `backend` (its id hash and weight) for `session`: lower ranks
/// first. `-ln(u) / weight` with `u` uniform in (0, 1), so the first place goes to a backend
/// with probability proportional to its weight.
pub fn score(session: SessionKey, backend_hash: u64, weight: f64) -> f64 {
    let h = mix(session.0 ^ mix(backend_hash));
    // 53 random bits, centred in their interval: never 0, never 1.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let w = if weight > 0.0 && weight.is_finite() {
        weight
    } else {
        f64::MIN_POSITIVE
    };
    -u.ln() / w
}

/// One candidate of a session selection.
#[derive(Clone, Copy)]
struct Slot {
    index: usize,
    availability: Availability,
    /// (priority for `failover`, else 0; rendezvous score): lower ranks first.
    rank: (u32, f64),
}

impl ModelRoute {
    /// Chooses a backend for an attempt of `session` (which must have a key) among those
    /// `eligible` returns true for, by rendezvous rank, keeping the session on its backend
    /// while usable; a session sent elsewhere is recorded as moved (in `session` and, when
    /// the new backend is usable, in this model's remembered moves). `None` when nothing is
    /// eligible.
    pub fn select_session(
        &self,
        input: &mut SelectInput<'_>,
        session: &mut Session,
        eligible: impl Fn(usize, &Backend) -> bool,
    ) -> Option<(Selected, AffinityResult)> {
        let key = session.key?;
        let now = input.now_ms;
        let failover = self.strategy == Strategy::Failover;
        let mut slots: SmallVec<[Slot; 8]> = SmallVec::new();
        for (i, b) in self.backends.iter().enumerate() {
            if eligible(i, b) {
                let priority = if failover { b.priority } else { 0 };
                slots.push(Slot {
                    index: i,
                    availability: b.availability(now),
                    rank: (priority, score(key, b.id_hash, b.weight)),
                });
            }
        }
        if slots.is_empty() {
            return None;
        }
        slots.sort_by(|a, b| a.rank.0.cmp(&b.rank.0).then(a.rank.1.total_cmp(&b.rank.1)));
        let home = *session.home.get_or_insert_with(|| {
            session
                .remembered
                .and_then(|h| self.backends.iter().position(|b| b.id_hash == h))
                .filter(|&i| slots.iter().any(|s| s.index == i))
                .unwrap_or(slots[0].index)
        });
        // The session's backend first, then the others in rank order.
        if let Some(at) = slots.iter().position(|s| s.index == home) {
            slots[..=at].rotate_right(1);
        }
        let mut chosen = None;
        for s in &slots {
            match s.availability {
                Availability::Available => {
                    chosen = Some((s.index, false));
                    break;
                }
                Availability::Probe if self.backends[s.index].state.try_claim_probe(now) => {
                    chosen = Some((s.index, true));
                    break;
                }
                _ => {}
            }
        }
        let (selected, usable) = match chosen {
            Some((index, probe)) => (
                Selected {
                    index,
                    last_resort: false,
                    probe,
                },
                true,
            ),
            // Nothing usable: the best-ranked eligible backend anyway (the session's own
            // when it is eligible), as every strategy's last resort.
            None => (
                Selected {
                    index: slots[0].index,
                    last_resort: true,
                    probe: false,
                },
                false,
            ),
        };
        if selected.index == home {
            return Some((selected, AffinityResult::Kept));
        }
        if usable {
            let id_hash = self.backends[selected.index].id_hash;
            session.remembered = Some(id_hash);
            session.moved = true;
            let until = now.saturating_add(self.affinity_ttl_ms);
            self.moves.remember(key, id_hash, until);
        }
        Some((selected, AffinityResult::Moved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_the_weights_across_sessions() {
        let mut wins = [0usize; 2];
        for i in 0..20_000u64 {
            let k = SessionKey(mix(i));
            let a = score(k, 11, 3.0);
            let b = score(k, 22, 1.0);
            wins[usize::from(b < a)] += 1;
        }
        let share = wins[0] as f64 / 20_000.0;
        assert!((share - 0.75).abs() < 0.015, "{wins:?}");
    }

    fn table(strategy: &str) -> super::super::Table {
        let text = format!(
            r#"
[settings]
circuit_breaker_failure_threshold = 1
circuit_breaker_timeout_seconds = 1
[providers.a]
base_url = "http://127.0.0.1:1/v1"
api_key = "ka"
[providers.b]
base_url = "http://127.0.0.1:2/v1"
api_key = "kb"
[models.m]
name = "x"
strategy = "{strategy}"
[[models.m.backends]]
provider = "a"
model = "r"
weight = 3
[[models.m.backends]]
provider = "b"
model = "r"
weight = 1
"#
        );
        let cfg = crate::config::load_str(&text, crate::config::Format::Toml, &|_| None).unwrap();
        super::super::Table::build(&cfg, None, 0).unwrap()
    }

    fn pick(
        t: &super::super::Table,
        s: &mut Session,
        now: u64,
        tried: &[usize],
    ) -> (usize, AffinityResult) {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut input = SelectInput {
            now_ms: now,
            rng: &mut rng,
            table: t,
        };
        let (sel, r) = t.models[0]
            .select_session(&mut input, s, |i, _| !tried.contains(&i))
            .unwrap();
        (sel.index, r)
    }

    fn session(i: u64) -> Session {
        Session {
            key: SessionKey::of(format!("session-{i}").as_bytes()),
            ..Session::default()
        }
    }

    #[test]
    fn affinity_keys_are_validated_with_their_paths() {
        let t = table("round_robin");
        assert_eq!(t.models[0].affinity, crate::config::Affinity::Session);
        assert_eq!(t.models[0].affinity_ttl_ms, 3_600_000);
        assert!(t.providers.iter().all(|p| p.auto_cache));
        let text = r#"
[providers.a]
base_url = "http://127.0.0.1:1/v1"
api_key = "ka"
auto_cache = "yes"
[models.m]
affinity = "sticky"
affinity_ttl_seconds = 0
[[models.m.backends]]
provider = "a"
model = "r"
"#;
        let load =
            |text: &str| crate::config::load_str(text, crate::config::Format::Toml, &|_| None);
        let e = load(text).unwrap_err().to_string();
        assert!(e.contains("providers.a.auto_cache"), "{e}");
        let e = load(&text.replace("auto_cache = \"yes\"", ""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("models.m.affinity: `sticky` is not session or none"),
            "{e}"
        );
        assert!(e.contains("models.m.affinity_ttl_seconds"), "{e}");
        let ok = text
            .replace("auto_cache = \"yes\"", "auto_cache = false")
            .replace("\"sticky\"", "\"none\"")
            .replace("= 0\n", "= 60\n");
        let t = super::super::Table::build(&load(&ok).unwrap(), None, 0).unwrap();
        assert_eq!(t.models[0].affinity, crate::config::Affinity::None);
        assert_eq!(t.models[0].affinity_ttl_ms, 60_000);
        assert!(!t.providers[0].auto_cache);
    }

    #[test]
    fn a_thousand_sessions_split_by_weight_and_each_sticks() {
        for (strategy, _) in crate::config::Strategy::ALL {
            let t = table(strategy);
            let mut on_a = 0;
            for i in 0..1000 {
                let (first, r) = pick(&t, &mut session(i), 0, &[]);
                assert_eq!(r, AffinityResult::Kept);
                on_a += usize::from(first == 0);
                for _ in 0..3 {
                    assert_eq!(pick(&t, &mut session(i), 0, &[]).0, first, "{strategy}");
                }
            }
            if strategy != "failover" {
                let share = on_a as f64 / 1000.0;
                assert!((share - 0.75).abs() < 0.04, "{strategy}: {on_a}");
            }
        }
    }

    #[test]
    fn a_session_moves_off_a_failed_backend_and_stays_for_the_ttl() {
        let t = table("weighted_random");
        let m = &t.models[0];
        let i = (0..100)
            .find(|&i| pick(&t, &mut session(i), 0, &[]).0 == 0)
            .unwrap();
        // failed before the first byte of this request: the retry moves the session
        let mut s = session(i);
        assert_eq!(pick(&t, &mut s, 0, &[]), (0, AffinityResult::Kept));
        assert_eq!(pick(&t, &mut s, 0, &[0]), (1, AffinityResult::Moved));
        assert!(s.moved);
        assert_eq!(s.remembered, Some(m.backends[1].id_hash));
        // the next request finds the move and stays, though `a` is usable again
        let remembered = m.moves.get(s.key.unwrap(), 10);
        assert_eq!(remembered, Some(m.backends[1].id_hash));
        let mut next = Session {
            remembered,
            ..session(i)
        };
        assert_eq!(pick(&t, &mut next, 10, &[]), (1, AffinityResult::Kept));
        // after the TTL the session is back on its first backend
        assert_eq!(m.moves.get(s.key.unwrap(), m.affinity_ttl_ms + 1), None);
        assert_eq!(pick(&t, &mut session(i), m.affinity_ttl_ms + 1, &[]).0, 0);
        // an open circuit moves a session without a failed attempt of its own
        let j = (200..300)
            .find(|&j| pick(&t, &mut session(j), 0, &[]).0 == 0)
            .unwrap();
        m.backends[0].state.record(
            super::super::Outcome::ServerError,
            20,
            &t.breaker,
            &t.settings.smart_ai,
        );
        let mut s = session(j);
        assert_eq!(pick(&t, &mut s, 21, &[]), (1, AffinityResult::Moved));
        // nothing usable: the session's own backend as a last resort, nothing remembered
        m.backends[1].state.record(
            super::super::Outcome::ServerError,
            22,
            &t.breaker,
            &t.settings.smart_ai,
        );
        let mut rng = fastrand::Rng::with_seed(1);
        let mut input = SelectInput {
            now_ms: 23,
            rng: &mut rng,
            table: &t,
        };
        let (sel, r) = m
            .select_session(&mut input, &mut session(j), |_, _| true)
            .unwrap();
        assert!(sel.last_resort);
        assert_eq!((sel.index, r), (0, AffinityResult::Kept));
    }
}
