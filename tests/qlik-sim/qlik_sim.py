#!/usr/bin/python3
"""Qlik Sense simulator for butlerd's tests: the Repository Service (QRS) and the
Engine (QIX JSON-RPC over a WebSocket).

Speaks QRS over HTTPS as described in shared/spec/qlik-sense.md sections 1 and 2:
client certificate required (signed by the test CA), the xrfkey rule (403),
X-Qlik-User required (401), the QRS filter language, tasks/apps/users from a
JSON fixture, task starts.  Every request is recorded so tests can assert on
what butlerd sent, and behaviours make it answer slowly, with an error status,
or not at all.  The Engine serves the apps of the fixture's "engine" section over
wss://host:port/app/<appId> (same TLS and X-Qlik-User rules), records every
JSON-RPC call, answers requests that arrive together in reverse order, and takes
faults per method (slow, hang, close mid-call, error answer).

Python 3 standard library only.  Used two ways:

  * as a module (tests):
        sim = QlikSim("tests/qlik-sim/fixture.json", certs_dir=d).start()
        ... sim.qrs_port, sim.requests, sim.starts(), sim.filters(),
        ... sim.set_behaviour(r"/start$", status=503, times=1)
        sim.stop()
  * as a CLI (a newcomer trying butlerd by hand):
        python3 tests/qlik-sim/qlik_sim.py --certs /tmp/qs-certs --qrs-port 4242
        python3 tests/qlik-sim/qlik_sim.py --make-certs /tmp/qs-certs

Structure: _SimServer is a TLS-capable ThreadingHTTPServer that does the TLS
handshake in the connection's own thread and tracks open connections;
_BaseHandler does the recording and the behaviours; _QrsHandler adds the QRS
rules and routes; _EngineHandler does the WebSocket upgrade and then runs one
JSON-RPC session (_EngineSession) on the connection (spec section 3).
"""

import argparse
import collections
import base64
import fcntl
import hashlib
import http.server
import json
import os
import re
import secrets
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURE = os.path.join(HERE, "fixture.json")
DEFAULT_CERTS_DIR = os.path.join(tempfile.gettempdir(), "qlik-sim-certs-%d" % os.getuid())

XRFKEY_RE = re.compile(r"[A-Za-z0-9]{16}")
GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
XRF_FAILED = "XSRF prevention check failed. Possible XSRF discovered."
PARSE_ERROR = "Cannot parse the expression"
INVALID_EXPRESSION = "Invalid expression"

TLS_HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0


# ============================================================== certificates

CERT_DAYS = "3650"


def _openssl(*args, cwd=None):
    cp = subprocess.run(["openssl"] + list(args), cwd=cwd, stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if cp.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], cp.stderr.decode(errors="replace")))


def _new_ca(tmp, name, cn):
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", name + "_key.pem", "-out", name + ".pem", "-days", CERT_DAYS,
             "-sha256", "-subj", "/O=butlerd tests/CN=" + cn,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=tmp)


def _new_leaf(tmp, name, cn, ca_pem, ca_key, ext):
    with open(os.path.join(tmp, name + ".ext"), "w") as f:
        f.write(ext)
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + "_key.pem", "-out", name + ".csr", "-subj", "/O=butlerd tests/CN=" + cn,
             cwd=tmp)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca_pem, "-CAkey", ca_key,
             "-set_serial", "0x" + secrets.token_hex(15), "-days", CERT_DAYS, "-sha256",
             "-extfile", name + ".ext", "-out", name + ".pem", cwd=tmp)


_SERVER_EXT = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
               "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
_CLIENT_EXT = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
               "extendedKeyUsage=clientAuth\n")

CERT_FILES = ("root.pem", "root_key.pem", "server.pem", "server_key.pem", "client.pem",
              "client_key.pem", "other_root.pem", "other_root_key.pem", "other_client.pem",
              "other_client_key.pem")


