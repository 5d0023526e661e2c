"""A real MQTT broker and subscriber for butlerd's black-box tests (issue 5).

Broker starts `/usr/sbin/mosquitto -c <conf>` on a free 127.0.0.1 port with a
generated configuration (anonymous access, no persistence, everything logged
to a file in the test's temporary directory), and can stop it and start it
again on the same port.  Subscriber is a paho-mqtt 1.6 client (network loop
in a background thread) that records every message it gets.

Only 127.0.0.1 is used; only the mosquitto process started here is ever
signalled, by its PID.  Every wait is bounded.
"""

import collections
import getpass
import os
import re
import signal
import socket
import subprocess
import threading
import time

import paho.mqtt.client as mqtt

import harness

MOSQUITTO = os.environ.get("MOSQUITTO") or "/usr/sbin/mosquitto"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
STATUS_TOPIC = "qliksense/butler/mqtt/status"

Msg = collections.namedtuple("Msg", "topic payload qos retain time")


class BrokerError(AssertionError):
    pass


def mqtt_overrides(broker, client_id="butlerd-test", **more):
    """butlerd config overrides that turn MQTT on against `broker` (a Broker,
    or a port number for a broker that is not running) with a fixed client ID.
    `more` is merged under Butler.mqttConfig; use harness.merge for the rest."""
    port = broker if isinstance(broker, int) else broker.port
    cfg = {"enable": True, "brokerHost": "127.0.0.1", "brokerPort": port}
    cfg.update(more)
    ov = {"Butler": {"mqttConfig": cfg}, "butlerd": {"mqtt": {}}}
    if client_id is not None:
        ov["butlerd"]["mqtt"]["clientId"] = client_id
    return ov


def status_text(port, client_id):
    """The payload butlerd publishes on qliksense/butler/mqtt/status (spec 5.3)."""
    return "Connected to MQTT broker 127.0.0.1:%d with client ID %s" % (port, client_id)


