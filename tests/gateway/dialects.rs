//! Models that mix provider dialects: Berry's own README example (gpt-4 across OpenAI,
//! Azure and Anthropic accounts) end to end, failover between dialects before the first
//! byte, and the mid-stream rule on translated streams.

use crate::harness::*;
use berry_mock::{MockProvider, Mode};

/// Berry's README example: `gpt-4` on an OpenAI (0.5), an Azure (0.3) and an Anthropic
/// (0.2) account, each on its own mock.
fn berry_example(oa: &MockProvider, az: &MockProvider, an: &MockProvider) -> String {
    format!(
        r#"{settings}
{user}
[providers.openai-primary]
base_url = "{oa}"
api_key = "sk-openai"
[providers.azure-openai]
base_url = "http://{az}"
api_key = "azure-key"
backend_type = "azure"
[providers.azure-openai.headers]
"api-version" = "2024-02-01"
[providers.anthropic]
base_url = "http://{an}"
api_key = "sk-ant"
backend_type = "anthropic"
[models.gpt_4]
name = "gpt-4"
strategy = "weighted_random"
[[models.gpt_4.backends]]
provider = "openai-primary"
model = "gpt-4"
weight = 0.5
[[models.gpt_4.backends]]
provider = "azure-openai"
model = "gpt-4"
weight = 0.3
[[models.gpt_4.backends]]
provider = "anthropic"
model = "claude-3-opus-20240229"
weight = 0.2
"#,
        settings = quiet_settings(),
        user = user("u", "tok", ""),
        oa = oa.base_url(),
        az = az.addr(),
        an = an.addr(),
    )
}

/// `head` (settings and users) plus one Anthropic-dialect provider at `base_url` (which
/// forwards the mock's steering headers) serving model `c` as `claude-real`.
fn anthropic_model(head: &str, base_url: &str) -> String {
    format!(
        "{head}[providers.an]\nbase_url = \"{base_url}\"\napi_key = \"k\"\nbackend_type = \"anthropic\"\n{MOCK_STEERING}[models.c]\nname = \"c\"\n[[models.c.backends]]\nprovider = \"an\"\nmodel = \"claude-real\"\n"
    )
}

fn chats(m: &MockProvider) -> u64 {
    m.hits_for("/chat/completions") + m.hits_for("/messages")
}

#[test]
fn berry_readme_example_spreads_one_model_over_three_dialects() {
    let (oa, az, an) = (mock("oa"), mock("az"), mock("an"));
    let gw = Gateway::start(&berry_example(&oa, &az, &an));
    settle(&gw, &[&oa, &az, &an]);
    for m in [&oa, &az, &an] {
        m.reset_counters();
    }
    for i in 0..60 {
        let r = if i % 2 == 0 {
            gw.chat("tok", "gpt-4")
        } else {
            gw.chat_stream("tok", "gpt-4")
        };
        assert_eq!(r.status, 200, "{}", r.text());
        if i % 2 == 0 {
            let v = r.json();
            assert_eq!(v["object"], "chat.completion", "{v}");
            assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
        } else {
            let data = r.sse_data();
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
            let first: serde_json::Value = serde_json::from_str(&data[0]).unwrap();
            assert_eq!(first["object"], "chat.completion.chunk", "{first}");
        }
    }
    let (a, b, c) = (chats(&oa), chats(&az), chats(&an));
    assert_eq!(a + b + c, 60);
    assert!(a > 0 && b > 0 && c > 0, "every dialect served: {a} {b} {c}");
    assert_eq!(
        an.hits_for("/v1/messages"),
        c,
        "the Anthropic account got Messages requests"
    );
    assert_eq!(
        az.hits_for("/openai/deployments/gpt-4/chat/completions"),
        b,
        "the Azure account got deployment URLs"
    );
}

