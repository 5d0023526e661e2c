"""Key-value store rules across routes: key and namespace order, TTL, type
coercion, names with unicode, ':', '/' and spaces, routes and methods,
X-HTTP-Method-Override, Expect: 100-continue."""

import json
import time

import pytest

from harness import not_found, wait_until
from kvfix import (  # noqa: F401
    BAD_MEDIA,
    NOT_EXISTS,
    bad_url,
    check,
    check_204,
    entry,
    exists_body,
    head_lines,
    jdump,
    key_not_found,
    keylist_body,
    ns_not_found,
    q,
    ttl_of)
from kvfix import kvd, shared, store  # noqa: F401 (pytest fixtures)


# ---------------------------------------------------------------- order (4.1)

def test_namespace_creation_order(store):
    check(store.get("/v4/keyvaluesnamespaces"), 200, b"[]")
    for ns in ["b", "a", "Sales ETL step 2", "c"]:
        store.put_ok(ns, "k", "v")
    check(store.get("/v4/keyvaluesnamespaces"), 200, jdump(["b", "a", "Sales ETL step 2", "c"]))
    # writing into an existing namespace keeps its place
    store.put_ok("b", "k2", "v")
    store.put_ok("a", "k", "v2")
    check(store.get("/v4/keyvaluesnamespaces"), 200, jdump(["b", "a", "Sales ETL step 2", "c"]))
    # delete + re-create moves to the end
    check_204(store.del_ns("b"))
    check(store.get("/v4/keyvaluesnamespaces"), 200, jdump(["a", "Sales ETL step 2", "c"]))
    store.put_ok("b", "k", "v")
    check(store.get("/v4/keyvaluesnamespaces"), 200, jdump(["a", "Sales ETL step 2", "c", "b"]))


def test_key_creation_order(store):
    for k in ["k1", "k2", "k3", "k0"]:
        store.put_ok("ord", k, "v-" + k)
    check(store.keylist("ord"), 200, keylist_body("ord", ["k1", "k2", "k3", "k0"]))
    # overwrite keeps the position
    store.put_ok("ord", "k1", "new")
    store.put_ok("ord", "k3", "new", ttl=600000)
    check(store.keylist("ord"), 200, keylist_body("ord", ["k1", "k2", "k3", "k0"]))
    check(store.kv_get("ord", "k1"), 200, entry("ord", "k1", "new"))
    # delete + rewrite moves to the end
    check_204(store.del_key("ord", "k2"))
    check(store.keylist("ord"), 200, keylist_body("ord", ["k1", "k3", "k0"]))
    store.put_ok("ord", "k2", "again")
    check(store.keylist("ord"), 200, keylist_body("ord", ["k1", "k3", "k0", "k2"]))
    check(store.kv_get("ord", "k2"), 200, entry("ord", "k2", "again"))


def test_key_order_many(store):
    keys = ["key%03d" % i for i in range(150)]
    import random
    rnd = random.Random(7)
    rnd.shuffle(keys)
    for k in keys:
        store.put_ok("many", k, k)
    check(store.keylist("many"), 200, keylist_body("many", keys))
    for k in keys[::3]:
        check_204(store.del_key("many", k))
    rest = [k for i, k in enumerate(keys) if i % 3]
    check(store.keylist("many"), 200, keylist_body("many", rest))
    for k in keys[::3]:
        store.put_ok("many", k, "re")
    check(store.keylist("many"), 200, keylist_body("many", rest + keys[::3]))


# ------------------------------------------------------------------- TTL (4.3)

def test_ttl_reported_in_get_and_keyexists(store):
    store.put_ok("t", "k", "v", ttl=600000)
    store.put_ok("t", "plain", "p")
    r = store.kv_get("t", "k")
    t = ttl_of(r)
    assert isinstance(t, int) and 590000 < t <= 600000, r
    check(r, 200, entry("t", "k", "v", t))
    r = store.kv_exists("t", "k")
    t2 = ttl_of(r)
    assert isinstance(t2, int) and 0 < t2 <= t, r
    check(r, 200, exists_body("t", "k", "v", t2))
    check(store.kv_exists("t", "plain"), 200, exists_body("t", "plain", "p"))


