//! The client side of a proxied request: request id, authentication, bounded body read,
//! model resolution and policy checks, in this order (a refused request consumes no
//! quota): token → body → model exists → user may use it → user quota → routing.

use super::ctx::{Operation, ProxyRequest, RequestId};
use super::translation::Translation;
use crate::auth::UserEntry;
use crate::error::ApiError;
use crate::snapshot::Snapshot;
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use pingora_proxy::Session;
use std::sync::Arc;
use std::time::Duration;

/// Largest tail of a body left in Pingora's retry buffer (its capacity).
const RETRY_TAIL: u64 = 64 * 1024;

/// A valid client `x-request-id` is reused (printable ASCII, at most 128 bytes; the
/// client's header value itself, not a copy); otherwise a random 32-hex-digit id is
/// generated (one allocation, shared by every header that carries it).
pub fn request_id(session: &Session, rng: &mut fastrand::Rng) -> RequestId {
    if let Some(v) = session.req_header().headers.get("x-request-id") {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| (0x21..0x7f).contains(c)) {
            return RequestId::new(v.clone());
        }
    }
    generated_id(rng)
}

/// A random id: 32 lower-case hex digits.
fn generated_id(rng: &mut fastrand::Rng) -> RequestId {
    let hex = crate::random_id::hex32(rng.u128(..));
    match HeaderValue::from_maybe_shared(Bytes::from_owner(hex)) {
        Ok(v) => RequestId::new(v),
        // Unreachable: hex digits are valid header bytes.
        Err(_) => RequestId::default(),
    }
}

/// The authenticated user, or the uniform 401.
pub fn authenticate(session: &Session, snap: &Snapshot) -> Result<Arc<UserEntry>, ApiError> {
    crate::auth::request_token(session.req_header())
        .and_then(|token| snap.users.authenticate(token))
        .cloned()
        .ok_or_else(ApiError::unauthorized)
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyFailure {
    /// Answer this error (the connection may still be usable).
    Refuse(ApiError),
    /// The client connection failed; nothing can be answered.
    Io(Box<pingora_error::Error>),
}

/// Reads the whole request body, bounded by `max` bytes and `timeout`.
///
/// Pingora forwards only what is in its retry buffer (at most 64 KiB, and nothing once it
/// overflowed) after the body has been consumed here, so the last ≤ 64 KiB are read with
/// retry buffering on; `request_body_filter` later swaps that tail for the whole
/// rewritten body of each attempt.
pub async fn read_body(
    session: &mut Session,
    max: u64,
    timeout: Duration,
) -> Result<Bytes, BodyFailure> {
    let headers = &session.req_header().headers;
    let chunked = headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|v| {
            v.as_bytes()
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"chunked"))
        });
    let content_length = if chunked {
        None
    } else {
        match headers.get(http::header::CONTENT_LENGTH) {
            None => Some(0),
            Some(v) => match std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
            {
                Some(n) => Some(n),
                None => {
                    return Err(BodyFailure::Refuse(ApiError::bad_request(
                        "Invalid Content-Length header.",
                    )))
                }
            },
        }
    };
    if let Some(n) = content_length {
        if n > max {
            return Err(BodyFailure::Refuse(ApiError::too_large(max)));
        }
        if n == 0 {
            return Err(BodyFailure::Refuse(ApiError::bad_request(
                "A JSON request body is required.",
            )));
        }
    }
    let expects_continue = headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session
            .as_downstream_mut()
            .write_continue_response()
            .await
            .map_err(BodyFailure::Io)?;
    }
    match tokio::time::timeout(timeout, read_all(session, content_length, max)).await {
        Ok(r) => r,
        Err(_) => Err(BodyFailure::Refuse(ApiError::body_timeout())),
    }
}

/// A body being read: the first chunk itself until a second one arrives (most bodies come
/// in one read, and are then never copied), after that one buffer.
enum Body {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::One(b) => b.len(),
            Body::Many(b) => b.len(),
        }
    }

    /// Appends `chunk`; `capacity` sizes the buffer when a second chunk makes one.
    fn push(&mut self, chunk: Bytes, capacity: usize) {
        match self {
            Body::Empty => *self = Body::One(chunk),
            Body::One(first) => {
                let mut buf = BytesMut::with_capacity(capacity.max(first.len() + chunk.len()));
                buf.extend_from_slice(first);
                buf.extend_from_slice(&chunk);
                *self = Body::Many(buf);
            }
            Body::Many(buf) => buf.extend_from_slice(&chunk),
        }
    }

    fn freeze(self) -> Bytes {
        match self {
            Body::Empty => Bytes::new(),
            Body::One(b) => b,
            Body::Many(b) => b.freeze(),
        }
    }
}

