//! Property-based fuzzing (proptest) of the gateway's byte parsers, run by the test suite with a
//! fixed budget: the request-body scanner (`body`), the event-stream decoder and the usage
//! scanners (`sse`, `usage`), and the dialect translators (`translate`).
//!
//! Every property runs a fixed number of cases (see each `fuzz(..)` call) from a fixed seed,
//! so a run is reproducible and bounded in time (the whole file takes a few seconds in a debug
//! build). Nothing is written to disk: failing cases are shrunk and printed, not persisted.
//!
//! Knobs for a longer local hunt (not used by the suite):
//! * `BERRY_FUZZ_SCALE=N` multiplies every case budget by `N`;
//! * `PROPTEST_RNG_SEED=S` runs from seed `S` instead of the fixed one;
//! * `BERRY_FUZZ_VERBOSE=1` prints each property's outcome tally (see [`Tally`]).
//!
//! The translators' exact outputs are golden snapshots (`tests/translate_golden.rs`); these
//! properties check the security and robustness invariants, and
//! the request-body scanner against a serde_json oracle (`body::oracle`), on inputs proptest
//! generates and shrinks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod body;
mod sse;
mod sse_split;
mod translate;
mod translate_mutations;
mod usage;

use std::fmt::Debug;
use std::ops::{Deref, DerefMut};

use proptest::sample::Index;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestCaseResult, TestRunner};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The seed every property starts from unless `PROPTEST_RNG_SEED` is set.
const SEED: u64 = 0xbe77_f022;

/// Stack for the thread a property runs on: proptest's strategy trees are deeply nested
/// generic types whose frames are large in a debug build (the default 2 MiB test-thread
/// stack overflows while generating the recursive JSON values).
const STACK: usize = 64 << 20;

/// Runs `test` on `cases` values of the strategy `make` builds (times `BERRY_FUZZ_SCALE`),
/// on a thread with a large stack; a failure (an `Err` or a panic) is shrunk to a minimal
/// input and reported by panicking.
pub fn fuzz<S, M, T>(cases: u32, make: M, test: T)
where
    M: FnOnce() -> S + Send,
    S: Strategy,
    S::Value: Debug,
    T: Fn(S::Value) -> TestCaseResult + Send,
{
    let scale = std::env::var("BERRY_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let base = Config::default();
    let config = Config {
        cases: cases.saturating_mul(scale),
        failure_persistence: None,
        rng_seed: match base.rng_seed {
            RngSeed::Random => RngSeed::Fixed(SEED),
            fixed => fixed,
        },
        ..base
    };
    let outcome = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("fuzz".to_owned())
            .stack_size(STACK)
            .spawn_scoped(scope, move || {
                let mut runner = TestRunner::new(config);
                runner.run(&make(), test).map_err(|e| e.to_string())
            })
            .expect("spawn the property's thread")
            .join()
    });
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => panic!("{failure}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Bytes that print as an escaped byte string (failing inputs stay readable).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

impl Deref for Bytes {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl From<&[u8]> for Bytes {
    fn from(b: &[u8]) -> Self {
        Bytes(b.to_vec())
    }
}

/// `strategy`'s byte strings as [`Bytes`].
pub fn bytes(strategy: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Bytes> {
    strategy.prop_map(Bytes)
}

/// Counts outcomes over the cases of one property, so a property can insist that its
/// generator reaches the interesting outcomes (accepted bodies, complete streams), not only
/// refusals. Floors are fractions of the cases run, so they hold for any seed and scale.
#[derive(Default)]
pub struct Tally {
    counts: std::sync::Mutex<std::collections::BTreeMap<&'static str, u32>>,
}

impl Tally {
    pub fn hit(&self, what: &'static str) {
        *self.counts.lock().unwrap().entry(what).or_default() += 1;
    }

    /// Panics unless `what` was hit in at least `fraction` of the `total` cases.
    pub fn at_least(&self, what: &'static str, total: &'static str, fraction: f64) {
        let counts = self.counts.lock().unwrap();
        if std::env::var_os("BERRY_FUZZ_VERBOSE").is_some() {
            eprintln!("{counts:?}");
        }
        let n = f64::from(counts.get(what).copied().unwrap_or(0));
        let of = f64::from(counts.get(total).copied().unwrap_or(0));
        assert!(
            n >= fraction * of,
            "the generator reached {what} in {n} of {of} cases (want {fraction}): {counts:?}"
        );
    }
}

/// Cut points for splitting an input into chunks (duplicates make empty chunks).
pub fn cuts() -> impl Strategy<Value = Vec<Index>> {
    proptest::collection::vec(proptest::arbitrary::any::<Index>(), 0..8)
}

/// `input` split at `cuts` (positions taken modulo `input.len() + 1`, in order).
pub fn split<'a>(input: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::with_capacity(at.len() + 1);
    let mut from = 0;
    for p in at {
        out.push(&input[from..p]);
        from = p;
    }
    out.push(&input[from..]);
    out
}

/// The top-level members of a JSON object in document order, as serde_json decodes the keys,
/// duplicates kept, each value as the raw text borrowed from the input.
#[derive(Debug)]
pub struct Members<'a>(pub Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Members<'de>, A::Error> {
                let mut v = Vec::new();
                while let Some(entry) = m.next_entry::<String, &'de RawValue>()? {
                    v.push(entry);
                }
                Ok(Members(v))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Members<'a> {
    /// serde_json's reading of `text` as an object (None when it is not one it can decode).
    pub fn of(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// The raw values of the members whose decoded key is `key`.
    pub fn get(&self, key: &str) -> Vec<&'a RawValue> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .collect()
    }
}

/// Whether a key would be read as `word` by a decoder that matches keys case-insensitively
/// (simple lower- or upper-casing, as Go's `encoding/json` or .NET do): `MODEL`, `ſtream`.
pub fn folds_to(key: &str, word: &str) -> bool {
    key.to_lowercase() == word || key.to_uppercase() == word.to_uppercase()
}

/// Whether `bytes` is one JSON value (serde_json's grammar; strings are not decoded, so an
/// unpaired surrogate escape passes).
pub fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}
