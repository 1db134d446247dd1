//! A byte-for-byte TCP tap between the gateway and a mock provider: it forwards both
//! directions unchanged and keeps a copy, so a test can read back every request the
//! gateway sent and the usage the provider reported in each answer (`usage` of a JSON body
//! or of any SSE event), paired by the `x-request-id` the gateway forwards upstream.
//!
//! Written here rather than with an HTTP proxy crate: the point is to see the bytes
//! exactly as they crossed the wire, with no client or server library in between.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Token counts of one answer, in the gateway's four types: `input` excludes cache reads
/// and writes (OpenAI `prompt_tokens` minus `cached_tokens`; Anthropic `input_tokens`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl Usage {
    /// USD at `p` = (input, output, cache_read, cache_write) USD per million tokens,
    /// summed in the order the gateway sums them.
    pub fn cost(&self, p: (f64, f64, f64, f64)) -> f64 {
        (self.input as f64 * p.0
            + self.output as f64 * p.1
            + self.cache_read as f64 * p.2
            + self.cache_write as f64 * p.3)
            / 1e6
    }

    /// Field-wise sum.
    pub fn add(&self, o: &Usage) -> Usage {
        Usage {
            input: self.input + o.input,
            output: self.output + o.output,
            cache_read: self.cache_read + o.cache_read,
            cache_write: self.cache_write + o.cache_write,
        }
    }
}

/// One request the gateway sent upstream and what came back (possibly cut short).
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    /// The request's `x-request-id` (the gateway's request id).
    pub request_id: Option<String>,
    /// The request body as sent upstream.
    pub body: Vec<u8>,
    /// 0 when no response head came back.
    pub status: u16,
    /// The usage the provider reported (`None`: no usage object in what came back).
    pub usage: Option<Usage>,
    /// Bytes of generated text (`text` of Anthropic `text_delta`s, OpenAI `content` of
    /// deltas) in what came back.
    pub text_bytes: usize,
    /// The response ended as its framing says (length or last chunk).
    pub complete: bool,
}

/// The bytes of one tapped connection, each direction.
#[derive(Default)]
struct Conn {
    up: Vec<u8>,
    down: Vec<u8>,
}

/// The tap: listens on a loopback port and forwards each connection to `upstream`.
pub struct Tap {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Arc<Mutex<Conn>>>>>,
    stop: Arc<AtomicBool>,
}

impl Tap {
    /// Starts a tap in front of `upstream` (the kernel picks its port).
    pub fn start(upstream: SocketAddr) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tap");
        let addr = listener.local_addr().expect("tap addr");
        let conns: Arc<Mutex<Vec<Arc<Mutex<Conn>>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (conns.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let conn = Arc::new(Mutex::new(Conn::default()));
                c.lock().unwrap().push(conn.clone());
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let conn2 = conn.clone();
                std::thread::spawn(move || pump(client, server, conn, true));
                std::thread::spawn(move || pump(s2, c2, conn2, false));
            }
        });
        Tap { addr, conns, stop }
    }

    /// `http://ADDR/v1`: a provider's `base_url` reaching the mock through the tap.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request seen so far with its answer, connection by connection, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        let conns = self.conns.lock().unwrap().clone();
        let mut out = Vec::new();
        for c in conns {
            let c = c.lock().unwrap();
            out.extend(exchanges_of(&c.up, &c.down));
        }
        out
    }

    /// The exchange of gateway request `id`; panics when there is none or several.
    pub fn exchange(&self, id: &str) -> Exchange {
        let mut found: Vec<Exchange> = self
            .exchanges()
            .into_iter()
            .filter(|e| e.request_id.as_deref() == Some(id))
            .collect();
        assert_eq!(found.len(), 1, "upstream exchanges of request {id}");
        found.remove(0)
    }

    /// Exchanges whose path ends with `suffix` (health probes and others left out).
    pub fn calls(&self, suffix: &str) -> Vec<Exchange> {
        self.exchanges()
            .into_iter()
            .filter(|e| e.path.split('?').next().unwrap_or("").ends_with(suffix))
            .collect()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wakes the accept loop so it sees `stop`
        let _ = TcpStream::connect(self.addr);
    }
}

/// One `berry::access` line: what the gateway charged a request.
#[derive(Clone, Debug)]
pub struct Access {
    pub request_id: String,
    pub user: String,
    pub model: String,
    pub status: u16,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// As logged (6 decimals).
    pub cost_usd: String,
    pub estimated: bool,
}

/// The access lines of `log`.
pub fn access_lines(log: &str) -> Vec<Access> {
    log.lines()
        .filter(|l| l.contains("berry::access]"))
        .map(|l| {
            let field = |k: &str| {
                let key = format!(" {k}=");
                l.find(&key)
                    .map(|i| &l[i + key.len()..])
                    .and_then(|v| v.split(' ').next())
                    .unwrap_or_else(|| panic!("no {k} in {l}"))
                    .to_string()
            };
            Access {
                request_id: field("request_id"),
                user: field("user"),
                model: field("model"),
                status: field("status").parse().unwrap(),
                tokens_in: field("tokens_in").parse().unwrap(),
                tokens_out: field("tokens_out").parse().unwrap(),
                cost_usd: field("cost_usd"),
                estimated: field("estimated") == "true",
            }
        })
        .collect()
}

