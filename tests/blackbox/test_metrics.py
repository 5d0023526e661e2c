"""GET /metrics (butlerd(8), "MONITORING"; butlerd.conf(5), butlerd.metrics): the
Prometheus text format 0.0.4, checked by a strict checker of our own and by
`promtool check metrics` (Debian package prometheus), and counters that match
the requests this test sent, per route pattern, method and status class."""

import json
import math
import re
import shutil
import subprocess

import pytest

import harness
from harness import Raw

PROM_CT = "text/plain; version=0.0.4; charset=utf-8"

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class FormatError(AssertionError):
    pass


def _labels(text, lineno):
    """Parses `a="x",b="y"` (the inside of the braces) strictly."""
    out = {}
    i = 0
    while i < len(text):
        m = re.match(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", text[i:])
        if not m:
            raise FormatError("line %d: bad label at %r" % (lineno, text[i:]))
        name = m.group(1)
        i += m.end()
        val = []
        while True:
            if i >= len(text):
                raise FormatError("line %d: unterminated label value" % lineno)
            c = text[i]
            if c == "\\":
                nxt = text[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise FormatError("line %d: bad escape \\%s" % (lineno, nxt))
                val.append({"n": "\n"}.get(nxt, nxt))
                i += 2
                continue
            if c == '"':
                i += 1
                break
            if c == "\n":
                raise FormatError("line %d: newline in a label value" % lineno)
            val.append(c)
            i += 1
        if name in out:
            raise FormatError("line %d: label %s twice" % (lineno, name))
        if name.startswith("__"):
            raise FormatError("line %d: reserved label %s" % (lineno, name))
        out[name] = "".join(val)
        if i < len(text):
            if text[i] != ",":
                raise FormatError("line %d: expected ',' in labels" % lineno)
            i += 1
    return out


def _value(s, lineno):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", s):
        raise FormatError("line %d: bad value %r" % (lineno, s))
    return float(s)


def parse(text):
    """A strict reader of the text exposition format 0.0.4 plus the naming rules
    butlerd follows. Returns {family: {"type", "help", "samples": [(name, labels,
    value)]}}; raises FormatError on anything promtool or a careful reader would
    object to."""
    if not text.endswith("\n"):
        raise FormatError("the exposition must end with a newline")
    fams = {}
    current = None
    closed = set()
    series = set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            raise FormatError("line %d: empty line" % n)
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (\S+) (.*)", line)
            if not m:
                raise FormatError("line %d: bad comment %r" % (n, line))
            kind, name, rest = m.groups()
            if not NAME_RE.match(name) or not name.startswith("butlerd_"):
                raise FormatError("line %d: bad family name %r" % (n, name))
            if name in closed:
                raise FormatError("line %d: family %s appears twice" % (n, name))
            if current and current != name:
                closed.add(current)
            f = fams.setdefault(name, {"type": None, "help": None, "samples": []})
            if f["samples"]:
                raise FormatError("line %d: %s after the samples of %s" % (n, kind, name))
            if kind == "HELP":
                if f["help"] is not None or not rest.strip():
                    raise FormatError("line %d: HELP twice or empty" % n)
                f["help"] = rest
            else:
                if f["type"] is not None or rest not in TYPES:
                    raise FormatError("line %d: TYPE twice or unknown" % n)
                f["type"] = rest
            current = name
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        if not m:
            raise FormatError("line %d: bad sample %r" % (n, line))
        sname, _, ltext, vtext = m.groups()
        labels = _labels(ltext or "", n)
        value = _value(vtext, n)
        fam = current
        f = fams.get(fam)
        if f is None or f["type"] is None or f["help"] is None:
            raise FormatError("line %d: sample before its HELP and TYPE" % n)
        allowed = {fam}
        if f["type"] == "histogram":
            allowed = {fam + "_bucket", fam + "_sum", fam + "_count"}
        elif f["type"] == "summary":
            allowed = {fam, fam + "_sum", fam + "_count"}
        if sname not in allowed:
            raise FormatError("line %d: sample %s outside its family %s" % (n, sname, fam))
        if f["type"] == "counter" and (not fam.endswith("_total") or value < 0):
            raise FormatError("line %d: counter %s must end in _total, >= 0" % (n, fam))
        if f["type"] == "histogram" and sname.endswith("_bucket") and "le" not in labels:
            raise FormatError("line %d: bucket without le" % n)
        key = (sname, tuple(sorted(labels.items())))
        if key in series:
            raise FormatError("line %d: duplicate series %r" % (n, key))
        series.add(key)
        if math.isnan(value):
            raise FormatError("line %d: NaN" % n)
        f["samples"].append((sname, labels, value))
    for name, f in fams.items():
        if f["type"] is None or f["help"] is None:
            raise FormatError("family %s lacks HELP or TYPE" % name)
        if f["type"] == "histogram":
            _check_histogram(name, f["samples"])
    return fams


def _check_histogram(name, samples):
    groups = {}
    for sname, labels, v in samples:
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            g["buckets"].append((_value(labels["le"], 0), v))
        elif sname.endswith("_sum"):
            g["sum"] = v
        else:
            g["count"] = v
    for rest, g in groups.items():
        b = g["buckets"]
        if not b or b[-1][0] != math.inf or g["sum"] is None or g["count"] is None:
            raise FormatError("%s%r: needs buckets ending in +Inf, _sum, _count" % (name, rest))
        if [le for le, _ in b] != sorted(le for le, _ in b):
            raise FormatError("%s%r: le not increasing" % (name, rest))
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            raise FormatError("%s%r: buckets not cumulative" % (name, rest))
        if b[-1][1] != g["count"] or g["sum"] < 0:
            raise FormatError("%s%r: +Inf bucket != count" % (name, rest))


def scrape(d, headers=None):
    r = d.get("/metrics", headers)
    assert r.status == 200, r
    assert r.header("Content-Type") == PROM_CT
    return r.text, parse(r.text)


def requests_by(fams, scrapes=True):
    """{(route, method, status class): count}; without the scrapes themselves
    unless SCRAPES."""
    return {(s[1]["route"], s[1]["method"], s[1]["status"]): s[2]
            for s in fams["butlerd_http_requests_total"]["samples"]
            if scrapes or s[1]["route"] != "/metrics"}


def value(fams, name, **labels):
    for sname, ls, v in fams[name]["samples"]:
        if sname == name and ls == labels:
            return v
    raise KeyError((name, labels))


def hist_count(fams, name, **labels):
    return next(v for s, ls, v in fams[name]["samples"] if s == name + "_count" and ls == labels)


OVERRIDES = {"butlerd": {"metrics": {"enable": True}},
             "Butler": {"restServerEndpointsEnable": {"keyValueStore": True}}}


@pytest.fixture
def md(start_daemon):
    return start_daemon(OVERRIDES)


def post_kv(d, ns, key, value):
    body = json.dumps({"key": key, "value": value}).encode()
    return d.request("POST", "/v4/keyvalues/" + ns, {"Content-Type": "application/json"}, body)


def test_counters_match_a_mixed_workload(md):
    expect = {}

    def sent(route, method, status_class, n=1):
        k = (route, method, status_class)
        expect[k] = expect.get(k, 0) + n

    for _ in range(5):
        assert md.get("/v4/butlerping").status == 200
    sent("/v4/butlerping", "GET", "2xx", 5)
    for _ in range(2):
        assert md.get("/v2/butlerPing").status == 200
        assert md.get("/V2/BUTLERPING").status == 200  # /v2 is case-insensitive
    sent("/v2/butlerPing", "GET", "2xx", 4)
    for _ in range(3):
        assert md.get("/v4/base16tobase62?base16=ff").status == 200
    sent("/v4/base16tobase62", "GET", "2xx", 3)
    assert md.get("/v4/base16tobase62").status == 400
    sent("/v4/base16tobase62", "GET", "4xx")
    for p in ("/nope", "/v4/butlerping/x", "/metrics/x", "/v4/%ff"):
        assert md.get(p).status == 404
    sent("unmatched", "other", "4xx", 4)
    # a method with no route is "unmatched" too: client input never becomes a label
    assert md.request("BREW", "/v4/butlerping").status == 404
    sent("unmatched", "other", "4xx")
    keys = [("ns1", "a", "xyz"), ("ns1", "bb", "12345"), ("ns1", "c", ""),
            ("ns2", "key", "v" * 100), ("ns2", "k2", "\u00e9")]
    for ns, k, v in keys:
        assert post_kv(md, ns, k, v).status == 201
    sent("/v4/keyvalues/:namespace", "POST", "2xx", len(keys))
    r = md.request("POST", "/v4/keyvalues/ns1", {"Content-Type": "application/json"}, b"{")
    assert r.status == 400
    sent("/v4/keyvalues/:namespace", "POST", "4xx")
    assert md.get("/v4/keyvalues/ns1?key=a").status == 200
    assert md.get("/v4/keyvalues/ns1?key=zzz").status in (400, 404)
    sent("/v4/keyvalues/:namespace", "GET", "2xx")
    sent("/v4/keyvalues/:namespace", "GET", "4xx")
    assert md.request("DELETE", "/v4/keyvalues/ns2/k2").status == 204
    sent("/v4/keyvalues/:namespace/:key", "DELETE", "2xx")
    assert md.get("/health").status == 200
    sent("/health", "GET", "2xx")

    # a request is counted when it has ended, just after the client has its answer
    got = {}

    def settled():
        got["text"], got["fams"] = scrape(md)
        return (requests_by(got["fams"], scrapes=False) == expect and hist_count(
            got["fams"], "butlerd_http_request_duration_seconds", family="ping") == 9)
    harness.wait_until(settled, 10)
    text, fams = got["text"], got["fams"]
    assert requests_by(fams, scrapes=False) == expect, text
    # durations per family: one observation per request
    assert hist_count(fams, "butlerd_http_request_duration_seconds", family="ping") == 9
    assert hist_count(fams, "butlerd_http_request_duration_seconds", family="convert") == 4
    assert hist_count(fams, "butlerd_http_request_duration_seconds", family="none") == 6
    assert hist_count(fams, "butlerd_http_request_duration_seconds",
                      family="keyvalues:write") == len(keys) + 2
    # the store, as the workload left it
    live = keys[:-1]
    assert value(fams, "butlerd_kv_keys") == len(live)
    assert value(fams, "butlerd_kv_namespaces") == 2
    assert value(fams, "butlerd_kv_bytes") == sum(len(k.encode()) + len(v.encode())
                                                   for _, k, v in live)
    assert value(fams, "butlerd_active_users") == 0
    assert value(fams, "butlerd_build_info", version=harness.version()) == 1
    assert value(fams, "butlerd_generation") == 1
    assert value(fams, "butlerd_workers") == 2
    assert value(fams, "butlerd_process_respawns_total") == 0
    assert value(fams, "butlerd_qrs_requests_total", outcome="ok") == 0

    # the scrapes themselves are counted once they have ended
    n = sum(v for (route, _, _), v in requests_by(fams).items() if route == "/metrics")
    harness.wait_until(
        lambda: requests_by(scrape(md)[1]).get(("/metrics", "GET", "2xx"), 0) > n, 10)


def test_promtool_accepts_a_scrape(md):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    for p in ("/v4/butlerping", "/nope", "/v4/base16tobase62", "/health"):
        md.get(p)
    post_kv(md, "ns", "k", "v")
    text, _ = scrape(md)
    cp = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                        capture_output=True, timeout=30)
    assert cp.returncode == 0 and cp.stdout == b"" and cp.stderr == b"", (cp, text)


def test_the_checker_is_strict():
    """The checker above refuses what it should (so a pass means something)."""
    good = ("# HELP butlerd_x_total X.\n# TYPE butlerd_x_total counter\n"
            "butlerd_x_total{a=\"1\"} 2\n")
    parse(good)
    bad = [
        good[:-1],                                        # no final newline
        good.replace("butlerd_x_total{", "butlerd_y_total{"),  # outside its family
        good.replace("_total", ""),                       # counter without _total
        good + good,                                      # family twice
        good + "butlerd_x_total{a=\"1\"} 3\n",            # duplicate series
        good.replace("} 2", "} two"),                     # bad value
        good.replace('a="1"', 'a="1\\q"'),                # bad escape
        "butlerd_x_total 1\n",                            # no HELP/TYPE
        ("# HELP butlerd_h H.\n# TYPE butlerd_h histogram\n"
         "butlerd_h_bucket{le=\"1\"} 3\nbutlerd_h_bucket{le=\"+Inf\"} 2\n"
         "butlerd_h_sum 1\nbutlerd_h_count 2\n"),        # not cumulative
    ]
    for text in bad:
        with pytest.raises(FormatError):
            parse(text)


def test_off_by_default(start_daemon):
    d = start_daemon()
    assert d.get("/metrics").status == 404
    # health and readiness are on by default
    assert d.get("/health").status == 200


def test_metrics_scope_when_tokens_are_on(start_daemon):
    import hashlib

    def entry(name, scopes):
        return '{ name = "%s"; sha256 = "%s"; scopes = [ %s ]; }' % (
            name, hashlib.sha256(("tok-" + name).encode()).hexdigest(),
            ", ".join('"%s"' % s for s in scopes))

    ov = harness.merge({"butlerd": {"auth": {"enable": True, "tokens": Raw("( %s )" % ", ".join(
        [entry("prom", ["metrics"]), entry("pinger", ["ping"])]))}}}, OVERRIDES)
    d = start_daemon(ov)
    assert d.get("/metrics").status == 401
    assert d.get("/metrics", {"Authorization": "Bearer tok-pinger"}).status == 403
    assert d.get("/v4/butlerping", {"Authorization": "Bearer tok-prom"}).status == 403
    text, fams = scrape(d, {"Authorization": "Bearer tok-prom"})
    assert value(fams, "butlerd_http_rejected_requests_total", reason="unauthorized") == 1
    assert value(fams, "butlerd_http_rejected_requests_total", reason="forbidden") == 2
    assert harness.wait_until(lambda: requests_by(scrape(
        d, {"Authorization": "Bearer tok-prom"})[1]).get(("/metrics", "GET", "4xx")) == 2, 10)
    # liveness and readiness need no token: load balancers have none
    assert d.get("/health").status == 200
    assert d.get("/ready").status == 200


def test_respawn_and_generation(md):
    pids = md.worker_pids()
    md.get("/v4/butlerping")
    # counted once the request has ended, just after the answer
    assert harness.wait_until(lambda: requests_by(scrape(md)[1]).get(
        ("/v4/butlerping", "GET", "2xx")) == 1, 10)
    import os
    import signal
    os.kill(pids[0], signal.SIGKILL)
    assert harness.wait_until(
        lambda: value(scrape(md)[1], "butlerd_process_respawns_total") == 1, 10)
    # counters outlive the worker that counted them
    assert requests_by(scrape(md)[1])[("/v4/butlerping", "GET", "2xx")] == 1
    mark = md.mark()
    md.signal(signal.SIGHUP)
    md.wait_log(r"gen 2 ready", 15, start=mark)
    assert harness.wait_until(lambda: value(scrape(md)[1], "butlerd_generation") == 2, 10)


def test_example_alert_rules_check():
    """contrib/prometheus/butlerd.rules.yml loads in Prometheus and names only
    metric families that /metrics has."""
    import os
    rules = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib",
                         "prometheus", "butlerd.rules.yml")
    promtool = shutil.which("promtool")
    if promtool:
        cp = subprocess.run([promtool, "check", "rules", rules], capture_output=True,
                            timeout=30)
        assert cp.returncode == 0, cp
    with open(rules) as f:
        names = set(re.findall(r"\b(butlerd_[a-z_]+)", f.read()))
    with open(os.path.join(os.path.dirname(rules), "..", "..", "src", "http",
                           "api_metrics.c")) as f:
        src = f.read()
    assert {n for n in names if '"%s' % n not in src} == set()


