"""Shared helpers and fixtures of the scheduler tests (test_sched_api.py,
test_sched_fire.py), written from spec sections 2.10, 1.7-1.9, 3.7 and 7.2 S7.

* sched_overrides(): the configuration that turns the scheduler and its routes on.
* sched: a factory fixture for a daemon with the scheduler on and no QRS.
* fire_butler: a factory fixture for a daemon with the scheduler on that talks to the
  Qlik Sense simulator (taskfix's `sim`), so firings can be counted.
* REST helpers for every route (create, get, start, stop, startall, stopall, delete,
  status) and checks of the 201 body, the error bodies and the schedule file.
* Firing analysis: start_times() reads the simulator's record time of every
  POST /qrs/task/<id>/start; check_once_per_firing() checks "once per firing, none
  doubled, none missed" from their spacing, and check_not_made_up() that a (re)started
  scheduler process does not fire a second that began before it ran.
"""

import calendar
import json
import math
import os
import re
import subprocess
import time
import urllib.parse

import pytest

import harness
from harness import JSON_CT, TEXT_CT, jdump, err, validation  # noqa: F401 (re-exported)

SLOW = 3.0 if harness.sanitizers_active() else 1.0   # timeouts scale on sanitizer builds

FLAGS = ("createNewSchedule", "getSchedule", "getScheduleStatusAll", "updateSchedule",
         "deleteSchedule", "startSchedule", "stopSchedule")
MEMBERS = ("id", "created", "name", "cronSchedule", "timezone", "qlikSenseTaskId",
           "startupState", "tags", "lastKnownState")
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
CREATED = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z\Z")

# a cron expression that cannot fire while a test runs (only at midnight of 1 January)
NEVER_NOW = "0 0 1 1 *"
EVERY_SECOND = "* * * * * *"
TZ = "Europe/Stockholm"
# tasks of the simulator's fixture (tests/qlik-sim/fixture.json, see taskfix.py)
TASK = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
TASK2 = "7552d9fc-d1bb-4975-9a38-18357de531ea"
TASK3 = "fb0f317d-da91-4b86-aafa-0174ae1e8c8f"
MISSING_TASK = "0fe447a9-ba1f-44a9-ac23-68c3a1d88d8b"   # well-formed, not in QRS

SCHED_PID = re.compile(r"scheduler process pid (\d+) started")


FIRED_AT = r"fired at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def fired_re(sid, task):
    return re.compile(r"schedule %s %s: started task %s\b"
                      % (re.escape(sid), FIRED_AT, re.escape(task)))


def fire_failed_re(sid, task):
    return re.compile(r"schedule %s %s: starting task %s failed: \S"
                      % (re.escape(sid), FIRED_AT, re.escape(task)))


# ---------------------------------------------------------------- configuration

def sched_overrides(configfile="schedule.json", enable=True, flags=None, max_schedules=None):
    """Scheduler on (or not) with every route flag on, except those in FLAGS set
    to False. max_schedules sets butlerd.scheduler.maxSchedules."""
    f = {k: True for k in FLAGS}
    f.update(flags or {})
    ov = {"Butler": {"restServerEndpointsEnable": {"scheduler": f},
                     "scheduler": {"enable": enable, "configfile": configfile}}}
    if max_schedules is not None:
        ov["butlerd"] = {"scheduler": {"maxSchedules": max_schedules}}
    return ov


@pytest.fixture
def sched(start_daemon):
    """Factory: sched(workers=2, configfile="schedule.json", enable=True, flags=None,
    max_schedules=None, more=None) -> a running butlerd with the scheduler on (no QRS:
    use schedules that do not fire during the test, e.g. NEVER_NOW)."""

    def make(workers=2, configfile="schedule.json", enable=True, flags=None,
             max_schedules=None, more=None):
        ov = sched_overrides(configfile, enable, flags, max_schedules)
        harness.merge(ov, more or {})
        return start_daemon(ov, workers=workers)

    return make


@pytest.fixture
def fire_butler(butler):
    """Factory: fire_butler(workers=2, configfile="schedule.json", more=None) -> a
    butlerd with the scheduler on that talks to the simulator (taskfix.butler)."""

    def make(workers=2, configfile="schedule.json", more=None):
        ov = sched_overrides(configfile)
        harness.merge(ov, more or {})
        ep = ov["Butler"].pop("restServerEndpointsEnable")
        return butler(endpoints=ep, workers=workers, more=ov)

    return make


def sched_file(d, configfile="schedule.json"):
    return os.path.join(d.tmpdir, configfile)


# ---------------------------------------------------------------- REST helpers

