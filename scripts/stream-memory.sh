#!/usr/bin/env bash
# Where a held stream's memory goes: a jemalloc heap profile of a proxy holding N idle SSE
# streams, per allocation site, in KiB per stream.
#
#   scripts/stream-memory.sh [gateway|engine|engine_stock] [N]      (default: gateway 2000)
#
# Builds (bench-only, feature `heap-profile`: jemalloc with its profiler, and SIGUSR2 →
# `prof.dump`, see bench/heap_dump.rs) into $PROF_TARGET_DIR (default /tmp/berry-prof-target,
# a target dir of its own so the normal release build is not rebuilt): the gateway, the
# engine floor (examples/engine_floor.rs, patched pingora-core) or the stock engine floor
# (bench/engine-stock). Starts berry-mock and the proxy (the load script's gateway config,
# threads 2), warms it with 2 s of JSON and 2 s of SSE load (wrk -c 64), dumps a profile,
# opens N streams the mock holds after their first event, dumps again, and prints the
# difference per site (bench/heap_sites.py; STACKS=1 adds the call chains) plus the RSS
# growth per stream. Profiling samples every ~4 KiB allocated (lg_prof_sample:12); the
# profiler's own bookkeeping makes RSS larger than without it, so take RSS per stream from
# scripts/bench-load.sh (STREAMS_ONLY=1) and the split per site from here.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

KIND=${1:-gateway}
N=${2:-2000}
PROF_TARGET_DIR=${PROF_TARGET_DIR:-/tmp/berry-prof-target}
ensure_cargo
command -v wrk >/dev/null 2>&1 || apt_install wrk
command -v addr2line >/dev/null 2>&1 || apt_install binutils
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  ensure_cmake
  cargo build --release --target-dir "$PROF_TARGET_DIR" -p berry-mock
  case $KIND in
    gateway) cargo build --release --target-dir "$PROF_TARGET_DIR" --features heap-profile --bin berry-gateway ;;
    engine) cargo build --release --target-dir "$PROF_TARGET_DIR" --features heap-profile --example engine_floor ;;
    engine_stock) cargo build --release --target-dir "$PROF_TARGET_DIR" --features heap-profile \
      --manifest-path bench/engine-stock/Cargo.toml ;;
    *) echo "usage: $0 [gateway|engine|engine_stock] [N]" >&2; exit 2 ;;
  esac
fi
case $KIND in
  gateway) BIN=$PROF_TARGET_DIR/release/berry-gateway ;;
  engine) BIN=$PROF_TARGET_DIR/release/examples/engine_floor ;;
  engine_stock) BIN=$PROF_TARGET_DIR/release/engine_floor_stock ;;
  *) echo "usage: $0 [gateway|engine|engine_stock] [N]" >&2; exit 2 ;;
esac
MOCK_BIN=$PROF_TARGET_DIR/release/berry-mock

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ $((N * 2 + 200)) -le "$(ulimit -n)" ] || { echo "error: ulimit -n $(ulimit -n) is too low for $N streams" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/berry-heap.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ "${KEEP_TMP:-0}" = 1 ] && echo "profiles kept in $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT

"$MOCK_BIN" --no-record --threads 2 --chunks 5 --interval-ms 0 --models "$REAL_MODEL,$CLIENT_MODEL" \
  >"$TMP/mock.out" 2>"$TMP/mock.log" &
PIDS+=("$!")
for _ in $(seq 1 100); do [ -s "$TMP/mock.out" ] && break; sleep 0.05; done
MOCK_ADDR=$(sed -n '1s|^listening on http://||p' "$TMP/mock.out")
PORT=$(free_port)
bench_pingora_yaml "$TMP" proxy >"$TMP/proxy.yaml"
export _RJEM_MALLOC_CONF="prof:true,lg_prof_sample:12,prof_prefix:$TMP/heap"
if [ "$KIND" = gateway ]; then
  bench_gateway_toml "$PORT" "$MOCK_ADDR" >"$TMP/gateway.toml"
  RUST_LOG=warn "$BIN" --config "$TMP/gateway.toml" -c "$TMP/proxy.yaml" >"$TMP/proxy.out" 2>"$TMP/proxy.log" &
else
  "$BIN" "127.0.0.1:$PORT" "$MOCK_ADDR" -c "$TMP/proxy.yaml" >"$TMP/proxy.out" 2>"$TMP/proxy.log" &
fi
PX=$!
PIDS+=("$PX")
unset _RJEM_MALLOC_CONF
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

lua() { # FILE BODY [HEADER VALUE]
  {
    printf 'wrk.method = "POST"\nwrk.body = [==[%s]==]\n' "$2"
    printf 'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer %s"\n' "$TOKEN"
    [ $# -lt 4 ] || printf 'wrk.headers["%s"] = "%s"\n' "$3" "$4"
  } >"$1"
}
lua "$TMP/json.lua" "$(bench_body false)"
lua "$TMP/sse.lua" "$(bench_body true)"
lua "$TMP/held.lua" "$(bench_body true)" x-mock-interval-ms 600000
URL="http://127.0.0.1:$PORT/v1/chat/completions"
wrk -t 2 -c 64 -d 2s -s "$TMP/json.lua" "$URL" >/dev/null 2>&1 || true
wrk -t 2 -c 64 -d 2s -s "$TMP/sse.lua" "$URL" >/dev/null 2>&1 || true
sleep 1

established() {
  awk -v h="$(printf ':%04X' "$PORT")" 'FNR > 1 && $4 == "01" && substr($2, length($2) - 4) == h { n++ } END { print n + 0 }' /proc/net/tcp
}
dumps() { find "$TMP" -name 'heap.*.heap' | wc -l; }
dump() { # waits for the dump it asks for
  local n
  n=$(dumps)
  kill -USR2 "$PX"
  for _ in $(seq 1 100); do [ "$(dumps)" -gt "$n" ] && break; sleep 0.1; done
  sleep 0.5
  ls -t "$TMP"/heap.*.heap | sed -n 1p
}
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$PX/status"; }

BASE=$(dump)
R0=$(rss)
wrk -t 2 -c "$N" -d 60s --timeout 70s -s "$TMP/held.lua" "$URL" >/dev/null 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 300); do [ "$(established)" -ge "$N" ] && break; sleep 0.1; done
sleep 2
OPEN=$(established)
R1=$(rss)
HELD=$(dump)
echo "$KIND: $OPEN streams held; RSS $R0 -> $R1 KiB (with the profiler on)"
if [ "${STACKS:-0}" = 1 ]; then
  python3 bench/heap_sites.py "$BIN" "$BASE" "$HELD" "$OPEN" --stacks
else
  python3 bench/heap_sites.py "$BIN" "$BASE" "$HELD" "$OPEN"
fi
