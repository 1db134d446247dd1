//! Integration tests for the mock provider, using a tiny blocking HTTP/1.1 client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may fail loudly

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use berry_mock::{MockGuard, MockOptions, MockProvider, Mode};
use serde_json::Value;

use berry_test_support::{wait_for, Client, Resp};

/// A connection to `addr` (panics when it cannot connect).
fn connect(addr: SocketAddr) -> Client {
    Client::connect(addr).expect("connect")
}

fn start(opts: MockOptions) -> MockGuard {
    MockProvider::start_background(opts).expect("start mock")
}

fn mock() -> MockGuard {
    start(MockOptions::default())
}

fn req(m: &MockProvider, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    connect(m.addr()).request(method, path, headers, body.as_bytes())
}

fn chat(m: &MockProvider, headers: &[(&str, &str)], body: &str) -> Resp {
    req(m, "POST", "/v1/chat/completions", headers, body)
}

const CHAT: &str = r#"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#;
const CHAT_STREAM: &str = r#"{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;

fn p_of(body: &str) -> u64 {
    body.len() as u64 / 4 + 1
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

#[test]
fn chat_non_stream() {
    let m = start(MockOptions {
        name: "mock-a".into(),
        ..MockOptions::default()
    });
    for path in ["/v1/chat/completions", "/openai/v1/chat/completions?x=1"] {
        let r = req(&m, "POST", path, &[], CHAT);
        assert_eq!(r.status, 200);
        assert!(r.complete);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-mock-name"), Some("mock-a"));
        let v = r.json();
        assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
        assert_eq!(v["object"], "chat.completion");
        assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
        assert_eq!(v["model"], "gpt-test");
        assert_eq!(v["system_fingerprint"], "mock-a");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "tok0 tok1 tok2 tok3 tok4 "
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["prompt_tokens"], p_of(CHAT));
        assert_eq!(v["usage"]["completion_tokens"], 5);
        assert_eq!(v["usage"]["total_tokens"], p_of(CHAT) + 5);
    }
    assert_eq!(m.hits_for("/chat/completions"), 2);
}

