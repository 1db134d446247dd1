//! The hub's event stream (Anthropic Messages) into a chat client's `chat.completion.chunk`
//! stream.

use super::finish_reason;
use crate::translate::anthropic_in::{self, Blocks, Event};
use crate::translate::errors;
use crate::translate::stream::{EventTranslator, Progress, StreamPhase, StreamTranslator};
use crate::translate::UpstreamBroken;
use crate::wire::openai_chat::{
    ChatChunk, ChunkChoice, ChunkDelta, FunctionDelta, ToolCallDelta, Usage,
};
use crate::wire::raw::{self, List, Raw, Str, Template};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    /// A `tool_use` block: its OpenAI `tool_calls[].index`.
    Tool(u32),
    /// Thinking, server tools, unknown: dropped.
    Other,
}

/// Longest `id` + `model` (as JSON) accepted in `message_start`: both are repeated in every
/// chunk.
pub const MAX_ID_BYTES: usize = 1024;

pub use crate::translate::anthropic_in::MAX_OPEN_BLOCKS;

/// Translates an Anthropic Messages event stream into an OpenAI `chat.completion.chunk`
/// stream.
///
/// Events → chunks: `message_start` → a chunk with `delta: {role: assistant, content: ""}`
/// (id and model from the message); `content_block_start` of a `tool_use` block → a chunk
/// opening `tool_calls[{index: k, id, type, function: {name, arguments: ""}}]` (k counts tool
/// blocks from 0); `text_delta` → `delta.content`; `input_json_delta` →
/// `tool_calls[{index: k, function: {arguments}}]`; thinking / signature / citation deltas,
/// `ping`, text block starts and block stops → nothing; the first `message_delta` → a chunk
/// with `delta: {}` and the mapped `finish_reason`; `message_stop` → the usage chunk
/// (`choices: []`, only when `include_usage`), then `data: [DONE]`. An `error` event →
/// `data: {"error": {...}}` (see [`crate::translate::errors`]), after which the stream is
/// over (no `[DONE]`; later input is ignored).
///
/// [`UpstreamBroken`] (sticky): a stream that is not SSE, event data that is not a JSON
/// object with a `type`, content before `message_start`, a second `message_start`, a delta or
/// stop for a block that is not open, a delta of the wrong kind for its block, events after
/// `message_stop` (other than `ping`), more than [`MAX_OPEN_BLOCKS`] open blocks, an id and
/// model longer than [`MAX_ID_BYTES`] together.
/// Unknown event and delta types are ignored (Anthropic may add them).
pub type Stream = StreamTranslator<State>;

