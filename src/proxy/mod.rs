//! The Pingora `ProxyHttp` implementation. Each hook is short and delegates:
//! `request` (auth, body, model) → `upstream` (select, rewrite) → `response` (pass the
//! answer, watch its body) → `failure` (describe, [`decision::action_for`], carry out the
//! action) → `finish` (metrics, access log). Per-request state is typed by phase in
//! [`ctx::RequestCtx`].

pub mod admitted;
pub mod affinity;
pub mod ctx;
pub mod decision;
pub mod failure;
pub mod finish;
pub mod gemini;
pub mod headers;
pub mod provider_limits;
pub mod request;
pub mod respond;
pub mod response;
pub mod responses;
pub mod responses_call;
pub mod translation;
pub mod upstream;
pub mod watchdog;

use crate::api::{self, LocalResponse, Route};
use crate::clock::now_ms;
use crate::conversations::ConversationStore;
use crate::error::ApiError;
use crate::shared::SharedLink;
use crate::snapshot::{Snapshot, SnapshotCell};
use crate::vocab::ClientApi;
use async_trait::async_trait;
use bytes::Bytes;
use ctx::{LocalAnswer, Operation, Proxied, RequestCtx, RequestPhase};
use pingora_core::protocols::Digest;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The gateway's proxy logic; cheap to clone, shares the snapshot cell.
#[derive(Clone)]
pub struct BerryProxy {
    snapshots: Arc<SnapshotCell>,
    /// `/metrics` is answered on the client listener (no separate metrics listener runs).
    client_metrics: bool,
    /// Limits and cooldowns shared with the other replicas (`[settings.shared_state]`).
    shared: Option<Arc<SharedLink>>,
    /// The Responses API's stored responses (outlives reloads).
    conversations: Arc<ConversationStore>,
    /// This replica's spend (outlives reloads).
    ledger: Arc<crate::spend::Ledger>,
}

impl BerryProxy {
    /// A proxy serving whatever snapshot `snapshots` holds at each request's start.
    /// `client_metrics` = false when `settings.metrics_listen` started a separate metrics
    /// listener: the client listener then answers `/metrics` like any unknown route (404
    /// in the client's error shape), so scrapes go only where the operator put them.
    pub fn new(snapshots: Arc<SnapshotCell>, client_metrics: bool) -> Self {
        BerryProxy {
            snapshots,
            client_metrics,
            shared: None,
            conversations: Arc::default(),
            ledger: Arc::default(),
        }
    }

    /// The same proxy enforcing user limits and backend cooldowns through `link` (shared
    /// with the other replicas on Redis).
    pub fn with_shared_state(mut self, link: Arc<SharedLink>) -> Self {
        self.shared = Some(link);
        self
    }

    /// The route of a client request on this listener.
    fn route(&self, req: &RequestHeader) -> Route {
        let path = req.uri.path();
        if !self.client_metrics && path == "/metrics" {
            return Route::NotFound;
        }
        api::route(&req.method, path)
    }
}

/// Answers a locally served route.
fn local_response(
    route: Route,
    session: &Session,
    snap: &Snapshot,
    api: ClientApi,
) -> LocalResponse {
    let now = now_ms();
    let req = session.req_header();
    let admin = |serve: fn(&Snapshot) -> LocalResponse| match api::check_admin(snap, req) {
        Ok(()) => serve(snap),
        Err(e) => (&e).into(),
    };
    match route {
        Route::Root => api::root(),
        Route::Health => api::health(snap, now),
        Route::Models | Route::ModelById => match request::authenticate(session, snap) {
            Ok(user) if route == Route::Models => api::models(&snap.table, &user),
            Ok(user) => {
                let id = api::model_id(req.uri.path()).unwrap_or_default();
                api::model_by_id(&snap.table, &user, id)
            }
            Err(e) => (&e).into(),
        },
        Route::GeminiModels | Route::GeminiModel => match request::authenticate(session, snap) {
            Ok(user) if route == Route::GeminiModels => api::gemini_models(&snap.table, &user),
            Ok(user) => {
                let id = api::gemini_model_id(req.uri.path()).unwrap_or_default();
                api::gemini_model_by_id(&snap.table, &user, id)
            }
            Err(e) => LocalResponse::error(&e, api),
        },
        Route::Metrics => api::metrics_endpoint(snap, req, now),
        Route::AdminBackends => admin(|s| api::admin_backends(s, now_ms())),
        Route::AdminConfig => admin(api::admin_config),
        Route::WrongMethod(allowed) => {
            LocalResponse::error(&ApiError::method_not_allowed(allowed), api)
        }
        Route::NotFound => LocalResponse::error(&ApiError::route_not_found(req.uri.path()), api),
        Route::ChatCompletions
        | Route::Completions
        | Route::Embeddings
        | Route::Messages
        | Route::CountTokens
        | Route::Responses
        | Route::ResponsesCompact
        | Route::ResponseById(_)
        | Route::Gemini(_)
        | Route::AdminSpend
        | Route::MeSpend => (&ApiError::internal()).into(),
    }
}

