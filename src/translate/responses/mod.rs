//! OpenAI Responses clients on translated backends. The request side reads the client's
//! request and the gateway's stored history into a neutral form ([`input`]); each backend
//! mapping writes it out (Anthropic Messages: [`messages`]; chat completions: the `chat`
//! modules). The answer side drives the shared [`emit::Writer`], which builds the output
//! items, the `Response` object and the event stream, from the backend's answer
//! ([`messages_answer`], [`messages_stream`]).
//!
//! Responses request → Messages request:
//!
//! | Responses | Anthropic Messages |
//! |---|---|
//! | `model` | the backend's model ([`RequestContext::model`]) |
//! | stored history ([`RequestContext::history`]), then `input` (a string = one user message) | `messages` |
//! | `instructions`, `system` / `developer` messages | `system`, joined with a blank line |
//! | `message` user parts `input_text`, `input_image` (data URL → base64, http(s) → url), `input_file` (PDF data URL → base64 `document`, URL → url `document`) | user blocks |
//! | `message` assistant parts `output_text`, `refusal` | assistant text blocks |
//! | `function_call` (`call_id`, `arguments`) / `custom_tool_call` (`input` → `{"input": …}`) | assistant `tool_use` (`id` = `call_id`) |
//! | `function_call_output` / `custom_tool_call_output` | `tool_result` in a user turn (first in it) |
//! | `reasoning` with the gateway's `encrypted_content` | `thinking` / `redacted_thinking` (only with thinking on); other reasoning items dropped |
//! | `function` tools | tools with `input_schema` = `parameters` |
//! | `custom` tools | tools with one string parameter `input`, the grammar in the description |
//! | hosted tools (`web_search*`, `file_search`, `namespace` with its tools, `mcp`, `computer_use*`, …) | dropped, named in [`TranslatedRequest::dropped_tools`] |
//! | `tool_choice` auto / none / required / `{type: function\|custom, name}` | auto / none / any / tool |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use` |
//! | `temperature` (≤ 1), `top_p` | same (dropped with thinking on) |
//! | `max_output_tokens` (default 4096) | `max_tokens` |
//! | `reasoning.effort` low / medium / high (xhigh) | `thinking` budget 1,024 / 4,096 / 16,384 (see [`messages::token_limits`]); none / minimal: off; a forced tool choice, or a last assistant turn that calls tools without the thinking block the gateway issued, turns it off |
//! | `text.format` `json_schema` / `json_object` | a tool [`messages::JSON_ANSWER_TOOL`] whose input is the answer, forced (answered as `output_text`) |
//! | `user`, else `safety_identifier` | `metadata.user_id` |
//! | `stream` | `stream` |
//!
//! Refused (400, `param` = the field): `background: true`, `conversation`, `prompt`,
//! `top_logprobs` > 0; in `input` (and the history): unknown item types, `item_reference`,
//! malformed items, an output whose `call_id` has no earlier call, uploaded files
//! (`file_id`), files that are not PDFs; a `tool_choice` naming a hosted tool or a tool not
//! in `tools`. Dropped: `store`, `include`, `metadata`, `truncation`, `service_tier`,
//! `stream_options`, `prompt_cache_key`, `prompt_cache_retention`, `max_tool_calls`,
//! `reasoning.summary`, `text.verbosity`, and anything unknown.
//!
//! Answers: see [`emit`] for the `Response` object and the events.

pub mod chat;
pub mod chat_answer;
pub mod chat_stream;
mod context;
mod contract;
pub mod emit;
pub mod input;
mod items;
pub mod messages;
pub mod messages_answer;
pub mod messages_stream;
mod output;

pub use chat::to_chat;
pub use chat_answer::from_chat;
pub use chat_stream::{new_chat_stream, ChatStream};
pub use context::AnswerContext;
pub use emit::{stream_error_event, Finish, ItemIx, ItemKind, Writer};
pub use messages::to_messages;
pub use messages_answer::from_messages;
pub use messages_stream::{new_messages_stream, MessagesStream};

pub use contract::{
    request_flags, RequestContext, RequestFlags, TranslatedAnswer, TranslatedRequest,
};

#[cfg(test)]
mod tests;