def body(name="Sales reload, weekdays", cron=NEVER_NOW, tz=TZ, task=TASK, state="started",
         tags=None, **extra):
    """A create body, members in the order of spec 2.10.6."""
    b = {"name": name, "cronSchedule": cron, "timezone": tz, "qlikSenseTaskId": task,
         "startupState": state}
    if tags is not None:
        b["tags"] = tags
    b.update(extra)
    return b


def post(d, b, ctype="application/json", headers=None, method="POST"):
    if b is not None and not isinstance(b, bytes):
        b = jdump(b)
    h = {"Content-Type": ctype} if ctype else {}
    h.update(headers or {})
    return d.request(method, "/v4/schedules", h, b)


def get(d, sid=None):
    if sid is None:
        return d.get("/v4/schedules")
    return d.get("/v4/schedules?id=" + urllib.parse.quote(sid, safe=""))


def put(d, target, headers=None):
    return d.request("PUT", target, headers or {}, None)


def pq(sid):
    return urllib.parse.quote(sid, safe="")


def start(d, sid):
    return put(d, "/v4/schedules/%s/start" % pq(sid))


def stop(d, sid):
    return put(d, "/v4/schedules/%s/stop" % pq(sid))


def startall(d):
    return put(d, "/v4/schedules/startall")


def stopall(d):
    return put(d, "/v4/schedules/stopall")


def delete(d, sid):
    return d.request("DELETE", "/v4/schedules/%s" % pq(sid))


def status(d):
    return d.get("/v4/schedules/status")


def parse(r):
    """The JSON body of r, object member order kept."""
    return json.loads(r.body.decode("utf-8"))


def listed(d):
    r = get(d)
    assert r.status == 200, r
    assert r.header("Content-Type") == JSON_CT, r
    return parse(r)


def expected(b, sid, created=None, last=None):
    """The schedule object butlerd should store and show for create body b
    (spec 2.10.1 order, task ID lower-cased, lastKnownState from startupState)."""
    o = {"id": sid}
    if created is not None:
        o["created"] = created
    for k in ("name", "cronSchedule", "timezone", "qlikSenseTaskId", "startupState", "tags"):
        if k in b:
            o[k] = b[k]
    o["qlikSenseTaskId"] = o["qlikSenseTaskId"].lower()
    o["lastKnownState"] = last or ("started" if b["startupState"] in ("start", "started")
                                   else "stopped")
    return o


def check_compact(r, obj, status=200):
    """r is STATUS with exactly obj as compact JSON, members in order (spec 1.7)."""
    assert r.status == status, r
    assert r.header("Content-Type") == JSON_CT, r
    got = parse(r)
    assert got == obj, "\n got: %s\nwant: %s" % (got, obj)
    assert r.body == jdump(obj), "\n got: %r\nwant: %r" % (r.body, jdump(obj))
    assert r.header("Content-Length") == str(len(r.body)), r


