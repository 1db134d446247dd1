//! `berry-mock`: run Berry's OpenAI-compatible mock provider from the command line.
//!
//! Prints `listening on http://ADDR` as its first stdout line (flushed), then serves
//! until SIGTERM / SIGINT.
//!
//! ```text
//! berry-mock --listen 127.0.0.1:0 --models gpt-4o,gpt-4o-mini --chunks 5 --interval-ms 20 \
//!            --mode ok --no-record --threads 1 [--require-anthropic-version] [--account-headers]
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use berry_mock::{MockOptions, MockProvider, Mode};

/// OpenAI-compatible mock provider for Berry Gateway tests, benchmarks and demos.
#[derive(Parser, Debug)]
#[command(name = "berry-mock", version, about)]
struct Args {
    /// Address to listen on (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Comma-separated model ids served by GET /v1/models.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Content chunks per streamed answer (= completion_tokens).
    #[arg(long, default_value_t = 5)]
    chunks: u32,
    /// Milliseconds between two streamed content chunks.
    #[arg(long = "interval-ms", default_value_t = 20)]
    interval_ms: u64,
    /// Fault mode: ok | NNN | 429[:retry-after] | hang | close[:N] | garbage | slow:MS |
    /// reset | unterminated | cut[:N] | error-event[:N] | heartbeat | preamble[:error|cut] |
    /// limits[:requests|tokens|retry-after-ms[:VALUE]] | account | bad-key.
    #[arg(long, default_value = "ok")]
    mode: Mode,
    /// Require this API key (OpenAI routes: Authorization: Bearer / x-api-key / api-key;
    /// Anthropic: x-api-key; Azure deployments: api-key; Gemini: x-goog-api-key / ?key=).
    #[arg(long = "api-key")]
    api_key: Option<String>,
    /// Refuse Anthropic requests without an anthropic-version header (400).
    #[arg(long = "require-anthropic-version")]
    require_anthropic_version: bool,
    /// Send provider-account headers (openai-organization, set-cookie, ...) on every answer.
    #[arg(long = "account-headers")]
    account_headers: bool,
    /// Simulate Anthropic prompt caching per API key (cache reads and writes from
    /// cache_control markers).
    #[arg(long = "prompt-cache")]
    prompt_cache: bool,
    /// Do not record the last request (for benchmarks).
    #[arg(long = "no-record")]
    no_record: bool,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Name reported as system_fingerprint and in the x-mock-name header.
    #[arg(long, default_value = "mock")]
    name: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berry-mock: cannot build runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut opts = MockOptions {
        listen: args.listen,
        chunks: args.chunks,
        chunk_interval: Duration::from_millis(args.interval_ms),
        expected_api_key: args.api_key,
        require_anthropic_version: args.require_anthropic_version,
        account_headers: args.account_headers,
        prompt_cache: args.prompt_cache,
        record_requests: !args.no_record,
        mode: args.mode,
        name: args.name,
        ..MockOptions::default()
    };
    if !args.models.is_empty() {
        opts.models = args.models;
    }
    let code = rt.block_on(async move {
        let mock = match MockProvider::start(opts).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("berry-mock: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        // The signal handlers are installed before the address is printed: a caller that
        // reads it and sends SIGTERM at once gets a clean exit, not the default action.
        let stop = match stop_signal() {
            Ok(stop) => stop,
            Err(e) => {
                eprintln!("berry-mock: signal handling failed: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "listening on http://{}", mock.addr());
        let _ = stdout.flush();
        stop.await;
        ExitCode::SUCCESS
    });
    rt.shutdown_timeout(Duration::from_millis(200));
    code
}

/// Completes at SIGTERM or SIGINT; the handlers are installed when this returns.
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Completes at Ctrl-C.
#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
