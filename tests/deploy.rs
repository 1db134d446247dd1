//! Checks every file under `deploy/` that can be checked without network or a container
//! engine: YAML/JSON syntax, the Pingora server confs, the Kubernetes config against
//! `--check-config`, systemd unit keys, Dockerfile structure, and that every PromQL
//! expression of the alert rules and the Grafana dashboard names only metrics (and
//! selector labels) that the real gateway binary exports. When `promtool` is on PATH it
//! also runs `promtool check rules`, `test rules` and `check config`
//! (`BERRY_REQUIRE_PROMTOOL=1` makes its absence a failure).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may fail loudly

use pingora_core::server::configuration::ServerConf;
use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berry_mock::{MockOptions, MockProvider};
use berry_test_support::Client;

const BIN: &str = env!("CARGO_BIN_EXE_berry-gateway");

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Every document of a (possibly multi-document) YAML file.
fn yaml_docs(rel: &str) -> Vec<Yaml> {
    let text = read(rel);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Yaml::deserialize(d).unwrap_or_else(|e| panic!("{rel}: invalid YAML: {e}")))
        .collect()
}

fn yaml(rel: &str) -> Yaml {
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "{rel}: expected one YAML document");
    docs.remove(0)
}

fn s(v: &Yaml) -> &str {
    v.as_str().unwrap_or_default()
}

fn seq(v: &Yaml) -> &[Yaml] {
    v.as_sequence().map_or(&[], |s| s.as_slice())
}

/// A Pingora server conf, parsed by Pingora itself.
fn server_conf(text: &str, what: &str) -> ServerConf {
    ServerConf::from_yaml(text).unwrap_or_else(|e| panic!("{what}: Pingora rejects it: {e}"))
}

/// `[Section] Key=Value` entries of a systemd unit, as (section, key, value).
fn unit_entries(rel: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in read(rel).lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        } else {
            panic!("{rel}: unparsable line {line:?}");
        }
    }
    out
}

fn unit_value<'a>(entries: &'a [(String, String, String)], key: &str) -> &'a str {
    let found: Vec<_> = entries.iter().filter(|(_, k, _)| k == key).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {key}= (found {found:?})"
    );
    &found[0].2
}

fn secs(v: &str) -> u64 {
    v.trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("not seconds: {v}"))
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!(
            "berry-deploy-{tag}-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&d).expect("create temp dir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("probe a free port");
    l.local_addr().expect("local addr").port()
}

/// One request to the gateway on `port` over a new connection: (status, body text).
fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let r = Client::connect(([127, 0, 0, 1], port).into())
        .expect("connect to gateway")
        .request(method, path, &headers, body.as_bytes());
    (r.status, r.text())
}

// ---------------------------------------------------------------------------------------
// PromQL: metric names and selector labels
// ---------------------------------------------------------------------------------------

