# Shared helpers for scripts/*.sh: install what a fresh machine lacks, or stop clearly.
# shellcheck shell=bash

# Runs a command as root (directly, or through sudo when available).
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo "$@"
  else
    return 1
  fi
}

# Installs Debian packages ($@) or stops with a message naming them.
apt_install() {
  echo "==> installing $* (apt-get)" >&2
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
     || ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; then
    echo "error: could not install $*; install it yourself (e.g. 'sudo apt-get install $*') and re-run." >&2
    exit 1
  fi
}

# Pingora builds zlib-ng with cmake.
ensure_cmake() {
  command -v cmake >/dev/null 2>&1 || apt_install cmake
}

# tests/shared_state.rs starts real redis-server processes (Debian package `redis-server`)
# on free ports of its own; a system Redis the package may start is not used.
ensure_redis_server() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
}

ensure_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo (Rust) is required: https://rustup.rs" >&2
    exit 1
  fi
}

# A virtualenv in .venv with the official OpenAI, Anthropic and Google Gen AI (`google-genai`)
# Python SDKs (used by the SDK tests).
ensure_sdk_venv() {
  local py=${PYTHON:-python3}
  if ! command -v "$py" >/dev/null 2>&1; then
    apt_install python3 python3-venv
  fi
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import openai, anthropic, google.genai' >/dev/null 2>&1; then
    echo "==> creating .venv with the openai, anthropic and google-genai SDKs (PyPI)" >&2
    if [ ! -x .venv/bin/python ] && ! "$py" -m venv .venv >/dev/null 2>&1; then
      apt_install python3-venv
      "$py" -m venv .venv
    fi
    .venv/bin/python -m pip install -q --disable-pip-version-check 'openai>=1.40,<3' 'anthropic>=0.40,<1' \
      'google-genai>=1.0,<2'
  fi
}

# The load scripts' gateway (scripts/bench-load.sh, scripts/profile-instructions.sh): two
# accounts of the mock behind one weighted model whose real name differs from the client's
# (so the body is spliced), an Anthropic-dialect account for the translated leg, a
# chat-only account (`responses_api = false`) for the Responses leg and a native Gemini
# account (`backend_type = "gemini"`) for the Gemini leg.
# bench_gateway_toml PORT MOCK_ADDR prints the config; it reads TOKEN, CLIENT_MODEL,
# REAL_MODEL, XLAT_MODEL, CHAT_ONLY_MODEL, GEMINI_MODEL, GEMINI_REAL_MODEL and, when set,
# EXTRA_SETTINGS and EXTRA_USER.
bench_gateway_toml() {
  cat <<EOF
[settings]
listen = ["127.0.0.1:$1"]
request_timeout_seconds = 30
stream_idle_timeout_seconds = 600
health_check_interval_seconds = 30
${EXTRA_SETTINGS:-}

[users.bench]
name = "Benchmark"
token = "$TOKEN"
${EXTRA_USER:-}

# The idle-stream leg steers the mock with x-mock-interval-ms (forwarded on purpose).
[providers.acct-a]
base_url = "http://$2/v1"
api_key = "sk-mock-key-a"
models = ["$REAL_MODEL"]
forward_headers = ["x-mock-interval-ms"]

[providers.acct-b]
base_url = "http://$2/v1"
api_key = "sk-mock-key-b"
models = ["$REAL_MODEL"]
forward_headers = ["x-mock-interval-ms"]

[models.mini]
name = "$CLIENT_MODEL"
strategy = "weighted_random"
[[models.mini.backends]]
provider = "acct-a"
model = "$REAL_MODEL"
weight = 0.7
[[models.mini.backends]]
provider = "acct-b"
model = "$REAL_MODEL"
weight = 0.3

# The translated leg: an OpenAI client on an Anthropic-dialect account of the same mock.
[providers.acct-anthropic]
base_url = "http://$2"
api_key = "sk-mock-key-anthropic"
backend_type = "anthropic"

[models.translated]
name = "$XLAT_MODEL"
[[models.translated.backends]]
provider = "acct-anthropic"
model = "claude-real"

# The Responses leg's chat-only account: /v1/responses translated to chat completions.
[providers.acct-chat]
base_url = "http://$2/v1"
api_key = "sk-mock-key-chat"
responses_api = false

[models.chat-only]
name = "$CHAT_ONLY_MODEL"
[[models.chat-only.backends]]
provider = "acct-chat"
model = "$REAL_MODEL"

# The Gemini leg's native account: /v1beta/models/{model}:{method} passed through with the
# model spliced into the path (the OpenAI and Anthropic accounts above serve the
# translated Gemini legs).
[providers.acct-gemini]
base_url = "http://$2/v1"
api_key = "sk-mock-key-gemini"
backend_type = "gemini"

[models.gemini]
name = "$GEMINI_MODEL"
[[models.gemini.backends]]
provider = "acct-gemini"
model = "$GEMINI_REAL_MODEL"
EOF
}

