"""Start-task API against the Qlik Sense simulator (spec api.md 1.11, 1.12,
2.13, 2.14, 2.16 /v2/senseStartTask and /v2/senseListApps, 3; issue 4).

Every test gets its own simulator (tests/qlik-sim, QRS over HTTPS with a
client certificate) and its own butlerd; the test PKI is made once per module.
Besides butlerd's answers, the tests check what the simulator recorded: the
xrfkey (query == header, 16 x [A-Za-z0-9], new per request), X-Qlik-User,
Content-Type, the client certificate, the exact filter strings and their
encoding, the start bodies, and that every task was started exactly once.

Slow and hung QRS calls use butlerd.qrs.timeoutMs = 1500 and
connectTimeoutMs = 1000, so no test waits for the 30 s default."""

import collections
import json
import os
import re
import threading
import time
import urllib.parse

import pytest

import harness
from harness import JSON_CT, PING_TEXT, Raw

from harness import CLIENT_CN, FIXTURE, SIM_DIR, X_QLIK_USER  # noqa: F401 (re-exported)
from qlik_sim import QlikSim, make_certs
TIMEOUT_MS = 1500
CONNECT_TIMEOUT_MS = 1000
TLS_REASON = re.compile(r"(?i)tls|ssl|certificate|handshake|verif|alert")

# ------------------------------------------------------------------ fixture tasks

T1 = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"     # Reload task of App1
T2 = "7552d9fc-d1bb-4975-9a38-18357de531ea"     # tag startTask1
T3 = "fb0f317d-da91-4b86-aafa-0174ae1e8c8f"     # tag startTask1, taskGroup=tasks2
T4 = "a4b0c6d2-3e1f-4a5b-9c8d-7e6f5a4b3c2d"     # taskGroup=tasks2
T5 = "16cd2478-6cf2-4133-8fc7-7e9b97a92337"     # tag startTask2
TOB = "3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"    # tag O'Brien
TFR = "5d6e7f80-9a1b-4c2d-9e3f-4a5b6c7d8e9f"    # tag Finance\Reports
TFN = "0fd6b2b1-8a7c-4d5e-a6f7-b8c9d0e1f2a3"    # taskGroup=tasks1, region=north
TEXT = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"   # external program, tag startTask3
TUS = "2b3c4d5e-6f70-4182-a394-b5c6d7e8f901"    # user sync (disabled), tag startTask3
MISSING = "0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b"  # well-formed, not in QRS
SEED_V2 = "abcd1234-5678-abcd-1234-abcd1234abcd"  # loose GUID, not a strict task ID

NAMES = {
    T1: "Reload task of App1", T2: "Reload task of App2", T3: "Reload task of App3",
    T4: "Reload task of App4", T5: "Hourly reload of App1", TOB: "Reload task for O'Brien",
    TFR: "Reload task of Finance\\Reports", TFN: "Reload task of Finance reports",
    TEXT: "Run external program", TUS: "User sync of LAB", SEED_V2: "Seed example task",
}

APPS = [("3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c01", "App1"),
        ("3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c02", "App2"),
        ("3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c03", "App3"),
        ("3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c04", "App4"),
        ("3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c05", "Finance reports")]

# the filter of spec 3.4 (used by examples 4 and 6)
FILTER_34 = {"taskId": [T1, T2], "tag": ["startTask1"], "cp": [("taskGroup", "tasks1")]}

REASONS, jdump, err, validation = harness.REASONS, harness.jdump, harness.err, harness.validation


FAILED_STARTING = err(500, "Failed starting task")
FAILED_APPS = err(500, "Failed getting list of Sense apps")


def tn(t):
    return {"taskId": t, "taskName": NAMES[t]}


def result(started=(), invalid=(), denied=(), tag=(), tag_denied=(), cp=(), cp_denied=(),
           failed=()):
    """The start-task answer of spec 3.5, members in spec order. failed:
    (taskId, statusCode[, message])."""
    fl = []
    for f in failed:
        t, s = f[0], f[1]
        msg = f[2] if len(f) > 2 else "QRS responded with HTTP %d" % s
        fl.append({"taskId": t, "taskName": NAMES[t], "statusCode": s, "message": msg})
    return {"tasksId": {"started": [tn(t) for t in started],
                        "invalid": [{"taskId": t} for t in invalid],
                        "denied": [{"taskId": t} for t in denied]},
            "tasksTag": [tn(t) for t in tag],
            "tasksTagDenied": [{"tag": t} for t in tag_denied],
            "tasksCP": [tn(t) for t in cp],
            "tasksCPDenied": [{"name": n, "value": v} for n, v in cp_denied],
            "tasksFailed": fl}


def check_json(r, expected, status=200):
    """Parsed equality (list order included), then the exact compact wire form
    with members in spec order (spec 1.7)."""
    assert r.status == status, r
    assert r.header("Content-Type") == JSON_CT, r
    got = json.loads(r.body.decode("utf-8"))
    assert got == expected, "\n got: %s\nwant: %s" % (got, expected)
    assert r.body == jdump(expected), "\n got: %r\nwant: %r" % (r.body, jdump(expected))
    assert r.header("Content-Length") == str(len(r.body)), r


def check_bytes(r, status, body):
    assert r.status == status, r
    assert r.body == body, "\n got: %r\nwant: %r" % (r.body, body)
    assert r.header("Content-Type") == JSON_CT, r


def check_error_regex(r, status, pattern):
    """An error body of spec 1.8 whose message matches pattern; returns the message."""
    assert r.status == status, r
    assert r.header("Content-Type") == JSON_CT, r
    d = json.loads(r.body.decode("utf-8"))
    assert list(d) == ["statusCode", "error", "message"], d
    assert d["statusCode"] == status and d["error"] == REASONS[status], d
    assert re.fullmatch(pattern, d["message"]), d
    return d["message"]


def item_id(t):
    return {"type": "starttaskid", "payload": {"taskId": t}}


def item_tag(tag):
    return {"type": "starttasktag", "payload": {"tag": tag}}


def item_cp(name, value):
    return {"type": "starttaskcustomproperty",
            "payload": {"customPropertyName": name, "customPropertyValue": value}}


def item_kv(ns, key, value, ttl=None):
    p = {"namespace": ns, "key": key, "value": value}
    if ttl is not None:
        p["ttl"] = ttl
    return {"type": "keyvaluestore", "payload": p}


def start(d, task="-", body=b"[]", query="", method="PUT", ctype="application/json",
          timeout=15):
    if body is not None and not isinstance(body, bytes):
        body = jdump(body)
    hdrs = {"Content-Type": ctype} if ctype else {}
    return d.request(method, "/v4/reloadtask/%s/start%s" % (task, query), hdrs, body, timeout)


def kv_get(d, ns, key):
    return d.get("/v4/keyvalues/%s?key=%s" % (urllib.parse.quote(ns, safe=""),
                                              urllib.parse.quote(key, safe="")))


def tag_filter(tag):
    return "tags.name eq '%s'" % tag.replace("\\", "\\\\").replace("'", "\\'")


def cp_filter(name, value):
    q = lambda s: s.replace("\\", "\\\\").replace("'", "\\'")  # noqa: E731
    return ("(customProperties.definition.name eq '%s') and (customProperties.value eq '%s')"
            % (q(name), q(value)))


def id_filter(t):
    return "id eq " + t


def enc(f):
    """Spec 1.12: RFC 3986 unreserved characters as they are, the rest %XX."""
    return urllib.parse.quote(f, safe="")


