"""A burst of UDP session events with MQTT on (butlerd(8), ACTIVE USERS, "MQTT
messages"): the master holds the event publications of a burst back and sends
them together; every event still gives its message, in the order of the
datagrams, and an event after the burst is published on its own."""

import harness
from test_mqtt import broker, subs  # noqa: F401 (pytest fixtures)
from test_udp import T_COUNT, T_START, T_STOP, line, start_ev, stop_ev, udp_daemon


def test_burst_of_session_events_all_published_in_order(start_daemon, broker, subs):
    s = subs("qliksense/#")
    d = udp_daemon(start_daemon, broker, workers=1)
    n = 3000
    users = ["u%04d" % i for i in range(n)]
    for u in users:  # as fast as one sender goes: full batches at the master
        d.sess_tx.send(start_ev("burst.node", "ACME", u))
    got = s.wait_count(T_START, n, timeout=60)
    assert [m.payload for m in got] == [line("burst.node", "ACME", u).encode() for u in users]
    s.wait_last(T_COUNT, str(n), timeout=30)
    # one more event, alone: not held back by the burst before it
    d.sess_tx.send(stop_ev("burst.node", "ACME", "u0000"))
    s.wait_message(T_STOP, line("burst.node", "ACME", "u0000"))
    s.wait_last(T_COUNT, str(n - 1), timeout=30)
    assert d.running(), d.log_tail()
    assert harness.wait_until(lambda: d.get("/v4/butlerping").status == 200, 5)
