//! Gemini clients on translated backends (`gemini_to_chat`, `gemini_to_messages`): requests,
//! answers, streams in both framings (SSE and the JSON array), upstream errors and
//! countTokens. File-name prefixes set the answer context: `json_` (the request asked for
//! JSON), `thoughts_` (it asked for thoughts).

use super::{broken, canon, drive, pretty, read, status_of, usage, verdict, Run};
use berry_gateway::translate::gemini::{self, AnswerContext, RequestContext};
use berry_gateway::translate::UpstreamBroken;
use berry_gateway::vocab::TokenUsage;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

const CHAT_MODEL: &str = "gpt-real";

/// `insta::glob!` over `tests/fixtures/translate/<dir>/*`, snapshots in `tests/snapshots/`.
macro_rules! glob {
    ($dir:literal, $f:expr) => {
        insta::with_settings!({snapshot_path => "../snapshots"}, {
            insta::glob!(
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/translate"),
                concat!($dir, "/*"),
                $f
            );
        })
    };
}
const ANTHROPIC_MODEL: &str = "claude-real";

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Chat,
    Messages,
}

fn answer_context(path: &Path, sse: bool) -> AnswerContext {
    let name = path.file_name().unwrap().to_string_lossy();
    let mut cx = AnswerContext::new("backend-real".into(), "resp-1".into(), sse);
    cx.json_answer = name.starts_with("json_");
    cx.include_thoughts = name.starts_with("thoughts_");
    cx
}

fn render_request(backend: Backend, body: &[u8]) -> String {
    let (model, f): (_, fn(&[u8], &RequestContext) -> _) = match backend {
        Backend::Chat => (CHAT_MODEL, gemini::to_chat),
        Backend::Messages => (ANTHROPIC_MODEL, gemini::to_messages),
    };
    let mut s = String::new();
    for stream in [false, true] {
        let cx = RequestContext { model, stream };
        let r = match f(body, &cx) {
            Ok(t) => pretty(&t.body),
            Err(e) => format!("untranslatable\nparam: {}\nmessage: {}", e.param, e.message),
        };
        writeln!(s, "--- stream: {stream}\n{r}").unwrap();
    }
    s
}

fn render_response(r: Result<(Vec<u8>, TokenUsage), UpstreamBroken>) -> String {
    match r {
        Ok((body, u)) => format!("usage: {}\n{}", usage(&u), pretty(&body)),
        Err(e) => broken(&e),
    }
}

fn run(backend: Backend, cx: AnswerContext, chunks: &[&[u8]]) -> (Run, bool) {
    match backend {
        Backend::Chat => {
            let (r, s) = drive(gemini::new_chat_stream(cx), chunks);
            (r, s.state().array_open())
        }
        Backend::Messages => {
            let (r, s) = drive(gemini::new_messages_stream(cx), chunks);
            (r, s.state().array_open())
        }
    }
}

/// Runs whole, at every two-way split and byte at a time (all must agree).
fn run_checked(backend: Backend, path: &Path, sse: bool, input: &[u8]) -> (Run, bool) {
    let whole = run(backend, answer_context(path, sse), &[input]);
    for k in 0..=input.len() {
        let r = run(
            backend,
            answer_context(path, sse),
            &[&input[..k], &input[k..]],
        );
        assert!(r == whole, "split at {k}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert!(
        run(backend, answer_context(path, sse), &bytes) == whole,
        "byte at a time"
    );
    whole
}

/// The chunks of an SSE output (each `data:` parsed).
fn sse_chunks(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"), "whole events");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"));
            canon(serde_json::from_str(data).unwrap())
        })
        .collect()
}

