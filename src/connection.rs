//! The client connection loop: HTTP/1.x keep-alive with the client limits of the current
//! snapshot (read again before every request, so a reload applies to the next request).
//!
//! Pingora 0.9.1 drives a connection's keep-alive loop itself (the `ServerApp` it
//! implements for every `HttpServerApp`) and offers, per read of a request head, a single
//! timeout: the keep-alive timeout (also applied to the *first* request's head) or, with
//! keep-alive off, the read timeout. Neither bounds a whole head: a client trickling one
//! byte per read never hits them; and an expired keep-alive wait closes the connection
//! silently, so it cannot be counted. This loop replaces Pingora's (about the same
//! twenty lines) and keeps everything else — parsing, proxying, reuse — in Pingora:
//!
//! * `client_idle_timeout_seconds`: between two requests the loop peeks for the first
//!   byte of the next one, bounded by the idle timeout (and ended by a shutdown).
//! * `client_header_timeout_seconds`: each request is served by
//!   `HttpProxy::process_new_http` raced against a deadline, from the connection's start
//!   (first request) or from the next request's first byte. The proxy creates its request
//!   context right after the head is parsed; `new_ctx` calls [`head_read`], which marks
//!   this task's head as complete, and the deadline then never fires. When it fires first,
//!   the unfinished head read is dropped and the connection closed.
//! * `client_write_timeout_seconds`: Pingora's own downstream write timeout, set on every
//!   session (it bounds each response body write; an expired write fails the request as a
//!   client error, which ends the upstream attempt and releases its connection). The
//!   small final flush of a response (the end of a chunked body) is not bounded by
//!   Pingora; every body write before it is.
//!
//! HTTP/2 connections (TLS with ALPN `h2`; the client listener is plain TCP today) are
//! left to Pingora's own loop.

use crate::metrics::CLIENT_TIMEOUTS;
use crate::proxy::BerryProxy;
use crate::snapshot::SnapshotCell;
use async_trait::async_trait;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream, ServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use pingora_proxy::HttpProxy;
use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

tokio::task_local! {
    /// Whether the request head of the request this connection task is serving was read.
    static HEAD_READ: Cell<bool>;
}

/// Marks the current request's head as read (disarms its header deadline). Called from
/// the proxy's `new_ctx`; does nothing outside the connection loop.
pub fn head_read() {
    let _ = HEAD_READ.try_with(|read| read.set(true));
}

/// The client listener's application: the proxy behind the limits of [`ClientLimits`].
pub struct ClientApp {
    proxy: Arc<HttpProxy<BerryProxy>>,
    snapshots: Arc<SnapshotCell>,
}

impl ClientApp {
    /// Serves client connections with `proxy`, under the limits of the snapshot `snapshots`
    /// holds when each request starts.
    pub fn new(proxy: HttpProxy<BerryProxy>, snapshots: Arc<SnapshotCell>) -> Self {
        ClientApp {
            proxy: Arc::new(proxy),
            snapshots,
        }
    }
}

/// The client limits of one request.
#[derive(Debug, Clone, Copy)]
struct ClientLimits {
    header: Duration,
    idle: Duration,
    write: Duration,
}

impl ClientLimits {
    fn current(cell: &SnapshotCell) -> Self {
        let snap = cell.load();
        let s = &snap.table.settings;
        ClientLimits {
            header: s.client_header_timeout,
            idle: s.client_idle_timeout,
            write: s.client_write_timeout,
        }
    }

    /// Pingora's keep-alive value (whole seconds; Pingora applies it to each read of a
    /// request head): longer than both of the loop's own deadlines, so those fire first.
    fn pingora_keepalive(self) -> u64 {
        self.idle.max(self.header).as_secs() + 1
    }
}

/// How the wait for the next request on a kept-alive connection ended.
enum NextRequest {
    /// Its first byte arrived (or the stream cannot peek: Pingora's keep-alive timeout
    /// bounds the wait instead).
    Arrived,
    /// Nothing within the idle timeout.
    Idle,
    /// The client closed the connection, or the server is shutting down.
    Closed,
}