def upper_hex(s):
    return re.sub(r"%[0-9a-fA-F]{2}", lambda m: m.group(0).upper(), s)


XRF = re.compile(r"[A-Za-z0-9]{16}\Z")


def check_recorded(sim, cn=CLIENT_CN):
    """Every request the simulator got follows spec 1.12 / 3.3. Returns them."""
    reqs = sim.requests
    keys = []
    for r in reqs:
        what = "%s %s?%s" % (r.method, r.path, r.query)
        hk = r.headers.get("X-Qlik-Xrfkey")
        assert hk is not None and XRF.match(hk), what
        qk = [urllib.parse.unquote(v) for k, _, v in
              (p.partition("=") for p in r.query.split("&") if p) if k.lower() == "xrfkey"]
        assert qk == [hk], (what, hk)
        keys.append(hk)
        assert r.headers.get("X-Qlik-User") == X_QLIK_USER, (what, dict(r.headers))
        assert r.headers.get("Content-Type") == "application/json", (what, dict(r.headers))
        assert r.client_cert and r.client_cn == cn, (what, r.client_cn)
        if r.method == "GET":
            assert r.path in ("/qrs/task", "/qrs/task/full", "/qrs/app"), what
            assert r.body == b"", what
            if r.filter is None:
                assert r.query == "xrfkey=" + hk, what
            else:
                assert upper_hex(r.query) == "filter=%s&xrfkey=%s" % (enc(r.filter), hk), what
        else:
            assert r.method == "POST", what
            assert re.fullmatch(r"/qrs/task/[0-9a-f-]{36}/start", r.path), what
            assert r.query == "xrfkey=" + hk, what
            assert r.body == b"{}", (what, r.body)
    assert len(set(keys)) == len(keys), "xrfkey reused: %s" % keys
    return reqs


def split_terms(f):
    """The values of one batched lookup filter: "A or B or C" -> [A, B, C], where a
    custom-property pair "((n) and (v))" is unwrapped to "(n) and (v)". " or "
    inside quotes is part of a value."""
    terms, cur, i, quoted = [], [], 0, False
    while i < len(f):
        c = f[i]
        if quoted and c == "\\":
            cur.append(f[i:i + 2])
            i += 2
            continue
        if c == "'":
            quoted = not quoted
        if not quoted and f.startswith(" or ", i):
            terms.append("".join(cur))
            cur, i = [], i + 4
            continue
        cur.append(c)
        i += 1
    terms.append("".join(cur))
    if len(terms) > 1:
        terms = [t[1:-1] if t.startswith("((") else t for t in terms]
    return terms


def lookups(sim, path):
    """Sorted decoded filter terms of GET <path>: the values looked up, whether one
    call asked for one or many (doc/butlerd.8: lookups are batched)."""
    return sorted(t for r in sim.requests if r.method == "GET" and r.path == path
                  for t in split_terms(r.filter))


def id_checks(sim):
    return lookups(sim, "/qrs/task")


def tag_cp_lookups(sim):
    return lookups(sim, "/qrs/task/full")


def started(sim):
    """Task IDs butlerd asked to start, as a multiset (starts may run in parallel)."""
    return collections.Counter(sim.starts())


def once(*ids):
    return collections.Counter(ids)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture
def sim(certs):
    s = QlikSim(fixture_path=FIXTURE, certs_dir=os.path.dirname(certs["root.pem"])).start()
    yield s
    s.stop()


def filter_cfg(f):
    cps = ", ".join('{ name = "%s"; value = "%s"; }' % (n, v) for n, v in f.get("cp", ()))
    allow = {"taskId": list(f["taskId"]), "tag": list(f["tag"])}
    if cps:
        allow["customProperty"] = Raw("( %s )" % cps)
    return {"enable": True, "allowTask": allow}


@pytest.fixture
def butler(start_daemon, sim, certs):
    """Factory: butler(filter=None, short=False, cert=, key=, ca=, reject=True,
    qrs_port=None, endpoints=None) -> a running butlerd talking to `sim`."""

    def make(filter=None, short=False, cert="client.pem", key="client_key.pem", ca="root.pem",
             reject=True, qrs_port=None, endpoints=None, workers=2, more=None):
        ep = {"senseStartTask": True, "senseListApps": True, "keyValueStore": True}
        ep.update(endpoints or {})
        ov = {
            "Butler": {
                "restServerEndpointsEnable": ep,
                "cert": {"clientCert": certs[cert], "clientCertKey": certs[key],
                         "clientCertCA": certs[ca]},
                "configQRS": {
                    "host": "127.0.0.1", "port": qrs_port or sim.qrs_port, "useSSL": True,
                    "rejectUnauthorized": reject,
                    "headers": {"static": Raw('( { name = "X-Qlik-User"; value = "%s"; } )'
                                              % X_QLIK_USER)},
                },
                "startTaskFilter": filter_cfg(filter) if filter else {"enable": False},
            },
        }
        if short:
            ov["butlerd"] = {"qrs": {"timeoutMs": TIMEOUT_MS,
                                     "connectTimeoutMs": CONNECT_TIMEOUT_MS}}
        harness.merge(ov, more or {})
        return start_daemon(ov, workers=workers)

    return make


def timed(fn, *a, **kw):
    t0 = time.monotonic()
    r = fn(*a, **kw)
    return r, time.monotonic() - t0


# ================================================================== seed examples 1-4


def test_example1_start_one_task_by_id(sim, butler):
    d = butler()
    r = start(d, T1, b"[]", ctype="application/json; charset=utf-8")
    check_bytes(r, 200, b'{"tasksId":{"started":[{"taskId":"e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e",'
                b'"taskName":"Reload task of App1"}],"invalid":[],"denied":[]},"tasksTag":[],'
                b'"tasksTagDenied":[],"tasksCP":[],"tasksCPDenied":[],"tasksFailed":[]}')
    reqs = check_recorded(sim)
    assert [(q.method, q.path, q.filter) for q in reqs] == [
        ("GET", "/qrs/task", id_filter(T1)), ("POST", "/qrs/task/%s/start" % T1, None)]
    # spec 3.3 encoded example
    assert reqs[0].query == "filter=id%20eq%20e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e&xrfkey=" + \
        reqs[0].xrfkey
    assert sim.starts(accepted_only=True) == [T1]
    assert [s["taskId"] for s in sim.started_tasks] == [T1]


def test_example2_invalid_task_id_no_qrs_call(sim, butler):
    d = butler()
    r = start(d, "abc123", b"[]", ctype="application/json; charset=utf-8")
    check_bytes(r, 200, b'{"tasksId":{"started":[],"invalid":[{"taskId":"abc123"}],"denied":[]},'
                b'"tasksTag":[],"tasksTagDenied":[],"tasksCP":[],"tasksCPDenied":[],'
                b'"tasksFailed":[]}')
    assert sim.requests == []


def test_example3_two_ids_in_body_with_magic_dash(sim, butler):
    d = butler()
    body = (b'[{"type":"starttaskid","payload":{"taskId":"7552d9fc-d1bb-4975-9a38-18357de531ea"}},'
            b'{"type":"starttaskid","payload":{"taskId":"fb0f317d-da91-4b86-aafa-0174ae1e8c8f"}}]')
    r = start(d, "-", body, ctype="application/json; charset=utf-8")
    expected = json.loads("""{
      "tasksId": {
        "started": [
          {"taskId": "7552d9fc-d1bb-4975-9a38-18357de531ea", "taskName": "Reload task of App2"},
          {"taskId": "fb0f317d-da91-4b86-aafa-0174ae1e8c8f", "taskName": "Reload task of App3"}
        ],
        "invalid": [],
        "denied": []
      },
      "tasksTag": [],
      "tasksTagDenied": [],
      "tasksCP": [],
      "tasksCPDenied": [],
      "tasksFailed": []
    }""")
    check_json(r, expected)
    check_recorded(sim)
    assert id_checks(sim) == sorted([id_filter(T2), id_filter(T3)])
    assert tag_cp_lookups(sim) == []
    assert started(sim) == once(T2, T3)