#[test]
fn failover_crosses_dialects_before_the_first_byte() {
    let (oa, az, an) = (mock("oa"), mock("az"), mock("an"));
    let gw = Gateway::start(&berry_example(&oa, &az, &an));
    settle(&gw, &[&oa, &az, &an]);
    // Only the Anthropic account answers: OpenAI clients still get OpenAI answers.
    oa.set_mode(Mode::Status(503));
    az.set_mode(Mode::Status(500));
    for _ in 0..5 {
        let r = gw.chat("tok", "gpt-4");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["model"], "claude-3-opus-20240229");
        let r = gw.chat_stream("tok", "gpt-4");
        assert_eq!(r.status, 200);
        assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    }
    // An overloaded Anthropic account (529) fails over to the OpenAI-family ones.
    oa.set_mode(Mode::Ok);
    az.set_mode(Mode::Ok);
    an.set_mode(Mode::Status(529));
    for _ in 0..10 {
        let r = gw.chat("tok", "gpt-4");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["model"], "gpt-4");
    }
    // Nothing left: whichever account answered last, the OpenAI client gets an
    // OpenAI-shaped 503 (the Anthropic 529 is translated to one).
    oa.set_mode(Mode::Status(503));
    az.set_mode(Mode::Status(503));
    for _ in 0..10 {
        let r = gw.chat("tok", "gpt-4");
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            r.json()["error"]["message"].is_string(),
            "OpenAI-shaped: {}",
            r.text()
        );
    }
}

#[test]
fn translated_streams_keep_the_mid_stream_rule() {
    let an = mock("an");
    let cfg = anthropic_model(
        &format!("{}\n{}", quiet_settings(), user("u", "tok", "")),
        &an.base_url(),
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&an]);
    for mode in ["cut:2", "error-event:2", "unterminated"] {
        an.set_mode(mode.parse().unwrap());
        let r = gw.chat_stream("tok", "c");
        assert_eq!(r.status, 200, "{mode}");
        let data = r.sse_data();
        assert_ne!(
            data.last().map(String::as_str),
            Some("[DONE]"),
            "{mode}: {data:?}"
        );
        let errors = data.iter().filter(|d| d.contains("\"error\"")).count();
        assert_eq!(errors, 1, "{mode}: exactly one error event: {data:?}");
        let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert!(last["error"]["message"].is_string(), "{mode}: {last}");
        // content before the failure went through translated
        assert!(
            data.iter().any(|d| d.contains("chat.completion.chunk")),
            "{mode}: {data:?}"
        );
    }
    // Anthropic clients on the same backend get Anthropic's error event.
    an.set_mode("cut:2".parse().unwrap());
    let r = gw.post(
        "/v1/messages",
        "tok",
        r#"{"model":"c","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
}

#[test]
fn cache_tokens_are_counted_in_every_dialect() {
    let an = mock("an");
    let cfg = anthropic_model(
        &format!("{}\n{}", quiet_settings(), user("u", "tok", "")),
        &an.base_url(),
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&an]);
    let cache = [("x-mock-cache-read", "100"), ("x-mock-cache-write", "7")];
    // An OpenAI client: the translated answer reports the cache read as cached prompt tokens.
    let body = r#"{"model":"c","messages":[{"role":"user","content":"hi"}]}"#;
    let r = gw.post_with("/v1/chat/completions", "tok", body, &cache);
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = &r.json()["usage"];
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"], 100,
        "{usage}"
    );
    // prompt tokens = input + cache read + cache write
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 107, "{usage}");
    // An Anthropic client, same backend: passed through, counted the same way.
    let body =
        r#"{"model":"c","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = gw.post_with("/v1/messages", "tok", body, &cache);
    assert_eq!(r.status, 200, "{}", r.text());
    let tokens = |kind| metric(&gw, "berry_tokens_total", &[("model", "c"), ("type", kind)]);
    wait_until(std::time::Duration::from_secs(5), || {
        tokens("cache_read") == 200.0
    });
    assert_eq!(tokens("cache_read"), 200.0);
    assert_eq!(tokens("cache_write"), 14.0);
    assert!(tokens("input") > 0.0);
    assert!(tokens("output") > 0.0);
}

