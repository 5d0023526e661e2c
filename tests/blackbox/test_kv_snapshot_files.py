"""The key-value snapshot file and the temporary files butlerd writes (issue 11,
defects 4 and 5; butlerd(8), "Persistence" and "Temporary files"):

- a symbolic link planted at the snapshot's temporary name is not followed;
- a snapshot directory writable by group or others, or owned by someone else,
  is refused by butlerd -t and at start, with a message naming it;
- temporary files of killed snapshots are removed at start;
- a file copy killed midway leaves no temporary file in the destination;
- 200000 keys in several namespaces, with TTLs, survive an old JSON snapshot
  and then a snapshot in the current format, in order, and loading them does
  not leave the heap of the master and the workers grown;
- a damaged snapshot loads nothing and is renamed to <file>.bad."""

import hashlib
import json
import os
import re
import signal
import stat
import threading
import time

import pytest

import harness
import kvsnapfile
from harness import run_cli, wait_until
from test_kv_persistence import (KvDaemon, check_snapshot_file, kv_overrides, jdump,
                                 now_ms, snapshot_map)


@pytest.fixture
def kvd(tmp_path):
    started = []

    def make(workers=2, start=True, **kw):
        d = KvDaemon(tmp_path / ("d%d" % len(started)), None, workers)
        os.makedirs(d.tmpdir, exist_ok=True)
        if kw.get("file") is True:
            state = os.path.join(d.tmpdir, "state")
            os.makedirs(state, mode=0o700, exist_ok=True)
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
        print(d.log_tail(100))


def write_conf(d):
    """D's configuration file with a port, for runs that are not d.start()."""
    d.port = harness.free_port()
    d.write_config(d.config())
    return d.config_path


# ------------------------------------------------------ defect 4: symlinks