def test_example4_filter_on_all_ids_must_exist(sim, butler):
    d = butler(filter=FILTER_34)
    body = (b'[{"type":"starttaskid","payload":{"taskId":"7552d9fc-d1bb-4975-9a38-18357de531ea"}},'
            b'{"type":"starttaskid","payload":{"taskId":"fb0f317d-da91-4b86-aafa-0174ae1e8c8"}}]')
    r = start(d, T1, body, query="?allTaskIdsMustExist=true",
              ctype="application/json; charset=utf-8")
    expected = json.loads("""{
      "tasksId": {
        "started": [],
        "invalid": [{"taskId": "fb0f317d-da91-4b86-aafa-0174ae1e8c8"}],
        "denied": [
          {"taskId": "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"},
          {"taskId": "7552d9fc-d1bb-4975-9a38-18357de531ea"}
        ]
      },
      "tasksTag": [],
      "tasksTagDenied": [],
      "tasksCP": [],
      "tasksCPDenied": [],
      "tasksFailed": []
    }""")
    check_json(r, expected)
    check_recorded(sim)
    assert sim.starts() == []
    # the malformed ID never reaches QRS
    assert all("fb0f317d" not in f for f in sim.filters())


# ================================================================== examples 5-9


EX5_BODY = (b'[{"type":"keyvaluestore","payload":{"namespace":"MyFineNamespace","key":"AnImportantKey",'
            b'"value":"TheValue","ttl":10000}},{"type":"starttaskid","payload":{"taskId":'
            b'"7552d9fc-d1bb-4975-9a38-18357de531ea"}},{"type":"starttasktag","payload":{"tag":'
            b'"startTask1"}},{"type":"starttaskcustomproperty","payload":{"customPropertyName":'
            b'"taskGroup","customPropertyValue":"tasks2"}}]')


def test_example5_all_selectors_one_task_chosen_three_ways(sim, butler):
    d = butler()
    r = start(d, "-", EX5_BODY)
    expected = json.loads("""{
      "tasksId": {
        "started": [{"taskId": "7552d9fc-d1bb-4975-9a38-18357de531ea", "taskName": "Reload task of App2"}],
        "invalid": [],
        "denied": []
      },
      "tasksTag": [
        {"taskId": "7552d9fc-d1bb-4975-9a38-18357de531ea", "taskName": "Reload task of App2"},
        {"taskId": "fb0f317d-da91-4b86-aafa-0174ae1e8c8f", "taskName": "Reload task of App3"}
      ],
      "tasksTagDenied": [],
      "tasksCP": [
        {"taskId": "fb0f317d-da91-4b86-aafa-0174ae1e8c8f", "taskName": "Reload task of App3"},
        {"taskId": "a4b0c6d2-3e1f-4a5b-9c8d-7e6f5a4b3c2d", "taskName": "Reload task of App4"}
      ],
      "tasksCPDenied": [],
      "tasksFailed": []
    }""")
    check_json(r, expected)
    reqs = check_recorded(sim)
    # three distinct tasks, three start calls
    assert started(sim) == once(T2, T3, T4)
    assert id_checks(sim) == [id_filter(T2)]
    assert tag_cp_lookups(sim) == sorted([tag_filter("startTask1"), cp_filter("taskGroup", "tasks2")])
    # spec 3.3 encoded examples
    raw = sorted(upper_hex(q.query.rsplit("&xrfkey=", 1)[0]) for q in reqs
                 if q.path == "/qrs/task/full")
    assert raw == sorted([
        "filter=tags.name%20eq%20%27startTask1%27",
        "filter=%28customProperties.definition.name%20eq%20%27taskGroup%27%29%20and%20"
        "%28customProperties.value%20eq%20%27tasks2%27%29"])
    g = kv_get(d, "MyFineNamespace", "AnImportantKey")
    assert g.status == 200, g
    v = json.loads(g.body)
    assert list(v) == ["namespace", "key", "value", "ttl"], v
    assert v["value"] == "TheValue" and 0 < v["ttl"] <= 10000, v


def test_kv_items_are_stored_before_any_start(sim, butler):
    d = butler()
    sim.set_behaviour(r"^/qrs/task/[^/]+/start$", delay=0.6)
    body = [item_id(T1), item_kv("order", "k", "stored-first")]
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", start(d, "-", body)))
    th.start()
    try:
        sim.wait_for_requests(1, r"/start$", timeout=5)
        # the start request is in flight: the KV item (after it in the body) is already there
        g = kv_get(d, "order", "k")
        check_bytes(g, 200, b'{"namespace":"order","key":"k","value":"stored-first"}')
    finally:
        th.join(10)
    check_json(out["r"], result(started=[T1]))


def test_example6_filter_on_upper_case_url_denials_one_start_refused(sim, butler):
    d = butler(filter=FILTER_34)
    b503 = sim.set_behaviour(r"^/qrs/task/%s/start$" % T2, status=503, method="POST")
    body = (b'[{"type":"starttasktag","payload":{"tag":"startTask2"}},{"type":"starttaskcustomproperty",'
            b'"payload":{"customPropertyName":"taskGroup","customPropertyValue":"tasks2"}},'
            b'{"type":"starttaskid","payload":{"taskId":"16cd2478-6cf2-4133-8fc7-7e9b97a92337"}},'
            b'{"type":"starttaskid","payload":{"taskId":"7552d9fc-d1bb-4975-9a38-18357de531ea"}}]')
    r = start(d, "E3B27F50-B1C0-4879-88FC-C7CDD9C1CF3E", body)
    expected = json.loads("""{
      "tasksId": {
        "started": [{"taskId": "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e", "taskName": "Reload task of App1"}],
        "invalid": [],
        "denied": [{"taskId": "16cd2478-6cf2-4133-8fc7-7e9b97a92337"}]
      },
      "tasksTag": [],
      "tasksTagDenied": [{"tag": "startTask2"}],
      "tasksCP": [],
      "tasksCPDenied": [{"name": "taskGroup", "value": "tasks2"}],
      "tasksFailed": [
        {"taskId": "7552d9fc-d1bb-4975-9a38-18357de531ea", "taskName": "Reload task of App2", "statusCode": 503, "message": "QRS responded with HTTP 503"}
      ]
    }""")
    check_json(r, expected)
    check_recorded(sim)
    assert b503.applied == 1
    assert started(sim) == once(T1, T2)           # lower-cased in the QRS path
    assert sim.starts(accepted_only=True) == [T1]
    # denied selectors are never looked up; the denied ID is not checked for existence
    assert tag_cp_lookups(sim) == []
    assert id_checks(sim) == sorted([id_filter(T1), id_filter(T2)])


