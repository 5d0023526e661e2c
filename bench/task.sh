#!/usr/bin/env bash
# bench/task.sh: start-task latency of butlerd against the Qlik Sense
# simulator (tests/qlik-sim) answering at once: butlerd's added time over
# the simulator's own, p50 and p99, on keep-alive connections.
#
# Usage: bench/task.sh [-n REQUESTS] [-W WARMUP] [-w WORKERS]
# Needs python3 (with the ssl module), openssl (the simulator makes its test
# certificates with it), curl and procps. The butlerd binary is $BUTLERD,
# or ../src/butlerd next to this script; it is copied to the temporary
# directory first. See the "Start task" section of bench/README.md for how
# to read the output.

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

REQUESTS=2000
WARMUP=200
WORKERS=1
TASK_ID=e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e
QLIK_USER="UserDirectory=Internal;UserId=sa_repository"
SIM_DIR=$script_dir/../tests/qlik-sim
FIXTURE=$SIM_DIR/fixture.json

usage() {
    cat <<EOF
Usage: $0 [-n REQUESTS] [-W WARMUP] [-w WORKERS]

Starts the Qlik Sense simulator (QRS over TLS, client certificate required)
and butlerd configured for it, then, from one python3 client, sequentially:
  task-start  PUT /v4/reloadtask/$TASK_ID/start, body [], on ONE
              keep-alive connection to butlerd (butlerd makes 2 QRS calls:
              GET /qrs/task?filter=id eq ..., POST /qrs/task/<id>/start)
  qrs-direct  the same 2 QRS calls sent straight to the simulator on one
              keep-alive TLS connection with the client certificate
alternating one task-start and one qrs-direct per iteration; then
GET $PATH_PING on the butlerd connection for context. Prints p50/p90/p99 of
each, requests/s, and butlerd's added time (task-start - qrs-direct) at p50
(goal <= 0.5 ms) and p99.

  -n REQUESTS  measured iterations (default $REQUESTS)
  -W WARMUP    warm-up iterations, not counted (default $WARMUP)
  -w WORKERS   butlerd workers (default $WORKERS; one connection uses one worker)

Environment: BUTLERD=path to the binary (default $script_dir/../src/butlerd)
             PYTHON=python interpreter (default /usr/bin/python3)
EOF
}

# own_opt LETTER VALUE: this script's options (parse_opts in lib.sh).
own_opt() {
    case $1 in
        n) REQUESTS=$2 ;;
        W) WARMUP=$2 ;;
        *) return 1 ;;
    esac
}
parse_opts 'n:W:w:' "$@"

check_opts REQUESTS WARMUP WORKERS

# ---------------------------------------------------------------- requirements
PYTHON=${PYTHON:-/usr/bin/python3}
need_commands "(this script installs nothing itself.)" \
    "$PYTHON:python3" openssl:openssl curl:curl pgrep:procps
"$PYTHON" -c 'import ssl' 2>/dev/null || die "$PYTHON has no ssl module"

find_butlerd
[[ -r $SIM_DIR/qlik_sim.py ]] || die "simulator not found: $SIM_DIR/qlik_sim.py"
[[ -r $FIXTURE ]] || die "simulator fixture not found: $FIXTURE"

# ---------------------------------------------------------------- state/cleanup
bench_tmp butlerd-taskbench
copy_butlerd

# ---------------------------------------------------------------- helpers
# wait_file NAME PID FILE LOG: wait up to 20 s for FILE while PID is alive.
wait_file() {
    local name=$1 pid=$2 file=$3 log=$4 i
    for ((i = 0; i < 200; i++)); do
        [[ -e $file ]] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            printf '%s exited during start-up; its log (%s):\n' "$name" "$log" >&2
            tail -n 30 "$log" >&2 || true
            die "$name did not start"
        fi
        sleep 0.1
    done
    tail -n 30 "$log" >&2 || true
    die "$name did not get ready within 20 s"
}

