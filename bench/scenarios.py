#!/usr/bin/env python3
"""The benchmark's scenarios, declared once: their names, what they measure, their targets.

bench/run.sh asks this file which scenarios exist (and runs `scenario_NAME`, dashes as
underscores, for each), and bench/report.py takes the targets from it.

    scenarios.py names [--group GROUP]   one name per line, in run order
"""

import argparse
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scenario:
    name: str
    # throughput: wrk against the registry and the baselines (bare evhttp, nginx, etcd);
    # these are also the scenarios of `run.sh --compare`.
    # other, watchers, large-state, durability: their own probes.
    group: str
    # throughput: [(measure, baseline, op, threshold)]; measure "rps" compares req/s
    # (higher is better), "p99" the 99th percentile latency.
    targets: list = field(default_factory=list)


SCENARIOS = [
    Scenario("discover-3", "throughput", [("rps", "bare", ">=", 0.9), ("rps", "etcd", ">=", 5)]),
    Scenario("discover-100", "throughput", [("rps", "bare", ">=", 0.85)]),
    Scenario("heartbeat-10k", "throughput", [("rps", "bare", ">=", 0.85), ("rps", "etcd", ">=", 5)]),
    Scenario("churn", "throughput", [("rps", "bare", ">=", 0.75), ("rps", "etcd", ">=", 5)]),
    Scenario("mix", "throughput", [("rps", "bare", ">=", 0.85)]),
    Scenario("conns-10k", "throughput", [("rps", "bare", ">=", 0.85), ("p99", "bare", "<=", 1.2)]),
    # The registry's HTTPS port (--tls-cert) against nginx over TLS with the same certificate
    # and bytes; tls-handshakes opens a connection per request (a full handshake each), its
    # ratio reported (threshold None).
    Scenario("tls-discover", "throughput", [("rps", "nginx", ">=", 0.8)]),
    Scenario("tls-heartbeat", "throughput", [("rps", "nginx", ">=", 0.8)]),
    Scenario("tls-handshakes", "throughput", [("rps", "nginx", ">=", None)]),
    # With an ACL file and a token on every request, against the same registry without one.
    Scenario("tokens-discover", "throughput", [("rps", "open", ">=", 0.95)]),
    # 10,000 instances with an HTTP check every 10 s (1,000 checks/s) against one without
    # checks; the checks' regularity is reported beside (kind "checks").
    Scenario("checks-10k", "throughput", [("rps", "nochecks", ">=", 0.9)]),
    # With 50 dashboards open (bench/dashboards.py: the page's streams and refreshes) and a
    # change a second, against the same registry with the same changes and none open.
    Scenario("dashboards-discover", "throughput", [("rps", "nodash", ">=", 0.95)]),
    # DNS A queries (dnsperf) against dnsmasq serving the same records from a hosts file; the
    # ratio of queries per second, and GET /discover beside a DNS load (kind "dns").
    Scenario("dns-queries", "other", [("qps", "dnsmasq", ">=", 0.8)]),
    Scenario("memory-1m", "other"),
    Scenario("mass-expiry", "other"),
    Scenario("startup", "other"),
    Scenario("watch-fanout", "watchers"),
    Scenario("watch-discover", "watchers"),
    Scenario("watch-leak", "watchers"),
    Scenario("large-services", "large-state"),
    Scenario("large-service", "large-state"),
    Scenario("slow-streams", "large-state"),
    Scenario("durable-churn", "durability"),
    Scenario("durable-register", "durability"),
    Scenario("recover-1m", "durability"),
    # cluster: three etcd members and three replicas; targets are (server, baseline, op,
    # threshold) on operations per second (req/s times the operations a request carries),
    # each a median of per-round ratios.
    Scenario("cluster-discover", "cluster", [("follower", "single", ">=", 0.9)]),
    Scenario("cluster-heartbeat", "cluster", [("follower", "single", ">=", 0.5), ("leader", "single", ">=", 0.9)]),
    # etcd3-txn (etcd's own 14-put transactions into the prefix, mirrored) is the ceiling:
    # its ratio is reported, with no target (threshold None).
    Scenario("cluster-register", "cluster", [("follower", "etcd3", ">=", 2), ("follower", "etcd3-txn", ">=", None)]),
    Scenario("cluster-failover", "cluster"),
]

BY_NAME = {s.name: s for s in SCENARIOS}


def cluster_targets():
    return {s.name: s.targets for s in SCENARIOS if s.group == "cluster"}


def throughput_targets():
    return {s.name: s.targets for s in SCENARIOS if s.group == "throughput"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    names = sub.add_parser("names")
    names.add_argument("--group")
    args = parser.parse_args()
    for scenario in SCENARIOS:
        if args.group is None or scenario.group == args.group:
            print(scenario.name)


if __name__ == "__main__":
    main()