def test_planted_symlink_at_temporary_name_is_not_followed(kvd, tmp_path):
    """The temporary name <file>.tmp.<pid> is predictable; a link planted
    there by whoever can write the directory must not redirect the write."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    os.chmod(str(victim), 0o644)
    d = kvd(file=True, interval=0)
    d.put_ok("ns", "k", "v")
    link = "%s.tmp.%d" % (d.snapshot_file, d.pid)
    os.symlink(str(victim), link)
    d.term()
    assert victim.read_bytes() == b"precious\n", "the snapshot was written through the link"
    assert stat.S_IMODE(os.stat(str(victim)).st_mode) == 0o644
    assert snapshot_map(check_snapshot_file(d.snapshot_file)) == {"ns": [("k", "v", None)]}
    assert sorted(os.listdir(os.path.dirname(d.snapshot_file))) == ["kv.snapshot"]


# ------------------------------------------- defect 4: the directory's safety

def _make_unsafe(state, how):
    parent = os.path.dirname(state)
    if how == "group-writable":
        os.chmod(state, 0o770)
    elif how == "other-writable":
        os.chmod(state, 0o707)
    elif how == "sticky-world-writable":
        os.chmod(state, 0o1777)
    elif how == "foreign-owner":
        os.chown(state, 65534, 65534)
    elif how == "parent-world-writable":
        os.chmod(parent, 0o777)
    return parent if how == "parent-world-writable" else state


UNSAFE = ["group-writable", "other-writable", "sticky-world-writable", "foreign-owner",
          "parent-world-writable"]


@pytest.mark.parametrize("how", UNSAFE)
def test_unsafe_snapshot_directory_refused(kvd, how):
    if how == "foreign-owner" and os.geteuid() != 0:
        pytest.skip("needs root to give the directory away")
    d = kvd(file=True, interval=0, start=False)
    state = os.path.dirname(d.snapshot_file)
    # the same directory, still safe, passes
    conf = write_conf(d)
    cp = run_cli(["-t", "-c", conf])
    assert cp.returncode == 0 and "configuration OK" in cp.stdout, cp
    bad = _make_unsafe(state, how)
    try:
        cp = run_cli(["-t", "-c", conf])
        assert cp.returncode == 1, cp
        assert "configuration OK" not in cp.stdout, cp
        assert "configuration test failed" in cp.stderr, cp
        msg = [l for l in cp.stderr.splitlines() if "kvPersistence.file" in l]
        assert msg and bad in msg[0], cp.stderr
        reason = "owned by uid 65534" if how == "foreign-owner" else "writable by group or others"
        assert reason in msg[0], msg
        # the start refuses it as well, before creating anything
        cp = run_cli(["-f", "-c", conf], timeout=30)
        assert cp.returncode != 0, cp
        assert "ready: listening" not in cp.stderr, cp.stderr
        assert re.search(r"error: butlerd\.kvPersistence\.file .*%s" % re.escape(reason),
                         cp.stderr), cp.stderr
        assert not d.shm_paths(), "shared memory created although the start was refused"
        assert os.listdir(state) == [], os.listdir(state)
    finally:
        os.chmod(os.path.dirname(state), 0o755)
        os.chmod(state, 0o700)
        if os.geteuid() == 0:
            os.chown(state, 0, 0)


def test_missing_snapshot_directory_is_a_warning(kvd):
    d = kvd(file=True, interval=0, start=False)
    d.overrides = kv_overrides(file=os.path.join(d.tmpdir, "nowhere", "kv.snapshot"))
    cp = run_cli(["-t", "-c", write_conf(d)])
    assert cp.returncode == 0 and "configuration OK" in cp.stdout, cp
    assert re.search(r"warning: .*nowhere does not exist", cp.stderr), cp.stderr


# ------------------------------------------------ defect 4: stale temp files

def test_stale_temporary_files_removed_at_start(kvd, tmp_path):
    d = kvd(file=True, interval=0, start=False)
    state = os.path.dirname(d.snapshot_file)
    with open(d.snapshot_file, "wb") as f:
        f.write(kvsnapfile.encode([{"namespace": "ns", "keys": [
            {"key": "k", "value": "v", "expiresAt": None}]}]))
    os.chmod(d.snapshot_file, 0o600)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    with open(os.path.join(state, "kv.snapshot.tmp.12345"), "wb") as f:
        f.write(b"\0" * (1 << 20))
    os.symlink(str(victim), os.path.join(state, "kv.snapshot.tmp.1"))
    for other in ("kv.snapshot.tmpx", "other.tmp.5", "kv.snapshot.bad"):
        with open(os.path.join(state, other), "wb") as f:
            f.write(b"not ours")
    d.start()
    assert sorted(os.listdir(state)) == ["kv.snapshot", "kv.snapshot.bad", "kv.snapshot.tmpx",
                                         "other.tmp.5"], os.listdir(state)
    assert victim.read_bytes() == b"keep"
    assert d.find(re.compile(r"removed .*kv\.snapshot\.tmp\.12345 \(1048576 bytes\), left by "
                             r"an unfinished snapshot")), d.log_tail()
    assert d.namespaces() == ["ns"]


# ---------------------------------------------------- defect 4: killed copy

def _fds_into(pid, directory):
    out = []
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for n in names:
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except OSError:
            continue
        if target.startswith(directory + "/"):
            out.append(target)
    return out


def test_killed_copy_leaves_no_temporary_file(tmp_path):
    """A worker SIGKILLed while it writes a copy: with O_TMPFILE the partial
    copy has no name, so nothing is left in the destination directory."""
    src_dir, dst_dir = tmp_path / "from", tmp_path / "to"
    src_dir.mkdir()
    dst_dir.mkdir()
    big = src_dir / "big.bin"
    d = harness.Daemon(tmp_path / "d", {"Butler": {
        "restServerEndpointsEnable": {"fileCopy": True},
        "fileCopyApprovedDirectories": harness.Raw(
            '( { fromDirectory = "%s"; toDirectory = "%s"; } )' % (src_dir, dst_dir))}},
        workers=1)
    os.makedirs(d.tmpdir)
    d.start()
    try:
        caught = None
        for size in (256 << 20, 1 << 30, 4 << 30):
            with open(str(big), "wb") as f:  # sparse: the copy still writes every byte
                f.truncate(size)
            worker = d.wait_workers(1)[0]
            body = jdump({"fromFile": str(big), "toFile": str(dst_dir / ("c%d" % size))})
            t = threading.Thread(target=lambda: _swallow(d, body))
            t.start()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and t.is_alive():
                fds = _fds_into(worker, str(dst_dir))
                if fds:
                    caught = fds
                    os.kill(worker, signal.SIGKILL)
                    break
                time.sleep(0.0005)
            t.join(30)
            if caught:
                break
            # the copy finished before it could be caught: clean up, try bigger
            for n in os.listdir(str(dst_dir)):
                os.unlink(str(dst_dir / n))
        assert caught, "never saw the copy in progress"
        print("worker had open: %r" % caught)
        d.wait_workers(1, timeout=10, exclude=[worker])
        left = os.listdir(str(dst_dir))
        assert left == [], "the killed copy left %r" % left
    finally:
        d.stop()
        os.unlink(str(big))


def _swallow(d, body):
    try:
        d.request("PUT", "/v4/filecopy", {"Content-Type": "application/json"}, body, timeout=60)
    except Exception:  # noqa: BLE001 - the killed worker drops the connection
        pass


# ------------------------------------------------ defect 5: many keys, memory

NS = ["alpha", "beta ✓", "gamma/δ", "delta"]
PER_NS = 50000


def _expected(future):
    """{ns: [(key, value, expiresAt)]}: every 7th key has a TTL."""
    out = {}
    for j, ns in enumerate(NS):
        out[ns] = [("k%06d-%d" % (PER_NS - i, j), "v%d/%d" % (i, j) * (1 + i % 3),
                    future + i if i % 7 == 0 else None) for i in range(PER_NS)]
    return out


def _anon_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def _heaps(d):
    pids = [d.pid] + d.wait_workers(2)
    return {p: _anon_kb(p) for p in pids}


def _check_store(d, exp, now):
    assert d.namespaces() == NS
    for ns in NS:
        r = d.keylist(ns)
        assert r.status == 200, r
        assert [k["key"] for k in json.loads(r.body)["keys"]] == [k for k, _, _ in exp[ns]], ns
    for ns in NS:
        for i in list(range(0, PER_NS, 4999)) + [PER_NS - 1]:
            k, v, e = exp[ns][i]
            r = d.kv_get(ns, k)
            assert r.status == 200, (ns, k, r)
            got = json.loads(r.body)
            assert got["value"] == v, (ns, k, got)
            if e is None:
                assert "ttl" not in got or got["ttl"] == 0, got
            else:
                assert 0 < got["ttl"] <= e - now, (e, got)


def test_200k_keys_old_json_then_current_format(kvd, monkeypatch):
    # Parsing 200000 keys of JSON takes seconds, more on a host busy with make
    # check -j: a bounded wait longer than the harness's usual one.
    monkeypatch.setattr(harness, "READY_TIMEOUT", 90.0)
    # room for twice as many keys: the stripes a random hash seed fills most never overflow
    over = dict(file=True, interval=0, keys=2 * len(NS) * PER_NS, per_ns=PER_NS, key_bytes=64,
                value_bytes=64, namespaces=16)
    ref = kvd(**dict(over, file=""))
    ref_heap = max(_heaps(ref).values())
    ref.term()

    d = kvd(start=False, **over)
    future = now_ms() + 3600 * 1000
    exp = _expected(future)
    snap = {"format": "butlerd-kv", "version": 1, "savedAt": "2026-11-22T22:49:53.123Z",
            "namespaces": [{"namespace": ns, "keys": [
                {"key": k, "value": v, "expiresAt": e} for k, v, e in exp[ns]]} for ns in NS]}
    with open(d.snapshot_file, "wb") as f:
        f.write(jdump(snap))
    os.chmod(d.snapshot_file, 0o600)
    del snap
    d.start()
    assert d.find("loaded %d keys from" % (len(NS) * PER_NS)), d.log_tail()
    # the JSON tree is gone from the heap before the workers are forked
    heaps = _heaps(d)
    assert max(heaps.values()) < ref_heap + 16384, (heaps, ref_heap)
    _check_store(d, exp, now_ms())
    d.term()

    m = snapshot_map(check_snapshot_file(d.snapshot_file))
    assert list(m) == NS
    for ns in NS:
        assert m[ns] == exp[ns], ns
    d.restart()
    assert d.find("loaded %d keys from" % (len(NS) * PER_NS)), d.log_tail()
    heaps = _heaps(d)
    assert max(heaps.values()) < ref_heap + 16384, (heaps, ref_heap)
    _check_store(d, exp, now_ms())


# --------------------------------------------------- damaged current format

def _good():
    return kvsnapfile.encode([{"namespace": "ns", "keys": [
        {"key": "k%d" % i, "value": "v%d" % i, "expiresAt": None} for i in range(100)]}])


def _flip(data, at):
    return data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1:]


@pytest.mark.parametrize("damage", ["truncated", "flipped-value", "bad-count", "newer-version",
                                    "trailing"])
def test_damaged_snapshot_loads_nothing(kvd, damage):
    data = _good()
    if damage == "truncated":
        data = data[:len(data) // 2]
    elif damage == "flipped-value":
        data = _flip(data, data.index(b"v57"))
    elif damage == "bad-count":
        body = data[:-32][:-16] + (1).to_bytes(8, "little") + (99).to_bytes(8, "little")
        data = body + hashlib.sha256(body).digest()
    elif damage == "newer-version":
        data = data[:8] + (3).to_bytes(4, "little") + data[12:]
    elif damage == "trailing":
        data = data + b"\0"
    d = kvd(file=True, interval=0, start=False)
    with open(d.snapshot_file, "wb") as f:
        f.write(data)
    d.start()
    assert d.namespaces() == [], "a damaged snapshot was (partly) loaded"
    with open(d.snapshot_file + ".bad", "rb") as f:
        assert f.read() == data
    assert d.find(re.compile(r"error: snapshot .* is unusable")), d.log_tail()


def test_key_twice_in_file_later_value_wins(kvd):
    """As for two writes through the API: the value of the later one, the place
    in the creation order of the first."""
    d = kvd(file=True, interval=0, start=False)
    with open(d.snapshot_file, "wb") as f:
        f.write(kvsnapfile.encode([{"namespace": "ns", "keys": [
            {"key": "k1", "value": "first", "expiresAt": None},
            {"key": "k2", "value": "v2", "expiresAt": None},
            {"key": "k1", "value": "second", "expiresAt": None}]}]))
    d.start()
    r = d.keylist("ns")
    assert [k["key"] for k in json.loads(r.body)["keys"]] == ["k1", "k2"], r
    assert json.loads(d.kv_get("ns", "k1").body)["value"] == "second"
