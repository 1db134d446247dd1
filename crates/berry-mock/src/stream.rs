//! Streamed answers: SSE event framing, the [`Dialect`] trait an API's stream format
//! implements, and [`StreamPlan`], which turns a dialect, the stream shape (chunks,
//! interval) and a [`Fault`] into the [`Step`]s of the response body.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use crate::body::Step;
use crate::faults::{Fault, GARBAGE_SSE, HEARTBEATS};
use crate::mode::PreambleEnd;

/// The events of one streamed answer in one API's format. Each event is a complete
/// SSE event (see [`sse`]) and is sent as its own HTTP chunk.
pub(crate) trait Dialect: Send + 'static {
    /// Events before the first content event (none by default).
    fn preamble(&self, _out: &mut Vec<Bytes>) {}
    /// Content event `i` (`0..chunks`), carrying the text `tok<i> ` (or piece `i` of a
    /// tool call's input).
    fn content(&self, i: u32) -> Bytes;
    /// Events after the last content event (finish reason, usage), up to the terminal
    /// event.
    fn tail(&self, out: &mut Vec<Bytes>);
    /// The event that completes the stream (`data: [DONE]`, `message_stop`).
    fn terminal(&self) -> Bytes;
    /// The provider's in-band error event.
    fn error_event(&self) -> Bytes;
    /// What the provider sends before failing early ([`Fault::Preamble`]): the events
    /// a client sees before any content.
    fn early_preamble(&self, out: &mut Vec<Bytes>);
}

/// One SSE event: an optional `event:` line, then `data: ` + what `data` writes, then
/// a blank line.
pub(crate) fn sse(event: Option<&str>, data: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut ev = Vec::with_capacity(256);
    if let Some(name) = event {
        ev.extend_from_slice(b"event: ");
        ev.extend_from_slice(name.as_bytes());
        ev.push(b'\n');
    }
    ev.extend_from_slice(b"data: ");
    data(&mut ev);
    ev.extend_from_slice(b"\n\n");
    Bytes::from(ev)
}

