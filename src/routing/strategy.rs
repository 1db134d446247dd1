//! Load-balancing strategies as pure functions over a slice of candidates.
//!
//! The caller decides which candidates are eligible (tags, already tried) and available
//! (breaker, cooldown, provider health) and passes one slice; strategies only rank. The
//! randomness source and the round-robin cursor are passed in, so every strategy is
//! deterministic under test.

use crate::config::{SmartAiSettings, Strategy};
use std::sync::atomic::{AtomicU64, Ordering};

/// The share of `least_latency` picks spent on a backend other than the fastest.
pub const LATENCY_EXPLORATION: f64 = 0.05;

/// What a strategy sees of one candidate backend (copied from its state).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cand {
    pub weight: f64,
    /// 1 = highest.
    pub priority: u32,
    /// EWMA of time to first byte; `None` = never measured.
    pub ewma_ms: Option<f64>,
    pub inflight: u32,
    /// smart_ai confidence (0..=1).
    pub confidence: f64,
    /// Tagged `premium` (smart_ai's stability bonus goes to non-premium backends).
    pub premium: bool,
}

impl Default for Cand {
    fn default() -> Self {
        Cand {
            weight: 1.0,
            priority: 1,
            ewma_ms: None,
            inflight: 0,
            confidence: 0.8,
            premium: false,
        }
    }
}

/// Inputs of a pick besides the candidates.
pub struct PickInput<'a> {
    pub rng: &'a mut fastrand::Rng,
    /// The model's round-robin cursor (advanced only by `round_robin`).
    pub cursor: &'a AtomicU64,
    pub smart: &'a SmartAiSettings,
}

/// Picks one candidate; returns its index in `cands`, `None` only when `cands` is empty.
pub fn pick(strategy: Strategy, cands: &[Cand], input: &mut PickInput<'_>) -> Option<usize> {
    if cands.len() <= 1 {
        if strategy == Strategy::RoundRobin && !cands.is_empty() {
            input.cursor.fetch_add(1, Ordering::Relaxed);
        }
        return if cands.is_empty() { None } else { Some(0) };
    }
    let rng = &mut *input.rng;
    Some(match strategy {
        Strategy::WeightedRandom | Strategy::WeightedFailover => {
            weighted(cands.iter().enumerate().map(|(i, c)| (i, c.weight)), rng)
        }
        Strategy::Random => rng.usize(..cands.len()),
        Strategy::RoundRobin => {
            let ticket = input.cursor.fetch_add(1, Ordering::Relaxed);
            (ticket % cands.len() as u64) as usize
        }
        Strategy::Failover => {
            let mut best = 0;
            for (i, c) in cands.iter().enumerate() {
                if c.priority < cands[best].priority {
                    best = i;
                }
            }
            best
        }
        Strategy::LeastConnections => {
            let min = cands.iter().map(|c| c.inflight).min().unwrap_or(0);
            weighted(
                cands
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.inflight == min)
                    .map(|(i, c)| (i, c.weight)),
                rng,
            )
        }
        Strategy::LeastLatency => least_latency(cands, rng),
        Strategy::SmartAi => smart_ai(cands, rng, input.smart),
    })
}

/// Weighted random over `(index, weight)` pairs; falls back to the first when all weights
/// are zero. The iterator must not be empty.
fn weighted(items: impl Iterator<Item = (usize, f64)> + Clone, rng: &mut fastrand::Rng) -> usize {
    let total: f64 = items.clone().map(|(_, w)| w.max(0.0)).sum();
    let mut first = None;
    if total > 0.0 && total.is_finite() {
        let mut x = rng.f64() * total;
        let mut last = None;
        for (i, w) in items {
            first.get_or_insert(i);
            let w = w.max(0.0);
            if w > 0.0 {
                last = Some(i);
                if x < w {
                    return i;
                }
                x -= w;
            }
        }
        // Floating-point rounding can leave x marginally above the last weight.
        return last.or(first).unwrap_or(0);
    }
    items.map(|(i, _)| i).next().unwrap_or(0)
}

