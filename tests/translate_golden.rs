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

use berry_gateway::translate::stream::{EventTranslator, StreamTranslator};
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
    match dir {
        Dir::ChatClient { include_usage } => {
            drive(
                chat_to_messages::Stream::new_at(include_usage, CREATED),
                chunks,
            )
            .0
        }
        Dir::MessagesClient => drive(messages_to_chat::Stream::new(), chunks).0,
    }
}

/// Feeds `chunks` to a stream translator (stopping at the first error) and finishes it:
/// what it produced, and the translator for its end state.
fn drive<T: EventTranslator>(
    mut s: StreamTranslator<T>,
    chunks: &[&[u8]],
) -> (Run, StreamTranslator<T>) {
    let mut out = Vec::new();
    let mut feed = Ok(());
    for c in chunks {
        if let Err(e) = s.feed(c, &mut out) {
            feed = Err(e);
            break;
        }
    }
    let run = Run {
        out,
        feed,
        finish: s.finish(),
        usage: s.usage(),
        started: s.started_content(),
        saw_error: s.saw_error(),
    };
    (run, s)
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

// ------------------------------------------------------------------------- Responses client
// OpenAI Responses client → Anthropic Messages backend (`responses_to_messages`).

use berry_gateway::translate::responses::{self as responses_api, AnswerContext, RequestContext};

/// The response id the gateway issued in the answer fixtures.
const RESPONSE_ID: &str = "resp_test";
/// The client request the answer fixtures answer: its settings are echoed, its custom tool
/// is answered as `custom_tool_call`.
const ANSWERED_REQUEST: &str = r#"{"model":"alias","instructions":"Be brief.","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}},{"type":"custom","name":"apply_patch"}],"temperature":0.5,"metadata":{"k":"v"}}"#;
/// The same for the `json_*` fixtures: a JSON answer was asked for.
const ANSWERED_JSON_REQUEST: &str = r#"{"model":"alias","text":{"format":{"type":"json_schema","name":"person","schema":{"type":"object"}}}}"#;

fn responses_answer_context(path: &Path) -> AnswerContext {
    let name = path.file_name().unwrap().to_string_lossy();
    let req = if name.starts_with("json_") {
        ANSWERED_JSON_REQUEST
    } else {
        ANSWERED_REQUEST
    };
    let mut cx = AnswerContext::new(RESPONSE_ID.into(), ANTHROPIC_MODEL.into(), req.as_bytes());
    cx.created_at = CREATED;
    cx
}

fn render_responses_request(body: &[u8]) -> String {
    let cx = RequestContext {
        model: ANTHROPIC_MODEL,
        history: None,
    };
    match responses_api::to_messages(body, &cx) {
        Ok(t) => format!("dropped_tools: {:?}\n{}", t.dropped_tools, pretty(&t.body)),
        Err(e) => format!("untranslatable\nparam: {}\nmessage: {}", e.param, e.message),
    }
}

/// A Responses stream run: what a [`Run`] holds plus the output items and the next
/// sequence number.
fn run_responses(path: &Path, chunks: &[&[u8]]) -> (Run, Vec<u8>, u64, Option<Vec<u8>>) {
    let s = responses_api::new_messages_stream(responses_answer_context(path));
    let (run, s) = drive(s, chunks);
    let st = s.state();
    (
        run,
        st.output_items(),
        st.next_sequence_number(),
        st.completed_response(),
    )
}

/// Checks what the openai SDK's stream accumulator checks (`responses.stream(...)`):
/// `response.created` first, sequence numbers 0, 1, 2, …, item events naming an existing
/// item of the right type by index and id, text deltas into an `output_text` part, and
/// the final response's items equal to the `output_item.done` items.
fn check_responses_events(evs: &[(String, Value)]) {
    let mut items: Vec<Value> = Vec::new();
    for (n, (name, data)) in evs.iter().enumerate() {
        assert_eq!(
            data["type"].as_str(),
            Some(name.as_str()),
            "event name = type"
        );
        assert_eq!(data["sequence_number"].as_u64(), Some(n as u64), "{name}");
        if n == 0 && name != "error" {
            assert_eq!(name, "response.created");
            assert_eq!(data["response"]["output"], Value::Array(vec![]));
        }
        let ix = data["output_index"].as_u64().map(|i| i as usize);
        match name.as_str() {
            "response.output_item.added" => {
                assert_eq!(ix, Some(items.len()));
                items.push(data["item"].clone());
            }
            "response.completed" | "response.incomplete" => {
                assert_eq!(data["response"]["output"], Value::Array(items.clone()));
            }
            "response.created" | "response.in_progress" | "error" => {}
            _ => {
                let item = &mut items[ix.unwrap()];
                assert_eq!(
                    data["item_id"].as_str().or(data["item"]["id"].as_str()),
                    item["id"].as_str()
                );
                match name.as_str() {
                    "response.content_part.added" => {
                        assert_eq!(item["type"], "message");
                        item["content"]
                            .as_array_mut()
                            .unwrap()
                            .push(data["part"].clone());
                    }
                    "response.output_text.delta" => {
                        let part =
                            &mut item["content"][data["content_index"].as_u64().unwrap() as usize];
                        assert_eq!(part["type"], "output_text");
                        let t = format!(
                            "{}{}",
                            part["text"].as_str().unwrap(),
                            data["delta"].as_str().unwrap()
                        );
                        part["text"] = Value::String(t);
                    }
                    "response.output_text.done" => {
                        let part =
                            &item["content"][data["content_index"].as_u64().unwrap() as usize];
                        assert_eq!(part["text"], data["text"], "text deltas add up");
                    }
                    "response.function_call_arguments.delta" => {
                        assert_eq!(item["type"], "function_call");
                        let t = format!(
                            "{}{}",
                            item["arguments"].as_str().unwrap(),
                            data["delta"].as_str().unwrap()
                        );
                        item["arguments"] = Value::String(t);
                    }
                    "response.function_call_arguments.done" => {
                        assert_eq!(
                            item["arguments"], data["arguments"],
                            "argument deltas add up"
                        );
                    }
                    "response.output_item.done" => {
                        let done = data["item"].clone();
                        if item["type"] == "message" {
                            assert_eq!(item["content"], done["content"]);
                        }
                        *item = done;
                    }
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn responses_client_requests() {
    insta::glob!(
        "fixtures/translate/responses_to_messages/request/*",
        |path| {
            insta::assert_snapshot!(render_responses_request(&read(path)));
        }
    );
}

#[test]
fn responses_client_responses() {
    insta::glob!(
        "fixtures/translate/responses_to_messages/response/*",
        |path| {
            let cx = responses_answer_context(path);
            let r = match responses_api::from_messages(&read(path), &cx) {
                Ok(a) => format!(
                    "usage: {}\n{}\noutput_items:\n{}",
                    usage(&a.usage),
                    pretty(&a.body),
                    pretty(&a.output_items)
                ),
                Err(e) => broken(&e),
            };
            insta::assert_snapshot!(r);
        }
    );
}

#[test]
fn responses_client_errors() {
    insta::glob!("fixtures/translate/responses_to_messages/error/*", |path| {
        insta::assert_snapshot!(render_error(errors::anthropic_to_openai(
            status_of(path),
            &read(path)
        )));
    });
}

#[test]
fn responses_client_streams() {
    insta::glob!(
        "fixtures/translate/responses_to_messages/stream/*",
        |path| {
            let input = read(path);
            let whole = run_responses(path, &[&input]);
            for k in 0..=input.len() {
                assert_eq!(
                    run_responses(path, &[&input[..k], &input[k..]]),
                    whole,
                    "split at {k}"
                );
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(run_responses(path, &bytes), whole, "byte at a time");
            let (r, items, next, completed) = &whole;
            let evs = events(&r.out);
            check_responses_events(&evs);
            assert_eq!(*next, evs.len() as u64);
            if let Some(c) = completed {
                let c: Value = serde_json::from_slice(c).unwrap();
                let last = &evs.last().unwrap().1;
                assert_eq!(
                    canon(c),
                    last["response"],
                    "completed_response = the last event's"
                );
            }
            insta::assert_snapshot!(format!(
                "{}--- output items\n{}\n",
                render_stream(r),
                pretty(items)
            ));
        }
    );
}

/// The gateway's own error event on a cut Responses stream.
#[test]
fn responses_own_stream_error_event() {
    let ev = responses_api::stream_error_event(7, "stream_error", "cut \"x\"");
    insta::assert_snapshot!(String::from_utf8_lossy(&ev));
}

// ------------------------------------------------------------------------- Responses client, chat backend
// OpenAI Responses client → OpenAI chat completions backend (`responses_to_chat`).

fn responses_chat_answer_context(path: &Path) -> AnswerContext {
    let name = path.file_name().unwrap().to_string_lossy();
    let req = if name.starts_with("json_") {
        ANSWERED_JSON_REQUEST
    } else {
        ANSWERED_REQUEST
    };
    let mut cx = AnswerContext::new(RESPONSE_ID.into(), CHAT_MODEL.into(), req.as_bytes());
    cx.created_at = CREATED;
    cx
}

fn render_responses_chat_request(body: &[u8], history: Option<&[u8]>) -> String {
    let cx = RequestContext {
        model: CHAT_MODEL,
        history,
    };
    match responses_api::to_chat(body, &cx) {
        Ok(t) => format!("dropped_tools: {:?}\n{}", t.dropped_tools, pretty(&t.body)),
        Err(e) => format!("untranslatable\nparam: {}\nmessage: {}", e.param, e.message),
    }
}

/// [`run_responses`] for the chat backend's stream.
fn run_responses_chat(path: &Path, chunks: &[&[u8]]) -> (Run, Vec<u8>, u64, Option<Vec<u8>>) {
    let s = responses_api::new_chat_stream(responses_chat_answer_context(path));
    let (run, s) = drive(s, chunks);
    let st = s.state();
    (
        run,
        st.output_items(),
        st.next_sequence_number(),
        st.completed_response(),
    )
}

#[test]
fn responses_chat_requests() {
    insta::glob!("fixtures/translate/responses_to_chat/request/*", |path| {
        insta::assert_snapshot!(render_responses_chat_request(&read(path), None));
    });
}

/// Requests continuing a stored conversation: each file is `{"history": [items], "request":
/// {…}}`.
#[test]
fn responses_chat_requests_with_history() {
    #[derive(serde::Deserialize)]
    struct Case<'a> {
        #[serde(borrow)]
        history: &'a serde_json::value::RawValue,
        #[serde(borrow)]
        request: &'a serde_json::value::RawValue,
    }
    insta::glob!("fixtures/translate/responses_to_chat/history/*", |path| {
        let bytes = read(path);
        let case: Case<'_> = serde_json::from_slice(&bytes).unwrap();
        insta::assert_snapshot!(render_responses_chat_request(
            case.request.get().as_bytes(),
            Some(case.history.get().as_bytes())
        ));
    });
}

#[test]
fn responses_chat_responses() {
    insta::glob!("fixtures/translate/responses_to_chat/response/*", |path| {
        let cx = responses_chat_answer_context(path);
        let r = match responses_api::from_chat(&read(path), &cx) {
            Ok(a) => format!(
                "usage: {}\n{}\noutput_items:\n{}",
                usage(&a.usage),
                pretty(&a.body),
                pretty(&a.output_items)
            ),
            Err(e) => broken(&e),
        };
        insta::assert_snapshot!(r);
    });
}

#[test]
fn responses_chat_streams() {
    insta::glob!("fixtures/translate/responses_to_chat/stream/*", |path| {
        let input = read(path);
        let whole = run_responses_chat(path, &[&input]);
        for k in 0..=input.len() {
            assert_eq!(
                run_responses_chat(path, &[&input[..k], &input[k..]]),
                whole,
                "split at {k}"
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run_responses_chat(path, &bytes), whole, "byte at a time");
        let (r, items, next, completed) = &whole;
        if let Err(e) = r.feed {
            let mut s = responses_api::new_chat_stream(responses_chat_answer_context(path));
            let mut out = Vec::new();
            assert_eq!(s.feed(&input, &mut out), Err(e));
            assert_eq!(s.feed(b"data: {}\n\n", &mut out), Err(e), "sticky feed");
            assert_eq!(s.finish(), Err(e), "sticky finish");
        }
        let evs = events(&r.out);
        check_responses_events(&evs);
        assert_eq!(*next, evs.len() as u64);
        if let Some(c) = completed {
            let c: Value = serde_json::from_slice(c).unwrap();
            let last = &evs.last().unwrap().1;
            assert_eq!(
                canon(c),
                last["response"],
                "completed_response = the last event's"
            );
        }
        insta::assert_snapshot!(format!(
            "{}--- output items\n{}\n",
            render_stream(r),
            pretty(items)
        ));
    });
}

// ------------------------------------------------------------------------- Gemini clients
#[path = "golden/gemini.rs"]
mod gemini_golden;
