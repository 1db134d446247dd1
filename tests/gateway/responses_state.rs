//! The Responses API's state in the gateway: conversations on translated backends continue
//! from the gateway's store (memory, or Redis shared by two replicas), stored responses are
//! read, listed and deleted by id, ids are scoped to their user, `store: false` keeps
//! nothing, and a continuation never silently moves to another account.

use crate::harness::*;
use berry_mock::MockProvider;
use serde_json::Value;
use std::time::Duration;

/// Providers `a` and `b` (Anthropic-dialect mocks), model `c` over them (failover: `a`
/// first), users `u` (tok) and `v` (tok-v).
fn anthropic_pair(settings: &str, a: &MockProvider, b: &MockProvider) -> String {
    format!(
        "{settings}\n{u}{v}[providers.a]\nbase_url = \"{}\"\napi_key = \"key-a\"\nbackend_type = \"anthropic\"\n[providers.b]\nbase_url = \"{}\"\napi_key = \"key-b\"\nbackend_type = \"anthropic\"\n[models.c]\nname = \"c\"\nstrategy = \"failover\"\n[[models.c.backends]]\nprovider = \"a\"\nmodel = \"claude-a\"\npriority = 1\n[[models.c.backends]]\nprovider = \"b\"\nmodel = \"claude-b\"\npriority = 2\n",
        a.base_url(),
        b.base_url(),
        u = user("u", "tok", ""),
        v = user("v", "tok-v", ""),
    )
}

