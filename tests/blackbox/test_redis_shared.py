"""Active users, the REST rate limit, alert rate limits and UDP execution-ID
de-duplication on Redis shared by several butlerd instances (butlerd(8), ACTIVE
USERS and "Several instances"; butlerd-api(7), "Rate limiting"): two daemons on
different ports with one redis-server and the same key prefix.

Sessions sent to A are listed by B and the other way round, idle expiry and
butlerd.shm.maxActiveUsers hold over both, one rate-limit budget is spent on
both, and one failed-reload event sent to both instances gives one alert. Redis
stopped: the active-user routes answer 503, the rest works, nothing crashes;
Redis back: everything resumes with no restart."""

import http.client
import json
import os
import secrets
import socket
import sys
import threading
import time

import pytest

import harness
import redisfix
from harness import jdump
from alertfix import (A1, T1, certs, sim, hooks, alert_overrides, free_udp_port,  # noqa: F401
                      SIM_DIR)
from broker import STATUS_TOPIC, mqtt_overrides, status_text
from test_mqtt import broker, subs, qrs_overrides  # noqa: F401 (pytest fixtures)
from test_ratelimit import req

sys.path.insert(0, SIM_DIR)
from udp_sender import Sender, join, session_datagram, task_fields  # noqa: E402

TIMEOUT_MS = 500


def users_overrides(**more):
    cfg = {"enable": True, "serverHost": "127.0.0.1", "portTaskFailure": free_udp_port(),
           "portSessionConnectionEvents": free_udp_port()}
    ov = {"Butler": {"restServerEndpointsEnable": {"activeUserCount": True, "activeUsers": True},
                     "udpServerConfig": cfg}}
    return harness.merge(ov, more)


@pytest.fixture
def pair(start_daemon, redis_server):
    """pair(overrides, server=redis_server, each=(ov_a, ov_b)) -> two daemons A
    and B on one Redis and one key prefix, each with its UDP senders (d.sess,
    d.task)."""

    def start(overrides=None, server=None, workers=2, each=(None, None)):
        prefix = "sh%s:" % secrets.token_hex(6)
        ds = []
        for i in range(2):
            ov = users_overrides()
            harness.merge(ov, redisfix.redis_overrides(server or redis_server, prefix,
                                                       TIMEOUT_MS))
            harness.merge(ov, overrides or {})
            harness.merge(ov, each[i] or {})
            d = start_daemon(ov, workers=workers)
            udp = ov["Butler"]["udpServerConfig"]
            d.sess = Sender(udp["portSessionConnectionEvents"])
            d.task = Sender(udp["portTaskFailure"])
            ds.append(d)
        return ds

    return start


@pytest.fixture
def own_redis():
    """A redis-server of this test's own, which the test stops and starts."""
    r = redisfix.RedisServer().start()
    yield r
    r.close()


def start_ev(host, dr, user):
    return session_datagram("start", host, dr, user)


def stop_ev(host, dr, user):
    return session_datagram("stop", host, dr, user)


def users(d):
    r = d.get("/v4/activeusers")
    assert r.status == 200, r
    return json.loads(r.body)


def users_or_none(d):
    """The list, or None while the instance still answers 503 (a worker whose
    reconnect to Redis is backing off)."""
    r = d.get("/v4/activeusers")
    return json.loads(r.body) if r.status == 200 else None


def wait_users(ds, expected, timeout=10.0):
    for d in ds:
        ok = harness.wait_until(lambda: users_or_none(d) == expected, timeout)
        assert ok, "activeusers %s, want %s\n%s" % (users_or_none(d), expected, d.log_tail())
        want = jdump({"response": len(expected)})
        ok = harness.wait_until(lambda: d.get("/v4/activeusercount").body == want, timeout)
        assert ok, d.get("/v4/activeusercount")


# ------------------------------------------------------------------ active users


