//! Carrying one attempt between the client's API and its backend's when they differ: the
//! request body, the upstream path, and the answer (JSON, event stream or error). Same-API
//! attempts are untouched here: their body is spliced and their answer passes through.

use super::admitted::{attempt_body, ProxyRequest};
use crate::error::ApiError;
use crate::providers::{Dialect, ProviderRoute};
use crate::routing::Backend;
use crate::translate::gemini;
use crate::translate::responses::{self, AnswerContext, RequestContext};
use crate::translate::stream::{EventTranslator, StreamTranslator};
use crate::translate::{
    cache_breakpoints, chat_to_messages, errors, messages_to_chat, UpstreamBroken,
};
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
    /// An OpenAI Responses client on an Anthropic backend.
    ResponsesToMessages,
    /// An OpenAI Responses client on a backend that serves only chat completions.
    ResponsesToChat,
    /// A Gemini API client on an OpenAI-family (chat completions) backend.
    GeminiToChat,
    /// A Gemini API client on an Anthropic backend.
    GeminiToMessages,
    /// A Gemini `countTokens` call on an Anthropic backend (`/v1/messages/count_tokens`).
    GeminiCountToMessages,
}

/// What an attempt sends: its body, and the hosted tools translation dropped from it (named
/// in `x-berry-dropped-tools`).
#[derive(Debug)]
pub struct AttemptRequest {
    pub body: Bytes,
    pub dropped_tools: Vec<String>,
}

impl Translation {
    /// The translation an operation needs on `provider`.
    pub fn of(op: Operation, provider: &ProviderRoute) -> Translation {
        match (op, &provider.dialect) {
            (Operation::Chat, Dialect::Anthropic) => Translation::ChatToMessages,
            (Operation::Messages, d) if !matches!(d, Dialect::Anthropic) => {
                Translation::MessagesToChat
            }
            (Operation::Responses, Dialect::Anthropic) => Translation::ResponsesToMessages,
            (Operation::Responses, _) if !provider.responses_api => Translation::ResponsesToChat,
            (Operation::GenerateContent, Dialect::Anthropic) => Translation::GeminiToMessages,
            (Operation::GenerateContent, Dialect::Gemini) => Translation::None,
            (Operation::GenerateContent, _) => Translation::GeminiToChat,
            (Operation::GeminiCountTokens, Dialect::Anthropic) => {
                Translation::GeminiCountToMessages
            }
            _ => Translation::None,
        }
    }

    /// The client speaks the Gemini API (its stream is framed as it asked).
    pub fn is_gemini(self) -> bool {
        matches!(
            self,
            Translation::GeminiToChat
                | Translation::GeminiToMessages
                | Translation::GeminiCountToMessages
        )
    }

    /// The client answers in the Responses API (its stream's cut event carries a
    /// `sequence_number`).
    pub fn is_responses(self) -> bool {
        matches!(
            self,
            Translation::ResponsesToMessages | Translation::ResponsesToChat
        )
    }

    /// The client-style path (`/v1/...`) the backend's URL is built from.
    pub fn upstream_client_path(self, client_path: &str) -> &str {
        match self {
            Translation::None => client_path,
            Translation::ChatToMessages
            | Translation::ResponsesToMessages
            | Translation::GeminiToMessages => "/v1/messages",
            Translation::MessagesToChat
            | Translation::ResponsesToChat
            | Translation::GeminiToChat => "/v1/chat/completions",
            Translation::GeminiCountToMessages => "/v1/messages/count_tokens",
        }
    }

    /// The body of an attempt on `backend`: spliced, or translated. A client field the
    /// backend's API cannot express is a 400 naming it (admission already refused those
    /// with [`check`](Self::check)).
    pub fn request_body(
        self,
        req: &ProxyRequest,
        backend: &Backend,
    ) -> Result<AttemptRequest, ApiError> {
        let plain = |body: Bytes| AttemptRequest {
            body,
            dropped_tools: Vec::new(),
        };
        let translated = match self {
            // A stored response is read or changed without a body.
            Translation::None if req.op == Operation::ResponseById => {
                return Ok(plain(Bytes::new()))
            }
            // A native Gemini call: the model is in the path, the body goes as it is.
            Translation::None if req.gemini.is_some() => return Ok(plain(req.body.clone())),
            Translation::None => return Ok(plain(attempt_body(req, &backend.model_literal))),
            Translation::ChatToMessages => {
                chat_to_messages::request(&req.body, &backend.real_model).map(|b| (b, Vec::new()))
            }
            Translation::MessagesToChat => {
                messages_to_chat::request(&req.body, &backend.real_model).map(|b| (b, Vec::new()))
            }
            Translation::ResponsesToMessages | Translation::ResponsesToChat => {
                let cx = RequestContext {
                    model: &backend.real_model,
                    history: req.history(),
                };
                self.responses_request(&req.body, &cx)
                    .map(|t| (t.body, t.dropped_tools))
            }
            Translation::GeminiToChat
            | Translation::GeminiToMessages
            | Translation::GeminiCountToMessages => self
                .gemini_request(&req.body, &backend.real_model, req.stream)
                .map(|body| (body, Vec::new())),
        };
        translated
            .map(|(body, dropped_tools)| AttemptRequest {
                body: Bytes::from(self.with_cache_breakpoints(body, req, backend)),
                dropped_tools,
            })
            .map_err(|r| ApiError::bad_request(r.message).with_param(r.param))
    }

