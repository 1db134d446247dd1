//! An Anthropic Messages event stream into `GenerateContentResponse` chunks.

use super::answer::{
    args_object, call_part, finish_of_anthropic, response, usage_metadata, Framer, MALFORMED,
};
use super::chat_stream::MAX_ARGS_BYTES;
use super::context::AnswerContext;
use super::errors::{anthropic_type_status, in_band_message};
use crate::translate::anthropic_in::{self, Blocks, Event};
use crate::translate::responses::messages::JSON_ANSWER_TOOL;
use crate::translate::stream::{EventTranslator, Progress, StreamPhase, StreamTranslator};
use crate::translate::UpstreamBroken;
use crate::wire::anthropic::StreamEvent;
use crate::wire::gemini::PartOut;
use crate::wire::raw::{Raw, Str};
use serde_json::value::RawValue;

pub use crate::translate::anthropic_in::MAX_OPEN_BLOCKS;

/// What an open Anthropic block feeds.
#[derive(Debug)]
enum Slot {
    /// Text parts.
    Text,
    /// Thought parts (or nothing without `includeThoughts`).
    Thinking,
    /// The JSON-answer tool: its input deltas are text parts.
    Answer,
    /// A `tool_use` block gathered until its stop.
    Call { name: Box<RawValue>, args: String },
    /// Dropped.
    Other,
}

/// Translates an Anthropic event stream into Gemini chunks (SSE or JSON-array framing, per
/// [`AnswerContext::sse`]).
///
/// Events: `message_start` → usage (nothing written); `text_delta` (and a text block's
/// initial text) → a chunk with a text part; `thinking_delta` → a `thought` part (with
/// `includeThoughts`); a `tool_use` block is gathered and written as one `functionCall`
/// part at its `content_block_stop` (the JSON-answer tool's `input_json_delta`s are text
/// parts instead); `message_delta` → stop reason and usage; `message_stop` → the last chunk
/// (no parts, `finishReason`, `usageMetadata`). `ping` and unknown events are ignored. An
/// `error` event → the final error chunk (status by its type); the stream is then over.
///
/// [`UpstreamBroken`] (sticky): data that is not a JSON object with a `type`, content
/// before `message_start`, a second `message_start`, deltas or stops of blocks that are not
/// open, events after `message_stop`, more than [`MAX_OPEN_BLOCKS`] open blocks, call
/// input over [`MAX_ARGS_BYTES`].
pub type MessagesStream = StreamTranslator<State>;

/// A translator at the start of the answer described by `cx`.
#[must_use]
pub fn new_messages_stream(cx: AnswerContext) -> MessagesStream {
    StreamTranslator::with_state(State {
        progress: Progress::default(),
        framer: Framer::new(cx.sse),
        cx,
        blocks: Blocks::default(),
        stop: None,
        malformed: false,
    })
}

/// The per-event state of an Anthropic → Gemini stream ([`MessagesStream`]).
#[derive(Debug)]
pub struct State {
    progress: Progress,
    cx: AnswerContext,
    framer: Framer,
    blocks: Blocks<Slot>,
    stop: Option<&'static str>,
    malformed: bool,
}

impl State {
    /// The JSON array was opened and not closed (the gateway's own error chunk then starts
    /// with `,`); always false for SSE.
    #[must_use]
    pub fn array_open(&self) -> bool {
        self.framer.array_open()
    }

    /// The client asked for server-sent events (`alt=sse`), not a JSON array.
    #[must_use]
    pub fn sse(&self) -> bool {
        self.cx.sse
    }

    fn write(&mut self, out: &mut Vec<u8>, part: PartOut<'_>) {
        let parts = [part];
        let r = response(&self.cx, &parts, None, None);
        let mut framer = self.framer;
        framer.chunk(out, &r, false);
        self.framer = framer;
        self.progress.started = true;
    }

    fn text(
        &mut self,
        out: &mut Vec<u8>,
        t: &Raw<'_>,
        thought: bool,
    ) -> Result<(), UpstreamBroken> {
        if !t.is_str() {
            return Err(UpstreamBroken::invalid("text not a string"));
        }
        if !t.is_empty_str() {
            self.write(out, PartOut::text(t.clone(), thought));
        }
        Ok(())
    }

