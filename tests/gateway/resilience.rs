//! Every strategy over real sockets, active + passive health, circuit breaker,
//! cooldowns, hung upstreams, and reload under load. Each test asserts what the client
//! saw and how many requests each mock received.

use crate::harness::*;
use berry_mock::{MockProvider, Mode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings where only passive signals move state: the active check runs once at start-up.
const PASSIVE_ONLY: &str = r#"
[settings]
health_check_interval_seconds = 3600
health_check_timeout_seconds = 1
recovery_check_interval_seconds = 3600
request_timeout_seconds = 2
stream_idle_timeout_seconds = 5
max_retries = 2
circuit_breaker_failure_threshold = 3
circuit_breaker_timeout_seconds = 1
circuit_breaker_success_threshold = 2
admin_token = "admin-secret-token"
"#;

/// Circuit state of each backend, in config order (from the admin API).
fn circuits(gw: &Gateway) -> Vec<String> {
    gw.get("/admin/backends", Some("admin-secret-token")).json()["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["circuit"].as_str().unwrap().to_string())
        .collect()
}

fn chats(a: &MockProvider) -> u64 {
    a.hits_for("/chat/completions")
}

/// Waits (at most 3 s) until the admin API reports backend `i`'s circuit half-open: its
/// open timeout has passed.
fn wait_half_open(gw: &Gateway, i: usize) {
    assert!(
        wait_until(Duration::from_secs(3), || circuits(gw)[i] == "half_open"),
        "circuit {i} did not half-open: {:?}",
        circuits(gw)
    );
}

/// Successful attempts the gateway recorded for `backend` (recorded with the backend's
/// breaker state, so waiting on it waits for the breaker to have seen the outcome).
fn recorded_successes(gw: &Gateway, backend: &str) -> f64 {
    metric(
        gw,
        "berry_upstream_attempts_total",
        &[("backend", backend), ("outcome", "success")],
    )
}

#[test]
fn weighted_random_round_robin_and_failover_distribute_as_configured() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&two_backend_model(PASSIVE_ONLY, "weighted_random", &a, &b));
    for _ in 0..1000 {
        assert_eq!(gw.chat("tok", "model-x").status, 200);
    }
    let share = chats(&a) as f64 / 1000.0;
    assert!(
        (share - 0.8).abs() <= 0.05,
        "weighted_random share of a: {share}"
    );
    assert_eq!(chats(&a) + chats(&b), 1000);
    drop(gw);

    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&two_backend_model(PASSIVE_ONLY, "round_robin", &a, &b));
    let order: Vec<String> = (0..20)
        .map(|_| served_by(&gw.chat("tok", "model-x")))
        .collect();
    for pair in order.chunks(2) {
        assert_ne!(
            pair[0], pair[1],
            "round_robin must alternate exactly: {order:?}"
        );
    }
    assert_eq!((chats(&a), chats(&b)), (10, 10));
    drop(gw);

    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&two_backend_model(PASSIVE_ONLY, "failover", &a, &b));
    for _ in 0..50 {
        assert_eq!(served_by(&gw.chat("tok", "model-x")), "a");
    }
    assert_eq!(
        (chats(&a), chats(&b)),
        (50, 0),
        "failover sticks to priority 1"
    );
}

#[test]
fn refused_primary_costs_no_request_and_traffic_returns_after_recovery() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&two_backend_model(FAST_SETTINGS, "failover", &a, &b));
    assert_eq!(served_by(&gw.chat("tok", "model-x")), "a");
    a.stop_listening();
    for i in 0..100 {
        let r = gw.chat("tok", "model-x");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(served_by(&r), "b");
    }
    a.resume_listening().unwrap();
    let back_at = Instant::now();
    // health interval 0.5 s + breaker timeout 1 s + two half-open probes
    let returned = wait_until(Duration::from_secs(6), || {
        served_by(&gw.chat("tok", "model-x")) == "a"
    });
    assert!(returned, "traffic did not return to the primary");
    assert!(back_at.elapsed() < Duration::from_secs(6));
    // and stays there once the circuit closed
    assert!(wait_until(Duration::from_secs(3), || {
        (0..5).all(|_| served_by(&gw.chat("tok", "model-x")) == "a")
    }));
}

