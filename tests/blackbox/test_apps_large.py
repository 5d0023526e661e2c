"""A large apps list read as QRS sends it (issue 19, butlerd(8) PERFORMANCE, the
apps list): 20,000 apps of about 2 KB each come back complete and in QRS's order,
with a worker that never holds QRS's reply; a reply that QRS cuts off or corrupts
in the middle, or that passes butlerd.qrs.maxReplyBytes half way, gives the same
error and log lines as a reply that fails at once, and the worker serves the next
list."""

import json
import re

import harness
from taskfix import APPS, FAILED_APPS, check_bytes, err, jdump
from taskfix import butler, certs, sim  # noqa: F401 (pytest fixtures)
from qlik_sim import make_many_apps

MiB = 1 << 20
N = 20000


def many(sim):
    """Serves N generated apps after the fixture's, in full (about 2 KB each, as
    QRS does); returns the list butlerd should answer and QRS's reply."""
    sim.apps.extend(make_many_apps(N))
    sim.full_app_list = True
    expected = jdump([{"id": i, "name": n} for i, n in APPS] +
                     [{"id": a["id"], "name": a["name"]} for a in sim.apps[len(APPS):]])
    return expected, json.dumps(sim.apps, ensure_ascii=False).encode()



def test_20000_apps_complete_and_in_order(sim, butler):
    d = butler(workers=1)
    expected, reply = many(sim)
    assert len(reply) > 40 * 1000 * 1000
    for _ in range(2):
        r = d.request("GET", "/v4/apps/list", timeout=60)
        check_bytes(r, 200, expected)
    assert [(q.method, q.path) for q in sim.requests] == [("GET", "/qrs/app")] * 2
    # the worker held one app at a time and the answer (~1.5 MB), not QRS's 40 MB
    peak = harness.peak_rss(d.worker_pids())
    print("peak worker RSS with a %.0f MiB apps reply: %.1f MiB" % (len(reply) / MiB, peak / MiB))
    # a sanitizer build's shadow memory and quarantine dwarf what is measured
    if not harness.sanitizers_active():
        assert peak < 32 * MiB, peak


def test_reply_cut_off_in_the_middle(sim, butler):
    """The connection ends half way through a reply with a Content-Length: the
    apps read so far are not answered; the next list is whole."""
    d = butler(workers=1)
    expected, reply = many(sim)
    b = sim.set_behaviour(r"^/qrs/app$", cut_at=len(reply) // 2, times=1)
    mark = d.mark()
    check_bytes(d.request("GET", "/v4/apps/list", timeout=60), 500, FAILED_APPS)
    assert b.applied == 1
    d.wait_log(re.compile(r"QRS GET /qrs/app failed: .+"), 5, start=mark)
    d.wait_log(re.compile(r"apps list: QRS answered .+"), 5, start=mark)
    check_bytes(d.request("GET", "/v4/apps/list", timeout=60), 200, expected)


def test_reply_corrupt_in_the_middle(sim, butler):
    """Bad JSON in the middle of a 200 reply: the same 500 and log line as a reply
    that is not a list at all; the next list is whole."""
    d = butler(workers=1)
    expected, reply = many(sim)
    at = reply.index(b'"name": ', len(reply) // 2)
    bad = reply[:at] + b'"name" = ' + reply[at + 8:]
    for body in (bad, b'{"not": "a list"}', reply[:len(reply) // 2] + b",]"):
        b = sim.set_behaviour(r"^/qrs/app$", status=200, body=body, times=1)
        mark = d.mark()
        check_bytes(d.request("GET", "/v4/apps/list", timeout=60), 500, FAILED_APPS)
        assert b.applied == 1
        d.wait_log("apps list: QRS answered without an app list", 5, start=mark)
        assert d.find("QRS GET /qrs/app failed", start=mark) == []
    check_bytes(d.request("GET", "/v4/apps/list", timeout=60), 200, expected)


def test_reply_limit_passed_half_way(sim, butler):
    """maxReplyBytes below the reply: a 502 naming the limit, with a Content-Length
    (refused before the body) and without one (refused once the limit is read)."""
    limit = 16 * MiB
    d = butler(workers=1, more={"butlerd": {"qrs": {"maxReplyBytes": limit}}})
    expected, reply = many(sim)
    msg = err(502, "QRS request failed: reply larger than butlerd.qrs.maxReplyBytes "
                   "(%d bytes)" % limit)
    for chunked in (False, True):
        b = sim.set_behaviour(r"^/qrs/app$", stream_bytes=len(reply), chunked=chunked, times=1)
        mark = d.mark()
        harness.check_reply(d.request("GET", "/v4/apps/list", timeout=60), 502, msg)
        assert b.applied == 1
        d.wait_log(re.compile(r"QRS GET /qrs/app failed: reply larger than "
                              r"butlerd\.qrs\.maxReplyBytes"), 5, start=mark)
        d.wait_log("apps list: QRS reply larger than butlerd.qrs.maxReplyBytes", 5, start=mark)
    sim.full_app_list = False  # condensed apps: the same list in under 16 MiB
    check_bytes(d.request("GET", "/v4/apps/list", timeout=60), 200, expected)
