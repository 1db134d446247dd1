//! Turns the file structs into a checked [`Config`], reporting every problem at once.

use super::endpoint::parse_base_url;
use super::file::*;
use super::model::*;
use super::prices::PriceList;
use super::problem::{Problem, Problems};
use super::shared_state::validate_shared_state;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// Default client listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

const CREDENTIAL: &str =
    "carries the client's credentials; the provider's come from api_key and [providers.<id>.headers]";
const ACCOUNT: &str =
    "selects the provider account's organization or project; set it in [providers.<id>.headers]";
const HOP_BY_HOP: &str = "is a hop-by-hop header";
const SET_BY_GATEWAY: &str = "is the gateway's own, set or handled on every attempt";

/// Header names `forward_headers` refuses, with the reason the problem states: credentials
/// (the client's gateway token must never reach a provider, nor choose one of its
/// accounts), hop-by-hop headers, and what the gateway itself sets or handles per attempt
/// (framing, `Host`, `Expect`, the request id, `Accept-Encoding`: usage is read from
/// uncompressed answers). Names are lower-case.
pub const UNFORWARDABLE: [(&str, &str); 19] = [
    ("authorization", CREDENTIAL),
    ("proxy-authorization", CREDENTIAL),
    ("x-api-key", CREDENTIAL),
    ("api-key", CREDENTIAL),
    ("cookie", CREDENTIAL),
    ("openai-organization", ACCOUNT),
    ("openai-project", ACCOUNT),
    ("connection", HOP_BY_HOP),
    ("keep-alive", HOP_BY_HOP),
    ("proxy-connection", HOP_BY_HOP),
    ("te", HOP_BY_HOP),
    ("trailer", HOP_BY_HOP),
    ("upgrade", HOP_BY_HOP),
    ("host", SET_BY_GATEWAY),
    ("content-length", SET_BY_GATEWAY),
    ("transfer-encoding", SET_BY_GATEWAY),
    ("expect", SET_BY_GATEWAY),
    ("accept-encoding", SET_BY_GATEWAY),
    ("x-request-id", SET_BY_GATEWAY),
];

