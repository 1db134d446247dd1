//! An Anthropic Messages event stream into a Responses event stream.

use super::context::AnswerContext;
use super::emit::{Finish, ItemIx, ItemKind, Writer};
use super::messages::JSON_ANSWER_TOOL;
use super::messages_answer::finish_of;
use crate::translate::anthropic_in::{self, Blocks, Event};
use crate::translate::errors;
use crate::translate::stream::{EventTranslator, Progress, StreamPhase, StreamTranslator};
use crate::translate::UpstreamBroken;
use crate::wire::anthropic::StreamEvent;
use crate::wire::raw::{Raw, Str};
use std::borrow::Cow;

pub use crate::translate::anthropic_in::MAX_OPEN_BLOCKS;

/// What an open Anthropic block feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A text block (or the JSON-answer tool): the message item.
    Text(ItemIx),
    /// The JSON-answer tool: its input deltas are the message's text.
    Answer(ItemIx),
    /// A `tool_use` block: the call item.
    Call(ItemIx),
    /// A thinking block: the reasoning item.
    Reasoning(ItemIx),
    /// Server tools, unknown: dropped.
    Other,
}

/// The per-event state of an Anthropic → Responses stream.
///
/// Events: `message_start` → `response.created`, `response.in_progress`; a text block
/// opens a `message` item (consecutive text blocks share it) and its `text_delta`s are
/// `response.output_text.delta`; a `tool_use` block is a `function_call` (or
/// `custom_tool_call`) item with `response.function_call_arguments.delta` per
/// `input_json_delta`, closed at its `content_block_stop`; a `thinking` block is a
/// `reasoning` item (`response.reasoning_summary_text.delta` per `thinking_delta`; the
/// signature kept for `encrypted_content`); `message_delta` gives the stop reason and
/// output tokens; `message_stop` closes the open items and writes `response.completed` (or
/// `response.incomplete`). `ping` and unknown events are ignored. An `error` event → the
/// Responses `error` event, after which the stream is over.
///
/// [`UpstreamBroken`] (sticky): data that is not a JSON object with a `type`, content
/// before `message_start`, a second `message_start`, deltas or stops of blocks that are not
/// open, deltas of the wrong kind, events after `message_stop`, more than
/// [`MAX_OPEN_BLOCKS`] open blocks, an answer over
/// [`super::emit::MAX_OUTPUT_BYTES`].
#[derive(Debug)]
pub struct State {
    w: Writer,
    progress: Progress,
    blocks: Blocks<Slot>,
    stop: Option<Finish>,
}

/// The stream translator of an Anthropic backend's answer to a Responses client.
pub type MessagesStream = StreamTranslator<State>;

/// A translator at the start of a stream answering the request described by `cx`.
#[must_use]
pub fn new_messages_stream(cx: AnswerContext) -> MessagesStream {
    StreamTranslator::with_state(State {
        w: Writer::new(cx, true),
        progress: Progress::default(),
        blocks: Blocks::default(),
        stop: None,
    })
}

impl State {
    /// The output items so far (a JSON array): after a complete stream, what the gateway
    /// stores.
    #[must_use]
    pub fn output_items(&self) -> Vec<u8> {
        self.w.output_items()
    }

    /// The whole `Response` object once `response.completed` (or `.incomplete`) was
    /// written; `None` before.
    #[must_use]
    pub fn completed_response(&self) -> Option<Vec<u8>> {
        self.w.completed_response()
    }

    /// The sequence number the next event gets (for an `error` event the gateway appends).
    #[must_use]
    pub fn next_sequence_number(&self) -> u64 {
        self.w.next_sequence_number()
    }

    /// The open message item to add text to, opening one (and closing another open item)
    /// when needed.
    fn message(&mut self, out: &mut Vec<u8>) -> Result<ItemIx, UpstreamBroken> {
        match self.w.open_item() {
            Some((ix, ItemKind::Message)) => Ok(ix),
            Some((ix, _)) => {
                self.w.close(out, ix)?;
                self.w.open_message(out)
            }
            None => self.w.open_message(out),
        }
    }

