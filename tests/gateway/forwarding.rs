//! What reaches the provider and what comes back: body splice, credentials, URL, bodies
//! of every size, streaming without buffering, request ids, local endpoints.

use crate::harness::*;
use berry_mock::{MockProvider, RecordedRequest};
use std::time::Duration;

fn one_backend(m: &MockProvider, base_path: &str) -> String {
    format!(
        r#"{settings}
max_request_body_bytes = 4194304
{u}
[providers.p]
base_url = "http://{addr}{base_path}?api-version=7"
api_key = "sk-provider-secret"
[providers.p.headers]
"OpenAI-Organization" = "org-42"
[models.m]
name = "client-model"
[[models.m.backends]]
provider = "p"
model = "real-model/v2"
"#,
        settings = quiet_settings(),
        u = user("u", "tok-user", ""),
        addr = m.addr(),
    )
}

/// A gateway on [`one_backend`] after its start-up health check reached the mock.
fn start(m: &MockProvider, base_path: &str) -> Gateway {
    let gw = Gateway::start(&one_backend(m, base_path));
    settle(&gw, &[m]);
    gw
}

#[test]
fn model_span_is_spliced_and_every_other_byte_is_kept() {
    let m = mock("m");
    let gw = start(&m, "/v1");
    let body = "{ \"temperature\" :0.50,\n\t\"mo\\u0064el\":   \"client\\u002dmodel\" , \"messages\":[{\"role\":\"user\",\"content\":\"h\u{e9}llo \\\"q\\\" \\u00e9\"}],\"z\":[1,2.0e3,null,true]  }";
    let r = gw.post("/v1/chat/completions", "tok-user", body);
    assert_eq!(r.status, 200, "{}", r.text());
    let got = m.last_request().expect("recorded").body;
    let expected = body.replace("\"client\\u002dmodel\"", "\"real-model/v2\"");
    assert_eq!(
        String::from_utf8(got).unwrap(),
        expected,
        "byte-for-byte splice"
    );
}

#[test]
fn credentials_are_replaced_and_url_joined() {
    let m = mock("m");
    let gw = start(&m, "/openai/v1");
    let r = request(
        gw.addr,
        "POST",
        "/v1/chat/completions?api-version=client-chosen&trace=1",
        &[
            ("Authorization", "Bearer tok-user"),
            ("x-api-key", "tok-user"),
            ("api-key", "client-azure-key"),
            ("Content-Type", "application/json"),
            ("x-request-id", "req-abc-123"),
            ("Accept-Encoding", "gzip"),
        ],
        br#"{"model":"client-model","messages":[]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-request-id"), Some("req-abc-123"));
    let seen = m.last_request().unwrap();
    // only the gateway's own query parameters reach the provider, never the client's
    assert_eq!(seen.path, "/openai/v1/chat/completions?api-version=7");
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer sk-provider-secret")
    );
    assert_eq!(seen.header("x-api-key"), None);
    assert_eq!(seen.header("api-key"), None);
    assert_eq!(seen.header("accept-encoding"), None);
    assert_eq!(seen.header("openai-organization"), Some("org-42"));
    assert_eq!(seen.header("x-request-id"), Some("req-abc-123"));
    assert_eq!(seen.header("host"), Some(m.addr().to_string().as_str()));
    let all = format!("{:?}", seen.headers);
    assert!(
        !all.contains("tok-user"),
        "client token leaked upstream: {all}"
    );

    // generated request id when the client sends none (or an invalid one)
    let r = gw.chat("tok-user", "client-model");
    let id = r.header("x-request-id").expect("generated id").to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(
        m.last_request().unwrap().header("x-request-id"),
        Some(id.as_str())
    );
}

