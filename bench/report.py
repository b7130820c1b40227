#!/usr/bin/env python3
"""Turns the JSON lines bench/run.sh collected into the markdown report.

    report.py RESULTS.jsonl --out bench/results/latest.md [--check-targets]

Throughput figures are medians over rounds; each ratio is the median of the
per-round ratios (registry run and baseline run of the same round), which
cancels slow drift of the machine better than a ratio of medians.

Exit status: 1 when --check-targets is given and a target is missed (or a
registry figure is missing or came with errors), else 0.
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict

import scenarios

BASELINES = ["bare", "nginx", "etcd"]
BASELINE_TITLES = {"bare": "bare evhttp", "nginx": "nginx", "etcd": "etcd"}

# scenario -> [(measure, baseline, op, threshold)]: declared in bench/scenarios.py.
THROUGHPUT_TARGETS = scenarios.throughput_targets()
CLUSTER_TARGETS = scenarios.cluster_targets()
# The leader's SIGKILL to the first heartbeat the new leader accepts: lease TTL (3 s) + 1 s.
MAX_FAILOVER_MS = 4000
# run.sh --compare: this tree's registry against REV's, per throughput scenario.
MIN_COMPARE_RATIO = 0.95

# Durability: the same load on registries that differ only in persistence.
DURABLE_POLICIES = ["in-memory", "everysec", "never", "always"]
# scenario -> [(policy, minimum ratio to in-memory)]
DURABLE_RATIO_TARGETS = {"durable-churn": [("everysec", 0.9)], "durable-register": []}
# Acknowledged registrations per second under --fsync always, 50 clients.
MIN_ALWAYS_REGISTRATIONS = 10_000
MAX_RECOVERY_MS = 2000

MAX_BYTES_PER_INSTANCE = 400
MAX_EXPIRY_LATENESS_S = 1.0
# An instance may not vanish before its deadline; allow for clock reads and
# the round trip that separates our deadline estimate from the server's.
MIN_EXPIRY_LATENESS_S = -0.05
MAX_HEALTH_WAIT_MS = 20
MAX_STARTUP_MS = 50

# Watchers (bench/watchers.py).  Fan-out latency runs from sending the one
# registration to the kernel receiving each watcher's answer or event.
MAX_FANOUT_P99_MS = 100
MAX_KIB_PER_WATCHER = 4
MIN_WATCH_DISCOVER_RATIO = 0.9
# watch-leak: RSS after the last round may exceed RSS after the reference round
# (round 10 of 100) by at most the larger of these: allocator noise of a couple
# of MiB is not a leak, and 1,000 watchers leaked per round would be ~250 MiB.
MAX_LEAK_GROWTH_BYTES = 2 * 2**20
MAX_LEAK_GROWTH_FRACTION = 0.05


# checks-10k: the share of gaps between a check's runs (from its third run) that must be
# within 10 % of its interval.
MIN_CHECK_GAPS_WITHIN = 0.99
# dns-queries: the registry's DNS queries per second against dnsmasq's, the median of the
# per-round ratios (its target is declared in scenarios.py).
DNS_TARGET = next(t for t in scenarios.BY_NAME["dns-queries"].targets if t[1] == "dnsmasq")[3]


def load(path):
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    return records


def fmt_rps(value):
    return f"{value:,.0f}" if value is not None else "—"


def fmt_ms(microseconds):
    return f"{microseconds / 1000:.2f} ms" if microseconds is not None else "—"


def fmt_ratio(value):
    return f"{value:.2f}×" if value is not None else "—"


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run_errors(result):
    """Answers that were wrong or never came.  Timeouts (answers slower than
    wrk's --timeout) are left out: they are latency, which p99 already judges,
    and they are listed under the table."""
    return sum(result[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_status"))


class Verdicts:
    """Collects PASS/FAIL per scenario; in a run that checks no targets the
    verdicts are still computed and shown in parentheses for information."""

    def __init__(self, check):
        self.check = check
        self.failed = []

    def render(self, scenario, failures, missing=False, details=()):
        """`failures` name the missed targets; `details` are measured figures
        worth showing that have no column of their own."""
        if missing:
            verdict = "FAIL (no registry figure)"
        elif failures:
            verdict = "FAIL (" + "; ".join(list(failures) + list(details)) + ")"
        else:
            verdict = "PASS" + (" (" + "; ".join(details) + ")" if details else "")
        if verdict.startswith("FAIL"):
            self.failed.append(scenario)
        return verdict if self.check else f"({verdict}, not checked)"


def throughput_rows(records, verdicts, notes, registry_expected):
    by_scenario = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["kind"] == "wrk":
            by_scenario[r["scenario"]][r["server"]][r["round"]] = r["result"]

    rows = []
    for scenario, targets in THROUGHPUT_TARGETS.items():
        runs = by_scenario.get(scenario)
        if not runs:
            continue
        for server, rounds in sorted(runs.items()):
            for round_number, result in sorted(rounds.items()):
                if run_errors(result) or result["errors_timeout"]:
                    notes.append(
                        f"{scenario}, {server}, round {round_number}: {result['errors_status']} non-2xx, "
                        f"{result['errors_connect']} connect / {result['errors_read']} read / "
                        f"{result['errors_write']} write errors, {result['errors_timeout']} timeouts")

        registry = runs.get("registry", {})

        def median_of(server, key):
            return median_or_none([r[key] for r in runs.get(server, {}).values()])

        def median_ratio(baseline, key):
            rounds = sorted(set(registry) & set(runs.get(baseline, {})))
            ratios = [registry[n][key] / runs[baseline][n][key]
                      for n in rounds if runs[baseline][n][key]]
            return median_or_none(ratios)

        cells = [scenario, fmt_rps(median_of("registry", "rps")),
                 fmt_ms(median_of("registry", "p50_us")), fmt_ms(median_of("registry", "p99_us"))]
        for baseline in BASELINES:
            cells.append(fmt_rps(median_of(baseline, "rps")))
            cells.append(fmt_ratio(median_ratio(baseline, "rps")))

        target_texts, failures, details = [], [], []
        for measure, baseline, op, threshold in targets:
            ratio = median_ratio(baseline, "rps" if measure == "rps" else "p99_us")
            label = baseline if measure == "rps" else f"{baseline} p99"
            if threshold is None:
                # Reported, with no target.
                target_texts.append(f"— ({fmt_ratio(ratio)} {label})")
                continue
            shown = "" if baseline in BASELINES else f" (measured {fmt_ratio(ratio)})"
            target_texts.append(f"{op.replace('>=', '≥').replace('<=', '≤')} {threshold}× {label}{shown}")
            missed = ratio is not None and (
                (op == ">=" and ratio < threshold) or (op == "<=" and ratio > threshold))
            if ratio is None:
                if registry:
                    failures.append(f"no {label} figure")
            elif missed:
                failures.append(f"{ratio:.2f}× {label}")
            elif measure == "p99":
                details.append(f"p99 {ratio:.2f}× {baseline}")
        if any(run_errors(r) for r in registry.values()):
            failures.append("registry errors")
        cells.append("; ".join(target_texts))
        if registry or registry_expected:
            cells.append(verdicts.render(scenario, failures, missing=not registry, details=details))
        else:
            cells.append("— (no registry run)")
        rows.append(cells)
    return rows


def compare_rows(records, verdicts):
    """run.sh --compare: median of the per-round ratios of this tree's registry to REV's."""
    by_scenario = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["kind"] == "wrk" and r["server"] in ("registry", "previous"):
            by_scenario[r["scenario"]][r["server"]][r["round"]] = r["result"]
    rows = []
    for scenario in THROUGHPUT_TARGETS:
        runs = by_scenario.get(scenario)
        if not runs or "previous" not in runs:
            continue
        new, old = runs.get("registry", {}), runs["previous"]
        rounds = sorted(set(new) & set(old))
        ratios = [new[n]["rps"] / old[n]["rps"] for n in rounds if old[n]["rps"]]
        ratio = median_or_none(ratios)
        failures = []
        if ratio is None or ratio < MIN_COMPARE_RATIO:
            failures.append(f"{fmt_ratio(ratio)}")
        if any(run_errors(r) for r in list(new.values()) + list(old.values())):
            failures.append("errors")
        spread = f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else "—"
        rows.append([scenario, fmt_rps(median_or_none([r["rps"] for r in new.values()])),
                     fmt_rps(median_or_none([r["rps"] for r in old.values()])), fmt_ratio(ratio), spread,
                     str(len(ratios)), f"≥ {MIN_COMPARE_RATIO}×", verdicts.render(scenario, failures)])
    return rows


def other_rows(records, verdicts, registry_expected):
    rows = []
    by_kind = defaultdict(list)
    for r in records:
        by_kind[r["kind"]].append(r)

    for r in by_kind["memory"]:
        per_instance = (r["rss_after"] - r["rss_before"]) / r["instances"]
        measured = (f"{per_instance:,.0f} B/instance: RSS {r['rss_before'] / 2**20:,.1f} MiB empty, "
                    f"{r['rss_after'] / 2**20:,.1f} MiB with {r['instances']:,} instances "
                    f"(populated in {r['populate_seconds']:.1f} s)")
        failures = [] if per_instance <= MAX_BYTES_PER_INSTANCE else [f"{per_instance:,.0f} B"]
        rows.append(["memory-1m", measured, f"≤ {MAX_BYTES_PER_INSTANCE} B/instance",
                     verdicts.render("memory-1m", failures)])

    for r in by_kind["expiry"]:
        health = r.get("health") or {}
        lateness = r.get("lateness_s")
        if lateness is None:
            gone = f"not all gone within {r.get('grace_s', '?')} s of the deadline"
        else:
            gone = (f"all gone {lateness:+.3f} s from the deadline "
                    f"(deadline known within {r.get('deadline_uncertainty_s', 0):.3f} s)")
        measured = (f"{r['instances']:,} instances (registered within {r['populate_seconds']:.2f} s): {gone}; "
                    f"/health max {health.get('max_ms', '—')} ms, p99 {health.get('p99_ms', '—')} ms "
                    f"over {health.get('probes', 0)} probes, {health.get('failures', '?')} failed")
        failures = []
        if lateness is None or lateness > MAX_EXPIRY_LATENESS_S:
            failures.append("late")
        elif lateness < MIN_EXPIRY_LATENESS_S:
            failures.append("expired early")
        if health.get("max_ms") is None or health["max_ms"] > MAX_HEALTH_WAIT_MS or health.get("failures"):
            failures.append("/health stalled")
        rows.append(["mass-expiry", measured,
                     f"gone ≤ {MAX_EXPIRY_LATENESS_S:g} s after the deadline; /health ≤ {MAX_HEALTH_WAIT_MS} ms",
                     verdicts.render("mass-expiry", failures)])

    for r in by_kind["checks"]:
        share = r["gaps_within_10pct"] / r["gaps"] if r["gaps"] else 0
        measured = (f"{r['checks']:,} checks every {r['interval_s']:g} s: {r['rate_per_s'] or 0:,.0f} runs/s over "
                    f"{r['window_s']:g} s; {share:.1%} of {r['gaps']:,} gaps between runs within 10 % of the interval "
                    f"(p1 {r['gap_p1_s']} s, p99 {r['gap_p99_s']} s, max {r['gap_max_s']} s); "
                    f"{r['starved']} starved, {r['never_run']} never run")
        failures = []
        if share < MIN_CHECK_GAPS_WITHIN:
            failures.append("irregular")
        if r["starved"] or r["never_run"]:
            failures.append("starved")
        rows.append(["checks-10k (timing)", measured,
                     f"≥ {MIN_CHECK_GAPS_WITHIN:.0%} of gaps within 10 % of the interval; none starved",
                     verdicts.render("checks-10k", failures)])

    dns_runs = defaultdict(dict)
    for r in by_kind["dns"]:
        dns_runs[r["server"]][r["round"]] = r
    if dns_runs:
        registry_runs, mask_runs = dns_runs.get("registry", {}), dns_runs.get("dnsmasq", {})
        ratios = [registry_runs[n]["qps"] / mask_runs[n]["qps"] for n in sorted(set(registry_runs) & set(mask_runs))
                  if registry_runs[n].get("qps") and mask_runs[n].get("qps")]
        ratio = median_or_none(ratios)
        def qps(runs):
            value = median_or_none([r["qps"] for r in runs.values() if r.get("qps")])
            return "—" if value is None else f"{value:,.0f} q/s"
        lost = sum(r.get("lost") or 0 for r in registry_runs.values())
        wrk = defaultdict(dict)
        for r in records:
            if r["kind"] == "wrk" and r["scenario"] == "dns-discover":
                wrk[r["server"]][r["round"]] = r["result"]["rps"]
        http_ratios = [wrk["underdns"][n] / wrk["quiet"][n] for n in sorted(set(wrk.get("quiet", {})) & set(wrk.get("underdns", {})))
                       if wrk["quiet"][n]]
        loads = [r["qps"] for r in by_kind["dns-load"] if r.get("qps")]
        measured = (f"registry {qps(registry_runs)} ({lost:,.0f} lost), dnsmasq {qps(mask_runs)}: {fmt_ratio(ratio)} dnsmasq "
                    f"(median of {len(ratios)} rounds); GET /discover beside {median_or_none(loads) or 0:,.0f} DNS q/s: "
                    f"{fmt_ratio(median_or_none(http_ratios))} of its rate alone")
        failures = []
        if ratio is None:
            failures.append("no ratio")
        elif ratio < DNS_TARGET:
            failures.append(f"{ratio:.2f}× dnsmasq")
        rows.append(["dns-queries", measured, f"≥ {DNS_TARGET}× dnsmasq (q/s)", verdicts.render("dns-queries", failures)])

    startups = {r["server"]: r for r in by_kind["startup"]}
    if "registry" in startups or "bare" in startups:
        def describe(r):
            if r is None:
                return "—"
            if r.get("median_ms") is None:
                return "never answered"
            runs = len(r["runs_ms"])
            return f"median {r['median_ms']} ms, max {r['max_ms'] or '—'} ms ({runs} run{'s' if runs > 1 else ''})"
        reg = startups.get("registry")
        measured = f"{describe(reg)}; bare evhttp: {describe(startups.get('bare'))}"
        if reg is None:
            verdict = verdicts.render("startup", [], missing=True) if registry_expected else "— (no registry run)"
        else:
            ok = reg.get("max_ms") is not None and reg["max_ms"] <= MAX_STARTUP_MS
            verdict = verdicts.render("startup", [] if ok else ["slow or no answer"])
        rows.append(["startup", measured, f"/health answered ≤ {MAX_STARTUP_MS} ms after spawn (every run)",
                     verdict])
    return rows


def durability_rows(records, verdicts, notes):
    by_scenario = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["kind"] == "wrk" and r["scenario"] in DURABLE_RATIO_TARGETS:
            by_scenario[r["scenario"]][r["server"]][r["round"]] = r["result"]
    rows = []
    for scenario, ratio_targets in DURABLE_RATIO_TARGETS.items():
        runs = by_scenario.get(scenario)
        if not runs:
            continue
        memory = runs.get("in-memory", {})
        cells, targets, failures = [scenario], [], []
        for policy in DURABLE_POLICIES:
            policy_runs = runs.get(policy)
            if not policy_runs:
                cells.append("—")
                continue
            for round_number, result in sorted(policy_runs.items()):
                if run_errors(result):
                    failures.append(f"{policy} errors")
                    notes.append(f"{scenario}, {policy}, round {round_number}: {result['errors_status']} non-2xx, "
                                 f"{result['errors_timeout']} timeouts")
            rps = median_or_none([r["rps"] for r in policy_runs.values()])
            ratios = [policy_runs[n]["rps"] / memory[n]["rps"] for n in sorted(set(policy_runs) & set(memory))
                      if memory[n]["rps"]]
            ratio = median_or_none(ratios)
            cells.append(fmt_rps(rps) if policy == "in-memory" else f"{fmt_rps(rps)} ({fmt_ratio(ratio)})")
            for target_policy, threshold in ratio_targets:
                if target_policy == policy:
                    targets.append(f"{policy} ≥ {threshold}× in-memory")
                    if ratio is None or ratio < threshold:
                        failures.append(f"{policy} {fmt_ratio(ratio)}")
            if scenario == "durable-register" and policy == "always":
                targets.append(f"always ≥ {MIN_ALWAYS_REGISTRATIONS:,} registrations/s")
                if rps is None or rps < MIN_ALWAYS_REGISTRATIONS:
                    failures.append(f"always {fmt_rps(rps)}/s")
        cells.append("; ".join(targets))
        cells.append(verdicts.render(scenario, failures))
        rows.append(cells)
    for r in records:
        if r["kind"] != "recover":
            continue
        runs = r.get("runs_ms") or []
        measured = (f"{r['instances']:,} instances ({r['data_bytes'] / 2**20:,.0f} MiB on disk): median "
                    f"{r.get('median_ms', '—')} ms, max {r.get('max_ms') or '—'} ms over {len(runs)} run(s), "
                    "spawn to first 200 on /health")
        ok = r.get("median_ms") is not None and r["median_ms"] <= MAX_RECOVERY_MS and None not in runs
        rows.append(["recover-1m", measured, "—", "—", "—", f"median ≤ {MAX_RECOVERY_MS} ms",
                     verdicts.render("recover-1m", [] if ok else ["slow or no answer"])])
    return rows


def ops_rate(result):
    """Operations per second: req/s times the operations each request carried (a
    transaction of 14 puts is 14 registrations)."""
    return result["rps"] * result.get("ops_per_request", 1)


def cluster_rows(records, verdicts, notes):
    """Each cluster scenario's servers side by side (req/s medians), and the ratios its
    targets name; the failover kills' times."""
    by_scenario = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["kind"] == "wrk" and r["scenario"] in CLUSTER_TARGETS and r["round"] > 0:
            by_scenario[r["scenario"]][r["server"]][r["round"]] = r["result"]
    rows = []
    for scenario, targets in CLUSTER_TARGETS.items():
        runs = by_scenario.get(scenario)
        if not runs:
            continue
        failures = []
        for server, rounds in sorted(runs.items()):
            for round_number, result in sorted(rounds.items()):
                if run_errors(result):
                    failures.append(f"{server} errors")
                    notes.append(f"{scenario}, {server}, round {round_number}: {result['errors_status']} non-2xx, "
                                 f"{result['errors_timeout']} timeouts")
        measured = ", ".join(f"{server} {fmt_rps(median_or_none([ops_rate(r) for r in rounds.values()]))} "
                             + ("ops/s" if any(r.get("ops_per_request", 1) > 1 for r in rounds.values()) else "req/s")
                             for server, rounds in runs.items())
        texts, details = [], []
        for server, baseline, op, threshold in targets:
            common = sorted(set(runs.get(server, {})) & set(runs.get(baseline, {})))
            ratio = median_or_none([ops_rate(runs[server][n]) / ops_rate(runs[baseline][n]) for n in common
                                    if ops_rate(runs[baseline][n])])
            details.append(f"{server} {fmt_ratio(ratio)} {baseline}")
            if threshold is None:
                continue
            texts.append(f"{server} ≥ {threshold}× {baseline}")
            if ratio is None or ratio < threshold:
                failures.append(f"{server} {fmt_ratio(ratio)} {baseline}")
        rows.append([scenario, measured + "; " + ", ".join(details), "; ".join(texts),
                     verdicts.render(scenario, dict.fromkeys(failures))])
    for r in records:
        if r["kind"] != "failover":
            continue
        times = [run.get("heartbeat_ms") for run in r["runs"]]
        known = [t for t in times if t is not None]
        leader = [run.get("leader_ms") for run in r["runs"] if run.get("leader_ms") is not None]
        measured = (f"{len(times)} kill(s): first heartbeat accepted by the new leader after median "
                    f"{statistics.median(known):,.0f} ms, max {max(known):,.0f} ms; a replica said it leads after median "
                    f"{statistics.median(leader):,.0f} ms" if known and leader else f"{len(times)} kill(s): no new leader")
        ok = known and len(known) == len(times) and max(known) <= MAX_FAILOVER_MS
        rows.append(["cluster-failover", measured, f"max ≤ {MAX_FAILOVER_MS:,} ms (lease TTL 3 s + 1 s)",
                     verdicts.render("cluster-failover", [] if ok else ["slow or no new leader"])])
    return rows


def mib(value):
    return f"{value / 2**20:,.1f} MiB"


def watcher_rows(records, verdicts, notes):
    rows = []
    by_kind = defaultdict(list)
    for r in records:
        by_kind[r["kind"]].append(r)

    for r in by_kind["watch-fanout"]:
        total = r["watchers"]
        parking = r["parking"]
        clock = "kernel receive times" if r.get("kernel_timestamps") else "client read times"
        measured = (f"{r['got']:,} of {total:,} got it ({r['polls']:,} long-polls, {r['streams']:,} streams): "
                    f"p50 {fmt_plain_ms(r['p50_ms'])}, p99 {fmt_plain_ms(r['p99_ms'])}, "
                    f"max {fmt_plain_ms(r['max_ms'])} from sending the registration ({clock}); "
                    f"first answer at {fmt_plain_ms(r.get('min_ms'))}")
        if r.get("health_ms") is not None:
            measured += (f"; the registration's own answer came at {fmt_plain_ms(r.get('register_ms'))} and a "
                         f"/health sent right behind it at {fmt_plain_ms(r['health_ms'])}")
        failures = []
        if r["got"] < total:
            failures.append(f"{total - r['got']:,} missed it")
        if r["p99_ms"] is None or r["p99_ms"] > MAX_FANOUT_P99_MS:
            failures.append(f"p99 {fmt_plain_ms(r['p99_ms'])}")
        if not parking["parked"]:
            failures.append("not all parked before the change")
        details = []
        floors = [f for f in by_kind["fanout-floor"] if f["watchers"] == total]
        if floors:
            floor_p99 = statistics.median(f["p99_ms"] for f in floors)
            measured += (f". Floor (bench/fanout_floor.c: the same {floors[0]['bytes']}-byte answer, one write() "
                         f"per connection, same cores): p99 {fmt_plain_ms(floor_p99)}, median of {len(floors)} "
                         f"round(s); the registry's p99 is {r['p99_ms'] / floor_p99:.2f}× the floor")
            if floor_p99 > MAX_FANOUT_P99_MS:
                details.append(f"the floor itself is {fmt_plain_ms(floor_p99)}")
        rows.append(["watch-fanout", measured, f"all {total:,} get it; p99 ≤ {MAX_FANOUT_P99_MS} ms",
                     verdicts.render("watch-fanout", failures, details=details if failures else ())])

        per_watcher = (r["rss_parked"] - r["rss_before"]) / total / 1024
        measured = (f"{per_watcher:.2f} KiB per parked watcher: RSS {mib(r['rss_before'])} before, "
                    f"{mib(r['rss_parked'])} with {total:,} parked (opened in {parking['open_seconds']:.2f} s; "
                    f"a probe long-poll sent last was held {parking['probe_held_s']:.2f} s)")
        failures = [] if per_watcher <= MAX_KIB_PER_WATCHER else [f"{per_watcher:.2f} KiB"]
        rows.append(["watch-fanout (memory)", measured, f"≤ {MAX_KIB_PER_WATCHER} KiB/watcher",
                     verdicts.render("watch-fanout", failures)])

    runs = defaultdict(dict)
    for r in records:
        if r["kind"] == "wrk" and r["scenario"] == "watch-discover":
            runs[r["server"]][r["round"]] = r["result"]
            if run_errors(r["result"]) or r["result"]["errors_timeout"]:
                result = r["result"]
                notes.append(
                    f"watch-discover, {r['server']}, round {r['round']}: {result['errors_status']} non-2xx, "
                    f"{result['errors_connect']} connect / {result['errors_read']} read / "
                    f"{result['errors_write']} write errors, {result['errors_timeout']} timeouts")
    if runs:
        watched, quiet = runs.get("registry", {}), runs.get("unwatched", {})
        rounds = sorted(set(watched) & set(quiet))
        ratio = median_or_none([watched[n]["rps"] / quiet[n]["rps"] for n in rounds if quiet[n]["rps"]])
        hold = next(iter(by_kind["watch-hold"]), None)
        ready = next(iter(by_kind["watch-hold-ready"]), None)
        count = ready["watchers"] if ready else 0

        def median_of(runs_by_round, key):
            return median_or_none([v[key] for v in runs_by_round.values()])
        measured = (f"{fmt_rps(median_of(watched, 'rps'))} req/s with {count:,} watchers parked, "
                    f"{fmt_rps(median_of(quiet, 'rps'))} without: {fmt_ratio(ratio)} "
                    f"(median of {len(rounds)} per-round ratio{'s' if len(rounds) != 1 else ''}); p99 "
                    f"{fmt_ms(median_of(watched, 'p99_us'))} vs {fmt_ms(median_of(quiet, 'p99_us'))}")
        failures = []
        if ratio is None:
            failures.append("no ratio")
        elif ratio < MIN_WATCH_DISCOVER_RATIO:
            failures.append(f"{ratio:.2f}×")
        if any(run_errors(v) for v in list(watched.values()) + list(quiet.values())):
            failures.append("errors")
        if hold is None or not hold["parking"]["parked"]:
            failures.append("watchers not all parked")
        else:
            measured += f"; the watchers were held {hold['held_seconds']:.0f} s"
            disturbed = hold["polls_answered"] + hold["stream_changes"] + hold["closed_by_server"]
            if disturbed:
                failures.append(f"{disturbed:,} watchers answered or dropped during the runs")
            else:
                measured += ", none answered or dropped"
        rows.append(["watch-discover", measured, f"≥ {MIN_WATCH_DISCOVER_RATIO}× without watchers",
                     verdicts.render("watch-discover", failures)])

    for r in by_kind["watch-leak"]:
        reference, last = r["rss_reference"], r["rss_last"]
        failures = []
        if r["rounds_done"] < r["rounds"]:
            failures.append(f"round {r['rounds_done'] + 1}: {r['undropped']:,} closed connections kept")
        if reference is None or last is None:
            growth_text = "no RSS figures"
            failures.append("no RSS figures")
        else:
            growth = last - reference
            allowed = max(MAX_LEAK_GROWTH_BYTES, MAX_LEAK_GROWTH_FRACTION * reference)
            growth_text = (f"RSS {mib(reference)} after round {r['reference_round']}, {mib(last)} after round "
                           f"{r['rounds_done']} ({growth / 2**20:+.2f} MiB, {growth / reference:+.1%}; "
                           f"max {mib(r['rss_max'])})")
            if growth > allowed:
                failures.append(f"grew {growth / 2**20:.2f} MiB")
        if r["health_status"] != 200:
            failures.append(f"/health answered {r['health_status']}")
        if not r["longpoll_ok"]:
            failures.append("a new long-poll did not wake")
        if r["fds_after"] > 0:
            failures.append(f"{r['fds_after']} descriptors kept")
        drop = f"{r['drop_max_s']:.3f} s" if r["drop_max_s"] is not None else "—"
        woke = (f"a new long-poll woke {r['longpoll_ms']:.1f} ms after a change" if r["longpoll_ok"]
                else "a new long-poll did not wake")
        measured = (f"{r['rounds_done']} rounds of {r['conns']:,} parked long-polls closed unread (half FIN, "
                    f"half RST) in {r['seconds']:.0f} s: {growth_text}; each round released within {drop}; "
                    f"then /health {r['health_status']}, {woke}")
        target = (f"RSS growth from round {r['reference_round']} to the last ≤ max(2 MiB, 5 %); "
                  f"every connection released; /health and a new long-poll answer")
        rows.append(["watch-leak", measured, target, verdicts.render("watch-leak", failures)])
    return rows


# Large state (bench/largestate.py): /health p99 while large answers are made and sent.
MAX_LARGE_STATE_HEALTH_P99_MS = 20
# slow-streams: RSS with the non-reading streams over the idle registry's.
MAX_SLOW_STREAM_GROWTH_BYTES = 64 * 2**20


def large_state_rows(records, verdicts):
    rows = []
    for r in records:
        if r["kind"] != "large-state":
            continue
        idle, loaded = r["idle"], r["loaded"]
        health = (f"/health p99 {loaded['p99_ms']} ms, max {loaded['max_ms']} ms "
                  f"(idle registry: p99 {idle['p99_ms']} ms, max {idle['max_ms']} ms)")
        failures = []
        if loaded["p99_ms"] is None or loaded["p99_ms"] > MAX_LARGE_STATE_HEALTH_P99_MS or loaded.get("failures"):
            failures.append("/health p99")
        target = f"/health p99 ≤ {MAX_LARGE_STATE_HEALTH_P99_MS} ms"
        if r["scenario"] == "slow-streams":
            growth = r["rss_peak"] - r["rss_idle"]
            measured = (f"{r['streams']} streams that never read, {r['changes']} changes: RSS {mib(r['rss_idle'])} idle, "
                        f"peak {mib(r['rss_peak'])}; {health}")
            if growth > MAX_SLOW_STREAM_GROWTH_BYTES:
                failures.append("memory")
            target += f"; RSS ≤ idle + {MAX_SLOW_STREAM_GROWTH_BYTES >> 20} MiB"
        else:
            measured = (f"{r['changes']:,} changes, each followed by a read of {r['answer_bytes'] / 2**20:,.1f} MiB; "
                        f"{health}; RSS {mib(r['rss'])}")
        rows.append([r["scenario"], measured, target, verdicts.render(r["scenario"], failures)])
    return rows


def large_query_rows(records):
    """large-services' reads of /services whole and filtered: the time of an answer, its size."""
    rows = []
    for r in records:
        if r["kind"] != "large-queries":
            continue
        for query in r["queries"]:
            rows.append([f"`{query['path']}`", f"{query['median_ms']:,.2f} ms", f"{query['max_ms']:,.2f} ms",
                         f"{query['bytes']:,} bytes"])
    return rows


def fmt_plain_ms(value):
    return f"{value:,.1f} ms" if value is not None else "—"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results")
    parser.add_argument("--out", required=True)
    parser.add_argument("--check-targets", action="store_true")
    args = parser.parse_args()

    records = load(args.results)
    meta = next((r for r in records if r["kind"] == "meta"), {})
    registry_expected = not meta.get("baselines_only", False)
    verdicts = Verdicts(args.check_targets)
    notes = []

    throughput_header = ["scenario", "registry req/s", "p50", "p99"]
    for baseline in BASELINES:
        throughput_header += [f"{BASELINE_TITLES[baseline]} req/s", f"× {BASELINE_TITLES[baseline]}"]
    throughput_header += ["target", "result"]

    out = [f"# Service registry benchmark ({meta.get('mode', '?')} run)", ""]
    for key, title in [("date", "Date"), ("commit", "Commit"), ("machine", "Machine"),
                       ("tools", "Tools"), ("method", "Method")]:
        if meta.get(key):
            out.append(f"- {title}: {meta[key]}")
    out.append("")
    comparison = compare_rows(records, verdicts)
    if comparison:
        out += [f"## This tree against {meta.get('previous') or 'the previous build'}", "",
                table(["scenario", "this tree req/s", "previous req/s", "× previous (median)", "per-round range",
                       "rounds", "target", "result"], comparison), ""]
    else:
        throughput = throughput_rows(records, verdicts, notes, registry_expected)
        if throughput:
            out += ["## Throughput", "", table(throughput_header, throughput), ""]
    others = other_rows(records, verdicts, registry_expected)
    if others:
        out += ["## Memory, expiry, start-up", "",
                table(["scenario", "measured", "target", "result"], others), ""]
    durability = durability_rows(records, verdicts, notes)
    if durability:
        out += ["## Durability (req/s, and × in-memory)", "",
                table(["scenario", "in-memory", "everysec", "never", "always", "target", "result"], durability), ""]
    watchers = watcher_rows(records, verdicts, notes)
    if watchers:
        out += ["## Watchers", "",
                table(["scenario", "measured", "target", "result"], watchers), ""]
    large = large_state_rows(records, verdicts)
    if large:
        out += ["## Large state", "",
                table(["scenario", "measured", "target", "result"], large), ""]
    queries = large_query_rows(records)
    if queries:
        out += ["### `/services` at this size, whole and filtered (20 reads each)", "",
                table(["read", "median", "max", "answer"], queries), ""]
    cluster = cluster_rows(records, verdicts, notes)
    if cluster:
        out += ["## Cluster (three etcd members, three replicas)", "",
                table(["scenario", "measured", "target", "result"], cluster), ""]
    if notes:
        out += ["## Runs with errors", ""] + [f"- {n}" for n in notes] + [""]
    if not args.check_targets:
        out += ["Targets were not checked in this run.", ""]
    elif verdicts.failed:
        out += [f"Missed: {', '.join(dict.fromkeys(verdicts.failed))}.", ""]
    else:
        out += ["All targets met.", ""]

    text = "\n".join(out)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 1 if args.check_targets and verdicts.failed else 0


if __name__ == "__main__":
    sys.exit(main())
