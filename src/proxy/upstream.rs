//! Choosing the backend for an attempt and shaping the request sent to it.

use super::ctx::{Attempt, RequestCtx};
use super::request::attempt_body;
use super::watchdog::Watchdog;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::providers::CLIENT_CREDENTIAL_HEADERS;
use crate::routing::{Backend, ModelRoute, Outcome, SelectInput};
use crate::snapshot::Snapshot;
use http::HeaderName;
use once_cell::sync::Lazy;
use pingora_core::protocols::ALPN;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use std::sync::Arc;
use std::time::Duration;

/// Idle time a pooled upstream connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Request headers never forwarded upstream: the client's credentials, hop-by-hop
/// headers, framing (set per attempt), and `accept-encoding` (the gateway reads usage from
/// plain bodies; LLM replies compress poorly anyway).
static DROPPED_REQUEST_HEADERS: Lazy<Vec<HeaderName>> = Lazy::new(|| {
    CLIENT_CREDENTIAL_HEADERS
        .iter()
        .chain(&[
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "te",
            "upgrade",
            "expect",
            "transfer-encoding",
            "content-length",
            "accept-encoding",
        ])
        .map(|h| HeaderName::from_static(h))
        .collect()
});

/// `x-request-id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether backend `i` may take an attempt of this request: visible to the user's tags,
/// not tried yet, and its provider under its per-request attempt cap.
pub fn eligible(
    ctx: &RequestCtx,
    model: &ModelRoute,
    user_tags: &[String],
    i: usize,
    b: &Backend,
) -> bool {
    if ctx.tried.contains(&i) || !b.visible_to(user_tags) {
        return false;
    }
    match b.provider.max_attempts {
        None => true,
        Some(cap) => {
            let used = ctx
                .tried
                .iter()
                .filter(|&&t| {
                    model
                        .backends
                        .get(t)
                        .is_some_and(|tb| Arc::ptr_eq(&tb.provider, &b.provider))
                })
                .count();
            (used as u32) < cap
        }
    }
}

/// Whether another attempt may follow the current one: retry budget left and an eligible
/// backend remains.
pub fn can_retry(ctx: &RequestCtx, snap: &Snapshot) -> bool {
    let Some(req) = &ctx.request else {
        return false;
    };
    if ctx.attempts > snap.table.settings.max_retries {
        return false;
    }
    let (Some(model), Some(user)) = (
        snap.table.models.get(req.model),
        snap.users.users.get(req.user),
    ) else {
        return false;
    };
    model
        .backends
        .iter()
        .enumerate()
        .any(|(i, b)| eligible(ctx, model, &user.tags, i, b))
}

fn proxy_error(name: &'static str, retry: bool) -> Box<Error> {
    let mut e = Error::new(ErrorType::Custom(name));
    e.set_retry(retry);
    e
}

/// Picks the backend for the next attempt and builds its peer. Errors carry their retry
/// decision; `ctx.local_error` says what to answer if the loop ends here.
pub fn select_peer(ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
    let snap = ctx
        .snapshot
        .clone()
        .ok_or_else(|| proxy_error("no_snapshot", false))?;
    let Some(req) = ctx.request.as_ref() else {
        return Err(proxy_error("no_request", false));
    };
    let (model_i, user_i, stream) = (req.model, req.user, req.stream);
    let (Some(model), Some(user)) = (snap.table.models.get(model_i), snap.users.users.get(user_i))
    else {
        return Err(proxy_error("stale_request", false));
    };
    let now = now_ms();
    let mut rng = std::mem::replace(&mut ctx.rng, fastrand::Rng::with_seed(0));
    let selected = {
        let ctx_ref = &*ctx;
        let mut input = SelectInput {
            now_ms: now,
            rng: &mut rng,
            table: &snap.table,
        };
        model.select(&mut input, |i, b| {
            eligible(ctx_ref, model, &user.tags, i, b)
        })
    };
    ctx.rng = rng;
    let Some(sel) = selected else {
        if ctx.attempts == 0 {
            ctx.local_error = Some(ApiError::no_backend(&model.name));
        }
        return Err(proxy_error("no_backend_left", false));
    };
    let backend = &model.backends[sel.index];
    ctx.tried.push(sel.index);
    ctx.attempts += 1;
    if ctx.attempts > 1 && crate::metrics::per_request() {
        crate::metrics::RETRIES
            .with_label_values(&[&model.name])
            .inc();
    }
    if sel.last_resort {
        crate::metrics::LAST_RESORT
            .with_label_values(&[&model.name])
            .inc();
    }
    ctx.watchdog = None;
    ctx.upstream_fd = None;
    ctx.attempt = Some(Attempt::begin(
        sel.index,
        Arc::clone(&backend.state),
        sel.probe,
    ));
    if let Some(req) = ctx.request.as_ref() {
        ctx.attempt_body = attempt_body(req, &backend.model_literal);
    }
    ctx.attempt_body_sent = false;

    let Some(addr) = backend.provider.addrs.pick() else {
        // DNS has not resolved this host: a connect failure of this attempt.
        super::outcome::finish_attempt(ctx, Outcome::ConnectError);
        let retry = can_retry(ctx, &snap);
        if !retry {
            ctx.local_error = Some(ApiError::upstream_failed(ctx.attempts));
        }
        return Err(proxy_error("upstream_unresolved", retry));
    };
    let p = &backend.provider;
    let mut peer = HttpPeer::new(addr, p.endpoint.tls, p.endpoint.host.clone());
    let o = &mut peer.options;
    o.connection_timeout = Some(p.timeout);
    o.total_connection_timeout = Some(p.timeout);
    o.write_timeout = Some(p.timeout);
    o.read_timeout = Some(if stream {
        snap.table.settings.stream_idle_timeout
    } else {
        p.timeout
    });
    o.idle_timeout = Some(POOL_IDLE);
    if p.endpoint.tls {
        o.alpn = upstream_alpn(stream, p.timeout, snap.table.settings.stream_idle_timeout);
    }
    Ok(Box::new(peer))
}

