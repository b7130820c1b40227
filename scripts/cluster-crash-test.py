#!/usr/bin/env python3
"""Cluster crash test: three etcd members and three registry replicas on loopback; clients
register and heartbeat through every replica (each client knows all three and moves on
when one fails, as registryctl does); every round SIGKILLs one process (the leader, a
follower or an etcd member, in turn), waits, and starts it again. At the end it counts:

- acknowledged registrations that are gone (must be 0);
- instances that kept heartbeating and expired anyway (must be 0);
- the time from each leader kill to the next leader (printed).

Exits 1 when anything was lost. `make crash-test-cluster` runs it with its defaults; the
test suite runs a short form of the same failures (Tests/ServerTests/ClusterTests.swift).

Usage: cluster-crash-test.py [--binary PATH] [--rounds N] [--clients N] [--pause S]
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count):
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def request(port, method, path, body=None, timeout=5):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = json.dumps(body) if body is not None else None
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"} if payload else {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Cluster:
    def __init__(self, binary, directory):
        self.binary = binary
        self.directory = directory
        ports = free_ports(9)
        self.client_ports, self.peer_ports, self.registry_ports = ports[0:3], ports[3:6], ports[6:9]
        self.endpoints = ",".join(f"http://127.0.0.1:{p}" for p in self.client_ports)
        self.etcd = [None] * 3
        self.registries = [None] * 3

    def start_etcd(self, i):
        initial = ",".join(f"m{j}=http://127.0.0.1:{self.peer_ports[j]}" for j in range(3))
        log = open(os.path.join(self.directory, f"m{i}.log"), "a")
        self.etcd[i] = subprocess.Popen([
            "etcd", "--name", f"m{i}", "--data-dir", os.path.join(self.directory, f"m{i}"),
            "--listen-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
            "--advertise-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
            "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
            "--initial-cluster", initial, "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT)

    def start_registry(self, i):
        log = open(os.path.join(self.directory, f"r{i}.log"), "a")
        port = self.registry_ports[i]
        self.registries[i] = subprocess.Popen([
            self.binary, "--host", "127.0.0.1", "--port", str(port), "--etcd", self.endpoints, "--replica-name", f"r{i}",
            "--advertise-url", f"http://127.0.0.1:{port}", "--heartbeat-timeout", "5", "--lease-ttl", "3",
            "--shutdown-grace", "0", "--log-level", "info"], stdout=log, stderr=subprocess.STDOUT)
        wait(lambda: request(port, "GET", "/ready", timeout=1)[0] == 200, 30, f"replica r{i} ready")

    def kill(self, process):
        if process and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def leader(self):
        for i, port in enumerate(self.registry_ports):
            try:
                status, body = request(port, "GET", "/cluster", timeout=1)
                if status == 200 and json.loads(body)["replica"]["role"] == "leader":
                    return i
            except (OSError, ValueError, KeyError):
                pass
        return None

    def stop(self):
        for process in self.registries + self.etcd:
            self.kill(process)

    def logs(self):
        text = ""
        for i in range(3):
            with open(os.path.join(self.directory, f"r{i}.log")) as handle:
                text += handle.read()
        return text


def wait(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"cluster-crash-test: timed out waiting for {what}")


class Client(threading.Thread):
    """Keeps BEATING instances alive with a heartbeat each second (they expire 5 s after
    their last one), and registers new, long-lived instances as fast as it can between."""

    BEATING = 25

    def __init__(self, number, ports, stop):
        super().__init__(daemon=True)
        self.number, self.ports, self.stop = number, ports, stop
        self.acknowledged, self.beating, self.failures, self.sent = [], [], 0, 0
        self.statuses = {}

    def call(self, path, body):
        for attempt in range(3 * len(self.ports)):
            port = self.ports[(self.sent + attempt) % len(self.ports)]
            try:
                status, _ = request(port, "POST", path, body, timeout=5)
                if status != 503:
                    return status
            except OSError:
                pass
            time.sleep(0.05)
        return None

    def run(self):
        for n in range(self.BEATING):
            address = f"beat-{self.number}-{n}:80"
            if self.call("/register", {"service": "beating", "address": address}) in (200, 201):
                self.beating.append(address)
        last_beat = time.monotonic()
        while not self.stop.is_set():
            address = f"c{self.number}-{self.sent}:80"
            self.sent += 1
            # 200: a retry on another replica of a registration the first committed before it died.
            status = self.call("/register", {"service": "crash", "address": address, "ttl_seconds": 3600})
            if status in (200, 201):
                self.acknowledged.append(address)
            else:
                self.failures += 1
                self.statuses[status] = self.statuses.get(status, 0) + 1
            if time.monotonic() - last_beat >= 1:
                last_beat = time.monotonic()
                for known in self.beating:
                    status = self.call("/heartbeat", {"service": "beating", "address": known})
                    if status != 200:
                        self.failures += 1
                        self.statuses[status] = self.statuses.get(status, 0) + 1
            time.sleep(0.01)


def merged_statuses(clients):
    merged = {}
    for client in clients:
        for status, count in client.statuses.items():
            merged[str(status)] = merged.get(str(status), 0) + count
    return merged


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/service-registry"))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pause", type=float, default=4)
    args = parser.parse_args()
    if not shutil.which("etcd"):
        subprocess.run(["bash", os.path.join(ROOT, "scripts/apt-install.sh"), "etcd-server"], check=True)
    directory = tempfile.mkdtemp(prefix="cluster-crash-")
    cluster = Cluster(args.binary, directory)
    try:
        for i in range(3):
            cluster.start_etcd(i)
        for i in range(3):
            wait(lambda i=i: b'"health":"true"' in request(cluster.client_ports[i], "GET", "/health", timeout=1)[1], 30, f"etcd m{i}")
        for i in range(3):
            cluster.start_registry(i)
        wait(lambda: cluster.leader() is not None, 20, "a leader")
        stop = threading.Event()
        clients = [Client(n, cluster.registry_ports, stop) for n in range(args.clients)]
        for client in clients:
            client.start()
        takeovers = []
        kinds = ["leader", "follower", "etcd"]
        for round_number in range(args.rounds):
            time.sleep(args.pause)
            kind = kinds[round_number % 3]
            if kind == "etcd":
                victim = random.randrange(3)
                cluster.kill(cluster.etcd[victim])
                print(f"round {round_number + 1}: killed etcd member m{victim}", flush=True)
                time.sleep(args.pause)
                cluster.start_etcd(victim)
                continue
            leader = cluster.leader()
            if leader is None:
                wait(lambda: cluster.leader() is not None, 20, "a leader")
                leader = cluster.leader()
            victim = leader if kind == "leader" else (leader + 1 + random.randrange(2)) % 3
            killed_at = time.monotonic()
            cluster.kill(cluster.registries[victim])
            print(f"round {round_number + 1}: killed the {kind} r{victim}", flush=True)
            if kind == "leader":
                wait(lambda: cluster.leader() not in (None, victim), 20, "a new leader")
                takeovers.append(time.monotonic() - killed_at)
                print(f"  new leader r{cluster.leader()} after {takeovers[-1]:.2f} s", flush=True)
            time.sleep(args.pause)
            cluster.start_registry(victim)
        stop.set()
        for client in clients:
            client.join(30)
        acknowledged = [a for client in clients for a in client.acknowledged]
        status, body = request(cluster.registry_ports[0], "GET", "/discover/crash?status=any")
        present = {i["address"] for i in json.loads(body).get("instances", [])}
        lost = [a for a in acknowledged if a not in present]
        expired = re.findall(r"expired service=beating id=(\S+)", cluster.logs())
        status, body = request(cluster.registry_ports[0], "GET", "/discover/beating")
        beating = {i["address"] for i in json.loads(body).get("instances", [])}
        expired += [a for client in clients for a in client.beating if a not in beating]
        print(f"acknowledged registrations: {len(acknowledged)}, lost: {len(lost)}; heartbeating instances: "
              f"{sum(len(c.beating) for c in clients)}, expired: {len(expired)}; requests that failed on every replica: "
              f"{sum(c.failures for c in clients)} {merged_statuses(clients)}")
        if takeovers:
            ordered = sorted(takeovers)
            print(f"leader kills: {len(takeovers)}, new leader after median {ordered[len(ordered) // 2]:.2f} s, "
                  f"max {ordered[-1]:.2f} s (lease TTL 3 s)")
        if lost or expired:
            print(f"LOST: {lost[:20]} EXPIRED: {expired[:20]}")
            return 1
        return 0
    finally:
        cluster.stop()
        if os.environ.get("KEEP_CLUSTER_LOGS"):
            print(f"logs kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
