//! The non-streamed Messages answer: a `message` body.

use crate::answer::Answer;
use crate::json::{push_json_str, push_u64};

/// Appends the `usage` object of `ans`: `input_tokens`, `output_tokens`,
/// `cache_read_input_tokens`, `cache_creation_input_tokens`.
pub(super) fn push_usage(out: &mut Vec<u8>, ans: &Answer, output_tokens: u32) {
    out.extend_from_slice(b"{\"input_tokens\":");
    push_u64(out, ans.prompt_tokens);
    out.extend_from_slice(b",\"output_tokens\":");
    push_u64(out, u64::from(output_tokens));
    out.extend_from_slice(b",\"cache_read_input_tokens\":");
    push_u64(out, ans.cache_read);
    out.extend_from_slice(b",\"cache_creation_input_tokens\":");
    push_u64(out, ans.cache_write);
    out.push(b'}');
}

/// Appends the id of the `tool_use` block of answer `id`: `"toolu_mock_<id>"`.
pub(super) fn push_tool_id(out: &mut Vec<u8>, id: u64) {
    out.extend_from_slice(b"\"toolu_mock_");
    push_u64(out, id);
    out.push(b'"');
}

/// `"stop_reason"` of a finished answer: `"tool_use"` or `"end_turn"`.
pub(super) fn stop_reason(ans: &Answer) -> &'static [u8] {
    if ans.tool.is_some() {
        b"\"tool_use\""
    } else {
        b"\"end_turn\""
    }
}

/// `message` body: one `text` block (`tok0 tok1 … `), or one `tool_use` block.
pub(crate) fn messages_body(ans: &Answer) -> Vec<u8> {
    let mut out = Vec::with_capacity(384);
    out.extend_from_slice(
        b"{\"id\":\"msg_mock\",\"type\":\"message\",\"role\":\"assistant\",\"model\":",
    );
    out.extend_from_slice(&ans.model_json);
    match &ans.tool {
        None => {
            out.extend_from_slice(b",\"content\":[{\"type\":\"text\",\"text\":\"");
            ans.push_text(&mut out);
            out.extend_from_slice(b"\"}]");
        }
        Some(call) => {
            out.extend_from_slice(b",\"content\":[{\"type\":\"tool_use\",\"id\":");
            push_tool_id(&mut out, ans.id);
            out.extend_from_slice(b",\"name\":");
            push_json_str(&mut out, &call.name);
            out.extend_from_slice(b",\"input\":");
            out.extend_from_slice(call.input.as_bytes());
            out.extend_from_slice(b"}]");
        }
    }
    out.extend_from_slice(b",\"stop_reason\":");
    out.extend_from_slice(stop_reason(ans));
    out.extend_from_slice(b",\"stop_sequence\":null,\"usage\":");
    push_usage(&mut out, ans, ans.completion_tokens);
    out.push(b'}');
    out
}
