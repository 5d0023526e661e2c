"""Liveness and readiness (butlerd(8), "MONITORING"; butlerd.conf(5),
butlerd.health and Butler.dockerHealthCheck): GET /health, GET /ready turning
503 with its reasons while the simulator's QRS is stopped or the mosquitto
broker is down, and back when they return; Butler's health port."""

import json
import os
import re
import socket

import pytest

import harness
from broker import Broker, mqtt_overrides
from taskfix import butler, certs, sim  # noqa: F401 (pytest fixtures)

HEALTH_OK = b'{"statusCode":200,"status":"ok"}'


def ready(d):
    r = d.get("/ready")
    body = json.loads(r.body)
    assert r.header("Content-Type") == harness.JSON_CT
    assert body["statusCode"] == r.status and r.status in (200, 503), r
    assert body["status"] == ("ready" if r.status == 200 else "not ready")
    assert (r.status == 200) == (body["reasons"] == []), r
    return r.status, body["reasons"]


def wait_ready(d, status, timeout=20):
    seen = {}

    def check():
        seen["last"] = ready(d)
        return seen["last"][0] == status
    assert harness.wait_until(check, timeout), seen
    return seen["last"][1]


def test_health_and_ready_without_dependencies(daemon):
    r = daemon.get("/health")
    assert (r.status, r.body, r.header("Content-Type")) == (200, HEALTH_OK, harness.JSON_CT)
    assert ready(daemon) == (200, [])
    # only GET: other methods have no route
    assert daemon.request("POST", "/health", {"Content-Type": "application/json"},
                          b"{}").status == 404


def test_health_can_be_turned_off(start_daemon):
    d = start_daemon({"butlerd": {"health": {"enable": False}}})
    assert d.get("/health").status == 404
    assert d.get("/ready").status == 404


def test_ready_follows_qrs(butler, sim):  # noqa: F811
    d = butler(more={"butlerd": {"health": {"qrsFailSeconds": 0}}})
    assert wait_ready(d, 200) == []
    sim.stop("qrs")
    reasons = wait_ready(d, 503)
    assert len(reasons) == 1 and reasons[0].startswith(
        "QRS 127.0.0.1:%d has failed for " % sim.qrs_port), reasons
    # liveness does not depend on QRS
    assert d.get("/health").status == 200
    sim.start()
    wait_ready(d, 200)


def test_ready_waits_for_qrs_fail_seconds(butler, sim):  # noqa: F811
    d = butler(more={"butlerd": {"health": {"qrsFailSeconds": 3600},
                                 "metrics": {"enable": True}}})
    assert wait_ready(d, 200) == []
    sim.stop("qrs")
    # the failure is recorded (QRS calls by outcome), yet it is younger than an hour
    assert d.get("/v4/senselistapps").status >= 500
    assert ready(d) == (200, [])
    failed = [line for line in d.get("/metrics").text.splitlines()
              if line.startswith('butlerd_qrs_requests_total{outcome="failed"}')]
    assert failed and int(failed[0].split()[-1]) >= 1, failed
    sim.start()


def mqtt_metrics(d):
    """(butlerd_mqtt_connected, butlerd_mqtt_connects_total) from GET /metrics."""
    text = d.get("/metrics").text
    return tuple(int(re.search(r"^%s (\d+)$" % n, text, re.M).group(1))
                 for n in ("butlerd_mqtt_connected", "butlerd_mqtt_connects_total"))


def test_ready_follows_the_broker(start_daemon, tmp_path):
    b = Broker(tmp_path / "broker", port=harness.free_port())
    b.start()
    try:
        d = start_daemon(harness.merge(mqtt_overrides(b),
                                       {"butlerd": {"metrics": {"enable": True}}}))
        wait_ready(d, 200)
        assert mqtt_metrics(d) == (1, 1)
        b.stop()
        reasons = wait_ready(d, 503)
        assert reasons == ["MQTT broker 127.0.0.1:%d is not connected" % b.port], reasons
        assert d.get("/health").status == 200
        assert mqtt_metrics(d) == (0, 1)
        b.start()
        wait_ready(d, 200, timeout=60)
        assert mqtt_metrics(d) == (1, 2)
    finally:
        b.stop()


def raw_get(port, target, method="GET"):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                   % (method, target)).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def test_butler_health_port(start_daemon):
    port = harness.free_port()
    d = start_daemon({"Butler": {"dockerHealthCheck": {"enable": True, "port": port}}})
    r = harness.request(port, "GET", "/health")
    assert (r.status, r.body) == (200, HEALTH_OK)
    assert r.header("Content-Type") == harness.JSON_CT
    assert harness.request(port, "GET", "/v4/butlerping").status == 404
    assert harness.request(port, "GET", "/healthz").status == 404
    assert raw_get(port, "/health").startswith(b"HTTP/1.1 200")
    # the REST port keeps its own routes
    assert d.get("/v4/butlerping").status == 200
    # it survives a reload, and the workers of the new generation serve it
    mark = d.mark()
    d.signal(__import__("signal").SIGHUP)
    d.wait_log(r"gen 2 ready", 15, start=mark)
    assert harness.request(port, "GET", "/health").status == 200


def test_butler_health_port_off_by_default(start_daemon):
    port = harness.free_port()
    start_daemon({"Butler": {"dockerHealthCheck": {"port": port}}})
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_butler_health_port_in_use_is_a_clear_error(start_daemon, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        d = harness.Daemon(tmp_path / "busy",
                           {"Butler": {"dockerHealthCheck": {"enable": True, "port": port}}})
        os.makedirs(d.tmpdir, exist_ok=True)
        with pytest.raises(harness.DaemonError):
            d.start(attempts=1)
        assert "cannot listen on 127.0.0.1 port %d" % port in d.log()
        assert not d.running()
    finally:
        s.close()


def test_open_routes_do_not_use_the_rate_limit(start_daemon):
    d = start_daemon({"butlerd": {"rateLimit": {"enable": True, "maxRequests": 3,
                                                "windowSeconds": 3600}}})
    for _ in range(10):
        r = d.get("/health")
        assert r.status == 200 and r.header("x-ratelimit-limit") is None, r
        assert d.get("/ready").status == 200
    for _ in range(3):
        assert d.get("/v4/butlerping").status == 200
    assert d.get("/v4/butlerping").status == 429
    assert d.get("/health").status == 200
