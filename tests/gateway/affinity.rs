//! Prompt caches stay warm: session affinity and automatic cache breakpoints, through the
//! real gateway. Sessions split by weight and stick to one backend for every strategy; a
//! failed backend moves a session for the TTL (in one replica's memory, or for the fleet
//! through a real `redis-server`); translated traffic to Anthropic backends gets cache
//! breakpoints, so the mock's simulated prompt cache reports reads on the second turn and
//! the cache tokens reach metrics and cost; real clients (Claude Code, the Python SDKs)
//! keep their sessions on one account. Only hashes of session keys are ever stored or logged.

use crate::claude_code::claude_bin;
use crate::harness::*;
use berry_mock::{MockProvider, Mode};
use redis::Commands;
use serde_json::{json, Value};
use std::time::Duration;

use redis_server::RedisServer;

const ADMIN: &str = "admin-secret-token";

/// Providers `a`, `b` on the two mocks and one model per entry of `models`: (key, strategy,
/// extra lines), each over `a` (weight 3) and `b` (weight 1).
fn config(
    settings: &str,
    a: &MockProvider,
    b: &MockProvider,
    models: &[(&str, &str, &str)],
) -> String {
    let settings = settings.replacen(
        "[settings]\n",
        &format!("[settings]\nadmin_token = \"{ADMIN}\"\n"),
        1,
    );
    let mut out = format!(
        "{settings}\n{u}\n{pa}{pb}",
        u = user("u", "tok", ""),
        pa = steered_provider("a", a),
        pb = steered_provider("b", b),
    );
    for (key, strategy, extra) in models {
        out.push_str(&format!(
            "[models.{key}]\nname = \"{key}\"\nstrategy = \"{strategy}\"\n{extra}\n\
             [[models.{key}.backends]]\nprovider = \"a\"\nmodel = \"real-a\"\nweight = 3\npriority = 1\n\
             [[models.{key}.backends]]\nprovider = \"b\"\nmodel = \"real-b\"\nweight = 1\npriority = 1\n"
        ));
    }
    out
}

/// A chat completion of `model` in session `key` (`x-berry-session`); which mock served it.
fn in_session(gw: &Gateway, model: &str, key: &str) -> String {
    let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    let r = gw.post_with(
        "/v1/chat/completions",
        "tok",
        &body,
        &[("x-berry-session", key)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    served_by(&r)
}

/// The first session key `prefix-<i>` whose requests to `model` land on mock `want`.
fn session_on(gw: &Gateway, model: &str, prefix: &str, want: &str) -> String {
    (0..200)
        .map(|i| format!("{prefix}-{i}"))
        .find(|k| in_session(gw, model, k) == want)
        .unwrap_or_else(|| panic!("no session of {model} lands on {want}"))
}

#[test]
fn a_thousand_sessions_split_three_to_one() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&config(
        &quiet_settings(),
        &a,
        &b,
        &[("m", "weighted_random", "")],
    ));
    settle(&gw, &[&a, &b]);
    let on_a = (0..1000)
        .filter(|i| in_session(&gw, "m", &format!("split-{i}")) == "a")
        .count();
    let share = on_a as f64 / 1000.0;
    assert!((share - 0.75).abs() < 0.04, "{on_a} of 1000 sessions on a");
    assert_eq!(
        metric(
            &gw,
            "berry_affinity_total",
            &[("model", "m"), ("result", "kept")]
        ),
        1000.0
    );
    // without a key: the strategy, counted as none
    assert_eq!(served_by(&gw.chat("tok", "m")).len(), 1);
    assert_eq!(
        metric(
            &gw,
            "berry_affinity_total",
            &[("model", "m"), ("result", "none")]
        ),
        1.0
    );
}

