"""What butlerd accepts from QRS and how much it asks of it (issue 11, defects 6
and 8; doc/butlerd.8 "Start task" and "QRS connection", butlerd.conf(5)
butlerd.qrs.maxReplyBytes and butlerd.startTask.maxItems).

* A QRS reply larger than butlerd.qrs.maxReplyBytes ends the call: the client
  gets a 502 naming the limit, the worker's memory stays far below the reply
  size (VmHWM of /proc/<pid>/status), and the worker keeps serving.
* Task IDs, tags and custom properties are looked up in batches, one QRS call
  for many values, so a request with a thousand tags makes a handful of calls;
  the lists are the same as with one call per value. A body with more items
  than butlerd.startTask.maxItems is refused with a 400.
* A task ID from QRS that is not a GUID is never put into a URL: it is logged
  and reported under tasksFailed, and no request goes to any other path."""

import json
import re

import pytest

import harness
from harness import Raw, jdump, err, validation
from taskfix import (certs, sim, butler, start, check_json, result, item_id, item_tag,  # noqa: F401
                       item_cp, item_kv, kv_get, split_terms, started, once, NAMES,
                       T1, T2, T3, T4, T5, TOB, TFN, MISSING)

MiB = 1 << 20
DEFAULT_MAX_REPLY = 64 * MiB
HUGE = 300 * MiB
EVIL = "x/../../../about?a="
BAD_ID_MSG = "QRS returned a task ID that is not a GUID; not started"


def too_large(limit):
    return "QRS request failed: reply larger than butlerd.qrs.maxReplyBytes (%d bytes)" % limit



def gets(sim, path):
    return [r for r in sim.requests if r.method == "GET" and r.path == path]


