"""Reload alerts by e-mail through the alert pipeline and the outbox (issue 14;
butlerd(8), Alerts, E-mail alerts, Outbox): a failed-reload UDP event becomes one
e-mail per recipient (the static list, a task custom property, the app owner from
QRS), delivered over STARTTLS with AUTH to a real SMTP server (python3-aiosmtpd,
the server of test_mail.py); duplicates are removed and invalid addresses skipped;
a repeat inside the rate-limit window is not sent; an SMTP server that is down is
retried from the outbox; a 550 to RCPT TO is a dead letter; a successful reload
gives an e-mail when reloadTaskSuccess is enabled; a broken template stops -t."""

import email
import email.header
import json
import os
import re

import pytest

import harness
from alertfix import (A1, T1, QlikSim, Sender, alert_fixture, alert_overrides, certs,  # noqa: F401
                      spool_files, task_fields, join)
from taskfix import SIM_DIR  # noqa: F401

test_mail = pytest.importorskip("test_mail")  # skips when aiosmtpd is missing
from test_mail import PASSWORD, USER, Server, self_signed  # noqa: E402

FROM = "Qlik Sense (no-reply) <qliksense-noreply@acme.local>"
CP = "Butler_FailedAlertSendToEmail"
TASK = "F\u00f6rs\u00e4ljning & <Q4>"
TEMPLATE = ("<p>Task {{taskName}} {{executionStatusText}}</p>\n"
            "<p>Owner {{appOwnerName}} ({{appOwnerEmail}})</p>\n")
BODY = ("<p>Task F\u00f6rs\u00e4ljning &amp; &lt;Q4&gt; %s</p>\r\n"
        "<p>Owner Joe Smith (joe.smith@example.com)</p>\r\n")


def mail_fixture(status=8):
    """The alert fixture with address custom properties on T1 (one invalid) and a
    second e-mail attribute of the app owner."""
    fx = alert_fixture()
    t = next(t for t in fx["tasks"] if t["id"] == T1)
    t["customProperties"] = [
        {"definition": {"name": CP}, "value": " cp.person@acme.local "},
        {"definition": {"name": CP}, "value": "Ops@acme.local"},
        {"definition": {"name": CP}, "value": "not an address"},
        {"definition": {"name": "Other"}, "value": "other@acme.local"}]
    t["operational"]["lastExecutionResult"]["status"] = status
    joe = next(u for u in fx["users"] if u["userId"] == "joe")
    joe["attributes"].append({"id": "1d6f0e1c-2b3a-4c5d-8e9f-0a1b2c3d4e5f",
                              "attributeType": "email", "attributeValue": "joe@lab.acme.local",
                              "externalId": "joe"})
    return fx


def make_sim(certs, status):
    s = QlikSim(fixture_path=mail_fixture(status), certs_dir=os.path.dirname(certs["root.pem"]))
    s.start()
    return s


@pytest.fixture
def msim(certs):
    s = make_sim(certs, 8)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def smtp_tls(tmp_path_factory):
    return self_signed(str(tmp_path_factory.mktemp("smtp-pki")), "localhost", "IP:127.0.0.1")[1]


def smtp_server(tls, port=None, monkeypatch=None):
    """test_mail's server with STARTTLS required and AUTH, on PORT if given."""
    if port:
        monkeypatch.setattr(test_mail, "free_port", lambda: port)
    return Server(tls_context=tls, require_starttls=True, auth=True)


@pytest.fixture
def smtp(smtp_tls):
    s = smtp_server(smtp_tls)
    yield s
    s.stop()


def mail_kind(tpl_dir, name="failed", **kw):
    (tpl_dir / (name + ".handlebars")).write_text(TEMPLATE, encoding="utf-8")
    k = {"enable": True, "rateLimit": 0, "priority": "high",
         "subject": "Reload %s: \"{{taskName}}\"" % name, "bodyFileDirectory": str(tpl_dir),
         "htmlTemplateFile": name, "fromAddress": FROM, "recipients": ["ops@acme.local"],
         "alertEnabledByEmailAddress": {"customPropertyName": ""}}
    k.update(kw)
    return k


