"""Self-tests of the Qlik Sense simulator's Repository Service (QRS): certificates,
the authentication rules, TLS, filters, the task and app endpoints, behaviours,
connections and the command line. test_sim_engine.py tests its engine.
Run: /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/qlik-sim/test_sim.py
Loopback only; every wait is bounded."""

import http.client
import json
import re
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import qlik_sim

import pytest

from qlik_sim import QlikSim, filter_records, parse_filter, FilterError
from simfix import (  # noqa: F401
    APP1_TASK,
    APP2_TASK,
    APP3_TASK,
    APP4_TASK,
    BACKSLASH_TASK,
    DENIED_TASK,
    EXTERNAL_TASK,
    HERE,
    KEY,
    OBRIEN_TASK,
    TASKS1_TASK,
    USER,
    USERSYNC_TASK,
    call,
    conn,
    ctx_for,
    enc,
    ids)
from simfix import certs, fresh, sim  # noqa: F401 (pytest fixtures)


# ------------------------------------------------------------------ certs

def test_make_certs_idempotent_and_files(certs):
    d = os.path.dirname(certs["root.pem"])
    before = {n: os.stat(p).st_mtime_ns for n, p in certs.items()}
    again = qlik_sim.make_certs(d)
    assert {n: os.stat(p).st_mtime_ns for n, p in again.items()} == before
    for n in ("client.pem", "client_key.pem", "root.pem", "server.pem", "server_key.pem",
              "other_root.pem", "other_client.pem", "other_client_key.pem"):
        assert os.path.getsize(os.path.join(d, n)) > 0
    assert oct(os.stat(certs["client_key.pem"]).st_mode & 0o777) == "0o600"
    # a lost leaf is re-created, the CA is kept
    os.unlink(certs["client.pem"])
    qlik_sim.make_certs(d)
    assert os.stat(certs["root.pem"]).st_mtime_ns == before["root.pem"]
    assert os.path.exists(certs["client.pem"])


# ------------------------------------------------------------------ auth rules

def test_about_and_recording(sim, certs):
    st, data, r = call(sim, certs, "GET", "/qrs/about")
    assert st == 200 and r.getheader("Content-Type").startswith("application/json")
    about = json.loads(data)
    assert about["schemaPath"] == "About" and about["nodeType"] == 1
    (rec,) = sim.requests
    assert rec.method == "GET" and rec.path == "/qrs/about" and rec.query == "xrfkey=" + KEY
    assert rec.params == {"xrfkey": KEY} and rec.xrfkey == KEY
    assert rec.headers["x-qlik-xrfkey"] == KEY and rec.headers.get("X-QLIK-USER") == USER
    assert "x-qlik-user" in rec.headers and "X-Nothing" not in rec.headers
    assert rec.client_cert is True and rec.client_cn == "butlerd-test-client"
    assert rec.status == 200 and abs(rec.time - time.time()) < 5 and rec.body == b""


@pytest.mark.parametrize("key,header_key", [
    (None, KEY),                       # no query parameter
    (KEY, False),                      # no header
    (KEY, "Ab3dEf6hIj9lMn0q"),         # differ
    (KEY, KEY.lower()),                # differ in case only
    ("Ab3dEf6hIj9lMn0", "Ab3dEf6hIj9lMn0"),      # 15 characters
    ("Ab3dEf6hIj9lMn0pq", "Ab3dEf6hIj9lMn0pq"),  # 17 characters
    ("Ab3dEf6hIj9lMn0-", "Ab3dEf6hIj9lMn0-"),    # not [A-Za-z0-9]
    ("", ""),
])
def test_xrfkey_rule_403(sim, certs, key, header_key):
    st, data, _ = call(sim, certs, "GET", "/qrs/about", key=key, header_key=header_key)
    assert st == 403, data
    assert sim.requests[-1].status == 403


def test_xrfkey_twice_in_query_403(sim, certs):
    st, _, _ = call(sim, certs, "GET", "/qrs/about", query_extra="xrfkey=" + KEY)
    assert st == 403


