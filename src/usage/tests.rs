//! Exact-oracle unit tests of the usage scanners (generated inputs: `tests/fuzz/usage.rs`).

use super::*;
use crate::vocab::TokenUsage;
use crate::wire::error::{anthropic_stream_cut_event, OpenAiError};

// ----- helpers ---------------------------------------------------------------------------

/// Everything observable about an SSE scan.
#[derive(Debug, PartialEq)]
struct Outcome {
    result: Result<(), SseError>,
    usage: Option<TokenUsage>,
    finished: bool,
    error_event: bool,
    events: u64,
}

fn scan<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut s = SseScanner::new();
    let mut result = Ok(());
    for c in chunks {
        let r = s.feed(c);
        if result.is_err() {
            assert_eq!(r, result, "errors must be sticky");
        }
        result = r;
    }
    Outcome {
        result,
        usage: s.usage(),
        finished: s.finished(),
        error_event: s.saw_error_event(),
        events: s.events(),
    }
}

fn whole(body: &[u8]) -> Outcome {
    scan([body])
}

/// Feed `body` whole, split at every single point, and in chunks of every size up to 17 (one
/// byte at a time included); all outcomes must be identical. Returns the outcome. (Random
/// chunkings of generated inputs are the fuzz tests' job: `tests/fuzz/usage.rs`.)
fn split_invariant(body: &[u8]) -> Outcome {
    let w = whole(body);
    for k in 0..=body.len() {
        assert_eq!(scan([&body[..k], &body[k..]]), w, "split at {k}");
    }
    for size in 1..=17 {
        assert_eq!(scan(body.chunks(size)), w, "chunks of {size}");
    }
    w
}

fn json_usage<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Option<TokenUsage> {
    let mut s = JsonUsageScanner::new();
    for c in chunks {
        s.feed(c);
    }
    s.usage()
}

fn json_split_invariant(body: &[u8]) -> Option<TokenUsage> {
    let w = json_usage([body]);
    for k in 0..=body.len() {
        assert_eq!(json_usage([&body[..k], &body[k..]]), w, "split at {k}");
    }
    assert_eq!(json_usage(body.chunks(1)), w, "byte at a time");
    w
}

fn u(input: u64, output: u64) -> Option<TokenUsage> {
    uc(input, output, 0, 0)
}

/// Usage with cache counts: input (uncached), output, cache read, cache write.
fn uc(input: u64, output: u64, cache_read: u64, cache_write: u64) -> Option<TokenUsage> {
    Some(TokenUsage {
        input,
        output,
        cache_read,
        cache_write,
    })
}

fn with_endings(body: &str, eol: &str) -> Vec<u8> {
    body.replace('\n', eol).into_bytes()
}

// ----- sample streams --------------------------------------------------------------------

const OPENAI: &str = concat!(
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"H\u{e9}llo \\\"q\\\" \\\\ \\u00e9 \u{1F600}\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    ": keep-alive\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
    "data: [DONE]\n\n",
);

const ANTHROPIC: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\n",
    "data: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

/// Multi-line data, fields without a space, comments, id/retry, decoy keys.
const MIXED: &str = concat!(
    "retry: 1000\n",
    ":comment without space\n",
    "id: 7\n",
    "event: chunk\n",
    "data:{\"choices\":[{\"usage\":{\"prompt_tokens\":999}}],\n",
    "data:  \"error\": null,\n",
    "id\n",
    "data: \"message\": {\"x\": {\"usage\": {\"input_tokens\": 777}}},\n",
    "data: \"usage\"\n",
    "data: :\n",
    "data: {\"prompt_tokens\": 3, \"completion_tokens\": 4}, \"n\": [1, -2.5e-3, 0, true, false, null]}\n",
    "\n",
    "event\n",
    "data: 42\n",
    "\n",
    "data:[DONE]\n",
    "\n",
);

// ----- SSE -------------------------------------------------------------------------------

#[test]
fn openai_stream_with_usage_and_done() {
    let o = split_invariant(OPENAI.as_bytes());
    assert_eq!(
        o,
        Outcome {
            result: Ok(()),
            usage: u(9, 12),
            finished: true,
            error_event: false,
            events: 5,
        }
    );
}

#[test]
fn usage_null_never_overwrites() {
    let body = concat!(
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12}}\n\n",
        "data: {\"choices\":[],\"usage\":null}\n\n",
        "data: {\"choices\":[],\"usage\":{}}\n\n",
        "data: [DONE]\n\n",
    );
    assert_eq!(split_invariant(body.as_bytes()).usage, u(9, 12));
    let early_null = "data: {\"usage\":null}\n\ndata: {\"choices\":[]}\n\n";
    let o = split_invariant(early_null.as_bytes());
    assert_eq!((o.usage, o.finished, o.events), (None, false, 2));
}

#[test]
fn anthropic_stream() {
    let o = split_invariant(ANTHROPIC.as_bytes());
    assert_eq!(
        o,
        Outcome {
            result: Ok(()),
            usage: u(25, 15),
            finished: true,
            error_event: false,
            events: 7,
        }
    );
}

#[test]
fn mixed_fields_multiline_data_and_decoys() {
    let o = split_invariant(MIXED.as_bytes());
    assert_eq!(
        o,
        Outcome {
            result: Ok(()),
            usage: u(3, 4),
            finished: true,
            error_event: false,
            events: 3,
        }
    );
}

