#!/usr/bin/env bash
# Soak: the gateway's memory over a long run of mixed traffic, on loopback only.
#
# What it does (release binaries, like scripts/bench-load.sh; honours CARGO_TARGET_DIR):
#   starts berry-mock and the gateway (the load script's config: two accounts of the mock,
#   threads 2) on free loopback ports, then runs SOAK_MINUTES one-minute cycles. Each cycle:
#     - reloads the config: rewrites the file (a changed comment) and sends SIGHUP;
#     - holds HOLD_STREAMS SSE streams open for HOLD_SECONDS (the mock pauses after the first
#       event), then releases them (wrk closes its connections);
#     - meanwhile JSON (-c JSON_CONNS) and streaming (-c SSE_CONNS) chat completions for
#       LOAD_SECONDS, each connection pausing PACE_MS between requests (a steady load, not
#       a saturating one);
#     - then the gateway idles until the minute is over.
#   RSS is sampled every SAMPLE_SECONDS; the curve printed at the end has one row per cycle:
#   RSS at the cycle's end (streams released, load over), the cycle's peak, streams held and
#   requests served. The first WARMUP_MINUTES cycles are the warm-up.
# Passes (exit 0) when the final end-of-cycle RSS (median of the last three cycles) is within
# SOAK_TOLERANCE_PCT (10) percent of the level after warm-up (median of the three cycles
# after it), every reload was accepted and no request failed to connect.
#
# Run:   scripts/soak.sh                     (30 minutes plus the build)
# Knobs: SOAK_MINUTES=30, WARMUP_MINUTES=3, HOLD_STREAMS=1000, HOLD_SECONDS=40,
#        LOAD_SECONDS=25, JSON_CONNS=16, SSE_CONNS=8, PACE_MS=5, SAMPLE_SECONDS=5,
#        IDLE_TIMEOUT=120 (the gateway's stream_idle_timeout_seconds; see write_config),
#        SOAK_TOLERANCE_PCT=10, SKIP_BUILD=1 (reuse binaries), KEEP_TMP=1 (keep logs).
#        The result is also written to bench-results/soak-<timestamp>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SOAK_MINUTES=${SOAK_MINUTES:-30}
WARMUP_MINUTES=${WARMUP_MINUTES:-3}
HOLD_STREAMS=${HOLD_STREAMS:-1000}
HOLD_SECONDS=${HOLD_SECONDS:-40}
LOAD_SECONDS=${LOAD_SECONDS:-25}
JSON_CONNS=${JSON_CONNS:-16}
SSE_CONNS=${SSE_CONNS:-8}
PACE_MS=${PACE_MS:-5}
SAMPLE_SECONDS=${SAMPLE_SECONDS:-5}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-120}
SOAK_TOLERANCE_PCT=${SOAK_TOLERANCE_PCT:-10}
[ "$SOAK_MINUTES" -ge $((WARMUP_MINUTES + 6)) ] || { echo "error: SOAK_MINUTES must be at least WARMUP_MINUTES + 6" >&2; exit 1; }
[ "$HOLD_SECONDS" -lt 55 ] && [ "$LOAD_SECONDS" -lt 55 ] || { echo "error: HOLD_SECONDS and LOAD_SECONDS must be under 55" >&2; exit 1; }
[ "$IDLE_TIMEOUT" -gt "$HOLD_SECONDS" ] || { echo "error: IDLE_TIMEOUT must exceed HOLD_SECONDS" >&2; exit 1; }
[ "$IDLE_TIMEOUT" -le $((WARMUP_MINUTES * 60)) ] || echo "warning: IDLE_TIMEOUT exceeds the warm-up: the timer backlog still grows after it" >&2

ensure_cargo
command -v wrk >/dev/null 2>&1 || apt_install wrk
bench_binaries

hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard" 2>/dev/null || true
if [ $((HOLD_STREAMS * 2 + JSON_CONNS + SSE_CONNS + 200)) -gt "$(ulimit -n)" ]; then
  echo "error: ulimit -n $(ulimit -n) is too low for HOLD_STREAMS=$HOLD_STREAMS" >&2
  exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/berry-soak.XXXXXX")
