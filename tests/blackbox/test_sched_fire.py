"""Scheduler firing against the Qlik Sense simulator (spec 2.10.2-2.10.4, 3.7):
an every-second schedule starts its task once per firing second, none doubled with
2 and 4 workers; stop/start/start-all/stop-all take effect at once; the schedules
survive a SIGKILL of the scheduler process, a SIGHUP and a restart, and keep
firing without a double; loaded schedules with an invalid expression or zone never
fire.

Starts are counted from the simulator's record of POST /qrs/task/<id>/start and
its record times (schedfix.check_once_per_firing): a few seconds of firing per
test, no assertion on latency."""

import datetime
import os
import re
import signal
import time

import pytest

import harness
from schedfix import (  # noqa: F401 (fixtures)
    EVERY_SECOND, MISSING_TASK, SCHED_PID, SLOW, TASK, TASK2, TASK3, body, check_compact,
    check_not_made_up, check_once_per_firing, check_status, create, delete, fire_butler,
    fire_failed_re, firing_seconds,
    fired_re, get, listed, parse, read_sched_file, sched_file, sched_pid, sched_started_at,
    settle, start,
    sched_overrides, start_times, startall, stop, stopall, wait_starts, write_sched_file)
from taskfix import butler, certs, check_recorded, sim  # noqa: F401 (fixtures)

FIRST = 6.0 * SLOW      # bound for the first start after a schedule starts running
N = 4                   # firings observed per phase


def every_second(task=TASK, state="started", tz="UTC", name="every second"):
    return body(name=name, cron=EVERY_SECOND, tz=tz, task=task, state=state)


def wait_fired_logs(d, sid, task, n, timeout=None):
    return d.wait_log(fired_re(sid, task), timeout or 5.0 * SLOW, count=n)


def quiet_after(sim, task, t_stop, wait=None):
    """Starts of task recorded after t_stop during WAIT seconds."""
    time.sleep(wait or 2.5 * SLOW)
    return [t for t in start_times(sim, task) if t > t_stop]


# ------------------------------------------------------------------ once per second

@pytest.mark.parametrize("workers", [2, 4])
def test_every_second_starts_task_once_per_second(fire_butler, sim, workers):
    d = fire_butler(workers=workers)
    t_created = time.time()
    o = create(d, every_second(task=TASK.upper()))       # fired with the normalised ID
    wait_starts(sim, TASK, 1, FIRST, after=t_created)
    wait_starts(sim, TASK, N + 1, N + 1 + FIRST)
    check_compact(stop(d, o["id"]), [dict(o, lastKnownState="stopped")])
    times = settle(sim, TASK)
    check_not_made_up(sim, TASK, t_created, t_created, "the schedule was created")
    check_once_per_firing(firing_seconds(d, sim, TASK))
    assert len(times) >= N + 1
    # each firing is logged once, in the form of the spec-derived interface
    lines = wait_fired_logs(d, o["id"], TASK, len(times))
    assert len(lines) == len(times), lines
    # nothing else was started, and every call followed spec 1.12 / 3.3
    assert set(sim.starts()) == {TASK}
    check_recorded(sim)
    assert not d.find("killed by signal")


def test_every_second_two_schedules_same_task_both_fire(fire_butler, sim):
    """Two schedules on one task: two starts per second, one from each (the log
    says which), never more."""
    d = fire_butler(workers=4)
    a = create(d, every_second(name="a"))
    b = create(d, every_second(name="b"))
    wait_starts(sim, TASK, 2 * N, 2 * N + FIRST)
    check_compact(stopall(d), [dict(a, lastKnownState="stopped"),
                               dict(b, lastKnownState="stopped")])
    times = settle(sim, TASK)
    ta = d.find(fired_re(a["id"], TASK))
    tb = d.find(fired_re(b["id"], TASK))
    assert abs(len(ta) - len(tb)) <= 1, (len(ta), len(tb))
    assert len(ta) + len(tb) == len(times), (len(ta), len(tb), len(times))


def test_five_fields_fire_at_second_zero_only(fire_butler, sim):
    """Spec 2.10.2: with 5 fields the second is 0, so `* * * * *` fires once a
    minute, at second 0, not every second. Checked away from second 0."""
    now = datetime.datetime.now(datetime.timezone.utc)
    if not 2 <= now.second <= 50:
        time.sleep((62 - now.second) % 60)
    d = fire_butler()
    create(d, body(cron="* * * * *", tz="UTC", state="started"))
    t0 = time.time()
    until = 3.0 * SLOW
    left = 58 - datetime.datetime.now(datetime.timezone.utc).second
    time.sleep(max(0.0, min(until, left)))
    assert [t for t in start_times(sim, TASK) if t >= t0] == []


