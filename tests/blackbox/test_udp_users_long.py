"""Active users whose host, directory and user ID are long (issue 19, UDP row).

The active-user table keeps the first 128 bytes of each entry in one dense array
and the rest of a long entry elsewhere (butlerd(8), PERFORMANCE). These tests
send Start and Stop session datagrams whose host, directory and ID together are
just under, at and over the part kept together (86 bytes), up to the 766-byte
limit with multi-byte UTF-8, and check what a user sees: the REST lists and the
MQTT user list, in order of first addition, and an entry that is too long is
refused with a warning and changes nothing. After a crash of the master the
re-attached shared memory holds no active user: the list starts empty, as
butlerd(8), ACTIVE USERS says."""

import json
import os

from test_mqtt import broker, subs  # noqa: F401 (pytest fixtures)
from test_udp import (T_COUNT, T_USERS, check_endpoints, free_udp_ports, per_server, start_ev,
                      stop_ev, udp_daemon, udp_overrides, users_now, wait_users)
from test_kv_persistence import KvDaemon
from udp_sender import Sender
import harness

HOST, DIR = "sense1", "ACME"             # 6 + 4 bytes: a user of 76 bytes makes 86
AT = "a" * 76                            # exactly the head's share
OVER = "b" * 77                          # one byte into the tail
LONG_HOST = "h" * 200
LONG_DIR = "D" * 66
LONGEST = "\u00e9" * 250                 # 500 bytes (500 characters is the field limit)
TOO_LONG_DIR = "E" * 67                  # with LONG_HOST and LONGEST: 767 bytes


def expected(*pairs):
    return ["%s/%s" % p for p in pairs]


def test_long_entries_listed_refreshed_and_removed(start_daemon, broker, subs):
    s = subs("qliksense/#")
    d = udp_daemon(start_daemon, broker, workers=2)
    tx = d.sess_tx
    tx.send(start_ev(HOST, DIR, "short"))
    tx.send(start_ev(HOST, DIR, AT))
    tx.send(start_ev(HOST, DIR, OVER))
    tx.send(start_ev(LONG_HOST, LONG_DIR, LONGEST))
    tx.send(start_ev(LONG_HOST, TOO_LONG_DIR, LONGEST))     # refused
    want = expected((DIR, "short"), (DIR, AT), (DIR, OVER), (LONG_DIR, LONGEST))
    wait_users(d, want)
    check_endpoints(d, want, rounds=3)
    s.wait_last(T_COUNT, "4")
    s.wait_last(T_USERS, harness.jdump(want).decode("utf-8"))
    s.wait_last(per_server(HOST), "3")
    assert harness.wait_until(
        lambda: any("not added" in l and "766 bytes" in l for l in d.snapshot()), 5), \
        d.log_tail()

    # a refresh of a long entry keeps its place; a stop removes exactly that entry
    tx.send(start_ev(HOST, DIR, OVER))
    tx.send(stop_ev(HOST, DIR, AT))
    want = expected((DIR, "short"), (DIR, OVER), (LONG_DIR, LONGEST))
    wait_users(d, want)
    tx.send(stop_ev(LONG_HOST, LONG_DIR, LONGEST))
    tx.send(stop_ev(HOST, DIR, OVER))
    tx.send(start_ev(HOST, DIR, AT))                          # back, now the newest
    want = expected((DIR, "short"), (DIR, AT))
    wait_users(d, want)
    check_endpoints(d, want, rounds=3)
    s.wait_last(T_USERS, json.dumps(want, separators=(",", ":")))
    s.wait_last(T_COUNT, "2")
    assert d.running(), d.log_tail()


def test_reattached_region_starts_with_no_active_user(tmp_path):
    tport, sport = free_udp_ports()
    d = KvDaemon(tmp_path / "d", None, 2)
    os.makedirs(d.tmpdir, exist_ok=True)
    d.overrides = harness.merge(harness.kv_overrides(), udp_overrides(tport, sport))
    try:
        d.start()
        tx = Sender(sport)
        tx.send(start_ev(HOST, DIR, "before"))
        tx.send(start_ev(LONG_HOST, LONG_DIR, LONGEST))
        wait_users(d, expected((DIR, "before"), (LONG_DIR, LONGEST)))
        d.kill_master()
        assert d.shm_paths(), "the crashed master's shared memory is gone"
        d.restart()
        assert users_now(d) == []
        tx.send(start_ev(HOST, DIR, "after"))
        wait_users(d, expected((DIR, "after")))
        check_endpoints(d, expected((DIR, "after")), rounds=2)
    finally:
        try:
            d.stop()
        finally:
            d.cleanup_shm()
