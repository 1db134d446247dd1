//! Command line: the gateway's own flags plus Pingora's (`-c`, `-d`, `-u`, `-t`).

use clap::{Parser, Subcommand};
use pingora_core::server::configuration::Opt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Values for config `${VAR}` references set by the process itself (the demo's mock URLs),
/// ahead of the environment: the environment is never written once threads exist.
static CONFIG_VARS: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Sets the process's own config variables (see [`config_var`]) once; false (and nothing
/// changed) when they were already set.
pub fn set_config_vars(vars: Vec<(String, String)>) -> bool {
    CONFIG_VARS.set(vars).is_ok()
}

/// The value of config variable `key`: the process's own ([`set_config_vars`]), else the
/// environment's.
pub fn config_var(key: &str) -> Option<String> {
    CONFIG_VARS
        .get()
        .and_then(|vars| vars.iter().find(|(k, _)| k == key))
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var(key).ok())
}

/// Default gateway config path.
pub const DEFAULT_CONFIG: &str = "conf/berry.toml";

/// `berry-gateway` command line.
#[derive(Parser, Debug)]
#[command(
    name = "berry-gateway",
    version,
    about = "OpenAI-compatible AI gateway on Pingora"
)]
pub struct Cli {
    /// Gateway config (TOML; .yaml/.yml = YAML).
    #[arg(long, env = "CONFIG_PATH", default_value = DEFAULT_CONFIG, global = true)]
    pub config: PathBuf,

    /// Client listener address(es); overrides BIND_ADDRESS and settings.listen.
    #[arg(long, global = true)]
    pub listen: Vec<String>,

    /// Load and validate the config, print a summary, exit (1 on problems).
    #[arg(long)]
    pub check_config: bool,

    /// Run the self-contained demo (same as the `demo` subcommand).
    #[arg(long)]
    pub demo: bool,

    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub pingora: Opt,
}

/// Subcommands.
#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Start built-in mock providers and the gateway on conf/demo.toml.
    Demo,
}

impl Cli {
    /// Listener addresses: `--listen`, else `BIND_ADDRESS` (comma-separated), else config.
    pub fn listen_addrs(&self, from_config: &[String]) -> Vec<String> {
        if !self.listen.is_empty() {
            return self.listen.clone();
        }
        if let Ok(v) = std::env::var("BIND_ADDRESS") {
            let v: Vec<String> = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if !v.is_empty() {
                return v;
            }
        }
        from_config.to_vec()
    }

    /// Whether the demo was asked for.
    pub fn wants_demo(&self) -> bool {
        self.demo || self.command == Some(Command::Demo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_config_vars_come_before_the_environment_and_are_set_once() {
        assert_eq!(config_var("BERRY_TEST_CLI_UNSET_VAR"), None);
        assert_eq!(config_var("PATH"), std::env::var("PATH").ok());
        assert!(set_config_vars(vec![
            ("PATH".into(), "own".into()),
            ("BERRY_TEST_CLI_UNSET_VAR".into(), "x".into()),
        ]));
        assert_eq!(config_var("PATH").as_deref(), Some("own"));
        assert_eq!(config_var("BERRY_TEST_CLI_UNSET_VAR").as_deref(), Some("x"));
        assert!(!set_config_vars(Vec::new()));
        assert_eq!(config_var("PATH").as_deref(), Some("own"));
    }
}
