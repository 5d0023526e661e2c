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

With --old PATH, a second butlerd (1 worker) runs the binary at PATH (an
earlier build, copied aside) against the same normal simulator, and every
iteration starts the task through both butlerds and directly, in an order that
rotates: old and new are measured side by side, under the same load.

The simulator counts the TLS handshakes it completes, full and resumed: with
TLS session resumption, every start after the first should be a resumed one.

Prints (bench/README.md, "taskstart.py"):
  ROW taskstart_added  butlerd=<start - direct, p50>ms reference=-  ratio=-
  ROW taskstart        butlerd=<start p50>ms reference=<direct p50>ms ratio=<x>
  ROW taskstart_cpu    butlerd=<worker CPU per start>us reference=<per apps GET>us ratio=<x>
  ROW taskstart_resumed butlerd=<% of starts with a resumed handshake>% reference=<% for direct>% ratio=-
  ROW qrs_get_split    butlerd=<apps p50, split-writes QRS>ms reference=<apps p50, normal QRS>ms ratio=<x>
and with --old:
  ROW taskstart_added_vs_old butlerd=<added p50>ms reference=<old's added p50>ms ratio=<x>
  ROW taskstart_cpu_vs_old   butlerd=<CPU per start>us reference=<old's>us ratio=<x>
  ROW taskstart_syscalls_vs_old butlerd=<system calls per start> reference=<old's> ratio=<x>
    (only when strace is installed: counted over -S starts of each, traced)

Worker CPU is utime + stime from /proc/PID/stat (all threads, also those that
have ended, such as a resolver thread).

