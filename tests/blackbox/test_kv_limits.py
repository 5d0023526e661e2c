"""Key-value store limits (400/413/507 at each bound) and consistency across
workers: what one worker writes, every other reads at once."""

import json
import secrets
import threading
import time

import pytest

import harness
from harness import wait_until
from kvfix import (  # noqa: F401
    MISSING,
    NOT_EXISTS,
    _start,
    check,
    check_204,
    entry,
    err,
    jdump,
    key_not_found,
    keylist_body,
    ns_not_found,
    q,
    uniq)
from kvfix import kvd, shared, store  # noqa: F401 (pytest fixtures)


# ------------------------------------------------------------- limits (4.4)

def test_value_size_limit(kvd):
    d = kvd(value_bytes=64)
    too_large = err(413, "Value too large (max 64 bytes)")
    d.put_ok("v", "ascii", "x" * 64)
    check(d.post("v", {"key": "ascii1", "value": "x" * 65}), 413, too_large)
    # bytes, not characters: 32 x U+00E9 is 64 bytes, one more byte is too many
    d.put_ok("v", "utf8", "\u00e9" * 32)
    check(d.post("v", {"key": "utf8b", "value": "\u00e9" * 32 + "x"}), 413, too_large)
    check(d.post("v", {"key": "utf8c", "value": "\u2713" * 22}), 413, too_large)  # 66 bytes
    d.put_ok("v", "utf8d", "\u2713" * 21 + "x")  # 64 bytes
    d.put_ok("v", "emoji", "\U0001F600" * 16)  # 64 bytes
    check(d.post("v", {"key": "emoji2", "value": "\U0001F600" * 16 + "x"}), 413, too_large)
    d.put_ok("v", "empty", "")
    # a failed write changes nothing: an existing value stays, no key, no namespace
    check(d.post("v", {"key": "ascii", "value": "y" * 65}), 413, too_large)
    check(d.kv_get("v", "ascii"), 200, entry("v", "ascii", "x" * 64))
    check(d.kv_get("v", "ascii1"), 400, key_not_found("v", "ascii1"))
    check(d.post("newns", {"key": "k", "value": "z" * 100}), 413, too_large)
    check(d.keylist("newns"), 400, ns_not_found("newns"))
    check(d.keylist("v"), 200, keylist_body("v", ["ascii", "utf8", "utf8d", "emoji", "empty"]))
    check(d.kv_get("v", "utf8"), 200, entry("v", "utf8", "\u00e9" * 32))
    check(d.kv_get("v", "emoji"), 200, entry("v", "emoji", "\U0001F600" * 16))
    check(d.get("/v4/keyvaluesnamespaces"), 200, b'["v"]')


def test_value_size_default_limit(store):
    store.put_ok("big", "k", "a" * 4096)
    check(store.post("big", {"key": "k2", "value": "a" * 4097}), 413,
          err(413, "Value too large (max 4096 bytes)"))
    check(store.kv_get("big", "k"), 200, entry("big", "k", "a" * 4096))


