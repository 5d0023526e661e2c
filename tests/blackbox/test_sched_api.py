"""Scheduler routes (spec 2.10, routes 21-28 of 2.0, 1.7-1.9, 7.2 S7): enable
rules, GET, POST (201 body and every error row), DELETE, start/stop, start-all/
stop-all, the status text, the schedule file and the startup rules. Written from
the spec as black-box tests; the schedules here use expressions that do not fire
while a test runs (firing is in test_sched_fire.py)."""

import json
import os
import subprocess
import time

import pytest

import harness
from harness import TEXT_CT
from schedfix import (  # noqa: F401 (fixtures)
    FLAGS, NEVER_NOW, TASK, TASK2, UUID4, ReadOnlyDir, body, check_compact,
    check_error, check_status, create, delete, dir_entries, expected, get, listed, not_found,
    parse, post, put, read_sched_file, run_expect_exit, sched, sched_file, sched_overrides,
    start, startall, status, stop, stopall, validation, write_sched_file)

UPPER_TASK = TASK.upper()
# a loose GUID that is not a strict task ID (version nibble "a", spec 1.11)
LOOSE = "abcd1234-5678-abcd-1234-abcd1234abcd"

# the schedule of spec 2.10.5 (a file schedule: any non-empty id, no `created`)
PEER = {"id": "peer-schedule-1", "name": "Peer test schedule", "cronSchedule": "0 0 1 1 *",
        "timezone": "Europe/Stockholm", "qlikSenseTaskId": "0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b",
        "startupState": "stopped", "tags": ["peer"], "lastKnownState": "stopped"}
PEER_WIRE = (b'[{"id":"peer-schedule-1","name":"Peer test schedule","cronSchedule":"0 0 1 1 *",'
             b'"timezone":"Europe/Stockholm","qlikSenseTaskId":"0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b",'
             b'"startupState":"stopped","tags":["peer"],"lastKnownState":"stopped"}]')


def route_requests(sid="x"):
    """(method, target) of routes 21-28, with the flag each needs."""
    return [
        ("getSchedule", "GET", "/v4/schedules"),
        ("getSchedule", "GET", "/v4/schedules?id=%s" % sid),
        ("createNewSchedule", "POST", "/v4/schedules"),
        ("deleteSchedule", "DELETE", "/v4/schedules/%s" % sid),
        ("startSchedule", "PUT", "/v4/schedules/%s/start" % sid),
        ("startSchedule", "PUT", "/v4/schedules/startall"),
        ("stopSchedule", "PUT", "/v4/schedules/%s/stop" % sid),
        ("stopSchedule", "PUT", "/v4/schedules/stopall"),
        ("getScheduleStatusAll", "GET", "/v4/schedules/status"),
    ]


@pytest.fixture(scope="module")
def rejector(tmp_path_factory):
    """One daemon shared by the tests of rejected creates (nothing is added)."""
    d = harness.Daemon(tmp_path_factory.mktemp("rejector"), sched_overrides())
    d.start()
    yield d
    d.stop()
    print(d.log_tail(100))


def check_rejected(d, b, status, message, code=None):
    """POST b gives the error; the list and the file stay as they were."""
    before = get(d).body
    path = sched_file(d)
    had = os.path.exists(path)
    r = post(d, b)
    if code:
        check_compact(r, json.loads(harness.err(status, message, code)), status)
    else:
        check_error(r, status, message)
    assert get(d).body == before
    assert os.path.exists(path) == had


def send(d, method, target):
    if method == "POST":
        return d.request(method, target, {"Content-Type": "application/json"},
                         json.dumps(body()).encode())
    return d.request(method, target)


# ------------------------------------------------------------------ enable rules (1.9, 2.0)

def test_routes_need_scheduler_enable(sched):
    """Every flag on but Butler.scheduler.enable false: every route is the 404 of 1.2,
    HEAD included, and no schedule file appears (S7: Butler serves them anyway)."""
    d = sched(enable=False)
    for _, method, target in route_requests():
        check_compact(send(d, method, target),
                      json.loads(not_found(method, target)), 404)
    for target in ("/v4/schedules", "/v4/schedules/status"):
        r = d.request("HEAD", target)
        assert r.status == 404 and r.body == b"", r
    assert not os.path.exists(sched_file(d))
    assert d.get("/v4/butlerping").status == 200


