"""API tokens with scopes (butlerd-api(7), "Authentication"; butlerd.conf(5),
butlerd.auth): 401 with WWW-Authenticate for a missing or wrong token, 403 for a
token without the route's scope or used from outside its allowFrom, every route
family's scope, butlerd -k, configuration errors, no token in any log, and auth off
behaving as before. Other clients bind to 127.0.0.2 and 127.0.0.3."""

import hashlib
import http.client
import json
import os
import re

import pytest

import harness
from harness import JSON_CT, PING_TEXT, Raw

# family -> a request of that family that needs no other server to get past the
# authentication check (it ends in 200, or in the route's own 400 or 404).
FAMILIES = {
    "ping": [("GET", "/v4/butlerping", None), ("GET", "/v2/butlerPing", None)],
    "convert": [("GET", "/v4/base16tobase62?base16=ff", None),
                ("GET", "/v2/base62ToBase16?base62=4", None)],
    "config:read": [("GET", "/v4/configfile/endpointsenabled", None)],
    "keyvalues:read": [("GET", "/v4/keyvaluesnamespaces", None),
                       ("GET", "/v4/keyvalues/ns1?key=k", None)],
    "keyvalues:write": [("POST", "/v4/keyvalues/ns1", {"key": "k", "value": "v"}),
                        ("DELETE", "/v4/keyvalues/ns1/k", None)],
    "tasks:start": [("PUT", "/v4/reloadtask/not-a-task/start", []),
                    ("GET", "/v2/senseStartTask", None)],
    "apps:read": [("GET", "/v4/app/not-an-app/dump", None)],
    "apps:reload": [("PUT", "/v4/app/not-an-app/reload", {})],
    "files": [("POST", "/v4/createdir", {}), ("PUT", "/v4/filecopy", {}),
              ("GET", "/v2/createDir", None)],
    "mqtt:publish": [("PUT", "/v4/mqttpublishmessage", {})],
    "slack": [("PUT", "/v4/slackpostmessage", {})],
    "users:read": [("GET", "/v4/activeusercount", None)],
    "schedules:read": [("GET", "/v4/schedules", None), ("GET", "/v4/schedules/status", None)],
    "schedules:write": [("POST", "/v4/schedules", {}), ("PUT", "/v4/schedules/nope/start", None),
                        ("PUT", "/v4/schedules/stopall", None),
                        ("DELETE", "/v4/schedules/nope", None)],
    "newrelic": [("POST", "/v4/newrelic/event", {}), ("POST", "/v4/newrelic/metric", {})],
    "metrics": [("GET", "/metrics", None)],
}
ALL_FLAGS = ["apiListEnabledEndpoints", "activeUserCount", "activeUsers", "base62ToBase16",
             "base16ToBase62", "butlerping", "createDir", "createDirQVD", "fileDelete",
             "fileMove", "fileCopy", "keyValueStore", "mqttPublishMessage", "senseAppReload",
             "senseAppDump", "senseListApps", "senseStartTask", "slackPostMessage"]
SCHEDULER_FLAGS = ["createNewSchedule", "getSchedule", "getScheduleStatusAll", "deleteSchedule",
                   "startSchedule", "stopSchedule"]


def tok(name):
    """A deterministic test token per name (the daemon only ever sees its hash)."""
    return "bd_test_" + hashlib.sha256(name.encode()).hexdigest()[:32]


def sha(t):
    return hashlib.sha256(t.encode()).hexdigest()


def token_entry(name, scopes, allow=None):
    s = '{ name = "%s"; sha256 = "%s"; scopes = [ %s ];' % (
        name, sha(tok(name)), ", ".join('"%s"' % x for x in scopes))
    if allow is not None:
        s += " allowFrom = [ %s ];" % ", ".join('"%s"' % a for a in allow)
    return s + " }"


def auth_config(entries, enable=True, tmp=None):
    ep = {f: True for f in ALL_FLAGS}
    ep["scheduler"] = {f: True for f in SCHEDULER_FLAGS}
    ep["newRelic"] = {"postNewRelicEvent": True, "postNewRelicMetric": True}
    cfg = {"Butler": {"restServerEndpointsEnable": ep},
           "butlerd": {"auth": {"enable": enable,
                                "tokens": Raw("( %s )" % ", ".join(entries))},
                       "metrics": {"enable": True}}}
    if tmp is not None:
        cfg["Butler"]["scheduler"] = {"enable": True,
                                      "configfile": os.path.join(str(tmp), "schedule.json")}
    return cfg


