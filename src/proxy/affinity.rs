//! Session affinity on the request path: the request's session key, the move remembered for
//! it (in Redis with shared state, else in this replica), choosing the attempt's backend by
//! rendezvous rank, and sharing a new move with the other replicas.

use super::ctx::{Proxied, ProxyRequest};
use crate::body::{BodySessionKeys, SessionKey};
use crate::clock::now_ms;
use crate::config::Affinity;
use crate::routing::{AffinityResult, Backend, ModelRoute, SelectInput, Selected};
use crate::shared::SharedState;
use http::{HeaderMap, HeaderName};
use std::time::Duration;

/// Session headers in the order they are looked for (between the body's
/// `prompt_cache_key` and its `metadata.user_id`): Codex, then Claude Code.
/// (Static names: a lookup by `&str` would parse and lower-case the name every time.)
static SESSION_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("session-id"),
    HeaderName::from_static("x-session-id"),
    HeaderName::from_static("x-claude-code-session-id"),
];

/// The gateway's own session header, looked at last.
static BERRY_SESSION: HeaderName = HeaderName::from_static("x-berry-session");

/// The session key of a request, first present: the body's `prompt_cache_key`; the
/// `session-id`, `x-session-id`, `x-claude-code-session-id` headers; the body's
/// `metadata.user_id`; `x-berry-session`. Only its hash is returned.
pub fn session_key(headers: &HeaderMap, body: BodySessionKeys) -> Option<SessionKey> {
    let header = |name: &HeaderName| headers.get(name).and_then(|v| SessionKey::of(v.as_bytes()));
    body.prompt_cache_key
        .or_else(|| SESSION_HEADERS.iter().find_map(&header))
        .or(body.metadata_user_id)
        .or_else(|| header(&BERRY_SESSION))
}

/// Sets the request's session key when its model has affinity on and the request carries
/// one; returns the key, whose remembered move [`remembered`] then looks up.
pub fn attach_key(request: &mut ProxyRequest, headers: &HeaderMap) -> Option<SessionKey> {
    if request.model.affinity == Affinity::None {
        return None;
    }
    let key = session_key(headers, request.session.body)?;
    request.session.key = Some(key);
    Some(key)
}

/// The move remembered for session `key` of `model`: from Redis with shared state (one
/// `GET`, bounded by `timeout_ms`, sent while the request's admission is in flight so both
/// share a round trip; this replica's memory when Redis cannot answer), else from this
/// replica's memory. `None` without a key.
pub async fn remembered(
    model: &ModelRoute,
    key: Option<SessionKey>,
    shared: Option<&SharedState>,
) -> Option<u64> {
    let key = key?;
    match shared {
        Some(state) => match state.session_backend(&model.key, key).await {
            Ok(found) => found,
            Err(_) => model.moves.get(key, now_ms()),
        },
        None => model.moves.get(key, now_ms()),
    }
}

/// Chooses the backend of the next attempt: by session when the request has a key (and
/// the model's affinity is on), else by the model's strategy. Counts
/// `berry_affinity_total`, and shares a move with the other replicas.
pub fn select(
    p: &mut Proxied,
    input: &mut SelectInput<'_>,
    eligible: impl Fn(&ProxyRequest, &[usize], &ModelRoute, usize, &Backend) -> bool,
) -> Option<Selected> {
    let model = std::sync::Arc::clone(&p.request.model);
    let (picked, result) = if p.request.session.key.is_some() {
        let mut session = p.request.session;
        let picked = {
            let (req, tried) = (&p.request, &p.tried);
            model.select_session(input, &mut session, |i, b| {
                eligible(req, tried, &model, i, b)
            })
        };
        if session.moved {
            session.moved = false;
            share_move(p, &model, &session);
        }
        p.request.session = session;
        match picked {
            Some((sel, result)) => (Some(sel), result),
            None => (None, AffinityResult::Kept),
        }
    } else {
        let (req, tried) = (&p.request, &p.tried);
        let picked = model.select(input, |i, b| eligible(req, tried, &model, i, b));
        (picked, AffinityResult::None)
    };
    if picked.is_some() && crate::metrics::per_request() {
        if let Some(c) = model.metrics.affinity(result as usize) {
            c.inc();
        }
    }
    picked
}

/// Shares the session's new backend with the other replicas (off the request path).
fn share_move(p: &Proxied, model: &ModelRoute, session: &crate::routing::Session) {
    let (Some(shared), Some(key), Some(backend)) = (&p.shared, session.key, session.remembered)
    else {
        return;
    };
    let ttl = Duration::from_millis(model.affinity_ttl_ms);
    shared.share_session_move(&model.key, key, backend, ttl);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_first_present_key_wins() {
        let k = |s: &str| SessionKey::of(s.as_bytes());
        let mut h = HeaderMap::new();
        h.insert(BERRY_SESSION.clone(), HeaderValue::from_static("berry"));
        let mut body = BodySessionKeys::default();
        assert_eq!(session_key(&h, body), k("berry"));
        body.metadata_user_id = k("user");
        assert_eq!(session_key(&h, body), k("user"));
        h.insert("x-claude-code-session-id", HeaderValue::from_static("cc"));
        assert_eq!(session_key(&h, body), k("cc"));
        h.insert("session-id", HeaderValue::from_static("codex"));
        assert_eq!(session_key(&h, body), k("codex"));
        body.prompt_cache_key = k("pck");
        assert_eq!(session_key(&h, body), k("pck"));
        // an empty header is no key
        let mut h = HeaderMap::new();
        h.insert("session-id", HeaderValue::from_static(""));
        assert_eq!(session_key(&h, BodySessionKeys::default()), None);
    }
}
