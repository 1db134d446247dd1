//! Lying upstreams: stream faults (no terminal event, cut mid-event, in-band errors,
//! heartbeats, preamble then failure) in every streaming dialect, provider rate-limit
//! and account headers, a 401 that quotes the key, and the OpenAI tool-call / cached
//! token answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may fail loudly

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use berry_mock::{MockOptions, Mode, PreambleEnd, RateLimitHeaders};
use serde_json::{json, Value};
use support::{events, mock, names, p_of, post, req, start, Resp, VERSION};

const CHAT: &str = r#"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#;
const CHAT_STREAM: &str = r#"{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
const LEGACY_STREAM: &str = r#"{"model":"davinci","prompt":"x","stream":true}"#;
const MSG_STREAM: &str = r#"{"model":"claude-test","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

fn chat(m: &berry_mock::MockProvider, mode: &str) -> Resp {
    post(
        m,
        "/v1/chat/completions",
        &[("x-mock-mode", mode), ("x-mock-chunks", "3")],
        CHAT_STREAM,
    )
}

fn messages(m: &berry_mock::MockProvider, mode: &str) -> Resp {
    post(
        m,
        "/v1/messages",
        &[VERSION, ("x-mock-mode", mode), ("x-mock-chunks", "3")],
        MSG_STREAM,
    )
}

fn data(r: &Resp) -> Vec<String> {
    events(r).into_iter().map(|e| e.data).collect()
}

#[test]
fn unterminated_streams_end_cleanly_without_terminal_event() {
    let m = mock();
    let r = chat(&m, "unterminated");
    assert_eq!(r.status, 200);
    assert!(r.complete, "the HTTP body ends properly");
    let d = data(&r);
    assert_eq!(d.len(), 3 + 1 + 1, "{d:?}");
    let fin: Value = serde_json::from_str(&d[3]).unwrap();
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    assert!(d[4].contains("\"usage\""));
    assert!(!d.iter().any(|x| x == "[DONE]"));

    let r = post(
        &m,
        "/v1/completions",
        &[("x-mock-mode", "unterminated")],
        LEGACY_STREAM,
    );
    assert!(r.complete);
    assert!(!data(&r).iter().any(|x| x == "[DONE]"));
    assert_eq!(data(&r).len(), 5 + 1);

    let r = messages(&m, "unterminated");
    assert!(r.complete);
    let evs = events(&r);
    assert_eq!(names(&evs).last(), Some(&"message_delta"));
    assert!(!names(&evs).contains(&"message_stop"));

    // Non-streamed answers are normal.
    let r = post(
        &m,
        "/v1/chat/completions",
        &[("x-mock-mode", "unterminated")],
        CHAT,
    );
    assert_eq!(r.json()["object"], "chat.completion");
}

#[test]
fn cut_closes_in_the_middle_of_a_data_line() {
    let m = mock();
    let r = chat(&m, "cut:2");
    assert_eq!(r.status, 200);
    assert!(!r.complete, "no terminating chunk");
    assert_eq!(data(&r).len(), 2, "two whole events before the cut");
    let last = &r.chunks.last().unwrap().1;
    assert!(
        last.starts_with(b"data: {\"id\":"),
        "{:?}",
        String::from_utf8_lossy(last)
    );
    assert!(!last.contains(&b'\n'), "the cut is inside the data line");
    assert!(serde_json::from_slice::<Value>(&last[6..]).is_err());

    let r = messages(&m, "cut");
    assert!(!r.complete);
    assert_eq!(
        names(&events(&r)),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta"
        ]
    );
    let last = String::from_utf8_lossy(&r.chunks.last().unwrap().1).into_owned();
    assert!(
        last.starts_with("event: content_block_delta\ndata: {"),
        "{last:?}"
    );
    assert!(!last.ends_with('\n'));

    // Past the content: the finish chunk is the one cut.
    let r = chat(&m, "cut:9");
    assert!(!r.complete);
    assert_eq!(data(&r).len(), 3);
    let last = String::from_utf8_lossy(&r.chunks.last().unwrap().1).into_owned();
    assert!(
        last.starts_with("data: {") && !last.contains("[DONE]"),
        "{last:?}"
    );

    // Non-streamed: like close, half the announced body.
    let r = post(&m, "/v1/chat/completions", &[("x-mock-mode", "cut")], CHAT);
    assert!(!r.complete);
    let announced: usize = r.header("content-length").unwrap().parse().unwrap();
    assert_eq!(r.body.len(), announced / 2);
}

