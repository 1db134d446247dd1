//! Provider rate-limit headers: a response that says the account's request or token budget
//! is spent cools its backend down until the budget resets, before a 429 happens.
//!
//! * OpenAI (and Azure): `x-ratelimit-remaining-{requests,tokens}` = 0, reset in
//!   `x-ratelimit-reset-{requests,tokens}` as a Go duration (`1s`, `6m0s`, `20ms`).
//! * Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-remaining`
//!   = 0, reset in the matching `…-reset` as an RFC 3339 time.
//! * Any provider: `retry-after-ms` (milliseconds), honoured whatever the status.
//!
//! A spent budget without a readable reset cools the backend down for
//! [`DEFAULT_COOLDOWN_MS`]; the state caps every cooldown at its maximum (300 s).

use crate::routing::DEFAULT_COOLDOWN_MS;
use http::{HeaderMap, HeaderName};
use std::time::SystemTime;

/// `source` label: OpenAI-style `x-ratelimit-*` headers.
pub const OPENAI_HEADERS: &str = "x_ratelimit";
/// `source` label: Anthropic `anthropic-ratelimit-*` headers.
pub const ANTHROPIC_HEADERS: &str = "anthropic_ratelimit";
/// `source` label: a `retry-after-ms` header.
pub const RETRY_AFTER_MS: &str = "retry_after_ms";

/// A backend cooldown a provider's response asks for (its rate-limit budget is spent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderCooldown {
    /// Milliseconds from now until the budget resets (uncapped).
    pub ms: u64,
    /// Which headers said so (a metric label).
    pub source: &'static str,
}

static RETRY_AFTER_MS_HEADER: HeaderName = HeaderName::from_static("retry-after-ms");

/// (remaining, reset) header pairs of OpenAI-style budgets.
static OPENAI: [(HeaderName, HeaderName); 2] = [
    (
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ),
    (
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ),
];

/// (remaining, reset) header pairs of Anthropic budgets.
static ANTHROPIC: [(HeaderName, HeaderName); 4] = [
    (
        HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
        HeaderName::from_static("anthropic-ratelimit-requests-reset"),
    ),
    (
        HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
        HeaderName::from_static("anthropic-ratelimit-tokens-reset"),
    ),
    (
        HeaderName::from_static("anthropic-ratelimit-input-tokens-remaining"),
        HeaderName::from_static("anthropic-ratelimit-input-tokens-reset"),
    ),
    (
        HeaderName::from_static("anthropic-ratelimit-output-tokens-remaining"),
        HeaderName::from_static("anthropic-ratelimit-output-tokens-reset"),
    ),
];

