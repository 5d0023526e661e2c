"""Key-value store API (spec 2.6, 4.1-4.6, 4.8): every route, every error
row, the recorded Butler exchanges, key and namespace order, TTL, type
coercion, names with unicode, ':', '/' and spaces, limits (400/413/507),
X-HTTP-Method-Override, Expect: 100-continue and reads through other
workers.

Every daemon gets its own shared-memory name (/butlerd-t<random hex>); the
daemon creates /dev/shm/<name>.<port>, which is removed after each test."""

import json
import os
import secrets
import threading
import time
import urllib.parse

import pytest

import harness
from harness import JSON_CT, not_found, wait_until

# ------------------------------------------------------------------ helpers

REASONS, jdump, err, validation = harness.REASONS, harness.jdump, harness.err, harness.validation


MISSING = err(400, "Required parameter is missing")
NO_KEY_PARAM = validation("querystring must have required property 'key'")
NOT_OBJECT = validation("body must be object")
INVALID_JSON = err(400, "Body is not valid JSON but content-type is set to 'application/json'",
                   "FST_ERR_CTP_INVALID_JSON_BODY")
BAD_MEDIA = err(415, "Unsupported Media Type", "FST_ERR_CTP_INVALID_MEDIA_TYPE")


def ns_not_found(ns):
    return err(400, "Namespace not found: " + ns)


def key_not_found(ns, key):
    return err(400, "Key '%s' not found in namespace: %s" % (key, ns))


def bad_url(raw):
    return err(400, "'%s' is not a valid url component" % raw, "FST_ERR_BAD_URL")


def entry(ns, key, value, ttl=None):
    d = {"namespace": ns, "key": key, "value": value}
    if ttl is not None:
        d["ttl"] = ttl
    return jdump(d)


def exists_body(ns, key, value, ttl=None):
    d = {"namespace": ns, "key": key, "value": value}
    if ttl is not None:
        d["ttl"] = ttl
    return jdump({"keyExists": True, "keyValue": d})


NOT_EXISTS = b'{"keyExists":false,"keyValue":{}}'


def keylist_body(ns, keys):
    return jdump({"namespace": ns, "keys": [{"key": k} for k in keys]})


def q(s):
    """Percent-encode one path segment or query value (everything but
    unreserved characters, so '/' -> %2F, ' ' -> %20, '+' -> %2B)."""
    return urllib.parse.quote(s, safe="")


check = harness.check_reply


check_204 = harness.check_204


# ------------------------------------------------------------------ daemon

kv_overrides = harness.kv_overrides