def test_every_other_second(fire_butler, sim):
    d = fire_butler()
    o = create(d, body(cron="*/2 * * * * *", tz="UTC", state="started"))
    wait_starts(sim, TASK, 3, 3 * 2 + FIRST)
    stop(d, o["id"])
    settle(sim, TASK)
    check_once_per_firing(firing_seconds(d, sim, TASK), step=2)


def test_stopped_schedule_does_not_fire_until_started(fire_butler, sim):
    d = fire_butler()
    o = create(d, every_second(state="stopped"))
    time.sleep(2.5 * SLOW)
    assert start_times(sim, TASK) == []
    t0 = time.time()
    check_compact(start(d, o["id"]), [dict(o, lastKnownState="started")])
    wait_starts(sim, TASK, 2, 2 + FIRST, after=t0)


def test_failed_start_is_logged_and_not_retried(fire_butler, sim):
    """A task QRS does not know (404): each firing is one call and one log line."""
    d = fire_butler()
    o = create(d, every_second(task=MISSING_TASK))
    wait_starts(sim, MISSING_TASK, 3, 3 + FIRST)
    stop(d, o["id"])
    times = settle(sim, MISSING_TASK)
    check_once_per_firing(firing_seconds(d, sim, MISSING_TASK))  # no retry: one call a second
    d.wait_log(fire_failed_re(o["id"], MISSING_TASK), 5 * SLOW, count=len(times))
    assert len(d.find(fire_failed_re(o["id"], MISSING_TASK))) == len(times)
    assert not d.find(fired_re(o["id"], MISSING_TASK))


def test_time_zone_is_honoured(fire_butler, sim):
    """Two schedules firing every second during one hour of a UTC+5:30 zone: the
    one for the current hour there fires, the one for the current UTC hour does not
    (unless both are the same hour, which they never are)."""
    def hours():
        now = datetime.datetime.now(datetime.timezone.utc)
        kolkata = now + datetime.timedelta(hours=5, minutes=30)
        return now, kolkata
    # stay clear of an hour boundary in either zone (UTC :00 and Kolkata :00 = UTC :30)
    now, _ = hours()
    sec = now.minute * 60 + now.second
    for edge in (0, 1800, 3600):
        if -5 <= sec - edge < 20:
            time.sleep(edge + 20 - sec)
            break
    now, kolkata = hours()
    d = fire_butler()
    here = create(d, body(name="kolkata hour", cron="* * %d * * *" % kolkata.hour,
                          tz="Asia/Kolkata", task=TASK))
    utc = create(d, body(name="utc hour", cron="* * %d * * *" % now.hour, tz="Asia/Kolkata",
                         task=TASK2))
    wait_starts(sim, TASK, 3, 3 + FIRST)
    stopall(d)
    settle(sim, TASK)
    check_once_per_firing(firing_seconds(d, sim, TASK))
    assert start_times(sim, TASK2) == [], "schedule evaluated in the wrong zone"
    assert here["id"] != utc["id"]


# ------------------------------------------------------------------ changes take effect at once

def test_stop_and_start_take_effect_at_once(fire_butler, sim):
    d = fire_butler(workers=4)
    o = create(d, every_second())
    wait_starts(sim, TASK, 2, 2 + FIRST)
    r = stop(d, o["id"])
    t_stop = time.time()
    check_compact(r, [dict(o, lastKnownState="stopped")])
    late = quiet_after(sim, TASK, t_stop)
    assert len(late) <= 1, "still firing after the stop: %s" % late   # one may be in flight
    t_start = time.time()
    check_compact(start(d, o["id"]), [o])
    wait_starts(sim, TASK, 2, 2 + FIRST, after=t_start + 0.01)
    stop(d, o["id"])
    settle(sim, TASK)
    check_once_per_firing(firing_seconds(d, sim, TASK), gaps_allowed=[(t_stop - 1, t_start + 1)])