@pytest.mark.parametrize("flag", [f for f in FLAGS if f != "updateSchedule"])
def test_each_route_needs_its_flag(sched, flag):
    """One flag off: exactly its routes give 404, the others answer."""
    d = sched(flags={flag: False})
    sid = create(d, body(state="stopped"))["id"] if flag != "createNewSchedule" else "x"
    for f, method, target in route_requests(sid):
        r = send(d, method, target)
        if f == flag:
            check_compact(r, json.loads(not_found(method, target)), 404)
        else:
            assert r.status != 404, (method, target, r)


def test_update_schedule_flag_has_no_route(sched):
    d = sched()
    for method, target in (("PUT", "/v4/schedules/x"), ("PATCH", "/v4/schedules/x"),
                           ("GET", "/v4/schedules/x"), ("PUT", "/v4/schedules")):
        check_compact(d.request(method, target), json.loads(not_found(method, target)), 404)


# ------------------------------------------------------------------ GET (2.10.5) and status

def test_empty_list_status_and_no_file(sched):
    """A missing file is an empty list; nothing is written before the first change."""
    d = sched()
    check_compact(get(d), [])
    check_status(d, [])
    assert status(d).body == b"{\n}\n"
    r = d.request("HEAD", "/v4/schedules")
    assert r.status == 200 and r.body == b"" and r.header("Content-Length") == "2", r
    assert not os.path.exists(sched_file(d))


@pytest.mark.parametrize("query,sid", [("?id=nope", "nope"), ("?id=", ""), ("?id", ""),
                                        ("?id=a%20b", "a b")])
def test_get_unknown_or_empty_id(sched, query, sid):
    d = sched()
    create(d, body())
    check_error(d.get("/v4/schedules" + query), 400,
                "REST SCHEDULER: Schedule ID %s not found." % sid)
    r = d.request("HEAD", "/v4/schedules" + query)        # spec 1.3: same status, no body
    assert r.status == 400 and r.body == b"", r


def test_get_with_and_without_id(sched):
    d = sched()
    a = create(d, body(name="A", state="started", tags=["x", "y"]))
    b = create(d, body(name="B", state="stopped"))
    c = create(d, body(name="C", state="start"))
    check_compact(get(d), [a, b, c])            # creation order
    for o in (a, b, c):
        check_compact(get(d, o["id"]), [o])
    assert len({a["id"], b["id"], c["id"]}) == 3
    r = d.request("HEAD", "/v4/schedules?id=" + b["id"])
    assert r.status == 200 and r.body == b"", r
    assert r.header("Content-Length") == str(len(harness.jdump([b])))


def test_status_text(sched):
    d = sched()
    a = create(d, body(cron="0,30 6 * * 1-5", state="started"))
    b = create(d, body(cron="0 0 1 1 *", state="stopped"))
    check_status(d, [(a["id"], "0,30 6 * * 1-5", True), (b["id"], "0 0 1 1 *", False)])
    r = d.request("HEAD", "/v4/schedules/status")
    assert r.status == 200 and r.body == b"", r
    assert r.header("Content-Type") == TEXT_CT, r


# ------------------------------------------------------------------ POST (2.10.6)

def test_create_spec_example(sched):
    """The request of spec 2.10.6: 201, one object (not an array), members in spec
    order, id a lower-case UUID v4, created ISO 8601 UTC with ms, task ID lower case."""
    d = sched()
    b = {"name": "Sales reload, weekdays", "cronSchedule": "0,30 6 * * 1-5",
         "timezone": "Europe/Stockholm", "qlikSenseTaskId": "E3B27F50-B1C0-4879-88FC-C7CDD9C1CF3E",
         "startupState": "started", "tags": ["sales"]}
    o = create(d, b)
    assert o["qlikSenseTaskId"] == "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
    assert o["lastKnownState"] == "started"
    check_compact(get(d), [o])


def test_create_without_tags_leaves_member_out(sched):
    d = sched()
    o = create(d, body(state="stop"))
    assert "tags" not in o and o["lastKnownState"] == "stopped"
    check_compact(get(d), [o])


def test_create_ignores_id_created_and_last_known_state(sched):
    d = sched()
    b = body(state="stopped", id="my-own-id", created="2000-01-01T00:00:00.000Z",
             lastKnownState="started")
    t0 = time.time()
    r = post(d, b)
    assert r.status == 201, r
    o = parse(r)
    assert UUID4.match(o["id"]) and o["id"] != "my-own-id", o
    assert not o["created"].startswith("2000-"), o
    assert o["lastKnownState"] == "stopped", o
    plain = body(state="stopped")
    check_compact(r, expected(plain, o["id"], o["created"]), 201)
    assert time.time() - t0 < 30


