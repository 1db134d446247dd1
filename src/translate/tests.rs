//! Table tests for every mapping, split-invariance of the stream translators, adversarial
//! inputs and a deterministic fuzz loop.

use super::*;
use crate::fault::BodyFault;
use serde_json::{json, Value};

fn v(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(b));
    })
}

// ---------------------------------------------------------------------------------------
// chat → messages: request
// ---------------------------------------------------------------------------------------

fn c2m(body: Value) -> Result<Value, Refusal> {
    chat_to_messages::request(body.to_string().as_bytes(), "claude-real").map(|b| v(&b))
}

#[test]
fn c2m_request_basic() {
    let got = c2m(json!({
        "model": "gpt-4",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use \"quotes\"\n"}]},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
        ],
        "max_completion_tokens": 100, "max_tokens": 7,
        "stop": "END", "temperature": 1.7, "top_p": 0.9,
        "stream": true, "user": "u-1",
        "presence_penalty": 0.5, "seed": 3, "logit_bias": {"1": 2}, "n": 1, "logprobs": false,
        "stream_options": {"include_usage": true}, "store": false, "metadata": {"a": "b"},
        "service_tier": "auto", "reasoning_effort": "low", "response_format": {"type": "text"},
        "top_logprobs": null,
    }))
    .unwrap();
    assert_eq!(
        got,
        json!({
            "model": "claude-real",
            "max_tokens": 100,
            "system": "Be brief.\n\nUse \"quotes\"\n",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]}],
            "stop_sequences": ["END"],
            "temperature": 1.0,
            "top_p": 0.9,
            "metadata": {"user_id": "u-1"},
            "stream": true,
        })
    );
    // Defaults: max_tokens 4096, stop array kept, no system.
    let got = c2m(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 9, "stop": ["a", "b"], "temperature": 0.3}),
    )
    .unwrap();
    assert_eq!(got["max_tokens"], 9);
    assert_eq!(got["stop_sequences"], json!(["a", "b"]));
    assert_eq!(got["temperature"], 0.3);
    assert!(got.get("system").is_none());
    let got = c2m(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})).unwrap();
    assert_eq!(got["max_tokens"], 4096);
    assert!(got.get("stream").is_none());
}

#[test]
fn c2m_request_tools_and_conversation() {
    let got = c2m(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"q\": 1}"}},
                {"id": "call_2", "type": "function", "function": {"name": "nop", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "ok"}]},
            {"role": "user", "content": "thanks"},
            {"role": "assistant", "content": "You're welcome"},
            {"role": "assistant", "content": [{"type": "text", "text": "!"}, {"type": "refusal", "refusal": "no"}]},
        ],
        "tools": [
            {"type": "function", "function": {"name": "get", "description": "Get", "parameters": {"type": "object", "properties": {"q": {"type": "integer"}}}}},
            {"type": "function", "function": {"name": "nop"}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "get"}},
        "parallel_tool_calls": false,
    }))
    .unwrap();
    assert_eq!(
        got,
        json!({
            "model": "claude-real",
            "max_tokens": 4096,
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get", "input": {"q": 1}},
                    {"type": "tool_use", "id": "call_2", "name": "nop", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "42"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "ok"}]},
                    {"type": "text", "text": "thanks"},
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "You're welcome"},
                    {"type": "text", "text": "!"},
                    {"type": "text", "text": "no"},
                ]},
            ],
            "tools": [
                {"name": "get", "description": "Get", "input_schema": {"type": "object", "properties": {"q": {"type": "integer"}}}},
                {"name": "nop", "input_schema": {"type": "object", "properties": {}}},
            ],
            "tool_choice": {"type": "tool", "name": "get", "disable_parallel_tool_use": true},
        })
    );
    for (choice, want) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (json!("required"), json!({"type": "any"})),
    ] {
        let got = c2m(json!({"model": "m", "messages": [], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice})).unwrap();
        assert_eq!(got["tool_choice"], want);
    }
    // parallel_tool_calls false without tool_choice; true is dropped.
    let got = c2m(json!({"model": "m", "messages": [], "tools": [{"type": "function", "function": {"name": "f"}}], "parallel_tool_calls": false})).unwrap();
    assert_eq!(
        got["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    let got = c2m(json!({"model": "m", "messages": [], "tools": [{"type": "function", "function": {"name": "f"}}], "parallel_tool_calls": true})).unwrap();
    assert!(got.get("tool_choice").is_none());
    // An empty tool list is no tool list.
    let got = c2m(json!({"model": "m", "messages": [], "tools": [], "parallel_tool_calls": false}))
        .unwrap();
    assert!(got.get("tools").is_none() && got.get("tool_choice").is_none());
}

#[test]
fn c2m_request_sanitizes_tool_ids() {
    let got = c2m(json!({"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "functions.get:0", "type": "function", "function": {"name": "get", "arguments": "{}"}},
                                              {"id": "", "type": "function", "function": {"name": "get", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "functions.get:0", "content": "r"},
        {"role": "tool", "tool_call_id": "", "content": "s"},
    ]}))
    .unwrap();
    assert_eq!(got["messages"][0]["content"][0]["id"], "functions_get_0");
    assert_eq!(got["messages"][0]["content"][1]["id"], "_");
    assert_eq!(
        got["messages"][1]["content"][0]["tool_use_id"],
        "functions_get_0"
    );
    assert_eq!(got["messages"][1]["content"][1]["tool_use_id"], "_");
}

#[test]
fn c2m_request_refusals() {
    let base = || json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    for (field, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("audio", json!({"voice": "alloy"})),
        ("modalities", json!(["text", "audio"])),
        ("response_format", json!({"type": "json_object"})),
        (
            "response_format",
            json!({"type": "json_schema", "json_schema": {}}),
        ),
        ("prediction", json!({"type": "content", "content": "x"})),
        ("functions", json!([])),
        ("function_call", json!("auto")),
        ("web_search_options", json!({})),
        ("temperature", json!("hot")),
        (
            "tools",
            json!([{"type": "custom", "custom": {"name": "x"}}]),
        ),
        ("tool_choice", json!("sometimes")),
        ("tool_choice", json!({"type": "allowed_tools"})),
        ("user", json!(5)),
        ("stop", json!([1])),
    ] {
        let mut b = base();
        b[field] = value.clone();
        let r = c2m(b).unwrap_err();
        assert_eq!(r.param, field, "{field}: {value}");
        assert!(r.message.contains(field), "{}", r.message);
    }
    for msgs in [
        json!([{"role": "function", "name": "f", "content": "x"}]),
        json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
        json!([{"role": "user", "content": [{"type": "file", "file": {}}]}]),
        json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]),
        json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]),
        json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{bad"}}]}]),
        json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]),
        json!([{"role": "tool", "content": "x"}]),
        json!([{"role": "robot", "content": "x"}]),
        json!("nope"),
        json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}]),
    ] {
        let mut b = base();
        b["messages"] = msgs.clone();
        let r = c2m(b).unwrap_err();
        assert_eq!(r.param, "messages", "{msgs}");
    }
    let r = c2m(json!({"model": "m"})).unwrap_err();
    assert_eq!(r.param, "messages");
    let r = chat_to_messages::request(b"[1,2]", "m").unwrap_err();
    assert_eq!(r.param, "");
}

