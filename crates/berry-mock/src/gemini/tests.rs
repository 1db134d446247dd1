#![allow(clippy::unwrap_used)]
use serde_json::{json, Value};

use super::stream::{chunk_values, GeminiStream};
use super::*;
use crate::answer::Answer;
use crate::stream::Dialect as _;
use crate::tools::ToolCall;

fn route(m: &str, p: &str) -> Option<(Endpoint, Option<String>, bool)> {
    gemini_route(m, p).map(|r| (r.endpoint, r.model, r.explicit))
}

#[test]
fn routes() {
    let gen = route("POST", "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(
        gen,
        Some((
            Endpoint::GeminiGenerate,
            Some("gemini-2.5-flash".into()),
            true
        ))
    );
    assert_eq!(
        route("POST", "/v1/models/m:streamGenerateContent").map(|r| r.0),
        Some(Endpoint::GeminiStream)
    );
    assert_eq!(
        route("POST", "/v1beta/models/m:countTokens").map(|r| r.0),
        Some(Endpoint::GeminiCountTokens)
    );
    assert_eq!(
        route("POST", "/v1beta/models/m:embedContent").map(|r| r.0),
        Some(Endpoint::NotFound)
    );
    assert_eq!(
        route("GET", "/v1beta/models/m:generateContent").map(|r| r.0),
        Some(Endpoint::NotFound)
    );
    assert_eq!(
        route("POST", "/v1beta/models/:generateContent").map(|r| r.0),
        Some(Endpoint::NotFound)
    );
    assert_eq!(
        route("GET", "/v1beta/models"),
        Some((Endpoint::Models, None, false))
    );
    assert_eq!(
        route("GET", "/v1beta/models/m"),
        Some((Endpoint::GeminiModel, Some("m".into()), false))
    );
    assert_eq!(route("GET", "/v1/chat/completions"), None);
    assert_eq!(route("GET", "/v1beta/models/a/b"), None);
}

#[test]
fn errors_are_google_shaped() {
    let v: Value = serde_json::from_slice(&error_body(429, "slow \"down\"")).unwrap();
    assert_eq!(
        v,
        json!({"error": {"code": 429, "message": "slow \"down\"", "status": "RESOURCE_EXHAUSTED"}})
    );
    for (code, status) in [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (418, "FAILED_PRECONDITION"),
        (529, "UNKNOWN"),
    ] {
        assert_eq!(status_name(code), status);
    }
    let v: Value = serde_json::from_str(KEY_INVALID).unwrap();
    assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID");
}

fn ans(chunks: u32) -> Answer {
    Answer::new(7, "g", Default::default(), 40, chunks, false)
}

#[test]
fn bodies_and_usage() {
    let a = ans(3).with_cache(5, 0);
    let v = body::response_body(&a, "gem");
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "tok0 tok1 tok2 "
    );
    assert_eq!(v["candidates"][0]["content"]["role"], "model");
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        v["usageMetadata"],
        json!({"promptTokenCount": 16, "candidatesTokenCount": 3,
               "totalTokenCount": 19, "cachedContentTokenCount": 5})
    );
    assert_eq!(v["modelVersion"], "gem");
    assert_eq!(v["responseId"], "mockresp7");
    let v = body::response_body(&ans(1), "gem");
    assert!(v["usageMetadata"].get("cachedContentTokenCount").is_none());
    let call = ToolCall {
        name: "ls".into(),
        input: r#"{"dir":"."}"#.into(),
    };
    let v = body::response_body(&ans(1).with_tool(Some(call)), "gem");
    assert_eq!(
        v["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"name": "ls", "args": {"dir": "."}}}])
    );
    let c: Value = serde_json::from_str(&body::count_tokens_body(&ans(1))).unwrap();
    assert_eq!(c["totalTokens"], 11);
    let list: Value = serde_json::from_slice(&models_body(&["a".into(), "b".into()])).unwrap();
    assert_eq!(list["models"][1]["name"], "models/b");
}

