"""The durable outbox (issue 14; butlerd(8), Outbox): every alert is in the
spool directory before its first attempt and leaves it only when the receiver
accepted it. A receiver that is down, then back, gets every alert once; a 4xx
is a dead letter with its reason, and moving it back re-queues it; a full
queue refuses new alerts with an error and a counter; kill -9 of the delivery
process or of the master loses nothing that was queued; a second butlerd
cannot use the same spool directory. Retries are 1-2 s apart here."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import harness
from alertfix import (certs, failed, hooks, sim, spool_files, start_alerts,  # noqa: F401
                      alert_overrides)
from udp_sender import Sender


def ids_of(reqs):
    return [json.loads(r["body"])["executionId"] for r in reqs]


def stats(d):
    cp = harness.run_cli(["-S", "-c", d.config_path])
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)["alerts"]["webhook"]["reloadTaskFailure"]


def counted(d, n, what, timeout=15):
    ok = harness.wait_until(lambda: stats(d)[what] >= n, timeout, interval=0.2)
    assert ok, "%s: %s\n%s" % (what, stats(d), d.log_tail())


def burst(d, n):
    return [failed(d, message="alert %d" % i)[9] for i in range(n)]


def test_receiver_down_then_back_gets_every_alert_once(start_daemon, sim, certs, hooks,
                                                       tmp_path):
    t0 = time.monotonic()
    # refuses (503, then 429 with Retry-After) for 3 s, then accepts
    web = hooks(lambda r: (503 if time.monotonic() - t0 < 2 else 429, None,
                           [("Retry-After", "1"), ("Content-Length", "0")], b"")
                if time.monotonic() - t0 < 3 else 200)
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     hooks_=[(web.base + "/h", "POST")])
    sent = burst(d, 5)
    counted(d, 5, "delivered", 20)
    got = [r for r in web.requests if time.monotonic() - t0 >= 0]
    accepted = ids_of(got[-5:])
    assert sorted(accepted) == sorted(sent)
    assert d.find("notify retry id=")
    assert spool_files(d.spool, "queue") == []
    st = stats(d)
    assert st["queued"] == 5 and st["delivered"] == 5 and st["retried"] >= 5 and st["dead"] == 0


def test_connection_refused_then_listening(start_daemon, sim, certs, hooks, tmp_path):
    web = hooks()
    url = web.base
    web.close()                                   # nothing listens there now
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool", hooks_=[(url + "/h", "POST")])
    sent = burst(d, 3)
    d.wait_log("notify retry id=", 10)
    counted(d, 3, "queued")
    assert len(spool_files(d.spool, "queue")) == 3
    # the same port again
    import http.server
    import threading
    got = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(url.rsplit(":", 1)[1])), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        assert harness.wait_until(lambda: len(got) >= 3, 15), d.log_tail()
        counted(d, 3, "delivered")
        assert sorted(json.loads(b)["executionId"] for b in got) == sorted(sent)
    finally:
        srv.shutdown()
        srv.server_close()


def test_4xx_is_a_dead_letter_with_its_reason_and_can_be_requeued(start_daemon, sim, certs,
                                                                  hooks, tmp_path):
    state = {"status": 400}
    web = hooks(lambda r: state["status"], body=b"invalid_payload")
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     hooks_=[(web.base + "/h", "POST")])
    sent = failed(d)[9]
    counted(d, 1, "dead")
    assert len(web.requests) == 1                  # not retried
    dead = spool_files(d.spool, "dead")
    assert len(dead) == 1 and spool_files(d.spool, "queue") == []
    with open(dead[0]) as f:
        e = json.load(f)
    assert e["deadReason"] == "HTTP 400" and e["attempts"] == 1 and e["executionId"] == sent
    assert e["destination"] == "webhook" and e["kind"] == "reloadTaskFailure"
    assert e["target"] == web.base + "/h" and e["request"]["method"] == "POST"
    assert oct(os.stat(dead[0]).st_mode & 0o777) == "0o600"
    assert d.find("notify dead id=%s" % e["id"])
    # an operator moves it back: delivered
    state["status"] = 200
    shutil.move(dead[0], os.path.join(d.spool, "queue", os.path.basename(dead[0])))
    counted(d, 1, "delivered")
    assert ids_of(web.requests) == [sent, sent]
    assert spool_files(d.spool, "queue") == [] and spool_files(d.spool, "dead") == []


def test_full_queue_refuses_with_an_error_and_a_counter(start_daemon, sim, certs, hooks,
                                                        tmp_path):
    web = hooks(503)
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     hooks_=[(web.base + "/h", "POST")], maxQueueEntries=2,
                     retryInitialSeconds=60, retryMaxSeconds=60)
    burst(d, 3)
    counted(d, 1, "dropped")
    assert d.find("notify dropped dest=webhook")
    assert "maxQueueEntries (2)" in d.log()
    st = stats(d)
    assert st["queued"] == 2 and st["dropped"] == 1
    assert len(spool_files(d.spool, "queue")) == 2


def delivery_pid(d):
    m = re.findall(r"delivery process pid (\d+) started", d.log())
    return int(m[-1])


def test_kill_9_of_the_delivery_process_loses_nothing(start_daemon, sim, certs, hooks, tmp_path):
    web = hooks(lambda r: (time.sleep(0.05), 200)[1])
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     hooks_=[(web.base + "/h", "POST")])
    sent = burst(d, 20)
    harness.wait_until(lambda: len(web.requests) >= 3, 10)
    first = delivery_pid(d)
    os.kill(first, signal.SIGKILL)
    assert harness.wait_until(lambda: d.log().count("delivery process pid") >= 2 and
                              delivery_pid(d) != first, 10), d.log_tail()
    counted(d, 20, "queued", 20)
    assert harness.wait_until(lambda: set(ids_of(web.requests)) >= set(sent), 20), d.log_tail()
    assert harness.wait_until(lambda: spool_files(d.spool, "queue") == [], 10)


def test_kill_9_of_the_master_loses_nothing_queued(start_daemon, sim, certs, hooks, tmp_path):
    web = hooks(503)
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     hooks_=[(web.base + "/h", "POST")], retryInitialSeconds=2,
                     retryMaxSeconds=2)
    sent = burst(d, 10)
    counted(d, 10, "queued")
    pids = harness.children(d.pid)
    d.signal(signal.SIGKILL)
    d.wait_exit(5)
    assert harness.wait_until(lambda: not any(harness.alive(p) for p in pids), 10)
    assert len(spool_files(d.spool, "queue")) == 10
    web.status = 200
    n0 = len(web.requests)
    d.start()
    assert harness.wait_until(lambda: set(ids_of(web.requests[n0:])) >= set(sent), 20), \
        d.log_tail()
    assert harness.wait_until(lambda: spool_files(d.spool, "queue") == [], 10)


def test_second_butlerd_on_the_same_spool_refuses_to_start(start_daemon, sim, certs, hooks,
                                                           tmp_path):
    web = hooks()
    spool = tmp_path / "spool"
    start_alerts(start_daemon, sim, certs, spool, hooks_=[(web.base + "/h", "POST")])
    ov, _ = alert_overrides(sim, certs, spool, hooks_=[(web.base + "/h", "POST")])
    two = harness.Daemon(tmp_path / "two", ov)
    os.makedirs(two.tmpdir)
    two.port = harness.free_port()
    two.write_config(two.config())
    cp = subprocess.run([harness.binary(), "-f", "-c", two.config_path], capture_output=True,
                        timeout=20)
    assert cp.returncode != 0
    assert b"spool directory %s is in use by another butlerd" % str(spool).encode() in cp.stderr


def test_spool_write_failure_is_counted_and_tried_once_from_memory(start_daemon, sim, certs,
                                                                   hooks, tmp_path):
    web = hooks()
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     hooks_=[(web.base + "/h", "POST")])
    # tmp/ becomes a file: every spool write fails, as on a full file system
    tmpdir = os.path.join(d.spool, "tmp")
    os.rmdir(tmpdir)
    with open(tmpdir, "w") as f:
        f.write("x")
    sent = failed(d)[9]
    d.wait_log("notify delivered from memory dest=webhook", 10)
    assert "notify dropped dest=webhook" in d.log()
    assert ids_of(web.requests) == [sent]
    st = stats(d)
    assert st["dropped"] == 1 and st["delivered"] == 1 and st["queued"] == 0


def test_too_old_is_a_dead_letter_expired_after_n_attempts(start_daemon, sim, certs, hooks,
                                                           tmp_path):
    web = hooks(503)
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     hooks_=[(web.base + "/h", "POST")], maxAgeSeconds=2)
    failed(d)
    counted(d, 1, "dead")
    with open(spool_files(d.spool, "dead")[0]) as f:
        e = json.load(f)
    assert re.fullmatch(r"expired after \d+ attempts: HTTP 503", e["deadReason"]), e
    assert e["attempts"] >= 1 and e["lastError"] == "HTTP 503"


def metric(text, name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    assert m, name
    return float(m.group(1))


def test_metrics_show_the_outbox(start_daemon, sim, certs, hooks, tmp_path):
    """GET /metrics (butlerd(8), MONITORING): the depth of the queue while the
    receiver refuses, then the delivered and dead-letter counters."""
    state = {"status": 503}
    web = hooks(lambda r: state["status"])
    ov, port = alert_overrides(sim, certs, tmp_path / "spool", hooks_=[(web.base + "/h", "POST")])
    harness.merge(ov, {"butlerd": {"metrics": {"enable": True}}})
    d = start_daemon(ov, workers=1)
    d.udp = Sender(port)
    d.spool = str(tmp_path / "spool")
    failed(d)
    failed(d, message="second")
    counted(d, 2, "retried")
    text = d.get("/metrics").text
    assert metric(text, "butlerd_alert_outbox_depth") == 2, text
    state["status"] = 200
    counted(d, 2, "delivered")
    state["status"] = 404
    failed(d, message="third")
    counted(d, 1, "dead")
    text = d.get("/metrics").text
    assert metric(text, "butlerd_alert_outbox_depth") == 0
    assert metric(text, 'butlerd_alert_dead_letters_total{destination="webhook"}') == 1
    base = 'butlerd_alert_messages_total{destination="webhook",kind="reloadTaskFailure",outcome="%s"}'
    assert metric(text, base % "queued") == 3
    assert metric(text, base % "delivered") == 2
    assert metric(text, base % "dead") == 1
    assert metric(text, 'butlerd_alert_dead_letters_total{destination="slack"}') == 0