/// Label names used in a `{...}` matcher list starting at `s[*i] == '{'`; advances past `}`.
fn matcher_labels(s: &[u8], i: &mut usize) -> Vec<String> {
    let mut labels = Vec::new();
    *i += 1;
    while *i < s.len() && s[*i] != b'}' {
        let c = s[*i];
        if c == b'"' || c == b'\'' || c == b'`' {
            skip_string(s, i);
        } else if is_ident_start(c) {
            labels.push(ident(s, i));
        } else {
            *i += 1;
        }
    }
    *i += 1;
    labels
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn ident(s: &[u8], i: &mut usize) -> String {
    let start = *i;
    while *i < s.len() && (is_ident_start(s[*i]) || s[*i].is_ascii_digit()) {
        *i += 1;
    }
    String::from_utf8_lossy(&s[start..*i]).into_owned()
}

fn skip_string(s: &[u8], i: &mut usize) {
    let quote = s[*i];
    *i += 1;
    while *i < s.len() && s[*i] != quote {
        *i += if s[*i] == b'\\' { 2 } else { 1 };
    }
    *i += 1;
}

/// The `berry_*` / `gen_ai_*` metric names of a PromQL expression, each with the label
/// names of its selector. Strings, `$variables`, `[ranges]` and the label lists of
/// `by`/`without`/`on`/`ignoring`/`group_left`/`group_right` are skipped.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let s = expr.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < s.len() {
        match s[i] {
            b'"' | b'\'' | b'`' => skip_string(s, &mut i),
            b'[' => {
                i += s[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .unwrap_or(s.len() - i)
            }
            b'{' => {
                matcher_labels(s, &mut i);
            }
            b'$' => {
                i += 1;
                i += usize::from(s.get(i) == Some(&b'{'));
                ident(s, &mut i);
            }
            c if is_ident_start(c) => {
                let word = ident(s, &mut i);
                while i < s.len() && s[i].is_ascii_whitespace() {
                    i += 1;
                }
                if GROUPING.contains(&word.as_str()) && s.get(i) == Some(&b'(') {
                    i += s[i..]
                        .iter()
                        .position(|&c| c == b')')
                        .unwrap_or(s.len() - i);
                } else if word.starts_with("berry_") || word.starts_with("gen_ai_") {
                    let labels = if s.get(i) == Some(&b'{') {
                        matcher_labels(s, &mut i)
                    } else {
                        Vec::new()
                    };
                    out.push((word, labels));
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[test]
fn promql_tokenizer() {
    let got = selectors(
        r#"sum by (gen_ai_provider_name, le) (rate(berry_x_bucket{model=~"$model", code="berry_no"}[$__rate_interval])) / on (job) gen_ai_y unless berry_z offset 10m"#,
    );
    let want = [
        ("berry_x_bucket", vec!["model", "code"]),
        ("gen_ai_y", vec![]),
        ("berry_z", vec![]),
    ];
    let want: Vec<(String, Vec<String>)> = want
        .iter()
        .map(|(m, l)| (m.to_string(), l.iter().map(|x| x.to_string()).collect()))
        .collect();
    assert_eq!(got, want);
}

/// Metric names exported by `/metrics` text (histograms expanded) → their label names.
fn exported(metrics: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let names = match kind {
                "histogram" => vec![
                    format!("{name}_bucket"),
                    format!("{name}_sum"),
                    format!("{name}_count"),
                ],
                "summary" => vec![name.into(), format!("{name}_sum"), format!("{name}_count")],
                _ => vec![name.to_string()],
            };
            for n in names {
                out.entry(n).or_default();
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let (name, rest) = line.split_at(line.find(['{', ' ']).unwrap_or(line.len()));
            let labels = if rest.starts_with('{') {
                matcher_labels(rest.as_bytes(), &mut 0)
            } else {
                Vec::new()
            };
            out.entry(name.to_string()).or_default().extend(labels);
        }
    }
    out
}

/// Every PromQL expression of alerts.yml and the Grafana dashboard, with where it is.
fn deploy_promql() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for group in seq(&yaml("deploy/prometheus/alerts.yml")["groups"]) {
        for rule in seq(&group["rules"]) {
            let name = format!("alerts.yml {}", s(&rule["alert"]));
            out.push((name, s(&rule["expr"]).to_string()));
        }
    }
    fn walk(v: &Json, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Json::Object(m) => {
                let title = m.get("title").and_then(Json::as_str).unwrap_or(title);
                for (k, v) in m {
                    match (k.as_str(), v.as_str()) {
                        ("expr" | "definition", Some(e)) => {
                            out.push((format!("grafana {title:?}"), e.to_string()))
                        }
                        _ => walk(v, title, out),
                    }
                }
            }
            Json::Array(a) => a.iter().for_each(|v| walk(v, title, out)),
            _ => {}
        }
    }
    walk(&dashboard(), "templating", &mut out);
    out
}

fn dashboard() -> Json {
    serde_json::from_str(&read("deploy/grafana/berry-gateway.json"))
        .expect("grafana dashboard is valid JSON")
}

/// Problems of `exprs` against the exported metrics: unknown names, unknown selector labels.
fn promql_problems(
    exprs: &[(String, String)],
    exported: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    // Target labels Prometheus adds (static labels and relabelling in prometheus.yml).
    const TARGET_LABELS: [&str; 5] = ["job", "instance", "env", "namespace", "pod"];
    let mut problems = Vec::new();
    for (place, expr) in exprs {
        for (metric, labels) in selectors(expr) {
            let Some(known) = exported.get(&metric) else {
                problems.push(format!("{place}: unknown metric {metric}"));
                continue;
            };
            for l in labels {
                let ok = known.contains(&l)
                    || TARGET_LABELS.contains(&l.as_str())
                    || (l == "le" && metric.ends_with("_bucket"));
                if !ok {
                    problems.push(format!("{place}: {metric} has no label {l}"));
                }
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn every_yaml_and_json_file_parses() {
    let mut stack = vec![repo("deploy")];
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read deploy dir").flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(repo(""))
                .unwrap()
                .to_string_lossy()
                .to_string();
            match path.extension().and_then(|e| e.to_str()) {
                _ if path.is_dir() => stack.push(path),
                Some("yaml" | "yml") => {
                    assert!(!yaml_docs(&rel).is_empty(), "{rel}: empty");
                    checked += 1;
                }
                Some("json") => {
                    serde_json::from_str::<Json>(&read(&rel))
                        .unwrap_or_else(|e| panic!("{rel}: invalid JSON: {e}"));
                    checked += 1;
                }
                _ => {}
            }
        }
    }
    assert!(
        checked >= 12,
        "only {checked} YAML/JSON files under deploy/"
    );
}

#[test]
fn systemd_units_and_upgrade_helper() {
    let conf = server_conf(
        &read("deploy/systemd/pingora.yaml"),
        "deploy/systemd/pingora.yaml",
    );
    assert_eq!(conf.pid_file, "/run/berry-gateway/berry-gateway.pid");
    assert!(conf.upgrade_sock.starts_with("/run/berry-gateway/"));
    assert!(!conf.daemon && !conf.daemon_wait_for_ready);
    let drain =
        conf.grace_period_seconds.unwrap() + conf.graceful_shutdown_timeout_seconds.unwrap();

    let exec = "/usr/local/bin/berry-gateway --config /etc/berry-gateway/berry.toml \
                -c /etc/berry-gateway/pingora.yaml";
    for (rel, ty) in [
        ("deploy/systemd/berry-gateway.service", "simple"),
        ("deploy/systemd/berry-gateway-daemon.service", "forking"),
    ] {
        let u = unit_entries(rel);
        let get = |k| unit_value(&u, k);
        assert_eq!(get("Type"), ty, "{rel}");
        assert!(get("ExecStart").starts_with(exec), "{rel}: ExecStart");
        assert_eq!(
            get("EnvironmentFile"),
            "-/etc/berry-gateway/secrets.env",
            "{rel}"
        );
        assert_eq!(get("KillSignal"), "SIGTERM", "{rel}");
        assert!(
            secs(get("TimeoutStopSec")) > drain,
            "{rel}: TimeoutStopSec <= grace"
        );
        assert_eq!(get("RuntimeDirectory"), "berry-gateway", "{rel}");
        assert_eq!(get("User"), "berry-gateway", "{rel}");
        assert!(get("LimitNOFILE").parse::<u64>().unwrap() >= 65536, "{rel}");
        for (k, v) in [
            ("NoNewPrivileges", "true"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "true"),
        ] {
            assert_eq!(get(k), v, "{rel}: {k}");
        }
        assert_eq!(get("WantedBy"), "multi-user.target", "{rel}");
        if ty == "simple" {
            assert_eq!(get("ExecStart"), exec, "{rel}: foreground, no -d");
            assert_eq!(get("ExecReload"), "/bin/kill -HUP $MAINPID", "{rel}");
            assert_eq!(get("Restart"), "on-failure", "{rel}");
        } else {
            assert_eq!(get("ExecStart"), format!("{exec} -d"), "{rel}");
            assert_eq!(get("PIDFile"), conf.pid_file, "{rel}: PIDFile = pid_file");
            assert_eq!(
                get("ExecReload"),
                "/usr/local/lib/berry-gateway/upgrade.sh --reload-hook $MAINPID",
                "{rel}"
            );
        }
    }

    let script = read("deploy/systemd/upgrade.sh");
    for needle in [
        r#"kill -HUP "$2""#,
        r#"-c "$PINGORA_CONF" -d -u &"#,
        r#"[ -S "$UPGRADE_SOCK" ]"#,
        r#"kill -QUIT "$old""#,
        "systemctl reload",
    ] {
        assert!(script.contains(needle), "upgrade.sh lacks {needle:?}");
    }
    let syntax = Command::new("sh")
        .arg("-n")
        .arg(repo("deploy/systemd/upgrade.sh"))
        .output()
        .expect("run sh -n");
    assert!(syntax.status.success(), "upgrade.sh: {syntax:?}");
}

#[test]
fn dockerfile_and_dockerignore() {
    let df = read("deploy/docker/Dockerfile");
    let lines: Vec<&str> = df
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let from: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "multi-stage build: {from:?}");
    assert!(from[0].starts_with("FROM rust:") && from[0].ends_with(" AS build"));
    assert_eq!(from[1], "FROM debian:bookworm-slim");
    for needle in [
        "cmake",
        "cargo build --release --locked",
        "ca-certificates",
        "ENV BIND_ADDRESS=0.0.0.0:3000",
        "EXPOSE 3000 9091",
        r#"ENTRYPOINT ["berry-gateway"]"#,
        r#"CMD ["--config", "/etc/berry-gateway/berry.toml", "-c", "/etc/berry-gateway/pingora.yaml"]"#,
    ] {
        assert!(df.contains(needle), "Dockerfile lacks {needle:?}");
    }
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric USER");
    assert!(uid >= 1000, "non-root fixed UID");
    // No HEALTHCHECK: the image has no HTTP client; orchestrators probe /health.
    assert!(!lines.iter().any(|l| l.starts_with("HEALTHCHECK")));
    // Every build-context source exists and is not excluded by .dockerignore.
    let ignore = read(".dockerignore");
    for pat in ["target/", ".git", "bench-results/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == pat),
            ".dockerignore lacks {pat}"
        );
    }
    for l in lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = l.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(repo(src).exists(), "Dockerfile copies missing {src}");
            assert!(
                !src.starts_with("target") && !src.starts_with(".git"),
                "{src} is ignored"
            );
        }
    }
    // Every local path the workspace manifest builds from (members, patched crates) is in
    // the build context.
    let copied: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
        .flat_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            parts[1..parts.len() - 1].to_vec()
        })
        .collect();
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let mut local_paths: Vec<String> = manifest["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    if let Some(patches) = manifest.get("patch").and_then(|p| p.get("crates-io")) {
        for dep in patches.as_table().unwrap().values() {
            local_paths.push(dep["path"].as_str().unwrap().to_string());
        }
    }
    assert!(local_paths.iter().any(|p| p.starts_with("vendor/")));
    for path in &local_paths {
        let top = path.split('/').next().unwrap();
        assert!(
            copied.contains(&top),
            "the Dockerfile does not copy {top} (needed for {path}): {copied:?}"
        );
    }
    let conf = server_conf(
        &read("deploy/docker/pingora.yaml"),
        "deploy/docker/pingora.yaml",
    );
    assert!(conf.pid_file.starts_with("/run/berry-gateway/") && !conf.daemon);
}