#[test]
fn streams_in_both_framings() {
    for sse in [true, false] {
        let chunks = chunk_values(&GeminiStream::new(ans(3), "gem", sse), 3);
        assert_eq!(chunks.len(), 4, "sse={sse}");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str())
            .collect();
        assert_eq!(text, "tok0 tok1 tok2 ");
        assert!(chunks[..3]
            .iter()
            .all(|c| c["candidates"][0].get("finishReason").is_none()));
        assert_eq!(chunks[3]["candidates"][0]["finishReason"], "STOP");
        assert_eq!(chunks[3]["usageMetadata"]["candidatesTokenCount"], 3);
        assert_eq!(chunks[0]["usageMetadata"]["promptTokenCount"], 11);
        assert_eq!(chunks[0]["modelVersion"], "gem");
    }
    let s = GeminiStream::new(ans(2), "gem", false);
    let mut raw = s.content(0).to_vec();
    raw.extend_from_slice(&s.error_event());
    let v: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v[1]["error"]["status"], "INTERNAL");
    let s = GeminiStream::new(ans(2), "gem", true);
    let ev = String::from_utf8(s.error_event().to_vec()).unwrap();
    assert!(ev.starts_with("data: {\"error\":{\"code\":500"), "{ev}");
}

#[test]
fn structured_output_follows_the_schema() {
    let req = json!({"generationConfig": {"responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object", "properties": {
            "reasoning": {"type": "string"},
            "model_choice": {"type": "string", "enum": ["flash", "pro"]},
            "score": {"type": "integer", "minimum": 1, "maximum": 100}},
            "required": ["reasoning", "model_choice"]}}});
    let v: Value = serde_json::from_str(&structured_text(&req).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({"reasoning": "mock", "model_choice": "flash", "score": 1})
    );
    let req = json!({"generationConfig": {"responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER", "minimum": 5}}}}});
    assert_eq!(structured_text(&req).unwrap(), r#"{"n":5}"#);
    let req = json!({"generationConfig": {"responseMimeType": "application/json"}});
    assert_eq!(structured_text(&req).unwrap(), "{}");
    assert_eq!(structured_text(&json!({"generationConfig": {}})), None);
}

#[test]
fn gemini_tools() {
    let tools = json!([{"functionDeclarations": [
        {"name": "a", "parameters": {"type": "OBJECT", "properties": {"q": {"type": "STRING"}}}},
        {"name": "b", "parametersJsonSchema": {"type": "object", "properties": {"n": {"type": "number"}}}}
    ]}, {"googleSearch": {}}]);
    let call = |choice: Value, wanted: Option<&str>| {
        requested_call(ToolShape::Gemini, Some(&tools), Some(&choice), wanted, None)
    };
    assert_eq!(call(json!({"mode": "AUTO"}), None), Ok(None));
    let c = call(json!({"mode": "ANY"}), None).unwrap().unwrap();
    assert_eq!(
        (c.name.as_str(), c.input.as_str()),
        ("a", r#"{"q":"mock"}"#)
    );
    let c = call(json!({"mode": "ANY", "allowedFunctionNames": ["b"]}), None);
    assert_eq!(c.unwrap().unwrap().input, r#"{"n":1}"#);
    assert_eq!(call(json!({}), Some("b")).unwrap().unwrap().name, "b");
    assert!(call(json!({}), Some("zz")).is_err());
    let after = json!({"contents": [
        {"role": "user", "parts": [{"text": "ls"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "a", "response": {"output": "f.txt"}}}]}
    ]});
    assert_eq!(
        tool_output_reply(ToolShape::Gemini, &after).as_deref(),
        Some("tool output: f.txt")
    );
    let other = json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "a", "response": {"error": "x"}}}]}]});
    assert_eq!(
        tool_output_reply(ToolShape::Gemini, &other).as_deref(),
        Some(r#"tool output: {"error":"x"}"#)
    );
    assert_eq!(
        tool_output_reply(
            ToolShape::Gemini,
            &json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        ),
        None
    );
}
