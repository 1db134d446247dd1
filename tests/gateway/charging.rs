//! Every request is charged: a client cannot switch usage off, and a stream the client
//! abandons still counts its tokens (exactly where the backend already reported them, else
//! estimated), its upstream connection closed at once.

use crate::harness::*;
use berry_mock::MockProvider;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One OpenAI-family provider `a` and one Anthropic provider `an` (both steerable), users
/// `u0`..`u3` with a 60-token minute budget, user `free` without limits. Model and backend
/// names have equal lengths so the forwarded body is as long as the client's.
fn config(a: &MockProvider, an: &MockProvider) -> String {
    let mut users = String::new();
    for i in 0..4 {
        users.push_str(&format!(
            "[users.u{i}]\ntoken = \"tok{i}\"\n[users.u{i}.rate_limit]\ntokens_per_minute = 60\n"
        ));
    }
    format!(
        "{settings}\n{users}[users.free]\ntoken = \"tok-free\"\n{p}\n[providers.an]\nbase_url = \"{an_url}\"\napi_key = \"k\"\nbackend_type = \"anthropic\"\n{MOCK_STEERING}\n[models.m]\nname = \"model-x\"\n[[models.m.backends]]\nprovider = \"a\"\nmodel = \"real-x\"\n[models.c]\nname = \"claude-x\"\n[[models.c.backends]]\nprovider = \"an\"\nmodel = \"claude-r\"\n",
        settings = quiet_settings(),
        p = steered_provider("a", a),
        an_url = an.base_url(),
    )
}

