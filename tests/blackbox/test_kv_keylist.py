"""GET /v4/keylist/{namespace} of long namespaces (butlerd(8), KEY-VALUE STORE,
"Long key lists"): a list longer than 1 MiB is sent as it is made, a page of keys
at a time, with chunked transfer encoding; the bytes are those of a short list:
{"namespace":NS,"keys":[{"key":K},...]} in creation order. Shorter lists keep their
Content-Length. Each test runs on the shared-memory and the Redis backend."""

import json
import os
import random
import socket

import harness
from harness import JSON_CT
from kvfix import kvd, keylist_body, q  # noqa: F401 (pytest fixture)


def fill(d, ns, keys):
    """POST KEYS into NS over one kept-alive connection."""
    c = d.conn()
    try:
        for k in keys:
            r = harness.conn_request(c, "POST", "/v4/keyvalues/" + q(ns),
                                     {"Content-Type": "application/json"},
                                     harness.jdump({"key": k, "value": "v"}))
            assert r.status == 201, r
    finally:
        c.close()


def chunked_list(d, ns):
    r = d.keylist(ns)
    assert r.status == 200, r
    assert r.header("Content-Type") == JSON_CT, r
    assert r.header("Transfer-Encoding") == "chunked", r
    assert r.header("Content-Length") is None, r
    return r.body


def test_long_list_is_streamed_in_creation_order(kvd):
    """25,000 keys (over 1 MiB of JSON, several pages on either backend), created
    in shuffled order, some deleted: every live key once, in creation order."""
    n = 25000
    d = kvd(workers=1, namespaces=10, keys=n + 10, per_ns=n + 10, key_bytes=64, value_bytes=8)
    keys = ["key-%06d-%s" % (i, "x" * 30) for i in range(n)]
    random.Random(7).shuffle(keys)
    fill(d, "long", keys)
    gone = set(keys[100:5000:7]) | {keys[0], keys[-1]}
    for k in gone:
        harness.check_204(d.del_key("long", k))
    want = [k for k in keys if k not in gone]
    body = chunked_list(d, "long")
    assert body == keylist_body("long", want)
    # HEAD: the same status and type, no body
    r = d.request("HEAD", "/v4/keylist/long")
    assert (r.status, r.body, r.header("Content-Type")) == (200, b"", JSON_CT), r
    # HEAD through a POST override: the length of the body it does not send
    # (answered with the head alone, then the connection is closed)
    with socket.create_connection(("127.0.0.1", d.port), timeout=30) as c:
        c.sendall(b"POST /v4/keylist/long HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                  b"X-HTTP-Method-Override: HEAD\r\n\r\n")
        got = b""
        for _ in range(1000):
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), got[:300]
    assert b"\r\ncontent-length: %d\r\n" % len(body) in head.lower() + b"\r\n", head
    assert rest == b"", got[:300]
    # the same list again, and a second namespace is not mixed in
    fill(d, "other", ["o1", "o2"])
    assert chunked_list(d, "long") == body
    harness.check_reply(d.keylist("other"), 200, keylist_body("other", ["o1", "o2"]))


def test_streamed_list_escapes_as_a_short_one(kvd):
    """Names with quotes, backslashes, slashes, control characters and UTF-8 come
    out byte for byte as in a short list (the JSON encoder's escapes)."""
    d = kvd(workers=1, namespaces=10, keys=25000, per_ns=25000, key_bytes=64, value_bytes=8)
    odd = ['q"uote', "back\\slash", "sl/ash", "tab\tnl\ncr\r", "bs\b ff\f", "ctl\x01\x1f\x7f",
           "\u00e5\u00e4\u00f6 \u2713 \U0001F600", "  spaces  "]
    ns = 'n"s/\u2713'
    keys = odd + ["pad-%05d-%s" % (i, "p" * 40) for i in range(20000)]
    fill(d, ns, keys)
    body = chunked_list(d, ns)
    assert body == keylist_body(ns, keys)
    assert json.loads(body)["keys"][:len(odd)] == [{"key": k} for k in odd]
    # the same names in a short list: same bytes for them
    fill(d, "short", odd)
    harness.check_reply(d.keylist("short"), 200, keylist_body("short", odd))


def test_list_of_a_missing_namespace_and_of_an_emptied_one(kvd):
    d = kvd(workers=1)
    r = d.keylist("nope")
    harness.check_reply(r, 400, harness.err(400, "Namespace not found: nope"))
    fill(d, "e", ["a"])
    harness.check_204(d.del_key("e", "a"))
    harness.check_reply(d.keylist("e"), 200, keylist_body("e", []))


def test_million_keys_complete(tmp_path):
    """One million keys (loaded from a snapshot file, shared-memory backend): the
    reply is complete, in creation order, and the worker's memory does not grow
    with the list (the whole list as json-c objects took about 1 KB a key)."""
    n = 1000000
    snap = tmp_path / "kv.json"
    with open(snap, "w") as f:
        f.write('{"format":"butlerd-kv","version":1,"savedAt":"2026-01-01T00:00:00.000Z",'
                '"namespaces":[{"namespace":"m","keys":[')
        f.write(",".join('{"key":"k%07d","value":"v","expiresAt":null}' % i for i in range(n)))
        f.write("]}]}")
    os.chmod(snap, 0o600)
    ov = harness.kv_overrides(per_ns=n, namespaces=4, keys=n, key_bytes=32, value_bytes=8,
                              file=str(snap), interval=3600)
    d = harness.KvDaemonBase(tmp_path / "d", ov, workers=1)
    os.makedirs(d.tmpdir, exist_ok=True)
    saved = harness.READY_TIMEOUT
    harness.READY_TIMEOUT = 180.0
    try:
        d.start()
        worker = d.worker_pids()
        c = d.conn(timeout=120)
        c.request("GET", "/v4/keylist/m")
        r = c.getresponse()
        assert r.status == 200
        assert r.getheader("Transfer-Encoding") == "chunked"
        body = r.read()
        c.close()
        got = json.loads(body)
        assert got["namespace"] == "m"
        assert len(got["keys"]) == n
        assert all(e == {"key": "k%07d" % i} for i, e in enumerate(got["keys"]))
        del got, body
        # a sanitizer build's shadow memory and quarantine dwarf what is measured
        for pid in ([] if harness.sanitizers_active() else worker):
            # peak RSS of the worker since it started
            with open("/proc/%d/status" % pid) as f:
                hwm = [int(l.split()[1]) for l in f if l.startswith("VmHWM:")][0]
            with open("/proc/%d/status" % pid) as f:
                rss = [int(l.split()[1]) for l in f if l.startswith("RssAnon:")][0]
            # the anonymous memory left is small; the peak counts the shared table
            # (about 80 MB here) that the listing reads, not 1 GB of json-c objects
            assert rss < 64 * 1024, rss
            assert hwm < 400 * 1024, hwm
    finally:
        harness.READY_TIMEOUT = saved
        d.stop()
        d.cleanup_shm()
