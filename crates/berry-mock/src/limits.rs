//! [`RateLimitHeaders`]: the rate-limit headers a provider sends before it starts
//! answering 429 (OpenAI / Azure `x-ratelimit-*`, Anthropic `anthropic-ratelimit-*`,
//! `retry-after-ms`), their text form, and the clock formats they need (OpenAI's
//! Go-style durations, RFC 3339 instants).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};

use crate::route::Api;

/// Reset of `limits:requests` without a value.
const DEFAULT_REQUESTS_RESET: &str = "6m0s";
/// Reset of `limits:tokens` without a value.
const DEFAULT_TOKENS_RESET: &str = "20ms";
/// Value of `limits:retry-after-ms` without a value.
const DEFAULT_RETRY_AFTER_MS: u64 = 1000;

/// Which budget a provider reports as exhausted, and until when
/// ([`Mode::RateLimitHeaders`](crate::Mode::RateLimitHeaders), `x-mock-limits`).
///
/// Text form (after `limits:` in a mode, alone in `x-mock-limits`):
/// `requests[:RESET]` (default `6m0s`), `tokens[:RESET]` (default `20ms`),
/// `retry-after-ms[:MS]` (default 1000). `RESET` is an OpenAI-style duration
/// (`1s`, `6m0s`, `20ms`, `1h2m3.5s`; units `h`, `m`, `s`, `ms`, `us`, `ns`).
///
/// Headers sent (every answer the setting applies to, errors included):
/// * OpenAI / Azure routes: `x-ratelimit-limit-requests`,
///   `x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests`, and the same three
///   for `tokens`; the exhausted budget has `remaining` 0 and `reset` = RESET verbatim,
///   the other one is far from exhausted (remaining > 0, a short reset).
/// * Anthropic routes: `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`,
///   the reset as an RFC 3339 instant (UTC, whole seconds, rounded up) = now + RESET.
/// * `retry-after-ms`: only the `retry-after-ms: MS` header, in every dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateLimitHeaders {
    /// The request budget is exhausted; it resets after `reset` (Go-style duration).
    Requests {
        /// Duration text, sent verbatim in `x-ratelimit-reset-requests`.
        reset: String,
    },
    /// The token budget is exhausted; it resets after `reset` (Go-style duration).
    Tokens {
        /// Duration text, sent verbatim in `x-ratelimit-reset-tokens`.
        reset: String,
    },
    /// `retry-after-ms: MS`.
    RetryAfterMs(u64),
}

impl FromStr for RateLimitHeaders {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k.trim(), Some(a.trim())),
            None => (s.as_str(), None),
        };
        let bad = || {
            format!(
                "invalid rate-limit spec {s:?} (expected requests[:RESET]|tokens[:RESET]|retry-after-ms[:MS])"
            )
        };
        let reset = |default: &str| -> Result<String, String> {
            let r = arg.unwrap_or(default);
            parse_go_duration(r).map(|_| r.to_string()).ok_or_else(bad)
        };
        match kind {
            "requests" => Ok(RateLimitHeaders::Requests {
                reset: reset(DEFAULT_REQUESTS_RESET)?,
            }),
            "tokens" => Ok(RateLimitHeaders::Tokens {
                reset: reset(DEFAULT_TOKENS_RESET)?,
            }),
            "retry-after-ms" => match arg {
                None => Ok(RateLimitHeaders::RetryAfterMs(DEFAULT_RETRY_AFTER_MS)),
                Some(ms) => ms
                    .parse()
                    .map(RateLimitHeaders::RetryAfterMs)
                    .map_err(|_| bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for RateLimitHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitHeaders::Requests { reset } => write!(f, "requests:{reset}"),
            RateLimitHeaders::Tokens { reset } => write!(f, "tokens:{reset}"),
            RateLimitHeaders::RetryAfterMs(ms) => write!(f, "retry-after-ms:{ms}"),
        }
    }
}

/// One budget's numbers: limit, remaining, reset text (OpenAI) / duration (Anthropic).
struct Budget<'a> {
    limit: u64,
    remaining: u64,
    reset: &'a str,
}