def test_udp_and_active_users(start_daemon):
    """The UDP intake counters (those `butlerd -S` prints) and the active users."""
    import socket
    import sys
    import os
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                    "qlik-sim"))
    from udp_sender import Sender, session_datagram
    ports = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        ports.append((s, s.getsockname()[1]))
    tport, sport = ports[0][1], ports[1][1]
    for s, _ in ports:
        s.close()
    d = start_daemon(harness.merge({"Butler": {
        "restServerEndpointsEnable": {"activeUserCount": True},
        "udpServerConfig": {"enable": True, "serverHost": "127.0.0.1",
                            "portTaskFailure": tport,
                            "portSessionConnectionEvents": sport}}}, OVERRIDES))
    tx = Sender(sport)
    for u in ("ann", "bob", "cid"):
        tx.send(session_datagram("start", "sense1", "ACME", u))
    tx.send(b"not;a;datagram")
    Sender(tport).send(b"nonsense")

    def settled():
        f = scrape(d)[1]
        return (value(f, "butlerd_udp_received_total", socket="session") == 4 and
                value(f, "butlerd_udp_received_total", socket="task") == 1 and
                value(f, "butlerd_active_users") == 3)
    assert harness.wait_until(settled, 10), scrape(d)[0]
    fams = scrape(d)[1]
    assert value(fams, "butlerd_udp_accepted_total", socket="session") == 3
    assert value(fams, "butlerd_udp_dropped_total", socket="session", reason="malformed") == 1
    assert value(fams, "butlerd_udp_dropped_total", socket="task", reason="malformed") == 1
    assert value(fams, "butlerd_udp_accepted_total", socket="task") == 0