#[test]
fn chat_default_model_and_escaping() {
    let m = mock();
    let r = chat(&m, &[], "{}");
    assert_eq!(r.json()["model"], "gpt-4o-mini");
    let r = chat(&m, &[], r#"{"model":"we\"ird\\model\n"}"#);
    assert_eq!(r.json()["model"], "we\"ird\\model\n");
    let r = chat(&m, &[], r#"{"model": null, "stream": null}"#);
    assert_eq!(r.status, 200);
}

#[test]
fn chat_stream_events_are_spaced_and_complete() {
    let m = start(MockOptions {
        chunks: 4,
        chunk_interval: Duration::from_millis(50),
        ..MockOptions::default()
    });
    let r = chat(&m, &[], CHAT_STREAM);
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.header("content-length").is_none());
    // Every event is its own HTTP chunk.
    for (_, c) in &r.chunks {
        assert!(c.starts_with(b"data: ") && c.ends_with(b"\n\n"));
        assert_eq!(c.windows(2).filter(|w| w == b"\n\n").count(), 1);
    }
    let data = r.sse_data();
    assert_eq!(data.len(), 4 + 1 + 1 + 1, "{data:?}");
    let mut text = String::new();
    for (i, d) in data[..4].iter().enumerate() {
        let v: Value = serde_json::from_str(d).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
        assert_eq!(v["model"], "gpt-test");
        assert!(v["choices"][0]["finish_reason"].is_null());
        let c = v["choices"][0]["delta"]["content"].as_str().unwrap();
        assert_eq!(c, format!("tok{i} "));
        text.push_str(c);
    }
    let fin: Value = serde_json::from_str(&data[4]).unwrap();
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    let usage: Value = serde_json::from_str(&data[5]).unwrap();
    assert_eq!(usage["choices"], Value::Array(vec![]));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    assert_eq!(usage["usage"]["prompt_tokens"], p_of(CHAT_STREAM));
    assert_eq!(usage["usage"]["total_tokens"], p_of(CHAT_STREAM) + 4);
    assert_eq!(data[6], "[DONE]");
    // Spacing: first and last content event arrive >= 3 * 50ms * 0.8 apart.
    let first = r.chunks[0].0;
    let last = r.chunks[3].0;
    let spread = last - first;
    assert!(spread >= Duration::from_millis(120), "spread {spread:?}");
    // Per-request shape override, no usage without include_usage.
    let r = chat(
        &m,
        &[("x-mock-chunks", "2"), ("x-mock-interval-ms", "0")],
        r#"{"model":"x","stream":true}"#,
    );
    let data = r.sse_data();
    assert_eq!(data.len(), 2 + 1 + 1, "{data:?}");
    assert!(!r.sse_data().iter().any(|d| d.contains("\"usage\"")));
}

#[test]
fn set_stream_shape_changes_streams() {
    let m = mock();
    m.set_stream_shape(3, Duration::ZERO);
    let r = chat(&m, &[], r#"{"stream":true}"#);
    assert_eq!(r.sse_data().len(), 3 + 2);
    let r = chat(&m, &[], "{}");
    assert_eq!(r.json()["usage"]["completion_tokens"], 3);
}

#[test]
fn legacy_completions() {
    let m = mock();
    let body = r#"{"model":"davinci","prompt":"x"}"#;
    let r = req(&m, "POST", "/v1/completions", &[], body);
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"], "davinci");
    assert_eq!(v["choices"][0]["text"], "tok0 tok1 tok2 tok3 tok4 ");
    assert_eq!(v["usage"]["prompt_tokens"], p_of(body));
    let r = req(
        &m,
        "POST",
        "/v1/completions",
        &[("x-mock-interval-ms", "0")],
        r#"{"model":"davinci","stream":true,"stream_options":{"include_usage":true}}"#,
    );
    let data = r.sse_data();
    assert_eq!(data.len(), 5 + 3);
    let v: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "tok0 ");
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert_eq!(m.hits_for("/v1/completions"), 2);
    assert_eq!(m.hits_for("/chat/completions"), 0);
}

#[test]
fn embeddings() {
    let m = mock();
    let body = r#"{"model":"text-embedding-3-small","input":"hello"}"#;
    let r = req(&m, "POST", "/v1/embeddings", &[], body);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["object"], "embedding");
    assert_eq!(
        v["data"][0]["embedding"],
        serde_json::json!([0.1, 0.2, 0.3])
    );
    assert_eq!(v["model"], "text-embedding-3-small");
    assert_eq!(v["usage"]["prompt_tokens"], p_of(body));
    assert_eq!(v["usage"]["total_tokens"], p_of(body));
}

#[test]
fn anthropic_messages() {
    let m = mock();
    let body = r#"{"model":"claude-x","max_tokens":10,"messages":[]}"#;
    let r = req(&m, "POST", "/anthropic/v1/messages", &[], body);
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["id"], "msg_mock");
    assert_eq!(v["model"], "claude-x");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(v["content"][0]["text"], "tok0 tok1 tok2 tok3 tok4 ");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], p_of(body));
    assert_eq!(v["usage"]["output_tokens"], 5);

    let r = req(
        &m,
        "POST",
        "/v1/messages",
        &[("x-mock-chunks", "2")],
        r#"{"model":"claude-x","stream":true}"#,
    );
    assert!(r.complete);
    assert_eq!(
        r.sse_events(),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data = r.sse_data();
    let delta: Value = serde_json::from_str(&data[3]).unwrap();
    assert_eq!(delta["delta"]["text"], "tok1 ");
    let md: Value = serde_json::from_str(&data[5]).unwrap();
    assert_eq!(md["usage"]["output_tokens"], 2);
    assert_eq!(md["delta"]["stop_reason"], "end_turn");
}

#[test]
fn models_list_and_404() {
    let m = start(MockOptions {
        models: vec!["a".into(), "b".into()],
        ..MockOptions::default()
    });
    let r = req(&m, "GET", "/v1/models", &[], "");
    let v = r.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(v["data"][0]["object"], "model");
    assert_eq!(v["data"][0]["owned_by"], "mock");
    assert_eq!(v["data"][0]["created"], 0);
    // Default model is the first configured one.
    assert_eq!(chat(&m, &[], "{}").json()["model"], "a");

    for (method, path) in [
        ("GET", "/v1/nothing"),
        ("GET", "/v1/chat/completions"),
        ("POST", "/v1/models"),
    ] {
        let r = req(&m, method, path, &[], "");
        assert_eq!(r.status, 404, "{method} {path}");
        let v = r.json();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "not_found");
        assert!(v["error"]["param"].is_null());
        assert!(v["error"]["message"].is_string());
    }
}

