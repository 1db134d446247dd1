//! Spend in Redis: settlements queued for the flusher (one `SPEND` script per batch, its
//! replies setting `berry_spend_usd`), the admission's reads of budgeted spend, and the
//! reads of the spend endpoints. Layout: [`super::scripts::spend_key`].

use super::scripts::{self, spend_key};
use crate::spend::ledger::{KEEP_DAYS, KEEP_MONTHS};
use crate::spend::{usd, Charge, Period, Scope, Totals, Window, WINDOWS};
use redis::{Cmd, Value};
use std::collections::HashMap;

/// Entries per `SPEND` call (bounds the Lua stack: 8 arguments each).
const ENTRIES_PER_CALL: usize = 200;

/// One settled request, queued for the flusher.
#[derive(Debug)]
pub(super) struct SpendOp {
    user: Box<str>,
    team: Option<Box<str>>,
    model: Box<str>,
    backend: Box<str>,
    micros: u64,
    tokens: [u64; 4],
    at_ms: i64,
    /// The user's and team's spend are gauges (they have a budget).
    gauged: [bool; 2],
}

impl SpendOp {
    pub(super) fn new(c: &Charge<'_>, gauged: [bool; 2]) -> SpendOp {
        SpendOp {
            user: c.user.into(),
            team: c.team.map(Into::into),
            model: c.model.into(),
            backend: c.backend.into(),
            micros: c.micros,
            tokens: [
                c.usage.input,
                c.usage.output,
                c.usage.cache_read,
                c.usage.cache_write,
            ],
            at_ms: c.at_ms,
            gauged,
        }
    }
}

/// What a batch sums by: one id in one scope and period.
type Key = (Scope, Period, Box<str>);

/// One (scope, period, id)'s share of a batch.
#[derive(Default)]
struct Sum {
    micros: u64,
    tokens: [u64; 4],
    gauged: bool,
}

/// When a spend hash of `period` expires: long after the period ended, so past periods
/// stay readable as long as the local ledger keeps them.
fn expiry_ms(period: &Period) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let keep = match period.window {
        Window::Day => KEEP_DAYS * DAY_MS,
        Window::Month => KEEP_MONTHS * 31 * DAY_MS,
    };
    period.end_ms().saturating_add(keep)
}

/// A batch of settlements summed per (scope, period, id), in the order of the `SPEND`
/// calls that carry them.
pub(super) struct Batch {
    entries: Vec<(Key, Sum)>,
}

/// The `SPEND` calls of a batch of settlements (sums per (scope, period, id), one call
/// per `ENTRIES_PER_CALL` entries), for one pipeline; [`publish`] reads their replies.
pub(super) fn batch(prefix: &str, ops: Vec<SpendOp>) -> (Vec<Cmd>, Batch) {
    let mut sums: HashMap<Key, Sum> = HashMap::new();
    for op in ops {
        for window in WINDOWS {
            let period = Period::containing(window, op.at_ms);
            let ids = [
                (Scope::User, Some(&op.user), op.gauged[0]),
                (Scope::Team, op.team.as_ref(), op.gauged[1]),
                (Scope::Model, Some(&op.model), false),
                (Scope::Backend, Some(&op.backend), false),
            ];
            for (scope, id, gauged) in ids {
                let Some(id) = id else { continue };
                let s = sums.entry((scope, period, id.clone())).or_default();
                s.micros = s.micros.saturating_add(op.micros);
                for (t, n) in s.tokens.iter_mut().zip(op.tokens) {
                    *t = t.saturating_add(n);
                }
                s.gauged |= gauged;
            }
        }
    }
    let entries: Vec<_> = sums.into_iter().collect();
    let mut cmds = Vec::new();
    for chunk in entries.chunks(ENTRIES_PER_CALL) {
        let mut keys: Vec<String> = Vec::new();
        let mut index: HashMap<(Scope, Period), usize> = HashMap::new();
        let mut args: Vec<String> = vec![chunk.len().to_string()];
        for ((scope, period, id), s) in chunk {
            let k = *index.entry((*scope, *period)).or_insert_with(|| {
                keys.push(spend_key(prefix, scope.as_str(), &period.to_string()));
                keys.len()
            });
            args.push(k.to_string());
            args.push(id.to_string());
            args.push(s.micros.to_string());
            args.extend(s.tokens.iter().map(u64::to_string));
            args.push(expiry_ms(period).to_string());
        }
        let mut c = redis::cmd("EVALSHA");
        c.arg(scripts::SPEND.script.get_hash())
            .arg(keys.len())
            .arg(keys)
            .arg(args);
        cmds.push(c);
    }
    (cmds, Batch { entries })
}