def test_key_and_namespace_size_limit(kvd):
    d = kvd(key_bytes=16, value_bytes=32)
    key_long = err(400, "Key too long (max 16 bytes)")
    ns_long = err(400, "Namespace too long (max 16 bytes)")
    d.put_ok("n", "k" * 16, "v")
    check(d.post("n", {"key": "k" * 17, "value": "v"}), 400, key_long)
    d.put_ok("n", "日本語abcdefg", "v")  # 9 + 7 = 16 bytes
    check(d.post("n", {"key": "日本語abcdefgh", "value": "v"}), 400, key_long)
    d.put_ok("n", "日本語✓✓x", "v")  # 9 + 6 + 1 = 16 bytes
    check(d.post("n", {"key": "日本語✓✓✓", "value": "v"}), 400, key_long)  # 18 bytes
    d.put_ok("N" * 16, "k", "v")
    check(d.post("N" * 17, {"key": "k", "value": "v"}), 400, ns_long)
    d.put_ok("名前空間x" + "yyy", "k", "v")  # 12 + 1 + 3 = 16 bytes
    check(d.post(q("名前空間xyyyy"), {"key": "k", "value": "v"}), 400, ns_long)
    # percent-decoded length counts: %41 is one byte
    check(d.post("%41" * 16, {"key": "pct", "value": "v"}), 201, entry("A" * 16, "pct", "v", 0))
    check(d.post("%41" * 17, {"key": "pct", "value": "v"}), 400, ns_long)
    # check order: required (3) before length (4) before value size (5)
    check(d.post("N" * 17, {"key": "", "value": "v"}), 400, MISSING)
    check(d.post("n", {"key": "k" * 17, "value": "v" * 40}), 400, key_long)
    check(d.post("N" * 17, {"key": "k", "value": "v" * 40}), 400, ns_long)
    check(d.post("n", {"key": "ok", "value": "v" * 33}), 413,
          err(413, "Value too large (max 32 bytes)"))
    # nothing of the failed writes exists
    check(d.keylist("n"), 200, keylist_body("n", ["k" * 16, "日本語abcdefg", "日本語✓✓x"]))
    check(d.get("/v4/keyvaluesnamespaces"), 200,
          jdump(["n", "N" * 16, "名前空間xyyy", "A" * 16]))
    check(d.kv_get("n", "k" * 16), 200, entry("n", "k" * 16, "v"))
    check(d.kv_get("名前空間xyyy", "k"), 200, entry("名前空間xyyy", "k", "v"))


def test_namespace_full(kvd):
    d = kvd(per_ns=3)
    full = err(507, "Namespace my ns is full (max 3 keys)")
    for k in ["k1", "k2", "k3"]:
        d.put_ok("my ns", k, "v")
    check(d.post(q("my ns"), {"key": "k4", "value": "v"}), 507, full)
    check(d.post(q("my ns"), {"key": "k5", "value": "v", "ttl": 60000}), 507, full)
    # the failed writes changed nothing
    check(d.kv_get("my ns", "k4"), 400, key_not_found("my ns", "k4"))
    check(d.kv_exists("my ns", "k5"), 200, NOT_EXISTS)
    check(d.keylist("my ns"), 200, keylist_body("my ns", ["k1", "k2", "k3"]))
    # overwriting an existing key in the full namespace still works
    d.put_ok("my ns", "k2", "new")
    d.put_ok("my ns", "k3", "new3", ttl=600000)
    check(d.kv_get("my ns", "k2"), 200, entry("my ns", "k2", "new"))
    check(d.keylist("my ns"), 200, keylist_body("my ns", ["k1", "k2", "k3"]))
    # other namespaces have their own count
    for k in ["a", "b", "c"]:
        d.put_ok("other", k, "v")
    check(d.post("other", {"key": "d", "value": "v"}), 507,
          err(507, "Namespace other is full (max 3 keys)"))
    # after a delete, a new key fits again
    check_204(d.del_key("my ns", "k1"))
    d.put_ok("my ns", "k4", "v4")
    check(d.keylist("my ns"), 200, keylist_body("my ns", ["k2", "k3", "k4"]))
    check(d.post(q("my ns"), {"key": "k1", "value": "v"}), 507, full)


def test_namespace_full_expired_keys_do_not_count(kvd):
    d = kvd(per_ns=3)
    full = err(507, "Namespace e is full (max 3 keys)")
    for k in ["e1", "e2", "e3"]:
        d.put_ok("e", k, "short", ttl=500)
    check(d.post("e", {"key": "n0", "value": "v"}), 507, full)
    assert wait_until(lambda: d.keylist("e").body == keylist_body("e", []), 3.0), \
        d.keylist("e")
    for k in ["n1", "n2", "n3"]:
        d.put_ok("e", k, "v")
    check(d.post("e", {"key": "n4", "value": "v"}), 507, full)
    check(d.keylist("e"), 200, keylist_body("e", ["n1", "n2", "n3"]))


def test_namespace_full_expired_keys_do_not_count_immediately(kvd):
    """Expired keys are reclaimed before a limit is reported, even if the
    master's sweep has not run yet: poll the write itself right after the
    expiry, without reading the keys first."""
    d = kvd(per_ns=2)
    d.put_ok("e", "a", "v", ttl=300)
    d.put_ok("e", "b", "v", ttl=300)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.33:
        time.sleep(0.01)
    r = d.post("e", {"key": "c", "value": "v"})
    check(r, 201, entry("e", "c", "v", 0))
    d.put_ok("e", "d", "v")
    check(d.keylist("e"), 200, keylist_body("e", ["c", "d"]))