#[test]
fn circuit_opens_after_threshold_probes_once_and_closes_after_successes() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&two_backend_model(PASSIVE_ONLY, "round_robin", &a, &b));
    settle(&gw, &[&a, &b]);
    a.set_mode(Mode::Status(500));
    a.reset_counters();
    // every request still succeeds (retried on b); a sees exactly the threshold, then nothing
    for _ in 0..20 {
        let r = gw.chat("tok", "model-x");
        assert_eq!((r.status, served_by(&r).as_str()), (200, "b"));
    }
    assert_eq!(chats(&a), 3, "circuit opens after 3 consecutive failures");
    assert_eq!(circuits(&gw), ["open", "closed"]);

    // after the timeout (1 s; the admin API then reports half_open) exactly one probe goes
    // through; it fails and the circuit reopens
    wait_half_open(&gw, 0);
    for _ in 0..10 {
        assert_eq!(gw.chat("tok", "model-x").status, 200);
    }
    assert_eq!(chats(&a), 4, "one half-open probe");
    assert_eq!(
        circuits(&gw),
        ["open", "closed"],
        "the failed probe reopened it"
    );

    // recovered: probes succeed, after 2 successes the circuit closes and a rejoins
    a.set_mode(Mode::Ok);
    wait_half_open(&gw, 0);
    for _ in 0..20 {
        assert_eq!(gw.chat("tok", "model-x").status, 200);
    }
    assert!(
        chats(&a) >= 4 + 8,
        "a rejoined round robin: {} hits",
        chats(&a)
    );
    assert_eq!(circuits(&gw), ["closed", "closed"]);
}

#[test]
fn half_open_circuit_lets_one_probe_through_at_a_time() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&two_backend_model(PASSIVE_ONLY, "failover", &a, &b));
    settle(&gw, &[&a, &b]);
    a.set_mode(Mode::Status(500));
    for _ in 0..3 {
        assert_eq!(served_by(&gw.chat("tok", "model-x")), "b");
    }
    assert_eq!(circuits(&gw), ["open", "closed"]);
    a.set_mode(Mode::Ok);
    a.reset_counters();
    wait_half_open(&gw, 0);

    // the probe: a slow request to the primary, held by the mock for 1.5 s
    let addr = gw.addr;
    let probe = std::thread::spawn(move || {
        request(
            addr,
            "POST",
            "/v1/chat/completions",
            &[("Authorization", "Bearer tok"), ("x-mock-delay-ms", "1500")],
            br#"{"model":"model-x","messages":[]}"#,
        )
    });
    assert!(
        wait_until(Duration::from_secs(3), || chats(&a) == 1),
        "the probe did not reach a"
    );
    // while it is in flight, the primary takes nothing else
    for i in 0..5 {
        let r = gw.chat("tok", "model-x");
        assert_eq!(
            (r.status, served_by(&r).as_str()),
            (200, "b"),
            "request {i} during the probe"
        );
    }
    assert_eq!(chats(&a), 1, "a second request went to a half-open backend");
    let r = probe.join().unwrap();
    assert_eq!(
        (r.status, served_by(&r).as_str()),
        (200, "a"),
        "{}",
        r.text()
    );

    // one successful probe is not enough (success threshold 2): still half-open ...
    assert!(wait_until(Duration::from_secs(3), || recorded_successes(
        &gw,
        "m/a/real-a"
    ) >= 1.0));
    assert_eq!(circuits(&gw), ["half_open", "closed"]);
    // ... the second closes the circuit and the primary takes all traffic again
    assert_eq!(served_by(&gw.chat("tok", "model-x")), "a");
    assert!(wait_until(Duration::from_secs(3), || recorded_successes(
        &gw,
        "m/a/real-a"
    ) >= 2.0));
    assert_eq!(circuits(&gw), ["closed", "closed"]);
    for _ in 0..5 {
        assert_eq!(served_by(&gw.chat("tok", "model-x")), "a");
    }
}

