"""Reload alerts over HTTP (issue 14; butlerd(8), Alerts): a failed-reload UDP
event becomes Slack, Teams and webhook requests, byte for byte as the files in
alerts/ (written by hand from the specification); the context gathered from
the Qlik Sense simulator (execution result, script log head and tail, app
owner) reaches the templates with Butler's field names; hostile values give
valid JSON; a failing QRS call degrades the alert instead of dropping it; a
repeat inside the rate-limit window is dropped and counted."""

import json
import signal
import os

import harness
from harness import Raw
from alertfix import (A1, EXEC_ID, EXPECTED, SCRIPT_LOG, T1, alert_fixture, certs,  # noqa: F401
                      Sender, alert_overrides, chat_kind, expected, failed, hooks, join, sim,
                      start_alerts, task_fields)


def stats(d):
    cp = harness.run_cli(["-S", "-c", d.config_path])
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)["alerts"]


def test_failed_reload_gives_slack_teams_and_webhook_requests(start_daemon, sim, certs, hooks,
                                                               tmp_path):
    slack, teams, web = hooks(), hooks(202, b""), hooks()
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     slack=chat_kind(slack.base + "/services/T0/B0/X", channel="sense-alerts",
                                     iconEmoji=":ghost:"),
                     teams=chat_kind(teams.base + "/workflow?sig=1"),
                     hooks_=[(web.base + "/hook?code=abc", "POST"),
                             (web.base + "/get?code=abc", "get")])
    failed(d, task_name="Sales & margin <Q4>", execution_id=EXEC_ID)
    s, t = slack.wait(1), teams.wait(1)
    w = sorted(web.wait(2), key=lambda r: r["method"])
    assert s[0]["method"] == "POST" and s[0]["path"] == "/services/T0/B0/X"
    assert s[0]["headers"]["Content-Type"] == "application/json"
    assert s[0]["headers"]["User-Agent"].startswith("butlerd/")
    assert s[0]["body"] == expected("slack-basic.json")
    assert t[0]["path"] == "/workflow?sig=1"
    assert t[0]["body"] == expected("teams-adaptive.json")
    assert (w[0]["method"], w[0]["body"]) == ("GET", b"")
    assert w[0]["path"].encode() == expected("webhook-get.txt")
    assert (w[1]["method"], w[1]["path"]) == ("POST", "/hook?code=abc")
    assert w[1]["body"] == expected("webhook-post.json")
    assert harness.wait_until(lambda: d.find("notify delivered") and
                              len(d.log().split("notify delivered")) == 5, 5)
    st = stats(d)
    assert st["slack"]["reloadTaskFailure"]["delivered"] == 1
    assert st["webhook"]["reloadTaskFailure"]["queued"] == 2
    assert os.listdir(os.path.join(d.spool, "queue")) == []
    # the QRS calls of the pipeline, each listed in the QRS API
    paths = [r.path for r in sim.requests]
    for p in ("/qrs/task", "/qrs/task/full", "/qrs/app/full", "/qrs/reloadtask/" + T1,
              "/qrs/reloadtask/%s/scriptlog" % T1, "/qrs/app/" + A1):
        assert p in paths, paths
    assert any(p.startswith("/qrs/download/reloadtask/") and p.endswith("/scriptlog.txt")
               for p in paths)
    assert all(r.status == 200 for r in sim.requests), sim.requests


def test_teams_messagecard_option(start_daemon, sim, certs, hooks, tmp_path):
    teams = hooks(202, b"")
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     teams=chat_kind(teams.base + "/t"), teamsBasicCard="messagecard")
    failed(d, task_name="Sales & margin <Q4>")
    assert teams.wait(1)[0]["body"] == expected("teams-messagecard.json")


def probe(start_daemon, sim, certs, hooks, tmp_path, **kind):
    """butlerd with a formatted Teams alert whose template echoes context fields."""
    teams = hooks(202, b"")
    k = chat_kind(teams.base + "/t", messageType="formatted",
                  templateFile=os.path.join(EXPECTED, "probe.handlebars"))
    k.update(kind)
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool", teams=k)
    return d, teams


