//! `body::scan` and the edit API: never panic; an accepted body is read by serde_json with
//! the same `model` (exactly once, no case-folded twin), the same `stream` flag, and a model
//! span that is exactly the value's string literal; splices change exactly what they say.
//! The oracle properties (`oracle`) check the exact verdict on bodies serde_json can decode.

mod oracle;

use berry_gateway::body::{
    apply_edits, include_usage_edit, json_string_literal, scan, Edit, IncludeUsage, RequestScan,
    StreamOptions, MAX_DEPTH,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::{bytes, folds_to, fuzz, Members, Tally};

// ------------------------------------------------------------------------------ the checks

/// Nesting depth of a JSON text (the top-level object is 1), brackets inside strings skipped.
fn depth(text: &[u8]) -> usize {
    let (mut d, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in text {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                d += 1;
                max = max.max(d);
            }
            b']' | b'}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn offset(whole: &str, part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

/// `scan(body)`, and when it accepts, everything serde_json says about the same bytes.
fn check_scan(body: &[u8]) -> Option<RequestScan> {
    let s = scan(body).ok()?;
    let shown = String::from_utf8_lossy(body);
    let text = std::str::from_utf8(body).expect("accepted body is UTF-8");
    assert!(!text.starts_with('\u{feff}'), "accepted a BOM: {shown:?}");
    let members = Members::of(text)
        .unwrap_or_else(|| panic!("scan accepts, serde_json cannot read the object: {shown:?}"));

    // model: exactly one member, the same string, nothing a case-insensitive decoder would
    // read as a second one.
    let models = members.get("model");
    assert_eq!(models.len(), 1, "{shown:?}");
    let raw = models[0];
    let model: String = serde_json::from_str(raw.get())
        .unwrap_or_else(|e| panic!("model is not a string for serde_json ({e}): {shown:?}"));
    assert_eq!(
        model, s.model,
        "serde_json reads a different model: {shown:?}"
    );
    assert!(!s.model.is_empty());
    for (k, _) in &members.0 {
        let twin =
            (k != "model" && folds_to(k, "model")) || (k != "stream" && folds_to(k, "stream"));
        assert!(!twin, "accepted the case-folded key {k:?}: {shown:?}");
    }

    // The span is exactly the model value's literal.
    let at = offset(text, raw.get());
    assert_eq!(s.model_span, at..at + raw.get().len(), "{shown:?}");
    let lit = &body[s.model_span.clone()];
    assert!(lit.len() >= 2 && lit[0] == b'"' && lit[lit.len() - 1] == b'"');
    assert_eq!(
        serde_json::from_slice::<String>(lit).ok(),
        Some(s.model.clone())
    );

    // stream: at most one, true / false / null, and the same truthiness.
    let streams = members.get("stream");
    assert!(streams.len() <= 1, "{shown:?}");
    let stream_raw = streams.first().map(|r| r.get());
    assert!(
        matches!(stream_raw, None | Some("true" | "false" | "null")),
        "accepted stream {stream_raw:?}: {shown:?}"
    );
    assert_eq!(s.stream, stream_raw == Some("true"), "{shown:?}");

    // stream_options: at most one, its shape as reported.
    let options = members.get("stream_options");
    assert!(options.len() <= 1, "{shown:?}");
    match (s.stream_options, options.first()) {
        (StreamOptions::Absent, None) => {}
        (
            StreamOptions::Object {
                open_brace,
                end,
                empty,
                include_usage,
            },
            Some(raw),
        ) => {
            assert_eq!(open_brace, offset(text, raw.get()), "{shown:?}");
            assert_eq!(end, open_brace + raw.get().len(), "{shown:?}");
            let inner = Members::of(raw.get()).expect("stream_options object");
            assert_eq!(empty, inner.0.is_empty());
            let values = inner.get("include_usage");
            let want = match values.as_slice() {
                [] => IncludeUsage::Absent,
                [.., last] if last.get() == "true" => IncludeUsage::True,
                [one] => {
                    let start = open_brace + offset(raw.get(), one.get());
                    IncludeUsage::Value {
                        start,
                        end: start + one.get().len(),
                    }
                }
                _ => IncludeUsage::Several,
            };
            assert_eq!(include_usage, want, "{shown:?}");
        }
        (StreamOptions::Other { start, end }, Some(raw)) => {
            assert!(!raw.get().starts_with('{'));
            assert_eq!(start, offset(text, raw.get()), "{shown:?}");
            assert_eq!(end, start + raw.get().len(), "{shown:?}");
        }
        (got, raw) => panic!("stream_options {got:?} vs {raw:?}: {shown:?}"),
    }

    // The object ends where reported; only whitespace follows.
    assert_eq!(body.get(s.object_end), Some(&b'}'), "{shown:?}");
    assert!(body[s.object_end + 1..]
        .iter()
        .all(|b| b" \t\r\n".contains(b)));
    assert!(depth(body) <= MAX_DEPTH, "accepted depth {}", depth(body));

    // serde_json's Value agrees. It cannot hold what the scanner deliberately lets through
    // in values it does not decode (module docs of `body`): an unpaired surrogate escape in
    // a nested string, a number beyond f64, nesting beyond its own recursion limit.
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            assert_eq!(v.get("model"), Some(&Value::String(s.model.clone())));
            assert_eq!(s.stream, v.get("stream") == Some(&Value::Bool(true)));
        }
        Err(e) => {
            let why = e.to_string();
            assert!(
                ["surrogate", "hex escape", "out of range", "recursion limit"]
                    .iter()
                    .any(|w| why.contains(w)),
                "scan accepts, serde_json::Value refuses ({why}): {shown:?}"
            );
        }
    }
    Some(s)
}

/// Replace the model through the edit API (alone, then with the include_usage insertion):
/// serde_json reads the new model and everything else unchanged, and the result scans.
fn check_splice(body: &[u8], s: &RequestScan, name: &str) {
    let shown = String::from_utf8_lossy(body);
    let lit = json_string_literal(name);
    let out = apply_edits(
        body,
        &mut [Edit {
            range: s.model_span.clone(),
            bytes: lit.as_bytes(),
        }],
    );
    let out_text = std::str::from_utf8(&out).expect("UTF-8 after splice");
    let before = Members::of(std::str::from_utf8(body).unwrap()).unwrap();
    let after = Members::of(out_text).expect("spliced body is an object");
    assert_eq!(before.0.len(), after.0.len());
    for ((k0, v0), (k1, v1)) in before.0.iter().zip(&after.0) {
        assert_eq!(k0, k1);
        if k0 == "model" {
            assert_eq!(v1.get(), lit);
        } else {
            assert_eq!(v0.get(), v1.get(), "{shown:?}");
        }
    }
    if let Ok(mut want) = serde_json::from_slice::<Value>(body) {
        want["model"] = Value::String(name.to_owned());
        assert_eq!(serde_json::from_slice::<Value>(&out).ok(), Some(want));
    }
    let again = scan(&out).unwrap_or_else(|e| panic!("spliced body refused ({e:?}): {out_text:?}"));
    assert_eq!(again.model, name);
    assert_eq!(again.stream, s.stream);
    assert_eq!(
        again.stream_options == StreamOptions::Absent,
        s.stream_options == StreamOptions::Absent
    );

    // Both edits in one call, as the proxy does.
    let usage = include_usage_edit(s);
    assert_eq!(
        usage.is_some(),
        s.stream
            && !matches!(
                s.stream_options,
                StreamOptions::Object {
                    include_usage: IncludeUsage::True,
                    ..
                }
            )
    );
    let mut edits = vec![Edit {
        range: s.model_span.clone(),
        bytes: lit.as_bytes(),
    }];
    edits.extend(usage.clone());
    let out2 = apply_edits(body, &mut edits);
    let again = scan(&out2).unwrap_or_else(|e| {
        panic!(
            "body with both edits refused ({e:?}): {:?}",
            String::from_utf8_lossy(&out2)
        )
    });
    assert_eq!(again.model, name);
    assert_eq!(again.stream, s.stream);
    if s.stream {
        assert_eq!(
            include_usage_edit(&again),
            None,
            "include_usage still missing"
        );
    }
    if let Ok(mut want) = serde_json::from_slice::<Value>(body) {
        want["model"] = Value::String(name.to_owned());
        if usage.is_some() {
            match want.get_mut("stream_options") {
                Some(Value::Object(o)) => {
                    o.insert("include_usage".to_owned(), Value::Bool(true));
                }
                _ => want["stream_options"] = serde_json::json!({"include_usage": true}),
            }
        }
        assert_eq!(serde_json::from_slice::<Value>(&out2).ok(), Some(want));
    }
}

fn check(body: &[u8], name: &str, tally: &Tally) {
    tally.hit("case");
    match check_scan(body) {
        Some(s) => {
            tally.hit(if s.stream {
                "accepted streaming"
            } else {
                "accepted"
            });
            check_splice(body, &s, name);
        }
        None => tally.hit("refused"),
    }
}

// ------------------------------------------------------------------------------ generators

/// Characters strings are made of (here and in [`oracle`]): ASCII, JSON specials, controls,
/// non-ASCII, astral.
pub(super) const CHARS: &[char] = &[
    'a',
    'm',
    'o',
    'd',
    'e',
    'l',
    's',
    'Z',
    '0',
    ' ',
    '-',
    '/',
    '.',
    '"',
    '\\',
    '\n',
    '\t',
    '\r',
    '\u{8}',
    '\u{c}',
    '\u{0}',
    '\u{1f}',
    '\u{7f}',
    'b',
    'z',
    'A',
    '9',
    '_',
    ':',
    '\u{1}',
    'é',
    'ſ',
    'K',
    '\u{212a}',
    '中',
    '😀',
    '\u{2028}',
    '\u{feff}',
    '\u{ffff}',
    '\u{10ffff}',
];

fn text(max: usize) -> impl Strategy<Value = String> {
    vec(select(CHARS), 0..max).prop_map(|c| c.into_iter().collect())
}

/// `content` as a JSON string literal, each character escaped per `style` (cycled): verbatim
/// where allowed, a short escape where there is one, `\u` in lower or upper case hex.
fn literal(content: &str, style: &[u8]) -> String {
    let mut out = String::from("\"");
    for (i, c) in content.chars().enumerate() {
        let st = style.get(i % style.len().max(1)).copied().unwrap_or(0) % 4;
        let must = c == '"' || c == '\\' || (c as u32) < 0x20;
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '/' => Some("\\/"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        match (st, short) {
            (0, _) if !must => out.push(c),
            (0 | 1, Some(s)) => out.push_str(s),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    if st == 3 {
                        out.push_str(&format!("\\u{u:04X}"));
                    } else {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
            }
        }
    }
    out.push('"');
    out
}

/// Escaping styles: mostly verbatim, sometimes everything escaped.
fn style() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(vec![0u8]),
        2 => vec(0u8..4, 1..6),
        1 => (1u8..4).prop_map(|s| vec![s]),
    ]
}

