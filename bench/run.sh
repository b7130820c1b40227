#!/usr/bin/env bash
# Benchmark harness: the service registry against a bare libevent evhttp
# server, nginx and etcd, on this machine, over loopback only.
#
#   bash bench/run.sh                  full run: checks the targets, exits 1 on a miss
#   bash bench/run.sh --quick          smoke run for CI: a minute or two, checks nothing
#   bash bench/run.sh --compare REV    this tree against commit REV (HEAD~1, a tag…): the
#                                      throughput scenarios, alternating the two builds for
#                                      5 rounds; reports new/old per scenario
#   options: --only SCENARIO[,SCENARIO...]   run a subset (names as in bench/scenarios.py)
#            --baselines-only          no registry: exercise the harness itself
#   environment: REGISTRY_BIN (default .build/release/service-registry),
#                BENCH_ROUNDS and BENCH_SECONDS override rounds and run length
#
# Method, and why:
# - The server under test runs on CPU 0 and the load generator on CPU 1, the
#   same for every server, so runs compare like with like on a 2-core machine.
# - Each throughput scenario runs the registry and then each baseline, for
#   ROUNDS rounds, and reports the median of the per-round ratios: the machine
#   drifts (other work, thermal state) and a ratio taken within one round
#   cancels most of that drift.
# - The bare evhttp and nginx baselines answer every request with the bytes
#   the registry really sends for the scenario (captured with curl), so a
#   ratio measures the registry's own work, not a difference in body size.
# - etcd is the real-world alternative: a single member on tmpfs (the registry
#   keeps its state in memory only; on disk, etcd would be measuring fsync),
#   spoken to through its JSON gateway with base64 keys.
# - Watcher scenarios (watch-*) hold thousands of long-polls and event streams
#   open with bench/watchers.py, one connection each, and read the registry's
#   memory and descriptors from /proc.  Their delivery latency is taken from
#   kernel receive timestamps, so the one-core Python client does not count.
#   watch-fanout's baseline is bench/fanout_floor.c: the same answer written
#   with one plain write() per connection, the least one core can do.
# - The scenarios above run the registry with --in-memory: they measure the
#   server against servers that keep nothing.  The durable-* scenarios measure
#   what persistence costs: the same load on registries that differ only in
#   --in-memory / --fsync, their data directories under .build/ (a real disk
#   even where /tmp is tmpfs), alternated round by round.  recover-1m times a
#   restart over a million instances, spawn to the first 200 on /health.
#
# - --compare builds REV's registry in .build-compare/ and starts it beside this tree's
#   with the same population; each round runs this tree's and then REV's under the same
#   load, and the ratio of a round cancels most of the machine's drift (one run alone
#   drifts 10-20 % here).
#
# The scenarios, their order and their targets are declared once, in bench/scenarios.py;
# `scenario_NAME` below (dashes as underscores) runs each. Tools come from
# scripts/install-bench-tools.sh.
#
# Writes bench/results/latest.md (the table) and latest.jsonl (raw figures).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
LUA=$BENCH/lua
cd "$ROOT"
# probe.py imports populate.py; keep bench/ free of __pycache__.
export PYTHONDONTWRITEBYTECODE=1

MODE=full
BASELINES_ONLY=0
ONLY=""
COMPARE_REV=""
while (($#)); do
    case $1 in
        --quick) MODE=quick ;;
        --baselines-only) BASELINES_ONLY=1 ;;
        --compare) COMPARE_REV=${2:?--compare needs a commit (HEAD~1, a tag, a hash)}; shift ;;
        --only) ONLY=${2:?--only needs a list of scenarios}; shift ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$BENCH/run.sh"; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

# Sizes.  Quick mode keeps every code path but shrinks time and populations so
# the whole run, with nginx and etcd start-up, stays well under two minutes.
if [[ $MODE == full ]]; then
    ROUNDS=3 DURATION=5
    MEMORY_SERVICES=10000 MEMORY_INSTANCES=100      # 1,000,000 instances
    EXPIRY_SERVICES=1000 EXPIRY_INSTANCES=100       # 100,000 instances
    EXPIRY_TIMEOUT=10                               # s; populating takes ~1 s
    STARTUP_RUNS=5
    WATCH_POLLS=10000 WATCH_STREAMS=1000            # 11,000 watchers on one service
    LEAK_ROUNDS=100 LEAK_CONNS=1000
    LARGE_SERVICES=200000 LARGE_INSTANCES=50000 LARGE_SECONDS=10
    SLOW_SERVICES=2000 SLOW_STREAMS=300
    CHECK_INSTANCES=10000 CHECK_INTERVAL=10         # 1,000 checks/s
    DNS_LOAD_QPS=20000
    DASHBOARDS=50
else
    ROUNDS=1 DURATION=1
    MEMORY_SERVICES=10 MEMORY_INSTANCES=100
    EXPIRY_SERVICES=10 EXPIRY_INSTANCES=100
    EXPIRY_TIMEOUT=2
    STARTUP_RUNS=1
    WATCH_POLLS=500 WATCH_STREAMS=50
    LEAK_ROUNDS=5 LEAK_CONNS=200
    LARGE_SERVICES=2000 LARGE_INSTANCES=2000 LARGE_SECONDS=2
    SLOW_SERVICES=200 SLOW_STREAMS=20
    CHECK_INSTANCES=500 CHECK_INTERVAL=2
    DNS_LOAD_QPS=2000
    DASHBOARDS=10
fi
# A comparison needs more rounds than a run against baselines: its ratios are close to 1.
[[ -n $COMPARE_REV && $MODE == full ]] && ROUNDS=5
ROUNDS=${BENCH_ROUNDS:-$ROUNDS}
DURATION=${BENCH_SECONDS:-$DURATION}
CONNS=50
BIG_CONNS=10000
WRK_THREADS=2
HEARTBEAT_SERVICES=1000 HEARTBEAT_INSTANCES=10      # 10,000 instances
MIX_SERVICES=1000 MIX_INSTANCES=3
# Throughput runs must not lose instances to expiry mid-run.
LONG_HEARTBEAT_TIMEOUT=3600
# etcd lease IDs are ours to choose: one for churn, a block for heartbeats.
CHURN_LEASE_ID=99999
HEARTBEAT_FIRST_LEASE_ID=100000

# Set by the TLS and token scenarios for their own servers and clients.
REG_EXTRA_ARGS=()
NGINX_TLS=0
WRK_SCHEME=http
CERTS=
SERVER_CPU=0 CLIENT_CPU=1
if (($(nproc) < 2)); then
    SERVER_CPU=0 CLIENT_CPU=0
fi