#[test]
fn one_session_stays_on_one_backend_for_every_strategy() {
    let a = mock("a");
    let b = mock("b");
    let strategies = [
        "weighted_random",
        "round_robin",
        "random",
        "least_latency",
        "failover",
        "weighted_failover",
        "least_connections",
        "smart_ai",
    ];
    let models: Vec<(String, &str)> = strategies.iter().map(|s| (format!("m-{s}"), *s)).collect();
    let spec: Vec<(&str, &str, &str)> = models.iter().map(|(k, s)| (k.as_str(), *s, "")).collect();
    let gw = Gateway::start(&config(&quiet_settings(), &a, &b, &spec));
    settle(&gw, &[&a, &b]);
    for (model, strategy) in &models {
        let mut seen = std::collections::HashSet::new();
        for s in 0..6 {
            let key = format!("{strategy}-session-{s}");
            let first = in_session(&gw, model, &key);
            seen.insert(first.clone());
            for _ in 0..8 {
                assert_eq!(in_session(&gw, model, &key), first, "{strategy} {key}");
            }
        }
        assert!(!seen.is_empty());
    }
    // affinity = "none": the strategy even with a key (round robin alternates)
    let gw = Gateway::start(&config(
        &quiet_settings(),
        &a,
        &b,
        &[("rr", "round_robin", "affinity = \"none\"")],
    ));
    settle(&gw, &[&a, &b]);
    let served: Vec<String> = (0..4).map(|_| in_session(&gw, "rr", "same")).collect();
    assert_ne!(served[0], served[1], "{served:?}");
    assert_eq!(
        metric(
            &gw,
            "berry_affinity_total",
            &[("model", "rr"), ("result", "none")]
        ),
        4.0
    );
}

#[test]
fn a_failed_backend_moves_the_session_for_the_ttl() {
    let a = mock("a");
    let b = mock("b");
    let settings = FAST_SETTINGS.to_string();
    let gw = Gateway::start(&config(
        &settings,
        &a,
        &b,
        &[
            ("m", "weighted_random", ""),
            ("short", "weighted_random", "affinity_ttl_seconds = 0.3"),
        ],
    ));
    settle(&gw, &[&a, &b]);
    let s1 = session_on(&gw, "m", "s1", "a");
    let s2 = session_on(&gw, "m", "s2", "a");
    let short = session_on(&gw, "short", "short", "a");
    // failover before the first byte: the session's attempt on `a` fails, `b` answers
    a.set_mode(Mode::Status(500));
    let moved = |model: &str| {
        metric(
            &gw,
            "berry_affinity_total",
            &[("model", model), ("result", "moved")],
        )
    };
    assert_eq!(in_session(&gw, "m", &s1), "b");
    assert_eq!(moved("m"), 1.0);
    assert_eq!(in_session(&gw, "short", &short), "b");
    // unhealthy / circuit open: the next session moves without trying `a`
    assert!(
        wait_until(Duration::from_secs(5), || admin_backends(&gw, ADMIN)
            .iter()
            .filter(|b| b["id"] == "m/a/real-a")
            .all(|b| b["available"] == false)),
        "{:?}",
        admin_backends(&gw, ADMIN)
    );
    let hits = a.hits_for("/chat/completions");
    assert_eq!(in_session(&gw, "m", &s2), "b");
    assert_eq!(a.hits_for("/chat/completions"), hits, "a was tried");
    // `a` recovers: the moved sessions stay on `b` (their cache lives there) for the TTL;
    // a session that never moved is back on `a`
    a.set_mode(Mode::Ok);
    assert!(
        wait_until(Duration::from_secs(10), || admin_backends(&gw, ADMIN)
            .iter()
            .filter(|b| b["id"] == "m/a/real-a")
            .all(|b| b["available"] == true)),
        "{:?}",
        admin_backends(&gw, ADMIN)
    );
    let fresh = session_on(&gw, "m", "fresh", "a");
    assert_eq!(in_session(&gw, "m", &fresh), "a");
    for _ in 0..5 {
        assert_eq!(in_session(&gw, "m", &s1), "b");
        assert_eq!(in_session(&gw, "m", &s2), "b");
    }
    // past a short TTL the session is back on its own backend
    assert!(
        wait_until(Duration::from_secs(5), || in_session(&gw, "short", &short)
            == "a"),
        "the move outlived its TTL"
    );
    // only hashes: the access log names the session by its hash, and the raw keys are
    // nowhere in the log or the metrics
    let hash = berry_gateway::body::SessionKey::of(s1.as_bytes()).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || gw
            .log()
            .contains(&format!("session={hash}"))),
        "{}",
        gw.log()
    );
    let text = gw.log() + &gw.metrics_text();
    for key in [&s1, &s2, &short, &fresh] {
        assert!(!text.contains(key.as_str()), "{key} leaked");
    }
}

