//! Streamed answers: SSE event framing, the [`Dialect`] trait an API's stream format
//! implements, and [`StreamPlan`], which turns a dialect, the stream shape (chunks,
//! interval) and a [`Fault`] into the [`Step`]s of the response body.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use crate::body::Step;
use crate::faults::{Fault, GARBAGE_SSE};

/// The events of one streamed answer in one API's format. Each event is a complete
/// SSE event (see [`sse`]) and is sent as its own HTTP chunk.
pub(crate) trait Dialect: Send + 'static {
    /// Events before the first content event (none by default).
    fn preamble(&self, _out: &mut Vec<Bytes>) {}
    /// Content event `i` (`0..chunks`), carrying the text `tok<i> `.
    fn content(&self, i: u32) -> Bytes;
    /// Events after the last content event (finish reason, usage, end marker).
    fn tail(&self, out: &mut Vec<Bytes>);
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

/// The body steps of a streamed answer, generated lazily (a stream may have up to
/// [`MAX_CHUNKS`](crate::MAX_CHUNKS) events).
///
/// Contract: preamble; then for each content event `i`: the interval pause (`i > 0`),
/// an abort when the fault is `CloseAfter(i)`, the event; with [`Fault::Garbage`],
/// the interval and the garbage chunk follow event 0. After the last content event:
/// an abort when the fault is `CloseAfter(n)` with `n >= chunks`, the garbage chunk when
/// there was no content event, then the tail.
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

    fn data(&mut self, events: Vec<Bytes>) {
        self.queue.extend(events.into_iter().map(Step::Data));
    }

    /// Queues the steps of the next stage; false when the stream is over.
    fn advance(&mut self) -> bool {
        match self.stage {
            Stage::Start => {
                let mut evs = Vec::new();
                self.dialect.preamble(&mut evs);
                self.data(evs);
                self.stage = Stage::Content(0);
            }
            Stage::Content(i) if i < self.chunks => {
                if i > 0 && !self.interval.is_zero() {
                    self.queue.push_back(Step::Pause(self.interval));
                }
                if self.fault == Fault::CloseAfter(i) {
                    self.queue.push_back(Step::Abort);
                    self.stage = Stage::Done;
                    return true;
                }
                self.queue.push_back(Step::Data(self.dialect.content(i)));
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
                if matches!(self.fault, Fault::CloseAfter(n) if n >= self.chunks) {
                    self.queue.push_back(Step::Abort);
                    return true;
                }
                if self.fault == Fault::Garbage && self.chunks == 0 {
                    self.queue
                        .push_back(Step::Data(Bytes::from_static(GARBAGE_SSE)));
                }
                let mut evs = Vec::new();
                self.dialect.tail(&mut evs);
                self.data(evs);
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
        fn tail(&self, out: &mut Vec<Bytes>) {
            out.push(Bytes::from_static(b">"));
        }
    }

    fn plan(chunks: u32, ms: u64, fault: Fault) -> String {
        StreamPlan::new(Letters, chunks, Duration::from_millis(ms), fault)
            .map(|s| match s {
                Step::Data(b) if &b[..] == GARBAGE_SSE => "G".to_string(),
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
}
