//! HTTPS providers: TLS through rustls with SNI from `base_url`, certificate verification
//! against the trust store (here a throwaway CA via `SSL_CERT_FILE`), HTTP/2 offered by
//! ALPN (HTTP/1.1 only for streams that need the header deadline). The upstream is a TLS relay in front of the mock that records what the gateway
//! sent in its ClientHello.

use crate::harness::*;
#[allow(dead_code)] // each test binary uses part of the helper
#[path = "../common/test_ca.rs"]
mod test_ca;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::ServerConfig;
use tokio_rustls::LazyConfigAcceptor;

/// What the relay saw of each TLS client.
#[derive(Debug, Clone, Default)]
struct Hello {
    sni: Option<String>,
    alpn: Vec<String>,
}

/// A TLS server config for `localhost` with a throwaway CA, speaking `alpn`; returns it
/// and the CA (PEM).
fn server_config(alpn: &[&[u8]]) -> (Arc<ServerConfig>, String) {
    let cert = test_ca::issue("berry test CA", "localhost");
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der)),
        )
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let config = Arc::new(config);
    (config, cert.ca_pem)
}

/// Serves every TCP connection to a fresh loopback port with `on_conn`, on a one-thread
/// runtime of its own; returns the address.
fn serve_tcp<F, Fut>(on_conn: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(on_conn(tcp));
            }
        });
    });
    rx.recv().unwrap()
}

/// Starts a TLS relay for `localhost` to `target`; returns its address and the CA (PEM).
/// The relay speaks HTTP/1.1 only (the mock behind it does).
fn tls_relay(target: SocketAddr, seen: Arc<Mutex<Vec<Hello>>>) -> (SocketAddr, String) {
    let (config, ca_pem) = server_config(&[b"http/1.1"]);
    let addr = serve_tcp(move |tcp| {
        let (config, seen) = (config.clone(), seen.clone());
        async move {
            let acceptor = LazyConfigAcceptor::new(Default::default(), tcp);
            let Ok(start) = acceptor.await else { return };
            let hello = start.client_hello();
            seen.lock().unwrap().push(Hello {
                sni: hello.server_name().map(str::to_string),
                alpn: hello
                    .alpn()
                    .map(|a| a.map(|p| String::from_utf8_lossy(p).into_owned()).collect())
                    .unwrap_or_default(),
            });
            let Ok(mut tls) = start.into_stream(config).await else {
                return;
            };
            let Ok(mut up) = TcpStream::connect(target).await else {
                return;
            };
            let _ = copy_bidirectional(&mut tls, &mut up).await;
        }
    });
    (addr, ca_pem)
}

/// A config with one HTTPS provider behind the relay; streams have a 1 s header deadline
/// and a 5 s idle timeout.
fn tls_config(relay: SocketAddr) -> String {
    format!(
        "{}\n{}\n[providers.secure]\nbase_url = \"https://localhost:{}/v1\"\napi_key = \"sk-tls\"\n[models.m]\nname = \"x\"\n[[models.m.backends]]\nprovider = \"secure\"\nmodel = \"r\"\n",
        FAST_SETTINGS
            .replace("request_timeout_seconds = 2", "request_timeout_seconds = 1")
            .replace("stream_idle_timeout_seconds = 2", "stream_idle_timeout_seconds = 5"),
        user("u", "tok", ""),
        relay.port()
    )
}