def req(port, method, target, token=None, body=None, src="127.0.0.1", headers=None):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(src, 0))
    try:
        return harness.conn_request(c, method, target, h, data)
    finally:
        c.close()


def error_body(status, message):
    reason = {401: "Unauthorized", 403: "Forbidden"}[status]
    return json.dumps({"statusCode": status, "error": reason, "message": message},
                      separators=(",", ":")).encode()


ENTRIES = [token_entry("all", ["*"]), token_entry("only-2", ["ping"], ["127.0.0.2/32"]),
           token_entry("v6", ["ping"], ["::1/128", "10.0.0.0/8"])]
ENTRIES += [token_entry("fam-" + f.replace(":", "-"), [f]) for f in FAMILIES]


@pytest.fixture(scope="module")
def authd(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    d = harness.Daemon(tmp, auth_config(ENTRIES, tmp=tmp))
    d.start()
    yield d
    d.stop()
    print(d.log_tail(200))


def test_no_token_is_401(authd):
    r = req(authd.port, "GET", "/v4/butlerping")
    assert r.status == 401, r
    assert r.header("WWW-Authenticate") == 'Bearer realm="butlerd"', r
    assert r.header("Content-Type") == JSON_CT, r
    assert r.body == error_body(401, "An API token is required (Authorization: Bearer <token>)")


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "bd_x"])
def test_not_a_bearer_token_is_401(authd, value):
    r = req(authd.port, "GET", "/v4/butlerping", headers={"Authorization": value})
    assert r.status == 401, r
    assert r.header("WWW-Authenticate") == 'Bearer realm="butlerd"', r
    assert r.body == error_body(401, 'Authorization must be "Bearer <token>"'), r


@pytest.mark.parametrize("token", ["wrong", tok("all") + "x", tok("all")[:-1], sha(tok("all"))])
def test_wrong_token_is_401(authd, token):
    r = req(authd.port, "GET", "/v4/butlerping", token)
    assert r.status == 401, r
    assert r.header("WWW-Authenticate") == 'Bearer realm="butlerd", error="invalid_token"', r
    assert r.body == error_body(401, "Invalid API token"), r


def test_scheme_is_case_insensitive(authd):
    r = req(authd.port, "GET", "/v4/butlerping",
            headers={"Authorization": "bearer  " + tok("all") + " "})
    assert r.status == 200, r


def test_star_token_calls_everything(authd):
    r = req(authd.port, "GET", "/v4/butlerping", tok("all"))
    assert r.status == 200, r
    assert json.loads(r.body)["response"] == PING_TEXT
    for fam, reqs in FAMILIES.items():
        for method, target, body in reqs:
            r = req(authd.port, method, target, tok("all"), body)
            assert r.status not in (401, 403), (fam, target, r)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_needs_its_scope(authd, family):
    own = tok("fam-" + family.replace(":", "-"))
    other = "ping" if family != "ping" else "convert"
    wrong = tok("fam-" + other.replace(":", "-"))
    for method, target, body in FAMILIES[family]:
        r = req(authd.port, method, target, own, body)
        assert r.status not in (401, 403), (target, r)
        r = req(authd.port, method, target, wrong, body)
        assert r.status == 403, (target, r)
        assert r.body == error_body(403, "This API token lacks the scope " + family), r
        r = req(authd.port, method, target, None, body)
        assert r.status == 401, (target, r)


def test_method_override_and_head_use_the_effective_route(authd):
    r = req(authd.port, "POST", "/v4/reloadtask/not-a-task/start", tok("fam-ping"), [],
            headers={"X-HTTP-Method-Override": "PUT"})
    assert r.status == 403, r
    assert r.body == error_body(403, "This API token lacks the scope tasks:start"), r
    r = req(authd.port, "HEAD", "/v4/butlerping", tok("fam-ping"))
    assert r.status == 200, r
    r = req(authd.port, "HEAD", "/v4/butlerping", None)
    assert r.status == 401 and r.body == b"", r