fn create(gw: &Gateway, token: &str, body: &str) -> Value {
    let r = gw.post("/v1/responses", token, body);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn last_body(m: &MockProvider) -> Value {
    let req = m.last_request().expect("the mock saw a request");
    serde_json::from_slice(&req.body).expect("a JSON request body")
}

fn send(gw: &Gateway, method: &str, path: &str, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    request(gw.addr, method, path, &[("Authorization", &auth)], b"")
}

#[test]
fn a_translated_conversation_continues_from_the_gateways_store() {
    let (a, b) = (mock("a"), mock("b"));
    let gw = Gateway::start(&anthropic_pair(&quiet_settings(), &a, &b));
    settle(&gw, &[&a, &b]);
    let first = create(
        &gw,
        "tok",
        r#"{"model":"c","instructions":"Be brief.","input":"first question"}"#,
    );
    let id = first["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("resp_"), "{first}");
    assert_eq!(first["object"], "response");
    assert_eq!(first["status"], "completed");
    let answer = first["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!answer.is_empty(), "{first}");

    let second = create(
        &gw,
        "tok",
        &format!(r#"{{"model":"c","previous_response_id":"{id}","input":"second question"}}"#),
    );
    assert_ne!(second["id"], first["id"]);
    // the backend got the whole conversation, rebuilt by the gateway
    let sent = last_body(&a);
    let messages = sent["messages"].as_array().unwrap();
    let text = serde_json::to_string(messages).unwrap();
    assert_eq!(messages.len(), 3, "{text}");
    assert!(text.contains("first question"), "{text}");
    assert!(text.contains(&answer[..answer.len().min(20)]), "{text}");
    assert!(text.contains("second question"), "{text}");
    // instructions are not carried over to the next turn
    assert!(sent.get("system").is_none(), "{sent}");

    // read back, listed and deleted by id
    let got = gw.get(&format!("/v1/responses/{id}"), Some("tok"));
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["id"], first["id"]);
    let items = gw.get(&format!("/v1/responses/{id}/input_items"), Some("tok"));
    assert_eq!(items.status, 200, "{}", items.text());
    assert_eq!(items.json()["object"], "list");
    assert!(items.text().contains("first question"));
    let cancel = send(&gw, "POST", &format!("/v1/responses/{id}/cancel"), "tok");
    assert_eq!(cancel.status, 400, "{}", cancel.text());
    let deleted = send(&gw, "DELETE", &format!("/v1/responses/{id}"), "tok");
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["deleted"], true);
    let gone = gw.get(&format!("/v1/responses/{id}"), Some("tok"));
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert_eq!(gone.error_code(), "not_found");
}

#[test]
fn ids_are_scoped_to_their_user_and_unknown_ones_reach_no_backend() {
    let (a, b) = (mock("a"), mock("b"));
    let gw = Gateway::start(&anthropic_pair(&quiet_settings(), &a, &b));
    settle(&gw, &[&a, &b]);
    let first = create(&gw, "tok", r#"{"model":"c","input":"hello"}"#);
    let id = first["id"].as_str().unwrap();
    let hits = a.hits() + b.hits();
    for (token, prev) in [
        ("tok-v", id),
        ("tok", "resp_never_issued"),
        ("tok", "bad id!"),
    ] {
        let body = serde_json::json!({"model":"c","previous_response_id":prev,"input":"x"});
        let r = gw.post("/v1/responses", token, &body.to_string());
        assert_eq!(r.status, 400, "{token} {prev}: {}", r.text());
        assert_eq!(r.error_code(), "previous_response_not_found");
        assert_eq!(r.json()["error"]["param"], "previous_response_id");
    }
    // another user can neither read nor delete it
    assert_eq!(
        gw.get(&format!("/v1/responses/{id}"), Some("tok-v")).status,
        404
    );
    assert_eq!(
        send(&gw, "DELETE", &format!("/v1/responses/{id}"), "tok-v").status,
        404
    );
    assert_eq!(a.hits() + b.hits(), hits, "nothing went upstream");
    // still the owner's
    assert_eq!(
        gw.get(&format!("/v1/responses/{id}"), Some("tok")).status,
        200
    );
}

#[test]
fn store_false_keeps_nothing() {
    let (a, b) = (mock("a"), mock("b"));
    let gw = Gateway::start(&anthropic_pair(&quiet_settings(), &a, &b));
    settle(&gw, &[&a, &b]);
    let first = create(&gw, "tok", r#"{"model":"c","input":"hello","store":false}"#);
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        gw.get(&format!("/v1/responses/{id}"), Some("tok")).status,
        404
    );
    let body = serde_json::json!({"model":"c","previous_response_id":id,"input":"x"});
    let r = gw.post("/v1/responses", "tok", &body.to_string());
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn a_continuation_never_moves_to_another_account() {
    let (a, b) = (mock("a"), mock("b"));
    let config = anthropic_pair(&quiet_settings(), &a, &b);
    let mut gw = Gateway::start(&config);
    settle(&gw, &[&a, &b]);
    let first = create(&gw, "tok", r#"{"model":"c","input":"hello"}"#);
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(a.hits_for("/messages"), 1);
    // account `a` leaves the model: the conversation it holds cannot continue elsewhere
    let without_a = config.replace(
        "[[models.c.backends]]\nprovider = \"a\"\nmodel = \"claude-a\"\npriority = 1\n",
        "",
    );
    gw.write_config(&without_a);
    gw.signal("HUP");
    let body = serde_json::json!({"model":"c","previous_response_id":id,"input":"x"});
    assert!(
        wait_until(Duration::from_secs(5), || gw
            .post("/v1/responses", "tok", &body.to_string())
            .status
            == 409),
        "{}",
        gw.log()
    );
    let r = gw.post("/v1/responses", "tok", &body.to_string());
    assert_eq!(r.error_code(), "previous_response_unavailable");
    assert_eq!(
        b.hits_for("/messages"),
        0,
        "never sent to the other account"
    );
    gw.stop();
}

#[test]
fn two_replicas_continue_each_others_conversations_through_redis() {
    let redis = redis_server::RedisServer::start();
    let (a, b) = (mock("a"), mock("b"));
    let settings = quiet_settings()
        + &format!(
            "[settings.shared_state]\nredis_url = \"{}\"\ntimeout_ms = 500\n",
            redis.url()
        );
    let config = anthropic_pair(&settings, &a, &b);
    let g1 = Gateway::start(&config);
    let g2 = Gateway::start(&config);
    for g in [&g1, &g2] {
        assert!(
            wait_until(Duration::from_secs(5), || metric(
                g,
                "berry_shared_state_up",
                &[]
            ) == 1.0),
            "{}",
            g.log()
        );
    }
    let first = create(
        &g1,
        "tok",
        r#"{"model":"c","input":"remember the word kumquat"}"#,
    );
    let id = first["id"].as_str().unwrap().to_string();
    // the record reaches Redis in the background: wait until the other replica sees it
    assert!(
        wait_until(Duration::from_secs(5), || g2
            .get(&format!("/v1/responses/{id}"), Some("tok"))
            .status
            == 200),
        "{}",
        g2.log()
    );
    let second = create(
        &g2,
        "tok",
        &format!(r#"{{"model":"c","previous_response_id":"{id}","input":"which word?"}}"#),
    );
    assert_eq!(second["status"], "completed");
    let text = serde_json::to_string(&last_body(&a)["messages"]).unwrap();
    assert!(
        text.contains("kumquat") && text.contains("which word?"),
        "{text}"
    );
    // and the other user still cannot
    let body = serde_json::json!({"model":"c","previous_response_id":id,"input":"x"});
    assert_eq!(
        g2.post("/v1/responses", "tok-v", &body.to_string()).status,
        400
    );
}

/// Model `mixed` over a native Responses provider `n` (first) and an Anthropic one `a`.
fn mixed(settings: &str, n: &MockProvider, a: &MockProvider) -> String {
    format!(
        "{settings}\n{u}{n}[providers.a]\nbase_url = \"{}\"\napi_key = \"key-a\"\nbackend_type = \"anthropic\"\n{MOCK_STEERING}[models.mixed]\nname = \"mixed\"\nstrategy = \"failover\"\n[[models.mixed.backends]]\nprovider = \"n\"\nmodel = \"gpt-real\"\npriority = 1\n[[models.mixed.backends]]\nprovider = \"a\"\nmodel = \"claude-real\"\npriority = 2\n[models.mixed-a]\nname = \"mixed-a\"\nstrategy = \"failover\"\n[[models.mixed-a.backends]]\nprovider = \"a\"\nmodel = \"claude-real\"\npriority = 1\n[[models.mixed-a.backends]]\nprovider = \"n\"\nmodel = \"gpt-real\"\npriority = 2\n",
        a.base_url(),
        u = user("u", "tok", ""),
        n = steered_provider("n", n),
    )
}

#[test]
fn native_and_translated_backends_fail_over_to_each_other() {
    let (n, a) = (mock("n"), mock("a"));
    let gw = Gateway::start(&mixed(&quiet_settings(), &n, &a));
    settle(&gw, &[&n, &a]);
    // the native account fails before its first delta: the Anthropic one answers, translated
    set_mode(&n, berry_mock::Mode::Status(500));
    let r = gw.post(
        "/v1/responses",
        "tok",
        r#"{"model":"mixed","input":"hi","stream":true}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.sse_events();
    assert_eq!(
        events.first().map(String::as_str),
        Some("response.created"),
        "{events:?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("response.completed"),
        "{events:?}"
    );
    assert_eq!(n.hits_for("/responses"), 1);
    assert_eq!(a.hits_for("/messages"), 1);
    // a native stream that fails right after its preamble: retried, translated
    set_mode(
        &n,
        berry_mock::Mode::Preamble(berry_mock::PreambleEnd::Error),
    );
    let r = gw.post(
        "/v1/responses",
        "tok",
        r#"{"model":"mixed","input":"hi","stream":true}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.sse_events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("response.completed"),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e == "error"), "{events:?}");
    assert_eq!((n.hits_for("/responses"), a.hits_for("/messages")), (2, 2));
    // and the other way round: the Anthropic account (first in `mixed-a`) fails after its
    // preamble, the native one answers
    set_mode(&n, berry_mock::Mode::Ok);
    set_mode(
        &a,
        berry_mock::Mode::Preamble(berry_mock::PreambleEnd::Error),
    );
    let r = gw.post(
        "/v1/responses",
        "tok",
        r#"{"model":"mixed-a","input":"hi","stream":true}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.sse_events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("response.completed"),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e == "error"), "{events:?}");
    assert_eq!((n.hits_for("/responses"), a.hits_for("/messages")), (3, 3));
}

#[test]
fn native_responses_stay_on_their_account() {
    let (n1, n2) = (mock("n1"), mock("n2"));
    let config = format!(
        "{}\n{}{}{}[models.m]\nname = \"m\"\nstrategy = \"round_robin\"\n[[models.m.backends]]\nprovider = \"n1\"\nmodel = \"gpt-real\"\n[[models.m.backends]]\nprovider = \"n2\"\nmodel = \"gpt-real\"\n",
        quiet_settings(),
        user("u", "tok", ""),
        provider("n1", &n1),
        provider("n2", &n2),
    );
    let gw = Gateway::start(&config);
    settle(&gw, &[&n1, &n2]);
    let first = create(&gw, "tok", r#"{"model":"m","input":"hi"}"#);
    let id = first["id"].as_str().unwrap().to_string();
    let (holder, other) = if n1.hits_for("/responses") == 1 {
        (&n1, &n2)
    } else {
        (&n2, &n1)
    };
    for _ in 0..4 {
        let body = serde_json::json!({"model":"m","previous_response_id":id,"input":"again"});
        let r = gw.post("/v1/responses", "tok", &body.to_string());
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(holder.hits_for("/responses"), 5);
    assert_eq!(other.hits_for("/responses"), 0);
    // the by-id routes go there too
    let got = gw.get(&format!("/v1/responses/{id}"), Some("tok"));
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["id"], id.as_str());
    let req = holder.last_request().unwrap();
    assert!(
        req.path.ends_with(&format!("/responses/{id}")),
        "{}",
        req.path
    );
    assert!(req.body.is_empty());
    assert_eq!(other.hits(), other.hits_for("/models"));
}