# ---------------------------------------------------------------- python parts
# The simulator, through its Python API rather than its CLI, so that it can
# write down, when it stops, every request it saw (time, peer port, status):
# the report uses that to check that butlerd's QRS connections were reused.
cat >"$tmp/sim_run.py" <<'PY'
# written by bench/task.sh: runs the Qlik Sense simulator until SIGTERM.
import json, os, signal, sys, threading
sim_dir, fixture, port, certs, ready, dump = sys.argv[1:7]
sys.path.insert(0, sim_dir)
from qlik_sim import QlikSim

done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
sim = QlikSim(fixture, host="127.0.0.1", qrs_port=int(port), certs_dir=certs)
sim.start()
with open(ready + ".part", "w") as f:
    json.dump({"port": sim.qrs_port, "certs": sim.certs}, f)
os.rename(ready + ".part", ready)
while not done.wait(0.5):
    pass
sim.stop()
with open(dump + ".part", "w") as f:
    for r in sim.requests:
        json.dump([r.time, r.answered_at, r.peer[1], r.method, r.path, r.filter, r.status], f)
        f.write("\n")
os.rename(dump + ".part", dump)
PY

# The client: one keep-alive connection to butlerd, one keep-alive TLS
# connection to the simulator, strictly sequential. Raw latencies go to a
# JSON file; the report is printed by report.py.
cat >"$tmp/client.py" <<'PY'
# written by bench/task.sh
import http.client, json, os, random, socket, ssl, string, sys, time
from urllib.parse import quote

(bport, sport, certs_json, n, warm, task, user, out_path, pids) = sys.argv[1:10]
bport, sport, n, warm = int(bport), int(sport), int(n), int(warm)
pids = [int(p) for p in pids.split()]
with open(certs_json) as f:
    certs = json.load(f)["certs"]
pc = time.perf_counter_ns
tt = time.thread_time_ns  # the client's own CPU time, to see what it adds to each path
ALNUM = string.ascii_letters + string.digits
rnd = random.Random()

def xrfkey():
    return "".join(rnd.choices(ALNUM, k=16))

def cpu_ns():
    """CPU time of butlerd's master and workers, all threads, in ns: from
    /proc/PID/task/TID/schedstat (ns), else utime + stime from /proc/PID/stat
    (clock ticks). Returns (ns, source)."""
    total, src = 0, "schedstat"
    for p in pids:
        try:
            tids = os.listdir("/proc/%d/task" % p)
            for t in tids:
                with open("/proc/%d/task/%s/schedstat" % (p, t)) as f:
                    total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            total, src = 0, "stat"
            break
    if src == "stat":
        tck = os.sysconf("SC_CLK_TCK")
        for p in pids:
            try:
                with open("/proc/%d/stat" % p) as f:
                    s = f.read()
            except OSError:
                continue
            fields = s[s.rindex(")") + 2:].split()
            total += (int(fields[11]) + int(fields[12])) * 1000000000 // tck
    return total, src

def nodelay(conn):
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

# butlerd
bc = http.client.HTTPConnection("127.0.0.1", bport, timeout=60)
bc.connect()
nodelay(bc)
b_sock = bc.sock
START_PATH = "/v4/reloadtask/%s/start" % task
START_HDR = {"Content-Type": "application/json"}

# the simulator, as butlerd calls it (qrs.c): same paths, filter encoding,
# headers and bodies; a fresh xrfkey per request
ctx = ssl.create_default_context(cafile=certs["root.pem"])
ctx.load_cert_chain(certs["client.pem"], certs["client_key.pem"])
dc = http.client.HTTPSConnection("127.0.0.1", sport, context=ctx, timeout=60)
dc.connect()
nodelay(dc)
d_sock = dc.sock
direct_ports = [dc.sock.getsockname()[1]]
GET_PATH = "/qrs/task?filter=%s&xrfkey=" % quote("id eq " + task, safe="")
POST_PATH = "/qrs/task/%s/start?xrfkey=" % task

