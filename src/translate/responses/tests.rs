#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::messages::{budget_of, token_limits};
use super::*;
use crate::translate::responses::input::{Effort, Thinking};
use serde_json::{json, Value};

fn cx(history: Option<&[u8]>) -> RequestContext<'_> {
    RequestContext {
        model: "claude-real",
        history,
    }
}

fn req(body: Value) -> Value {
    let b = serde_json::to_vec(&body).unwrap();
    serde_json::from_slice(&to_messages(&b, &cx(None)).unwrap().body).unwrap()
}

fn refused(body: Value) -> (String, String) {
    let b = serde_json::to_vec(&body).unwrap();
    let e = to_messages(&b, &cx(None)).unwrap_err();
    (e.param, e.message)
}

#[test]
fn thinking_budget_rules() {
    assert_eq!(budget_of(None), None);
    assert_eq!(budget_of(Some(Effort::None)), None);
    assert_eq!(budget_of(Some(Effort::Minimal)), None);
    assert_eq!(budget_of(Some(Effort::Low)), Some(1024));
    assert_eq!(budget_of(Some(Effort::Medium)), Some(4096));
    assert_eq!(budget_of(Some(Effort::High)), Some(16_384));
    // Without max_output_tokens: max_tokens = budget + 4096.
    assert_eq!(token_limits(None, Some(4096)), (8192, Some(4096)));
    assert_eq!(token_limits(None, None), (4096, None));
    // With it: the budget stays below it, at least 1024, else off.
    assert_eq!(token_limits(Some(2000), Some(4096)), (2000, Some(1999)));
    assert_eq!(token_limits(Some(1025), Some(1024)), (1025, Some(1024)));
    assert_eq!(token_limits(Some(1024), Some(1024)), (1024, None));
    assert_eq!(
        token_limits(Some(100_000), Some(16_384)),
        (100_000, Some(16_384))
    );
    assert_eq!(token_limits(Some(0), Some(1024)), (0, None));
    assert_eq!(token_limits(Some(50), None), (50, None));
}

#[test]
fn thinking_in_requests() {
    let r = req(
        json!({"input": "x", "reasoning": {"effort": "high"}, "temperature": 0.1, "top_p": 0.2}),
    );
    assert_eq!(
        r["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384})
    );
    assert_eq!(r["max_tokens"], 16384 + 4096);
    assert!(r.get("temperature").is_none() && r.get("top_p").is_none());
    let r = req(
        json!({"input": "x", "reasoning": {"effort": "low"}, "max_output_tokens": 1000, "temperature": 0.1}),
    );
    assert!(r.get("thinking").is_none());
    assert_eq!(r["max_tokens"], 1000);
    assert_eq!(r["temperature"], 0.1);
    for choice in [json!("required"), json!({"type": "function", "name": "f"})] {
        let r = req(
            json!({"input": "x", "reasoning": {"effort": "medium"}, "tool_choice": choice,
            "tools": [{"type": "function", "name": "f"}]}),
        );
        assert!(r.get("thinking").is_none(), "{choice}");
        assert_eq!(r["max_tokens"], 4096);
    }
    let r = req(
        json!({"input": "x", "reasoning": {"effort": "medium"}, "tool_choice": "auto",
        "tools": [{"type": "function", "name": "f"}]}),
    );
    assert_eq!(r["thinking"]["budget_tokens"], 4096);
}

#[test]
fn refusals_name_the_field() {
    for (body, param) in [
        (json!({"input": "x", "background": true}), "background"),
        (
            json!({"input": "x", "conversation": {"id": "c"}}),
            "conversation",
        ),
        (json!({"prompt": {"id": "p"}}), "prompt"),
        (json!({"input": "x", "top_logprobs": 2}), "top_logprobs"),
        (json!({"input": [{"type": "mystery"}]}), "input"),
        (
            json!({"input": [{"type": "function_call_output", "call_id": "c", "output": "o"}]}),
            "input",
        ),
        (
            json!({"input": [{"type": "message", "content": "no role"}]}),
            "input",
        ),
        (json!({"input": "x", "temperature": "hot"}), "temperature"),
        (
            json!({"input": "x", "max_output_tokens": -1}),
            "max_output_tokens",
        ),
        (
            json!({"input": "x", "text": {"format": {"type": "json_schema"}}}),
            "text",
        ),
    ] {
        let (p, m) = refused(body.clone());
        assert_eq!(p, param, "{body}");
        assert!(m.contains(&format!("`{param}`")), "{m}");
    }
    assert!(!to_messages(b"[]", &cx(None))
        .unwrap_err()
        .message
        .is_empty());
    assert_eq!(to_messages(b"{", &cx(None)).unwrap_err().param, "");
}

#[test]
fn history_is_prepended_and_pairs_outputs() {
    let history = br#"[{"role":"user","content":"first"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"calling"}]},{"type":"function_call","call_id":"call_h","name":"f","arguments":"{\"a\":1}"}]"#;
    let body = br#"{"input":[{"type":"function_call_output","call_id":"call_h","output":"done"}],"tools":[{"type":"function","name":"f"}]}"#;
    let t = to_messages(body, &cx(Some(history))).unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        v["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "first"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "call_h", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_h", "content": "done"}]}
        ])
    );
    // Without the history, the output has no call.
    assert_eq!(to_messages(body, &cx(None)).unwrap_err().param, "input");
    // A malformed history is refused, not sent.
    assert_eq!(
        to_messages(body, &cx(Some(b"{}"))).unwrap_err().param,
        "input"
    );
}

