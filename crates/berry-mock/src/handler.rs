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
//! 6. [`Mode::Status`] / [`Mode::RateLimited`] / [`Mode::KeyRejected`] answers (before
//!    the key check);
//! 7. a missing or wrong API key: 401 (Gemini: Google's 400 `API_KEY_INVALID`, or 403
//!    `PERMISSION_DENIED` without a key); an Anthropic request without
//!    `anthropic-version` when [`MockOptions::require_anthropic_version`] is set: 400;
//! 8. a Gemini request goes to [`crate::gemini`] (its own checks and answers); unknown
//!    endpoint: 404; an Azure deployments request without `api-version`: 404
//!    `Resource not found`; `GET …/models`: the model list (Anthropic's shape when
//!    asked with `anthropic-version`);
//! 9. a native Anthropic request ([`crate::anthropic`]) or a `count_tokens` request that
//!    the real API would refuse: 400; a Responses API request goes to
//!    [`crate::responses`] (its own checks); a body that is not a JSON object: 400;
//! 10. the answer in the endpoint's format ([`crate::build`]).
//!
//! Every answer is in the dialect of its route (errors included, see [`Mode`]) and
//! carries the provider headers the request asks for: account headers
//! ([`MockOptions::account_headers`], [`Mode::AccountHeaders`]) and rate-limit headers
//! ([`Mode::RateLimitHeaders`], `x-mock-limits`).
//!
//! [`MockOptions::require_anthropic_version`]: crate::MockOptions::require_anthropic_version
//! [`MockOptions::account_headers`]: crate::MockOptions::account_headers

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};

use crate::answer::ReqFields;
use crate::anthropic::validate::{validate, Kind};
use crate::body::MockBody;
use crate::build::success;
use crate::faults::{fixed_json, Fault};
use crate::request::{head_size, Head, RecordedRequest};
use crate::response::{push_account_headers, Reply};
use crate::route::{Api, Endpoint};
use crate::server::ConnCtl;
use crate::state::Shared;
use crate::{anthropic, azure, gemini, openai, responses};
use crate::{Mode, MAX_BODY_BYTES, MAX_HEAD_BYTES};

/// Google Gemini's answer to a refused API key (its OpenAI-compatible endpoint wraps the
/// same error in a list).
const GEMINI_KEY_INVALID: &str = r#"[{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}]"#;

/// The hyper service of a connection: answers `req` (never fails; faults that
/// cut the connection go through `conn`).
pub(crate) async fn handle(
    sh: Arc<Shared>,
    conn: Arc<ConnCtl>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let head = Head::read(&parts, sh.expected_api_key.as_deref());
    let mut account = Vec::new();
    if sh.account_headers {
        push_account_headers(&mut account);
    }
    let reject = Reply {
        name: sh.name_header.as_ref(),
        close: true,
        api: head.api,
        extra: &account,
    };
    if head_size(&parts) > MAX_HEAD_BYTES {
        return Ok(reject.error(413, "request head larger than 64 KiB", None));
    }
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Ok(reject.error(413, "request body larger than 64 MiB", None));
    }
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

/// The provider headers of an answer to `head` under `mode`.
fn provider_headers(sh: &Shared, head: &Head, mode: &Mode) -> Vec<(HeaderName, HeaderValue)> {
    let mut extra = Vec::new();
    if sh.account_headers || *mode == Mode::AccountHeaders {
        push_account_headers(&mut extra);
    }
    if let Mode::RateLimitHeaders(limits) = mode {
        limits.push_headers(head.api, &mut extra);
    }
    if let Some(limits) = &head.overrides.limits {
        limits.push_headers(head.api, &mut extra);
    }
    extra
}