DEFAULT_REGISTRY_BIN=$ROOT/.build/release/service-registry
REGISTRY_BIN=${REGISTRY_BIN:-$DEFAULT_REGISTRY_BIN}
RESULTS_DIR=$BENCH/results

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mapfile -t SCENARIOS < <(python3 "$BENCH/scenarios.py" names)
mapfile -t THROUGHPUT < <(python3 "$BENCH/scenarios.py" names --group throughput)
wanted() {
    [[ -n $COMPARE_REV && " ${THROUGHPUT[*]} " != *" $1 "* ]] && return 1
    [[ -z $ONLY || ",$ONLY," == *",$1,"* ]]
}
for name in ${ONLY//,/ }; do
    [[ " ${SCENARIOS[*]} " == *" $name "* ]] || die "unknown scenario $name (known: ${SCENARIOS[*]})"
done

# ---------------------------------------------------------------- processes

PIDS=()           # every background process started here; stopped on exit
TMP=""
DATA_ROOT=""
ETCD_DIR=""

alive() {
    # A child that exited stays a zombie until reaped, and kill -0 still
    # succeeds on a zombie; the state field of /proc/PID/stat tells them apart.
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

stop_pid() {
    local pid=$1 tries
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((tries = 0; tries < 50; tries++)); do
            alive "$pid" || break
            sleep 0.1
        done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null || true
    local kept=() p
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ -n $ETCD_DIR ]]; then rm -rf "$ETCD_DIR"; fi
    if [[ -n $CLUSTER_DIR ]]; then rm -rf "$CLUSTER_DIR"; fi
    if [[ -n $TMP ]]; then rm -rf "$TMP"; fi
    if [[ -n $DATA_ROOT ]]; then rm -rf "$DATA_ROOT"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_server LOG COMMAND...: runs COMMAND in the background pinned to the
# server CPU.  taskset execs COMMAND, so LAST_PID is the server itself (its
# /proc/PID/status is the server's memory).
start_server() {
    local log_file=$1
    shift
    taskset -c "$SERVER_CPU" "$@" >"$log_file" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

free_ports() { python3 "$BENCH/probe.py" free-ports "$1"; }

# wait_https PORT LOG: waits for an HTTPS server just started to answer.
wait_https() {
    local tries
    for ((tries = 0; tries < 200; tries++)); do
        curl -fsS -o /dev/null --cacert "$CERTS/ca.pem" "https://localhost:$1/" 2>/dev/null && return 0
        kill -0 "$LAST_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$2" >&2 || true
    die "the HTTPS server on port $1 did not answer"
}

# wait_http PORT PATH LOG: waits for the server just started (LAST_PID) to
# answer 200, or dies showing the server's log.
wait_http() {
    python3 "$BENCH/probe.py" wait-http --port "$1" --path "$2" --timeout 20 --pid "$LAST_PID" &&
        return 0
    tail -n 20 "$3" >&2 || true
    die "nothing answered 200 on 127.0.0.1:$1$2 (log above: $3)"
}

# ------------------------------------------------------------------- set-up

install_tools() {
    bash "$ROOT/scripts/install-bench-tools.sh" || die "installing the benchmark's tools failed"
}

raise_fd_limit() {
    # 10,000 connections need 10,000 descriptors in wrk and in the server; the
    # watcher scenarios hold 11,000 in one client and the server takes wrk's on top.
    local watch_need=$((WATCH_POLLS + WATCH_STREAMS + CONNS))
    local want=$(((BIG_CONNS > watch_need ? BIG_CONNS : watch_need) + 1024)) hard
    hard=$(ulimit -Hn)
    if (($(ulimit -n) < want)); then
        if [[ $hard == unlimited ]] || ((hard >= want)); then
            ulimit -n "$want"
        else
            # Root may raise the hard limit too; anyone else gets what there is.
            if ulimit -Hn "$want" 2>/dev/null; then ulimit -n "$want"; else ulimit -n "$hard"; fi
        fi
    fi
    if (($(ulimit -n) < want)); then
        BIG_CONNS=$(($(ulimit -n) - 1024))
        log "warning: open files limited to $(ulimit -n); conns-10k uses $BIG_CONNS connections"
    fi
    if (($(ulimit -n) < watch_need + 1024)); then
        local room=$(($(ulimit -n) - 1024 - CONNS))
        WATCH_STREAMS=$((room / 11)) WATCH_POLLS=$((room - room / 11))
        log "warning: open files limited to $(ulimit -n); watcher scenarios use" \
            "$WATCH_POLLS long-polls and $WATCH_STREAMS streams"
    fi
}

ensure_registry() {
    ((BASELINES_ONLY)) && return 0
    # The default binary is always (re)built: swift build is a no-op when it is current,
    # and a stale binary would measure old code.
    if [[ $REGISTRY_BIN == "$DEFAULT_REGISTRY_BIN" ]]; then
        log "building the registry (swift build -c release --product service-registry)"
        swift build -c release --product service-registry >&2 ||
            die "swift build failed"
    fi
    [[ -x $REGISTRY_BIN ]] || die "no registry binary at $REGISTRY_BIN"
    [[ -n $COMPARE_REV ]] && build_previous
    return 0
}

# build_previous: REV's registry, built from REV's files (git archive) in .build-compare.
build_previous() {
    local commit source=$ROOT/.build-compare/source scratch=$ROOT/.build-compare/build
    commit=$(git -C "$ROOT" rev-parse --verify "$COMPARE_REV^{commit}") || die "--compare: no commit $COMPARE_REV"
    log "building the registry at $COMPARE_REV ($commit) for the comparison"
    rm -rf "$source"
    mkdir -p "$source"
    git -C "$ROOT" archive "$commit" | tar -x -C "$source"
    swift build -c release --product service-registry --package-path "$source" --scratch-path "$scratch" >&2 ||
        die "swift build of $COMPARE_REV failed"
    PREVIOUS_BIN=$scratch/release/service-registry
    PREVIOUS_COMMIT=$(git -C "$ROOT" rev-parse --short "$commit")
}

write_meta() {
    local commit cpu tools
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "none")
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
    cpu=$(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -n 1)
    tools="wrk $(dpkg-query -W -f '${Version}' wrk 2>/dev/null), nginx $(nginx -v 2>&1 | sed 's|.*/||'),"
    tools+=" etcd $(etcd --version | sed -n 's/^etcd Version: //p') (gateway $ETCD_API),"
    tools+=" libevent $(dpkg-query -W -f '${Version}' libevent-dev 2>/dev/null)"
    local mode=$MODE
    [[ -n $COMPARE_REV ]] && mode="$MODE comparison with $PREVIOUS_COMMIT ($COMPARE_REV)"
    python3 - "$mode" "$BASELINES_ONLY" "$commit" "$(nproc) × $cpu, Linux $(uname -r)" "$tools" \
        "server on CPU $SERVER_CPU, wrk -t$WRK_THREADS on CPU $CLIENT_CPU; $ROUNDS round(s) of ${DURATION} s per server, registry first in each round; $CONNS keep-alive connections unless named; req/s, p50 and p99 are medians over rounds, ratios are medians of per-round ratios" "$PREVIOUS_COMMIT" \
        >>"$RESULTS" <<'EOF'
import json, sys, datetime
mode, baselines_only, commit, machine, tools, method, previous = sys.argv[1:]
print(json.dumps({"kind": "meta", "mode": mode, "baselines_only": baselines_only == "1",
                  "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  "commit": commit, "machine": machine, "tools": tools, "method": method,
                  "previous": previous or None}))
EOF
}

# ------------------------------------------------------------------ servers

REG_PID="" REG_PORT=""
PREV_PID="" PREV_PORT="" PREVIOUS_BIN="" PREVIOUS_COMMIT=""
BARE_PID="" BARE_PORT=""
NGINX_PID="" NGINX_PORT=""
ETCD_PORT="" ETCD_API=""

# start_registry HEARTBEAT_TIMEOUT_SECONDS: a fresh, empty registry; with --compare, REV's
# beside it (PREV_PORT, PREV_PID).
start_registry() {
    REG_PORT=$(free_ports 1)
    local log_file=$TMP/registry-$REG_PORT.log
    start_server "$log_file" "$REGISTRY_BIN" --host 127.0.0.1 --port "$REG_PORT" \
        --heartbeat-timeout "$1" --log-level warn --in-memory --shutdown-grace 0 "${REG_EXTRA_ARGS[@]}"
    REG_PID=$LAST_PID
    wait_http "$REG_PORT" /health "$log_file"
    [[ -n $COMPARE_REV ]] || return 0
    PREV_PORT=$(free_ports 1)
    log_file=$TMP/previous-$PREV_PORT.log
    start_server "$log_file" "$PREVIOUS_BIN" --host 127.0.0.1 --port "$PREV_PORT" \
        --heartbeat-timeout "$1" --log-level warn --in-memory --shutdown-grace 0
    PREV_PID=$LAST_PID
    wait_http "$PREV_PORT" /health "$log_file"
}

# populate_registry POPULATE_ARGS...: the same instances in the registry (and REV's).
populate_registry() {
    populate registry --port "$REG_PORT" "$@"
    [[ -z $COMPARE_REV ]] || populate registry --port "$PREV_PORT" "$@"
}

# start_durable_registry POLICY: a fresh registry with its own data directory
# and --fsync POLICY, or --in-memory when POLICY is in-memory.  Sets REG_PORT,
# REG_PID and REG_DATA.
start_durable_registry() {
    REG_PORT=$(free_ports 1)
    REG_DATA=$(mktemp -d "$DATA_ROOT/$1.XXXXXX")
    local log_file=$TMP/registry-$REG_PORT.log persistence=(--data-dir "$REG_DATA" --fsync "$1")
    [[ $1 == in-memory ]] && persistence=(--in-memory)
    start_server "$log_file" "$REGISTRY_BIN" --host 127.0.0.1 --port "$REG_PORT" \
        --heartbeat-timeout "$LONG_HEARTBEAT_TIMEOUT" --log-level warn --shutdown-grace 0 "${persistence[@]}"
    REG_PID=$LAST_PID
    wait_http "$REG_PORT" /health "$log_file"
}

start_bare() {
    BARE_PORT=$(free_ports 1)
    local log_file=$TMP/bare-$BARE_PORT.log
    start_server "$log_file" "$TMP/bare_evhttp" -a 127.0.0.1 -p "$BARE_PORT" -f "$1"
    BARE_PID=$LAST_PID
    wait_http "$BARE_PORT" / "$log_file"
}

# start_nginx BODY_FILE: one worker answering every request with the body.
start_nginx() {
    NGINX_PORT=$(free_ports 1)
    local dir=$TMP/nginx-$NGINX_PORT answer
    # nginx's workers drop root for nobody: let them reach the body file.
    mkdir -p "$dir"
    chmod 711 "$TMP"
    chmod 755 "$dir"
    install -m 644 "$1" "$dir/body.json"
    if (($(wc -c <"$1") <= 4000)); then
        # Inside nginx's single quotes only \ and ' need escaping; a $ would
        # start a variable and cannot be escaped there (JSON bodies here have none).
        answer=$(sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g" "$1")
        [[ $answer != *'$'* ]] || die "nginx cannot return a body containing \$: $1"
        answer="return 200 '$answer';"
    else
        # nginx reads a configuration token into a 4 KiB buffer, so a larger
        # body cannot be a return argument; serve it as a cached static file
        # instead (GET only: nginx's static module answers POST with 405).
        answer="root $dir; try_files /body.json =404;"
    fi
    local listen="listen 127.0.0.1:$NGINX_PORT;"
    if ((NGINX_TLS)); then
        # The registry's certificate and key, TLS 1.2 and 1.3 as the registry offers.
        listen="listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $CERTS/server.pem;
        ssl_certificate_key $CERTS/server-key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;"
    fi
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $((BIG_CONNS + 4096));
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections $((BIG_CONNS + 2048));
}
http {
    access_log off;
    default_type application/json;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    open_file_cache max=16;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        $listen
        location / {
            $answer
        }
    }
}
EOF
    start_server "$dir/stderr.log" nginx -e "$dir/error.log" -p "$dir/" -c "$dir/nginx.conf"
    NGINX_PID=$LAST_PID
    if ((NGINX_TLS)); then
        wait_https "$NGINX_PORT" "$dir/error.log"
    else
        wait_http "$NGINX_PORT" / "$dir/error.log"
    fi
}

