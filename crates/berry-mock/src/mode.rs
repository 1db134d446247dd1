//! [`Mode`]: the fault the mock plays, and its text form.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Header delay of `slow` without an argument.
pub(crate) const DEFAULT_SLOW: Duration = Duration::from_millis(1000);

/// Behaviour of the mock, switchable at runtime ([`MockProvider::set_mode`]) or per
/// request (`x-mock-mode` header). Applies to every endpoint, `/models` included.
///
/// Text form (used by the CLI `--mode` and the `x-mock-mode` header, case-insensitive):
/// `ok`, `NNN` (any status 100–599, e.g. `500`, `503`), `429` / `429:VALUE`
/// (rate limited, optional `Retry-After` value), `hang`, `close` / `close:N`
/// (close mid stream after N chunk events, default 1), `garbage`, `slow` / `slow:MS`
/// (header delay, default 1000 ms), `reset`.
///
/// [`MockProvider::set_mode`]: crate::MockProvider::set_mode
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Normal answers.
    #[default]
    Ok,
    /// Answer every request with this status and an OpenAI-shaped error body
    /// (`type` is `server_error` for 5xx, `invalid_request_error` otherwise).
    /// HTTP cannot carry a 1xx status as a final answer (those are sent as 500), and
    /// 204 / 304 answers carry no body.
    Status(u16),
    /// 429 with an OpenAI-shaped `rate_limit_exceeded` body; the `Retry-After` header
    /// carries `retry_after` verbatim when it is `Some`.
    RateLimited {
        /// Value of the `Retry-After` response header (`None`: header omitted).
        retry_after: Option<String>,
    },
    /// Sleep this long after reading the request, before sending the response head;
    /// then answer normally.
    SlowHeaders(Duration),
    /// Read the request and never answer; the socket stays open until the client
    /// closes it.
    Hang,
    /// Streaming: send the head and `after_chunks` content events, then close the TCP
    /// connection without the terminating zero-size chunk. Non-streaming: send the head
    /// (with the full `Content-Length`) and half of the body, then close.
    CloseMidStream {
        /// Number of content events sent before the connection is closed.
        after_chunks: u32,
    },
    /// Streaming: head, one good event, the chunk interval, then a chunk holding the non-SSE line
    /// `\x00\x01NOT SSE{{{\n`, then the rest of the stream as usual (well-formed HTTP
    /// framing, terminating chunk included). Non-streaming: 200 with a
    /// `Content-Type: application/json` body of non-JSON bytes.
    Garbage,
    /// Accept the TCP connection and close it immediately (with RST) without reading.
    /// Connections that were already open are closed the same way at their next
    /// request; as a per-request override (`x-mock-mode: reset`) the request is read
    /// and the connection is then closed without an answer.
    ResetOnAccept,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        let (word, arg) = match lower.split_once(':') {
            Some((w, a)) => (w.trim(), Some(a.trim())),
            None => (lower.as_str(), None),
        };
        // The 429 argument is kept verbatim (original case).
        let raw_arg = s.split_once(':').map(|(_, a)| a.trim().to_string());
        let bad = || {
            format!("invalid mock mode {s:?} (expected ok|NNN|429[:retry-after]|hang|close[:N]|garbage|slow[:MS]|reset)")
        };
        match (word, arg) {
            ("ok", None) => Ok(Mode::Ok),
            ("hang", None) => Ok(Mode::Hang),
            ("garbage", None) => Ok(Mode::Garbage),
            ("reset", None) => Ok(Mode::ResetOnAccept),
            ("close", None) => Ok(Mode::CloseMidStream { after_chunks: 1 }),
            ("close", Some(n)) => n
                .parse()
                .map(|after_chunks| Mode::CloseMidStream { after_chunks })
                .map_err(|_| bad()),
            ("slow", None) => Ok(Mode::SlowHeaders(DEFAULT_SLOW)),
            ("slow", Some(ms)) => ms
                .parse()
                .map(|ms| Mode::SlowHeaders(Duration::from_millis(ms)))
                .map_err(|_| bad()),
            ("429", retry) => Ok(Mode::RateLimited {
                retry_after: retry.and(raw_arg).filter(|v| !v.is_empty()),
            }),
            (code, None) => match code.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => Ok(Mode::Status(c)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Ok => f.write_str("ok"),
            Mode::Status(s) => write!(f, "{s}"),
            Mode::RateLimited { retry_after: None } => f.write_str("429"),
            Mode::RateLimited {
                retry_after: Some(v),
            } => write!(f, "429:{v}"),
            Mode::SlowHeaders(d) => write!(f, "slow:{}", d.as_millis()),
            Mode::Hang => f.write_str("hang"),
            Mode::CloseMidStream { after_chunks } => write!(f, "close:{after_chunks}"),
            Mode::Garbage => f.write_str("garbage"),
            Mode::ResetOnAccept => f.write_str("reset"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mode_parsing_round_trips() {
        for s in [
            "ok", "500", "503", "429", "429:7", "hang", "close:3", "garbage", "slow:250", "reset",
        ] {
            let m: Mode = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
        }
        assert_eq!(
            "close".parse::<Mode>().unwrap(),
            Mode::CloseMidStream { after_chunks: 1 }
        );
        assert_eq!(
            "SLOW".parse::<Mode>().unwrap(),
            Mode::SlowHeaders(DEFAULT_SLOW)
        );
        assert_eq!(
            "429:Wed, 21 Oct 2015".parse::<Mode>().unwrap(),
            Mode::RateLimited {
                retry_after: Some("Wed, 21 Oct 2015".to_string())
            }
        );
        assert!("nope".parse::<Mode>().is_err());
        assert!("700".parse::<Mode>().is_err());
        assert!("slow:x".parse::<Mode>().is_err());
    }
}