#[test]
fn in_band_error_events() {
    let m = mock();
    let r = chat(&m, "error-event:1");
    assert_eq!(r.status, 200);
    assert!(r.complete);
    let d = data(&r);
    assert_eq!(d.len(), 2, "{d:?}");
    let content: Value = serde_json::from_str(&d[0]).unwrap();
    assert_eq!(content["choices"][0]["delta"]["content"], "tok0 ");
    let err: Value = serde_json::from_str(&d[1]).unwrap();
    assert_eq!(err["error"]["type"], "server_error");
    assert!(err["error"]["message"].is_string());

    let r = chat(&m, "error-event:0");
    assert_eq!(data(&r).len(), 1);
    let r = post(
        &m,
        "/v1/completions",
        &[("x-mock-mode", "error-event")],
        LEGACY_STREAM,
    );
    assert!(data(&r)[1].starts_with("{\"error\":"));

    m.set_mode(Mode::ErrorEvent { after_chunks: 0 });
    let r = post(&m, "/v1/messages", &[VERSION], MSG_STREAM);
    assert!(r.complete);
    let evs = events(&r);
    assert_eq!(
        names(&evs),
        ["message_start", "content_block_start", "ping", "error"]
    );
    assert_eq!(evs[3].json()["error"]["type"], "overloaded_error");
}

#[test]
fn heartbeats_between_events() {
    let m = mock();
    let r = chat(&m, "heartbeat");
    assert!(r.complete);
    let chunks: Vec<String> = r
        .chunks
        .iter()
        .map(|(_, c)| String::from_utf8_lossy(c).into_owned())
        .collect();
    // Six events (3 content, finish, usage, [DONE]), each after a comment and an
    // empty data line, each its own chunk.
    assert_eq!(chunks.len(), 6 * 3, "{chunks:?}");
    for triple in chunks.chunks(3) {
        assert_eq!(triple[0], ": ping\n\n");
        assert_eq!(triple[1], "data:\n\n");
        assert!(triple[2].starts_with("data: "), "{triple:?}");
    }
    let real: Vec<String> = data(&r).into_iter().filter(|d| !d.is_empty()).collect();
    assert_eq!(real.len(), 6);
    assert_eq!(real.last().unwrap(), "[DONE]");

    let r = messages(&m, "heartbeat");
    assert!(r.complete);
    assert!(r
        .text()
        .starts_with(": ping\n\ndata:\n\nevent: message_start\n"));
    let evs = events(&r);
    let named: Vec<&str> = names(&evs).into_iter().filter(|n| !n.is_empty()).collect();
    assert_eq!(named.len(), 9);
    assert_eq!(named.last(), Some(&"message_stop"));
}

#[test]
fn preamble_then_error_or_cut() {
    let m = mock();
    let r = chat(&m, "preamble");
    assert_eq!(r.status, 200);
    assert!(r.complete);
    let d = data(&r);
    assert_eq!(d.len(), 2, "{d:?}");
    let first: Value = serde_json::from_str(&d[0]).unwrap();
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert!(d[1].starts_with("{\"error\":"));

    let r = chat(&m, "preamble:cut");
    assert!(!r.complete);
    assert_eq!(data(&r).len(), 1);

    let r = post(
        &m,
        "/v1/completions",
        &[("x-mock-mode", "preamble:error")],
        LEGACY_STREAM,
    );
    let first: Value = serde_json::from_str(&data(&r)[0]).unwrap();
    assert_eq!(first["choices"][0]["text"], "");

    let r = messages(&m, "preamble:error");
    assert!(r.complete);
    let evs = events(&r);
    assert_eq!(names(&evs), ["message_start", "ping", "error"]);
    assert_eq!(evs[2].json()["error"]["message"], "Overloaded");

    m.set_mode(Mode::Preamble(PreambleEnd::Cut));
    let r = post(&m, "/v1/messages", &[VERSION], MSG_STREAM);
    assert!(!r.complete);
    assert_eq!(names(&events(&r)), ["message_start", "ping"]);
    // Non-streamed answers are normal.
    let r = post(&m, "/v1/chat/completions", &[], CHAT);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["choices"][0]["finish_reason"], "stop");
}

/// Unix seconds of an RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` instant.
fn unix_of(s: &str) -> u64 {
    let n = |a: usize, b: usize| s[a..b].parse::<u64>().unwrap();
    assert_eq!((s.len(), &s[10..11], &s[19..]), (20, "T", "Z"), "{s}");
    let (y, mo, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (y, mo) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * mo + 2) / 5 + d - 719_469;
    days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)
}