def test_create_unknown_members_ignored_and_tags_kept_in_order(sched):
    d = sched()
    o = create(d, body(tags=["b", "a", "b", "ä ü/\""]))
    assert o["tags"] == ["b", "a", "b", "ä ü/\""]
    r = post(d, body(colour="blue"))
    assert r.status == 201 and "colour" not in parse(r), r


@pytest.mark.parametrize("state,last,running", [("start", "started", True),
                                                ("started", "started", True),
                                                ("stop", "stopped", False),
                                                ("stopped", "stopped", False)])
def test_startup_state_enum(sched, state, last, running):
    d = sched()
    o = create(d, body(state=state))
    assert o["startupState"] == state and o["lastKnownState"] == last
    check_status(d, [(o["id"], NEVER_NOW, running)])


@pytest.mark.parametrize("state", ["running", "Started", "STOP", "", "true"])
def test_startup_state_not_in_enum(rejector, state):
    check_rejected(rejector, body(state=state), 400,
                   "body/startupState must be equal to one of the allowed values",
                   "FST_ERR_VALIDATION")


def test_required_members_reported_in_schema_order(sched):
    d = sched()
    full = body()
    names = ["name", "cronSchedule", "timezone", "qlikSenseTaskId", "startupState"]
    for i, missing in enumerate(names):
        b = {k: full[k] for k in names[:i]}
        # an invalid later member does not change which problem is reported first
        if i < 4:
            b["startupState"] = "nonsense"
        check_compact(post(d, b), json.loads(validation(
            "body must have required property '%s'" % missing)), 400)
    check_compact(get(d), [])
    assert not os.path.exists(sched_file(d))


def test_bad_bodies(sched):
    d = sched()
    not_object = json.loads(validation("body must be object"))
    for b in (b"[]", b'"text"', b"42", b"null", b"[" + json.dumps(body()).encode() + b"]"):
        check_compact(post(d, b), not_object, 400)
    check_compact(post(d, b"hello", ctype="text/plain"), not_object, 400)
    check_compact(post(d, None, ctype=None), not_object, 400)
    check_compact(post(d, b'{"name":', ), json.loads(harness.err(
        400, "Body is not valid JSON but content-type is set to 'application/json'",
        "FST_ERR_CTP_INVALID_JSON_BODY")), 400)
    check_compact(post(d, b"name=x", ctype="application/x-www-form-urlencoded"),
                  json.loads(harness.err(415, "Unsupported Media Type",
                                         "FST_ERR_CTP_INVALID_MEDIA_TYPE")), 415)
    check_compact(post(d, body(name={"a": 1})), json.loads(validation(
        "body/name must be string")), 400)
    check_compact(post(d, body(tags=["ok", {"a": 1}])), json.loads(validation(
        "body/tags/1 must be string")), 400)
    check_compact(get(d), [])


def test_object_is_not_coerced_to_array(sched):
    """Spec 1.6: only a scalar becomes a one-element array; an object is no scalar
    (and objects are never converted to strings), so it fails the array type."""
    d = sched()
    check_compact(post(d, body(tags={"a": 1})), json.loads(validation(
        "body/tags must be array")), 400)
    check_compact(get(d), [])


def test_values_coerced_as_load_scripts_send_them(sched):
    """Spec 1.6: numbers and booleans become strings, a scalar becomes a
    one-element array."""
    d = sched()
    r = post(d, body(name=123, tags="single"))
    assert r.status == 201, r
    o = parse(r)
    assert o["name"] == "123" and o["tags"] == ["single"], o
    r = post(d, body(name=True, tags=["x"], state=["stopped"]))
    assert r.status == 201, r
    o = parse(r)
    assert o["name"] == "true" and o["startupState"] == "stopped", o


def test_tag_items_coerced_to_strings(sched):
    """Spec 1.6 applied to the items of `tags` (array of strings, 2.10.6): numbers
    and booleans become their text, as a load script sends them."""
    d = sched()
    r = post(d, body(tags=[1, 2.5, False, None]))
    assert r.status == 201, r
    assert parse(r)["tags"] == ["1", "2.5", "false", ""], r


