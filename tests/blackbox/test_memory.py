"""Memory a running butlerd holds (butlerd(8), PERFORMANCE, "Memory"): the
shared store takes pages for the keys stored, not for the slots configured; the
master gives back the library pages only its start-up used; every library
symbol is bound before the workers are forked."""

import json
import os
import platform
import time

import pytest

import harness


def smaps(pid):
    """{path: {field: kB}} of /proc/PID/smaps, file-backed mappings only."""
    out, cur = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts[0]) > 8 and ":" not in parts[0]:
                cur = parts[5] if len(parts) > 5 and parts[5].startswith("/") else None
                continue
            if cur and parts[0].endswith(":") and len(parts) >= 2 and parts[1].isdigit():
                d = out.setdefault(cur, {})
                d[parts[0][:-1]] = d.get(parts[0][:-1], 0) + int(parts[1])
    return out


def kernel_at_least(major, minor):
    v = platform.release().split(".")
    return (int(v[0]), int(v[1].split("-")[0])) >= (major, minor)


def test_store_pages_follow_the_keys(tmp_path):
    """A store configured for 100,000 keys of up to 64 + 64 bytes, holding
    1,000: the segment's pages in memory are those of the keys (and the
    buckets), not of every stripe's slack. Before, each of the 1,024 stripes
    kept its slots apart, so the first key of each took a page of its own, and
    the statistics and rate-limit areas were cleared by writing zeros: about 7 MB
    in all for these 1,000 keys; now about 2 MB."""
    ov = harness.kv_overrides(per_ns=100000, namespaces=10, keys=100000, key_bytes=64,
                              value_bytes=64)
    d = harness.KvDaemonBase(tmp_path / "d", ov, workers=1)
    os.makedirs(d.tmpdir, exist_ok=True)
    try:
        d.start()
        c = d.conn()
        for i in range(1000):
            c.request("POST", "/v4/keyvalues/mem", json.dumps({"key": "k%d" % i, "value": "v" * 60}),
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            assert r.status == 201, (i, r.status)
        c.close()
        r = d.get("/v4/keylist/mem")
        assert r.status == 200 and len(json.loads(r.body)["keys"]) == 1000
        (path,) = d.shm_paths()
        st = os.stat(path)
        in_memory = st.st_blocks * 512
        assert st.st_size > 30 * 1024 * 1024, st.st_size  # room for 100,000 keys and users
        assert in_memory < 3 * 1024 * 1024, in_memory
    finally:
        d.stop()
        d.cleanup_shm()


@pytest.mark.skipif(not kernel_at_least(5, 4), reason="MADV_PAGEOUT needs Linux 5.4")
def test_master_gives_back_its_start_up_pages(tmp_path):
    """Once the workers are ready, the library pages that only the master maps
    (its start-up: GnuTLS, OpenSSL and libcurl initialisation, the configuration
    parser) are reclaimed: about 7 MB before, well under 2 MB after. Pages that
    other processes map too are not the master's alone and may stay."""
    d = harness.Daemon(tmp_path, {})
    d.start()
    try:
        d.wait_workers(2)
        private = None
        for _ in range(50):  # bounded: the master does it when the generation is ready
            m = smaps(d.proc.pid)
            private = sum(v.get("Private_Clean", 0) for v in m.values())
            if private < 2048:
                break
            time.sleep(0.1)
        assert private < 2048, (private, sorted(
            ((v.get("Private_Clean", 0), k) for k, v in m.items()), reverse=True)[:8])
        # and it still serves and reloads (pages it needs again are read back in)
        assert d.get("/v4/butlerping").status == 200
    finally:
        d.stop()


def test_library_symbols_are_bound_before_the_fork(tmp_path):
    """The master runs with LD_BIND_NOW (it starts its own executable again with
    it set, in the same process): the workers inherit every library symbol
    already bound. The process keeps its name and PID."""
    d = harness.Daemon(tmp_path, {})
    d.start()
    try:
        pid = d.proc.pid
        with open("/proc/%d/environ" % pid, "rb") as f:
            env = f.read().split(b"\0")
        assert b"LD_BIND_NOW=1" in env
        with open("/proc/%d/comm" % pid) as f:
            assert f.read().strip() == "butlerd"
        for w in d.wait_workers(2):
            with open("/proc/%d/environ" % w, "rb") as f:
                assert b"LD_BIND_NOW=1" in f.read().split(b"\0")
        assert d.get("/v4/butlerping").status == 200
    finally:
        d.stop()
