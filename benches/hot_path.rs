//! The gateway's per-request hot path, measured through the crate's public API (targets:
//! "selection + auth + body-model rewrite < 2 µs per request", O(1) in models and users,
//! "reload of a 1,000-model config < 50 ms").
//!
//! Groups (criterion ids are `group/function[/parameter]`):
//!
//! * `auth` — `client_token` + `Users::authenticate_index` (SHA-256 of the token, hash-map
//!   lookup, constant-time compare) with 10 and 1,000 users.
//! * `body_1KiB`, `body_1KiB_stream`, `body_64KiB` — `body::scan` of a realistic chat
//!   request (934 bytes) and of a padded 64 KiB one, scan + splice of the real model name
//!   (`body::apply_edits`, plus the `include_usage` insertion for streams), and a
//!   `serde_json::Value` parse for reference.
//! * `select_4_backends` — `ModelRoute::select` with the gateway's own `eligible` filter
//!   (`proxy::upstream::eligible`) for every strategy on a model with 4 backends, and
//!   `ModelRoute::select_session` for a request with a session key (`session_key`).
//! * `per_request` — everything the gateway does per request before it talks to the upstream
//!   except I/O: token extraction, authentication, `proxy::request::validate_request` (scan, model
//!   lookup, permission, quota), `select`, and `proxy::request::attempt_body` (splice).
//!   Measured for 10 / 1,000 models × 10 / 1,000 users, cycling through 256 pre-built
//!   requests spread over the users and models (so larger tables are not flattered by a hot
//!   cache line), plus variants for a user with a rate limit and for a streaming request
//!   with `stream_include_usage` (two edits). Not included: metrics, access log, Pingora.
//! * `sse_openai_50_events`, `json_4k_body` — the response-side usage observers
//!   (`usage::SseScanner`, `usage::JsonUsageScanner`) on a 50-event stream and a 4 KB reply.
//! * `translate` — dialect translation: an Anthropic 50-event stream to OpenAI chunks and an
//!   OpenAI 50-event stream to Anthropic events (per-event throughput; target < 2 µs per
//!   event), a 4 KiB non-stream answer each way (target < 20 µs), and a 1 KiB OpenAI chat
//!   request to Anthropic.
//! * `reload_1000_models` — `config::load_str` and `Snapshot::build` (fresh and carrying
//!   state over from the previous snapshot, as a reload does) for 1,000 models × 4 backends
//!   and 1,000 users; once with providers that list their models (the validator checks every
//!   backend against that list) and once without; plus the TOML parse alone, for the split.
//!
//! Run (about 3 minutes plus the build; a noisy machine shows up as wide confidence
//! intervals, so compare runs with care):
//!
//! ```text
//! cargo bench --bench hot_path -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! A filter runs a subset, e.g. `cargo bench --bench hot_path -- per_request`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may fail loudly

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;

use berry_gateway::auth::client_token;
use berry_gateway::body::{apply_edits, include_usage_edit, json_string_literal, scan, Edit};
use berry_gateway::config::{load_str, Config, Format};
use berry_gateway::proxy::ctx::Operation;
use berry_gateway::proxy::request::{attempt_body, validate_request};
use berry_gateway::proxy::upstream::eligible;
use berry_gateway::routing::SelectInput;
use berry_gateway::snapshot::Snapshot;
use berry_gateway::usage::{JsonUsageScanner, SseScanner};
use berry_gateway::vocab::TokenUsage;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Strategies benchmarked in `select_4_backends` (config spelling).
const STRATEGIES: [&str; 8] = [
    "weighted_random",
    "round_robin",
    "random",
    "least_latency",
    "failover",
    "weighted_failover",
    "least_connections",
    "smart_ai",
];

/// Backends per model (typical: a few provider accounts per model).
const BACKENDS: usize = 4;

/// How the generated config is shaped.
struct Shape {
    models: usize,
    users: usize,
    /// Strategy of model `i`.
    strategy: fn(usize) -> &'static str,
    /// Providers list the real models they serve (the validator checks each backend).
    list_models: bool,
    /// Give user 0 a (never reached) rate limit.
    rate_limited_user0: bool,
}

