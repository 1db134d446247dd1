//! A chat backend's `chat.completion.chunk` stream into the hub's event stream (Anthropic
//! Messages) for the client.

use super::stop_reason;
use crate::translate::chat_in::{self, fnv1a, Chunk, ToolCalls};
use crate::translate::errors;
use crate::translate::stream::{emit, EventTranslator, Progress, StreamPhase, StreamTranslator};
use crate::translate::UpstreamBroken;
use crate::wire::anthropic::{AnswerBlock, Block, Delta, MessageResponse, StreamEvent, Usage};
use crate::wire::openai_chat::{ChatChunk, ToolCallDelta};
use crate::wire::raw::{Lazy, Raw, Str, Template};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text,
    /// A `tool_use` block for this OpenAI tool-call index.
    Tool(u64),
}

/// Translates an OpenAI `chat.completion.chunk` stream into an Anthropic Messages event
/// stream (`event: <type>\ndata: <json>\n\n`) that the official SDKs accumulate.
///
/// Chunks → events: the first chunk → `message_start` (id and model from the chunk, empty
/// content, usage 0 unless the chunk carries usage); non-empty `delta.content` (or
/// `delta.refusal`) → a text block (`content_block_start` when none is open, then
/// `content_block_delta` / `text_delta`); `tool_calls` deltas → one `tool_use` block per
/// tool-call index (opened with `id`, `name`, `input: {}`; arguments as `input_json_delta`),
/// a new block closing the previous one; `finish_reason` → closes the open block and sets
/// `stop_reason` (stop → end_turn, length → max_tokens, tool_calls → tool_use,
/// content_filter → refusal); `usage` (any chunk) → usage; `[DONE]` → `message_delta`
/// (`stop_reason`, `stop_sequence: null`, `usage` with `output_tokens`, plus
/// `input_tokens` and `cache_read_input_tokens` when known), then `message_stop`. Role-only
/// and empty chunks, choices other than index 0 and `reasoning_content` produce nothing.
/// An in-band `data: {"error": …}` (or an `event: error`) → `event: error` with the
/// Anthropic error shape; the stream is then over (no `message_stop`; later input ignored).
///
/// [`UpstreamBroken`] (sticky): not SSE, data that is neither `[DONE]` nor a JSON object, a
/// tool-call delta for a tool call whose block was already closed, a new tool call without
/// a function name, `[DONE]` before any chunk, data after `[DONE]`.
pub type Stream = StreamTranslator<State>;

/// The per-event state of an OpenAI → Anthropic stream ([`Stream`]).
#[derive(Debug)]
pub struct State {
    /// Usage: from the backend's usage chunk (`None` until one arrived). Commit point: the
    /// first content event (a `text_delta`, a `tool_use` block start or an
    /// `input_json_delta`). Error: an in-band `data: {"error": …}`.
    progress: Progress,
    open: Open,
    /// Anthropic index of the next block.
    next_block: u64,
    /// Which tool call a tool-call piece belongs to.
    tools: ToolCalls,
    /// Hash of the message id (for generated tool-call ids).
    msg_hash: u64,
    stop_reason: Option<&'static str>,
    /// The `content_block_delta` event of this block and delta kind, written once per
    /// block.
    delta_tpl: Option<(u64, &'static str, Template)>,
}

impl Default for Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Stream {
    /// A translator at the start of a stream.
    pub fn new() -> Self {
        StreamTranslator::with_state(State {
            progress: Progress::default(),
            open: Open::None,
            next_block: 0,
            tools: ToolCalls::default(),
            msg_hash: 0,
            stop_reason: None,
            delta_tpl: None,
        })
    }
}

impl EventTranslator for State {
    const ENDED_EARLY: &'static str = "stream ended before [DONE]";

    fn event(&mut self, name: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        let c = match chat_in::read(&mut self.progress, name, data)? {
            Chunk::Skip => return Ok(()),
            Chunk::Done => return self.done(out),
            Chunk::Error { error, .. } => {
                let (ty, msg) = match &error {
                    Some(e) => (
                        errors::openai_type_to_anthropic(
                            e.ty.as_ref().map(Str::as_str),
                            e.code_str(),
                        ),
                        e.message.as_ref().map(Str::as_str),
                    ),
                    None => ("api_error", None),
                };
                out.extend_from_slice(&errors::anthropic_stream_error(
                    ty,
                    msg.unwrap_or("The upstream provider reported an error."),
                ));
                return Ok(());
            }
            Chunk::Data { chunk, first } => {
                if first {
                    self.message_start(&chunk, out);
                }
                chunk
            }
        };
        let Some(choice) = chat_in::choice0(&c) else {
            return Ok(());
        };
        if let Some(d) = &choice.delta {
            for t in chat_in::texts(d) {
                let t = t?;
                if self.open != Open::Text {
                    self.close(out);
                    self.open_block(out, Open::Text, Block::text(Raw::text("")));
                }
                self.delta(out, "text_delta", t.clone());
            }
            for tc in d.tool_calls.iter().flat_map(|l| l.iter()) {
                self.tool_delta(tc, out)?;
            }
        }
        if let Some(fr) = &choice.finish_reason {
            self.close(out);
            self.stop_reason = Some(stop_reason(Some(fr.as_str())));
        }
        Ok(())
    }