// ---------------------------------------------------------------------------------------
// chat → messages: response
// ---------------------------------------------------------------------------------------

#[test]
fn c2m_response() {
    let body = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-3-5-sonnet-20241022",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Hello, "},
            {"type": "text", "text": "world \"x\"\n"},
            {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"q": [1, 2]}},
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20},
    });
    let (out, usage) =
        chat_to_messages::response_at(body.to_string().as_bytes(), 1_700_000_000).unwrap();
    assert_eq!(
        usage,
        TokenUsage {
            input: 10,
            output: 5,
            cache_read: 100,
            cache_write: 20
        }
    );
    assert_eq!(
        v(&out),
        json!({
            "id": "msg_01", "object": "chat.completion", "created": 1_700_000_000u64,
            "model": "claude-3-5-sonnet-20241022",
            "choices": [{"index": 0, "message": {
                "role": "assistant", "content": "Hello, world \"x\"\n",
                "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "get", "arguments": "{\"q\":[1,2]}"}}],
            }, "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
                "prompt_tokens_details": {"cached_tokens": 100}},
        })
    );
    for (sr, fr) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ] {
        let b = json!({"id": "m", "model": "c", "content": [], "stop_reason": sr, "usage": {"input_tokens": 1, "output_tokens": 2}});
        let (out, u) = chat_to_messages::response(b.to_string().as_bytes()).unwrap();
        let out = v(&out);
        assert_eq!(out["choices"][0]["finish_reason"], fr);
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
        assert!(out["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(u.input, 1);
    }
    for bad in [
        &b"not json"[..],
        b"[]",
        b"{}",
        br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#,
        br#"{"id":1,"model":"m","content":[]}"#,
        br#"{"id":"a","model":"m","content":[{"type":"text","text":5}]}"#,
        br#"{"id":"a","model":"m","content":[{"type":"tool_use","id":"t","name":"n","input":[1]}]}"#,
        br#"{"id":"a","model":"m","content":[{"type":"tool_use","name":"n","input":{}}]}"#,
        br#"{"id":"a","model":"m","content":{}}"#,
    ] {
        assert!(
            chat_to_messages::response(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Stream helpers
// ---------------------------------------------------------------------------------------

/// What a stream translator produced for some input: output bytes, feed result, finish
/// result and the flags.
#[derive(Debug, PartialEq, Clone)]
struct Run {
    out: Vec<u8>,
    feed: Result<(), UpstreamBroken>,
    finish: Result<(), UpstreamBroken>,
    usage: Option<TokenUsage>,
    started: bool,
    saw_error: bool,
}

trait Translator {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken>;
    fn finish(&self) -> Result<(), UpstreamBroken>;
    fn flags(&self) -> (Option<TokenUsage>, bool, bool);
}

impl<T: stream::EventTranslator> Translator for stream::StreamTranslator<T> {
    fn feed(&mut self, c: &[u8], o: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        stream::StreamTranslator::feed(self, c, o)
    }
    fn finish(&self) -> Result<(), UpstreamBroken> {
        stream::StreamTranslator::finish(self)
    }
    fn flags(&self) -> (Option<TokenUsage>, bool, bool) {
        (self.usage(), self.started_content(), self.saw_error())
    }
}

fn run_chunks<T: Translator>(mut t: T, chunks: &[&[u8]]) -> Run {
    let mut out = Vec::new();
    let mut feed = Ok(());
    for c in chunks {
        if let Err(e) = t.feed(c, &mut out) {
            feed = Err(e);
            break;
        }
    }
    let finish = t.finish();
    let (usage, started, saw_error) = t.flags();
    Run {
        out,
        feed,
        finish,
        usage,
        started,
        saw_error,
    }
}

/// Runs `input` whole, at every two-way split and byte at a time: all must agree.
fn split_invariant<T: Translator>(make: impl Fn() -> T, input: &[u8]) -> Run {
    let whole = run_chunks(make(), &[input]);
    for k in 0..=input.len() {
        let r = run_chunks(make(), &[&input[..k], &input[k..]]);
        assert_eq!(r, whole, "split at {k}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run_chunks(make(), &bytes), whole, "byte at a time");
    whole
}

fn events(out: &[u8]) -> Vec<(String, Value)> {
    let mut d = crate::sse::SseDecoder::new();
    let mut evs = Vec::new();
    d.feed(out, |e| {
        let data = if e.data == b"[DONE]" {
            Value::String("[DONE]".into())
        } else {
            v(e.data)
        };
        evs.push((String::from_utf8_lossy(e.event).into_owned(), data));
    })
    .unwrap();
    assert!(!d.is_mid_event(), "output ends mid-event");
    evs
}

fn sse(events: &[(&str, Value)]) -> Vec<u8> {
    let mut s = Vec::new();
    for (name, data) in events {
        if !name.is_empty() {
            s.extend_from_slice(format!("event: {name}\n").as_bytes());
        }
        s.extend_from_slice(format!("data: {data}\n\n").as_bytes());
    }
    s
}

// ---------------------------------------------------------------------------------------
// chat → messages: stream (Anthropic events → OpenAI chunks)
// ---------------------------------------------------------------------------------------

fn anthropic_stream() -> Vec<u8> {
    let mut s = sse(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, "cache_read_input_tokens": 3, "cache_creation_input_tokens": 4, "output_tokens": 1}}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hel\"lo\n"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "!"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"q\": "}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 2}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "nop", "input": {}}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 3}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 42}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    // A comment and CRLF framing on one event must not matter.
    s.splice(0..0, b": hello\r\n\r\n".iter().copied());
    s
}

#[test]
fn c2m_stream_full() {
    let input = anthropic_stream();
    let r = split_invariant(|| chat_to_messages::Stream::new_at(true, 77), &input);
    assert_eq!(r.feed, Ok(()));
    assert_eq!(r.finish, Ok(()));
    assert!(r.started && !r.saw_error);
    assert_eq!(
        r.usage,
        Some(TokenUsage {
            input: 12,
            output: 42,
            cache_read: 3,
            cache_write: 4
        })
    );
    let head = |delta: Value, fr: Value| {
        json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 77, "model": "claude-x",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": fr}]})
    };
    let want = vec![
        head(json!({"role": "assistant", "content": ""}), Value::Null),
        head(json!({"content": "Hel\"lo\n"}), Value::Null),
        head(json!({"content": "!"}), Value::Null),
        head(
            json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get", "arguments": ""}}]}),
            Value::Null,
        ),
        head(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\": "}}]}),
            Value::Null,
        ),
        head(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            Value::Null,
        ),
        head(
            json!({"tool_calls": [{"index": 1, "id": "toolu_2", "type": "function", "function": {"name": "nop", "arguments": ""}}]}),
            Value::Null,
        ),
        head(json!({}), json!("tool_calls")),
        json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 77, "model": "claude-x", "choices": [],
            "usage": {"prompt_tokens": 19, "completion_tokens": 42, "total_tokens": 61, "prompt_tokens_details": {"cached_tokens": 3}}}),
        json!("[DONE]"),
    ];
    let got: Vec<Value> = events(&r.out).into_iter().map(|(_, d)| d).collect();
    assert_eq!(got, want);
    // Exact bytes of the framing: only `data:` lines, each event ends with a blank line.
    assert!(r.out.starts_with(b"data: {\"id\":\"msg_1\",\"object\":\"chat.completion.chunk\",\"created\":77,\"model\":\"claude-x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"));
    assert!(r.out.ends_with(b"}\n\ndata: [DONE]\n\n"));
    // Without include_usage: no usage chunk.
    let r = run_chunks(chat_to_messages::Stream::new_at(false, 77), &[&input]);
    let got: Vec<Value> = events(&r.out).into_iter().map(|(_, d)| d).collect();
    assert_eq!(got.len(), want.len() - 1);
    assert_eq!(got[got.len() - 2], want[want.len() - 3]);
}

