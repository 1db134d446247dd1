//! Unit tests of the Gemini mappings (requests, answers, streams).

use super::*;
use crate::translate::UpstreamBroken;
use serde_json::{json, Value};

fn rcx(stream: bool) -> RequestContext<'static> {
    RequestContext {
        model: "real",
        stream,
    }
}

fn chat(body: &Value) -> Value {
    let t = to_chat(body.to_string().as_bytes(), &rcx(false)).unwrap();
    serde_json::from_slice(&t.body).unwrap()
}

fn msgs(body: &Value) -> Value {
    let t = to_messages(body.to_string().as_bytes(), &rcx(false)).unwrap();
    serde_json::from_slice(&t.body).unwrap()
}

fn refused(body: &Value) -> (String, String) {
    let a = to_chat(body.to_string().as_bytes(), &rcx(false)).unwrap_err();
    let b = to_messages(body.to_string().as_bytes(), &rcx(false)).unwrap_err();
    assert_eq!(a.param, b.param);
    (a.param, a.message)
}

fn call(name: &str, args: Value) -> Value {
    json!({"functionCall": {"name": name, "args": args}})
}

fn resp(name: &str, r: Value) -> Value {
    json!({"functionResponse": {"name": name, "response": r}})
}

/// Two calls of one function, answered in order, then a call of another.
fn tool_loop() -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "be brief"}, {"text": "really"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "read a and b"}]},
            {"role": "model", "parts": [
                {"text": "thinking...", "thought": true},
                {"text": "sure"},
                call("read", json!({"p": "a"})),
                call("read", json!({"p": "b"})),
                call("ls", json!({})),
            ]},
            {"role": "user", "parts": [
                resp("ls", json!({"output": "x"})),
                resp("read", json!({"output": "A"})),
                resp("read", json!({"output": "B"})),
                {"text": "thanks"}
            ]}
        ],
        "tools": [{"functionDeclarations": [
            {"name": "read", "description": "reads", "parameters": {"type": "OBJECT",
                "properties": {"p": {"type": "STRING"}}, "required": ["p"]}},
            {"name": "ls", "parametersJsonSchema": {"type": "object", "properties": {}}}
        ]}, {"googleSearch": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["read"]}},
        "generationConfig": {"temperature": 1.5, "topP": 0.9, "topK": 40, "maxOutputTokens": 9000,
            "stopSequences": ["END"], "seed": 3, "thinkingConfig": {"thinkingBudget": 8192}},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    })
}