INVALID_CRON = [
    "", "   ", "abc", "* * * *", "* * * * * * *",
    "60 * * * * *", "* 60 * * * *", "* * 24 * * *", "0 0 32 * *", "0 0 0 * *",
    "0 0 * 0 *",            # Butler's January is month 0 (spec 2.10.2: 1-12 here)
    "0 0 * 13 *", "0 0 * * 8", "-1 * * * *", "5-1 * * * *", "*/0 * * * *", "1-5/0 * * * *",
    "? * * * *", "0 0 L * *", "0 0 15W * *", "0 0 * * 1#2", "@daily", "@every 1s",
    "0 0 31 2 *",           # never fires within 8 years
    "0 0 30 2 *", "0 0 31 4,6,9,11 *", "a-b * * * *", "1,,2 * * * *", "1, 2 * * * *",
    "0 0 * foo *", "0 0 * * funday", "1.5 * * * *", "0x1 * * * *",
]


@pytest.mark.parametrize("cron", INVALID_CRON)
def test_invalid_cron_expression(rejector, cron):
    check_rejected(rejector, body(cron=cron), 400, "Invalid cron expression: %s" % cron)


VALID_CRON = [
    "* * * * *", "* * * * * *", "0 0 29 2 *", "0 0 * * 0", "0 0 * * 7", "0 0 * * 0-7",
    "59 23 31 12 *", "59 59 23 31 12 *", "0,30 6 * * 1-5", "*/15 * * * *", "5/15 * * * *",
    "10-50/20 * * * *", "0 0 * jan *", "0 0 * JAN-mar,Dec *", "0 0 * * sun", "0 0 * * Mon-FRI",
    "0 0 1 * 1", "0 0 1,15 * mon",
]


def test_valid_cron_expressions_accepted(sched):
    d = sched()
    made = [create(d, body(cron=c, state="stopped"))["id"] for c in VALID_CRON]
    assert [o["cronSchedule"] for o in listed(d)] == VALID_CRON
    assert [o["id"] for o in listed(d)] == made


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "Europe/", "../../../etc/passwd",
                                "/etc/localtime", "Europe/Stockholm/", "Nowhere",
                                "Europe/Stockholm\u00e4"])
def test_invalid_timezone(rejector, tz):
    check_rejected(rejector, body(tz=tz), 400, "Invalid timezone: %s" % tz)


@pytest.mark.parametrize("tz", ["UTC", "Europe/Stockholm", "America/New_York", "Asia/Kolkata",
                                "Australia/Lord_Howe"])
def test_valid_timezones(sched, tz):
    d = sched()
    assert create(d, body(tz=tz))["timezone"] == tz


@pytest.mark.parametrize("task", ["", "not-a-guid", LOOSE, LOOSE.upper(), TASK + "0", TASK[1:],
                                  "{%s}" % TASK, " " + TASK,
                                  "e3b27f50-b1c0-6879-88fc-c7cdd9c1cf3e",   # version 6
                                  "e3b27f50-b1c0-4879-c8fc-c7cdd9c1cf3e"])  # variant c
def test_invalid_task_id_reported_as_received(rejector, task):
    check_rejected(rejector, body(task=task), 400, "Invalid task ID: %s" % task)


def test_check_order(sched):
    """Spec 2.10.6: schema, then cron, then time zone, then task ID."""
    d = sched()
    check_compact(post(d, body(cron="bad", tz="Bad/Zone", task="bad", state="x")),
                  json.loads(validation("body/startupState must be equal to one of the "
                                        "allowed values")), 400)
    check_error(post(d, body(cron="bad", tz="Bad/Zone", task="bad")), 400,
                "Invalid cron expression: bad")
    check_error(post(d, body(tz="Bad/Zone", task="bad")), 400, "Invalid timezone: Bad/Zone")
    check_error(post(d, body(task="bad")), 400, "Invalid task ID: bad")
    check_compact(get(d), [])


def test_max_schedules(sched):
    d = sched(max_schedules=3)
    ids = [create(d, body(name=str(i)))["id"] for i in range(3)]
    check_error(post(d, body(name="3")), 400, "Too many schedules (limit 3)")
    assert [o["id"] for o in listed(d)] == ids
    assert [o["id"] for o in read_sched_file(sched_file(d))] == ids
    harness.check_204(delete(d, ids[1]))
    new = create(d, body(name="4"))
    assert [o["id"] for o in listed(d)] == [ids[0], ids[2], new["id"]]


def test_post_via_method_override_is_not_create(sched):
    """X-HTTP-Method-Override: PUT on POST /v4/schedules routes as PUT (no route)."""
    d = sched()
    r = post(d, body(), headers={"X-HTTP-Method-Override": "PUT"})
    check_compact(r, json.loads(not_found("PUT", "/v4/schedules")), 404)
    check_compact(get(d), [])


# ------------------------------------------------------------------ DELETE (2.10.7)

