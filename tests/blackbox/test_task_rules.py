"""Start task: task IDs, the start-task filter and allTaskIdsMustExist, key-value
items, and every way QRS can fail (refused, slow, hung, TLS, bad answers)."""

import json
import re
import threading

from harness import PING_TEXT
from taskfix import (  # noqa: F401
    FAILED_APPS,
    FAILED_STARTING,
    FILTER_34,
    MISSING,
    SEED_V2,
    T1,
    T2,
    T3,
    T4,
    T5,
    TFN,
    TIMEOUT_MS,
    TLS_REASON,
    check_bytes,
    check_error_regex,
    check_json,
    check_recorded,
    cp_filter,
    err,
    id_checks,
    id_filter,
    item_cp,
    item_id,
    item_kv,
    item_tag,
    jdump,
    kv_get,
    once,
    result,
    start,
    started,
    tag_cp_lookups,
    tag_filter,
    timed)
from taskfix import butler, certs, sim  # noqa: F401 (pytest fixtures)


# ================================================================== IDs, filter, allTaskIdsMustExist


def test_upper_case_guids_normalised(sim, butler):
    d = butler()
    r = start(d, T1.upper(), [item_id(T2.upper()), item_id("FB0F317D-da91-4b86-AAFA-0174ae1e8c8f"),
                              item_id(MISSING.upper()), item_id("ABC-XYZ")])
    check_json(r, result(started=[T1, T2, T3], invalid=[MISSING, "ABC-XYZ"]))
    check_recorded(sim)
    assert id_checks(sim) == sorted(id_filter(t) for t in (T1, T2, T3, MISSING))
    assert started(sim) == once(T1, T2, T3)


def test_duplicate_ids_listed_twice_started_once(sim, butler):
    d = butler()
    r = start(d, T1, [item_id(T1.upper()), item_id(T1)])
    check_json(r, result(started=[T1, T1, T1]))
    check_recorded(sim)
    assert started(sim) == once(T1)


def test_strict_task_id_syntax(sim, butler):
    """Strict pattern (spec 1.11): third group [0-5]xxx, fourth group [089ab]xxx.
    A loose-only GUID, a braced one and one with spaces are invalid and never sent to QRS."""
    d = butler()
    bad = [SEED_V2, "{%s}" % T1, " %s" % T1, T1 + "0", T1.replace("-", ""),
           "e3b27f50-b1c0-6879-88fc-c7cdd9c1cf3e", "e3b27f50-b1c0-4879-c8fc-c7cdd9c1cf3e"]
    r = start(d, "-", [item_id(b) for b in bad])
    check_json(r, result(invalid=bad))
    assert sim.requests == []


def test_filter_off_starts_any_existing_task(sim, butler):
    d = butler()
    r = start(d, T5, [item_id(T3), item_tag("startTask2"), item_cp("taskGroup", "tasks1")])
    check_json(r, result(started=[T5, T3], tag=[T5], cp=[TFN]))
    check_recorded(sim)
    assert started(sim) == once(T5, T3, TFN)


def test_filter_on_each_list_checked_on_its_own(sim, butler):
    d = butler(filter=FILTER_34)
    body = [item_tag("startTask1"), item_tag("StartTask1"), item_cp("taskGroup", "tasks1"),
            item_cp("taskGroup", "tasks2"), item_cp("TaskGroup", "tasks1"),
            item_id(T3),             # carries the allowed tag startTask1, but its ID is not listed
            item_id(T2.upper()), item_id("not-a-guid")]
    r = start(d, "-", body)
    check_json(r, result(started=[T2], invalid=["not-a-guid"], denied=[T3], tag=[T2, T3],
                         tag_denied=["StartTask1"], cp=[TFN],
                         cp_denied=[("taskGroup", "tasks2"), ("TaskGroup", "tasks1")]))
    check_recorded(sim)
    assert tag_cp_lookups(sim) == sorted([tag_filter("startTask1"), cp_filter("taskGroup", "tasks1")])
    assert id_checks(sim) == [id_filter(T2)]          # denied T3 is not checked
    assert started(sim) == once(T2, T3, TFN)


def test_filter_allow_list_ids_are_lower_cased(sim, butler):
    d = butler(filter={"taskId": [T4.upper(), "not-a-task-id"], "tag": ["x"]})
    check_json(start(d, T4, []), result(started=[T4]))
    check_json(start(d, "-", [item_id("not-a-task-id"), item_id(T1)]),
               result(invalid=["not-a-task-id"], denied=[T1]))
    assert started(sim) == once(T4)


