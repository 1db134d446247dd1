#!/usr/bin/env bash
# Instructions per request: the gateway and the engine floor (examples/engine_floor.rs)
# under callgrind, same mock upstream, same wrk load, and where the gateway's instructions
# above the engine go, by category.
#
# Why instructions: on a shared 2-core machine CPU time per request moves by ±10% from run
# to run, more than most single changes are worth. Callgrind counts the user-space
# instructions each function executes, which hardly depends on what else runs, so a change
# of 1% shows. It does not see the kernel (syscalls, scheduling), cache misses or lock
# contention: confirm with scripts/bench-load.sh (CPU µs per request) for those.
#
# What it does:
#   1. builds the release binaries unless SKIP_BUILD=1 (honours CARGO_TARGET_DIR);
#      installs valgrind and wrk with apt-get when missing;
#   2. starts the release berry-mock (2 threads, 5-chunk streams without pauses), then the
#      gateway (the load script's config shape: weighted_random over 2 accounts, the model
#      name spliced) and the engine floor, each under valgrind --tool=callgrind with
#      instrumentation off;
#   3. per scenario (json, sse: the load script's bodies; json_xlat, sse_xlat: the same
#      bodies on the Anthropic-dialect model, gateway only) and target: 2 s of warm-up
#      without instrumentation, then instrumentation on for DURATION seconds of
#      `wrk -t1 -c8`, off, dump; requests counted by wrk;
#   4. prints instructions per request for each, and a table of the gateway's
#      instructions above the engine by category (inclusive costs of its hooks and of its
#      connection loop beyond Pingora's), written with the callgrind files to
#      bench-results/profile-<timestamp>/.
#
# Run:   scripts/profile-instructions.sh            (about 2 minutes plus the build)
# Knobs: DURATION=8, SKIP_BUILD=1, GATEWAY_BIN=path (profile another gateway build, e.g. a
#        copy of an older one, against the same engine), GATEWAY_LOG=warn (RUST_LOG).
# Open a dump with `callgrind_annotate --inclusive=yes FILE` (or kcachegrind).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DURATION=${DURATION:-8}
GATEWAY_LOG=${GATEWAY_LOG:-warn}

ensure_cargo
command -v wrk >/dev/null 2>&1 || apt_install wrk
command -v valgrind >/dev/null 2>&1 || apt_install valgrind
command -v python3 >/dev/null 2>&1 || apt_install python3

bench_binaries "${GATEWAY_BIN:-}"

OUT=$ROOT/bench-results/profile-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

wait_port() { # PORT PID
  local _
  for _ in $(seq 1 300); do
    kill -0 "$2" 2>/dev/null || { echo "error: process $2 exited; logs in $OUT" >&2; exit 1; }
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "error: nothing answers on port $1; logs in $OUT" >&2
  exit 1
}

"$MOCK_BIN" --no-record --threads 2 --chunks 5 --interval-ms 0 \
  --models "$REAL_MODEL,$CLIENT_MODEL" >"$OUT/mock.out" 2>"$OUT/mock.log" &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$OUT/mock.out" ] && break; sleep 0.05; done
MOCK_ADDR=$(sed -n '1s|^listening on http://||p' "$OUT/mock.out")
[ -n "$MOCK_ADDR" ] || { echo "error: berry-mock did not start" >&2; exit 1; }

GW_PORT=$(free_port)
ENGINE_PORT=$(free_port)
bench_gateway_toml "$GW_PORT" "$MOCK_ADDR" >"$OUT/gateway.toml"
for name in gateway engine; do
  bench_pingora_yaml "$OUT" "$name" >"$OUT/$name-pingora.yaml"
done
env RUST_LOG="$GATEWAY_LOG" valgrind --tool=callgrind --instr-atstart=no --dump-instr=no \
  --separate-threads=no --callgrind-out-file="$OUT/gateway.final.callgrind" \
  "$GATEWAY_BIN" --config "$OUT/gateway.toml" -c "$OUT/gateway-pingora.yaml" \
  >"$OUT/gateway.out" 2>"$OUT/gateway.log" &