def test_example7_kv_item_and_bad_id(sim, butler):
    d = butler()
    body = (b'[{"type":"keyvaluestore","payload":{"namespace":"ns2","key":"fromtask","value":"yes",'
            b'"ttl":0}},{"type":"starttaskid","payload":{"taskId":"bad-id"}}]')
    r = start(d, "-", body)
    check_bytes(r, 200, b'{"tasksId":{"started":[],"invalid":[{"taskId":"bad-id"}],"denied":[]},'
                b'"tasksTag":[],"tasksTagDenied":[],"tasksCP":[],"tasksCPDenied":[],'
                b'"tasksFailed":[]}')
    g = d.get("/v4/keyvalues/ns2?key=fromtask")
    check_bytes(g, 200, b'{"namespace":"ns2","key":"fromtask","value":"yes"}')
    assert sim.requests == []


def test_example8_qrs_refused(sim, butler):
    """Simulator stopped (connection refused): existence check -> invalid; tag and
    custom-property lookups -> 500; /v2 -> 502; apps list -> 500. After a restart on
    the same port everything works again (the cut keep-alive connection is not reused)."""
    d = butler(short=True)
    check_json(start(d, T1), result(started=[T1]))      # warm a keep-alive connection
    sim.stop()
    sim.clear()

    r, dt = timed(start, d, MISSING, b"[]")
    check_bytes(r, 200, b'{"tasksId":{"started":[],"invalid":[{"taskId":'
                b'"0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b"}],"denied":[]},"tasksTag":[],'
                b'"tasksTagDenied":[],"tasksCP":[],"tasksCPDenied":[],"tasksFailed":[]}')
    assert dt < 3.0, dt

    # lookup without an HTTP answer: 500, nothing started, earlier KV items kept
    body = [item_kv("down", "before", "kept"), item_id(T1), item_tag("startTask1"),
            item_kv("down", "after", "x")]
    r, dt = timed(start, d, "-", body)
    check_bytes(r, 500, FAILED_STARTING)
    assert dt < 3.0, dt
    check_bytes(kv_get(d, "down", "before"), 200,
                b'{"namespace":"down","key":"before","value":"kept"}')

    r, dt = timed(start, d, "-", [item_cp("taskGroup", "tasks2")])
    check_bytes(r, 500, FAILED_STARTING)
    assert dt < 3.0, dt

    r, dt = timed(d.get, "/v2/senseStartTask?taskId=" + T1)
    msg = check_error_regex(r, 502, r"QRS request failed: .+")
    assert "refused" in msg, msg
    assert dt < 3.0, dt

    r, dt = timed(d.get, "/v4/senselistapps")
    check_bytes(r, 500, FAILED_APPS)
    assert dt < 3.0, dt

    sim.start()
    assert sim.requests == []
    check_json(start(d, T1), result(started=[T1]))
    check_recorded(sim)
    assert sim.starts() == [T1]


VALIDATION = [
    # (case, URL task, query, content type, body, expected body)
    ("no body", "-", "", "application/json", None, validation("body must be array")),
    ("object body", "-", "", "application/json", b'{"type":"keyvaluestore"}',
     validation("body must be array")),
    ("unknown type", "-", "", "application/json", b'[{"type":"starttask","payload":{}}]',
     validation("body/0/type must be equal to one of the allowed values")),
    ("no payload", "-", "", "application/json", b'[{"type":"starttaskid"}]',
     validation("body/0 must have required property 'payload'")),
    ("empty URL task", "", "", "application/json", b"[]",
     err(400, 'Required parameter (task ID) missing. Should be a task ID or "-" if task info '
         'is passed in body')),
    # further rows of spec 3.1 / 2.14
    ("empty URL task, bad body", "", "", "application/json", b"{}",
     validation("body must be array")),
    # spec 1.6: a scalar where an array is expected becomes a one-element array
    ("string body", "-", "", "application/json", b'"x"', validation("body/0 must be object")),
    ("item not object", "-", "", "application/json", b"[1]", validation("body/0 must be object")),
    ("second item bad", "-", "", "application/json",
     b'[{"type":"starttaskid","payload":{"taskId":"x"}},"y",{"type":"nope"}]',
     validation("body/1 must be object")),
    ("payload not object", "-", "", "application/json", b'[{"type":"starttaskid","payload":"x"}]',
     validation("body/0/payload must be object")),
    ("no taskId", "-", "", "application/json", b'[{"type":"starttaskid","payload":{}}]',
     validation("body/0/payload must have required property 'taskId'")),
    ("no tag", "-", "", "application/json", b'[{"type":"starttasktag","payload":{"x":1}}]',
     validation("body/0/payload must have required property 'tag'")),
    ("no cp name", "-", "", "application/json",
     b'[{"type":"starttaskcustomproperty","payload":{"customPropertyValue":"v"}}]',
     validation("body/0/payload must have required property 'customPropertyName'")),
    ("no cp value", "-", "", "application/json",
     b'[{"type":"starttaskcustomproperty","payload":{"customPropertyName":"n"}}]',
     validation("body/0/payload must have required property 'customPropertyValue'")),
    ("taskId object", "-", "", "application/json",
     b'[{"type":"starttaskid","payload":{"taskId":{"a":1}}}]',
     validation("body/0/payload/taskId must be string")),
    ("index 2", "-", "", "application/json",
     b'[{"type":"starttaskid","payload":{"taskId":"x"}},{},{"type":"starttasktag"}]',
     validation("body/2 must have required property 'payload'")),
    ("bad query boolean", "-", "?allTaskIdsMustExist=yes", "application/json", b"[]",
     validation("querystring/allTaskIdsMustExist must be boolean")),
    ("body before query", "-", "?allTaskIdsMustExist=yes", "application/json", b"{}",
     validation("body must be array")),
    ("text/plain body", "-", "", "text/plain", b"[]", validation("body/0 must be object")),
    ("invalid JSON", "-", "", "application/json", b"[{",
     jdump({"statusCode": 400, "code": "FST_ERR_CTP_INVALID_JSON_BODY", "error": "Bad Request",
            "message": "Body is not valid JSON but content-type is set to 'application/json'"})),
    ("no media type", "-", "", None, b"[]",
     jdump({"statusCode": 415, "code": "FST_ERR_CTP_INVALID_MEDIA_TYPE",
            "error": "Unsupported Media Type", "message": "Unsupported Media Type"})),
]


@pytest.mark.parametrize("case,task,query,ctype,body,expected", VALIDATION,
                         ids=[v[0] for v in VALIDATION])
def test_example9_validation_errors(sim, butler, case, task, query, ctype, body, expected):
    d = butler()
    for method in ("PUT", "POST"):
        r = start(d, task, body, query=query, method=method, ctype=ctype)
        check_bytes(r, json.loads(expected)["statusCode"], expected)
    assert sim.requests == []


