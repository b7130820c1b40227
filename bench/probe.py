#!/usr/bin/env python3
"""Small timing probes for bench/run.sh (Python 3 standard library only).

    probe.py free-ports N              print N distinct free loopback ports
    probe.py wait-http --port P [--path /health] [--timeout S] [--pid PID]
                                       wait until GET answers 200
    probe.py startup --port P [--runs N] -- COMMAND...
                                       time from spawn to the first 200 on /health
    probe.py health-loop --port P --seconds S
                                       GET /health back to back, report latencies
    probe.py mass-expiry --port P --services N --instances K --heartbeat-timeout S
                                       register N*K instances, time their expiry
    probe.py dns-ready --port P --name NAME --count K
                                       wait until an A query for NAME answers K records

Every loop here is bounded both in iterations and in wall-clock time.
Results are single JSON lines on stdout.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

import populate

HOST = "127.0.0.1"

# Set by SIGTERM in health-loop: finish the current request, then report.
stop_requested = False


def free_ports(count):
    # Hold every socket open until all are bound, so the ports are distinct.
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def get_status(port, path, timeout):
    """One GET on a fresh connection.  Returns the status code, or None when
    the server refuses or fails to answer."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def process_running(pid):
    """False once `pid` has exited, including as a zombie not yet reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_http(port, path, timeout, pid=None):
    """True once GET `path` answers 200; False after `timeout` seconds, or as
    soon as the server process `pid` (when given) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get_status(port, path, timeout=1.0) == 200:
            return True
        if pid is not None and not process_running(pid):
            return False
        time.sleep(0.02)
    return False


def time_startup(command, port, timeout):
    """Spawns `command` pinned to CPU 0 (like every server under test) and polls
    connect + GET /health as fast as it can.  Returns milliseconds from just
    before the spawn to the first 200, or None if none came within `timeout`.
    Always stops the process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    try:
        deadline = started + timeout
        while time.perf_counter() < deadline and process.poll() is None:
            if get_status(port, "/health", timeout=1.0) == 200:
                return (time.perf_counter() - started) * 1000
            # Refused: not listening yet.  Spin without sleeping so the probe
            # adds no delay of its own; the process runs on the other core.
        return None
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def health_loop(port, seconds, interval):
    """GET /health on one keep-alive connection until `seconds` pass, at most
    one request per `interval` seconds.  Returns latency figures in ms."""
    latencies = []
    failures = 0
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    deadline = time.monotonic() + seconds
    max_requests = int(seconds / interval) + 1
    while (not stop_requested and time.monotonic() < deadline
           and len(latencies) < max_requests):
        t0 = time.perf_counter()
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                failures += 1
        except (OSError, http.client.HTTPException):
            failures += 1
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
        latencies.append((time.perf_counter() - t0) * 1000)
        pause = interval - (time.perf_counter() - t0)
        if pause > 0:
            time.sleep(pause)
    conn.close()
    latencies.sort()
    return {
        "probes": len(latencies),
        "failures": failures,
        "max_ms": round(latencies[-1], 3) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 3) if latencies else None,
        "median_ms": round(statistics.median(latencies), 3) if latencies else None,
    }


def total_instances(port):
    """The number of instances the registry still holds according to
    GET /services, or None when the answer is unusable.  The registry answers
    {"services": {"S": {"total_instances": N, "active_instances": M}, ...},
    "total_services": K}; summing total_instances counts expired instances
    not yet removed too, which is the strict reading of "gone".  Falls back on
    total_services for answers without per-service counts."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/services")
        response = conn.getresponse()
        body = json.loads(response.read() or b"null")
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
    if not isinstance(body, dict):
        return None
    services = body.get("services")
    if isinstance(services, dict) and all(
            isinstance(v, dict) and isinstance(v.get("total_instances"), int) for v in services.values()):
        return sum(v["total_instances"] for v in services.values())
    if isinstance(body.get("total_services"), int):
        return body["total_services"]
    return None


