"""The requests that the load-script subs of contrib/qlik/butlerd_subs.qvs send
(doc/qlik-load-script.md section 6, "The exact requests"), sent byte for byte on
a raw keep-alive socket, and butlerd's answers (spec 1.3, 1.4, 2.6, 3).

Tasks are started against the Qlik Sense simulator (tests/qlik-sim)."""

import hashlib
import json
import os
import re
import urllib.parse

import pytest

import harness
from harness import Raw

from harness import FIXTURE, X_QLIK_USER
from qlik_sim import QlikSim, make_certs

T1 = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
T2 = "7552d9fc-d1bb-4975-9a38-18357de531ea"
T3 = "fb0f317d-da91-4b86-aafa-0174ae1e8c8f"
T4 = "a4b0c6d2-3e1f-4a5b-9c8d-7e6f5a4b3c2d"
TKV = "fbf645f0-0c92-40a4-af9a-6e3eb1d3c35c"   # the doc's StartTask_KeyValue example
NAMES = {T1: "Reload task of App1", T2: "Reload task of App2", T3: "Reload task of App3",
         T4: "Reload task of App4", TKV: "Reload task reading a parameter"}

# transport headers the REST connector may add (doc section 6)
TRANSPORT = ["User-Agent: Qlik REST Connector", "Accept-Encoding: gzip, deflate",
             "Connection: Keep-Alive"]

# doc/qlik-load-script.md section 6, row by row: method, target, X-HTTP-Method-Override,
# Content-Type, body (exact bytes; None = no body)
START_TASK = ("POST", "/v4/reloadtask/e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e/start", "PUT",
              "application/json", b"[]")
START_TASK_KV = ("POST", "/v4/reloadtask/fbf645f0-0c92-40a4-af9a-6e3eb1d3c35c/start", "PUT",
                 "application/json",
                 b'[{"type":"keyvaluestore", "payload":{"namespace":"MyNamespace", '
                 b'"key":"An important key", "value":"The value", "ttl":"3000"}}]')
START_TASK_KV_NO_TTL = ("POST", "/v4/reloadtask/fbf645f0-0c92-40a4-af9a-6e3eb1d3c35c/start", "PUT",
                        "application/json",
                        b'[{"type":"keyvaluestore", "payload":{"namespace":"MyNamespace", '
                        b'"key":"An important key", "value":"The value", "ttl":""}}]')
START_TAG = ("POST", "/v4/reloadtask/-/start", "PUT", "application/json",
             b'[{"type":"starttasktag", "payload":{"tag":"startTask1"}}]')
START_CP = ("POST", "/v4/reloadtask/-/start", "PUT", "application/json",
            b'[{"type":"starttaskcustomproperty", "payload":{"customPropertyName":"taskGroup", '
            b'"customPropertyValue":"tasks2"}}]')
SET_KV = ("POST", "/v4/keyvalues/Sales%20ETL%20step%202", None, "application/json",
          b'{"key":"Last extract timestamp","value":"2020-09-29 17:14:56"}')
SET_KV_TTL = ("POST", "/v4/keyvalues/ns1", None, "application/json",
              b'{"key":"k2","value":"v2","ttl":"600000"}')
GET_KV = ("GET", "/v4/keyvalues/Sales%20ETL%20step%202?key=Last%20extract%20timestamp", "GET",
          None, None)
DEL_KEY = ("POST", "/v4/keyvalues/ns1/k2", "DELETE", "application/json", b"{}")
DEL_NS = ("POST", "/v4/keyvalues/ns1", "DELETE", "application/json", b"{}")


