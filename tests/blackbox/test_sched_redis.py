"""Schedules on Redis (butlerd(8), SCHEDULER, "Several instances"; issue 16): two
butlerd instances A and B share one real redis-server (redisfix.py) and the Qlik
Sense simulator (taskfix.py). The list is shared (a change on one is seen by the
other's next route), concurrent changes are all kept, and exactly one instance fires
each firing second, also after the lease holder's scheduler process or the whole
holder instance is killed; while Redis is down the schedule routes answer 503 and
nothing fires, and firing resumes when it is back."""

import calendar
import os
import secrets
import signal
import threading
import time

import pytest

import harness
import redisfix
from redisfix import redis_overrides
import schedfix as sf
from schedfix import SLOW, TASK, TASK2, TASK3, EVERY_SECOND, NEVER_NOW
from taskfix import certs, sim, butler  # noqa: F401 (fixtures)
from schedfix import fire_butler  # noqa: F401 (fixture)

LEASE_MS = 2000
UNAVAIL = "Scheduler unavailable: its Redis server cannot be reached, try again later"


@pytest.fixture
def pair(fire_butler, redis_server, tmp_path):  # noqa: F811
    """Factory: pair(server=redis_server, files=(None, None)) -> (A, B), two instances
    on one key prefix (a fresh one: Redis holds no list yet). FILES: schedule lists
    written as each one's schedule file (d.sched_path) before it starts; B starts
    once A has put its list into Redis."""

    def make(server=None, files=(None, None)):
        server = server or redis_server
        prefix = "s%s:" % secrets.token_hex(6)
        out = []
        for i, lst in enumerate(files):
            path = str(tmp_path / ("sched-%s-%d.json" % (prefix[:-1], i)))
            if lst is not None:
                sf.write_sched_file(path, lst)
            more = redis_overrides(server, prefix, leaseMs=LEASE_MS)
            d = fire_butler(configfile=path, more=more)
            d.sched_path = path
            if i == 0:
                d.wait_log("seeded the shared schedule list", 10 * SLOW)
            out.append(d)
        return out

    return make


def ids(d):
    return [s["id"] for s in sf.listed(d)]


def holder_of(ds, after):
    """The instance that logged firings of TASK after time AFTER (log time)."""
    got = []
    for d in ds:
        lines = [l for l in d.find(sf.FIRING_LINE) if sf.log_time(l) > after]
        if lines:
            got.append(d)
    assert len(got) == 1, "firing instances: %d" % len(got)
    return got[0]


def all_seconds(ds, task):
    """Firing seconds of TASK logged by every instance in DS, together."""
    out = []
    for d in ds:
        out += _secs(d, task)
    return sorted(out)


def _secs(d, task):
    return [calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
            for m in sf.FIRING_LINE.finditer(d.log()) if m.group(2) == task]


def check_no_double(times):
    assert len(times) == len(set(times)), "a second fired twice: %s" % sf.fmt_times(times)


def wait_fired_after(ds, task, t, n, timeout):
    """Wait until the instances together logged N firings of TASK at seconds > T."""
    ok = harness.wait_until(lambda: len([s for s in all_seconds(ds, task) if s > t]) >= n,
                            timeout)
    assert ok, "fewer than %d firings after %.0f: %s" % (
        n, t % 1000, sf.fmt_times(all_seconds(ds, task)))


# ---------------------------------------------------------------- the shared list