errors = []
reconnects = {"butlerd": 0, "direct": 0}

def fail(what, detail):
    errors.append("%s: %s" % (what, detail))
    if len(errors) == 1 and phase == "warm-up":
        sys.exit("task.sh client: the first %s failed during warm-up: %s" % (what, detail))

def start_task():
    global b_sock
    c0 = tt()
    t0 = pc()
    bc.request("PUT", START_PATH, b"[]", START_HDR)
    r = bc.getresponse()
    data = r.read()
    t1 = pc()
    c1 = tt()
    if bc.sock is not b_sock:
        reconnects["butlerd"] += 1
        if bc.sock is not None:
            nodelay(bc)
        b_sock = bc.sock
    ok = r.status == 200
    if ok:
        try:
            o = json.loads(data)
            ok = (any(t.get("taskId") == task for t in o["tasksId"]["started"])
                  and not o["tasksFailed"])
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
    if not ok:
        fail("task-start", "HTTP %d %r" % (r.status, data[:300]))
    return t1 - t0, c1 - c0

def direct():
    global d_sock
    k1, k2 = xrfkey(), xrfkey()
    h1 = {"X-Qlik-Xrfkey": k1, "Content-Type": "application/json", "X-Qlik-User": user}
    h2 = {"X-Qlik-Xrfkey": k2, "Content-Type": "application/json", "X-Qlik-User": user}
    c0 = tt()
    t0 = pc()
    dc.request("GET", GET_PATH + k1, headers=h1)
    r1 = dc.getresponse()
    d1 = r1.read()
    t1 = pc()
    dc.request("POST", POST_PATH + k2, b"{}", h2)
    r2 = dc.getresponse()
    d2 = r2.read()
    t2 = pc()
    c2 = tt()
    if dc.sock is not d_sock:
        reconnects["direct"] += 1
        if dc.sock is not None:
            nodelay(dc)
            direct_ports.append(dc.sock.getsockname()[1])
        d_sock = dc.sock
    ok = r1.status == 200
    if ok:
        try:
            lst = json.loads(d1)
            ok = len(lst) == 1 and lst[0]["id"] == task
        except (ValueError, KeyError, TypeError, IndexError):
            ok = False
    if not ok:
        fail("qrs-direct GET /qrs/task", "HTTP %d %r" % (r1.status, d1[:300]))
    if r2.status != 204:
        fail("qrs-direct POST /qrs/task/<id>/start", "HTTP %d %r" % (r2.status, d2[:300]))
    return t2 - t0, t1 - t0, t2 - t1, c2 - c0

def ping():
    c0 = tt()
    t0 = pc()
    bc.request("GET", "/v4/butlerping")
    r = bc.getresponse()
    data = r.read()
    t1 = pc()
    c1 = tt()
    if r.status != 200:
        fail("butlerd-ping", "HTTP %d %r" % (r.status, data[:300]))
    return t1 - t0, c1 - c0

phase = "warm-up"
for _ in range(warm):
    start_task()
    direct()
warm_end = time.time()

phase = "measure"
task_ns, pair_ns, get_ns, post_ns = [], [], [], []
client_cpu = {"task": 0, "pair": 0, "ping": 0}
(cpu0, cpu_src), w0 = cpu_ns(), pc()
for _ in range(n):
    t, c = start_task()
    task_ns.append(t)
    client_cpu["task"] += c
    p, g, q, c = direct()
    client_cpu["pair"] += c
    pair_ns.append(p)
    get_ns.append(g)
    post_ns.append(q)
wall_ns = pc() - w0
cpu_used = cpu_ns()[0] - cpu0
measure_end = time.time()

phase = "ping warm-up"
for _ in range(warm):
    ping()
