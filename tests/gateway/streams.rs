//! Lying upstreams. Complete streams, in-band errors, the gateway's
//! error event on an event boundary, heartbeats, the stream commit point (a failure before
//! the first content event fails over with the client none the wiser), refused keys, and
//! provider rate-limit headers. Each test drives the real binary over loopback sockets
//! against mocks playing the fault.

use crate::harness::*;
use berry_mock::{MockProvider, Mode, PreambleEnd};
use std::time::Duration;

/// Settings for these tests: passive signals only, a high breaker threshold so a failing
/// backend stays first in line, a short attempt timeout.
fn settings() -> String {
    quiet_settings().replace(
        "circuit_breaker_failure_threshold = 3",
        "circuit_breaker_failure_threshold = 50\nadmin_token = \"admin-secret-token\"",
    )
}

/// `failover` model `model-x` over mocks a (first) and b.
fn failover(a: &MockProvider, b: &MockProvider) -> Gateway {
    let gw = Gateway::start(&two_backend_model(&settings(), "failover", a, b));
    settle(&gw, &[a, b]);
    a.reset_counters();
    b.reset_counters();
    gw
}

/// The same with both providers speaking the Anthropic dialect (model `model-x`).
fn anthropic_failover(a: &MockProvider, b: &MockProvider) -> Gateway {
    let config = two_backend_model(&settings(), "failover", a, b).replace(
        "api_key = \"key-a\"\n",
        "api_key = \"key-a\"\nbackend_type = \"anthropic\"\n",
    );
    let config = config.replace(
        "api_key = \"key-b\"\n",
        "api_key = \"key-b\"\nbackend_type = \"anthropic\"\n",
    );
    let gw = Gateway::start(&config);
    settle(&gw, &[a, b]);
    a.reset_counters();
    b.reset_counters();
    gw
}

fn chats(m: &MockProvider) -> u64 {
    m.hits_for("/chat/completions")
}

fn messages(m: &MockProvider) -> u64 {
    m.hits_for("/messages")
}

fn messages_stream(gw: &Gateway) -> Resp {
    gw.post_with(
        "/v1/messages",
        "tok",
        r#"{"model":"model-x","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        &[("anthropic-version", "2023-06-01")],
    )
}

/// Attempts of `backend` with `outcome`, once no request is in flight: the outcome of an
/// answer the client has already read is recorded when the request ends, before it stops
/// counting in `berry_inflight_requests`.
fn attempts(gw: &Gateway, backend: &str, outcome: &str) -> f64 {
    assert!(
        wait_until(Duration::from_secs(5), || metric(
            gw,
            "berry_inflight_requests",
            &[]
        ) == 0.0),
        "requests still in flight:\n{}",
        gw.metrics_text()
    );
    metric(
        gw,
        "berry_upstream_attempts_total",
        &[("backend", backend), ("outcome", outcome)],
    )
}

/// Every event of an SSE body parses as JSON or is `[DONE]`.
fn assert_clean_events(text: &str) {
    for data in text
        .split("\n\n")
        .flat_map(|ev| ev.lines().filter_map(|l| l.strip_prefix("data: ")))
    {
        assert!(
            data == "[DONE]" || serde_json::from_str::<serde_json::Value>(data).is_ok(),
            "an event the client cannot parse: {data:?} in {text:?}"
        );
    }
}