def test_delete(sched):
    d = sched()
    a = create(d, body(name="A"))
    b = create(d, body(name="B", state="stopped"))
    harness.check_204(delete(d, a["id"]))
    check_compact(get(d), [b])
    assert read_sched_file(sched_file(d)) == [b]
    check_error(delete(d, a["id"]), 400, "REST SCHEDULER: Delete for schedule ID %s failed."
                % a["id"])
    check_error(get(d, a["id"]), 400, "REST SCHEDULER: Schedule ID %s not found." % a["id"])
    harness.check_204(delete(d, b["id"]))
    check_compact(get(d), [])
    assert read_sched_file(sched_file(d)) == []
    check_status(d, [])


@pytest.mark.parametrize("raw,sid", [("nope", "nope"), ("", ""), ("a%20b", "a b"),
                                     ("startall", "startall"), ("status", "status")])
def test_delete_unknown_or_empty_id(sched, raw, sid):
    d = sched()
    a = create(d, body())
    check_error(d.request("DELETE", "/v4/schedules/" + raw), 400,
                "REST SCHEDULER: Delete for schedule ID %s failed." % sid)
    check_compact(get(d), [a])


def test_delete_via_method_override(sched):
    d = sched()
    a = create(d, body())
    r = d.request("POST", "/v4/schedules/" + a["id"], {"X-HTTP-Method-Override": "delete"})
    harness.check_204(r)
    check_compact(get(d), [])


# ------------------------------------------------------------------ start / stop (2.10.8)

def test_start_stop_one(sched):
    d = sched()
    a = create(d, body(name="A", state="stopped", tags=["t"]))
    b = create(d, body(name="B", state="stopped"))
    started = dict(a, lastKnownState="started")
    check_compact(start(d, a["id"]), [started])
    check_compact(get(d), [started, b])          # startupState unchanged, order unchanged
    check_status(d, [(a["id"], NEVER_NOW, True), (b["id"], NEVER_NOW, False)])
    assert read_sched_file(sched_file(d)) == [started, b]
    check_compact(start(d, a["id"]), [started])  # starting a running one changes nothing
    check_compact(get(d), [started, b])
    check_compact(stop(d, a["id"]), [a])
    check_compact(stop(d, a["id"]), [a])          # stopping a stopped one: the same
    check_compact(get(d), [a, b])
    check_status(d, [(a["id"], NEVER_NOW, False), (b["id"], NEVER_NOW, False)])
    assert read_sched_file(sched_file(d)) == [a, b]


def test_start_stop_need_no_body_and_accept_override(sched):
    d = sched()
    a = create(d, body(state="stopped"))
    r = d.request("PUT", "/v4/schedules/%s/start" % a["id"],
                  {"Content-Type": "application/json"}, b"{}")
    check_compact(r, [dict(a, lastKnownState="started")])
    r = d.request("POST", "/v4/schedules/%s/stop" % a["id"], {"X-HTTP-Method-Override": "PUT"})
    check_compact(r, [a])


@pytest.mark.parametrize("raw,sid", [("nope", "nope"), ("", ""), ("a%2Fb", "a/b")])
def test_start_stop_unknown_or_empty_id(sched, raw, sid):
    """S7: an empty id is an unknown id, not "all"."""
    d = sched()
    a = create(d, body(state="stopped"))
    b = create(d, body(state="started"))
    check_error(put(d, "/v4/schedules/%s/start" % raw), 400,
                "REST SCHEDULER: Failed starting schedule ID %s." % sid)
    check_error(put(d, "/v4/schedules/%s/stop" % raw), 400,
                "REST SCHEDULER: Failed stopping schedule ID %s." % sid)
    check_compact(get(d), [a, b])


# ------------------------------------------------------------------ start-all / stop-all (2.10.9)

def test_startall_stopall(sched):
    d = sched()
    check_compact(startall(d), [])
    check_compact(stopall(d), [])
    a = create(d, body(name="A", state="stopped"))
    b = create(d, body(name="B", state="started", tags=["x"]))
    c = create(d, body(name="C", state="stop"))
    run = [dict(o, lastKnownState="started") for o in (a, b, c)]
    halt = [dict(o, lastKnownState="stopped") for o in (a, b, c)]
    check_compact(startall(d), run)
    check_compact(get(d), run)
    assert read_sched_file(sched_file(d)) == run
    check_status(d, [(o["id"], NEVER_NOW, True) for o in (a, b, c)])
    check_compact(stopall(d), halt)
    check_compact(get(d), halt)
    assert read_sched_file(sched_file(d)) == halt
    check_status(d, [(o["id"], NEVER_NOW, False) for o in (a, b, c)])