#[test]
fn crlf_and_cr_line_endings() {
    for body in [OPENAI, ANTHROPIC, MIXED] {
        let lf = whole(body.as_bytes());
        assert_eq!(lf.result, Ok(()));
        for eol in ["\r\n", "\r"] {
            assert_eq!(split_invariant(&with_endings(body, eol)), lf, "eol {eol:?}");
        }
    }
    // Mixed terminators in one stream, and `\r` `\n` split across chunks.
    let mixed = b"data: {\"usage\":{\"input_tokens\":1}}\r\n\rdata: [DONE]\r\r\n";
    let o = split_invariant(mixed);
    assert_eq!(
        (o.result, o.usage, o.finished, o.events),
        (Ok(()), u(1, 0), true, 2)
    );
}

#[test]
fn leading_bom_is_ignored_once() {
    let o = split_invariant("\u{feff}data: [DONE]\n\n".as_bytes());
    assert_eq!((o.result, o.finished, o.events), (Ok(()), true, 1));
    for bad in [
        "\u{feff}\u{feff}data: 1\n\n",
        "data: 1\n\n\u{feff}data: 1\n\n",
    ] {
        assert_eq!(
            split_invariant(bad.as_bytes()).result,
            Err(SseError::Garbage)
        );
    }
    assert_eq!(
        split_invariant(b"\xEF\xBBdata: 1\n\n").result,
        Err(SseError::Garbage)
    );
}

#[test]
fn done_detection() {
    for body in [
        "data: [DONE]\n\n",
        "data:[DONE]\n\n",
        "data: [DONE]\n",
        "data:  [DONE]  \r\n",
    ] {
        let o = split_invariant(body.as_bytes());
        assert!(o.finished, "{body:?}");
        assert_eq!(o.result, Ok(()));
    }
    // Not terminated by a line end yet: not finished (but not broken either).
    assert!(!whole(b"data: [DONE]").finished);
    assert!(!whole(b"data: [DON").finished);
    for bad in [
        "data: [DONE]x\n",
        "data: [DONe]\n",
        "data: [ DONE]\n",
        "data: DONE\n",
    ] {
        let o = split_invariant(bad.as_bytes());
        assert_eq!(o.result, Err(SseError::InvalidData), "{bad:?}");
        assert!(!o.finished);
    }
    // A JSON array payload is still fine.
    assert_eq!(whole(b"data: [1, [2], {}]\n\n").result, Ok(()));
    // Anthropic end.
    assert!(whole(b"event: message_stop\n").finished);
    assert!(!whole(b"event: message_stopped\n").finished);
    assert!(!whole(b"event: message_sto\n").finished);
}

#[test]
fn truncated_streams_are_not_finished() {
    for body in [OPENAI, ANTHROPIC] {
        let full = body.as_bytes();
        let cut = body
            .rfind("data: [DONE]")
            .or(body.rfind("event: message_stop"));
        let cut = cut.unwrap_or(0);
        for end in [cut, cut + 5, full.len() / 2, 0] {
            let o = whole(&full[..end]);
            assert_eq!(o.result, Ok(()));
            assert!(!o.finished, "cut at {end}");
        }
    }
    // Truncated right after the usage chunk: usage is still reported.
    let cut = OPENAI.find("data: [DONE]").unwrap_or(0);
    let o = whole(&OPENAI.as_bytes()[..cut]);
    assert_eq!((o.usage, o.finished), (u(9, 12), false));
}

#[test]
fn garbage_lines() {
    for bad in [
        "<html><body>502 Bad Gateway</body></html>\n",
        "HTTP/1.1 200 OK\r\n",
        "{\"id\":1}\n",
        "dat: x\n",
        "datax: 1\n",
        "events: x\n",
        "date\n",
        " data: {}\n",
        "\u{0}\n",
    ] {
        let body = format!("data: {{\"a\":1}}\n\n{bad}data: [DONE]\n\n");
        let o = split_invariant(body.as_bytes());
        assert_eq!(o.result, Err(SseError::Garbage), "{bad:?}");
        assert_eq!(o.events, 1);
        assert!(!o.finished);
    }
    // Detected at the first offending byte, before any line end.
    let mut s = SseScanner::new();
    assert_eq!(s.feed(b"<"), Err(SseError::Garbage));
    assert_eq!(s.feed(b"data: [DONE]\n\n"), Err(SseError::Garbage));
    assert!(!s.finished());
}

#[test]
fn invalid_data() {
    for bad in [
        "data: hello\n\n",
        "data: {\"a\":1,}\n\n",
        "data: {\"a\" 1}\n\n",
        "data: {\"a\":1}}\n\n",
        "data: {\"a\":[1}\n\n",
        "data: {\"a\":01}\n\n",
        "data: {\"a\":1.}\n\n",
        "data: {\"a\":tru}\n\n",
        "data: {\"a\":\"x\\q\"}\n\n",
        "data: {\"a\":\"\\u12g4\"}\n\n",
        "data: {\"a\":\"tab\there\"}\n\n",
        "data: {\"a\":\"split\ndata: string\"}\n\n",
        "data: {\"a\":1} {\"b\":2}\n\n",
        "data: {\"a\":\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":1}\n\n",
    ] {
        let o = split_invariant(bad.as_bytes());
        assert_eq!(o.result, Err(SseError::InvalidData), "{bad:?}");
        assert_eq!(o.events, 0, "{bad:?}");
    }
    // Valid scalars / arrays / multi-line payloads.
    for good in [
        "data: 1\n\n",
        "data: -0.5e+7\n\n",
        "data: \"s\"\n\n",
        "data: null\n\n",
        "data: {\ndata: }\n\n",
        "data: [\ndata: 1,\ndata: 2]\n\n",
        "data: 1\ndata:\n\n",
        // empty data is valid framing with nothing to observe
        "data: \n\n",
        "data\n\n",
        "data:  \t\n\n",
    ] {
        let o = split_invariant(good.as_bytes());
        assert_eq!((o.result, o.events), (Ok(()), 1), "{good:?}");
    }
    // Nesting is not limited (serde_json skips values without recursion); balance is.
    let deep = format!("data: {}{}\n\n", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(whole(deep.as_bytes()).result, Ok(()));
    let deep = format!("data: {{\"a\":{}{}}}\n\n", "[".repeat(200), "]".repeat(199));
    assert_eq!(whole(deep.as_bytes()).result, Err(SseError::InvalidData));
}

