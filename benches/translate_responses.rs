//! The Responses translators' hot path (target: < 2 µs per SSE event): an Anthropic
//! Messages stream of 50 events (message start, one text block of 45 deltas, stop) and one
//! with a tool call (30 argument deltas) translated into a Responses event stream, a 4 KiB
//! non-stream answer into a `Response` object, and a Codex-sized request into a Messages
//! request.
//!
//! Run: `cargo bench --bench translate_responses -- --warm-up-time 1 --measurement-time 3`.
//! Criterion's throughput line (elements/s) gives the per-event figure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use berry_gateway::translate::responses::{
    from_messages, new_messages_stream, to_messages, AnswerContext, RequestContext,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const WORDS: [&str; 8] = [
    "The ",
    "quick ",
    "brown ",
    "fox ",
    "jumps ",
    "over ",
    "the \\\"lazy\\\" ",
    "dog.\\n",
];

const REQUEST: &str = r#"{"model":"gpt-5-codex","instructions":"You are a coding agent.","tools":[{"type":"function","name":"shell","parameters":{"type":"object","properties":{"command":{"type":"array","items":{"type":"string"}}}}},{"type":"custom","name":"apply_patch","format":{"type":"grammar","syntax":"lark","definition":"start: patch"}}],"tool_choice":"auto","parallel_tool_calls":false,"reasoning":{"effort":"medium"},"store":false,"stream":true,"input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"List the files."}]}]}"#;

fn start() -> String {
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n".to_string()
}

fn end(stop: &str) -> [String; 2] {
    [
        format!("event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{stop}\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":47}}}}\n\n"),
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string(),
    ]
}

/// 50 events: one text block of 45 deltas.
fn text_stream() -> Vec<Vec<u8>> {
    let mut events = vec![
        start(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_string(),
    ];
    for i in 0..45 {
        let w = WORDS[i % WORDS.len()];
        events.push(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{w}\"}}}}\n\n"
        ));
    }
    events.push(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            .to_string(),
    );
    events.extend(end("end_turn"));
    assert_eq!(events.len(), 50);
    events.into_iter().map(String::into_bytes).collect()
}

/// 35 events: one tool_use block of 30 argument deltas.
fn tool_stream() -> Vec<Vec<u8>> {
    let mut events = vec![
        start(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"shell\",\"input\":{}}}\n\n".to_string(),
    ];
    events.push("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"command\\\": [\"}}\n\n".to_string());
    for i in 0..28 {
        events.push(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"arg{i}\\\", \"}}}}\n\n"
        ));
    }
    events.push("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"end\\\"]}\"}}\n\n".to_string());
    events.push(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            .to_string(),
    );
    events.extend(end("tool_use"));
    assert_eq!(events.len(), 35);
    events.into_iter().map(String::into_bytes).collect()
}

fn reply() -> Vec<u8> {
    let mut content = String::new();
    let mut i = 0;
    while content.len() < 3600 {
        content.push_str(WORDS[i % WORDS.len()]);
        i += 1;
    }
    format!(
        r#"{{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{{"type":"text","text":"{content}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":1117,"cache_creation_input_tokens":0,"cache_read_input_tokens":512,"output_tokens":946}}}}"#
    )
    .into_bytes()
}

fn context() -> AnswerContext {
    AnswerContext::new(
        "resp_0123456789abcdef0123456789abcdef".into(),
        "claude-sonnet-4-5".into(),
        REQUEST.as_bytes(),
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate_responses");
    for (name, events) in [
        ("messages_to_responses_sse_text_50_events", text_stream()),
        ("messages_to_responses_sse_tool_35_events", tool_stream()),
    ] {
        g.throughput(Throughput::Elements(events.len() as u64));
        let cx = context();
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut t = new_messages_stream(cx.clone());
                let mut out = Vec::with_capacity(32 * 1024);
                for e in &events {
                    t.feed(black_box(e), &mut out).expect("valid stream");
                }
                t.finish().expect("complete stream");
                out.len()
            })
        });
    }
    // The fixed cost of a stream (context, created, in_progress, completed) apart from the
    // per-delta cost: a stream with no content.
    let mut empty = vec![start().into_bytes()];
    empty.extend(end("end_turn").map(String::into_bytes));
    let cx = context();
    g.throughput(Throughput::Elements(empty.len() as u64));
    g.bench_function("messages_to_responses_sse_empty_3_events", |b| {
        b.iter(|| {
            let mut t = new_messages_stream(cx.clone());
            let mut out = Vec::with_capacity(32 * 1024);
            for e in &empty {
                t.feed(black_box(e), &mut out).expect("valid stream");
            }
            t.finish().expect("complete stream");
            out.len()
        })
    });
    // Reference under the same load: the chat client's translator on the same text stream.
    let events = text_stream();
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("reference_messages_to_chat_sse_text_50_events", |b| {
        b.iter(|| {
            let mut t = berry_gateway::translate::chat_to_messages::Stream::new(true);
            let mut out = Vec::with_capacity(32 * 1024);
            for e in &events {
                t.feed(black_box(e), &mut out).expect("valid stream");
            }
            t.finish().expect("complete stream");
            out.len()
        })
    });
    let body = reply();
    let cx = context();
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("messages_to_response_body_4KiB", |b| {
        b.iter(|| from_messages(black_box(&body), &cx).expect("valid body"))
    });
    let rcx = RequestContext {
        model: "claude-sonnet-4-5",
        history: None,
    };
    g.throughput(Throughput::Bytes(REQUEST.len() as u64));
    g.bench_function("responses_request_to_messages", |b| {
        b.iter(|| to_messages(black_box(REQUEST.as_bytes()), &rcx).expect("translatable"))
    });
    g.finish();
}