    fn progress(&self) -> &Progress {
        &self.progress
    }
}

impl State {
    /// `message_start` for the stream's first chunk `c` (its id and model, the usage so
    /// far).
    fn message_start(&mut self, c: &ChatChunk<'_>, out: &mut Vec<u8>) {
        let id = match c.id.as_ref().filter(|v| v.is_str()) {
            Some(id) => {
                self.msg_hash = fnv1a(id.json().unwrap_or_default().as_bytes());
                id.clone()
            }
            None => Raw::text("msg_gateway"),
        };
        let model = c.model.clone().filter(Raw::is_str).unwrap_or(Raw::text(""));
        let mut ev = StreamEvent::new("message_start");
        ev.message = Some(Box::new(MessageResponse {
            id,
            ty: Some(Raw::text("message")),
            role: Some(Raw::text("assistant")),
            model,
            content: Lazy::default(),
            stop_reason: None,
            stop_sequence: None,
            usage: Some(Usage::of(self.progress.usage.unwrap_or_default())),
        }));
        emit(out, "message_start", &ev);
    }

    fn tool_delta(
        &mut self,
        tc: &ToolCallDelta<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), UpstreamBroken> {
        let open = match self.open {
            Open::Tool(i) => Some(i),
            _ => None,
        };
        let piece = self
            .tools
            .piece(tc, open, "tool call delta after its block closed")?;
        if let Some(new) = piece.new {
            self.close(out);
            let id = match new.id {
                Some(id) => id.clone(),
                // Unique enough across a conversation: the message id's hash + the block.
                None => Raw::Text(Cow::Owned(format!(
                    "toolu_{:016x}_{}",
                    self.msg_hash, self.next_block
                ))),
            };
            let mut block = Block::new("tool_use");
            block.id = Some(id);
            block.name = Some(new.name.clone());
            block.input = Some(super::empty_object());
            self.open_block(out, Open::Tool(piece.index), block);
            self.progress.started = true;
        }
        if let Some(a) = piece.args.filter(|a| !a.is_empty_str()) {
            self.delta(out, "input_json_delta", a.clone());
        }
        Ok(())
    }

    fn open_block(&mut self, out: &mut Vec<u8>, kind: Open, block: AnswerBlock<'_>) {
        let mut ev = StreamEvent::new("content_block_start");
        ev.index = Some(self.next_block);
        ev.content_block = Some(Box::new(block));
        emit(out, "content_block_start", &ev);
        self.open = kind;
    }

    /// `content_block_delta` for the open block: a `text_delta` or an `input_json_delta`.
    fn delta(&mut self, out: &mut Vec<u8>, kind: &'static str, raw: Raw<'_>) {
        let index = self.next_block;
        if !matches!(&self.delta_tpl, Some((i, k, _)) if *i == index && *k == kind) {
            self.delta_tpl =
                Template::new(|hole| delta_event(index, kind, hole)).map(|t| (index, kind, t));
        }
        match &self.delta_tpl {
            Some((_, _, tpl)) => {
                out.extend_from_slice(b"event: content_block_delta\ndata: ");
                tpl.write(out, &raw);
                out.extend_from_slice(b"\n\n");
            }
            None => emit(out, "content_block_delta", &delta_event(index, kind, raw)),
        }
        self.progress.started = true;
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open == Open::None {
            return;
        }
        let mut ev = StreamEvent::new("content_block_stop");
        ev.index = Some(self.next_block);
        emit(out, "content_block_stop", &ev);
        self.open = Open::None;
        self.next_block += 1;
    }

    fn done(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        self.close(out);
        let mut ev = StreamEvent::new("message_delta");
        ev.delta = Some(Delta {
            stop_reason: Some(Str::from_static(self.stop_reason.unwrap_or("end_turn"))),
            stop_sequence: Some(Raw::Null),
            ..Delta::default()
        });
        ev.usage = Some(match self.progress.usage {
            Some(u) => Usage {
                input_tokens: Some(u.input),
                cache_creation_input_tokens: None,
                cache_read_input_tokens: Some(u.cache_read),
                output_tokens: Some(u.output),
            },
            None => Usage {
                output_tokens: Some(0),
                ..Usage::default()
            },
        });
        emit(out, "message_delta", &ev);
        emit(out, "message_stop", &StreamEvent::new("message_stop"));
        self.progress.phase = StreamPhase::Done;
        Ok(())
    }
}

/// `content_block_delta` for block `index`: a `text_delta` or an `input_json_delta`.
fn delta_event<'a>(index: u64, kind: &'static str, raw: Raw<'a>) -> StreamEvent<'a> {
    let mut d = Delta {
        ty: Some(Str::from_static(kind)),
        ..Delta::default()
    };
    if kind == "text_delta" {
        d.text = Some(raw);
    } else {
        d.partial_json = Some(raw);
    }
    let mut ev = StreamEvent::new("content_block_delta");
    ev.index = Some(index);
    ev.delta = Some(d);
    ev
}
