"""The key-value store on Redis shared by several butlerd instances (butlerd(8),
"Several instances"): two daemons on different ports with one redis-server and
the same key prefix see one store: writes, TTL expiry, limits under concurrent
writers on both, namespace deletion. And the outage path: Redis stopped -> the
KV routes answer 503 within the command timeout while the rest keeps working,
one warning per outage; Redis back -> service resumes with no restart.

The single-instance semantics on Redis are the whole KV suite (test_kv*.py), run
on both backends by kvfix.py's fixtures."""

import json
import os
import secrets
import threading
import time

import pytest

import harness
import redisfix
from kvfix import KvDaemon, check, check_204, entry, key_not_found, keylist_body, kv_overrides
from kvfix import ns_not_found, q, stop_all, ttl_of, uniq


def _daemon(tmpdir, server, prefix, workers=2, timeout_ms=1000, redis=None, **limits):
    ov = harness.merge(kv_overrides(**limits),
                       redisfix.redis_overrides(server, prefix, timeout_ms, **(redis or {})))
    d = KvDaemon(str(tmpdir), ov, workers)
    os.makedirs(d.tmpdir, exist_ok=True)
    return d


@pytest.fixture
def pair(tmp_path, redis_server):
    """Factory: pair(**limits) -> two running daemons on one Redis, one key prefix."""
    started = []

    def start(**limits):
        prefix = "pair%s:" % secrets.token_hex(6)
        ds = [_daemon(tmp_path / ("d%d" % len(started) + n), redis_server, prefix, **limits)
              for n in ("a", "b")]
        for d in ds:
            started.append(d)
            d.start()
        return ds

    yield start
    stop_all(started, 100)


def test_write_on_a_read_on_b(pair):
    a, b = pair()
    ns = uniq()
    a.put_ok(ns, "k1", "v1")
    b.put_ok(ns, "k2", "v2", ttl=600000)
    check(b.kv_get(ns, "k1"), 200, entry(ns, "k1", "v1"))
    r = a.kv_get(ns, "k2")
    assert r.status == 200 and 0 < ttl_of(r) <= 600000, r
    # overwrite through B keeps the position; listing and namespaces agree on both
    b.put_ok(ns, "k1", "v1b")
    for d in (a, b):
        check(d.kv_get(ns, "k1"), 200, entry(ns, "k1", "v1b"))
        check(d.keylist(ns), 200, keylist_body(ns, ["k1", "k2"]))
        assert d.namespaces() == [ns]


def test_names_with_any_bytes_stay_apart(pair):
    """Namespace and key names reach Redis only as members, fields or the tail of
    a key after the namespace id: names that would collide if simply joined with
    ':' stay distinct."""
    a, b = pair()
    pairs = [("x", "y:z"), ("x:y", "z"), ("x:y:z", ""), ("v:1", "x"), ("1", "v:1:x"),
             ("ns é ☃", "k\u00e9\U0001f600"), ("a%b", "*?[]"), ("n", "o:1")]
    for i, (ns, key) in enumerate(pairs):
        if key:
            a.put_ok(ns, key, "val%d" % i)
    for i, (ns, key) in enumerate(pairs):
        if key:
            check(b.kv_get(ns, key), 200, entry(ns, key, "val%d" % i))
    check(b.keylist("x"), 200, keylist_body("x", ["y:z"]))
    check(b.keylist("x:y"), 200, keylist_body("x:y", ["z"]))
    check(b.kv_get("x:y:z", "x"), 400, ns_not_found("x:y:z"))
    check(b.kv_get("x", "y"), 400, key_not_found("x", "y"))
    # NUL bytes go through hiredis and Lua untouched
    a.put_ok("nul", "k\u0000x", "v\u0000w")
    a.put_ok("nul", "k", "plain")
    check(b.get("/v4/keyvalues/nul?key=k%00x"), 200, entry("nul", "k\u0000x", "v\u0000w"))
    check(b.keylist("nul"), 200, keylist_body("nul", ["k\u0000x", "k"]))


