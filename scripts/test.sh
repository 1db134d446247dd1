#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit + integration tests (including the
# official OpenAI Python SDK and Codex CLI against the gateway). Installs what a fresh
# machine lacks (cmake, redis-server, the SDKs in .venv, Codex CLI, Claude Code and Gemini
# CLI in .tools). Used unchanged by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_cargo
ensure_cmake
ensure_redis_server
ensure_sdk_venv
export BERRY_TEST_PYTHON="$PWD/.venv/bin/python"
# Coding-agent CLIs from npm into .tools/ (pinned); they export BERRY_TEST_CODEX,
# BERRY_TEST_CLAUDE and BERRY_TEST_GEMINI for tests/gateway/responses.rs, the Claude Code
# tests and the Gemini CLI tests.
ensure_codex
ensure_claude_code
ensure_gemini_cli
# promtool (Debian package `prometheus`) checks the alert rules and scrape config in
# deploy/; tests/deploy.rs fails instead of skipping when it is required but missing.
command -v promtool >/dev/null 2>&1 || apt_install prometheus
export BERRY_REQUIRE_PROMTOOL=1

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> the patched pingora-core and pingora-proxy are the ones built (vendor/)"
# A resolution that left a patch out builds the registry release with only a warning.
for crate in pingora-core pingora-proxy; do
    built=$(cargo tree --locked --workspace -e normal,build,dev -i "$crate" --prefix none --depth 0 2>&1) || {
        echo "cargo tree -i $crate failed: $built" >&2
        exit 1
    }
    if ! grep -q "vendor/$crate)" <<<"$built" || grep -qi "was not used" <<<"$built"; then
        echo "$crate is not the patched copy in vendor/$crate: $built" >&2
        exit 1
    fi
done
echo "==> module graph (no import cycles, layers respected)"
python3 scripts/module-graph.py
echo "==> cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "==> cargo test"
cargo test --locked --workspace --all-targets
cargo test --locked --workspace --doc
echo "==> all checks passed"
