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

# A virtualenv in .venv with the official OpenAI Python SDK (used by the SDK test).
ensure_sdk_venv() {
  local py=${PYTHON:-python3}
  if ! command -v "$py" >/dev/null 2>&1; then
    apt_install python3 python3-venv
  fi
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import openai, anthropic' >/dev/null 2>&1; then
    echo "==> creating .venv with the openai and anthropic SDKs (PyPI)" >&2
    if [ ! -x .venv/bin/python ] && ! "$py" -m venv .venv >/dev/null 2>&1; then
      apt_install python3-venv
      "$py" -m venv .venv
    fi
    .venv/bin/python -m pip install -q --disable-pip-version-check 'openai>=1.40,<3' 'anthropic>=0.40,<1'
  fi
}

# The load scripts' gateway (scripts/bench-load.sh, scripts/profile-instructions.sh): two
# accounts of the mock behind one weighted model whose real name differs from the client's
# (so the body is spliced), and an Anthropic-dialect account for the translated leg.
# bench_gateway_toml PORT MOCK_ADDR prints the config; it reads TOKEN, CLIENT_MODEL,
# REAL_MODEL, XLAT_MODEL and, when set, EXTRA_SETTINGS and EXTRA_USER.
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
EOF
}

# bench_pingora_yaml DIR NAME prints the Pingora server conf of proxy NAME (2 threads, pid
# file and upgrade socket in DIR).
bench_pingora_yaml() {
  printf -- '---\nversion: 1\nthreads: 2\npid_file: %s/%s.pid\nupgrade_sock: %s/%s-upgrade.sock\ngrace_period_seconds: 1\ngraceful_shutdown_timeout_seconds: 1\n' \
    "$1" "$2" "$1" "$2"
}
