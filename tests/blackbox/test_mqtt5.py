"""butlerd.mqtt.protocolVersion (issue 19): MQTT 5 with "No Local" against a real
mosquitto (Debian's mosquitto 2.0 speaks MQTT 5).

With the default subscription qliksense/# every message butlerd publishes (the
status message, session events, the publish endpoint) falls under its own
subscription, so a 3.1.1 broker sends each one back. With protocolVersion 5 the
subscription carries No Local and the broker keeps them. What butlerd received
is its own counter (butlerd -S, mqtt.received); what it published is seen by
another client subscribed to the same topics. Fixtures and helpers are those of
test_mqtt.py; waits are bounded as there."""

import collections
import json
import re
import socket
import time

import pytest

import harness
from broker import STATUS_TOPIC
from test_mqtt import (broker, subs, mqtt_daemon, qrs_overrides, publisher,  # noqa: F401
                       wait_starts, put, tls_broker, tls_overrides, starts_counter, CLIENT_ID,
                       START_TOPIC, SETTLE)
from test_udp import free_udp_ports, udp_overrides
from taskfix import certs, sim, T1, T2, T3, T4, T5  # noqa: F401 (pytest fixtures)

V5 = {"butlerd": {"mqtt": {"protocolVersion": 5}}}
SESSION_TOPIC = "qliksense/session/start"  # Butler.mqttConfig.sessionStartTopic


def received(d):
    """Messages butlerd's MQTT client got on its subscription (butlerd -S)."""
    cp = harness.run_cli(["-S", "-c", d.config_path])
    assert cp.returncode == 0, cp
    return json.loads(cp.stdout)["mqtt"]["received"]


def publish_own(d, s, n):
    """n messages through the publish endpoint on a topic under qliksense/#, each
    seen by the other client s (so they did reach the broker)."""
    for i in range(n):
        r = put(d, {"topic": "qliksense/test/own", "message": "m%d" % i, "qos": 1})
        assert r.status == 201, r
    assert harness.wait_until(lambda: len(s.messages("qliksense/test/own")) >= n, 5), \
        s.messages("qliksense/test/own")


def only_marker_received(d, broker, subs):
    """A message from another client, then butlerd's count: it must come to exactly
    that one. Whatever butlerd published before was with the broker before the
    marker, so an echo of it would have been counted by then."""
    publisher(broker, subs).publish("qliksense/test/marker", b"m", qos=1)
    assert harness.wait_until(lambda: received(d) >= 1, 5), "the marker never arrived"
    assert received(d) == 1


