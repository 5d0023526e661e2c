#!/usr/bin/python3
"""bench/udp_flood.py: the datagrams of bench/udp.sh.

  udp_flood.py gen --count N --kind session|task --tag TAG
      writes N distinct datagrams to stdout, one per line (session: "Start
      session" of user u<i> in directory TAG on proxy host bench.node; task:
      a failed reload with task name TAG-<i> and its own execution ID). The
      datagrams are built by tests/qlik-sim/udp_sender.py; none contains a
      newline. bench/udp.sh sends them with the C sender udp_blast.c.
  udp_flood.py send --port P --rate R --count N --kind session|task --tag TAG
      sends the same datagrams itself, paced at R per second; prints
      "sent N S_SECONDS RATE". One python3 core reaches about 135k/s at best:
      for manual use only, bench/udp.sh uses udp_blast.c.
"""

import argparse
import zlib
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "qlik-sim"))
from udp_sender import join, session_fields, task_fields  # noqa: E402

TASK_ID = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
APP_ID = "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c01"


def datagrams(kind, n, tag):
    if kind == "session":
        return [join(session_fields("start", "bench.node", tag, "u%d" % i)) for i in range(n)]
    out = []
    for i in range(n):
        out.append(join(task_fields("failed", task_name="%s-%d" % (tag, i), task_id=TASK_ID,
                                    app_id=APP_ID,
                                    execution_id="%08x-0000-4000-8000-%012x" % (zlib.crc32(tag.encode()), i),
                                    log_time="2026-11-22 22:49:53,123")))
    return out


def send(a):
    grams = datagrams(a.kind, a.count, a.tag)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", a.port))
    snd = s.send
    t0 = time.perf_counter()
    i, n, rate = 0, len(grams), float(a.rate)
    while i < n:
        due = min(n, int((time.perf_counter() - t0) * rate) + 1)
        while i < due:
            try:
                snd(grams[i])
            except (BlockingIOError, ConnectionRefusedError):
                pass    # loopback: a full queue or nobody listening loses it
            i += 1
    el = time.perf_counter() - t0
    print("sent %d %.6f %.1f" % (n, el, n / el if el > 0 else 0))


def gen(a):
    out = sys.stdout.buffer
    for g in datagrams(a.kind, a.count, a.tag):
        if b"\n" in g:
            sys.exit("udp_flood.py: a datagram contains a newline")
        out.write(g + b"\n")
    out.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sp = p.add_subparsers(dest="cmd", required=True)
    a = sp.add_parser("send")
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--rate", type=float, required=True)
    a.add_argument("--count", type=int, required=True)
    a.add_argument("--kind", choices=("session", "task"), default="session")
    a.add_argument("--tag", default="B")
    g = sp.add_parser("gen")
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--kind", choices=("session", "task"), default="session")
    g.add_argument("--tag", default="B")
    args = p.parse_args()
    (send if args.cmd == "send" else gen)(args)


if __name__ == "__main__":
    main()