fn lit_of(content: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (content, style()).prop_map(|(c, s)| literal(&c, &s))
}

fn ws() -> impl Strategy<Value = String> {
    prop_oneof![3 => Just(String::new()), 1 => "[ \t\r\n]{1,3}"]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => "-?(0|[1-9][0-9]{0,6})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
        1 => select(&["1e999", "-1e400", "18446744073709551616", "-0", "0.0e-0"][..]).prop_map(str::to_owned),
    ]
}

/// String literals that do not decode everywhere: unpaired surrogates, a valid pair.
fn odd_literal() -> impl Strategy<Value = String> {
    select(
        &[
            r#""\ud800""#,
            r#""\uDC00x""#,
            r#""a\ud83d""#,
            r#""\ud83d\ude00""#,
            r#""\ud800\u0041""#,
        ][..],
    )
    .prop_map(str::to_owned)
}

/// Any JSON value of bounded size, whitespace and escapes at random.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => lit_of(text(8)),
        3 => number(),
        1 => Just("true".to_owned()),
        1 => Just("false".to_owned()),
        1 => Just("null".to_owned()),
        1 => odd_literal(),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec((ws(), inner.clone(), ws()), 0..4).prop_map(|items| {
                let parts: Vec<String> = items
                    .into_iter()
                    .map(|(a, v, b)| format!("{a}{v}{b}"))
                    .collect();
                format!("[{}]", parts.join(","))
            }),
            vec((key(), ws(), inner, ws()), 0..4).prop_map(|items| {
                let parts: Vec<String> = items
                    .into_iter()
                    .map(|(k, a, v, b)| format!("{k}{a}:{b}{v}"))
                    .collect();
                format!("{{{}}}", parts.join(","))
            }),
        ]
    })
}

