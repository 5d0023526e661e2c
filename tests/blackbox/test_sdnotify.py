"""systemd's readiness protocol (butlerd(8), "SYSTEMD"): the test listens on a
NOTIFY_SOCKET of its own and checks what the master sends - READY with a STATUS
line once the workers accept, RELOADING and READY around a reload (also a
failed one), WATCHDOG when WATCHDOG_USEC is set, STOPPING - and that only the
master sends (SO_PASSCRED). Skipped when butlerd was built without libsystemd."""

import os
import signal
import socket
import struct
import subprocess
import time

import pytest

import harness


def built_with_systemd():
    out = subprocess.run(["ldd", harness.binary()], capture_output=True, text=True).stdout
    return "libsystemd" in out


pytestmark = pytest.mark.skipif(not built_with_systemd(),
                                reason="butlerd built without libsystemd (--without-systemd)")


class Listener:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.msgs = []  # (pid, {key: value}, raw)

    def _read(self, timeout):
        self.sock.settimeout(timeout)
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        text = data.decode()
        fields = dict(line.split("=", 1) for line in text.split("\n") if line)
        self.msgs.append((pid, fields, text))
        return self.msgs[-1]

    def wait_for(self, key, value=None, timeout=15):
        """The next message with KEY (=VALUE); earlier ones are kept in msgs."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s=%s; got %r" % (key, value, self.msgs))
            try:
                pid, f, _ = self._read(left)
            except socket.timeout:
                continue
            if key in f and (value is None or f[key] == value):
                return pid, f

    def close(self):
        self.sock.close()


@pytest.fixture
def listener(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    lst = Listener(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield lst
    lst.close()


def test_ready_reload_stop(listener, start_daemon):
    d = start_daemon(workers=3)
    pid, f = listener.wait_for("READY", "1")
    assert pid == d.pid
    assert f["STATUS"] == "serving: gen 1, 3 workers"
    # READY came once the workers accepted
    assert d.find("ready: listening on")
    assert d.get("/v4/butlerping").status == 200

    d.signal(signal.SIGHUP)
    pid, f = listener.wait_for("RELOADING", "1")
    assert pid == d.pid and int(f["MONOTONIC_USEC"]) > 0
    assert f["STATUS"] == "reloading the configuration"
    pid, f = listener.wait_for("READY", "1")
    assert pid == d.pid and f["STATUS"] == "serving: gen 2, 3 workers"
    d.wait_log("gen 2 ready", 10)

    # a configuration that does not load: RELOADING, then READY on the old generation
    with open(d.config_path, "a") as fh:
        fh.write("\nthis is not libconfig\n")
    d.signal(signal.SIGHUP)
    listener.wait_for("RELOADING", "1")
    pid, f = listener.wait_for("READY", "1")
    assert f["STATUS"] == "reload failed, still serving gen 2"

    d.signal(signal.SIGTERM)
    pid, f = listener.wait_for("STOPPING", "1")
    assert pid == d.pid
    d.wait_exit(15)
    # every message came from the master itself
    assert {m[0] for m in listener.msgs} == {d.pid}, listener.msgs
    assert not any("WATCHDOG" in m[1] for m in listener.msgs)


def test_watchdog(listener, start_daemon, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "300000")
    d = start_daemon()
    listener.wait_for("READY", "1")
    for _ in range(3):
        pid, _ = listener.wait_for("WATCHDOG", "1", timeout=10)
        assert pid == d.pid


def test_no_notify_socket_no_messages(start_daemon, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    d = start_daemon()
    assert d.get("/v4/butlerping").status == 200
    assert "sd_notify" not in d.log()


UNIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib",
                    "butlerd.service")


def test_shipped_unit_verifies(tmp_path):
    """contrib/butlerd.service passes systemd-analyze verify (with its binary path
    pointed at the build; the man pages are not installed here)."""
    import shutil
    sa = shutil.which("systemd-analyze")
    if not sa:
        pytest.skip("systemd-analyze is not installed")
    with open(UNIT) as f:
        text = f.read()
    assert "Type=notify" in text and "ProtectSystem=strict" in text
    unit = tmp_path / "butlerd.service"
    unit.write_text(text.replace("/usr/local/sbin/butlerd", os.path.abspath(harness.binary())))
    cp = subprocess.run([sa, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                        timeout=60, cwd=str(tmp_path))
    assert cp.returncode == 0 and cp.stderr.strip() == "", cp
