//! The native Gemini API of the mock: generateContent, both stream framings,
//! countTokens, the model list, Google's key handling and error shapes, function calls,
//! structured output and the fault modes.

mod support;

use berry_mock::{MockOptions, Mode};
use serde_json::{json, Value};
use support::{events, mock, post, req, start};

const GEN: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
const STREAM_SSE: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
const STREAM_ARRAY: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";

fn body(extra: Value) -> String {
    let mut b = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    if let (Some(o), Value::Object(e)) = (b.as_object_mut(), extra) {
        o.extend(e);
    }
    b.to_string()
}

fn sse_chunks(r: &support::Resp) -> Vec<Value> {
    events(r).iter().map(support::Event::json).collect()
}

fn text_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect()
}

#[test]
fn generate_content() {
    let m = mock();
    let b = body(json!({"systemInstruction": {"parts": [{"text": "be brief"}]}}));
    let r = post(&m, GEN, &[("x-mock-cache-read", "3")], &b);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(
        c["content"]["parts"][0]["text"],
        "tok0 tok1 tok2 tok3 tok4 "
    );
    assert_eq!(
        (c["finishReason"].as_str(), c["index"].as_u64()),
        (Some("STOP"), Some(0))
    );
    let p = support::p_of(&b);
    assert_eq!(
        v["usageMetadata"],
        json!({"promptTokenCount": p + 3, "candidatesTokenCount": 5,
               "totalTokenCount": p + 8, "cachedContentTokenCount": 3})
    );
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");
    assert!(v["responseId"].as_str().is_some_and(|s| !s.is_empty()));
    // The POST methods also under /v1/, and a `models/`-less model name is kept.
    let r = post(
        &m,
        "/v1/models/other:generateContent",
        &[],
        &body(json!({})),
    );
    assert_eq!(r.json()["modelVersion"], "other");
}

#[test]
fn streams_sse_and_json_array() {
    let m = mock();
    let r = post(&m, STREAM_SSE, &[], &body(json!({})));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let chunks = sse_chunks(&r);
    assert_eq!(chunks.len(), 6);
    assert!(events(&r).iter().all(|e| e.name.is_none()));
    assert_eq!(text_of(&chunks), "tok0 tok1 tok2 tok3 tok4 ");
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 5);
    assert!(chunks[..5]
        .iter()
        .all(|c| c["candidates"][0].get("finishReason").is_none()));
    assert_eq!(m.last_request().unwrap().query_param("alt"), Some("sse"));

    let r = post(
        &m,
        STREAM_ARRAY,
        &[("x-mock-chunks", "2")],
        &body(json!({})),
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.chunks.len() >= 2, "streamed element by element");
    let arr = r.json();
    let arr = arr.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(text_of(arr), "tok0 tok1 ");
    assert_eq!(arr[2]["candidates"][0]["finishReason"], "STOP");
}