// ---------------------------------------------------------------------------
// HTTP behaviour
// ---------------------------------------------------------------------------

#[test]
fn keep_alive_and_connection_close() {
    let m = mock();
    let mut c = connect(m.addr());
    let a = c.request("POST", "/v1/chat/completions", &[], CHAT.as_bytes());
    let b = c.request("GET", "/v1/models", &[], b"");
    let s = c.request(
        "POST",
        "/v1/chat/completions",
        &[("x-mock-interval-ms", "0")],
        br#"{"stream":true}"#,
    );
    let d = c.request(
        "POST",
        "/v1/chat/completions",
        &[("Connection", "close")],
        CHAT.as_bytes(),
    );
    assert_eq!(
        (a.status, b.status, s.status, d.status),
        (200, 200, 200, 200)
    );
    assert!(s.complete);
    assert_eq!(d.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(2)));
    assert_eq!(m.accepted_connections(), 1);
    assert_eq!(m.hits(), 4);
}

#[test]
fn http10_closes_by_default() {
    let m = mock();
    let mut c = connect(m.addr());
    c.write_raw(b"GET /v1/models HTTP/1.0\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert!(c.closed_within(Duration::from_secs(2)));
    // HTTP/1.0 keep-alive is honoured.
    let mut c = connect(m.addr());
    for _ in 0..2 {
        c.write_raw(b"GET /v1/models HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        assert_eq!(c.read_response(false).unwrap().status, 200);
    }
    // HEAD is answered and the connection closed.
    let mut c = connect(m.addr());
    c.write_raw(b"HEAD /v1/models HTTP/1.1\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(2)));
}

#[test]
fn chunked_request_body_is_decoded() {
    let m = mock();
    let body = CHAT.as_bytes();
    let mut raw =
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for part in body.chunks(7) {
        raw.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
    let mut c = connect(m.addr());
    // Send in small pieces to exercise incremental decoding.
    for piece in raw.chunks(5) {
        c.write_raw(piece).unwrap();
    }
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["usage"]["prompt_tokens"], p_of(CHAT));
    assert_eq!(m.last_request().unwrap().body, body);
    // Connection is still usable afterwards.
    let r2 = c.request("GET", "/v1/models", &[], b"");
    assert_eq!(r2.status, 200);
}

#[test]
fn expect_100_continue() {
    let m = mock();
    let mut c = connect(m.addr());
    c.write_raw(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            CHAT.len()
        )
        .as_bytes(),
    ).unwrap();
    assert_eq!(c.line().unwrap().unwrap(), "HTTP/1.1 100 Continue");
    assert_eq!(c.line().unwrap().unwrap(), "");
    c.write_raw(CHAT.as_bytes()).unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn oversized_requests_get_413() {
    let m = mock();
    let mut c = connect(m.addr());
    let r = c.request(
        "POST",
        "/v1/chat/completions",
        &[("Content-Length", "100000000")],
        b"",
    );
    // (the client adds no Content-Length of its own when the caller sets one)
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    let mut c = connect(m.addr());
    c.write_raw(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n")
        .unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 413);
    assert!(c.closed_within(Duration::from_secs(2)));

    let mut c = connect(m.addr());
    let big = "a".repeat(70 * 1024);
    let _ =
        c.s.write_all(format!("GET /v1/models HTTP/1.1\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "request_too_large");

    // Chunked body over the limit: hyper does not expose the declared chunk size, so
    // the 413 comes once more than MAX_BODY_BYTES have arrived.
    let mut c = connect(m.addr());
    c.write_raw(
        b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8000000\r\n",
    )
    .unwrap();
    let mut w = c.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let piece = vec![b'a'; 1024 * 1024];
        let mut left = berry_mock::MAX_BODY_BYTES + 1;
        while left > 0 {
            let n = left.min(piece.len());
            if w.write_all(&piece[..n]).is_err() {
                return;
            }
            left -= n;
        }
    });
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    writer.join().unwrap();
    // Server is fine.
    assert_eq!(req(&m, "GET", "/v1/models", &[], "").status, 200);
}

#[test]
fn garbage_input_gets_400_and_server_survives() {
    let m = mock();
    // Heads hyper rejects while parsing get hyper's own bare 400 (no body).
    let head_cases: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\x03garbage\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n".to_vec(),
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n"
            .to_vec(),
        b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
        b"GET /v1/models HTTP/1.1\r\nBad Header Name: x\r\n\r\n".to_vec(),
    ];
    for raw in &head_cases {
        let mut c = connect(m.addr());
        c.write_raw(raw).unwrap();
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(raw));
        assert!(r.body.is_empty(), "{:?}", String::from_utf8_lossy(raw));
        assert!(c.closed_within(Duration::from_secs(2)));
    }
    // Malformed chunked bodies reach the mock, which answers an OpenAI-shaped 400.
    let body_cases: Vec<Vec<u8>> = vec![
        b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n".to_vec(),
        b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX"
            .to_vec(),
    ];
    for raw in &body_cases {
        let mut c = connect(m.addr());
        c.write_raw(raw).unwrap();
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(raw));
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        assert!(c.closed_within(Duration::from_secs(2)));
    }
    // Pseudo-random byte soup: any answer or a close is fine, the server must survive.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..50 {
        let mut c = connect(m.addr());
        let len = (seed % 300) as usize + 1;
        let mut raw = Vec::with_capacity(len + 4);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            raw.push((seed >> 24) as u8);
        }
        raw.extend_from_slice(b"\r\n\r\n");
        c.write_raw(&raw).unwrap();
        let _ = c.s.shutdown(std::net::Shutdown::Write);
        let _ = c.read_response(false);
    }
    // Early disconnects mid-head and mid-body.
    let mut c = connect(m.addr());
    c.write_raw(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Le")
        .unwrap();
    drop(c);
    let mut c = connect(m.addr());
    c.write_raw(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"a\"")
        .unwrap();
    drop(c);
    assert_eq!(chat(&m, &[], CHAT).status, 200);
}

