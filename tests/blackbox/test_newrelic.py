"""New Relic pass-through (spec 2.9): POST /v4/newrelic/event and
/v4/newrelic/metric. A local HTTP receiver on 127.0.0.1 stands in for New
Relic, records method, path, headers and body of every request, and answers
per account (told apart by Api-Key) with 202, 200, 500, a redirect, or never.
Two accounts are configured, one with a string accountId and one with an
integer one. butlerd must send the exact bodies (member order), the headers,
post to every account in list order and report 202/400/502/503."""

import json
import re
import time

import pytest

import harness
import receiver
from harness import JSON_CT, Raw, jdump, not_found, validation, err
from harness import check_reply as check


KEY_A, KEY_B = "key-str-A", "key-int-B"
ID_A, ID_B = "1234567", 7654321
ACCEPTED = b'{"newRelicResultCode":202,"newRelicResultText":"Accepted"}'

# mode -> (status line reason, status, body)
ANSWERS = {
    "ok": ("Accepted", 202, b'{"success":true}'),
    "200": ("OK", 200, b""),
    "custom": ("Fine \x01Thanks", 202, b""),
    "500": ("Internal Server Error", 500, b"boom"),
    "403": ("Forbidden", 403, b'{"error":"bad key"}'),
    "redirect": ("Found", 302, b"moved"),
}


class Receiver(receiver.Receiver):
    """New Relic's collector. modes[api_key] picks the answer for that account
    (ANSWERS, or "hang")."""

    def __init__(self):
        self.modes = {}
        super().__init__()

    def answer(self, req):
        mode = self.modes.get(req["headers"].get("Api-Key"), "ok")
        if mode == "hang":
            return receiver.HANG
        reason, status, data = ANSWERS[mode]
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        if status == 302:
            headers.append(("Location", "/elsewhere"))
        return status, reason, headers, data


def tuples(*pairs, members=("name", "value")):
    """A libconfig list of groups, e.g. ( { name = "a"; value = "b"; } )."""
    groups = []
    for p in pairs:
        groups.append("{ " + " ".join("%s = %s;" % (m, harness._scalar(v))
                                      for m, v in zip(members, p)) + " }")
    return Raw("( " + ", ".join(groups) + " )")


def overrides(base, event=True, metric=True, accounts=("acc-A", "acc-B"),
              event_url=None, metric_url=None, header=None, creds=None):
    header = header if header is not None else tuples(("X-Custom", "hello world"),
                                                      ("X-Empty", ""))
    creds = creds if creds is not None else tuples(
        ("acc-A", KEY_A, ID_A), ("acc-B", KEY_B, ID_B),
        members=("accountName", "insertApiKey", "accountId"))
    return {"Butler": {
        "restServerEndpointsEnable": {"newRelic": {"postNewRelicEvent": event,
                                                   "postNewRelicMetric": metric}},
        "restServerEndpointsConfig": {"newRelic": {
            "postNewRelicEvent": {
                "destinationAccount": list(accounts),
                "url": event_url or base + "/",
                "header": header,
                "attribute": {"static": tuples(("env", "prod"), ("app", "static-app"))},
            },
            "postNewRelicMetric": {
                "destinationAccount": list(accounts),
                "url": metric_url or base + "/metric/v1",
                "header": header,
                "attribute": {"static": tuples(("env", "prod"))},
            },
        }},
        "thirdPartyToolsCredentials": {"newRelic": creds},
    }}


@pytest.fixture(scope="module")
def rec():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def d(rec, tmp_path_factory):
    dm = harness.Daemon(tmp_path_factory.mktemp("nr"), overrides(rec.base))
    try:
        dm.start()
        yield dm
    finally:
        dm.stop()
        print(dm.log_tail(100))


@pytest.fixture
def nr(rec):
    """The receiver, emptied, every account answering 202 Accepted."""
    rec.modes = {}
    rec.release.set()
    rec.take()
    rec.release.clear()
    return rec


def post(d, what, body, timeout=20, ctype="application/json"):
    return d.request("POST", "/v4/newrelic/" + what, {"Content-Type": ctype},
                     body if isinstance(body, bytes) else jdump(body), timeout=timeout)


