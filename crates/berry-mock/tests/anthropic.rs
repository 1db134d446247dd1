//! The Anthropic Messages API as the mock plays it: native requests (with
//! `anthropic-version`), validation, auth, tool use, streams, count_tokens, models and
//! Anthropic-shaped errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may fail loudly

mod support;

use berry_mock::{MockOptions, Mode};
use serde_json::{json, Value};
use support::{events, mock, names, p_of, post, req, start, VERSION};

const MSG: &str =
    r#"{"model":"claude-test","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#;
const MSG_STREAM: &str = r#"{"model":"claude-test","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

fn tools_body(stream: bool, tool_choice: Value) -> String {
    let mut v = json!({
        "model": "claude-test",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [
            {"name": "get_weather", "description": "Weather", "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"]
            }},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
        ]
    });
    if !tool_choice.is_null() {
        v["tool_choice"] = tool_choice;
    }
    v.to_string()
}

/// Asserts an Anthropic-shaped error answer.
fn assert_error(r: &support::Resp, status: u16, etype: &str) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], etype, "{v}");
    v["error"]["message"].as_str().unwrap().to_string()
}

#[test]
fn native_message_answer() {
    let m = mock();
    for path in ["/v1/messages", "/anthropic/messages"] {
        let r = post(&m, path, &[VERSION], MSG);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v = r.json();
        assert!(v["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["model"], "claude-test");
        assert_eq!(
            v["content"],
            json!([{"type": "text", "text": "tok0 tok1 tok2 tok3 tok4 "}])
        );
        assert_eq!(v["stop_reason"], "end_turn");
        assert!(v["stop_sequence"].is_null());
        assert_eq!(
            v["usage"],
            json!({"input_tokens": p_of(MSG), "output_tokens": 5,
                   "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
        );
    }
    let r = post(
        &m,
        "/v1/messages",
        &[
            VERSION,
            ("x-mock-cache-read", "100"),
            ("x-mock-cache-write", "7"),
        ],
        MSG,
    );
    let u = &r.json()["usage"];
    assert_eq!(u["input_tokens"], p_of(MSG));
    assert_eq!(u["cache_read_input_tokens"], 100);
    assert_eq!(u["cache_creation_input_tokens"], 7);
    assert_eq!(m.hits_for("/messages"), 3);
}

#[test]
fn native_requests_are_validated_like_the_api() {
    let m = mock();
    for (body, needle) in [
        ("{oops", "error parsing"),
        ("[]", "JSON object"),
        (
            r#"{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
            "model: Field required",
        ),
        (
            r#"{"model":"c","messages":[{"role":"user","content":"x"}]}"#,
            "max_tokens: Field required",
        ),
        (
            r#"{"model":"c","max_tokens":5}"#,
            "messages: Field required",
        ),
        (
            r#"{"model":"c","max_tokens":5,"messages":[{"role":"tool","content":"x"}]}"#,
            "messages.0.role",
        ),
        (
            r#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"x"}],"n":2}"#,
            "n: Extra inputs are not permitted",
        ),
        (
            r#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#,
            "stream_options: Extra inputs",
        ),
        (
            r#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#,
            "tools.0.name: Field required",
        ),
    ] {
        let r = post(&m, "/v1/messages", &[VERSION], body);
        let msg = assert_error(&r, 400, "invalid_request_error");
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    // Without anthropic-version the mock stays as lenient as it always was.
    let r = post(&m, "/v1/messages", &[], r#"{"stream":false}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model"], "gpt-4o-mini");
    // Any method on a messages path answers in Anthropic's shape.
    let r = req(&m, "GET", "/v1/messages", &[VERSION], "");
    assert_error(&r, 404, "not_found_error");
}

#[test]
fn auth_by_x_api_key_and_required_version() {
    let m = start(MockOptions {
        expected_api_key: Some("sk-ant-test".into()),
        require_anthropic_version: true,
        ..MockOptions::default()
    });
    for h in [
        vec![VERSION],
        vec![VERSION, ("authorization", "Bearer sk-ant-test")],
        vec![VERSION, ("api-key", "sk-ant-test")],
        vec![VERSION, ("x-api-key", "sk-ant-nope")],
    ] {
        let r = post(&m, "/v1/messages", &h, MSG);
        let msg = assert_error(&r, 401, "authentication_error");
        assert_eq!(msg, "invalid x-api-key", "{h:?}");
    }
    let key = ("x-api-key", "sk-ant-test");
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        let r = post(&m, path, &[key], MSG);
        let msg = assert_error(&r, 400, "invalid_request_error");
        assert_eq!(msg, "anthropic-version: header is required");
    }
    assert_eq!(post(&m, "/v1/messages", &[key, VERSION], MSG).status, 200);
    // OpenAI routes keep taking the key from any of their headers.
    let chat = r#"{"model":"x"}"#;
    let bearer = ("authorization", "Bearer sk-ant-test");
    assert_eq!(
        post(&m, "/v1/chat/completions", &[bearer], chat).status,
        200
    );
    assert_eq!(post(&m, "/v1/chat/completions", &[key], chat).status, 200);
    // Anthropic's model list takes the key from x-api-key only.
    let r = req(&m, "GET", "/v1/models", &[VERSION, bearer], "");
    assert_error(&r, 401, "authentication_error");
    assert_eq!(
        req(&m, "GET", "/v1/models", &[VERSION, key], "").status,
        200
    );
}

#[test]
fn native_stream_is_the_real_event_sequence() {
    let m = mock();
    let r = post(
        &m,
        "/v1/messages",
        &[VERSION, ("x-mock-chunks", "3"), ("x-mock-cache-read", "9")],
        MSG_STREAM,
    );
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let evs = events(&r);
    assert_eq!(
        names(&evs),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    // Every event is its own chunk, and its data type is its name.
    assert_eq!(r.chunks.len(), evs.len());
    for e in &evs {
        assert_eq!(e.json()["type"], e.name.as_deref().unwrap());
    }
    let start = evs[0].json();
    assert_eq!(start["message"]["model"], "claude-test");
    assert_eq!(start["message"]["usage"]["input_tokens"], p_of(MSG_STREAM));
    assert_eq!(start["message"]["usage"]["cache_read_input_tokens"], 9);
    assert_eq!(
        evs[1].json()["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = evs[3..6]
        .iter()
        .map(|e| {
            let d = e.json();
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, "tok0 tok1 tok2 ");
    let md = evs[7].json();
    assert_eq!(md["delta"]["stop_reason"], "end_turn");
    assert_eq!(md["usage"]["output_tokens"], 3);
}

#[test]
fn tool_use_answers() {
    let m = mock();
    let forced = tools_body(false, json!({"type": "tool", "name": "get_weather"}));
    let v = post(&m, "/v1/messages", &[VERSION], &forced).json();
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({"city": "mock", "days": 1}));

    let any = tools_body(false, json!({"type": "any"}));
    let v = post(&m, "/v1/messages", &[VERSION], &any).json();
    assert_eq!(v["content"][0]["name"], "get_weather");

    // auto / no tool_choice: text, unless the header asks for a tool.
    let auto = tools_body(false, json!({"type": "auto"}));
    let v = post(&m, "/v1/messages", &[VERSION], &auto).json();
    assert_eq!(v["content"][0]["type"], "text");
    let v = post(
        &m,
        "/v1/messages",
        &[
            VERSION,
            ("x-mock-tool-use", "get_time"),
            ("x-mock-tool-input", r#"{"tz":"Europe/Paris"}"#),
        ],
        &auto,
    )
    .json();
    assert_eq!(v["content"][0]["name"], "get_time");
    assert_eq!(v["content"][0]["input"], json!({"tz": "Europe/Paris"}));
    let r = post(
        &m,
        "/v1/messages",
        &[VERSION, ("x-mock-tool-use", "nope")],
        &auto,
    );
    assert!(assert_error(&r, 400, "invalid_request_error").contains("nope"));
}

#[test]
fn tool_use_stream_pieces_concatenate_to_the_input() {
    let m = mock();
    let body = tools_body(true, json!({"type": "tool", "name": "get_weather"}));
    for chunks in ["4", "1", "0", "40"] {
        let r = post(
            &m,
            "/v1/messages",
            &[VERSION, ("x-mock-chunks", chunks)],
            &body,
        );
        assert!(r.complete);
        let evs = events(&r);
        let block = evs[1].json()["content_block"].clone();
        assert_eq!(block["type"], "tool_use");
        assert_eq!(block["name"], "get_weather");
        assert_eq!(block["input"], json!({}));
        let deltas: Vec<Value> = evs
            .iter()
            .filter(|e| e.name.as_deref() == Some("content_block_delta"))
            .map(|e| e.json())
            .collect();
        let want = chunks.parse::<usize>().unwrap().max(1);
        assert_eq!(deltas.len(), want, "chunks {chunks}");
        let joined: String = deltas
            .iter()
            .map(|d| {
                assert_eq!(d["delta"]["type"], "input_json_delta");
                d["delta"]["partial_json"].as_str().unwrap().to_string()
            })
            .collect();
        let input: Value = serde_json::from_str(&joined).unwrap();
        assert_eq!(input, json!({"city": "mock", "days": 1}));
        let md = evs[evs.len() - 2].json();
        assert_eq!(md["delta"]["stop_reason"], "tool_use");
        assert_eq!(md["usage"]["output_tokens"], want);
        assert_eq!(evs.last().unwrap().name.as_deref(), Some("message_stop"));
    }
}

#[test]
fn count_tokens_and_model_list() {
    let m = start(MockOptions {
        models: vec!["claude-a".into(), "claude-b".into()],
        ..MockOptions::default()
    });
    let body = r#"{"model":"claude-a","messages":[{"role":"user","content":"hello there"}]}"#;
    let r = post(&m, "/v1/messages/count_tokens", &[VERSION], body);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"input_tokens": p_of(body)}));
    // Validated even without anthropic-version; max_tokens is not a count_tokens field.
    let r = post(&m, "/v1/messages/count_tokens", &[], MSG);
    let msg = assert_error(&r, 400, "invalid_request_error");
    assert!(msg.starts_with("max_tokens: Extra inputs"), "{msg}");
    assert_eq!(m.hits_for("/messages/count_tokens"), 2);

    let v = req(&m, "GET", "/v1/models", &[VERSION], "").json();
    assert_eq!(v["has_more"], false);
    assert_eq!(
        (v["first_id"].as_str(), v["last_id"].as_str()),
        (Some("claude-a"), Some("claude-b"))
    );
    let first = &v["data"][0];
    assert_eq!(first["type"], "model");
    assert_eq!(first["id"], "claude-a");
    assert!(first["display_name"].is_string());
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
    // Without anthropic-version: OpenAI's list.
    let v = req(&m, "GET", "/v1/models", &[], "").json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][1]["id"], "claude-b");
}

#[test]
fn error_statuses_are_anthropic_shaped() {
    let m = mock();
    let r = post(
        &m,
        "/v1/messages",
        &[VERSION, ("x-mock-mode", "429"), ("x-mock-retry-after", "7")],
        MSG,
    );
    assert_error(&r, 429, "rate_limit_error");
    assert_eq!(r.header("retry-after"), Some("7"));
    let r = post(
        &m,
        "/v1/messages",
        &[VERSION, ("x-mock-mode", "429:3")],
        MSG,
    );
    assert_error(&r, 429, "rate_limit_error");
    assert_eq!(r.header("retry-after"), Some("3"));

    let r = post(&m, "/v1/messages", &[VERSION, ("x-mock-mode", "529")], MSG);
    assert_eq!(assert_error(&r, 529, "overloaded_error"), "Overloaded");
    let r = post(&m, "/v1/messages", &[VERSION, ("x-mock-mode", "500")], MSG);
    assert_error(&r, 500, "api_error");
    let r = post(&m, "/v1/messages", &[VERSION, ("x-mock-mode", "403")], MSG);
    assert_error(&r, 403, "permission_error");
    let r = post(&m, "/v1/messages", &[VERSION, ("x-mock-chunks", "x")], MSG);
    assert_error(&r, 400, "invalid_request_error");
    // The same 529 on an OpenAI route is OpenAI-shaped.
    let r = post(&m, "/v1/chat/completions", &[("x-mock-mode", "529")], "{}");
    assert_eq!(r.status, 529);
    assert_eq!(r.json()["error"]["type"], "server_error");
    // Set on the mock, as tests do through a gateway.
    m.set_mode(Mode::Status(529));
    let r = post(&m, "/v1/messages/count_tokens", &[VERSION], MSG);
    assert_error(&r, 529, "overloaded_error");
}

#[test]
fn mid_stream_overloaded_error_event() {
    let m = mock();
    let r = post(
        &m,
        "/v1/messages",
        &[VERSION, ("x-mock-mode", "error-event:2")],
        MSG_STREAM,
    );
    assert_eq!(r.status, 200);
    assert!(r.complete, "the HTTP body ends cleanly");
    let evs = events(&r);
    assert_eq!(
        names(&evs),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(
        evs[5].json(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
}
