//! Every request is charged: a client cannot switch usage off, and a stream the client
//! abandons still counts its tokens (exactly where the backend already reported them, else
//! estimated), its upstream connection closed at once.

use crate::harness::*;
use berry_mock::MockProvider;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One OpenAI-family provider `a` and one Anthropic provider `an` (both steerable), users
/// `u0`..`u3` with a 60-token minute budget, user `free` without limits. Model and backend
/// names have equal lengths so the forwarded body is as long as the client's.
fn config(a: &MockProvider, an: &MockProvider) -> String {
    let mut users = String::new();
    for i in 0..4 {
        users.push_str(&format!(
            "[users.u{i}]\ntoken = \"tok{i}\"\n[users.u{i}.rate_limit]\ntokens_per_minute = 60\n"
        ));
    }
    format!(
        "{settings}\n{users}[users.free]\ntoken = \"tok-free\"\n{p}\n[providers.an]\nbase_url = \"{an_url}\"\napi_key = \"k\"\nbackend_type = \"anthropic\"\n{MOCK_STEERING}\n[models.m]\nname = \"model-x\"\n[[models.m.backends]]\nprovider = \"a\"\nmodel = \"real-x\"\n[models.c]\nname = \"claude-x\"\n[[models.c.backends]]\nprovider = \"an\"\nmodel = \"claude-r\"\n",
        settings = quiet_settings(),
        p = steered_provider("a", a),
        an_url = an.base_url(),
    )
}

