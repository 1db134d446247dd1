//! The blocking HTTP/1.1 test client shared by the test crates: raw control
//! over what is sent, and a response that records when each body piece arrived.

use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A response as the client saw it.
#[derive(Debug, Default, Clone)]
pub struct Resp {
    /// The status code.
    pub status: u16,
    /// The header fields in arrival order.
    pub headers: Vec<(String, String)>,
    /// The whole body (chunked framing removed).
    pub body: Vec<u8>,
    /// Arrival time of each body piece read from the socket.
    pub chunks: Vec<(Instant, Vec<u8>)>,
    /// The body ended properly (terminating chunk / full Content-Length).
    pub complete: bool,
    /// When the request was sent.
    pub sent_at: Option<Instant>,
}

impl Resp {
    /// A header value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body on failure).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Body text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `data:` payloads of an SSE body.
    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .flat_map(|ev| {
                ev.lines()
                    .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// `event:` names of an SSE body, in order.
    pub fn sse_events(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .map(str::to_string)
            .collect()
    }

    /// The OpenAI error code of an error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A blocking HTTP/1.1 client connection.
pub struct Client {
    /// The connection.
    pub s: TcpStream,
    buf: Vec<u8>,
    sent_at: Option<Instant>,
}

impl Client {
    /// Connects with a 30 s read timeout.
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_nodelay(true)?;
        Ok(Client {
            s,
            buf: Vec::new(),
            sent_at: None,
        })
    }

    /// Writes a request with Content-Length (unless the caller set framing headers).
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        let framed = headers.iter().any(|(n, _)| {
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
        });
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !framed && (method == "POST" || !body.is_empty()) {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut all = head.into_bytes();
        all.extend_from_slice(body);
        self.sent_at = Some(Instant::now());
        self.s.write_all(&all)
    }

    /// Writes raw bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.s.write_all(bytes)
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 64 * 1024];
        let n = self.s.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// The next CRLF-terminated line (without CRLF); `Ok(None)` on EOF.
    pub fn line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let l = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(Some(l));
            }
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads one response (skipping 1xx), recording chunk arrival times.
    pub fn read_response(&mut self, head_only: bool) -> io::Result<Resp> {
        let mut r = Resp {
            sent_at: self.sent_at,
            ..Resp::default()
        };
        loop {
            let status_line = self
                .line()?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no status line"))?;
            r.status = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, status_line.clone()))?;
            r.headers.clear();
            while let Some(l) = self.line()? {
                if l.is_empty() {
                    break;
                }
                if let Some((n, v)) = l.split_once(':') {
                    r.headers.push((n.trim().to_string(), v.trim().to_string()));
                }
            }
            if r.status >= 200 {
                break;
            }
        }
        if head_only || r.status == 204 || r.status == 304 {
            r.complete = true;
            return Ok(r);
        }
        let chunked = r
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            loop {
                let Some(size_line) = self.line()? else {
                    return Ok(r);
                };
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::InvalidData, size_line.clone())
                        })?;
                if size == 0 {
                    let _ = self.line();
                    r.complete = true;
                    return Ok(r);
                }
                while self.buf.len() < size + 2 {
                    if self.fill()? == 0 {
                        let take = self.buf.len().min(size);
                        let piece: Vec<u8> = self.buf.drain(..take).collect();
                        r.body.extend_from_slice(&piece);
                        r.chunks.push((Instant::now(), piece));
                        return Ok(r);
                    }
                }
                let piece: Vec<u8> = self.buf.drain(..size).collect();
                self.buf.drain(..2);
                r.body.extend_from_slice(&piece);
                r.chunks.push((Instant::now(), piece));
            }
        } else if let Some(len) = r
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            while self.buf.len() < len {
                if self.fill()? == 0 {
                    r.body = std::mem::take(&mut self.buf);
                    return Ok(r);
                }
            }
            r.body = self.buf.drain(..len).collect();
            r.complete = true;
            Ok(r)
        } else {
            while self.fill()? > 0 {}
            r.body = std::mem::take(&mut self.buf);
            r.complete = true;
            Ok(r)
        }
    }

    /// Sends a request and reads its response on this connection (panics on I/O errors).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        self.send(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: send: {e}"));
        self.read_response(method == "HEAD")
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// True when the server closed the connection (EOF or reset) within `wait`.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        if self.s.set_read_timeout(Some(wait)).is_err() {
            return false;
        }
        let mut b = [0u8; 64];
        matches!(self.s.read(&mut b), Ok(0))
            || matches!(self.s.read(&mut b), Err(e) if e.kind() == io::ErrorKind::ConnectionReset)
    }
}