def test_context_from_qrs_with_butlers_field_names(start_daemon, sim, certs, hooks, tmp_path):
    d, teams = probe(start_daemon, sim, certs, hooks, tmp_path, headScriptLogLines=2,
                     tailScriptLogLines=3)
    failed(d, execution_id=EXEC_ID)
    got = json.loads(teams.wait(1)[0]["body"])
    assert got["taskName"] == "Reload task of App1"
    assert got["user"] == "INTERNAL/sa_scheduler"          # Teams: '\' -> '/'
    assert got["status"] == "FinishedFail 8"
    assert got["duration"] == "0:1:43"
    assert got["start"] == ("2026-11-22T22:48:10.000Z|2026-11-22 23:48:10|11/22/2026, 11:48:10 PM|"
                            "Nov 22, 2026, 11:48:10 PM|November 22, 2026 at 11:48:10 PM GMT+1")
    # details sorted by date; concatenated with TAB and LF
    assert got["details"] == ("2026-11-22 23:48:10 Changing task state from Triggered to Started;"
                              "2026-11-22 23:49:53 Changing task state from Started to FinishedFail;")
    assert got["concat"] == ("2026-11-22T22:48:10.010Z\tChanging task state from Triggered to "
                             "Started\n2026-11-22T22:49:53.000Z\tChanging task state from Started "
                             "to FinishedFail\n")
    lines = SCRIPT_LOG.split("\r\n")                         # 5: the last one empty
    assert got["log"] == "true 234 5 %d 2 3" % len(SCRIPT_LOG)
    assert got["head"] == "\n".join(lines[:2])               # CR removed for Teams
    assert got["tail"] == "\n".join(lines[-3:])
    assert got["owner"] == "Joe Smith|joe|LAB|joe.smith@example.com"
    assert got["app"] == "https://sense.acme.local/sense/app/%s|Everyone|1048576|Sales" % A1
    assert got["task"] == "Never|1440|INTERNAL\\sa_repository"
    assert got["links"] == "https://sense.acme.local/qmc|https://sense.acme.local/hub"
    assert got["generic"] == "runbook Runbook c https://wiki.acme.local/runbook;"
    assert got["ids"] == "%s|%s|%s" % (T1, A1, EXEC_ID)


def test_hostile_values_give_valid_json(start_daemon, sim, certs, hooks, tmp_path):
    # (a UDP field cannot hold ';' or control characters: those go into the log)
    nasty = 'Q"uote \\back\\slash <b>&amp Ümlaut 日本 {{x}}'
    log = "line \"1\" \\ C:\\new\r\n<tab>\there \x01\x1f;\r\nÅ & </pre> {{x}}\r\n"
    sim.script_logs[T1.lower()] = log
    slack_hook = hooks()
    d, teams = probe(start_daemon, sim, certs, hooks, tmp_path)
    # a formatted Slack alert from the shipped sample template as well
    d.stop()
    slack_tpl = os.path.join(EXPECTED, "..", "..", "..", "contrib", "templates", "slack",
                             "failed-reload.handlebars")
    slack = chat_kind(slack_hook.base + "/s", messageType="formatted", templateFile=slack_tpl)
    k = chat_kind(teams.base + "/t", messageType="formatted",
                  templateFile=os.path.join(EXPECTED, "probe.handlebars"))
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool2", teams=k, slack=slack)
    failed(d, task_name=nasty, message='Error "x" \\ <y>')
    got = json.loads(teams.wait(1)[0]["body"])
    assert got["taskName"] == nasty
    assert got["head"] == log.replace("\r", "")
    body = slack_hook.wait(1)[0]["body"]
    assert isinstance(json.loads(body), dict)


def test_script_log_from_the_second_endpoint_when_the_first_fails(start_daemon, sim, certs,
                                                                  hooks, tmp_path):
    sim.set_behaviour(r"/scriptlog\Z", status=404)
    d, teams = probe(start_daemon, sim, certs, hooks, tmp_path)
    failed(d)
    got = json.loads(teams.wait(1, 15)[0]["body"])
    assert got["log"].startswith("true 234 5 ")
    assert any(r.path.endswith("/scriptlogfile") for r in sim.requests)


def test_failing_lookups_degrade_the_alert(start_daemon, sim, certs, hooks, tmp_path):
    # no execution result, no script log, no owner: the alert still goes out
    sim.set_behaviour(r"/qrs/reloadtask/", status=500)
    sim.set_behaviour(r"/qrs/app/[0-9a-f-]+\Z", status=500)
    d, teams = probe(start_daemon, sim, certs, hooks, tmp_path)
    failed(d)
    got = json.loads(teams.wait(1, 20)[0]["body"])
    assert got["status"] == " " and got["duration"] == "::"
    assert got["log"] == "false 0 0 0 15 15"
    assert got["head"] == got["tail"] == ""
    assert got["owner"] == "|||"
    assert "alert: GET /qrs/reloadtask/%s: HTTP 500" % T1 in d.log()


def test_qrs_down_still_alerts_with_the_udp_fields(start_daemon, sim, certs, hooks, tmp_path):
    web = hooks()
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     hooks_=[(web.base + "/h", "POST")])
    sim.stop()
    failed(d, task_name="Nightly")
    got = json.loads(web.wait(1, 15)[0]["body"])
    assert got["taskName"] == "Nightly" and got["appId"] == A1
    assert got["appOwnerName"] == "" and got["appOwnerEmail"] == ""
    assert d.log().count("QRS request failed") == 1         # the circuit breaker


