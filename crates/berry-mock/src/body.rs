//! [`MockBody`]: the response body type, either a fixed buffer or a scripted stream
//! of [`Step`]s (data, pauses, and an abort that cuts the connection).

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// One step of a scripted body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send these bytes as one frame (one HTTP chunk when the body is chunked).
    Data(Bytes),
    /// Wait this long; hyper flushes what was sent so far meanwhile.
    Pause(Duration),
    /// Flush what was sent so far, then fail the body: hyper drops the connection
    /// without finishing the message (no terminating chunk / short `Content-Length`).
    Abort,
}

/// The error a body fails with on [`Step::Abort`].
#[derive(Debug)]
pub(crate) struct Aborted;

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mock aborted the response on purpose")
    }
}

impl std::error::Error for Aborted {}

/// A response body: fixed bytes (length known, sent with `Content-Length`) or a
/// script of [`Step`]s played in order (length unknown unless the response head sets
/// `Content-Length` itself).
pub(crate) struct MockBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Script(Script),
}

struct Script {
    steps: Box<dyn Iterator<Item = Step> + Send>,
    sleep: Option<Pin<Box<Sleep>>>,
    abort: AbortState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AbortState {
    No,
    /// Returned `Pending` once so that hyper flushes; fail at the next poll.
    Flushing,
}

impl MockBody {
    /// A body of exactly these bytes.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> MockBody {
        MockBody {
            kind: Kind::Full(Some(bytes.into())),
        }
    }

    /// A body played from `steps`, pulled one at a time as hyper asks for frames.
    pub(crate) fn script(steps: impl Iterator<Item = Step> + Send + 'static) -> MockBody {
        MockBody {
            kind: Kind::Script(Script {
                steps: Box::new(steps),
                sleep: None,
                abort: AbortState::No,
            }),
        }
    }

    /// Collects the body for tests: the data bytes, and whether it ended with an abort.
    #[cfg(test)]
    pub(crate) async fn collect_for_test(self) -> (Vec<u8>, bool) {
        use http_body_util::BodyExt as _;
        let mut body = self;
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        out.extend_from_slice(&d);
                    }
                }
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }
}

impl Script {
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        loop {
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            if self.abort == AbortState::Flushing {
                return Poll::Ready(Some(Err(Aborted)));
            }
            match self.steps.next() {
                None => return Poll::Ready(None),
                Some(Step::Data(b)) => return Poll::Ready(Some(Ok(Frame::data(b)))),
                Some(Step::Pause(d)) if d.is_zero() => {}
                Some(Step::Pause(d)) => self.sleep = Some(Box::pin(tokio::time::sleep(d))),
                Some(Step::Abort) => {
                    // hyper flushes its write buffer whenever the body has nothing
                    // ready, so everything sent so far reaches the socket first.
                    self.abort = AbortState::Flushing;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        match &mut self.get_mut().kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Script(script) => script.poll_step(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Script(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn script_plays_steps_in_order() {
        let steps = vec![
            Step::Data(Bytes::from_static(b"a")),
            Step::Pause(Duration::from_millis(50)),
            Step::Data(Bytes::from_static(b"b")),
            Step::Abort,
            Step::Data(Bytes::from_static(b"never")),
        ];
        let t = tokio::time::Instant::now();
        let (data, aborted) = MockBody::script(steps.into_iter()).collect_for_test().await;
        assert_eq!(data, b"ab");
        assert!(aborted);
        assert!(t.elapsed() >= Duration::from_millis(50));
        let (data, aborted) = MockBody::full("xyz").collect_for_test().await;
        assert_eq!((data.as_slice(), aborted), (&b"xyz"[..], false));
    }
}