#[test]
fn provider_rate_limit_headers() {
    let m = mock();
    let r = post(
        &m,
        "/v1/chat/completions",
        &[("x-mock-mode", "limits:requests:6m0s")],
        CHAT,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["object"], "chat.completion");
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(r.header("x-ratelimit-reset-requests"), Some("6m0s"));
    assert_ne!(r.header("x-ratelimit-remaining-tokens"), Some("0"));
    assert!(r.header("x-ratelimit-limit-requests").is_some());

    let r = post(
        &m,
        "/v1/chat/completions",
        &[("x-mock-mode", "limits:tokens")],
        CHAT_STREAM,
    );
    assert!(r.complete);
    assert_eq!(r.header("x-ratelimit-remaining-tokens"), Some("0"));
    assert_eq!(r.header("x-ratelimit-reset-tokens"), Some("20ms"));
    assert_ne!(r.header("x-ratelimit-remaining-requests"), Some("0"));

    let r = post(
        &m,
        "/v1/chat/completions",
        &[("x-mock-mode", "limits:retry-after-ms:1500")],
        CHAT,
    );
    assert_eq!(r.header("retry-after-ms"), Some("1500"));

    // Anthropic: anthropic-ratelimit-* with RFC 3339 resets.
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = post(
        &m,
        "/v1/messages",
        &[VERSION, ("x-mock-limits", "requests:2s")],
        MSG_STREAM,
    );
    assert!(r.complete);
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    assert!(r.header("x-ratelimit-remaining-requests").is_none());
    let reset = unix_of(r.header("anthropic-ratelimit-requests-reset").unwrap());
    assert!(
        reset >= before + 2 && reset <= before + 4,
        "{reset} vs {before}"
    );
    assert_ne!(r.header("anthropic-ratelimit-tokens-remaining"), Some("0"));

    // The header override also decorates errors, e.g. a 429.
    let r = post(
        &m,
        "/v1/chat/completions",
        &[("x-mock-mode", "429:1"), ("x-mock-limits", "tokens:1s")],
        CHAT,
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("x-ratelimit-remaining-tokens"), Some("0"));
    assert_eq!(r.header("x-ratelimit-reset-tokens"), Some("1s"));

    // Set on the mock: every endpoint, /models included.
    m.set_mode(Mode::RateLimitHeaders(RateLimitHeaders::Requests {
        reset: "1s".into(),
    }));
    let r = req(&m, "GET", "/v1/models", &[], "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ratelimit-reset-requests"), Some("1s"));
}

const ACCOUNT: [&str; 4] = [
    "openai-organization",
    "openai-project",
    "anthropic-organization-id",
    "set-cookie",
];

#[test]
fn account_headers_when_asked() {
    let m = mock();
    let r = post(&m, "/v1/chat/completions", &[], CHAT);
    for h in ACCOUNT {
        assert!(r.header(h).is_none(), "{h} without asking");
    }
    let r = post(
        &m,
        "/v1/chat/completions",
        &[("x-mock-mode", "account")],
        CHAT,
    );
    assert_eq!(r.status, 200);
    for h in ACCOUNT {
        assert!(r.header(h).is_some(), "{h}");
    }

    let m = start(MockOptions {
        account_headers: true,
        expected_api_key: Some("k".into()),
        ..MockOptions::default()
    });
    let key = ("x-api-key", "k");
    let answers = [
        post(&m, "/v1/chat/completions", &[key], CHAT),
        post(&m, "/v1/chat/completions", &[key], CHAT_STREAM),
        post(&m, "/v1/messages", &[key, VERSION], MSG_STREAM),
        post(&m, "/v1/chat/completions", &[], CHAT),
        post(
            &m,
            "/v1/chat/completions",
            &[key, ("x-mock-mode", "429")],
            CHAT,
        ),
        req(&m, "GET", "/v1/nothing", &[key], ""),
        post(&m, "/v1/chat/completions", &[key], "{not json"),
        post(
            &m,
            "/v1/chat/completions",
            &[key, ("x-mock-chunks", "x")],
            CHAT,
        ),
        post(
            &m,
            "/v1/chat/completions",
            &[("content-length", "100000000")],
            "",
        ),
    ];
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 401, 429, 404, 400, 400, 413]);
    for r in &answers {
        assert_eq!(r.header("openai-organization"), Some("org-mock-account"));
        for h in ACCOUNT {
            assert!(r.header(h).is_some(), "{h} on a {}", r.status);
        }
    }
}

