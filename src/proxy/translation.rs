//! Carrying one attempt between the client's API and its backend's when they differ: the
//! request body, the upstream path, and the answer (JSON, event stream or error). Same-API
//! attempts are untouched here: their body is spliced and their answer passes through.

use super::admitted::{attempt_body, ProxyRequest};
use crate::error::ApiError;
use crate::providers::Dialect;
use crate::routing::Backend;
use crate::translate::stream::{EventTranslator, StreamTranslator};
use crate::translate::{chat_to_messages, errors, messages_to_chat, UpstreamBroken};
use crate::vocab::{Operation, TokenUsage};
use bytes::Bytes;

/// Largest non-stream answer buffered for translation (a larger one is a broken answer).
const MAX_TRANSLATED_BODY: usize = 32 << 20;

/// Which way an attempt is translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// Same API on both sides.
    None,
    /// An OpenAI chat client on an Anthropic backend.
    ChatToMessages,
    /// An Anthropic Messages client on an OpenAI-family backend.
    MessagesToChat,
}

impl Translation {
    /// The translation an operation needs on a backend speaking `dialect`.
    pub fn of(op: Operation, dialect: &Dialect) -> Translation {
        match (op, dialect) {
            (Operation::Chat, Dialect::Anthropic) => Translation::ChatToMessages,
            (Operation::Messages, d) if !matches!(d, Dialect::Anthropic) => {
                Translation::MessagesToChat
            }
            _ => Translation::None,
        }
    }

    /// The client-style path (`/v1/...`) the backend's URL is built from.
    pub fn upstream_client_path(self, client_path: &str) -> &str {
        match self {
            Translation::None => client_path,
            Translation::ChatToMessages => "/v1/messages",
            Translation::MessagesToChat => "/v1/chat/completions",
        }
    }

    /// The body of an attempt on `backend`: spliced, or translated. A client field the
    /// backend's API cannot express is a 400 naming it (admission already refused those
    /// with [`check`](Self::check)).
    pub fn request_body(self, req: &ProxyRequest, backend: &Backend) -> Result<Bytes, ApiError> {
        let translated = match self {
            Translation::None => return Ok(attempt_body(req, &backend.model_literal)),
            Translation::ChatToMessages => {
                chat_to_messages::request(&req.body, &backend.real_model)
            }
            Translation::MessagesToChat => {
                messages_to_chat::request(&req.body, &backend.real_model)
            }
        };
        translated
            .map(Bytes::from)
            .map_err(|r| ApiError::bad_request(r.message).with_param(r.param))
    }

    /// Whether the client's `body` can be expressed in the backend's API: `Err` is the 400
    /// naming the field that cannot.
    pub fn check(self, body: &[u8]) -> Result<(), ApiError> {
        let translated = match self {
            Translation::None => return Ok(()),
            Translation::ChatToMessages => chat_to_messages::request(body, ""),
            Translation::MessagesToChat => messages_to_chat::request(body, ""),
        };
        translated
            .map(drop)
            .map_err(|r| ApiError::bad_request(r.message).with_param(r.param))
    }

    /// The status the client sees for an upstream `status` (Anthropic's 529 is 503 for
    /// OpenAI clients).
    pub fn client_status(self, status: u16) -> u16 {
        match (self, status) {
            (Translation::ChatToMessages, 529) => 503,
            _ => status,
        }
    }

    /// How the answer body is carried, for a translated attempt: a success as a stream or
    /// a JSON body, anything else as an error body. `None` for same-API attempts.
    pub fn answer(self, status: u16, sse: bool, include_usage: bool) -> Option<AnswerTranslator> {
        Some(match (self, (200..300).contains(&status), sse) {
            (Translation::None, _, _) => return None,
            (Translation::ChatToMessages, true, true) => {
                AnswerTranslator::ChatStream(Box::new(chat_to_messages::Stream::new(include_usage)))
            }
            (Translation::MessagesToChat, true, true) => {
                AnswerTranslator::MessagesStream(Box::default())
            }
            (kind, true, false) => AnswerTranslator::Json {
                kind,
                buf: Vec::new(),
                usage: None,
            },
            (kind, false, _) => AnswerTranslator::Error {
                kind,
                status,
                buf: Vec::new(),
            },
        })
    }
}

/// Translates one answer body as it arrives.
#[derive(Debug)]
pub enum AnswerTranslator {
    /// Anthropic events → OpenAI chunks, event by event.
    ChatStream(Box<chat_to_messages::Stream>),
    /// OpenAI chunks → Anthropic events, event by event.
    MessagesStream(Box<messages_to_chat::Stream>),
    /// A non-stream success, translated whole at its end (then `usage` is known).
    Json {
        kind: Translation,
        buf: Vec<u8>,
        usage: Option<TokenUsage>,
    },
    /// An error answer, translated whole at its end.
    Error {
        kind: Translation,
        status: u16,
        buf: Vec<u8>,
    },
}

