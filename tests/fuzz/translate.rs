//! The dialect translators: never panic; stream translators produce the same bytes for every
//! split, and only whole events whose data is JSON or `[DONE]`; a valid generated stream is
//! accepted and ends the way the client's dialect ends a stream; translated requests name
//! the backend's model exactly once and keep the `stream` flag; error bodies are always
//! well-formed and never pass a credentials refusal's text on.

use berry_gateway::body::scan;
use berry_gateway::sse::SseDecoder;
use berry_gateway::translate::errors::{self, CREDENTIALS_MESSAGE};
use berry_gateway::translate::{chat_to_messages, messages_to_chat, responses, UpstreamBroken};

/// The context of the fuzzed Responses answers (a fixed `created_at`).
fn responses_context() -> responses::AnswerContext {
    let mut cx = responses::AnswerContext::new("resp_1".into(), "m".into(), RESPONSES_REQUEST);
    cx.created_at = 1_700_000_000;
    cx
}

/// The Responses request the fuzzed Responses answers answer (a custom tool, a function tool).
const RESPONSES_REQUEST: &[u8] =
    br#"{"tools":[{"type":"custom","name":"apply_patch"},{"type":"function","name":"f"}]}"#;
use berry_gateway::usage::{JsonUsageScanner, SseScanner};
use berry_gateway::vocab::TokenUsage;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{json, Map, Value};

use crate::{bytes, cuts, folds_to, fuzz, is_json, split, Bytes, Members, Tally};

// ------------------------------------------------------------------------------ runs

/// Everything a stream translator produced for some input.
#[derive(Debug, PartialEq, Clone)]
pub(crate) struct Run {
    pub(crate) out: Bytes,
    feed: Result<(), UpstreamBroken>,
    finish: Result<(), UpstreamBroken>,
    usage: Option<TokenUsage>,
    started: bool,
    saw_error: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Dir {
    /// Anthropic events in, OpenAI chunks out (with or without the usage chunk).
    ChatToMessages(bool),
    /// OpenAI chunks in, Anthropic events out.
    MessagesToChat,
    /// Anthropic events in, Responses events out.
    ResponsesFromMessages,
    /// OpenAI chunks in, Responses events out.
    ResponsesFromChat,
}

/// `dir`'s stream translator fed `chunks`; a feed error must be sticky.
pub(crate) fn run(dir: Dir, chunks: &[&[u8]]) -> Run {
    let mut out = Vec::new();
    let mut feed = Ok(());
    macro_rules! go {
        ($t:expr) => {{
            let mut t = $t;
            for c in chunks {
                if let Err(e) = t.feed(c, &mut out) {
                    feed = Err(e);
                    // Sticky: later input changes nothing.
                    let n = out.len();
                    assert!(t.feed(b"data: {}\n\n", &mut out).is_err());
                    assert_eq!(out.len(), n);
                    break;
                }
            }
            let finish = t.finish();
            Run {
                out: Bytes(out),
                feed,
                finish,
                usage: t.usage(),
                started: t.started_content(),
                saw_error: t.saw_error(),
            }
        }};
    }
    match dir {
        Dir::ChatToMessages(usage) => go!(chat_to_messages::Stream::new_at(usage, 1_700_000_000)),
        Dir::MessagesToChat => go!(messages_to_chat::Stream::new()),
        Dir::ResponsesFromMessages => go!(responses::new_messages_stream(responses_context())),
        Dir::ResponsesFromChat => go!(responses::new_chat_stream(responses_context())),
    }
}

/// The translator's output: whole events only, each one's data JSON or `[DONE]`, and the
/// gateway's own usage scanner accepts it. Returns the scanner.
pub(crate) fn check_output(out: &[u8]) -> SseScanner {
    let shown = || String::from_utf8_lossy(out).into_owned();
    let mut d = SseDecoder::new();
    let mut bad = None;
    let framed = d.feed(out, |ev| {
        if ev.data != b"[DONE]" && !is_json(ev.data) && bad.is_none() {
            bad = Some(String::from_utf8_lossy(ev.data).into_owned());
        }
    });
    assert_eq!(framed, Ok(()), "output is not an event stream: {}", shown());
    assert_eq!(bad, None, "event data is not JSON: {}", shown());
    assert!(!d.is_mid_event(), "output ends mid-event: {}", shown());
    let mut s = SseScanner::new();
    assert_eq!(
        s.feed(out),
        Ok(()),
        "usage scanner refuses the output: {}",
        shown()
    );
    s
}

/// Split-invariance (whole, random chunks, byte at a time) and well-formed output.
fn check_stream(dir: Dir, input: &[u8], cuts: &[Index]) -> (Run, SseScanner) {
    let whole = run(dir, &[input]);
    let chunks = split(input, cuts);
    assert_eq!(run(dir, &chunks), whole, "{dir:?} split into {chunks:?}");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(dir, &bytes), whole, "{dir:?} byte at a time");
    if std::str::from_utf8(input).is_ok() {
        assert!(
            std::str::from_utf8(&whole.out).is_ok(),
            "{dir:?}: output not UTF-8"
        );
    }
    let s = check_output(&whole.out);
    (whole, s)
}