#[test]
fn line_too_long() {
    let prefix = b"data: \"";
    // Line content exactly at the cap: fine.
    let mut body = prefix.to_vec();
    body.resize(MAX_SSE_LINE - 1, b'a');
    body.extend_from_slice(b"\"\n\ndata: [DONE]\n\n");
    assert_eq!(whole(&body).result, Ok(()));
    let mut s = SseScanner::new();
    for c in body.chunks(4096) {
        assert_eq!(s.feed(c), Ok(()));
    }
    assert!(s.finished());

    // One byte more: too long, whatever the chunking.
    let mut body = prefix.to_vec();
    body.resize(MAX_SSE_LINE, b'a');
    body.extend_from_slice(b"\"\n\n");
    assert_eq!(whole(&body).result, Err(SseError::LineTooLong));
    assert_eq!(scan(body.chunks(1000)).result, Err(SseError::LineTooLong));
    let k = MAX_SSE_LINE;
    assert_eq!(
        scan([&body[..k], &body[k..]]).result,
        Err(SseError::LineTooLong)
    );
    // Comments count too; an earlier invalid byte wins over the length.
    let mut c = vec![b':'; MAX_SSE_LINE + 10];
    c.push(b'\n');
    assert_eq!(whole(&c).result, Err(SseError::LineTooLong));
    let mut d = b"data: x".to_vec();
    d.resize(MAX_SSE_LINE + 10, b'a');
    assert_eq!(whole(&d).result, Err(SseError::InvalidData));
    assert_eq!(scan(d.chunks(7)).result, Err(SseError::InvalidData));
}

#[test]
fn error_events() {
    let openai = "data: {\"id\":\"1\",\"choices\":[]}\n\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n";
    let o = split_invariant(openai.as_bytes());
    assert_eq!(
        (o.result, o.error_event, o.events, o.finished),
        (Ok(()), true, 2, false)
    );

    let anthropic = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    assert!(split_invariant(anthropic.as_bytes()).error_event);
    assert!(whole(b"event: error\n\n").error_event);
    assert!(whole(b"data: {\"error\":\"boom\"}\n\n").error_event);

    for benign in [
        "data: {\"error\":null}\n\n",
        "data: {\"choices\":[{\"error\":{\"message\":\"x\"}}]}\n\n",
        "data: {\"x\":{\"error\":{}}}\n\n",
        "data: {\"errors\":{}}\n\n",
        "data: {\"err\":{}}\n\n",
        "data: \"error\"\n\n",
        "data: [\"error\", {\"error\": 1}]\n\n",
        "event: errors\n\n",
    ] {
        let o = split_invariant(benign.as_bytes());
        assert!(!o.error_event, "{benign:?}");
        assert_eq!(o.result, Ok(()), "{benign:?}");
    }
}

