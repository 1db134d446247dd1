//! A chat completions stream into `GenerateContentResponse` chunks.

use super::answer::{
    args_object, call_part, finish_of_chat, response, thoughts_of, usage_metadata, Framer,
    MALFORMED,
};
use super::context::AnswerContext;
use super::errors::{in_band_message, openai_type_status};
use crate::translate::chat_in::{self, Chunk};
use crate::translate::stream::{EventTranslator, Progress, StreamPhase, StreamTranslator};
use crate::translate::UpstreamBroken;
use crate::wire::error::OpenAiErrorIn;
use crate::wire::gemini::PartOut;
use crate::wire::openai_chat::ToolCallDelta;
use crate::wire::raw::{Raw, Str};
use serde_json::value::RawValue;

/// Most bytes of function-call arguments held at once (a call is held until its arguments
/// are complete).
pub const MAX_ARGS_BYTES: usize = 4 << 20;

/// Translates a chat completions stream into Gemini chunks (SSE or JSON-array framing, per
/// [`AnswerContext::sse`]).
///
/// Chunks: non-empty `delta.content` (or `refusal`) → a chunk with a text part; reasoning
/// text → a `thought` part (with `includeThoughts`); tool-call pieces are gathered per call
/// and the call is written as one `functionCall` part when the next call starts or
/// `finish_reason` arrives; `usage` (the chunk after `finish_reason`) is kept; `[DONE]` →
/// the last chunk (no parts, `finishReason`, `usageMetadata`). Role-only and empty chunks
/// and choices other than 0 produce nothing. An in-band `data: {"error": …}` → the final
/// error chunk (status by the error's type); the stream is then over.
///
/// [`UpstreamBroken`] (sticky): not SSE, data that is neither `[DONE]` nor a JSON object,
/// a new call without a name, `[DONE]` before any chunk, data after `[DONE]`, arguments
/// over [`MAX_ARGS_BYTES`].
pub type ChatStream = StreamTranslator<State>;

/// A translator at the start of the answer described by `cx`.
#[must_use]
pub fn new_chat_stream(cx: AnswerContext) -> ChatStream {
    StreamTranslator::with_state(State {
        progress: Progress::default(),
        framer: Framer::new(cx.sse),
        cx,
        call: None,
        last_index: None,
        finish: None,
        malformed: false,
        thoughts: 0,
    })
}

/// A call being gathered.
#[derive(Debug)]
struct Call {
    index: u64,
    id: Option<String>,
    name: Box<RawValue>,
    args: String,
}

/// The per-event state of a chat → Gemini stream ([`ChatStream`]).
#[derive(Debug)]
pub struct State {
    progress: Progress,
    cx: AnswerContext,
    framer: Framer,
    call: Option<Call>,
    last_index: Option<u64>,
    finish: Option<&'static str>,
    malformed: bool,
    thoughts: u64,
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

