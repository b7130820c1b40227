#!/usr/bin/env python3
"""Runs the built tests with a time limit, then stops whatever they started and left behind.

A test that crashes the test process leaves its children running (a registry, a
`registryctl watch`), and a crash's backtrace can itself stall; either one holds the
terminal's or CI's output open, so the run never ends. Foundation starts each child in a
process group of its own, so stopping a group is not enough: this script makes itself the
"child subreaper" (Linux prctl), so that every orphaned descendant becomes its child, and
after the run (finished, timed out or interrupted) it stops each of them.

Usage: run-tests.py [swift test arguments...]; TEST_TIMEOUT (default 20m) bounds the run.
"""
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def seconds(text):
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def children():
    mine = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == mine and fields[0] != "Z":
            found.append(int(entry))
    return found


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop_leftovers():
    """Stops each child; an orphan of a stopped child becomes ours and is stopped next."""
    named = False
    for _ in range(50):
        reap()
        left = children()
        if not left:
            return
        if not named:
            print(f"run-tests: stopping {len(left)} process(es) the tests left running", flush=True)
            named = True
        for pid in left:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        reap()
        for pid in children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("run-tests: cannot become a subreaper; leftovers of a crash would not be stopped", flush=True)
    limit_text = os.environ.get("TEST_TIMEOUT", "20m")
    tests = subprocess.Popen(["swift", "test", "--skip-build", *sys.argv[1:]])
    try:
        status = tests.wait(timeout=seconds(limit_text))
    except subprocess.TimeoutExpired:
        print(f"run-tests: the tests did not finish within {limit_text} and were stopped: "
              "one hangs (the last 'started' lines above name it)", flush=True)
        status = 124
    except KeyboardInterrupt:
        status = 130
    finally:
        stop_leftovers()
    return status


if __name__ == "__main__":
    sys.exit(main())
