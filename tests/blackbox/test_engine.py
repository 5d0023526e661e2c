"""App dump and app reload through the Qlik Sense Engine (spec api.md 1.12, 2.11,
2.12, 2.16 /v2/senseAppDump; qlik-sense.md 3; issue 7).

Every test gets its own simulator (tests/qlik-sim: the Engine's JSON-RPC over a
TLS WebSocket with a client certificate, and QRS for the follow-up task starts)
and its own butlerd. The simulator answers requests that arrive together in
reverse order and adds "change" members, so butlerd must match answers by id.

Slow, hung and cut calls use butlerd.engine.timeoutMs = 1000 and
connectTimeoutMs = 1000, so no test waits for the 30 s default."""

import json
import os
import re
import threading
import time

import pytest

import harness
from harness import JSON_CT, Raw

from harness import CLIENT_CN, FIXTURE, X_QLIK_USER
from taskfix import certs, sim  # noqa: F401 (pytest fixtures)
from qlik_sim import QlikSim, make_large_app
TIMEOUT_MS = 1000

A1 = "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c01"   # the dump fixture
A2 = "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c02"   # DoReload returns false
MISSING = "0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b"
LARGE = "00000000-0000-4000-8000-00000000000b"
T1 = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
T2 = "7552d9fc-d1bb-4975-9a38-18357de531ea"
T3 = "fb0f317d-da91-4b86-aafa-0174ae1e8c8f"

DUMP_KEYS = ["properties", "loadScript", "lineage", "sheets", "stories", "masterobjects",
             "appprops", "dimensions", "measures", "bookmarks", "embeddedmedia", "snapshots",
             "fields", "dataconnections", "variables", "appId"]

err, jdump = harness.err, harness.jdump
FAILED_DUMP = err(500, "Failed dumping app")
FAILED_RELOAD = err(500, "Failed getting list of Sense apps")


def fixture_app(app_id):
    with open(FIXTURE, encoding="utf-8") as f:
        return next(a for a in json.load(f)["engine"]["apps"] if a["id"] == app_id)


def expected_dump(app, app_id=None):
    """The dump of spec 2.12 computed from a simulator app, independently of butlerd."""
    def trees(t):
        return [o for o in app["objects"] if o["qProperty"]["qInfo"]["qType"] == t]

    def bookmark(b):
        p = json.loads(json.dumps(b["qProp"]))
        p.setdefault("qData", {})["qBookMark"] = b["qBookmark"]
        return p

    def variable(v):
        p = dict(v["qProp"])
        for f in ("qIsScriptCreated", "qIsReserved", "qIsConfig"):
            if v.get(f):
                p[f] = True
        return p

    out = {"properties": app["properties"], "loadScript": app["script"]}
    if "lineage" in app:
        out["lineage"] = app["lineage"]
    out.update({
        "sheets": trees("sheet"), "stories": trees("story"), "masterobjects": trees("masterobject"),
        "appprops": trees("appprops"), "dimensions": app["dimensions"], "measures": app["measures"],
        "bookmarks": [bookmark(b) for b in app["bookmarks"]
                      if b["qProp"]["qInfo"]["qType"] == "bookmark"],
        "embeddedmedia": [m for m in app["media"] if m["qUrlDef"].startswith("/media/")],
        "snapshots": [b["qProp"] for b in app["bookmarks"]
                      if b["qProp"]["qInfo"]["qType"] == "snapshot"],
        "fields": app["fields"], "dataconnections": app["connections"],
        "variables": [variable(v) for v in app["variables"]],
        "appId": app_id or app["id"]})
    return out


def check_error(r, body):
    assert r.status == json.loads(body)["statusCode"], r
    assert r.header("Content-Type") == JSON_CT, r
    assert r.body == body, "\n got: %r\nwant: %r" % (r.body, body)


def check_dump(r, want):
    assert r.status == 200, r
    assert r.header("Content-Type") == JSON_CT, r
    assert r.header("Content-Length") == str(len(r.body)), r
    got = json.loads(r.body.decode("utf-8"))
    assert list(got) == [k for k in DUMP_KEYS if k in want], list(got)
    for k in want:  # field by field, for a readable failure
        assert got[k] == want[k], "member %s\n got: %s\nwant: %s" % (k, got[k], want[k])
    assert r.body == jdump(got), "not compact JSON with raw UTF-8 (spec 1.7)"
    return got


