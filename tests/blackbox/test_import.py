"""butlerd-import (butlerd-import(8), issue 18): Butler YAML configuration and
schedule files converted for butlerd. Every valid fixture in tests/import gives a
file `butlerd -t` accepts and a daemon that behaves like the hand-written
equivalent; every broken one gives file:line, exit 1 and writes nothing. The
schedule file converts with months renumbered and loads in the scheduler."""

import json
import os
import re
import stat
import subprocess
import time

import pytest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "import"))
VALID = ["butler16.yaml", "styles.yaml"]
# fixture -> the line the error must name
BROKEN = {
    "broken-indent.yaml": 5,
    "broken-tab.yaml": 4,
    "broken-duplicate.yaml": 6,
    "broken-type.yaml": 5,
    "broken-nobutler.yaml": 2,
    "broken-aliasbomb.yaml": None,
    "broken-deep.yaml": 2,
    "broken-encoding.yaml": 3,
}
# secret values in the fixtures: in the converted file, never in the report
SECRETS = ["nr-insert-key-0001", "nr-insert-key-0002", "smtp-secret-123", "XXXXXXXX",
           "joesecret", "hook?code=abc", "secret-key-42", "FOLDED", "webhookb2/teams"]


def importer():
    return os.environ.get("BUTLERD_IMPORT") or os.path.join(
        os.path.dirname(harness.binary()), "butlerd-import")


def run(args, timeout=30):
    return subprocess.run([importer()] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          text=True)


def fixture(name):
    return os.path.join(FIXTURES, name)


def convert(tmp_path, name, text=None):
    """Converts fixture NAME (or TEXT saved under that name) into tmp_path; returns
    (output path, CompletedProcess)."""
    src = fixture(name)
    if text is not None:
        src = os.path.join(str(tmp_path), name)
        harness.write_file(src, text)
    out = os.path.join(str(tmp_path), name + ".conf")
    return out, run(["-o", out, src])


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------- valid files

@pytest.mark.parametrize("name", VALID)
def test_output_passes_configtest(tmp_path, name):
    out, r = convert(tmp_path, name)
    assert r.returncode == 0, r.stderr
    assert "converted to " + out in r.stderr
    t = harness.run_cli(["-t", "-c", out])
    assert t.returncode == 0, t.stderr
    assert "configuration OK" in t.stdout + t.stderr


@pytest.mark.parametrize("name", VALID)
def test_secrets_carried_over_never_reported(tmp_path, name):
    out, r = convert(tmp_path, name)
    assert r.returncode == 0, r.stderr
    text = read(out)
    assert "Secrets carried over (values not shown)" in r.stderr
    for s in SECRETS:
        assert s not in r.stderr
    assert any(s in text for s in SECRETS)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_report_sections_of_a_butler16_file(tmp_path):
    _, r = convert(tmp_path, "butler16.yaml")
    rep = r.stderr
    assert "Mapped (butlerd reads these keys)" in rep
    assert "  Butler.restServerConfig.serverPort\n" in rep
    assert "  Butler.startTaskFilter.allowTask.customProperty\n" in rep
    assert "Butler.influxDb: feature out of scope (InfluxDB)" in rep
    assert "Butler.serviceMonitor: Windows-only" in rep
    assert "Butler.restServerConfig.backgroundServerPort: replaced" in rep
    assert "Butler.fileLogging: replaced by butlerd.logging" in rep
    assert "Butler.emailNotification.serviceStopped: feature out of scope" in rep
    # the alert keys (notifications): accepted today, read once alerts land
    alerts = "Butler.emailNotification.smtp.host"
    assert alerts in rep
    assert "Butler.slackNotification.reloadTaskFailure.webhookURL" in rep
    assert "Butler.thirdPartyToolsCredentials.newRelic[].insertApiKey (line 91)" in rep
    assert "REST rate limit" in rep and "per" in rep
    assert "named a YAML file; it now names config/schedule.json" in rep


def test_differences_follow_the_file(tmp_path):
    """The start-task filter difference for MQTT shows only when both are on."""
    base = read(fixture("styles.yaml"))
    r = run(["--check", fixture("styles.yaml")])
    assert "applies to tasks started over MQTT" not in r.stderr
    on = base.replace("  mqttConfig:\n    enable: false", "  mqttConfig:\n    enable: true")
    src = os.path.join(str(tmp_path), "on.yaml")
    harness.write_file(src, on)
    r = run(["--check", src])
    assert r.returncode == 0, r.stderr
    assert "applies to tasks started over MQTT" in r.stderr


