//! What a hostile client sends and what a reload must forget, over real
//! sockets: case-folded keys are refused and counted; a provider whose key or URL changed
//! starts with fresh health and backend state.

use crate::harness::*;
use berry_mock::Mode;
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