def test_all_task_ids_must_exist_without_invalid_ids(sim, butler):
    d = butler()
    r = start(d, T1, [item_id(T2), item_tag("startTask2")], query="?allTaskIdsMustExist=true")
    check_json(r, result(started=[T1, T2], tag=[T5]))
    assert started(sim) == once(T1, T2, T5)


def test_all_task_ids_must_exist_with_missing_id_keeps_tags(sim, butler):
    d = butler()
    r = start(d, T1, [item_id(MISSING), item_tag("startTask1"), item_id(T4),
                      item_cp("taskGroup", "tasks1")], query="?allTaskIdsMustExist=true")
    check_json(r, result(invalid=[MISSING], denied=[T1, T4], tag=[T2, T3], cp=[TFN]))
    check_recorded(sim)
    assert started(sim) == once(T2, T3, TFN)


def test_all_task_ids_must_exist_false_starts_valid_ids(sim, butler):
    d = butler()
    for q in ("?allTaskIdsMustExist=false", ""):
        sim.clear()
        r = start(d, T1, [item_id("bad"), item_id(MISSING)], query=q)
        check_json(r, result(started=[T1], invalid=["bad", MISSING]))
        assert started(sim) == once(T1)


def test_all_task_ids_must_exist_denied_after_filter_denials(sim, butler):
    d = butler(filter=FILTER_34)
    r = start(d, T1, [item_id(T5), item_id("bad"), item_id(T2)], query="?allTaskIdsMustExist=true")
    check_json(r, result(invalid=["bad"], denied=[T5, T1, T2]))
    assert sim.starts() == []


def test_task_id_in_url_and_body_with_tag_duplicates(sim, butler):
    """A task chosen by ID and by tag is in tasksId.started and in tasksTag, started once."""
    d = butler()
    check_json(start(d, T2, [item_tag("startTask1")]), result(started=[T2], tag=[T2, T3]))
    assert started(sim) == once(T2, T3)


# ================================================================== key-value items


def test_kv_items_coercion_and_skips(sim, butler):
    d = butler()
    body = [
        item_kv("kvi", "str", "text"),
        item_kv("kvi", "num", 5),
        item_kv("kvi", "bool", True),
        item_kv("kvi", "obj", {"a": [1, "x"]}),
        item_kv("kvi", "arr", [1, "x"]),
        item_kv("kvi", "ttlstr", "t", "3000"),
        item_kv("kvi", "ttlfrac", "t", 2500.9),
        item_kv("kvi", "ttlempty", "t", ""),
        item_kv("kvi", "ttlneg", "t", -5),
        item_kv("kvi", "ttlbad", "t", "abc"),
        # skipped: a value that is null, "", false or 0, or no value
        item_kv("kvi", "s1", ""), item_kv("kvi", "s2", 0), item_kv("kvi", "s3", False),
        item_kv("kvi", "s4", None), {"type": "keyvaluestore", "payload": {"namespace": "kvi",
                                                                          "key": "s5"}},
        item_kv("", "s6", "v"), item_kv("kvskip", "", "v"), item_kv(0, "s7", "v"),
        item_kv("kvi", "s8", "x" * 5000),            # over kvMaxValueBytes (4096): logged, skipped
        item_kv("kvi", 7, "seven"),                  # a number key is used as a string
        {"type": "keyvaluestore", "payload": {}},
        item_id(T1),
    ]
    check_json(start(d, "-", body), result(started=[T1]))
    for key, value in [("str", "text"), ("num", "5"), ("bool", "true"),
                       ("obj", '{"a":[1,"x"]}'), ("arr", '[1,"x"]'), ("ttlempty", "t"),
                       ("ttlneg", "t"), ("ttlbad", "t"), ("7", "seven")]:
        check_bytes(kv_get(d, "kvi", key), 200,
                    jdump({"namespace": "kvi", "key": key, "value": value}))
    for key, limit in [("ttlstr", 3000), ("ttlfrac", 2500)]:
        g = kv_get(d, "kvi", key)
        assert g.status == 200, g
        v = json.loads(g.body)
        assert v["value"] == "t" and 0 < v["ttl"] <= limit, (key, v)
    for key in ("s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"):
        check_bytes(kv_get(d, "kvi", key), 400,
                    err(400, "Key '%s' not found in namespace: kvi" % key))
    check_bytes(kv_get(d, "kvskip", "x"), 400, err(400, "Namespace not found: kvskip"))
    r = d.get("/v4/keyvaluesnamespaces")
    check_bytes(r, 200, b'["kvi"]')


