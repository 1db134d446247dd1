//! `berry-gateway` binary: parse the command line and hand over to the library.

use berry_gateway::{app, cli::Cli, demo};
use clap::Parser;
use std::process::ExitCode;

/// jemalloc instead of glibc malloc (see Cargo.toml for the measurements behind it).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at start-up: a background thread returns freed pages to the
/// system (after `dirty_decay_ms`, 10 s) while the process idles. Without it pages are only
/// returned when the process allocates again, so an idle gateway kept the RSS of its last
/// burst (thousands of streams released, then quiet).
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf = MallocConf(c"background_thread:true".as_ptr());

/// The `const char *` jemalloc reads.
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);
// SAFETY: points to a static, immutable C string.
unsafe impl Sync for MallocConf {}

#[cfg(feature = "heap-profile")]
#[path = "../bench/heap_dump.rs"]
mod heap_dump;

fn main() -> ExitCode {
    #[cfg(feature = "heap-profile")]
    heap_dump::install();
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
