"""Start-task API against the Qlik Sense simulator (butlerd-api(7), START TASK):
the seed examples, tags and custom properties. test_task_rules.py has IDs, the
filter, key-value items and QRS failures; test_task_v2.py /v2/senseStartTask,
the apps list and the enable flags.

Besides butlerd's answers, the tests check what the simulator recorded: the
xrfkey (query == header, 16 x [A-Za-z0-9], new per request), X-Qlik-User,
Content-Type, the client certificate, the exact filter strings and their
encoding, the start bodies, and that every task was started exactly once."""

import collections
import json
import threading

import pytest
from taskfix import (  # noqa: F401
    FAILED_APPS,
    FAILED_STARTING,
    FILTER_34,
    MISSING,
    NAMES,
    T1,
    T2,
    T3,
    T4,
    T5,
    TEXT,
    TFN,
    TFR,
    TOB,
    TUS,
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
    timed,
    upper_hex,
    validation)
from taskfix import butler, certs, sim  # noqa: F401 (pytest fixtures)


# ================================================================== seed examples 1-4


def test_example1_start_one_task_by_id(sim, butler):
    d = butler()
    r = start(d, T1, b"[]", ctype="application/json; charset=utf-8")
    check_bytes(r, 200, b'{"tasksId":{"started":[{"taskId":"e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e",'
                b'"taskName":"Reload task of App1"}],"invalid":[],"denied":[]},"tasksTag":[],'
                b'"tasksTagDenied":[],"tasksCP":[],"tasksCPDenied":[],"tasksFailed":[]}')
    reqs = check_recorded(sim)
    assert [(q.method, q.path, q.filter) for q in reqs] == [
        ("GET", "/qrs/task", id_filter(T1)), ("POST", "/qrs/task/%s/start" % T1, None)]
    # spec 3.3 encoded example
    assert reqs[0].query == "filter=id%20eq%20e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e&xrfkey=" + \
        reqs[0].xrfkey
    assert sim.starts(accepted_only=True) == [T1]
    assert [s["taskId"] for s in sim.started_tasks] == [T1]


def test_example2_invalid_task_id_no_qrs_call(sim, butler):
    d = butler()
    r = start(d, "abc123", b"[]", ctype="application/json; charset=utf-8")
    check_bytes(r, 200, b'{"tasksId":{"started":[],"invalid":[{"taskId":"abc123"}],"denied":[]},'
                b'"tasksTag":[],"tasksTagDenied":[],"tasksCP":[],"tasksCPDenied":[],'
                b'"tasksFailed":[]}')
    assert sim.requests == []


def test_example3_two_ids_in_body_with_magic_dash(sim, butler):
    d = butler()
    body = (b'[{"type":"starttaskid","payload":{"taskId":"7552d9fc-d1bb-4975-9a38-18357de531ea"}},'
            b'{"type":"starttaskid","payload":{"taskId":"fb0f317d-da91-4b86-aafa-0174ae1e8c8f"}}]')
    r = start(d, "-", body, ctype="application/json; charset=utf-8")
    expected = json.loads("""{
      "tasksId": {
        "started": [
          {"taskId": "7552d9fc-d1bb-4975-9a38-18357de531ea", "taskName": "Reload task of App2"},
          {"taskId": "fb0f317d-da91-4b86-aafa-0174ae1e8c8f", "taskName": "Reload task of App3"}
        ],
        "invalid": [],
        "denied": []
      },
      "tasksTag": [],
      "tasksTagDenied": [],
      "tasksCP": [],
      "tasksCPDenied": [],
      "tasksFailed": []
    }""")
    check_json(r, expected)
    check_recorded(sim)
    assert id_checks(sim) == sorted([id_filter(T2), id_filter(T3)])
    assert tag_cp_lookups(sim) == []
    assert started(sim) == once(T2, T3)


