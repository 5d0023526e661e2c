"""Self-tests of the Qlik Sense simulator's engine (QIX JSON-RPC over a WebSocket):
the method table derived from Qlik's schema, the call checks, sessions, the
fixture app, reloads and faults.
Loopback only; every wait is bounded."""

import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import time
import qlik_sim

import pytest
from simfix import HERE, USER, ctx_for
from simfix import certs, fresh, sim  # noqa: F401 (pytest fixtures)


# ------------------------------------------------------------------ Engine (QIX)

A1 = "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c01"
A2 = "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c02"


class WsClient:
    """A minimal WebSocket client for these tests: masked frames, one message a frame
    unless told otherwise."""

    def __init__(self, sim, certs, app=A1, cert="client", user=USER, timeout=5.0, tls=True):
        raw = socket.create_connection(("127.0.0.1", sim.engine_port), timeout=timeout)
        self.sock = ctx_for(certs, cert).wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
        key = base64.b64encode(os.urandom(16)).decode()
        head = ("GET /app/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                % (app, key))
        if user is not None:
            head += "X-Qlik-User: %s\r\n" % user
        self.sock.sendall((head + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        self.head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(self.head.split()[1]) if self.head else 0
        want = base64.b64encode(hashlib.sha1((key + qlik_sim.WS_GUID).encode()).digest())
        self.accept_ok = b"Sec-WebSocket-Accept: " + want in self.head
        self.next_id = 1

    def frame(self, data, opcode=1, fin=True):
        mask = os.urandom(4)
        n = len(data)
        b0 = (0x80 if fin else 0) | opcode
        if n < 126:
            h = struct.pack("!BB", b0, 0x80 | n)
        elif n < 65536:
            h = struct.pack("!BBH", b0, 0x80 | 126, n)
        else:
            h = struct.pack("!BBQ", b0, 0x80 | 127, n)
        return h + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def request(self, method, handle=-1, params=None):
        i = self.next_id
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": i, "handle": handle, "method": method,
               "params": {} if params is None else params}
        return i, self.frame(json.dumps(msg).encode())

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """The next message: (opcode, parsed JSON or bytes); fragments joined."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            assert not b1 & 0x80, "server frames are not masked"
            parts.append(self._read(n))
            if b0 & 0x80:
                data = b"".join(parts)
                op = b0 & 0x0F if len(parts) == 1 else 1
                return op, (json.loads(data) if op == 1 else data)

    def call(self, method, handle=-1, params=None):
        i, f = self.request(method, handle, params)
        self.sock.sendall(f)
        while True:
            op, m = self.recv()
            if op == 1 and m.get("id") == i:
                return m

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def open_app(sim, certs, app=A1):
    ws = WsClient(sim, certs, app)
    assert ws.status == 101 and ws.accept_ok
    op, note = ws.recv()
    assert note == {"jsonrpc": "2.0", "method": "OnConnected",
                    "params": {"qSessionState": "SESSION_CREATED"}}
    r = ws.call("OpenDoc", -1, {"qDocName": app, "qNoData": True})
    return ws, r["result"]["qReturn"]["qHandle"]


def test_engine_upgrade_rules(sim, certs):
    ws = WsClient(sim, certs)
    assert ws.status == 101 and ws.accept_ok
    assert b"Upgrade: websocket" in ws.head
    ws.close()
    ws = WsClient(sim, certs, user=None)
    assert ws.status == 401
    ws.close()
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        ws = WsClient(sim, certs, cert=None)
        ws.recv()  # TLS 1.3: the refused certificate shows at the first read
    assert harness_wait(lambda: [e for e in sim.tls_errors if e["service"] == "engine"])
    ups = [r for r in sim.requests if r.service == "engine"]
    assert [(u.path, u.status, u.client_cn) for u in ups] == [
        ("/app/" + A1, 101, "butlerd-test-client"), ("/app/" + A1, 401, "butlerd-test-client")]


def harness_wait(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    return pred()


def test_engine_open_doc_and_doc_calls(sim, certs):
    ws, doc = open_app(sim, certs)
    try:
        app = sim.find_engine_app(A1)
        assert ws.call("GetAppProperties", doc)["result"] == {"qProp": app["properties"]}
        assert ws.call("GetScript", doc)["result"] == {"qScript": app["script"]}
        assert ws.call("GetAppLayout", doc)["result"]["qLayout"]["qTitle"] == "App1"
        assert ws.call("GetConnections", doc)["result"]["qConnections"] == app["connections"]
        cid = app["connections"][0]["qId"]
        assert ws.call("GetConnection", doc, {"qConnectionId": cid})["result"] == {
            "qConnection": app["connections"][0]}
        assert ws.call("EngineVersion")["result"] == {"qVersion": {"qComponentVersion": "12.612.0"}}
        docs = ws.call("GetDocList")["result"]["qDocList"]
        assert [(d["qDocId"], d["qDocName"]) for d in docs] == [(A1, "App1"), (A2, "App2")]
        assert ws.call("NoSuchMethod", doc)["error"]["code"] == -32601
        assert ws.call("GetScript", 99)["error"]["code"] == -32602
        bad = ws.call("OpenDoc", -1, {"qDocName": "nope"})
        assert bad["error"] == {"code": 1003, "parameter": "nope", "message": "App not found"}
    finally:
        ws.close()
    calls = sim.engine_calls()
    assert calls[0].method == "OpenDoc" and calls[0].params == {"qDocName": A1, "qNoData": True}
    assert all(c.answered for c in calls)


def invalid(r, parameter, code=-32602, message="Invalid params"):
    """The JSON-RPC error of a call that does not fit the engine's schema."""
    return r.get("error") == {"code": code, "parameter": parameter, "message": message}


SHEETS = {"qInfo": {"qId": "L", "qType": "SheetList"},
          "qAppObjectListDef": {"qType": "sheet", "qData": {"id": "/qInfo/qId"}}}


def test_engine_rejects_a_method_the_object_type_does_not_have(sim, certs):
    ws, doc = open_app(sim, certs)
    try:
        assert invalid(ws.call("GetScript", -1), "GetScript", -32601, "Method not found")
        assert invalid(ws.call("OpenDoc", doc, {"qDocName": A1}), "OpenDoc", -32601,
                       "Method not found")
        assert invalid(ws.call("GetFullPropertyTree", doc), "GetFullPropertyTree", -32601,
                       "Method not found")
        d = ws.call("GetDimension", doc, {"qId": "dm01"})["result"]["qReturn"]["qHandle"]
        assert invalid(ws.call("GetFullPropertyTree", d), "GetFullPropertyTree", -32601,
                       "Method not found")  # a GenericObject method, not a GenericDimension one
        v = ws.call("GetVariableById", doc, {"qId": "vr01"})["result"]["qReturn"]["qHandle"]
        assert invalid(ws.call("GetFullPropertyTree", v), "GetFullPropertyTree", -32601,
                       "Method not found")
        # a real method that the simulator does not do says so
        assert invalid(ws.call("GetAllInfos", doc), "GetAllInfos (not simulated)", -32601,
                       "Method not found")
    finally:
        ws.close()
    assert [c.error for c in sim.engine_calls()][1:] == [
        -32601, -32601, -32601, None, -32601, None, -32601, -32601]


def test_engine_rejects_params_by_name_that_are_not_parameters(sim, certs):
    ws, doc = open_app(sim, certs)
    try:
        # the properties themselves as params, instead of {"qProp": properties}
        assert invalid(ws.call("CreateSessionObject", doc, SHEETS), "qInfo")
        assert invalid(ws.call("GetObject", doc, {"qid": "sh01"}), "qid")  # names are exact
        assert invalid(ws.call("GetObject", doc, {"qId": "sh01", "qType": "sheet"}), "qType")
        assert invalid(ws.call("GetScript", doc, {"qScript": ""}), "qScript")
        assert invalid(ws.call("DoReload", doc, {"qMode": 0, "qPartial": False, "qDbg": False}),
                       "qDbg")
        assert invalid(ws.call("OpenDoc", -1, {"qDocName": A1, "qNoData": True, "qTitle": ""}),
                       "qTitle")
        assert invalid(ws.call("GetScript", doc, "x"), "params must be an array or an object")
        assert sim.reloads == []
        # {"qProp": ...} is the call that works
        r = ws.call("CreateSessionObject", doc, {"qProp": SHEETS})
        assert r["result"]["qReturn"]["qGenericId"] == "L"
    finally:
        ws.close()
    bad = sim.engine_calls("CreateSessionObject")[0]
    assert bad.error == -32602 and bad.raw_params == SHEETS


def test_engine_rejects_missing_required_params(sim, certs):
    ws, doc = open_app(sim, certs)
    try:
        assert invalid(ws.call("GetObject", doc, {}), "qId")
        assert invalid(ws.call("CreateSessionObject", doc, {}), "qProp")
        assert invalid(ws.call("DestroySessionObject", doc, []), "qId")
        assert invalid(ws.call("GetConnection", doc, []), "qConnectionId")
        assert invalid(ws.call("OpenDoc", -1, {"qNoData": True}), "qDocName")
        assert invalid(ws.call("OpenDoc", -1, []), "qDocName")
        # optional ones may be left out, by name or by position
        assert ws.call("OpenDoc", -1, {"qDocName": A1})["result"]["qReturn"]["qHandle"] == doc
        assert ws.call("OpenDoc", -1, [A1])["result"]["qReturn"]["qHandle"] == doc
        assert ws.call("DoSave", doc, [])["result"] == {}
        assert ws.call("DoSave", doc, {})["result"] == {}
    finally:
        ws.close()
    # a message without params is a call without params
    ws, doc = open_app(sim, certs)
    try:
        i = ws.next_id
        ws.next_id += 1
        ws.sock.sendall(ws.frame(json.dumps({"jsonrpc": "2.0", "id": i, "handle": doc,
                                             "method": "GetObject"}).encode()))
        while True:
            op, m = ws.recv()
            if op == 1 and m.get("id") == i:
                break
        assert invalid(m, "qId")
    finally:
        ws.close()


def test_engine_params_by_position(sim, certs):
    ws, doc = open_app(sim, certs)
    try:
        assert invalid(ws.call("GetObject", doc, ["sh01", "sheet"]),
                       "GetObject takes at most 1 params, got 2")
        assert invalid(ws.call("GetScript", doc, [True]), "GetScript takes at most 0 params, got 1")
        assert invalid(ws.call("DoReload", doc, [0, False, False, 1]),
                       "DoReload takes at most 3 params, got 4")
        o = ws.call("GetObject", doc, ["sh01"])["result"]["qReturn"]["qHandle"]
        assert ws.call("GetProperties", o, [])["result"]["qProp"]["qInfo"]["qId"] == "sh01"
        h = ws.call("CreateSessionObject", doc, [SHEETS])["result"]["qReturn"]["qHandle"]
        items = ws.call("GetLayout", h)["result"]["qLayout"]["qAppObjectList"]["qItems"]
        assert [i["qInfo"]["qId"] for i in items] == ["sh01", "sh02"]
        assert ws.call("DestroySessionObject", doc, ["L"])["result"] == {"qSuccess": True}
    finally:
        ws.close()
    got = sim.engine_calls("GetObject")[-1]
    assert got.params == {"qId": "sh01"} and got.raw_params == ["sh01"]
    assert sim.engine_calls("CreateSessionObject")[0].params == {"qProp": SHEETS}


def test_engine_method_table_covers_what_the_simulator_does():
    """Every method the simulator answers exists, on that object type, in the table
    generated from Qlik's schema; the table has the types the simulator hands out."""
    done = [n.split("_", 2)[1:] for n in dir(qlik_sim._EngineSession) if n.startswith("m_")]
    assert len(done) > 20
    for kind, method in done:
        assert method in qlik_sim.QIX_METHODS[qlik_sim._HANDLE_TYPES[kind]], (kind, method)
    for method in ("EngineVersion", "GetDocList", "OpenDoc"):
        assert method in qlik_sim.QIX_METHODS["Global"]
    assert qlik_sim.QIX_METHODS["Doc"]["CreateSessionObject"] == [
        {"name": "qProp", "optional": False}]


def test_gen_qix_methods(tmp_path):
    """The generator keeps names, order and the optional flag of each parameter and
    drops the rest; it refuses a schema without one of the object types."""
    p = lambda n, opt=None: dict({"Name": n, "DefaultValue": 0}, **(
        {"Optional": opt} if opt is not None else {}))
    structs = {t: {} for t in ("Global", "Doc", "GenericObject", "GenericDimension",
                               "GenericMeasure", "GenericBookmark", "GenericVariable", "Field")}
    structs["Doc"]["DoReload"] = {"In": [p("qMode", True), p("qPartial", True)], "Out": []}
    structs["Doc"]["CreateSessionObject"] = {"In": [p("qProp")], "Out": []}
    structs["Global"]["EngineVersion"] = {"Out": [{"Name": "qVersion"}]}
    structs["Other"] = {"X": {"In": []}}
    schema = tmp_path / "12.0.0.json"
    schema.write_text(json.dumps({"structs": structs, "enums": {}}))
    out = tmp_path / "t.json"
    gen = os.path.join(HERE, "gen_qix_methods.py")
    r = subprocess.run([sys.executable, gen, str(schema), "-o", str(out)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    t = json.loads(out.read_text())
    assert t["source"] == "12.0.0.json" and "Other" not in t["types"]
    assert t["types"]["Doc"] == {
        "CreateSessionObject": [{"name": "qProp", "optional": False}],
        "DoReload": [{"name": "qMode", "optional": True}, {"name": "qPartial", "optional": True}]}
    assert t["types"]["Global"] == {"EngineVersion": []}
    del structs["Field"]
    schema.write_text(json.dumps({"structs": structs, "enums": {}}))
    r = subprocess.run([sys.executable, gen, str(schema), "-o", str(out)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0 and "Field" in r.stderr


def test_engine_pipelined_answers_come_back_reversed(sim, certs):
    ws, doc = open_app(sim, certs)
    try:
        frames = [ws.request(m, doc) for m in ("GetScript", "GetAppProperties", "GetLineage")]
        ws.sock.sendall(b"".join(f for _, f in frames))
        got = [ws.recv()[1]["id"] for _ in frames]
        assert got == [i for i, _ in frames][::-1]
        sim.engine_reorder = False
        frames = [ws.request(m, doc) for m in ("GetScript", "GetAppProperties")]
        ws.sock.sendall(b"".join(f for _, f in frames))
        assert [ws.recv()[1]["id"] for _ in frames] == [i for i, _ in frames]
    finally:
        ws.close()


def test_engine_lists_and_objects(sim, certs):
    ws, doc = open_app(sim, certs)
    try:
        # two session objects with the same qId both work; destroy removes both
        defs = [{"qInfo": {"qId": "L", "qType": "SheetList"},
                 "qAppObjectListDef": {"qType": "sheet", "qData": {"id": "/qInfo/qId"}}}] * 2
        hs = [ws.call("CreateSessionObject", doc, {"qProp": d})["result"]["qReturn"]["qHandle"]
              for d in defs]
        assert hs[0] != hs[1]
        for h in hs:
            items = ws.call("GetLayout", h)["result"]["qLayout"]["qAppObjectList"]["qItems"]
            assert [(i["qInfo"]["qId"], i["qData"]["id"]) for i in items] == [
                ("sh01", "sh01"), ("sh02", "sh02")]
        assert ws.call("DestroySessionObject", doc, {"qId": "L"})["result"] == {"qSuccess": True}
        assert ws.call("GetLayout", hs[0])["error"]["code"] == -32602
        o = ws.call("GetObject", doc, {"qId": "sh01"})["result"]["qReturn"]["qHandle"]
        tree = ws.call("GetFullPropertyTree", o)["result"]["qPropEntry"]
        assert tree["qChildren"][0]["qProperty"]["qInfo"]["qId"] == "kPjmZ"
        assert ws.call("GetProperties", o)["result"]["qProp"]["qInfo"]["qId"] == "sh01"
        assert ws.call("GetObject", doc, {"qId": "zz"})["result"]["qReturn"]["qHandle"] is None
        # variables: reserved/config ones only when asked for; flags only when true
        vdef = {"qInfo": {"qType": "VariableList"}, "qVariableListDef": {"qType": "variable"}}
        h = ws.call("CreateSessionObject", doc, {"qProp": vdef})["result"]["qReturn"]["qHandle"]
        items = ws.call("GetLayout", h)["result"]["qLayout"]["qVariableList"]["qItems"]
        assert [(i["qName"], i.get("qIsScriptCreated")) for i in items] == [
            ("vThreshold", None), ("ThousandSep", True)]
        vdef["qVariableListDef"].update(qShowReserved=True, qShowConfig=True)
        h = ws.call("CreateSessionObject", doc, {"qProp": vdef})["result"]["qReturn"]["qHandle"]
        items = ws.call("GetLayout", h)["result"]["qLayout"]["qVariableList"]["qItems"]
        assert items[2]["qIsReserved"] and items[2]["qIsConfig"]
        # fields: system and hidden ones only when asked for
        fdef = {"qInfo": {"qType": "FieldList"}, "qFieldListDef": {"qShowSrcTables": True}}
        h = ws.call("CreateSessionObject", doc, {"qProp": fdef})["result"]["qReturn"]["qHandle"]
        items = ws.call("GetLayout", h)["result"]["qLayout"]["qFieldList"]["qItems"]
        assert [i["qName"] for i in items] == ["Region", "Sales"]
        # bookmarks and snapshots are separate lists; a bookmark's layout has qBookmark
        bdef = {"qInfo": {"qType": "BL"}, "qBookmarkListDef": {"qType": "snapshot"}}
        h = ws.call("CreateSessionObject", doc, {"qProp": bdef})["result"]["qReturn"]["qHandle"]
        items = ws.call("GetLayout", h)["result"]["qLayout"]["qBookmarkList"]["qItems"]
        assert [i["qInfo"]["qId"] for i in items] == ["sn01"]
        b = ws.call("GetBookmark", doc, {"qId": "bm01"})["result"]["qReturn"]["qHandle"]
        assert ws.call("GetLayout", b)["result"]["qLayout"]["qBookmark"]["qUtcModifyTime"] == 46000.5
        m = ws.call("GetMeasure", doc, {"qId": "ms02"})["result"]["qReturn"]["qHandle"]
        assert ws.call("GetProperties", m)["result"]["qProp"]["qMeasure"]["qDef"] == "Avg(Sales)"
        v = ws.call("GetVariableById", doc, {"qId": "vr01"})["result"]["qReturn"]["qHandle"]
        assert ws.call("GetProperties", v)["result"]["qProp"]["qName"] == "vThreshold"
    finally:
        ws.close()


def test_engine_reload_and_save(sim, certs):
    ws, doc = open_app(sim, certs)
    try:
        r = ws.call("DoReload", doc, {"qMode": 1, "qPartial": True, "qDebug": False})
        assert r["result"] == {"qReturn": True} and r["change"] == [doc]
        assert ws.call("DoSave", doc)["result"] == {}
        ex = ws.call("DoReloadEx", doc, {"qParams": {"qMode": 0}})["result"]["qResult"]
        assert ex["qSuccess"] is True and ex["qScriptLogFile"].endswith(A1 + ".log")
    finally:
        ws.close()
    ws, doc = open_app(sim, certs, A2)
    try:
        assert ws.call("DoReload", doc, {"qMode": 0})["result"] == {"qReturn": False}
    finally:
        ws.close()
    assert [(x["app"], x["params"].get("qMode")) for x in sim.reloads] == [(A1, 1), (A1, 0), (A2, 0)]
    assert [x["app"] for x in sim.saves] == [A1]


def test_engine_faults(sim, certs):
    ws, doc = open_app(sim, certs)
    try:
        sim.set_engine_fault("GetScript", error=(5, "Access denied"), times=1)
        assert ws.call("GetScript", doc)["error"]["code"] == 5
        assert "result" in ws.call("GetScript", doc)
        sim.set_engine_fault("GetAppProperties", delay=0.5, times=1)
        t0 = time.monotonic()
        ws.call("GetAppProperties", doc)
        assert time.monotonic() - t0 >= 0.45
        f = sim.set_engine_fault("GetLineage", hang=True)
        i, fr = ws.request("GetLineage", doc)
        ws.sock.sendall(fr)
        ws.sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            ws.recv()
        assert f.applied == 1 and not sim.engine_calls("GetLineage")[0].answered
        ws.sock.settimeout(5)
        sim.set_engine_fault("GetConnections", close=True)
        with pytest.raises((EOFError, ConnectionError, ssl.SSLError)):
            ws.call("GetConnections", doc)
    finally:
        ws.close()
    sim.clear_engine_faults()
    sim.set_behaviour(r"^/app/", status=503, service="engine", times=1)
    ws = WsClient(sim, certs)
    assert ws.status == 503
    ws.close()
    sim.stop("engine")
    with pytest.raises(ConnectionRefusedError):
        WsClient(sim, certs)
    sim.start()
    ws, doc = open_app(sim, certs)
    ws.close()


def test_engine_fragmented_both_ways(sim, certs):
    sim.engine_fragment_bytes = 10
    ws, doc = open_app(sim, certs)
    try:
        i, _ = ws.request("GetScript", doc)
        data = json.dumps({"jsonrpc": "2.0", "id": i, "handle": doc, "method": "GetScript",
                           "params": {}}).encode()
        ws.sock.sendall(ws.frame(data[:7], 1, False) + ws.frame(b"", 9) +
                        ws.frame(data[7:20], 0, False) + ws.frame(data[20:], 0, True))
        op, pong = ws.recv()
        assert op == 10
        op, m = ws.recv()
        assert m["id"] == i and m["result"]["qScript"] == sim.find_engine_app(A1)["script"]
    finally:
        ws.close()


def test_make_large_app(sim, certs):
    app = qlik_sim.make_large_app("00000000-0000-4000-8000-0000000000aa", count=50, payload_bytes=10)
    sim.add_engine_app(app)
    ws, doc = open_app(sim, certs, app["id"])
    try:
        d = {"qInfo": {"qType": "L"}, "qAppObjectListDef": {"qType": "masterobject"}}
        h = ws.call("CreateSessionObject", doc, {"qProp": d})["result"]["qReturn"]["qHandle"]
        assert len(ws.call("GetLayout", h)["result"]["qLayout"]["qAppObjectList"]["qItems"]) == 50
    finally:
        ws.close()
    assert all(len(app[k]) == 50 for k in ("dimensions", "measures", "bookmarks", "variables",
                                           "fields"))
    assert len(app["objects"]) == 100
