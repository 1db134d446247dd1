//! Azure OpenAI URL forms: the deployments form (with `api-version`, `api-key`, model =
//! deployment, Azure's error shape) and the v1 form.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may fail loudly

mod support;

use berry_mock::{MockGuard, MockOptions};
use serde_json::json;
use support::{events, p_of, post, req, start};

const KEY: (&str, &str) = ("api-key", "az-key");
const CHAT: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
const DEP_CHAT: &str = "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21";

fn azure_mock() -> MockGuard {
    start(MockOptions {
        expected_api_key: Some("az-key".into()),
        chunk_interval: std::time::Duration::ZERO,
        ..MockOptions::default()
    })
}

fn assert_azure_error(r: &support::Resp, status: u16) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], status.to_string(), "{v}");
    v["error"]["message"].as_str().unwrap().to_string()
}

#[test]
fn deployments_answer_like_openai_with_the_deployment_as_model() {
    let m = azure_mock();
    let r = post(&m, DEP_CHAT, &[KEY], CHAT);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt4o-prod");
    assert_eq!(v["usage"]["prompt_tokens"], p_of(CHAT));
    let rec = m.last_request().unwrap();
    assert_eq!(rec.path, DEP_CHAT);
    assert_eq!(rec.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(rec.query_param("api-version"), Some("2024-10-21"));
    assert_eq!(rec.header("api-key"), Some("az-key"));

    let r = post(
        &m,
        "/base/openai/deployments/legacy/completions?foo=1&api-version=2024-02-01",
        &[KEY],
        r#"{"prompt":"x"}"#,
    );
    assert_eq!(r.json()["object"], "text_completion");
    assert_eq!(r.json()["model"], "legacy");
    assert_eq!(
        m.last_request().unwrap().query_param("api-version"),
        Some("2024-02-01")
    );
    let r = post(
        &m,
        "/openai/deployments/embed/embeddings?api-version=2024-10-21",
        &[KEY],
        r#"{"input":"x","model":"ignored"}"#,
    );
    assert_eq!(r.json()["object"], "list");
    assert_eq!(r.json()["model"], "embed");

    let r = post(
        &m,
        DEP_CHAT,
        &[KEY, ("x-mock-chunks", "2")],
        r#"{"stream":true,"stream_options":{"include_usage":true}}"#,
    );
    assert!(r.complete);
    let evs = events(&r);
    assert_eq!(evs.len(), 2 + 1 + 1 + 1);
    for e in &evs[..4] {
        assert_eq!(e.json()["model"], "gpt4o-prod");
    }
    assert_eq!(evs[4].data, "[DONE]");
    assert_eq!(m.hits_for("/chat/completions"), 2);
}

#[test]
fn deployments_need_api_version_and_api_key() {
    let m = azure_mock();
    for path in [
        "/openai/deployments/d/chat/completions",
        "/openai/deployments/d/chat/completions?api-version=",
        "/openai/deployments/d/embeddings?version=2024-10-21",
    ] {
        let r = post(&m, path, &[KEY], CHAT);
        assert_eq!(assert_azure_error(&r, 404), "Resource not found", "{path}");
    }
    let r = post(
        &m,
        "/openai/deployments/d/images/generations?api-version=2024-10-21",
        &[KEY],
        "{}",
    );
    assert_azure_error(&r, 404);
    for h in [
        vec![],
        vec![("authorization", "Bearer az-key")],
        vec![("x-api-key", "az-key")],
        vec![("api-key", "wrong")],
    ] {
        let r = post(&m, DEP_CHAT, &h, CHAT);
        let msg = assert_azure_error(&r, 401);
        assert!(msg.starts_with("Access denied"), "{h:?}: {msg}");
    }
    // Fault statuses keep Azure's shape and headers.
    let r = post(
        &m,
        DEP_CHAT,
        &[
            KEY,
            ("x-mock-mode", "429"),
            ("x-mock-limits", "retry-after-ms:750"),
        ],
        CHAT,
    );
    assert_azure_error(&r, 429);
    assert_eq!(r.header("retry-after-ms"), Some("750"));
}

#[test]
fn v1_form_needs_no_api_version() {
    let m = azure_mock();
    let r = post(&m, "/openai/v1/chat/completions", &[KEY], CHAT);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model"], "gpt-4o");
    let rec = m.last_request().unwrap();
    assert_eq!(rec.query, None);
    assert_eq!(rec.query_param("api-version"), None);
    let r = post(&m, "/openai/v1/chat/completions", &[], CHAT);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    let r = req(&m, "GET", "/openai/v1/models", &[KEY], "");
    assert_eq!(r.json()["object"], "list");
    assert_eq!(
        r.json()["data"][0],
        json!({"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "mock"})
    );
}