fn least_latency(cands: &[Cand], rng: &mut fastrand::Rng) -> usize {
    if let Some(i) = cands.iter().position(|c| c.ewma_ms.is_none()) {
        return i;
    }
    let mut best = 0;
    for (i, c) in cands.iter().enumerate() {
        if c.ewma_ms < cands[best].ewma_ms {
            best = i;
        }
    }
    if rng.f64() < LATENCY_EXPLORATION {
        let other = rng.usize(..cands.len() - 1);
        return if other >= best { other + 1 } else { other };
    }
    best
}

/// smart_ai effective weight: `weight × (0.3 + 0.7·√c)` (0.1 when c < 0.1), times the
/// stability bonus for a non-premium backend with c > 0.95.
pub fn smart_weight(c: &Cand, smart: &SmartAiSettings) -> f64 {
    let factor = if c.confidence < 0.1 {
        0.1
    } else {
        0.3 + 0.7 * c.confidence.sqrt()
    };
    let bonus = if !c.premium && c.confidence > 0.95 {
        smart.non_premium_stability_bonus
    } else {
        1.0
    };
    c.weight * factor * bonus
}

fn smart_ai(cands: &[Cand], rng: &mut fastrand::Rng, smart: &SmartAiSettings) -> usize {
    let eff = |i: usize| smart_weight(&cands[i], smart);
    let best_w = (0..cands.len()).map(eff).fold(f64::MIN, f64::max);
    let is_best = |i: usize| (eff(i) - best_w).abs() <= best_w.abs() * 1e-9;
    if rng.f64() >= smart.exploration_ratio {
        weighted(
            (0..cands.len())
                .filter(|&i| is_best(i))
                .map(|i| (i, eff(i))),
            rng,
        )
    } else {
        let mut others = (0..cands.len()).filter(|&i| !is_best(i)).peekable();
        if others.peek().is_none() {
            return weighted((0..cands.len()).map(|i| (i, eff(i))), rng);
        }
        weighted(others.map(|i| (i, eff(i))), rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(strategy: Strategy, cands: &[Cand], n: usize, seed: u64) -> Vec<usize> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let cursor = AtomicU64::new(0);
        let smart = SmartAiSettings::default();
        let mut counts = vec![0; cands.len()];
        for _ in 0..n {
            let mut input = PickInput {
                rng: &mut rng,
                cursor: &cursor,
                smart: &smart,
            };
            counts[pick(strategy, cands, &mut input).unwrap()] += 1;
        }
        counts
    }

    fn w(weight: f64) -> Cand {
        Cand {
            weight,
            ..Cand::default()
        }
    }

    fn share(counts: &[usize], i: usize) -> f64 {
        counts[i] as f64 / counts.iter().sum::<usize>() as f64
    }

    #[test]
    fn empty_and_single() {
        let mut rng = fastrand::Rng::with_seed(1);
        let cursor = AtomicU64::new(0);
        let smart = SmartAiSettings::default();
        let mut input = PickInput {
            rng: &mut rng,
            cursor: &cursor,
            smart: &smart,
        };
        for (_, s) in Strategy::ALL {
            assert_eq!(pick(s, &[], &mut input), None);
            assert_eq!(pick(s, &[w(1.0)], &mut input), Some(0));
        }
    }

    #[test]
    fn weighted_random_follows_weights() {
        let counts = run(Strategy::WeightedRandom, &[w(0.8), w(0.2)], 100_000, 7);
        assert!((share(&counts, 0) - 0.8).abs() < 0.01, "{counts:?}");
        let counts = run(
            Strategy::WeightedRandom,
            &[w(0.5), w(0.3), w(0.2)],
            100_000,
            8,
        );
        assert!((share(&counts, 1) - 0.3).abs() < 0.01, "{counts:?}");
        assert!((share(&counts, 2) - 0.2).abs() < 0.01, "{counts:?}");
    }

    #[test]
    fn random_is_uniform() {
        let counts = run(Strategy::Random, &[w(100.0), w(1.0), w(1.0)], 90_000, 9);
        for i in 0..3 {
            assert!((share(&counts, i) - 1.0 / 3.0).abs() < 0.01, "{counts:?}");
        }
    }

    #[test]
    fn round_robin_alternates_exactly() {
        let mut rng = fastrand::Rng::with_seed(1);
        let cursor = AtomicU64::new(0);
        let smart = SmartAiSettings::default();
        let cands = [w(5.0), w(1.0), w(1.0)];
        let picks: Vec<usize> = (0..9)
            .map(|_| {
                let mut input = PickInput {
                    rng: &mut rng,
                    cursor: &cursor,
                    smart: &smart,
                };
                pick(Strategy::RoundRobin, &cands, &mut input).unwrap()
            })
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn failover_takes_lowest_priority_number_then_config_order() {
        let cands = [
            Cand {
                priority: 2,
                ..w(1.0)
            },
            Cand {
                priority: 1,
                ..w(1.0)
            },
            Cand {
                priority: 1,
                ..w(1.0)
            },
        ];
        assert_eq!(run(Strategy::Failover, &cands, 100, 1), vec![0, 100, 0]);
    }

    #[test]
    fn least_connections_prefers_idle_and_breaks_ties_by_weight() {
        let cands = [
            Cand {
                inflight: 3,
                ..w(1.0)
            },
            Cand {
                inflight: 1,
                ..w(3.0)
            },
            Cand {
                inflight: 1,
                ..w(1.0)
            },
        ];
        let counts = run(Strategy::LeastConnections, &cands, 40_000, 3);
        assert_eq!(counts[0], 0);
        assert!((share(&counts, 1) - 0.75).abs() < 0.015, "{counts:?}");
    }

    #[test]
    fn least_latency_measures_unknown_first_then_prefers_fastest() {
        let fast = Cand {
            ewma_ms: Some(10.0),
            ..w(1.0)
        };
        let slow = Cand {
            ewma_ms: Some(100.0),
            ..w(1.0)
        };
        let unknown = w(1.0);
        assert_eq!(
            run(Strategy::LeastLatency, &[fast, unknown, slow], 50, 1),
            vec![0, 50, 0]
        );
        let counts = run(Strategy::LeastLatency, &[slow, fast], 100_000, 2);
        let explore = share(&counts, 0);
        assert!(explore > 0.03 && explore <= 0.06, "{counts:?}");
    }

    #[test]
    fn smart_weight_formula() {
        let s = SmartAiSettings::default();
        let c = |confidence, premium| Cand {
            confidence,
            premium,
            ..w(2.0)
        };
        assert!((smart_weight(&c(0.05, false), &s) - 0.2).abs() < 1e-12);
        assert!((smart_weight(&c(0.25, false), &s) - 2.0 * (0.3 + 0.7 * 0.5)).abs() < 1e-12);
        assert!((smart_weight(&c(1.0, false), &s) - 2.0 * 1.1).abs() < 1e-12);
        assert!((smart_weight(&c(1.0, true), &s) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn smart_ai_exploits_best_and_explores_others() {
        let good = Cand {
            confidence: 1.0,
            ..w(1.0)
        };
        let bad = Cand {
            confidence: 0.05,
            ..w(1.0)
        };
        let counts = run(Strategy::SmartAi, &[bad, good], 100_000, 4);
        // exploration_ratio = 0.2 of picks go to the non-best backend
        assert!((share(&counts, 0) - 0.2).abs() < 0.01, "{counts:?}");
        let s = SmartAiSettings {
            exploration_ratio: 0.0,
            ..SmartAiSettings::default()
        };
        let mut rng = fastrand::Rng::with_seed(5);
        let cursor = AtomicU64::new(0);
        for _ in 0..1000 {
            let mut input = PickInput {
                rng: &mut rng,
                cursor: &cursor,
                smart: &s,
            };
            assert_eq!(pick(Strategy::SmartAi, &[bad, good], &mut input), Some(1));
        }
    }

    #[test]
    fn weighted_failover_is_weighted_over_what_it_is_given() {
        let counts = run(
            Strategy::WeightedFailover,
            &[w(0.6), w(0.3), w(0.1)],
            100_000,
            6,
        );
        assert!((share(&counts, 0) - 0.6).abs() < 0.01, "{counts:?}");
        assert!((share(&counts, 2) - 0.1).abs() < 0.01, "{counts:?}");
    }
}