fn outcome(tally: &Tally, r: &Run) {
    tally.hit("case");
    tally.hit(match (&r.feed, &r.finish) {
        (Ok(()), Ok(())) => "complete",
        (Err(_), _) => "broken",
        (Ok(()), Err(_)) if r.saw_error => "error event",
        (Ok(()), Err(_)) => "incomplete",
    });
}

// ------------------------------------------------------------------------------ generators

/// Text with everything JSON must escape, non-ASCII and astral characters.
fn text() -> impl Strategy<Value = String> {
    vec(
        select(
            &[
                'a', 'b', ' ', 'é', '中', '😀', '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1f}',
                '\u{2028}', '/', '{', '}', ':',
            ][..],
        ),
        0..8,
    )
    .prop_map(|c| c.into_iter().collect())
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z_]{1,8}", 1 => text()]
}

/// A token count as providers send it (the translators refuse an event whose usage has a
/// count that is not a `u64`).
fn valid_count() -> impl Strategy<Value = Value> {
    prop_oneof![9 => (0u64..100_000).prop_map(Value::from), 1 => Just(Value::Null)]
}

/// Tool ids and names in a valid stream: non-empty, unique per stream (`k` is appended).
fn tool_name() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z_]{1,8}", 1 => text().prop_map(|t| format!("{t}_"))]
}

fn count() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (0u64..100_000).prop_map(Value::from),
        1 => Just(Value::Null),
        1 => select(vec![json!(-1), json!(1.5), json!("3"), json!(u64::MAX)]),
    ]
}

/// Framing of one stream: line terminator, `event:` lines or not, pretty-printed data over
/// several lines, comments, a BOM.
#[derive(Debug, Clone)]
struct Framing {
    eol: &'static str,
    names: bool,
    pretty: bool,
    comments: bool,
    bom: bool,
}

fn framing() -> impl Strategy<Value = Framing> {
    (
        select(&["\n", "\n", "\r\n", "\r"][..]),
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(eol, names, pretty, comments, bom)| Framing {
            eol,
            names,
            pretty,
            comments,
            bom,
        })
}

/// Renders events (`name`, data) with `f`; a `Value::String("[DONE]")` is sent raw.
fn render(events: &[(String, Value)], f: &Framing) -> Vec<u8> {
    let mut s = String::new();
    if f.bom {
        s.push('\u{feff}');
    }
    for (i, (name, data)) in events.iter().enumerate() {
        if f.comments && i % 3 == 0 {
            s.push_str(": keep-alive");
            s.push_str(f.eol);
            s.push_str(f.eol);
        }
        if f.names && !name.is_empty() {
            s.push_str(&format!("event: {name}{}", f.eol));
        }
        let text = match data {
            Value::String(d) if d == "[DONE]" => d.clone(),
            v if f.pretty => serde_json::to_string_pretty(v).unwrap(),
            v => v.to_string(),
        };
        for line in text.split('\n') {
            s.push_str(&format!("data: {line}{}", f.eol));
        }
        s.push_str(f.eol);
    }
    s.into_bytes()
}

/// Stream damage: drop, duplicate or swap events, insert an error or an unknown event.
#[derive(Debug, Clone)]
enum Damage {
    Drop(Index),
    Dup(Index),
    Swap(Index),
    Insert(Index, String, Value),
}

fn damage() -> impl Strategy<Value = Vec<Damage>> {
    let extra = select(vec![
        (
            "error".to_owned(),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
        ),
        (
            String::new(),
            json!({"error": {"message": "quota", "type": "insufficient_quota", "code": "rate_limit_exceeded"}}),
        ),
        ("future".to_owned(), json!({"type": "future_event", "x": 1})),
        ("ping".to_owned(), json!({"type": "ping"})),
        (String::new(), json!([1])),
        (String::new(), json!("[DONE]")),
        (String::new(), json!({})),
    ]);
    let one = prop_oneof![
        any::<Index>().prop_map(Damage::Drop),
        any::<Index>().prop_map(Damage::Dup),
        any::<Index>().prop_map(Damage::Swap),
        (any::<Index>(), extra).prop_map(|(i, (n, v))| Damage::Insert(i, n, v)),
    ];
    prop_oneof![1 => Just(Vec::new()), 1 => vec(one, 1..3)]
}

fn apply(events: &mut Vec<(String, Value)>, damage: &[Damage]) {
    for d in damage {
        let n = events.len();
        match d {
            Damage::Drop(i) if n > 0 => {
                events.remove(i.index(n));
            }
            Damage::Dup(i) if n > 0 => {
                let e = events[i.index(n)].clone();
                events.insert(i.index(n), e);
            }
            Damage::Swap(i) if n > 1 => events.swap(i.index(n - 1), i.index(n - 1) + 1),
            Damage::Insert(i, name, v) => events.insert(i.index(n + 1), (name.clone(), v.clone())),
            _ => {}
        }
    }
}

