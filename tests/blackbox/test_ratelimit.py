"""The REST rate limit (butlerd-api(7), "Rate limiting"; spec 1.10): per client
address, fixed windows, the x-ratelimit-* headers, 429 with retry-after, one budget
for all workers (counters in shared memory), 404s not counted, and the bounded client
table that drops the client seen least recently. Clients are told apart by binding
their sockets to 127.0.0.1, 127.0.0.2 and 127.0.0.3."""

import http.client
import json
import time

import harness
from harness import JSON_CT, PING_TEXT


def req(port, target="/v4/butlerping", src="127.0.0.1", method="GET", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                   source_address=(src, 0))
    try:
        return harness.conn_request(c, method, target, headers)
    finally:
        c.close()


def limited(max_requests, window=60, clients=None):
    rl = {"enable": True, "maxRequests": max_requests, "windowSeconds": window}
    if clients:
        rl["maxClients"] = clients
    return {"butlerd": {"rateLimit": rl}}


def too_many(seconds):
    unit = "second" if seconds == 1 else "seconds"
    return ('{"statusCode":429,"error":"Too Many Requests","message":'
            '"Rate limit exceeded, retry in %d %s"}' % (seconds, unit)).encode()


def test_off_by_default_no_headers(daemon):
    for _ in range(3):
        r = daemon.get("/v4/butlerping")
        assert r.status == 200, r
        assert r.header("x-ratelimit-limit") is None, r
        assert r.header("x-ratelimit-remaining") is None, r


def test_budget_headers_and_429_across_workers(start_daemon):
    # Ten fresh connections land on three workers as the kernel deals them out: a
    # per-worker count would let more than five through.
    d = start_daemon(limited(5), workers=3)
    d.wait_workers(3)
    for i in range(5):
        r = req(d.port)
        assert r.status == 200, r
        assert json.loads(r.body)["response"] == PING_TEXT
        assert r.header("x-ratelimit-limit") == "5", r
        assert r.header("x-ratelimit-remaining") == str(4 - i), r
        reset = int(r.header("x-ratelimit-reset"))
        assert 1 <= reset <= 60, r
        assert r.header("retry-after") is None, r
        # a 404 in between is neither counted nor given the headers
        n = req(d.port, "/v4/nosuchroute")
        assert n.status == 404, n
        assert n.header("x-ratelimit-limit") is None, n
    for _ in range(5):
        r = req(d.port)
        assert r.status == 429, r
        assert r.header("Content-Type") == JSON_CT, r
        assert r.header("x-ratelimit-limit") == "5", r
        assert r.header("x-ratelimit-remaining") == "0", r
        reset = int(r.header("x-ratelimit-reset"))
        assert 1 <= reset <= 60, r
        assert r.header("retry-after") == str(reset), r
        assert r.body == too_many(reset), r
    # Every route counts, with any method, and each client has its own budget.
    r = req(d.port, "/v4/base16tobase62?base16=ff")
    assert r.status == 429, r
    for src in ("127.0.0.2", "127.0.0.3"):
        r = req(d.port, src=src)
        assert r.status == 200, r
        assert r.header("x-ratelimit-remaining") == "4", r


def test_validation_errors_count(start_daemon):
    d = start_daemon(limited(2))
    r = req(d.port, "/v4/base16tobase62")  # missing parameter: 400, still counted
    assert r.status == 400, r
    assert r.header("x-ratelimit-remaining") == "1", r
    assert req(d.port).header("x-ratelimit-remaining") == "0"
    assert req(d.port, "/v4/base16tobase62").status == 429


def test_window_ends_and_singular_second(start_daemon):
    d = start_daemon(limited(1, window=1))
    assert req(d.port).status == 200
    r = req(d.port)
    if r.status == 200:  # the one-second window ended between the two (slow build)
        r = req(d.port)
    assert r.status == 429, r
    assert r.header("retry-after") == "1", r
    assert r.body == too_many(1), r
    # the budget comes back when the window ends
    assert harness.wait_until(lambda: req(d.port).status == 200, 10, 0.2)