def test_no_body_variants(sim, butler):
    """No body in every form (no Content-Length, Content-Length: 0 with and without a
    media type, an empty chunked body): 400 body must be array (spec 1.4)."""
    d = butler()
    expected = validation("body must be array")
    heads = [
        "PUT /v4/reloadtask/-/start HTTP/1.1\r\nHost: x\r\n\r\n",
        "PUT /v4/reloadtask/%s/start HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % T1,
        "POST /v4/reloadtask/-/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 0\r\n\r\n",
        "PUT /v4/reloadtask/-/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ]
    with d.raw() as c:
        for h in heads:
            c.send(h)
            r = c.read_response()
            check_bytes(r, 400, expected)
    assert sim.requests == []


def test_items_without_type_ignored_and_numeric_task_id(sim, butler):
    d = butler()
    body = b'[{"payload":{"taskId":"%s"}},{"foo":1},{"type":"starttaskid","payload":{"taskId":123,' \
           b'"extra":true}}]' % T1.encode()
    check_json(start(d, "-", body), result(invalid=["123"]))
    assert sim.requests == []


# ================================================================== tags and custom properties


def test_tags(sim, butler):
    d = butler()
    r = start(d, "-", [item_tag("startTask1"), item_tag("startTask2"), item_tag("no such tag")])
    check_json(r, result(tag=[T2, T3, T5]))
    check_recorded(sim)
    assert tag_cp_lookups(sim) == sorted([tag_filter("startTask1"), tag_filter("startTask2"),
                                          "tags.name eq 'no such tag'"])
    assert id_checks(sim) == []
    assert started(sim) == once(T2, T3, T5)


def test_tag_matched_twice_listed_twice_started_once(sim, butler):
    d = butler()
    r = start(d, "-", [item_tag("startTask1"), item_tag("startTask1")])
    check_json(r, result(tag=[T2, T3, T2, T3]))
    check_recorded(sim)
    assert started(sim) == once(T2, T3)


def test_tag_non_reload_task_types(sim, butler):
    d = butler()
    check_json(start(d, "-", [item_tag("startTask3")]), result(tag=[TEXT, TUS]))
    check_recorded(sim)
    assert started(sim) == once(TEXT, TUS)


def test_tag_with_quote_and_backslash(sim, butler):
    d = butler()
    r = start(d, "-", [item_tag("O'Brien"), item_tag("Finance\\Reports")])
    check_json(r, result(tag=[TOB, TFR]))
    reqs = check_recorded(sim)
    # both tags in one lookup (batched, doc/butlerd.8)
    assert sim.filters(r"^/qrs/task/full$") == [
        "tags.name eq 'O\\'Brien' or tags.name eq 'Finance\\\\Reports'"]
    raw = [upper_hex(q.query.rsplit("&xrfkey=", 1)[0]) for q in reqs
           if q.path == "/qrs/task/full"]
    assert raw == ["filter=tags.name%20eq%20%27O%5C%27Brien%27%20or%20"
                   "tags.name%20eq%20%27Finance%5C%5CReports%27"]
    assert started(sim) == once(TOB, TFR)


def test_custom_properties(sim, butler):
    d = butler()
    r = start(d, "-", [item_cp("taskGroup", "tasks2"), item_cp("taskGroup", "tasks1"),
                       item_cp("region", "north"), item_cp("taskGroup", "nothing")])
    check_json(r, result(cp=[T3, T4, TFN, TFN]))
    check_recorded(sim)
    assert tag_cp_lookups(sim) == sorted([cp_filter("taskGroup", "tasks2"),
                                          cp_filter("taskGroup", "tasks1"),
                                          cp_filter("region", "north"),
                                          cp_filter("taskGroup", "nothing")])
    assert started(sim) == once(T3, T4, TFN)


def test_custom_property_quote_and_backslash_in_filter(sim, butler):
    d = butler()
    r = start(d, "-", [item_cp("it's", "C:\\x'y")])
    check_json(r, result())
    check_recorded(sim)
    assert sim.filters() == [
        "(customProperties.definition.name eq 'it\\'s') and (customProperties.value eq 'C:\\\\x\\'y')"]
    assert sim.requests[0].status == 200          # QRS could parse it
    assert sim.starts() == []


def test_all_selectors_each_task_started_once(sim, butler):
    d = butler()
    body = [item_id(T3), item_tag("startTask1"), item_cp("taskGroup", "tasks2"),
            item_id(T3.upper()), item_tag("O'Brien"), item_cp("taskGroup", "tasks1"),
            item_id(MISSING), item_id("nope")]
    r = start(d, T2, body)
    check_json(r, result(started=[T2, T3, T3], invalid=[MISSING, "nope"],
                         tag=[T2, T3, TOB], cp=[T3, T4, TFN]))
    check_recorded(sim)
    assert started(sim) == once(T2, T3, T4, TOB, TFN)


def test_response_order_is_request_order_with_parallel_starts(sim, butler):
    """Spec 3.3: lookups and starts may run in parallel, the lists keep the order of
    sequential processing. The first starts are answered last."""
    d = butler()
    sim.set_behaviour(r"^/qrs/task/%s/start$" % T1, delay=0.4)
    sim.set_behaviour(r"^/qrs/task/%s/start$" % T4, delay=0.2)
    sim.set_behaviour(r"^/qrs/task/full$", delay=0.1, times=1)
    body = [item_id(T1), item_cp("taskGroup", "tasks2"), item_id(T4), item_tag("startTask3"),
            item_id(TFN), item_tag("startTask1")]
    check_json(start(d, "-", body), result(started=[T1, T4, TFN], cp=[T3, T4], tag=[TEXT, TUS, T2, T3]))
    check_recorded(sim)
    assert started(sim) == once(T1, T4, TFN, T3, TEXT, TUS, T2)


def test_at_most_8_qrs_calls_in_flight(sim, butler):
    """Spec 3.3: at most 8 QRS calls in flight per request; the result keeps QRS order."""
    d = butler()
    base = sim.find_task(T2)
    many = ["%08x-0000-4000-8000-%012x" % (0x5eed0000 + i, i) for i in range(14)]
    for i, t in enumerate(many):
        NAMES[t] = "Many %02d" % i
        sim.tasks.append(dict(base, id=t, name=NAMES[t],
                              tags=[{"id": "6e0c9d7f-0000-4000-8000-00000000aaaa", "name": "many"}]))
    sim.set_behaviour(r"^/qrs/task/[^/]+/start$", delay=0.25)
    check_json(start(d, "-", [item_tag("many")]), result(tag=many))
    assert started(sim) == once(*many)
    spans = [(q.time, q.answered_at) for q in sim.requests if q.method == "POST"]
    peak = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert 1 <= peak <= 8, peak


def test_put_and_post_are_identical(sim, butler):
    d = butler()
    body = [item_id(T1), item_tag("startTask2")]
    check_json(start(d, "-", body, method="PUT"), result(started=[T1], tag=[T5]))
    check_json(start(d, "-", body, method="POST"), result(started=[T1], tag=[T5]))
    r = d.request("POST", "/v4/reloadtask/-/start",
                  {"Content-Type": "application/json", "X-HTTP-Method-Override": "put"}, jdump(body))
    check_json(r, result(started=[T1], tag=[T5]))
    check_recorded(sim)
    assert started(sim) == collections.Counter({T1: 3, T5: 3})


# ================================================================== IDs, filter, allTaskIdsMustExist


def test_upper_case_guids_normalised(sim, butler):
    d = butler()
    r = start(d, T1.upper(), [item_id(T2.upper()), item_id("FB0F317D-da91-4b86-AAFA-0174ae1e8c8f"),
                              item_id(MISSING.upper()), item_id("ABC-XYZ")])
    check_json(r, result(started=[T1, T2, T3], invalid=[MISSING, "ABC-XYZ"]))
    check_recorded(sim)
    assert id_checks(sim) == sorted(id_filter(t) for t in (T1, T2, T3, MISSING))
    assert started(sim) == once(T1, T2, T3)


def test_duplicate_ids_listed_twice_started_once(sim, butler):
    d = butler()
    r = start(d, T1, [item_id(T1.upper()), item_id(T1)])
    check_json(r, result(started=[T1, T1, T1]))
    check_recorded(sim)
    assert started(sim) == once(T1)


def test_strict_task_id_syntax(sim, butler):
    """Strict pattern (spec 1.11): third group [0-5]xxx, fourth group [089ab]xxx.
    A loose-only GUID, a braced one and one with spaces are invalid and never sent to QRS."""
    d = butler()
    bad = [SEED_V2, "{%s}" % T1, " %s" % T1, T1 + "0", T1.replace("-", ""),
           "e3b27f50-b1c0-6879-88fc-c7cdd9c1cf3e", "e3b27f50-b1c0-4879-c8fc-c7cdd9c1cf3e"]
    r = start(d, "-", [item_id(b) for b in bad])
    check_json(r, result(invalid=bad))
    assert sim.requests == []


def test_filter_off_starts_any_existing_task(sim, butler):
    d = butler()
    r = start(d, T5, [item_id(T3), item_tag("startTask2"), item_cp("taskGroup", "tasks1")])
    check_json(r, result(started=[T5, T3], tag=[T5], cp=[TFN]))
    check_recorded(sim)
    assert started(sim) == once(T5, T3, TFN)


def test_filter_on_each_list_checked_on_its_own(sim, butler):
    d = butler(filter=FILTER_34)
    body = [item_tag("startTask1"), item_tag("StartTask1"), item_cp("taskGroup", "tasks1"),
            item_cp("taskGroup", "tasks2"), item_cp("TaskGroup", "tasks1"),
            item_id(T3),             # carries the allowed tag startTask1, but its ID is not listed
            item_id(T2.upper()), item_id("not-a-guid")]
    r = start(d, "-", body)
    check_json(r, result(started=[T2], invalid=["not-a-guid"], denied=[T3], tag=[T2, T3],
                         tag_denied=["StartTask1"], cp=[TFN],
                         cp_denied=[("taskGroup", "tasks2"), ("TaskGroup", "tasks1")]))
    check_recorded(sim)
    assert tag_cp_lookups(sim) == sorted([tag_filter("startTask1"), cp_filter("taskGroup", "tasks1")])
    assert id_checks(sim) == [id_filter(T2)]          # denied T3 is not checked
    assert started(sim) == once(T2, T3, TFN)


def test_filter_allow_list_ids_are_lower_cased(sim, butler):
    d = butler(filter={"taskId": [T4.upper(), "not-a-task-id"], "tag": ["x"]})
    check_json(start(d, T4, []), result(started=[T4]))
    check_json(start(d, "-", [item_id("not-a-task-id"), item_id(T1)]),
               result(invalid=["not-a-task-id"], denied=[T1]))
    assert started(sim) == once(T4)


def test_all_task_ids_must_exist_without_invalid_ids(sim, butler):
    d = butler()
    r = start(d, T1, [item_id(T2), item_tag("startTask2")], query="?allTaskIdsMustExist=true")
    check_json(r, result(started=[T1, T2], tag=[T5]))
    assert started(sim) == once(T1, T2, T5)


def test_all_task_ids_must_exist_with_missing_id_keeps_tags(sim, butler):
    d = butler()
    r = start(d, T1, [item_id(MISSING), item_tag("startTask1"), item_id(T4),
                      item_cp("taskGroup", "tasks1")], query="?allTaskIdsMustExist=true")
    check_json(r, result(invalid=[MISSING], denied=[T1, T4], tag=[T2, T3], cp=[TFN]))
    check_recorded(sim)
    assert started(sim) == once(T2, T3, TFN)


def test_all_task_ids_must_exist_false_starts_valid_ids(sim, butler):
    d = butler()
    for q in ("?allTaskIdsMustExist=false", ""):
        sim.clear()
        r = start(d, T1, [item_id("bad"), item_id(MISSING)], query=q)
        check_json(r, result(started=[T1], invalid=["bad", MISSING]))
        assert started(sim) == once(T1)


def test_all_task_ids_must_exist_denied_after_filter_denials(sim, butler):
    d = butler(filter=FILTER_34)
    r = start(d, T1, [item_id(T5), item_id("bad"), item_id(T2)], query="?allTaskIdsMustExist=true")
    check_json(r, result(invalid=["bad"], denied=[T5, T1, T2]))
    assert sim.starts() == []


def test_task_id_in_url_and_body_with_tag_duplicates(sim, butler):
    """A task chosen by ID and by tag is in tasksId.started and in tasksTag, started once."""
    d = butler()
    check_json(start(d, T2, [item_tag("startTask1")]), result(started=[T2], tag=[T2, T3]))
    assert started(sim) == once(T2, T3)


# ================================================================== key-value items


def test_kv_items_coercion_and_skips(sim, butler):
    d = butler()
    body = [
        item_kv("kvi", "str", "text"),
        item_kv("kvi", "num", 5),
        item_kv("kvi", "bool", True),
        item_kv("kvi", "obj", {"a": [1, "x"]}),
        item_kv("kvi", "arr", [1, "x"]),
        item_kv("kvi", "ttlstr", "t", "3000"),
        item_kv("kvi", "ttlfrac", "t", 2500.9),
        item_kv("kvi", "ttlempty", "t", ""),
        item_kv("kvi", "ttlneg", "t", -5),
        item_kv("kvi", "ttlbad", "t", "abc"),
        # skipped: a value that is null, "", false or 0, or no value
        item_kv("kvi", "s1", ""), item_kv("kvi", "s2", 0), item_kv("kvi", "s3", False),
        item_kv("kvi", "s4", None), {"type": "keyvaluestore", "payload": {"namespace": "kvi",
                                                                          "key": "s5"}},
        item_kv("", "s6", "v"), item_kv("kvskip", "", "v"), item_kv(0, "s7", "v"),
        item_kv("kvi", "s8", "x" * 5000),            # over kvMaxValueBytes (4096): logged, skipped
        item_kv("kvi", 7, "seven"),                  # a number key is used as a string
        {"type": "keyvaluestore", "payload": {}},
        item_id(T1),
    ]
    check_json(start(d, "-", body), result(started=[T1]))
    for key, value in [("str", "text"), ("num", "5"), ("bool", "true"),
                       ("obj", '{"a":[1,"x"]}'), ("arr", '[1,"x"]'), ("ttlempty", "t"),
                       ("ttlneg", "t"), ("ttlbad", "t"), ("7", "seven")]:
        check_bytes(kv_get(d, "kvi", key), 200,
                    jdump({"namespace": "kvi", "key": key, "value": value}))
    for key, limit in [("ttlstr", 3000), ("ttlfrac", 2500)]:
        g = kv_get(d, "kvi", key)
        assert g.status == 200, g
        v = json.loads(g.body)
        assert v["value"] == "t" and 0 < v["ttl"] <= limit, (key, v)
    for key in ("s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"):
        check_bytes(kv_get(d, "kvi", key), 400,
                    err(400, "Key '%s' not found in namespace: kvi" % key))
    check_bytes(kv_get(d, "kvskip", "x"), 400, err(400, "Namespace not found: kvskip"))
    r = d.get("/v4/keyvaluesnamespaces")
    check_bytes(r, 200, b'["kvi"]')


def test_kv_items_skipped_when_kv_store_disabled(sim, butler):
    d = butler(endpoints={"keyValueStore": False})
    check_json(start(d, "-", [item_kv("off", "k", "v"), item_id(T1)]), result(started=[T1]))
    assert d.get("/v4/keyvalues/off?key=k").status == 404
    assert started(sim) == once(T1)


# ================================================================== QRS failures


def test_qrs_start_returns_500(sim, butler):
    d = butler()
    sim.set_behaviour(r"^/qrs/task/[^/]+/start$", status=500, body="Internal error", method="POST")
    r = start(d, T1, [item_id(T2), item_tag("startTask1"), item_cp("taskGroup", "tasks2")])
    check_json(r, result(failed=[(T1, 500), (T2, 500), (T3, 500), (T4, 500)]))
    check_recorded(sim)
    assert started(sim) == once(T1, T2, T3, T4)


def test_failed_task_left_out_of_every_list(sim, butler):
    d = butler()
    sim.set_behaviour(r"^/qrs/task/%s/start$" % T3, status=503, method="POST")
    r = start(d, "-", [item_id(T3), item_tag("startTask1"), item_cp("taskGroup", "tasks2")])
    check_json(r, result(tag=[T2], cp=[T4], failed=[(T3, 503)]))
    assert started(sim) == once(T2, T3, T4)


def test_qrs_start_dropped_without_answer(sim, butler):
    """The start request reaches QRS, which closes the connection without an answer:
    statusCode 0, `QRS request failed: <reason>`; the POST is sent once (spec 3.2 step 4),
    also when the existence check ran on the same keep-alive connection before."""
    d = butler(short=True)
    sim.set_behaviour(r"^/qrs/task/%s/start$" % T2, drop=True)
    r, dt = timed(start, d, T2, [item_id(T1)])
    assert r.status == 200, r
    got = json.loads(r.body)
    failed = got["tasksFailed"]
    assert len(failed) == 1 and failed[0]["statusCode"] == 0, got
    assert re.fullmatch(r"QRS request failed: .+", failed[0]["message"]), got
    check_json(r, result(started=[T1], failed=[(T2, 0, failed[0]["message"])]))
    assert dt < 4.0, dt
    assert started(sim) == once(T1, T2)


def test_qrs_existence_check_error_status_means_invalid(sim, butler):
    d = butler()
    sim.set_behaviour(r"^/qrs/task$", status=500, body="Internal error", method="GET")
    check_json(start(d, T1, [item_id(T2)]), result(invalid=[T1, T2]))
    assert sim.starts() == []


def test_qrs_lookup_error_status_or_non_array_means_no_tasks(sim, butler):
    d = butler()
    b = sim.set_behaviour(r"^/qrs/task/full$", status=500, body="Internal error", method="GET",
                          times=1)
    check_json(start(d, "-", [item_tag("startTask1")]), result())
    assert b.applied == 1
    sim.set_behaviour(r"^/qrs/task/full$", status=200, body={"id": T1, "name": "x"}, method="GET",
                      times=1)
    check_json(start(d, "-", [item_cp("taskGroup", "tasks2")]), result())
    check_json(start(d, "-", [item_tag("startTask1")]), result(tag=[T2, T3]))
    assert started(sim) == once(T2, T3)


def test_qrs_lookup_without_answer_is_500(sim, butler):
    d = butler(short=True)
    sim.set_behaviour(r"^/qrs/task/full$", drop=True)
    body = [item_kv("drop", "k", "v"), item_id(T1), item_tag("startTask1"), item_id(T2)]
    r, dt = timed(start, d, "-", body)
    check_bytes(r, 500, FAILED_STARTING)
    assert dt < 5.0, dt
    assert sim.starts() == []
    check_bytes(kv_get(d, "drop", "k"), 200, b'{"namespace":"drop","key":"k","value":"v"}')


def test_qrs_slow_start_times_out_workers_not_stuck(sim, butler):
    """A start that takes longer than butlerd.qrs.timeoutMs -> tasksFailed with
    statusCode 0 and `QRS request failed: timeout`. While it is in flight, pings on
    fresh connections and another start-task request are answered at once."""
    d = butler(short=True)
    sim.set_behaviour(r"^/qrs/task/%s/start$" % T2, delay=4.0)
    out = {}

    def slow():
        out["r"], out["dt"] = timed(start, d, "-", [item_id(T2)])

    th = threading.Thread(target=slow)
    th.start()
    try:
        sim.wait_for_requests(1, r"^/qrs/task/%s/start$" % T2, timeout=5)
        for _ in range(6):
            r, dt = timed(d.get, "/v4/butlerping")
            assert r.status == 200 and PING_TEXT in r.text, r
            assert dt < 0.5, dt
        r, dt = timed(start, d, T1, [])
        check_json(r, result(started=[T1]))
        assert dt < 1.0, dt
        assert th.is_alive()          # the slow one is still waiting
    finally:
        th.join(10)
    assert not th.is_alive()
    check_json(out["r"], result(failed=[(T2, 0, "QRS request failed: timeout")]))
    assert TIMEOUT_MS / 1000.0 - 0.2 <= out["dt"] < 3.5, out["dt"]
    assert sorted(sim.starts()) == sorted([T1, T2])


def test_qrs_hung_start_among_others(sim, butler):
    """Example 8, second paragraph: a start that gets no answer -> statusCode 0 timeout;
    the other starts of the same request are reported normally."""
    d = butler(short=True)
    sim.set_behaviour(r"^/qrs/task/%s/start$" % T3, hang=True)
    r, dt = timed(start, d, "-", [item_id(T1), item_tag("startTask1")])
    check_json(r, result(started=[T1], tag=[T2], failed=[(T3, 0, "QRS request failed: timeout")]))
    assert dt < 4.0, dt
    assert started(sim) == once(T1, T2, T3)


def test_qrs_slow_existence_check_and_lookup(sim, butler):
    d = butler(short=True)
    b = sim.set_behaviour(r"^/qrs/task$", hang=True)
    r, dt = timed(start, d, MISSING, [])
    check_json(r, result(invalid=[MISSING]))
    assert dt < 4.0, dt
    r, dt = timed(d.get, "/v2/senseStartTask?taskId=" + T1)
    check_bytes(r, 502, err(502, "QRS request failed: timeout"))
    assert dt < 4.0, dt
    sim.clear_behaviour(b)
    sim.set_behaviour(r"^/qrs/task/full$", delay=4.0)
    r, dt = timed(start, d, "-", [item_tag("startTask1")])
    check_bytes(r, 500, FAILED_STARTING)
    assert dt < 4.0, dt
    assert sim.starts() == []


def test_wrong_ca_for_server_verification(sim, butler):
    """clientCertCA is another CA and rejectUnauthorized = true: butlerd cannot verify the
    simulator, nothing reaches QRS."""
    d = butler(ca="other_root.pem", short=True)
    check_json(start(d, T1, []), result(invalid=[T1]))
    r = d.get("/v2/senseStartTask?taskId=" + T1)
    msg = check_error_regex(r, 502, r"QRS request failed: .+")
    assert TLS_REASON.search(msg), msg
    check_bytes(start(d, "-", [item_tag("startTask1")]), 500, FAILED_STARTING)
    check_bytes(d.get("/v4/apps/list"), 500, FAILED_APPS)
    assert sim.requests == []
    assert sim.starts() == []


def test_wrong_ca_ignored_without_reject_unauthorized(sim, butler):
    d = butler(ca="other_root.pem", reject=False)
    check_json(start(d, T1, []), result(started=[T1]))
    check_recorded(sim)


def test_client_certificate_from_other_ca_refused(sim, butler):
    d = butler(cert="other_client.pem", key="other_client_key.pem", short=True)
    check_json(start(d, T1, []), result(invalid=[T1]))
    r = d.get("/v2/senseStartTask?taskId=" + T1)
    msg = check_error_regex(r, 502, r"QRS request failed: .+")
    check_bytes(start(d, "-", [item_cp("taskGroup", "tasks2")]), 500, FAILED_STARTING)
    check_bytes(d.get("/v4/senselistapps"), 500, FAILED_APPS)
    assert sim.requests == []
    assert sim.tls_errors, "the simulator saw no failed handshake"
    # the simulator answered the handshake with a TLS alert (unknown CA): the reason
    # must say so, not look like a dropped connection
    assert TLS_REASON.search(msg), msg


# ================================================================== /v2/senseStartTask


def test_v2_start_task_seed_example(sim, butler):
    d = butler()
    rec = dict(sim.find_task(T1), id=SEED_V2, name=NAMES[SEED_V2])
    sim.tasks.append(rec)
    r = d.get("/v2/senseStartTask?taskId=" + SEED_V2)
    check_bytes(r, 200, b'{"taskId":"abcd1234-5678-abcd-1234-abcd1234abcd"}')
    check_recorded(sim)
    assert id_checks(sim) == [id_filter(SEED_V2)]
    assert sim.starts(accepted_only=True) == [SEED_V2]
    # the same ID is not a strict task ID: /v4 reports it invalid without asking QRS
    sim.clear()
    check_json(start(d, SEED_V2, []), result(invalid=[SEED_V2]))
    assert sim.requests == []


def test_v2_start_task_upper_case_and_path_case(sim, butler):
    d = butler()
    r = d.get("/V2/SENSESTARTTASK?taskId=" + T1.upper())
    check_bytes(r, 200, jdump({"taskId": T1}))
    check_recorded(sim)
    assert id_checks(sim) == [id_filter(T1)]
    assert sim.starts() == [T1]


def test_v2_start_task_errors(sim, butler):
    d = butler()
    check_bytes(d.get("/v2/senseStartTask"), 400,
                validation("querystring must have required property 'taskId'"))
    check_bytes(d.get("/v2/senseStartTask?taskid=" + T1), 400,
                validation("querystring must have required property 'taskId'"))
    check_bytes(d.get("/v2/senseStartTask?taskId=abc123"), 400, err(400, "Invalid task ID: abc123"))
    check_bytes(d.get("/v2/senseStartTask?taskId="), 400, err(400, "Invalid task ID: "))
    check_bytes(d.get("/v2/senseStartTask?taskId=ABC-123"), 400, err(400, "Invalid task ID: ABC-123"))
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T1 + "x"), 400,
                err(400, "Invalid task ID: %sx" % T1))
    assert sim.requests == []
    check_bytes(d.get("/v2/senseStartTask?taskId=" + MISSING), 404,
                err(404, "Task not found: " + MISSING))
    check_bytes(d.get("/v2/senseStartTask?taskId=" + MISSING.upper()), 404,
                err(404, "Task not found: " + MISSING))
    check_recorded(sim)
    assert sim.starts() == []