/// Copies `from` → `to`, recording each read before it is forwarded (so whatever the
/// receiver has read is already recorded); either side closing closes both.
fn pump(mut from: TcpStream, mut to: TcpStream, conn: Arc<Mutex<Conn>>, up: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut c = conn.lock().unwrap();
            let side = if up { &mut c.up } else { &mut c.down };
            side.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// One HTTP/1.1 message parsed from the front of a byte stream.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    complete: bool,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the message at the front of `buf`; returns it and the bytes after it.
fn message(buf: &[u8], bodyless: bool) -> Option<(Message, &[u8])> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut rest = &buf[end + 4..];
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut m = Message {
        start,
        headers,
        body: Vec::new(),
        complete: true,
    };
    if bodyless {
        return Some((m, rest));
    }
    if let Some(n) = m
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let take = n.min(rest.len());
        m.body = rest[..take].to_vec();
        m.complete = take == n;
        return Some((m, &rest[take..]));
    }
    if m.header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        m.complete = false;
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = String::from_utf8_lossy(&rest[..eol]);
            let size = size.split(';').next().unwrap_or("").trim().to_string();
            let Ok(size) = usize::from_str_radix(&size, 16) else {
                break;
            };
            rest = &rest[eol + 2..];
            if size == 0 {
                // no trailers from our peers: the final CRLF
                rest = rest.strip_prefix(b"\r\n".as_slice()).unwrap_or(rest);
                m.complete = true;
                break;
            }
            let take = size.min(rest.len());
            m.body.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if take < size {
                break;
            }
            rest = rest.strip_prefix(b"\r\n".as_slice()).unwrap_or(rest);
        }
        return Some((m, rest));
    }
    // read to the end of the connection
    m.body = rest.to_vec();
    Some((m, &[]))
}

/// Pairs the requests of `up` with the responses of `down`.
fn exchanges_of(mut up: &[u8], mut down: &[u8]) -> Vec<Exchange> {
    let mut out = Vec::new();
    while let Some((req, rest)) = message(up, false) {
        up = rest;
        let mut parts = req.start.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut ex = Exchange {
            request_id: req.header("x-request-id").map(str::to_string),
            body: req.body.clone(),
            status: 0,
            usage: None,
            text_bytes: 0,
            complete: false,
            method,
            path,
        };
        if let Some((resp, rest)) = message(down, ex.method == "HEAD") {
            down = rest;
            ex.status = resp
                .start
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            ex.complete = resp.complete;
            let (usage, text) = reported(&resp.body);
            ex.usage = usage;
            ex.text_bytes = text;
        }
        out.push(ex);
    }
    out
}

/// The usage reported in a JSON body or in the `data:` events of an SSE body (later
/// counts replace earlier ones field by field, as Anthropic's `message_delta` does), and
/// the generated-text bytes.
fn reported(body: &[u8]) -> (Option<Usage>, usize) {
    let text = String::from_utf8_lossy(body);
    let docs: Vec<serde_json::Value> = match serde_json::from_str(&text) {
        Ok(v) => vec![v],
        Err(_) => text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect(),
    };
    let mut usage: Option<Usage> = None;
    let mut text_bytes = 0;
    for v in &docs {
        for u in [&v["usage"], &v["message"]["usage"]] {
            if u.is_object() {
                merge(usage.get_or_insert_with(Usage::default), u);
            }
        }
        if let Some(t) = v["delta"]["text"].as_str() {
            text_bytes += t.len();
        }
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text_bytes += t.len();
        }
    }
    (usage, text_bytes)
}

/// Sets the counts `u` (Anthropic or OpenAI chat field names) carries.
fn merge(into: &mut Usage, u: &serde_json::Value) {
    let n = |k: &str| u[k].as_u64();
    if let Some(x) = n("input_tokens") {
        into.input = x;
    }
    if let Some(x) = n("output_tokens") {
        into.output = x;
    }
    if let Some(x) = n("cache_read_input_tokens") {
        into.cache_read = x;
    }
    if let Some(x) = n("cache_creation_input_tokens") {
        into.cache_write = x;
    }
    if let Some(p) = n("prompt_tokens") {
        let cached = u["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0);
        into.input = p - cached;
        into.cache_read = cached;
    }
    if let Some(x) = n("completion_tokens") {
        into.output = x;
    }
}

#[test]
fn the_tap_parses_what_it_saw() {
    let up = b"POST /v1/messages HTTP/1.1\r\nx-request-id: r1\r\nContent-Length: 2\r\n\r\n{}GET /v1/models HTTP/1.1\r\n\r\n";
    let mut down = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for event in [
        "event: message_start\ndata: {\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":0}}}\n\n",
        "data: {\"delta\":{\"text\":\"tok0 \"},\"type\":\"x\"}\n\n",
        "data: {\"usage\":{\"output_tokens\":3}}\n\n",
    ] {
        down.extend_from_slice(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
    }
    down.extend_from_slice(b"0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{\"da");
    let down = down.as_slice();
    let ex = exchanges_of(up, down);
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].request_id.as_deref(), Some("r1"));
    assert_eq!(ex[0].body, b"{}");
    assert!(ex[0].complete);
    assert_eq!(
        ex[0].usage,
        Some(Usage {
            input: 7,
            output: 3,
            ..Usage::default()
        })
    );
    assert_eq!(ex[0].text_bytes, 5);
    assert_eq!((ex[1].path.as_str(), ex[1].complete), ("/v1/models", false));
    let (u, _) = reported(
        br#"{"usage":{"prompt_tokens":50,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":40}}}"#,
    );
    assert_eq!(
        u,
        Some(Usage {
            input: 10,
            output: 4,
            cache_read: 40,
            cache_write: 0
        })
    );
}
