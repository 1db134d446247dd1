//! Scan + splice throughput for typical chat-completion bodies.
//!
//! Run: `cargo bench --bench body_scan -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use berry_gateway::body::{apply_edits, include_usage_edit, json_string_literal, scan, Edit};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A chat body with a system prompt and alternating user/assistant turns, padded until it is at
/// least `target` bytes. Contents contain escapes (`\n`, `\"`, `\u00e9`) and raw non-ASCII.
fn chat_body(target: usize) -> Vec<u8> {
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
    let body = format!(
        "{{\"model\":\"gpt-4o-mini\",\"messages\":[{messages}],\"temperature\":0.7,\"max_tokens\":512,\"user\":\"user-1234\",\"stream\":true}}"
    );
    body.into_bytes()
}

/// What the gateway does per request: scan, then splice the real model name and the usage flag.
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

fn bench(c: &mut Criterion) {
    let literal = json_string_literal("gpt-4o-mini-2024-07-18");
    for (name, size) in [("1KiB", 1024), ("64KiB", 64 * 1024)] {
        let body = chat_body(size);
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("scan", |b| b.iter(|| scan(black_box(&body))));
        group.bench_function("scan+splice", |b| {
            b.iter(|| rewrite(black_box(&body), black_box(literal.as_bytes())))
        });
        group.bench_function("serde_json::Value (reference)", |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
