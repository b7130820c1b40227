#!/usr/bin/env bash
# Instructions per request, counted by valgrind (callgrind), for two registry binaries under the
# same requests: a figure this shared, noisy machine cannot move, beside the timed ratios of
# `run.sh --compare`. Each scenario populates a fresh --in-memory registry, turns counting on,
# sends exactly N requests with wrk (one thread, 10 connections), and divides the registry's
# user-space instructions by N.
#
#   bash bench/instructions.sh NEW_BINARY OLD_BINARY [REQUESTS]
#
# Scenarios: discover-3 (GET of a 3-instance service), discover-100, heartbeat-10k, churn.
set -euo pipefail
cd "$(dirname "$0")/.."
new=$(realpath "${1:?usage: instructions.sh NEW_BINARY OLD_BINARY [REQUESTS]}")
old=$(realpath "${2:?usage: instructions.sh NEW_BINARY OLD_BINARY [REQUESTS]}")
requests=${3:-20000}
command -v valgrind >/dev/null || bash scripts/apt-install.sh valgrind
bash scripts/install-bench-tools.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp bench/lua/*.lua "$work/"
cat > "$work/stop.lua" <<LUA
local seen = 0
function response(status, headers, body)
   seen = seen + 1
   if seen >= $requests then wrk.thread:stop() end
end
LUA

# measure BINARY SCRIPT SERVICES INSTANCES [SCRIPT ARGS...]: prints instructions per request
measure() {
    local binary=$1 script=$2 services=$3 instances=$4 port
    shift 4
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/out.$port" \
        "$binary" --port "$port" --host 127.0.0.1 --in-memory --heartbeat-timeout 3600 --log-level warn \
        >/dev/null 2>"$work/valgrind.$port" &
    local pid=$!
    for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done
    if ((services > 0)); then
        python3 bench/populate.py registry --port "$port" --services "$services" --instances "$instances" >/dev/null
    fi
    cat "$work/$script" "$work/stop.lua" > "$work/run.lua"
    callgrind_control -i on "$pid" >/dev/null 2>&1
    local output
    output=$(wrk -t1 -c10 -d300s -s "$work/run.lua" "http://127.0.0.1:$port" -- "$@")
    callgrind_control -i off "$pid" >/dev/null 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local answered total
    answered=$(grep -oE '^ +[0-9]+ requests' <<<"$output" | grep -oE '[0-9]+')
    total=$(grep -E '^totals:' "$work/out.$port" | tail -1 | awk '{print $2}')
    echo $((total / answered))
}

printf '| scenario | new instructions/request | old instructions/request | new / old |\n|---|---|---|---|\n'
while read -r name script services instances args; do
    # shellcheck disable=SC2086 # the scenario's script arguments, word by word
    a=$(measure "$new" "$script" "$services" "$instances" $args)
    # shellcheck disable=SC2086
    b=$(measure "$old" "$script" "$services" "$instances" $args)
    printf '| %s | %s | %s | %s |\n' "$name" "$a" "$b" "$(python3 -c "print(f'{$a / $b:.3f}')")"
done <<'SCENARIOS'
discover-3 discover.lua 1 3
discover-100 discover.lua 1 100
heartbeat-10k heartbeat.lua 1000 10 1000 10
churn churn.lua 0 0
SCENARIOS
