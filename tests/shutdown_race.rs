//! A request that arrived before a graceful shutdown began is served, not reset (the
//! carried pingora-proxy, vendor/pingora-proxy/BERRY-PATCH.md). Pingora 0.9.1 races a
//! request's first read against the shutdown notice and drops the connection when the
//! notice wins, and on a freshly accepted connection the first read is pending until the
//! reactor has seen the socket, however long the request has been waiting in it: the old
//! process of a graceful upgrade reset requests it had accepted. Loopback sockets; every
//! step waits on the peer or on the proxy's own answer, none on time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may fail loudly

use pingora_core::apps::HttpServerApp;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_http::ResponseHeader;
use pingora_proxy::{ProxyHttp, Session};
use std::io::{Read, Write};
use std::sync::Arc;

/// Answers every request itself with a 204.
struct Answering;

#[async_trait::async_trait]
impl ProxyHttp for Answering {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut (),
    ) -> pingora_core::Result<bool> {
        let head = ResponseHeader::build(204, Some(0))?;
        session.write_response_header(Box::new(head), true).await?;
        Ok(true)
    }
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora_core::Result<Box<pingora_core::upstreams::peer::HttpPeer>> {
        panic!("every request is answered by request_filter")
    }
}

/// A connection accepted on loopback after the client wrote `sent` (already in the
/// server socket's receive queue when this returns): the client end, and the server end
/// as Pingora's stream, registered with the current runtime.
fn accepted_after(sent: &[u8]) -> (std::net::TcpStream, pingora_core::protocols::Stream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client.write_all(sent).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    let server = tokio::net::TcpStream::from_std(server).unwrap();
    (client, Box::new(L4Stream::from(server)))
}

#[test]
fn a_request_waiting_when_shutdown_begins_is_served_and_an_idle_connection_closed() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conf = Arc::new(pingora_core::server::configuration::ServerConf::default());
        let app = Arc::new(pingora_proxy::http_proxy(&conf, Answering));
        // The service is shutting down before the connection's first read.
        app.http_cleanup().await;
        let (_tx, shutdown) = tokio::sync::watch::channel(true);

        let (mut client, stream) = accepted_after(b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n\r\n");
        let reused = app
            .process_new_http(ServerSession::new_http1(stream), &shutdown)
            .await;
        assert!(reused.is_none(), "no keep-alive while shutting down");
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 204"), "answer: {answer:?}");

        // A connection that has sent nothing is closed as before, without waiting.
        let (mut client, stream) = accepted_after(b"");
        let reused = app
            .process_new_http(ServerSession::new_http1(stream), &shutdown)
            .await;
        assert!(reused.is_none());
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).unwrap();
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    });
}
