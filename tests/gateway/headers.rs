//! Headers across the gateway: client request headers reach a provider only
//! through the allow-list (plus the provider's `forward_headers`), and no upstream answer
//! tells the client which provider account served it.

use crate::harness::*;
use berry_mock::{MockProvider, Mode, RecordedRequest};
use std::collections::BTreeSet;

/// Providers on the one mock `m`: `p` (OpenAI, plain), `q` (OpenAI, `forward_headers =
/// ["X-Custom"]`), `an` (Anthropic); models `plain`, `custom`, `claude` on them; admin
/// token `adm`.
fn config(m: &MockProvider) -> String {
    format!(
        r#"{settings}admin_token = "adm"
{u}
[providers.p]
base_url = "{url}"
api_key = "sk-p"
[providers.q]
base_url = "{url}"
api_key = "sk-q"
forward_headers = ["X-Custom"]
[providers.an]
base_url = "http://{addr}"
api_key = "sk-an"
backend_type = "anthropic"
[models.plain]
[[models.plain.backends]]
provider = "p"
model = "real-plain"
[models.custom]
[[models.custom.backends]]
provider = "q"
model = "real-custom"
[models.claude]
[[models.claude.backends]]
provider = "an"
model = "real-claude"
"#,
        settings = quiet_settings(),
        u = user("u", "tok", ""),
        url = m.base_url(),
        addr = m.addr(),
    )
}

/// The header names (lower-case) a recorded upstream request carried.
fn names(seen: &RecordedRequest) -> BTreeSet<String> {
    seen.headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect()
}

/// What a hostile or merely chatty client sends besides its token and body.
const CLIENT_EXTRAS: [(&str, &str); 12] = [
    ("Content-Type", "application/json"),
    ("Accept", "application/json"),
    ("User-Agent", "OpenAI/Python 1.54.0"),
    ("OpenAI-Beta", "assistants=v2"),
    ("OpenAI-Organization", "org-client-chosen"),
    ("OpenAI-Project", "proj_client_chosen"),
    ("Cookie", "session=client-cookie"),
    ("X-Forwarded-For", "203.0.113.7"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Mock-Mode", "500"),
    ("X-Custom", "custom-value"),
    ("X-Stainless-Lang", "python"),
];

fn post(gw: &Gateway, path: &str, body: &str, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![("Authorization", "Bearer tok")];
    headers.extend_from_slice(extra);
    request(gw.addr, "POST", path, &headers, body.as_bytes())
}

#[test]
fn client_headers_outside_the_allow_list_stay_at_the_gateway() {
    let m = mock("m");
    let gw = Gateway::start(&config(&m));
    settle(&gw, &[&m, &m, &m]);
    let body = r#"{"model":"plain","messages":[{"role":"user","content":"hi"}]}"#;
    let r = post(&gw, "/v1/chat/completions", body, &CLIENT_EXTRAS);
    // `X-Mock-Mode: 500` did not reach the mock: the client cannot make the provider fail
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = m.last_request().unwrap();
    let want: BTreeSet<String> = [
        "host",
        "content-length",
        "content-type",
        "accept",
        "user-agent",
        "openai-beta",
        "authorization",
        "x-request-id",
    ]
    .map(String::from)
    .into();
    assert_eq!(names(&seen), want, "{:?}", seen.headers);
    assert_eq!(seen.header("user-agent"), Some("OpenAI/Python 1.54.0"));
    assert_eq!(seen.header("openai-beta"), Some("assistants=v2"));
    assert_eq!(seen.header("authorization"), Some("Bearer sk-p"));
    for name in [
        "openai-organization",
        "openai-project",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-mock-mode",
        "x-custom",
        "x-stainless-lang",
    ] {
        assert_eq!(seen.header(name), None, "{name} reached the provider");
    }
    // a stream too, and the Anthropic headers mean nothing on the OpenAI routes
    let stream = r#"{"model":"plain","stream":true,"messages":[]}"#;
    let mut extra = CLIENT_EXTRAS.to_vec();
    extra.push(("anthropic-beta", "prompt-caching-2024-07-31"));
    let r = post(&gw, "/v1/chat/completions", stream, &extra);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    assert_eq!(names(&m.last_request().unwrap()), want);
}

#[test]
fn a_providers_forward_headers_reach_it() {
    let m = mock("m");
    let gw = Gateway::start(&config(&m));
    settle(&gw, &[&m, &m, &m]);
    let body = r#"{"model":"custom","messages":[]}"#;
    let r = post(&gw, "/v1/chat/completions", body, &CLIENT_EXTRAS);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = m.last_request().unwrap();
    assert_eq!(seen.header("x-custom"), Some("custom-value"));
    assert_eq!(seen.header("authorization"), Some("Bearer sk-q"));
    // only what the provider listed: the rest still stays at the gateway
    for name in [
        "x-mock-mode",
        "cookie",
        "openai-organization",
        "x-forwarded-for",
    ] {
        assert_eq!(seen.header(name), None, "{name}: {:?}", seen.headers);
    }
    // another provider on the same mock does not get it
    let r = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"plain","messages":[]}"#,
        &CLIENT_EXTRAS,
    );
    assert_eq!(r.status, 200);
    assert_eq!(m.last_request().unwrap().header("x-custom"), None);
    // the admin view names it (names only, lower-case)
    let admin = gw.get("/admin/config", Some("adm")).json();
    let q = admin["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "q")
        .unwrap()
        .clone();
    assert_eq!(q["forward_headers"], serde_json::json!(["x-custom"]));
}

