//! The clients our users have: the official OpenAI and Anthropic Python SDKs, stream and
//! non-stream, through the real gateway. `scripts/test.sh` installs the SDKs into `.venv`
//! and sets `BERRY_TEST_PYTHON`; without it these tests fail (set `BERRY_SKIP_SDK_TEST=1` to
//! skip deliberately when running `cargo test` by hand).

use crate::harness::*;
use berry_mock::{MockGuard, MockProvider};
use std::process::Command;

const SCRIPT: &str = r#"
import json, os, sys
import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["BASE_URL"], api_key=os.environ["TOKEN"], max_retries=0)
out = {}

r = client.chat.completions.create(model="sdk-model", messages=[{"role": "user", "content": "Hello"}])
out["non_stream"] = {"content": r.choices[0].message.content, "model": r.model,
                     "prompt_tokens": r.usage.prompt_tokens, "completion_tokens": r.usage.completion_tokens}

parts, usage, chunks = [], None, 0
stream = client.chat.completions.create(model="sdk-model", stream=True,
                                        stream_options={"include_usage": True},
                                        messages=[{"role": "user", "content": "Hello"}])
for chunk in stream:
    chunks += 1
    if chunk.choices and chunk.choices[0].delta.content:
        parts.append(chunk.choices[0].delta.content)
    if chunk.usage:
        usage = chunk.usage.completion_tokens
out["stream"] = {"content": "".join(parts), "chunks": chunks, "completion_tokens": usage}

emb = client.embeddings.create(model="sdk-embed", input="hello")
out["embedding_len"] = len(emb.data[0].embedding)

out["models"] = sorted(m.id for m in client.models.list())

try:
    client.chat.completions.create(model="no-such-model", messages=[])
    out["not_found"] = "no error"
except openai.NotFoundError as e:
    out["not_found"] = e.body.get("code") if isinstance(e.body, dict) else str(e.body)

bad = OpenAI(base_url=os.environ["BASE_URL"], api_key="wrong-token", max_retries=0)
try:
    bad.chat.completions.create(model="sdk-model", messages=[])
    out["unauthorized"] = "no error"
except openai.AuthenticationError as e:
    out["unauthorized"] = e.status_code

print(json.dumps(out))
"#;

#[test]
fn openai_python_sdk_through_the_gateway() {
    let Some(python) = sdk_python() else {
        return;
    };
    let m = mock_with("sdk-mock", |o| {
        o.chunks = 4;
        o.chunk_interval = std::time::Duration::from_millis(10);
    });
    let cfg = format!(
        "{FAST_SETTINGS}\n{}{}\n[models.chat]\nname = \"sdk-model\"\n[[models.chat.backends]]\nprovider = \"p\"\nmodel = \"gpt-4o-mini\"\n[models.emb]\nname = \"sdk-embed\"\n[[models.emb.backends]]\nprovider = \"p\"\nmodel = \"text-embedding-3-small\"\n",
        user("sdk", "sdk-token", ""),
        provider("p", &m)
    );
    let gw = Gateway::start(&cfg);
    let v = run_script(
        &python,
        "openai",
        SCRIPT,
        &format!("http://{}/v1", gw.addr),
        &[],
    );
    assert_eq!(v["non_stream"]["content"], "tok0 tok1 tok2 tok3 ");
    assert_eq!(v["non_stream"]["model"], "gpt-4o-mini");
    assert_eq!(v["non_stream"]["completion_tokens"], 4);
    assert_eq!(v["stream"]["content"], "tok0 tok1 tok2 tok3 ");
    assert_eq!(v["stream"]["completion_tokens"], 4);
    assert!(v["stream"]["chunks"].as_u64().unwrap() >= 5);
    assert_eq!(v["embedding_len"], 3);
    assert_eq!(v["models"], serde_json::json!(["sdk-embed", "sdk-model"]));
    assert_eq!(v["not_found"], "model_not_found");
    assert_eq!(v["unauthorized"], 401);
}

const ANTHROPIC_SCRIPT: &str = r#"
import json, os
import anthropic
from anthropic import Anthropic