# bench_pingora_yaml DIR NAME prints the Pingora server conf of proxy NAME (2 threads, pid
# file and upgrade socket in DIR).
bench_pingora_yaml() {
  printf -- '---\nversion: 1\nthreads: 2\npid_file: %s/%s.pid\nupgrade_sock: %s/%s-upgrade.sock\ngrace_period_seconds: 1\ngraceful_shutdown_timeout_seconds: 1\n' \
    "$1" "$2" "$1" "$2"
}

# ---------------------------------------------------------------------------------------
# the load scripts' shared parts (bench-load.sh, profile-instructions.sh)
# ---------------------------------------------------------------------------------------
TOKEN=sk-berry-bench-7f3a9c2e5b8d4f1a6c0e9b3d7a2f5c8e
CLIENT_MODEL=gpt-4o-mini
XLAT_MODEL=claude-bench
CHAT_ONLY_MODEL=gpt-bench-chat-only
REAL_MODEL=gpt-4o-mini-2024-07-18
GEMINI_MODEL=gemini-bench
GEMINI_REAL_MODEL=gemini-2.5-flash-bench

# bench_binaries [GATEWAY_BIN]: builds the release gateway, mock and engine floor unless
# SKIP_BUILD=1 (honours CARGO_TARGET_DIR) and sets GATEWAY_BIN (the argument when given),
# MOCK_BIN and ENGINE_BIN.
bench_binaries() {
  local target_dir b
  target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  target_dir=${target_dir:-${CARGO_TARGET_DIR:-$PWD/target}}
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    ensure_cmake
    echo "==> cargo build --release --workspace --bins (target dir $target_dir)" >&2
    cargo build --release --workspace --bins
    cargo build --release --example engine_floor
  fi
  GATEWAY_BIN=${1:-$target_dir/release/berry-gateway}
  MOCK_BIN=$target_dir/release/berry-mock
  ENGINE_BIN=$target_dir/release/examples/engine_floor
  for b in "$GATEWAY_BIN" "$MOCK_BIN" "$ENGINE_BIN"; do
    [ -x "$b" ] || { echo "error: $b not found (build failed or SKIP_BUILD=1 without a build)" >&2; exit 1; }
  done
}