# ------------------------------------------------------------------ fixtures


def static(user=X_QLIK_USER):
    if user is None:
        return Raw("( )")
    return Raw('( { name = "X-Qlik-User"; value = "%s"; } )' % user)


@pytest.fixture
def butler(start_daemon, sim, certs):
    """Factory: a running butlerd talking to `sim` (Engine and QRS)."""

    def make(short=True, cert="client.pem", key="client_key.pem", ca="root.pem", reject=True,
             use_ssl=True, user=X_QLIK_USER, engine_port=None, endpoints=None, workers=2,
             more=None):
        ep = {"senseAppDump": True, "senseAppReload": True}
        ep.update(endpoints or {})
        ov = {
            "Butler": {
                "restServerEndpointsEnable": ep,
                "cert": {"clientCert": certs[cert], "clientCertKey": certs[key],
                         "clientCertCA": certs[ca]},
                "configEngine": {"host": "127.0.0.1", "port": engine_port or sim.engine_port,
                                 "useSSL": use_ssl, "rejectUnauthorized": reject,
                                 "headers": {"static": static(user)}},
                "configQRS": {"host": "127.0.0.1", "port": sim.qrs_port, "useSSL": True,
                              "rejectUnauthorized": True, "headers": {"static": static()}},
            },
        }
        if short:
            ov["butlerd"] = {"engine": {"timeoutMs": TIMEOUT_MS, "connectTimeoutMs": 1000},
                             "qrs": {"timeoutMs": 3000}}
        harness.merge(ov, more or {})
        return start_daemon(ov, workers=workers)

    return make


def timed(fn, *a, **kw):
    t0 = time.monotonic()
    r = fn(*a, **kw)
    return r, time.monotonic() - t0


def reload(d, app=A1, body=None, method="PUT", headers=None):
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
        if not isinstance(body, bytes):
            body = jdump(body)
    return d.request(method, "/v4/app/%s/reload" % app, hdrs, body, timeout=15)


def upgrades(sim):
    return [r for r in sim.requests if r.service == "engine"]


# ================================================================== app dump


def test_dump_fixture_app_field_by_field(sim, butler):
    d = butler(short=False)
    want = expected_dump(fixture_app(A1))
    check_dump(d.get("/v4/app/%s/dump" % A1), want)
    # the session: one upgrade to /app/<id> with X-Qlik-User and the client certificate
    ups = upgrades(sim)
    assert [(u.method, u.path, u.status) for u in ups] == [("GET", "/app/" + A1, 101)]
    assert ups[0].headers.get("X-Qlik-User") == X_QLIK_USER
    assert ups[0].client_cert and ups[0].client_cn == CLIENT_CN
    opens = sim.engine_calls("OpenDoc")
    assert [(c.handle, c.params) for c in opens] == [(-1, {"qDocName": A1, "qNoData": True})]
    # every list object has its own qId, and each was destroyed again
    created = [c.params["qProp"]["qInfo"]["qId"] for c in sim.engine_calls("CreateSessionObject")]
    assert len(created) == 11 and len(set(created)) == 11, created
    # (the last destroy is not waited for: it may reach the simulator after the reply)
    sim.wait_for_engine_calls(11, "DestroySessionObject")
    destroyed = [c.params["qId"] for c in sim.engine_calls("DestroySessionObject")]
    assert sorted(destroyed) == sorted(created)
    # the field list asks for everything; the variable list for reserved and config ones
    defs = {c.params["qProp"]["qInfo"]["qId"]: c.params["qProp"]
            for c in sim.engine_calls("CreateSessionObject")}
    fl = next(p["qFieldListDef"] for p in defs.values() if "qFieldListDef" in p)
    assert fl == {"qShowSystem": True, "qShowHidden": True, "qShowSrcTables": True,
                  "qShowSemantic": True}
    vl = next(p["qVariableListDef"] for p in defs.values() if "qVariableListDef" in p)
    assert vl["qType"] == "variable" and vl["qShowReserved"] and vl["qShowConfig"]
    types = sorted(p.get("qAppObjectListDef", p.get("qBookmarkListDef", {})).get("qType", "")
                   for p in defs.values())
    assert [t for t in types if t] == ["appprops", "bookmark", "masterobject", "sheet",
                                      "snapshot", "story"]
    # requests were pipelined: two GetObject for the two sheets before either tree
    names = [c.method for c in sim.engine_calls()]
    i = names.index("GetFullPropertyTree")
    assert names[i - 2:i] == ["GetObject", "GetObject"], names
    assert all(c.answered for c in sim.engine_calls()
               if c.method != "DestroySessionObject"), "a request was left unanswered"