fn model_name(i: usize) -> String {
    format!("model-{i:04}")
}

fn real_model(i: usize) -> String {
    format!("real-model-{i:04}-2024-08-06")
}

/// A realistic, fixed-length client token for user `i`.
fn token(i: usize) -> String {
    format!("sk-berry-{i:06}-7f3a9c2e5b8d4f1a6c0e9b3d7a2f5c8e")
}

/// Config text: `BACKENDS` providers, `models` models (each with one backend per provider,
/// distinct weights and priorities), `users` users without tag or model restrictions.
fn config_text(shape: &Shape) -> String {
    let mut t = String::with_capacity(400 * shape.models + 150 * shape.users + 4096);
    t.push_str("[settings]\nstream_include_usage = true\n\n");
    for p in 0..BACKENDS {
        let _ = writeln!(
            t,
            "[providers.acct-{p}]\nname = \"Account {p}\"\nbase_url = \"http://127.0.0.{}:8{p}00/v1\"\napi_key = \"sk-provider-key-{p}-0123456789abcdef\"",
            p + 1
        );
        if shape.list_models {
            t.push_str("models = [");
            for m in 0..shape.models {
                let _ = write!(t, "\"{}\",", real_model(m));
            }
            t.push_str("]\n");
        }
        t.push('\n');
    }
    for u in 0..shape.users {
        let _ = writeln!(
            t,
            "[users.user-{u:04}]\nname = \"Team {u}\"\ntoken = \"{}\"\nallowed_models = []",
            token(u)
        );
        if u == 0 && shape.rate_limited_user0 {
            t.push_str("[users.user-0000.rate_limit]\nrequests_per_minute = 1000000000\nrequests_per_hour = 1000000000\n");
        }
        t.push('\n');
    }
    for m in 0..shape.models {
        let _ = writeln!(
            t,
            "[models.m{m:04}]\nname = \"{}\"\nstrategy = \"{}\"",
            model_name(m),
            (shape.strategy)(m)
        );
        for p in 0..BACKENDS {
            let _ = writeln!(
                t,
                "[[models.m{m:04}.backends]]\nprovider = \"acct-{p}\"\nmodel = \"{}\"\nweight = {}\npriority = {}",
                real_model(m),
                (BACKENDS - p) as f64 / 10.0,
                p + 1
            );
        }
        t.push('\n');
    }
    t
}

fn config(shape: &Shape) -> Config {
    load_str(&config_text(shape), Format::Toml, &|_| None).expect("bench config is valid")
}

fn snapshot(shape: &Shape) -> Snapshot {
    Snapshot::build(&config(shape), None, 1).expect("bench snapshot builds")
}

/// A realistic OpenAI chat completion request of about 1 KiB for `model`.
fn chat_1k(model: &str, stream: bool) -> Vec<u8> {
    let body = format!(
        concat!(
            r#"{{"model":"{model}","messages":["#,
            r#"{{"role":"system","content":"You are a helpful assistant for the platform team. Answer concisely, use Markdown, and cite the internal runbook section when relevant."}},"#,
            r#"{{"role":"user","content":"Our nginx ingress returns 502 for about 1% of requests after the last deploy. Where should I start looking?"}},"#,
            r#"{{"role":"assistant","content":"Start with the upstream side: check whether the pods were restarted (readiness probe failures), then compare the ingress error log timestamps with the deploy. A 502 usually means the upstream closed the connection or refused it \u2014 keep-alive timeouts shorter than nginx's are a classic cause."}},"#,
            r#"{{"role":"user","content":"The app uses keepalive_timeout 5s and nginx uses 60s. Could that be it? Please give me the exact config change."}}"#,
            r#"],"temperature":0.2,"top_p":1,"max_tokens":800,"presence_penalty":0,"frequency_penalty":0,"user":"team-platform","stream":{stream}}}"#
        ),
        model = model,
        stream = stream
    );
    body.into_bytes()
}

