//! Anthropic's API: `x-api-key` + `anthropic-version`, everything under `/v1` whether or
//! not the base URL names it.

use http::{HeaderName, HeaderValue};

/// `anthropic-version` sent to Anthropic-dialect providers unless configured in `headers`.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Credential headers: `x-api-key` (sensitive) and the default `anthropic-version`.
pub fn credentials(
    api_key: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, http::header::InvalidHeaderValue> {
    Ok(vec![
        (
            HeaderName::from_static("x-api-key"),
            super::header::sensitive(api_key.to_string())?,
        ),
        (
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(ANTHROPIC_VERSION),
        ),
    ])
}

/// The path prefix requests go under: the base URL's path ending in `/v1`
/// (`https://api.anthropic.com` and `https://api.anthropic.com/v1` are the same).
pub fn path_prefix(base_path: &str) -> String {
    let base = base_path.strip_suffix("/v1").unwrap_or(base_path);
    format!("{base}/v1")
}
