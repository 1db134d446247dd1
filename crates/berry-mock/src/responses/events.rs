//! The Responses event stream: `event: <type>` + `data:` with `type` and a
//! `sequence_number` counting up from 0.
//!
//! Text: `response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, one `response.output_text.delta` per content event,
//! `response.output_text.done`, `response.content_part.done`, `response.output_item.done`
//! (the full item), `response.completed` (the full response with usage). A function
//! call: `response.output_item.added`, one `response.function_call_arguments.delta` per
//! piece of the arguments, `response.function_call_arguments.done`,
//! `response.output_item.done`. The in-band error is `event: error` with
//! `{"type":"error","code":"server_error","message":…,"param":null,"sequence_number":n}`;
//! the early preamble is `response.created` and `response.in_progress`.

use std::cell::Cell;

use bytes::Bytes;
use serde_json::{json, Value};

use super::object::{item_id, output_item, text_part, Status};
use crate::answer::Answer;
use crate::json::{push_json_str, push_u64};
use crate::stream::{sse, Dialect};

/// The message of the in-band error event.
const ERROR_MESSAGE: &str =
    "The server had an error while processing your request. Sorry about that!";

/// The event stream of one Responses answer. Events are numbered as they are built
/// (the stream plan builds each event once, in order).
pub(crate) struct ResponsesStream {
    ans: Answer,
    item_id: String,
    /// The response as `response.created` shows it.
    in_progress: Value,
    /// The response as `response.completed` shows it.
    completed: Value,
    seq: Cell<u64>,
}

impl ResponsesStream {
    /// The stream of `ans`; `in_progress` / `completed`: the response object before and
    /// after.
    pub(crate) fn new(ans: Answer, in_progress: Value, completed: Value) -> ResponsesStream {
        ResponsesStream {
            item_id: item_id(&ans),
            ans,
            in_progress,
            completed,
            seq: Cell::new(0),
        }
    }

    fn next_seq(&self) -> u64 {
        let n = self.seq.get();
        self.seq.set(n + 1);
        n
    }

    /// Event `kind` with the fields of `fields` (an object) after `type` and
    /// `sequence_number`.
    fn event(&self, kind: &str, fields: Value) -> Bytes {
        let mut data = json!({"type": kind, "sequence_number": self.next_seq()});
        if let (Some(d), Value::Object(f)) = (data.as_object_mut(), fields) {
            d.extend(f);
        }
        sse(Some(kind), |e| {
            let _ = serde_json::to_writer(&mut *e, &data);
        })
    }

    fn created(&self, out: &mut Vec<Bytes>) {
        for kind in ["response.created", "response.in_progress"] {
            out.push(self.event(kind, json!({"response": self.in_progress})));
        }
    }
}

impl Dialect for ResponsesStream {
    fn preamble(&self, out: &mut Vec<Bytes>) {
        self.created(out);
        out.push(self.event(
            "response.output_item.added",
            json!({"output_index": 0, "item": output_item(&self.ans, Status::InProgress)}),
        ));
        if self.ans.tool.is_none() {
            out.push(self.event(
                "response.content_part.added",
                json!({"item_id": self.item_id, "output_index": 0, "content_index": 0,
                       "part": text_part("")}),
            ));
        }
    }

    fn content(&self, i: u32) -> Bytes {
        // Built by hand: the hot path of long streams.
        let seq = self.next_seq();
        let kind = match self.ans.tool {
            None => "response.output_text.delta",
            Some(_) => "response.function_call_arguments.delta",
        };
        sse(Some(kind), |e| {
            e.extend_from_slice(b"{\"type\":\"");
            e.extend_from_slice(kind.as_bytes());
            e.extend_from_slice(b"\",\"sequence_number\":");
            push_u64(e, seq);
            e.extend_from_slice(b",\"item_id\":");
            push_json_str(e, &self.item_id);
            e.extend_from_slice(b",\"output_index\":0,");
            match &self.ans.tool {
                None => {
                    e.extend_from_slice(b"\"content_index\":0,\"delta\":\"");
                    self.ans.push_text_piece(e, i);
                    e.extend_from_slice(b"\",\"logprobs\":[]}");
                }
                Some(call) => {
                    e.extend_from_slice(b"\"delta\":");
                    push_json_str(e, call.piece(i, self.ans.completion_tokens));
                    e.push(b'}');
                }
            }
        })
    }

    fn tail(&self, out: &mut Vec<Bytes>) {
        match &self.ans.tool {
            None => {
                let text = self.ans.reply_text();
                out.push(self.event(
                    "response.output_text.done",
                    json!({"item_id": self.item_id, "output_index": 0, "content_index": 0,
                           "text": text, "logprobs": []}),
                ));
                out.push(self.event(
                    "response.content_part.done",
                    json!({"item_id": self.item_id, "output_index": 0, "content_index": 0,
                           "part": text_part(&text)}),
                ));
            }
            Some(call) => out.push(self.event(
                "response.function_call_arguments.done",
                json!({"item_id": self.item_id, "output_index": 0, "name": call.name,
                       "arguments": call.input}),
            )),
        }
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": 0, "item": output_item(&self.ans, Status::Completed)}),
        ));
    }

    fn terminal(&self) -> Bytes {
        self.event("response.completed", json!({"response": self.completed}))
    }

    fn error_event(&self) -> Bytes {
        self.event(
            "error",
            json!({"code": "server_error", "message": ERROR_MESSAGE, "param": null}),
        )
    }

    fn early_preamble(&self, out: &mut Vec<Bytes>) {
        self.created(out);
    }
}
