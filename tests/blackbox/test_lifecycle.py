"""Process lifecycle: pid file, workers, SIGHUP reload (good and bad
config, under load), worker respawn, SIGTERM/SIGINT shutdown, and no
orphaned workers after the master is SIGKILLed."""

import http.client
import json
import os
import re
import signal
import threading
import time

import pytest

import harness
from harness import not_found, wait_until

EXITED = re.compile(r"worker (\d+) pid (\d+) gen (\d+) (exited with code \d+|killed by signal \d+)")


def ping_ok(d):
    r = d.get("/v4/butlerping")
    return r.status == 200 and json.loads(r.body)["response"] == harness.PING_TEXT


def gen_of(line):
    return int(harness.WORKER_STARTED.search(line).group(3))


def started_pids(d, start=0):
    return [int(harness.WORKER_STARTED.search(l).group(2))
            for l in d.find(harness.WORKER_STARTED, start)]


# ---------------------------------------------------------------- startup

def test_pidfile_and_workers(daemon):
    assert wait_until(lambda: os.path.exists(daemon.pidfile), 5.0), "no pid file"
    with open(daemon.pidfile) as f:
        assert f.read().strip() == str(daemon.pid)
    pids = daemon.wait_workers(2)
    # each worker announced itself with its pid
    assert set(pids) <= set(started_pids(daemon)), daemon.log_tail()
    assert ping_ok(daemon)


def test_worker_count_follows_config(start_daemon):
    d = start_daemon(workers=3)
    pids = d.wait_workers(3)
    assert len(d.find(harness.WORKER_STARTED)) == 3, d.log_tail()
    # the ready line is logged once
    assert len(d.find("ready: listening on 127.0.0.1:%d" % d.port)) == 1
    assert len(set(pids)) == 3


def test_log_line_format(daemon):
    lines = daemon.snapshot()
    fmt = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (master|worker)\[(\d+)\] "
                     r"(error|warn|warning|info|verbose|debug): ")
    ready = [l for l in lines if "ready: listening on" in l]
    assert ready and fmt.match(ready[0]), ready
    assert fmt.match(ready[0]).group(1) == "master"
    assert fmt.match(ready[0]).group(2) == str(daemon.pid)


# ----------------------------------------------------------------- reload

class Load:
    """Threads hammering GET /v4/butlerping over persistent connections."""

    def __init__(self, port, threads=4):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self.stop.is_set():
            try:
                c.request("GET", "/v4/butlerping")
                r = c.getresponse()
                body = r.read()
                if r.status == 200 and json.loads(body)["response"] == harness.PING_TEXT:
                    with self.lock:
                        self.ok += 1
                else:
                    self.fail("status %d body %r" % (r.status, body[:200]))
            except Exception as e:  # any exception is a failed request
                self.fail("%s: %s" % (type(e).__name__, e))
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.close()

    def fail(self, what):
        with self.lock:
            self.failures.append((time.monotonic(), what))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def test_reload_under_load_no_failed_requests(daemon):
    old = set(daemon.wait_workers(2))
    mark = daemon.mark()
    hups = 3
    t0 = time.monotonic()
    with Load(daemon.port) as load:
        for _ in range(hups):
            time.sleep(0.8)
            daemon.signal(signal.SIGHUP)
        time.sleep(0.8)
    elapsed = time.monotonic() - t0
    report = "requests ok=%d failed=%d in %.1fs; first failures: %r" % (
        load.ok, len(load.failures), elapsed, load.failures[:10])
    print(report)
    assert load.ok > 100, report
    assert not load.failures, report + "\n" + daemon.log_tail()

    daemon.wait_log("configuration reloaded", 10, start=mark, count=hups)
    first_gen = max(gen_of(l) for l in daemon.find(harness.WORKER_STARTED)[:2])
    # every reload starts a new generation; the last one becomes ready
    daemon.wait_log(harness.WORKER_STARTED, 10, start=mark, count=2 * hups)
    last_gen = max(gen_of(l) for l in daemon.find(harness.WORKER_STARTED, mark))
    assert last_gen >= first_gen + hups, daemon.log_tail()
    daemon.wait_log("gen %d ready" % last_gen, 15, start=mark)
    new = set(daemon.wait_workers(2, timeout=15, exclude=old))
    assert not (new & old)
    # the current workers were started by the reloads, with the last generation
    assert new <= set(started_pids(daemon, mark)), daemon.log_tail()
    for l in daemon.find(harness.WORKER_STARTED, mark):
        m = harness.WORKER_STARTED.search(l)
        if int(m.group(2)) in new:
            assert int(m.group(3)) == last_gen, l
    # the old generation is gone and its exits were logged
    assert wait_until(lambda: not any(harness.alive(p) for p in old), 15), daemon.log_tail()
    exited = {int(EXITED.search(l).group(2)) for l in daemon.find(EXITED, mark)}
    assert old <= exited, daemon.log_tail()
    assert ping_ok(daemon)


