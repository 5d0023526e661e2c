"""Command line and configuration validation: -t, -V, -h, bad options, and
startup with a bad configuration (spec section 8)."""

import re
import subprocess

import pytest

import harness
from harness import run_cli

GOOD = """\
Butler = {
  restServerConfig = {
    enable = true;
    serverHost = "127.0.0.1";
    serverPort = 18080;
  };
  restServerEndpointsEnable = {
    apiListEnabledEndpoints = true;
    base62ToBase16 = true;
    base16ToBase62 = true;
    butlerping = true;
  };
};
butlerd = {
  workers = 2;
  pidfile = "";
  logging = {
    destination = "stderr";
    level = "info";
  };
  http = {
    maxBodyBytes = 1048576;
  };
  kvPersistence = {
    file = "";
  };
};
"""


def write(tmp_path, text, name="butlerd.conf"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def marked(text):
    """Line numbers of the lines carrying a `# @tag` comment: {tag: line}."""
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.search(r"# @(\w+)", line)
        if m:
            out[m.group(1)] = n
    return out


def replace(text, old, new):
    assert old in text, old
    return text.replace(old, new, 1)


def check_t(path):
    return run_cli(["-t", "-c", path])


def error_lines(cp, path):
    """stderr lines of the form FILE:LINE: message, as {line: [messages]}."""
    out = {}
    pat = re.compile(re.escape(path) + r":(\d+): (.*)")
    for l in cp.stderr.splitlines():
        m = pat.search(l)
        if m:
            out.setdefault(int(m.group(1)), []).append(m.group(2))
    return out


def assert_ok(cp):
    assert cp.returncode == 0, cp
    assert "configuration OK" in cp.stdout.splitlines(), cp


def assert_errors(cp, path, expected):
    """expected: {line: needle or None}. Every expected line is reported
    (with the needle in its message), exit status 1, no OK."""
    assert cp.returncode == 1, cp
    assert "configuration OK" not in cp.stdout, cp
    got = error_lines(cp, path)
    for line, needle in expected.items():
        assert line in got, "no error for %s:%d; stderr:\n%s" % (path, line, cp.stderr)
        if needle:
            assert any(needle in m for m in got[line]), \
                "error at line %d does not name %r: %r" % (line, needle, got[line])
    return got


# --------------------------------------------------------------- good

def test_good_config(tmp_path):
    cp = check_t(write(tmp_path, GOOD))
    assert_ok(cp)
    assert cp.stdout.strip() == "configuration OK", cp


def test_harness_config_is_good(tmp_path):
    text = harness.config_text(harness.free_port(), tmp_path)
    assert_ok(check_t(write(tmp_path, text)))


def test_minimal_config(tmp_path):
    # every key has a default
    assert_ok(check_t(write(tmp_path, "Butler = { };\nbutlerd = { };\n")))


def test_unknown_butler_keys_are_ignored(tmp_path):
    text = replace(GOOD, "  restServerConfig = {\n", "  heartbeat = { enable = true; };\n"
                   "  anonTelemetry = false;\n  someFutureKey = \"x\";\n"
                   "  restServerConfig = {\n    backgroundServerPort = 8081;\n"
                   "    notAButlerKey = 1;\n")
    assert_ok(check_t(write(tmp_path, text)))


def test_int64_and_list_forms(tmp_path):
    text = replace(GOOD, "serverPort = 18080;", "serverPort = 18080L;")
    text = replace(text, "};\nbutlerd = {",
                   "  fileDeleteApprovedDirectories = ( );\n"
                   "  startTaskFilter = { enable = false; allowTask = { taskId = [ ]; "
                   "tag = ( \"a\", \"b\" ); }; };\n};\nbutlerd = {")
    assert_ok(check_t(write(tmp_path, text)))


def test_relative_config_path(tmp_path):
    write(tmp_path, GOOD, "rel.conf")
    cp = subprocess.run([harness.binary(), "-t", "-c", "rel.conf"], cwd=str(tmp_path),
                        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=15)
    assert_ok(cp)


# ---------------------------------------------------------------- bad

def test_syntax_error(tmp_path):
    text = replace(GOOD, "serverPort = 18080;", "serverPort = ; # @err")
    path = write(tmp_path, text)
    assert_errors(check_t(path), path, {marked(text)["err"]: None})


def test_syntax_error_unterminated_group(tmp_path):
    text = GOOD + "butlerd2 = {\n  a = 1;\n"
    path = write(tmp_path, text)
    cp = check_t(path)
    assert cp.returncode == 1, cp
    assert error_lines(cp, path), cp.stderr


def test_unknown_key_under_butlerd(tmp_path):
    text = replace(GOOD, "  workers = 2;\n", "  workers = 2;\n  frobnicate = 1; # @err\n")
    path = write(tmp_path, text)
    assert_errors(check_t(path), path, {marked(text)["err"]: "frobnicate"})


def test_unknown_nested_key_under_butlerd(tmp_path):
    text = replace(GOOD, "    maxBodyBytes = 1048576;\n",
                   "    maxBodyBytes = 1048576;\n    maxBodyByte = 5; # @err\n")
    path = write(tmp_path, text)
    assert_errors(check_t(path), path, {marked(text)["err"]: "maxBodyByte"})


def test_unknown_top_level_group(tmp_path):
    text = GOOD + "Extra = { # @err\n  a = 1;\n};\n"
    path = write(tmp_path, text)
    assert_errors(check_t(path), path, {marked(text)["err"]: "Extra"})


def test_unknown_top_level_scalar(tmp_path):
    text = "stray = 1; # @err\n" + GOOD
    path = write(tmp_path, text)
    assert_errors(check_t(path), path, {marked(text)["err"]: "stray"})


@pytest.mark.parametrize("old,new,needle", [
    ("serverPort = 18080;", 'serverPort = "abc"; # @err', "serverPort"),
    ("enable = true;", 'enable = "yes"; # @err', "enable"),
    ("serverHost = \"127.0.0.1\";", "serverHost = 127; # @err", "serverHost"),
    ("workers = 2;", "workers = true; # @err", "workers"),
    ("maxBodyBytes = 1048576;", "maxBodyBytes = 1.5; # @err", "maxBodyBytes"),
    ("butlerping = true;", 'butlerping = "true"; # @err', "butlerping"),
    ("  logging = {", "  logging = 5; # @err\n  oldlogging = {", "logging"),
])
def test_wrong_type(tmp_path, old, new, needle):
    text = replace(GOOD, old, new)
    if "oldlogging" in text:  # keep the file valid apart from the one error
        text = re.sub(r"  oldlogging = \{.*?\n  \};\n", "", text, flags=re.S)
    path = write(tmp_path, text)
    assert_errors(check_t(path), path, {marked(text)["err"]: needle})


@pytest.mark.parametrize("old,new,needle", [
    ("serverPort = 18080;", "serverPort = 70000; # @err", "serverPort"),
    ("serverPort = 18080;", "serverPort = 0; # @err", "serverPort"),
    ("serverPort = 18080;", "serverPort = -1; # @err", "serverPort"),
    ("workers = 2;", "workers = 257; # @err", "workers"),
    ("workers = 2;", "workers = -1; # @err", "workers"),
])
def test_out_of_range(tmp_path, old, new, needle):
    text = replace(GOOD, old, new)
    path = write(tmp_path, text)
    assert_errors(check_t(path), path, {marked(text)["err"]: needle})


def test_several_errors_all_reported(tmp_path):
    text = replace(GOOD, "serverPort = 18080;", 'serverPort = "abc"; # @a')
    text = replace(text, "  workers = 2;\n", "  workers = 2;\n  frobnicate = 1; # @b\n")
    text = replace(text, "maxBodyBytes = 1048576;", "maxBodyBytes = \"big\"; # @c")
    text = replace(text, "  restServerEndpointsEnable = {\n",
                   "  restServerEndpointsEnable = {\n    butlerping2 = 1;\n")  # ignored
    text = text + "Extra = 1; # @d\n"
    text = replace(text, "  workers = 2;\n", "  workers = 999; # @e\n")
    path = write(tmp_path, text)
    m = marked(text)
    cp = check_t(path)
    got = assert_errors(cp, path, {m["a"]: "serverPort", m["b"]: "frobnicate",
                                   m["c"]: "maxBodyBytes", m["d"]: "Extra", m["e"]: "workers"})
    n = sum(len(v) for v in got.values())
    assert n >= 5, cp.stderr
    # the ignored unknown Butler key is not an error
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "butlerping2" in l)
    assert line not in got, cp.stderr


