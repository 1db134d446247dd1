//! What became of one upstream attempt, in the terms the breaker, the routing strategies
//! and the metrics share.

/// Default cooldown after a 429 without `Retry-After`.
pub const DEFAULT_COOLDOWN_MS: u64 = 5_000;
/// Longest cooldown a `Retry-After` can impose.
pub const MAX_COOLDOWN_MS: u64 = 300_000;

/// The result of one upstream attempt, as the breaker, strategies and metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx response (and, for streams, a complete body).
    Success,
    /// TCP/TLS connect failed, DNS missing, or the connection closed before a response.
    ConnectError,
    /// No response headers within the attempt timeout.
    Timeout,
    /// 429; `retry_after_ms` from `Retry-After` when present.
    RateLimited { retry_after_ms: Option<u64> },
    /// 5xx response.
    ServerError,
    /// 401/403 from the provider: its credentials are wrong.
    AuthError,
    /// 400/404 from the provider: the client's request or the model name.
    ModelError,
    /// Other 4xx: the client's fault; neutral.
    ClientError,
    /// The stream broke, stalled or sent garbage after the first byte.
    StreamError,
    /// The client went away before the attempt finished; neutral.
    ClientClosed,
}

impl Outcome {
    /// Metric label (`berry_upstream_attempts_total{outcome}`).
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ConnectError => "connect_error",
            Outcome::Timeout => "timeout",
            Outcome::RateLimited { .. } => "http_429",
            Outcome::ServerError => "http_5xx",
            Outcome::AuthError | Outcome::ModelError | Outcome::ClientError => "http_4xx",
            Outcome::StreamError => "stream_error",
            Outcome::ClientClosed => "client_closed",
        }
    }

    /// How long this outcome cools its backend down (before the cap of
    /// [`MAX_COOLDOWN_MS`]): a 429's `Retry-After`, or [`DEFAULT_COOLDOWN_MS`] without one.
    pub fn cooldown_ms(self) -> Option<u64> {
        match self {
            Outcome::RateLimited { retry_after_ms } => {
                Some(retry_after_ms.unwrap_or(DEFAULT_COOLDOWN_MS))
            }
            _ => None,
        }
    }

    /// Classifies an upstream response status.
    pub fn from_status(status: u16, retry_after_ms: Option<u64>) -> Outcome {
        match status {
            200..=399 => Outcome::Success,
            429 => Outcome::RateLimited { retry_after_ms },
            401 | 403 => Outcome::AuthError,
            400 | 404 | 422 => Outcome::ModelError,
            400..=499 => Outcome::ClientError,
            _ => Outcome::ServerError,
        }
    }

    /// Whether the circuit breaker counts this as a failure. 429 does not open a circuit by
    /// itself (it cools the backend down instead); client errors are neutral.
    pub fn is_breaker_failure(self) -> bool {
        matches!(
            self,
            Outcome::ConnectError
                | Outcome::Timeout
                | Outcome::ServerError
                | Outcome::AuthError
                | Outcome::StreamError
        )
    }

    /// Whether the gateway may retry this attempt on another backend (before the first byte).
    /// A refused key (401/403) is the backend's fault, not the request's: another account
    /// may take it.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Outcome::ConnectError
                | Outcome::Timeout
                | Outcome::ServerError
                | Outcome::RateLimited { .. }
                | Outcome::AuthError
        )
    }
}