#[test]
fn usage_edge_cases() {
    // A large usage object is parsed like any other (no capture cap any more); a later
    // one replaces its counts.
    let big = format!(
        "data: {{\"usage\":{{\"prompt_tokens\":1,\"pad\":\"{}\"}}}}\n\n",
        "x".repeat(USAGE_CAPTURE_CAP)
    );
    assert_eq!(whole(big.as_bytes()).usage, u(1, 0));
    let big2 = format!("{big}data: {{\"usage\":{{\"prompt_tokens\":2}}}}\n\n");
    assert_eq!(whole(big2.as_bytes()).usage, u(2, 0));
    // A repeated count spoils the object; a bad one spoils it even when valid ones follow.
    assert_eq!(
        whole(b"data: {\"usage\":{\"prompt_tokens\":1,\"prompt_tokens\":2}}\n\n").usage,
        None
    );
    assert_eq!(
        whole(b"data: {\"usage\":{\"prompt_tokens\":\"1\",\"completion_tokens\":2}}\n\n").usage,
        None
    );
    assert_eq!(
        whole(b"data: {\"usage\":{\"prompt_tokens\":null,\"completion_tokens\":2}}\n\n").usage,
        u(0, 2)
    );
    // Non-integer counts are ignored.
    assert_eq!(
        whole(b"data: {\"usage\":{\"prompt_tokens\":1.5}}\n\n").usage,
        None
    );
    assert_eq!(
        whole(b"data: {\"usage\":{\"prompt_tokens\":-1}}\n\n").usage,
        None
    );
    // Both spellings: input_tokens/output_tokens win.
    let both = b"data: {\"usage\":{\"prompt_tokens\":1,\"input_tokens\":2,\"completion_tokens\":3,\"output_tokens\":4}}\n\n";
    assert_eq!(whole(both).usage, u(2, 4));
    // Escaped key is not recognised (documented: the prefilter matches raw bytes).
    assert_eq!(
        whole(b"data: {\"us\\u0061ge\":{\"prompt_tokens\":1}}\n\n").usage,
        None
    );
    // Escapes inside a recognised usage object are fine (serde_json parses it).
    assert_eq!(
        whole(b"data: {\"usage\":{\"prompt\\u005ftokens\":1}}\n\n").usage,
        u(1, 0)
    );
    // Counts come from valid events only: a payload that breaks later contributes none.
    let o = whole(b"data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}, oops\n\n");
    assert_eq!((o.result, o.usage), (Err(SseError::InvalidData), None));
    // ... nor does one whose blank line has not arrived yet.
    let o = split_invariant(b"data: {\"usage\":{\"prompt_tokens\":5}}\n");
    assert_eq!((o.result, o.usage, o.events), (Ok(()), None, 0));
    // `message.usage` only applies while inside the top-level `message` object.
    let sibling = b"data: {\"message\":{\"id\":1},\"other\":{\"usage\":{\"input_tokens\":9}}}\n\n";
    assert_eq!(split_invariant(sibling).usage, None);
    let deeper = b"data: {\"message\":{\"x\":{\"usage\":{\"input_tokens\":9}}}}\n\n";
    assert_eq!(split_invariant(deeper).usage, None);
    // OpenAI Responses events carry the response object in `response`: its usage counts.
    assert_eq!(
        whole(b"data: {\"response\":{\"usage\":{\"input_tokens\":1}}}\n\n").usage,
        Some(TokenUsage {
            input: 1,
            ..TokenUsage::default()
        })
    );
    // ... but only at the top level of the event.
    let deeper = b"data: {\"x\":{\"response\":{\"usage\":{\"input_tokens\":9}}}}\n\n";
    assert_eq!(split_invariant(deeper).usage, None);
}

fn reaches_content(body: &[u8]) -> bool {
    let mut s = SseScanner::new();
    s.feed(body).unwrap();
    s.reached_content()
}

/// An OpenAI Responses stream: usage from `response.completed` (cached tokens are part of
/// `input_tokens`, reasoning tokens part of `output_tokens`), completion from its event
/// name, the commit point at the first delta.
#[test]
fn responses_stream_usage_completion_and_commit_point() {
    let head = concat!(
        "event: response.created\n",
        "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"usage\":null}}\n\n",
        "event: response.output_item.added\n",
        "data: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"item\":{\"type\":\"message\"}}\n\n",
    );
    let o = split_invariant(head.as_bytes());
    assert!(!reaches_content(head.as_bytes()) && !o.finished && o.usage.is_none());
    assert_eq!(o.events, 2);
    let full = format!(
        "{head}{}",
        concat!(
            "event: response.output_text.delta\n",
            "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"delta\":\"Hi\"}\n\n",
            "event: response.completed\n",
            "data: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":2006,\"input_tokens_details\":{\"cached_tokens\":1920},\"output_tokens\":300,\"output_tokens_details\":{\"reasoning_tokens\":100},\"total_tokens\":2306}}}\n\n",
        )
    );
    let o = split_invariant(full.as_bytes());
    assert!(reaches_content(full.as_bytes()) && o.finished && !o.error_event);
    assert_eq!(
        o.usage,
        Some(TokenUsage {
            input: 86,
            output: 300,
            cache_read: 1920,
            cache_write: 0
        })
    );
    let failed = b"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_error\"}}}\n\n";
    assert!(split_invariant(failed).error_event);
}

/// OpenAI stream whose final usage chunk reports cached prompt tokens.
const OPENAI_CACHED: &str = concat!(
    "data: {\"id\":\"chatcmpl-2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-2\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-2\",\"choices\":[],\"usage\":{\"prompt_tokens\":2006,\"completion_tokens\":300,\"total_tokens\":2306,\"prompt_tokens_details\":{\"cached_tokens\":1920,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
    "data: [DONE]\n\n",
);

/// Anthropic stream with cache counts in `message_start` and (cumulative, as the current
/// API sends them) again in `message_delta`.
const ANTHROPIC_CACHED: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet\",\"stop_reason\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":2048,\"cache_read_input_tokens\":1024,\"cache_creation\":{\"ephemeral_5m_input_tokens\":2048,\"ephemeral_1h_input_tokens\":0},\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":2048,\"cache_read_input_tokens\":1024,\"output_tokens\":42}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

#[test]
fn openai_stream_cached_tokens() {
    let o = split_invariant(OPENAI_CACHED.as_bytes());
    assert_eq!(
        o,
        Outcome {
            result: Ok(()),
            usage: uc(86, 300, 1920, 0),
            finished: true,
            error_event: false,
            events: 4,
        }
    );
    for eol in ["\r\n", "\r"] {
        assert_eq!(split_invariant(&with_endings(OPENAI_CACHED, eol)), o);
    }
}