/// The Kubernetes objects of deploy/kubernetes by kind.
fn k8s() -> BTreeMap<String, Yaml> {
    let kust = yaml("deploy/kubernetes/kustomization.yaml");
    let listed: BTreeSet<String> = seq(&kust["resources"])
        .iter()
        .map(|r| s(r).to_string())
        .collect();
    let mut present = BTreeSet::new();
    let mut by_kind = BTreeMap::new();
    for entry in std::fs::read_dir(repo("deploy/kubernetes"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if name == "kustomization.yaml" || !name.ends_with(".yaml") {
            continue;
        }
        present.insert(name.clone());
        for doc in yaml_docs(&format!("deploy/kubernetes/{name}")) {
            let kind = s(&doc["kind"]).to_string();
            assert!(
                !s(&doc["apiVersion"]).is_empty() && !kind.is_empty(),
                "{name}"
            );
            assert!(
                !s(&doc["metadata"]["name"]).is_empty(),
                "{name}: metadata.name"
            );
            assert!(
                by_kind.insert(kind.clone(), doc).is_none(),
                "two {kind} objects"
            );
        }
    }
    assert_eq!(listed, present, "kustomization.yaml resources vs files");
    by_kind
}

#[test]
fn kubernetes_manifests() {
    let k = k8s();
    for kind in ["ConfigMap", "Secret", "Deployment", "Service"] {
        assert!(k.contains_key(kind), "missing {kind}");
    }
    let (cm, secret, dep, svc) = (
        &k["ConfigMap"],
        &k["Secret"],
        &k["Deployment"],
        &k["Service"],
    );
    let pod = &dep["spec"]["template"];
    let c = &seq(&pod["spec"]["containers"])[0];
    assert_eq!(dep["spec"]["replicas"].as_u64(), Some(3));
    // The autoscaler scales this Deployment from those 3 replicas up.
    let hpa = &k["HorizontalPodAutoscaler"];
    assert_eq!(s(&hpa["spec"]["scaleTargetRef"]["kind"]), "Deployment");
    assert_eq!(
        s(&hpa["spec"]["scaleTargetRef"]["name"]),
        s(&dep["metadata"]["name"])
    );
    assert_eq!(hpa["spec"]["minReplicas"].as_u64(), Some(3));
    assert!(hpa["spec"]["maxReplicas"].as_u64().unwrap() > 3);

    // Config: every ${VAR} of berry.toml comes from the Secret the pod's env uses, and the
    // file passes --check-config with exactly the Secret's (placeholder) values.
    let toml_text = s(&cm["data"]["berry.toml"]);
    let env: BTreeMap<String, String> = secret["stringData"]
        .as_mapping()
        .expect("Secret stringData")
        .iter()
        .map(|(k, v)| (s(k).to_string(), s(v).to_string()))
        .collect();
    for var in toml_text
        .split("${")
        .skip(1)
        .filter_map(|r| r.split_once('}'))
        .map(|r| r.0)
    {
        assert!(
            env.contains_key(var),
            "berry.toml needs ${{{var}}}, not in the Secret"
        );
    }
    let env_from = seq(&c["envFrom"])
        .iter()
        .map(|e| s(&e["secretRef"]["name"]))
        .collect::<Vec<_>>();
    assert_eq!(
        env_from,
        [s(&secret["metadata"]["name"])],
        "envFrom the Secret"
    );
    let tmp = TempDir::new("k8s");
    std::fs::write(tmp.0.join("berry.toml"), toml_text).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(tmp.0.join("berry.toml"))
        .arg("--check-config")
        .env_clear()
        .envs(&env)
        .output()
        .expect("run --check-config");
    assert!(out.status.success(), "configmap berry.toml: {}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.lines().any(|l| l.starts_with("warning")),
        "{}",
        show(&out)
    );
    let settings: toml::Value = toml::from_str(toml_text).expect("berry.toml");
    let metrics_listen = settings["settings"]["metrics_listen"].as_str().unwrap();
    // Replicas share limits on Redis; its URL (and password) comes from the Secret.
    let shared = &settings["settings"]["shared_state"];
    assert_eq!(shared["redis_url"].as_str(), Some("${BERRY_REDIS_URL}"));
    assert!(env["BERRY_REDIS_URL"].starts_with("rediss://"));

    // Server conf and shutdown timing.
    let conf = server_conf(s(&cm["data"]["pingora.yaml"]), "ConfigMap pingora.yaml");
    let drain =
        conf.grace_period_seconds.unwrap() + conf.graceful_shutdown_timeout_seconds.unwrap();
    let pre_stop = seq(&c["lifecycle"]["preStop"]["exec"]["command"]);
    assert_eq!(s(&pre_stop[0]), "/bin/sleep");
    let pre_stop: u64 = s(&pre_stop[1]).parse().unwrap();
    let tgps = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        tgps > pre_stop + drain,
        "terminationGracePeriodSeconds {tgps} <= {pre_stop} + {drain}"
    );

    // Mounts: the ConfigMap as a directory (never subPath), writable pid/upgrade dir.
    let mounts: BTreeMap<&str, &Yaml> = seq(&c["volumeMounts"])
        .iter()
        .map(|m| (s(&m["mountPath"]), m))
        .collect();
    let cfg_mount = mounts["/etc/berry-gateway"];
    assert!(
        cfg_mount["subPath"].is_null(),
        "subPath mounts never update"
    );
    let volumes: BTreeMap<&str, &Yaml> = seq(&pod["spec"]["volumes"])
        .iter()
        .map(|v| (s(&v["name"]), v))
        .collect();
    let cfg_vol = volumes[s(&cfg_mount["name"])];
    assert_eq!(s(&cfg_vol["configMap"]["name"]), s(&cm["metadata"]["name"]));
    for path in [&conf.pid_file, &conf.upgrade_sock] {
        let dir = Path::new(path).parent().unwrap().to_str().unwrap();
        let m = mounts
            .get(dir)
            .unwrap_or_else(|| panic!("{dir} must be mounted (read-only root)"));
        assert!(!volumes[s(&m["name"])]["emptyDir"].is_null());
    }
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        pod["spec"]["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );

    // Probes, ports, Service, scrape annotations.
    assert_eq!(s(&c["readinessProbe"]["httpGet"]["path"]), "/health");
    assert_eq!(s(&c["livenessProbe"]["httpGet"]["path"]), "/");
    let ports: BTreeMap<&str, u64> = seq(&c["ports"])
        .iter()
        .map(|p| (s(&p["name"]), p["containerPort"].as_u64().unwrap()))
        .collect();
    assert_eq!(ports, BTreeMap::from([("http", 3000), ("metrics", 9091)]));
    assert!(metrics_listen.ends_with(":9091"));
    for p in seq(&svc["spec"]["ports"]) {
        assert!(
            ports.contains_key(s(&p["targetPort"])),
            "Service targetPort {:?}",
            p
        );
    }
    assert_eq!(s(&svc["spec"]["type"]), "ClusterIP");
    let labels = &pod["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&labels[s(k)], v, "Service selector matches the pods");
    }
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(s(&ann["prometheus.io/scrape"]), "true");
    assert_eq!(s(&ann["prometheus.io/port"]), "9091");
    let env_bind = seq(&c["env"])
        .iter()
        .find(|e| s(&e["name"]) == "BIND_ADDRESS");
    assert_eq!(env_bind.map(|e| s(&e["value"])), Some("0.0.0.0:3000"));
}

#[test]
fn alert_rules_and_dashboard_structure() {
    let alerts = yaml("deploy/prometheus/alerts.yml");
    let mut names = BTreeSet::new();
    for rule in seq(&alerts["groups"]).iter().flat_map(|g| seq(&g["rules"])) {
        let name = s(&rule["alert"]);
        assert!(names.insert(name.to_string()), "duplicate alert {name}");
        assert!(!s(&rule["expr"]).is_empty(), "{name}: expr");
        assert!(
            !s(&rule["labels"]["severity"]).is_empty(),
            "{name}: severity"
        );
        for a in ["summary", "description"] {
            assert!(!s(&rule["annotations"][a]).is_empty(), "{name}: {a}");
        }
    }
    for want in [
        "BerryGatewayDown",
        "BerryBackendDown",
        "BerryCircuitOpen",
        "BerryHighErrorRatio",
        "BerryHighP99Latency",
        "BerryNoAvailableBackend",
        "BerryLastResortSelections",
        "BerryConfigReloadFailed",
        "BerryHealthChecksFailing",
        "BerryTeamBudget80Percent",
    ] {
        assert!(names.contains(want), "alerts.yml lacks {want}");
    }

    let prom = yaml("deploy/prometheus/prometheus.yml");
    for f in seq(&prom["rule_files"]) {
        assert!(
            repo("deploy/prometheus").join(s(f)).exists(),
            "rule file {f:?}"
        );
    }
    let jobs = seq(&prom["scrape_configs"]);
    assert!(jobs.iter().any(|j| !j["static_configs"].is_null()));
    assert!(jobs.iter().any(|j| !j["kubernetes_sd_configs"].is_null()));

    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    let vars: BTreeSet<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for v in ["DS_PROMETHEUS", "model", "provider", "team"] {
        assert!(vars.contains(v), "dashboard variable {v}");
    }
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate panel id ({title})"
        );
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "{title}: gridPos"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${DS_PROMETHEUS}",
            "{title}: datasource"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            for var in expr.split('$').skip(1) {
                let name: String = var
                    .trim_start_matches('{')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    name.starts_with("__") || vars.contains(name.as_str()),
                    "{title}: ${name}"
                );
            }
        }
    }
}

