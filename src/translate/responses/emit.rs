//! The answer side of every translated Responses backend: the output items as they are
//! built, the `Response` object, and the event stream that builds it.
//!
//! A backend mapping drives one [`Writer`] with what its answer holds, in order: open an
//! item, feed it deltas, close it, finish. The same calls make a non-stream answer
//! ([`Writer::response_body`]) and a stream (events appended to `out`); either way the
//! items are kept for the gateway's store ([`Writer::output_items`]).
//!
//! Stream events: `response.created` and `response.in_progress` (at [`Writer::start`]);
//! per item `response.output_item.added` (+ `response.content_part.added` for a message,
//! `response.reasoning_summary_part.added` for reasoning), its deltas
//! (`response.output_text.delta`, `response.function_call_arguments.delta`,
//! `response.reasoning_summary_text.delta`), its `.done` events and
//! `response.output_item.done` with the whole item (a custom tool call gets its whole input
//! as one `response.custom_tool_call_input.delta` at close); then `response.completed` (or
//! `response.incomplete`) with the whole response and usage. `sequence_number` counts from
//! 0 without gaps. The commit point ([`Writer::committed`]) is the first delta or
//! `output_item.done`.

pub use super::context::AnswerContext;
use super::context::Echo;
use super::input::{escaped, Thinking};
use super::output::{
    custom_input, decode, item_event, owned, string_value, summary_part, text_part, view,
    ItemState, EMPTY,
};
pub use super::output::{ItemIx, ItemKind};
use crate::translate::stream::emit;
use crate::translate::UpstreamBroken;
use crate::vocab::TokenUsage;
use crate::wire::raw::{self, List, Raw, Str};
use crate::wire::responses::{Event, IncompleteDetails, OutputItem, Response, Usage};
use std::borrow::Cow;

/// Most bytes of text, arguments and thinking one answer may accumulate (they are repeated
/// in the `.done` events and the final response); more is [`UpstreamBroken`].
pub const MAX_OUTPUT_BYTES: usize = 8 << 20;

/// Bytes an item counts for against [`MAX_OUTPUT_BYTES`] besides its text.
const ITEM_OVERHEAD: usize = 256;

/// How the answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// `status: completed`.
    Completed,
    /// `status: incomplete`, reason `max_output_tokens`.
    MaxTokens,
    /// `status: incomplete`, reason `content_filter`.
    ContentFilter,
}

impl Finish {
    fn status(self) -> (&'static str, Option<IncompleteDetails>) {
        match self {
            Finish::Completed => ("completed", None),
            Finish::MaxTokens => (
                "incomplete",
                Some(IncompleteDetails {
                    reason: "max_output_tokens",
                }),
            ),
            Finish::ContentFilter => (
                "incomplete",
                Some(IncompleteDetails {
                    reason: "content_filter",
                }),
            ),
        }
    }
}

/// Builds the output items of one answer and, when streaming, the events that build them.
#[derive(Debug)]
pub struct Writer {
    cx: AnswerContext,
    stream: bool,
    seq: u64,
    items: Vec<ItemState>,
    bytes: usize,
    committed: bool,
    finished: Option<(Finish, TokenUsage)>,
    reasoning_tokens: u64,
}

impl Writer {
    /// A writer of the answer described by `cx`; `stream`: write events to `out` (otherwise
    /// the calls only accumulate, for [`Writer::response_body`]).
    #[must_use]
    pub fn new(cx: AnswerContext, stream: bool) -> Self {
        Writer {
            cx,
            stream,
            seq: 0,
            items: Vec::new(),
            bytes: 0,
            committed: false,
            finished: None,
            reasoning_tokens: 0,
        }
    }

    /// Sets `usage.output_tokens_details.reasoning_tokens` (0 unless the backend reports it).
    pub fn set_reasoning_tokens(&mut self, n: u64) {
        self.reasoning_tokens = n;
    }

    /// The answer's context.
    #[must_use]
    pub fn context(&self) -> &AnswerContext {
        &self.cx
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if !self.stream {
            return;
        }
        for ty in ["response.created", "response.in_progress"] {
            let r = self.response("in_progress", None, None, false);
            let mut ev = Event::new(ty, self.seq);
            ev.response = Some(&r);
            emit(out, ty, &ev);
            self.seq += 1;
        }
    }

