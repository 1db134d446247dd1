//! [`Mode`]: the fault the mock plays, and its text form.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::limits::RateLimitHeaders;

/// Header delay of `slow` without an argument.
pub(crate) const DEFAULT_SLOW: Duration = Duration::from_millis(1000);

/// Behaviour of the mock, switchable at runtime ([`MockProvider::set_mode`]) or per
/// request (`x-mock-mode` header). Applies to every endpoint, `/models` included.
///
/// Text form (used by the CLI `--mode` and the `x-mock-mode` header, case-insensitive):
/// `ok`, `NNN` (any status 100–599, e.g. `500`, `503`, `529`), `429` / `429:VALUE`
/// (rate limited, optional `Retry-After` value), `hang`, `close` / `close:N`
/// (close mid stream after N chunk events, default 1), `garbage`, `slow` / `slow:MS`
/// (header delay, default 1000 ms), `reset`, and the faults of lying upstreams:
/// `unterminated`, `cut` / `cut:N` (default 1), `error-event` / `error-event:N`
/// (default 1), `heartbeat`, `preamble` / `preamble:error` / `preamble:cut`,
/// `limits:requests[:RESET]` / `limits:tokens[:RESET]` / `limits:retry-after-ms[:MS]`
/// (`limits` alone = `limits:requests:6m0s`, see [`RateLimitHeaders`]), `account`,
/// `bad-key`, `gemini-bad-key`.
///
/// Error bodies follow the dialect of the route: OpenAI's
/// `{"error":{"message","type","param","code"}}`, Anthropic's
/// `{"type":"error","error":{"type","message"}}` on `…/messages*` (and on `…/models`
/// asked with `anthropic-version`), Azure's `{"error":{"code","message"}}` on
/// `…/openai/deployments/…`.
///
/// Stream faults apply to every streamed answer (chat, legacy completions, Anthropic
/// Messages, Responses); a "content event" is one `delta.content` / `text` / `text_delta`
/// / `response.output_text.delta` / tool-argument piece. Non-streamed answers: `cut` behaves as `close`; the other stream
/// faults answer normally.
///
/// [`MockProvider::set_mode`]: crate::MockProvider::set_mode
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Normal answers.
    #[default]
    Ok,
    /// Answer every request with this status and an error body in the route's shape:
    /// OpenAI `type` `server_error` for 5xx, `invalid_request_error` otherwise (429:
    /// `rate_limit_exceeded`); Anthropic by status (429 `rate_limit_error`, 529
    /// `overloaded_error` "Overloaded", other 5xx `api_error`, …); Azure `code` = the
    /// status. `Retry-After` comes from `x-mock-retry-after` only.
    /// HTTP cannot carry a 1xx status as a final answer (those are sent as 500), and
    /// 204 / 304 answers carry no body.
    Status(u16),
    /// 429 with a rate-limit error body in the route's shape (OpenAI
    /// `rate_limit_exceeded`, Anthropic `rate_limit_error`); the `Retry-After` header
    /// carries `retry_after` verbatim when it is `Some` (`x-mock-retry-after` wins).
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
    /// Streaming: the whole stream except its terminal event (no `data: [DONE]`, no
    /// `message_stop`; the finish chunk / `message_delta` are still sent), then a clean
    /// end of the HTTP body. Text form `unterminated`.
    Unterminated,
    /// Streaming: `after_chunks` content events, then the first half of the next event,
    /// cut in the middle of its `data:` line, and the connection closed (no terminating
    /// chunk). With `after_chunks` ≥ the number of content events, the first event after
    /// the content is cut. Non-streamed: as [`Mode::CloseMidStream`]. Text form `cut` /
    /// `cut:N` (default 1).
    CutMidEvent {
        /// Complete content events sent before the cut one.
        after_chunks: u32,
    },
    /// Streaming: `after_chunks` content events, then an in-band error event and a
    /// clean end of the HTTP body. OpenAI: `data: {"error":{"message":…,
    /// "type":"server_error","param":null,"code":null}}`; Anthropic: `event: error` with
    /// `data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`;
    /// Responses: `event: error` with `data: {"type":"error","code":"server_error",
    /// "message":…,"param":null,"sequence_number":n}`.
    /// With `after_chunks` ≥ the number of content events, the error replaces what
    /// follows the content. Text form `error-event` / `error-event:N` (default 1).
    ErrorEvent {
        /// Content events sent before the error event.
        after_chunks: u32,
    },
    /// Streaming: a normal stream with heartbeats before every event: a `: ping`
    /// comment and an empty `data:` line, each its own chunk (`: ping\n\n`,
    /// `data:\n\n`). Text form `heartbeat`.
    Heartbeats,
    /// Streaming: a 200 and the preamble a provider sends before any content (OpenAI
    /// chat: a role-only chunk with `"content":""`; legacy completions: a chunk with
    /// empty `text`; Anthropic: `message_start` and `ping`; Responses:
    /// `response.created` and `response.in_progress`), then (after the chunk
    /// interval, when there is one) `end`. Text form
    /// `preamble` (= `preamble:error`), `preamble:error`, `preamble:cut`.
    Preamble(PreambleEnd),
    /// A normal answer carrying the provider's rate-limit headers (see
    /// [`RateLimitHeaders`]). Text form `limits:…`.
    RateLimitHeaders(RateLimitHeaders),
    /// A normal answer carrying the provider-account headers (`openai-organization`,
    /// `openai-project`, `anthropic-organization-id`, `set-cookie`); see also
    /// [`MockOptions::account_headers`](crate::MockOptions::account_headers) for every
    /// answer. Text form `account`.
    AccountHeaders,
    /// 401 as if the provider refused the key it was sent (before the mock's own key
    /// check). OpenAI routes quote part of the presented key like OpenAI does
    /// (`Incorrect API key provided: sk-abc*************wxyz. …`, keys shorter than 10
    /// characters quoted whole); Anthropic: `authentication_error` `invalid x-api-key`;
    /// Azure deployments: Azure's access-denied body; Gemini routes: as
    /// [`Mode::GeminiKeyRejected`]. Text form `bad-key`.
    KeyRejected,
    /// 400 as Google Gemini answers a refused key: a JSON error with status
    /// `INVALID_ARGUMENT` and the reason `API_KEY_INVALID`, whatever the route (wrapped in a
    /// list as Google's OpenAI-compatible endpoint sends it, except on the native Gemini
    /// routes). Text form `gemini-bad-key`.
    GeminiKeyRejected,
    /// Accept the TCP connection and close it immediately (with RST) without reading.
    /// Connections that were already open are closed the same way at their next
    /// request; as a per-request override (`x-mock-mode: reset`) the request is read
    /// and the connection is then closed without an answer.
    ResetOnAccept,
}

