#!/usr/bin/python3
"""bench/udp_cost.py: CPU per UDP session datagram in butlerd's master, and loss.

Sends N distinct "Start session" datagrams (default 100,000, made by
udp_flood.py gen, sent by the paced C sender udp_blast.c at RATE per second,
default 100,000) to, side by side in the same run:
  sink          bench/udp_sink.c: reads them as butlerd does and only counts;
  butlerd       session events, MQTT off; received = the master's UDP counter (butlerd -S);
  butlerd+MQTT  the same, MQTT on against a mosquitto started here, so every
                event also publishes its session topic; with the default
                subscription (qliksense/#, MQTT 3.1.1: the broker sends each
                publication back), narrowed to the start topic, and with
                butlerd.mqtt.protocolVersion = 5 (No Local: nothing comes back).
CPU = utime+stime of the receiving process (all threads of butlerd's master,
which owns the UDP intake and the MQTT client; /proc/PID/task/*/schedstat)
between the start of the send and the moment everything was received (for
butlerd: and its CPU stopped growing, so messages the broker sends back after
the last datagram count too), divided by the datagrams received. ROUNDS
rounds (default 2), the best of each kept.

Prints (bench/README.md, "udp_cost.py"):
  ROW udp_cpu_session       butlerd=<us>us reference=<sink us>us ratio=<x>
  ROW udp_cpu_session_mqtt  butlerd=<us>us reference=<sink us>us ratio=<x>
  ROW udp_lost_mqtt         butlerd=<datagrams lost at RATE> reference=<sink lost> ratio=-
  and the same two for _narrow and _mqtt5
  ROW udp_cpu_session_refresh  MQTT off, Start session of users already active

With --compare OLD, only one configuration (--config: off, mqtt, narrow or mqtt5;
default off) is measured, with the binary OLD and with BUTLERD alternately, in the
order swapped every round, and the sink in each round: a change shows in the same
run, side by side. Prints each round, then the median and the range of each:
  COMPARE old=<median>us [<min>-<max>] new=<median>us [<min>-<max>] sink=<median>us
          ratio=<new/old> worst_lost_old=<datagrams> worst_lost_new=<datagrams>

Usage: bench/udp_cost.py [-n N] [-r RATE] [--rounds R] [--compare OLD [--config C]]
Environment: BUTLERD (default ../src/butlerd), MOSQUITTO (/usr/sbin/mosquitto), CC (cc).
"""

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchpath import HERE  # also puts the harness on the import path, sets BUTLERD

import harness  # noqa: E402
import broker as brokerfix  # noqa: E402


def cpu_ns(pid):
    total = 0
    for p in glob.glob("/proc/%d/task/*/schedstat" % pid):
        try:
            with open(p) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def cpu_settled(pid):
    """CPU of pid once it has stopped working: the master may still be reading
    messages the broker sends back after the last datagram was counted (bounded:
    5 s; idle it uses well under 1 ms per 0.2 s)."""
    last = cpu_ns(pid)
    for _ in range(25):
        time.sleep(0.2)
        now = cpu_ns(pid)
        if now - last < 1000000:
            return now
        last = now
    return last