phase = "ping"
ping_ns = []
for _ in range(n):
    t, c = ping()
    ping_ns.append(t)
    client_cpu["ping"] += c

with open(out_path, "w") as f:
    json.dump({"task": task_ns, "pair": pair_ns, "get": get_ns, "post": post_ns,
               "ping": ping_ns, "wall_ns": wall_ns, "cpu_ns": cpu_used, "cpu_src": cpu_src,
               "client_cpu": client_cpu,
               "warm_end": warm_end, "measure_end": measure_end,
               "direct_ports": direct_ports, "reconnects": reconnects,
               "errors": len(errors), "error_examples": errors[:5]}, f)
PY

cat >"$tmp/report.py" <<'PY'
# written by bench/task.sh: prints the summary from the client's results and
# the simulator's request log.
import json, math, sys

res_path, dump_path, n, warm, task, ncpu, cpu_model = sys.argv[1:8]
n, warm = int(n), int(warm)
with open(res_path) as f:
    R = json.load(f)
reqs = []
with open(dump_path) as f:
    for line in f:
        reqs.append(json.loads(line))

def pct(sorted_ns, p):
    """nearest-rank percentile, in ms"""
    k = max(0, math.ceil(p / 100 * len(sorted_ns)) - 1)
    return sorted_ns[k] / 1e6

def stats(ns):
    s = sorted(ns)
    mean = sum(s) / len(s) / 1e6
    return {"p50": pct(s, 50), "p90": pct(s, 90), "p99": pct(s, 99), "mean": mean,
            "max": s[-1] / 1e6, "rps": 1000 / mean if mean > 0 else 0}

rows = [("task-start (butlerd)", "task", "requests/s"),
        ("qrs-direct (GET+POST)", "pair", "pairs/s"),
        ("  GET /qrs/task", "get", ""),
        ("  POST /qrs/task/<id>/start", "post", ""),
        ("butlerd-ping (context)", "ping", "requests/s")]
S = {key: stats(R[key]) for _, key, _ in rows}
print()
print("%d measured iterations after %d warm-up, one python3 client, strictly sequential:"
      % (n, warm))
print("each iteration = 1 task-start through butlerd, then the same 2 QRS calls straight to")
print("the simulator; butlerd-ping ran afterwards on the same butlerd connection")
print("host: %s CPUs%s; client, butlerd and simulator on the same host" %
      (ncpu, " (%s)" % cpu_model if cpu_model else ""))
print()
print("%-29s %8s %8s %8s %8s %8s   %s" % ("latency (ms)", "p50", "p90", "p99", "mean", "max",
                                        "rate = 1/mean"))
for label, key, unit in rows:
    s = S[key]
    rate = "%.1f %s" % (s["rps"], unit) if unit else ""
    print("%-29s %8.3f %8.3f %8.3f %8.3f %8.3f   %s" %
          (label, s["p50"], s["p90"], s["p99"], s["mean"], s["max"], rate))
added50 = S["task"]["p50"] - S["pair"]["p50"]
added99 = S["task"]["p99"] - S["pair"]["p99"]
print("%-29s %8.3f %8s %8.3f %8.3f" % ("added (task-start - direct)", added50, "",
                                      added99, S["task"]["mean"] - S["pair"]["mean"]))
print()
print("measured loop: %.2f s for %d task-starts and %d direct pairs"
      % (R["wall_ns"] / 1e9, n, n))
print("butlerd CPU time per task-start (master + workers, all threads): %.3f ms (from %s)"
      % (R["cpu_ns"] / 1e6 / n, "/proc/PID/task/TID/schedstat" if R["cpu_src"] == "schedstat"
         else "/proc/PID/stat, clock ticks"))
cc_task, cc_pair, cc_ping = (R["client_cpu"][k] / 1e6 / n for k in ("task", "pair", "ping"))
print("python client CPU time inside the timed calls (mean): task-start %.3f ms, "
      "qrs-direct %.3f ms," % (cc_task, cc_pair))
