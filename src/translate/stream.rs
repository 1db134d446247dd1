//! The shell every stream translator shares: SSE decoding of the upstream bytes, whole
//! events handed to the dialect's [`EventTranslator`], sticky errors, and the end-of-body
//! verdict. The dialect modules only say what one event becomes.

use super::UpstreamBroken;
use crate::sse::{SseDecoder, SseFrame};
use crate::vocab::TokenUsage;
use serde::Serialize;

/// Where a translated stream is; the same four steps in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamPhase {
    /// Before the upstream's first message event.
    #[default]
    Start,
    /// The message is open: its start was translated, its terminal event not yet seen.
    Open,
    /// The terminal event was seen and its translation emitted; the stream is complete.
    Done,
    /// An in-band upstream error was translated; the rest of the input is ignored.
    Errored,
}

/// What every direction tracks besides its own state: the phase (`Errored` once an
/// in-band error was passed on), the usage so far and the commit point.
#[derive(Debug, Default)]
pub struct Progress {
    pub phase: StreamPhase,
    /// Token usage so far (which events carry it is the direction's business).
    pub usage: Option<TokenUsage>,
    /// The first content event was emitted (the stream's commit point).
    pub started: bool,
}

impl Progress {
    /// Whether the upstream body may end here: Ok after the terminal event, Err before it
    /// (`ended_early` says which event was missing) or after an in-band error.
    fn complete(&self, ended_early: &'static str) -> Result<(), UpstreamBroken> {
        match self.phase {
            StreamPhase::Done => Ok(()),
            StreamPhase::Errored => Err(UpstreamBroken::error_event(
                "stream ended with an error event",
            )),
            StreamPhase::Start | StreamPhase::Open => Err(UpstreamBroken::incomplete(ended_early)),
        }
    }
}

/// One direction's per-event translation state.
pub trait EventTranslator {
    /// Why a stream that ended before its terminal event is incomplete, e.g. "stream
    /// ended before [DONE]".
    const ENDED_EARLY: &'static str;
    /// Translates one whole upstream event (its `event:` name, possibly empty, and its
    /// data), appending whole client events to `out`. An `Err` breaks the stream.
    fn event(&mut self, name: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken>;
    /// The phase, usage, commit point and in-band error state.
    fn progress(&self) -> &Progress;
}

/// A stream translator: upstream bytes in any split → whole translated events. The output
/// is the same for every split of the same input; errors are sticky.
#[derive(Debug)]
pub struct StreamTranslator<T> {
    dec: SseDecoder,
    st: T,
    broken: Option<UpstreamBroken>,
}

impl<T: EventTranslator> StreamTranslator<T> {
    /// A translator at the start of a stream, with per-event state `st`.
    pub(crate) fn with_state(st: T) -> Self {
        StreamTranslator {
            dec: SseDecoder::new(),
            st,
            broken: None,
        }
    }

    /// Feeds upstream bytes (any split), appends translated bytes (whole events) to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        if let Some(e) = &self.broken {
            return Err(*e);
        }
        let mut input = chunk;
        loop {
            let r = match self.dec.next_frame(&mut input) {
                Ok(Some(SseFrame::Event(ev))) => self.st.event(ev.event, ev.data, out),
                Ok(Some(_)) => Ok(()),
                Ok(None) => return Ok(()),
                Err(_) => Err(UpstreamBroken::invalid("not an event stream")),
            };
            if let Err(e) = r {
                self.broken = Some(e);
                return Err(e);
            }
        }
    }

    /// The upstream body ended: Ok when the stream was complete (its terminal event seen),
    /// Err otherwise (including after an in-band error event). The translated stream needs
    /// nothing appended at its end: its terminal event was translated when it arrived.
    pub fn finish(&self) -> Result<(), UpstreamBroken> {
        match &self.broken {
            Some(e) => Err(*e),
            None => self.st.progress().complete(T::ENDED_EARLY),
        }
    }

    /// Token usage so far (see the dialect's state for which events carry it).
    pub fn usage(&self) -> Option<TokenUsage> {
        self.st.progress().usage
    }

    /// True once the first content event was emitted: the stream's commit point.
    pub fn started_content(&self) -> bool {
        self.st.progress().started
    }

    /// The direction's per-event state (what it accumulated so far).
    pub fn state(&self) -> &T {
        &self.st
    }

    /// An in-band upstream error event was seen and translated.
    pub fn saw_error(&self) -> bool {
        self.st.progress().phase == StreamPhase::Errored
    }
}

/// Appends one SSE event carrying `data` as JSON: `event: <name>\n` (when `name` is not
/// empty) then `data: <json>\n\n`.
pub(crate) fn emit<T: Serialize + ?Sized>(out: &mut Vec<u8>, name: &str, data: &T) {
    if !name.is_empty() {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    crate::wire::raw::write(out, data);
    out.extend_from_slice(b"\n\n");
}