/// How a [`Mode::Preamble`] stream ends after its preamble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreambleEnd {
    /// The dialect's in-band error event (as in [`Mode::ErrorEvent`]), then a clean end.
    Error,
    /// The connection is closed (no terminating chunk).
    Cut,
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
            format!("invalid mock mode {s:?} (expected ok|NNN|429[:retry-after]|hang|close[:N]|garbage|slow[:MS]|reset|unterminated|cut[:N]|error-event[:N]|heartbeat|preamble[:error|cut]|limits[:SPEC]|account|bad-key|gemini-bad-key)")
        };
        let count = |n: Option<&str>| n.map_or(Ok(1), |n| n.parse::<u32>().map_err(|_| bad()));
        match (word, arg) {
            ("ok", None) => Ok(Mode::Ok),
            ("hang", None) => Ok(Mode::Hang),
            ("garbage", None) => Ok(Mode::Garbage),
            ("reset", None) => Ok(Mode::ResetOnAccept),
            ("unterminated", None) => Ok(Mode::Unterminated),
            ("heartbeat", None) => Ok(Mode::Heartbeats),
            ("account", None) => Ok(Mode::AccountHeaders),
            ("bad-key", None) => Ok(Mode::KeyRejected),
            ("gemini-bad-key", None) => Ok(Mode::GeminiKeyRejected),
            ("cut", n) => count(n).map(|after_chunks| Mode::CutMidEvent { after_chunks }),
            ("error-event", n) => count(n).map(|after_chunks| Mode::ErrorEvent { after_chunks }),
            ("preamble", None | Some("error")) => Ok(Mode::Preamble(PreambleEnd::Error)),
            ("preamble", Some("cut")) => Ok(Mode::Preamble(PreambleEnd::Cut)),
            ("limits", spec) => spec
                .unwrap_or("requests")
                .parse()
                .map(Mode::RateLimitHeaders)
                .map_err(|e| format!("{}: {e}", bad())),
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
            Mode::Unterminated => f.write_str("unterminated"),
            Mode::CutMidEvent { after_chunks } => write!(f, "cut:{after_chunks}"),
            Mode::ErrorEvent { after_chunks } => write!(f, "error-event:{after_chunks}"),
            Mode::Heartbeats => f.write_str("heartbeat"),
            Mode::Preamble(PreambleEnd::Error) => f.write_str("preamble:error"),
            Mode::Preamble(PreambleEnd::Cut) => f.write_str("preamble:cut"),
            Mode::RateLimitHeaders(spec) => write!(f, "limits:{spec}"),
            Mode::AccountHeaders => f.write_str("account"),
            Mode::KeyRejected => f.write_str("bad-key"),
            Mode::GeminiKeyRejected => f.write_str("gemini-bad-key"),
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

    #[test]
    fn fault_modes_parse_and_round_trip() {
        for s in [
            "unterminated",
            "cut:0",
            "cut:4",
            "error-event:2",
            "heartbeat",
            "preamble:error",
            "preamble:cut",
            "limits:requests:6m0s",
            "limits:tokens:20ms",
            "limits:retry-after-ms:250",
            "account",
            "bad-key",
            "gemini-bad-key",
            "529",
        ] {
            let m: Mode = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
        }
        let p = |s: &str| s.parse::<Mode>().unwrap().to_string();
        assert_eq!(p("cut"), "cut:1");
        assert_eq!(p("Error-Event"), "error-event:1");
        assert_eq!(p("preamble"), "preamble:error");
        assert_eq!(p("limits"), "limits:requests:6m0s");
        assert_eq!(p("LIMITS:Tokens"), "limits:tokens:20ms");
        for bad in [
            "cut:x",
            "preamble:maybe",
            "limits:bytes",
            "limits:requests:5",
            "account:1",
        ] {
            assert!(bad.parse::<Mode>().is_err(), "{bad}");
        }
    }
}