def make_certs(certs_dir):
    """Create the test PKI in certs_dir with the openssl CLI (EC P-256), idempotently:

      root.pem, root_key.pem            test CA ("the Sense site's root.pem")
      server.pem, server_key.pem        CN=localhost, SAN IP:127.0.0.1, DNS:localhost, signed by root
      client.pem, client_key.pem        CN=butlerd-test-client, signed by root (what Qlik exports)
      other_root.pem, other_root_key.pem  an unrelated CA
      other_client.pem, other_client_key.pem  CN=butlerd-test-client signed by the unrelated CA

    Files that already exist are kept; a (re)created CA re-creates the leaves it signs.
    Safe against concurrent callers (lock file). Returns a dict name -> absolute path."""
    certs_dir = os.path.abspath(certs_dir)
    os.makedirs(certs_dir, exist_ok=True)
    paths = {n: os.path.join(certs_dir, n) for n in CERT_FILES}
    with open(os.path.join(certs_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all(os.path.exists(p) for p in paths.values()):
            return paths
        with tempfile.TemporaryDirectory(dir=certs_dir, prefix=".mk") as tmp:
            made = []
            plan = (("root", "butlerd test CA", [("server", "localhost", _SERVER_EXT),
                                                  ("client", "butlerd-test-client", _CLIENT_EXT)]),
                    ("other_root", "unrelated test CA", [("other_client", "butlerd-test-client",
                                                          _CLIENT_EXT)]))
            for ca, ca_cn, leaves in plan:
                ca_pem, ca_key = paths[ca + ".pem"], paths[ca + "_key.pem"]
                new_ca = not (os.path.exists(ca_pem) and os.path.exists(ca_key))
                if new_ca:
                    _new_ca(tmp, ca, ca_cn)
                    made += [ca + ".pem", ca + "_key.pem"]
                    ca_pem, ca_key = os.path.join(tmp, ca + ".pem"), os.path.join(tmp, ca + "_key.pem")
                for leaf, cn, ext in leaves:
                    if new_ca or not (os.path.exists(paths[leaf + ".pem"]) and
                                      os.path.exists(paths[leaf + "_key.pem"])):
                        _new_leaf(tmp, leaf, cn, ca_pem, ca_key, ext)
                        made += [leaf + ".pem", leaf + "_key.pem"]
            for n in made:
                src = os.path.join(tmp, n)
                os.chmod(src, 0o600 if n.endswith("_key.pem") else 0o644)
                os.replace(src, paths[n])
    return paths


# ============================================================== QRS filters

class FilterError(Exception):
    """A filter QRS refuses with 400; str(e) is the response text."""


_WORD_RE = re.compile(r"[A-Za-z0-9_.:\-]+")
_FIELD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_NUMBER_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?\Z")
OPERATORS = ("eq", "ne", "sw", "ew", "so", "gt", "ge", "lt", "le")
# enum names accepted unquoted for numeric fields
ENUMS = {"taskType": {"reload": 0, "reloadtask": 0, "externalprogram": 1, "externalprogramtask": 1,
                      "usersync": 2, "usersynctask": 2, "distribute": 3, "distributiontask": 3,
                      "preload": 4, "preloadtask": 4}}


def _tokenize(s):
    toks, i, n = [], 0, len(s)
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            i += 1
        elif c in "()":
            toks.append((c, c))
            i += 1
        elif c == "'":
            i += 1
            out = []
            while True:
                if i >= n:
                    raise FilterError(PARSE_ERROR)  # unterminated string
                c = s[i]
                if c == "\\":
                    if i + 1 < n and s[i + 1] in "'\\":
                        out.append(s[i + 1])
                        i += 2
                        continue
                    raise FilterError(PARSE_ERROR)  # lone backslash: must be written \\
                if c == "'":
                    i += 1
                    break
                out.append(c)
                i += 1
            if i < n and s[i] == "'":
                raise FilterError(PARSE_ERROR)  # doubled quote 'O''Brien'
            toks.append(("str", "".join(out)))
        else:
            m = _WORD_RE.match(s, i)
            if not m:
                raise FilterError(PARSE_ERROR)  # double quotes, '+', ...
            toks.append(("word", m.group(0)))
            i = m.end()
    return toks


class _Parser:
    def __init__(self, toks):
        self.toks, self.i = toks, 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def is_kw(self, kw):
        k, v = self.peek()
        return k == "word" and v.lower() == kw

    def parse(self):
        node = self.expr()
        if self.i != len(self.toks):
            raise FilterError(PARSE_ERROR)
        return node

    def expr(self):  # or has the lowest precedence
        node = self.term()
        while self.is_kw("or"):
            self.take()
            node = ("or", node, self.term())
        return node

    def term(self):
        node = self.factor()
        while self.is_kw("and"):
            self.take()
            node = ("and", node, self.factor())
        return node

    def factor(self):
        k, v = self.peek()
        if k == "(":
            self.take()
            if self.peek()[0] == ")":
                raise FilterError(INVALID_EXPRESSION)
            node = self.expr()
            if self.take()[0] != ")":
                raise FilterError(PARSE_ERROR)
            return node
        if k != "word" or not _FIELD_RE.match(v) or v.lower() in ("and", "or"):
            raise FilterError(PARSE_ERROR)
        self.take()
        ok, op = self.take()
        if ok != "word" or op.lower() not in OPERATORS:
            raise FilterError(PARSE_ERROR)
        vk, val = self.take()
        if vk == "str":
            lit = ("str", val)
        elif vk == "word":
            lit = ("bare", val)
        else:
            raise FilterError(PARSE_ERROR)
        return ("cmp", v, op.lower(), lit)


def parse_filter(text):
    """Parse a decoded QRS filter; returns an AST or raises FilterError.
    An empty (or blank) filter gives None (= everything)."""
    if text is None or not text.strip():
        return None
    toks = _tokenize(text)
    if len(toks) == 2 and toks[0][0] == "(" and toks[1][0] == ")":
        raise FilterError(INVALID_EXPRESSION)
    return _Parser(toks).parse()


def _resolve(obj, parts):
    """Values at a dotted path; lists are traversed (any element). Returns (found, values)."""
    cur, found = [obj], True
    for p in parts:
        nxt, hit = [], False
        for v in cur:
            items = v if isinstance(v, list) else [v]
            for it in items:
                if isinstance(it, dict):
                    for k in it:
                        if k.lower() == p.lower():
                            hit = True
                            nxt.append(it[k])
                            break
        cur, found = nxt, found and hit
    leaves = []
    for v in cur:
        leaves.extend(v if isinstance(v, list) else [v])
    return found, leaves


def _compare(field, value, op, lit):
    kind, raw = lit
    if kind == "bare":
        low = raw.lower()
        if low == "null":
            if op == "eq":
                return value is None
            if op == "ne":
                return value is not None
            return False
        if isinstance(value, bool):
            if low not in ("true", "false"):
                return False
            b = low == "true"
            return {"eq": value == b, "ne": value != b}.get(op, False)
        if isinstance(value, (int, float)):
            leaf = field.split(".")[-1]
            if _NUMBER_RE.match(raw):
                num = float(raw)
            elif low in ENUMS.get(leaf, {}):
                num = ENUMS[leaf][low]
            else:
                return False
            return {"eq": value == num, "ne": value != num, "gt": value > num, "ge": value >= num,
                    "lt": value < num, "le": value <= num}.get(op, False)
    if value is None:
        return op == "ne"
    if isinstance(value, bool):
        s = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        return False
    else:
        s = str(value)
    a, b = s.lower(), raw.lower()
    return {"eq": a == b, "ne": a != b, "sw": a.startswith(b), "ew": a.endswith(b), "so": b in a,
            "gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]


def _eval(node, rec):
    if node[0] == "and":
        return _eval(node[1], rec) and _eval(node[2], rec)
    if node[0] == "or":
        return _eval(node[1], rec) or _eval(node[2], rec)
    _, field, op, lit = node
    _, values = _resolve(rec, field.split("."))
    # a collection field holds when ANY element matches, per comparison
    return any(_compare(field, v, op, lit) for v in values)


def _fields(node):
    if node[0] in ("and", "or"):
        return _fields(node[1]) + _fields(node[2])
    return [node[1]]


def filter_records(records, text):
    """Records (dicts) matching the decoded filter text, in order. Raises FilterError."""
    ast = parse_filter(text)
    if ast is None:
        return list(records)
    for f in _fields(ast):
        if records and not any(_resolve(r, f.split("."))[0] for r in records):
            raise FilterError("Unknown property '%s'" % f)
    return [r for r in records if _eval(ast, r)]


# ============================================================== recording

class Headers(dict):
    """Request headers: a dict keyed by the names as received, with
    case-insensitive [], get() and `in`. Repeated headers are joined with ', '."""

    def _key(self, name):
        low = name.lower()
        for k in dict.keys(self):
            if k.lower() == low:
                return k
        return None

    def __getitem__(self, name):
        k = self._key(name)
        if k is None:
            raise KeyError(name)
        return dict.__getitem__(self, k)

    def __contains__(self, name):
        return isinstance(name, str) and self._key(name) is not None

    def get(self, name, default=None):
        k = self._key(name)
        return default if k is None else dict.__getitem__(self, k)


def parse_query(raw):
    """Query string -> dict (last value wins), decoded with urllib.parse.unquote:
    '+' stays '+', as QRS reads it."""
    out = {}
    for part in raw.split("&") if raw else []:
        k, _, v = part.partition("=")
        out[urllib.parse.unquote(k)] = urllib.parse.unquote(v)
    return out


class Request:
    """One recorded request. Attributes:
      service      "qrs"
      method, path (no query), query (raw query string), params (decoded dict)
      headers      Headers (case-insensitive lookups)
      body         bytes
      client_cert  True if the client presented a (verified) certificate
      client_cn    its subject CN, or None
      peer         (host, port) of the client
      time         time.time() when the request was read
      status       the status answered, or None (not answered yet / hung / dropped)
      answered_at  time.time() of the answer, or None
    """

    def __init__(self, **kw):
        self.service = kw.get("service", "qrs")
        self.method = kw["method"]
        self.path = kw["path"]
        self.query = kw.get("query", "")
        self.params = parse_query(self.query)
        self.headers = kw.get("headers", Headers())
        self.body = kw.get("body", b"")
        self.client_cert = kw.get("client_cert", False)
        self.client_cn = kw.get("client_cn")
        self.peer = kw.get("peer")
        self.time = kw.get("time", time.time())
        self.status = None
        self.answered_at = None

    @property
    def filter(self):
        return self.params.get("filter")

    @property
    def xrfkey(self):
        for k, v in self.params.items():
            if k.lower() == "xrfkey":
                return v
        return None

    def json(self):
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def to_dict(self):
        return {"service": self.service, "method": self.method, "path": self.path,
                "query": self.query, "params": self.params, "headers": dict(self.headers),
                "body": self.body.decode("utf-8", "replace"), "client_cert": self.client_cert,
                "client_cn": self.client_cn, "time": self.time, "status": self.status}

    def __repr__(self):
        return "<Request %s %s%s -> %s>" % (self.method, self.path,
                                              "?" + self.query if self.query else "", self.status)


class Behaviour:
    """What set_behaviour() installs; see QlikSim.set_behaviour."""

    def __init__(self, path_regex, status, delay, hang, body, times, method, drop, headers):
        self.path_re = re.compile(path_regex)
        self.status, self.delay, self.hang, self.body = status, delay, hang, body
        self.times, self.method, self.drop = times, method.upper() if method else None, drop
        self.headers = dict(headers or {})
        self.stream_bytes, self.chunked, self.cut_at = None, False, None
        self.applied = 0
        self.released = threading.Event()

    def matches(self, method, path):
        return (self.method is None or self.method == method) and bool(self.path_re.search(path))

    def __repr__(self):
        return "<Behaviour %s %s status=%s delay=%s hang=%s times=%s applied=%d>" % (
            self.method or "*", self.path_re.pattern, self.status, self.delay, self.hang,
            self.times, self.applied)


# ============================================================== servers

class _SimServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer; with a TLS context the handshake runs in the
    connection's thread (a silent client cannot block accept()). Open
    connections are tracked so stop() can cut keep-alive connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, sim, service, tls_ctx):
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.sim, self.service, self.tls_ctx = sim, service, tls_ctx
        self.stopping = threading.Event()
        self.conns = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls_ctx is not None:
            sock = self.tls_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.conns_lock:
            self.conns.add(sock)
        return sock, addr

    def shutdown_request(self, request):
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
            self.sim._note_tls_error(self.service, client_address, exc)
        elif isinstance(exc, (ConnectionError, socket.timeout, OSError)):
            pass  # client went away, idle timeout, or stop() cut the connection
        else:
            super().handle_error(request, client_address)

    def cut_connections(self):
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _BaseHandler(http.server.BaseHTTPRequestHandler):
    """TLS handshake, request reading, recording, behaviours. Subclasses
    implement route(rec) -> (status, body, content_type[, extra_headers])."""

    protocol_version = "HTTP/1.1"
    server_version = "QlikSenseSimulator/1.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    def setup(self):
        # answers are written at once; no Nagle / delayed-ACK stalls, unless the
        # simulator is told to write like a server that has them (split_writes)
        if not self.server.sim.split_writes:
            try:
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(TLS_HANDSHAKE_TIMEOUT)
            self.request.do_handshake()
            self.server.sim._note_handshake(self.server.service, self.request.session_reused)
        super().setup()

    def log_message(self, fmt, *args):
        pass

    # all methods go through one dispatcher
    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _peer_cert(self):
        if not isinstance(self.connection, ssl.SSLSocket):
            return False, None
        cert = self.connection.getpeercert()
        if not cert:
            return False, None
        for rdn in cert.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    return True, v
        return True, None

    def _dispatch(self):
        sim, srv = self.server.sim, self.server
        path, _, query = self.path.partition("?")
        hdrs = Headers()
        for k, v in self.headers.items():
            old = hdrs._key(k)
            if old is None:
                hdrs[k] = v
            else:
                dict.__setitem__(hdrs, old, dict.__getitem__(hdrs, old) + ", " + v)
        body = self._read_body()
        has_cert, cn = self._peer_cert()
        rec = Request(service=srv.service, method=self.command, path=path, query=query,
                      headers=hdrs, body=body, client_cert=has_cert, client_cn=cn,
                      peer=self.client_address[:2], time=time.time())
        sim._record(rec)

        beh = sim._take_behaviour(srv.service, rec.method, rec.path)
        if beh is not None:
            if beh.delay and srv.stopping.wait(beh.delay):
                return self._abandon(rec)
            if beh.hang:
                while not (beh.released.wait(0.05) or srv.stopping.is_set()):
                    pass
                return self._abandon(rec)
            if beh.drop:
                return self._abandon(rec)
        if srv.stopping.is_set():
            return self._abandon(rec)
        if beh is not None and beh.stream_bytes is not None:
            return self._stream(rec, beh.stream_bytes, beh.chunked)

        res = self.route(rec)
        if beh is not None and beh.cut_at is not None and res[0] == 200:
            body = beh.body if beh.body is not None else res[1]
            return self._answer_cut(rec, body, res[2], beh.cut_at)
        if beh is not None and beh.status is not None and res[0] not in (401, 403):
            b = beh.body
            if isinstance(b, (dict, list)):
                res = (beh.status, b, "application/json; charset=utf-8", beh.headers)
            else:
                res = (beh.status, b if b is not None else b"", "text/plain; charset=utf-8",
                       beh.headers)
        self._answer(rec, *res)

    def _abandon(self, rec=None):
        """Close the connection without an answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if rec is not None:
            self.server.sim._notify(rec)

    def _stream(self, rec, nbytes, chunked):
        """A 200 JSON array of condensed apps, exactly nbytes long (whitespace
        pads it), written in 1 MiB pieces and never held in memory; with a
        Content-Length, or chunked without one. A client that hangs up early
        ends it."""
        elem = json.dumps(_condensed_app({"id": "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c01",
                                          "name": "A huge reply"})).encode()
        piece = b",".join([elem] * (1048576 // (len(elem) + 1)))
        self.server.sim._answered(rec, 200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(nbytes))
        self.end_headers()

        def write(data):
            if chunked:
                data = b"%x\r\n%s\r\n" % (len(data), data)
            self.wfile.write(data)

        try:
            write(b"[")
            left, first = nbytes - 2, True
            while left > 0 and not self.server.stopping.is_set():
                chunk = piece if first else b"," + piece
                if len(chunk) > left:
                    chunk = b" " * min(left, len(piece))
                else:
                    first = False
                write(chunk)
                left -= len(chunk)
            write(b"]")
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (OSError, ssl.SSLError):
            pass  # the client gave up
        self.close_connection = True
        self.server.sim._notify(rec)

    def _answer_cut(self, rec, body, ctype, cut_at):
        """A 200 whose head promises the whole body, and whose connection ends
        after CUT_AT bytes of it."""
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        self.server.sim._answered(rec, 200)
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self._headers_buffer.append(b"\r\n" + data[:cut_at])
        self.flush_headers()
        self._abandon(rec)

    def _answer(self, rec, status, body, ctype, extra=None):
        if isinstance(body, (dict, list)):
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = body or b""
        # recorded before the bytes leave: a client that has the answer sees it in sim.requests
        self.server.sim._answered(rec, status)
        self.send_response(status)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if status in (204, 304) or status < 200:
            data = b""  # no body, no Content-Length (RFC 9110)
        else:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
        if self.command == "HEAD":
            data = b""
        if self.server.sim.split_writes and data:
            # head, then body: two writes (two TLS records), Nagle on
            self._headers_buffer.append(b"\r\n")
            self.flush_headers()
            self.wfile.write(data)
        else:
            # head and body in one write (one TLS record)
            self._headers_buffer.append(b"\r\n" + data)
            self.flush_headers()
        self.server.sim._notify(rec)

    def route(self, rec):  # pragma: no cover - overridden
        return 404, "Not found", "text/plain; charset=utf-8"


def _condensed_task(t):
    return {"id": t["id"], "name": t["name"], "taskType": t.get("taskType", 0),
            "enabled": t.get("enabled", True), "privileges": None}


def _generic_full_task(t):
    return {k: v for k, v in t.items() if k not in ("app", "operational")}


def _condensed_app(a):
    return {"id": a["id"], "name": a["name"], "appId": a.get("appId", ""),
            "publishTime": a.get("publishTime"), "published": a.get("published", False),
            "stream": a.get("stream"), "privileges": None}


# The Repository Service's paths: template -> method -> query parameter names,
# generated from Qlik's QRS OpenAPI description by gen_qrs_paths.py (see README.md).
QRS_PATHS_FILE = os.path.join(HERE, "qrs_paths.json")


def _load_qrs_paths():
    with open(QRS_PATHS_FILE, encoding="utf-8") as f:
        t = json.load(f)
    out = []
    for tpl, ops in t["paths"].items():
        segs = tpl.strip("/").split("/")
        rx = "/".join("[^/]+" if x.startswith("{") else re.escape(x) for x in segs)
        literal = sum(1 for x in segs if not x.startswith("{"))
        out.append((t["basePath"] + tpl, re.compile(re.escape(t["basePath"]) + "/" + rx + r"\Z",
                                                      re.I), literal, ops))
    # the most literal template first: /qrs/app/full is not /qrs/app/{id}
    out.sort(key=lambda x: -x[2])
    return out


QRS_PATHS = _load_qrs_paths()


def qrs_operation(path):
    """(template, {method: [query parameter names]}) of the QRS path PATH (without
    the query), or None when the QRS API has no such path."""
    for tpl, rx, _, ops in QRS_PATHS:
        if rx.match(path):
            return tpl, ops
    return None


class _QrsHandler(_BaseHandler):
    """The QRS rules (spec qlik-sense.md 2.1, 1) and endpoints (2.3)."""

    ROUTES = [
        ("GET", r"/qrs/about", "about"),
        ("GET", r"/qrs/task", "task_list"),
        ("GET", r"/qrs/task/full", "task_full"),
        ("GET", r"/qrs/reloadtask", "reloadtask_list"),
        ("GET", r"/qrs/reloadtask/full", "reloadtask_full"),
        ("GET", r"/qrs/reloadtask/(?P<id>[^/]+)", "reloadtask_one"),
        ("GET", r"/qrs/reloadtask/(?P<id>[^/]+)/scriptlog", "scriptlog_ticket"),
        ("GET", r"/qrs/reloadtask/(?P<id>[^/]+)/scriptlogfile", "scriptlogfile_ticket"),
        ("GET", r"/qrs/download/reloadtask/(?P<ticket>[^/]+)/(?P<name>[^/]+)", "download"),
        ("POST", r"/qrs/task/start/many", "start_many"),
        ("POST", r"/qrs/task/(?P<id>[^/]+)/start", "start"),
        ("POST", r"/qrs/task/(?P<id>[^/]+)/start/synchronous", "start_sync"),
        ("GET", r"/qrs/app", "app_list"),
        ("GET", r"/qrs/app/full", "app_full"),
        ("GET", r"/qrs/app/(?P<id>[^/]+)", "app_one"),
        ("GET", r"/qrs/user/(?P<id>[^/]+)", "user_one"),
    ]
    _COMPILED = [(m, re.compile(p + r"\Z", re.I), n) for m, p, n in ROUTES]
    TEXT = "text/plain; charset=utf-8"
    JSON = "application/json; charset=utf-8"

    def route(self, rec):
        # 2.1: xrfkey in the query AND the header, equal, 16 x [A-Za-z0-9]
        qkeys = [urllib.parse.unquote(v) for k, _, v in
                 (p.partition("=") for p in rec.query.split("&") if p)
                 if urllib.parse.unquote(k).lower() == "xrfkey"]
        hkey = rec.headers.get("X-Qlik-Xrfkey")
        if len(qkeys) != 1 or hkey is None or qkeys[0] != hkey or not XRFKEY_RE.fullmatch(hkey):
            return 403, XRF_FAILED, self.TEXT
        # 1: the user the call runs as
        user = rec.headers.get("X-Qlik-User")
        if not user or not _parse_qlik_user(user):
            return 401, "Unauthorized: X-Qlik-User missing or malformed", self.TEXT
        # the QRS API's paths and methods (qrs_paths.json)
        op = qrs_operation(rec.path)
        if op is None:
            return 404, "Not found", self.TEXT
        if rec.method not in op[1]:
            return 405, "Method not allowed", self.TEXT, {"Allow": ", ".join(op[1])}
        # unknown names: refused so a misspelt "filter" fails a test instead of matching all
        known = {n.lower() for n in op[1][rec.method]} | {"xrfkey"}
        for k, _, _ in (p.partition("=") for p in rec.query.split("&") if p):
            if urllib.parse.unquote(k).lower() not in known:
                return 400, "Unknown query parameter '%s' for %s %s" % (
                    urllib.parse.unquote(k), rec.method, op[0]), self.TEXT
        for method, rx, name in self._COMPILED:
            m = rx.match(rec.path)
            if m and method == rec.method:
                return getattr(self, "r_" + name)(rec, **m.groupdict())
        return 501, "Not simulated: %s %s" % (rec.method, op[0]), self.TEXT

    # ---- helpers
    @property
    def data(self):
        return self.server.sim

    def _filtered(self, rec, records, shape):
        try:
            # QRS takes query parameter names in any case
            flt = next((v for k, v in rec.params.items() if k.lower() == "filter"), None)
            found = filter_records(records, flt)
        except FilterError as e:
            return 400, str(e), self.TEXT
        return 200, [shape(r) for r in found], self.JSON

    # ---- endpoints
    def r_about(self, rec):
        return 200, self.data.about, self.JSON

    def r_task_list(self, rec):
        return self._filtered(rec, self.data.tasks, _condensed_task)

    def r_task_full(self, rec):
        return self._filtered(rec, self.data.tasks, _generic_full_task)

    def r_reloadtask_list(self, rec):
        return self._filtered(rec, self.data.reload_tasks(), _condensed_task)

    def r_reloadtask_full(self, rec):
        return self._filtered(rec, self.data.reload_tasks(), dict)

    def r_reloadtask_one(self, rec, id):
        t = self.data.find_task(id)
        if t is None or t.get("taskType", 0) != 0:
            return 404, "Not found", self.TEXT
        return 200, t, self.JSON

    # Script logs (notifications.md 11): a ticket per request, the log from the
    # fixture's "scriptLogs" (task id -> CRLF text) or sim.script_logs.
    def _ticket(self, rec, id, param, want):
        t = self.data.find_task(id)
        if t is None or t.get("taskType", 0) != 0:
            return 404, "Not found", self.TEXT
        ler = t.get("operational", {}).get("lastExecutionResult", {})
        got = next((v for k, v in rec.params.items() if k.lower() == param), None)
        if got is None or got.lower() != str(ler.get(want, "")).lower():
            return 404, "Not found", self.TEXT
        return 200, {"value": self.data._new_ticket(t["id"])}, self.JSON

    def r_scriptlog_ticket(self, rec, id):
        return self._ticket(rec, id, "filereferenceid", "fileReferenceID")

    def r_scriptlogfile_ticket(self, rec, id):
        return self._ticket(rec, id, "executionresultid", "id")

    def r_download(self, rec, ticket, name):
        task = self.data._take_ticket(ticket)
        text = self.data.script_logs.get(task) if task else None
        if text is None:
            return 404, "Not found", self.TEXT
        return 200, text.encode("utf-8") if isinstance(text, str) else text, self.TEXT

    def r_start(self, rec, id):
        t = self.data.find_task(id)
        if t is None:
            return 404, "Not found", self.TEXT
        self.data._note_start(t["id"], "start")
        return 204, b"", self.TEXT

    def r_start_sync(self, rec, id):
        t = self.data.find_task(id)
        if t is None:
            return 404, "Not found", self.TEXT
        session = str(uuid.uuid4())
        self.data._note_start(t["id"], "synchronous", session)
        return 201, {"value": session}, self.JSON

    def r_start_many(self, rec):
        try:
            ids = json.loads(rec.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return 400, "Invalid body", self.TEXT
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return 400, "Invalid body", self.TEXT
        for i in ids:
            t = self.data.find_task(i)
            if t is not None:
                self.data._note_start(t["id"], "many")
        return 204, b"", self.TEXT

    def r_app_list(self, rec):
        if not self.data.full_app_list:
            return self._filtered(rec, self.data.apps, _condensed_app)
        if any(k.lower() == "filter" for k in rec.params):
            return self._filtered(rec, self.data.apps, dict)
        # the whole list is encoded once: a bench asks for it many times
        key = (id(self.data.apps), len(self.data.apps))
        if self.data._app_list_cache[0] != key:
            self.data._app_list_cache = (key, json.dumps(self.data.apps, ensure_ascii=False)
                                         .encode("utf-8"))
        return 200, self.data._app_list_cache[1], self.JSON

    def r_app_full(self, rec):
        return self._filtered(rec, self.data.apps, dict)

    def r_app_one(self, rec, id):
        a = next((a for a in self.data.apps if a["id"].lower() == id.lower()), None)
        return (200, a, self.JSON) if a else (404, "Not found", self.TEXT)

    def r_user_one(self, rec, id):
        u = next((u for u in self.data.users if u["id"].lower() == id.lower()), None)
        return (200, u, self.JSON) if u else (404, "Not found", self.TEXT)


def _parse_qlik_user(value):
    """'UserDirectory=Internal; UserId=sa_repository' -> (dir, id), or None."""
    kv = {}
    for part in value.split(";"):
        k, sep, v = part.partition("=")
        if sep:
            kv[k.strip().lower()] = v.strip()
    if kv.get("userdirectory") and kv.get("userid"):
        return kv["userdirectory"], kv["userid"]
    return None


# ============================================================== Engine (QIX)
#
# JSON-RPC 2.0 over a WebSocket (spec qlik-sense.md section 3). The WebSocket
# server side is written here by hand on purpose: the standard library has none,
# and owning the framing lets tests inject faults (close mid-call, hang, slow,
# fragmented messages, answers in any order).

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ENGINE_APP_NOT_FOUND = 1003
ENGINE_METHOD_NOT_FOUND = -32601
ENGINE_INVALID_HANDLE = -32602
ENGINE_INVALID_PARAMS = -32602

# The engine's methods: object type -> method -> [{"name", "optional"}] in order,
# generated from Qlik's QIX schema by gen_qix_methods.py (see README.md).
QIX_METHODS_FILE = os.path.join(HERE, "qix_methods.json")
with open(QIX_METHODS_FILE, encoding="utf-8") as _f:
    QIX_METHODS = json.load(_f)["types"]
del _f

# the object type behind each kind of handle the simulator hands out
_HANDLE_TYPES = {"doc": "Doc", "session": "GenericObject", "object": "GenericObject",
                 "dimension": "GenericDimension", "measure": "GenericMeasure",
                 "bookmark": "GenericBookmark", "variable": "GenericVariable"}


def check_qix_params(qtype, method, params):
    """Checks a call as the engine does: METHOD must exist on object type QTYPE,
    and PARAMS (an array by position, an object by name, or None for none) must
    fit its parameters. Returns (params as a dict by name, error), where error is
    None or (code, message, parameter)."""
    spec = QIX_METHODS.get(qtype, {}).get(method)
    names = [p["name"] for p in spec or []]
    if params is None:
        params = []
    if isinstance(params, list):
        named = dict(zip(names, params))
    elif isinstance(params, dict):
        named = params
    else:
        return {}, (ENGINE_INVALID_PARAMS, "Invalid params", "params must be an array or an object")
    if spec is None:
        return named, (ENGINE_METHOD_NOT_FOUND, "Method not found", method)
    if isinstance(params, list) and len(params) > len(spec):
        return named, (ENGINE_INVALID_PARAMS, "Invalid params",
                       "%s takes at most %d params, got %d" % (method, len(spec), len(params)))
    if isinstance(params, dict):
        extra = [k for k in params if k not in names]
        if extra:
            return named, (ENGINE_INVALID_PARAMS, "Invalid params", extra[0])
    missing = [p["name"] for p in spec if not p["optional"] and p["name"] not in named]
    if missing:
        return named, (ENGINE_INVALID_PARAMS, "Invalid params", missing[0])
    return named, None


class EngineFault:
    """What set_engine_fault() installs; see QlikSim.set_engine_fault."""

    def __init__(self, method, delay, hang, close, error, result, times, app):
        self.method, self.delay, self.hang, self.close = method, delay, hang, close
        self.error, self.result, self.times, self.app = error, result, times, app
        self.applied = 0

    def matches(self, method, app):
        return ((self.method is None or self.method == method) and
                (self.app is None or (app or "").lower() == self.app.lower()) and
                (self.times is None or self.applied < self.times))


class EngineCall:
    """One recorded JSON-RPC request: session (int, one per WebSocket), app (the
    app id of the URL), id, handle, method, params (dict, positional ones named),
    raw_params (as sent: a list, a dict or None), time, answered (False while
    unanswered, hung or cut), error (code or None)."""

    def __init__(self, session, app, msg, params):
        self.session, self.app = session, app
        self.id, self.handle, self.method = msg.get("id"), msg.get("handle"), msg.get("method")
        self.params, self.raw_params, self.time = params, msg.get("params"), time.time()
        self.answered, self.error = False, None

    def to_dict(self):
        return dict(vars(self))

    def __repr__(self):
        return "<EngineCall s%d %s h=%s id=%s %s>" % (self.session, self.method, self.handle,
                                                     self.id, json.dumps(self.params)[:80])


def _json_path(obj, path):
    """Value at a JSON-pointer-like path ("/qInfo/qId") or None."""
    cur = obj
    for part in [p for p in path.split("/") if p]:
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _qdata(src, qdata):
    return {k: _json_path(src, v) for k, v in (qdata or {}).items() if isinstance(v, str)}


def make_many_apps(count, app_bytes=2048):
    """COUNT apps shaped as QRS's full app objects, each about APP_BYTES of JSON
    (the description pads them), named "Many apps 000000", ... in that order."""
    apps = []
    for i in range(count):
        a = {"id": "%08x-7e57-4a99-8000-%012x" % (0x5a000000 + i, i),
             "name": "Many apps %06d" % i, "appId": "",
             "publishTime": "2026-10-01T08:00:00.000Z", "published": i % 3 != 0,
             "stream": {"id": "aaec8d41-5201-43ab-809f-3063750dfafd", "name": "Everyone"},
             "tags": [{"id": "cd58c4ab-6d0a-5016-af13-%012x" % (i % 7), "name": "Tag %d" % (i % 7)}],
             "customProperties": [{"id": "0e2a7f9c-6a61-4c5e-9d55-%012x" % i,
                                   "value": "group %d" % (i % 11),
                                   "definition": {"id": "9b1c2d3e-4f50-4a6b-8c7d-000000000001",
                                                  "name": "taskGroup"}}],
             "owner": {"id": "6abbda84-780c-5ce0-8819-94b1ecce4a3a", "userId": "joe",
                       "userDirectory": "LAB", "name": "Joe Smith"},
             "lastReloadTime": "2026-11-22T10:01:00.000Z", "fileSize": 1048576 + i,
             "description": "", "createdDate": "2026-09-01T08:00:00.000Z",
             "modifiedDate": "2026-11-22T10:01:00.000Z",
             "modifiedByUserName": "INTERNAL\\sa_repository", "schemaPath": "App"}
        pad = app_bytes - len(json.dumps(a))
        a["description"] = ("App %d of a large site, \"quoted\", [bracketed] {braced}. " % i
                            * (pad // 40 + 1))[:max(pad, 0)]
        apps.append(a)
    return apps


def make_many_tasks(base, count, tag="Bulk", task_bytes=8192):
    """COUNT reload tasks made from the fixture task BASE, all tagged TAG, each about
    TASK_BYTES of JSON in task/full (40 custom properties, padded to the size), with
    the IDs %08x-b0b0-4c1d-8e2f-... and names "Bulk reload 00000", ... in that order,
    as a site that tags thousands of tasks richly has."""
    tasks = []
    for i in range(count):
        tid = "%08x-b0b0-4c1d-8e2f-%012x" % (0x6b000000 + i, i)
        cps = [{"id": "0e2a7f9c-6a61-4c5e-9d55-%012x" % (i * 40 + j),
                "value": "value %d of task %d" % (j, i),
                "definition": {"id": "9b1c2d3e-4f50-4a6b-8c7d-%012x" % j,
                               "name": "property%02d" % j}} for j in range(40)]
        t = dict(base, id=tid, name="Bulk reload %05d" % i, customProperties=cps,
                 tags=[{"id": "6e0c9d7f-0000-4000-8000-00000000b01c", "name": tag}])
        pad = task_bytes - len(json.dumps({k: v for k, v in t.items()
                                           if k not in ("app", "operational")}))
        if pad > 0:
            cps[0]["value"] += " " + "x" * (pad - 1)
        tasks.append(t)
    return tasks


def make_large_app(app_id, count=1000, payload_bytes=1000, title="Large app"):
    """An engine app with `count` objects of each kind (sheets, master objects,
    dimensions, measures, bookmarks, variables, fields), each with about
    payload_bytes of property text, for memory and speed tests."""
    pad = "x" * payload_bytes
    app = {"id": app_id,
           "properties": {"qTitle": title, "description": "generated", "qHasSectionAccess": False},
           "script": "// generated\nLOAD 1 AS a AUTOGENERATE 1;\n",
           "objects": [], "dimensions": [], "measures": [], "bookmarks": [], "variables": [],
           "fields": [], "media": [], "connections": []}
    for i in range(count):
        for kind in ("sheet", "masterobject"):
            qid = "%s-%05d" % (kind, i)
            app["objects"].append({
                "qProperty": {"qInfo": {"qId": qid, "qType": kind},
                              "qMetaDef": {"title": "%s %d" % (kind, i), "description": pad}},
                "qChildren": [], "qEmbeddedSnapshotRef": None})
        app["dimensions"].append({"qInfo": {"qId": "dim-%05d" % i, "qType": "dimension"},
                                  "qDim": {"qFieldDefs": ["F%d" % i], "title": pad},
                                  "qMetaDef": {"title": "Dim %d" % i}})
        app["measures"].append({"qInfo": {"qId": "mea-%05d" % i, "qType": "measure"},
                                "qMeasure": {"qDef": "Sum(F%d)" % i, "qLabel": pad},
                                "qMetaDef": {"title": "Measure %d" % i}})
        app["bookmarks"].append({"qProp": {"qInfo": {"qId": "bm-%05d" % i, "qType": "bookmark"},
                                           "qMetaDef": {"title": "Bookmark %d" % i,
                                                        "description": pad}},
                                 "qBookmark": {"qStateData": [], "qUtcModifyTime": i}})
        app["variables"].append({"qProp": {"qInfo": {"qId": "var-%05d" % i, "qType": "variable"},
                                           "qName": "v%d" % i, "qDefinition": pad},
                                 "qIsScriptCreated": i % 2 == 0})
        app["fields"].append({"qName": "F%d" % i, "qSrcTables": ["T"], "qTags": ["$numeric"]})
    return app


class _EngineSession:
    """State of one WebSocket session: the handles it has handed out."""

    def __init__(self, sim, number, url_app):
        self.sim, self.number, self.url_app = sim, number, url_app
        self.handles = {}   # handle -> (kind, data)
        self.next_handle = 1
        self.app = None     # the app dict once OpenDoc succeeded
        self.doc_handle = None

    def new_handle(self, kind, data):
        h = self.next_handle
        self.next_handle += 1
        self.handles[h] = (kind, data)
        return h

    # ---- one request: check(), then call() if it passed
    def check(self, method, handle, raw):
        """(params by name, error): the handle must exist, the method must exist on
        its object type (qix_methods.json) and the params must fit it."""
        if handle == -1:
            qtype = "Global"
        elif isinstance(handle, int) and handle in self.handles:
            qtype = _HANDLE_TYPES[self.handles[handle][0]]
        else:
            named = raw if isinstance(raw, dict) else {}
            return named, (ENGINE_INVALID_HANDLE, "Invalid handle", str(handle))
        return check_qix_params(qtype, method, raw)

    def call(self, method, handle, p):
        if handle == -1:
            return self.global_call(method, p)
        kind, data = self.handles[handle]
        fn = getattr(self, "m_%s_%s" % (kind, method), None)
        if fn is None:  # a real method that the simulator does not do
            return None, (ENGINE_METHOD_NOT_FOUND, "Method not found", method + " (not simulated)")
        return fn(data, p), None

    def global_call(self, method, p):
        sim = self.sim
        if method == "EngineVersion":
            return {"qVersion": {"qComponentVersion": sim.engine_version}}, None
        if method == "GetDocList":
            return {"qDocList": [{"qDocName": a["properties"].get("qTitle", a["id"]),
                                  "qDocId": a["id"], "qTitle": a["properties"].get("qTitle", "")}
                                 for a in sim.engine_apps]}, None
        if method == "OpenDoc":
            app = sim.find_engine_app(str(p.get("qDocName", "")))
            if app is None:
                return None, (ENGINE_APP_NOT_FOUND, "App not found", str(p.get("qDocName", "")))
            self.app = app
            if self.doc_handle is None:
                self.doc_handle = self.new_handle("doc", app)
            return {"qReturn": {"qType": "Doc", "qHandle": self.doc_handle,
                                "qGenericId": app["id"]}}, None
        return None, (ENGINE_METHOD_NOT_FOUND, "Method not found", method + " (not simulated)")

    # ---- doc methods
    def m_doc_GetAppProperties(self, app, p):
        return {"qProp": app.get("properties", {})}

    def m_doc_GetAppLayout(self, app, p):
        props = app.get("properties", {})
        return {"qLayout": {"qTitle": props.get("qTitle", ""), "qFileName": app["id"],
                            "qHasScript": bool(app.get("script")), "qIsOpenedWithoutData": False,
                            "qLastReloadTime": props.get("qLastReloadTime", "")}}

    def m_doc_GetScript(self, app, p):
        return {"qScript": app.get("script", "")}

    def m_doc_GetLineage(self, app, p):
        return {"qLineage": app.get("lineage", [])}

    def m_doc_GetConnections(self, app, p):
        return {"qConnections": app.get("connections", [])}

    def m_doc_GetConnection(self, app, p):
        cid = str(p.get("qConnectionId", ""))
        c = next((c for c in app.get("connections", []) if c.get("qId") == cid), None)
        if c is None:
            raise _EngineError(2, "Connection not found", cid)
        return {"qConnection": c}

    def _open(self, kind, items, key, p):
        qid = str(p.get("qId", ""))
        it = next((x for x in items if _json_path(x, key) == qid), None)
        if it is None:  # what the engine answers for an id it does not know
            return {"qReturn": {"qType": None, "qHandle": None}}
        return {"qReturn": {"qType": "Generic" + kind.capitalize(),
                            "qHandle": self.new_handle(kind, it), "qGenericId": qid}}

    def m_doc_GetObject(self, app, p):
        return self._open("object", app.get("objects", []), "/qProperty/qInfo/qId", p)

    def m_doc_GetDimension(self, app, p):
        return self._open("dimension", app.get("dimensions", []), "/qInfo/qId", p)

    def m_doc_GetMeasure(self, app, p):
        return self._open("measure", app.get("measures", []), "/qInfo/qId", p)

    def m_doc_GetBookmark(self, app, p):
        return self._open("bookmark", app.get("bookmarks", []), "/qProp/qInfo/qId", p)

    def m_doc_GetVariableById(self, app, p):
        return self._open("variable", app.get("variables", []), "/qProp/qInfo/qId", p)

    def m_doc_CreateSessionObject(self, app, p):
        prop = p["qProp"]
        if not isinstance(prop, dict):
            raise _EngineError(ENGINE_INVALID_PARAMS, "Invalid params", "qProp")
        info = prop.get("qInfo") or {}
        h = self.new_handle("session", prop)
        return {"qReturn": {"qType": "GenericObject", "qHandle": h,
                            "qGenericType": info.get("qType"), "qGenericId": info.get("qId")}}

    def m_doc_DestroySessionObject(self, app, p):
        qid = p.get("qId")
        gone = [h for h, (k, d) in self.handles.items()
                if k == "session" and (d.get("qInfo") or {}).get("qId") == qid]
        for h in gone:
            del self.handles[h]
        return {"qSuccess": bool(gone)}

    def m_doc_DoReload(self, app, p):
        ok = self.sim._reload(app, p)
        return {"qReturn": ok}

    def m_doc_DoReloadEx(self, app, p):
        ok = self.sim._reload(app, p.get("qParams", {}))
        return {"qResult": {"qSuccess": ok,
                            "qScriptLogFile": "C:\\ProgramData\\Qlik\\Sense\\Log\\Script\\%s.log"
                                              % app["id"]}}

    def m_doc_DoSave(self, app, p):
        self.sim._note_save(app)
        return {}

    # ---- session list objects: GetLayout computes the list
    def m_session_GetLayout(self, prop, p):
        app = self.app or {}
        info = prop.get("qInfo", {})
        layout = {"qInfo": info, "qMeta": {}}
        if "qAppObjectListDef" in prop:
            d = prop["qAppObjectListDef"]
            items = [{"qInfo": o["qProperty"]["qInfo"], "qMeta": o["qProperty"].get("qMetaDef", {}),
                      "qData": _qdata(o["qProperty"], d.get("qData"))}
                     for o in app.get("objects", []) if o["qProperty"]["qInfo"]["qType"] == d.get("qType")]
            layout["qAppObjectList"] = {"qItems": items}
        elif "qDimensionListDef" in prop or "qMeasureListDef" in prop:
            key = "qDimensionList" if "qDimensionListDef" in prop else "qMeasureList"
            d = prop[key + "Def"]
            src = app.get("dimensions" if key == "qDimensionList" else "measures", [])
            layout[key] = {"qItems": [{"qInfo": x["qInfo"], "qMeta": x.get("qMetaDef", {}),
                                       "qData": _qdata(x, d.get("qData"))} for x in src]}
        elif "qBookmarkListDef" in prop:
            d = prop["qBookmarkListDef"]
            layout["qBookmarkList"] = {"qItems": [
                {"qInfo": b["qProp"]["qInfo"], "qMeta": b["qProp"].get("qMetaDef", {}),
                 "qData": _qdata(b["qProp"], d.get("qData"))}
                for b in app.get("bookmarks", []) if b["qProp"]["qInfo"]["qType"] == d.get("qType", "bookmark")]}
        elif "qVariableListDef" in prop:
            d = prop["qVariableListDef"]
            items = []
            for v in app.get("variables", []):
                if v.get("qIsReserved") and not d.get("qShowReserved"):
                    continue
                if v.get("qIsConfig") and not d.get("qShowConfig"):
                    continue
                it = {"qName": v["qProp"].get("qName"), "qDefinition": v["qProp"].get("qDefinition"),
                      "qInfo": v["qProp"]["qInfo"], "qData": _qdata(v["qProp"], d.get("qData"))}
                for f in ("qIsScriptCreated", "qIsReserved", "qIsConfig"):
                    if v.get(f):
                        it[f] = True
                items.append(it)
            layout["qVariableList"] = {"qItems": items}
        elif "qFieldListDef" in prop:
            d = prop["qFieldListDef"]
            items = []
            for f in app.get("fields", []):
                if f.get("qIsSystem") and not d.get("qShowSystem"):
                    continue
                if f.get("qIsHidden") and not d.get("qShowHidden"):
                    continue
                if f.get("qIsSemantic") and not d.get("qShowSemantic"):
                    continue
                it = dict(f)
                if not d.get("qShowSrcTables"):
                    it.pop("qSrcTables", None)
                items.append(it)
            layout["qFieldList"] = {"qItems": items}
        elif "qMediaListDef" in prop:
            layout["qMediaList"] = {"qItems": app.get("media", [])}
        return {"qLayout": layout}

    # ---- generic objects, dimensions, measures, bookmarks, variables
    def m_object_GetFullPropertyTree(self, o, p):
        return {"qPropEntry": o}

    def m_object_GetProperties(self, o, p):
        return {"qProp": o["qProperty"]}

    def m_object_GetLayout(self, o, p):
        q = o["qProperty"]
        return {"qLayout": {"qInfo": q["qInfo"], "qMeta": q.get("qMetaDef", {})}}

    def m_dimension_GetProperties(self, d, p):
        return {"qProp": d}

    def m_dimension_GetLayout(self, d, p):
        return {"qLayout": {"qInfo": d["qInfo"], "qMeta": d.get("qMetaDef", {}),
                            "qDim": d.get("qDim", {})}}

    def m_measure_GetProperties(self, m, p):
        return {"qProp": m}

    def m_measure_GetLayout(self, m, p):
        return {"qLayout": {"qInfo": m["qInfo"], "qMeta": m.get("qMetaDef", {}),
                            "qMeasure": m.get("qMeasure", {})}}

    def m_bookmark_GetProperties(self, b, p):
        return {"qProp": b["qProp"]}

    def m_bookmark_GetLayout(self, b, p):
        return {"qLayout": {"qInfo": b["qProp"]["qInfo"], "qMeta": b["qProp"].get("qMetaDef", {}),
                            "qBookmark": b.get("qBookmark", {})}}

    def m_variable_GetProperties(self, v, p):
        return {"qProp": v["qProp"]}


class _EngineError(Exception):
    def __init__(self, code, message, parameter=""):
        super().__init__(message)
        self.code, self.message, self.parameter = code, message, parameter


class _EngineHandler(_BaseHandler):
    """The WebSocket upgrade (X-Qlik-User required, 401 otherwise) and the
    JSON-RPC session. Behaviours (set_behaviour(..., service="engine")) apply to
    the upgrade request; set_engine_fault() to single calls."""

    APP_RE = re.compile(r"/app/([^/?]*)\Z")

    def route(self, rec):
        if not self.APP_RE.match(rec.path):
            return 404, "Not found", "text/plain; charset=utf-8"
        user = rec.headers.get("X-Qlik-User")
        if not user or not _parse_qlik_user(user):
            return 401, "Unauthorized: X-Qlik-User missing or malformed", "text/plain; charset=utf-8"
        if ((rec.headers.get("Upgrade") or "").lower() != "websocket" or
                "upgrade" not in (rec.headers.get("Connection") or "").lower() or
                rec.headers.get("Sec-WebSocket-Version") != "13" or
                not rec.headers.get("Sec-WebSocket-Key") or rec.method != "GET"):
            return 400, "Not a WebSocket upgrade", "text/plain; charset=utf-8"
        return 101, rec.headers.get("Sec-WebSocket-Key"), "websocket"

    def _answer(self, rec, status, body, ctype, extra=None):
        if status != 101:
            return super()._answer(rec, status, body, ctype, extra)
        sim = self.server.sim
        accept = base64.b64encode(hashlib.sha1((body + WS_GUID).encode()).digest()).decode()
        sim._answered(rec, 101)
        self.close_connection = True
        self._wlock = threading.Lock()
        head = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: %s\r\n\r\n" % accept).encode()
        note = json.dumps({"jsonrpc": "2.0", "method": "OnConnected",
                           "params": {"qSessionState": "SESSION_CREATED"}}).encode()
        # the head and the first notification in one write: clients must keep
        # what they read past the head
        self.wfile.write(head + self._frame(1, note))
        self.wfile.flush()
        sim._notify(rec)
        url_app = urllib.parse.unquote(self.APP_RE.match(rec.path).group(1))
        sess = sim._new_engine_session(url_app)
        try:
            self._ws_loop(sess)
        except (OSError, ValueError):
            pass

    # ---- framing (server side: frames out unmasked, frames in must be masked)
    @staticmethod
    def _frame(opcode, data, fin=True):
        n = len(data)
        b0 = (0x80 if fin else 0) | opcode
        if n < 126:
            h = struct.pack("!BB", b0, n)
        elif n < 65536:
            h = struct.pack("!BBH", b0, 126, n)
        else:
            h = struct.pack("!BBQ", b0, 127, n)
        return h + data

    def _send_msg(self, data, opcode=1):
        frag = self.server.sim.engine_fragment_bytes
        with self._wlock:
            if frag and len(data) > frag and opcode in (1, 2):
                parts = [data[i:i + frag] for i in range(0, len(data), frag)]
                out = b"".join(self._frame(opcode if i == 0 else 0, part, i == len(parts) - 1)
                               for i, part in enumerate(parts))
            else:
                out = self._frame(opcode, data)
            self.wfile.write(out)
            self.wfile.flush()

    def _parse_frame(self, buf):
        """Takes one complete frame off the front of BUF: (fin, opcode, payload),
        or None if BUF does not hold a whole frame yet."""
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, off = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, off = struct.unpack_from("!Q", buf, 2)[0], 10
        if not b1 & 0x80:
            raise ValueError("client frame without mask")
        if n > self.server.sim.engine_max_message:
            raise ValueError("frame too large")
        if len(buf) < off + 4 + n:
            return None
        mask = bytes(buf[off:off + 4])
        data = bytes(buf[off + 4:off + 4 + n])
        del buf[:off + 4 + n]
        if n:
            m = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
            data = (int.from_bytes(data, "big") ^ m).to_bytes(n, "big")
        return b0 & 0x80, b0 & 0x0F, data

    def _ws_loop(self, sess):
        """One thread per session reads, answers and writes (an SSL socket must
        not be read and written from two threads at once). Requests that arrive
        together form a batch, answered after the whole batch was read."""
        srv, sock = self.server, self.connection
        sock.settimeout(0.2)
        buf, parts, eof = bytearray(), [], False
        while not eof:
            batch, closing = [], None
            while closing is None:
                fr = self._parse_frame(buf)
                if fr is not None:
                    fin, op, data = fr
                    if op == 8:
                        closing = data
                    elif op == 9:
                        self._send_msg(data, 10)
                    elif op in (0, 1, 2):
                        parts.append(data)
                        if fin:
                            batch.append(b"".join(parts))
                            parts = []
                    continue
                partial = len(buf) > 0
                pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
                if not (partial or pending):
                    ready = select.select([sock], [], [], 0.003 if batch else 0.05)[0]
                    if not ready:
                        if batch:
                            break
                        if srv.stopping.is_set():
                            return
                        continue
                try:
                    chunk = sock.recv(1 << 16)
                except socket.timeout:
                    if srv.stopping.is_set():
                        return
                    continue
                except ssl.SSLWantReadError:
                    continue
                if not chunk:
                    eof = True
                    break
                buf += chunk
            answers = []
            for data in batch:
                out = self._handle(sess, data)
                if out == "close":
                    self._abandon()
                    return
                if out is not None:
                    answers.append(out)
            self._flush_answers(answers)
            if closing is not None:
                self._send_msg(closing[:2], 8)
                return

    def _flush_answers(self, answers):
        if self.server.sim.engine_reorder:
            answers = answers[::-1]
        if answers and self.server.sim.engine_notify_batches:
            self._send_msg(json.dumps({"jsonrpc": "2.0", "method": "OnEngineNotice",
                                       "params": {"qBatch": len(answers)}}).encode())
        for call, data in answers:
            # recorded before the bytes leave: a client that has the answer sees it
            self.server.sim._engine_answered(call)
            self._send_msg(data)

    def _handle(self, sess, data):
        sim = self.server.sim
        try:
            msg = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None, json.dumps({"jsonrpc": "2.0", "id": None, "error": {
                "code": -32700, "message": "Parse error"}}).encode()
        params, invalid = sess.check(msg.get("method"), msg.get("handle"), msg.get("params"))
        call = EngineCall(sess.number, sess.url_app, msg, params)
        sim._record_engine_call(call)
        fault = sim._take_engine_fault(call.method, sess.url_app)
        if fault is not None:
            if fault.delay and srv_wait(self.server, fault.delay):
                return "close"
            if fault.close:
                return "close"
            if fault.hang:
                return None
        err = None
        try:
            if fault is not None and fault.error is not None:
                res, err = None, tuple(fault.error) + ("",) * (3 - len(fault.error))
            elif fault is not None and fault.result is not None:
                res = fault.result
            elif invalid is not None:
                res, err = None, invalid
            else:
                res, err = sess.call(call.method, call.handle, params)
        except _EngineError as e:
            res, err = None, (e.code, e.message, e.parameter)
        out = {"jsonrpc": "2.0", "id": call.id}
        if err is not None:
            call.error = err[0]
            out["error"] = {"code": err[0], "parameter": err[2], "message": err[1]}
        else:
            out["result"] = res
            if call.method in ("DoReload", "DoReloadEx", "DoSave"):
                out["change"] = [call.handle]  # clients ignore these
        return call, json.dumps(out, ensure_ascii=False).encode("utf-8")


def srv_wait(srv, seconds):
    """Sleep, but return True at once if the server is stopping."""
    return srv.stopping.wait(seconds)


# ============================================================== the simulator

class QlikSim:
    """The Qlik Sense simulator (QRS for now).

    QlikSim(fixture_path, host="127.0.0.1", qrs_port=0, certs_dir=None,
            require_client_cert=True, use_tls=True, on_request=None)

    fixture_path: a JSON file (or an already loaded dict) with "tasks", "apps",
    "users", "about". certs_dir: where make_certs() puts the test PKI (created
    if needed; default: DEFAULT_CERTS_DIR, in the temporary directory, never
    the source tree). on_request: called with each Request once it has been
    answered. on_tls_error: called with each tls_errors entry."""

    def __init__(self, fixture_path=DEFAULT_FIXTURE, host="127.0.0.1", qrs_port=0,
                 certs_dir=None, require_client_cert=True, use_tls=True, on_request=None,
                 on_tls_error=None, engine_port=0, on_engine_call=None):
        self.host = host
        self.certs_dir = os.path.abspath(certs_dir or DEFAULT_CERTS_DIR)
        self.require_client_cert = require_client_cert
        self.use_tls = use_tls
        self.on_request = on_request
        self.on_tls_error = on_tls_error
        self.on_engine_call = on_engine_call
        self._lock = threading.Lock()
        self._requests = []
        self._tls_errors = []
        self._started = []
        self._behaviours = []
        self._cond = threading.Condition(self._lock)
        # service name -> [handler class, requested port, bound port, server, thread]
        self._services = {"qrs": [_QrsHandler, qrs_port, None, None, None],
                          "engine": [_EngineHandler, engine_port, None, None, None]}
        self._engine_calls = []
        self._engine_faults = []
        self._engine_sessions = 0
        self._reloads = []
        self._saves = []
        self.engine_reorder = True        # answer a batch of requests last-first
        self.engine_fragment_bytes = 0    # >0: send messages in frames of this size
        # QRS/HTTP answers: head and body in two writes, Nagle left on (as some
        # servers do); applies to connections accepted afterwards
        self.split_writes = False
        # GET /qrs/app answers the full app objects (a few KB each) rather than the
        # condensed ones: what the apps list costs butlerd on a large site
        self.full_app_list = False
        self._app_list_cache = (None, b"")
        self.tls_handshakes = collections.Counter()  # (service, "full"|"resumed") -> count
        self.engine_notify_batches = False  # push a notification before each batch of answers
        self.engine_max_message = 256 << 20
        self.load_fixture(fixture_path)

    # ---- fixture
    def load_fixture(self, fixture):
        """(Re)load the fixture from a path or a dict."""
        if not isinstance(fixture, dict):
            with open(fixture, encoding="utf-8") as f:
                fixture = json.load(f)
        self.fixture = fixture
        self.tasks = fixture.get("tasks", [])
        self.apps = fixture.get("apps", [])
        self.users = fixture.get("users", [])
        self.script_logs = {k.lower(): v for k, v in fixture.get("scriptLogs", {}).items()}
        self._tickets = {}
        self.about = fixture.get("about", {"buildVersion": "14.187.4", "schemaPath": "About"})
        engine = fixture.get("engine", {})
        self.engine_version = engine.get("version", "12.612.0")
        self.engine_apps = engine.get("apps", [])

    def _new_ticket(self, task_id):
        t = str(uuid.uuid4())
        with self._lock:
            self._tickets[t] = task_id.lower()
        return t

    def _take_ticket(self, ticket):
        with self._lock:
            return self._tickets.pop(ticket, None)

    def find_engine_app(self, app_id):
        low = app_id.lower()
        return next((a for a in self.engine_apps if a["id"].lower() == low), None)

    def add_engine_app(self, app):
        """Serve one more engine app (e.g. make_large_app(...))."""
        self.engine_apps.append(app)
        return app

    def find_task(self, task_id):
        low = task_id.lower()
        return next((t for t in self.tasks if t["id"].lower() == low), None)

    def reload_tasks(self):
        return [t for t in self.tasks if t.get("taskType", 0) == 0]

    # ---- lifecycle
    def _tls_context(self):
        paths = make_certs(self.certs_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(paths["server.pem"], paths["server_key.pem"])
        ctx.load_verify_locations(paths["root.pem"])
        ctx.verify_mode = ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
        return ctx

    def start(self):
        """Bind and serve in background threads. After stop(), start() binds
        the same port(s) again. Returns self."""
        ctx = self._tls_context() if self.use_tls else None
        for name, svc in self._services.items():
            if svc[3] is not None:
                continue
            handler, want, bound = svc[0], svc[1], svc[2]
            port = bound if bound else want
            srv = _SimServer((self.host, port), handler, self, name, ctx)
            svc[2] = srv.server_address[1]
            svc[3] = srv
            svc[4] = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                      name="qlik-sim-" + name, daemon=True)
            svc[4].start()
        return self

    def stop(self, service=None):
        """Stop serving: the listening socket is closed (new connections are
        refused), open connections are cut, hung and delayed requests are
        abandoned without an answer. service="qrs" or "engine" stops only that
        one; start() brings it back on the same port."""
        for name, svc in self._services.items():
            if service is not None and name != service:
                continue
            srv, th = svc[3], svc[4]
            if srv is None:
                continue
            srv.stopping.set()
            srv.shutdown()
            srv.server_close()
            srv.cut_connections()
            th.join(5)
            svc[3] = svc[4] = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def qrs_port(self):
        return self._services["qrs"][2]

    @property
    def engine_port(self):
        return self._services["engine"][2]

    @property
    def engine_url(self):
        return "%s://%s:%d/app/" % ("wss" if self.use_tls else "ws", self.host, self.engine_port)

    @property
    def running(self):
        return self._services["qrs"][3] is not None

    @property
    def qrs_url(self):
        return "%s://%s:%d/qrs/" % ("https" if self.use_tls else "http", self.host, self.qrs_port)

    @property
    def certs(self):
        """dict file name -> path of the test PKI (see make_certs)."""
        return make_certs(self.certs_dir)

    # ---- recording
    def _record(self, rec):
        with self._cond:
            self._requests.append(rec)
            self._cond.notify_all()

    def _answered(self, rec, status):
        with self._cond:
            rec.status = status
            rec.answered_at = time.time()
            self._cond.notify_all()

    def _notify(self, rec):
        if self.on_request:
            try:
                self.on_request(rec)
            except Exception:  # a logging hook must not break the server
                pass

    def _note_start(self, task_id, how, session=None):
        with self._lock:
            self._started.append({"taskId": task_id, "how": how, "session": session,
                                  "time": time.time()})

    def _note_handshake(self, service, resumed):
        with self._lock:
            self.tls_handshakes[(service, "resumed" if resumed else "full")] += 1

    def handshakes(self, service="qrs"):
        """TLS handshakes completed so far: {"full": n, "resumed": n}."""
        with self._lock:
            return {k: self.tls_handshakes[(service, k)] for k in ("full", "resumed")}

    def _note_tls_error(self, service, addr, exc):
        with self._cond:
            self._tls_errors.append({"service": service, "peer": addr[:2] if addr else None,
                                     "error": str(exc), "time": time.time()})
            self._cond.notify_all()
        if self.on_tls_error:
            self.on_tls_error(self._tls_errors[-1])

    @property
    def requests(self):
        """Snapshot (a new list) of the recorded requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def tls_errors(self):
        """Snapshot of failed TLS handshakes: [{"service","peer","error","time"}]."""
        with self._lock:
            return list(self._tls_errors)

    @property
    def started_tasks(self):
        """Tasks the simulator accepted to start (any of the three start
        endpoints): [{"taskId", "how": "start"|"synchronous"|"many", "session", "time"}]."""
        with self._lock:
            return list(self._started)

    def clear(self):
        """Forget recorded requests, TLS errors, started tasks, engine calls,
        reloads and saves."""
        with self._lock:
            self._requests.clear()
            self._tls_errors.clear()
            self._started.clear()
            self._engine_calls.clear()
            self._reloads.clear()
            self._saves.clear()

    # ---- engine recording and faults
    def _new_engine_session(self, url_app):
        with self._lock:
            self._engine_sessions += 1
            return _EngineSession(self, self._engine_sessions, url_app)

    def _record_engine_call(self, call):
        with self._cond:
            self._engine_calls.append(call)
            self._cond.notify_all()
        if self.on_engine_call:
            try:
                self.on_engine_call(call)
            except Exception:  # a logging hook must not break the server
                pass

    def _engine_answered(self, call):
        if call is None:
            return
        with self._cond:
            call.answered = True
            self._cond.notify_all()

    def _reload(self, app, p):
        """DoReload: an app with "reloadSeconds" takes that long; one with
        "reloadFails": true fails."""
        with self._cond:
            self._reloads.append({"app": app["id"], "params": dict(p), "time": time.time()})
            self._cond.notify_all()
        if app.get("reloadSeconds"):
            time.sleep(app["reloadSeconds"])
        return not app.get("reloadFails", False)

    def _note_save(self, app):
        with self._cond:
            self._saves.append({"app": app["id"], "time": time.time()})
            self._cond.notify_all()

    def engine_calls(self, method=None):
        """Snapshot of the recorded engine calls (EngineCall), optionally of one method."""
        with self._lock:
            return [c for c in self._engine_calls if method is None or c.method == method]

    @property
    def reloads(self):
        """DoReload/DoReloadEx calls: [{"app", "params", "time"}]."""
        with self._lock:
            return list(self._reloads)

    @property
    def saves(self):
        """DoSave calls: [{"app", "time"}]."""
        with self._lock:
            return list(self._saves)

    def set_engine_fault(self, method=None, delay=0.0, hang=False, close=False, error=None,
                         result=None, times=None, app=None):
        """Change how engine calls of METHOD (None = any) on sessions of APP (the
        URL's app id; None = any) are answered:
          delay   seconds to wait first
          hang    never answer this call (the session stays up)
          close   cut the connection (no close frame) instead of answering
          error   (code, message[, parameter]): answer with this JSON-RPC error
          result  answer with this result instead
          times   apply to this many calls only (None = all)
        The first installed fault that matches applies. Returns the EngineFault."""
        f = EngineFault(method, delay, hang, close, error, result, times, app)
        with self._lock:
            self._engine_faults.append(f)
        return f

    def clear_engine_faults(self):
        with self._lock:
            self._engine_faults.clear()

    def _take_engine_fault(self, method, app):
        with self._lock:
            for f in self._engine_faults:
                if f.matches(method, app):
                    f.applied += 1
                    return f
        return None

    def wait_for_engine_calls(self, count, method=None, timeout=5.0):
        """Wait until at least count engine calls (of METHOD) were recorded."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [c for c in self._engine_calls if method is None or c.method == method]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%d of %d engine calls after %.1f s" % (len(got), count, timeout))
                self._cond.wait(left)

    def starts(self, accepted_only=False):
        """Task ids from the paths of POST /qrs/task/{id}/start requests, in
        arrival order, as sent; accepted_only keeps only those answered 2xx."""
        rx = re.compile(r"/qrs/task/([^/]+)/start\Z", re.I)
        out = []
        for r in self.requests:
            m = rx.match(r.path)
            if r.method == "POST" and m:
                if not accepted_only or (r.status is not None and 200 <= r.status < 300):
                    out.append(m.group(1))
        return out

    def filters(self, path_regex=None):
        """Decoded `filter` parameters of the recorded requests, in order
        (optionally only for paths matching path_regex)."""
        rx = re.compile(path_regex) if path_regex else None
        return [r.filter for r in self.requests
                if r.filter is not None and (rx is None or rx.search(r.path))]

    def wait_for_requests(self, count, path_regex=None, timeout=5.0, answered=False):
        """Wait until at least count requests (matching path_regex; answered
        ones if answered=True) have been recorded. Returns them, or raises
        TimeoutError."""
        rx = re.compile(path_regex) if path_regex else None
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self._requests if (rx is None or rx.search(r.path)) and
                       (not answered or r.status is not None)]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%d of %d requests after %.1f s" % (len(got), count, timeout))
                self._cond.wait(left)

    # ---- behaviours
    def set_behaviour(self, path_regex, status=None, delay=0.0, hang=False, body=None, times=None,
                      method=None, drop=False, headers=None, service="qrs", stream_bytes=None,
                      chunked=False, cut_at=None):
        """Change how requests whose path (no query) matches path_regex
        (re.search) and method (None = any) are answered:
          delay   seconds to wait before answering (or before hang/drop)
          hang    never answer: keep the connection open until the behaviour is
                  cleared or the simulator stops, then close it without answer
          drop    close the connection at once without an answer
          status  answer with this status (body: str/bytes, or a dict/list sent
                  as JSON; headers: extra response headers) instead of the normal
                  answer. The xrfkey (403) and X-Qlik-User (401) checks still come
                  first.
          times   apply to this many requests only (None = all)
          stream_bytes  answer 200 with a JSON array of apps exactly this many
                  bytes long, generated while it is sent (a huge reply that the
                  simulator never holds in memory); chunked: without a
                  Content-Length, in chunked transfer encoding
          cut_at  a normal 200 answer (or BODY, if given) whose connection ends
                  after this many bytes of its body (the Content-Length is the
                  whole body's)
        The first installed behaviour that matches applies. Returns the
        Behaviour; clear_behaviour(b) removes just that one."""
        b = Behaviour(path_regex, status, delay, hang, body, times, method, drop, headers)
        b.stream_bytes, b.chunked, b.cut_at = stream_bytes, chunked, cut_at
        b.service = service
        with self._lock:
            self._behaviours.append(b)
        return b

    def clear_behaviour(self, b):
        with self._lock:
            if b in self._behaviours:
                self._behaviours.remove(b)
        b.released.set()

    def clear_behaviours(self):
        """Remove every behaviour; hung requests are then closed without answer."""
        with self._lock:
            bs, self._behaviours = self._behaviours, []
        for b in bs:
            b.released.set()

    def _take_behaviour(self, service, method, path):
        with self._lock:
            for b in self._behaviours:
                if b.service == service and b.matches(method, path) and (
                        b.times is None or b.applied < b.times):
                    b.applied += 1
                    return b
        return None


# ============================================================== CLI

def _log_line(rec):
    if rec is None:
        return
    t = time.strftime("%H:%M:%S", time.localtime(rec.time)) + ".%03d" % int(rec.time * 1000 % 1000)
    q = "?" + rec.query if rec.query else ""
    line = "%s %s %s%s -> %s  cert=%s user=%r" % (
        t, rec.method, rec.path, q, rec.status if rec.status is not None else "no answer",
        rec.client_cn if rec.client_cert else "none", rec.headers.get("X-Qlik-User"))
    if rec.filter is not None:
        line += "\n    filter: %s" % rec.filter
    if rec.body:
        line += "\n    body: %s" % rec.body[:500].decode("utf-8", "replace")
    print(line, flush=True)


def _log_engine_call(c):
    t = time.strftime("%H:%M:%S", time.localtime(c.time)) + ".%03d" % int(c.time * 1000 % 1000)
    print("%s engine session %d app %s: %s handle %s id %s %s" % (
        t, c.session, c.app, c.method, c.handle, c.id, json.dumps(c.params)[:200]), flush=True)


def _log_tls(e):
    print("%s TLS handshake from %s failed: %s" % (time.strftime("%H:%M:%S"), e["peer"], e["error"]),
          flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Qlik Sense simulator (QRS and Engine) for butlerd")
    ap.add_argument("--fixture", default=DEFAULT_FIXTURE, help="fixture JSON (default: %(default)s)")
    ap.add_argument("--certs", help="certificate directory (created with openssl if needed)")
    ap.add_argument("--make-certs", metavar="DIR", help="create the test certificates in DIR and exit")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--qrs-port", type=int, default=4242, help="0 = any free port")
    ap.add_argument("--engine-port", type=int, default=4747, help="0 = any free port")
    ap.add_argument("--large-app", metavar="N", type=int, default=0,
                    help="also serve app 00000000-0000-4000-8000-00000000000a with N objects of each kind")
    ap.add_argument("--many-apps", metavar="N", type=int, default=0,
                    help="also serve N generated apps, and GET /qrs/app with full app objects")
    ap.add_argument("--app-bytes", metavar="B", type=int, default=2048,
                    help="size of each app of --many-apps in JSON (default: %(default)s)")
    ap.add_argument("--no-client-cert", action="store_true",
                    help="do not require a client certificate (still verified if presented)")
    ap.add_argument("--no-tls", action="store_true", help="plain HTTP (configQRS.useSSL = false)")
    ap.add_argument("--quiet", action="store_true", help="do not log requests")
    ap.add_argument("--split-writes", action="store_true",
                    help="write each answer's head and body separately, with Nagle on")
    a = ap.parse_args(argv)

    if a.make_certs:
        paths = make_certs(a.make_certs)
        for n in CERT_FILES:
            print(paths[n])
        return 0
    if not a.certs and not a.no_tls:
        ap.error("--certs DIR is required (or --make-certs DIR / --no-tls)")
    sim = QlikSim(a.fixture, host=a.host, qrs_port=a.qrs_port, certs_dir=a.certs,
                  require_client_cert=not a.no_client_cert, use_tls=not a.no_tls,
                  on_request=None if a.quiet else _log_line,
                  on_tls_error=None if a.quiet else _log_tls, engine_port=a.engine_port,
                  on_engine_call=None if a.quiet else _log_engine_call)
    sim.split_writes = a.split_writes
    if a.many_apps:
        sim.apps.extend(make_many_apps(a.many_apps, a.app_bytes))
        sim.full_app_list = True
    if a.large_app:
        sim.add_engine_app(make_large_app("00000000-0000-4000-8000-00000000000a", a.large_app))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    sim.start()
    print("qlik-sim: QRS listening on %s (certificates in %s, %d tasks, %d apps); "
          "Engine on %s (%d apps)"
          % (sim.qrs_url, sim.certs_dir, len(sim.tasks), len(sim.apps), sim.engine_url,
             len(sim.engine_apps)), flush=True)
    while not done.wait(0.5):
        pass
    sim.stop()
    print("qlik-sim: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
