//! `berry-gateway demo`: two built-in mock providers plus the gateway on `conf/demo.toml`,
//! with ready-to-paste commands printed on start.

use crate::cli::{Cli, DEFAULT_CONFIG};
use berry_mock::{MockOptions, MockProvider};
use std::path::PathBuf;
use std::process::ExitCode;

/// The demo config shipped with the binary, used when `conf/demo.toml` is not on disk.
const EMBEDDED_DEMO: &str = include_str!("../conf/demo.toml");

/// Starts the mocks, then the gateway. Returns only on start-up failure.
pub fn run(cli: Cli) -> ExitCode {
    let mut mocks = Vec::new();
    let mut vars = Vec::new();
    for (name, var) in [
        ("mock-a", "BERRY_DEMO_MOCK_A"),
        ("mock-b", "BERRY_DEMO_MOCK_B"),
    ] {
        let opts = MockOptions {
            name: name.to_string(),
            ..MockOptions::default()
        };
        match MockProvider::start_background(opts) {
            Ok(m) => {
                vars.push((var.to_string(), m.base_url()));
                mocks.push(m);
            }
            Err(e) => {
                eprintln!("demo: cannot start mock provider: {e}");
                return ExitCode::from(1);
            }
        }
    }
    // The mock URLs reach the config (and every reload of it) as config variables: the
    // environment is not written once the mocks' threads run.
    crate::cli::set_config_vars(vars);
    let path = if cli.config == std::path::Path::new(DEFAULT_CONFIG) {
        PathBuf::from("conf/demo.toml")
    } else {
        cli.config.clone()
    };
    let cfg = if path.exists() {
        crate::config::load_file(&path)
    } else {
        crate::config::load_str(
            EMBEDDED_DEMO,
            crate::config::Format::Toml,
            &crate::cli::config_var,
        )
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(1);
        }
    };
    let listen = cli.listen_addrs(&cfg.settings.listen);
    let base = format!(
        "http://{}",
        listen.first().map_or("127.0.0.1:3000", String::as_str)
    );
    println!(
        r#"
Berry Gateway demo
  mock providers: {a} and {b}
  gateway:        {base}   (Ctrl+C to stop)

Try:
  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer demo-token' \
       -H 'Content-Type: application/json' \
       -d '{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"Hello"}}]}}'

  curl -sN {base}/v1/chat/completions -H 'Authorization: Bearer demo-token' \
       -H 'Content-Type: application/json' \
       -d '{{"model":"gpt-4o-mini","stream":true,"messages":[{{"role":"user","content":"Hello"}}]}}'

  curl -s {base}/v1/models -H 'Authorization: Bearer demo-token'
  curl -s {base}/health
  curl -s {base}/admin/backends -H 'Authorization: Bearer demo-admin-token'
  curl -s {base}/metrics | grep ^berry_requests_total

OpenAI Python SDK:
  from openai import OpenAI
  client = OpenAI(base_url="{base}/v1", api_key="demo-token")
  print(client.chat.completions.create(model="gpt-4o-mini",
        messages=[{{"role": "user", "content": "Hello"}}]).choices[0].message.content)
  print(client.responses.create(model="gpt-4o-mini", input="Hello").output_text)

Codex CLI (npm i -g @openai/codex; the Responses API):
  BERRY_TOKEN=demo-token codex exec --skip-git-repo-check -c model_provider=berry \
    -c model=gpt-4o-mini -c model_providers.berry.name=berry \
    -c model_providers.berry.base_url={base}/v1 -c model_providers.berry.env_key=BERRY_TOKEN \
    -c model_providers.berry.wire_api=responses "Hello"

Claude Code (npm i -g @anthropic-ai/claude-code; the Messages API, translated here):
  ANTHROPIC_BASE_URL={base} ANTHROPIC_API_KEY=demo-token claude -p "Hello" --model gpt-4o-mini

Gemini CLI (npm i -g @google/gemini-cli; the Gemini API, translated here; its
~/.gemini/settings.json needs {{"security":{{"auth":{{"selectedType":"gemini-api-key"}}}}}}):
  GOOGLE_GEMINI_BASE_URL={base} GEMINI_API_KEY=demo-token gemini -p "Hello" -m gpt-4o-mini
  curl -s {base}/v1beta/models/gpt-4o-mini:generateContent -H 'x-goog-api-key: demo-token' \
       -H 'Content-Type: application/json' -d '{{"contents":[{{"parts":[{{"text":"Hello"}}]}}]}}'
"#,
        a = mocks[0].base_url(),
        b = mocks[1].base_url(),
    );
    let code = crate::app::run_gateway(cli, cfg, &path);
    drop(mocks);
    code
}