def test_xrfkey_checked_before_routing_and_on_start(sim, certs):
    st, _, _ = call(sim, certs, "POST", "/qrs/task/%s/start" % APP1_TASK, key=None, body="{}")
    assert st == 403 and sim.starts() == [APP1_TASK] and sim.starts(accepted_only=True) == []
    assert sim.started_tasks == []


@pytest.mark.parametrize("user", [None, "", "sa_repository", "UserDirectory=Internal"])
def test_missing_or_malformed_user_401(sim, certs, user):
    st, _, _ = call(sim, certs, "GET", "/qrs/about", user=user)
    assert st == 401


def test_user_header_variants_accepted(sim, certs):
    for u in ("UserDirectory=INTERNAL; UserId=sa_repository", "userdirectory=x;userid=y"):
        assert call(sim, certs, "GET", "/qrs/about", user=u)[0] == 200


# ------------------------------------------------------------------ TLS

def _tls_fails(sim, certs, cert):
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        call(sim, certs, "GET", "/qrs/about", c=conn(sim, certs, cert=cert))


def test_no_client_certificate_refused_at_tls_level(sim, certs):
    _tls_fails(sim, certs, None)
    assert sim.requests == []
    deadline = time.monotonic() + 5
    while not sim.tls_errors and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "certificate" in sim.tls_errors[-1]["error"].lower()


def test_client_certificate_of_other_ca_refused(sim, certs):
    _tls_fails(sim, certs, "other_client")
    assert sim.requests == []


