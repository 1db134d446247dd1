//! What a held stream costs in the carried Pingora (vendor/pingora-core/BERRY-PATCH.md,
//! "Memory per open stream"): an HTTP/1 body read that waits holds no read buffer, a parsed
//! head keeps a copy of its own size rather than the buffer it was read into, a finished
//! body releases its buffer, and awaiting a connection does not carry the connect's (TLS
//! handshake's) state. Measured with this test binary's allocator, which counts the bytes
//! each thread has live, on loopback sockets; every read that must wait waits on a peer
//! that has nothing more to send, so no step depends on timing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may fail loudly

use pingora_core::protocols::http::v1::client::HttpSession as ClientSession;
use pingora_core::protocols::http::v1::server::HttpSession as ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::Stream;
use pingora_http::RequestHeader;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::io::{Read, Write};
use std::pin::pin;
use std::task::Poll;

/// The system allocator, counting per thread the bytes allocated minus the bytes freed.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialised thread-local Cell, which neither allocates nor panics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|l| l.set(l.get() + layout.size() as isize));
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|l| l.set(l.get() + layout.size() as isize));
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LIVE.try_with(|l| l.set(l.get() + new_size as isize - layout.size() as isize));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

/// A connected pair on loopback: the blocking end for the test's peer and the Pingora
/// stream over the other end (registered with the current runtime).
async fn pair() -> (std::net::TcpStream, Stream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    let server = tokio::net::TcpStream::from_std(server).unwrap();
    (client, Box::new(L4Stream::from(server)))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Reads from `peer` until `end` has arrived.
fn read_until(peer: &mut std::net::TcpStream, end: &[u8]) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(end.len()).any(|w| w == end) {
        let n = peer.read(&mut buf).unwrap();
        assert!(n > 0, "peer closed early");
        seen.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_response_body_read_that_waits_holds_no_read_buffer() {
    runtime().block_on(async {
        // The provider side is the blocking end; the gateway side is Pingora's client.
        let (mut provider, stream) = pair().await;
        let mut upstream = ClientSession::new(stream);
        let mut req = RequestHeader::build("GET", b"/v1/stream", None).unwrap();
        req.insert_header("Host", "provider").unwrap();
        upstream.write_request_header(Box::new(req)).await.unwrap();
        read_until(&mut provider, b"\r\n\r\n");
        provider
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                  transfer-encoding: chunked\r\n\r\n",
            )
            .unwrap();

        let before_head = live();
        upstream.read_response().await.unwrap();
        let head_kept = live() - before_head;
        // The head is ~80 bytes; its parsed form (header map, names, values) a few hundred.
        // Keeping the 4 KiB it was read into would be 4,096 more.
        assert!(
            head_kept < 2048,
            "a parsed response head keeps {head_kept} bytes"
        );

        provider.write_all(b"7\r\ndata: 1\r\n").unwrap();
        let first = upstream.read_body_bytes().await.unwrap().unwrap();
        assert_eq!(&first[..], b"data: 1");

        // The next event has not been sent: the read is pending. While it waits, the reader
        // holds no buffer of its own (Pingora 0.9.1 holds its 64 KiB read buffer here).
        let before_wait = live();
        {
            let mut next = pin!(upstream.read_body_bytes());
            let polled = std::future::poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx))).await;
            assert!(polled.is_pending(), "no event was sent, the read must wait");
            let held_while_waiting = live() - before_wait;
            assert!(
                held_while_waiting < 1024,
                "a waiting body read holds {held_while_waiting} bytes"
            );

            // The stream goes on: the next event arrives and is read whole, then the end.
            provider.write_all(b"7\r\ndata: 2\r\n0\r\n\r\n").unwrap();
            let second = next.await.unwrap().unwrap();
            assert_eq!(&second[..], b"data: 2");
        }
        let before_end = live();
        assert!(upstream.read_body_bytes().await.unwrap().is_none());
        // A finished body gives its read buffer back (the connection may go to the pool).
        assert!(
            live() <= before_end,
            "the finished body kept {} bytes",
            live() - before_end
        );
    });
}

