#!/usr/bin/python3
"""bench/sched.py: the cost of many schedules.

Starts the Qlik Sense simulator (tests/qlik-sim) and, one after the other in the
same run, two butlerd instances talking to it:
  reference  the scheduler on, with an empty schedule file
  loaded     the scheduler on, with N running schedules (default 10000) in the
             schedule file: a mix of expressions and time zones, of which
             BURST fire together at second 0 of every minute, EVERY10 fire every
             10 seconds, and the rest are daily, weekday, monthly and yearly
             schedules at random times in 12 zones (they rarely fire here)
and for each, over DURATION seconds (default 65: every minute has a burst):
  - CPU time of the scheduler process (utime + stime from /proc) and of all
    butlerd processes, per second of wall time;
  - memory: RSS and PSS of the scheduler process, PSS of all processes
    (the schedule list is shared memory, counted once by PSS);
  - start-up: time from the start of butlerd to "ready" (loading the file);
  - firing delay: from the firing time to the QRS start request being sent,
    as butlerd logs it at the debug level, p50, p99 and max;
  - firings counted by the simulator vs expected.
Prints both and the ratios loaded/reference.

Usage: bench/sched.py [-n N] [-d DURATION] [--burst B] [--every10 E]
Environment: BUTLERD=path to the binary (default ../src/butlerd next to this script).
"""

import argparse
import json
import os
import random
import re
import tempfile
import time

import benchpath  # noqa: F401 (the harness on the import path, BUTLERD)

import harness  # noqa: E402
from taskfix import make_certs, QlikSim, FIXTURE, X_QLIK_USER, qrs_overrides  # noqa: E402

TASK = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
ZONES = ["Europe/Stockholm", "America/New_York", "UTC", "Asia/Kolkata", "Australia/Sydney",
         "Europe/London", "America/Los_Angeles", "Asia/Tokyo", "Europe/Berlin",
         "America/Sao_Paulo", "Africa/Johannesburg", "Pacific/Auckland"]


def schedules(n, burst, every10, seed=1):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        if i < burst:
            cron = "0 * * * * *"
        elif i < burst + every10:
            cron = "%d/10 * * * * *" % (i % 10)
        else:
            kind = i % 4
            m, h = rnd.randrange(60), rnd.randrange(24)
            cron = ["%d %d * * *" % (m, h), "%d %d * * mon-fri" % (m, h),
                    "%d %d %d * *" % (m, h, rnd.randrange(1, 29)),
                    "%d %d %d %d *" % (m, h, rnd.randrange(1, 29), rnd.randrange(1, 13))][kind]
        out.append({"id": "bench-%05d" % i, "name": "bench %d" % i, "cronSchedule": cron,
                    "timezone": ZONES[i % len(ZONES)], "qlikSenseTaskId": TASK,
                    "startupState": "started", "tags": ["bench"]})
    return out


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def mem_kb(pid):
    rss = pss = 0
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except FileNotFoundError:
        pass
    return rss, pss


def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def run(label, tmp, sim, certs, scheds, duration, workers):
    d_dir = os.path.join(tmp, label)
    os.makedirs(d_dir)
    sfile = os.path.join(d_dir, "schedule.json")
    with open(sfile, "w") as f:
        json.dump({"butlerSchedule": scheds}, f, indent=2)
    ov = {"Butler": {
        "restServerEndpointsEnable": {"scheduler": {"getScheduleStatusAll": True}},
        "scheduler": {"enable": True, "configfile": sfile},
        **qrs_overrides(sim, certs)},
        "butlerd": {"logging": {"level": "debug"}, "scheduler": {"maxSchedules": max(len(scheds), 1)}}}
    d = harness.Daemon(d_dir, ov, workers=workers)
    t0 = time.time()
    d.start()
    startup = time.time() - t0
    m = re.findall(r"scheduler process pid (\d+) started", d.log())
    spid = int(m[-1])
    pids = [d.pid] + [int(p) for p in harness.children(d.pid)]
    # Let the first rebuild finish, then measure whole minutes' worth.
    time.sleep(2)
    sim.clear()
    mark = len(d.log())
    c0 = cpu_ticks(spid)
    call0 = sum(cpu_ticks(p) for p in pids)
    w0 = time.time()
    peak_rss = peak_pss = 0
    while time.time() - w0 < duration:
        time.sleep(0.5)
        rss, pss = mem_kb(spid)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
    wall = time.time() - w0
    hz = os.sysconf("SC_CLK_TCK")
    cpu = (cpu_ticks(spid) - c0) / hz
    cpu_all = (sum(cpu_ticks(p) for p in pids) - call0) / hz
    total_pss = sum(mem_kb(p)[1] for p in pids)
    log = d.log()[mark:]
    delays = [int(x) for x in re.findall(r"sent (-?\d+) ms after its firing time", log)]
    starts = len(sim.starts())
    d.stop()
    return {"label": label, "schedules": len(scheds), "startup_s": startup,
            "cpu_sched_pct": 100.0 * cpu / wall, "cpu_all_pct": 100.0 * cpu_all / wall,
            "rss_sched_kb": peak_rss, "pss_sched_kb": peak_pss, "pss_all_kb": total_pss,
            "firings": len(delays), "sim_starts": starts, "wall": wall,
            "delay_p50": pct(delays, 50), "delay_p99": pct(delays, 99),
            "delay_max": max(delays) if delays else float("nan")}


