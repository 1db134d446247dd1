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
//!   context right after the head is parsed and reports it ([`request_scope::head_read`]),
//!   and the deadline then never fires. When it fires first, the unfinished head read is
//!   dropped and the connection closed.
//! * The upstream header deadline of a streaming attempt is handed to the loop
//!   ([`request_scope::watch_upstream_deadline`]) and polled next to the request with a
//!   third per-connection timer, so no stream needs a task of its own for it.
//! * `client_write_timeout_seconds`: Pingora's own downstream write timeout, set on every
//!   session (it bounds each response body write; an expired write fails the request as a
//!   client error, which ends the upstream attempt and releases its connection). The
//!   small final flush of a response (the end of a chunked body) is not bounded by
//!   Pingora; every body write before it is.
//!
//! HTTP/2 connections (TLS with ALPN `h2`; the client listener is plain TCP today) are
//! left to Pingora's own loop.
//!
//! The loop knows the proxy only as a Pingora [`HttpServerApp`]; everything the two say to
//! each other about a request goes through [`crate::request_scope`].

use crate::metrics::CLIENT_TIMEOUTS;
use crate::request_scope;
use crate::snapshot::SnapshotCell;
use async_trait::async_trait;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream, ServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The client listener's application: the proxy (any Pingora HTTP application) behind the
/// limits of [`ClientLimits`].
pub struct ClientApp<A> {
    proxy: Arc<A>,
    snapshots: Arc<SnapshotCell>,
}

