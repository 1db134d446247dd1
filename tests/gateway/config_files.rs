//! Config files are tested artifacts: every file in conf/ passes --check-config, YAML is
//! the same schema, and bad configs are refused with every problem and its key path.

use crate::harness::*;
use std::process::Command;

fn check(path: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(binary());
    cmd.arg("--check-config").arg("--config").arg(path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run --check-config");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const REFERENCE_ENV: [(&str, &str); 8] = [
    ("OPENAI_API_KEY", "sk-check-1"),
    ("OPENAI_BACKUP_KEY", "sk-check-2"),
    ("AZURE_OPENAI_KEY", "az-check"),
    ("ANTHROPIC_API_KEY", "sk-ant-check"),
    ("BERRY_ADMIN_TOKEN", "admin-check"),
    ("BERRY_ADMIN_USER_TOKEN", "user-admin-check"),
    ("BERRY_SEARCH_TOKEN", "user-search-check"),
    ("BERRY_RESEARCH_TOKEN", "user-research-check"),
];

#[test]
fn every_conf_file_passes_check_config() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut checked = 0;
    for entry in std::fs::read_dir(format!("{root}/conf")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let p = path.to_string_lossy().to_string();
        match name.as_str() {
            "pingora.yaml" => {
                // Pingora's own conf: parsed by Pingora's test mode (-t).
                let out = Command::new(binary())
                    .args([
                        "--check-config",
                        "--config",
                        &format!("{root}/conf/demo.toml"),
                        "-c",
                        &p,
                    ])
                    .env("BERRY_DEMO_MOCK_A", "http://127.0.0.1:1/v1")
                    .env("BERRY_DEMO_MOCK_B", "http://127.0.0.1:2/v1")
                    .output()
                    .unwrap();
                assert!(out.status.success());
                let conf = std::fs::read_to_string(&path).unwrap();
                pingora_core::server::configuration::ServerConf::from_yaml(&conf)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            "demo.toml" => {
                let (ok, out) = check(
                    &p,
                    &[
                        ("BERRY_DEMO_MOCK_A", "http://127.0.0.1:1/v1"),
                        ("BERRY_DEMO_MOCK_B", "http://127.0.0.1:2/v1"),
                    ],
                );
                assert!(ok, "{name}: {out}");
            }
            _ if name.ends_with(".toml") || name.ends_with(".yaml") || name.ends_with(".yml") => {
                let (ok, out) = check(&p, &REFERENCE_ENV);
                assert!(ok, "{name}: {out}");
                for (_, secret) in REFERENCE_ENV {
                    assert!(
                        !out.contains(secret),
                        "{name}: summary shows a secret: {out}"
                    );
                }
            }
            _ => continue,
        }
        checked += 1;
    }
    assert!(
        checked >= 3,
        "conf/ should hold berry.toml, demo.toml, pingora.yaml"
    );
}

#[test]
fn berry_api_readme_example_loads() {
    // The config from Berry API's README (seeds/berry-readme.zh.md), unchanged.
    let dir = temp_dir("berry-readme");
    let p = dir.join("config.toml");
    std::fs::write(&p, BERRY_README_CONFIG).unwrap();
    let (ok, out) = check(&p.to_string_lossy(), &[]);
    assert!(ok, "{out}");
    assert!(out.contains("models: 8"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn yaml_is_the_same_schema() {
    let m = mock("m");
    let yaml = format!(
        r#"
settings:
  listen: ["127.0.0.1:1"]
  request_timeout_seconds: 2
users:
  u:
    token: tok-yaml
providers:
  p:
    base_url: "{}"
    api_key: "${{YAML_KEY}}"
models:
  m:
    name: yaml-model
    strategy: round_robin
    backends:
      - provider: p
        model: real
        weight: 1
"#,
        m.base_url()
    );
    let gw = Gateway::start_with(&yaml, "yaml", &[], &[("YAML_KEY", "sk-from-env")]);
    settle(&gw, &[&m]);
    let r = gw.chat("tok-yaml", "yaml-model");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        m.last_request().unwrap().header("authorization"),
        Some("Bearer sk-from-env")
    );
}

#[test]
fn bad_config_reports_every_problem_with_its_key_path() {
    let dir = temp_dir("bad-config");
    let p = dir.join("bad.toml");
    std::fs::write(
        &p,
        r#"
[settings]
request_timeout_seconds = -1
[users.a]
token = "same"
[users.b]
token = "same"
[providers.p]
base_url = "ftp://x"
api_key = "${DEFINITELY_NOT_SET_VAR}"
api_version = "2024-10-21"
[providers.az]
base_url = "https://r.openai.azure.com"
api_key = "k"
backend_type = "azure"
api_version = "2024 10 21"
forward_headers = ["x-trace-id", "Cookie", "x bad", "Transfer-Encoding"]
[providers.colon]
base_url = "http://a:b:80"
api_key = "k"
[models.m]
name = "x"
strategy = "fastest"
[[models.m.backends]]
provider = "nope"
model = "r"
wieght = 2
weight = 0
[models.n]
name = "x"
[[models.n.backends]]
provider = "p"
model = "r"
"#,
    )
    .unwrap();
    let (ok, out) = check(&p.to_string_lossy(), &[]);
    assert!(!ok);
    for needle in [
        "models.m.backends[0].wieght: unknown key",
        "settings.request_timeout_seconds",
        "users.b.token",
        "providers.p.base_url",
        "providers.p.api_key: environment variable `DEFINITELY_NOT_SET_VAR` is not set",
        "models.m.strategy",
        "models.m.backends[0].provider",
        "models.m.backends[0].weight",
        "models.n.name",
        "providers.p.api_version: applies only to backend_type = \"azure\"",
        "providers.az.api_version: `2024 10 21` is not an api-version",
        "providers.colon.base_url",
        "providers.az.forward_headers[1]: `Cookie` cannot be forwarded: it carries the client's credentials",
        "providers.az.forward_headers[2]: `x bad` is not a valid HTTP header name",
        "providers.az.forward_headers[3]: `Transfer-Encoding` cannot be forwarded",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in:\n{out}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn listen_precedence_flag_env_config() {
    let m = mock("m");
    let port = free_port();
    let cfg = format!(
        "[settings]\nlisten = [\"127.0.0.1:{}\"]\n{}{}[models.m]\nname = \"x\"\n[[models.m.backends]]\nprovider = \"p\"\nmodel = \"r\"\n",
        free_port(),
        user("u", "t", ""),
        provider("p", &m)
    );
    let dir = temp_dir("listen");
    let path = dir.join("c.toml");
    std::fs::write(&path, cfg).unwrap();
    let conf = pingora_conf(&dir);
    let mut child = Command::new(binary())
        .env("CONFIG_PATH", &path)
        .env("BIND_ADDRESS", format!("127.0.0.1:{port}"))
        .arg("-c")
        .arg(&conf)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = wait_until(std::time::Duration::from_secs(20), || {
        try_request(addr, "GET", "/health", &[], b"").is_ok()
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
    assert!(up, "CONFIG_PATH + BIND_ADDRESS were not honoured");
}

const BERRY_README_CONFIG: &str = r#"
[settings]
health_check_interval_seconds = 30
request_timeout_seconds = 30
max_retries = 3
circuit_breaker_failure_threshold = 5
circuit_breaker_timeout_seconds = 60

[users.admin]
name = "Administrator"
token = "berry-admin-token-12345"
allowed_models = []
enabled = true
tags = ["admin", "unlimited"]

[users.user1]
name = "Regular User 1"
token = "berry-user1-token-67890"
allowed_models = ["gpt-3.5-turbo", "fast-chat"]
enabled = true
tags = ["user", "basic"]

[users.premium]
name = "Premium User"
token = "berry-premium-token-abcde"
allowed_models = ["gpt-4", "gpt-4-turbo", "premium", "claude_3"]
enabled = true
tags = ["premium", "advanced"]

[providers.openai-primary]
name = "OpenAI Primary Account"
base_url = "https://api.openai.com/v1"
api_key = "sk-your-openai-key-here"
models = ["gpt-4", "gpt-4-turbo", "gpt-3.5-turbo"]
enabled = true
timeout_seconds = 30
max_retries = 3

[providers.azure-openai]
name = "Azure OpenAI Service"
base_url = "https://your-resource.openai.azure.com"
api_key = "your-azure-openai-key-here"
models = ["gpt-4", "gpt-35-turbo"]
enabled = true
timeout_seconds = 30
max_retries = 3
[providers.azure-openai.headers]
"api-version" = "2024-02-01"

[providers.anthropic]
name = "Anthropic Claude"
base_url = "https://api.anthropic.com"
api_key = "sk-ant-your-anthropic-key-here"
models = ["claude-3-opus-20240229", "claude-3-sonnet-20240229"]
enabled = true
timeout_seconds = 30
max_retries = 3

[providers.cheap-provider]
base_url = "https://cheap.example.com/v1"
api_key = "k1"
[providers.premium-provider]
base_url = "https://premium.example.com/v1"
api_key = "k2"
[providers.provider-a]
base_url = "https://a.example.com/v1"
api_key = "k3"
[providers.provider-b]
base_url = "https://b.example.com/v1"
api_key = "k4"
[providers.fast-provider]
base_url = "https://fast.example.com/v1"
api_key = "k5"
[providers.slow-provider]
base_url = "https://slow.example.com/v1"
api_key = "k6"

[models.gpt_4]
name = "gpt-4"
strategy = "weighted_random"
enabled = true

[[models.gpt_4.backends]]
provider = "openai-primary"
model = "gpt-4"
weight = 0.5
priority = 1
enabled = true
tags = ["premium", "stable"]

[[models.gpt_4.backends]]
provider = "azure-openai"
model = "gpt-4"
weight = 0.3
priority = 2
enabled = true
tags = ["enterprise"]

[[models.gpt_4.backends]]
provider = "anthropic"
model = "claude-3-opus-20240229"
weight = 0.2
priority = 3
enabled = true
tags = ["alternative"]

[models.cost_optimized]
name = "cost-optimized"
strategy = "weighted_random"
enabled = true
[[models.cost_optimized.backends]]
provider = "cheap-provider"
model = "gpt-3.5-turbo"
weight = 0.7
priority = 1
enabled = true
[[models.cost_optimized.backends]]
provider = "premium-provider"
model = "gpt-3.5-turbo"
weight = 0.3
priority = 2
enabled = true

[models.balanced]
name = "balanced"
strategy = "round_robin"
enabled = true
[[models.balanced.backends]]
provider = "provider-a"
model = "gpt-4"
weight = 1.0
priority = 1
enabled = true
[[models.balanced.backends]]
provider = "provider-b"
model = "gpt-4"
weight = 1.0
priority = 2
enabled = true

[models.fast_response]
name = "fast-response"
strategy = "least_latency"
enabled = true
[[models.fast_response.backends]]
provider = "fast-provider"
model = "gpt-3.5-turbo"
weight = 1.0
priority = 1
enabled = true
[[models.fast_response.backends]]
provider = "slow-provider"
model = "gpt-3.5-turbo"
weight = 1.0
priority = 2
enabled = true

[models.high_availability]
name = "high-availability"
strategy = "failover"
enabled = true
[[models.high_availability.backends]]
provider = "provider-a"
model = "gpt-4"
weight = 1.0
priority = 1
enabled = true
[[models.high_availability.backends]]
provider = "provider-b"
model = "gpt-4"
weight = 1.0
priority = 2
enabled = true

[models.smart_model]
name = "smart-model"
strategy = "weighted_failover"
enabled = true
[[models.smart_model.backends]]
provider = "provider-a"
model = "gpt-4"
weight = 0.6
priority = 1
enabled = true
[[models.smart_model.backends]]
provider = "provider-b"
model = "gpt-4"
weight = 0.3
priority = 2
enabled = true

[models.simple_random]
name = "simple-random"
strategy = "random"
enabled = true
[[models.simple_random.backends]]
provider = "provider-a"
model = "gpt-3.5-turbo"
weight = 1.0
priority = 1
enabled = true

[models.premium]
name = "premium"
strategy = "smart_ai"
[[models.premium.backends]]
provider = "openai-primary"
model = "gpt-4"
"#;

#[test]
fn demo_serves_stream_and_non_stream_out_of_the_box() {
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = temp_dir("demo");
    let mut child = Command::new(binary())
        .arg("-c")
        .arg(pingora_conf(&dir))
        .args(["demo", "--listen", &addr.to_string()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = wait_until(std::time::Duration::from_secs(20), || {
        try_request(addr, "GET", "/health", &[], b"").is_ok_and(|r| r.status == 200)
    });
    let auth = [("Authorization", "Bearer demo-token")];
    let plain = up.then(|| {
        request(
            addr,
            "POST",
            "/v1/chat/completions",
            &auth,
            br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}"#,
        )
    });
    let stream = up.then(|| {
        request(
            addr,
            "POST",
            "/v1/chat/completions",
            &auth,
            br#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello"}]}"#,
        )
    });
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(dir);
    assert!(up, "demo did not come up");
    let banner = String::from_utf8_lossy(&out.stdout);
    assert!(
        banner.contains(&format!("curl -s http://{addr}/v1/chat/completions")),
        "{banner}"
    );
    let plain = plain.unwrap();
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert!(plain.json()["choices"][0]["message"]["content"].is_string());
    let stream = stream.unwrap();
    assert_eq!(stream.sse_data().last().map(String::as_str), Some("[DONE]"));
}