def direct_burst(sim, certs, n, threads, fresh):
    """The simulator's own ceiling: N start requests sent straight to it from
    THREADS threads, each on a new TLS connection (FRESH, as butlerd sends every
    start: never on a reused connection, so a start is never sent twice) or on one
    keep-alive connection per thread. Seconds from the first to the last answer."""
    import http.client
    import ssl
    import threading
    ctx = ssl.create_default_context(cafile=certs["root.pem"])
    ctx.load_cert_chain(certs["client.pem"], certs["client_key.pem"])
    conns = [http.client.HTTPSConnection("127.0.0.1", sim.qrs_port, context=ctx, timeout=60)
             for _ in range(threads)]
    for c in conns:  # connect and warm up first, as the start threads are
        c.request("GET", "/qrs/about?xrfkey=abcdefghijklmnop",
                  headers={"X-Qlik-Xrfkey": "abcdefghijklmnop", "X-Qlik-User": X_QLIK_USER})
        c.getresponse().read()
    left = [n]
    lock = threading.Lock()

    def worker(c):
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            if fresh:
                c.close()
                c = http.client.HTTPSConnection("127.0.0.1", sim.qrs_port, context=ctx,
                                                timeout=60)
            c.request("POST", "/qrs/task/%s/start?xrfkey=abcdefghijklmnop" % TASK, body=b"{}",
                      headers={"X-Qlik-Xrfkey": "abcdefghijklmnop", "X-Qlik-User": X_QLIK_USER,
                               "Content-Type": "application/json"})
            c.getresponse().read()
        c.close()
    t0 = time.time()
    ts = [threading.Thread(target=worker, args=(c,)) for c in conns]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("-d", "--duration", type=float, default=65)
    ap.add_argument("--burst", type=int, default=200)
    ap.add_argument("--every10", type=int, default=100)
    ap.add_argument("-w", "--workers", type=int, default=2)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="butlerd-bench-sched-")
    certs = make_certs(os.path.join(tmp, "certs"))
    sim = QlikSim(fixture_path=FIXTURE, certs_dir=os.path.dirname(certs["root.pem"])).start()
    try:
        ref = run("reference", tmp, sim, certs, [], a.duration, a.workers)
        big = run("loaded", tmp, sim, certs, schedules(a.n, a.burst, a.every10), a.duration,
                  a.workers)
        ceiling_ka = direct_burst(sim, certs, a.burst, 8, False)
    finally:
        sim.stop()
    print("%-10s %9s %9s %10s %10s %12s %12s %12s %8s %8s %8s %8s %8s" % (
        "run", "scheds", "start_s", "cpu_sch%", "cpu_all%", "rss_sch_KB", "pss_sch_KB",
        "pss_all_KB", "firings", "qrs_got", "p50_ms", "p99_ms", "max_ms"))
    for r in (ref, big):
        print("%-10s %9d %9.2f %10.2f %10.2f %12d %12d %12d %8d %8d %8s %8s %8s" % (
            r["label"], r["schedules"], r["startup_s"], r["cpu_sched_pct"], r["cpu_all_pct"],
            r["rss_sched_kb"], r["pss_sched_kb"], r["pss_all_kb"], r["firings"], r["sim_starts"],
            r["delay_p50"], r["delay_p99"], r["delay_max"]))
    def ratio(k):
        return big[k] / ref[k] if ref[k] else float("inf")
    print("ratios loaded/reference: scheduler CPU %.1fx, all CPU %.2fx, scheduler PSS %.2fx, "
          "all PSS %.2fx" % (ratio("cpu_sched_pct"), ratio("cpu_all_pct"),
                             ratio("pss_sched_kb"), ratio("pss_all_kb")))
    # A Python client cannot stand in for butlerd's new-connection-per-start (its own
    # TLS handshakes cost ~45 ms each, 9 s for 200): the keep-alive figure is the
    # simulator's request ceiling; the rest of a burst's time is TLS handshakes.
    print("simulator ceiling: %d starts sent straight to it from 8 threads on keep-alive "
          "connections took %.0f ms; the scheduler's burst of %d (a new TLS connection per "
          "start): p99 %s ms after the firing second"
          % (a.burst, ceiling_ka * 1000, a.burst, big["delay_p99"]))
    minutes = big["wall"] / 60.0
    print("expected firings in %.0f s: about %d (burst %d per minute, %d every 10 s)" % (
        big["wall"], int(a.burst * minutes + a.every10 * 6 * minutes), a.burst, a.every10))


if __name__ == "__main__":
    main()
