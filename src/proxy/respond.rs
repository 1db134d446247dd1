//! Writing locally generated responses (errors, health, models, metrics, admin).

use super::ctx::RequestCtx;
use crate::api::LocalResponse;
use bytes::Bytes;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use std::time::Duration;

/// Request bodies up to this size are drained before a local answer so the client
/// connection stays reusable; larger unread bodies close it instead.
const DRAIN_LIMIT: u64 = 64 * 1024;

/// Writes `r` as the whole response to the client.
pub async fn send(session: &mut Session, ctx: &mut RequestCtx, r: LocalResponse) -> Result<()> {
    settle_request_body(session).await;
    let mut h = ResponseHeader::build(r.status, Some(4))?;
    h.insert_header(http::header::CONTENT_TYPE, r.content_type)?;
    h.insert_header(http::header::CONTENT_LENGTH, r.body.len())?;
    if !ctx.request_id.is_empty() {
        h.insert_header("x-request-id", ctx.request_id.as_str())?;
    }
    for (name, value) in &r.headers {
        h.insert_header(*name, value.as_str())?;
    }
    ctx.status = r.status;
    let head = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(h), head).await?;
    if !head {
        session
            .write_response_body(Some(Bytes::from(r.body)), true)
            .await?;
    }
    Ok(())
}

/// Drains a small unread request body (keeps keep-alive) or marks the connection for
/// closing when the body is large or slow.
async fn settle_request_body(session: &mut Session) {
    if session.as_downstream_mut().is_body_done() {
        return;
    }
    let small = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| {
            std::str::from_utf8(v.as_bytes())
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .is_some_and(|n| n <= DRAIN_LIMIT);
    let drained = small
        && matches!(
            tokio::time::timeout(
                Duration::from_secs(1),
                session.as_downstream_mut().drain_request_body()
            )
            .await,
            Ok(Ok(()))
        );
    if !drained {
        session.as_downstream_mut().set_keepalive(None);
    }
}