/// The first part of `event`, ending in the middle of its `data:` line (after the
/// `data: ` prefix and half of the line's payload); the first half of the bytes when
/// it has no `data:` line.
pub(crate) fn cut_in_data_line(event: &Bytes) -> Bytes {
    const PREFIX: &[u8] = b"data: ";
    let Some(at) = event.windows(PREFIX.len()).position(|w| w == PREFIX) else {
        return event.slice(..event.len() / 2);
    };
    let payload = at + PREFIX.len();
    let line_end = event[payload..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(event.len(), |n| payload + n);
    event.slice(..payload + (line_end - payload).div_ceil(2))
}

/// The body steps of a streamed answer, generated lazily (a stream may have up to
/// [`MAX_CHUNKS`](crate::MAX_CHUNKS) events).
///
/// Contract: preamble; then for each content event `i`: the interval pause (`i > 0`),
/// then — when the fault strikes at `i` — an abort (`CloseAfter(i)`), the first half
/// of event `i` up to the middle of its `data:` line and an abort (`CutAfter(i)`), or
/// the error event and the end (`ErrorAfter(i)`); otherwise the event. With
/// [`Fault::Garbage`], the interval and the garbage chunk follow event 0. After the
/// last content event: an abort when the fault is `CloseAfter(n)` with `n >= chunks`,
/// the error event and the end for `ErrorAfter(n)` with `n >= chunks`, the garbage
/// chunk when there was no content event; then the tail and the terminal event (not
/// with [`Fault::Unterminated`]), the first of them cut mid-line and an abort for
/// `CutAfter(n)` with `n >= chunks`. [`Fault::Preamble`] replaces all of this with the
/// dialect's early preamble, then the error event (clean end) or an abort.
/// [`Fault::Heartbeats`] puts the heartbeat chunks before every event.
pub(crate) struct StreamPlan {
    dialect: Box<dyn Dialect>,
    chunks: u32,
    interval: Duration,
    fault: Fault,
    stage: Stage,
    queue: VecDeque<Step>,
}

#[derive(Clone, Copy)]
enum Stage {
    Start,
    Content(u32),
    End,
    Done,
}

impl StreamPlan {
    /// A stream of `chunks` content events `interval` apart, in `dialect`, under `fault`.
    pub(crate) fn new(
        dialect: impl Dialect,
        chunks: u32,
        interval: Duration,
        fault: Fault,
    ) -> StreamPlan {
        StreamPlan {
            dialect: Box::new(dialect),
            chunks,
            interval,
            fault,
            stage: Stage::Start,
            queue: VecDeque::new(),
        }
    }

    /// Queues one whole event (after the heartbeats under [`Fault::Heartbeats`]).
    fn event(&mut self, ev: Bytes) {
        if self.fault == Fault::Heartbeats {
            for hb in HEARTBEATS {
                self.queue.push_back(Step::Data(Bytes::from_static(hb)));
            }
        }
        self.queue.push_back(Step::Data(ev));
    }

    fn events(&mut self, events: Vec<Bytes>) {
        for ev in events {
            self.event(ev);
        }
    }

    /// Queues the part of `ev` up to the middle of its `data:` line, then an abort.
    fn cut(&mut self, ev: &Bytes) {
        self.queue.push_back(Step::Data(cut_in_data_line(ev)));
        self.queue.push_back(Step::Abort);
        self.stage = Stage::Done;
    }

    /// Queues the steps of the next stage; false when the stream is over.
    fn advance(&mut self) -> bool {
        match self.stage {
            Stage::Start => {
                let mut evs = Vec::new();
                if let Fault::Preamble(end) = self.fault {
                    self.dialect.early_preamble(&mut evs);
                    self.events(evs);
                    if !self.interval.is_zero() {
                        // The preamble reaches the client side on its own, then the end.
                        self.queue.push_back(Step::Pause(self.interval));
                    }
                    match end {
                        PreambleEnd::Error => self.event(self.dialect.error_event()),
                        PreambleEnd::Cut => self.queue.push_back(Step::Abort),
                    }
                    self.stage = Stage::Done;
                    return true;
                }
                self.dialect.preamble(&mut evs);
                self.events(evs);
                self.stage = Stage::Content(0);
            }
            Stage::Content(i) if i < self.chunks => {
                if i > 0 && !self.interval.is_zero() {
                    self.queue.push_back(Step::Pause(self.interval));
                }
                match self.fault {
                    Fault::CloseAfter(n) if n == i => {
                        self.queue.push_back(Step::Abort);
                        self.stage = Stage::Done;
                        return true;
                    }
                    Fault::CutAfter(n) if n == i => {
                        self.cut(&self.dialect.content(i));
                        return true;
                    }
                    Fault::ErrorAfter(n) if n == i => {
                        self.event(self.dialect.error_event());
                        self.stage = Stage::Done;
                        return true;
                    }
                    _ => {}
                }
                self.event(self.dialect.content(i));
                if self.fault == Fault::Garbage && i == 0 {
                    // The garbage is mid-stream: the good event reaches the client first.
                    self.queue.push_back(Step::Pause(self.interval));
                    self.queue
                        .push_back(Step::Data(Bytes::from_static(GARBAGE_SSE)));
                }
                self.stage = Stage::Content(i + 1);
            }
            Stage::Content(_) => self.stage = Stage::End,
            Stage::End => {
                self.stage = Stage::Done;
                match self.fault {
                    Fault::CloseAfter(n) if n >= self.chunks => {
                        self.queue.push_back(Step::Abort);
                        return true;
                    }
                    Fault::ErrorAfter(n) if n >= self.chunks => {
                        self.event(self.dialect.error_event());
                        return true;
                    }
                    Fault::Garbage if self.chunks == 0 => {
                        self.queue
                            .push_back(Step::Data(Bytes::from_static(GARBAGE_SSE)));
                    }
                    _ => {}
                }
                let mut evs = Vec::new();
                self.dialect.tail(&mut evs);
                if self.fault != Fault::Unterminated {
                    evs.push(self.dialect.terminal());
                }
                match (self.fault, evs.first()) {
                    (Fault::CutAfter(n), Some(first)) if n >= self.chunks => {
                        let first = first.clone();
                        self.cut(&first);
                    }
                    _ => self.events(evs),
                }
            }
            Stage::Done => return false,
        }
        true
    }
}

impl Iterator for StreamPlan {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        loop {
            if let Some(step) = self.queue.pop_front() {
                return Some(step);
            }
            if !self.advance() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Letters;
    impl Dialect for Letters {
        fn preamble(&self, out: &mut Vec<Bytes>) {
            out.push(Bytes::from_static(b"<"));
        }
        fn content(&self, i: u32) -> Bytes {
            Bytes::from(i.to_string())
        }
        fn tail(&self, _out: &mut Vec<Bytes>) {}
        fn terminal(&self) -> Bytes {
            Bytes::from_static(b">")
        }
        fn error_event(&self) -> Bytes {
            Bytes::from_static(b"E")
        }
        fn early_preamble(&self, out: &mut Vec<Bytes>) {
            out.push(Bytes::from_static(b"("));
        }
    }

    fn plan(chunks: u32, ms: u64, fault: Fault) -> String {
        StreamPlan::new(Letters, chunks, Duration::from_millis(ms), fault)
            .map(|s| match s {
                Step::Data(b) if &b[..] == GARBAGE_SSE => "G".to_string(),
                Step::Data(b) if &b[..] == HEARTBEATS[0] => "h".to_string(),
                Step::Data(b) if &b[..] == HEARTBEATS[1] => "d".to_string(),
                Step::Data(b) => String::from_utf8_lossy(&b).into_owned(),
                Step::Pause(d) => format!("~{}", d.as_millis()),
                Step::Abort => "X".to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn shapes_and_faults() {
        assert_eq!(plan(3, 5, Fault::None), "< 0 ~5 1 ~5 2 >");
        assert_eq!(plan(3, 0, Fault::None), "< 0 1 2 >");
        assert_eq!(plan(0, 5, Fault::None), "< >");
        assert_eq!(plan(3, 5, Fault::CloseAfter(2)), "< 0 ~5 1 ~5 X");
        assert_eq!(plan(3, 5, Fault::CloseAfter(0)), "< X");
        assert_eq!(plan(3, 5, Fault::CloseAfter(3)), "< 0 ~5 1 ~5 2 X");
        assert_eq!(plan(2, 5, Fault::Garbage), "< 0 ~5 G ~5 1 >");
        assert_eq!(plan(0, 5, Fault::Garbage), "< G >");
    }

    #[test]
    fn lying_upstream_faults() {
        assert_eq!(plan(3, 0, Fault::Unterminated), "< 0 1 2");
        assert_eq!(plan(3, 0, Fault::ErrorAfter(1)), "< 0 E");
        assert_eq!(plan(3, 0, Fault::ErrorAfter(0)), "< E");
        assert_eq!(plan(2, 0, Fault::ErrorAfter(9)), "< 0 1 E");
        assert_eq!(plan(2, 0, Fault::Heartbeats), "h d < h d 0 h d 1 h d >");
        assert_eq!(plan(3, 0, Fault::Preamble(PreambleEnd::Error)), "( E");
        assert_eq!(plan(3, 0, Fault::Preamble(PreambleEnd::Cut)), "( X");
        // Letters' events have no data line: the cut keeps their first half.
        assert_eq!(plan(3, 0, Fault::CutAfter(1)), "< 0  X");
        assert_eq!(plan(1, 0, Fault::CutAfter(5)), "< 0  X");
    }

    #[test]
    fn cuts_land_inside_the_data_line() {
        let ev = Bytes::from_static(b"event: x\ndata: {\"a\":12345}\n\n");
        let cut = cut_in_data_line(&ev);
        assert_eq!(&cut[..], b"event: x\ndata: {\"a\":1");
        let ev = Bytes::from_static(b"data: [DONE]\n\n");
        assert_eq!(&cut_in_data_line(&ev)[..], b"data: [DO");
    }
}
