//! One request, start to answer. The order of the checks is part of the contract:
//!
//! 1. a head over [`MAX_HEAD_BYTES`] or a declared body over [`MAX_BODY_BYTES`]: 413,
//!    connection closed (not counted as a hit);
//! 2. the request is counted, its body read (a body over the limit: 413; a malformed
//!    chunked body: 400; both close the connection) and recorded;
//! 3. an unparsable `x-mock-*` override: 400;
//! 4. the mode (the `x-mock-mode` override, else the mock's): `hang` never answers,
//!    `reset` cuts the connection with an RST;
//! 5. the header delay (`x-mock-delay-ms`, else [`Mode::SlowHeaders`]);
//! 6. [`Mode::Status`] / [`Mode::RateLimited`] answers (before the key check);
//! 7. a missing or wrong API key: 401;
//! 8. unknown endpoint: 404; `GET …/models`: the model list;
//! 9. a body that is not a JSON object: 400;
//! 10. the answer in the endpoint's format, streamed when `"stream": true` (not for
//!     embeddings), shaped by the [`Fault`] of the mode.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};

use crate::answer::{Answer, ReqFields};
use crate::anthropic::{messages_body, MessagesStream};
use crate::body::MockBody;
use crate::faults::{fixed_json, Fault};
use crate::openai::{chat_body, embeddings_body, legacy_body, Flavor, OpenAiStream};
use crate::request::{head_size, Head, RecordedRequest};
use crate::response::Reply;
use crate::route::Endpoint;
use crate::server::ConnCtl;
use crate::state::Shared;
use crate::stream::StreamPlan;
use crate::{Mode, MAX_BODY_BYTES, MAX_HEAD_BYTES};

/// The hyper service of a connection: answers `req` (never fails; faults that
/// cut the connection go through `conn`).
pub(crate) async fn handle(
    sh: Arc<Shared>,
    conn: Arc<ConnCtl>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let reject = Reply {
        name: sh.name_header.as_ref(),
        close: true,
    };
    if head_size(&parts) > MAX_HEAD_BYTES {
        return Ok(reject.error(413, "request head larger than 64 KiB", None));
    }
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Ok(reject.error(413, "request body larger than 64 MiB", None));
    }
    let head = Head::read(&parts, sh.expected_api_key.as_deref());
    sh.count_request(parts.uri.path());
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return Ok(reject.error(413, "request body larger than 64 MiB", None));
        }
        Err(_) => return Ok(reject.error(400, "malformed request body", None)),
    };
    if sh.recording() {
        sh.record(RecordedRequest::new(&parts, &body));
    }
    Ok(answer(&sh, &conn, &head, &body).await)
}

/// Steps 3–10 of the module contract, for a request whose body has been read.
async fn answer(sh: &Shared, conn: &ConnCtl, head: &Head, body: &Bytes) -> Response<MockBody> {
    let reply = Reply {
        name: sh.name_header.as_ref(),
        close: head.close,
    };
    let o = &head.overrides;
    if let Some(msg) = &o.invalid {
        return reply.error(400, msg, None);
    }
    let mode = o.mode.clone().unwrap_or_else(|| sh.current_mode());
    match mode {
        Mode::Hang => return std::future::pending().await,
        Mode::ResetOnAccept => {
            conn.reset();
            return std::future::pending().await;
        }
        _ => {}
    }
    let delay = o.delay.or(match mode {
        Mode::SlowHeaders(d) => Some(d),
        _ => None,
    });
    if let Some(d) = delay.filter(|d| !d.is_zero()) {
        tokio::time::sleep(d).await;
    }
    match &mode {
        Mode::Status(429) => {
            return reply.error(429, "Rate limit reached (mock)", o.retry_after.as_deref())
        }
        Mode::Status(s) => {
            return reply.error(*s, "Mock upstream failure", o.retry_after.as_deref())
        }
        Mode::RateLimited { retry_after } => {
            let ra = o.retry_after.as_deref().or(retry_after.as_deref());
            return reply.error(429, "Rate limit reached (mock)", ra);
        }
        _ => {}
    }
    if !head.auth_ok {
        return reply.error(401, "Incorrect API key provided (mock)", None);
    }
    let fault = Fault::of(&mode);
    match head.endpoint {
        Endpoint::NotFound => return reply.error(404, "Unknown endpoint (mock)", None),
        Endpoint::Models => return reply.json(200, fixed_json(sh.models_body.clone(), fault)),
        _ => {}
    }
    let Ok(fields) = ReqFields::parse(body) else {
        return reply.error(
            400,
            "We could not parse the JSON body of your request (mock)",
            None,
        );
    };
    let model: &str = if fields.model.is_empty() {
        &sh.default_model
    } else {
        &fields.model
    };
    let ans = Answer::new(
        sh.next_id(),
        model,
        sh.fingerprint_json.clone(),
        body.len(),
        o.chunks.unwrap_or_else(|| sh.chunks()),
        fields.include_usage(),
    );
    if fields.stream() && head.endpoint != Endpoint::Embeddings {
        let chunks = ans.completion_tokens;
        let interval: Duration = o.interval.unwrap_or_else(|| sh.interval());
        let plan = match head.endpoint {
            Endpoint::Messages => {
                StreamPlan::new(MessagesStream::new(ans), chunks, interval, fault)
            }
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
