//! The Gemini translators' hot path (target: < 2 µs per upstream SSE event): an Anthropic
//! Messages stream of 50 events (start, one text block of 45 deltas, stop) and a chat
//! completions stream of 50 events (role chunk, 46 content deltas, finish, usage, `[DONE]`)
//! translated into `GenerateContentResponse` chunks (SSE and JSON-array framings), a tool
//! call of 30 argument deltas from each backend, and a Gemini CLI-sized request into each
//! backend's request.
//!
//! Run: `cargo bench --bench translate_gemini -- --warm-up-time 1 --measurement-time 3`.
//! Criterion's throughput line (elements/s) gives the per-event figure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use berry_gateway::translate::gemini::{
    new_chat_stream, new_messages_stream, to_chat, to_messages, AnswerContext, RequestContext,
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

const REQUEST: &str = r#"{"contents":[{"role":"user","parts":[{"text":"List the files here."}]},{"role":"model","parts":[{"functionCall":{"name":"list_directory","args":{"path":"/tmp/p"}}}]},{"role":"user","parts":[{"functionResponse":{"name":"list_directory","response":{"output":"a.txt\nb.txt"}}}]}],"systemInstruction":{"role":"user","parts":[{"text":"You are an interactive CLI agent specializing in software engineering tasks."}]},"tools":[{"functionDeclarations":[{"name":"list_directory","description":"Lists a directory.","parametersJsonSchema":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}},{"name":"read_file","description":"Reads a file.","parameters":{"type":"OBJECT","properties":{"absolute_path":{"type":"STRING"},"offset":{"type":"INTEGER","nullable":true}},"required":["absolute_path"]}}]}],"generationConfig":{"temperature":0,"topP":1,"thinkingConfig":{"includeThoughts":true,"thinkingBudget":8192}}}"#;

fn anthropic_start() -> Vec<u8> {
    b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n".to_vec()
}

fn anthropic_end(stop: &str) -> [Vec<u8>; 2] {
    [
        format!("event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{stop}\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":47}}}}\n\n").into_bytes(),
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_vec(),
    ]
}

/// 50 events: one text block of 45 deltas.
fn anthropic_text() -> Vec<Vec<u8>> {
    let mut ev = vec![anthropic_start(), b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_vec()];
    for i in 0..45 {
        let w = WORDS[i % WORDS.len()];
        ev.push(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{w}\"}}}}\n\n").into_bytes());
    }
    ev.push(
        b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            .to_vec(),
    );
    ev.extend(anthropic_end("end_turn"));
    assert_eq!(ev.len(), 50);
    ev
}

/// 35 events: one tool_use block of 30 argument deltas.
fn anthropic_tool() -> Vec<Vec<u8>> {
    let mut ev = vec![anthropic_start(), b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"shell\",\"input\":{}}}\n\n".to_vec()];
    ev.push(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"command\\\": [\"}}\n\n".to_vec());
    for i in 0..28 {
        ev.push(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"arg{i}\\\", \"}}}}\n\n").into_bytes());
    }
    ev.push(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"end\\\"]}\"}}\n\n".to_vec());
    ev.push(
        b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            .to_vec(),
    );
    ev.extend(anthropic_end("tool_use"));
    assert_eq!(ev.len(), 35);
    ev
}

const P: &str = r#""id":"chatcmpl-AbCdEf0123456789","object":"chat.completion.chunk","created":1733000000,"model":"qwen3-coder-30b""#;

fn chunk(delta: &str, finish: &str) -> Vec<u8> {
    format!("data: {{{P},\"choices\":[{{\"index\":0,\"delta\":{{{delta}}},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n").into_bytes()
}

fn chat_tail(finish: &str) -> [Vec<u8>; 3] {
    [
        chunk("", finish),
        format!("data: {{{P},\"choices\":[],\"usage\":{{\"prompt_tokens\":1117,\"completion_tokens\":946,\"total_tokens\":2063,\"prompt_tokens_details\":{{\"cached_tokens\":512}}}}}}\n\n").into_bytes(),
        b"data: [DONE]\n\n".to_vec(),
    ]
}

/// 50 events: role chunk, 46 content deltas, finish, usage, `[DONE]`.
fn chat_text() -> Vec<Vec<u8>> {
    let mut ev = vec![chunk(r#""role":"assistant","content":"""#, "null")];
    for i in 0..46 {
        ev.push(chunk(
            &format!(r#""content":"{}""#, WORDS[i % WORDS.len()]),
            "null",
        ));
    }
    ev.extend(chat_tail(r#""stop""#));
    assert_eq!(ev.len(), 50);
    ev
}

/// 35 events: the call's first piece, 31 argument deltas, finish, usage, `[DONE]`.
fn chat_tool() -> Vec<Vec<u8>> {
    let mut ev = vec![chunk(
        r#""role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_0123456789","type":"function","function":{"name":"shell","arguments":""}}]"#,
        "null",
    )];
    ev.push(chunk(
        r#""tool_calls":[{"index":0,"function":{"arguments":"{\"command\": ["}}]"#,
        "null",
    ));
    for i in 0..29 {
        ev.push(chunk(
            &format!(r#""tool_calls":[{{"index":0,"function":{{"arguments":"\"arg{i}\", "}}}}]"#),
            "null",
        ));
    }
    ev.push(chunk(
        r#""tool_calls":[{"index":0,"function":{"arguments":"\"end\"]}"}}]"#,
        "null",
    ));
    ev.extend(chat_tail(r#""tool_calls""#));
    assert_eq!(ev.len(), 35);
    ev
}

fn context(sse: bool) -> AnswerContext {
    AnswerContext::for_request(
        REQUEST.as_bytes(),
        "claude-sonnet-4-5".into(),
        "resp_0123456789abcdef".into(),
        sse,
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate_gemini");
    macro_rules! stream {
        ($name:expr, $events:expr, $new:ident, $sse:expr) => {{
            let events = $events;
            let cx = context($sse);
            g.throughput(Throughput::Elements(events.len() as u64));
            g.bench_function($name, |b| {
                b.iter(|| {
                    let mut t = $new(cx.clone());
                    let mut out = Vec::with_capacity(32 * 1024);
                    for e in &events {
                        t.feed(black_box(e), &mut out).expect("valid stream");
                    }
                    t.finish().expect("complete stream");
                    out.len()
                })
            });
        }};
    }
    stream!(
        "messages_to_gemini_sse_text_50_events",
        anthropic_text(),
        new_messages_stream,
        true
    );
    stream!(
        "messages_to_gemini_array_text_50_events",
        anthropic_text(),
        new_messages_stream,
        false
    );
    stream!(
        "messages_to_gemini_sse_tool_35_events",
        anthropic_tool(),
        new_messages_stream,
        true
    );
    stream!(
        "chat_to_gemini_sse_text_50_events",
        chat_text(),
        new_chat_stream,
        true
    );
    stream!(
        "chat_to_gemini_array_text_50_events",
        chat_text(),
        new_chat_stream,
        false
    );
    stream!(
        "chat_to_gemini_sse_tool_35_events",
        chat_tool(),
        new_chat_stream,
        true
    );
    let rcx = RequestContext {
        model: "backend-model",
        stream: true,
    };
    g.throughput(Throughput::Bytes(REQUEST.len() as u64));
    g.bench_function("gemini_request_to_chat", |b| {
        b.iter(|| to_chat(black_box(REQUEST.as_bytes()), &rcx).expect("translatable"))
    });
    g.bench_function("gemini_request_to_messages", |b| {
        b.iter(|| to_messages(black_box(REQUEST.as_bytes()), &rcx).expect("translatable"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
