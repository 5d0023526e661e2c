"""Start task through /v2/senseStartTask, the apps list (/v4/apps/list,
/v4/senselistapps, /v2/senseListApps) and the enable flags of these routes."""

from harness import JSON_CT
from taskfix import (  # noqa: F401
    APPS,
    FAILED_APPS,
    FILTER_34,
    MISSING,
    NAMES,
    SEED_V2,
    T1,
    T2,
    T3,
    T5,
    check_bytes,
    check_json,
    check_recorded,
    err,
    id_checks,
    id_filter,
    jdump,
    result,
    start,
    timed,
    validation)
from taskfix import butler, certs, sim  # noqa: F401 (pytest fixtures)


# ================================================================== /v2/senseStartTask


def test_v2_start_task_seed_example(sim, butler):
    d = butler()
    rec = dict(sim.find_task(T1), id=SEED_V2, name=NAMES[SEED_V2])
    sim.tasks.append(rec)
    r = d.get("/v2/senseStartTask?taskId=" + SEED_V2)
    check_bytes(r, 200, b'{"taskId":"abcd1234-5678-abcd-1234-abcd1234abcd"}')
    check_recorded(sim)
    assert id_checks(sim) == [id_filter(SEED_V2)]
    assert sim.starts(accepted_only=True) == [SEED_V2]
    # the same ID is not a strict task ID: /v4 reports it invalid without asking QRS
    sim.clear()
    check_json(start(d, SEED_V2, []), result(invalid=[SEED_V2]))
    assert sim.requests == []


def test_v2_start_task_upper_case_and_path_case(sim, butler):
    d = butler()
    r = d.get("/V2/SENSESTARTTASK?taskId=" + T1.upper())
    check_bytes(r, 200, jdump({"taskId": T1}))
    check_recorded(sim)
    assert id_checks(sim) == [id_filter(T1)]
    assert sim.starts() == [T1]


def test_v2_start_task_errors(sim, butler):
    d = butler()
    check_bytes(d.get("/v2/senseStartTask"), 400,
                validation("querystring must have required property 'taskId'"))
    check_bytes(d.get("/v2/senseStartTask?taskid=" + T1), 400,
                validation("querystring must have required property 'taskId'"))
    check_bytes(d.get("/v2/senseStartTask?taskId=abc123"), 400, err(400, "Invalid task ID: abc123"))
    check_bytes(d.get("/v2/senseStartTask?taskId="), 400, err(400, "Invalid task ID: "))
    check_bytes(d.get("/v2/senseStartTask?taskId=ABC-123"), 400, err(400, "Invalid task ID: ABC-123"))
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T1 + "x"), 400,
                err(400, "Invalid task ID: %sx" % T1))
    assert sim.requests == []
    check_bytes(d.get("/v2/senseStartTask?taskId=" + MISSING), 404,
                err(404, "Task not found: " + MISSING))
    check_bytes(d.get("/v2/senseStartTask?taskId=" + MISSING.upper()), 404,
                err(404, "Task not found: " + MISSING))
    check_recorded(sim)
    assert sim.starts() == []


def test_v2_start_task_head_performs_the_action(sim, butler):
    """Spec 1.3: HEAD runs the GET handler in full; headers of the GET answer, no body."""
    d = butler()
    with d.raw() as c:
        c.send("HEAD /v2/senseStartTask?taskId=%s HTTP/1.1\r\nHost: x\r\n\r\n" % T1)
        r = c.read_response(head=True)
        assert r.status == 200, r
        assert r.header("Content-Length") == str(len(jdump({"taskId": T1}))), r
        assert r.header("Content-Type") == JSON_CT, r
        assert c.quiet(0.3), "HEAD answer had a body"
    assert sim.starts() == [T1]


