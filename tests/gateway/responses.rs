//! The OpenAI Responses API through the gateway (`/v1/responses`): the official `openai`
//! Python SDK and Codex CLI against a native backend (passthrough), a chat-only backend
//! (`responses_api = false`, translated to chat completions) and an Anthropic backend
//! (translated to Messages); bad input refused before anything goes upstream; response
//! ids scoped to their user; native passthrough byte-exact except `model`, with usage
//! counted.
//!
//! `scripts/test.sh` installs the SDK (`BERRY_TEST_PYTHON`) and Codex CLI
//! (`BERRY_TEST_CODEX`). Without `BERRY_TEST_PYTHON` the SDK tests fail unless
//! `BERRY_SKIP_SDK_TEST=1`; without `BERRY_TEST_CODEX` the Codex tests fail when `CI=true`
//! and are skipped with a note otherwise.

use crate::harness::*;
use berry_mock::{MockGuard, MockProvider};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The three models of [`three_backends`]: (client model, the backend's real model).
const NATIVE: (&str, &str) = ("native-model", "gpt-real");
const CHAT_ONLY: (&str, &str) = ("chat-model", "chat-real");
const ANTHROPIC: (&str, &str) = ("claude-model", "claude-real");
const ALL: [(&str, &str); 3] = [NATIVE, CHAT_ONLY, ANTHROPIC];

/// The mock's answer text with [`resp_mock`]'s 3 chunks.
const ANSWER: &str = "tok0 tok1 tok2 ";

fn resp_mock() -> MockGuard {
    mock_with("resp-mock", |o| {
        o.chunks = 3;
        o.chunk_interval = Duration::from_millis(2);
    })
}

/// A gateway with users `one` (token `tok-one`) and `two` (`tok-two`) and three models on
/// mock `m`: `native-model` on an `openai` provider (native Responses API),
/// `chat-model` on a `responses_api = false` provider (chat completions only) and
/// `claude-model` on an `anthropic` provider. Every provider forwards the mock's
/// steering headers.
fn three_backends(m: &MockProvider) -> Gateway {
    let cfg = format!(
        "{settings}\n[settings.responses]\nstore_max_bytes = 8388608\nstore_ttl_seconds = 600\n\n\
         {u1}{u2}{na}\n{ch}responses_api = false\n\n{an}backend_type = \"anthropic\"\n\n\
         [models.native]\nname = \"{nm}\"\n[[models.native.backends]]\nprovider = \"na\"\nmodel = \"{nr}\"\n\
         [models.chat]\nname = \"{cm}\"\n[[models.chat.backends]]\nprovider = \"ch\"\nmodel = \"{cr}\"\n\
         [models.claude]\nname = \"{am}\"\n[[models.claude.backends]]\nprovider = \"an\"\nmodel = \"{ar}\"\n",
        settings = quiet_settings(),
        u1 = user("one", "tok-one", ""),
        u2 = user("two", "tok-two", ""),
        na = steered_provider("na", m),
        ch = steered_provider("ch", m),
        an = steered_provider("an", m),
        nm = NATIVE.0,
        nr = NATIVE.1,
        cm = CHAT_ONLY.0,
        cr = CHAT_ONLY.1,
        am = ANTHROPIC.0,
        ar = ANTHROPIC.1,
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[m, m, m]);
    gw
}

/// The path the mock saw for a model's upstream call.
fn upstream_path(model: &str) -> &'static str {
    match model {
        m if m == NATIVE.0 => "/v1/responses",
        m if m == CHAT_ONLY.0 => "/v1/chat/completions",
        _ => "/v1/messages",
    }
}

// ---------------------------------------------------------------------------------------
// the openai Python SDK
// ---------------------------------------------------------------------------------------

const SDK_SCRIPT: &str = r#"
import json, os
from openai import OpenAI

client = OpenAI(base_url=os.environ["BASE_URL"], api_key=os.environ["TOKEN"], max_retries=0)
MODEL = os.environ["MODEL"]
out = {}

r = client.responses.create(model=MODEL, input="Hello", instructions="Be brief.")
out["create"] = {"id": r.id, "object": r.object, "text": r.output_text, "status": r.status,
                 "input_tokens": r.usage.input_tokens, "output_tokens": r.usage.output_tokens,
                 "total_tokens": r.usage.total_tokens}

