"""HTTP and JSON edge cases found by the red team (issue 11, defect 9): each gets
one clean JSON answer at once, and a refused body changes nothing."""

import json
import socket
import time

import pytest

import harness
from harness import JSON_CT


@pytest.fixture(scope="module")
def kvd(tmp_path_factory):
    d = harness.Daemon(tmp_path_factory.mktemp("edge"), harness.kv_overrides())
    d.start()
    yield d
    d.stop()
    print(d.log_tail(200))


def exchange(port, data, timeout=5.0):
    """Sends DATA on a fresh connection and reads until the server closes or
    TIMEOUT passes. Returns (bytes, seconds, closed)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    t0 = time.monotonic()
    s.sendall(data)
    out = b""
    closed = False
    try:
        while True:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            out += b
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    finally:
        s.close()
    return out, time.monotonic() - t0, closed


def responses(data):
    """Splits raw bytes into (status, headers dict, body) responses."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        n = int(hdrs.get("content-length", "0"))
        out.append((status, hdrs, rest[:n]))
        data = rest[n:]
    return out


def one_json_error(data, status):
    rs = responses(data)
    assert len(rs) == 1, data
    st, hdrs, body = rs[0]
    assert st == status, data
    assert hdrs["content-type"] == JSON_CT, data
    j = json.loads(body)
    assert j["statusCode"] == status and j["message"], j
    return j


def post_head(extra, body=b""):
    return (b"POST /v4/keyvalues/edge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + extra + b"\r\n" + body)


# ------------------------------------------------------------ request heads

@pytest.mark.parametrize("n", [460, 1300])
def test_many_query_parameters_are_answered(kvd, n):
    q = "&".join("p%d=%d" % (i, i) for i in range(n))
    data, took, _ = exchange(kvd.port, ("GET /v4/keyvalues/edge?key=k&%s HTTP/1.1\r\n"
                                        "Host: x\r\nConnection: close\r\n\r\n" % q).encode())
    # the store's validation sees every parameter: "key" is found, the namespace is not
    one_json_error(data, 400)
    assert took < 4, took


def test_query_longer_than_max_header_bytes_is_431_json(kvd):
    q = "&".join("p%d=%d" % (i, i) for i in range(2000))   # about 20 KB > 16 KB
    data, _, closed = exchange(kvd.port, ("GET /v4/keyvalues/edge?key=k&%s HTTP/1.1\r\n"
                                          "Host: x\r\n\r\n" % q).encode())
    one_json_error(data, 431)
    assert closed


def test_header_fields_up_to_max_header_fields(kvd):
    # butlerd.http.maxHeaderFields, default 128, counting Host: 127 more are served
    hdrs = "".join("h%d: v\r\n" % i for i in range(127))
    data, _, _ = exchange(kvd.port, ("GET /v4/keyvaluesnamespaces HTTP/1.1\r\nHost: x\r\n%s"
                                     "Connection: close\r\n\r\n" % hdrs[:-len("h126: v\r\n")]
                                     ).encode())
    rs = responses(data)
    assert len(rs) == 1 and rs[0][0] == 200, data
    # one field more than the limit: a JSON 431, the connection closed, nothing done
    hdrs = "".join("h%d: v\r\n" % i for i in range(128))
    body = b'{"key":"f","value":"v"}'
    data, took, closed = exchange(kvd.port, post_head(
        hdrs.encode() + b"Content-Length: %d\r\n" % len(body), body))
    one_json_error(data, 431)
    assert closed and took < 4, (closed, took)
    assert kvd.get("/v4/keyvaluesnamespaces").body == b"[]"


def test_six_hundred_header_fields_when_allowed(tmp_path):
    d = harness.Daemon(tmp_path, {"butlerd": {"http": {"maxHeaderFields": 700}}})
    d.start()
    try:
        hdrs = "".join("h%d: v\r\n" % i for i in range(600))
        data, _, _ = exchange(d.port, ("GET /v4/butlerping HTTP/1.1\r\nHost: x\r\n%s"
                                       "Connection: close\r\n\r\n" % hdrs).encode())
        rs = responses(data)
        assert len(rs) == 1 and rs[0][0] == 200, data
    finally:
        d.stop()


@pytest.mark.parametrize("te", [b"gzip", b"gzip, chunked", b"identity", b"chunked, gzip",
                                b"x-custom"])
def test_transfer_encoding_other_than_chunked_is_501_at_once(kvd, te):
    # a pipelined request follows; the 501 closes the connection, so it is not
    # silently swallowed as body bytes
    data, took, closed = exchange(kvd.port, post_head(
        b"Transfer-Encoding: " + te + b"\r\n", b'{"key":"a","value":"b"}')
        + b"GET /v4/keyvaluesnamespaces HTTP/1.1\r\nHost: x\r\n\r\n")
    j = one_json_error(data, 501)
    assert te.decode() in j["message"], j
    assert closed and took < 4, (closed, took)
    assert kvd.get("/v4/keyvaluesnamespaces").body == b"[]"


@pytest.mark.parametrize("cl, status", [
    (b"-1", 400), (b"10abc", 400), (b"1 0", 400), (b"0x10", 400), (b"+5", 400),
    (b"99999999999999999999999", 413), (b"18446744073709551616", 413),
])
def test_bad_content_length_gets_one_json_answer(kvd, cl, status):
    data, took, closed = exchange(kvd.port, post_head(b"Content-Length: " + cl + b"\r\n",
                                                      b'{"key":"a","value":"b"}'))
    one_json_error(data, status)
    assert closed and took < 4, (closed, took)
    assert kvd.get("/v4/keyvaluesnamespaces").body == b"[]"


def test_transfer_encoding_with_content_length_is_400(kvd):
    data, _, closed = exchange(kvd.port, post_head(
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"0\r\n\r\n"))
    one_json_error(data, 400)
    assert closed
    assert kvd.get("/v4/keyvaluesnamespaces").body == b"[]"


def test_chunked_still_works(kvd):
    body = b'{"key":"c","value":"chunked"}'
    data, _, _ = exchange(kvd.port, post_head(
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n",
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)))
    rs = responses(data)
    assert rs[0][0] == 201, data
    r = kvd.get("/v4/keyvalues/edge?key=c")
    assert json.loads(r.body)["value"] == "chunked", r
    kvd.request("DELETE", "/v4/keyvalues/edge")


