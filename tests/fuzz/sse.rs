//! `SseDecoder`, `SseScanner` and `JsonUsageScanner`: never panic, and every observable result
//! is the same however the input is split (whole, random chunks, one byte at a time).

use berry_gateway::sse::{SseDecoder, SseError, SseFrame, MAX_SSE_LINE};
use berry_gateway::usage::{JsonUsageScanner, SseScanner, JSON_BODY_CAP};
use berry_gateway::vocab::TokenUsage;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use crate::{bytes, cuts, fuzz, split, Bytes, Tally};

// ------------------------------------------------------------------------------ observers

/// Everything a decoder reports: its frames (kind, event name, data), the first error and
/// the state at the end.
#[derive(Debug, PartialEq)]
pub(crate) struct DecoderTrace {
    frames: Vec<(char, Bytes, Bytes)>,
    error: Option<SseError>,
    mid_line: bool,
    mid_event: bool,
    pending: Bytes,
}

/// The trace of a decoder with line limit `limit` fed `chunks`; an error must be sticky (the
/// decoder reports it again, also on more input).
pub(crate) fn decode(limit: usize, chunks: &[&[u8]]) -> DecoderTrace {
    let mut d = SseDecoder::with_limit(limit);
    let mut frames = Vec::new();
    let mut error = None;
    for chunk in chunks {
        let mut input = *chunk;
        loop {
            match d.next_frame(&mut input) {
                Ok(Some(SseFrame::Data(x))) => frames.push(('d', Bytes::default(), x.into())),
                Ok(Some(SseFrame::EventType(x))) => frames.push(('t', x.into(), Bytes::default())),
                Ok(Some(SseFrame::Event(ev))) => {
                    frames.push(('E', ev.event.into(), ev.data.into()))
                }
                Ok(None) => break,
                Err(e) => {
                    error.get_or_insert(e);
                    assert_eq!(d.error(), Some(e), "errors are sticky");
                    assert_eq!(d.next_frame(&mut &b"\n\n"[..]).err(), Some(e), "sticky");
                    break;
                }
            }
        }
    }
    DecoderTrace {
        frames,
        error,
        mid_line: d.is_mid_line(),
        mid_event: d.is_mid_event(),
        pending: d.pending_data().into(),
    }
}

#[derive(Debug, PartialEq)]
struct ScannerTrace {
    error: Option<SseError>,
    usage: Option<TokenUsage>,
    finished: bool,
    saw_error: bool,
    events: u64,
}

fn scan_sse(chunks: &[&[u8]]) -> ScannerTrace {
    let mut s = SseScanner::new();
    let mut error = None;
    for chunk in chunks {
        if let Err(e) = s.feed(chunk) {
            error.get_or_insert(e);
            assert_eq!(s.feed(b"\n\n"), Err(e), "errors are sticky");
        }
    }
    ScannerTrace {
        error,
        usage: s.usage(),
        finished: s.finished(),
        saw_error: s.saw_error_event(),
        events: s.events(),
    }
}

#[derive(Debug, PartialEq)]
struct JsonTrace {
    usage: Option<TokenUsage>,
    complete: bool,
    invalid: bool,
}

fn scan_json(chunks: &[&[u8]]) -> JsonTrace {
    let mut s = JsonUsageScanner::new();
    for chunk in chunks {
        s.feed(chunk);
        // Asking in between must not change the final answer.
        let _ = s.is_invalid();
    }
    JsonTrace {
        usage: s.usage(),
        complete: s.is_complete(),
        invalid: s.is_invalid(),
    }
}

/// `run` on the whole input, on the chunks at `cuts` and one byte at a time: all equal.
fn split_invariant<T: PartialEq + std::fmt::Debug>(
    input: &[u8],
    cuts: &[Index],
    run: impl Fn(&[&[u8]]) -> T,
) -> T {
    let whole = run(&[input]);
    let chunks = split(input, cuts);
    assert_eq!(run(&chunks), whole, "split into {chunks:?}");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(&bytes), whole, "one byte at a time");
    whole
}

/// Decoder and scanner on the same input: split-invariant each, and consistent together.
fn check_stream(input: &[u8], cuts: &[Index], limit: usize, tally: &Tally) {
    tally.hit("case");
    if split_invariant(input, cuts, |c| decode(limit, c)).error == Some(SseError::LineTooLong) {
        tally.hit("too long");
    }
    let dec = split_invariant(input, cuts, |c| decode(MAX_SSE_LINE, c));
    let sc = split_invariant(input, cuts, scan_sse);
    tally.hit(match sc.error {
        None if sc.events > 0 => "events",
        None => "no events",
        Some(SseError::InvalidData) => "invalid data",
        Some(_) => "broken framing",
    });
    if sc.usage.is_some() {
        tally.hit("usage");
    }
    match sc.error {
        // The scanner frames like the decoder and counts every event.
        None => {
            assert_eq!(dec.error, None);
            let events = dec.frames.iter().filter(|f| f.0 == 'E').count();
            assert_eq!(sc.events, events as u64);
        }
        Some(SseError::InvalidData) => {}
        Some(e) => assert_eq!(dec.error, Some(e)),
    }
}