def test_session_on_a_listed_by_b_stop_on_b_removes_for_both(pair):
    a, b = pair()
    a.sess.send(start_ev("sense1", "ACME", "anna"))
    wait_users((a, b), ["ACME/anna"])
    b.sess.send(start_ev("sense2", "ACME", "bert"))
    # the same user through another proxy host is still one user
    b.sess.send(start_ev("sense2", "ACME", "anna"))
    wait_users((a, b), ["ACME/anna", "ACME/bert"])
    # order of first addition, whichever instance added it
    b.sess.send(stop_ev("sense1", "ACME", "anna"))
    b.sess.send(stop_ev("sense2", "ACME", "anna"))
    wait_users((a, b), ["ACME/bert"])
    for d in (a, b):
        assert d.running(), d.log_tail()


def test_idle_expiry_seen_by_both(pair):
    a, b = pair({"butlerd": {"activeUsers": {"maxIdleSeconds": 1}}})

    def seen_by_both():
        a.sess.send(start_ev("sense1", "ACME", "idle"))  # keeps it from going idle
        return users(a) == users(b) == ["ACME/idle"]

    assert harness.wait_until(seen_by_both, 10, interval=0.2), a.log_tail()
    # no more events: gone on both within the idle time plus the once-a-second sweep
    wait_users((a, b), [], timeout=15)
    assert harness.wait_until(
        lambda: any(d.find("active-user entries expired after 1 s") for d in (a, b)), 5)


def test_max_active_users_across_both(pair):
    a, b = pair({"butlerd": {"shm": {"maxActiveUsers": 3}}})
    for i, u in enumerate("abcde"):
        (a if i % 2 == 0 else b).sess.send(start_ev("h1", "ACME", u))
        # one at a time, so which three got in is known
        if i < 3:
            wait_users((a,), ["ACME/" + x for x in "abcde"[:i + 1]])
    # d went to B and e to A: both refused, each logged by the instance that got it
    for d in (a, b):
        d.wait_log("active users full", 10)
    wait_users((a, b), ["ACME/a", "ACME/b", "ACME/c"])
    # room again after a Stop
    b.sess.send(stop_ev("h1", "ACME", "a"))
    wait_users((a, b), ["ACME/b", "ACME/c"])
    a.sess.send(start_ev("h1", "ACME", "f"))
    wait_users((a, b), ["ACME/b", "ACME/c", "ACME/f"])


# ------------------------------------------------------------------ REST rate limit


def test_rate_limit_budget_shared(pair):
    a, b = pair({"butlerd": {"rateLimit": {"enable": True, "maxRequests": 6,
                                           "windowSeconds": 60}}})
    for i in range(6):
        r = req((a, b)[i % 2].port)
        assert r.status == 200, r
        assert r.header("x-ratelimit-remaining") == str(5 - i), r
    for d in (a, b):
        r = req(d.port)
        assert r.status == 429, r
        assert r.header("x-ratelimit-remaining") == "0", r
        assert 1 <= int(r.header("retry-after")) <= 60, r
    # another client has its own budget on both
    r = req(b.port, src="127.0.0.2")
    assert r.status == 200 and r.header("x-ratelimit-remaining") == "5", r


class ReplyDropper:
    """A TCP proxy in front of a redis-server. drop(marker): the next command holding
    MARKER is passed on to Redis, which runs it, and the client's connection is
    then closed before the answer reaches it."""

    def __init__(self, target_port):
        self.target = target_port
        self.marker = None
        self.dropped = threading.Event()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def drop(self, marker):
        self.dropped.clear()
        self.marker = marker

    def close(self):
        self.ls.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
                s = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            st = {"mute": False}
            threading.Thread(target=self._up, args=(c, s, st), daemon=True).start()
            threading.Thread(target=self._down, args=(s, c, st), daemon=True).start()

    def _up(self, c, s, st):
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                if self.marker and self.marker in data:
                    self.marker = None
                    st["mute"] = True  # Redis runs it; its answer is thrown away
                s.sendall(data)
        except OSError:
            pass
        self._close(c, s)

    def _down(self, s, c, st):
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                if st["mute"]:
                    # Redis has run the command and answered: the client's
                    # connection closes before the answer reaches it
                    self.dropped.set()
                    break
                c.sendall(data)
        except OSError:
            pass
        self._close(c, s)

    @staticmethod
    def _close(c, s):
        for x in (c, s):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()