print("           butlerd-ping %.3f ms" % cc_ping)
print("added p50 without the client's CPU, (task-start p50 - %.3f) - (qrs-direct p50 - %.3f):"
      % (cc_task, cc_pair))
print("           %.3f ms (an estimate: see bench/README.md)"
      % ((S["task"]["p50"] - cc_task) - (S["pair"]["p50"] - cc_pair)))

# ---- what the simulator saw
warnings = []
direct_ports = set(R["direct_ports"])
b = [r for r in reqs if r[2] not in direct_ports]
d = [r for r in reqs if r[2] in direct_ports]
expect = 2 * (warm + n)
statuses = {}
for r in b:
    statuses[r[6]] = statuses.get(r[6], 0) + 1
bad_filters = [r for r in b if r[3] == "GET" and r[5] != "id eq " + task]
gets = sum(1 for r in b if r[3] == "GET" and r[4] == "/qrs/task")
posts = sum(1 for r in b if r[3] == "POST" and r[4].lower() == "/qrs/task/%s/start" % task)
first_seen = {}
for r in b:
    first_seen.setdefault(r[2], r[0])
new_conns = sum(1 for t in first_seen.values() if R["warm_end"] < t <= R["measure_end"])

def service_ms(rs, t0, t1):
    s = sorted(r[1] - r[0] for r in rs if r[1] is not None and t0 < r[0] <= t1)
    return (s[len(s) // 2] * 1000, s[max(0, math.ceil(0.99 * len(s)) - 1)] * 1000) if s else (0, 0)

print()
print("simulator: %d requests from butlerd (expected %d: %d GET /qrs/task, %d POST .../start),"
      % (len(b), expect, gets, posts))
print("           statuses %s, over %d connections (%d opened during the measured loop);"
      % (", ".join("%s: %d" % kv for kv in sorted(statuses.items(), key=str)), len(first_seen),
         new_conns))
print("           %d direct requests over %d connection(s)" % (len(d), len(direct_ports)))
sb = service_ms(b, R["warm_end"], R["measure_end"])
sd = service_ms(d, R["warm_end"], R["measure_end"])
print("simulator's service time per QRS call (request read -> answer ready), p50 / p99:")
print("           butlerd's calls %.3f / %.3f ms, direct calls %.3f / %.3f ms" % (sb + sd))
if len(b) != expect or gets != warm + n or posts != warm + n:
    warnings.append("the simulator did not see exactly one GET /qrs/task and one POST start per "
                    "task-start request")
if set(statuses) - {200, 204}:
    warnings.append("the simulator answered butlerd with statuses other than 200/204")
if bad_filters:
    warnings.append("%d of butlerd's lookups used another filter, e.g. %r"
                    % (len(bad_filters), bad_filters[0][5]))
if new_conns:
    warnings.append("butlerd opened %d new QRS connection(s) during the measured loop "
                    "(TLS handshakes inflate the tail)" % new_conns)
if R["reconnects"]["butlerd"] or R["reconnects"]["direct"] or len(direct_ports) != 1:
    warnings.append("the client had to reconnect: %r" % R["reconnects"])
if R["errors"]:
    warnings.append("%d requests failed; the numbers are suspect. First: %s"
                    % (R["errors"], "; ".join(R["error_examples"])))
print()
print("goal: butlerd's added time at p50 <= 0.5 ms: %s"
      % ("met" if added50 <= 0.5 else "NOT met"))
for w in warnings:
    print("task.sh: WARNING: " + w, file=sys.stderr)
print()
print("requests/s task-start: %.1f" % S["task"]["rps"])
print("requests/s qrs-direct: %.1f (pairs of 2 QRS calls)" % S["pair"]["rps"])
print("task-start p50 %.3f ms, p99 %.3f ms" % (S["task"]["p50"], S["task"]["p99"]))
print("qrs-direct p50 %.3f ms, p99 %.3f ms" % (S["pair"]["p50"], S["pair"]["p99"]))
print("added p50 %.3f ms (goal <= 0.5), added p99 %.3f ms" % (added50, added99))
PY

# ---------------------------------------------------------------- start the simulator
read -r port_b port_s < <(free_ports "$PYTHON")
shm_name=/butlerd-taskbench-$$
shm_path=/dev/shm${shm_name}.$port_b
url_b="http://127.0.0.1:$port_b$PATH_PING"

info "temp dir $tmp; butlerd on 127.0.0.1:$port_b, simulator (QRS) on 127.0.0.1:$port_s"
info "starting the Qlik Sense simulator ($SIM_DIR/qlik_sim.py, $("$PYTHON" -V 2>&1))"
"$PYTHON" "$tmp/sim_run.py" "$SIM_DIR" "$FIXTURE" "$port_s" "$tmp/certs" "$tmp/sim.ready" \
    "$tmp/sim.requests" >"$tmp/sim.log" 2>&1 &
sim_pid=$!
wait_file simulator "$sim_pid" "$tmp/sim.ready" "$tmp/sim.log"

# ---------------------------------------------------------------- start butlerd
write_butlerd_conf "$port_b" "$WORKERS" warn "    senseStartTask = true;" \
    "  cert = {
    clientCert = \"$tmp/certs/client.pem\";
    clientCertKey = \"$tmp/certs/client_key.pem\";
    clientCertCA = \"$tmp/certs/root.pem\";
  };
  configQRS = {
    authentication = \"certificates\";
    host = \"127.0.0.1\";
    port = $port_s;
    useSSL = true;
    rejectUnauthorized = true;
    headers = {
      static = ( { name = \"X-Qlik-User\"; value = \"$QLIK_USER\"; } );
    };
  };" ""

info "starting butlerd (copy of $BUTLERD_SRC, $WORKERS worker(s))"
start_butlerd "$url_b"
check_workers "$WORKERS"

# ---------------------------------------------------------------- measure
info "warm-up $WARMUP, then $REQUESTS measured iterations: PUT /v4/reloadtask/$TASK_ID/start"
info "through butlerd, then GET /qrs/task?filter=id eq ... + POST /qrs/task/<id>/start direct;"
info "then $WARMUP + $REQUESTS x GET $PATH_PING for context"
# In the background so that Ctrl-C runs the INT trap at once; cleanup stops
# the client by PID.
rc=0
"$PYTHON" "$tmp/client.py" "$port_b" "$port_s" "$tmp/sim.ready" "$REQUESTS" "$WARMUP" \
    "$TASK_ID" "$QLIK_USER" "$tmp/results.json" "$butlerd_pid ${butlerd_workers[*]}" \
    >"$tmp/client.log" 2>&1 &
client_pid=$!
wait "$client_pid" || rc=$?
client_pid=
if ((rc != 0)); then
    cat "$tmp/client.log" >&2
    printf 'butlerd log:\n' >&2
    tail -n 20 "$tmp/butlerd.log" >&2 || true
    die "the measuring client failed (exit status $rc)"
fi
check_alive butlerd "$butlerd_pid" "$tmp/butlerd.log"
check_alive simulator "$sim_pid" "$tmp/sim.log"

warn_log butlerd log "$tmp/butlerd.log"

# Stop the simulator now: it writes its request log on the way out.
stop_group simulator "$sim_pid"
sim_pid=
[[ -s $tmp/sim.requests ]] || {
    cat "$tmp/sim.log" >&2
    die "the simulator did not write its request log"
}

"$PYTHON" "$tmp/report.py" "$tmp/results.json" "$tmp/sim.requests" "$REQUESTS" "$WARMUP" \
    "$TASK_ID" "$(nproc)" "$(cpu_model)"