# Started once, on first use, and shared by the scenarios; each writes under
# its own keyspace.
start_etcd() {
    [[ -n $ETCD_PORT ]] && return 0
    local peer_port
    read -r ETCD_PORT peer_port < <(free_ports 2)
    ETCD_DIR=$(mktemp -d /dev/shm/registry-bench-etcd.XXXXXX 2>/dev/null) ||
        ETCD_DIR=$(mktemp -d "$TMP/etcd.XXXXXX")
    # etcd 3.4 refuses to start on arm64 unless told it is unsupported there.
    [[ $(uname -m) == aarch64 ]] && export ETCD_UNSUPPORTED_ARCH=arm64
    start_server "$TMP/etcd.log" etcd --name bench --data-dir "$ETCD_DIR/data" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "bench=http://127.0.0.1:$peer_port" \
        --initial-cluster-state new --logger zap --log-outputs stderr --log-level warn
    wait_http "$ETCD_PORT" /health "$TMP/etcd.log"
    # etcd 3.4 serves the gateway at /v3 and, deprecated, /v3beta; 3.3 only
    # at /v3beta.  Use whichever answers.
    local api
    for api in /v3 /v3beta; do
        if curl -fsS -o /dev/null -X POST -d '{"key":"AA=="}' "http://127.0.0.1:$ETCD_PORT$api/kv/range"; then
            ETCD_API=$api
            return 0
        fi
    done
    die "etcd's JSON gateway answers neither /v3 nor /v3beta"
}

stop_scenario_servers() {
    local pid
    for pid in "$REG_PID" "$PREV_PID" "$BARE_PID" "$NGINX_PID"; do
        [[ -n $pid ]] && stop_pid "$pid"
    done
    REG_PID="" PREV_PID="" BARE_PID="" NGINX_PID=""
}

# ------------------------------------------------------------- measurements

populate() {
    local summary
    summary=$(taskset -c "$CLIENT_CPU" python3 "$BENCH/populate.py" "$@") ||
        die "populate.py $1 failed: $summary"
    log "  populated ($1): $summary"
}

# capture_body OUT METHOD PATH [JSON] [SYNTHETIC_KIND SYNTHETIC_COUNT]: the
# registry's real answer, or (no registry) the same shape made up.
capture_body() {
    local out=$1 method=$2 path=$3 data=${4:-}
    if ((BASELINES_ONLY)); then
        python3 "$BENCH/populate.py" synthetic-body "$5" "${6:-3}" >"$out"
    elif [[ $method == GET ]]; then
        curl -fsS "http://127.0.0.1:$REG_PORT$path" >"$out"
    else
        curl -fsS -X "$method" -H 'Content-Type: application/json' -d "$data" \
            "http://127.0.0.1:$REG_PORT$path" >"$out"
    fi
    [[ -s $out ]] || die "empty body captured for $method $path"
}

# wrk_run SCENARIO SERVER ROUND PORT CONNS SCRIPT [SCRIPT_ARGS...]: one timed
# run; appends its figures to the results.
wrk_run() {
    local scenario=$1 server=$2 round=$3 port=$4 conns=$5 script=$6
    shift 6
    local out=$TMP/wrk-$scenario-$server-$round.log json
    # timeout: wrk stops itself after -d, but never trust a client to.
    if ! timeout $((DURATION + 60)) taskset -c "$CLIENT_CPU" \
        wrk -t"$WRK_THREADS" -c"$conns" -d"${DURATION}s" --timeout 5s \
        -s "$LUA/$script" "$WRK_SCHEME://127.0.0.1:$port" -- "$@" >"$out" 2>&1; then
        cat "$out" >&2
        die "wrk failed: $scenario against $server"
    fi
    json=$(sed -n 's/^BENCH_JSON //p' "$out")
    [[ -n $json ]] || { cat "$out" >&2; die "no result line from wrk: $scenario against $server"; }
    printf '{"kind":"wrk","scenario":"%s","server":"%s","round":%d,"conns":%d,"result":%s}\n' \
        "$scenario" "$server" "$round" "$conns" "$json" >>"$RESULTS"
    python3 -c 'import json, sys
r = json.loads(sys.argv[1])
scenario, server, round_number = sys.argv[2:]
rps, p50, p99 = r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000
errors = sum(r[k] for k in ("errors_status", "errors_connect", "errors_read", "errors_write", "errors_timeout"))
note = f"  ({errors} errors)" if errors else ""
print(f"bench:   {scenario:<14} {server:<8} round {round_number}: {rps:>9,.0f} req/s"
      f"  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms{note}", file=sys.stderr)' \
        "$json" "$scenario" "$server" "$round"
}

