"""The key-value store on Redis found through Sentinels (butlerd(8), "SEVERAL
INSTANCES"; butlerd.conf(5), butlerd.store.redis.sentinels): real
redis-server primary and replica, three real redis-sentinel processes.
Discovery, a failover after the primary is SIGKILLed (writes resume on the new
primary, replicated keys are still there), one Sentinel down, a master name the
Sentinels do not know, and malformed sentinels entries refused by butlerd -t."""

import os
import secrets

import harness
import redisfix
import sentinelfix
from kvfix import KvDaemon, check, entry, kv_overrides, q, stop_all, ttl_of, uniq
from sentinelfix import sentinels, shared_sentinels  # noqa: F401 (fixtures)


def _daemon(tmp_path, setup, name="d", workers=2, **over):
    prefix = "sen%s:" % secrets.token_hex(5)
    ov = harness.merge(kv_overrides(), setup.overrides(prefix, **over))
    d = KvDaemon(str(tmp_path / name), ov, workers)
    os.makedirs(d.tmpdir, exist_ok=True)
    d.prefix = prefix
    return d


def test_kv_through_sentinels(tmp_path, shared_sentinels):
    s = shared_sentinels
    d = _daemon(tmp_path, s)
    d.start()
    try:
        ns = uniq()
        d.put_ok(ns, "k1", "v1")
        d.put_ok(ns, "k2", "v2", ttl=600000)
        check(d.kv_get(ns, "k1"), 200, entry(ns, "k1", "v1"))
        # the keys went to the primary the Sentinels named, under the prefix
        keys = s.primary.cli("--scan", "--pattern", d.prefix + "*").split()
        assert any(k.startswith(d.prefix + "v:") for k in keys), keys
        assert d.find('via 3 Sentinels'), d.log_tail()
    finally:
        stop_all([d], 60)


def test_one_sentinel_down(tmp_path, shared_sentinels):
    """The first Sentinel listed is gone: the others are asked."""
    s = shared_sentinels
    gone = sentinelfix.Sentinel(s.primary.port)  # a port nobody listens on
    d = _daemon(tmp_path, s, sentinels=["127.0.0.1:%d" % gone.port] + s.addresses()[1:])
    d.start()
    try:
        ns = uniq()
        d.put_ok(ns, "k", "v")
        check(d.kv_get(ns, "k"), 200, entry(ns, "k", "v"))
    finally:
        stop_all([d], 60)
        gone.close()


def test_hung_sentinel_first(tmp_path, shared_sentinels):
    """The first Sentinel listed accepts connections but never answers (SIGSTOP):
    it costs the command timeout once, then the one that answered is asked first."""
    import signal
    s = shared_sentinels
    d = _daemon(tmp_path, s, workers=1, timeout_ms=300)
    os.kill(s.sentinels[0].proc.pid, signal.SIGSTOP)
    try:
        d.start()
        ns = uniq()
        for i in range(10):
            d.put_ok(ns, "k%d" % i, "v")
            check(d.kv_get(ns, "k%d" % i), 200, entry(ns, "k%d" % i, "v"))
        assert not d.find("cannot be reached"), d.log_tail()
    finally:
        os.kill(s.sentinels[0].proc.pid, signal.SIGCONT)
        stop_all([d], 40)


def test_unknown_master_name(tmp_path, shared_sentinels):
    """Sentinels that do not know the master: 503 with the usual message, and the
    log says why, once."""
    d = _daemon(tmp_path, shared_sentinels, workers=1, master="nosuchmaster")
    d.start()
    try:
        for _ in range(3):
            r = d.kv_get("ns", "k")
            assert r.status == 503, r
            assert b"Redis server cannot be reached" in r.body, r
        assert d.get("/v4/butlerping").status == 200
        d.wait_log('does not know master "nosuchmaster"', 10)
        assert len(d.find("cannot be reached")) == 1, d.log_tail()
    finally:
        stop_all([d], 60)


def test_failover_writes_resume(tmp_path, sentinels):
    """Primary SIGKILLed: after the Sentinels promote the replica, writes resume
    on it with no restart; the keys written (and replicated) before are there."""
    s = sentinels
    d = _daemon(tmp_path, s, workers=2, timeout_ms=500)
    d.start()
    try:
        ns = uniq()
        for i in range(20):
            d.put_ok(ns, "k%d" % i, "v%d" % i)
        d.put_ok(ns, "ttl", "t", ttl=600000)
        assert s.replicated(), "the replica did not catch up"
        mark = d.mark()
        s.fail_primary()
        # until a replica is promoted the store answers 503
        r = d.kv_get(ns, "k0")
        assert r.status == 503 and b"Redis server cannot be reached" in r.body, r
        assert s.wait_failover(60), [x.master_info() for x in s.sentinels]
        statuses = set()

        def resumed():
            r = d.post(q(ns), {"key": "after", "value": "failover"})
            statuses.add(r.status)
            return r.status == 201

        assert harness.wait_until(resumed, 30, 0.2), (statuses, d.log_tail())
        assert statuses <= {201, 503}, statuses
        # every worker reconnects on its own (after its backoff, at most 1 s):
        # wait until a whole pass of reads over both workers is served
        assert harness.wait_until(
            lambda: all(d.kv_get(ns, "k%d" % i).status == 200 for i in range(20)), 15, 0.2), \
            d.log_tail()
        for i in range(20):
            check(d.kv_get(ns, "k%d" % i), 200, entry(ns, "k%d" % i, "v%d" % i))
        r = d.kv_get(ns, "ttl")
        assert r.status == 200 and 0 < ttl_of(r) <= 600000, r
        check(d.kv_get(ns, "after"), 200, entry(ns, "after", "failover"))
        # the new key is on the promoted replica
        keys = s.replica.cli("--scan", "--pattern", d.prefix + "v:*").split()
        assert any(k.endswith(":after") for k in keys), keys
        assert "role:master" in s.replica.cli("INFO", "replication")
        # at most one warning per worker for the outage, and its end
        d.wait_log("reachable again", 10, mark)
        assert 1 <= len(d.find("cannot be reached", mark)) <= d.workers, d.log_tail()
    finally:
        stop_all([d], 80)


