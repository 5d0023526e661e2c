"""butlerd as an init script runs it: without -f (detached, pid file, log file),
start-up failures reported through the exit status, and SIGUSR1 log reopening
for logrotate, in the master and in the workers."""

import glob
import os
import signal
import socket
import subprocess

import harness


def conf(tmp_path, port, extra_butlerd=None, extra_butler=None):
    over = {"butlerd": {"logging": {"destination": "file",
                                    "file": str(tmp_path / "butlerd.log"),
                                    "level": "info"}}}
    if extra_butlerd:
        over["butlerd"].update(extra_butlerd)
    if extra_butler:
        over["Butler"] = extra_butler
    path = tmp_path / "butlerd.conf"
    harness.write_file(path, harness.config_text(port, tmp_path, over))
    return path


def read_pid(tmp_path):
    with open(tmp_path / "butlerd.pid") as f:
        return int(f.read().strip())


def stop(pid, tmp_path):
    """SIGTERM by pid; waits (bounded) until the master and its workers are gone."""
    workers = harness.children(pid)
    os.kill(pid, signal.SIGTERM)
    assert harness.wait_until(lambda: not harness.alive(pid), 15), "master did not exit"
    assert harness.wait_until(lambda: not any(harness.alive(w) for w in workers), 5)


def stop_if_running(tmp_path):
    """Teardown after a failed assertion: end the daemon this test started."""
    try:
        pid = read_pid(tmp_path)
    except (OSError, ValueError):
        return
    if harness.alive(pid) and harness.is_butlerd(pid):
        stop(pid, tmp_path)


def cleanup_shm(path):
    text = open(path).read()
    name = text.split('name = "')[1].split('"')[0] if 'name = "' in text else None
    if name:
        for p in glob.glob("/dev/shm" + name + ".*"):
            os.unlink(p)


def test_detached_start_reports_ready_and_stops(tmp_path):
    port = harness.free_port()
    path = conf(tmp_path, port)
    cp = subprocess.run([harness.binary(), "-c", str(path)], capture_output=True, timeout=20,
                        stdin=subprocess.DEVNULL)
    try:
        # the launching process returns only once the master reported ready
        assert cp.returncode == 0, cp.stderr
        pid = read_pid(tmp_path)
        assert harness.alive(pid) and harness.is_butlerd(pid)
        # detached: a session of its own (and, after the second fork, not its leader,
        # so it can never acquire a controlling terminal again)
        assert os.getsid(pid) != os.getsid(0), "the master stayed in the caller's session"
        assert os.getsid(pid) != pid
        r = harness.request(port, "GET", "/v4/butlerping")
        assert r.status == 200
        log = open(tmp_path / "butlerd.log").read()
        assert "ready: listening on 127.0.0.1:%d" % port in log
        assert "master[%d]" % pid in log
        stop(pid, tmp_path)
        assert not os.path.exists(tmp_path / "butlerd.pid")
        assert open(tmp_path / "butlerd.log").read().rstrip().endswith("exiting")
    finally:
        stop_if_running(tmp_path)
        cleanup_shm(path)


def test_detached_start_failure_is_reported(tmp_path):
    # the port is taken: the detached daemon cannot bind and the launcher says so
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    path = conf(tmp_path, port)
    try:
        cp = subprocess.run([harness.binary(), "-c", str(path)], capture_output=True,
                            timeout=20, stdin=subprocess.DEVNULL)
        assert cp.returncode == 1
        assert b"failed to start" in cp.stderr
        assert "cannot listen on 127.0.0.1 port %d" % port in open(tmp_path / "butlerd.log").read()
    finally:
        s.close()
        cleanup_shm(path)


def test_second_instance_with_same_pidfile_refused(tmp_path):
    port = harness.free_port()
    path = conf(tmp_path, port)
    subprocess.run([harness.binary(), "-c", str(path)], check=True, timeout=20,
                   stdin=subprocess.DEVNULL, capture_output=True)
    pid = read_pid(tmp_path)
    try:
        other = tmp_path / "other"
        other.mkdir()
        over = {"butlerd": {"pidfile": str(tmp_path / "butlerd.pid"),
                            "logging": {"destination": "file",
                                        "file": str(other / "butlerd.log")}}}
        path2 = other / "butlerd.conf"
        harness.write_file(path2, harness.config_text(harness.free_port(), other, over))
        cp = subprocess.run([harness.binary(), "-c", str(path2)], capture_output=True,
                            timeout=20, stdin=subprocess.DEVNULL)
        assert cp.returncode == 1
        assert "another butlerd is running" in open(other / "butlerd.log").read()
        assert read_pid(tmp_path) == pid, "the running instance's pid file was overwritten"
        cleanup_shm(path2)
    finally:
        stop(pid, tmp_path)
        cleanup_shm(path)


def test_sigusr1_reopens_log_in_master_and_workers(tmp_path):
    """logrotate renames the file and sends SIGUSR1: new lines, from the master and
    from the workers, must land in a new file with the old name."""
    port = harness.free_port()
    dead = harness.free_port()   # nothing listens here: QRS calls fail and a worker logs it
    path = conf(tmp_path, port, extra_butler={
        "restServerEndpointsEnable": {"butlerping": True, "senseListApps": True},
        "configQRS": {"host": "127.0.0.1", "port": dead, "useSSL": False}})
    subprocess.run([harness.binary(), "-c", str(path)], check=True, timeout=20,
                   stdin=subprocess.DEVNULL, capture_output=True)
    pid = read_pid(tmp_path)
    log = tmp_path / "butlerd.log"
    try:
        os.rename(log, tmp_path / "butlerd.log.1")
        os.kill(pid, signal.SIGUSR1)
        assert harness.wait_until(lambda: log.exists() and "log file reopened" in log.read_text(), 5)
        r = harness.request(port, "GET", "/v4/apps/list")
        assert r.status == 500
        assert harness.wait_until(lambda: "worker[" in log.read_text(), 5), log.read_text()
        text = log.read_text()
        assert "QRS GET /qrs/app failed: connection refused" in text
        assert "QRS GET" not in (tmp_path / "butlerd.log.1").read_text()
    finally:
        stop(pid, tmp_path)
        cleanup_shm(path)


def test_sighup_during_startup_leaves_one_generation(tmp_path):
    """A SIGHUP that arrives while the first generation is still starting must not
    leave the older generation running next to the new one."""
    port = harness.free_port()
    path = conf(tmp_path, port, extra_butlerd={"logging": {"destination": "stderr"}})
    p = subprocess.Popen([harness.binary(), "-f", "-c", str(path)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen = ""
        while "started gen 1" not in seen:   # handlers are installed before any fork
            line = p.stderr.readline()
            assert line, "butlerd ended early: " + seen
            seen += line
        p.send_signal(signal.SIGHUP)
        while "configuration reloaded" not in seen:
            line = p.stderr.readline()
            assert line, seen
            seen += line
        gen1 = {int(l.split(" pid ")[1].split()[0]) for l in seen.splitlines()
                if "started gen 1" in l}
        # settled: two workers, none of them from generation 1
        ok = harness.wait_until(lambda: len(harness.children(p.pid)) == 2 and
                                not gen1 & set(harness.children(p.pid)), 8)
        assert ok, "workers after settling: %r (gen 1: %r)" % (harness.children(p.pid), gen1)
        assert harness.request(port, "GET", "/v4/butlerping").status == 200
    finally:
        p.terminate()
        p.wait(15)
        cleanup_shm(path)
