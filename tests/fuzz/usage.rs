//! The usage scanners against oracles: `serde_json`'s validity (as a JSON body and through SSE
//! framing), `serde_json::Value` plus the documented usage mapping for the top-level `usage`
//! member, and split-invariance on random bytes and usage-token soup. Case budgets match the
//! hand-rolled loops these properties replaced (6000, 3000 and 4000 inputs).

use berry_gateway::sse::SseError;
use berry_gateway::usage::{JsonUsageScanner, SseScanner};
use berry_gateway::vocab::TokenUsage;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use crate::{bytes, fuzz, Bytes, Tally};

// ------------------------------------------------------------------------------ observers

/// Everything observable about an SSE scan.
#[derive(Debug, PartialEq)]
struct Outcome {
    result: Result<(), SseError>,
    usage: Option<TokenUsage>,
    finished: bool,
    error_event: bool,
    events: u64,
}

fn scan<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut s = SseScanner::new();
    let mut result = Ok(());
    for c in chunks {
        let r = s.feed(c);
        if result.is_err() {
            assert_eq!(r, result, "errors must be sticky");
        }
        result = r;
    }
    Outcome {
        result,
        usage: s.usage(),
        finished: s.finished(),
        error_event: s.saw_error_event(),
        events: s.events(),
    }
}

fn json_usage<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Option<TokenUsage> {
    let mut s = JsonUsageScanner::new();
    for c in chunks {
        s.feed(c);
    }
    s.usage()
}

/// `input` in chunks of the given sizes, taken in turn (a size 0 makes an empty chunk, then
/// one byte is taken so the split always ends).
fn small_chunks<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let want = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(1);
        i += 1;
        if want == 0 {
            out.push(&rest[..0]);
        }
        let k = want.max(1).min(rest.len());
        out.push(&rest[..k]);
        rest = &rest[k..];
    }
    out
}

/// Chunk sizes `0..=max`.
fn sizes(max: usize) -> impl Strategy<Value = Vec<usize>> {
    vec(0..=max, 1..32)
}

// ------------------------------------------------------------------------------ generators

/// Member names: the scanners' own, near misses, and plain ones.
const KEYS: [&str; 9] = [
    "usage",
    "error",
    "message",
    "a",
    "usag",
    "usages",
    "type",
    "",
    "prompt_tokens",
];

const SCALARS: [&str; 14] = [
    "0",
    "-0",
    "12",
    "-3.25",
    "1e5",
    "2E-3",
    "0.5e+2",
    "18446744073709551615",
    "true",
    "false",
    "null",
    "\"\"",
    "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00aF\"",
    "\"usage\"",
];

fn ws() -> impl Strategy<Value = &'static str> {
    select(&["", "", " ", "\t", "\n"][..])
}

/// Random valid JSON text (ASCII, bounded depth, unique keys per object: duplicate-key
/// semantics differ between `serde_json::Value` and struct deserialisation, which would
/// confuse the usage oracle).
fn json_text() -> impl Strategy<Value = String> {
    let leaf = (ws(), select(&SCALARS[..]), ws()).prop_map(|(a, s, b)| format!("{a}{s}{b}"));
    leaf.prop_recursive(6, 96, 5, |inner| {
        let array = (ws(), vec(inner.clone(), 0..5), ws())
            .prop_map(|(a, items, b)| format!("{a}[{}]{b}", items.join(",")));
        let object = (
            ws(),
            vec((ws(), select(&KEYS[..]), ws(), inner), 0..5),
            ws(),
        )
            .prop_map(|(a, members, b)| {
                let mut seen = Vec::new();
                let mut parts = Vec::new();
                for (w1, k, w2, v) in members {
                    if !seen.contains(&k) {
                        seen.push(k);
                        parts.push(format!("{w1}\"{k}\"{w2}:{v}"));
                    }
                }
                format!("{a}{{{}}}{b}", parts.join(","))
            });
        prop_oneof![array, object]
    })
}

/// One to three random edits (delete, replace, insert) with JSON-ish bytes.
#[derive(Debug, Clone)]
struct Mutation(Vec<(Index, u8, u8)>);

fn mutation() -> impl Strategy<Value = Mutation> {
    const ALPHA: &[u8] = b"{}[]\":,0123456789-+.eEtrufalsn \\/bx\t\n";
    vec((any::<Index>(), 0u8..3, select(ALPHA)), 1..=3).prop_map(Mutation)
}

