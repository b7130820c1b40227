#!/usr/bin/env bash
# A three-replica registry cluster on this machine: three etcd members (Debian's
# etcd-server) and three registries, all on loopback, in the background.
#
#   scripts/cluster.sh start    etcd on 2379/22379/32379, registries on 5001/5002/5003
#   scripts/cluster.sh status   each registry's role and the leader (GET /cluster)
#   scripts/cluster.sh stop     stops all six (SIGTERM), keeps their data
#   scripts/cluster.sh clean    stops them and deletes their data
#
# Data and logs go to CLUSTER_DIR (default .build/cluster). The registry binary is
# REGISTRY_BIN (default .build/release/service-registry: `make build` makes it).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${CLUSTER_DIR:-.build/cluster}
bin=${REGISTRY_BIN:-.build/release/service-registry}
clients=(2379 22379 32379)
peers=(2380 22380 32380)
registries=(5001 5002 5003)

endpoints() {
    local list="" port
    for port in "${clients[@]}"; do list+="${list:+,}http://127.0.0.1:$port"; done
    echo "$list"
}

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    command -v etcd >/dev/null || bash scripts/apt-install.sh etcd-server
    [[ -x $bin ]] || { echo "cluster: $bin is missing; run make build first (or set REGISTRY_BIN)" >&2; exit 1; }
    mkdir -p "$dir"
    local initial="" i
    for i in 0 1 2; do initial+="${initial:+,}m$((i + 1))=http://127.0.0.1:${peers[$i]}"; done
    for i in 0 1 2; do
        local name=m$((i + 1))
        if running "$dir/$name.pid"; then echo "cluster: etcd $name already runs"; continue; fi
        etcd --name "$name" --data-dir "$dir/$name" \
            --listen-client-urls "http://127.0.0.1:${clients[$i]}" --advertise-client-urls "http://127.0.0.1:${clients[$i]}" \
            --listen-peer-urls "http://127.0.0.1:${peers[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${peers[$i]}" \
            --initial-cluster "$initial" --initial-cluster-token registry-cluster --initial-cluster-state new \
            --logger zap --log-level warn >"$dir/$name.log" 2>&1 &
        echo $! >"$dir/$name.pid"
    done
    for i in 0 1 2; do
        local tries=0
        until curl -fsS "http://127.0.0.1:${clients[$i]}/health" 2>/dev/null | grep -q '"health":"true"'; do
            tries=$((tries + 1))
            if ((tries > 100)); then echo "cluster: etcd m$((i + 1)) is not healthy; see $dir/m$((i + 1)).log" >&2; exit 1; fi
            sleep 0.1
        done
    done
    echo "cluster: etcd members healthy on ${clients[*]}"
    for i in 0 1 2; do
        local name=r$((i + 1)) port=${registries[$i]}
        if running "$dir/$name.pid"; then echo "cluster: registry $name already runs"; continue; fi
        "$bin" --host 127.0.0.1 --port "$port" --etcd "$(endpoints)" --replica-name "$name" \
            --advertise-url "http://127.0.0.1:$port" >"$dir/$name.log" 2>&1 &
        echo $! >"$dir/$name.pid"
    done
    for port in "${registries[@]}"; do
        local tries=0
        until curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; do
            tries=$((tries + 1))
            if ((tries > 100)); then echo "cluster: the registry on $port is not ready; see $dir/r*.log" >&2; exit 1; fi
            sleep 0.1
        done
    done
    echo "cluster: registries ready on ${registries[*]}; REGISTRY_URL=http://127.0.0.1:5001,http://127.0.0.1:5002,http://127.0.0.1:5003"
}

status() {
    local port
    for port in "${registries[@]}"; do
        curl -fsS "http://127.0.0.1:$port/cluster" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
r = d["replica"]
print("%s %s role=%s leader=%s revision=%s" % (r["name"], r["url"], r["role"], (d["leader"] or {}).get("name"), r["applied_revision"]))
' || echo "registry on $port: not answering"
    done
}

stop() {
    local name
    for name in r1 r2 r3 m1 m2 m3; do
        if running "$dir/$name.pid"; then
            kill "$(cat "$dir/$name.pid")"
            while running "$dir/$name.pid"; do sleep 0.1; done
            echo "cluster: stopped $name"
        fi
        rm -f "$dir/$name.pid"
    done
}

case ${1:-} in
    start) start ;;
    status) status ;;
    stop) stop ;;
    clean) stop; rm -rf "$dir"; echo "cluster: removed $dir" ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