#[test]
fn a_failure_before_the_first_content_event_fails_over_unseen() {
    let a = mock("a");
    let b = mock("b");
    let gw = failover(&a, &b);
    // Without a pause the head, the preamble and the failure reach the gateway together;
    // with one, the failure comes on its own while a's head and preamble are held back,
    // and b's head and events are the response.
    let cases = [
        (PreambleEnd::Error, Duration::ZERO),
        (PreambleEnd::Cut, Duration::ZERO),
        (PreambleEnd::Error, Duration::from_millis(300)),
        (PreambleEnd::Cut, Duration::from_millis(300)),
    ];
    for (i, (end, pause)) in cases.into_iter().enumerate() {
        a.set_stream_shape(3, pause);
        a.set_mode(Mode::Preamble(end));
        let r = gw.chat_stream("tok", "model-x");
        let n = i as u64 + 1;
        assert_eq!((chats(&a), chats(&b)), (n, n), "{end:?}: a tried, then b");
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        assert_clean_events(&text);
        // one stream, b's: one role chunk, b's content, [DONE], nothing of a
        assert_eq!(
            text.matches("\"role\":\"assistant\"").count(),
            1,
            "{end:?} {pause:?}: {text}"
        );
        assert!(text.contains("\"system_fingerprint\":\"b\""), "{text}");
        assert!(!text.contains("\"system_fingerprint\":\"a\""), "{text}");
        assert!(!text.contains("\"error\""), "{end:?}: {text}");
        assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    }
    assert_eq!(
        metric(
            &gw,
            "berry_stream_failures_total",
            &[("provider", "a"), ("phase", "preamble")]
        ),
        2.0,
        "the in-band errors (a cut is a transport failure, counted as an attempt outcome)"
    );
    assert_eq!(attempts(&gw, "m/a/real-a", "stream_error"), 4.0);
    assert_eq!(attempts(&gw, "m/b/real-b", "success"), 4.0);
}

/// A stream that fails over before its commit point sends one response head, the answering
/// attempt's: the failed attempt's head was held back with its preamble, so Pingora never
/// has a second head to drop (and warn about), whatever the log filter.
#[test]
fn a_stream_that_fails_over_before_its_commit_point_sends_one_head() {
    const WARNING: &str = "Respond header is already sent";
    for rust_log in ["", "info"] {
        let a = mock("a");
        let b = mock("b");
        let cfg = two_backend_model(&settings(), "failover", &a, &b);
        let mut gw = Gateway::start_with(&cfg, "toml", &[], &[("RUST_LOG", rust_log)]);
        a.set_stream_shape(3, Duration::from_millis(300));
        a.set_mode(Mode::Preamble(PreambleEnd::Error));
        let r = gw.chat_stream("tok", "model-x");
        assert!(
            r.text().contains("\"system_fingerprint\":\"b\""),
            "{}",
            r.text()
        );
        let log = gw.stop();
        assert!(
            log.contains(" INFO "),
            "RUST_LOG={rust_log:?}: no info lines: {log}"
        );
        assert!(!log.contains(WARNING), "RUST_LOG={rust_log:?}: {log}");
    }
}

#[test]
fn anthropic_overload_after_message_start_fails_over_unseen() {
    let a = mock("a");
    let b = mock("b");
    let gw = anthropic_failover(&a, &b);
    a.set_mode(Mode::Preamble(PreambleEnd::Error));
    let r = messages_stream(&gw);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((messages(&a), messages(&b)), (1, 1));
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.sse_events();
    assert_eq!(
        events.iter().filter(|e| *e == "message_start").count(),
        1,
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e == "error"), "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("message_stop"));
    assert_clean_events(&r.text());
    // nothing left to fail over to: the head is held with the preamble, so the client gets
    // an error status, never a 200 head and an error event (with or without a pause
    // between the preamble and the failure)
    b.set_mode(Mode::Preamble(PreambleEnd::Error));
    for pause in [Duration::ZERO, Duration::from_millis(300)] {
        b.set_stream_shape(3, pause);
        let r = messages_stream(&gw);
        // the provider said it was overloaded: 503, Anthropic's `overloaded_error`
        assert_eq!(r.status, 503, "{pause:?}: {}", r.text());
        assert_eq!(
            r.json()["error"]["type"],
            "overloaded_error",
            "{}",
            r.text()
        );
    }
}

