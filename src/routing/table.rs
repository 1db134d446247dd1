//! The routing table: client-facing model name → backends, with per-backend state, and
//! candidate selection for one attempt.
//!
//! A table is built from a validated config (reusing the runtime state of backends,
//! providers and round-robin cursors that exist in the previous table) and never changes
//! afterwards; a reload builds a new one and swaps it in whole.

use super::moves::SessionMoves;
use super::state::{Availability, BackendState, BreakerSettings};
use super::strategy::{pick, Cand, PickInput};
use crate::body::SessionKey;
use crate::config::{Affinity, Config, Settings, Strategy};
use crate::metrics::{BackendMetrics, ModelMetrics};
use crate::providers::{ProviderHealth, ProviderRoute, ResolvedAddrs};
use crate::vocab::Price;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// One backend: a (provider account, real model) pair serving a model.
#[derive(Debug)]
pub struct Backend {
    /// Stable id `model_key/provider_id/real_model`; state carries over under it.
    pub id: Arc<str>,
    /// The hash of `id` ([`SessionKey::of`]): the backend's name in session affinity
    /// (rendezvous scores, remembered moves), the same on every replica.
    pub id_hash: u64,
    pub provider: Arc<ProviderRoute>,
    /// Real upstream model name.
    pub real_model: String,
    /// `real_model` as a JSON string literal (with quotes), ready to splice into a body.
    pub model_literal: Vec<u8>,
    pub weight: f64,
    pub priority: u32,
    pub tags: Vec<String>,
    /// Tagged `premium` (smart_ai's stability bonus goes to the others).
    pub premium: bool,
    pub state: Arc<BackendState>,
    /// USD per million tokens of `real_model` (resolved from the config once per table).
    /// `None`: unpriced; its requests cost 0.
    pub price: Option<Price>,
    /// Per-request metric handles, resolved on first use ([`crate::metrics`]).
    pub metrics: BackendMetrics,
}

impl Backend {
    /// Tag filter: a user without tags sees every backend; otherwise a backend is
    /// visible when it has no tags or shares one with the user.
    pub fn visible_to(&self, user_tags: &[String]) -> bool {
        user_tags.is_empty()
            || self.tags.is_empty()
            || self.tags.iter().any(|t| user_tags.contains(t))
    }

    /// Whether this backend may take traffic now: its provider is not actively unhealthy
    /// and its own state (circuit, cooldown) allows it. The one definition of "available"
    /// used by selection, `/health` and `/admin`.
    pub fn availability(&self, now_ms: u64) -> Availability {
        if self.provider.health.is_healthy() {
            self.state.availability(now_ms)
        } else {
            Availability::Unavailable
        }
    }

    /// [`availability`](Self::availability) is anything but `Unavailable`.
    pub fn is_available(&self, now_ms: u64) -> bool {
        self.availability(now_ms) != Availability::Unavailable
    }
}

/// A client-facing model.
#[derive(Debug)]
pub struct ModelRoute {
    pub key: String,
    /// Position of this model in [`Table::models`] (what users' permissions refer to).
    pub index: usize,
    /// Client-facing name.
    pub name: String,
    pub strategy: Strategy,
    /// Enabled backends on enabled providers, in config order. Shared so an attempt can
    /// hold the backend it was sent to.
    pub backends: Vec<Arc<Backend>>,
    /// Round-robin cursor, carried over on reload.
    pub cursor: Arc<AtomicU64>,
    /// Session affinity (`affinity`).
    pub affinity: Affinity,
    /// How long a moved session stays on its new backend (`affinity_ttl_seconds`), in ms.
    pub affinity_ttl_ms: u64,
    /// Remembered session moves, carried over on reload.
    pub moves: Arc<SessionMoves>,
    /// Per-request metric handles, resolved on first use ([`crate::metrics`]).
    pub metrics: ModelMetrics,
}

