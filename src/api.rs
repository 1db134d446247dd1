//! Endpoints the gateway answers itself: `/`, `/health`, `/v1/models`, `/metrics`,
//! `/admin/*`, and the spend endpoints ([`spend`]: `/admin/spend`, `/v1/me/spend`). Pure
//! functions from a snapshot to a response (the spend ones also read the spend ledger or
//! Redis); the proxy writes it.
//!
//! Nothing here prints a URL with credentials, a key or a token.

use crate::auth::{request_token, secret_matches, UserEntry};
use crate::error::ApiError;
use crate::routing::Table;
use crate::snapshot::Snapshot;
use crate::vocab::ClientApi;
use pingora_http::RequestHeader;
use serde_json::{json, Value};

pub mod spend;

/// A locally generated response.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra headers (e.g. `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

impl LocalResponse {
    /// A JSON response.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, v: &T) -> Self {
        LocalResponse {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_default(),
            headers: Vec::new(),
        }
    }
}

impl From<&ApiError> for LocalResponse {
    fn from(e: &ApiError) -> Self {
        LocalResponse::error(e, ClientApi::OpenAi)
    }
}

impl LocalResponse {
    /// The error response in the client's API shape (`Retry-After` when the error has one).
    pub fn error(e: &ApiError, api: ClientApi) -> Self {
        LocalResponse {
            status: e.status,
            content_type: "application/json",
            body: e.body_for(api),
            headers: e
                .retry_after
                .map(|s| vec![("retry-after", s.to_string())])
                .unwrap_or_default(),
        }
    }
}

/// Routes the gateway knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    ChatCompletions,
    Completions,
    Embeddings,
    /// Anthropic's `POST /v1/messages`.
    Messages,
    /// Anthropic's `POST /v1/messages/count_tokens`.
    CountTokens,
    /// OpenAI's `POST /v1/responses`.
    Responses,
    /// OpenAI's `POST /v1/responses/compact`.
    ResponsesCompact,
    /// A stored response: `GET`/`DELETE /v1/responses/{id}`, `GET …/input_items`,
    /// `POST …/cancel`.
    ResponseById(StoredAction),
    /// Gemini's `POST /v1beta/models/{model}:{method}` (also under `/v1/models/`).
    Gemini(crate::vocab::GeminiMethod),
    /// Gemini's `GET /v1beta/models`.
    GeminiModels,
    /// Gemini's `GET /v1beta/models/{model}`.
    GeminiModel,
    Models,
    /// `GET /v1/models/{id}`.
    ModelById,
    Health,
    Root,
    Metrics,
    AdminBackends,
    AdminConfig,
    /// `GET /admin/spend`.
    AdminSpend,
    /// `GET /v1/me/spend`.
    MeSpend,
    /// Known path, wrong method; the allowed method.
    WrongMethod(&'static str),
    NotFound,
}

/// What a request does with a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredAction {
    /// `GET /v1/responses/{id}`.
    Get,
    /// `DELETE /v1/responses/{id}`.
    Delete,
    /// `GET /v1/responses/{id}/input_items`.
    InputItems,
    /// `POST /v1/responses/{id}/cancel`.
    Cancel,
}

/// The API a client calling `path` speaks (the shape of its errors): Anthropic's under
/// `/v1/messages` (wrong methods and unknown sub-paths included), the Responses API under
/// `/v1/responses`, OpenAI's elsewhere.
pub fn client_api(path: &str) -> ClientApi {
    if path == "/v1/messages" || path.starts_with("/v1/messages/") {
        ClientApi::Anthropic
    } else if path.starts_with("/v1beta/") || gemini_call(path).is_some() {
        ClientApi::Gemini
    } else if path == "/v1/responses" || path.starts_with("/v1/responses/") {
        ClientApi::OpenAiResponses
    } else {
        ClientApi::OpenAi
    }
}

/// The model and method of a Gemini API call path: `/v1beta/models/{model}:{method}` or
/// `/v1/models/{model}:{method}` (the model without its `models/` prefix).
pub fn gemini_call(path: &str) -> Option<(&str, crate::vocab::GeminiMethod)> {
    let rest = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, method) = rest.rsplit_once(':')?;
    let method = crate::vocab::GeminiMethod::parse(method)?;
    (!model.is_empty() && !model.contains('/')).then_some((model, method))
}

