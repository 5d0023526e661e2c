"""A real redis-server for the tests of the Redis key-value backend
(butlerd(8), "Several instances"): started on a free loopback port with its own
temporary directory and no persistence (--save ""), stopped by its PID.

redis_server is session-scoped: one server serves every test of a pytest run;
each daemon gets a key prefix of its own (redis_overrides), so tests never see
each other's keys."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

import harness


def _ping(port, timeout=0.5):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
            return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")
    except OSError:
        return False


class RedisServer:
    def __init__(self, args=()):
        self.dir = tempfile.mkdtemp(prefix="butlerd-redis-")
        self.port = harness.free_port()
        self.proc = None
        self.args = list(args)

    def start(self):
        exe = shutil.which("redis-server")
        if not exe:
            pytest.skip("redis-server not installed (apt-get install -y redis-server)")
        if not getattr(self, "log", None):
            self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"] + self.args,
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        if not harness.wait_until(lambda: _ping(self.port), 10):
            self.stop()
            raise AssertionError("redis-server did not answer on port %d" % self.port)
        return self

    def stop(self):
        """Kills the server (by its PID) and waits for it."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self):
        """Starts it again on the same port (empty: no persistence)."""
        self.stop()
        return self.start()

    def close(self):
        self.stop()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args, password=None):
        """One command through redis-cli, its output as text."""
        auth = ["--no-auth-warning", "-a", password] if password else []
        return subprocess.run(["redis-cli", "-p", str(self.port)] + auth + list(args),
                              capture_output=True, timeout=10, check=True).stdout.decode()


@pytest.fixture(scope="session")
def redis_server():
    r = RedisServer().start()
    yield r
    r.close()


def redis_overrides(server, prefix=None, timeout_ms=1000, **more):
    """butlerd.store overrides that put the key-value store on SERVER, under PREFIX
    (a fresh random one by default); MORE: other butlerd.store.redis keys."""
    r = {"host": "127.0.0.1", "port": server.port,
         "keyPrefix": prefix or "t%s:" % secrets.token_hex(6),
         "connectTimeoutMs": timeout_ms, "commandTimeoutMs": timeout_ms}
    r.update(more)
    return {"butlerd": {"store": {"backend": "redis", "redis": r}}}