def test_store_full(kvd):
    d = kvd(keys=5)
    full = err(507, "Key-value store is full (max 5 keys)")
    for ns, k in [("a", "k1"), ("a", "k2"), ("a", "k3"), ("b", "k1"), ("b", "k2")]:
        d.put_ok(ns, k, "v")
    check(d.post("b", {"key": "k3", "value": "v"}), 507, full)
    check(d.post("a", {"key": "k4", "value": "v"}), 507, full)
    # a new namespace is not created by a write that fails
    check(d.post("c", {"key": "k1", "value": "v"}), 507, full)
    check(d.get("/v4/keyvaluesnamespaces"), 200, b'["a","b"]')
    check(d.keylist("c"), 400, ns_not_found("c"))
    check(d.keylist("b"), 200, keylist_body("b", ["k1", "k2"]))
    # overwrite still works
    d.put_ok("a", "k1", "new")
    check(d.kv_get("a", "k1"), 200, entry("a", "k1", "new"))
    # a delete makes room
    check_204(d.del_key("a", "k2"))
    d.put_ok("b", "k3", "v")
    check(d.post("b", {"key": "k4", "value": "v"}), 507, full)
    # deleting a namespace frees its keys
    check_204(d.del_ns("a"))
    d.put_ok("c", "k1", "v")
    d.put_ok("c", "k2", "v")
    check(d.post("c", {"key": "k3", "value": "v"}), 507, full)
    check(d.get("/v4/keyvaluesnamespaces"), 200, b'["b","c"]')


def test_store_full_expired_keys_do_not_count(kvd):
    d = kvd(keys=3)
    full = err(507, "Key-value store is full (max 3 keys)")
    d.put_ok("x", "a", "v", ttl=500)
    d.put_ok("y", "b", "v", ttl=500)
    d.put_ok("y", "c", "v")
    check(d.post("z", {"key": "d", "value": "v"}), 507, full)
    assert wait_until(lambda: d.kv_get("y", "b").status == 400 and
                      d.kv_get("x", "a").status == 400, 3.0)
    d.put_ok("z", "d", "v")
    d.put_ok("z", "e", "v")
    check(d.post("z", {"key": "f", "value": "v"}), 507, full)
    check(d.get("/v4/keyvaluesnamespaces"), 200, b'["x","y","z"]')


def test_too_many_namespaces(kvd):
    d = kvd(namespaces=3)
    full = err(507, "Key-value store is full (max 3 namespaces)")
    for ns in ["n1", "n2", "n3"]:
        d.put_ok(ns, "k", "v")
    check(d.post("n4", {"key": "k", "value": "v"}), 507, full)
    check(d.get("/v4/keyvaluesnamespaces"), 200, b'["n1","n2","n3"]')
    check(d.keylist("n4"), 400, ns_not_found("n4"))
    # existing namespaces still take new keys
    d.put_ok("n1", "k2", "v")
    # a namespace without keys still counts
    check_204(d.del_key("n2", "k"))
    check(d.post("n4", {"key": "k", "value": "v"}), 507, full)
    # deleting a namespace makes room
    check_204(d.del_ns("n2"))
    d.put_ok("n4", "k", "v")
    check(d.get("/v4/keyvaluesnamespaces"), 200, b'["n1","n3","n4"]')
    check(d.post("n5", {"key": "k", "value": "v"}), 507, full)


def test_limit_check_order(kvd):
    d = kvd(per_ns=2, keys=2, namespaces=1)
    d.put_ok("a", "k1", "v")
    d.put_ok("a", "k2", "v")
    # row 7 (namespace full) comes before row 8 (store full)
    check(d.post("a", {"key": "k3", "value": "v"}), 507,
          err(507, "Namespace a is full (max 2 keys)"))
    # row 6 (namespaces) comes before row 8
    check(d.post("b", {"key": "k1", "value": "v"}), 507,
          err(507, "Key-value store is full (max 1 namespaces)"))
    # overwrite never fails on a count limit
    d.put_ok("a", "k1", "w")
    check(d.get("/v4/keyvaluesnamespaces"), 200, b'["a"]')
    check(d.keylist("a"), 200, keylist_body("a", ["k1", "k2"]))


