//! A chat completions stream (`chat.completion.chunk` events) into a Responses event
//! stream, through the shared [`Writer`].

use super::chat_answer::{finish_of, id_suffix, reasoning_text, reasoning_tokens};
use super::context::AnswerContext;
use super::emit::{Finish, ItemIx, ItemKind, Writer};
use crate::translate::chat_in::{self, Chunk, ToolCalls};
use crate::translate::stream::{EventTranslator, Progress, StreamPhase, StreamTranslator};
use crate::translate::UpstreamBroken;
use crate::wire::openai_chat::ToolCallDelta;
use crate::wire::raw::{Raw, Str};
use std::borrow::Cow;

/// Translates a chat completions stream into a Responses event stream
/// (`event: <type>\ndata: <json>\n\n`, `sequence_number` from 0) that the official SDKs
/// accumulate.
///
/// Chunks → events: the first chunk → `response.created` + `response.in_progress`;
/// reasoning text (`delta.reasoning_content` / `delta.reasoning`) → a `reasoning` item
/// (summary deltas); non-empty `delta.content` (or `delta.refusal`) → a `message` item
/// (`output_item.added`, `content_part.added`, then `output_text.delta`); each tool-call
/// index → a `function_call` item (`output_item.added` at its first piece, then
/// `function_call_arguments.delta`) or a `custom_tool_call` (its input at close) when the
/// name is a custom tool of the request. An item of another kind closes the open one (its
/// `.done` events and `output_item.done`); `finish_reason` closes the open item and sets
/// the status (length → incomplete `max_output_tokens`, content_filter → incomplete
/// `content_filter`); `usage` (the chunk after `finish_reason`) → usage; `[DONE]` →
/// `response.completed` (or `response.incomplete`) with the whole response. Role-only and
/// empty chunks and choices other than index 0 produce nothing. An in-band
/// `data: {"error": …}` (or `event: error`) → the Responses `error` event; the stream is
/// then over (no `response.completed`; later input ignored).
///
/// Commit point: the first delta or `output_item.done`. Memory: the answer's text and
/// arguments are kept (for the `.done` events and the final response) up to
/// [`super::emit::MAX_OUTPUT_BYTES`]; more is [`UpstreamBroken`].
///
/// [`UpstreamBroken`] (sticky): not SSE, data that is neither `[DONE]` nor a JSON object, a
/// tool-call piece for a call already closed, a new tool call without a name, `[DONE]`
/// before any chunk, data after `[DONE]`, an answer over the size limit.
pub type ChatStream = StreamTranslator<State>;

/// A translator at the start of the answer described by `cx`.
#[must_use]
pub fn new_chat_stream(cx: AnswerContext) -> ChatStream {
    StreamTranslator::with_state(State {
        progress: Progress::default(),
        w: Writer::new(cx, true),
        tool: None,
        tools: ToolCalls::default(),
        finish: None,
    })
}

/// The per-event state of a chat → Responses stream ([`ChatStream`]).
#[derive(Debug)]
pub struct State {
    /// Usage: from the usage chunk. Commit point: [`Writer::committed`]. Error: an in-band
    /// `data: {"error": …}`.
    progress: Progress,
    w: Writer,
    /// The open call: its chat tool-call index and its item.
    tool: Option<(u64, ItemIx)>,
    /// Which call a tool-call piece belongs to.
    tools: ToolCalls,
    finish: Option<Finish>,
}

impl State {
    /// The output items so far (a JSON array): what the gateway stores for the next turn.
    #[must_use]
    pub fn output_items(&self) -> Vec<u8> {
        self.w.output_items()
    }

    /// The sequence number of the next event (for the gateway's own error event).
    #[must_use]
    pub fn next_sequence_number(&self) -> u64 {
        self.w.next_sequence_number()
    }

    /// The whole `Response` once the stream completed (`None` before).
    #[must_use]
    pub fn completed_response(&self) -> Option<Vec<u8>> {
        self.w.completed_response()
    }
}

impl EventTranslator for State {
    const ENDED_EARLY: &'static str = "stream ended before [DONE]";

    fn event(&mut self, name: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        let r = match chat_in::read(&mut self.progress, name, data) {
            Ok(Chunk::Skip) => return Ok(()),
            Ok(c) => self.chunk(c, out),
            Err(e) => Err(e),
        };
        self.progress.started = self.w.committed();
        r
    }

    fn progress(&self) -> &Progress {
        &self.progress
    }
}

