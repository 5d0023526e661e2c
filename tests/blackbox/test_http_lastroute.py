"""The per-request shortcuts of the HTTP layer (butlerd(8), PERFORMANCE) answer
exactly as a lookup from scratch: the route of a thread's previous request is
reused only for the same method and path (its parameters are always taken from
the path at hand), and the request head's fields are found in one pass, by
name whatever its case, the first of a repeated name winning; and a key-value
POST body read without json-c answers as the general path does."""

import json

import harness
from harness import JSON_CT
from kvfix import entry, ns_not_found, q, shared, uniq  # noqa: F401 (pytest fixture)


def test_same_path_other_methods_on_one_connection(shared):
    ns = uniq("lr")
    path = "/v4/keyvalues/" + q(ns)
    body = json.dumps({"key": "k1", "value": "v1"})
    c = shared.conn()
    try:
        for i in range(3):
            r = harness.conn_request(c, "POST", path, {"Content-Type": "application/json"}, body)
            assert (r.status, r.body) == (201, entry(ns, "k1", "v1", 0)), (i, r)
            r = harness.conn_request(c, "GET", path + "?key=k1")
            assert (r.status, r.body) == (200, entry(ns, "k1", "v1")), (i, r)
            assert r.header("Content-Type") == JSON_CT, r
            r = harness.conn_request(c, "DELETE", path)
            assert (r.status, r.body) == (204, b""), (i, r)
            r = harness.conn_request(c, "GET", path + "?key=k1")
            assert (r.status, r.body) == (400, ns_not_found(ns)), (i, r)
            # a method the path has no route for, right after those that have one
            r = harness.conn_request(c, "PUT", path)
            assert r.status == 404, (i, r)
            assert json.loads(r.body)["message"] == "Route PUT:%s not found" % path, r
    finally:
        c.close()


def test_same_length_paths_take_their_own_parameters(shared):
    a = uniq("pa")
    b = "pb" + a[2:]
    shared.put_ok(a, "k", "in-a")
    shared.put_ok(b, "k", "in-b")
    c = shared.conn()
    try:
        for i in range(4):
            for ns, value in ((a, "in-a"), (a, "in-a"), (b, "in-b")):
                r = harness.conn_request(c, "GET", "/v4/keyvalues/%s?key=k" % q(ns))
                assert (r.status, r.body) == (200, entry(ns, "k", value)), (i, ns, r)
            # same length, a static route: no parameter left over from the last one
            r = harness.conn_request(c, "GET", "/v4/keyvaluesnamespaces")
            assert r.status == 200 and a in json.loads(r.body), (i, r)
    finally:
        c.close()


def test_unknown_path_after_a_known_one_of_the_same_length(shared):
    c = shared.conn()
    try:
        for i in range(3):
            r = harness.conn_request(c, "GET", "/v4/butlerping")
            assert r.status == 200, (i, r)
            r = harness.conn_request(c, "GET", "/v4/butlerpinG")
            assert r.status == 404, (i, r)
            # the /v2 routes ignore case, the /v4 ones do not
            r = harness.conn_request(c, "GET", "/v2/butlerping")
            assert r.status in (200, 404), (i, r)
            want = r.status
            r = harness.conn_request(c, "GET", "/v2/butlerPING")
            assert r.status == want, (i, r)
    finally:
        c.close()


def test_head_fields_by_name_in_any_case(shared):
    ns = uniq("hc")
    path = "/v4/keyvalues/" + q(ns)
    body = json.dumps({"key": "k", "value": "v"})
    with shared.raw() as c:
        c.send(("POST %s HTTP/1.1\r\nHost: x\r\ncontent-TYPE: application/json\r\n"
                "CONTENT-LENGTH: %d\r\n\r\n%s" % (path, len(body), body)).encode())
        r = c.read_response()
        assert (r.status, r.body) == (201, entry(ns, "k", "v", 0)), r
    # the first of two Content-Type fields decides, as before
    with shared.raw() as c:
        c.send(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: text/html\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (path, len(body), body)).encode())
        r = c.read_response()
        assert r.status == 415, r
    # Connection: close in any case closes the connection after the reply
    with shared.raw() as c:
        c.send(b"GET /v4/butlerping HTTP/1.1\r\nHost: x\r\nCONNECTION: Close\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.header("Connection", "").lower() == "close", r


# ------------------------------------------------------------------ KV POST body

# (body, what the general path answers: (key, value, ttl) of the 201, or the status
# and message of the error). The first of each group is read without json-c, the
# ones with an escape (\u006b is "k") or a non-string go through json-c.
KV_BODIES = [
    (b'{"key":"k","value":"v","ttl":0}', ("k", "v", 0)),
    (b'{"key":"\\u006b","value":"v","ttl":0}', ("k", "v", 0)),
    (b'{"ttl":-7,"value":"v","key":"k"}', ("k", "v", -7)),
    (b'{"key":"a","value":"v","key":"k"}', ("k", "v", 0)),
    (b'{"key":"k","value":"v","value":"w","ttl":5,"ttl":6}', ("k", "w", 6)),
    (b'{"key":5,"value":"v"}', ("5", "v", 0)),
    (b'{"key":"k","key":5,"value":"v"}', ("5", "v", 0)),
    (b'{"key":5,"key":"k","value":"v"}', ("k", "v", 0)),
    (b'{"key":"k","value":12}', ("k", "12", 0)),
    (b'{"key":"k","value":"v","ttl":"5000"}', ("k", "v", 5000)),
    (b'{"key":"k","value":"v","other":"x","n":1}', ("k", "v", 0)),
    (b'{"key":"k","value":""}', ("k", "", 0)),
    (b'{"key":"","value":"v"}', (400, "Required parameter is missing")),
    (b'{"key":"k"}', (400, "Required parameter is missing")),
    (b'{"value":"v"}', (400, "Required parameter is missing")),
    (b'{}', (400, "Required parameter is missing")),
    (b'{"key":"k","value":"v","ttl":"abc"}', (400, "body/ttl must be number")),
]


def test_kv_post_bodies_answer_as_the_general_path(shared):
    for body, want in KV_BODIES:
        ns = uniq("kb")
        r = shared.post(ns, body)
        if isinstance(want[0], int):
            assert r.status == want[0] and json.loads(r.body)["message"] == want[1], (body, r)
            continue
        key, value, ttl = want
        assert (r.status, r.body) == (201, entry(ns, key, value, ttl)), (body, r)
        r = shared.kv_get(ns, key)
        assert r.status == 200 and json.loads(r.body)["value"] == value, (body, r)