// ------------------------------------------------------------------------------ generators

/// Framing tokens, glued at random.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    const TOKENS: &[&[u8]] = &[
        b"data: ",
        b"data:",
        b"data",
        b"event: ",
        b"event:message_stop",
        b"event: error",
        b"id:",
        b"retry",
        b": c",
        b"x",
        b"{}",
        b"[DONE]",
        b"{\"usage\":{\"prompt_tokens\":3}}",
        b"{\"error\":{}}",
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b" ",
        b"\xEF\xBB\xBF",
        b"\xEF",
        b"\xBB",
        b"e",
        b"d",
        b"\xff",
    ];
    vec(select(TOKENS), 0..40).prop_map(|t| t.concat())
}

/// Event payloads: what providers send, and what they should not.
fn payload() -> impl Strategy<Value = String> {
    let count = prop_oneof![
        4 => (0u64..100_000).prop_map(|n| n.to_string()),
        1 => select(&["-1", "1.5", "1e3", "18446744073709551616", "null", "\"7\"", "true"][..])
            .prop_map(str::to_owned),
    ];
    let field = select(
        &[
            "prompt_tokens",
            "completion_tokens",
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "total_tokens",
        ][..],
    );
    let usage = prop_oneof![
        4 => vec((field, count), 0..4).prop_map(|f| {
            let parts: Vec<String> = f.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", parts.join(","))
        }),
        1 => Just("null".to_owned()),
        1 => Just("{\"prompt_tokens\":9,\"prompt_tokens_details\":{\"cached_tokens\":4}}".to_owned()),
    ];
    prop_oneof![
        6 => usage.clone().prop_map(|u| format!("{{\"id\":\"c\",\"choices\":[],\"usage\":{u}}}")),
        3 => usage.prop_map(|u| format!("{{\"type\":\"message_start\",\"message\":{{\"id\":\"m\",\"usage\":{u}}}}}")),
        4 => select(&[
            "{\"choices\":[{\"delta\":{\"content\":\"hi\\n\"}}]}",
            "{\"type\":\"ping\"}",
            "[DONE]",
            " [DONE] ",
            "{\"error\":{\"message\":\"x\"}}",
            "{\"error\":null}",
            "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}",
            "{\"usage\":{\"output_tokens\":5},\"usage\":{\"input_tokens\":2}}",
            "{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":12}}",
            "{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}",
            "{\"a\":\"\\ud800\"}",
            "[1,2]",
            "\"s\"",
            "  {}",
        ][..])
        .prop_map(str::to_owned),
        1 => select(&["", "{", "{\"a\":1} x", "nope", "\u{e9}\u{1f600}", "[DONE]x"][..])
            .prop_map(str::to_owned),
    ]
}

/// One event (its lines, without terminators, ending with the blank line), or a stray line.
fn event() -> impl Strategy<Value = Vec<String>> {
    let data = (
        select(&["data: ", "data:", "data:  "][..]),
        payload(),
        any::<bool>(),
    )
        .prop_map(
            |(f, p, pretty)| match serde_json::from_str::<serde_json::Value>(&p) {
                // Pretty-printed JSON over several data lines (joined with \n it is the same JSON).
                Ok(v) if pretty => serde_json::to_string_pretty(&v)
                    .unwrap()
                    .lines()
                    .map(|l| format!("{f}{l}"))
                    .collect(),
                _ => vec![format!("{f}{p}")],
            },
        );
    let field = select(
        &[
            "event: message_stop",
            "event: error",
            "event: message_delta",
            "event:ping",
            "event",
            "id: 7",
            "retry: 10",
            "id",
            ": keep-alive",
            ":",
        ][..],
    );
    let stray = prop_oneof![
        8 => select(&["data", "data:", ": comment", "", "event: message_stop"][..]),
        1 => select(&["Data: x", "dat", "<html>", " data: 1", "\u{feff}data: 1", "eventx"][..]),
    ];
    prop_oneof![
        10 => (prop::option::weighted(0.3, field), data).prop_map(|(f, d)| {
            let mut lines: Vec<String> = f.into_iter().map(str::to_owned).collect();
            lines.extend(d);
            lines.push(String::new());
            lines
        }),
        1 => stray.prop_map(|l| vec![l.to_owned()]),
    ]
}

/// A generated event stream: events and stray lines with random terminators, maybe a BOM
/// or part of one, maybe cut short.
fn event_stream() -> impl Strategy<Value = Vec<u8>> {
    let eol = select(&["\n", "\n", "\n", "\r\n", "\r"][..]);
    let start = prop_oneof![16 => Just(""), 4 => Just("\u{feff}"), 1 => Just("\u{feff}\u{feff}")];
    (
        start,
        vec((event(), eol), 0..10),
        prop::bool::weighted(0.05),
        prop::option::weighted(0.2, any::<Index>()),
    )
        .prop_map(|(bom, events, partial_bom, cut)| {
            let mut s = bom.as_bytes().to_vec();
            for (lines, eol) in events {
                for l in lines {
                    s.extend_from_slice(l.as_bytes());
                    s.extend_from_slice(eol.as_bytes());
                }
            }
            if partial_bom && bom.is_empty() && !s.is_empty() {
                s.insert(0, 0xEF);
            }
            if let Some(at) = cut {
                s.truncate(at.index(s.len() + 1));
            }
            s
        })
}