/// Steps 3–10 of the module contract, for a request whose body has been read.
async fn answer(sh: &Shared, conn: &ConnCtl, head: &Head, body: &Bytes) -> Response<MockBody> {
    let o = &head.overrides;
    let mode = o.mode.clone().unwrap_or_else(|| sh.current_mode());
    let extra = provider_headers(sh, head, &mode);
    let reply = Reply {
        name: sh.name_header.as_ref(),
        close: head.close,
        api: head.api,
        extra: &extra,
    };
    if let Some(msg) = &o.invalid {
        return reply.error(400, msg, None);
    }
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
    let retry_after = o.retry_after.as_deref();
    match &mode {
        Mode::Status(429) => return reply.error(429, "Rate limit reached (mock)", retry_after),
        Mode::Status(529) => return reply.error(529, anthropic::OVERLOADED, retry_after),
        Mode::Status(s) => return reply.error(*s, "Mock upstream failure", retry_after),
        Mode::RateLimited { retry_after: ra } => {
            let ra = retry_after.or(ra.as_deref());
            return reply.error(429, "Rate limit reached (mock)", ra);
        }
        Mode::KeyRejected | Mode::GeminiKeyRejected if head.api == Api::Gemini => {
            return reply.json(400, fixed_json(gemini::KEY_INVALID, Fault::None));
        }
        Mode::KeyRejected => {
            let msg = match head.api {
                Api::OpenAi => openai::incorrect_key_message(head.key.as_deref()),
                Api::Anthropic => anthropic::INVALID_KEY.to_string(),
                Api::Azure | Api::Gemini => azure::ACCESS_DENIED.to_string(),
            };
            return reply.error(401, &msg, None);
        }
        Mode::GeminiKeyRejected => {
            return reply.json(400, fixed_json(GEMINI_KEY_INVALID, Fault::None));
        }
        _ => {}
    }
    if !head.auth_ok {
        let msg = match head.api {
            Api::Gemini if head.key.is_none() => {
                return reply.error(403, gemini::KEY_MISSING, None)
            }
            Api::Gemini => return reply.json(400, fixed_json(gemini::KEY_INVALID, Fault::None)),
            Api::OpenAi => "Incorrect API key provided (mock)",
            Api::Anthropic => anthropic::INVALID_KEY,
            Api::Azure => azure::ACCESS_DENIED,
        };
        return reply.error(401, msg, None);
    }
    let anthropic_request = matches!(head.endpoint, Endpoint::Messages | Endpoint::CountTokens);
    if anthropic_request && sh.require_anthropic_version && !head.anthropic_version {
        return reply.error(400, anthropic::VERSION_REQUIRED, None);
    }
    let fault = Fault::of(&mode);
    if head.api == Api::Gemini {
        return gemini::answer(sh, head, body, fault, &reply);
    }
    match head.endpoint {
        Endpoint::NotFound if head.api == Api::Azure => {
            return reply.error(404, azure::RESOURCE_NOT_FOUND, None)
        }
        Endpoint::NotFound => return reply.error(404, "Unknown endpoint (mock)", None),
        Endpoint::Models if head.api == Api::Anthropic => {
            return reply.json(200, fixed_json(sh.anthropic_models_body.clone(), fault))
        }
        Endpoint::Models => return reply.json(200, fixed_json(sh.models_body.clone(), fault)),
        _ => {}
    }
    if head.api == Api::Azure && head.api_version.as_deref().is_none_or(str::is_empty) {
        return reply.error(404, azure::RESOURCE_NOT_FOUND, None);
    }
    let check = match head.endpoint {
        Endpoint::CountTokens => Some(Kind::CountTokens),
        Endpoint::Messages if head.anthropic_version => Some(Kind::Messages),
        _ => None,
    };
    if let Some(Err(msg)) = check.map(|kind| validate(body, kind)) {
        return reply.error(400, &msg, None);
    }
    if head.endpoint.is_responses() {
        return responses::answer(sh, head, body, fault, &reply);
    }
    let Ok(fields) = ReqFields::parse(body) else {
        return reply.error(
            400,
            "We could not parse the JSON body of your request (mock)",
            None,
        );
    };
    success(sh, head, body, &fields, fault, &reply)
}