/// A config with one provider per credential dialect, all on the mock `m`, and one model
/// per provider (`oa`, `az`, `an`).
fn dialects_config(m: &MockProvider) -> String {
    let mut cfg = format!("{}\n{}", quiet_settings(), user("u", "tok-user-secret", ""));
    for (id, backend_type) in [("oa", "openai"), ("az", "azure"), ("an", "anthropic")] {
        cfg.push_str(&format!(
            "[providers.{id}]\nbase_url = \"{url}\"\napi_key = \"sk-{id}-key\"\nbackend_type = \"{backend_type}\"\n[providers.{id}.headers]\n\"OpenAI-Organization\" = \"org-{id}\"\n[models.{id}]\nname = \"{id}\"\n[[models.{id}.backends]]\nprovider = \"{id}\"\nmodel = \"real-{id}\"\n",
            url = m.base_url(),
        ));
    }
    cfg
}

/// Every header the upstream saw named `name` (case-insensitive), in order.
fn all_values<'a>(seen: &'a RecordedRequest, name: &str) -> Vec<&'a str> {
    seen.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn every_client_credential_is_stripped_whatever_the_provider_dialect() {
    let m = mock("m");
    let gw = Gateway::start(&dialects_config(&m));
    settle(&gw, &[&m, &m, &m]); // three providers on one mock
                                // The provider's own credential header, per dialect; the other two must not arrive.
    let cases = [
        ("oa", "authorization", "Bearer sk-oa-key"),
        ("az", "api-key", "sk-az-key"),
        ("an", "x-api-key", "sk-an-key"),
    ];
    // The client authenticates both ways at once and also sends the other dialects'
    // credential headers (an SDK configured for Azure or Anthropic does).
    for (model, header, value) in cases {
        for client_auth in [
            &[
                ("Authorization", "Bearer tok-user-secret"),
                ("x-api-key", "tok-user-secret"),
                ("api-key", "tok-user-secret"),
                ("Proxy-Authorization", "Basic tok-user-secret"),
                ("OpenAI-Organization", "org-client"),
            ][..],
            &[("x-api-key", "tok-user-secret")][..],
            &[
                ("Authorization", "Bearer tok-user-secret"),
                ("api-key", "tok-user-secret"),
            ][..],
        ] {
            let mut headers = client_auth.to_vec();
            headers.push(("Content-Type", "application/json"));
            let body =
                format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"x"}}]}}"#);
            let r = request(
                gw.addr,
                "POST",
                "/v1/chat/completions",
                &headers,
                body.as_bytes(),
            );
            assert_eq!(r.status, 200, "{model}: {}", r.text());
            let seen = m.last_request().unwrap();
            if model == "an" {
                // translated for the Anthropic backend
                let v: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
                assert_eq!(v["model"], "real-an");
            } else {
                assert_eq!(
                    std::str::from_utf8(&seen.body).unwrap(),
                    format!(
                        r#"{{"model":"real-{model}","messages":[{{"role":"user","content":"x"}}]}}"#
                    )
                );
            }
            for name in ["authorization", "api-key", "x-api-key"] {
                let want: Vec<&str> = if name == header { vec![value] } else { vec![] };
                assert_eq!(
                    all_values(&seen, name),
                    want,
                    "{model} ({client_auth:?}): upstream `{name}`: {:?}",
                    seen.headers
                );
            }
            assert_eq!(all_values(&seen, "proxy-authorization"), Vec::<&str>::new());
            // a configured provider header replaces the client's, never joins it
            assert_eq!(
                all_values(&seen, "openai-organization"),
                [format!("org-{model}").as_str()]
            );
            let anthropic_version: Vec<&str> = if model == "an" {
                vec!["2023-06-01"]
            } else {
                vec![]
            };
            assert_eq!(all_values(&seen, "anthropic-version"), anthropic_version);
            let all = format!("{:?}", seen.headers);
            assert!(
                !all.contains("tok-user-secret"),
                "{model}: the client's gateway token reached the provider: {all}"
            );
        }
    }
}

