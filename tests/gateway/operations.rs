//! Prometheus metrics, token usage, access log, user rate limits, admin API, and
//! no secret in any output.

use crate::harness::*;
use berry_mock::Mode;
use std::collections::HashMap;

/// One parsed sample: metric name, sorted labels, value.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

/// Parses Prometheus text exposition format strictly enough to catch malformed output:
/// every sample line is `name{label="value",...} number`, every family has HELP and TYPE.
fn parse_prometheus(text: &str) -> Samples {
    let mut samples = Samples::new();
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut helped = std::collections::HashSet::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (head, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), Vec::new()),
            Some((n, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("bad labels: {line}"));
                (n.to_string(), parse_labels(body, line))
            }
        };
        assert!(
            name.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(&name)
            .to_string();
        assert!(typed.contains_key(&family), "sample before TYPE: {line}");
        assert!(helped.contains(&family), "no HELP for {family}");
        let mut labels = labels;
        labels.sort();
        samples.insert((name, labels), value);
    }
    samples
}

fn parse_labels(body: &str, line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(
            chars.next(),
            Some('"'),
            "label value must be quoted: {line}"
        );
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => value.push(chars.next().unwrap_or('\\')),
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        }
        out.push((key, value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

/// Sum of the samples of `name` whose labels include all of `want`.
fn sum(samples: &Samples, name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|((n, labels), _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, v)| *v)
        .sum()
}

/// Scrapes /metrics until `ready` holds (metrics are recorded when a request's logging
/// phase runs, just after the client got its last byte), at most 3 s.
fn scrape_until(gw: &Gateway, ready: impl Fn(&Samples) -> bool) -> (String, Samples) {
    let mut last = (String::new(), Samples::new());
    wait_until(std::time::Duration::from_secs(3), || {
        let text = gw.metrics_text();
        let s = parse_prometheus(&text);
        let ok = ready(&s);
        last = (text, s);
        ok
    });
    last
}

fn ops_config(
    a: &berry_mock::MockProvider,
    b: &berry_mock::MockProvider,
    extra_settings: &str,
) -> String {
    format!(
        r#"{FAST_SETTINGS}
admin_token = "adm-SECRET-admin-token"
{extra_settings}
[users.alice]
token = "tok-SECRET-alice"
[users.limited]
token = "tok-SECRET-limited"
allowed_models = ["chat"]
[users.limited.rate_limit]
requests_per_minute = 3
[providers.a]
base_url = "{au}"
api_key = "sk-SECRET-provider-a"
[providers.a.headers]
"OpenAI-Organization" = "org-SECRET-header"
[providers.b]
base_url = "{bu}"
api_key = "sk-SECRET-provider-b"
[models.chat]
name = "chat"
strategy = "failover"
[[models.chat.backends]]
provider = "a"
model = "real-a"
priority = 1
[[models.chat.backends]]
provider = "b"
model = "real-b"
priority = 2
[models.solo]
name = "solo"
[[models.solo.backends]]
provider = "b"
model = "real-solo"
"#,
        au = a.base_url(),
        bu = b.base_url(),
    )
}

const ALICE: &str = "tok-SECRET-alice";

#[test]
fn metrics_parse_and_move_with_every_outcome_and_count_tokens() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&ops_config(
        &a,
        &b,
        &format!("metrics_listen = \"{METRICS_LISTEN_ANY}\""),
    ));
    // let the start-up health checks land first
    settle(&gw, &[&a, &b]);
    let mut input = 0u64;
    let mut output = 0u64;
    // successes, non-stream and stream, with the usage the client saw
    for _ in 0..3 {
        let v = gw.chat(ALICE, "chat").json();
        input += v["usage"]["prompt_tokens"].as_u64().unwrap();
        output += v["usage"]["completion_tokens"].as_u64().unwrap();
    }
    let body = r#"{"model":"chat","stream":true,"stream_options":{"include_usage":true}}"#;
    let r = gw.post("/v1/chat/completions", ALICE, body);
    let usage: serde_json::Value = r
        .sse_data()
        .iter()
        .filter(|d| d.contains("\"usage\""))
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .next_back()
        .unwrap();
    input += usage["usage"]["prompt_tokens"].as_u64().unwrap();
    output += usage["usage"]["completion_tokens"].as_u64().unwrap();
    // refusals
    assert_eq!(gw.chat("tok-wrong", "chat").status, 401);
    assert_eq!(gw.chat(ALICE, "nope").status, 404);
    // a retry (a: 500 → b) and a pass-through 500 on the single-backend model
    a.set_mode(Mode::Status(500));
    assert_eq!(gw.chat(ALICE, "chat").status, 200);
    b.set_mode(Mode::Status(500));
    assert_eq!(gw.chat(ALICE, "solo").status, 500);
    a.set_mode(Mode::Ok);
    b.set_mode(Mode::Ok);

    // (a request is counted before its in-flight gauge drops, both after its last byte)
    let (text, s) = scrape_until(&gw, |s| {
        sum(s, "berry_requests_total", &[]) >= 8.0 && sum(s, "berry_inflight_requests", &[]) == 0.0
    });
    let req = |user: &str, model: &str, code: &str| {
        sum(
            &s,
            "berry_requests_total",
            &[("user", user), ("model", model), ("code", code)],
        )
    };
    assert_eq!(req("alice", "chat", "200"), 5.0, "{text}");
    assert_eq!(req("-", "-", "401"), 1.0, "{text}");
    assert_eq!(req("alice", "-", "404"), 1.0);
    assert_eq!(req("alice", "solo", "500"), 1.0);
    assert_eq!(sum(&s, "berry_retries_total", &[("model", "chat")]), 1.0);
    let attempts = |backend: &str, outcome: &str| {
        sum(
            &s,
            "berry_upstream_attempts_total",
            &[("backend", backend), ("outcome", outcome)],
        )
    };
    assert_eq!(attempts("chat/a/real-a", "success"), 4.0);
    assert_eq!(attempts("chat/a/real-a", "http_5xx"), 1.0);
    assert_eq!(attempts("chat/b/real-b", "success"), 1.0);
    assert_eq!(attempts("solo/b/real-solo", "http_5xx"), 1.0);
    let tokens = |kind: &str| {
        sum(
            &s,
            "berry_tokens_total",
            &[("user", "alice"), ("type", kind)],
        )
    };
    // the retried request (served by b) also reported usage
    assert!(
        tokens("input") > input as f64 && tokens("output") > output as f64,
        "{text}"
    );
    assert_eq!(
        sum(
            &s,
            "berry_tokens_total",
            &[("provider", "a"), ("type", "input")]
        ),
        input as f64,
        "input tokens of a: client saw {input}"
    );
    assert_eq!(
        sum(
            &s,
            "berry_tokens_total",
            &[("provider", "a"), ("type", "output")]
        ),
        output as f64
    );
    for family in [
        "berry_request_duration_seconds_count",
        "berry_time_to_first_byte_seconds_count",
        "berry_gateway_overhead_seconds_count",
        "gen_ai_server_request_duration_seconds_count",
        "gen_ai_server_time_to_first_token_seconds_count",
        "gen_ai_client_token_usage_count",
    ] {
        assert!(sum(&s, family, &[]) >= 5.0, "{family} in\n{text}");
    }
    assert_eq!(
        sum(
            &s,
            "gen_ai_client_token_usage_sum",
            &[
                ("gen_ai_token_type", "input"),
                ("gen_ai_request_model", "chat")
            ]
        ),
        sum(
            &s,
            "berry_tokens_total",
            &[("model", "chat"), ("type", "input")]
        )
    );
    assert_eq!(
        sum(&s, "berry_backend_up", &[("backend", "chat/a/real-a")]),
        1.0
    );
    assert_eq!(
        sum(&s, "berry_circuit_state", &[("backend", "chat/a/real-a")]),
        0.0
    );
    assert!(
        sum(
            &s,
            "berry_backend_confidence",
            &[("backend", "chat/b/real-b")]
        ) > 0.0
    );
    assert!(
        sum(
            &s,
            "berry_backend_latency_ewma_seconds",
            &[("backend", "chat/a/real-a")]
        ) > 0.0
    );
    assert!(
        sum(
            &s,
            "berry_health_checks_total",
            &[("provider", "a"), ("result", "success")]
        ) >= 1.0
    );
    assert_eq!(
        sum(
            &s,
            "berry_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(sum(&s, "berry_inflight_requests", &[]), 0.0);
    // no request ids or tokens as label values
    assert!(!text.contains("tok-") && !text.contains("request_id"));

    // scraped from the separate metrics listener; the client listener does not serve it
    assert_ne!(gw.metrics_addr, gw.addr);
    assert_eq!(gw.get("/metrics", None).status, 404);
}

#[test]
fn metrics_leave_the_client_listener_when_metrics_listen_is_set() {
    let a = mock("a");
    let b = mock("b");
    let cfg = ops_config(
        &a,
        &b,
        &format!("metrics_listen = \"{METRICS_LISTEN_ANY}\""),
    );
    let gw = Gateway::start(&cfg);
    let metrics_ip: std::net::SocketAddr = METRICS_LISTEN_ANY.parse().unwrap();
    assert_eq!(gw.metrics_addr.ip(), metrics_ip.ip());
    assert_ne!(gw.metrics_addr.port(), 0);
    // the client listener answers it like any unknown route, in the client's error shape
    for (method, token) in [
        ("GET", None),
        ("GET", Some(ALICE)),
        ("HEAD", None),
        ("POST", None),
    ] {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let r = request(gw.addr, method, "/metrics", &headers, b"");
        assert_eq!(r.status, 404, "{method} /metrics: {}", r.text());
        if method != "HEAD" {
            assert_eq!(r.error_code(), "not_found");
            assert!(!r.text().contains("berry_"), "{}", r.text());
        }
    }
    let r = gw.metrics();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("berry_build_info"));
    // without metrics_listen the client listener serves it
    drop(gw);
    let gw = Gateway::start(&ops_config(&a, &b, ""));
    assert_eq!(gw.metrics_addr, gw.addr);
    let r = gw.get("/metrics", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("berry_build_info"));
}