#[test]
fn two_replicas_agree_on_a_session_through_redis() {
    let redis = RedisServer::start();
    let a = mock("a");
    let b = mock("b");
    let settings = quiet_settings()
        + &format!(
            "[settings.shared_state]\nredis_url = \"{}\"\ntimeout_ms = 200\n",
            redis.url()
        );
    let cfg = config(&settings, &a, &b, &[("m", "weighted_random", "")]);
    let g1 = Gateway::start(&cfg);
    let g2 = Gateway::start(&cfg);
    for g in [&g1, &g2] {
        settle(g, &[&a, &b]);
        assert!(
            wait_until(Duration::from_secs(5), || metric(
                g,
                "berry_shared_state_up",
                &[]
            ) == 1.0),
            "{}",
            g.log()
        );
    }
    // the same ranking on both replicas without any shared write
    for i in 0..20 {
        let key = format!("both-{i}");
        assert_eq!(
            in_session(&g1, "m", &key),
            in_session(&g2, "m", &key),
            "{key}"
        );
    }
    let mut conn = redis.client();
    let moves = |conn: &mut redis::Connection| -> Vec<String> {
        conn.keys::<_, Vec<String>>("berry:rec:aff:*").unwrap()
    };
    assert!(moves(&mut conn).is_empty(), "no session moved yet");
    // a move learnt by g1 (its attempt on `a` failed) ...
    let key = session_on(&g1, "m", "fleet", "a");
    a.set_mode(Mode::Status(500));
    assert_eq!(in_session(&g1, "m", &key), "b");
    a.set_mode(Mode::Ok);
    assert!(
        wait_until(Duration::from_secs(5), || moves(&mut conn).len() == 1),
        "the move did not reach Redis"
    );
    let stored = moves(&mut conn);
    assert!(!stored[0].contains(&key), "raw key in Redis: {stored:?}");
    let ttl: i64 = conn.ttl(&stored[0]).unwrap();
    assert!((3000..=3600).contains(&ttl), "{ttl}");
    // ... is followed by g2, which saw `a` fail for nobody (its own ranking says `a`)
    for _ in 0..3 {
        assert_eq!(in_session(&g2, "m", &key), "b");
        assert_eq!(in_session(&g1, "m", &key), "b");
    }
    let other = session_on(&g2, "m", "control", "a");
    assert_eq!(in_session(&g1, "m", &other), "a");
}

/// A config with user `u` and an Anthropic provider `an` on `an_mock` (model
/// `claude-sonnet-4-5`, the catalog's prices) serving model `cc`, plus `extra` provider lines.
fn anthropic_config(an_mock: &MockProvider, extra: &str) -> String {
    format!(
        "{settings}\n{u}\n[providers.an]\nbase_url = \"{url}\"\napi_key = \"key-an\"\nbackend_type = \"anthropic\"\n{extra}\n\
         [models.cc]\nname = \"cc\"\n[[models.cc.backends]]\nprovider = \"an\"\nmodel = \"claude-sonnet-4-5\"\n",
        settings = quiet_settings(),
        u = user("u", "tok", ""),
        url = an_mock.base_url(),
    )
}