fn stream_body(stream_options: Option<&str>) -> String {
    let opts = stream_options.map_or(String::new(), |o| format!(r#","stream_options":{o}"#));
    format!(
        r#"{{"model":"model-x","stream":true{opts},"messages":[{{"role":"user","content":"hi"}}]}}"#
    )
}

/// Whether a stream carries a usage-only chunk (`"choices":[]` with a usage object).
fn has_usage_chunk(r: &Resp) -> bool {
    r.sse_data().iter().any(|d| {
        serde_json::from_str::<serde_json::Value>(d).is_ok_and(|v| {
            v["choices"].as_array().is_some_and(|c| c.is_empty()) && v["usage"].is_object()
        })
    })
}

#[test]
fn a_client_cannot_switch_usage_off() {
    let (a, an) = (mock("a"), mock("an"));
    a.set_recording(true);
    let gw = Gateway::start(&config(&a, &an));
    settle(&gw, &[&a, &an]);
    for (i, opts) in [r#"{"include_usage":false}"#, "null", r#""off""#, "[true]"]
        .iter()
        .enumerate()
    {
        let (user, token) = (format!("u{i}"), format!("tok{i}"));
        let mut admitted = 0;
        let refused = loop {
            let r = gw.post("/v1/chat/completions", &token, &stream_body(Some(opts)));
            if r.status != 200 {
                break r;
            }
            admitted += 1;
            assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
            assert!(!has_usage_chunk(&r), "{opts}: usage chunk not asked for");
            // the backend was asked for usage whatever the client sent
            let sent = a.last_request().unwrap();
            let sent: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
            assert_eq!(sent["stream_options"]["include_usage"], true, "{opts}");
            assert!(
                wait_until(Duration::from_secs(2), || metric(
                    &gw,
                    "berry_tokens_total",
                    &[("user", &user), ("type", "output")]
                ) >= admitted as f64),
                "{opts}: tokens counted"
            );
            assert!(admitted < 40, "{opts}: the token budget never ran out");
        };
        assert_eq!(refused.status, 429, "{opts}: {}", refused.text());
        assert_eq!(refused.error_code(), "user_token_budget_exceeded");
    }
    // a client that asks for usage still gets its usage chunk
    let r = gw.post(
        "/v1/chat/completions",
        "tok-free",
        &stream_body(Some(r#"{"include_usage":true}"#)),
    );
    assert_eq!(r.status, 200);
    assert!(has_usage_chunk(&r), "{}", r.text());
    // a client that did not mention it gets none, and is charged
    let before = metric(&gw, "berry_tokens_total", &[("user", "free")]);
    let r = gw.post("/v1/chat/completions", "tok-free", &stream_body(None));
    assert_eq!(r.status, 200);
    assert!(!has_usage_chunk(&r), "{}", r.text());
    assert!(wait_until(Duration::from_secs(2), || metric(
        &gw,
        "berry_tokens_total",
        &[("user", "free")]
    ) > before));
}

/// Sends `body` to `path` on a raw connection and returns the reader once the first
/// `data:` line of a content event arrived (the rest of the stream is never read).
fn read_first_chunk(gw: &Gateway, path: &str, body: &str, extra: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer tok-free\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream ended early");
        if line.starts_with("data:") && (line.contains("delta")) {
            return r;
        }
    }
}

/// Waits until `m`'s open connections are back to `baseline`; fails if that takes as long
/// as the stream would have run.
fn assert_upstream_closed(m: &MockProvider, baseline: usize, stream_lasts: Duration) {
    let started = Instant::now();
    assert!(
        wait_until(stream_lasts, || m.active_connections() <= baseline),
        "upstream connection still open ({} > {baseline})",
        m.active_connections()
    );
    assert!(started.elapsed() < stream_lasts);
}

const SLOW: &str = "x-mock-chunks: 60\r\nx-mock-interval-ms: 100\r\n";

#[test]
fn an_abandoned_openai_stream_is_charged_an_estimate() {
    let (a, an) = (mock("a"), mock("an"));
    let mut gw = Gateway::start(&config(&a, &an));
    settle(&gw, &[&a, &an]);
    let baseline = a.active_connections();
    let body = stream_body(None);
    let r = read_first_chunk(&gw, "/v1/chat/completions", &body, SLOW);
    assert!(a.active_connections() > baseline, "stream in progress");
    drop(r);
    assert_upstream_closed(&a, baseline, Duration::from_secs(5));
    let counted = |kind: &str| {
        metric(
            &gw,
            "berry_tokens_total",
            &[("user", "free"), ("type", kind)],
        )
    };
    assert!(wait_until(Duration::from_secs(3), || counted("output") >= 1.0));
    // the prompt estimate: the request body's bytes / 4
    assert_eq!(counted("input"), (body.len() / 4) as f64);
    let log = gw.stop();
    let line = log
        .lines()
        .find(|l| l.contains("berry::access") && l.contains("user=free"))
        .unwrap_or_else(|| panic!("no access line:\n{log}"));
    assert!(line.contains("estimated=true"), "{line}");
    assert!(line.contains("status=200"), "{line}");
}

#[test]
fn an_abandoned_anthropic_stream_is_charged_its_reported_input() {
    let (a, an) = (mock("a"), mock("an"));
    let mut gw = Gateway::start(&config(&a, &an));
    settle(&gw, &[&a, &an]);
    let baseline = an.active_connections();
    let body = r#"{"model":"claude-x","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hello there"}]}"#;
    let r = read_first_chunk(&gw, "/v1/messages", body, SLOW);
    drop(r);
    assert_upstream_closed(&an, baseline, Duration::from_secs(5));
    let counted = |kind: &str| {
        metric(
            &gw,
            "berry_tokens_total",
            &[("user", "free"), ("type", kind)],
        )
    };
    assert!(wait_until(Duration::from_secs(3), || counted("input") > 0.0));
    // exact: what the mock's `message_start` reported (its prompt is body bytes / 4 + 1)
    assert_eq!(counted("input"), (body.len() / 4 + 1) as f64);
    assert!(counted("output") >= 1.0);
    let log = gw.stop();
    assert!(
        log.lines()
            .any(|l| l.contains("berry::access") && l.contains("user=free")),
        "{log}"
    );
}

#[test]
fn translated_streams_are_charged_and_keep_their_own_usage_events() {
    let (a, an) = (mock("a"), mock("an"));
    let gw = Gateway::start(&config(&a, &an));
    settle(&gw, &[&a, &an]);
    let tokens = || metric(&gw, "berry_tokens_total", &[("user", "free")]);
    // a chat client on an Anthropic backend: a usage chunk only when it asked
    for (opts, usage_chunk) in [
        (r#"{"include_usage":false}"#, false),
        (r#"{"include_usage":true}"#, true),
    ] {
        let before = tokens();
        let body = stream_body(Some(opts)).replace("model-x", "claude-x");
        let r = gw.post("/v1/chat/completions", "tok-free", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(has_usage_chunk(&r), usage_chunk, "{opts}: {}", r.text());
        assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
        assert!(
            wait_until(Duration::from_secs(2), || tokens() > before),
            "{opts}"
        );
    }
    // a Messages client on an OpenAI-family backend: its usage in `message_delta`
    let before = tokens();
    let r = gw.post(
        "/v1/messages",
        "tok-free",
        r#"{"model":"model-x","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("message_delta") && r.text().contains("output_tokens"));
    assert!(wait_until(Duration::from_secs(2), || tokens() > before));
}

#[test]
fn an_abandoned_translated_stream_is_charged_an_estimate() {
    let (a, an) = (mock("a"), mock("an"));
    let mut gw = Gateway::start(&config(&a, &an));
    settle(&gw, &[&a, &an]);
    let baseline = a.active_connections();
    // a Messages client on an OpenAI-family backend, whose usage would come last
    let body = r#"{"model":"model-x","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hello there"}]}"#;
    drop(read_first_chunk(&gw, "/v1/messages", body, SLOW));
    assert_upstream_closed(&a, baseline, Duration::from_secs(5));
    let counted = |kind: &str| {
        metric(
            &gw,
            "berry_tokens_total",
            &[("user", "free"), ("type", kind)],
        )
    };
    assert!(wait_until(Duration::from_secs(3), || counted("output") >= 1.0));
    assert_eq!(counted("input"), (body.len() / 4) as f64);
    let log = gw.stop();
    assert!(
        log.lines().any(|l| l.contains("berry::access")
            && l.contains("user=free")
            && l.contains("estimated=true")),
        "{log}"
    );
}