    /// A translated Messages body with automatic prompt-cache breakpoints, unless the
    /// provider turned them off (`auto_cache = false`) or the client set markers of its own.
    fn with_cache_breakpoints(
        self,
        body: Vec<u8>,
        req: &ProxyRequest,
        backend: &Backend,
    ) -> Vec<u8> {
        let to_messages = matches!(
            self,
            Translation::ChatToMessages
                | Translation::ResponsesToMessages
                | Translation::GeminiToMessages
        );
        if !to_messages || !backend.provider.auto_cache || cache_breakpoints::has_markers(&req.body)
        {
            return body;
        }
        cache_breakpoints::add(&body).unwrap_or(body)
    }

    fn gemini_request(
        self,
        body: &[u8],
        model: &str,
        stream: bool,
    ) -> Result<Vec<u8>, crate::translate::Untranslatable> {
        let cx = gemini::RequestContext { model, stream };
        let translated = match self {
            Translation::GeminiToMessages => gemini::to_messages(body, &cx),
            Translation::GeminiCountToMessages => gemini::count_tokens_to_messages(body, &cx),
            _ => gemini::to_chat(body, &cx),
        };
        translated.map(|t| t.body)
    }

    /// [`check`](Self::check) of a Gemini call's body (`stream`: `streamGenerateContent`).
    pub fn check_gemini(self, body: &[u8], stream: bool) -> Result<(), ApiError> {
        self.gemini_request(body, "", stream)
            .map(drop)
            .map_err(|r| ApiError::bad_request(r.message).with_param(r.param))
    }

    fn responses_request(
        self,
        body: &[u8],
        cx: &RequestContext<'_>,
    ) -> Result<responses::TranslatedRequest, crate::translate::Untranslatable> {
        if self == Translation::ResponsesToMessages {
            responses::to_messages(body, cx)
        } else {
            responses::to_chat(body, cx)
        }
    }

    /// Whether the client's `body` (continuing the conversation `history`, for the
    /// Responses API) can be expressed in the backend's API: `Err` is the 400 naming the
    /// field that cannot.
    pub fn check(self, body: &[u8], history: Option<&[u8]>) -> Result<(), ApiError> {
        let translated = match self {
            Translation::None => return Ok(()),
            Translation::ChatToMessages => chat_to_messages::request(body, "").map(drop),
            Translation::MessagesToChat => messages_to_chat::request(body, "").map(drop),
            Translation::ResponsesToMessages | Translation::ResponsesToChat => {
                let cx = RequestContext { model: "", history };
                self.responses_request(body, &cx).map(drop)
            }
            Translation::GeminiToChat
            | Translation::GeminiToMessages
            | Translation::GeminiCountToMessages => self.gemini_request(body, "", false).map(drop),
        };
        translated.map_err(|r| ApiError::bad_request(r.message).with_param(r.param))
    }

    /// The status the client sees for an upstream `status` (Anthropic's 529 is 503 for
    /// OpenAI clients).
    pub fn client_status(self, status: u16) -> u16 {
        match (self, status) {
            (
                Translation::ChatToMessages
                | Translation::ResponsesToMessages
                | Translation::GeminiToMessages
                | Translation::GeminiCountToMessages,
                529,
            ) => 503,
            _ => status,
        }
    }

