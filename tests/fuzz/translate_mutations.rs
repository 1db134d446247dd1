//! Every translator on token soups with stray bytes and on mutations of the golden fixtures
//! (byte substitutions, cuts, duplicated and deleted ranges): nothing panics, the stream
//! translators produce the same result for a split input as for the whole, and what they
//! emit is whole events whose data is JSON or `[DONE]`. Runs, checks and the token list are
//! `translate`'s.

use berry_gateway::translate::{chat_to_messages, errors, messages_to_chat};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use crate::translate::{check_output, run, Dir, TOKENS};
use crate::{bytes, cuts, fuzz, split};

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

// ------------------------------------------------------------------------------ checks

/// The same result whole and split at `cuts`; the output is whole events, each one's data
/// JSON or `[DONE]`, that the usage scanner accepts.
fn check_stream(dir: Dir, input: &[u8], cuts: &[Index]) {
    let whole = run(dir, &[input]);
    let chunks = split(input, cuts);
    assert_eq!(run(dir, &chunks), whole, "{dir:?} split into {chunks:?}");
    check_output(&whole.out);
}

// ------------------------------------------------------------------------------ token soup

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
            check_stream(Dir::ChatToMessages(usage), &body, &cuts);
            check_stream(Dir::MessagesToChat, &body, &cuts);
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
            check_stream(Dir::ChatToMessages(true), &body, &cuts);
            check_stream(Dir::MessagesToChat, &body, &cuts);
            Ok(())
        },
    );
}
