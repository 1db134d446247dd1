//! Typed wire schemas, declared once per API. Each API's request, response and stream-event
//! bodies are serde types whose unknown fields pass through untouched (flattened `rest`
//! maps of `&RawValue`), serialised by derive. Same-dialect traffic never goes through these
//! types (it keeps the zero-copy byte path); translation and the gateway's own error
//! answers do.

pub mod anthropic;
pub mod error;
pub mod openai_chat;
pub mod raw;
