#!/usr/bin/env python3
"""Watcher scale probes for bench/run.sh (Python 3 standard library only).

    watchers.py fanout --port P --pid PID --polls N --streams M
        N parked long-polls and M event streams on one service, then one
        registration: per-watcher delivery latency, and RSS per parked watcher
    watchers.py hold --port P --pid PID --polls N --streams M --max-seconds S
        park the same watchers, print a "ready" line, hold them until SIGTERM
        (or S seconds), then report whether any was answered or cut early
    watchers.py leak --port P --pid PID --rounds R --conns C
        R rounds of: park C long-polls, close them all without reading; RSS
        after every round, then /health and a fresh long-poll

Every connection is a keep-alive connection of its own to 127.0.0.1, held in
one epoll set.  Connections are opened in batches, and each batch waits until
the server has accepted it (its descriptor count in /proc/PID/fd), so the
listen backlog (libevent's default, 128) never overflows into SYN retries.

"Parked" is checked, not assumed: every connection accepted, the server's CPU
time standing still, no long-poll answered, every stream past its first event,
and a probe long-poll sent last that is held for its whole short wait.

Delivery latency runs from just before the registration is sent to the moment
the kernel received each watcher's answer (SO_TIMESTAMPNS on every socket), so
the figure is the server's and not this client's, which reads 11,000 sockets
on one core.  Both ends are CLOCK_REALTIME.

Every loop is bounded in iterations and in time.  Results are JSON lines on
stdout; progress goes to stderr.
"""

import argparse
import errno
import http.client
import json
import math
import os
import re
import select
import signal
import socket
import struct
import sys
import time

HOST = "127.0.0.1"
# Connections opened before waiting for the server to accept them: well under
# the listen backlog of 128.
CONNECT_BATCH = 100
# Pacing waits for the server's descriptor count to grow by a batch, less this
# much: a connection of ours closing just before the count was taken may still
# be counted.  Whether every connection was accepted is checked afterwards.
ACCEPT_SLACK = 8
# SO_TIMESTAMPNS (the "old" name, a native struct timespec) from
# <asm-generic/socket.h>; Python's socket module does not export it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESPEC = struct.Struct("@qq")
RECV_BYTES = 65536
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

SSE_EVENT = re.compile(rb"id: (\d+)\nevent: state\ndata: [^\n]*\n\n")

stop_requested = False


def log(message):
    print(f"bench:   {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ server side


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 0, utime 11, stime 12.
    return int(fields[11]) + int(fields[12])


def wait_idle(pid, quiet_seconds=0.1, timeout=30.0):
    """Returns once the server has used no CPU for `quiet_seconds` (CPU time is
    counted in clock ticks, 10 ms, so shorter quiet spans prove nothing)."""
    deadline = time.monotonic() + timeout
    last = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_seconds)
        now = cpu_ticks(pid)
        if now == last:
            return
        last = now
    raise TimeoutError(f"the server kept using CPU for {timeout} s")


