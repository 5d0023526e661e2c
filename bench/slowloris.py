#!/usr/bin/python3
"""Probe latency while one address holds thousands of slow connections.

Starts butlerd (BUTLERD or src/butlerd; a second binary with --ref to compare,
e.g. an older build) on loopback, opens N connections from 127.0.0.2 that each
send a request line and then one header line every few seconds (slowloris),
and meanwhile times GET /v4/butlerping from 127.0.0.1 once a second. Prints
the probe latencies (p50, max) and how many probes failed, per binary.

  bench/slowloris.py [-n 2300] [-s 20] [--ref /path/to/old/butlerd]
"""

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))
import harness  # noqa: E402


def slow_open(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /v4/butlerping HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        socks.append(s)
    return socks


def trickle(socks):
    alive = []
    for s in socks:
        try:
            s.send(b"X-Slow: 1\r\n")
            alive.append(s)
        except OSError:
            s.close()
    return alive


def run(binary, n, seconds):
    os.environ["BUTLERD"] = binary
    tmp = tempfile.mkdtemp(prefix="slowloris-")
    d = harness.Daemon(tmp)
    d.start()
    lat, failed = [], 0
    try:
        socks = slow_open(d.port, n)
        held = len(socks)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            socks = trickle(socks)
            t0 = time.monotonic()
            try:
                r = harness.request(d.port, "GET", "/v4/butlerping", timeout=5)
                if r.status == 200:
                    lat.append(time.monotonic() - t0)
                else:
                    failed += 1
            except OSError:
                failed += 1
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
        for s in socks:
            s.close()
    finally:
        d.stop()
    lat.sort()
    p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
    mx = lat[-1] * 1000 if lat else float("nan")
    print("%-40s slow connections opened %5d  probes ok %2d failed %2d  p50 %.1f ms  max %.1f ms"
          % (binary, held, len(lat), failed, p50, mx))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2300)
    ap.add_argument("-s", type=int, default=20)
    ap.add_argument("--ref")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.n + 1000)), hard))
    binary = os.environ.get("BUTLERD", os.path.join(HERE, "..", "src", "butlerd"))
    run(os.path.abspath(binary), a.n, a.s)
    if a.ref:
        run(os.path.abspath(a.ref), a.n, a.s)


if __name__ == "__main__":
    main()
