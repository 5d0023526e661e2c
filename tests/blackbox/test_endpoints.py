"""Endpoints of issue 2 (spec 2.1-2.3, 2.16): butlerping, base conversion,
configfile/endpointsenabled and the legacy /v2 routes."""

import json
import random

import pytest

import harness
from harness import JSON_CT, TEXT_CT, PING_TEXT, json_error, not_found


def check_json(r, status, body):
    assert r.status == status, r
    assert r.body == body, r
    assert r.header("Content-Type") == JSON_CT, r
    assert r.header("Content-Length") == str(len(r.body)), r


def conv(base62, base16):
    return ('{"base62":"%s","base16":"%s"}' % (base62, base16)).encode()


E62 = json_error(500, "Internal Server Error", "Failed converting from base62 to base16")
E16 = json_error(500, "Internal Server Error", "Failed converting from base16 to base62")


def missing(name):
    return json_error(400, "Bad Request", "querystring must have required property '%s'" % name,
                      "FST_ERR_VALIDATION")


# ---------------------------------------------------------------- butlerping

def test_butlerping(shared_daemon, butlerd_version):
    r = shared_daemon.get("/v4/butlerping")
    expected = json.dumps({"response": PING_TEXT, "butlerVersion": butlerd_version},
                          separators=(",", ":")).encode()
    check_json(r, 200, expected)


def test_butlerping_ignores_query(shared_daemon, butlerd_version):
    r = shared_daemon.get("/v4/butlerping?foo=bar")
    assert r.status == 200, r
    assert json.loads(r.body) == {"response": PING_TEXT, "butlerVersion": butlerd_version}


# ---------------------------------------------------------- base conversion

SPEC_EXAMPLES = [
    ("/v4/base62tobase16?base62=6DMW88LpSok9Z7P7hUK0wv7bF",
     conv("6DMW88LpSok9Z7P7hUK0wv7bF", "3199af08bfeeaf5d420f27ed9c01e74370077")),
    ("/v4/base16tobase62?base16=3199af08bfeeaf5d420f27ed9c01e74370077",
     conv("6DMW88LpSok9Z7P7hUK0wv7bF", "3199af08bfeeaf5d420f27ed9c01e74370077")),
    ("/v4/base16tobase62?base16=", conv("0", "")),
    ("/v4/base62tobase16?base62=0X96HlegVXzQfJVIBWC31",
     conv("0X96HlegVXzQfJVIBWC31", "816c8710661a0a69e51ac8dc4ccf13")),
]


@pytest.mark.parametrize("target,body", SPEC_EXAMPLES)
def test_conversion_spec_examples(shared_daemon, target, body):
    check_json(shared_daemon.get(target), 200, body)


@pytest.mark.parametrize("target,body", [
    # empty input gives "0"
    ("/v4/base62tobase16?base62=", conv("", "0")),
    # a name without "=" has the value "" (spec 1.5)
    ("/v4/base62tobase16?base62", conv("", "0")),
    ("/v4/base16tobase62?base16", conv("0", "")),
    # leading zeros disappear from the result, the input is echoed as received
    ("/v4/base16tobase62?base16=000ff", conv("47", "000ff")),
    ("/v4/base62tobase16?base62=00010", conv("00010", "3e")),
    ("/v4/base16tobase62?base16=0000", conv("0", "0000")),
    ("/v4/base62tobase16?base62=000", conv("000", "0")),
    ("/v4/base62tobase16?base62=0", conv("0", "0")),
    # lower case comes before upper case in the base62 alphabet
    ("/v4/base62tobase16?base62=z", conv("z", "23")),
    ("/v4/base62tobase16?base62=Z", conv("Z", "3d")),
    ("/v4/base16tobase62?base16=3d", conv("Z", "3d")),
    ("/v4/base16tobase62?base16=24", conv("A", "24")),
    # values are percent-decoded before conversion and echo
    ("/v4/base62tobase16?base62=%41", conv("A", "24")),
    ("/v4/base62tobase16?base62=1%30", conv("10", "3e")),
    # unknown parameters are ignored
    ("/v4/base16tobase62?x=1&base16=ff&y", conv("47", "ff")),
])
def test_conversion_edges(shared_daemon, target, body):
    check_json(shared_daemon.get(target), 200, body)


@pytest.mark.parametrize("target,body", [
    ("/v4/base62tobase16?base62=abc-!", E62),
    ("/v4/base62tobase16?base62=ab_c", E62),
    ("/v4/base62tobase16?base62=a+b", E62),       # "+" is a space
    ("/v4/base62tobase16?base62=%C3%A9", E62),    # non-ASCII
    ("/v4/base16tobase62?base16=ABC", E16),       # upper-case hex is invalid
    ("/v4/base16tobase62?base16=abcg", E16),
    ("/v4/base16tobase62?base16=12+3", E16),
    ("/v4/base16tobase62?base16=0x1f", E16),
])
def test_conversion_invalid_input(shared_daemon, target, body):
    check_json(shared_daemon.get(target), 500, body)