def test_v2_start_task_head_performs_the_action(sim, butler):
    """Spec 1.3: HEAD runs the GET handler in full; headers of the GET answer, no body."""
    d = butler()
    with d.raw() as c:
        c.send("HEAD /v2/senseStartTask?taskId=%s HTTP/1.1\r\nHost: x\r\n\r\n" % T1)
        r = c.read_response(head=True)
        assert r.status == 200, r
        assert r.header("Content-Length") == str(len(jdump({"taskId": T1}))), r
        assert r.header("Content-Type") == JSON_CT, r
        assert c.quiet(0.3), "HEAD answer had a body"
    assert sim.starts() == [T1]


def test_v2_start_task_filter(sim, butler):
    d = butler(filter=FILTER_34)
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T5), 403,
                err(403, "Task ID %s is not allowed by the start task filter" % T5))
    # tags are not looked at: T3 carries the allowed tag startTask1
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T3), 403,
                err(403, "Task ID %s is not allowed by the start task filter" % T3))
    assert sim.requests == []
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T2.upper()), 200, jdump({"taskId": T2}))
    check_bytes(d.get("/v2/senseStartTask?taskId=abc"), 400, err(400, "Invalid task ID: abc"))
    check_recorded(sim)
    assert sim.starts() == [T2]


def test_v2_start_task_qrs_status_errors(sim, butler):
    d = butler()
    b = sim.set_behaviour(r"^/qrs/task/[^/]+/start$", status=500, body="Internal error")
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T1), 502,
                err(502, "QRS responded with HTTP 500"))
    sim.clear_behaviour(b)
    sim.set_behaviour(r"^/qrs/task$", status=503, method="GET")
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T1), 502,
                err(502, "QRS responded with HTTP 503"))
    assert sim.starts() == [T1]


