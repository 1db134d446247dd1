//! Typed wire schemas, declared once per API. Each API's request, response and stream-event
//! bodies are serde types that borrow from the input and are written by derived
//! `Serialize`; strings and values that need no change are carried as raw JSON
//! ([`raw::Raw`]) and written back byte for byte. A top-level request keeps its unknown
//! members in a `rest` map ([`raw::Rest`]) for the mapping to pass on what the target
//! understands (today's chat ↔ Messages mappings pass none: a member one API does not know
//! would be refused by the other); nested and response types read only the members a
//! mapping uses. Same-dialect traffic never goes through these types (it keeps the
//! zero-copy byte path); translation and the gateway's own error answers do.

pub mod anthropic;
pub mod error;
pub mod gemini;
pub mod openai_chat;
pub mod raw;
pub mod responses;
