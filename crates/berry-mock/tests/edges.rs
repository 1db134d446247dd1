//! Connection-lifecycle cases of the hyper-based mock that tests/mock.rs does not
//! cover: hung requests release their connection, and `stop_listening` cuts a
//! stream in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may fail loudly

use std::io::Read;
use std::time::{Duration, Instant};

use berry_mock::{MockOptions, MockProvider, Mode};

use berry_test_support::{wait_for, Client};

#[test]
fn hung_request_releases_its_connection_when_the_client_closes() {
    let m = MockProvider::start_background(MockOptions::default()).unwrap();
    m.set_mode(Mode::Hang);
    let mut c = Client::connect(m.addr()).unwrap();
    c.send("POST", "/v1/chat/completions", &[], b"{}").unwrap();
    wait_for("the hung request", || m.hits() == 1);
    assert_eq!(m.active_connections(), 1);
    drop(c);
    wait_for("the connection to close", || m.active_connections() == 0);
}

#[test]
fn stop_listening_cuts_a_stream_in_flight() {
    let m = MockProvider::start_background(MockOptions {
        chunks: 50,
        chunk_interval: Duration::from_millis(20),
        ..MockOptions::default()
    })
    .unwrap();
    let mut c = Client::connect(m.addr()).unwrap();
    c.send("POST", "/v1/chat/completions", &[], br#"{"stream":true}"#)
        .unwrap();
    assert_eq!(c.line().unwrap().unwrap(), "HTTP/1.1 200 OK");
    m.stop_listening();
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = c.s.read_to_end(&mut rest);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(!rest.ends_with(b"0\r\n\r\n"), "stream must not complete");
    wait_for("no open connection", || m.active_connections() == 0);
}

#[test]
fn close_mid_stream_without_pauses_still_sends_the_head() {
    let m = MockProvider::start_background(MockOptions {
        chunk_interval: Duration::ZERO,
        ..MockOptions::default()
    })
    .unwrap();
    for n in [0, 1, 3] {
        let mode = format!("close:{n}");
        let r = Client::connect(m.addr()).unwrap().request(
            "POST",
            "/v1/chat/completions",
            &[("x-mock-mode", mode.as_str())],
            br#"{"stream":true}"#,
        );
        assert_eq!(r.status, 200);
        assert!(!r.complete);
        assert_eq!(r.sse_data().len(), n, "{mode}");
    }
}
