//! The OpenAI Responses API: `POST …/responses` (a `response` object, or its event
//! stream, see [`events`]), the by-id routes `GET` / `DELETE …/responses/{id}`,
//! `GET …/responses/{id}/input_items` (`?order=asc|desc`, default `desc`),
//! `POST …/responses/{id}/cancel` (the stored response with `status` `cancelled`) and
//! `POST …/responses/compact` (one `compaction` item).
//!
//! Answers are kept in a bounded in-memory [`Store`] unless the request says
//! `"store": false` or the answer is faulted. A `previous_response_id` the store does
//! not hold gets a 400 `previous_response_not_found` (`param` `previous_response_id`);
//! an unknown id on a by-id route a 404. Text answers, usage and tool calls follow the
//! other dialects (see [`crate::answer`], [`crate::tools`]): `usage` has
//! `input_tokens` (cache reads included), `input_tokens_details.cached_tokens`,
//! `output_tokens`, `output_tokens_details.reasoning_tokens` (0) and `total_tokens`.
//! Faults apply as on every route (non-streamed bodies through
//! [`fixed_json`], streams through [`StreamPlan`]).

mod events;
mod object;
mod store;

pub(crate) use store::Store;

use bytes::Bytes;
use http::Response;
use serde_json::{json, Value};

use crate::answer::{unix_now, Answer};
use crate::body::MockBody;
use crate::faults::{fixed_json, Fault};
use crate::request::Head;
use crate::response::Reply;
use crate::route::Endpoint;
use crate::state::Shared;
use crate::stream::StreamPlan;
use crate::tools::{requested_call, tool_output_reply, ToolShape};
use events::ResponsesStream;
use object::{input_items, response, usage, Status};
use store::Stored;

/// The answer to a Responses API request (`head.endpoint` is one of its routes).
pub(crate) fn answer(
    sh: &Shared,
    head: &Head,
    body: &Bytes,
    fault: Fault,
    reply: &Reply<'_>,
) -> Response<MockBody> {
    let id = head.response_id.as_deref().unwrap_or("");
    match head.endpoint {
        Endpoint::Responses | Endpoint::ResponsesCompact => {}
        _ if !sh.responses.contains(id) => {
            let msg = format!("Response with id '{id}' not found.");
            return error(reply, 404, &msg, None, None);
        }
        _ => {}
    }
    let json = |v: &Value| reply.json(200, fixed_json(v.to_string(), fault));
    match head.endpoint {
        Endpoint::ResponseGet => match sh.responses.get(id) {
            Some(s) => json(&s.response),
            None => error(reply, 404, "Response not found.", None, None),
        },
        Endpoint::ResponseDelete => {
            sh.responses.remove(id);
            json(&json!({"id": id, "object": "response", "deleted": true}))
        }
        Endpoint::ResponseCancel => match sh.responses.set_status(id, "cancelled") {
            Some(r) => json(&r),
            None => error(reply, 404, "Response not found.", None, None),
        },
        Endpoint::ResponseInputItems => {
            let mut items = sh
                .responses
                .get(id)
                .map(|s| s.input_items)
                .unwrap_or_default();
            if head.query_param("order") != Some("asc") {
                items.reverse();
            }
            let edge = |i: Option<&Value>| i.and_then(|i| i.get("id")).cloned();
            json(&json!({"object": "list", "first_id": edge(items.first()),
                         "last_id": edge(items.last()), "has_more": false, "data": items}))
        }
        _ => create(sh, head, body, fault, reply),
    }
}

/// An OpenAI-shaped error with `param` and `code`.
fn error(
    reply: &Reply<'_>,
    status: u16,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response<MockBody> {
    let body = json!({"error": {"message": message, "type": "invalid_request_error",
                                "param": param, "code": code}});
    reply.json(status, fixed_json(body.to_string(), Fault::None))
}

/// `POST …/responses` and `POST …/responses/compact`.
fn create(
    sh: &Shared,
    head: &Head,
    body: &Bytes,
    fault: Fault,
    reply: &Reply<'_>,
) -> Response<MockBody> {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let msg = "We could not parse the JSON body of your request (mock)";
            return error(reply, 400, msg, None, None);
        }
    };
    if let Some(prev) = req.get("previous_response_id").and_then(Value::as_str) {
        if !sh.responses.contains(prev) {
            let msg = format!("Previous response with id '{prev}' not found.");
            let (param, code) = ("previous_response_id", "previous_response_not_found");
            return error(reply, 400, &msg, Some(param), Some(code));
        }
    }
    if !matches!(
        req.get("input"),
        None | Some(Value::String(_) | Value::Array(_))
    ) {
        let msg = "Invalid type for 'input': expected a string or an array of input items.";
        return error(reply, 400, msg, Some("input"), Some("invalid_type"));
    }
    let model = match req.get("model").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => sh.default_model.clone(),
    };
    let o = &head.overrides;
    let ans = Answer::new(
        sh.next_id(),
        &model,
        sh.fingerprint_json.clone(),
        body.len(),
        o.chunks.unwrap_or_else(|| sh.chunks()),
        false,
    )
    .with_cache(o.cache_read.unwrap_or(0), o.cache_write.unwrap_or(0));
    if head.endpoint == Endpoint::ResponsesCompact {
        return reply.json(200, fixed_json(compaction(&ans).to_string(), fault));
    }
    let after_call = o
        .tool_use
        .as_ref()
        .and_then(|_| tool_output_reply(ToolShape::Responses, &req));
    let tool = match after_call {
        Some(_) => Ok(None),
        None => requested_call(
            ToolShape::Responses,
            req.get("tools"),
            req.get("tool_choice"),
            o.tool_use.as_deref(),
            o.tool_input.as_ref(),
        ),
    };
    let ans = match tool {
        Ok(t) => ans.with_tool(t).with_text(after_call),
        Err(msg) => return error(reply, 400, &msg, Some("tools"), None),
    };
    let completed = response(&req, &model, &ans, Status::Completed);
    let keep = req.get("store").and_then(Value::as_bool) != Some(false)
        && matches!(fault, Fault::None | Fault::Heartbeats);
    if keep {
        let stored = Stored {
            response: completed.clone(),
            input_items: input_items(&req, ans.id),
        };
        sh.responses.insert(object::response_id(ans.id), stored);
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        let chunks = ans.completion_tokens;
        let interval = o.interval.unwrap_or_else(|| sh.interval());
        let in_progress = response(&req, &model, &ans, Status::InProgress);
        let stream = ResponsesStream::new(ans, in_progress, completed);
        return reply.event_stream(MockBody::script(StreamPlan::new(
            stream, chunks, interval, fault,
        )));
    }
    reply.json(200, fixed_json(completed.to_string(), fault))
}

/// The answer of `POST …/responses/compact`: one `compaction` item.
fn compaction(ans: &Answer) -> Value {
    json!({
        "id": object::response_id(ans.id),
        "object": "response.compaction",
        "created_at": unix_now(),
        "output": [{"id": format!("cmp_mock_{}", ans.id), "type": "compaction",
                    "encrypted_content": format!("mock-compaction-{}", ans.id)}],
        "usage": usage(ans),
    })
}