/// Validates a parsed file. `Err` holds every problem found, each with its key path.
pub fn validate(file: FileConfig) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::default();
    let mut warnings = Vec::new();

    let settings = validate_settings(file.settings, &mut p);
    let price_list = PriceList::build(file.prices, &mut p);

    let mut providers = Vec::with_capacity(file.providers.len());
    for (id, fp) in file.providers {
        providers.push(validate_provider(id, fp, &mut p));
    }
    let provider_index: HashMap<&str, (&Provider, HashSet<&str>)> = providers
        .iter()
        .map(|pr| {
            let models = pr.models.iter().map(String::as_str).collect();
            (pr.id.as_str(), (pr, models))
        })
        .collect();

    let mut models = Vec::with_capacity(file.models.len());
    let mut names: HashMap<String, String> = HashMap::new();
    for (key, fm) in file.models {
        let m = validate_model(key, fm, &provider_index, &price_list, &mut p, &mut warnings);
        if let Some(other) = names.get(&m.name) {
            p.add(
                format!("models.{}.name", m.key),
                format!(
                    "client-facing name `{}` is already used by models.{other}",
                    m.name
                ),
            );
        } else {
            names.insert(m.name.clone(), m.key.clone());
        }
        models.push(m);
    }
    // A key that is another model's client-facing name would let one word (in
    // `allowed_models`) name two models.
    for m in &models {
        if let Some(other) = names.get(&m.key).filter(|other| **other != m.key) {
            p.add(
                format!("models.{}", m.key),
                format!(
                    "the key `{}` is the client-facing name of models.{other}; a model key \
                     must not be another model's name",
                    m.key
                ),
            );
        }
    }

    super::prices::warn_unpriced(&models, &mut warnings);

    let teams = super::teams::validate_teams(file.teams, &mut p);
    let team_ids: HashSet<&str> = teams.iter().map(|t| t.id.as_str()).collect();
    let model_refs: HashSet<&str> = models
        .iter()
        .flat_map(|m| [m.key.as_str(), m.name.as_str()])
        .collect();
    let mut users = Vec::with_capacity(file.users.len());
    let mut tokens: HashMap<String, String> = HashMap::new();
    for (id, fu) in file.users {
        let path = format!("users.{id}");
        let token = match fu.token {
            Some(t) if !t.trim().is_empty() => t,
            Some(_) => {
                p.add(format!("{path}.token"), "must not be empty");
                String::new()
            }
            None => {
                p.add(format!("{path}.token"), "is required");
                String::new()
            }
        };
        if !token.is_empty() {
            if let Some(other) = tokens.get(&token) {
                p.add(
                    format!("{path}.token"),
                    format!("is the same token as users.{other}.token; tokens must be unique"),
                );
            } else {
                tokens.insert(token.clone(), id.clone());
            }
            if settings
                .admin_token
                .as_ref()
                .is_some_and(|a| a.expose() == token)
            {
                p.add(
                    format!("{path}.token"),
                    "must differ from settings.admin_token",
                );
            }
        }
        for (i, m) in fu.allowed_models.iter().enumerate() {
            if !model_refs.contains(m.as_str()) {
                warnings.push(format!(
                    "{path}.allowed_models[{i}]: `{m}` names no model key or model name"
                ));
            }
        }
        let rate_limit = fu.rate_limit.map(|r| {
            for (k, v) in [
                ("requests_per_minute", r.requests_per_minute),
                ("requests_per_hour", r.requests_per_hour),
                ("requests_per_day", r.requests_per_day),
                ("tokens_per_minute", r.tokens_per_minute),
                ("tokens_per_day", r.tokens_per_day),
                ("max_concurrent", r.max_concurrent),
            ] {
                if v == Some(0) {
                    p.add(format!("{path}.rate_limit.{k}"), "must be at least 1");
                }
            }
            RateLimit {
                per_minute: r.requests_per_minute,
                per_hour: r.requests_per_hour,
                per_day: r.requests_per_day,
                tokens_per_minute: r.tokens_per_minute,
                tokens_per_day: r.tokens_per_day,
                max_concurrent: r.max_concurrent,
            }
        });
        let team = super::teams::check_team_ref(&path, fu.team, &team_ids, &mut p);
        let budget = super::teams::Budget::check(
            &path,
            fu.budget_usd_per_day,
            fu.budget_usd_per_month,
            &mut p,
        );
        users.push(User {
            team,
            budget,
            name: fu.name.unwrap_or_else(|| id.clone()),
            id,
            token: Secret::new(token),
            allowed_models: fu.allowed_models,
            enabled: fu.enabled.unwrap_or(true),
            tags: fu.tags,
            rate_limit: rate_limit.filter(|r| *r != RateLimit::default()),
        });
    }

    if p.0.is_empty() {
        Ok(Config {
            settings,
            users,
            teams,
            providers,
            models,
            prices: price_list.prices(),
            warnings,
        })
    } else {
        Err(p.0)
    }
}