def wait_fds(pid, predicate, timeout, what):
    """Polls the server's descriptor count until `predicate(count)`; returns the
    seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        count = fd_count(pid)
        if predicate(count):
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: server holds {count} descriptors after {timeout} s")
        time.sleep(0.002)


# --------------------------------------------------------------------- requests


def request(method, path, body=None):
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n"
    if body is None:
        return (head + "\r\n").encode()
    payload = json.dumps(body, separators=(",", ":")).encode()
    head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    return head.encode() + payload


def poll_request(service, index, wait):
    return request("GET", f"/discover/{service}?index={index}&wait={wait}")


def stream_request(service):
    return request("GET", f"/watch/{service}")


def simple(port, method, path, body=None, timeout=5.0):
    """One request on a fresh connection: (status, X-Registry-Index or None, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        index = response.getheader("X-Registry-Index")
        return response.status, int(index) if index is not None else None, data
    finally:
        conn.close()


def register(port, service, address):
    status, _, data = simple(port, "POST", "/register", {"service": service, "address": address})
    if status not in (200, 201):
        raise RuntimeError(f"registering {service} at {address} answered {status}: {data[:200]!r}")


def current_index(port, service):
    status, index, _ = simple(port, "GET", f"/discover/{service}")
    if index is None:
        raise RuntimeError(f"GET /discover/{service} ({status}) has no X-Registry-Index")
    return index


def parse_head(buffer):
    """(status, headers dict with lower-case names, body offset), or None while
    the head is incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buffer[:end].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, end + 4


# ------------------------------------------------------------------ connections


class Watcher:
    """One held connection: a long-poll ("poll") or an event stream ("stream")."""

    __slots__ = ("sock", "kind", "buffer", "base_index", "done_ns", "answer", "closed")

    def __init__(self, sock, kind):
        self.sock = sock
        self.kind = kind
        self.buffer = b""
        # Streams: the index of their first event; polls: the index they wait past.
        self.base_index = None
        self.done_ns = None
        # Polls: (status, index) of the answer once complete.
        self.answer = None
        self.closed = False

    def first_event_index(self):
        """A stream's first event (the state it opened on), or None until it came."""
        match = SSE_EVENT.search(self.buffer)
        return int(match.group(1)) if match else None

    def poll_answer(self):
        """(status, index) once a whole answer is in, else None."""
        head = parse_head(self.buffer)
        if head is None:
            return None
        status, headers, offset = head
        if len(self.buffer) - offset < int(headers.get("content-length", "0")):
            return None
        index = headers.get("x-registry-index")
        return status, int(index) if index is not None else None

    def has_change_past(self, index):
        """For a stream: an event with an id above `index` has fully arrived."""
        return any(int(m.group(1)) > index for m in SSE_EVENT.finditer(self.buffer))


def receive(sock):
    """One recvmsg: (bytes, the kernel's receive time in ns, or None)."""
    data, ancillary, _, _ = sock.recvmsg(RECV_BYTES, socket.CMSG_SPACE(TIMESPEC.size))
    stamp = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack_from(payload)
            stamp = seconds * 1_000_000_000 + nanoseconds
    return data, stamp


class Pool:
    """Every watcher connection, in one epoll set keyed by descriptor."""

    def __init__(self, port, pid):
        self.port = port
        self.pid = pid
        self.epoll = select.epoll()
        self.watchers = {}
        self.kernel_stamps = 0
        self.user_stamps = 0

    def open(self, requests, base_fds, timeout=60.0):
        """Opens one connection per (kind, request bytes), in batches paced by the
        server's accepts (from `base_fds` descriptors, taken with the server
        idle), and writes each request whole.  Returns the watchers."""
        opened = []
        deadline = time.monotonic() + timeout
        for start in range(0, len(requests), CONNECT_BATCH):
            batch = requests[start:start + CONNECT_BATCH]
            pending = []
            for kind, data in batch:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                sock.setblocking(False)
                error = sock.connect_ex((HOST, self.port))
                if error not in (0, errno.EINPROGRESS):
                    sock.close()
                    raise OSError(error, f"connect: {os.strerror(error)}")
                pending.append((sock, kind, data))
            connecting = select.poll()
            waiting = {sock.fileno(): sock for sock, _, _ in pending}
            for fd in waiting:
                connecting.register(fd, select.POLLOUT)
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(waiting)} connections still connecting")
                for fd, _ in connecting.poll(min(left, 1.0) * 1000):
                    connecting.unregister(fd)
                    del waiting[fd]
            for sock, kind, data in pending:
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    raise OSError(error, f"connect: {os.strerror(error)}")
                # A fresh socket's send buffer takes a few hundred bytes whole;
                # anything short is a failure to report, not to retry.
                sent = sock.send(data)
                if sent != len(data):
                    raise OSError(f"wrote {sent} of {len(data)} request bytes")
                watcher = Watcher(sock, kind)
                self.watchers[sock.fileno()] = watcher
                self.epoll.register(sock.fileno(), select.EPOLLIN)
                opened.append(watcher)
            expected = base_fds + len(opened) - ACCEPT_SLACK
            wait_fds(self.pid, lambda count: count >= expected, min(max(deadline - time.monotonic(), 0.1), 10),
                     f"accepting {len(opened)} connections")
        return opened

    def adopt(self, kind):
        """One more connection, opened the blocking way, read like the watchers."""
        sock = socket.create_connection((HOST, self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
        watcher = Watcher(sock, kind)
        self.watchers[sock.fileno()] = watcher
        self.epoll.register(sock.fileno(), select.EPOLLIN)
        return watcher

    def pump(self, timeout, on_data):
        """Reads whatever is ready for up to `timeout` seconds (one epoll wait),
        calling on_data(watcher, stamp_ns) after each read."""
        for fd, _ in self.epoll.poll(timeout):
            watcher = self.watchers.get(fd)
            if watcher is None:
                continue
            try:
                data, stamp = receive(watcher.sock)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data, stamp = b"", None
            if stamp is None:
                self.user_stamps += 1
                stamp = time.time_ns()
            else:
                self.kernel_stamps += 1
            if not data:
                watcher.closed = True
                self.epoll.unregister(fd)
                continue
            watcher.buffer += data
            on_data(watcher, stamp)

    def close(self):
        for fd, watcher in self.watchers.items():
            if not watcher.closed:
                self.epoll.unregister(fd)
            watcher.sock.close()
        self.watchers.clear()
        self.epoll.close()


# ----------------------------------------------------------------- parking


def probe_held(port, service, index, wait_seconds):
    """A long-poll sent after every watcher, with a short wait: proof that the
    server has read and parked requests up to the last one.  Returns the seconds
    it was held and whether it came back unchanged (200, same index)."""
    started = time.monotonic()
    path = f"/discover/{service}?index={index}&wait={int(wait_seconds * 1000)}ms"
    status, answered_index, _ = simple(port, "GET", path, timeout=wait_seconds * 2 + 5)
    held = time.monotonic() - started
    return held, status == 200 and answered_index == index


def park(port, pid, service, polls, streams, wait, timeout):
    """Opens `polls` long-polls and `streams` event streams on `service` and
    checks that all are parked.  Returns (pool, facts)."""
    index = current_index(port, service)
    requests = ([("poll", poll_request(service, index, wait))] * polls
                + [("stream", stream_request(service))] * streams)
    pool = Pool(port, pid)
    base_fds = settle(pid)
    started = time.monotonic()
    watchers = pool.open(requests, base_fds, timeout=timeout)
    opened_seconds = time.monotonic() - started
    polls_list = [w for w in watchers if w.kind == "poll"]
    streams_list = [w for w in watchers if w.kind == "stream"]
    for watcher in polls_list:
        watcher.base_index = index

    # Streams answer at once with their first event; long-polls must not answer.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(w.first_event_index() is None and not w.closed
                                              for w in streams_list):
        pool.pump(0.1, lambda w, stamp: None)
    wait_idle(pid)
    accepted = fd_count(pid) - base_fds
    for watcher in streams_list:
        if not watcher.closed:
            watcher.base_index = watcher.first_event_index()
    probe_wait = 0.5
    held, unchanged = probe_held(port, service, index, probe_wait)
    pool.pump(0, lambda w, stamp: None)
    facts = {
        "open_seconds": round(opened_seconds, 3),
        "accepted": accepted,
        "polls_answered_early": sum(1 for w in polls_list if w.buffer or w.closed),
        "streams_started": sum(1 for w in streams_list if w.base_index is not None and not w.closed),
        "probe_held_s": round(held, 3),
        # The server adds up to 1/16 of the wait as jitter.
        "probe_ok": unchanged and probe_wait <= held <= probe_wait * 17 / 16 + 0.5,
    }
    facts["parked"] = (accepted >= polls + streams and facts["polls_answered_early"] == 0
                       and facts["streams_started"] == streams and facts["probe_ok"])
    return pool, facts


def settle(pid):
    """Waits for the server to go idle; returns its descriptor count then."""
    wait_idle(pid)
    return fd_count(pid)


def release(pool, pid, fds_before, timeout=30.0):
    """Closes every watcher and returns the seconds until the server had let go of
    all their connections."""
    pool.close()
    return round(wait_fds(pid, lambda count: count <= fds_before, timeout, "releasing the watchers"), 3)


# ---------------------------------------------------------------- scenarios


def percentile(sorted_values, fraction):
    """Nearest rank: the smallest value with at least `fraction` of all at or below it."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


def fanout(args):
    service = args.service
    register(args.port, service, "127.0.0.1:30000")
    fds_before = settle(args.pid)
    rss_before = rss_bytes(args.pid)
    total = args.polls + args.streams
    log(f"parking {args.polls} long-polls and {args.streams} streams on {service}")
    pool, facts = park(args.port, args.pid, service, args.polls, args.streams, args.wait, args.timeout)
    wait_idle(args.pid)
    rss_parked = rss_bytes(args.pid)
    log(f"parked in {facts['open_seconds']} s (all parked: {facts['parked']}); "
        f"RSS {rss_before // 1024} KiB -> {rss_parked // 1024} KiB, "
        f"{(rss_parked - rss_before) / total / 1024:.2f} KiB per watcher")

    # The registration goes out on a connection opened (and accepted) beforehand,
    # and right behind it, on another, a GET /health from a bystander: how long
    # the fan-out holds up the rest of the loop.
    writer, bystander = pool.adopt("register"), pool.adopt("health")
    wait_fds(args.pid, lambda count: count >= fds_before + total + 2, 5, "accepting the writer")
    wait_idle(args.pid)
    pool.kernel_stamps = pool.user_stamps = 0
    pending = {id(w) for w in pool.watchers.values()}

    def on_data(watcher, stamp):
        if watcher.done_ns is not None:
            return
        if watcher.kind in ("register", "health"):
            watcher.answer = watcher.poll_answer()
            if watcher.answer is not None:
                watcher.done_ns = stamp
        elif watcher.kind == "poll":
            answer = watcher.poll_answer()
            if answer is None:
                return
            watcher.answer = answer
            if answer[0] == 200 and answer[1] is not None and answer[1] > watcher.base_index:
                watcher.done_ns = stamp
        elif watcher.base_index is not None and watcher.has_change_past(watcher.base_index):
            watcher.done_ns = stamp
        if watcher.done_ns is not None:
            pending.discard(id(watcher))

    body = request("POST", "/register", {"service": service, "address": f"127.0.0.1:{30001 + os.getpid() % 30000}"})
    sent_ns = time.time_ns()
    writer.sock.sendall(body)
    bystander.sock.sendall(request("GET", "/health"))
    deadline = time.monotonic() + args.deliver_timeout
    while pending and time.monotonic() < deadline:
        pool.pump(0.05, on_data)

    def answer_ms(watcher):
        return rnd((watcher.done_ns - sent_ns) / 1e6) if watcher.done_ns is not None else None

    watchers = [w for w in pool.watchers.values() if w.kind in ("poll", "stream")]
    got = [w for w in watchers if w.done_ns is not None]
    latencies = sorted((w.done_ns - sent_ns) / 1e6 for w in got)
    by_kind = {}
    for kind in ("poll", "stream"):
        values = sorted((w.done_ns - sent_ns) / 1e6 for w in got if w.kind == kind)
        by_kind[kind] = {"got": len(values), "p50_ms": rnd(percentile(values, 0.5)),
                         "p99_ms": rnd(percentile(values, 0.99)), "max_ms": rnd(values[-1] if values else None)}
    wrong = [w.answer for w in watchers if w.kind == "poll" and w.done_ns is None and w.answer]
    result = {
        "kind": "watch-fanout",
        "polls": args.polls,
        "streams": args.streams,
        "watchers": total,
        "got": len(got),
        "closed": sum(1 for w in watchers if w.closed and w.done_ns is None),
        "wrong_answers": [list(a) for a in wrong[:5]],
        "min_ms": rnd(latencies[0] if latencies else None),
        "p50_ms": rnd(percentile(latencies, 0.5)),
        "p99_ms": rnd(percentile(latencies, 0.99)),
        "max_ms": rnd(latencies[-1] if latencies else None),
        "by_kind": by_kind,
        "register_status": writer.answer[0] if writer.answer else None,
        "register_ms": answer_ms(writer),
        "health_status": bystander.answer[0] if bystander.answer else None,
        "health_ms": answer_ms(bystander),
        "kernel_timestamps": pool.kernel_stamps > 0 and pool.user_stamps == 0,
        "rss_before": rss_before,
        "rss_parked": rss_parked,
        "parking": facts,
    }
    result["released_s"] = release(pool, args.pid, fds_before)
    log(f"{len(got)} of {total} got the change: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"max {result['max_ms']} ms; the registration's own answer {result['register_ms']} ms, "
        f"a /health sent right after it {result['health_ms']} ms")
    print(json.dumps(result), flush=True)
    return 0


def rnd(value):
    return round(value, 3) if value is not None else None


def hold(args):
    service = args.service
    register(args.port, service, "127.0.0.1:30000")
    fds_before = settle(args.pid)
    rss_before = rss_bytes(args.pid)
    log(f"parking {args.polls} long-polls and {args.streams} streams on {service}")
    pool, facts = park(args.port, args.pid, service, args.polls, args.streams, args.wait, args.timeout)
    wait_idle(args.pid)
    log(f"parked in {facts['open_seconds']} s (all parked: {facts['parked']}); holding them")
    ready = {"kind": "watch-hold-ready", "watchers": args.polls + args.streams,
             "rss_before": rss_before, "rss_parked": rss_bytes(args.pid), "parking": facts}
    print(json.dumps(ready), flush=True)

    def request_stop(signum, frame):
        global stop_requested
        stop_requested = True
    signal.signal(signal.SIGTERM, request_stop)
    started = time.monotonic()
    # Long-polls must stay silent; streams may only send keep-alive comments.
    while not stop_requested and time.monotonic() - started < args.max_seconds:
        pool.pump(0.5, lambda w, stamp: None)
    watchers = list(pool.watchers.values())
    answered = sum(1 for w in watchers if w.kind == "poll" and w.buffer)
    stream_events = sum(1 for w in watchers if w.kind == "stream"
                        and w.base_index is not None and w.has_change_past(w.base_index))
    closed = sum(1 for w in watchers if w.closed)
    print(json.dumps({"kind": "watch-hold", "watchers": len(watchers),
                      "held_seconds": round(time.monotonic() - started, 1),
                      "polls_answered": answered, "stream_changes": stream_events,
                      "closed_by_server": closed, "parking": facts,
                      "released_s": release(pool, args.pid, fds_before)}), flush=True)
    return 0


def leak(args):
    service = args.service
    register(args.port, service, "127.0.0.1:30000")
    index = current_index(args.port, service)
    base_fds = settle(args.pid)
    rss = []
    drop_seconds = []
    undropped = 0
    request_bytes = poll_request(service, index, args.wait)
    started = time.monotonic()
    for round_number in range(1, args.rounds + 1):
        pool = Pool(args.port, args.pid)
        pool.open([("poll", request_bytes)] * args.conns, base_fds, timeout=args.timeout)
        # Accepted, and the server idle: every request has been read and parked.
        wait_idle(args.pid, quiet_seconds=0.05)
        # Without reading anything: half end with FIN, half with RST (SO_LINGER
        # with a zero timeout makes close() reset the connection).
        for watcher in list(pool.watchers.values())[1::2]:
            watcher.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        pool.close()
        closed_at = time.monotonic()
        try:
            wait_fds(args.pid, lambda count: count <= base_fds, args.drop_timeout, f"round {round_number}")
        except TimeoutError:
            # A registry that keeps closed watchers: a finding, not a harness error.
            undropped = fd_count(args.pid) - base_fds
            log(f"leak round {round_number}: the registry still holds {undropped} closed connections "
                f"after {args.drop_timeout} s; stopping")
            break
        drop_seconds.append(time.monotonic() - closed_at)
        wait_idle(args.pid, quiet_seconds=0.05)
        rss.append(rss_bytes(args.pid))
        if round_number % 10 == 0 or round_number == args.rounds:
            log(f"leak round {round_number}/{args.rounds}: RSS {rss[-1] // 1024} KiB")
    seconds = time.monotonic() - started

    # Still serving: /health, and a long-poll that wakes on a change.
    health_status = simple(args.port, "GET", "/health")[0]
    index = current_index(args.port, service)
    sock = socket.create_connection((HOST, args.port), timeout=10)
    sock.sendall(poll_request(service, index, "10s"))
    time.sleep(0.2)
    changed_at = time.monotonic()
    register(args.port, service, "127.0.0.1:30001")
    answer = b""
    poll_status = poll_index = None
    while time.monotonic() - changed_at < 5:
        try:
            chunk = sock.recv(RECV_BYTES)
        except OSError:
            break
        if not chunk:
            break
        answer += chunk
        head = parse_head(answer)
        if head and len(answer) - head[2] >= int(head[1].get("content-length", "0")):
            poll_status, poll_index = head[0], int(head[1].get("x-registry-index", "0"))
            break
    poll_ms = (time.monotonic() - changed_at) * 1000
    sock.close()
    # Every connection of ours is closed now; the registry should get back to
    # where it started.
    try:
        wait_fds(args.pid, lambda count: count <= base_fds, 5, "after the rounds")
    except TimeoutError:
        pass

    reference = max(1, args.rounds // 10)
    print(json.dumps({
        "kind": "watch-leak",
        "rounds": args.rounds,
        "rounds_done": len(rss),
        "conns": args.conns,
        "seconds": round(seconds, 1),
        "reference_round": reference,
        "rss_reference": rss[reference - 1] if len(rss) >= reference else None,
        "rss_last": rss[-1] if rss else None,
        "rss_max": max(rss) if rss else None,
        "rss_kib": [r // 1024 for r in rss],
        "undropped": undropped,
        "drop_max_s": round(max(drop_seconds), 3) if drop_seconds else None,
        "fds_after": fd_count(args.pid) - base_fds,
        "health_status": health_status,
        "longpoll_ok": poll_status == 200 and poll_index is not None and poll_index > index,
        "longpoll_ms": round(poll_ms, 1),
    }), flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--pid", type=int, required=True, help="the registry process (for /proc)")
        p.add_argument("--service", default="watched")
        p.add_argument("--wait", default="60s", help="the long-polls' wait parameter")
        p.add_argument("--timeout", type=float, default=120, help="seconds for opening connections")

    p = sub.add_parser("fanout")
    common(p)
    p.add_argument("--polls", type=int, required=True)
    p.add_argument("--streams", type=int, required=True)
    p.add_argument("--deliver-timeout", type=float, default=10)

    p = sub.add_parser("hold")
    common(p)
    p.add_argument("--polls", type=int, required=True)
    p.add_argument("--streams", type=int, required=True)
    p.add_argument("--max-seconds", type=float, required=True)

    p = sub.add_parser("leak")
    common(p)
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--conns", type=int, required=True)
    p.add_argument("--drop-timeout", type=float, default=10,
                   help="seconds the registry gets to release a round's closed connections")

    args = parser.parse_args()
    return {"fanout": fanout, "hold": hold, "leak": leak}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