/// The longest cooldown the provider's rate-limit headers in a response ask for at `now`,
/// if any.
/// `retry-after-ms` wins over the budget headers when present (it is the provider's own
/// answer to "when may I retry").
pub fn requested_cooldown(headers: &HeaderMap, now: SystemTime) -> Option<ProviderCooldown> {
    // One pass over the (few) names first: an answer without any rate-limit header, the
    // common case outside OpenAI and Anthropic, costs no lookups of the ten names below.
    if !headers.keys().any(is_provider_limit_header) {
        return None;
    }
    if let Some(ms) = headers
        .get(&RETRY_AFTER_MS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(ProviderCooldown {
            ms: ms.ceil() as u64,
            source: RETRY_AFTER_MS,
        });
    }
    let openai = spent(headers, &OPENAI, go_duration_ms).map(|ms| ProviderCooldown {
        ms,
        source: OPENAI_HEADERS,
    });
    let anthropic =
        spent(headers, &ANTHROPIC, |s| rfc3339_from(s, now)).map(|ms| ProviderCooldown {
            ms,
            source: ANTHROPIC_HEADERS,
        });
    match (openai, anthropic) {
        (Some(a), Some(b)) => Some(if a.ms >= b.ms { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Whether `name` is one [`requested_cooldown`] may read.
fn is_provider_limit_header(name: &HeaderName) -> bool {
    let s = name.as_str();
    s.starts_with("x-ratelimit-")
        || s.starts_with("anthropic-ratelimit-")
        || *name == RETRY_AFTER_MS_HEADER
}

/// The longest reset among the budgets whose remaining count is 0.
fn spent(
    headers: &HeaderMap,
    pairs: &[(HeaderName, HeaderName)],
    reset_ms: impl Fn(&str) -> Option<u64>,
) -> Option<u64> {
    pairs
        .iter()
        .filter(|(remaining, _)| {
            headers
                .get(remaining)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|s| s.trim() == "0")
        })
        .map(|(_, reset)| {
            headers
                .get(reset)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| reset_ms(s.trim()))
                .unwrap_or(DEFAULT_COOLDOWN_MS)
        })
        .max()
}

/// A Go-style duration (`6m0s`, `1.5s`, `20ms`) in milliseconds, rounded up.
fn go_duration_ms(s: &str) -> Option<u64> {
    let d: jiff::SignedDuration = s.parse().ok()?;
    let d = std::time::Duration::try_from(d).ok()?;
    Some(u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

/// Milliseconds from `now` until the RFC 3339 time `s` (0 when it has passed).
fn rfc3339_from(s: &str, now: SystemTime) -> Option<u64> {
    let at: jiff::Timestamp = s.parse().ok()?;
    let now = jiff::Timestamp::try_from(now).ok()?;
    let ms = now.duration_until(at).as_millis();
    Some(u64::try_from(ms.max(0)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), v.parse().unwrap());
        }
        h
    }

    fn limit(pairs: &[(&'static str, &str)]) -> Option<ProviderCooldown> {
        requested_cooldown(
            &headers(pairs),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
    }

    #[test]
    fn openai_durations() {
        for (text, ms) in [
            ("1s", 1000),
            ("6m0s", 360_000),
            ("20ms", 20),
            ("1.5s", 1500),
            ("1h2m3s", 3_723_000),
            ("0s", 0),
        ] {
            assert_eq!(go_duration_ms(text), Some(ms), "{text}");
        }
        assert_eq!(go_duration_ms("soon"), None);
        let l = limit(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "6m0s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "20ms"),
        ]);
        assert_eq!(
            l,
            Some(ProviderCooldown {
                ms: 360_000,
                source: OPENAI_HEADERS
            })
        );
        // budget left: nothing to do, whatever the reset says
        let l = limit(&[
            ("x-ratelimit-remaining-requests", "12"),
            ("x-ratelimit-reset-requests", "6m0s"),
        ]);
        assert_eq!(l, None);
        // spent without a readable reset: the default cooldown
        let l = limit(&[
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "later"),
        ]);
        assert_eq!(
            l,
            Some(ProviderCooldown {
                ms: DEFAULT_COOLDOWN_MS,
                source: OPENAI_HEADERS
            })
        );
    }

    #[test]
    fn anthropic_resets() {
        // now = 2027-01-15T08:00:00Z
        let l = limit(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2027-01-15T08:00:30Z"),
            ("anthropic-ratelimit-tokens-remaining", "5000"),
            ("anthropic-ratelimit-tokens-reset", "2027-01-15T09:00:00Z"),
        ]);
        assert_eq!(
            l,
            Some(ProviderCooldown {
                ms: 30_000,
                source: ANTHROPIC_HEADERS
            })
        );
        let l = limit(&[
            ("anthropic-ratelimit-output-tokens-remaining", "0"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2027-01-15T10:00:00+02:00",
            ),
        ]);
        assert_eq!(
            l,
            Some(ProviderCooldown {
                ms: 0,
                source: ANTHROPIC_HEADERS
            }),
            "an offset time already passed"
        );
    }

    #[test]
    fn retry_after_ms_wins() {
        let l = limit(&[
            ("retry-after-ms", "1500.2"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "6m0s"),
        ]);
        assert_eq!(
            l,
            Some(ProviderCooldown {
                ms: 1501,
                source: RETRY_AFTER_MS
            })
        );
        assert_eq!(limit(&[("retry-after-ms", "-1")]), None);
        assert_eq!(limit(&[("retry-after-ms", "NaN")]), None);
        assert_eq!(limit(&[]), None);
    }
}