/// The backend chosen for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    /// Index into [`ModelRoute::backends`].
    pub index: usize,
    /// No candidate was available; this one was tried anyway (last resort: a request is never refused only because health checks are pessimistic).
    pub last_resort: bool,
    /// This attempt is the half-open circuit's probe; release it if the attempt is abandoned.
    pub probe: bool,
}

/// Per-attempt inputs of [`ModelRoute::select`].
pub struct SelectInput<'a> {
    pub now_ms: u64,
    pub rng: &'a mut fastrand::Rng,
    pub table: &'a Table,
}

impl ModelRoute {
    /// Chooses a backend among those `eligible` returns true for (tags, not yet tried,
    /// provider attempt cap). Available backends are preferred; when none is, the strategy
    /// ranks all eligible ones (last resort). `None` when nothing is eligible.
    pub fn select(
        &self,
        input: &mut SelectInput<'_>,
        eligible: impl Fn(usize, &Backend) -> bool,
    ) -> Option<Selected> {
        let table = input.table;
        let now = input.now_ms;
        let smart = &table.settings.smart_ai;
        let mut slots: SmallVec<[(usize, Availability); 8]> = SmallVec::new();
        for (i, b) in self.backends.iter().enumerate() {
            if eligible(i, b) {
                slots.push((i, b.availability(now)));
            }
        }
        if slots.is_empty() {
            return None;
        }
        let cand = |i: usize| {
            let b = &self.backends[i];
            let needs_confidence = self.strategy == Strategy::SmartAi;
            Cand {
                weight: b.weight,
                priority: b.priority,
                ewma_ms: b.state.ewma_ms(),
                inflight: b.state.inflight(),
                confidence: if needs_confidence {
                    b.state.confidence(now, smart)
                } else {
                    0.0
                },
                premium: b.premium,
            }
        };
        let mut available: SmallVec<[(usize, Availability); 8]> = slots
            .iter()
            .copied()
            .filter(|(_, a)| *a != Availability::Unavailable)
            .collect();
        while !available.is_empty() {
            let cands: SmallVec<[Cand; 8]> = available.iter().map(|(i, _)| cand(*i)).collect();
            let mut pi = PickInput {
                rng: input.rng,
                cursor: &self.cursor,
                smart,
            };
            let k = pick(self.strategy, &cands, &mut pi)?;
            let (index, avail) = available[k];
            if avail == Availability::Probe {
                if self.backends[index].state.try_claim_probe(now) {
                    return Some(Selected {
                        index,
                        last_resort: false,
                        probe: true,
                    });
                }
                // Another request took the probe slot meanwhile.
                available.remove(k);
                continue;
            }
            return Some(Selected {
                index,
                last_resort: false,
                probe: false,
            });
        }
        let cands: SmallVec<[Cand; 8]> = slots.iter().map(|(i, _)| cand(*i)).collect();
        let mut pi = PickInput {
            rng: input.rng,
            cursor: &self.cursor,
            smart,
        };
        let k = pick(self.strategy, &cands, &mut pi)?;
        Some(Selected {
            index: slots[k].0,
            last_resort: true,
            probe: false,
        })
    }

    /// True when at least one backend is available now (for `/health`).
    pub fn has_available_backend(&self, now_ms: u64) -> bool {
        self.backends.iter().any(|b| b.is_available(now_ms))
    }
}

/// An immutable routing snapshot.
#[derive(Debug)]
pub struct Table {
    pub settings: Settings,
    pub breaker: BreakerSettings,
    /// Enabled models, in config (key) order.
    pub models: Vec<Arc<ModelRoute>>,
    by_name: HashMap<String, usize>,
    by_key: HashMap<String, usize>,
    /// Every provider, enabled or not.
    pub providers: Vec<Arc<ProviderRoute>>,
}