#[test]
fn retry_after_cools_a_backend_down_for_that_long() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&two_backend_model(PASSIVE_ONLY, "round_robin", &a, &b));
    settle(&gw, &[&a, &b]);
    a.set_mode(Mode::RateLimited {
        retry_after: Some("2".into()),
    });
    a.reset_counters();
    let cooldown = || {
        admin_backends(&gw, "admin-secret-token")[0]["cooldown_remaining_seconds"]
            .as_f64()
            .unwrap()
    };
    // round robin reaches a within two requests; its 429 is retried on b
    for _ in 0..2 {
        let r = gw.chat("tok", "model-x");
        assert_eq!((r.status, served_by(&r).as_str()), (200, "b"));
    }
    assert_eq!(chats(&a), 1);
    let left = cooldown();
    assert!(
        left > 1.0 && left <= 2.0,
        "Retry-After: 2 cools a down for 2 s, {left} s left"
    );
    // while the cooldown lasts, every request goes to b
    let mut during = 0;
    while cooldown() > 0.2 {
        let r = gw.chat("tok", "model-x");
        assert_eq!((r.status, served_by(&r).as_str()), (200, "b"));
        during += 1;
    }
    assert!(during >= 5, "only {during} requests during the cooldown");
    assert_eq!(chats(&a), 1, "no traffic to a during its 2 s cooldown");
    a.set_mode(Mode::Ok);
    assert!(
        wait_until(Duration::from_secs(2), || cooldown() == 0.0),
        "the cooldown did not end"
    );
    let mut to_a = 0;
    for _ in 0..10 {
        if served_by(&gw.chat("tok", "model-x")) == "a" {
            to_a += 1;
        }
    }
    assert!(to_a >= 4, "traffic returns after the cooldown ({to_a}/10)");
    assert_eq!(to_a, 5, "round robin alternates again");
    // 429s alone never opened the circuit
    assert_eq!(circuits(&gw), ["closed", "closed"]);
}

#[test]
fn hung_upstream_is_bounded_by_the_attempt_timeout_and_retried() {
    let a = mock("a");
    let b = mock("b");
    let settings = PASSIVE_ONLY
        .replace("request_timeout_seconds = 2", "request_timeout_seconds = 1")
        .replace(
            "circuit_breaker_failure_threshold = 3",
            "circuit_breaker_failure_threshold = 50",
        );
    let gw = Gateway::start(&two_backend_model(&settings, "failover", &a, &b));
    settle(&gw, &[&a, &b]);
    a.set_mode(Mode::Hang);
    // non-stream: Pingora's read timeout; stream: the header watchdog (idle timeout is 5 s)
    for stream in [false, true] {
        let t0 = Instant::now();
        let r = if stream {
            gw.chat_stream("tok", "model-x")
        } else {
            gw.chat("tok", "model-x")
        };
        let took = t0.elapsed();
        assert_eq!(r.status, 200, "stream={stream}: {}", r.text());
        assert!(r.text().contains("\"system_fingerprint\":\"b\""));
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
            "stream={stream}: retried after {took:?}, expected ~1 s"
        );
    }
    // only backend hangs: 504 within the timeout
    b.set_mode(Mode::Hang);
    let t0 = Instant::now();
    let r = gw.chat_stream("tok", "model-x");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        t0.elapsed() < Duration::from_millis(3500),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn stalled_stream_gets_an_error_event_after_the_idle_timeout() {
    let a = mock_with("a", |o| {
        o.chunks = 3;
        o.chunk_interval = Duration::from_millis(3000);
    });
    let b = mock("b");
    // a high breaker threshold: every failed attempt below still goes to a first
    let settings = PASSIVE_ONLY
        .replace(
            "stream_idle_timeout_seconds = 5",
            "stream_idle_timeout_seconds = 1",
        )
        .replace(
            "circuit_breaker_failure_threshold = 3",
            "circuit_breaker_failure_threshold = 50",
        );
    let gw = Gateway::start(&two_backend_model(&settings, "failover", &a, &b));
    let t0 = Instant::now();
    let r = gw.chat_stream("tok", "model-x");
    assert!(
        t0.elapsed() < Duration::from_millis(2800),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(r.status, 200);
    let data = r.sse_data();
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_error");
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("stalled"));
    assert_eq!(chats(&b), 0);
    // garbage mid-stream (after the first event reached the client) is a stream failure
    let r = gw.post_with(
        "/v1/chat/completions",
        "tok",
        r#"{"model":"model-x","stream":true}"#,
        &[("x-mock-mode", "garbage"), ("x-mock-interval-ms", "300")],
    );
    assert!(
        !r.text().contains("NOT SSE"),
        "garbage forwarded: {}",
        r.text()
    );
    assert!(r.text().contains("tok0"), "the good event came first");
    let data = r.sse_data();
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_error", "{data:?}");
    assert_eq!(chats(&b), 0);
    // garbage arriving with the response head (nothing sent to the client yet) is a
    // failed attempt like any other: retried on the next backend
    // (without a chunk interval the mock writes the head, the first event and the garbage
    // in one write, so the gateway reads them together)
    a.set_stream_shape(3, Duration::ZERO);
    a.set_mode(Mode::Garbage);
    let tried_a = chats(&a);
    for i in 1..=5 {
        let r = gw.chat_stream("tok", "model-x");
        assert_eq!(chats(&a), tried_a + i, "a was tried first");
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!r.text().contains("NOT SSE"));
        assert_eq!(chats(&b), i, "attempt {i} was retried on b: {}", r.text());
        assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
        assert!(r.text().contains("\"system_fingerprint\":\"b\""));
        assert!(
            !r.text().contains("\"system_fingerprint\":\"a\""),
            "nothing of a's answer reached the client: {}",
            r.text()
        );
    }
}