impl AnswerTranslator {
    /// Takes the next upstream chunk (`end`: the body ended) and returns the bytes to send
    /// the client now, if any. `Err` when the answer is broken or incomplete.
    pub fn chunk(&mut self, body: Option<&[u8]>, end: bool) -> Result<Option<Bytes>, Broken> {
        let mut out = Vec::new();
        match self.translate(body, end, &mut out) {
            Ok(()) => Ok((!out.is_empty()).then(|| Bytes::from(out))),
            Err(reason) => Err(Broken {
                reason,
                pending: out,
            }),
        }
    }

    fn translate(
        &mut self,
        body: Option<&[u8]>,
        end: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), UpstreamBroken> {
        match self {
            AnswerTranslator::ChatStream(s) => translate_stream(s, body, end, out)?,
            AnswerTranslator::MessagesStream(s) => translate_stream(s, body, end, out)?,
            AnswerTranslator::Json { kind, buf, usage } => {
                collect(buf, body)?;
                if end {
                    let (translated, tokens) = match kind {
                        Translation::ChatToMessages => chat_to_messages::response(buf)?,
                        _ => messages_to_chat::response(buf)?,
                    };
                    *out = translated;
                    *usage = Some(tokens);
                }
            }
            AnswerTranslator::Error { kind, status, buf } => {
                collect(buf, body)?;
                if end {
                    *out = match kind {
                        Translation::ChatToMessages => errors::anthropic_to_openai(*status, buf).1,
                        _ => errors::openai_to_anthropic(*status, buf).1,
                    };
                }
            }
        }
        Ok(())
    }

    /// Token usage of the answer so far (streams), or of the whole answer (JSON, at its end).
    pub fn usage(&self) -> Option<TokenUsage> {
        match self {
            AnswerTranslator::ChatStream(s) => s.usage(),
            AnswerTranslator::MessagesStream(s) => s.usage(),
            AnswerTranslator::Json { usage, .. } => *usage,
            AnswerTranslator::Error { .. } => None,
        }
    }

    /// Whether the answer reached its commit point: a translated stream emitted its first
    /// content event. Whole-body answers are never held (always true).
    pub fn started_content(&self) -> bool {
        match self {
            AnswerTranslator::ChatStream(s) => s.started_content(),
            AnswerTranslator::MessagesStream(s) => s.started_content(),
            _ => true,
        }
    }

    /// The translated stream already carries the client's error event (an in-band upstream
    /// error was translated), so a cut needs no second one.
    pub fn sent_error_event(&self) -> bool {
        match self {
            AnswerTranslator::ChatStream(s) => s.saw_error(),
            AnswerTranslator::MessagesStream(s) => s.saw_error(),
            _ => false,
        }
    }
}

/// A translated answer found broken: why, and the translated bytes of the chunk that were
/// ready before (sent ahead of the final error event).
#[derive(Debug)]
pub struct Broken {
    pub reason: UpstreamBroken,
    pub pending: Vec<u8>,
}

/// Keeps a whole-body answer's next chunk, bounded by [`MAX_TRANSLATED_BODY`].
fn collect(buf: &mut Vec<u8>, body: Option<&[u8]>) -> Result<(), UpstreamBroken> {
    if let Some(b) = body {
        if buf.len() + b.len() > MAX_TRANSLATED_BODY {
            return Err(UpstreamBroken::invalid(
                "the upstream answer is too large to translate",
            ));
        }
        buf.extend_from_slice(b);
    }
    Ok(())
}

/// Translates a stream's next chunk (`end`: the upstream body ended with it). Fails on an
/// in-band upstream error (already translated into the client's error event, which then
/// goes out with the cut, not ahead of it), or at an end before the stream was complete.
fn translate_stream<T: EventTranslator>(
    s: &mut StreamTranslator<T>,
    body: Option<&[u8]>,
    end: bool,
    out: &mut Vec<u8>,
) -> Result<(), UpstreamBroken> {
    if let Some(b) = body {
        s.feed(b, out)?;
    }
    if s.saw_error() {
        return Err(UpstreamBroken::error_event(
            "the upstream provider reported an error in the stream",
        ));
    }
    if end {
        s.finish()?;
    }
    Ok(())
}

/// Whether an OpenAI chat body asked for usage in its stream (`stream_options.include_usage`).
pub fn wants_stream_usage(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Opts {
        include_usage: Option<bool>,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        stream_options: Option<Opts>,
    }
    serde_json::from_slice::<Body>(body)
        .ok()
        .and_then(|b| b.stream_options)
        .and_then(|o| o.include_usage)
        .unwrap_or(false)
}
