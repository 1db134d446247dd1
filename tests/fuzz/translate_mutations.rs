//! Every translator on token soups with stray bytes and on mutations of the golden fixtures
//! (byte substitutions, cuts, duplicated and deleted ranges): nothing panics, the stream
//! translators produce the same result for a split input as for the whole, and what they
//! emit is whole events whose data is JSON or `[DONE]`.

use berry_gateway::sse::SseDecoder;
use berry_gateway::translate::{chat_to_messages, errors, messages_to_chat, UpstreamBroken};
use berry_gateway::vocab::TokenUsage;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use crate::{bytes, cuts, fuzz, is_json, split, Bytes};

// ------------------------------------------------------------------------------ adapters

/// Every non-stream translator on `body` (upstream errors with `status`): any result.
fn translate_all(body: &[u8], status: u16) {
    let _ = chat_to_messages::request(body, "m");
    let _ = messages_to_chat::request(body, "m");
    let _ = chat_to_messages::response(body);
    let _ = messages_to_chat::response(body);
    let _ = errors::anthropic_to_openai(status, body);
    let _ = errors::openai_to_anthropic(status, body);
}

/// What a stream translator produced for some input.
#[derive(Debug, PartialEq)]
struct Run {
    out: Bytes,
    feed: Result<(), UpstreamBroken>,
    finish: Result<(), UpstreamBroken>,
    usage: Option<TokenUsage>,
    started: bool,
    saw_error: bool,
}

#[derive(Debug, Clone, Copy)]
enum Dir {
    /// Anthropic events in, chat chunks out (with or without the usage chunk).
    ChatClient(bool),
    /// Chat chunks in, Anthropic events out.
    MessagesClient,
}

fn run(dir: Dir, chunks: &[&[u8]]) -> Run {
    macro_rules! go {
        ($t:expr) => {{
            let mut t = $t;
            let mut out = Vec::new();
            let mut feed = Ok(());
            for c in chunks {
                if let Err(e) = t.feed(c, &mut out) {
                    feed = Err(e);
                    break;
                }
            }
            Run {
                out: Bytes(out),
                feed,
                finish: t.finish(),
                usage: t.usage(),
                started: t.started_content(),
                saw_error: t.saw_error(),
            }
        }};
    }
    match dir {
        Dir::ChatClient(usage) => go!(chat_to_messages::Stream::new_at(usage, 1)),
        Dir::MessagesClient => go!(messages_to_chat::Stream::new()),
    }
}

// ------------------------------------------------------------------------------ checks

/// The same result whole and split at `cuts`; the output is whole events, each one's data
/// JSON or `[DONE]`.
fn check_stream(dir: Dir, input: &[u8], cuts: &[Index]) {
    let whole = run(dir, &[input]);
    let chunks = split(input, cuts);
    assert_eq!(run(dir, &chunks), whole, "{dir:?} split into {chunks:?}");
    let mut d = SseDecoder::new();
    let mut bad = None;
    let framed = d.feed(&whole.out, |ev| {
        if ev.data != b"[DONE]" && !is_json(ev.data) && bad.is_none() {
            bad = Some(Bytes(ev.data.to_vec()));
        }
    });
    assert_eq!(framed, Ok(()), "{dir:?}: output is not an event stream");
    assert_eq!(bad, None, "{dir:?}: event data is not JSON");
    assert!(!d.is_mid_event(), "{dir:?}: output ends mid-event");
}

// ------------------------------------------------------------------------------ token soup

