"""The fast paths of the HTTP layer (butlerd(8), PERFORMANCE) answer exactly as
the general ones: the ping reply that is built once per worker and the KV GET
and POST replies rendered without a JSON tree; and the per-connection memory
still holds a request head of butlerd.http.maxHeaderBytes."""

import json
import urllib.parse

import pytest

import harness
from harness import JSON_CT, PING_TEXT, jdump, json_error
from kvfix import shared  # noqa: F401 (pytest fixture)


def head_lines(method, target, headers=(), version="HTTP/1.1"):
    lines = ["%s %s %s" % (method, target, version), "Host: 127.0.0.1"]
    lines += ["%s: %s" % h for h in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


HEADERS_TOO_LARGE = json_error(431, "Request Header Fields Too Large",
                               "Request Header Fields Too Large")


# ------------------------------------------------------------------ ping

def test_ping_same_bytes_on_every_request(shared_daemon, butlerd_version):
    want = jdump({"response": PING_TEXT, "butlerVersion": butlerd_version})
    want_v2 = jdump({"response": PING_TEXT})
    c = shared_daemon.conn()
    try:
        # many requests on one connection, and so on one worker's stored reply
        for i in range(50):
            r = harness.conn_request(c, "GET", "/v4/butlerping")
            assert (r.status, r.body) == (200, want), (i, r)
            assert r.header("Content-Type") == JSON_CT, r
            assert r.header("Content-Length") == str(len(want)), r
            assert r.header("Keep-Alive", "").startswith("timeout="), r
            assert r.header("Connection", "").lower() != "close", r
            assert r.header("Date"), r
    finally:
        c.close()
    for _ in range(10):  # new connections land on either worker
        r = shared_daemon.get("/v4/butlerping")
        assert (r.status, r.body) == (200, want), r


def test_v2_ping_same_bytes(shared_daemon):
    d = shared_daemon
    for _ in range(5):
        r = d.get("/v2/butlerPing")
        assert (r.status, r.body) == (200, jdump({"response": PING_TEXT})), r
        r = d.get("/v4/butlerping")
        assert r.status == 200 and json.loads(r.body)["response"] == PING_TEXT, r


def test_ping_connection_close_is_honoured(shared_daemon, butlerd_version):
    want = jdump({"response": PING_TEXT, "butlerVersion": butlerd_version})
    with shared_daemon.raw() as c:
        c.send(head_lines("GET", "/v4/butlerping"))
        r = c.read_response()
        assert (r.status, r.body) == (200, want), r
        c.send(head_lines("GET", "/v4/butlerping", [("Connection", "close")]))
        r = c.read_response()
        assert (r.status, r.body) == (200, want), r
        assert r.header("Connection", "").lower() == "close", r
        assert r.header("Keep-Alive") is None, r
        assert c.closed(3.0), "connection not closed after Connection: close"
    with shared_daemon.raw() as c:
        c.send(head_lines("GET", "/v4/butlerping", version="HTTP/1.0"))
        r = c.read_response()
        assert (r.status, r.body) == (200, want), r
        assert c.closed(3.0), "HTTP/1.0 connection without keep-alive not closed"


def test_ping_head_has_no_body(shared_daemon, butlerd_version):
    want = jdump({"response": PING_TEXT, "butlerVersion": butlerd_version})
    with shared_daemon.raw() as c:
        for _ in range(3):
            c.send(head_lines("GET", "/v4/butlerping"))
            r = c.read_response()
            assert (r.status, r.body) == (200, want), r
            c.send(head_lines("HEAD", "/v4/butlerping"))
            r = c.read_response(head=True)
            assert r.status == 200 and r.body == b"", r
            assert r.header("Content-Length") == str(len(want)), r


def test_ping_rate_limited_gets_its_headers(start_daemon):
    d = start_daemon({"Butler": {"restServerEndpointsEnable": {"butlerping": True}},
                      "butlerd": {"rateLimit": {"enable": True, "maxRequests": 3,
                                                "windowSeconds": 600}}})
    c = d.conn()
    try:
        seen = []
        for _ in range(5):
            r = harness.conn_request(c, "GET", "/v4/butlerping")
            seen.append(r.status)
            assert r.header("x-ratelimit-limit") == "3", r
            if r.status == 200:
                assert json.loads(r.body)["response"] == PING_TEXT, r
        assert seen == [200, 200, 200, 429, 429], seen
    finally:
        c.close()


# ------------------------------------------------------------------ KV GET and POST

# Strings that need every kind of escape json-c writes: the short forms, \u00XX
# for the other control characters (NUL included), quote and backslash; '/',
# DEL and non-ASCII stay as they are.
AWKWARD = [
    "plain",
    "",
    "".join(chr(i) for i in range(0, 32)),
    'q"b\\s/l\x7f',
    "é€😀\u2028",
]


@pytest.mark.parametrize("i", range(len(AWKWARD)))
def test_kv_get_post_bytes(shared, i):
    ns = "hot%d" % i
    key = "k\x01\"/%d" % i
    value = AWKWARD[i]
    body = json.dumps({"key": key, "value": value, "ttl": 0})
    r = shared.request("POST", "/v4/keyvalues/" + ns, {"Content-Type": "application/json"},
                       body)
    assert r.status == 201, r
    assert r.body == jdump({"namespace": ns, "key": key, "value": value, "ttl": 0}), r
    assert r.header("Content-Type") == JSON_CT, r
    r = shared.get("/v4/keyvalues/%s?key=%s" % (ns, urllib.parse.quote(key, safe="")))
    assert r.status == 200, r
    assert r.body == jdump({"namespace": ns, "key": key, "value": value}), r
    assert r.header("Content-Type") == JSON_CT, r
    assert r.header("Content-Length") == str(len(r.body)), r


def test_kv_get_post_ttl(shared):
    ns = "hotttl"
    r = shared.request("POST", "/v4/keyvalues/" + ns, {"Content-Type": "application/json"},
                       json.dumps({"key": "a", "value": "v", "ttl": 600000}))
    assert (r.status, r.body) == (201, jdump({"namespace": ns, "key": "a", "value": "v",
                                              "ttl": 600000})), r
    r = shared.get("/v4/keyvalues/%s?key=a" % ns)
    assert r.status == 200, r
    got = json.loads(r.body)
    assert list(got) == ["namespace", "key", "value", "ttl"], got
    assert 0 < got["ttl"] <= 600000, got


def test_kv_many_on_one_connection(shared):
    """Replies handed to libmicrohttpd without a copy, one after the other."""
    ns = "hotmany"
    c = shared.conn()
    try:
        for i in range(200):
            v = "v%03d" % i + "x" * (i % 50)
            r = harness.conn_request(c, "POST", "/v4/keyvalues/" + ns,
                                     {"Content-Type": "application/json"},
                                     json.dumps({"key": "k%d" % (i % 7), "value": v}))
            assert (r.status, r.body) == (201, jdump({"namespace": ns, "key": "k%d" % (i % 7),
                                                      "value": v, "ttl": 0})), r
            r = harness.conn_request(c, "GET", "/v4/keyvalues/%s?key=k%d" % (ns, i % 7))
            assert (r.status, r.body) == (200, jdump({"namespace": ns, "key": "k%d" % (i % 7),
                                                      "value": v})), r
    finally:
        c.close()


# ------------------------------------------------------------------ request heads

@pytest.mark.parametrize("n,size", [(1, 16200), (100, 150), (40, 390)])
def test_head_up_to_max_header_bytes(shared_daemon, butlerd_version, n, size):
    """A head just under the default 16384 bytes, in one large header or in up
    to a hundred, is served; one over it is answered 431 and closed."""
    want = jdump({"response": PING_TEXT, "butlerVersion": butlerd_version})
    hdrs = [("X-H%03d" % i, "a" * size) for i in range(n)]
    raw = head_lines("GET", "/v4/butlerping", hdrs)
    assert len(raw) < 16384
    with shared_daemon.raw() as c:
        c.send(raw)
        r = c.read_response(timeout=5)
        assert (r.status, r.body) == (200, want), r
        c.send(head_lines("GET", "/v4/butlerping"))  # and the connection goes on
        r = c.read_response(timeout=5)
        assert (r.status, r.body) == (200, want), r
    with shared_daemon.raw() as c:
        c.send(head_lines("GET", "/v4/butlerping", hdrs + [("X-More", "b" * 400)]))
        r = c.read_response(timeout=5)
        assert (r.status, r.body) == (431, HEADERS_TOO_LARGE), r
        assert c.closed(3.0), "connection not closed after 431"


# ------------------------------------------------------------------ request bodies

INVALID_JSON = json_error(400, "Bad Request",
                          "Body is not valid JSON but content-type is set to 'application/json'",
                          "FST_ERR_CTP_INVALID_JSON_BODY")


@pytest.mark.parametrize("body,value,ttl", [
    (b'{"key":"k","value":"v","ttl":0}', "v", 0),
    (b' {"key" : "k" ,\n"value":"v"\t}\r\n', "v", 0),   # whitespace between tokens
    (b'{"key":"k","value":"v","ttl":-0}', "v", 0),
    (b'{"key":"k","value":"v","ttl":-12}', "v", -12),
    (b'{"key":"k","value":"v","ttl":1.5}', "v", 1),       # a fraction is truncated
    (b'{"key":"k","value":"v","ttl":1e3}', "v", 1000),
    (b'{"key":"k","value":"v","ttl":123456789012345}', "v", 123456789012345),
    (b'{"key":"k","value":"v","ttl":1234567890123456}', "v", 1234567890123456),
    (b'{"key":"x","key":"k","value":"v"}', "v", 0),      # the last of two wins
    (b'{"key":"k","value":"b\\u0041\\n"}', "bA\n", 0),   # escapes
    (b'{"key":"k","value":"\xc3\xa9\xe2\x82\xac"}', "\u00e9\u20ac", 0),
    (b'{"key":"k","value":true}', "true", 0),
    (b'{"key":"k","value":"v","x":{"y":[1,2]}}', "v", 0),  # nested, ignored
    (b'{"":"e","key":"k","value":"v"}', "v", 0),
])
def test_kv_post_bodies(shared, body, value, ttl):
    r = shared.request("POST", "/v4/keyvalues/hotbody", {"Content-Type": "application/json"},
                       body)
    assert (r.status, r.body) == (201, jdump({"namespace": "hotbody", "key": "k",
                                              "value": value, "ttl": ttl})), r


@pytest.mark.parametrize("body", [
    b'{"key":"k","value":"v","ttl":0123}',
    b'{"key":"k","value":"v",}',
    b'{"key":"k","value":"v"} x',
    b'{"key":"k","value":"v"}{}',
    b'{"key":"k","value":"v","ttl":-}',
    b'{"key":"k","value":"v"',
    b'{"key":"k","value":"\xff"}',
    b'\xef\xbb\xbf{"key":"k","value":"v"}',
])
def test_kv_post_bad_bodies(shared, body):
    r = shared.request("POST", "/v4/keyvalues/hotbad", {"Content-Type": "application/json"},
                       body)
    assert (r.status, r.body) == (400, INVALID_JSON), r
    r = shared.get("/v4/keyvalues/hotbad?key=k")
    assert r.status == 400, r  # nothing was stored


def test_kv_post_bad_utf8_escape(shared):
    r = shared.request("POST", "/v4/keyvalues/hotbad", {"Content-Type": "application/json"},
                       b'{"key":"k","value":"\xed\xa0\x80"}')
    assert r.status == 400, r
    assert json.loads(r.body)["message"] == "body has a string that is not valid UTF-8", r
