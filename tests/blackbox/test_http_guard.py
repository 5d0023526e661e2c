"""Connection guard (issue 11, defects 2 and 7): deadlines for the whole request
head and body, the per-client connection limit, short idle keep-alive when a
worker is near its connection limit, and job pools per kind of work so that
requests stuck on QRS do not hold up file operations.

Slow clients connect from 127.0.0.2 and honest ones from 127.0.0.1 (both are
the loopback interface), so the per-address limit tells them apart."""

import json
import resource
import select
import socket
import threading
import time

import pytest

import harness
from harness import X_QLIK_USER
from taskfix import certs, sim, T1  # noqa: F401 (pytest fixtures)

SLOW_ADDR = "127.0.0.2"


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip("RLIMIT_NOFILE hard limit %d is below %d" % (hard, need))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def slow_connect(port, n, first=b"GET /v4/butlerping HTTP/1.1\r\nHost: x\r\n"):
    """Opens up to N connections from SLOW_ADDR, each sending FIRST; returns the
    sockets that connected (the daemon may refuse some at once)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.bind((SLOW_ADDR, 0))
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
            if first:
                s.sendall(first)
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        socks.append(s)
    return socks


def trickle(socks, data=b"X-Slow: 1\r\n"):
    """One more header line on each socket; drops (and closes) the ones the daemon
    closed. Returns the sockets still open."""
    alive = []
    for s in socks:
        try:
            if s.recv(4096, socket.MSG_PEEK) == b"":
                s.close()
                continue
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        try:
            s.send(data)
            alive.append(s)
        except OSError:
            s.close()
    return alive


def closed_by_server(s, timeout):
    """Reads until EOF; returns (True, bytes) if the server closed within TIMEOUT."""
    s.setblocking(True)
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return True, data
            data += b
    except socket.timeout:
        return False, data
    except ConnectionResetError:
        return True, data


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def test_slow_clients_from_one_address_do_not_block_another(start_daemon):
    """2500 connections from one address, each sending a header line every second,
    used to fill both workers' 1024 slots; now the per-address limit (128 a worker)
    leaves room, and every probe from another address is answered."""
    raise_fd_limit(6000)
    d = start_daemon()
    socks = slow_connect(d.port, 2500)
    try:
        failures = []
        for round_ in range(6):
            socks = trickle(socks)
            t0 = time.monotonic()
            try:
                r = harness.request(d.port, "GET", "/v4/butlerping", timeout=5)
                if r.status != 200:
                    failures.append((round_, r.status))
            except OSError as e:
                failures.append((round_, repr(e)))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
        assert failures == [], failures
        # the slow address holds at most its share: 128 per worker
        assert len(socks) <= 2 * 128, len(socks)
    finally:
        close_all(socks)
    assert d.running()


def trickle_until_closed(port, first, more, limit=10.0):
    """Sends FIRST, then MORE every 0.3 s, until the server closes the connection
    or LIMIT seconds pass. Returns (what was received, closed, seconds)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(first)
    t0 = time.monotonic()
    got = b""
    closed = False
    try:
        while time.monotonic() - t0 < limit and not closed:
            try:
                s.sendall(more)
            except OSError:
                pass
            r, _, _ = select.select([s], [], [], 0.3)
            if r:
                try:
                    b = s.recv(65536)
                except ConnectionResetError:
                    b = b""
                got += b
                closed = not b
    finally:
        s.close()
    return got, closed, time.monotonic() - t0


def test_request_head_has_a_deadline(start_daemon):
    """A head sent one line every 0.3 s never completes: it is answered with 408 when
    headerTimeout (2 s) has passed since the request line, although data kept coming."""
    d = start_daemon({"butlerd": {"http": {"headerTimeout": 2, "requestTimeout": 30}}})
    got, closed, elapsed = trickle_until_closed(
        d.port, b"GET /v4/butlerping HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n")
    assert closed, "connection still open after %.1f s" % elapsed
    assert got.startswith(b"HTTP/1.1 408 "), got
    body = got.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body)["statusCode"] == 408, got
    assert elapsed >= 1.5, elapsed
    # and the daemon serves normally meanwhile and afterwards
    assert d.get("/v4/butlerping").status == 200


def test_request_body_has_a_deadline(start_daemon):
    """A body trickled one byte every 0.3 s gets 408 requestTimeout (2 s) after the
    request line, not an idle timeout that every byte restarts."""
    d = start_daemon({"Butler": {"restServerEndpointsEnable": {"keyValueStore": True}},
                      "butlerd": {"http": {"requestTimeout": 2}}})
    got, closed, _ = trickle_until_closed(
        d.port, b"POST /v4/keyvalues/ns HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{", b" ")
    assert closed and got.startswith(b"HTTP/1.1 408 "), got
    assert d.get("/v4/keyvaluesnamespaces").body == b"[]"


