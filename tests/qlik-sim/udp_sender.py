#!/usr/bin/python3
"""Send the UDP datagrams Qlik Sense sends to Butler/butlerd (spec
qlik-sense.md section 4, api.md sections 6.3 and 6.5), so that tests and
demos can play "a user logs in" or "a reload failed" without Qlik Sense.

Python 3 standard library only. Used two ways:

  * as a module (tests):
        from udp_sender import Sender, task_datagram, session_datagram
        tx = Sender(port)                       # to 127.0.0.1:port
        tx.send(session_datagram("start", "sense1", "ACME", "joe"))
        tx.send(task_datagram("failed", task_id=T1, app_id=A1, execution_id=X))
  * as a CLI (see UDP.md):
        udp_sender.py --session start --host sense1 --dir ACME --user joe --port 9997
        udp_sender.py --task failed --task-id e3b27f50-... --app-id 3d5a6b7c-... --port 9998

Scheduler (task) datagrams have 11 `;`-separated fields:
  <type>;host;taskName;appName;user;taskId;appId;timestamp;level;executionId;message
Proxy (session/connection) datagrams have 8:
  <type>;host;command;userDirectory;userId;origin;context;message
The message (last field) may itself contain `;`, as Qlik Sense sends it.
"""

import argparse
import datetime
import socket
import sys
import time
import uuid

# message type (field 0) per task event kind; "success-shipped" is what the
# shipped appender file really sends (double slash, api.md 6.3)
TASK_TYPES = {
    "failed": "/scheduler-task-failed/",
    "aborted": "/scheduler-task-aborted/",
    "success": "/scheduler-task-success/",
    "success-shipped": "/scheduler-task-success//",
    "reload-failed": "/scheduler-reload-failed/",
    "reloadtask-failed": "/scheduler-reloadtask-failed/",
    "reload-aborted": "/scheduler-reload-aborted/",
    "reloadtask-success": "/scheduler-reloadtask-success/",
    "distribute": "/scheduler-distribute/",
}

# the log message the shipped appenders match on (qlik-sense.md 4)
TASK_MESSAGES = {
    "failed": "Max retries reached",
    "aborted": "Execution State Change to Aborting",
    "success": "Execution State Change to FinishedSuccess",
    "distribute": "Exiting execute of Distribute task request.",
}

TASK_LEVELS = {"failed": "ERROR", "aborted": "INFO", "success": "INFO", "distribute": "INFO"}

# session command name -> (message type, Command field, log message template)
SESSION_COMMANDS = {
    "start": ("/proxy-session/", "Start session", "Start session for user %s\\%s"),
    "stop": ("/proxy-session/", "Stop session", "Stop session for user %s\\%s"),
    "open": ("/proxy-connection/", "Open connection",
             "connection Opened for session %s\\%s"),
    "close": ("/proxy-connection/", "Close connection",
              "connection Closed for session %s\\%s"),
}

DEFAULT_TASK_ID = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"   # "Reload task of App1" in fixture.json
DEFAULT_APP_ID = "3d5a6b7c-1e2f-4a3b-9c4d-5e6f7a8b9c01"    # "App1" in fixture.json


def _kind_base(kind):
    for base in ("failed", "aborted", "success", "distribute"):
        if base in kind:
            return base
    return "failed"