def test_command_lost_after_sending_is_not_sent_again(start_daemon, redis_server):
    """Redis ran a command but the connection closed before its answer arrived: the
    command may have run, so it is not sent again on a new connection (a count
    would go up twice, a claim would lose to itself); the request fails open."""
    proxy = ReplyDropper(redis_server.port)
    try:
        prefix = "lost%s:" % secrets.token_hex(6)
        ov = redisfix.redis_overrides(proxy, prefix, TIMEOUT_MS)
        harness.merge(ov, {"butlerd": {"rateLimit": {"enable": True, "maxRequests": 5,
                                                     "windowSeconds": 60}}})
        d = start_daemon(ov, workers=1)
        src = "127.0.0.9"
        r = req(d.port, src=src)
        assert r.status == 200 and r.header("x-ratelimit-remaining") == "4", r
        proxy.drop(b"7f000009")  # the client's address in the rate-limit script
        r = req(d.port, src=src)
        assert r.status == 200, r
        assert proxy.dropped.is_set()
        key = prefix + "rl:"
        keys = [k for k in redis_server.cli("--scan", "--pattern", key + "*").split() if k]
        assert len(keys) == 1, keys
        # one request counted once by Redis: not a second time by a resend
        assert redis_server.cli("GET", keys[0]).strip() == "2", d.log_tail()
        # and the next request is counted on a new connection
        assert harness.wait_until(lambda: req(d.port, src=src).header("x-ratelimit-remaining")
                                  in ("1", "2"), 10), d.log_tail()
    finally:
        proxy.close()


# ------------------------------------------------------------------ alerts and de-duplication


def alert_pair(pair, sim, certs, hook, tmp_path, server=None, **kw):
    """Two instances with the same webhook alert, each with its own spool."""
    ovs = []
    for n in ("a", "b"):
        ov, _ = alert_overrides(sim, certs, tmp_path / ("spool" + n),
                                hooks_=[(hook.base + "/hook", "POST")], **kw)
        del ov["Butler"]["udpServerConfig"]["portTaskFailure"]  # pair() has its own
        ovs.append(ov)
    return pair(server=server, workers=1, each=ovs)


def test_one_event_to_both_instances_gives_one_alert(pair, sim, certs, hooks, tmp_path):
    hook = hooks()
    a, b = alert_pair(pair, sim, certs, hook, tmp_path)
    fields = task_fields("failed", task_name="Reload task of App1", task_id=T1, app_id=A1,
                         app_name="App1", log_time="2026-11-22 23:49:53,123", level="ERROR",
                         message="Max retries reached",
                         execution_id="1a2b3c4d-0000-4000-8000-%012x" % secrets.randbits(48))
    a.task.send(join(fields))
    b.task.send(join(fields))
    hook.wait(1)
    # the other instance saw it and left it: logged, and no second request
    assert harness.wait_until(
        lambda: any(d.find("handled by another instance") for d in (a, b)), 10), \
        a.log_tail() + b.log_tail()
    assert len(hook.requests) == 1, hook.requests
    # a new execution of the same task is a new event; the webhook's rate limit is 0
    fields[9] = "1a2b3c4d-0000-4000-8000-%012x" % secrets.randbits(48)
    b.task.send(join(fields))
    a.task.send(join(fields))
    hook.wait(2)
    assert harness.wait_until(
        lambda: sum(len(d.find("handled by another instance")) for d in (a, b)) == 2, 10)
    assert len(hook.requests) == 2, hook.requests