fn validate_settings(s: FileSettings, p: &mut Problems) -> Settings {
    let listen = match s.listen {
        Some(l) => l.into_vec(),
        None => vec![DEFAULT_LISTEN.to_string()],
    };
    if listen.is_empty() {
        p.add("settings.listen", "must name at least one address");
    }
    for (i, addr) in listen.iter().enumerate() {
        if addr.parse::<SocketAddr>().is_err() {
            p.add(
                format!("settings.listen[{i}]"),
                format!("`{addr}` is not an ip:port address"),
            );
        }
    }
    if let Some(m) = &s.metrics_listen {
        if m.parse::<SocketAddr>().is_err() {
            p.add(
                "settings.metrics_listen",
                format!("`{m}` is not an ip:port address"),
            );
        }
    }
    let admin_token = match s.admin_token {
        Some(t) if t.trim().is_empty() => {
            p.add(
                "settings.admin_token",
                "must not be empty (omit it to disable the admin API)",
            );
            None
        }
        Some(t) => Some(Secret::new(t)),
        None => None,
    };
    let metrics_auth = s.metrics_auth.unwrap_or(false);
    if metrics_auth && admin_token.is_none() {
        p.add(
            "settings.metrics_auth",
            "needs settings.admin_token to be set",
        );
    }
    let max_request_body_bytes = s.max_request_body_bytes.unwrap_or(32 * 1024 * 1024);
    if max_request_body_bytes == 0 {
        p.add("settings.max_request_body_bytes", "must be at least 1");
    }
    let sa = s.smart_ai;
    let ca = sa.confidence_adjustments;
    let d = SmartAiSettings::default();
    let sp = "settings.smart_ai";
    let smart_ai = SmartAiSettings {
        initial_confidence: p.fraction(
            &format!("{sp}.initial_confidence"),
            sa.initial_confidence,
            d.initial_confidence,
        ),
        min_confidence: p.fraction(
            &format!("{sp}.min_confidence"),
            sa.min_confidence,
            d.min_confidence,
        ),
        exploration_ratio: p.fraction(
            &format!("{sp}.exploration_ratio"),
            sa.exploration_ratio,
            d.exploration_ratio,
        ),
        non_premium_stability_bonus: {
            let v = sa
                .non_premium_stability_bonus
                .unwrap_or(d.non_premium_stability_bonus);
            if !v.is_finite() || v <= 0.0 {
                p.add(
                    format!("{sp}.non_premium_stability_bonus"),
                    format!("must be a number > 0 (got {v})"),
                );
            }
            v
        },
        enable_time_decay: sa.enable_time_decay.unwrap_or(d.enable_time_decay),
        lightweight_check_interval: p.seconds(
            &format!("{sp}.lightweight_check_interval_seconds"),
            sa.lightweight_check_interval_seconds,
            600.0,
        ),
        success_boost: p.fraction(
            &format!("{sp}.confidence_adjustments.success_boost"),
            ca.success_boost,
            d.success_boost,
        ),
        network_error_penalty: p.fraction(
            &format!("{sp}.confidence_adjustments.network_error_penalty"),
            ca.network_error_penalty,
            d.network_error_penalty,
        ),
        auth_error_penalty: p.fraction(
            &format!("{sp}.confidence_adjustments.auth_error_penalty"),
            ca.auth_error_penalty,
            d.auth_error_penalty,
        ),
        rate_limit_penalty: p.fraction(
            &format!("{sp}.confidence_adjustments.rate_limit_penalty"),
            ca.rate_limit_penalty,
            d.rate_limit_penalty,
        ),
        server_error_penalty: p.fraction(
            &format!("{sp}.confidence_adjustments.server_error_penalty"),
            ca.server_error_penalty,
            d.server_error_penalty,
        ),
        model_error_penalty: p.fraction(
            &format!("{sp}.confidence_adjustments.model_error_penalty"),
            ca.model_error_penalty,
            d.model_error_penalty,
        ),
        timeout_penalty: p.fraction(
            &format!("{sp}.confidence_adjustments.timeout_penalty"),
            ca.timeout_penalty,
            d.timeout_penalty,
        ),
    };
    if smart_ai.min_confidence > smart_ai.initial_confidence {
        p.add(
            format!("{sp}.min_confidence"),
            "must not exceed initial_confidence",
        );
    }
    Settings {
        listen,
        health_check_interval: p.seconds(
            "settings.health_check_interval_seconds",
            s.health_check_interval_seconds,
            30.0,
        ),
        health_check_timeout: p.seconds(
            "settings.health_check_timeout_seconds",
            s.health_check_timeout_seconds,
            10.0,
        ),
        recovery_check_interval: p.seconds(
            "settings.recovery_check_interval_seconds",
            s.recovery_check_interval_seconds,
            120.0,
        ),
        request_timeout: p.seconds(
            "settings.request_timeout_seconds",
            s.request_timeout_seconds,
            30.0,
        ),
        stream_idle_timeout: p.seconds(
            "settings.stream_idle_timeout_seconds",
            s.stream_idle_timeout_seconds,
            120.0,
        ),
        max_retries: s.max_retries.or(s.max_internal_retries).unwrap_or(3),
        circuit_breaker_failure_threshold: p.at_least_one(
            "settings.circuit_breaker_failure_threshold",
            s.circuit_breaker_failure_threshold,
            5,
        ),
        circuit_breaker_timeout: p.seconds(
            "settings.circuit_breaker_timeout_seconds",
            s.circuit_breaker_timeout_seconds,
            60.0,
        ),
        circuit_breaker_success_threshold: p.at_least_one(
            "settings.circuit_breaker_success_threshold",
            s.circuit_breaker_success_threshold,
            3,
        ),
        max_request_body_bytes,
        admin_token,
        metrics_listen: s.metrics_listen,
        metrics_auth,
        stream_include_usage: s.stream_include_usage.unwrap_or(false),
        client_header_timeout: p.seconds(
            "settings.client_header_timeout_seconds",
            s.client_header_timeout_seconds,
            10.0,
        ),
        client_idle_timeout: p.seconds(
            "settings.client_idle_timeout_seconds",
            s.client_idle_timeout_seconds,
            60.0,
        ),
        client_write_timeout: p.seconds(
            "settings.client_write_timeout_seconds",
            s.client_write_timeout_seconds,
            30.0,
        ),
        connect_timeout: p.seconds(
            "settings.connect_timeout_seconds",
            s.connect_timeout_seconds,
            5.0,
        ),
        retry_on_timeout: s.retry_on_timeout.unwrap_or(true),
        shared_state: s.shared_state.and_then(|ss| validate_shared_state(ss, p)),
        smart_ai,
        responses: super::responses::validate(s.responses, p),
    }
}

