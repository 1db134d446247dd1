//! `body::scan` against an oracle built on serde_json: for a body serde_json can decode as an
//! object, the oracle says exactly what `scan` must return (the model, the stream flag and the
//! shape of `stream_options`, or which refusal), and an accepted body is rewritten (model
//! replaced, `include_usage` inserted) into exactly the expected members. Bodies are valid
//! chat-request-shaped objects with deliberate semantic problems, byte-level mutants of them,
//! and strings of bytes the grammar reacts to.

use berry_gateway::body::{
    apply_edits, include_usage_edit, json_string_literal, reason, scan, BodyError, Edit,
    IncludeUsage, RequestScan, StreamOptions, MAX_DEPTH,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::{lit_of, ws, CHARS};
use crate::{bytes, fuzz, Tally};

// ------------------------------------------------------------------------------ the oracle

/// Top-level members in document order, decoded by serde_json (duplicates preserved).
#[derive(Debug, Clone, PartialEq)]
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Entries, A::Error> {
                let mut v = Vec::new();
                while let Some(entry) = m.next_entry::<String, Value>()? {
                    v.push(entry);
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// What the scanner reports about `stream_options`, without the offset.
#[derive(Debug, PartialEq)]
enum Shape {
    Absent,
    Object {
        empty: bool,
        has_include_usage: bool,
        /// The (last) `include_usage` is `true`: the client asked for usage itself.
        asked: bool,
    },
    Other,
}

/// The shape `so` reports; an object's offset must point at a `{` of `body`.
fn shape_of(body: &[u8], so: &StreamOptions) -> Shape {
    match *so {
        StreamOptions::Absent => Shape::Absent,
        StreamOptions::Other { start, end } => {
            assert!(start < end && end <= body.len());
            Shape::Other
        }
        StreamOptions::Object {
            open_brace,
            end,
            empty,
            include_usage,
        } => {
            assert_eq!(body.get(open_brace), Some(&b'{'));
            assert_eq!(body.get(end - 1), Some(&b'}'));
            Shape::Object {
                empty,
                has_include_usage: include_usage != IncludeUsage::Absent,
                asked: include_usage == IncludeUsage::True,
            }
        }
    }
}

/// Whether `key` equals the lowercase ASCII `word` under Unicode case folding as the scanner
/// defines it: each char upper-cased, then lower-cased (`ſ` → `S` → `s`, `K` → `k`).
fn folds_to(key: &str, word: &str) -> bool {
    key.chars()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .eq(word.chars())
}

/// What `scan` must return according to serde_json, or None when serde_json cannot decode
/// the body as a map (not an object, out-of-range number, unpaired surrogate, ...).
/// Any `InvalidJson` is represented by `offset: 0, reason: ""`.
fn oracle(body: &[u8]) -> Option<Result<(String, bool, Shape), BodyError>> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Some(Err(BodyError::InvalidUtf8));
    };
    let Entries(entries) = serde_json::from_str(text).ok()?;
    let values = |key: &'static str| -> Vec<&Value> {
        entries
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
            .collect()
    };
    let any_invalid = Err(BodyError::InvalidJson {
        offset: 0,
        reason: "",
    });
    let models = values("model");
    if models.len() > 1 {
        return Some(Err(BodyError::DuplicateModel));
    }
    let model = match models.first() {
        Some(Value::String(s)) if s.is_empty() => return Some(Err(BodyError::EmptyModel)),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Some(Err(BodyError::ModelNotString)),
        None => None,
    };
    let folded =
        |k: &str| k != "model" && k != "stream" && (folds_to(k, "model") || folds_to(k, "stream"));
    if entries.iter().any(|(k, _)| folded(k)) {
        return Some(any_invalid);
    }
    let streams = values("stream");
    let stream = match streams.as_slice() {
        [] | [Value::Null] | [Value::Bool(false)] => false,
        [Value::Bool(true)] => true,
        _ => return Some(any_invalid),
    };
    let shapes = values("stream_options");
    let shape = match shapes.as_slice() {
        [] => Shape::Absent,
        [Value::Object(o)] => Shape::Object {
            empty: o.is_empty(),
            has_include_usage: o.contains_key("include_usage"),
            asked: o.get("include_usage") == Some(&Value::Bool(true)),
        },
        [_] => Shape::Other,
        _ => return Some(any_invalid),
    };
    Some(match model {
        Some(m) => Ok((m, stream, shape)),
        None => Err(BodyError::MissingModel),
    })
}