# rounds SCENARIO CONNS SCRIPT ARGS -- [ETCD_SCRIPT ETCD_ARGS...]: the A B A B
# alternation.  Registry first, then bare evhttp, nginx and (when given) etcd.
rounds() {
    local scenario=$1 conns=$2 round
    shift 2
    local args=() etcd_args=()
    while (($#)) && [[ $1 != -- ]]; do args+=("$1"); shift; done
    (($#)) && shift
    etcd_args=("$@")
    for ((round = 1; round <= ROUNDS; round++)); do
        if [[ -n $COMPARE_REV ]]; then
            wrk_run "$scenario" registry "$round" "$REG_PORT" "$conns" "${args[@]}"
            wrk_run "$scenario" previous "$round" "$PREV_PORT" "$conns" "${args[@]}"
            continue
        fi
        if ((!BASELINES_ONLY)); then
            wrk_run "$scenario" registry "$round" "$REG_PORT" "$conns" "${args[@]}"
        fi
        wrk_run "$scenario" bare "$round" "$BARE_PORT" "$conns" "${args[@]}"
        wrk_run "$scenario" nginx "$round" "$NGINX_PORT" "$conns" "${args[@]}"
        if ((${#etcd_args[@]})); then
            wrk_run "$scenario" etcd "$round" "$ETCD_PORT" "$conns" "${etcd_args[@]}"
        fi
    done
}

# setup_baselines BODY_FILE: bare evhttp and nginx answering with BODY_FILE (not when
# comparing two registries).
setup_baselines() {
    [[ -n $COMPARE_REV ]] && return 0
    start_bare "$1"
    start_nginx "$1"
}

# ---------------------------------------------------------------- scenarios

scenario_discover_3() { discover_scenario discover-3 3 "$CONNS" 1; }
scenario_discover_100() { discover_scenario discover-100 100 "$CONNS" 1; }
scenario_conns_10k() { discover_scenario conns-10k 3 "$BIG_CONNS" 0; }

# discover_scenario NAME INSTANCES CONNS WITH_ETCD: GET /discover/svc-0 with INSTANCES
# instances behind it.
discover_scenario() {
    local scenario=$1 instances=$2 conns=$3 with_etcd=$4 body=$TMP/body-$1.json
    log "$scenario: GET /discover over $instances instances, $conns connections"
    if ((!BASELINES_ONLY)); then
        start_registry "$LONG_HEARTBEAT_TIMEOUT"
        populate_registry --services 1 --instances "$instances"
    fi
    capture_body "$body" GET /discover/svc-0 "" discover "$instances"
    setup_baselines "$body"
    local etcd=()
    if ((with_etcd)) && [[ -z $COMPARE_REV ]]; then
        start_etcd
        populate etcd-kv --port "$ETCD_PORT" --api "$ETCD_API" --keyspace "/$scenario" \
            --services 1 --instances "$instances"
        etcd=(etcd_range.lua "$ETCD_API" "/$scenario")
    fi
    rounds "$scenario" "$conns" discover.lua -- "${etcd[@]}"
    stop_scenario_servers
}

# ---------------------------------------------------------------- TLS and tokens

# make_certs: the CA and server certificate scripts/make-certs.sh makes, once per run.
make_certs() {
    [[ -n $CERTS ]] && return 0
    CERTS=$TMP/certs
    bash "$ROOT/scripts/make-certs.sh" "$CERTS" >/dev/null
    # nginx's workers run as nobody.
    chmod 755 "$CERTS"
    chmod 644 "$CERTS"/*.pem
}

# tls_rounds SCENARIO CONNS SCRIPT ARGS...: the registry's HTTPS port against nginx serving
# the same bytes over TLS with the same certificate, alternating.
tls_rounds() {
    local scenario=$1 conns=$2 round
    shift 2
    for ((round = 1; round <= ROUNDS; round++)); do
        wrk_run "$scenario" registry "$round" "$REG_TLS_PORT" "$conns" "$@"
        wrk_run "$scenario" nginx "$round" "$NGINX_PORT" "$conns" "$@"
    done
}

# tls_scenario NAME SCRIPT METHOD PATH BODY KIND ARGS...: the registry with --tls-cert (the
# requests over HTTPS, keep-alive unless SCRIPT closes), 100 instances of svc-0 behind it;
# nginx over TLS answering the body the registry gives.
tls_scenario() {
    local scenario=$1 script=$2 method=$3 path=$4 request=$5 kind=$6 body=$TMP/body-$1.json
    shift 6
    if [[ -n $COMPARE_REV ]] || ((BASELINES_ONLY)); then
        log "$scenario: skipped (it compares the registry with nginx over TLS)"
        return 0
    fi
    make_certs
    REG_TLS_PORT=$(free_ports 1)
    REG_EXTRA_ARGS=(--tls-cert "$CERTS/server.pem" --tls-key "$CERTS/server-key.pem" --tls-port "$REG_TLS_PORT")
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    REG_EXTRA_ARGS=()
    populate_registry --services 1 --instances 3
    capture_body "$body" "$method" "$path" "$request" "$kind" 3
    NGINX_TLS=1
    start_nginx "$body"
    NGINX_TLS=0
    WRK_SCHEME=https
    tls_rounds "$scenario" "$CONNS" "$script" "$@"
    WRK_SCHEME=http
    stop_scenario_servers
}

scenario_tls_discover() {
    log "tls-discover: GET /discover over HTTPS (keep-alive), registry and nginx with one certificate"
    tls_scenario tls-discover discover.lua GET /discover/svc-0 "" discover
}

scenario_tls_heartbeat() {
    log "tls-heartbeat: POST /heartbeat over HTTPS (keep-alive)"
    tls_scenario tls-heartbeat heartbeat.lua POST /heartbeat '{"service":"svc-0","address":"127.0.0.1:20000"}' heartbeat 1 3
}

scenario_tls_handshakes() {
    log "tls-handshakes: a new TLS connection for every GET /health-sized answer (Connection: close)"
    tls_scenario tls-handshakes discover_close.lua GET /discover/svc-0 "" discover
}

# tokens-discover: GET /discover with a token, from a registry with an ACL file, against the
# same registry without one.
scenario_tokens_discover() {
    local scenario=tokens-discover round open_port open_pid acl=$TMP/acl.json token
    if [[ -n $COMPARE_REV ]] || ((BASELINES_ONLY)); then
        log "$scenario: skipped (it compares the registry with itself)"
        return 0
    fi
    log "$scenario: GET /discover with an ACL file and a Bearer token, against no ACL file"
    token=bench-token-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    printf '{"tokens":[{"name":"bench","sha256":"%s","read":["*"],"write":["svc-*"]}],"anonymous":{}}\n' \
        "$(printf %s "$token" | sha256sum | cut -d' ' -f1)" >"$acl"
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    populate_registry --services 1 --instances 3
    open_port=$REG_PORT open_pid=$REG_PID
    REG_EXTRA_ARGS=(--acl-file "$acl")
    # The populater sends no token: this one is filled through the open one's answers.
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    REG_EXTRA_ARGS=()
    local instance
    for instance in 0 1 2; do
        curl -fsS -o /dev/null -H "Authorization: Bearer $token" -X POST \
            -d "{\"service\":\"svc-0\",\"address\":\"127.0.0.1:$((20000 + instance))\"}" "http://127.0.0.1:$REG_PORT/register"
    done
    # Two registries of one binary: which goes first alternates, so that neither gains from
    # its place in the round.
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2)); then
            wrk_run "$scenario" registry "$round" "$REG_PORT" "$CONNS" discover_token.lua "$token"
            wrk_run "$scenario" open "$round" "$open_port" "$CONNS" discover_token.lua "$token"
        else
            wrk_run "$scenario" open "$round" "$open_port" "$CONNS" discover_token.lua "$token"
            wrk_run "$scenario" registry "$round" "$REG_PORT" "$CONNS" discover_token.lua "$token"
        fi
    done
    stop_pid "$open_pid"
    stop_scenario_servers
}

# dashboards-discover: GET /discover/svc-0 with DASHBOARDS dashboards open (bench/dashboards.py
# makes the requests the page at /ui makes while open: /watch streams, the 5 s refresh of a
# service's view) and a status change in svc-0 every second, so that every stream gets events,
# against the same registry with the same changes and no dashboard; which goes first alternates.
scenario_dashboards_discover() {
    local scenario=dashboards-discover round churn_pid
    if [[ -n $COMPARE_REV ]] || ((BASELINES_ONLY)); then
        log "$scenario: skipped (it compares the registry with itself)"
        return 0
    fi
    log "$scenario: GET /discover with $DASHBOARDS dashboards open and a change a second, against none open"
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    populate_registry --services 300 --instances 3
    taskset -c "$CLIENT_CPU" python3 "$BENCH/dashboards.py" --port "$REG_PORT" --count 0 --churn \
        --report "$TMP/churn.json" >"$TMP/churn.log" 2>&1 &
    churn_pid=$!
    PIDS+=("$churn_pid")
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2)); then
            with_dashboards "$scenario" "$round"
            wrk_run "$scenario" nodash "$round" "$REG_PORT" "$CONNS" discover.lua
        else
            wrk_run "$scenario" nodash "$round" "$REG_PORT" "$CONNS" discover.lua
            with_dashboards "$scenario" "$round"
        fi
    done
    stop_pid "$churn_pid"
    log "  changes: $(sed -n 's/^summary: .*, //p' "$TMP/churn.log")"
    stop_scenario_servers
}

# with_dashboards SCENARIO ROUND: one wrk run with the dashboards open; says what they got.
with_dashboards() {
    local scenario=$1 round=$2 pid report=$TMP/dashboards-$2.json tries
    # Niced: they share the client CPU with wrk, and what is measured is the registry's work for
    # them (every event is still read: the summary counts them), not their Python's.
    taskset -c "$CLIENT_CPU" nice -n 10 python3 "$BENCH/dashboards.py" --port "$REG_PORT" --count "$DASHBOARDS" \
        --report "$report" >"$TMP/dashboards-$round.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for ((tries = 0; tries < 300; tries++)); do
        grep -q '^ready' "$TMP/dashboards-$round.log" && break
        kill -0 "$pid" 2>/dev/null || { cat "$TMP/dashboards-$round.log" >&2; die "$scenario: the dashboards did not open"; }
        sleep 0.05
    done
    grep -q '^ready' "$TMP/dashboards-$round.log" || die "$scenario: the dashboards did not open in 15 s"
    wrk_run "$scenario" registry "$round" "$REG_PORT" "$CONNS" discover.lua
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    log "  $DASHBOARDS dashboards open: $(sed -n 's/^summary: //p' "$TMP/dashboards-$round.log")"
}

# checks-10k: GET /discover on a registry without checks, then on one running CHECK_INSTANCES
# HTTP checks every CHECK_INTERVAL s against a local target (bench/check_target.c, evhttp, which
# records when each check's path was asked); then how
# regular the checks' runs were. Not alternated as the other pairs are: both registries share
# the server CPU, so a checking registry beside the baseline would load the baseline's rounds
# too. The baseline's rounds come first, with the checking registry not yet started.
scenario_checks_10k() {
    local scenario=checks-10k target_port target_pid hits=$TMP/check-hits.json plain_pid registered start end result round
    if [[ -n $COMPARE_REV ]] || ((BASELINES_ONLY)); then
        log "$scenario: skipped (it compares the registry with itself)"
        return 0
    fi
    log "$scenario: GET /discover without checks, then while $CHECK_INSTANCES HTTP checks run every $CHECK_INTERVAL s"
    target_port=$(free_ports 1)
    taskset -c "$CLIENT_CPU" "$TMP/check_target" -p "$target_port" -o "$hits" -n "$CHECK_INSTANCES" \
        >"$TMP/check-target.log" 2>&1 &
    target_pid=$! LAST_PID=$!
    PIDS+=("$target_pid")
    wait_http "$target_port" /c/ready "$TMP/check-target.log"
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    populate_registry --services 1 --instances 3
    plain_pid=$REG_PID
    for ((round = 1; round <= ROUNDS; round++)); do
        wrk_run "$scenario" nochecks "$round" "$REG_PORT" "$CONNS" discover.lua
    done
    stop_pid "$plain_pid"
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    populate_registry --services 1 --instances 3
    registered=$(python3 "$BENCH/check_target.py" register --port "$REG_PORT" --target "$target_port" \
        --count "$CHECK_INSTANCES" --interval "$CHECK_INTERVAL") || die "$scenario: registering the checks failed"
    # Past the spread (the second run of each check comes 0.5–1.5 intervals after the first).
    sleep "$(python3 -c "import time; print(max(0, $CHECK_INTERVAL * 1.5 + 1 - (time.monotonic() - $registered)))")"
    start=$(python3 -c 'import time; print(time.monotonic())')
    for ((round = 1; round <= ROUNDS; round++)); do
        wrk_run "$scenario" registry "$round" "$REG_PORT" "$CONNS" discover.lua
    done
    # At least three intervals, so that every check has runs to judge.
    sleep "$(python3 -c "import time; print(max(0, 3 * $CHECK_INTERVAL - (time.monotonic() - $start)))")"
    end=$(python3 -c 'import time; print(time.monotonic())')
    curl -fsS "http://127.0.0.1:$REG_PORT/metrics" | grep -E '^registry_check(s|_runs)' >"$TMP/check-metrics.txt" || true
    stop_pid "$target_pid"
    result=$(python3 "$BENCH/check_target.py" report --file "$hits" --interval "$CHECK_INTERVAL" \
        --count "$CHECK_INSTANCES" --window-start "$start" --window-end "$end") || die "$scenario: no report"
    echo "$result" >>"$RESULTS"
    log "  $result"
    sed 's/^/bench:   /' "$TMP/check-metrics.txt" >&2
    stop_scenario_servers
}

# dns-queries: dnsperf (UDP, 8 clients, 200 outstanding) against the registry's DNS port and
# against dnsmasq (Debian's) serving the same three A records from a hosts file, alternating
# which goes first; then GET /discover alone and with a DNS load of DNS_LOAD_QPS beside it.
scenario_dns_queries() {
    local scenario=dns-queries round dns_port mask_port mask_pid instance hosts=$TMP/dns-hosts queries=$TMP/dns-queries.txt load_pid
    if [[ -n $COMPARE_REV ]] || ((BASELINES_ONLY)); then
        log "$scenario: skipped (its baseline is dnsmasq, not an HTTP server)"
        return 0
    fi
    command -v dnsperf >/dev/null && [[ -x /usr/sbin/dnsmasq ]] || die "$scenario: dnsperf or dnsmasq is missing; run scripts/install-bench-tools.sh"
    log "$scenario: DNS A queries for one service of three instances, against dnsmasq from a hosts file"
    dns_port=$(free_ports 1)
    REG_EXTRA_ARGS=(--dns-port "$dns_port")
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    REG_EXTRA_ARGS=()
    populate_registry --services 1 --instances 3
    : >"$hosts"
    for instance in 1 2 3; do
        curl -fsS -o /dev/null -X POST -d "{\"service\":\"web\",\"address\":\"http://10.0.0.$instance:8080\"}" "http://127.0.0.1:$REG_PORT/register"
        echo "10.0.0.$instance web.service.registry" >>"$hosts"
    done
    echo "web.service.registry A" >"$queries"
    mask_port=$(free_ports 1)
    start_server "$TMP/dnsmasq.log" /usr/sbin/dnsmasq --no-daemon --port="$mask_port" --listen-address=127.0.0.1 --bind-interfaces \
        --no-resolv --no-hosts --addn-hosts="$hosts" --conf-file=/dev/null --log-facility=- --cache-size=1000
    mask_pid=$LAST_PID
    for server_port in "$dns_port" "$mask_port"; do
        python3 "$BENCH/probe.py" dns-ready --port "$server_port" --name web.service.registry --count 3 ||
            die "$scenario: no DNS answer on port $server_port"
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2)); then
            dnsperf_run "$scenario" registry "$round" "$dns_port" "$queries"
            dnsperf_run "$scenario" dnsmasq "$round" "$mask_port" "$queries"
        else
            dnsperf_run "$scenario" dnsmasq "$round" "$mask_port" "$queries"
            dnsperf_run "$scenario" registry "$round" "$dns_port" "$queries"
        fi
    done
    stop_pid "$mask_pid"
    # The HTTP API while DNS is busy: the same discover load, alone and beside DNS_LOAD_QPS.
    for ((round = 1; round <= ROUNDS; round++)); do
        wrk_run dns-discover quiet "$round" "$REG_PORT" "$CONNS" discover.lua
        taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$dns_port" -d "$queries" -l $((DURATION + 2)) -c 4 -Q "$DNS_LOAD_QPS" \
            >"$TMP/dns-load-$round.log" 2>&1 &
        load_pid=$!
        sleep 1
        wrk_run dns-discover underdns "$round" "$REG_PORT" "$CONNS" discover.lua
        wait "$load_pid" || true
        printf '{"kind":"dns-load","round":%d,"qps":%s}\n' "$round" \
            "$(sed -n 's/^ *Queries per second: *\([0-9.]*\).*/\1/p' "$TMP/dns-load-$round.log" | head -1 || echo null)" >>"$RESULTS"
    done
    stop_scenario_servers
}

# dnsperf_run SCENARIO SERVER ROUND PORT QUERIES: one dnsperf run, a "dns" record.
dnsperf_run() {
    local scenario=$1 server=$2 round=$3 port=$4 queries=$5 out=$TMP/dnsperf-$2-$3.log
    timeout $((DURATION + 30)) taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -l "$DURATION" -c 8 -q 200 \
        >"$out" 2>&1 || { cat "$out" >&2; die "dnsperf failed: $scenario against $server"; }
    python3 - "$out" "$scenario" "$server" "$round" >>"$RESULTS" <<'PYTHON'
import json, re, sys
text = open(sys.argv[1]).read()
def number(pattern):
    found = re.search(pattern, text)
    return float(found.group(1)) if found else None
record = {"kind": "dns", "scenario": sys.argv[2], "server": sys.argv[3], "round": int(sys.argv[4]),
          "qps": number(r"Queries per second:\s+([0-9.]+)"), "sent": number(r"Queries sent:\s+([0-9]+)"),
          "lost": number(r"Queries lost:\s+([0-9]+)"), "latency_avg_ms": (number(r"Average Latency \(s\):\s+([0-9.]+)") or 0) * 1000,
          "noerror": number(r"NOERROR ([0-9]+)")}
print(json.dumps(record))
print(f"bench:   {record['scenario']:<14} {record['server']:<8} round {record['round']}: {record['qps'] or 0:>9,.0f} q/s"
      f"  avg {record['latency_avg_ms']:.2f} ms  lost {record['lost']:.0f}", file=sys.stderr)
PYTHON
}

scenario_heartbeat_10k() {
    local scenario=heartbeat-10k body=$TMP/body-heartbeat.json
    local total=$((HEARTBEAT_SERVICES * HEARTBEAT_INSTANCES))
    log "$scenario: POST /heartbeat over $total instances"
    if ((!BASELINES_ONLY)); then
        start_registry "$LONG_HEARTBEAT_TIMEOUT"
        populate_registry --services "$HEARTBEAT_SERVICES" --instances "$HEARTBEAT_INSTANCES"
    fi
    capture_body "$body" POST /heartbeat '{"service":"svc-0","address":"127.0.0.1:20000"}' heartbeat
    setup_baselines "$body"
    local etcd=()
    if [[ -z $COMPARE_REV ]]; then
        start_etcd
        populate etcd-leases --port "$ETCD_PORT" --api "$ETCD_API" \
            --first-id "$HEARTBEAT_FIRST_LEASE_ID" --count "$total" --ttl "$LONG_HEARTBEAT_TIMEOUT"
        etcd=(etcd_keepalive.lua "$ETCD_API" "$HEARTBEAT_FIRST_LEASE_ID" "$total")
    fi
    rounds "$scenario" "$CONNS" heartbeat.lua "$HEARTBEAT_SERVICES" "$HEARTBEAT_INSTANCES" -- "${etcd[@]}"
    stop_scenario_servers
}

scenario_churn() {
    local scenario=churn body=$TMP/body-churn.json
    log "$scenario: register and deregister unique addresses"
    if ((!BASELINES_ONLY)); then
        start_registry "$LONG_HEARTBEAT_TIMEOUT"
    fi
    local probe='{"service":"churn-probe","address":"probe:1"}'
    capture_body "$body" POST /register "$probe" register
    if ((!BASELINES_ONLY)); then
        curl -fsS -o /dev/null -X POST -d "$probe" "http://127.0.0.1:$REG_PORT/deregister"
    fi
    setup_baselines "$body"
    local etcd=()
    if [[ -z $COMPARE_REV ]]; then
        start_etcd
        populate etcd-leases --port "$ETCD_PORT" --api "$ETCD_API" \
            --first-id "$CHURN_LEASE_ID" --count 1 --ttl "$LONG_HEARTBEAT_TIMEOUT"
        etcd=(etcd_churn.lua "$ETCD_API" "$CHURN_LEASE_ID")
    fi
    rounds "$scenario" "$CONNS" churn.lua -- "${etcd[@]}"
    stop_scenario_servers
}

scenario_mix() {
    local scenario=mix body=$TMP/body-mix.json
    log "$scenario: 90% discover / 10% heartbeat over $MIX_SERVICES services"
    if ((!BASELINES_ONLY)); then
        start_registry "$LONG_HEARTBEAT_TIMEOUT"
        populate_registry --services "$MIX_SERVICES" --instances "$MIX_INSTANCES"
    fi
    # The baselines answer the discover body: it is 90% of the answers.
    capture_body "$body" GET /discover/svc-0 "" discover "$MIX_INSTANCES"
    setup_baselines "$body"
    rounds "$scenario" "$CONNS" mix.lua "$MIX_SERVICES" "$MIX_INSTANCES"
    stop_scenario_servers
}

rss_bytes() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }

scenario_memory_1m() {
    ((BASELINES_ONLY)) && return 0
    local total=$((MEMORY_SERVICES * MEMORY_INSTANCES)) before after populated
    log "memory-1m: RSS for $total instances"
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    sleep 0.5
    before=$(rss_bytes "$REG_PID")
    populated=$(taskset -c "$CLIENT_CPU" python3 "$BENCH/populate.py" registry --port "$REG_PORT" \
        --services "$MEMORY_SERVICES" --instances "$MEMORY_INSTANCES" --timeout 600) ||
        die "populating $total instances failed: $populated"
    sleep 0.5
    after=$(rss_bytes "$REG_PID")
    python3 -c 'import json, sys
p = json.loads(sys.argv[4])
print(json.dumps({"kind": "memory", "scenario": "memory-1m", "instances": int(sys.argv[1]),
                  "rss_before": int(sys.argv[2]), "rss_after": int(sys.argv[3]),
                  "populate_seconds": p["seconds"]}))' "$total" "$before" "$after" "$populated" >>"$RESULTS"
    log "  RSS $((before / 1024)) KiB empty, $((after / 1024)) KiB with $total instances" \
        "($(((after - before) / total)) B/instance)"
    stop_scenario_servers
}

scenario_mass_expiry() {
    ((BASELINES_ONLY)) && return 0
    local total=$((EXPIRY_SERVICES * EXPIRY_INSTANCES)) result
    log "mass-expiry: $total instances with a ${EXPIRY_TIMEOUT} s heartbeat timeout"
    start_registry "$EXPIRY_TIMEOUT"
    result=$(taskset -c "$CLIENT_CPU" python3 "$BENCH/probe.py" mass-expiry --port "$REG_PORT" \
        --services "$EXPIRY_SERVICES" --instances "$EXPIRY_INSTANCES" \
        --heartbeat-timeout "$EXPIRY_TIMEOUT") || die "mass-expiry probe failed"
    echo "$result" >>"$RESULTS"
    log "  $result"
    stop_scenario_servers
}

scenario_startup() {
    local port result
    log "startup: spawn to first 200 on /health"
    port=$(free_ports 1)
    result=$(taskset -c "$CLIENT_CPU" python3 "$BENCH/probe.py" startup --server bare --port "$port" \
        --runs "$STARTUP_RUNS" -- "$TMP/bare_evhttp" -p "$port" -b '{"status":"healthy"}') ||
        die "bare evhttp start-up probe failed: $result"
    echo "$result" >>"$RESULTS"
    log "  bare evhttp: $result"
    ((BASELINES_ONLY)) && return 0
    port=$(free_ports 1)
    # A failed start-up is a result (reported as FAIL), not a harness error.
    result=$(taskset -c "$CLIENT_CPU" python3 "$BENCH/probe.py" startup --server registry --port "$port" \
        --runs "$STARTUP_RUNS" -- "$REGISTRY_BIN" --host 127.0.0.1 --port "$port" \
        --heartbeat-timeout 30 --log-level warn --shutdown-grace 0 --data-dir "$DATA_ROOT/startup") || true
    echo "$result" >>"$RESULTS"
    log "  registry: $result"
}

# ----------------------------------------------------------------- watchers

# run_watchers COMMAND ARGS...: bench/watchers.py on the client CPU against the
# registry just started; its one JSON line goes into the results.
run_watchers() {
    local command=$1 result
    shift
    result=$(taskset -c "$CLIENT_CPU" python3 "$BENCH/watchers.py" "$command" \
        --port "$REG_PORT" --pid "$REG_PID" "$@") ||
        die "watchers.py $command failed (registry log: $TMP/registry-$REG_PORT.log)"
    echo "$result" >>"$RESULTS"
}

# One registration wakes every long-poll and stream on the service: the time
# each watcher takes to hear of it, and the memory they hold while parked.
scenario_watch_fanout() {
    ((BASELINES_ONLY)) && return 0
    log "watch-fanout: $WATCH_POLLS long-polls and $WATCH_STREAMS streams on one service, one change"
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    run_watchers fanout --polls "$WATCH_POLLS" --streams "$WATCH_STREAMS" --wait 60s
    # The floor writes the registry's own long-poll answer (head and body, as
    # curl received it) to as many connections as there were watchers.
    curl -s -i -o "$TMP/fanout-answer" "http://127.0.0.1:$REG_PORT/discover/watched?index=0" ||
        die "could not fetch a long-poll answer for the fan-out floor"
    stop_scenario_servers
    log "watch-fanout: the floor, one write() per connection to $((WATCH_POLLS + WATCH_STREAMS)) connections"
    "$TMP/fanout_floor" -n "$((WATCH_POLLS + WATCH_STREAMS))" -f "$TMP/fanout-answer" -r "$ROUNDS" \
        --writer-cpu "$SERVER_CPU" --reader-cpu "$CLIENT_CPU" >"$TMP/fanout-floor.jsonl" ||
        die "fanout_floor failed"
    python3 -c 'import json, sys
for line in open(sys.argv[1]):
    record = json.loads(line)
    record["kind"] = "fanout-floor"
    print(json.dumps(record))' "$TMP/fanout-floor.jsonl" >>"$RESULTS"
}

# discover-3's load on two identical registries, one of them holding every
# watcher of watch-fanout on another service, alternated round by round.
scenario_watch_discover() {
    ((BASELINES_ONLY)) && return 0
    local scenario=watch-discover quiet_pid quiet_port holder out=$TMP/watch-hold.jsonl
    log "$scenario: GET /discover over 3 instances with $((WATCH_POLLS + WATCH_STREAMS)) watchers parked, and without"
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    quiet_pid=$REG_PID quiet_port=$REG_PORT
    populate registry --port "$quiet_port" --services 1 --instances 3
    curl -fsS -o /dev/null -d '{"service":"watched","address":"127.0.0.1:30000"}' \
        "http://127.0.0.1:$quiet_port/register"
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    populate registry --port "$REG_PORT" --services 1 --instances 3

    # The watchers must outlast every round, or their waits end mid-run.
    local hold_seconds=$((2 * ROUNDS * (DURATION + 5) + 60))
    local wait_seconds=$((hold_seconds > 600 ? 600 : hold_seconds < 60 ? 60 : hold_seconds))
    taskset -c "$CLIENT_CPU" python3 "$BENCH/watchers.py" hold --port "$REG_PORT" --pid "$REG_PID" \
        --polls "$WATCH_POLLS" --streams "$WATCH_STREAMS" --wait "${wait_seconds}s" \
        --max-seconds "$((hold_seconds + 60))" >"$out" &
    holder=$!
    PIDS+=("$holder")
    local tries
    for ((tries = 0; tries < 1200; tries++)); do
        grep -q '"watch-hold-ready"' "$out" 2>/dev/null && break
        alive "$holder" || die "watchers.py hold exited before its watchers were parked"
        sleep 0.1
    done
    grep -q '"watch-hold-ready"' "$out" || die "watchers.py hold did not park its watchers within 120 s"

    local round
    for ((round = 1; round <= ROUNDS; round++)); do
        wrk_run "$scenario" registry "$round" "$REG_PORT" "$CONNS" discover.lua
        wrk_run "$scenario" unwatched "$round" "$quiet_port" "$CONNS" discover.lua
    done
    # On SIGTERM the holder reports, closes its connections and waits for the
    # registry to let go of them; give it that time before stop_pid's 5 s.
    kill -TERM "$holder" 2>/dev/null || true
    for ((tries = 0; tries < 600; tries++)); do
        alive "$holder" || break
        sleep 0.1
    done
    stop_pid "$holder"
    grep -q '"kind": "watch-hold"' "$out" || die "watchers.py hold gave no final report"
    cat "$out" >>"$RESULTS"
    stop_pid "$quiet_pid"
    stop_scenario_servers
}

# Rounds of parked long-polls whose clients vanish: the registry's memory and
# descriptors must come back each time.
scenario_watch_leak() {
    ((BASELINES_ONLY)) && return 0
    log "watch-leak: $LEAK_ROUNDS rounds of $LEAK_CONNS long-polls closed unanswered"
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    run_watchers leak --rounds "$LEAK_ROUNDS" --conns "$LEAK_CONNS" --service leaky --wait 60s
    stop_scenario_servers
}

# ------------------------------------------------------------ large state

# largestate PROBE ARGS...: bench/largestate.py on the client CPU against the
# registry just started; its JSON line goes into the results.
largestate() {
    local result
    result=$(taskset -c "$CLIENT_CPU" python3 "$BENCH/largestate.py" "$@" --port "$REG_PORT" --pid "$REG_PID") ||
        die "largestate.py $1 failed (registry log: $TMP/registry-$REG_PORT.log)"
    echo "$result" >>"$RESULTS"
    log "  $result"
}

# /health while many services change and are listed in full, one after the
# other: the loop must never stall on a large answer.
scenario_large_services() {
    ((BASELINES_ONLY)) && return 0
    log "large-services: $LARGE_SERVICES services, each change followed by GET /services"
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    populate registry --port "$REG_PORT" --services "$LARGE_SERVICES" --instances 1 --timeout 600
    largestate services --scenario large-services --seconds "$LARGE_SECONDS"
    largestate services-queries --scenario large-services
    stop_scenario_servers
}

# The same for one service of many instances, each change followed by a discover.
scenario_large_service() {
    ((BASELINES_ONLY)) && return 0
    log "large-service: one service of $LARGE_INSTANCES instances, each change followed by GET /discover"
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    populate registry --port "$REG_PORT" --services 1 --instances "$LARGE_INSTANCES" --timeout 600
    largestate service --scenario large-service --service svc-0 --instances "$LARGE_INSTANCES" --seconds "$LARGE_SECONDS"
    stop_scenario_servers
}

# Streams of everything whose clients never read, while the state changes:
# memory must stay near the idle registry's, and /health prompt.
scenario_slow_streams() {
    ((BASELINES_ONLY)) && return 0
    log "slow-streams: $SLOW_STREAMS non-reading streams of /watch over $SLOW_SERVICES services"
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    populate registry --port "$REG_PORT" --services "$SLOW_SERVICES" --instances 1
    largestate slow-streams --scenario slow-streams --streams "$SLOW_STREAMS" --seconds "$LARGE_SECONDS"
    stop_scenario_servers
}

# ------------------------------------------------------------- durability

scenario_durable_churn() { durable_rounds durable-churn churn.lua in-memory everysec never always; }
scenario_durable_register() { durable_rounds durable-register register.lua in-memory everysec always; }

# durable_rounds SCENARIO SCRIPT POLICY...: one registry per policy, all
# running; each round puts the same wrk load on each in turn.
durable_rounds() {
    ((BASELINES_ONLY)) && return 0
    local scenario=$1 script=$2 policy round
    shift 2
    local policies=("$@") ports=() pids=()
    log "$scenario: $script with 50 connections on registries with ${policies[*]}"
    for policy in "${policies[@]}"; do
        start_durable_registry "$policy"
        ports+=("$REG_PORT") pids+=("$REG_PID")
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        local i
        for i in "${!policies[@]}"; do
            wrk_run "$scenario" "${policies[$i]}" "$round" "${ports[$i]}" "$CONNS" "$script"
        done
    done
    local pid
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    REG_PID=""
}

# A registry with persistence is filled, stopped, and started again over the
# same directory: spawn to the first 200 on /health, which the registry
# answers only once it has replayed everything.
scenario_recover_1m() {
    ((BASELINES_ONLY)) && return 0
    local total=$((MEMORY_SERVICES * MEMORY_INSTANCES)) result bytes
    log "recover-1m: restart over $total instances"
    start_durable_registry everysec
    populate registry --port "$REG_PORT" --services "$MEMORY_SERVICES" --instances "$MEMORY_INSTANCES" --timeout 600
    stop_pid "$REG_PID"
    REG_PID=""
    bytes=$(du -sb "$REG_DATA" | awk '{print $1}')
    local port
    port=$(free_ports 1)
    result=$(taskset -c "$CLIENT_CPU" python3 "$BENCH/probe.py" startup --server recover --port "$port" \
        --runs "$STARTUP_RUNS" --timeout 60 -- "$REGISTRY_BIN" --host 127.0.0.1 --port "$port" \
        --heartbeat-timeout "$LONG_HEARTBEAT_TIMEOUT" --log-level warn --shutdown-grace 0 --data-dir "$REG_DATA") || true
    python3 -c 'import json, sys
r = json.loads(sys.argv[1])
r.update(kind="recover", instances=int(sys.argv[2]), data_bytes=int(sys.argv[3]))
print(json.dumps(r))' "$result" "$total" "$bytes" >>"$RESULTS"
    log "  $result ($total instances, $((bytes / 1048576)) MiB on disk)"
}

# --------------------------------------------------------------------- main

# ------------------------------------------------------------------ cluster

CLUSTER_DIR="" CLUSTER_ENDPOINTS="" CLUSTER_ETCD_PORTS=() CLUSTER_ETCD_PIDS=() CLUSTER_PORTS=() CLUSTER_PIDS=() CLUSTER_ARGS=()

# start_cluster: three etcd members (data on tmpfs, like the single etcd baseline) and
# three replicas on them, every process on the server CPU.
start_cluster() {
    [[ -n $CLUSTER_ENDPOINTS ]] && return 0
    local ports i initial=""
    read -r -a ports < <(free_ports 9)
    CLUSTER_DIR=$(mktemp -d /dev/shm/registry-bench-cluster.XXXXXX 2>/dev/null) ||
        CLUSTER_DIR=$(mktemp -d "$TMP/cluster.XXXXXX")
    [[ $(uname -m) == aarch64 ]] && export ETCD_UNSUPPORTED_ARCH=arm64
    for i in 0 1 2; do initial+="${initial:+,}m$i=http://127.0.0.1:${ports[$((3 + i))]}"; done
    CLUSTER_ETCD_PORTS=("${ports[@]:0:3}") CLUSTER_PORTS=("${ports[@]:6:3}")
    for i in 0 1 2; do
        start_server "$TMP/cluster-etcd-$i.log" etcd --name "m$i" --data-dir "$CLUSTER_DIR/m$i" \
            --listen-client-urls "http://127.0.0.1:${ports[$i]}" --advertise-client-urls "http://127.0.0.1:${ports[$i]}" \
            --listen-peer-urls "http://127.0.0.1:${ports[$((3 + i))]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${ports[$((3 + i))]}" \
            --initial-cluster "$initial" --initial-cluster-state new --logger zap --log-outputs stderr --log-level warn
        CLUSTER_ETCD_PIDS+=("$LAST_PID")
        CLUSTER_ENDPOINTS+="${CLUSTER_ENDPOINTS:+,}http://127.0.0.1:${ports[$i]}"
    done
    for i in 0 1 2; do
        python3 "$BENCH/probe.py" wait-http --port "${ports[$i]}" --path /health --timeout 30 ||
            die "etcd member m$i is not healthy (log: $TMP/cluster-etcd-$i.log)"
    done
    CLUSTER_ARGS=(--host 127.0.0.1 --etcd "$CLUSTER_ENDPOINTS" --heartbeat-timeout "$LONG_HEARTBEAT_TIMEOUT"
        --log-level warn --shutdown-grace 0 --lease-ttl 3)
    CLUSTER_PIDS=()
    for i in 0 1 2; do start_replica "$i"; done
}

# start_replica I: replica I on its port (again, after a kill).
start_replica() {
    local i=$1 port=${CLUSTER_PORTS[$1]}
    start_server "$TMP/cluster-registry-$i.log" "$REGISTRY_BIN" "${CLUSTER_ARGS[@]}" --port "$port" \
        --replica-name "r$i" --advertise-url "http://127.0.0.1:$port"
    CLUSTER_PIDS[i]=$LAST_PID
    wait_http "$port" /ready "$TMP/cluster-registry-$i.log"
}

# cluster_role ROLE: the index of a replica in that role, once every replica agrees on
# one leader (empty after 20 s).
cluster_role() {
    python3 - "$1" "${CLUSTER_PORTS[@]}" <<'PY'
import http.client, json, sys, time
role, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    states = []
    for port in ports:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/cluster")
            states.append(json.loads(c.getresponse().read()))
        except (OSError, ValueError):
            states.append(None)
    leaders = {(s.get("leader") or {}).get("name") for s in states if s}
    if None not in states and len(leaders) == 1 and None not in leaders:
        for index, s in enumerate(states):
            if s["replica"]["role"] == role:
                print(index)
                sys.exit(0)
    time.sleep(0.1)
sys.exit(1)
PY
}

# stop_cluster: the replicas and the etcd members, and their data; the next
# start_cluster starts afresh.
stop_cluster() {
    local pid
    for pid in "${CLUSTER_PIDS[@]}" "${CLUSTER_ETCD_PIDS[@]}"; do [[ -n $pid ]] && stop_pid "$pid"; done
    CLUSTER_PIDS=() CLUSTER_ETCD_PIDS=() CLUSTER_ENDPOINTS=""
    [[ -n $CLUSTER_DIR ]] && rm -rf "$CLUSTER_DIR"
    CLUSTER_DIR=""
}

# cluster_rounds SCENARIO SCRIPT ARGS -- NAME:PORT[:SCRIPT]...: each round runs the load
# against each named server in turn (SCRIPT, without arguments, replaces the scenario's).
cluster_rounds() {
    local scenario=$1 round args=() servers=()
    shift
    while (($#)) && [[ $1 != -- ]]; do args+=("$1"); shift; done
    shift
    servers=("$@")
    for ((round = 1; round <= ROUNDS; round++)); do
        local server name port script
        for server in "${servers[@]}"; do
            IFS=: read -r name port script <<<"$server"
            if [[ -n $script ]]; then
                wrk_run "$scenario" "$name" "$round" "$port" "$CONNS" "$script"
            else
                wrk_run "$scenario" "$name" "$round" "$port" "$CONNS" "${args[@]}"
            fi
        done
    done
}

# Discover served by a follower from its mirror, against a single registry holding the same.
scenario_cluster_discover() {
    ((BASELINES_ONLY)) && return 0
    log "cluster-discover: GET /discover over 3 instances on a follower and on a single registry"
    start_cluster
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    local follower
    follower=$(cluster_role follower) || die "the cluster has no leader"
    populate registry --port "${CLUSTER_PORTS[$follower]}" --services 1 --instances 3
    populate registry --port "$REG_PORT" --services 1 --instances 3
    cluster_rounds cluster-discover discover.lua -- "follower:${CLUSTER_PORTS[$follower]}" "single:$REG_PORT"
    stop_scenario_servers
}

# Heartbeats through a follower (answered there, relayed each second) and through the
# leader, against a single registry, over the same 10,000 instances.
scenario_cluster_heartbeat() {
    ((BASELINES_ONLY)) && return 0
    log "cluster-heartbeat: POST /heartbeat over $((HEARTBEAT_SERVICES * HEARTBEAT_INSTANCES)) instances"
    start_cluster
    start_registry "$LONG_HEARTBEAT_TIMEOUT"
    local follower leader
    follower=$(cluster_role follower) || die "the cluster has no leader"
    leader=$(cluster_role leader) || die "the cluster has no leader"
    populate registry --port "${CLUSTER_PORTS[$follower]}" --services "$HEARTBEAT_SERVICES" --instances "$HEARTBEAT_INSTANCES" --timeout 600
    populate registry --port "$REG_PORT" --services "$HEARTBEAT_SERVICES" --instances "$HEARTBEAT_INSTANCES"
    cluster_rounds cluster-heartbeat heartbeat.lua "$HEARTBEAT_SERVICES" "$HEARTBEAT_INSTANCES" -- \
        "follower:${CLUSTER_PORTS[$follower]}" "leader:${CLUSTER_PORTS[$leader]}" "single:$REG_PORT"
    stop_scenario_servers
}

# Registrations through a follower (a turn's writes in one etcd transaction) against
# etcd's own rate of single puts on the same three members, and against etcd's own
# transactions of 14 puts written into the prefix (what the replicas' watches then carry
# and mirror): the ceiling of any design that commits through the gateway and mirrors by
# watch, reported in registrations per second.
scenario_cluster_register() {
    ((BASELINES_ONLY)) && return 0
    log "cluster-register: new registrations through a follower vs single puts on the same etcd"
    start_cluster
    local follower
    follower=$(cluster_role follower) || die "the cluster has no leader"
    # A warm-up for both (recorded as round 0, not reported): a fresh etcd's first
    # seconds (WAL and database growth) are slow.
    wrk_run cluster-register warmup-follower 0 "${CLUSTER_PORTS[$follower]}" "$CONNS" register.lua
    wrk_run cluster-register warmup-etcd3 0 "${CLUSTER_ETCD_PORTS[0]}" "$CONNS" etcd_register.lua
    wrk_run cluster-register warmup-etcd3-txn 0 "${CLUSTER_ETCD_PORTS[0]}" "$CONNS" etcd_txn_register.lua /service-registry/ 14
    local round
    for ((round = 1; round <= ROUNDS; round++)); do
        wrk_run cluster-register follower "$round" "${CLUSTER_PORTS[$follower]}" "$CONNS" register.lua
        wrk_run cluster-register etcd3 "$round" "${CLUSTER_ETCD_PORTS[0]}" "$CONNS" etcd_register.lua
        # The ceiling: etcd's own 14-put transactions into the prefix, mirrored by the replicas.
        wrk_run cluster-register etcd3-txn "$round" "${CLUSTER_ETCD_PORTS[0]}" "$CONNS" etcd_txn_register.lua /service-registry/ 14
    done
}

# The leader's SIGKILL to the first heartbeat the new leader accepts, FAILOVER_KILLS times.
scenario_cluster_failover() {
    ((BASELINES_ONLY)) && return 0
    log "cluster-failover: $FAILOVER_KILLS leader kills (lease TTL 3 s)"
    start_cluster
    local follower
    follower=$(cluster_role follower) || die "the cluster has no leader"
    curl -fsS -o /dev/null -X POST -d '{"service":"failover","address":"probe:1"}' \
        "http://127.0.0.1:${CLUSTER_PORTS[$follower]}/register"
    local kill leader survivors result results=()
    for ((kill = 1; kill <= FAILOVER_KILLS; kill++)); do
        leader=$(cluster_role leader) || die "the cluster has no leader"
        survivors=""
        local i
        for i in 0 1 2; do ((i == leader)) || survivors+="${survivors:+,}${CLUSTER_PORTS[$i]}"; done
        result=$(python3 "$BENCH/failover.py" --kill "${CLUSTER_PIDS[$leader]}" --ports "$survivors" \
            --service failover --address probe:1) || log "  kill $kill: no new leader in time"
        log "  kill $kill: $result"
        results+=("$result")
        wait "${CLUSTER_PIDS[$leader]}" 2>/dev/null || true
        start_replica "$leader"
    done
    python3 -c 'import json, sys
runs = [json.loads(line) for line in sys.argv[1:]]
print(json.dumps({"kind": "failover", "scenario": "cluster-failover", "runs": runs}))' "${results[@]}" >>"$RESULTS"
    stop_cluster
}

main() {
    local started=$SECONDS
    install_tools
    raise_fd_limit
    ensure_registry
    TMP=$(mktemp -d /tmp/registry-bench.XXXXXX)
    RESULTS=$TMP/results.jsonl
    cc -O2 -Wall "$BENCH/bare_evhttp.c" -levent -o "$TMP/bare_evhttp"
    cc -O2 -Wall "$BENCH/fanout_floor.c" -o "$TMP/fanout_floor"
    cc -O2 -Wall "$BENCH/check_target.c" -levent -o "$TMP/check_target"
    mkdir -p "$ROOT/.build"
    DATA_ROOT=$(mktemp -d "$ROOT/.build/bench-data.XXXXXX")

    ETCD_API=/v3
    log "$MODE run: $ROUNDS round(s) of ${DURATION} s; servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU${COMPARE_REV:+; against $COMPARE_REV}"
    local name
    FAILOVER_KILLS=$([[ $MODE == full ]] && echo 5 || echo 1)
    if [[ -z $COMPARE_REV ]]; then
        for name in discover-3 heartbeat-10k churn; do
            if wanted "$name"; then start_etcd; break; fi
        done
    fi
    write_meta

    for name in "${SCENARIOS[@]}"; do
        if wanted "$name"; then "scenario_${name//-/_}"; fi
    done

    mkdir -p "$RESULTS_DIR"
    cp "$RESULTS" "$RESULTS_DIR/latest.jsonl"
    local check=()
    [[ $MODE == full && $BASELINES_ONLY == 0 ]] && check=(--check-targets)
    log "finished in $((SECONDS - started)) s; report in bench/results/latest.md"
    python3 "$BENCH/report.py" "$RESULTS" --out "$RESULTS_DIR/latest.md" "${check[@]}"
}

main