def test_ttl_expiry(store):
    store.put_ok("ttl", "keep", "forever")
    t0 = time.monotonic()
    store.put_ok("ttl", "short", "lived", ttl=800)
    store.put_ok("ttl", "after", "x")
    r = store.kv_get("ttl", "short")
    if time.monotonic() - t0 < 0.7:
        t = ttl_of(r)
        assert r.status == 200 and isinstance(t, int) and 0 < t <= 800, r
    expired = wait_until(lambda: store.kv_get("ttl", "short").status == 400, 3.0, 0.05)
    assert expired, "key with ttl 800 ms still there after 3 s"
    assert time.monotonic() - t0 >= 0.75, "expired too early"
    check(store.kv_get("ttl", "short"), 400, key_not_found("ttl", "short"))
    check(store.kv_exists("ttl", "short"), 200, NOT_EXISTS)
    check(store.keylist("ttl"), 200, keylist_body("ttl", ["keep", "after"]))
    check(store.del_key("ttl", "short"), 400, key_not_found("ttl", "short"))
    check(store.get("/v4/keyvaluesnamespaces"), 200, b'["ttl"]')
    # written again after expiry: at the end, without ttl
    store.put_ok("ttl", "short", "again")
    check(store.keylist("ttl"), 200, keylist_body("ttl", ["keep", "after", "short"]))
    check(store.kv_get("ttl", "short"), 200, entry("ttl", "short", "again"))


def test_ttl_all_keys_expire_namespace_stays(store):
    store.put_ok("gone", "a", "1", ttl=400)
    store.put_ok("gone", "b", "2", ttl=500)
    assert wait_until(lambda: store.keylist("gone").body == keylist_body("gone", []), 3.0)
    check(store.keylist("gone"), 200, b'{"namespace":"gone","keys":[]}')
    check(store.get("/v4/keyvaluesnamespaces"), 200, b'["gone"]')
    check(store.kv_exists("gone", "a"), 200, NOT_EXISTS)


def test_overwrite_without_ttl_removes_ttl(store):
    store.put_ok("o", "k", "v1", ttl=800)
    store.put_ok("o", "k", "v2")
    check(store.kv_get("o", "k"), 200, entry("o", "k", "v2"))
    check(store.kv_exists("o", "k"), 200, exists_body("o", "k", "v2"))
    time.sleep(1.3)
    check(store.kv_get("o", "k"), 200, entry("o", "k", "v2"))
    # overwriting with ttl 0 or a negative ttl removes it too
    store.put_ok("o", "z", "v", ttl=600000)
    store.put_ok("o", "z", "v", ttl=0)
    check(store.kv_get("o", "z"), 200, entry("o", "z", "v"))
    store.put_ok("o", "n", "v", ttl=600000)
    store.put_ok("o", "n", "v", ttl=-1)
    check(store.kv_get("o", "n"), 200, entry("o", "n", "v"))


def test_overwrite_ttl_counts_from_latest_write(store):
    store.put_ok("o", "k", "v", ttl=600000)
    store.put_ok("o", "k", "v", ttl=2000)
    t = ttl_of(store.kv_get("o", "k"))
    assert isinstance(t, int) and 0 < t <= 2000
    store.put_ok("o", "p", "v")
    store.put_ok("o", "p", "w", ttl=600000)
    t = ttl_of(store.kv_get("o", "p"))
    assert isinstance(t, int) and 590000 < t <= 600000


def test_negative_ttl_means_no_expiry(store):
    check(store.post("neg", b'{"key":"k","value":"v","ttl":-500}'), 201,
          entry("neg", "k", "v", -500))
    check(store.kv_get("neg", "k"), 200, entry("neg", "k", "v"))
    time.sleep(0.8)
    check(store.kv_get("neg", "k"), 200, entry("neg", "k", "v"))
    check(store.kv_exists("neg", "k"), 200, exists_body("neg", "k", "v"))


def test_ttl_one_ms(store):
    check(store.post("one", b'{"key":"k","value":"v","ttl":1}'), 201, entry("one", "k", "v", 1))
    assert wait_until(lambda: store.kv_get("one", "k").status == 400, 2.0)
    check(store.kv_get("one", "k"), 400, key_not_found("one", "k"))


# ------------------------------------------------------------- names (4.1)

NAMES = [
    "日本語 ✓",
    "a:b",
    "ns:with:colons",
    "a/b",
    "/leading/and/trailing/",
    "Sales ETL step 2",
    "plus+sign",
    "100%",
    "%41",
    "q?x=1&y=2#frag",
    "it's \"quoted\"",
    "back\\slash",
    "émoji \U0001F600",
    " spaces ",
]


