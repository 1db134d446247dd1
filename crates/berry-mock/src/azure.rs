//! Azure OpenAI's deployments form:
//! `POST …/openai/deployments/{deployment}/{chat/completions|completions|embeddings}?api-version=…`,
//! answered like OpenAI with `model` = the deployment, and Azure's error shape
//! `{"error":{"code":"<status>","message":"…"}}`.
//!
//! (Azure's v1 form `…/openai/v1/chat/completions` needs nothing here: it is the
//! OpenAI route.)

use crate::json::push_json_str;
use crate::route::Endpoint;

/// Body message of a deployments request without an `api-version` (status 404).
pub(crate) const RESOURCE_NOT_FOUND: &str = "Resource not found";
/// Body message of a 401 on a deployments route.
pub(crate) const ACCESS_DENIED: &str = "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.";

/// The deployment and endpoint of a deployments-form path, `None` for any other
/// path. The operation after the deployment must be exactly `chat/completions`,
/// `completions` or `embeddings` and the method `POST`, otherwise the endpoint is
/// [`Endpoint::NotFound`]. The deployment is the raw path segment.
pub(crate) fn deployment_route(method: &str, path: &str) -> Option<(String, Endpoint)> {
    const MARK: &str = "/openai/deployments/";
    let start = path.find(MARK)? + MARK.len();
    let (deployment, op) = path[start..].split_once('/')?;
    if deployment.is_empty() {
        return None;
    }
    let endpoint = match (method, op) {
        ("POST", "chat/completions") => Endpoint::Chat,
        ("POST", "completions") => Endpoint::Completions,
        ("POST", "embeddings") => Endpoint::Embeddings,
        _ => Endpoint::NotFound,
    };
    Some((deployment.to_string(), endpoint))
}

/// Azure-shaped error body: `{"error":{"code":"<status>","message":…}}`.
pub(crate) fn error_body(status: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + message.len());
    out.extend_from_slice(b"{\"error\":{\"code\":\"");
    out.extend_from_slice(status.to_string().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    push_json_str(&mut out, message);
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn deployment_paths() {
        let r = |m, p| deployment_route(m, p);
        assert_eq!(
            r("POST", "/openai/deployments/gpt4o-prod/chat/completions"),
            Some(("gpt4o-prod".to_string(), Endpoint::Chat))
        );
        assert_eq!(
            r("POST", "/base/openai/deployments/d/completions"),
            Some(("d".to_string(), Endpoint::Completions))
        );
        assert_eq!(
            r("POST", "/openai/deployments/d/embeddings"),
            Some(("d".to_string(), Endpoint::Embeddings))
        );
        assert_eq!(
            r("GET", "/openai/deployments/d/chat/completions"),
            Some(("d".to_string(), Endpoint::NotFound))
        );
        assert_eq!(
            r("POST", "/openai/deployments/d/audio/speech"),
            Some(("d".to_string(), Endpoint::NotFound))
        );
        assert_eq!(r("POST", "/openai/deployments//chat/completions"), None);
        assert_eq!(r("POST", "/openai/v1/chat/completions"), None);
        let v: serde_json::Value = serde_json::from_slice(&error_body(404, "x\"")).unwrap();
        assert_eq!(v["error"]["code"], "404");
        assert_eq!(v["error"]["message"], "x\"");
    }
}