# ------------------------------------------------------------ JSON bodies

BAD_JSON = [
    b'{"key":"k","value":"v","ttl":1e999}',
    b'{"key":"k","value":"v","ttl":-1e999}',
    b'{"key":"k","value":1e400}',
    b'{"key":"k","value":"v","ttl":NaN}',
    b'{"key":"k","value":"v","ttl":Infinity}',
    b'{"key":"k","value":"v","ttl":-Infinity}',
    b'{"key":"k","value":"\xc0\xaf"}',                 # overlong "/"
    b'{"key":"k","value":"\xe0\x80\xaf"}',             # overlong, 3 bytes
    b'{"key":"k","value":"\xed\xa0\x80"}',             # encoded surrogate D800
    b'{"key":"k","value":"\xed\xbf\xbf"}',             # encoded surrogate DFFF
    b'{"key":"k","value":"\xf4\x90\x80\x80"}',         # U+110000
    b'{"key":"k","value":"\xf8\x88\x80\x80\x80"}',     # 5-byte form
    b'{"key":"\\ud800","value":"v"}',                  # lone high surrogate escape
    b'{"key":"k","value":"\\udc00"}',                  # lone low surrogate escape
    b'{"key":"k","value":"\\ud83d\\u0041"}',           # high surrogate, then not a low one
    b'{"key":"k","value":"v","\xed\xa0\x80":1}',       # in a member name
]


@pytest.mark.parametrize("body", BAD_JSON)
def test_bad_numbers_and_strings_are_400_and_change_nothing(kvd, body):
    r = kvd.request("POST", "/v4/keyvalues/edge", {"Content-Type": "application/json"}, body)
    assert r.status == 400, r
    j = json.loads(r.body)
    assert j["statusCode"] == 400 and j["error"] == "Bad Request", j
    assert kvd.get("/v4/keyvaluesnamespaces").body == b"[]"


@pytest.mark.parametrize("body, value", [
    (b'{"key":"k","value":"\\ud83d\\ude00"}', "\U0001F600"),
    (b'{"key":"k","value":"\xf0\x9f\x98\x80"}', "\U0001F600"),
    (b'{"key":"k","value":"\\\\ud800"}', "\\ud800"),   # an escaped backslash, then text
    (b'{"key":"k","value":"\xef\xbf\xbd\xf4\x8f\xbf\xbf"}', "\ufffd\U0010FFFF"),
])
def test_valid_unicode_is_stored_as_sent(kvd, body, value):
    r = kvd.request("POST", "/v4/keyvalues/edge", {"Content-Type": "application/json"}, body)
    assert r.status == 201, r
    r = kvd.get("/v4/keyvalues/edge?key=k")
    assert json.loads(r.body)["value"] == value, r
    kvd.request("DELETE", "/v4/keyvalues/edge")
