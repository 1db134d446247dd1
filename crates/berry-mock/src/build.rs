//! The 200 answer to a request that passed every check: the endpoint's body, or its
//! event stream when the request asked for one (`"stream": true`; never for embeddings
//! and `count_tokens`), shaped by the [`Fault`] of the mode.
//!
//! The answer names the request's `model` (the mock's default model when it names
//! none; on Azure deployment routes, the deployment). Chat and Messages answers call a
//! tool when the request asks for one (see [`crate::tools`]); a request naming a tool it
//! does not list gets a 400; the turn after a requested call is answered with the tool's
//! output ([`tool_output_reply`]).

use std::time::Duration;

use http::Response;

use crate::answer::{Answer, ReqFields};
use crate::anthropic::{count_tokens_body, messages_body, MessagesStream};
use crate::body::MockBody;
use crate::faults::{fixed_json, Fault};
use crate::openai::{chat_body, embeddings_body, legacy_body, Flavor, OpenAiStream};
use crate::request::Head;
use crate::response::Reply;
use crate::route::Endpoint;
use crate::state::Shared;
use crate::stream::StreamPlan;
use crate::tools::{requested_call, tool_output_reply, ToolShape};

/// An example of the JSON schema of a chat request's `response_format` (type
/// `json_schema`), as text; `None` for other requests.
fn schema_example(body: &[u8]) -> Option<String> {
    if contains_bytes(body, b"json_schema") {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let format = v.get("response_format")?;
        if format.get("type")?.as_str()? != "json_schema" {
            return None;
        }
        let schema = format.get("json_schema")?.get("schema")?;
        return Some(crate::tools::example_json(schema).to_string());
    }
    None
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Cache tokens of a request: the `x-mock-cache-*` overrides when given, else the simulated
/// prompt cache's for a Messages request (when on). The simulated tokens come out of the
/// prompt tokens (their sum stays the body's).
fn cache_use(sh: &Shared, head: &Head, body: &[u8]) -> (u64, u64, bool) {
    let o = &head.overrides;
    if o.cache_read.is_some() || o.cache_write.is_some() || head.endpoint != Endpoint::Messages {
        return (o.cache_read.unwrap_or(0), o.cache_write.unwrap_or(0), false);
    }
    let found = sh
        .prompt_cache
        .as_ref()
        .and_then(|c| c.use_for(head.key.as_deref().unwrap_or(""), body));
    match found {
        Some(u) => (u.read, u.write, true),
        None => (0, 0, false),
    }
}

/// The answer to `head` with the request body `body` and its fields `fields`.
pub(crate) fn success(
    sh: &Shared,
    head: &Head,
    body: &[u8],
    fields: &ReqFields<'_>,
    fault: Fault,
    reply: &Reply<'_>,
) -> Response<MockBody> {
    let o = &head.overrides;
    let model: &str = match &head.deployment {
        Some(d) => d,
        None if fields.model.is_empty() => &sh.default_model,
        None => &fields.model,
    };
    let ans = Answer::new(
        sh.next_id(),
        model,
        sh.fingerprint_json.clone(),
        body.len(),
        o.chunks.unwrap_or_else(|| sh.chunks()),
        fields.include_usage(),
    );
    if head.endpoint == Endpoint::CountTokens {
        return reply.json(200, fixed_json(count_tokens_body(ans.prompt_tokens), fault));
    }
    let shape = ToolShape::of(head.api);
    let after_call = match (head.endpoint, &o.tool_use) {
        (Endpoint::Chat | Endpoint::Messages, Some(_)) => serde_json::from_slice(body)
            .ok()
            .and_then(|v| tool_output_reply(shape, &v)),
        _ => None,
    };
    let tool = match head.endpoint {
        _ if after_call.is_some() => Ok(None),
        Endpoint::Chat | Endpoint::Messages => requested_call(
            shape,
            fields.tools.as_ref(),
            fields.tool_choice.as_ref(),
            o.tool_use.as_deref(),
            o.tool_input.as_ref(),
        ),
        _ => Ok(None),
    };
    let tool = match tool {
        Ok(t) => t,
        Err(msg) => return reply.error(400, &msg, None),
    };
    // A chat request for a JSON answer (`response_format` json_schema) gets an example of
    // its schema as the text, as a model keeping to the schema would answer.
    let json_answer = match (head.endpoint, &after_call, &tool) {
        (Endpoint::Chat, None, None) => schema_example(body),
        _ => None,
    };
    let (read, write, simulated) = cache_use(sh, head, body);
    let mut ans = ans;
    if simulated {
        // read + write ≤ the prompt; at least one token stays outside the cache.
        let room = ans.prompt_tokens.saturating_sub(1);
        let read = read.min(room);
        let write = write.min(room - read);
        ans.prompt_tokens -= read + write;
        ans = ans.with_cache(read, write);
    } else {
        ans = ans.with_cache(read, write);
    }
    let ans = ans.with_tool(tool).with_text(after_call.or(json_answer));
    if fields.stream() && head.endpoint != Endpoint::Embeddings {
        let chunks = ans.completion_tokens;
        let interval: Duration = o.interval.unwrap_or_else(|| sh.interval());
        let plan = match head.endpoint {
            Endpoint::Messages => StreamPlan::new(
                MessagesStream::new(ans, head.anthropic_version),
                chunks,
                interval,
                fault,
            ),
            Endpoint::Completions => StreamPlan::new(
                OpenAiStream::new(Flavor::Legacy, ans),
                chunks,
                interval,
                fault,
            ),
            _ => StreamPlan::new(
                OpenAiStream::new(Flavor::Chat, ans),
                chunks,
                interval,
                fault,
            ),
        };
        return reply.event_stream(MockBody::script(plan));
    }
    let json = match head.endpoint {
        Endpoint::Chat => chat_body(&ans),
        Endpoint::Completions => legacy_body(&ans),
        Endpoint::Embeddings => embeddings_body(&ans),
        _ => messages_body(&ans),
    };
    reply.json(200, fixed_json(json, fault))
}