impl Mutation {
    fn apply(&self, v: &mut Vec<u8>) {
        for (at, op, c) in &self.0 {
            let at = at.index(v.len() + 1);
            match op {
                0 if at < v.len() => {
                    v.remove(at);
                }
                1 if at < v.len() => v[at] = *c,
                _ => v.insert(at, *c),
            }
        }
    }
}

/// A response body with a top-level `usage` member in the shapes providers send, plus decoys.
fn usage_document() -> impl Strategy<Value = Vec<u8>> {
    let details = prop_oneof![
        1 => Just("null".to_owned()),
        1 => json_text(),
        1 => Just("{\"audio_tokens\":1}".to_owned()),
        1 => Just("{\"cached_tokens\":null}".to_owned()),
        2 => (0u64..150_000).prop_map(|n| format!("{{\"audio_tokens\":0,\"cached_tokens\":{n}}}")),
    ];
    let count = prop::option::weighted(0.5, 0u64..100_000);
    let usage_object = (
        [
            count.clone(),
            count.clone(),
            count.clone(),
            count.clone(),
            count.clone(),
            count,
        ],
        prop::option::weighted(0.5, details),
        prop::option::weighted(0.33, json_text()),
    )
        .prop_map(|(counts, details, nested)| {
            let names = [
                "prompt_tokens",
                "completion_tokens",
                "input_tokens",
                "x",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
            ];
            let mut parts: Vec<String> = names
                .iter()
                .zip(counts)
                .filter_map(|(f, n)| n.map(|n| format!("\"{f}\":{n}")))
                .collect();
            if let Some(d) = details {
                parts.push(format!("\"prompt_tokens_details\":{d}"));
            }
            if let Some(n) = nested {
                parts.push(format!("\"details\":{n}"));
            }
            format!("{{{}}}", parts.join(","))
        });
    let member = || prop::option::weighted(0.75, json_text());
    (
        member(),
        member(),
        prop::option::weighted(0.75, prop_oneof![3 => usage_object, 1 => json_text()]),
        member(),
    )
        .prop_map(|(a, choices, usage, b)| {
            let members: Vec<String> = [("a", a), ("choices", choices), ("usage", usage), ("b", b)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| format!("\"{k}\":{v}")))
                .collect();
            format!("{{{}}}", members.join(",")).into_bytes()
        })
}

/// Random SSE-ish token soup over the scanners' vocabulary.
fn usage_soup() -> impl Strategy<Value = Vec<u8>> {
    const TOKENS: &[&str] = &[
        "data: ",
        "data:",
        "event: ",
        "message_stop",
        "error",
        "\n",
        "\r",
        "\r\n",
        "\n\n",
        ": x",
        "{",
        "}",
        "[",
        "]",
        "\"usage\":",
        "\"message\":",
        "\"error\":",
        "{\"prompt_tokens\":3}",
        "{\"prompt_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":2}}",
        "{\"input_tokens\":1,\"cache_read_input_tokens\":2,\"cache_creation_input_tokens\":3}",
        "[DONE]",
        "1",
        ",",
        "\"s\"",
    ];
    (0usize..300, vec(select(TOKENS), 0..300)).prop_map(|(len, t)| {
        let mut b = Vec::new();
        for tok in t {
            if b.len() >= len {
                break;
            }
            b.extend_from_slice(tok.as_bytes());
        }
        b
    })
}

// ------------------------------------------------------------------------------ oracles

/// The oracle for usage objects: serde's derived deserializer.
#[derive(serde::Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

/// The oracle's reading of a usage object (the mapping documented in `berry_gateway::usage`,
/// written out again); `None` when malformed or without a recognised count.
fn oracle_usage(x: &serde_json::Value) -> Option<TokenUsage> {
    let raw: RawUsage = serde_json::from_value(x.clone()).ok()?;
    let cached = match x.get("prompt_tokens_details") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Object(d)) => match d.get("cached_tokens") {
            None | Some(serde_json::Value::Null) => None,
            Some(n) => Some(n.as_u64()?),
        },
        Some(_) => return None,
    };
    let output = raw.output_tokens.or(raw.completion_tokens);
    let (input, cache_read, cache_write) = match (raw.input_tokens, raw.prompt_tokens) {
        (None, Some(p)) => {
            let c = cached.unwrap_or(0);
            (Some(p.saturating_sub(c)), Some(c), Some(0))
        }
        (i, _) => (
            i,
            raw.cache_read_input_tokens,
            raw.cache_creation_input_tokens,
        ),
    };
    [input, output, cache_read, cache_write]
        .iter()
        .any(Option::is_some)
        .then(|| TokenUsage {
            input: input.unwrap_or(0),
            output: output.unwrap_or(0),
            cache_read: cache_read.unwrap_or(0),
            cache_write: cache_write.unwrap_or(0),
        })
}

