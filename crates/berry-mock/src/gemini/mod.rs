//! The native Gemini API (Google's `generativelanguage` REST API, as Gemini CLI and the
//! `google-genai` SDKs speak it): `POST …/models/{model}:generateContent` (a
//! `GenerateContentResponse`), `:streamGenerateContent` (`?alt=sse`: SSE `data:` chunks;
//! without: one JSON array streamed element by element, see [`stream`]), `:countTokens`
//! (`{"totalTokens":N,…}`), `GET …/models` and `GET …/models/{model}` (see [`body`]).
//! The key is read from `x-goog-api-key` or the `key` query parameter.
//!
//! Answers: `candidates[0].content` (`role` `model`) with one `text` part (`tok0 tok1 … `)
//! or one `functionCall {name, args}` part, `finishReason` `STOP`, `index` 0;
//! `usageMetadata` with `promptTokenCount` (cache reads included), `candidatesTokenCount`,
//! `totalTokenCount` and, with `x-mock-cache-read`, `cachedContentTokenCount`;
//! `modelVersion` = the model of the path; `responseId`. Tool calls follow
//! [`crate::tools`] (`tools[].functionDeclarations`, forced by
//! `toolConfig.functionCallingConfig.mode` `ANY`); a request whose last content holds a
//! `functionResponse` is the turn after the call. A request with
//! `generationConfig.responseMimeType` `application/json` is answered with JSON text: an
//! example of `responseJsonSchema` (else `responseSchema`), `{}` without a schema.
//!
//! Errors are Google-shaped ([`error_body`]). A body that is not a JSON object, or whose
//! `contents` is missing, empty or not an array (`countTokens`: unless it has a
//! `generateContentRequest`), gets a 400 `INVALID_ARGUMENT`; an unknown method a 404.
//! A wrong key gets Google's 400 `API_KEY_INVALID` ([`KEY_INVALID`]), a missing one a 403
//! `PERMISSION_DENIED`.

mod body;
mod stream;

pub(crate) use body::models_body;

use http::Response;
use serde_json::{json, Value};

use crate::answer::Answer;
use crate::body::MockBody;
use crate::faults::{fixed_json, Fault};
use crate::json::{push_json_str, push_u64};
use crate::request::Head;
use crate::response::Reply;
use crate::route::Endpoint;
use crate::state::Shared;
use crate::stream::StreamPlan;
use crate::tools::{example_json, requested_call, tool_output_reply, ToolShape};
use body::{count_tokens_body, model_object, response_body};
use stream::GeminiStream;

/// Google's answer to a refused API key on the native API.
pub(crate) const KEY_INVALID: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;
/// The message of Google's 403 for a request without a key.
pub(crate) const KEY_MISSING: &str = "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.";

/// A Gemini route: the endpoint, the model of the path (`models/` stripped) and whether
/// the path has the unambiguous `{model}:{method}` form.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct GeminiRoute {
    pub endpoint: Endpoint,
    pub model: Option<String>,
    pub explicit: bool,
}

/// The Gemini route of `method` and `path`, `None` when the path has no `models`
/// segment or more than one segment after it. After the first `models` segment:
/// nothing (`GET`: the list), `{model}:{method}` (`POST` `generateContent`,
/// `streamGenerateContent`, `countTokens`; anything else, or an empty model, is
/// [`Endpoint::NotFound`]), `{model}` (`GET`).
pub(crate) fn gemini_route(method: &str, path: &str) -> Option<GeminiRoute> {
    let segments: Vec<&str> = path.split('/').collect();
    let at = segments.iter().position(|s| *s == "models")?;
    let route = |endpoint, model: Option<&str>, explicit| {
        Some(GeminiRoute {
            endpoint,
            model: model.map(str::to_string),
            explicit,
        })
    };
    match &segments[at + 1..] {
        [] | [""] if method == "GET" => route(Endpoint::Models, None, false),
        [] | [""] => route(Endpoint::NotFound, None, false),
        [seg] => match seg.rsplit_once(':') {
            Some((model, verb)) => {
                let ep = match (method, verb) {
                    _ if model.is_empty() => Endpoint::NotFound,
                    ("POST", "generateContent") => Endpoint::GeminiGenerate,
                    ("POST", "streamGenerateContent") => Endpoint::GeminiStream,
                    ("POST", "countTokens") => Endpoint::GeminiCountTokens,
                    _ => Endpoint::NotFound,
                };
                route(ep, Some(model), true)
            }
            None if method == "GET" && !seg.is_empty() => {
                route(Endpoint::GeminiModel, Some(seg), false)
            }
            None => None,
        },
        _ => None,
    }
}