# ================================================================== defect 6: reply size


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_huge_apps_reply_is_502_and_memory_stays_bounded(sim, butler, chunked):
    """A 300 MB /qrs/app reply with the default limit (64 MiB): 502, a log line, the
    worker's peak RSS far below the reply, the same worker answers afterwards."""
    d = butler(workers=1)
    pids = d.wait_workers(1)
    b = sim.set_behaviour(r"^/qrs/app$", stream_bytes=HUGE, chunked=chunked)
    mark = d.mark()
    r = d.request("GET", "/v4/apps/list", timeout=120)
    harness.check_reply(r, 502, err(502, too_large(DEFAULT_MAX_REPLY)))
    assert b.applied == 1
    d.wait_log(re.compile(r"QRS GET /qrs/app failed: reply larger than "
                          r"butlerd\.qrs\.maxReplyBytes"), 5, start=mark)
    peak = harness.peak_rss(d.worker_pids())
    # the body is capped at 64 MiB and never parsed; before the fix a 300 MB reply
    # took a worker past 2 GB
    print("peak worker RSS with a %d MiB reply: %.1f MiB" % (HUGE // MiB, peak / MiB))
    assert peak < DEFAULT_MAX_REPLY + 96 * MiB, peak
    sim.clear_behaviour(b)
    r = d.get("/v4/apps/list")
    assert r.status == 200 and len(json.loads(r.body)) == 5, r
    assert d.worker_pids() == pids


def test_large_apps_reply_under_the_limit_is_read_element_by_element(sim, butler):
    """A 24 MiB apps list (about 130000 apps) under the default limit: 200 with every
    app, and the worker's peak RSS about the reply plus the answer, not a parse tree
    per app (before: about 16 times the reply)."""
    d = butler(workers=1)
    sim.set_behaviour(r"^/qrs/app$", stream_bytes=24 * MiB)
    r = d.request("GET", "/v4/apps/list", timeout=120)
    assert r.status == 200, r
    apps = json.loads(r.body)
    assert len(apps) > 100000 and apps[0] == apps[-1] == {
        "id": "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c01", "name": "A huge reply"}, len(apps)
    peak = harness.peak_rss(d.worker_pids())
    print("peak worker RSS with a 24 MiB apps list: %.1f MiB" % (peak / MiB))
    assert peak < 24 * MiB + 64 * MiB, peak


def test_reply_limit_is_configurable_and_applies_to_every_qrs_call(sim, butler):
    """With maxReplyBytes = 1 MiB: start-task lookups and existence checks, and the
    /v2 start, answer 502 and start nothing; KV items before the lookup are kept;
    replies under the limit work as before."""
    d = butler(workers=1, more={"butlerd": {"qrs": {"maxReplyBytes": MiB}}})
    b = sim.set_behaviour(r"^/qrs/task/full$", stream_bytes=HUGE, chunked=True)
    r = start(d, "-", [item_kv("big", "k", "v"), item_tag("startTask1"), item_id(T1)],
              timeout=60)
    harness.check_reply(r, 502, err(502, too_large(MiB)))
    assert sim.starts() == []
    harness.check_reply(kv_get(d, "big", "k"), 200,
                        b'{"namespace":"big","key":"k","value":"v"}')
    sim.clear_behaviour(b)
    b = sim.set_behaviour(r"^/qrs/task$", stream_bytes=2 * MiB)
    harness.check_reply(start(d, T1, [], timeout=60), 502, err(502, too_large(MiB)))
    r = d.request("GET", "/v2/senseStartTask?taskId=" + T1, timeout=60)
    harness.check_reply(r, 502, err(502, too_large(MiB)))
    assert sim.starts() == []
    sim.clear_behaviour(b)
    check_json(start(d, T1, [item_tag("startTask1")]), result(started=[T1], tag=[T2, T3]))


def test_limits_have_bounds_in_config(tmp_path):
    for key, bad in (("qrs", {"maxReplyBytes": 4095}), ("qrs", {"maxReplyBytes": 1073741825}),
                     ("startTask", {"maxItems": 0})):
        path = tmp_path / "b.conf"
        harness.write_file(path, harness.config_text(harness.free_port(), str(tmp_path),
                                                     {"butlerd": {key: bad}}))
        p = harness.run_cli(["-t", "-c", str(path)])
        name = "butlerd.%s.%s" % (key, list(bad)[0])
        assert p.returncode != 0 and name in p.stderr + p.stdout, (p.stdout, p.stderr)


# ================================================================== defect 8: amplification


def fake_tags(n):
    return ["tag %04d" % i for i in range(n)]


def test_many_tags_make_few_qrs_calls(sim, butler):
    """1000 tag items, three of them real: a handful of lookups (not 1000), one start
    per task, the lists as if each tag had been looked up alone."""
    d = butler()
    tags = fake_tags(1000)
    tags[10], tags[500], tags[999] = "startTask2", "startTask1", "STARTTASK2"
    r = start(d, "-", [item_tag(t) for t in tags], timeout=60)
    check_json(r, result(tag=[T5, T2, T3, T5]))
    calls = gets(sim, "/qrs/task/full")
    assert 1 < len(calls) <= 20, len(calls)
    # every tag was asked for exactly once; every URL stays short
    assert sorted(t for c in calls for t in split_terms(c.filter)) == sorted(
        "tags.name eq '%s'" % t for t in tags)
    assert all(len(c.query) < 4200 for c in calls), max(len(c.query) for c in calls)
    assert started(sim) == once(T5, T2, T3)
    assert len(sim.requests) == len(calls) + 3


def test_many_ids_and_custom_properties_make_few_qrs_calls(sim, butler):
    d = butler()
    ids = ["%08x-0000-4000-8000-%012x" % (0x7a000000 + i, i) for i in range(600)]
    ids[3], ids[300] = T1, T4.upper()
    cps = [("taskGroup", "g%03d" % i) for i in range(300)]
    cps[7] = ("taskGroup", "tasks2")
    cps[299] = ("region", "north")
    body = [item_id(t) for t in ids] + [item_cp(n, v) for n, v in cps]
    r = start(d, MISSING, body, timeout=60)
    invalid = [MISSING] + [t for t in ids if t not in (T1, T4.upper())]
    check_json(r, result(started=[T1, T4], invalid=invalid, cp=[T3, T4, TFN]))
    assert 1 < len(gets(sim, "/qrs/task")) <= 12, len(gets(sim, "/qrs/task"))
    assert 1 < len(gets(sim, "/qrs/task/full")) <= 12, len(gets(sim, "/qrs/task/full"))
    assert started(sim) == once(T1, T4, T3, TFN)


def test_batched_lookup_same_lists_as_one_by_one(sim, butler):
    """Case-insensitive matches, a tag asked twice, a task carrying two of the tags,
    custom properties matched on any element, all in request order; a non-ASCII tag
    that QRS matches case-insensitively makes butlerd ask again one tag at a time."""
    d = butler()
    base = sim.find_task(T2)
    t_uml = "6f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f"
    NAMES[t_uml] = "Reload of \u00c4rger"
    sim.tasks.append(dict(base, id=t_uml, name=NAMES[t_uml],
                          tags=[{"id": "6e0c9d7f-0000-4000-8000-00000000bbbb",
                                 "name": "\u00c4rger"}]))
    body = [item_tag("startTask1"), item_tag("O'BRIEN"), item_tag("startTask1"),
            item_cp("TASKGROUP", "Tasks2"), item_cp("region", "north")]
    check_json(start(d, "-", body), result(tag=[T2, T3, TOB, T2, T3], cp=[T3, T4, TFN]))
    assert len(gets(sim, "/qrs/task/full")) == 2          # one per kind
    sim.clear()
    check_json(start(d, "-", [item_tag("startTask2"), item_tag("\u00e4rger")]),
               result(tag=[T5, t_uml]))
    assert [r.filter for r in gets(sim, "/qrs/task/full")] == [
        "tags.name eq 'startTask2' or tags.name eq '\u00e4rger'",
        "tags.name eq 'startTask2'", "tags.name eq '\u00e4rger'"]


def test_more_items_than_max_items_is_400(sim, butler):
    d = butler()
    r = start(d, "-", [item_tag(t) for t in fake_tags(1001)])
    harness.check_reply(r, 400, validation("body must NOT have more than 1000 items"))
    assert sim.requests == []
    d = butler(more={"butlerd": {"startTask": {"maxItems": 3}}})
    harness.check_reply(start(d, "-", [item_kv("n", "k", "v")] * 4), 400,
                        validation("body must NOT have more than 3 items"))
    harness.check_reply(kv_get(d, "n", "k"), 400, err(400, "Namespace not found: n"))
    check_json(start(d, T1, [item_kv("n", "k", "v")] * 3), result(started=[T1]))


def test_2000_tags_with_a_higher_max_items(sim, butler):
    """The case of the issue: 2000 tag items made 2001 QRS calls."""
    d = butler(more={"butlerd": {"startTask": {"maxItems": 5000}}})
    tags = fake_tags(2000)
    tags[1234] = "startTask2"
    check_json(start(d, "-", [item_tag(t) for t in tags], timeout=60), result(tag=[T5]))
    n = len(sim.requests)
    assert n <= 30, n
    print("2000 tags: %d QRS calls" % n)


# ================================================================== defect 8: IDs from QRS


def test_malformed_task_id_from_tag_lookup_never_reaches_a_url(sim, butler):
    d = butler()
    sim.set_behaviour(r"^/qrs/task/full$", status=200, method="GET",
                      body=[{"id": EVIL, "name": "Evil"}, {"id": T2, "name": NAMES[T2]},
                            {"id": "not-a-guid", "name": "Other"}])
    mark = d.mark()
    r = start(d, "-", [item_tag("startTask1"), item_cp("taskGroup", "tasks2")])
    expected = result(tag=[T2], cp=[T2])
    expected["tasksFailed"] = [
        {"taskId": EVIL, "taskName": "Evil", "statusCode": 0, "message": BAD_ID_MSG},
        {"taskId": "not-a-guid", "taskName": "Other", "statusCode": 0, "message": BAD_ID_MSG}]
    check_json(r, expected)
    assert {(q.method, q.path) for q in sim.requests} == {
        ("GET", "/qrs/task/full"), ("POST", "/qrs/task/%s/start" % T2)}
    assert sim.starts() == [T2]
    d.wait_log('QRS returned the task ID "%s", which is not a GUID' % EVIL, 5, start=mark)


def test_malformed_task_id_from_existence_check(sim, butler):
    d = butler()
    sim.set_behaviour(r"^/qrs/task$", status=200, method="GET",
                      body=[{"id": EVIL, "name": "Evil"}])
    r = start(d, T1, [item_id(T2)])
    expected = result(invalid=[T1, T2])
    expected["tasksFailed"] = [
        {"taskId": EVIL, "taskName": "Evil", "statusCode": 0, "message": BAD_ID_MSG}]
    check_json(r, expected)
    assert {(q.method, q.path) for q in sim.requests} == {("GET", "/qrs/task")}


def test_events_process_checks_task_ids_and_items_too(start_daemon, sim, certs):
    """A start-task body on the MQTT start topic runs in the events process: the
    same GUID check on task IDs from QRS, the same bound on items."""
    from test_mqtt import (START_TOPIC, Broker, Subscriber, mqtt_daemon, qrs_overrides,
                           wait_starts)
    import collections
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(tmp + "/broker").start()
        pub = None
        try:
            d = mqtt_daemon(start_daemon, broker, qrs_overrides(sim, certs))
            pub = Subscriber(broker, "test/unused/#", qos=0)
            sim.set_behaviour(r"^/qrs/task/full$", status=200, method="GET",
                              body=[{"id": EVIL, "name": "Evil"}, {"id": T2, "name": NAMES[T2]}])
            mark = d.mark()
            pub.publish(START_TOPIC, jdump([item_tag("startTask1")]))
            wait_starts(sim, collections.Counter([T2]))
            d.wait_log('QRS returned the task ID "%s", which is not a GUID' % EVIL, 5, start=mark)
            pub.publish(START_TOPIC, jdump([item_tag(t) for t in fake_tags(1001)]))
            d.wait_log("MQTT start task: invalid message: body must NOT have more than 1000 items",
                       5, start=mark)
            assert {(q.method, q.path) for q in sim.requests} == {
                ("GET", "/qrs/task/full"), ("POST", "/qrs/task/%s/start" % T2)}
            assert len(gets(sim, "/qrs/task/full")) == 1
            assert sim.starts() == [T2]
        finally:
            if pub:
                pub.close()
            broker.stop()