def test_v2_start_task_filter(sim, butler):
    d = butler(filter=FILTER_34)
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T5), 403,
                err(403, "Task ID %s is not allowed by the start task filter" % T5))
    # tags are not looked at: T3 carries the allowed tag startTask1
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T3), 403,
                err(403, "Task ID %s is not allowed by the start task filter" % T3))
    assert sim.requests == []
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T2.upper()), 200, jdump({"taskId": T2}))
    check_bytes(d.get("/v2/senseStartTask?taskId=abc"), 400, err(400, "Invalid task ID: abc"))
    check_recorded(sim)
    assert sim.starts() == [T2]


def test_v2_start_task_qrs_status_errors(sim, butler):
    d = butler()
    b = sim.set_behaviour(r"^/qrs/task/[^/]+/start$", status=500, body="Internal error")
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T1), 502,
                err(502, "QRS responded with HTTP 500"))
    sim.clear_behaviour(b)
    sim.set_behaviour(r"^/qrs/task$", status=503, method="GET")
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T1), 502,
                err(502, "QRS responded with HTTP 503"))
    assert sim.starts() == [T1]


def test_v2_start_task_slow_start(sim, butler):
    d = butler(short=True)
    sim.set_behaviour(r"^/qrs/task/[^/]+/start$", hang=True)
    r, dt = timed(d.get, "/v2/senseStartTask?taskId=" + T1)
    check_bytes(r, 502, err(502, "QRS request failed: timeout"))
    assert dt < 4.0, dt


# ================================================================== apps list


APPS_BODY = jdump([{"id": i, "name": n} for i, n in APPS])


def test_apps_list_all_paths(sim, butler):
    d = butler()
    for path in ("/v4/apps/list", "/v4/senselistapps", "/v2/senseListApps", "/V2/senselistapps"):
        check_bytes(d.get(path), 200, APPS_BODY)
    reqs = check_recorded(sim)
    assert [(q.method, q.path) for q in reqs] == [("GET", "/qrs/app")] * 4
    assert sim.starts() == []


def test_apps_list_keeps_qrs_order_and_text(sim, butler):
    d = butler()
    sim.apps.reverse()
    sim.apps.append(dict(sim.apps[0], id="3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c06",
                         name='Säljrapport "Nord" / O\'Brien \\ 2'))
    expected = [{"id": i, "name": n} for i, n in reversed(APPS)]
    expected.append({"id": "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c06",
                     "name": 'Säljrapport "Nord" / O\'Brien \\ 2'})
    check_bytes(d.get("/v4/apps/list"), 200, jdump(expected))


def test_apps_list_qrs_error(sim, butler):
    d = butler()
    sim.set_behaviour(r"^/qrs/app$", status=500, body="Internal error")
    for path in ("/v4/apps/list", "/v4/senselistapps", "/v2/senseListApps"):
        check_bytes(d.get(path), 500, FAILED_APPS)


# ================================================================== enable flags


def test_routes_disabled(sim, butler):
    d = butler(endpoints={"senseStartTask": False, "senseListApps": False})
    check_bytes(start(d, T1, []), 404,
                err(404, "Route PUT:/v4/reloadtask/%s/start not found" % T1))
    check_bytes(start(d, "-", [], method="POST"), 404,
                err(404, "Route POST:/v4/reloadtask/-/start not found"))
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T1), 404,
                err(404, "Route GET:/v2/senseStartTask?taskId=%s not found" % T1))
    check_bytes(d.get("/v4/apps/list"), 404, err(404, "Route GET:/v4/apps/list not found"))
    check_bytes(d.get("/v2/senseListApps"), 404, err(404, "Route GET:/v2/senseListApps not found"))
    assert sim.requests == []


def test_v2_routes_need_v2_api_enable(sim, butler):
    d = butler(more={"butlerd": {"v2Api": {"enable": False}}})
    check_bytes(d.get("/v2/senseStartTask?taskId=" + T1), 404,
                err(404, "Route GET:/v2/senseStartTask?taskId=%s not found" % T1))
    check_bytes(d.get("/v2/senseListApps"), 404, err(404, "Route GET:/v2/senseListApps not found"))
    check_json(start(d, T1, []), result(started=[T1]))
    assert sim.starts() == [T1]