    fn block_start(
        &mut self,
        ev: StreamEvent<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), UpstreamBroken> {
        let (index, b) = self.blocks.starting(ev)?;
        let slot = match b.ty.as_str() {
            "text" => {
                if let Some(t) = &b.text {
                    self.text(out, t, false)?;
                }
                Slot::Text
            }
            "thinking" => {
                if let Some(t) = b.thinking.as_ref().filter(|_| self.cx.include_thoughts) {
                    self.text(out, t, true)?;
                }
                Slot::Thinking
            }
            "tool_use" => {
                let Some(name) = b.name.filter(Raw::is_str) else {
                    return Err(UpstreamBroken::invalid("tool_use block without a name"));
                };
                if self.cx.json_answer && name.inner() == Some(JSON_ANSWER_TOOL) {
                    Slot::Answer
                } else {
                    let name = RawValue::from_string(name.json().unwrap_or("\"\"").to_owned())
                        .map_err(|_| UpstreamBroken::invalid("tool name"))?;
                    let args = anthropic_in::whole_input(b.input.as_ref())
                        .map(str::to_owned)
                        .unwrap_or_default();
                    Slot::Call { name, args }
                }
            }
            _ => Slot::Other,
        };
        self.blocks.push(index, slot);
        Ok(())
    }

    fn block_delta(
        &mut self,
        ev: StreamEvent<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), UpstreamBroken> {
        let include = self.cx.include_thoughts;
        let (d, slot) = self.blocks.delta(ev)?;
        let missing = || UpstreamBroken::invalid("delta without its member");
        match (d.ty.as_ref().map(Str::as_str), slot) {
            (Some("input_json_delta"), Slot::Call { args, .. }) => {
                let piece = d
                    .partial_json
                    .as_ref()
                    .and_then(|p| p.parse::<Str<'_>>())
                    .and_then(Result::ok)
                    .ok_or_else(missing)?;
                if args.len() + piece.as_str().len() > MAX_ARGS_BYTES {
                    return Err(UpstreamBroken::invalid("tool input too long"));
                }
                args.push_str(piece.as_str());
                Ok(())
            }
            (Some("text_delta"), Slot::Text) => {
                self.text(out, d.text.as_ref().ok_or_else(missing)?, false)
            }
            (Some("thinking_delta"), Slot::Thinking) if include => {
                self.text(out, d.thinking.as_ref().ok_or_else(missing)?, true)
            }
            (Some("input_json_delta"), Slot::Answer) => {
                self.text(out, d.partial_json.as_ref().ok_or_else(missing)?, false)
            }
            _ => Ok(()), // signatures, citations, deltas of dropped blocks: dropped
        }
    }

    fn block_stop(
        &mut self,
        ev: &StreamEvent<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), UpstreamBroken> {
        let slot = self.blocks.stop(ev)?;
        if let Slot::Call { name, args } = slot {
            match args_object(&args) {
                Some(a) => self.write(out, call_part(Raw::Borrowed(&name), a)),
                None => self.malformed = true,
            }
        }
        Ok(())
    }
}

impl EventTranslator for State {
    const ENDED_EARLY: &'static str = "stream ended before message_stop";

    fn event(&mut self, name: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        let ev = match anthropic_in::read(&mut self.progress, name, data)? {
            Event::Skip => return Ok(()),
            Event::Error(e) => {
                let status = anthropic_type_status(e.ty());
                self.framer
                    .error(out, status, in_band_message(status, e.message()));
                return Ok(());
            }
            Event::Start(m) => {
                anthropic_in::open(&mut self.progress, m.usage);
                return Ok(());
            }
            Event::Other(ev) => ev,
        };
        match ev.ty.as_str() {
            "content_block_start" => self.block_start(ev, out)?,
            "content_block_delta" => self.block_delta(ev, out)?,
            "content_block_stop" => self.block_stop(&ev, out)?,
            "message_delta" => {
                if let Some(r) = anthropic_in::merge_delta_usage(&mut self.progress, &ev) {
                    self.stop = Some(finish_of_anthropic(Some(r)));
                }
            }
            "message_stop" => {
                // Blocks left open are closed by the message's end.
                let open = self.blocks.open_indexes();
                for index in open {
                    let mut stop = StreamEvent::new("content_block_stop");
                    stop.index = Some(index);
                    self.block_stop(&stop, out)?;
                }
                let finish = if self.malformed {
                    MALFORMED
                } else {
                    self.stop.unwrap_or("STOP")
                };
                let usage = usage_metadata(self.progress.usage.unwrap_or_default(), 0);
                let r = response(&self.cx, &[], Some(finish), Some(usage));
                let mut framer = self.framer;
                framer.chunk(out, &r, true);
                self.framer = framer;
                self.progress.phase = StreamPhase::Done;
            }
            _ => {} // unknown event types are ignored
        }
        Ok(())
    }

    fn progress(&self) -> &Progress {
        &self.progress
    }
}
