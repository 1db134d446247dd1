//! Writing locally generated responses (errors, health, models, metrics, admin).

use super::ctx::RequestCtx;
use crate::api::LocalResponse;
use bytes::Bytes;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use std::time::Duration;

/// How long an unread request body is read and discarded after a local answer (lingering
/// close), so the client receives the answer instead of a reset while it is still sending.
const LINGER: Duration = Duration::from_secs(1);

/// Whether the final response head (status ≥ 200) went to the client: from then on the
/// response is committed (no retry, no error answer). An interim `100 Continue` — sent
/// before reading a body announced with `Expect: 100-continue` — does not commit anything.
pub fn final_head_sent(session: &Session) -> bool {
    session
        .response_written()
        .is_some_and(|h| h.status.as_u16() >= 200)
}

/// Counts `e` in `berry_client_timeouts_total{kind="write"}` when it is a write to the
/// client that timed out (`client_write_timeout_seconds`). Call once per failed request
/// (on the final error, or where a write error is swallowed).
pub fn note_client_error(e: &Error) {
    if *e.etype() == ErrorType::WriteTimedout && *e.esource() != ErrorSource::Upstream {
        crate::metrics::CLIENT_TIMEOUTS
            .with_label_values(&["write"])
            .inc();
    }
}

/// Writes `r` as the whole response to the client.
pub async fn send(session: &mut Session, ctx: &mut RequestCtx, r: LocalResponse) -> Result<()> {
    let mut h = ResponseHeader::build(r.status, Some(4))?;
    h.insert_header(http::header::CONTENT_TYPE, r.content_type)?;
    h.insert_header(http::header::CONTENT_LENGTH, r.body.len())?;
    if let Some(id) = ctx.request_id.header() {
        h.insert_header("x-request-id", id)?;
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
    settle_request_body(session).await;
    Ok(())
}

/// Reads and discards an unread request body for at most [`LINGER`]; the connection is
/// kept for reuse only when the body ended in that time.
async fn settle_request_body(session: &mut Session) {
    let downstream = session.as_downstream_mut();
    if downstream.is_body_done() {
        return;
    }
    let drained = matches!(
        tokio::time::timeout(LINGER, downstream.drain_request_body()).await,
        Ok(Ok(()))
    );
    if !drained {
        downstream.set_keepalive(None);
    }
}