def test_unknown_route_is_still_404(authd):
    r = req(authd.port, "GET", "/v4/nosuchroute")
    assert r.status == 404, r
    assert r.header("WWW-Authenticate") is None


def test_token_allow_from(authd):
    t = tok("only-2")
    r = req(authd.port, "GET", "/v4/butlerping", t, src="127.0.0.1")
    assert r.status == 403, r
    assert r.body == error_body(403, "This API token may not be used from this address"), r
    assert req(authd.port, "GET", "/v4/butlerping", t, src="127.0.0.3").status == 403
    assert req(authd.port, "GET", "/v4/butlerping", t, src="127.0.0.2").status == 200
    # allowFrom does not widen the scopes
    r = req(authd.port, "GET", "/v4/base16tobase62?base16=ff", t, src="127.0.0.2")
    assert r.status == 403, r
    # an IPv6-only list refuses IPv4 clients
    assert req(authd.port, "GET", "/v4/butlerping", tok("v6")).status == 403


def test_ipv6_client(tmp_path):
    d = harness.Daemon(tmp_path, harness.merge(auth_config(ENTRIES), {
        "Butler": {"restServerConfig": {"serverHost": "::1"}}}))
    d.listen_host = "[::1]"
    try:
        d.start()
        ipv6_checks(d)
    finally:
        d.stop()


def ipv6_checks(d):
    def get6(token):
        c = http.client.HTTPConnection("::1", d.port, timeout=10)
        try:
            return harness.conn_request(c, "GET", "/v4/butlerping",
                                        {"Authorization": "Bearer " + token} if token else {})
        finally:
            c.close()
    assert get6(None).status == 401
    assert get6(tok("v6")).status == 200
    assert get6(tok("only-2")).status == 403


def test_auth_off_ignores_tokens(start_daemon):
    d = start_daemon(auth_config(ENTRIES, enable=False))
    for t in (None, "wrong", tok("fam-convert")):
        r = req(d.port, "GET", "/v4/butlerping", t)
        assert r.status == 200, r
        assert r.header("WWW-Authenticate") is None


def test_rate_limit_counts_before_auth(start_daemon):
    cfg = auth_config(ENTRIES)
    cfg["butlerd"]["rateLimit"] = {"enable": True, "maxRequests": 2}
    d = start_daemon(cfg)
    r = req(d.port, "GET", "/v4/butlerping")
    assert r.status == 401 and r.header("x-ratelimit-remaining") == "1", r
    assert req(d.port, "GET", "/v4/butlerping", tok("all")).status == 200
    r = req(d.port, "GET", "/v4/butlerping", tok("all"))
    assert r.status == 429, r


def test_k_makes_a_working_token_never_logged(start_daemon, tmp_path):
    cp = harness.run_cli(["-k", "etl"])
    assert cp.returncode == 0, cp
    m = re.search(r"^token: (bd_[A-Za-z0-9_-]{43})$", cp.stdout, re.M)
    assert m, cp.stdout
    token = m.group(1)
    e = re.search(r'^\{ name = "etl"; sha256 = "([0-9a-f]{64})"; scopes = \[ \]; \}$',
                  cp.stdout, re.M)
    assert e and e.group(1) == sha(token), cp.stdout
    assert token not in cp.stderr
    # two runs never give the same token
    assert harness.run_cli(["-k", "etl"]).stdout != cp.stdout
    entry = '{ name = "etl"; sha256 = "%s"; scopes = [ "ping", "keyvalues:write" ]; }' % e.group(1)
    cfg = auth_config([entry])
    cfg["butlerd"]["logging"] = {"destination": "stderr", "level": "debug"}
    d = start_daemon(cfg)
    assert req(d.port, "GET", "/v4/butlerping", token).status == 200
    assert req(d.port, "POST", "/v4/keyvalues/a", token, {"key": "k", "value": "v"}).status == 201
    assert req(d.port, "GET", "/v4/butlerping", token + "x").status == 401
    assert req(d.port, "GET", "/v4/base16tobase62?base16=ff", token).status == 403
    d.stop()
    log = d.log()
    assert token not in log, "the token appears in the log"
    assert token[3:20] not in log