def test_server_certificate_verifies_for_127_0_0_1_and_not_against_other_ca(sim, certs):
    ctx = ssl.create_default_context(cafile=certs["other_root.pem"])
    ctx.load_cert_chain(certs["client.pem"], certs["client_key.pem"])
    c = http.client.HTTPSConnection("127.0.0.1", sim.qrs_port, context=ctx, timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        c.request("GET", "/qrs/about?xrfkey=" + KEY)
    c.close()
    # "localhost" is in the SAN as well
    c = http.client.HTTPSConnection("localhost", sim.qrs_port, context=ctx_for(certs), timeout=5)
    try:
        c.request("GET", "/qrs/about?xrfkey=" + KEY, headers={"X-Qlik-Xrfkey": KEY, "X-Qlik-User": USER})
        assert c.getresponse().status == 200
    except OSError:
        pytest.skip("localhost does not resolve to 127.0.0.1 here")
    finally:
        c.close()


def test_client_cert_optional_mode(certs):
    s = QlikSim(certs_dir=os.path.dirname(certs["root.pem"]), require_client_cert=False).start()
    try:
        st, _, _ = call(s, certs, "GET", "/qrs/about", c=conn(s, certs, cert=None))
        assert st == 200 and s.requests[-1].client_cert is False and s.requests[-1].client_cn is None
        st, _, _ = call(s, certs, "GET", "/qrs/about")
        assert st == 200 and s.requests[-1].client_cn == "butlerd-test-client"
        _tls_fails(s, certs, "other_client")  # a presented certificate is still verified
    finally:
        s.stop()


def test_plain_http_mode():
    s = QlikSim(use_tls=False).start()
    try:
        c = http.client.HTTPConnection("127.0.0.1", s.qrs_port, timeout=5)
        c.request("GET", "/qrs/about?xrfkey=" + KEY, headers={"X-Qlik-Xrfkey": KEY, "X-Qlik-User": USER})
        assert c.getresponse().status == 200 and s.qrs_url.startswith("http://")
        c.close()
    finally:
        s.stop()


# ------------------------------------------------------------------ filters over HTTP

def test_filters_butlerd_sends(sim, certs):
    st, data, _ = call(sim, certs, "GET", "/qrs/task", filter="id eq " + APP1_TASK)
    assert st == 200 and json.loads(data) == [{"id": APP1_TASK, "name": "Reload task of App1",
                                               "taskType": 0, "enabled": True, "privileges": None}]
    st, data, _ = call(sim, certs, "GET", "/qrs/task/full", filter="tags.name eq 'startTask1'")
    assert st == 200 and ids(data) == [APP2_TASK, APP3_TASK]
    cpf = "(customProperties.definition.name eq 'taskGroup') and (customProperties.value eq 'tasks2')"
    st, data, _ = call(sim, certs, "GET", "/qrs/task/full", filter=cpf)
    assert st == 200 and ids(data) == [APP3_TASK, APP4_TASK]
    assert sim.filters() == ["id eq " + APP1_TASK, "tags.name eq 'startTask1'", cpf]
    assert sim.filters(r"/full$") == ["tags.name eq 'startTask1'", cpf]
    # the raw query is kept exactly as sent
    assert sim.requests[2].query.startswith(
        "filter=%28customProperties.definition.name%20eq%20%27taskGroup%27%29%20and%20")


def test_filter_upper_case_guid_and_case_insensitive_strings(sim, certs):
    st, data, _ = call(sim, certs, "GET", "/qrs/task", filter="id eq " + APP1_TASK.upper())
    assert ids(data) == [APP1_TASK]
    st, data, _ = call(sim, certs, "GET", "/qrs/task", filter="tags.name eq 'STARTTASK1'")
    assert ids(data) == [APP2_TASK, APP3_TASK]


def test_filter_no_match_is_empty_array(sim, certs):
    st, data, _ = call(sim, certs, "GET", "/qrs/task", filter="id eq 0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b")
    assert (st, data) == (200, b"[]")
    st, data, _ = call(sim, certs, "GET", "/qrs/task/full", filter="tags.name eq 'nosuchtag'")
    assert (st, data) == (200, b"[]")


def test_filter_quote_and_backslash_escapes(sim, certs):
    st, data, _ = call(sim, certs, "GET", "/qrs/task/full", filter=r"tags.name eq 'O\'Brien'")
    assert st == 200 and ids(data) == [OBRIEN_TASK]
    st, data, _ = call(sim, certs, "GET", "/qrs/task/full", filter=r"tags.name eq 'Finance\\Reports'")
    assert st == 200 and ids(data) == [BACKSLASH_TASK]
    assert sim.filters()[0] == "tags.name eq 'O\\'Brien'"


@pytest.mark.parametrize("flt,msg", [
    ("tags.name eq 'O''Brien'", "Cannot parse the expression"),       # Butler's doubled quote
    ('tags.name eq "startTask1"', "Cannot parse the expression"),      # double quotes
    ("tags.name eq 'Finance\\Reports'", "Cannot parse the expression"),  # unescaped backslash
    ("tags.name eq 'startTask1", "Cannot parse the expression"),       # unterminated
    ("tags.name eq", "Cannot parse the expression"),
    ("tags.name xx 'a'", "Cannot parse the expression"),
    ("(tags.name eq 'a'", "Cannot parse the expression"),
    ("tags.name eq 'a')", "Cannot parse the expression"),
    ("tags.name eq 'a' and", "Cannot parse the expression"),
    ("tags.name eq 'a' tags.name eq 'b'", "Cannot parse the expression"),
    ("()", "Invalid expression"),
    ("id eq %s and ()" % APP1_TASK, "Invalid expression"),
])
def test_filter_parse_errors_400(sim, certs, flt, msg):
    st, data, _ = call(sim, certs, "GET", "/qrs/task", filter=flt)
    assert (st, data.decode()) == (400, msg)


def test_plus_is_not_a_space(sim, certs):
    # decoded with unquote, not unquote_plus: "id+eq+<guid>" is one word -> parse error
    st, data, _ = call(sim, certs, "GET", "/qrs/task",
                       query_extra="filter=id+eq+" + APP1_TASK)
    assert st == 400 and sim.filters() == ["id+eq+" + APP1_TASK]
    st, data, _ = call(sim, certs, "GET", "/qrs/task", filter="name eq 'a+b'")
    assert (st, data) == (200, b"[]") and sim.filters()[-1] == "name eq 'a+b'"


def test_filter_precedence_and_parentheses(sim, certs):
    # and binds tighter than or: A or (B and C)
    st, data, _ = call(sim, certs, "GET", "/qrs/task",
                       filter="id eq %s or id eq %s and id eq %s" % (APP1_TASK, APP2_TASK, APP3_TASK))
    assert ids(data) == [APP1_TASK]
    st, data, _ = call(sim, certs, "GET", "/qrs/task",
                       filter="(id eq %s or id eq %s) and tags.name eq 'startTask1'" % (APP1_TASK, APP2_TASK))
    assert ids(data) == [APP2_TASK]
    st, data, _ = call(sim, certs, "GET", "/qrs/task",
                       filter="((id eq %s)) OR (tags.name eq 'startTask2')" % APP1_TASK)
    assert ids(data) == [APP1_TASK, DENIED_TASK]


def test_filter_operators(sim, certs):
    def q(f):
        st, data, _ = call(sim, certs, "GET", "/qrs/task", filter=f)
        assert st == 200, data
        return ids(data)
    assert q("name sw 'reload task of app'") == [APP1_TASK, APP2_TASK, APP3_TASK, APP4_TASK]
    assert q("name ew 'APP4'") == [APP4_TASK]
    assert q("name so 'o\\'brien'") == [OBRIEN_TASK]
    assert APP1_TASK not in q("name ne 'Reload task of App1'")
    assert q("taskType eq 1") == [EXTERNAL_TASK]
    assert q("taskType eq UserSync") == [USERSYNC_TASK]
    assert q("enabled eq false") == [USERSYNC_TASK]
    assert q("app.id eq 3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c02") == [APP2_TASK]
    assert q("customProperties.value eq 'tasks1'") == [TASKS1_TASK]


def test_filter_unknown_field_400(sim, certs):
    st, data, _ = call(sim, certs, "GET", "/qrs/task", filter="nosuchfield eq 'x'")
    assert st == 400 and b"nosuchfield" in data


def test_empty_filter_is_everything(sim, certs):
    st, data, _ = call(sim, certs, "GET", "/qrs/task", filter="")
    assert st == 200 and len(json.loads(data)) == len(sim.tasks)


# ------------------------------------------------------------------ filters, evaluator

def test_collection_any_element_per_comparison():
    """Qlik evaluates each side on its own: a task with taskGroup=tasks1 and
    region=north matches (definition.name eq 'taskGroup') and (value eq 'north')."""
    recs = [{"id": "a", "tags": [], "customProperties": [
        {"value": "tasks1", "definition": {"name": "taskGroup"}},
        {"value": "north", "definition": {"name": "region"}}]},
        {"id": "b", "tags": [{"name": "x"}, {"name": "y"}], "customProperties": []}]
    f = "(customProperties.definition.name eq 'taskGroup') and (customProperties.value eq 'north')"
    assert [r["id"] for r in filter_records(recs, f)] == ["a"]
    assert [r["id"] for r in filter_records(recs, "tags.name eq 'y'")] == ["b"]
    assert [r["id"] for r in filter_records(recs, "tags.name ne 'x'")] == ["b"]  # any element
    assert filter_records(recs, "tags.name eq 'z'") == []


def test_parse_filter_ast():
    assert parse_filter("  ") is None
    assert parse_filter("a eq 'x' or b eq 1 and c eq 2") == (
        "or", ("cmp", "a", "eq", ("str", "x")),
        ("and", ("cmp", "b", "eq", ("bare", "1")), ("cmp", "c", "eq", ("bare", "2"))))
    assert parse_filter(r"a eq 'it\'s \\ ok'")[3] == ("str", "it's \\ ok")
    with pytest.raises(FilterError):
        parse_filter("a eq 'x' and and b eq 'y'")


# ------------------------------------------------------------------ task and app endpoints

def test_task_shapes(sim, certs):
    _, data, _ = call(sim, certs, "GET", "/qrs/task")
    assert all(set(t) == {"id", "name", "taskType", "enabled", "privileges"} for t in json.loads(data))
    assert {t["taskType"] for t in json.loads(data)} == {0, 1, 2}
    _, data, _ = call(sim, certs, "GET", "/qrs/task/full", filter="id eq " + APP1_TASK)
    (t,) = json.loads(data)
    assert "app" not in t and "operational" not in t and t["schemaPath"] == "ReloadTask"
    _, data, _ = call(sim, certs, "GET", "/qrs/reloadtask/full")
    full = json.loads(data)
    assert all(t["taskType"] == 0 and "app" in t and "operational" in t for t in full)
    assert EXTERNAL_TASK not in [t["id"] for t in full]
    _, data, _ = call(sim, certs, "GET", "/qrs/reloadtask/full", filter="id eq " + APP2_TASK)
    (t,) = json.loads(data)
    assert t["app"]["name"] == "App2" and t["app"]["stream"]["name"] == "Sales"
    assert t["operational"]["lastExecutionResult"]["status"] == 8
    assert t["tags"][0]["name"] == "startTask1"


def test_reloadtask_by_id_and_no_task_by_id(sim, certs):
    st, data, _ = call(sim, certs, "GET", "/qrs/reloadtask/" + APP3_TASK)
    assert st == 200 and json.loads(data)["customProperties"][0]["definition"]["name"] == "taskGroup"
    assert call(sim, certs, "GET", "/qrs/reloadtask/0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b")[0] == 404
    assert call(sim, certs, "GET", "/qrs/reloadtask/" + EXTERNAL_TASK)[0] == 404
    assert call(sim, certs, "GET", "/qrs/task/" + APP1_TASK)[0] == 404  # no GET /qrs/task/{id}


def test_start_task(sim, certs):
    st, data, r = call(sim, certs, "POST", "/qrs/task/%s/start" % APP1_TASK, body="{}")
    assert (st, data) == (204, b"") and r.getheader("Content-Length") is None
    st, data, _ = call(sim, certs, "POST", "/qrs/task/%s/start" % EXTERNAL_TASK.upper(), body="{}")
    assert st == 204
    st, _, _ = call(sim, certs, "POST", "/qrs/task/0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b/start", body="{}")
    assert st == 404
    assert sim.starts() == [APP1_TASK, EXTERNAL_TASK.upper(), "0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b"]
    assert sim.starts(accepted_only=True) == [APP1_TASK, EXTERNAL_TASK.upper()]
    assert [s["taskId"] for s in sim.started_tasks] == [APP1_TASK, EXTERNAL_TASK]
    assert sim.requests[0].body == b"{}" and sim.requests[0].json() == {}


def test_start_synchronous_and_many(sim, certs):
    st, data, _ = call(sim, certs, "POST", "/qrs/task/%s/start/synchronous" % APP2_TASK, body="{}")
    assert st == 201 and qlik_sim.GUID_RE.fullmatch(json.loads(data)["value"])
    assert call(sim, certs, "POST", "/qrs/task/0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b/start/synchronous")[0] == 404
    st, data, _ = call(sim, certs, "POST", "/qrs/task/start/many", body=json.dumps([APP3_TASK, APP4_TASK]))
    assert st == 204
    assert call(sim, certs, "POST", "/qrs/task/start/many", body="not json")[0] == 400
    assert call(sim, certs, "POST", "/qrs/task/start/many", body='{"a":1}')[0] == 400
    assert sim.starts() == []  # only /qrs/task/{id}/start counts
    assert [(s["taskId"], s["how"]) for s in sim.started_tasks] == [
        (APP2_TASK, "synchronous"), (APP3_TASK, "many"), (APP4_TASK, "many")]


def test_apps_and_users(sim, certs):
    _, data, _ = call(sim, certs, "GET", "/qrs/app")
    apps = json.loads(data)
    assert [a["name"] for a in apps][:4] == ["App1", "App2", "App3", "App4"]
    assert all("owner" not in a and "id" in a and "name" in a for a in apps)
    _, data, _ = call(sim, certs, "GET", "/qrs/app/full", filter="stream.name eq 'Finance'")
    full = json.loads(data)
    assert [a["name"] for a in full] == ["App3", "Finance reports"]
    owner = full[0]["owner"]
    st, data, _ = call(sim, certs, "GET", "/qrs/user/" + owner["id"])
    u = json.loads(data)
    assert st == 200 and u["userId"] == owner["userId"] == "joe"
    assert u["attributes"][0]["attributeValue"] == "joe.smith@example.com"
    _, data, _ = call(sim, certs, "GET", "/qrs/app/full", filter="published eq false")
    assert [a["name"] for a in json.loads(data)] == ["App4"]
    assert call(sim, certs, "GET", "/qrs/user/0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b")[0] == 404


def test_unknown_path_404_and_wrong_method_405(sim, certs):
    assert call(sim, certs, "GET", "/qrs/nosuch")[0] == 404
    assert call(sim, certs, "GET", "/other")[0] == 404
    st, _, r = call(sim, certs, "GET", "/qrs/task/%s/start" % APP1_TASK)
    assert st == 405 and r.getheader("Allow") == "POST"


def test_qrs_paths_methods_and_query_names_of_the_openapi(sim, certs):
    """Paths and methods come from the table made from Qlik's QRS OpenAPI
    (qrs_paths.json): another path is 404, another method 405 with the methods
    it has, an unknown query parameter 400, and a real one not simulated 501."""
    assert call(sim, certs, "GET", "/qrs/tasks")[0] == 404
    assert call(sim, certs, "GET", "/qrs/task/%s/startt" % APP1_TASK)[0] == 404
    assert call(sim, certs, "POST", "/qrs/task/start/many/now", body="[]")[0] == 404
    st, _, r = call(sim, certs, "DELETE", "/qrs/about")
    assert st == 405 and r.getheader("Allow") == "GET"
    st, _, r = call(sim, certs, "PUT", "/qrs/task/full", body="{}")
    assert st == 405 and r.getheader("Allow") == "GET"
    st, _, r = call(sim, certs, "PUT", "/qrs/app/" + APP1_TASK, body="{}")
    assert st == 501 and r.getheader("Allow") is None  # PUT /qrs/app/{id} is real
    st, body, _ = call(sim, certs, "GET", "/qrs/task", query_extra="filtr=" + enc("name eq 'x'"))
    assert (st, body) == (400, b"Unknown query parameter 'filtr' for GET /qrs/task")
    st, body, _ = call(sim, certs, "POST", "/qrs/task/%s/start" % APP1_TASK, body="{}",
                       query_extra="filter=x")
    assert (st, body) == (400, b"Unknown query parameter 'filter' for POST /qrs/task/{id}/start")
    assert sim.starts(accepted_only=True) == [] and sim.started_tasks == []
    # names are matched without regard to case, as QRS does; known ones it ignores
    st, body, _ = call(sim, certs, "GET", "/qrs/task",
                       query_extra="Filter=" + enc("id eq " + APP1_TASK) + "&orderby=name")
    assert st == 200 and ids(body) == [APP1_TASK]
    st, body, _ = call(sim, certs, "GET", "/qrs/stream")
    assert (st, body) == (501, b"Not simulated: GET /qrs/stream")
    assert qlik_sim.qrs_operation("/qrs/app/full")[0] == "/qrs/app/full"
    assert qlik_sim.qrs_operation("/qrs/app/" + APP1_TASK)[0] == "/qrs/app/{id}"
    assert qlik_sim.qrs_operation("/qrs/task/" + APP1_TASK) is None


def test_qrs_routes_are_openapi_operations():
    """Every route the simulator answers is a path and method of the QRS API."""
    routes = qlik_sim._QrsHandler.ROUTES
    assert len(routes) >= 13
    for method, rx, name in routes:
        sample = re.sub(r"\(\?P<\w+>\[\^/\]\+\)", APP1_TASK, rx)
        op = qlik_sim.qrs_operation(sample)
        assert op is not None and method in op[1], (method, rx)
    assert len(qlik_sim.QRS_PATHS) > 1000


def test_gen_qrs_paths(tmp_path):
    api = {"swagger": "2.0", "basePath": "/qrs", "paths": {
        "/task": {"get": {"parameters": [{"name": "filter", "in": "query"},
                                         {"name": "orderby", "in": "query"}]}},
        "/task/{id}/start": {"parameters": [{"name": "id", "in": "path"}],
                             "post": {"parameters": [{"name": "x", "in": "body"}]}},
        "/app/{id}": {"get": {}, "delete": {}, "parameters": [{"name": "privileges",
                                                               "in": "query"}]}}}
    src = tmp_path / "qrs.json"
    src.write_text(json.dumps(api))
    out = tmp_path / "t.json"
    gen = os.path.join(HERE, "gen_qrs_paths.py")
    r = subprocess.run([sys.executable, gen, str(src), "-o", str(out)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    t = json.loads(out.read_text())
    assert t["source"] == "qrs.json" and t["basePath"] == "/qrs"
    assert t["paths"] == {"/app/{id}": {"GET": ["privileges"], "DELETE": ["privileges"]},
                          "/task": {"GET": ["filter", "orderby"]},
                          "/task/{id}/start": {"POST": []}}


# ------------------------------------------------------------------ behaviours

def test_behaviour_status_times_and_method(sim, certs):
    b = sim.set_behaviour(r"/start$", status=503, times=1, method="POST")
    p = "/qrs/task/%s/start" % APP2_TASK
    assert call(sim, certs, "POST", p, body="{}")[0] == 503
    assert call(sim, certs, "POST", p, body="{}")[0] == 204
    assert b.applied == 1
    assert sim.starts() == [APP2_TASK, APP2_TASK] and sim.starts(accepted_only=True) == [APP2_TASK]
    sim.set_behaviour(r"^/qrs/task$", status=500, body={"error": "boom"}, method="GET")
    st, data, r = call(sim, certs, "GET", "/qrs/task", filter="id eq " + APP1_TASK)
    assert st == 500 and json.loads(data) == {"error": "boom"}
    assert call(sim, certs, "GET", "/qrs/task/full")[0] == 200  # regex does not match
    # auth rules still come first
    assert call(sim, certs, "GET", "/qrs/task", key=None)[0] == 403
    sim.clear_behaviours()
    assert call(sim, certs, "GET", "/qrs/task")[0] == 200


def test_behaviour_delay(sim, certs):
    sim.set_behaviour(r"/qrs/about", delay=0.4, times=1)
    t0 = time.monotonic()
    assert call(sim, certs, "GET", "/qrs/about")[0] == 200
    assert time.monotonic() - t0 >= 0.4
    t0 = time.monotonic()
    assert call(sim, certs, "GET", "/qrs/about")[0] == 200
    assert time.monotonic() - t0 < 0.4


def test_behaviour_hang_until_cleared(sim, certs):
    b = sim.set_behaviour(r"/start$", hang=True)
    c = conn(sim, certs, timeout=0.3)
    with pytest.raises(socket.timeout):
        call(sim, certs, "POST", "/qrs/task/%s/start" % APP1_TASK, body="{}", c=c)
    c.close()
    # other paths are not affected while one request hangs
    assert call(sim, certs, "GET", "/qrs/about")[0] == 200
    # a hung request is recorded, unanswered; clearing closes it without an answer
    c = conn(sim, certs, timeout=5)
    c.request("POST", "/qrs/task/%s/start?xrfkey=%s" % (APP1_TASK, KEY), body="{}",
              headers={"X-Qlik-Xrfkey": KEY, "X-Qlik-User": USER})
    sim.wait_for_requests(2, r"/start$")
    assert [r.status for r in sim.requests if r.path.endswith("/start")] == [None, None]
    sim.clear_behaviour(b)
    t0 = time.monotonic()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        c.getresponse()
    assert time.monotonic() - t0 < 2
    c.close()
    assert sim.started_tasks == []


def test_behaviour_drop(sim, certs):
    sim.set_behaviour(r"/qrs/about", drop=True, times=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        call(sim, certs, "GET", "/qrs/about")
    assert call(sim, certs, "GET", "/qrs/about")[0] == 200


# ------------------------------------------------------------------ connections, lifecycle

def test_keep_alive_and_concurrency(sim, certs):
    c = conn(sim, certs)
    for _ in range(3):
        assert call(sim, certs, "GET", "/qrs/about", c=c)[0] == 200
    c.close()
    peers = {r.peer for r in sim.requests}
    assert len(peers) == 1  # one connection
    # a slow request does not block others
    sim.set_behaviour(r"/qrs/reloadtask/full", delay=0.5, times=1)
    th = threading.Thread(target=call, args=(sim, certs, "GET", "/qrs/reloadtask/full"))
    th.start()
    sim.wait_for_requests(1, r"/qrs/reloadtask/full")
    t0 = time.monotonic()
    assert call(sim, certs, "GET", "/qrs/about")[0] == 200
    assert time.monotonic() - t0 < 0.4
    th.join(5)


def test_stop_refuses_cuts_keepalive_and_restarts_on_same_port(certs):
    s = QlikSim(certs_dir=os.path.dirname(certs["root.pem"])).start()
    port = s.qrs_port
    c = conn(s, certs)
    assert call(s, certs, "GET", "/qrs/about", c=c)[0] == 200
    s.set_behaviour(r"/start$", hang=True)
    hung = conn(s, certs)
    hung.request("POST", "/qrs/task/%s/start?xrfkey=%s" % (APP1_TASK, KEY), body="{}",
                 headers={"X-Qlik-Xrfkey": KEY, "X-Qlik-User": USER})
    s.wait_for_requests(1, r"/start$")
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 2
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
        hung.getresponse()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError, OSError)):
        call(s, certs, "GET", "/qrs/about", c=c)  # kept-alive connection was cut
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    s.clear_behaviours()
    s.start()
    try:
        assert s.qrs_port == port and call(s, certs, "GET", "/qrs/about")[0] == 200
    finally:
        s.stop()


def test_custom_fixture_dict(certs):
    fx = {"tasks": [{"id": "11111111-2222-4333-8444-555555555555", "name": "Only", "taskType": 0,
                     "enabled": True, "tags": [], "customProperties": []}], "apps": [], "users": []}
    with QlikSim(fx, certs_dir=os.path.dirname(certs["root.pem"])) as s:
        st, data, _ = call(s, certs, "GET", "/qrs/task")
        assert st == 200 and ids(data) == ["11111111-2222-4333-8444-555555555555"]


# ------------------------------------------------------------------ CLI

def test_cli_make_certs_and_serve(tmp_path, certs):
    d = tmp_path / "cli-certs"
    cp = subprocess.run([sys.executable, os.path.join(HERE, "qlik_sim.py"), "--make-certs", str(d)],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, text=True)
    assert cp.returncode == 0, cp.stderr
    assert (d / "client.pem").exists() and (d / "other_client_key.pem").exists()
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "qlik_sim.py"), "--certs", str(d),
                          "--qrs-port", "0", "--engine-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert "QRS listening on https://127.0.0.1:" in line, line + p.stderr.read()
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        cl = qlik_sim.make_certs(str(d))
        ctx = ctx_for(cl)
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
        c.request("GET", "/qrs/task?filter=%s&xrfkey=%s" % (enc("tags.name eq 'startTask1'"), KEY),
                  headers={"X-Qlik-Xrfkey": KEY, "X-Qlik-User": USER})
        assert c.getresponse().status == 200
        c.close()
        line = p.stdout.readline()
        assert "GET /qrs/task?filter=" in line and "-> 200" in line and "butlerd-test-client" in line
        assert p.stdout.readline().strip() == "filter: tags.name eq 'startTask1'"
    finally:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    assert p.returncode == 0
