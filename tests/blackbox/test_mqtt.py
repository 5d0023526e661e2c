"""MQTT client of butlerd against a real mosquitto broker (issue 5; spec
api.md 2.7, 2.16 /v2/mqttPublishMessage, 5.1-5.3, 3.4).

Every test gets its own broker (tests/blackbox/broker.py) on a free loopback
port and its own butlerd. A Subscriber records what the broker delivers; the
broker's own log (log_type all) shows how butlerd connected and subscribed,
independently of butlerd's log format. Tasks started from the start topic are
checked on the Qlik Sense simulator (tests/qlik-sim), as in test_task.py.

Waits are bounded: 5 s for a message, 10 s for a (re)connect, 20 s after a
broker restart (butlerd's backoff is 1 s doubling)."""

import collections
import json
import os
import re
import subprocess
import time

import pytest

import harness
from broker import STATUS_TOPIC, Broker, Subscriber, mqtt_overrides, status_text
from harness import Raw, jdump, validation
# the simulator fixtures and fixture constants of the start-task suite
from taskfix import (certs, sim, filter_cfg, X_QLIK_USER,  # noqa: F401 (pytest fixtures)
                       T1, T2, T3, T4, T5, SEED_V2)

CLIENT_ID = "butlerd-test"
PUBLISH_TIMEOUT_MS = 1500
START_TOPIC = "qliksense/start_task"
PATH = "/v4/mqttpublishmessage"
SETTLE = 0.7        # after a marker arrived: time for anything sent before it to show up

REASONS = dict(harness.REASONS)
REASONS.update({503: "Service Unavailable", 504: "Gateway Timeout"})


def err(status, message):
    """Error body of spec 1.8 (harness.err has no 503/504 reason phrases)."""
    return jdump({"statusCode": status, "error": REASONS[status], "message": message})


DISABLED = err(503, "MQTT is disabled in the configuration")
ACK_TIMEOUT = err(504, "Timed out waiting for the MQTT broker to acknowledge the message")


def not_connected(port):
    return err(503, "Not connected to MQTT broker 127.0.0.1:%d" % port)


def invalid_topic(topic):
    return err(400, "Invalid MQTT topic: " + topic)


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()
    print(b.log_tail(80))