def test_missing_config_file(tmp_path):
    path = str(tmp_path / "nope.conf")
    cp = check_t(path)
    assert cp.returncode == 1, cp
    assert "configuration OK" not in cp.stdout
    assert path in cp.stderr, cp.stderr
    assert re.search(r"No such file|not found|cannot open|can't open|does not exist",
                     cp.stderr, re.I), cp.stderr


def test_startup_with_bad_config_fails(tmp_path):
    text = replace(GOOD, "  workers = 2;\n", "  workers = 2;\n  frobnicate = 1; # @err\n")
    path = write(tmp_path, text)
    cp = run_cli(["-f", "-c", path], timeout=20)
    assert cp.returncode != 0, cp
    assert error_lines(cp, path).get(marked(text)["err"]), cp.stderr
    assert "ready: listening" not in cp.stderr


def test_startup_port_in_use_fails(tmp_path):
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        port = s.getsockname()[1]
        text = harness.config_text(port, tmp_path)
        cp = run_cli(["-f", "-c", write(tmp_path, text)], timeout=20)
        assert cp.returncode != 0, cp
        assert "ready: listening" not in cp.stderr
        assert str(port) in cp.stderr, cp.stderr
    finally:
        s.close()


def test_spec_annotated_example_is_valid(tmp_path):
    assert_ok(check_t(write(tmp_path, SPEC_EXAMPLE)))


