//! The `response` object and its output items, as OpenAI's Responses API shapes them.
//!
//! Ids follow the answer number `n`: the response `resp_mock_<n>`, its message item
//! `msg_mock_<n>`, a function call item `fc_mock_<n>` with `call_id` `call_mock_<n>`.
//! The request's settings are echoed (`instructions`, `max_output_tokens`,
//! `previous_response_id`, `tools`, `tool_choice`, `parallel_tool_calls`, `temperature`,
//! `top_p`, `text`, `reasoning`, `store`, `metadata`, `user`, `prompt_cache_key`,
//! `truncation`) with OpenAI's defaults when absent.

use serde_json::{json, Value};

use crate::answer::Answer;

/// A response's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Being generated (the `response.created` / `response.in_progress` events).
    InProgress,
    /// Done, with its output and usage.
    Completed,
}

/// The id of the response of answer `n`.
pub(crate) fn response_id(n: u64) -> String {
    format!("resp_mock_{n}")
}

/// The id of the output item of `ans` (`msg_mock_<n>` or `fc_mock_<n>`).
pub(crate) fn item_id(ans: &Answer) -> String {
    match ans.tool {
        None => format!("msg_mock_{}", ans.id),
        Some(_) => format!("fc_mock_{}", ans.id),
    }
}

/// The `call_id` of the function call of answer `n`.
pub(crate) fn call_id(n: u64) -> String {
    format!("call_mock_{n}")
}

/// The `output_text` content part carrying `text`.
pub(crate) fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
}

/// The output item of `ans`: finished (`Completed`) or as first announced (message
/// without content, call with empty `arguments`).
pub(crate) fn output_item(ans: &Answer, status: Status) -> Value {
    let done = status == Status::Completed;
    let state = if done { "completed" } else { "in_progress" };
    match &ans.tool {
        None => {
            let content = if done {
                vec![text_part(&ans.reply_text())]
            } else {
                Vec::new()
            };
            json!({"id": item_id(ans), "type": "message", "status": state,
                   "content": content, "role": "assistant"})
        }
        Some(call) => json!({
            "id": item_id(ans), "type": "function_call", "status": state,
            "arguments": if done { call.input.as_str() } else { "" },
            "call_id": call_id(ans.id), "name": call.name,
        }),
    }
}

/// The `usage` object of `ans`: `input_tokens` (cache reads included) with
/// `input_tokens_details.cached_tokens`, `output_tokens` with
/// `output_tokens_details.reasoning_tokens` (0), `total_tokens`.
pub(crate) fn usage(ans: &Answer) -> Value {
    json!({
        "input_tokens": ans.openai_prompt_tokens(),
        "input_tokens_details": {"cached_tokens": ans.cache_read},
        "output_tokens": ans.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": ans.total_tokens(),
    })
}

/// The `response` object answering request `req` with `ans` (model `model`).
pub(crate) fn response(req: &Value, model: &str, ans: &Answer, status: Status) -> Value {
    let echo = |k: &str, default: Value| req.get(k).cloned().unwrap_or(default);
    let (state, output, usage) = match status {
        Status::InProgress => ("in_progress", Vec::new(), Value::Null),
        Status::Completed => (
            "completed",
            vec![output_item(ans, Status::Completed)],
            usage(ans),
        ),
    };
    json!({
        "id": response_id(ans.id),
        "object": "response",
        "created_at": ans.created,
        "status": state,
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": echo("instructions", Value::Null),
        "max_output_tokens": echo("max_output_tokens", Value::Null),
        "max_tool_calls": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": echo("parallel_tool_calls", Value::Bool(true)),
        "previous_response_id": echo("previous_response_id", Value::Null),
        "prompt_cache_key": echo("prompt_cache_key", Value::Null),
        "reasoning": echo("reasoning", json!({"effort": null, "summary": null})),
        "service_tier": "default",
        "store": echo("store", Value::Bool(true)),
        "temperature": echo("temperature", json!(1.0)),
        "text": echo("text", json!({"format": {"type": "text"}, "verbosity": "medium"})),
        "tool_choice": echo("tool_choice", json!("auto")),
        "tools": echo("tools", json!([])),
        "top_logprobs": 0,
        "top_p": echo("top_p", json!(1.0)),
        "truncation": echo("truncation", json!("disabled")),
        "usage": usage,
        "user": echo("user", Value::Null),
        "metadata": echo("metadata", json!({})),
    })
}

/// The input items of request `req` of answer `n`, each with an `id` (`item_mock_<n>_<k>`
/// when it has none): a string `input` is one user message.
pub(crate) fn input_items(req: &Value, n: u64) -> Vec<Value> {
    let items = match req.get("input") {
        Some(Value::String(s)) => vec![json!({"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": s}]})],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(k, mut item)| {
            if let Some(obj) = item.as_object_mut() {
                if !obj.contains_key("id") {
                    obj.insert("id".into(), Value::from(format!("item_mock_{n}_{k}")));
                }
            }
            item
        })
        .collect()
}