/// Reads the whole body (at most `max` bytes), then leaves its last bytes (at most
/// [`RETRY_TAIL`]) in Pingora's retry buffer: what Pingora forwards for a body already read,
/// and which `request_body_filter` replaces with the attempt's rewritten body. Buffering is
/// off while reading, so neither a chunked body of any length nor one read in pieces larger
/// than the buffer can overflow it.
async fn read_all(
    session: &mut Session,
    content_length: Option<u64>,
    max: u64,
) -> Result<Bytes, BodyFailure> {
    let capacity = content_length.unwrap_or(16 * 1024).min(max) as usize;
    let mut body = Body::Empty;
    loop {
        let chunk = session
            .as_downstream_mut()
            .read_request_body()
            .await
            .map_err(BodyFailure::Io)?;
        let Some(chunk) = chunk else { break };
        if body.len() as u64 + chunk.len() as u64 > max {
            return Err(BodyFailure::Refuse(ApiError::too_large(max)));
        }
        body.push(chunk, capacity);
    }
    let buf = body.freeze();
    if let Some(n) = content_length {
        if (buf.len() as u64) < n {
            return Err(BodyFailure::Refuse(ApiError::bad_request(
                "The request body ended before Content-Length bytes.",
            )));
        }
    }
    if buf.is_empty() {
        return Err(BodyFailure::Refuse(ApiError::bad_request(
            "A JSON request body is required.",
        )));
    }
    let tail = buf.slice(buf.len().saturating_sub(RETRY_TAIL as usize)..);
    if !session.as_downstream_mut().set_retry_buffer(&tail) {
        // Only HTTP/1 and HTTP/2 clients reach the proxy; anything else would forward
        // nothing and hang.
        return Err(BodyFailure::Refuse(ApiError::internal()));
    }
    Ok(buf)
}

/// Frees the request body's copies once the answer's head reached the client, when no
/// other attempt can follow: the tail in Pingora's retry buffer and the client's body
/// (unless a stored Responses call records its input when the answer completes). An
/// agent's prompt of 100 KB and more would otherwise stay for the whole stream.
pub fn release_request_body(p: &mut super::ctx::Proxied, session: &mut Session) {
    p.body_released = true;
    let stored = p.request.op == Operation::Responses
        && p.request.responses.as_deref().is_some_and(|c| c.store);
    release_body(&mut p.request.body, stored, session);
}

/// Empties Pingora's retry buffer and, unless `keep` (a stored call's input), `body`.
fn release_body(body: &mut Bytes, keep: bool, session: &mut Session) {
    session.as_downstream_mut().set_retry_buffer(&Bytes::new());
    if !keep {
        *body = Bytes::new();
    }
}

/// Validates a read body against the snapshot: model scan, existence, permission, and
/// whether the model's backends can express it. The user's limits come after
/// ([`crate::quota::admit_user`]).
pub fn validate_request(
    op: Operation,
    body: Bytes,
    user: Arc<UserEntry>,
    snap: &Snapshot,
) -> Result<ProxyRequest, ApiError> {
    let scan = crate::body::scan(&body).map_err(|e| {
        use crate::body::BodyError as B;
        crate::metrics::INVALID_REQUESTS
            .with_label_values(&[e.kind()])
            .inc();
        let err = ApiError::bad_request(e.message());
        match e {
            B::MissingModel | B::EmptyModel | B::ModelNotString | B::DuplicateModel => {
                err.with_param("model")
            }
            _ => err,
        }
    })?;
    let model = snap
        .table
        .model_index(&scan.model)
        .and_then(|i| snap.table.models.get(i))
        .ok_or_else(|| ApiError::model_not_found(&scan.model))?;
    if !user.may_use(model.index) {
        return Err(ApiError::model_not_allowed(&scan.model));
    }
    if !model.backends.iter().any(|b| b.provider.serves(op)) {
        if op == Operation::ResponsesCompact {
            return Err(ApiError::compaction_unsupported(&model.name));
        }
        return Err(ApiError::bad_request(format!(
            "Model '{}' has no backend that serves {}.",
            model.name,
            op.describe()
        )));
    }
    // A field a backend's API cannot express is refused here, before any quota is taken,
    // and whichever backend would have been picked (at most one check per translation).
    // Responses requests are checked once their stored conversation is known
    // (`responses::prepare`).
    let mut checked = smallvec::SmallVec::<[Translation; 2]>::new();
    let checked_later = matches!(op, Operation::Responses | Operation::ResponsesCompact);
    for b in model
        .backends
        .iter()
        .filter(|b| !checked_later && b.provider.serves(op))
    {
        let t = Translation::of(op, &b.provider);
        if t != Translation::None && !checked.contains(&t) {
            checked.push(t);
            t.check(&body, None)?;
        }
    }
    // Every OpenAI-dialect stream asks its backend for usage, whatever the client sent (a
    // client cannot switch its token budget off). `stream_options` is OpenAI's: never added
    // to an Anthropic client's body.
    let openai_op = matches!(op, Operation::Chat | Operation::TextCompletion);
    let include_usage = if openai_op {
        crate::body::include_usage_edit(&scan).map(|e| (e.range, e.bytes))
    } else {
        None
    };
    Ok(ProxyRequest {
        op,
        user,
        model: Arc::clone(model),
        model_span: scan.model_span.clone(),
        stream: scan.stream,
        include_usage,
        body,
        gemini: None,
        responses: None,
        session: crate::routing::Session {
            body: scan.session,
            ..Default::default()
        },
    })
}

