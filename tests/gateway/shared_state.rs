//! Two gateway replicas (real binaries) sharing one real
//! `redis-server`: request limits, token budgets and concurrency caps hold for the pair,
//! a cooldown learnt by one keeps both off the backend, Redis down switches to
//! `on_unavailable` and comes back by itself, and a reload that changes limits applies.

use crate::harness::*;
use berry_mock::{MockProvider, Mode};
use redis::Commands;
use std::time::Duration;

use redis_server::RedisServer;

const ADMIN: &str = "admin-secret-token";

/// Settings with shared state on `redis`, and users with limits: `rpm` (6 requests a
/// minute), `tpm` (60 tokens a minute), `conc` (2 at once), `free` (none).
fn config(redis: &RedisServer, on_unavailable: &str, a: &MockProvider, b: &MockProvider) -> String {
    let settings = quiet_settings()
        + &format!(
            "admin_token = \"{ADMIN}\"\n[settings.shared_state]\nredis_url = \"{}\"\ntimeout_ms = 200\non_unavailable = \"{on_unavailable}\"\n",
            redis.url()
        );
    let users = [
        user(
            "rpm",
            "tok-rpm",
            "[users.rpm.rate_limit]\nrequests_per_minute = 6",
        ),
        user(
            "tpm",
            "tok-tpm",
            "[users.tpm.rate_limit]\ntokens_per_minute = 60",
        ),
        user(
            "conc",
            "tok-conc",
            "[users.conc.rate_limit]\nmax_concurrent = 2",
        ),
        user("free", "tok-free", ""),
    ]
    .concat();
    two_backend_model(&settings, "failover", a, b).replace(&user("u", "tok", ""), &users)
}

fn replicas(config: &str) -> (Gateway, Gateway) {
    let g1 = Gateway::start(config);
    let g2 = Gateway::start(config);
    for g in [&g1, &g2] {
        wait_shared_state_up(g, "shared state not up");
    }
    (g1, g2)
}

/// Waits up to 5 s for `g`'s link to Redis (`berry_shared_state_up` = 1); panics with
/// `what` and the gateway's log.
fn wait_shared_state_up(g: &Gateway, what: &str) {
    assert!(
        wait_until(Duration::from_secs(5), || metric(
            g,
            "berry_shared_state_up",
            &[]
        ) == 1.0),
        "{what}: {}",
        g.log()
    );
}

#[test]
fn two_replicas_enforce_one_set_of_limits() {
    let redis = RedisServer::start();
    let a = mock("a");
    let b = mock("b");
    let (g1, g2) = replicas(&config(&redis, "local", &a, &b));
    // requests: 6 a minute for the pair, not 6 each
    let mut ok = 0;
    for i in 0..12 {
        let g = if i % 2 == 0 { &g1 } else { &g2 };
        let r = g.chat("tok-rpm", "model-x");
        match r.status {
            200 => ok += 1,
            429 => {
                assert_eq!(r.error_code(), "user_rate_limited");
                let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
            }
            s => panic!("{s}: {}", r.text()),
        }
    }
    assert_eq!(ok, 6, "the pair admitted {ok}");
    // tokens: once the pair's window is over budget, both refuse
    let (mut used, mut last) = (0, 0);
    for i in 0..20 {
        let g = if i % 2 == 0 { &g1 } else { &g2 };
        let r = g.chat("tok-tpm", "model-x");
        if r.status == 429 {
            assert_eq!(r.error_code(), "user_token_budget_exceeded", "{}", r.text());
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        last = r.json()["usage"]["total_tokens"].as_u64().unwrap();
        used += last;
        // tokens are added when a request ends (in the background, batched): wait until
        // Redis holds them (this window and the one before, should the minute turn)
        assert!(
            wait_until(Duration::from_secs(5), || user_field(
                &redis,
                "tpm",
                "tok:minute",
                "c"
            ) + user_field(
                &redis,
                "tpm",
                "tok:minute",
                "p"
            ) >= used),
            "{used} tokens not in Redis"
        );
    }
    assert!(used >= 60, "refused at {used} tokens");
    // the last admitted request started under the pair's budget: counted per replica, the
    // pair would have gone on to about twice the budget
    assert!(
        used - last < 60,
        "admitted past the shared budget: {used} tokens"
    );
    for g in [&g1, &g2] {
        let r = g.chat("tok-tpm", "model-x");
        assert_eq!(r.error_code(), "user_token_budget_exceeded", "{}", r.text());
    }
    // concurrency: two streams held on g1 leave no slot on g2
    a.set_stream_shape(4, Duration::from_millis(400));
    std::thread::scope(|s| {
        let held: Vec<_> = (0..2)
            .map(|_| s.spawn(|| g1.chat_stream("tok-conc", "model-x")))
            .collect();
        // both admitted (in flight counts from admission on), and both leases in Redis
        assert!(
            wait_until(Duration::from_secs(3), || metric(
                &g1,
                "berry_inflight_requests",
                &[]
            ) >= 2.0),
            "two streams in flight"
        );
        assert_eq!(leases(&redis, "conc"), 2);
        let r = g2.chat("tok-conc", "model-x");
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.error_code(), "user_concurrency_exceeded");
        for h in held {
            assert_eq!(h.join().unwrap().status, 200);
        }
    });
    // released when the streams ended (batched release: allow a moment)
    assert!(wait_until(Duration::from_secs(3), || g2
        .chat("tok-conc", "model-x")
        .status
        == 200));
    // a user without limits is never refused, and costs Redis nothing: no key of theirs
    for g in [&g1, &g2] {
        assert_eq!(g.chat("tok-free", "model-x").status, 200);
    }
    let mut limited_keys: Vec<String> = redis.client().keys("berry:{*").unwrap();
    limited_keys.sort();
    assert!(
        !limited_keys.is_empty() && limited_keys.iter().all(|k| !k.starts_with("berry:{free}")),
        "{limited_keys:?}"
    );
}

