//! `berry-gateway` binary: parse the command line and hand over to the library.

use berry_gateway::{app, cli::Cli, demo};
use clap::Parser;
use std::process::ExitCode;

/// jemalloc instead of glibc malloc (see Cargo.toml for the measurements behind it).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Pingora's HTTP/1 server warns when a second response head is written; the gateway
    // does that on purpose when a stream fails over before its commit point after its head
    // went out (the later head is dropped, its events follow the first one's).
    let default_filter = "info,pingora_core::protocols::http::v1::server=error";
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
        .target(env_logger::Target::Pipe(Box::new(
            berry_gateway::logbuf::LogSink,
        )))
        .init();
    if cli.wants_demo() {
        return demo::run(cli);
    }
    if cli.check_config {
        return app::check_config(&cli.config);
    }
    // Absolute before daemon mode moves the working directory to `/`, so reloads keep
    // reading the same file. Not canonicalised: a symlinked config (a Kubernetes ConfigMap
    // mount) must be followed anew on every reload.
    let path = std::path::absolute(&cli.config).unwrap_or_else(|_| cli.config.clone());
    match app::load_config_or_report(&path) {
        Ok(cfg) => app::run_gateway(cli, cfg, &path),
        Err(code) => code,
    }
}
