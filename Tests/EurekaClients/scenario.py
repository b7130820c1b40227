"""py-eureka-client (PyPI), a real Eureka client, against the registry's Eureka API: it
registers, renews, discovers another app, re-registers after a 404 and deregisters. Run by
Tests/ServerTests/LiveEurekaTests.swift with the Python of .build/eureka-clients:

    python scenario.py REGISTRY_PORT [TOKEN]

The test registered the app "other" natively (http://127.0.0.1:9101) before. With TOKEN the
client sends it as HTTP Basic credentials (the token as the password). Prints a line per
step; exits non-zero at the first that fails. Ends with os._exit right after stop(): the
client's heartbeat thread would otherwise register it again (a known bug of 0.13.3).
"""

import json
import os
import sys
import time
import urllib.request

from py_eureka_client import eureka_client

port = int(sys.argv[1])
token = sys.argv[2] if len(sys.argv) > 2 else None
native = f"http://127.0.0.1:{port}"
headers = {"Authorization": f"Bearer {token}"} if token else {}


def call(method, path, body=None):
    request = urllib.request.Request(native + path, method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None


def wait_for(seconds, condition, what):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds}s: {what}")
        time.sleep(0.1)


def step(text):
    print("ok:", text, flush=True)


def native_instances(service):
    status, body = call("GET", f"/discover/{service}?status=any")
    return body["instances"] if status == 200 else []


def discovered(app):
    applications = eureka_client.get_client().applications
    if applications is None:
        return []
    return [(i.instanceId, i.ipAddr, i.port.port, i.status) for i in applications.get_application(app).up_instances]


server = f"http://{'user:' + token + '@' if token else ''}127.0.0.1:{port}/eureka/"
eureka_client.init(eureka_server=server, app_name="my-py", instance_host="127.0.0.1", instance_ip="127.0.0.1",
                   instance_port=9100, renewal_interval_in_secs=1, duration_in_secs=3, metadata={"team": "pay"})
instance_id = "127.0.0.1:my-py:9100"
listed = wait_for(3, lambda: native_instances("my-py"), "the registration is not in /discover/my-py")
assert listed[0]["id"] == instance_id and listed[0]["address"] == "http://127.0.0.1:9100", listed
assert listed[0]["ttl_seconds"] == 3 and listed[0]["metadata"].get("team") == "pay", listed
step(f"registered: {listed[0]['address']} with TTL {listed[0]['ttl_seconds']} s")

others = wait_for(5, lambda: discovered("OTHER"), "the client never discovered the native app 'other'")
assert others[0][1:] == ("127.0.0.1", 9101, "UP"), others
step(f"discovered the native app OTHER: {others}")

# Renewals keep it past its lease's duration (3 s).
time.sleep(4.5)
listed = native_instances("my-py")
assert listed and listed[0]["status"] == "UP", "the lease ran out although the client renews"
step("renewed past its 3 s lease")

# Deregistered behind its back: its next renewal is a 404, and it registers again at once.
assert call("POST", "/deregister", {"service": "my-py", "id": instance_id})[0] == 200
gone = time.monotonic()
wait_for(5, lambda: native_instances("my-py"), "the client did not register again after its renewal's 404")
step(f"registered again {time.monotonic() - gone:.1f} s after being removed (its renewal got a 404)")

# A new app is picked up by the client's delta fetch (and the hash it reconciles with).
assert call("POST", "/register", {"service": "third", "address": "http://127.0.0.1:9102", "id": "third-1"})[0] == 201
wait_for(6, lambda: discovered("THIRD"), "the client did not see a new app through its delta fetches")
step("saw a new app through its delta and hash")
assert call("POST", "/deregister", {"service": "third", "id": "third-1"})[0] == 200
wait_for(6, lambda: not discovered("THIRD"), "the client still lists a deregistered app")
step("dropped the deregistered app")

eureka_client.stop()
print("stopped", flush=True)
print("done", flush=True)
os._exit(0)