#[test]
fn count_tokens_and_models() {
    let m = start(MockOptions {
        models: vec!["gemini-2.5-flash".into(), "gemini-2.5-pro".into()],
        ..MockOptions::default()
    });
    let b = body(json!({}));
    let r = post(&m, "/v1beta/models/gemini-2.5-flash:countTokens", &[], &b);
    assert_eq!(r.json()["totalTokens"], support::p_of(&b));
    let wrapped = json!({"generateContentRequest": {"model": "models/x", "contents": []}});
    let r = post(
        &m,
        "/v1beta/models/x:countTokens",
        &[],
        &wrapped.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = req(&m, "GET", "/v1beta/models", &[], "");
    let v = r.json();
    assert_eq!(v["models"][1]["name"], "models/gemini-2.5-pro");
    assert_eq!(
        v["models"][0]["supportedGenerationMethods"][0],
        "generateContent"
    );
    let r = req(&m, "GET", "/v1beta/models/gemini-2.5-pro", &[], "");
    assert_eq!(r.json()["name"], "models/gemini-2.5-pro");
    // OpenAI's list keeps its shape; Google's OpenAI-compatible endpoint too.
    assert_eq!(
        req(&m, "GET", "/v1/models", &[], "").json()["object"],
        "list"
    );
    let r = req(&m, "GET", "/v1beta/openai/models", &[], "");
    assert_eq!(r.json()["object"], "list");
    // With a Google key, /v1/models is Gemini's list.
    let r = req(&m, "GET", "/v1/models", &[("x-goog-api-key", "k")], "");
    assert!(r.json()["models"].is_array());
}

#[test]
fn google_keys_and_errors() {
    let m = start(MockOptions {
        expected_api_key: Some("AIza-good".into()),
        chunk_interval: std::time::Duration::ZERO,
        ..MockOptions::default()
    });
    let b = body(json!({}));
    let r = post(&m, GEN, &[("x-goog-api-key", "AIza-good")], &b);
    assert_eq!(r.status, 200);
    assert_eq!(
        m.last_request().unwrap().header("x-goog-api-key"),
        Some("AIza-good")
    );
    let r = post(&m, &format!("{GEN}?key=AIza-good"), &[], &b);
    assert_eq!(r.status, 200);
    let r = post(&m, GEN, &[("x-goog-api-key", "AIza-bad")], &b);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["details"][0]["reason"], "API_KEY_INVALID");
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    // A Bearer token is not a Google API key.
    let r = post(&m, GEN, &[("authorization", "Bearer AIza-good")], &b);
    assert_eq!(
        (r.status, r.json()["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );

    let m = mock();
    let status = |path: &str, b: &str| {
        let r = post(&m, path, &[], b);
        (
            r.status,
            r.json()["error"]["status"].as_str().map(str::to_string),
            r.json()["error"]["code"].as_u64(),
        )
    };
    let bad = |_: &str| (400, Some("INVALID_ARGUMENT".to_string()), Some(400));
    assert_eq!(status(GEN, "[1]"), bad(""));
    assert_eq!(status(GEN, "{}"), bad(""));
    assert_eq!(status(GEN, r#"{"contents":[]}"#), bad(""));
    assert_eq!(
        status("/v1beta/models/m:embedContent", &b),
        (404, Some("NOT_FOUND".into()), Some(404))
    );
    for (mode, code, name) in [
        ("429", 429, "RESOURCE_EXHAUSTED"),
        ("503", 503, "UNAVAILABLE"),
        ("500", 500, "INTERNAL"),
        ("401", 401, "UNAUTHENTICATED"),
    ] {
        let r = post(
            &m,
            GEN,
            &[("x-mock-mode", mode), ("x-mock-retry-after", "7")],
            &b,
        );
        assert_eq!(r.status, code);
        assert_eq!(r.json()["error"]["status"], name, "{mode}");
        assert_eq!(r.json()["error"]["code"], code);
        if code == 429 {
            assert_eq!(r.header("retry-after"), Some("7"));
        }
    }
    for mode in ["gemini-bad-key", "bad-key"] {
        let r = post(&m, GEN, &[("x-mock-mode", mode)], &b);
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json()["error"]["details"][0]["reason"],
            "API_KEY_INVALID",
            "{mode}"
        );
    }
    // Google's OpenAI-compatible endpoint keeps the list-wrapped form.
    let r = post(
        &m,
        "/v1beta/openai/chat/completions",
        &[("x-mock-mode", "gemini-bad-key")],
        "{}",
    );
    assert_eq!(
        r.json()[0]["error"]["details"][0]["reason"],
        "API_KEY_INVALID"
    );
}

#[test]
fn function_calls_and_the_turn_after() {
    let m = mock();
    let tools = json!([{"functionDeclarations": [{"name": "run_shell_command",
        "parametersJsonSchema": {"type": "object", "properties": {"command": {"type": "string"}}}}]}]);
    let hdrs = [
        ("x-mock-tool-use", "run_shell_command"),
        ("x-mock-tool-input", r#"{"command":"ls"}"#),
    ];
    let b = body(json!({"tools": tools}));
    let r = post(&m, GEN, &hdrs, &b);
    let part = &r.json()["candidates"][0]["content"]["parts"][0];
    assert_eq!(
        part["functionCall"],
        json!({"name": "run_shell_command", "args": {"command": "ls"}})
    );
    let r = post(&m, STREAM_SSE, &hdrs, &b);
    let chunks = sse_chunks(&r);
    assert_eq!(chunks.len(), 2, "{}", r.text());
    assert_eq!(
        chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "run_shell_command"
    );
    assert_eq!(chunks[1]["candidates"][0]["finishReason"], "STOP");
    // Forced by the function-calling config.
    let forced =
        body(json!({"tools": tools, "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}));
    let r = post(&m, GEN, &[], &forced);
    let call = &r.json()["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["args"], json!({"command": "mock"}));
    // The turn after the call.
    let after = json!({"tools": tools, "contents": [
        {"role": "user", "parts": [{"text": "list"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "run_shell_command", "args": {"command": "ls"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "run_shell_command", "response": {"output": "a.txt"}}}]}
    ]});
    let r = post(&m, STREAM_SSE, &hdrs, &after.to_string());
    assert_eq!(text_of(&sse_chunks(&r)), "tool output: a.txt");
    let r = post(&m, GEN, &[("x-mock-tool-use", "nope")], &b);
    assert_eq!(r.status, 400);
}

#[test]
fn structured_output_for_the_router() {
    let m = mock();
    let b = body(
        json!({"generationConfig": {"responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object", "properties": {
            "reasoning": {"type": "string"}, "model_choice": {"type": "string", "enum": ["flash", "pro"]}},
            "required": ["reasoning", "model_choice"]}}}),
    );
    let r = post(&m, GEN, &[], &b);
    let text = r.json()["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v, json!({"reasoning": "mock", "model_choice": "flash"}));
    let r = post(&m, STREAM_SSE, &[], &b);
    let streamed: Value = serde_json::from_str(&text_of(&sse_chunks(&r))).unwrap();
    assert_eq!(streamed, v);
}

#[test]
fn fault_modes_on_streams_and_bodies() {
    let m = mock();
    let b = body(json!({}));
    let with = |path: &str, mode: &str| post(&m, path, &[("x-mock-mode", mode)], &b);
    // In-band error after one chunk: an SSE error chunk, or the array's last element.
    let r = with(STREAM_SSE, "error-event:1");
    let chunks = sse_chunks(&r);
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[1]["error"]["status"], "INTERNAL");
    assert!(r.complete);
    let r = with(STREAM_ARRAY, "error-event:1");
    let arr = r.json();
    assert_eq!(arr[1]["error"]["code"], 500);
    assert_eq!(arr.as_array().unwrap().len(), 2);
    // Cut mid-chunk and closed mid-stream: the body ends early.
    let r = with(STREAM_SSE, "cut:2");
    assert!(!r.complete);
    assert_eq!(sse_chunks(&r).len(), 2);
    let r = with(STREAM_SSE, "close:1");
    assert!(!r.complete);
    let r = with(GEN, "close");
    assert!(!r.complete);
    // No finish chunk.
    let r = with(STREAM_SSE, "unterminated");
    let chunks = sse_chunks(&r);
    assert_eq!(chunks.len(), 5);
    assert!(chunks
        .iter()
        .all(|c| c["candidates"][0].get("finishReason").is_none()));
    let r = with(STREAM_ARRAY, "unterminated");
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    // Garbage.
    let r = with(STREAM_SSE, "garbage");
    assert!(r.text().contains("NOT SSE"));
    let r = with(GEN, "garbage");
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    // Preamble faults: Google sends nothing before the first chunk.
    let r = with(STREAM_SSE, "preamble:error");
    let chunks = sse_chunks(&r);
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0]["error"]["code"], 500);
    // A stall: the head comes only after the delay.
    let t0 = std::time::Instant::now();
    let r = post(&m, GEN, &[("x-mock-delay-ms", "30")], &b);
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() >= std::time::Duration::from_millis(30));
    m.set_mode(Mode::Status(503));
    let r = post(&m, STREAM_SSE, &[], &b);
    assert_eq!(
        (r.status, r.json()["error"]["status"].as_str()),
        (503, Some("UNAVAILABLE"))
    );
}