def test_static_segment_wins_over_id(sched, tmp_path):
    """PUT /v4/schedules/startall is start-all even if a schedule is called
    "startall"; that one is still reached by /v4/schedules/startall/start."""
    d0 = harness.Daemon(tmp_path / "d", sched_overrides())
    os.makedirs(d0.tmpdir)
    other = dict(PEER, id="other")
    named = dict(PEER, id="startall", startupState="stopped")
    write_sched_file(os.path.join(d0.tmpdir, "schedule.json"), [named, other])
    d0.start()
    try:
        check_compact(put(d0, "/v4/schedules/startall/start"),
                      [dict(named, lastKnownState="started")])
        check_compact(get(d0), [dict(named, lastKnownState="started"), other])
        r = stopall(d0)
        check_compact(r, [named, other])
        check_compact(startall(d0), [dict(named, lastKnownState="started"),
                                     dict(other, lastKnownState="started")])
    finally:
        d0.stop()


# ------------------------------------------------------------------ several workers

def test_change_through_one_worker_seen_at_once_by_all(sched):
    d = sched(workers=4)
    conns = [d.conn() for _ in range(12)]
    try:
        for c in conns:                  # open all of them first, spread over the workers
            c.connect()

        def everywhere(want):
            for i, c in enumerate(conns):
                r = harness.conn_request(c, "GET", "/v4/schedules")
                assert r.status == 200 and parse(r) == want, (i, r)

        everywhere([])
        r = harness.conn_request(conns[0], "POST", "/v4/schedules",
                                 {"Content-Type": "application/json"},
                                 json.dumps(body(state="stopped")).encode())
        assert r.status == 201, r
        a = parse(r)
        everywhere([a])
        r = harness.conn_request(conns[5], "PUT", "/v4/schedules/%s/start" % a["id"])
        assert r.status == 200, r
        everywhere([dict(a, lastKnownState="started")])
        r = harness.conn_request(conns[7], "PUT", "/v4/schedules/stopall")
        assert r.status == 200, r
        everywhere([a])
        r = harness.conn_request(conns[11], "DELETE", "/v4/schedules/" + a["id"])
        assert r.status == 204, r
        everywhere([])
        for c in conns:
            r = harness.conn_request(c, "GET", "/v4/schedules/status")
            assert r.body == b"{\n}\n", r
    finally:
        for c in conns:
            c.close()


def test_concurrent_creates_all_kept(sched):
    """Creates through 4 workers at the same time: every one is listed and stored."""
    import threading
    d = sched(workers=4)
    out, lock = [], threading.Lock()

    def worker(k):
        for i in range(5):
            r = post(d, body(name="w%d-%d" % (k, i), state="stopped"))
            with lock:
                out.append(r)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert all(r.status == 201 for r in out), [r for r in out if r.status != 201][:3]
    ids = {parse(r)["id"] for r in out}
    assert len(ids) == 20
    assert {o["id"] for o in listed(d)} == ids
    assert {o["id"] for o in read_sched_file(sched_file(d))} == ids


# ------------------------------------------------------------------ the file (2.10.4)

def test_file_created_at_first_change_pretty_and_ordered(sched):
    d = sched(configfile="state/schedule.json")
    state = os.path.join(d.tmpdir, "state")
    os.makedirs(state)
    check_compact(get(d), [])
    assert dir_entries(state) == []
    a = create(d, body(name="A", tags=["a", "b"]))
    assert dir_entries(state) == ["schedule.json"]      # no temporary file left behind
    path = os.path.join(state, "schedule.json")
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    got = read_sched_file(path)
    assert got == [a] and list(got[0]) == list(a), got
    assert text.lstrip().startswith("{")
    b = create(d, body(name="B", state="stopped"))
    assert read_sched_file(path) == [a, b]
    harness.check_204(delete(d, a["id"]))
    harness.check_204(delete(d, b["id"]))
    assert read_sched_file(path) == []
    assert dir_entries(state) == ["schedule.json"]


