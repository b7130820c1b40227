"""The Consul calls of the teaching project's consul_client.py, made with a real Consul client
library (python-consul 1.1.0 or py-consul: both install the module `consul`) against the
registry's Consul API. Run by Tests/ServerTests/LiveConsulTests.swift with the Python of the
client's own virtualenv (scripts/install-test-tools.sh).

    python scenario.py REGISTRY_PORT TARGET_PORT TARGET_PID

TARGET is the example service, an HTTP server with /health: stopped (SIGSTOP) it accepts and
never answers, so its check times out; killed, its port refuses. Prints a line per step and
`figure NAME VALUE` lines; exits non-zero at the first step that fails.
"""

import json
import os
import signal
import sys
import threading
import time
import urllib.request

import consul

registry_port, target_port, target_pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
client = consul.Consul(host="127.0.0.1", port=registry_port)
library = getattr(consul, "__version__", "?")
print(f"client: consul {library} from {os.path.dirname(consul.__file__)}")


def wait_for(seconds, condition, what):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds}s: {what}")
        time.sleep(0.05)


def passing(name):
    return client.health.service(name, passing=True)[1]


def step(text):
    print("ok:", text, flush=True)


# Register with an HTTP check against the live example service, as consul_client.py does.
check = consul.Check.http(f"http://127.0.0.1:{target_port}/health", interval="1s", timeout="500ms", deregister="3s")
assert client.agent.service.register("user-service", service_id="user-service-1", address="127.0.0.1", port=target_port,
                                     tags=["v1", "python"], check=check) is True, "register did not answer 200"
step("registered user-service-1 with an HTTP check")

services = client.agent.services()
assert services["user-service-1"]["Service"] == "user-service", services
assert services["user-service-1"]["Port"] == target_port and services["user-service-1"]["Address"] == "127.0.0.1", services
native = json.load(urllib.request.urlopen(f"http://127.0.0.1:{registry_port}/discover/user-service?status=any"))
assert native["instances"][0]["address"] == f"http://127.0.0.1:{target_port}", native
step("agent.services() and the native /discover show it")

# Critical until its first run (as Consul), then passing.
nodes = wait_for(5, lambda: passing("user-service"), "the check never passed")
assert nodes[0]["Service"]["ID"] == "user-service-1" and nodes[0]["Service"]["Tags"] == ["v1", "python"], nodes
statuses = {c["CheckID"]: c["Status"] for c in nodes[0]["Checks"]}
assert statuses["service:user-service-1"] == "passing", statuses
assert nodes[0]["Node"]["Datacenter"] == "dc1", nodes[0]["Node"]
assert client.health.service("user-service", passing=True, tag="v1")[1], "tag filter lost the instance"
assert client.health.service("user-service", passing=True, tag="v9")[1] == [], "tag filter kept it"
_, catalog = client.catalog.service("user-service")
assert catalog[0]["ServicePort"] == target_port and catalog[0]["ServiceAddress"] == "127.0.0.1", catalog
step("passing after the first run; tag filter; catalog.service")

# The example service stops answering: critical, gone from passing; back when it answers.
os.kill(target_pid, signal.SIGSTOP)
try:
    wait_for(5, lambda: not passing("user-service"), "still passing while the target is frozen")
    _, nodes = client.health.service("user-service")
    check = next(c for c in nodes[0]["Checks"] if c["CheckID"] == "service:user-service-1")
    assert check["Status"] == "critical", check
    assert check["Output"], "a critical check says why"
    step("critical and gone from passing=True while the target is frozen: " + check["Output"][:80])
finally:
    os.kill(target_pid, signal.SIGCONT)
wait_for(5, lambda: passing("user-service"), "did not come back after the target answered again")
step("passing again once the target answers")

# A blocking query returns on a change: well within 100 ms of it.
index, _ = client.health.service("user-service")
changed_at = []


def change():
    time.sleep(0.5)
    changed_at.append(time.monotonic())
    client.agent.service.register("user-service", service_id="user-service-2", address="127.0.0.2", port=9,
                                  check=consul.Check.ttl("30s"))


