//! Header values the provider modules build.

use http::HeaderValue;

/// A header value marked sensitive (never printed by `http`'s `Debug`).
pub(super) fn sensitive(v: String) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    HeaderValue::from_str(&v).map(|mut h| {
        h.set_sensitive(true);
        h
    })
}