fn validate_provider(id: String, fp: FileProvider, p: &mut Problems) -> Provider {
    let path = format!("providers.{id}");
    let endpoint = match fp.base_url.as_deref() {
        Some(u) => match parse_base_url(u) {
            Ok(e) => e,
            Err(why) => {
                p.add(format!("{path}.base_url"), format!("`{u}` {why}"));
                placeholder_endpoint()
            }
        },
        None => {
            p.add(format!("{path}.base_url"), "is required");
            placeholder_endpoint()
        }
    };
    let api_key = match fp.api_key {
        Some(k) if k.trim().is_empty() => {
            p.add(format!("{path}.api_key"), "must not be empty");
            String::new()
        }
        Some(k) => k,
        None => {
            p.add(format!("{path}.api_key"), "is required");
            String::new()
        }
    };
    let backend_type = match fp.backend_type.as_deref() {
        None => BackendType::OpenAi,
        Some(s) => BackendType::parse(s).unwrap_or_else(|| {
            p.add(
                format!("{path}.backend_type"),
                format!("`{s}` is not one of openai, azure, anthropic (claude), gemini"),
            );
            BackendType::OpenAi
        }),
    };
    let timeout = fp
        .timeout_seconds
        .map(|t| p.seconds(&format!("{path}.timeout_seconds"), Some(t), 30.0));
    let mut headers = Vec::with_capacity(fp.headers.len());
    for (name, value) in fp.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            p.add(
                format!("{path}.headers.{name}"),
                "is not a valid HTTP header name",
            );
        } else if http::HeaderValue::from_str(&value).is_err() {
            p.add(
                format!("{path}.headers.{name}"),
                "value is not a valid HTTP header value",
            );
        }
        headers.push((name, Secret::new(value)));
    }
    if http::HeaderValue::from_str(&api_key).is_err() {
        p.add(
            format!("{path}.api_key"),
            "has characters not allowed in an HTTP header",
        );
    }
    let api_version = azure_api_version(p, &path, backend_type, fp.api_version, &mut headers);
    let forward_headers = forward_headers(p, &path, fp.forward_headers);
    Provider {
        name: fp.name.unwrap_or_else(|| id.clone()),
        id,
        endpoint,
        api_key: Secret::new(api_key),
        models: fp.models,
        enabled: fp.enabled.unwrap_or(true),
        timeout,
        max_retries: fp.max_retries,
        backend_type,
        api_version,
        headers,
        forward_headers,
        responses_api: fp.responses_api,
        auto_cache: fp.auto_cache.unwrap_or(true),
    }
}

/// `forward_headers`: each entry a valid header name (stored lower-case, duplicates
/// dropped) that is not in [`UNFORWARDABLE`].
fn forward_headers(p: &mut Problems, path: &str, names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let at = format!("{path}.forward_headers[{i}]");
        let lower = name.to_ascii_lowercase();
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
            p.add(at, format!("`{name}` is not a valid HTTP header name"));
        } else if let Some((_, why)) = UNFORWARDABLE.iter().find(|(n, _)| *n == lower) {
            p.add(at, format!("`{name}` cannot be forwarded: it {why}"));
        } else if !out.contains(&lower) {
            out.push(lower);
        }
    }
    out
}

