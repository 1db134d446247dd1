//! The Pingora `ProxyHttp` implementation. Each hook is short and delegates:
//! `request` (auth, body, model) → `upstream` (select, rewrite) → `response` (retry or
//! pass, watch the body) → `failure` (classify, retry, final answer) → `finish` (metrics,
//! access log). Per-request state lives in [`ctx::RequestCtx`].

pub mod ctx;
pub mod failure;
pub mod finish;
pub mod outcome;
pub mod request;
pub mod respond;
pub mod response;
pub mod upstream;
pub mod watchdog;

use crate::api::{self, LocalResponse, Route};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::snapshot::{Snapshot, SnapshotCell};
use async_trait::async_trait;
use bytes::Bytes;
use ctx::{InflightGuard, Operation, RequestCtx};
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
}

impl BerryProxy {
    /// A proxy serving whatever snapshot `snapshots` holds at each request's start.
    pub fn new(snapshots: Arc<SnapshotCell>) -> Self {
        BerryProxy { snapshots }
    }
}

fn header<'a>(session: &'a Session, name: &str) -> Option<&'a [u8]> {
    session.req_header().headers.get(name).map(|v| v.as_bytes())
}

/// Answers a locally served route.
fn local_response(route: Route, session: &Session, snap: &Snapshot) -> LocalResponse {
    let now = now_ms();
    let admin = || {
        api::check_admin(
            snap,
            header(session, "authorization"),
            header(session, "x-api-key"),
        )
    };
    match route {
        Route::Root => api::root(),
        Route::Health => api::health(snap, now),
        Route::Models | Route::ModelById => match request::authenticate(session, snap) {
            Ok(u) => match snap.users.users.get(u) {
                Some(user) if route == Route::Models => api::models(&snap.table, user),
                Some(user) => {
                    let path = session.req_header().uri.path();
                    api::model_by_id(&snap.table, user, api::model_id(path).unwrap_or_default())
                }
                None => (&ApiError::unauthorized()).into(),
            },
            Err(e) => (&e).into(),
        },
        Route::Metrics => {
            if snap.table.settings.metrics_auth {
                if let Err(e) = admin() {
                    return (&e).into();
                }
            }
            api::metrics(snap, now)
        }
        Route::AdminBackends => match admin() {
            Ok(()) => api::admin_backends(snap, now),
            Err(e) => (&e).into(),
        },
        Route::AdminConfig => match admin() {
            Ok(()) => api::admin_config(snap),
            Err(e) => (&e).into(),
        },
        Route::WrongMethod(allowed) => (&ApiError::method_not_allowed(allowed)).into(),
        Route::NotFound => (&ApiError::route_not_found(session.req_header().uri.path())).into(),
        Route::ChatCompletions | Route::Completions | Route::Embeddings => {
            (&ApiError::internal()).into()
        }
    }
}

async fn refuse(session: &mut Session, ctx: &mut RequestCtx, e: ApiError) -> Result<bool> {
    if let Err(we) = respond::send(session, ctx, (&e).into()).await {
        log::debug!("request {}: refusal not delivered: {we}", ctx.request_id);
    }
    Ok(true)
}

#[async_trait]
impl ProxyHttp for BerryProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    /// Local endpoints are answered here; proxied requests are authenticated, their body
    /// read and checked, and the request admitted (or refused) before any upstream work.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.request_id = request::request_id(session, &mut ctx.rng);
        let snap = self.snapshots.load();
        ctx.snapshot = Some(Arc::clone(&snap));
        let route = api::route(
            &session.req_header().method,
            session.req_header().uri.path(),
        );
        let op = match route {
            Route::ChatCompletions => Operation::Chat,
            Route::Completions => Operation::TextCompletion,
            Route::Embeddings => Operation::Embeddings,
            other => {
                ctx.quiet_log = matches!(other, Route::Health | Route::Metrics);
                let r = local_response(other, session, &snap);
                respond::send(session, ctx, r).await?;
                return Ok(true);
            }
        };
        ctx.proxied = true;
        let user = match request::authenticate(session, &snap) {
            Ok(u) => u,
            Err(e) => return refuse(session, ctx, e).await,
        };
        ctx.user = Some(user);
        let settings = &snap.table.settings;
        let body = match request::read_body(
            session,
            settings.max_request_body_bytes,
            settings.request_timeout,
        )
        .await
        {
            Ok(b) => b,
            Err(request::BodyFailure::Refuse(e)) => return refuse(session, ctx, e).await,
            Err(request::BodyFailure::Io(e)) => return Err(e),
        };
        let t0 = Instant::now();
        match request::admit(op, body, user, &snap, now_ms()) {
            Ok(req) => {
                if let (Some(m), true) = (
                    snap.table.models.get(req.model),
                    crate::metrics::per_request(),
                ) {
                    ctx.inflight = Some(InflightGuard::new(&m.name));
                }
                ctx.request = Some(req);
            }
            Err(e) => return refuse(session, ctx, e).await,
        }
        ctx.overhead += t0.elapsed();
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let t0 = Instant::now();
        let peer = upstream::select_peer(ctx);
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
        {
            ctx.upstream_fd = Some(fd);
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
        let r = upstream::rewrite_request(ctx, upstream_request);
        ctx.overhead += t0.elapsed();
        r
    }

    /// Sends the attempt's rewritten body in place of the tail Pingora kept for retries.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.request.is_some() {
            *body = if ctx.attempt_body_sent {
                None
            } else {
                ctx.attempt_body_sent = true;
                Some(ctx.attempt_body.clone())
            };
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let t0 = Instant::now();
        let r = response::on_response_header(ctx, upstream_response);
        ctx.overhead += t0.elapsed();
        r
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        response::on_body_chunk(ctx, body, end_of_stream).map(|()| None)
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
        ctx.request.is_some()
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