def test_dump_calls_fit_the_engine_schema(sim, butler):
    """Issue 11: the engine takes params by name only under the names of its schema,
    and the simulator checks every call against the table made from it
    (tests/qlik-sim/qix_methods.json) as a real engine does. CreateSessionObject
    takes {"qProp": properties}: sent the properties themselves, it was refused
    ("Invalid params") and every dump failed with 500 on a real engine."""
    d = butler()
    check_dump(d.get("/v4/app/%s/dump" % A1), expected_dump(fixture_app(A1)))
    sim.wait_for_engine_calls(11, "DestroySessionObject")
    calls = sim.engine_calls()
    assert [(c.method, c.error) for c in calls if c.error is not None] == []
    created = sim.engine_calls("CreateSessionObject")
    assert len(created) == 11
    for c in created:
        assert list(c.raw_params) == ["qProp"], c.raw_params
        assert "qInfo" in c.raw_params["qProp"], c.raw_params
    # every call that takes parameters has them by name
    assert {c.method: sorted(c.raw_params) for c in calls if c.raw_params} == {
        "OpenDoc": ["qDocName", "qNoData"], "CreateSessionObject": ["qProp"],
        "GetObject": ["qId"], "GetDimension": ["qId"], "GetMeasure": ["qId"],
        "GetBookmark": ["qId"], "GetVariableById": ["qId"], "GetConnection": ["qConnectionId"],
        "DestroySessionObject": ["qId"]}


def test_dump_three_routes_and_head(sim, butler):
    d = butler()
    want = expected_dump(fixture_app(A1))
    a = check_dump(d.get("/v4/app/%s/dump" % A1), want)
    b = check_dump(d.get("/v4/senseappdump/%s" % A1), want)
    c = check_dump(d.get("/v2/senseAppDump?appId=%s" % A1), want)
    e = check_dump(d.get("/V2/SENSEAPPDUMP?appId=%s" % A1), want)
    assert a == b == c == e
    h = d.request("HEAD", "/v4/senseappdump/%s" % A1)
    assert h.status == 200 and h.body == b"" and h.header("Content-Length") == str(len(jdump(a)))


def test_dump_app_without_lineage_support(sim, butler):
    """GetLineage failing (old engine) leaves the member out; nothing else changes."""
    sim.set_engine_fault("GetLineage", error=(-32601, "Method not found", "GetLineage"))
    d = butler()
    want = expected_dump(fixture_app(A1))
    del want["lineage"]
    check_dump(d.get("/v4/app/%s/dump" % A1), want)


def test_dump_empty_app(sim, butler):
    d = butler()
    app = fixture_app(A2)
    app.pop("lineage", None)
    want = expected_dump(app)
    want["lineage"] = []
    check_dump(d.get("/v4/app/%s/dump" % A2), want)


def test_dump_unknown_app_is_404(sim, butler):
    d = butler()
    r, t = timed(d.get, "/v4/app/%s/dump" % MISSING)
    check_error(r, err(404, "App not found: " + MISSING))
    r = d.get("/v2/senseAppDump?appId=" + MISSING)
    check_error(r, err(404, "App not found: " + MISSING))
    assert t < 5
    assert [c.error for c in sim.engine_calls("OpenDoc")] == [1003, 1003]


def test_dump_app_id_is_encoded_in_the_url(sim, butler):
    d = butler()
    r = d.get("/v4/app/a%20b%2Fc/dump")
    check_error(r, err(404, "App not found: a b/c"))
    assert [u.path for u in upgrades(sim)] == ["/app/a%20b%2Fc"]
    assert sim.engine_calls("OpenDoc")[0].params["qDocName"] == "a b/c"


def test_dump_engine_down(sim, butler):
    d = butler()
    sim.stop("engine")
    r, t = timed(d.get, "/v4/app/%s/dump" % A1)
    check_error(r, FAILED_DUMP)
    assert t < 3
    assert d.wait_log(re.compile(r"engine session for app %s .*connection refused" % A1), 5)


