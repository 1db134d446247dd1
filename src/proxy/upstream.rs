//! Choosing the backend for an attempt and shaping the request sent to it.

use super::ctx::{Attempt, Operation, Proxied, RequestId};
use super::decision::{action_for, ruled, Failure, FailureAction, Situation};
use super::headers::{forwarded_head, Forwarding};
use super::translation::Translation;
use super::watchdog::Watchdog;
use crate::clock::now_ms;
use crate::config::Settings;
use crate::error::ApiError;
use crate::routing::{Backend, ModelRoute, Outcome, SelectInput};
use http::HeaderName;
use pingora_core::protocols::ALPN;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, OrErr, Result};
use pingora_http::RequestHeader;
use std::sync::Arc;
use std::time::Duration;

/// Idle time a pooled upstream connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// `anthropic-version`.
static ANTHROPIC_VERSION_HEADER: HeaderName = HeaderName::from_static("anthropic-version");

/// Google's API-key header of native Gemini calls.
static GOOG_API_KEY: HeaderName = HeaderName::from_static("x-goog-api-key");

/// `x-request-id`, as a `&'static str` so Pingora keeps it as the header's case without
/// copying it (a `HeaderName` outside Pingora's title-case table is copied on every insert).
pub const X_REQUEST_ID: &str = "x-request-id";