/// Waits for the first byte of the next request, at most `idle`.
async fn next_request(
    stream: &mut Stream,
    idle: Duration,
    shutdown: &ShutdownWatch,
) -> NextRequest {
    if *shutdown.borrow() {
        return NextRequest::Closed;
    }
    let mut shutdown = shutdown.clone();
    let mut first = [0u8; 1];
    // `try_peek` reads one byte and puts it back (cancel-safe: a one-byte read either
    // completes in a poll or reads nothing).
    tokio::select! {
        peeked = tokio::time::timeout(idle, stream.try_peek(&mut first)) => match peeked {
            Ok(Ok(_)) => NextRequest::Arrived,
            Ok(Err(_)) => NextRequest::Closed,
            Err(_) => NextRequest::Idle,
        },
        _ = shutdown.changed() => NextRequest::Closed,
    }
}

/// How serving one request ended.
enum Served {
    /// Pingora finished the request; the connection, when it can be reused.
    Done(Option<ReusedHttpStream>),
    /// The request head did not arrive within the header timeout.
    HeadTimeout,
}

/// Runs `serve` (one request: head, proxying, response) unless its head is not read
/// within `deadline`.
async fn within_head_deadline<F>(serve: F, deadline: Duration) -> Served
where
    F: Future<Output = Option<ReusedHttpStream>>,
{
    HEAD_READ
        .scope(Cell::new(false), async move {
            let expiry = async {
                tokio::time::sleep(deadline).await;
                if HEAD_READ.try_with(Cell::get).unwrap_or(true) {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                biased;
                reused = serve => Served::Done(reused),
                () = expiry => Served::HeadTimeout,
            }
        })
        .await
}

#[async_trait]
impl ServerApp for ClientApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if stream.selected_alpn_proto() == Some(ALPN::H2) {
            return ServerApp::process_new(&self.proxy, stream, shutdown).await;
        }
        let mut stream = stream;
        let mut carried: Option<HttpPersistentSettings> = None;
        let mut first = true;
        loop {
            let limits = ClientLimits::current(&self.snapshots);
            if !first {
                match next_request(&mut stream, limits.idle, shutdown).await {
                    NextRequest::Arrived => {}
                    NextRequest::Idle => {
                        CLIENT_TIMEOUTS.with_label_values(&["idle"]).inc();
                        return None;
                    }
                    NextRequest::Closed => return None,
                }
            }
            first = false;
            let mut session = ServerSession::new_http1(stream);
            if let Some(settings) = carried.take() {
                settings.apply_to_session(&mut session);
            }
            // Keep-alive unless the service is stopping (as Pingora's own loop does).
            let keepalive = (!*shutdown.borrow()).then(|| limits.pingora_keepalive());
            session.set_keepalive(keepalive);
            session.set_write_timeout(Some(limits.write));
            let serve = self.proxy.process_new_http(session, shutdown);
            match within_head_deadline(serve, limits.header).await {
                Served::Done(Some(reused)) => (stream, carried) = reused.consume(),
                Served::Done(None) => return None,
                Served::HeadTimeout => {
                    CLIENT_TIMEOUTS.with_label_values(&["header"]).inc();
                    return None;
                }
            }
        }
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingora_keepalive_outlasts_both_deadlines() {
        let l = |header: f64, idle: f64| ClientLimits {
            header: Duration::from_secs_f64(header),
            idle: Duration::from_secs_f64(idle),
            write: Duration::from_secs(30),
        };
        assert_eq!(l(10.0, 60.0).pingora_keepalive(), 61);
        assert_eq!(l(10.0, 0.5).pingora_keepalive(), 11);
        assert_eq!(l(0.2, 0.5).pingora_keepalive(), 1);
    }

    #[tokio::test]
    async fn the_head_deadline_fires_only_before_the_head_is_read() {
        let slow = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            None
        };
        let r = within_head_deadline(slow, Duration::from_millis(20)).await;
        assert!(matches!(r, Served::HeadTimeout));
        let read_then_slow = async {
            head_read();
            tokio::time::sleep(Duration::from_millis(300)).await;
            None
        };
        let r = within_head_deadline(read_then_slow, Duration::from_millis(20)).await;
        assert!(matches!(r, Served::Done(None)));
        // outside the loop, marking a head read is a no-op
        head_read();
    }
}
