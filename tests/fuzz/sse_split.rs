//! `SseDecoder` on a soup of framing tokens with a small line limit: never panics, and the
//! frames, the first error (sticky) and the final state are the same whole, split in two at
//! a random point, and fed one byte at a time.

use berry_gateway::sse::{SseDecoder, SseError, SseFrame};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use crate::{bytes, fuzz, Bytes};

/// The line limit: small, so long lines and long events are reached too.
const LIMIT: usize = 16;

/// Everything observable: the frames (kind, event name, data), the first error and the state
/// at the end.
#[derive(Debug, PartialEq)]
struct Trace {
    frames: Vec<(char, Bytes, Bytes)>,
    result: Result<(), SseError>,
    mid_line: bool,
    mid_event: bool,
    pending: Bytes,
}

fn run<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Trace {
    let mut d = SseDecoder::with_limit(LIMIT);
    let mut frames = Vec::new();
    let mut result = Ok(());
    for chunk in chunks {
        let mut input = chunk;
        loop {
            match d.next_frame(&mut input) {
                Ok(Some(SseFrame::Data(x))) => frames.push(('d', Bytes::default(), x.into())),
                Ok(Some(SseFrame::EventType(x))) => frames.push(('t', x.into(), Bytes::default())),
                Ok(Some(SseFrame::Event(ev))) => {
                    frames.push(('E', ev.event.into(), ev.data.into()))
                }
                Ok(None) => break,
                Err(e) => {
                    if result.is_ok() {
                        result = Err(e);
                    }
                    break;
                }
            }
        }
        if result.is_err() {
            let e = d.error();
            assert!(e.is_some());
            assert_eq!(d.next_frame(&mut &b"\n\n"[..]).err(), e, "sticky");
        }
    }
    Trace {
        frames,
        result,
        mid_line: d.is_mid_line(),
        mid_event: d.is_mid_event(),
        pending: d.pending_data().into(),
    }
}

/// Up to 40 framing tokens glued at random.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    const TOKENS: [&[u8]; 18] = [
        b"data: ",
        b"data:",
        b"data",
        b"event: ",
        b"id:",
        b"retry",
        b": c",
        b"x",
        b"{}",
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b" ",
        b"\xEF\xBB\xBF",
        b"\xEF",
        b"e",
        b"d",
    ];
    vec(select(&TOKENS[..]), 0..40).prop_map(|t| t.concat())
}

#[test]
fn sse_token_soup_split_in_two_is_invariant() {
    fuzz(
        3000,
        || (bytes(soup()), any::<Index>()),
        |(body, at)| {
            let whole = run([&body[..]]);
            let k = at.index(body.len() + 1);
            prop_assert_eq!(&run([&body[..k], &body[k..]]), &whole, "split at {}", k);
            prop_assert_eq!(&run(body.chunks(1)), &whole, "one byte at a time");
            Ok(())
        },
    );
}