def test_change_on_one_seen_by_the_other(pair):
    a, b = pair()
    s = sf.create(a, sf.body(name="shared", cron=NEVER_NOW, tags=["x"]))
    sid = s["id"]
    # every route reads the list's version in Redis first: B sees it at once
    sf.check_compact(sf.get(b, sid), [s])
    assert ids(b) == [sid]
    r = sf.stop(b, sid)
    stopped = dict(s, lastKnownState="stopped")
    sf.check_compact(r, [stopped])
    sf.check_compact(sf.get(a, sid), [stopped])
    sf.check_status(a, [(sid, NEVER_NOW, False)])
    sf.check_compact(sf.startall(a), [s])
    sf.check_compact(sf.get(b), [s])
    # each instance's schedule file is a backup copy of the shared list
    assert harness.wait_until(
        lambda: [x["id"] for x in sf.read_sched_file(b.sched_path)] == [sid], 5 * SLOW)
    r = sf.delete(a, sid)
    assert r.status == 204, r
    assert sf.listed(b) == []
    sf.check_error(sf.delete(b, sid), 400,
                   "REST SCHEDULER: Delete for schedule ID %s failed." % sid)
    sf.check_error(sf.start(b, sid), 400, "REST SCHEDULER: Failed starting schedule ID %s." % sid)
    sf.check_error(sf.get(a, sid), 400, "REST SCHEDULER: Schedule ID %s not found." % sid)


def test_concurrent_creates_all_kept(pair):
    a, b = pair()
    made, errors = [], []
    lock = threading.Lock()

    def run(d, k):
        for i in range(15):
            r = sf.post(d, sf.body(name="c%d-%d" % (k, i)))
            with lock:
                if r.status == 201:
                    made.append(sf.parse(r)["id"])
                else:
                    errors.append(r)

    ts = [threading.Thread(target=run, args=(d, k)) for k, d in enumerate((a, b, a, b))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:3]
    assert len(made) == 60
    la, lb = ids(a), ids(b)
    assert la == lb, "the two instances list different schedules"
    assert sorted(la) == sorted(made)
    # concurrent deletes and stops lose nothing either
    doomed = made[:20]
    ts = [threading.Thread(target=lambda d=d, part=part: [sf.delete(d, x) for x in part])
          for d, part in ((a, doomed[:10]), (b, doomed[10:]))]
    ts.append(threading.Thread(target=lambda: sf.stopall(a)))
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert sorted(ids(b)) == sorted(made[20:])
    assert all(s["lastKnownState"] == "stopped" for s in sf.listed(a))


def test_seeded_from_the_first_instance_file(pair):
    good = {"id": "g-1", "created": "2024-01-01T00:00:00.000Z", "name": "good",
            "cronSchedule": NEVER_NOW, "timezone": "UTC", "qlikSenseTaskId": TASK,
            "startupState": "stopped", "tags": []}
    bad = dict(good, id="b-1", name="bad", cronSchedule="not a cron")
    other = dict(good, id="o-1", name="B's own")
    a, b = pair(files=([good, bad], [other]))
    # Redis held no list: A's file seeded it; B's copy (and its file) follow Redis
    assert ids(b) == ["g-1", "b-1"]
    assert harness.wait_until(
        lambda: [x["id"] for x in sf.read_sched_file(b.sched_path)] == ["g-1", "b-1"],
        5 * SLOW)
    # a schedule that cannot run stays stopped on start-all, and starting it fails
    got = sf.parse(sf.startall(b))
    assert [x["lastKnownState"] for x in got] == ["started", "stopped"]
    sf.check_error(sf.start(a, "b-1"), 400, "REST SCHEDULER: Failed starting schedule ID b-1.")
    assert [x["lastKnownState"] for x in sf.listed(a)] == ["started", "stopped"]


# ---------------------------------------------------------------- firing

