//! Unit tests of [`scan`](super::scan): accepted bodies, refusals, error offsets.

use super::*;
use serde_json::Value;

// ------------------------------------------------------------------ helpers

pub(super) fn ok(body: &str) -> RequestScan {
    match scan(body.as_bytes()) {
        Ok(s) => s,
        Err(e) => panic!("scan({body:?}) failed: {e:?}"),
    }
}

pub(super) fn fail(body: &str) -> BodyError {
    match scan(body.as_bytes()) {
        Ok(s) => panic!("scan({body:?}) unexpectedly succeeded: {s:?}"),
        Err(e) => e,
    }
}

fn span<'a>(body: &'a str, s: &RequestScan) -> &'a str {
    &body[s.model_span.clone()]
}

fn replace_model(body: &[u8], s: &RequestScan, name: &str) -> Vec<u8> {
    let lit = json_string_literal(name);
    apply_edits(
        body,
        &mut [Edit {
            range: s.model_span.clone(),
            bytes: lit.as_bytes(),
        }],
    )
}

/// The gateway's full rewrite: real model name + include_usage when streaming.
pub(super) fn rewrite(body: &[u8], name: &str) -> Vec<u8> {
    let s = scan(body).expect("scan");
    let lit = json_string_literal(name);
    let mut edits = vec![Edit {
        range: s.model_span.clone(),
        bytes: lit.as_bytes(),
    }];
    edits.extend(include_usage_edit(&s));
    apply_edits(body, &mut edits)
}

pub(super) fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

pub(super) fn invalid_reason(e: &BodyError) -> &'static str {
    match e {
        BodyError::InvalidJson { reason, .. } => reason,
        other => panic!("expected InvalidJson, got {other:?}"),
    }
}

/// `member` in a body with more than MAX_DEPTH brackets in total, so that values are
/// depth-checked rather than cleared by the bracket count.
pub(super) fn many_brackets(member: &str) -> String {
    format!(
        r#"{{"model":"m","messages":[{}{{}}],{member}}}"#,
        "{},".repeat(MAX_DEPTH)
    )
}

// ------------------------------------------------------------------ happy paths