@pytest.fixture
def subs(broker):
    """Factory: subs(topics="#", qos=2) -> a connected Subscriber, closed at teardown."""
    made = []

    def make(topics="#", **kw):
        s = Subscriber(broker, topics, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def qrs_overrides(sim, certs, filter=None):
    """Config overrides pointing butlerd at the simulator (as test_task.butler)."""
    return {"Butler": {
        "cert": {"clientCert": certs["client.pem"], "clientCertKey": certs["client_key.pem"],
                 "clientCertCA": certs["root.pem"]},
        "configQRS": {
            "host": "127.0.0.1", "port": sim.qrs_port, "useSSL": True, "rejectUnauthorized": True,
            "headers": {"static": Raw('( { name = "X-Qlik-User"; value = "%s"; } )'
                                     % X_QLIK_USER)},
        },
        "startTaskFilter": filter_cfg(filter) if filter else {"enable": False},
    }}


def mqtt_daemon(start_daemon, broker, overrides=None, client_id=CLIENT_ID, workers=2, wait=True):
    """butlerd with MQTT on against broker and the publish endpoint enabled.
    wait: return only once butlerd published its status message and the broker
    acknowledged its subscription (so the start topic is live)."""
    ov = harness.merge(mqtt_overrides(broker, client_id), {
        "Butler": {"restServerEndpointsEnable": {"mqttPublishMessage": True}},
        "butlerd": {"mqtt": {"publishTimeoutMs": PUBLISH_TIMEOUT_MS}}})
    harness.merge(ov, overrides or {})
    mark = broker.mark()
    status = Subscriber(broker, STATUS_TOPIC) if wait else None
    try:
        d = start_daemon(ov, workers=workers)
        if wait:
            if client_id:
                status.wait_message(STATUS_TOPIC, status_text(broker.port, client_id), 10)
                broker.wait_subscribed(client_id, 10, mark)
            else:
                status.wait_message(STATUS_TOPIC, None, 10)
    finally:
        if status:
            status.close()
    return d


def put(d, body, headers=None, method="PUT"):
    if not isinstance(body, bytes):
        body = jdump(body)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return d.request(method, PATH, h, body)


def v2(d, query):
    return d.get("/v2/mqttPublishMessage" + query)


check = harness.check_reply


def starts_counter(sim):
    return collections.Counter(sim.starts())


def wait_starts(sim, want, timeout=5.0):
    """Wait until the simulator recorded at least the starts in `want`
    (a Counter of task IDs); returns the Counter of all starts."""
    ok = harness.wait_until(lambda: not (want - starts_counter(sim)), timeout)
    got = starts_counter(sim)
    assert ok, "starts recorded: %s, wanted at least %s" % (dict(got), dict(want))
    return got


def publisher(broker, subs):
    """A client used only to publish (subscribed to a topic nobody uses)."""
    return subs("test/unused/#", qos=0)


# ================================================================== connection


def test_status_message_on_connect_mqtt311_clean_session_and_subscription(start_daemon, broker,
                                                                         subs):
    s = subs(STATUS_TOPIC)
    mark = broker.mark()
    mqtt_daemon(start_daemon, broker, {"butlerd": {"mqtt": {"keepAliveSeconds": 17}}})
    m = s.wait_message(STATUS_TOPIC, "Connected to MQTT broker 127.0.0.1:%d with client ID %s"
                       % (broker.port, CLIENT_ID))
    assert (m.qos, m.retain) == (0, False), m   # event publications: QoS 0, no retain (5.1)
    # MQTT 3.1.1 (p2), clean session (c1), the configured keep-alive
    assert broker.connects(CLIENT_ID, mark) == [(2, 1, 17)], broker.log_tail()
    # one subscription, to the default root topic, QoS 0
    log = broker.log()[mark:]
    assert re.search(r"Received SUBSCRIBE from %s\s*\n[^\n]*qliksense/# \(QoS 0\)"
                     % re.escape(CLIENT_ID), log), broker.log_tail()
    assert len(s.messages(STATUS_TOPIC)) == 1


def test_default_client_id_is_butlerd_and_8_hex_digits(start_daemon, broker, subs):
    s = subs(STATUS_TOPIC)
    mark = broker.mark()
    mqtt_daemon(start_daemon, broker, client_id=None)
    m = s.wait_message(STATUS_TOPIC)
    text = m.payload.decode()
    mt = re.fullmatch(r"Connected to MQTT broker 127\.0\.0\.1:%d with client ID (butlerd_[0-9a-fA-F]{8})"
                      % broker.port, text)
    assert mt, text
    assert broker.connects(mt.group(1), mark), broker.log_tail()


def test_missing_broker_does_not_stop_startup_and_connects_later(start_daemon, broker, subs):
    port = broker.port
    broker.stop()
    d = mqtt_daemon(start_daemon, broker, wait=False)
    assert d.get("/v4/butlerping").status == 200
    r = put(d, {"topic": "peer/test", "message": "x"})
    check(r, 503, not_connected(port))
    check(v2(d, "?topic=peer/test&message=x"), 503, not_connected(port))
    mark = broker.mark()
    broker.start()
    assert broker.port == port
    # backoff 1 s, 2 s, 4 s ...: the next attempt comes within a few seconds
    broker.wait_subscribed(CLIENT_ID, 15, mark)
    harness.wait_until(lambda: put(d, {"topic": "peer/test", "message": "x"}).status == 201, 5)
    check(put(d, {"topic": "peer/test", "message": "y"}), 201,
          b'{"topic":"peer/test","message":"y"}')
    assert d.running()


def test_broker_stop_gives_503_then_reconnects_and_resubscribes(start_daemon, broker, subs, sim,
                                                               certs):
    d = mqtt_daemon(start_daemon, broker, qrs_overrides(sim, certs))
    port = broker.port
    check(put(d, {"topic": "peer/a", "message": "before"}), 201,
          b'{"topic":"peer/a","message":"before"}')
    broker.stop()

    # 503 once butlerd noticed the loss; no request may hang
    def down():
        t0 = time.monotonic()
        r = put(d, {"topic": "peer/a", "message": "down", "qos": 1})
        assert time.monotonic() - t0 < PUBLISH_TIMEOUT_MS / 1000 + 2, r
        return r if r.status == 503 else None
    r = harness.wait_until(down, 5)
    assert r, "no 503 within 5 s after the broker stopped"
    check(r, 503, not_connected(port))
    check(put(d, {"topic": "peer/a", "message": "down"}), 503, not_connected(port))
    assert d.get("/v4/butlerping").status == 200      # REST unaffected

    mark = broker.mark()
    broker.start()
    assert broker.port == port
    # reconnect and resubscribe by itself, with a status message
    broker.wait_subscribed(CLIENT_ID, 20, mark)
    broker.wait_log(re.compile(r"Received PUBLISH from %s \(.*'%s'" % (re.escape(CLIENT_ID),
                                                                        re.escape(STATUS_TOPIC))),
                    5, mark)
    assert broker.connects(CLIENT_ID, mark)[:1] == [(2, 1, 60)]
    # the subscription is live again: a task GUID on the start topic starts it
    pub = publisher(broker, subs)
    pub.publish(START_TOPIC, T1.encode(), qos=1)
    wait_starts(sim, collections.Counter([T1]))
    s = subs("peer/#")
    check(put(d, {"topic": "peer/a", "message": "after", "qos": 1}), 201,
          b'{"topic":"peer/a","message":"after","qos":1}')
    s.wait_message("peer/a", "after")
    assert d.running()


def test_unacknowledged_qos1_and_qos2_give_504(start_daemon, broker, subs):
    d = mqtt_daemon(start_daemon, broker)
    broker.pause()          # SIGSTOP: the TCP connection stays up, nothing is acknowledged
    try:
        for qos in (1, 2):
            t0 = time.monotonic()
            r = put(d, {"topic": "peer/slow", "message": "m%d" % qos, "qos": qos})
            el = time.monotonic() - t0
            check(r, 504, ACK_TIMEOUT)
            assert PUBLISH_TIMEOUT_MS / 1000 - 0.2 <= el <= PUBLISH_TIMEOUT_MS / 1000 + 2.5, el
        # QoS 0 needs no acknowledgement: 201 once handed to the client
        t0 = time.monotonic()
        check(put(d, {"topic": "peer/slow", "message": "q0", "qos": 0}), 201,
              b'{"topic":"peer/slow","message":"q0","qos":0}')
        # (well below the acknowledgement timeout, which it must not wait for)
        assert time.monotonic() - t0 < PUBLISH_TIMEOUT_MS / 1000
    finally:
        broker.resume()
    s = subs("peer/#")
    check(put(d, {"topic": "peer/ok", "message": "ok", "qos": 1}), 201,
          b'{"topic":"peer/ok","message":"ok","qos":1}')
    s.wait_message("peer/ok", "ok")


# ================================================================== PUT /v4/mqttpublishmessage


def test_publish_spec_example(start_daemon, broker, subs):
    d = mqtt_daemon(start_daemon, broker)
    s = subs("qliksense/new_data_notification/#")
    r = put(d, {"topic": "qliksense/new_data_notification/sales", "message": "dt=20201028"})
    check(r, 201, b'{"topic":"qliksense/new_data_notification/sales","message":"dt=20201028"}')
    m = s.wait_message("qliksense/new_data_notification/sales")
    assert (m.payload, m.qos, m.retain) == (b"dt=20201028", 0, False), m


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("retain", [False, True])
def test_publish_qos_and_retain(start_daemon, broker, subs, qos, retain):
    d = mqtt_daemon(start_daemon, broker)
    s = subs("peer/#", qos=2)       # a QoS 2 subscription gets the publisher's QoS
    body = {"topic": "peer/test", "message": "hello", "qos": qos, "retain": retain}
    check(put(d, body), 201, jdump(body))
    m = s.wait_message("peer/test", "hello")
    assert m.qos == qos, m
    assert m.retain is False, m     # delivered live: the retain flag is cleared


def test_retained_message_reaches_later_subscriber(start_daemon, broker, subs):
    d = mqtt_daemon(start_daemon, broker)
    check(put(d, {"topic": "peer/kept", "message": "kept", "qos": 1, "retain": True}), 201,
          b'{"topic":"peer/kept","message":"kept","qos":1,"retain":true}')
    check(put(d, {"topic": "peer/gone", "message": "gone", "qos": 1}), 201,
          b'{"topic":"peer/gone","message":"gone","qos":1}')
    late = subs("peer/#")
    m = late.wait_message("peer/kept", "kept")
    assert m.retain is True, m
    time.sleep(0.3)
    assert late.messages("peer/gone") == []


def test_publish_payload_bytes_unchanged(start_daemon, broker, subs):
    d = mqtt_daemon(start_daemon, broker)
    s = subs("peer/#")
    for text in ["héllo ☃ 😀", "line1\nline2\ttab \"quoted\" \\ back", ""]:
        mark = s.mark()
        body = {"topic": "peer/bytes", "message": text, "qos": 1}
        check(put(d, body), 201, jdump(body))
        m = s.wait_count("peer/bytes", 1, start=mark)[0]
        assert m.payload == text.encode("utf-8"), m
    # topics are any UTF-8 without + # NUL
    s2 = subs("ünïcode/#")
    check(put(d, {"topic": "ünïcode/a b/ü", "message": "x", "qos": 1}), 201,
          jdump({"topic": "ünïcode/a b/ü", "message": "x", "qos": 1}))
    s2.wait_message("ünïcode/a b/ü", "x")


def test_publish_coerces_values(start_daemon, broker, subs):
    d = mqtt_daemon(start_daemon, broker)
    s = subs("#")
    r = put(d, {"topic": 42, "message": 123, "qos": "1", "retain": "false"})
    check(r, 201, b'{"topic":"42","message":"123","qos":1,"retain":false}')
    m = s.wait_message("42", "123")
    assert m.qos == 1
    r = put(d, {"topic": ["peer/one"], "message": [1.5], "qos": [2], "retain": 0})
    check(r, 201, b'{"topic":"peer/one","message":"1.5","qos":2,"retain":false}')
    assert s.wait_message("peer/one", "1.5").qos == 2


def test_publish_via_method_override(start_daemon, broker, subs):
    d = mqtt_daemon(start_daemon, broker)
    s = subs("peer/#")
    r = put(d, {"topic": "peer/ovr", "message": "m"}, {"X-HTTP-Method-Override": "put"},
            method="POST")
    check(r, 201, b'{"topic":"peer/ovr","message":"m"}')
    s.wait_message("peer/ovr", "m")


@pytest.mark.parametrize("body,message", [
    (b"", "body must be object"),
    (b"[]", "body must be object"),
    (b'"text"', "body must be object"),
    (b"{}", "body must have required property 'topic'"),
    (b'{"message":"m"}', "body must have required property 'topic'"),
    (b'{"topic":"t"}', "body must have required property 'message'"),
    (b'{"topic":{"a":1}}', "body must have required property 'message'"),
    (b'{"topic":{"a":1},"message":"m"}', "body/topic must be string"),
    (b'{"topic":["a","b"],"message":"m"}', "body/topic must be string"),
    (b'{"topic":"t","message":{"a":1}}', "body/message must be string"),
    (b'{"topic":"t","message":["a","b"]}', "body/message must be string"),
    (b'{"topic":"#","message":{"a":1}}', "body/message must be string"),
    (b'{"topic":"t","message":"m","qos":"x"}', "body/qos must be integer"),
    (b'{"topic":"t","message":"m","qos":1.5}', "body/qos must be integer"),
    (b'{"topic":"t","message":"m","qos":{}}', "body/qos must be integer"),
    (b'{"topic":"t","message":"m","qos":3}',
     "body/qos must be equal to one of the allowed values"),
    (b'{"topic":"t","message":"m","qos":-1}',
     "body/qos must be equal to one of the allowed values"),
    (b'{"topic":"t","message":"m","retain":"yes"}', "body/retain must be boolean"),
    (b'{"topic":"t","message":"m","retain":2}', "body/retain must be boolean"),
    (b'{"topic":"t","message":"m","qos":"x","retain":"y"}', "body/qos must be integer"),
])
def test_publish_validation(start_daemon, broker, subs, body, message):
    d = mqtt_daemon(start_daemon, broker)
    check(put(d, body), 400, validation(message))


def test_publish_bad_json_and_media_type(start_daemon, broker):
    d = mqtt_daemon(start_daemon, broker)
    check(put(d, b'{"topic":'), 400, harness.err(
        400, "Body is not valid JSON but content-type is set to 'application/json'",
        "FST_ERR_CTP_INVALID_JSON_BODY"))
    r = d.request("PUT", PATH, {"Content-Type": "text/plain"}, b"hello")
    check(r, 400, validation("body must be object"))


INVALID_TOPICS = ["+", "#", "a/+", "a/+/b", "a/#", "sport/tennis#", "#/a", "", "a\x00b",
                  "a" * 65536, "é" * 32768]


def test_publish_invalid_topics(start_daemon, broker, subs):
    d = mqtt_daemon(start_daemon, broker)
    s = subs("#")
    mark = s.mark()
    for t in INVALID_TOPICS:
        check(put(d, {"topic": t, "message": "m", "qos": 1}), 400, invalid_topic(t))
    # the limit is 65535 bytes, not characters: 32767 x 2 bytes + 1 is fine
    ok = "é" * 32767 + "a"
    check(put(d, {"topic": ok, "message": "long", "qos": 1}), 201,
          jdump({"topic": ok, "message": "long", "qos": 1}))
    s.wait_message(ok, "long")
    check(put(d, {"topic": "peer/marker", "message": "marker", "qos": 1}), 201,
          b'{"topic":"peer/marker","message":"marker","qos":1}')
    s.wait_message("peer/marker", "marker")
    assert [m.topic for m in s.since(mark)] == [ok, "peer/marker"]


def test_mqtt_disabled_gives_503(start_daemon):
    d = start_daemon({"Butler": {"restServerEndpointsEnable": {"mqttPublishMessage": True},
                                 "mqttConfig": {"enable": False, "brokerHost": "127.0.0.1",
                                                "brokerPort": harness.free_port()}}})
    check(put(d, {"topic": "peer/test", "message": "hello"}), 503, DISABLED)
    check(put(d, {"topic": "peer/test", "message": "hello", "qos": 2, "retain": True}), 503,
          DISABLED)
    check(v2(d, "?topic=abc/def&message=ButlerTalksMQTT"), 503, DISABLED)
    # validation (step 1) and topic syntax (step 2) come first
    check(put(d, {"topic": "peer/test"}), 400,
          validation("body must have required property 'message'"))
    check(put(d, {"topic": "a/#", "message": "m"}), 400, invalid_topic("a/#"))
    check(v2(d, "?topic=a%2F%23&message=m"), 400, invalid_topic("a/#"))


def test_publish_route_disabled_is_404(start_daemon, broker):
    d = mqtt_daemon(start_daemon, broker, {
        "Butler": {"restServerEndpointsEnable": {"mqttPublishMessage": False}}})
    check(put(d, {"topic": "t", "message": "m"}), 404, harness.not_found("PUT", PATH))
    check(v2(d, "?topic=t&message=m"), 404,
          harness.not_found("GET", "/v2/mqttPublishMessage?topic=t&message=m"))


def test_default_qos_from_config(start_daemon, broker, subs):
    d = mqtt_daemon(start_daemon, broker, {"butlerd": {"mqtt": {"defaultQos": 2}}})
    s = subs("peer/#", qos=2)
    check(put(d, {"topic": "peer/dq", "message": "m"}), 201, b'{"topic":"peer/dq","message":"m"}')
    assert s.wait_message("peer/dq", "m").qos == 2
    check(put(d, {"topic": "peer/dq0", "message": "m", "qos": 0}), 201,
          b'{"topic":"peer/dq0","message":"m","qos":0}')
    assert s.wait_message("peer/dq0", "m").qos == 0
    check(v2(d, "?topic=peer/v2&message=m"), 200, b'{"topic":"peer/v2","message":"m"}')
    assert s.wait_message("peer/v2", "m").qos == 2


# ================================================================== GET /v2/mqttPublishMessage


def test_v2_seed_examples(start_daemon, broker, subs):
    d = mqtt_daemon(start_daemon, broker)
    s = subs("abc/#")
    check(v2(d, "?topic=abc/def&message=ButlerTalksMQTT"), 200,
          b'{"topic":"abc/def","message":"ButlerTalksMQTT"}')
    m = s.wait_message("abc/def", "ButlerTalksMQTT")
    assert (m.qos, m.retain) == (0, False)
    # curl -G --data-urlencode "topic=abc/def" --data-urlencode "message=Butler talks MQTT"
    check(v2(d, "?topic=abc%2Fdef&message=Butler%20talks%20MQTT"), 200,
          b'{"topic":"abc/def","message":"Butler talks MQTT"}')
    s.wait_message("abc/def", "Butler talks MQTT")
    check(v2(d, "?topic=abc/def&message=plus+sign"), 200,
          b'{"topic":"abc/def","message":"plus sign"}')
    s.wait_message("abc/def", "plus sign")


def test_v2_case_insensitive_path_and_no_qos_retain_params(start_daemon, broker, subs):
    d = mqtt_daemon(start_daemon, broker)
    s = subs("abc/#", qos=2)
    r = d.get("/V2/MQTTPUBLISHMESSAGE?topic=abc/x&message=m&qos=2&retain=true")
    check(r, 200, b'{"topic":"abc/x","message":"m"}')
    m = s.wait_message("abc/x", "m")
    assert (m.qos, m.retain) == (0, False), m   # defaultQos, retain false: params ignored
    time.sleep(0.2)
    late = subs("abc/#")
    time.sleep(0.3)
    assert late.messages("abc/x") == []         # not retained


@pytest.mark.parametrize("query,message", [
    ("", "querystring must have required property 'topic'"),
    ("?message=m", "querystring must have required property 'topic'"),
    ("?topic=abc/def", "querystring must have required property 'message'"),
    ("?topic=a&topic=b&message=m", "querystring/topic must be string"),
])
def test_v2_validation(start_daemon, broker, query, message):
    d = mqtt_daemon(start_daemon, broker)
    check(v2(d, query), 400, validation(message))


def test_v2_invalid_topic(start_daemon, broker):
    d = mqtt_daemon(start_daemon, broker)
    check(v2(d, "?topic=abc/%2B&message=m"), 400, invalid_topic("abc/+"))
    check(v2(d, "?topic=&message=m"), 400, invalid_topic(""))
    check(v2(d, "?topic=a%00b&message=m"), 400, invalid_topic("a\x00b"))


# ================================================================== tasks started from MQTT


def test_start_topic_bare_guid(start_daemon, broker, subs, sim, certs):
    mqtt_daemon(start_daemon, broker, qrs_overrides(sim, certs))
    pub = publisher(broker, subs)
    pub.publish(START_TOPIC, T1.encode())
    wait_starts(sim, collections.Counter([T1]))
    # whitespace trimmed, upper case normalised, a loose (not strict) GUID accepted
    pub.publish(START_TOPIC, ("  \t" + SEED_V2.upper() + "\r\n").encode())
    got = wait_starts(sim, collections.Counter([T1, SEED_V2]))
    time.sleep(SETTLE)
    assert starts_counter(sim) == collections.Counter([T1, SEED_V2]), got
    assert SEED_V2 in sim.starts()              # sent lower-case


def test_start_topic_json_body(start_daemon, broker, subs, sim, certs):
    mqtt_daemon(start_daemon, broker, qrs_overrides(sim, certs))
    pub = publisher(broker, subs)
    body = [{"type": "starttaskid", "payload": {"taskId": T2}},
            {"type": "starttasktag", "payload": {"tag": "startTask2"}}]
    pub.publish(START_TOPIC, jdump(body))
    wait_starts(sim, collections.Counter([T2, T5]))
    body = [{"type": "starttaskcustomproperty",
             "payload": {"customPropertyName": "taskGroup", "customPropertyValue": "tasks2"}}]
    pub.publish(START_TOPIC, json.dumps(body, indent=2).encode())   # whitespace is fine
    wait_starts(sim, collections.Counter([T2, T5, T3, T4]))
    time.sleep(SETTLE)
    assert starts_counter(sim) == collections.Counter([T2, T5, T3, T4])


def test_start_topic_invalid_payloads_start_nothing(start_daemon, broker, subs, sim, certs):
    d = mqtt_daemon(start_daemon, broker, qrs_overrides(sim, certs))
    pub = publisher(broker, subs)
    for payload in ["not-a-guid", T1[:-1], T1 + "0", "{%s}" % T1, T1 + " " + T2, "", "[{",
                    '[{"type":"starttaskid","payload":{"taskId":"abc"}}]',
                    '{"taskId":"%s"}' % T1, T1.replace("-", "")]:
        pub.publish(START_TOPIC, payload.encode())
    pub.publish(START_TOPIC, b"\xff\xfe" + T1.encode())     # not UTF-8
    # other topics are not the start topic (exact match)
    pub.publish(START_TOPIC + "/x", T2.encode())
    pub.publish("qliksense/other", T2.encode())
    pub.publish("QLIKSENSE/start_task", T2.encode())
    pub.publish(START_TOPIC, T4.encode())                    # the marker
    wait_starts(sim, collections.Counter([T4]))
    time.sleep(SETTLE)
    assert sim.starts() == [T4]
    assert d.running()


def test_start_topic_filter_applies(start_daemon, broker, subs, sim, certs):
    flt = {"taskId": [T1], "tag": ["startTask1"], "cp": [("taskGroup", "tasks1")]}
    mqtt_daemon(start_daemon, broker, qrs_overrides(sim, certs, flt))
    pub = publisher(broker, subs)
    pub.publish(START_TOPIC, T2.encode())                                    # ID not allowed
    pub.publish(START_TOPIC, jdump([{"type": "starttasktag",
                                     "payload": {"tag": "startTask2"}}]))   # tag not allowed
    pub.publish(START_TOPIC, jdump([{"type": "starttaskcustomproperty", "payload": {
        "customPropertyName": "taskGroup", "customPropertyValue": "tasks2"}}]))  # cp not allowed
    pub.publish(START_TOPIC, T1.upper().encode())                            # allowed
    wait_starts(sim, collections.Counter([T1]))
    # an allowed tag starts its tasks, even T2 whose ID alone is denied (spec 3.4)
    pub.publish(START_TOPIC, jdump([{"type": "starttasktag", "payload": {"tag": "startTask1"}}]))
    wait_starts(sim, collections.Counter([T1, T2, T3]))
    time.sleep(SETTLE)
    assert starts_counter(sim) == collections.Counter([T1, T2, T3])
    assert T5 not in sim.starts() and T4 not in sim.starts()


def test_publish_endpoint_to_start_topic_starts_task(start_daemon, broker, subs, sim, certs):
    d = mqtt_daemon(start_daemon, broker, qrs_overrides(sim, certs))
    check(put(d, {"topic": START_TOPIC, "message": T3, "qos": 1}), 201,
          jdump({"topic": START_TOPIC, "message": T3, "qos": 1}))
    wait_starts(sim, collections.Counter([T3]))
    time.sleep(SETTLE)
    assert sim.starts() == [T3]


def test_custom_root_and_start_topic(start_daemon, broker, subs, sim, certs):
    ov = qrs_overrides(sim, certs)
    ov["Butler"]["mqttConfig"] = {"subscriptionRootTopic": "acme/butler/#",
                                  "taskStartTopic": "acme/butler/start"}
    mark = broker.mark()
    mqtt_daemon(start_daemon, broker, ov)
    assert re.search(r"Received SUBSCRIBE from %s\s*\n[^\n]*acme/butler/# \(QoS 0\)" % CLIENT_ID,
                     broker.log()[mark:]), broker.log_tail()
    pub = publisher(broker, subs)
    pub.publish(START_TOPIC, T2.encode())           # the default topic means nothing now
    pub.publish("acme/butler/start", T1.encode())
    wait_starts(sim, collections.Counter([T1]))
    time.sleep(SETTLE)
    assert sim.starts() == [T1]


# ------------------------------------------------------------------ the events process


def wait_events_pid(d, exclude=(), timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = re.findall(r"events process pid (\d+) started", d.log())
        live = [int(p) for p in m if int(p) not in exclude and harness.alive(int(p))]
        if live:
            return live[-1]
        time.sleep(0.05)
    raise AssertionError("no events process\n" + d.log_tail())


def test_events_process_killed_is_respawned(start_daemon, broker, subs, sim, certs):
    import signal as sg
    d = mqtt_daemon(start_daemon, broker, qrs_overrides(sim, certs))
    pub = publisher(broker, subs)
    first = wait_events_pid(d)
    os.kill(first, sg.SIGKILL)
    d.wait_log(r"events process pid %d killed by signal 9" % first, 5)
    second = wait_events_pid(d, exclude=(first,))
    assert second != first
    pub.publish(START_TOPIC, T1.encode())          # the new one starts tasks
    wait_starts(sim, collections.Counter([T1]))
    assert d.get("/v4/butlerping").status == 200


def test_reload_starts_new_events_process_with_new_filter(start_daemon, broker, subs, sim, certs):
    import signal as sg
    def flt(ids):
        return {"Butler": {"startTaskFilter": filter_cfg({"taskId": ids, "tag": []})}}
    ov = harness.merge(qrs_overrides(sim, certs), flt([T1]))
    d = mqtt_daemon(start_daemon, broker, ov)
    pub = publisher(broker, subs)
    first = wait_events_pid(d)
    pub.publish(START_TOPIC, T2.encode())          # denied by the filter
    d.wait_log(r"task %s is not allowed by the start task filter" % T2, 5)
    d.write_config(d.config(flt([T1, T2])))
    mark = d.mark()
    d.signal(sg.SIGHUP)
    d.wait_log(r"configuration reloaded", 5, start=mark)
    second = wait_events_pid(d, exclude=(first,))
    d.wait_log(r"events process pid %d exited" % first, 10, start=mark)
    assert not harness.alive(first)
    pub.publish(START_TOPIC, T2.encode())          # allowed now
    wait_starts(sim, collections.Counter([T2]))
    assert harness.alive(second)


def test_events_process_death_logged_and_throttled_like_a_worker(start_daemon, broker, subs,
                                                                 sim, certs):
    """The events process is an entry of the process table, as the workers are: its
    death is logged in the same shape (pid, signal number and name), and its
    respawn is throttled, the wait doubling with each quick death."""
    import signal as sg
    d = mqtt_daemon(start_daemon, broker, qrs_overrides(sim, certs))
    first = wait_events_pid(d)
    mark = d.mark()
    os.kill(first, sg.SIGKILL)
    d.wait_log(re.compile(r"events process pid %d killed by signal 9 \(Killed\), 0 jobs lost$"
                          % first), 5, start=mark)
    d.wait_log("respawning events process in 1000 ms", 5, start=mark)
    second = wait_events_pid(d, exclude=(first,))
    mark = d.mark()
    os.kill(second, sg.SIGKILL)
    d.wait_log("respawning events process in 2000 ms", 5, start=mark)
    third = wait_events_pid(d, exclude=(first, second))
    # a worker's death reads the same, with its slot and generation
    worker = int(harness.WORKER_STARTED.search(d.find(harness.WORKER_STARTED)[0]).group(2))
    mark = d.mark()
    os.kill(worker, sg.SIGKILL)
    d.wait_log(re.compile(r"worker \d+ pid %d gen \d+ killed by signal 9 \(Killed\)$" % worker),
               5, start=mark)
    assert harness.alive(third)
    pub = publisher(broker, subs)
    pub.publish(START_TOPIC, T1.encode())          # the third one starts tasks
    wait_starts(sim, collections.Counter([T1]))


# ------------------------------------------------------------------ TLS to the broker


def tls_broker(tmp_path, certs):
    return Broker(tmp_path / "tls-broker", extra=[
        "cafile %s" % certs["root.pem"],
        "certfile %s" % certs["server.pem"],
        "keyfile %s" % certs["server_key.pem"],
        "require_certificate true",
    ]).start()


def tls_overrides(certs, ca="root.pem"):
    return {"butlerd": {"mqtt": {"tls": {
        "enable": True, "caFile": certs[ca],
        "certFile": certs["client.pem"],
        "keyFile": certs["client_key.pem"]}}}}


def test_tls_with_client_certificate(start_daemon, tmp_path, certs):
    b = tls_broker(tmp_path, certs)
    try:
        d = mqtt_daemon(start_daemon, b, tls_overrides(certs), wait=False)
        d.wait_log("connected to MQTT broker 127.0.0.1:%d" % b.port, 10)
        r = put(d, {"topic": "tls/test", "message": "over TLS", "qos": 1})
        assert r.status == 201, r
        assert json.loads(r.body) == {"topic": "tls/test", "message": "over TLS", "qos": 1}
    finally:
        b.stop()


def test_tls_wrong_ca_never_connects(start_daemon, tmp_path, certs):
    b = tls_broker(tmp_path, certs)
    try:
        d = mqtt_daemon(start_daemon, b, tls_overrides(certs, ca="other_root.pem"), wait=False)
        d.wait_log("cannot connect to MQTT broker", 10)
        r = put(d, {"topic": "tls/test", "message": "x"})
        assert r.status == 503, r
        assert json.loads(r.body)["message"] == "Not connected to MQTT broker 127.0.0.1:%d" % b.port
        assert "connected to MQTT broker" not in d.log().replace("Not connected", "")
    finally:
        b.stop()


# ------------------------------------------------------------------ credentials


def auth_broker(tmp_path):
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "butler", "s3cret"], check=True,
                   capture_output=True, timeout=10)
    os.chmod(pw, 0o600)
    return Broker(tmp_path / "auth-broker", extra=[
        "allow_anonymous false", "password_file %s" % pw]).start()


