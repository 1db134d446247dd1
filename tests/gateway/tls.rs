//! HTTPS providers: TLS through rustls with SNI from `base_url`, certificate verification
//! against the trust store (here a throwaway CA via `SSL_CERT_FILE`), HTTP/2 offered by
//! ALPN (HTTP/1.1 only for streams that need the header deadline). The upstream is a TLS relay in front of the mock that records what the gateway
//! sent in its ClientHello.

use crate::harness::*;
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

/// Starts a TLS relay for `localhost` to `target`; returns its address and the CA (PEM).
fn tls_relay(target: SocketAddr, seen: Arc<Mutex<Vec<Hello>>>) -> (SocketAddr, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "berry test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    // The relay speaks HTTP/1.1 only (the mock behind it does).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);

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
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (config, seen) = (config.clone(), seen.clone());
                tokio::spawn(async move {
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
                });
            }
        });
    });
    (rx.recv().unwrap(), ca.pem())
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