def now_ms():
    return int(time.time() * 1000)


def two_posts(rec, path_a, path_b):
    """The two requests, account A first; checks method, path and headers."""
    got = rec.take()
    assert len(got) == 2, got
    for g, path, key in ((got[0], path_a, KEY_A), (got[1], path_b, KEY_B)):
        assert g["method"] == "POST" and g["path"] == path, g
        h = g["header_list"]
        names = [k.lower() for k, _ in h]
        for name in ("content-type", "x-custom", "x-empty", "api-key"):
            assert names.count(name) == 1, h
        hd = {k.lower(): v for k, v in h}
        assert hd["content-type"] == "application/json; charset=utf-8", h
        assert hd["x-custom"] == "hello world" and hd["x-empty"] == "", h
        assert hd["api-key"] == key, h
        assert "expect" not in hd, h
    return got[0]["body"], got[1]["body"]


EV_A = "/v1/accounts/%s/events" % ID_A
EV_B = "/v1/accounts/%d/events" % ID_B


def event_bodies(rec):
    a, b = two_posts(rec, EV_A, EV_B)
    assert a == b
    return a


def split_ts(body):
    """(timestamp, rest) of an event body that starts with the timestamp member."""
    m = re.fullmatch(rb'\{"timestamp":(\d+),(.*)', body, re.S)
    assert m, body
    return int(m.group(1)), b"{" + m.group(2)


# ------------------------------------------------------------------ events

def test_event_spec_example(d, nr):
    t0 = now_ms()
    r = post(d, "event", {"eventType": "reload-failed",
                          "attributes": [{"name": "app", "value": "Sales"}]})
    t1 = now_ms()
    check(r, 202, ACCEPTED)
    ts, rest = split_ts(event_bodies(nr))
    assert t0 - 5 <= ts <= t1 + 5
    # static first; the request's "app" replaces the static value in its place
    assert rest == b'{"eventType":"reload-failed","env":"prod","app":"Sales"}'


def test_event_given_timestamp_and_attribute_rules(d, nr):
    body = {"eventType": "t\u00e9st \U0001F389", "timestamp": 1763851793123, "attributes": [
        {"name": "new", "value": "first"},
        {"value": "no name"},                 # ignored
        {"name": "", "value": "empty name"},  # ignored
        {"name": "novalue"},                  # ignored
        {"name": "n\u00e4me/\"q\"", "value": "\u65e5\u672c \\ \n"},
        {"name": "num", "value": 42},         # coerced to a string
        {"name": "new", "value": "second"},   # later wins, first place kept
        {"name": "env", "value": "test"},
        {"other": 1},
    ]}
    check(post(d, "event", body), 202, ACCEPTED)
    got = event_bodies(nr)
    assert got == jdump({"timestamp": 1763851793123, "eventType": "t\u00e9st \U0001F389",
                         "env": "test", "app": "static-app", "new": "second",
                         "n\u00e4me/\"q\"": "\u65e5\u672c \\ \n", "num": "42"})


@pytest.mark.parametrize("given", [0, -5, "0", None])
def test_event_timestamp_now(d, nr, given):
    body = {"eventType": "e"}
    if given is not None:
        body["timestamp"] = given
    t0 = now_ms()
    check(post(d, "event", body), 202, ACCEPTED)
    ts, rest = split_ts(event_bodies(nr))
    assert t0 - 5 <= ts <= now_ms() + 5
    assert rest == b'{"eventType":"e","env":"prod","app":"static-app"}'


def test_event_quoted_timestamp(d, nr):
    """Load scripts quote numbers: "1763851793123" is the number."""
    check(post(d, "event", {"eventType": 7, "timestamp": "1763851793123"}), 202, ACCEPTED)
    assert event_bodies(nr) == (b'{"timestamp":1763851793123,"eventType":"7","env":"prod",'
                                b'"app":"static-app"}')