@pytest.mark.parametrize("name", NAMES)
def test_names_round_trip(store, name):
    ns, key = name, "key " + name
    check(store.post(q(ns), {"key": key, "value": "val " + name}), 201,
          entry(ns, key, "val " + name, 0))
    # and the same name as a key in a plain namespace
    check(store.post("plain", {"key": name, "value": "v"}), 201, entry("plain", name, "v", 0))
    check(store.kv_get(ns, key), 200, entry(ns, key, "val " + name))
    check(store.kv_get("plain", name), 200, entry("plain", name, "v"))
    check(store.kv_exists(ns, key), 200, exists_body(ns, key, "val " + name))
    check(store.kv_exists("plain", name), 200, exists_body("plain", name, "v"))
    check(store.keylist(ns), 200, keylist_body(ns, [key]))
    check(store.keylist("plain"), 200, keylist_body("plain", [name]))
    check(store.get("/v4/keyvaluesnamespaces"), 200, jdump([ns, "plain"]))
    check(store.kv_get(ns, "absent"), 400, key_not_found(ns, "absent"))
    check_204(store.del_key(ns, key))
    check_204(store.del_key("plain", name))
    check(store.del_key("plain", name), 400, key_not_found("plain", name))
    check_204(store.del_ns(ns))
    check(store.keylist(ns), 400, ns_not_found(ns))
    check(store.get("/v4/keyvaluesnamespaces"), 200, jdump(["plain"]))


def test_colon_namespace_keylist(store):
    """Butler returns wrong key names for namespaces with ':'; butlerd not."""
    for k in ["a:1", "b", "c:d:e"]:
        store.put_ok("x:y", k, "v")
    check(store.keylist("x:y"), 200, keylist_body("x:y", ["a:1", "b", "c:d:e"]))
    # ':' unencoded in the path too
    check(store.get("/v4/keylist/x:y"), 200, keylist_body("x:y", ["a:1", "b", "c:d:e"]))
    check(store.get("/v4/keyvalues/x:y?key=c:d:e"), 200, entry("x:y", "c:d:e", "v"))


def test_plus_in_path_and_query(store):
    # '+' in a path is a literal plus; in a query it means space (spec 1.2, 1.5)
    check(store.post("a+b", {"key": "k 1", "value": "v"}), 201, entry("a+b", "k 1", "v", 0))
    check(store.get("/v4/keyvalues/a+b?key=k+1"), 200, entry("a+b", "k 1", "v"))
    check(store.get("/v4/keyvalues/a%2Bb?key=k%201"), 200, entry("a+b", "k 1", "v"))
    check(store.get("/v4/keyvalues/a%20b?key=k+1"), 400, ns_not_found("a b"))
    check(store.get("/v4/keyvaluesnamespaces"), 200, b'["a+b"]')


def test_query_malformed_escape_kept_literally(store):
    store.put_ok("m", "%zz", "literal")
    store.put_ok("m", "50%", "pct")
    check(store.get("/v4/keyvalues/m?key=%zz"), 200, entry("m", "%zz", "literal"))
    check(store.get("/v4/keyvalues/m?key=50%"), 200, entry("m", "50%", "pct"))
    check(store.get("/v4/keyvalues/m?key=50%25"), 200, entry("m", "50%", "pct"))


def test_encoded_slash_in_delete_key(store):
    store.put_ok("d/s", "a/b", "1")
    store.put_ok("d/s", "a", "2")
    check_204(store.request("DELETE", "/v4/keyvalues/d%2Fs/a%2Fb"))
    check(store.keylist("d/s"), 200, keylist_body("d/s", ["a"]))
    check(store.request("DELETE", "/v4/keyvalues/d%2fs/a%2fb"), 400, key_not_found("d/s", "a/b"))
    check_204(store.request("DELETE", "/v4/keyvalues/d%2Fs"))
    check(store.get("/v4/keyvaluesnamespaces"), 200, b"[]")


@pytest.mark.parametrize("method,target", [
    ("GET", "/v4/keyvalues/%zz"),
    ("GET", "/v4/keyvalues/%zz/keyexists"),
    ("GET", "/v4/keylist/%zz"),
    ("GET", "/v4/keylist/ab%2"),
    ("GET", "/v4/keyvalues/a%00b"),
    ("GET", "/v4/keyvalues/a%FFb"),          # not UTF-8, as decodeURIComponent says
    ("DELETE", "/v4/keyvalues/ns1/%C3"),      # a cut UTF-8 sequence
    ("POST", "/v4/keyvalues/%ED%A0%80"),      # a UTF-16 surrogate
    ("DELETE", "/v4/keyvalues/%zz"),
    ("DELETE", "/v4/keyvalues/ns1/%zz"),
    ("DELETE", "/v4/keyvalues/%zz/k1"),
    ("POST", "/v4/keyvalues/%zz"),
])
def test_bad_percent_escape_in_path(store, method, target):
    store.put_ok("ns1", "k1", "v1")
    body = b'{"key":"k","value":"v"}' if method == "POST" else None
    headers = {"Content-Type": "application/json"} if body else {}
    check(store.request(method, target, headers, body), 400, bad_url(target))
    check(store.get("/v4/keyvaluesnamespaces"), 200, b'["ns1"]')
    check(store.keylist("ns1"), 200, keylist_body("ns1", ["k1"]))


