//! OpenAI's API (and every API that copies it): `Authorization: Bearer`, the client's path
//! after `/v1` under the base URL's path.

use http::{HeaderName, HeaderValue};

/// Credential headers: `Authorization: Bearer <key>` (marked sensitive).
pub fn credentials(
    api_key: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, http::header::InvalidHeaderValue> {
    Ok(vec![(
        http::header::AUTHORIZATION,
        super::header::sensitive(format!("Bearer {api_key}"))?,
    )])
}