#[derive(Debug, Clone)]
enum ABlock {
    Text(Vec<String>),
    Tool(String, String, Vec<String>),
    Thinking(Vec<String>),
}

fn a_block() -> impl Strategy<Value = ABlock> {
    prop_oneof![
        3 => vec(text(), 0..4).prop_map(ABlock::Text),
        2 => (tool_name(), tool_name(), vec(select(&["", "{\"q\":", " 1", "}", "\"x\\n\"", "[", "\u{e9}"][..]).prop_map(str::to_owned), 0..4))
            .prop_map(|(id, n, parts)| ABlock::Tool(id, n, parts)),
        1 => vec(text(), 0..3).prop_map(ABlock::Thinking),
    ]
}

/// A valid Anthropic Messages event stream, as events.
fn anthropic_events() -> impl Strategy<Value = Vec<(String, Value)>> {
    (
        name(),
        name(),
        (valid_count(), valid_count(), valid_count()),
        vec(a_block(), 0..4),
        select(&["end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal", "pause_turn", "odd"][..]),
        valid_count(),
        any::<bool>(),
    )
        .prop_map(|(id, model, (i, cr, cw), blocks, stop, out, ping)| {
            let mut ev: Vec<(String, Value)> = Vec::new();
            let mut push = |n: &str, v: Value| ev.push((n.to_owned(), v));
            push(
                "message_start",
                json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                    "stop_reason": null, "usage": {"input_tokens": i, "cache_read_input_tokens": cr, "cache_creation_input_tokens": cw, "output_tokens": 1}}}),
            );
            if ping {
                push("ping", json!({"type": "ping"}));
            }
            for (k, b) in blocks.iter().enumerate() {
                let (start, deltas): (Value, Vec<Value>) = match b {
                    ABlock::Text(parts) => (
                        json!({"type": "text", "text": ""}),
                        parts.iter().map(|t| json!({"type": "text_delta", "text": t})).collect(),
                    ),
                    ABlock::Tool(id, name, parts) => (
                        json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                        parts.iter().map(|p| json!({"type": "input_json_delta", "partial_json": p})).collect(),
                    ),
                    ABlock::Thinking(parts) => (
                        json!({"type": "thinking", "thinking": ""}),
                        parts
                            .iter()
                            .map(|t| json!({"type": "thinking_delta", "thinking": t}))
                            .chain(std::iter::once(json!({"type": "signature_delta", "signature": "sig"})))
                            .collect(),
                    ),
                };
                push("content_block_start", json!({"type": "content_block_start", "index": k, "content_block": start}));
                for d in deltas {
                    push("content_block_delta", json!({"type": "content_block_delta", "index": k, "delta": d}));
                }
                push("content_block_stop", json!({"type": "content_block_stop", "index": k}));
            }
            push(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": out}}),
            );
            push("message_stop", json!({"type": "message_stop"}));
            ev
        })
}

#[derive(Debug, Clone)]
enum OPiece {
    Content(String),
    Refusal(String),
    /// A tool call: id, name, argument pieces, and whether deltas carry the index.
    Tool(String, String, Vec<String>, bool),
}

fn o_piece() -> impl Strategy<Value = OPiece> {
    prop_oneof![
        3 => text().prop_map(OPiece::Content),
        1 => text().prop_map(OPiece::Refusal),
        2 => (tool_name(), tool_name(), vec(select(&["", "{\"a\":", "1}", "\"\\u00e9\"", "]"][..]).prop_map(str::to_owned), 0..4), prop::bool::weighted(0.8))
            .prop_map(|(id, n, a, indexed)| OPiece::Tool(id, n, a, indexed)),
    ]
}

/// A valid OpenAI chat completion chunk stream, as events.
fn openai_events() -> impl Strategy<Value = Vec<(String, Value)>> {
    (
        name(),
        name(),
        vec(o_piece(), 0..5),
        select(&["stop", "length", "tool_calls", "content_filter", "function_call", "odd"][..]),
        prop::option::of((valid_count(), valid_count(), valid_count())),
        any::<bool>(),
    )
        .prop_map(|(id, model, pieces, finish, usage, role_first)| {
            let chunk = |delta: Value, fr: Value| {
                (
                    String::new(),
                    json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": model,
                        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": fr}]}),
                )
            };
            let mut ev = Vec::new();
            if role_first {
                ev.push(chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            }
            let mut tool = 0u64;
            for p in &pieces {
                match p {
                    OPiece::Content(t) => ev.push(chunk(json!({"content": t}), Value::Null)),
                    OPiece::Refusal(t) => ev.push(chunk(json!({"refusal": t}), Value::Null)),
                    OPiece::Tool(tid, name, args, indexed) => {
                        let tid = format!("{tid}{tool}");
                        let mut first = json!({"id": tid, "type": "function", "function": {"name": name, "arguments": ""}});
                        if *indexed {
                            first["index"] = json!(tool);
                        }
                        ev.push(chunk(json!({"tool_calls": [first]}), Value::Null));
                        for a in args {
                            let mut d = json!({"function": {"arguments": a}});
                            if *indexed {
                                d["index"] = json!(tool);
                            }
                            ev.push(chunk(json!({"tool_calls": [d]}), Value::Null));
                        }
                        tool += 1;
                    }
                }
            }
            ev.push(chunk(json!({}), json!(finish)));
            if let Some((p, c, cached)) = usage {
                ev.push((
                    String::new(),
                    json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
                        "usage": {"prompt_tokens": p, "completion_tokens": c, "prompt_tokens_details": {"cached_tokens": cached}}}),
                ));
            }
            ev.push((String::new(), json!("[DONE]")));
            ev
        })
}