#[test]
fn https_provider_with_sni_verification_and_alpn() {
    let m = mock("behind-tls");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (relay, ca_pem) = tls_relay(m.addr(), seen.clone());
    let dir = temp_dir("tls");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_pem).unwrap();
    let cfg = tls_config(relay);
    let ca = ca_path.to_string_lossy().to_string();
    let trust = [("SSL_CERT_FILE", ca.as_str())];

    // Non-stream requests (and health checks) offer h2 first.
    let gw = Gateway::start_with(&cfg, "toml", &[], &trust);
    let r = gw.chat("tok", "x");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["system_fingerprint"], "behind-tls");
    let seen_req = m.last_request().unwrap();
    assert_eq!(
        seen_req.header("host"),
        Some(format!("localhost:{}", relay.port()).as_str())
    );
    drop(gw);
    let hellos = std::mem::take(&mut *seen.lock().unwrap());
    assert!(!hellos.is_empty());
    for h in &hellos {
        assert_eq!(h.sni.as_deref(), Some("localhost"), "{h:?}");
        assert_eq!(
            h.alpn,
            ["h2", "http/1.1"],
            "h2 must be offered first: {h:?}"
        );
    }

    // Streams with a header deadline shorter than the idle timeout stay on HTTP/1.1, where
    // the deadline is enforced per connection: a hung provider gets 504 after the 1 s
    // attempt timeout, not after the 5 s idle timeout.
    let gw = Gateway::start_with(&cfg, "toml", &[], &trust);
    let stream = gw.chat_stream("tok", "x");
    assert_eq!(stream.sse_data().last().map(String::as_str), Some("[DONE]"));
    let hellos = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        hellos
            .iter()
            .any(|h| h.alpn == ["http/1.1"] && h.sni.as_deref() == Some("localhost")),
        "the stream's connection offers HTTP/1.1 only: {hellos:?}"
    );
    m.set_mode(berry_mock::Mode::Hang);
    let t0 = std::time::Instant::now();
    let r = gw.chat_stream("tok", "x");
    let took = t0.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(took < std::time::Duration::from_millis(3500), "{took:?}");
    m.set_mode(berry_mock::Mode::Ok);
    drop(gw);

    // an untrusted certificate is refused: 502, never a silent downgrade to plain text
    let gw = Gateway::start(&cfg);
    let r = gw.chat("tok", "x");
    assert_eq!(r.status, 502, "{}", r.text());
    let _ = std::fs::remove_dir_all(dir);
}

/// What the HTTP/2 provider saw of each request: method, path, body.
type Seen2 = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// Starts an HTTPS provider for `localhost` that speaks HTTP/2 only (ALPN `h2`) and answers
/// every POST with a chat completion; returns its address, the CA (PEM) and what it saw.
fn h2_provider() -> (SocketAddr, String, Seen2) {
    let (config, ca_pem) = server_config(&[b"h2"]);
    let seen: Seen2 = Arc::default();
    let record = seen.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let addr = serve_tcp(move |tcp| {
        let (acceptor, record) = (acceptor.clone(), record.clone());
        async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let Ok(mut conn) = h2::server::handshake(tls).await else {
                return;
            };
            while let Some(Ok((req, respond))) = conn.accept().await {
                tokio::spawn(answer_h2(req, respond, record.clone()));
            }
        }
    });
    (addr, ca_pem, seen)
}

/// Reads one HTTP/2 request whole, records it and answers with a chat completion.
async fn answer_h2(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<bytes::Bytes>,
    record: Seen2,
) {
    let (head, mut body) = req.into_parts();
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        bytes.extend_from_slice(&chunk);
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    record
        .lock()
        .unwrap()
        .push((head.method.to_string(), head.uri.path().to_string(), bytes));
    let answer = r#"{"id":"chatcmpl-h2","object":"chat.completion","created":1,"model":"r","system_fingerprint":"over-h2","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
    let resp = http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    if let Ok(mut send) = respond.send_response(resp, false) {
        let _ = send.send_data(bytes::Bytes::from_static(answer.as_bytes()), true);
    }
}

/// An HTTPS provider that speaks HTTP/2: requests (with their bodies) and answers go through
/// on one multiplexed connection, over the buffered upstream stream of the vendored
/// Pingora patch (vendor/pingora-core/BERRY-PATCH.md), whose every write path must flush.
#[test]
fn https_provider_over_http2() {
    let (addr, ca_pem, seen) = h2_provider();
    let dir = temp_dir("tls-h2");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_pem).unwrap();
    let ca = ca_path.to_string_lossy().to_string();
    let gw = Gateway::start_with(
        &tls_config(addr),
        "toml",
        &[],
        &[("SSL_CERT_FILE", ca.as_str())],
    );
    for i in 0..3 {
        let r = gw.chat("tok", "x");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.json()["system_fingerprint"], "over-h2", "{}", r.text());
    }
    let posts: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, _)| m == "POST")
        .cloned()
        .collect();
    assert_eq!(posts.len(), 3, "{posts:?}");
    for (_, path, body) in &posts {
        assert_eq!(path, "/v1/chat/completions");
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            body["model"], "r",
            "the whole, spliced body reached the provider: {body}"
        );
    }
    drop(gw);
    let _ = std::fs::remove_dir_all(dir);
}