/// Google's canonical status name for an HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        400..=499 => "FAILED_PRECONDITION",
        _ => "UNKNOWN",
    }
}

/// Google-shaped error body: `{"error":{"code":status,"message":…,"status":…}}` (400
/// `INVALID_ARGUMENT`, 401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 404 `NOT_FOUND`,
/// 429 `RESOURCE_EXHAUSTED`, 500 `INTERNAL`, 503 `UNAVAILABLE`, 504
/// `DEADLINE_EXCEEDED`, other 4xx `FAILED_PRECONDITION`, other 5xx `UNKNOWN`).
pub(crate) fn error_body(status: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"error\":{\"code\":");
    push_u64(&mut out, u64::from(status));
    out.extend_from_slice(b",\"message\":");
    push_json_str(&mut out, message);
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(status_name(status).as_bytes());
    out.extend_from_slice(b"\"}}");
    out
}

/// The answer to a request on a Gemini route that passed the key check.
pub(crate) fn answer(
    sh: &Shared,
    head: &Head,
    body: &[u8],
    fault: Fault,
    reply: &Reply<'_>,
) -> Response<MockBody> {
    let model = head
        .path_model
        .as_deref()
        .map(|m| m.strip_prefix("models/").unwrap_or(m))
        .unwrap_or(&sh.default_model);
    match head.endpoint {
        Endpoint::Models => {
            return reply.json(200, fixed_json(sh.gemini_models_body.clone(), fault))
        }
        Endpoint::GeminiModel => {
            return reply.json(200, fixed_json(model_object(model).to_string(), fault))
        }
        Endpoint::NotFound => {
            let msg = format!("models/{model} is not found for API version v1beta, or is not supported for this method.");
            return reply.error(404, &msg, None);
        }
        _ => {}
    }
    let req: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return reply.error(400, "Invalid JSON payload received.", None),
    };
    let counting = head.endpoint == Endpoint::GeminiCountTokens;
    let has_contents = matches!(req.get("contents"), Some(Value::Array(c)) if !c.is_empty())
        || (counting && req.get("generateContentRequest").is_some());
    if !has_contents {
        let msg = "* GenerateContentRequest.contents: contents is not specified\n";
        return reply.error(400, msg, None);
    }
    let o = &head.overrides;
    let ans = Answer::new(
        sh.next_id(),
        model,
        sh.fingerprint_json.clone(),
        body.len(),
        o.chunks.unwrap_or_else(|| sh.chunks()),
        false,
    )
    .with_cache(o.cache_read.unwrap_or(0), 0);
    if counting {
        return reply.json(200, fixed_json(count_tokens_body(&ans), fault));
    }
    let after_call = o
        .tool_use
        .as_ref()
        .and_then(|_| tool_output_reply(ToolShape::Gemini, &req));
    let tool = match after_call {
        Some(_) => Ok(None),
        None => requested_call(
            ToolShape::Gemini,
            req.get("tools"),
            req.pointer("/toolConfig/functionCallingConfig"),
            o.tool_use.as_deref(),
            o.tool_input.as_ref(),
        ),
    };
    let tool = match tool {
        Ok(t) => t,
        Err(msg) => return reply.error(400, &msg, None),
    };
    let text = after_call.or_else(|| structured_text(&req).filter(|_| tool.is_none()));
    let ans = ans.with_tool(tool).with_text(text);
    if head.endpoint == Endpoint::GeminiStream {
        let sse = head.query_param("alt") == Some("sse");
        // Google sends a function call whole, in one chunk.
        let chunks = if ans.tool.is_some() {
            1
        } else {
            ans.completion_tokens
        };
        let interval = o.interval.unwrap_or_else(|| sh.interval());
        let plan = StreamPlan::new(GeminiStream::new(ans, model, sse), chunks, interval, fault);
        let body = MockBody::script(plan);
        return if sse {
            reply.event_stream(body)
        } else {
            reply.json_stream(body)
        };
    }
    reply.json(
        200,
        fixed_json(response_body(&ans, model).to_string(), fault),
    )
}

/// The JSON text a structured-output request (`responseMimeType` `application/json`)
/// is answered with: an example of its schema, `{}` without one.
fn structured_text(req: &Value) -> Option<String> {
    let cfg = req.get("generationConfig")?;
    let mime = cfg.get("responseMimeType").and_then(Value::as_str)?;
    if !mime.eq_ignore_ascii_case("application/json") {
        return None;
    }
    let schema = cfg
        .get("responseJsonSchema")
        .or_else(|| cfg.get("responseSchema"));
    Some(schema.map_or_else(|| json!({}), example_json).to_string())
}

#[cfg(test)]
mod tests;