/// The proxied operation of a route; `None` for the routes the gateway answers itself.
fn operation(route: Route) -> Option<Operation> {
    Some(match route {
        Route::ChatCompletions => Operation::Chat,
        Route::Completions => Operation::TextCompletion,
        Route::Embeddings => Operation::Embeddings,
        Route::Messages => Operation::Messages,
        Route::CountTokens => Operation::CountTokens,
        Route::Responses => Operation::Responses,
        Route::ResponsesCompact => Operation::ResponsesCompact,
        Route::ResponseById(_) => Operation::ResponseById,
        Route::Gemini(method) => method.operation(),
        _ => return None,
    })
}

/// Answers a proxied request the gateway refuses (auth, body, model, quota).
async fn refuse(
    session: &mut Session,
    ctx: &mut RequestCtx,
    local: LocalAnswer,
    e: ApiError,
) -> Result<bool> {
    ctx.phase = RequestPhase::Local(local);
    if let Err(we) = respond::send(session, ctx, LocalResponse::error(&e, ctx.api)).await {
        respond::note_client_error(&we);
        log::debug!("request {}: refusal not delivered: {we}", ctx.request_id);
    }
    Ok(true)
}

/// Authenticates, reads and admits a proxied request; `Err` is the refusal to answer.
async fn admit_request(
    session: &mut Session,
    op: Operation,
    snap: &Arc<Snapshot>,
    proxy: &BerryProxy,
    local: &mut LocalAnswer,
    overhead: &mut Duration,
) -> std::result::Result<(ctx::ProxyRequest, crate::quota::Grant), NotAdmitted> {
    let (shared, conversations, ledger) = (
        proxy.shared.as_deref(),
        &*proxy.conversations,
        &proxy.ledger,
    );
    let t0 = Instant::now();
    let user = request::authenticate(session, snap);
    *overhead += t0.elapsed();
    let user = user.map_err(NotAdmitted::Answer)?;
    local.user = Some(Arc::clone(&user));
    let settings = &snap.table.settings;
    let limit = settings.max_request_body_bytes;
    let body = match request::read_body(session, limit, settings.request_timeout).await {
        Ok(b) => b,
        Err(request::BodyFailure::Refuse(e)) => return Err(NotAdmitted::Answer(e)),
        Err(request::BodyFailure::Io(e)) => return Err(NotAdmitted::Io(e)),
    };
    // The user's limits are overhead when enforced in this process, not the Redis round
    // trip of shared state.
    let t0 = Instant::now();
    let head = session.req_header();
    // A Gemini call names its model in the path (its route was matched by that path).
    let gemini_call = match op {
        Operation::GenerateContent | Operation::GeminiCountTokens => {
            api::gemini_call(head.uri.path())
        }
        _ => None,
    };
    let request = match gemini_call {
        Some((model, method)) => {
            let sse = gemini::wants_sse(head.uri.query());
            gemini::validate(method, model, sse, body, user, snap)
        }
        None => request::validate_request(op, body, user, snap),
    };
    if shared.is_some() || request.is_err() {
        *overhead += t0.elapsed();
    }
    let mut request = request.map_err(NotAdmitted::Answer)?;
    if matches!(op, Operation::Responses | Operation::ResponsesCompact) {
        let state = shared.and_then(|l| l.get()).map(|s| &**s);
        responses::prepare(&mut request, state, conversations)
            .await
            .map_err(NotAdmitted::Answer)?;
    }
    let key = affinity::attach_key(&mut request, &session.req_header().headers);
    let model = Arc::clone(&request.model);
    let state = shared.and_then(|l| l.get()).map(|s| &**s);
    let wall = crate::spend::now_unix_ms();
    // The admission and the session's remembered move go to Redis together (one round
    // trip on the multiplexed connection), not one after the other.
    let (grant, remembered) = tokio::join!(
        crate::quota::admit_user(&request.user, shared, ledger, now_ms(), wall),
        affinity::remembered(&model, key, state),
    );
    if shared.is_none() {
        *overhead += t0.elapsed();
    }
    let grant = grant.map_err(NotAdmitted::Answer)?;
    request.session.remembered = remembered;
    Ok((request, grant))
}