    fn push(
        &mut self,
        kind: ItemKind,
        call_id: &Raw<'_>,
        name: &Raw<'_>,
    ) -> Result<ItemIx, UpstreamBroken> {
        self.count(ITEM_OVERHEAD)?;
        let ix = self.items.len();
        let prefix = match kind {
            ItemKind::Message => "msg",
            ItemKind::FunctionCall => "fc",
            ItemKind::CustomToolCall => "ctc",
            ItemKind::Reasoning => "rs",
        };
        let suffix = self
            .cx
            .response_id
            .strip_prefix("resp_")
            .unwrap_or(&self.cx.response_id);
        self.items.push(ItemState {
            kind,
            id: format!("{prefix}_{suffix}_{ix}"),
            call_id: owned(call_id),
            name: owned(name),
            buf: String::new(),
            had_delta: false,
            signature: String::new(),
            redacted: None,
            value: Raw::Null,
            encrypted: None,
            done: false,
        });
        Ok(ix)
    }

    fn count(&mut self, n: usize) -> Result<(), UpstreamBroken> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > MAX_OUTPUT_BYTES {
            return Err(UpstreamBroken::invalid("answer too long to translate"));
        }
        Ok(())
    }

    /// Opens a `message` item: `output_item.added` and `content_part.added`.
    ///
    /// # Errors
    /// Too many items ([`MAX_OUTPUT_BYTES`]).
    pub fn open_message(&mut self, out: &mut Vec<u8>) -> Result<ItemIx, UpstreamBroken> {
        let ix = self.push(ItemKind::Message, &Raw::Null, &Raw::Null)?;
        self.added(out, ix);
        if self.stream {
            let part = text_part(&EMPTY);
            let mut ev = self.item_event("response.content_part.added", ix);
            ev.content_index = Some(0);
            ev.part = Some(&part);
            emit(out, ev.ty, &ev);
            self.seq += 1;
        }
        Ok(ix)
    }

    /// Opens a call: a `custom_tool_call` when `name` is a custom tool of the request, else
    /// a `function_call` (`output_item.added`). `call_id` and `name` are JSON strings.
    ///
    /// # Errors
    /// Too many items ([`MAX_OUTPUT_BYTES`]).
    pub fn open_call(
        &mut self,
        out: &mut Vec<u8>,
        call_id: &Raw<'_>,
        name: &Raw<'_>,
    ) -> Result<ItemIx, UpstreamBroken> {
        let decoded = name.parse::<Str<'_>>().and_then(Result::ok);
        let custom = match (&decoded, name) {
            (Some(n), _) => self.cx.is_custom_tool(n.as_str()),
            (None, Raw::Text(t)) => self.cx.is_custom_tool(t),
            _ => false,
        };
        let kind = if custom {
            ItemKind::CustomToolCall
        } else {
            ItemKind::FunctionCall
        };
        let ix = self.push(kind, call_id, name)?;
        self.added(out, ix);
        Ok(ix)
    }

    /// Opens a `reasoning` item: `output_item.added` and `reasoning_summary_part.added`.
    ///
    /// # Errors
    /// Too many items ([`MAX_OUTPUT_BYTES`]).
    pub fn open_reasoning(&mut self, out: &mut Vec<u8>) -> Result<ItemIx, UpstreamBroken> {
        let ix = self.push(ItemKind::Reasoning, &Raw::Null, &Raw::Null)?;
        self.added(out, ix);
        if self.stream {
            let part = summary_part(&EMPTY);
            let mut ev = self.item_event("response.reasoning_summary_part.added", ix);
            ev.summary_index = Some(0);
            ev.part = Some(&part);
            emit(out, ev.ty, &ev);
            self.seq += 1;
        }
        Ok(ix)
    }

    /// The last item while it is open.
    #[must_use]
    pub fn open_item(&self) -> Option<(ItemIx, ItemKind)> {
        let last = self.items.last()?;
        (!last.done).then_some((self.items.len() - 1, last.kind))
    }

    /// Appends text to a message (`output_text.delta`). `delta` is a JSON string; an empty
    /// one writes nothing.
    ///
    /// # Errors
    /// Not an open message, or the answer is too long.
    pub fn text_delta(
        &mut self,
        out: &mut Vec<u8>,
        ix: ItemIx,
        delta: &Raw<'_>,
    ) -> Result<(), UpstreamBroken> {
        self.delta(
            out,
            ix,
            ItemKind::Message,
            delta,
            "response.output_text.delta",
        )
    }

    /// Appends a piece of a call's arguments (a JSON string): a function call's
    /// `function_call_arguments.delta`; a custom call's are its `{"input": …}` object,
    /// held until [`Writer::close`].
    ///
    /// # Errors
    /// Not an open call, or the answer is too long.
    pub fn args_delta(
        &mut self,
        out: &mut Vec<u8>,
        ix: ItemIx,
        delta: &Raw<'_>,
    ) -> Result<(), UpstreamBroken> {
        match self.items.get(ix).map(|i| i.kind) {
            Some(ItemKind::CustomToolCall) => {
                self.delta(out, ix, ItemKind::CustomToolCall, delta, "")
            }
            _ => self.delta(
                out,
                ix,
                ItemKind::FunctionCall,
                delta,
                "response.function_call_arguments.delta",
            ),
        }
    }

    /// Appends thinking text to a reasoning item's summary (`reasoning_summary_text.delta`).
    ///
    /// # Errors
    /// Not an open reasoning item, or the answer is too long.
    pub fn reasoning_delta(
        &mut self,
        out: &mut Vec<u8>,
        ix: ItemIx,
        delta: &Raw<'_>,
    ) -> Result<(), UpstreamBroken> {
        self.delta(
            out,
            ix,
            ItemKind::Reasoning,
            delta,
            "response.reasoning_summary_text.delta",
        )
    }

    /// Appends to a reasoning item's thinking signature (a JSON string).
    ///
    /// # Errors
    /// Not an open reasoning item, or the answer is too long.
    pub fn reasoning_signature(&mut self, ix: ItemIx, sig: &Raw<'_>) -> Result<(), UpstreamBroken> {
        let piece = escaped(sig);
        self.count(piece.len())?;
        let it = self.open_of(ix, ItemKind::Reasoning)?;
        it.signature.push_str(&piece);
        Ok(())
    }

    /// Marks a reasoning item as a redacted thinking block with `data` (a JSON string).
    ///
    /// # Errors
    /// Not an open reasoning item, data not a string, or the answer is too long.
    pub fn reasoning_redacted(&mut self, ix: ItemIx, data: &Raw<'_>) -> Result<(), UpstreamBroken> {
        let d =
            decode(&escaped(data)).ok_or(UpstreamBroken::invalid("redacted data not a string"))?;
        self.count(d.len())?;
        let it = self.open_of(ix, ItemKind::Reasoning)?;
        it.redacted = Some(d);
        Ok(())
    }

    fn open_of(&mut self, ix: ItemIx, kind: ItemKind) -> Result<&mut ItemState, UpstreamBroken> {
        match self.items.get_mut(ix) {
            Some(it) if it.kind == kind && !it.done => Ok(it),
            _ => Err(UpstreamBroken::invalid(
                "delta for an item that is not open",
            )),
        }
    }

    fn delta(
        &mut self,
        out: &mut Vec<u8>,
        ix: ItemIx,
        kind: ItemKind,
        delta: &Raw<'_>,
        ty: &'static str,
    ) -> Result<(), UpstreamBroken> {
        if !delta.is_str() {
            return Err(UpstreamBroken::invalid("delta not a string"));
        }
        let piece = escaped(delta);
        if piece.is_empty() {
            return Ok(());
        }
        self.count(piece.len())?;
        let it = self.open_of(ix, kind)?;
        it.buf.push_str(&piece);
        it.had_delta = true;
        if self.stream && !ty.is_empty() {
            self.write_delta(out, ty, ix, kind, delta);
            self.seq += 1;
            self.committed = true;
        }
        Ok(())
    }

    /// A delta event, written by hand (the most frequent event: no serializer set-up).
    /// The same bytes as [`Event`]'s `Serialize` writes for it.
    fn write_delta(
        &self,
        out: &mut Vec<u8>,
        ty: &'static str,
        ix: ItemIx,
        kind: ItemKind,
        delta: &Raw<'_>,
    ) {
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(ty.as_bytes());
        out.extend_from_slice(b"\ndata: {\"type\":\"");
        out.extend_from_slice(ty.as_bytes());
        out.extend_from_slice(b"\",\"sequence_number\":");
        out.extend_from_slice(n.format(self.seq).as_bytes());
        out.extend_from_slice(b",\"output_index\":");
        out.extend_from_slice(n.format(ix).as_bytes());
        out.extend_from_slice(b",\"item_id\":");
        raw::write(out, self.items.get(ix).map_or("", |i| i.id.as_str()));
        match kind {
            ItemKind::Message => out.extend_from_slice(b",\"content_index\":0"),
            ItemKind::Reasoning => out.extend_from_slice(b",\"summary_index\":0"),
            _ => {}
        }
        out.extend_from_slice(b",\"delta\":");
        raw::write(out, delta);
        if kind == ItemKind::Message {
            out.extend_from_slice(b",\"logprobs\":[]");
        }
        out.extend_from_slice(b"}\n\n");
    }

    /// Closes an item: its `.done` events and `output_item.done` with the whole item. A
    /// closed item is left as it is.
    ///
    /// # Errors
    /// No such item, or what was accumulated is not valid JSON text.
    pub fn close(&mut self, out: &mut Vec<u8>, ix: ItemIx) -> Result<(), UpstreamBroken> {
        let Some(it) = self.items.get_mut(ix) else {
            return Err(UpstreamBroken::invalid("close of an unknown item"));
        };
        if it.done {
            return Ok(());
        }
        let broken = || UpstreamBroken::invalid("malformed text in the answer");
        it.done = true;
        match it.kind {
            ItemKind::Message | ItemKind::Reasoning => {
                it.value = string_value(&it.buf).ok_or_else(broken)?;
                if it.kind == ItemKind::Reasoning {
                    let t = match it.redacted.take() {
                        Some(r) => Some(Thinking {
                            redacted: Some(r),
                            ..Thinking::default()
                        }),
                        None if !it.signature.is_empty() => Some(Thinking {
                            thinking: Some(decode(&it.buf).ok_or_else(broken)?),
                            signature: Some(decode(&it.signature).ok_or_else(broken)?),
                            redacted: None,
                        }),
                        None => None,
                    };
                    it.encrypted = t.map(|t| Raw::Text(Cow::Owned(t.encode())));
                }
            }
            ItemKind::FunctionCall => {
                if it.buf.is_empty() {
                    it.buf.push_str("{}");
                }
                it.value = string_value(&it.buf).ok_or_else(broken)?;
            }
            ItemKind::CustomToolCall => {
                it.value = custom_input(&it.buf).ok_or_else(broken)?;
            }
        }
        if !self.stream {
            return Ok(());
        }
        let Some(it) = self.items.get(ix) else {
            return Ok(());
        };
        let (kind, had_delta, id) = (it.kind, it.had_delta, it.id.clone());
        let value = it.value.clone();
        let mut seq = self.seq;
        macro_rules! fire {
            ($ty:expr, |$ev:ident| $body:block) => {{
                #[allow(unused_mut)]
                let mut $ev = item_event($ty, seq, ix, &id);
                $body
                emit(out, $ty, &$ev);
                seq += 1;
            }};
        }
        match kind {
            ItemKind::Message => {
                fire!("response.output_text.done", |ev| {
                    ev.content_index = Some(0);
                    ev.text = Some(&value);
                    ev.logprobs = Some(List::Borrowed(&[]));
                });
                let part = text_part(&value);
                fire!("response.content_part.done", |ev| {
                    ev.content_index = Some(0);
                    ev.part = Some(&part);
                });
            }
            ItemKind::Reasoning => {
                fire!("response.reasoning_summary_text.done", |ev| {
                    ev.summary_index = Some(0);
                    ev.text = Some(&value);
                });
                let part = summary_part(&value);
                fire!("response.reasoning_summary_part.done", |ev| {
                    ev.summary_index = Some(0);
                    ev.part = Some(&part);
                });
            }
            ItemKind::FunctionCall => {
                if !had_delta {
                    fire!("response.function_call_arguments.delta", |ev| {
                        ev.delta = Some(&value);
                    });
                }
                fire!("response.function_call_arguments.done", |ev| {
                    ev.arguments = Some(&value);
                });
            }
            ItemKind::CustomToolCall => {
                fire!("response.custom_tool_call_input.delta", |ev| {
                    ev.delta = Some(&value);
                });
                fire!("response.custom_tool_call_input.done", |ev| {
                    ev.input = Some(&value);
                });
            }
        }
        self.seq = seq;
        if let Some(it) = self.items.get(ix) {
            let item = view(it);
            let mut ev = Event::<()>::new("response.output_item.done", self.seq);
            ev.output_index = Some(ix as u64);
            ev.item = Some(&item);
            emit(out, ev.ty, &ev);
            self.seq += 1;
        }
        self.committed = true;
        Ok(())
    }

    /// Closes the open items and writes `response.completed` (or `response.incomplete`)
    /// with the whole response and `usage`.
    ///
    /// # Errors
    /// As [`Writer::close`].
    pub fn finish(
        &mut self,
        out: &mut Vec<u8>,
        finish: Finish,
        usage: TokenUsage,
    ) -> Result<(), UpstreamBroken> {
        for ix in 0..self.items.len() {
            self.close(out, ix)?;
        }
        self.finished = Some((finish, usage));
        if self.stream {
            let (status, details) = finish.status();
            let ty = if status == "completed" {
                "response.completed"
            } else {
                "response.incomplete"
            };
            let r = self.response(
                status,
                details,
                Some(Usage::of(usage, self.reasoning_tokens)),
                true,
            );
            let mut ev = Event::new(ty, self.seq);
            ev.response = Some(&r);
            emit(out, ty, &ev);
            self.seq += 1;
        }
        Ok(())
    }

    /// The `error` event, numbered next.
    pub fn error(&mut self, out: &mut Vec<u8>, code: &str, message: &str) {
        out.extend_from_slice(&stream_error_event(self.seq, code, message));
        self.seq += 1;
    }

    /// Whether a delta or `output_item.done` was written (the stream's commit point).
    #[must_use]
    pub fn committed(&self) -> bool {
        self.committed
    }

    /// The sequence number of the next event.
    #[must_use]
    pub fn next_sequence_number(&self) -> u64 {
        self.seq
    }

    /// The output items (a JSON array), as the response holds them: what the gateway stores
    /// to continue the conversation.
    #[must_use]
    pub fn output_items(&self) -> Vec<u8> {
        let items: Vec<OutputItem<'_>> = self.items.iter().map(view).collect();
        let mut out = Vec::new();
        raw::write(&mut out, &items);
        out
    }

    /// The `Response` object once [`Writer::finish`] was called (`None` before).
    #[must_use]
    pub fn completed_response(&self) -> Option<Vec<u8>> {
        self.finished.map(|(f, u)| self.response_body(f, u))
    }

    /// The `Response` object of a finished answer (call [`Writer::finish`] first).
    #[must_use]
    pub fn response_body(&self, finish: Finish, usage: TokenUsage) -> Vec<u8> {
        let (status, details) = finish.status();
        let r = self.response(
            status,
            details,
            Some(Usage::of(usage, self.reasoning_tokens)),
            true,
        );
        let mut out = Vec::new();
        raw::write(&mut out, &r);
        out
    }

    fn response(
        &self,
        status: &'static str,
        incomplete_details: Option<IncompleteDetails>,
        usage: Option<Usage>,
        with_items: bool,
    ) -> Response<'_, Echo> {
        Response {
            id: &self.cx.response_id,
            object: "response",
            created_at: self.cx.created_at,
            status,
            error: Raw::Null,
            incomplete_details,
            model: &self.cx.model,
            output: if with_items {
                List::Owned(self.items.iter().map(view).collect())
            } else {
                List::Borrowed(&[])
            },
            usage,
            echo: if with_items {
                &self.cx.echo
            } else {
                &self.cx.echo_light
            },
        }
    }

    /// `output_item.added` of item `ix`.
    fn added(&mut self, out: &mut Vec<u8>, ix: ItemIx) {
        if !self.stream {
            return;
        }
        if let Some(it) = self.items.get(ix) {
            let item = view(it);
            let mut ev = Event::<()>::new("response.output_item.added", self.seq);
            ev.output_index = Some(ix as u64);
            ev.item = Some(&item);
            emit(out, ev.ty, &ev);
            self.seq += 1;
        }
    }

    /// An event about item `ix`, numbered next.
    fn item_event(&self, ty: &'static str, ix: ItemIx) -> Event<'_> {
        item_event(
            ty,
            self.seq,
            ix,
            self.items.get(ix).map_or("", |i| i.id.as_str()),
        )
    }
}

/// The `error` event of a Responses stream: `event: error` with
/// `{"type":"error","sequence_number":n,"code":…,"message":…,"param":null}`.
#[must_use]
pub fn stream_error_event(sequence_number: u64, code: &str, message: &str) -> Vec<u8> {
    let mut ev = Event::<()>::new("error", sequence_number);
    ev.code = Some(code);
    ev.message = Some(message);
    ev.param = Some(Raw::Null);
    let mut out = Vec::new();
    emit(&mut out, "error", &ev);
    out
}