#[test]
fn a_stream_without_its_terminal_event_is_a_failure() {
    let a = mock("a");
    let b = mock("b");
    let gw = failover(&a, &b);
    a.set_mode(Mode::Unterminated);
    let r = gw.chat_stream("tok", "model-x");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("tok0"),
        "content came through: {}",
        r.text()
    );
    let data = r.sse_data();
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_error", "{data:?}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("before it was complete"),
        "{last}"
    );
    assert_eq!(chats(&b), 0, "content had reached the client: no retry");
    assert_eq!(attempts(&gw, "m/a/real-a", "stream_error"), 1.0);
    assert_eq!(attempts(&gw, "m/a/real-a", "success"), 0.0);
    assert_eq!(
        metric(
            &gw,
            "berry_stream_failures_total",
            &[("kind", "incomplete"), ("phase", "content")]
        ),
        1.0
    );
    // the same for an Anthropic client on an Anthropic backend (no message_stop)
    let a2 = mock("a2");
    let b2 = mock("b2");
    let gw2 = anthropic_failover(&a2, &b2);
    a2.set_mode(Mode::Unterminated);
    let r = messages_stream(&gw2);
    let events = r.sse_events();
    assert!(!events.iter().any(|e| e == "message_stop"), "{events:?}");
    assert_eq!(
        events.last().map(String::as_str),
        Some("error"),
        "{events:?}"
    );
    assert_eq!(messages(&b2), 0);
    // and for an OpenAI client on those Anthropic backends: the translator's early end is
    // the same kind of failure (incomplete, not invalid)
    let r = gw2.chat_stream("tok", "model-x");
    let data = r.sse_data();
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_error", "{data:?}");
    assert_eq!(
        metric(
            &gw2,
            "berry_stream_failures_total",
            &[("kind", "incomplete"), ("phase", "content")]
        ),
        2.0,
        "{}",
        gw2.metrics_text()
    );
    assert_eq!(
        metric(&gw2, "berry_stream_failures_total", &[("kind", "invalid")]),
        0.0
    );
}

#[test]
fn the_gateway_error_event_starts_on_an_event_boundary() {
    let a = mock("a");
    let b = mock("b");
    let gw = failover(&a, &b);
    a.set_mode(Mode::CutMidEvent { after_chunks: 1 });
    let r = gw.chat_stream("tok", "model-x");
    let text = r.text();
    let at = text
        .find("data: {\"error\"")
        .unwrap_or_else(|| panic!("no error event: {text:?}"));
    assert!(
        text[..at].ends_with("\n\n"),
        "the error event is glued to the cut event: {text:?}"
    );
    let last: serde_json::Value = serde_json::from_str(r.sse_data().last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_error");
    assert_eq!(chats(&b), 0);
}

#[test]
fn an_in_band_error_event_is_passed_on_and_counts_as_a_failure() {
    let a = mock("a");
    let b = mock("b");
    let gw = failover(&a, &b);
    a.set_mode(Mode::ErrorEvent { after_chunks: 1 });
    let r = gw.chat_stream("tok", "model-x");
    assert_eq!(r.status, 200);
    let data = r.sse_data();
    assert!(data.iter().any(|d| d.contains("tok0")), "{data:?}");
    let errors: Vec<&String> = data.iter().filter(|d| d.contains("\"error\"")).collect();
    assert_eq!(
        errors.len(),
        1,
        "the upstream's event, not a second one: {data:?}"
    );
    assert!(
        errors[0].contains("server_error"),
        "the upstream's own: {data:?}"
    );
    assert!(!data.iter().any(|d| d == "[DONE]"));
    assert_eq!(chats(&b), 0);
    assert_eq!(attempts(&gw, "m/a/real-a", "stream_error"), 1.0);
    assert_eq!(attempts(&gw, "m/a/real-a", "success"), 0.0);
    assert_eq!(
        metric(
            &gw,
            "berry_stream_failures_total",
            &[("kind", "error_event"), ("phase", "content")]
        ),
        1.0
    );
    // an error before any content is a failure before the first byte: retried
    a.set_mode(Mode::ErrorEvent { after_chunks: 0 });
    let r = gw.chat_stream("tok", "model-x");
    assert_eq!(chats(&b), 1);
    assert!(!r.text().contains("\"error\""), "{}", r.text());
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
}

#[test]
fn comments_and_empty_data_lines_pass_through() {
    let a = mock("a");
    let b = mock("b");
    let gw = failover(&a, &b);
    a.set_mode(Mode::Heartbeats);
    let r = gw.chat_stream("tok", "model-x");
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains(": ping"), "{text}");
    assert!(
        text.contains("\ndata:\n") || text.starts_with("data:\n"),
        "{text}"
    );
    assert!(text.contains("tok0"));
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    assert_eq!(chats(&b), 0);
    assert_eq!(
        attempts(&gw, "m/a/real-a", "success"),
        1.0,
        "{}",
        gw.metrics_text()
    );
}

