//! The OpenAI Responses API of the mock: the `response` object, its event stream
//! (sequence numbers, function calls, faults), the by-id routes and the turn after a
//! tool call.

mod support;

use serde_json::{json, Value};
use support::{events, mock, post, req, Event};

use berry_mock::Mode;

fn create(stream: bool, extra: Value) -> String {
    let mut body = json!({"model": "gpt-x", "input": "hi", "stream": stream});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    body.to_string()
}

fn data(evs: &[Event]) -> Vec<Value> {
    evs.iter().map(Event::json).collect()
}

#[test]
fn non_streamed_response_object() {
    let m = mock();
    let body = create(
        false,
        json!({"instructions": "be brief", "max_output_tokens": 50}),
    );
    let r = post(&m, "/v1/responses", &[("x-mock-cache-read", "4")], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gpt-x");
    assert_eq!(v["instructions"], "be brief");
    assert_eq!(v["max_output_tokens"], 50);
    assert!(v["created_at"].as_u64().unwrap() > 0);
    let item = &v["output"][0];
    assert_eq!(
        (item["type"].as_str(), item["role"].as_str()),
        (Some("message"), Some("assistant"))
    );
    assert_eq!(item["content"][0]["type"], "output_text");
    assert_eq!(item["content"][0]["text"], "tok0 tok1 tok2 tok3 tok4 ");
    let u = &v["usage"];
    let p = support::p_of(&body);
    assert_eq!(u["input_tokens"], p + 4);
    assert_eq!(u["input_tokens_details"]["cached_tokens"], 4);
    assert_eq!(u["output_tokens"], 5);
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 0);
    assert_eq!(u["total_tokens"], p + 9);
    // Azure's v1 form is the same route.
    let r = post(&m, "/openai/v1/responses", &[], &create(false, json!({})));
    assert_eq!(r.json()["object"], "response");
    assert_eq!(m.last_request().unwrap().path, "/openai/v1/responses");
}

#[test]
fn streamed_events_in_order_with_increasing_sequence_numbers() {
    let m = mock();
    let r = post(
        &m,
        "/v1/responses",
        &[("x-mock-chunks", "3")],
        &create(true, json!({})),
    );
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let evs = events(&r);
    let names: Vec<&str> = evs.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let d = data(&evs);
    for (i, (e, name)) in d.iter().zip(&names).enumerate() {
        assert_eq!(e["type"], *name);
        assert_eq!(e["sequence_number"], i as u64);
    }
    let deltas: String = d[4..7]
        .iter()
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "tok0 tok1 tok2 ");
    assert_eq!(d[0]["response"]["status"], "in_progress");
    assert_eq!(d[9]["item"]["content"][0]["text"], "tok0 tok1 tok2 ");
    let done = &d[10]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "tok0 tok1 tok2 ");
    assert_eq!(done["usage"]["output_tokens"], 3);
    assert_eq!(done["id"], d[0]["response"]["id"]);
}

#[test]
fn function_calls_and_the_turn_after() {
    let m = mock();
    let tools = json!([{"type": "function", "name": "exec_command",
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
        {"type": "web_search"}]);
    let steer = [
        ("x-mock-tool-use", "exec_command"),
        ("x-mock-tool-input", r#"{"cmd":"echo hi"}"#),
    ];
    let r = post(
        &m,
        "/v1/responses",
        &steer,
        &create(false, json!({"tools": tools})),
    );
    let item = &r.json()["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "exec_command");
    assert_eq!(item["arguments"], r#"{"cmd":"echo hi"}"#);
    let call_id = item["call_id"].as_str().unwrap().to_string();
    assert!(call_id.starts_with("call_"));

    let r = post(
        &m,
        "/v1/responses",
        &steer,
        &create(true, json!({"tools": tools})),
    );
    let d = data(&events(&r));
    let args: String = d
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(args, r#"{"cmd":"echo hi"}"#);
    let done: Vec<&Value> = d
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.done")
        .collect();
    assert_eq!(done[0]["arguments"], args);
    assert!(d.iter().all(|e| e["type"] != "response.content_part.added"));
    assert_eq!(
        d.last().unwrap()["response"]["output"][0]["type"],
        "function_call"
    );

    // `tool_choice: "required"` without the header: the first function tool.
    let r = post(
        &m,
        "/v1/responses",
        &[],
        &create(false, json!({"tools": tools, "tool_choice": "required"})),
    );
    assert_eq!(r.json()["output"][0]["arguments"], r#"{"cmd":"mock"}"#);
    let r = post(
        &m,
        "/v1/responses",
        &[("x-mock-tool-use", "nope")],
        &create(false, json!({"tools": tools})),
    );
    assert_eq!(r.status, 400);

    // The turn that carries the output is answered with it.
    let input = json!([{"type": "message", "role": "user", "content": "run"},
        {"type": "function_call", "call_id": call_id, "name": "exec_command", "arguments": "{}"},
        {"type": "function_call_output", "call_id": call_id, "output": "hi\n"}]);
    let body = create(true, json!({"tools": tools, "input": input}));
    let r = post(&m, "/v1/responses", &steer, &body);
    let d = data(&events(&r));
    let last = d.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    assert_eq!(
        last["response"]["output"][0]["content"][0]["text"],
        "tool output: hi\n"
    );
}

#[test]
fn the_turn_after_a_call_on_chat_and_messages() {
    let m = mock();
    let tools = json!([{"type": "function", "function": {"name": "sh", "parameters": {}}}]);
    let msgs = json!([{"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "sh", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done!"}]);
    let body = json!({"model": "m", "messages": msgs, "tools": tools}).to_string();
    let r = post(
        &m,
        "/v1/chat/completions",
        &[("x-mock-tool-use", "sh")],
        &body,
    );
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "tool output: done!"
    );
    let tools = json!([{"name": "sh", "input_schema": {"type": "object"}}]);
    let msgs = json!([{"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "sh", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "ok \"quoted\""}]}]}]);
    let body =
        json!({"model": "m", "max_tokens": 10, "messages": msgs, "tools": tools, "stream": true})
            .to_string();
    let r = post(
        &m,
        "/v1/messages",
        &[("x-mock-tool-use", "sh"), support::VERSION],
        &body,
    );
    let text: String = data(&events(&r))
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "tool output: ok \"quoted\"");
}