impl Table {
    /// Builds a table from a validated config, carrying over backend state, provider health,
    /// resolved addresses and round-robin cursors from `prev` where ids match.
    pub fn build(cfg: &Config, prev: Option<&Table>, now_ms: u64) -> Result<Table, String> {
        let s = &cfg.settings;
        let mut prev_backends: HashMap<&str, &Arc<BackendState>> = HashMap::new();
        let mut prev_cursors: HashMap<&str, &Arc<AtomicU64>> = HashMap::new();
        let mut prev_moves: HashMap<&str, &Arc<SessionMoves>> = HashMap::new();
        let mut prev_health: HashMap<&str, (&Arc<ProviderHealth>, u64)> = HashMap::new();
        let mut prev_addrs: HashMap<(String, u16), &Arc<ResolvedAddrs>> = HashMap::new();
        if let Some(prev) = prev {
            for m in &prev.models {
                prev_cursors.insert(&m.key, &m.cursor);
                prev_moves.insert(&m.key, &m.moves);
                for b in &m.backends {
                    prev_backends.insert(&b.id, &b.state);
                }
            }
            for p in &prev.providers {
                prev_health.insert(&p.id, (&p.health, p.identity));
                prev_addrs.insert(p.addrs.key(), &p.addrs);
            }
        }

        let mut providers = Vec::with_capacity(cfg.providers.len());
        let mut provider_idx = HashMap::new();
        let mut new_addrs: HashMap<(String, u16), Arc<ResolvedAddrs>> = HashMap::new();
        let mut changed: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for p in &cfg.providers {
            let key = (p.endpoint.host.clone(), p.endpoint.port);
            let addrs = match prev_addrs.get(&key) {
                Some(a) => Arc::clone(a),
                None => Arc::clone(new_addrs.entry(key).or_insert_with(|| {
                    Arc::new(ResolvedAddrs::new(&p.endpoint.host, p.endpoint.port))
                })),
            };
            // A changed account (base URL, key or API) starts fresh: its old health, and the
            // old state of its backends, describe another account.
            let identity = crate::providers::identity(p);
            let carried = prev_health
                .get(p.id.as_str())
                .filter(|(_, prev)| *prev == identity);
            if prev_health.contains_key(p.id.as_str()) && carried.is_none() {
                changed.insert(p.id.as_str());
            }
            let health = carried.map(|(h, _)| Arc::clone(h)).unwrap_or_default();
            let route = ProviderRoute::build(p, s.request_timeout, health, addrs)?;
            provider_idx.insert(p.id.as_str(), providers.len());
            providers.push(Arc::new(route));
        }

        let mut models = Vec::new();
        let mut by_name = HashMap::new();
        let mut by_key = HashMap::new();
        for m in cfg.models.iter().filter(|m| m.enabled) {
            let mut backends = Vec::with_capacity(m.backends.len());
            for b in m.backends.iter().filter(|b| b.enabled) {
                let Some(&pi) = provider_idx.get(b.provider.as_str()) else {
                    return Err(format!("models.{}: unknown provider {}", m.key, b.provider));
                };
                let provider = &providers[pi];
                if !provider.enabled {
                    continue;
                }
                let id: Arc<str> = format!("{}/{}/{}", m.key, b.provider, b.model).into();
                let state = prev_backends
                    .get(&*id)
                    .filter(|_| !changed.contains(b.provider.as_str()))
                    .map(|s| Arc::clone(s))
                    .unwrap_or_else(|| {
                        Arc::new(BackendState::new(s.smart_ai.initial_confidence, now_ms))
                    });
                let metrics =
                    BackendMetrics::new(&m.name, &provider.id, &id, provider.backend_type);
                backends.push(Arc::new(Backend {
                    id_hash: SessionKey::of(id.as_bytes()).map_or(0, |k| k.0),
                    id,
                    provider: Arc::clone(provider),
                    model_literal: serde_json::to_vec(&b.model)
                        .map_err(|e| format!("models.{}: {e}", m.key))?,
                    real_model: b.model.clone(),
                    weight: b.weight,
                    priority: b.priority,
                    tags: b.tags.clone(),
                    premium: b.tags.iter().any(|t| t == "premium"),
                    state,
                    price: b.price,
                    metrics,
                }));
            }
            let cursor = prev_cursors
                .get(m.key.as_str())
                .map(|c| Arc::clone(c))
                .unwrap_or_default();
            by_name.insert(m.name.clone(), models.len());
            by_key.insert(m.key.clone(), models.len());
            models.push(Arc::new(ModelRoute {
                key: m.key.clone(),
                index: models.len(),
                name: m.name.clone(),
                strategy: m.strategy,
                backends,
                cursor,
                affinity: m.affinity,
                affinity_ttl_ms: crate::clock::ms(m.affinity_ttl),
                moves: prev_moves
                    .get(m.key.as_str())
                    .map(|c| Arc::clone(c))
                    .unwrap_or_default(),
                metrics: ModelMetrics::new(&m.name),
            }));
        }
        Ok(Table {
            breaker: BreakerSettings {
                failure_threshold: s.circuit_breaker_failure_threshold,
                open_ms: crate::clock::ms(s.circuit_breaker_timeout),
                success_threshold: s.circuit_breaker_success_threshold,
            },
            settings: s.clone(),
            models,
            by_name,
            by_key,
            providers,
        })
    }