#[test]
fn anthropic_clients_on_openai_backends_get_anthropic_error_events() {
    let oa = mock("oa");
    let cfg = format!(
        "{}\n{}{}[models.g]\nname = \"g\"\n[[models.g.backends]]\nprovider = \"oa\"\nmodel = \"gpt-real\"\n",
        quiet_settings(),
        user("u", "tok", ""),
        provider("oa", &oa)
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&oa]);
    let body = r#"{"model":"g","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = gw.post("/v1/messages", "tok", body);
    assert_eq!(r.status, 200);
    let ok = r.text();
    assert!(ok.starts_with("event: message_start"), "{ok}");
    assert!(
        ok.trim_end().ends_with("data: {\"type\":\"message_stop\"}"),
        "{ok}"
    );
    for mode in ["cut:2", "error-event:2", "unterminated"] {
        oa.set_mode(mode.parse().unwrap());
        let r = gw.post("/v1/messages", "tok", body);
        assert_eq!(r.status, 200, "{mode}");
        let text = r.text();
        assert_eq!(text.matches("event: error").count(), 1, "{mode}: {text}");
        assert!(!text.contains("message_stop"), "{mode}: {text}");
        assert!(text.contains("content_block_delta"), "{mode}: {text}");
    }
    // A failure status before the first byte: Anthropic-shaped, status kept.
    oa.set_mode(Mode::Status(429));
    let r = gw.post("/v1/messages", "tok", body);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
}

#[test]
fn anthropic_requests_stay_byte_exact_with_stream_include_usage_on() {
    let an = mock("an");
    let cfg = anthropic_model(
        &format!(
            "{}stream_include_usage = true\n{}",
            quiet_settings(),
            user("u", "tok", "")
        ),
        &an.base_url(),
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&an]);
    let body =
        r#"{"model":"c","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = gw.post_with(
        "/v1/messages",
        "tok",
        body,
        &[("anthropic-version", "2023-06-01")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("message_stop"));
    assert_eq!(
        std::str::from_utf8(&an.last_request().unwrap().body).unwrap(),
        body.replace("\"c\"", "\"claude-real\"")
    );
}

#[test]
fn untranslatable_requests_are_refused_before_quota() {
    let an = mock("an");
    let users = "[users.u]\ntoken = \"tok\"\n[users.u.rate_limit]\nrequests_per_minute = 1\n";
    let cfg = anthropic_model(&format!("{}\n{users}", quiet_settings()), &an.base_url());
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&an]);
    let hits = an.hits();
    let r = gw.post(
        "/v1/chat/completions",
        "tok",
        r#"{"model":"c","n":2,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "n", "{}", r.text());
    assert_eq!(an.hits(), hits, "nothing went upstream");
    // the refusal took no quota: the one request of the minute is still there
    assert_eq!(gw.chat("tok", "c").status, 200);
    assert_eq!(gw.chat("tok", "c").status, 429);
}

#[test]
fn every_error_under_v1_messages_is_anthropic_shaped() {
    let an = mock("an");
    let gw = Gateway::start(&format!(
        "{}\n{}{}",
        quiet_settings(),
        user("u", "tok", ""),
        provider("an", &an)
    ));
    for (method, path, status) in [
        ("GET", "/v1/messages", 405),
        ("POST", "/v1/messages/batches", 404),
        ("GET", "/v1/messages/count_tokens", 405),
    ] {
        let r = request(gw.addr, method, path, &[("x-api-key", "tok")], b"");
        assert_eq!(r.status, status, "{method} {path}");
        assert_eq!(r.json()["type"], "error", "{method} {path}: {}", r.text());
    }
    // elsewhere errors stay OpenAI-shaped
    let r = request(gw.addr, "GET", "/v1/nope", &[], b"");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["code"].is_string());
}
