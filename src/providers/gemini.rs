//! Google Gemini through its OpenAI-compatible endpoint: OpenAI's request shapes and
//! `Authorization: Bearer`, under `/v1beta/openai`.

/// Path of Google's OpenAI-compatible endpoint, used when `base_url` is a bare host.
pub const OPENAI_COMPAT_PATH: &str = "/v1beta/openai";

/// The path prefix requests go under: the base URL's own path, or
/// [`OPENAI_COMPAT_PATH`] for a bare host (`https://generativelanguage.googleapis.com`).
pub fn path_prefix(base_path: &str) -> String {
    if base_path.is_empty() {
        OPENAI_COMPAT_PATH.to_string()
    } else {
        base_path.to_string()
    }
}