/// A chat body with a system prompt and alternating user/assistant turns, padded until it is
/// at least `target` bytes. Contents contain escapes (`\n`, `\"`, `\u00e9`) and raw non-ASCII.
fn chat_body_padded(target: usize) -> Vec<u8> {
    let mut messages = String::from(
        r#"{"role":"system","content":"You are a helpful assistant.\nAnswer concisely and cite sources when possible."}"#,
    );
    let turns = [
        r#"{"role":"user","content":"Can you explain what a \"reverse proxy\" does? Keep it short \u2014 two paragraphs max."}"#,
        r#"{"role":"assistant","content":"A reverse proxy sits in front of servers and forwards client requests to them.\n\nIt can terminate TLS, balance load, cache responses and enforce auth \u00e9t\u00e9 — caf\u00e9 ☕."}"#,
    ];
    let mut k = 0;
    while messages.len() + 200 < target {
        messages.push(',');
        messages.push_str(turns[k % 2]);
        k += 1;
    }
    format!(
        "{{\"model\":\"gpt-4o-mini\",\"messages\":[{messages}],\"temperature\":0.7,\"max_tokens\":512,\"user\":\"user-1234\",\"stream\":true}}"
    )
    .into_bytes()
}

/// Scan, then splice the real model name and (for streams) the `include_usage` flag.
fn rewrite(body: &[u8], model_literal: &[u8]) -> Vec<u8> {
    let s = scan(body).expect("bench body is valid");
    let model = Edit {
        range: s.model_span.clone(),
        bytes: model_literal,
    };
    match include_usage_edit(&s) {
        Some(usage) => apply_edits(body, &mut [model, usage]),
        None => apply_edits(body, &mut [model]),
    }
}

// ------------------------------------------------------------------------------------------
// auth
// ------------------------------------------------------------------------------------------

fn bench_auth(c: &mut Criterion) {
    let mut g = c.benchmark_group("auth");
    for users in [10, 1000] {
        let snap = snapshot(&Shape {
            models: 10,
            users,
            strategy: |_| "weighted_random",
            list_models: false,
            rate_limited_user0: false,
        });
        // 256 `Authorization` headers spread over all users.
        let headers: Vec<Vec<u8>> = (0..256)
            .map(|k| format!("Bearer {}", token((k * 7919) % users)).into_bytes())
            .collect();
        for h in &headers {
            let t = client_token(Some(h.as_slice()), None).expect("bearer token");
            assert!(snap.users.authenticate_index(t).is_some());
        }
        let mut k = 0usize;
        g.bench_with_input(
            BenchmarkId::new("authenticate_index", format!("{users}_users")),
            &headers,
            |b, headers| {
                b.iter(|| {
                    k = (k + 1) & 255;
                    let t = client_token(Some(black_box(headers[k].as_slice())), None);
                    snap.users.authenticate_index(t.unwrap_or_default())
                })
            },
        );
        if users == 1000 {
            let bad = b"Bearer sk-berry-unknown-7f3a9c2e5b8d4f1a6c0e9b3d7a2f5c8e".to_vec();
            g.bench_function("unknown_token/1000_users", |b| {
                b.iter(|| {
                    let t = client_token(Some(black_box(bad.as_slice())), None);
                    snap.users.authenticate_index(t.unwrap_or_default())
                })
            });
        }
    }
    g.finish();
}

// ------------------------------------------------------------------------------------------
// body scan + splice
// ------------------------------------------------------------------------------------------

fn bench_body(c: &mut Criterion) {
    let literal = json_string_literal("gpt-4o-mini-2024-07-18");
    let cases = [
        ("body_1KiB", chat_1k("gpt-4o-mini", false)),
        ("body_1KiB_stream", chat_1k("gpt-4o-mini", true)),
        ("body_64KiB", chat_body_padded(64 * 1024)),
    ];
    for (name, body) in cases {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(body.len() as u64));
        eprintln!("{name}: {} bytes", body.len());
        if name != "body_1KiB_stream" {
            g.bench_function("scan", |b| b.iter(|| scan(black_box(&body))));
        }
        g.bench_function("scan+splice", |b| {
            b.iter(|| rewrite(black_box(&body), black_box(literal.as_bytes())))
        });
        if name != "body_1KiB_stream" {
            g.bench_function("serde_json_Value_reference", |b| {
                b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)))
            });
        }
        g.finish();
    }
}