def test_example4_filter_on_all_ids_must_exist(sim, butler):
    d = butler(filter=FILTER_34)
    body = (b'[{"type":"starttaskid","payload":{"taskId":"7552d9fc-d1bb-4975-9a38-18357de531ea"}},'
            b'{"type":"starttaskid","payload":{"taskId":"fb0f317d-da91-4b86-aafa-0174ae1e8c8"}}]')
    r = start(d, T1, body, query="?allTaskIdsMustExist=true",
              ctype="application/json; charset=utf-8")
    expected = json.loads("""{
      "tasksId": {
        "started": [],
        "invalid": [{"taskId": "fb0f317d-da91-4b86-aafa-0174ae1e8c8"}],
        "denied": [
          {"taskId": "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"},
          {"taskId": "7552d9fc-d1bb-4975-9a38-18357de531ea"}
        ]
      },
      "tasksTag": [],
      "tasksTagDenied": [],
      "tasksCP": [],
      "tasksCPDenied": [],
      "tasksFailed": []
    }""")
    check_json(r, expected)
    check_recorded(sim)
    assert sim.starts() == []
    # the malformed ID never reaches QRS
    assert all("fb0f317d" not in f for f in sim.filters())


# ================================================================== examples 5-9


EX5_BODY = (b'[{"type":"keyvaluestore","payload":{"namespace":"MyFineNamespace","key":"AnImportantKey",'
            b'"value":"TheValue","ttl":10000}},{"type":"starttaskid","payload":{"taskId":'
            b'"7552d9fc-d1bb-4975-9a38-18357de531ea"}},{"type":"starttasktag","payload":{"tag":'
            b'"startTask1"}},{"type":"starttaskcustomproperty","payload":{"customPropertyName":'
            b'"taskGroup","customPropertyValue":"tasks2"}}]')


def test_example5_all_selectors_one_task_chosen_three_ways(sim, butler):
    d = butler()
    r = start(d, "-", EX5_BODY)
    expected = json.loads("""{
      "tasksId": {
        "started": [{"taskId": "7552d9fc-d1bb-4975-9a38-18357de531ea", "taskName": "Reload task of App2"}],
        "invalid": [],
        "denied": []
      },
      "tasksTag": [
        {"taskId": "7552d9fc-d1bb-4975-9a38-18357de531ea", "taskName": "Reload task of App2"},
        {"taskId": "fb0f317d-da91-4b86-aafa-0174ae1e8c8f", "taskName": "Reload task of App3"}
      ],
      "tasksTagDenied": [],
      "tasksCP": [
        {"taskId": "fb0f317d-da91-4b86-aafa-0174ae1e8c8f", "taskName": "Reload task of App3"},
        {"taskId": "a4b0c6d2-3e1f-4a5b-9c8d-7e6f5a4b3c2d", "taskName": "Reload task of App4"}
      ],
      "tasksCPDenied": [],
      "tasksFailed": []
    }""")
    check_json(r, expected)
    reqs = check_recorded(sim)
    # three distinct tasks, three start calls
    assert started(sim) == once(T2, T3, T4)
    assert id_checks(sim) == [id_filter(T2)]
    assert tag_cp_lookups(sim) == sorted([tag_filter("startTask1"), cp_filter("taskGroup", "tasks2")])
    # spec 3.3 encoded examples
    raw = sorted(upper_hex(q.query.rsplit("&xrfkey=", 1)[0]) for q in reqs
                 if q.path == "/qrs/task/full")
    assert raw == sorted([
        "filter=tags.name%20eq%20%27startTask1%27",
        "filter=%28customProperties.definition.name%20eq%20%27taskGroup%27%29%20and%20"
        "%28customProperties.value%20eq%20%27tasks2%27%29"])
    g = kv_get(d, "MyFineNamespace", "AnImportantKey")
    assert g.status == 200, g
    v = json.loads(g.body)
    assert list(v) == ["namespace", "key", "value", "ttl"], v
    assert v["value"] == "TheValue" and 0 < v["ttl"] <= 10000, v


def test_kv_items_are_stored_before_any_start(sim, butler):
    d = butler()
    sim.set_behaviour(r"^/qrs/task/[^/]+/start$", delay=0.6)
    body = [item_id(T1), item_kv("order", "k", "stored-first")]
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", start(d, "-", body)))
    th.start()
    try:
        sim.wait_for_requests(1, r"/start$", timeout=5)
        # the start request is in flight: the KV item (after it in the body) is already there
        g = kv_get(d, "order", "k")
        check_bytes(g, 200, b'{"namespace":"order","key":"k","value":"stored-first"}')
    finally:
        th.join(10)
    check_json(out["r"], result(started=[T1]))


