"""Black-box harness for butlerd: starts the real binary on a free loopback
port with a generated libconfig file, collects its stderr log in a
background thread, and offers small HTTP clients (http.client and a raw
socket one for the cases http.client hides: HEAD bodies, 100-continue,
connection closing).

Everything the harness writes goes to a caller-supplied temporary directory,
so the tests also run from a read-only source tree (make distcheck).
Every wait is bounded by a deadline.
"""

import http.client
import itertools
import json
import glob
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BINARY = os.path.normpath(os.path.join(HERE, "..", "..", "src", "butlerd"))

# The Qlik Sense simulator (tests/qlik-sim): importable as qlik_sim after this.
SIM_DIR = os.path.normpath(os.path.join(HERE, "..", "qlik-sim"))
if SIM_DIR not in sys.path:
    sys.path.insert(0, SIM_DIR)
FIXTURE = os.path.join(SIM_DIR, "fixture.json")
X_QLIK_USER = "UserDirectory=Internal;UserId=sa_repository"
CLIENT_CN = "butlerd-test-client"   # the CN make_certs gives the client certificate

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

BASE62_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

PING_TEXT = "Butler reporting for duty"
JSON_CT = "application/json; charset=utf-8"
TEXT_CT = "text/plain; charset=utf-8"

_seq = itertools.count(1)


def binary():
    """Path of the butlerd binary under test."""
    return os.environ.get("BUTLERD") or DEFAULT_BINARY


def free_port():
    """A currently free TCP port on 127.0.0.1."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def run_cli(args, timeout=15):
    """Run butlerd with args to completion; returns CompletedProcess (text)."""
    return subprocess.run([binary()] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, text=True)


def version():
    """The version string printed by `butlerd -V` (`butlerd <version>`)."""
    cp = run_cli(["-V"])
    out = cp.stdout.strip()
    m = re.fullmatch(r"butlerd (\S+)", out)
    assert cp.returncode == 0 and m, "butlerd -V gave rc=%d stdout=%r stderr=%r" % (
        cp.returncode, cp.stdout, cp.stderr)
    return m.group(1)


# --------------------------------------------------------------------------
# base62 reference implementation (alphabet of spec section 2.3)

def b62encode(n):
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(BASE62_ALPHABET[r])
    return "".join(reversed(out))


def b62decode(s):
    n = 0
    for ch in s:
        n = n * 62 + BASE62_ALPHABET.index(ch)
    return n


def hex16(n):
    return format(n, "x")


# --------------------------------------------------------------------------
# configuration

class Raw:
    """A value written into the config file verbatim."""

    def __init__(self, text):
        self.text = text


DELETE = object()  # override value that removes a key


def shm_name():
    """A private shared-memory name, so that test files run in parallel by
    `make check -j` never share a region."""
    return "/butlerd-t%d-%d" % (os.getpid(), next(_seq))


def base_config(port, tmpdir, shm=None):
    """The minimal test configuration as an ordered nested dict."""
    tmpdir = str(tmpdir)
    return {
        "Butler": {
            "restServerConfig": {
                "enable": True,
                "serverHost": "127.0.0.1",
                "serverPort": port,
            },
            "restServerEndpointsEnable": {
                "apiListEnabledEndpoints": True,
                "base62ToBase16": True,
                "base16ToBase62": True,
                "butlerping": True,
            },
        },
        "butlerd": {
            "workers": 2,
            "pidfile": os.path.join(tmpdir, "butlerd.pid"),
            "logging": {"destination": "stderr", "level": "info"},
            "http": {"maxBodyBytes": 1048576},
            "shm": {"name": shm or shm_name()},
            "kvPersistence": {"file": ""},
        },
    }


def merge(base, overrides):
    """Deep-merge overrides into base (in place) and return base.
    A dict merges into a dict; DELETE removes the key; anything else replaces."""
    for k, v in (overrides or {}).items():
        if v is DELETE:
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def _scalar(v):
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError("cannot render %r" % (v,))


def render(cfg, indent=0):
    """libconfig text for a nested dict: one setting per line."""
    pad = "  " * indent
    lines = []
    for k, v in cfg.items():
        if isinstance(v, dict):
            lines.append("%s%s = {" % (pad, k))
            body = render(v, indent + 1)
            if body:
                lines.append(body)
            lines.append("%s};" % pad)
        elif isinstance(v, list):
            lines.append("%s%s = [ %s ];" % (pad, k, ", ".join(_scalar(x) for x in v)))
        elif isinstance(v, tuple):
            lines.append("%s%s = ( %s );" % (pad, k, ", ".join(_scalar(x) for x in v)))
        else:
            lines.append("%s%s = %s;" % (pad, k, _scalar(v)))
    return "\n".join(lines)


def config_text(port, tmpdir, overrides=None, extra="", shm=None):
    return render(merge(base_config(port, tmpdir, shm), overrides)) + "\n" + extra


def write_file(path, text):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, str(path))


# --------------------------------------------------------------------------
# /proc helpers

def proc_stat(pid):
    """(state, ppid) of pid, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data.rsplit(")", 1)[1].split()
    return rest[0], int(rest[1])