#[test]
fn bodies_of_every_size_are_forwarded_intact() {
    let m = mock("m");
    let gw = start(&m, "/v1");
    // sizes around Pingora's 64 KiB body buffer and well beyond
    for size in [
        100,
        32 * 1024,
        64 * 1024 - 1,
        64 * 1024,
        64 * 1024 + 1,
        100 * 1024,
        128 * 1024 + 7,
        200_000,
        1024 * 1024,
    ] {
        let filler_len = size - 60;
        let content: String = (0..filler_len)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();
        let body = format!(r#"{{"model":"client-model","messages":[{{"content":"{content}"}}]}}"#);
        let r = gw.post("/v1/chat/completions", "tok-user", &body);
        assert_eq!(r.status, 200, "size {size}: {}", r.text());
        let got = m.last_request().unwrap().body;
        let expected = body.replace("\"client-model\"", "\"real-model/v2\"");
        assert_eq!(got.len(), expected.len(), "size {size}");
        assert!(got == expected.as_bytes(), "size {size}: body differs");
    }
}

#[test]
fn expect_continue_and_chunked_uploads() {
    let m = mock("m");
    let gw = start(&m, "/v1");
    let body = br#"{"model":"client-model","messages":[]}"#;
    // Expect: 100-continue: the gateway says 100 before the body is sent
    let mut c = Client::connect(gw.addr).unwrap();
    c.write_raw(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok-user\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut first = [0u8; 25];
    std::io::Read::read_exact(&mut c.s, &mut first).unwrap();
    assert!(
        first.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    c.write_raw(body).unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    // a small chunked upload works, and one over 64 KiB too (tests/gateway/bodies.rs)
    let chunked = format!(
        "{:x}\r\n{}\r\n0\r\n\r\n",
        body.len(),
        std::str::from_utf8(body).unwrap()
    );
    let r = request(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Authorization", "Bearer tok-user"),
            ("Transfer-Encoding", "chunked"),
        ],
        chunked.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        m.last_request().unwrap().body,
        br#"{"model":"real-model/v2","messages":[]}"#
    );
    let big = format!(
        r#"{{"model":"client-model","x":"{}"}}"#,
        "y".repeat(100 * 1024)
    );
    let chunked = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let r = request(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Authorization", "Bearer tok-user"),
            ("Transfer-Encoding", "chunked"),
        ],
        chunked.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        m.last_request().unwrap().body,
        big.replace("\"client-model\"", "\"real-model/v2\"")
            .as_bytes()
    );
}

#[test]
fn slow_client_body_gets_408() {
    let m = mock("m");
    let gw = start(&m, "/v1");
    let mut c = Client::connect(gw.addr).unwrap();
    c.write_raw(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok-user\r\nContent-Length: 100\r\n\r\n{\"model\":")
        .unwrap();
    let t0 = std::time::Instant::now();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(t0.elapsed() < Duration::from_secs(6));
    assert_eq!(m.hits_for("/chat/completions"), 0);
}

#[test]
fn sse_chunks_arrive_spaced_as_sent() {
    let m = mock_with("m", |o| {
        o.chunks = 6;
        o.chunk_interval = Duration::from_millis(150);
    });
    let gw = start(&m, "/v1");
    let r = gw.chat_stream("tok-user", "client-model");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(r.complete);
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    // content events arrive one by one, spaced like the upstream sent them
    let content_times: Vec<_> = r
        .chunks
        .iter()
        .filter(|(_, c)| String::from_utf8_lossy(c).contains("\"content\":\"tok"))
        .map(|(t, _)| *t)
        .collect();
    assert!(content_times.len() >= 6, "chunks: {}", r.chunks.len());
    let spread = *content_times.last().unwrap() - content_times[0];
    assert!(
        spread >= Duration::from_millis(5 * 150 * 8 / 10),
        "events were buffered: spread {spread:?}"
    );
    let first_after = content_times[0] - r.sent_at.unwrap();
    assert!(
        first_after < Duration::from_millis(500),
        "first token delayed {first_after:?}"
    );
}

#[test]
fn local_endpoints() {
    let m = mock("m");
    let cfg = format!(
        "{}\n{}",
        one_backend(&m, "/v1"),
        user("v", "tok-v", "allowed_models = [\"nothing\"]")
    );
    let gw = Gateway::start(&cfg);
    let root = gw.get("/", None).json();
    assert_eq!(root["name"], "berry-gateway");
    for p in ["/health", "/v1/health"] {
        let h = gw.get(p, None);
        assert_eq!(h.status, 200);
        let text = h.text();
        assert!(
            !text.contains("127.0.0.1") && !text.contains("sk-"),
            "{text}"
        );
        assert_eq!(h.json()["models"]["available"], 1);
    }
    for p in ["/v1/models", "/models"] {
        let list = gw.get(p, Some("tok-user")).json();
        assert_eq!(list["object"], "list");
        assert_eq!(list["data"][0]["id"], "client-model");
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
    }
    assert_eq!(gw.get("/v1/models", None).status, 401);
    let one = gw.get("/v1/models/client-model", Some("tok-user"));
    assert_eq!(one.json()["id"], "client-model");
    assert_eq!(gw.get("/v1/models/client-model", Some("tok-v")).status, 404);
    assert_eq!(gw.get("/v1/models/nope", Some("tok-user")).status, 404);
    let none = gw.get("/v1/models", Some("tok-v")).json();
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
    // the admin API is off without admin_token
    assert_eq!(gw.get("/admin/backends", Some("tok-user")).status, 404);
}

#[test]
fn health_is_503_when_no_model_can_be_served() {
    let m = mock("m");
    let fast = one_backend(&m, "/v1")
        .replace(
            "health_check_interval_seconds = 3600",
            "health_check_interval_seconds = 0.5",
        )
        .replace(
            "recovery_check_interval_seconds = 3600",
            "recovery_check_interval_seconds = 0.5",
        );
    let gw = Gateway::start(&fast);
    m.stop_listening();
    assert!(
        wait_until(Duration::from_secs(5), || gw.get("/health", None).status
            == 503),
        "health checks should mark the only provider down"
    );
    m.resume_listening().unwrap();
    assert!(wait_until(Duration::from_secs(5), || gw
        .get("/health", None)
        .status
        == 200));
}

/// One provider of `backend_type` at `base` (a path on the mock) serving model `id` as
/// backend model `real-{id}`, with `extra` provider lines.
fn dialect_provider(id: &str, backend_type: &str, base: &str, extra: &str) -> String {
    format!(
        "[providers.{id}]\nbase_url = \"{base}\"\napi_key = \"sk-{id}-key\"\nbackend_type = \"{backend_type}\"\n{extra}\n[models.{id}]\nname = \"{id}\"\n[[models.{id}.backends]]\nprovider = \"{id}\"\nmodel = \"real-{id}\"\n"
    )
}

#[test]
fn each_dialect_is_addressed_its_own_way() {
    let m = mock("m");
    let host = format!("http://{}", m.addr());
    let mut cfg = format!("{}\n{}", quiet_settings(), user("u", "tok", ""));
    // Azure deployments form: default api-version, an explicit one, and Berry's header form
    // (moved into the query, never sent as a header).
    cfg.push_str(&dialect_provider("az", "azure", &host, ""));
    cfg.push_str(&dialect_provider(
        "az2",
        "azure",
        &format!("{host}/openai"),
        "api_version = \"2025-01-01-preview\"",
    ));
    cfg.push_str(&dialect_provider(
        "az3",
        "azure",
        &host,
        "[providers.az3.headers]\n\"api-version\" = \"2024-02-01\"",
    ));
    // Azure v1 form: like OpenAI, no api-version.
    cfg.push_str(&dialect_provider(
        "azv1",
        "azure",
        &format!("{host}/openai/v1"),
        "",
    ));
    // Gemini on a bare host: Google's OpenAI-compatible path.
    cfg.push_str(&dialect_provider("ge", "gemini", &host, ""));
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&m, &m, &m, &m, &m]);
    let cases = [
        (
            "az",
            "/openai/deployments/real-az/chat/completions?api-version=2024-10-21",
            "api-key",
        ),
        (
            "az2",
            "/openai/deployments/real-az2/chat/completions?api-version=2025-01-01-preview",
            "api-key",
        ),
        (
            "az3",
            "/openai/deployments/real-az3/chat/completions?api-version=2024-02-01",
            "api-key",
        ),
        ("azv1", "/openai/v1/chat/completions", "api-key"),
        ("ge", "/v1beta/openai/chat/completions", "authorization"),
    ];
    for (model, path, credential) in cases {
        let r = gw.chat("tok", model);
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let seen = m.last_request().unwrap();
        assert_eq!(seen.path, path, "{model}");
        // the body keeps the backend's model in every form (Azure ignores it)
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&seen.body).unwrap()["model"],
            format!("real-{model}").as_str()
        );
        let key = format!("sk-{model}-key");
        let want = if credential == "authorization" {
            format!("Bearer {key}")
        } else {
            key
        };
        assert_eq!(seen.header(credential), Some(want.as_str()), "{model}");
        assert_eq!(
            seen.header("api-version"),
            None,
            "{model}: {:?}",
            seen.headers
        );
    }
    // embeddings and legacy completions use the deployments form too
    let r = request(
        gw.addr,
        "POST",
        "/v1/embeddings",
        &[
            ("Authorization", "Bearer tok"),
            ("Content-Type", "application/json"),
        ],
        br#"{"model":"az","input":"hi"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        m.last_request().unwrap().path,
        "/openai/deployments/real-az/embeddings?api-version=2024-10-21"
    );
}