#[test]
fn rejected_key_is_quoted_like_openai() {
    let m = start(MockOptions {
        expected_api_key: Some("sk-abcdefghijklmnopwxyz".into()),
        ..MockOptions::default()
    });
    let good = ("authorization", "Bearer sk-abcdefghijklmnopwxyz");
    assert_eq!(post(&m, "/v1/chat/completions", &[good], CHAT).status, 200);
    let r = post(
        &m,
        "/v1/chat/completions",
        &[good, ("x-mock-mode", "bad-key")],
        CHAT,
    );
    assert_eq!(r.status, 401);
    let v = r.json();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Incorrect API key provided: sk-abc*"),
        "{msg}"
    );
    assert!(msg.contains("*wxyz."), "{msg}");
    assert!(!msg.contains("sk-abcdefghijklmnopwxyz"), "{msg}");
    let r = post(
        &m,
        "/v1/chat/completions",
        &[("api-key", "short"), ("x-mock-mode", "bad-key")],
        CHAT,
    );
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains(": short."));

    m.set_mode(Mode::KeyRejected);
    let r = post(
        &m,
        "/v1/messages",
        &[VERSION, ("x-api-key", "sk-ant-123456789")],
        MSG_STREAM,
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
    );
    let r = post(
        &m,
        "/openai/deployments/d/chat/completions?api-version=1",
        &[("api-key", "sk-abcdefghijklmnopwxyz")],
        CHAT,
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "401");
}

#[test]
fn openai_tool_calls_and_cached_tokens() {
    let m = mock();
    let body = |stream: bool, choice: Value| {
        json!({
            "model": "gpt-test",
            "stream": stream,
            "messages": [{"role": "user", "content": "weather?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
                "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]
            }}}],
            "tool_choice": choice
        })
        .to_string()
    };
    let v = post(
        &m,
        "/v1/chat/completions",
        &[],
        &body(false, json!("required")),
    )
    .json();
    let msg = &v["choices"][0]["message"];
    assert!(msg["content"].is_null());
    let call = &msg["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "mock"}));
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let v = post(&m, "/v1/chat/completions", &[], &body(false, json!("auto"))).json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    let named = json!({"type": "function", "function": {"name": "get_weather"}});
    let r = post(
        &m,
        "/v1/chat/completions",
        &[
            ("x-mock-chunks", "3"),
            ("x-mock-tool-input", r#"{"city":"Paris"}"#),
        ],
        &body(true, named),
    );
    assert!(r.complete);
    let d = data(&r);
    assert_eq!(d.len(), 3 + 1 + 1, "{d:?}");
    let first: Value = serde_json::from_str(&d[0]).unwrap();
    let delta = &first["choices"][0]["delta"];
    assert_eq!(delta["role"], "assistant");
    assert_eq!(delta["tool_calls"][0]["function"]["name"], "get_weather");
    assert!(delta["tool_calls"][0]["id"].is_string());
    let args: String = d[..3]
        .iter()
        .map(|c| {
            let v: Value = serde_json::from_str(c).unwrap();
            let tc = &v["choices"][0]["delta"]["tool_calls"][0];
            assert_eq!(tc["index"], 0);
            tc["function"]["arguments"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "Paris"})
    );
    let fin: Value = serde_json::from_str(&d[3]).unwrap();
    assert_eq!(fin["choices"][0]["finish_reason"], "tool_calls");

    // Cached prompt tokens.
    let r = post(
        &m,
        "/v1/chat/completions",
        &[("x-mock-cache-read", "40")],
        CHAT,
    );
    let u = &r.json()["usage"];
    assert_eq!(u["prompt_tokens"], p_of(CHAT) + 40);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 40);
    assert_eq!(u["total_tokens"], p_of(CHAT) + 40 + 5);
    let r = post(&m, "/v1/chat/completions", &[], CHAT);
    assert!(r.json()["usage"].get("prompt_tokens_details").is_none());
}

#[test]
fn binary_takes_the_new_flags_and_modes() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_berry-mock"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--mode",
            "limits:tokens:1s",
            "--require-anthropic-version",
            "--account-headers",
            "--interval-ms",
            "0",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .parse()
        .unwrap();
    let mut c = support::Client::connect(addr).unwrap();
    let r = c.request("POST", "/v1/messages", &[], MSG_STREAM.as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"]["message"],
        "anthropic-version: header is required"
    );
    assert!(r.header("set-cookie").is_some());
    let r = c.request("POST", "/v1/messages", &[VERSION], MSG_STREAM.as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.header("anthropic-ratelimit-tokens-remaining"), Some("0"));
    assert!(r.header("anthropic-organization-id").is_some());
    let _ = child.kill();
    let _ = child.wait();
}