fn same_error(a: &BodyError, b: &BodyError) -> bool {
    matches!(
        (a, b),
        (BodyError::InvalidJson { .. }, BodyError::InvalidJson { .. })
    ) || a == b
}

/// A fixed name for an oracle verdict (for the tally).
fn outcome(expected: &Result<(String, bool, Shape), BodyError>) -> &'static str {
    match expected {
        Ok(_) => "ok",
        Err(BodyError::InvalidJson { .. }) => "InvalidJson",
        Err(BodyError::MissingModel) => "MissingModel",
        Err(BodyError::EmptyModel) => "EmptyModel",
        Err(BodyError::ModelNotString) => "ModelNotString",
        Err(BodyError::DuplicateModel) => "DuplicateModel",
        Err(_) => "other error",
    }
}

/// The gateway's full rewrite: the model replaced by `name`, plus `include_usage` when
/// streaming.
fn rewrite(body: &[u8], name: &str) -> Vec<u8> {
    let s = scan(body).expect("scan");
    let lit = json_string_literal(name);
    let mut edits = vec![Edit {
        range: s.model_span.clone(),
        bytes: lit.as_bytes(),
    }];
    edits.extend(include_usage_edit(&s));
    apply_edits(body, &mut edits)
}

/// Checks `scan(body)` against the oracle; on success also checks spans and the rewrite.
fn check_against_oracle(body: &[u8], expected: Result<(String, bool, Shape), BodyError>) {
    let got = scan(body);
    let shown = String::from_utf8_lossy(body);
    match (&got, expected) {
        (Ok(s), Ok((model, stream, shape))) => {
            assert_eq!(s.model, model, "{shown}");
            assert_eq!(s.stream, stream, "{shown}");
            assert_eq!(shape_of(body, &s.stream_options), shape, "{shown}");
            let lit = &body[s.model_span.clone()];
            assert_eq!(
                serde_json::from_slice::<String>(lit).unwrap(),
                s.model,
                "{shown}"
            );
            assert_eq!(body[s.object_end], b'}');
            assert!(body[s.object_end + 1..]
                .iter()
                .all(|b| b" \t\r\n".contains(b)));
            check_rewrite(body, s);
        }
        (Err(e), Err(x)) => assert!(same_error(e, &x), "{shown}: got {e:?}, expected {x:?}"),
        (got, expected) => panic!("{shown}: got {got:?}, expected {expected:?}"),
    }
}

