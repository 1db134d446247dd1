//! Anthropic Messages-format bodies (`POST …/messages`), as the mock has always
//! answered them: a `message` body, or the `message_start` … `message_stop` event
//! stream with one text content block.

use bytes::Bytes;

use crate::answer::{push_chunk_text, push_reply_text, Answer};
use crate::json::push_u64;
use crate::stream::{sse, Dialect};

/// `message` body.
pub(crate) fn messages_body(ans: &Answer) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    out.extend_from_slice(
        b"{\"id\":\"msg_mock\",\"type\":\"message\",\"role\":\"assistant\",\"model\":",
    );
    out.extend_from_slice(&ans.model_json);
    out.extend_from_slice(b",\"content\":[{\"type\":\"text\",\"text\":\"");
    push_reply_text(&mut out, ans.completion_tokens);
    out.extend_from_slice(
        b"\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":",
    );
    push_u64(&mut out, ans.prompt_tokens);
    out.extend_from_slice(b",\"output_tokens\":");
    push_u64(&mut out, u64::from(ans.completion_tokens));
    out.extend_from_slice(b"}}");
    out
}

/// The Messages event stream: `message_start`, `content_block_start`, one
/// `content_block_delta` per chunk, `content_block_stop`, `message_delta` (with
/// `output_tokens`), `message_stop`.
pub(crate) struct MessagesStream {
    ans: Answer,
}

impl MessagesStream {
    /// The stream of `ans`.
    pub(crate) fn new(ans: Answer) -> MessagesStream {
        MessagesStream { ans }
    }
}

impl Dialect for MessagesStream {
    fn preamble(&self, out: &mut Vec<Bytes>) {
        out.push(sse(Some("message_start"), |e| {
            e.extend_from_slice(b"{\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
            e.extend_from_slice(&self.ans.model_json);
            e.extend_from_slice(b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":");
            push_u64(e, self.ans.prompt_tokens);
            e.extend_from_slice(b",\"output_tokens\":0}}}");
        }));
        out.push(sse(Some("content_block_start"), |e| {
            e.extend_from_slice(b"{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
        }));
    }

    fn content(&self, i: u32) -> Bytes {
        sse(Some("content_block_delta"), |e| {
            e.extend_from_slice(
                b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"",
            );
            push_chunk_text(e, i);
            e.extend_from_slice(b"\"}}");
        })
    }

    fn tail(&self, out: &mut Vec<Bytes>) {
        out.push(sse(Some("content_block_stop"), |e| {
            e.extend_from_slice(b"{\"type\":\"content_block_stop\",\"index\":0}");
        }));
        out.push(sse(Some("message_delta"), |e| {
            e.extend_from_slice(b"{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":");
            push_u64(e, u64::from(self.ans.completion_tokens));
            e.extend_from_slice(b"}}");
        }));
        out.push(sse(Some("message_stop"), |e| {
            e.extend_from_slice(b"{\"type\":\"message_stop\"}");
        }));
    }
}