def mass_expiry(port, services, instances, heartbeat_timeout, grace):
    """Registers services*instances instances as fast as possible, so their
    deadlines fall within the populate time of each other, then polls
    GET /services every 10 ms until none is left, while a separate process
    times GET /health.

    The server handled the last registration after the client had sent it and
    before its answer arrived, so the latest deadline lies in
    [last_sent + timeout, last_answer + timeout].  Lateness is measured from
    the lower end: it over-states how late the registry emptied (never
    flattering it), and a negative value proves an instance expired before its
    deadline.  Lateness is null if the registry never emptied within `grace`
    seconds; deadline_uncertainty_s is the width of that interval."""
    total = services * instances
    result = populate.pipeline(port, populate.registry_requests(port, services, instances),
                               total, timeout_seconds=120)
    if result.ok != total:
        raise RuntimeError(f"only {result.ok} of {total} registrations succeeded")
    deadline = result.last_sent + heartbeat_timeout
    watch_seconds = deadline + grace - time.monotonic()

    # A separate process, so the poller below never holds the probe's GIL.
    prober = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "health-loop", "--port", str(port),
         "--seconds", f"{watch_seconds:.3f}"],
        stdout=subprocess.PIPE, text=True)

    emptied_at = None
    polls = 0
    max_polls = int(watch_seconds / 0.01) + 1
    while time.monotonic() < deadline + grace and polls < max_polls:
        polls += 1
        if total_instances(port) == 0:
            emptied_at = time.monotonic()
            break
        time.sleep(0.01)
    # Keep probing briefly past the moment the registry emptied: the tail of
    # the expiry work may still be running.
    time.sleep(0.2)
    prober.send_signal(signal.SIGTERM)
    try:
        health_out, _ = prober.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        prober.kill()
        health_out, _ = prober.communicate()
    health = json.loads(health_out.strip().splitlines()[-1]) if health_out.strip() else {}
    return {
        "kind": "expiry",
        "grace_s": grace,
        "instances": total,
        "populate_seconds": round(result.finished - result.started, 3),
        "deadline_uncertainty_s": round(result.finished - result.last_sent, 3),
        "heartbeat_timeout_s": heartbeat_timeout,
        "lateness_s": round(emptied_at - deadline, 3) if emptied_at is not None else None,
        "health": health,
    }


def dns_answer_count(port, name, timeout=0.5):
    """The number of answer records of an A query for `name` (UDP), or None."""
    import socket
    import struct
    query = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        query += bytes([len(label)]) + label.encode()
    query += b"\x00" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(timeout)
        try:
            udp.sendto(query, ("127.0.0.1", port))
            reply, _ = udp.recvfrom(65535)
        except OSError:
            return None
    if len(reply) < 12 or reply[:2] != query[:2]:
        return None
    return struct.unpack(">H", reply[6:8])[0]


def wait_dns(port, name, count, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dns_answer_count(port, name) == count:
            return True
        time.sleep(0.1)
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("free-ports")
    p.add_argument("count", type=int)

    p = sub.add_parser("wait-http")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/health")
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--pid", type=int, help="give up as soon as this process exits")

    p = sub.add_parser("startup")
    p.add_argument("--server", required=True, help="label for the result line")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("server_command", nargs=argparse.REMAINDER)

    p = sub.add_parser("health-loop")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--interval", type=float, default=0.001)

    p = sub.add_parser("mass-expiry")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--services", type=int, required=True)
    p.add_argument("--instances", type=int, required=True)
    p.add_argument("--heartbeat-timeout", type=float, required=True)
    p.add_argument("--grace", type=float, default=5, help="seconds to wait past the deadline")

    p = sub.add_parser("dns-ready")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--count", type=int, required=True)

    args = parser.parse_args()
    if args.command == "dns-ready":
        return 0 if wait_dns(args.port, args.name, args.count) else 1
    if args.command == "free-ports":
        print(" ".join(str(p) for p in free_ports(args.count)))
    elif args.command == "wait-http":
        return 0 if wait_http(args.port, args.path, args.timeout, args.pid) else 1
    elif args.command == "startup":
        command = args.server_command[1:] if args.server_command[:1] == ["--"] else args.server_command
        runs = [time_startup(command, args.port, args.timeout) for _ in range(args.runs)]
        answered = [r for r in runs if r is not None]
        print(json.dumps({
            "kind": "startup",
            "server": args.server,
            "runs_ms": [round(r, 2) if r is not None else None for r in runs],
            "median_ms": round(statistics.median(answered), 2) if answered else None,
            "max_ms": round(max(answered), 2) if len(answered) == len(runs) else None,
        }))
        return 0 if len(answered) == len(runs) else 1
    elif args.command == "health-loop":
        def request_stop(signum, frame):
            global stop_requested
            stop_requested = True
        # SIGTERM from the parent ends the loop early and still reports.
        signal.signal(signal.SIGTERM, request_stop)
        print(json.dumps(health_loop(args.port, args.seconds, args.interval)))
    elif args.command == "mass-expiry":
        print(json.dumps(mass_expiry(args.port, args.services, args.instances,
                                     args.heartbeat_timeout, args.grace)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