/// Both dialects' vocabularies, framing and JSON punctuation.
const TOKENS: &[&[u8]] = &[
    b"data: ",
    b"event: ",
    b"\n",
    b"\n\n",
    b"\r\n",
    b"[DONE]",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"\"type\":\"message_start\"",
    b"\"type\":\"content_block_start\"",
    b"\"type\":\"content_block_delta\"",
    b"\"type\":\"content_block_stop\"",
    b"\"type\":\"message_delta\"",
    b"\"type\":\"message_stop\"",
    b"\"type\":\"error\"",
    b"\"message\":{\"id\":\"m\",\"model\":\"c\"}",
    b"\"index\":0",
    b"\"index\":1",
    b"\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\"}",
    b"\"content_block\":{\"type\":\"text\",\"text\":\"\"}",
    b"\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}",
    b"\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}",
    b"\"choices\":[{\"index\":0,\"delta\":{\"content\":\"y\"}}]",
    b"\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]",
    b"\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]",
    b"\"usage\":{\"prompt_tokens\":1,\"input_tokens\":2}",
    b"\"error\":{\"message\":\"e\"}",
    b"\"role\":\"user\"",
    b"\"messages\":[",
    b"\"content\":\"hi\"",
    b"\"tool_calls\":[",
    b"null",
    b"\xff",
    b"\\u0000",
    b"1e999",
];

/// Up to 48 pieces, each a token or (one time in ten) a random byte.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        9 => select(TOKENS).prop_map(<[u8]>::to_vec),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    vec(piece, 0..48).prop_map(|p| p.concat())
}

#[test]
fn every_translator_on_token_soup() {
    fuzz(
        4000,
        || (bytes(soup()), cuts(), any::<bool>()),
        |(body, cuts, usage)| {
            translate_all(&body, 500);
            check_stream(Dir::ChatClient(usage), &body, &cuts);
            check_stream(Dir::MessagesClient, &body, &cuts);
            Ok(())
        },
    );
}

// ------------------------------------------------------------------------------ mutations

/// Valid inputs of every kind: both dialects' streams, requests and answers.
const FIXTURES: &[&[u8]] = &[
    include_bytes!("../fixtures/translate/chat_to_messages/stream/full.sse"),
    include_bytes!("../fixtures/translate/messages_to_chat/stream/full.sse"),
    include_bytes!("../fixtures/translate/chat_to_messages/request/tools_and_conversation.json"),
    include_bytes!("../fixtures/translate/messages_to_chat/request/full.json"),
    include_bytes!("../fixtures/translate/chat_to_messages/response/full.json"),
    include_bytes!("../fixtures/translate/messages_to_chat/response/full.json"),
];

/// One change to a body.
#[derive(Debug, Clone)]
enum Mutation {
    /// The byte at the position becomes one of JSON's or SSE's structural bytes.
    Substitute(Index, u8),
    /// The body ends at the position.
    Truncate(Index),
    /// Up to 63 bytes from the position are repeated after themselves.
    Duplicate(Index, usize),
    /// Up to 15 bytes from the position are removed.
    Delete(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), select(&b" {}[]\":,\\\n0a"[..]))
            .prop_map(|(i, b)| Mutation::Substitute(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 0..64usize).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (any::<Index>(), 0..16usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn mutate(body: &mut Vec<u8>, m: &Mutation) {
    let len = body.len();
    match *m {
        Mutation::Substitute(i, b) => {
            if len > 0 {
                body[i.index(len)] = b;
            }
        }
        Mutation::Truncate(i) => body.truncate(i.index(len + 1)),
        Mutation::Duplicate(i, n) => {
            let i = i.index(len + 1);
            let j = (i + n).min(len);
            let dup = body[i..j].to_vec();
            body.splice(j..j, dup);
        }
        Mutation::Delete(i, n) => {
            let i = i.index(len + 1);
            body.drain(i..(i + n).min(len));
        }
    }
}

#[test]
fn every_translator_on_mutated_fixtures() {
    fuzz(
        3000,
        || (select(FIXTURES), vec(mutation(), 1..4), cuts()),
        |(fixture, mutations, cuts)| {
            let mut body = fixture.to_vec();
            for m in &mutations {
                mutate(&mut body, m);
            }
            translate_all(&body, 400);
            check_stream(Dir::ChatClient(true), &body, &cuts);
            check_stream(Dir::MessagesClient, &body, &cuts);
            Ok(())
        },
    );
}