#[test]
fn invalid_json_body_is_400_but_keeps_connection() {
    let m = mock();
    let mut c = connect(m.addr());
    let r = c.request("POST", "/v1/chat/completions", &[], b"{not json");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = c.request("POST", "/v1/chat/completions", &[], b"[1,2]");
    assert_eq!(r.status, 400);
    let r = c.request("POST", "/v1/chat/completions", &[], CHAT.as_bytes());
    assert_eq!(r.status, 200);
}

#[test]
fn auth_check() {
    let m = start(MockOptions {
        expected_api_key: Some("sk-test".into()),
        ..MockOptions::default()
    });
    for h in [
        vec![],
        vec![("Authorization", "Bearer nope")],
        vec![("x-api-key", "sk-tes")],
        vec![("Authorization", "sk-test")],
    ] {
        let r = chat(&m, &h, CHAT);
        assert_eq!(r.status, 401, "{h:?}");
        assert_eq!(r.json()["error"]["code"], "invalid_api_key");
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    }
    assert_eq!(req(&m, "GET", "/v1/models", &[], "").status, 401);
    for h in [
        ("Authorization", "Bearer sk-test"),
        ("authorization", "bearer sk-test"),
        ("x-api-key", "sk-test"),
        ("api-key", "sk-test"),
    ] {
        assert_eq!(chat(&m, &[h], CHAT).status, 200, "{h:?}");
    }
    assert_eq!(
        req(&m, "GET", "/v1/models", &[("api-key", "sk-test")], "").status,
        200
    );
}

// ---------------------------------------------------------------------------
// Fault modes
// ---------------------------------------------------------------------------

#[test]
fn status_mode_applies_everywhere() {
    let m = mock();
    m.set_mode(Mode::Status(503));
    assert_eq!(m.mode(), Mode::Status(503));
    for (method, path, body) in [
        ("POST", "/v1/chat/completions", CHAT),
        ("POST", "/v1/embeddings", "{}"),
        ("GET", "/v1/models", ""),
        ("GET", "/nope", ""),
    ] {
        let r = req(&m, method, path, &[], body);
        assert_eq!(r.status, 503, "{path}");
        let v = r.json();
        assert_eq!(v["error"]["type"], "server_error");
        assert!(v["error"]["message"].is_string());
    }
    m.set_mode(Mode::Status(500));
    assert_eq!(chat(&m, &[], CHAT).status, 500);
    // Per-request override beats the global mode.
    assert_eq!(chat(&m, &[("x-mock-mode", "ok")], CHAT).status, 200);
    m.set_mode(Mode::Ok);
    assert_eq!(chat(&m, &[], CHAT).status, 200);
}

