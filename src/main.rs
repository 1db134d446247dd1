//! `berry-gateway` binary: parse the command line and hand over to the library.

use berry_gateway::{app, cli::Cli, demo};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
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
    let path = cli.config.clone();
    match app::load_config_or_report(&path) {
        Ok(cfg) => app::run_gateway(cli, cfg, &path),
        Err(code) => code,
    }
}