def jdump(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def err400(message):
    return jdump({"statusCode": 400, "error": "Bad Request", "message": message})


def result(started=(), invalid=(), tag=(), cp=()):
    tn = lambda t: {"taskId": t, "taskName": NAMES[t]}  # noqa: E731
    return jdump({"tasksId": {"started": [tn(t) for t in started],
                              "invalid": [{"taskId": t} for t in invalid], "denied": []},
                  "tasksTag": [tn(t) for t in tag], "tasksTagDenied": [],
                  "tasksCP": [tn(t) for t in cp], "tasksCPDenied": [], "tasksFailed": []})


def wire(port, row, extra=(), expect=False):
    """(head bytes, body bytes) of one request exactly as the table gives it."""
    method, target, override, ctype, body = row
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: 127.0.0.1:%d" % port]
    if override:
        lines.append("X-HTTP-Method-Override: " + override)
    if ctype:
        lines.append("Content-Type: " + ctype)
    lines += list(extra)
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
    if expect:
        lines.append("Expect: 100-continue")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii"), body or b""


class Qvs:
    """One keep-alive connection, like the REST connector's."""

    def __init__(self, d):
        self.d = d
        self.c = d.raw(timeout=10)

    def close(self):
        self.c.close()

    def send(self, row, extra=TRANSPORT):
        head, body = wire(self.d.port, row, extra)
        self.c.send(head + body)
        r = self.c.read_response()
        assert r.header("Content-Encoding") is None, r
        assert (r.header("Connection") or "").lower() == "keep-alive", r
        return r

    def send_expect(self, row, extra=TRANSPORT):
        """With Expect: 100-continue: the body goes out after the interim answer."""
        head, body = wire(self.d.port, row, extra, expect=True)
        self.c.send(head)
        r = self.c.read_response()
        assert r.status == 100, r
        self.c.send(body)
        return self.c.read_response()


check = harness.check_reply


check_204 = harness.check_204


def get_row(ns, key, override="GET"):
    """The GetKeyValue request for namespace/key (doc: RFC 3986, upper-case hex)."""
    q = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731
    return ("GET", "/v4/keyvalues/%s?key=%s" % (q(ns), q(key)), override, None, None)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    certs_dir = str(tmp_path_factory.mktemp("certs"))
    make_certs(certs_dir)
    s = QlikSim(fixture_path=FIXTURE, certs_dir=certs_dir).start()
    yield s
    s.stop()


def qvs_overrides(sim, flags):
    """The configuration of the load-script daemons: QRS at the simulator, FLAGS on."""
    c = sim.certs
    return {
        "Butler": {
            "restServerEndpointsEnable": {f: True for f in flags},
            "cert": {"clientCert": c["client.pem"], "clientCertKey": c["client_key.pem"],
                     "clientCertCA": c["root.pem"]},
            "configQRS": {"host": "127.0.0.1", "port": sim.qrs_port, "useSSL": True,
                          "rejectUnauthorized": True,
                          "headers": {"static": Raw('( { name = "X-Qlik-User"; value = "%s"; } )'
                                                    % X_QLIK_USER)}},
        },
        "butlerd": {"qrs": {"timeoutMs": 1500, "connectTimeoutMs": 1000}},
    }


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, sim):
    ov = qvs_overrides(sim, ["senseStartTask", "senseListApps", "keyValueStore"])
    d = harness.Daemon(tmp_path_factory.mktemp("qvsd"), ov)
    d.start()
    yield d
    d.stop()
    print(d.log_tail(200))


@pytest.fixture
def qvs(daemon, sim):
    sim.clear()
    sim.clear_behaviours()
    q = Qvs(daemon)
    yield q
    q.close()


# ------------------------------------------------------------------ start-task subs


def test_connection_test_request_starts_nothing(qvs, sim):
    """The stored request of the Butler_POST connection (doc section 2)."""
    r = qvs.send(("POST", "/v4/reloadtask/-/start", None, "application/json", b"[]"))
    check(r, 200, result())
    assert sim.requests == []


def test_start_task(qvs, sim):
    check(qvs.send(START_TASK), 200, result(started=[T1]))
    assert sim.starts() == [T1]
    assert [q.filter for q in sim.requests if q.method == "GET"] == ["id eq " + T1]
    for q in sim.requests:
        assert q.client_cn == "butlerd-test-client" and q.headers["X-Qlik-User"] == X_QLIK_USER
        assert q.headers["X-Qlik-Xrfkey"] == q.xrfkey and len(q.xrfkey) == 16


def test_start_task_keyvalue(qvs, sim):
    # the doc's task ID is not in the fixture: 200, listed as invalid, the pair is stored
    check(qvs.send(START_TASK_KV), 200, result(invalid=[TKV]))
    assert sim.starts() == []
    r = qvs.send(get_row("MyNamespace", "An important key"))
    assert r.status == 200, r
    v = json.loads(r.body)
    assert list(v) == ["namespace", "key", "value", "ttl"], v
    assert v["namespace"] == "MyNamespace" and v["key"] == "An important key", v
    assert v["value"] == "The value" and 0 < v["ttl"] <= 3000, v

    # with the task in QRS it is started; the pair written again without TTL has none
    sim.tasks.append(dict(sim.find_task(T1), id=TKV, name=NAMES[TKV]))
    try:
        sim.clear()
        check(qvs.send_expect(START_TASK_KV_NO_TTL), 200, result(started=[TKV]))
        assert sim.starts() == [TKV]
        check(qvs.send(get_row("MyNamespace", "An important key")), 200,
              b'{"namespace":"MyNamespace","key":"An important key","value":"The value"}')
    finally:
        sim.tasks.remove(next(t for t in sim.tasks if t["id"] == TKV))
    check_204(qvs.send(("POST", "/v4/keyvalues/MyNamespace", "DELETE", "application/json", b"{}")))