class KvDaemon(harness.KvDaemonBase):
    """harness.Daemon with the key-value store enabled and a private,
    random shared-memory name."""

    # ---- requests
    def post(self, ns_raw, body, ctype="application/json", headers=None, target=None):
        h = {}
        if ctype is not None:
            h["Content-Type"] = ctype
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = jdump(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        return self.request("POST", target or "/v4/keyvalues/" + ns_raw, h, body)

    def put_ok(self, ns, key, value, ttl=None):
        """POST one key and assert the 201 echo."""
        body = {"key": key, "value": value}
        if ttl is not None:
            body["ttl"] = ttl
        r = self.post(q(ns), body)
        check(r, 201, entry(ns, key, value, 0 if ttl is None else ttl))
        return r

    def kv_get(self, ns, key):
        return self.get("/v4/keyvalues/%s?key=%s" % (q(ns), q(key)))

    def kv_exists(self, ns, key):
        return self.get("/v4/keyvalues/%s/keyexists?key=%s" % (q(ns), q(key)))

    def keylist(self, ns):
        return self.get("/v4/keylist/" + q(ns))

    def namespaces(self):
        r = self.get("/v4/keyvaluesnamespaces")
        assert r.status == 200, r
        assert r.header("Content-Type") == JSON_CT, r
        return json.loads(r.body)

    def del_key(self, ns, key):
        return self.request("DELETE", "/v4/keyvalues/%s/%s" % (q(ns), q(key)))

    def del_ns(self, ns):
        return self.request("DELETE", "/v4/keyvalues/" + q(ns))


def _start(tmpdir, workers=2, **kw):
    d = KvDaemon(tmpdir, kv_overrides(**kw), workers)
    os.makedirs(d.tmpdir, exist_ok=True)
    return d


@pytest.fixture
def kvd(tmp_path):
    """Factory: kvd(workers=2, per_ns=, namespaces=, keys=, key_bytes=,
    value_bytes=, file=, interval=, enable=) -> running KvDaemon."""
    started = []

    def start(workers=2, **kw):
        d = _start(tmp_path / ("d%d" % len(started)), workers, **kw)
        started.append(d)
        return d.start()

    yield start
    for d in started:
        try:
            d.stop()
        finally:
            d.cleanup_shm()
        print(d.log_tail(200))


@pytest.fixture
def store(kvd):
    """A fresh daemon with an empty store and the default limits."""
    return kvd()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One daemon for the tests that only touch their own namespaces."""
    d = _start(tmp_path_factory.mktemp("kvshared"))
    d.start()
    yield d
    try:
        d.stop()
    finally:
        d.cleanup_shm()
    print(d.log_tail(200))


_ns_seq = iter(range(1, 1 << 30))


def uniq(prefix="ns"):
    return "%s-%d-%s" % (prefix, next(_ns_seq), secrets.token_hex(3))


def head_lines(method, target, headers=(), version="HTTP/1.1"):
    lines = ["%s %s %s" % (method, target, version), "Host: 127.0.0.1"]
    lines += ["%s: %s" % h for h in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def ttl_of(r):
    """ttl member of a GET or keyexists answer (None if absent)."""
    obj = json.loads(r.body)
    if "keyValue" in obj:
        obj = obj["keyValue"]
    return obj.get("ttl")


# ------------------------------------------------------ 4.8 recorded exchanges

def test_recorded_exchanges(store):
    d = store
    check(d.get("/v4/keyvaluesnamespaces"), 200, b"[]")
    check(d.post("ns1", b'{"key":"k1","value":"v1"}'), 201,
          b'{"namespace":"ns1","key":"k1","value":"v1","ttl":0}')
    check(d.get("/v4/keyvalues/ns1?key=nokey"), 400,
          b'{"statusCode":400,"error":"Bad Request",'
          b'"message":"Key \'nokey\' not found in namespace: ns1"}')
    check(d.get("/v4/keyvalues/nons?key=k1"), 400,
          b'{"statusCode":400,"error":"Bad Request","message":"Namespace not found: nons"}')
    check(d.get("/v4/keyvalues/ns1"), 400,
          b'{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request",'
          b'"message":"querystring must have required property \'key\'"}')
    check(d.post("ns1", b'{"key":"","value":"v"}'), 400,
          b'{"statusCode":400,"error":"Bad Request","message":"Required parameter is missing"}')
    check(d.post("ns1", b'{"value":"v"}'), 400, MISSING)
    check(d.post("ns1", b'{"key":"k3","value":"v","ttl":"abc"}'), 400,
          b'{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request",'
          b'"message":"body/ttl must be number"}')
    check(d.post("ns1", b'{"key":"k5",'), 400,
          b'{"statusCode":400,"code":"FST_ERR_CTP_INVALID_JSON_BODY","error":"Bad Request",'
          b'"message":"Body is not valid JSON but content-type is set to \'application/json\'"}')
    check(d.post("ns9", b"hello", ctype="text/plain"), 400,
          b'{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request",'
          b'"message":"body must be object"}')
    check(d.post("ns9", None, ctype=None), 400, NOT_OBJECT)
    check(d.post("ns9", b"key=k&value=v", ctype="application/x-www-form-urlencoded"), 415,
          b'{"statusCode":415,"code":"FST_ERR_CTP_INVALID_MEDIA_TYPE",'
          b'"error":"Unsupported Media Type","message":"Unsupported Media Type"}')
    check(d.post("ns1", b'{"key":"k2","value":"v2"}'), 201,
          b'{"namespace":"ns1","key":"k2","value":"v2","ttl":0}')
    check_204(d.request("DELETE", "/v4/keyvalues/ns1/k2"))
    check(d.request("DELETE", "/v4/keyvalues/ns1/k2"), 400,
          b'{"statusCode":400,"error":"Bad Request",'
          b'"message":"Key \'k2\' not found in namespace: ns1"}')
    check(d.post("ttlns", b'{"key":"short","value":"lived","ttl":1000}'), 201,
          b'{"namespace":"ttlns","key":"short","value":"lived","ttl":1000}')
    time.sleep(1.6)
    check(d.get("/v4/keyvalues/ttlns?key=short"), 400,
          b'{"statusCode":400,"error":"Bad Request",'
          b'"message":"Key \'short\' not found in namespace: ttlns"}')
    check(d.get("/v4/keylist/ttlns"), 200, b'{"namespace":"ttlns","keys":[]}')
    # none of the failed writes created ns9
    check(d.get("/v4/keyvaluesnamespaces"), 200, b'["ns1","ttlns"]')


@pytest.mark.parametrize("ns_raw,body,response", [
    ("ns1", b'{"key":"k1","value":"v1"}', b'{"namespace":"ns1","key":"k1","value":"v1","ttl":0}'),
    ("ns1", b'{"key":"k2","value":"v2","ttl":600000}',
     b'{"namespace":"ns1","key":"k2","value":"v2","ttl":600000}'),
    ("ns1", b'{"key":"k4","value":123,"ttl":"5000"}',
     b'{"namespace":"ns1","key":"k4","value":"123","ttl":5000}'),
    ("Sales%20ETL%20step%202", b'{"key":"Last extract timestamp","value":"2020-09-29 17:14:56"}',
     b'{"namespace":"Sales ETL step 2","key":"Last extract timestamp",'
     b'"value":"2020-09-29 17:14:56","ttl":0}'),
])
def test_post_response_table(store, ns_raw, body, response):
    check(store.post(ns_raw, body), 201, response)
    obj = json.loads(response)
    r = store.kv_get(obj["namespace"], obj["key"])
    assert r.status == 200, r
    assert json.loads(r.body)["value"] == obj["value"]
    assert store.namespaces() == [obj["namespace"]]


def test_namespaces_example(store):
    store.put_ok("ns1", "k1", "v1")
    store.put_ok("Sales ETL step 2", "k", "v")
    check(store.get("/v4/keyvaluesnamespaces"), 200, b'["ns1","Sales ETL step 2"]')


# ------------------------------------------------------------- GET (2.6.2)

def test_get_without_ttl_has_no_ttl_member(shared):
    ns = uniq()
    shared.put_ok(ns, "k1", "v1")
    check(shared.kv_get(ns, "k1"), 200, entry(ns, "k1", "v1"))


def test_get_missing_key_parameter(shared):
    ns = uniq()
    shared.put_ok(ns, "k1", "v1")
    check(shared.get("/v4/keyvalues/" + q(ns)), 400, NO_KEY_PARAM)
    check(shared.get("/v4/keyvalues/%s?other=1" % q(ns)), 400, NO_KEY_PARAM)
    # querystring is validated before the handler looks for the namespace
    check(shared.get("/v4/keyvalues/" + q(uniq("absent"))), 400, NO_KEY_PARAM)


def test_get_repeated_key_parameter(shared):
    ns = uniq()
    shared.put_ok(ns, "k1", "v1")
    check(shared.get("/v4/keyvalues/%s?key=k1&key=k2" % q(ns)), 400,
          validation("querystring/key must be string"))


def test_get_empty_key_is_not_found(shared):
    ns = uniq()
    shared.put_ok(ns, "k1", "v1")
    check(shared.get("/v4/keyvalues/%s?key=" % q(ns)), 400, key_not_found(ns, ""))
    check(shared.get("/v4/keyvalues/%s?key" % q(ns)), 400, key_not_found(ns, ""))


def test_get_unknown_namespace_and_key(shared):
    ns = uniq()
    absent = uniq("absent")
    check(shared.kv_get(absent, "k1"), 400, ns_not_found(absent))
    shared.put_ok(ns, "k1", "v1")
    check(shared.kv_get(ns, "nokey"), 400, key_not_found(ns, "nokey"))
    # names are case-sensitive
    check(shared.kv_get(ns, "K1"), 400, key_not_found(ns, "K1"))
    check(shared.kv_get(ns.upper(), "k1"), 400, ns_not_found(ns.upper()))


def test_head_on_get_routes(shared):
    ns = uniq()
    shared.put_ok(ns, "k1", "v1")
    for target, status, body in [
            ("/v4/keyvalues/%s?key=k1" % q(ns), 200, entry(ns, "k1", "v1")),
            ("/v4/keyvalues/%s?key=nope" % q(ns), 400, key_not_found(ns, "nope")),
            ("/v4/keyvalues/%s/keyexists?key=k1" % q(ns), 200, exists_body(ns, "k1", "v1")),
            ("/v4/keylist/%s" % q(ns), 200, keylist_body(ns, ["k1"]))]:
        r = shared.request("HEAD", target)
        assert r.status == status, (target, r)
        assert r.body == b"", r
        assert r.header("Content-Type") == JSON_CT, r
        assert r.header("Content-Length") == str(len(body)), (target, r, body)


# --------------------------------------------------------- keyexists (2.6.3)

def test_keyexists(shared):
    ns = uniq()
    shared.put_ok(ns, "k1", "v1")
    check(shared.kv_exists(ns, "k1"), 200,
          ('{"keyExists":true,"keyValue":{"namespace":"%s","key":"k1","value":"v1"}}'
           % ns).encode())
    check(shared.kv_exists(ns, "k2"), 200, NOT_EXISTS)
    absent = uniq("absent")
    check(shared.kv_exists(absent, "k1"), 400, ns_not_found(absent))
    check(shared.get("/v4/keyvalues/%s/keyexists" % q(ns)), 400, NO_KEY_PARAM)
    check(shared.get("/v4/keyvalues/%s/keyexists" % q(absent)), 400, NO_KEY_PARAM)
    check(shared.get("/v4/keyvalues/%s/keyexists?key=" % q(ns)), 200, NOT_EXISTS)


def test_keyexists_static_segment_wins(shared):
    """GET /v4/keyvalues/<ns>/keyexists is the keyexists route; a namespace or
    key called "keyexists" still works through the other routes."""
    ns = uniq()
    shared.put_ok(ns, "keyexists", "a")
    shared.put_ok("keyexists", "k", "b")
    check(shared.get("/v4/keyvalues/%s/keyexists?key=keyexists" % q(ns)), 200,
          exists_body(ns, "keyexists", "a"))
    check(shared.get("/v4/keyvalues/keyexists?key=k"), 200, entry("keyexists", "k", "b"))
    check(shared.get("/v4/keyvalues/keyexists/keyexists?key=k"), 200,
          exists_body("keyexists", "k", "b"))
    check_204(shared.request("DELETE", "/v4/keyvalues/%s/keyexists" % q(ns)))
    check(shared.kv_exists(ns, "keyexists"), 200, NOT_EXISTS)
    check_204(shared.request("DELETE", "/v4/keyvalues/keyexists"))


# ------------------------------------------------------------- POST (2.6.4)

POST_ERRORS = [
    # 1: body must be object
    (b"[]", NOT_OBJECT),
    (b'[{"key":"k","value":"v"}]', NOT_OBJECT),
    (b'"just a string"', NOT_OBJECT),
    (b"123", NOT_OBJECT),
    (b"null", NOT_OBJECT),
    (b"true", NOT_OBJECT),
    # 2: types, first failure in the order key, value, ttl
    (b'{"key":{"a":1},"value":"v"}', validation("body/key must be string")),
    (b'{"key":["a","b"],"value":"v"}', validation("body/key must be string")),
    (b'{"key":"k","value":{"a":1}}', validation("body/value must be string")),
    (b'{"key":"k","value":[1,2]}', validation("body/value must be string")),
    (b'{"key":"k","value":[]}', validation("body/value must be string")),
    (b'{"value":{"a":1}}', validation("body/value must be string")),
    (b'{"key":{},"value":{},"ttl":"abc"}', validation("body/key must be string")),
    (b'{"key":"k","value":{},"ttl":"abc"}', validation("body/value must be string")),
    (b'{"ttl":"abc","value":{},"key":{}}', validation("body/key must be string")),
    (b'{"key":"k","value":"v","ttl":"abc"}', validation("body/ttl must be number")),
    (b'{"key":"k","value":"v","ttl":""}', validation("body/ttl must be number")),
    (b'{"key":"k","value":"v","ttl":" 5"}', validation("body/ttl must be number")),
    (b'{"key":"k","value":"v","ttl":"5s"}', validation("body/ttl must be number")),
    (b'{"key":"k","value":"v","ttl":{}}', validation("body/ttl must be number")),
    (b'{"key":"k","value":"v","ttl":[1,2]}', validation("body/ttl must be number")),
    # schema problems come before the handler's required check
    (b'{"ttl":"abc"}', validation("body/ttl must be number")),
    # 3: Required parameter is missing
    (b"{}", MISSING),
    (b'{"key":"k"}', MISSING),
    (b'{"value":"v"}', MISSING),
    (b'{"key":"","value":"v"}', MISSING),
    (b'{"key":null,"value":"v"}', MISSING),
    (b'{"key":"","value":"v","ttl":1000}', MISSING),
    (b'{"Key":"k","Value":"v"}', MISSING),
    # parser errors
    (b'{"key":"k5",', INVALID_JSON),
    (b"{key:'k'}", INVALID_JSON),
    (b'{"key":"k","value":"v"} x', INVALID_JSON),
    (b'{"key":"k","value":"\xff\xfe"}', INVALID_JSON),
    (b"[" * 70 + b"]" * 70, INVALID_JSON),
]


@pytest.mark.parametrize("body,expected", POST_ERRORS)
def test_post_errors(shared, body, expected):
    ns = uniq()
    r = shared.post(q(ns), body)
    check(r, 400, expected)
    # a failed write changes nothing: the namespace was not created
    check(shared.keylist(ns), 400, ns_not_found(ns))
    assert ns not in shared.namespaces()


def test_post_error_keeps_existing_value(shared):
    ns = uniq()
    shared.put_ok(ns, "k", "old")
    for body in [b'{"key":"k","value":{"a":1}}', b'{"key":"k","value":"new","ttl":"x"}',
                 b'{"key":"k"}', b'{"key":"k","value":"new",', b"[]"]:
        r = shared.post(q(ns), body)
        assert r.status == 400, (body, r)
    check(shared.kv_get(ns, "k"), 200, entry(ns, "k", "old"))
    check(shared.keylist(ns), 200, keylist_body(ns, ["k"]))


@pytest.mark.parametrize("ctype,body,status,expected", [
    ("text/plain", b"hello", 400, NOT_OBJECT),
    ("text/plain; charset=utf-8", b'{"key":"k","value":"v"}', 400, NOT_OBJECT),
    ("application/x-www-form-urlencoded", b"key=k&value=v", 415, BAD_MEDIA),
    ("multipart/form-data; boundary=x", b"--x--", 415, BAD_MEDIA),
    ("application/xml", b"<a/>", 415, BAD_MEDIA),
    (None, b'{"key":"k","value":"v"}', 415, BAD_MEDIA),
    # empty body: no body, whatever the content type
    ("application/json", b"", 400, NOT_OBJECT),
    ("application/x-www-form-urlencoded", b"", 400, NOT_OBJECT),
    (None, b"", 400, NOT_OBJECT),
])
def test_post_media_types(shared, ctype, body, status, expected):
    ns = uniq()
    check(shared.post(q(ns), body, ctype=ctype), status, expected)
    check(shared.keylist(ns), 400, ns_not_found(ns))


@pytest.mark.parametrize("ctype", ["application/json", "Application/JSON",
                                   "application/json; charset=utf-8",
                                   "application/json;charset=UTF-8"])
def test_post_json_media_type_variants(shared, ctype):
    ns = uniq()
    check(shared.post(q(ns), b'{"key":"k","value":"v"}', ctype=ctype), 201, entry(ns, "k", "v", 0))


def test_post_empty_namespace_segment(store):
    check(store.post("", b'{"key":"k","value":"v"}'), 400, MISSING)
    check(store.get("/v4/keyvaluesnamespaces"), 200, b"[]")


@pytest.mark.parametrize("body,echo_value,echo_key,echo_ttl,get_ttl", [
    # value coercion (spec 1.6, 2.6.4)
    (b'{"key":"k","value":123}', "123", "k", 0, False),
    (b'{"key":"k","value":-7}', "-7", "k", 0, False),
    (b'{"key":"k","value":1.5}', "1.5", "k", 0, False),
    (b'{"key":"k","value":0.1}', "0.1", "k", 0, False),
    (b'{"key":"k","value":100.0}', "100", "k", 0, False),
    (b'{"key":"k","value":2.50}', "2.5", "k", 0, False),
    (b'{"key":"k","value":1e2}', "100", "k", 0, False),
    (b'{"key":"k","value":true}', "true", "k", 0, False),
    (b'{"key":"k","value":false}', "false", "k", 0, False),
    (b'{"key":"k","value":null}', "", "k", 0, False),
    (b'{"key":"k","value":""}', "", "k", 0, False),
    (b'{"key":"k","value":["x"]}', "x", "k", 0, False),
    # key coercion
    (b'{"key":42,"value":"v"}', "v", "42", 0, False),
    (b'{"key":true,"value":"v"}', "v", "true", 0, False),
    (b'{"key":["kk"],"value":"v"}', "v", "kk", 0, False),
    # ttl coercion: integer part, strings, null, arrays
    (b'{"key":"k","value":"v","ttl":"5000"}', "v", "k", 5000, True),
    (b'{"key":"k","value":"v","ttl":600000}', "v", "k", 600000, True),
    (b'{"key":"k","value":"v","ttl":1500.7}', "v", "k", 1500, True),
    (b'{"key":"k","value":"v","ttl":"2500.9"}', "v", "k", 2500, True),
    (b'{"key":"k","value":"v","ttl":1e4}', "v", "k", 10000, True),
    (b'{"key":"k","value":"v","ttl":"2e4"}', "v", "k", 20000, True),
    (b'{"key":"k","value":"v","ttl":[30000]}', "v", "k", 30000, True),
    (b'{"key":"k","value":"v","ttl":2147483648}', "v", "k", 2147483648, True),
    (b'{"key":"k","value":"v","ttl":1e12}', "v", "k", 1000000000000, True),
    (b'{"key":"k","value":"v","ttl":0.5}', "v", "k", 0, False),
    (b'{"key":"k","value":"v","ttl":null}', "v", "k", 0, False),
    (b'{"key":"k","value":"v","ttl":0}', "v", "k", 0, False),
    (b'{"key":"k","value":"v","ttl":"0"}', "v", "k", 0, False),
    (b'{"key":"k","value":"v","ttl":-5}', "v", "k", -5, False),
    (b'{"key":"k","value":"v","ttl":"-1000"}', "v", "k", -1000, False),
    # duplicate members: the last one wins; unknown members are ignored
    (b'{"key":"k","value":"a","value":"b"}', "b", "k", 0, False),
    (b'{"key":"k","value":"v","extra":{"x":[1]},"namespace":"other"}', "v", "k", 0, False),
])
def test_post_coercion(shared, body, echo_value, echo_key, echo_ttl, get_ttl):
    ns = uniq()
    check(shared.post(q(ns), body), 201, entry(ns, echo_key, echo_value, echo_ttl))
    r = shared.kv_get(ns, echo_key)
    assert r.status == 200, r
    if get_ttl:
        t = ttl_of(r)
        assert isinstance(t, int) and 0 < t <= echo_ttl, r
        check(r, 200, entry(ns, echo_key, echo_value, t))
    else:
        check(r, 200, entry(ns, echo_key, echo_value))
    assert shared.namespaces().count(ns) == 1


def test_post_value_special_characters(shared):
    ns = uniq()
    value = 'quote " backslash \\ slash / unicode \u00e9\u65e5\u672c \u2713 emoji \U0001F600'
    r = shared.post(q(ns), {"key": "k", "value": value})
    check(r, 201, entry(ns, "k", value, 0))
    # raw UTF-8 and unescaped '/' (spec 1.7)
    assert "/ unicode \u00e9".encode() in r.body and b"\\u" not in r.body
    check(shared.kv_get(ns, "k"), 200, entry(ns, "k", value))
    # control characters: compare decoded (any RFC 8259 escape form is fine)
    ctl = "line1\nline2\ttab\r\x01\x1f end"
    r = shared.post(q(ns), {"key": "c", "value": ctl})
    assert r.status == 201 and json.loads(r.body)["value"] == ctl, r
    assert b"\n" not in r.body and b"\x01" not in r.body, r
    r = shared.kv_get(ns, "c")
    assert r.status == 200 and json.loads(r.body) == {"namespace": ns, "key": "c", "value": ctl}, r


def test_post_chunked_body(shared):
    ns = uniq()
    body = jdump({"key": "chunked", "value": "x" * 300})
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100])
                      for i in range(0, len(body), 100)) + b"0\r\n\r\n"
    with shared.raw() as c:
        c.send(head_lines("POST", "/v4/keyvalues/" + q(ns), [
            ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]) + chunks)
        check(c.read_response(), 201, entry(ns, "chunked", "x" * 300, 0))
    check(shared.kv_get(ns, "chunked"), 200, entry(ns, "chunked", "x" * 300))


# --------------------------------------------- DELETE key / namespace (2.6.5-6)

def test_delete_key(shared):
    ns = uniq()
    shared.put_ok(ns, "k1", "v1")
    shared.put_ok(ns, "k2", "v2")
    check_204(shared.del_key(ns, "k2"))
    check(shared.del_key(ns, "k2"), 400, key_not_found(ns, "k2"))
    check(shared.kv_get(ns, "k2"), 400, key_not_found(ns, "k2"))
    check(shared.kv_exists(ns, "k2"), 200, NOT_EXISTS)
    check(shared.keylist(ns), 200, keylist_body(ns, ["k1"]))
    check(shared.del_key(ns, "never"), 400, key_not_found(ns, "never"))
    absent = uniq("absent")
    check(shared.del_key(absent, "k1"), 400, ns_not_found(absent))


def test_delete_key_empty_segment(shared):
    ns = uniq()
    shared.put_ok(ns, "k1", "v1")
    check(shared.request("DELETE", "/v4/keyvalues/%s/" % q(ns)), 400, MISSING)
    check(shared.kv_get(ns, "k1"), 200, entry(ns, "k1", "v1"))


def test_namespace_stays_when_empty(store):
    store.put_ok("ns1", "k1", "v1")
    store.put_ok("ns2", "k1", "v1")
    check_204(store.del_key("ns1", "k1"))
    check(store.get("/v4/keyvaluesnamespaces"), 200, b'["ns1","ns2"]')
    check(store.keylist("ns1"), 200, b'{"namespace":"ns1","keys":[]}')
    check(store.kv_get("ns1", "k1"), 400, key_not_found("ns1", "k1"))
    check(store.kv_exists("ns1", "k1"), 200, NOT_EXISTS)


def test_delete_namespace(store):
    store.put_ok("ns1", "k1", "v1")
    store.put_ok("ns1", "k2", "v2")
    store.put_ok("ns2", "k1", "other")
    check_204(store.del_ns("ns1"))
    check(store.kv_get("ns1", "k1"), 400, ns_not_found("ns1"))
    check(store.kv_exists("ns1", "k1"), 400, ns_not_found("ns1"))
    check(store.keylist("ns1"), 400, ns_not_found("ns1"))
    check(store.del_key("ns1", "k1"), 400, ns_not_found("ns1"))
    check(store.del_ns("ns1"), 400, ns_not_found("ns1"))
    check(store.get("/v4/keyvaluesnamespaces"), 200, b'["ns2"]')
    check(store.kv_get("ns2", "k1"), 200, entry("ns2", "k1", "other"))
    # re-created: empty of the old keys, and at the end of the list
    store.put_ok("ns1", "k3", "v3")
    check(store.keylist("ns1"), 200, keylist_body("ns1", ["k3"]))
    check(store.kv_get("ns1", "k1"), 400, key_not_found("ns1", "k1"))
    check(store.get("/v4/keyvaluesnamespaces"), 200, b'["ns2","ns1"]')
    check(store.del_ns("never"), 400, ns_not_found("never"))


def test_empty_namespace_segment_is_unknown(store):
    store.put_ok("ns1", "k1", "v1")
    check(store.get("/v4/keyvalues/?key=k1"), 400, ns_not_found(""))
    check(store.get("/v4/keyvalues//keyexists?key=k1"), 400, ns_not_found(""))
    check(store.get("/v4/keylist/"), 400, ns_not_found(""))
    check(store.request("DELETE", "/v4/keyvalues/"), 400, ns_not_found(""))
    check(store.request("DELETE", "/v4/keyvalues//k1"), 400, ns_not_found(""))
    check(store.get("/v4/keyvaluesnamespaces"), 200, b'["ns1"]')


# --------------------------------------------------------- keylist (2.6.7)

def test_keylist(shared):
    ns = uniq()
    shared.put_ok(ns, "k1", "v1")
    shared.put_ok(ns, "k2", "v2")
    r = shared.keylist(ns)
    check(r, 200, ('{"namespace":"%s","keys":[{"key":"k1"},{"key":"k2"}]}' % ns).encode())
    absent = uniq("absent")
    check(shared.keylist(absent), 400, ns_not_found(absent))


def test_keylist_ignores_query(shared):
    ns = uniq()
    shared.put_ok(ns, "k1", "v1")
    check(shared.get("/v4/keylist/%s?key=zz&x" % q(ns)), 200, keylist_body(ns, ["k1"]))


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