def test_v2_start_task_slow_start(sim, butler):
    d = butler(short=True)
    sim.set_behaviour(r"^/qrs/task/[^/]+/start$", hang=True)
    r, dt = timed(d.get, "/v2/senseStartTask?taskId=" + T1)
    check_bytes(r, 502, err(502, "QRS request failed: timeout"))
    assert dt < 4.0, dt


# ================================================================== apps list


APPS_BODY = jdump([{"id": i, "name": n} for i, n in APPS])


def test_apps_list_all_paths(sim, butler):
    d = butler()
    for path in ("/v4/apps/list", "/v4/senselistapps", "/v2/senseListApps", "/V2/senselistapps"):
        check_bytes(d.get(path), 200, APPS_BODY)
    reqs = check_recorded(sim)
    assert [(q.method, q.path) for q in reqs] == [("GET", "/qrs/app")] * 4
    assert sim.starts() == []


def test_apps_list_keeps_qrs_order_and_text(sim, butler):
    d = butler()
    sim.apps.reverse()
    sim.apps.append(dict(sim.apps[0], id="3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c06",
                         name='Säljrapport "Nord" / O\'Brien \\ 2'))
    expected = [{"id": i, "name": n} for i, n in reversed(APPS)]
    expected.append({"id": "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c06",
                     "name": 'Säljrapport "Nord" / O\'Brien \\ 2'})
    check_bytes(d.get("/v4/apps/list"), 200, jdump(expected))