pub use super::admitted::attempt_body;

/// Whether the usage-only chunk (`"choices":[]` with the usage) of this request's stream is
/// the gateway's own to read and must not reach the client: an OpenAI chat or completions
/// stream whose client did not ask for usage (the gateway asked for it in its place, so the
/// request carries the `include_usage` edit).
pub fn hides_usage_chunk(req: &ProxyRequest) -> bool {
    matches!(req.op, Operation::Chat | Operation::TextCompletion)
        && req.stream
        && req.include_usage.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_32_lower_case_hex_digits() {
        let mut rng = fastrand::Rng::with_seed(7);
        let a = generated_id(&mut rng);
        let b = generated_id(&mut rng);
        for id in [&a, &b] {
            let s = id.as_str();
            assert_eq!(s.len(), 32, "{s}");
            assert!(
                s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{s}"
            );
            assert_eq!(id.header().map(|v| v.len()), Some(32));
        }
        assert_ne!(a.as_str(), b.as_str());
        // the digits are those of `{:032x}` of the random number
        let mut rng = fastrand::Rng::with_seed(7);
        assert_eq!(a.as_str(), format!("{:032x}", rng.u128(..)));
        assert_eq!(RequestId::default().as_str(), "");
        assert!(RequestId::default().header().is_none());
    }

    /// A client session on an in-memory stream holding `head` and `body`, head read.
    async fn session_with(head: String, body: &[u8]) -> (Session, tokio::io::DuplexStream) {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(4 << 20);
        client.write_all(head.as_bytes()).await.unwrap();
        client.write_all(body).await.unwrap();
        let mut session = Session::new_h1(Box::new(server));
        assert!(session.as_downstream_mut().read_request().await.unwrap());
        (session, client)
    }

    #[tokio::test]
    async fn a_released_body_leaves_neither_copy_unless_kept() {
        let body = vec![b'x'; 10 * 1024];
        let head = format!(
            "POST /v1/responses HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        for keep in [false, true] {
            let (mut session, _client) = session_with(head.clone(), &body).await;
            let mut read = read_all(&mut session, Some(body.len() as u64), 4 << 20)
                .await
                .ok()
                .unwrap();
            // the retry buffer shares the body read, it is not a copy
            let retry = session.as_downstream().get_retry_buffer().unwrap();
            assert_eq!(retry.as_ptr(), read.as_ptr());
            drop(retry);
            release_body(&mut read, keep, &mut session);
            assert!(session.as_downstream().get_retry_buffer().is_none());
            assert_eq!(read.len(), if keep { body.len() } else { 0 });
        }
    }

    /// The body read, and what Pingora would forward for it (its retry buffer).
    async fn read(session: &mut Session, length: Option<u64>) -> (usize, Option<Bytes>) {
        match read_all(session, length, 4 << 20).await {
            Ok(body) => (body.len(), session.as_downstream().get_retry_buffer()),
            Err(BodyFailure::Refuse(e)) => panic!("refused: {}", e.status),
            Err(BodyFailure::Io(e)) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn a_body_read_with_its_head_in_one_piece_over_64_kib_is_kept_for_forwarding() {
        // A 130 KiB head is read in doubling pieces; the last one takes in the whole
        // 100 KiB body, which the first body read returns in one piece.
        let body = vec![b'x'; 100 * 1024];
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nx-pad: {}\r\nContent-Length: {}\r\n\r\n",
            "p".repeat(130 * 1024),
            body.len()
        );
        let (mut session, _client) = session_with(head, &body).await;
        let (len, kept) = read(&mut session, Some(body.len() as u64)).await;
        assert_eq!(len, body.len());
        assert_eq!(kept.map(|k| k.len()), Some(RETRY_TAIL as usize));
    }

    #[tokio::test]
    async fn a_chunked_body_over_64_kib_is_kept_for_forwarding() {
        let mut framed = Vec::new();
        for _ in 0..5 {
            framed.extend_from_slice(format!("{:x}\r\n", 40 * 1024).as_bytes());
            framed.extend_from_slice(&[b'x'; 40 * 1024]);
            framed.extend_from_slice(b"\r\n");
        }
        framed.extend_from_slice(b"0\r\n\r\n");
        let head =
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (mut session, _client) = session_with(head.to_string(), &framed).await;
        let (len, kept) = read(&mut session, None).await;
        assert_eq!(len, 200 * 1024);
        assert_eq!(kept.map(|k| k.len()), Some(RETRY_TAIL as usize));
    }
}