def test_reload_applies_endpoint_flags(daemon, butlerd_version):
    assert ping_ok(daemon)
    old = set(daemon.wait_workers(2))
    daemon.write_config(daemon.config({"Butler": {"restServerEndpointsEnable": {
        "butlerping": False, "base62ToBase16": False}}}))
    mark = daemon.mark()
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("configuration reloaded", 10, start=mark)
    daemon.wait_log(harness.GEN_READY, 15, start=mark)
    daemon.wait_workers(2, timeout=15, exclude=old)
    for _ in range(6):  # whichever worker answers
        r = daemon.get("/v4/butlerping")
        assert r.status == 404 and r.body == not_found("GET", "/v4/butlerping"), r
    r = daemon.get("/v4/configfile/endpointsenabled")
    assert r.body == b'["apiListEnabledEndpoints","base16ToBase62"]', r
    # and back again
    old = set(daemon.worker_pids())
    daemon.write_config(daemon.config())
    mark = daemon.mark()
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(harness.GEN_READY, 15, start=mark)
    # old workers may still answer while they drain; wait until they are gone
    daemon.wait_workers(2, timeout=15, exclude=old)
    r = daemon.get("/v4/butlerping")
    assert r.status == 200 and json.loads(r.body)["butlerVersion"] == butlerd_version, r


def bad_reload(d, text, line, needle):
    """Write a bad config, SIGHUP, and check the old one stays in force."""
    old = set(d.wait_workers(2))
    d.write_config(text)
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reload failed, keeping the old configuration", 10, start=mark)
    where = "%s:%d:" % (d.config_path, line)
    errs = d.find(where, mark)
    assert errs, "no error naming %s\n%s" % (where, d.log_tail())
    if needle:
        assert any(needle in l for l in errs), errs
    assert not d.find("configuration reloaded", mark), d.log_tail()
    # still the old workers, still the old flags (the bad file disabled butlerping)
    time.sleep(0.5)
    assert set(d.worker_pids()) == old, d.log_tail()
    assert not d.find(harness.WORKER_STARTED, mark), d.log_tail()
    for _ in range(4):
        assert ping_ok(d)
    assert d.running()
    return mark


def test_reload_bad_syntax_keeps_old_config(daemon):
    good = daemon.config({"Butler": {"restServerEndpointsEnable": {"butlerping": False}}})
    lines = good.splitlines()
    idx = next(i for i, l in enumerate(lines) if "serverPort" in l)
    lines[idx] = "    serverPort = ;"
    bad_reload(daemon, "\n".join(lines) + "\n", idx + 1, None)


def test_reload_bad_semantics_keeps_old_config(daemon):
    good = daemon.config({"Butler": {"restServerEndpointsEnable": {"butlerping": False}}})
    lines = good.splitlines()
    idx = next(i for i, l in enumerate(lines) if l.strip() == "workers = 2;")
    lines.insert(idx + 1, "  bogusKey = 1;")
    bad_reload(daemon, "\n".join(lines) + "\n", idx + 2, "bogusKey")


def test_reload_after_failed_reload(daemon):
    bad = daemon.config().replace("workers = 2;", 'workers = "two";')
    line = next(i for i, l in enumerate(bad.splitlines(), 1) if "workers" in l)
    bad_reload(daemon, bad, line, "workers")
    old = set(daemon.worker_pids())
    daemon.write_config(daemon.config({"Butler": {"restServerEndpointsEnable": {
        "butlerping": False}}}))
    mark = daemon.mark()
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("configuration reloaded", 10, start=mark)
    daemon.wait_log(harness.GEN_READY, 15, start=mark)
    daemon.wait_workers(2, timeout=15, exclude=old)
    r = daemon.get("/v4/butlerping")
    assert r.status == 404, r


# ------------------------------------------------------------ worker death

def test_sigkill_worker_respawned(daemon):
    pids = daemon.wait_workers(2)
    victim = pids[0]
    mark = daemon.mark()
    os.kill(victim, signal.SIGKILL)
    daemon.wait_log(re.compile(r"worker \d+ pid %d gen \d+ killed by signal 9\b" % victim), 10,
                    start=mark)
    daemon.wait_log(harness.WORKER_STARTED, 10, start=mark)
    new = daemon.wait_workers(2, timeout=10, exclude=[victim])
    assert pids[1] in new
    fresh = [p for p in new if p != pids[1]]
    assert fresh and fresh[0] in started_pids(daemon, mark), daemon.log_tail()
    for _ in range(10):
        assert ping_ok(daemon)
    assert daemon.running()