    /// How the answer body is carried, for a translated attempt: a success as a stream or
    /// a JSON body, anything else as an error body. `None` for same-API attempts.
    /// `issued`: what the gateway issues the answer as, for the APIs that number or frame
    /// it (Responses, Gemini).
    pub fn answer(
        self,
        status: u16,
        sse: bool,
        include_usage: bool,
        issued: Issued,
    ) -> Option<AnswerTranslator> {
        Some(match (self, (200..300).contains(&status), sse, issued) {
            (Translation::None, ..) => return None,
            (Translation::ChatToMessages, true, true, _) => {
                AnswerTranslator::ChatStream(Box::new(chat_to_messages::Stream::new(include_usage)))
            }
            (Translation::MessagesToChat, true, true, _) => {
                AnswerTranslator::MessagesStream(Box::default())
            }
            (Translation::ResponsesToMessages, true, true, Issued::Responses(cx)) => {
                AnswerTranslator::ResponsesFromMessages(Box::new(responses::new_messages_stream(
                    cx,
                )))
            }
            (Translation::ResponsesToChat, true, true, Issued::Responses(cx)) => {
                AnswerTranslator::ResponsesFromChat(Box::new(responses::new_chat_stream(cx)))
            }
            (Translation::GeminiToMessages, true, true, Issued::Gemini(cx)) => {
                AnswerTranslator::GeminiFromMessages(Box::new(gemini::new_messages_stream(cx)))
            }
            (Translation::GeminiToChat, true, true, Issued::Gemini(cx)) => {
                AnswerTranslator::GeminiFromChat(Box::new(gemini::new_chat_stream(cx)))
            }
            (kind, true, false, issued) => {
                let (responses, gemini) = match issued {
                    Issued::Responses(cx) => {
                        (Some(Box::new(ResponsesJson { cx, stored: None })), None)
                    }
                    Issued::Gemini(cx) => (None, Some(Box::new(cx))),
                    Issued::Plain => (None, None),
                };
                AnswerTranslator::Json {
                    kind,
                    buf: Vec::new(),
                    usage: None,
                    responses,
                    gemini,
                }
            }
            (kind, ..) => AnswerTranslator::Error {
                kind,
                status,
                buf: Vec::new(),
            },
        })
    }
}

/// What a translated answer is issued as, for the client APIs that number or frame their
/// answers themselves.
#[derive(Debug)]
pub enum Issued {
    /// Nothing beyond the translation (chat, Messages).
    Plain,
    /// A Response with the gateway's id.
    Responses(AnswerContext),
    /// A Gemini answer in the client's framing.
    Gemini(gemini::AnswerContext),
}

/// A non-stream Responses answer: the context it is issued in and, once translated, the
/// response object and output items the conversation store keeps.
#[derive(Debug)]
pub struct ResponsesJson {
    cx: AnswerContext,
    stored: Option<StoredAnswer>,
}

/// What the conversation store keeps of a translated Responses answer.
#[derive(Debug, Clone)]
pub struct StoredAnswer {
    /// The `Response` object as the client received it.
    pub response: Vec<u8>,
    /// Its output items, a JSON array.
    pub output_items: Vec<u8>,
}