def test_apps_list_qrs_error(sim, butler):
    d = butler()
    sim.set_behaviour(r"^/qrs/app$", status=500, body="Internal error")
    for path in ("/v4/apps/list", "/v4/senselistapps", "/v2/senseListApps"):
        check_bytes(d.get(path), 500, FAILED_APPS)


# ================================================================== enable flags


def test_routes_disabled(sim, butler):
    d = butler(endpoints={"senseStartTask": False, "senseListApps": False})
    check_bytes(start(d, T1, []), 404,
                err(404, "Route PUT:/v4/reloadtask/%s/start not found" % T1))
    check_bytes(start(d, "-", [], method="POST"), 404,
                err(404, "Route POST:/v4/reloadtask/-/start not found"))
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T1), 404,
                err(404, "Route GET:/v2/senseStartTask?taskId=%s not found" % T1))
    check_bytes(d.get("/v4/apps/list"), 404, err(404, "Route GET:/v4/apps/list not found"))
    check_bytes(d.get("/v2/senseListApps"), 404, err(404, "Route GET:/v2/senseListApps not found"))
    assert sim.requests == []


def test_v2_routes_need_v2_api_enable(sim, butler):
    d = butler(more={"butlerd": {"v2Api": {"enable": False}}})
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T1), 404,
                err(404, "Route GET:/v2/senseStartTask?taskId=%s not found" % T1))
    check_bytes(d.get("/v2/senseListApps"), 404, err(404, "Route GET:/v2/senseListApps not found"))
    check_json(start(d, T1, []), result(started=[T1]))
    assert sim.starts() == [T1]