def test_event_255_attributes_accepted(d, nr):
    attrs = [{"name": "a%d" % i, "value": "v"} for i in range(255)]
    check(post(d, "event", {"eventType": "e", "timestamp": 5, "attributes": attrs}), 202,
          ACCEPTED)
    got = json.loads(event_bodies(nr))
    assert len(got) == 2 + 2 + 255


def test_last_answer_is_reported(d, nr):
    """202 carries the status and reason phrase of the last account's answer."""
    nr.modes = {KEY_B: "200"}
    check(post(d, "event", {"eventType": "e"}), 202,
          b'{"newRelicResultCode":200,"newRelicResultText":"OK"}')
    event_bodies(nr)
    nr.modes = {KEY_A: "200", KEY_B: "custom"}
    check(post(d, "event", {"eventType": "e"}), 202,
          b'{"newRelicResultCode":202,"newRelicResultText":"Fine Thanks"}')
    event_bodies(nr)


# ------------------------------------------------------------------ metrics

def test_metric_spec_example(d, nr):
    body = {"name": "memory.heap", "type": "gauge", "value": 2.3, "timestamp": 1763851793123,
            "interval": 1000, "attributes": [{"name": "host.name", "value": "dev.server.com"}]}
    check(post(d, "metric", body), 202, ACCEPTED)
    a, b = two_posts(nr, "/metric/v1", "/metric/v1")
    assert a == b == (
        b'[{"common":{"timestamp":1763851793123,"attributes":{"env":"prod",'
        b'"host.name":"dev.server.com"}},"metrics":[{"name":"memory.heap","type":"gauge",'
        b'"value":2.3}]}]')


def test_metric_coercion_and_now(d, nr):
    t0 = now_ms()
    body = {"name": "m", "type": "gauge", "value": "-0.125",
            "attributes": [{"name": "env", "value": "x" * 5000}]}  # no limit on metric values
    check(post(d, "metric", body), 202, ACCEPTED)
    a, b = two_posts(nr, "/metric/v1", "/metric/v1")
    assert a == b
    got = json.loads(a)
    ts = got[0]["common"]["timestamp"]
    assert t0 - 5 <= ts <= now_ms() + 5
    assert a == jdump([{"common": {"timestamp": ts, "attributes": {"env": "x" * 5000}},
                        "metrics": [{"name": "m", "type": "gauge", "value": -0.125}]}])


# ------------------------------------------------------------ New Relic errors

def test_one_account_500_is_502_after_both(d, nr):
    nr.modes = {KEY_A: "500"}
    check(post(d, "event", {"eventType": "e"}), 502,
          err(502, "Failed posting event to New Relic account 'acc-A': HTTP 500"))
    event_bodies(nr)  # B was posted to all the same
    nr.modes = {KEY_B: "403"}
    check(post(d, "metric", {"name": "m", "type": "gauge", "value": 1}), 502,
          err(502, "Failed posting metric to New Relic account 'acc-B': HTTP 403"))
    two_posts(nr, "/metric/v1", "/metric/v1")
    nr.modes = {KEY_A: "403", KEY_B: "500"}  # the first failure is reported
    check(post(d, "event", {"eventType": "e"}), 502,
          err(502, "Failed posting event to New Relic account 'acc-A': HTTP 403"))
    event_bodies(nr)


def test_redirect_not_followed(d, nr):
    nr.modes = {KEY_A: "redirect", KEY_B: "redirect"}
    check(post(d, "event", {"eventType": "e"}), 502,
          err(502, "Failed posting event to New Relic account 'acc-A': HTTP 302"))
    event_bodies(nr)  # exactly two requests: no /elsewhere


def test_hanging_account_times_out_after_5s(d, nr):
    nr.modes = {KEY_A: "hang"}
    t0 = time.monotonic()
    try:
        r = post(d, "event", {"eventType": "e"}, timeout=30)
    finally:
        nr.release.set()
    elapsed = time.monotonic() - t0
    assert r.status == 502, r
    msg = json.loads(r.body)["message"]
    assert msg.startswith("Failed posting event to New Relic account 'acc-A': "), msg
    assert "timed out" in msg.lower(), msg
    assert KEY_A not in msg and KEY_A not in d.log() and KEY_B not in d.log()
    assert 4.5 <= elapsed < 9.0, elapsed
    event_bodies(nr)  # B was still posted to
    nr.modes = {}
    check(post(d, "event", {"eventType": "again"}), 202, ACCEPTED)
    event_bodies(nr)