def alive(pid):
    """True if pid exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def children(ppid):
    """Live (non-zombie) child pids of ppid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(int(name))
        if st and st[1] == ppid and st[0] != "Z":
            out.append(int(name))
    return sorted(out)


def is_butlerd(pid):
    """pid runs the butlerd binary (guards against pid reuse before a kill)."""
    try:
        return os.path.realpath("/proc/%d/exe" % pid) == os.path.realpath(binary())
    except OSError:
        return False


def wait_until(pred, timeout, interval=0.05):
    """Poll pred until it returns a true value or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# --------------------------------------------------------------------------
# the daemon

WORKER_STARTED = re.compile(r"worker (\d+) pid (\d+) started gen (\d+)")
GEN_READY = re.compile(r"gen (\d+) ready")


# ---- sanitizer builds (issue 11) ---------------------------------------------
# On a build made with ./configure --enable-sanitizers, .ci/run sets ASAN_OPTIONS,
# UBSAN_OPTIONS and LSAN_OPTIONS with log_path=DIR/name: every report of the daemon,
# its workers and its other children goes to a file DIR/name.PID. conftest.py gives
# each pytest process a directory of its own below DIR and fails the test during
# which a report appeared. A runtime that ignores log_path (GCC's libubsan) writes to
# stderr instead, so the daemon's log is searched for the report headers too.
SANITIZER_VARS = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
SANITIZER_MARKERS = ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "WARNING: AddressSanitizer", "ERROR: UndefinedBehaviorSanitizer")
# (where, lines) for every daemon whose log had a report; appended by Daemon.stop()
LOG_REPORTS = []


def sanitizer_log_paths():
    """The log_path values of the sanitizer option variables, by variable."""
    out = {}
    for var in SANITIZER_VARS:
        for opt in os.environ.get(var, "").split(":"):
            if opt.startswith("log_path="):
                out[var] = opt[len("log_path="):]
    return out


_sanitized = None


def sanitizers_active():
    """True on a sanitizer build: the option variables name a log_path, or the
    binary carries the AddressSanitizer runtime (a plain `make check` there)."""
    global _sanitized
    if sanitizer_log_paths() or os.environ.get("BUTLERD_SANITIZERS") == "1":
        return True
    if _sanitized is None:
        try:
            with open(binary(), "rb") as f:
                _sanitized = b"AddressSanitizer" in f.read()
        except OSError:
            _sanitized = False
    return _sanitized


def sanitizer_reports():
    """Report files written so far under this process's log_path directories."""
    files = set()
    for path in sanitizer_log_paths().values():
        files.update(f for f in glob.glob(path + ".*") if os.path.isfile(f))
    return sorted(files)


def read_report(path, limit=20000):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read(limit)
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)


