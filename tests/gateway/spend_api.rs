//! The spend endpoints: `/admin/spend` by user, team, model and backend per day and month
//! (admin token only, parameters checked), `/v1/me/spend` (own and own team's figures
//! only), and two replicas sharing budgets and spend through a real `redis-server`.

use crate::budgets::{assert_budget_refusal, config, wait_for, wait_settled, ADMIN};
use crate::harness::redis_server::RedisServer;
use crate::harness::*;
use serde_json::Value;

/// Today (UTC) as `YYYY-MM-DD` and this month as `YYYY-MM`.
fn today_and_month() -> (String, String) {
    let d = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    (d.to_string(), d.to_string()[..7].to_string())
}

fn rows(v: &Value) -> Vec<Value> {
    v["rows"].as_array().unwrap().clone()
}

fn cost_of(rows: &[Value], id: &str) -> f64 {
    rows.iter()
        .find(|r| r["id"] == id)
        .map_or(0.0, |r| r["cost_usd"].as_f64().unwrap())
}

fn total(rows: &[Value]) -> f64 {
    rows.iter().map(|r| r["cost_usd"].as_f64().unwrap()).sum()
}

#[test]
fn admin_spend_by_every_scope_and_window() {
    let m = mock("a");
    let users = user("a", "tok-a", "team = \"red\"") + &user("b", "tok-b", "");
    let gw = Gateway::start(&config(&m, &users, "[teams.red]\n"));
    settle(&gw, &[&m]);
    let r = gw.post_with(
        "/v1/chat/completions",
        "tok-a",
        r#"{"model":"model-x","messages":[{"role":"user","content":"hi"}]}"#,
        &[("x-mock-cache-read", "10")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let a_usage = r.json()["usage"].clone();
    assert_eq!(gw.chat("tok-b", "model-x").status, 200);
    wait_settled(&gw, "user", "a", 0.0);
    wait_settled(&gw, "user", "b", 0.0);
    let (today, month) = today_and_month();

    let mut totals = Vec::new();
    for window in ["day", "month"] {
        for by in ["user", "team", "model", "backend"] {
            let r = gw.get(
                &format!("/admin/spend?by={by}&window={window}"),
                Some(ADMIN),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            assert_eq!(
                (v["by"].as_str(), v["window"].as_str()),
                (Some(by), Some(window))
            );
            let period = if window == "day" { &today } else { &month };
            assert_eq!(v["period"], period.as_str(), "{v}");
            assert_eq!(v["source"], "local");
            let rows = rows(&v);
            match by {
                "user" => {
                    assert_eq!(rows.len(), 2, "{v}");
                    let a = rows.iter().find(|r| r["id"] == "a").unwrap();
                    let t = &a["tokens"];
                    let cached = a_usage["prompt_tokens_details"]["cached_tokens"].as_u64();
                    assert_eq!(t["cache_read"].as_u64(), cached, "{v}");
                    assert_eq!(
                        t["input"].as_u64().unwrap() + t["cache_read"].as_u64().unwrap(),
                        a_usage["prompt_tokens"].as_u64().unwrap()
                    );
                    assert_eq!(t["output"], a_usage["completion_tokens"]);
                    assert_eq!(t["cache_write"], 0);
                }
                "team" => {
                    assert_eq!(rows.len(), 1, "only the team with spend: {v}");
                    assert_eq!(rows[0]["id"], "red");
                }
                "model" => assert_eq!(rows[0]["id"], "model-x"),
                _ => {
                    assert_eq!(rows.len(), 1, "{v}");
                    assert!(rows[0]["id"].as_str().unwrap().contains("real-a"), "{v}");
                }
            }
            // rows by cost, highest first
            let costs: Vec<f64> = rows
                .iter()
                .map(|r| r["cost_usd"].as_f64().unwrap())
                .collect();
            assert!(costs.windows(2).all(|w| w[0] >= w[1]), "{costs:?}");
            // never a secret
            let text = r.text();
            for secret in ["tok-a", "tok-b", ADMIN, "key-a"] {
                assert!(!text.contains(secret), "{text}");
            }
            if by != "team" {
                totals.push(total(&rows));
            }
        }
    }
    assert!(
        totals
            .iter()
            .all(|t| (t - totals[0]).abs() < 1e-6 && *t > 0.0),
        "{totals:?}"
    );

    // at= picks a period
    let at_today = gw.get(
        &format!("/admin/spend?by=user&window=day&at={today}"),
        Some(ADMIN),
    );
    assert_eq!(total(&rows(&at_today.json())), totals[0]);
    let at_month = gw.get(
        &format!("/admin/spend?by=team&window=month&at={month}"),
        Some(ADMIN),
    );
    assert_eq!(at_month.json()["period"], month.as_str());
    assert!(cost_of(&rows(&at_month.json()), "red") > 0.0);
    let past = gw.get("/admin/spend?by=user&window=day&at=2020-01-31", Some(ADMIN));
    assert_eq!(
        (past.status, past.json()["period"].as_str()),
        (200, Some("2020-01-31"))
    );
    assert!(rows(&past.json()).is_empty());

    // bad or missing parameters: 400 naming them
    for (query, param) in [
        ("window=day", "by"),
        ("by=user", "window"),
        ("by=people&window=day", "by"),
        ("by=user&window=week", "window"),
        ("by=user&window=day&at=2026-13-01", "at"),
        ("by=user&window=day&at=yesterday", "at"),
        ("by=user&window=month&at=2026", "at"),
    ] {
        let r = gw.get(&format!("/admin/spend?{query}"), Some(ADMIN));
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(r.json()["error"]["param"], param, "{query}: {}", r.text());
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("`{param}`")));
    }
    let r = gw.get("/admin/spend?by=user&window=day&user=a", Some(ADMIN));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("`user`"), "{}", r.text());

    // the admin token only
    let r = gw.get("/admin/spend?by=user&window=day", Some("tok-a"));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("cost_usd"));
    assert_eq!(gw.get("/admin/spend?by=user&window=day", None).status, 401);
    assert_eq!(
        gw.get("/admin/spend?by=user&window=day", Some("nope"))
            .status,
        401
    );
}

