#!/usr/bin/python3
"""bench/alerts.py: end-to-end alert throughput and latency.

Starts the Qlik Sense simulator (tests/qlik-sim), a local webhook receiver and
one butlerd with UDP intake and one POST webhook for failed reloads (no rate
limit), then sends N failed-reload UDP datagrams (default 2000) at RATE per
second (default 200) and waits until the receiver has every one of them.
Reports:
  - events/s sustained: N over the time from the first datagram to the last
    delivery, and whether anything was lost (every execution ID must arrive);
  - latency from the datagram to the webhook request, p50, p99 and max
    (each event's QRS lookups, the spool write with fsync, and the delivery);
  - requests the receiver got more than once (at-least-once delivery).

Usage: bench/alerts.py [-n N] [-r RATE] [--spool DIR]
Environment: BUTLERD=path to the binary (default ../src/butlerd next to this script).
"""

import argparse
import http.server
import json
import os
import tempfile
import threading
import time
import uuid

import benchpath  # noqa: F401 (the harness on the import path, BUTLERD)

import harness  # noqa: E402
from harness import Raw  # noqa: E402
from taskfix import make_certs, QlikSim, FIXTURE, qrs_overrides  # noqa: E402
from udp_sender import Sender, join, task_fields  # noqa: E402

got = {}
lock = threading.Lock()


class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        now = time.monotonic()
        xid = json.loads(body)["executionId"]
        with lock:
            got.setdefault(xid, []).append(now)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("-r", "--rate", type=float, default=200.0)
    ap.add_argument("--spool", default=None)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-alerts-")
    certs = make_certs(os.path.join(tmp, "certs"))
    sim = QlikSim(fixture_path=FIXTURE, certs_dir=os.path.dirname(certs["root.pem"]))
    sim.on_request = None
    sim.start()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    s = socket_port = None
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    socket_port = s.getsockname()[1]
    s.close()
    ov = {"Butler": {
        "udpServerConfig": {"enable": True, "serverHost": "127.0.0.1",
                            "portTaskFailure": socket_port,
                            "messageQueue": {"maxSize": 100000, "maxConcurrent": 16}},
        "webhookNotification": {"enable": True, "reloadTaskFailure": {
            "rateLimit": 0, "webhooks": Raw('( { webhookURL = "http://127.0.0.1:%d/h"; '
                                            'httpMethod = "POST"; } )' % srv.server_address[1])}},
        **qrs_overrides(sim, certs)},
        "butlerd": {
                    "notifications": {"spoolDirectory": a.spool or os.path.join(tmp, "spool"),
                                      "maxConcurrent": 16}}}
    d = harness.Daemon(os.path.join(tmp, "d"), ov, workers=1)
    os.makedirs(d.tmpdir)
    d.start()
    tx = Sender(socket_port)
    sent = {}
    try:
        t0 = time.monotonic()
        for i in range(a.n):
            due = t0 + i / a.rate
            while time.monotonic() < due:
                time.sleep(min(0.002, due - time.monotonic()) if due > time.monotonic() else 0)
            xid = str(uuid.uuid4())
            sent[xid] = time.monotonic()
            tx.send(join(task_fields("failed", execution_id=xid, message="bench %d" % i)))
        deadline = time.monotonic() + 60 + a.n / 50
        while time.monotonic() < deadline:
            with lock:
                if all(x in got for x in sent):
                    break
            time.sleep(0.05)
        with lock:
            lost = [x for x in sent if x not in got]
            lat = [(got[x][0] - sent[x]) * 1000 for x in sent if x in got]
            dup = sum(len(v) - 1 for v in got.values())
            last = max(v[0] for v in got.values()) if got else t0
        print("events %d at %.0f/s offered; delivered %d, lost %d, duplicates %d"
              % (a.n, a.rate, len(lat), len(lost), dup))
        print("sustained %.1f events/s (first datagram to last delivery)" % (len(lat) / (last - t0)))
        if lat:
            print("datagram -> webhook request: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
                  % (pct(lat, 0.5), pct(lat, 0.99), max(lat)))
    finally:
        d.stop()
        sim.stop()
        srv.shutdown()


if __name__ == "__main__":
    main()