def check_created(r, b, t0, t1):
    """A 201 of spec 2.10.6 for body b sent between t0 and t1 (time.time()).
    Returns the object."""
    assert r.status == 201, r
    assert r.header("Content-Type") == JSON_CT, r
    o = parse(r)
    assert isinstance(o, dict), o
    sid, created = o.get("id"), o.get("created")
    assert isinstance(sid, str) and UUID4.match(sid), "id is not a lower-case UUID v4: %r" % sid
    m = isinstance(created, str) and CREATED.match(created)
    assert m, "created is not ISO 8601 UTC with milliseconds: %r" % created
    ts = calendar.timegm(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S"))
    ts += int(m.group(7)) / 1000.0
    assert t0 - 1.0 <= ts <= t1 + 1.0, "created %s is not the time of the request" % created
    want = expected(b, sid, created)
    assert list(o) == list(want), "members/order: %s, want %s" % (list(o), list(want))
    check_compact(r, want, 201)
    return o


def create(d, b):
    """POST b, check the 201, return the new schedule object."""
    t0 = time.time()
    r = post(d, b)
    return check_created(r, b, t0, time.time())


def check_error(r, status, message, code=None):
    harness.check_reply(r, status, err(status, message, code))


def not_found(method, target):
    return harness.not_found(method, target)


def status_text(items):
    """Expected body of GET /v4/schedules/status (spec 2.10.10); items are
    (id, cron, running) in list order."""
    lines = ["{"] + ["'%s': %s status: %s" % (i, c, "Running" if run else "Stopped")
                     for i, c, run in items] + ["}"]
    return ("\n".join(lines) + "\n").encode("utf-8")


def check_status(d, items):
    r = status(d)
    assert r.status == 200, r
    assert r.header("Content-Type") == TEXT_CT, r
    assert r.body == status_text(items), "\n got: %r\nwant: %r" % (r.body, status_text(items))
    assert r.header("Content-Length") == str(len(r.body)), r


# ---------------------------------------------------------------- the schedule file

def read_sched_file(path):
    """Parse the schedule file of spec 2.10.4 and check its form: JSON
    {"butlerSchedule":[...]}, pretty-printed with 2-space indentation (each line
    indented by two spaces per level of nesting open at its start). Returns the list."""
    with open(path, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")
    doc = json.loads(text)
    assert isinstance(doc, dict) and list(doc) == ["butlerSchedule"], doc
    assert isinstance(doc["butlerSchedule"], list), doc
    check_indentation(text)
    return doc["butlerSchedule"]


def check_indentation(text):
    lines = text.rstrip("\n").split("\n")
    assert len(lines) > 1, "schedule file is not pretty-printed: %r" % text[:200]
    depth, in_str, esc = 0, False, False
    for n, line in enumerate(lines, 1):
        assert "\t" not in line[:len(line) - len(line.lstrip())], "tab indentation, line %d" % n
        indent = len(line) - len(line.lstrip(" "))
        stripped = line.lstrip(" ")
        want = depth - 1 if stripped[:1] in ("}", "]") else depth
        assert indent == 2 * want, ("line %d indented by %d, want %d (2 per level):\n%s"
                                    % (n, indent, 2 * want, text[:2000]))
        for c in line:
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
    assert depth == 0


def write_sched_file(path, schedules):
    with open(path, "w") as f:
        json.dump({"butlerSchedule": schedules}, f, indent=2)


def dir_entries(path):
    return sorted(os.listdir(path))


class ReadOnlyDir:
    """Context: DIR refuses new entries, renames and removals. As root a mode
    change does not stop writes, so the immutable attribute is used there; the test
    is skipped if neither works."""

    def __init__(self, path):
        self.path = path
        self.how = None

    def __enter__(self):
        if os.geteuid() != 0:
            os.chmod(self.path, 0o555)
            self.how = "chmod"
        else:
            cp = subprocess.run(["chattr", "+i", self.path], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, timeout=10)
            if cp.returncode != 0:
                pytest.skip("cannot make a directory read-only for root: %s" % cp.stderr)
            self.how = "chattr"
        probe = os.path.join(self.path, ".probe")
        try:
            open(probe, "w").close()
        except OSError:
            return self
        os.unlink(probe)
        self.__exit__()
        pytest.skip("the directory stayed writable")

    def __exit__(self, *a):
        if self.how == "chattr":
            subprocess.run(["chattr", "-i", self.path], timeout=10)
        elif self.how == "chmod":
            os.chmod(self.path, 0o755)
        self.how = None


def run_expect_exit(d, timeout=None):
    """Start butlerd -f on d's configuration in d's directory and expect it to exit
    on its own (a fatal startup error). Returns (returncode, stderr); if it still runs
    after the timeout it is killed and the test fails."""
    timeout = timeout or 10.0 * SLOW
    d.port = harness.free_port()
    d.write_config(d.config())
    p = subprocess.Popen([harness.binary(), "-f", "-c", d.config_path], cwd=d.tmpdir,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        _, errb = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, errb = p.communicate(timeout=10)
        for pid in harness.children(p.pid):
            if harness.is_butlerd(pid):
                os.kill(pid, 9)
        raise AssertionError("butlerd kept running (killed after %.0fs); log:\n%s"
                             % (timeout, errb.decode("utf-8", "replace")[-3000:]))
    return p.returncode, errb.decode("utf-8", "replace")


# ---------------------------------------------------------------- processes

def sched_pid(d, exclude=(), timeout=None):
    """PID of the live scheduler process, from the master's `scheduler process pid
    <N> started` lines, not one of exclude."""
    end = time.monotonic() + (timeout or 10.0 * SLOW)
    while True:
        pids = [int(p) for p in SCHED_PID.findall(d.log())]
        live = [p for p in pids if p not in exclude and harness.alive(p)
                and harness.proc_stat(p)[1] == d.pid]
        if live:
            d.seen_pids.add(live[-1])
            return live[-1]
        if time.monotonic() >= end:
            raise AssertionError("no live scheduler process (lines: %s)\n%s"
                                 % (pids, d.log_tail()))
        time.sleep(0.05)


# ---------------------------------------------------------------- firings

def start_times(sim, task):
    """Record times (time.time() at the simulator) of POST /qrs/task/<task>/start."""
    path = "/qrs/task/%s/start" % task
    return sorted(r.time for r in sim.requests if r.method == "POST" and r.path == path)


def wait_starts(sim, task, n, timeout, after=0.0):
    """Wait until at least n starts of task were recorded after time `after`."""
    def got():
        return [t for t in start_times(sim, task) if t > after]
    ok = harness.wait_until(lambda: len(got()) >= n, timeout)
    assert ok, "wanted %d starts of %s within %.1fs, got %d: %s" % (
        n, task, timeout, len(got()), fmt_times(got()))
    return got()


def fmt_times(times):
    return ", ".join("%.3f" % (t % 1000) for t in times)


FIRING_LINE = re.compile(r"schedule \S+ fired at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)Z: "
                         r"(?:started task|starting task) ([0-9a-f-]+)")


def firing_seconds(d, sim, task, timeout=None, after=0.0, unlogged=0):
    """The firing times (whole seconds, UTC) of the starts of TASK, from the
    scheduler's log lines, once there is one line for every start request the
    simulator received (each line is written after QRS answered). A start sent late
    (a loaded machine) keeps its firing time, so lateness is not mistaken for a
    double or a gap, as arrival times alone could be. AFTER: only the starts that
    reached the simulator after that time (the daemon's log starts over when the
    test restarts it). UNLOGGED: starts that may lack their line because the
    scheduler process was SIGKILLed after QRS read the request but before the line
    was written (one per kill of a process firing every second)."""
    def secs():
        return sorted(calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
                      for m in FIRING_LINE.finditer(d.log()) if m.group(2) == task)
    def starts():
        return [t for t in start_times(sim, task) if t > after]
    harness.wait_until(lambda: len(secs()) >= len(starts()) - unlogged, timeout or 5 * SLOW)
    got, starts = secs(), starts()
    # one line per firing; a start cut off before QRS read it (a stalled process) is
    # logged as failed and never recorded, so there may be more lines than starts
    assert len(got) >= len(starts) - unlogged, (
        "%d start requests of %s reached QRS but %d firings were logged\nstarts: %s"
        % (len(starts), task, len(got), fmt_times(starts)))
    return got


def check_once_per_firing(times, step=1, gaps_allowed=()):
    """TIMES are firing seconds (firing_seconds()): each firing at most once (none
    doubled), and every firing STEP seconds apart present, except where a missing
    one falls into one of the windows gaps_allowed [(t_from, t_to)] (a kill or
    restart)."""
    times = sorted(times)
    for t_a, t_b in zip(times, times[1:]):
        gap = t_b - t_a
        assert gap >= step, (
            "firing time %.0f fired %s (gap %d s): a doubled or made-up firing\nfirings: %s"
            % (t_a % 1000, "twice" if gap == 0 else "too soon after the one before",
               gap, fmt_times(times)))
        if gap > step:
            ok = any(t_a <= w_b and t_b >= w_a for w_a, w_b in gaps_allowed)
            assert ok, ("firing(s) missed between %.0f and %.0f (%d s apart), outside a "
                        "kill/restart\nfirings: %s"
                        % (t_a % 1000, t_b % 1000, gap, fmt_times(times)))


LOG_TS = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z ")


def log_time(line):
    """time.time() of a log line (its UTC timestamp with ms)."""
    m = LOG_TS.match(line)
    assert m, line
    return calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + \
        int(m.group(2)) / 1000.0


def sched_started_at(d, pid):
    """Log time of the master's `scheduler process pid <pid> started` line."""
    lines = d.find("scheduler process pid %d started" % pid)
    assert lines, d.log_tail()
    return log_time(lines[-1])


def check_not_made_up(sim, task, t_down, t_up, what="the scheduler process started"):
    """Spec 2.10.3 and the firing rule of the scheduler process: a firing that falls
    while no scheduler runs is not made up; a scheduler process that starts at t_up
    resumes with the next firing time, the first whole second after t_up. So no start
    may reach the simulator between t_down (the old scheduler gone) and that second:
    a start there fired a second that began before the process existed. The same
    holds for a schedule created (or started) at t_up: its first firing time is after
    t_up."""
    nxt = math.ceil(t_up)
    bad = [t for t in start_times(sim, task) if t_down <= t < nxt]
    assert not bad, (
        "start(s) at %s, before %.3f: %s at %.3f, and a second that had begun before "
        "that was fired (made up; spec 2.10.3: firing resumes with the next firing "
        "time)\nstarts: %s"
        % (fmt_times(bad), nxt % 1000, what, t_up % 1000, fmt_times(start_times(sim, task))))


def settle(sim, task, quiet=None):
    """After a schedule was stopped: wait until no start of task arrived for QUIET
    seconds (bounded); returns the start times."""
    quiet = quiet or 1.5 * SLOW
    end = time.monotonic() + 10 * SLOW
    last = len(start_times(sim, task))
    since = time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.1)
        n = len(start_times(sim, task))
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return start_times(sim, task)
