//! Berry's own **mock provider**: plays every upstream dialect Berry Gateway talks to
//! (OpenAI, Anthropic Messages, Azure OpenAI, the native Gemini API).
//!
//! An HTTP/1.1 server (hyper 1 on tokio) that answers the endpoints Berry Gateway
//! proxies to, with switchable fault modes so integration tests, benchmarks and the
//! demo can script upstream behaviour, lying upstreams included.
//!
//! * Endpoints are matched on the path **suffix**, so `/v1/chat/completions`,
//!   `/openai/v1/chat/completions` (Azure's v1 form) and `/chat/completions` are all
//!   the same route: `POST …/chat/completions`, `POST …/completions`,
//!   `POST …/embeddings`, `POST …/messages` and `POST …/messages/count_tokens`
//!   (Anthropic, see the `anthropic` module), `GET …/models` (Anthropic's list shape when
//!   asked with `anthropic-version`), the OpenAI Responses API (`POST …/responses`,
//!   `POST …/responses/compact`, `GET` / `DELETE …/responses/{id}`,
//!   `GET …/responses/{id}/input_items`, `POST …/responses/{id}/cancel`; see the
//!   `responses` module), the native Gemini API (`POST …/models/{model}:generateContent`,
//!   `:streamGenerateContent`, `:countTokens`, `GET …/models[/{model}]` under `/v1beta/`
//!   or with a Google key; see the `gemini` module); anything else is a 404 with an
//!   OpenAI-shaped error body.
//! * Azure's deployments form `POST …/openai/deployments/{deployment}/{chat/completions|
//!   completions|embeddings}?api-version=…` is answered like OpenAI with `model` = the
//!   deployment (key in `api-key`, `api-version` required: 404 without).
//! * Errors are in the shape of the route's API; the API key is read from the API's
//!   header(s) ([`MockOptions::expected_api_key`]).
//! * Faults ([`Mode`]) apply to every endpoint and can be switched at runtime with
//!   [`MockProvider::set_mode`] or per request with `x-mock-*` headers
//!   (see [`Mode`]'s docs and [`MockProvider`]).
//! * Token accounting is deterministic: `prompt_tokens = body_len / 4 + 1`
//!   (`body_len` = decoded request body length), `completion_tokens` = number of
//!   content chunks; the reply text is `"tok0 tok1 … "` (one `tok<i> ` per chunk),
//!   identical for streamed and non-streamed answers.
//! * Anthropic prompt caching can be simulated per API key
//!   ([`MockOptions::prompt_cache`], off by default): cache reads and writes from the
//!   request's `cache_control` markers.
//! * Every streamed event is its own HTTP chunk.
//! * Requests hyper cannot parse get hyper's own bare answer (400, or 431 for more
//!   than 128 headers) and the connection is closed.
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! use berry_mock::{MockOptions, MockProvider, Mode};
//! let mock = MockProvider::start_background(MockOptions::default())?;
//! println!("upstream at {}", mock.base_url()); // http://127.0.0.1:PORT/v1
//! mock.set_mode(Mode::Status(503));
//! # Ok(()) }
//! ```
//!
//! Layout: [`Mode`] (`mode.rs`), options, the public handles (`provider.rs`), shared
//! state (`state.rs`), the network side (`server.rs`), the request flow
//! (`handler.rs`, `build.rs`), what is read from a request (`request.rs`,
//! `route.rs`), answer values and dialects (`answer.rs`, `tools.rs`, `openai.rs`,
//! `anthropic/`, `responses/`, `gemini/`, `azure.rs`), streams and faults (`stream.rs`, `faults.rs`),
//! provider headers (`limits.rs`, `response.rs`), bodies and responses (`body.rs`,
//! `response.rs`).

mod answer;
mod anthropic;
mod azure;
mod body;
mod build;
mod faults;
mod gemini;
mod handler;
mod json;
mod limits;
mod mode;
mod openai;
mod options;
mod prompt_cache;
mod provider;
mod request;
mod response;
mod responses;
mod route;
mod server;
mod state;
mod stream;
mod tools;

pub use limits::RateLimitHeaders;
pub use mode::{Mode, PreambleEnd};
pub use options::MockOptions;
pub use provider::{MockGuard, MockProvider};
pub use request::RecordedRequest;

/// Largest accepted request head (request line + headers); larger heads get a 413.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest accepted (decoded) request body; larger bodies get a 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Upper bound applied to any configured / requested number of stream chunks.
pub const MAX_CHUNKS: u32 = 100_000;