def test_startall_and_stopall_take_effect_at_once(fire_butler, sim):
    d = fire_butler(workers=4)
    a = create(d, every_second(task=TASK, state="stopped"))
    b = create(d, every_second(task=TASK2, state="stopped"))
    time.sleep(1.5 * SLOW)
    assert start_times(sim, TASK) == [] and start_times(sim, TASK2) == []
    t0 = time.time()
    check_compact(startall(d), [dict(a, lastKnownState="started"),
                                dict(b, lastKnownState="started")])
    wait_starts(sim, TASK, 2, 2 + FIRST, after=t0)
    wait_starts(sim, TASK2, 2, 2 + FIRST, after=t0)
    r = stopall(d)
    t_stop = time.time()
    check_compact(r, [a, b])
    assert len(quiet_after(sim, TASK, t_stop)) <= 1
    assert len([t for t in start_times(sim, TASK2) if t > t_stop]) <= 1
    check_once_per_firing(firing_seconds(d, sim, TASK))
    check_once_per_firing(firing_seconds(d, sim, TASK2))


def test_delete_stops_firing(fire_butler, sim):
    d = fire_butler()
    o = create(d, every_second())
    wait_starts(sim, TASK, 2, 2 + FIRST)
    harness.check_204(delete(d, o["id"]))
    t_del = time.time()
    assert len(quiet_after(sim, TASK, t_del)) <= 1
    check_compact(get(d), [])


# ------------------------------------------------------------------ loaded schedules

def test_loaded_invalid_schedules_never_fire(butler, sim, tmp_path):
    """Loaded with startupState started: a valid every-second schedule fires; one
    with Butler's month 0 and one with an unknown zone (both would fire every second
    if accepted) are listed stopped and never fire, not even after start-all."""
    ov = sched_overrides()
    ep = ov["Butler"].pop("restServerEndpointsEnable")
    d = butler(endpoints=ep, more=ov)           # started with an empty list ...
    good = {"id": "good", "name": "good", "cronSchedule": EVERY_SECOND, "timezone": "UTC",
            "qlikSenseTaskId": TASK, "startupState": "started", "lastKnownState": "started"}
    month0 = dict(good, id="month0", cronSchedule="* * * * 0 *", qlikSenseTaskId=TASK2)
    zone = dict(good, id="zone", timezone="Mars/Olympus_Mons", qlikSenseTaskId=TASK3)
    d.stop()                                    # ... and restarted with this file
    write_sched_file(sched_file(d), [good, month0, zone])
    t_down = time.time()
    d.start()
    t_up = sched_started_at(d, sched_pid(d))
    check_compact(get(d), [good, dict(month0, lastKnownState="stopped"),
                           dict(zone, lastKnownState="stopped")])
    wait_starts(sim, TASK, 3, 3 + FIRST)
    r = startall(d)
    assert r.status == 200, r
    assert [o["lastKnownState"] for o in parse(r)] == ["started", "stopped", "stopped"], r
    time.sleep(2.0 * SLOW)
    assert start_times(sim, TASK2) == [] and start_times(sim, TASK3) == []
    stopall(d)
    check_not_made_up(sim, TASK, t_down, t_up)
    settle(sim, TASK)
    check_once_per_firing(firing_seconds(d, sim, TASK))


# ------------------------------------------------------------------ kill, SIGHUP, restart

def test_scheduler_process_sigkill_respawned_keeps_firing_no_double(fire_butler, sim):
    d = fire_butler(workers=2)
    t_created = time.time()
    a = create(d, every_second(task=TASK))
    b = create(d, every_second(task=TASK2, state="stopped"))
    before = listed(d)
    stored = read_sched_file(sched_file(d))
    first = sched_pid(d)
    wait_starts(sim, TASK, 2, 2 + FIRST)
    mark = d.mark()
    t_kill = time.time()
    os.kill(first, signal.SIGKILL)
    d.wait_log("scheduler process pid %d killed by signal 9" % first, 5 * SLOW, start=mark)
    second = sched_pid(d, exclude=(first,))
    assert second != first and not harness.alive(first)
    t_back = time.time()
    # firing resumes with the next firing time, none doubled, none made up
    wait_starts(sim, TASK, N, N + FIRST, after=t_back)
    assert start_times(sim, TASK2) == []        # the stopped one stays stopped
    # the schedules and the file are as before
    check_compact(get(d), before)
    assert read_sched_file(sched_file(d)) == stored
    # and a change still takes effect at once
    r = stop(d, a["id"])
    t_stop = time.time()
    check_compact(r, [dict(a, lastKnownState="stopped")])
    assert len(quiet_after(sim, TASK, t_stop)) <= 1
    check_not_made_up(sim, TASK, t_created, t_created, "the schedule was created")
    check_not_made_up(sim, TASK, t_kill + 0.25, sched_started_at(d, second))
    check_once_per_firing(firing_seconds(d, sim, TASK, unlogged=1),
                          gaps_allowed=[(t_kill - 1, t_back + 1)])
    check_compact(start(d, b["id"]), [dict(b, lastKnownState="started")])
    wait_starts(sim, TASK2, 2, 2 + FIRST)
    assert d.get("/v4/butlerping").status == 200