#[test]
fn operations_go_only_to_backends_that_serve_them() {
    let m = mock("m");
    let mut cfg = format!("{}\n{}", quiet_settings(), user("u", "tok", ""));
    cfg.push_str(&dialect_provider("an", "anthropic", &m.base_url(), ""));
    cfg.push_str(&dialect_provider("oa", "openai", &m.base_url(), ""));
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&m, &m]);
    let hits = m.hits();
    let json = [
        ("Authorization", "Bearer tok"),
        ("Content-Type", "application/json"),
    ];
    // embeddings and legacy completions cannot go to an Anthropic-only model
    for path in ["/v1/embeddings", "/v1/completions"] {
        let r = request(
            gw.addr,
            "POST",
            path,
            &json,
            br#"{"model":"an","input":"x","prompt":"x"}"#,
        );
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    }
    // count_tokens needs an Anthropic backend; its errors are Anthropic-shaped
    let body = br#"{"model":"oa","messages":[{"role":"user","content":"hi"}]}"#;
    let r = request(gw.addr, "POST", "/v1/messages/count_tokens", &json, body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"type": "error", "error": {"type": "invalid_request_error",
            "message": "Model 'oa' has no backend that serves /v1/messages/count_tokens."}})
    );
    assert_eq!(m.hits(), hits, "nothing went upstream");
    let body = br#"{"model":"an","messages":[{"role":"user","content":"hi"}]}"#;
    let mut headers = json.to_vec();
    headers.extend([
        ("anthropic-version", "2023-01-01"),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
    ]);
    let r = request(gw.addr, "POST", "/v1/messages/count_tokens", &headers, body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["input_tokens"].as_u64().unwrap() > 0);
    let seen = m.last_request().unwrap();
    assert_eq!(seen.path, "/v1/messages/count_tokens");
    // the client's Anthropic headers reach an Anthropic backend
    assert_eq!(
        seen.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
    // the client's own version wins over the provider default (2023-06-01)
    assert_eq!(all_values(&seen, "anthropic-version"), ["2023-01-01"]);
    assert_eq!(
        std::str::from_utf8(&seen.body).unwrap(),
        r#"{"model":"real-an","messages":[{"role":"user","content":"hi"}]}"#,
        "byte-exact except the model"
    );
}

#[test]
fn keys_that_fold_to_model_or_stream_are_refused() {
    let m = mock("m");
    let gw = Gateway::start(&format!(
        "{}\n{}{}[models.x]\nname = \"allowed\"\n[[models.x.backends]]\nprovider = \"p\"\nmodel = \"real\"\n",
        quiet_settings(),
        user("u", "tok", ""),
        provider("p", &m)
    ));
    settle(&gw, &[&m]);
    let hits = m.hits();
    for body in [
        r#"{"model":"allowed","MODEL":"other","messages":[]}"#,
        r#"{"model":"allowed","Stream":true,"messages":[]}"#,
        "{\"model\":\"allowed\",\"\u{17f}tream\":true,\"messages\":[]}",
    ] {
        let r = gw.post("/v1/chat/completions", "tok", body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    }
    assert_eq!(m.hits(), hits, "nothing went upstream");
}
