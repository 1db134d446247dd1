//! Teams and spend budgets (local, one replica): admission while every budget has room,
//! 429 `budget_exceeded` in every client dialect with `Retry-After` at the end of the
//! exhausted UTC day or month, team budgets shared by their users, a team's concurrency
//! cap, reloads that keep spend and move users between teams, and the spend metrics.

use crate::harness::*;
use berry_mock::MockProvider;
use std::time::Duration;

pub const ADMIN: &str = "admin-secret-token";

/// A config with `users` and `teams` (TOML text) and model `model-x` on backend model
/// `real-a`, priced at one dollar per token so a single request exhausts a budget of a
/// few dollars.
pub fn config(m: &MockProvider, users: &str, teams: &str) -> String {
    format!(
        "{settings}admin_token = \"{ADMIN}\"\n{users}{teams}{provider}\
         [prices.real-a]\ninput = 1000000\noutput = 1000000\ncache_read = 100000\n\
         [models.m]\nname = \"model-x\"\n[[models.m.backends]]\nprovider = \"a\"\nmodel = \"real-a\"\n",
        settings = quiet_settings(),
        provider = steered_provider("a", m),
    )
}

/// Seconds from now until the current UTC day (`month = false`) or month ends.
pub fn seconds_to_end(month: bool) -> i64 {
    use jiff::tz::TimeZone;
    let now = jiff::Timestamp::now();
    let today = now.to_zoned(TimeZone::UTC).date();
    let end = if month {
        today.last_of_month().tomorrow().unwrap()
    } else {
        today.tomorrow().unwrap()
    };
    let end = end.to_zoned(TimeZone::UTC).unwrap().timestamp();
    (end.as_second() - now.as_second()).max(1)
}