def test_unknown_task_gives_no_alert(start_daemon, sim, certs, hooks, tmp_path):
    web = hooks()
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     hooks_=[(web.base + "/h", "POST")])
    d.udp.send(join(task_fields("failed", task_id="9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
                                app_id=A1)))
    d.wait_log("does not exist in Sense", 10)
    failed(d, task_name="marker")
    got = web.wait(1)
    assert len(got) == 1 and json.loads(got[0]["body"])["taskName"] == "marker"


def test_rate_limited_repeat_is_dropped_and_counted(start_daemon, sim, certs, hooks, tmp_path):
    web = hooks()
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     hooks_=[(web.base + "/h", "POST"), (web.base + "/g", "GET")], rate=3600)
    failed(d, message="first")
    web.wait(2)
    failed(d, message="second")
    d.wait_log("notify rate-limited dest=webhook kind=reloadTaskFailure task=%s" % T1, 10)
    assert len(web.requests) == 2
    st = stats(d)["webhook"]["reloadTaskFailure"]
    assert st["rate_limited"] == 1 and st["queued"] == 2


def test_rate_limit_is_shared_across_a_reload(start_daemon, sim, certs, hooks, tmp_path):
    # the window lives in shared memory: the events process of the new generation
    # sees the window the old one opened
    web = hooks()
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     hooks_=[(web.base + "/h", "POST")], rate=3600)
    failed(d, message="first")
    web.wait(1)
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded", 10, start=mark)
    d.wait_log("events process pid", 10, start=mark)
    failed(d, message="second")
    d.wait_log("notify rate-limited dest=webhook", 10, start=mark)
    assert len(web.requests) == 1
    # the delivery process was replaced, one after the other, and still delivers
    d.wait_log("delivery process pid", 10, start=mark, count=2)
    d.udp.send(join(task_fields("failed", task_id="7552d9fc-d1bb-4975-9a38-18357de531ea",
                                app_id="3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c02",
                                message="other task")))
    assert json.loads(web.wait(2)[1]["body"])["logMessage"] == "other task"


def test_config_check_reports_every_alert_problem_with_its_line(tmp_path):
    bad_tpl = tmp_path / "bad.handlebars"
    bad_tpl.write_text('{"text": "{{#each appTags}}{{this}}"}\n{{/if}}\n')
    conf = tmp_path / "butlerd.conf"
    conf.write_text("""Butler = {
  qlikSenseUrls = { qmc = "ftp://x"; hub = ""; };
  slackNotification = {
    enable = true;
    reloadTaskFailure = { enable = true; webhookURL = "hooks.slack.com/x";
      messageType = "basic";
      basicMsgTemplate = "failed: {{taskName";
    };
    reloadTaskAborted = { enable = true; webhookURL = "https://h/x"; messageType = "formatted";
      templateFile = "%s";
    };
  };
  teamsNotification = { enable = true;
    reloadTaskFailure = { enable = true; webhookURL = "https://h/t"; messageType = "formatted";
      templateFile = "%s/missing.handlebars"; };
  };
  webhookNotification = { enable = true;
    reloadTaskFailure = { webhooks = ( { webhookURL = "https://h/w"; httpMethod = "PATCH"; } ); };
  };
};
butlerd = { notifications = { teamsBasicCard = "card"; spoolDirectory = "%s"; }; };
""" % (bad_tpl, tmp_path, tmp_path / "spool"))
    cp = harness.run_cli(["-t", "-c", str(conf)])
    assert cp.returncode == 1, cp
    err = cp.stderr
    p = str(conf)
    for want in ['%s:2: Butler.qlikSenseUrls.qmc is not an absolute' % p,
                 '%s:5: Butler.slackNotification.reloadTaskFailure.webhookURL is not' % p,
                 '%s:7: Butler.slackNotification.reloadTaskFailure.basicMsgTemplate:1:9: ' % p,
                 '%s:10: %s:2:1: {{/if}} does not close {{#each}} opened at 1:11' % (p, bad_tpl),
                 '%s:15: Butler.teamsNotification.reloadTaskFailure.templateFile: cannot read' % p,
                 '%s:18: Butler.webhookNotification.reloadTaskFailure.webhooks[0].httpMethod '
                 'must be GET, POST or PUT' % p,
                 '%s:21: butlerd.notifications.teamsBasicCard must be' % p]:
        assert want in err, "missing %r in:\n%s" % (want, err)


def https_hook(hooks, certs):
    import ssl
    h = hooks()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["server.pem"], certs["server_key.pem"])
    h.server.socket = ctx.wrap_socket(h.server.socket, server_side=True)
    return h, "https://127.0.0.1:%d" % h.port