with client.responses.stream(model=MODEL, input="Hello") as s:
    deltas, seqs = [], []
    for e in s:
        seqs.append(e.sequence_number)
        if e.type == "response.output_text.delta":
            deltas.append(e.delta)
    final = s.get_final_response()
out["stream"] = {"deltas": "".join(deltas), "text": final.output_text, "status": final.status,
                 "output_tokens": final.usage.output_tokens, "seqs": seqs}

tools = [{"type": "function", "name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"]}}]
hdrs = {"x-mock-tool-use": "get_weather", "x-mock-tool-input": '{"city": "Paris"}'}
r1 = client.responses.create(model=MODEL, input="Weather in Paris?", tools=tools,
                             extra_headers=hdrs)
call = [o for o in r1.output if o.type == "function_call"][0]
out["call"] = {"name": call.name, "args": json.loads(call.arguments), "call_id": call.call_id}

result = [{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}]
r2 = client.responses.create(model=MODEL, previous_response_id=r1.id, input=result,
                             tools=tools, extra_headers=hdrs)
out["after_previous"] = {"text": r2.output_text, "previous": r2.previous_response_id}

full = [{"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": call.arguments}] + result
r3 = client.responses.create(model=MODEL, input=full, tools=tools, extra_headers=hdrs,
                             store=False)
out["after_full"] = r3.output_text

with client.responses.stream(model=MODEL, input="Weather?", tools=tools,
                             extra_headers=hdrs) as s:
    final = s.get_final_response()
fc = [o for o in final.output if o.type == "function_call"][0]
out["stream_call"] = {"name": fc.name, "args": json.loads(fc.arguments)}
print(json.dumps(out))
"#;

fn sdk_round_trip(model: &str) {
    let Some(python) = sdk_python() else {
        return;
    };
    let m = resp_mock();
    let gw = three_backends(&m);
    let base = format!("http://{}/v1", gw.addr);
    let v = run_script(&python, model, &base, &[("MODEL", model)]);
    let c = &v["create"];
    assert_eq!(c["text"], ANSWER, "{v}");
    assert_eq!(c["object"], "response");
    assert_eq!(c["status"], "completed");
    assert!(c["id"].as_str().unwrap().starts_with("resp_"), "{v}");
    assert!(c["input_tokens"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(c["output_tokens"], 3, "{v}");
    let s = &v["stream"];
    assert_eq!(s["deltas"], ANSWER, "{v}");
    assert_eq!(s["text"], ANSWER);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["output_tokens"], 3);
    let seqs: Vec<u64> = s["seqs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert!(!seqs.is_empty() && seqs[0] == 0, "{v}");
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{v}");
    assert_eq!(v["call"]["name"], "get_weather", "{v}");
    assert_eq!(v["call"]["args"], json!({"city": "Paris"}));
    assert_eq!(
        v["after_previous"]["text"], "tool output: sunny, 21C",
        "{v}"
    );
    assert_eq!(v["after_full"], "tool output: sunny, 21C", "{v}");
    assert_eq!(v["stream_call"]["name"], "get_weather", "{v}");
    assert_eq!(v["stream_call"]["args"], json!({"city": "Paris"}));
    // Every call reached the backend of the model, in its dialect, with the provider's key.
    let seen = m.last_request().unwrap();
    assert_eq!(seen.path, upstream_path(model));
    assert!(!format!("{:?}", seen.headers).contains("tok-one"));
}

#[test]
fn openai_sdk_responses_on_a_native_backend() {
    sdk_round_trip(NATIVE.0);
}

#[test]
fn openai_sdk_responses_on_a_chat_only_backend() {
    sdk_round_trip(CHAT_ONLY.0);
}

#[test]
fn openai_sdk_responses_on_an_anthropic_backend() {
    sdk_round_trip(ANTHROPIC.0);
}

/// The test venv's Python, or `None` when the SDK tests are skipped on purpose.
fn sdk_python() -> Option<String> {
    match std::env::var("BERRY_TEST_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var("BERRY_SKIP_SDK_TEST").as_deref() == Ok("1") => None,
        Err(_) => panic!(
            "BERRY_TEST_PYTHON is not set: run scripts/test.sh (it installs the SDKs into \
             .venv) or set BERRY_SKIP_SDK_TEST=1 to skip this test on purpose"
        ),
    }
}

/// Runs [`SDK_SCRIPT`] against `base_url` as user `one`; its last stdout line is JSON.
fn run_script(python: &str, name: &str, base_url: &str, env: &[(&str, &str)]) -> Value {
    let dir = temp_dir(&format!("responses-sdk-{name}"));
    let path = dir.join("responses_check.py");
    std::fs::write(&path, SDK_SCRIPT).unwrap();
    let out = Command::new(python)
        .arg(&path)
        .env("BASE_URL", base_url)
        .env("TOKEN", "tok-one")
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
    let last = stdout.trim().lines().last().unwrap_or_default();
    serde_json::from_str(last).expect("JSON from the script")
}

// ---------------------------------------------------------------------------------------
// Codex CLI
// ---------------------------------------------------------------------------------------

/// Codex CLI's binary (`BERRY_TEST_CODEX`), or `None` (with a note) when it is not set
/// outside CI; in CI (`CI=true`) a missing Codex fails the test.
fn codex_bin() -> Option<String> {
    match std::env::var("BERRY_TEST_CODEX") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "BERRY_TEST_CODEX is not set but CI=true: run scripts/test.sh (it installs \
             @openai/codex 0.171.0 into .tools/codex and exports BERRY_TEST_CODEX)"
        ),
        _ => {
            eprintln!(
                "note: skipping a Codex CLI test: BERRY_TEST_CODEX is not set (scripts/test.sh \
                 installs Codex CLI into .tools/codex and sets it)"
            );
            None
        }
    }
}