/// The `{model}` of `GET /v1beta/models/{model}`.
pub fn gemini_model_id(path: &str) -> Option<&str> {
    path.strip_prefix("/v1beta/models/")
        .filter(|m| !m.is_empty() && !m.contains(['/', ':']))
}

/// The `{id}` of a stored-response path and what the path does with it (before the
/// method is checked), or `None` for other paths.
pub fn stored_response(path: &str) -> Option<(&str, StoredAction)> {
    let rest = path.strip_prefix("/v1/responses/")?;
    let (id, action) = match rest.split_once('/') {
        None => (rest, StoredAction::Get),
        Some((id, "input_items")) => (id, StoredAction::InputItems),
        Some((id, "cancel")) => (id, StoredAction::Cancel),
        Some(_) => return None,
    };
    (!id.is_empty() && id != "compact").then_some((id, action))
}

/// The route of a stored-response path under `method`.
fn stored_route(method: &http::Method, id_action: StoredAction) -> Route {
    use http::Method as M;
    match (id_action, method) {
        (StoredAction::Get, m) if *m == M::GET || *m == M::HEAD => {
            Route::ResponseById(StoredAction::Get)
        }
        (StoredAction::Get, m) if *m == M::DELETE => Route::ResponseById(StoredAction::Delete),
        (StoredAction::Get, _) => Route::WrongMethod("GET, DELETE"),
        (StoredAction::InputItems, m) if *m == M::GET || *m == M::HEAD => {
            Route::ResponseById(StoredAction::InputItems)
        }
        (StoredAction::InputItems, _) => Route::WrongMethod("GET"),
        (StoredAction::Cancel, m) if *m == M::POST => Route::ResponseById(StoredAction::Cancel),
        (StoredAction::Cancel, _) => Route::WrongMethod("POST"),
        (StoredAction::Delete, _) => Route::ResponseById(StoredAction::Delete),
    }
}

/// Classifies a request by method and path (query excluded).
pub fn route(method: &http::Method, path: &str) -> Route {
    use http::Method as M;
    let (want, r) = match path {
        "/v1/chat/completions" => (M::POST, Route::ChatCompletions),
        "/v1/completions" => (M::POST, Route::Completions),
        "/v1/embeddings" => (M::POST, Route::Embeddings),
        "/v1/messages" => (M::POST, Route::Messages),
        "/v1/messages/count_tokens" => (M::POST, Route::CountTokens),
        "/v1/responses" => (M::POST, Route::Responses),
        "/v1/responses/compact" => (M::POST, Route::ResponsesCompact),
        "/v1beta/models" => (M::GET, Route::GeminiModels),
        p if gemini_call(p).is_some() => match gemini_call(p) {
            Some((_, method)) => (M::POST, Route::Gemini(method)),
            None => return Route::NotFound,
        },
        p if gemini_model_id(p).is_some() => (M::GET, Route::GeminiModel),
        "/v1/models" | "/models" => (M::GET, Route::Models),
        "/health" | "/v1/health" => (M::GET, Route::Health),
        "/" => (M::GET, Route::Root),
        "/metrics" => (M::GET, Route::Metrics),
        "/admin/backends" => (M::GET, Route::AdminBackends),
        "/admin/config" => (M::GET, Route::AdminConfig),
        "/admin/spend" => (M::GET, Route::AdminSpend),
        "/v1/me/spend" => (M::GET, Route::MeSpend),
        p if model_id(p).is_some() => (M::GET, Route::ModelById),
        p => match stored_response(p) {
            Some((_, action)) => return stored_route(method, action),
            None => return Route::NotFound,
        },
    };
    if *method == want || (want == M::GET && *method == M::HEAD) {
        r
    } else {
        Route::WrongMethod(if want == M::POST { "POST" } else { "GET" })
    }
}

