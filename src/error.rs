//! Errors the gateway answers itself, in one place: status, OpenAI error `type`/`code`,
//! message, and the JSON body.
//!
//! Messages never contain a token, key or request body; callers pass only fixed text,
//! model names, sizes and limits.

use std::borrow::Cow;
use std::fmt;

use crate::wire::error::{AnthropicError, OpenAiError};

/// An OpenAI-shaped error response the gateway generates locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// OpenAI `error.type`, e.g. `invalid_request_error`.
    pub error_type: &'static str,
    /// OpenAI `error.code`, e.g. `model_not_found`.
    pub code: &'static str,
    /// OpenAI `error.param`, e.g. `model`.
    pub param: Option<Cow<'static, str>>,
    pub message: Cow<'static, str>,
    /// Seconds for a `Retry-After` header (429 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(
        status: u16,
        error_type: &'static str,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError {
            status,
            error_type,
            code,
            param: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Sets `error.param`.
    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// 400: malformed JSON, missing/empty `model`, wrong content.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, "invalid_request_error", "invalid_request", message)
    }

    /// 401: the same answer for a missing, unknown or disabled token.
    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "authentication_error",
            "invalid_api_key",
            "Invalid or missing API key. Send `Authorization: Bearer <token>` or `x-api-key: <token>`.",
        )
    }

    /// 403: the user may not use this model.
    pub fn model_not_allowed(model: &str) -> Self {
        Self::new(
            403,
            "permission_error",
            "model_not_allowed",
            format!(
                "You are not allowed to use the model `{}`.",
                printable(model)
            ),
        )
        .with_param("model")
    }

    /// 404: unknown or disabled model.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            "model_not_found",
            format!("The model `{}` does not exist.", printable(model)),
        )
        .with_param("model")
    }

    /// 404: no such endpoint.
    pub fn route_not_found(path: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            "not_found",
            format!("Unknown endpoint `{}`.", printable(path)),
        )
    }

    /// 400: `previous_response_id` names a response this user cannot continue: never
    /// issued, expired, not stored, or another user's (the same answer for each).
    pub fn previous_response_not_found(id: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            "previous_response_not_found",
            format!("Previous response with id '{}' not found.", printable(id)),
        )
        .with_param("previous_response_id")
    }

    /// 409: the account that holds a stored response cannot serve this request now, and no
    /// other account can continue it.
    pub fn previous_response_unavailable(id: &str) -> Self {
        Self::new(
            409,
            "invalid_request_error",
            "previous_response_unavailable",
            format!(
                "The provider account that holds response '{}' is unavailable; retry later or start a new conversation.",
                printable(id)
            ),
        )
    }

    /// 404: no stored response with this id for this user.
    pub fn response_not_found(id: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            "not_found",
            format!("Response with id '{}' not found.", printable(id)),
        )
    }

    /// 400: `POST /v1/responses/compact` on a model without a backend that speaks the
    /// Responses API natively.
    pub fn compaction_unsupported(model: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            "compaction_unsupported",
            format!(
                "Compaction is not supported for the model `{}`: none of its backends serves the Responses API natively.",
                printable(model)
            ),
        )
        .with_param("model")
    }

    /// 400: cancelling a response that was not created in the background.
    pub fn not_cancellable(id: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            "invalid_request",
            format!(
                "Only background responses can be cancelled; '{}' was not.",
                printable(id)
            ),
        )
    }

    /// 405: known endpoint, wrong method.
    pub fn method_not_allowed(allowed: &'static str) -> Self {
        Self::new(
            405,
            "invalid_request_error",
            "method_not_allowed",
            format!("Method not allowed; use {allowed}."),
        )
    }

    /// 408: the client did not send its body within the request timeout.
    pub fn body_timeout() -> Self {
        Self::new(
            408,
            "invalid_request_error",
            "request_timeout",
            "The request body was not received in time.",
        )
    }

    /// 413: body over `max_request_body_bytes`.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("The request body exceeds the limit of {limit} bytes."),
        )
    }

    /// 415: the body is not JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            415,
            "invalid_request_error",
            "unsupported_media_type",
            "The request body must be JSON (Content-Type: application/json).",
        )
    }

    /// 429: the user's own quota is used up.
    pub fn user_rate_limited(window: &str, retry_after: u64) -> Self {
        let mut e = Self::new(
            429,
            "rate_limit_error",
            "user_rate_limited",
            format!(
                "Rate limit exceeded: too many requests per {window}. Retry after {retry_after} s."
            ),
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// 429: a user's token budget (prompt + output tokens per sliding minute or day) is spent.
    pub fn user_token_budget_exceeded(window: &str, retry_after: u64) -> Self {
        let mut e = Self::new(
            429,
            "rate_limit_error",
            "user_token_budget_exceeded",
            format!("Token budget exceeded for this {window}. Retry after {retry_after} s."),
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// 429: the user already has `max_concurrent` requests in flight.
    pub fn user_concurrency_exceeded(retry_after: u64) -> Self {
        let mut e = Self::new(
            429,
            "rate_limit_error",
            "user_concurrency_exceeded",
            "Too many concurrent requests for this user. Retry when one has finished.",
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// 429: a spend budget is used up. `scope` is `user` or `team` (`error.param`), `id`
    /// the team's id (a user's own budget is named without its id), `window` `day` or
    /// `month`; `retry_after` is when that window ends. The message starts with
    /// `budget_exceeded` in every dialect and never carries an amount.
    pub fn budget_exceeded(scope: &'static str, id: &str, window: &str, retry_after: u64) -> Self {
        let whose = if scope == "team" {
            format!("team `{}`", printable(id))
        } else {
            "user".to_string()
        };
        let mut e = Self::new(
            429,
            "rate_limit_error",
            "budget_exceeded",
            format!(
                "budget_exceeded: the {whose} budget per {window} is used up. Retry after {retry_after} s, when the {window} ends (UTC)."
            ),
        )
        .with_param(scope);
        e.retry_after = Some(retry_after);
        e
    }

    /// 429: the user's team already has `max_concurrent` requests in flight.
    pub fn team_concurrency_exceeded(retry_after: u64) -> Self {
        let mut e = Self::new(
            429,
            "rate_limit_error",
            "team_concurrency_exceeded",
            "Too many concurrent requests for this team. Retry when one has finished.",
        )
        .with_param("team");
        e.retry_after = Some(retry_after);
        e
    }

    /// 400: query parameter `name` is missing or invalid.
    pub fn bad_parameter(name: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::bad_request(message).with_param(name)
    }

    /// 403: an admin route called with a user's token.
    pub fn admin_forbidden() -> Self {
        Self::new(
            403,
            "permission_error",
            "admin_token_required",
            "This endpoint needs the admin token; a user token cannot read it.",
        )
    }

    /// 503: the shared limits (Redis) could not be checked and `on_unavailable = "deny"`.
    pub fn shared_state_unavailable() -> Self {
        let mut e = Self::new(
            503,
            "upstream_error",
            "shared_state_unavailable",
            "The gateway cannot check this user's limits right now. Retry shortly.",
        );
        e.retry_after = Some(1);
        e
    }

    /// 503: no backend could be tried.
    pub fn no_backend(model: &str) -> Self {
        Self::new(
            503,
            "upstream_error",
            "no_available_backend",
            format!(
                "No backend is available for the model `{}`.",
                printable(model)
            ),
        )
    }

    /// 502: every attempt failed without a usable response.
    pub fn upstream_failed(attempts: u32) -> Self {
        Self::new(
            502,
            "upstream_error",
            "upstream_error",
            format!(
                "The upstream provider failed ({attempts} attempt(s)); no response was received."
            ),
        )
    }

    /// 503: every attempt failed before the commit point and the last provider said it was
    /// overloaded (an `overloaded_error` event in its stream).
    pub fn upstream_overloaded(attempts: u32) -> Self {
        Self::new(
            503,
            "upstream_error",
            "upstream_overloaded",
            format!("The upstream provider is overloaded ({attempts} attempt(s)); retry later."),
        )
    }

    /// 502: the provider refused the gateway's own credentials (401/403) on every attempt.
    /// The provider's body (which may quote part of the key) is never passed on.
    pub fn upstream_auth_failed(attempts: u32) -> Self {
        Self::new(
            502,
            "upstream_error",
            "upstream_auth_failed",
            format!(
                "The upstream provider refused the gateway's credentials ({attempts} attempt(s)); \
                 ask the gateway operator to check the provider key."
            ),
        )
    }

    /// 502: the provider's response was not valid (e.g. a broken event stream).
    pub fn upstream_invalid(attempts: u32) -> Self {
        Self::new(
            502,
            "upstream_error",
            "upstream_invalid_response",
            format!("The upstream provider sent an invalid response ({attempts} attempt(s))."),
        )
    }

    /// 504: the last attempt timed out.
    pub fn upstream_timeout(attempts: u32) -> Self {
        Self::new(
            504,
            "upstream_error",
            "upstream_timeout",
            format!("The upstream provider did not answer in time ({attempts} attempt(s))."),
        )
    }

    /// 401 for the admin API and protected metrics.
    pub fn admin_unauthorized() -> Self {
        Self::new(
            401,
            "authentication_error",
            "invalid_admin_token",
            "Invalid or missing admin token.",
        )
    }

    /// 500: a bug or an internal failure; the message stays generic.
    pub fn internal() -> Self {
        Self::new(
            500,
            "server_error",
            "internal_error",
            "The gateway failed to process the request.",
        )
    }

    /// The body in the client's API: OpenAI's shape, or Anthropic's
    /// `{"type":"error","error":{"type":..,"message":..}}` on the Anthropic routes (its type
    /// from the status, [`anthropic_error_type`]).
    pub fn body_for(&self, api: ClientApi) -> Vec<u8> {
        match api {
            ClientApi::OpenAi | ClientApi::OpenAiResponses => self.body(),
            ClientApi::Gemini => crate::wire::gemini::google_error_body(self.status, &self.message),
            ClientApi::Anthropic => AnthropicError {
                kind: anthropic_error_type(self.status),
                message: &self.message,
            }
            .body(),
        }
    }

    /// The JSON body: `{"error":{"message":..,"type":..,"param":..,"code":..}}`.
    pub fn body(&self) -> Vec<u8> {
        OpenAiError {
            message: &self.message,
            kind: self.error_type,
            param: self.param.as_deref(),
            code: Some(self.code),
        }
        .body()
    }
}

pub use crate::vocab::ClientApi;

/// Anthropic's error `type` for an HTTP status.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 408 | 411 | 415 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Caps and sanitises client-supplied text echoed in an error message.
fn printable(s: &str) -> Cow<'_, str> {
    const MAX: usize = 128;
    if s.len() <= MAX && s.chars().all(|c| !c.is_control()) {
        return Cow::Borrowed(s);
    }
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(MAX).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_openai_shaped() {
        let e = ApiError::model_not_found("gpt-\"x\"");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-\"x\""));
        assert_eq!(e.status, 404);
    }

    #[test]
    fn bodies_in_each_dialect() {
        let e = ApiError::too_large(10);
        assert_eq!(
            e.body_for(ClientApi::OpenAi),
            br#"{"error":{"message":"The request body exceeds the limit of 10 bytes.","type":"invalid_request_error","param":null,"code":"request_too_large"}}"#
        );
        assert_eq!(
            e.body_for(ClientApi::Anthropic),
            br#"{"type":"error","error":{"type":"request_too_large","message":"The request body exceeds the limit of 10 bytes."}}"#
        );
    }

    #[test]
    fn budget_refusals_in_each_dialect() {
        let e = ApiError::budget_exceeded("team", "red", "month", 3600);
        let v: serde_json::Value = serde_json::from_slice(&e.body_for(ClientApi::OpenAi)).unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["code"], "budget_exceeded");
        assert_eq!(v["error"]["param"], "team");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("budget_exceeded: the team `red` budget per month"),
            "{msg}"
        );
        let v: serde_json::Value =
            serde_json::from_slice(&e.body_for(ClientApi::Anthropic)).unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("budget_exceeded"));
        let v: serde_json::Value = serde_json::from_slice(&e.body_for(ClientApi::Gemini)).unwrap();
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(v["error"]["code"], 429);
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("budget_exceeded"));
        assert_eq!(e.retry_after, Some(3600));
        let u = ApiError::budget_exceeded("user", "alice", "day", 5);
        assert!(u
            .message
            .starts_with("budget_exceeded: the user budget per day"));
        assert!(!u.message.contains("alice"));
    }

    #[test]
    fn long_or_control_text_is_capped() {
        let long = "a".repeat(1000);
        let e = ApiError::model_not_found(&long);
        assert!(e.message.len() < 200);
        let e = ApiError::model_not_found("x\ny");
        assert!(!e.message.contains('\n'));
    }
}
