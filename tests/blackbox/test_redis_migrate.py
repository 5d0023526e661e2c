"""butlerd -M (butlerd(8), OPTIONS; SEVERAL INSTANCES, "Moving a store to
Redis"): a shared-memory key-value store copied into Redis - from a snapshot
file when no instance runs, from the running instance's shared memory when one
does - keeping namespaces and keys in creation order, values and remaining TTLs;
a target that already holds keys under the prefix is refused unless -F; no
source, or Redis down, is a clear error. A butlerd on the Redis backend then
serves exactly the copied store."""

import os
import secrets

import pytest

import harness
import redisfix
from kvfix import KvDaemon, check, entry, keylist_body, kv_overrides, stop_all, ttl_of, uniq
from redisfix import redis_server  # noqa: F401 (fixture)


def _redis_conf(tmp_path, server, prefix, port, shm, snap=""):
    """A configuration for -M: the store of port PORT / shared memory SHM (and
    snapshot file SNAP), the Redis backend on SERVER under PREFIX."""
    ov = harness.merge(kv_overrides(file=snap), redisfix.redis_overrides(server, prefix))
    path = str(tmp_path / ("m%s.conf" % secrets.token_hex(3)))
    harness.write_file(path, harness.config_text(port, tmp_path, ov, shm=shm))
    return path


def _migrate(conf, *flags):
    return harness.run_cli(["-M"] + list(flags) + ["-c", conf], timeout=60)


def _fill(d):
    """Three namespaces (the last one emptied), keys written out of alphabetical
    order, one overwritten (keeps its place), two with a TTL."""
    a, b, c = "zeta-" + uniq(), "alpha-" + uniq(), "mid-" + uniq()
    d.put_ok(a, "k3", "v3")
    d.put_ok(a, "k1", "v1", ttl=600000)
    d.put_ok(b, "only", "x")
    d.put_ok(a, "k2", "v2")
    d.put_ok(a, "k3", "v3b")  # overwrite: stays first
    d.put_ok(c, "gone", "y")
    assert d.del_key(c, "gone").status == 204
    d.put_ok(b, "brief", "z", ttl=300000)
    return a, b, c


def _check_copy(tmp_path, server, prefix, a, b, c):
    """A butlerd on Redis under PREFIX serves the store _fill made."""
    ov = harness.merge(kv_overrides(), redisfix.redis_overrides(server, prefix))
    r = KvDaemon(str(tmp_path / "onredis"), ov, 1)
    os.makedirs(r.tmpdir, exist_ok=True)
    r.start()
    try:
        assert r.namespaces() == [a, b, c]
        check(r.keylist(a), 200, keylist_body(a, ["k3", "k1", "k2"]))
        check(r.keylist(b), 200, keylist_body(b, ["only", "brief"]))
        check(r.keylist(c), 200, keylist_body(c, []))
        check(r.kv_get(a, "k3"), 200, entry(a, "k3", "v3b"))
        check(r.kv_get(a, "k2"), 200, entry(a, "k2", "v2"))
        g = r.kv_get(a, "k1")
        assert g.status == 200 and 0 < ttl_of(g) <= 600000, g
        g = r.kv_get(b, "brief")
        assert g.status == 200 and 0 < ttl_of(g) <= 300000, g
        assert ttl_of(r.kv_get(b, "only")) is None
    finally:
        stop_all([r], 40)


def _shm_daemon(tmp_path, snap=""):
    d = KvDaemon(str(tmp_path / "src"), kv_overrides(file=snap), 1)
    os.makedirs(d.tmpdir, exist_ok=True)
    return d