/// A value nested `n` levels deep: a random path of arrays and objects (with whitespace,
/// siblings and bracket characters inside strings, which must not count).
fn nested(n: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    (vec((any::<bool>(), 0u8..4), n), value()).prop_map(|(path, leaf)| {
        let mut open = String::new();
        let mut close = String::new();
        for (object, extra) in path {
            let sibling = match extra {
                0 => r#""[{[{","#,
                1 => "[], ",
                _ => "",
            };
            if object {
                open.push_str(&format!(r#"{{"k{extra}": "#));
                close.insert_str(0, r#", "}}": 0}"#);
            } else {
                open.push_str(&format!("[{sibling}"));
                close.insert(0, ']');
            }
        }
        format!("{open}{leaf}{close}")
    })
}

/// A value nested around the depth limit (the top-level object is one more level).
fn deep() -> impl Strategy<Value = String> {
    nested(MAX_DEPTH - 4..MAX_DEPTH + 4)
}

/// Keys the scanner reacts to, and look-alikes it must refuse or must not confuse with them.
const TRICKY: &[&str] = &[
    "model",
    "stream",
    "MODEL",
    "Model",
    "mOdEl",
    "STREAM",
    "Stream",
    "ſtream",
    "ſTREAM",
    "stream\u{0}",
];

/// Keys that mean nothing to the scanner (some look like the ones that do).
const PLAIN: &[&str] = &[
    "messages",
    "temperature",
    "stream_options",
    "include_usage",
    "model ",
    " model",
    "models",
    "mode",
    "streams",
    "m\u{f6}del",
    "\u{212a}",
    "",
];

/// Any key: tricky, plain or random text (as decoded text, then escaped at random, so
/// `"mod\u0065l"` is generated), or a literal that does not decode everywhere.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => lit_of(select(TRICKY).prop_map(str::to_owned)),
        4 => plain_key(),
        1 => odd_literal(),
    ]
}

fn plain_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => lit_of(select(PLAIN).prop_map(str::to_owned)),
        2 => lit_of(text(6)),
    ]
}