/// Reads the replies of a batch's `SPEND` calls: the fleet's spend of the budgeted users
/// and teams in their current periods sets `berry_spend_usd`. Returns how many calls
/// failed.
pub(super) fn publish(batch: &Batch, values: Vec<Value>) -> usize {
    let now = crate::spend::now_unix_ms();
    let mut failed = 0;
    for (chunk, v) in batch.entries.chunks(ENTRIES_PER_CALL).zip(values) {
        let totals: Vec<i64> = match redis::FromRedisValue::from_redis_value(v) {
            Ok(t) => t,
            Err(_) => {
                failed += 1;
                continue;
            }
        };
        for (((scope, period, id), s), total) in chunk.iter().zip(totals) {
            let current = Period::containing(period.window, now) == *period;
            if s.gauged && current {
                crate::metrics::SPEND_USD
                    .with_label_values(&[scope.as_str(), id, period.window.as_str()])
                    .set(usd(u64::try_from(total).unwrap_or(0)));
            }
        }
    }
    failed
}

/// An `HGET` of `id`'s cost in `(scope, period)`.
pub(super) fn cost_read(prefix: &str, scope: Scope, id: &str, period: &Period) -> Cmd {
    let mut c = redis::cmd("HGET");
    c.arg(spend_key(prefix, scope.as_str(), &period.to_string()))
        .arg(format!("{id}:c"));
    c
}

/// A counter from an `HGET`/`HGETALL` value: absent (or unreadable) is 0.
pub(super) fn counter(v: &Value) -> u64 {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        Value::SimpleString(s) => s.parse().unwrap_or(0),
        Value::Int(n) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

/// The rows of a spend hash's `HGETALL` reply: every id with its totals.
pub(super) fn rows(fields: HashMap<String, String>) -> Vec<(String, Totals)> {
    let mut by_id: HashMap<String, Totals> = HashMap::new();
    for (field, value) in fields {
        let Some((id, kind)) = field.rsplit_once(':') else {
            continue;
        };
        let n: u64 = value.parse().unwrap_or(0);
        let t = by_id.entry(id.to_string()).or_default();
        match kind {
            "c" => t.micros = n,
            "i" => t.tokens.input = n,
            "o" => t.tokens.output = n,
            "r" => t.tokens.cache_read = n,
            "w" => t.tokens.cache_write = n,
            _ => {}
        }
    }
    by_id.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_from_hash_fields() {
        let fields = [
            ("alice:c", "1500"),
            ("alice:i", "10"),
            ("alice:o", "5"),
            ("m/p:x:c", "7"),
            ("m/p:x:w", "3"),
            ("junk", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut r = rows(fields);
        r.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].0.as_str(), r[0].1.micros, r[0].1.tokens.output),
            ("alice", 1500, 5)
        );
        assert_eq!(
            (r[1].0.as_str(), r[1].1.micros, r[1].1.tokens.cache_write),
            ("m/p:x", 7, 3)
        );
    }

    #[test]
    fn hashes_expire_after_their_window() {
        let p = Period::containing(Window::Day, 1_796_601_600_000);
        assert!(expiry_ms(&p) > p.end_ms());
        assert_eq!(counter(&Value::Nil), 0);
        assert_eq!(counter(&Value::BulkString(b"42".to_vec())), 42);
    }
}