class DaemonError(AssertionError):
    pass


class Daemon:
    """One butlerd master started with -f on a generated config."""

    def __init__(self, tmpdir, overrides=None, extra="", workers=2, args=()):
        self.tmpdir = str(tmpdir)
        self.overrides = overrides or {}
        self.extra = extra
        self.workers = workers
        self.args = list(args)
        self.port = None
        self.proc = None
        self.lines = []
        self.lock = threading.Lock()
        self.eof = threading.Event()
        self.config_path = os.path.join(self.tmpdir, "butlerd.conf")
        self.pidfile = os.path.join(self.tmpdir, "butlerd.pid")
        self.seen_pids = set()
        self.shm = shm_name()
        self.listen_host = "127.0.0.1"  # as the ready line shows it ("[::1]" for IPv6)

    # config ------------------------------------------------------------
    def config(self, overrides=None, extra=None):
        ov = merge(merge({}, {"butlerd": {"workers": self.workers}}), self.overrides)
        ov = merge(ov, overrides or {})
        return config_text(self.port, self.tmpdir, ov,
                           self.extra if extra is None else extra, self.shm)

    def write_config(self, text):
        write_file(self.config_path, text)

    # start / stop --------------------------------------------------------
    def start(self, attempts=3):
        last = None
        for _ in range(attempts):
            self.port = free_port()
            self.write_config(self.config())
            try:
                self._spawn()
                return self
            except DaemonError as e:
                last = e
                log = self.log()
                self.stop()
                # another process grabbed the port in between: try another
                if "bind" in log.lower() or "in use" in log.lower():
                    continue
                raise
        raise last

    def _spawn(self):
        self.lines = []
        self.eof = threading.Event()
        self.proc = subprocess.Popen(
            [binary(), "-f", "-c", self.config_path] + self.args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, cwd=self.tmpdir)
        t = threading.Thread(target=self._reader, args=(self.proc.stderr,), daemon=True)
        t.start()
        self.wait_log("ready: listening on %s:%d" % (self.listen_host, self.port), READY_TIMEOUT)
        self.record_workers()

    def _reader(self, stream):
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self.lock:
                    self.lines.append(line)
        finally:
            self.eof.set()

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        assert self.running(), "butlerd master is not running\n" + self.log_tail()
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def record_workers(self):
        for pid in self.worker_pids():
            self.seen_pids.add(pid)
        for line in self.snapshot():
            m = WORKER_STARTED.search(line)
            if m:
                self.seen_pids.add(int(m.group(2)))

    def stop(self):
        """SIGTERM, then SIGKILL after a deadline; also kill any leftover
        worker we saw (only if it still runs butlerd)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.record_workers()
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait_exit(STOP_TIMEOUT) is None:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        for pid in list(self.seen_pids):
            if alive(pid) and is_butlerd(pid):
                wait_until(lambda: not alive(pid), 2.0)
                if alive(pid) and is_butlerd(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self.eof.wait(5.0)
        try:
            self.proc.stderr.close()
        except Exception:
            pass
        bad = [l for l in self.snapshot() if any(m in l for m in SANITIZER_MARKERS)]
        if bad:
            LOG_REPORTS.append((self.tmpdir, bad))
        # a SIGKILLed master cannot remove its (uniquely named) region, which the
        # daemon names <shm.name>.<port>
        for path in glob.glob("/dev/shm" + self.shm + ".*"):
            try:
                os.unlink(path)
            except OSError:
                pass

    # log ---------------------------------------------------------------
    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def log(self):
        return "\n".join(self.snapshot())

    def log_tail(self, n=60):
        lines = self.snapshot()
        return "---- butlerd log (last %d of %d lines) ----\n%s" % (
            min(n, len(lines)), len(lines), "\n".join(lines[-n:]))

    def mark(self):
        """Index of the next log line, to search only what comes after."""
        with self.lock:
            return len(self.lines)

    def find(self, pattern, start=0):
        """Lines from index start that contain pattern (str) or match it (regex)."""
        out = []
        for line in self.snapshot()[start:]:
            if isinstance(pattern, str):
                if pattern in line:
                    out.append(line)
            elif pattern.search(line):
                out.append(line)
        return out

    def wait_log(self, pattern, timeout, start=0, count=1):
        """Wait until `count` lines from start contain/match pattern; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(pattern, start)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise DaemonError("timed out after %.1fs waiting for %d log line(s) with %r\n%s"
                                  % (timeout, count, getattr(pattern, "pattern", pattern),
                                     self.log_tail()))
            if self.proc.poll() is not None and self.eof.is_set():
                found = self.find(pattern, start)
                if len(found) >= count:
                    return found
                raise DaemonError("butlerd exited (status %r) before logging %r\n%s"
                                  % (self.proc.returncode, getattr(pattern, "pattern", pattern),
                                     self.log_tail()))
            time.sleep(0.02)

    # processes -----------------------------------------------------------
    def worker_pids(self):
        return children(self.proc.pid)

    def wait_workers(self, n, timeout=10.0, exclude=()):
        """Wait until the master has exactly n live children, none in exclude."""
        exclude = set(exclude)

        def ok():
            pids = self.worker_pids()
            return pids if len(pids) == n and not (set(pids) & exclude) else None
        pids = wait_until(ok, timeout)
        if not pids:
            raise DaemonError("expected %d workers (excluding %s), have %s\n%s"
                              % (n, sorted(exclude), self.worker_pids(), self.log_tail()))
        for p in pids:
            self.seen_pids.add(p)
        return pids

    # http ----------------------------------------------------------------
    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, target, headers=None, body=None, timeout=10):
        return request(self.port, method, target, headers, body, timeout)

    def get(self, target, headers=None):
        return request(self.port, "GET", target, headers)

    def raw(self, timeout=5):
        return RawClient(self.port, timeout)


