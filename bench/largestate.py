#!/usr/bin/env python3
"""Large-state probes for bench/run.sh (Python 3 standard library only).

Each probe measures /health latency on the registry twice: idle (populated, nothing
else happening) and under its load, with probe.py health-loop in a process of its own,
so that the load's client work does not count as the registry's.

    largestate.py services --port P --pid PID --seconds S
        a registration or deregistration, then GET /services, back to back, on a
        registry already holding many services (populate.py)
    largestate.py service --port P --pid PID --service NAME --instances K --seconds S
        one instance's status flipped, then GET /discover/NAME, back to back, on one
        service of K instances
    largestate.py services-queries --port P --pid PID
        GET /services whole, and filtered and paged as the dashboard asks, each read 20
        times: the time of each answer and its size
    largestate.py slow-streams --port P --pid PID --streams N --seconds S
        N streams of /watch whose clients never read, while a registration comes every
        50 ms; RSS before and after

One JSON line on stdout.  Every loop is bounded in time.
"""

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time

HOST = "127.0.0.1"
BENCH = os.path.dirname(os.path.abspath(__file__))


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Connection:
    """One keep-alive connection that reads Content-Length bodies into a reused
    buffer: reading a 22 MB answer must cost the client little."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.create_connection((HOST, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = bytearray()
        self.scratch = bytearray(1 << 20)

    def request(self, method, path, body=b""):
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n\r\n"
        self.sock.sendall(head.encode() + body)
        while b"\r\n\r\n" not in self.pending:
            self._fill()
        end = self.pending.index(b"\r\n\r\n")
        lines = bytes(self.pending[:end]).split(b"\r\n")
        del self.pending[:end + 4]
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        received = min(length, len(self.pending))
        del self.pending[:received]
        remaining = length - received
        view = memoryview(self.scratch)
        while remaining > 0:
            count = self.sock.recv_into(view, min(remaining, len(self.scratch)))
            if count == 0:
                raise OSError("closed")
            remaining -= count
        return status, length

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise OSError("closed")
        self.pending += data

    def close(self):
        self.sock.close()


def health_probe(port, seconds):
    """Starts probe.py health-loop in its own process; returns the process."""
    return subprocess.Popen(
        [sys.executable, os.path.join(BENCH, "probe.py"), "health-loop", "--port", str(port),
         "--seconds", str(seconds), "--interval", "0.01"],
        stdout=subprocess.PIPE, text=True)


def finish(process):
    out, _ = process.communicate(timeout=120)
    return json.loads(out.strip().splitlines()[-1])


def idle_health(port, seconds):
    return finish(health_probe(port, seconds))


def change_then_read(args, change, read_path):
    """`change(conn, serial)` then GET `read_path`, back to back for args.seconds, with
    /health probed from another process; the same probe first on the idle registry."""
    idle = idle_health(args.port, args.seconds / 2)
    conn = Connection(args.port)
    probe = health_probe(args.port, args.seconds)
    deadline = time.monotonic() + args.seconds
    changes = 0
    size = 0
    while time.monotonic() < deadline:
        change(conn, changes)
        changes += 1
        status, size = conn.request("GET", read_path)
        if status != 200:
            raise SystemExit(f"{read_path} answered {status}")
    loaded = finish(probe)
    conn.close()
    return {"kind": "large-state", "scenario": args.scenario, "idle": idle, "loaded": loaded,
            "changes": changes, "reads": changes, "answer_bytes": size, "rss": rss_bytes(args.pid)}


def run_services(args):
    def change(conn, serial):
        # A new service, then its removal: each moves the index and the listing.
        path = "/register" if serial % 128 < 64 else "/deregister"
        body = json.dumps({"service": f"churn-{serial % 64}", "address": "127.0.0.1:1"}).encode()
        status, _ = conn.request("POST", path, body)
        if status >= 300 and status != 404:
            raise SystemExit(f"{path} answered {status}")
    return change_then_read(args, change, "/services")


def run_service(args):
    rng = random.Random(7)

    def change(conn, serial):
        body = json.dumps({"service": args.service, "address": f"127.0.0.1:{20000 + rng.randrange(args.instances)}",
                           "status": ["UP", "OUT_OF_SERVICE"][serial % 2]}).encode()
        status, _ = conn.request("POST", "/status", body)
        if status != 200:
            raise SystemExit(f"/status answered {status}")
    return change_then_read(args, change, f"/discover/{args.service}")


def run_slow_streams(args):
    idle = idle_health(args.port, args.seconds / 2)
    rss_idle = rss_bytes(args.pid)
    streams = []
    for _ in range(args.streams):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((HOST, args.port))
        sock.sendall(f"GET /watch HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        streams.append(sock)
    conn = Connection(args.port)
    probe = health_probe(args.port, args.seconds)
    deadline = time.monotonic() + args.seconds
    changes = 0
    # Fresh addresses on every run, so that each registration is a change.
    base = random.randrange(1 << 16)
    peak = rss_bytes(args.pid)
    while time.monotonic() < deadline:
        body = json.dumps({"service": f"slow-{changes % 50}", "address": f"10.{base >> 8}.{base & 255}.1:{changes}"}).encode()
        conn.request("POST", "/register", body)
        changes += 1
        peak = max(peak, rss_bytes(args.pid))
        time.sleep(0.05)
    loaded = finish(probe)
    rss_loaded = rss_bytes(args.pid)
    for sock in streams:
        sock.close()
    conn.close()
    return {"kind": "large-state", "scenario": args.scenario, "idle": idle, "loaded": loaded, "changes": changes,
            "streams": args.streams, "rss_idle": rss_idle, "rss_loaded": rss_loaded, "rss_peak": peak}


# What a dashboard and a script ask of a large registry: the first page, a prefix, a tag no
# service has (the whole registry scanned), problems first, a page further on.
QUERIES = ["/services", "/services?limit=200", "/services?prefix=svc-1999", "/services?tag=absent&limit=200",
           "/services?order=problems&limit=200", "/services?limit=200&after=svc-150000"]


def run_services_queries(args):
    conn = Connection(args.port)
    results = []
    for path in QUERIES:
        times = []
        size = 0
        for _ in range(20):
            started = time.perf_counter()
            status, size = conn.request("GET", path)
            times.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise SystemExit(f"{path} answered {status}")
        times.sort()
        results.append({"path": path, "median_ms": round(times[len(times) // 2], 2), "max_ms": round(times[-1], 2),
                        "bytes": size})
    conn.close()
    return {"kind": "large-queries", "scenario": args.scenario, "queries": results}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("probe", choices=["services", "service", "slow-streams", "services-queries"])
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--service", default="svc-0")
    parser.add_argument("--instances", type=int, default=50_000)
    parser.add_argument("--streams", type=int, default=300)
    args = parser.parse_args()
    run = {"services": run_services, "service": run_service, "slow-streams": run_slow_streams,
           "services-queries": run_services_queries}[args.probe]
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
