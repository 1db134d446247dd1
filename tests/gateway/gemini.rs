//! The native Gemini API through the gateway (`/v1beta/models/{model}:{method}`): the
//! official `google-genai` Python SDK and Gemini CLI against a native `gemini` backend
//! (passthrough), an OpenAI backend (translated to chat completions) and an Anthropic
//! backend (translated to Messages); `countTokens`; Google-shaped errors; the client's key
//! (header or `?key=`) never reaching a provider, a log line or a metric.
//!
//! `scripts/test.sh` installs the SDK (`BERRY_TEST_PYTHON`) and Gemini CLI
//! (`BERRY_TEST_GEMINI`). Without `BERRY_TEST_PYTHON` the SDK test fails unless
//! `BERRY_SKIP_SDK_TEST=1`; without `BERRY_TEST_GEMINI` the CLI test fails when `CI=true`
//! and is skipped with a note otherwise.

use crate::harness::*;
use berry_mock::{MockGuard, MockProvider};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;

/// (client model, backend's real model) of [`three_backends`].
const NATIVE: (&str, &str) = ("gem-native", "gemini-real");
const CHAT: (&str, &str) = ("gem-chat", "gpt-real");
const CLAUDE: (&str, &str) = ("gem-claude", "claude-real");
const ALL: [(&str, &str); 3] = [NATIVE, CHAT, CLAUDE];

/// The mock's answer with [`gem_mock`]'s 3 chunks.
const ANSWER: &str = "tok0 tok1 tok2 ";
const TOKEN: &str = "tok-gemini-client-secret";

fn gem_mock() -> MockGuard {
    mock_with("gem-mock", |o| {
        o.chunks = 3;
        o.chunk_interval = Duration::from_millis(2);
    })
}

/// User `one` (token [`TOKEN`]) and three models on mock `m`: `gem-native` on a `gemini`
/// provider, `gem-chat` on an `openai` one, `gem-claude` on an `anthropic` one.
fn three_backends(m: &MockProvider) -> Gateway {
    let cfg = format!(
        "{settings}\n{u}{ge}backend_type = \"gemini\"\n\n{oa}\n{an}backend_type = \"anthropic\"\n\n\
         [models.n]\nname = \"{nm}\"\n[[models.n.backends]]\nprovider = \"ge\"\nmodel = \"{nr}\"\n\
         [models.c]\nname = \"{cm}\"\n[[models.c.backends]]\nprovider = \"oa\"\nmodel = \"{cr}\"\n\
         [models.a]\nname = \"{am}\"\n[[models.a.backends]]\nprovider = \"an\"\nmodel = \"{ar}\"\n",
        settings = quiet_settings(),
        u = user("one", TOKEN, ""),
        ge = steered_provider("ge", m),
        oa = steered_provider("oa", m),
        an = steered_provider("an", m),
        nm = NATIVE.0,
        nr = NATIVE.1,
        cm = CHAT.0,
        cr = CHAT.1,
        am = CLAUDE.0,
        ar = CLAUDE.1,
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[m, m, m]);
    gw
}