/// Bodies for the JSON scanner: responses with usage in odd shapes, garbage, truncation.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let count = prop_oneof![
        4 => (0u64..1_000_000).prop_map(|n| n.to_string()),
        1 => select(&["-1", "2.0", "1e2", "18446744073709551616", "null", "\"3\""][..]).prop_map(str::to_owned),
    ];
    let field = select(
        &[
            "prompt_tokens",
            "completion_tokens",
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "prompt_tokens_details",
        ][..],
    );
    let usage = vec((field, count), 0..5).prop_map(|f| {
        let parts: Vec<String> = f.iter().map(|(k, v)| format!("\"{k}\" : {v}")).collect();
        format!("{{{}}}", parts.join(", "))
    });
    let member = prop_oneof![
        3 => usage.clone().prop_map(|u| format!("\"usage\":{u}")),
        1 => usage.prop_map(|u| format!("\"choices\":[{{\"usage\":{u},\"text\":\"\\\"usage\\\":{{}}\"}}]")),
        1 => Just("\"usage\":null".to_owned()),
        2 => select(&["\"id\":\"x\"", "\"object\":\"chat.completion\"", "\"error\":{\"message\":\"e\"}", "\"content\":[{\"type\":\"text\",\"text\":\"h\\u00e9\"}]"][..]).prop_map(str::to_owned),
    ];
    let tail = prop_oneof![16 => Just(""), 1 => Just("x"), 1 => Just("}"), 1 => Just(" {}"), 1 => Just("\u{0}")];
    (
        prop_oneof![12 => select(&["", " ", "\n"][..]), 1 => select(&["\u{feff}", "["][..])],
        vec(member, 0..5),
        select(&["", " ", "\r\n"][..]),
        tail,
        any::<Index>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(pre, members, post, tail, cut_at, cut)| {
            let mut s = format!("{pre}{{{}}}{post}{tail}", members.join(",")).into_bytes();
            if cut {
                s.truncate(cut_at.index(s.len() + 1));
            }
            s
        })
}

// ------------------------------------------------------------------------------ properties

#[test]
fn sse_arbitrary_bytes_split_invariant() {
    let tally = Tally::default();
    fuzz(
        768,
        || {
            (
                bytes(prop_oneof![vec(any::<u8>(), 0..200), soup()]),
                cuts(),
                select(&[4usize, 8, 16, 64][..]),
            )
        },
        |(input, cuts, limit)| {
            check_stream(&input, &cuts, limit, &tally);
            Ok(())
        },
    );
    tally.at_least("broken framing", "case", 0.3);
}

#[test]
fn sse_generated_streams_split_invariant() {
    let tally = Tally::default();
    fuzz(
        512,
        || {
            (
                bytes(event_stream()),
                cuts(),
                select(&[16usize, 64, 256][..]),
            )
        },
        |(input, cuts, limit)| {
            check_stream(&input, &cuts, limit, &tally);
            Ok(())
        },
    );
    tally.at_least("events", "case", 0.25);
    tally.at_least("usage", "case", 0.25);
    tally.at_least("too long", "case", 0.2);
    tally.at_least("invalid data", "case", 0.1);
}

#[test]
fn json_usage_scanner_split_invariant() {
    let tally = Tally::default();
    fuzz(
        1024,
        || {
            (
                bytes(prop_oneof![vec(any::<u8>(), 0..128), json_body()]),
                cuts(),
            )
        },
        |(input, cuts)| {
            let t = split_invariant(&input, &cuts, scan_json);
            tally.hit("case");
            if t.complete {
                tally.hit("complete");
            }
            if t.usage.is_some() {
                tally.hit("usage");
            }
            // Below the cap the verdict is serde_json's: exactly one JSON value.
            assert_eq!(
                t.complete,
                crate::is_json(&input),
                "{:?}",
                String::from_utf8_lossy(&input)
            );
            Ok(())
        },
    );
    tally.at_least("complete", "case", 0.1);
    tally.at_least("usage", "case", 0.04);
}

/// Bodies over `JSON_BODY_CAP` keep only a tail: still split-invariant.
#[test]
fn json_usage_scanner_over_the_cap_split_invariant() {
    fuzz(
        16,
        || (bytes(json_body()), 0usize..8192, cuts()),
        |(body, extra, cuts)| {
            let pad = "x".repeat(JSON_BODY_CAP + extra);
            let mut input = format!("{{\"pad\":\"{pad}\",").into_bytes();
            input.extend_from_slice(body.strip_prefix(b"{").unwrap_or(&body));
            let whole = scan_json(&[&input]);
            assert_eq!(scan_json(&split(&input, &cuts)), whole);
            let small: Vec<&[u8]> = input.chunks(977).collect();
            assert_eq!(scan_json(&small), whole);
            Ok(())
        },
    );
}