#[test]
fn anthropic_stream_cache_counts() {
    let o = split_invariant(ANTHROPIC_CACHED.as_bytes());
    assert_eq!(
        o,
        Outcome {
            result: Ok(()),
            usage: uc(12, 42, 1024, 2048),
            finished: true,
            error_event: false,
            events: 4,
        }
    );
    for eol in ["\r\n", "\r"] {
        assert_eq!(split_invariant(&with_endings(ANTHROPIC_CACHED, eol)), o);
    }
    // Cache counts only in `message_start`, output only in `message_delta`: merged.
    let body = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":500,\"output_tokens\":1}}}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n",
    );
    assert_eq!(split_invariant(body.as_bytes()).usage, uc(3, 7, 500, 0));
    // A later cache count replaces an earlier one; a count without input is kept.
    let body = concat!(
        "data: {\"message\":{\"usage\":{\"input_tokens\":3,\"cache_read_input_tokens\":500}}}\n\n",
        "data: {\"usage\":{\"cache_read_input_tokens\":600,\"cache_creation_input_tokens\":9}}\n\n",
    );
    assert_eq!(split_invariant(body.as_bytes()).usage, uc(3, 0, 600, 9));
}

#[test]
fn cache_count_edge_cases() {
    let sse = |usage: &str| {
        let body = format!("data: {{\"choices\":[],\"usage\":{usage}}}\n\n");
        let o = split_invariant(body.as_bytes());
        assert_eq!(o.result, Ok(()), "{usage}");
        // The same object as a non-stream body agrees.
        let json = format!("{{\"usage\":{usage}}}");
        assert_eq!(json_split_invariant(json.as_bytes()), o.usage, "{usage}");
        o.usage
    };
    // OpenAI: cached tokens come out of the prompt count (saturating).
    let details = |d: &str| {
        format!("{{\"prompt_tokens\":10,\"completion_tokens\":2,\"prompt_tokens_details\":{d}}}")
    };
    assert_eq!(sse(&details("{\"cached_tokens\":4}")), uc(6, 2, 4, 0));
    assert_eq!(sse(&details("{\"cached_tokens\":10}")), uc(0, 2, 10, 0));
    assert_eq!(sse(&details("{\"cached_tokens\":11}")), uc(0, 2, 11, 0));
    assert_eq!(sse(&details("{\"audio_tokens\":3}")), uc(10, 2, 0, 0));
    assert_eq!(sse(&details("{\"cached_tokens\":null}")), uc(10, 2, 0, 0));
    assert_eq!(sse(&details("null")), uc(10, 2, 0, 0));
    assert_eq!(sse(&details("{}")), uc(10, 2, 0, 0));
    // Details before the prompt count, nested decoys, escapes in the key.
    assert_eq!(
        sse("{\"prompt_tokens_details\":{\"x\":{\"cached_tokens\":9},\"cached\\u005ftokens\":3},\"prompt_tokens\":5}"),
        uc(2, 0, 3, 0)
    );
    // `cached_tokens` outside `prompt_tokens_details` means nothing.
    assert_eq!(
        sse("{\"prompt_tokens\":5,\"cached_tokens\":3}"),
        uc(5, 0, 0, 0)
    );
    // Malformed details spoil the whole usage object, like a malformed count.
    for bad in [
        "{\"cached_tokens\":\"4\"}",
        "{\"cached_tokens\":-1}",
        "{\"cached_tokens\":1.5}",
        "{\"cached_tokens\":1,\"cached_tokens\":1}",
        "[4]",
        "4",
        "\"x\"",
        "true",
    ] {
        assert_eq!(sse(&details(bad)), None, "{bad}");
    }
    assert_eq!(
        sse("{\"prompt_tokens\":5,\"prompt_tokens_details\":null,\"prompt_tokens_details\":null}"),
        None
    );
    assert_eq!(
        sse("{\"cache_read_input_tokens\":1,\"cache_read_input_tokens\":2}"),
        None
    );
    assert_eq!(sse("{\"cache_creation_input_tokens\":\"1\"}"), None);
    // Cached tokens without a prompt count are ignored.
    assert_eq!(
        sse("{\"prompt_tokens_details\":{\"cached_tokens\":3}}"),
        None
    );
    assert_eq!(
        sse("{\"completion_tokens\":1,\"prompt_tokens_details\":{\"cached_tokens\":3}}"),
        uc(0, 1, 0, 0)
    );
    // `input_tokens` wins: Anthropic mapping, details ignored.
    assert_eq!(
        sse("{\"prompt_tokens\":100,\"input_tokens\":7,\"cache_read_input_tokens\":90,\"cache_creation_input_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":90}}"),
        uc(7, 0, 90, 3)
    );
    // OpenAI spelling: Anthropic cache members would count the prompt twice; ignored.
    assert_eq!(
        sse("{\"prompt_tokens\":100,\"cache_read_input_tokens\":90,\"cache_creation_input_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":90}}"),
        uc(10, 0, 90, 0)
    );
    // Cache counts alone are usage; null counts are absent.
    assert_eq!(sse("{\"cache_read_input_tokens\":5}"), uc(0, 0, 5, 0));
    assert_eq!(sse("{\"cache_creation_input_tokens\":5}"), uc(0, 0, 0, 5));
    assert_eq!(sse("{\"cache_read_input_tokens\":null}"), None);
    assert_eq!(
        sse("{\"input_tokens\":1,\"cache_read_input_tokens\":null,\"cache_creation_input_tokens\":0}"),
        uc(1, 0, 0, 0)
    );

    // An OpenAI prompt count sets the whole prompt partition, so a later one without
    // details does not leave a stale cache count behind.
    let body = concat!(
        "data: {\"usage\":{\"prompt_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
        "data: {\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\n",
    );
    assert_eq!(split_invariant(body.as_bytes()).usage, uc(12, 3, 0, 0));
    let body = concat!(
        "data: {\"usage\":{\"input_tokens\":1,\"cache_creation_input_tokens\":50}}\n\n",
        "data: {\"usage\":{\"prompt_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
    );
    assert_eq!(split_invariant(body.as_bytes()).usage, uc(6, 0, 4, 0));
    // ... while a later output-only count keeps the earlier prompt counts.
    let body = concat!(
        "data: {\"usage\":{\"prompt_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
        "data: {\"usage\":{\"completion_tokens\":3}}\n\n",
    );
    assert_eq!(split_invariant(body.as_bytes()).usage, uc(6, 3, 4, 0));
    // A spoiled object contributes nothing.
    let body = concat!(
        "data: {\"usage\":{\"prompt_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
        "data: {\"usage\":{\"prompt_tokens\":99,\"prompt_tokens_details\":7}}\n\n",
    );
    assert_eq!(split_invariant(body.as_bytes()).usage, uc(6, 0, 4, 0));
}

