"""Readiness and counters with the key-value store on Redis (butlerd(8),
MONITORING and SEVERAL INSTANCES): GET /ready is 503 with a reason while Redis
cannot be reached and 200 when it is back; GET /metrics and butlerd -S count
the shared store (what every instance wrote, expired keys excluded), say
whether Redis answered, and leave out what Redis does not count."""

import json
import os
import secrets

import pytest

import harness
import redisfix
from kvfix import KvDaemon, kv_overrides, stop_all, uniq
from redisfix import redis_server  # noqa: F401 (fixture)
from test_health import ready, wait_ready
from test_metrics import scrape, value

ON = {"butlerd": {"metrics": {"enable": True}}}


def _daemon(tmp_path, server, prefix, name="d", workers=1):
    ov = harness.merge(harness.merge(kv_overrides(), ON),
                       redisfix.redis_overrides(server, prefix, 500))
    d = KvDaemon(str(tmp_path / name), ov, workers)
    os.makedirs(d.tmpdir, exist_ok=True)
    return d


@pytest.fixture
def own_redis():
    r = redisfix.RedisServer().start()
    yield r
    r.close()


def test_ready_follows_redis(tmp_path, own_redis):
    d = _daemon(tmp_path, own_redis, "rdy%s:" % secrets.token_hex(4), workers=2)
    d.start()
    try:
        assert wait_ready(d, 200) == []
        own_redis.stop()
        reasons = wait_ready(d, 503)
        assert reasons == ["Redis (127.0.0.1:%d) cannot be reached" % own_redis.port], reasons
        # the rest is still served
        assert d.get("/v4/butlerping").status == 200
        own_redis.start()
        assert wait_ready(d, 200) == []
    finally:
        stop_all([d], 60)


def test_metrics_count_the_shared_store(tmp_path, redis_server):
    prefix = "met%s:" % secrets.token_hex(4)
    a = _daemon(tmp_path, redis_server, prefix, "a")
    b = _daemon(tmp_path, redis_server, prefix, "b")
    a.start()
    b.start()
    try:
        n1, n2 = uniq(), uniq()
        for i in range(5):
            a.put_ok(n1, "k%d" % i, "v")
        b.put_ok(n2, "keep", "v")
        b.put_ok(n2, "brief", "v", ttl=200)
        # "brief" expires; no write reclaims it before the counts are taken
        assert harness.wait_until(lambda: b.kv_get(n2, "brief").status != 200, 10)
        for d in (a, b):
            text, fams = scrape(d)
            assert value(fams, "butlerd_store_redis_up") == 1
            assert value(fams, "butlerd_kv_keys") == 6, text
            assert value(fams, "butlerd_kv_namespaces") == 2, text
            assert "butlerd_kv_bytes" not in fams  # not counted on Redis
        # -S says the same, and where the store is
        cp = harness.run_cli(["-S", "-c", b.config_path])
        assert cp.returncode == 0, cp
        kv = json.loads(cp.stdout)["keyValueStore"]
        assert kv == {"backend": "redis", "redis": "127.0.0.1:%d" % redis_server.port,
                      "reachable": True, "keys": 6, "namespaces": 2}, kv
    finally:
        stop_all([a, b], 40)


def test_metrics_and_stats_while_redis_is_down(tmp_path, own_redis):
    d = _daemon(tmp_path, own_redis, "dn%s:" % secrets.token_hex(4))
    d.start()
    try:
        d.put_ok(uniq(), "k", "v")
        own_redis.stop()
        text, fams = scrape(d)  # still served
        assert value(fams, "butlerd_store_redis_up") == 0
        assert "butlerd_kv_keys" not in fams and "butlerd_kv_namespaces" not in fams, text
        cp = harness.run_cli(["-S", "-c", d.config_path])
        assert cp.returncode == 0, cp
        kv = json.loads(cp.stdout)["keyValueStore"]
        assert kv == {"backend": "redis", "redis": "127.0.0.1:%d" % own_redis.port,
                      "reachable": False}, kv
    finally:
        stop_all([d], 40)


def test_stats_on_shared_memory(tmp_path):
    d = KvDaemon(str(tmp_path / "shm"), kv_overrides(), 1)
    os.makedirs(d.tmpdir, exist_ok=True)
    d.start()
    try:
        ns = uniq()
        for i in range(3):
            d.put_ok(ns, "k%d" % i, "v")
        d.put_ok(uniq(), "k", "v")
        cp = harness.run_cli(["-S", "-c", d.config_path])
        assert cp.returncode == 0, cp
        kv = json.loads(cp.stdout)["keyValueStore"]
        assert kv == {"backend": "shm", "keys": 4, "namespaces": 2}, kv
        assert ready(d) == (200, [])
    finally:
        stop_all([d], 40)
