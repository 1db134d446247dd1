//! What a hostile client sends, what a lying upstream does and what a reload must forget,
//! over real sockets: case-folded keys are refused and counted; a provider whose key or
//! URL changed starts with fresh health and backend state; a stream that fails before its
//! first content event is answered with an error status; Gemini's refused key is an auth
//! failure; an HTTP/1.0 client's stream still has the upstream header deadline.

use crate::harness::*;
use berry_mock::{MockProvider, Mode, PreambleEnd};
use std::io::{Read, Write};
use std::time::Duration;

const ADMIN: &str = "admin-secret-token";

#[test]
fn case_folded_model_and_stream_keys_are_refused_and_counted() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&two_backend_model(&quiet_settings(), "failover", &a, &b));
    settle(&gw, &[&a, &b]);
    for body in [
        r#"{"model":"model-x","MODEL":"other","messages":[]}"#,
        r#"{"model":"model-x","Model":"other","messages":[]}"#,
        r#"{"model":"model-x","ſtream":true,"messages":[]}"#,
    ] {
        let r = gw.post("/v1/chat/completions", "tok", body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    }
    let chats = a.hits_for("/chat/completions") + b.hits_for("/chat/completions");
    assert_eq!(chats, 0, "nothing reached a provider");
    assert_eq!(
        metric(
            &gw,
            "berry_invalid_requests_total",
            &[("reason", "case_folded_key")]
        ),
        3.0
    );
}

#[test]
fn a_provider_whose_key_changed_starts_with_fresh_state() {
    let a = mock("a");
    let b = mock("b");
    let settings = quiet_settings()
        + "admin_token = \"admin-secret-token\"\ncircuit_breaker_timeout_seconds = 600\n";
    let settings = settings.replace("circuit_breaker_timeout_seconds = 1\n", "");
    let config = two_backend_model(&settings, "failover", &a, &b);
    let gw = Gateway::start(&config);
    settle(&gw, &[&a, &b]);
    // a's key is refused: three failures open its circuit and lower its confidence
    a.set_mode(Mode::KeyRejected);
    for _ in 0..3 {
        assert_eq!(gw.chat("tok", "model-x").status, 200);
    }
    let state = |gw: &Gateway| {
        let backends = admin_backends(gw, ADMIN);
        (
            backends[0]["circuit"].as_str().unwrap().to_string(),
            backends[0]["confidence"].as_f64().unwrap(),
        )
    };
    let (circuit, confidence) = state(&gw);
    assert_eq!(circuit, "open");
    assert!(confidence < 0.8, "{confidence}");
    // a reload that leaves a alone keeps what was learned about it
    gw.write_config(&config.replace("weight = 0.2", "weight = 0.3"));
    assert!(wait_until(Duration::from_secs(3), || metric(
        &gw,
        "berry_config_reloads_total",
        &[("result", "success")]
    ) >= 1.0));
    assert_eq!(state(&gw).0, "open", "unchanged provider keeps its circuit");
    // the operator fixes the key: a starts over
    a.set_mode(Mode::Ok);
    gw.write_config(&config.replace("key-a", "key-a-fixed"));
    assert!(wait_until(Duration::from_secs(3), || metric(
        &gw,
        "berry_config_reloads_total",
        &[("result", "success")]
    ) >= 2.0));
    let (circuit, confidence) = state(&gw);
    assert_eq!(circuit, "closed");
    assert!(
        (confidence - 0.8).abs() < 1e-9,
        "fresh confidence: {confidence}"
    );
    let r = gw.chat("tok", "model-x");
    assert_eq!(served_by(&r), "a", "a takes traffic again at once");
    assert_eq!(
        a.last_request().unwrap().header("authorization"),
        Some("Bearer key-a-fixed")
    );
}

/// Model `model-x` over one backend on mock `m`, which speaks `backend_type`.
fn one_backend(m: &MockProvider, backend_type: &str, settings: &str) -> String {
    format!(
        "{settings}\n{}{}backend_type = \"{backend_type}\"\n[models.m]\nname = \"model-x\"\n[[models.m.backends]]\nprovider = \"a\"\nmodel = \"real-a\"\n",
        user("u", "tok", ""),
        provider("a", m),
    )
}

#[test]
fn a_stream_failing_before_its_first_content_event_gets_an_error_status() {
    // translated (an OpenAI client on an Anthropic backend: `message_start`, `ping`, then
    // `overloaded_error`: 503, as the provider's status would have been) and same-dialect (a
    // role-only chunk, then an in-band error: 502)
    for (backend_type, status) in [("anthropic", 503), ("openai", 502)] {
        let want = status.to_string();
        let a = mock("a");
        let gw = Gateway::start(&one_backend(&a, backend_type, &quiet_settings()));
        settle(&gw, &[&a]);
        // the head and the preamble arrive first, the failure on its own after a pause
        a.set_stream_shape(3, Duration::from_millis(300));
        a.set_mode(Mode::Preamble(PreambleEnd::Error));
        let r = gw.chat_stream("tok", "model-x");
        assert_eq!(r.status, status, "{backend_type}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.json()["error"]["type"],
            "upstream_error",
            "{backend_type}"
        );
        // what the client got is what the metrics and the access log record
        let code = |c: &str| metric(&gw, "berry_requests_total", &[("code", c)]);
        assert!(
            wait_until(Duration::from_secs(5), || code(&want) == 1.0),
            "{backend_type}: {}",
            gw.metrics_text()
        );
        assert_eq!(code("200"), 0.0, "{backend_type}");
        assert!(
            wait_until(Duration::from_secs(5), || gw
                .log()
                .contains(&format!("status={want}"))),
            "{backend_type}: {}",
            gw.log()
        );
        assert!(!gw.log().contains("status=200"), "{}", gw.log());
    }
}