PIDS=()
CYCLE_PIDS=()
cleanup() {
  local pid
  for pid in "${CYCLE_PIDS[@]}" "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
die() {
  echo "error: $*" >&2
  for f in "$TMP"/*.log; do [ -s "$f" ] && { echo "--- $f (tail)" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# One HTTP/1.1 request (Connection: close); prints the response. PORT METHOD PATH [BODY]
http_request() {
  local port=$1 method=$2 path=$3 body=${4:-}
  (
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
      "$method" "$path" "$TOKEN" "${#body}" "$body" >&3
    timeout 5 cat <&3
  ) 2>/dev/null
}
metric() { # PORT NAME_WITH_LABELS: the value of one sample line of /metrics (0 when absent)
  http_request "$1" GET /metrics | awk -v m="$2" 'index($0, m " ") == 1 { v = $2 } END { print v + 0 }'
}

echo "==> starting berry-mock and the gateway (loopback)" >&2
"$MOCK_BIN" --no-record --threads 2 --chunks 5 --interval-ms 0 --models "$REAL_MODEL,$CLIENT_MODEL" \
  >"$TMP/mock.out" 2>"$TMP/mock.log" &
PIDS+=("$!")
for _ in $(seq 1 100); do [ -s "$TMP/mock.out" ] && break; sleep 0.05; done
MOCK_ADDR=$(sed -n '1s|^listening on http://||p' "$TMP/mock.out")
[ -n "$MOCK_ADDR" ] || die "berry-mock did not print its address"
GW_PORT=$(free_port) || die "no free port"
# The stream idle timeout is also every upstream stream read's timeout, and Pingora keeps a
# timer per 10 ms slot of expiry until it fires: the timers of the last IDLE_TIMEOUT seconds
# of reads stay allocated, a backlog that grows for IDLE_TIMEOUT seconds and then stays
# flat. Shorter than the load script's 600 s (but longer than the held streams' pause), so
# the backlog is complete within the warm-up and the comparison sees only real growth.
write_config() { # GENERATION
  { echo "# soak config generation $1"; bench_gateway_toml "$GW_PORT" "$MOCK_ADDR" |
    sed "s/^stream_idle_timeout_seconds = .*/stream_idle_timeout_seconds = $IDLE_TIMEOUT/"; } >"$TMP/gateway.toml.new"
  mv "$TMP/gateway.toml.new" "$TMP/gateway.toml"
}
write_config 0
bench_pingora_yaml "$TMP" gateway >"$TMP/gateway-pingora.yaml"
RUST_LOG=warn "$GATEWAY_BIN" --config "$TMP/gateway.toml" -c "$TMP/gateway-pingora.yaml" \
  >"$TMP/gateway.out" 2>"$TMP/gateway.log" &
GW_PID=$!
PIDS+=("$GW_PID")
for i in $(seq 1 100); do
  kill -0 "$GW_PID" 2>/dev/null || die "the gateway exited during start-up"
  [[ $(http_request "$GW_PORT" GET /metrics) == "HTTP/1.1 "* ]] && break
  [ "$i" -lt 100 ] || die "the gateway did not answer on port $GW_PORT"
  sleep 0.1
done

write_lua() { # FILE BODY [HEADER VALUE]
  {
    printf 'wrk.method = "POST"\nwrk.body = [==[%s]==]\n' "$2"
    [ "$PACE_MS" = 0 ] || printf 'function delay() return %d end\n' "$PACE_MS"
    printf 'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer %s"\n' "$TOKEN"
    [ $# -lt 4 ] || printf 'wrk.headers["%s"] = "%s"\n' "$3" "$4"
    cat <<'LUA'
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SOAK requests=%d connect_errors=%d status_errors=%d\n",
    summary.requests, e.connect, e.status))
end
LUA
  } >"$1"
}
write_lua "$TMP/json.lua" "$(bench_body false)"
write_lua "$TMP/sse.lua" "$(bench_body true)"
write_lua "$TMP/held.lua" "$(bench_body true)" x-mock-interval-ms 600000
URL="http://127.0.0.1:$GW_PORT/v1/chat/completions"