def test_alert_rate_limit_window_shared(pair, sim, certs, hooks, tmp_path):
    """Two executions of one task, one sent to A and one to B inside the
    webhook's rate-limit window: one alert."""
    hook = hooks()
    a, b = alert_pair(pair, sim, certs, hook, tmp_path, rate=300)
    for d in (a, b):
        fields = task_fields("failed", task_name="Reload task of App1", task_id=T1,
                             app_id=A1, app_name="App1", message="Max retries reached",
                             execution_id="2a2b3c4d-0000-4000-8000-%012x" % secrets.randbits(48))
        d.task.send(join(fields))
        if d is a:
            hook.wait(1)
    assert harness.wait_until(lambda: b.find("notify rate-limited"), 10), b.log_tail()
    assert len(hook.requests) == 1, hook.requests


def test_one_event_to_both_one_mqtt_message_and_aggregates_of_both(pair, sim, certs,
                                                                    broker, subs):
    s, st = subs("qliksense/#"), subs(STATUS_TOPIC)
    each = [harness.merge(mqtt_overrides(broker, "butlerd-%s" % n), qrs_overrides(sim, certs))
            for n in "ab"]
    a, b = pair(workers=1, each=each)
    for n in "ab":
        st.wait_message(STATUS_TOPIC, status_text(broker.port, "butlerd-" + n), 10)
    name = "Reload %s" % secrets.token_hex(4)
    fields = task_fields("failed", task_name=name, task_id=T1, app_id=A1, app_name="App1",
                         execution_id="3a2b3c4d-0000-4000-8000-%012x" % secrets.randbits(48))
    mark = s.mark()
    a.task.send(join(fields))
    b.task.send(join(fields))
    s.wait_message("qliksense/task_failure", name, 10, mark)
    assert harness.wait_until(
        lambda: any(d.find("handled by another instance") for d in (a, b)), 10)
    assert [m.payload for m in s.since(mark, "qliksense/task_failure")] == [name.encode()]
    # the aggregate topics count the users of both instances
    a.sess.send(start_ev("sense1", "ACME", "anna"))
    wait_users((b,), ["ACME/anna"])
    b.sess.send(start_ev("sense2", "ACME", "bert"))
    s.wait_last("qliksense/users/active/count", "2", 10)
    s.wait_last("qliksense/users/active/usernames", '["ACME/anna","ACME/bert"]', 10)


# ------------------------------------------------------------------ outage


def test_redis_down_users_503_rest_works_then_resumes(pair, own_redis):
    a, b = pair(server=own_redis)
    a.sess.send(start_ev("sense1", "ACME", "before"))
    wait_users((a, b), ["ACME/before"])
    own_redis.stop()
    marks = [d.mark() for d in (a, b)]
    for d in (a, b):
        for path in ("/v4/activeusers", "/v4/activeusercount"):
            r = d.get(path)
            assert r.status == 503, (path, r)
            assert b"Active users unavailable: their Redis server cannot be reached" in r.body, r
        assert d.get("/v4/butlerping").status == 200
    # session events meanwhile neither block nor crash the master: they wait in
    # the master's queue for Redis to come back
    for i in range(50):
        a.sess.send(start_ev("sense1", "ACME", "during%d" % i))
    for d in (a, b):
        assert d.get("/v4/butlerping").status == 200
        assert d.running(), d.log_tail()
    a.wait_log("cannot be reached", 10, marks[0])
    # back (empty: the test server keeps nothing), with no restart: the queued
    # events are applied, in order
    own_redis.start()
    a.sess.send(start_ev("sense1", "ACME", "after"))
    assert harness.wait_until(lambda: "ACME/after" in (users_or_none(a) or []), 15), \
        a.log_tail()
    wait_users((a, b), ["ACME/during%d" % i for i in range(50)] + ["ACME/after"])
    for d in (a, b):
        assert d.running(), d.log_tail()


def session_received(d):
    cp = harness.run_cli(["-S", "-c", d.config_path])
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)["udp"]["sessionEvents"]["received"]


