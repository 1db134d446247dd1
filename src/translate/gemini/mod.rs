//! Native Gemini API clients (`generateContent`, `streamGenerateContent`, `countTokens`) on
//! translated backends: OpenAI chat completions and Anthropic Messages.
//!
//! * [`request`]: the client's `GenerateContentRequest` read into a neutral form (what is
//!   refused and dropped is listed there); [`schema`]: Google's OpenAPI schema subset as
//!   JSON Schema.
//! * [`chat`] / [`messages`]: the neutral form written as the backend's request (mapping
//!   tables there); [`messages`] also writes `count_tokens` bodies.
//! * [`answer`]: non-stream answers, finish reasons, `usageMetadata`, the two framings of a
//!   stream; [`chat_stream`] / [`messages_stream`]: the backends' event streams as
//!   `GenerateContentResponse` chunks.
//! * [`errors`]: errors in Google's shape.
//!
//! Function calls: the gateway issues the ids the backend sees (`call_<n>`, n = the
//! ordinal of the `functionCall` part in `contents`), and a `functionResponse` answers the
//! call its `id` names when that call is unanswered, else the earliest unanswered call of
//! its function name. Answers carry no `id` on `functionCall` parts (as Google's API).
//!
//! Streams (both framings): each chunk is a `GenerateContentResponse` with the new parts (a
//! text delta as a text part; a function call whole once its arguments are complete); the
//! last chunk has `finishReason` and `usageMetadata` and no parts. The commit point is the
//! first chunk with a part. An in-band upstream error becomes the final error chunk.

pub mod answer;
pub mod chat;
pub mod chat_stream;
pub mod context;
pub mod errors;
pub mod messages;
pub mod messages_stream;
pub mod request;
pub mod schema;

pub use answer::{from_chat, from_messages};
pub use chat::to_chat;
pub use chat_stream::{new_chat_stream, ChatStream};
pub use context::{AnswerContext, RequestContext, TranslatedRequest};
pub use errors::{
    error_body, from_anthropic_error, from_openai_error, status_name, stream_error_chunk,
};
pub use messages::{count_tokens_from_messages, count_tokens_to_messages, to_messages};
pub use messages_stream::{new_messages_stream, MessagesStream};

#[cfg(test)]
mod tests;