def start_session_datagrams(port, n):
    """n "Start session" UDP datagrams (butlerd-api(7), UDP EVENTS) for n users."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as so:
        for i in range(n):
            so.sendto(b"/proxy-session/;host1;Start session;DIR;user%d;sid%d;app" % (i, i),
                      ("127.0.0.1", port))


# ------------------------------------------------------------------ MQTT 5


def test_v5_connects_as_mqtt5_with_no_local_and_starts_tasks(start_daemon, broker, subs, sim,
                                                            certs):
    s = subs("qliksense/#")
    mark = broker.mark()
    d = mqtt_daemon(start_daemon, broker, harness.merge(qrs_overrides(sim, certs), V5))
    # MQTT 5 (p5), clean start, the default keep-alive; the default subscription
    assert broker.connects(CLIENT_ID, mark) == [(5, 1, 60)], broker.log_tail()
    assert re.search(r"Received SUBSCRIBE from %s\s*\n[^\n]*qliksense/# \(QoS 0\)"
                     % re.escape(CLIENT_ID), broker.log()[mark:]), broker.log_tail()
    s.wait_message(STATUS_TOPIC)
    # butlerd's own publications reach other clients but not butlerd
    publish_own(d, s, 5)
    assert received(d) == 0
    # a message from another client on the start topic still starts the task
    pub = publisher(broker, subs)
    pub.publish(START_TOPIC, T1.encode(), qos=1)
    wait_starts(sim, collections.Counter([T1]))
    assert harness.wait_until(lambda: received(d) == 1, 5), received(d)


def test_v5_session_events_are_not_echoed(start_daemon, broker, subs):
    tport, sport = free_udp_ports()
    s = subs("qliksense/#")
    d = mqtt_daemon(start_daemon, broker, harness.merge(udp_overrides(tport, sport), V5))
    start_session_datagrams(sport, 20)
    assert harness.wait_until(lambda: len(s.messages(SESSION_TOPIC)) >= 20, 5), \
        len(s.messages(SESSION_TOPIC))
    assert s.messages(SESSION_TOPIC)[0].payload.decode() == "host1: DIR/user0"
    # the active-user aggregates went out as well; none of it came back
    assert harness.wait_until(lambda: s.messages("qliksense/users/active/usernames"), 5)
    assert received(d) == 0
    only_marker_received(d, broker, subs)


def test_v5_qos1_publish_reconnect_and_resubscribe(start_daemon, broker, subs, sim, certs):
    d = mqtt_daemon(start_daemon, broker, harness.merge(qrs_overrides(sim, certs), V5))
    s = subs("peer/#")
    r = put(d, {"topic": "peer/a", "message": "before", "qos": 2, "retain": True})
    assert r.status == 201, r
    s.wait_message("peer/a", "before")
    broker.stop()
    assert harness.wait_until(lambda: put(d, {"topic": "peer/a", "message": "x"}).status == 503,
                              5)
    mark = broker.mark()
    broker.start()
    broker.wait_subscribed(CLIENT_ID, 20, mark)
    assert broker.connects(CLIENT_ID, mark)[:1] == [(5, 1, 60)], broker.log_tail()
    pub = publisher(broker, subs)
    pub.publish(START_TOPIC, T2.encode(), qos=1)
    wait_starts(sim, collections.Counter([T2]))
    s2 = subs("peer/#")
    assert harness.wait_until(
        lambda: put(d, {"topic": "peer/a", "message": "after", "qos": 1}).status == 201, 5)
    s2.wait_message("peer/a", "after")


def test_v5_over_tls_with_client_certificate(start_daemon, tmp_path, certs):
    b = tls_broker(tmp_path, certs)
    try:
        mark = b.mark()
        d = mqtt_daemon(start_daemon, b, harness.merge(tls_overrides(certs), V5), wait=False)
        d.wait_log("connected to MQTT broker 127.0.0.1:%d" % b.port, 10)
        assert b.connects(CLIENT_ID, mark) == [(5, 1, 60)], b.log_tail()
        r = put(d, {"topic": "tls/test", "message": "over TLS", "qos": 1})
        assert r.status == 201, r
    finally:
        b.stop()


def test_v5_publish_endpoint_to_start_topic_starts_task_once(start_daemon, broker, subs, sim,
                                                             certs):
    """With No Local the broker keeps the message from butlerd, so butlerd starts
    the tasks of its own REST publish itself: as with 3.1.1, once."""
    s = subs(START_TOPIC)
    d = mqtt_daemon(start_daemon, broker, harness.merge(qrs_overrides(sim, certs), V5))
    for qos, t in ((0, T3), (1, T4)):
        r = put(d, {"topic": START_TOPIC, "message": t, "qos": qos})
        assert r.status == 201, r
    wait_starts(sim, collections.Counter([T3, T4]))
    assert harness.wait_until(lambda: len(s.messages(START_TOPIC)) == 2, 5)  # published too
    time.sleep(SETTLE)
    assert starts_counter(sim) == collections.Counter([T3, T4])
    assert received(d) == 0
    only_marker_received(d, broker, subs)


def test_v5_shared_subscription_without_no_local_starts_each_task_once(
        start_daemon, broker, subs, sim, certs):
    """No Local on a shared subscription is a protocol error in MQTT 5: a $share/
    subscription is made without it, and the group still shares the messages."""
    shared = harness.merge(harness.merge(qrs_overrides(sim, certs), V5), {"Butler": {
        "mqttConfig": {"subscriptionRootTopic": "$share/butlerd/qliksense/#"}}})
    mark = broker.mark()
    a = mqtt_daemon(start_daemon, broker, shared, client_id="butlerd-a")
    b = mqtt_daemon(start_daemon, broker, shared, client_id="butlerd-b")
    assert broker.connects("butlerd-a", mark) == [(5, 1, 60)], broker.log_tail()
    pub = publisher(broker, subs)
    ids = [T1, T2, T3, T4, T5]
    for t in ids:
        pub.publish(START_TOPIC, t.encode())
    wait_starts(sim, collections.Counter(ids), timeout=10)
    time.sleep(SETTLE)
    assert starts_counter(sim) == collections.Counter(ids)
    assert a.running() and b.running()
    assert broker.connects("butlerd-a", mark) == [(5, 1, 60)], broker.log_tail()  # no reconnect


# ------------------------------------------------------------------ MQTT 3.1.1 unchanged


def test_v4_default_is_mqtt311_and_own_publications_come_back(start_daemon, broker, subs, sim,
                                                             certs):
    s = subs("qliksense/#")
    mark = broker.mark()
    d = mqtt_daemon(start_daemon, broker, qrs_overrides(sim, certs))
    # mosquitto logs MQTT 3.1.1 as p2 (protocol level 4)
    assert broker.connects(CLIENT_ID, mark) == [(2, 1, 60)], broker.log_tail()
    s.wait_message(STATUS_TOPIC)
    publish_own(d, s, 5)
    # the status message and the five publications come back to butlerd
    assert harness.wait_until(lambda: received(d) >= 6, 5), received(d)
    before = received(d)
    pub = publisher(broker, subs)
    pub.publish(START_TOPIC, T1.encode(), qos=1)
    wait_starts(sim, collections.Counter([T1]))
    assert harness.wait_until(lambda: received(d) == before + 1, 5), received(d)


def test_explicit_v4_same_as_default(start_daemon, broker, subs):
    s = subs("qliksense/#")
    mark = broker.mark()
    d = mqtt_daemon(start_daemon, broker, {"butlerd": {"mqtt": {"protocolVersion": 4}}})
    assert broker.connects(CLIENT_ID, mark) == [(2, 1, 60)], broker.log_tail()
    s.wait_message(STATUS_TOPIC)
    publish_own(d, s, 3)
    assert harness.wait_until(lambda: received(d) >= 4, 5), received(d)


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize("value", ["3", "6", "0", "-5", '"5"'])
def test_configtest_refuses_other_versions(tmp_path, value):
    path = str(tmp_path / "butlerd.conf")
    harness.write_file(path, harness.config_text(
        harness.free_port(), str(tmp_path),
        {"butlerd": {"mqtt": {"protocolVersion": harness.Raw(value)}}}))
    cp = harness.run_cli(["-t", "-c", path])
    assert cp.returncode != 0, cp
    assert "butlerd.mqtt.protocolVersion" in cp.stderr, cp.stderr
    assert "configuration OK" not in cp.stdout + cp.stderr


@pytest.mark.parametrize("value", [4, 5])
def test_configtest_accepts_4_and_5(tmp_path, value):
    path = str(tmp_path / "butlerd.conf")
    harness.write_file(path, harness.config_text(
        harness.free_port(), str(tmp_path), {"butlerd": {"mqtt": {"protocolVersion": value}}}))
    cp = harness.run_cli(["-t", "-c", path])
    assert cp.returncode == 0 and "configuration OK" in cp.stdout + cp.stderr, cp