def test_sigkill_twice_still_one_scheduler(fire_butler, sim):
    """Two kills in a row (the respawn is throttled): still exactly one scheduler
    process afterwards, so no doubles."""
    d = fire_butler(workers=4)
    create(d, every_second())
    first = sched_pid(d)
    wait_starts(sim, TASK, 1, FIRST)
    t_kill = time.time()
    os.kill(first, signal.SIGKILL)
    second = sched_pid(d, exclude=(first,), timeout=10 * SLOW)
    os.kill(second, signal.SIGKILL)
    third = sched_pid(d, exclude=(first, second), timeout=15 * SLOW)
    t_back = time.time()
    wait_starts(sim, TASK, N, N + FIRST, after=t_back)
    stopall(d)
    check_not_made_up(sim, TASK, t_kill + 0.25, sched_started_at(d, third))
    settle(sim, TASK)
    check_once_per_firing(firing_seconds(d, sim, TASK, unlogged=2),
                          gaps_allowed=[(t_kill - 1, t_back + 1)])
    live = [int(p) for p in SCHED_PID.findall(d.log()) if harness.alive(int(p))]
    assert live == [third], live


def test_sighup_keeps_firing_without_doubles(fire_butler, sim):
    d = fire_butler(workers=2)
    a = create(d, every_second())
    before = listed(d)
    wait_starts(sim, TASK, 2, 2 + FIRST)
    gaps = []
    for _ in range(2):
        mark = d.mark()
        t_hup = time.time()
        d.signal(signal.SIGHUP)
        d.wait_log("configuration reloaded", 10 * SLOW, start=mark)
        t_done = time.time()
        gaps.append((t_hup - 1, t_done + 1))
        wait_starts(sim, TASK, 3, 3 + FIRST, after=t_done)
    check_compact(get(d), before)
    stop(d, a["id"])
    settle(sim, TASK)
    check_once_per_firing(firing_seconds(d, sim, TASK), gaps_allowed=gaps)
    def live():
        return [int(p) for p in SCHED_PID.findall(d.log()) if harness.alive(int(p))]
    assert harness.wait_until(lambda: len(live()) == 1, 10 * SLOW), live()


def test_sighup_applies_scheduler_route_flags(fire_butler, sim):
    """Spec 1.9: flags are read again on reload."""
    d = fire_butler()
    o = create(d, every_second(state="stopped"))
    old = [int(m.group(2)) for m in map(harness.WORKER_STARTED.search,
                                         d.find(harness.WORKER_STARTED))]
    ov = sched_overrides(flags={"getSchedule": False})
    d.overrides = harness.merge(d.overrides, ov)
    d.write_config(d.config())
    mark = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded", 10 * SLOW, start=mark)
    d.wait_log(harness.GEN_READY, 15 * SLOW, start=mark)
    # the old workers may answer while they drain: wait until they are gone
    assert harness.wait_until(lambda: not any(harness.alive(p) for p in old), 15 * SLOW), \
        d.log_tail()
    for _ in range(6):                          # whichever worker answers
        r = get(d)
        assert r.status == 404, r
    check_status(d, [(o["id"], EVERY_SECOND, False)])


def test_restart_keeps_schedules_and_firing_no_double(fire_butler, sim):
    d = fire_butler(workers=2)
    a = create(d, every_second())
    b = create(d, every_second(task=TASK2, state="stopped"))
    check_compact(start(d, b["id"]), [dict(b, lastKnownState="started")])  # not kept
    before = listed(d)
    wait_starts(sim, TASK, 2, 2 + FIRST)
    d.stop()
    t_down = time.time()
    d.start()
    t_up = time.time()
    t_proc = sched_started_at(d, sched_pid(d))
    # same schedules; lastKnownState recomputed from startupState (b stopped again)
    check_compact(get(d), [before[0], dict(before[1], lastKnownState="stopped")])
    wait_starts(sim, TASK, N, N + FIRST, after=t_up)
    n2 = len(start_times(sim, TASK2))
    stop(d, a["id"])
    check_not_made_up(sim, TASK, t_down, t_proc)
    settle(sim, TASK)
    check_once_per_firing(firing_seconds(d, sim, TASK, after=t_down))
    time.sleep(1.0)
    assert len(start_times(sim, TASK2)) == n2   # b does not fire after the restart


