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