/// A chat conversation of `turns` user turns (a long shared system prompt).
fn chat_turn(turns: usize) -> String {
    let mut messages =
        vec![json!({"role": "system", "content": "You are a coding agent. ".repeat(200)})];
    for i in 0..turns {
        if i > 0 {
            messages.push(json!({"role": "assistant", "content": format!("answer {i}")}));
        }
        messages.push(json!({"role": "user", "content": format!("question {i}")}));
    }
    json!({"model": "cc", "messages": messages}).to_string()
}

#[test]
fn translated_turns_get_breakpoints_and_read_the_cache() {
    let an = mock_with("an", |o| {
        o.prompt_cache = true;
        o.require_anthropic_version = true;
    });
    let gw = Gateway::start(&anthropic_config(&an, ""));
    settle(&gw, &[&an]);
    let cost = || metric(&gw, "berry_cost_usd_total", &[("model", "cc")]);
    let first = gw.post("/v1/chat/completions", "tok", &chat_turn(1));
    assert_eq!(first.status, 200, "{}", first.text());
    // the translated body carries the markers: system and the user turn
    let seen: Value = serde_json::from_slice(&an.last_request().unwrap().body).unwrap();
    assert_eq!(
        seen["system"][0]["cache_control"]["type"], "ephemeral",
        "{seen}"
    );
    let last = seen["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["content"][0]["cache_control"]["type"], "ephemeral",
        "{seen}"
    );
    assert_eq!(
        first.json()["usage"]["prompt_tokens_details"]["cached_tokens"],
        0
    );
    // the second identical turn reads what the first wrote
    let before = cost();
    let second = gw.post("/v1/chat/completions", "tok", &chat_turn(1));
    assert_eq!(second.status, 200, "{}", second.text());
    let usage = &second.json()["usage"];
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached > 500, "{usage}");
    let input = usage["prompt_tokens"].as_u64().unwrap() - cached;
    let output = usage["completion_tokens"].as_u64().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || metric(
            &gw,
            "berry_tokens_total",
            &[("model", "cc"), ("type", "cache_read")]
        ) == cached as f64),
        "{}",
        gw.metrics_text()
    );
    // cost at Sonnet's prices: cache reads at $0.30/M, not $3/M
    let want = (input as f64 * 3.0 + output as f64 * 15.0 + cached as f64 * 0.3) / 1e6;
    assert!(
        wait_until(Duration::from_secs(5), || (cost() - before - want).abs()
            < 1e-9),
        "cost {} want {want}",
        cost() - before
    );
    // the next turn reads the previous turn's prefix
    let third = gw.post("/v1/chat/completions", "tok", &chat_turn(2));
    assert_eq!(third.status, 200, "{}", third.text());
    let cached3 = third.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached3 >= cached, "{cached3} < {cached}");
}

