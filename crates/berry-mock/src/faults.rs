//! [`Fault`]: how an otherwise normal answer goes wrong, and what that does to a
//! fixed (non-streamed) JSON answer. Streams apply faults in
//! [`StreamPlan`](crate::stream::StreamPlan).

use bytes::Bytes;

use crate::body::{MockBody, Step};
use crate::mode::PreambleEnd;
use crate::Mode;

/// The non-SSE line a [`Mode::Garbage`] stream carries in one chunk.
pub(crate) const GARBAGE_SSE: &[u8] = b"\x00\x01NOT SSE{{{\n";
/// The body of a [`Mode::Garbage`] non-streamed answer.
pub(crate) const GARBAGE_JSON: &[u8] = b"\x00\x01NOT JSON{{{";
/// The heartbeat chunks a [`Mode::Heartbeats`] stream sends before every event.
pub(crate) const HEARTBEATS: [&[u8]; 2] = [b": ping\n\n", b"data:\n\n"];

/// A fault that shapes a 200 answer (the other modes decide the answer themselves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A normal answer.
    None,
    /// [`Mode::CloseMidStream`]: cut the connection after this many content events
    /// (non-streamed: after half the body).
    CloseAfter(u32),
    /// [`Mode::Garbage`].
    Garbage,
    /// [`Mode::Unterminated`]: no terminal event.
    Unterminated,
    /// [`Mode::CutMidEvent`]: cut inside the `data:` line of the event after this
    /// many content events (non-streamed: as `CloseAfter`).
    CutAfter(u32),
    /// [`Mode::ErrorEvent`]: the in-band error event after this many content events.
    ErrorAfter(u32),
    /// [`Mode::Heartbeats`].
    Heartbeats,
    /// [`Mode::Preamble`].
    Preamble(PreambleEnd),
}

impl Fault {
    /// The fault `mode` puts on a 200 answer.
    pub(crate) fn of(mode: &Mode) -> Fault {
        match mode {
            Mode::CloseMidStream { after_chunks } => Fault::CloseAfter(*after_chunks),
            Mode::Garbage => Fault::Garbage,
            Mode::Unterminated => Fault::Unterminated,
            Mode::CutMidEvent { after_chunks } => Fault::CutAfter(*after_chunks),
            Mode::ErrorEvent { after_chunks } => Fault::ErrorAfter(*after_chunks),
            Mode::Heartbeats => Fault::Heartbeats,
            Mode::Preamble(end) => Fault::Preamble(*end),
            _ => Fault::None,
        }
    }
}

/// A fixed answer body after its fault, with the `Content-Length` the head must
/// announce when it differs from what the body sends.
pub(crate) struct FixedBody {
    /// What is sent.
    pub body: MockBody,
    /// `Some(n)`: announce `n` bytes (more than are sent).
    pub announced_len: Option<usize>,
}

/// `json` as the body of a 200 answer under `fault`: replaced by non-JSON bytes
/// ([`Fault::Garbage`]); the full length announced, half the bytes sent and the
/// connection cut ([`Fault::CloseAfter`], [`Fault::CutAfter`]); as is for the other
/// faults (they only shape streams).
pub(crate) fn fixed_json(json: impl Into<Bytes>, fault: Fault) -> FixedBody {
    let json: Bytes = json.into();
    match fault {
        Fault::None
        | Fault::Unterminated
        | Fault::ErrorAfter(_)
        | Fault::Heartbeats
        | Fault::Preamble(_) => FixedBody {
            body: MockBody::full(json),
            announced_len: None,
        },
        Fault::Garbage => FixedBody {
            body: MockBody::full(Bytes::from_static(GARBAGE_JSON)),
            announced_len: None,
        },
        Fault::CloseAfter(_) | Fault::CutAfter(_) => {
            let len = json.len();
            let half = json.slice(..len / 2);
            FixedBody {
                body: MockBody::script([Step::Data(half), Step::Abort].into_iter()),
                announced_len: Some(len),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fixed_json_faults() {
        let f = fixed_json(b"0123456789".to_vec(), Fault::CloseAfter(3));
        assert_eq!(f.announced_len, Some(10));
        assert_eq!(f.body.collect_for_test().await, (b"01234".to_vec(), true));
        let f = fixed_json(b"{}".to_vec(), Fault::Garbage);
        assert_eq!(
            f.body.collect_for_test().await,
            (GARBAGE_JSON.to_vec(), false)
        );
        let f = fixed_json(b"{}".to_vec(), Fault::None);
        assert_eq!(f.announced_len, None);
        assert_eq!(f.body.collect_for_test().await, (b"{}".to_vec(), false));
        assert_eq!(Fault::of(&Mode::Hang), Fault::None);
        let f = fixed_json(b"0123".to_vec(), Fault::CutAfter(0));
        assert_eq!(f.body.collect_for_test().await, (b"01".to_vec(), true));
        let f = fixed_json(b"{}".to_vec(), Fault::Heartbeats);
        assert_eq!(f.body.collect_for_test().await, (b"{}".to_vec(), false));
        assert_eq!(Fault::of(&Mode::AccountHeaders), Fault::None);
    }
}
