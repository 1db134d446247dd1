//! The configuration file format: the Berry API schema (extended) as serde structs.
//!
//! These structs mirror the file one to one and carry no meaning of their own; `validate`
//! turns them into the checked [`crate::config::Config`]. Unknown keys are not rejected here
//! (serde would stop at the first one); `load` collects every ignored key with its path.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Root of a gateway config file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileConfig {
    pub settings: FileSettings,
    pub users: BTreeMap<String, FileUser>,
    pub providers: BTreeMap<String, FileProvider>,
    pub models: BTreeMap<String, FileModel>,
    /// `[prices."<backend model>"]`: over the built-in price catalog.
    pub prices: BTreeMap<String, super::prices::FilePrice>,
    /// `[teams.<id>]`: teams, their spend budgets and concurrency cap.
    pub teams: BTreeMap<String, super::teams::FileTeam>,
}

/// `listen` may be a single address or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The addresses in file order.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `[settings]`: every key is optional; defaults live in `validate`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileSettings {
    pub listen: Option<OneOrMany>,
    pub health_check_interval_seconds: Option<f64>,
    pub health_check_timeout_seconds: Option<f64>,
    pub recovery_check_interval_seconds: Option<f64>,
    pub request_timeout_seconds: Option<f64>,
    pub stream_idle_timeout_seconds: Option<f64>,
    pub max_retries: Option<u32>,
    pub max_internal_retries: Option<u32>,
    pub circuit_breaker_failure_threshold: Option<u32>,
    pub circuit_breaker_timeout_seconds: Option<f64>,
    pub circuit_breaker_success_threshold: Option<u32>,
    pub max_request_body_bytes: Option<u64>,
    pub admin_token: Option<String>,
    pub metrics_listen: Option<String>,
    pub metrics_auth: Option<bool>,
    pub stream_include_usage: Option<bool>,
    /// `[settings.shared_state]`: limits shared across replicas on Redis.
    pub shared_state: Option<FileSharedState>,
    pub client_header_timeout_seconds: Option<f64>,
    pub client_idle_timeout_seconds: Option<f64>,
    pub client_write_timeout_seconds: Option<f64>,
    pub connect_timeout_seconds: Option<f64>,
    pub retry_on_timeout: Option<bool>,
    pub smart_ai: FileSmartAi,
    /// `[settings.responses]`: the Responses API conversation store.
    pub responses: Option<super::responses::FileResponses>,
}

/// `[settings.shared_state]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileSharedState {
    pub redis_url: Option<String>,
    pub key_prefix: Option<String>,
    pub timeout_ms: Option<u64>,
    pub on_unavailable: Option<String>,
}

/// `[settings.smart_ai]` (Berry's confidence strategy).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileSmartAi {
    pub initial_confidence: Option<f64>,
    pub min_confidence: Option<f64>,
    pub exploration_ratio: Option<f64>,
    pub non_premium_stability_bonus: Option<f64>,
    pub enable_time_decay: Option<bool>,
    pub lightweight_check_interval_seconds: Option<f64>,
    pub confidence_adjustments: FileConfidenceAdjustments,
}

/// `[settings.smart_ai.confidence_adjustments]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileConfidenceAdjustments {
    pub success_boost: Option<f64>,
    pub network_error_penalty: Option<f64>,
    pub auth_error_penalty: Option<f64>,
    pub rate_limit_penalty: Option<f64>,
    pub server_error_penalty: Option<f64>,
    pub model_error_penalty: Option<f64>,
    pub timeout_penalty: Option<f64>,
}

/// `[users.<id>]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileUser {
    pub name: Option<String>,
    pub token: Option<String>,
    pub allowed_models: Vec<String>,
    pub enabled: Option<bool>,
    pub tags: Vec<String>,
    pub rate_limit: Option<FileRateLimit>,
    /// The id of the user's team (a key of `teams`).
    pub team: Option<String>,
    pub budget_usd_per_day: super::teams::Given,
    pub budget_usd_per_month: super::teams::Given,
}

/// `[users.<id>.rate_limit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileRateLimit {
    pub requests_per_minute: Option<u64>,
    pub requests_per_hour: Option<u64>,
    pub requests_per_day: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub tokens_per_day: Option<u64>,
    pub max_concurrent: Option<u64>,
}

/// `[providers.<id>]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileProvider {
    pub name: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub models: Vec<String>,
    pub enabled: Option<bool>,
    pub timeout_seconds: Option<f64>,
    pub max_retries: Option<u32>,
    pub backend_type: Option<String>,
    /// Azure OpenAI `api-version` query parameter (azure only).
    pub api_version: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// Client request headers passed on to this provider beyond the built-in allow-list.
    pub forward_headers: Vec<String>,
    /// Whether the provider serves the OpenAI Responses API natively (default: true for
    /// openai and azure `/openai/v1`, false otherwise).
    pub responses_api: Option<bool>,
    /// Automatic prompt-cache breakpoints on translated Messages requests (default true).
    pub auto_cache: Option<bool>,
}

/// `[models.<key>]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileModel {
    pub name: Option<String>,
    pub strategy: Option<String>,
    pub enabled: Option<bool>,
    pub backends: Vec<FileBackend>,
    /// `session` (default) or `none`.
    pub affinity: Option<String>,
    pub affinity_ttl_seconds: Option<f64>,
}

/// `[[models.<key>.backends]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileBackend {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub weight: Option<f64>,
    pub priority: Option<u32>,
    pub enabled: Option<bool>,
    pub tags: Vec<String>,
    pub billing_mode: Option<String>,
    /// This backend's own price, over the model's listed price.
    pub price: Option<super::prices::FilePrice>,
}