#[test]
fn rate_limited_with_and_without_retry_after() {
    let m = mock();
    m.set_mode(Mode::RateLimited {
        retry_after: Some("7".into()),
    });
    let r = chat(&m, &[], CHAT);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    let r = req(&m, "GET", "/v1/models", &[], "");
    assert_eq!(r.status, 429);
    m.set_mode(Mode::RateLimited { retry_after: None });
    let r = chat(&m, &[], CHAT);
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_none());
    m.set_mode(Mode::Ok);
    let r = chat(
        &m,
        &[("x-mock-mode", "429"), ("x-mock-retry-after", "3")],
        CHAT,
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
}

#[test]
fn slow_headers() {
    let m = mock();
    m.set_mode(Mode::SlowHeaders(Duration::from_millis(300)));
    let t = Instant::now();
    assert_eq!(chat(&m, &[], CHAT).status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(270),
        "{:?}",
        t.elapsed()
    );
    m.set_mode(Mode::Ok);
    let t = Instant::now();
    assert_eq!(chat(&m, &[("x-mock-delay-ms", "200")], CHAT).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(180));
    let t = Instant::now();
    let r = chat(
        &m,
        &[("x-mock-mode", "slow"), ("x-mock-delay-ms", "150")],
        CHAT,
    );
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(135));
    assert!(t.elapsed() < Duration::from_millis(900));
}

fn assert_hangs(m: &MockProvider, headers: &[(&str, &str)], path: &str) {
    let mut c = connect(m.addr());
    c.send(
        if path.ends_with("models") {
            "GET"
        } else {
            "POST"
        },
        path,
        headers,
        CHAT.as_bytes(),
    )
    .unwrap();
    c.s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 16];
    match c.s.read(&mut b) {
        Err(e) => assert!(
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
        Ok(n) => panic!("hang mode answered / closed ({n} bytes)"),
    }
}

#[test]
fn hang_mode_never_answers() {
    let m = mock();
    m.set_mode(Mode::Hang);
    assert_hangs(&m, &[], "/v1/chat/completions");
    assert_hangs(&m, &[], "/v1/models");
    assert_eq!(m.hits(), 2);
    m.set_mode(Mode::Ok);
    assert_hangs(&m, &[("x-mock-mode", "hang")], "/v1/chat/completions");
    assert_eq!(chat(&m, &[], CHAT).status, 200);
}