def test_ttl_expiry_seen_by_both(pair):
    a, b = pair()
    ns = uniq()
    a.put_ok(ns, "short", "lived", ttl=1000)
    a.put_ok(ns, "long", "lived")
    r = b.kv_get(ns, "short")
    assert r.status == 200 and 0 < ttl_of(r) <= 1000, r

    def gone(d):
        return d.kv_get(ns, "short").status == 400
    assert harness.wait_until(lambda: gone(a) and gone(b), 10), "key did not expire"
    for d in (a, b):
        check(d.kv_get(ns, "short"), 400, key_not_found(ns, "short"))
        check(d.keylist(ns), 200, keylist_body(ns, ["long"]))
        check(d.del_key(ns, "short"), 400, key_not_found(ns, "short"))


def _hammer(ds, ns_of, nthreads, per_thread):
    """NTHREADS writers spread over the daemons DS, each writing PER_THREAD new
    keys into namespace ns_of(thread, i); returns the statuses."""
    statuses = []
    lock = threading.Lock()

    def run(t):
        d = ds[t % len(ds)]
        mine = []
        for i in range(per_thread):
            r = d.post(q(ns_of(t, i)), {"key": "t%d-%d" % (t, i), "value": "v"})
            mine.append(r.status)
        with lock:
            statuses.extend(mine)
    threads = [threading.Thread(target=run, args=(t,)) for t in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return statuses


def test_keys_per_namespace_limit_across_instances(pair):
    a, b = pair(per_ns=25, workers=2)
    ns = uniq()
    statuses = _hammer([a, b], lambda t, i: ns, 6, 15)
    assert statuses.count(201) == 25 and statuses.count(507) == 90 - 25, statuses
    for d in (a, b):
        body = json.loads(d.keylist(ns).body)
        assert len(body["keys"]) == 25, body


def test_total_keys_limit_across_instances(pair):
    a, b = pair(keys=40, per_ns=1000, namespaces=1000)
    statuses = _hammer([a, b], lambda t, i: "ns-%d-%d" % (t, i % 3), 6, 12)
    assert statuses.count(201) == 40 and statuses.count(507) == 72 - 40, statuses


def test_namespaces_limit_across_instances(pair):
    a, b = pair(namespaces=7)
    statuses = _hammer([a, b], lambda t, i: "n-%d-%d" % (t, i), 6, 4)
    assert statuses.count(201) == 7, statuses
    assert len(a.namespaces()) == 7 and b.namespaces() == a.namespaces()


def test_expired_keys_free_room_across_instances(pair):
    a, b = pair(per_ns=2)
    ns = uniq()
    a.put_ok(ns, "t1", "x", ttl=300)
    a.put_ok(ns, "t2", "x", ttl=300)
    assert b.post(q(ns), {"key": "k", "value": "v"}).status == 507
    assert harness.wait_until(lambda: b.kv_get(ns, "t1").status == 400
                              and b.kv_get(ns, "t2").status == 400, 10)
    b.put_ok(ns, "k1", "v")
    a.put_ok(ns, "k2", "v")
    check(a.keylist(ns), 200, keylist_body(ns, ["k1", "k2"]))


def test_namespace_deleted_on_a_is_gone_on_b(pair):
    a, b = pair()
    ns, other = uniq(), uniq()
    for i in range(50):
        a.put_ok(ns, "k%d" % i, "v", ttl=600000 if i % 2 else None)
    b.put_ok(other, "k", "v")
    check_204(a.del_ns(ns))
    check(b.kv_get(ns, "k1"), 400, ns_not_found(ns))
    check(b.keylist(ns), 400, ns_not_found(ns))
    assert b.namespaces() == [other]
    # re-created it is new: empty, at the end of the order
    b.put_ok(ns, "fresh", "v")
    check(a.keylist(ns), 200, keylist_body(ns, ["fresh"]))
    assert a.namespaces() == [other, ns]


def test_concurrent_deletion_and_writes_keep_counts(pair):
    """Writers on B while A deletes the namespace: afterwards the store's own key
    count agrees with what is listed (nothing leaks into the limit)."""
    a, b = pair(keys=30, per_ns=1000)
    ns = uniq()
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            b.post(q(ns), {"key": "w%d" % i, "value": "v"})
            i += 1
    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(5):
            harness.wait_until(lambda: a.kv_exists(ns, "w0").status == 200, 10)
            a.del_ns(ns)
    finally:
        stop.set()
        t.join(60)
    a.del_ns(ns)
    for i in range(30):
        a.put_ok(uniq(), "k", "v")
    assert a.post(q(uniq()), {"key": "k", "value": "v"}).status == 507


# ------------------------------------------------------------------ outage


@pytest.fixture
def own_redis():
    """A redis-server of this test's own, which the test may stop and restart."""
    r = redisfix.RedisServer().start()
    yield r
    r.close()


TIMEOUT_MS = 500


def test_redis_down_503_then_resumes(tmp_path, own_redis):
    d = _daemon(tmp_path / "d", own_redis, "out%s:" % secrets.token_hex(4), workers=1,
                timeout_ms=TIMEOUT_MS)
    d.start()
    try:
        ns = uniq()
        d.put_ok(ns, "k", "v")
        own_redis.stop()
        mark = d.mark()
        for _ in range(5):
            t0 = time.monotonic()
            r = d.kv_get(ns, "k")
            took = time.monotonic() - t0
            assert r.status == 503, r
            assert b"Redis server cannot be reached" in r.body, r
            # within the command timeout (plus generous room for a loaded machine)
            assert took < TIMEOUT_MS / 1000 + 5, took
        assert d.post(q(ns), {"key": "k2", "value": "v"}).status == 503
        assert d.namespaces_status() == 503
        assert d.keylist(ns).status == 503
        # everything else keeps working
        assert d.get("/v4/butlerping").status == 200
        d.wait_log("cannot be reached", 10, mark)
        assert len(d.find("cannot be reached", mark)) == 1, d.log_tail()
        # back (empty: the test server keeps nothing): served again, no restart
        own_redis.start()
        assert harness.wait_until(
            lambda: d.post(q(ns), {"key": "k", "value": "again"}).status == 201, 15), \
            d.log_tail()
        check(d.kv_get(ns, "k"), 200, entry(ns, "k", "again"))
        d.wait_log("reachable again", 10, mark)
        assert len(d.find("cannot be reached", mark)) == 1, d.log_tail()
    finally:
        stop_all([d], 60)


def test_full_redis_refuses_writes_reads_go_on_one_warning(tmp_path, own_redis):
    """Redis at maxmemory (noeviction) refuses writes with OOM and still answers
    reads: writes answer 503, reads are served, and the log says so once, not a
    "cannot be reached" and "reachable again" pair for every write."""
    d = _daemon(tmp_path / "d", own_redis, "oom%s:" % secrets.token_hex(4), workers=1,
                timeout_ms=TIMEOUT_MS)
    d.start()
    try:
        ns = uniq()
        d.put_ok(ns, "k", "v")
        mark = d.mark()
        own_redis.cli("CONFIG", "SET", "maxmemory", "1")
        try:
            for i in range(6):
                assert d.post(q(ns), {"key": "n%d" % i, "value": "v"}).status == 503
                check(d.kv_get(ns, "k"), 200, entry(ns, "k", "v"))
        finally:
            own_redis.cli("CONFIG", "SET", "maxmemory", "0")
        d.put_ok(ns, "after", "v")
        assert len(d.find("out of memory", mark)) == 1, d.log_tail()
        assert not d.find("cannot be reached", mark), d.log_tail()
    finally:
        stop_all([d], 60)


def test_starts_without_redis(tmp_path, own_redis):
    """Redis down when butlerd starts: it starts, KV answers 503, the rest works;
    Redis up -> KV works."""
    own_redis.stop()
    d = _daemon(tmp_path / "d", own_redis, "st%s:" % secrets.token_hex(4), workers=1,
                timeout_ms=TIMEOUT_MS)
    d.start()
    try:
        assert d.kv_get("ns", "k").status == 503
        assert d.get("/v4/butlerping").status == 200
        own_redis.start()
        assert harness.wait_until(
            lambda: d.post("ns", {"key": "k", "value": "v"}).status == 201, 15), d.log_tail()
    finally:
        stop_all([d], 60)


def test_redis_hung_503_within_command_timeout(tmp_path, own_redis):
    """A Redis that accepts connections but never answers (stopped with SIGSTOP):
    each KV request gives up after the command timeout with 503; SIGCONT -> served
    again."""
    import signal
    d = _daemon(tmp_path / "d", own_redis, "hung%s:" % secrets.token_hex(4), workers=1,
                timeout_ms=TIMEOUT_MS)
    d.start()
    stopped = False
    try:
        d.put_ok("ns", "k", "v")
        mark = d.mark()
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        stopped = True
        for _ in range(3):
            t0 = time.monotonic()
            r = d.kv_get("ns", "k")
            took = time.monotonic() - t0
            assert r.status == 503, r
            assert took < TIMEOUT_MS / 1000 + 5, took
        assert d.get("/v4/butlerping").status == 200
        os.kill(own_redis.proc.pid, signal.SIGCONT)
        stopped = False
        assert harness.wait_until(lambda: d.kv_get("ns", "k").status == 200, 15), d.log_tail()
        check(d.kv_get("ns", "k"), 200, entry("ns", "k", "v"))
        assert len(d.find("cannot be reached", mark)) == 1, d.log_tail()
        d.wait_log("reachable again", 10, mark)
    finally:
        if stopped:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        stop_all([d], 60)


def test_configtest_rejects_unknown_backend(tmp_path):
    path = str(tmp_path / "butlerd.conf")
    harness.write_file(path, harness.config_text(harness.free_port(), str(tmp_path), harness.merge(
        kv_overrides(), {"butlerd": {"store": {"backend": "memcached"}}})))
    cp = harness.run_cli(["-t", "-c", path])
    assert cp.returncode != 0, cp
    assert 'butlerd.store.backend "memcached" is not one of shm, redis' in cp.stderr, cp.stderr
    harness.write_file(path, harness.config_text(harness.free_port(), str(tmp_path), harness.merge(
        kv_overrides(), {"butlerd": {"store": {"backend": "redis", "redis": {"host": ""}}}})))
    cp = harness.run_cli(["-t", "-c", path])
    assert cp.returncode != 0, cp
    assert 'butlerd.store.backend is "redis" but butlerd.store.redis.host is empty' in cp.stderr, \
        cp.stderr
    harness.write_file(path, harness.config_text(harness.free_port(), str(tmp_path), harness.merge(
        kv_overrides(), {"butlerd": {"store": {"backend": "redis", "redis": {"port": 6380}}}})))
    cp = harness.run_cli(["-t", "-c", path])
    assert cp.returncode == 0 and "configuration OK" in cp.stdout + cp.stderr, cp


# ------------------------------------------------------------------ moving a store


def test_copy_shm_store_into_redis(tmp_path, redis_server):
    """contrib/butlerd-kv-copy moves a shared-memory store into a Redis-backed one:
    namespaces and keys in creation order, values, TTLs (the time left)."""
    import subprocess
    import sys
    tool = os.path.join(os.environ.get("BUTLERD_SRCDIR", os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")), "contrib", "butlerd-kv-copy")
    src = KvDaemon(str(tmp_path / "src"), kv_overrides(), 1)
    os.makedirs(src.tmpdir, exist_ok=True)
    dst = _daemon(tmp_path / "dst", redis_server, "copy%s:" % secrets.token_hex(4), workers=1,
                  per_ns=3)
    try:
        src.start()
        dst.start()
        src.put_ok("b ns", "k:2", "v2")
        src.put_ok("b ns", "k1", "v1", ttl=600000)
        src.put_ok("a/ns", "\u00e9", "")
        src.put_ok("full", "x1", "1")
        src.put_ok("full", "x2", "2")
        src.put_ok("full", "x3", "3")
        src.put_ok("full", "x4", "4")
        dst.put_ok("full", "x0", "0")  # leaves room for two of the four
        cp = subprocess.run([sys.executable, tool, "http://127.0.0.1:%d" % src.port,
                             "http://127.0.0.1:%d/" % dst.port],
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 1, cp
        assert "5 keys copied, 0 expired or deleted during the copy, 2 refused" in cp.stdout, cp
        assert "'full'/'x3' not copied: 507 Namespace full is full (max 3 keys)" in cp.stderr, cp
        assert dst.namespaces() == ["full", "b ns", "a/ns"]
        check(dst.keylist("b ns"), 200, keylist_body("b ns", ["k:2", "k1"]))
        check(dst.kv_get("b ns", "k:2"), 200, entry("b ns", "k:2", "v2"))
        r = dst.kv_get("b ns", "k1")
        assert r.status == 200 and 0 < ttl_of(r) <= 600000, r
        check(dst.kv_get("a/ns", "\u00e9"), 200, entry("a/ns", "\u00e9", ""))
        check(dst.keylist("full"), 200, keylist_body("full", ["x0", "x1", "x2"]))
    finally:
        stop_all([src, dst], 40)


def test_password_and_database(tmp_path):
    """butlerd.store.redis.password (AUTH) and .database (SELECT): the keys land
    in that database; a wrong password is an outage (503, logged with Redis's
    reason), not a crash."""
    server = redisfix.RedisServer(["--requirepass", "s3cret pass"]).start()
    good = _daemon(tmp_path / "good", server, "auth:", workers=1,
                   redis={"password": "s3cret pass", "database": 3})
    bad = _daemon(tmp_path / "bad", server, "auth:", workers=1,
                  redis={"password": "wrong", "database": 3})
    os.chmod(str(tmp_path), 0o700)
    try:
        good.start()
        bad.start()
        good.put_ok("ns", "k", "v")
        assert server.cli("-n", "3", "EXISTS", "auth:v:1:k", password="s3cret pass").strip() \
            == "1"
        assert server.cli("-n", "0", "DBSIZE", password="s3cret pass").strip() == "0"
        r = bad.kv_get("ns", "k")
        assert r.status == 503, r
        bad.wait_log("cannot be reached (AUTH: WRONGPASS", 10)
        assert bad.get("/v4/butlerping").status == 200
    finally:
        try:
            stop_all([good, bad], 40)
        finally:
            server.close()


def test_expired_index_entries_reclaimed_by_writes(tmp_path, redis_server):
    """Redis drops an expired value by itself; the entries of the key in the
    indexes (creation order, expiry, key count) go a few at every later write."""
    prefix = "recl%s:" % secrets.token_hex(4)
    d = _daemon(tmp_path / "d", redis_server, prefix, workers=1)
    try:
        d.start()
        for i in range(5):
            d.put_ok("ns", "t%d" % i, "x", ttl=200)
        assert redis_server.cli("ZCARD", prefix + "x").strip() == "5"
        assert harness.wait_until(lambda: d.kv_exists("ns", "t4").status == 200
                                  and json.loads(d.kv_exists("ns", "t4").body)["keyExists"]
                                  is False, 10)
        d.put_ok("ns", "live", "v")
        assert redis_server.cli("ZCARD", prefix + "x").strip() == "0"
        assert redis_server.cli("GET", prefix + "n").strip() == "1"
        assert redis_server.cli("ZRANGE", prefix + "o:1", "0", "-1").split() == ["live"]
    finally:
        stop_all([d], 40)


def test_reload_applies_keys_per_namespace_keeps_the_backend(tmp_path, redis_server):
    """Butler.keyValueStore.maxKeysPerNamespace takes effect on SIGHUP on Redis too;
    a changed butlerd.store.* key needs a restart (logged, the old one is kept)."""
    import signal
    prefix = "rel%s:" % secrets.token_hex(4)
    d = _daemon(tmp_path / "d", redis_server, prefix, workers=2, per_ns=2)
    try:
        d.start()
        d.put_ok("ns", "a", "1")
        d.put_ok("ns", "b", "2")
        assert d.post("ns", {"key": "c", "value": "3"}).status == 507
        ov = harness.merge(kv_overrides(per_ns=3), redisfix.redis_overrides(
            redis_server, "other:", 1000))
        mark = d.mark()
        d.write_config(d.config(ov))
        d.signal(signal.SIGHUP)
        d.wait_log("configuration reloaded", 15, start=mark)
        d.wait_log("butlerd.store.redis.keyPrefix changed: restart butlerd to apply it", 5,
                   start=mark)
        assert harness.wait_until(
            lambda: d.post("ns", {"key": "c", "value": "3"}).status == 201, 15), d.log_tail()
        assert d.post("ns", {"key": "d", "value": "4"}).status == 507
        check(d.keylist("ns"), 200, keylist_body("ns", ["a", "b", "c"]))
        assert redis_server.cli("ZCARD", prefix + "o:1").strip() == "3"
    finally:
        stop_all([d], 60)