/// The chat completions backend: a chat chunk stream of 50 events (role chunk, 45 content
/// deltas, finish, usage, `[DONE]`; 48 data chunks plus the two framing ones) and one with a
/// tool call (30 argument deltas), a 4 KiB `chat.completion`, a Codex-sized request.
fn bench_chat(c: &mut Criterion) {
    use berry_gateway::translate::responses::{from_chat, new_chat_stream, to_chat};
    const P: &str = r#""id":"chatcmpl-AbCdEf0123456789","object":"chat.completion.chunk","created":1733000000,"model":"qwen3-coder-30b""#;
    let chunk = |delta: &str, finish: &str| {
        format!("data: {{{P},\"choices\":[{{\"index\":0,\"delta\":{{{delta}}},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n")
            .into_bytes()
    };
    let usage = format!("data: {{{P},\"choices\":[],\"usage\":{{\"prompt_tokens\":1117,\"completion_tokens\":946,\"total_tokens\":2063,\"prompt_tokens_details\":{{\"cached_tokens\":512}}}}}}\n\n").into_bytes();
    let done = b"data: [DONE]\n\n".to_vec();
    let mut text = vec![chunk(r#""role":"assistant","content":"""#, "null")];
    for i in 0..46 {
        text.push(chunk(
            &format!(r#""content":"{}""#, WORDS[i % WORDS.len()]),
            "null",
        ));
    }
    text.push(chunk("", r#""stop""#));
    text.push(usage.clone());
    text.push(done.clone());
    assert_eq!(text.len(), 50);
    let mut tool = vec![chunk(
        r#""role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_0123456789","type":"function","function":{"name":"shell","arguments":""}}]"#,
        "null",
    )];
    for i in 0..30 {
        tool.push(chunk(
            &format!(r#""tool_calls":[{{"index":0,"function":{{"arguments":"\"arg{i}\", "}}}}]"#),
            "null",
        ));
    }
    tool.push(chunk("", r#""tool_calls""#));
    tool.push(usage);
    tool.push(done);
    assert_eq!(tool.len(), 34);
    let mut g = c.benchmark_group("translate_responses");
    for (name, events) in [
        ("chat_to_responses_sse_text_50_events", text),
        ("chat_to_responses_sse_tool_34_events", tool),
    ] {
        g.throughput(Throughput::Elements(events.len() as u64));
        let cx = context();
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut t = new_chat_stream(cx.clone());
                let mut out = Vec::with_capacity(32 * 1024);
                for e in &events {
                    t.feed(black_box(e), &mut out).expect("valid stream");
                }
                t.finish().expect("complete stream");
                out.len()
            })
        });
    }
    let mut content = String::new();
    let mut i = 0;
    while content.len() < 3600 {
        content.push_str(WORDS[i % WORDS.len()]);
        i += 1;
    }
    let body = format!(
        r#"{{"id":"chatcmpl-AbCdEf0123456789","object":"chat.completion","created":1733000000,"model":"qwen3-coder-30b","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1117,"completion_tokens":946,"total_tokens":2063,"prompt_tokens_details":{{"cached_tokens":512}}}}}}"#
    )
    .into_bytes();
    let cx = context();
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("chat_to_response_body_4KiB", |b| {
        b.iter(|| from_chat(black_box(&body), &cx).expect("valid body"))
    });
    let rcx = RequestContext {
        model: "qwen3-coder-30b",
        history: None,
    };
    g.throughput(Throughput::Bytes(REQUEST.len() as u64));
    g.bench_function("responses_request_to_chat", |b| {
        b.iter(|| to_chat(black_box(REQUEST.as_bytes()), &rcx).expect("translatable"))
    });
    g.finish();
}

criterion_group!(benches, bench, bench_chat);
criterion_main!(benches);