def test_kv_items_skipped_when_kv_store_disabled(sim, butler):
    d = butler(endpoints={"keyValueStore": False})
    check_json(start(d, "-", [item_kv("off", "k", "v"), item_id(T1)]), result(started=[T1]))
    assert d.get("/v4/keyvalues/off?key=k").status == 404
    assert started(sim) == once(T1)


# ================================================================== QRS failures


def test_qrs_start_returns_500(sim, butler):
    d = butler()
    sim.set_behaviour(r"^/qrs/task/[^/]+/start$", status=500, body="Internal error", method="POST")
    r = start(d, T1, [item_id(T2), item_tag("startTask1"), item_cp("taskGroup", "tasks2")])
    check_json(r, result(failed=[(T1, 500), (T2, 500), (T3, 500), (T4, 500)]))
    check_recorded(sim)
    assert started(sim) == once(T1, T2, T3, T4)


def test_failed_task_left_out_of_every_list(sim, butler):
    d = butler()
    sim.set_behaviour(r"^/qrs/task/%s/start$" % T3, status=503, method="POST")
    r = start(d, "-", [item_id(T3), item_tag("startTask1"), item_cp("taskGroup", "tasks2")])
    check_json(r, result(tag=[T2], cp=[T4], failed=[(T3, 503)]))
    assert started(sim) == once(T2, T3, T4)


def test_qrs_start_dropped_without_answer(sim, butler):
    """The start request reaches QRS, which closes the connection without an answer:
    statusCode 0, `QRS request failed: <reason>`; the POST is sent once (spec 3.2 step 4),
    also when the existence check ran on the same keep-alive connection before."""
    d = butler(short=True)
    sim.set_behaviour(r"^/qrs/task/%s/start$" % T2, drop=True)
    r, dt = timed(start, d, T2, [item_id(T1)])
    assert r.status == 200, r
    got = json.loads(r.body)
    failed = got["tasksFailed"]
    assert len(failed) == 1 and failed[0]["statusCode"] == 0, got
    assert re.fullmatch(r"QRS request failed: .+", failed[0]["message"]), got
    check_json(r, result(started=[T1], failed=[(T2, 0, failed[0]["message"])]))
    assert dt < 4.0, dt
    assert started(sim) == once(T1, T2)


def test_qrs_existence_check_error_status_means_invalid(sim, butler):
    d = butler()
    sim.set_behaviour(r"^/qrs/task$", status=500, body="Internal error", method="GET")
    check_json(start(d, T1, [item_id(T2)]), result(invalid=[T1, T2]))
    assert sim.starts() == []


def test_qrs_lookup_error_status_or_non_array_means_no_tasks(sim, butler):
    d = butler()
    b = sim.set_behaviour(r"^/qrs/task/full$", status=500, body="Internal error", method="GET",
                          times=1)
    check_json(start(d, "-", [item_tag("startTask1")]), result())
    assert b.applied == 1
    sim.set_behaviour(r"^/qrs/task/full$", status=200, body={"id": T1, "name": "x"}, method="GET",
                      times=1)
    check_json(start(d, "-", [item_cp("taskGroup", "tasks2")]), result())
    check_json(start(d, "-", [item_tag("startTask1")]), result(tag=[T2, T3]))
    assert started(sim) == once(T2, T3)


def test_qrs_lookup_without_answer_is_500(sim, butler):
    d = butler(short=True)
    sim.set_behaviour(r"^/qrs/task/full$", drop=True)
    body = [item_kv("drop", "k", "v"), item_id(T1), item_tag("startTask1"), item_id(T2)]
    r, dt = timed(start, d, "-", body)
    check_bytes(r, 500, FAILED_STARTING)
    assert dt < 5.0, dt
    assert sim.starts() == []
    check_bytes(kv_get(d, "drop", "k"), 200, b'{"namespace":"drop","key":"k","value":"v"}')


