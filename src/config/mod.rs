//! Gateway configuration: file → serde structs (Berry schema) → validated [`Config`].
//!
//! All configuration file I/O of the gateway happens here. The pipeline is:
//! text → generic tree (TOML or YAML by extension) → `${ENV}` expansion → typed structs
//! (unknown keys collected, not fatal to parsing) → [`validate`](validate::validate).
//! Every problem found is reported at once, each with its key path.

pub mod endpoint;
pub mod file;
pub mod given;
pub mod model;
pub mod prices;
pub mod problem;
pub mod responses;
pub mod shared_state;
pub mod teams;
pub mod validate;

pub use model::*;
pub use problem::Problem;
pub use responses::ResponsesSettings;
pub use shared_state::SharedSettings;
pub use teams::{Budget, Team};

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

/// Reads and validates a config file, expanding `${VAR}` with [`crate::cli::config_var`]
/// (the process's own variables, then the environment).
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source: source.clone(),
        problems: vec![Problem {
            path: String::new(),
            message: format!("cannot read {source}: {e}"),
        }],
    })?;
    load_str(&text, Format::for_path(path), &crate::cli::config_var).map_err(|mut e| {
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
        Format::Toml => toml::from_str(text).map_err(|e| fail(vec![toml_syntax(text, &e)]))?,
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

/// A TOML syntax error as a problem: its key path (the table, and the key of the line it
/// is on), line, column and what is wrong. Never the text of the line: `toml`'s own
/// `Display` quotes it, and it may hold a secret (`api_key = "sk-…` half saved).
fn toml_syntax(text: &str, e: &toml::de::Error) -> Problem {
    let at = e.span().map_or(0, |s| s.start).min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    Problem {
        path: toml_key_path(text, line_start),
        message: format!(
            "TOML syntax at line {line}, column {column}: {}",
            e.message().trim_end()
        ),
    }
}

/// The key path of the TOML line starting at byte `line_start`, as far as it can be told
/// without a parse: the last table header above it, then the line's own key. Only bare
/// keys (letters, digits, `_`, `-`, `.`) are named; anything else is left out.
fn toml_key_path(text: &str, line_start: usize) -> String {
    fn bare(key: &str) -> Option<&str> {
        let key = key.trim();
        let ok = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        ok.then_some(key)
    }
    fn header(line: &str) -> Option<&str> {
        let inner = line.trim().strip_prefix('[')?;
        let inner = inner.strip_prefix('[').unwrap_or(inner);
        bare(inner.split(']').next()?)
    }
    let above = text.get(..line_start).unwrap_or_default();
    let this = text.get(line_start..).unwrap_or_default();
    let this = this.lines().next().unwrap_or_default();
    if let Some(h) = header(this) {
        return h.to_string();
    }
    let table = above.lines().rev().find_map(header);
    let key = this.split_once('=').and_then(|(k, _)| bare(k));
    match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (Some(t), None) => t.to_string(),
        (None, Some(k)) => k.to_string(),
        (None, None) => String::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str, format: Format) -> ConfigError {
        load_str(text, format, &|_| None).unwrap_err()
    }

    #[test]
    fn syntax_errors_name_the_place_never_the_text() {
        let duplicate = "[settings]\nmax_retries = 2\n[providers.p]\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key = \"sk-first-secret\"\napi_key = \"sk-second-secret\"\n";
        let e = problems(duplicate, Format::Toml);
        let shown = e.to_string();
        assert!(!shown.contains("sk-"), "{shown}");
        assert_eq!(e.problems[0].path, "providers.p.api_key", "{shown}");
        assert!(
            e.problems[0]
                .message
                .starts_with("TOML syntax at line 6, column "),
            "{shown}"
        );
        // a half-saved file: the string never ends
        let unterminated = "[users.u]\ntoken = \"tok-half-saved-secret\n";
        let e = problems(unterminated, Format::Toml);
        let shown = e.to_string();
        assert!(!shown.contains("half-saved"), "{shown}");
        assert_eq!(e.problems[0].path, "users.u.token", "{shown}");
        assert!(shown.contains("line 2, column "), "{shown}");
        // YAML: line and column, no text
        let yaml = "users:\n  u:\n    token: \"tok-yaml-secret\n";
        let shown = problems(yaml, Format::Yaml).to_string();
        assert!(!shown.contains("yaml-secret"), "{shown}");
        assert!(shown.contains("line "), "{shown}");
    }

    #[test]
    fn key_paths_of_toml_lines() {
        let text =
            "a = 1\n[providers.p]\nx = 1\n[[models.m.backends]]\nmodel = 2\n\"quoted key\" = 3\n";
        let start = |needle: &str| text.find(needle).unwrap();
        assert_eq!(toml_key_path(text, 0), "a");
        assert_eq!(toml_key_path(text, start("x = 1")), "providers.p.x");
        assert_eq!(
            toml_key_path(text, start("model = 2")),
            "models.m.backends.model"
        );
        assert_eq!(toml_key_path(text, start("\"quoted")), "models.m.backends");
        assert_eq!(toml_key_path(text, start("[providers")), "providers.p");
    }
}