def test_from_snapshot_file(tmp_path, redis_server):
    snapdir = tmp_path / "snap"
    snapdir.mkdir(mode=0o700)
    snap = str(snapdir / "kv.snap")
    d = _shm_daemon(tmp_path, snap)
    d.start()
    try:
        a, b, c = _fill(d)
    finally:
        stop_all([d], 40)  # an orderly stop writes the snapshot
    assert os.path.exists(snap)
    prefix = "mig%s:" % secrets.token_hex(5)
    cp = _migrate(_redis_conf(tmp_path, redis_server, prefix, d.port, d.shm, snap))
    assert cp.returncode == 0, cp
    assert "copied 5 keys in 3 namespaces (1 of them empty) from snapshot file %s" % snap \
        in cp.stdout, cp
    assert cp.stderr == "", cp  # nothing went wrong: nothing to say there
    assert not d.shm_paths() and not [p for p in os.listdir("/dev/shm")
                                      if p.startswith("butlerd-migrate-")], \
        "-M left its private shared memory behind"
    _check_copy(tmp_path, redis_server, prefix, a, b, c)


def test_from_running_instance(tmp_path, redis_server):
    d = _shm_daemon(tmp_path)
    d.start()
    try:
        a, b, c = _fill(d)
        prefix = "mig%s:" % secrets.token_hex(5)
        conf = _redis_conf(tmp_path, redis_server, prefix, d.port, d.shm)
        cp = _migrate(conf)
        assert cp.returncode == 0, cp
        assert "copied 5 keys in 3 namespaces (1 of them empty) from the running butlerd " \
            "(pid %d" % d.pid in cp.stdout, cp
        assert cp.stderr == "", cp
        # the running instance is untouched
        check(d.kv_get(a, "k3"), 200, entry(a, "k3", "v3b"))
        assert d.namespaces() == [a, b, c]
    finally:
        stop_all([d], 40)
    _check_copy(tmp_path, redis_server, prefix, a, b, c)


def test_refuses_a_target_with_keys(tmp_path, redis_server):
    d = _shm_daemon(tmp_path)
    d.start()
    try:
        ns = uniq()
        d.put_ok(ns, "k", "new")
        prefix = "mig%s:" % secrets.token_hex(5)
        redis_server.cli("SET", prefix + "unrelated", "keep")
        conf = _redis_conf(tmp_path, redis_server, prefix, d.port, d.shm)
        cp = _migrate(conf)
        assert cp.returncode == 1, cp
        assert 'already holds keys under the prefix "%s"' % prefix in cp.stderr, cp
        assert "nothing copied" in cp.stderr and "-F" in cp.stderr
        # nothing changed
        assert redis_server.cli("--scan", "--pattern", prefix + "*").split() == \
            [prefix + "unrelated"]
        # -F copies over them
        cp = _migrate(conf, "-F")
        assert cp.returncode == 0, cp
        assert "copied 1 keys in 1 namespaces" in cp.stdout, cp
        assert redis_server.cli("GET", prefix + "unrelated").strip() == "keep"
    finally:
        stop_all([d], 40)


def test_nothing_to_copy_and_redis_down(tmp_path, redis_server):
    prefix = "mig%s:" % secrets.token_hex(5)
    conf = _redis_conf(tmp_path, redis_server, prefix, harness.free_port(), harness.shm_name())
    cp = _migrate(conf)
    assert cp.returncode == 1, cp
    assert "no running butlerd" in cp.stderr and "nothing to copy" in cp.stderr, cp
    missing = str(tmp_path / "none.snap")
    conf = _redis_conf(tmp_path, redis_server, prefix, harness.free_port(),
                       harness.shm_name(), missing)
    cp = _migrate(conf)
    assert cp.returncode == 1 and missing in cp.stderr, cp
    assert redis_server.cli("--scan", "--pattern", prefix + "*").split() == []
    # Redis not there: a clear error, nothing else tried
    down = redisfix.RedisServer()  # a port nobody listens on
    try:
        conf = _redis_conf(tmp_path, down, prefix, harness.free_port(), harness.shm_name())
        cp = _migrate(conf)
        assert cp.returncode == 1, cp
        assert "cannot be reached" in cp.stderr and "nothing copied" in cp.stderr, cp
    finally:
        down.close()


@pytest.mark.parametrize("args", [["-F"], ["-M", "-t"], ["-M", "-S"]])
def test_bad_command_lines(args):
    cp = harness.run_cli(args)
    assert cp.returncode == 2, cp
    assert "usage:" in cp.stderr