def test_relative_configfile_resolves_against_working_directory(sched, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    d = sched(configfile="sub/s.json", more={"butlerd": {"workingDirectory": str(wd)}})
    (wd / "sub").mkdir()
    a = create(d, body())
    assert read_sched_file(str(wd / "sub" / "s.json")) == [a]
    assert not os.path.exists(os.path.join(d.tmpdir, "sub"))


def test_restart_keeps_schedules_and_recomputes_last_known_state(sched):
    d = sched()
    a = create(d, body(name="A", state="stopped", tags=["t"]))
    b = create(d, body(name="B", state="started"))
    c = create(d, body(name="C", state="start"))
    check_compact(start(d, a["id"]), [dict(a, lastKnownState="started")])
    check_compact(stop(d, b["id"]), [dict(b, lastKnownState="stopped")])
    before = listed(d)
    assert read_sched_file(sched_file(d)) == before
    d.stop()
    d.start()
    # the same schedules, same ids, created and order; lastKnownState from startupState
    check_compact(get(d), [a, b, c])
    check_status(d, [(a["id"], NEVER_NOW, False), (b["id"], NEVER_NOW, True),
                     (c["id"], NEVER_NOW, True)])
    # and they can be changed as before
    harness.check_204(delete(d, c["id"]))
    check_compact(get(d), [a, b])


def check_t(d):
    """butlerd -t on d's configuration, run in d's directory (so that a relative
    schedule file is the daemon's)."""
    d.port = harness.free_port()
    d.write_config(d.config())
    return subprocess.run([harness.binary(), "-t", "-c", d.config_path], cwd=d.tmpdir,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30, text=True)


def start_with_file(tmp_path, content, name="d", enable=True, configfile="schedule.json"):
    d = harness.Daemon(tmp_path / name, sched_overrides(configfile=configfile, enable=enable))
    os.makedirs(d.tmpdir)
    path = os.path.join(d.tmpdir, configfile)
    if isinstance(content, list):
        write_sched_file(path, content)
    elif isinstance(content, dict):
        with open(path, "w") as f:
            json.dump(content, f, indent=2)
    elif content is not None:
        with open(path, "w") as f:
            f.write(content)
    return d, path


@pytest.fixture
def file_daemons():
    ds = []
    yield ds
    for d in ds:
        d.stop()
        print(d.log_tail(100))


def test_file_schedules_loaded_as_stored(tmp_path, file_daemons):
    """Spec 2.10.5's example as a file: any id, a member absent (created) stays
    absent, lastKnownState recomputed from startupState."""
    loaded = [dict(PEER, lastKnownState="started"),
              {"id": "s2", "name": "two", "cronSchedule": NEVER_NOW, "timezone": "UTC",
               "qlikSenseTaskId": TASK, "startupState": "start"},
              {"id": "s3", "created": "2025-01-02T03:04:05.006Z", "name": "three",
               "cronSchedule": NEVER_NOW, "timezone": "UTC", "qlikSenseTaskId": TASK2,
               "startupState": "started", "tags": [], "lastKnownState": "stopped"}]
    d, path = start_with_file(tmp_path, {"butlerSchedule": loaded})
    file_daemons.append(d)
    d.start()
    r = get(d, "peer-schedule-1")
    assert r.status == 200 and r.body == PEER_WIRE, r
    want = [PEER, dict(loaded[1], lastKnownState="started"),
            dict(loaded[2], lastKnownState="started")]
    check_compact(get(d), want)
    check_status(d, [("peer-schedule-1", "0 0 1 1 *", False), ("s2", NEVER_NOW, True),
                     ("s3", NEVER_NOW, True)])


def test_loaded_invalid_cron_or_timezone_listed_stopped(tmp_path, file_daemons):
    bad_cron = {"id": "bad-cron", "name": "Butler month", "cronSchedule": "0 0 1 0 *",
                "timezone": "UTC", "qlikSenseTaskId": TASK, "startupState": "started",
                "lastKnownState": "started"}
    bad_tz = {"id": "bad-tz", "name": "nowhere", "cronSchedule": NEVER_NOW,
              "timezone": "Mars/Olympus_Mons", "qlikSenseTaskId": TASK, "startupState": "start",
              "lastKnownState": "started"}
    good = {"id": "good", "name": "fine", "cronSchedule": NEVER_NOW, "timezone": "UTC",
            "qlikSenseTaskId": TASK, "startupState": "stopped", "lastKnownState": "stopped"}
    d, path = start_with_file(tmp_path, {"butlerSchedule": [bad_cron, bad_tz, good]})
    file_daemons.append(d)
    d.start()
    stopped = [dict(bad_cron, lastKnownState="stopped"), dict(bad_tz, lastKnownState="stopped"),
               good]
    check_compact(get(d), stopped)
    check_status(d, [("bad-cron", "0 0 1 0 *", False), ("bad-tz", NEVER_NOW, False),
                     ("good", NEVER_NOW, False)])
    # an error is logged for each (the id or the offending value named)
    errors = [l for l in d.snapshot() if " error: " in l]
    assert any(("bad-cron" in l or "0 0 1 0 *" in l) for l in errors), d.log_tail()
    assert any(("bad-tz" in l or "Mars/Olympus_Mons" in l) for l in errors), d.log_tail()
    # start-all starts only the schedules with a valid expression
    r = startall(d)
    assert r.status == 200, r
    got = parse(r)
    assert [o["lastKnownState"] for o in got] == ["stopped", "stopped", "started"], got
    check_status(d, [("bad-cron", "0 0 1 0 *", False), ("bad-tz", NEVER_NOW, False),
                     ("good", NEVER_NOW, True)])
    # they can be deleted
    harness.check_204(delete(d, "bad-cron"))
    harness.check_204(delete(d, "bad-tz"))
    assert [o["id"] for o in read_sched_file(path)] == ["good"]


INVALID_FILES = [
    ("not json", "this is not JSON\n"),
    ("empty", ""),
    ("truncated", '{"butlerSchedule":[{"id":"a"'),
    ("array", "[]"),
    ("list not array", '{"butlerSchedule":{}}'),
    ("string list", '{"butlerSchedule":"x"}'),
    ("number item", '{"butlerSchedule":[1]}'),
    ("yaml", "butlerSchedule:\n  - id: a\n"),
]


@pytest.mark.parametrize("what,content", INVALID_FILES, ids=[w for w, _ in INVALID_FILES])
def test_invalid_file_is_fatal_and_reported_by_t(tmp_path, what, content):
    d, path = start_with_file(tmp_path, content)
    cp = check_t(d)
    assert cp.returncode != 0, cp
    assert "configuration OK" not in cp.stdout, cp
    assert "schedule.json" in cp.stderr, cp.stderr
    rc, log = run_expect_exit(d)
    assert rc != 0, log
    assert "ready: listening" not in log, log
    assert "schedule.json" in log, log
    with open(path) as f:
        assert f.read() == content              # left as it was


def test_invalid_file_ignored_when_scheduler_disabled(tmp_path, file_daemons):
    d, path = start_with_file(tmp_path, "this is not JSON\n", enable=False)
    file_daemons.append(d)
    cp = check_t(d)
    assert cp.returncode == 0, cp
    d.start()
    assert d.get("/v4/schedules").status == 404


def test_missing_file_is_fine_for_t(tmp_path):
    d, path = start_with_file(tmp_path, None)
    cp = check_t(d)
    assert cp.returncode == 0 and "configuration OK" in cp.stdout, cp
    assert not os.path.exists(path)


# ------------------------------------------------------------------ a read-only directory: 500

def test_read_only_directory_gives_500_and_no_change(sched):
    d = sched(configfile="state/schedule.json")
    state = os.path.join(d.tmpdir, "state")
    os.makedirs(state)
    a = create(d, body(name="A", state="started"))
    b = create(d, body(name="B", state="stopped"))
    path = os.path.join(state, "schedule.json")
    with open(path, "rb") as f:
        stored = f.read()
    with ReadOnlyDir(state):
        check_error(post(d, body(name="C")), 500, "Failed adding new schedule")
        check_error(delete(d, a["id"]), 500, "Failed deleting schedule")
        check_error(start(d, b["id"]), 500, "Failed starting schedule")
        check_error(stop(d, a["id"]), 500, "Failed stopping schedule")
        check_error(startall(d), 500, "Failed starting schedule")
        check_error(stopall(d), 500, "Failed stopping schedule")
        check_compact(get(d), [a, b])
        check_status(d, [(a["id"], NEVER_NOW, True), (b["id"], NEVER_NOW, False)])
        with open(path, "rb") as f:
            assert f.read() == stored
        assert dir_entries(state) == ["schedule.json"]
    # writable again: changes work and are stored
    check_compact(start(d, b["id"]), [dict(b, lastKnownState="started")])
    c = create(d, body(name="C"))
    assert read_sched_file(path) == [a, dict(b, lastKnownState="started"), c]


def test_read_only_directory_before_first_change(sched):
    d = sched(configfile="state/schedule.json")
    state = os.path.join(d.tmpdir, "state")
    os.makedirs(state)
    with ReadOnlyDir(state):
        check_error(post(d, body()), 500, "Failed adding new schedule")
        check_compact(get(d), [])
        assert dir_entries(state) == []
