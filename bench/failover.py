#!/usr/bin/env python3
"""The time from a cluster leader's SIGKILL to the first heartbeat the new leader accepts.

    failover.py --kill PID --ports P1,P2[,...] --service S --address A [--timeout 30]

Kills PID (the leader) with SIGKILL, then asks each surviving replica (PORTS) for
/cluster until one says it leads, then sends it POST /heartbeat for an instance that
exists until one is answered 200. Prints one JSON object: leader_ms (SIGKILL to a
replica saying it leads), heartbeat_ms (SIGKILL to the new leader's first 200), leader
(its port).
"""

import argparse
import http.client
import json
import os
import signal
import sys
import time


def get(port, path, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        if body is None:
            connection.request("GET", path)
        else:
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kill", type=int, required=True)
    parser.add_argument("--ports", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    ports = [int(p) for p in args.ports.split(",")]
    started = time.monotonic()
    os.kill(args.kill, signal.SIGKILL)
    deadline = started + args.timeout
    leader, leader_ms = None, None
    while leader is None and time.monotonic() < deadline:
        for port in ports:
            try:
                status, body = get(port, "/cluster")
                if status == 200 and json.loads(body)["replica"]["role"] == "leader":
                    leader, leader_ms = port, (time.monotonic() - started) * 1000
                    break
            except (OSError, ValueError, KeyError):
                pass
        else:
            time.sleep(0.01)
    if leader is None:
        print(json.dumps({"leader_ms": None, "heartbeat_ms": None}))
        return 1
    body = json.dumps({"service": args.service, "address": args.address})
    while time.monotonic() < deadline:
        try:
            status, _ = get(leader, "/heartbeat", body)
            if status == 200:
                print(json.dumps({"leader_ms": round(leader_ms, 1), "heartbeat_ms": round((time.monotonic() - started) * 1000, 1),
                                  "leader": leader}))
                return 0
        except OSError:
            pass
        time.sleep(0.005)
    print(json.dumps({"leader_ms": round(leader_ms, 1), "heartbeat_ms": None, "leader": leader}))
    return 1


if __name__ == "__main__":
    sys.exit(main())