/// Both dialects' vocabularies, framing and JSON punctuation: the pieces of the token soups
/// (here and in `translate_mutations`).
pub(crate) const TOKENS: &[&[u8]] = &[
    b"data: ",
    b"event: ",
    b"\n",
    b"\n\n",
    b"\r\n",
    b"[DONE]",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"\"type\":\"message_start\"",
    b"\"type\":\"content_block_start\"",
    b"\"type\":\"content_block_delta\"",
    b"\"type\":\"content_block_stop\"",
    b"\"type\":\"message_delta\"",
    b"\"type\":\"message_stop\"",
    b"\"type\":\"error\"",
    b"\"message\":{\"id\":\"m\",\"model\":\"c\"}",
    b"\"index\":0",
    b"\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\"}",
    b"\"content_block\":{\"type\":\"text\",\"text\":\"\"}",
    b"\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}",
    b"\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}",
    b"\"choices\":[{\"index\":0,\"delta\":{\"content\":\"y\"}}]",
    b"\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]",
    b"\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]",
    b"\"usage\":{\"prompt_tokens\":1,\"input_tokens\":2}",
    b"\"error\":{\"message\":\"e\"}",
    b"\"index\":1",
    b"\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]",
    b"\"role\":\"user\"",
    b"\"messages\":[",
    b"\"content\":\"hi\"",
    b"\"tool_calls\":[",
    b"null",
    b"\xff",
    b"\\u0000",
    b"\\ud800",
    b"1e999",
];

/// Token soup over both dialects' vocabularies (as in the unit tests, but shrinkable).
fn soup() -> impl Strategy<Value = Vec<u8>> {
    vec(select(TOKENS), 0..48).prop_map(|t| t.concat())
}

// ------------------------------------------------------------------------------ requests

fn content_part() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text().prop_map(|t| json!({"type": "text", "text": t})),
        1 => select(&["data:image/png;base64,AAAA", "https://x/y.png", "http://h", "ftp://x", "data:,x"][..])
            .prop_map(|u| json!({"type": "image_url", "image_url": {"url": u, "detail": "low"}})),
        1 => text().prop_map(|t| json!({"type": "refusal", "refusal": t})),
        1 => Just(json!({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}})),
    ]
}

fn chat_content() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text().prop_map(Value::String),
        1 => Just(Value::Null),
        2 => vec(content_part(), 0..3).prop_map(Value::Array),
    ]
}

fn chat_message() -> impl Strategy<Value = Value> {
    let args = select(&["{}", "", "{\"a\":1}", " {\"b\":[]} ", "[1]", "nope", "null"][..]);
    let call = (name(), name(), args).prop_map(
        |(id, n, a)| json!({"id": id, "type": "function", "function": {"name": n, "arguments": a}}),
    );
    prop_oneof![
        4 => (select(&["system", "developer", "user", "user"][..]), chat_content())
            .prop_map(|(r, c)| json!({"role": r, "content": c})),
        3 => (chat_content(), vec(call, 0..3)).prop_map(|(c, calls)| {
            let mut m = json!({"role": "assistant", "content": c});
            if !calls.is_empty() {
                m["tool_calls"] = Value::Array(calls);
            }
            m
        }),
        2 => (name(), chat_content()).prop_map(|(id, c)| json!({"role": "tool", "tool_call_id": id, "content": c})),
        1 => select(&["function", "bot", ""][..]).prop_map(|r| json!({"role": r, "content": "x"})),
    ]
}