#[test]
fn c2m_stream_error_and_truncation() {
    let start = sse(&[(
        "message_start",
        json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 5, "output_tokens": 0}}}),
    )]);
    // In-band error right after message_start.
    let mut input = start.clone();
    input.extend_from_slice(&sse(&[(
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )]));
    input.extend_from_slice(&sse(&[("ping", json!({"type": "ping"}))]));
    let r = split_invariant(|| chat_to_messages::Stream::new_at(false, 1), &input);
    assert_eq!(r.feed, Ok(()));
    assert_eq!(r.finish.map_err(|e| e.fault), Err(BodyFault::ErrorEvent));
    assert!(r.saw_error && !r.started);
    let evs = events(&r.out);
    assert_eq!(evs.len(), 2);
    assert_eq!(
        evs[1].1,
        json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": "overloaded_error"}})
    );
    // Truncated: no message_stop.
    let r = split_invariant(|| chat_to_messages::Stream::new_at(false, 1), &start);
    assert_eq!(r.feed, Ok(()));
    assert_eq!(
        r.finish,
        Err(UpstreamBroken::incomplete(
            "stream ended before message_stop"
        ))
    );
    assert_eq!(r.usage.map(|u| u.input), Some(5));
    // Cut mid-event after message_stop would still be complete... but mid-event before is not.
    let mut cut = start.clone();
    cut.extend_from_slice(b"event: content_block_start\ndata: {\"type\":");
    let r = split_invariant(|| chat_to_messages::Stream::new_at(false, 1), &cut);
    assert!(r.finish.is_err());
    // The gateway's own error event.
    assert_eq!(
        v(chat_to_messages::stream_error_event("cut \"x\"")
            .strip_prefix(b"data: ")
            .unwrap()),
        json!({"error": {"message": "cut \"x\"", "type": "upstream_error", "param": null, "code": "stream_error"}})
    );
    assert!(chat_to_messages::stream_error_event("x").ends_with(b"}\n\n"));
}