/// Azure's `api-version`: `api_version`, else Berry's `headers."api-version"` (moved out of
/// the headers into the query), else the default. Other types take neither.
fn azure_api_version(
    p: &mut Problems,
    path: &str,
    backend_type: BackendType,
    configured: Option<String>,
    headers: &mut Vec<(String, Secret)>,
) -> Option<String> {
    if backend_type != BackendType::Azure {
        if configured.is_some() {
            p.add(
                format!("{path}.api_version"),
                "applies only to backend_type = \"azure\"",
            );
        }
        return None;
    }
    let from_header = headers
        .iter()
        .position(|(n, _)| n.eq_ignore_ascii_case("api-version"))
        .map(|i| headers.remove(i).1.expose().to_string());
    let version = configured
        .or(from_header)
        .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_string());
    let valid = !version.is_empty()
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid {
        p.add(
            format!("{path}.api_version"),
            format!("`{version}` is not an api-version (letters, digits, '-', '.')"),
        );
    }
    Some(version)
}

fn placeholder_endpoint() -> Endpoint {
    Endpoint {
        tls: false,
        host: String::new(),
        port: 0,
        path_prefix: String::new(),
        query: None,
    }
}

fn validate_model(
    key: String,
    fm: FileModel,
    providers: &HashMap<&str, (&Provider, HashSet<&str>)>,
    price_list: &PriceList,
    p: &mut Problems,
    warnings: &mut Vec<String>,
) -> ModelConfig {
    let path = format!("models.{key}");
    let name = match fm.name {
        Some(n) if n.trim().is_empty() => {
            p.add(format!("{path}.name"), "must not be empty");
            key.clone()
        }
        Some(n) => n,
        None => key.clone(),
    };
    let strategy = match fm.strategy.as_deref() {
        None => Strategy::WeightedRandom,
        Some(s) => Strategy::parse(s).unwrap_or_else(|| {
            let known: Vec<&str> = Strategy::ALL.iter().map(|(n, _)| *n).collect();
            p.add(
                format!("{path}.strategy"),
                format!("`{s}` is not a known strategy ({})", known.join(", ")),
            );
            Strategy::WeightedRandom
        }),
    };
    let enabled = fm.enabled.unwrap_or(true);
    let mut backends = Vec::with_capacity(fm.backends.len());
    let mut usable = 0usize;
    let mut seen = HashSet::new();
    for (i, fb) in fm.backends.into_iter().enumerate() {
        let bpath = format!("{path}.backends[{i}]");
        let provider_id = fb.provider.unwrap_or_default();
        let provider = if provider_id.is_empty() {
            p.add(format!("{bpath}.provider"), "is required");
            None
        } else {
            let found = providers.get(provider_id.as_str());
            if found.is_none() {
                p.add(
                    format!("{bpath}.provider"),
                    format!("`{provider_id}` is not a provider (no [providers.{provider_id}])"),
                );
            }
            found
        };
        let model = match fb.model {
            Some(m) if !m.trim().is_empty() => m,
            Some(_) => {
                p.add(format!("{bpath}.model"), "must not be empty");
                String::new()
            }
            None => {
                p.add(format!("{bpath}.model"), "is required");
                String::new()
            }
        };
        let weight = fb.weight.unwrap_or(1.0);
        if !weight.is_finite() || weight <= 0.0 {
            p.add(
                format!("{bpath}.weight"),
                format!("must be a finite number > 0 (got {weight})"),
            );
        }
        let billing_mode = match fb.billing_mode.as_deref() {
            None | Some("per_token") => BillingMode::PerToken,
            Some("per_request") => BillingMode::PerRequest,
            Some(other) => {
                p.add(
                    format!("{bpath}.billing_mode"),
                    format!("`{other}` is not per_token or per_request"),
                );
                BillingMode::PerToken
            }
        };
        let b_enabled = fb.enabled.unwrap_or(true);
        if let Some((pr, listed)) = provider {
            if !listed.is_empty() && !model.is_empty() && !listed.contains(model.as_str()) {
                warnings.push(format!(
                    "{bpath}.model: `{model}` is not listed in providers.{}.models",
                    pr.id
                ));
            }
            if b_enabled && pr.enabled {
                usable += 1;
            }
        }
        if !seen.insert((provider_id.clone(), model.clone())) {
            p.add(
                bpath.clone(),
                format!(
                    "duplicates an earlier backend (provider `{provider_id}`, model `{model}`)"
                ),
            );
        }
        let price = price_list.for_backend(&format!("{bpath}.price"), &model, fb.price, p);
        backends.push(BackendConfig {
            provider: provider_id,
            model,
            weight,
            priority: fb.priority.unwrap_or(1),
            enabled: b_enabled,
            tags: fb.tags,
            billing_mode,
            price,
        });
    }
    if enabled && usable == 0 {
        p.add(
            format!("{path}.backends"),
            "an enabled model needs at least one enabled backend on an enabled provider",
        );
    }
    let affinity = match fm.affinity.as_deref() {
        None => Affinity::Session,
        Some(a) => Affinity::parse(a).unwrap_or_else(|| {
            p.add(
                format!("{path}.affinity"),
                format!("`{a}` is not session or none"),
            );
            Affinity::Session
        }),
    };
    let affinity_ttl = p.seconds(
        &format!("{path}.affinity_ttl_seconds"),
        fm.affinity_ttl_seconds,
        DEFAULT_AFFINITY_TTL.as_secs_f64(),
    );
    ModelConfig {
        key,
        name,
        strategy,
        enabled,
        backends,
        affinity,
        affinity_ttl,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, Config, ConfigError, Format};
    use std::time::Duration;

    /// A valid config whose provider `p` has `forward_headers = {list}`.
    fn with_forward_headers(list: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[providers.p]\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key = \"k\"\nforward_headers = {list}\n[models.m]\n[[models.m.backends]]\nprovider = \"p\"\nmodel = \"r\"\n"
        );
        load_str(&text, Format::Toml, &|_| None)
    }

    #[test]
    fn a_model_key_that_is_another_models_name_is_refused() {
        let text = "[providers.p]\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key = \"k\"\n\
            [models.gpt-4]\nname = \"gpt-4-legacy\"\n[[models.gpt-4.backends]]\nprovider = \"p\"\nmodel = \"a\"\n\
            [models.new]\nname = \"gpt-4\"\n[[models.new.backends]]\nprovider = \"p\"\nmodel = \"b\"\n\
            [users.u]\ntoken = \"t\"\nallowed_models = [\"gpt-4\"]\n";
        let e = load_str(text, Format::Toml, &|_| None).unwrap_err();
        let problem = e
            .problems
            .iter()
            .find(|p| p.path == "models.gpt-4")
            .unwrap_or_else(|| panic!("{e}"));
        assert!(problem.message.contains("models.new"), "{problem}");
        // a model named after its own key is fine
        let own = text.replace("name = \"gpt-4\"", "name = \"new\"");
        assert!(load_str(&own, Format::Toml, &|_| None).is_ok());
    }

    #[test]
    fn forward_headers_are_stored_lower_case_once() {
        let cfg =
            with_forward_headers(r#"["X-Trace-Id", "x-trace-id", "OpenAI-Beta", "x-mock-mode"]"#)
                .unwrap();
        assert_eq!(
            cfg.providers[0].forward_headers,
            ["x-trace-id", "openai-beta", "x-mock-mode"]
        );
        let cfg = with_forward_headers("[]").unwrap();
        assert!(cfg.providers[0].forward_headers.is_empty());
    }

    #[test]
    fn forward_headers_refuse_bad_names_credentials_and_framing() {
        let refused = [
            "x bad",
            "",
            "x-é",
            "Authorization",
            "Proxy-Authorization",
            "x-api-key",
            "api-key",
            "Cookie",
            "OpenAI-Organization",
            "openai-project",
            "Host",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "keep-alive",
            "TE",
            "Upgrade",
            "Expect",
            "Accept-Encoding",
            "X-Request-Id",
        ];
        let list = format!(
            "[{}, \"x-fine\"]",
            refused
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let e = with_forward_headers(&list).unwrap_err();
        let problems: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), refused.len(), "{problems:#?}");
        for (i, (problem, name)) in problems.iter().zip(refused).enumerate() {
            let head = format!("providers.p.forward_headers[{i}]: `{name}` ");
            assert!(problem.starts_with(&head), "{problem}");
        }
        assert!(problems[0].ends_with("is not a valid HTTP header name"));
        assert!(problems[1].ends_with("is not a valid HTTP header name"));
        assert!(problems[3].contains("cannot be forwarded: it carries the client's credentials"));
        assert!(problems[8].contains("organization or project"));
        assert!(problems[13].contains("hop-by-hop"));
        assert!(problems[11].contains("the gateway's own"));
    }

    #[test]
    fn forward_headers_must_be_a_list_of_strings() {
        let e = with_forward_headers(r#""x-one""#).unwrap_err();
        assert_eq!(e.problems[0].path, "providers.p.forward_headers");
    }

    /// The problems of `BASE` with `[settings.shared_state]` = `table`, as `path: message`.
    fn shared_state_problems(table: &str) -> Vec<String> {
        let text = format!("[settings.shared_state]\n{table}\n{BASE}");
        match load_str(&text, Format::Toml, &|_| None) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn shared_state_settings_are_checked_with_key_paths_and_never_echo_the_url() {
        assert!(shared_state_problems("redis_url = \"redis://127.0.0.1:6379/0\"").is_empty());
        assert!(shared_state_problems(
            "redis_url = \"rediss://:pw@cache:6380\"\nkey_prefix = \"b:\"\ntimeout_ms = 10000\non_unavailable = \"deny\""
        )
        .is_empty());
        let cases = [
            (
                "on_unavailable = \"local\"",
                "settings.shared_state.redis_url: is required",
            ),
            (
                "redis_url = \"http://:s3cret@cache:6379\"",
                "settings.shared_state.redis_url: must be a redis://",
            ),
            (
                "redis_url = \"redis://cache\"\nkey_prefix = \"{b}:\"",
                "settings.shared_state.key_prefix: must not contain",
            ),
            (
                "redis_url = \"redis://cache\"\ntimeout_ms = 0",
                "settings.shared_state.timeout_ms: must be between 1 and 10000",
            ),
            (
                "redis_url = \"redis://cache\"\ntimeout_ms = 10001",
                "settings.shared_state.timeout_ms: must be between 1 and 10000",
            ),
            (
                "redis_url = \"redis://cache\"\non_unavailable = \"sometimes\"",
                "settings.shared_state.on_unavailable:",
            ),
        ];
        for (table, want) in cases {
            let problems = shared_state_problems(table);
            assert_eq!(problems.len(), 1, "{table}: {problems:?}");
            assert!(problems[0].starts_with(want), "{table}: {problems:?}");
            assert!(!problems[0].contains("s3cret"), "{problems:?}");
        }
    }

    const BASE: &str = r#"
[providers.p]
base_url = "http://127.0.0.1:1/v1"
api_key = "k"
[models.m]
name = "x"
[[models.m.backends]]
provider = "p"
model = "r"
"#;

    #[test]
    fn client_limits_have_defaults_and_must_be_positive() {
        let cfg = load_str(BASE, Format::Toml, &|_| None).unwrap();
        let s = &cfg.settings;
        assert_eq!(s.client_header_timeout, Duration::from_secs(10));
        assert_eq!(s.client_idle_timeout, Duration::from_secs(60));
        assert_eq!(s.client_write_timeout, Duration::from_secs(30));
        assert_eq!(s.connect_timeout, Duration::from_secs(5));
        assert!(s.retry_on_timeout);

        let set = "[settings]\nclient_header_timeout_seconds = 1.5\nclient_idle_timeout_seconds = 2\nclient_write_timeout_seconds = 3\nconnect_timeout_seconds = 0.5\nretry_on_timeout = false\n";
        let cfg = load_str(&format!("{set}{BASE}"), Format::Toml, &|_| None).unwrap();
        let s = &cfg.settings;
        assert_eq!(s.client_header_timeout, Duration::from_millis(1500));
        assert_eq!(s.client_idle_timeout, Duration::from_secs(2));
        assert_eq!(s.client_write_timeout, Duration::from_secs(3));
        assert_eq!(s.connect_timeout, Duration::from_millis(500));
        assert!(!s.retry_on_timeout);

        let bad = "[settings]\nclient_header_timeout_seconds = 0\nclient_idle_timeout_seconds = -1\nclient_write_timeout_seconds = -0.5\nconnect_timeout_seconds = 0\n";
        let err = load_str(&format!("{bad}{BASE}"), Format::Toml, &|_| None).unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        for key in [
            "settings.client_header_timeout_seconds",
            "settings.client_idle_timeout_seconds",
            "settings.client_write_timeout_seconds",
            "settings.connect_timeout_seconds",
        ] {
            assert!(paths.contains(&key), "{key} not reported: {paths:?}");
        }
    }
}