/// Field `field` of user `user`'s hash `suffix` in Redis (0 when absent).
fn user_field(redis: &RedisServer, user: &str, suffix: &str, field: &str) -> u64 {
    redis
        .client()
        .hget::<_, _, Option<u64>>(format!("berry:{{{user}}}:{suffix}"), field)
        .unwrap()
        .unwrap_or(0)
}

/// Concurrency leases user `user` holds in Redis.
fn leases(redis: &RedisServer, user: &str) -> u64 {
    redis
        .client()
        .zcard(format!("berry:{{{user}}}:leases"))
        .unwrap()
}

#[test]
fn a_cooldown_learnt_by_one_replica_keeps_both_off_the_backend() {
    let redis = RedisServer::start();
    let a = mock("a");
    let b = mock("b");
    let (g1, g2) = replicas(&config(&redis, "local", &a, &b));
    a.set_mode(Mode::RateLimited {
        retry_after: Some("30".into()),
    });
    let r = g1.chat("tok-free", "model-x");
    assert_eq!(
        (r.status, served_by(&r).as_str()),
        (200, "b"),
        "{}",
        r.text()
    );
    a.set_mode(Mode::Ok);
    let tried = a.hits_for("/chat/completions");
    // g2 never saw the 429: within a second Redis tells it
    assert!(
        wait_until(Duration::from_secs(3), || {
            let c = admin_backends(&g2, ADMIN)[0]["cooldown_remaining_seconds"]
                .as_f64()
                .unwrap_or(0.0);
            c > 20.0
        }),
        "g2 did not learn a's cooldown"
    );
    for _ in 0..3 {
        let r = g2.chat("tok-free", "model-x");
        assert_eq!(served_by(&r), "b");
    }
    assert_eq!(
        a.hits_for("/chat/completions"),
        tried,
        "no replica went back to a"
    );
}

#[test]
fn losing_redis_switches_to_on_unavailable_and_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let a = mock("a");
    let b = mock("b");
    let cfg = config(&redis, "local", &a, &b);
    let (g1, _g2) = replicas(&cfg);
    let mode = |m: &str| {
        cfg.replace(
            "on_unavailable = \"local\"",
            &format!("on_unavailable = \"{m}\""),
        )
    };
    let deny = Gateway::start(&mode("deny"));
    let allow = Gateway::start(&mode("allow"));
    for g in [&deny, &allow] {
        wait_shared_state_up(g, "shared state not up");
    }
    redis.stop();
    // local: requests keep flowing, limited by this replica alone (6 a minute)
    for i in 0..7 {
        let r = g1.chat("tok-rpm", "model-x");
        if i < 6 {
            assert_eq!(r.status, 200, "{i}: {}", r.text());
        } else {
            assert_eq!(r.status, 429, "{}", r.text());
            assert_eq!(r.error_code(), "user_rate_limited");
        }
    }
    assert_eq!(metric(&g1, "berry_shared_state_up", &[]), 0.0);
    assert!(metric(&g1, "berry_shared_state_errors_total", &[]) >= 1.0);
    assert!(
        metric(
            &g1,
            "berry_shared_state_fallbacks_total",
            &[("on_unavailable", "local")]
        ) >= 7.0
    );
    // allow: admitted past the limit
    for _ in 0..8 {
        let r = allow.chat("tok-rpm", "model-x");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // deny: a clear 503, quickly
    let t0 = std::time::Instant::now();
    let r = deny.chat("tok-rpm", "model-x");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "shared_state_unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // users without limits never need Redis
    assert_eq!(deny.chat("tok-free", "model-x").status, 200);
    // Redis back: both replicas reconnect by themselves
    redis.restart();
    for g in [&g1, &deny] {
        wait_shared_state_up(g, "no reconnect");
    }
    assert_eq!(deny.chat("tok-rpm", "model-x").status, 200);
    for log in [g1.log(), deny.log()] {
        assert!(!log.contains("tok-rpm") && !log.contains("key-a"), "{log}");
    }
}