fn assert_closes_mid_stream(m: &MockProvider, headers: &[(&str, &str)], expect_events: usize) {
    let r = chat(m, headers, CHAT_STREAM);
    assert_eq!(r.status, 200);
    assert!(!r.complete, "stream must end without terminating chunk");
    let data = r.sse_data();
    assert_eq!(data.len(), expect_events, "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
}

#[test]
fn close_mid_stream() {
    let m = start(MockOptions {
        chunk_interval: Duration::from_millis(5),
        ..MockOptions::default()
    });
    m.set_mode(Mode::CloseMidStream { after_chunks: 2 });
    assert_closes_mid_stream(&m, &[], 2);
    // Non-stream: full Content-Length announced, half the body, then EOF.
    let r = chat(&m, &[], CHAT);
    assert_eq!(r.status, 200);
    assert!(!r.complete);
    let announced: usize = r.header("content-length").unwrap().parse().unwrap();
    assert_eq!(r.body.len(), announced / 2);
    let r = req(&m, "GET", "/v1/models", &[], "");
    assert!(!r.complete);
    m.set_mode(Mode::CloseMidStream { after_chunks: 0 });
    assert_closes_mid_stream(&m, &[], 0);
    m.set_mode(Mode::Ok);
    assert_closes_mid_stream(&m, &[("x-mock-mode", "close")], 1);
    assert_closes_mid_stream(&m, &[("x-mock-mode", "close:3")], 3);
    // Anthropic stream too.
    let r = req(
        &m,
        "POST",
        "/v1/messages",
        &[("x-mock-mode", "close:1")],
        r#"{"stream":true}"#,
    );
    assert!(!r.complete);
    assert!(!r.sse_events().contains(&"message_stop".to_string()));
}

#[test]
fn garbage_mode() {
    let m = start(MockOptions {
        chunk_interval: Duration::ZERO,
        ..MockOptions::default()
    });
    m.set_mode(Mode::Garbage);
    let r = chat(&m, &[], CHAT_STREAM);
    assert_eq!(r.status, 200);
    assert!(r.chunks[0].1.starts_with(b"data: {"));
    assert_eq!(r.chunks[1].1, b"\x00\x01NOT SSE{{{\n");
    assert!(r.body.windows(7).any(|w| w == b"NOT SSE"));
    let r = chat(&m, &[], CHAT);
    assert_eq!(r.status, 200);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    m.set_mode(Mode::Ok);
    let r = chat(&m, &[("x-mock-mode", "garbage")], CHAT_STREAM);
    assert_eq!(r.chunks[1].1, b"\x00\x01NOT SSE{{{\n");
    assert_eq!(chat(&m, &[], CHAT).status, 200);
}

#[test]
fn reset_on_accept() {
    let m = mock();
    m.set_mode(Mode::ResetOnAccept);
    let mut c = connect(m.addr());
    // The reset may already have arrived: the write itself may fail.
    let _ = c.s.write_all(b"GET /v1/models HTTP/1.1\r\n\r\n");
    let r = c.read_response(false);
    assert!(closed_without_answer(&r), "{r:?}");
    assert_eq!(m.hits(), 0);
    assert_eq!(m.accepted_connections(), 1);
    m.set_mode(Mode::Ok);
    assert_eq!(chat(&m, &[], CHAT).status, 200);
    // Per-request reset: request is read, no answer, connection closed.
    let mut c = connect(m.addr());
    c.send(
        "POST",
        "/v1/chat/completions",
        &[("x-mock-mode", "reset")],
        CHAT.as_bytes(),
    )
    .unwrap();
    let r = c.read_response(false);
    assert!(closed_without_answer(&r), "{r:?}");
}

/// The connection ended (EOF or reset) without a response: not a read timeout, which
/// would mean the server kept the connection open instead of closing it.
fn closed_without_answer(r: &io::Result<Resp>) -> bool {
    matches!(r, Err(e) if matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    ))
}

#[test]
fn per_request_overrides() {
    let m = mock();
    let r = chat(&m, &[("x-mock-mode", "500")], CHAT);
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["type"], "server_error");
    assert_eq!(chat(&m, &[("X-Mock-Mode", "503")], CHAT).status, 503);
    for bad in [
        ("x-mock-mode", "explode"),
        ("x-mock-delay-ms", "soon"),
        ("x-mock-chunks", "-1"),
        ("x-mock-interval-ms", "x"),
    ] {
        let r = chat(&m, &[bad], CHAT);
        assert_eq!(r.status, 400, "{bad:?}");
        assert_eq!(r.json()["error"]["code"], "invalid_request");
    }
    // Overrides affect only their own request.
    assert_eq!(chat(&m, &[], CHAT).status, 200);
    // Mixed scenarios on one connection.
    let mut c = connect(m.addr());
    let a = c.request(
        "POST",
        "/v1/chat/completions",
        &[("x-mock-mode", "429")],
        CHAT.as_bytes(),
    );
    let b = c.request("POST", "/v1/chat/completions", &[], CHAT.as_bytes());
    assert_eq!((a.status, b.status), (429, 200));
}

// ---------------------------------------------------------------------------
// Listener control and observability
// ---------------------------------------------------------------------------

