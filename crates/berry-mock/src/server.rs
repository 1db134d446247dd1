//! The network side: binding and closing the listener, the accept loop, and serving
//! each connection with hyper's HTTP/1 server.
//!
//! Connection contract:
//! * In [`Mode::ResetOnAccept`] a new connection is counted as accepted and closed at
//!   once with an RST (`SO_LINGER` 0), nothing read.
//! * Otherwise it is served by hyper (keep-alive, pipelining, chunked request bodies,
//!   `Expect: 100-continue`) until the client closes, an answer closes it, or
//!   [`stop_listening`] kills every connection. The kill is checked before hyper is
//!   polled, so a request that arrives on a pooled connection after
//!   `stop_listening` is never served.
//! * A handler can cut its connection ([`ConnCtl::reset`], an RST) or an answer body
//!   can abort it (see [`Step::Abort`](crate::body::Step::Abort)).
//! * After an answer that closes the connection, the mock half-closes and reads what
//!   the client still sends for up to 500 ms, so that the client reads the answer
//!   instead of an RST.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::handler::handle;
use crate::state::{lock, ListenerSlot, Shared};
use crate::Mode;

/// Most request headers hyper accepts (more get its own 431).
const MAX_HEADERS: usize = 128;
/// How long a closing connection drains what the client still sends.
const LINGER: Duration = Duration::from_millis(500);
/// Most bytes a closing connection drains.
const LINGER_BYTES: usize = 1024 * 1024;

/// Binds `addr` (SO_REUSEADDR) on the runtime of `handle`.
pub(crate) fn bind_listener(handle: &Handle, addr: SocketAddr) -> io::Result<TcpListener> {
    let _rt = handle.enter();
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Makes `listener` the mock's listener and starts its accept loop.
pub(crate) fn install(shared: &Arc<Shared>, listener: TcpListener) {
    let slot = Arc::new(ListenerSlot {
        listener: std::sync::Mutex::new(Some(listener)),
        stop: Notify::new(),
    });
    *lock(&shared.slot) = Some(slot.clone());
    shared.handle.spawn(accept_loop(shared.clone(), slot));
}

/// Closes the listening socket now (new connects are refused) and kills every open
/// connection. Idempotent.
pub(crate) fn stop_listening(shared: &Shared) {
    let slot = lock(&shared.slot).take();
    if let Some(slot) = slot {
        // Dropping the listener closes the socket synchronously.
        let listener = lock(&slot.listener).take();
        drop(listener);
        slot.stop.notify_one();
    }
    // A provider that went away has no live connections either.
    shared.kill.send_modify(|g| *g += 1);
}

fn poll_accept(slot: &ListenerSlot, cx: &mut Context<'_>) -> Poll<Option<io::Result<TcpStream>>> {
    match &*lock(&slot.listener) {
        None => Poll::Ready(None),
        Some(l) => l.poll_accept(cx).map(|r| Some(r.map(|(s, _)| s))),
    }
}

async fn accept_loop(shared: Arc<Shared>, slot: Arc<ListenerSlot>) {
    // Subscribed before the first accept: every connection this loop accepts sees a
    // `stop_listening` that happens after it, even one racing the accept itself.
    let killed = shared.kill.subscribe();
    let mut http = http1::Builder::new();
    http.title_case_headers(true)
        .auto_date_header(false)
        .max_headers(MAX_HEADERS)
        .header_read_timeout(None);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = slot.stop.notified() => return,
            r = poll_fn(|cx| poll_accept(&slot, cx)) => r,
        };
        match accepted {
            None => return,
            Some(Ok(sock)) => {
                tokio::spawn(serve_conn(
                    shared.clone(),
                    http.clone(),
                    sock,
                    killed.clone(),
                ));
            }
            Some(Err(_)) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// Control of one connection by its request handlers.
#[derive(Default)]
pub(crate) struct ConnCtl {
    reset: AtomicBool,
    cut: Notify,
}

impl ConnCtl {
    /// Closes the connection now with an RST, whatever hyper is doing.
    pub(crate) fn reset(&self) {
        self.reset.store(true, Ordering::Release);
        self.cut.notify_one();
    }
}

/// The socket as hyper sees it; closes with an RST when dropped after
/// [`ConnCtl::reset`].
struct ConnIo {
    sock: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.ctl.reset.load(Ordering::Acquire) {
            let _ = self.sock.set_zero_linger();
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().sock).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().sock).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().sock).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.sock.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().sock).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().sock).poll_shutdown(cx)
    }
}

/// Decrements the open-connection count when the connection ends.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one accepted connection until it closes or `killed` changes.
async fn serve_conn(
    shared: Arc<Shared>,
    http: http1::Builder,
    sock: TcpStream,
    mut killed: tokio::sync::watch::Receiver<u64>,
) {
    shared.accepted.fetch_add(1, Ordering::Relaxed);
    if shared.current_mode() == Mode::ResetOnAccept {
        let _ = sock.set_zero_linger();
        return;
    }
    let _ = sock.set_nodelay(true);
    shared.active.fetch_add(1, Ordering::Relaxed);
    let _active = ActiveGuard(shared.clone());
    let ctl = Arc::new(ConnCtl::default());
    let io = ConnIo {
        sock,
        ctl: ctl.clone(),
    };
    let service = {
        let (shared, ctl) = (shared.clone(), ctl.clone());
        service_fn(move |req| handle(shared.clone(), ctl.clone(), req))
    };
    let conn = http
        .serve_connection(TokioIo::new(io), service)
        .without_shutdown();
    let serve = async {
        // Ok: hyper is done with a connection that is still open (the client closed
        // it, or an answer said `Connection: close`).
        if let Ok(parts) = conn.await {
            linger_close(parts.io.into_inner()).await;
        }
    };
    tokio::select! {
        // Kill first: a request that arrives after `stop_listening` on a pooled
        // connection must never be served.
        biased;
        _ = killed.changed() => {}
        _ = ctl.cut.notified() => {}
        _ = serve => {}
    }
}

/// Half-closes and drains briefly so the peer reads our last response instead of
/// an RST.
async fn linger_close(mut io: ConnIo) {
    let _ = io.shutdown().await;
    let drain = async {
        let mut b = [0u8; 4096];
        let mut total = 0usize;
        while total < LINGER_BYTES {
            match io.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