#[test]
fn a_reload_that_changes_limits_applies_to_the_fleet() {
    let redis = RedisServer::start();
    let a = mock("a");
    let b = mock("b");
    let cfg = config(&redis, "local", &a, &b)
        .replace("requests_per_minute = 6", "requests_per_minute = 2");
    let (g1, g2) = replicas(&cfg);
    assert_eq!(g1.chat("tok-rpm", "model-x").status, 200);
    assert_eq!(g2.chat("tok-rpm", "model-x").status, 200);
    assert_eq!(g1.chat("tok-rpm", "model-x").status, 429);
    let raised = cfg.replace("requests_per_minute = 2", "requests_per_minute = 4");
    for g in [&g1, &g2] {
        g.write_config(&raised);
        assert!(wait_until(Duration::from_secs(3), || metric(
            g,
            "berry_config_reloads_total",
            &[("result", "success")]
        ) >= 1.0));
    }
    assert_eq!(g2.chat("tok-rpm", "model-x").status, 200);
    assert_eq!(g1.chat("tok-rpm", "model-x").status, 200);
    assert_eq!(g2.chat("tok-rpm", "model-x").status, 429, "4 for the pair");
}

/// The Redis URL's password never leaves the config: not in the log (Redis unreachable, so
/// every probe and admission fails and is logged), not in `/metrics`, `/health` or
/// `/admin/config`.
#[test]
fn the_redis_password_is_never_printed() {
    const PASSWORD: &str = "r3dis-pw-7c1e9a";
    let (a, b) = (mock("pw-a"), mock("pw-b"));
    let unreachable = free_port();
    let settings = quiet_settings()
        + &format!(
            "admin_token = \"{ADMIN}\"\n[settings.shared_state]\nredis_url = \"redis://:{PASSWORD}@127.0.0.1:{unreachable}/0\"\ntimeout_ms = 100\n"
        );
    let cfg = two_backend_model(&settings, "failover", &a, &b).replace(
        &user("u", "tok", ""),
        &user(
            "rpm",
            "tok-rpm",
            "[users.rpm.rate_limit]\nrequests_per_minute = 100",
        ),
    );
    let mut gw = Gateway::start(&cfg);
    assert!(wait_until(Duration::from_secs(5), || metric(
        &gw,
        "berry_shared_state_errors_total",
        &[]
    ) >= 1.0));
    // Admitted by the local fallback.
    assert_eq!(gw.chat("tok-rpm", "model-x").status, 200);
    let mut seen = gw.metrics_text();
    seen += &gw.get("/health", None).text();
    let admin = gw.get("/admin/config", Some(ADMIN));
    assert_eq!(admin.status, 200, "{}", admin.text());
    assert!(admin.text().contains("<redacted>"), "{}", admin.text());
    seen += &admin.text();
    seen += &gw.stop();
    assert!(
        seen.contains("shared"),
        "the log says nothing of shared state: {seen}"
    );
    assert!(
        !seen.contains(PASSWORD),
        "the Redis password leaked: {seen}"
    );
}

/// `[settings.shared_state]` is read at start only: a reload that changes it warns, and the
/// running link keeps its Redis and its key prefix until a restart or upgrade.
#[test]
fn a_reload_that_changes_shared_state_warns_and_keeps_the_running_link() {
    let redis = RedisServer::start();
    let a = mock("a");
    let b = mock("b");
    let cfg = config(&redis, "local", &a, &b);
    let g = Gateway::start(&cfg);
    wait_shared_state_up(&g, "shared state not up");
    assert_eq!(g.chat("tok-rpm", "model-x").status, 200);
    let moved = cfg.replace(
        "[settings.shared_state]\n",
        "[settings.shared_state]\nkey_prefix = \"elsewhere:\"\n",
    );
    assert_ne!(moved, cfg);
    g.write_config(&moved);
    assert!(wait_until(Duration::from_secs(3), || metric(
        &g,
        "berry_config_reloads_total",
        &[("result", "success")]
    ) >= 1.0));
    // the log is written by a background thread: wait for the line
    let warning =
        "settings.shared_state changed; the Redis connection changes only on restart or upgrade";
    assert!(
        wait_until(Duration::from_secs(3), || g.log().contains(warning)),
        "{}",
        g.log()
    );
    assert_eq!(g.chat("tok-rpm", "model-x").status, 200);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.client())
        .unwrap();
    assert!(
        keys.iter().any(|k| k == "berry:{rpm}:req:minute"),
        "{keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.starts_with("elsewhere:")),
        "{keys:?}"
    );
    let (c, p): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
        .arg("berry:{rpm}:req:minute")
        .arg("c")
        .arg("p")
        .query(&mut redis.client())
        .unwrap();
    assert_eq!(
        c.unwrap_or(0) + p.unwrap_or(0),
        2,
        "both requests on the old prefix"
    );
}