# A TCP port nothing listens on, below the ephemeral range (where wrk's sockets live).
free_port() {
  local lo hi p hex _
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range || { lo=32768; hi=60999; }
  for _ in $(seq 1 200); do
    if [ "$lo" -gt 12000 ]; then
      p=$((10000 + RANDOM % (lo - 10000)))
    else
      p=$((hi + 1 + RANDOM % (65000 - hi)))
    fi
    hex=$(printf ':%04X' "$p")
    if ! awk -v h="$hex" 'FNR > 1 && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
      /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# The load scripts' request body: a 4-message chat, 1.2 KB; bench_body STREAM(true|false).
bench_body() {
  printf '%s' '{"model":"'"$CLIENT_MODEL"'","messages":[{"role":"system","content":"You are a helpful assistant for the platform team. Answer concisely, use Markdown, and cite the internal runbook section when relevant."},{"role":"user","content":"Our nginx ingress returns 502 for about 1% of requests after the last deploy. Where should I start looking?"},{"role":"assistant","content":"Start with the upstream side: check whether the pods were restarted (readiness probe failures), then compare the ingress error log timestamps with the deploy. A 502 usually means the upstream closed the connection or refused it \u2014 keep-alive timeouts shorter than nginx'"'"'s are a classic cause."},{"role":"user","content":"The app uses keepalive_timeout 5s and nginx uses 60s. Could that be it? Please give me the exact config change."}],"temperature":0.2,"top_p":1,"max_tokens":800,"presence_penalty":0,"frequency_penalty":0,"user":"team-platform","stream":'"$1"'}'
}

# The same conversation as a Responses API request (system message as `instructions`,
# `store: false` as Codex sends it); bench_responses_body MODEL STREAM(true|false).
bench_responses_body() {
  printf '%s' '{"model":"'"$1"'","instructions":"You are a helpful assistant for the platform team. Answer concisely, use Markdown, and cite the internal runbook section when relevant.","input":[{"role":"user","content":"Our nginx ingress returns 502 for about 1% of requests after the last deploy. Where should I start looking?"},{"role":"assistant","content":"Start with the upstream side: check whether the pods were restarted (readiness probe failures), then compare the ingress error log timestamps with the deploy. A 502 usually means the upstream closed the connection or refused it \u2014 keep-alive timeouts shorter than nginx'"'"'s are a classic cause."},{"role":"user","content":"The app uses keepalive_timeout 5s and nginx uses 60s. Could that be it? Please give me the exact config change."}],"temperature":0.2,"top_p":1,"max_output_tokens":800,"user":"team-platform","store":false,"stream":'"$2"'}'
}

# The same conversation as a native Gemini API request (`systemInstruction`, `contents`
# with roles user/model, `generationConfig`); streaming is chosen by the method in the
# path, so one body serves generateContent and streamGenerateContent.
bench_gemini_body() {
  printf '%s' '{"systemInstruction":{"parts":[{"text":"You are a helpful assistant for the platform team. Answer concisely, use Markdown, and cite the internal runbook section when relevant."}]},"contents":[{"role":"user","parts":[{"text":"Our nginx ingress returns 502 for about 1% of requests after the last deploy. Where should I start looking?"}]},{"role":"model","parts":[{"text":"Start with the upstream side: check whether the pods were restarted (readiness probe failures), then compare the ingress error log timestamps with the deploy. A 502 usually means the upstream closed the connection or refused it \u2014 keep-alive timeouts shorter than nginx'"'"'s are a classic cause."}]},{"role":"user","parts":[{"text":"The app uses keepalive_timeout 5s and nginx uses 60s. Could that be it? Please give me the exact config change."}]}],"generationConfig":{"temperature":0.2,"topP":1,"maxOutputTokens":800}}'
}

# npm_tool DIR PACKAGE VERSION BIN: installs PACKAGE@VERSION (npm registry) into the
# project-local folder DIR (gitignored) unless BIN (relative to DIR) is already there and
# executable; stops with a message naming the package when npm is missing or fails.
npm_tool() {
  local dir=$1 pkg=$2 version=$3 bin=$4
  if [ -x "$dir/$bin" ] && [ -f "$dir/node_modules/$pkg/package.json" ] &&
     grep -q "\"version\": *\"$version\"" "$dir/node_modules/$pkg/package.json"; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm (Node.js 18+) is required to install $pkg@$version into $dir; install Node.js (e.g. 'sudo apt-get install nodejs npm') and re-run." >&2
    exit 1
  fi
  echo "==> installing $pkg@$version into $dir (npm)" >&2
  mkdir -p "$dir"
  if ! npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
       "$pkg@$version" >&2 || [ ! -x "$dir/$bin" ]; then
    echo "error: could not install $pkg@$version into $dir (npm install failed or $dir/$bin is missing); check network access to the npm registry and re-run." >&2
    exit 1
  fi
}

# Codex CLI (the Responses API client) for tests/gateway/responses.rs, pinned; sets
# BERRY_TEST_CODEX to its binary.
ensure_codex() {
  npm_tool .tools/codex @openai/codex 0.171.0 node_modules/.bin/codex
  export BERRY_TEST_CODEX="$PWD/.tools/codex/node_modules/.bin/codex"
}

# Claude Code (the Messages API coding agent), pinned; sets BERRY_TEST_CLAUDE to its
# native binary.
ensure_claude_code() {
  npm_tool .tools/claude-code @anthropic-ai/claude-code 2.1.197 \
    node_modules/@anthropic-ai/claude-code-linux-x64/claude
  export BERRY_TEST_CLAUDE="$PWD/.tools/claude-code/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
}

# Gemini CLI (the native Gemini API coding agent), pinned; sets BERRY_TEST_GEMINI to its
# launcher.
ensure_gemini_cli() {
  npm_tool .tools/gemini-cli @google/gemini-cli 0.61.0 node_modules/.bin/gemini
  export BERRY_TEST_GEMINI="$PWD/.tools/gemini-cli/node_modules/.bin/gemini"
}