    /// Index of the enabled model with this client-facing name.
    pub fn model_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Index of the enabled model with this key or client-facing name.
    pub fn model_index_by_key_or_name(&self, s: &str) -> Option<usize> {
        self.by_key.get(s).or_else(|| self.by_name.get(s)).copied()
    }

    /// Every host that needs DNS, once each.
    pub fn dns_hosts(&self) -> Vec<Arc<ResolvedAddrs>> {
        let mut seen = std::collections::HashSet::new();
        self.providers
            .iter()
            .filter(|p| p.addrs.needs_dns() && seen.insert(p.addrs.key()))
            .map(|p| Arc::clone(&p.addrs))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, Format};
    use crate::routing::state::Outcome;

    fn table(strategy: &str, extra: &str) -> Table {
        let text = format!(
            r#"
[settings]
circuit_breaker_failure_threshold = 2
circuit_breaker_timeout_seconds = 1
circuit_breaker_success_threshold = 1
[providers.a]
base_url = "http://127.0.0.1:1/v1"
api_key = "ka"
[providers.b]
base_url = "http://127.0.0.1:2/v1"
api_key = "kb"
[providers.off]
base_url = "http://127.0.0.1:3/v1"
api_key = "kc"
enabled = false
[models.m]
name = "gpt-x"
strategy = "{strategy}"
[[models.m.backends]]
provider = "a"
model = "real-a"
weight = 0.8
priority = 2
tags = ["premium"]
[[models.m.backends]]
provider = "b"
model = "real-b"
weight = 0.2
priority = 1
[[models.m.backends]]
provider = "off"
model = "real-c"
{extra}
"#
        );
        let cfg = load_str(&text, Format::Toml, &|_| None).unwrap();
        Table::build(&cfg, None, 0).unwrap()
    }

    fn select(t: &Table, rng: &mut fastrand::Rng, now: u64, tried: &[usize]) -> Option<Selected> {
        let m = &t.models[0];
        let mut input = SelectInput {
            now_ms: now,
            rng,
            table: t,
        };
        m.select(&mut input, |i, _| !tried.contains(&i))
    }

    #[test]
    fn disabled_providers_are_not_backends() {
        let t = table("failover", "");
        assert_eq!(t.models[0].backends.len(), 2);
        assert_eq!(&*t.models[0].backends[1].id, "m/b/real-b");
        assert_eq!(t.models[0].backends[0].model_literal, b"\"real-a\"");
        assert_eq!(t.model_index("gpt-x"), Some(0));
        assert_eq!(t.model_index("m"), None);
        assert_eq!(t.model_index_by_key_or_name("m"), Some(0));
    }