def test_start_tasks_tag(qvs, sim):
    check(qvs.send(START_TAG), 200, result(tag=[T2, T3]))
    assert sorted(sim.starts()) == sorted([T2, T3])
    assert sim.filters() == ["tags.name eq 'startTask1'"]


def test_start_tasks_custom_property(qvs, sim):
    check(qvs.send(START_CP), 200, result(cp=[T3, T4]))
    assert sorted(sim.starts()) == sorted([T3, T4])
    assert sim.filters() == [
        "(customProperties.definition.name eq 'taskGroup') and (customProperties.value eq 'tasks2')"]


def test_start_subs_with_tag_lookup_failing(qvs, sim):
    """Doc section 5: 500 `Failed starting task` when a lookup gets no answer."""
    sim.set_behaviour(r"^/qrs/task/full$", drop=True)
    check(qvs.send(START_TAG), 500,
          jdump({"statusCode": 500, "error": "Internal Server Error",
                 "message": "Failed starting task"}))
    assert sim.starts() == []


# ------------------------------------------------------------------ key-value subs


def test_key_value_subs(qvs, sim):
    check(qvs.send(SET_KV), 201,
          b'{"namespace":"Sales ETL step 2","key":"Last extract timestamp",'
          b'"value":"2020-09-29 17:14:56","ttl":0}')
    check(qvs.send(SET_KV_TTL), 201, b'{"namespace":"ns1","key":"k2","value":"v2","ttl":600000}')
    check(qvs.send(GET_KV), 200,
          b'{"namespace":"Sales ETL step 2","key":"Last extract timestamp",'
          b'"value":"2020-09-29 17:14:56"}')
    r = qvs.send(get_row("ns1", "k2"))
    assert r.status == 200, r
    v = json.loads(r.body)
    assert v["value"] == "v2" and 590000 < v["ttl"] <= 600000, v

    check_204(qvs.send(DEL_KEY))
    check(qvs.send(get_row("ns1", "k2")), 400, err400("Key 'k2' not found in namespace: ns1"))
    check(qvs.send(DEL_KEY), 400, err400("Key 'k2' not found in namespace: ns1"))
    check_204(qvs.send(DEL_NS))
    check(qvs.send(DEL_NS), 400, err400("Namespace not found: ns1"))
    check(qvs.send(get_row("ns1", "k2")), 400, err400("Namespace not found: ns1"))

    # DeleteKeyValue / DeleteNamespace('Sales ETL step 2', ...)
    check_204(qvs.send(("POST", "/v4/keyvalues/Sales%20ETL%20step%202/Last%20extract%20timestamp",
                        "DELETE", "application/json", b"{}")))
    check(qvs.send(GET_KV), 400,
          err400("Key 'Last extract timestamp' not found in namespace: Sales ETL step 2"))
    check_204(qvs.send(("POST", "/v4/keyvalues/Sales%20ETL%20step%202", "DELETE",
                        "application/json", b"{}")))
    check(qvs.send(GET_KV), 400, err400("Namespace not found: Sales ETL step 2"))
    assert sim.requests == []


def test_get_key_value_over_a_post_connection(qvs):
    """Doc section 3: with one POST connection, GetKeyValue arrives as POST with
    X-HTTP-Method-Override: GET (and the connection's stored body, which is ignored)."""
    check(qvs.send(("POST", "/v4/keyvalues/postget", None, "application/json",
                    b'{"key":"k","value":"v"}')), 201,
          b'{"namespace":"postget","key":"k","value":"v","ttl":0}')
    for body in (b"[]", None):
        row = ("POST", "/v4/keyvalues/postget?key=k", "GET", "application/json", body)
        check(qvs.send(row), 200, b'{"namespace":"postget","key":"k","value":"v"}')
    check_204(qvs.send(("POST", "/v4/keyvalues/postget", "DELETE", "application/json", b"{}")))


