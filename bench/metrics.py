#!/usr/bin/python3
"""bench/metrics.py: what GET /metrics (butlerd(8), MONITORING) costs.

1. Ping throughput with the metrics off and on, in the same run: two butlerd
   instances with the same worker count, wrk alternating between them; the one
   with butlerd.metrics.enable = true also gets scraped once a second during
   its runs (15 times more often than Prometheus' default). Goal: a ratio
   within the noise of 1.
2. The time of one scrape of an instance holding 10000 keys (10 namespaces of
   1000) and 1000 active users (UDP session events), next to a ping on the same
   keep-alive connection as the reference.

Usage: bench/metrics.py [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS]
                        [-r ROUNDS] [-n SCRAPES]
Needs wrk (Debian package wrk). The butlerd binary is $BUTLERD, or
../src/butlerd next to this script. Uses the black-box test harness
(tests/blackbox/harness.py) to start and stop butlerd; only 127.0.0.1.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import benchpath  # noqa: F401 (the harness on the import path, BUTLERD)

import harness  # noqa: E402
from udp_sender import session_datagram  # noqa: E402


def wrk(port, duration, conns, threads):
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(conns), "-d", "%ds" % duration,
                          "http://127.0.0.1:%d/v4/butlerping" % port],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not m:
        sys.exit("wrk gave no result:\n" + out)
    return float(m.group(1)), int(errors.group(1)) if errors else 0


class Scraper(threading.Thread):
    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.active, self.count = port, threading.Event(), False, 0

    def run(self):
        while not self.stop.wait(1.0):
            if self.active:
                r = harness.request(self.port, "GET", "/metrics")
                assert r.status == 200, r
                self.count += 1


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def timed(conn, path, n):
    times = []
    size = 0
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        times.append(time.perf_counter() - t0)
        assert r.status == 200, (path, r.status, body[:200])
        size = len(body)
    return times, size


def ms(x):
    return "%.3f ms" % (x * 1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-w", type=int, default=2, help="workers (default 2)")
    ap.add_argument("-d", type=int, default=8, help="seconds per wrk run (default 8)")
    ap.add_argument("-c", type=int, default=64, help="wrk connections (default 64)")
    ap.add_argument("-t", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("-r", type=int, default=3, help="runs per instance, alternating (default 3)")
    ap.add_argument("-n", type=int, default=50, help="timed scrapes (default 50)")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("missing wrk: apt-get install -y wrk")
    tmp = tempfile.mkdtemp(prefix="butlerd-metrics-bench.")
    daemons = []
    try:
        off = harness.Daemon(os.path.join(tmp, "off"), {"butlerd": {
            "metrics": {"enable": False}}}, workers=a.w)
        on = harness.Daemon(os.path.join(tmp, "on"), {"butlerd": {
            "metrics": {"enable": True}}}, workers=a.w)
        for d in (off, on):
            os.makedirs(d.tmpdir)
            daemons.append(d)
            d.start()
        scraper = Scraper(on.port)
        scraper.start()
        print("== warm-up")
        wrk(off.port, 2, a.c, a.t)
        wrk(on.port, 2, a.c, a.t)
        best = {"off": (0, 0), "on": (0, 0)}
        runs = {"off": [], "on": []}
        for i in range(a.r):
            for name, d in (("off", off), ("on", on)):
                scraper.active = name == "on"
                rps, errs = wrk(d.port, a.d, a.c, a.t)
                scraper.active = False
                runs[name].append(rps)
                print("   run %d %-3s %10.1f req/s  non-2xx %d" % (i + 1, name, rps, errs))
                best[name] = max(best[name], (rps, errs))
        scraper.stop.set()
        on.stop()
        off.stop()
        print()
        print("GET /v4/butlerping, wrk -t %d -c %d -d %ds, %d workers, best of %d runs"
              % (a.t, a.c, a.d, a.w, a.r))
        print("requests/s metrics off: %.1f" % best["off"][0])
        print("requests/s metrics on (scraped every 1 s, %d scrapes): %.1f"
              % (scraper.count, best["on"][0]))
        print("ratio on/off: %.3f (runs off %s, on %s)" % (
            best["on"][0] / best["off"][0], ["%.0f" % x for x in runs["off"]],
            ["%.0f" % x for x in runs["on"]]))

        # ------------------------------------------------------------- one scrape
        sport = free_udp_port()
        big = harness.Daemon(os.path.join(tmp, "big"), {
            "Butler": {"restServerEndpointsEnable": {"keyValueStore": True,
                                                     "activeUserCount": True},
                       "udpServerConfig": {"enable": True, "serverHost": "127.0.0.1",
                                           "portTaskFailure": free_udp_port(),
                                           "portSessionConnectionEvents": sport,
                                           "messageQueue": {"maxSize": 100000}}},
            "butlerd": {"metrics": {"enable": True},
                        "shm": {"kvMaxKeys": 20000, "maxActiveUsers": 5000}}}, workers=a.w)
        os.makedirs(big.tmpdir)
        daemons.append(big)
        big.start()
        conn = http.client.HTTPConnection("127.0.0.1", big.port, timeout=30)
        hdr = {"Content-Type": "application/json"}
        for ns in range(10):
            for k in range(1000):
                conn.request("POST", "/v4/keyvalues/ns%d" % ns, body=json.dumps(
                    {"key": "key-%04d" % k, "value": "value of key %d in namespace %d" % (k, ns)}),
                    headers=hdr)
                r = conn.getresponse()
                r.read()
                assert r.status == 201, r.status
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for u in range(1000):
            tx.sendto(session_datagram("start", "sense%d" % (u % 4), "ACME", "user%04d" % u),
                      ("127.0.0.1", sport))
            if u % 100 == 99:
                time.sleep(0.02)

        def users():
            conn.request("GET", "/v4/activeusercount")
            r = conn.getresponse()
            return json.loads(r.read())["response"]
        if not harness.wait_until(lambda: users() == 1000, 30):
            sys.exit("only %d active users arrived" % users())
        timed(conn, "/metrics", 5)
        timed(conn, "/v4/butlerping", 5)
        ping, _ = timed(conn, "/v4/butlerping", a.n)
        scrape, size = timed(conn, "/metrics", a.n)
        text = harness.request(big.port, "GET", "/metrics").text
        keys = re.search(r"^butlerd_kv_keys (\d+)", text, re.M).group(1)
        au = re.search(r"^butlerd_active_users (\d+)", text, re.M).group(1)
        print()
        print("one scrape with %s keys and %s active users (%d bytes), %d times, keep-alive:"
              % (keys, au, size, a.n))
        print("scrape median %s, p90 %s; ping median %s (reference)" % (
            ms(statistics.median(scrape)), ms(sorted(scrape)[int(a.n * 0.9) - 1]),
            ms(statistics.median(ping))))
        print("scrape minus ping (median): %s" % ms(statistics.median(scrape)
                                                    - statistics.median(ping)))
    finally:
        for d in daemons:
            if d.proc is not None and d.running():
                d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