def test_one_instance_fires_each_second_and_takes_over(pair, sim):  # noqa: F811
    a, b = pair()
    ds = (a, b)
    t0 = time.time()
    s = sf.create(a, sf.body(cron=EVERY_SECOND, task=TASK))
    wait_fired_after(ds, TASK, t0, 5, 15 * SLOW)
    time.sleep(1.5)
    h = holder_of(ds, t0)
    secs = all_seconds(ds, TASK)
    check_no_double(secs)
    sf.check_once_per_firing(secs)
    starts = [t for t in sf.start_times(sim, TASK) if t > t0]
    assert harness.wait_until(lambda: len(all_seconds(ds, TASK)) >= len(starts), 5 * SLOW)

    # the holder's scheduler process dies: a scheduler (the respawned one or the
    # other instance's) takes the lease once it expires
    pid = sf.sched_pid(h)
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    wait_fired_after(ds, TASK, t_kill + 1, 4, 20 * SLOW)
    secs = all_seconds(ds, TASK)
    check_no_double(secs)
    limit = LEASE_MS / 1000.0 + 3
    windows = [(t_kill - 1, t_kill + limit)]
    sf.check_once_per_firing(secs, gaps_allowed=windows)
    gap = max(y - x for x, y in zip(secs, secs[1:]))
    assert gap <= limit, "takeover took %d s" % gap
    print("firing seconds apart across the SIGKILL of the holder's scheduler: %d" % gap)

    # the whole holder instance dies at once (SIGKILL of the master and of every
    # child: nobody gives the lease up, it must expire)
    t1 = time.time()
    time.sleep(1.2)
    h = holder_of(ds, t1)
    other = b if h is a else a
    h.record_workers()
    kids = [p for p in harness.children(h.pid) if harness.is_butlerd(p)]
    assert sf.sched_pid(h) in kids
    t_kill = time.time()
    for p in kids + [h.pid]:
        os.kill(p, signal.SIGKILL)
    h.proc.wait(10)
    wait_fired_after([other], TASK, t_kill + 1, 4, 20 * SLOW)
    secs = all_seconds(ds, TASK)
    check_no_double(secs)
    windows.append((t_kill - 1, t_kill + limit))
    sf.check_once_per_firing(secs, gaps_allowed=windows)
    gap = max(y - x for x, y in zip(secs, secs[1:]) if y > t_kill - 1)
    assert gap <= limit, "takeover took %d s" % gap
    print("firing seconds apart across the kill of the holder instance: %d" % gap)
    assert other.find("this instance fires the schedules")
    # each firing reached QRS once: no more starts than logged firings, but for
    # one per kill (QRS read it, the process died before writing its line)
    starts = [t for t in sf.start_times(sim, TASK) if t > t0]
    assert len(starts) <= len(secs) + 2
    r = sf.delete(other, s["id"])
    assert r.status == 204, r


def test_paused_holder_fires_nothing_when_it_wakes(pair, sim):  # noqa: F811
    a, b = pair()
    ds = (a, b)
    t0 = time.time()
    sf.create(b, sf.body(cron=EVERY_SECOND, task=TASK3))
    wait_fired_after(ds, TASK3, t0, 3, 15 * SLOW)
    h = holder_of(ds, t0)
    pid = sf.sched_pid(h)
    t_stop = time.time()
    os.kill(pid, signal.SIGSTOP)   # paused past its lease, not dead
    try:
        wait_fired_after(ds, TASK3, t_stop + LEASE_MS / 1000.0, 3, 20 * SLOW)
    finally:
        os.kill(pid, signal.SIGCONT)
    t_cont = time.time()
    wait_fired_after(ds, TASK3, t_cont + 1, 3, 20 * SLOW)
    secs = all_seconds(ds, TASK3)
    check_no_double(secs)
    limit = LEASE_MS / 1000.0 + 3
    sf.check_once_per_firing(secs, gaps_allowed=[(t_stop - 1, t_stop + limit)])
    starts = [t for t in sf.start_times(sim, TASK3) if t > t0]
    assert len(starts) <= len(secs)


