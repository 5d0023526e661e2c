"""Task lookups read as QRS sends them (issue 19; butlerd(8) PERFORMANCE and
"Starting tasks"): the task/full list of a tag is read one task at a time, so a
worker holds the IDs and names it found, never QRS's whole reply; a list that fails
half way
(cut off, corrupt, over butlerd.qrs.maxReplyBytes) gives the answer it gave when
the reply was read whole first, and a partial list starts nothing.

The tasks here carry 40 custom properties each, about 8 KB of JSON in task/full
(qlik_sim.make_many_tasks), as a site that tags its tasks richly has."""

import json
import re
import time

import harness
from qlik_sim import _condensed_task, _generic_full_task, make_many_tasks
from taskfix import (FAILED_STARTING, NAMES, T1, T2, T3, T4, check_bytes, check_json, err,
                     item_id, item_kv, item_tag, kv_get, once, result, start, started)
from taskfix import butler, certs, sim  # noqa: F401 (pytest fixtures)

MiB = 1 << 20
TAG = "Bulk"


def bulk_tasks(sim, n):
    """N reload tasks tagged TAG, about 8 KB each in task/full, after the fixture's;
    returns their IDs in QRS's order (their names go into NAMES)."""
    tasks = make_many_tasks(sim.find_task(T1), n, TAG)
    sim.tasks.extend(tasks)
    NAMES.update((t["id"], t["name"]) for t in tasks)
    return [t["id"] for t in tasks]


def rss(pid):
    """The resident set of PID, in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def full_reply(sim, ids):
    """The bytes of the simulator's GET /qrs/task/full answer listing IDS."""
    return json.dumps([_generic_full_task(sim.find_task(t)) for t in ids],
                      ensure_ascii=False).encode()


def test_tag_on_many_tasks_starts_them_all_without_holding_the_reply(sim, butler):
    d = butler(workers=1)
    ids = bulk_tasks(sim, 300)
    assert len(full_reply(sim, ids)) > 1 * MiB
    r = start(d, "-", [item_tag(TAG)], timeout=120)
    check_json(r, result(tag=ids))
    assert started(sim) == once(*ids)
    assert [q.path for q in sim.requests if q.method == "GET"] == ["/qrs/task/full"]


def test_large_corrupt_list_counts_as_empty_and_memory_stays_bounded(sim, butler):
    """A 40 MB task/full reply whose last bytes are not JSON: as before, a list
    that is not an array counts as empty (no task found, nothing started, one log
    line); the worker never held the reply, and gives back what reading it left
    in its heap."""
    d = butler(workers=1)
    ids = bulk_tasks(sim, 5000)
    reply = full_reply(sim, ids)
    assert len(reply) > 40 * 1000 * 1000
    bad = reply[:-2] + b"}}}"
    b = sim.set_behaviour(r"^/qrs/task/full$", status=200, body=bad, times=2)
    # the first Qlik Sense request of a worker starts its job threads, OpenSSL and
    # libcurl: measured from the second on
    check_json(start(d, "-", [item_tag(TAG)], timeout=120), result())
    time.sleep(1.5)  # a quiet second: the worker gives back what that one freed
    mark = d.mark()
    pid = d.worker_pids()[0]
    before = rss(pid)
    r = start(d, "-", [item_tag(TAG), item_kv("ns", "k", "v")], timeout=120)
    check_json(r, result())
    assert b.applied == 2
    assert sim.starts() == []
    d.wait_log('QRS lookup task/full for "tags.name eq \'%s\'" answered HTTP 200 without '
               'a task list' % TAG, 5, start=mark)
    assert json.loads(kv_get(d, "ns", "k").body)["value"] == "v"
    peak = harness.peak_rss(d.worker_pids())
    print("peak worker RSS with a %.0f MiB task/full reply: %.1f MiB"
          % (len(bad) / MiB, peak / MiB))
    # a sanitizer build's shadow memory and quarantine dwarf what is measured
    if not harness.sanitizers_active():
        assert peak < 32 * MiB, peak
        # and what the job thread freed goes back to the system once the worker's
        # Qlik Sense work has been quiet for a second (5 MB stayed, per job thread)
        deadline = time.monotonic() + 10
        while rss(pid) > before + 2 * MiB and time.monotonic() < deadline:
            time.sleep(0.2)
        print("worker RSS before %.1f MiB, after the quiet second %.1f MiB"
              % (before / MiB, rss(pid) / MiB))
        assert rss(pid) <= before + 2 * MiB, (before, rss(pid))


def test_tag_list_cut_off_half_way_starts_nothing(sim, butler):
    """The connection ends in the middle of the list: the start fails as it did
    when the reply was read whole (500), no task of the half read is
    started, and a key-value item before the tag is stored, one after it is not."""
    d = butler(workers=1, short=True)
    ids = bulk_tasks(sim, 200)
    reply = full_reply(sim, ids)
    b = sim.set_behaviour(r"^/qrs/task/full$", cut_at=len(reply) // 2, times=1)
    mark = d.mark()
    r = start(d, "-", [item_kv("ns", "before", "1"), item_tag(TAG),
                       item_kv("ns", "after", "2")], timeout=60)
    check_bytes(r, 500, FAILED_STARTING)
    assert b.applied == 1
    assert sim.starts() == []
    d.wait_log(re.compile(r"QRS GET /qrs/task/full failed: .+"), 5, start=mark)
    assert json.loads(kv_get(d, "ns", "before").body)["value"] == "1"
    check_bytes(kv_get(d, "ns", "after"), 400, err(400, "Key 'after' not found in namespace: ns"))
    # the same worker reads the next list whole
    check_json(start(d, "-", [item_tag(TAG)], timeout=60), result(tag=ids))


def test_id_check_cut_off_after_some_tasks_leaves_them_unchecked(sim, butler):
    """IDs are checked in one GET /qrs/task; when its answer ends after the first
    tasks arrived whole, those IDs are as unchecked as the rest: invalid, and not
    started (as when the reply was read whole and the call failed)."""
    d = butler(workers=1, short=True)
    order = [t["id"] for t in sim.tasks if t["id"] in (T1, T2, T3, T4)]
    first = len(json.dumps([_condensed_task(sim.find_task(order[0]))]).encode())
    b = sim.set_behaviour(r"^/qrs/task$", cut_at=first + 20, times=1)
    r = start(d, "-", [item_id(t) for t in (T1, T2, T3, T4)], timeout=60)
    check_json(r, result(invalid=[T1, T2, T3, T4]))
    assert b.applied == 1
    assert sim.starts() == []
    # and when QRS answers whole, they are started
    check_json(start(d, "-", [item_id(t) for t in (T1, T2, T3, T4)], timeout=60),
               result(started=[T1, T2, T3, T4]))


def test_id_check_cut_off_after_a_bad_id_reports_nothing_of_it(sim, butler):
    """A task ID that is not a GUID, read before the ID check's answer ends: the
    check failed, so that ID is not reported under tasksFailed either (as when
    the reply was read whole), only the IDs asked for are invalid."""
    d = butler(workers=1, short=True)
    listed = [{"id": "not-a-guid", "name": "Other"}, _condensed_task(sim.find_task(T1)),
              _condensed_task(sim.find_task(T2))]
    cut = len(json.dumps(listed[:2]).encode())
    b = sim.set_behaviour(r"^/qrs/task$", body=listed, cut_at=cut, times=1)
    r = start(d, "-", [item_id(T1), item_id(T2)], timeout=60)
    check_json(r, result(invalid=[T1, T2]))
    assert b.applied == 1
    assert sim.starts() == []
