//! Shared state across replicas against a real `redis-server`: two
//! `SharedState` instances in one process stand for two replicas sharing one Redis.
//!
//! Every test starts its own server on a free port. Waits poll observable state with
//! generous deadlines; no test asserts on latency (the latency test only prints numbers).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may fail loudly

#[allow(dead_code)]
#[path = "common/redis.rs"]
mod redis_server;
#[allow(dead_code)] // each test binary uses part of the helper
#[path = "common/test_ca.rs"]
mod test_ca;

use berry_gateway::clock;
use berry_gateway::config::{RateLimit, Secret};
use berry_gateway::quota::LocalQuota;
use berry_gateway::routing::state::BackendState;
use berry_gateway::shared::{Admission, Lease, QuotaLimit, SharedSettings, SharedState};
use redis::Commands;
use redis_server::RedisServer;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings for functional tests: a 1 s timeout, so a loaded test machine does not turn a
/// slow answer into `Unavailable` (the down/frozen tests use the 50 ms default).
fn settings(server: &RedisServer) -> SharedSettings {
    SharedSettings {
        timeout: Duration::from_secs(1),
        ..SharedSettings::new(Secret::new(server.url()))
    }
}

/// Settings with the default 50 ms timeout.
fn default_settings(server: &RedisServer) -> SharedSettings {
    SharedSettings::new(Secret::new(server.url()))
}

/// Starts a replica and waits until its probe has seen Redis.
async fn replica(settings: SharedSettings) -> Arc<SharedState> {
    let s = SharedState::start(settings);
    wait_until("shared state up", || s.is_up()).await;
    s
}

/// Two replicas on `server` (1 s timeout), both up.
async fn two_replicas(server: &RedisServer) -> (Arc<SharedState>, Arc<SharedState>) {
    (
        replica(settings(server)).await,
        replica(settings(server)).await,
    )
}

/// `n` admissions of `user` at once, alternating between `a` and `b`; their answers.
async fn admit_at_once(
    a: &Arc<SharedState>,
    b: &Arc<SharedState>,
    n: usize,
    user: &'static str,
    limits: RateLimit,
) -> Vec<Admission> {
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let r = Arc::clone(if i % 2 == 0 { a } else { b });
            tokio::spawn(async move { r.try_admit(user, &limits).await.unwrap() })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for c in calls {
        out.push(c.await.unwrap());
    }
    out
}

/// Polls `f` until it holds; panics naming `what` after 5 s.
async fn wait_until(what: &str, f: impl FnMut() -> bool) {
    assert!(
        berry_test_support::wait_until_async(Duration::from_secs(5), f).await,
        "timed out waiting for {what}"
    );
}

