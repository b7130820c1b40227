#!/usr/bin/env bash
# The seed's quick demo, with this registry: start it, register two services, list them,
# discover one, heartbeat, and watch an instance that stops heartbeating expire.
#
#   scripts/demo.sh          pauses before each step (Enter to go on)
#   scripts/demo.sh --yes    runs straight through (CI runs it this way)
#
# It builds what it needs (swift build), runs a registry of its own on a free port with a
# throwaway data directory, and stops it at the end. payment-service registers with a 3 s
# TTL, so that it expires during the demo; the rest keep the default 30 s, however long the
# pauses between steps.
set -euo pipefail
cd "$(dirname "$0")/.."

YES=0
[[ ${1:-} == --yes || ${1:-} == -y ]] && YES=1

step() {
    printf '\n\033[1m== %s\033[0m\n' "$1"
    if ((!YES)); then read -r -p "(Enter to go on) " _; fi
}
show() {
    printf '$ %s\n' "$*"
    "$@"
}

echo "Building (swift build)..."
swift build --product service-registry >/dev/null
swift build --product registryctl >/dev/null
BIN=$(swift build --show-bin-path)
DATA=$(mktemp -d)
LOG=$DATA/registry.log
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export REGISTRY_URL=http://127.0.0.1:$PORT
REGISTRY_PID=""
cleanup() {
    [[ -n $REGISTRY_PID ]] && kill "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" 2>/dev/null
    rm -rf "$DATA"
}
trap cleanup EXIT
ctl() { "$BIN/registryctl" "$@"; }

step "Start the registry"
"$BIN/service-registry" --host 127.0.0.1 --port "$PORT" --data-dir "$DATA/data" \
    --shutdown-grace 0 >"$LOG" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 1 100); do ctl health >/dev/null 2>&1 && break; sleep 0.05; done
show ctl health

step "Register two services (the seed's user-service and payment-service)"
show ctl register user-service http://localhost:8001 --tag v1
show ctl register user-service http://localhost:8011 --tag v2 --weight 50
show ctl register payment-service http://localhost:8002 --ttl 3

step "List all services"
show ctl services

step "Discover user-service (and let the registry pick one instance, round-robin)"
show ctl discover user-service
show ctl discover user-service --pick round-robin --limit 1
show ctl discover user-service --pick round-robin --limit 1

step "Heartbeat: user-service keeps sending them, payment-service stops"
for _ in 1 2 3 4; do
    show ctl heartbeat user-service http://localhost:8001
    show ctl heartbeat user-service http://localhost:8011
    sleep 1
done

step "payment-service missed its heartbeats (3 s TTL): it has expired"
show ctl services
if ctl discover payment-service; then
    echo "demo: payment-service should have expired" >&2
    exit 1
else
    echo "(exit status $? : not found, as expected)"
fi
grep -h 'expired' "$LOG" || true

step "Deregister user-service's v2 instance"
show ctl deregister user-service http://localhost:8011
show ctl discover user-service

step "Restart the registry: registrations survive (heartbeat times do not; each gets a fresh TTL)"
kill "$REGISTRY_PID"
wait "$REGISTRY_PID" || true
"$BIN/service-registry" --host 127.0.0.1 --port "$PORT" --data-dir "$DATA/data" \
    --shutdown-grace 0 >>"$LOG" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 1 100); do ctl health >/dev/null 2>&1 && break; sleep 0.05; done
show ctl discover user-service

echo
echo "Demo finished."