    /// Closes an open message before another item opens.
    fn close_message(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        if let Some((ix, ItemKind::Message)) = self.w.open_item() {
            self.w.close(out, ix)?;
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
                let ix = self.message(out)?;
                if let Some(t) = b.text.as_ref().filter(|t| t.is_str()) {
                    self.w.text_delta(out, ix, t)?;
                }
                Slot::Text(ix)
            }
            "tool_use" => {
                let (Some(id), Some(name)) = (b.id.filter(Raw::is_str), b.name.filter(Raw::is_str))
                else {
                    return Err(UpstreamBroken::invalid("tool_use block without id/name"));
                };
                let first = anthropic_in::whole_input(b.input.as_ref())
                    .map(|i| Raw::Text(Cow::Borrowed(i)));
                if self.w.context().json_answer() && name.inner() == Some(JSON_ANSWER_TOOL) {
                    let ix = self.message(out)?;
                    if let Some(f) = &first {
                        self.w.text_delta(out, ix, f)?;
                    }
                    Slot::Answer(ix)
                } else {
                    self.close_message(out)?;
                    let ix = self.w.open_call(out, &id, &name)?;
                    if let Some(f) = &first {
                        self.w.args_delta(out, ix, f)?;
                    }
                    Slot::Call(ix)
                }
            }
            "thinking" | "redacted_thinking" => {
                self.close_message(out)?;
                let ix = self.w.open_reasoning(out)?;
                if b.ty.as_str() == "redacted_thinking" {
                    let Some(d) = &b.data else {
                        return Err(UpstreamBroken::invalid("redacted_thinking without data"));
                    };
                    self.w.reasoning_redacted(ix, d)?;
                } else if let Some(t) = b.thinking.as_ref().filter(|t| t.is_str()) {
                    self.w.reasoning_delta(out, ix, t)?;
                }
                Slot::Reasoning(ix)
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
        let (d, &mut slot) = self.blocks.delta(ev)?;
        let missing = || UpstreamBroken::invalid("delta without its member");
        match (d.ty.as_ref().map(Str::as_str), slot) {
            (Some("text_delta"), Slot::Text(ix)) => {
                self.w
                    .text_delta(out, ix, d.text.as_ref().ok_or_else(missing)?)
            }
            (Some("input_json_delta"), Slot::Answer(ix)) => {
                self.w
                    .text_delta(out, ix, d.partial_json.as_ref().ok_or_else(missing)?)
            }
            (Some("input_json_delta"), Slot::Call(ix)) => {
                self.w
                    .args_delta(out, ix, d.partial_json.as_ref().ok_or_else(missing)?)
            }
            (Some("thinking_delta"), Slot::Reasoning(ix)) => {
                self.w
                    .reasoning_delta(out, ix, d.thinking.as_ref().ok_or_else(missing)?)
            }
            (Some("signature_delta"), Slot::Reasoning(ix)) => {
                let s = d
                    .signature
                    .as_ref()
                    .filter(|s| s.is_str())
                    .ok_or_else(missing)?;
                self.w.reasoning_signature(ix, s)
            }
            (Some("text_delta" | "input_json_delta" | "thinking_delta" | "signature_delta"), s)
                if s != Slot::Other =>
            {
                Err(UpstreamBroken::invalid(
                    "delta kind does not match its block",
                ))
            }
            _ => Ok(()), // citations, deltas of dropped blocks, unknown: dropped
        }
    }
}

impl EventTranslator for State {
    const ENDED_EARLY: &'static str = "stream ended before message_stop";

    fn event(&mut self, name: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        let ev = match anthropic_in::read(&mut self.progress, name, data)? {
            Event::Skip => return Ok(()),
            Event::Error(e) => {
                let code = e
                    .ty()
                    .and_then(errors::known_anthropic_type)
                    .unwrap_or("api_error");
                self.w.error(
                    out,
                    errors::anthropic_type_to_openai(code),
                    e.message()
                        .unwrap_or("The upstream provider reported an error."),
                );
                return Ok(());
            }
            Event::Start(m) => {
                anthropic_in::open(&mut self.progress, m.usage);
                self.w.start(out);
                self.progress.started = self.w.committed();
                return Ok(());
            }
            Event::Other(ev) => ev,
        };
        match ev.ty.as_str() {
            "content_block_start" => self.block_start(ev, out)?,
            "content_block_delta" => self.block_delta(ev, out)?,
            "content_block_stop" => {
                let slot = self.blocks.stop(&ev)?;
                if let Slot::Call(ix) | Slot::Reasoning(ix) = slot {
                    self.w.close(out, ix)?;
                }
            }
            "message_delta" => {
                if let Some(r) = anthropic_in::merge_delta_usage(&mut self.progress, &ev) {
                    self.stop = Some(finish_of(Some(r)));
                }
            }
            "message_stop" => {
                let usage = self.progress.usage.unwrap_or_default();
                self.w
                    .finish(out, self.stop.unwrap_or(Finish::Completed), usage)?;
                self.progress.phase = StreamPhase::Done;
            }
            _ => {} // unknown event types are ignored
        }
        self.progress.started = self.w.committed();
        Ok(())
    }

    fn progress(&self) -> &Progress {
        &self.progress
    }
}