#[test]
fn anthropic_headers_reach_only_anthropic_backends_on_the_messages_routes() {
    let m = mock("m");
    let gw = Gateway::start(&config(&m));
    settle(&gw, &[&m, &m, &m]);
    let mut extra = CLIENT_EXTRAS.to_vec();
    extra.extend([
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
    ]);
    let body = r#"{"model":"claude","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = post(&gw, "/v1/messages", body, &extra);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = m.last_request().unwrap();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(
        seen.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen.header("x-api-key"), Some("sk-an"));
    assert_eq!(seen.header("x-mock-mode"), None);
    assert_eq!(seen.header("cookie"), None);
    // translated for an OpenAI backend: neither goes along
    let body = r#"{"model":"plain","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = post(&gw, "/v1/messages", body, &extra);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = m.last_request().unwrap();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.header("anthropic-beta"), None);
    assert_eq!(seen.header("anthropic-version"), None);
}

/// Is `name` a header that tells who the provider account is?
fn is_account_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "set-cookie",
        "openai-organization",
        "openai-project",
        "anthropic-organization-id",
    ]
    .contains(&n.as_str())
        || n.starts_with("x-ratelimit-")
        || n.starts_with("anthropic-ratelimit-")
}

fn assert_anonymous(r: &Resp, what: &str) {
    let leaked: Vec<&(String, String)> = r
        .headers
        .iter()
        .filter(|(n, _)| is_account_header(n))
        .collect();
    assert!(leaked.is_empty(), "{what}: {leaked:?} reached the client");
}

/// The mock itself sends what the gateway must strip (so the test means something).
fn assert_mock_sends(m: &MockProvider, path: &str, key: (&str, &str), prefix: &str) {
    let body = r#"{"model":"x","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = request(m.addr(), "POST", path, &[key], body.as_bytes());
    assert!(
        r.headers
            .iter()
            .any(|(n, _)| n.to_ascii_lowercase().starts_with(prefix)),
        "mock on {path} sent no {prefix}*: {:?}",
        r.headers
    );
}