/// Extra top-level members: the mapped ones, refused ones, dropped ones, look-alikes.
fn chat_extra() -> impl Strategy<Value = (String, Value)> {
    let pool: Vec<(&str, Value)> = vec![
        ("max_tokens", json!(100)),
        ("max_tokens", json!(null)),
        ("max_tokens", json!("5")),
        ("max_completion_tokens", json!(7)),
        ("stop", json!("\n")),
        ("stop", json!(["a", "b\"c"])),
        ("stop", json!([1])),
        ("temperature", json!(0.5)),
        ("temperature", json!(1.7)),
        ("top_p", json!(0.9)),
        (
            "tools",
            json!([{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}]),
        ),
        (
            "tools",
            json!([{"type": "function", "function": {"name": "g"}}]),
        ),
        ("tools", json!([{"type": "web_search"}])),
        ("tools", json!([])),
        ("tool_choice", json!("auto")),
        ("tool_choice", json!("required")),
        ("tool_choice", json!("none")),
        ("tool_choice", json!("sometimes")),
        (
            "tool_choice",
            json!({"type": "function", "function": {"name": "f"}}),
        ),
        ("parallel_tool_calls", json!(false)),
        ("parallel_tool_calls", json!(true)),
        ("stream", json!(true)),
        ("stream", json!(false)),
        ("stream", json!(null)),
        ("stream", json!("true")),
        ("stream_options", json!({"include_usage": true})),
        ("user", json!("u-1")),
        ("user", json!(1)),
        ("n", json!(1)),
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("logprobs", json!(false)),
        ("response_format", json!({"type": "text"})),
        ("response_format", json!({"type": "json_object"})),
        ("modalities", json!(["text"])),
        ("modalities", json!(["audio"])),
        ("seed", json!(3)),
        ("MODEL", json!("evil")),
        ("Stream", json!(true)),
        ("ſtream", json!(false)),
        ("metadata", json!({"model": "inner"})),
    ];
    select(pool).prop_map(|(k, v)| (k.to_owned(), v))
}

fn block() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text().prop_map(|t| json!({"type": "text", "text": t})),
        1 => Just(json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}})),
        1 => Just(json!({"type": "image", "source": {"type": "url", "url": "https://x/y.png"}})),
        2 => (name(), name(), select(vec![json!({}), json!({"a": [1, "\u{e9}"]}), json!(3)]))
            .prop_map(|(id, n, i)| json!({"type": "tool_use", "id": id, "name": n, "input": i})),
        2 => (name(), prop_oneof![text().prop_map(Value::String), vec(text().prop_map(|t| json!({"type": "text", "text": t})), 0..2).prop_map(Value::Array)], any::<bool>())
            .prop_map(|(id, c, e)| json!({"type": "tool_result", "tool_use_id": id, "content": c, "is_error": e})),
        1 => Just(json!({"type": "thinking", "thinking": "hm", "signature": "s"})),
        1 => Just(json!({"type": "document", "source": {"type": "text", "data": "d"}})),
    ]
}

fn messages_message() -> impl Strategy<Value = Value> {
    let content = prop_oneof![
        2 => text().prop_map(Value::String),
        3 => vec(block(), 0..3).prop_map(Value::Array),
    ];
    (
        select(&["user", "user", "assistant", "assistant", "system", "tool"][..]),
        content,
    )
        .prop_map(|(r, c)| json!({"role": r, "content": c}))
}

fn messages_extra() -> impl Strategy<Value = (String, Value)> {
    let pool: Vec<(&str, Value)> = vec![
        ("max_tokens", json!(100)),
        ("max_tokens", json!(-1)),
        ("system", json!("be brief")),
        (
            "system",
            json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b\n"}]),
        ),
        ("system", json!([{"type": "image"}])),
        ("stop_sequences", json!(["x"])),
        ("stop_sequences", json!([])),
        ("stop_sequences", json!("x")),
        ("temperature", json!(0.2)),
        ("top_p", json!(1)),
        (
            "tools",
            json!([{"name": "f", "description": "d", "input_schema": {"type": "object"}}]),
        ),
        ("tools", json!([{"name": "g"}])),
        (
            "tools",
            json!([{"type": "web_search_20250305", "name": "web_search"}]),
        ),
        ("tool_choice", json!({"type": "auto"})),
        (
            "tool_choice",
            json!({"type": "any", "disable_parallel_tool_use": true}),
        ),
        ("tool_choice", json!({"type": "tool", "name": "f"})),
        ("tool_choice", json!({"type": "tool"})),
        ("tool_choice", json!({"type": "none"})),
        ("metadata", json!({"user_id": "u"})),
        ("metadata", json!({"user_id": 5})),
        ("stream", json!(true)),
        ("stream", json!(false)),
        ("stream", json!(null)),
        ("stream", json!(1)),
        ("mcp_servers", json!([])),
        (
            "thinking",
            json!({"type": "enabled", "budget_tokens": 1024}),
        ),
        ("MODEL", json!("evil")),
        ("STREAM", json!(true)),
    ];
    select(pool).prop_map(|(k, v)| (k.to_owned(), v))
}

fn request_body(
    messages: impl Strategy<Value = Value>,
    extra: impl Strategy<Value = (String, Value)>,
) -> impl Strategy<Value = Vec<u8>> {
    (
        name(),
        prop_oneof![10 => vec(messages, 0..5).prop_map(Value::Array), 1 => Just(json!("hi")), 1 => Just(Value::Null)],
        vec(extra, 0..5),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(model, msgs, extras, pretty)| {
            let mut m = Map::new();
            m.insert("model".to_owned(), Value::String(model));
            m.insert("messages".to_owned(), msgs);
            for (k, v) in extras {
                m.insert(k, v);
            }
            let v = Value::Object(m);
            if pretty {
                serde_json::to_vec_pretty(&v).unwrap()
            } else {
                serde_json::to_vec(&v).unwrap()
            }
        })
}