/// A `model` value: mostly a string (non-empty, escapes at random), sometimes anything.
fn model_value() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => lit_of(text(12)),
        1 => Just("\"\"".to_owned()),
        1 => odd_literal(),
        1 => value(),
    ]
}

fn stream_value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(&["true", "false", "null"][..]).prop_map(str::to_owned),
        1 => select(&["\"true\"", "1", "0", "[]", "{}", "\"\""][..]).prop_map(str::to_owned),
        1 => value(),
    ]
}

fn options_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => vec((lit_of(select(&["include_usage", "other", "include_usage "][..]).prop_map(str::to_owned)), ws(), value()), 0..3)
            .prop_map(|m| {
                let parts: Vec<String> = m.into_iter().map(|(k, w, v)| format!("{k}:{w}{v}")).collect();
                format!("{{{}}}", parts.join(","))
            }),
        1 => value(),
        1 => deep().prop_map(|d| format!(r#"{{"include_usage":{d}}}"#)),
    ]
}

/// One top-level member (`"key":value`, whitespace around the colon).
fn member() -> impl Strategy<Value = String> {
    let with = |k: &'static str, v: BoxedStrategy<String>| {
        (lit_of(Just(k.to_owned())), ws(), ws(), v)
            .prop_map(|(k, a, b, v)| format!("{k}{a}:{b}{v}"))
    };
    prop_oneof![
        1 => with("model", model_value().boxed()),
        3 => with("stream", stream_value().boxed()),
        2 => with("stream_options", options_value().boxed()),
        8 => (plain_key(), ws(), value()).prop_map(|(k, w, v)| format!("{k}:{w}{v}")),
        2 => (key(), ws(), value()).prop_map(|(k, w, v)| format!("{k}:{w}{v}")),
        1 => (plain_key(), deep()).prop_map(|(k, v)| format!("{k}:{v}")),
    ]
}

