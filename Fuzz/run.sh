#!/usr/bin/env bash
# Fuzz/run.sh [--smoke] [--seconds N] [TARGET...]: builds the libFuzzer targets (Package.swift
# declares them when REGISTRY_FUZZ is set) with AddressSanitizer into .build/fuzz, then runs
# each one from its seed corpus (Fuzz/corpus/TARGET, in the repository) and the corpus it
# grew before (.build/fuzz/corpus/TARGET): for N seconds each (default 60; `make fuzz`), or,
# with --smoke, briefly (what `make test` does). Crashes, leaks and timeouts stop the run
# with exit 1 and leave the input in .build/fuzz/artifacts/TARGET/. Prints executions per
# target and in total.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
smoke=0
targets=()
while (($#)); do
    case $1 in
        --smoke) smoke=1; shift ;;
        --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
all=(json bodies consul dns eureka acl query percent framing journal recovery)
((${#targets[@]})) || targets=("${all[@]}")
((smoke)) && seconds=3

build=.build/fuzz
flags=(-Xswiftc "-sanitize=fuzzer,address" -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld)
for target in "${targets[@]}"; do
    [[ -d Fuzz/$target ]] || { echo "fuzz: no target '$target'; the targets are ${all[*]}" >&2; exit 2; }
    echo "fuzz: building fuzz-$target" >&2
    mkdir -p "$build"
    if ! REGISTRY_FUZZ=1 swift build --build-path "$build" --product "fuzz-$target" "${flags[@]}" >"$build/build-$target.log" 2>&1; then
        grep -v -e "Cannot export local symbol" "$build/build-$target.log" | tail -30 >&2
        echo "fuzz: fuzz-$target did not build (the whole output: $build/build-$target.log)" >&2
        exit 1
    fi
done

total=0
failed=()
printf '%-10s %12s %8s %10s  %s\n' target executions seconds "corpus" result
for target in "${targets[@]}"; do
    corpus=$build/corpus/$target
    artifacts=$build/artifacts/$target/
    mkdir -p "$corpus" "$artifacts"
    log=$build/fuzz-$target.log
    status=0
    # -timeout: an input slower than 10 s is a hang; -rss_limit_mb: one that needs 2 GiB is a leak.
    "$build/debug/fuzz-$target" "$corpus" "Fuzz/corpus/$target" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 -artifact_prefix="$artifacts" >"$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    time=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    size=$(find "$corpus" -type f | wc -l)
    result=ok
    if ((status != 0)); then
        result="FAILED (exit $status; see $log and $artifacts)"
        failed+=("$target")
    fi
    printf '%-10s %12s %8s %10s  %s\n' "$target" "$runs" "$seconds" "$size" "$result"
    [[ $result == ok ]] || grep -m 5 -E "ERROR|panic|Fatal error|SUMMARY" "$log" >&2 || true
    total=$((total + runs))
    : "$time"
done
echo "fuzz: $total executions in total"
((${#failed[@]} == 0)) || { echo "fuzz: failed: ${failed[*]}" >&2; exit 1; }