def test_hung_redis_does_not_hold_up_the_intake(pair, own_redis):
    """A Redis that accepts connections but never answers (SIGSTOP): the master
    keeps taking session events (it never waits on Redis), the active-user
    routes answer 503 after the command timeout, the rest is served; SIGCONT ->
    the queued events are applied."""
    import signal
    a, b = pair(server=own_redis, workers=1)
    a.sess.send(start_ev("sense1", "ACME", "first"))
    wait_users((a, b), ["ACME/first"])
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    try:
        before = session_received(a)
        for i in range(30):
            a.sess.send(start_ev("sense1", "ACME", "hung%d" % i))
        assert harness.wait_until(lambda: session_received(a) == before + 30, 10)
        assert a.get("/v4/butlerping").status == 200
        r = b.get("/v4/activeusers")
        assert r.status == 503, r
        assert a.running() and b.running()
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    wait_users((a, b), ["ACME/first"] + ["ACME/hung%d" % i for i in range(30)], timeout=20)


def test_rate_limit_fails_open_while_redis_is_down(pair, own_redis):
    a, b = pair({"butlerd": {"rateLimit": {"enable": True, "maxRequests": 2,
                                           "windowSeconds": 60}}}, server=own_redis)
    src = "127.0.0.3"  # a client of its own: the test's other requests do not count
    own_redis.stop()
    for d in (a, b):
        for _ in range(4):
            r = req(d.port, src=src)
            assert r.status == 200, r
            assert r.header("x-ratelimit-remaining") == "2", r
    own_redis.start()
    # counted again once the workers reconnect: the budget runs out
    assert harness.wait_until(lambda: req(a.port, src=src).status == 429, 15), a.log_tail()
    assert req(b.port, src=src).status == 429


def test_event_handled_by_both_while_redis_is_down(pair, own_redis, sim, certs, hooks,
                                                   tmp_path):
    """De-duplication fails open: without Redis each instance handles the event
    (an alert twice is better than none)."""
    hook = hooks()
    a, b = alert_pair(pair, sim, certs, hook, tmp_path, server=own_redis)
    own_redis.stop()
    fields = task_fields("failed", task_name="Reload task of App1", task_id=T1, app_id=A1,
                         app_name="App1", message="Max retries reached",
                         execution_id="4a2b3c4d-0000-4000-8000-%012x" % secrets.randbits(48))
    a.task.send(join(fields))
    b.task.send(join(fields))
    hook.wait(2)
    for d in (a, b):
        assert d.running(), d.log_tail()
        assert not d.find("handled by another instance")


def test_hung_redis_holds_up_only_its_own_requests(start_daemon, own_redis):
    """A hung Redis (SIGSTOP) with a long command timeout: on a one-worker
    instance, a request waiting on Redis (the active users) runs on a job thread,
    and the rate limit asked by the worker's HTTP thread gives up after a short
    bound and fails open, so pings keep being answered while Redis is silent."""
    import signal
    ov = users_overrides(butlerd={"rateLimit": {"enable": True, "maxRequests": 1000,
                                                "windowSeconds": 60}})
    harness.merge(ov, redisfix.redis_overrides(own_redis, timeout_ms=20000))
    d = start_daemon(ov, workers=1)
    assert req(d.port).status == 200
    assert d.get("/v4/activeusers").status == 200
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    slow = {}
    try:
        def users_request():
            c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
            try:
                slow["r"] = harness.conn_request(c, "GET", "/v4/activeusers", None)
            finally:
                c.close()
        t = threading.Thread(target=users_request)
        t.start()
        time.sleep(0.5)  # the users request is waiting on Redis now
        # each ping: a rate-limit check on the HTTP thread, which a 20 s command
        # timeout would hold for 20 s; the client gives up after 10 s
        for _ in range(3):
            r = req(d.port)
            assert r.status == 200, r
        assert t.is_alive()  # still waiting on the silent Redis
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    t.join(60)
    assert slow["r"].status in (200, 503), slow["r"]
    assert d.running()