#[test]
fn me_spend_shows_only_the_callers_own_and_team_figures() {
    let m = mock("a");
    let users = user("a", "tok-a", "team = \"red\"\nbudget_usd_per_month = 5000")
        + &user("b", "tok-b", "team = \"red\"")
        + &user("c", "tok-c", "team = \"blue\"")
        + &user("d", "tok-d", "budget_usd_per_day = 7");
    let teams =
        "[teams.red]\nbudget_usd_per_day = 1000\n[teams.blue]\nbudget_usd_per_month = 3000\n";
    let gw = Gateway::start(&config(&m, &users, teams));
    settle(&gw, &[&m]);
    assert_eq!(gw.chat("tok-a", "model-x").status, 200);
    assert_eq!(gw.chat("tok-c", "model-x").status, 200);
    wait_settled(&gw, "user", "a", 0.0);
    wait_settled(&gw, "user", "c", 0.0);
    let spent_a = cost_of(
        &rows(
            &gw.get("/admin/spend?by=user&window=day", Some(ADMIN))
                .json(),
        ),
        "a",
    );
    assert!(spent_a > 0.0);

    let b = gw.get("/v1/me/spend", Some("tok-b"));
    assert_eq!(b.status, 200, "{}", b.text());
    let v = b.json();
    assert_eq!(v["user"]["id"], "b");
    assert_eq!(v["user"]["cost_usd_day"], 0.0);
    assert_eq!(v["user"]["cost_usd_month"], 0.0);
    assert!(v["user"]["budget_usd_per_day"].is_null());
    assert_eq!(v["team"]["id"], "red");
    assert_eq!(v["team"]["cost_usd_day"].as_f64(), Some(spent_a));
    assert_eq!(v["team"]["cost_usd_month"].as_f64(), Some(spent_a));
    assert_eq!(v["team"]["budget_usd_per_day"], 1000.0);
    assert!(v["team"]["budget_usd_per_month"].is_null());
    // nobody else's figures: not a's own budget, not blue
    let text = b.text();
    for other in ["5000", "3000", "blue", "\"a\"", "tok-"] {
        assert!(!text.contains(other), "{other} in {text}");
    }

    let a = gw.get("/v1/me/spend", Some("tok-a")).json();
    assert_eq!(a["user"]["cost_usd_month"].as_f64(), Some(spent_a));
    assert_eq!(a["user"]["budget_usd_per_month"], 5000.0);
    let d = gw.get("/v1/me/spend", Some("tok-d")).json();
    assert_eq!(d["user"]["budget_usd_per_day"], 7.0);
    assert!(d["team"].is_null(), "{d}");

    assert_eq!(gw.get("/v1/me/spend", None).status, 401);
    assert_eq!(
        gw.get("/v1/me/spend", Some(ADMIN)).status,
        401,
        "the admin is no user"
    );
}

