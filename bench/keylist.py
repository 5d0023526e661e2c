#!/usr/bin/python3
"""bench/keylist.py: GET /v4/keylist/{namespace} of a namespace with N keys
(default 1,000,000).

Writes a key-value snapshot file (format version 1) with N keys key-0000001 ..
in namespace "bench" and starts butlerd from it (1 worker, kvMaxKeys =
maxKeysPerNamespace = N, 64-byte keys and values at most, so the shared table
fits). Then, ROUNDS times, side by side:
  butlerd    curl GET /v4/keylist/bench, time_total;
  reference  nginx serving the very bytes butlerd returned, from a file (sendfile):
             about the fastest these bytes can cross HTTP on this host.
The reply is checked: valid JSON, N keys in creation order.

Memory: the peak RSS of butlerd's children (VmHWM, reset through
/proc/PID/clear_refs before each request) minus their RSS before it, for the N
keys and for N/10 keys (a second butlerd): with the list made a page at a time the
two are about the same, so the ratio is about 1.

Prints ROW lines (bench/README.md, "keylist.py"):
  ROW keylist_time  butlerd=<ms>ms reference=<ms>ms ratio=<butlerd/reference>
  ROW keylist_heap  butlerd=<MB for N keys>MB reference=<MB for N/10 keys>MB ratio=<x>

Usage: bench/keylist.py [-n N] [-r ROUNDS]
Environment: BUTLERD=path to the binary (default ../src/butlerd next to this
script), NGINX (default /usr/sbin/nginx).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import benchpath  # noqa: F401 (the harness on the import path, BUTLERD)

import harness  # noqa: E402

NS = "bench"


def write_snapshot(path, n):
    with open(path, "w") as f:
        f.write('{"format":"butlerd-kv","version":1,"savedAt":"2026-01-01T00:00:00.000Z",'
                '"namespaces":[{"namespace":"%s","keys":[' % NS)
        step = 100000
        for a in range(1, n + 1, step):
            f.write(("," if a > 1 else "") + ",".join(
                '{"key":"key-%07d","value":"v","expiresAt":null}' % i
                for i in range(a, min(n, a + step - 1) + 1)))
        f.write("]}]}")
    os.chmod(path, 0o600)


def status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def curl(url, out):
    r = subprocess.run(["curl", "-s", "-o", out, "-w", "%{http_code} %{time_total}", url],
                       capture_output=True, text=True, timeout=120)
    code, t = r.stdout.split()
    if code != "200":
        sys.exit("keylist.py: %s answered %s" % (url, code))
    return float(t) * 1000


def start(tmp, n):
    snap = os.path.join(tmp, "kv-%d.json" % n)
    write_snapshot(snap, n)
    ov = harness.kv_overrides(per_ns=n, namespaces=10, keys=n, key_bytes=64, value_bytes=64,
                              file=snap, interval=3600)
    d = harness.KvDaemonBase(tmp, ov, workers=1)
    harness.READY_TIMEOUT = 120.0
    d.start()
    return d


def heap_mb(d, out):
    """Peak RSS growth of butlerd's children over one GET, in MB."""
    kids = d.worker_pids()
    before = {}
    for p in kids:
        try:
            with open("/proc/%d/clear_refs" % p, "w") as f:
                f.write("5")
        except OSError:
            pass
        before[p] = status_kb(p, "VmRSS")
    curl("http://127.0.0.1:%d/v4/keylist/%s" % (d.port, NS), out)
    return sum(max(0, status_kb(p, "VmHWM") - before[p]) for p in kids) / 1024.0


def check(path, n):
    with open(path, "rb") as f:
        body = json.load(f)
    keys = body["keys"]
    if body["namespace"] != NS or len(keys) != n or keys[0] != {"key": "key-0000001"} \
            or keys[-1] != {"key": "key-%07d" % n}:
        sys.exit("keylist.py: the key list is wrong (%d keys)" % len(keys))


def nginx_start(tmp, docroot, port):
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 1; daemon off; master_process on; pid %(t)s/nginx.pid;
error_log %(t)s/nginx-error.log warn;
events { worker_connections 64; }
http { access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path %(t)s/cb; proxy_temp_path %(t)s/pt; fastcgi_temp_path %(t)s/ft;
  uwsgi_temp_path %(t)s/ut; scgi_temp_path %(t)s/st;
  server { listen 127.0.0.1:%(p)d; root %(r)s;
    location / { default_type "application/json; charset=utf-8"; } } }
""" % {"t": tmp, "p": port, "r": docroot})
    p = subprocess.Popen([os.environ.get("NGINX", "/usr/sbin/nginx"), "-c", conf, "-p", tmp],
                         stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d/list.json" % port
    for _ in range(200):
        if subprocess.run(["curl", "-s", "-o", "/dev/null", url]).returncode == 0:
            return p
        time.sleep(0.05)
    p.kill()
    sys.exit("keylist.py: nginx did not start")


def main():
    ap = argparse.ArgumentParser(description="GET /v4/keylist of a large namespace")
    ap.add_argument("-n", type=int, default=1000000, help="keys (default 1000000)")
    ap.add_argument("-r", type=int, default=3, help="rounds (default 3)")
    a = ap.parse_args()
    if a.n < 10 or a.r < 1:
        sys.exit("keylist.py: -n must be >= 10 and -r >= 1")
    tmp = tempfile.mkdtemp(prefix="bench-keylist-")
    os.chmod(tmp, 0o755)  # nginx started by root serves as "nobody"
    d = small = ng = None
    try:
        d = start(tmp, a.n)
        out = os.path.join(tmp, "docroot", "list.json")
        os.makedirs(os.path.dirname(out))
        url = "http://127.0.0.1:%d/v4/keylist/%s" % (d.port, NS)
        curl(url, out)  # warm-up, and the bytes nginx serves
        os.chmod(out, 0o644)
        check(out, a.n)
        ng = nginx_start(tmp, os.path.dirname(out), harness.free_port())
        nurl = "http://127.0.0.1:%d/list.json" % int(open(os.path.join(tmp, "nginx.conf")).read()
                                                        .split("listen 127.0.0.1:")[1].split(";")[0])
        scratch = os.path.join(tmp, "got.json")
        bt, rt = [], []
        for i in range(a.r):
            bt.append(curl(url, scratch))
            rt.append(curl(nurl, scratch))
            print("round %d: butlerd %.1f ms, nginx %.1f ms" % (i + 1, bt[-1], rt[-1]))
        check(scratch, a.n)
        big = heap_mb(d, scratch)
        d.stop()
        d.cleanup_shm()
        d = None
        small = start(tmp, a.n // 10)
        curl("http://127.0.0.1:%d/v4/keylist/%s" % (small.port, NS), scratch)  # warm-up
        little = heap_mb(small, scratch)
        print("reply %d bytes; peak RSS growth over one GET: %.1f MB for %d keys, "
              "%.1f MB for %d keys" % (os.path.getsize(out), big, a.n, little, a.n // 10))
        b, r = min(bt), min(rt)
        print("ROW keylist_time butlerd=%.1fms reference=%.1fms ratio=%.2f" % (b, r, b / r))
        print("ROW keylist_heap butlerd=%.1fMB reference=%.1fMB ratio=%.2f"
              % (big, little, big / little if little > 0.05 else float("nan")))
    finally:
        for x in (d, small):
            if x:
                x.stop()
                x.cleanup_shm()
        if ng:
            ng.send_signal(signal.SIGTERM)
            try:
                ng.wait(10)
            except subprocess.TimeoutExpired:
                ng.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