def test_yaml_styles_become_libconfig(tmp_path):
    out, r = convert(tmp_path, "styles.yaml")
    assert r.returncode == 0, r.stderr
    text = read(out)
    # Windows paths: backslashes escaped for libconfig
    assert 'qvdPath = "C:\\\\QlikSense\\\\QVD files";' in text
    assert 'toDirectory = "\\\\\\\\fileserver\\\\share\\\\qvd";' in text
    # anchors, aliases and a merge key
    assert text.count('name = "X-Qlik-User"') == 2
    assert text.count('fromDirectory = "D:\\\\qvd\\\\staging"') == 3
    # flow style, ~ and null, an empty list with a comment only, UTF-8
    assert 'cert = "";' in text and 'key = "";' in text
    assert "tag = [ ];" in text and "# - commented-out tag" in text
    assert '"tâches ñ 2"' in text and "Ünïcode account" in text
    # multi-line strings: literal keeps newlines, folded joins lines
    assert 'subject = "Reload failed: \\"{{taskName}}\\"\\nÜbersicht — see the log\\n";' in text
    # comments kept beside their keys
    assert 'logLevel = "verbose";  # chatty while we migrate' in text
    # the schedule file is now JSON
    assert 'configfile = "schedule.json";' in text
    assert "Butler.thisKeyIsNotButlers (line 95): not a key of Butler 8-16" in r.stderr
    assert "top-level key defaults: only Butler is read" in r.stderr


def test_output_to_stdout_and_check(tmp_path):
    r = run([fixture("styles.yaml")])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# butlerd configuration converted")
    assert "Butler = {" in r.stdout and "Mapped" in r.stderr
    c = run(["--check", fixture("styles.yaml")])
    assert c.returncode == 0 and c.stdout == ""
    assert "Mapped" in c.stderr and "converted to" not in c.stderr
    assert not [f for f in os.listdir(str(tmp_path))]


def test_existing_output_needs_force(tmp_path):
    out = os.path.join(str(tmp_path), "out.conf")
    harness.write_file(out, "keep me\n")
    r = run(["-o", out, fixture("styles.yaml")])
    assert r.returncode == 1
    assert "use --force" in r.stderr
    assert read(out) == "keep me\n"
    r = run(["-o", out, "--force", fixture("styles.yaml")])
    assert r.returncode == 0, r.stderr
    assert read(out).startswith("# butlerd configuration")
    assert sorted(os.listdir(str(tmp_path))) == ["out.conf"]


@pytest.mark.parametrize("args", [[], ["-x", "a.yaml"], ["--check", "-o", "x.conf", "a.yaml"],
                                  ["a.yaml", "b.yaml"], ["-s", "x.json", "a.yaml"]])
def test_usage_errors_exit_64(args):
    r = run(args)
    assert r.returncode == 64
    assert "usage: butlerd-import" in r.stderr


# ---------------------------------------------------------------- broken files

@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_file_names_the_line_and_writes_nothing(tmp_path, name):
    out = os.path.join(str(tmp_path), "out.conf")
    harness.write_file(out, "old\n")
    started = time.monotonic()
    r = run(["-o", out, "--force", fixture(name)])
    assert time.monotonic() - started < 20
    assert r.returncode == 1
    line = BROKEN[name]
    where = fixture(name) + ":" + (str(line) if line else "")
    assert where in r.stderr, r.stderr
    assert "nothing written" in r.stderr
    assert read(out) == "old\n"
    assert sorted(os.listdir(str(tmp_path))) == ["out.conf"]


def test_broken_messages_say_what_is_wrong():
    said = {n: run(["--check", fixture(n)]).stderr for n in BROKEN}
    assert "tab" in said["broken-tab.yaml"]
    assert "duplicate key serverPort" in said["broken-duplicate.yaml"]
    assert "serverPort must be an integer" in said["broken-type.yaml"]
    assert "keyValueStore.enable must be true or false" in said["broken-type.yaml"]
    assert "no top-level Butler: key" in said["broken-nobutler.yaml"]
    assert "aliases expand" in said["broken-aliasbomb.yaml"]
    assert "nested deeper" in said["broken-deep.yaml"]
    assert "UTF-8" in said["broken-encoding.yaml"]


# ---------------------------------------------------------------- same behaviour

class Imported(harness.Daemon):
    """butlerd started on the converted fixture, with only the port, the shared
    memory name, the pid file and the worker count set for the test."""

    def __init__(self, tmpdir, name, **kw):
        super().__init__(tmpdir, **kw)
        self.name = name

    def config(self, overrides=None, extra=None):
        text = read(fixture(self.name)).replace("serverPort: 18080", "serverPort: %d" % self.port)
        src = os.path.join(self.tmpdir, self.name)
        harness.write_file(src, text)
        r = run([src])
        assert r.returncode == 0, r.stderr
        inject = 'butlerd = {\n  shm = { name = "%s"; };\n  pidfile = "%s";\n' % (
            self.shm, self.pidfile)
        conf = r.stdout.replace("butlerd = {\n", inject, 1)
        return conf.replace("  workers = 0;", "  workers = %d;" % self.workers)