@pytest.mark.parametrize("name", ["", 'a"b', "a\\b"])
def test_k_refuses_bad_names(name):
    cp = harness.run_cli(["-k", name])
    assert cp.returncode == 2, cp
    assert "token:" not in cp.stdout


def configtest(tmp_path, entries, extra=None):
    cfg = auth_config(entries)
    harness.merge(cfg, extra or {})
    p = tmp_path / "t.conf"
    harness.write_file(p, harness.config_text(harness.free_port(), tmp_path, cfg))
    return harness.run_cli(["-t", "-c", str(p)])


@pytest.mark.parametrize("entry,message", [
    ('{ name = "a"; sha256 = "abc"; scopes = [ "ping" ]; }',
     "butlerd.auth.tokens[0].sha256 must be 64 hexadecimal digits"),
    ('{ name = "a"; sha256 = "%s"; scopes = [ "ping" ]; }' % ("g" * 64),
     "butlerd.auth.tokens[0].sha256 must be 64 hexadecimal digits"),
    ('{ name = "a"; sha256 = "%s"; scopes = [ "ping" ]; }' % ("a" * 65),
     "butlerd.auth.tokens[0].sha256 must be 64 hexadecimal digits"),
    ('{ name = "a"; sha256 = "%s"; scopes = [ "pong" ]; }' % ("a" * 64),
     'butlerd.auth.tokens[0].scopes: "pong" is not a scope'),
    ('{ name = "a"; sha256 = "%s"; }' % ("a" * 64), "butlerd.auth.tokens[0] lacks member scopes"),
    ('{ sha256 = "%s"; scopes = [ ]; }' % ("a" * 64),
     "butlerd.auth.tokens[0].name must be a non-empty printable string"),
    ('{ name = "a"; sha256 = "%s"; scopes = [ ]; allowFrom = [ "10.0.0.0/33" ]; }' % ("a" * 64),
     'butlerd.auth.tokens[0].allowFrom: "10.0.0.0/33" is not an address or network'),
    ('{ name = "a"; sha256 = "%s"; scopes = [ ]; token = "x"; }' % ("a" * 64),
     "butlerd.auth.tokens[0] has unknown member token"),
])
def test_config_errors(tmp_path, entry, message):
    cp = configtest(tmp_path, [entry])
    assert cp.returncode != 0, cp
    assert message in cp.stderr, cp.stderr


def test_bad_sha256_is_not_echoed(tmp_path):
    secret = "bd_this-is-the-token-pasted-by-mistake-0123456789"
    cp = configtest(tmp_path, ['{ name = "a"; sha256 = "%s"; scopes = [ ]; }' % secret])
    assert cp.returncode != 0
    assert secret not in cp.stderr + cp.stdout


def test_duplicate_names_and_hashes(tmp_path):
    h = "b" * 64
    cp = configtest(tmp_path, ['{ name = "a"; sha256 = "%s"; scopes = [ ]; }' % h,
                               '{ name = "a"; sha256 = "%s"; scopes = [ ]; }' % ("c" * 64),
                               '{ name = "b"; sha256 = "%s"; scopes = [ ]; }' % h])
    assert cp.returncode != 0
    assert "butlerd.auth.tokens[1] has the same name as entry 0" in cp.stderr, cp.stderr
    assert "butlerd.auth.tokens[2] has the same sha256 as entry 0" in cp.stderr, cp.stderr


def test_good_config_is_ok(tmp_path):
    cp = configtest(tmp_path, ENTRIES)
    assert cp.returncode == 0, cp.stderr


def test_counters(authd):
    before = stats(authd)["http"]
    assert req(authd.port, "GET", "/v4/butlerping").status == 401
    assert req(authd.port, "GET", "/v4/butlerping", tok("fam-convert")).status == 403
    after = stats(authd)["http"]
    assert after["unauthorized"] == before["unauthorized"] + 1, (before, after)
    assert after["forbidden"] == before["forbidden"] + 1, (before, after)
    assert after["rateLimited"] == 0 and after["refusedAtAccept"] == 0


def stats(d):
    cp = harness.run_cli(["-S", "-c", d.config_path])
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)