def test_idle_connections_are_closed_early_near_the_limit(start_daemon):
    """With 35 of 40 connections in use, idle keep-alive connections are closed after
    about 2 s instead of keepAliveTimeout (60 s), so new clients get in."""
    d = start_daemon({"butlerd": {"http": {"maxConnections": 40, "keepAliveTimeout": 60,
                                           "maxConnectionsPerClient": 0}}}, workers=1)
    idle = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(35)]
    try:
        t0 = time.monotonic()
        for s in idle:
            closed, data = closed_by_server(s, max(0.1, 10 - (time.monotonic() - t0)))
            assert closed and data == b"", (closed, data)
        assert time.monotonic() - t0 < 10
        assert d.get("/v4/butlerping").status == 200
    finally:
        close_all(idle)


def test_idle_connections_keep_their_timeout_below_the_limit(start_daemon):
    """Far from the limit, an idle connection stays open (keepAliveTimeout 60 s)."""
    d = start_daemon({"butlerd": {"http": {"keepAliveTimeout": 60}}}, workers=1)
    s = socket.create_connection(("127.0.0.1", d.port))
    try:
        closed, _ = closed_by_server(s, 4)
        assert not closed
        s.sendall(b"GET /v4/butlerping HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        s.close()


def test_connections_per_client_address(start_daemon):
    """maxConnectionsPerClient = 5 with one worker: a sixth connection from the same
    address is closed at once, another address is served."""
    d = start_daemon({"butlerd": {"http": {"maxConnectionsPerClient": 5}}}, workers=1)
    held = slow_connect(d.port, 5, first=None)
    try:
        assert len(held) == 5
        time.sleep(0.3)
        extra = slow_connect(d.port, 1, first=b"GET /v4/butlerping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert len(extra) <= 1
        for s in extra:
            closed, data = closed_by_server(s, 5)
            assert closed and not data.startswith(b"HTTP/1.1 200"), data
        close_all(extra)
        assert d.get("/v4/butlerping").status == 200
        # the five held connections are still served
        held[0].setblocking(True)
        held[0].sendall(b"GET /v4/butlerping HTTP/1.1\r\nHost: x\r\n\r\n")
        held[0].settimeout(5)
        assert held[0].recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        close_all(held)


def test_file_copy_not_held_up_by_hung_qrs(start_daemon, sim, certs, tmp_path):
    """Twelve start-task requests hang on QRS (more than the eight Qlik job threads);
    a file copy on the same worker is answered at once instead of waiting for a job
    thread. The QRS timeout (30 s) is far longer than the test: the hung starts are
    released by clearing the simulator's hang afterwards."""
    src, dst = tmp_path / "from", tmp_path / "to"
    src.mkdir()
    dst.mkdir()
    (src / "a.txt").write_bytes(b"hello")
    d = start_daemon({
        "Butler": {
            "restServerEndpointsEnable": {"senseStartTask": True, "fileCopy": True},
            "cert": {"clientCert": certs["client.pem"], "clientCertKey": certs["client_key.pem"],
                     "clientCertCA": certs["root.pem"]},
            "configQRS": {"host": "127.0.0.1", "port": sim.qrs_port, "useSSL": True,
                          "rejectUnauthorized": True,
                          "headers": {"static": harness.Raw(
                              '( { name = "X-Qlik-User"; value = "%s"; } )' % X_QLIK_USER)}},
            "fileCopyApprovedDirectories": harness.Raw(
                '( { fromDirectory = "%s"; toDirectory = "%s"; } )' % (src, dst)),
        },
        "butlerd": {"qrs": {"timeoutMs": 30000, "connectTimeoutMs": 5000}},
    }, workers=1)
    hang = sim.set_behaviour(r"^/qrs/task/[^/]+/start$", hang=True)
    results = []

    def start_one():
        try:
            r = harness.request(d.port, "PUT", "/v4/reloadtask/%s/start" % T1,
                                {"Content-Type": "application/json"}, b"[]", timeout=30)
            results.append(r.status)
        except OSError as e:
            results.append(repr(e))

    threads = [threading.Thread(target=start_one) for _ in range(12)]
    for t in threads:
        t.start()
    try:
        # every job thread of the old single pool would now be waiting on QRS
        assert harness.wait_until(lambda: len(sim.starts()) >= 8, 20), sim.starts()
        t0 = time.monotonic()
        body = json.dumps({"fromFile": str(src / "a.txt"), "toFile": str(dst / "b.txt"),
                           "overwrite": False, "preserveTimestamp": False}).encode()
        r = harness.request(d.port, "PUT", "/v4/filecopy",
                            {"Content-Type": "application/json"}, body, timeout=30)
        took = time.monotonic() - t0
        assert r.status == 201, r
        assert (dst / "b.txt").read_bytes() == b"hello"
        # eight start requests were then held on their POST by the simulator: every
        # thread of the Qlik pool was busy, and the copy did not wait for one
        assert took < 4.0, took
    finally:
        sim.clear_behaviour(hang)
        for t in threads:
            t.join(60)
    assert len(results) == 12, results