#[test]
fn c2m_stream_broken() {
    let start = json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 5, "output_tokens": 0}}});
    let text_start = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}});
    let tool_start = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "n", "input": {}}});
    let text_delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}});
    let json_delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{"}});
    let stop = json!({"type": "message_stop"});
    let cases: Vec<Vec<u8>> = vec![
        b"<html>oops</html>".to_vec(),
        b"data: not json\n\n".to_vec(),
        b"data: [1,2]\n\n".to_vec(),
        b"data: \"str\"\n\n".to_vec(),
        b"data: {\"no_type\":1}\n\n".to_vec(),
        b"data: [DONE]\n\n".to_vec(),
        sse(&[("", text_delta.clone())]),
        sse(&[("", start.clone()), ("", start.clone())]),
        sse(&[("", start.clone()), ("", text_delta.clone())]),
        sse(&[
            ("", start.clone()),
            ("", text_start.clone()),
            ("", text_start.clone()),
        ]),
        sse(&[
            ("", start.clone()),
            ("", text_start.clone()),
            ("", json_delta.clone()),
        ]),
        sse(&[
            ("", start.clone()),
            ("", tool_start.clone()),
            ("", text_delta.clone()),
        ]),
        sse(&[
            ("", start.clone()),
            ("", json!({"type": "content_block_stop", "index": 3})),
        ]),
        sse(&[("", start.clone()), ("", json!({"type": "message_start"}))]),
        sse(&[(
            "",
            json!({"type": "message_start", "message": {"id": 1, "model": "c"}}),
        )]),
        sse(&[
            ("", start.clone()),
            ("", stop.clone()),
            ("", text_delta.clone()),
        ]),
        sse(&[
            ("", start.clone()),
            (
                "",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "input": {}}}),
            ),
        ]),
        sse(&[
            ("", start.clone()),
            ("", json!({"type": "content_block_delta", "index": 0})),
        ]),
        sse(&[
            ("", start.clone()),
            ("", text_start.clone()),
            (
                "",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}}),
            ),
        ]),
    ];
    for input in cases {
        let r = split_invariant(|| chat_to_messages::Stream::new_at(true, 1), &input);
        assert!(r.feed.is_err(), "{}", String::from_utf8_lossy(&input));
        assert!(r.finish.is_err());
        // Errors are sticky.
        let mut s = chat_to_messages::Stream::new(true);
        let mut out = Vec::new();
        let e = s.feed(&input, &mut out).unwrap_err();
        assert_eq!(s.feed(b"data: {}\n\n", &mut out), Err(e));
        assert_eq!(s.finish(), Err(e));
    }
    // Too many open blocks.
    let mut evs = vec![("", start)];
    for i in 0..40 {
        evs.push((
            "",
            json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}),
        ));
    }
    let r = run_chunks(chat_to_messages::Stream::new(true), &[&sse(&evs)]);
    assert!(r.feed.is_err());
}

#[test]
fn c2m_stream_lenient_parts() {
    // Unknown events and delta types are ignored; empty data lines pass; message_stop without
    // message_delta still ends with a finish chunk.
    let input = sse(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 1, "output_tokens": 0}}}),
        ),
        ("future_event", json!({"type": "future_event", "x": 1})),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ""}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    let mut input2 = b"data:\n\n".to_vec();
    input2.extend_from_slice(&input);
    let r = split_invariant(|| chat_to_messages::Stream::new_at(false, 5), &input2);
    assert_eq!(r.finish, Ok(()));
    assert!(!r.started);
    let evs = events(&r.out);
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[1].1["choices"][0]["finish_reason"], "stop");
}

// ---------------------------------------------------------------------------------------
// messages → chat: request
// ---------------------------------------------------------------------------------------

fn m2c(body: Value) -> Result<Value, Refusal> {
    messages_to_chat::request(body.to_string().as_bytes(), "gpt-real").map(|b| v(&b))
}

#[test]
fn m2c_request() {
    let got = m2c(json!({
        "model": "claude",
        "max_tokens": 256,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "Really."}],
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "...", "signature": "s"},
                {"type": "text", "text": "Let me "},
                {"type": "text", "text": "check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"q": "a\"b"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "42", "cache_control": {"type": "ephemeral"}},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "is_error": true},
                {"type": "text", "text": "and this:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/i.png"}},
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_3", "name": "nop", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_3"}]},
            {"role": "user", "content": [{"type": "text", "text": "one"}]},
            {"role": "assistant", "content": "ok"},
        ],
        "stop_sequences": ["END"],
        "temperature": 0.5, "top_p": 0.8, "top_k": 5,
        "tools": [{"name": "get", "description": "Get", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}, {"type": "custom", "name": "nop"}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "metadata": {"user_id": "u-1"},
        "stream": true,
        "thinking": {"type": "enabled", "budget_tokens": 1000},
        "service_tier": "auto",
    }))
    .unwrap();
    assert_eq!(
        got,
        json!({
            "model": "gpt-real",
            "messages": [
                {"role": "system", "content": "Be brief.\n\nReally."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "get", "arguments": "{\"q\":\"a\\\"b\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "42"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "a\nb"},
                {"role": "user", "content": [
                    {"type": "text", "text": "and this:"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/i.png"}},
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "toolu_3", "type": "function", "function": {"name": "nop", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "toolu_3", "content": ""},
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": "ok"},
            ],
            "max_tokens": 256,
            "stop": ["END"],
            "temperature": 0.5,
            "top_p": 0.8,
            "tools": [
                {"type": "function", "function": {"name": "get", "description": "Get", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "nop", "parameters": {"type": "object", "properties": {}}}},
            ],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "user": "u-1",
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
    for (choice, want) in [
        (json!({"type": "auto"}), json!("auto")),
        (json!({"type": "none"}), json!("none")),
        (
            json!({"type": "tool", "name": "get"}),
            json!({"type": "function", "function": {"name": "get"}}),
        ),
    ] {
        let got =
            m2c(json!({"model": "m", "max_tokens": 1, "messages": [], "tool_choice": choice}))
                .unwrap();
        assert_eq!(got["tool_choice"], want);
        assert!(got.get("parallel_tool_calls").is_none());
    }
    let got = m2c(json!({"model": "m", "max_tokens": 1, "system": "S", "messages": [{"role": "user", "content": "x"}], "stream": false})).unwrap();
    assert_eq!(
        got,
        json!({"model": "gpt-real", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "x"}], "max_tokens": 1, "stream": false})
    );
}

#[test]
fn m2c_request_tool_result_images_follow_the_tool_messages() {
    let got = m2c(json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "text", "text": "shot:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            ]},
        ]},
    ]}))
    .unwrap();
    assert_eq!(
        got["messages"],
        json!([
            {"role": "tool", "tool_call_id": "t1", "content": "shot:"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        ])
    );
}