# -------------------------------------------- consistency across workers (4.5)

def test_writes_read_back_through_fresh_connections(kvd):
    d = kvd(workers=4)
    c = d.conn()
    try:
        for i in range(200):
            value = "value-%d-%s" % (i, secrets.token_hex(4))
            r = harness.conn_request(c, "POST", "/v4/keyvalues/cross",
                                     {"Content-Type": "application/json"},
                                     jdump({"key": "k%d" % (i % 50), "value": value}))
            check(r, 201, entry("cross", "k%d" % (i % 50), value, 0))
            # a new TCP connection for each read, so other workers answer too
            check(d.get("/v4/keyvalues/cross?key=k%d" % (i % 50)), 200,
                  entry("cross", "k%d" % (i % 50), value))
    finally:
        c.close()
    check(d.keylist("cross"), 200, keylist_body("cross", ["k%d" % i for i in range(50)]))


def test_delete_seen_by_other_connections(kvd):
    d = kvd(workers=4)
    c = d.conn()
    try:
        for i in range(40):
            r = harness.conn_request(c, "POST", "/v4/keyvalues/del",
                                     {"Content-Type": "application/json"},
                                     jdump({"key": "k", "value": str(i)}))
            assert r.status == 201, r
            r = harness.conn_request(c, "DELETE", "/v4/keyvalues/del/k")
            check_204(r)
            check(d.get("/v4/keyvalues/del?key=k"), 400, key_not_found("del", "k"))
            check(d.get("/v4/keyvalues/del/keyexists?key=k"), 200, NOT_EXISTS)
    finally:
        c.close()


def test_concurrent_writers(kvd):
    """Four clients write disjoint keys into the same (new) namespaces at
    once; every acknowledged write is there and each namespace exists once."""
    d = kvd(workers=4)
    errors = []
    done = []

    def writer(t):
        try:
            for i in range(40):
                ns = "cc%d" % (i % 4)
                r = d.post(ns, {"key": "t%d-%d" % (t, i), "value": "v%d" % i})
                if r.status != 201:
                    errors.append(r)
                    return
            done.append(t)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads)
    assert not errors, errors[:5]
    assert sorted(done) == [0, 1, 2, 3]
    nss = d.namespaces()
    assert sorted(nss) == ["cc0", "cc1", "cc2", "cc3"], nss
    for j in range(4):
        keys = [k["key"] for k in json.loads(d.keylist("cc%d" % j).body)["keys"]]
        want = {"t%d-%d" % (t, i) for t in range(4) for i in range(40) if i % 4 == j}
        assert len(keys) == len(want) and set(keys) == want, keys


def test_torn_reads_never_seen(kvd):
    """Writers overwrite one key with long uniform values while readers on
    fresh connections check that every value read is one whole write."""
    d = kvd(workers=4)
    size = 4000
    d.put_ok("torn", "k", "a" * size)
    stop = threading.Event()
    bad, errors, reads = [], [], [0]

    def writer(ch):
        i = 0
        while not stop.is_set() and i < 3000:
            r = d.post("torn", {"key": "k", "value": ch * size})
            if r.status != 201:
                errors.append(r)
                return
            i += 1

    def reader():
        while not stop.is_set():
            r = d.get("/v4/keyvalues/torn?key=k")
            if r.status != 200:
                errors.append(r)
                return
            v = json.loads(r.body)["value"]
            reads[0] += 1
            if len(v) != size or v != v[0] * size:
                bad.append(v[:40] + "..." + v[-40:])

    threads = [threading.Thread(target=writer, args=(ch,)) for ch in "bcd"]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for th in threads:
        th.start()
    time.sleep(2.0)
    stop.set()
    for th in threads:
        th.join(30)
    assert not any(th.is_alive() for th in threads)
    assert not errors, errors[:3]
    assert not bad, "torn values read: %r" % bad[:3]
    assert reads[0] > 20