# --------------------------------------------------------------------------
# HTTP clients


# --------------------------------------------------------------------------
# key-value store daemons (shared by test_kv.py and test_kv_persistence.py)

def kv_overrides(per_ns=1000, namespaces=1000, keys=10000, key_bytes=256, value_bytes=4096,
                 file="", interval=60, enable=True):
    """Config overrides that enable the key-value store with the given limits."""
    return {
        "Butler": {
            "restServerEndpointsEnable": {"keyValueStore": enable},
            "keyValueStore": {"maxKeysPerNamespace": per_ns},
        },
        "butlerd": {
            "shm": {"kvMaxNamespaces": namespaces, "kvMaxKeys": keys,
                    "kvMaxKeyBytes": key_bytes, "kvMaxValueBytes": value_bytes},
            "kvPersistence": {"file": file, "intervalSeconds": interval},
        },
    }


class KvDaemonBase(Daemon):
    """Daemon with a private, random shared-memory name it can clean up."""

    def __init__(self, tmpdir, overrides, workers=2):
        super().__init__(tmpdir, overrides, "", workers)
        self.shm = "/butlerd-t" + secrets.token_hex(8)

    def shm_paths(self):
        return glob.glob("/dev/shm" + self.shm + ".*")

    def cleanup_shm(self):
        for p in self.shm_paths():
            try:
                os.unlink(p)
            except OSError:
                pass


class Resp:
    def __init__(self, status, reason, headers, body, version="HTTP/1.1"):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.version = version

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def text(self):
        return self.body.decode("utf-8")

    def __repr__(self):
        return "<Resp %d %r headers=%r body=%r>" % (self.status, self.reason, self.headers,
                                                  self.body[:300])