#[test]
fn a_refused_key_is_retried_and_its_body_never_reaches_the_client() {
    let a = mock("a");
    let b = mock("b");
    let gw = failover(&a, &b);
    a.set_mode(Mode::KeyRejected);
    let r = gw.chat("tok", "model-x");
    assert_eq!(
        (r.status, served_by(&r).as_str()),
        (200, "b"),
        "{}",
        r.text()
    );
    assert_eq!((chats(&a), chats(&b)), (1, 1));
    // no backend left: 502 upstream_auth_failed, nothing of the provider's text
    b.set_mode(Mode::KeyRejected);
    for stream in [false, true] {
        let r = if stream {
            gw.chat_stream("tok", "model-x")
        } else {
            gw.chat("tok", "model-x")
        };
        assert_eq!(r.status, 502, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "upstream_auth_failed");
        for leak in ["key-a", "key-b", "Incorrect API key", "*"] {
            assert!(!r.text().contains(leak), "{leak} leaked: {}", r.text());
        }
    }
    // an Anthropic client gets the same in its own shape
    let a2 = mock("a2");
    let b2 = mock("b2");
    let gw2 = anthropic_failover(&a2, &b2);
    a2.set_mode(Mode::KeyRejected);
    b2.set_mode(Mode::KeyRejected);
    let r = messages_stream(&gw2);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert!(!r.text().contains("x-api-key"), "{}", r.text());
    assert!(attempts(&gw, "m/a/real-a", "http_4xx") >= 2.0);
    for log in [gw.log(), gw2.log()] {
        assert!(!log.contains("key-a") && !log.contains("key-b"), "{log}");
    }
}

#[test]
fn spent_rate_limit_budgets_cool_the_backend_down_before_a_429() {
    let a = mock("a");
    let b = mock("b");
    let gw = failover(&a, &b);
    // OpenAI: remaining-requests 0, reset 6m0s → a sits out; its answer still counts
    a.set_mode("limits:requests:6m0s".parse().unwrap());
    let r = gw.chat("tok", "model-x");
    assert_eq!((r.status, served_by(&r).as_str()), (200, "a"));
    let r = gw.chat("tok", "model-x");
    assert_eq!(
        (r.status, served_by(&r).as_str()),
        (200, "b"),
        "a is cooling down"
    );
    let backends = admin_backends(&gw, "admin-secret-token");
    let left = backends[0]["cooldown_remaining_seconds"]
        .as_f64()
        .unwrap_or(0.0);
    assert!((250.0..=300.0).contains(&left), "{backends:?}");
    assert_eq!(
        metric(
            &gw,
            "berry_provider_limit_cooldowns_total",
            &[("backend", "m/a/real-a"), ("source", "x_ratelimit")]
        ),
        1.0
    );
    // tokens spent for 20 ms: a is back almost at once
    let a2 = mock("a2");
    let b2 = mock("b2");
    let gw2 = failover(&a2, &b2);
    a2.set_mode("limits:tokens:20ms".parse().unwrap());
    gw2.chat("tok", "model-x");
    assert!(
        wait_until(Duration::from_secs(5), || admin_backends(
            &gw2,
            "admin-secret-token"
        )[0]["cooldown_remaining_seconds"]
            .as_f64()
            .unwrap_or(0.0)
            == 0.0),
        "a 20 ms reset still cools a2 down"
    );
    let r = gw2.chat("tok", "model-x");
    assert_eq!(served_by(&r), "a2", "a short reset is short");
    // Anthropic: RFC 3339 reset; retry-after-ms on any answer
    let a3 = mock("a3");
    let b3 = mock("b3");
    let gw3 = anthropic_failover(&a3, &b3);
    a3.set_mode("limits:requests:30s".parse().unwrap());
    let body = r#"{"model":"model-x","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
    let hdr = [("anthropic-version", "2023-06-01")];
    assert_eq!(gw3.post_with("/v1/messages", "tok", body, &hdr).status, 200);
    assert_eq!(gw3.post_with("/v1/messages", "tok", body, &hdr).status, 200);
    assert_eq!((messages(&a3), messages(&b3)), (1, 1), "a3 cooled down");
    let left = admin_backends(&gw3, "admin-secret-token")[0]["cooldown_remaining_seconds"]
        .as_f64()
        .unwrap_or(0.0);
    assert!((20.0..=31.0).contains(&left), "{left}");
    b3.set_mode("limits:retry-after-ms:60000".parse().unwrap());
    gw3.post_with("/v1/messages", "tok", body, &hdr);
    assert_eq!(
        metric(
            &gw3,
            "berry_provider_limit_cooldowns_total",
            &[("source", "retry_after_ms")]
        ),
        1.0
    );
}