def test_namespace_create_delete_race(kvd):
    """Concurrent writes into and deletes of the same namespace: at the end
    the namespace is listed at most once and its keylist matches GET."""
    d = kvd(workers=4)
    stop = threading.Event()
    errors = []

    def writer(t):
        i = 0
        while not stop.is_set() and i < 2000:
            r = d.post("race", {"key": "t%d" % t, "value": str(i)})
            if r.status != 201:
                errors.append(r)
                return
            i += 1

    def deleter():
        i = 0
        while not stop.is_set() and i < 2000:
            r = d.del_ns("race")
            if r.status not in (204, 400):
                errors.append(r)
                return
            if r.status == 400 and r.body != ns_not_found("race"):
                errors.append(r)
                return
            i += 1

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    threads.append(threading.Thread(target=deleter))
    for th in threads:
        th.start()
    time.sleep(1.5)
    stop.set()
    for th in threads:
        th.join(30)
    assert not any(th.is_alive() for th in threads)
    assert not errors, errors[:3]
    nss = d.namespaces()
    assert nss.count("race") <= 1, nss
    if nss:
        keys = [k["key"] for k in json.loads(d.keylist("race").body)["keys"]]
        assert len(keys) == len(set(keys)) and set(keys) <= {"t0", "t1", "t2"}, keys
        for k in keys:
            assert d.kv_get("race", k).status == 200
    # the store still works normally afterwards
    for t in range(3):
        d.put_ok("race", "t%d" % t, "final")
    assert d.namespaces() == ["race"]
    for t in range(3):
        check(d.kv_get("race", "t%d" % t), 200, entry("race", "t%d" % t, "final"))


@pytest.mark.parametrize("spread", [1, 10])
def test_store_holds_exactly_kvmaxkeys(kvd, spread):
    """The table really holds kvMaxKeys keys (no stripe fills up early),
    whatever the hash distribution of the names."""
    n = 2000
    d = kvd(keys=n, per_ns=n + 10, namespaces=spread + 1)
    c = d.conn()
    try:
        for i in range(n):
            ns = "s%d" % (i % spread)
            r = harness.conn_request(c, "POST", "/v4/keyvalues/" + ns,
                                     {"Content-Type": "application/json"},
                                     jdump({"key": "key-%05d" % i, "value": "v%d" % i}))
            assert r.status == 201, (i, r)
        r = harness.conn_request(c, "POST", "/v4/keyvalues/s0",
                                 {"Content-Type": "application/json"},
                                 jdump({"key": "one-more", "value": "v"}))
        check(r, 507, err(507, "Key-value store is full (max %d keys)" % n))
    finally:
        c.close()
    total = 0
    for j in range(spread):
        keys = json.loads(d.keylist("s%d" % j).body)["keys"]
        assert [k["key"] for k in keys] == ["key-%05d" % i for i in range(j, n, spread)]
        total += len(keys)
    assert total == n
    for i in range(0, n, 97):
        check(d.kv_get("s%d" % (i % spread), "key-%05d" % i), 200,
              entry("s%d" % (i % spread), "key-%05d" % i, "v%d" % i))


def test_store_holds_exactly_kvmaxnamespaces(kvd):
    n = 300
    d = kvd(namespaces=n)
    c = d.conn()
    try:
        for i in range(n):
            r = harness.conn_request(c, "POST", "/v4/keyvalues/ns%03d" % i,
                                     {"Content-Type": "application/json"},
                                     b'{"key":"k","value":"v"}')
            assert r.status == 201, (i, r)
    finally:
        c.close()
    check(d.post("one-more", {"key": "k", "value": "v"}), 507,
          err(507, "Key-value store is full (max %d namespaces)" % n))
    assert d.namespaces() == ["ns%03d" % i for i in range(n)]


