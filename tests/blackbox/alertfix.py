"""Shared pieces of the alert tests (test_alerts*.py; butlerd(8), Alerts and
Outbox): the simulator with an execution result, a script log and an app owner
for task T1, recording HTTP receivers for Slack, Teams and webhooks, and a
butlerd with UDP intake and alert destinations pointed at them."""

import copy
import glob
import json
import os
import socket
import sys
import threading

import pytest

import harness
from harness import Raw
from receiver import HANG, Receiver
from taskfix import SIM_DIR, FIXTURE, T1, make_certs  # noqa: F401
from test_mqtt import qrs_overrides

sys.path.insert(0, SIM_DIR)
from qlik_sim import QlikSim  # noqa: E402
from udp_sender import Sender, join, task_fields  # noqa: E402

A1 = "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c01"
EXEC_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
FILE_REF = "5f7e4b8a-2c1d-4e3f-9a8b-7c6d5e4f3a2b"
RESULT_ID = "9c8b7a6d-5e4f-4321-8a9b-0c1d2e3f4a5b"
HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED = os.path.join(HERE, "alerts")
SCRIPT_LOG = ("2026-11-22 23:48:11 0001  LOAD * FROM [lib://Data/sales.qvd] (qvd);\r\n"
              "2026-11-22 23:49:52       Error: Cannot open file 'lib://Data/sales.qvd'\r\n"
              "2026-11-22 23:49:52       Execution Failed\r\n"
              "2026-11-22 23:49:53       Execution finished.\r\n")


def alert_fixture(log=SCRIPT_LOG):
    """The simulator's fixture with T1's last run failed and a script log."""
    with open(FIXTURE, encoding="utf-8") as f:
        fx = json.load(f)
    fx = copy.deepcopy(fx)
    t = next(t for t in fx["tasks"] if t["id"] == T1)
    t["operational"]["lastExecutionResult"] = {
        "id": RESULT_ID, "fileReferenceID": FILE_REF, "status": 8,
        "startTime": "2026-11-22T22:48:10.000Z", "stopTime": "2026-11-22T22:49:53.000Z",
        "duration": 103000, "executingNodeName": "sense1", "scriptLogSize": 234,
        "details": [
            {"detailsType": 2, "message": "Changing task state from Started to FinishedFail",
             "detailCreatedDate": "2026-11-22T22:49:53.000Z"},
            {"detailsType": 2, "message": "Changing task state from Triggered to Started",
             "detailCreatedDate": "2026-11-22T22:48:10.010Z"}]}
    fx["scriptLogs"] = {T1: log}
    return fx


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture
def sim(certs):
    s = QlikSim(fixture_path=alert_fixture(), certs_dir=os.path.dirname(certs["root.pem"]))
    s.start()
    yield s
    s.stop()


class Hook(Receiver):
    """A receiver answering STATUS (200 by default; a callable gets the request)."""

    def __init__(self, status=200, body=b"ok"):
        self.status, self.body = status, body
        self.cond = threading.Condition()
        super().__init__()

    def answer(self, req):
        st = self.status(req) if callable(self.status) else self.status
        if isinstance(st, tuple) or st is HANG:
            return st
        with self.cond:
            self.cond.notify_all()
        return st, None, [("Content-Length", str(len(self.body)))], self.body

    def wait(self, n, timeout=10.0):
        ok = harness.wait_until(lambda: len(self.requests) >= n, timeout)
        assert ok, "receiver got %d requests, want %d" % (len(self.requests), n)
        return list(self.requests)


@pytest.fixture
def hooks():
    made = []

    def make(*a, **kw):
        h = Hook(*a, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def chat_kind(url, **kw):
    k = {"enable": True, "webhookURL": url, "messageType": "basic", "rateLimit": 0,
         "headScriptLogLines": 15, "tailScriptLogLines": 15}
    k.update(kw)
    return k


def webhooks(*hooks_):
    items = ", ".join('{ description = "d"; webhookURL = "%s"; httpMethod = "%s"; }' % h
                      for h in hooks_)
    return Raw("( %s )" % items)


def alert_overrides(sim, certs, spool, slack=None, teams=None, hooks_=None, rate=0, **notify):
    port = free_udp_port()
    n = {"spoolDirectory": str(spool), "timeZone": "Europe/Stockholm",
         "retryInitialSeconds": 1, "retryMaxSeconds": 2}
    n.update(notify)
    ov = {"Butler": {
        "udpServerConfig": {"enable": True, "serverHost": "127.0.0.1", "portTaskFailure": port},
        "qlikSenseUrls": {"qmc": "https://sense.acme.local/qmc",
                          "hub": "https://sense.acme.local/hub",
                          "appBaseUrl": "https://sense.acme.local/sense/app"},
        "genericUrls": Raw('( { id = "runbook"; linkText = "Runbook"; comment = "c"; '
                           'url = "https://wiki.acme.local/runbook"; } )')},
        "butlerd": {"notifications": n, "qrs": {"timeoutMs": 3000, "connectTimeoutMs": 1000}}}
    if slack:
        ov["Butler"]["slackNotification"] = {"enable": True, "reloadTaskFailure": slack}
    if teams:
        ov["Butler"]["teamsNotification"] = {"enable": True, "reloadTaskFailure": teams}
    if hooks_:
        ov["Butler"]["webhookNotification"] = {"enable": True, "reloadTaskFailure": {
            "rateLimit": rate, "webhooks": webhooks(*hooks_)}}
    harness.merge(ov, qrs_overrides(sim, certs))
    return ov, port


def start_alerts(start_daemon, sim, certs, spool, **kw):
    ov, port = alert_overrides(sim, certs, spool, **kw)
    d = start_daemon(ov, workers=1)
    d.udp = Sender(port)
    d.spool = str(spool)
    return d


def failed(d, task_name="Reload task of App1", message="Max retries reached", **kw):
    fields = task_fields("failed", task_name=task_name, task_id=T1, app_id=A1,
                         app_name="App1", log_time="2026-11-22 23:49:53,123", level="ERROR",
                         message=message, **kw)
    d.udp.send(join(fields))
    return fields


def spool_files(spool, sub):
    return sorted(glob.glob(os.path.join(str(spool), sub, "*.json")))


def expected(name):
    with open(os.path.join(EXPECTED, name), "rb") as f:
        return f.read().rstrip(b"\n")
