"""Key-value store persistence (spec 4.7, issue 3): snapshot at orderly
shutdown and every intervalSeconds, load at startup (expired entries dropped,
limits applied, a corrupt file renamed to <file>.bad), and survival of a
worker crash and of a master crash (the shared-memory segment is
re-attached by the next start with the same port and shm.name).

Every daemon gets its own shared-memory name (/butlerd-t<random hex>); the
daemon creates /dev/shm/<name>.<port>, which is removed after each test."""

import json
import os
import re
import signal
import stat
import struct
import threading
import time
import urllib.parse

import pytest

import harness
import kvsnapfile
from harness import JSON_CT, wait_until

# ------------------------------------------------------------------ helpers


def jdump(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def q(s):
    return urllib.parse.quote(s, safe="")


def entry(ns, key, value, ttl=None):
    d = {"namespace": ns, "key": key, "value": value}
    if ttl is not None:
        d["ttl"] = ttl
    return jdump(d)


def key_not_found(ns, key):
    return jdump({"statusCode": 400, "error": "Bad Request",
                  "message": "Key '%s' not found in namespace: %s" % (key, ns)})


def keylist_body(ns, keys):
    return jdump({"namespace": ns, "keys": [{"key": k} for k in keys]})


def check(r, status, body):
    assert r.status == status, r
    assert r.body == body, "\n got: %r\nwant: %r" % (r.body, body)
    assert r.header("Content-Type") == JSON_CT, r


def now_ms():
    return int(time.time() * 1000)


kv_overrides = harness.kv_overrides


class KvDaemon(harness.KvDaemonBase):
    """harness.Daemon with the key-value store enabled, a private random
    shared-memory name and a restart that keeps port and shm.name."""

    def _reap(self):
        """Forget the previous master process (already exited, or a failed
        start of ours, which is stopped here). Does not touch /dev/shm."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            if self.wait_exit(10) is None:
                self.proc.kill()
                self.proc.wait(10)
        self.eof.wait(5)
        try:
            self.proc.stderr.close()
        except Exception:  # noqa: BLE001
            pass

    def restart(self, attempts=10):
        """Start again with the same config, port and shm.name (the
        previous master and its workers must have exited)."""
        assert not self.running(), "restart() while the master still runs"
        left = [p for p in self.seen_pids if harness.alive(p) and harness.is_butlerd(p)]
        assert not left, "old workers still alive: %r" % left
        for i in range(attempts):
            self._reap()
            self.write_config(self.config())
            try:
                self._spawn()
                return self
            except harness.DaemonError:
                log = self.log().lower()
                self._reap()
                if ("bind" in log or "in use" in log) and i < attempts - 1:
                    time.sleep(0.5)
                    continue
                raise
        raise AssertionError("unreachable")

    def kill_master(self):
        """SIGKILL the master; wait until it and its workers are gone."""
        pids = self.worker_pids()
        self.seen_pids.update(pids)
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(5)
        gone = wait_until(lambda: not any(harness.alive(p) for p in pids), 5.0, 0.02)
        assert gone, "workers %s still alive 5 s after the master was SIGKILLed" % (
            [p for p in pids if harness.alive(p)])

    def term(self):
        """SIGTERM; wait for exit status 0."""
        self.signal(signal.SIGTERM)
        rc = self.wait_exit(15)
        assert rc == 0, "exit status %r\n%s" % (rc, self.log_tail())
        self.eof.wait(5)

    # ---- requests
    def post(self, ns, body, headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return self.request("POST", "/v4/keyvalues/" + q(ns), h, jdump(body))

    def put_ok(self, ns, key, value, ttl=None):
        body = {"key": key, "value": value}
        if ttl is not None:
            body["ttl"] = ttl
        check(self.post(ns, body), 201, entry(ns, key, value, 0 if ttl is None else ttl))

    def kv_get(self, ns, key):
        return self.get("/v4/keyvalues/%s?key=%s" % (q(ns), q(key)))

    def keylist(self, ns):
        return self.get("/v4/keylist/" + q(ns))

    def namespaces(self):
        r = self.get("/v4/keyvaluesnamespaces")
        assert r.status == 200, r
        return json.loads(r.body)


@pytest.fixture
def kvd(tmp_path):
    """Factory: kvd(workers=2, file=, interval=, limits...) -> running KvDaemon.
    file=True means <tmp>/state/kv.snapshot."""
    started = []

    def make(workers=2, start=True, **kw):
        d = KvDaemon(tmp_path / ("d%d" % len(started)), None, workers)
        os.makedirs(d.tmpdir, exist_ok=True)
        if kw.get("file") is True:
            state = os.path.join(d.tmpdir, "state")
            os.makedirs(state, exist_ok=True)
            kw["file"] = os.path.join(state, "kv.snapshot")
        d.overrides = kv_overrides(**kw)
        d.snapshot_file = kw.get("file", "")
        started.append(d)
        return d.start() if start else d

    yield make
    for d in started:
        try:
            d.stop()
        finally:
            d.cleanup_shm()
        print(d.log_tail(200))


def read_snapshot(path):
    """The snapshot butlerd wrote (format version 2, decoded into the shape of
    the JSON format of version 1; kvsnapfile.py)."""
    with open(path, "rb") as f:
        data = f.read()
    return kvsnapfile.decode(data)


def check_snapshot_file(path):
    """Mode 0600, a whole version 2 file (butlerd(8), "Persistence");
    returns it decoded."""
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode), path
    assert stat.S_IMODE(st.st_mode) == 0o600, "snapshot mode %o, want 600" % stat.S_IMODE(
        st.st_mode)
    snap = read_snapshot(path)
    assert snap["format"] == "butlerd-kv" and snap["version"] == 2, snap
    assert abs(snap["savedAt"] - now_ms()) < 3600 * 1000, snap["savedAt"]
    assert isinstance(snap["namespaces"], list)
    for ns in snap["namespaces"]:
        assert list(ns.keys()) == ["namespace", "keys"], ns
        for k in ns["keys"]:
            assert list(k.keys()) == ["key", "value", "expiresAt"], k
            assert k["expiresAt"] is None or isinstance(k["expiresAt"], int), k
    return snap


def snapshot_map(snap):
    """{namespace: [(key, value, expiresAt), ...]} in file order."""
    return {ns["namespace"]: [(k["key"], k["value"], k["expiresAt"]) for k in ns["keys"]]
            for ns in snap["namespaces"]}


DATA = [
    ("ns1", "k1", "v1"),
    ("ns1", "k2", ""),
    ("Sales ETL step 2", "Last extract timestamp", "2020-09-29 17:14:56"),
    ("日本語 ✓", "a:b/c d", "välue ✓ \"q\" \\ /"),
    ("ns1", "k0", "x" * 4000),
    ("a/b", "c:d", "e"),
]


def fill(d):
    for ns, k, v in DATA:
        d.put_ok(ns, k, v)
    d.put_ok("ttl", "long", "lived", ttl=600000)


def check_data(d, ttl_key=True, more_ns1=()):
    """DATA (and the long-ttl key) are all there, in order, from many
    fresh connections."""
    assert d.namespaces() == ["ns1", "Sales ETL step 2", "日本語 ✓", "a/b", "ttl"]
    check(d.keylist("ns1"), 200, keylist_body("ns1", ["k1", "k2", "k0"] + list(more_ns1)))
    for _ in range(3):
        for ns, k, v in DATA:
            check(d.kv_get(ns, k), 200, entry(ns, k, v))
    if ttl_key:
        r = d.kv_get("ttl", "long")
        assert r.status == 200, r
        t = json.loads(r.body).get("ttl")
        assert isinstance(t, int) and 0 < t <= 600000, r
        check(r, 200, entry("ttl", "long", "lived", t))


# ---------------------------------------------------- orderly shutdown (SIGTERM)

def test_sigterm_writes_snapshot_and_restart_restores(kvd):
    d = kvd(file=True, interval=0)
    fill(d)
    before = now_ms()
    d.term()
    state = os.path.dirname(d.snapshot_file)
    # only the snapshot is left in its directory (the temporary file was renamed)
    assert os.listdir(state) == ["kv.snapshot"], os.listdir(state)
    snap = check_snapshot_file(d.snapshot_file)
    m = snapshot_map(snap)
    assert [ns["namespace"] for ns in snap["namespaces"]] == \
        ["ns1", "Sales ETL step 2", "日本語 ✓", "a/b", "ttl"], snap
    assert [(k, v) for k, v, _ in m["ns1"]] == [("k1", "v1"), ("k2", ""), ("k0", "x" * 4000)]
    assert all(e is None for _, _, e in m["ns1"]), m["ns1"]
    assert m["日本語 ✓"] == [("a:b/c d", "välue ✓ \"q\" \\ /", None)]
    (k, v, exp), = m["ttl"]
    assert (k, v) == ("long", "lived") and isinstance(exp, int)
    assert before + 590000 <= exp <= now_ms() + 600000, exp
    d.restart()
    check_data(d)
    # the restarted daemon keeps working and saves again at the next stop
    d.put_ok("ns1", "k3", "v3")
    d.term()
    m = snapshot_map(check_snapshot_file(d.snapshot_file))
    assert [k for k, _, _ in m["ns1"]] == ["k1", "k2", "k0", "k3"]


def test_snapshot_alone_restores_into_new_segment(kvd):
    """The snapshot is enough: a daemon with another port and another
    shm.name (a fresh segment) loads it."""
    d = kvd(file=True, interval=0)
    fill(d)
    d.term()
    d2 = kvd(file=d.snapshot_file, interval=0, start=False)
    assert d2.shm != d.shm
    d2.start()
    check_data(d2)


def test_empty_store_snapshot(kvd):
    d = kvd(file=True, interval=0)
    d.put_ok("gone", "k", "v")
    r = d.request("DELETE", "/v4/keyvalues/gone")
    assert r.status == 204, r
    d.term()
    snap = check_snapshot_file(d.snapshot_file)
    assert snap["namespaces"] == [], snap
    d.restart()
    assert d.namespaces() == []


def test_empty_namespace_survives_restart(kvd):
    d = kvd(file=True, interval=0)
    d.put_ok("empty", "k", "v")
    d.put_ok("full", "k", "v")
    assert d.request("DELETE", "/v4/keyvalues/empty/k").status == 204
    d.term()
    m = snapshot_map(check_snapshot_file(d.snapshot_file))
    assert m == {"empty": [], "full": [("k", "v", None)]}, m
    d.restart()
    assert d.namespaces() == ["empty", "full"]
    check(d.keylist("empty"), 200, keylist_body("empty", []))


def test_expired_key_not_restored(kvd):
    d = kvd(file=True, interval=0)
    d.put_ok("ns", "keep", "v")
    d.put_ok("ns", "short", "v", ttl=1500)
    d.put_ok("ns", "after", "v")
    d.term()
    m = snapshot_map(check_snapshot_file(d.snapshot_file))
    # saved before it expired, with its expiry time
    assert [k for k, _, _ in m["ns"]] == ["keep", "short", "after"], m
    exp = m["ns"][1][2]
    assert isinstance(exp, int) and exp <= now_ms() + 1500, exp
    assert wait_until(lambda: now_ms() > exp + 100, 5.0, 0.05)
    d.restart()
    check(d.kv_get("ns", "short"), 400, key_not_found("ns", "short"))
    check(d.keylist("ns"), 200, keylist_body("ns", ["keep", "after"]))
    check(d.get("/v4/keyvalues/ns/keyexists?key=short"), 200, b'{"keyExists":false,"keyValue":{}}')
    d.term()
    m = snapshot_map(check_snapshot_file(d.snapshot_file))
    assert [k for k, _, _ in m["ns"]] == ["keep", "after"], m


# ------------------------------------------------------------ crashes

def test_worker_sigkill_keeps_data(kvd):
    d = kvd(file="", workers=2)
    fill(d)
    pids = d.wait_workers(2)
    for victim in pids:
        mark = d.mark()
        os.kill(victim, signal.SIGKILL)
        d.wait_log(harness.WORKER_STARTED, 10, start=mark)
        d.wait_workers(2, timeout=10, exclude=[victim])
        check_data(d)
    d.put_ok("ns1", "k9", "after crash")
    check(d.keylist("ns1"), 200, keylist_body("ns1", ["k1", "k2", "k0", "k9"]))


def test_worker_sigkill_under_write_load_loses_no_acknowledged_write(kvd):
    d = kvd(file="", workers=2)
    acked = {}
    stop = threading.Event()
    lock = threading.Lock()

    def writer(t):
        i = 0
        while not stop.is_set() and i < 5000:
            key, value = "t%d-%d" % (t, i), "v%d" % i
            try:
                r = d.post("load", {"key": key, "value": value})
            except Exception:  # noqa: BLE001 - the killed worker drops its connection
                r = None
            if r is not None and r.status == 201:
                with lock:
                    acked[key] = value
            i += 1

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    try:
        time.sleep(0.5)
        pids = d.wait_workers(2)
        mark = d.mark()
        os.kill(pids[0], signal.SIGKILL)
        d.wait_log(harness.WORKER_STARTED, 10, start=mark)
        d.wait_workers(2, timeout=10, exclude=[pids[0]])
        time.sleep(0.5)
    finally:
        stop.set()
        for th in threads:
            th.join(30)
    assert not any(th.is_alive() for th in threads)
    with lock:
        expected = dict(acked)
    assert len(expected) > 50, len(expected)
    r = d.keylist("load")
    assert r.status == 200, r
    present = {k["key"] for k in json.loads(r.body)["keys"]}
    missing = [k for k in expected if k not in present]
    assert not missing, "acknowledged keys lost: %r" % missing[:20]
    for key in list(expected)[::25]:
        check(d.kv_get("load", key), 200, entry("load", key, expected[key]))


@pytest.mark.parametrize("persist", ["memory", "snapshot-at-shutdown-only"])
def test_master_sigkill_restart_reattaches_segment(kvd, persist):
    """After SIGKILL of the master the data comes back from the surviving
    shared-memory segment: with file = "" there is no snapshot at all, and
    with intervalSeconds = 0 no snapshot was written before the kill."""
    if persist == "memory":
        d = kvd(file="", workers=2)
    else:
        d = kvd(file=True, interval=0, workers=2)
    fill(d)
    port, shm = d.port, d.shm
    d.kill_master()
    if d.snapshot_file:
        assert not os.path.exists(d.snapshot_file), \
            "intervalSeconds = 0 but a snapshot was written before shutdown"
    print("shm objects after the master's death: %r" % d.shm_paths())
    d.restart()
    assert (d.port, d.shm) == (port, shm)
    check_data(d)
    # still fully usable, and a second crash/restart cycle works too
    d.put_ok("ns1", "k5", "v5")
    d.kill_master()
    d.restart()
    check_data(d, more_ns1=["k5"])
    check(d.kv_get("ns1", "k5"), 200, entry("ns1", "k5", "v5"))
    if d.snapshot_file:
        d.term()
        m = snapshot_map(check_snapshot_file(d.snapshot_file))
        assert [k for k, _, _ in m["ns1"]] == ["k1", "k2", "k0", "k5"], m


def test_master_sigkill_expired_key_gone_after_restart(kvd):
    d = kvd(file="")
    d.put_ok("ns", "keep", "v")
    d.put_ok("ns", "short", "v", ttl=800)
    d.kill_master()
    time.sleep(1.0)
    d.restart()
    check(d.kv_get("ns", "short"), 400, key_not_found("ns", "short"))
    check(d.keylist("ns"), 200, keylist_body("ns", ["keep"]))


# ------------------------------------------------------------ bad snapshot

@pytest.mark.parametrize("content", [
    b"{this is not json",
    b'{"format":"butlerd-kv","version":1,"savedAt":"2026-11-22T22:49:53.123Z",'
    b'"namespaces":[{"namespace":"ns1","keys":[{"key":"k1","val',
    b"\x00\xff\xfe garbage \x01",
])
def test_corrupt_snapshot_renamed_to_bad(kvd, content):
    d = kvd(file=True, interval=0, start=False)
    with open(d.snapshot_file, "wb") as f:
        f.write(content)
    d.start()
    bad = d.snapshot_file + ".bad"
    assert os.path.exists(bad), "%s not created; dir has %r\n%s" % (
        bad, os.listdir(os.path.dirname(bad)), d.log_tail())
    with open(bad, "rb") as f:
        assert f.read() == content
    assert not os.path.exists(d.snapshot_file), "corrupt snapshot left in place"
    assert d.namespaces() == []
    assert d.find(re.compile(r"\berror\b", re.I)), "no error logged\n" + d.log_tail()
    # works normally, and the next save writes a good file
    d.put_ok("ns", "k", "v")
    d.term()
    m = snapshot_map(check_snapshot_file(d.snapshot_file))
    assert m == {"ns": [("k", "v", None)]}, m
    with open(bad, "rb") as f:
        assert f.read() == content


def test_missing_snapshot_starts_empty(kvd):
    d = kvd(file=True, interval=0)
    assert d.namespaces() == []
    assert not os.path.exists(d.snapshot_file + ".bad")


# ------------------------------------------------- loading a written snapshot

def test_load_handwritten_snapshot(kvd):
    d = kvd(file=True, interval=0, per_ns=3, start=False)
    future = now_ms() + 600000
    snap = {"format": "butlerd-kv", "version": 1, "savedAt": "2026-11-22T22:49:53.123Z",
            "namespaces": [
                {"namespace": "ns1", "keys": [
                    {"key": "k1", "value": "v1", "expiresAt": None},
                    {"key": "old", "value": "x", "expiresAt": 1000},
                    {"key": "k2", "value": "v2", "expiresAt": future},
                    {"key": "k3", "value": "v3", "expiresAt": None},
                    # over maxKeysPerNamespace = 3: dropped, first ones kept
                    {"key": "k4", "value": "v4", "expiresAt": None},
                    {"key": "k5", "value": "v5", "expiresAt": None}]},
                {"namespace": "日本語 ✓", "keys": [
                    {"key": "a:b", "value": "ü", "expiresAt": None}]}]}
    with open(d.snapshot_file, "wb") as f:
        f.write(jdump(snap))
    d.start()
    assert d.namespaces() == ["ns1", "日本語 ✓"]
    check(d.keylist("ns1"), 200, keylist_body("ns1", ["k1", "k2", "k3"]))
    check(d.kv_get("ns1", "k1"), 200, entry("ns1", "k1", "v1"))
    check(d.kv_get("ns1", "old"), 400, key_not_found("ns1", "old"))
    check(d.kv_get("ns1", "k4"), 400, key_not_found("ns1", "k4"))
    r = d.kv_get("ns1", "k2")
    t = json.loads(r.body).get("ttl")
    assert r.status == 200 and isinstance(t, int) and 0 < t <= 600000, r
    assert t > 590000, r
    check(d.kv_get("日本語 ✓", "a:b"), 200, entry("日本語 ✓", "a:b", "ü"))
    assert not os.path.exists(d.snapshot_file + ".bad")


# ------------------------------------------------------ periodic snapshots

def test_interval_snapshot_without_shutdown(kvd):
    d = kvd(file=True, interval=1)
    d.put_ok("ns", "k1", "v1")

    def has(keys):
        def pred():
            try:
                snap = read_snapshot(d.snapshot_file)
            except (OSError, ValueError, struct.error):
                return None
            m = snapshot_map(snap)
            return snap if [k for k, _, _ in m.get("ns", [])] == keys else None
        return pred

    assert wait_until(has(["k1"]), 5.0, 0.1), "no snapshot with k1 within 5 s"
    snap = check_snapshot_file(d.snapshot_file)
    assert snapshot_map(snap) == {"ns": [("k1", "v1", None)]}
    assert d.running()
    d.put_ok("ns", "k2", "v2", ttl=600000)
    assert wait_until(has(["k1", "k2"]), 5.0, 0.1), "snapshot not updated within 5 s"
    m = snapshot_map(check_snapshot_file(d.snapshot_file))
    assert m["ns"][1][:2] == ("k2", "v2") and isinstance(m["ns"][1][2], int)
    # a delete shows up too
    assert d.request("DELETE", "/v4/keyvalues/ns/k1").status == 204
    assert wait_until(has(["k2"]), 5.0, 0.1), "delete not saved within 5 s"
    # nothing changed: no new save (savedAt and content stay)
    time.sleep(1.2)
    st1, snap1 = os.stat(d.snapshot_file), read_snapshot(d.snapshot_file)
    time.sleep(2.5)
    st2, snap2 = os.stat(d.snapshot_file), read_snapshot(d.snapshot_file)
    assert snap1 == snap2 and st1.st_ino == st2.st_ino and st1.st_mtime_ns == st2.st_mtime_ns, \
        "snapshot rewritten although nothing changed"
    assert os.listdir(os.path.dirname(d.snapshot_file)) == ["kv.snapshot"]
    assert d.running()


def test_snapshot_child_logged_like_any_child(kvd):
    """The periodic snapshot is written by a one-shot child of the process table:
    its start and its exit are logged in the same shape as a worker's (at debug
    level, since one runs every intervalSeconds)."""
    d = kvd(file=True, interval=1, start=False)
    harness.merge(d.overrides, {"butlerd": {"logging": {"level": "debug"}}})
    d.start()
    d.put_ok("ns", "k1", "v1")
    started = d.wait_log(re.compile(r"snapshot process pid \d+ started$"), 5)
    pid = int(re.search(r"pid (\d+) started", started[0]).group(1))
    d.wait_log(re.compile(r"snapshot process pid %d exited with code 0$" % pid), 5)
    d.wait_log("key-value snapshot written to %s" % d.snapshot_file, 5)
    assert not d.find("respawning snapshot")
    assert d.running()


def test_interval_zero_saves_only_at_shutdown(kvd):
    d = kvd(file=True, interval=0)
    d.put_ok("ns", "k1", "v1")
    time.sleep(2.5)
    assert not os.path.exists(d.snapshot_file), "snapshot written with intervalSeconds = 0"
    d.term()
    m = snapshot_map(check_snapshot_file(d.snapshot_file))
    assert m == {"ns": [("k1", "v1", None)]}


def test_interval_snapshot_survives_master_sigkill_into_new_segment(kvd):
    """A periodic snapshot is what a fresh segment (other shm.name) gets
    after a master crash."""
    d = kvd(file=True, interval=1)
    d.put_ok("ns", "k1", "v1")
    assert wait_until(lambda: os.path.exists(d.snapshot_file), 5.0, 0.1)
    assert wait_until(lambda: snapshot_map(read_snapshot(d.snapshot_file)).get("ns")
                      == [("k1", "v1", None)], 5.0, 0.1)
    d.kill_master()
    d2 = kvd(file=d.snapshot_file, interval=1, start=False)
    d2.start()
    check(d2.kv_get("ns", "k1"), 200, entry("ns", "k1", "v1"))


def test_segment_wins_over_stale_snapshot(kvd):
    """After a master crash the re-attached segment (newer) is used, not the
    older snapshot of the previous orderly shutdown."""
    d = kvd(file=True, interval=0)
    d.put_ok("ns", "old", "in snapshot")
    d.put_ok("ns", "changed", "before")
    d.term()
    d.restart()
    assert d.request("DELETE", "/v4/keyvalues/ns/old").status == 204
    d.put_ok("ns", "changed", "after")
    d.put_ok("ns", "new", "only in segment")
    d.kill_master()
    d.restart()
    check(d.keylist("ns"), 200, keylist_body("ns", ["changed", "new"]))
    check(d.kv_get("ns", "changed"), 200, entry("ns", "changed", "after"))
    check(d.kv_get("ns", "old"), 400, key_not_found("ns", "old"))


@pytest.mark.parametrize("damage", ["zero-header", "truncate-4096", "truncate-0"])
def test_damaged_segment_falls_back_to_snapshot(kvd, damage):
    """A segment whose header does not validate is not used: the snapshot
    is loaded instead, and the daemon works normally."""
    d = kvd(file=True, interval=0)
    d.put_ok("ns", "k1", "saved")
    d.term()
    d.restart()
    d.put_ok("ns", "k2", "lost with the segment")
    d.kill_master()
    paths = d.shm_paths()
    assert len(paths) == 1, "expected one segment /dev/shm%s.*, found %r" % (d.shm, paths)
    with open(paths[0], "r+b") as f:
        if damage == "zero-header":
            f.write(b"\0" * 256)
        else:
            f.truncate(int(damage.split("-")[1]))
    d.restart()
    check(d.keylist("ns"), 200, keylist_body("ns", ["k1"]))
    check(d.kv_get("ns", "k1"), 200, entry("ns", "k1", "saved"))
    d.put_ok("ns", "k3", "v3")
    check(d.keylist("ns"), 200, keylist_body("ns", ["k1", "k3"]))
    # all workers serve the new segment
    for _ in range(20):
        check(d.kv_get("ns", "k3"), 200, entry("ns", "k3", "v3"))


@pytest.mark.parametrize("fmt", ["json-v1", "binary-v2"])
def test_load_snapshot_applies_current_limits(kvd, fmt):
    """Entries that break the current limits are dropped with a warning; the
    first ones in file order are kept, in either format."""
    d = kvd(file=True, interval=0, namespaces=2, keys=4, key_bytes=8, value_bytes=8,
            start=False)
    snap = {"format": "butlerd-kv", "version": 1, "savedAt": "2026-11-22T22:49:53.123Z",
            "namespaces": [
                {"namespace": "a", "keys": [
                    {"key": "k1", "value": "12345678", "expiresAt": None},
                    {"key": "k2", "value": "123456789", "expiresAt": None},  # value too long
                    {"key": "longkey99", "value": "v", "expiresAt": None},  # key too long
                    {"key": "k3", "value": "v", "expiresAt": None}]},
                {"namespace": "toolongns", "keys": [  # namespace too long
                    {"key": "k", "value": "v", "expiresAt": None}]},
                {"namespace": "b", "keys": [
                    {"key": "k1", "value": "v", "expiresAt": None},
                    {"key": "k2", "value": "v", "expiresAt": None},
                    {"key": "k3", "value": "v", "expiresAt": None}]},  # 5th key: over kvMaxKeys
                {"namespace": "c", "keys": [  # third namespace: over kvMaxNamespaces
                    {"key": "k", "value": "v", "expiresAt": None}]}]}
    with open(d.snapshot_file, "wb") as f:
        f.write(jdump(snap) if fmt == "json-v1" else kvsnapfile.encode(snap["namespaces"]))
    d.start()
    assert d.namespaces() == ["a", "b"]
    check(d.keylist("a"), 200, keylist_body("a", ["k1", "k3"]))
    check(d.keylist("b"), 200, keylist_body("b", ["k1", "k2"]))
    check(d.kv_get("a", "k1"), 200, entry("a", "k1", "12345678"))
    assert d.find(re.compile(r"\bwarn", re.I)), "no warning logged\n" + d.log_tail()
    assert not os.path.exists(d.snapshot_file + ".bad")