client = Anthropic(base_url=os.environ["BASE_URL"], api_key=os.environ["TOKEN"], max_retries=0)
MODEL = os.environ["MODEL"]
out = {}
msgs = [{"role": "user", "content": "Hello"}]

r = client.messages.create(model=MODEL, max_tokens=64, messages=msgs)
out["non_stream"] = {"text": r.content[0].text, "model": r.model, "stop_reason": r.stop_reason,
                     "input_tokens": r.usage.input_tokens, "output_tokens": r.usage.output_tokens}

with client.messages.stream(model=MODEL, max_tokens=64, messages=msgs) as s:
    streamed = "".join(s.text_stream)
    final = s.get_final_message()
out["stream"] = {"text": streamed, "final_text": final.content[0].text,
                 "output_tokens": final.usage.output_tokens, "stop_reason": final.stop_reason}

tools = [{"name": "get_weather", "description": "Weather of a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
r = client.messages.create(model=MODEL, max_tokens=64, messages=msgs, tools=tools,
                           tool_choice={"type": "tool", "name": "get_weather"},
                           extra_headers={"x-mock-tool-use": "get_weather",
                                          "x-mock-tool-input": "{\"city\": \"Paris\"}"})
tool = [b for b in r.content if b.type == "tool_use"][0]
out["tool"] = {"name": tool.name, "input": tool.input, "stop_reason": r.stop_reason}

with client.messages.stream(model=MODEL, max_tokens=64, messages=msgs, tools=tools,
                            tool_choice={"type": "tool", "name": "get_weather"},
                            extra_headers={"x-mock-tool-use": "get_weather",
                                           "x-mock-tool-input": "{\"city\": \"Paris\"}"}) as s:
    final = s.get_final_message()
tool = [b for b in final.content if b.type == "tool_use"][0]
out["tool_stream"] = {"name": tool.name, "input": tool.input}

if os.environ.get("COUNT_TOKENS") == "1":
    out["count_tokens"] = client.messages.count_tokens(model=MODEL, messages=msgs).input_tokens

try:
    client.messages.create(model="no-such-model", max_tokens=8, messages=msgs)
    out["not_found"] = "no error"
except anthropic.NotFoundError as e:
    out["not_found"] = {"status": e.status_code, "type": e.body["error"]["type"]}

bad = Anthropic(base_url=os.environ["BASE_URL"], api_key="wrong-token", max_retries=0)
try:
    bad.messages.create(model=MODEL, max_tokens=8, messages=msgs)
    out["unauthorized"] = "no error"
except anthropic.AuthenticationError as e:
    out["unauthorized"] = {"status": e.status_code, "type": e.body["error"]["type"]}

print(json.dumps(out))
"#;

/// A gateway with one Anthropic-dialect model (`claude-model` → `claude-real`) and one
/// OpenAI-dialect model (`gpt-model` → `gpt-real`), both on mock `m`; both providers
/// forward the mock's steering headers (the scripts ask for tool calls with them).
fn two_dialects(m: &MockProvider) -> Gateway {
    let cfg = format!(
        "{}\n{}{}backend_type = \"anthropic\"\n{}\n[models.claude]\nname = \"claude-model\"\n[[models.claude.backends]]\nprovider = \"an\"\nmodel = \"claude-real\"\n[models.gpt]\nname = \"gpt-model\"\n[[models.gpt.backends]]\nprovider = \"oa\"\nmodel = \"gpt-real\"\n",
        quiet_settings(),
        user("sdk", "sdk-token", ""),
        steered_provider("an", m),
        steered_provider("oa", m),
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[m, m]);
    gw
}

fn sdk_mock() -> MockGuard {
    mock_with("sdk-mock", |o| {
        o.chunks = 3;
        o.chunk_interval = std::time::Duration::from_millis(5);
    })
}

/// What the Anthropic SDK script saw, whichever dialect the backend speaks.
fn assert_anthropic_sdk_answers(v: &serde_json::Value, real_model: &str) {
    assert_eq!(v["non_stream"]["model"], real_model, "{v}");
    assert_eq!(v["non_stream"]["stop_reason"], "end_turn");
    assert_eq!(v["non_stream"]["text"], "tok0 tok1 tok2 ", "{v}");
    assert!(v["non_stream"]["input_tokens"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["non_stream"]["output_tokens"], 3);
    assert_eq!(v["stream"]["text"], v["stream"]["final_text"]);
    assert_eq!(v["stream"]["text"], "tok0 tok1 tok2 ");
    assert_eq!(v["stream"]["output_tokens"], 3);
    assert_eq!(v["stream"]["stop_reason"], "end_turn");
    assert_eq!(v["tool"]["name"], "get_weather", "{v}");
    assert_eq!(v["tool"]["input"], serde_json::json!({"city": "Paris"}));
    assert_eq!(v["tool"]["stop_reason"], "tool_use");
    assert_eq!(v["tool_stream"]["name"], "get_weather");
    assert_eq!(
        v["tool_stream"]["input"],
        serde_json::json!({"city": "Paris"})
    );
    assert_eq!(
        v["not_found"],
        serde_json::json!({"status": 404, "type": "not_found_error"})
    );
    assert_eq!(
        v["unauthorized"],
        serde_json::json!({"status": 401, "type": "authentication_error"})
    );
}

/// The official `anthropic` Python SDK on `/v1/messages` to an Anthropic backend: the body
/// reaches the provider byte-exact except `model`, errors come back in Anthropic's shape.
#[test]
fn anthropic_python_sdk_to_an_anthropic_backend() {
    let Some(python) = sdk_python() else {
        return;
    };
    let m = sdk_mock();
    let gw = two_dialects(&m);
    let base = format!("http://{}", gw.addr);
    let env = [("MODEL", "claude-model"), ("COUNT_TOKENS", "1")];
    let v = run_script(&python, "anthropic", ANTHROPIC_SCRIPT, &base, &env);
    assert_anthropic_sdk_answers(&v, "claude-real");
    assert!(v["count_tokens"].as_u64().unwrap() > 0);
    // What reached the provider (the last upstream call was count_tokens): the SDK's body
    // with only `model` replaced, its own anthropic-version, the provider's key instead of
    // the client's token.
    let seen = m.last_request().unwrap();
    assert_eq!(seen.path, "/v1/messages/count_tokens");
    let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(body["model"], "claude-real");
    assert_eq!(seen.header("x-api-key"), Some("key-an"));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert!(!format!("{:?}", seen.headers).contains("sdk-token"));
}

/// The `anthropic` SDK on a model whose backend speaks OpenAI: the request is translated to
/// chat completions and the answer (JSON and event stream) back to Anthropic's shapes.
#[test]
fn anthropic_python_sdk_to_an_openai_backend() {
    let Some(python) = sdk_python() else {
        return;
    };
    let m = sdk_mock();
    let gw = two_dialects(&m);
    let base = format!("http://{}", gw.addr);
    let v = run_script(
        &python,
        "anthropic-oa",
        ANTHROPIC_SCRIPT,
        &base,
        &[("MODEL", "gpt-model")],
    );
    assert_anthropic_sdk_answers(&v, "gpt-real");
    let seen = m.last_request().unwrap();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.header("authorization"), Some("Bearer key-oa"));
    assert_eq!(seen.header("anthropic-version"), None);
}

const OPENAI_ON_ANTHROPIC_SCRIPT: &str = r#"
import json, os
from openai import OpenAI

client = OpenAI(base_url=os.environ["BASE_URL"], api_key=os.environ["TOKEN"], max_retries=0)
msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
out = {}
r = client.chat.completions.create(model="claude-model", messages=msgs, max_tokens=64)
out["non_stream"] = {"content": r.choices[0].message.content, "model": r.model,
                     "finish_reason": r.choices[0].finish_reason,
                     "prompt_tokens": r.usage.prompt_tokens,
                     "completion_tokens": r.usage.completion_tokens}
parts, usage = [], None
for chunk in client.chat.completions.create(model="claude-model", messages=msgs, stream=True,
                                            stream_options={"include_usage": True}):
    if chunk.choices and chunk.choices[0].delta.content:
        parts.append(chunk.choices[0].delta.content)
    if chunk.usage:
        usage = chunk.usage.completion_tokens
out["stream"] = {"content": "".join(parts), "completion_tokens": usage}

tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
hdrs = {"x-mock-tool-use": "get_weather", "x-mock-tool-input": '{"city": "Paris"}'}
r = client.chat.completions.create(model="claude-model", messages=msgs, tools=tools,
                                   tool_choice="required", extra_headers=hdrs)
call = r.choices[0].message.tool_calls[0]
out["tool"] = {"name": call.function.name, "args": json.loads(call.function.arguments),
               "finish_reason": r.choices[0].finish_reason}
calls = {}
for chunk in client.chat.completions.create(model="claude-model", messages=msgs, tools=tools,
                                            tool_choice="required", stream=True,
                                            extra_headers=hdrs):
    for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
        c = calls.setdefault(tc.index, {"name": "", "args": ""})
        if tc.function and tc.function.name:
            c["name"] += tc.function.name
        if tc.function and tc.function.arguments:
            c["args"] += tc.function.arguments
out["tool_stream"] = {k: {"name": c["name"], "args": json.loads(c["args"])} for k, c in calls.items()}
print(json.dumps(out))
"#;

/// The official `openai` SDK on a model whose backend speaks Anthropic: chat completions are
/// translated to Messages, and tool calls (whole and streamed) accumulate to valid JSON.
#[test]
fn openai_python_sdk_to_an_anthropic_backend() {
    let Some(python) = sdk_python() else {
        return;
    };
    let m = sdk_mock();
    let gw = two_dialects(&m);
    let base = format!("http://{}/v1", gw.addr);
    let v = run_script(&python, "openai-an", OPENAI_ON_ANTHROPIC_SCRIPT, &base, &[]);
    assert_eq!(v["non_stream"]["content"], "tok0 tok1 tok2 ", "{v}");
    assert_eq!(v["non_stream"]["model"], "claude-real");
    assert_eq!(v["non_stream"]["finish_reason"], "stop");
    assert_eq!(v["non_stream"]["completion_tokens"], 3);
    assert!(v["non_stream"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(v["stream"]["content"], "tok0 tok1 tok2 ");
    assert_eq!(v["stream"]["completion_tokens"], 3);
    assert_eq!(v["tool"]["name"], "get_weather");
    assert_eq!(v["tool"]["args"], serde_json::json!({"city": "Paris"}));
    assert_eq!(v["tool"]["finish_reason"], "tool_calls");
    assert_eq!(
        v["tool_stream"]["0"],
        serde_json::json!({"name": "get_weather", "args": {"city": "Paris"}})
    );
    // The provider got an Anthropic request: system lifted out, max_tokens set.
    let seen = m.last_request().unwrap();
    assert_eq!(seen.path, "/v1/messages");
    let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(body["model"], "claude-real");
    // (as one text block carrying the automatic prompt-cache breakpoint)
    assert_eq!(body["system"][0]["text"], "Be brief.");
    assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
    assert!(body["max_tokens"].as_u64().is_some());
    assert_eq!(seen.header("x-api-key"), Some("key-an"));
}

/// The test venv's Python, or `None` when the SDK tests are skipped on purpose.
pub(crate) fn sdk_python() -> Option<String> {
    match std::env::var("BERRY_TEST_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var("BERRY_SKIP_SDK_TEST").as_deref() == Ok("1") => None,
        Err(_) => panic!(
            "BERRY_TEST_PYTHON is not set: run scripts/test.sh (it installs the SDKs into \
             .venv) or set BERRY_SKIP_SDK_TEST=1 to skip this test on purpose"
        ),
    }
}

/// Runs a Python `script` against `base_url` with the test user's token; its last stdout
/// line is JSON.
pub(crate) fn run_script(
    python: &str,
    name: &str,
    script: &str,
    base_url: &str,
    env: &[(&str, &str)],
) -> serde_json::Value {
    let dir = temp_dir(name);
    let path = dir.join(format!("{name}_check.py"));
    std::fs::write(&path, script).unwrap();
    let out = Command::new(python)
        .arg(&path)
        .env("BASE_URL", base_url)
        .env("TOKEN", "sdk-token")
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
    serde_json::from_str(stdout.trim()).expect("JSON from the script")
}