def test_only_the_lease_holder_fires(pair, redis_server, sim):  # noqa: F811
    """A lease taken by someone else (a token no instance has) stops all firing
    until it expires; then an instance takes it with a new fencing number."""
    a, b = pair()
    ds = (a, b)
    t0 = time.time()
    sf.create(a, sf.body(cron=EVERY_SECOND, task=TASK))
    wait_fired_after(ds, TASK, t0, 2, 15 * SLOW)
    prefix = a.overrides["butlerd"]["store"]["redis"]["keyPrefix"]
    epoch = int(redis_server.cli("GET", prefix + "sched:epoch"))
    redis_server.cli("SET", prefix + "sched:lease", "intruder", "PX", "4000")
    redis_server.cli("INCR", prefix + "sched:epoch")
    t_steal = time.time()
    wait_fired_after(ds, TASK, t_steal + 4, 2, 20 * SLOW)
    secs = all_seconds(ds, TASK)
    check_no_double(secs)
    during = [x for x in secs if t_steal + 1 < x < t_steal + 3.5]
    assert not during, "fired while another held the lease: %s" % sf.fmt_times(during)
    assert int(redis_server.cli("GET", prefix + "sched:epoch")) >= epoch + 2


def test_redis_down_503_no_firing_then_resumes(pair, sim):  # noqa: F811
    server = redisfix.RedisServer().start()
    try:
        a, b = pair(server=server)
        ds = (a, b)
        t0 = time.time()
        s = sf.create(b, sf.body(cron=EVERY_SECOND, task=TASK2))
        wait_fired_after(ds, TASK2, t0, 2, 15 * SLOW)
        server.stop()
        t_down = time.time()
        for d in ds:
            sf.check_error(sf.get(d), 503, UNAVAIL)
            sf.check_error(sf.post(d, sf.body()), 503, UNAVAIL)
            sf.check_error(sf.stop(d, s["id"]), 503, UNAVAIL)
            sf.check_error(sf.delete(d, s["id"]), 503, UNAVAIL)
            sf.check_error(sf.status(d), 503, UNAVAIL)
        time.sleep(4)
        # starts claimed before the outage may still arrive in its first second
        late = [t for t in sf.start_times(sim, TASK2) if t > t_down + 1.5]
        assert not late, "fired while Redis was down: %s" % sf.fmt_times(late)
        for d in ds:
            assert d.running(), d.log_tail()
        assert any(d.find("no longer fires the schedules: Redis cannot be reached") for d in ds)
        # Redis comes back empty: an instance puts its copy back, firing resumes
        server.start()
        t_up = time.time()
        wait_fired_after(ds, TASK2, t_up, 3, 20 * SLOW)
        check_no_double(all_seconds(ds, TASK2))
        for d in ds:
            sf.check_compact(sf.get(d, s["id"]), [s])
    finally:
        server.close()


def test_shared_list_too_big_for_one_instance_logged_once(fire_butler, redis_server, tmp_path):  # noqa: F811
    """B's butlerd.scheduler.maxSchedules is below the shared list's length: B keeps
    its old copy and says so once per process, not at every refresh (its scheduler
    process asks Redis again every lease third)."""
    prefix = "big%s:" % secrets.token_hex(6)
    path_a = str(tmp_path / "sched-a.json")
    one = {"id": "x", "created": "2024-01-01T00:00:00.000Z", "name": "n",
           "cronSchedule": NEVER_NOW, "timezone": "UTC", "qlikSenseTaskId": TASK,
           "startupState": "stopped", "tags": []}
    sf.write_sched_file(path_a, [dict(one, id="big-%d" % i) for i in range(3)])
    a = fire_butler(configfile=path_a,
                    more=redis_overrides(redis_server, prefix, leaseMs=LEASE_MS))
    a.wait_log("seeded the shared schedule list", 10 * SLOW)
    more = redis_overrides(redis_server, prefix, leaseMs=LEASE_MS)
    harness.merge(more, {"butlerd": {"scheduler": {"maxSchedules": 2}}})
    b = fire_butler(configfile=str(tmp_path / "sched-b.json"), more=more)
    b.wait_log("exceeds this instance", 10 * SLOW)
    time.sleep(4)  # six refreshes of B's scheduler process
    # one from the scheduler process, one more if a worker's route refreshed
    assert len(b.find("exceeds this instance")) <= 2, b.log_tail()
