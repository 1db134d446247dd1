//! Properties of the translators that are not a table of cases: strings copied byte for
//! byte, the exact SSE framing, split-invariance, stream prefixes, huge and deep inputs, a
//! round trip through both dialects. Every mapping (request, response, stream and error, per
//! pair) is a golden fixture with a snapshot: `tests/translate_golden.rs` over
//! `tests/fixtures/translate/`; generated and mutated inputs are proptest properties in
//! `tests/fuzz/`.

use super::*;
use crate::vocab::TokenUsage;
use serde_json::{json, Value};

fn v(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(b));
    })
}

/// Whether `needle` occurs in `hay`, byte for byte.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The golden stream fixtures both directions' tests here start from.
const ANTHROPIC_STREAM: &[u8] =
    include_bytes!("../../tests/fixtures/translate/chat_to_messages/stream/full.sse");
const CHAT_STREAM: &[u8] =
    include_bytes!("../../tests/fixtures/translate/messages_to_chat/stream/full.sse");

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

fn run_chunks<T: stream::EventTranslator>(
    mut t: stream::StreamTranslator<T>,
    chunks: &[&[u8]],
) -> Run {
    let mut out = Vec::new();
    let mut feed = Ok(());
    for c in chunks {
        if let Err(e) = t.feed(c, &mut out) {
            feed = Err(e);
            break;
        }
    }
    Run {
        out,
        feed,
        finish: t.finish(),
        usage: t.usage(),
        started: t.started_content(),
        saw_error: t.saw_error(),
    }
}