/// Whether backend `i` may take an attempt of this request: it serves the operation,
/// is visible to the user's tags, not tried yet, and its provider is under its
/// per-request attempt cap.
pub fn eligible(
    req: &super::ctx::ProxyRequest,
    tried: &[usize],
    model: &ModelRoute,
    i: usize,
    b: &Backend,
) -> bool {
    if tried.contains(&i)
        || !b.visible_to(&req.user.tags)
        || !b.provider.serves(req.op)
        || !super::responses::allowed_provider(req, &b.provider.id)
    {
        return false;
    }
    match b.provider.max_attempts {
        None => true,
        Some(cap) => {
            let used = tried
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
pub fn can_retry(p: &Proxied) -> bool {
    if p.attempts > p.snapshot.table.settings.max_retries {
        return false;
    }
    let model = &p.request.model;
    model
        .backends
        .iter()
        .enumerate()
        .any(|(i, b)| eligible(&p.request, &p.tried, model, i, b))
}

/// The situation a failure of the current attempt is decided in. `head_sent`: a final
/// response head went to the client; the answer is committed when, in addition, its content
/// is flowing (a stream past its commit point, or any other answer).
pub fn situation(p: &Proxied, head_sent: bool, stale_pooled: bool) -> Situation {
    let committed = head_sent && p.answer.as_ref().is_some_and(|a| a.released());
    Situation {
        committed,
        head_sent,
        can_retry: !committed && can_retry(p),
        stale_pooled: stale_pooled && !p.stale_retry_used,
        attempts: p.attempts,
        retry_on_timeout: p.snapshot.table.settings.retry_on_timeout,
    }
}

/// Picks the backend for the next attempt, starts the attempt and builds its peer. An
/// error carries its action (no backend left, or the backend's host is unresolved).
pub fn select_peer(p: &mut Proxied, rng: &mut fastrand::Rng) -> Result<Box<HttpPeer>> {
    let snap = Arc::clone(&p.snapshot);
    let model = Arc::clone(&p.request.model);
    let selected = {
        let mut input = SelectInput {
            now_ms: now_ms(),
            rng,
            table: &snap.table,
        };
        super::affinity::select(p, &mut input, eligible)
    };
    let Some(sel) = selected else {
        let pinned_id = p
            .request
            .responses
            .as_ref()
            .and_then(|r| r.previous_id.as_deref());
        let action = match (p.attempts, pinned_id) {
            (0, Some(id)) => FailureAction::Answer(ApiError::previous_response_unavailable(id)),
            (0, None) => FailureAction::Answer(ApiError::no_backend(&model.name)),
            (n, _) => FailureAction::Answer(final_error(p.last_outcome, n)),
        };
        return Err(ruled("no_backend_left", action));
    };
    let Some(backend) = model.backends.get(sel.index) else {
        return Err(ruled(
            "no_backend_left",
            FailureAction::Answer(ApiError::internal()),
        ));
    };
    p.tried.push(sel.index);
    p.attempts += 1;
    if p.attempts > 1 && crate::metrics::per_request() {
        model.metrics.retries().inc();
    }
    if sel.last_resort {
        model.metrics.last_resort().inc();
    }
    let translation = Translation::of(p.request.op, &backend.provider);
    let body = match translation.request_body(&p.request, backend) {
        Ok(body) => body,
        Err(refusal) => {
            return Err(ruled(
                "untranslatable_request",
                FailureAction::Answer(refusal),
            ))
        }
    };
    let attempt = Attempt::begin(
        sel.index,
        Arc::clone(backend),
        sel.probe,
        body.body,
        translation,
    )
    .with_dropped_tools(body.dropped_tools);
    p.attempt = Some(attempt);

    let Some(addr) = backend.provider.addrs.pick() else {
        // DNS has not resolved this host: a connect failure of this attempt.
        let failure = Failure::Connect { timed_out: false };
        p.finish_attempt(failure.outcome(false));
        let action = action_for(failure, &situation(p, false, false));
        return Err(ruled("upstream_unresolved", action));
    };
    Ok(Box::new(peer_for(
        backend,
        addr,
        p.request.stream,
        &snap.table.settings,
    )))
}

/// The answer when every attempt failed without a usable response.
fn final_error(outcome: Option<Outcome>, attempts: u32) -> ApiError {
    match outcome {
        Some(Outcome::Timeout) => ApiError::upstream_timeout(attempts),
        _ => ApiError::upstream_failed(attempts),
    }
}

/// The Pingora peer of one attempt: address, TLS/SNI, timeouts and ALPN.
fn peer_for(
    backend: &Backend,
    addr: std::net::SocketAddr,
    stream: bool,
    settings: &Settings,
) -> HttpPeer {
    let p = &backend.provider;
    let mut peer = HttpPeer::new(addr, p.endpoint.tls, p.endpoint.host.clone());
    let o = &mut peer.options;
    // TCP connect, and TCP connect + TLS handshake, each within `connect_timeout_seconds`
    // (never beyond the attempt timeout).
    let connect = settings.connect_timeout.min(p.timeout);
    o.connection_timeout = Some(connect);
    o.total_connection_timeout = Some(connect);
    o.write_timeout = Some(p.timeout);
    o.read_timeout = Some(if stream {
        settings.stream_idle_timeout
    } else {
        p.timeout
    });
    o.idle_timeout = Some(POOL_IDLE);
    if p.endpoint.tls {
        o.alpn = upstream_alpn(stream, p.timeout, settings.stream_idle_timeout);
    }
    peer
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

/// Rewrites the upstream request for the current attempt: path; of the client's headers
/// only the allowed ones ([`Forwarding`]: never its credentials, cookies, account
/// selection, hop-by-hop or framing headers); then the gateway's own: `Host`, the
/// provider's credentials and configured headers, `Content-Length`, the request id and a
/// default `Content-Type`. Arms the header watchdog for streams whose header deadline is
/// shorter than their idle timeout.
pub fn rewrite_request(
    p: &mut Proxied,
    request_id: &RequestId,
    up: &mut RequestHeader,
) -> Result<()> {
    let idle = p.snapshot.table.settings.stream_idle_timeout;
    let (stream, op, gemini_call) = (p.request.stream, p.request.op, p.request.gemini);
    let Some(attempt) = p.attempt.as_mut() else {
        return Err(Error::explain(
            ErrorType::InternalError,
            "no attempt to rewrite for",
        ));
    };
    let provider = &attempt.backend.provider;
    // `up` still carries the client's URI here.
    let model = Some(attempt.backend.real_model.as_str());
    let client_path = attempt.translation.upstream_client_path(up.uri.path());
    // The client's query string stays at the gateway (only the gateway's own parameters
    // go upstream); a route that needs one of its own passes it here.
    // A native Gemini call goes to the API's own path on the provider's host (its base
    // URL may name Google's OpenAI-compatible endpoint), with the key in `x-goog-api-key`.
    let native_gemini = gemini_call
        .filter(|_| attempt.translation == Translation::None && provider.gemini_key.is_some());
    let path = match native_gemini {
        Some(call) => super::gemini::native_path(&attempt.backend.real_model, call),
        None => provider.upstream_path(client_path, None, model),
    };
    let uri = http::Uri::try_from(path)
        .or_err(ErrorType::InternalError, "upstream path is not a valid URI")?;
    up.set_uri(uri);
    let forwarding = Forwarding::for_attempt(op, attempt.translation, &provider.forward_headers);
    // Room for what is set below: host, content-length, x-request-id, content-type, the
    // provider's headers and Gemini's key.
    *up = forwarded_head(up, &forwarding, provider.headers.len() + 5)?;
    up.insert_header(http::header::HOST, provider.host_header.clone())?;
    // On the Anthropic routes the client's own `anthropic-version` wins over the default.
    let client_version = matches!(op, Operation::Messages | Operation::CountTokens)
        && up.headers.contains_key(&ANTHROPIC_VERSION_HEADER);
    for (name, value) in &provider.headers {
        if client_version && name == ANTHROPIC_VERSION_HEADER {
            continue;
        }
        if native_gemini.is_some() && name == http::header::AUTHORIZATION {
            continue;
        }
        up.insert_header(name.clone(), value.clone())?;
    }
    if let (Some(_), Some(key)) = (native_gemini, &provider.gemini_key) {
        up.insert_header(GOOG_API_KEY.clone(), key.clone())?;
    }
    up.insert_header(http::header::CONTENT_LENGTH, attempt.body.len())?;
    if let Some(id) = request_id.header() {
        up.insert_header(X_REQUEST_ID, id)?;
    }
    if !up.headers.contains_key(http::header::CONTENT_TYPE) {
        up.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    }
    // Keyed on the upstream connection, whatever HTTP version the client speaks: a stream
    // that needs the watchdog is only ever offered HTTP/1.1 ([`upstream_alpn`]), so its
    // connection is its own socket.
    let timeout = provider.timeout;
    if needs_header_watchdog(stream, timeout, idle) {
        arm_watchdog(attempt, timeout, request_id.as_str());
    }
    Ok(())
}

fn arm_watchdog(attempt: &mut Attempt, timeout: Duration, request_id: &str) {
    let Some(fd) = attempt.upstream_fd else {
        return;
    };
    let left = timeout.saturating_sub(attempt.started.elapsed());
    // SAFETY: `fd` is this attempt's upstream connection, reported by
    // `connected_to_upstream`; Pingora holds it open while the request is written, which is
    // when this runs, and the borrow ends with `arm`.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    match Watchdog::arm(fd, left) {
        Ok(w) => attempt.watchdog = Some(w),
        Err(e) => log::warn!("request {request_id}: header deadline not armed: {e}"),
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