#[test]
fn a_request_head_keeps_its_own_size_and_a_read_body_releases_its_buffer() {
    runtime().block_on(async {
        let (mut client, stream) = pair().await;
        let body = "x".repeat(1200);
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        client.write_all(request.as_bytes()).unwrap();
        let before = live();
        let mut downstream = ServerSession::new(stream);
        let session_itself = live() - before;
        assert!(downstream.read_request().await.unwrap().is_some());
        let mut read = 0;
        while let Some(chunk) = downstream.read_body_bytes().await.unwrap() {
            read += chunk.len();
        }
        assert_eq!(read, body.len());
        // What stays for the rest of the request (a long response): the parsed head (~2.3 KiB
        // here) and a copy of its ~130 bytes, not also the 4 KiB buffer the head and body
        // were read into.
        let kept = live() - before - session_itself;
        assert!(kept < 4096, "a read request keeps {kept} bytes");
    });
}

#[test]
fn awaiting_an_upstream_connection_does_not_carry_the_connect_state() {
    // The future a proxied request keeps for its whole life awaits this one while it
    // connects; Pingora 0.9.1's is 8.8 KiB (a TLS handshake inline), boxed here.
    let connector = pingora_core::connectors::http::Connector::new(None);
    let peer = pingora_core::upstreams::peer::HttpPeer::new("127.0.0.1:9", true, "x".into());
    let fut = connector.get_http_session(&peer);
    let size = std::mem::size_of_val(&fut);
    assert!(size < 3 * 1024, "get_http_session's future is {size} bytes");
}

#[test]
fn an_upstream_connection_holds_no_write_buffer_once_its_request_went_out() {
    runtime().block_on(async {
        // Upstream connections get a write buffer, so a request head and a small body leave
        // in one send; once they went out, the buffer is given back (Pingora 0.9.1 keeps
        // its 1,460 bytes for the connection's life, a held stream's included).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connector = pingora_core::connectors::TransportConnector::new(None);
        let peer = pingora_core::upstreams::peer::HttpPeer::new(addr, false, String::new());
        let stream = connector.new_stream(&peer).await.unwrap();
        let (mut provider, _) = listener.accept().unwrap();
        let mut upstream = ClientSession::new(stream);
        let body = bytes::Bytes::from("x".repeat(300));
        let mut req = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        req.insert_header("Host", "provider").unwrap();
        req.insert_header("Content-Length", body.len()).unwrap();

        let before = live();
        upstream.write_request_header(Box::new(req)).await.unwrap();
        upstream.write_body(&body).await.unwrap();
        upstream.finish_body().await.unwrap();
        read_until(&mut provider, &body[280..]);
        let kept = live() - before;
        assert!(
            kept < 1024,
            "a connection whose request went out keeps {kept} bytes"
        );
    });
}

/// A hook-less proxy (the engine floor's), for the size of Pingora's request future.
struct Floor;

#[async_trait::async_trait]
impl pingora_proxy::ProxyHttp for Floor {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(
        &self,
        _session: &mut pingora_proxy::Session,
        _ctx: &mut (),
    ) -> pingora_core::Result<Box<pingora_core::upstreams::peer::HttpPeer>> {
        Ok(Box::new(pingora_core::upstreams::peer::HttpPeer::new(
            "127.0.0.1:9",
            false,
            String::new(),
        )))
    }
}

#[test]
fn a_proxied_requests_future_is_sized_by_its_http1_path() {
    // The future a proxied request keeps for its whole life (a held stream's too).
    // Pingora 0.9.1's is 8.8 KiB for a hook-less proxy (2.9 KiB patched): the client
    // session inline twice, the proxy session twice, the upstream session three times, and
    // room for the h2, custom-protocol, per-batch and end-of-request paths a held HTTP/1
    // stream is not in.
    use pingora_core::apps::HttpServerApp;
    runtime().block_on(async {
        let conf = std::sync::Arc::new(pingora_core::server::configuration::ServerConf::default());
        let app = std::sync::Arc::new(pingora_proxy::http_proxy(&conf, Floor));
        let (_client, server) = tokio::io::duplex(1024);
        let session = pingora_core::protocols::http::ServerSession::new_http1(Box::new(server));
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let fut = app.process_new_http(session, &shutdown);
        let size = std::mem::size_of_val(&*fut);
        assert!(size < 4 * 1024, "process_new_http's future is {size} bytes");
    });
}