/// The per-event state of an Anthropic → OpenAI stream ([`Stream`]).
#[derive(Debug)]
pub struct State {
    include_usage: bool,
    created: u64,
    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…}` (id and model from
    /// `message_start`), written once and reused by every chunk.
    head: Vec<u8>,
    /// Usage: input and cache tokens from `message_start`, output from the latest
    /// `message_delta` (`None` before `message_start`). Commit point: the first content
    /// chunk (text delta, tool call start or arguments delta). Error: an `event: error`.
    progress: Progress,
    /// Open blocks: (Anthropic index, kind).
    blocks: Blocks<Block>,
    next_tool: u32,
    finished: bool,
    /// The tail of a `delta.content` chunk, written once per stream.
    text_tpl: Option<Template>,
    /// The tail of an arguments chunk of the tool call with this index.
    args_tpl: Option<(u32, Template)>,
}

impl Stream {
    /// A translator at the start of a stream. `include_usage`: the client asked for
    /// `stream_options.include_usage` (a final usage chunk with `choices: []`).
    pub fn new(include_usage: bool) -> Self {
        Self::new_at(include_usage, crate::translate::now_secs())
    }

    /// [`Stream::new`] with a fixed `created` timestamp.
    pub fn new_at(include_usage: bool, created: u64) -> Self {
        StreamTranslator::with_state(State {
            include_usage,
            created,
            head: Vec::new(),
            progress: Progress::default(),
            blocks: Blocks::default(),
            next_tool: 0,
            finished: false,
            text_tpl: None,
            args_tpl: None,
        })
    }
}

impl EventTranslator for State {
    const ENDED_EARLY: &'static str = "stream ended before message_stop";

    fn event(&mut self, name: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        let ev = match anthropic_in::read(&mut self.progress, name, data)? {
            Event::Skip => return Ok(()),
            Event::Error(e) => {
                let t = e.ty();
                out.extend_from_slice(&errors::openai_stream_error(
                    errors::anthropic_type_to_openai(t.unwrap_or("api_error")),
                    t.and_then(errors::known_anthropic_type),
                    e.message()
                        .unwrap_or("The upstream provider reported an error."),
                ));
                return Ok(());
            }
            Event::Start(m) => {
                if !m.id.is_str() || !m.model.is_str() {
                    return Err(UpstreamBroken::invalid("message id/model not strings"));
                }
                // They are repeated in every chunk: a huge one would multiply the output.
                let len = |r: &Raw<'_>| r.json().map_or(0, str::len);
                if len(&m.id) + len(&m.model) > MAX_ID_BYTES {
                    return Err(UpstreamBroken::invalid("message id/model too long"));
                }
                let m = *m;
                self.head.clear();
                raw::write(
                    &mut self.head,
                    &ChatChunk {
                        id: Some(m.id),
                        object: Some(Str::from_static("chat.completion.chunk")),
                        created: Some(self.created),
                        model: Some(m.model),
                        ..ChatChunk::default()
                    },
                );
                anthropic_in::open(&mut self.progress, m.usage);
                self.chunk(
                    out,
                    ChunkDelta {
                        role: Some(Raw::text("assistant")),
                        content: Some(Raw::text("")),
                        ..ChunkDelta::default()
                    },
                    None,
                );
                return Ok(());
            }
            Event::Other(ev) => ev,
        };
        match ev.ty.as_str() {
            "content_block_start" => {
                let (index, b) = self.blocks.starting(ev)?;
                let kind = match b.ty.as_str() {
                    "text" => Block::Text,
                    "tool_use" => {
                        let (Some(id), Some(name)) =
                            (b.id.filter(Raw::is_str), b.name.filter(Raw::is_str))
                        else {
                            return Err(UpstreamBroken::invalid("tool_use block without id/name"));
                        };
                        let k = self.next_tool;
                        self.next_tool = k.saturating_add(1);
                        // Anthropic sends `input: {}` and streams the input; a provider that
                        // sends it whole here gets it passed as the first arguments.
                        let arguments = anthropic_in::whole_input(b.input.as_ref())
                            .map_or(Raw::text(""), |i| Raw::Text(Cow::Borrowed(i)));
                        let call = ToolCallDelta {
                            index: Some(u64::from(k)),
                            id: Some(id),
                            ty: Some(Raw::text("function")),
                            function: Some(FunctionDelta {
                                name: Some(name),
                                arguments: Some(arguments),
                            }),
                        };
                        self.tool_chunk(out, call);
                        self.progress.started = true;
                        Block::Tool(k)
                    }
                    _ => Block::Other,
                };
                self.blocks.push(index, kind);
            }
            "content_block_delta" => {
                let (d, &mut kind) = self.blocks.delta(ev)?;
                match (d.ty.as_ref().map(Str::as_str), kind) {
                    (Some("text_delta"), Block::Text) => {
                        let Some(t) = d.text.filter(Raw::is_str) else {
                            return Err(UpstreamBroken::invalid("text_delta without text"));
                        };
                        if !t.is_empty_str() {
                            if self.text_tpl.is_none() {
                                self.text_tpl = Template::new(|hole| {
                                    chunk_of(ChunkDelta {
                                        content: Some(hole),
                                        ..ChunkDelta::default()
                                    })
                                });
                            }
                            match &self.text_tpl {
                                Some(tpl) => self.emit_with(out, tpl, &t),
                                None => {
                                    let delta = ChunkDelta {
                                        content: Some(t),
                                        ..ChunkDelta::default()
                                    };
                                    self.chunk(out, delta, None);
                                }
                            }
                            self.progress.started = true;
                        }
                    }
                    (Some("input_json_delta"), Block::Tool(k)) => {
                        let Some(p) = d.partial_json.filter(Raw::is_str) else {
                            return Err(UpstreamBroken::invalid(
                                "input_json_delta without partial_json",
                            ));
                        };
                        if !p.is_empty_str() {
                            if self.args_tpl.as_ref().is_none_or(|(i, _)| *i != k) {
                                self.args_tpl =
                                    Template::new(|hole| args_chunk(k, hole)).map(|t| (k, t));
                            }
                            match &self.args_tpl {
                                Some((_, tpl)) => self.emit_with(out, tpl, &p),
                                None => self.tool_chunk(out, args_call(k, p)),
                            }
                            self.progress.started = true;
                        }
                    }
                    (Some("text_delta"), _) | (Some("input_json_delta"), _)
                        if kind != Block::Other =>
                    {
                        return Err(UpstreamBroken::invalid(
                            "delta kind does not match its block",
                        ));
                    }
                    _ => {} // thinking, signature, citations, unknown: dropped
                }
            }
            "content_block_stop" => {
                self.blocks.stop(&ev)?;
            }
            "message_delta" => {
                let reason = anthropic_in::merge_delta_usage(&mut self.progress, &ev);
                if !self.finished {
                    self.finished = true;
                    self.chunk(out, ChunkDelta::default(), Some(finish_reason(reason)));
                }
            }
            "message_stop" => {
                if !self.finished {
                    self.finished = true;
                    self.chunk(out, ChunkDelta::default(), Some("stop"));
                }
                if self.include_usage {
                    let usage = Usage::of(self.progress.usage.unwrap_or_default());
                    let c = ChatChunk {
                        choices: Some(List::Borrowed(&[])),
                        usage: Some(usage),
                        ..ChatChunk::default()
                    };
                    self.emit(out, &c);
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
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

impl State {
    /// One `data:` event: [`State::head`]'s members, then `tail`'s.
    fn emit(&self, out: &mut Vec<u8>, tail: &ChatChunk<'_>) {
        out.extend_from_slice(b"data: ");
        raw::write_after(out, &self.head, tail);
        out.extend_from_slice(b"\n\n");
    }

    /// One `data:` event: [`State::head`]'s members, then `tpl`'s filled with `member`.
    fn emit_with(&self, out: &mut Vec<u8>, tpl: &Template, member: &Raw<'_>) {
        out.extend_from_slice(b"data: ");
        tpl.write_after(out, &self.head, member);
        out.extend_from_slice(b"\n\n");
    }

    /// One chunk: choice 0 with `delta` and `finish_reason` (`null` when `None`).
    fn chunk(&self, out: &mut Vec<u8>, delta: ChunkDelta<'_>, finish: Option<&'static str>) {
        let choice = [ChunkChoice {
            index: Some(0),
            delta: Some(delta),
            logprobs: None,
            finish_reason: finish.map(Str::from_static),
        }];
        let c = ChatChunk {
            choices: Some(List::Borrowed(&choice)),
            ..ChatChunk::default()
        };
        self.emit(out, &c);
    }

    /// A chunk whose delta is one tool-call piece.
    fn tool_chunk(&self, out: &mut Vec<u8>, call: ToolCallDelta<'_>) {
        let calls = [call];
        let delta = ChunkDelta {
            tool_calls: Some(List::Borrowed(&calls)),
            ..ChunkDelta::default()
        };
        self.chunk(out, delta, None);
    }
}

/// The tail of a chunk whose choice 0 has `delta` and no `finish_reason` (as
/// [`State::chunk`] writes it), for a [`Template`].
fn chunk_of(delta: ChunkDelta<'_>) -> ChatChunk<'_> {
    ChatChunk {
        choices: Some(List::Owned(vec![ChunkChoice {
            index: Some(0),
            delta: Some(delta),
            logprobs: None,
            finish_reason: None,
        }])),
        ..ChatChunk::default()
    }
}

/// The tool-call piece carrying the next `arguments` of tool call `k`.
fn args_call(k: u32, arguments: Raw<'_>) -> ToolCallDelta<'_> {
    ToolCallDelta {
        index: Some(u64::from(k)),
        id: None,
        ty: None,
        function: Some(FunctionDelta {
            name: None,
            arguments: Some(arguments),
        }),
    }
}

/// The tail of an arguments chunk of tool call `k` (as [`State::tool_chunk`] writes it).
fn args_chunk(k: u32, arguments: Raw<'_>) -> ChatChunk<'_> {
    chunk_of(ChunkDelta {
        tool_calls: Some(List::Owned(vec![args_call(k, arguments)])),
        ..ChunkDelta::default()
    })
}