    #[test]
    fn failover_skips_tried_and_unavailable_then_falls_back() {
        let t = table("failover", "");
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(select(&t, &mut rng, 0, &[]).unwrap().index, 1);
        assert_eq!(select(&t, &mut rng, 0, &[1]).unwrap().index, 0);
        assert_eq!(select(&t, &mut rng, 0, &[0, 1]), None);
        // open b's circuit: a takes over
        let b = &t.models[0].backends[1].state;
        let sm = &t.settings.smart_ai;
        b.record(Outcome::ServerError, 0, &t.breaker, sm);
        b.record(Outcome::ServerError, 0, &t.breaker, sm);
        assert_eq!(select(&t, &mut rng, 10, &[]).unwrap().index, 0);
        // a unhealthy too: last resort keeps strategy order
        t.models[0].backends[0]
            .provider
            .health
            .record_check(false, None, 0);
        let s = select(&t, &mut rng, 10, &[]).unwrap();
        assert_eq!((s.index, s.last_resort), (1, true));
        // after the timeout, b's half-open probe goes first, once
        let s = select(&t, &mut rng, 1000, &[]).unwrap();
        assert_eq!((s.index, s.probe, s.last_resort), (1, true, false));
        let s = select(&t, &mut rng, 1000, &[]).unwrap();
        assert!(s.last_resort);
    }

    #[test]
    fn tag_filter() {
        let t = table("failover", "");
        let b = &t.models[0].backends;
        let premium = vec!["premium".to_string()];
        let other = vec!["basic".to_string()];
        assert!(b[0].visible_to(&[]));
        assert!(b[0].visible_to(&premium));
        assert!(!b[0].visible_to(&other));
        assert!(
            b[1].visible_to(&other),
            "untagged backends are visible to all"
        );
    }

    #[test]
    fn state_carries_over_on_rebuild() {
        let cfg_text = |w: f64| {
            format!(
                r#"
[providers.a]
base_url = "http://127.0.0.1:1/v1"
api_key = "ka"
[models.m]
name = "x"
strategy = "round_robin"
[[models.m.backends]]
provider = "a"
model = "r"
weight = {w}
"#
            )
        };
        let c1 = load_str(&cfg_text(1.0), Format::Toml, &|_| None).unwrap();
        let t1 = Table::build(&c1, None, 0).unwrap();
        t1.models[0].backends[0].state.observe_ttfb_ms(42.0);
        t1.models[0]
            .cursor
            .fetch_add(5, std::sync::atomic::Ordering::Relaxed);
        let c2 = load_str(&cfg_text(2.0), Format::Toml, &|_| None).unwrap();
        let t2 = Table::build(&c2, Some(&t1), 0).unwrap();
        assert_eq!(t2.models[0].backends[0].state.ewma_ms(), Some(42.0));
        assert_eq!(t2.models[0].backends[0].weight, 2.0);
        assert!(Arc::ptr_eq(&t1.models[0].cursor, &t2.models[0].cursor));
        assert!(Arc::ptr_eq(
            &t1.providers[0].health,
            &t2.providers[0].health
        ));
        // A changed key or base URL is another account: fresh health and backend state.
        for (from, to) in [("\"ka\"", "\"kb\""), ("127.0.0.1:1/v1", "127.0.0.1:2/v1")] {
            let c3 = load_str(&cfg_text(2.0).replace(from, to), Format::Toml, &|_| None).unwrap();
            let t3 = Table::build(&c3, Some(&t2), 0).unwrap();
            assert_eq!(t3.models[0].backends[0].state.ewma_ms(), None, "{to}");
            assert!(!Arc::ptr_eq(
                &t2.providers[0].health,
                &t3.providers[0].health
            ));
            assert!(Arc::ptr_eq(&t2.models[0].cursor, &t3.models[0].cursor));
        }
    }

    #[test]
    fn weighted_random_respects_weights_over_available() {
        let t = table("weighted_random", "");
        let mut rng = fastrand::Rng::with_seed(3);
        let mut counts = [0usize; 2];
        for _ in 0..20_000 {
            counts[select(&t, &mut rng, 0, &[]).unwrap().index] += 1;
        }
        let share = counts[0] as f64 / 20_000.0;
        assert!((share - 0.8).abs() < 0.02, "{counts:?}");
    }
}