/// Admits a by-id request on a stored response: `Ok(Err(answer))` when the gateway
/// answers it itself (a response it translated), `Ok(Ok(..))` when it is proxied to the
/// account that holds it.
async fn admit_stored(
    session: &Session,
    action: api::StoredAction,
    snap: &Arc<Snapshot>,
    shared: Option<&SharedLink>,
    conversations: &ConversationStore,
    ledger: &Arc<crate::spend::Ledger>,
    local: &mut LocalAnswer,
) -> std::result::Result<
    std::result::Result<(ctx::ProxyRequest, crate::quota::Grant), LocalResponse>,
    NotAdmitted,
> {
    let user = request::authenticate(session, snap).map_err(NotAdmitted::Answer)?;
    local.user = Some(Arc::clone(&user));
    let path = session.req_header().uri.path();
    let Some((id, _)) = api::stored_response(path) else {
        return Err(NotAdmitted::Answer(ApiError::route_not_found(path)));
    };
    let state = shared.and_then(|l| l.get()).map(|s| &**s);
    let target = responses::resolve_stored(action, id, user, snap, state, conversations)
        .await
        .map_err(NotAdmitted::Answer)?;
    let request = match target {
        responses::StoredTarget::Local(answer) => return Ok(Err(answer)),
        responses::StoredTarget::Proxied(request) => *request,
    };
    let wall = crate::spend::now_unix_ms();
    let grant = crate::quota::admit_user(&request.user, shared, ledger, now_ms(), wall)
        .await
        .map_err(NotAdmitted::Answer)?;
    Ok(Ok((request, grant)))
}

/// Why a proxied request was not admitted.
enum NotAdmitted {
    /// Answer this error.
    Answer(ApiError),
    /// The client connection failed.
    Io(Box<Error>),
}

#[async_trait]
impl ProxyHttp for BerryProxy {
    type CTX = RequestCtx;

    /// Pingora creates the context right after the request head was read: the connection
    /// loop's header deadline is disarmed here.
    fn new_ctx(&self) -> RequestCtx {
        crate::request_scope::head_read();
        RequestCtx::new()
    }