#[test]
fn translated_streams_hold_their_preamble_too() {
    // an OpenAI client: a speaks Anthropic (message_start, ping, then overloaded_error),
    // b speaks OpenAI
    let a = mock("a");
    let b = mock("b");
    let config = two_backend_model(&settings(), "failover", &a, &b).replace(
        "api_key = \"key-a\"\n",
        "api_key = \"key-a\"\nbackend_type = \"anthropic\"\n",
    );
    let gw = Gateway::start(&config);
    settle(&gw, &[&a, &b]);
    a.set_mode(Mode::Preamble(PreambleEnd::Error));
    let r = gw.chat_stream("tok", "model-x");
    assert_eq!((messages(&a), chats(&b)), (1, 1));
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert_clean_events(&text);
    assert_eq!(text.matches("\"role\":\"assistant\"").count(), 1, "{text}");
    assert!(!text.contains("\"error\""), "{text}");
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    // an Anthropic client: a speaks OpenAI (role chunk, then an error), b Anthropic
    let c = mock("c");
    let d = mock("d");
    let config = two_backend_model(&settings(), "failover", &c, &d).replace(
        "api_key = \"key-b\"\n",
        "api_key = \"key-b\"\nbackend_type = \"anthropic\"\n",
    );
    let gw = Gateway::start(&config);
    settle(&gw, &[&c, &d]);
    c.set_mode(Mode::Preamble(PreambleEnd::Error));
    let r = messages_stream(&gw);
    assert_eq!((chats(&c), messages(&d)), (1, 1));
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.sse_events();
    assert_eq!(
        events.iter().filter(|e| *e == "message_start").count(),
        1,
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e == "error"), "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("message_stop"));
}

#[test]
fn a_failing_last_backend_after_a_held_preamble_answers_with_its_status() {
    let a = mock("a");
    let b = mock("b");
    let gw = failover(&a, &b);
    // a's head and preamble are held, then a fails; b answers 503: nothing of a reached
    // the client, so b's status and body are the answer
    a.set_stream_shape(3, Duration::from_millis(300));
    a.set_mode(Mode::Preamble(PreambleEnd::Error));
    b.set_mode(Mode::Status(503));
    let r = gw.chat_stream("tok", "model-x");
    assert_eq!((chats(&a), chats(&b)), (1, 1));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "server_error", "{}", r.text());
    assert!(
        !r.text().contains("assistant"),
        "nothing of a: {}",
        r.text()
    );
}