// ------------------------------------------------------------------------------------------
// select
// ------------------------------------------------------------------------------------------

fn bench_select(c: &mut Criterion) {
    let snap = snapshot(&Shape {
        models: STRATEGIES.len(),
        users: 1,
        strategy: |i| STRATEGIES[i],
        list_models: false,
        rate_limited_user0: false,
    });
    let now = 10_000;
    // Give the backends some history so least_latency / least_connections / smart_ai rank
    // real numbers instead of taking their "never measured" shortcut.
    for m in &snap.table.models {
        for (i, b) in m.backends.iter().enumerate() {
            b.state.observe_ttfb_ms(120.0 + 15.0 * i as f64);
            for _ in 0..i {
                b.state.begin_request();
            }
        }
    }
    let tried: &[usize] = &[];
    let mut rng = fastrand::Rng::with_seed(42);
    let mut g = c.benchmark_group("select_4_backends");
    for (mi, name) in STRATEGIES.iter().enumerate() {
        let model = &snap.table.models[mi];
        assert_eq!(model.strategy.as_str(), *name);
        assert_eq!(model.backends.len(), BACKENDS);
        let body = Bytes::from(format!(r#"{{"model":"{}","messages":[]}}"#, model.name));
        let user = Arc::clone(&snap.users.users[0]);
        let req = validate_request(Operation::Chat, body, user, &snap).expect("a valid request");
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut input = SelectInput {
                    now_ms: black_box(now),
                    rng: &mut rng,
                    table: &snap.table,
                };
                model.select(&mut input, |i, be| eligible(&req, tried, model, i, be))
            })
        });
    }
    // A request with a session key: rendezvous ranking of the 4 backends (the session's
    // move is looked up at admission, not here).
    let model = &snap.table.models[0];
    let body = Bytes::from(format!(r#"{{"model":"{}","messages":[]}}"#, model.name));
    let user = Arc::clone(&snap.users.users[0]);
    let req = validate_request(Operation::Chat, body, user, &snap).expect("a valid request");
    let key = berry_gateway::body::SessionKey::of(b"bench-session");
    g.bench_function("session_key", |b| {
        b.iter(|| {
            let mut input = SelectInput {
                now_ms: black_box(now),
                rng: &mut rng,
                table: &snap.table,
            };
            let mut session = berry_gateway::routing::Session {
                key,
                ..Default::default()
            };
            model.select_session(&mut input, &mut session, |i, be| {
                eligible(&req, tried, model, i, be)
            })
        })
    });
    g.finish();
}

// ------------------------------------------------------------------------------------------
// per request: auth + admit (scan, lookup, policy) + select + splice
// ------------------------------------------------------------------------------------------

/// One pre-built request: its `Authorization` header and body.
struct Req {
    authorization: Vec<u8>,
    body: Bytes,
}

/// What the gateway computes per request before talking to the upstream (no I/O, no
/// metrics): returns the body to send upstream.
#[inline]
fn per_request(
    snap: &Snapshot,
    tried: &[usize],
    req: &Req,
    rng: &mut fastrand::Rng,
    now: u64,
) -> Bytes {
    let token = client_token(Some(req.authorization.as_slice()), None).expect("token");
    let user = snap.users.authenticate(token).expect("known user");
    let admitted = match validate_request(Operation::Chat, req.body.clone(), Arc::clone(user), snap)
    {
        Ok(r) => r,
        Err(e) => panic!("request refused: {e:?}"),
    };
    // The user's limits in this process (`quota::admit_user` without shared state completes in
    // its first poll); the grant is settled when the request ends.
    let grant = {
        static LEDGER: std::sync::OnceLock<Arc<berry_gateway::spend::Ledger>> =
            std::sync::OnceLock::new();
        let ledger = LEDGER.get_or_init(Arc::default);
        let wall = berry_gateway::spend::now_unix_ms();
        let admission = std::pin::pin!(berry_gateway::quota::admit_user(
            &admitted.user,
            None,
            ledger,
            now,
            wall
        ));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::future::Future::poll(admission, &mut cx) {
            std::task::Poll::Ready(Ok(g)) => g,
            std::task::Poll::Ready(Err(e)) => panic!("request refused by a limit: {e:?}"),
            std::task::Poll::Pending => panic!("local admission waited"),
        }
    };
    let model = &admitted.model;
    let mut input = SelectInput {
        now_ms: now,
        rng,
        table: &snap.table,
    };
    let sel = model
        .select(&mut input, |i, b| eligible(&admitted, tried, model, i, b))
        .expect("a backend");
    let body = attempt_body(&admitted, &model.backends[sel.index].model_literal);
    let done = berry_gateway::quota::Finished {
        tokens: 0,
        charge: None,
        now_ms: now,
    };
    grant.finish(&admitted.user, &done);
    body
}

fn bench_per_request(c: &mut Criterion) {
    let mut g = c.benchmark_group("per_request");
    let tried: &[usize] = &[];
    let mut rng = fastrand::Rng::with_seed(7);
    let now = berry_gateway::clock::now_ms();
    for (models, users) in [(10, 10), (1000, 10), (10, 1000), (1000, 1000)] {
        let snap = snapshot(&Shape {
            models,
            users,
            strategy: |_| "weighted_random",
            list_models: false,
            rate_limited_user0: false,
        });
        // 256 requests spread over all users and models (coprime strides).
        let reqs: Vec<Req> = (0..256)
            .map(|k| Req {
                authorization: format!("Bearer {}", token((k * 7919) % users)).into_bytes(),
                body: Bytes::from(chat_1k(&model_name((k * 104_729) % models), false)),
            })
            .collect();
        for r in &reqs {
            let out = per_request(&snap, tried, r, &mut rng, now);
            assert!(out.windows(11).any(|w| w == b"real-model-"));
        }
        let mut k = 0usize;
        g.bench_with_input(
            BenchmarkId::new("auth+admit+select+splice", format!("{models}m_{users}u")),
            &reqs,
            |b, reqs| {
                b.iter(|| {
                    k = (k + 1) & 255;
                    per_request(&snap, tried, black_box(&reqs[k]), &mut rng, now)
                })
            },
        );
    }

    // The same for a user with a (never reached) rate limit: one mutex + window arithmetic.
    let snap = snapshot(&Shape {
        models: 10,
        users: 10,
        strategy: |_| "weighted_random",
        list_models: false,
        rate_limited_user0: true,
    });
    let req = Req {
        authorization: format!("Bearer {}", token(0)).into_bytes(),
        body: Bytes::from(chat_1k(&model_name(3), false)),
    };
    g.bench_function("auth+admit+select+splice/rate_limited_user", |b| {
        b.iter(|| per_request(&snap, tried, black_box(&req), &mut rng, now))
    });
    // A streaming request: admit also prepares the include_usage insertion (two edits).
    let req = Req {
        authorization: format!("Bearer {}", token(1)).into_bytes(),
        body: Bytes::from(chat_1k(&model_name(3), true)),
    };
    g.bench_function("auth+admit+select+splice/stream_include_usage", |b| {
        b.iter(|| per_request(&snap, tried, black_box(&req), &mut rng, now))
    });
    g.finish();
}

// ------------------------------------------------------------------------------------------
// response side: usage observers
// ------------------------------------------------------------------------------------------

const WORDS: [&str; 12] = [
    "The",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " the",
    " lazy",
    " dog",
    ".",
    " \\\"Quoted\\\"",
    " caf\u{e9}",
];

/// A 50-event OpenAI chat stream (49 JSON chunks incl. the usage chunk, then `[DONE]`),
/// one network chunk per event.
fn openai_stream() -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    let head = r#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","choices":"#;
    events.push(format!(
        "data: {head}[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}},\"finish_reason\":null}}],\"usage\":null}}\n\n"
    ));
    for i in 0..46 {
        let w = WORDS[i % WORDS.len()];
        events.push(format!(
            "data: {head}[{{\"index\":0,\"delta\":{{\"content\":\"{w}\"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ));
    }
    events.push(format!(
        "data: {head}[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}],\"usage\":null}}\n\n"
    ));
    events.push(format!(
        "data: {head}[],\"usage\":{{\"prompt_tokens\":19,\"completion_tokens\":47,\"total_tokens\":66,\"prompt_tokens_details\":{{\"cached_tokens\":0,\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}}}\n\n"
    ));
    events.push("data: [DONE]\n\n".to_string());
    assert_eq!(events.len(), 50);
    events.into_iter().map(String::into_bytes).collect()
}

/// A ~4 KB non-stream chat completion.
fn json_reply() -> Vec<u8> {
    let mut content = String::new();
    let mut i = 0;
    while content.len() < 3500 {
        content.push_str(WORDS[i % WORDS.len()]);
        i += 1;
    }
    format!(
        r#"{{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}","refusal":null,"annotations":[]}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1117,"completion_tokens":946,"total_tokens":2063,"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}}"#
    )
    .into_bytes()
}

fn scan_sse<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (bool, Option<TokenUsage>, u64) {
    let mut s = SseScanner::new();
    for c in chunks {
        if s.feed(black_box(c)).is_err() {
            break;
        }
    }
    (s.finished(), s.usage(), s.events())
}

fn scan_json<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Option<TokenUsage> {
    let mut s = JsonUsageScanner::new();
    for c in chunks {
        s.feed(black_box(c));
    }
    s.usage()
}

fn bench_usage(c: &mut Criterion) {
    let events = openai_stream();
    let stream: Vec<u8> = events.concat();
    let expect = (
        true,
        Some(TokenUsage {
            input: 19,
            output: 47,
            ..Default::default()
        }),
        50,
    );
    assert_eq!(scan_sse(events.iter().map(Vec::as_slice)), expect);
    assert_eq!(scan_sse(stream.chunks(1460)), expect);
    eprintln!(
        "sse stream: {} bytes, {} events",
        stream.len(),
        events.len()
    );

    let mut g = c.benchmark_group("sse_openai_50_events");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("chunk_per_event", |b| {
        b.iter(|| scan_sse(events.iter().map(Vec::as_slice)))
    });
    g.bench_function("chunks_1460B", |b| b.iter(|| scan_sse(stream.chunks(1460))));
    g.bench_function("chunks_64B", |b| b.iter(|| scan_sse(stream.chunks(64))));
    // Context only: what full serde_json validation of every payload would cost.
    let payloads: Vec<&[u8]> = events
        .iter()
        .filter_map(|e| e.strip_prefix(b"data: ")?.strip_suffix(b"\n\n"))
        .filter(|p| p.first() == Some(&b'{'))
        .collect();
    g.bench_function("serde_json_ignored_any_reference", |b| {
        b.iter(|| {
            payloads
                .iter()
                .filter(|p| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(p)).is_ok())
                .count()
        })
    });
    g.finish();

    let body = json_reply();
    assert_eq!(
        scan_json([&body[..]].into_iter()),
        Some(TokenUsage {
            input: 1117,
            output: 946,
            ..Default::default()
        })
    );
    eprintln!("json reply: {} bytes", body.len());
    let mut g = c.benchmark_group("json_4k_body");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("one_chunk", |b| {
        b.iter(|| scan_json([&body[..]].into_iter()))
    });
    g.bench_function("chunks_1460B", |b| b.iter(|| scan_json(body.chunks(1460))));
    g.finish();
}

// ------------------------------------------------------------------------------------------
// config reload
// ------------------------------------------------------------------------------------------

fn bench_reload(c: &mut Criterion) {
    let mut g = c.benchmark_group("reload_1000_models");
    g.sample_size(10);
    for list_models in [true, false] {
        let shape = Shape {
            models: 1000,
            users: 1000,
            strategy: |i| STRATEGIES[i % STRATEGIES.len()],
            list_models,
            rate_limited_user0: false,
        };
        let text = config_text(&shape);
        let suffix = if list_models {
            "providers_list_models"
        } else {
            "no_provider_model_lists"
        };
        eprintln!(
            "reload config ({suffix}): {} bytes, 1000 models x {BACKENDS} backends, 1000 users",
            text.len()
        );
        let cfg = load_str(&text, Format::Toml, &|_| None).expect("valid");
        let prev = Snapshot::build(&cfg, None, 1).expect("builds");
        assert_eq!(prev.table.models.len(), 1000);
        g.bench_function(format!("load_str/{suffix}"), |b| {
            b.iter(|| load_str(black_box(&text), Format::Toml, &|_| None))
        });
        if list_models {
            // The first step of load_str alone: TOML text -> generic tree.
            g.bench_function("toml_to_value_only", |b| {
                b.iter(|| toml::from_str::<serde_json::Value>(black_box(&text)))
            });
            g.bench_function("snapshot_build_fresh", |b| {
                b.iter(|| Snapshot::build(black_box(&cfg), None, 1))
            });
            g.bench_function("snapshot_build_carry_over", |b| {
                b.iter(|| Snapshot::build(black_box(&cfg), Some(&prev), 2))
            });
        }
        g.bench_function(format!("load_str+build_carry_over/{suffix}"), |b| {
            b.iter(|| {
                let cfg = load_str(black_box(&text), Format::Toml, &|_| None).expect("valid");
                Snapshot::build(&cfg, Some(&prev), 2)
            })
        });
    }
    g.finish();
}

/// A 50-event Anthropic stream (message_start, block start, 45 text deltas, block stop,
/// message_delta, message_stop), one network chunk per event.
fn anthropic_stream() -> Vec<Vec<u8>> {
    let mut events = vec![
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n".to_string(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_string(),
    ];
    for i in 0..45 {
        let w = WORDS[i % WORDS.len()];
        events.push(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{w}\"}}}}\n\n"
        ));
    }
    events.push(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            .to_string(),
    );
    events.push("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":47}}\n\n".to_string());
    events.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string());
    assert_eq!(events.len(), 50);
    events.into_iter().map(String::into_bytes).collect()
}