impl State {
    fn chunk(&mut self, c: Chunk<'_>, out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        let (c, first) = match c {
            Chunk::Skip => return Ok(()),
            Chunk::Done => return self.done(out),
            Chunk::Error { error, first } => {
                let code = error
                    .as_ref()
                    .and_then(|e| e.code_str().or(e.ty.as_ref().map(Str::as_str)))
                    .unwrap_or("upstream_error");
                let message = error
                    .as_ref()
                    .and_then(|e| e.message.as_ref().map(Str::as_str))
                    .unwrap_or("The upstream provider reported an error.");
                if first {
                    // The error event follows a response's preamble, as the SDKs expect.
                    self.w.start(out);
                }
                self.w.error(out, code, message);
                return Ok(());
            }
            Chunk::Data { chunk, first } => (chunk, first),
        };
        if let Some(u) = &c.usage {
            self.w.set_reasoning_tokens(reasoning_tokens(u));
        }
        if first {
            self.w.start(out);
        }
        let Some(choice) = chat_in::choice0(&c) else {
            return Ok(());
        };
        if let Some(d) = &choice.delta {
            if let Some(r) = reasoning_text(&d.reasoning_content, &d.reasoning)? {
                let ix = self.open(out, ItemKind::Reasoning)?;
                self.w.reasoning_delta(out, ix, r)?;
            }
            for t in chat_in::texts(d) {
                let t = t?;
                let ix = self.open(out, ItemKind::Message)?;
                self.w.text_delta(out, ix, t)?;
            }
            for tc in d.tool_calls.iter().flat_map(|l| l.iter()) {
                self.tool_delta(tc, out)?;
            }
        }
        if let Some(fr) = &choice.finish_reason {
            self.close_open(out)?;
            self.finish = Some(finish_of(Some(fr.as_str())));
        }
        Ok(())
    }

    /// The open item of `kind` (a message or reasoning), opened (closing another) if needed.
    fn open(&mut self, out: &mut Vec<u8>, kind: ItemKind) -> Result<ItemIx, UpstreamBroken> {
        if let Some((ix, k)) = self.w.open_item() {
            if k == kind {
                return Ok(ix);
            }
        }
        self.close_open(out)?;
        match kind {
            ItemKind::Reasoning => self.w.open_reasoning(out),
            _ => self.w.open_message(out),
        }
    }

    fn close_open(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        self.tool = None;
        match self.w.open_item() {
            Some((ix, _)) => self.w.close(out, ix),
            None => Ok(()),
        }
    }

    fn tool_delta(
        &mut self,
        tc: &ToolCallDelta<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), UpstreamBroken> {
        let open = self.tool.map(|(i, _)| i);
        let piece = self
            .tools
            .piece(tc, open, "tool call delta after its item closed")?;
        let ix = match (piece.new, self.tool) {
            // A continuation: its call is the open one.
            (None, Some((_, ix))) => ix,
            (None, None) => return Ok(()),
            (Some(new), _) => {
                self.close_open(out)?;
                let index = piece.index;
                let call_id = match new.id {
                    Some(id) => id.clone(),
                    None => Raw::Text(Cow::Owned(format!(
                        "call_{}_{index}",
                        id_suffix(self.w.context())
                    ))),
                };
                let ix = self.w.open_call(out, &call_id, new.name)?;
                self.tool = Some((index, ix));
                ix
            }
        };
        if let Some(a) = piece.args {
            self.w.args_delta(out, ix, a)?;
        }
        Ok(())
    }

    fn done(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        self.tool = None;
        let finish = self.finish.unwrap_or(Finish::Completed);
        self.w
            .finish(out, finish, self.progress.usage.unwrap_or_default())?;
        self.progress.phase = StreamPhase::Done;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::BodyFault;

    fn stream() -> ChatStream {
        let req = br#"{"tools":[{"type":"custom","name":"apply_patch"}]}"#;
        new_chat_stream(AnswerContext::new("resp_1".into(), "m".into(), req))
    }

    #[test]
    fn deltas_are_copied_verbatim() {
        let mut s = stream();
        let mut out = Vec::new();
        s.feed(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\\u00e9\\/\"}}]}\n\n",
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""delta":"a\u00e9\/""#), "{text}");
        assert!(s.started_content());
    }

    #[test]
    fn an_answer_over_the_limit_breaks_the_stream() {
        let mut s = stream();
        let mut out = Vec::new();
        let piece = "x".repeat(64 * 1024);
        let chunk =
            format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{piece}\"}}}}]}}\n\n");
        let mut result = Ok(());
        for _ in 0..(super::super::emit::MAX_OUTPUT_BYTES / piece.len() + 2) {
            out.clear();
            result = s.feed(chunk.as_bytes(), &mut out);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.map_err(|e| e.fault), Err(BodyFault::Invalid));
        assert!(s.finish().is_err());
    }

    #[test]
    fn custom_tool_calls_unpack_their_input() {
        let mut s = stream();
        let mut out = Vec::new();
        let input = concat!(
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",",
            "\"function\":{\"name\":\"apply_patch\",\"arguments\":\"{\\\"input\\\":\\\"a\\\\nb\\\"}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        s.feed(input.as_bytes(), &mut out).unwrap();
        s.finish().unwrap();
        let items: serde_json::Value = serde_json::from_slice(&s.state().output_items()).unwrap();
        assert_eq!(items[0]["type"], "custom_tool_call");
        assert_eq!(items[0]["input"], "a\nb");
        assert_eq!(items[0]["call_id"], "c1");
    }
}