/// Starts the real gateway with a stub upstream, a dead upstream, a rate-limited user, a
/// priced model with cache reads and session keys, team and user budgets (one exhausted)
/// and a config reload, so every metric family has samples; then checks that alerts.yml
/// and the dashboard reference only exported metric names and selector labels.
#[test]
fn promql_uses_only_exported_metrics() {
    let exprs = deploy_promql();
    assert!(
        exprs.len() >= 60,
        "found only {} PromQL expressions",
        exprs.len()
    );
    let referenced: BTreeSet<String> = exprs
        .iter()
        .flat_map(|(_, e)| selectors(e))
        .map(|(m, _)| m)
        .collect();

    // The project's mock provider, serving the backend model of `live-model`.
    let live_mock = MockProvider::start_background(MockOptions {
        models: vec!["real-live".into(), "real-priced".into()],
        ..MockOptions::default()
    })
    .expect("start mock provider");
    let (live, dead, port) = (live_mock.addr().port(), free_port(), free_port());
    let tmp = TempDir::new("metrics");
    let config = tmp.0.join("berry.toml");
    let text = format!(
        r#"
[settings]
listen = ["127.0.0.1:{port}"]
health_check_interval_seconds = 1
recovery_check_interval_seconds = 1
max_retries = 1

[users.ops]
name = "ops"
token = "ops-token"

[users.limited]
name = "limited"
token = "limited-token"
[users.limited.rate_limit]
requests_per_minute = 1

[providers.live]
name = "live"
base_url = "http://127.0.0.1:{live}/v1"
api_key = "k-live"
models = ["real-live"]

[providers.cached]
name = "cached"
base_url = "http://127.0.0.1:{live}/v1"
api_key = "k-cached"
models = ["real-priced"]
headers = {{ "x-mock-cache-read" = "40" }}

[prices.real-priced]
input = 2
output = 8
cache_read = 0.5

[teams.eng]
name = "Engineering"
budget_usd_per_day = 100
budget_usd_per_month = 1000

[teams.tiny]
name = "Tiny"
budget_usd_per_day = 0.000001

[users.spender]
name = "spender"
token = "spender-token"
team = "eng"
budget_usd_per_month = 500

[users.broke]
name = "broke"
token = "broke-token"
team = "tiny"

[providers.dead-a]
name = "dead a"
base_url = "http://127.0.0.1:{dead}/v1"
api_key = "k-a"
models = ["real-dead"]

[providers.dead-b]
name = "dead b"
base_url = "http://127.0.0.1:{dead}/v1"
api_key = "k-b"
models = ["real-dead"]

[models.live]
name = "live-model"
strategy = "round_robin"
[[models.live.backends]]
provider = "live"
model = "real-live"

[models.cached]
name = "cached-model"
[[models.cached.backends]]
provider = "cached"
model = "real-priced"

[models.dead]
name = "dead-model"
strategy = "failover"
[[models.dead.backends]]
provider = "dead-a"
model = "real-dead"
priority = 1
[[models.dead.backends]]
provider = "dead-b"
model = "real-dead"
priority = 2
"#
    );
    std::fs::write(&config, &text).unwrap();
    let log = std::fs::File::create(tmp.0.join("gateway.log")).unwrap();
    let _gw = Proc(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .env_remove("BIND_ADDRESS")
            .env_remove("CONFIG_PATH")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start berry-gateway"),
    );
    let gateway_log = || std::fs::read_to_string(tmp.0.join("gateway.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "gateway did not start:\n{}",
            gateway_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let chat = |model: &str, token: &str| {
        let body =
            format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
        http(port, "POST", "/v1/chat/completions", Some(token), &body).0
    };
    assert_eq!(chat("live-model", "limited-token"), 200);
    assert_eq!(chat("live-model", "limited-token"), 429);
    // A changed file is reloaded by the watcher (berry_config_reloads_total).
    std::fs::write(&config, format!("{text}\n# changed\n")).unwrap();

    let mut metrics = BTreeMap::new();
    let mut body = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        assert_eq!(chat("live-model", "ops-token"), 200, "{}", gateway_log());
        chat("dead-model", "ops-token");
        // priced, with cache reads and a session key; the second user's team budget is
        // spent by its first request, so later ones are refused
        let cached = r#"{"model":"cached-model","prompt_cache_key":"s-1","messages":[{"role":"user","content":"hi"}]}"#;
        for token in ["spender-token", "broke-token"] {
            http(port, "POST", "/v1/chat/completions", Some(token), cached);
        }
        let (status, b) = http(port, "GET", "/metrics", None, "");
        assert_eq!(status, 200);
        body = b;
        metrics = exported(&body);
        if referenced.iter().all(|m| metrics.contains_key(m)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        metrics.contains_key("berry_build_info"),
        "no metrics:\n{body}"
    );
    let problems = promql_problems(&exprs, &metrics);
    assert!(
        problems.is_empty(),
        "deploy/ PromQL problems:\n  {}\n\nexported:\n{body}",
        problems.join("\n  ")
    );
}

fn show(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `promtool` checks when it is installed (`apt-get install prometheus`).
#[test]
fn promtool_checks() {
    let runs = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        let msg = "promtool not on PATH (or not working): promtool checks skipped (structural checks ran)";
        assert!(
            std::env::var_os("BERRY_REQUIRE_PROMTOOL").is_none(),
            "{msg}"
        );
        eprintln!("{msg}");
        return;
    }
    let dir = repo("deploy/prometheus");
    let promtool = |args: &[&str], cwd: &Path| {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        eprintln!("promtool {}: {}", args.join(" "), show(&out).trim());
        out
    };
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["test", "rules", "alerts_test.yml"],
    ] {
        let out = promtool(args, &dir);
        assert!(out.status.success(), "promtool {args:?} failed");
    }
    let out = promtool(&["check", "config", "prometheus.yml"], &dir);
    if !out.status.success() && show(&out).contains("kubernetes_sd_configs not found") {
        // Debian's promtool is built without Kubernetes service discovery: check the rest.
        let mut prom = yaml("deploy/prometheus/prometheus.yml");
        let jobs = prom["scrape_configs"].as_sequence_mut().unwrap();
        jobs.retain(|j| j["kubernetes_sd_configs"].is_null());
        let tmp = TempDir::new("promtool");
        std::fs::write(
            tmp.0.join("prometheus.yml"),
            serde_yaml::to_string(&prom).unwrap(),
        )
        .unwrap();
        std::fs::copy(dir.join("alerts.yml"), tmp.0.join("alerts.yml")).unwrap();
        eprintln!("promtool lacks kubernetes_sd_configs; checking the config without that job");
        let out = promtool(&["check", "config", "prometheus.yml"], &tmp.0);
        assert!(out.status.success(), "promtool check config failed");
    } else {
        assert!(out.status.success(), "promtool check config failed");
    }
}