#[test]
fn happy_path() {
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
    let s = ok(body);
    assert_eq!(s.model, "gpt-4o");
    assert_eq!(span(body, &s), r#""gpt-4o""#);
    assert_eq!(s.model_span, 9..17);
    assert!(s.stream);
    assert_eq!(s.object_end, body.len() - 1);
    assert_eq!(s.stream_options, StreamOptions::Absent);
}

#[test]
fn surrounding_whitespace_is_allowed() {
    let body = " \r\n\t{ \"model\" :\t\"m\" \n}\n\r\t ";
    let s = ok(body);
    assert_eq!(s.model, "m");
    assert_eq!(&body[s.object_end..=s.object_end], "}");
    assert_eq!(s.object_end, body.rfind('}').unwrap());
}

#[test]
fn escaped_key_is_model() {
    let body = r#"{"mo\u0064el":"gpt-4","x":1}"#;
    let s = ok(body);
    assert_eq!(s.model, "gpt-4");
    assert_eq!(span(body, &s), r#""gpt-4""#);
    // Every escape form in a key.
    assert_eq!(ok(r#"{"\u006d\u006F\u0064\u0065\u006c":"a"}"#).model, "a");
    assert!(ok(r#"{"str\u0065am":true,"model":"a"}"#).stream);
}

#[test]
fn escaped_value_is_unescaped() {
    let body = r#"{"model":"gpt\u002d4"}"#;
    let s = ok(body);
    assert_eq!(s.model, "gpt-4");
    assert_eq!(span(body, &s), r#""gpt\u002d4""#);

    let body = r#"{"model":"a\"b\\c\/d\be\ff\ng\rh\ti\u00e9j\ud83d\ude00k\u4E2D"}"#;
    let s = ok(body);
    let expected: String = serde_json::from_str(span(body, &s)).unwrap();
    assert_eq!(s.model, expected);
    assert_eq!(s.model, "a\"b\\c/d\u{8}e\u{c}f\ng\rh\tiéj😀k中");
}

#[test]
fn model_splice_preserves_every_other_byte() {
    let body = "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"h\\u00e9llo \\\"w\\\" — 中文 😀\\n\"} ],\n\t\"model\"  :  \"gpt\\u002d4\" ,\"temperature\":1.50E+0,\"z\":[ ],\"a\":{}\r\n}  ";
    let s = ok(body);
    assert_eq!(s.model, "gpt-4");
    let out = replace_model(body.as_bytes(), &s, "openai/gpt-4o \"x\"");
    let expected = "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"h\\u00e9llo \\\"w\\\" — 中文 😀\\n\"} ],\n\t\"model\"  :  \"openai/gpt-4o \\\"x\\\"\" ,\"temperature\":1.50E+0,\"z\":[ ],\"a\":{}\r\n}  ";
    assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
    let rescanned = scan(&out).unwrap();
    assert_eq!(rescanned.model, "openai/gpt-4o \"x\"");
    // Only the span changed.
    assert_eq!(
        &out[..s.model_span.start],
        &body.as_bytes()[..s.model_span.start]
    );
    let tail = &body.as_bytes()[s.model_span.end..];
    assert_eq!(&out[out.len() - tail.len()..], tail);
}

#[test]
fn nested_model_keys_are_ignored() {
    let body = r#"{"messages":[{"model":"evil","content":{"model":1}}],"model":"good","metadata":{"model":"x","mo\u0064el":"y"},"tools":[{"model":""}]}"#;
    assert_eq!(ok(body).model, "good");
    // Nested stream / stream_options keys are ignored too.
    let s = ok(r#"{"model":"m","x":{"stream":true,"stream_options":{}}}"#);
    assert!(!s.stream);
    assert_eq!(s.stream_options, StreamOptions::Absent);
}

// ------------------------------------------------------------------ model errors

#[test]
fn duplicate_model_is_refused() {
    for body in [
        r#"{"model":"a","model":"b"}"#,
        r#"{"model":"a","model":"a"}"#,
        r#"{"model":"a","mo\u0064el":"b"}"#,
        r#"{"\u006dodel":"a","messages":[],"model":"b"}"#,
        r#"{"model":"a","model":1}"#,
        r#"{"model":1,"model":"a"}"#,
        r#"{"model":"","model":"a"}"#,
        r#"{"model":"a","x":{"model":"b"},"model":null}"#,
    ] {
        assert_eq!(fail(body), BodyError::DuplicateModel, "{body}");
    }
}

#[test]
fn non_string_model_is_refused() {
    for v in [
        "1",
        "-1.5e3",
        "null",
        "true",
        "false",
        "{}",
        "[]",
        r#"{"a":"b"}"#,
        r#"["gpt-4"]"#,
    ] {
        let body = format!(r#"{{"model":{v},"stream":true}}"#);
        assert_eq!(fail(&body), BodyError::ModelNotString, "{body}");
    }
}

#[test]
fn empty_and_missing_model() {
    assert_eq!(fail(r#"{"model":""}"#), BodyError::EmptyModel);
    assert_eq!(fail(r#"{"model" : "" , "x":1}"#), BodyError::EmptyModel);
    for body in [
        "{}",
        " { } ",
        r#"{"messages":[]}"#,
        r#"{"model ":"x"}"#,
        r#"{"models":"x"}"#,
        r#"{"mode":"x"}"#,
        r#"{"model\u0000":"x"}"#,
        r#"{"a":{"model":"x"}}"#,
    ] {
        assert_eq!(fail(body), BodyError::MissingModel, "{body}");
    }
    // Escaped content that is not empty is fine.
    assert_eq!(ok(r#"{"model":"\u0020"}"#).model, " ");
}

#[test]
fn syntax_errors_take_precedence_over_semantic_ones() {
    assert!(matches!(
        fail(r#"{"model":"a","model":"b",}"#),
        BodyError::InvalidJson { .. }
    ));
    assert!(matches!(
        fail(r#"{"model":1} x"#),
        BodyError::InvalidJson { .. }
    ));
    assert_eq!(fail(r#"{"x":[[[]]],"model":1}"#), BodyError::ModelNotString);
}

// ------------------------------------------------------------------ encoding / grammar

#[test]
fn invalid_utf8_is_refused() {
    for body in [
        &b"{\"model\":\"gpt\xff\"}"[..],
        b"{\"model\":\"m\",\"c\":\"\xed\xa0\x80\"}", // UTF-8 encoded surrogate
        b"{\"model\":\"m\",\"c\":\"\xc0\xaf\"}",     // overlong
        b"{\"model\":\"m\",\"c\":\"\xe4\xb8\"}",     // truncated sequence
        b"\xef\xbb\xbf{\"model\":\"m\"}\xff",
    ] {
        assert_eq!(scan(body), Err(BodyError::InvalidUtf8));
    }
    // A UTF-8 BOM is valid UTF-8 but not JSON whitespace.
    assert!(matches!(
        scan(b"\xef\xbb\xbf{\"model\":\"m\"}"),
        Err(BodyError::InvalidJson { offset: 0, .. })
    ));
}

#[test]
fn trailing_garbage_is_refused() {
    for body in [
        r#"{"model":"x"}x"#,
        r#"{"model":"x"}{}"#,
        r#"{"model":"x"}{"model":"y"}"#,
        r#"{"model":"x"} ,"#,
        r#"{"model":"x"}]"#,
        "{\"model\":\"x\"}\u{0}",
        "{\"model\":\"x\"}\u{a0}",
        r#"{"model":"x"}//"#,
    ] {
        let e = fail(body);
        assert_eq!(invalid_reason(&e), reason::TRAILING, "{body}");
    }
}

#[test]
fn non_objects_are_refused() {
    for body in [
        "[]",
        r#"[{"model":"x"}]"#,
        r#""model""#,
        "1",
        "-1",
        "null",
        "true",
        "false",
    ] {
        assert_eq!(fail(body), BodyError::NotAnObject, "{body}");
    }
    for body in ["", "   ", "\n", "x", "}", "'", "\u{0}"] {
        assert!(
            matches!(fail(body), BodyError::InvalidJson { .. }),
            "{body:?}"
        );
    }
}

#[test]
fn grammar_violations_are_refused_like_serde() {
    let cases = [
        // numbers
        "01",
        "-",
        "-01",
        "1.",
        ".5",
        "1.e3",
        "1e",
        "1e+",
        "+1",
        "0x1",
        "NaN",
        "Infinity",
        "-Infinity",
        "1_000",
        "1..2",
        "--1",
        "1e1.5",
        // literals
        "tru",
        "nul",
        "True",
        "NULL",
        "fals",
        "truee",
        "nulll",
        // strings
        "'x'",
        "\"a\u{1}b\"",
        "\"a\nb\"",
        "\"tab\there\"",
        "\"\u{1f}\"",
        r#""\x""#,
        r#""\u12G4""#,
        r#""\u123""#,
        r#""\U0041""#,
        r#""\'""#,
        r#""\"#,
        r#""abc"#,
        // containers
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":}",
        "{a:1}",
        "{1:1}",
        "{\"a\":1 \"b\":2}",
        "[",
        "]",
        "{",
        "[}",
        "{]",
        "[1}",
        "{\"a\":1]",
        // misc
        "/*c*/1",
        "1 // c",
        "undefined",
        "\u{a0}1",
    ];
    for v in cases {
        let body = format!(r#"{{"model":"m","v":{v}}}"#);
        assert!(
            serde_json::from_str::<serde::de::IgnoredAny>(&body).is_err(),
            "serde accepts {body:?}"
        );
        for body in [
            body,
            many_brackets(&format!(r#""v":{v}"#)),
            many_brackets(&format!(r#""v":[{v}]"#)),
            many_brackets(&format!(r#""v":{{"k":{v}}}"#)),
        ] {
            assert!(
                matches!(fail(&body), BodyError::InvalidJson { .. }),
                "{body:?}"
            );
        }
    }
    for k in [r#""a"#, "a", "1", "null", r#""\q""#, "\"\u{7}\""] {
        for body in [
            format!(r#"{{"model":"m",{k}:1}}"#),
            many_brackets(&format!(r#""v":{{{k}:1}}"#)),
        ] {
            assert!(
                matches!(fail(&body), BodyError::InvalidJson { .. }),
                "{body:?}"
            );
        }
    }
}

#[test]
fn grammar_edge_cases_are_accepted() {
    let cases = [
        "0",
        "-0",
        "1.5e+10",
        "1E-2",
        "-0.0e0",
        "123456789012345678901234567890",
        "1e999",
        "0.000001",
        "[]",
        "{}",
        "[[],{},[{}]]",
        r#"{"":""}"#,
        r#""""#,
        r#""\/\\\"\b\f\n\r\t""#,
        r#""\uD83D\uDE00""#,
        "\"\u{7f}\u{2028}😀\"",
        // RFC 8259 permits unpaired surrogate escapes in strings the scanner doesn't decode.
        r#""\ud800""#,
        r#""\udc00\ud800""#,
        r#"{"\ud800":1}"#,
        " [ 1 , 2 ] ",
        "\t{\n\"a\"\r:\t[ true ,false, null ] }\n",
    ];
    for v in cases {
        // Also in a body with many brackets, where values are taken apart for depth checks.
        for body in [
            format!(r#"{{"model":"m","v":{v}}}"#),
            many_brackets(&format!(r#""v":{v}"#)),
            many_brackets(&format!(r#""v":[{v}],"w":{{"k":{v}}},"\u0078":{v}"#)),
        ] {
            assert_eq!(ok(&body).model, "m", "{body}");
        }
    }
}

#[test]
fn lone_surrogates_in_decoded_strings_are_refused() {
    for body in [
        r#"{"model":"gpt\ud800"}"#,
        r#"{"model":"gpt\udc00"}"#,
        r#"{"model":"gpt\ud800\u0041"}"#,
        r#"{"model":"gpt\ud800\ud800"}"#,
        r#"{"model":"gpt\ude00\ud83d"}"#,
        r#"{"model":"gpt\ud800\n"}"#,
        // top-level keys are decoded too: "mo\ud800del" must not be read as anything.
        r#"{"model":"a","mo\ud800del":"b"}"#,
        r#"{"model":"a","stream_options":{"include_usage\udfff":true}}"#,
    ] {
        let e = fail(body);
        assert_eq!(invalid_reason(&e), reason::LONE_SURROGATE, "{body}");
        assert!(serde_json::from_str::<Value>(body).is_err());
    }
}

#[test]
fn unescaped_control_characters_are_refused_everywhere() {
    for c in (0u8..0x20).map(char::from) {
        for body in [
            format!(r#"{{"model":"a{c}b"}}"#),
            format!(r#"{{"mo{c}del":"a"}}"#),
            format!(r#"{{"model":"a","x":["{c}"]}}"#),
            format!(r#"{{"model":"a","x":{{"k{c}":1}}}}"#),
            format!("{{\"model\":\"a\",\"x\":\"{}{c}\"}}", "y".repeat(100)),
        ] {
            let e = fail(&body);
            assert_eq!(invalid_reason(&e), reason::CONTROL_CHAR, "{body:?}");
        }
    }
}

/// Strings of every length up to 90 bytes with an escape, a raw control character or a stray
/// quote at every offset (serde_json's word-at-a-time string skipper, decoded and skipped
/// strings, with and without newlines elsewhere in the body); control characters are
/// reported at their exact offset.
#[test]
fn string_scanning_at_every_offset() {
    for len in 0..90 {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789".repeat(3)[..len].to_owned();
        for tail in ["", "\n"] {
            // Plain string; `tail` (raw whitespace after the object) switches to the
            // control-aware path.
            let body = format!(r#"{{"model":"m{text}","x":"{text}"}}{tail}"#);
            assert_eq!(ok(&body).model, format!("m{text}"));
            for p in 0..=len {
                // An escape at every position, in the model (decoded) and elsewhere.
                let (a, b) = text.split_at(p);
                let body = format!(r#"{{"model":"m{a}\"\u00e9{b}","x":"{a}\\{b}"}}{tail}"#);
                assert_eq!(ok(&body).model, format!("m{a}\"é{b}"), "{body:?}");
                // A raw control character at every position is refused at its offset.
                for c in ['\u{0}', '\n', '\u{1f}'] {
                    let body = format!(r#"{{"model":"m","x":"{a}{c}{b}"}}{tail}"#);
                    let at = r#"{"model":"m","x":""#.len() + p;
                    assert_eq!(
                        scan(body.as_bytes()),
                        Err(BodyError::InvalidJson {
                            offset: at,
                            reason: reason::CONTROL_CHAR
                        }),
                        "{body:?}"
                    );
                }
                // A stray quote at every position ends the string early.
                let body = format!(r#"{{"model":"m","x":"{a}"{b}"}}{tail}"#);
                assert!(scan(body.as_bytes()).is_err(), "{body:?}");
            }
        }
    }
}

#[test]
fn every_prefix_of_a_valid_body_is_refused() {
    let bodies = [
        r#"{"model":"gpt\u002d4","messages":[{"role":"user","content":"h\u00e9 \"x\" 😀\n","n":[1,-2.5e+3,true,false,null,{}]}],"stream":true,"stream_options":{"include_usage":false}}"#,
        r#"{"mo\u0064el":"a\ud83d\ude00","x":-0.0E-0,"y":[[[]]],"z":{"":""}}"#,
        " { \"model\" : \"m\" , \"t\" : 1 } ",
    ];
    for body in bodies {
        let full = scan(body.as_bytes()).expect("valid");
        for end in 0..=full.object_end {
            let prefix = &body.as_bytes()[..end];
            assert!(scan(prefix).is_err(), "prefix {:?} accepted", &body[..end]);
        }
    }
}

#[test]
fn error_offsets() {
    let at = |body: &str| match fail(body) {
        BodyError::InvalidJson { offset, reason } => (offset, reason),
        other => panic!("{body}: {other:?}"),
    };
    assert_eq!(
        at(r#"{"model":"m","v":[1 2]}"#),
        (20, reason::EXPECTED_COMMA_OR_BRACKET)
    );
    assert_eq!(
        at("{\"model\":\"m\",\n\"v\" 1}"),
        (18, reason::EXPECTED_COLON)
    );
    assert_eq!(
        at("{\"model\":\"m\",\n\n\"v\":[}"),
        (20, reason::EXPECTED_VALUE)
    );
    assert_eq!(
        at("{\"model\":\"m\",\n\"v\":\n}"),
        (19, reason::EXPECTED_VALUE)
    );
    assert_eq!(at(r#"{"model":"m","v":[1,]}"#).0, 20);
    assert_eq!(at(r#"{"model":"m","v":"#), (17, reason::EOF));
    assert_eq!(at("{\"model\":\"m\"}\n\n x"), (16, reason::TRAILING));
    // Duplicate keys point at the (second) key, however it is spelled.
    assert_eq!(
        at(r#"{"model":"m","stream":true, "str\u0065am" :false}"#),
        (28, reason::DUPLICATE_STREAM)
    );
    assert_eq!(
        at(r#"{"model":"m","stream_options":{},"x\"y":1,"stream_options":null}"#),
        (42, reason::DUPLICATE_STREAM_OPTIONS)
    );
}

// ------------------------------------------------------------------ stream / stream_options

#[test]
fn stream_flag() {
    assert!(ok(r#"{"model":"m","stream":true}"#).stream);
    assert!(ok(r#"{"stream" : true ,"model":"m"}"#).stream);
    assert!(!ok(r#"{"model":"m","stream":false}"#).stream);
    assert!(!ok(r#"{"model":"m","stream":null}"#).stream);
    assert!(!ok(r#"{"model":"m"}"#).stream);
    for v in [r#""true""#, "1", "0", "{}", "[]", r#""""#] {
        let body = format!(r#"{{"model":"m","stream":{v}}}"#);
        assert_eq!(
            invalid_reason(&fail(&body)),
            reason::STREAM_NOT_BOOL,
            "{body}"
        );
    }
    for body in [
        r#"{"model":"m","stream":true,"stream":false}"#,
        r#"{"model":"m","stream":false,"str\u0065am":true}"#,
    ] {
        assert_eq!(invalid_reason(&fail(body)), reason::DUPLICATE_STREAM);
    }
    assert_eq!(
        invalid_reason(&fail(
            r#"{"model":"m","stream_options":null,"stream_options":{}}"#
        )),
        reason::DUPLICATE_STREAM_OPTIONS
    );
}

#[test]
fn stream_options_shapes() {
    let body = r#"{"model":"m","stream_options": { } }"#;
    let s = ok(body);
    let StreamOptions::Object {
        open_brace,
        end,
        empty,
        include_usage,
    } = s.stream_options
    else {
        panic!("{:?}", s.stream_options)
    };
    assert_eq!(&body[open_brace..end], "{ }");
    assert!(empty && include_usage == IncludeUsage::Absent);

    let s = ok(r#"{"model":"m","stream_options":{"a":[1,{"include_usage":1}],"b":{}}}"#);
    assert!(matches!(
        s.stream_options,
        StreamOptions::Object {
            empty: false,
            include_usage: IncludeUsage::Absent,
            ..
        }
    ));
    for (v, value) in [
        (r#"{"include_usage":false}"#, "false"),
        (r#"{"x":1,"include_usage": null }"#, "null"),
        (r#"{"include\u005fusage":{"a":1}}"#, r#"{"a":1}"#),
    ] {
        let body = format!(r#"{{"model":"m","stream_options":{v}}}"#);
        let s = ok(&body);
        let StreamOptions::Object {
            empty: false,
            include_usage: IncludeUsage::Value { start, end },
            ..
        } = s.stream_options
        else {
            panic!("{v}: {:?}", s.stream_options)
        };
        assert_eq!(&body[start..end], value, "{v}");
    }
    for (v, want) in [
        (r#"{"include_usage":true}"#, IncludeUsage::True),
        (
            r#"{"include_usage":true,"include_usage":true}"#,
            IncludeUsage::True,
        ),
        (
            r#"{"include_usage":true,"include_usage":1}"#,
            IncludeUsage::Several,
        ),
        (
            r#"{"include_usage":0,"include_usage":true}"#,
            IncludeUsage::True,
        ),
        (
            r#"{"include_usage":0,"x":1,"include_usage":null}"#,
            IncludeUsage::Several,
        ),
    ] {
        let s = ok(&format!(r#"{{"model":"m","stream_options":{v}}}"#));
        assert!(
            matches!(s.stream_options, StreamOptions::Object { include_usage, .. } if include_usage == want),
            "{v}: {:?}",
            s.stream_options
        );
    }
    for v in ["null", "[]", "1", r#""x""#, "true"] {
        let body = format!(r#"{{"model":"m","stream_options":{v}}}"#);
        let s = ok(&body);
        let StreamOptions::Other { start, end } = s.stream_options else {
            panic!("{v}: {:?}", s.stream_options)
        };
        assert_eq!(&body[start..end], v);
    }
}

#[test]
fn error_messages_do_not_echo_the_body() {
    let secret = "sk-SECRET";
    let mut bodies = vec![
        format!(r#"{{"model":"{secret}" x}}"#).into_bytes(),
        format!(r#"{{"model":"{secret}\q"}}"#).into_bytes(),
        format!(r#"{{"{secret}":1}}"#).into_bytes(),
        format!(r#"{{"model":1,"k":"{secret}"}}"#).into_bytes(),
        format!(r#"["{secret}"]"#).into_bytes(),
    ];
    bodies.push([br#"{"model":""#, secret.as_bytes(), b"\xff\"}"].concat());
    for body in &bodies {
        let e = scan(body).unwrap_err();
        let msg = e.message();
        assert!(!msg.contains("SECRET"), "{msg}");
        assert_eq!(e.to_string(), msg);
        assert!(!msg.is_empty());
    }
    let e = BodyError::InvalidJson {
        offset: 7,
        reason: reason::TRAILING,
    };
    assert!(e.message().contains('7'));
    assert!(BodyError::TooDeep.message().contains("128"));
    let _: &dyn std::error::Error = &e;
}

// ------------------------------------------------------------------ large bodies

#[test]
fn one_mebibyte_body() {
    let chunk = "Line with \\\"quotes\\\", a backslash \\\\, tab\\t, caf\\u00e9, emoji \\ud83d\\ude00, raw 中文 and é. ";
    let mut content = String::new();
    while content.len() < (1 << 20) {
        content.push_str(chunk);
    }
    let body = format!(
        r#"{{"messages":[{{"role":"user","content":"{content}"}},{{"role":"user","content":"{}"}}],"model":"gpt\u002d4o","stream":true}}"#,
        "x".repeat(100_000)
    );
    assert!(body.len() > 1 << 20);
    let s = ok(&body);
    assert_eq!(s.model, "gpt-4o");
    assert!(s.stream);
    assert_eq!(s.object_end, body.len() - 1);
    let out = rewrite(body.as_bytes(), "provider-model");
    let (a, b) = (json(body.as_bytes()), json(&out));
    assert_eq!(a["messages"], b["messages"]);
    assert_eq!(b["model"], "provider-model");
    assert_eq!(b["stream_options"]["include_usage"], true);
    assert_eq!(
        out.len(),
        body.len() - r#""gpt\u002d4o""#.len()
            + r#""provider-model""#.len()
            + r#","stream_options":{"include_usage":true}"#.len()
    );
}

#[test]
fn case_folded_model_and_stream_keys_are_refused() {
    for body in [
        r#"{"model":"a","MODEL":"b"}"#,
        r#"{"model":"a","Model":"b"}"#,
        r#"{"MoDeL":"b","model":"a"}"#,
        r#"{"model":"a","STREAM":true}"#,
        r#"{"model":"a","\u017ftream":true}"#,
        "{\"model\":\"a\",\"\u{17f}TREAM\":false}",
        r#"{"model":"a","\u212aey":1,"MODE\u004C":1}"#,
        r#"{"model":"a","mo\u0044el":"b"}"#,
    ] {
        match scan(body.as_bytes()) {
            Err(BodyError::InvalidJson { reason, .. }) => {
                assert_eq!(reason, reason::CASE_FOLDED_KEY, "{body}")
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    // look-alikes that do not fold to the reserved names, and nested keys, are fine
    for body in [
        r#"{"model":"a","models":1,"streams":2,"Stream_options":3}"#,
        r#"{"model":"a","messages":[{"MODEL":"x","Stream":1}]}"#,
        r#"{"model":"a","m\u00f6del":1,"\u212aey":1}"#,
    ] {
        assert!(scan(body.as_bytes()).is_ok(), "{body}");
    }
}