established_on() {
  local hex
  hex=$(printf ':%04X' "$1")
  awk -v h="$hex" 'FNR > 1 && $4 == "01" && substr($2, length($2) - 4) == h { n++ } END { print n + 0 }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Samples RSS every SAMPLE_SECONDS until the gateway stops: "epoch_seconds rss_kib".
(
  while kill -0 "$GW_PID" 2>/dev/null; do
    echo "$(date +%s) $(rss_kib "$GW_PID" 2>/dev/null || echo 0)"
    sleep "$SAMPLE_SECONDS"
  done
) >"$TMP/rss.samples" &
PIDS+=("$!")

echo "==> $SOAK_MINUTES one-minute cycles (first $WARMUP_MINUTES = warm-up): reload, $HOLD_STREAMS held streams for ${HOLD_SECONDS}s, JSON -c $JSON_CONNS + SSE -c $SSE_CONNS for ${LOAD_SECONDS}s" >&2
: >"$TMP/cycles"
reloads_before=$(metric "$GW_PORT" 'berry_config_reloads_total{result="success"}')
for cycle in $(seq 1 "$SOAK_MINUTES"); do
  start=$(date +%s)
  write_config "$cycle"
  kill -HUP "$GW_PID"
  wrk -t 2 -c "$HOLD_STREAMS" -d "${HOLD_SECONDS}s" --timeout "$((HOLD_SECONDS + 15))s" -s "$TMP/held.lua" "$URL" \
    >"$TMP/held.out" 2>&1 &
  held_pid=$!
  wrk -t 1 -c "$JSON_CONNS" -d "${LOAD_SECONDS}s" -s "$TMP/json.lua" "$URL" >"$TMP/json.out" 2>&1 &
  json_pid=$!
  wrk -t 1 -c "$SSE_CONNS" -d "${LOAD_SECONDS}s" -s "$TMP/sse.lua" "$URL" >"$TMP/sse.out" 2>&1 &
  sse_pid=$!
  CYCLE_PIDS=("$held_pid" "$json_pid" "$sse_pid")
  held=0
  for _ in $(seq 1 $((HOLD_SECONDS * 2))); do
    n=$(established_on "$GW_PORT")
    [ "$n" -gt "$held" ] && held=$n
    [ "$n" -ge $((HOLD_STREAMS + JSON_CONNS + SSE_CONNS)) ] && break
    sleep 0.5
  done
  wait "$json_pid" "$sse_pid" "$held_pid" || true
  kill -0 "$GW_PID" 2>/dev/null || die "the gateway exited in cycle $cycle"
  # Wait for the minute to end (streams released, load over), then sample the idle RSS.
  while [ $(($(date +%s) - start)) -lt 58 ]; do sleep 1; done
  rss_end=$(rss_kib "$GW_PID")
  peak=$(awk -v s="$start" '$1 >= s && $2 > p { p = $2 } END { print p + 0 }' "$TMP/rss.samples")
  requests=$(cat "$TMP/json.out" "$TMP/sse.out" | awk -F'[= ]' '/^SOAK/ { n += $3 } END { print n + 0 }')
  errors=$(cat "$TMP/json.out" "$TMP/sse.out" "$TMP/held.out" | awk -F'[= ]' '/^SOAK/ { n += $5 } END { print n + 0 }')
  printf '%s %s %s %s %s %s\n' "$cycle" "$rss_end" "$peak" "$held" "$requests" "$errors" >>"$TMP/cycles"
  printf '    cycle %2d: RSS at end %6d KiB, peak %6d KiB, connections held %5d, requests %6d, connect errors %d\n' \
    "$cycle" "$rss_end" "$peak" "$held" "$requests" "$errors" >&2
  while [ $(($(date +%s) - start)) -lt 60 ]; do sleep 0.2; done
done
reloads_ok=$(( $(metric "$GW_PORT" 'berry_config_reloads_total{result="success"}') - reloads_before ))
reloads_err=$(metric "$GW_PORT" 'berry_config_reloads_total{result="error"}')

# One end-of-cycle sample moves by a few MiB with how far jemalloc's background purge of the
# last burst has got: the level after warm-up is the median of the three cycles after it,
# the final level the median of the last three.
median3() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
warm=$(awk -v w="$WARMUP_MINUTES" '$1 > w && $1 <= w + 3 { print $2 }' "$TMP/cycles" | median3)
final=$(tail -n 3 "$TMP/cycles" | awk '{ print $2 }' | median3)
errors=$(awk '{ n += $6 } END { print n + 0 }' "$TMP/cycles")
drift=$(awk -v a="$final" -v b="$warm" 'BEGIN { printf "%.1f", (a - b) * 100 / b }')
verdict=PASS
awk -v d="$drift" -v t="$SOAK_TOLERANCE_PCT" 'BEGIN { exit !(d <= t && d >= -t) }' || verdict=FAIL
[ "$reloads_ok" -ge "$SOAK_MINUTES" ] && [ "$reloads_err" = 0 ] || verdict=FAIL
[ "$errors" = 0 ] || verdict=FAIL

mkdir -p "$ROOT/bench-results"
OUT=$ROOT/bench-results/soak-$(date +%Y%m%d-%H%M%S).txt
{
  echo "berry-gateway soak  $(date -Is)"
  echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (dirty)'), $(nproc) CPUs"
  echo "$SOAK_MINUTES one-minute cycles: config reload (file rewritten + SIGHUP), $HOLD_STREAMS streams held ${HOLD_SECONDS}s, JSON -c $JSON_CONNS + SSE -c $SSE_CONNS for ${LOAD_SECONDS}s (${PACE_MS} ms pause per connection between requests); warm-up $WARMUP_MINUTES cycles; stream idle timeout ${IDLE_TIMEOUT}s"
  echo
  printf '%6s %14s %14s %10s %10s\n' minute "RSS end KiB" "peak KiB" held requests
  awk '{ printf "%6d %14d %14d %10d %10d\n", $1, $2, $3, $4, $5 }' "$TMP/cycles"
  echo
  echo "RSS after warm-up (median of minutes $((WARMUP_MINUTES + 1))-$((WARMUP_MINUTES + 3))): $warm KiB; final (median of minutes $((SOAK_MINUTES - 2))-$SOAK_MINUTES): $final KiB; drift $drift% (tolerance ±$SOAK_TOLERANCE_PCT%)"
  echo "reloads accepted: $reloads_ok, rejected: $reloads_err; connect errors: $errors"
  echo "result: $verdict"
} >"$TMP/report.txt"
cat "$TMP/report.txt"
cp "$TMP/report.txt" "$OUT"
echo "written to $OUT" >&2
[ "$verdict" = PASS ]