/// The backend's model name (config text: any non-empty string).
fn backend_model() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9.:/-]{1,24}",
        1 => text().prop_filter("non-empty", |s| !s.is_empty()),
    ]
}

/// A translated request body names exactly the backend model, once, with no case-folded
/// twin; it scans; and its `stream` flag is the client's.
fn check_request(input: &[u8], out: &[u8], model: &str) {
    let shown = String::from_utf8_lossy(out);
    let text = std::str::from_utf8(out).unwrap_or_else(|_| panic!("not UTF-8: {shown:?}"));
    let members = Members::of(text).unwrap_or_else(|| panic!("not an object: {shown:?}"));
    let models = members.get("model");
    assert_eq!(models.len(), 1, "{shown:?}");
    assert_eq!(
        serde_json::from_str::<String>(models[0].get())
            .ok()
            .as_deref(),
        Some(model)
    );
    for (k, _) in &members.0 {
        let twin =
            (k != "model" && folds_to(k, "model")) || (k != "stream" && folds_to(k, "stream"));
        assert!(!twin, "translated request carries {k:?}: {shown:?}");
    }
    let Ok(client) = scan(input) else { return };
    let s = scan(out).unwrap_or_else(|e| panic!("translated request refused ({e:?}): {shown:?}"));
    assert_eq!(s.model, model);
    assert_eq!(s.stream, client.stream, "stream flag changed: {shown:?}");
}

fn check_response(out: &[u8]) {
    let v: Value = serde_json::from_slice(out).unwrap_or_else(|e| {
        panic!(
            "response not JSON ({e}): {:?}",
            String::from_utf8_lossy(out)
        )
    });
    assert!(v.is_object());
    let mut s = JsonUsageScanner::new();
    s.feed(out);
    assert!(s.is_complete());
}

fn error_body() -> impl Strategy<Value = Vec<u8>> {
    let ty = select(
        &[
            "invalid_request_error",
            "authentication_error",
            "rate_limit_error",
            "overloaded_error",
            "api_error",
            "insufficient_quota",
            "x",
        ][..],
    );
    prop_oneof![
        (ty.clone(), text()).prop_map(|(t, m)| serde_json::to_vec(
            &json!({"type": "error", "error": {"type": t, "message": m}})
        )
        .unwrap()),
        (
            ty,
            text(),
            select(vec![
                json!("rate_limit_exceeded"),
                json!(null),
                json!(429),
                json!({"a": 1})
            ])
        )
            .prop_map(|(t, m, c)| serde_json::to_vec(
                &json!({"error": {"message": m, "type": t, "code": c}})
            )
            .unwrap()),
        Just(b"{\"error\":\"plain\"}".to_vec()),
        Just(b"<html>502 Bad Gateway</html>".to_vec()),
        Just(b"{\"error\":{\"message\":\"\\ud800\"}}".to_vec()),
        vec(any::<u8>(), 0..64),
    ]
}

fn check_error(status: u16, out_status: u16, out: &[u8], openai: bool) {
    let v: Value = serde_json::from_slice(out).unwrap_or_else(|e| {
        panic!(
            "error body not JSON ({e}): {:?}",
            String::from_utf8_lossy(out)
        )
    });
    let e = &v["error"];
    assert!(e["message"].is_string() && e["type"].is_string(), "{v}");
    if openai {
        assert!(e["code"].is_string() || e["code"].is_null(), "{v}");
        assert_eq!(out_status, if status == 529 { 503 } else { status });
    } else {
        assert_eq!(v["type"], "error");
        assert_eq!(out_status, status);
    }
    if status == 401 || status == 403 {
        assert_eq!(
            e["message"], CREDENTIALS_MESSAGE,
            "credentials refusal text leaked: {v}"
        );
    }
}

// ------------------------------------------------------------------------------ properties

#[test]
fn translators_on_arbitrary_bytes() {
    fuzz(
        768,
        || {
            (
                bytes(prop_oneof![vec(any::<u8>(), 0..200), soup()]),
                cuts(),
                any::<bool>(),
                any::<u16>(),
            )
        },
        |(input, cuts, usage, status)| {
            check_stream(Dir::ChatToMessages(usage), &input, &cuts);
            check_stream(Dir::MessagesToChat, &input, &cuts);
            check_stream(Dir::ResponsesFromMessages, &input, &cuts);
            check_stream(Dir::ResponsesFromChat, &input, &cuts);
            let rcx = responses::RequestContext {
                model: "m",
                history: Some(&input),
            };
            if let Ok(t) = responses::to_messages(&input, &rcx) {
                assert!(is_json(&t.body));
            }
            let acx = responses::AnswerContext::new("resp_1".into(), "m".into(), &input);
            if let Ok(a) = responses::from_messages(&input, &acx) {
                check_response(&a.body);
                assert!(is_json(&a.output_items));
            }
            if let Ok(t) = responses::to_chat(&input, &rcx) {
                assert!(is_json(&t.body));
            }
            if let Ok(a) = responses::from_chat(&input, &acx) {
                check_response(&a.body);
                assert!(is_json(&a.output_items));
            }
            if let Ok(out) = chat_to_messages::request(&input, "m") {
                check_request(&input, &out, "m");
            }
            if let Ok(out) = messages_to_chat::request(&input, "m") {
                check_request(&input, &out, "m");
            }
            if let Ok((out, _)) = chat_to_messages::response(&input) {
                check_response(&out);
            }
            if let Ok((out, _)) = messages_to_chat::response(&input) {
                check_response(&out);
            }
            let (s, out) = errors::anthropic_to_openai(status, &input);
            check_error(status, s, &out, true);
            let (s, out) = errors::openai_to_anthropic(status, &input);
            check_error(status, s, &out, false);
            Ok(())
        },
    );
}

