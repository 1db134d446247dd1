#!/usr/bin/env bash
# Load benchmark: gateway vs. direct vs. the engine floor (a hook-less Pingora proxy,
# examples/engine_floor.rs) vs. a plain nginx reverse-proxy hop, in one
# run, on the same machine, against the same fast local upstream (release `berry-mock`).
#
# What it does:
#   1. builds the release binaries (`cargo build --release --workspace --bins`; honours CARGO_TARGET_DIR),
#      installs wrk and nginx with apt-get when missing (or stops with a clear message);
#   2. starts berry-mock (--no-record, 2 threads, streams of 5 chunks without pauses), the
#      gateway (Pingora `threads: 2`, generated config with 2 provider accounts on the mock,
#      weighted_random, real model name ≠ client name so the body is spliced) and nginx
#      (`worker_processes 2`, upstream keepalive, proxy_buffering off, access_log off), all
#      on free loopback ports probed at run time;
#   3. runs wrk against each target (direct = mock, gateway → mock, nginx → mock) for
#      scenarios:
#        json      non-stream chat completion POST, CONNS connections (throughput)
#        sse       streaming chat completion (5 chunks), CONNS connections (throughput)
#        json_c8   non-stream, 8 connections, no pause (saturating, as `wrk -c 8 -t 2`)
#        json_lat  non-stream, 8 connections, PACE_MS pause per connection between
#                  requests (moderate load; the "added p99 < 1 ms" comparison)
#        sse_lat   streaming, same pacing
#      and, through the gateway only, the same four with an OpenAI client on an
#      Anthropic-dialect backend (json_xlat, sse_xlat, json_xlat_lat, sse_xlat_lat: the
#      request, answer and stream are translated);
#      and, through the gateway only, the Responses leg: an OpenAI Responses client
#      (POST /v1/responses, the same conversation, `store: false`) on three backends of
#      the same mock, JSON and SSE each, CONNS connections:
#        rsp_json / rsp_sse            native Responses backend (passthrough, model spliced)
#        rsp_chat_json / rsp_chat_sse  chat-only backend (`responses_api = false`;
#                                      translated to chat completions and back)
#        rsp_anth_json / rsp_anth_sse  Anthropic backend (translated to Messages and back)
#      reported against the chat leg (json / sse through the gateway) as req/s ratios;
#      and, through the gateway only, the Gemini leg: a native Gemini API client
#      (POST /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse, key
#      in x-goog-api-key, the same conversation) on three backends of the same mock,
#      CONNS connections:
#        gem_json / gem_sse            native `gemini` backend (passthrough to
#                                      /v1beta/models/{real model}:{method})
#        gem_chat_json / gem_chat_sse  OpenAI backend (the chat leg's model; translated to
#                                      chat completions and back)
#        gem_anth_json / gem_anth_sse  Anthropic backend (translated to Messages and back)
#      reported against the chat leg like the Responses leg (req/s ratio, added p99, CPU/req);
#      every leg is first checked to return a complete answer (JSON: 200, the mock's whole
#      text, finishReason STOP and the backend's model as modelVersion; SSE: the last text
#      chunk, and finishReason STOP on the last event); and reports req/s, p50, p99, errors, and the proxy's CPU time per request (from
#      /proc; robust against a noisy machine), plus gateway/direct and gateway/nginx ratios;
#   4. measures the gateway's RSS idle, after the load, and with N_IDLE concurrent open SSE
#      streams (the mock sends the head and one event, then pauses): per-stream memory, and
#      gateway JSON throughput while those streams are open; then the same held streams
#      through the engine floor as built here (on the carried, patched pingora-core) and
#      through the stock engine floor (the same source built by bench/engine-stock against
#      the crates.io pingora-core 0.9.1, without the patch), each a fresh process;
#   5. prints the table and writes it (plus the raw wrk output) to
#      bench-results/load-<timestamp>.txt.
#
# Run:   scripts/bench-load.sh                 (about 8 minutes with the defaults)
# Knobs (environment): DURATION=10 (s per measurement), WARMUP=2 (s per target),
#   ROUNDS=1 (repeat all scenarios, each round running every leg in turn; medians
#   reported), CONNS=64, THREADS=2, PACE_MS=2,
#   N_IDLE=1000 (0 = skip the open-streams part), TTFT_N=200 (0 = skip the time-to-first-token
#   part; scripts/ttft.py), TTFT_PAUSE_MS=20, SHARED=1 (0 = skip the shared-state leg: a
#   gateway enforcing user limits on a local redis-server, installed with apt-get if missing), SKIP_BUILD=1 (reuse binaries),
#   PIN=1 (the proxy under test on CPU 1, wrk and the mock on CPU 0, with taskset: each proxy
#   then has a core of its own, so req/s ≈ 1 / its CPU per request and the ratios move far
#   less from run to run; the default shares both cores among all), GATEWAY_LOG=warn (RUST_LOG of the gateway; `info` turns the access log on — nginx runs
#   with access_log off, so the default compares like with like), KEEP_TMP=1 (keep logs),
#   RESPONSES=0 (skip the Responses leg), RESP_ONLY=1 (only the gateway: the chat leg's json
#   and sse, then the Responses leg; no nginx, engine floor, translated leg, TTFT, open
#   streams, metrics or shared-state parts; about 1.5 minutes with the defaults),
#   GEMINI=0 (skip the Gemini leg), GEMINI_ONLY=1 (like RESP_ONLY, with the Gemini leg
#   instead of the Responses leg; both set: both legs; about 1.5 minutes),
#   STREAMS_ONLY=1 (only the open-streams part: gateway, patched and stock engine floor;
#   with N_IDLE=9000 about 3 minutes; 9,000 is the most a 20,000 open-files limit allows).
#
# Caveat: wrk, the proxy under test and the mock share the machine's cores, so absolute
# numbers are CPU-bound and noisy; compare ratios within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-1}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PACE_MS=${PACE_MS:-2}
N_IDLE=${N_IDLE:-1000}
TTFT_N=${TTFT_N:-200}
SHARED=${SHARED:-1}
TTFT_PAUSE_MS=${TTFT_PAUSE_MS:-20}
GATEWAY_LOG=${GATEWAY_LOG:-warn}
PIN=${PIN:-0}
RESPONSES=${RESPONSES:-1}
RESP_ONLY=${RESP_ONLY:-0}
GEMINI=${GEMINI:-1}
GEMINI_ONLY=${GEMINI_ONLY:-0}
STREAMS_ONLY=${STREAMS_ONLY:-0}
# GW_ONLY=1: only the gateway's chat leg plus the selected client-API legs.
GW_ONLY=0
if [ "$RESP_ONLY" = 1 ] || [ "$GEMINI_ONLY" = 1 ]; then
  GW_ONLY=1 N_IDLE=0 TTFT_N=0 SHARED=0
  RESPONSES=$RESP_ONLY GEMINI=$GEMINI_ONLY