def test_example6_filter_on_upper_case_url_denials_one_start_refused(sim, butler):
    d = butler(filter=FILTER_34)
    b503 = sim.set_behaviour(r"^/qrs/task/%s/start$" % T2, status=503, method="POST")
    body = (b'[{"type":"starttasktag","payload":{"tag":"startTask2"}},{"type":"starttaskcustomproperty",'
            b'"payload":{"customPropertyName":"taskGroup","customPropertyValue":"tasks2"}},'
            b'{"type":"starttaskid","payload":{"taskId":"16cd2478-6cf2-4133-8fc7-7e9b97a92337"}},'
            b'{"type":"starttaskid","payload":{"taskId":"7552d9fc-d1bb-4975-9a38-18357de531ea"}}]')
    r = start(d, "E3B27F50-B1C0-4879-88FC-C7CDD9C1CF3E", body)
    expected = json.loads("""{
      "tasksId": {
        "started": [{"taskId": "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e", "taskName": "Reload task of App1"}],
        "invalid": [],
        "denied": [{"taskId": "16cd2478-6cf2-4133-8fc7-7e9b97a92337"}]
      },
      "tasksTag": [],
      "tasksTagDenied": [{"tag": "startTask2"}],
      "tasksCP": [],
      "tasksCPDenied": [{"name": "taskGroup", "value": "tasks2"}],
      "tasksFailed": [
        {"taskId": "7552d9fc-d1bb-4975-9a38-18357de531ea", "taskName": "Reload task of App2", "statusCode": 503, "message": "QRS responded with HTTP 503"}
      ]
    }""")
    check_json(r, expected)
    check_recorded(sim)
    assert b503.applied == 1
    assert started(sim) == once(T1, T2)           # lower-cased in the QRS path
    assert sim.starts(accepted_only=True) == [T1]
    # denied selectors are never looked up; the denied ID is not checked for existence
    assert tag_cp_lookups(sim) == []
    assert id_checks(sim) == sorted([id_filter(T1), id_filter(T2)])


def test_example7_kv_item_and_bad_id(sim, butler):
    d = butler()
    body = (b'[{"type":"keyvaluestore","payload":{"namespace":"ns2","key":"fromtask","value":"yes",'
            b'"ttl":0}},{"type":"starttaskid","payload":{"taskId":"bad-id"}}]')
    r = start(d, "-", body)
    check_bytes(r, 200, b'{"tasksId":{"started":[],"invalid":[{"taskId":"bad-id"}],"denied":[]},'
                b'"tasksTag":[],"tasksTagDenied":[],"tasksCP":[],"tasksCPDenied":[],'
                b'"tasksFailed":[]}')
    g = d.get("/v4/keyvalues/ns2?key=fromtask")
    check_bytes(g, 200, b'{"namespace":"ns2","key":"fromtask","value":"yes"}')
    assert sim.requests == []


def test_example8_qrs_refused(sim, butler):
    """Simulator stopped (connection refused): existence check -> invalid; tag and
    custom-property lookups -> 500; /v2 -> 502; apps list -> 500. After a restart on
    the same port everything works again (the cut keep-alive connection is not reused)."""
    d = butler(short=True)
    check_json(start(d, T1), result(started=[T1]))      # warm a keep-alive connection
    sim.stop()
    sim.clear()

    r, dt = timed(start, d, MISSING, b"[]")
    check_bytes(r, 200, b'{"tasksId":{"started":[],"invalid":[{"taskId":'
                b'"0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b"}],"denied":[]},"tasksTag":[],'
                b'"tasksTagDenied":[],"tasksCP":[],"tasksCPDenied":[],"tasksFailed":[]}')
    assert dt < 3.0, dt

    # lookup without an HTTP answer: 500, nothing started, earlier KV items kept
    body = [item_kv("down", "before", "kept"), item_id(T1), item_tag("startTask1"),
            item_kv("down", "after", "x")]
    r, dt = timed(start, d, "-", body)
    check_bytes(r, 500, FAILED_STARTING)
    assert dt < 3.0, dt
    check_bytes(kv_get(d, "down", "before"), 200,
                b'{"namespace":"down","key":"before","value":"kept"}')

    r, dt = timed(start, d, "-", [item_cp("taskGroup", "tasks2")])
    check_bytes(r, 500, FAILED_STARTING)
    assert dt < 3.0, dt

    r, dt = timed(d.get, "/v2/senseStartTask?taskId=" + T1)
    msg = check_error_regex(r, 502, r"QRS request failed: .+")
    assert "refused" in msg, msg
    assert dt < 3.0, dt

    r, dt = timed(d.get, "/v4/senselistapps")
    check_bytes(r, 500, FAILED_APPS)
    assert dt < 3.0, dt

    sim.start()
    assert sim.requests == []
    check_json(start(d, T1), result(started=[T1]))
    check_recorded(sim)
    assert sim.starts() == [T1]