def test_receiver_down(start_daemon):
    base = "http://127.0.0.1:%d" % harness.free_port()  # nothing listens there
    dm = start_daemon(overrides(base))
    t0 = time.monotonic()
    r = post(dm, "metric", {"name": "m", "type": "gauge", "value": 1})
    assert time.monotonic() - t0 < 6
    assert r.status == 502 and r.header("Content-Type") == JSON_CT, r
    msg = json.loads(r.body)["message"]
    assert msg.startswith("Failed posting metric to New Relic account 'acc-A': "), msg
    assert "connect" in msg.lower(), msg


def test_no_account_503(start_daemon, rec):
    for accounts in ((), ("nobody", "nobody-else")):
        dm = start_daemon(overrides(rec.base, accounts=accounts))
        rec.take()
        for what, body in (("event", {"eventType": "e"}),
                           ("metric", {"name": "m", "type": "gauge", "value": 1})):
            check(post(dm, what, body), 503,
                  err(503, "No New Relic destination account is configured"))
        # validation comes first
        check(post(dm, "event", {}), 400,
              validation("body must have required property 'eventType'"))
        assert rec.take() == []
    dm.wait_log(r'New Relic account "nobody" is not in', 5)


def test_unknown_account_skipped(start_daemon, rec):
    dm = start_daemon(overrides(rec.base, accounts=("ghost", "acc-B")))
    rec.take()
    check(post(dm, "event", {"eventType": "e", "timestamp": 1}), 202, ACCEPTED)
    got = rec.take()
    assert [g["path"] for g in got] == [EV_B], got
    dm.wait_log(r'New Relic account "ghost" is not in', 5)


def test_static_attributes_cannot_replace_event_members(start_daemon, rec):
    """A static event attribute named timestamp or eventType is skipped and logged;
    metrics keep their attributes apart, so there it is an ordinary attribute."""
    o = overrides(rec.base, accounts=("acc-A",))
    nrc = o["Butler"]["restServerEndpointsConfig"]["newRelic"]
    nrc["postNewRelicEvent"]["attribute"]["static"] = tuples(
        ("timestamp", "1"), ("eventType", "x"), ("env", "prod"))
    nrc["postNewRelicMetric"]["attribute"]["static"] = tuples(("timestamp", "1"))
    dm = start_daemon(o)
    rec.take()
    check(post(dm, "event", {"eventType": "e", "timestamp": 3}), 202, ACCEPTED)
    assert [g["body"] for g in rec.take()] == [b'{"timestamp":3,"eventType":"e","env":"prod"}']
    dm.wait_log(r'New Relic static attribute "eventType" would replace', 5)
    check(post(dm, "metric", {"name": "m", "type": "gauge", "value": 0, "timestamp": 3}), 202,
          ACCEPTED)
    assert [g["body"] for g in rec.take()] == [
        b'[{"common":{"timestamp":3,"attributes":{"timestamp":"1"}},"metrics":[{"name":"m",'
        b'"type":"gauge","value":0}]}]']


def test_event_url_rules(start_daemon, rec):
    """A "/" is added when the URL lacks one; the accountId stays one segment."""
    creds = tuples(("odd", "k", "12/../x?y#z"),
                   members=("accountName", "insertApiKey", "accountId"))
    dm = start_daemon(overrides(rec.base, accounts=("odd",), event_url=rec.base + "/base",
                                creds=creds))
    rec.take()
    check(post(dm, "event", {"eventType": "e"}), 202, ACCEPTED)
    got = rec.take()
    assert [g["path"] for g in got] == ["/base/v1/accounts/12%2F..%2Fx%3Fy%23z/events"], got


# -------------------------------------------------------------- validation

BIG = "\u00e9" * 254  # 254 characters, 508 bytes


