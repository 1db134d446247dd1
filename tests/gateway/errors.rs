//! Every row of the README's error table, over real sockets against the real binary.

use crate::harness::*;
use berry_mock::Mode;

fn config(a: &str, b: &str) -> String {
    format!(
        r#"{FAST_SETTINGS}
max_request_body_bytes = 1048576
{users}
{pa}
{pb}
[models.m1]
name = "gpt-4o-mini"
[[models.m1.backends]]
provider = "a"
model = "real-mini"
[models.m2]
name = "gpt-4o"
[[models.m2.backends]]
provider = "a"
model = "real-4o"
[models.off]
name = "retired"
enabled = false
[[models.off.backends]]
provider = "a"
model = "old"
[models.tagged]
name = "tagged-only"
[[models.tagged.backends]]
provider = "b"
model = "t"
tags = ["gold"]
"#,
        users = [
            user("alice", "tok-alice", ""),
            user("bob", "tok-bob", "allowed_models = [\"gpt-4o-mini\"]"),
            user("carl", "tok-carl", "enabled = false"),
            user("dana", "tok-dana", "tags = [\"silver\"]"),
        ]
        .join("\n"),
        pa = a,
        pb = b,
    )
}

fn assert_openai_error(r: &Resp, status: u16, error_type: &str, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{status} must be JSON"
    );
    let v = r.json();
    assert_eq!(v["error"]["type"], error_type, "{}", r.text());
    assert_eq!(v["error"]["code"], code, "{}", r.text());
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(v["error"].as_object().unwrap().contains_key("param"));
}

#[test]
fn client_errors_are_openai_shaped() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&config(&provider("a", &a), &provider("b", &b)));

    // 400: malformed JSON, missing/empty/non-string/duplicate model, not an object, empty body
    for body in [
        "{not json",
        r#"{"messages":[]}"#,
        r#"{"model":""}"#,
        r#"{"model":42}"#,
        r#"{"model":"gpt-4o-mini","model":"gpt-4o"}"#,
        r#"{"model":"gpt-4o-mini","mo\u0064el":"gpt-4o"}"#,
        r#"["gpt-4o-mini"]"#,
        r#"{"model":"gpt-4o-mini"} trailing"#,
        "model=gpt-4o-mini",
    ] {
        let r = gw.post("/v1/chat/completions", "tok-alice", body);
        assert_openai_error(&r, 400, "invalid_request_error", "invalid_request");
    }
    let r = gw.post("/v1/chat/completions", "tok-alice", "");
    assert_openai_error(&r, 400, "invalid_request_error", "invalid_request");
    let bad_utf8 = request(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", "Bearer tok-alice")],
        b"{\"model\":\"gpt\xff\"}",
    );
    assert_openai_error(&bad_utf8, 400, "invalid_request_error", "invalid_request");

    // 401: missing, unknown, disabled — identical answers
    let missing = request(gw.addr, "POST", "/v1/chat/completions", &[], b"{}");
    let unknown = gw.chat("tok-nobody", "gpt-4o-mini");
    let disabled = gw.chat("tok-carl", "gpt-4o-mini");
    let via_x_api_key = request(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-api-key", "wrong")],
        b"{}",
    );
    // a known token is matched whole: longer, shorter, other case, other scheme
    let extended = gw.chat("tok-alice-2", "gpt-4o-mini");
    let truncated = gw.chat("tok-alic", "gpt-4o-mini");
    let upper = gw.chat("TOK-ALICE", "gpt-4o-mini");
    let basic = request(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", "Basic tok-alice")],
        br#"{"model":"gpt-4o-mini","messages":[]}"#,
    );
    let disabled_x_api_key = request(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-api-key", "tok-carl")],
        br#"{"model":"gpt-4o-mini","messages":[]}"#,
    );
    // every header but the per-request id and the clock (`Date` moves on between requests)
    let head = |r: &Resp| {
        let mut h: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(n, _)| {
                !n.eq_ignore_ascii_case("x-request-id") && !n.eq_ignore_ascii_case("date")
            })
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        h.sort();
        h
    };
    for r in [
        &missing,
        &unknown,
        &disabled,
        &via_x_api_key,
        &extended,
        &truncated,
        &upper,
        &basic,
        &disabled_x_api_key,
    ] {
        assert_openai_error(r, 401, "authentication_error", "invalid_api_key");
        assert_eq!(r.body, missing.body, "401 bodies must not differ");
        assert_eq!(head(r), head(&missing), "401 headers must not differ");
        assert!(r.header("date").is_some(), "{:?}", r.headers);
    }

    // 403: model not allowed for this user
    let r = gw.chat("tok-bob", "gpt-4o");
    assert_openai_error(&r, 403, "permission_error", "model_not_allowed");
    assert_eq!(gw.chat("tok-bob", "gpt-4o-mini").status, 200);

    // 404: unknown or disabled model
    assert_openai_error(
        &gw.chat("tok-alice", "no-such-model"),
        404,
        "invalid_request_error",
        "model_not_found",
    );
    assert_openai_error(
        &gw.chat("tok-alice", "retired"),
        404,
        "invalid_request_error",
        "model_not_found",
    );

    // 503: no backend this user may reach (tag filter leaves nothing)
    assert_openai_error(
        &gw.chat("tok-dana", "tagged-only"),
        503,
        "upstream_error",
        "no_available_backend",
    );

    // unknown endpoint and wrong method
    assert_eq!(gw.get("/v2/nothing", None).status, 404);
    let r = gw.get("/v1/chat/completions", Some("tok-alice"));
    assert_eq!(r.status, 405);
    assert_eq!(r.error_code(), "method_not_allowed");
    assert_eq!(
        a.hits_for("/chat/completions"),
        1,
        "only the admitted request went upstream"
    );
    assert_eq!(b.hits_for("/chat/completions"), 0);
}