fn stream_body(stream_options: Option<&str>) -> String {
    let opts = stream_options.map_or(String::new(), |o| format!(r#","stream_options":{o}"#));
    format!(
        r#"{{"model":"model-x","stream":true{opts},"messages":[{{"role":"user","content":"hi"}}]}}"#
    )
}

/// Whether a stream carries a usage-only chunk (`"choices":[]` with a usage object).
fn has_usage_chunk(r: &Resp) -> bool {
    r.sse_data().iter().any(|d| {
        serde_json::from_str::<serde_json::Value>(d).is_ok_and(|v| {
            v["choices"].as_array().is_some_and(|c| c.is_empty()) && v["usage"].is_object()
        })
    })
}

#[test]
fn a_client_cannot_switch_usage_off() {
    let (a, an) = (mock("a"), mock("an"));
    a.set_recording(true);
    let gw = Gateway::start(&config(&a, &an));
    settle(&gw, &[&a, &an]);
    for (i, opts) in [r#"{"include_usage":false}"#, "null", r#""off""#, "[true]"]
        .iter()
        .enumerate()
    {
        let (user, token) = (format!("u{i}"), format!("tok{i}"));
        let mut admitted = 0;
        let refused = loop {
            let r = gw.post("/v1/chat/completions", &token, &stream_body(Some(opts)));
            if r.status != 200 {
                break r;
            }
            admitted += 1;
            assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
            assert!(!has_usage_chunk(&r), "{opts}: usage chunk not asked for");
            // the backend was asked for usage whatever the client sent
            let sent = a.last_request().unwrap();
            let sent: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
            assert_eq!(sent["stream_options"]["include_usage"], true, "{opts}");
            assert!(
                wait_until(Duration::from_secs(2), || metric(
                    &gw,
                    "berry_tokens_total",
                    &[("user", &user), ("type", "output")]
                ) >= admitted as f64),
                "{opts}: tokens counted"
            );
            assert!(admitted < 40, "{opts}: the token budget never ran out");
        };
        assert_eq!(refused.status, 429, "{opts}: {}", refused.text());
        assert_eq!(refused.error_code(), "user_token_budget_exceeded");
    }
    // a client that asks for usage still gets its usage chunk
    let r = gw.post(
        "/v1/chat/completions",
        "tok-free",
        &stream_body(Some(r#"{"include_usage":true}"#)),
    );
    assert_eq!(r.status, 200);
    assert!(has_usage_chunk(&r), "{}", r.text());
    // a client that did not mention it gets none, and is charged
    let before = metric(&gw, "berry_tokens_total", &[("user", "free")]);
    let r = gw.post("/v1/chat/completions", "tok-free", &stream_body(None));
    assert_eq!(r.status, 200);
    assert!(!has_usage_chunk(&r), "{}", r.text());
    assert!(wait_until(Duration::from_secs(2), || metric(
        &gw,
        "berry_tokens_total",
        &[("user", "free")]
    ) > before));
}

/// Sends `body` to `path` on a raw connection and returns the reader once the first
/// `data:` line of a content event arrived (the rest of the stream is never read).
fn read_first_chunk(gw: &Gateway, path: &str, body: &str, extra: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer tok-free\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream ended early");
        if line.starts_with("data:") && (line.contains("delta")) {
            return r;
        }
    }
}

/// Waits until `m`'s open connections are back to `baseline`; fails if that takes as long
/// as the stream would have run.
fn assert_upstream_closed(m: &MockProvider, baseline: usize, stream_lasts: Duration) {
    let started = Instant::now();
    assert!(
        wait_until(stream_lasts, || m.active_connections() <= baseline),
        "upstream connection still open ({} > {baseline})",
        m.active_connections()
    );
    assert!(started.elapsed() < stream_lasts);
}

const SLOW: &str = "x-mock-chunks: 60\r\nx-mock-interval-ms: 100\r\n";

#[test]
fn an_abandoned_openai_stream_is_charged_an_estimate() {
    let (a, an) = (mock("a"), mock("an"));
    let mut gw = Gateway::start(&config(&a, &an));
    settle(&gw, &[&a, &an]);
    let baseline = a.active_connections();
    let body = stream_body(None);
    let r = read_first_chunk(&gw, "/v1/chat/completions", &body, SLOW);
    assert!(a.active_connections() > baseline, "stream in progress");
    drop(r);
    assert_upstream_closed(&a, baseline, Duration::from_secs(5));
    let counted = |kind: &str| {
        metric(
            &gw,
            "berry_tokens_total",
            &[("user", "free"), ("type", kind)],
        )
    };
    assert!(wait_until(Duration::from_secs(3), || counted("output") >= 1.0));
    // the prompt estimate: the request body's bytes / 4
    assert_eq!(counted("input"), (body.len() / 4) as f64);
    let log = gw.stop();
    let line = log
        .lines()
        .find(|l| l.contains("berry::access") && l.contains("user=free"))
        .unwrap_or_else(|| panic!("no access line:\n{log}"));
    assert!(line.contains("estimated=true"), "{line}");
    assert!(line.contains("status=200"), "{line}");
}

#[test]
fn an_abandoned_anthropic_stream_is_charged_its_reported_input() {
    let (a, an) = (mock("a"), mock("an"));
    let mut gw = Gateway::start(&config(&a, &an));
    settle(&gw, &[&a, &an]);
    let baseline = an.active_connections();
    let body = r#"{"model":"claude-x","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hello there"}]}"#;
    let r = read_first_chunk(&gw, "/v1/messages", body, SLOW);
    drop(r);
    assert_upstream_closed(&an, baseline, Duration::from_secs(5));
    let counted = |kind: &str| {
        metric(
            &gw,
            "berry_tokens_total",
            &[("user", "free"), ("type", kind)],
        )
    };
    assert!(wait_until(Duration::from_secs(3), || counted("input") > 0.0));
    // exact: what the mock's `message_start` reported (its prompt is body bytes / 4 + 1)
    assert_eq!(counted("input"), (body.len() / 4 + 1) as f64);
    assert!(counted("output") >= 1.0);
    let log = gw.stop();
    assert!(
        log.lines()
            .any(|l| l.contains("berry::access") && l.contains("user=free")),
        "{log}"
    );
}

#[test]
fn translated_streams_are_charged_and_keep_their_own_usage_events() {
    let (a, an) = (mock("a"), mock("an"));
    let gw = Gateway::start(&config(&a, &an));
    settle(&gw, &[&a, &an]);
    let tokens = || metric(&gw, "berry_tokens_total", &[("user", "free")]);
    // a chat client on an Anthropic backend: a usage chunk only when it asked
    for (opts, usage_chunk) in [
        (r#"{"include_usage":false}"#, false),
        (r#"{"include_usage":true}"#, true),
    ] {
        let before = tokens();
        let body = stream_body(Some(opts)).replace("model-x", "claude-x");
        let r = gw.post("/v1/chat/completions", "tok-free", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(has_usage_chunk(&r), usage_chunk, "{opts}: {}", r.text());
        assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
        assert!(
            wait_until(Duration::from_secs(2), || tokens() > before),
            "{opts}"
        );
    }
    // a Messages client on an OpenAI-family backend: its usage in `message_delta`
    let before = tokens();
    let r = gw.post(
        "/v1/messages",
        "tok-free",
        r#"{"model":"model-x","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("message_delta") && r.text().contains("output_tokens"));
    assert!(wait_until(Duration::from_secs(2), || tokens() > before));
}

#[test]
fn an_abandoned_translated_stream_is_charged_an_estimate() {
    let (a, an) = (mock("a"), mock("an"));
    let mut gw = Gateway::start(&config(&a, &an));
    settle(&gw, &[&a, &an]);
    let baseline = a.active_connections();
    // a Messages client on an OpenAI-family backend, whose usage would come last
    let body = r#"{"model":"model-x","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hello there"}]}"#;
    drop(read_first_chunk(&gw, "/v1/messages", body, SLOW));
    assert_upstream_closed(&a, baseline, Duration::from_secs(5));
    let counted = |kind: &str| {
        metric(
            &gw,
            "berry_tokens_total",
            &[("user", "free"), ("type", kind)],
        )
    };
    assert!(wait_until(Duration::from_secs(3), || counted("output") >= 1.0));
    assert_eq!(counted("input"), (body.len() / 4) as f64);
    let log = gw.stop();
    assert!(
        log.lines().any(|l| l.contains("berry::access")
            && l.contains("user=free")
            && l.contains("estimated=true")),
        "{log}"
    );
}

// ---------------------------------------------------------------------------------------
// The Python SDKs, charged exactly what the provider reported
// ---------------------------------------------------------------------------------------

/// Every request carries its own `x-request-id`; the body bytes each request sent are
/// recorded (an abandoned OpenAI-dialect stream's prompt is estimated from them).
const SDK_SCRIPT: &str = r#"
import json, os
import httpx
from openai import OpenAI
from anthropic import Anthropic

sent = {}
def record(request):
    sent[request.headers.get("x-request-id")] = len(request.content)

def http():
    return httpx.Client(event_hooks={"request": [record]})

base = os.environ["BASE_URL"]
oa = OpenAI(base_url=base + "/v1", api_key=os.environ["TOKEN"], max_retries=0, http_client=http())
an = Anthropic(base_url=base, api_key=os.environ["TOKEN"], max_retries=0, http_client=http())
msgs = [{"role": "user", "content": "How much does this cost?"}]
CACHED = {"x-mock-cache-read": "40"}
AN_CACHED = {"x-mock-cache-read": "1000", "x-mock-cache-write": "200"}
SLOW = {"x-mock-chunks": "60", "x-mock-interval-ms": "100"}

def h(rid, extra=None):
    return {"x-request-id": rid, **(extra or {})}

oa.chat.completions.create(model="g", messages=msgs, extra_headers=h("oa-json"))
oa.chat.completions.create(model="g", messages=msgs, extra_headers=h("oa-json-cached", CACHED))
for rid, opts, extra in [("oa-sse", {"include_usage": True}, None),
                         ("oa-sse-quiet", None, None),
                         ("oa-sse-cached", {"include_usage": True}, CACHED)]:
    kw = {"stream_options": opts} if opts else {}
    for _ in oa.chat.completions.create(model="g", messages=msgs, stream=True,
                                        extra_headers=h(rid, extra), **kw):
        pass
s = oa.chat.completions.create(model="g", messages=msgs, stream=True,
                               extra_headers=h("oa-sse-abandoned", SLOW))
for chunk in s:
    if chunk.choices and chunk.choices[0].delta.content:
        break
s.close()

an.messages.create(model="c", max_tokens=64, messages=msgs, extra_headers=h("an-json"))
an.messages.create(model="c", max_tokens=64, messages=msgs,
                   extra_headers=h("an-json-cached", AN_CACHED))
for rid, extra in [("an-sse", None), ("an-sse-cached", AN_CACHED)]:
    with an.messages.stream(model="c", max_tokens=64, messages=msgs,
                            extra_headers=h(rid, extra)) as st:
        st.get_final_message()
with an.messages.stream(model="c", max_tokens=64, messages=msgs,
                        extra_headers=h("an-sse-abandoned", {**SLOW, **AN_CACHED})) as st:
    for text in st.text_stream:
        break

print(json.dumps({"sent": sent}))
"#;

/// (input, output, cache_read, cache_write) USD per million of `gpt-tapped`.
const GPT_PRICE: (f64, f64, f64, f64) = (2.0, 8.0, 0.5, 2.0);
/// The same of `claude-tapped`.
const CLAUDE_PRICE: (f64, f64, f64, f64) = (3.0, 15.0, 0.3, 3.75);

#[test]
fn the_python_sdks_are_charged_what_the_provider_reported() {
    use crate::usage_tap::{access_lines, Tap, Usage};
    let Some(python) = crate::sdk::sdk_python() else {
        return;
    };
    let m = mock("m");
    let tap = Tap::start(m.addr());
    let cfg = format!(
        "{settings}\n{user}\n[providers.oa]\nbase_url = \"{url}\"\napi_key = \"k\"\n{MOCK_STEERING}\n\
         [providers.an]\nbase_url = \"{url}\"\napi_key = \"k\"\nbackend_type = \"anthropic\"\n{MOCK_STEERING}\n\
         [prices.gpt-tapped]\ninput = 2\noutput = 8\ncache_read = 0.5\ncache_write = 2\n\
         [prices.claude-tapped]\ninput = 3\noutput = 15\ncache_read = 0.3\ncache_write = 3.75\n\
         [models.g]\nname = \"g\"\n[[models.g.backends]]\nprovider = \"oa\"\nmodel = \"gpt-tapped\"\n\
         [models.c]\nname = \"c\"\n[[models.c.backends]]\nprovider = \"an\"\nmodel = \"claude-tapped\"\n",
        settings = quiet_settings(),
        user = user("sdk", "sdk-token", ""),
        url = tap.base_url(),
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&m, &m]);
    let v = crate::sdk::run_script(
        &python,
        "charging",
        SDK_SCRIPT,
        &format!("http://{}", gw.addr),
        &[],
    );
    let ids = [
        "oa-json",
        "oa-json-cached",
        "oa-sse",
        "oa-sse-quiet",
        "oa-sse-cached",
        "oa-sse-abandoned",
        "an-json",
        "an-json-cached",
        "an-sse",
        "an-sse-cached",
        "an-sse-abandoned",
    ];
    let logged = |id: &str| {
        access_lines(&gw.log())
            .into_iter()
            .find(|a| a.request_id == id)
    };
    assert!(
        wait_until(Duration::from_secs(10), || ids
            .iter()
            .all(|id| logged(id).is_some())),
        "access lines missing:\n{}",
        gw.log()
    );

    let (mut gpt, mut claude) = (Usage::default(), Usage::default());
    for id in ids {
        let a = logged(id).unwrap();
        let call = tap.exchange(id);
        let (price, sum) = if id.starts_with("oa") {
            (GPT_PRICE, &mut gpt)
        } else {
            (CLAUDE_PRICE, &mut claude)
        };
        let charged = if id.ends_with("abandoned") {
            assert!(!call.complete, "{id}: upstream cut short: {call:?}");
            assert!(a.estimated, "{id}: {a:?}");
            // the output: the streamed text the gateway passed on / 4, at least 1
            assert!(
                a.tokens_out >= 1 && a.tokens_out <= (call.text_bytes / 4) as u64,
                "{id}: {a:?}, {} text bytes upstream",
                call.text_bytes
            );
            let reported = call.usage.unwrap_or_default();
            if id.starts_with("oa") {
                // nothing reported before the end: the prompt estimated from the body
                assert_eq!(reported, Usage::default(), "{id}");
                let sent = v["sent"][id].as_u64().unwrap();
                assert_eq!(a.tokens_in, sent / 4, "{id}: {sent} body bytes");
            } else {
                // `message_start` reported the prompt and its cache use: they stand
                assert_eq!((reported.cache_read, reported.cache_write), (1000, 200));
                assert_eq!(a.tokens_in, reported.input, "{id}");
            }
            Usage {
                input: a.tokens_in,
                output: a.tokens_out,
                ..reported
            }
        } else {
            assert!(call.complete && !a.estimated, "{id}: {call:?} {a:?}");
            let reported = call
                .usage
                .unwrap_or_else(|| panic!("{id}: no usage: {call:?}"));
            assert_eq!(
                (a.tokens_in, a.tokens_out),
                (reported.input, reported.output),
                "{id}"
            );
            reported
        };
        let want_cache = match id {
            "oa-json-cached" | "oa-sse-cached" => (40, 0),
            "an-json-cached" | "an-sse-cached" | "an-sse-abandoned" => (1000, 200),
            _ => (0, 0),
        };
        assert_eq!(
            (charged.cache_read, charged.cache_write),
            want_cache,
            "{id}"
        );
        assert!(charged.input > 0 && charged.output > 0, "{id}: {charged:?}");
        assert_eq!(a.cost_usd, format!("{:.6}", charged.cost(price)), "{id}");
        *sum = sum.add(&charged);
    }

    let text = gw.metrics_text();
    for (model, provider, sum, price, backend) in [
        ("g", "oa", gpt, GPT_PRICE, "g/oa/gpt-tapped"),
        ("c", "an", claude, CLAUDE_PRICE, "c/an/claude-tapped"),
    ] {
        let t = |kind: &str| {
            metric_in(
                &text,
                "berry_tokens_total",
                &[
                    ("user", "sdk"),
                    ("model", model),
                    ("provider", provider),
                    ("type", kind),
                ],
            ) as u64
        };
        let metered = Usage {
            input: t("input"),
            output: t("output"),
            cache_read: t("cache_read"),
            cache_write: t("cache_write"),
        };
        assert_eq!(metered, sum, "{model}");
        let cost = metric_in(
            &text,
            "berry_cost_usd_total",
            &[("user", "sdk"), ("model", model), ("backend", backend)],
        );
        assert!(
            (cost - sum.cost(price)).abs() < 1e-9,
            "{model}: berry_cost_usd_total {cost} != {}",
            sum.cost(price)
        );
    }
}