/// `GET /`: name and version.
pub fn root() -> LocalResponse {
    LocalResponse::json(
        200,
        &json!({"name": "berry-gateway", "version": env!("CARGO_PKG_VERSION")}),
    )
}

/// `GET /health`: 200 while at least one enabled model has an available backend, else 503.
/// Counts only.
pub fn health(snap: &Snapshot, now_ms: u64) -> LocalResponse {
    let t = &snap.table;
    let models_available = t
        .models
        .iter()
        .filter(|m| m.has_available_backend(now_ms))
        .count();
    let backends: usize = t.models.iter().map(|m| m.backends.len()).sum();
    let backends_available: usize = t
        .models
        .iter()
        .flat_map(|m| &m.backends)
        .filter(|b| b.is_available(now_ms))
        .count();
    let enabled_providers = t.providers.iter().filter(|p| p.enabled);
    let (providers, providers_healthy) = enabled_providers.fold((0, 0), |(n, h), p| {
        (n + 1, h + usize::from(p.health.is_healthy()))
    });
    let ok = models_available > 0;
    LocalResponse::json(
        if ok { 200 } else { 503 },
        &json!({
            "status": if ok { "ok" } else { "unavailable" },
            "models": {"total": t.models.len(), "available": models_available},
            "backends": {"total": backends, "available": backends_available},
            "providers": {"total": providers, "healthy": providers_healthy},
            "config_generation": snap.generation,
        }),
    )
}

/// `GET /v1/models`: the client-facing names this user may use, OpenAI list format.
pub fn models(table: &Table, user: &UserEntry) -> LocalResponse {
    let data: Vec<Value> = table
        .models
        .iter()
        .enumerate()
        .filter(|(i, _)| user.may_use(*i))
        .map(|(_, m)| json!({"id": m.name, "object": "model", "created": 0, "owned_by": "berry-gateway"}))
        .collect();
    LocalResponse::json(200, &json!({"object": "list", "data": data}))
}

/// The `{id}` of `/v1/models/{id}` or `/models/{id}`.
pub fn model_id(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/models/")
        .or_else(|| path.strip_prefix("/models/"))
        .filter(|id| !id.is_empty())
}

/// A model as Gemini's API lists it.
fn gemini_model(name: &str) -> Value {
    json!({
        "name": format!("models/{name}"),
        "displayName": name,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    })
}

/// `GET /v1beta/models`: the client-facing models this user may use, in Gemini's shape.
pub fn gemini_models(table: &Table, user: &UserEntry) -> LocalResponse {
    let models: Vec<Value> = table
        .models
        .iter()
        .enumerate()
        .filter(|(i, _)| user.may_use(*i))
        .map(|(_, m)| gemini_model(&m.name))
        .collect();
    LocalResponse::json(200, &json!({ "models": models }))
}

/// `GET /v1beta/models/{model}`: one model in Gemini's shape, or 404 (Google-shaped).
pub fn gemini_model_by_id(table: &Table, user: &UserEntry, id: &str) -> LocalResponse {
    let id = id.strip_prefix("models/").unwrap_or(id);
    match table.model_index(id).filter(|&i| user.may_use(i)) {
        Some(i) => LocalResponse::json(200, &gemini_model(&table.models[i].name)),
        None => LocalResponse::error(&ApiError::model_not_found(id), ClientApi::Gemini),
    }
}

/// `GET /v1/models/{id}`: the model object when it exists and this user may use it.
pub fn model_by_id(table: &Table, user: &UserEntry, id: &str) -> LocalResponse {
    match table.model_index(id).filter(|&i| user.may_use(i)) {
        Some(i) => LocalResponse::json(
            200,
            &json!({"id": table.models[i].name, "object": "model", "created": 0, "owned_by": "berry-gateway"}),
        ),
        None => (&ApiError::model_not_found(id)).into(),
    }
}

/// Checks the admin token of a request (`Authorization: Bearer` or `x-api-key`).
/// `Err` is the response to send: 404 when the admin API is off, 401 on a wrong token.
pub fn check_admin(snap: &Snapshot, req: &RequestHeader) -> Result<(), ApiError> {
    let Some(expected) = &snap.table.settings.admin_token else {
        return Err(ApiError::route_not_found("/admin"));
    };
    match request_token(req) {
        Some(t) if secret_matches(t, expected.expose()) => Ok(()),
        _ => Err(ApiError::admin_unauthorized()),
    }
}