class Broker:
    """One mosquitto process on 127.0.0.1:<port>, configured in `tmpdir`."""

    def __init__(self, tmpdir, port=None, extra=()):
        self.extra = list(extra)  # more mosquitto.conf lines for the listener (TLS)
        self.tmpdir = str(tmpdir)
        os.makedirs(self.tmpdir, exist_ok=True)
        self.port = port
        self.proc = None
        self.conf = os.path.join(self.tmpdir, "mosquitto.conf")
        self.logfile = os.path.join(self.tmpdir, "mosquitto.log")
        self.outfile = os.path.join(self.tmpdir, "mosquitto.out")
        self.starts = 0

    # lifecycle -----------------------------------------------------------
    def _write_conf(self):
        lines = [
            "# written by tests/blackbox/broker.py",
            "per_listener_settings false",
            "listener %d 127.0.0.1" % self.port,
            "allow_anonymous true",
            "persistence false",
            "log_dest file %s" % self.logfile,
            "log_type all",
            "log_timestamp true",
            "connection_messages true",
            # started as root, mosquitto 2 would switch to user "mosquitto",
            # which cannot write the log in our temporary directory
            "user %s" % getpass.getuser(),
        ] + self.extra
        harness.write_file(self.conf, "\n".join(lines) + "\n")

    def start(self, attempts=3):
        """Start on self.port (a new free port if none yet). Returns self."""
        if self.running():
            return self
        last = None
        for _ in range(attempts):
            if self.port is None or (last is not None and self.starts == 0):
                self.port = harness.free_port()
            self._write_conf()
            try:
                self._spawn()
                self.starts += 1
                return self
            except BrokerError as e:
                last = e
                self._kill()
                # after a restart we must keep the port: retry it after a pause
                time.sleep(0.3)
        raise last

    def _spawn(self):
        out = open(self.outfile, "ab")
        try:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=self.tmpdir)
        finally:
            out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise BrokerError("mosquitto exited with status %s on port %d\n%s"
                                  % (self.proc.returncode, self.port, self.log_tail()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise BrokerError("mosquitto did not accept connections on 127.0.0.1:%d within "
                                  "%.0f s\n%s" % (self.port, START_TIMEOUT, self.log_tail()))
            time.sleep(0.02)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(STOP_TIMEOUT)

    def stop(self):
        """SIGTERM our mosquitto (SIGKILL after a deadline) and wait for it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.resume()
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill()

    def restart(self):
        """Stop, then start again on the same port."""
        self.stop()
        return self.start()

    def pause(self):
        """SIGSTOP: connections stay open but nothing is answered (no PUBACK)."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGCONT)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # log -----------------------------------------------------------------
    def log(self):
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        lines = self.log().splitlines()
        try:
            with open(self.outfile, encoding="utf-8", errors="replace") as f:
                out = f.read().strip()
        except FileNotFoundError:
            out = ""
        return ("---- mosquitto log (last %d of %d lines) ----\n%s%s"
                % (min(n, len(lines)), len(lines), "\n".join(lines[-n:]),
                   ("\n---- mosquitto stdout/stderr ----\n" + out) if out else ""))

    def mark(self):
        """Offset of the log's end, to search only what comes after."""
        return len(self.log())

    def find(self, pattern, start=0):
        """Log lines after offset start containing pattern (str) or matching it (regex)."""
        text = self.log()[start:]
        out = []
        for line in text.splitlines():
            if (pattern in line) if isinstance(pattern, str) else pattern.search(line):
                out.append(line)
        return out

    def wait_log(self, pattern, timeout=10.0, start=0, count=1):
        got = harness.wait_until(lambda: len(self.find(pattern, start)) >= count, timeout)
        if not got:
            raise BrokerError("timed out after %.1f s waiting for %d mosquitto log line(s) with %r"
                              "\n%s" % (timeout, count, getattr(pattern, "pattern", pattern),
                                        self.log_tail()))
        return self.find(pattern, start)

    def wait_subscribed(self, client_id, timeout=10.0, start=0):
        """Wait until the broker has acknowledged a SUBSCRIBE of client_id."""
        return self.wait_log("Sending SUBACK to %s" % client_id, timeout, start)

    def connects(self, client_id, start=0):
        """(protocol, clean, keepalive) of each connect of client_id logged after
        start: mosquitto logs `New client connected from A:P as ID (p2, c1, k60)`
        where p2 means MQTT 3.1.1 and c1 a clean session."""
        rx = re.compile(r"New client connected from \S+ as (\S+) \(p(\d+), c(\d+), k(\d+)")
        out = []
        for line in self.find(rx, start):
            m = rx.search(line)
            if m.group(1) == client_id:
                out.append((int(m.group(2)), int(m.group(3)), int(m.group(4))))
        return out


_client_seq = [0]


class Subscriber:
    """A paho-mqtt 1.6 client that subscribes to `topics` (one filter or a
    list) with QoS `qos` and records (topic, payload bytes, qos, retain, time)
    of every message. It subscribes again after every reconnect."""

    def __init__(self, broker, topics="#", qos=2, client_id=None, connect=True):
        self.port = broker if isinstance(broker, int) else broker.port
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.qos = qos
        _client_seq[0] += 1
        self.client_id = client_id or "test-sub-%d-%d" % (os.getpid(), _client_seq[0])
        self.cond = threading.Condition()
        self.msgs = []
        self.subscribed = 0    # SUBACKs received
        self.connected = False
        self.c = mqtt.Client(client_id=self.client_id, clean_session=True,
                             protocol=mqtt.MQTTv311)
        self.c.reconnect_delay_set(min_delay=1, max_delay=2)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self.started = False
        if connect:
            self.start()

    # paho callbacks (network thread) ---------------------------------------
    def _on_connect(self, client, userdata, flags, rc):
        if rc == 0:
            with self.cond:
                self.connected = True
                self.cond.notify_all()
            client.subscribe([(t, self.qos) for t in self.topics])

    def _on_disconnect(self, client, userdata, rc):
        with self.cond:
            self.connected = False
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted_qos):
        with self.cond:
            self.subscribed += 1
            self.cond.notify_all()

    def _on_message(self, client, userdata, m):
        with self.cond:
            self.msgs.append(Msg(m.topic, bytes(m.payload), m.qos, bool(m.retain),
                                 time.monotonic()))
            self.cond.notify_all()

    # control ---------------------------------------------------------------
    def start(self, timeout=5.0):
        """Connect, start the network thread and wait for the SUBACK."""
        want = self.subscribed + 1
        self.c.connect("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        self.started = True
        self._wait(lambda: self.subscribed >= want, timeout,
                   "no SUBACK for %s within %.1f s" % (self.topics, timeout))
        return self

    def wait_resubscribed(self, previous, timeout=10.0):
        """After a broker restart: wait until a SUBACK beyond `previous` arrives."""
        self._wait(lambda: self.subscribed > previous, timeout,
                   "subscriber did not reconnect and resubscribe within %.1f s" % timeout)

    def close(self):
        if self.started:
            try:
                self.c.disconnect()
            except Exception:
                pass
            self.c.loop_stop()
            self.started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def publish(self, topic, payload, qos=1, retain=False, timeout=5.0):
        """Publish through this client and wait until it is sent (and, for
        QoS > 0, acknowledged)."""
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        deadline = time.monotonic() + timeout
        while not info.is_published() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not info.is_published():
            raise AssertionError("publish to %r not completed within %.1f s" % (topic, timeout))

    # reading -----------------------------------------------------------------
    def _wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(what + "; messages so far:\n" + self.dump())
                self.cond.wait(min(left, 0.1))

    def messages(self, topic=None):
        """Snapshot of the received messages (on one topic, or all)."""
        with self.cond:
            return [m for m in self.msgs if topic is None or m.topic == topic]

    def payloads(self, topic):
        return [m.payload for m in self.messages(topic)]

    def last(self, topic):
        got = self.messages(topic)
        return got[-1] if got else None

    def mark(self):
        """Index of the next message, for since()."""
        with self.cond:
            return len(self.msgs)

    def since(self, mark, topic=None):
        with self.cond:
            return [m for m in self.msgs[mark:] if topic is None or m.topic == topic]

    def clear(self):
        with self.cond:
            self.msgs.clear()

    def wait_for(self, pred, timeout=5.0, what="condition"):
        """Wait until pred(list of all messages) is true; returns its value."""
        return self._wait(lambda: pred(list(self.msgs)), timeout,
                          "timed out after %.1f s waiting for %s" % (timeout, what))

    def wait_message(self, topic, payload=None, timeout=5.0, start=0):
        """The first message on topic (with payload, if given: bytes or str)
        received at or after index start."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")

        def find(msgs):
            for m in msgs[start:]:
                if m.topic == topic and (payload is None or m.payload == payload):
                    return m
            return None
        return self.wait_for(find, timeout, "%r on %r" % (payload, topic))

    def wait_count(self, topic, n, timeout=5.0, start=0):
        """Wait until at least n messages on topic arrived since index start."""
        return self.wait_for(lambda ms: [m for m in ms[start:] if m.topic == topic]
                             if len([m for m in ms[start:] if m.topic == topic]) >= n else None,
                             timeout, "%d message(s) on %r" % (n, topic))

    def wait_last(self, topic, payload, timeout=5.0):
        """Wait until the LAST message received on topic has this payload
        (aggregate topics are published once per burst: only the latest
        value counts)."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")

        def ok(msgs):
            last = None
            for m in msgs:
                if m.topic == topic:
                    last = m
            return last if last is not None and last.payload == payload else None
        return self.wait_for(ok, timeout, "last payload %r on %r" % (payload, topic))

    def dump(self, n=40):
        msgs = self.msgs[-n:]
        return "\n".join("  %s %r q%d%s" % (m.topic, m.payload[:200], m.qos,
                                              " retained" if m.retain else "") for m in msgs) \
            or "  (none)"