/// What one `codex exec` run printed.
struct CodexRun {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `codex exec PROMPT` non-interactively against the gateway as user `one`, with a
/// throwaway `CODEX_HOME` (and `HOME`), stdin from `/dev/null`, a read-only sandbox, a
/// custom provider `gw` whose `base_url` is the gateway (`wire_api = "responses"`, no
/// retries) and the extra request headers `headers` (the mock's steering headers).
fn codex_exec(
    codex: &str,
    gw: &Gateway,
    model: &str,
    prompt: &str,
    headers: &[(&str, &str)],
) -> CodexRun {
    let home = temp_dir("codex-home");
    let work = temp_dir("codex-work");
    let mut args: Vec<String> = [
        "exec",
        "--skip-git-repo-check",
        "--ephemeral",
        "--sandbox",
        "read-only",
        "-c",
        "model_provider=gw",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let base_url = format!("http://{}/v1", gw.addr);
    for kv in [
        format!("model={model}"),
        "model_providers.gw.name=gw".to_string(),
        format!("model_providers.gw.base_url={base_url}"),
        "model_providers.gw.env_key=GW_KEY".to_string(),
        "model_providers.gw.wire_api=responses".to_string(),
        "model_providers.gw.stream_max_retries=0".to_string(),
        "model_providers.gw.request_max_retries=0".to_string(),
    ] {
        args.push("-c".to_string());
        args.push(kv);
    }
    if !headers.is_empty() {
        let table: Vec<String> = headers
            .iter()
            .map(|(k, v)| format!("{}={}", toml_str(k), toml_str(v)))
            .collect();
        args.push("-c".to_string());
        args.push(format!(
            "model_providers.gw.http_headers={{{}}}",
            table.join(",")
        ));
    }
    args.push(prompt.to_string());
    let mut child = Command::new(codex)
        .args(&args)
        .current_dir(&work)
        .env("CODEX_HOME", &home)
        .env("HOME", &home)
        .env("GW_KEY", "tok-one")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {codex}: {e}"));
    // Read both pipes on threads so a chatty Codex never blocks on a full pipe.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out_pipe, &mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err_pipe, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = CodexRun {
        ok: status.is_some_and(|s| s.success()),
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    };
    let _ = std::fs::remove_dir_all(home);
    let _ = std::fs::remove_dir_all(work);
    run
}

/// `s` as a TOML basic string.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn codex_prints_the_answer(model: &str) {
    let Some(codex) = codex_bin() else {
        return;
    };
    let m = resp_mock();
    let gw = three_backends(&m);
    let run = codex_exec(&codex, &gw, model, "say hi", &[]);
    assert!(
        run.ok && run.stdout.contains(ANSWER.trim_end()),
        "codex exec on {model} failed or did not print the answer\nstdout:\n{}\nstderr:\n{}\ngateway log:\n{}",
        run.stdout,
        run.stderr,
        gw.log()
    );
    let seen = m.last_request().unwrap();
    assert_eq!(seen.path, upstream_path(model));
    assert!(m.hits_for(upstream_path(model)) >= 1);
}