fn gemini_post(gw: &Gateway, path: &str, body: &str, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![
        ("x-goog-api-key", TOKEN),
        ("Content-Type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    request(gw.addr, "POST", path, &headers, body.as_bytes())
}

const HELLO: &str = r#"{"contents":[{"role":"user","parts":[{"text":"Hello"}]}]}"#;

fn text_of(v: &Value) -> String {
    v["candidates"][0]["content"]["parts"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<String>()
        })
        .unwrap_or_default()
}

#[test]
fn every_backend_answers_in_the_gemini_shape() {
    let m = gem_mock();
    let gw = three_backends(&m);
    for (model, real) in ALL {
        let r = gemini_post(
            &gw,
            &format!("/v1beta/models/{model}:generateContent"),
            HELLO,
            &[],
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let v = r.json();
        assert_eq!(text_of(&v), ANSWER, "{model}: {v}");
        assert_eq!(v["candidates"][0]["finishReason"], "STOP", "{model}: {v}");
        assert!(
            v["usageMetadata"]["promptTokenCount"].as_u64().unwrap() > 0,
            "{v}"
        );
        // the SSE stream: chunks whose texts add up to the answer, the last with STOP
        let r = gemini_post(
            &gw,
            &format!("/v1beta/models/{model}:streamGenerateContent?alt=sse"),
            HELLO,
            &[],
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("text/event-stream"),
            "{model}"
        );
        let chunks: Vec<Value> = r
            .sse_data()
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let text: String = chunks.iter().map(text_of).collect();
        assert_eq!(text, ANSWER, "{model}: {chunks:?}");
        let last = chunks.last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP", "{model}");
        // the streamed JSON array (no alt=sse)
        let r = gemini_post(
            &gw,
            &format!("/v1/models/{model}:streamGenerateContent"),
            HELLO,
            &[],
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let array: Vec<Value> = serde_json::from_slice(&r.body).expect("a JSON array");
        assert_eq!(array.iter().map(text_of).collect::<String>(), ANSWER);
        // the backend got its own API, the real model and the provider's key
        let seen = m.last_request().unwrap();
        let headers = format!("{:?}", seen.headers).to_ascii_lowercase();
        assert!(!headers.contains(TOKEN), "{model}: {headers}");
        if model == NATIVE.0 {
            assert_eq!(
                seen.path,
                format!("/v1beta/models/{real}:streamGenerateContent")
            );
            assert!(headers.contains("key-ge"), "{headers}");
            assert_eq!(seen.body, HELLO.as_bytes(), "byte-exact");
        } else {
            assert!(!seen.path.contains("v1beta"), "{}", seen.path);
            assert!(String::from_utf8_lossy(&seen.body).contains(real));
        }
    }
    // usage counted in every dialect
    let tokens = || metric(&gw, "berry_tokens_total", &[("type", "output")]);
    assert!(
        wait_until(Duration::from_secs(5), || tokens() >= 9.0 * 3.0),
        "{}",
        gw.metrics_text()
    );
}

#[test]
fn count_tokens_goes_native_or_to_anthropic_and_is_refused_elsewhere() {
    let m = gem_mock();
    let gw = three_backends(&m);
    for model in [NATIVE.0, CLAUDE.0] {
        let r = gemini_post(
            &gw,
            &format!("/v1beta/models/{model}:countTokens"),
            HELLO,
            &[],
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert!(
            r.json()["totalTokens"].as_u64().unwrap() > 0,
            "{}",
            r.text()
        );
    }
    let hits = m.hits();
    let r = gemini_post(
        &gw,
        &format!("/v1beta/models/{}:countTokens", CHAT.0),
        HELLO,
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json()["error"]["status"],
        "INVALID_ARGUMENT",
        "{}",
        r.text()
    );
    assert_eq!(m.hits(), hits, "nothing upstream");
}

#[test]
fn errors_are_google_shaped_and_the_clients_key_goes_nowhere() {
    let m = gem_mock();
    let gw = three_backends(&m);
    // the key in the query works like the header
    let path = format!("/v1beta/models/{}:generateContent?key={TOKEN}", CHAT.0);
    let r = request(
        gw.addr,
        "POST",
        &path,
        &[("Content-Type", "application/json")],
        HELLO.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = m.last_request().unwrap();
    assert!(
        !seen.path.contains(TOKEN) && !seen.path.contains("key="),
        "{}",
        seen.path
    );
    // and Bearer too
    let auth = format!("Bearer {TOKEN}");
    let r = request(
        gw.addr,
        "POST",
        &format!("/v1beta/models/{}:generateContent", NATIVE.0),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        HELLO.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let shaped = |r: &Resp, status: u16, name: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], status, "{v}");
        assert_eq!(v["error"]["status"], name, "{v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    };
    let no_key = request(
        gw.addr,
        "POST",
        &format!("/v1beta/models/{}:generateContent", NATIVE.0),
        &[("Content-Type", "application/json")],
        HELLO.as_bytes(),
    );
    shaped(&no_key, 401, "UNAUTHENTICATED");
    let unknown = gemini_post(&gw, "/v1beta/models/nope:generateContent", HELLO, &[]);
    shaped(&unknown, 404, "NOT_FOUND");
    let bad = gemini_post(
        &gw,
        &format!("/v1beta/models/{}:generateContent", NATIVE.0),
        "{not json",
        &[],
    );
    shaped(&bad, 400, "INVALID_ARGUMENT");
    let two = gemini_post(
        &gw,
        &format!("/v1beta/models/{}:generateContent", CHAT.0),
        r#"{"contents":[],"generationConfig":{"candidateCount":2}}"#,
        &[],
    );
    shaped(&two, 400, "INVALID_ARGUMENT");
    // a provider's 429 keeps its Retry-After, in Google's shape, for every backend
    for (model, _) in ALL {
        let r = gemini_post(
            &gw,
            &format!("/v1beta/models/{model}:generateContent"),
            HELLO,
            &[("x-mock-mode", "429:7")],
        );
        shaped(&r, 429, "RESOURCE_EXHAUSTED");
        assert_eq!(r.header("retry-after"), Some("7"), "{model}");
    }
    // the model list, in Gemini's shape
    let list = request(
        gw.addr,
        "GET",
        "/v1beta/models",
        &[("x-goog-api-key", TOKEN)],
        b"",
    );
    assert_eq!(list.status, 200, "{}", list.text());
    assert!(list.text().contains("models/gem-native"), "{}", list.text());
    // the key is in no log line and no metric
    assert!(!gw.log().contains(TOKEN), "{}", gw.log());
    assert!(!gw.metrics_text().contains(TOKEN));
}

#[test]
fn a_stream_cut_after_its_first_chunk_ends_with_an_error_chunk() {
    let m = gem_mock();
    let gw = three_backends(&m);
    for (model, _) in ALL {
        let r = gemini_post(
            &gw,
            &format!("/v1beta/models/{model}:streamGenerateContent?alt=sse"),
            HELLO,
            &[("x-mock-mode", "close:2")],
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let data = r.sse_data();
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert!(last["error"]["message"].is_string(), "{model}: {data:?}");
    }
}

// ---------------------------------------------------------------------------------------
// google-genai and Gemini CLI
// ---------------------------------------------------------------------------------------

const SDK_SCRIPT: &str = r#"
import json, os
from google import genai
from google.genai import types

client = genai.Client(api_key=os.environ["TOKEN"],
                      http_options=types.HttpOptions(base_url=os.environ["BASE_URL"]))
MODEL = os.environ["MODEL"]
out = {}
r = client.models.generate_content(model=MODEL, contents="Hello")
out["text"] = r.text
out["prompt_tokens"] = r.usage_metadata.prompt_token_count
out["stream"] = "".join(c.text or "" for c in client.models.generate_content_stream(
    model=MODEL, contents="Hello"))
weather = types.FunctionDeclaration(
    name="get_weather", description="Weather of a city",
    parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")},
                            required=["city"]))
tools = [types.Tool(function_declarations=[weather])]
hdrs = types.HttpOptions(headers={"x-mock-tool-use": "get_weather",
                                  "x-mock-tool-input": '{"city": "Paris"}'})
cfg = types.GenerateContentConfig(tools=tools, http_options=hdrs,
    automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
r1 = client.models.generate_content(model=MODEL, contents="Weather in Paris?", config=cfg)
call = r1.function_calls[0]
out["call"] = {"name": call.name, "args": dict(call.args)}
contents = [types.Content(role="user", parts=[types.Part(text="Weather in Paris?")]),
            r1.candidates[0].content,
            types.Content(role="user", parts=[types.Part.from_function_response(
                name="get_weather", response={"output": "sunny, 21C"})])]
r2 = client.models.generate_content(model=MODEL, contents=contents, config=cfg)
out["after_call"] = r2.text
if os.environ.get("COUNT") == "1":
    out["count"] = client.models.count_tokens(model=MODEL, contents="Hello").total_tokens
print(json.dumps(out))
"#;

#[test]
fn the_google_genai_sdk_works_on_every_backend() {
    let python = match std::env::var("BERRY_TEST_PYTHON") {
        Ok(p) => p,
        Err(_) if std::env::var("BERRY_SKIP_SDK_TEST").as_deref() == Ok("1") => return,
        Err(_) => panic!(
            "BERRY_TEST_PYTHON is not set: run scripts/test.sh (it installs google-genai into \
             .venv) or set BERRY_SKIP_SDK_TEST=1 to skip this test on purpose"
        ),
    };
    let m = gem_mock();
    let gw = three_backends(&m);
    let dir = temp_dir("gemini-sdk");
    let script = dir.join("gemini_check.py");
    std::fs::write(&script, SDK_SCRIPT).unwrap();
    for (model, _) in ALL {
        let count = if model == CHAT.0 { "0" } else { "1" };
        let out = Command::new(&python)
            .arg(&script)
            .env("BASE_URL", format!("http://{}", gw.addr))
            .env("TOKEN", TOKEN)
            .env("MODEL", model)
            .env("COUNT", count)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{model}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
        assert_eq!(v["text"], ANSWER, "{model}: {v}");
        assert_eq!(v["stream"], ANSWER, "{model}: {v}");
        assert!(v["prompt_tokens"].as_u64().unwrap() > 0, "{v}");
        assert_eq!(
            v["call"],
            json!({"name": "get_weather", "args": {"city": "Paris"}}),
            "{model}: {v}"
        );
        // the function's response reached the backend as the tool's result (translated
        // backends get the response object as JSON text)
        let after = v["after_call"].as_str().unwrap_or_default();
        assert!(
            after.starts_with("tool output: ") && after.contains("sunny, 21C"),
            "{model}: {v}"
        );
        if count == "1" {
            assert!(v["count"].as_u64().unwrap() > 0, "{model}: {v}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Gemini CLI's entry point (`BERRY_TEST_GEMINI`), or `None` (with a note) outside CI.
fn gemini_cli() -> Option<String> {
    match std::env::var("BERRY_TEST_GEMINI") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "BERRY_TEST_GEMINI is not set but CI=true: run scripts/test.sh (it installs \
             @google/gemini-cli into .tools/gemini-cli and exports BERRY_TEST_GEMINI)"
        ),
        _ => {
            eprintln!("note: skipping a Gemini CLI test: BERRY_TEST_GEMINI is not set");
            None
        }
    }
}

/// Runs `gemini -p PROMPT [-m MODEL]` against the gateway with a throwaway `HOME` whose
/// settings select API-key auth and turn off telemetry and updates.
fn gemini_p(cli: &str, gw: &Gateway, model: Option<&str>, prompt: &str) -> (bool, String, String) {
    let home = temp_dir("gemini-cli-home");
    std::fs::create_dir_all(home.join(".gemini")).unwrap();
    std::fs::write(
        home.join(".gemini/settings.json"),
        r#"{"security":{"auth":{"selectedType":"gemini-api-key"},"folderTrust":{"enabled":false}},"privacy":{"usageStatisticsEnabled":false},"general":{"enableAutoUpdate":false,"enableAutoUpdateNotification":false},"telemetry":{"enabled":false}}"#,
    )
    .unwrap();
    let mut cmd = Command::new(cli);
    cmd.arg("-p").arg(prompt);
    if let Some(m) = model {
        cmd.arg("-m").arg(m);
    }
    let out = cmd
        .current_dir(&home)
        .env("HOME", &home)
        .env("GEMINI_API_KEY", TOKEN)
        .env("GOOGLE_GEMINI_BASE_URL", format!("http://{}", gw.addr))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cli}: {e}"));
    let _ = std::fs::remove_dir_all(home);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn gemini_cli_prints_the_answer_of_every_backend() {
    let Some(cli) = gemini_cli() else {
        return;
    };
    let m = gem_mock();
    let gw = three_backends(&m);
    for (model, _) in ALL {
        let (ok, stdout, stderr) = gemini_p(&cli, &gw, Some(model), "say hi");
        assert!(
            ok && stdout.contains(ANSWER.trim()),
            "{model}:\n{stdout}\n{stderr}\n{}",
            gw.log()
        );
    }
    assert!(!gw.log().contains(TOKEN));
}

/// Gemini CLI without `-m`: its router call (`generateContent` with a `responseJsonSchema`)
/// must get schema-valid JSON back from a backend of `backend_type`, or the CLI gives up on
/// the flash model.
fn router_call_on(backend_type: &str, real: &str) {
    let Some(cli) = gemini_cli() else {
        return;
    };
    let m = gem_mock();
    let model = |key: &str, name: &str| {
        format!("[models.{key}]\nname = \"{name}\"\n[[models.{key}.backends]]\nprovider = \"p\"\nmodel = \"{real}\"\n")
    };
    let cfg = format!(
        "{}\n{}{}backend_type = \"{backend_type}\"\n{}{}{}",
        quiet_settings(),
        user("one", TOKEN, ""),
        steered_provider("p", &m),
        model("router", "gemini-3.5-flash-lite"),
        model("main", "gemini-3.8-flash"),
        model("pro", "gemini-3.1-pro-preview"),
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&m]);
    let (ok, stdout, stderr) = gemini_p(&cli, &gw, None, "say hi");
    assert!(
        ok && stdout.contains(ANSWER.trim()),
        "{backend_type}: {stdout}\n{stderr}\n{}",
        gw.log()
    );
    // the router's JSON answer was accepted: the flash model (score 1) served the answer
    let served = |name: &str| metric(&gw, "berry_requests_total", &[("model", name)]);
    assert_eq!(
        served("gemini-3.5-flash-lite"),
        1.0,
        "{backend_type}: {stderr}"
    );
    assert!(
        served("gemini-3.8-flash") >= 1.0,
        "{backend_type}: {stderr}"
    );
    assert_eq!(
        served("gemini-3.1-pro-preview"),
        0.0,
        "{backend_type}: {stderr}"
    );
}

#[test]
fn gemini_clis_router_call_on_a_native_backend() {
    router_call_on("gemini", "gemini-real");
}

#[test]
fn gemini_clis_router_call_on_an_openai_backend() {
    router_call_on("openai", "gpt-real");
}

#[test]
fn gemini_clis_router_call_on_an_anthropic_backend() {
    router_call_on("anthropic", "claude-real");
}

#[test]
fn bad_calls_get_google_shaped_4xx_and_nothing_goes_upstream() {
    let m = gem_mock();
    let gw = three_backends(&m);
    let hits = m.hits();
    let cases = [
        ("/v1beta/models/:generateContent", HELLO, 404),
        ("/v1beta/models/gem-native:unknownMethod", HELLO, 404),
        ("/v1beta/models/../gem-native:generateContent", HELLO, 404),
        (
            "/v1beta/models/x%2F..%2Fgem-native:generateContent",
            HELLO,
            404,
        ),
        ("/v1beta/models/gem-native/x:generateContent", HELLO, 404),
        (
            "/v1beta/models/gem-native:generateContent",
            r#"{"contents":"hello"}"#,
            400,
        ),
        (
            "/v1beta/models/gem-native:generateContent",
            r#"{"prompt":"hello"}"#,
            400,
        ),
        ("/v1beta/models/gem-native:generateContent", r#"[1,2]"#, 400),
        (
            "/v1beta/models/gem-native:generateContent",
            r#"{"model":"gem-chat","contents":[]}"#,
            400,
        ),
        (
            "/v1beta/models/gem-chat:generateContent",
            r#"{"contents":[{"parts":"x"}]}"#,
            400,
        ),
    ];
    for (path, body, status) in cases {
        let r = gemini_post(&gw, path, body, &[]);
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], status, "{path}: {v}");
        assert!(v["error"]["status"].is_string(), "{path}: {v}");
    }
    assert_eq!(m.hits(), hits, "nothing went upstream");
}

#[test]
fn a_native_backend_failing_before_its_first_part_fails_over_to_a_translated_one() {
    let (g, o) = (gem_mock(), gem_mock());
    let cfg = format!(
        "{}\n{}{}backend_type = \"gemini\"\n{}[models.m]\nname = \"mixed\"\nstrategy = \"failover\"\n[[models.m.backends]]\nprovider = \"g\"\nmodel = \"gemini-real\"\npriority = 1\n[[models.m.backends]]\nprovider = \"o\"\nmodel = \"gpt-real\"\npriority = 2\n",
        quiet_settings(),
        user("one", TOKEN, ""),
        provider("g", &g),
        provider("o", &o),
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&g, &o]);
    for mode in [
        berry_mock::Mode::Status(503),
        berry_mock::Mode::Preamble(berry_mock::PreambleEnd::Error),
    ] {
        g.set_mode(mode);
        let r = gemini_post(
            &gw,
            "/v1beta/models/mixed:streamGenerateContent?alt=sse",
            HELLO,
            &[],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let text: String = r
            .sse_data()
            .iter()
            .map(|d| text_of(&serde_json::from_str(d).unwrap()))
            .collect();
        assert_eq!(text, ANSWER, "{}", r.text());
        assert!(!r.text().contains("\"error\""), "{}", r.text());
    }
    assert_eq!(g.hits_for(":streamGenerateContent"), 2);
    assert_eq!(o.hits_for("/chat/completions"), 2);
}