STYLES_BY_HAND = {
    "Butler": {
        "logLevel": "verbose",
        "restServerEndpointsEnable": {
            "keyValueStore": True, "createDirQVD": True, "fileCopy": True, "fileDelete": True,
            "senseStartTask": True,
            "scheduler": {"createNewSchedule": True, "getSchedule": True,
                          "deleteSchedule": True, "startSchedule": True, "stopSchedule": True},
        },
        "keyValueStore": {"enable": True, "maxKeysPerNamespace": 5},
        "scheduler": {"enable": True, "configfile": "schedule.json"},
        "configDirectories": {"qvdPath": "C:\\QlikSense\\QVD files"},
    },
    "butlerd": {"v2Api": {"enable": False}},
}
B16_BY_HAND = {
    "Butler": {
        "restServerEndpointsEnable": {"keyValueStore": True, "senseStartTask": True},
        "keyValueStore": {"enable": True, "maxKeysPerNamespace": 1000},
    },
    "butlerd": {"v2Api": {"enable": False}},
}


def observe(d):
    """What a client sees of a few endpoints."""
    seen = {}
    r = d.get("/v4/configfile/endpointsenabled")
    seen["endpoints"] = (r.status, sorted(json.loads(r.body)))
    r = d.get("/v4/butlerping")
    seen["ping"] = (r.status, json.loads(r.body)["response"])
    r = d.get("/v4/base16tobase62?base16=3199af08bfeeaf5d420f27ed9c01e59")
    seen["b62"] = (r.status, r.body)
    kv = []
    for i in range(6):
        r = d.request("POST", "/v4/keyvalues/ns1", {"Content-Type": "application/json"},
                      json.dumps({"key": "k%d" % i, "value": "v%d" % i}))
        kv.append(r.status)
    r = d.get("/v4/keyvalues/ns1?key=k1")
    kv.append((r.status, json.loads(r.body).get("value") if r.status == 200 else None))
    seen["kv"] = kv
    seen["v2"] = d.get("/v2/butlerPing").status
    seen["schedules"] = d.get("/v4/schedules").status
    return seen


@pytest.mark.parametrize("name,by_hand", [("styles.yaml", STYLES_BY_HAND),
                                          ("butler16.yaml", B16_BY_HAND)])
def test_same_behaviour_as_the_hand_written_file(tmp_path, name, by_hand):
    a_dir, b_dir = tmp_path / "imported", tmp_path / "byhand"
    a_dir.mkdir()
    b_dir.mkdir()
    a = Imported(a_dir, name)
    b = harness.Daemon(b_dir, overrides=by_hand)
    try:
        a.start()
        b.start()
        seen_a, seen_b = observe(a), observe(b)
    finally:
        a.stop()
        b.stop()
    assert seen_a == seen_b
    assert seen_a["ping"][0] == 200 and seen_a["v2"] == 404
    if name == "styles.yaml":  # maxKeysPerNamespace 5 came through
        assert seen_a["kv"][:6] == [201] * 5 + [507]
        assert seen_a["schedules"] == 200


# ---------------------------------------------------------------- schedules

def test_schedule_conversion(tmp_path):
    out = os.path.join(str(tmp_path), "schedule.json")
    r = run(["--schedules", fixture("schedule.yaml"), "-s", out])
    assert r.returncode == 0, r.stderr
    text = read(out)
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    crons = {s["id"]: s["cronSchedule"] for s in doc["butlerSchedule"]}
    assert crons == {"3702cec1-b6c8-463e-bda3-58d6a94dd9ac": "0 */2 * 1 *",
                     "e4b1c455-aa15-4a51-a9cf-c5e4cfc91339": "30 6 28 3,6,9,12 *",
                     "named-months": "0 0 1 jan-mar mon-fri",
                     "bad-cron": "0 0 32 * *", "bad-zone": "0 12 * * *"}
    first = doc["butlerSchedule"][0]
    assert list(first) == ["id", "created", "name", "cronSchedule", "timezone",
                           "qlikSenseTaskId", "startupState", "tags", "lastKnownState"]
    assert first["tags"] == ["Finance", "Daily"]
    rep = r.stderr
    assert '"0 */2 * 0 *" becomes "0 */2 * 1 *"' in rep
    assert '"30 6 28 2,5,8,11 *" becomes "30 6 28 3,6,9,12 *"' in rep
    assert "runs in time zone Europe/Stockholm now" in rep
    assert "runs in time zone America/New_York now" in rep
    assert 'invalid cron expression "0 0 32 * *"' in rep
    assert "invalid time zone" in rep and "Mars/Olympus_Mons" in rep
    assert "Schedules converted (5):" in rep
    assert "Named months and weekdays keep their meaning\" (line 23): cron" not in rep