#[test]
fn state_by_id_routes_and_previous_response_id() {
    let m = mock();
    let r = post(
        &m,
        "/v1/responses",
        &[],
        &create(
            false,
            json!({"input": [
        {"type": "message", "role": "user", "content": "one"},
        {"type": "message", "role": "user", "content": "two", "id": "msg_given"}]}),
        ),
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    let got = req(&m, "GET", &format!("/v1/responses/{id}"), &[], "");
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["id"], id.as_str());
    let items = req(
        &m,
        "GET",
        &format!("/v1/responses/{id}/input_items?order=asc"),
        &[],
        "",
    );
    let v = items.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][1]["id"], "msg_given");
    assert_eq!(v["last_id"], "msg_given");
    let items = req(
        &m,
        "GET",
        &format!("/v1/responses/{id}/input_items"),
        &[],
        "",
    );
    assert_eq!(items.json()["first_id"], "msg_given");

    let next = post(
        &m,
        "/v1/responses",
        &[],
        &create(false, json!({"previous_response_id": id})),
    );
    assert_eq!(next.status, 200);
    assert_eq!(next.json()["previous_response_id"], id.as_str());
    let bad = post(
        &m,
        "/v1/responses",
        &[],
        &create(true, json!({"previous_response_id": "resp_nope"})),
    );
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json(),
        json!({"error": {"message": "Previous response with id 'resp_nope' not found.",
            "type": "invalid_request_error", "param": "previous_response_id",
            "code": "previous_response_not_found"}})
    );

    let c = post(&m, &format!("/v1/responses/{id}/cancel"), &[], "");
    assert_eq!(c.json()["status"], "cancelled");
    let compact = post(&m, "/v1/responses/compact", &[], &create(false, json!({})));
    assert_eq!(compact.json()["output"][0]["type"], "compaction");
    let d = req(&m, "DELETE", &format!("/v1/responses/{id}"), &[], "");
    assert_eq!(
        d.json(),
        json!({"id": id, "object": "response", "deleted": true})
    );
    for (method, path) in [
        ("GET", format!("/v1/responses/{id}")),
        ("DELETE", format!("/v1/responses/{id}")),
        ("GET", format!("/v1/responses/{id}/input_items")),
        ("POST", format!("/v1/responses/{id}/cancel")),
    ] {
        let r = req(&m, method, &path, &[], "");
        assert_eq!(r.status, 404, "{method} {path}");
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    }
    // `store: false` is not kept.
    let r = post(
        &m,
        "/v1/responses",
        &[],
        &create(false, json!({"store": false})),
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        req(&m, "GET", &format!("/v1/responses/{id}"), &[], "").status,
        404
    );
    assert_eq!(req(&m, "GET", "/v1/responses", &[], "").status, 404);
    assert_eq!(post(&m, "/v1/responses", &[], "[1]").status, 400);
    assert_eq!(
        post(&m, "/v1/responses", &[], r#"{"input": 5}"#).json()["error"]["param"],
        "input"
    );
}

#[test]
fn faults_apply_to_the_responses_route() {
    let m = mock();
    let body = create(true, json!({}));
    let r = post(&m, "/v1/responses", &[("x-mock-mode", "503")], &body);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["type"], "server_error");
    let r = post(&m, "/v1/responses", &[("x-mock-mode", "429:3")], &body);
    assert_eq!((r.status, r.header("retry-after")), (429, Some("3")));
    let r = post(&m, "/v1/responses", &[("x-mock-limits", "requests")], &body);
    assert!(r.header("x-ratelimit-remaining-requests").is_some());

    let r = post(
        &m,
        "/v1/responses",
        &[("x-mock-mode", "error-event:2")],
        &body,
    );
    let d = data(&events(&r));
    let last = d.last().unwrap();
    assert_eq!(last["type"], "error");
    assert_eq!(last["code"], "server_error");
    assert_eq!(last["sequence_number"], d.len() as u64 - 1);
    assert!(d.iter().all(|e| e["type"] != "response.completed"));
    assert_eq!(
        d.iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .count(),
        2
    );

    let r = post(&m, "/v1/responses", &[("x-mock-mode", "cut:1")], &body);
    assert!(!r.complete);
    let r = post(
        &m,
        "/v1/responses",
        &[("x-mock-mode", "unterminated")],
        &body,
    );
    assert!(r.complete);
    assert!(data(&events(&r))
        .iter()
        .all(|e| e["type"] != "response.completed"));
    let r = post(
        &m,
        "/v1/responses",
        &[("x-mock-mode", "preamble:error")],
        &body,
    );
    let names: Vec<String> = events(&r).into_iter().filter_map(|e| e.name).collect();
    assert_eq!(names, ["response.created", "response.in_progress", "error"]);
    let r = post(
        &m,
        "/v1/responses",
        &[("x-mock-mode", "garbage")],
        &create(false, json!({})),
    );
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    m.set_mode(Mode::Status(500));
    assert_eq!(req(&m, "GET", "/v1/responses/resp_x", &[], "").status, 500);
}
