//! The Messages event stream: `message_start`, `content_block_start`, `ping` (native
//! requests), one `content_block_delta` per content event (`text_delta`, or
//! `input_json_delta` pieces of a tool call's input), `content_block_stop`,
//! `message_delta` (stop reason, `output_tokens`), `message_stop`. The in-band error is
//! `event: error` with an `overloaded_error`; the early preamble is `message_start` and
//! `ping`.

use bytes::Bytes;

use super::message::{push_tool_id, push_usage, stop_reason};
use crate::answer::Answer;
use crate::json::{push_json_str, push_u64};
use crate::stream::{sse, Dialect};

/// The in-band error event of an Anthropic stream.
const ERROR_EVENT: &[u8] = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";

/// The event stream of one Messages answer.
pub(crate) struct MessagesStream {
    ans: Answer,
    /// Send `ping` after `content_block_start` (native requests).
    ping: bool,
}

impl MessagesStream {
    /// The stream of `ans`; `native`: the request carried `anthropic-version`.
    pub(crate) fn new(ans: Answer, native: bool) -> MessagesStream {
        MessagesStream { ans, ping: native }
    }

    fn message_start(&self) -> Bytes {
        sse(Some("message_start"), |e| {
            e.extend_from_slice(b"{\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
            e.extend_from_slice(&self.ans.model_json);
            e.extend_from_slice(
                b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":",
            );
            push_usage(e, &self.ans, 0);
            e.extend_from_slice(b"}}");
        })
    }
}

fn ping() -> Bytes {
    sse(Some("ping"), |e| {
        e.extend_from_slice(b"{\"type\":\"ping\"}")
    })
}

impl Dialect for MessagesStream {
    fn preamble(&self, out: &mut Vec<Bytes>) {
        out.push(self.message_start());
        out.push(sse(Some("content_block_start"), |e| {
            e.extend_from_slice(
                b"{\"type\":\"content_block_start\",\"index\":0,\"content_block\":",
            );
            match &self.ans.tool {
                None => e.extend_from_slice(b"{\"type\":\"text\",\"text\":\"\"}}"),
                Some(call) => {
                    e.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
                    push_tool_id(e, self.ans.id);
                    e.extend_from_slice(b",\"name\":");
                    push_json_str(e, &call.name);
                    e.extend_from_slice(b",\"input\":{}}}");
                }
            }
        }));
        if self.ping {
            out.push(ping());
        }
    }

    fn content(&self, i: u32) -> Bytes {
        sse(Some("content_block_delta"), |e| {
            e.extend_from_slice(b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":");
            match &self.ans.tool {
                None => {
                    e.extend_from_slice(b"{\"type\":\"text_delta\",\"text\":\"");
                    self.ans.push_text_piece(e, i);
                    e.extend_from_slice(b"\"}}");
                }
                Some(call) => {
                    e.extend_from_slice(b"{\"type\":\"input_json_delta\",\"partial_json\":");
                    push_json_str(e, call.piece(i, self.ans.completion_tokens));
                    e.extend_from_slice(b"}}");
                }
            }
        })
    }

    fn tail(&self, out: &mut Vec<Bytes>) {
        out.push(sse(Some("content_block_stop"), |e| {
            e.extend_from_slice(b"{\"type\":\"content_block_stop\",\"index\":0}");
        }));
        out.push(sse(Some("message_delta"), |e| {
            e.extend_from_slice(b"{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":");
            e.extend_from_slice(stop_reason(&self.ans));
            e.extend_from_slice(b",\"stop_sequence\":null},\"usage\":{\"output_tokens\":");
            push_u64(e, u64::from(self.ans.completion_tokens));
            e.extend_from_slice(b"}}");
        }));
    }

    fn terminal(&self) -> Bytes {
        sse(Some("message_stop"), |e| {
            e.extend_from_slice(b"{\"type\":\"message_stop\"}");
        })
    }

    fn error_event(&self) -> Bytes {
        Bytes::from_static(ERROR_EVENT)
    }

    fn early_preamble(&self, out: &mut Vec<Bytes>) {
        out.push(self.message_start());
        out.push(ping());
    }
}