    /// Local endpoints are answered here; proxied requests are authenticated, their body
    /// read and checked, and the request admitted (or refused) before any upstream work.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.request_id = request::request_id(session, &mut ctx.rng);
        let snapshot = self.snapshots.load();
        let req = session.req_header();
        let route = self.route(req);
        ctx.api = api::client_api(req.uri.path());
        if matches!(route, Route::AdminSpend | Route::MeSpend) {
            let state = self.shared.as_deref().and_then(|l| l.get()).map(|s| &**s);
            let req = session.req_header();
            let response = if route == Route::AdminSpend {
                api::spend::admin_spend(req, &snapshot, state, &self.ledger).await
            } else {
                api::spend::me_spend(req, &snapshot, state, &self.ledger).await
            };
            ctx.phase = RequestPhase::Local(LocalAnswer::new(snapshot, false, false));
            respond::send(session, ctx, response).await?;
            return Ok(true);
        }
        let Some(op) = operation(route) else {
            let response = local_response(route, session, &snapshot, ctx.api);
            let quiet = matches!(route, Route::Health | Route::Metrics);
            ctx.phase = RequestPhase::Local(LocalAnswer::new(snapshot, false, quiet));
            respond::send(session, ctx, response).await?;
            return Ok(true);
        };
        let mut local = LocalAnswer::new(Arc::clone(&snapshot), true, false);
        let shared = self.shared.as_deref();
        let admitted = match route {
            Route::ResponseById(action) => {
                let stored = admit_stored(
                    session,
                    action,
                    &snapshot,
                    shared,
                    &self.conversations,
                    &self.ledger,
                    &mut local,
                )
                .await;
                match stored {
                    Ok(Err(answer)) => {
                        ctx.phase = RequestPhase::Local(local);
                        respond::send(session, ctx, answer).await?;
                        return Ok(true);
                    }
                    Ok(Ok(admitted)) => Ok(admitted),
                    Err(e) => Err(e),
                }
            }
            _ => admit_request(session, op, &snapshot, self, &mut local, &mut ctx.overhead).await,
        };
        match admitted {
            Ok((request, grant)) => {
                let shared = shared.and_then(|l| l.get()).cloned();
                ctx.phase =
                    RequestPhase::Proxied(Box::new(Proxied::new(snapshot, request, grant, shared)));
                Ok(false)
            }
            Err(NotAdmitted::Answer(e)) => refuse(session, ctx, local, e).await,
            Err(NotAdmitted::Io(e)) => {
                ctx.phase = RequestPhase::Local(local);
                Err(e)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let t0 = Instant::now();
        let RequestPhase::Proxied(p) = &mut ctx.phase else {
            return Err(not_proxied());
        };
        let peer = upstream::select_peer(p, &mut ctx.rng);
        ctx.overhead += t0.elapsed();
        peer
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        #[cfg(unix)]
        if let Some(a) = ctx.proxied_mut().and_then(|p| p.attempt.as_mut()) {
            a.upstream_fd = Some(fd);
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let t0 = Instant::now();
        let RequestPhase::Proxied(p) = &mut ctx.phase else {
            return Err(not_proxied());
        };
        let r = upstream::rewrite_request(p, &ctx.request_id, upstream_request);
        ctx.overhead += t0.elapsed();
        r
    }

    /// Sends the attempt's rewritten body in place of the tail Pingora kept for retries
    /// (handed over, not copied: the next attempt rewrites the client's body again).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(a) = ctx.proxied_mut().and_then(|p| p.attempt.as_mut()) {
            // A request without a body (a stored response read or deleted) sends none.
            *body = (!a.body_sent && !a.body.is_empty()).then(|| std::mem::take(&mut a.body));
            a.body_sent = true;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let t0 = Instant::now();
        let RequestPhase::Proxied(p) = &mut ctx.phase else {
            return Err(not_proxied());
        };
        let client = response::ClientSide {
            h1: session.req_header().version == http::Version::HTTP_11,
            head_sent: respond::final_head_sent(session),
        };
        let (id, started) = (&ctx.request_id, ctx.started);
        let r = response::on_response_header(p, id, started, client, upstream_response);
        if r.is_ok() {
            response::hold_head_until_commit(session, p);
        }
        if r.is_ok() && upstream_response.status.as_u16() >= 200 {
            ctx.status = upstream_response.status.as_u16();
            if let Some(call) = p.request.responses.as_deref_mut() {
                call.capture.reset();
            }
            responses::note_dropped_tools(p, upstream_response)?;
        }
        ctx.overhead += t0.elapsed();
        r
    }

    fn upstream_response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        let Some(p) = ctx.proxied_mut() else {
            return Ok(None);
        };
        let native = p
            .attempt
            .as_ref()
            .is_some_and(|a| a.translation == translation::Translation::None);
        let Some(answer) = p.answer.as_mut() else {
            return Ok(None);
        };
        if let (Some(call), Some(chunk)) = (p.request.responses.as_deref_mut(), body.as_ref()) {
            if native && p.request.op == Operation::Responses {
                call.capture.feed(chunk, answer.sse);
            }
        }
        response::on_body_chunk(answer, body, end_of_stream)?;
        // Once the answer's head went out no attempt can follow (checked from the chunk after
        // the commit: a chunk that opens the gate may still fail before it is written, and
        // is then retried).
        if !p.body_released && answer.released() && respond::final_head_sent(session) {
            request::release_request_body(p, session);
        }
        if end_of_stream {
            responses::record_completed(p, &self.conversations);
        }
        Ok(None)
    }

    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        failure::on_proxy_error(session, ctx, e, client_reused)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        failure::on_connect_error(ctx, e)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        failure::on_final_error(session, ctx, e).await
    }

    async fn logging(&self, _session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        finish::finish_request(ctx, e.is_some());
    }

    /// Expected upstream failures are counted in metrics and the access log instead.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _error: &Error) -> bool {
        ctx.proxied().is_some()
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &RequestCtx,
        _error: &Error,
        _context: ProxyWarnLogContext,
    ) -> bool {
        true
    }
}

/// A proxy hook ran for a request that was not admitted (cannot happen: Pingora proxies
/// only after `request_filter` returned `Ok(false)`, which only an admission does).
fn not_proxied() -> Box<Error> {
    decision::ruled(
        "not_proxied",
        decision::FailureAction::Answer(ApiError::internal()),
    )
}