#[test]
fn non_json_2xx_answer_is_a_failed_attempt_retried_elsewhere() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&two_backend_model(PASSIVE_ONLY, "failover", &a, &b));
    settle(&gw, &[&a, &b]);
    a.set_mode(Mode::Garbage);
    a.reset_counters();
    // below the breaker threshold (3): each request tries a, gets garbage, is served by b
    for _ in 0..2 {
        let r = gw.chat("tok", "model-x");
        assert_eq!(
            (r.status, served_by(&r).as_str()),
            (200, "b"),
            "{}",
            r.text()
        );
        assert!(r.json()["choices"].is_array(), "{}", r.text());
    }
    assert_eq!(chats(&a), 2);
    assert_eq!(circuits(&gw), ["closed", "closed"]);
    // each garbage answer counted against a: the third opens its circuit
    let r = gw.chat("tok", "model-x");
    assert_eq!((r.status, served_by(&r).as_str()), (200, "b"));
    assert_eq!(chats(&a), 3);
    assert_eq!(circuits(&gw), ["open", "closed"]);
    assert!(
        !gw.log().contains("NOT JSON"),
        "garbage bytes must not be logged"
    );
}

#[test]
fn least_latency_prefers_the_faster_backend() {
    let a = mock("slow");
    let b = mock("fast");
    let gw = Gateway::start(&two_backend_model(PASSIVE_ONLY, "least_latency", &a, &b));
    settle(&gw, &[&a, &b]);
    a.set_mode(Mode::SlowHeaders(Duration::from_millis(100)));
    b.set_mode(Mode::SlowHeaders(Duration::from_millis(10)));
    for _ in 0..20 {
        gw.chat("tok", "model-x");
    }
    a.reset_counters();
    b.reset_counters();
    for _ in 0..200 {
        assert_eq!(gw.chat("tok", "model-x").status, 200);
    }
    let fast_share = chats(&b) as f64 / 200.0;
    assert!(
        fast_share >= 0.9,
        "least_latency sent {fast_share} to the fast backend"
    );
    assert!(chats(&a) > 0, "exploration keeps the slow estimate fresh");
}

