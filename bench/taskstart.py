#!/usr/bin/python3
"""bench/taskstart.py: butlerd's added time when it starts a task, and what a QRS
that writes its answers' head and body separately (Nagle on) costs.

Starts the Qlik Sense simulator (tests/qlik-sim; QRS over TLS, client
certificates required) twice, a normal one and one with split_writes on (head
and body of every answer in two writes, Nagle on: some servers do this), and a
butlerd (1 worker) for each. Then N iterations (default 300) side by side:

  start     PUT /v4/reloadtask/<id>/start on a kept-alive connection to butlerd:
            butlerd looks the task up (GET /qrs/task?filter=..., on its kept-alive
            QRS connection) and starts it (POST /qrs/task/<id>/start) on a NEW
            connection, as every start (a start is never sent twice);
  direct    the same two QRS calls made by this script straight to the
            simulator: the GET on a kept-alive connection, the POST on a new TLS
            connection that resumes the previous TLS session, as butlerd's should.
  apps      GET /v4/apps/list through butlerd (one QRS GET on a kept-alive
            connection), against the normal simulator and the split-writes one.

The simulator counts the TLS handshakes it completes, full and resumed: with
TLS session resumption, every start after the first should be a resumed one.

Prints (bench/README.md, "taskstart.py"):
  ROW taskstart_added  butlerd=<start - direct, p50>ms reference=-  ratio=-
  ROW taskstart        butlerd=<start p50>ms reference=<direct p50>ms ratio=<x>
  ROW taskstart_cpu    butlerd=<worker CPU per start>us reference=<per apps GET>us ratio=<x>
  ROW taskstart_resumed butlerd=<% of starts with a resumed handshake>% reference=<% for direct>% ratio=-
  ROW qrs_get_split    butlerd=<apps p50, split-writes QRS>ms reference=<apps p50, normal QRS>ms ratio=<x>

Usage: bench/taskstart.py [-n N]
Environment: BUTLERD=path to the binary (default ../src/butlerd next to this script).
"""

import argparse
import glob
import http.client
import json
import os
import random
import shutil
import socket
import ssl
import statistics
import string
import sys
import tempfile
import threading
import time
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "qlik-sim"))
if not os.environ.get("BUTLERD"):
    os.environ["BUTLERD"] = os.path.join(HERE, "..", "src", "butlerd")

import harness  # noqa: E402
from harness import Raw, FIXTURE, X_QLIK_USER  # noqa: E402
from qlik_sim import QlikSim, make_certs  # noqa: E402

TASK = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
ALNUM = string.ascii_letters + string.digits
pc = time.perf_counter


def butlerd_for(tmp, sim, certs, name):
    ov = {"Butler": {
        "restServerEndpointsEnable": {"senseStartTask": True, "senseListApps": True},
        "cert": {"clientCert": certs["client.pem"], "clientCertKey": certs["client_key.pem"],
                 "clientCertCA": certs["root.pem"]},
        "configQRS": {"host": "127.0.0.1", "port": sim.qrs_port, "useSSL": True,
                      "rejectUnauthorized": True,
                      "headers": {"static": Raw('( { name = "X-Qlik-User"; value = "%s"; } )'
                                                % X_QLIK_USER)}},
        "startTaskFilter": {"enable": False}}}
    d = harness.Daemon(os.path.join(tmp, name), ov, workers=1)
    os.makedirs(d.tmpdir)
    return d.start()


class Direct:
    """The two QRS calls of a start, made straight to the simulator."""

    def __init__(self, sim, certs):
        self.port = sim.qrs_port
        self.ctx = ssl.create_default_context(cafile=certs["root.pem"])
        self.ctx.load_cert_chain(certs["client.pem"], certs["client_key.pem"])
        self.ctx.check_hostname = False
        self.keep = self.conn()
        self.session = None
        self.resumed = 0
        self.rnd = random.Random(1)

    def conn(self):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
        return c

    def xrf(self):
        return "".join(self.rnd.choices(ALNUM, k=16))

    def hdrs(self, k):
        return {"X-Qlik-Xrfkey": k, "X-Qlik-User": X_QLIK_USER}

    def start(self):
        k = self.xrf()
        self.keep.request("GET", "/qrs/task?filter=%s&xrfkey=%s"
                          % (quote("id eq " + TASK, safe=""), k), headers=self.hdrs(k))
        r = self.keep.getresponse()
        r.read()
        if r.status != 200:
            sys.exit("taskstart.py: direct GET answered %d" % r.status)
        k = self.xrf()
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = self.ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=self.session)
        c = self.conn()
        c.sock = s
        c.request("POST", "/qrs/task/%s/start?xrfkey=%s" % (TASK, k), body=b"",
                  headers=dict(self.hdrs(k), **{"Content-Type": "application/json"}))
        r = c.getresponse()
        r.read()
        if r.status not in (200, 201, 204):
            sys.exit("taskstart.py: direct POST answered %d" % r.status)
        self.resumed += 1 if s.session_reused else 0
        self.session = s.session
        c.close()


def timed_get(c, method, path, body=None, hdrs=None):
    t0 = pc()
    c.request(method, path, body, hdrs or {})
    r = c.getresponse()
    data = r.read()
    t = (pc() - t0) * 1000
    if r.status != 200:
        sys.exit("taskstart.py: %s %s answered %d: %r" % (method, path, r.status, data[:200]))
    return t, data


CLIENTS, ROUNDS = 8, 3


