#!/usr/bin/env python3
"""The checks-10k scenario's parts besides its target (bench/check_target.c, which records
when each check's path was asked): the checks' registration, and the report on their runs.

    check_target.py register --port P --target T --count N --interval S
                                                   N instances of svc-checked, each with an HTTP
                                                   check of http://127.0.0.1:T/c/I every S s
    check_target.py report --file FILE --interval S --count N --window-start T0 --window-end T1
                                                   one JSON line: how regular the runs were

The report looks at the runs of each check from its third on: the first comes within a second
of the registration, and the second at a random point 0.5–1.5 intervals later (the spread), so
only later gaps say whether the checker keeps time.
"""

import argparse
import http.client
import json
import statistics
import sys
import time


def register(args):
    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
    for index in range(args.count):
        body = json.dumps({
            "service": "svc-checked", "address": f"http://127.0.0.1:{args.target}", "id": f"c-{index}",
            "ttl_seconds": 3600,
            "check": {"http": f"http://127.0.0.1:{args.target}/c/{index}", "interval": f"{args.interval}s", "timeout": "2s"},
        })
        connection.request("POST", "/register", body, {"Content-Type": "application/json"})
        reply = connection.getresponse()
        reply.read()
        if reply.status != 201:
            sys.exit(f"check_target.py: registering c-{index} answered {reply.status}")
    print(time.monotonic())


def report(args):
    with open(args.file) as source:
        hits = json.load(source)
    interval = args.interval
    gaps = []
    runs_in_window = []
    never = 0
    for index in range(args.count):
        times = sorted(hits.get(f"/c/{index}", []))
        if not times:
            never += 1
            runs_in_window.append(0)
            continue
        gaps += [b - a for a, b in zip(times[1:], times[2:])]
        runs_in_window.append(sum(1 for t in times if args.window_start <= t <= args.window_end))
    window = args.window_end - args.window_start
    within = sum(1 for g in gaps if abs(g - interval) <= 0.1 * interval)
    # A check is starved when it ran clearly fewer times than the window allows.
    expected = window / interval
    starved = sum(1 for n in runs_in_window if n < expected - 2)
    result = {
        "kind": "checks", "scenario": "checks-10k", "checks": args.count, "interval_s": interval,
        "window_s": round(window, 1), "runs": sum(len(v) for v in hits.values()),
        "rate_per_s": round(sum(runs_in_window) / window, 1) if window > 0 else None,
        "gaps": len(gaps), "gaps_within_10pct": within,
        "gap_p1_s": round(statistics.quantiles(gaps, n=100)[0], 3) if len(gaps) >= 100 else None,
        "gap_p99_s": round(statistics.quantiles(gaps, n=100)[98], 3) if len(gaps) >= 100 else None,
        "gap_max_s": round(max(gaps), 3) if gaps else None,
        "never_run": never, "starved": starved,
    }
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("register")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--target", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--interval", type=float, required=True)
    p = sub.add_parser("report")
    p.add_argument("--file", required=True)
    p.add_argument("--interval", type=float, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--window-start", type=float, required=True)
    p.add_argument("--window-end", type=float, required=True)
    args = parser.parse_args()
    {"register": register, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
