"""UDP event intake of butlerd (issue 5; spec api.md 2.15, 2.16 active users,
5.3, 5.4, 6.1-6.7): proxy session events -> active users (REST and MQTT),
scheduler task events -> MQTT task topics with QRS metadata from the Qlik
Sense simulator; malformed, oversize, duplicate, non-allowed and over-rate
datagrams are dropped.

Datagrams are sent with tests/qlik-sim/udp_sender.py from 127.0.0.1 (and
127.0.0.2 for the allow-list). A dropped datagram must publish nothing: each
such test sends the dropped datagram(s) first and then a valid "marker"; once
the marker's messages arrived (plus a short settle time) only they may be
there. The aggregate topics (count, usernames, per-server counts) are
published once per burst of datagrams, so tests wait for the LAST message on
them to carry the expected value and never count them."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

import harness
from harness import JSON_CT, jdump
from broker import STATUS_TOPIC
from test_mqtt import (broker, subs, certs, sim,  # noqa: F401 (pytest fixtures)
                       mqtt_daemon, qrs_overrides, SETTLE)
from taskfix import SIM_DIR, FIXTURE, T1, T2, T3, MISSING, TEXT

sys.path.insert(0, SIM_DIR)
from udp_sender import Sender, join, session_datagram, session_fields, task_fields  # noqa: E402

A1, A2, A3, A5 = ("3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c01", "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c02",
                  "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c03", "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c05")
TFN = "0fd6b2b1-8a7c-4d5e-a6f7-b8c9d0e1f2a3"   # two custom properties, app "Finance reports"
NO_APP = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"  # well-formed, not in the fixture

T_START, T_STOP = "qliksense/session/start", "qliksense/session/stop"
T_OPEN, T_CLOSE = "qliksense/connection/open", "qliksense/connection/close"
T_COUNT, T_USERS = "qliksense/users/active/count", "qliksense/users/active/usernames"
T_FAIL, T_FAIL_FULL = "qliksense/task_failure", "qliksense/task_failure_full"
T_ABORT, T_ABORT_FULL = "qliksense/task_aborted", "qliksense/task_aborted_full"
T_TASK_SERVER, T_SESSION_SERVER = "qliksense/butler/task_failure_server", \
    "qliksense/butler/session_server"
EVENT_TOPICS = (T_START, T_STOP, T_OPEN, T_CLOSE, T_FAIL, T_FAIL_FULL, T_ABORT, T_ABORT_FULL)
AGGREGATE_PREFIXES = (T_COUNT, T_USERS, "qliksense/users/activeperserver/")

with open(FIXTURE, encoding="utf-8") as _f:
    FIX = json.load(_f)


def per_server(host):
    return "qliksense/users/activeperserver/%s/count" % host


def free_udp_ports(n=2):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def udp_overrides(tport, sport, **more):
    cfg = {"enable": True, "serverHost": "127.0.0.1", "portTaskFailure": tport,
           "portSessionConnectionEvents": sport}
    cfg.update(more)
    return {"Butler": {"restServerEndpointsEnable": {"activeUserCount": True, "activeUsers": True},
                       "udpServerConfig": cfg}}


def udp_daemon(start_daemon, broker=None, overrides=None, workers=3, qrs=None):
    """butlerd with both UDP sockets on free ports (d.task_tx / d.sess_tx send
    to them), MQTT against broker if given, QRS overrides `qrs`."""
    tport, sport = free_udp_ports()
    ov = udp_overrides(tport, sport)
    harness.merge(ov, qrs or {})
    harness.merge(ov, overrides or {})
    if broker is not None:
        d = mqtt_daemon(start_daemon, broker, ov, workers=workers)
    else:
        d = start_daemon(ov, workers=workers)
    d.tport, d.sport = tport, sport
    d.task_tx, d.sess_tx = Sender(tport), Sender(sport)
    return d


def alive(d):
    assert d.running(), d.log_tail()
    assert d.get("/v4/butlerping").status == 200


# ------------------------------------------------------------------ active users over REST


def users_now(d):
    r = d.get("/v4/activeusers")
    assert r.status == 200, r
    return json.loads(r.body)


def wait_users(d, expected, timeout=5.0):
    ok = harness.wait_until(lambda: users_now(d) == expected, timeout)
    assert ok, "activeusers %s, want %s\n%s" % (users_now(d), expected, d.log_tail())


def check_endpoints(d, expected, rounds=12):
    """All four readers agree, on fresh connections (spread over the workers)."""
    want = [("/v4/activeusercount", jdump({"response": len(expected)})),
            ("/v4/activeusers", jdump(expected)),
            ("/v2/activeUserCount", str(len(expected)).encode()),
            ("/v2/activeUsers", jdump(expected)),
            ("/v2/activeusercount", str(len(expected)).encode())]
    for _ in range(rounds):
        for path, body in want:
            r = d.get(path)
            assert r.status == 200 and r.body == body, (path, r, body)
            assert r.header("Content-Type") == JSON_CT, (path, r)


def start_ev(host, dr, user, **kw):
    return session_datagram("start", host, dr, user, **kw)


def stop_ev(host, dr, user):
    return session_datagram("stop", host, dr, user)


def line(host, dr, user):
    return "%s: %s/%s" % (host, dr, user)


def aggregates_since(s, mark):
    return [m for m in s.since(mark) if m.topic.startswith(AGGREGATE_PREFIXES)]


# ================================================================== sessions, REST only


def test_active_users_empty_at_start(start_daemon):
    d = udp_daemon(start_daemon, workers=2)
    check_endpoints(d, [], rounds=3)


def test_session_events_rest_through_every_worker(start_daemon):
    d = udp_daemon(start_daemon, workers=3)
    tx = d.sess_tx
    tx.send(start_ev("sense1", "ACME", "anna"))
    tx.send(start_ev("sense1", "ACME", "joe"))
    tx.send(start_ev("sense2", "ACME", "joe"))
    tx.send(start_ev("sense2", "LAB", "joe"))         # same user id, other directory
    wait_users(d, ["ACME/anna", "ACME/joe", "LAB/joe"])
    check_endpoints(d, ["ACME/anna", "ACME/joe", "LAB/joe"])
    # Stop on one proxy: still active through the other
    tx.send(stop_ev("sense1", "ACME", "joe"))
    tx.send(session_datagram("close", "sense2", "LAB", "joe"))    # changes nothing
    tx.send(session_datagram("open", "sense3", "ACME", "zoe"))    # adds
    wait_users(d, ["ACME/anna", "ACME/joe", "LAB/joe", "ACME/zoe"])
    check_endpoints(d, ["ACME/anna", "ACME/joe", "LAB/joe", "ACME/zoe"])
    tx.send(stop_ev("sense2", "ACME", "joe"))
    tx.send(stop_ev("sense2", "LAB", "joe"))
    tx.send(stop_ev("sense9", "ACME", "anna"))        # no such entry: nothing
    wait_users(d, ["ACME/anna", "ACME/zoe"])
    # gone and back: ordered by when the pair was (re)added
    tx.send(stop_ev("sense1", "ACME", "anna"))
    tx.send(start_ev("sense1", "ACME", "anna"))
    wait_users(d, ["ACME/zoe", "ACME/anna"])
    check_endpoints(d, ["ACME/zoe", "ACME/anna"])
    alive(d)


def test_session_field_rules_and_sanitising(start_daemon):
    d = udp_daemon(start_daemon, workers=2)
    tx = d.sess_tx
    # dropped / ignored
    tx.send(b"/proxy-session/;h1;Start session;ACME;six;AppAccess")           # 6 fields
    tx.send(join(session_fields("start", "h1", "ACME", "bad", msg_type="/proxy-foo/")))
    tx.send(join(session_fields("start", "h1", "ACME", "")))                  # empty user id
    tx.send(join(session_fields("start", "h1", "ACME", "x", command_text="Refresh session")))
    tx.send(join(task_fields("failed", task_id=T1, app_id=A1)))               # wrong socket
    tx.send(b"")
    # accepted
    tx.send(b"/proxy-session/;h1;Start session;ACME;seven;AppAccess;/hub/")   # 7 fields
    tx.send(join(session_fields("start", "h1", "ACME", "upper", msg_type="/PROXY-SESSION/",
                                command_text="START SESSION")))
    tx.send(join(session_fields("start", "h1", "ACME", "semi", message="a;b;c")))
    tx.send(join(session_fields("start", "h1", "ACME", "ct\x01r\x7fl")))      # control chars
    tx.send(join(["/proxy-session/", "h1", "Start session", "ACME", b"j\xffoe", "o", "c", "m"]))
    tx.send(join(session_fields("start", "h1", "ACME", "u" * 600)))           # cut to 500
    tx.send(start_ev("h1", "ACME", "marker"))
    want = ["ACME/seven", "ACME/upper", "ACME/semi", "ACME/ctrl", "ACME/j\ufffdoe",
            "ACME/" + "u" * 500, "ACME/marker"]
    wait_users(d, want)
    time.sleep(SETTLE)
    check_endpoints(d, want, rounds=2)
    alive(d)


def test_active_users_routes_disabled(start_daemon):
    tport, sport = free_udp_ports()
    ov = udp_overrides(tport, sport)
    ov["Butler"]["restServerEndpointsEnable"] = {"activeUserCount": False, "activeUsers": False}
    d = start_daemon(ov)
    for path in ("/v4/activeusercount", "/v4/activeusers", "/v2/activeUserCount",
                 "/v2/activeUsers"):
        r = d.get(path)
        assert (r.status, r.body) == (404, harness.not_found("GET", path)), r


def test_v2_active_users_need_v2_api(start_daemon):
    tport, sport = free_udp_ports()
    ov = udp_overrides(tport, sport)
    ov["butlerd"] = {"v2Api": {"enable": False}}
    d = start_daemon(ov)
    assert d.get("/v4/activeusercount").body == b'{"response":0}'
    for path in ("/v2/activeUserCount", "/v2/activeUsers"):
        r = d.get(path)
        assert (r.status, r.body) == (404, harness.not_found("GET", path)), r


def test_capacity_limit(start_daemon):
    d = udp_daemon(start_daemon, overrides={"butlerd": {"shm": {"maxActiveUsers": 3}}},
                   workers=2)
    for u in ("a", "b", "c", "d", "e"):
        d.sess_tx.send(start_ev("h1", "ACME", u))
    wait_users(d, ["ACME/a", "ACME/b", "ACME/c"])
    time.sleep(SETTLE)
    check_endpoints(d, ["ACME/a", "ACME/b", "ACME/c"], rounds=2)
    # room again after a Stop
    d.sess_tx.send(stop_ev("h1", "ACME", "a"))
    d.sess_tx.send(start_ev("h1", "ACME", "f"))
    wait_users(d, ["ACME/b", "ACME/c", "ACME/f"])
    alive(d)


# ================================================================== sessions over MQTT


def test_session_events_mqtt_topics(start_daemon, broker, subs):
    s = subs("qliksense/#")
    d = udp_daemon(start_daemon, broker)
    tx = d.sess_tx
    h1, h2, h3 = "sense1.acme.local", "sense2.acme.local", "sense3.acme.local"
    tx.send(start_ev(h1, "ACME", "anna"))
    tx.send(start_ev(h1, "ACME", "joe"))
    tx.send(start_ev(h2, "ACME", "joe"))
    tx.send(start_ev(h2, "LAB", "joe"))
    s.wait_count(T_START, 4)
    assert s.payloads(T_START) == [line(h1, "ACME", "anna").encode(),
                                   line(h1, "ACME", "joe").encode(),
                                   line(h2, "ACME", "joe").encode(),
                                   line(h2, "LAB", "joe").encode()]
    assert all((m.qos, m.retain) == (0, False) for m in s.messages(T_START))
    s.wait_last(T_COUNT, "3")
    s.wait_last(T_USERS, '["ACME/anna","ACME/joe","LAB/joe"]')
    s.wait_last(per_server(h1), "2")
    s.wait_last(per_server(h2), "2")

    tx.send(stop_ev(h1, "ACME", "joe"))
    s.wait_message(T_STOP, line(h1, "ACME", "joe"))
    s.wait_last(per_server(h1), "1")
    s.wait_last(T_COUNT, "3")
    s.wait_last(T_USERS, '["ACME/anna","ACME/joe","LAB/joe"]')

    tx.send(session_datagram("open", h3, "ACME", "zoe"))
    s.wait_message(T_OPEN, line(h3, "ACME", "zoe"))
    s.wait_last(T_COUNT, "4")
    s.wait_last(T_USERS, '["ACME/anna","ACME/joe","LAB/joe","ACME/zoe"]')
    s.wait_last(per_server(h3), "1")

    tx.send(stop_ev(h2, "ACME", "joe"))
    tx.send(stop_ev(h2, "LAB", "joe"))
    s.wait_last(per_server(h2), "0")          # 0 is published too
    s.wait_last(T_COUNT, "2")
    s.wait_last(T_USERS, '["ACME/anna","ACME/zoe"]')
    s.wait_last(per_server(h1), "1")
    s.wait_last(per_server(h3), "1")
    assert s.payloads(T_STOP) == [line(h1, "ACME", "joe").encode(),
                                  line(h2, "ACME", "joe").encode(),
                                  line(h2, "LAB", "joe").encode()]
    check_endpoints(d, ["ACME/anna", "ACME/zoe"], rounds=3)
    alive(d)


def test_close_connection_changes_nothing_and_publishes_no_aggregate(start_daemon, broker, subs):
    s = subs("qliksense/#")
    d = udp_daemon(start_daemon, broker)
    d.sess_tx.send(start_ev("sense1", "ACME", "joe"))
    s.wait_last(T_COUNT, "1")
    time.sleep(SETTLE)
    mark = s.mark()
    d.sess_tx.send(session_datagram("close", "sense1", "ACME", "joe"))
    m = s.wait_message(T_CLOSE, "sense1: ACME/joe", start=mark)
    assert (m.qos, m.retain) == (0, False)
    time.sleep(SETTLE)
    assert aggregates_since(s, mark) == []
    check_endpoints(d, ["ACME/joe"], rounds=2)
    # a Stop for someone unknown still publishes the aggregates (spec 6.5)
    mark = s.mark()
    d.sess_tx.send(stop_ev("sense1", "ACME", "nobody"))
    s.wait_message(T_STOP, "sense1: ACME/nobody", start=mark)
    s.wait_for(lambda ms: [m for m in ms[mark:] if m.topic == T_COUNT], 5, "count after Stop")
    s.wait_last(T_COUNT, "1")
    s.wait_last(T_USERS, '["ACME/joe"]')


def test_per_server_topic_sanitised_host(start_daemon, broker, subs):
    s = subs("qliksense/#")
    d = udp_daemon(start_daemon, broker)
    d.sess_tx.send(start_ev("node+1#a", "ACME", "x"))
    s.wait_message(T_START, "node+1#a: ACME/x")
    s.wait_last("qliksense/users/activeperserver/node_1_a/count", "1")
    s.wait_last(T_COUNT, "1")


def test_udp_server_status_topics(start_daemon, broker, subs):
    s = subs(["qliksense/butler/#"])
    udp_daemon(start_daemon, broker)
    s.wait_message(T_TASK_SERVER, "start")
    s.wait_message(T_SESSION_SERVER, "start")
    s.wait_message(STATUS_TOPIC)


def test_idle_expiry_publishes(start_daemon, broker, subs):
    s = subs("qliksense/#")
    d = udp_daemon(start_daemon, broker,
                   {"butlerd": {"activeUsers": {"maxIdleSeconds": 1}}})
    d.sess_tx.send(start_ev("sense1", "ACME", "idle"))
    s.wait_last(T_COUNT, "1")
    s.wait_last(T_COUNT, "0", timeout=8)
    s.wait_last(T_USERS, "[]")
    s.wait_last(per_server("sense1"), "0")
    check_endpoints(d, [], rounds=2)


# ================================================================== task events


def task_full(tid):
    t = next(t for t in FIX["tasks"] if t["id"] == tid)
    return {k: v for k, v in t.items() if k not in ("app", "operational")}


def app_full(aid):
    return dict(next(a for a in FIX["apps"] if a["id"] == aid))


def full_payload(f, aborted):
    """The JSON of spec 5.4 for datagram fields f, members in spec order."""
    task, app = task_full(f[5].lower()), app_full(f[6].lower())
    d = {"hostName": f[1], "user": f[4].replace("\\\\", "\\"), "taskName": f[2],
         "taskId": f[5].lower(), "appName": f[3], "appId": f[6].lower(), "logTimeStamp": f[7],
         "logLevel": f[8], "executionId": f[9], "logMessage": ";".join(f[10:]),
         "qs_appTags": [t["name"] for t in app.get("tags", [])],
         "qs_appCustomProperties": [{"name": c["definition"]["name"], "value": c["value"]}
                                    for c in app.get("customProperties", [])],
         "qs_taskTags": [t["name"] for t in task.get("tags", [])],
         "qs_taskCustomProperties": [{"name": c["definition"]["name"], "value": c["value"]}
                                     for c in task.get("customProperties", [])]}
    if aborted:
        d["qs_appMetadata"] = app
    d["qs_taskMetadata"] = task
    return d


def pairs(o):
    """JSON value with every object as a list of (name, value): order-sensitive."""
    if isinstance(o, dict):
        return [(k, pairs(v)) for k, v in o.items()]
    if isinstance(o, list):
        return [pairs(v) for v in o]
    return o


def check_full(payload, expected):
    got = json.loads(payload.decode("utf-8"), object_pairs_hook=lambda p: [(k, v) for k, v in p])
    assert got == pairs(expected), "\n got: %s\nwant: %s" % (payload.decode(), jdump(expected))
    assert payload == jdump(expected), "not compact/raw UTF-8:\n got: %r\nwant: %r" % (
        payload, jdump(expected))


@pytest.fixture
def taskd(start_daemon, broker, subs, sim, certs):
    """Factory: taskd(overrides=None) -> (daemon, subscriber on qliksense/#)."""
    def make(overrides=None):
        s = subs("qliksense/#")
        d = udp_daemon(start_daemon, broker, overrides, workers=2, qrs=qrs_overrides(sim, certs))
        return d, s
    return make


def fields(kind="failed", task=T1, app=A1, name=None, **kw):
    return task_fields(kind, task_id=task, app_id=app,
                       task_name=name or "Task %s" % uuid.uuid4().hex[:8], **kw)


def marker(d, s):
    """Send a valid failed event and wait for both its messages; returns its task name."""
    f = fields("failed", T1, A1, name="MARKER " + uuid.uuid4().hex)
    d.task_tx.send(join(f))
    s.wait_message(T_FAIL, f[2])
    s.wait_for(lambda ms: [m for m in ms if m.topic == T_FAIL_FULL and f[2].encode() in m.payload],
               5, "marker full message")
    return f[2]


def only_marker(s, mark, name):
    time.sleep(SETTLE)
    got = [m for m in s.since(mark) if m.topic in EVENT_TOPICS]
    assert len(got) == 2 and all(name.encode() in m.payload for m in got), s.dump()


def test_task_failed_plain_and_full(taskd):
    d, s = taskd()
    f = fields("failed", T3.upper(), A3.upper(), name="Reload of Sales", app_name="Sales",
               user="INTERNAL\\\\sa_scheduler", host="sense2.acme.local",
               message="Task failed; exit code 1; see log", log_time="2026-11-23 02:00:10,000")
    d.task_tx.send(join(f))
    m = s.wait_message(T_FAIL)
    assert (m.payload, m.qos, m.retain) == (b"Reload of Sales", 0, False)
    full = s.wait_message(T_FAIL_FULL)
    exp = full_payload(f, aborted=False)
    assert exp["user"] == "INTERNAL\\sa_scheduler" and exp["taskId"] == T3
    assert exp["logMessage"] == "Task failed; exit code 1; see log"
    check_full(full.payload, exp)
    assert "qs_appMetadata" not in json.loads(full.payload)
    time.sleep(SETTLE)
    assert s.messages(T_ABORT) == [] and s.messages(T_ABORT_FULL) == []
    alive(d)


def test_task_aborted_plain_and_full_with_app_metadata(taskd):
    d, s = taskd()
    f = fields("aborted", T2, A2, name="Reload of App2", user="ACME\\anna", app_name="App2")
    d.task_tx.send(join(f))
    assert s.wait_message(T_ABORT).payload == b"Reload of App2"
    full = s.wait_message(T_ABORT_FULL)
    exp = full_payload(f, aborted=True)
    assert exp["user"] == "ACME\\anna" and exp["qs_appTags"] == ["Sales", "Daily"]
    check_full(full.payload, exp)
    time.sleep(SETTLE)
    assert s.messages(T_FAIL) == [] and s.messages(T_FAIL_FULL) == []


def test_task_full_payload_custom_properties(taskd):
    d, s = taskd()
    f = fields("failed", TFN, A5, message="Could not reserve an executor for task")
    d.task_tx.send(join(f))
    full = s.wait_message(T_FAIL_FULL)
    exp = full_payload(f, aborted=False)
    assert exp["qs_taskCustomProperties"] == [{"name": "taskGroup", "value": "tasks1"},
                                              {"name": "region", "value": "north"}]
    check_full(full.payload, exp)


@pytest.mark.parametrize("kind,topic,full_topic", [
    ("reload-failed", T_FAIL, T_FAIL_FULL),
    ("reloadtask-failed", T_FAIL, T_FAIL_FULL),
    ("reload-aborted", T_ABORT, T_ABORT_FULL),
])
def test_task_older_type_spellings(taskd, kind, topic, full_topic):
    d, s = taskd()
    f = fields(kind, T1, A1)
    d.task_tx.send(join(f))
    assert s.wait_message(topic).payload == f[2].encode()
    check_full(s.wait_message(full_topic).payload, full_payload(f, topic == T_ABORT))


def test_task_success_publishes_nothing(taskd):
    d, s = taskd()
    mark = s.mark()
    for kind in ("success", "success-shipped", "reloadtask-success", "distribute"):
        d.task_tx.send(join(fields(kind, T1, A1)))
    f = fields("failed", T1, A1)
    f[0] = "/SCHEDULER-TASK-SUCCESS//"            # any case
    d.task_tx.send(join(f))
    only_marker(s, mark, marker(d, s))
    alive(d)


def test_task_send_full_off(taskd):
    d, s = taskd({"Butler": {"mqttConfig": {"taskFailureSendFull": False,
                                            "taskAbortedSendFull": False}}})
    f1, f2 = fields("failed", T1, A1), fields("aborted", T2, A2)
    d.task_tx.send(join(f1))
    d.task_tx.send(join(f2))
    s.wait_message(T_FAIL, f1[2])
    s.wait_message(T_ABORT, f2[2])
    time.sleep(SETTLE)
    assert s.messages(T_FAIL_FULL) == [] and s.messages(T_ABORT_FULL) == []


def test_task_qrs_lookup_failures_publish_nothing(taskd, sim):
    d, s = taskd()
    mark = s.mark()
    d.task_tx.send(join(fields("failed", MISSING, A1)))      # task not in QRS
    d.task_tx.send(join(fields("failed", TEXT, A1)))         # external program: not a reload
    d.task_tx.send(join(fields("aborted", T2, "")))          # no app ID
    d.task_tx.send(join(fields("failed", T3, NO_APP)))       # app not in QRS
    # wait until butlerd has asked QRS about all of them
    sim.wait_for_requests(1, r"^/qrs/app/full$", timeout=5, answered=True)
    harness.wait_until(lambda: any(r.filter == "id eq " + MISSING for r in sim.requests), 5)
    harness.wait_until(lambda: any(r.filter == "id eq " + TEXT and r.path == "/qrs/task/full"
                                   for r in sim.requests), 5)
    only_marker(s, mark, marker(d, s))
    # the missing task was only looked up, never fetched in full
    assert not any(r.filter == "id eq " + MISSING for r in sim.requests
                   if r.path == "/qrs/task/full")
    alive(d)


def test_task_malformed_datagrams_dropped(taskd):
    d, s = taskd()
    mark = s.mark()
    tx = d.task_tx
    tx.send(join(fields("failed", T1, A1)[:10]))                      # 10 fields
    tx.send(join(fields("failed", T1[:-1], A1)))                       # bad task GUID
    tx.send(join(fields("failed", "{%s}" % T1, A1)))
    tx.send(join(fields("aborted", T1, "not-a-guid")))                 # bad app GUID
    tx.send(join(fields("failed", T1, A1, msg_type="/scheduler-foo/")))   # unknown type
    tx.send(join(fields("failed", T1, A1, msg_type="")))
    tx.send(b"/engine-reload-failed/;h;%s;s;ACME;joe;2026-11-22 22:49:53,123;ERROR;msg"
            % A1.encode())
    tx.send(session_datagram("start", "h", "ACME", "joe"))             # wrong socket
    tx.send(b"\xff\xfe\x00garbage")
    tx.send(b"")
    only_marker(s, mark, marker(d, s))
    alive(d)


def test_task_duplicates_by_execution_id(taskd):
    d, s = taskd()
    tx = d.task_tx
    f = fields("failed", T1, A1)
    tx.send(join(f))
    s.wait_message(T_FAIL, f[2])
    mark = s.mark()
    tx.send(join(f))                                           # same datagram again
    g = fields("aborted", T2, A2, execution_id=f[9])          # same execution ID, other type
    tx.send(join(g))
    # success then failure with one execution ID: the failure is a duplicate
    x = str(uuid.uuid4())
    tx.send(join(fields("success-shipped", T1, A1, execution_id=x)))
    tx.send(join(fields("failed", T1, A1, execution_id=x)))
    # a malformed event releases its key: the corrected one is processed
    y = str(uuid.uuid4())
    bad = fields("failed", "bad-guid", A1, execution_id=y)
    tx.send(join(bad))
    good = fields("failed", T3, A3, execution_id=y)
    tx.send(join(good))
    s.wait_message(T_FAIL, good[2], start=mark)
    time.sleep(SETTLE)
    got = [(m.topic, m.payload) for m in s.since(mark) if m.topic in (T_FAIL, T_ABORT)]
    assert got == [(T_FAIL, good[2].encode())], s.dump()
    alive(d)


def test_task_deduplication_disabled(taskd):
    d, s = taskd({"Butler": {"udpServerConfig": {"deduplication": {"enable": False}}}})
    f = fields("failed", T1, A1)
    d.task_tx.send(join(f))
    d.task_tx.send(join(f))
    s.wait_count(T_FAIL, 2)
    s.wait_count(T_FAIL_FULL, 2)


def test_task_oversize_dropped_and_fields_cut(taskd):
    d, s = taskd({"Butler": {"udpServerConfig": {"maxMessageSize": 1000}}})

    def sized(n):
        f = fields("failed", T1, A1, message="")
        f[10] = "m" * (n - len(join(f)))
        assert len(join(f)) == n
        return f
    big, exact = sized(1001), sized(1000)
    mark = s.mark()
    d.task_tx.send(join(big))
    d.task_tx.send(join(exact))
    s.wait_message(T_FAIL, exact[2], start=mark)
    full = s.wait_message(T_FAIL_FULL, start=mark)
    assert json.loads(full.payload)["logMessage"] == "m" * 500     # sanitising cuts to 500
    time.sleep(SETTLE)
    assert [m.payload for m in s.since(mark) if m.topic == T_FAIL] == [exact[2].encode()]
    # session socket: same limit
    d.sess_tx.send(start_ev("h", "ACME", "x" * 1000))
    d.sess_tx.send(start_ev("h", "ACME", "small"))
    wait_users(d, ["ACME/small"])
    time.sleep(SETTLE)
    assert users_now(d) == ["ACME/small"]


def test_source_allow_list(taskd):
    d, s = taskd({"Butler": {"udpServerConfig": {"enableSourceValidation": True,
                                                 "allowedSources": ["127.0.0.2"]}}})
    mark = s.mark()
    d.task_tx.send(join(fields("failed", T2, A2)))                    # from 127.0.0.1
    d.sess_tx.send(start_ev("h", "ACME", "denied"))
    ok_task, ok_sess = Sender(d.tport, source="127.0.0.2"), Sender(d.sport, source="127.0.0.2")
    try:
        f = fields("failed", T1, A1, name="allowed " + uuid.uuid4().hex)
        ok_task.send(join(f))
        ok_sess.send(start_ev("h", "ACME", "allowed"))
        s.wait_message(T_FAIL, f[2])
        s.wait_for(lambda ms: [m for m in ms if m.topic == T_FAIL_FULL and
                               f[2].encode() in m.payload], 5, "full message")
        wait_users(d, ["ACME/allowed"])
        time.sleep(SETTLE)
        got = [(m.topic, m.payload) for m in s.since(mark) if m.topic in EVENT_TOPICS]
        # the allowed session event and the allowed task event; nothing from 127.0.0.1
        assert ("qliksense/session/start", b"h: ACME/allowed") in got, s.dump()
        assert len(got) == 3 and all(b"denied" not in p and T2.encode() not in p
                                     for _, p in got), s.dump()
        assert users_now(d) == ["ACME/allowed"]
    finally:
        ok_task.close()
        ok_sess.close()
    alive(d)


def test_source_validation_with_empty_list_is_off(taskd):
    d, s = taskd({"Butler": {"udpServerConfig": {"enableSourceValidation": True,
                                                 "allowedSources": []}}})
    d.sess_tx.send(start_ev("h", "ACME", "anyone"))
    wait_users(d, ["ACME/anyone"])
    marker(d, s)


def avoid_minute_boundary():
    """The UDP rate windows are 60 s: keep the test inside one whole minute
    whichever way the windows are aligned."""
    left = 60 - time.time() % 60
    if left < 8:
        time.sleep(left + 0.2)


def test_rate_limit_per_socket(taskd):
    d, s = taskd({"Butler": {"udpServerConfig": {"rateLimit": {"enable": True,
                                                               "maxMessagesPerMinute": 3}}}})
    avoid_minute_boundary()
    for u in ("r1", "r2", "r3"):
        d.sess_tx.send(start_ev("h", "ACME", u))
    wait_users(d, ["ACME/r1", "ACME/r2", "ACME/r3"])
    s.wait_last(T_COUNT, "3")   # published after the three session messages
    mark = s.mark()
    d.sess_tx.send(start_ev("h", "ACME", "r4"))
    d.sess_tx.send(start_ev("h", "ACME", "r5"))
    # the task socket has its own budget: its marker still gets through
    name = marker(d, s)
    only_marker(s, mark, name)
    assert users_now(d) == ["ACME/r1", "ACME/r2", "ACME/r3"]
    # task socket: 1 used by the marker, 2 more, then dropped
    f2, f3 = fields("failed", T2, A2), fields("failed", T3, A3)
    d.task_tx.send(join(f2))
    d.task_tx.send(join(f3))
    for f in (f2, f3):  # both messages of each, so none arrives after the mark
        s.wait_message(T_FAIL, f[2])
        s.wait_for(lambda ms, f=f: [m for m in ms if m.topic == T_FAIL_FULL and
                                    f[2].encode() in m.payload], 5, "full message")
    mark = s.mark()
    d.task_tx.send(join(fields("failed", T1, A1)))
    time.sleep(1.5)
    assert [m for m in s.since(mark) if m.topic in EVENT_TOPICS] == []
    alive(d)


# ------------------------------------------------------------------ counters (butlerd -S)


def stats(d):
    """The running instance's counters, as `butlerd -S` prints them."""
    out = subprocess.run([harness.binary(), "-S", "-c", d.config_path], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_stats(d, pick, expected, timeout=5.0):
    end = time.monotonic() + timeout
    while True:
        got = pick(stats(d))
        if got == expected or time.monotonic() > end:
            return got
        time.sleep(0.05)


def test_drops_are_counted(taskd):
    d, s = taskd({"Butler": {"udpServerConfig": {"maxMessageSize": 1000,
                                                 "enableSourceValidation": True,
                                                 "allowedSources": ["127.0.0.1"]}}})
    f = fields("failed", T1, A1)
    d.task_tx.send(join(f))                                    # accepted
    d.task_tx.send(join(f))                                    # duplicate execution ID
    d.task_tx.send(b"/scheduler-task-failed/;" + b"x" * 1000)  # oversize
    d.task_tx.send(b"/scheduler-task-failed/;h;only;four")     # too few fields
    d.task_tx.send(b"/no-such-type/;h;x")                      # unknown type
    other = Sender(d.tport, source="127.0.0.2")                # not an allowed source
    try:
        other.send(join(fields("failed", T1, A1)))
    finally:
        other.close()
    want = {"received": 6, "accepted": 1, "malformed": 2, "duplicates": 1, "droppedSource": 1,
            "droppedSize": 1, "droppedRate": 0, "droppedQueue": 0}
    assert wait_stats(d, lambda st: st["udp"]["taskEvents"], want) == want
    s.wait_message(T_FAIL_FULL)
    got = wait_stats(d, lambda st: st["events"]["taskEventsHandled"], 1)
    assert got == 1
    assert stats(d)["mqtt"]["connects"] == 1


def test_rate_drops_are_counted(start_daemon):
    d = udp_daemon(start_daemon, overrides={"Butler": {"udpServerConfig": {
        "rateLimit": {"enable": True, "maxMessagesPerMinute": 2}}}}, workers=1)
    avoid_minute_boundary()
    for u in ("a", "b", "c", "d"):
        d.sess_tx.send(start_ev("h", "ACME", u))
    want = {"received": 4, "accepted": 2, "malformed": 0, "duplicates": 0, "droppedSource": 0,
            "droppedSize": 0, "droppedRate": 2, "droppedQueue": 0}
    assert wait_stats(d, lambda st: st["udp"]["sessionEvents"], want) == want
    assert users_now(d) == ["ACME/a", "ACME/b"]


def test_stats_without_a_running_instance(tmp_path):
    conf = tmp_path / "b.conf"
    conf.write_text(harness.config_text(harness.free_port(), str(tmp_path)))
    out = subprocess.run([harness.binary(), "-S", "-c", str(conf)], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode != 0 and "no running butlerd" in out.stderr


def test_aggregates_republished_after_reconnect(start_daemon, broker, subs):
    s = subs("qliksense/#")
    d = udp_daemon(start_daemon, broker)
    d.sess_tx.send(start_ev("sense1", "ACME", "anna"))
    s.wait_last(T_COUNT, "1")
    broker.stop()
    d.sess_tx.send(start_ev("sense1", "ACME", "bob"))   # while the broker is away
    wait_users(d, ["ACME/anna", "ACME/bob"])
    broker.restart()
    # A new subscriber, connected at once: the first one waits at least a second
    # before it reconnects, as butlerd does (its backoff has grown while the broker
    # was away), so it could miss the republication this test is about.
    s2 = subs("qliksense/#")
    # butlerd reconnects by itself and publishes the current aggregates
    s2.wait_for(lambda ms: [m for m in ms if m.topic == T_COUNT and m.payload == b"2"],
                15, "count after reconnect")
    s2.wait_last(T_USERS, '["ACME/anna","ACME/bob"]')
    s2.wait_last(per_server("sense1"), "2")


def test_stats_of_a_dead_instance(start_daemon):
    import signal as sg
    d = udp_daemon(start_daemon, workers=1)
    assert stats(d)["udp"]["taskEvents"]["received"] == 0
    os.kill(d.pid, sg.SIGKILL)           # the segment stays behind
    d.wait_exit(5)
    out = subprocess.run([harness.binary(), "-S", "-c", d.config_path], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode != 0 and "which is gone" in out.stderr, out.stderr


# ------------------------------------------------------------------ hostile input


def random_datagram(rng):
    kind = rng.randrange(6)
    if kind == 0:                                   # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
    if kind == 1:                                   # many fields, control chars, bad UTF-8
        parts = [bytes(rng.choice(b"ab;\x00\x1f\x7f\xff\xc3\xe2\x82") for _ in
                       range(rng.randrange(0, 20))) for _ in range(rng.randrange(1, 30))]
        return b";".join(parts)
    if kind == 2:                                   # a scheduler type with junk fields
        f = ["/scheduler-task-failed/"] + ["x" * rng.randrange(0, 900) for _ in range(10)]
        f[5] = rng.choice(["", "not-a-guid", T1.upper(), T1 + "0"])
        return ";".join(f).encode()
    if kind == 3:                                   # a proxy type with junk
        f = ["/PROXY-SESSION/", "h" * rng.randrange(0, 600), rng.choice(
            ["Start session", "stop SESSION", "Open connection", "", "x"]),
             "d" * rng.randrange(0, 400), "u" * rng.randrange(0, 400)]
        f += ["o"] * rng.randrange(0, 5)
        return ";".join(f).encode()
    if kind == 4:                                   # empty and separators only
        return b";" * rng.randrange(0, 40)
    return b"/scheduler-task-success//" + b";" * 10 + bytes([rng.randrange(256)]) * 50


def test_random_datagrams_never_hurt(start_daemon):
    import random
    rng = random.Random(20261123)   # fixed seed: a failure can be replayed
    d = udp_daemon(start_daemon, workers=1,
                   overrides={"butlerd": {"shm": {"maxActiveUsers": 50}}})
    n = 3000
    for i in range(n):
        dg = random_datagram(rng)
        (d.task_tx if i % 2 else d.sess_tx).send(dg)
        if i % 200 == 0:
            time.sleep(0.01)       # stay within the receive buffers
    want = n // 2

    def settled(st):
        return (st["udp"]["taskEvents"]["received"], st["udp"]["sessionEvents"]["received"])
    assert wait_stats(d, settled, (want, n - want), timeout=15) == (want, n - want)
    st = stats(d)
    for sock in ("taskEvents", "sessionEvents"):
        c = st["udp"][sock]
        parts = sum(v for k, v in c.items() if k != "received")
        assert parts == c["received"], (sock, c)
    alive(d)
    # the active-user list is still well-formed JSON of valid UTF-8 strings
    r = d.get("/v4/activeusers")
    assert r.status == 200
    users = json.loads(r.body.decode("utf-8"))
    assert isinstance(users, list) and len(users) <= 50
    assert d.get("/v2/activeUserCount").body == str(len(users)).encode()


def test_session_event_without_user_is_counted_malformed(start_daemon):
    """An empty user ID is logged and ignored, and counted as malformed (butlerd(8))."""
    d = udp_daemon(start_daemon, workers=1)
    d.sess_tx.send(join(session_fields("start", "h1", "ACME", "")))
    d.sess_tx.send(start_ev("h1", "ACME", "ok"))
    want = {"received": 2, "accepted": 1, "malformed": 1, "duplicates": 0, "droppedSource": 0,
            "droppedSize": 0, "droppedRate": 0, "droppedQueue": 0}
    assert wait_stats(d, lambda st: st["udp"]["sessionEvents"], want) == want
    assert users_now(d) == ["ACME/ok"]