def test_webhook_with_its_own_ca_and_without_verification(start_daemon, sim, certs, hooks,
                                                          tmp_path):
    good, gurl = https_hook(hooks, certs)
    nover, nurl = https_hook(hooks, certs)
    system, surl = https_hook(hooks, certs)
    ov_hooks = Raw(
        '( { webhookURL = "%s/ca"; httpMethod = "POST"; cert = { enable = true; '
        'rejectUnauthorized = true; certCA = "%s"; }; },'
        '  { webhookURL = "%s/nv"; httpMethod = "PUT"; cert = { enable = true; '
        'rejectUnauthorized = false; certCA = "%s"; }; },'
        '  { webhookURL = "%s/sys"; httpMethod = "POST"; } )'
        % (gurl, certs["root.pem"], nurl, certs["other_root.pem"], surl))
    ov, port = alert_overrides(sim, certs, tmp_path / "spool", hooks_=[(gurl + "/x", "POST")])
    ov["Butler"]["webhookNotification"]["reloadTaskFailure"]["webhooks"] = ov_hooks
    d = start_daemon(ov, workers=1)
    d.udp = Sender(port)
    failed(d)
    assert good.wait(1)[0]["path"] == "/ca"
    assert nover.wait(1)[0]["method"] == "PUT"
    # the system store does not know the test CA: a TLS failure, retried
    d.wait_log("notify retry id=", 10)
    assert system.requests == []
    assert "SSL" in d.log() or "certificate" in d.log()


def test_aborted_reload_and_local_times_in_another_zone(start_daemon, sim, certs, hooks,
                                                        tmp_path):
    web, teams = hooks(), hooks(202, b"")
    k = chat_kind(teams.base + "/t", messageType="formatted",
                  templateFile=os.path.join(EXPECTED, "probe.handlebars"))
    ov, port = alert_overrides(sim, certs, tmp_path / "spool", timeZone="Asia/Kolkata")
    ov["Butler"]["teamsNotification"] = {"enable": True, "reloadTaskAborted": k}
    ov["Butler"]["webhookNotification"] = {"enable": True, "reloadTaskAborted": {
        "rateLimit": 0, "webhooks": Raw('( { webhookURL = "%s/a"; httpMethod = "PUT"; } )'
                                        % web.base)}}
    d = start_daemon(ov, workers=1)
    d.udp = Sender(port)
    d.udp.send(join(task_fields("aborted", task_id=T1, app_id=A1)))
    got = json.loads(teams.wait(1)[0]["body"])
    assert got["start"].endswith("|2026-11-23 04:18:10|11/23/2026, 4:18:10 AM|"
                                 "Nov 23, 2026, 4:18:10 AM|November 23, 2026 at 4:18:10 AM GMT+5:30")
    w = web.wait(1)[0]
    assert w["method"] == "PUT" and json.loads(w["body"])["event"] == "Qlik Sense reload aborted"


def test_a_hanging_destination_does_not_hold_up_the_others(start_daemon, sim, certs, hooks,
                                                           tmp_path):
    from receiver import HANG
    slow, web = hooks(lambda r: HANG), hooks()
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     slack=chat_kind(slow.base + "/s"), hooks_=[(web.base + "/h", "POST")],
                     httpTimeoutSeconds=30)
    for i in range(6):                 # more Slack posts than places (maxConcurrent 4)
        failed(d, message="m%d" % i)
    web.wait(6, 10)                    # while the Slack posts still hang
    assert len(slow.requests) == 2     # one target gets at most half the places
    assert stats(d)["slack"]["reloadTaskFailure"]["delivered"] == 0
    slow.release.set()


def test_long_script_log_is_cut_for_teams(start_daemon, sim, certs, hooks, tmp_path):
    lines = ["%04d %s" % (i, "x" * 95) for i in range(40)]
    sim.script_logs[T1.lower()] = "\r\n".join(lines)
    d, teams = probe(start_daemon, sim, certs, hooks, tmp_path, headScriptLogLines=40,
                     tailScriptLogLines=40)
    failed(d)
    got = json.loads(teams.wait(1)[0]["body"])
    whole = "\n".join(lines)                       # 3999 characters
    assert got["head"] == whole[:2900] + "\n----Script log truncated by Butler----"
    assert got["tail"] == "----Script log truncated by Butler----\n" + whole[-2900:]


def test_http_timeout_is_a_transient_failure(start_daemon, sim, certs, hooks, tmp_path):
    from receiver import HANG
    slow = hooks(lambda r: HANG)
    d = start_alerts(start_daemon, sim, certs, tmp_path / "spool",
                     hooks_=[(slow.base + "/h", "POST")], httpTimeoutSeconds=1)
    failed(d)
    d.wait_log("Timeout was reached", 10)
    assert "notify retry id=" in d.log()
    slow.release.set()