/// `GET /metrics`: the Prometheus text, behind the admin token when `metrics_auth` is on.
/// Served by the `metrics_listen` listener when one is set, else by the client listener
/// (never by both: see [`crate::proxy::BerryProxy::new`]).
pub fn metrics_endpoint(snap: &Snapshot, req: &RequestHeader, now_ms: u64) -> LocalResponse {
    if snap.table.settings.metrics_auth {
        if let Err(e) = check_admin(snap, req) {
            return (&e).into();
        }
    }
    metrics(snap, now_ms)
}

/// Sets the per-backend gauges from the snapshot (called before every metrics scrape).
pub fn refresh_backend_gauges(snap: &Snapshot, now_ms: u64) {
    use crate::metrics::*;
    BACKEND_UP.reset();
    CIRCUIT_STATE.reset();
    BACKEND_CONFIDENCE.reset();
    BACKEND_LATENCY.reset();
    BACKEND_COOLDOWN.reset();
    let smart = &snap.table.settings.smart_ai;
    for m in &snap.table.models {
        for b in &m.backends {
            let labels = [b.provider.id.as_str(), &*b.id];
            let up = b.is_available(now_ms);
            BACKEND_UP.with_label_values(&labels).set(i64::from(up));
            CIRCUIT_STATE
                .with_label_values(&labels)
                .set(b.state.circuit(now_ms) as i64);
            BACKEND_CONFIDENCE
                .with_label_values(&labels)
                .set(b.state.confidence(now_ms, smart));
            if let Some(ms) = b.state.ewma_ms() {
                BACKEND_LATENCY.with_label_values(&labels).set(ms / 1000.0);
            }
            BACKEND_COOLDOWN
                .with_label_values(&labels)
                .set(b.state.cooldown_remaining_ms(now_ms) as f64 / 1000.0);
        }
    }
}

/// `GET /metrics` body (Prometheus text format).
pub fn metrics(snap: &Snapshot, now_ms: u64) -> LocalResponse {
    refresh_backend_gauges(snap, now_ms);
    let (body, _) = crate::metrics::render();
    LocalResponse {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        body,
        headers: Vec::new(),
    }
}

/// `GET /admin/backends`: runtime state of every backend.
pub fn admin_backends(snap: &Snapshot, now_ms: u64) -> LocalResponse {
    let smart = &snap.table.settings.smart_ai;
    let backends: Vec<Value> = snap
        .table
        .models
        .iter()
        .flat_map(|m| m.backends.iter().map(move |b| (m, b)))
        .map(|(m, b)| {
            let (successes, failures) = b.state.totals();
            json!({
                "id": &*b.id,
                "model": m.name,
                "model_key": m.key,
                "strategy": m.strategy.as_str(),
                "provider": b.provider.id,
                "real_model": b.real_model,
                "weight": b.weight,
                "priority": b.priority,
                "tags": b.tags,
                "provider_healthy": b.provider.health.is_healthy(),
                "available": b.is_available(now_ms),
                "circuit": b.state.circuit(now_ms).as_str(),
                "cooldown_remaining_seconds": b.state.cooldown_remaining_ms(now_ms) as f64 / 1000.0,
                "latency_ewma_ms": b.state.ewma_ms(),
                "inflight": b.state.inflight(),
                "confidence": b.state.confidence(now_ms, smart),
                "recent_outcomes": b.state.recent_outcomes().iter().map(|ok| if *ok { "ok" } else { "fail" }).collect::<Vec<_>>(),
                "successes": successes,
                "failures": failures,
            })
        })
        .collect();
    let providers: Vec<Value> = snap
        .table
        .providers
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "name": p.name,
                "enabled": p.enabled,
                "backend_type": p.backend_type.as_str(),
                "healthy": p.health.is_healthy(),
                "checks": p.health.checks(),
                "last_check_seconds_ago": (p.health.last_check_ms() > 0)
                    .then(|| now_ms.saturating_sub(p.health.last_check_ms()) as f64 / 1000.0),
                "consecutive_check_failures": p.health.consecutive_failures(),
                "last_check_error": p.health.last_error(),
            })
        })
        .collect();
    LocalResponse::json(
        200,
        &json!({"config_generation": snap.generation, "backends": backends, "providers": providers}),
    )
}