/// Translates one answer body as it arrives.
#[derive(Debug)]
pub enum AnswerTranslator {
    /// Anthropic events → OpenAI chunks, event by event.
    ChatStream(Box<chat_to_messages::Stream>),
    /// OpenAI chunks → Anthropic events, event by event.
    MessagesStream(Box<messages_to_chat::Stream>),
    /// Anthropic events → Responses events, event by event.
    ResponsesFromMessages(Box<responses::MessagesStream>),
    /// OpenAI chat chunks → Responses events, event by event.
    ResponsesFromChat(Box<responses::ChatStream>),
    /// Anthropic events → Gemini chunks, event by event.
    GeminiFromMessages(Box<gemini::MessagesStream>),
    /// OpenAI chat chunks → Gemini chunks, event by event.
    GeminiFromChat(Box<gemini::ChatStream>),
    /// A non-stream success, translated whole at its end (then `usage` is known).
    Json {
        kind: Translation,
        buf: Vec<u8>,
        usage: Option<TokenUsage>,
        /// Responses clients: the Response issued, and what is stored of it.
        responses: Option<Box<ResponsesJson>>,
        /// Gemini clients: the answer's context.
        gemini: Option<Box<gemini::AnswerContext>>,
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
            AnswerTranslator::ResponsesFromMessages(s) => translate_stream(s, body, end, out)?,
            AnswerTranslator::ResponsesFromChat(s) => translate_stream(s, body, end, out)?,
            AnswerTranslator::GeminiFromMessages(s) => translate_stream(s, body, end, out)?,
            AnswerTranslator::GeminiFromChat(s) => translate_stream(s, body, end, out)?,
            AnswerTranslator::Json {
                kind,
                buf,
                usage,
                responses,
                gemini: gemini_cx,
            } => {
                collect(buf, body)?;
                if end {
                    let kind = *kind;
                    let (translated, tokens) = match (kind, responses) {
                        (Translation::ChatToMessages, _) => chat_to_messages::response(buf)?,
                        (Translation::MessagesToChat, _) => messages_to_chat::response(buf)?,
                        (Translation::GeminiCountToMessages, _) => {
                            // Counting tokens is not using them: nothing is charged.
                            *out = gemini::count_tokens_from_messages(buf)?;
                            return Ok(());
                        }
                        (Translation::GeminiToMessages | Translation::GeminiToChat, _) => {
                            let Some(cx) = gemini_cx else {
                                return Err(UpstreamBroken::invalid("no answer context"));
                            };
                            if kind == Translation::GeminiToMessages {
                                gemini::from_messages(buf, cx)?
                            } else {
                                gemini::from_chat(buf, cx)?
                            }
                        }
                        (kind, Some(r)) => {
                            let t = if kind == Translation::ResponsesToMessages {
                                responses::from_messages(buf, &r.cx)?
                            } else {
                                responses::from_chat(buf, &r.cx)?
                            };
                            r.stored = Some(StoredAnswer {
                                response: t.body.clone(),
                                output_items: t.output_items,
                            });
                            (t.body, t.usage)
                        }
                        (_, None) => {
                            return Err(UpstreamBroken::invalid("no answer context"));
                        }
                    };
                    *out = translated;
                    *usage = Some(tokens);
                }
            }
            AnswerTranslator::Error { kind, status, buf } => {
                collect(buf, body)?;
                if end {
                    *out = match kind {
                        Translation::ChatToMessages | Translation::ResponsesToMessages => {
                            errors::anthropic_to_openai(*status, buf).1
                        }
                        Translation::ResponsesToChat => errors::openai_to_openai(*status, buf).1,
                        Translation::GeminiToChat => gemini::from_openai_error(*status, buf).1,
                        Translation::GeminiToMessages | Translation::GeminiCountToMessages => {
                            gemini::from_anthropic_error(*status, buf).1
                        }
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
            AnswerTranslator::ResponsesFromMessages(s) => s.usage(),
            AnswerTranslator::ResponsesFromChat(s) => s.usage(),
            AnswerTranslator::GeminiFromMessages(s) => s.usage(),
            AnswerTranslator::GeminiFromChat(s) => s.usage(),
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
            AnswerTranslator::ResponsesFromMessages(s) => s.started_content(),
            AnswerTranslator::ResponsesFromChat(s) => s.started_content(),
            AnswerTranslator::GeminiFromMessages(s) => s.started_content(),
            AnswerTranslator::GeminiFromChat(s) => s.started_content(),
            _ => true,
        }
    }

    /// The translated stream already carries the client's error event (an in-band upstream
    /// error was translated), so a cut needs no second one.
    pub fn sent_error_event(&self) -> bool {
        match self {
            AnswerTranslator::ChatStream(s) => s.saw_error(),
            AnswerTranslator::MessagesStream(s) => s.saw_error(),
            AnswerTranslator::ResponsesFromMessages(s) => s.saw_error(),
            AnswerTranslator::ResponsesFromChat(s) => s.saw_error(),
            AnswerTranslator::GeminiFromMessages(s) => s.saw_error(),
            AnswerTranslator::GeminiFromChat(s) => s.saw_error(),
            _ => false,
        }
    }

    /// The gateway's final error event for a stream it cuts, where the client's API needs
    /// the stream's own state for it: a Responses event numbered after the last one, a
    /// Gemini error chunk in the client's framing (closing its JSON array). `None` for the
    /// APIs whose cut event is always the same.
    pub fn cut_event(&self, message: &str) -> Option<Vec<u8>> {
        let code = "stream_error";
        match self {
            AnswerTranslator::ResponsesFromMessages(s) => Some(responses::stream_error_event(
                s.state().next_sequence_number(),
                code,
                message,
            )),
            AnswerTranslator::ResponsesFromChat(s) => Some(responses::stream_error_event(
                s.state().next_sequence_number(),
                code,
                message,
            )),
            AnswerTranslator::GeminiFromMessages(s) => Some(gemini::stream_error_chunk(
                s.state().sse(),
                s.state().array_open(),
                502,
                message,
            )),
            AnswerTranslator::GeminiFromChat(s) => Some(gemini::stream_error_chunk(
                s.state().sse(),
                s.state().array_open(),
                502,
                message,
            )),
            _ => None,
        }
    }

    /// What the conversation store keeps of a complete translated Responses answer: the
    /// Response object and its output items. `None` before the answer completed, and for
    /// other dialects.
    pub fn stored_answer(&self) -> Option<StoredAnswer> {
        let from_stream = |response: Option<Vec<u8>>, output_items: Vec<u8>| {
            response.map(|response| StoredAnswer {
                response,
                output_items,
            })
        };
        match self {
            AnswerTranslator::ResponsesFromMessages(s) => {
                from_stream(s.state().completed_response(), s.state().output_items())
            }
            AnswerTranslator::ResponsesFromChat(s) => {
                from_stream(s.state().completed_response(), s.state().output_items())
            }
            AnswerTranslator::Json {
                responses: Some(r), ..
            } => r.stored.clone(),
            _ => None,
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