fn render_stream(backend: Backend, path: &Path) -> String {
    let input = read(path);
    let (sse, sse_open) = run_checked(backend, path, true, &input);
    let (arr, arr_open) = run_checked(backend, path, false, &input);
    assert!(!sse_open);
    assert_eq!((sse.feed, sse.finish), (arr.feed, arr.finish));
    assert_eq!((sse.started, sse.saw_error), (arr.started, arr.saw_error));
    let chunks = sse_chunks(&sse.out);
    // The array framing holds the same chunks; when left open, the gateway's error closes it.
    let mut closed = arr.out.clone();
    if arr_open {
        closed.extend(gemini::stream_error_chunk(false, true, 502, "cut"));
    } else if arr.out.is_empty() {
        closed.extend_from_slice(b"[]");
    }
    let elements: Vec<Value> = serde_json::from_slice::<Vec<Value>>(&closed)
        .unwrap_or_else(|e| {
            panic!(
                "array framing ({e}): {:?}",
                String::from_utf8_lossy(&closed)
            )
        })
        .into_iter()
        .map(canon)
        .collect();
    assert_eq!(&elements[..chunks.len()], &chunks[..]);
    if !arr.out.is_empty() {
        assert!(arr.out.starts_with(b"[{"));
    }
    let mut s = String::new();
    writeln!(s, "feed: {}", verdict(&sse.feed)).unwrap();
    writeln!(s, "finish: {}", verdict(&sse.finish)).unwrap();
    match &sse.usage {
        Some(u) => writeln!(s, "usage: {}", usage(u)).unwrap(),
        None => writeln!(s, "usage: none").unwrap(),
    }
    writeln!(s, "started: {}, saw_error: {}", sse.started, sse.saw_error).unwrap();
    writeln!(s, "array left open: {arr_open}").unwrap();
    for c in chunks {
        writeln!(s, "--- data\n{}", serde_json::to_string_pretty(&c).unwrap()).unwrap();
    }
    s
}

#[test]
fn gemini_chat_requests() {
    glob!("gemini_to_chat/request", |path| {
        insta::assert_snapshot!(render_request(Backend::Chat, &read(path)));
    });
}

#[test]
fn gemini_messages_requests() {
    glob!("gemini_to_messages/request", |path| {
        insta::assert_snapshot!(render_request(Backend::Messages, &read(path)));
    });
}

#[test]
fn gemini_chat_responses() {
    glob!("gemini_to_chat/response", |path| {
        let cx = answer_context(path, false);
        insta::assert_snapshot!(render_response(gemini::from_chat(&read(path), &cx)));
    });
}

#[test]
fn gemini_messages_responses() {
    glob!("gemini_to_messages/response", |path| {
        let cx = answer_context(path, false);
        insta::assert_snapshot!(render_response(gemini::from_messages(&read(path), &cx)));
    });
}

#[test]
fn gemini_chat_streams() {
    glob!("gemini_to_chat/stream", |path| {
        insta::assert_snapshot!(render_stream(Backend::Chat, path));
    });
}

#[test]
fn gemini_messages_streams() {
    glob!("gemini_to_messages/stream", |path| {
        insta::assert_snapshot!(render_stream(Backend::Messages, path));
    });
}

#[test]
fn gemini_chat_errors() {
    glob!("gemini_to_chat/error", |path| {
        let (status, body) = gemini::from_openai_error(status_of(path), &read(path));
        insta::assert_snapshot!(format!("status: {status}\n{}", pretty(&body)));
    });
}

#[test]
fn gemini_messages_errors() {
    glob!("gemini_to_messages/error", |path| {
        let (status, body) = gemini::from_anthropic_error(status_of(path), &read(path));
        insta::assert_snapshot!(format!("status: {status}\n{}", pretty(&body)));
    });
}

#[test]
fn gemini_count_tokens() {
    glob!("gemini_to_messages/count_tokens", |path| {
        let cx = RequestContext {
            model: ANTHROPIC_MODEL,
            stream: false,
        };
        let r = match gemini::count_tokens_to_messages(&read(path), &cx) {
            Ok(t) => pretty(&t.body),
            Err(e) => format!("untranslatable\nparam: {}\nmessage: {}", e.param, e.message),
        };
        insta::assert_snapshot!(r);
    });
    let answer = gemini::count_tokens_from_messages(br#"{"input_tokens":42}"#).unwrap();
    assert_eq!(answer, br#"{"totalTokens":42}"#);
}
