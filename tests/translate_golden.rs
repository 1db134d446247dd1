//! Golden fixtures of the dialect translators: for each pair (chat client → Anthropic backend,
//! Anthropic client → chat backend) and each kind (request, response, stream, upstream error),
//! every file under `tests/fixtures/translate/<pair>/<kind>/` is translated and the result is
//! compared with its snapshot in `tests/snapshots/` (insta; `CI=true` fails on a mismatch,
//! `INSTA_UPDATE=always` rewrites them after a reviewed change).
//!
//! Snapshots are normalised so that only meaning shows: JSON bodies are parsed and
//! pretty-printed with sorted keys, streams are listed as (event name, parsed data) with the
//! translator's verdicts, a refused request as its `param` and message. Byte-exact properties
//! (text, tool arguments and ids copied verbatim, the SSE framing) are asserted in
//! `src/translate/tests.rs`.
//!
//! Besides the snapshot, every stream fixture is checked to translate the same at every
//! two-way split and byte at a time, to keep a broken stream broken (errors are sticky), and,
//! for a chat client, to differ without `include_usage` only by the usage chunk.
//!
//! Fixture naming: a request or response file is one body; a stream file is the raw upstream
//! event stream; an error file is named `<status>_<what>` and holds the upstream error body.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::path::Path;

use berry_gateway::sse::SseDecoder;
use serde_json::Value;

// ------------------------------------------------------------------------- the adapters
// The one place that names the translators' API: a rename or a moved module touches only
// this block.

use berry_gateway::translate::{chat_to_messages, errors, messages_to_chat, UpstreamBroken};
use berry_gateway::vocab::TokenUsage;

/// A request the target dialect cannot express: its `param` and client-facing message.
struct Refused {
    param: String,
    message: String,
}

/// The backend model a translated request names.
const ANTHROPIC_MODEL: &str = "claude-real";
const CHAT_MODEL: &str = "gpt-real";
/// The `created` time of translated chat completions and chunks.
const CREATED: u64 = 77;

/// Chat client → Anthropic backend: the client's request.
fn chat_client_request(body: &[u8]) -> Result<Vec<u8>, Refused> {
    chat_to_messages::request(body, ANTHROPIC_MODEL).map_err(|r| Refused {
        param: r.param,
        message: r.message,
    })
}

/// Chat client → Anthropic backend: the backend's answer.
fn chat_client_response(body: &[u8]) -> Result<(Vec<u8>, TokenUsage), UpstreamBroken> {
    chat_to_messages::response_at(body, CREATED)
}

/// Chat client → Anthropic backend: the backend's error answer.
fn chat_client_error(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    errors::anthropic_to_openai(status, body)
}

/// Anthropic client → chat backend: the client's request.
fn messages_client_request(body: &[u8]) -> Result<Vec<u8>, Refused> {
    messages_to_chat::request(body, CHAT_MODEL).map_err(|r| Refused {
        param: r.param,
        message: r.message,
    })
}

/// Anthropic client → chat backend: the backend's answer.
fn messages_client_response(body: &[u8]) -> Result<(Vec<u8>, TokenUsage), UpstreamBroken> {
    messages_to_chat::response(body)
}

/// Anthropic client → chat backend: the backend's error answer.
fn messages_client_error(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    errors::openai_to_anthropic(status, body)
}

/// The Anthropic error type for an upstream status.
fn anthropic_error_type(status: u16) -> &'static str {
    errors::anthropic_error_type(status)
}

/// The gateway's own stream error event in each client dialect.
fn own_stream_error_events(message: &str) -> [Vec<u8>; 2] {
    [
        chat_to_messages::stream_error_event(message),
        messages_to_chat::stream_error_event(message),
    ]
}

/// Which stream translator.
#[derive(Clone, Copy)]
enum Dir {
    /// Anthropic events in, chat chunks out.
    ChatClient { include_usage: bool },
    /// Chat chunks in, Anthropic events out.
    MessagesClient,
}

/// A stream translator of either direction.
enum Stream {
    ChatClient(chat_to_messages::Stream),
    MessagesClient(messages_to_chat::Stream),
}

impl Stream {
    fn new(dir: Dir) -> Self {
        match dir {
            Dir::ChatClient { include_usage } => {
                Stream::ChatClient(chat_to_messages::Stream::new_at(include_usage, CREATED))
            }
            Dir::MessagesClient => Stream::MessagesClient(messages_to_chat::Stream::new()),
        }
    }

    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        match self {
            Stream::ChatClient(s) => s.feed(chunk, out),
            Stream::MessagesClient(s) => s.feed(chunk, out),
        }
    }

    fn finish(&self) -> Result<(), UpstreamBroken> {
        match self {
            Stream::ChatClient(s) => s.finish(),
            Stream::MessagesClient(s) => s.finish(),
        }
    }

    /// Usage so far, the commit point, an in-band error seen.
    fn flags(&self) -> (Option<TokenUsage>, bool, bool) {
        match self {
            Stream::ChatClient(s) => (s.usage(), s.started_content(), s.saw_error()),
            Stream::MessagesClient(s) => (s.usage(), s.started_content(), s.saw_error()),
        }
    }
}