/// The rewritten body differs from the original exactly by the model value and include_usage.
fn check_rewrite(body: &[u8], s: &RequestScan) {
    let name = "prov/\"m\"\n\u{1}é";
    let out = rewrite(body, name);
    let Entries(mut expected) = serde_json::from_slice(body).unwrap();
    let Entries(got) = serde_json::from_slice(&out).unwrap();
    for (k, v) in expected.iter_mut() {
        if k == "model" {
            *v = Value::String(name.to_owned());
        }
    }
    if s.stream {
        match s.stream_options {
            StreamOptions::Absent => expected.push((
                "stream_options".to_owned(),
                serde_json::json!({"include_usage": true}),
            )),
            StreamOptions::Object { include_usage, .. } if include_usage != IncludeUsage::True => {
                for (k, v) in expected.iter_mut() {
                    if k == "stream_options" {
                        v["include_usage"] = Value::Bool(true);
                    }
                }
            }
            StreamOptions::Other { .. } => {
                for (k, v) in expected.iter_mut() {
                    if k == "stream_options" {
                        *v = serde_json::json!({"include_usage": true});
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(got, expected, "{}", String::from_utf8_lossy(&out));
    let again = scan(&out).expect("rewritten body scans");
    assert_eq!(again.model, name);
    assert_eq!(again.stream, s.stream);
    if s.stream {
        assert_eq!(include_usage_edit(&again), None);
    }
}

/// No panics on any input, and the outcome stays consistent with serde_json: its grammar
/// refusals are refusals, the scanner is stricter only for the documented reasons, and a body
/// serde_json decodes as an object gets the oracle's verdict.
fn check_mutated(m: &[u8]) {
    let got = scan(m);
    let Ok(text) = std::str::from_utf8(m) else {
        assert_eq!(got, Err(BodyError::InvalidUtf8));
        return;
    };
    let grammar_ok = serde_json::from_str::<IgnoredAny>(text).is_ok();
    if !grammar_ok {
        assert!(
            matches!(
                got,
                Err(BodyError::InvalidJson { .. } | BodyError::NotAnObject)
            ),
            "{text:?}: serde rejects, scan gave {got:?}"
        );
        return;
    }
    if let Err(BodyError::InvalidJson { reason, .. }) = &got {
        let stricter_than_grammar = [
            reason::LONE_SURROGATE,
            reason::STREAM_NOT_BOOL,
            reason::DUPLICATE_STREAM,
            reason::DUPLICATE_STREAM_OPTIONS,
            reason::CASE_FOLDED_KEY,
        ];
        assert!(
            stricter_than_grammar.contains(reason),
            "{text:?}: serde accepts, scan says {reason}"
        );
    }
    match oracle(m) {
        Some(expected) => check_against_oracle(m, expected),
        None => {
            if !text
                .trim_start_matches([' ', '\t', '\n', '\r'])
                .starts_with('{')
            {
                assert_eq!(got, Err(BodyError::NotAnObject), "{text:?}");
            }
        }
    }
}

/// `body` (an object) with a first member holding more than MAX_DEPTH brackets, so that its
/// values are depth-checked rather than cleared by the bracket count.
fn with_many_brackets(body: &str) -> String {
    let open = body.find('{').expect("an object");
    let (head, tail) = body.split_at(open + 1);
    let comma = if tail.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    format!(
        r#"{head}"pad":[{}[]]{comma}{tail}"#,
        "[],".repeat(MAX_DEPTH)
    )
}

// ------------------------------------------------------------------------------ generators

/// `min` to `min + 9` characters of [`CHARS`].
fn pool_text(min: usize) -> impl Strategy<Value = String> {
    vec(select(CHARS), min..min + 10).prop_map(|c| c.into_iter().collect())
}

/// A number serde_json decodes (within f64's range).
fn json_number() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?"
}

/// `"key"` followed by the colon, whitespace around it.
fn key_colon(key: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (lit_of(key), ws(), ws()).prop_map(|(k, a, b)| format!("{k}{a}:{b}"))
}

/// Container items joined JSON-style: `,` then whitespace between, whitespace after each.
fn join_items(items: Vec<(String, String, String)>) -> String {
    let mut out = String::new();
    for (i, (sep, item, after)) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
            out.push_str(&sep);
        }
        out.push_str(&item);
        out.push_str(&after);
    }
    out
}

/// Any valid JSON value serde_json decodes: strings with escapes at random, numbers, literals,
/// and up to three levels of arrays and objects (whose keys are sometimes `model` and
/// `stream`, which mean nothing below the top level).
fn json_value() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        lit_of(pool_text(0)),
        json_number(),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("null".to_owned()),
    ];
    leaf.prop_recursive(3, 48, 4, |inner| {
        let nested_key = prop_oneof![
            1 => Just("model".to_owned()),
            1 => Just("stream".to_owned()),
            2 => pool_text(0),
        ];
        prop_oneof![
            (ws(), vec((ws(), inner.clone(), ws()), 0..4))
                .prop_map(|(w, items)| format!("[{w}{}]", join_items(items))),
            (
                ws(),
                vec(
                    (ws(), (key_colon(nested_key), inner), ws()).prop_map(|(a, (k, v), b)| (
                        a,
                        format!("{k}{v}"),
                        b
                    )),
                    0..4
                )
            )
                .prop_map(|(w, items)| format!("{{{w}{}}}", join_items(items))),
        ]
    })
    .boxed()
}