#[test]
fn m2c_request_refusals() {
    let base =
        || json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    for (field, value) in [
        (
            "tools",
            json!([{"type": "web_search_20250305", "name": "web_search"}]),
        ),
        ("tools", json!([{"name": 5}])),
        ("tool_choice", json!({"type": "tool"})),
        ("tool_choice", json!({"type": "maybe"})),
        ("mcp_servers", json!([{}])),
        ("container", json!("c")),
        ("system", json!([{"type": "image"}])),
        ("max_tokens", json!("many")),
        ("stop_sequences", json!("END")),
        ("metadata", json!({"user_id": 5})),
    ] {
        let mut b = base();
        b[field] = value.clone();
        let r = m2c(b).unwrap_err();
        assert_eq!(r.param, field, "{field}: {value}");
        assert!(r.message.contains(field), "{}", r.message);
    }
    for msgs in [
        json!([{"role": "user", "content": [{"type": "document", "source": {}}]}]),
        json!([{"role": "user", "content": [{"type": "search_result"}]}]),
        json!([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}]}]),
        json!([{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]),
        json!([{"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}]),
        json!([{"role": "assistant", "content": [{"type": "tool_use", "id": "s", "name": "x", "input": [1]}]}]),
        json!([{"role": "tool", "content": "x"}]),
        json!([{"role": "system", "content": [{"type": "image", "source": {}}]}]),
        json!([{"role": "user"}]),
        json!({}),
    ] {
        let mut b = base();
        b["messages"] = msgs.clone();
        let r = m2c(b).unwrap_err();
        assert_eq!(r.param, "messages", "{msgs}");
    }
}

// ---------------------------------------------------------------------------------------
// messages → chat: response
// ---------------------------------------------------------------------------------------

#[test]
fn m2c_response() {
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi \"there\"",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"q\": 1}"}},
                           {"id": "call_2", "type": "function", "function": {"name": "nop", "arguments": ""}}]},
            "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107, "prompt_tokens_details": {"cached_tokens": 60}},
    });
    let (out, usage) = messages_to_chat::response(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        usage,
        TokenUsage {
            input: 40,
            output: 7,
            cache_read: 60,
            cache_write: 0
        }
    );
    assert_eq!(
        v(&out),
        json!({
            "id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-4o-2024",
            "content": [
                {"type": "text", "text": "Hi \"there\""},
                {"type": "tool_use", "id": "call_1", "name": "get", "input": {"q": 1}},
                {"type": "tool_use", "id": "call_2", "name": "nop", "input": {}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60, "output_tokens": 7},
        })
    );
    for (fr, sr) in [
        (json!("stop"), "end_turn"),
        (json!("length"), "max_tokens"),
        (json!("content_filter"), "refusal"),
        (json!("function_call"), "tool_use"),
        (Value::Null, "end_turn"),
    ] {
        let b = json!({"id": "x", "model": "m", "choices": [{"message": {"content": null, "refusal": "no"}, "finish_reason": fr}]});
        let (out, u) = messages_to_chat::response(b.to_string().as_bytes()).unwrap();
        let out = v(&out);
        assert_eq!(out["stop_reason"], sr);
        assert_eq!(out["content"], json!([{"type": "text", "text": "no"}]));
        assert_eq!(u, TokenUsage::default());
    }
    for bad in [
        &b"nope"[..],
        b"{}",
        br#"{"choices":[]}"#,
        br#"{"choices":[{"message":{"content":5}}]}"#,
        br#"{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{bad"}}]}}]}"#,
        br#"{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"[]"}}]}}]}"#,
        br#"{"choices":[{"message":{"tool_calls":[{"id":1,"function":{"name":"f"}}]}}]}"#,
        br#"{"error":{"message":"x"}}"#,
    ] {
        assert!(
            messages_to_chat::response(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

// ---------------------------------------------------------------------------------------
// messages → chat: stream (OpenAI chunks → Anthropic events)
// ---------------------------------------------------------------------------------------

fn chunk(delta: Value, fr: Value) -> Value {
    json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": fr}]})
}

fn openai_stream() -> Vec<u8> {
    let mut s = sse(&[
        (
            "",
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        ),
        ("", chunk(json!({"content": "Hel\"lo"}), Value::Null)),
        ("", chunk(json!({"content": "\n!"}), Value::Null)),
        (
            "",
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": ""}}]}),
                Value::Null,
            ),
        ),
        (
            "",
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":"}}]}),
                Value::Null,
            ),
        ),
        (
            "",
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
                Value::Null,
            ),
        ),
        (
            "",
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "nop", "arguments": "{}"}}]}),
                Value::Null,
            ),
        ),
        ("", chunk(json!({}), json!("tool_calls"))),
        (
            "",
            json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [],
            "usage": {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59, "prompt_tokens_details": {"cached_tokens": 20}}}),
        ),
    ]);
    s.extend_from_slice(b": keep-alive\n\ndata: [DONE]\n\n");
    s
}

#[test]
fn m2c_stream_full() {
    let input = openai_stream();
    let r = split_invariant(messages_to_chat::Stream::new, &input);
    assert_eq!(r.feed, Ok(()));
    assert_eq!(r.finish, Ok(()));
    assert!(r.started && !r.saw_error);
    assert_eq!(
        r.usage,
        Some(TokenUsage {
            input: 30,
            output: 9,
            cache_read: 20,
            cache_write: 0
        })
    );
    let got = events(&r.out);
    let want = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "chatcmpl-9", "type": "message", "role": "assistant", "model": "gpt-4o", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel\"lo"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "\n!"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "call_1", "name": "get", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"q\":"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": " 1}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "call_2", "name": "nop", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 2}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 30, "cache_read_input_tokens": 20, "output_tokens": 9}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let want: Vec<(String, Value)> = want.into_iter().map(|(n, d)| (n.to_owned(), d)).collect();
    assert_eq!(got, want);
    assert!(r.out.starts_with(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"chatcmpl-9\","));
    assert!(r
        .out
        .ends_with(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
}

#[test]
fn m2c_stream_error_and_truncation() {
    let first = sse(&[("", chunk(json!({"role": "assistant"}), Value::Null))]);
    let r = split_invariant(messages_to_chat::Stream::new, &first);
    assert_eq!(
        r.finish,
        Err(UpstreamBroken::incomplete("stream ended before [DONE]"))
    );
    assert!(!r.started);
    assert_eq!(events(&r.out).len(), 1);
    let mut input = first.clone();
    input.extend_from_slice(b"data: {\"error\":{\"message\":\"Rate limit \\\"x\\\"\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}\n\ndata: [DONE]\n\n");
    let r = split_invariant(messages_to_chat::Stream::new, &input);
    assert_eq!(r.feed, Ok(()));
    assert_eq!(r.finish.map_err(|e| e.fault), Err(BodyFault::ErrorEvent));
    assert!(r.saw_error);
    let evs = events(&r.out);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[1].0, "error");
    assert_eq!(
        evs[1].1,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit \"x\""}})
    );
    // The gateway's own error event.
    let e = messages_to_chat::stream_error_event("gone");
    assert!(e.starts_with(b"event: error\ndata: "));
    assert_eq!(
        events(&e),
        vec![(
            "error".to_owned(),
            json!({"type": "error", "error": {"type": "api_error", "message": "gone"}})
        )]
    );
    // [DONE] without finish_reason or usage: end_turn, output_tokens 0.
    let mut input = first.clone();
    input.extend_from_slice(&sse(&[("", chunk(json!({"content": "x"}), Value::Null))]));
    input.extend_from_slice(b"data: [DONE]\n\n");
    let r = split_invariant(messages_to_chat::Stream::new, &input);
    assert_eq!(r.finish, Ok(()));
    assert_eq!(r.usage, None);
    let evs = events(&r.out);
    assert_eq!(
        evs[evs.len() - 2].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 0}})
    );
}