def test_changes_while_scheduler_process_is_down_apply_after_respawn(fire_butler, sim):
    """The list lives with the daemon, not in the scheduler process: a stop and a
    create made through the workers while the scheduler process is dead are what the
    respawned process runs."""
    d = fire_butler(workers=4)
    a = create(d, every_second(task=TASK))
    first = sched_pid(d)
    wait_starts(sim, TASK, 2, 2 + FIRST)
    mark = d.mark()
    os.kill(first, signal.SIGKILL)
    d.wait_log("scheduler process pid %d killed by signal 9" % first, 5 * SLOW, start=mark)
    t_stop = time.time()
    check_compact(stop(d, a["id"]), [dict(a, lastKnownState="stopped")])
    b = create(d, every_second(task=TASK2, name="made while down"))
    second = sched_pid(d, exclude=(first,))
    t_back = sched_started_at(d, second)
    wait_starts(sim, TASK2, 3, 3 + FIRST)
    assert [t for t in start_times(sim, TASK) if t > t_stop + 0.25] == []
    check_compact(get(d), [dict(a, lastKnownState="stopped"), b])
    stopall(d)
    check_not_made_up(sim, TASK2, t_stop, max(t_back, t_stop), "the schedule was created")
    settle(sim, TASK2)
    check_once_per_firing(firing_seconds(d, sim, TASK2))


# ------------------------------------------------------------------ a stalled scheduler

def stall_scheduler(d, seconds):
    """SIGSTOP the scheduler process for SECONDS (the machine too busy to run it, or
    suspended), then SIGCONT. Returns (t_stop, t_cont)."""
    pid = sched_pid(d)
    t_stop = time.time()
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
    return t_stop, time.time()


def test_short_stall_loses_no_firing(fire_butler, sim):
    """Firings at most 5 s late all fire once the process runs again, each once."""
    d = fire_butler()
    o = create(d, every_second())
    wait_starts(sim, TASK, 2, 2 + FIRST)
    t_stop, t_cont = stall_scheduler(d, 2.5)
    wait_starts(sim, TASK, 3, 3 + FIRST, after=t_cont)
    stop(d, o["id"])
    settle(sim, TASK)
    secs = firing_seconds(d, sim, TASK)
    check_once_per_firing(secs)                       # no gap across the stall, no double
    assert [s for s in secs if t_stop < s < t_cont - 1], "the stalled seconds were not fired"
    assert not d.find("firing(s) skipped"), d.log_tail()


def test_long_stall_fires_no_burst(fire_butler, sim):
    """After a stall of 8 s, only the firings of the last 5 s fire; the older ones are
    skipped with a warning; none fires twice."""
    d = fire_butler()
    o = create(d, every_second())
    wait_starts(sim, TASK, 2, 2 + FIRST)
    t_stop, t_cont = stall_scheduler(d, 8.0)
    d.wait_log(re.compile(r"schedule %s: \d+ firing\(s\) skipped, the scheduler was \d+ s late"
                          % re.escape(o["id"])), 5 * SLOW)
    wait_starts(sim, TASK, 2, 2 + FIRST, after=t_cont)
    stop(d, o["id"])
    settle(sim, TASK)
    secs = firing_seconds(d, sim, TASK)
    check_once_per_firing(secs, gaps_allowed=[(t_stop, t_cont)])
    during = [s for s in secs if t_stop + 1 < s < t_cont - 1]
    assert during and len(during) <= 6, ("expected the last 5 s of the stall to fire, got %s"
                                         % during)


def test_metrics_count_firings(fire_butler, sim):
    """GET /metrics (butlerd(8), MONITORING): the firings the simulator saw, and
    their delay as a summary."""
    d = fire_butler(more={"butlerd": {"metrics": {"enable": True}}})
    o = create(d, every_second())
    wait_starts(sim, TASK, 2, 2 + FIRST)
    stop(d, o["id"])
    n = len(settle(sim, TASK))
    text = ""

    def sample(name):
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        return float(m.group(1))

    def counted():  # a firing counts once QRS's answer is in, just after the start
        nonlocal text
        text = d.get("/metrics").text
        return sample('butlerd_scheduler_firings_total{outcome="started"}') == n
    assert harness.wait_until(counted, 10), text
    assert sample('butlerd_scheduler_firings_total{outcome="failed"}') == 0
    assert sample("butlerd_scheduler_firing_delay_seconds_count") == n
    assert sample("butlerd_scheduler_firing_delay_seconds_sum") >= 0