@pytest.mark.parametrize("body,message", [
    ({}, "body must have required property 'eventType'"),
    ({"attributes": []}, "body must have required property 'eventType'"),
    ({"eventType": {"a": 1}}, "body/eventType must be string"),
    ({"eventType": ["a", "b"]}, "body/eventType must be string"),
    ({"eventType": BIG + "x"}, "body/eventType must NOT have more than 254 characters"),
    ({"eventType": "e", "timestamp": "soon"}, "body/timestamp must be number"),
    ({"eventType": "e", "timestamp": {}}, "body/timestamp must be number"),
    ({"eventType": "e", "attributes": [1]}, "body/attributes/0 must be object"),
    ({"eventType": "e", "attributes": "x"}, "body/attributes/0 must be object"),
    ({"eventType": "e", "attributes": [{"name": "a", "value": "b"}, [1]]},
     "body/attributes/1 must be object"),
    ({"eventType": "e", "attributes": [{"name": {"x": 1}, "value": "b"}]},
     "body/attributes/0/name must be string"),
    ({"eventType": "e", "attributes": [{"name": "a", "value": [1, 2]}]},
     "body/attributes/0/value must be string"),
    ({"eventType": "e", "attributes": [{"name": BIG + "x", "value": "b"}]},
     "body/attributes/0/name must NOT have more than 254 characters"),
    ({"eventType": "e", "attributes": [{"name": "a", "value": "\u00e9" * 4097}]},
     "body/attributes/0/value must NOT have more than 4096 characters"),
    ({"eventType": "e", "attributes": [{"name": "a%d" % i, "value": "v"} for i in range(256)]},
     "body/attributes must NOT have more than 255 items"),
    ({"eventType": "e", "attributes": [{"name": "eventType", "value": "x"}]},
     "body/attributes/0/name must NOT be 'timestamp' or 'eventType'"),
    ({"eventType": "e", "attributes": [{"name": "timestamp", "value": "1"}]},
     "body/attributes/0/name must NOT be 'timestamp' or 'eventType'"),
    ([{"eventType": "e"}], "body must be object"),
    ("e", "body must be object"),
])
def test_event_validation(d, nr, body, message):
    check(post(d, "event", body), 400, validation(message))
    assert nr.take() == []


def test_event_limits_count_characters(d, nr):
    """254 two-byte characters are within the 254-character limits."""
    body = {"eventType": BIG, "timestamp": 9,
            "attributes": [{"name": BIG, "value": "\u00e9" * 4096}]}
    check(post(d, "event", body), 202, ACCEPTED)
    assert event_bodies(nr) == jdump({"timestamp": 9, "eventType": BIG, "env": "prod",
                                      "app": "static-app", BIG: "\u00e9" * 4096})


@pytest.mark.parametrize("body,message", [
    ({}, "body must have required property 'name'"),
    ({"type": "gauge", "value": 1}, "body must have required property 'name'"),
    ({"name": "m", "value": 1}, "body must have required property 'type'"),
    ({"name": "m", "type": "gauge"}, "body must have required property 'value'"),
    ({"name": BIG + "x", "type": "gauge", "value": 1},
     "body/name must NOT have more than 254 characters"),
    ({"name": "m", "type": "count", "value": 1},
     "body/type must be equal to one of the allowed values"),
    ({"name": "m", "type": "gauge", "value": "lots"}, "body/value must be number"),
    ({"name": "m", "type": "gauge", "value": 1, "timestamp": "x"},
     "body/timestamp must be number"),
    ({"name": "m", "type": "gauge", "value": 1, "interval": [1, 2]},
     "body/interval must be number"),
    ({"name": "m", "type": "gauge", "value": 1, "attributes": [None]},
     "body/attributes/0 must be object"),
    ({"name": "m", "type": "gauge", "value": 1,
      "attributes": [{"name": BIG + "x", "value": "b"}]},
     "body/attributes/0/name must NOT have more than 254 characters"),
    ({"name": "m", "type": "gauge", "value": 1,
      "attributes": [{"name": "a", "value": "b"}] * 256},
     "body/attributes must NOT have more than 255 items"),
    (7, "body must be object"),
])
def test_metric_validation(d, nr, body, message):
    check(post(d, "metric", body), 400, validation(message))
    assert nr.take() == []