#[test]
fn m2c_stream_broken() {
    let c = |d: Value| chunk(d, Value::Null);
    let cases: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        b"data: {oops\n\n".to_vec(),
        b"data: 5\n\n".to_vec(),
        b"data: [DONE]\n\n".to_vec(),
        b"data: {\"choices\":[]}\n\ndata: [DONE]\n\ndata: [DONE]\n\n".to_vec(),
        b"data: {\"choices\":[]}\n\ndata: [DONE]\n\ndata: {\"choices\":[]}\n\n".to_vec(),
        sse(&[("", c(json!({"content": 5})))]),
        sse(&[(
            "",
            c(json!({"tool_calls": [{"index": 0, "id": "a", "function": {"arguments": "{}"}}]})),
        )]),
        sse(&[
            (
                "",
                c(json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]})),
            ),
            (
                "",
                c(json!({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g"}}]})),
            ),
            (
                "",
                c(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})),
            ),
        ]),
        sse(&[
            (
                "",
                c(json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]})),
            ),
            ("", c(json!({"content": "x"}))),
            (
                "",
                c(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})),
            ),
        ]),
        sse(&[(
            "",
            c(
                json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": 5}}]}),
            ),
        )]),
        sse(&[("", json!({"choices": 5}))]),
    ];
    for input in cases {
        let r = split_invariant(messages_to_chat::Stream::new, &input);
        assert!(r.feed.is_err(), "{}", String::from_utf8_lossy(&input));
        assert!(r.finish.is_err());
    }
}

#[test]
fn m2c_stream_lenient_parts() {
    // No tool-call index (some providers): id starts a call; role-only, empty, other-choice,
    // reasoning and empty data lines produce nothing.
    let input = sse(&[
        (
            "",
            json!({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
        ),
        (
            "",
            json!({"choices": [{"index": 1, "delta": {"content": "other choice"}}]}),
        ),
        (
            "",
            json!({"choices": [{"index": 0, "delta": {"reasoning_content": "thinking"}}]}),
        ),
        (
            "",
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{\"x\""}}]}}]}),
        ),
        (
            "",
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": ":1}"}}]}}]}),
        ),
        (
            "",
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{}"}}]}}]}),
        ),
        (
            "",
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
        ),
    ]);
    let mut input2 = b"data:\n\n".to_vec();
    input2.extend_from_slice(&input);
    input2.extend_from_slice(b"data: [DONE]\n\n");
    let r = split_invariant(messages_to_chat::Stream::new, &input2);
    assert_eq!(r.finish, Ok(()));
    let evs = events(&r.out);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(evs[0].1["message"]["id"], "msg_gateway");
    assert_eq!(evs[5].1["content_block"]["id"], "b");
    assert_eq!(evs[8].1["delta"]["stop_reason"], "max_tokens");
    assert_eq!(evs[8].1["usage"]["output_tokens"], 4);
}

#[test]
fn m2c_stream_tool_call_identity_quirks() {
    // Every call numbered 0 but with distinct ids (seen from some local servers); empty ids
    // on continuation deltas; a missing id gets a generated one.
    let c = |d: Value| chunk(d, Value::Null);
    let mut input = sse(&[
        (
            "",
            c(
                json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{\"x\":"}}]}),
            ),
        ),
        (
            "",
            c(json!({"tool_calls": [{"index": 0, "id": "", "function": {"arguments": "1}"}}]})),
        ),
        (
            "",
            c(
                json!({"tool_calls": [{"index": 0, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}),
            ),
        ),
        (
            "",
            c(json!({"tool_calls": [{"index": 1, "function": {"name": "h", "arguments": "{}"}}]})),
        ),
        ("", chunk(json!({}), json!("tool_calls"))),
    ]);
    input.extend_from_slice(b"data: [DONE]\n\n");
    let r = split_invariant(messages_to_chat::Stream::new, &input);
    assert_eq!(r.finish, Ok(()));
    let evs = events(&r.out);
    let starts: Vec<&Value> = evs
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| &d["content_block"])
        .collect();
    assert_eq!(starts.len(), 3);
    assert_eq!(starts[0]["id"], "a");
    assert_eq!(starts[1]["id"], "b");
    let generated = starts[2]["id"].as_str().unwrap();
    assert!(
        generated.starts_with("toolu_") && generated.ends_with("_2"),
        "{generated}"
    );
    let args: Vec<&Value> = evs
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| &d["delta"]["partial_json"])
        .collect();
    assert_eq!(
        args,
        [&json!("{\"x\":"), &json!("1}"), &json!("{}"), &json!("{}")]
    );
}

// ---------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------