/// serde_json's validity; `None` for numbers out of `f64` range (a serde_json limit, not a
/// syntax question).
fn serde_valid(payload: &[u8]) -> Option<bool> {
    match serde_json::from_slice::<serde::de::IgnoredAny>(payload) {
        Ok(_) => Some(true),
        Err(e) if e.to_string().contains("out of range") => None,
        Err(_) => Some(false),
    }
}

// ------------------------------------------------------------------------------ properties

/// The scanners and serde_json agree on validity, as a JSON body and through SSE framing
/// (each newline in the payload starts a new `data:` line).
#[test]
fn usage_scanners_validity_matches_serde_json() {
    let tally = Tally::default();
    fuzz(
        6000,
        || {
            (
                json_text(),
                prop::option::weighted(0.5, mutation()),
                sizes(9),
                sizes(13),
            )
        },
        |(text, mutation, json_sizes, sse_sizes)| {
            let mut p = text.into_bytes();
            if let Some(m) = &mutation {
                m.apply(&mut p);
            }
            let Some(expect) = serde_valid(&p) else {
                return Ok(());
            };
            tally.hit("case");
            tally.hit(if expect { "valid" } else { "invalid" });
            let shown = || String::from_utf8_lossy(&p).into_owned();
            // As a non-stream body.
            let mut j = JsonUsageScanner::new();
            for c in small_chunks(&p, &json_sizes) {
                j.feed(c);
            }
            assert_eq!(!j.is_invalid() && j.is_complete(), expect, "{}", shown());
            if j.is_invalid() {
                assert!(!expect, "{}", shown());
            }
            // Through SSE framing.
            let mut body = b"data: ".to_vec();
            for &b in &p {
                if b == b'\n' || b == b'\r' {
                    body.extend_from_slice(b"\ndata: ");
                } else {
                    body.push(b);
                }
            }
            body.extend_from_slice(b"\n\n");
            let o = scan(small_chunks(&body, &sse_sizes));
            // A payload of only whitespace is an empty event: valid framing.
            let blank = p.iter().all(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
            let expect_result = if expect || blank {
                Ok(())
            } else {
                Err(SseError::InvalidData)
            };
            assert_eq!(
                o.result,
                expect_result,
                "{}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(o, scan([&body[..]]));
            Ok(())
        },
    );
    tally.at_least("valid", "case", 0.33);
    tally.at_least("invalid", "case", 0.16);
}

/// Top-level `usage` extraction agrees with `serde_json::Value` and the oracle's mapping.
#[test]
fn json_usage_matches_serde_json() {
    let tally = Tally::default();
    fuzz(
        3000,
        || (bytes(usage_document()), sizes(11)),
        |(doc, chunk_sizes): (Bytes, Vec<usize>)| {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&doc) else {
                return Ok(());
            };
            tally.hit("case");
            let expect = v
                .get("usage")
                .filter(|x| x.is_object())
                .and_then(oracle_usage);
            if expect.is_some() {
                tally.hit("usage");
            }
            assert_eq!(
                json_usage(small_chunks(&doc, &chunk_sizes)),
                expect,
                "{}",
                String::from_utf8_lossy(&doc)
            );
            Ok(())
        },
    );
    tally.at_least("usage", "case", 0.16);
}

/// Random bytes and usage-token soup: never panics; the SSE outcome is the same whole, in
/// small random chunks and one byte at a time; the JSON usage the same whole and chunked.
#[test]
fn usage_scanners_on_soup_split_invariant() {
    fuzz(
        4000,
        || {
            (
                bytes(prop_oneof![vec(any::<u8>(), 0..300), usage_soup()]),
                sizes(7),
                sizes(5),
            )
        },
        |(body, sse_sizes, json_sizes)| {
            let w = scan([&body[..]]);
            assert_eq!(scan(small_chunks(&body, &sse_sizes)), w);
            assert_eq!(scan(body.chunks(1)), w);
            assert_eq!(
                json_usage(small_chunks(&body, &json_sizes)),
                json_usage([&body[..]])
            );
            Ok(())
        },
    );
}