def test_dump_engine_slow(sim, butler):
    sim.set_engine_fault("GetScript", delay=3.0)
    d = butler()
    r, t = timed(d.get, "/v4/app/%s/dump" % A1)
    check_error(r, FAILED_DUMP)
    assert 0.9 <= t < 2.8, t
    assert d.wait_log("no answer from the engine in time", 5)


def test_dump_engine_hangs(sim, butler):
    sim.set_engine_fault("GetFullPropertyTree", hang=True)
    d = butler()
    r, t = timed(d.get, "/v4/app/%s/dump" % A1)
    check_error(r, FAILED_DUMP)
    assert 0.9 <= t < 2.8, t


def test_dump_engine_closes_mid_call(sim, butler):
    sim.set_engine_fault("GetProperties", close=True)
    d = butler(more={"butlerd": {"engine": {"timeoutMs": 6000}}})
    r, t = timed(d.get, "/v4/app/%s/dump" % A1)
    check_error(r, FAILED_DUMP)
    assert t < 3, t  # a cut connection is noticed at once, not after the timeout
    assert d.wait_log("connection closed", 5)


class FloodingEngine:
    """A hostile engine on plain ws: it accepts the upgrade properly and then pushes
    notifications without pause, faster than anyone can parse them."""

    def __init__(self):
        import socket
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.srv.settimeout(0.1)
        self.port = self.srv.getsockname()[1]
        self.stop_ev = threading.Event()
        note = jdump({"jsonrpc": "2.0", "method": "OnEngineNotice", "params": {"n": 1}})
        frame = bytes([0x81, len(note)]) + note
        self.block = frame * ((1 << 20) // len(frame))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import socket
        while not self.stop_ev.is_set():
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._flood, args=(c,), daemon=True).start()

    def _flood(self, c):
        import base64
        import hashlib
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = c.recv(4096)
                if not chunk:
                    return
                head += chunk
            key = re.search(rb"(?im)^Sec-WebSocket-Key: *(\S+)", head).group(1)
            acc = base64.b64encode(hashlib.sha1(
                key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
            while not self.stop_ev.is_set():
                c.sendall(self.block)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stop_ev.set()
        self.thread.join(5)
        self.srv.close()


def test_dump_engine_floods_notifications(sim, butler):
    """Every wait ends at butlerd.engine.timeoutMs even while the socket never runs
    dry (wslay keeps reading until a read would block)."""
    fl = FloodingEngine()
    try:
        d = butler(use_ssl=False, engine_port=fl.port)
        r, t = timed(d.request, "GET", "/v4/app/%s/dump" % A1, timeout=20)
        check_error(r, FAILED_DUMP)
        assert t < 3, t  # without the bound: 3 to 20 s, as the reader happens to catch up
        assert d.wait_log("no answer from the engine in time", 5)
    finally:
        fl.stop()


def test_dump_engine_hangs_before_upgrade(sim, butler):
    sim.set_behaviour(r"^/app/", hang=True, service="engine")
    d = butler()
    r, t = timed(d.get, "/v4/app/%s/dump" % A1)
    check_error(r, FAILED_DUMP)
    assert 0.9 <= t < 2.8, t


def test_dump_engine_error_answer(sim, butler):
    sim.set_engine_fault("GetMeasure", error=(5, "Access denied"), times=1)
    d = butler()
    check_error(d.get("/v4/app/%s/dump" % A1), FAILED_DUMP)
    assert d.wait_log("engine error 5: Access denied", 5)
    # the next dump is fine again
    check_dump(d.get("/v4/app/%s/dump" % A1), expected_dump(fixture_app(A1)))


def test_dump_upgrade_refused(sim, butler):
    sim.set_behaviour(r"^/app/", status=503, service="engine")
    d = butler()
    check_error(d.get("/v4/app/%s/dump" % A1), FAILED_DUMP)
    assert d.wait_log("refused the WebSocket upgrade: HTTP/1.1 503", 5)


def test_dump_without_x_qlik_user(sim, butler):
    d = butler(user=None)
    check_error(d.get("/v4/app/%s/dump" % A1), FAILED_DUMP)
    assert [u.status for u in upgrades(sim)] == [401]
    assert sim.engine_calls() == []


def test_dump_server_not_trusted(sim, butler):
    d = butler(ca="other_root.pem")
    check_error(d.get("/v4/app/%s/dump" % A1), FAILED_DUMP)
    assert d.wait_log("engine certificate not trusted", 5)
    assert upgrades(sim) == []


def test_dump_verifies_a_host_name(sim, butler):
    """configEngine.host "localhost": SNI and the name check against the certificate's
    DNS:localhost (the other tests use its IP:127.0.0.1)."""
    d = butler(more={"Butler": {"configEngine": {"host": "localhost"}}})
    check_dump(d.get("/v4/app/%s/dump" % A1), expected_dump(fixture_app(A1)))
    assert upgrades(sim)[0].headers.get("Host") == "localhost:%d" % sim.engine_port


@pytest.mark.parametrize("host", ["127.0.0.2", "127.2"])
def test_dump_host_name_mismatch_is_refused(certs, butler, host):
    """A certificate signed by the right CA but for another name: the engine at
    127.0.0.2 presents IP:127.0.0.1/DNS:localhost. Refused with rejectUnauthorized,
    as an IP address ("127.0.0.2") and as a name that resolves to it ("127.2",
    which inet_aton reads but the IP check does not)."""
    s = QlikSim(fixture_path=FIXTURE, certs_dir=os.path.dirname(certs["root.pem"]),
                host="127.0.0.2").start()
    try:
        more = {"Butler": {"configEngine": {"host": host}}}
        d = butler(engine_port=s.engine_port, more=more)
        check_error(d.get("/v4/app/%s/dump" % A1), FAILED_DUMP)
        assert d.wait_log(re.compile(r"engine certificate not trusted: .*mismatch"), 5), \
            d.log_tail()
        assert upgrades(s) == []
        d2 = butler(engine_port=s.engine_port, more=more, reject=False)
        check_dump(d2.get("/v4/app/%s/dump" % A1), expected_dump(fixture_app(A1)))
    finally:
        s.stop()


def test_dump_server_not_verified_when_reject_unauthorized_is_false(sim, butler):
    d = butler(ca="other_root.pem", reject=False)
    check_dump(d.get("/v4/app/%s/dump" % A1), expected_dump(fixture_app(A1)))


def test_dump_client_certificate_refused(sim, butler):
    d = butler(cert="other_client.pem", key="other_client_key.pem")
    check_error(d.get("/v4/app/%s/dump" % A1), FAILED_DUMP)
    assert harness.wait_until(lambda: sim.tls_errors, 5)
    assert upgrades(sim) == []


def test_dump_plain_websocket(certs, butler, start_daemon):
    s = QlikSim(fixture_path=FIXTURE, certs_dir=os.path.dirname(certs["root.pem"]),
                use_tls=False).start()
    try:
        d = butler(use_ssl=False, engine_port=s.engine_port)
        check_dump(d.get("/v4/app/%s/dump" % A1), expected_dump(fixture_app(A1)))
        assert [u.client_cert for u in upgrades(s)] == [False]
    finally:
        s.stop()


def test_dump_fragmented_messages_in_order_with_notifications(sim, butler):
    sim.engine_fragment_bytes = 97
    sim.engine_reorder = False
    sim.engine_notify_batches = True
    d = butler()
    check_dump(d.get("/v4/app/%s/dump" % A1), expected_dump(fixture_app(A1)))


def test_dump_message_over_the_limit(sim, butler):
    big = make_large_app(LARGE, count=2, payload_bytes=200000)
    sim.add_engine_app(big)
    d = butler(more={"butlerd": {"engine": {"maxMessageBytes": 65536}}})
    check_error(d.get("/v4/app/%s/dump" % LARGE), FAILED_DUMP)
    assert d.wait_log("larger than butlerd.engine.maxMessageBytes (65536)", 5)
    # the fixture app's messages fit
    check_dump(d.get("/v4/app/%s/dump" % A1), expected_dump(fixture_app(A1)))


def test_dump_concurrent_requests(sim, butler):
    d = butler(workers=1)
    want = expected_dump(fixture_app(A1))
    out = [None] * 6

    def one(i):
        out[i] = d.request("GET", "/v4/app/%s/dump" % A1, timeout=20)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(out))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    for r in out:
        check_dump(r, want)
    # The engine puts connections of one user to one app in one session: every
    # dump's list objects have qIds of their own, so no dump destroys another's.
    created = [c.params["qProp"]["qInfo"]["qId"] for c in sim.engine_calls("CreateSessionObject")]
    assert len(created) == 11 * len(out) and len(set(created)) == len(created), created
    assert all(re.match(r"^butlerd-[A-Za-z]+-[0-9a-f]{16}$", q) for q in created), created


def test_dump_disabled_and_v2_validation(sim, butler):
    d = butler(endpoints={"senseAppDump": False})
    r = d.get("/v4/app/%s/dump" % A1)
    check_error(r, harness.not_found("GET", "/v4/app/%s/dump" % A1))
    d2 = butler()
    check_error(d2.get("/v2/senseAppDump"),
                harness.validation("querystring must have required property 'appId'"))
    check_error(d2.get("/v4/app/%zz/dump"),
                err(400, "'/v4/app/%zz/dump' is not a valid url component", "FST_ERR_BAD_URL"))
    assert sim.engine_calls() == []


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_dump_large_app_bounded_memory(sim, butler):
    """7000 engine objects (1000 of each kind plus 1000 fields): the dump is
    complete and the worker's peak RSS grows by a bounded multiple of the reply."""
    count = 1000
    sim.add_engine_app(make_large_app(LARGE, count=count, payload_bytes=1000))
    d = butler(workers=1, more={"butlerd": {"engine": {"timeoutMs": 20000}}})
    (pid,) = d.worker_pids()
    # warm up: the first session brings in the job threads and OpenSSL's tables
    check_dump(d.get("/v4/app/%s/dump" % A1), expected_dump(fixture_app(A1)))
    before, cpu = vm_hwm_kb(pid), cpu_seconds(pid)
    r, t = timed(d.request, "GET", "/v4/app/%s/dump" % LARGE, timeout=120)
    after, cpu = vm_hwm_kb(pid), cpu_seconds(pid) - cpu
    assert r.status == 200, r
    got = json.loads(r.body.decode("utf-8"))
    for k in ("sheets", "masterobjects", "dimensions", "measures", "bookmarks", "variables",
              "fields"):
        assert len(got[k]) == count, k
    assert got["sheets"][count - 1]["qProperty"]["qInfo"]["qId"] == "sheet-%05d" % (count - 1)
    assert got["bookmarks"][7]["qData"]["qBookMark"]["qUtcModifyTime"] == 7
    growth = (after - before) * 1024
    size = len(r.body)
    print("\nlarge app: %d objects, reply %.1f MB in %.2f s (worker CPU %.2f s), worker VmHWM "
          "%d -> %d kB (growth %.1f MB = %.2f x reply)"
          % (7 * count, size / 1e6, t, cpu, before, after, growth / 1e6, growth / size))
    assert size > 6e6
    assert growth < 3 * size + (16 << 20), (growth, size)


# ================================================================== app reload


def wait_starts(sim, n, timeout=10):
    return harness.wait_until(lambda: len(sim.starts()) >= n and sim.starts(), timeout)


def test_reload_success_starts_success_tasks(sim, butler):
    d = butler()
    body = {"startQSEoWTaskOnSuccess": [T1, T3.upper(), "not-a-guid"],
            "startQSEoWTaskOnFailure": [T2]}
    r = reload(d, A1, body)
    assert r.status == 201 and r.body == jdump({"appId": A1}), r
    assert r.header("Content-Type") == JSON_CT
    assert wait_starts(sim, 2) == [T1, T3]
    assert sim.starts(accepted_only=True) == [T1, T3]
    assert [x["params"] for x in sim.reloads] == [{"qMode": 0, "qPartial": False, "qDebug": False}]
    assert [x["app"] for x in sim.saves] == [A1]
    names = [c.method for c in sim.engine_calls()]
    assert names == ["EngineVersion", "OpenDoc", "DoReload", "DoSave"], names
    assert [c.error for c in sim.engine_calls()] == [None] * 4  # they fit the engine's schema
    assert sim.engine_calls("OpenDoc")[0].params == {"qDocName": A1, "qNoData": False}
    assert d.wait_log("task ID \"not-a-guid\" is not a GUID, skipped", 5)
    assert d.wait_log("app reload %s succeeded" % A1, 5)
    time.sleep(0.3)
    assert sim.starts() == [T1, T3]  # nothing else, failure tasks never


def test_reload_failure_starts_failure_tasks(sim, butler):
    d = butler()
    body = {"startQSEoWTaskOnSuccess": [T1], "startQSEoWTaskOnFailure": [T2, T3]}
    r = reload(d, A2, body)
    assert r.status == 201 and r.body == jdump({"appId": A2}), r
    assert wait_starts(sim, 2) == [T2, T3]
    assert sim.saves == []
    time.sleep(0.3)
    assert sim.starts() == [T2, T3]


@pytest.mark.parametrize("method,error", [("DoReload", (11, "Reload failed: syntax error")),
                                          ("DoSave", (5, "Access denied"))])
def test_reload_engine_error_starts_failure_tasks(sim, butler, method, error):
    sim.set_engine_fault(method, error=error)
    d = butler()
    r = reload(d, A1, {"startQSEoWTaskOnSuccess": [T1], "startQSEoWTaskOnFailure": [T2]})
    assert r.status == 201, r
    assert wait_starts(sim, 1) == [T2]
    assert d.wait_log("engine error %d: %s" % error, 5)


def test_reload_session_lost_starts_nothing(sim, butler):
    sim.set_engine_fault("DoReload", close=True)
    d = butler()
    r = reload(d, A1, {"startQSEoWTaskOnSuccess": [T1], "startQSEoWTaskOnFailure": [T2]})
    assert r.status == 201, r
    assert d.wait_log("no task started", 5)
    time.sleep(0.3)
    assert sim.starts() == []


def test_reload_replies_before_the_reload_ends(sim, butler):
    # 4 s of reload against a reply bound of 3.5 s: room for a session on a busy
    # 2-CPU machine, and the reply still provably comes before the reload ends
    sim.find_engine_app(A1)["reloadSeconds"] = 4.0
    d = butler(more={"butlerd": {"engine": {"reloadTimeoutSeconds": 30}}})
    r, t = timed(reload, d, A1, {"startQSEoWTaskOnSuccess": [T1]})
    assert r.status == 201 and t < 3.5, (r, t)
    assert sim.starts() == [] and sim.saves == []
    assert wait_starts(sim, 1, timeout=10) == [T1]


def test_reload_takes_longer_than_the_call_timeout(sim, butler):
    """DoReload is bounded by reloadTimeoutSeconds, not by timeoutMs."""
    sim.find_engine_app(A1)["reloadSeconds"] = 1.5
    d = butler()
    assert reload(d, A1, {"startQSEoWTaskOnSuccess": [T1]}).status == 201
    assert wait_starts(sim, 1, timeout=10) == [T1]


def test_reload_options_and_coercion(sim, butler):
    d = butler()
    # a load script: POST with X-HTTP-Method-Override and every value quoted
    r = reload(d, A1, {"partialReload": "true", "reloadMode": "1",
                       "startQSEoWTaskOnSuccess": T1}, method="POST",
               headers={"X-HTTP-Method-Override": "PUT"})
    assert r.status == 201, r
    assert harness.wait_until(lambda: len(sim.reloads) == 1, 5)
    assert wait_starts(sim, 1) == [T1]
    r = reload(d, A1, {"reloadMode": 7})   # outside 0-2 becomes 0
    assert r.status == 201, r
    r = reload(d, A1)                        # no body is {}
    assert r.status == 201, r
    r = reload(d, A1, {"reloadMode": 2, "partialReload": False})
    assert r.status == 201, r
    assert harness.wait_until(lambda: len(sim.reloads) == 4, 5)
    assert [(x["params"]["qMode"], x["params"]["qPartial"]) for x in sim.reloads] == [
        (1, True), (0, False), (0, False), (2, False)]


@pytest.mark.parametrize("body,message", [
    ({"reloadMode": "fast"}, "body/reloadMode must be integer"),
    ({"reloadMode": 1.5}, "body/reloadMode must be integer"),
    ({"partialReload": "yes"}, "body/partialReload must be boolean"),
    ({"startQSEoWTaskOnSuccess": [{"id": T1}]}, "body/startQSEoWTaskOnSuccess/0 must be string"),
    ({"startQSEoWTaskOnFailure": [T1, [T2, T3]]}, "body/startQSEoWTaskOnFailure/1 must be string"),
    ([T1], "body must be object"),
])
def test_reload_validation(sim, butler, body, message):
    d = butler()
    check_error(reload(d, A1, body), harness.validation(message))
    assert sim.engine_calls() == [] and upgrades(sim) == []


def test_reload_unknown_app_is_404(sim, butler):
    d = butler()
    check_error(reload(d, MISSING, {"startQSEoWTaskOnFailure": [T2]}),
                err(404, "App not found: " + MISSING))
    time.sleep(0.2)
    assert sim.starts() == []


def test_reload_engine_down_and_slow(sim, butler):
    d = butler()
    sim.stop("engine")
    r, t = timed(reload, d, A1, {})
    check_error(r, FAILED_RELOAD)
    assert t < 3
    sim.start()
    sim.set_engine_fault("OpenDoc", delay=3.0)
    r, t = timed(reload, d, A1, {"startQSEoWTaskOnFailure": [T2]})
    check_error(r, FAILED_RELOAD)
    assert 0.9 <= t < 2.8, t
    assert sim.reloads == [] and sim.starts() == []


def test_reload_disabled(sim, butler):
    d = butler(endpoints={"senseAppReload": False})
    check_error(reload(d, A1, {}), harness.not_found("PUT", "/v4/app/%s/reload" % A1))


def test_reload_survives_a_configuration_reload(sim, butler):
    """SIGHUP drains the old workers; a reload in progress is waited for (up to
    shutdownTimeout) and still starts its task."""
    import signal
    sim.find_engine_app(A1)["reloadSeconds"] = 2.0
    d = butler(more={"butlerd": {"shutdownTimeout": 15}})
    old = set(d.worker_pids())
    assert reload(d, A1, {"startQSEoWTaskOnSuccess": [T1]}).status == 201
    assert harness.wait_until(lambda: sim.reloads, 5)
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded", 10, start=mark)
    assert wait_starts(sim, 1, timeout=10) == [T1]
    assert harness.wait_until(lambda: not (set(d.worker_pids()) & old), 10), d.log_tail()
    assert not d.find("app reloads still running", mark)


def test_reload_longer_than_shutdown_timeout_survives_sighup(sim, butler):
    """A retired generation waits for its app reloads (up to
    butlerd.engine.reloadTimeoutSeconds), not just shutdownTimeout."""
    import signal
    sim.find_engine_app(A1)["reloadSeconds"] = 4.0
    d = butler(more={"butlerd": {"shutdownTimeout": 1}})
    old = set(d.worker_pids())
    assert reload(d, A1, {"startQSEoWTaskOnSuccess": [T1]}).status == 201
    assert harness.wait_until(lambda: sim.reloads, 5)
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded", 10, start=mark)
    d.wait_log("waiting for 1 app reloads to finish", 10, start=mark)
    assert wait_starts(sim, 1, timeout=15) == [T1]
    assert harness.wait_until(lambda: not (set(d.worker_pids()) & old), 10), d.log_tail()
    assert not d.find("app reloads still running", mark)
    assert not d.find("killing it", mark)
    assert d.get("/v4/butlerping").status == 200


def test_stop_does_not_wait_for_a_retired_workers_reload(sim, butler):
    import signal
    sim.find_engine_app(A1)["reloadSeconds"] = 30.0
    d = butler(more={"butlerd": {"shutdownTimeout": 1}})
    assert reload(d, A1, {"startQSEoWTaskOnSuccess": [T1]}).status == 201
    assert harness.wait_until(lambda: sim.reloads, 5)
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log("waiting for 1 app reloads to finish", 10, start=mark)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit(10) == 0, d.log_tail()
    assert time.monotonic() - t0 < 8
    assert d.find("app reloads still running", mark)


def test_metrics_count_engine_requests(butler, sim):
    """GET /metrics (butlerd(8), MONITORING): an app dump's engine requests, and a
    session that cannot open."""
    d = butler(more={"butlerd": {"metrics": {"enable": True}}})
    assert d.get("/v4/app/%s/dump" % A1).status == 200

    def value(name, outcome):
        text = d.get("/metrics").text
        m = re.search(r'^%s\{outcome="%s"\} (\d+)$' % (name, outcome), text, re.M)
        return int(m.group(1))
    assert value("butlerd_engine_sessions_total", "opened") >= 1
    assert value("butlerd_engine_requests_total", "ok") >= 3   # OpenDoc and the lists
    assert value("butlerd_engine_sessions_total", "failed") == 0
    sim.stop("engine")
    assert d.get("/v4/app/%s/dump" % A1).status >= 500
    assert value("butlerd_engine_sessions_total", "failed") == 1
    sim.start()