/// Two replicas on one Redis, eight clients (four per replica, each a user of team `red`)
/// sending requests until refused: the fleet admits until the team's day budget is
/// filled, then refuses everywhere. It can overshoot by what was in flight when the budget
/// filled: at most one request per client, plus one per client whose previous request was
/// answered but not yet settled (settlement follows the answer by one Redis write).
#[test]
fn two_replicas_share_budgets_and_spend_in_redis() {
    let redis = RedisServer::start();
    let m = mock("a");
    const CLIENTS: usize = 8;
    let mut users = user("probe", "tok-probe", "");
    for i in 0..CLIENTS {
        // u0 also has rate limits: its admissions run the limit script and the budget
        // reads in one pipeline.
        let limits = if i == 0 {
            "\n[users.u0.rate_limit]\nrequests_per_day = 1000\nmax_concurrent = 4"
        } else {
            ""
        };
        users += &user(
            &format!("u{i}"),
            &format!("tok-u{i}"),
            &format!("team = \"red\"{limits}"),
        );
    }
    let shared = format!(
        "[settings.shared_state]\nredis_url = \"{}\"\ntimeout_ms = 500\n",
        redis.url()
    );
    // The cost of one request: measured first, with a probe user on the same body.
    let probe_cfg = config(&m, &users, "[teams.red]\n");
    let with_shared = |cfg: String| {
        // [settings.shared_state] must follow [settings]: put it before the users.
        cfg.replacen("[users.", &format!("{shared}[users."), 1)
    };
    let g1 = Gateway::start(&with_shared(probe_cfg.clone()));
    let g2 = Gateway::start(&with_shared(probe_cfg));
    for g in [&g1, &g2] {
        wait_for("shared state up", || {
            metric(g, "berry_shared_state_up", &[]) == 1.0
        });
    }
    assert_eq!(g1.chat("tok-probe", "model-x").status, 200);
    let mut cost = 0.0;
    wait_for("the probe's spend in Redis", || {
        let v = g2
            .get("/admin/spend?by=user&window=day", Some(ADMIN))
            .json();
        assert_eq!(v["source"], "shared", "{v}");
        cost = cost_of(&rows(&v), "probe");
        cost > 0.0
    });

    // The team's budget: room for 10.5 requests, so 11 are admitted at least.
    let budget = cost * 10.5;
    let cfg = with_shared(config(
        &m,
        &users,
        &format!("[teams.red]\nbudget_usd_per_day = {budget}\n"),
    ));
    for g in [&g1, &g2] {
        g.write_config(&cfg);
    }
    for g in [&g1, &g2] {
        wait_for("reload", || {
            metric(g, "berry_config_reloads_total", &[("result", "success")]) >= 1.0
        });
    }

    let per_client: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let g = if i % 2 == 0 { &g1 } else { &g2 };
                s.spawn(move || {
                    let token = format!("tok-u{i}");
                    let mut n = 0;
                    loop {
                        let r = g.post_with(
                            "/v1/chat/completions",
                            &token,
                            r#"{"model":"model-x","messages":[{"role":"user","content":"hi"}]}"#,
                            &[("x-mock-delay-ms", "20")],
                        );
                        match r.status {
                            200 => n += 1,
                            429 => {
                                assert_budget_refusal(&r, "team", "day");
                                return n;
                            }
                            s => panic!("status {s}: {}", r.text()),
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let admitted: usize = per_client.iter().sum();
    let need = 11;
    assert!(
        admitted >= need && admitted <= need + 2 * CLIENTS,
        "admitted {admitted}: the budget fits {need}, {CLIENTS} clients in flight"
    );

    // Every admitted request is settled once, in Redis, in integer micro-dollars.
    let (today, _) = today_and_month();
    let key = format!("berry:{{spend}}:team:{today}");
    let micros = (cost * 1e6).round() as i64;
    let want = micros * admitted as i64;
    wait_for("every settlement in Redis", || {
        let got: Option<i64> = redis::cmd("HGET")
            .arg(&key)
            .arg("red:c")
            .query(&mut redis.client())
            .unwrap();
        got == Some(want)
    });
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query(&mut redis.client())
        .unwrap();
    assert!(ttl > 86_400_000, "kept after the day ends: {ttl}");

    // Both replicas read the fleet's figures.
    for g in [&g1, &g2] {
        let v = g.get("/admin/spend?by=team&window=day", Some(ADMIN)).json();
        assert_eq!(v["source"], "shared");
        let got = cost_of(&rows(&v), "red");
        assert!((got - want as f64 / 1e6).abs() < 1e-6, "{v}");
        let me = g.get("/v1/me/spend", Some("tok-u1")).json();
        assert!(
            (me["team"]["cost_usd_day"].as_f64().unwrap() - got).abs() < 1e-6,
            "{me}"
        );
        assert_budget_refusal(&g.chat("tok-u0", "model-x"), "team", "day");
    }
    // u0's limits ran in the same round trips: each of its requests counted in its day
    // window (the refused one too), and its leases are all released.
    let u0 = |suffix: &str, cmd: &str, field: Option<&str>| -> i64 {
        let mut c = redis::cmd(cmd);
        c.arg(format!("berry:{{u0}}:{suffix}"));
        if let Some(f) = field {
            c.arg(f);
        }
        c.query::<Option<i64>>(&mut redis.client())
            .unwrap()
            .unwrap_or(0)
    };
    assert!(
        u0("req:day", "HGET", Some("c")) > per_client[0] as i64,
        "{per_client:?}"
    );
    wait_for("u0's leases released", || u0("leases", "ZCARD", None) == 0);

    // The probe (no team, no budget) is still admitted.
    assert_eq!(g2.chat("tok-probe", "model-x").status, 200);
}