GW_PID=$!
PIDS+=("$GW_PID")
valgrind --tool=callgrind --instr-atstart=no --dump-instr=no --separate-threads=no \
  --callgrind-out-file="$OUT/engine.final.callgrind" \
  "$ENGINE_BIN" "127.0.0.1:$ENGINE_PORT" "$MOCK_ADDR" -c "$OUT/engine-pingora.yaml" \
  >"$OUT/engine.out" 2>"$OUT/engine.log" &
ENGINE_PID=$!
PIDS+=("$ENGINE_PID")
wait_port "$GW_PORT" "$GW_PID"
wait_port "$ENGINE_PORT" "$ENGINE_PID"

# json_xlat / sse_xlat: the same bodies naming the Anthropic-dialect model (gateway only:
# the request, the answer and the stream are translated).
for s in json sse json_xlat sse_xlat; do
  stream=false
  case $s in sse*) stream=true ;; esac
  body=$(bench_body "$stream")
  case $s in *_xlat) body=${body/\"$CLIENT_MODEL\"/\"$XLAT_MODEL\"} ;; esac
  {
    printf 'wrk.method = "POST"\nwrk.body = [==[%s]==]\n' "$body"
    printf 'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer %s"\n' "$TOKEN"
    printf 'function done(summary, latency, requests)\n  io.write(string.format("BENCH requests=%%d errors=%%d\\n", summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))\nend\n'
  } >"$OUT/$s.lua"
done

RESULTS=$OUT/results.tsv # scenario target requests instructions file
: >"$RESULTS"
for s in json sse json_xlat sse_xlat; do
  targets="gateway engine"
  case $s in *_xlat) targets=gateway ;; esac
  for t in $targets; do
    if [ "$t" = gateway ]; then pid=$GW_PID port=$GW_PORT; else pid=$ENGINE_PID port=$ENGINE_PORT; fi
    url="http://127.0.0.1:$port/v1/chat/completions"
    wrk -t1 -c8 -d2s -s "$OUT/$s.lua" "$url" >/dev/null 2>&1 || true
    callgrind_control -z "$pid" >/dev/null 2>&1
    callgrind_control -i on "$pid" >/dev/null 2>&1
    line=$(wrk -t1 -c8 -d"${DURATION}s" --timeout 20s -s "$OUT/$s.lua" "$url" 2>&1 | grep '^BENCH ' || true)
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$s" "$pid" >/dev/null 2>&1
    sleep 0.5
    f=$(ls -t "$OUT/$t.final.callgrind".* 2>/dev/null | head -n 1)
    [ -n "$f" ] || { echo "error: no callgrind dump for $t/$s" >&2; exit 1; }
    mv "$f" "$OUT/$t-$s.callgrind"
    n=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
    ir=$(sed -n 's/^totals: *//p' "$OUT/$t-$s.callgrind" | head -n 1)
    [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "error: wrk made no requests against $t ($s)" >&2; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$t" "$n" "$ir" "$OUT/$t-$s.callgrind" >>"$RESULTS"
    printf '    %-9s %-8s %6s requests  %9.0f instructions per request\n' "$s" "$t" "$n" \
      "$(awk -v a="$ir" -v b="$n" 'BEGIN { print a / b }')" >&2
  done
done

python3 - "$RESULTS" <<'PY' | tee "$OUT/report.md"
import re, subprocess, sys

def load(path):
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=yes", path],
                         capture_output=True, text=True, check=True).stdout
    costs, total = {}, 0
    for line in out.splitlines():
        m = re.match(r"^\s*([0-9,]+) \([ 0-9.]+%\)  (.*)$", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = n
            continue
        fn = re.sub(r" \[.*\]$", "", m.group(2))
        fn = re.sub(r"^[^:]*:", "", fn, count=1)
        costs[fn] = costs.get(fn, 0) + n
    return costs, total

def get(costs, *patterns):
    return sum(v for k, v in costs.items() for p in patterns if re.fullmatch(p, k))

HOOK = re.escape("<berry_gateway::proxy::BerryProxy as pingora_proxy::proxy_trait::ProxyHttp>::")
CLOSURE = r"::\{\{closure\}\}"
# ClientApp is generic over the Pingora app it serves (ClientApp<BerryProxy's app>).
LOOP_GW = re.escape("<berry_gateway::connection::ClientApp") + r"(<.*>)?" + re.escape(" as pingora_core::apps::ServerApp>::process_new") + CLOSURE
LOOP_ENGINE = re.escape("<T as pingora_core::apps::ServerApp>::process_new") + CLOSURE
PER_REQUEST = re.escape("<pingora_proxy::HttpProxy<SV,C> as pingora_core::apps::HttpServerApp>::process_new_http") + CLOSURE
CATEGORIES = [
    ("auth (token, SHA-256, user lookup)", [r"berry_gateway::auth::request_token", r"berry_gateway::auth::Users::authenticate_index"]),
    ("body scan + admission", [r"berry_gateway::proxy::request::validate_request"]),
    ("request id", [r"berry_gateway::proxy::request::request_id"]),
    ("backend selection + peer", [HOOK + "upstream_peer" + CLOSURE]),
    ("upstream request head rewrite", [HOOK + "upstream_request_filter" + CLOSURE]),
    ("response head handling", [HOOK + "upstream_response_filter" + CLOSURE]),
    ("response body watch (usage, SSE scan, gate)", [r"berry_gateway::proxy::response::on_body_chunk"]),
    ("metrics, access log, settlement", [HOOK + "logging" + CLOSURE]),
    ("request_body_filter", [HOOK + "request_body_filter" + CLOSURE]),
    ("upstream header watchdog (streams)", [r"berry_gateway::proxy::upstream::arm_watchdog", r"berry_gateway::proxy::watchdog::Watchdog::arm" + CLOSURE]),
    ("Pingora timeouts set by the config", [r"<pingora_timeout::fast_timeout::FastOrTokioTimeout as pingora_timeout::ToTimeout>::timeout", r"pingora_timeout::fast_timeout::check_clock_thread", r"pingora_timeout::timer::TimerStub::poll" + CLOSURE]),
]

rows = {}
for line in open(sys.argv[1]):
    s, t, n, ir, path = line.rstrip("\n").split("\t")
    rows[(s, t)] = (int(n), int(ir), path)
print("Instructions per request (user space, callgrind; wrk -t1 -c8):\n")
print("| scenario | gateway | engine floor | gateway above engine |")
print("|---|---|---|---|")
for s in ("json", "sse"):
    (gn, gir, _), (en, eir, _) = rows[(s, "gateway")], rows[(s, "engine")]
    print(f"| {s} | {gir / gn / 1000:.1f}k | {eir / en / 1000:.1f}k | {(gir / gn - eir / en) / 1000:+.1f}k |")
print("\nTranslated (OpenAI client, Anthropic-dialect backend) against the same API, gateway only:\n")
print("| scenario | translated | same API | translated above same API |")
print("|---|---|---|---|")
for s in ("json", "sse"):
    (xn, xir, _), (gn, gir, _) = rows[(s + "_xlat", "gateway")], rows[(s, "gateway")]
    print(f"| {s} | {xir / xn / 1000:.1f}k | {gir / gn / 1000:.1f}k | {(xir / xn - gir / gn) / 1000:+.1f}k |")
print("\nThe gateway's instructions above the engine, by category (inclusive, per request):\n")
print("| category | json | sse |")
print("|---|---|---|")
table = {}
for s in ("json", "sse"):
    (gn, gir, gpath), (en, eir, epath) = rows[(s, "gateway")], rows[(s, "engine")]
    g, _ = load(gpath)
    e, _ = load(epath)
    vals = {}
    vals["connection loop beyond Pingora's own"] = (get(g, LOOP_GW) - get(g, PER_REQUEST)) / gn - (get(e, LOOP_ENGINE) - get(e, PER_REQUEST)) / en
    rf = get(g, HOOK + "request_filter" + CLOSURE) / gn
    for name, patterns in CATEGORIES:
        vals[name] = get(g, *patterns) / gn
    vals["request_filter: body read, snapshot, context"] = rf - vals["auth (token, SHA-256, user lookup)"] - vals["body scan + admission"] - vals["request id"]
    above = gir / gn - eir / en
    vals["rest (Pingora's own work on larger heads, allocator)"] = above - sum(vals.values())
    vals["**total above the engine**"] = above
    table[s] = vals
for name in table["json"]:
    print(f"| {name} | {table['json'][name] / 1000:.1f}k | {table['sse'][name] / 1000:.1f}k |")
PY
echo "callgrind files and report in $OUT" >&2