/// An admission with the 50 ms default timeout: a loaded test machine may miss it once
/// (which marks Redis down until the next probe), so retry for up to 5 s.
async fn admit_eventually(r: &SharedState, user: &str, limits: &RateLimit) -> Admission {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match r.try_admit(user, limits).await {
            Ok(a) => return a,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn admitted(a: &Admission) -> bool {
    matches!(a, Admission::Admitted(_))
}

fn refused_by(a: &Admission) -> Option<(QuotaLimit, u64)> {
    match a {
        Admission::Refused(r) => Some((r.limit, r.retry_after_secs)),
        Admission::Admitted(_) => None,
    }
}

fn lease(a: Admission) -> Lease {
    match a {
        Admission::Admitted(Some(l)) => l,
        other => panic!("expected a lease, got {other:?}"),
    }
}

/// What a window key counts: current + previous (a window boundary may fall mid-test).
fn count(server: &RedisServer, key: &str) -> u64 {
    let (c, p): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
        .arg(key)
        .arg("c")
        .arg("p")
        .query(&mut server.client())
        .unwrap();
    c.unwrap_or(0) + p.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_are_exact_across_replicas() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server).await;
    let limits = RateLimit {
        per_minute: Some(10),
        ..Default::default()
    };
    let mut ok = 0;
    for i in 0..20 {
        let r = if i % 2 == 0 { &a } else { &b };
        let adm = r.try_admit("alice", &limits).await.unwrap();
        if admitted(&adm) {
            ok += 1;
        } else {
            let (limit, retry) = refused_by(&adm).unwrap();
            assert_eq!(limit, QuotaLimit::RequestsPerMinute);
            assert_eq!(limit.label(), "minute");
            assert!((1..=60).contains(&retry), "retry after {retry}");
        }
    }
    assert_eq!(ok, 10, "two replicas admit the configured 10, not 20");
    // another user has their own windows
    assert!(admitted(&b.try_admit("bob", &limits).await.unwrap()));
    assert_eq!(
        count(&server, "berry:{alice}:req:minute"),
        10,
        "refusals counted nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_admissions_on_two_replicas_admit_exactly_the_limit() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server).await;
    let limits = RateLimit {
        per_minute: Some(30),
        max_concurrent: Some(20),
        ..Default::default()
    };
    // 2 × 40 admissions in flight at once, leases held: the concurrency cap binds first
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for adm in admit_at_once(&a, &b, 80, "zoe", limits).await {
        match adm {
            Admission::Admitted(lease) => held.push(lease.unwrap()),
            other => refused.push(refused_by(&other).unwrap().0),
        }
    }
    assert_eq!(held.len(), 20, "the cap of 20 across both replicas");
    assert!(
        refused.iter().all(|l| *l == QuotaLimit::Concurrency),
        "{refused:?}"
    );
    assert_eq!(count(&server, "berry:{zoe}:req:minute"), 20);
    // slots released: the next 10 at once fill the minute window, not more
    for l in held.drain(..) {
        a.finish("zoe", &limits, Some(l), 0);
    }
    let leases = || -> u64 {
        redis::cmd("ZCARD")
            .arg("berry:{zoe}:leases")
            .query(&mut server.client())
            .unwrap()
    };
    wait_until("all 20 leases released", || leases() == 0).await;
    wait_until_admitted(&b, "zoe", &limits).await;
    // the one wait_until_admitted took, and the rest of them at once
    let ok = 1 + admit_at_once(&a, &b, 40, "zoe", limits)
        .await
        .iter()
        .filter(|adm| admitted(adm))
        .count();
    assert_eq!(ok, 10, "the window admits its remaining 10 once");
    assert_eq!(count(&server, "berry:{zoe}:req:minute"), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_prefix_separates_deployments_and_windows_follow_redis_time() {
    let server = RedisServer::start();
    let with_prefix = |prefix: &str| SharedSettings {
        key_prefix: prefix.to_string(),
        ..settings(&server)
    };
    let team_a = replica(with_prefix("team-a:")).await;
    let team_b = replica(with_prefix("team-b:")).await;
    let limits = RateLimit {
        per_minute: Some(2),
        ..Default::default()
    };
    for _ in 0..2 {
        assert!(admitted(&team_a.try_admit("ann", &limits).await.unwrap()));
    }
    assert!(!admitted(&team_a.try_admit("ann", &limits).await.unwrap()));
    // the same user id under another prefix has windows of its own
    assert!(admitted(&team_b.try_admit("ann", &limits).await.unwrap()));
    assert_eq!(count(&server, "team-a:{ann}:req:minute"), 2);
    assert_eq!(count(&server, "team-b:{ann}:req:minute"), 1);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.client())
        .unwrap();
    assert!(
        keys.iter()
            .all(|k| k.starts_with("team-a:") || k.starts_with("team-b:")),
        "{keys:?}"
    );
    // windows follow Redis's clock (TIME), not the replica's: the replica sends no time
    // (ARGV[1] = 0, which has the script read TIME); SLOWLOG with a 0 µs threshold records
    // every command with its arguments
    let mut c = server.client();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut c).unwrap();
    assert!(admitted(&team_b.try_admit("ann", &limits).await.unwrap()));
    let log: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(100)
        .query(&mut c)
        .unwrap();
    let args_of = |entry: &redis::Value| -> Vec<String> {
        let redis::Value::Array(fields) = entry else {
            panic!("{entry:?}")
        };
        let redis::Value::Array(args) = &fields[3] else {
            panic!("{fields:?}")
        };
        args.iter()
            .map(|a| match a {
                redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                other => format!("{other:?}"),
            })
            .collect()
    };
    let admits: Vec<Vec<String>> = log
        .iter()
        .map(args_of)
        .filter(|a| a[0].eq_ignore_ascii_case("evalsha") && a[3].starts_with("team-b:{ann}:"))
        .collect();
    assert_eq!(admits.len(), 1, "{log:?}");
    assert_eq!(admits[0][2], "6", "six user keys");
    assert_eq!(
        admits[0][9], "0",
        "the replica sent no time: {:?}",
        admits[0]
    );
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut c).unwrap();
    let redis_ms = secs * 1000 + micros / 1000;
    let start: u64 = redis::cmd("HGET")
        .arg("team-b:{ann}:req:minute")
        .arg("s")
        .query(&mut c)
        .unwrap();
    assert_eq!(start % 60_000, 0);
    assert!(
        start <= redis_ms && redis_ms - start < 2 * 60_000,
        "window start {start}, Redis time {redis_ms}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_consumes_nothing() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server).await;
    let tight = RateLimit {
        per_minute: Some(10),
        per_hour: Some(3),
        ..Default::default()
    };
    for _ in 0..3 {
        assert!(admitted(&a.try_admit("carol", &tight).await.unwrap()));
    }
    for r in [&a, &b, &a, &b, &a] {
        let adm = r.try_admit("carol", &tight).await.unwrap();
        assert_eq!(
            refused_by(&adm).map(|(l, _)| l),
            Some(QuotaLimit::RequestsPerHour)
        );
    }
    // The hour refusals took nothing from the minute window: with the hour limit raised,
    // exactly 10 − 3 more fit in the minute.
    let loose = RateLimit {
        per_hour: Some(100),
        ..tight
    };
    let mut more = 0;
    for i in 0..12 {
        let r = if i % 2 == 0 { &a } else { &b };
        if admitted(&r.try_admit("carol", &loose).await.unwrap()) {
            more += 1;
        }
    }
    assert_eq!(more, 7);
    assert_eq!(count(&server, "berry:{carol}:req:minute"), 10);
    assert_eq!(count(&server, "berry:{carol}:req:hour"), 10);
    // a concurrency refusal takes no lease and counts no request either
    let capped = RateLimit {
        per_minute: Some(100),
        max_concurrent: Some(1),
        ..Default::default()
    };
    let held = lease(a.try_admit("dave", &capped).await.unwrap());
    for r in [&a, &b] {
        let adm = r.try_admit("dave", &capped).await.unwrap();
        assert_eq!(refused_by(&adm), Some((QuotaLimit::Concurrency, 1)));
    }
    assert_eq!(count(&server, "berry:{dave}:req:minute"), 1);
    let members: u64 = server.client().zcard("berry:{dave}:leases").unwrap();
    assert_eq!(members, 1);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_windows_and_retry_after_as_the_local_limiter() {
    // The script's windows are quota::local::Counter's: replay one sequence of instants through the
    // local limiter and through Redis (try_admit_at pins the script's clock) and compare every
    // answer, Retry-After included.
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server).await;
    let local = LocalQuota::default();
    let rate = RateLimit {
        per_minute: Some(5),
        per_hour: Some(40),
        ..Default::default()
    };
    let limits = rate;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut now: u64 = 1_700_000_000_000;
    let (mut admitted_n, mut refused_n) = (0, 0);
    for i in 0..600 {
        now += match rng.u8(..10) {
            0 => rng.u64(60_000..200_000),
            1..=3 => rng.u64(1_000..20_000),
            _ => rng.u64(0..1_500),
        };
        let expected = local
            .try_take(&rate, now)
            .map(drop)
            .map_err(|r| (r.limit.label(), r.retry_after_secs));
        let r = if i % 2 == 0 { &a } else { &b };
        let got = r.try_admit_at("erin", &limits, now).await.unwrap();
        match (expected, &got) {
            (Ok(()), Admission::Admitted(None)) => admitted_n += 1,
            (Err((window, retry)), Admission::Refused(_)) => {
                let (limit, shared_retry) = refused_by(&got).unwrap();
                assert_eq!(
                    (limit.label(), shared_retry),
                    (window, retry),
                    "step {i} at {now}"
                );
                refused_n += 1;
            }
            (e, g) => panic!("step {i} at {now}: local {e:?}, shared {g:?}"),
        }
    }
    assert!(
        admitted_n > 50 && refused_n > 50,
        "{admitted_n} / {refused_n}"
    );

    // auth.rs's own boundary scenario, through Redis
    let l = RateLimit {
        per_minute: Some(3),
        ..Default::default()
    };
    let t0 = 60_000 * 28_333_333; // a window start
    for i in 0..3 {
        assert!(admitted(
            &a.try_admit_at("frank", &l, t0 + i).await.unwrap()
        ));
    }
    let r = a.try_admit_at("frank", &l, t0 + 10).await.unwrap();
    assert_eq!(refused_by(&r), Some((QuotaLimit::RequestsPerMinute, 60)));
    assert!(!admitted(
        &b.try_admit_at("frank", &l, t0 + 59_999).await.unwrap()
    ));
    assert!(admitted(
        &b.try_admit_at("frank", &l, t0 + 80_001).await.unwrap()
    ));
    assert!(!admitted(
        &a.try_admit_at("frank", &l, t0 + 80_002).await.unwrap()
    ));
    for i in 0..3 {
        assert!(admitted(
            &a.try_admit_at("frank", &l, t0 + 180_000 + i).await.unwrap()
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_budgets_refuse_once_spent() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server).await;
    let limits = RateLimit {
        tokens_per_minute: Some(100),
        tokens_per_day: Some(10_000),
        ..Default::default()
    };
    // under budget: admitted, and requests are not limited
    for _ in 0..5 {
        assert!(admitted(&a.try_admit("gina", &limits).await.unwrap()));
    }
    a.finish("gina", &limits, None, 60);
    a.flush().await;
    assert!(
        admitted(&b.try_admit("gina", &limits).await.unwrap()),
        "60 < 100"
    );
    b.finish("gina", &limits, None, 90);
    // the flusher sends it by itself (no explicit flush)
    let mut refusal = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while refusal.is_none() {
        assert!(Instant::now() < deadline, "token budget never refused");
        refusal = refused_by(&a.try_admit("gina", &limits).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (limit, retry) = refusal.unwrap();
    assert_eq!(limit, QuotaLimit::TokensPerMinute);
    assert!(limit.is_tokens());
    assert!((1..=60).contains(&retry), "retry after {retry}");
    assert_eq!(count(&server, "berry:{gina}:tok:minute"), 150);
    assert_eq!(count(&server, "berry:{gina}:tok:day"), 150);
    let r = b.try_admit("gina", &limits).await.unwrap();
    assert_eq!(
        refused_by(&r).map(|(l, _)| l),
        Some(QuotaLimit::TokensPerMinute)
    );

    // the day budget
    let daily = RateLimit {
        tokens_per_day: Some(1_000),
        ..Default::default()
    };
    assert!(admitted(&a.try_admit("hank", &daily).await.unwrap()));
    a.finish("hank", &daily, None, 5_000);
    a.flush().await;
    let r = b.try_admit("hank", &daily).await.unwrap();
    assert_eq!(
        refused_by(&r).map(|(l, _)| l),
        Some(QuotaLimit::TokensPerDay)
    );
    assert_eq!(QuotaLimit::TokensPerDay.label(), "tokens_day");

    // tokens of a user without a token budget are not written
    let plain = RateLimit {
        per_minute: Some(10),
        ..Default::default()
    };
    a.finish("ivy", &plain, None, 500);
    a.flush().await;
    let exists: bool = server.client().exists("berry:{ivy}:tok:minute").unwrap();
    assert!(!exists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_capped_across_replicas() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server).await;
    let limits = RateLimit {
        max_concurrent: Some(2),
        ..Default::default()
    };
    let la = lease(a.try_admit("jane", &limits).await.unwrap());
    let lb = lease(b.try_admit("jane", &limits).await.unwrap());
    for r in [&a, &b] {
        let adm = r.try_admit("jane", &limits).await.unwrap();
        assert_eq!(refused_by(&adm), Some((QuotaLimit::Concurrency, 1)));
        assert_eq!(QuotaLimit::Concurrency.label(), "concurrency");
    }
    // finishing on one replica frees a slot for the other
    a.finish("jane", &limits, Some(la), 0);
    let mut again = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while again.is_none() {
        assert!(Instant::now() < deadline, "released slot never reusable");
        if let Admission::Admitted(Some(l)) = b.try_admit("jane", &limits).await.unwrap() {
            again = Some(l);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // dropping a lease (a request that died without finish) releases it too
    drop(lb);
    wait_until_admitted(&a, "jane", &limits).await;
}

async fn wait_until_admitted(r: &SharedState, user: &str, limits: &RateLimit) -> Lease {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Admission::Admitted(Some(l)) = r.try_admit(user, limits).await.unwrap() {
            return l;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_renewed_while_held_and_expire_when_a_replica_dies() {
    let server = RedisServer::start();
    let ttl = Duration::from_millis(1_500);
    let short = SharedSettings {
        lease_ttl: ttl,
        ..settings(&server)
    };
    let a = replica(short.clone()).await;
    let b = replica(short).await;
    let limits = RateLimit {
        max_concurrent: Some(2),
        ..Default::default()
    };
    let held = [
        lease(a.try_admit("kim", &limits).await.unwrap()),
        lease(a.try_admit("kim", &limits).await.unwrap()),
    ];
    // Three lease lifetimes later a still holds both: renewal keeps them.
    let until = Instant::now() + ttl * 3;
    while Instant::now() < until {
        let adm = b.try_admit("kim", &limits).await.unwrap();
        assert_eq!(
            refused_by(&adm),
            Some((QuotaLimit::Concurrency, 1)),
            "a held lease expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The replica dies without finishing: no release is ever sent.
    drop(a);
    std::mem::forget(held);
    let started = Instant::now();
    let _l = wait_until_admitted(&b, "kim", &limits).await;
    println!(
        "slot of a dead replica free after {:?} (lease TTL {ttl:?})",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooldowns_reach_the_other_replica() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server).await;
    let id: Arc<str> = "gpt4/openai/gpt-4o".into();
    let other: Arc<str> = "gpt4/azure/gpt-4o".into();
    let state = Arc::new(BackendState::new(0.8, clock::now_ms()));
    let untouched = Arc::new(BackendState::new(0.8, clock::now_ms()));
    b.watch_backends(vec![
        (Arc::clone(&id), Arc::clone(&state)),
        (Arc::clone(&other), Arc::clone(&untouched)),
    ]);
    let published = Instant::now();
    a.publish_cooldown(&id, 20_000);
    wait_until("cooldown applied on the other replica", || {
        state.cooldown_remaining_ms(clock::now_ms()) > 10_000
    })
    .await;
    println!(
        "cooldown seen by the other replica after {:?}",
        published.elapsed()
    );
    assert_eq!(untouched.cooldown_remaining_ms(clock::now_ms()), 0);
    let key = "berry:{cool}:gpt4/openai/gpt-4o";
    // a shorter cooldown does not shorten what Redis holds
    a.publish_cooldown(&id, 2_000);
    a.flush().await;
    let pttl: i64 = server.client().pttl(key).unwrap();
    assert!(pttl > 10_000, "pttl {pttl}");
    // longer ones extend it, capped at 300 s like local cooldowns
    b.publish_cooldown(&id, 10_000_000);
    b.flush().await;
    let pttl: i64 = server.client().pttl(key).unwrap();
    assert!((200_000..=300_000).contains(&pttl), "pttl {pttl}");
    // the watch list is replaced on reload
    b.watch_backends(vec![(Arc::clone(&other), Arc::clone(&untouched))]);
    a.publish_cooldown(&other, 30_000);
    wait_until("cooldown of the newly watched backend", || {
        untouched.cooldown_remaining_ms(clock::now_ms()) > 10_000
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_means_unavailable_at_once_and_it_comes_back_by_itself() {
    let mut server = RedisServer::start();
    let a = replica(default_settings(&server)).await;
    let limits = RateLimit {
        per_minute: Some(1_000),
        ..Default::default()
    };
    assert!(admitted(&admit_eventually(&a, "lena", &limits).await));

    server.stop();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let r = a.try_admit("lena", &limits).await;
        slowest = slowest.max(t.elapsed());
        assert!(r.is_err(), "admitted with Redis stopped: {r:?}");
    }
    println!("Redis stopped: slowest admit {slowest:?} (timeout 50 ms)");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    assert!(!a.is_up());
    // a user without limits needs no Redis
    assert!(admitted(
        &a.try_admit("lena", &RateLimit::default()).await.unwrap()
    ));
    // writes made while down stay queued…
    let budget = RateLimit {
        tokens_per_minute: Some(1_000),
        ..limits
    };
    a.finish("lena", &budget, None, 10);
    a.flush().await;

    server.restart();
    let t = Instant::now();
    wait_until("back up after restart", || a.is_up()).await;
    println!("back up {:?} after the restart", t.elapsed());
    assert!(admitted(&admit_eventually(&a, "lena", &limits).await));
    // …and reach Redis once it is back (late, not lost)
    wait_until("tokens queued while down", || {
        count(&server, "berry:{lena}:tok:minute") == 10
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_at_most_the_timeout() {
    let server = RedisServer::start();
    let a = replica(default_settings(&server)).await;
    let limits = RateLimit {
        per_minute: Some(1_000),
        max_concurrent: Some(10),
        ..Default::default()
    };
    assert!(admitted(&admit_eventually(&a, "mia", &limits).await));
    server.pause();
    let t = Instant::now();
    let first = a.try_admit("mia", &limits).await;
    let first_took = t.elapsed();
    assert!(first.is_err());
    let t = Instant::now();
    for _ in 0..10 {
        assert!(a.try_admit("mia", &limits).await.is_err());
    }
    let rest_took = t.elapsed();
    println!(
        "frozen Redis: first admit {first_took:?} (timeout 50 ms), next 10 together {rest_took:?}"
    );
    assert!(first_took < Duration::from_secs(1), "{first_took:?}");
    // once marked down, admissions answer at once instead of each waiting the timeout
    // (10 × 50 ms)
    assert!(
        rest_took < 5 * berry_gateway::shared::DEFAULT_TIMEOUT,
        "{rest_took:?}"
    );
    assert!(!a.is_up());
    server.resume();
    wait_until("back up after SIGCONT", || a.is_up()).await;
    assert!(admitted(&admit_eventually(&a, "mia", &limits).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_while_redis_is_down() {
    let mut server = RedisServer::start();
    let s = settings(&server);
    server.stop();
    let a = SharedState::start(s);
    let limits = RateLimit {
        per_minute: Some(5),
        ..Default::default()
    };
    // down from the start, and still down once a probe has failed (the counter is the
    // process's: another test's failed probe may count too, never fewer)
    assert!(!a.is_up());
    let probe_errors = || {
        berry_gateway::metrics::SHARED_STATE_ERRORS
            .with_label_values(&["probe"])
            .get()
    };
    let before = probe_errors();
    wait_until("a failed probe", || probe_errors() > before).await;
    assert!(!a.is_up());
    assert!(a.try_admit("nora", &limits).await.is_err());
    server.restart();
    wait_until("up once Redis appears", || a.is_up()).await;
    assert!(admitted(&a.try_admit("nora", &limits).await.unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_script_cache_is_reloaded() {
    let server = RedisServer::start();
    let a = replica(settings(&server)).await;
    let limits = RateLimit {
        per_minute: Some(10),
        tokens_per_minute: Some(1_000),
        max_concurrent: Some(5),
        ..Default::default()
    };
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut server.client())
        .unwrap();
    let l = lease(a.try_admit("olga", &limits).await.unwrap());
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut server.client())
        .unwrap();
    a.finish("olga", &limits, Some(l), 42);
    a.publish_cooldown(&"m/p/x".into(), 5_000);
    a.flush().await;
    assert!(a.is_up());
    assert_eq!(count(&server, "berry:{olga}:tok:minute"), 42);
    let members: u64 = server.client().zcard("berry:{olga}:leases").unwrap();
    assert_eq!(members, 0, "the lease was released");
    let pttl: i64 = server.client().pttl("berry:{cool}:m/p/x").unwrap();
    assert!(pttl > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_evalsha_per_admission_and_its_latency() {
    let server = RedisServer::start();
    let a = replica(settings(&server)).await;
    let windows = RateLimit {
        per_minute: Some(1_000_000),
        per_hour: Some(1_000_000),
        tokens_per_minute: Some(1_000_000),
        ..Default::default()
    };
    let with_lease = RateLimit {
        max_concurrent: Some(1_000_000),
        ..windows
    };
    // warm up (connection, script cache)
    for _ in 0..50 {
        a.try_admit("pat", &windows).await.unwrap();
    }
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut server.client())
        .unwrap();
    const N: usize = 2_000;
    let mut took = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let adm = a.try_admit("pat", &windows).await.unwrap();
        took.push(t.elapsed());
        assert!(admitted(&adm));
    }
    // (no leases held, nothing queued: the only other traffic is the probe's PING)
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.client())
        .unwrap();
    let calls = |cmd: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    println!("commandstats after {N} admissions:\n{stats}");
    assert_eq!(calls("evalsha"), N as u64, "one EVALSHA per admission");
    for cmd in ["eval", "script|load", "multi", "exec", "get", "set"] {
        assert_eq!(calls(cmd), 0, "{cmd}");
    }
    print_latency("3 windows", &mut took);
    let mut took = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let adm = a.try_admit("pat", &with_lease).await.unwrap();
        took.push(t.elapsed());
        drop(lease(adm));
    }
    print_latency("3 windows + lease", &mut took);
    let t = Instant::now();
    let n_unlimited = 100_000;
    for _ in 0..n_unlimited {
        a.try_admit("quinn", &RateLimit::default()).await.unwrap();
    }
    println!(
        "admit without limits (no round trip): {:?} each",
        t.elapsed() / n_unlimited
    );
}

fn print_latency(what: &str, took: &mut [Duration]) {
    took.sort();
    let n = took.len();
    let pct = |p: f64| took[((n as f64 * p) as usize).min(n - 1)];
    let mean = took.iter().sum::<Duration>() / n as u32;
    println!(
        "admit latency, {what}, {n} sequential calls against a local redis-server \
         (this build profile): mean {mean:?}, p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        took[n - 1]
    );
}

/// The client half of [`rediss_through_rustls`], which runs it in a child process of this
/// test binary with `SSL_CERT_FILE` (a throwaway CA, read by the system-roots loader the
/// redis client uses) and the server's URL in the environment from its start: changing the
/// environment of a process while other test threads may read it is a data race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the client half of rediss_through_rustls, which runs it in a child process"]
async fn rediss_client_half() {
    let Ok(url) = std::env::var("BERRY_TEST_REDISS_URL") else {
        // run by hand (`--ignored`) outside its parent: there is no server to talk to
        println!("skipped: run by rediss_through_rustls");
        return;
    };
    assert!(url.starts_with("rediss://"), "{url}");
    let settings = || SharedSettings {
        timeout: Duration::from_secs(1),
        ..SharedSettings::new(Secret::new(url.clone()))
    };
    let a = replica(settings()).await;
    let b = replica(settings()).await;
    let limits = RateLimit {
        per_minute: Some(3),
        ..Default::default()
    };
    let mut ok = 0;
    for r in [&a, &b, &a, &b, &a] {
        if admitted(&r.try_admit("rita", &limits).await.unwrap()) {
            ok += 1;
        }
    }
    assert_eq!(ok, 3);
}

#[test]
fn rediss_through_rustls() {
    let dir = std::env::temp_dir().join(format!("berry-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = test_ca::issue("berry redis test CA", "127.0.0.1");
    std::fs::write(dir.join("ca.pem"), cert.ca_pem).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pem).unwrap();
    let server = RedisServer::start_tls(&dir);
    let log = dir.join("client-half.log");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "rediss_client_half", "--nocapture"])
        .env("SSL_CERT_FILE", dir.join("ca.pem"))
        .env("BERRY_TEST_REDISS_URL", server.url())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("client half still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "client half failed:\n{text}");
    // it ran (a filter that matches nothing also succeeds)
    assert!(
        text.contains("1 passed"),
        "client half did not run:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
