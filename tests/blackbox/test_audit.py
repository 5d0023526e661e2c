"""The audit trail (butlerd(8), "AUDIT TRAIL"; butlerd.conf(5), butlerd.audit): one
line per request to a route that changes something - time, client address, token
name, method, path, status, duration - refused ones included, none for read-only
routes, no token and no query string anywhere, the file reopened on SIGUSR1."""

import json
import os
import re
import signal

import pytest

import harness
from harness import Raw
from test_auth import ALL_FLAGS, req, sha, tok

LINE = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) client=(\S+) who=(-|"[^"]*") '
                  r'method=([A-Z]+) path="((?:[^"\\]|\\.)*)" status=(\d{3}|-) duration_ms=(\d+)$')

# (method, target, body, expected status) of requests to changing routes
CHANGING = [
    ("POST", "/v4/keyvalues/audit%20ns", {"key": "k", "value": "v"}, 201),
    ("DELETE", "/v4/keyvalues/audit%20ns/k", None, 204),
    ("DELETE", "/v4/keyvalues/audit%20ns", None, 204),
    ("PUT", "/v4/reloadtask/not-a-task/start?secret=querytext", [], None),
    ("POST", "/v4/createdir", {}, 400),
    ("PUT", "/v4/filecopy", {}, 400),
    ("PUT", "/v4/mqttpublishmessage", {}, None),
    ("PUT", "/v4/slackpostmessage", {}, None),
    ("PUT", "/v4/app/not-an-app/reload", {}, None),
    ("GET", "/v2/createDir?directory=", None, None),
]
READONLY = [("GET", "/v4/butlerping"), ("GET", "/v4/keyvaluesnamespaces"),
            ("GET", "/v4/activeusercount"), ("GET", "/v2/butlerPing"),
            ("GET", "/v4/configfile/endpointsenabled")]


def audit_cfg(path, auth=True):
    entries = ['{ name = "ops team"; sha256 = "%s"; scopes = [ "*" ]; }' % sha(tok("ops")),
               '{ name = "reader"; sha256 = "%s"; scopes = [ "ping" ]; }' % sha(tok("reader"))]
    ov = {"Butler": {"restServerEndpointsEnable": {f: True for f in ALL_FLAGS}},
          "butlerd": {"audit": {"destination": "file", "file": str(path)}}}
    if auth:
        ov["butlerd"]["auth"] = {"enable": True, "tokens": Raw("( %s )" % ", ".join(entries))}
    return ov


def lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_lines(path, n):
    assert harness.wait_until(lambda: len(lines(path)) >= n, 15), lines(path)
    return lines(path)


def test_one_line_per_changing_request(start_daemon, tmp_path):
    path = tmp_path / "audit.log"
    d = start_daemon(audit_cfg(path))
    for method, target in READONLY:
        assert req(d.port, method, target, tok("ops")).status == 200
    statuses = []
    for method, target, body, want in CHANGING:
        r = req(d.port, method, target, tok("ops"), body, src="127.0.0.2")
        assert r.status not in (401, 403), (target, r)
        if want:
            assert r.status == want, (target, r)
        statuses.append(r.status)
    got = wait_lines(path, len(CHANGING))
    assert len(got) == len(CHANGING), got
    # each worker writes its own lines when a request ends, so two requests that end
    # close together may be written in either order: compare as sets of lines
    seen = []
    for line in got:
        m = LINE.match(line)
        assert m, line
        assert m.group(2) == "127.0.0.2", line
        assert m.group(3) == '"ops team"', line
        seen.append((m.group(4), m.group(5), m.group(6)))
    want = [(method, target.split("?")[0], str(status))
            for (method, target, _, _), status in zip(CHANGING, statuses)]
    assert sorted(seen) == sorted(want), got
    text = "\n".join(got)
    assert "querytext" not in text
    assert tok("ops") not in text and tok("ops") not in d.log()


def test_refused_requests_are_audited(start_daemon, tmp_path):
    path = tmp_path / "audit.log"
    d = start_daemon(audit_cfg(path))
    body = {"key": "k", "value": "v"}
    assert req(d.port, "POST", "/v4/keyvalues/ns", None, body).status == 401
    assert req(d.port, "POST", "/v4/keyvalues/ns", "bd_wrong_token_xyz", body).status == 401
    assert req(d.port, "POST", "/v4/keyvalues/ns", tok("reader"), body).status == 403
    assert req(d.port, "GET", "/v4/butlerping", None).status == 401   # read-only: no line
    got = wait_lines(path, 3)
    whos = [LINE.match(l).group(3) for l in got]
    sts = [LINE.match(l).group(6) for l in got]
    assert whos == ["-", "-", '"reader"'] and sts == ["401", "401", "403"], got
    assert "bd_wrong_token_xyz" not in "\n".join(got) + d.log()


def test_without_auth_who_is_dash_and_hostile_path_is_escaped(start_daemon, tmp_path):
    path = tmp_path / "audit.log"
    d = start_daemon(audit_cfg(path, auth=False))
    with d.raw() as c:
        c.send('POST /v4/keyvalues/a"b\\c%0A HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
               'Content-Length: 25\r\n\r\n{"key":"k","value":"v\\n"}')
        r = c.read_response()
    assert r.status == 201, r
    got = wait_lines(path, 1)
    m = LINE.match(got[0])
    assert m, got
    assert m.group(3) == "-" and m.group(5) == 'a\\"b\\\\c%0A'.join(["/v4/keyvalues/", ""]), got


def test_reopened_on_sigusr1(start_daemon, tmp_path):
    path = tmp_path / "audit.log"
    d = start_daemon(audit_cfg(path, auth=False))
    assert req(d.port, "POST", "/v4/keyvalues/a", None, {"key": "k", "value": "v"}).status == 201
    wait_lines(path, 1)
    os.rename(path, str(path) + ".1")
    mark = d.mark()
    d.signal(signal.SIGUSR1)
    d.wait_log("log file reopened", 10, start=mark)

    def fresh():
        req(d.port, "POST", "/v4/keyvalues/b", None, {"key": "k", "value": "v"})
        return len(lines(path)) > 0
    # each worker reopens when it gets the signal: wait until the new file is in use
    assert harness.wait_until(fresh, 15, 0.2)
    assert len(lines(str(path) + ".1")) >= 1


@pytest.mark.parametrize("audit,message", [
    ({"destination": "elsewhere"}, 'butlerd.audit.destination "elsewhere" is not one of off, file, syslog'),
    ({"destination": "file"}, 'butlerd.audit.destination is "file" but butlerd.audit.file is empty'),
    ({"destination": "syslog", "syslogFacility": "kern"},
     'butlerd.audit.syslogFacility "kern" is not one of daemon, local0 ... local7'),
])
def test_config_errors(tmp_path, audit, message):
    p = tmp_path / "t.conf"
    harness.write_file(p, harness.config_text(harness.free_port(), tmp_path,
                                              {"butlerd": {"audit": audit}}))
    cp = harness.run_cli(["-t", "-c", str(p)])
    assert cp.returncode != 0 and message in cp.stderr, cp.stderr


def test_syslog_destination_is_accepted(tmp_path):
    p = tmp_path / "t.conf"
    harness.write_file(p, harness.config_text(harness.free_port(), tmp_path, {
        "butlerd": {"audit": {"destination": "syslog", "syslogFacility": "local3"}}}))
    cp = harness.run_cli(["-t", "-c", str(p)])
    assert cp.returncode == 0, cp.stderr