/// A ~4 KB non-stream Anthropic message.
fn anthropic_reply() -> Vec<u8> {
    let mut content = String::new();
    let mut i = 0;
    while content.len() < 3600 {
        content.push_str(WORDS[i % WORDS.len()]);
        i += 1;
    }
    format!(
        r#"{{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{{"type":"text","text":"{content}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":1117,"cache_creation_input_tokens":0,"cache_read_input_tokens":512,"output_tokens":946}}}}"#
    )
    .into_bytes()
}

fn bench_translate(c: &mut Criterion) {
    use berry_gateway::translate::{chat_to_messages, messages_to_chat};
    let mut g = c.benchmark_group("translate");
    // Per stream of 50 events; criterion's throughput line gives the per-event figure.
    let events = anthropic_stream();
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("anthropic_to_openai_sse_50_events", |b| {
        b.iter(|| {
            let mut t = chat_to_messages::Stream::new(true);
            let mut out = Vec::with_capacity(16 * 1024);
            for e in &events {
                t.feed(black_box(e), &mut out).expect("valid stream");
            }
            t.finish().expect("complete stream");
            out.len()
        })
    });
    let events = openai_stream();
    g.bench_function("openai_to_anthropic_sse_50_events", |b| {
        b.iter(|| {
            let mut t = messages_to_chat::Stream::new();
            let mut out = Vec::with_capacity(16 * 1024);
            for e in &events {
                t.feed(black_box(e), &mut out).expect("valid stream");
            }
            t.finish().expect("complete stream");
            out.len()
        })
    });
    let body = anthropic_reply();
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("anthropic_to_openai_body_4KiB", |b| {
        b.iter(|| chat_to_messages::response(black_box(&body)).expect("valid body"))
    });
    let body = json_reply();
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("openai_to_anthropic_body_4KiB", |b| {
        b.iter(|| messages_to_chat::response(black_box(&body)).expect("valid body"))
    });
    let body = chat_1k("claude", true);
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("openai_request_to_anthropic_1KiB", |b| {
        b.iter(|| chat_to_messages::request(black_box(&body), "claude-sonnet-4-5"))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // Plots cost ~3 s per benchmark on a small machine; the numbers (and the saved
    // estimates criterion compares against) do not need them.
    config = Criterion::default().without_plots();
    targets = bench_auth, bench_body, bench_select, bench_per_request, bench_usage, bench_translate,
        bench_reload
}
criterion_main!(benches);
