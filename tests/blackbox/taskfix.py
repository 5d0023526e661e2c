"""Shared constants, helpers and fixtures of the start-task and apps-list tests
(test_task*.py) and of other tests that need the Qlik Sense simulator: the
fixture's tasks and apps, the expected answers, the simulator and its test PKI,
and a butlerd talking to it.

Slow and hung QRS calls use butlerd.qrs.timeoutMs = 1500 and
connectTimeoutMs = 1000, so no test waits for the 30 s default."""

import collections
import json
import os
import re
import time
import urllib.parse

import pytest

import harness
from harness import JSON_CT, Raw
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


def qrs_overrides(sim, certs, cert="client.pem", key="client_key.pem", ca="root.pem",
                  reject=True, qrs_port=None):
    """The Butler.cert and Butler.configQRS settings of a butlerd that talks to SIM
    with the test PKI CERTS (used by the fixture below and by bench/)."""
    return {"cert": {"clientCert": certs[cert], "clientCertKey": certs[key],
                     "clientCertCA": certs[ca]},
            "configQRS": {
                "host": "127.0.0.1", "port": qrs_port or sim.qrs_port, "useSSL": True,
                "rejectUnauthorized": reject,
                "headers": {"static": Raw('( { name = "X-Qlik-User"; value = "%s"; } )'
                                          % X_QLIK_USER)},
            }}


@pytest.fixture
def butler(start_daemon, sim, certs):
    """Factory: butler(filter=None, short=False, cert=, key=, ca=, reject=True,
    qrs_port=None, endpoints=None) -> a running butlerd talking to `sim`."""

    def make(filter=None, short=False, cert="client.pem", key="client_key.pem", ca="root.pem",
             reject=True, qrs_port=None, endpoints=None, workers=2, more=None):
        ep = {"senseStartTask": True, "senseListApps": True, "keyValueStore": True}
        ep.update(endpoints or {})
        ov = {
            "Butler": dict(qrs_overrides(sim, certs, cert, key, ca, reject, qrs_port),
                           restServerEndpointsEnable=ep,
                           startTaskFilter=filter_cfg(filter) if filter else {"enable": False}),
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