def test_names_with_separators_do_not_collide(store):
    """Namespace and key are separate: ("a:b", "c") is not ("a", "b:c")."""
    pairs = [("a:b", "c", "1"), ("a", "b:c", "2"), ("a/b", "c", "3"), ("a", "b/c", "4"),
             ("a b", "c", "5"), ("a", "b c", "6"), ("ab", "c", "7"), ("a", "bc", "8")]
    for ns, k, v in pairs:
        store.put_ok(ns, k, v)
    for ns, k, v in pairs:
        check(store.kv_get(ns, k), 200, entry(ns, k, v))
    check(store.keylist("a"), 200, keylist_body("a", ["b:c", "b/c", "b c", "bc"]))
    check(store.keylist("a:b"), 200, keylist_body("a:b", ["c"]))
    check(store.kv_get("a", "b"), 400, key_not_found("a", "b"))
    check(store.kv_get("a:b", "b:c"), 400, key_not_found("a:b", "b:c"))
    check_204(store.del_ns("a"))
    for ns, k, v in pairs:
        if ns != "a":
            check(store.kv_get(ns, k), 200, entry(ns, k, v))
    check(store.get("/v4/keyvaluesnamespaces"), 200, jdump(["a:b", "a/b", "a b", "ab"]))


def test_value_with_nul_character(shared):
    """Values are UTF-8 strings; U+0000 is one of its characters."""
    ns = uniq()
    value = "a\u0000b\u0000"
    r = shared.post(q(ns), {"key": "nul", "value": value})
    assert r.status == 201 and json.loads(r.body)["value"] == value, r
    r = shared.kv_get(ns, "nul")
    assert r.status == 200 and json.loads(r.body)["value"] == value, r


def test_value_escaping_at_max_size(kvd):
    """Values of kvMaxValueBytes bytes that grow a lot when JSON-escaped."""
    d = kvd(value_bytes=4096, key_bytes=256)
    for key, value in [("quotes", '"' * 4096), ("backslashes", "\\" * 4096),
                       ("ctl", "\x01" * 4096), ("mixed", '"\\\n\x02/' * 819 + "x")]:
        assert len(value.encode()) == 4096
        r = d.post("esc", {"key": key, "value": value})
        assert r.status == 201 and json.loads(r.body)["value"] == value, (key, r)
        r = d.kv_get("esc", key)
        assert r.status == 200 and json.loads(r.body)["value"] == value, (key, r)
        assert r.header("Content-Length") == str(len(r.body))
        r = d.kv_exists("esc", key)
        assert r.status == 200 and json.loads(r.body)["keyValue"]["value"] == value
    longkey = '"' * 256
    d.put_ok('"' * 256, longkey, "v")
    check(d.keylist('"' * 256), 200, keylist_body('"' * 256, [longkey]))


def test_large_listings(kvd):
    """keylist and keyvaluesnamespaces bodies of several hundred KB."""
    d = kvd(namespaces=1000, keys=5000, per_ns=1000, key_bytes=256)
    c = d.conn()
    try:
        keys = ["%04d" % i + "\"\\" * 126 for i in range(1000)]
        for k in keys:
            r = harness.conn_request(c, "POST", "/v4/keyvalues/big",
                                     {"Content-Type": "application/json"},
                                     jdump({"key": k, "value": "v"}))
            assert r.status == 201, r
        names = ["n%04d" % i + "\u2713" * 83 for i in range(300)]  # 5 + 249 bytes
        for ns in names:
            r = harness.conn_request(c, "POST", "/v4/keyvalues/" + q(ns),
                                     {"Content-Type": "application/json"},
                                     b'{"key":"k","value":"v"}')
            assert r.status == 201, r
    finally:
        c.close()
    check(d.keylist("big"), 200, keylist_body("big", keys))
    check(d.get("/v4/keyvaluesnamespaces"), 200, jdump(["big"] + names))


def test_two_instances_same_shm_name_do_not_collide(kvd):
    """Two daemons with the same shm.name on different ports have separate
    stores (the segment name includes the port)."""
    a = kvd()
    b = _start(a.tmpdir + "-b")
    b.shm = a.shm
    try:
        b.start()
        a.put_ok("ns", "k", "from a")
        check(b.kv_get("ns", "k"), 400, ns_not_found("ns"))
        b.put_ok("ns", "k", "from b")
        check(a.kv_get("ns", "k"), 200, entry("ns", "k", "from a"))
        check(b.kv_get("ns", "k"), 200, entry("ns", "k", "from b"))
    finally:
        b.stop()
        print(b.log_tail(100))