@pytest.mark.parametrize("target,name", [
    ("/v4/base62tobase16", "base62"),
    ("/v4/base16tobase62", "base16"),
    ("/v4/base62tobase16?base16=ff", "base62"),
    ("/v4/base16tobase62?base62=ff", "base16"),
    ("/v4/base16tobase62?BASE16=ff", "base16"),   # names are case-sensitive
])
def test_conversion_missing_parameter(shared_daemon, target, name):
    check_json(shared_daemon.get(target), 400, missing(name))


@pytest.mark.parametrize("target,prop", [
    ("/v4/base62tobase16?base62=a&base62=b", "base62"),
    ("/v4/base16tobase62?base16=a&base16=b", "base16"),
])
def test_conversion_duplicate_parameter(shared_daemon, target, prop):
    body = json_error(400, "Bad Request", "querystring/%s must be string" % prop,
                      "FST_ERR_VALIDATION")
    check_json(shared_daemon.get(target), 400, body)


def test_conversion_long_input_round_trip(shared_daemon):
    rnd = random.Random(20261123)
    hexin = rnd.choice("123456789abcdef") + "".join(rnd.choice("0123456789abcdef")
                                                    for _ in range(2999))
    b62 = harness.b62encode(int(hexin, 16))
    r = shared_daemon.get("/v4/base16tobase62?base16=" + hexin)
    check_json(r, 200, conv(b62, hexin))
    r = shared_daemon.get("/v4/base62tobase16?base62=" + b62)
    check_json(r, 200, conv(b62, hexin))


def test_conversion_long_base62_with_leading_zeros(shared_daemon):
    rnd = random.Random(7)
    b62 = "000" + "".join(rnd.choice(harness.BASE62_ALPHABET) for _ in range(2500))
    expected = harness.hex16(harness.b62decode(b62))
    r = shared_daemon.get("/v4/base62tobase16?base62=" + b62)
    check_json(r, 200, conv(b62, expected))


@pytest.mark.parametrize("n", [1, 61, 62, 63, 255, 256, 3843, 3844, 2**64 - 1, 2**64, 2**128 + 12345])
def test_conversion_boundaries(shared_daemon, n):
    h, b = harness.hex16(n), harness.b62encode(n)
    check_json(shared_daemon.get("/v4/base16tobase62?base16=" + h), 200, conv(b, h))
    check_json(shared_daemon.get("/v4/base62tobase16?base62=" + b), 200, conv(b, h))


# ------------------------------------------------- configfile/endpointsenabled

def test_endpointsenabled_default(shared_daemon):
    r = shared_daemon.get("/v4/configfile/endpointsenabled")
    check_json(r, 200, b'["apiListEnabledEndpoints","base62ToBase16","base16ToBase62","butlerping"]')


def test_endpointsenabled_custom_order(start_daemon):
    """A hand-written flag group: the list follows the file, depth-first, and
    names nested flags by their own name."""
    group = harness.Raw("""{
    butlerping = true;
    keyValueStore = false;
    scheduler = {
      getSchedule = true;
      updateSchedule = true;
      deleteSchedule = false;
    };
    apiListEnabledEndpoints = true;
    newRelic = {
      postNewRelicMetric = false;
      postNewRelicEvent = true;
    };
    base62ToBase16 = false;
    base16ToBase62 = true;
    createDir = false;
  }""")
    d = start_daemon({"Butler": {"restServerEndpointsEnable": group}})
    r = d.get("/v4/configfile/endpointsenabled")
    check_json(r, 200, b'["butlerping","getSchedule","updateSchedule","apiListEnabledEndpoints",'
                       b'"postNewRelicEvent","base16ToBase62"]')
    # and the flags really switch routes
    assert d.get("/v4/base62tobase16?base62=1").body == not_found("GET", "/v4/base62tobase16?base62=1")
    check_json(d.get("/v4/base16tobase62?base16=1"), 200, conv("1", "1"))


# ------------------------------------------------------------------- /v2

def test_v2_seed_base16_to_base62(shared_daemon):
    r = shared_daemon.get("/v2/base16ToBase62?base16=1f5848b5f8ba4e85a57c7ca55a9e")
    assert r.status == 200, r
    assert r.body == b"3t5Na7R7Hj5yaBCv80S"
    assert r.header("Content-Type") == TEXT_CT
    assert r.header("Content-Length") == str(len(r.body))


def test_v2_seed_base62_to_base16(shared_daemon):
    r = shared_daemon.get("/v2/base62ToBase16?base62=0X96HlegVXzQfJVIBWC31")
    assert r.status == 200, r
    assert r.body == b"816c8710661a0a69e51ac8dc4ccf13"
    assert r.header("Content-Type") == TEXT_CT