// ------------------------------------------------------------------------- rendering

/// `v` with the members of every object in key order (whatever map the build uses).
fn canon(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut members: Vec<(String, Value)> = m.into_iter().collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(members.into_iter().map(|(k, v)| (k, canon(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(canon).collect()),
        v => v,
    }
}

/// A JSON body pretty-printed with sorted keys, or the text marked as not JSON.
fn pretty(bytes: &[u8]) -> String {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => serde_json::to_string_pretty(&canon(v)).unwrap(),
        Err(_) => format!("NOT JSON: {:?}", String::from_utf8_lossy(bytes)),
    }
}

fn usage(u: &TokenUsage) -> String {
    format!(
        "input {}, output {}, cache_read {}, cache_write {}",
        u.input, u.output, u.cache_read, u.cache_write
    )
}

fn broken(e: &UpstreamBroken) -> String {
    format!("broken ({:?}): {}", e.fault, e.why)
}

fn verdict(r: &Result<(), UpstreamBroken>) -> String {
    match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => broken(e),
    }
}

fn render_request(r: Result<Vec<u8>, Refused>) -> String {
    match r {
        Ok(body) => pretty(&body),
        Err(e) => format!("untranslatable\nparam: {}\nmessage: {}", e.param, e.message),
    }
}

fn render_response(r: Result<(Vec<u8>, TokenUsage), UpstreamBroken>) -> String {
    match r {
        Ok((body, u)) => format!("usage: {}\n{}", usage(&u), pretty(&body)),
        Err(e) => broken(&e),
    }
}

fn render_error((status, body): (u16, Vec<u8>)) -> String {
    format!("status: {status}\n{}", pretty(&body))
}

/// Whole events of a translated stream: (name, data), data parsed (`[DONE]` kept as text).
/// Panics unless the output is whole events.
fn events(out: &[u8]) -> Vec<(String, Value)> {
    let mut d = SseDecoder::new();
    let mut evs = Vec::new();
    d.feed(out, |e| {
        let data = if e.data == b"[DONE]" {
            Value::String("[DONE]".into())
        } else {
            serde_json::from_slice(e.data).unwrap_or_else(|err| {
                panic!("event data not JSON ({err}): {:?}", e.data.escape_ascii())
            })
        };
        evs.push((String::from_utf8_lossy(e.event).into_owned(), canon(data)));
    })
    .unwrap();
    assert!(!d.is_mid_event(), "output ends mid-event");
    evs
}

/// What a stream translator produced for some input.
#[derive(Debug, PartialEq)]
struct Run {
    out: Vec<u8>,
    feed: Result<(), UpstreamBroken>,
    finish: Result<(), UpstreamBroken>,
    usage: Option<TokenUsage>,
    started: bool,
    saw_error: bool,
}

fn run(dir: Dir, chunks: &[&[u8]]) -> Run {
    let mut s = Stream::new(dir);
    let mut out = Vec::new();
    let mut feed = Ok(());
    for c in chunks {
        if let Err(e) = s.feed(c, &mut out) {
            feed = Err(e);
            break;
        }
    }
    let finish = s.finish();
    let (usage, started, saw_error) = s.flags();
    Run {
        out,
        feed,
        finish,
        usage,
        started,
        saw_error,
    }
}