#[test]
fn error_translation() {
    use errors::*;
    let (s, b) = anthropic_to_openai(
        529,
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    assert_eq!(s, 503);
    assert_eq!(
        v(&b),
        json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": "overloaded_error"}})
    );
    for (status, ty, want_status, want_type, want_code) in [
        (
            400,
            "invalid_request_error",
            400,
            "invalid_request_error",
            json!("invalid_request_error"),
        ),
        (
            404,
            "not_found_error",
            404,
            "invalid_request_error",
            json!("not_found_error"),
        ),
        (
            413,
            "request_too_large",
            413,
            "invalid_request_error",
            json!("request_too_large"),
        ),
        (
            429,
            "rate_limit_error",
            429,
            "rate_limit_error",
            json!("rate_limit_error"),
        ),
        (500, "api_error", 500, "server_error", json!("api_error")),
        (
            400,
            "weird_new_type",
            400,
            "invalid_request_error",
            Value::Null,
        ),
    ] {
        let body = json!({"type": "error", "error": {"type": ty, "message": "m"}}).to_string();
        let (s, b) = anthropic_to_openai(status, body.as_bytes());
        assert_eq!(s, want_status);
        let b = v(&b);
        assert_eq!(b["error"]["type"], want_type, "{ty}");
        assert_eq!(b["error"]["code"], want_code);
        assert_eq!(b["error"]["message"], "m");
    }
    // Credentials refusals never pass the provider's text.
    for status in [401, 403] {
        let (s, b) = anthropic_to_openai(
            status,
            br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-123"}}"#,
        );
        assert_eq!(s, status);
        let b = v(&b);
        assert_eq!(b["error"]["message"], CREDENTIALS_MESSAGE);
        let (s, b) = openai_to_anthropic(
            status,
            br#"{"error":{"message":"Incorrect API key provided: sk-abc","type":"invalid_request_error"}}"#,
        );
        assert_eq!(s, status);
        let b = v(&b);
        assert_eq!(b["error"]["message"], CREDENTIALS_MESSAGE);
        assert_eq!(
            b["error"]["type"],
            if status == 401 {
                "authentication_error"
            } else {
                "permission_error"
            }
        );
        assert!(!String::from_utf8_lossy(&b.to_string().into_bytes()).contains("sk-"));
    }
    // Not the expected shape: well-formed, type from status, generic message.
    for raw in [
        &b"<html>502 Bad Gateway</html>"[..],
        b"",
        b"{\"error\":5}",
        b"[]",
    ] {
        let (s, b) = anthropic_to_openai(502, raw);
        assert_eq!(s, 502);
        assert_eq!(
            v(&b),
            json!({"error": {"message": "The upstream provider answered with status 502.", "type": "server_error", "param": null, "code": null}})
        );
        let (s, b) = openai_to_anthropic(429, raw);
        assert_eq!(s, 429);
        assert_eq!(
            v(&b),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "The upstream provider answered with status 429."}})
        );
    }
    let (s, b) = openai_to_anthropic(
        400,
        br#"{"error":{"message":"Bad \"thing\"","type":"invalid_request_error","param":"messages","code":null}}"#,
    );
    assert_eq!(s, 400);
    assert_eq!(
        v(&b),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "Bad \"thing\""}})
    );
    for (status, ty) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
        (418, "api_error"),
    ] {
        assert_eq!(anthropic_error_type(status), ty, "{status}");
        let (_, b) = openai_to_anthropic(status, b"{}");
        assert_eq!(v(&b)["error"]["type"], ty);
    }
}

// ---------------------------------------------------------------------------------------
// Round trips and fuzzing
// ---------------------------------------------------------------------------------------

#[test]
fn round_trip_request_through_both_dialects() {
    let chat = json!({
        "model": "x",
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "R"},
        ],
        "max_tokens": 10,
        "stop": ["x"],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
        "stream": true,
    });
    let anth = chat_to_messages::request(chat.to_string().as_bytes(), "claude").unwrap();
    let back = v(&messages_to_chat::request(&anth, "x").unwrap());
    let mut want = chat.clone();
    want["messages"][2]["content"] = Value::Null;
    want["stream_options"] = json!({"include_usage": true});
    assert_eq!(back, want);
}

/// A deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// Random token soups over every translator: nothing panics, streams are split-invariant.
#[test]
fn fuzz_every_translator() {
    const TOKENS: [&[u8]; 40] = [
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
        b"\"index\":1",
        b"\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\"}",
        b"\"content_block\":{\"type\":\"text\",\"text\":\"\"}",
        b"\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}",
        b"\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}",
        b"\"choices\":[{\"index\":0,\"delta\":{\"content\":\"y\"}}]",
        b"\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]",
        b"\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]",
        b"\"usage\":{\"prompt_tokens\":1,\"input_tokens\":2}",
        b"\"error\":{\"message\":\"e\"}",
        b"\"role\":\"user\"",
        b"\"messages\":[",
        b"\"content\":\"hi\"",
        b"\"tool_calls\":[",
        b"null",
        b"\xff",
        b"\\u0000",
        b"1e999",
    ];
    let mut rng = Rng(0x5eed_1234);
    for round in 0..4000 {
        let mut body = Vec::new();
        let n = rng.next(48);
        for _ in 0..n {
            if rng.next(10) == 0 {
                body.push(rng.next(256) as u8);
            } else {
                body.extend_from_slice(TOKENS[rng.next(TOKENS.len())]);
            }
        }
        // Non-stream translators: any result, no panic.
        let _ = chat_to_messages::request(&body, "m");
        let _ = messages_to_chat::request(&body, "m");
        let _ = chat_to_messages::response(&body);
        let _ = messages_to_chat::response(&body);
        let _ = errors::anthropic_to_openai(500, &body);
        let _ = errors::openai_to_anthropic(500, &body);
        // Stream translators: split-invariant (a few splits per round to stay fast).
        let k = rng.next(body.len() + 1);
        let a = run_chunks(
            chat_to_messages::Stream::new_at(round % 2 == 0, 1),
            &[&body],
        );
        let b = run_chunks(
            chat_to_messages::Stream::new_at(round % 2 == 0, 1),
            &[&body[..k], &body[k..]],
        );
        assert_eq!(a, b);
        let a = run_chunks(messages_to_chat::Stream::new(), &[&body]);
        let b = run_chunks(messages_to_chat::Stream::new(), &[&body[..k], &body[k..]]);
        assert_eq!(a, b);
        // Whatever was emitted is whole events of valid JSON (or [DONE]).
        let _ = events(&a.out);
    }
}