thread = threading.Thread(target=change)
thread.start()
started = time.monotonic()
new_index, nodes = client.health.service("user-service", index=index, wait="30s")
returned = time.monotonic()
thread.join()
assert int(new_index) > int(index), (index, new_index)
assert len(nodes) == 2, nodes
latency = (returned - changed_at[0]) * 1000
print(f"figure blocking_return_after_change_ms {latency:.1f}")
# The change itself is a register call the other thread made: its answer and ours race; the
# time from sending it to our return bounds the delay.
assert latency < 100, f"the blocking query returned {latency:.1f} ms after the change"
assert returned - started >= 0.45, "returned before anything changed"
step(f"a blocking health.service(index, wait='30s') returned {latency:.1f} ms after a change")

# Nothing changes: it returns at the wait (plus Consul's jitter of at most wait/16).
index, _ = client.health.service("user-service")
started = time.monotonic()
same_index, _ = client.health.service("user-service", index=index, wait="2s")
held = time.monotonic() - started
print(f"figure blocking_unchanged_held_s {held:.2f}")
assert same_index == index, (index, same_index)
assert 1.95 <= held <= 2.0 + 2.0 / 16 + 0.5, f"held {held:.2f}s for wait=2s"
step(f"with nothing changing it returned at the wait ({held:.2f}s for 2s)")

# TTL checks: critical until reported, kept alive with ttl_pass, critical once reports stop.
assert client.agent.service.register("ttl-service", service_id="ttl-1", address="127.0.0.1", port=9,
                                     check=consul.Check.ttl("2s")) is True
assert passing("ttl-service") == [], "a TTL check starts critical"
assert client.agent.check.ttl_pass("service:ttl-1", notes="all good") is True
wait_for(2, lambda: passing("ttl-service"), "ttl_pass did not make it passing")
for _ in range(8):
    time.sleep(0.5)
    assert client.agent.check.ttl_pass("service:ttl-1") is True
    assert passing("ttl-service"), "went critical while kept alive with ttl_pass"
step("a TTL check kept alive with agent.check.ttl_pass for 4 s (TTL 2 s)")
assert client.agent.check.ttl_warn("service:ttl-1", notes="slow") is True
_, nodes = client.health.service("ttl-service")
check = next(c for c in nodes[0]["Checks"] if c["CheckID"] == "service:ttl-1")
assert check["Status"] == "warning" and passing("ttl-service") == [], check
wait_for(4, lambda: next(c for c in client.health.service("ttl-service")[1][0]["Checks"]
                         if c["CheckID"] == "service:ttl-1")["Status"] == "critical", "the TTL ran out and it stayed warning")
step("ttl_warn, then critical once no report came for the TTL")

# A call that names nothing the registry holds fails, as with Consul.
assert client.agent.service.deregister("no-such-service-id") is False, "deregistering an unknown id must not succeed"
try:
    refused = client.agent.check.ttl_pass("no-such-check") is False
    step("unknown check refused: False")
except consul.ConsulException as problem:
    refused = True
    step(f"unknown check refused: {type(problem).__name__}: {problem}")
assert refused, "ttl_pass of an unknown check succeeded"
index, data = client.kv.get("no-such-key")
assert data is None and int(index) > 0, (index, data)
step("an endpoint the registry does not serve answers 404 with X-Consul-Index (kv.get gives None)")

# The target dies: refused, critical, deregistered after DeregisterCriticalServiceAfter (3 s).
os.kill(target_pid, signal.SIGKILL)
killed = time.monotonic()
wait_for(12, lambda: "user-service-1" not in client.agent.services(), "not deregistered after DeregisterCriticalServiceAfter")
print(f"figure deregistered_after_kill_s {time.monotonic() - killed:.1f}")
step("deregistered after DeregisterCriticalServiceAfter once the target died")

assert client.agent.service.deregister("user-service-2") is True
assert client.agent.service.deregister("ttl-1") is True
assert client.catalog.services()[1].get("ttl-service") is None
step("deregistered the rest")
print("done")