@pytest.mark.parametrize("raw", [b'{"name":"m","type":"gauge","value":NaN}',
                                 b'{"name":"m","type":"gauge","value":1e999}',
                                 b'{"name":"m","type":"gauge","value":-Infinity}'])
def test_metric_non_finite_numbers(d, nr, raw):
    r = post(d, "metric", raw)
    assert r.status == 400, r
    assert json.loads(r.body)["code"] in ("FST_ERR_CTP_INVALID_JSON_BODY",
                                          "FST_ERR_VALIDATION"), r
    assert nr.take() == []


def test_no_body_and_text_body(d, nr):
    check(d.request("POST", "/v4/newrelic/event"), 400, validation("body must be object"))
    check(post(d, "metric", b"gauge", ctype="text/plain"), 400,
          validation("body must be object"))
    assert nr.take() == []


# ------------------------------------------------------------------ config

def test_disabled_404(start_daemon, rec):
    dm = start_daemon(overrides(rec.base, event=False, metric=False))
    rec.take()
    for what in ("event", "metric"):
        check(post(dm, what, {"eventType": "e"}), 404,
              not_found("POST", "/v4/newrelic/" + what))
    assert rec.take() == []
    dm = start_daemon(overrides(rec.base, event=True, metric=False))
    check(post(dm, "metric", {"name": "m", "type": "gauge", "value": 1}), 404,
          not_found("POST", "/v4/newrelic/metric"))
    check(dm.request("GET", "/v4/newrelic/event"), 404, not_found("GET", "/v4/newrelic/event"))
    assert rec.take() == []


@pytest.mark.parametrize("header,creds,message", [
    (tuples(("X-Bad", "a\r\nInjected: yes")), None,
     r"postNewRelicEvent\.header\[0\]\.value has a control character"),
    (tuples(("X-Ok", "fine"), ("Bad Name", "v")), None,
     r"postNewRelicEvent\.header\[1\]\.name is not a valid HTTP header name"),
    (tuples(("X:Colon", "v")), None, r"header\[0\]\.name is not a valid HTTP header name"),
    (None, tuples(("a", "key\nX-Evil: 1", "1"),
                  members=("accountName", "insertApiKey", "accountId")),
     r"thirdPartyToolsCredentials\.newRelic\[0\]\.insertApiKey has a control character"),
])
def test_header_injection_is_config_error(tmp_path, rec, header, creds, message):
    cfg = harness.config_text(harness.free_port(), tmp_path,
                              overrides(rec.base, header=header, creds=creds))
    path = tmp_path / "butlerd.conf"
    path.write_text(cfg)
    cp = harness.run_cli(["-t", "-c", str(path)])
    assert cp.returncode != 0, cp
    assert re.search(message, cp.stderr), cp.stderr
    assert "Injected" not in cp.stderr and "X-Evil" not in cp.stderr


def test_good_config_checks_ok(tmp_path, rec):
    path = tmp_path / "butlerd.conf"
    path.write_text(harness.config_text(harness.free_port(), tmp_path, overrides(rec.base)))
    cp = harness.run_cli(["-t", "-c", str(path)])
    assert cp.returncode == 0, cp
    assert "configuration OK" in cp.stdout + cp.stderr, cp
    assert "postNewRelic" not in cp.stderr, cp.stderr


def test_no_known_account_is_a_warning(tmp_path, rec):
    path = tmp_path / "butlerd.conf"
    path.write_text(harness.config_text(harness.free_port(), tmp_path,
                                        overrides(rec.base, accounts=("ghost",))))
    cp = harness.run_cli(["-t", "-c", str(path)])
    assert cp.returncode == 0, cp
    for what in ("Event", "Metric"):
        assert re.search(r"warning: .*postNewRelic%s is enabled but no name in its "
                         r"destinationAccount is in Butler\.thirdPartyToolsCredentials\.newRelic"
                         % what, cp.stderr), cp.stderr
