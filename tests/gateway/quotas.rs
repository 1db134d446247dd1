//! Per-user token budgets and concurrency caps in one replica, over real sockets
//! (the limits shared across replicas on Redis are tested in `shared_state.rs`).

use crate::harness::*;
use std::time::Duration;

fn config(a: &berry_mock::MockProvider, limits: &str) -> String {
    format!(
        "{settings}\n[users.u]\ntoken = \"tok\"\n[users.u.rate_limit]\n{limits}\n[users.free]\ntoken = \"tok-free\"\n{p}\n[models.m]\nname = \"model-x\"\n[[models.m.backends]]\nprovider = \"a\"\nmodel = \"real-a\"\n",
        settings = quiet_settings(),
        p = provider("a", a),
    )
}

#[test]
fn a_spent_token_budget_refuses_until_the_window_slides() {
    let a = mock("a");
    let gw = Gateway::start(&config(&a, "tokens_per_minute = 60"));
    let (mut used, mut last) = (0, 0);
    let mut admitted = 0;
    let refused = loop {
        let r = gw.chat("tok", "model-x");
        if r.status != 200 {
            break r;
        }
        admitted += 1;
        last = r.json()["usage"]["total_tokens"].as_u64().unwrap();
        used += last;
        // its tokens are counted when the request ends, just after the answer went out
        assert!(wait_until(Duration::from_secs(2), || metric(
            &gw,
            "berry_tokens_total",
            &[("user", "u")]
        ) >= used as f64));
        assert!(admitted < 20, "the budget never ran out");
    };
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.error_code(), "user_token_budget_exceeded");
    assert_eq!(refused.json()["error"]["type"], "rate_limit_error");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // admitted while under budget: the last admitted request started under 60 tokens
    assert!(used >= 60, "refused at {used} tokens");
    assert!(used - last < 60, "admitted over budget: {used} tokens");
    assert!(admitted >= 2, "{admitted} admitted");
    // another user is not affected, and the refusal was counted
    assert_eq!(gw.chat("tok-free", "model-x").status, 200);
    assert_eq!(
        metric(
            &gw,
            "berry_user_rate_limited_total",
            &[("user", "u"), ("window", "tokens_minute")]
        ),
        1.0
    );
}

#[test]
fn max_concurrent_caps_requests_in_flight() {
    let a = mock_with("a", |o| {
        o.chunks = 4;
        o.chunk_interval = Duration::from_millis(400);
    });
    let gw = Gateway::start(&config(&a, "max_concurrent = 2"));
    std::thread::scope(|s| {
        let streams: Vec<_> = (0..2)
            .map(|_| s.spawn(|| gw.chat_stream("tok", "model-x")))
            .collect();
        // both admitted: in flight counts a request from its admission on
        assert!(
            wait_until(Duration::from_secs(3), || metric(
                &gw,
                "berry_inflight_requests",
                &[]
            ) >= 2.0),
            "two streams in flight"
        );
        let r = gw.chat("tok", "model-x");
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.error_code(), "user_concurrency_exceeded");
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(
            gw.chat("tok-free", "model-x").status,
            200,
            "other users unaffected"
        );
        for t in streams {
            let done = t.join().unwrap();
            assert_eq!(done.sse_data().last().map(String::as_str), Some("[DONE]"));
        }
    });
    // both slots came back when the streams ended
    assert!(wait_until(Duration::from_secs(2), || gw
        .chat("tok", "model-x")
        .status
        == 200));
}