/// `member` repeated 0, 1 or 2 times, with these weights.
fn times(member: BoxedStrategy<String>, weights: [u32; 3]) -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        weights[0] => Just(0usize),
        weights[1] => Just(1usize),
        weights[2] => Just(2usize),
    ]
    .prop_flat_map(move |n| vec(member.clone(), n))
}

/// A valid JSON object shaped like a chat request, sometimes with deliberate semantic
/// problems: missing, duplicate, empty or non-string model, odd or duplicate `stream` and
/// `stream_options`, look-alike keys (`Model`, `model `, `streams`).
fn request_body() -> impl Strategy<Value = String> {
    let model_value = prop_oneof![
        1 => Just("\"\"".to_owned()),
        3 => json_value(),
        16 => lit_of(pool_text(1)),
    ];
    let model = (key_colon(Just("model".to_owned())), model_value)
        .prop_map(|(k, v)| format!("{k}{v}"))
        .boxed();
    let stream_value = prop_oneof![
        1 => json_value(),
        19 => select(&["true", "true", "false", "null"][..]).prop_map(str::to_owned),
    ];
    let stream = (key_colon(Just("stream".to_owned())), stream_value)
        .prop_map(|(k, v)| format!("{k}{v}"))
        .boxed();
    let option_key = select(&["include_usage", "include_usage", "other", "include_usage "][..])
        .prop_map(str::to_owned);
    let options_object = (
        ws(),
        vec(
            (ws(), (key_colon(option_key), json_value()), ws())
                .prop_map(|(a, (k, v), b)| (a, format!("{k}{v}"), b)),
            0..3,
        ),
    )
        .prop_map(|(w, items)| format!("{{{w}{}}}", join_items(items)));
    let options_value = prop_oneof![1 => json_value(), 4 => options_object];
    let options = (key_colon(Just("stream_options".to_owned())), options_value)
        .prop_map(|(k, v)| format!("{k}{v}"))
        .boxed();
    let other_key = prop_oneof![
        1 => Just("messages".to_owned()),
        1 => Just("Model".to_owned()),
        1 => Just("model ".to_owned()),
        1 => Just("streams".to_owned()),
        4 => pool_text(0).prop_filter("not a key the scanner reads", |k| {
            !["model", "stream", "stream_options"].contains(&k.as_str())
        }),
    ];
    let others = vec(
        (key_colon(other_key), json_value()).prop_map(|(k, v)| format!("{k}{v}")),
        0..5,
    );
    let members = (
        times(model, [1, 18, 1]),
        times(stream, [8, 11, 1]),
        times(options, [10, 9, 1]),
        others,
    )
        .prop_flat_map(|(models, streams, options, others)| {
            let all: Vec<String> = [models, streams, options, others].concat();
            let n = all.len();
            (Just(all).prop_shuffle(), vec((ws(), ws()), n))
        })
        .prop_map(|(members, ws)| {
            let items = members
                .into_iter()
                .zip(ws)
                .map(|(m, (sep, after))| (sep, m, after))
                .collect();
            join_items(items)
        });
    (ws(), ws(), members, ws())
        .prop_map(|(w0, w1, members, w2)| format!("{w0}{{{w1}{members}}}{w2}"))
}

/// Bytes the scanner's grammar reacts to, and bytes that break UTF-8.
const INTERESTING: &[u8] = &[
    b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'\n', b'0', b'1', b'-', b'+', b'.',
    b'e', b'u', b'd', b'8', b't', b'n', b'm', b'/', 0x00, 0x1f, 0x7f, 0x80, 0xbf, 0xc3, 0xed, 0xf0,
    0xff,
];

