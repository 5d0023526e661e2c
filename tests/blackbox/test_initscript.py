"""contrib/butlerd.init against an installed tree (butlerd(8), "INIT SCRIPTS"):
`make install DESTDIR=<tmp>`, then start, status, reload (a configuration change
is visible), restart and stop through the script, with the LSB exit codes. The
installed configuration is used as installed (its pidfile = "" included) but
for serverPort: a free port, so that parallel test runs never meet (the shared
memory name follows the port). The script finds its settings in a defaults
file named by BUTLERD_DEFAULTS instead of /etc/default/butlerd."""

import os
import re
import shutil
import subprocess

import pytest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.normpath(os.path.join(HERE, "..", "..", "contrib", "butlerd.init"))
BUILDDIR = os.path.dirname(os.path.dirname(os.path.abspath(harness.binary())))


def runs(pid, exe):
    """PID runs the installed binary EXE (guards against pid reuse before a kill)."""
    try:
        return os.path.realpath("/proc/%d/exe" % pid) == os.path.realpath(exe)
    except OSError:
        return False


def alive_pids(pidfile):
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return pid if harness.alive(pid) else None


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if not os.path.exists(os.path.join(BUILDDIR, "Makefile")):
        pytest.skip("no build tree with a Makefile next to the binary")
    dest = str(tmp_path_factory.mktemp("destdir"))
    cp = subprocess.run(["make", "-s", "install", "DESTDIR=" + dest], cwd=BUILDDIR,
                        capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stderr[-3000:]
    daemon = conf = None
    for root, _, files in os.walk(dest):
        if "butlerd" in files and root.endswith("sbin"):
            daemon = os.path.join(root, "butlerd")
        if "butlerd.conf" in files:
            conf = os.path.join(root, "butlerd.conf")
    assert daemon and conf, "make install put no butlerd or butlerd.conf under " + dest
    return dest, daemon, conf


@pytest.fixture
def env(installed, tmp_path):
    dest, daemon, conf = installed
    with open(conf) as f:
        text = f.read()
    # the installed file has no pid file: the script must cope with that
    assert re.search(r'^\s*pidfile = "";', text, re.M)
    port = harness.free_port()
    text, n = re.subn(r"serverPort = 8080;", "serverPort = %d;" % port, text)
    assert n == 1
    myconf = str(tmp_path / "butlerd.conf")
    with open(myconf, "w") as f:
        f.write(text)
    pidfile = str(tmp_path / "run" / "butlerd.pid")
    defaults = str(tmp_path / "defaults")
    with open(defaults, "w") as f:
        f.write('DAEMON="%s"\nCONF="%s"\nPIDFILE="%s"\nSTOP_TIMEOUT=20\n'
                % (daemon, myconf, pidfile))
    e = dict(os.environ, BUTLERD_DEFAULTS=defaults)
    state = {"port": port, "conf": myconf, "pidfile": pidfile, "env": e, "started": set(),
             "daemon": daemon}
    yield state
    # never leave a daemon behind, whatever the test did
    run(state, "stop")
    for pid in state["started"]:
        if harness.alive(pid) and runs(pid, daemon):
            os.kill(pid, 9)


def run(state, action, timeout=60):
    cp = subprocess.run(["/bin/sh", SCRIPT, action], env=state["env"], capture_output=True,
                        text=True, timeout=timeout)
    pid = alive_pids(state["pidfile"])
    if pid:
        state["started"].add(pid)
    return cp


def get(state, path):
    return harness.request(state["port"], "GET", path)


def test_start_status_reload_restart_stop(env):
    cp = run(env, "status")
    assert cp.returncode == 3, cp           # not running
    cp = run(env, "start")
    assert cp.returncode == 0, cp
    assert "failed" not in cp.stdout
    pid = alive_pids(env["pidfile"])
    assert pid and runs(pid, env["daemon"]), cp
    assert get(env, "/v4/butlerping").status == 200
    cp = run(env, "status")
    assert cp.returncode == 0 and ("running (pid %d)" % pid) in cp.stdout, cp
    cp = run(env, "start")                  # already running: success, same daemon
    assert cp.returncode == 0 and alive_pids(env["pidfile"]) == pid, cp

    # reload: butlerping turned off in the file is gone after the reload
    with open(env["conf"]) as f:
        text = f.read()
    text, n = re.subn(r"butlerping = true;", "butlerping = false;", text)
    assert n == 1
    with open(env["conf"], "w") as f:
        f.write(text)
    cp = run(env, "reload")
    assert cp.returncode == 0, cp
    assert harness.wait_until(lambda: get(env, "/v4/butlerping").status == 404, 15)
    assert alive_pids(env["pidfile"]) == pid   # same master

    # a broken file: reload and restart refuse it and the daemon keeps running
    with open(env["conf"], "a") as f:
        f.write("\nnot libconfig at all\n")
    cp = run(env, "reload")
    assert cp.returncode == 1 and "invalid" in cp.stderr, cp
    cp = run(env, "restart")
    assert cp.returncode == 1, cp
    assert alive_pids(env["pidfile"]) == pid
    with open(env["conf"], "w") as f:
        f.write(text)

    cp = run(env, "restart")
    assert cp.returncode == 0, cp
    pid2 = alive_pids(env["pidfile"])
    assert pid2 and pid2 != pid and not harness.alive(pid), cp
    assert get(env, "/v4/base16tobase62?base16=ff").status == 200

    cp = run(env, "stop")
    assert cp.returncode == 0, cp
    assert not harness.alive(pid2)
    assert not os.path.exists(env["pidfile"])
    cp = run(env, "stop")                   # stopping a stopped daemon is success
    assert cp.returncode == 0, cp
    cp = run(env, "status")
    assert cp.returncode == 3, cp
    cp = run(env, "reload")                 # nothing to reload
    assert cp.returncode == 7, cp


def test_failed_start_leaves_nothing_running(env):
    # the port is taken: butlerd cannot start, the script says so, nothing is left
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", env["port"]))
    s.listen(1)
    try:
        before = set(harness.children(os.getpid()))
        cp = run(env, "start")
        assert cp.returncode == 1 and "failed" in cp.stdout, cp
        assert alive_pids(env["pidfile"]) is None
        cp = run(env, "status")
        assert cp.returncode in (1, 3), cp
        # the failed master reported before it exited: it is gone a moment later

        def gone():
            out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True,
                                 text=True).stdout
            return env["conf"] not in out
        assert harness.wait_until(gone, 10)
        assert set(harness.children(os.getpid())) <= before
    finally:
        s.close()


def test_not_installed_and_not_configured(env, tmp_path):
    with open(env["env"]["BUTLERD_DEFAULTS"], "a") as f:
        f.write('CONF="%s"\n' % (tmp_path / "missing.conf"))
    assert run(env, "start").returncode == 6
    with open(env["env"]["BUTLERD_DEFAULTS"], "a") as f:
        f.write('DAEMON="%s"\n' % (tmp_path / "missing-butlerd"))
    assert run(env, "start").returncode == 5
    assert shutil.which("sh")