#[test]
fn text_is_copied_verbatim() {
    let body =
        br#"{"input":[{"role":"user","content":"caf\u00e9 \/ \"q\""}],"instructions":"sys\ttab"}"#;
    let t = to_messages(body, &cx(None)).unwrap();
    let s = String::from_utf8(t.body).unwrap();
    assert!(s.contains(r#""text":"caf\u00e9 \/ \"q\"""#), "{s}");
    assert!(s.contains(r#""system":"sys\ttab""#), "{s}");
}

#[test]
fn dropped_tools_are_named_once() {
    let body = br#"{"input":"x","tools":[{"type":"web_search"},{"type":"namespace","name":"n","tools":[{"type":"function","name":"in"}]},{"type":"web_search"},{"type":"mcp","server_label":"s"},{"type":"function","name":"f"}]}"#;
    let t = to_messages(body, &cx(None)).unwrap();
    assert_eq!(t.dropped_tools, ["web_search", "namespace", "mcp"]);
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(v["tools"].as_array().unwrap().len(), 1);
}

#[test]
fn flags() {
    assert_eq!(
        request_flags(br#"{"stream":true,"store":false,"previous_response_id":"resp_1"}"#),
        RequestFlags {
            stream: true,
            store: false,
            previous_response_id: Some("resp_1".into())
        }
    );
    let d = request_flags(b"nonsense");
    assert!(!d.stream && d.store && d.previous_response_id.is_none());
    assert!(request_flags(br#"{"previous_response_id":null}"#)
        .previous_response_id
        .is_none());
}

#[test]
fn thinking_marking_round_trips() {
    let t = Thinking {
        thinking: Some("a \"b\"\n".into()),
        signature: Some("sig".into()),
        redacted: None,
    };
    assert_eq!(Thinking::decode(&t.encode()), Some(t));
    assert_eq!(Thinking::decode("gAAAA-opaque"), None);
    assert_eq!(
        Thinking::decode("berry:anthropic-thinking:v1:{\"thinking\":\"x\"}"),
        None
    );
}

/// An answer's reasoning and calls, stored and sent back as history, become the same
/// thinking block and tool calls again.
#[test]
fn answer_items_continue_the_conversation() {
    let request = br#"{"input":"go","tools":[{"type":"custom","name":"apply_patch"},{"type":"function","name":"f"}],"reasoning":{"effort":"low"}}"#;
    let answer = br#"{"id":"msg_1","type":"message","model":"claude-real","content":[
        {"type":"thinking","thinking":"hmm \"x\"","signature":"SIG=="},
        {"type":"tool_use","id":"toolu_1","name":"apply_patch","input":{"input":"*** Begin Patch\n"}},
        {"type":"tool_use","id":"toolu_2","name":"f","input":{"k":[1]}}],
        "stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2}}"#;
    let acx = AnswerContext::new("resp_1".into(), "claude-real".into(), request);
    let a = from_messages(answer, &acx).unwrap();
    let items: Value = serde_json::from_slice(&a.output_items).unwrap();
    assert_eq!(items[0]["type"], "reasoning");
    assert_eq!(items[0]["summary"][0]["text"], "hmm \"x\"");
    assert_eq!(items[1]["type"], "custom_tool_call");
    assert_eq!(items[1]["input"], "*** Begin Patch\n");
    assert_eq!(items[2]["type"], "function_call");
    assert_eq!(items[2]["arguments"], "{\"k\":[1]}");
    let body = br#"{"input":[{"type":"custom_tool_call_output","call_id":"toolu_1","output":"ok"},{"type":"function_call_output","call_id":"toolu_2","output":"ok"}],"reasoning":{"effort":"low"},"tools":[{"type":"custom","name":"apply_patch"},{"type":"function","name":"f"}]}"#;
    let t = to_messages(body, &cx(Some(&a.output_items))).unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        v["messages"][0]["content"],
        json!([
            {"type": "thinking", "thinking": "hmm \"x\"", "signature": "SIG=="},
            {"type": "tool_use", "id": "toolu_1", "name": "apply_patch", "input": {"input": "*** Begin Patch\n"}},
            {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {"k": [1]}}
        ])
    );
    assert_eq!(v["tools"][0]["input_schema"]["required"], json!(["input"]));
}

#[test]
fn answer_usage_and_status() {
    let acx = AnswerContext::new("resp_9".into(), "claude-real".into(), b"{}");
    let a = from_messages(
        br#"{"id":"m","type":"message","model":"x","content":[{"type":"text","text":"hi"}],"stop_reason":"max_tokens","usage":{"input_tokens":3,"cache_read_input_tokens":10,"cache_creation_input_tokens":2,"output_tokens":4}}"#,
        &acx,
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["status"], "incomplete");
    assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(v["model"], "claude-real");
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 15, "input_tokens_details": {"cached_tokens": 10},
            "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 19})
    );
    assert_eq!(v["output"][0]["id"], "msg_9_0");
    assert_eq!(
        (a.usage.input, a.usage.cache_read, a.usage.cache_write),
        (3, 10, 2)
    );
}

#[test]
fn stream_output_is_bounded() {
    let acx = AnswerContext::new("resp_1".into(), "m".into(), b"{}");
    let mut s = new_messages_stream(acx);
    let mut out = Vec::new();
    s.feed(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"m\"}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n", &mut out).unwrap();
    let big = "x".repeat(1 << 20);
    let ev = format!(
        "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{big}\"}}}}\n\n"
    );
    let mut failed = false;
    for _ in 0..10 {
        out.clear();
        if s.feed(ev.as_bytes(), &mut out).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "more than MAX_OUTPUT_BYTES of text is refused");
    assert!(s.finish().is_err());
}

#[test]
fn error_event_shape() {
    let ev = stream_error_event(3, "server_error", "boom");
    assert_eq!(
        String::from_utf8(ev).unwrap(),
        "event: error\ndata: {\"type\":\"error\",\"sequence_number\":3,\"code\":\"server_error\",\"message\":\"boom\",\"param\":null}\n\n"
    );
}

/// The hand-written delta events are what the derived `Serialize` of the event writes.
#[test]
fn delta_events_equal_the_derived_ones() {
    use crate::wire::raw::{List, Raw};
    use crate::wire::responses::Event;
    let acx = AnswerContext::new("resp_\"x".into(), "m".into(), b"{}");
    let mut w = Writer::new(acx, true);
    let mut out = Vec::new();
    w.start(&mut out);
    let delta: Raw<'_> = serde_json::from_str(r#""a\"\u00e9""#).unwrap();
    for kind in ["message", "call", "reasoning"] {
        let ix = match kind {
            "message" => w.open_message(&mut out).unwrap(),
            "call" => w
                .open_call(&mut out, &Raw::text("c"), &Raw::text("f"))
                .unwrap(),
            _ => w.open_reasoning(&mut out).unwrap(),
        };
        let seq = w.next_sequence_number();
        out.clear();
        match kind {
            "message" => w.text_delta(&mut out, ix, &delta).unwrap(),
            "call" => w.args_delta(&mut out, ix, &delta).unwrap(),
            _ => w.reasoning_delta(&mut out, ix, &delta).unwrap(),
        }
        let ty = match kind {
            "message" => "response.output_text.delta",
            "call" => "response.function_call_arguments.delta",
            _ => "response.reasoning_summary_text.delta",
        };
        let id = format!(
            "{}_\"x_{ix}",
            match kind {
                "message" => "msg",
                "call" => "fc",
                _ => "rs",
            }
        );
        let mut ev = Event::<()>::new(ty, seq);
        ev.output_index = Some(ix as u64);
        ev.item_id = Some(&id);
        ev.delta = Some(&delta);
        match kind {
            "message" => {
                ev.content_index = Some(0);
                ev.logprobs = Some(List::Borrowed(&[]));
            }
            "reasoning" => ev.summary_index = Some(0),
            _ => {}
        }
        let mut want = Vec::new();
        crate::translate::stream::emit(&mut want, ty, &ev);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            String::from_utf8(want).unwrap()
        );
        w.close(&mut out, ix).unwrap();
    }
}
