//! Gateway configuration: file → serde structs (Berry schema) → validated [`Config`].
//!
//! All configuration file I/O of the gateway happens here. The pipeline is:
//! text → generic tree (TOML or YAML by extension) → `${ENV}` expansion → typed structs
//! (unknown keys collected, not fatal to parsing) → [`validate`](validate::validate).
//! Every problem found is reported at once, each with its key path.

pub mod endpoint;
pub mod file;
pub mod model;
pub mod problem;
pub mod shared_state;
pub mod validate;

pub use model::*;
pub use problem::Problem;
pub use shared_state::SharedSettings;

use serde_json::Value;
use std::fmt;
use std::path::Path;

/// A config that could not be loaded: every problem, in file order where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problems are about (empty for in-memory text).
    pub source: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        if self.source.is_empty() {
            writeln!(f, "invalid configuration ({n} problem(s)):")?;
        } else {
            writeln!(f, "invalid configuration {} ({n} problem(s)):", self.source)?;
        }
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// File syntax, chosen by extension: `.yaml`/`.yml` = YAML, anything else TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
}

impl Format {
    /// The format a path's extension selects.
    pub fn for_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml") => {
                Format::Yaml
            }
            _ => Format::Toml,
        }
    }
}

/// Reads and validates a config file, expanding `${VAR}` from the process environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source: source.clone(),
        problems: vec![Problem {
            path: String::new(),
            message: format!("cannot read {source}: {e}"),
        }],
    })?;
    load_str(&text, Format::for_path(path), &|k| std::env::var(k).ok()).map_err(|mut e| {
        e.source = source;
        e
    })
}

/// Parses and validates config text. `env` resolves `${VAR}` references (injected for tests).
pub fn load_str(
    text: &str,
    format: Format,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let fail = |problems| ConfigError {
        source: String::new(),
        problems,
    };
    let mut tree: Value = match format {
        Format::Toml => toml::from_str(text).map_err(|e| {
            fail(vec![Problem {
                path: String::new(),
                message: format!("TOML syntax: {}", e.to_string().trim_end()),
            }])
        })?,
        Format::Yaml => {
            if text.trim().is_empty() {
                Value::Object(Default::default())
            } else {
                serde_yaml::from_str(text).map_err(|e| {
                    fail(vec![Problem {
                        path: String::new(),
                        message: format!("YAML syntax: {e}"),
                    }])
                })?
            }
        }
    };
    if tree.is_null() {
        tree = Value::Object(Default::default());
    }

    let mut problems = Vec::new();
    expand_env(&mut tree, &mut String::new(), env, &mut problems);

    let mut unknown = Vec::new();
    let typed = {
        let mut on_unknown =
            |path: serde_ignored::Path<'_>| unknown.push(format_ignored_path(&path));
        let de = serde_ignored::Deserializer::new(&tree, &mut on_unknown);
        serde_path_to_error::deserialize::<_, file::FileConfig>(de)
    };
    for key in unknown {
        problems.push(Problem {
            path: key,
            message: "unknown key (check the spelling; see conf/berry.toml)".into(),
        });
    }
    let file = match typed {
        Ok(f) => f,
        Err(e) => {
            problems.push(Problem {
                path: e.path().to_string(),
                message: e.inner().to_string(),
            });
            return Err(fail(problems));
        }
    };
    match validate::validate(file) {
        Ok(cfg) if problems.is_empty() => Ok(cfg),
        Ok(_) => Err(fail(problems)),
        Err(more) => {
            problems.extend(more);
            Err(fail(problems))
        }
    }
}

/// Replaces `${NAME}` in every string value; an unset variable is a problem at that key path.
fn expand_env(
    v: &mut Value,
    path: &mut String,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    match v {
        Value::String(s) if s.contains("${") => match expand_str(s, env) {
            Ok(new) => *s = new,
            Err(var) => problems.push(Problem {
                path: path.clone(),
                message: format!("environment variable `{var}` is not set"),
            }),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                expand_env(item, path, env, problems);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                expand_env(item, path, env, problems);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Expands `${NAME}` occurrences; `Err(NAME)` for the first unset one. Text that is not a
/// well-formed reference (`$x`, `${`, `${1a}`) is kept literally.
fn expand_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if is_env_name(&after[..end]) => {
                let name = &after[..end];
                out.push_str(&env(name).ok_or_else(|| name.to_string())?);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn format_ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", format_ignored_path(parent)),
        P::Map { parent, key } => {
            let p = format_ignored_path(parent);
            if p.is_empty() {
                key.to_string()
            } else {
                format!("{p}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            format_ignored_path(parent)
        }
    }
}

/// A short human summary of a config without any secret: counts and names only.
pub fn summary(cfg: &Config) -> String {
    use fmt::Write;
    let mut s = String::new();
    let enabled_models = cfg.models.iter().filter(|m| m.enabled).count();
    let backends: usize = cfg.models.iter().map(|m| m.backends.len()).sum();
    let _ = writeln!(
        s,
        "listen: {}\nproviders: {} ({} enabled)\nmodels: {} ({} enabled), backends: {}\nusers: {} ({} enabled)",
        cfg.settings.listen.join(", "),
        cfg.providers.len(),
        cfg.providers.iter().filter(|p| p.enabled).count(),
        cfg.models.len(),
        enabled_models,
        backends,
        cfg.users.len(),
        cfg.users.iter().filter(|u| u.enabled).count(),
    );
    for m in &cfg.models {
        let _ = writeln!(
            s,
            "  model {} (key {}, {}, {}): {}",
            m.name,
            m.key,
            m.strategy.as_str(),
            if m.enabled { "enabled" } else { "disabled" },
            m.backends
                .iter()
                .map(|b| format!(
                    "{}/{}{}",
                    b.provider,
                    b.model,
                    if b.enabled { "" } else { " (disabled)" }
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s
}