def cpu_ns(d):
    """CPU time of butlerd's workers (all threads), ns."""
    total = 0
    for pid in d.worker_pids():
        for p in glob.glob("/proc/%d/task/*/schedstat" % pid):
            try:
                with open(p) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def concurrent_gets(d, per, warm):
    """CLIENTS threads, each WARM + PER GET /v4/apps/list on its own connection;
    returns the times of the last PER of each."""
    out, lock = [], threading.Lock()

    def run():
        c = d.conn(timeout=30)
        mine = []
        for i in range(warm + per):
            t, _ = timed_get(c, "GET", "/v4/apps/list")
            if i >= warm:
                mine.append(t)
        c.close()
        with lock:
            out.extend(mine)
    ts = [threading.Thread(target=run) for _ in range(CLIENTS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def p50(v):
    return statistics.median(v)


def pct(v, q):
    s = sorted(v)
    return s[min(len(s) - 1, int(q * len(s)))]


def main():
    ap = argparse.ArgumentParser(description="start-task added time, TLS resumption, Nagle")
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("-W", type=int, default=30, help="warm-up iterations")
    a = ap.parse_args()
    if a.n < 10 or a.W < 1:
        sys.exit("taskstart.py: -n >= 10, -W >= 1")
    tmp = tempfile.mkdtemp(prefix="bench-taskstart-")
    sims, daemons = [], []
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        sim = QlikSim(FIXTURE, certs_dir=os.path.join(tmp, "certs"), engine_port=0)
        split = QlikSim(FIXTURE, certs_dir=os.path.join(tmp, "certs"), engine_port=0)
        split.split_writes = True
        for s in (sim, split):
            s.start()
            sims.append(s)
        bd = butlerd_for(tmp, sim, certs, "d-normal")
        daemons.append(bd)
        bs = butlerd_for(tmp, split, certs, "d-split")
        daemons.append(bs)
        c = bd.conn(timeout=30)
        cs = bs.conn(timeout=30)
        for x in (c, cs):
            x.connect()
            x.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        direct = Direct(sim, certs)
        spath = "/v4/reloadtask/%s/start" % TASK
        jh = {"Content-Type": "application/json"}
        starts, directs, apps, apps_split = [], [], [], []
        for i in range(a.W + a.n):
            if i == a.W:
                hs0 = sim.handshakes()
                direct.resumed = 0
                cpu0 = cpu_ns(bd)
            t, body = timed_get(c, "PUT", spath, b"[]", jh)
            if i == 0 and TASK not in body.decode():
                sys.exit("taskstart.py: the start did not start the task: %r" % body[:300])
            hs_mid = sim.handshakes()
            t0 = pc()
            direct.start()
            td = (pc() - t0) * 1000
            hs_after = sim.handshakes()
            if i >= a.W:
                starts.append(t)
                directs.append(td)
                del hs_mid, hs_after
        hs1 = sim.handshakes()
        cpu_start = (cpu_ns(bd) - cpu0) / 1000.0 / a.n
        cpu0 = cpu_ns(bd)
        for i in range(a.n):
            timed_get(c, "GET", "/v4/apps/list")
        cpu_get = (cpu_ns(bd) - cpu0) / 1000.0 / a.n
        # CLIENTS clients at once, so butlerd's QRS connections are in request/answer
        # rhythm (Linux then delays ACKs); the two butlerds in turn, ROUNDS times
        per = max(1, a.n // (CLIENTS * ROUNDS))
        for _ in range(ROUNDS):
            apps += concurrent_gets(bd, per, a.W)
            apps_split += concurrent_gets(bs, per, a.W)
        # handshakes by butlerd = all handshakes less the direct client's (one per start)
        full = hs1["full"] - hs0["full"]
        resumed = hs1["resumed"] - hs0["resumed"]
        b_resumed = resumed - direct.resumed
        b_full = full - (a.n - direct.resumed)
        added = [s - d for s, d in zip(starts, directs)]
        print("%d starts: butlerd p50 %.2f ms p99 %.2f ms; direct p50 %.2f ms p99 %.2f ms"
              % (a.n, p50(starts), pct(starts, 0.99), p50(directs), pct(directs, 0.99)))
        print("TLS handshakes at the simulator during them: butlerd %d full + %d resumed, "
              "direct %d full + %d resumed" % (b_full, b_resumed, a.n - direct.resumed,
                                               direct.resumed))
        print("GET /v4/apps/list, %d clients at once: p50 %.2f ms p90 %.2f ms (QRS writes "
              "head+body at once), p50 %.2f ms p90 %.2f ms (QRS writes them apart, Nagle on)"
              % (CLIENTS, p50(apps), pct(apps, 0.9), p50(apps_split), pct(apps_split, 0.9)))
        print("butlerd worker CPU: %.0f us per start (new TLS connection, resumed), "
              "%.0f us per GET /v4/apps/list (kept-alive QRS connection)" % (cpu_start, cpu_get))
        print("ROW taskstart_added butlerd=%.2fms reference=- ratio=-" % p50(added))
        print("ROW taskstart_cpu butlerd=%.0fus reference=%.0fus ratio=%.2f"
              % (cpu_start, cpu_get, cpu_start / cpu_get))
        print("ROW taskstart butlerd=%.2fms reference=%.2fms ratio=%.2f"
              % (p50(starts), p50(directs), p50(starts) / p50(directs)))
        print("ROW taskstart_resumed butlerd=%.0f%% reference=%.0f%% ratio=-"
              % (100.0 * b_resumed / a.n, 100.0 * direct.resumed / a.n))
        print("ROW qrs_get_split butlerd=%.2fms reference=%.2fms ratio=%.2f"
              % (p50(apps_split), p50(apps), p50(apps_split) / p50(apps)))
    finally:
        for d in daemons:
            d.stop()
        for s in sims:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
