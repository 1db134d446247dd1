//! A chat completions stream (`chat.completion.chunk` events) into a Responses event
//! stream, through the shared [`Writer`].

use super::chat_answer::{finish_of, id_suffix, reasoning_text, reasoning_tokens};
use super::context::AnswerContext;
use super::emit::{Finish, ItemIx, ItemKind, Writer};
use crate::translate::stream::{EventTranslator, Progress, StreamPhase, StreamTranslator};
use crate::translate::UpstreamBroken;
use crate::wire::error::OpenAiErrorIn;
use crate::wire::openai_chat::{ChatChunk, ToolCallDelta};
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
        last_tool: None,
        tool_id: 0,
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
    /// Highest tool-call index opened so far.
    last_tool: Option<u64>,
    /// Hash of the id of the last call opened (0: none / no id).
    tool_id: u64,
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
        if self.progress.phase == StreamPhase::Errored || data.is_empty() {
            return Ok(());
        }
        let r = self.chunk(name, data, out);
        self.progress.started = self.w.committed();
        r
    }

    fn progress(&self) -> &Progress {
        &self.progress
    }
}

impl State {
    fn chunk(&mut self, name: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        if data == b"[DONE]" {
            return self.done(out);
        }
        if self.progress.phase == StreamPhase::Done {
            return Err(UpstreamBroken::invalid("data after [DONE]"));
        }
        let broken = || UpstreamBroken::invalid("invalid chunk JSON");
        let c: ChatChunk<'_> = crate::wire::raw::read(data).map_err(|_| broken())?;
        let error: Option<OpenAiErrorIn<'_>> = match &c.error {
            Some(e) => Some(e.parse().and_then(Result::ok).ok_or_else(broken)?),
            None => None,
        };
        if name == b"error" || error.is_some() {
            let code = error
                .as_ref()
                .and_then(|e| e.code_str().or(e.ty.as_ref().map(Str::as_str)))
                .unwrap_or("upstream_error");
            let message = error
                .as_ref()
                .and_then(|e| e.message.as_ref().map(Str::as_str))
                .unwrap_or("The upstream provider reported an error.");
            if self.progress.phase == StreamPhase::Start {
                // The error event follows a response's preamble, as the SDKs expect.
                self.w.start(out);
            }
            self.w.error(out, code, message);
            self.progress.phase = StreamPhase::Errored;
            return Ok(());
        }
        if let Some(u) = &c.usage {
            self.progress.usage = Some(u.tokens());
            self.w.set_reasoning_tokens(reasoning_tokens(u));
        }
        if self.progress.phase == StreamPhase::Start {
            self.progress.phase = StreamPhase::Open;
            self.w.start(out);
        }
        let Some(choice) = c
            .choices
            .iter()
            .flat_map(|l| l.iter())
            .find(|ch| ch.index.unwrap_or(0) == 0)
        else {
            return Ok(());
        };
        if let Some(d) = &choice.delta {
            if let Some(r) = reasoning_text(&d.reasoning_content, &d.reasoning)? {
                let ix = self.open(out, ItemKind::Reasoning)?;
                self.w.reasoning_delta(out, ix, r)?;
            }
            for t in [&d.content, &d.refusal].into_iter().flatten() {
                if t.is_null() {
                    continue;
                }
                if !t.is_str() {
                    return Err(UpstreamBroken::invalid("delta content not a string"));
                }
                if t.is_empty_str() {
                    continue;
                }
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
        // An empty id counts as absent (some providers send `""` on continuation pieces).
        let id = tc.id.as_ref().filter(|v| v.is_str() && !v.is_empty_str());
        let id_hash = id.map(|v| fnv1a(v.json().unwrap_or_default().as_bytes()));
        let new_id = id_hash.is_some_and(|h| h != self.tool_id);
        let index = match (tc.index, self.last_tool) {
            (Some(i), _) => i,
            // No index (some providers): a new id starts a new call, else the current one.
            (None, Some(l)) if new_id => l.saturating_add(1),
            (None, Some(l)) => l,
            (None, None) => 0,
        };
        let args = tc
            .function
            .as_ref()
            .and_then(|f| f.arguments.as_ref())
            .filter(|a| !a.is_null());
        if args.is_some_and(|a| !a.is_str()) {
            return Err(UpstreamBroken::invalid("tool call arguments not a string"));
        }
        let ix = match self.tool {
            Some((i, ix)) if i == index && !new_id => ix,
            _ => {
                // A new call: a higher index, or a different id (some providers number
                // every call 0).
                if !new_id && self.last_tool.is_some_and(|l| index <= l) {
                    return Err(UpstreamBroken::invalid(
                        "tool call delta after its item closed",
                    ));
                }
                let Some(name) = tc
                    .function
                    .as_ref()
                    .and_then(|f| f.name.as_ref())
                    .filter(|n| n.is_str() && !n.is_empty_str())
                else {
                    return Err(UpstreamBroken::invalid("new tool call without a name"));
                };
                self.close_open(out)?;
                let call_id = match id {
                    Some(id) => id.clone(),
                    None => Raw::Text(Cow::Owned(format!(
                        "call_{}_{index}",
                        id_suffix(self.w.context())
                    ))),
                };
                let ix = self.w.open_call(out, &call_id, name)?;
                self.tool = Some((index, ix));
                self.last_tool = Some(self.last_tool.map_or(index, |l| l.max(index)));
                self.tool_id = id_hash.unwrap_or(0);
                ix
            }
        };
        if let Some(a) = args {
            self.w.args_delta(out, ix, a)?;
        }
        Ok(())
    }

    fn done(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        match self.progress.phase {
            StreamPhase::Start => return Err(UpstreamBroken::invalid("[DONE] before any chunk")),
            StreamPhase::Done => return Err(UpstreamBroken::invalid("second [DONE]")),
            _ => {}
        }
        self.tool = None;
        let finish = self.finish.unwrap_or(Finish::Completed);
        self.w
            .finish(out, finish, self.progress.usage.unwrap_or_default())?;
        self.progress.phase = StreamPhase::Done;
        Ok(())
    }
}

/// FNV-1a, 64 bits (never 0: 0 means "none").
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
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