impl RateLimitHeaders {
    /// Appends the headers of this setting for an answer on an `api` route.
    pub(crate) fn push_headers(&self, api: Api, out: &mut Vec<(HeaderName, HeaderValue)>) {
        let (requests, tokens) = match self {
            RateLimitHeaders::RetryAfterMs(ms) => {
                push(out, "retry-after-ms", &ms.to_string());
                return;
            }
            RateLimitHeaders::Requests { reset } => (
                Budget {
                    limit: 500,
                    remaining: 0,
                    reset,
                },
                Budget {
                    limit: 30_000,
                    remaining: 29_000,
                    reset: "2ms",
                },
            ),
            RateLimitHeaders::Tokens { reset } => (
                Budget {
                    limit: 500,
                    remaining: 499,
                    reset: "120ms",
                },
                Budget {
                    limit: 30_000,
                    remaining: 0,
                    reset,
                },
            ),
        };
        for (name, b) in [("requests", requests), ("tokens", tokens)] {
            match api {
                Api::OpenAi | Api::Azure => {
                    push(
                        out,
                        &format!("x-ratelimit-limit-{name}"),
                        &b.limit.to_string(),
                    );
                    push(
                        out,
                        &format!("x-ratelimit-remaining-{name}"),
                        &b.remaining.to_string(),
                    );
                    push(out, &format!("x-ratelimit-reset-{name}"), b.reset);
                }
                // Google sends no rate-limit headers.
                Api::Gemini => {}
                Api::Anthropic => {
                    let at = parse_go_duration(b.reset)
                        .map_or_else(|| rfc3339_after(Duration::ZERO), rfc3339_after);
                    let p = format!("anthropic-ratelimit-{name}");
                    push(out, &format!("{p}-limit"), &b.limit.to_string());
                    push(out, &format!("{p}-remaining"), &b.remaining.to_string());
                    push(out, &format!("{p}-reset"), &at);
                }
            }
        }
    }
}

fn push(out: &mut Vec<(HeaderName, HeaderValue)>, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        out.push((n, v));
    }
}

/// Parses an OpenAI-style (Go `time.Duration`) duration: one or more
/// `<decimal><unit>` with unit `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`; `0` alone is zero.
pub(crate) fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * secs;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// The RFC 3339 instant (UTC, whole seconds, rounded up) `after` from now.
fn rfc3339_after(after: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(after);
    let secs = now.as_secs() + u64::from(now.subsec_nanos() > 0);
    rfc3339(secs)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time in seconds.
pub(crate) fn rfc3339(unix: u64) -> String {
    let days = unix / 86_400;
    let sod = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn go_durations() {
        let ms = |s: &str| parse_go_duration(s).map(|d| d.as_millis());
        assert_eq!(ms("6m0s"), Some(360_000));
        assert_eq!(ms("1s"), Some(1000));
        assert_eq!(ms("20ms"), Some(20));
        assert_eq!(ms("1h2m3.5s"), Some(3_723_500));
        assert_eq!(ms("0"), Some(0));
        for bad in ["", "5", "1x", "s", "1..2s", "-1s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn spec_text_round_trips() {
        for s in ["requests:6m0s", "tokens:20ms", "retry-after-ms:1500"] {
            assert_eq!(s.parse::<RateLimitHeaders>().unwrap().to_string(), s);
        }
        assert_eq!(
            "requests".parse::<RateLimitHeaders>().unwrap().to_string(),
            "requests:6m0s"
        );
        assert!("requests:soon".parse::<RateLimitHeaders>().is_err());
        assert!("bytes".parse::<RateLimitHeaders>().is_err());
    }

    #[test]
    fn headers_per_dialect() {
        let h = |spec: &str, api| {
            let mut out = Vec::new();
            spec.parse::<RateLimitHeaders>()
                .unwrap()
                .push_headers(api, &mut out);
            out.into_iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                .collect::<Vec<_>>()
        };
        let o = h("requests:6m0s", Api::OpenAi);
        assert!(o.contains(&("x-ratelimit-remaining-requests".into(), "0".into())));
        assert!(o.contains(&("x-ratelimit-reset-requests".into(), "6m0s".into())));
        assert!(o.contains(&("x-ratelimit-remaining-tokens".into(), "29000".into())));
        let a = h("tokens:1s", Api::Anthropic);
        assert!(a.contains(&("anthropic-ratelimit-tokens-remaining".into(), "0".into())));
        let reset = &a
            .iter()
            .find(|(n, _)| n == "anthropic-ratelimit-tokens-reset")
            .unwrap()
            .1;
        assert!(reset.ends_with('Z') && reset.len() == 20, "{reset}");
        assert_eq!(
            h("retry-after-ms:5", Api::Azure),
            [("retry-after-ms".to_string(), "5".to_string())]
        );
    }
}