    fn write(&mut self, out: &mut Vec<u8>, parts: &[PartOut<'_>]) {
        let r = response(&self.cx, parts, None, None);
        let mut framer = self.framer;
        framer.chunk(out, &r, false);
        self.framer = framer;
        self.progress.started = true;
    }

    /// Writes the gathered call (if any) as a `functionCall` part.
    fn flush_call(&mut self, out: &mut Vec<u8>) {
        let Some(c) = self.call.take() else {
            return;
        };
        match args_object(&c.args) {
            Some(args) => {
                let part = call_part(Raw::Borrowed(&c.name), args);
                self.write(out, &[part]);
            }
            None => self.malformed = true,
        }
    }

    fn chunk(&mut self, name: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        let c = match chat_in::read(&mut self.progress, name, data)? {
            Chunk::Skip => return Ok(()),
            Chunk::Done => return self.done(out),
            Chunk::Error { error, .. } => {
                let ty = error.as_ref().and_then(|e| e.ty.as_ref().map(Str::as_str));
                let code = error.as_ref().and_then(OpenAiErrorIn::code_str);
                let status = openai_type_status(ty, code);
                let m = error
                    .as_ref()
                    .and_then(|e| e.message.as_ref().map(Str::as_str));
                self.framer.error(out, status, in_band_message(status, m));
                return Ok(());
            }
            Chunk::Data { chunk, .. } => chunk,
        };
        if let Some(u) = &c.usage {
            self.thoughts = thoughts_of(u);
        }
        let Some(choice) = chat_in::choice0(&c) else {
            return Ok(());
        };
        if let Some(d) = &choice.delta {
            if self.cx.include_thoughts {
                let r = [&d.reasoning_content, &d.reasoning]
                    .into_iter()
                    .flatten()
                    .find(|r| !r.is_null());
                if let Some(r) = r {
                    if !r.is_str() {
                        return Err(UpstreamBroken::invalid("reasoning not a string"));
                    }
                    if !r.is_empty_str() {
                        self.write(out, &[PartOut::text(r.clone(), true)]);
                    }
                }
            }
            for t in chat_in::texts(d) {
                self.write(out, &[PartOut::text(t?.clone(), false)]);
            }
            for tc in d.tool_calls.iter().flat_map(|l| l.iter()) {
                self.tool_delta(tc, out)?;
            }
        }
        if let Some(fr) = &choice.finish_reason {
            self.flush_call(out);
            self.finish = Some(finish_of_chat(Some(fr.as_str())));
        }
        Ok(())
    }

    fn tool_delta(
        &mut self,
        tc: &ToolCallDelta<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), UpstreamBroken> {
        let id = tc
            .id
            .as_ref()
            .filter(|v| v.is_str() && !v.is_empty_str())
            .and_then(Raw::inner);
        let is_new = match (tc.index, self.call.as_ref()) {
            (_, None) => true,
            (Some(i), Some(c)) => {
                i != c.index || (id.is_some() && c.id.is_some() && c.id.as_deref() != id)
            }
            (None, Some(c)) => id.is_some() && c.id.as_deref() != id,
        };
        let index = match (tc.index, &self.call) {
            (Some(i), _) => i,
            (None, Some(c)) if !is_new => c.index,
            (None, _) => self.last_index.map_or(0, |l| l.saturating_add(1)),
        };
        if is_new {
            let name = tc
                .function
                .as_ref()
                .and_then(|f| f.name.as_ref())
                .filter(|n| n.is_str() && !n.is_empty_str());
            let Some(name) = name else {
                // A piece of a call already written (or never named): nothing to attach to.
                return Err(UpstreamBroken::invalid("new tool call without a name"));
            };
            let name = RawValue::from_string(name.json().unwrap_or("\"\"").to_owned())
                .map_err(|_| UpstreamBroken::invalid("tool call name"))?;
            self.flush_call(out);
            self.call = Some(Call {
                index,
                id: id.map(str::to_owned),
                name,
                args: String::new(),
            });
            self.last_index = Some(self.last_index.map_or(index, |l| l.max(index)));
        }
        let args = tc
            .function
            .as_ref()
            .and_then(|f| f.arguments.as_ref())
            .filter(|a| !a.is_null());
        if let (Some(a), Some(c)) = (args, self.call.as_mut()) {
            let piece = match a.parse::<Str<'_>>() {
                Some(Ok(s)) => s,
                _ => return Err(UpstreamBroken::invalid("tool call arguments not a string")),
            };
            if c.args.len() + piece.as_str().len() > MAX_ARGS_BYTES {
                return Err(UpstreamBroken::invalid("tool call arguments too long"));
            }
            c.args.push_str(piece.as_str());
        }
        Ok(())
    }

    fn done(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        self.flush_call(out);
        let finish = if self.malformed {
            MALFORMED
        } else {
            self.finish.unwrap_or("STOP")
        };
        let usage = usage_metadata(self.progress.usage.unwrap_or_default(), self.thoughts);
        let r = response(&self.cx, &[], Some(finish), Some(usage));
        let mut framer = self.framer;
        framer.chunk(out, &r, true);
        self.framer = framer;
        self.progress.phase = StreamPhase::Done;
        Ok(())
    }
}

impl EventTranslator for State {
    const ENDED_EARLY: &'static str = "stream ended before [DONE]";

    fn event(&mut self, name: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamBroken> {
        self.chunk(name, data, out)
    }

    fn progress(&self) -> &Progress {
        &self.progress
    }
}
