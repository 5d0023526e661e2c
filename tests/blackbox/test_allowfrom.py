"""The listener-wide allow-list butlerd.http.allowFrom (butlerd.conf(5)): a
connection from an address outside the list is closed at accept, before anything is
read or answered; 127.0.0.2 stands for a foreign client, ::1 for IPv6."""

import http.client
import socket

import pytest

import harness


def ping_from(port, src, host="127.0.0.1"):
    c = http.client.HTTPConnection(host, port, timeout=5, source_address=(src, 0))
    try:
        return harness.conn_request(c, "GET", "/v4/butlerping")
    finally:
        c.close()


def refused(port, src, host="127.0.0.1"):
    """True if the daemon closes a connection from SRC without a byte of answer."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.bind((src, 0))
        s.connect((host, port))
        try:
            s.sendall(b"GET /v4/butlerping HTTP/1.1\r\nHost: x\r\n\r\n")
            data = s.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return data == b""
    finally:
        s.close()


def allow(nets, host=None):
    ov = {"butlerd": {"http": {"allowFrom": nets}}}
    if host:
        ov["Butler"] = {"restServerConfig": {"serverHost": host}}
    return ov


def test_refuses_127_0_0_2_while_127_0_0_1_works(start_daemon):
    d = start_daemon(allow(["127.0.0.1/32", "10.0.0.0/8"]))
    assert ping_from(d.port, "127.0.0.1").status == 200
    for _ in range(3):
        assert refused(d.port, "127.0.0.2")
        assert refused(d.port, "127.0.0.3")
    # the refused connections did not disturb the workers
    assert ping_from(d.port, "127.0.0.1").status == 200
    assert d.running()


def test_network_prefix(start_daemon):
    d = start_daemon(allow(["127.0.0.2/31"]))   # 127.0.0.2 and 127.0.0.3
    assert refused(d.port, "127.0.0.1")
    assert ping_from(d.port, "127.0.0.2").status == 200
    assert ping_from(d.port, "127.0.0.3").status == 200


def test_empty_list_allows_everyone(start_daemon):
    d = start_daemon(allow([]))
    for src in ("127.0.0.1", "127.0.0.2"):
        assert ping_from(d.port, src).status == 200


def test_ipv6(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    d = harness.Daemon(tmp_path / "a", allow(["::1/128"], host="::1"))
    d.listen_host = "[::1]"
    try:
        d.start()
        c = http.client.HTTPConnection("::1", d.port, timeout=5)
        r = harness.conn_request(c, "GET", "/v4/butlerping")
        c.close()
        assert r.status == 200, r
    finally:
        d.stop()
    d = harness.Daemon(tmp_path / "b", allow(["127.0.0.1/32", "fe80::/10"], host="::1"))
    d.listen_host = "[::1]"
    try:
        d.start()
        assert refused(d.port, "::1", host="::1")
    finally:
        d.stop()


def test_reload_changes_the_list(start_daemon):
    d = start_daemon(allow(["127.0.0.1/32"]))
    assert refused(d.port, "127.0.0.2")
    mark = d.mark()
    d.write_config(d.config(allow(["127.0.0.2/32"])))
    d.signal(__import__("signal").SIGHUP)
    d.wait_log("configuration reloaded", 15, start=mark)
    assert harness.wait_until(lambda: not refused(d.port, "127.0.0.2"), 15, 0.2)
    assert harness.wait_until(lambda: refused(d.port, "127.0.0.1"), 15, 0.2)


@pytest.mark.parametrize("net", ["127.0.0.1/33", "300.0.0.1", "::1/129", "example.com",
                                 "10.0.0.0/", "/8", ""])
def test_bad_entry_is_a_config_error(tmp_path, net):
    p = tmp_path / "t.conf"
    harness.write_file(p, harness.config_text(harness.free_port(), tmp_path, allow([net])))
    cp = harness.run_cli(["-t", "-c", str(p)])
    assert cp.returncode != 0, cp
    assert 'butlerd.http.allowFrom: "%s" is not an address or network' % net in cp.stderr


def test_refusals_are_counted(start_daemon):
    d = start_daemon(allow(["127.0.0.1/32"]))
    for _ in range(3):
        assert refused(d.port, "127.0.0.2")
    cp = harness.run_cli(["-S", "-c", d.config_path])
    assert cp.returncode == 0, cp.stderr
    import json
    assert json.loads(cp.stdout)["http"]["refusedAtAccept"] == 3


def test_ipv4_mapped_peers_on_a_dual_stack_listener(tmp_path):
    """Listening on "::", an IPv4 client arrives as ::ffff:a.b.c.d and is matched
    as its IPv4 address."""
    d = harness.Daemon(tmp_path, allow(["127.0.0.1/32", "::1/128"], host="::"))
    d.listen_host = "[::]"
    try:
        d.start()
        assert ping_from(d.port, "127.0.0.1").status == 200
        assert refused(d.port, "127.0.0.2")
        c = http.client.HTTPConnection("::1", d.port, timeout=5)
        r = harness.conn_request(c, "GET", "/v4/butlerping")
        c.close()
        assert r.status == 200, r
    finally:
        d.stop()