fi
if [ "$STREAMS_ONLY" = 1 ]; then
  GW_ONLY=1 TTFT_N=0 SHARED=0 RESPONSES=0 GEMINI=0
  [ "$N_IDLE" -gt 0 ] || N_IDLE=1000
fi

# ---------------------------------------------------------------------------------------
# prerequisites
# ---------------------------------------------------------------------------------------
ensure_cargo
command -v wrk >/dev/null 2>&1 || apt_install wrk
ON_PROXY_CPU=()
ON_LOAD_CPU=()
if [ "$PIN" = 1 ]; then
  command -v taskset >/dev/null 2>&1 || apt_install util-linux
  [ "$(nproc)" -ge 2 ] || { echo "error: PIN=1 needs 2 CPUs" >&2; exit 1; }
  ON_PROXY_CPU=(taskset -c 1)
  ON_LOAD_CPU=(taskset -c 0)
fi
if [ "$SHARED" = 1 ]; then ensure_redis_server; fi
if [ "$GW_ONLY" != 1 ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  apt_install nginx-light 2>/dev/null || apt_install nginx
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

bench_binaries
# The stock engine floor: examples/engine_floor.rs built against the crates.io pingora-core
# 0.9.1 (bench/engine-stock is a workspace of its own, out of reach of the [patch]).
ENGINE_TARGET_DIR=${ENGINE_BIN%/release/examples/engine_floor}
ENGINE_STOCK_BIN=$ENGINE_TARGET_DIR/release/engine_floor_stock
if [ "$N_IDLE" -gt 0 ]; then
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "==> cargo build --release (bench/engine-stock: the engine floor on stock pingora-core)" >&2
    cargo build --release --manifest-path bench/engine-stock/Cargo.toml --target-dir "$ENGINE_TARGET_DIR"
  fi
  [ -x "$ENGINE_STOCK_BIN" ] || { echo "error: $ENGINE_STOCK_BIN not found" >&2; exit 1; }
fi

# Enough file descriptors for N_IDLE streams (client + upstream socket each).
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard" 2>/dev/null || true
if [ "$N_IDLE" -gt 0 ] && [ $((N_IDLE * 2 + 200)) -gt "$(ulimit -n)" ]; then
  echo "warning: ulimit -n $(ulimit -n) is too low for N_IDLE=$N_IDLE; using $(( ($(ulimit -n) - 200) / 2 ))" >&2
  N_IDLE=$(( ($(ulimit -n) - 200) / 2 ))
fi

# ---------------------------------------------------------------------------------------
# processes and cleanup
# ---------------------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/berry-bench.XXXXXX")
PIDS=()
cleanup() {
  local pid i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "logs kept in $TMP" >&2
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
  echo "error: $*" >&2
  for f in "$TMP"/*.log; do
    [ -s "$f" ] && { echo "--- $f (tail)" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}


# Sends one HTTP/1.1 request (Connection: close) and prints the response.
# http_request PORT METHOD PATH [BODY] [EXTRA_HEADER_LINES]
http_request() {
  local port=$1 method=$2 path=$3 body=${4:-} extra=${5:-}
  (
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s' \
      "$method" "$path" "${#body}" "$extra" "$body" >&3
    timeout 5 cat <&3
  ) 2>/dev/null
}

wait_http() { # PORT NAME PID
  local i resp
  for i in $(seq 1 100); do
    kill -0 "$3" 2>/dev/null || die "$2 exited during start-up"
    resp=$(http_request "$1" GET /) || true
    [[ $resp == "HTTP/1.1 "* ]] && return 0
    [ "$i" -eq 100 ] || sleep 0.1
  done
  die "$2 did not answer on port $1"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# Process ids of $1 and its direct children (nginx master + workers).
with_children() {
  echo "$1"
  awk -v pp="$1" '{ sub(/^.*\) /, ""); if ($2 == pp) { split(FILENAME, a, "/"); print a[3] } }' \
    /proc/[0-9]*/stat 2>/dev/null || true
}

# utime + stime (clock ticks) summed over the given pids.
cpu_ticks() {
  local pid total=0 t
  for pid in "$@"; do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# Established TCP connections whose local port is $1.
established_on() {
  local hex
  hex=$(printf ':%04X' "$1")
  awk -v h="$hex" 'FNR > 1 && $4 == "01" && substr($2, length($2) - 4) == h { n++ } END { print n + 0 }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Established connections of process $1 to remote port $2 (matched by socket inode).
# The inode list goes through a pipe: with thousands of sockets it is too long for an
# argument.
connections_to() {
  local hex
  hex=$(printf ':%04X' "$2")
  find "/proc/$1/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n' |
    awk -v h="$hex" 'FILENAME == "-" { ins[$1] = 1; next }
      FNR > 1 && $4 == "01" && substr($3, length($3) - 4) == h && ($10 in ins) { n++ }
      END { print n + 0 }' - /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# ---------------------------------------------------------------------------------------
# start: mock, gateway, nginx
# ---------------------------------------------------------------------------------------
echo "==> starting berry-mock" >&2
"${ON_LOAD_CPU[@]}" "$MOCK_BIN" --no-record --threads 2 --chunks 5 --interval-ms 0 \
  --models "$REAL_MODEL,$CLIENT_MODEL" >"$TMP/mock.out" 2>"$TMP/mock.log" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
for _ in $(seq 1 100); do
  [ -s "$TMP/mock.out" ] && break
  kill -0 "$MOCK_PID" 2>/dev/null || die "berry-mock exited during start-up"
  sleep 0.05
done
MOCK_ADDR=$(sed -n '1s|^listening on http://||p' "$TMP/mock.out")
MOCK_PORT=${MOCK_ADDR##*:}
[ -n "$MOCK_PORT" ] || die "berry-mock did not print its address"

# start_gateway NAME [ENV=VALUE...]: starts a gateway on a free port, waits until it
# answers, and sets STARTED_PORT and STARTED_PID.
start_gateway() {
  local name=$1
  shift
  STARTED_PORT=$(free_port) || die "no free port"
  bench_gateway_toml "$STARTED_PORT" "$MOCK_ADDR" >"$TMP/$name.toml"
  # PRICES=1 (knob): the bench model gets a price (gpt-4o-mini's list price), so every
  # request's cost is computed; PRICES=0 (default) leaves it unpriced.
  if [ "${PRICES:-0}" = 1 ]; then
    printf '\n[prices."%s"]\ninput = 0.15\noutput = 0.6\ncache_read = 0.075\n' "$REAL_MODEL" >>"$TMP/$name.toml"
  fi
  # AFFINITY=none|session (knob): session = every wrk client sends one session header
  # (x-berry-session) to the bench model (session affinity on, the default); none = the
  # model's `affinity = "none"`, no header. Unset: no header, config as is.
  if [ "${AFFINITY:-}" = none ]; then
    sed -i 's/^strategy = "weighted_random"$/&\naffinity = "none"/' "$TMP/$name.toml"
  fi
  bench_pingora_yaml "$TMP" "$name" >"$TMP/$name-pingora.yaml"
  "${ON_PROXY_CPU[@]}" env RUST_LOG="$GATEWAY_LOG" "$@" "$GATEWAY_BIN" --config "$TMP/$name.toml" -c "$TMP/$name-pingora.yaml" \
    >"$TMP/$name.out" 2>"$TMP/$name.log" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  wait_http "$STARTED_PORT" "berry-$name" "$STARTED_PID"
}

# warm_up PORT: WARMUP seconds of the JSON load on PORT, not measured.
warm_up() {
  wrk -t "$THREADS" -c "$CONNS" -d "${WARMUP}s" -s "$TMP/json.lua" \
    "http://127.0.0.1:$1/v1/chat/completions" >/dev/null 2>&1 || true
}

echo "==> starting berry-gateway" >&2
start_gateway gateway
GW_PORT=$STARTED_PORT
GW_PID=$STARTED_PID

if [ "$GW_ONLY" != 1 ]; then
echo "==> starting the engine floor (hook-less Pingora proxy, same threads)" >&2
ENGINE_PORT=$(free_port) || die "no free port"
bench_pingora_yaml "$TMP" engine >"$TMP/engine-pingora.yaml"
"${ON_PROXY_CPU[@]}" "$ENGINE_BIN" "127.0.0.1:$ENGINE_PORT" "$MOCK_ADDR" -c "$TMP/engine-pingora.yaml" \
  >"$TMP/engine.out" 2>"$TMP/engine.log" &
ENGINE_PID=$!
PIDS+=("$ENGINE_PID")
wait_http "$ENGINE_PORT" engine_floor "$ENGINE_PID"

echo "==> starting nginx" >&2
NGX_PORT=$(free_port) || die "no free port"
mkdir -p "$TMP/nginx/tmp"
NGX_USER=""
if [ "$(id -u)" = 0 ]; then
  NGX_USER="user $(id -un) $(id -gn);"
fi
cat >"$TMP/nginx/nginx.conf" <<EOF
$NGX_USER
worker_processes 2;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/tmp/body;
  proxy_temp_path $TMP/nginx/tmp/proxy;
  fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
  uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
  scgi_temp_path $TMP/nginx/tmp/scgi;
  keepalive_requests 1000000;
  upstream mock {
    server $MOCK_ADDR;
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGX_PORT;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
"${ON_PROXY_CPU[@]}" "$NGINX" -e "$TMP/nginx.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx.out" 2>"$TMP/nginx.stderr.log" &
NGX_PID=$!
PIDS+=("$NGX_PID")
wait_http "$NGX_PORT" nginx "$NGX_PID"
fi # GW_ONLY

# ---------------------------------------------------------------------------------------
# request bodies, wrk scripts, sanity checks
# ---------------------------------------------------------------------------------------
JSON_BODY=$(bench_body false)
SSE_BODY=$(bench_body true)
XLAT_JSON_BODY=${JSON_BODY/\"$CLIENT_MODEL\"/\"$XLAT_MODEL\"}
XLAT_SSE_BODY=${SSE_BODY/\"$CLIENT_MODEL\"/\"$XLAT_MODEL\"}

# wrk script: POST body, bearer token, optional per-connection pause, and a machine-readable
# summary line from done().
# LUA_AUTH=x-goog-api-key: the token in that header (as Gemini clients send it) instead.
write_lua() { # FILE BODY PACE_MS [EXTRA_HEADER VALUE]
  {
    printf 'wrk.method = "POST"\n'
    printf 'wrk.body = [==[%s]==]\n' "$2"
    printf 'wrk.headers["Content-Type"] = "application/json"\n'
    if [ "${LUA_AUTH:-}" = x-goog-api-key ]; then
      printf 'wrk.headers["x-goog-api-key"] = "%s"\n' "$TOKEN"
    else
      printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$TOKEN"
    fi
    if [ $# -ge 5 ]; then
      printf 'wrk.headers["%s"] = "%s"\n' "$4" "$5"
    fi
    if [ "${AFFINITY:-}" = session ]; then
      printf 'wrk.headers["x-berry-session"] = "bench-session-1"\n'
    fi
    if [ "$3" -gt 0 ]; then
      printf 'function delay() return %d end\n' "$3"
    fi
    cat <<'LUA'
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
LUA
  } >"$1"
}
write_lua "$TMP/json.lua" "$JSON_BODY" 0
write_lua "$TMP/sse.lua" "$SSE_BODY" 0
write_lua "$TMP/json_paced.lua" "$JSON_BODY" "$PACE_MS"
write_lua "$TMP/sse_paced.lua" "$SSE_BODY" "$PACE_MS"
write_lua "$TMP/sse_idle.lua" "$SSE_BODY" 0 x-mock-interval-ms 600000
write_lua "$TMP/json_xlat.lua" "$XLAT_JSON_BODY" 0
write_lua "$TMP/sse_xlat.lua" "$XLAT_SSE_BODY" 0
write_lua "$TMP/json_xlat_paced.lua" "$XLAT_JSON_BODY" "$PACE_MS"
write_lua "$TMP/sse_xlat_paced.lua" "$XLAT_SSE_BODY" "$PACE_MS"
# The Responses leg: one body pair per backend kind.
declare -A RSP_MODEL=([rsp]=$CLIENT_MODEL [rsp_chat]=$CHAT_ONLY_MODEL [rsp_anth]=$XLAT_MODEL)
for leg in rsp rsp_chat rsp_anth; do
  write_lua "$TMP/${leg}_json.lua" "$(bench_responses_body "${RSP_MODEL[$leg]}" false)" 0
  write_lua "$TMP/${leg}_sse.lua" "$(bench_responses_body "${RSP_MODEL[$leg]}" true)" 0
done
# The Gemini leg: one body (the method in the path picks streaming); the model is in the
# path. GEM_MODEL: client model per backend kind; GEM_REAL: the backend's model, which the
# answer names as modelVersion.
GEMINI_BODY=$(bench_gemini_body)
declare -A GEM_MODEL=([gem]=$GEMINI_MODEL [gem_chat]=$CLIENT_MODEL [gem_anth]=$XLAT_MODEL)
declare -A GEM_REAL=([gem]=$GEMINI_REAL_MODEL [gem_chat]=$REAL_MODEL [gem_anth]=claude-real)
gem_path() { # LEG json|sse
  if [ "$2" = sse ]; then
    echo "/v1beta/models/${GEM_MODEL[$1]}:streamGenerateContent?alt=sse"
  else
    echo "/v1beta/models/${GEM_MODEL[$1]}:generateContent"
  fi
}
for leg in gem gem_chat gem_anth; do
  LUA_AUTH=x-goog-api-key write_lua "$TMP/${leg}_json.lua" "$GEMINI_BODY" 0
  LUA_AUTH=x-goog-api-key write_lua "$TMP/${leg}_sse.lua" "$GEMINI_BODY" 0
done

if [ "$GW_ONLY" = 1 ]; then
  declare -A TARGET_PORT=([direct]=$MOCK_PORT [gateway]=$GW_PORT)
  TARGETS=(gateway)
else
  declare -A TARGET_PORT=([direct]=$MOCK_PORT [gateway]=$GW_PORT [engine]=$ENGINE_PORT [nginx]=$NGX_PORT)
  TARGETS=(direct gateway engine nginx)
fi

auth="Authorization: Bearer $TOKEN"$'\r\n'
for name in "${!TARGET_PORT[@]}"; do
  port=${TARGET_PORT[$name]}
  resp=$(http_request "$port" POST /v1/chat/completions "$JSON_BODY" "$auth")
  head -n 1 <<<"$resp" | grep -q '^HTTP/1.1 200' || die "$name: non-stream request failed: $(head -n 1 <<<"$resp")"
  resp=$(http_request "$port" POST /v1/chat/completions "$SSE_BODY" "$auth")
  grep -q 'data: \[DONE\]' <<<"$resp" || die "$name: stream request did not complete"
done
resp=$(http_request "$GW_PORT" POST /v1/chat/completions "$JSON_BODY" "$auth")
grep -q "\"model\":\"$REAL_MODEL\"" <<<"$resp" || die "gateway did not rewrite the model (response: ${resp:0:300})"
resp=$(http_request "$GW_PORT" POST /v1/chat/completions "$XLAT_JSON_BODY" "$auth")
grep -q '"object":"chat.completion"' <<<"$resp" || die "translated request failed (response: ${resp:0:300})"
resp=$(http_request "$GW_PORT" POST /v1/chat/completions "$XLAT_SSE_BODY" "$auth")
grep -q 'data: \[DONE\]' <<<"$resp" || die "translated stream did not complete (response: ${resp:0:300})"
if [ "$RESPONSES" = 1 ]; then
  for leg in rsp rsp_chat rsp_anth; do
    resp=$(http_request "$GW_PORT" POST /v1/responses "$(bench_responses_body "${RSP_MODEL[$leg]}" false)" "$auth")
    head -n 1 <<<"$resp" | grep -q '^HTTP/1.1 200' && grep -q '"status":"completed"' <<<"$resp" ||
      die "$leg: Responses request failed (response: ${resp:0:300})"
    resp=$(http_request "$GW_PORT" POST /v1/responses "$(bench_responses_body "${RSP_MODEL[$leg]}" true)" "$auth")
    grep -q '^event: response.completed' <<<"$resp" || die "$leg: Responses stream did not complete (response: ${resp:0:300})"
  done
fi
if [ "$GEMINI" = 1 ]; then
  gauth="x-goog-api-key: $TOKEN"$'\r\n'
  for leg in gem gem_chat gem_anth; do
    resp=$(http_request "$GW_PORT" POST "$(gem_path "$leg" json)" "$GEMINI_BODY" "$gauth")
    head -n 1 <<<"$resp" | grep -q '^HTTP/1.1 200' && grep -q '"finishReason": *"STOP"' <<<"$resp" &&
      grep -q "\"modelVersion\": *\"${GEM_REAL[$leg]}\"" <<<"$resp" && grep -q '"text": *"tok0 tok1 tok2 tok3 tok4 "' <<<"$resp" ||
      die "$leg: Gemini generateContent failed (response: ${resp:0:400})"
    resp=$(http_request "$GW_PORT" POST "$(gem_path "$leg" sse)" "$GEMINI_BODY" "$gauth")
    head -n 1 <<<"$resp" | grep -q '^HTTP/1.1 200' && grep -qi '^content-type: text/event-stream' <<<"$resp" &&
      grep -q '"text": *"tok4 "' <<<"$resp" && grep '^data: ' <<<"$resp" | tail -n 1 | grep -q '"finishReason": *"STOP"' ||
      die "$leg: Gemini stream did not complete (response: ${resp:0:400})"
  done
fi

sleep 1
RSS_IDLE=$(rss_kib "$GW_PID")
echo "==> gateway RSS idle: $RSS_IDLE KiB" >&2

# ---------------------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------------------
RESULTS=$TMP/results.tsv # scenario target round rps p50_us p99_us errors cpu_us_per_req
RAW=$TMP/raw.txt
: >"$RESULTS"
: >"$RAW"

# run_wrk SCENARIO TARGET ROUND CONNS LUA PORT PIDS...
run_wrk() {
  local scenario=$1 target=$2 round=$3 conns=$4 lua=$5 port=$6
  shift 6
  local threads=$THREADS out line c0 c1
  [ "$conns" -lt "$threads" ] && threads=$conns
  c0=$(cpu_ticks "$@")
  out=$("${ON_LOAD_CPU[@]}" wrk -t "$threads" -c "$conns" -d "${DURATION}s" --timeout 10s --latency -s "$lua" \
    "http://127.0.0.1:$port${WRK_PATH:-/v1/chat/completions}" 2>&1) || true
  c1=$(cpu_ticks "$@")
  printf '### %s %s round %s (-t %s -c %s -d %ss)\n%s\n\n' "$scenario" "$target" "$round" "$threads" "$conns" "$DURATION" "$out" >>"$RAW"
  line=$(grep '^BENCH ' <<<"$out" || true)
  [ -n "$line" ] || { echo "$out" >&2; die "wrk produced no summary for $scenario/$target"; }
  # shellcheck disable=SC2086 # word splitting of key=value pairs is intended
  line=$(echo $line | awk -v c="$((c1 - c0))" -v hz="$CLK_TCK" '{
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    err = v["err_connect"] + v["err_read"] + v["err_write"] + v["err_status"] + v["err_timeout"]
    cpu = v["requests"] > 0 ? c * 1e6 / hz / v["requests"] : 0
    printf "%s %s %s %.0f %s\n", v["rps"], v["p50_us"], v["p99_us"], err, cpu
  }')
  printf '%s\t%s\t%s\t%s\n' "$scenario" "$target" "$round" "${line// /$'\t'}" >>"$RESULTS"
  printf '    %-9s %-8s round %s: %s\n' "$scenario" "$target" "$round" "$line" >&2
}

NGX_PIDS=()
[ "$GW_ONLY" = 1 ] || mapfile -t NGX_PIDS < <(with_children "$NGX_PID")
proxy_pids() {
  case $1 in
    direct) echo "$MOCK_PID" ;;
    gateway) echo "$GW_PID" ;;
    engine) echo "$ENGINE_PID" ;;
    nginx) printf '%s\n' "${NGX_PIDS[@]}" ;;
  esac
}

echo "==> warm-up (${WARMUP}s per target)" >&2
for target in "${TARGETS[@]}"; do
  warm_up "${TARGET_PORT[$target]}"
done

SCENARIOS=(
  "json:$CONNS:json.lua"
  "sse:$CONNS:sse.lua"
  "json_c8:8:json.lua"
  "json_lat:8:json_paced.lua"
  "sse_lat:8:sse_paced.lua"
)
[ "$GW_ONLY" = 1 ] && SCENARIOS=("json:$CONNS:json.lua" "sse:$CONNS:sse.lua")
[ "$STREAMS_ONLY" = 1 ] && SCENARIOS=()
echo "==> measuring (${DURATION}s each; columns: req/s p50_us p99_us errors proxy_cpu_us_per_req)" >&2
# One round runs every leg in turn, so with ROUNDS > 1 a drift in the machine's load
# spreads over all legs alike instead of skewing the ratios between them.
for round in $(seq 1 "$ROUNDS"); do
  for s in "${SCENARIOS[@]}"; do
    IFS=: read -r scenario conns lua <<<"$s"
    for target in "${TARGETS[@]}"; do
      mapfile -t pids < <(proxy_pids "$target")
      run_wrk "$scenario" "$target" "$round" "$conns" "$TMP/$lua" "${TARGET_PORT[$target]}" "${pids[@]}"
    done
  done
  # The translated leg (gateway only): OpenAI client, Anthropic-dialect backend.
  if [ "$GW_ONLY" != 1 ]; then
    for s in "json_xlat:$CONNS:json_xlat.lua" "sse_xlat:$CONNS:sse_xlat.lua" \
      "json_xlat_lat:8:json_xlat_paced.lua" "sse_xlat_lat:8:sse_xlat_paced.lua"; do
      IFS=: read -r scenario conns lua <<<"$s"
      run_wrk "$scenario" gateway "$round" "$conns" "$TMP/$lua" "$GW_PORT" "$GW_PID"
    done
  fi
  # The Responses leg (gateway only): OpenAI Responses client on a native, a chat-only and
  # an Anthropic backend.
  if [ "$RESPONSES" = 1 ]; then
    for scenario in rsp_json rsp_sse rsp_chat_json rsp_chat_sse rsp_anth_json rsp_anth_sse; do
      WRK_PATH=/v1/responses run_wrk "$scenario" gateway "$round" "$CONNS" "$TMP/$scenario.lua" "$GW_PORT" "$GW_PID"
    done
  fi
  # The Gemini leg (gateway only): native Gemini client on a native, an OpenAI and an
  # Anthropic backend.
  if [ "$GEMINI" = 1 ]; then
    for leg in gem gem_chat gem_anth; do
      for kind in json sse; do
        WRK_PATH=$(gem_path "$leg" "$kind") run_wrk "${leg}_$kind" gateway "$round" "$CONNS" \
          "$TMP/${leg}_$kind.lua" "$GW_PORT" "$GW_PID"
      done
    done
  fi
done
RSS_AFTER=$(rss_kib "$GW_PID")
echo "==> gateway RSS after load: $RSS_AFTER KiB" >&2

# ---------------------------------------------------------------------------------------
# time to first token: the mock pauses TTFT_PAUSE_MS between events (role chunk, then the
# first content event); the gateway holds the role chunk until the content event arrives
# (the stream's commit point), so its first content byte should come as early as direct
# ---------------------------------------------------------------------------------------
TTFT_REPORT=""
if [ "$TTFT_N" -gt 0 ]; then
  echo "==> time to first token ($TTFT_N sequential streams per target, ${TTFT_PAUSE_MS} ms between events)" >&2
  for target in direct gateway engine; do
    line=$(python3 "$ROOT/scripts/ttft.py" "${TARGET_PORT[$target]}" "$TOKEN" "$CLIENT_MODEL" "$TTFT_N" \
      "x-mock-interval-ms: $TTFT_PAUSE_MS") || die "ttft: $target failed"
    echo "    $target: $line" >&2
    TTFT_REPORT+=$(printf '  %-8s %s' "$target" "${line#TTFT }")$'\n'
  done
fi

# ---------------------------------------------------------------------------------------
# open SSE streams: memory per stream, throughput while they are open
# ---------------------------------------------------------------------------------------
# open_idle_streams PORT HOLD_SECONDS: N_IDLE streams that stay open for HOLD_SECONDS
# (the mock pauses after its first event); returns 2 s after they are all established, or
# after 30 s. Sets HOLD_PID (the wrk holding them).
open_idle_streams() {
  "${ON_LOAD_CPU[@]}" wrk -t 2 -c "$N_IDLE" -d "${2}s" --timeout "$(($2 + 10))s" -s "$TMP/sse_idle.lua" \
    "http://127.0.0.1:$1/v1/chat/completions" >/dev/null 2>&1 &
  HOLD_PID=$!
  PIDS+=("$HOLD_PID")
  for _ in $(seq 1 300); do
    [ "$(established_on "$1")" -ge "$N_IDLE" ] && break
    sleep 0.1
  done
  sleep 2
}

IDLE_REPORT=""
if [ "$N_IDLE" -gt 0 ]; then
  echo "==> opening $N_IDLE idle SSE streams through the gateway" >&2
  rss_before=$(rss_kib "$GW_PID")
  upstream_before=$(connections_to "$GW_PID" "$MOCK_PORT")
  open_idle_streams "$GW_PORT" $((DURATION + 45))
  open=$(established_on "$GW_PORT")
  upstream_open=$(connections_to "$GW_PID" "$MOCK_PORT")
  rss_open=$(rss_kib "$GW_PID")
  per_stream=$(awk -v a="$rss_open" -v b="$rss_before" -v n="$open" 'BEGIN { printf "%.1f", (n > 0 ? (a - b) / n : 0) }')
  echo "    $open client connections open (mock side: $upstream_open); RSS $rss_before -> $rss_open KiB = $per_stream KiB/stream" >&2
  echo "==> JSON throughput through the gateway with the streams open" >&2
  mapfile -t pids < <(proxy_pids gateway)
  run_wrk json_with_idle gateway 1 "$CONNS" "$TMP/json.lua" "$GW_PORT" "${pids[@]}"
  rss_open_load=$(rss_kib "$GW_PID")
  kill -TERM "$HOLD_PID" 2>/dev/null || true
  wait "$HOLD_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do
    [ "$(established_on "$GW_PORT")" -le 2 ] && break
    sleep 0.1
  done
  sleep 1
  rss_closed=$(rss_kib "$GW_PID")
  upstream_after=$(connections_to "$GW_PID" "$MOCK_PORT")
  IDLE_REPORT=$(printf '%s\n' \
    "open SSE streams through the gateway: $open (target $N_IDLE); gateway->mock connections $upstream_before idle (pooled) before, $upstream_open while open" \
    "gateway RSS before opening:      $rss_before KiB" \
    "gateway RSS with streams open:   $rss_open KiB  => $per_stream KiB per open stream (target: <= 24 KiB)" \
    "gateway RSS open + JSON load:    $rss_open_load KiB" \
    "gateway RSS after closing them:  $rss_closed KiB (gateway->mock connections still open: $upstream_after)")
fi
# The same held streams through the engine floor, patched (as built here) and stock: memory
# per open stream, the floor the gateway is compared with. Each is a fresh process (after
# the same JSON warm-up), so neither carries the other's history.
# start_engine NAME BIN: sets STARTED_PORT and STARTED_PID.
start_engine() {
  STARTED_PORT=$(free_port) || die "no free port"
  bench_pingora_yaml "$TMP" "$1" >"$TMP/$1-pingora.yaml"
  "${ON_PROXY_CPU[@]}" "$2" "127.0.0.1:$STARTED_PORT" "$MOCK_ADDR" -c "$TMP/$1-pingora.yaml" \
    >"$TMP/$1.out" 2>"$TMP/$1.log" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  wait_http "$STARTED_PORT" "$1" "$STARTED_PID"
}
if [ "$N_IDLE" -gt 0 ]; then
  for eng in engine engine_stock; do
    bin=$ENGINE_BIN
    label="engine floor (patched pingora-core)"
    if [ "$eng" = engine_stock ]; then
      bin=$ENGINE_STOCK_BIN
      label="engine floor (stock pingora-core 0.9.1)"
    fi
    echo "==> opening $N_IDLE idle SSE streams through the $label" >&2
    start_engine "idle-$eng" "$bin"
    port=$STARTED_PORT
    pid=$STARTED_PID
    warm_up "$port"
    sleep 1
    before=$(rss_kib "$pid")
    open_idle_streams "$port" 20
    open=$(established_on "$port")
    rss=$(rss_kib "$pid")
    per=$(awk -v a="$rss" -v b="$before" -v n="$open" 'BEGIN { printf "%.1f", (n > 0 ? (a - b) / n : 0) }')
    echo "    $eng: $open open; RSS $before -> $rss KiB = $per KiB/stream" >&2
    kill -TERM "$HOLD_PID" 2>/dev/null || true
    wait "$HOLD_PID" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    IDLE_REPORT+=$'\n'"$(printf '%-40s %5s open streams: RSS %7s -> %7s KiB => %5s KiB per open stream' "$label" "$open" "$before" "$rss" "$per")"
    if [ "$eng" = engine ]; then eng_per_stream=$per; else stock_per_stream=$per; fi
  done
  IDLE_REPORT+=$'\n'"KiB per open stream, gateway / engine patched / engine stock: $per_stream / $eng_per_stream / $stock_per_stream (target: gateway <= 24 KiB at 9,000 streams)"
fi
RSS_END=$(rss_kib "$GW_PID")
HWM_END=$(hwm_kib "$GW_PID")

# ---------------------------------------------------------------------------------------
# cost of per-request metrics: the same gateway with BERRY_REQUEST_METRICS=off,
# measured alternately with the metrics-on gateway
# ---------------------------------------------------------------------------------------
if [ "$GW_ONLY" != 1 ]; then
  echo "==> per-request metrics cost: second gateway with BERRY_REQUEST_METRICS=off" >&2
  start_gateway gateway-nometrics BERRY_REQUEST_METRICS=off
  NOMETRICS_PORT=$STARTED_PORT
  NOMETRICS_PID=$STARTED_PID
  warm_up "$NOMETRICS_PORT"
  for round in $(seq 1 "$ROUNDS"); do
    run_wrk metrics gateway_on "$round" "$CONNS" "$TMP/json.lua" "$GW_PORT" "$GW_PID"
    run_wrk metrics gateway_off "$round" "$CONNS" "$TMP/json.lua" "$NOMETRICS_PORT" "$NOMETRICS_PID"
  done
fi

# ---------------------------------------------------------------------------------------
# cost of shared state: a gateway whose bench user has (never reached) limits enforced on
# a local redis-server, so every request makes its one admission round trip; measured
# alternately with the main gateway (same user without limits, no Redis)
# ---------------------------------------------------------------------------------------
if [ "$SHARED" = 1 ]; then
  echo "==> shared state cost: gateway with [settings.shared_state] on a local redis-server" >&2
  REDIS_PORT=$(free_port) || die "no free port"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    >"$TMP/redis.log" 2>&1 &
  PIDS+=("$!")
  REDIS_PID=$!
  redis_up=0
  for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then redis_up=1; break; fi
    sleep 0.1
  done
  [ "$redis_up" = 1 ] || die "redis-server did not start (see $TMP/redis.log)"
  EXTRA_SETTINGS=$(printf '[settings.shared_state]\nredis_url = "redis://127.0.0.1:%s/"\ntimeout_ms = 200' "$REDIS_PORT")
  # A separate table, after [users.bench]'s keys.
  EXTRA_USER=$(printf '[users.bench.rate_limit]\nrequests_per_minute = 1000000000\ntokens_per_day = 1000000000000')
  start_gateway gateway-shared
  EXTRA_SETTINGS="" EXTRA_USER=""
  SHARED_PORT=$STARTED_PORT
  SHARED_PID=$STARTED_PID
  # Measure shared state, not the fallback: Redis must be up for the gateway.
  for _ in $(seq 1 50); do
    http_request "$SHARED_PORT" GET /metrics "" "" | grep -q '^berry_shared_state_up 1' && break
    sleep 0.1
  done
  http_request "$SHARED_PORT" GET /metrics "" "" | grep -q '^berry_shared_state_up 1' ||
    die "the shared-state gateway never reached Redis (see $TMP/gateway-shared.log)"
  warm_up "$SHARED_PORT"
  for round in $(seq 1 "$ROUNDS"); do
    run_wrk shared gateway_off "$round" "$CONNS" "$TMP/json.lua" "$GW_PORT" "$GW_PID"
    run_wrk shared gateway_on "$round" "$CONNS" "$TMP/json.lua" "$SHARED_PORT" "$SHARED_PID" "$REDIS_PID"
    run_wrk shared_lat gateway_off "$round" 8 "$TMP/json_paced.lua" "$GW_PORT" "$GW_PID"
    run_wrk shared_lat gateway_on "$round" 8 "$TMP/json_paced.lua" "$SHARED_PORT" "$SHARED_PID" "$REDIS_PID"
  done
  redis_calls=$(redis-cli -p "$REDIS_PORT" info commandstats 2>/dev/null | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\).*/\1/p')
fi

# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { # SCENARIO TARGET COLUMN(4..8)
  awk -F'\t' -v s="$1" -v t="$2" -v c="$3" '$1 == s && $2 == t { print $c }' "$RESULTS" | median
}

mkdir -p "$ROOT/bench-results"
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$ROOT/bench-results/load-$STAMP.txt
{
  echo "berry-gateway load benchmark  $(date -Is)"
  echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (dirty)')," \
    "$(nproc) CPUs, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ "$GW_ONLY" = 1 ]; then
    if [ "$STREAMS_ONLY" = 1 ]; then
      echo "STREAMS_ONLY=1: the open-streams part only; $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
    else
      echo "RESP_ONLY=$RESP_ONLY GEMINI_ONLY=$GEMINI_ONLY: the gateway's chat leg and the selected client-API legs only; $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
    fi
  else
    echo "$("$NGINX" -v 2>&1), $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
  fi
  echo "wrk -t $THREADS, ${DURATION}s per measurement, $ROUNDS round(s) (medians); throughput scenarios -c $CONNS;"
  echo "json_c8 = -c 8 unpaced; *_lat = -c 8 with ${PACE_MS} ms pause per connection between requests."
  echo "mock: --threads 2, SSE 5 chunks, no pauses; gateway: threads 2, RUST_LOG=$GATEWAY_LOG; nginx: 2 workers, keepalive 256."
  echo "proxy CPU = CPU time of the process under test per request (direct: the mock itself)."
  if [ "$PIN" = 1 ]; then
    echo "PIN=1: the proxy under test on CPU 1; wrk and the mock on CPU 0 (taskset)."
  fi
  echo
  printf '%-15s %-8s %11s %10s %10s %7s %13s\n' scenario target "req/s" "p50 ms" "p99 ms" errors "proxy CPU us"
  for s in json sse json_c8 json_lat sse_lat json_with_idle json_xlat sse_xlat json_xlat_lat sse_xlat_lat \
    rsp_json rsp_sse rsp_chat_json rsp_chat_sse rsp_anth_json rsp_anth_sse \
    gem_json gem_sse gem_chat_json gem_chat_sse gem_anth_json gem_anth_sse; do
    for t in "${TARGETS[@]}"; do
      rps=$(col "$s" "$t" 4)
      [ "$rps" = nan ] && continue
      printf '%-15s %-8s %11.0f %10.3f %10.3f %7.0f %13.1f\n' "$s" "$t" "$rps" \
        "$(awk -v v="$(col "$s" "$t" 5)" 'BEGIN { print v / 1000 }')" \
        "$(awk -v v="$(col "$s" "$t" 6)" 'BEGIN { print v / 1000 }')" \
        "$(col "$s" "$t" 7)" "$(col "$s" "$t" 8)"
    done
  done
  if [ "$GW_ONLY" != 1 ]; then
  echo
  printf '%-9s %14s %14s %14s %14s %16s %16s\n' scenario "rps gw/direct" "rps gw/nginx" "p99 gw/direct" "p99 gw/nginx" "added p99 vs direct" "added p99 vs nginx"
  for s in json sse json_c8 json_lat sse_lat; do
    awk -v rd="$(col "$s" direct 4)" -v rg="$(col "$s" gateway 4)" -v rn="$(col "$s" nginx 4)" \
      -v pd="$(col "$s" direct 6)" -v pg="$(col "$s" gateway 6)" -v pn="$(col "$s" nginx 6)" -v s="$s" \
      'BEGIN { printf "%-9s %14.2f %14.2f %14.2f %14.2f %16s %16s\n", s, rg / rd, rg / rn, pg / pd, pg / pn,
               sprintf("%+.3f ms", (pg - pd) / 1000), sprintf("%+.3f ms", (pg - pn) / 1000) }'
  done
  echo
  printf '%-9s %15s %15s %14s %18s\n' scenario "rps gw/engine" "rps engine/nginx" "p99 gw-engine" "CPU us gw/engine"
  for s in json sse json_c8 json_lat sse_lat; do
    awk -v rg="$(col "$s" gateway 4)" -v re="$(col "$s" engine 4)" -v rn="$(col "$s" nginx 4)" \
      -v pg="$(col "$s" gateway 6)" -v pe="$(col "$s" engine 6)" -v cg="$(col "$s" gateway 8)" \
      -v ce="$(col "$s" engine 8)" -v s="$s" \
      'BEGIN { printf "%-9s %15.2f %15.2f %14s %18s\n", s, rg / re, re / rn,
               sprintf("%+.3f ms", (pg - pe) / 1000), sprintf("%.1f / %.1f", cg, ce) }'
  done
  echo
  echo "translated leg (OpenAI client -> Anthropic-dialect backend) / same-API path, gateway:"
  for s in json sse json_lat sse_lat; do
    x=${s/_lat/_xlat_lat}
    [ "$x" = "$s" ] && x=${s}_xlat
    awk -v r1="$(col "$x" gateway 4)" -v r0="$(col "$s" gateway 4)" -v p1="$(col "$x" gateway 6)" \
      -v p0="$(col "$s" gateway 6)" -v c1="$(col "$x" gateway 8)" -v c0="$(col "$s" gateway 8)" -v s="$s" \
      'BEGIN { printf "  %-8s rps %.2f  p99 %+.3f ms  CPU us/req %.1f vs %.1f\n", s, r1 / r0, (p1 - p0) / 1000, c1, c0 }'
  done
  echo
  awk -v on="$(col metrics gateway_on 4)" -v off="$(col metrics gateway_off 4)" \
    -v con="$(col metrics gateway_on 8)" -v coff="$(col metrics gateway_off 8)" -v c="$CONNS" \
    'BEGIN { printf "per-request metrics (json, -c %s): req/s on %.0f / off %.0f = %.2f; CPU us/req on %.1f / off %.1f = %.2f\n",
             c, on, off, on / off, con, coff, con / coff }'
  fi # GW_ONLY
  if [ "$RESPONSES" = 1 ]; then
    echo
    echo "Responses leg (OpenAI Responses client, -c $CONNS) / chat leg (same-API chat completions), gateway:"
    for s in json sse; do
      for leg in "rsp:native (passthrough)" "rsp_chat:chat-only (-> chat)" "rsp_anth:anthropic (-> Messages)"; do
        x=${leg%%:*}_$s
        awk -v r1="$(col "$x" gateway 4)" -v r0="$(col "$s" gateway 4)" -v p1="$(col "$x" gateway 6)" \
          -v p0="$(col "$s" gateway 6)" -v c1="$(col "$x" gateway 8)" -v c0="$(col "$s" gateway 8)" \
          -v s="$s" -v l="${leg#*:}" \
          'BEGIN { printf "  %-4s %-30s rps %.0f / %.0f = %.2f  p99 %+.3f ms  CPU us/req %.1f vs %.1f\n", s, l, r1, r0, r1 / r0, (p1 - p0) / 1000, c1, c0 }'
      done
    done
  fi
  if [ "$GEMINI" = 1 ]; then
    echo
    echo "Gemini leg (native Gemini API client, -c $CONNS) / chat leg (same-API chat completions), gateway:"
    for s in json sse; do
      for leg in "gem:native gemini (passthrough)" "gem_chat:openai (-> chat)" "gem_anth:anthropic (-> Messages)"; do
        x=${leg%%:*}_$s
        awk -v r1="$(col "$x" gateway 4)" -v r0="$(col "$s" gateway 4)" -v p1="$(col "$x" gateway 6)" \
          -v p0="$(col "$s" gateway 6)" -v c1="$(col "$x" gateway 8)" -v c0="$(col "$s" gateway 8)" \
          -v s="$s" -v l="${leg#*:}" \
          'BEGIN { printf "  %-4s %-30s rps %.0f / %.0f = %.2f  p99 %+.3f ms  CPU us/req %.1f vs %.1f\n", s, l, r1, r0, r1 / r0, (p1 - p0) / 1000, c1, c0 }'
      done
    done
  fi
  if [ "$SHARED" = 1 ]; then
    awk -v on="$(col shared gateway_on 4)" -v off="$(col shared gateway_off 4)" \
      -v con="$(col shared gateway_on 8)" -v coff="$(col shared gateway_off 8)" \
      -v pon="$(col shared_lat gateway_on 6)" -v poff="$(col shared_lat gateway_off 6)" -v c="$CONNS" \
      'BEGIN { printf "shared state on a local Redis (json, -c %s): req/s on %.0f / off %.0f = %.2f; CPU us/req (gateway + redis) on %.1f / off %.1f; json_lat p99 on %.3f / off %.3f ms\n",
               c, on, off, on / off, con, coff, pon / 1000, poff / 1000 }'
    echo "redis EVALSHA calls during the shared-state runs: ${redis_calls:-?} (one per admission, plus the batched token additions)"
  fi
  echo
  echo "gateway RSS idle:            $RSS_IDLE KiB ($(awk -v k="$RSS_IDLE" 'BEGIN { printf "%.1f", k / 1024 }') MiB; target: < 30 MiB)"
  echo "gateway RSS after the load:  $RSS_AFTER KiB"
  echo "gateway RSS at the end:      $RSS_END KiB (peak VmHWM $HWM_END KiB)"
  [ -n "$IDLE_REPORT" ] && echo "$IDLE_REPORT"
  if [ -n "$TTFT_REPORT" ]; then
    echo
    echo "time to first token (request written -> first response byte / first content byte):"
    printf '%s' "$TTFT_REPORT"
  fi
} >"$TMP/report.txt"

cat "$TMP/report.txt"
{
  cat "$TMP/report.txt"
  echo
  echo "==================== per-round results (scenario target round rps p50_us p99_us errors proxy_cpu_us) ===================="
  cat "$RESULTS"
  echo
  echo "==================== raw wrk output ===================="
  cat "$RAW"
} >"$OUT"
echo "results written to $OUT" >&2