impl<A> ClientApp<A> {
    /// Serves client connections with `proxy`, under the limits of the snapshot `snapshots`
    /// holds when each request starts.
    pub fn new(proxy: A, snapshots: Arc<SnapshotCell>) -> Self {
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
    /// Nothing before `idle` expired.
    Idle,
    /// The client closed the connection, or the server is shutting down.
    Closed,
}

/// Waits for the first byte of the next request, until `idle` expires or `stopping` (the
/// connection's shutdown notification) completes. Neither is polled again by the caller
/// once it completed: a `Closed` answer ends the connection.
async fn next_request<S>(
    stream: &mut Stream,
    idle: Pin<&mut Sleep>,
    stopping: Pin<&mut S>,
    shutdown: &ShutdownWatch,
) -> NextRequest
where
    S: Future,
{
    if *shutdown.borrow() {
        return NextRequest::Closed;
    }
    let mut first = [0u8; 1];
    // `try_peek` reads one byte and puts it back (cancel-safe: a one-byte read either
    // completes in a poll or reads nothing). Polled first: a request already waiting is
    // taken without looking at the timer or the shutdown signal.
    tokio::select! {
        biased;
        peeked = stream.try_peek(&mut first) => match peeked {
            Ok(_) => NextRequest::Arrived,
            Err(_) => NextRequest::Closed,
        },
        () = idle => NextRequest::Idle,
        _ = stopping => NextRequest::Closed,
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
/// before `deadline` expires. `deadline` may fire later (the request runs on past it):
/// once the head is read, its expiry changes nothing. Meanwhile fires the upstream header
/// deadline the request arms ([`request_scope::watch_upstream_deadline`]) with `upstream`,
/// a timer moved to each armed deadline.
async fn within_head_deadline<F>(
    serve: F,
    mut deadline: Pin<&mut Sleep>,
    mut upstream: Pin<&mut Sleep>,
) -> Served
where
    F: Future<Output = Option<ReusedHttpStream>>,
{
    request_scope::run(async move {
        // Once the head is read the deadline is not even polled again (the task is woken
        // for every step of the proxying; the timer needs no new waker).
        let expiry = std::future::poll_fn(|cx| {
            if request_scope::was_head_read() {
                return Poll::Pending;
            }
            deadline.as_mut().poll(cx)
        });
        // Never completes: a fired deadline shuts the upstream socket down, and the request
        // (`serve`) fails its read and goes on from there.
        let mut timer_set_for = 0;
        let upstream_deadline = std::future::poll_fn(|cx| -> Poll<Infallible> {
            let Some((armed, arming)) = request_scope::armed_upstream_deadline() else {
                return Poll::Pending;
            };
            if timer_set_for != arming {
                upstream.as_mut().reset(armed.at());
                timer_set_for = arming;
            }
            if upstream.as_mut().poll(cx).is_ready() {
                armed.fire();
                request_scope::forget_upstream_deadline();
            }
            Poll::Pending
        });
        tokio::select! {
            biased;
            reused = serve => Served::Done(reused),
            () = expiry => Served::HeadTimeout,
            never = upstream_deadline => match never {},
        }
    })
    .await
}

/// Moves `timer` to `after` from now. The connection keeps one timer per deadline kind and
/// moves it for every request: a deadline later than the registered one only updates the
/// timer in place (no timer-wheel work, no allocation), where a fresh `Sleep` per request
/// would register and deregister an entry each time.
fn rearm(timer: Pin<&mut Sleep>, after: Duration) {
    timer.reset(Instant::now() + after);
}

/// The request future of `proxy` for the next request on `stream`, with the settings
/// carried over from the previous request and the client limits applied. A plain function,
/// so the session it makes is moved into the (boxed) future at once and never has room
/// kept for it in the connection loop's future, which lives as long as the connection.
fn start_request<'a, A>(
    proxy: &'a Arc<A>,
    stream: Stream,
    carried: Option<HttpPersistentSettings>,
    limits: ClientLimits,
    shutdown: &'a ShutdownWatch,
) -> Pin<Box<dyn Future<Output = Option<ReusedHttpStream>> + Send + 'a>>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    let mut session = ServerSession::new_http1(stream);
    if let Some(settings) = carried {
        settings.apply_to_session(&mut session);
    }
    // Keep-alive unless the service is stopping (as Pingora's own loop does).
    let keepalive = (!*shutdown.borrow()).then(|| limits.pingora_keepalive());
    session.set_keepalive(keepalive);
    session.set_write_timeout(Some(limits.write));
    proxy.process_new_http(session, shutdown)
}

#[async_trait]
impl<A> ServerApp for ClientApp<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
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
        // Per-connection state, set up once: the deadline timers (idle and header, armed by
        // `rearm` before each use; upstream, moved to each armed upstream deadline) and one
        // registration for the shutdown notification.
        let mut idle = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let mut header = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let mut upstream = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let mut watch = shutdown.clone();
        let mut stopping = std::pin::pin!(watch.changed());
        loop {
            let limits = ClientLimits::current(&self.snapshots);
            if !first {
                rearm(idle.as_mut(), limits.idle);
                match next_request(&mut stream, idle.as_mut(), stopping.as_mut(), shutdown).await {
                    NextRequest::Arrived => {}
                    NextRequest::Idle => {
                        CLIENT_TIMEOUTS.with_label_values(&["idle"]).inc();
                        return None;
                    }
                    NextRequest::Closed => return None,
                }
            }
            first = false;
            let serve = start_request(&self.proxy, stream, carried.take(), limits, shutdown);
            rearm(header.as_mut(), limits.header);
            match within_head_deadline(serve, header.as_mut(), upstream.as_mut()).await {
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
    use crate::request_scope::head_read;

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

    /// Paused time: the runtime jumps to the next timer, so 20 ms always ends before
    /// 300 ms, however loaded the machine.
    #[tokio::test(start_paused = true)]
    async fn the_head_deadline_fires_only_before_the_head_is_read() {
        let slow = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            None
        };
        let deadline = std::pin::pin!(tokio::time::sleep(Duration::from_millis(20)));
        let upstream = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let r = within_head_deadline(slow, deadline, upstream).await;
        assert!(matches!(r, Served::HeadTimeout));
        let read_then_slow = async {
            head_read();
            tokio::time::sleep(Duration::from_millis(300)).await;
            None
        };
        let deadline = std::pin::pin!(tokio::time::sleep(Duration::from_millis(20)));
        let upstream = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let r = within_head_deadline(read_then_slow, deadline, upstream).await;
        assert!(matches!(r, Served::Done(None)));
        // outside the loop, marking a head read is a no-op
        head_read();
    }

    #[tokio::test]
    async fn the_loop_fires_an_armed_upstream_deadline_and_forgets_a_dropped_one() {
        use std::io::Read;
        use std::os::fd::AsFd;
        let connected = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (peer, _) = listener.accept().unwrap();
            (ours, peer)
        };
        // armed inside the request and already due: the loop shuts the socket down, and
        // the request sees its watchdog fired
        let (ours, mut peer) = connected();
        let serve = async {
            head_read();
            let w = crate::proxy::watchdog::Watchdog::arm(ours.as_fd(), Duration::ZERO).unwrap();
            for _ in 0..1000 {
                if w.fired() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert!(w.fired());
            None
        };
        let header = std::pin::pin!(tokio::time::sleep(Duration::from_secs(3600)));
        let upstream = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let r = within_head_deadline(serve, header, upstream).await;
        assert!(matches!(r, Served::Done(None)));
        assert_eq!(peer.read(&mut [0u8; 8]).unwrap(), 0);

        // armed and dropped before it is due: nothing happens to the socket
        let (ours, peer) = connected();
        let serve = async {
            head_read();
            let w = crate::proxy::watchdog::Watchdog::arm(ours.as_fd(), Duration::ZERO).unwrap();
            drop(w);
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            None
        };
        let header = std::pin::pin!(tokio::time::sleep(Duration::from_secs(3600)));
        let upstream = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let r = within_head_deadline(serve, header, upstream).await;
        assert!(matches!(r, Served::Done(None)));
        peer.set_nonblocking(true).unwrap();
        let e = (&peer).read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "still open: {e}");
    }
}