def test_schedule_file_loads_in_butlerd(tmp_path):
    d = harness.Daemon(tmp_path, overrides={
        "Butler": {"scheduler": {"enable": True, "configfile": "schedule.json"},
                   "restServerEndpointsEnable": {"scheduler": {"getSchedule": True}}}})
    r = run(["--schedules", fixture("schedule.yaml"), "-s",
             os.path.join(str(tmp_path), "schedule.json")])
    assert r.returncode == 0, r.stderr
    try:
        d.start()
        r = d.get("/v4/schedules")
    finally:
        d.stop()
    assert r.status == 200
    got = {s["id"]: s for s in json.loads(r.body)}
    assert got["3702cec1-b6c8-463e-bda3-58d6a94dd9ac"]["cronSchedule"] == "0 */2 * 1 *"
    assert got["3702cec1-b6c8-463e-bda3-58d6a94dd9ac"]["lastKnownState"] == "started"
    assert got["bad-cron"]["lastKnownState"] == "stopped"
    assert len(got) == 5


def test_schedule_output_needs_force_and_bad_yaml_writes_nothing(tmp_path):
    out = os.path.join(str(tmp_path), "s.json")
    harness.write_file(out, "{}\n")
    r = run(["--schedules", fixture("schedule.yaml"), "-s", out])
    assert r.returncode == 1 and read(out) == "{}\n"
    r = run(["--schedules", fixture("broken-tab.yaml"), "-s", out, "--force"])
    assert r.returncode == 1 and read(out) == "{}\n"
    assert fixture("broken-tab.yaml") + ":4:" in r.stderr


def test_conversion_time_of_the_largest_fixture(tmp_path):
    """Not a speed concern (issue 18): the time is printed for the record."""
    largest = max((f for f in os.listdir(FIXTURES) if not f.startswith("broken")),
                  key=lambda f: os.path.getsize(fixture(f)))
    started = time.monotonic()
    r = run(["--check", fixture(largest)])
    took = time.monotonic() - started
    assert r.returncode == 0
    print("conversion of %s (%d bytes): %.3f s" % (largest, os.path.getsize(fixture(largest)),
                                                   took))
    assert took < 10


def test_host_problems_are_reported_not_fatal(tmp_path):
    """A TLS certificate that only exists on the Windows host: converted (exit 0),
    and the report says butlerd -t fails here until it is fixed."""
    src = os.path.join(str(tmp_path), "tls.yaml")
    harness.write_file(src, "Butler:\n  restServerConfig:\n    enable: true\n    tls:\n"
                            "      enable: true\n      cert: C:\\certs\\a.pem\n"
                            "      key: C:\\certs\\a.key\n")
    r = run(["--check", src])
    assert r.returncode == 0, r.stderr
    assert "butlerd -t fails on this host for now" in r.stderr
    assert "Butler.restServerConfig.tls.cert (line 6) is a Windows path" in r.stderr


def test_alert_strings_that_look_like_numbers_stay_strings(tmp_path):
    src = os.path.join(str(tmp_path), "a.yaml")
    harness.write_file(src, "Butler:\n  emailNotification:\n    smtp:\n      port: 587\n"
                            "      auth:\n        enable: true\n        user: 1234\n"
                            "        password: 5678\n")
    r = run([src])
    assert r.returncode == 0, r.stderr
    assert "port = 587;" in r.stdout and "enable = true;" in r.stdout
    assert 'user = "1234";' in r.stdout and 'password = "5678";' in r.stdout
    assert "5678" not in r.stderr


def test_a_secret_quoted_by_butlerd_t_is_blanked(tmp_path):
    """butlerd -t quotes values in its messages; a secret of the file never shows."""
    src = os.path.join(str(tmp_path), "r.yaml")
    harness.write_file(src, "Butler:\n  restServerConfig:\n    enable: true\n    tls:\n"
                            "      enable: true\n      cert: /nonexistent/hunter2pass.pem\n"
                            "      key: /nonexistent/k\n  x:\n    password: hunter2pass\n")
    r = run(["--check", src])
    assert r.returncode == 0, r.stderr
    assert "hunter2pass" not in r.stderr
    assert "cannot read /nonexistent/***.pem" in r.stderr
