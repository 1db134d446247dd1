//! How the gateway's requests look on the wire to the provider: the vendored Pingora patch
//! (vendor/pingora-core/BERRY-PATCH.md) sends an upstream request head and the body that
//! follows it in one TCP segment, on fresh and on pooled connections. Counted by the provider's kernel (`TCP_INFO.tcpi_data_segs_in`), so
//! the test cannot pass by timing.

use crate::harness::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::Duration;

/// Data segments the socket has received so far (Linux `TCP_INFO`).
fn data_segs_in(s: &TcpStream) -> u32 {
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a writable tcp_info of `len` bytes; the kernel writes at most `len`.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt(TCP_INFO)");
    info.tcpi_data_segs_in
}

/// One request read off the wire: its request line, body length and the data segments it
/// arrived in.
#[derive(Debug)]
struct Seen {
    line: String,
    body_len: usize,
    segments: u32,
}

/// An OpenAI-shaped upstream that reports, per POST request, how many data segments the
/// head and body arrived in. Every connection is kept alive and served in its own thread.
fn segment_counting_upstream() -> (SocketAddr, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(s) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || serve(s, tx));
        }
    });
    (addr, rx)
}

fn serve(mut s: TcpStream, tx: mpsc::Sender<Seen>) {
    let mut buf = Vec::new();
    // A fresh connection: the handshake carries no data.
    let mut counted = 0;
    loop {
        // One whole request: head, then Content-Length bytes of body.
        let (head_len, body_len) = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if buf.len() >= i + 4 + len {
                    break (i + 4, len);
                }
            }
            let mut chunk = [0u8; 65536];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let now = data_segs_in(&s);
        let line = String::from_utf8_lossy(&buf[..head_len])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        buf.drain(..head_len + body_len);
        if line.starts_with("POST ") {
            let _ = tx.send(Seen {
                line,
                body_len,
                segments: now - counted,
            });
        }
        counted = now;
        let body = r#"{"id":"chatcmpl-wire","object":"chat.completion","created":1,"model":"real","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn upstream_request_head_and_body_leave_in_one_segment() {
    let (addr, seen) = segment_counting_upstream();
    let cfg = format!(
        "{}\n{}\n[providers.p]\nbase_url = \"http://{addr}/v1\"\napi_key = \"sk-wire\"\n[models.m]\nname = \"client\"\n[[models.m.backends]]\nprovider = \"p\"\nmodel = \"real\"\n",
        quiet_settings(),
        user("u", "tok", ""),
    );
    let gw = Gateway::start(&cfg);
    let long = "x".repeat(600);
    let body = format!(
        r#"{{"model":"client","messages":[{{"role":"user","content":"{long}"}}],"max_tokens":5}}"#
    );
    // The first request opens the upstream connection, the next ones reuse it.
    for i in 0..3 {
        let r = gw.post("/v1/chat/completions", "tok", &body);
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        let s = seen.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(s.line.starts_with("POST /v1/chat/completions"), "{s:?}");
        assert!(s.body_len > 600, "{s:?}");
        assert_eq!(
            s.segments, 1,
            "request {i}: head and body in one send: {s:?}"
        );
    }
    // A body larger than the write buffer leaves after the head, whole.
    let long = "x".repeat(4096);
    let body = format!(
        r#"{{"model":"client","messages":[{{"role":"user","content":"{long}"}}],"max_tokens":5}}"#
    );
    let r = gw.post("/v1/chat/completions", "tok", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let s = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        s.body_len,
        body.len() - "client".len() + "real".len(),
        "{s:?}"
    );
    assert!(s.segments >= 2, "{s:?}");
}