VALIDATION = [
    # (case, URL task, query, content type, body, expected body)
    ("no body", "-", "", "application/json", None, validation("body must be array")),
    ("object body", "-", "", "application/json", b'{"type":"keyvaluestore"}',
     validation("body must be array")),
    ("unknown type", "-", "", "application/json", b'[{"type":"starttask","payload":{}}]',
     validation("body/0/type must be equal to one of the allowed values")),
    ("no payload", "-", "", "application/json", b'[{"type":"starttaskid"}]',
     validation("body/0 must have required property 'payload'")),
    ("empty URL task", "", "", "application/json", b"[]",
     err(400, 'Required parameter (task ID) missing. Should be a task ID or "-" if task info '
         'is passed in body')),
    # further rows of spec 3.1 / 2.14
    ("empty URL task, bad body", "", "", "application/json", b"{}",
     validation("body must be array")),
    # spec 1.6: a scalar where an array is expected becomes a one-element array
    ("string body", "-", "", "application/json", b'"x"', validation("body/0 must be object")),
    ("item not object", "-", "", "application/json", b"[1]", validation("body/0 must be object")),
    ("second item bad", "-", "", "application/json",
     b'[{"type":"starttaskid","payload":{"taskId":"x"}},"y",{"type":"nope"}]',
     validation("body/1 must be object")),
    ("payload not object", "-", "", "application/json", b'[{"type":"starttaskid","payload":"x"}]',
     validation("body/0/payload must be object")),
    ("no taskId", "-", "", "application/json", b'[{"type":"starttaskid","payload":{}}]',
     validation("body/0/payload must have required property 'taskId'")),
    ("no tag", "-", "", "application/json", b'[{"type":"starttasktag","payload":{"x":1}}]',
     validation("body/0/payload must have required property 'tag'")),
    ("no cp name", "-", "", "application/json",
     b'[{"type":"starttaskcustomproperty","payload":{"customPropertyValue":"v"}}]',
     validation("body/0/payload must have required property 'customPropertyName'")),
    ("no cp value", "-", "", "application/json",
     b'[{"type":"starttaskcustomproperty","payload":{"customPropertyName":"n"}}]',
     validation("body/0/payload must have required property 'customPropertyValue'")),
    ("taskId object", "-", "", "application/json",
     b'[{"type":"starttaskid","payload":{"taskId":{"a":1}}}]',
     validation("body/0/payload/taskId must be string")),
    ("index 2", "-", "", "application/json",
     b'[{"type":"starttaskid","payload":{"taskId":"x"}},{},{"type":"starttasktag"}]',
     validation("body/2 must have required property 'payload'")),
    ("bad query boolean", "-", "?allTaskIdsMustExist=yes", "application/json", b"[]",
     validation("querystring/allTaskIdsMustExist must be boolean")),
    ("body before query", "-", "?allTaskIdsMustExist=yes", "application/json", b"{}",
     validation("body must be array")),
    ("text/plain body", "-", "", "text/plain", b"[]", validation("body/0 must be object")),
    ("invalid JSON", "-", "", "application/json", b"[{",
     jdump({"statusCode": 400, "code": "FST_ERR_CTP_INVALID_JSON_BODY", "error": "Bad Request",
            "message": "Body is not valid JSON but content-type is set to 'application/json'"})),
    ("no media type", "-", "", None, b"[]",
     jdump({"statusCode": 415, "code": "FST_ERR_CTP_INVALID_MEDIA_TYPE",
            "error": "Unsupported Media Type", "message": "Unsupported Media Type"})),
]