#[test]
fn chat_to_messages_stream_on_generated_streams() {
    let tally = Tally::default();
    fuzz(
        384,
        || {
            (
                anthropic_events(),
                damage(),
                framing(),
                cuts(),
                any::<bool>(),
            )
        },
        |(mut events, damage, framing, cuts, usage)| {
            apply(&mut events, &damage);
            let input = render(&events, &framing);
            let (r, scanner) = check_stream(Dir::ChatToMessages(usage), &input, &cuts);
            outcome(&tally, &r);
            if damage.is_empty() {
                assert_eq!(r.feed, Ok(()), "{}", String::from_utf8_lossy(&input));
                assert_eq!(r.finish, Ok(()));
                assert!(r.out.ends_with(b"data: [DONE]\n\n"));
                assert!(scanner.finished() && !scanner.saw_error_event());
                if usage {
                    let (got, want) = (scanner.usage().unwrap(), r.usage.unwrap());
                    assert_eq!(got.output, want.output);
                    assert_eq!(got.cache_read, want.cache_read);
                    assert_eq!(got.input + got.cache_write, want.input + want.cache_write);
                }
            }
            if r.saw_error {
                assert!(scanner.saw_error_event());
            }
            Ok(())
        },
    );
    tally.at_least("complete", "case", 0.4);
    tally.at_least("broken", "case", 0.1);
    tally.at_least("error event", "case", 0.01);
}

#[test]
fn responses_from_messages_stream_on_generated_streams() {
    let tally = Tally::default();
    fuzz(
        256,
        || (anthropic_events(), damage(), framing(), cuts()),
        |(mut events, damage, framing, cuts)| {
            apply(&mut events, &damage);
            let input = render(&events, &framing);
            let (r, _) = check_stream(Dir::ResponsesFromMessages, &input, &cuts);
            outcome(&tally, &r);
            if damage.is_empty() {
                assert_eq!(r.feed, Ok(()), "{}", String::from_utf8_lossy(&input));
                assert_eq!(r.finish, Ok(()));
                assert!(r.started || !r.out.is_empty());
            }
            let mut next = 0u64;
            let mut d = SseDecoder::new();
            d.feed(&r.out, |ev| {
                let v: Value = serde_json::from_slice(ev.data).unwrap();
                assert_eq!(v["sequence_number"].as_u64(), Some(next));
                assert_eq!(v["type"].as_str().map(str::as_bytes), Some(ev.event));
                next += 1;
            })
            .unwrap();
            Ok(())
        },
    );
    tally.at_least("complete", "case", 0.4);
    tally.at_least("broken", "case", 0.1);
}

/// Chat chunks into Responses events: numbered from 0 without gaps, each event's name its
/// `type`; an undamaged stream completes.
#[test]
fn responses_from_chat_stream_on_generated_streams() {
    let tally = Tally::default();
    fuzz(
        256,
        || (openai_events(), damage(), framing(), cuts()),
        |(mut events, damage, framing, cuts)| {
            apply(&mut events, &damage);
            let input = render(&events, &framing);
            let (r, _) = check_stream(Dir::ResponsesFromChat, &input, &cuts);
            outcome(&tally, &r);
            if damage.is_empty() {
                assert_eq!(r.feed, Ok(()), "{}", String::from_utf8_lossy(&input));
                assert_eq!(r.finish, Ok(()));
            }
            let mut next = 0u64;
            let mut d = SseDecoder::new();
            d.feed(&r.out, |ev| {
                let v: Value = serde_json::from_slice(ev.data).unwrap();
                assert_eq!(v["sequence_number"].as_u64(), Some(next));
                assert_eq!(v["type"].as_str().map(str::as_bytes), Some(ev.event));
                next += 1;
            })
            .unwrap();
            Ok(())
        },
    );
    tally.at_least("complete", "case", 0.4);
    tally.at_least("broken", "case", 0.05);
    tally.at_least("error event", "case", 0.02);
}

