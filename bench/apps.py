#!/usr/bin/python3
"""bench/apps.py: GET /v4/apps/list of a large site, old binary against new.

Starts the Qlik Sense simulator (tests/qlik-sim; QRS over TLS, client
certificates required) serving N generated apps (default 20,000) after its
fixture's five, with GET /qrs/app answering the full app objects of about
--app-bytes each (default 2048: a 40 MB reply for 20,000 apps), and two butlerds
with one worker each against it: the binary under test and, with --old PATH, an
earlier build copied aside (without --old, the same binary twice). Then ROUNDS
times (default 7), in an order that alternates each round, each butlerd answers
one GET /v4/apps/list on a kept-alive connection, and for each request:

  time    the request's wall time at the client (QRS's answer included: the
          simulator is the same for both, and its reply is encoded once);
  cpu     utime + stime of the worker (/proc/PID/stat, all threads);
  peak    the worker's peak RSS over the request (VmHWM, reset through
          /proc/PID/clear_refs just before it), MB;
  growth  that peak minus the worker's RSS just before the request, MB.

Every reply is checked: N + 5 apps, {"id","name"} each, in QRS's order.

Prints the medians with the spread (min-max) of each, then (bench/README.md,
"apps.py"):
  ROW apps_list_peak   butlerd=<MB> reference=<old's MB> ratio=<new/old>
  ROW apps_list_growth butlerd=<MB> reference=<old's MB> ratio=<new/old>
  ROW apps_list_time   butlerd=<ms> reference=<old's ms> ratio=<new/old>
  ROW apps_list_cpu    butlerd=<ms> reference=<old's ms> ratio=<new/old>

With --tasks, the same for the task lookup of a start by tag instead: the
simulator serves N generated reload tasks (default 1,000) of about --task-bytes
each in task/full (default 8192: an 8 MB reply for 1,000 tasks), all tagged
"Bulk", and each round is one PUT /v4/reloadtask/-/start with that tag, checked
to list every task in order (so each round also starts N tasks: time and cpu
include the starts). The rows are task_lookup_peak, _growth, _time and _cpu.

Usage: bench/apps.py [--tasks] [-n N] [-r ROUNDS] [--app-bytes B] [--task-bytes B]
                     [--old PATH]
Environment: BUTLERD=path to the binary (default ../src/butlerd next to this script).
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import benchpath  # noqa: F401 (the harness on the import path, BUTLERD)

import harness  # noqa: E402
from harness import FIXTURE  # noqa: E402
from taskfix import qrs_overrides  # noqa: E402
from qlik_sim import QlikSim, make_certs, make_many_apps, make_many_tasks  # noqa: E402

TICK_MS = 1e3 / os.sysconf("SC_CLK_TCK")


def butlerd_for(tmp, sim, certs, name, binary):
    ov = {"Butler": {
        "restServerEndpointsEnable": {"senseListApps": True, "senseStartTask": True},
        **qrs_overrides(sim, certs)}}
    d = harness.Daemon(os.path.join(tmp, name), ov, workers=1)
    os.makedirs(d.tmpdir)
    saved = os.environ["BUTLERD"]
    os.environ["BUTLERD"] = binary  # read by the harness when it spawns
    try:
        return d.start()
    finally:
        os.environ["BUTLERD"] = saved


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


class Side:
    """One butlerd, its worker and a kept-alive connection to it."""

    def __init__(self, name, d, req):
        self.name, self.d, self.req = name, d, req
        self.pid = d.worker_pids()[0]
        self.conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=120)
        self.time, self.cpu, self.peak, self.growth = [], [], [], []

    def get(self, expected):
        with open("/proc/%d/clear_refs" % self.pid, "w") as f:
            f.write("5")  # VmHWM := VmRSS
        rss, c0, t0 = status_kb(self.pid, "VmRSS"), cpu_ms(self.pid), time.perf_counter()
        method, path, body, pick = self.req
        self.conn.request(method, path, body, {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        body = r.read()
        t = (time.perf_counter() - t0) * 1000
        if r.status != 200 or pick(json.loads(body)) != expected:
            sys.exit("apps.py: %s answered %d with a wrong list" % (self.name, r.status))
        # the worker's CPU ticks are counted once the answer has left it
        hwm, c1 = status_kb(self.pid, "VmHWM"), cpu_ms(self.pid)
        return t, c1 - c0, hwm / 1024.0, (hwm - rss) / 1024.0

    def note(self, sample):
        for lst, v in zip((self.time, self.cpu, self.peak, self.growth), sample):
            lst.append(v)


def spread(xs, unit):
    return "%.1f%s (%.1f-%.1f)" % (statistics.median(xs), unit, min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser(description="GET /v4/apps/list (or with --tasks, a start "
                                 "by tag) of a large site, old vs new")
    ap.add_argument("--tasks", action="store_true",
                    help="measure the task lookup of a start by tag instead of the apps list")
    ap.add_argument("-n", type=int, default=None,
                    help="generated apps or tasks (default 20000 apps, 1000 tasks)")
    ap.add_argument("-r", type=int, default=7, help="rounds (default 7)")
    ap.add_argument("--app-bytes", type=int, default=2048, help="JSON bytes per app (default 2048)")
    ap.add_argument("--task-bytes", type=int, default=8192,
                    help="JSON bytes per task in task/full (default 8192)")
    ap.add_argument("--old", metavar="PATH", help="the reference binary (default: the same)")
    a = ap.parse_args()
    if a.n is None:
        a.n = 1000 if a.tasks else 20000
    if a.n < 1 or a.r < 1:
        sys.exit("apps.py: -n and -r must be >= 1")
    new = os.path.abspath(os.environ["BUTLERD"])
    old = os.path.abspath(a.old) if a.old else new
    tmp = tempfile.mkdtemp(prefix="bench-apps-")
    sim = None
    sides = []
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        sim = QlikSim(fixture_path=FIXTURE, certs_dir=os.path.dirname(certs["root.pem"]))
        if a.tasks:
            tasks = make_many_tasks(sim.tasks[0], a.n, "Bulk", a.task_bytes)
            sim.tasks.extend(tasks)
            expected = [{"taskId": x["id"], "taskName": x["name"]} for x in tasks]
            req = ("PUT", "/v4/reloadtask/-/start",
                   b'[{"type":"starttasktag","payload":{"tag":"Bulk"}}]', lambda o: o["tasksTag"])
            listed = [{k: v for k, v in x.items() if k not in ("app", "operational")}
                      for x in tasks]
            what, prefix = "tasks", "task_lookup"
        else:
            sim.apps.extend(make_many_apps(a.n, a.app_bytes))
            sim.full_app_list = True
            expected = [{"id": x["id"], "name": x["name"]} for x in sim.apps]
            req = ("GET", "/v4/apps/list", None, lambda o: o)
            listed, what, prefix = sim.apps, "apps", "apps_list"
        sim.start()
        sides = [Side("new", butlerd_for(tmp, sim, certs, "new", new), req),
                 Side("old", butlerd_for(tmp, sim, certs, "old", old), req)]
        for s in sides:
            s.get(expected)  # warm-up: connections to butlerd and to QRS, the reply encoded
        reply = len(json.dumps(listed, ensure_ascii=False).encode())
        print("%d %s, QRS reply %.1f MB, butlerd's answer %.1f MB" % (
            len(expected), what, reply / 1e6,
            len(json.dumps(expected, separators=(",", ":"))) / 1e6))
        for i in range(a.r):
            order = sides if i % 2 == 0 else sides[::-1]
            line = []
            for s in order:
                x = s.get(expected)
                s.note(x)
                line.append("%s %.0f ms cpu %.0f ms peak %.1f MB" % (s.name, x[0], x[1], x[2]))
            print("round %d: %s" % (i + 1, "; ".join(line)))
        for s in sides:
            print("%s: time %s, cpu %s, peak RSS %s, growth %s" % (
                s.name, spread(s.time, "ms"), spread(s.cpu, "ms"), spread(s.peak, "MB"),
                spread(s.growth, "MB")))
        n, o = sides
        for row, attr, unit in ((prefix + "_peak", "peak", "MB"),
                                (prefix + "_growth", "growth", "MB"),
                                (prefix + "_time", "time", "ms"),
                                (prefix + "_cpu", "cpu", "ms")):
            b = statistics.median(getattr(n, attr))
            r = statistics.median(getattr(o, attr))
            print("ROW %s butlerd=%.1f%s reference=%.1f%s ratio=%s" % (
                row, b, unit, r, unit, "%.2f" % (b / r) if r > 0 else "-"))
    finally:
        for s in sides:
            s.conn.close()
            s.d.stop()
        if sim:
            sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
