#!/usr/bin/env python3
"""Fill a server with instances, fast: HTTP/1.1 pipelining over one connection.

One thread writes every request back to back while the main thread counts the
status lines coming back, so the server, not a client round trip, sets the
pace (a million registrations take seconds, not minutes).  Both libevent's
evhttp and Go's net/http (etcd's gateway) answer pipelined requests in order.

Names match bench/lua/common.lua: service i is "svc-i", its instance j has
address "127.0.0.1:(20000 + j)".  These are data only; nothing connects to them.

    populate.py registry --port P --services N --instances K
    populate.py etcd-kv --port P --keyspace /discover-3 --services N --instances K
    populate.py etcd-leases --port P --first-id ID --count N --ttl SECONDS
    populate.py synthetic-body discover K | heartbeat | register

Each populating command prints one JSON line ({"requests", "ok", "seconds",
"rps"}) and exits non-zero unless every answer was a 2xx.
"""

import argparse
import base64
import json
import socket
import sys
import threading
import time

HOST = "127.0.0.1"
SEND_BATCH = 512
# Requests sent but not yet answered, at most.  Enough to keep the server busy
# between reads, small enough that "last request sent" and "last request
# handled" stay milliseconds apart (mass-expiry relies on that), and the
# socket buffers never hold megabytes of backlog.
MAX_IN_FLIGHT = 2048
STATUS_LINE = b"HTTP/1.1 "
SUCCESS_LINE = b"HTTP/1.1 2"


def service_name(i):
    return f"svc-{i}"


def instance_address(j):
    return f"127.0.0.1:{20000 + j}"


def post(port, path, body):
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


class PipelineResult:
    def __init__(self, requests, ok, started, last_sent, finished):
        self.requests = requests
        self.ok = ok
        self.started = started
        # time.monotonic() when the last request had been handed to the kernel
        # and when its answer had been read: the server handled the last
        # request between the two (mass-expiry bounds the deadline with them).
        self.last_sent = last_sent
        self.finished = finished

    def as_json(self):
        seconds = self.finished - self.started
        return json.dumps({
            "requests": self.requests,
            "ok": self.ok,
            "seconds": round(seconds, 3),
            "rps": round(self.requests / seconds) if seconds > 0 else None,
        })


def pipeline(port, requests, total, timeout_seconds):
    """Sends `total` requests from the iterable `requests` on one connection and
    waits for `total` answers.  Returns a PipelineResult; raises on a closed
    connection, a send error, or when `timeout_seconds` pass first."""
    started = time.monotonic()
    deadline = started + timeout_seconds
    sock = socket.create_connection((HOST, port), timeout=timeout_seconds)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    send_errors = []
    last_sent = []
    window = threading.Semaphore(MAX_IN_FLIGHT)

    def send_batch(batch):
        for _ in batch:
            if not window.acquire(timeout=timeout_seconds):
                raise TimeoutError("no answers while the window was full")
        sock.sendall(b"".join(batch))
        batch.clear()

    def send_all():
        try:
            batch = []
            for request in requests:
                batch.append(request)
                if len(batch) == SEND_BATCH:
                    send_batch(batch)
            if batch:
                send_batch(batch)
            last_sent.append(time.monotonic())
        except (OSError, TimeoutError) as error:
            send_errors.append(error)

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    answered = ok = 0
    # Keep a tail from the previous read so a status line split across two
    # reads is still seen; lines wholly inside the tail were already counted.
    tail = b""
    try:
        while answered < total:
            if send_errors:
                raise send_errors[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{answered} of {total} answers after {timeout_seconds} s")
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError(f"server closed after {answered} of {total} answers")
            seen = tail + data
            new_answers = seen.count(STATUS_LINE) - tail.count(STATUS_LINE)
            answered += new_answers
            ok += seen.count(SUCCESS_LINE) - tail.count(SUCCESS_LINE)
            tail = seen[-16:]
            if new_answers:
                window.release(new_answers)
        finished = time.monotonic()
        sender.join(timeout=1)
        return PipelineResult(total, ok, started, last_sent[0] if last_sent else finished, finished)
    finally:
        sock.close()
        sender.join(timeout=1)


def registry_requests(port, services, instances):
    for i in range(services):
        service = service_name(i)
        for j in range(instances):
            yield post(port, "/register", {"service": service, "address": instance_address(j)})


def b64(text):
    return base64.b64encode(text.encode()).decode()


def etcd_kv_requests(port, api, keyspace, services, instances):
    for i in range(services):
        service = service_name(i)
        for j in range(instances):
            address = instance_address(j)
            yield post(port, f"{api}/kv/put", {
                "key": b64(f"{keyspace}/{service}/{address}"),
                "value": b64(json.dumps({"address": address})),
            })


def etcd_lease_requests(port, api, first_id, count, ttl):
    # Choosing the IDs ourselves means the keepalive script knows them without
    # parsing 10,000 answers.
    for lease_id in range(first_id, first_id + count):
        yield post(port, f"{api}/lease/grant", {"ID": lease_id, "TTL": ttl})


def synthetic_body(kind, count):
    """The registry's answer shapes, for --baselines-only runs that have no
    registry to capture real bodies from."""
    if kind == "discover":
        instances = [{"address": instance_address(j), "uptime_seconds": 12.34} for j in range(count)]
        return {"service": service_name(0), "instances": instances, "count": count}
    if kind == "heartbeat":
        return {"status": "ok", "message": "Heartbeat updated"}
    if kind == "register":
        return {"status": "registered",
                "message": f"Service {service_name(0)} registered at {instance_address(0)}"}
    raise ValueError(kind)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_common(p):
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--timeout", type=float, default=300, help="seconds for the whole run")

    p = sub.add_parser("registry")
    add_common(p)
    p.add_argument("--services", type=int, required=True)
    p.add_argument("--instances", type=int, required=True)

    p = sub.add_parser("etcd-kv")
    add_common(p)
    p.add_argument("--api", default="/v3")
    p.add_argument("--keyspace", required=True)
    p.add_argument("--services", type=int, required=True)
    p.add_argument("--instances", type=int, required=True)

    p = sub.add_parser("etcd-leases")
    add_common(p)
    p.add_argument("--api", default="/v3")
    p.add_argument("--first-id", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--ttl", type=int, default=3600)

    p = sub.add_parser("synthetic-body")
    p.add_argument("kind", choices=["discover", "heartbeat", "register"])
    p.add_argument("count", type=int, nargs="?", default=3)

    args = parser.parse_args()
    if args.command == "synthetic-body":
        sys.stdout.write(json.dumps(synthetic_body(args.kind, args.count), separators=(",", ":")))
        return 0
    if args.command == "registry":
        total = args.services * args.instances
        requests = registry_requests(args.port, args.services, args.instances)
    elif args.command == "etcd-kv":
        total = args.services * args.instances
        requests = etcd_kv_requests(args.port, args.api, args.keyspace, args.services, args.instances)
    else:
        total = args.count
        requests = etcd_lease_requests(args.port, args.api, args.first_id, args.count, args.ttl)

    result = pipeline(args.port, requests, total, args.timeout)
    print(result.as_json())
    if result.ok != result.requests:
        print(f"populate: only {result.ok} of {result.requests} answers were 2xx", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