/// One byte-level edit: (where, kind, an interesting byte, a random byte, a length).
type Mutation = (Index, u8, Index, u8, usize);

/// One to three edits.
fn mutation() -> impl Strategy<Value = Vec<Mutation>> {
    vec(
        (
            any::<Index>(),
            0u8..7,
            any::<Index>(),
            any::<u8>(),
            0usize..16,
        ),
        1..=3,
    )
}

/// `body` with `edits` applied: an interesting byte replaced (kinds 0 and 1), inserted (2), a
/// byte removed (3), the body truncated (4), a slice of up to 15 bytes duplicated (5), a byte
/// replaced by a random one (6).
fn mutate(body: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut m = body.to_vec();
    for &(at, kind, interesting, random, len) in edits {
        let at = at.index(m.len() + 1);
        let interesting = *interesting.get(INTERESTING);
        match kind {
            0 | 1 if at < m.len() => m[at] = interesting,
            2 => m.insert(at, interesting),
            3 if at < m.len() => {
                m.remove(at);
            }
            4 => m.truncate(at),
            5 => {
                let end = (at + len).min(m.len());
                let dup = m[at..end].to_vec();
                m.splice(at..at, dup);
            }
            _ if at < m.len() => m[at] = random,
            _ => {}
        }
    }
    m
}

// ------------------------------------------------------------------------------ properties

#[test]
fn scan_agrees_with_oracle_on_generated_bodies() {
    let tally = Tally::default();
    fuzz(
        600,
        || (request_body(), prop::bool::weighted(0.1)),
        |(body, prefixes)| {
            assert!(
                serde_json::from_str::<Value>(&body).is_ok(),
                "generator produced invalid JSON: {body}"
            );
            let expected = oracle(body.as_bytes()).expect("generated bodies are objects");
            tally.hit("case");
            tally.hit(outcome(&expected));
            check_against_oracle(body.as_bytes(), expected);
            // The same with depth checks on (values taken apart one level).
            let padded = with_many_brackets(&body);
            let expected = oracle(padded.as_bytes()).expect("padded bodies are objects");
            check_against_oracle(padded.as_bytes(), expected);
            // Every strict prefix that cuts into the object must be refused.
            if prefixes {
                let end = body.rfind('}').unwrap();
                for p in 0..=end {
                    let prefix = &body.as_bytes()[..p];
                    prop_assert!(scan(prefix).is_err(), "{:?}", prefix);
                }
            }
            Ok(())
        },
    );
    // The generator must exercise both successes and several error kinds.
    tally.at_least("ok", "case", 0.4);
    for kind in [
        "InvalidJson",
        "MissingModel",
        "EmptyModel",
        "ModelNotString",
        "DuplicateModel",
    ] {
        tally.at_least(kind, "case", 0.008);
    }
}

#[test]
fn scan_mutated_bodies_stay_consistent_with_oracle() {
    let tally = Tally::default();
    fuzz(
        400,
        || (request_body(), any::<bool>(), vec(mutation(), 50)),
        |(body, padded, mutations)| {
            // Half of the bodies with depth checks on.
            let body = if padded {
                with_many_brackets(&body)
            } else {
                body
            };
            for edits in &mutations {
                let m = mutate(body.as_bytes(), edits);
                check_mutated(&m);
                tally.hit("mutant");
                if scan(&m).is_ok() {
                    tally.hit("accepted");
                }
            }
            Ok(())
        },
    );
    // Some mutants are still accepted (the oracle's success branch is reached).
    tally.at_least("accepted", "mutant", f64::MIN_POSITIVE);
}

#[test]
fn scan_interesting_bytes_stay_consistent_with_oracle() {
    fuzz(
        2000,
        || bytes(vec(select(INTERESTING), 0..97)),
        |b| {
            check_mutated(&b);
            let mut prefixed = br#"{"model":"m","x":"#.to_vec();
            prefixed.extend_from_slice(&b);
            check_mutated(&prefixed);
            Ok(())
        },
    );
}