def test_configtest_rejects_malformed_sentinels(tmp_path):
    for bad in (["127.0.0.1:notaport"], ["127.0.0.1:26379", "host:"], ["[::1"], [""]):
        over = {"butlerd": {"store": {"backend": "redis",
                                      "redis": {"sentinels": bad, "masterName": "m"}}}}
        path = str(tmp_path / "bad.conf")
        harness.write_file(path, harness.config_text(harness.free_port(), tmp_path, over))
        cp = harness.run_cli(["-t", "-c", path])
        assert cp.returncode != 0, (bad, cp)
        assert "butlerd.store.redis.sentinels" in cp.stderr and "is not host:port" in cp.stderr, \
            (bad, cp.stderr)
        assert "configuration test failed" in cp.stderr
    # and a good list passes
    over = {"butlerd": {"store": {"backend": "redis", "redis": {
        "sentinels": ["127.0.0.1:26379", "[::1]:26380", "sentinel.example"],
        "masterName": "m"}}}}
    path = str(tmp_path / "good.conf")
    harness.write_file(path, harness.config_text(harness.free_port(), tmp_path, over))
    cp = harness.run_cli(["-t", "-c", path])
    assert cp.returncode == 0, cp
    assert "configuration OK" in cp.stdout


def test_switchover_primary_alive(tmp_path, sentinels):
    """SENTINEL FAILOVER with the primary alive: it becomes a replica (writes on it
    would be refused with READONLY); butlerd follows the Sentinels to the new
    primary and keeps every key."""
    s = sentinels
    d = _daemon(tmp_path, s, workers=1, timeout_ms=500)
    d.start()
    try:
        ns = uniq()
        d.put_ok(ns, "before", "x")
        assert s.replicated()
        assert "OK" in s.sentinels[0].cli("SENTINEL", "FAILOVER", sentinelfix.MASTER)
        assert s.wait_failover(60), [x.master_info() for x in s.sentinels]
        assert harness.wait_until(
            lambda: "role:slave" in s.primary.cli("INFO", "replication"), 30, 0.2)
        assert harness.wait_until(
            lambda: d.post(q(ns), {"key": "after", "value": "y"}).status == 201, 30, 0.2), \
            d.log_tail()
        check(d.kv_get(ns, "before"), 200, entry(ns, "before", "x"))
        keys = s.replica.cli("--scan", "--pattern", d.prefix + "v:*").split()
        assert any(k.endswith(":after") for k in keys), keys
    finally:
        stop_all([d], 60)


def test_sentinel_password(tmp_path):
    """Sentinels with requirepass: sentinelPassword is sent with AUTH; without it
    the store is unavailable and the log says why."""
    s = sentinelfix.SentinelSetup(count=1, sentinel_password="sentinel-secret")
    try:
        d = _daemon(tmp_path, s, "good", workers=1)
        d.overrides["butlerd"]["store"]["redis"]["sentinelPassword"] = "sentinel-secret"
        bad = _daemon(tmp_path, s, "bad", workers=1)
        d.start()
        bad.start()
        try:
            ns = uniq()
            d.put_ok(ns, "k", "v")
            check(d.kv_get(ns, "k"), 200, entry(ns, "k", "v"))
            r = bad.kv_get(ns, "k")
            assert r.status == 503, r
            bad.wait_log("NOAUTH", 10)
        finally:
            stop_all([d, bad], 40)
    finally:
        s.close()


def test_connection_closed_by_redis_costs_no_request(tmp_path):
    """Redis closes the connections (CLIENT KILL; its idle timeout does the same):
    the next requests are served on new connections - no 503, no outage logged."""
    r = redisfix.RedisServer().start()
    try:
        ov = harness.merge(kv_overrides(), redisfix.redis_overrides(r, "ck%s:" % secrets.token_hex(4)))
        d = KvDaemon(str(tmp_path / "d"), ov, 1)
        os.makedirs(d.tmpdir, exist_ok=True)
        d.start()
        try:
            ns = uniq()
            # a few at once, so that several job threads have a connection
            for i in range(16):
                d.put_ok(ns, "k%d" % i, "v")
            mark = d.mark()
            for _ in range(3):
                assert int(r.cli("CLIENT", "KILL", "TYPE", "normal").strip() or 0) >= 1
                for i in range(16):
                    check(d.kv_get(ns, "k%d" % i), 200, entry(ns, "k%d" % i, "v"))
                d.put_ok(ns, "after", "v")
            assert not d.find("cannot be reached", mark), d.log_tail()
        finally:
            stop_all([d], 40)
    finally:
        r.close()