@pytest.mark.parametrize("password,ok", [("s3cret", True), ("wrong", False)])
def test_username_and_password(start_daemon, tmp_path, password, ok):
    b = auth_broker(tmp_path)
    try:
        d = mqtt_daemon(start_daemon, b, {"butlerd": {"mqtt": {
            "username": "butler", "password": password}}}, wait=False)
        if ok:
            d.wait_log("connected to MQTT broker 127.0.0.1:%d" % b.port, 10)
            r = put(d, {"topic": "auth/test", "message": "x", "qos": 1})
            assert r.status == 201, r
        else:
            d.wait_log("refused the connection", 10)
            r = put(d, {"topic": "auth/test", "message": "x"})
            assert r.status == 503, r
    finally:
        b.stop()


# ------------------------------------------------------------------ several instances


def test_two_instances_with_a_shared_subscription_start_each_task_once(
        start_daemon, broker, subs, sim, certs):
    """Load-balanced instances on one broker: with a plain subscription each would
    start every task; with $share/<group>/ each message reaches one of them."""
    shared = harness.merge(qrs_overrides(sim, certs), {"Butler": {"mqttConfig": {
        "subscriptionRootTopic": "$share/butlerd/qliksense/#"}}})
    a = mqtt_daemon(start_daemon, broker, shared, client_id="butlerd-a")
    b = mqtt_daemon(start_daemon, broker, shared, client_id="butlerd-b")
    for d in (a, b):
        assert not d.find("is not covered by subscriptionRootTopic")
    pub = publisher(broker, subs)
    ids = [T1, T2, T3, T4, T5, SEED_V2]
    for t in ids:
        pub.publish(START_TOPIC, t.encode())
    wait_starts(sim, collections.Counter(ids), timeout=10)
    time.sleep(SETTLE)
    assert starts_counter(sim) == collections.Counter(ids)   # once each, not twice
    # both instances took part (mosquitto deals shared messages round-robin)
    assert a.find("MQTT start task: started task") and b.find("MQTT start task: started task")


def test_random_start_topic_payloads_never_hurt(start_daemon, broker, subs, sim, certs):
    import random
    rng = random.Random(1123)   # fixed seed: a failure can be replayed
    d = mqtt_daemon(start_daemon, broker, qrs_overrides(sim, certs))
    events = wait_events_pid(d)
    pub = publisher(broker, subs)
    pieces = [b"[", b"]", b"{", b"}", b'"type"', b'"starttaskid"', b'"payload"', b":", b",",
              b'"taskId"', T1.encode(), b"\xff", b"\x00", b" ", b'"tag"', b"null", b"1e999"]
    for i in range(300):
        if i % 3 == 0:
            p = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        else:
            p = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40)))
        if p.strip() in (T1.encode(),):
            continue
        pub.publish(START_TOPIC, p)
    pub.publish(START_TOPIC, T2.encode())       # a valid one after all that
    wait_starts(sim, collections.Counter([T2]), timeout=15)
    assert harness.alive(events) and d.running()
    assert not d.find("killed by signal")
    assert d.get("/v4/butlerping").status == 200
