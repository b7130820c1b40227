#!/usr/bin/env python3
"""Open dashboards, as load for the benchmark: each makes the requests the page at /ui makes
while it is open (Sources/Server/Frontends/Dashboard/DashboardScript.swift), without a
browser (50 Chromium tabs would take the client CPU from wrk):

- half of them on the services view: one stream, `GET /watch?limit=200` (the page asks
  `/access` and `/cluster` once when it opens, and `/cluster` again only in cluster mode);
- half on a service's view: `GET /watch/SERVICE?status=any&limit=500`, and
  `GET /discover/SERVICE?status=any&limit=500`
  every 5 s on a keep-alive connection of its own (the page's refresh of heartbeat times);

and, with --churn, a status change of one instance of SERVICE every --interval seconds (so
that every stream gets events). Runs until SIGTERM, then writes what it received to --report.

    dashboards.py --port PORT --count 50 --service svc-0 --churn --report FILE
"""

import argparse
import asyncio
import json
import signal
import sys

POLL_SECONDS = 5


async def request(reader, writer, method, path, body=None):
    data = b"" if body is None else json.dumps(body).encode()
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return int(head.split(b" ")[1])


async def stream(port, path, stats, ready):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    seen = False
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            stats["closed"] += 1
            return
        stats["bytes"] += len(chunk)
        events = chunk.count(b"event: state")
        stats["events"] += events
        if events and not seen:
            seen = True
            ready.release()


async def poll(port, path, stats):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while True:
        await asyncio.sleep(POLL_SECONDS)
        status = await request(reader, writer, "GET", path)
        stats["polls"] += 1
        stats["poll_errors"] += status != 200


async def churn(port, service, interval, stats):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    instance = {"service": service, "id": "dashboard-churn", "address": "http://127.0.0.1:9", "ttl_seconds": 3600}
    await request(reader, writer, "POST", "/register", instance)
    status = "UP"
    while True:
        await asyncio.sleep(interval)
        status = "OUT_OF_SERVICE" if status == "UP" else "UP"
        code = await request(reader, writer, "POST", "/status", {"service": service, "id": "dashboard-churn", "status": status})
        stats["changes"] += 1
        stats["change_errors"] += code != 200


async def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--service", default="svc-0")
    parser.add_argument("--churn", action="store_true")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    stats = {"dashboards": args.count, "events": 0, "bytes": 0, "closed": 0, "polls": 0, "poll_errors": 0,
             "changes": 0, "change_errors": 0}
    ready = asyncio.Semaphore(0)
    tasks = []
    for number in range(args.count):
        if number % 2 == 0:
            tasks.append(asyncio.create_task(stream(args.port, "/watch?limit=200", stats, ready)))
        else:
            tasks.append(asyncio.create_task(stream(args.port, f"/watch/{args.service}?status=any&limit=500", stats, ready)))
            tasks.append(asyncio.create_task(poll(args.port, f"/discover/{args.service}?status=any&limit=500", stats)))
    for _ in range(args.count):
        await asyncio.wait_for(ready.acquire(), 10)
    if args.churn:
        tasks.append(asyncio.create_task(churn(args.port, args.service, args.interval, stats)))
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()
    with open(args.report, "w") as report:
        json.dump(stats, report)
    print(f"summary: {stats['events']} events ({stats['bytes'] / 1e6:.1f} MB), {stats['polls']} refreshes "
          f"({stats['poll_errors']} failed), {stats['closed']} streams closed, {stats['changes']} changes", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except asyncio.TimeoutError:
        print("dashboards: a stream sent no first event within 10 s", file=sys.stderr)
        sys.exit(1)