# ------------------------------------------------------------ options

def test_version():
    cp = run_cli(["-V"])
    assert cp.returncode == 0, cp
    assert re.fullmatch(r"butlerd \d+\.\d+\.\d+\S*\n?", cp.stdout), cp


def test_help():
    cp = run_cli(["-h"])
    assert cp.returncode == 0, cp
    out = cp.stdout + cp.stderr
    for opt in ("-c", "-t", "-f", "-V", "-h"):
        assert opt in out, out


@pytest.mark.parametrize("args", [["-Z"], ["--bogus"], ["-c"]])
def test_bad_option(args):
    cp = run_cli(args)
    assert cp.returncode == 2, cp
    assert "-c" in cp.stderr, cp
    assert "configuration OK" not in cp.stdout


# The complete annotated example of spec section 8.7 (verbatim).
SPEC_EXAMPLE = r'''
# /etc/butlerd/butlerd.conf (libconfig syntax)
# Keys under "Butler" keep Butler's YAML names. Keys under "butlerd" exist only in butlerd.

Butler = {
  logLevel = "info";                      # error | warn | info | verbose | debug | silly

  # ---- REST server (1.1) ----
  restServerConfig = {
    enable = true;
    serverHost = "127.0.0.1";             # "0.0.0.0" or "::" listens on all interfaces
    serverPort = 8080;
    backgroundServerPort = 8081;          # accepted, ignored: butlerd has one server
    tls = {
      enable = false;                     # true: HTTPS only on serverPort
      cert = "/etc/butlerd/tls/server.pem";
      key = "/etc/butlerd/tls/server-key.pem";
      ca = "";                            # optional intermediate chain (PEM)
    };
  };

  # ---- Endpoint flags (1.9, 2.0); anything not true is off ----
  restServerEndpointsEnable = {
    apiListEnabledEndpoints = true;
    activeUserCount = true;               # legacy, needs udpServerConfig.portSessionConnectionEvents
    activeUsers = true;                   # legacy
    base62ToBase16 = true;
    base16ToBase62 = true;
    butlerping = true;
    createDir = false;                    # no path restriction: enable with care
    createDirQVD = true;
    fileDelete = true;
    fileMove = true;
    fileCopy = true;
    keyValueStore = true;
    mqttPublishMessage = true;
    newRelic = {
      postNewRelicMetric = false;
      postNewRelicEvent = false;
    };
    scheduler = {
      createNewSchedule = true;
      getSchedule = true;
      getScheduleStatusAll = true;
      updateSchedule = false;             # listed by endpointsenabled, no route
      deleteSchedule = true;
      startSchedule = true;               # also enables /v4/schedules/startall
      stopSchedule = true;                # also enables /v4/schedules/stopall
    };
    senseAppReload = true;
    senseAppDump = true;
    senseListApps = true;
    senseStartTask = true;
    slackPostMessage = false;
  };

  # ---- New Relic pass-through (2.9) ----
  restServerEndpointsConfig = {
    newRelic = {
      postNewRelicMetric = {
        destinationAccount = [ "First NR account" ];
        url = "https://insights-collector.eu01.nr-data.net/metric/v1";   # full metric endpoint
        header = ( { name = "X-My-Header"; value = "Header value"; } );
        attribute = {
          static = ( { name = "env"; value = "prod"; } );
        };
      };
      postNewRelicEvent = {
        destinationAccount = [ "First NR account" ];
        url = "https://insights-collector.eu01.nr-data.net/";            # base URL, no path
        header = ( { name = "X-My-Header"; value = "Header value"; } );
        attribute = {
          static = ( { name = "env"; value = "prod"; } );
        };
      };
    };
  };

  thirdPartyToolsCredentials = {
    newRelic = (
      { accountName = "First NR account"; insertApiKey = "<insert API key>"; accountId = "1234567"; }
    );
  };

  # ---- Start-task filter (3.4) ----
  startTaskFilter = {
    enable = false;
    allowTask = {
      taskId = [ "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e", "7552d9fc-d1bb-4975-9a38-18357de531ea" ];
      tag = [ "startTask1", "startTask2" ];
      customProperty = (
        { name = "taskGroup"; value = "tasks1"; },
        { name = "taskGroup"; value = "tasks2"; }
      );
    };
  };

  # ---- File endpoints (2.4, 2.5) ----
  fileCopyApprovedDirectories = (
    { fromDirectory = "/data/qvd/staging"; toDirectory = "/data/qvd/archive"; }
  );
  fileMoveApprovedDirectories = (
    { fromDirectory = "/data/qvd/staging"; toDirectory = "/data/qvd/archive"; }
  );
  fileDeleteApprovedDirectories = [ "/data/qvd/staging" ];

  configDirectories = {
    qvdPath = "/data/qvd";                # root for /v4/createdirqvd and /v2/createDirQVD
  };

  # ---- Key-value store (4) ----
  keyValueStore = {
    enable = true;                        # informational only; the endpoint flag decides
    maxKeysPerNamespace = 1000;           # enforced: 507 when full
  };

  # ---- Scheduler (2.10) ----
  scheduler = {
    enable = true;
    configfile = "/var/lib/butlerd/schedule.json";
  };

  # ---- MQTT (5) ----
  mqttConfig = {
    enable = true;
    brokerHost = "mqtt.acme.local";
    brokerPort = 1883;
    azureEventGrid = {
      enable = false;
      clientId = "";
      clientCertFile = "";
      clientKeyFile = "";
    };
    taskFailureSendFull = true;
    taskAbortedSendFull = true;
    subscriptionRootTopic = "qliksense/#";
    taskStartTopic = "qliksense/start_task";          # must lie under subscriptionRootTopic
    taskFailureTopic = "qliksense/task_failure";
    taskFailureFullTopic = "qliksense/task_failure_full";
    taskFailureServerStatusTopic = "qliksense/butler/task_failure_server";
    taskAbortedTopic = "qliksense/task_aborted";
    taskAbortedFullTopic = "qliksense/task_aborted_full";
    # Legacy session and active-user topics (5.3, 6.5)
    sessionStartTopic = "qliksense/session/start";
    sessionStopTopic = "qliksense/session/stop";
    connectionOpenTopic = "qliksense/connection/open";
    connectionCloseTopic = "qliksense/connection/close";
    sessionServerStatusTopic = "qliksense/butler/session_server";
    activeUserCountTopic = "qliksense/users/active/count";
    activeUsersTopic = "qliksense/users/active/usernames";
  };

  # ---- UDP intake (6) ----
  udpServerConfig = {
    enable = true;
    serverHost = "0.0.0.0";               # must be reachable from the Sense nodes
    portTaskFailure = 9998;
    portSessionConnectionEvents = 9997;   # legacy proxy events; 0 or absent = off
    maxMessageSize = 65507;
    enableSourceValidation = false;
    allowedSources = [ "10.11.12.13", "sense1.acme.local" ];
    messageQueue = {
      maxConcurrent = 10;
      maxSize = 200;
      backpressureThreshold = 80;         # percent of maxSize
    };
    rateLimit = {
      enable = false;
      maxMessagesPerMinute = 600;
    };
    deduplication = {
      enable = true;
      ttlMinutes = 10;
    };
  };

  # ---- Slack pass-through (2.8) ----
  slackNotification = {
    restMessage = {
      webhookURL = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXX";
    };
  };

  # ---- Qlik Sense connection (1.12): certificates exported from the QMC ----
  cert = {
    clientCert = "/etc/butlerd/qlik/client.pem";
    clientCertKey = "/etc/butlerd/qlik/client_key.pem";
    clientCertCA = "/etc/butlerd/qlik/root.pem";
  };

  configEngine = {
    engineVersion = "12.612.0";           # accepted, ignored
    host = "sense1.acme.local";
    port = 4747;
    useSSL = true;
    headers = {
      static = ( { name = "X-Qlik-User"; value = "UserDirectory=Internal;UserId=sa_repository"; } );
    };
    rejectUnauthorized = false;
  };

  configQRS = {
    authentication = "certificates";
    host = "sense1.acme.local";
    useSSL = true;
    port = 4242;
    headers = {
      static = ( { name = "X-Qlik-User"; value = "UserDirectory=Internal;UserId=sa_repository"; } );
    };
    rejectUnauthorized = false;
  };
};

butlerd = {
  workers = 0;                            # 0 = one per online CPU
  workingDirectory = "/var/lib/butlerd";  # base for relative paths
  pidfile = "/run/butlerd/butlerd.pid";
  user = "butler";                        # drop privileges to this user and group
  group = "butler";

  logging = {
    destination = "syslog";               # "stderr" | "syslog"
    level = "info";                       # overrides Butler.logLevel
    syslogFacility = "daemon";
    ident = "butlerd";
  };

  http = {
    maxBodyBytes = 1048576;               # 413 above this
    maxHeaderBytes = 16384;               # 431 above this
    keepAliveTimeout = 72;                # seconds
    requestTimeout = 30;                  # seconds, 408 after this
    maxConnections = 1024;                # per worker
  };

  rateLimit = {
    enable = false;                       # per client IP
    maxRequests = 100;
    windowSeconds = 60;
    maxClients = 10000;
  };

  shm = {
    name = "/butlerd";
    kvMaxNamespaces = 1000;
    kvMaxKeys = 10000;
    kvMaxKeyBytes = 256;
    kvMaxValueBytes = 4096;
    maxActiveUsers = 10000;
  };

  kvPersistence = {
    file = "/var/lib/butlerd/kv.json";    # "" = memory only, as in Butler
    intervalSeconds = 60;                 # 0 = only at shutdown
  };

  activeUsers = {
    maxIdleSeconds = 0;                   # 0 = entries never expire
  };

  mqtt = {
    clientId = "";                        # "" = butlerd_<8 random hex digits>
    username = "";
    password = "";
    keepAliveSeconds = 60;
    defaultQos = 0;                       # for REST publishes without "qos"
    publishTimeoutMs = 5000;              # QoS 1/2 acknowledgement wait
    tls = {
      enable = false;
      caFile = "";
      certFile = "";
      keyFile = "";
      verifyPeer = true;
    };
  };

  v2Api = {
    enable = true;                        # legacy GET endpoints under /v2
  };
};
'''


