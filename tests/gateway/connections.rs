//! Hostile clients and slow upstreams at the connection level (SPEC §12): `Expect:
//! 100-continue`. Everything over real sockets.

use crate::harness::*;
use berry_mock::{MockProvider, Mode};

/// [`quiet_settings`] with long attempt and stream timeouts (so only the limit under test
/// can cut) and the admin API on (token `adm`); `extra` lines add keys or replace them.
fn settings(extra: &str) -> String {
    let base = quiet_settings()
        .replace(
            "request_timeout_seconds = 2",
            "request_timeout_seconds = 20",
        )
        .replace(
            "stream_idle_timeout_seconds = 2",
            "stream_idle_timeout_seconds = 30",
        );
    let replaced = |line: &str| {
        extra.lines().any(|e| {
            let key = e.split('=').next().unwrap_or_default().trim();
            !key.is_empty() && line.split('=').next().unwrap_or_default().trim() == key
        })
    };
    let kept: Vec<&str> = base.lines().filter(|l| !replaced(l)).collect();
    format!("{}\nadmin_token = \"adm\"\n{extra}\n", kept.join("\n"))
}

/// A failover model over `a` (first) and `b` with `extra` settings.
fn failover(extra: &str, a: &MockProvider, b: &MockProvider) -> String {
    two_backend_model(&settings(extra), "failover", a, b)
}

/// A chat completion sent the way curl sends large bodies: the head with `Expect:
/// 100-continue`, the body only after the interim `100 Continue`.
fn chat_expecting_continue(gw: &Gateway) -> Resp {
    let body = r#"{"model":"model-x","messages":[{"role":"user","content":"hi"}]}"#;
    let mut c = Client::connect(gw.addr).unwrap();
    c.write_raw(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let interim = c.line().unwrap().unwrap_or_default();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim:?}");
    while c.line().unwrap().is_some_and(|l| !l.is_empty()) {}
    c.write_raw(body.as_bytes()).unwrap();
    c.read_response(false)
        .unwrap_or_else(|e| panic!("no final answer after the 100 Continue: {e}"))
}

#[test]
fn expect_continue_changes_nothing_about_retries_and_error_answers() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&failover("", &a, &b));
    settle(&gw, &[&a, &b]);

    // the first backend resets every connection: the request moves on to the second
    a.set_mode(Mode::ResetOnAccept);
    let r = chat_expecting_continue(&gw);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served_by(&r), "b");

    // every backend fails: an error answer still follows the 100 Continue
    b.set_mode(Mode::ResetOnAccept);
    let r = chat_expecting_continue(&gw);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_error");
    assert_eq!(r.json()["error"]["type"], "upstream_error");
}
