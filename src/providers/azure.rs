//! Azure OpenAI: `api-key`, and one of two URL forms chosen by the base URL.
//!
//! * **v1 form** — a base URL containing `/openai/v1`
//!   (`https://r.openai.azure.com/openai/v1`): addressed exactly like OpenAI, no
//!   `api-version`.
//! * **deployments form** — any other base URL (`https://r.openai.azure.com`): the
//!   backend's model names the deployment,
//!   `{base}/openai/deployments/{model}/chat/completions?api-version={api_version}` (also
//!   `completions`, `embeddings`); the body keeps its `model` (Azure ignores it).

use http::{HeaderName, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Bytes kept as they are in a deployment name (RFC 3986 unreserved).
const DEPLOYMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How an Azure provider is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// `…/openai/v1`: like OpenAI.
    V1,
    /// `…/openai/deployments/{model}/…?api-version=…`.
    Deployments { api_version: String },
}

impl Form {
    /// The form a base URL path selects.
    pub fn of(base_path: &str, api_version: &str) -> Form {
        if base_path.contains("/openai/v1") {
            Form::V1
        } else {
            Form::Deployments {
                api_version: api_version.to_string(),
            }
        }
    }
}

/// Credential header: `api-key` (marked sensitive).
pub fn credentials(
    api_key: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, http::header::InvalidHeaderValue> {
    Ok(vec![(
        HeaderName::from_static("api-key"),
        super::header::sensitive(api_key.to_string())?,
    )])
}

/// The path prefix requests go under. For the deployments form a trailing `/openai` of the
/// base URL is dropped (it is part of every deployments path).
pub fn path_prefix(base_path: &str, form: &Form) -> String {
    match form {
        Form::V1 => base_path.to_string(),
        Form::Deployments { .. } => base_path
            .strip_suffix("/openai")
            .unwrap_or(base_path)
            .to_string(),
    }
}

/// The operation part of a deployments-form path: `/openai/deployments/{deployment}{rest}`,
/// or `/openai{rest}` when there is no deployment (the model list).
pub fn deployment_path(deployment: Option<&str>, rest: &str) -> String {
    match deployment {
        Some(d) => format!(
            "/openai/deployments/{}{rest}",
            utf8_percent_encode(d, DEPLOYMENT)
        ),
        None => format!("/openai{rest}"),
    }
}

/// The `api-version` query of the deployments form, unless the base URL already has one.
pub fn version_query(form: &Form, base_query: Option<&str>) -> Option<String> {
    match form {
        Form::Deployments { api_version }
            if !base_query.is_some_and(|q| q.contains("api-version=")) =>
        {
            Some(format!("api-version={api_version}"))
        }
        _ => None,
    }
}