def test_window_is_fixed_from_first_request(start_daemon):
    d = start_daemon(limited(2, window=3))
    t0 = time.monotonic()
    first = req(d.port)
    assert first.status == 200
    reset0 = int(first.header("x-ratelimit-reset"))
    assert reset0 in (2, 3), first
    req(d.port)
    r = req(d.port)
    assert r.status == 429, r
    # the reset counts down to the end of the window that began with the first request
    assert int(r.header("x-ratelimit-reset")) <= reset0
    assert harness.wait_until(lambda: req(d.port).status == 200, 10, 0.2)
    assert time.monotonic() - t0 >= 2.0


def test_full_table_drops_least_recently_seen(start_daemon):
    d = start_daemon(limited(1, clients=2))
    assert req(d.port, src="127.0.0.1").status == 200
    assert req(d.port, src="127.0.0.1").status == 429
    assert req(d.port, src="127.0.0.2").status == 200
    # a third client: 127.0.0.1 was seen least recently and is dropped ...
    assert req(d.port, src="127.0.0.3").status == 200
    # ... so it starts afresh (and now 127.0.0.2 is the one dropped)
    assert req(d.port, src="127.0.0.1").status == 200
    assert req(d.port, src="127.0.0.3").status == 429
    assert req(d.port, src="127.0.0.1").status == 429


def test_worker_killed_keeps_counting(start_daemon):
    """A worker SIGKILLed (here between requests, the robust locks cover the rest)
    takes no counts with it: the budget is in shared memory."""
    d = start_daemon(limited(4), workers=2)
    pids = d.wait_workers(2)
    assert req(d.port).status == 200
    assert req(d.port).status == 200
    import os
    import signal
    victim = pids[0]
    assert harness.is_butlerd(victim)
    os.kill(victim, signal.SIGKILL)
    d.wait_workers(2, exclude=(victim,), timeout=15)
    r = req(d.port)
    assert r.status == 200 and r.header("x-ratelimit-remaining") == "1", r
    assert req(d.port).status == 200
    assert req(d.port).status == 429


def test_counters(start_daemon):
    d = start_daemon(limited(1))
    req(d.port)
    req(d.port)
    req(d.port, src="127.0.0.2")
    cp = harness.run_cli(["-S", "-c", d.config_path])
    assert cp.returncode == 0, cp.stderr
    h = json.loads(cp.stdout)["http"]
    assert h["rateLimited"] == 1 and h["rateLimitClients"] == 2, h


def test_headers_on_answers_written_directly(start_daemon):
    """A POST overridden to HEAD is answered with a head written straight to the
    socket: it carries the rate-limit headers too."""
    d = start_daemon(limited(5))
    with d.raw() as c:
        c.send("POST /v4/butlerping HTTP/1.1\r\nHost: x\r\nX-HTTP-Method-Override: HEAD\r\n"
               "Content-Length: 0\r\n\r\n")
        r = c.read_response(head=True)
    assert r.status == 200, r
    assert r.header("x-ratelimit-limit") == "5" and r.header("x-ratelimit-remaining") == "4", r


def test_exact_budget_under_concurrency(start_daemon):
    """Clients hammering three workers at once: exactly maxRequests get through in
    the window, whatever worker serves them, and remaining never repeats."""
    import threading
    d = start_daemon(limited(50), workers=3)
    d.wait_workers(3)
    results = []
    lock = threading.Lock()

    def client():
        for _ in range(40):
            r = req(d.port)
            with lock:
                results.append((r.status, r.header("x-ratelimit-remaining")))
    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 160
    ok = [rem for st, rem in results if st == 200]
    assert len(ok) == 50, len(ok)
    assert sorted(int(x) for x in ok) == list(range(50)), sorted(ok)
    assert all(st == 429 and rem == "0" for st, rem in results if st != 200)
