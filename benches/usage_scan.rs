//! Throughput of the response-body observers on realistic inputs.
//!
//! Run: `cargo bench --bench usage_scan -- --warm-up-time 1 --measurement-time 3`

use berry_gateway::usage::{JsonUsageScanner, SseScanner, Usage};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

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

/// A 50-event OpenAI chat stream (49 JSON chunks incl. the usage chunk, then `[DONE]`).
/// Returns the stream split into one network chunk per event.
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
fn json_body() -> Vec<u8> {
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

fn scan_sse<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (bool, Option<Usage>, u64) {
    let mut s = SseScanner::new();
    for c in chunks {
        if s.feed(black_box(c)).is_err() {
            break;
        }
    }
    (s.finished(), s.usage(), s.events())
}

fn scan_json<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Option<Usage> {
    let mut s = JsonUsageScanner::new();
    for c in chunks {
        s.feed(black_box(c));
    }
    s.usage()
}

fn bench(c: &mut Criterion) {
    let events = openai_stream();
    let stream: Vec<u8> = events.concat();
    let expect = (
        true,
        Some(Usage {
            input_tokens: 19,
            output_tokens: 47,
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
    g.bench_function("baseline_serde_json_ignored_any", |b| {
        b.iter(|| {
            payloads
                .iter()
                .filter(|p| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(p)).is_ok())
                .count()
        })
    });
    g.finish();

    let body = json_body();
    let expect = Some(Usage {
        input_tokens: 1117,
        output_tokens: 946,
    });
    assert_eq!(scan_json([&body[..]].into_iter()), expect);
    eprintln!("json body: {} bytes", body.len());
    let mut g = c.benchmark_group("json_4k_body");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("one_chunk", |b| {
        b.iter(|| scan_json([&body[..]].into_iter()))
    });
    g.bench_function("chunks_1460B", |b| b.iter(|| scan_json(body.chunks(1460))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