def timestamp(t=None):
    """log4net %date: `2026-11-22 22:49:53,123` (local time)."""
    dt = datetime.datetime.fromtimestamp(time.time() if t is None else t)
    return dt.strftime("%Y-%m-%d %H:%M:%S,") + "%03d" % (dt.microsecond // 1000)


def task_fields(kind="failed", host="sense1.acme.local", task_name="Reload task of App1",
                app_name="App1", user="INTERNAL\\sa_scheduler", task_id=DEFAULT_TASK_ID,
                app_id=DEFAULT_APP_ID, log_time=None, level=None, execution_id=None,
                message=None, msg_type=None):
    """The 11 fields of a scheduler datagram (api.md 6.3), as a list of str.
    kind: a key of TASK_TYPES; msg_type overrides field 0 verbatim.
    execution_id None: a new random one."""
    base = _kind_base(kind)
    return [msg_type if msg_type is not None else TASK_TYPES[kind], host, task_name, app_name,
            user, task_id, app_id, log_time if log_time is not None else timestamp(),
            level if level is not None else TASK_LEVELS[base],
            execution_id if execution_id is not None else str(uuid.uuid4()),
            message if message is not None else TASK_MESSAGES[base]]


def task_datagram(kind="failed", **kw):
    """A scheduler datagram (bytes, UTF-8); keyword arguments as task_fields."""
    return join(task_fields(kind, **kw))


def session_fields(command="start", host="sense1.acme.local", directory="ACME", user="joe",
                   origin="AppAccess", context="/hub/", message=None, msg_type=None,
                   command_text=None):
    """The 8 fields of a proxy datagram (api.md 6.5). command: start, stop,
    open or close; command_text / msg_type override fields 2 / 0 verbatim."""
    mtype, ctext, template = SESSION_COMMANDS[command]
    return [msg_type if msg_type is not None else mtype, host,
            command_text if command_text is not None else ctext, directory, user, origin, context,
            message if message is not None else template % (directory, user)]


def session_datagram(command="start", host="sense1.acme.local", directory="ACME", user="joe",
                     **kw):
    """A proxy session/connection datagram (bytes, UTF-8)."""
    return join(session_fields(command, host, directory, user, **kw))


def join(fields):
    """`;`-join fields (str or bytes) into one datagram (bytes)."""
    return b";".join(f if isinstance(f, bytes) else f.encode("utf-8") for f in fields)


class Sender:
    """A UDP socket sending to host:port, optionally from a given source
    address (e.g. 127.0.0.2, to test butlerd's allow-list)."""

    def __init__(self, port, host="127.0.0.1", source=None):
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if source:
            self.sock.bind((source, 0))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        return self.sock.sendto(data, self.addr)

    def send_all(self, datagrams, rate=None):
        """Send each datagram; rate (per second) paces them, None = at once."""
        t0 = time.monotonic()
        for i, d in enumerate(datagrams):
            if rate:
                due = t0 + i / rate
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
            self.send(d)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def send(data, port, host="127.0.0.1", source=None):
    """Send one datagram (bytes or str) to host:port."""
    with Sender(port, host, source) as s:
        return s.send(data)


# ============================================================== CLI

def main(argv=None):
    p = argparse.ArgumentParser(
        description="Send Qlik Sense log4net UDP datagrams (scheduler task events, proxy "
                    "session/connection events) to butlerd. See tests/qlik-sim/UDP.md.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--session", choices=sorted(SESSION_COMMANDS),
                      help="a proxy event: start/stop session, open/close connection")
    what.add_argument("--task", choices=list(TASK_TYPES), help="a scheduler task event")
    what.add_argument("--raw", metavar="TEXT", help="send TEXT as it is")
    p.add_argument("--to", default="127.0.0.1", help="butlerd's UDP address (default 127.0.0.1)")
    p.add_argument("--port", type=int,
                   help="butlerd's UDP port (default 9997 for --session, 9998 otherwise)")
    p.add_argument("--source", help="source address to send from (e.g. 127.0.0.2)")
    p.add_argument("--host", default="sense1.acme.local",
                   help="the Qlik Sense node's host name (field 1)")
    p.add_argument("--dir", default="ACME", help="user directory (session events)")
    p.add_argument("--user", help="user ID (session events, default joe) or user field "
                                  "(task events, default INTERNAL\\sa_scheduler)")
    p.add_argument("--task-id", default=DEFAULT_TASK_ID)
    p.add_argument("--app-id", default=DEFAULT_APP_ID, help="'' for none")
    p.add_argument("--task-name", default="Reload task of App1")
    p.add_argument("--app-name", default="App1")
    p.add_argument("--execution-id", help="default: random (each --count gets its own)")
    p.add_argument("--message", help="log message (last field; may contain ';')")
    p.add_argument("--count", type=int, default=1, help="send this many (default 1)")
    p.add_argument("--rate", type=float, help="datagrams per second with --count (default: "
                                              "as fast as possible)")
    p.add_argument("--print", dest="dry", action="store_true",
                   help="print the datagram(s) instead of sending")
    a = p.parse_args(argv)

    port = a.port or (9997 if a.session else 9998)
    grams = []
    for i in range(a.count):
        if a.raw is not None:
            grams.append(a.raw.encode("utf-8"))
        elif a.session:
            grams.append(session_datagram(a.session, a.host, a.dir, a.user or "joe",
                                          message=a.message))
        else:
            grams.append(task_datagram(a.task, host=a.host, task_name=a.task_name,
                                       app_name=a.app_name,
                                       user=a.user if a.user is not None else
                                       "INTERNAL\\sa_scheduler",
                                       task_id=a.task_id, app_id=a.app_id,
                                       execution_id=a.execution_id, message=a.message))
    if a.dry:
        for g in grams:
            sys.stdout.write(g.decode("utf-8", "replace") + "\n")
        return 0
    with Sender(port, a.to, a.source) as s:
        s.send_all(grams, a.rate)
    print("udp_sender: sent %d datagram(s) to %s:%d" % (len(grams), a.to, port), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