# ------------------------------------------------ files that are not configurations

@pytest.mark.parametrize("text", ["", "\n# nothing here\n", "butlerd = { workers = 2; };\n",
                                  "Butler = 1;\n"])
def test_file_without_butler_group_is_an_error(tmp_path, text):
    path = write(tmp_path, text)
    cp = check_t(path)
    assert cp.returncode == 1, cp
    assert "configuration OK" not in cp.stdout
    assert 'no "Butler" group' in cp.stderr and path in cp.stderr, cp.stderr
    # and the daemon refuses to start with it
    cp = run_cli(["-f", "-c", path], timeout=20)
    assert cp.returncode != 0, cp
    assert 'no "Butler" group' in cp.stderr, cp.stderr
    assert "ready: listening" not in cp.stderr


def test_nothing_enabled_is_a_warning(tmp_path):
    cp = check_t(write(tmp_path, "Butler = { };\n"))
    assert cp.returncode == 0, cp
    assert "no listener is enabled" in cp.stderr, cp.stderr


def test_rest_without_endpoints_is_a_warning(tmp_path):
    cp = check_t(write(tmp_path, "Butler = { restServerConfig = { enable = true; }; };\n"))
    assert cp.returncode == 0, cp
    assert "no endpoint in Butler.restServerEndpointsEnable" in cp.stderr, cp.stderr