#[test]
fn messages_to_chat_stream_on_generated_streams() {
    let tally = Tally::default();
    fuzz(
        384,
        || (openai_events(), damage(), framing(), cuts()),
        |(mut events, damage, framing, cuts)| {
            apply(&mut events, &damage);
            let input = render(&events, &framing);
            let (r, scanner) = check_stream(Dir::MessagesToChat, &input, &cuts);
            outcome(&tally, &r);
            if damage.is_empty() {
                assert_eq!(r.feed, Ok(()), "{}", String::from_utf8_lossy(&input));
                assert_eq!(r.finish, Ok(()));
                assert!(r
                    .out
                    .ends_with(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
                assert!(scanner.finished() && !scanner.saw_error_event());
            }
            if r.saw_error {
                assert!(scanner.saw_error_event());
            }
            Ok(())
        },
    );
    tally.at_least("complete", "case", 0.4);
    tally.at_least("broken", "case", 0.05);
    tally.at_least("error event", "case", 0.02);
}

#[test]
fn request_translation_keeps_model_and_stream() {
    let tally = Tally::default();
    fuzz(
        384,
        || {
            (
                bytes(request_body(chat_message(), chat_extra())),
                bytes(request_body(messages_message(), messages_extra())),
                backend_model(),
            )
        },
        |(chat, messages, model)| {
            tally.hit("case");
            if let Ok(out) = chat_to_messages::request(&chat, &model) {
                tally.hit("chat translated");
                check_request(&chat, &out, &model);
            }
            if let Ok(out) = messages_to_chat::request(&messages, &model) {
                tally.hit("messages translated");
                check_request(&messages, &out, &model);
                // A streaming request already asks for usage.
                let s = scan(&out).unwrap();
                if s.stream {
                    assert_eq!(berry_gateway::body::include_usage_edit(&s), None);
                }
            }
            // Both directions also on the other dialect's body (wrong-dialect clients).
            for (body, out) in [
                (&chat, messages_to_chat::request(&chat, &model)),
                (&messages, chat_to_messages::request(&messages, &model)),
            ] {
                if let Ok(out) = out {
                    check_request(body, &out, &model);
                }
            }
            Ok(())
        },
    );
    tally.at_least("chat translated", "case", 0.12);
    tally.at_least("messages translated", "case", 0.12);
}

fn anthropic_message() -> impl Strategy<Value = Vec<u8>> {
    (name(), name(), vec(block(), 0..4), prop::option::of(select(&["end_turn", "tool_use", "x"][..])), (count(), count()))
        .prop_map(|(id, model, content, stop, (i, o))| {
            serde_json::to_vec(&json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": stop, "usage": {"input_tokens": i, "output_tokens": o}}))
            .unwrap()
        })
}

fn chat_completion() -> impl Strategy<Value = Vec<u8>> {
    let call = (name(), name(), select(&["{}", "", "{\"a\":1}", "[1]", "x"][..]))
        .prop_map(|(id, n, a)| json!({"id": id, "type": "function", "function": {"name": n, "arguments": a}}));
    (
        name(),
        name(),
        chat_content(),
        vec(call, 0..3),
        select(&["stop", "length", "tool_calls", "x"][..]),
        (count(), count()),
    )
        .prop_map(|(id, model, content, calls, fr, (p, c))| {
            let mut msg = json!({"role": "assistant", "content": content});
            if !calls.is_empty() {
                msg["tool_calls"] = Value::Array(calls);
            }
            serde_json::to_vec(
                &json!({"id": id, "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": msg, "finish_reason": fr}],
                "usage": {"prompt_tokens": p, "completion_tokens": c}}),
            )
            .unwrap()
        })
}

#[test]
fn response_and_error_translation_well_formed() {
    let tally = Tally::default();
    fuzz(
        384,
        || {
            (
                bytes(anthropic_message()),
                bytes(chat_completion()),
                bytes(error_body()),
                any::<u16>(),
                select(&[400u16, 401, 403, 404, 429, 500, 529][..]),
            )
        },
        |(message, completion, err, any_status, status)| {
            tally.hit("case");
            if let Ok((out, _)) = chat_to_messages::response(&message) {
                tally.hit("message translated");
                check_response(&out);
            }
            if let Ok((out, _)) = messages_to_chat::response(&completion) {
                tally.hit("completion translated");
                check_response(&out);
            }
            if let Ok(a) = responses::from_chat(&completion, &responses_context()) {
                tally.hit("completion translated to a Response");
                check_response(&a.body);
                assert!(is_json(&a.output_items));
            }
            // Each also on the other dialect's answer.
            for (out, _) in chat_to_messages::response(&completion)
                .into_iter()
                .chain(messages_to_chat::response(&message))
            {
                check_response(&out);
            }
            for st in [any_status, status] {
                let (s, out) = errors::anthropic_to_openai(st, &err);
                check_error(st, s, &out, true);
                let (s, out) = errors::openai_to_anthropic(st, &err);
                check_error(st, s, &out, false);
            }
            Ok(())
        },
    );
    tally.at_least("message translated", "case", 0.4);
    tally.at_least("completion translated", "case", 0.2);
    tally.at_least("completion translated to a Response", "case", 0.2);
}

// ------------------------------------------------------------------------------ Gemini
#[path = "translate_gemini.rs"]
mod gemini;
