#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit + integration tests (including the
# official OpenAI Python SDK against the gateway). Installs what a fresh machine lacks
# (cmake, redis-server, the SDK in .venv). Used unchanged by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_cargo
ensure_cmake
ensure_redis_server
ensure_sdk_venv
export BERRY_TEST_PYTHON="$PWD/.venv/bin/python"
# promtool (Debian package `prometheus`) checks the alert rules and scrape config in
# deploy/; tests/deploy.rs fails instead of skipping when it is required but missing.
command -v promtool >/dev/null 2>&1 || apt_install prometheus
export BERRY_REQUIRE_PROMTOOL=1

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> module graph (no import cycles, layers respected)"
python3 scripts/module-graph.py
echo "==> cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "==> cargo test"
cargo test --locked --workspace --all-targets
cargo test --locked --workspace --doc
echo "==> all checks passed"
