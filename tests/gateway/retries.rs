//! Retries before the first byte, never after it.

use crate::harness::*;
use berry_mock::{MockProvider, Mode};

fn failover_config(a: &MockProvider, b: &MockProvider) -> String {
    let settings = format!("{}admin_token = \"adm\"\n", quiet_settings());
    two_backend_model(&settings, "failover", a, b)
}

/// The primary backend's state from the admin API.
fn primary(gw: &Gateway) -> serde_json::Value {
    admin_backends(gw, "adm")[0].clone()
}

#[test]
fn retries_on_refuse_500_and_429_with_each_attempt_rewritten() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&failover_config(&a, &b));
    settle(&gw, &[&a, &b]);
    let ok = gw.chat("tok", "model-x");
    assert_eq!((ok.status, served_by(&ok).as_str()), (200, "a"));

    for mode in [
        Mode::Status(500),
        Mode::Status(503),
        Mode::RateLimited { retry_after: None },
    ] {
        a.set_mode(mode.clone());
        a.reset_counters();
        b.reset_counters();
        let r = gw.chat("tok", "model-x");
        assert_eq!(r.status, 200, "{mode:?}: {}", r.text());
        assert_eq!(served_by(&r), "b", "{mode:?}");
        // the second attempt carried its own model name and length
        let seen = b.last_request().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(v["model"], "real-b");
        assert_eq!(
            seen.header("content-length"),
            Some(seen.body.len().to_string().as_str())
        );
        assert_eq!(
            a.hits_for("/chat/completions"),
            1,
            "{mode:?}: one attempt on a"
        );
        // what the failure cost a, recorded before the retry: two 5xx stay below the
        // breaker threshold (3); a 429 without Retry-After cools a down for 5 s
        let state = primary(&gw);
        assert_eq!(state["circuit"], "closed", "{mode:?}: {state}");
        let cooldown = state["cooldown_remaining_seconds"].as_f64().unwrap();
        if matches!(mode, Mode::RateLimited { .. }) {
            assert!((4.0..=5.0).contains(&cooldown), "{state}");
        } else {
            assert_eq!(cooldown, 0.0, "{mode:?}: {state}");
        }
        a.set_mode(Mode::Ok);
    }
    drop(gw);

    // refused connections: every request still succeeds through b. A fresh gateway: a's
    // cooldown from the 429 above would keep every request away from a, so nothing would
    // be refused at all.
    let gw = Gateway::start(&failover_config(&a, &b));
    settle(&gw, &[&a, &b]);
    a.stop_listening();
    for _ in 0..10 {
        let r = gw.chat("tok", "model-x");
        assert_eq!(
            (r.status, served_by(&r).as_str()),
            (200, "b"),
            "{}",
            r.text()
        );
    }
    // each refusal was a failed attempt on a, until its circuit opened (threshold 3)
    assert_eq!(
        metric(
            &gw,
            "berry_upstream_attempts_total",
            &[("backend", "m/a/real-a"), ("outcome", "connect_error")]
        ),
        3.0
    );
    assert_eq!(primary(&gw)["circuit"], "open");
}

#[test]
fn streams_retry_before_the_first_byte_only() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&failover_config(&a, &b));

    // 500 before any byte: retried, the client sees one clean stream from b
    a.set_mode(Mode::Status(500));
    let r = gw.chat_stream("tok", "model-x");
    assert_eq!(r.status, 200);
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    assert!(r.text().contains("\"system_fingerprint\":\"b\""));
}

#[test]
fn no_retry_after_the_first_byte() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&failover_config(&a, &b));
    // a (primary) closes the stream after two events: bytes already reached the client,
    // so no retry; the client gets a final error event and no [DONE]
    let body = r#"{"model":"model-x","stream":true,"messages":[]}"#;
    let r = gw.post_with(
        "/v1/chat/completions",
        "tok",
        body,
        &[("x-mock-mode", "close:2")],
    );
    assert_eq!(r.status, 200);
    assert!(r.complete, "the gateway ends the response properly");
    assert!(r.text().contains("\"system_fingerprint\":\"a\""));
    let data = r.sse_data();
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_error", "{data:?}");
    assert_eq!(
        b.hits_for("/chat/completions"),
        0,
        "never retried after the first byte"
    );
    // the gateway keeps serving
    let r = gw.chat_stream("tok", "model-x");
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
}

#[test]
fn retry_budget_is_bounded_by_max_retries() {
    let mocks: Vec<_> = (0..5).map(|i| mock(&format!("m{i}"))).collect();
    let mut cfg = format!("{FAST_SETTINGS}\n{}", user("u", "tok", ""));
    cfg = cfg.replace("max_retries = 2", "max_retries = 1");
    for (i, m) in mocks.iter().enumerate() {
        m.set_mode(Mode::Status(502));
        cfg.push_str(&provider(&format!("p{i}"), m));
    }
    cfg.push_str("[models.m]\nname = \"x\"\nstrategy = \"round_robin\"\n");
    for i in 0..5 {
        cfg.push_str(&format!(
            "[[models.m.backends]]\nprovider = \"p{i}\"\nmodel = \"r\"\n"
        ));
    }
    let gw = Gateway::start(&cfg);
    let r = gw.chat("tok", "x");
    assert_eq!(r.status, 502, "last upstream status passes through");
    let attempts: u64 = mocks.iter().map(|m| m.hits_for("/chat/completions")).sum();
    assert_eq!(attempts, 2, "1 attempt + max_retries = 1");
}

#[test]
fn a_providers_max_retries_caps_the_attempts_one_request_sends_it() {
    let p = mock("p");
    let q = mock("q");
    // p has two backends (priorities 1 and 2) but allows one attempt per request
    // (max_retries = 0); q is the last resort at priority 3. The budget (max_retries = 2)
    // would allow a second attempt on p.
    let cfg = format!(
        r#"{settings}
{u}
{pp}max_retries = 0
{pq}
[models.m]
name = "x"
strategy = "failover"
[[models.m.backends]]
provider = "p"
model = "r1"
priority = 1
[[models.m.backends]]
provider = "p"
model = "r2"
priority = 2
[[models.m.backends]]
provider = "q"
model = "r3"
priority = 3
"#,
        settings = quiet_settings(),
        u = user("u", "tok", ""),
        pp = provider("p", &p),
        pq = provider("q", &q),
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&p, &q]);
    p.set_mode(Mode::Status(500));
    let r = gw.chat("tok", "x");
    assert_eq!(
        (r.status, served_by(&r).as_str()),
        (200, "q"),
        "{}",
        r.text()
    );
    assert_eq!(p.hits_for("/chat/completions"), 1, "one attempt on p");
    let v: serde_json::Value = serde_json::from_slice(&p.last_request().unwrap().body).unwrap();
    assert_eq!(v["model"], "r1");
    assert_eq!(q.hits_for("/chat/completions"), 1);
}
