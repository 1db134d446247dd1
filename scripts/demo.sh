#!/usr/bin/env bash
# Self-contained demo: builds the gateway, starts two built-in mock providers and the
# gateway on conf/demo.toml, and prints ready-to-paste curl and SDK commands.
# Extra arguments go to the gateway, e.g. `scripts/demo.sh --listen 127.0.0.1:8080`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_cargo
ensure_cmake
exec cargo run --locked --bin berry-gateway -- demo "$@"