def start_mail(start_daemon, sim, certs, tmp_path, port, **kinds):
    ov, udp = alert_overrides(sim, certs, tmp_path / "spool", smtpTimeoutSeconds=10)
    ov["Butler"]["emailNotification"] = dict(
        enable=True, smtp={"host": "127.0.0.1", "port": port,
                           "tls": {"rejectUnauthorized": False},
                           "auth": {"enable": True, "user": USER, "password": PASSWORD}},
        **kinds)
    d = start_daemon(ov, workers=1)
    d.udp = Sender(udp)
    d.spool = str(tmp_path / "spool")
    return d


def send(d, kind="failed", **kw):
    f = task_fields(kind, task_name=TASK, task_id=T1, app_id=A1, app_name="App1", **kw)
    d.udp.send(join(f))
    return f


def stats(d, kind="reloadTaskFailure"):
    cp = harness.run_cli(["-S", "-c", d.config_path])
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)["alerts"]["email"][kind]


def counted(d, n, what, kind="reloadTaskFailure", timeout=20):
    ok = harness.wait_until(lambda: stats(d, kind)[what] >= n, timeout, interval=0.2)
    assert ok, "%s: %s\n%s" % (what, stats(d, kind), d.log_tail())


def decoded(value):
    return str(email.header.make_header(email.header.decode_header(value)))


def test_one_mail_per_recipient_with_headers_and_body(start_daemon, msim, certs, smtp,
                                                      tmp_path):
    k = mail_kind(tmp_path, recipients=["ops@acme.local", "OPS@ACME.LOCAL"], rateLimit=300,
                  alertEnabledByEmailAddress={"customPropertyName": CP},
                  appOwnerAlert={"enable": True})
    d = start_mail(start_daemon, msim, certs, tmp_path, smtp.port, reloadTaskFailure=k)
    send(d)
    counted(d, 4, "delivered")
    got = smtp.rec.got
    # custom property first, then the static list, then every address of the owner;
    # case-insensitive duplicates removed keeping the first; the invalid value
    # skipped with a warning
    assert sorted(g["to"][0] for g in got) == sorted(
        ["cp.person@acme.local", "Ops@acme.local", "joe.smith@example.com",
         "joe@lab.acme.local"])
    assert d.find('"not an address"')
    ids = set()
    for g in got:
        assert g["tls"] and g["auth"] and len(g["to"]) == 1
        assert g["from"] == "qliksense-noreply@acme.local"
        m = email.message_from_bytes(g["content"])
        assert m["From"] == "\"Qlik Sense (no-reply)\" <qliksense-noreply@acme.local>"
        assert m["To"] == g["to"][0]
        assert decoded(m["Subject"]) == "Reload failed: \"%s\"" % TASK   # text mode
        assert re.fullmatch(r"<[0-9a-f]+@acme\.local>", m["Message-ID"]), m["Message-ID"]
        ids.add(m["Message-ID"])
        assert (m["X-Priority"], m["Importance"]) == ("1 (Highest)", "High")
        assert m["Content-Type"] == "text/html; charset=utf-8"
        assert m.get_payload(decode=True).decode("utf-8") == BODY % "FinishedFail"
    assert len(ids) == 4
    assert spool_files(d.spool, "queue") == []
    # a repeat inside the window: each recipient rate-limited, nothing sent
    mark = d.mark()
    send(d)
    d.wait_log("notify rate-limited dest=email", 20, start=mark, count=4)
    assert stats(d)["rate_limited"] == 4 and stats(d)["queued"] == 4
    assert len(smtp.rec.got) == 4


def test_smtp_down_then_back_delivers_once(start_daemon, msim, certs, smtp_tls, tmp_path,
                                           monkeypatch):
    port = harness.free_port()                   # nothing listens there yet
    d = start_mail(start_daemon, msim, certs, tmp_path, port,
                   reloadTaskFailure=mail_kind(tmp_path))
    send(d)
    d.wait_log("notify retry id=", 20)
    assert len(spool_files(d.spool, "queue")) == 1
    srv = smtp_server(smtp_tls, port, monkeypatch)
    try:
        counted(d, 1, "delivered")
        assert [g["to"] for g in srv.rec.got] == [["ops@acme.local"]]
        assert spool_files(d.spool, "queue") == []
        assert stats(d)["retried"] >= 1 and stats(d)["dead"] == 0
    finally:
        srv.stop()