/// A near-JSON request body: an object of generated members (duplicates, look-alike keys,
/// escapes), sometimes with a BOM, a leading or trailing extra, or a missing separator.
fn near_json() -> impl Strategy<Value = Vec<u8>> {
    let stream = (
        lit_of(Just("stream".to_owned())),
        ws(),
        select(&["true", "true", "false", "null"][..]),
    )
        .prop_map(|(k, w, v)| format!("{k}:{w}{v}"));
    let members = (
        with_model(),
        prop::option::weighted(0.3, stream),
        vec((member(), ws()), 0..6),
    )
        .prop_flat_map(|(m, stream, rest)| {
            let mut all = vec![m];
            all.extend(stream);
            all.extend(rest.into_iter().map(|(m, w)| format!("{m}{w}")));
            Just(all).prop_shuffle()
        });
    let prefix = prop_oneof![
        16 => ws(),
        1 => Just("\u{feff}".to_owned()),
        1 => select(&["[", "x", "\"", "\u{0}", "{}"][..]).prop_map(str::to_owned),
    ];
    let suffix = prop_oneof![
        16 => ws(),
        1 => select(&["}", "x", ",", "{}", "\u{0}", "\n\u{feff}", " //", "]"][..]).prop_map(str::to_owned),
    ];
    let sep = prop_oneof![40 => Just(","), 1 => Just(""), 1 => Just(",,"), 1 => Just(";")];
    (
        prefix,
        ws(),
        members,
        sep,
        prop::bool::weighted(0.05),
        ws(),
        suffix,
    )
        .prop_map(|(pre, w0, members, sep, trailing_comma, w1, post)| {
            let mut s = format!("{pre}{{{w0}");
            for (i, m) in members.iter().enumerate() {
                if i > 0 {
                    s.push_str(if i == 1 { sep } else { "," });
                }
                s.push_str(m);
            }
            if trailing_comma {
                s.push(',');
            }
            s.push_str(&w1);
            s.push('}');
            s.push_str(&post);
            s.into_bytes()
        })
}

/// A model member with a plain string value, so most bodies have one.
fn with_model() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (lit_of(Just("model".to_owned())), ws(), lit_of(text(12))).prop_map(|(k, w, v)| format!("{k}:{w}{v}")),
        1 => member(),
    ]
}

/// Byte-level damage: (position, kind, byte).
fn damage() -> impl Strategy<Value = Vec<(Index, u8, u8)>> {
    vec((any::<Index>(), 0u8..5, any::<u8>()), 1..4)
}

fn apply_damage(body: &mut Vec<u8>, damage: &[(Index, u8, u8)]) {
    const INTERESTING: &[u8] = b"\"\\{}[],: \n0-.eu\x00\x1f\x7f\x80\xbf\xc3\xed\xef\xff";
    for &(at, kind, b) in damage {
        let i = at.index(body.len() + 1);
        let interesting = INTERESTING[usize::from(b) % INTERESTING.len()];
        match kind {
            0 if i < body.len() => body[i] = interesting,
            1 => body.insert(i, interesting),
            2 if i < body.len() => {
                body.remove(i);
            }
            3 => body.truncate(i),
            _ if i < body.len() => body[i] = b,
            _ => {}
        }
    }
}

fn new_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9./-]{1,20}",
        1 => text(10).prop_filter("non-empty", |s| !s.is_empty()),
    ]
}