def udp_port():
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def blast(tmp, port, rate, n, what="session.dgrams"):
    r = subprocess.run([os.path.join(tmp, "udp_blast"), "-p", str(port), "-r", str(rate),
                        "-f", os.path.join(tmp, what), "-n", str(n), "-b", "16"],
                       capture_output=True, text=True, timeout=n // max(rate, 1) + 60)
    if r.returncode != 0 or not r.stdout.startswith("sent "):
        sys.exit("udp_cost.py: udp_blast failed: " + r.stderr)
    return float(r.stdout.split()[3])


def wait_stable(fn, n):
    last, same, v = -1, 0, 0
    for _ in range(600):
        v = fn()
        if v >= n:
            return v
        same = same + 1 if v == last else 0
        if same >= 20:
            return v
        last = v
        time.sleep(0.1)
    return v


def run_sink(tmp, n, rate):
    ready = os.path.join(tmp, "sink.ready")
    if os.path.exists(ready):
        os.unlink(ready)
    p = subprocess.Popen([os.path.join(tmp, "udp_sink"), "0", ready, "600"],
                         stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            if os.path.exists(ready):
                break
            time.sleep(0.05)
        port = int(open(ready).read().split()[0])
        blast(tmp, port, rate, n, "warm.dgrams")
        time.sleep(0.5)
        c0 = cpu_ns(p.pid)
        sent = blast(tmp, port, rate, n)
        time.sleep(0.5)
        c1 = cpu_ns(p.pid)
    finally:
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=10)
    got = int(out.split()[1]) - n  # less the warm-up
    return (c1 - c0) / 1000.0 / max(got, 1), got, sent


def run_butlerd(tmp, n, rate, mosq, mqtt_more=None, extra=None, refresh=None):
    sport, tport = udp_port(), udp_port()
    ov = {"Butler": {"restServerEndpointsEnable": {"activeUserCount": True},
                     "udpServerConfig": {"enable": True, "serverHost": "127.0.0.1",
                                         "portTaskFailure": tport,
                                         "portSessionConnectionEvents": sport,
                                         "messageQueue": {"maxSize": 2 * n + 10,
                                                          "maxConcurrent": 10}}},
          "butlerd": {"shm": {"maxActiveUsers": 2 * n + 10}}}
    if mosq:
        ov = harness.merge(ov, brokerfix.mqtt_overrides(mosq, client_id="butlerd-bench", **(mqtt_more or {})))
    if extra:
        ov = harness.merge(ov, extra)
    d = harness.Daemon(os.path.join(tmp, "d%d" % time.monotonic_ns()), ov, workers=1)
    os.makedirs(d.tmpdir)
    d.start()
    try:
        if mosq:
            ok = harness.wait_until(lambda: any("onnected" in l for l in d.snapshot()), 10)
            time.sleep(0.3)

        def count():  # datagrams the master has read (butlerd -S)
            r = subprocess.run([harness.binary(), "-S", "-c", d.config_path],
                               capture_output=True, text=True, timeout=10)
            try:
                return json.loads(r.stdout)["udp"]["sessionEvents"]["received"]
            except (ValueError, KeyError):
                return 0
        # warm-up: other users first, so the active-user table's pages are in
        # place and the measurement is the steady state, not first page faults
        blast(tmp, sport, rate, n, "warm.dgrams")
        warm = wait_stable(count, n)
        c0 = cpu_ns(d.pid)
        sent = blast(tmp, sport, rate, n)
        got = wait_stable(lambda: count() - warm, n)
        c1 = cpu_settled(d.pid)
        if refresh is not None:
            # the warm-up users again: every datagram refreshes an existing entry
            base = count()
            r0 = cpu_ns(d.pid)
            blast(tmp, sport, rate, n, "warm.dgrams")
            rgot = wait_stable(lambda: count() - base, n)
            refresh.append(((cpu_ns(d.pid) - r0) / 1000.0 / max(rgot, 1), rgot))
        return (c1 - c0) / 1000.0 / max(got, 1), got, sent
    finally:
        d.stop()


CONFIGS = {"off": (None, None), "mqtt": (True, None),
           "narrow": ({"subscriptionRootTopic": "qliksense/start_task"}, None),
           "mqtt5": (True, {"butlerd": {"mqtt": {"protocolVersion": 5}}})}


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def compare(tmp, a, mosq):
    """--compare: the old and the new binary alternately, the sink in each round."""
    new = os.environ["BUTLERD"]
    more, extra = CONFIGS[a.config]
    res = {"old": [], "new": [], "sink": []}
    lost = {"old": 0, "new": 0}
    for rnd in range(a.rounds):
        us, got, sent = run_sink(tmp, a.n, a.rate)
        res["sink"].append(us)
        print("round %d sink %.2f us/datagram, received %d of %d" % (rnd + 1, us, got, a.n))
        order = (("old", a.compare), ("new", new))
        for label, binary in (order if rnd % 2 == 0 else order[::-1]):
            os.environ["BUTLERD"] = binary
            try:
                us, got, sent = run_butlerd(tmp, a.n, a.rate, mosq if more else None,
                                            more if isinstance(more, dict) else None, extra)
            finally:
                os.environ["BUTLERD"] = new
            res[label].append(us)
            lost[label] = max(lost[label], a.n - got)
            print("round %d %s %.2f us/datagram, received %d of %d (sent at %.0f/s)"
                  % (rnd + 1, label, us, got, a.n, sent), flush=True)
    o, n, k = median(res["old"]), median(res["new"]), median(res["sink"])
    print("COMPARE config=%s old=%.2fus [%.2f-%.2f] new=%.2fus [%.2f-%.2f] sink=%.2fus "
          "[%.2f-%.2f] ratio=%.2f worst_lost_old=%d worst_lost_new=%d"
          % (a.config, o, min(res["old"]), max(res["old"]), n, min(res["new"]), max(res["new"]),
             k, min(res["sink"]), max(res["sink"]), n / o, lost["old"], lost["new"]))


def main():
    ap = argparse.ArgumentParser(description="CPU per UDP session datagram")
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("-r", "--rate", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--compare", metavar="OLD", help="an older butlerd binary, run alternately")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="off")
    a = ap.parse_args()
    if a.n < 100 or a.rate < 1 or a.rounds < 1:
        sys.exit("udp_cost.py: -n >= 100, -r >= 1, --rounds >= 1")
    if a.compare and not os.access(a.compare, os.X_OK):
        sys.exit("udp_cost.py: --compare %s: not an executable" % a.compare)
    tmp = tempfile.mkdtemp(prefix="bench-udpcost-")
    os.chmod(tmp, 0o755)
    mosq = None
    try:
        cc = os.environ.get("CC", "cc")
        for t in ("udp_sink", "udp_blast"):
            subprocess.run([cc, "-O2", "-Wall", "-o", os.path.join(tmp, t),
                            os.path.join(HERE, t + ".c")], check=True)
        with open(os.path.join(tmp, "session.dgrams"), "wb") as f:
            subprocess.run([sys.executable, os.path.join(HERE, "udp_flood.py"), "gen", "--count",
                            str(a.n), "--kind", "session", "--tag", "S"], stdout=f, check=True)
        with open(os.path.join(tmp, "warm.dgrams"), "wb") as f:
            subprocess.run([sys.executable, os.path.join(HERE, "udp_flood.py"), "gen", "--count",
                            str(a.n), "--kind", "session", "--tag", "W"], stdout=f, check=True)
        mosq = brokerfix.Broker(tmp).start()
        if a.compare:
            compare(tmp, a, mosq)
            return
        best = {}
        refreshes = []  # (us, received) of each round's refresh run, MQTT off
        for rnd in range(a.rounds):
            for name, fn in (("sink", lambda: run_sink(tmp, a.n, a.rate)),
                             ("butlerd", lambda: run_butlerd(tmp, a.n, a.rate, None,
                                                             refresh=refreshes)),
                             ("butlerd+mqtt", lambda: run_butlerd(tmp, a.n, a.rate, mosq)),
                             ("butlerd+mqtt-narrow", lambda: run_butlerd(
                                 tmp, a.n, a.rate, mosq,
                                 {"subscriptionRootTopic": "qliksense/start_task"})),
                             ("butlerd+mqtt5", lambda: run_butlerd(
                                 tmp, a.n, a.rate, mosq, None,
                                 {"butlerd": {"mqtt": {"protocolVersion": 5}}}))):
                us, got, sent = fn()
                print("round %d %-13s %.2f us/datagram, received %d of %d (sent at %.0f/s)"
                      % (rnd + 1, name, us, got, a.n, sent))
                b = best.get(name)
                # the best CPU, and the worst loss, of the rounds
                best[name] = (us if b is None else min(us, b[0]), got if b is None else min(got, b[1]))
        s, b, m = best["sink"], best["butlerd"], best["butlerd+mqtt"]
        print("ROW udp_cpu_session butlerd=%.2fus reference=%.2fus ratio=%.2f"
              % (b[0], s[0], b[0] / s[0]))
        print("ROW udp_cpu_session_mqtt butlerd=%.2fus reference=%.2fus ratio=%.2f"
              % (m[0], s[0], m[0] / s[0]))
        print("ROW udp_lost_mqtt butlerd=%d reference=%d ratio=-" % (a.n - m[1], a.n - s[1]))
        w = best["butlerd+mqtt-narrow"]
        print("ROW udp_cpu_session_mqtt_narrow butlerd=%.2fus reference=%.2fus ratio=%.2f"
              % (w[0], s[0], w[0] / s[0]))
        print("ROW udp_lost_mqtt_narrow butlerd=%d reference=%d ratio=-" % (a.n - w[1], a.n - s[1]))
        f = min(refreshes)
        print("ROW udp_cpu_session_refresh butlerd=%.2fus reference=%.2fus ratio=%.2f"
              % (f[0], s[0], f[0] / s[0]))
        v = best["butlerd+mqtt5"]
        print("ROW udp_cpu_session_mqtt5 butlerd=%.2fus reference=%.2fus ratio=%.2f"
              % (v[0], s[0], v[0] / s[0]))
        print("ROW udp_lost_mqtt5 butlerd=%d reference=%d ratio=-" % (a.n - v[1], a.n - s[1]))
    finally:
        if mosq:
            mosq.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