def test_bad_percent_escape_exact_brief_example(shared):
    r = shared.get("/v4/keyvalues/%zz")
    check(r, 400, b'{"statusCode":400,"code":"FST_ERR_BAD_URL","error":"Bad Request",'
                  b'"message":"\'/v4/keyvalues/%zz\' is not a valid url component"}')


# ---------------------------------------------- routes, methods, override

@pytest.mark.parametrize("method,target", [
    ("PUT", "/v4/keyvalues/ns1"),
    ("PATCH", "/v4/keyvalues/ns1"),
    ("OPTIONS", "/v4/keyvalues/ns1"),
    ("PUT", "/v4/keyvalues/ns1/k1"),
    ("POST", "/v4/keyvalues/ns1/k1"),
    ("GET", "/v4/keyvalues/ns1/k1"),
    ("GET", "/v4/keyvalues/ns1/k1?key=k1"),
    ("POST", "/v4/keyvalues/ns1/keyexists"),
    ("DELETE", "/v4/keyvalues/ns1/k1/extra"),
    ("GET", "/v4/keyvalues/ns1/keyexists/x?key=k1"),
    ("GET", "/v4/keyvalues"),
    ("POST", "/v4/keyvalues"),
    ("DELETE", "/v4/keyvalues"),
    ("GET", "/v4/keylist"),
    ("POST", "/v4/keylist/ns1"),
    ("DELETE", "/v4/keylist/ns1"),
    ("GET", "/v4/keylist/ns1/k1"),
    ("POST", "/v4/keyvaluesnamespaces"),
    ("DELETE", "/v4/keyvaluesnamespaces"),
    ("GET", "/v4/keyvaluesnamespaces/"),
    ("GET", "/v4/KeyValuesNamespaces"),
    ("GET", "/v4/KEYLIST/ns1"),
    ("GET", "/v4/kvstore/ns1"),
    ("GET", "/v2/keyvaluesnamespaces"),
])
def test_not_found_routes(store, method, target):
    store.put_ok("ns1", "k1", "v1")
    body, headers = None, {}
    if method in ("POST", "PUT"):
        body, headers = b'{"key":"k1","value":"changed"}', {"Content-Type": "application/json"}
    check(store.request(method, target, headers, body), 404, not_found(method, target))
    check(store.kv_get("ns1", "k1"), 200, entry("ns1", "k1", "v1"))


def test_routes_disabled(kvd):
    d = kvd(enable=False)
    for method, target in [("GET", "/v4/keyvaluesnamespaces"),
                           ("GET", "/v4/keyvalues/ns1?key=k1"),
                           ("GET", "/v4/keyvalues/ns1/keyexists?key=k1"),
                           ("POST", "/v4/keyvalues/ns1"),
                           ("DELETE", "/v4/keyvalues/ns1/k1"),
                           ("DELETE", "/v4/keyvalues/ns1"),
                           ("GET", "/v4/keylist/ns1")]:
        body, headers = None, {}
        if method == "POST":
            body, headers = b'{"key":"k1","value":"v1"}', {"Content-Type": "application/json"}
        check(d.request(method, target, headers, body), 404, not_found(method, target))
    r = d.get("/v4/configfile/endpointsenabled")
    assert r.status == 200 and "keyValueStore" not in json.loads(r.body), r


def test_endpointsenabled_lists_kv(store):
    r = store.get("/v4/configfile/endpointsenabled")
    assert r.status == 200, r
    assert "keyValueStore" in json.loads(r.body), r


def test_method_override_delete_key(store):
    store.put_ok("ns", "k", "v")
    store.put_ok("ns", "k2", "v2")
    r = store.post("ns/k", b"", ctype=None, headers={"X-HTTP-Method-Override": "DELETE"})
    check_204(r)
    check(store.kv_get("ns", "k"), 400, key_not_found("ns", "k"))
    r = store.post("ns/k", b"", ctype=None, headers={"X-HTTP-Method-Override": "DELETE"})
    check(r, 400, key_not_found("ns", "k"))
    # trimmed and upper-cased; a body is kept (and not needed)
    r = store.post("ns/k2", b'{"x":1}', headers={"X-HTTP-Method-Override": "  delete "})
    check_204(r)
    check(store.keylist("ns"), 200, keylist_body("ns", []))