def test_550_to_rcpt_is_a_dead_letter(start_daemon, msim, certs, smtp, tmp_path):
    d = start_mail(start_daemon, msim, certs, tmp_path, smtp.port,
                   reloadTaskFailure=mail_kind(tmp_path, recipients=["reject@acme.local"]))
    send(d)
    counted(d, 1, "dead")
    dead = spool_files(d.spool, "dead")
    assert len(dead) == 1
    with open(dead[0], encoding="utf-8") as f:
        text = f.read()
    entry = json.loads(text)
    assert "550" in entry["deadReason"], entry["deadReason"]
    assert entry["destination"] == "email" and entry["target"] == "reject@acme.local"
    req = entry["request"]
    assert (req["from"], req["to"]) == ("qliksense-noreply@acme.local", "reject@acme.local")
    assert req["message"].startswith("From: ")
    assert PASSWORD not in text                  # SMTP settings are read at send time
    assert smtp.rec.got == []


def test_success_mail_when_enabled(start_daemon, certs, smtp, tmp_path):
    sim = make_sim(certs, 7)                     # QRS has the successful run
    try:
        k = mail_kind(tmp_path, name="succeeded")
        d = start_mail(start_daemon, sim, certs, tmp_path, smtp.port, reloadTaskSuccess=k)
        send(d, "success")
        send(d, "success-shipped")               # the shipped appender's type
        counted(d, 2, "delivered", "reloadTaskSuccess")
        for g in smtp.rec.got:
            m = email.message_from_bytes(g["content"])
            assert decoded(m["Subject"]) == "Reload succeeded: \"%s\"" % TASK
            assert m.get_payload(decode=True).decode("utf-8") == BODY % "FinishedSuccess"
        assert len(smtp.rec.got) == 2
        assert stats(d, "reloadTaskFailure")["queued"] == 0
    finally:
        sim.stop()


def test_success_is_only_logged_when_not_enabled(start_daemon, msim, certs, smtp, tmp_path):
    d = start_mail(start_daemon, msim, certs, tmp_path, smtp.port,
                   reloadTaskFailure=mail_kind(tmp_path))
    mark = d.mark()
    send(d, "success")
    d.wait_log("reload task succeeded", 10, start=mark)
    send(d)                                      # the failure after it is mailed
    counted(d, 1, "delivered")
    assert stats(d, "reloadTaskSuccess")["queued"] == 0 and len(smtp.rec.got) == 1


def test_configuration_test_reports_email_template_errors(tmp_path):
    (tmp_path / "failed.handlebars").write_text("<p>\n  {{#if taskName}}x\n")
    conf = tmp_path / "butlerd.conf"
    conf.write_text("""Butler = {
  emailNotification = {
    enable = true;
    smtp = { host = "127.0.0.1"; };
    reloadTaskFailure = {
      enable = true;
      subject = "Reload {{taskName";
      fromAddress = "ops@acme.local";
      recipients = [ "ops@acme.local" ];
      bodyFileDirectory = "%s"; htmlTemplateFile = "failed";
    };
  };
};
""" % tmp_path)
    cp = harness.run_cli(["-t", "-c", str(conf)])
    assert cp.returncode == 1, cp
    k = "Butler.emailNotification.reloadTaskFailure."
    assert "%s:7: %ssubject:1:" % (conf, k) in cp.stderr, cp.stderr
    assert re.search(r"%s:10: %s\d+:\d+: " % (re.escape(str(conf)),
                                               re.escape(str(tmp_path / "failed.handlebars") + ":")),
                     cp.stderr), cp.stderr


def test_success_waits_for_qrs_to_know_the_run(start_daemon, msim, certs, smtp, tmp_path):
    # QRS still shows the failed run: asked again within the 3 attempts, then sent
    d = start_mail(start_daemon, msim, certs, tmp_path, smtp.port,
                   reloadTaskSuccess=mail_kind(tmp_path, name="succeeded"))
    send(d, "success")
    counted(d, 1, "delivered", "reloadTaskSuccess")
    asked = [r for r in msim.requests if r.path == "/qrs/reloadtask/" + T1]
    assert len(asked) == 3, [r.path for r in msim.requests]
    body = email.message_from_bytes(smtp.rec.got[0]["content"]).get_payload(decode=True)
    assert body.decode("utf-8") == BODY % "FinishedFail"