@pytest.mark.parametrize("case,task,query,ctype,body,expected", VALIDATION,
                         ids=[v[0] for v in VALIDATION])
def test_example9_validation_errors(sim, butler, case, task, query, ctype, body, expected):
    d = butler()
    for method in ("PUT", "POST"):
        r = start(d, task, body, query=query, method=method, ctype=ctype)
        check_bytes(r, json.loads(expected)["statusCode"], expected)
    assert sim.requests == []


def test_no_body_variants(sim, butler):
    """No body in every form (no Content-Length, Content-Length: 0 with and without a
    media type, an empty chunked body): 400 body must be array (spec 1.4)."""
    d = butler()
    expected = validation("body must be array")
    heads = [
        "PUT /v4/reloadtask/-/start HTTP/1.1\r\nHost: x\r\n\r\n",
        "PUT /v4/reloadtask/%s/start HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % T1,
        "POST /v4/reloadtask/-/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 0\r\n\r\n",
        "PUT /v4/reloadtask/-/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ]
    with d.raw() as c:
        for h in heads:
            c.send(h)
            r = c.read_response()
            check_bytes(r, 400, expected)
    assert sim.requests == []


def test_items_without_type_ignored_and_numeric_task_id(sim, butler):
    d = butler()
    body = b'[{"payload":{"taskId":"%s"}},{"foo":1},{"type":"starttaskid","payload":{"taskId":123,' \
           b'"extra":true}}]' % T1.encode()
    check_json(start(d, "-", body), result(invalid=["123"]))
    assert sim.requests == []


# ================================================================== tags and custom properties


def test_tags(sim, butler):
    d = butler()
    r = start(d, "-", [item_tag("startTask1"), item_tag("startTask2"), item_tag("no such tag")])
    check_json(r, result(tag=[T2, T3, T5]))
    check_recorded(sim)
    assert tag_cp_lookups(sim) == sorted([tag_filter("startTask1"), tag_filter("startTask2"),
                                          "tags.name eq 'no such tag'"])
    assert id_checks(sim) == []
    assert started(sim) == once(T2, T3, T5)


def test_tag_matched_twice_listed_twice_started_once(sim, butler):
    d = butler()
    r = start(d, "-", [item_tag("startTask1"), item_tag("startTask1")])
    check_json(r, result(tag=[T2, T3, T2, T3]))
    check_recorded(sim)
    assert started(sim) == once(T2, T3)


def test_tag_non_reload_task_types(sim, butler):
    d = butler()
    check_json(start(d, "-", [item_tag("startTask3")]), result(tag=[TEXT, TUS]))
    check_recorded(sim)
    assert started(sim) == once(TEXT, TUS)


def test_tag_with_quote_and_backslash(sim, butler):
    d = butler()
    r = start(d, "-", [item_tag("O'Brien"), item_tag("Finance\\Reports")])
    check_json(r, result(tag=[TOB, TFR]))
    reqs = check_recorded(sim)
    # both tags in one lookup (batched, doc/butlerd.8)
    assert sim.filters(r"^/qrs/task/full$") == [
        "tags.name eq 'O\\'Brien' or tags.name eq 'Finance\\\\Reports'"]
    raw = [upper_hex(q.query.rsplit("&xrfkey=", 1)[0]) for q in reqs
           if q.path == "/qrs/task/full"]
    assert raw == ["filter=tags.name%20eq%20%27O%5C%27Brien%27%20or%20"
                   "tags.name%20eq%20%27Finance%5C%5CReports%27"]
    assert started(sim) == once(TOB, TFR)


def test_custom_properties(sim, butler):
    d = butler()
    r = start(d, "-", [item_cp("taskGroup", "tasks2"), item_cp("taskGroup", "tasks1"),
                       item_cp("region", "north"), item_cp("taskGroup", "nothing")])
    check_json(r, result(cp=[T3, T4, TFN, TFN]))
    check_recorded(sim)
    assert tag_cp_lookups(sim) == sorted([cp_filter("taskGroup", "tasks2"),
                                          cp_filter("taskGroup", "tasks1"),
                                          cp_filter("region", "north"),
                                          cp_filter("taskGroup", "nothing")])
    assert started(sim) == once(T3, T4, TFN)


def test_custom_property_quote_and_backslash_in_filter(sim, butler):
    d = butler()
    r = start(d, "-", [item_cp("it's", "C:\\x'y")])
    check_json(r, result())
    check_recorded(sim)
    assert sim.filters() == [
        "(customProperties.definition.name eq 'it\\'s') and (customProperties.value eq 'C:\\\\x\\'y')"]
    assert sim.requests[0].status == 200          # QRS could parse it
    assert sim.starts() == []


def test_all_selectors_each_task_started_once(sim, butler):
    d = butler()
    body = [item_id(T3), item_tag("startTask1"), item_cp("taskGroup", "tasks2"),
            item_id(T3.upper()), item_tag("O'Brien"), item_cp("taskGroup", "tasks1"),
            item_id(MISSING), item_id("nope")]
    r = start(d, T2, body)
    check_json(r, result(started=[T2, T3, T3], invalid=[MISSING, "nope"],
                         tag=[T2, T3, TOB], cp=[T3, T4, TFN]))
    check_recorded(sim)
    assert started(sim) == once(T2, T3, T4, TOB, TFN)


def test_response_order_is_request_order_with_parallel_starts(sim, butler):
    """Spec 3.3: lookups and starts may run in parallel, the lists keep the order of
    sequential processing. The first starts are answered last."""
    d = butler()
    sim.set_behaviour(r"^/qrs/task/%s/start$" % T1, delay=0.4)
    sim.set_behaviour(r"^/qrs/task/%s/start$" % T4, delay=0.2)
    sim.set_behaviour(r"^/qrs/task/full$", delay=0.1, times=1)
    body = [item_id(T1), item_cp("taskGroup", "tasks2"), item_id(T4), item_tag("startTask3"),
            item_id(TFN), item_tag("startTask1")]
    check_json(start(d, "-", body), result(started=[T1, T4, TFN], cp=[T3, T4], tag=[TEXT, TUS, T2, T3]))
    check_recorded(sim)
    assert started(sim) == once(T1, T4, TFN, T3, TEXT, TUS, T2)


def test_at_most_8_qrs_calls_in_flight(sim, butler):
    """Spec 3.3: at most 8 QRS calls in flight per request; the result keeps QRS order."""
    d = butler()
    base = sim.find_task(T2)
    many = ["%08x-0000-4000-8000-%012x" % (0x5eed0000 + i, i) for i in range(14)]
    for i, t in enumerate(many):
        NAMES[t] = "Many %02d" % i
        sim.tasks.append(dict(base, id=t, name=NAMES[t],
                              tags=[{"id": "6e0c9d7f-0000-4000-8000-00000000aaaa", "name": "many"}]))
    sim.set_behaviour(r"^/qrs/task/[^/]+/start$", delay=0.25)
    check_json(start(d, "-", [item_tag("many")]), result(tag=many))
    assert started(sim) == once(*many)
    spans = [(q.time, q.answered_at) for q in sim.requests if q.method == "POST"]
    peak = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert 1 <= peak <= 8, peak


def test_put_and_post_are_identical(sim, butler):
    d = butler()
    body = [item_id(T1), item_tag("startTask2")]
    check_json(start(d, "-", body, method="PUT"), result(started=[T1], tag=[T5]))
    check_json(start(d, "-", body, method="POST"), result(started=[T1], tag=[T5]))
    r = d.request("POST", "/v4/reloadtask/-/start",
                  {"Content-Type": "application/json", "X-HTTP-Method-Override": "put"}, jdump(body))
    check_json(r, result(started=[T1], tag=[T5]))
    check_recorded(sim)
    assert started(sim) == collections.Counter({T1: 3, T5: 3})