#[test]
fn a_gemini_key_refused_with_400_is_an_upstream_auth_failure() {
    let a = mock("a");
    let b = mock("b");
    // a high breaker threshold: the refusals keep a first in line
    let settings = quiet_settings().replace(
        "circuit_breaker_failure_threshold = 3",
        "circuit_breaker_failure_threshold = 50",
    );
    let config = two_backend_model(&settings, "failover", &a, &b)
        .replace(
            "api_key = \"key-a\"\n",
            "api_key = \"key-a\"\nbackend_type = \"gemini\"\n",
        )
        .replace(
            "api_key = \"key-b\"\n",
            "api_key = \"key-b\"\nbackend_type = \"gemini\"\n",
        );
    let gw = Gateway::start(&config);
    settle(&gw, &[&a, &b]);
    a.set_mode(Mode::GeminiKeyRejected);
    // a backend failure: retried on b, a's body never passed on
    for stream in [false, true] {
        let r = if stream {
            gw.chat_stream("tok", "model-x")
        } else {
            gw.chat("tok", "model-x")
        };
        assert_eq!(r.status, 200, "stream {stream}: {}", r.text());
        assert!(
            r.text().contains("\"system_fingerprint\":\"b\""),
            "{}",
            r.text()
        );
    }
    assert_eq!(a.hits_for("/chat/completions"), 2);
    // nothing left: 502 upstream_auth_failed, the provider's body stays hidden
    b.set_mode(Mode::GeminiKeyRejected);
    for stream in [false, true] {
        let r = if stream {
            gw.chat_stream("tok", "model-x")
        } else {
            gw.chat("tok", "model-x")
        };
        assert_eq!(r.status, 502, "stream {stream}: {}", r.text());
        assert_eq!(r.error_code(), "upstream_auth_failed");
        assert!(!r.text().contains("API key not valid"), "{}", r.text());
    }
    // any other 400 is the client's, passed through as before
    a.set_mode(Mode::Status(400));
    let r = gw.chat("tok", "model-x");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
}

#[test]
fn an_http10_client_stream_gets_the_upstream_header_deadline() {
    // the attempt timeout (1 s) is far shorter than the stream idle timeout (60 s): only
    // the header deadline can end the wait
    let settings = quiet_settings()
        .replace("request_timeout_seconds = 2", "request_timeout_seconds = 1")
        .replace(
            "stream_idle_timeout_seconds = 2",
            "stream_idle_timeout_seconds = 60",
        )
        + "retry_on_timeout = false\n";
    let a = mock("a");
    let gw = Gateway::start(&one_backend(&a, "openai", &settings));
    settle(&gw, &[&a]);
    a.set_mode(Mode::Hang);
    let body = r#"{"model":"model-x","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let t0 = std::time::Instant::now();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.0\r\nHost: gw\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1."), "no answer: {answer:?}");
    assert!(answer.contains(" 504 "), "{answer}");
    assert!(answer.contains("upstream_timeout"), "{answer}");
    // far below the idle timeout: the header deadline ended the wait
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
}

#[test]
fn check_config_and_reload_errors_never_print_the_offending_line() {
    let dir = temp_dir("syntax-errors");
    let path = dir.join("berry.toml");
    let a = mock("a");
    let good = one_backend(&a, "openai", &quiet_settings());
    // a duplicated key line, and a half-saved file whose string never ends
    let duplicate = good.replace(
        "api_key = \"key-a\"\n",
        "api_key = \"sk-first-secret\"\napi_key = \"sk-second-secret\"\n",
    );
    let half_saved = format!("{good}[users.v]\ntoken = \"tok-half-saved-secret\n");
    for (bad, key) in [
        (&duplicate, "providers.a.api_key"),
        (&half_saved, "users.v.token"),
    ] {
        std::fs::write(&path, bad).unwrap();
        let out = std::process::Command::new(binary())
            .arg("--check-config")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{shown}");
        for secret in ["sk-first", "sk-second", "half-saved"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert!(shown.contains(key) && shown.contains("line "), "{shown}");
    }
    // the same for a watched reload of the half-saved file
    let gw = Gateway::start(&good);
    settle(&gw, &[&a]);
    gw.write_config(&half_saved);
    // the refusal is logged (the metric can count it before the line reaches the log)
    assert!(
        wait_until(Duration::from_secs(5), || gw
            .log()
            .contains("reload refused")),
        "{}",
        gw.log()
    );
    assert_eq!(
        metric(&gw, "berry_config_reloads_total", &[("result", "error")]),
        1.0
    );
    let log = gw.log();
    assert!(log.contains("users.v.token"), "{log}");
    assert!(!log.contains("half-saved"), "{log}");
}