/// Strictly valid bodies the scanner must accept: one model string, at most one boolean or
/// null `stream`, other members under keys that cannot be mistaken for `model` / `stream`.
fn clean() -> impl Strategy<Value = (Vec<u8>, String, bool)> {
    let other_key = prop_oneof![
        select(
            &[
                "messages",
                "temperature",
                "models",
                "m\u{f6}del",
                "stream_options",
                "x"
            ][..]
        )
        .prop_map(str::to_owned),
        text(6).prop_filter("not reserved", |k| {
            !folds_to(k, "model") && !folds_to(k, "stream") && k != "stream_options"
        }),
    ];
    let valid_value = value().prop_filter("decodable and shallow", |v| {
        serde_json::from_str::<Value>(v).is_ok()
    });
    let others = vec((other_key, style(), valid_value), 0..4).prop_map(|m| {
        let mut seen = std::collections::BTreeSet::new();
        m.into_iter()
            .filter(|(k, _, _)| seen.insert(k.clone()))
            .map(|(k, s, v)| format!("{}:{v}", literal(&k, &s)))
            .collect::<Vec<_>>()
    });
    // Many brackets (the scanner's depth checks turn on above MAX_DEPTH of them) but within
    // the limit: shallow ones, or one value exactly as deep as allowed.
    let brackets = prop::option::weighted(
        0.3,
        prop_oneof![
            (MAX_DEPTH..3 * MAX_DEPTH)
                .prop_map(|n| format!(r#""pad":[{}]"#, vec!["[]"; n].join(","))),
            nested(MAX_DEPTH - 1..MAX_DEPTH)
                .prop_filter("decodable", |v| {
                    serde_json::from_str::<IgnoredAny>(v).is_ok() && depth(v.as_bytes()) < MAX_DEPTH
                })
                .prop_map(|v| format!(r#""deep":{v}"#)),
        ],
    );
    let others = (others, brackets).prop_map(|(mut o, b)| {
        o.extend(b);
        o
    });
    let model = text(12).prop_filter("non-empty", |m| !m.is_empty());
    let stream = prop_oneof![
        Just(None),
        select(&["true", "false", "null"][..]).prop_map(Some)
    ];
    (model, style(), style(), stream, style(), others, ws(), ws()).prop_flat_map(
        |(model, ks, vs, stream, ss, others, w0, w1)| {
            let mut members = others;
            members.push(format!(
                "{}:{w0}{}",
                literal("model", &ks),
                literal(&model, &vs)
            ));
            if let Some(v) = stream {
                members.push(format!("{}:{v}", literal("stream", &ss)));
            }
            let model = model.clone();
            let w1 = w1.clone();
            Just(members).prop_shuffle().prop_map(move |m| {
                (
                    format!("{w1}{{{}}}{w1}", m.join(&format!(",{w1}"))).into_bytes(),
                    model.clone(),
                    stream == Some("true"),
                )
            })
        },
    )
}

// ------------------------------------------------------------------------------ properties

#[test]
fn scan_arbitrary_bytes() {
    let tally = Tally::default();
    fuzz(
        512,
        || (bytes(vec(any::<u8>(), 0..300)), any::<bool>(), new_name()),
        |(bytes, prefixed, name)| {
            let mut body = if prefixed {
                br#"{"model":"m","x":"#.to_vec()
            } else {
                Vec::new()
            };
            body.extend_from_slice(&bytes);
            check(&body, &name, &tally);
            Ok(())
        },
    );
    tally.at_least("refused", "case", 0.5);
}

#[test]
fn scan_near_json_agrees_with_serde_json() {
    let tally = Tally::default();
    fuzz(
        768,
        || (bytes(near_json()), new_name()),
        |(body, name)| {
            check(&body, &name, &tally);
            Ok(())
        },
    );
    tally.at_least("accepted", "case", 0.15);
    tally.at_least("accepted streaming", "case", 0.02);
    tally.at_least("refused", "case", 0.3);
}

#[test]
fn scan_damaged_near_json() {
    let tally = Tally::default();
    fuzz(
        512,
        || (bytes(near_json()), damage(), new_name()),
        |(mut body, d, name)| {
            apply_damage(&mut body, &d);
            check(&body, &name, &tally);
            Ok(())
        },
    );
    tally.at_least("accepted", "case", 0.005);
}

#[test]
fn scan_accepts_clean_bodies() {
    let tally = Tally::default();
    fuzz(
        256,
        || (clean(), new_name()),
        |((body, model, stream), name)| {
            let s = scan(&body).unwrap_or_else(|e| {
                panic!("refused ({e:?}): {:?}", String::from_utf8_lossy(&body))
            });
            prop_assert_eq!(&s.model, &model);
            prop_assert_eq!(s.stream, stream);
            if body.iter().filter(|&&b| b == b'[' || b == b'{').count() > MAX_DEPTH {
                tally.hit("many brackets");
            }
            if depth(&body) == MAX_DEPTH {
                tally.hit("at the depth limit");
            }
            check(&body, &name, &tally);
            Ok(())
        },
    );
    tally.at_least("accepted streaming", "case", 0.08);
    tally.at_least("many brackets", "case", 0.1);
    tally.at_least("at the depth limit", "case", 0.03);
}