/// Runs `input` whole, at every two-way split and byte at a time: all must agree. A broken
/// stream stays broken: a later feed and the finish answer the same error.
fn run_checked(dir: Dir, input: &[u8]) -> Run {
    let whole = run(dir, &[input]);
    for k in 0..=input.len() {
        assert_eq!(run(dir, &[&input[..k], &input[k..]]), whole, "split at {k}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(dir, &bytes), whole, "byte at a time");
    if let Err(e) = whole.feed {
        let mut s = Stream::new(dir);
        let mut out = Vec::new();
        assert_eq!(s.feed(input, &mut out), Err(e));
        assert_eq!(s.feed(b"data: {}\n\n", &mut out), Err(e), "sticky feed");
        assert_eq!(s.finish(), Err(e), "sticky finish");
    }
    whole
}

fn render_stream(r: &Run) -> String {
    let mut s = String::new();
    writeln!(s, "feed: {}", verdict(&r.feed)).unwrap();
    writeln!(s, "finish: {}", verdict(&r.finish)).unwrap();
    match &r.usage {
        Some(u) => writeln!(s, "usage: {}", usage(u)).unwrap(),
        None => writeln!(s, "usage: none").unwrap(),
    }
    writeln!(s, "started: {}, saw_error: {}", r.started, r.saw_error).unwrap();
    for (name, data) in events(&r.out) {
        let name = if name.is_empty() {
            "(data only)"
        } else {
            &name
        };
        writeln!(
            s,
            "--- {name}\n{}",
            serde_json::to_string_pretty(&data).unwrap()
        )
        .unwrap();
    }
    s
}

// ------------------------------------------------------------------------- the fixtures

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The status an error fixture's name starts with (`529_overloaded.json`).
fn status_of(path: &Path) -> u16 {
    let name = path.file_name().unwrap().to_string_lossy();
    name.split('_')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{name}: an error fixture's name starts with its status"))
}

#[test]
fn chat_client_requests() {
    insta::glob!("fixtures/translate/chat_to_messages/request/*", |path| {
        insta::assert_snapshot!(render_request(chat_client_request(&read(path))));
    });
}

#[test]
fn chat_client_responses() {
    insta::glob!("fixtures/translate/chat_to_messages/response/*", |path| {
        insta::assert_snapshot!(render_response(chat_client_response(&read(path))));
    });
}

#[test]
fn chat_client_errors() {
    insta::glob!("fixtures/translate/chat_to_messages/error/*", |path| {
        insta::assert_snapshot!(render_error(chat_client_error(
            status_of(path),
            &read(path)
        )));
    });
}

#[test]
fn chat_client_streams() {
    insta::glob!("fixtures/translate/chat_to_messages/stream/*", |path| {
        let input = read(path);
        let with_usage = run_checked(
            Dir::ChatClient {
                include_usage: true,
            },
            &input,
        );
        // Without include_usage: the same, less the usage chunk.
        let without = run_checked(
            Dir::ChatClient {
                include_usage: false,
            },
            &input,
        );
        let usage_chunk = |(_, d): &(String, Value)| {
            d.get("usage").is_some() && d["choices"] == Value::Array(Vec::new())
        };
        let mut want = events(&with_usage.out);
        want.retain(|e| !usage_chunk(e));
        assert_eq!(events(&without.out), want);
        assert_eq!(
            (
                &without.feed,
                &without.finish,
                without.usage,
                without.started
            ),
            (
                &with_usage.feed,
                &with_usage.finish,
                with_usage.usage,
                with_usage.started
            )
        );
        assert_eq!(without.saw_error, with_usage.saw_error);
        insta::assert_snapshot!(render_stream(&with_usage));
    });
}

#[test]
fn messages_client_requests() {
    insta::glob!("fixtures/translate/messages_to_chat/request/*", |path| {
        insta::assert_snapshot!(render_request(messages_client_request(&read(path))));
    });
}

#[test]
fn messages_client_responses() {
    insta::glob!("fixtures/translate/messages_to_chat/response/*", |path| {
        insta::assert_snapshot!(render_response(messages_client_response(&read(path))));
    });
}

#[test]
fn messages_client_errors() {
    insta::glob!("fixtures/translate/messages_to_chat/error/*", |path| {
        insta::assert_snapshot!(render_error(messages_client_error(
            status_of(path),
            &read(path)
        )));
    });
}

#[test]
fn messages_client_streams() {
    insta::glob!("fixtures/translate/messages_to_chat/stream/*", |path| {
        let r = run_checked(Dir::MessagesClient, &read(path));
        insta::assert_snapshot!(render_stream(&r));
    });
}

/// Upstream statuses → Anthropic error types, alone and for a body that is no error object.
#[test]
fn error_type_by_status() {
    let mut table = String::new();
    for status in [400, 401, 403, 404, 413, 422, 429, 500, 502, 503, 529, 418] {
        let (out_status, body) = messages_client_error(status, b"{}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        writeln!(
            table,
            "{status}: {} (body {{}} → {out_status} {})",
            anthropic_error_type(status),
            body["error"]["type"]
        )
        .unwrap();
    }
    insta::assert_snapshot!(table);
}

/// The gateway's own error event (a stream cut by the gateway), exact bytes in each dialect.
#[test]
fn own_stream_error_event() {
    let [chat, messages] = own_stream_error_events("cut \"x\"");
    insta::assert_snapshot!(format!(
        "chat client:\n{}\nAnthropic client:\n{}",
        String::from_utf8_lossy(&chat),
        String::from_utf8_lossy(&messages)
    ));
}