#[test]
fn smart_ai_moves_traffic_away_from_failures_and_back_after_recovery() {
    let a = mock("a");
    let b = mock("b");
    let settings = format!(
        "{}\n[settings.smart_ai]\nexploration_ratio = 0.1\nenable_time_decay = false\n",
        PASSIVE_ONLY.replace(
            "circuit_breaker_failure_threshold = 3",
            "circuit_breaker_failure_threshold = 1000"
        )
    );
    let cfg = two_backend_model(&settings, "smart_ai", &a, &b)
        .replace("weight = 0.8", "weight = 0.5")
        .replace("weight = 0.2", "weight = 0.5");
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&a, &b]);
    a.set_mode(Mode::Status(500));
    for _ in 0..30 {
        assert_eq!(gw.chat("tok", "model-x").status, 200);
    }
    a.reset_counters();
    for _ in 0..200 {
        assert_eq!(gw.chat("tok", "model-x").status, 200);
    }
    let failing_share = chats(&a) as f64 / 200.0;
    assert!(
        failing_share < 0.2,
        "failing backend still got {failing_share}"
    );
    a.set_mode(Mode::Ok);
    for _ in 0..200 {
        assert_eq!(gw.chat("tok", "model-x").status, 200);
    }
    a.reset_counters();
    b.reset_counters();
    for _ in 0..200 {
        assert_eq!(gw.chat("tok", "model-x").status, 200);
    }
    let recovered_share = chats(&a) as f64 / 200.0;
    assert!(
        recovered_share > 0.3,
        "recovered backend only got {recovered_share}"
    );
}

#[test]
fn active_health_checks_are_per_provider_and_independent() {
    let hanging = mock("hanging");
    let failing = mock_with("failing", |o| {
        o.expected_api_key = Some("the-right-key".into())
    });
    let healthy = mock_with("healthy", |o| o.expected_api_key = Some("key-ok".into()));
    hanging.set_mode(Mode::Hang);
    let cfg = format!(
        r#"[settings]
health_check_interval_seconds = 0.3
health_check_timeout_seconds = 3
recovery_check_interval_seconds = 0.3
admin_token = "adm"
{u}
{ph}
[providers.failing]
base_url = "{fb}"
api_key = "a-wrong-key"
[providers.ok]
base_url = "{hb}"
api_key = "key-ok"
[models.m]
name = "x"
[[models.m.backends]]
provider = "hanging"
model = "r"
[[models.m.backends]]
provider = "failing"
model = "r"
[[models.m.backends]]
provider = "ok"
model = "r"
"#,
        u = user("u", "tok", ""),
        ph = provider("hanging", &hanging),
        fb = failing.base_url(),
        hb = healthy.base_url(),
    );
    let gw = Gateway::start(&cfg);
    let provider_state = |id: &str| {
        gw.get("/admin/backends", Some("adm")).json()["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap()
    };
    // The provider with a wrong key is marked down while the hanging provider's first
    // check (3 s timeout) is still outstanding: checks do not wait for each other.
    assert!(wait_until(Duration::from_secs(10), || provider_state(
        "failing"
    )["healthy"]
        == false));
    let hanging_now = provider_state("hanging");
    assert_eq!(
        (
            &hanging_now["healthy"],
            &hanging_now["last_check_seconds_ago"]
        ),
        (&serde_json::Value::Bool(true), &serde_json::Value::Null),
        "the hanging provider's check must still be pending: {hanging_now}"
    );
    assert_eq!(provider_state("ok")["healthy"], true);
    assert!(provider_state("failing")["last_check_error"]
        .as_str()
        .unwrap()
        .contains("401"));
    // checks carry each provider's own credentials and repeat on schedule
    let seen = healthy.last_request().unwrap();
    assert_eq!(seen.path, "/v1/models");
    assert_eq!(seen.header("authorization"), Some("Bearer key-ok"));
    // three more checks arrive, and not sooner than the interval allows: the next one may
    // come at once, the two after it 0.3 s apart each (a loaded machine only delays them)
    let before = healthy.hits_for("/models");
    let t0 = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || healthy.hits_for("/models")
            >= before + 3),
        "checks do not repeat"
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "3 checks in {took:?} at a 0.3 s interval"
    );
    // the hanging provider times out (3 s) and is marked down without blocking the rest
    assert!(wait_until(Duration::from_secs(5), || provider_state(
        "hanging"
    )["healthy"]
        == false));
    // requests avoid both unhealthy providers
    for _ in 0..10 {
        let r = gw.chat("tok", "x");
        assert_eq!(served_by(&r), "healthy");
    }
}

