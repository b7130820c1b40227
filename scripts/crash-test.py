#!/usr/bin/env python3
"""Crash test: kill the registry with SIGKILL while clients register as fast as they can,
restart it on the same data directory, and count the acknowledged registrations that are
gone.

It kills the process, not the machine: under every --fsync policy each acknowledged change was
written to the file (the kernel's page cache) before its answer, so the count must be zero, and
the script exits 1 otherwise. What a crash of the machine could cost (the last second under
everysec) is not tested here: that needs power cut from under the disk.

Usage: crash-test.py [--binary PATH] [--fsync always|everysec|never] [--clients N]
                     [--seconds S] [--rounds R]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(binary, data_dir, fsync):
    log = tempfile.NamedTemporaryFile(prefix="crash-test-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", "0", "--data-dir", data_dir, "--fsync", fsync, "--log-level", "warn",
         "--shutdown-grace", "0"],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while time.time() < deadline:
        with open(log.name) as handle:
            text = handle.read()
        match = re.search(r"Service Registry starting on port (\d+)\.\.\.", text)
        if match:
            return process, int(match.group(1)), log.name
        if process.poll() is not None:
            sys.exit(f"crash-test: the registry exited at start:\n{text}")
        time.sleep(0.01)
    process.kill()
    sys.exit("crash-test: the registry did not start within 20 s")


def client(port, prefix, acknowledged, stop):
    """Registers new instances one after another on one keep-alive connection until the
    connection dies; records each one the registry answered 201."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        number = 0
        while not stop.is_set():
            address = f"http://{prefix}-{number}"
            body = json.dumps({"service": f"crash-{number % 4}", "address": address})
            connection.request("POST", "/register", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status == 201:
                acknowledged.append(address)
            elif response.status != 503:
                print(f"crash-test: unexpected status {response.status}", file=sys.stderr)
                return
            number += 1
    except (OSError, http.client.HTTPException):
        return  # the registry was killed mid-request: that one was never acknowledged


def present(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    found = set()
    for shard in range(4):
        connection.request("GET", f"/discover/crash-{shard}?status=any")
        response = connection.getresponse()
        body = response.read()
        if response.status == 200:
            found.update(instance["address"] for instance in json.loads(body)["instances"])
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "debug", "service-registry"))
    parser.add_argument("--fsync", default="always", choices=["always", "everysec", "never"])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=1.5, help="load before each SIGKILL")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="crash-test-data-")
    acknowledged_total = []
    lost_total = 0
    try:
        for round_number in range(options.rounds):
            process, port, log = start(options.binary, data_dir, options.fsync)
            acknowledged = []
            stop = threading.Event()
            threads = [threading.Thread(target=client, args=(port, f"r{round_number}c{index}", acknowledged, stop))
                       for index in range(options.clients)]
            for thread in threads:
                thread.start()
            time.sleep(options.seconds)
            process.send_signal(signal.SIGKILL)
            process.wait()
            stop.set()
            for thread in threads:
                thread.join()
            os.unlink(log)
            acknowledged_total += acknowledged

            process, port, log = start(options.binary, data_dir, options.fsync)
            found = present(port)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
            with open(log) as handle:
                torn = "recovery_torn_tail" in handle.read()
            os.unlink(log)
            lost = [address for address in acknowledged_total if address not in found]
            lost_total = len(lost)
            print(f"crash-test round={round_number + 1} fsync={options.fsync} acknowledged={len(acknowledged)} "
                  f"acknowledged_total={len(acknowledged_total)} present={len(found)} lost={len(lost)} "
                  f"torn_tail_cut={'yes' if torn else 'no'}", flush=True)
            if lost:
                print(f"crash-test: lost, for example: {lost[:5]}", file=sys.stderr)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    if not acknowledged_total:
        sys.exit("crash-test: no registration was acknowledged; the test proved nothing")
    print(f"crash-test summary fsync={options.fsync} rounds={options.rounds} acknowledged={len(acknowledged_total)} lost={lost_total}")
    sys.exit(1 if lost_total else 0)


if __name__ == "__main__":
    main()