def request(port, method, target, headers=None, body=None, timeout=10):
    """One request on a fresh http.client connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return conn_request(c, method, target, headers, body)
    finally:
        c.close()


def conn_request(c, method, target, headers=None, body=None):
    """One request on an existing http.client connection."""
    c.request(method, target, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    return Resp(r.status, r.reason, r.getheaders(), data)


class RawClient:
    """A plain socket speaking HTTP/1.1 by hand."""

    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _recv(self, timeout):
        """Append received bytes to buf; False on EOF. Raises socket.timeout."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            return False
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_head(self, timeout=None):
        """(version, status, reason, headers) of the next response head."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete response head; got %r" % self.buf[:500])
            if not self._recv(left):
                raise EOFError("connection closed before a response head; got %r"
                               % self.buf[:500])
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        return version, status, reason, headers

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("short body: wanted %d bytes, have %d" % (n, len(self.buf)))
            if not self._recv(left):
                raise EOFError("connection closed in body: wanted %d, have %d"
                               % (n, len(self.buf)))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_line(self, deadline):
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no line")
            if not self._recv(left):
                raise EOFError("closed")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_response(self, head=False, timeout=None):
        """The next final-or-interim response. head=True: the request was a
        HEAD (no body follows whatever Content-Length says)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        version, status, reason, headers = self.read_head(timeout)
        r = Resp(status, reason, headers, b"", version)
        if head or status < 200 or status in (204, 304):
            return r
        if (r.header("Transfer-Encoding") or "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._read_line(deadline).split(b";")[0], 16)
                if size == 0:
                    while self._read_line(deadline):
                        pass
                    break
                body += self._read_exact(size, deadline)
                self._read_line(deadline)
            r.body = body
        elif r.header("Content-Length") is not None:
            r.body = self._read_exact(int(r.header("Content-Length")), deadline)
        else:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("body without length never ended")
                if not self._recv(left):
                    break
            r.body, self.buf = self.buf, b""
        return r

    def quiet(self, wait=0.5):
        """True if no further byte arrives within wait (EOF counts as quiet)."""
        if self.buf:
            return False
        try:
            got = self._recv(wait)
        except socket.timeout:
            return True
        return not got

    def closed(self, timeout=3.0):
        """True if the peer closes (EOF or reset) within timeout with no
        further data; False if data arrives or it stays open."""
        if self.buf:
            return False
        try:
            return not self._recv(timeout)
        except socket.timeout:
            return False
        except OSError:
            return True


def json_error(status, error, message, code=None):
    """The exact error body of spec section 1.8."""
    if code:
        return ('{"statusCode":%d,"code":"%s","error":"%s","message":"%s"}'
                % (status, code, error, message)).encode()
    return ('{"statusCode":%d,"error":"%s","message":"%s"}'
            % (status, error, message)).encode()


REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
           413: "Payload Too Large", 415: "Unsupported Media Type", 417: "Expectation Failed",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           507: "Insufficient Storage"}


def jdump(obj):
    """Compact JSON with raw UTF-8, as butlerd sends it (spec 1.7)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def err(status, message, code=None):
    """The error body of spec 1.8 for STATUS, with its standard reason phrase."""
    d = {"statusCode": status}
    if code:
        d["code"] = code
    d["error"] = REASONS[status]
    d["message"] = message
    return jdump(d)


def validation(message):
    return err(400, message, "FST_ERR_VALIDATION")


def check_reply(r, status, body):
    """R is STATUS with exactly BODY as compact JSON (spec 1.7)."""
    assert r.status == status, r
    assert r.body == body, "\n got: %r\nwant: %r" % (r.body, body)
    assert r.header("Content-Type") == JSON_CT, r
    assert r.header("Content-Length") == str(len(r.body)), r


def check_204(r):
    """R is a 204: no body, no Content-Type, no Content-Length (spec 1.7)."""
    assert r.status == 204, r
    assert r.body == b"", r
    assert r.header("Content-Type") is None, r
    assert r.header("Content-Length") is None, r


def not_found(method, target):
    return json_error(404, "Not Found", "Route %s:%s not found" % (method, target))


def peak_rss(pids):
    """The largest VmHWM (peak resident set) of PIDS, in bytes."""
    peak = 0
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
    return peak