/// Asserts `r` is a budget refusal naming `scope`'s `window` budget, with `Retry-After`
/// at the end of that window (a few seconds of slack).
pub fn assert_budget_refusal(r: &Resp, scope: &str, window: &str) {
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: i64 = r.header("retry-after").unwrap().parse().unwrap();
    let want = seconds_to_end(window == "month");
    assert!(
        (retry - want).abs() <= 5,
        "Retry-After {retry}, want ~{want}"
    );
    let v = r.json();
    let message = v["error"]["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("budget_exceeded"), "{v}");
    assert!(message.contains(&format!("budget per {window}")), "{v}");
    if scope == "team" {
        assert!(message.contains("team `"), "{v}");
    }
    if v["error"]["code"].is_string() {
        assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
        assert_eq!(v["error"]["param"], scope, "{v}");
    }
}

const MESSAGES: &str =
    r#"{"model":"model-x","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;
const RESPONSES: &str = r#"{"model":"model-x","input":"hi"}"#;
const GEMINI: &str = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;
const GEMINI_PATH: &str = "/v1beta/models/model-x:generateContent";

#[test]
fn a_spent_user_budget_is_refused_in_every_dialect() {
    let m = mock("a");
    let users = user(
        "u",
        "tok",
        "budget_usd_per_day = 2\nbudget_usd_per_month = 1000",
    ) + &user("free", "tok-free", "");
    let gw = Gateway::start(&config(&m, &users, ""));
    settle(&gw, &[&m]);

    // spent (0) < budget: admitted, and this one request spends more than the budget
    let r = gw.chat("tok", "model-x");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_settled(&gw, "user", "u", 0.0);

    let chat = gw.chat("tok", "model-x");
    assert_budget_refusal(&chat, "user", "day");
    assert_eq!(chat.json()["error"]["type"], "rate_limit_error");

    let messages = gw.post("/v1/messages", "tok", MESSAGES);
    assert_budget_refusal(&messages, "user", "day");
    assert_eq!(messages.json()["type"], "error");
    assert_eq!(messages.json()["error"]["type"], "rate_limit_error");

    let responses = gw.post("/v1/responses", "tok", RESPONSES);
    assert_budget_refusal(&responses, "user", "day");
    assert_eq!(responses.json()["error"]["type"], "rate_limit_error");

    let gemini = gw.post(GEMINI_PATH, "tok", GEMINI);
    assert_budget_refusal(&gemini, "user", "day");
    assert_eq!(gemini.json()["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(gemini.json()["error"]["code"], 429);

    // never an amount in the refusal
    for r in [&chat, &messages, &responses, &gemini] {
        let text = r.text().to_lowercase();
        assert!(!text.contains('$') && !text.contains("usd"), "{text}");
    }
    // another user is not affected
    assert_eq!(gw.chat("tok-free", "model-x").status, 200);
    assert_eq!(
        metric(
            &gw,
            "berry_budget_exceeded_total",
            &[("scope", "user"), ("window", "day")]
        ),
        4.0
    );
    // the refused requests never reached the provider
    assert_eq!(
        m.hits_for("/chat/completions"),
        2,
        "only the two admitted requests"
    );
}

#[test]
fn a_team_budget_is_shared_by_its_users_and_the_window_ending_last_is_named() {
    let m = mock("a");
    let users = user("a", "tok-a", "team = \"red\"")
        + &user("b", "tok-b", "team = \"red\"\nbudget_usd_per_day = 1")
        + &user("c", "tok-c", "");
    let teams =
        "[teams.red]\nname = \"Red team\"\nbudget_usd_per_day = 100000\nbudget_usd_per_month = 3\n";
    let gw = Gateway::start(&config(&m, &users, teams));
    settle(&gw, &[&m]);

    assert_eq!(gw.chat("tok-a", "model-x").status, 200);
    wait_settled(&gw, "team", "red", 0.0);
    // b never spent anything itself: its team's month budget refuses it
    assert_budget_refusal(&gw.chat("tok-b", "model-x"), "team", "month");
    assert_budget_refusal(&gw.chat("tok-a", "model-x"), "team", "month");
    // c has no team
    assert_eq!(gw.chat("tok-c", "model-x").status, 200);

    // a team without budgets caps nothing; b's own day budget and its team's month budget
    // both exhausted: the month (ending last) is named
    let teams = "[teams.red]\nbudget_usd_per_month = 3\n";
    let users2 = users.replace("budget_usd_per_day = 1", "budget_usd_per_day = 0");
    gw.write_config(&config(&m, &users2, teams));
    wait_for("reload", || {
        metric(&gw, "berry_config_reloads_total", &[("result", "success")]) >= 1.0
    });
    let r = gw.chat("tok-b", "model-x");
    assert_budget_refusal(&r, "team", "month");

    // the admin view lists the team and the user's team
    let cfg = gw.get("/admin/config", Some(ADMIN)).json();
    assert_eq!(cfg["teams"][0]["id"], "red", "{cfg}");
    assert_eq!(cfg["teams"][0]["budget_usd_per_month"], 3.0, "{cfg}");
    let b = cfg["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "b")
        .unwrap();
    assert_eq!(
        (b["team"].as_str(), b["budget_usd_per_day"].as_f64()),
        (Some("red"), Some(0.0))
    );

    // the spend gauges and budgets
    let text = gw.metrics_text();
    let gauge = |name: &str, scope: &str, id: &str, window: &str| {
        metric_in(
            &text,
            name,
            &[("scope", scope), ("id", id), ("window", window)],
        )
    };
    assert_eq!(gauge("berry_budget_usd", "team", "red", "month"), 3.0);
    assert_eq!(gauge("berry_budget_usd", "user", "b", "day"), 0.0);
    let red_day = text.lines().any(|l| {
        l.starts_with("berry_budget_usd{")
            && l.contains("id=\"red\"")
            && l.contains("window=\"day\"")
    });
    assert!(!red_day, "the removed day budget's series is gone:\n{text}");
    assert!(
        gauge("berry_spend_usd", "team", "red", "month") > 3.0,
        "{text}"
    );
    assert!(
        metric_in(
            &text,
            "berry_tokens_total",
            &[("user", "a"), ("team", "red")]
        ) > 0.0
    );
    assert!(metric_in(&text, "berry_tokens_total", &[("user", "c"), ("team", "-")]) > 0.0);
    assert!(
        metric_in(
            &text,
            "berry_cost_usd_total",
            &[("user", "a"), ("team", "red")]
        ) > 3.0
    );
}

#[test]
fn reload_keeps_spend_and_a_moved_user_charges_its_new_team() {
    let m = mock("a");
    let teams = "[teams.red]\nbudget_usd_per_month = 3\n[teams.blue]\nbudget_usd_per_month = 3\n";
    let users = user("a", "tok-a", "team = \"red\"") + &user("b", "tok-b", "team = \"red\"");
    let gw = Gateway::start(&config(&m, &users, teams));
    settle(&gw, &[&m]);
    assert_eq!(gw.chat("tok-a", "model-x").status, 200);
    wait_settled(&gw, "team", "red", 0.0);
    assert_budget_refusal(&gw.chat("tok-a", "model-x"), "team", "month");

    // a moves to blue; b stays in red
    let moved = user("a", "tok-a", "team = \"blue\"") + &user("b", "tok-b", "team = \"red\"");
    gw.write_config(&config(&m, &moved, teams));
    wait_for("reload", || {
        metric(&gw, "berry_config_reloads_total", &[("result", "success")]) >= 1.0
    });
    // red's spend survived the reload; blue has room and takes a's next request
    assert_budget_refusal(&gw.chat("tok-b", "model-x"), "team", "month");
    assert_eq!(gw.chat("tok-a", "model-x").status, 200);
    wait_settled(&gw, "team", "blue", 0.0);
    assert_budget_refusal(&gw.chat("tok-a", "model-x"), "team", "month");

    let r = gw.get("/admin/spend?by=team&window=month", Some(ADMIN));
    assert_eq!(r.status, 200, "{}", r.text());
    let rows = r.json()["rows"].as_array().unwrap().clone();
    let cost = |id: &str| {
        rows.iter()
            .find(|r| r["id"] == id)
            .map_or(0.0, |r| r["cost_usd"].as_f64().unwrap())
    };
    assert!(cost("red") > 3.0 && cost("blue") > 3.0, "{rows:?}");
    // each team was charged once: a's first request to red, its second to blue
    let user_a = gw
        .get("/admin/spend?by=user&window=month", Some(ADMIN))
        .json();
    let a = user_a["rows"][0]["cost_usd"].as_f64().unwrap();
    assert!(
        (cost("red") + cost("blue") - a).abs() < 1e-6,
        "{rows:?} {user_a}"
    );
}

#[test]
fn a_team_concurrency_cap_holds_across_its_users() {
    let m = mock("a");
    let teams = "[teams.red]\nmax_concurrent = 1\n";
    let users = user("a", "tok-a", "team = \"red\"") + &user("b", "tok-b", "team = \"red\"");
    let gw = Gateway::start(&config(&m, &users, teams));
    settle(&gw, &[&m]);
    let slow = std::thread::scope(|s| {
        let slow = s.spawn(|| {
            gw.post_with(
                "/v1/chat/completions",
                "tok-a",
                r#"{"model":"model-x","messages":[{"role":"user","content":"hi"}]}"#,
                &[("x-mock-delay-ms", "1500")],
            )
        });
        wait_for("the slow request reaches the mock", || {
            m.hits_for("/chat/completions") >= 1
        });
        let r = gw.chat("tok-b", "model-x");
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.error_code(), "team_concurrency_exceeded");
        assert_eq!(r.header("retry-after"), Some("1"));
        slow.join().unwrap()
    });
    assert_eq!(slow.status, 200, "{}", slow.text());
    // the slot is released when the slow request ends (just after its answer)
    wait_for("b admitted once a's request ended", || {
        gw.chat("tok-b", "model-x").status == 200
    });
}

#[test]
fn cache_reads_count_as_savings_for_the_team() {
    let m = mock("a");
    let teams = "[teams.red]\n";
    let users = user("a", "tok-a", "team = \"red\"");
    let gw = Gateway::start(&config(&m, &users, teams));
    settle(&gw, &[&m]);
    let r = gw.post_with(
        "/v1/chat/completions",
        "tok-a",
        r#"{"model":"model-x","messages":[{"role":"user","content":"hi"}]}"#,
        &[("x-mock-cache-read", "10")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // 10 tokens × (1 − 0.1) $/token, recorded just after the answer
    let saved = || {
        metric(
            &gw,
            "berry_cache_savings_usd_total",
            &[("team", "red"), ("model", "model-x")],
        )
    };
    wait_for("savings recorded", || saved() > 0.0);
    assert!((saved() - 9.0).abs() < 1e-9, "{}", saved());
}

pub fn wait_for(what: &str, f: impl FnMut() -> bool) {
    assert!(wait_until(Duration::from_secs(10), f), "{what}");
}

/// What `id` of `scope` spent this month, as `/admin/spend` reads it.
pub fn spent(gw: &Gateway, scope: &str, id: &str) -> f64 {
    let v = gw
        .get(
            &format!("/admin/spend?by={scope}&window=month"),
            Some(ADMIN),
        )
        .json();
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .map_or(0.0, |r| r["cost_usd"].as_f64().unwrap())
}

/// Waits until the requests answered so far are settled: `id` of `scope` spent more
/// than `before` (a request is settled just after its answer was sent).
pub fn wait_settled(gw: &Gateway, scope: &str, id: &str, before: f64) {
    wait_for(&format!("{scope} {id} settled"), || {
        spent(gw, scope, id) > before
    });
}