Usage: bench/taskstart.py [-n N] [--old PATH] [-S N]
Environment: BUTLERD=path to the binary (default ../src/butlerd next to this script).
"""

import argparse
import http.client
import os
import random
import shutil
import socket
import ssl
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import quote

import benchpath  # noqa: F401 (the harness on the import path, BUTLERD)

import harness  # noqa: E402
from harness import FIXTURE, X_QLIK_USER  # noqa: E402
from taskfix import qrs_overrides  # noqa: E402
from qlik_sim import QlikSim, make_certs  # noqa: E402

TASK = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
ALNUM = string.ascii_letters + string.digits
pc = time.perf_counter


def butlerd_for(tmp, sim, certs, name, binary=None):
    ov = {"Butler": {
        "restServerEndpointsEnable": {"senseStartTask": True, "senseListApps": True},
        **qrs_overrides(sim, certs),
        "startTaskFilter": {"enable": False}}}
    d = harness.Daemon(os.path.join(tmp, name), ov, workers=1)
    os.makedirs(d.tmpdir)
    if not binary:
        return d.start()
    saved = os.environ["BUTLERD"]
    os.environ["BUTLERD"] = binary  # read by the harness when it spawns
    try:
        return d.start()
    finally:
        os.environ["BUTLERD"] = saved


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


TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")


def cpu_ns(d):
    """CPU time of butlerd's workers: utime + stime of all their threads, also
    of threads that have ended, ns (clock-tick resolution)."""
    total = 0
    for pid in d.worker_pids():
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total * TICK_NS


def syscalls_per_start(d, c, path, n):
    """System calls of d's worker (all threads) per start, over n starts made
    on connection c while strace -c -f follows it; None without strace."""
    strace = shutil.which("strace")
    if not strace or n <= 0:
        return None
    out = os.path.join(d.tmpdir, "strace.out")
    p = subprocess.Popen([strace, "-f", "-c", "-o", out, "-p", str(d.worker_pids()[0])],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        p.stderr.readline()  # "Process N attached": tracing from here on
        for _ in range(n):
            timed_get(c, "PUT", path, b"[]", {"Content-Type": "application/json"})
    finally:
        p.send_signal(2)
        p.wait(timeout=30)
    total = None
    try:
        with open(out) as f:
            for line in f:
                w = line.split()
                if w and w[-1] == "total":
                    total = int(w[3])
    except (OSError, ValueError, IndexError):
        return None  # strace could not attach (ptrace not allowed) or wrote no summary
    return None if total is None else total / float(n)


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
    ap.add_argument("--old", metavar="PATH", help="an earlier butlerd binary, measured "
                    "side by side (interleaved) with BUTLERD")
    ap.add_argument("-S", type=int, default=100,
                    help="with --old: starts traced per binary to count system calls")
    a = ap.parse_args()
    if a.n < 10 or a.W < 1 or a.S < 0:
        sys.exit("taskstart.py: -n >= 10, -W >= 1, -S >= 0")
    if a.old and not os.access(a.old, os.X_OK):
        sys.exit("taskstart.py: --old %s: not an executable file" % a.old)
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
        bo = co = None
        if a.old:
            bo = butlerd_for(tmp, sim, certs, "d-old", a.old)
            daemons.append(bo)
            co = bo.conn(timeout=30)
        c = bd.conn(timeout=30)
        cs = bs.conn(timeout=30)
        for x in (c, cs) + ((co,) if co else ()):
            x.connect()
            x.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        direct = Direct(sim, certs)
        spath = "/v4/reloadtask/%s/start" % TASK
        jh = {"Content-Type": "application/json"}
        starts, directs, olds, apps, apps_split = [], [], [], [], []
        for i in range(a.W + a.n):
            if i == a.W:
                hs0 = sim.handshakes()
                direct.resumed = 0
                cpu0 = cpu_ns(bd)
                cpu0_old = cpu_ns(bo) if bo else 0
            t = {}

            def new():
                t["new"], body = timed_get(c, "PUT", spath, b"[]", jh)
                if i == 0 and TASK not in body.decode():
                    sys.exit("taskstart.py: the start did not start the task: %r" % body[:300])

            def old():
                t["old"], body = timed_get(co, "PUT", spath, b"[]", jh)
                if i == 0 and TASK not in body.decode():
                    sys.exit("taskstart.py: --old did not start the task: %r" % body[:300])

            def drc():
                t0 = pc()
                direct.start()
                t["direct"] = (pc() - t0) * 1000
            steps = [new, drc] + ([old] if bo else [])
            k = i % len(steps)  # the order rotates, so no one always goes first
            for f in steps[k:] + steps[:k]:
                f()
            if i >= a.W:
                starts.append(t["new"])
                directs.append(t["direct"])
                if bo:
                    olds.append(t["old"])
        hs1 = sim.handshakes()
        cpu_start = (cpu_ns(bd) - cpu0) / 1000.0 / a.n
        cpu_old = (cpu_ns(bo) - cpu0_old) / 1000.0 / a.n if bo else 0
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
        # handshakes by butlerd(s) = all handshakes less the direct client's (one per start)
        nb = 2 if bo else 1
        full = hs1["full"] - hs0["full"]
        resumed = hs1["resumed"] - hs0["resumed"]
        b_resumed = resumed - direct.resumed
        b_full = full - (a.n - direct.resumed)
        added = [s - d for s, d in zip(starts, directs)]
        added_old = [s - d for s, d in zip(olds, directs)]
        sc_new = sc_old = None
        if bo:
            for x, y in ((bd, c), (bo, co)):  # the same warm-up for both
                for _ in range(a.W):
                    timed_get(y, "PUT", spath, b"[]", jh)
            sc_old = syscalls_per_start(bo, co, spath, a.S)
            sc_new = syscalls_per_start(bd, c, spath, a.S)
        print("%d starts: butlerd p50 %.2f ms p99 %.2f ms; direct p50 %.2f ms p99 %.2f ms"
              % (a.n, p50(starts), pct(starts, 0.99), p50(directs), pct(directs, 0.99)))
        if bo:
            print("%d starts through --old: p50 %.2f ms p99 %.2f ms; added p50 %.2f ms "
                  "(new %.2f ms); worker CPU %.0f us per start (new %.0f us)"
                  % (a.n, p50(olds), pct(olds, 0.99), p50(added_old), p50(added), cpu_old,
                     cpu_start))
        print("TLS handshakes at the simulator during them: butlerd%s %d full + %d resumed, "
              "direct %d full + %d resumed" % (" (both)" if bo else "", b_full, b_resumed,
                                               a.n - direct.resumed, direct.resumed))
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
              % (100.0 * b_resumed / (nb * a.n), 100.0 * direct.resumed / a.n))
        print("ROW qrs_get_split butlerd=%.2fms reference=%.2fms ratio=%.2f"
              % (p50(apps_split), p50(apps), p50(apps_split) / p50(apps)))
        if bo:
            ok = p50(added) > 0 and p50(added_old) > 0  # a ratio of differences
            print("ROW taskstart_added_vs_old butlerd=%.2fms reference=%.2fms ratio=%s"
                  % (p50(added), p50(added_old),
                     "%.2f" % (p50(added) / p50(added_old)) if ok else "-"))
            print("ROW taskstart_cpu_vs_old butlerd=%.0fus reference=%.0fus ratio=%.2f"
                  % (cpu_start, cpu_old, cpu_start / cpu_old))
            if sc_new is not None and sc_old is not None:
                print("ROW taskstart_syscalls_vs_old butlerd=%.1f reference=%.1f ratio=%.2f"
                      % (sc_new, sc_old, sc_new / sc_old))
    finally:
        for d in daemons:
            d.stop()
        for s in sims:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
