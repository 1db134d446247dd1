//! `SseDecoder` on a soup of framing tokens with a small line limit: never panics, and the
//! frames, the first error (sticky) and the final state are the same whole, split in two at
//! a random point, and fed one byte at a time (traced by `sse::decode`).

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use crate::bytes;
use crate::fuzz;
use crate::sse::decode;

/// The line limit: small, so long lines and long events are reached too.
const LIMIT: usize = 16;

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
            let whole = decode(LIMIT, &[&body[..]]);
            let k = at.index(body.len() + 1);
            prop_assert_eq!(
                &decode(LIMIT, &[&body[..k], &body[k..]]),
                &whole,
                "split at {}",
                k
            );
            let bytes: Vec<&[u8]> = body.chunks(1).collect();
            prop_assert_eq!(&decode(LIMIT, &bytes), &whole, "one byte at a time");
            Ok(())
        },
    );
}