def test_sigkill_worker_under_load(daemon):
    pids = daemon.wait_workers(2)
    mark = daemon.mark()
    with Load(daemon.port, threads=2) as load:
        time.sleep(0.5)
        os.kill(pids[0], signal.SIGKILL)
        daemon.wait_log(harness.WORKER_STARTED, 10, start=mark)
        time.sleep(1.0)
        with load.lock:
            before = load.ok
        time.sleep(0.5)
    # requests go on after the respawn (failures of requests that were in
    # flight on the killed worker are allowed here)
    print("ok=%d failures=%r" % (load.ok, load.failures[:10]))
    assert load.ok > before
    daemon.wait_workers(2, timeout=10, exclude=[pids[0]])
    assert ping_ok(daemon)


# -------------------------------------------------------------- shutdown

def check_clean_exit(d, sig):
    pids = d.wait_workers(2)
    assert wait_until(lambda: os.path.exists(d.pidfile), 5.0)
    mark = d.mark()
    d.signal(sig)
    rc = d.wait_exit(15)
    assert rc == 0, "exit status %r\n%s" % (rc, d.log_tail())
    assert d.eof.wait(5), "stderr still open after the master exited (a worker left?)"
    lines = [l for l in d.snapshot() if l.strip()]
    assert d.find("shutting down", mark), d.log_tail()
    assert lines and lines[-1].endswith("exiting") and "master[%d]" % d.pid in lines[-1], \
        d.log_tail()
    assert not os.path.exists(d.pidfile), "pid file left behind"
    assert not any(harness.alive(p) for p in pids)


def test_sigterm_clean_exit(daemon):
    check_clean_exit(daemon, signal.SIGTERM)


def test_sigint_clean_exit(daemon):
    check_clean_exit(daemon, signal.SIGINT)


def test_sigterm_lets_request_in_flight_finish(daemon):
    """A request whose head has arrived but whose body is still coming is
    finished after SIGTERM, then the daemon exits 0."""
    ping = daemon.get("/v4/butlerping").body
    with daemon.raw() as c:
        c.send(b"GET /v4/butlerping HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
        time.sleep(0.3)
        mark = daemon.mark()
        daemon.signal(signal.SIGTERM)
        daemon.wait_log("shutting down", 5, start=mark)
        time.sleep(0.3)
        c.send(b"67890")
        r = c.read_response(timeout=5)
        assert r.status == 200 and r.body == ping, r
    assert daemon.wait_exit(15) == 0, daemon.log_tail()


def test_sigterm_stops_accepting(daemon):
    port = daemon.port
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(15) == 0
    try:
        r = harness.request(port, "GET", "/v4/butlerping", timeout=2)
        raise AssertionError("still answering after exit: %r" % r)
    except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
        pass


def test_sigkill_master_leaves_no_worker(daemon):
    pids = daemon.wait_workers(2)
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.proc.wait(5)
    gone = wait_until(lambda: not any(harness.alive(p) for p in pids), 2.0, interval=0.02)
    left = [p for p in pids if harness.alive(p)]
    assert gone, "workers %s still alive 2 s after the master was SIGKILLed" % left
    try:
        harness.request(daemon.port, "GET", "/v4/butlerping", timeout=2)
        raise AssertionError("port still served after the master and workers died")
    except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
        pass


def test_sigusr1_keeps_running(daemon):
    pids = daemon.wait_workers(2)
    daemon.signal(signal.SIGUSR1)
    time.sleep(0.5)
    assert daemon.running()
    assert set(daemon.worker_pids()) == set(pids)
    assert ping_ok(daemon)


def refused_reload(d, text, needle):
    """SIGHUP with TEXT: the reload is refused with NEEDLE in the log and the old
    configuration keeps serving every request."""
    old = set(d.wait_workers(2))
    d.write_config(text)
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reload failed, keeping the old configuration", 10, start=mark)
    assert any(needle in l for l in d.find(d.config_path, mark)), d.log_tail()
    assert not d.find("configuration reloaded", mark), d.log_tail()
    time.sleep(0.5)
    assert set(d.worker_pids()) == old, d.log_tail()
    for _ in range(6):
        assert ping_ok(d)
        r = d.get("/v4/configfile/endpointsenabled")
        assert r.status == 200, r


@pytest.mark.parametrize("text", ["", "# emptied by a careless editor\n",
                                  "butlerd = { workers = 2; };\n"])
def test_reload_file_without_butler_group_keeps_old_config(daemon, text):
    refused_reload(daemon, text, 'no "Butler" group')


def test_reload_that_turns_rest_off_keeps_old_config(daemon):
    text = daemon.config({"Butler": {"restServerConfig": {"enable": False}}})
    refused_reload(daemon, text, "Butler.restServerConfig.enable is not true")


def test_reload_that_disables_every_route_keeps_old_config(daemon):
    text = daemon.config()
    flags = re.search(r"restServerEndpointsEnable = \{(.*?)\n  \};", text, re.S)
    assert flags, text
    text = text.replace(flags.group(1), re.sub(r"= true;", "= false;", flags.group(1)))
    refused_reload(daemon, text, "would turn every route of the running REST API off")