def test_qrs_slow_start_times_out_workers_not_stuck(sim, butler):
    """A start that takes longer than butlerd.qrs.timeoutMs -> tasksFailed with
    statusCode 0 and `QRS request failed: timeout`. While it is in flight, pings on
    fresh connections and another start-task request are answered at once."""
    d = butler(short=True)
    sim.set_behaviour(r"^/qrs/task/%s/start$" % T2, delay=4.0)
    out = {}

    def slow():
        out["r"], out["dt"] = timed(start, d, "-", [item_id(T2)])

    th = threading.Thread(target=slow)
    th.start()
    try:
        sim.wait_for_requests(1, r"^/qrs/task/%s/start$" % T2, timeout=5)
        for _ in range(6):
            r, dt = timed(d.get, "/v4/butlerping")
            assert r.status == 200 and PING_TEXT in r.text, r
            assert dt < 0.5, dt
        r, dt = timed(start, d, T1, [])
        check_json(r, result(started=[T1]))
        assert dt < 1.0, dt
        assert th.is_alive()          # the slow one is still waiting
    finally:
        th.join(10)
    assert not th.is_alive()
    check_json(out["r"], result(failed=[(T2, 0, "QRS request failed: timeout")]))
    assert TIMEOUT_MS / 1000.0 - 0.2 <= out["dt"] < 3.5, out["dt"]
    assert sorted(sim.starts()) == sorted([T1, T2])


def test_qrs_hung_start_among_others(sim, butler):
    """Example 8, second paragraph: a start that gets no answer -> statusCode 0 timeout;
    the other starts of the same request are reported normally."""
    d = butler(short=True)
    sim.set_behaviour(r"^/qrs/task/%s/start$" % T3, hang=True)
    r, dt = timed(start, d, "-", [item_id(T1), item_tag("startTask1")])
    check_json(r, result(started=[T1], tag=[T2], failed=[(T3, 0, "QRS request failed: timeout")]))
    assert dt < 4.0, dt
    assert started(sim) == once(T1, T2, T3)


def test_qrs_slow_existence_check_and_lookup(sim, butler):
    d = butler(short=True)
    b = sim.set_behaviour(r"^/qrs/task$", hang=True)
    r, dt = timed(start, d, MISSING, [])
    check_json(r, result(invalid=[MISSING]))
    assert dt < 4.0, dt
    r, dt = timed(d.get, "/v2/senseStartTask?taskId=" + T1)
    check_bytes(r, 502, err(502, "QRS request failed: timeout"))
    assert dt < 4.0, dt
    sim.clear_behaviour(b)
    sim.set_behaviour(r"^/qrs/task/full$", delay=4.0)
    r, dt = timed(start, d, "-", [item_tag("startTask1")])
    check_bytes(r, 500, FAILED_STARTING)
    assert dt < 4.0, dt
    assert sim.starts() == []


def test_wrong_ca_for_server_verification(sim, butler):
    """clientCertCA is another CA and rejectUnauthorized = true: butlerd cannot verify the
    simulator, nothing reaches QRS."""
    d = butler(ca="other_root.pem", short=True)
    check_json(start(d, T1, []), result(invalid=[T1]))
    r = d.get("/v2/senseStartTask?taskId=" + T1)
    msg = check_error_regex(r, 502, r"QRS request failed: .+")
    assert TLS_REASON.search(msg), msg
    check_bytes(start(d, "-", [item_tag("startTask1")]), 500, FAILED_STARTING)
    check_bytes(d.get("/v4/apps/list"), 500, FAILED_APPS)
    assert sim.requests == []
    assert sim.starts() == []


def test_wrong_ca_ignored_without_reject_unauthorized(sim, butler):
    d = butler(ca="other_root.pem", reject=False)
    check_json(start(d, T1, []), result(started=[T1]))
    check_recorded(sim)


def test_client_certificate_from_other_ca_refused(sim, butler):
    d = butler(cert="other_client.pem", key="other_client_key.pem", short=True)
    check_json(start(d, T1, []), result(invalid=[T1]))
    r = d.get("/v2/senseStartTask?taskId=" + T1)
    msg = check_error_regex(r, 502, r"QRS request failed: .+")
    check_bytes(start(d, "-", [item_cp("taskGroup", "tasks2")]), 500, FAILED_STARTING)
    check_bytes(d.get("/v4/senselistapps"), 500, FAILED_APPS)
    assert sim.requests == []
    assert sim.tls_errors, "the simulator saw no failed handshake"
    # the simulator answered the handshake with a TLS alert (unknown CA): the reason
    # must say so, not look like a dropped connection
    assert TLS_REASON.search(msg), msg