#[test]
fn breakpoints_for_every_translated_client_and_never_on_native_messages() {
    let an = mock_with("an", |o| o.prompt_cache = true);
    let off = mock_with("off", |o| o.prompt_cache = true);
    let extra = format!(
        "[providers.off]\nbase_url = \"{}\"\napi_key = \"key-off\"\nbackend_type = \"anthropic\"\nauto_cache = false\n\
         [models.nocache]\nname = \"nocache\"\n[[models.nocache.backends]]\nprovider = \"off\"\nmodel = \"claude-sonnet-4-5\"\n",
        off.base_url()
    );
    let gw = Gateway::start(&anthropic_config(&an, &extra));
    settle(&gw, &[&an, &off]);
    let markers = |m: &MockProvider| {
        let body = m.last_request().unwrap().body;
        String::from_utf8_lossy(&body)
            .matches("\"cache_control\"")
            .count()
    };
    // Responses → Messages
    let r = gw.post(
        "/v1/responses",
        "tok",
        r#"{"model":"cc","instructions":"Be brief.","input":"hello","store":false}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(markers(&an), 2, "system and the user turn");
    // Gemini → Messages
    let r = gw.post(
        "/v1beta/models/cc:generateContent",
        "tok",
        r#"{"systemInstruction":{"parts":[{"text":"Be brief."}]},"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":[{"name":"f","parameters":{"type":"object"}}]}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(markers(&an), 3, "system, tool and the user turn");
    // a provider with auto_cache = false gets none
    let r = gw.post(
        "/v1/chat/completions",
        "tok",
        &chat_turn(2).replace("\"cc\"", "\"nocache\""),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(markers(&off), 0);
    // a client that set markers of its own: the gateway adds none
    let own = r#"{"model":"cc","messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]}"#;
    let r = gw.post("/v1/chat/completions", "tok", own);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(markers(&an), 0);
    // native /v1/messages: byte-exact but for the model
    let native = r#"{"model":"cc","max_tokens":16,  "system":"Be brief.","messages":[{"role":"user","content":"hi"}]}"#;
    let r = gw.post_with(
        "/v1/messages",
        "tok",
        native,
        &[("anthropic-version", "2023-06-01")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        an.last_request().unwrap().body,
        native
            .replace("\"cc\"", "\"claude-sonnet-4-5\"")
            .into_bytes()
    );
}

// ---------------------------------------------------------------------------------------
// Real clients
// ---------------------------------------------------------------------------------------

/// Two Anthropic accounts (`an1`, `an2`, one mock each) serving model `cc` (weights 1:1; the
/// answer's model tells them apart), and two OpenAI accounts (`o1`, `o2`) serving `oa`.
fn two_accounts(
    an1: &MockProvider,
    an2: &MockProvider,
    o1: &MockProvider,
    o2: &MockProvider,
) -> String {
    let anthropic = |id: &str, m: &MockProvider| {
        format!(
            "[providers.{id}]\nbase_url = \"{}\"\napi_key = \"key-{id}\"\nbackend_type = \"anthropic\"\n",
            m.base_url()
        )
    };
    format!(
        "{settings}\n{u}\n{p1}{p2}{p3}{p4}\
         [models.cc]\nname = \"cc\"\n\
         [[models.cc.backends]]\nprovider = \"an1\"\nmodel = \"claude-sonnet-4-5\"\n\
         [[models.cc.backends]]\nprovider = \"an2\"\nmodel = \"claude-sonnet-4-5-20250929\"\n\
         [models.oa]\nname = \"oa\"\n\
         [[models.oa.backends]]\nprovider = \"o1\"\nmodel = \"gpt-4o\"\n\
         [[models.oa.backends]]\nprovider = \"o2\"\nmodel = \"gpt-4o\"\n",
        settings = quiet_settings(),
        u = user("u", "tok", ""),
        p1 = anthropic("an1", an1),
        p2 = anthropic("an2", an2),
        p3 = provider("o1", o1),
        p4 = provider("o2", o2),
    )
}

/// Runs `claude -p PROMPT` with `args` against the gateway (throwaway HOME, stdin from
/// /dev/null); panics with its output when it fails.
fn claude(bin: &str, gw: &Gateway, home: &std::path::Path, prompt: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(bin)
        .arg("-p")
        .arg(prompt)
        .args(["--model", "cc"])
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env("ANTHROPIC_BASE_URL", format!("http://{}", gw.addr))
        .env("ANTHROPIC_API_KEY", "tok")
        .env("ANTHROPIC_SMALL_FAST_MODEL", "cc")
        .env("ANTHROPIC_DEFAULT_HAIKU_MODEL", "cc")
        .env("DISABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "claude failed:\n{stdout}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log()
    );
    stdout
}

#[test]
fn claude_code_keeps_one_session_on_one_account() {
    let Some(bin) = claude_bin() else {
        return;
    };
    let an1 = mock_with("an1", |o| o.prompt_cache = true);
    let an2 = mock_with("an2", |o| o.prompt_cache = true);
    let o1 = mock("o1");
    let o2 = mock("o2");
    let gw = Gateway::start(&two_accounts(&an1, &an2, &o1, &o2));
    settle(&gw, &[&an1, &an2, &o1, &o2]);
    let home = temp_dir("claude-home");
    // Sessions split across the two accounts; each run's requests stay on one of them.
    let mut used = [0u64; 2];
    for i in 0..4 {
        let id = format!("00000000-0000-4000-8000-00000000000{i}");
        let before = [an1.hits_for("/messages"), an2.hits_for("/messages")];
        claude(&bin, &gw, &home, "say hi", &["--session-id", &id]);
        claude(&bin, &gw, &home, "say hi again", &["--resume", &id]);
        let after = [an1.hits_for("/messages"), an2.hits_for("/messages")];
        let delta = [after[0] - before[0], after[1] - before[1]];
        assert!(delta[0] + delta[1] >= 2, "{delta:?}");
        assert!(
            delta[0] == 0 || delta[1] == 0,
            "session {id} spread: {delta:?}"
        );
        used[usize::from(delta[0] == 0)] += 1;
    }
    assert!(
        metric(
            &gw,
            "berry_affinity_total",
            &[("model", "cc"), ("result", "kept")]
        ) >= 8.0,
        "{}",
        gw.metrics_text()
    );
    let _ = std::fs::remove_dir_all(home);
}

/// Python that sends four requests in one session with the `openai` SDK
/// (`prompt_cache_key`) and four with the `anthropic` SDK (`metadata.user_id`), and prints
/// which account answered each.
const SDK_SCRIPT: &str = r#"
import json, os
from openai import OpenAI
from anthropic import Anthropic

base = os.environ["BASE_URL"]
oa = OpenAI(base_url=base + "/v1", api_key="tok", max_retries=0)
an = Anthropic(base_url=base, api_key="tok", max_retries=0)
out = {"openai": [], "anthropic": []}
for session in ["alpha", "beta", "gamma"]:
    got = []
    for _ in range(4):
        r = oa.chat.completions.create(model="oa", prompt_cache_key=session,
                                       messages=[{"role": "user", "content": "hi"}])
        got.append(r.system_fingerprint)
    out["openai"].append(got)
    got = []
    for _ in range(4):
        r = an.messages.create(model="cc", max_tokens=16, metadata={"user_id": session},
                               messages=[{"role": "user", "content": "hi"}])
        got.append(r.model)
    out["anthropic"].append(got)
print(json.dumps(out))
"#;

#[test]
fn python_sdks_keep_a_session_on_one_account() {
    let python = match std::env::var("BERRY_TEST_PYTHON") {
        Ok(p) => p,
        Err(_) if std::env::var("BERRY_SKIP_SDK_TEST").as_deref() == Ok("1") => return,
        Err(_) => panic!(
            "BERRY_TEST_PYTHON is not set (scripts/test.sh) and BERRY_SKIP_SDK_TEST is not 1"
        ),
    };
    let an1 = mock("an1");
    let an2 = mock("an2");
    let o1 = mock("o1");
    let o2 = mock("o2");
    let gw = Gateway::start(&two_accounts(&an1, &an2, &o1, &o2));
    settle(&gw, &[&an1, &an2, &o1, &o2]);
    let dir = temp_dir("affinity-sdk");
    let path = dir.join("sessions.py");
    std::fs::write(&path, SDK_SCRIPT).unwrap();
    let out = std::process::Command::new(&python)
        .arg(&path)
        .env("BASE_URL", format!("http://{}", gw.addr))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    for sdk in ["openai", "anthropic"] {
        for session in v[sdk].as_array().unwrap() {
            let served: Vec<&str> = session
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap_or("?"))
                .collect();
            assert!(served[0] != "?", "{sdk}: {served:?}");
            assert!(served.iter().all(|s| *s == served[0]), "{sdk}: {served:?}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
