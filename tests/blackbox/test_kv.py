"""Key-value store API route by route: the recorded Butler exchanges, GET,
keyexists, POST, DELETE of a key and of a namespace, keylist (butlerd-api(7),
KEY-VALUE STORE). test_kv_rules.py has order, TTL, names, methods and Expect;
test_kv_limits.py the limits and reads through other workers."""

import json
import time

import pytest

from harness import JSON_CT
from kvfix import (  # noqa: F401
    BAD_MEDIA,
    INVALID_JSON,
    MISSING,
    NOT_EXISTS,
    NOT_OBJECT,
    NO_KEY_PARAM,
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
    ttl_of,
    uniq,
    validation)
from kvfix import kvd, shared, store  # noqa: F401 (pytest fixtures)


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