#[test]
fn chat_request_maps_turns_calls_and_settings() {
    let v = chat(&tool_loop());
    let m = v["messages"].as_array().unwrap();
    assert_eq!(
        m[0],
        json!({"role": "system", "content": "be brief\nreally"})
    );
    assert_eq!(m[1], json!({"role": "user", "content": "read a and b"}));
    assert_eq!(m[2]["role"], "assistant");
    assert_eq!(m[2]["content"], "sure");
    let calls = m[2]["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["id"], "call_0");
    assert_eq!(calls[1]["id"], "call_1");
    assert_eq!(calls[2]["id"], "call_2");
    assert_eq!(calls[0]["function"]["arguments"], r#"{"p":"a"}"#);
    // Pairing by name: ls → call_2, the first read → call_0, the second → call_1.
    assert_eq!(m[3]["tool_call_id"], "call_2");
    assert_eq!(m[3]["content"], r#"{"output":"x"}"#);
    assert_eq!(m[4]["tool_call_id"], "call_0");
    assert_eq!(m[4]["content"], r#"{"output":"A"}"#);
    assert_eq!(m[5]["tool_call_id"], "call_1");
    assert_eq!(m[6], json!({"role": "user", "content": "thanks"}));
    assert_eq!(m.len(), 7);
    assert_eq!(v["tools"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["tools"][0]["function"]["parameters"],
        json!({"type": "object", "properties": {"p": {"type": "string"}}, "required": ["p"]})
    );
    assert_eq!(
        v["tool_choice"],
        json!({"type": "function", "function": {"name": "read"}})
    );
    assert_eq!(v["temperature"], 1.5);
    assert_eq!(v["top_p"], 0.9);
    assert_eq!(v["max_completion_tokens"], 9000);
    assert_eq!(v["stop"], json!(["END"]));
    assert_eq!(v["reasoning_effort"], "medium");
    assert_eq!(v["model"], "real");
    for k in ["seed", "top_k", "stream", "stream_options"] {
        assert!(v.get(k).is_none(), "{k}");
    }
}

#[test]
fn messages_request_maps_turns_calls_and_settings() {
    let v = msgs(&tool_loop());
    assert_eq!(v["system"], "be brief\nreally");
    let m = v["messages"].as_array().unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(m[1]["content"][0], json!({"type": "text", "text": "sure"}));
    assert_eq!(
        m[1]["content"][1],
        json!({"type": "tool_use", "id": "call_0", "name": "read", "input": {"p": "a"}})
    );
    let user = m[2]["content"].as_array().unwrap();
    assert_eq!(user[0]["type"], "tool_result");
    assert_eq!(user[0]["tool_use_id"], "call_2");
    assert_eq!(user[1]["tool_use_id"], "call_0");
    assert_eq!(user[2]["tool_use_id"], "call_1");
    assert_eq!(user[2]["content"], r#"{"output":"B"}"#);
    assert_eq!(user[3], json!({"type": "text", "text": "thanks"}));
    assert_eq!(v["tool_choice"], json!({"type": "tool", "name": "read"}));
    // A forced tool turns thinking off; temperature is capped at 1.
    assert!(v.get("thinking").is_none());
    assert_eq!(v["temperature"], 1.0);
    assert_eq!(v["max_tokens"], 9000);
    assert_eq!(v["stop_sequences"], json!(["END"]));
}

#[test]
fn thinking_budgets_for_anthropic() {
    for (cfg, max, budget) in [
        (json!({"thinkingBudget": 8192}), json!(12288), json!(8192)),
        (json!({"thinkingBudget": -1}), json!(8192), json!(4096)),
        (json!({"thinkingLevel": "HIGH"}), json!(20480), json!(16384)),
        (json!({"thinkingLevel": "low"}), json!(5120), json!(1024)),
        (json!({"thinkingBudget": 0}), json!(4096), Value::Null),
        (json!({"thinkingBudget": 500}), json!(4596), json!(500)),
    ] {
        let v = msgs(&json!({"contents": [{"parts": [{"text": "hi"}]}],
            "generationConfig": {"thinkingConfig": cfg, "temperature": 0.5}}));
        assert_eq!(v["max_tokens"], max, "{cfg}");
        assert_eq!(v["thinking"]["budget_tokens"], budget, "{cfg}");
        assert_eq!(v.get("temperature").is_some(), budget.is_null(), "{cfg}");
    }
    // With maxOutputTokens the budget stays below it (off when below the minimum).
    let v = msgs(&json!({"contents": [{"parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": 2000, "thinkingConfig": {"thinkingBudget": 8192}}}));
    assert_eq!(v["thinking"]["budget_tokens"], 1999);
    let v = msgs(&json!({"contents": [{"parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": 500, "thinkingConfig": {"thinkingBudget": 8192}}}));
    assert!(v.get("thinking").is_none());
}

#[test]
fn json_answers() {
    let router = json!({
        "contents": [{"role": "user", "parts": [{"text": "classify"}]}],
        "generationConfig": {"responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object", "properties": {"model_choice": {"type": "string",
                "enum": ["flash", "pro"]}}, "required": ["model_choice"]},
            "thinkingConfig": {"thinkingBudget": 1024}}
    });
    let c = chat(&router);
    assert_eq!(c["response_format"]["type"], "json_schema");
    assert_eq!(c["response_format"]["json_schema"]["name"], "response");
    assert_eq!(
        c["response_format"]["json_schema"]["schema"],
        router["generationConfig"]["responseJsonSchema"]
    );
    let m = msgs(&router);
    assert_eq!(m["tools"][0]["name"], "respond_with_json");
    assert_eq!(
        m["tools"][0]["input_schema"],
        router["generationConfig"]["responseJsonSchema"]
    );
    assert_eq!(
        m["tool_choice"],
        json!({"type": "tool", "name": "respond_with_json"})
    );
    assert!(m.get("thinking").is_none());
    // responseSchema in the OpenAPI subset is converted; no schema → json_object.
    let c = chat(
        &json!({"contents": [], "generationConfig": {"responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "INTEGER"}}}}}),
    );
    assert_eq!(
        c["response_format"]["json_schema"]["schema"],
        json!({"type": "object", "properties": {"a": {"type": "integer"}}})
    );
    let c = chat(
        &json!({"contents": [], "generationConfig": {"responseMimeType": "application/json"}}),
    );
    assert_eq!(c["response_format"], json!({"type": "json_object"}));
    // A non-object schema cannot be a tool's input.
    let e = to_messages(
        json!({"contents": [], "generationConfig": {"responseMimeType": "application/json",
            "responseSchema": {"type": "ARRAY", "items": {"type": "STRING"}}}})
        .to_string()
        .as_bytes(),
        &rcx(false),
    )
    .unwrap_err();
    assert_eq!(e.param, "generationConfig");
}

#[test]
fn media_parts() {
    let body = json!({"contents": [{"role": "user", "parts": [
        {"text": "see"},
        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
        {"fileData": {"fileUri": "https://x.test/a.jpg"}},
    ]}]});
    let c = chat(&body);
    let parts = &c["messages"][0]["content"];
    assert_eq!(parts[1]["image_url"]["url"], "data:image/png;base64,AAAA");
    assert_eq!(parts[2]["image_url"]["url"], "https://x.test/a.jpg");
    let m = msgs(&body);
    let blocks = &m["messages"][0]["content"];
    assert_eq!(
        blocks[1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "AAAA"})
    );
    assert_eq!(
        blocks[2]["source"],
        json!({"type": "url", "url": "https://x.test/a.jpg"})
    );
    let pdf = json!({"contents": [{"parts": [
        {"inlineData": {"mimeType": "application/pdf", "data": "AAAA"}}]}]});
    assert_eq!(msgs(&pdf)["messages"][0]["content"][0]["type"], "document");
    let e = to_chat(pdf.to_string().as_bytes(), &rcx(false)).unwrap_err();
    assert_eq!(e.param, "contents");
}

#[test]
fn refusals_name_the_field() {
    let hi = json!([{"parts": [{"text": "hi"}]}]);
    for (gen, what) in [
        (json!({"candidateCount": 2}), "candidateCount"),
        (json!({"responseLogprobs": true}), "responseLogprobs"),
        (json!({"logprobs": 3}), "logprobs"),
        (
            json!({"responseMimeType": "text/x.enum"}),
            "responseMimeType",
        ),
    ] {
        let (param, message) = refused(&json!({"contents": hi, "generationConfig": gen}));
        assert_eq!(param, "generationConfig");
        assert!(message.contains(what), "{message}");
    }
    let (param, _) = refused(&json!({"contents": hi, "cachedContent": "cachedContents/x"}));
    assert_eq!(param, "cachedContent");
    for contents in [
        json!([{"role": "user", "parts": [resp("f", json!({}))]}]),
        json!([{"role": "model", "parts": [call("f", json!({}))]},
            {"role": "user", "parts": [resp("g", json!({}))]}]),
        json!([{"role": "model", "parts": [call("f", json!({}))]},
            {"role": "user", "parts": [resp("f", json!({})), resp("f", json!({}))]}]),
        json!([{"role": "user", "parts": [call("f", json!({}))]}]),
        json!([{"role": "system", "parts": [{"text": "x"}]}]),
        json!([{"parts": [{"text": 3}]}]),
        json!([{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "AA"}}]}]),
        json!([{"parts": [{"fileData": {"fileUri": "gs://b/a.png"}}]}]),
        json!([{"parts": [{"executableCode": {"code": "1"}}]}]),
        json!([{"parts": [{"whatever": 1}]}]),
        json!({"not": "a list"}),
    ] {
        let (param, _) = refused(&json!({ "contents": contents }));
        assert_eq!(param, "contents", "{contents}");
    }
    let e = to_chat(b"[1]", &rcx(false)).unwrap_err();
    assert_eq!(e.param, "");
}

#[test]
fn response_ids_pair_before_names() {
    let v = chat(&json!({"contents": [
        {"role": "model", "parts": [
            {"functionCall": {"id": "a", "name": "f", "args": {}}},
            {"functionCall": {"id": "b", "name": "f", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"id": "b", "name": "f", "response": {"r": 2}}},
            {"functionResponse": {"name": "f", "response": {"r": 1}}}]}
    ]}));
    assert_eq!(v["messages"][1]["tool_call_id"], "call_1");
    assert_eq!(v["messages"][2]["tool_call_id"], "call_0");
}

#[test]
fn text_is_copied_verbatim_and_streams_ask_for_usage() {
    let body = br#"{"contents":[{"role":"user","parts":[{"text":"x\u00e9\/"}]}],"system_instruction":{"parts":[{"text":"s\n"}]}}"#;
    let t = to_chat(body, &rcx(true)).unwrap();
    let s = String::from_utf8(t.body).unwrap();
    assert!(s.contains(r#""content":"x\u00e9\/""#), "{s}");
    assert!(s.contains(r#""content":"s\n""#), "{s}");
    assert!(
        s.contains(r#""stream":true,"stream_options":{"include_usage":true}"#),
        "{s}"
    );
    let t = to_messages(body, &rcx(true)).unwrap();
    let s = String::from_utf8(t.body).unwrap();
    assert!(s.contains(r#""text":"x\u00e9\/""#), "{s}");
    assert!(s.contains(r#""stream":true"#), "{s}");
}

#[test]
fn tool_modes() {
    let decl = json!([{"functionDeclarations": [{"name": "f"}, {"name": "g"}]}]);
    for (mode, names, want_chat, want_msgs) in [
        ("AUTO", json!(null), json!("auto"), json!({"type": "auto"})),
        ("NONE", json!(null), json!("none"), json!({"type": "none"})),
        (
            "ANY",
            json!(["f", "g"]),
            json!("required"),
            json!({"type": "any"}),
        ),
        (
            "ANY",
            json!(null),
            json!("required"),
            json!({"type": "any"}),
        ),
    ] {
        let body = json!({"contents": [{"parts": [{"text": "hi"}]}], "tools": decl,
            "toolConfig": {"functionCallingConfig": {"mode": mode, "allowedFunctionNames": names}}});
        assert_eq!(chat(&body)["tool_choice"], want_chat, "{mode}");
        assert_eq!(msgs(&body)["tool_choice"], want_msgs, "{mode}");
    }
    let v = chat(&json!({"contents": [], "tools": decl}));
    assert_eq!(
        v["tools"][0]["function"]["parameters"],
        json!({"type": "object", "properties": {}})
    );
    // Without function declarations there is no tool choice.
    let v = chat(&json!({"contents": [], "tools": [{"codeExecution": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}));
    assert!(v.get("tools").is_none() && v.get("tool_choice").is_none());
}

#[test]
fn count_tokens_bodies() {
    let cx = rcx(false);
    let a = count_tokens_to_messages(br#"{"contents":[{"parts":[{"text":"hi"}]}]}"#, &cx).unwrap();
    let a: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(
        a,
        json!({"model": "real", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
    );
    let b = count_tokens_to_messages(
        br#"{"generateContentRequest":{"model":"models/x","contents":[{"parts":[{"text":"hi"}]}],"systemInstruction":{"parts":[{"text":"s"}]}}}"#,
        &cx,
    )
    .unwrap();
    let b: Value = serde_json::from_slice(&b.body).unwrap();
    assert_eq!(b["system"], "s");
    assert_eq!(b["messages"], a["messages"]);
    assert_eq!(
        count_tokens_from_messages(br#"{"input_tokens":12}"#).unwrap(),
        br#"{"totalTokens":12}"#
    );
    assert!(count_tokens_from_messages(b"{}").is_err());
}

fn acx(sse: bool) -> AnswerContext {
    AnswerContext::new("real".into(), "r1".into(), sse)
}

#[test]
fn chat_answers() {
    let body = br#"{"choices":[{"message":{"content":"hi \u00e9","tool_calls":[
        {"id":"x","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
        "finish_reason":"tool_calls"}],
        "usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4},
        "completion_tokens_details":{"reasoning_tokens":2}}}"#;
    let (out, usage) = from_chat(body, &acx(false)).unwrap();
    let s = String::from_utf8(out.clone()).unwrap();
    assert!(s.contains(r#""text":"hi \u00e9""#), "{s}");
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        json!({"candidates": [{"content": {"parts": [{"text": "hi é"},
            {"functionCall": {"name": "f", "args": {"a": 1}}}], "role": "model"},
            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3,
                "cachedContentTokenCount": 4, "thoughtsTokenCount": 2, "totalTokenCount": 15},
            "modelVersion": "real", "responseId": "r1"})
    );
    assert_eq!((usage.input, usage.cache_read, usage.output), (6, 4, 5));
    let bad = br#"{"choices":[{"message":{"content":null,"tool_calls":[
        {"id":"x","function":{"name":"f","arguments":"{\"a\":"}}]},"finish_reason":"tool_calls"}]}"#;
    let v: Value = serde_json::from_slice(&from_chat(bad, &acx(false)).unwrap().0).unwrap();
    assert_eq!(
        v["candidates"][0]["finishReason"],
        "MALFORMED_FUNCTION_CALL"
    );
    assert!(v["candidates"][0]["content"].get("parts").is_none());
    for (fr, want) in [
        ("length", "MAX_TOKENS"),
        ("content_filter", "SAFETY"),
        ("weird", "OTHER"),
    ] {
        let b =
            format!(r#"{{"choices":[{{"message":{{"content":"x"}},"finish_reason":"{fr}"}}]}}"#);
        let v: Value =
            serde_json::from_slice(&from_chat(b.as_bytes(), &acx(false)).unwrap().0).unwrap();
        assert_eq!(v["candidates"][0]["finishReason"], want);
    }
    assert!(from_chat(b"{}", &acx(false)).is_err());
    assert!(from_chat(br#"{"choices":[]}"#, &acx(false)).is_err());
}

#[test]
fn messages_answers() {
    let body = br#"{"id":"m","type":"message","model":"c","content":[
        {"type":"thinking","thinking":"hmm","signature":"s"},
        {"type":"text","text":"ok"},
        {"type":"tool_use","id":"t","name":"f","input":{"a":[1]}}],
        "stop_reason":"tool_use",
        "usage":{"input_tokens":3,"cache_read_input_tokens":4,"cache_creation_input_tokens":5,"output_tokens":6}}"#;
    let (out, usage) = from_messages(body, &acx(false)).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"],
        json!([{"text": "ok"}, {"functionCall": {"name": "f", "args": {"a": [1]}}}])
    );
    assert_eq!(
        v["usageMetadata"],
        json!({"promptTokenCount": 12, "candidatesTokenCount": 6, "cachedContentTokenCount": 4,
            "totalTokenCount": 18})
    );
    assert_eq!(
        (usage.input, usage.cache_read, usage.cache_write),
        (3, 4, 5)
    );
    let mut cx = acx(false);
    cx.include_thoughts = true;
    let v: Value = serde_json::from_slice(&from_messages(body, &cx).unwrap().0).unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0],
        json!({"text": "hmm", "thought": true})
    );
    // The JSON-answer tool is answered as text holding its input.
    let json_answer = br#"{"id":"m","model":"c","content":[{"type":"tool_use","id":"t",
        "name":"respond_with_json","input":{"model_choice":"flash"}}],"stop_reason":"tool_use"}"#;
    let cx = AnswerContext::for_request(
        br#"{"generationConfig":{"responseMimeType":"application/json"}}"#,
        "real".into(),
        "r1".into(),
        false,
    );
    assert!(cx.json_answer && !cx.include_thoughts);
    let v: Value = serde_json::from_slice(&from_messages(json_answer, &cx).unwrap().0).unwrap();
    let text = v["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        json!({"model_choice": "flash"})
    );
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert!(from_messages(br#"{"type":"other","id":"m","model":"c"}"#, &acx(false)).is_err());
}

fn run<T: crate::translate::stream::EventTranslator>(
    s: &mut crate::translate::stream::StreamTranslator<T>,
    chunks: &[&[u8]],
) -> (Vec<u8>, Result<(), UpstreamBroken>) {
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = s.feed(c, &mut out) {
            return (out, Err(e));
        }
    }
    let f = s.finish();
    (out, f)
}

const CHAT_STREAM: &[u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"d\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n\
data: [DONE]\n\n";

#[test]
fn chat_stream_sse_and_array() {
    let mut s = new_chat_stream(acx(true));
    let (out, fin) = run(&mut s, &[CHAT_STREAM]);
    fin.unwrap();
    assert!(s.started_content());
    assert_eq!(s.usage().unwrap().output, 3);
    let text = String::from_utf8(out.clone()).unwrap();
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter(|c| !c.is_empty())
        .map(|c| serde_json::from_str(c.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let parts: Vec<Value> = chunks
        .iter()
        .map(|c| c["candidates"][0]["content"]["parts"].clone())
        .collect();
    assert_eq!(
        parts,
        [
            json!([{"text": "Hel"}]),
            json!([{"text": "lo"}]),
            json!([{"functionCall": {"name": "f", "args": {"a": 1}}}]),
            json!([{"functionCall": {"name": "g", "args": {}}}]),
            Value::Null,
        ]
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 10);
    assert!(chunks[0].get("usageMetadata").is_none());

    let mut a = new_chat_stream(acx(false));
    let (arr, fin) = run(&mut a, &[CHAT_STREAM]);
    fin.unwrap();
    assert!(arr.starts_with(b"[{") && arr.ends_with(b"}]"));
    assert!(!a.state().array_open());
    let v: Vec<Value> = serde_json::from_slice(&arr).unwrap();
    assert_eq!(v, chunks);
    // Split anywhere: the same bytes.
    for k in 0..CHAT_STREAM.len() {
        let mut s = new_chat_stream(acx(false));
        let (o, f) = run(&mut s, &[&CHAT_STREAM[..k], &CHAT_STREAM[k..]]);
        f.unwrap();
        assert_eq!(o, arr, "split at {k}");
    }
}

#[test]
fn chat_stream_errors_and_cuts() {
    let input = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n\
data: {\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n";
    let mut s = new_chat_stream(acx(false));
    let (out, fin) = run(&mut s, &[input]);
    assert!(fin.is_err());
    assert!(s.saw_error());
    assert!(!s.state().array_open());
    let v: Vec<Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v[1],
        json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}})
    );
    // Cut before [DONE]: incomplete, the array left open for the gateway's error chunk.
    let mut s = new_chat_stream(acx(false));
    let (mut out, fin) = run(&mut s, &[&CHAT_STREAM[..200]]);
    assert!(fin.is_err());
    assert!(s.state().array_open());
    out.extend(stream_error_chunk(false, true, 502, "cut"));
    let v: Vec<Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(v.last().unwrap()["error"]["status"], "UNAVAILABLE");
    // Preamble only: nothing written, not started.
    let mut s = new_chat_stream(acx(true));
    let (out, _) = run(&mut s, &[&CHAT_STREAM[..90]]);
    assert!(out.is_empty() && !s.started_content());
    for bad in [&b"data: [DONE]\n\n"[..], b"data: nope\n\n", b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"x\"}}]}}]}\n\n"] {
        let mut s = new_chat_stream(acx(true));
        assert!(run(&mut s, &[bad]).1.is_err());
    }
}

const MSG_STREAM: &[u8] = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":[],\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":2,\"output_tokens\":1}}}\n\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\":1}\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

#[test]
fn messages_stream_chunks() {
    let mut cx = acx(true);
    cx.include_thoughts = true;
    let mut s = new_messages_stream(cx);
    let (out, fin) = run(&mut s, &[MSG_STREAM]);
    fin.unwrap();
    let text = String::from_utf8(out).unwrap();
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter(|c| !c.is_empty())
        .map(|c| serde_json::from_str(c.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let parts: Vec<Value> = chunks
        .iter()
        .map(|c| c["candidates"][0]["content"]["parts"].clone())
        .collect();
    assert_eq!(
        parts,
        [
            json!([{"text": "hm", "thought": true}]),
            json!([{"text": "Hi"}]),
            json!([{"functionCall": {"name": "f", "args": {"a": 1}}}]),
            Value::Null,
        ]
    );
    assert_eq!(
        chunks[3]["usageMetadata"],
        json!({"promptTokenCount": 7, "candidatesTokenCount": 9, "cachedContentTokenCount": 2,
            "totalTokenCount": 16})
    );
    for k in 0..MSG_STREAM.len() {
        let mut cx = acx(true);
        cx.include_thoughts = true;
        let mut s = new_messages_stream(cx);
        let (o, f) = run(&mut s, &[&MSG_STREAM[..k], &MSG_STREAM[k..]]);
        f.unwrap();
        assert_eq!(String::from_utf8(o).unwrap(), text, "split at {k}");
    }
}

#[test]
fn messages_stream_json_answer_and_errors() {
    let input = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":5}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"respond_with_json\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\":1}\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let mut cx = acx(false);
    cx.json_answer = true;
    let mut s = new_messages_stream(cx);
    let (out, fin) = run(&mut s, &[input]);
    fin.unwrap();
    let v: Vec<Value> = serde_json::from_slice(&out).unwrap();
    let text: String = v
        .iter()
        .filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(text, r#"{"a":1}"#);
    // An overloaded error right after message_start: nothing started, the error chunk.
    let err = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\"}}\n\n\
event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n";
    let mut s = new_messages_stream(acx(true));
    let (out, fin) = run(&mut s, &[err]);
    assert!(fin.is_err() && s.saw_error() && !s.started_content());
    assert_eq!(
        out,
        b"data: {\"error\":{\"code\":503,\"message\":\"busy\",\"status\":\"UNAVAILABLE\"}}\n\n"
    );
    let mut s = new_messages_stream(acx(true));
    let bad = b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\"}}\n\n";
    assert!(run(&mut s, &[bad]).1.is_err());
}