#[test]
fn account_and_rate_limit_headers_never_reach_the_client() {
    // `oa` puts the account headers on every answer (errors included)
    let oa = mock_with("oa", |o| o.account_headers = true);
    let an = mock("an");
    let cfg = format!(
        "{}\n{}{}{}backend_type = \"anthropic\"\n{}backend_type = \"anthropic\"\n[models.g]\n[[models.g.backends]]\nprovider = \"oa\"\nmodel = \"gpt-real\"\n[models.c]\n[[models.c.backends]]\nprovider = \"an\"\nmodel = \"claude-real\"\n[models.c2]\n[[models.c2.backends]]\nprovider = \"an2\"\nmodel = \"claude-real\"\n",
        quiet_settings(),
        user("u", "tok", ""),
        provider("oa", &oa),
        provider("an", &an),
        provider("an2", &an),
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&oa, &an, &an]);
    let chat = |model: &str, stream: bool| {
        gw.post(
            "/v1/chat/completions",
            "tok",
            &format!(r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#),
        )
    };
    let messages = |model: &str, stream: bool| {
        gw.post(
            "/v1/messages",
            "tok",
            &format!(r#"{{"model":"{model}","max_tokens":16,"stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#),
        )
    };

    // passthrough, OpenAI dialect: account headers on answers, streams and errors
    assert_mock_sends(
        &oa,
        "/v1/chat/completions",
        ("x-api-key", "k"),
        "openai-organization",
    );
    for stream in [false, true] {
        let r = chat("g", stream);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_anonymous(&r, &format!("passthrough, stream {stream}"));
    }
    oa.set_mode(Mode::Status(500));
    let r = chat("g", false);
    assert_eq!(r.status, 500, "a passed-through error: {}", r.text());
    assert_anonymous(&r, "passed-through 500");
    // ... and the provider's rate-limit headers
    oa.set_mode("limits:tokens:20ms".parse().unwrap());
    assert_mock_sends(
        &oa,
        "/v1/chat/completions",
        ("x-api-key", "k"),
        "x-ratelimit-",
    );
    let r = chat("g", false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_anonymous(&r, "passthrough with x-ratelimit-*");

    // Anthropic dialect: translated for an OpenAI client, and passed through to an
    // Anthropic client
    an.set_mode(Mode::AccountHeaders);
    assert_mock_sends(
        &an,
        "/v1/messages",
        ("x-api-key", "k"),
        "anthropic-organization-id",
    );
    for stream in [false, true] {
        let r = chat("c", stream);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_anonymous(&r, &format!("translated, stream {stream}"));
        let r = messages("c", stream);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_anonymous(&r, &format!("Anthropic passthrough, stream {stream}"));
    }
    // rate-limit headers last on each backend (a backend they report exhausted may be
    // cooled down)
    an.set_mode("limits:requests:1s".parse().unwrap());
    assert_mock_sends(
        &an,
        "/v1/messages",
        ("x-api-key", "k"),
        "anthropic-ratelimit-",
    );
    let r = messages("c", false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_anonymous(&r, "Anthropic passthrough with anthropic-ratelimit-*");
    let r = chat("c2", true);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_anonymous(&r, "translated stream with anthropic-ratelimit-*");
}

/// Upstream headers an answer may carry (`RETURNED` in the gateway, the upstream's request
/// id renamed), plus what the gateway sets itself.
const RETURNED: [&str; 12] = [
    "content-type",
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "retry-after",
    "retry-after-ms",
    "openai-processing-ms",
    "x-upstream-request-id",
    // the gateway's own
    "x-request-id",
    "date",
    "connection",
    "x-berry-dropped-tools",
];

fn assert_only_returned(r: &Resp, what: &str) {
    let extra: Vec<&(String, String)> = r
        .headers
        .iter()
        .filter(|(n, _)| !RETURNED.contains(&n.to_ascii_lowercase().as_str()))
        .collect();
    assert!(extra.is_empty(), "{what}: {extra:?} reached the client");
}

#[test]
fn only_allowed_upstream_headers_reach_the_client() {
    let oa = mock_with("oa", |o| o.account_headers = true);
    let an = mock("an");
    let cfg = format!(
        "{}\n{}{}{}backend_type = \"anthropic\"\n[models.g]\n[[models.g.backends]]\nprovider = \"oa\"\nmodel = \"gpt-real\"\n[models.c]\n[[models.c.backends]]\nprovider = \"an\"\nmodel = \"claude-real\"\n",
        quiet_settings(),
        user("u", "tok", ""),
        provider("oa", &oa),
        provider("an", &an),
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&oa, &an]);
    // the mock sends headers of its own (its name, cache-control on streams) beside the
    // account's: none of them may pass
    assert_mock_sends(
        &oa,
        "/v1/chat/completions",
        ("x-api-key", "k"),
        "x-mock-name",
    );
    let chat = |model: &str, stream: bool| {
        gw.post(
            "/v1/chat/completions",
            "tok",
            &format!(r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#),
        )
    };
    for model in ["g", "c"] {
        for stream in [false, true] {
            let r = chat(model, stream);
            assert_eq!(r.status, 200, "{}", r.text());
            assert_only_returned(&r, &format!("{model}, stream {stream}"));
            assert!(r.header("x-request-id").is_some(), "{:?}", r.headers);
        }
    }
    oa.set_mode(Mode::Status(500));
    let r = chat("g", false);
    assert_eq!(r.status, 500, "{}", r.text());
    assert_only_returned(&r, "passed-through 500");
    // a translated failure answer is labelled as what it is now: the client's JSON
    an.set_mode(Mode::Status(529));
    let r = chat("c", false);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_only_returned(&r, "translated 529");
}