#[test]
fn oversized_bodies_get_413_without_forwarding() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&config(&provider("a", &a), &provider("b", &b)));
    // Declared length over the limit: refused before reading the body.
    let big = vec![b'x'; 40 * 1024 * 1024];
    let r = request(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", "Bearer tok-alice")],
        &big,
    );
    assert_openai_error(&r, 413, "invalid_request_error", "request_too_large");
    // Chunked body that grows over the limit while being read.
    let mut body = Vec::new();
    for _ in 0..20 {
        body.extend_from_slice(format!("{:x}\r\n", 100 * 1024).as_bytes());
        body.extend_from_slice(&vec![b' '; 100 * 1024]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let r = request(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Authorization", "Bearer tok-alice"),
            ("Transfer-Encoding", "chunked"),
        ],
        &body,
    );
    assert_openai_error(&r, 413, "invalid_request_error", "request_too_large");
    assert_eq!(a.hits_for("/chat/completions"), 0);
}

#[test]
fn upstream_failures_map_to_502_504_or_pass_through() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&config(&provider("a", &a), &provider("b", &b)));

    // the only backend answers 500: its status and body pass through
    a.set_mode(Mode::Status(500));
    let r = gw.chat("tok-alice", "gpt-4o-mini");
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        r.json()["error"]["type"],
        "server_error",
        "mock's body passes through"
    );

    // the only backend answers 200 with a body that is not JSON: never a success. The mock
    // writes the head and the whole garbage body at once, so the gateway sees the garbage
    // before it writes the response head: a 502 every time, never a cut connection.
    a.set_mode(Mode::Garbage);
    for i in 0..20 {
        let body = r#"{"model":"gpt-4o-mini","messages":[]}"#;
        let r = try_request(
            gw.addr,
            "POST",
            "/v1/chat/completions",
            &[("Authorization", "Bearer tok-alice")],
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("request {i}: connection failed ({e}) instead of a 502"));
        assert_openai_error(&r, 502, "upstream_error", "upstream_invalid_response");
        assert!(!r.text().contains("NOT JSON"), "{}", r.text());
    }

    // the only backend hangs: 504 within the attempt timeout (2 s), never unbounded
    a.set_mode(Mode::Hang);
    let t0 = std::time::Instant::now();
    let r = gw.chat("tok-alice", "gpt-4o");
    assert_openai_error(&r, 504, "upstream_error", "upstream_timeout");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );

    // the only backend refuses connections: 502
    a.set_mode(Mode::Ok);
    a.stop_listening();
    let r = gw.chat("tok-alice", "gpt-4o");
    assert_openai_error(&r, 502, "upstream_error", "upstream_error");
}