def test_method_override_delete_namespace(store):
    store.put_ok("ns", "k", "v")
    store.put_ok("other", "k", "v")
    check_204(store.post("ns", None, ctype=None, headers={"X-HTTP-Method-Override": "DELETE"}))
    check(store.get("/v4/keyvaluesnamespaces"), 200, b'["other"]')


def test_method_override_get(store):
    store.put_ok("ns", "k", "v")
    r = store.post("ns", b'{"key":"k","value":"ignored"}', ctype="application/json",
                   headers={"X-HTTP-Method-Override": "GET"}, target="/v4/keyvalues/ns?key=k")
    check(r, 200, entry("ns", "k", "v"))
    r = store.post("ns", b"junk", ctype="application/xml",
                   headers={"X-HTTP-Method-Override": "GET"}, target="/v4/keylist/ns")
    check(r, 200, keylist_body("ns", ["k"]))


def test_method_override_put_is_404(store):
    store.put_ok("ns1", "k1", "v1")
    r = store.post("ns1", b'{"key":"k1","value":"changed"}',
                   headers={"X-HTTP-Method-Override": "PUT"})
    check(r, 404, not_found("PUT", "/v4/keyvalues/ns1"))
    check(store.kv_get("ns1", "k1"), 200, entry("ns1", "k1", "v1"))


def test_method_override_ignored_on_get_and_delete(store):
    store.put_ok("ns", "k", "v")
    r = store.request("GET", "/v4/keyvalues/ns?key=k", {"X-HTTP-Method-Override": "DELETE"})
    check(r, 200, entry("ns", "k", "v"))
    r = store.request("DELETE", "/v4/keyvalues/ns/k", {"X-HTTP-Method-Override": "POST"})
    check_204(r)
    check(store.kv_get("ns", "k"), 400, key_not_found("ns", "k"))


# ----------------------------------------------------- Expect: 100-continue

@pytest.mark.parametrize("expect", ["100-continue", "100-Continue"])
def test_expect_continue_post(store, expect):
    body = b'{"key":"k","value":"after 100"}'
    with store.raw() as c:
        c.send(head_lines("POST", "/v4/keyvalues/exp", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Expect", expect)]))
        interim = c.read_response(timeout=5)
        assert interim.version == "HTTP/1.1" and interim.status == 100, interim
        assert interim.reason == "Continue", interim
        c.send(body)
        check(c.read_response(), 201, entry("exp", "k", "after 100", 0))
    check(store.kv_get("exp", "k"), 200, entry("exp", "k", "after 100"))


def test_expect_continue_raw_bytes(store):
    """The interim response is exactly `HTTP/1.1 100 Continue` followed by
    an empty line, sent before any body byte."""
    body = b'{"key":"k","value":"v"}'
    with store.raw() as c:
        c.send(head_lines("POST", "/v4/keyvalues/raw", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Expect", "100-continue")]))
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in c.buf and time.monotonic() < deadline:
            if not c._recv(max(0.01, deadline - time.monotonic())):
                break
        assert c.buf.startswith(b"HTTP/1.1 100 Continue\r\n"), c.buf
        assert c.read_response().status == 100
        c.send(body)
        check(c.read_response(), 201, entry("raw", "k", "v", 0))


def test_expect_continue_refused_media_type(store):
    with store.raw() as c:
        c.send(head_lines("POST", "/v4/keyvalues/exp", [
            ("Content-Type", "application/x-www-form-urlencoded"), ("Content-Length", "7"),
            ("Expect", "100-continue")]))
        check(c.read_response(timeout=5), 415, BAD_MEDIA)
        assert c.closed(3.0), "connection not closed after the refused 100-continue"
    check(store.get("/v4/keyvaluesnamespaces"), 200, b"[]")


def test_expect_continue_refused_route(store):
    with store.raw() as c:
        c.send(head_lines("PUT", "/v4/keyvalues/exp", [
            ("Content-Type", "application/json"), ("Content-Length", "23"),
            ("Expect", "100-continue")]))
        check(c.read_response(timeout=5), 404, not_found("PUT", "/v4/keyvalues/exp"))
        assert c.closed(3.0)


def test_expect_other_value(store):
    body = b'{"key":"k","value":"v"}'
    with store.raw() as c:
        c.send(head_lines("POST", "/v4/keyvalues/exp", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Expect", "200-ok")]) + body)
        check(c.read_response(timeout=5), 417,
              b'{"statusCode":417,"error":"Expectation Failed","message":"Expectation Failed"}')
    check(store.get("/v4/keyvaluesnamespaces"), 200, b"[]")