def test_v2_butlerping(shared_daemon):
    check_json(shared_daemon.get("/v2/butlerPing"), 200, b'{"response":"Butler reporting for duty"}')


@pytest.mark.parametrize("path", ["/v2/butlerping", "/V2/BUTLERPING", "/v2/BuTlErPiNg"])
def test_v2_paths_case_insensitive(shared_daemon, path):
    check_json(shared_daemon.get(path), 200, b'{"response":"Butler reporting for duty"}')


def test_v2_conversion_case_insensitive_path(shared_daemon):
    r = shared_daemon.get("/V2/BASE16TOBASE62?base16=ff")
    assert (r.status, r.body, r.header("Content-Type")) == (200, b"47", TEXT_CT), r
    r = shared_daemon.get("/v2/base62tobase16?base62=00010")
    assert (r.status, r.body) == (200, b"3e"), r


def test_v2_conversion_empty_input(shared_daemon):
    r = shared_daemon.get("/v2/base16ToBase62?base16=")
    assert (r.status, r.body) == (200, b"0"), r
    r = shared_daemon.get("/v2/base62ToBase16?base62=")
    assert (r.status, r.body) == (200, b"0"), r


def test_v2_conversion_errors(shared_daemon):
    check_json(shared_daemon.get("/v2/base16ToBase62?base16=XYZ"), 500, E16)
    check_json(shared_daemon.get("/v2/base62ToBase16?base62=a-b"), 500, E62)
    check_json(shared_daemon.get("/v2/base16ToBase62"), 400, missing("base16"))
    check_json(shared_daemon.get("/v2/base62ToBase16"), 400, missing("base62"))
    # parameter names stay case-sensitive
    check_json(shared_daemon.get("/v2/base62ToBase16?BASE62=1"), 400, missing("base62"))


def test_v2_only_get(shared_daemon):
    r = shared_daemon.request("POST", "/v2/butlerPing")
    check_json(r, 404, not_found("POST", "/v2/butlerPing"))
    r = shared_daemon.request("PUT", "/v2/butlerPing")
    check_json(r, 404, not_found("PUT", "/v2/butlerPing"))


@pytest.mark.parametrize("path", ["/v4/ButlerPing", "/V4/butlerping", "/v4/BUTLERPING",
                                  "/v4/Base16ToBase62?base16=ff"])
def test_v4_paths_case_sensitive(shared_daemon, path):
    check_json(shared_daemon.get(path), 404, not_found("GET", path))


# ------------------------------------------------------------ enable flags

def test_disabled_flag_gives_404(start_daemon):
    d = start_daemon({"Butler": {"restServerEndpointsEnable": {"butlerping": False}}})
    check_json(d.get("/v4/butlerping"), 404,
               b'{"statusCode":404,"error":"Not Found","message":"Route GET:/v4/butlerping not found"}')
    check_json(d.get("/v2/butlerPing"), 404, not_found("GET", "/v2/butlerPing"))
    # HEAD to a disabled GET route gives the same 404 status
    r = d.request("HEAD", "/v4/butlerping")
    assert r.status == 404 and r.body == b"", r
    # the other routes are unaffected
    check_json(d.get("/v4/base16tobase62?base16=ff"), 200, conv("47", "ff"))
    check_json(d.get("/v4/configfile/endpointsenabled"), 200,
               b'["apiListEnabledEndpoints","base62ToBase16","base16ToBase62"]')


def test_absent_flag_is_off(start_daemon):
    d = start_daemon({"Butler": {"restServerEndpointsEnable": {"base62ToBase16": harness.DELETE,
                                                               "apiListEnabledEndpoints": False}}})
    t = "/v4/base62tobase16?base62=1"
    check_json(d.get(t), 404, not_found("GET", t))
    t = "/v4/configfile/endpointsenabled"
    check_json(d.get(t), 404, not_found("GET", t))
    t = "/v2/base62ToBase16?base62=1"
    check_json(d.get(t), 404, not_found("GET", t))
    assert d.get("/v4/butlerping").status == 200


def test_v2_api_disabled(start_daemon, butlerd_version):
    d = start_daemon({"butlerd": {"v2Api": {"enable": False}}})
    for t in ["/v2/butlerPing", "/v2/base16ToBase62?base16=ff", "/v2/base62ToBase16?base62=1",
              "/V2/BUTLERPING"]:
        check_json(d.get(t), 404, not_found("GET", t))
    r = d.get("/v4/butlerping")
    assert r.status == 200, r
    assert json.loads(r.body)["butlerVersion"] == butlerd_version


def test_v2_api_enabled_explicitly(start_daemon):
    d = start_daemon({"butlerd": {"v2Api": {"enable": True}}})
    check_json(d.get("/v2/butlerPing"), 200, b'{"response":"Butler reporting for duty"}')