#[test]
fn codex_exec_on_a_native_backend() {
    codex_prints_the_answer(NATIVE.0);
}

#[test]
fn codex_exec_on_a_chat_only_backend() {
    codex_prints_the_answer(CHAT_ONLY.0);
}

#[test]
fn codex_exec_on_an_anthropic_backend() {
    codex_prints_the_answer(ANTHROPIC.0);
}

/// The mock asks Codex to run `echo berry-tool-ok` (its `exec_command` tool); Codex runs
/// it in its read-only sandbox, sends the output back, and prints the mock's answer that
/// quotes it.
fn codex_runs_a_tool(model: &str) {
    let Some(codex) = codex_bin() else {
        return;
    };
    let m = resp_mock();
    let gw = three_backends(&m);
    let steer = [
        ("x-mock-tool-use", "exec_command"),
        ("x-mock-tool-input", r#"{"cmd":"echo berry-tool-ok"}"#),
    ];
    let run = codex_exec(&codex, &gw, model, "run the check", &steer);
    let diag = || {
        format!(
            "stdout:\n{}\nstderr:\n{}\ngateway log:\n{}",
            run.stdout,
            run.stderr,
            gw.log()
        )
    };
    assert!(run.ok, "codex exec failed on {model}\n{}", diag());
    assert!(
        run.stdout.contains("tool output:") && run.stdout.contains("berry-tool-ok"),
        "the final answer does not quote the command's output\n{}",
        diag()
    );
    // The last upstream request carried the command's output back as the tool result.
    let seen = m.last_request().unwrap();
    assert_eq!(seen.path, upstream_path(model));
    assert!(
        String::from_utf8_lossy(&seen.body).contains("berry-tool-ok"),
        "{}",
        diag()
    );
}

#[test]
fn codex_runs_a_command_on_a_native_backend() {
    codex_runs_a_tool(NATIVE.0);
}

#[test]
fn codex_runs_a_command_on_a_chat_only_backend() {
    codex_runs_a_tool(CHAT_ONLY.0);
}

#[test]
fn codex_runs_a_command_on_an_anthropic_backend() {
    codex_runs_a_tool(ANTHROPIC.0);
}

// ---------------------------------------------------------------------------------------
// bad input and ownership of response ids
// ---------------------------------------------------------------------------------------

/// An OpenAI-shaped error: `{"error":{"message","type","param","code"}}`.
fn assert_openai_error(r: &Resp, status: u16, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    let v = r.json();
    let e = &v["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
    assert!(e["type"].is_string(), "{what}: {v}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "{what}: {v}"
    );
    v
}

#[test]
fn bad_input_is_refused_before_anything_goes_upstream() {
    let m = resp_mock();
    let gw = three_backends(&m);
    m.reset_counters();
    for (model, _) in [CHAT_ONLY, ANTHROPIC] {
        let cases = [
            (
                "malformed item",
                json!([{"type": "message", "role": "user", "content": 5}]),
            ),
            ("item without a type or role", json!([{"content": "hi"}])),
            (
                "unknown item type",
                json!([{"type": "hologram", "data": "x"}]),
            ),
            (
                "function_call_output without its call",
                json!([{"role": "user", "content": "hi"},
                       {"type": "function_call_output", "call_id": "call_nowhere", "output": "x"}]),
            ),
        ];
        for (what, input) in cases {
            for stream in [false, true] {
                let body = json!({"model": model, "input": input, "stream": stream});
                let r = gw.post("/v1/responses", "tok-one", &body.to_string());
                assert_openai_error(&r, 400, &format!("{what} on {model} (stream {stream})"));
            }
        }
        let r = gw.post(
            "/v1/responses",
            "tok-one",
            &json!({"model": model, "input": 5}).to_string(),
        );
        assert_openai_error(&r, 400, "input of the wrong type");
        let r = gw.post("/v1/responses", "tok-one", "{\"model\": ");
        assert_openai_error(&r, 400, "broken JSON");
    }
    for (model, _) in ALL {
        for stream in [false, true] {
            let body = json!({"model": model, "input": "hi", "stream": stream,
                              "previous_response_id": "resp_never_issued"});
            let r = gw.post("/v1/responses", "tok-one", &body.to_string());
            let v =
                assert_openai_error(&r, 400, &format!("unknown previous_response_id on {model}"));
            assert_eq!(v["error"]["code"], "previous_response_not_found", "{v}");
            assert_eq!(v["error"]["param"], "previous_response_id", "{v}");
        }
    }
    assert_eq!(m.hits(), 0, "a refused request reached the provider");
}

/// A response created by user `one` is continued and read back by `one`, never by `two`:
/// `two` gets 400 `previous_response_not_found` (or a 4xx on the by-id routes) and nothing
/// of the response, and no request reaches the provider for it.
#[test]
fn response_ids_belong_to_the_user_that_created_them() {
    let m = resp_mock();
    let gw = three_backends(&m);
    for (model, _) in ALL {
        let body = json!({"model": model, "input": "remember 42"}).to_string();
        let r = gw.post("/v1/responses", "tok-one", &body);
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("resp_"), "{id}");

        // The owner continues it and reads it back.
        let next = json!({"model": model, "input": "and now?", "previous_response_id": id});
        let r = gw.post("/v1/responses", "tok-one", &next.to_string());
        assert_eq!(r.status, 200, "{model}: owner continues: {}", r.text());
        let r = gw.get(&format!("/v1/responses/{id}"), Some("tok-one"));
        assert_eq!(r.status, 200, "{model}: owner reads back: {}", r.text());
        assert_eq!(r.json()["id"], id.as_str());

        // Another user: refused, nothing upstream.
        m.reset_counters();
        let r = gw.post("/v1/responses", "tok-two", &next.to_string());
        let v = assert_openai_error(&r, 400, &format!("another user's id on {model}"));
        assert_eq!(v["error"]["code"], "previous_response_not_found", "{v}");
        for (method, path) in [
            ("GET", format!("/v1/responses/{id}")),
            ("GET", format!("/v1/responses/{id}/input_items")),
            ("POST", format!("/v1/responses/{id}/cancel")),
            ("DELETE", format!("/v1/responses/{id}")),
        ] {
            let r = request(
                gw.addr,
                method,
                &path,
                &[("Authorization", "Bearer tok-two")],
                b"",
            );
            assert!(
                matches!(r.status, 400 | 404 | 409),
                "{model}: {method} {path} by another user answered {}: {}",
                r.status,
                r.text()
            );
            assert!(
                !r.text().contains(ANSWER),
                "{model}: {method} {path} leaked the answer"
            );
        }
        assert_eq!(
            m.hits(),
            0,
            "{model}: another user's id reached the provider"
        );
        // Still there for its owner.
        let r = gw.get(&format!("/v1/responses/{id}"), Some("tok-one"));
        assert_eq!(r.status, 200, "{model}: {}", r.text());
    }
}

// ---------------------------------------------------------------------------------------
// native passthrough
// ---------------------------------------------------------------------------------------

/// Replaces every `"<prefix><digits>"` id and `"created_at":<digits>` value of an event
/// stream with placeholders, so two streams of the mock compare equal.
fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for prefix in [
            "resp_mock_",
            "msg_mock_",
            "fc_mock_",
            "call_mock_",
            "\"created_at\":",
        ] {
            if let Some(after) = rest.strip_prefix(prefix) {
                out.push_str(prefix);
                out.push('N');
                rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[test]
fn native_passthrough_is_byte_exact_and_counted() {
    let m = resp_mock();
    let gw = three_backends(&m);
    // Unusual but valid JSON: spacing, a unicode escape, a number written with a trailing
    // zero, fields in an unusual order.
    let sent = "{ \"input\" : [{\"role\":\"user\",\"content\":\"h\\u00e9llo\"}],\n  \"temperature\": 0.50,\"model\":\"native-model\", \"text\":{\"verbosity\":\"low\"}, \"metadata\": {\"k\": \"v\"} }";
    let expected = sent.replace("\"native-model\"", "\"gpt-real\"");
    let cache = [("x-mock-cache-read", "40")];
    let r = gw.post_with("/v1/responses", "tok-one", sent, &cache);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = m.last_request().unwrap();
    assert_eq!(seen.path, "/v1/responses");
    assert_eq!(String::from_utf8_lossy(&seen.body), expected);
    assert_eq!(seen.header("authorization"), Some("Bearer key-na"));
    // The provider's answer as it sent it (its own id, model and usage).
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("resp_mock_"), "{v}");
    assert_eq!(v["model"], "gpt-real");
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 40);

    // Streamed: the same body rule, and the events exactly as the provider sends them.
    let sent_stream = sent.replacen('{', "{\"stream\":true,", 1);
    let r = gw.post_with("/v1/responses", "tok-one", &sent_stream, &cache);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let seen = m.last_request().unwrap();
    let upstream_body = seen.body.clone();
    assert_eq!(
        String::from_utf8_lossy(&upstream_body),
        sent_stream.replace("\"native-model\"", "\"gpt-real\"")
    );
    let direct = request(
        m.addr(),
        "POST",
        "/v1/responses",
        &[("Content-Type", "application/json"), cache[0]],
        &upstream_body,
    );
    assert_eq!(normalized(&r.text()), normalized(&direct.text()));
    assert!(r.text().contains("event: response.completed"));

    // Usage from `response.completed` (and the JSON answer): input, output, cache read.
    let tokens = |kind: &str| {
        metric(
            &gw,
            "berry_tokens_total",
            &[("model", NATIVE.0), ("user", "one"), ("type", kind)],
        )
    };
    assert!(
        wait_until(Duration::from_secs(5), || tokens("output") >= 6.0
            && tokens("cache_read") >= 80.0),
        "usage not counted; metrics:\n{}",
        gw.metrics_text()
    );
    assert_eq!(tokens("output"), 6.0);
    assert_eq!(tokens("cache_read"), 80.0);
    assert!(tokens("input") > 0.0);
}

/// `POST /v1/responses/compact` goes through to a native backend; translated backends
/// answer 400 `compaction_unsupported` without calling the provider. The owner lists a
/// response's input items on every backend.
#[test]
fn compaction_and_input_items() {
    let m = resp_mock();
    let gw = three_backends(&m);
    let body = |model: &str| json!({"model": model, "input": "long history"}).to_string();
    let r = gw.post("/v1/responses/compact", "tok-one", &body(NATIVE.0));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "response.compaction");
    assert_eq!(m.last_request().unwrap().path, "/v1/responses/compact");
    m.reset_counters();
    for (model, _) in [CHAT_ONLY, ANTHROPIC] {
        let r = gw.post("/v1/responses/compact", "tok-one", &body(model));
        let v = assert_openai_error(&r, 400, &format!("compact on {model}"));
        assert_eq!(v["error"]["code"], "compaction_unsupported", "{v}");
    }
    assert_eq!(m.hits(), 0, "a refused compaction reached the provider");
    for (model, _) in ALL {
        let input = json!([{"type": "message", "role": "user", "content": "first"},
                           {"type": "message", "role": "user", "content": "second"}]);
        let r = gw.post(
            "/v1/responses",
            "tok-one",
            &json!({"model": model, "input": input}).to_string(),
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_string();
        let r = gw.get(&format!("/v1/responses/{id}/input_items"), Some("tok-one"));
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let v = r.json();
        assert_eq!(v["object"], "list", "{model}: {v}");
        assert!(
            v["data"].to_string().contains("second"),
            "{model}: input items lack the input: {v}"
        );
    }
}