def test_escaping_examples(qvs):
    """Doc section 6 notes: JSON escaping in bodies, RFC 3986 encoding in paths/queries."""
    check(qvs.send(("POST", "/v4/keyvalues/ns1", None, "application/json",
                    b'{"key":"say \\"hi\\"","value":"C:\\\\temp"}')), 201,
          b'{"namespace":"ns1","key":"say \\"hi\\"","value":"C:\\\\temp","ttl":0}')
    check(qvs.send(("GET", "/v4/keyvalues/ns1?key=say%20%22hi%22", "GET", None, None)), 200,
          b'{"namespace":"ns1","key":"say \\"hi\\"","value":"C:\\\\temp"}')

    check(qvs.send(("POST", "/v4/keyvalues/n%C3%A9", None, "application/json",
                    b'{"key":"a/b c","value":"x"}')), 201,
          '{"namespace":"né","key":"a/b c","value":"x","ttl":0}'.encode("utf-8"))
    check(qvs.send(("GET", "/v4/keyvalues/n%C3%A9?key=a%2Fb%20c", "GET", None, None)), 200,
          '{"namespace":"né","key":"a/b c","value":"x"}'.encode("utf-8"))
    check_204(qvs.send(("POST", "/v4/keyvalues/n%C3%A9/a%2Fb%20c", "DELETE", "application/json",
                        b"{}")))
    check_204(qvs.send(("POST", "/v4/keyvalues/n%C3%A9", "DELETE", "application/json", b"{}")))
    check_204(qvs.send(("POST", "/v4/keyvalues/ns1", "DELETE", "application/json", b"{}")))


def test_set_key_value_empty_ttl_is_rejected(qvs):
    """Doc section 6: why SetKeyValue leaves out an empty ttl."""
    check(qvs.send(("POST", "/v4/keyvalues/ttlns", None, "application/json",
                    b'{"key":"k","value":"v","ttl":""}')), 400,
          jdump({"statusCode": 400, "code": "FST_ERR_VALIDATION", "error": "Bad Request",
                 "message": "body/ttl must be number"}))


# ------------------------------------------------------------------ with an API token
# doc/qlik-load-script.md section 9: with vButlerdToken set, every request of the
# table also carries "Authorization: Bearer <token>".

QVS_TOKEN = "bd_qvs-test-token-0123456789abcdefghijklmnopqrst"


def test_subs_file_sends_the_token_in_every_request():
    path = os.path.join(os.environ.get("BUTLERD_SRCDIR", os.path.join(harness.HERE, "..", "..")),
                        "contrib", "qlik", "butlerd_subs.qvs")
    with open(path) as f:
        text = f.read()
    blocks = re.findall(r"WITH CONNECTION \(\n\s*URL [^\n]*\n\s*([^\n]*)\n", text)
    assert len(blocks) == text.count("WITH CONNECTION (") >= 5
    assert all(b == "$(vButlerdAuthHeader)" for b in blocks), blocks


@pytest.fixture(scope="module")
def tokend(tmp_path_factory, sim):
    entries = [
        '{ name = "qlik-reload"; sha256 = "%s"; scopes = [ "tasks:start", "keyvalues:read", '
        '"keyvalues:write" ]; allowFrom = [ "127.0.0.1/32" ]; }'
        % hashlib.sha256(QVS_TOKEN.encode()).hexdigest(),
        '{ name = "readonly"; sha256 = "%s"; scopes = [ "keyvalues:read" ]; }'
        % hashlib.sha256(b"readonly-token").hexdigest(),
    ]
    ov = qvs_overrides(sim, ["senseStartTask", "keyValueStore"])
    ov["butlerd"]["auth"] = {"enable": True, "tokens": Raw("( %s )" % ", ".join(entries))}
    d = harness.Daemon(tmp_path_factory.mktemp("qvstok"), ov)
    d.start()
    yield d
    d.stop()
    print(d.log_tail(200))


def test_requests_with_token(tokend, sim):
    sim.clear()
    sim.clear_behaviours()
    q = Qvs(tokend)
    auth = ["Authorization: Bearer " + QVS_TOKEN] + TRANSPORT
    try:
        check(q.send(START_TASK, auth), 200, result(started=[T1]))
        assert sim.starts() == [T1]
        check(q.send(START_TAG, auth), 200, result(tag=[T2, T3]))
        r = q.send(SET_KV, auth)
        assert r.status == 201, r
        r = q.send(GET_KV, auth)
        assert r.status == 200 and json.loads(r.body)["value"] == "2020-09-29 17:14:56", r
        assert q.send(SET_KV_TTL, auth).status == 201
        check_204(q.send(DEL_KEY, auth))
        check_204(q.send(DEL_NS, auth))
        # without the token: 401, the same connection stays usable
        r = q.send(GET_KV)
        assert r.status == 401 and r.header("WWW-Authenticate") == 'Bearer realm="butlerd"', r
        # a token without the scope: 403
        r = q.send(SET_KV, ["Authorization: Bearer readonly-token"] + TRANSPORT)
        assert r.status == 403, r
        assert json.loads(r.body)["message"] == "This API token lacks the scope keyvalues:write"
    finally:
        q.close()
    assert QVS_TOKEN not in tokend.log()
