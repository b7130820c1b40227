#!/usr/bin/env bash
# Installs what `make bench` runs besides the registry, from Debian, when missing: wrk (the
# load), nginx-light and etcd-server (baselines), dnsperf and dnsmasq-base (the DNS load and
# its baseline), libevent-dev and gcc (the bare evhttp
# baseline and the fan-out floor), curl, taskset (util-linux) and python3.
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v etcd >/dev/null || missing+=(etcd-server)
[[ -f /usr/include/event2/http.h ]] || missing+=(libevent-dev)
command -v cc >/dev/null || missing+=(gcc)
command -v curl >/dev/null || missing+=(curl)
command -v taskset >/dev/null || missing+=(util-linux)
command -v python3 >/dev/null || missing+=(python3)
command -v dnsperf >/dev/null || missing+=(dnsperf)
[[ -x /usr/sbin/dnsmasq ]] || missing+=(dnsmasq-base)
bash scripts/apt-install.sh "${missing[@]}"