#[test]
fn reload_under_load_loses_no_request() {
    let a = mock("a");
    let b = mock("b");
    let cfg_for = |target: &MockProvider, key: &str| {
        format!(
            r#"{FAST_SETTINGS}
admin_token = "adm"
{u}
[providers.p]
base_url = "{url}"
api_key = "{key}"
[models.m]
name = "model-x"
[[models.m.backends]]
provider = "p"
model = "real"
"#,
            u = user("u", "tok", ""),
            url = target.base_url(),
        )
    };
    let gw = Arc::new(Gateway::start(&cfg_for(&a, "key-1")));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (gw, stop, ok, failed) = (gw.clone(), stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = if fastrand::bool() {
                        gw.chat("tok", "model-x")
                    } else {
                        gw.chat_stream("tok", "model-x")
                    };
                    if r.status == 200 && r.complete {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("failed during reload: {} {}", r.status, r.text());
                    }
                }
            })
        })
        .collect();

    let reloads = |result: &str| -> u64 {
        let text = gw.metrics_text();
        text.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "berry_config_reloads_total{{result=\"{result}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    let mut expect_ok = 0;
    let mut expect_err = 0;
    for i in 0..10 {
        let valid = i % 3 != 1;
        let (target, name, key) = if i % 2 == 0 {
            (&b, "b", "key-b")
        } else {
            (&a, "a", "key-a")
        };
        if valid {
            gw.write_config(&cfg_for(target, &format!("{key}-{i}")));
            expect_ok += 1;
        } else {
            let broken = cfg_for(target, key).replace("model = \"real\"", "modle = \"real\"");
            gw.write_config(&broken);
            expect_err += 1;
        }
        assert!(
            wait_until(Duration::from_secs(3), || reloads("success") == expect_ok
                && reloads("error") == expect_err),
            "reload {i} not observed"
        );
        if valid {
            // the new route and the rotated key apply to the next request
            let r = gw.chat("tok", "model-x");
            assert_eq!(served_by(&r), name, "reload {i}");
            assert_eq!(
                target.last_request().unwrap().header("authorization"),
                Some(format!("Bearer {key}-{i}").as_str())
            );
        }
    }
    // SIGHUP reloads even an unchanged file
    gw.signal("HUP");
    assert!(wait_until(Duration::from_secs(3), || reloads("success")
        == expect_ok + 1));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "load loop ran: {}",
        ok.load(Ordering::Relaxed)
    );
    let log = gw.log();
    assert!(
        log.contains("models.m.backends[0].modle: unknown key"),
        "problems are logged"
    );
}

#[test]
fn a_providers_timeout_overrides_the_request_timeout() {
    let slow = mock("slow");
    let settings = PASSIVE_ONLY.replace(
        "request_timeout_seconds = 2",
        "request_timeout_seconds = 10",
    );
    let cfg = format!(
        "{settings}\n{u}{ps}timeout_seconds = 0.5\n{pd}[models.short]\nname = \"short\"\n[[models.short.backends]]\nprovider = \"s\"\nmodel = \"r\"\n[models.default]\nname = \"default\"\n[[models.default.backends]]\nprovider = \"d\"\nmodel = \"r\"\n",
        u = user("u", "tok", ""),
        ps = steered_provider("s", &slow),
        pd = steered_provider("d", &slow),
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&slow, &slow]);
    let delayed = |model: &str| {
        gw.post_with(
            "/v1/chat/completions",
            "tok",
            &format!(r#"{{"model":"{model}","messages":[]}}"#),
            &[("x-mock-delay-ms", "1500")],
        )
    };
    // 1.5 s to the response head: past the provider's 0.5 s, within the 10 s default
    let r = delayed("short");
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_timeout");
    let r = delayed("default");
    assert_eq!(r.status, 200, "{}", r.text());
}