#[test]
fn stream_include_usage_setting_makes_streams_report_usage() {
    let a = mock("a");
    let b = mock("b");
    let cfg = ops_config(&a, &b, "stream_include_usage = true").replace(
        "health_check_interval_seconds = 0.5",
        "health_check_interval_seconds = 3600",
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&a, &b]);
    let r = gw.chat_stream(ALICE, "chat");
    let sent: serde_json::Value = serde_json::from_slice(&a.last_request().unwrap().body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    // the usage chunk the client did not ask for is the gateway's alone
    assert!(!r.sse_data().iter().any(|d| d.contains("\"usage\":{")));
    let (_, s) = scrape_until(&gw, |s| {
        sum(s, "berry_tokens_total", &[("type", "output")]) >= 5.0
    });
    assert!(sum(&s, "berry_tokens_total", &[("type", "output")]) >= 5.0);
    // a client cannot switch usage off: the backend is asked for it anyway
    gw.post(
        "/v1/chat/completions",
        ALICE,
        r#"{"model":"chat","stream":true,"stream_options":{"include_usage":false}}"#,
    );
    let sent: serde_json::Value = serde_json::from_slice(&a.last_request().unwrap().body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    // the insertion is byte-exact, with or without a `stream_options` object already there
    for (client, upstream) in [
        (
            r#"{"model":"chat","stream":true}"#,
            r#"{"model":"real-a","stream":true,"stream_options":{"include_usage":true}}"#,
        ),
        (
            r#"{"model":"chat","stream":true,"stream_options":{}}"#,
            r#"{"model":"real-a","stream":true,"stream_options":{"include_usage":true}}"#,
        ),
        (
            r#"{"stream_options":{ "x":1 },"stream":true,"model":"chat"}"#,
            r#"{"stream_options":{"include_usage":true, "x":1 },"stream":true,"model":"real-a"}"#,
        ),
        // not a stream: left alone
        (r#"{"model":"chat"}"#, r#"{"model":"real-a"}"#),
    ] {
        let r = gw.post("/v1/chat/completions", ALICE, client);
        assert_eq!(r.status, 200, "{client}: {}", r.text());
        let sent = a.last_request().unwrap().body;
        assert_eq!(std::str::from_utf8(&sent).unwrap(), upstream, "{client}");
        if client.contains("\"stream\":true") {
            assert!(
                !r.sse_data().iter().any(|d| d.contains("\"usage\":{")),
                "{client}: {}",
                r.text()
            );
            assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
        }
    }
}

#[test]
fn user_rate_limit_boundaries() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&ops_config(&a, &b, ""));
    let limited = "tok-SECRET-limited";
    // refused requests do not consume quota
    for _ in 0..5 {
        assert_eq!(gw.chat(limited, "solo").status, 403);
        assert_eq!(gw.chat(limited, "missing").status, 404);
        assert_eq!(gw.post("/v1/chat/completions", limited, "{bad").status, 400);
    }
    for i in 0..3 {
        assert_eq!(
            gw.chat(limited, "chat").status,
            200,
            "request {i} within quota"
        );
    }
    let r = gw.chat(limited, "chat");
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert_eq!(r.error_code(), "user_rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    // other users are not affected; the refusal went nowhere upstream
    assert_eq!(gw.chat(ALICE, "chat").status, 200);
    assert_eq!(a.hits_for("/chat/completions"), 4);
    let s = parse_prometheus(&gw.metrics_text());
    assert_eq!(
        sum(
            &s,
            "berry_user_rate_limited_total",
            &[("user", "limited"), ("window", "minute")]
        ),
        1.0
    );
}

#[test]
fn admin_api_needs_the_admin_token() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&ops_config(&a, &b, ""));
    for path in ["/admin/backends", "/admin/config"] {
        assert_eq!(gw.get(path, None).status, 401);
        assert_eq!(
            gw.get(path, Some(ALICE)).status,
            401,
            "a user token is not an admin token"
        );
        let r = gw.get(path, Some("adm-SECRET-admin-token"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let backends = gw
        .get("/admin/backends", Some("adm-SECRET-admin-token"))
        .json();
    let list = backends["backends"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    for key in [
        "circuit",
        "cooldown_remaining_seconds",
        "latency_ewma_ms",
        "inflight",
        "confidence",
        "available",
    ] {
        assert!(list[0].get(key).is_some(), "missing {key}");
    }
    let config = gw
        .get("/admin/config", Some("adm-SECRET-admin-token"))
        .json();
    assert_eq!(config["models"].as_array().unwrap().len(), 2);
    assert_eq!(config["settings"]["admin_api"], true);
}

#[test]
fn metrics_auth_protects_metrics() {
    let a = mock("a");
    let b = mock("b");
    let gw = Gateway::start(&ops_config(&a, &b, "metrics_auth = true"));
    assert_eq!(gw.get("/metrics", None).status, 401);
    assert_eq!(gw.get("/metrics", Some(ALICE)).status, 401);
    assert_eq!(
        gw.get("/metrics", Some("adm-SECRET-admin-token")).status,
        200
    );
}

#[test]
fn no_secret_in_logs_metrics_health_admin_or_errors() {
    let a = mock("a");
    let b = mock("b");
    let cfg = ops_config(&a, &b, "stream_include_usage = true");
    let mut gw = Gateway::start_with(&cfg, "toml", &[], &[("RUST_LOG", "debug")]);
    // every kind of request, with every secret in play
    let mut outputs = vec![
        gw.chat(ALICE, "chat").text(),
        gw.chat_stream(ALICE, "chat").text(),
        gw.chat("tok-SECRET-client-typo", "chat").text(),
        gw.chat("tok-SECRET-limited", "solo").text(),
        gw.chat(ALICE, "nope").text(),
    ];
    a.set_mode(Mode::Status(500));
    outputs.push(gw.chat(ALICE, "chat").text());
    b.set_mode(Mode::RateLimited {
        retry_after: Some("1".into()),
    });
    outputs.push(gw.chat(ALICE, "solo").text());
    a.stop_listening();
    b.stop_listening();
    outputs.push(gw.chat(ALICE, "chat").text());
    outputs.push(gw.chat_stream(ALICE, "solo").text());
    for _ in 0..4 {
        outputs.push(gw.chat("tok-SECRET-limited", "chat").text());
    }
    // a failing health check round of both providers (logged as such)
    assert!(
        wait_until(std::time::Duration::from_secs(5), || {
            let text = gw.metrics_text();
            ["a", "b"].iter().all(|p| {
                metric_in(
                    &text,
                    "berry_health_checks_total",
                    &[("provider", p), ("result", "failure")],
                ) >= 1.0
            })
        }),
        "no failing health check round"
    );
    outputs.push(gw.metrics_text());
    outputs.push(gw.get("/health", None).text());
    outputs.push(gw.get("/v1/models", Some(ALICE)).text());
    outputs.push(
        gw.get("/admin/backends", Some("adm-SECRET-admin-token"))
            .text(),
    );
    outputs.push(
        gw.get("/admin/config", Some("adm-SECRET-admin-token"))
            .text(),
    );
    outputs.push(
        gw.get("/admin/backends", Some("tok-SECRET-wrong-admin"))
            .text(),
    );
    let log = gw.stop();
    assert!(log.contains("berry::access"), "access log present");
    assert!(log.len() > 1000, "debug log captured");
    outputs.push(log);
    for (i, out) in outputs.iter().enumerate() {
        assert!(!out.contains("SECRET"), "output {i} leaks a secret:\n{out}");
    }
}

#[test]
fn access_log_has_one_line_per_request() {
    let a = mock("a");
    let b = mock("b");
    let mut gw = Gateway::start(&ops_config(&a, &b, ""));
    let r = request(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Authorization", &format!("Bearer {ALICE}")),
            ("x-request-id", "trace-me-1"),
        ],
        br#"{"model":"chat","messages":[]}"#,
    );
    assert_eq!(r.status, 200);
    gw.chat("tok-wrong", "chat");
    let log = gw.stop();
    let line = log
        .lines()
        .find(|l| l.contains("request_id=trace-me-1"))
        .unwrap_or_else(|| panic!("no access line:\n{log}"));
    for part in [
        "user=alice",
        "model=chat",
        "backend=chat/a/real-a",
        "status=200",
        "attempts=1",
        "ttfb_ms=",
        "duration_ms=",
        "tokens_in=",
        "tokens_out=5",
        "outcome=success",
    ] {
        assert!(line.contains(part), "`{part}` missing in: {line}");
    }
    assert_eq!(log.matches("request_id=trace-me-1").count(), 1);
    assert!(log
        .lines()
        .any(|l| l.contains("berry::access") && l.contains("status=401")));
}