#[test]
fn huge_and_deep_inputs_do_not_break() {
    // A huge delta (under the decoder's 1 MiB limit) is translated as one chunk.
    let big = "x".repeat(900 << 10);
    let input = sse(&[
        (
            "",
            json!({"type": "message_start", "message": {"id": "m", "model": "c"}}),
        ),
        (
            "",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": big}}),
        ),
    ]);
    let r = run_chunks(chat_to_messages::Stream::new(false), &[&input]);
    assert_eq!(r.feed, Ok(()));
    assert!(r.out.len() > 900 << 10);
    // An id repeated in every chunk is bounded.
    let input = sse(&[(
        "",
        json!({"type": "message_start", "message": {"id": "i".repeat(2000), "model": "c"}}),
    )]);
    assert_eq!(
        run_chunks(chat_to_messages::Stream::new(false), &[&input]).feed,
        Err(UpstreamBroken::invalid("message id/model too long"))
    );
    // Over the limit: broken, not buffered forever.
    let huge = "x".repeat(2 << 20);
    let input = sse(&[(
        "",
        json!({"type": "message_start", "message": {"id": huge, "model": "c"}}),
    )]);
    assert!(run_chunks(chat_to_messages::Stream::new(false), &[&input])
        .feed
        .is_err());
    let input = format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{huge}\"}}}}]}}\n\n");
    assert!(
        run_chunks(messages_to_chat::Stream::new(), &[input.as_bytes()])
            .feed
            .is_err()
    );
    // Deep nesting: serde_json's recursion limit answers an error, no stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!("{{\"model\":\"m\",\"messages\":{deep}}}");
    assert!(chat_to_messages::request(body.as_bytes(), "m").is_err());
    assert!(messages_to_chat::request(body.as_bytes(), "m").is_err());
    let body = format!("{{\"id\":\"a\",\"model\":\"m\",\"content\":[{{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{{\"a\":{deep}}}}}]}}");
    // Deep values passed through raw (never recursed into) are fine either way.
    let _ = chat_to_messages::response(body.as_bytes());
    let ev = format!("data: {{\"type\":\"ping\",\"x\":{deep}}}\n\n");
    let _ = run_chunks(chat_to_messages::Stream::new(false), &[ev.as_bytes()]);
}

/// Mutations of valid fixtures (byte changes, cuts, duplicated ranges): nothing panics, the
/// stream translators are split-invariant and emit whole events only.
#[test]
fn fuzz_mutated_fixtures() {
    let fixtures: Vec<Vec<u8>> = vec![
        anthropic_stream(),
        openai_stream(),
        json!({"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "t"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "c", "content": "r"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto", "stop": ["x"], "stream": true}).to_string().into_bytes(),
        json!({"model": "m", "max_tokens": 5, "system": [{"type": "text", "text": "s"}], "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "r"}]}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "any"}, "stream": true}).to_string().into_bytes(),
        json!({"id": "m", "type": "message", "model": "c", "content": [{"type": "text", "text": "x"}, {"type": "tool_use", "id": "t", "name": "n", "input": {"a": 1}}], "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 2}}).to_string().into_bytes(),
        json!({"id": "c", "model": "m", "choices": [{"message": {"content": "x", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1}}).to_string().into_bytes(),
    ];
    let mut rng = Rng(0xfeed_beef);
    for round in 0..3000 {
        let base = &fixtures[round % fixtures.len()];
        let mut body = base.clone();
        for _ in 0..1 + rng.next(3) {
            let len = body.len().max(1);
            match rng.next(4) {
                0 => {
                    let i = rng.next(len);
                    if let Some(b) = body.get_mut(i) {
                        const SUBST: &[u8] = b" {}[]\":,\\\n0a";
                        *b = SUBST[rng.next(SUBST.len())];
                    }
                }
                1 => {
                    let i = rng.next(len);
                    body.truncate(i);
                }
                2 => {
                    let i = rng.next(len);
                    let j = (i + rng.next(64)).min(body.len());
                    let dup: Vec<u8> = body[i.min(j)..j].to_vec();
                    body.splice(j..j, dup);
                }
                _ => {
                    let i = rng.next(len).min(body.len());
                    let j = (i + rng.next(16)).min(body.len());
                    body.drain(i..j);
                }
            }
        }
        let _ = chat_to_messages::request(&body, "m");
        let _ = messages_to_chat::request(&body, "m");
        let _ = chat_to_messages::response(&body);
        let _ = messages_to_chat::response(&body);
        let _ = errors::anthropic_to_openai(400, &body);
        let _ = errors::openai_to_anthropic(400, &body);
        let k = rng.next(body.len() + 1);
        let a = run_chunks(chat_to_messages::Stream::new_at(true, 1), &[&body]);
        assert_eq!(
            a,
            run_chunks(
                chat_to_messages::Stream::new_at(true, 1),
                &[&body[..k], &body[k..]]
            )
        );
        let _ = events(&a.out);
        let a = run_chunks(messages_to_chat::Stream::new(), &[&body]);
        assert_eq!(
            a,
            run_chunks(messages_to_chat::Stream::new(), &[&body[..k], &body[k..]])
        );
        let _ = events(&a.out);
    }
}

/// Every prefix of a valid stream: complete only once the terminal event is in.
#[test]
fn stream_prefixes_are_incomplete_until_the_end() {
    let a = anthropic_stream();
    for k in 0..=a.len() {
        let r = run_chunks(chat_to_messages::Stream::new_at(true, 1), &[&a[..k]]);
        assert_eq!(r.feed, Ok(()), "prefix {k}");
        assert_eq!(r.finish.is_ok(), k == a.len(), "prefix {k}");
    }
    let o = openai_stream();
    for k in 0..=o.len() {
        let r = run_chunks(messages_to_chat::Stream::new(), &[&o[..k]]);
        assert_eq!(r.feed, Ok(()), "prefix {k}");
        assert_eq!(r.finish.is_ok(), k == o.len(), "prefix {k}");
    }
}

/// Claude Code sends `system` turns inside `messages`: they become OpenAI system messages
/// in place.
#[test]
fn m2c_system_turns_inside_messages() {
    let body = serde_json::json!({"model": "c", "max_tokens": 5, "system": "top",
        "messages": [{"role": "user", "content": "hi"},
                     {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]});
    let out =
        super::messages_to_chat::request(&serde_json::to_vec(&body).unwrap(), "gpt-real").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["messages"],
        serde_json::json!([{"role": "system", "content": "top"},
                           {"role": "user", "content": "hi"},
                           {"role": "system", "content": "a\n\nb"}])
    );
}
