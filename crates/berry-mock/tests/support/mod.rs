//! Helpers shared by the dialect and fault test crates: starting mocks, one-shot
//! requests over a real loopback socket, and SSE parsing.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;

use berry_mock::{MockGuard, MockOptions, MockProvider};

pub use berry_test_support::{Client, Resp};

/// `anthropic-version` as Anthropic clients send it.
pub const VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

/// Starts a mock (panics when it cannot).
pub fn start(opts: MockOptions) -> MockGuard {
    MockProvider::start_background(opts).expect("start mock")
}

/// A mock with default options and no pause between streamed events.
pub fn mock() -> MockGuard {
    start(MockOptions {
        chunk_interval: std::time::Duration::ZERO,
        ..MockOptions::default()
    })
}

/// One request on a new connection.
pub fn req(
    m: &MockProvider,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    Client::connect(m.addr())
        .expect("connect")
        .request(method, path, headers, body.as_bytes())
}

/// `POST path` on a new connection.
pub fn post(m: &MockProvider, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    req(m, "POST", path, headers, body)
}

/// The mock's prompt-token count for a body.
pub fn p_of(body: &str) -> u64 {
    body.len() as u64 / 4 + 1
}

/// One parsed SSE event: its `event:` name and its `data:` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

impl Event {
    /// The payload as JSON (panics when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {:?}", self.data))
    }
}

/// The complete events of an SSE body (comments skipped; an unterminated last event
/// dropped).
pub fn events(r: &Resp) -> Vec<Event> {
    let text = r.text();
    let mut out = Vec::new();
    let mut blocks: Vec<&str> = text.split("\n\n").collect();
    blocks.pop(); // after the last blank line: empty, or an incomplete event
    for block in blocks {
        let mut name = None;
        let mut data: Option<String> = None;
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = Some(n.trim().to_string());
            } else if let Some(d) = line.strip_prefix("data:") {
                let d = d.strip_prefix(' ').unwrap_or(d);
                data = Some(match data {
                    Some(prev) => format!("{prev}\n{d}"),
                    None => d.to_string(),
                });
            }
        }
        if let Some(data) = data {
            out.push(Event { name, data });
        }
    }
    out
}

/// The event names of an Anthropic stream.
pub fn names(evs: &[Event]) -> Vec<&str> {
    evs.iter()
        .map(|e| e.name.as_deref().unwrap_or(""))
        .collect()
}
