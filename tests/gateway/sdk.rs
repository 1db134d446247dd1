//! The client our users have: the official OpenAI Python SDK, stream and non-stream,
//! through the real gateway. `scripts/test.sh` installs the SDK into `.venv` and sets
//! `BERRY_TEST_PYTHON`; without it this test fails (set `BERRY_SKIP_SDK_TEST=1` to skip
//! deliberately when running `cargo test` by hand).

use crate::harness::*;
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
    let python = match std::env::var("BERRY_TEST_PYTHON") {
        Ok(p) => p,
        Err(_) if std::env::var("BERRY_SKIP_SDK_TEST").as_deref() == Ok("1") => return,
        Err(_) => panic!(
            "BERRY_TEST_PYTHON is not set: run scripts/test.sh (it installs the openai SDK \
             into .venv) or set BERRY_SKIP_SDK_TEST=1 to skip this test on purpose"
        ),
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
    let dir = temp_dir("sdk");
    let script = dir.join("sdk_check.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = Command::new(&python)
        .arg(&script)
        .env("BASE_URL", format!("http://{}/v1", gw.addr))
        .env("TOKEN", "sdk-token")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON from the script");
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
    let _ = std::fs::remove_dir_all(dir);
}