#[test]
fn scanner_is_small() {
    // 160 before the cache counts: they add 16 bytes to the committed findings and 16 to
    // those of a pending first data line.
    assert!(std::mem::size_of::<SseScanner>() <= 192);
    assert!(std::mem::size_of::<JsonUsageScanner>() <= 128);
}

// ----- JSON ------------------------------------------------------------------------------

#[test]
fn json_openai_chat() {
    let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello \"there\"\n","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp_1"}"#;
    assert_eq!(json_split_invariant(body), u(9, 12));
    let pretty = serde_json::to_vec_pretty(
        &serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(json_split_invariant(&pretty), u(9, 12));
}

#[test]
fn json_embeddings_and_anthropic() {
    let emb = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,1e-7]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    assert_eq!(json_split_invariant(emb), u(8, 0));
    let msg = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet","content":[{"type":"text","text":"Hi!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":25}}"#;
    assert_eq!(json_split_invariant(msg), u(10, 25));
}

#[test]
fn json_cache_counts() {
    let openai = br#"{"id":"chatcmpl-3","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;
    assert_eq!(json_split_invariant(openai), uc(86, 300, 1920, 0));
    let pretty = serde_json::to_vec_pretty(
        &serde_json::from_slice::<serde_json::Value>(openai).unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(json_split_invariant(&pretty), uc(86, 300, 1920, 0));
    let anthropic = br#"{"id":"msg_2","type":"message","role":"assistant","model":"claude-sonnet","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":12,"cache_creation_input_tokens":2048,"cache_read_input_tokens":1024,"cache_creation":{"ephemeral_5m_input_tokens":2048,"ephemeral_1h_input_tokens":0},"output_tokens":42,"service_tier":"standard"}}"#;
    assert_eq!(json_split_invariant(anthropic), uc(12, 42, 1024, 2048));
    // Only the top-level usage counts, cache members included.
    let nested = br#"{"choices":[{"usage":{"cache_read_input_tokens":99}}],"usage":{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":1}}}"#;
    assert_eq!(json_split_invariant(nested), uc(2, 0, 1, 0));
    // Over the cap the usage is found in the tail the same way.
    let tail = r#","usage":{"prompt_tokens":8,"prompt_tokens_details":{"cached_tokens":5}}}"#;
    let body = big_body(tail);
    for size in [1000, 4096, JSON_BODY_CAP + 1] {
        assert_eq!(
            json_verdict(body.chunks(size)),
            (uc(3, 0, 5, 0), false, true)
        );
    }
    let tail = r#","usage":{"input_tokens":8,"cache_read_input_tokens":5,"cache_creation_input_tokens":6}}"#;
    assert_eq!(
        json_verdict([&big_body(tail)[..]]),
        (uc(8, 0, 5, 6), false, true)
    );
}

#[test]
fn json_nested_usage_ignored_and_missing() {
    let nested = br#"{"choices":[{"usage":{"prompt_tokens":99,"completion_tokens":99}}],"meta":{"usage":{"input_tokens":5}},"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
    assert_eq!(json_split_invariant(nested), u(1, 2));
    let only_nested =
        br#"{"choices":[{"usage":{"prompt_tokens":99}}],"x":"\"usage\":{\"prompt_tokens\":7}"}"#;
    assert_eq!(json_split_invariant(only_nested), None);
    assert_eq!(json_split_invariant(br#"{"id":"x","choices":[]}"#), None);
    assert_eq!(json_split_invariant(br#"{"usage":null}"#), None);
    assert_eq!(
        json_split_invariant(br#"[{"usage":{"prompt_tokens":1}}]"#),
        None
    );
    assert_eq!(json_split_invariant(b""), None);
    // Error bodies have no usage; `message` / `error` are not special in JSON mode.
    let err = br#"{"error":{"message":"bad","usage":{"prompt_tokens":1}},"message":{"usage":{"input_tokens":3}}}"#;
    assert_eq!(json_split_invariant(err), None);
    // Garbage after the value, or before usage: stops scanning.
    assert_eq!(
        json_split_invariant(br#"{"usage":{"prompt_tokens":4}} trailing"#),
        u(4, 0)
    );
    assert_eq!(
        json_split_invariant(br#"{"a":x,"usage":{"prompt_tokens":4}}"#),
        None
    );
}

/// A body over JSON_BODY_CAP: `{"object":"list","data":[...big...]<tail>`.
fn big_body(tail: &str) -> Vec<u8> {
    let mut b = b"{\"object\":\"list\",\"data\":[".to_vec();
    while b.len() < JSON_BODY_CAP + 10_000 {
        b.extend_from_slice(
            b"{\"embedding\":[0.0023064255,-0.009327292,1e-7],\"usage\":{\"prompt_tokens\":5}},",
        );
    }
    b.extend_from_slice(b"{}]");
    b.extend_from_slice(tail.as_bytes());
    b
}

fn json_verdict<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Option<TokenUsage>, bool, bool) {
    let mut s = JsonUsageScanner::new();
    for c in chunks {
        s.feed(c);
    }
    (s.usage(), s.is_invalid(), s.is_complete())
}

#[test]
fn json_over_the_cap() {
    let cases: [(&str, Option<TokenUsage>, bool); 8] = [
        // Embeddings: usage is last.
        (
            r#","model":"m","usage":{"prompt_tokens":8,"total_tokens":8}}"#,
            u(8, 0),
            true,
        ),
        // Chat: a few members after it; whitespace around.
        (
            " ,\"usage\" : {\"prompt_tokens\":1,\"completion_tokens\":2} ,\"x\":[1,{}]}\n ",
            u(1, 2),
            true,
        ),
        // Nested: not top-level.
        (r#","meta":{"usage":{"prompt_tokens":8}}}"#, None, true),
        (r#","meta":[{"usage":{"prompt_tokens":8}}]}"#, None, true),
        // Inside a string, and a key that merely ends with "usage".
        (r#","s":"\"usage\":{\"prompt_tokens\":8}"}"#, None, true),
        (r#","my \"usage":{"prompt_tokens":8}}"#, None, true),
        // Truncated inside the usage object: incomplete. Cut right after a `}`: over the
        // cap that is not noticed (documented), but the usage is not trusted either.
        (r#","usage":{"prompt_tokens":8,"#, None, false),
        (r#","usage":{"prompt_tokens":8}"#, None, true),
    ];
    for (tail, usage, complete) in cases {
        let body = big_body(tail);
        let whole = json_verdict([&body[..]]);
        assert_eq!(whole, (usage, false, complete), "{tail}");
        for size in [1000, 4096, 4097, 65536, JSON_BODY_CAP + 1] {
            assert_eq!(
                json_verdict(body.chunks(size)),
                whole,
                "{tail} chunks of {size}"
            );
        }
        let k = body.len() - tail.len() / 2;
        assert_eq!(json_verdict([&body[..k], &body[k..]]), whole, "{tail}");
    }
    // The usage must lie in the last USAGE_CAPTURE_CAP bytes.
    let pad = format!(",\"pad\":\"{}\"}}", "p".repeat(USAGE_CAPTURE_CAP));
    let body = big_body(&format!(",\"usage\":{{\"prompt_tokens\":8}}{pad}"));
    assert_eq!(json_verdict(body.chunks(3000)), (None, false, true));
    // Not JSON at all is still caught by its first byte; an array closes with `]`.
    let mut html = b"<html>".to_vec();
    html.resize(JSON_BODY_CAP + 5, b'x');
    assert_eq!(json_verdict([&html[..]]), (None, true, false));
    let mut arr = b"[".to_vec();
    while arr.len() < JSON_BODY_CAP + 5 {
        arr.extend_from_slice(b"1,");
    }
    arr.extend_from_slice(b"1]  ");
    assert_eq!(json_verdict(arr.chunks(7000)), (None, false, true));
    assert_eq!(json_verdict([&arr[..arr.len() - 3]]), (None, false, false));
    // Memory stays bounded once over the cap.
    let mut s = JsonUsageScanner::new();
    for c in body.chunks(100) {
        s.feed(c);
    }
    assert!(
        s.buffer_capacity() <= 2 * USAGE_CAPTURE_CAP + 100,
        "{}",
        s.buffer_capacity()
    );
}

// ----- the gateway's own error event -------------------------------------------------------

#[test]
fn error_event_is_valid_sse_json() {
    let event = |message, kind, code| {
        OpenAiError {
            message,
            kind,
            param: None,
            code: Some(code),
        }
        .event()
    };
    let msg = "upstream said \"no\"\nline2\r\\ \t\u{1}\u{1f} é 😀";
    let ev = event(msg, "upstream_error", "stream_broken");
    assert!(ev.starts_with(b"data: "));
    assert!(ev.ends_with(b"}\n\n"));
    let line = &ev[6..ev.len() - 2];
    assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
    let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
    assert_eq!(v["error"]["message"], msg);
    assert_eq!(v["error"]["type"], "upstream_error");
    assert_eq!(v["error"]["code"], "stream_broken");
    assert!(v["error"]["param"].is_null());
    // And our own scanner accepts it as a complete error event, in both dialects.
    let o = split_invariant(&ev);
    assert_eq!((o.result, o.error_event, o.events), (Ok(()), true, 1));
    let o = split_invariant(&anthropic_stream_cut_event(msg));
    assert_eq!((o.result, o.error_event, o.events), (Ok(()), true, 1));
    assert_eq!(
        event("", "t", "c"),
        b"data: {\"error\":{\"message\":\"\",\"type\":\"t\",\"param\":null,\"code\":\"c\"}}\n\n"
    );
}

// ----- validity ------------------------------------------------------------------------

/// The scanner's verdict on a whole body: not JSON, truncated, or one complete value.
#[test]
fn json_scanner_validity() {
    let verdict = |chunks: &[&[u8]]| {
        let mut s = JsonUsageScanner::new();
        for c in chunks {
            s.feed(c);
        }
        (s.is_invalid(), s.is_complete())
    };
    let body: &[u8] = b" \r\n{\"id\":\"x\",\"usage\":{\"prompt_tokens\":1}}\n";
    for k in 0..=body.len() {
        assert_eq!(
            verdict(&[&body[..k], &body[k..]]),
            (false, true),
            "split at {k}"
        );
    }
    assert_eq!(verdict(&[b"\x00\x01NOT JSON{{{"]), (true, false));
    assert_eq!(verdict(&[b"<html>502 Bad Gateway</html>"]), (true, false));
    assert_eq!(verdict(&[b"{\"id\":\"x\",\"choi"]), (false, false));
    assert_eq!(verdict(&[]), (false, false));
    // Garbage after the value: not one JSON value (the old tokenizer stopped looking once
    // a value was complete in an earlier chunk; the verdict no longer depends on chunks).
    assert_eq!(
        verdict(&[b"[1,2]", b"ignored after the value"]),
        (false, false)
    );
    assert_eq!(verdict(&[b"[1,2]ignored"]), (false, false));
    assert_eq!(verdict(&[b"[1,2", b"]", b" \n"]), (false, true));
    assert_eq!(verdict(&[b"{\"a\":x}"]), (false, false));
}

#[test]
fn the_first_content_event_is_the_commit_point() {
    let content = |events: &[&str]| {
        let mut s = SseScanner::new();
        for e in events {
            s.feed(e.as_bytes()).unwrap();
        }
        s.reached_content()
    };
    let role = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
    assert!(!content(&[role, ": ping\n\n", "data:\n\n"]));
    for first in [
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"refusal\":\"no\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hm\"}}]}\n\n",
        "data: {\"choices\":[{\"text\":\"Hi\",\"index\":0}]}\n\n",
    ] {
        assert!(content(&[role, first]), "{first}");
    }
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n";
    let ping = "event: ping\ndata: {\"type\":\"ping\"}\n\n";
    let block = "event: content_block_start\ndata: {\"type\":\"content_block_start\"}\n\n";
    let delta = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n";
    assert!(!content(&[start, ping, block]));
    assert!(content(&[start, ping, block, delta]));
    // cut inside an event: the scanner knows the client may have half an event
    let mut s = SseScanner::new();
    s.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"He")
        .unwrap();
    assert!(s.is_mid_event() && !s.reached_content());
}

/// Gemini's `usageMetadata`: the prompt count includes cached content, thoughts count as
/// output; in a streamed JSON array the last element's counts win; in SSE chunks too.
#[test]
fn gemini_usage_metadata_in_objects_arrays_and_streams() {
    let gemini = TokenUsage {
        input: 70,
        output: 25,
        cache_read: 30,
        cache_write: 0,
    };
    let obj = br#"{"candidates":[],"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":20,"cachedContentTokenCount":30,"thoughtsTokenCount":5,"totalTokenCount":125}}"#;
    assert_eq!(json_usage([&obj[..]]), Some(gemini));
    let array = br#"[{"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":1}},
{"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":20,"cachedContentTokenCount":30,"thoughtsTokenCount":5}}]"#;
    for k in 0..array.len() {
        assert_eq!(
            json_usage([&array[..k], &array[k..]]),
            Some(gemini),
            "split at {k}"
        );
    }
    let sse = concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}],\"usageMetadata\":{\"promptTokenCount\":100,\"candidatesTokenCount\":1}}\n\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":100,\"candidatesTokenCount\":20,\"cachedContentTokenCount\":30,\"thoughtsTokenCount\":5}}\n\n",
    );
    assert_eq!(split_invariant(sse.as_bytes()).usage, Some(gemini));
    // a bad count spoils the object, as for the other dialects
    let bad = br#"{"usageMetadata":{"promptTokenCount":"100"}}"#;
    assert_eq!(json_usage([&bad[..]]), None);
}

/// A Gemini stream: held until the first chunk with a part, complete at the chunk with a
/// `finishReason` (no `[DONE]` follows), usage from its `usageMetadata`.
#[test]
fn gemini_streams_commit_at_their_first_part_and_end_at_a_finish_reason() {
    let scan = |body: &[u8]| {
        let mut s = SseScanner::with_preamble(Preamble::Gemini);
        s.feed(body).unwrap();
        (s.reached_content(), s.finished())
    };
    let empty = b"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[]}}]}\n\n";
    assert_eq!(scan(empty), (false, false));
    let part = b"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hi\"}]}}]}\n\n";
    assert_eq!(scan(part), (true, false));
    let last = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2}}\n\n";
    let mut all = part.to_vec();
    all.extend_from_slice(last);
    assert_eq!(scan(&all), (true, true));
    let mut s = SseScanner::with_preamble(Preamble::Gemini);
    s.feed(&all).unwrap();
    assert_eq!(s.usage().map(|u| (u.input, u.output)), Some((3, 2)));
    // the other dialects' scanners are not changed by a finishReason
    let mut s = SseScanner::with_preamble(Preamble::OpenAiChunks);
    s.feed(last).unwrap();
    assert!(!s.finished());
}