/// Runs `input` whole, at every two-way split and byte at a time: all must agree.
fn split_invariant<T: stream::EventTranslator>(
    make: impl Fn() -> stream::StreamTranslator<T>,
    input: &[u8],
) -> Run {
    let whole = run_chunks(make(), &[input]);
    for k in 0..=input.len() {
        let r = run_chunks(make(), &[&input[..k], &input[k..]]);
        assert_eq!(r, whole, "split at {k}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run_chunks(make(), &bytes), whole, "byte at a time");
    whole
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
// Byte for byte: framing and verbatim strings
// ---------------------------------------------------------------------------------------

#[test]
fn chat_client_stream_framing() {
    let r = split_invariant(
        || chat_to_messages::Stream::new_at(true, 77),
        ANTHROPIC_STREAM,
    );
    assert_eq!((r.feed, r.finish), (Ok(()), Ok(())));
    // Only `data:` lines, each event ends with a blank line.
    assert!(r.out.starts_with(b"data: {\"id\":\"msg_1\",\"object\":\"chat.completion.chunk\",\"created\":77,\"model\":\"claude-x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"));
    assert!(r.out.ends_with(b"}\n\ndata: [DONE]\n\n"));
}

#[test]
fn messages_client_stream_framing() {
    let r = split_invariant(messages_to_chat::Stream::new, CHAT_STREAM);
    assert_eq!((r.feed, r.finish), (Ok(()), Ok(())));
    assert!(r.out.starts_with(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"chatcmpl-9\","));
    assert!(r
        .out
        .ends_with(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
}

/// Escapes a re-encoder would rewrite (`\u00e9`, `\/`, a surrogate pair) in text, ids and
/// tool arguments: each string arrives in the output exactly as the input spelled it.
const ODD: &str = r#"\u00e9\/\ud83d\ude00\"é"#;

#[test]
fn chat_client_strings_are_copied_verbatim() {
    // Request: text verbatim (tool ids are sanitised to Anthropic's pattern, a fixture); the
    // arguments' JSON text becomes the input object as written (spacing kept).
    let body = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{ODD}"}},{{"role":"assistant","tool_calls":[{{"id":"c{ODD}","type":"function","function":{{"name":"f","arguments":"{{\"q\": 1}}"}}}}]}}]}}"#
    );
    let out = chat_to_messages::request(body.as_bytes(), "claude").unwrap();
    for want in [
        format!(r#""text":"{ODD}""#),
        r#""input":{"q": 1}"#.to_owned(),
    ] {
        assert!(
            contains(&out, want.as_bytes()),
            "{want} in {}",
            String::from_utf8_lossy(&out)
        );
    }
    // Response: text and tool ids verbatim, the input object as the arguments' text.
    let body = format!(
        r#"{{"id":"m{ODD}","model":"c","content":[{{"type":"text","text":"{ODD}"}},{{"type":"tool_use","id":"t{ODD}","name":"n","input":{{"a": 1}}}}],"stop_reason":"tool_use","usage":{{"input_tokens":1,"output_tokens":1}}}}"#
    );
    let (out, _) = chat_to_messages::response_at(body.as_bytes(), 1).unwrap();
    for want in [
        format!(r#""id":"m{ODD}""#),
        format!(r#""content":"{ODD}""#),
        format!(r#""id":"t{ODD}""#),
        r#""arguments":"{\"a\": 1}""#.to_owned(),
    ] {
        assert!(
            contains(&out, want.as_bytes()),
            "{want} in {}",
            String::from_utf8_lossy(&out)
        );
    }
    // Stream: text deltas and partial tool arguments verbatim.
    let input = format!(
        "data: {{\"type\":\"message_start\",\"message\":{{\"id\":\"m\",\"model\":\"c\"}}}}\n\n\
         data: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
         data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{ODD}\"}}}}\n\n\
         data: {{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{{\"type\":\"tool_use\",\"id\":\"t{ODD}\",\"name\":\"n\",\"input\":{{}}}}}}\n\n\
         data: {{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"{ODD}\"}}}}\n\n"
    );
    let r = split_invariant(
        || chat_to_messages::Stream::new_at(false, 1),
        input.as_bytes(),
    );
    assert_eq!(r.feed, Ok(()));
    for want in [
        format!(r#""content":"{ODD}""#),
        format!(r#""id":"t{ODD}""#),
        format!(r#""arguments":"{ODD}""#),
    ] {
        assert!(
            contains(&r.out, want.as_bytes()),
            "{want} in {}",
            String::from_utf8_lossy(&r.out)
        );
    }
}

#[test]
fn messages_client_strings_are_copied_verbatim() {
    // Request: text, tool ids and tool results verbatim.
    let body = format!(
        r#"{{"model":"m","max_tokens":1,"messages":[{{"role":"user","content":"{ODD}"}},{{"role":"assistant","content":[{{"type":"tool_use","id":"t{ODD}","name":"f","input":{{}}}}]}},{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t{ODD}","content":"r{ODD}"}}]}}]}}"#
    );
    let out = messages_to_chat::request(body.as_bytes(), "gpt").unwrap();
    for want in [
        format!(r#""content":"{ODD}""#),
        format!(r#""id":"t{ODD}""#),
        format!(r#""tool_call_id":"t{ODD}""#),
        format!(r#""content":"r{ODD}""#),
    ] {
        assert!(
            contains(&out, want.as_bytes()),
            "{want} in {}",
            String::from_utf8_lossy(&out)
        );
    }
    // Response: text and tool ids verbatim, the arguments' text as the input object.
    let body = format!(
        r#"{{"id":"c{ODD}","model":"m","choices":[{{"message":{{"content":"{ODD}","tool_calls":[{{"id":"k{ODD}","type":"function","function":{{"name":"f","arguments":"{{\"a\": 1}}"}}}}]}},"finish_reason":"tool_calls"}}]}}"#
    );
    let (out, _) = messages_to_chat::response(body.as_bytes()).unwrap();
    for want in [
        format!(r#""id":"c{ODD}""#),
        format!(r#""text":"{ODD}""#),
        format!(r#""id":"k{ODD}""#),
        r#""input":{"a": 1}"#.to_owned(),
    ] {
        assert!(
            contains(&out, want.as_bytes()),
            "{want} in {}",
            String::from_utf8_lossy(&out)
        );
    }
    // Stream: text deltas, tool ids and partial arguments verbatim.
    let input = format!(
        "data: {{\"id\":\"c\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{ODD}\"}}}}]}}\n\n\
         data: {{\"id\":\"c\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":0,\"id\":\"k{ODD}\",\"function\":{{\"name\":\"f\",\"arguments\":\"{ODD}\"}}}}]}}}}]}}\n\n"
    );
    let r = split_invariant(messages_to_chat::Stream::new, input.as_bytes());
    assert_eq!(r.feed, Ok(()));
    for want in [
        format!(r#""text":"{ODD}""#),
        format!(r#""id":"k{ODD}""#),
        format!(r#""partial_json":"{ODD}""#),
    ] {
        assert!(
            contains(&r.out, want.as_bytes()),
            "{want} in {}",
            String::from_utf8_lossy(&r.out)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Stream ends, huge and deep inputs
// ---------------------------------------------------------------------------------------

/// Every prefix of a valid stream: complete only once the terminal event is in.
#[test]
fn stream_prefixes_are_incomplete_until_the_end() {
    let a = ANTHROPIC_STREAM;
    for k in 0..=a.len() {
        let r = run_chunks(chat_to_messages::Stream::new_at(true, 1), &[&a[..k]]);
        assert_eq!(r.feed, Ok(()), "prefix {k}");
        assert_eq!(r.finish.is_ok(), k == a.len(), "prefix {k}");
    }
    let o = CHAT_STREAM;
    for k in 0..=o.len() {
        let r = run_chunks(messages_to_chat::Stream::new(), &[&o[..k]]);
        assert_eq!(r.feed, Ok(()), "prefix {k}");
        assert_eq!(r.finish.is_ok(), k == o.len(), "prefix {k}");
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

// ---------------------------------------------------------------------------------------
// Round trip
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