/// Whether a streaming attempt needs the header watchdog: its header deadline (the
/// attempt timeout) is shorter than the read timeout Pingora applies to every read of a
/// stream (the idle timeout).
fn needs_header_watchdog(stream: bool, header_deadline: Duration, idle: Duration) -> bool {
    stream && header_deadline < idle
}

/// ALPN offered to a TLS provider. Streams that need the header watchdog stay on HTTP/1.1:
/// the watchdog works by shutting down the attempt's own socket, and an HTTP/2 connection
/// is shared by many requests (Pingora gives an h2 stream a single read timeout, so the
/// header deadline could not be enforced there). Everything else offers h2 first.
fn upstream_alpn(stream: bool, header_deadline: Duration, idle: Duration) -> ALPN {
    if needs_header_watchdog(stream, header_deadline, idle) {
        ALPN::H1
    } else {
        ALPN::H2H1
    }
}

/// Rewrites the upstream request for the current attempt: path, credentials, provider
/// headers, framing, request id. Arms the header watchdog for HTTP/1 streams.
pub fn rewrite_request(ctx: &mut RequestCtx, up: &mut RequestHeader) -> Result<()> {
    let snap = ctx
        .snapshot
        .clone()
        .ok_or_else(|| proxy_error("no_snapshot", false))?;
    let (Some(req), Some(attempt)) = (ctx.request.as_ref(), ctx.attempt.as_ref()) else {
        return Err(proxy_error("no_attempt", false));
    };
    let Some(backend) = snap
        .table
        .models
        .get(req.model)
        .and_then(|m| m.backends.get(attempt.backend))
    else {
        return Err(proxy_error("no_backend", false));
    };
    let p = &backend.provider;
    // `up` still carries the client's URI here.
    let path = p.upstream_path(up.uri.path(), up.uri.query());
    let uri: http::Uri = path
        .parse()
        .map_err(|_| proxy_error("bad_upstream_path", false))?;
    up.set_uri(uri);
    for h in DROPPED_REQUEST_HEADERS.iter() {
        up.remove_header(h);
    }
    up.insert_header(http::header::HOST, p.host_header.clone())?;
    for (name, value) in &p.headers {
        up.insert_header(name.clone(), value.clone())?;
    }
    up.insert_header(http::header::CONTENT_LENGTH, ctx.attempt_body.len())?;
    up.insert_header(X_REQUEST_ID.clone(), ctx.request_id.as_str())?;
    if !up.headers.contains_key(http::header::CONTENT_TYPE) {
        up.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    }
    let stream = req.stream;
    arm_watchdog(
        ctx,
        &snap,
        stream,
        p.timeout,
        up.version == http::Version::HTTP_11,
    );
    Ok(())
}

fn arm_watchdog(ctx: &mut RequestCtx, snap: &Snapshot, stream: bool, timeout: Duration, h1: bool) {
    if !(h1 && needs_header_watchdog(stream, timeout, snap.table.settings.stream_idle_timeout)) {
        return;
    }
    let (Some(fd), Some(attempt)) = (ctx.upstream_fd, ctx.attempt.as_ref()) else {
        return;
    };
    let left = timeout.saturating_sub(attempt.started.elapsed());
    match Watchdog::arm(fd, left) {
        Ok(w) => ctx.watchdog = Some(w),
        Err(e) => log::warn!("request {}: header deadline not armed: {e}", ctx.request_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_with_a_header_deadline_stay_on_http1() {
        let s = Duration::from_secs;
        assert_eq!(upstream_alpn(true, s(30), s(120)), ALPN::H1);
        assert_eq!(upstream_alpn(false, s(30), s(120)), ALPN::H2H1);
        // the idle timeout already bounds the header wait: h2 is fine
        assert_eq!(upstream_alpn(true, s(120), s(120)), ALPN::H2H1);
        assert_eq!(upstream_alpn(true, s(300), s(120)), ALPN::H2H1);
    }
}