#[test]
fn stop_and_resume_listening() {
    let m = mock();
    let addr = m.addr();
    let mut keep = connect(addr);
    assert_eq!(keep.request("GET", "/v1/models", &[], b"").status, 200);
    m.stop_listening();
    assert!(!m.is_listening());
    let err = TcpStream::connect(addr).expect_err("connect must be refused");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    // Open connections are closed too: the provider went away.
    let mut buf = [0u8; 16];
    let _ = keep.s.set_read_timeout(Some(Duration::from_secs(2)));
    let read = io::Read::read(&mut keep.s, &mut buf);
    assert!(
        matches!(&read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
        "open connection must be closed, not left open: {read:?}"
    );
    m.stop_listening(); // idempotent
    m.resume_listening().unwrap();
    assert!(m.is_listening());
    assert_eq!(m.addr(), addr);
    assert_eq!(chat(&m, &[], CHAT).status, 200);
    m.resume_listening().unwrap(); // idempotent
                                   // And again.
    m.stop_listening();
    assert_eq!(
        TcpStream::connect(addr).map(|_| ()).unwrap_err().kind(),
        io::ErrorKind::ConnectionRefused
    );
    m.resume_listening().unwrap();
    assert_eq!(chat(&m, &[], CHAT).status, 200);
}

#[test]
fn counters_and_recording() {
    let m = mock();
    chat(&m, &[("X-Custom", "v1")], CHAT);
    req(&m, "GET", "/openai/v1/models?limit=1", &[], "");
    req(&m, "POST", "/v1/embeddings", &[], "{}");
    assert_eq!(m.hits(), 3);
    assert_eq!(m.hits_for("/chat/completions"), 1);
    assert_eq!(m.hits_for("/models"), 1);
    assert_eq!(m.hits_for("/v1/embeddings"), 1);
    assert_eq!(m.hits_for("/nothing"), 0);
    let last = m.last_request().unwrap();
    assert_eq!(last.method, "POST");
    assert_eq!(last.path, "/v1/embeddings");
    assert_eq!(last.body, b"{}");
    assert_eq!(last.header("host"), Some("test"));
    chat(&m, &[("X-Custom", "v1")], CHAT);
    let last = m.last_request().unwrap();
    assert_eq!(last.header("x-custom"), Some("v1"));
    assert_eq!(last.body, CHAT.as_bytes());
    m.reset_counters();
    assert_eq!(m.hits(), 0);
    assert_eq!(m.hits_for("/models"), 0);
    assert!(m.last_request().is_none());

    let quiet = start(MockOptions {
        record_requests: false,
        ..MockOptions::default()
    });
    chat(&quiet, &[], CHAT);
    assert_eq!(quiet.hits(), 1);
    assert!(quiet.last_request().is_none());
    quiet.set_recording(true);
    chat(&quiet, &[], CHAT);
    assert!(quiet.last_request().is_some());
}

#[test]
fn active_connections_tracks_open_sockets() {
    let m = mock();
    assert_eq!(m.active_connections(), 0);
    let mut a = connect(m.addr());
    let mut b = connect(m.addr());
    a.request("GET", "/v1/models", &[], b"");
    b.request("GET", "/v1/models", &[], b"");
    wait_for("2 active", || m.active_connections() == 2);
    drop(a);
    wait_for("1 active", || m.active_connections() == 1);
    drop(b);
    wait_for("0 active", || m.active_connections() == 0);
}

#[test]
fn many_sequential_keep_alive_requests() {
    let m = start(MockOptions {
        record_requests: false,
        ..MockOptions::default()
    });
    let mut c = connect(m.addr());
    for _ in 0..500 {
        let r = c.request("POST", "/v1/chat/completions", &[], CHAT.as_bytes());
        assert_eq!(r.status, 200);
    }
    assert_eq!(m.hits(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_on_current_runtime_and_drop_stops_listening() {
    let m = MockProvider::start(MockOptions::default()).await.unwrap();
    let addr = m.addr();
    assert_eq!(m.base_url(), format!("http://{addr}/v1"));
    let status = tokio::task::spawn_blocking(move || {
        connect(addr).request("GET", "/v1/models", &[], b"").status
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    let clone = m.clone();
    drop(m);
    assert!(clone.is_listening());
    drop(clone);
    assert_eq!(
        TcpStream::connect(addr).map(|_| ()).unwrap_err().kind(),
        io::ErrorKind::ConnectionRefused
    );
}

#[test]
fn binary_prints_address_and_exits_on_sigterm() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_berry-mock"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--models",
            "m1,m2",
            "--mode",
            "503",
            "--chunks",
            "2",
            "--interval-ms",
            "0",
            "--no-record",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .parse()
        .unwrap();
    let mut c = connect(addr);
    assert_eq!(c.request("GET", "/v1/models", &[], b"").status, 503);
    let r = c.request(
        "POST",
        "/v1/chat/completions",
        &[("x-mock-mode", "ok")],
        br#"{"stream":true}"#,
    );
    assert_eq!(r.sse_data().len(), 2 + 2);
    let r = c.request("GET", "/v1/models", &[("x-mock-mode", "ok")], b"");
    assert_eq!(r.json()["data"][1]["id"], "m2");
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("berry-mock did not exit on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
