"""A real Redis Sentinel set-up for the failover tests (butlerd(8), "SEVERAL
INSTANCES"): a primary redis-server, one replica and three redis-sentinel
processes, all on free loopback ports with temporary directories, stopped by
their PIDs. down-after-milliseconds and failover-timeout are short, so that a
failover takes a few seconds."""

import os
import shutil
import signal
import subprocess
import tempfile

import pytest

import harness
import redisfix

MASTER = "butlermaster"


def _cli(port, *args, password=None):
    auth = ["--no-auth-warning", "-a", password] if password else []
    cp = subprocess.run(["redis-cli", "-p", str(port)] + auth + [str(a) for a in args],
                        capture_output=True, timeout=10)
    return cp.stdout.decode()


class Sentinel:
    """One redis-sentinel watching the primary at PRIMARY_PORT, with QUORUM votes
    needed for a failover; PASSWORD: its requirepass (and the other Sentinels')."""

    def __init__(self, primary_port, quorum=2, password=None):
        self.quorum = quorum
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="butlerd-sentinel-")
        self.port = harness.free_port()
        self.conf = os.path.join(self.dir, "sentinel.conf")
        self.primary_port = primary_port
        self.proc = None
        self.log = None

    def start(self):
        exe = shutil.which("redis-sentinel")
        server = shutil.which("redis-server")
        if not exe and not server:
            pytest.skip("redis-sentinel not installed (apt-get install -y redis-sentinel)")
        if not os.path.exists(self.conf):
            # Sentinel rewrites its file (it records what it learns): a file of its own.
            with open(self.conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"
                        "sentinel monitor %s 127.0.0.1 %d %d\n"
                        "sentinel down-after-milliseconds %s 1000\n"
                        "sentinel failover-timeout %s 3000\n"
                        "sentinel parallel-syncs %s 1\n"
                        % (self.port, self.dir, MASTER, self.primary_port, self.quorum,
                           MASTER, MASTER, MASTER))
                if self.password:
                    f.write("requirepass %s\nsentinel sentinel-pass %s\n"
                            % (self.password, self.password))
        if not self.log:
            self.log = open(os.path.join(self.dir, "sentinel.log"), "ab")
        cmd = [exe, self.conf] if exe else [server, self.conf, "--sentinel"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        if not harness.wait_until(lambda: "PONG" in self.cli("PING"), 10):
            self.stop()
            raise AssertionError("redis-sentinel did not answer on port %d" % self.port)
        return self

    def cli(self, *args):
        return _cli(self.port, *args, password=self.password)

    def master_addr(self):
        """(host, port) the Sentinel names as the master, or None."""
        out = self.cli("SENTINEL", "get-master-addr-by-name", MASTER).split()
        return (out[0], int(out[1])) if len(out) == 2 and out[1].isdigit() else None

    def master_info(self):
        """SENTINEL MASTER as a dict."""
        lines = self.cli("SENTINEL", "MASTER", MASTER).split("\n")
        return dict(zip(lines[0::2], lines[1::2]))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def close(self):
        self.stop()
        if self.log:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelSetup:
    """A primary, a replica of it and COUNT Sentinels (three by default), ready:
    every Sentinel knows the replica and the other Sentinels."""

    def __init__(self, count=3, sentinel_password=None):
        self.primary = redisfix.RedisServer().start()
        self.replica = redisfix.RedisServer(
            ["--replicaof", "127.0.0.1", str(self.primary.port)]).start()
        self.sentinels = [Sentinel(self.primary.port, min(2, count), sentinel_password).start()
                          for _ in range(count)]

        def known():
            for s in self.sentinels:
                info = s.master_info()
                if info.get("num-slaves") != "1" or \
                        info.get("num-other-sentinels") != str(count - 1):
                    return False
            return "master_link_status:up" in self.replica.cli("INFO", "replication")

        if not harness.wait_until(known, 60, 0.2):
            self.close()
            raise AssertionError("the Sentinels did not discover each other and the replica")

    def addresses(self):
        return ["127.0.0.1:%d" % s.port for s in self.sentinels]

    def overrides(self, prefix, timeout_ms=1000, master=MASTER, sentinels=None):
        """butlerd.store overrides: the KV store on this set-up, through the Sentinels."""
        over = redisfix.redis_overrides(self.primary, prefix, timeout_ms)
        r = over["butlerd"]["store"]["redis"]
        # host/port stay those of the primary: with sentinels set they must be unused
        r["sentinels"] = sentinels if sentinels is not None else self.addresses()
        r["masterName"] = master
        return over

    def replicated(self, timeout_ms=5000):
        """Waits until the replica has every write made so far (WAIT): True if so."""
        out = _cli(self.primary.port, "WAIT", 1, timeout_ms).strip()
        return out == "1"

    def fail_primary(self):
        """SIGKILLs the primary; returns its port."""
        self.primary.stop()
        return self.primary.port

    def wait_failover(self, timeout=60):
        """Waits until every live Sentinel names the replica as the master."""
        want = ("127.0.0.1", self.replica.port)
        return harness.wait_until(
            lambda: all(s.master_addr() == want for s in self.sentinels if s.proc), timeout, 0.2)

    def close(self):
        for s in self.sentinels:
            s.close()
        self.replica.close()
        self.primary.close()


@pytest.fixture
def sentinels():
    """A Sentinel set-up of this test's own (a test may kill any part of it)."""
    if not shutil.which("redis-sentinel") and not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    s = SentinelSetup()
    yield s
    s.close()


@pytest.fixture(scope="module")
def shared_sentinels():
    """One Sentinel set-up for the tests of a module that leave it intact."""
    if not shutil.which("redis-sentinel") and not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    s = SentinelSetup()
    yield s
    s.close()