/// `GET /admin/config`: a summary of the active config without any secret.
pub fn admin_config(snap: &Snapshot) -> LocalResponse {
    let t = &snap.table;
    let s = &t.settings;
    let models: Vec<Value> = t
        .models
        .iter()
        .map(|m| {
            json!({
                "key": m.key, "name": m.name, "strategy": m.strategy.as_str(),
                "backends": m.backends.iter().map(|b| json!({
                    "provider": b.provider.id, "model": b.real_model,
                    "weight": b.weight, "priority": b.priority, "tags": b.tags,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let providers: Vec<Value> = t
        .providers
        .iter()
        .map(|p| {
            let scheme = if p.endpoint.tls { "https" } else { "http" };
            json!({
                "id": p.id, "name": p.name, "enabled": p.enabled,
                "backend_type": p.backend_type.as_str(),
                "endpoint": format!("{scheme}://{}{}", p.endpoint.host_header(), p.endpoint.path_prefix),
                "timeout_seconds": p.timeout.as_secs_f64(),
                "max_attempts_per_request": p.max_attempts,
                "extra_headers": p.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                "forward_headers": p.forward_headers.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let users: Vec<Value> = snap
        .users
        .users
        .iter()
        .map(|u| {
            let limits = u.limits().map(|(l, _)| {
                json!({
                    "requests_per_minute": l.per_minute,
                    "requests_per_hour": l.per_hour,
                    "requests_per_day": l.per_day,
                    "tokens_per_minute": l.tokens_per_minute,
                    "tokens_per_day": l.tokens_per_day,
                    "max_concurrent": l.max_concurrent,
                })
            });
            json!({
                "id": &*u.id,
                "name": u.name,
                "tags": u.tags,
                "rate_limit": limits,
                "team": u.team_id(),
                "budget_usd_per_day": u.budget.usd_per_day,
                "budget_usd_per_month": u.budget.usd_per_month,
            })
        })
        .collect();
    LocalResponse::json(
        200,
        &json!({
            "config_generation": snap.generation,
            "warnings": snap.warnings,
            "settings": {
                "listen": s.listen,
                "health_check_interval_seconds": s.health_check_interval.as_secs_f64(),
                "health_check_timeout_seconds": s.health_check_timeout.as_secs_f64(),
                "recovery_check_interval_seconds": s.recovery_check_interval.as_secs_f64(),
                "request_timeout_seconds": s.request_timeout.as_secs_f64(),
                "stream_idle_timeout_seconds": s.stream_idle_timeout.as_secs_f64(),
                "max_retries": s.max_retries,
                "circuit_breaker_failure_threshold": s.circuit_breaker_failure_threshold,
                "circuit_breaker_timeout_seconds": s.circuit_breaker_timeout.as_secs_f64(),
                "circuit_breaker_success_threshold": s.circuit_breaker_success_threshold,
                "max_request_body_bytes": s.max_request_body_bytes,
                "admin_api": s.admin_token.is_some(),
                "metrics_listen": s.metrics_listen,
                "metrics_auth": s.metrics_auth,
                "stream_include_usage": s.stream_include_usage,
                "client_header_timeout_seconds": s.client_header_timeout.as_secs_f64(),
                "client_idle_timeout_seconds": s.client_idle_timeout.as_secs_f64(),
                "client_write_timeout_seconds": s.client_write_timeout.as_secs_f64(),
                "connect_timeout_seconds": s.connect_timeout.as_secs_f64(),
                "retry_on_timeout": s.retry_on_timeout,
                // The Redis URL may carry a password: only whether one is set.
                "shared_state": s.shared_state.as_ref().map(|ss| json!({
                    "redis_url": "<redacted>",
                    "key_prefix": ss.key_prefix,
                    "timeout_ms": ss.timeout.as_millis() as u64,
                    "on_unavailable": ss.on_unavailable.as_str(),
                })),
            },
            "models": models,
            "providers": providers,
            "users": users,
            "teams": snap.users.teams.iter().map(|t| json!({
                "id": &*t.id,
                "name": t.name,
                "budget_usd_per_day": t.budget.usd_per_day,
                "budget_usd_per_month": t.budget.usd_per_month,
                "max_concurrent": t.max_concurrent,
            })).collect::<Vec<_>>(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn routes() {
        assert_eq!(
            route(&Method::POST, "/v1/chat/completions"),
            Route::ChatCompletions
        );
        assert_eq!(
            route(&Method::GET, "/v1/chat/completions"),
            Route::WrongMethod("POST")
        );
        assert_eq!(route(&Method::GET, "/models"), Route::Models);
        assert_eq!(route(&Method::GET, "/v1/models/gpt-4o"), Route::ModelById);
        assert_eq!(model_id("/v1/models/a/b"), Some("a/b"));
        assert_eq!(route(&Method::GET, "/v1/models/"), Route::NotFound);
        assert_eq!(route(&Method::HEAD, "/health"), Route::Health);
        assert_eq!(route(&Method::POST, "/health"), Route::WrongMethod("GET"));
        assert_eq!(route(&Method::GET, "/v2/x"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/v1/responses"), Route::Responses);
        assert_eq!(
            route(&Method::POST, "/v1/responses/compact"),
            Route::ResponsesCompact
        );
        assert_eq!(
            route(&Method::GET, "/v1/responses/resp_1"),
            Route::ResponseById(StoredAction::Get)
        );
        assert_eq!(
            route(&Method::DELETE, "/v1/responses/resp_1"),
            Route::ResponseById(StoredAction::Delete)
        );
        assert_eq!(
            route(&Method::GET, "/v1/responses/resp_1/input_items"),
            Route::ResponseById(StoredAction::InputItems)
        );
        assert_eq!(
            route(&Method::POST, "/v1/responses/resp_1/cancel"),
            Route::ResponseById(StoredAction::Cancel)
        );
        assert_eq!(
            route(&Method::GET, "/v1/responses/resp_1/cancel"),
            Route::WrongMethod("POST")
        );
        assert_eq!(
            route(&Method::POST, "/v1/responses/resp_1"),
            Route::WrongMethod("GET, DELETE")
        );
        assert_eq!(route(&Method::GET, "/v1/responses/a/b"), Route::NotFound);
        assert_eq!(client_api("/v1/responses/x"), ClientApi::OpenAiResponses);
        use crate::vocab::GeminiMethod as G;
        assert_eq!(
            route(
                &Method::POST,
                "/v1beta/models/gemini-pro:streamGenerateContent"
            ),
            Route::Gemini(G::StreamGenerate)
        );
        assert_eq!(
            route(&Method::POST, "/v1/models/m:generateContent"),
            Route::Gemini(G::Generate)
        );
        assert_eq!(
            route(&Method::POST, "/v1beta/models/m:countTokens"),
            Route::Gemini(G::CountTokens)
        );
        assert_eq!(
            route(&Method::GET, "/v1beta/models/m:generateContent"),
            Route::WrongMethod("POST")
        );
        assert_eq!(route(&Method::GET, "/v1beta/models"), Route::GeminiModels);
        assert_eq!(route(&Method::GET, "/v1beta/models/m"), Route::GeminiModel);
        assert_eq!(
            route(&Method::POST, "/v1beta/models/m:unknown"),
            Route::NotFound
        );
        // the OpenAI model routes stay
        assert_eq!(route(&Method::GET, "/v1/models/m"), Route::ModelById);
        assert_eq!(
            client_api("/v1/models/m:generateContent"),
            ClientApi::Gemini
        );
        assert_eq!(client_api("/v1/models/m"), ClientApi::OpenAi);
        assert_eq!(client_api("/v1beta/models"), ClientApi::Gemini);
    }
}
