#!/usr/bin/env bash
# bench/kvsnap.sh: what a restart from the key-value snapshot costs. Starts
# butlerd with a snapshot file, fills KEYS keys through the API (as
# kvmem.sh does) and records the memory; stops it in order (the snapshot is
# written) and restarts it RESTARTS times from that file, measuring the time
# from exec to the first answer and the memory of all its processes once
# the workers run. With -J it also restarts once from a snapshot in the old
# JSON format (version 1), written by this script with the same data.
#
# Usage: bench/kvsnap.sh [-n KEYS] [-w WORKERS] [-r RESTARTS] [-c CONNECTIONS] [-t THREADS] [-J]
# Needs the Debian package wrk, plus curl, python3 and procps. The butlerd
# binary is $BUTLERD, or ../src/butlerd next to this script; it is copied to
# the temporary directory first. See bench/README.md ("kvsnap.sh").

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

KEYS=1000000
RESTARTS=3
CONNECTIONS=32
SAMPLE=2000
json=0
KEY_BYTES=64
VALUE_BYTES=64

usage() {
    cat <<EOF
Usage: $0 [-n KEYS] [-w WORKERS] [-r RESTARTS] [-c CONNECTIONS] [-t THREADS] [-J]

Starts butlerd (WORKERS workers; kvMaxKeys = maxKeysPerNamespace = KEYS,
kvMaxKeyBytes = $KEY_BYTES, kvMaxValueBytes = $VALUE_BYTES, a snapshot file), writes KEYS keys
key-000001 .. with 16-byte values into namespace "$NAMESPACE" through the API,
stops it (the snapshot is written) and restarts it from the snapshot.
Reports the time from exec to the first answer and the memory (PSS of all
butlerd processes) after each restart, against the memory after the API fill.

  -n KEYS         keys to store (default $KEYS)
  -w WORKERS      butlerd workers (default $WORKERS)
  -r RESTARTS     restarts from the snapshot butlerd wrote (default $RESTARTS)
  -c CONNECTIONS  wrk connections used for loading (default $CONNECTIONS)
  -t THREADS      wrk threads used for loading (default $THREADS)
  -J              also restart once from a JSON snapshot (format version 1)

Environment: BUTLERD=path to the binary (default $script_dir/../src/butlerd)
EOF
}

# own_opt LETTER VALUE: this script's options (parse_opts in lib.sh).
own_opt() {
    case $1 in
        n) KEYS=$2 ;;
        r) RESTARTS=$2 ;;
        J) json=1 ;;
        *) return 1 ;;
    esac
}
parse_opts 'n:w:r:c:t:J' "$@"

check_opts KEYS WORKERS RESTARTS CONNECTIONS THREADS
check_load_keys

need_commands "" wrk:wrk curl:curl python3:python3 pgrep:procps
find_butlerd

# ---------------------------------------------------------------- state/cleanup
stopping=butlerd
client_kill=1
bench_tmp butlerd-kvsnap
copy_butlerd

read -r port _ < <(free_ports python3)
shm_name=/butlerd-kvsnap-$$
shm_path=/dev/shm${shm_name}.$port
kv_file=$tmp/state/kv.snapshot
mkdir -m 700 -- "$tmp/state"
url_ping="http://127.0.0.1:$port/v4/butlerping"
url_kv="http://127.0.0.1:$port/v4/keyvalues/$NAMESPACE"

# The client that times a restart: polls every 5 ms until the port accepts,
# then waits for that answer (the listen socket exists before the snapshot is
# loaded; the answer comes from the first worker). Prints the time (ns).
cat >"$tmp/first.py" <<'PY'
import http.client, json, os, sys, time
port, ns, n, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
key = "key-%06d" % n
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("butlerd exited during start-up")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        c.request("GET", "/v4/keyvalues/%s?key=%s" % (ns, key))
        r = c.getresponse()
        data = r.read()
    except (ConnectionRefusedError, ConnectionResetError):
        time.sleep(0.005)
        continue
    t = time.time_ns()
    if r.status != 200 or json.loads(data) != {"namespace": ns, "key": key,
                                                "value": "v%015d" % n}:
        sys.exit("first answer: HTTP %d %r" % (r.status, data[:200]))
    print(t)
    sys.exit(0)
sys.exit("no answer within 300 s")
PY

# ---------------------------------------------------------------- helpers
# stop_butlerd: SIGTERM, wait for the exit (the snapshot is written at the
# orderly stop); sets stop_secs.
stop_butlerd() {
    local t0 t1 i
    t0=$(date +%s.%N)
    kill -TERM "$butlerd_pid"
    for ((i = 0; i < 1200; i++)); do
        kill -0 "$butlerd_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$butlerd_pid" 2>/dev/null && die "butlerd did not stop within 60 s"
    wait "$butlerd_pid" || die "butlerd exited with status $? at the stop"
    t1=$(date +%s.%N)
    butlerd_pid=
    butlerd_workers=()
    stop_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

# restart LABEL: starts butlerd on the snapshot, times exec -> the first
# answer to GET of the last key (its value checked), waits for the workers,
# records the memory, checks a sample of keys and stops it. Appends a line
# to the results.
results=()
restart() {
    local label=$1 t0 first_ms size loaded i
    : >"$tmp/butlerd.log"
    size=$(stat -c %s -- "$kv_file")
    t0=$(date +%s%N)
    "$BUTLERD" -f -c "$tmp/butlerd.conf" 2>"$tmp/butlerd.log" &
    butlerd_pid=$!
    first_ns=$(python3 "$tmp/first.py" "$port" "$NAMESPACE" "$KEYS" "$butlerd_pid") || {
        tail -n 20 "$tmp/butlerd.log" >&2
        die "restart ($label) failed"
    }
    first_ms=$(((first_ns - t0) / 1000000))
    # CPU time the master used until then: unlike the elapsed time, hardly
    # changed by other jobs competing for the CPUs.
    cpu_ms=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' \
        "/proc/$butlerd_pid/stat")
    for ((i = 0; i < 100; i++)); do
        mapfile -t butlerd_workers < <(children_of "$butlerd_pid")
        ((${#butlerd_workers[@]} >= WORKERS)) && break
        sleep 0.05
    done
    check_workers "$WORKERS"
    loaded=$(sed -n 's/.*\(loaded [0-9]* keys\).*/\1/p' "$tmp/butlerd.log" | head -n 1)
    echo "   $label: first answer after $first_ms ms, master CPU $cpu_ms ms (${loaded:-no \"loaded\" line}; file $(mb $((size / 1024))) MB)"
    report_butlerd_memory
    verify
    stop_butlerd
    results+=("$(printf '%-28s %8d ms %8d ms %10s MB %6s B/key %7s s' "$label" "$first_ms" \
        "$cpu_ms" "$(mb "$pss_total_kb")" "$(per_key "$pss_total_kb")" "$stop_secs")")
}

per_key() {
    awk -v k="$1" -v n="$KEYS" 'BEGIN { printf "%.0f", k * 1024 / n }'
}

# verify: every sampled key reads back with its value; key KEYS+1 is absent.
verify() {
    python3 - "$port" "$NAMESPACE" "$KEYS" "$SAMPLE" <<'PY' || die "verification failed"
import http.client, json, random, sys
port, ns, n, sample = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
rng = random.Random(12345)
for i in sorted(set([1, n] + [rng.randint(1, n) for _ in range(sample)])):
    key = "key-%06d" % i
    c.request("GET", "/v4/keyvalues/%s?key=%s" % (ns, key))
    r = c.getresponse()
    data = r.read()
    if r.status != 200 or json.loads(data) != {"namespace": ns, "key": key,
                                                "value": "v%015d" % i}:
        sys.exit("GET %s: HTTP %d %r" % (key, r.status, data[:200]))
c.request("GET", "/v4/keyvalues/%s?key=key-%06d" % (ns, n + 1))
r = c.getresponse()
r.read()
if r.status != 400:
    sys.exit("GET key-%06d (never written): HTTP %d, expected 400" % (n + 1, r.status))
PY
}

# ---------------------------------------------------------------- API fill
info "temp dir $tmp; butlerd on 127.0.0.1:$port, snapshot $kv_file"
write_kv_conf "$port" "$WORKERS" info "$KEY_BYTES" "$VALUE_BYTES"

info "starting butlerd (copy of $BUTLERD_SRC, $WORKERS workers, kvMaxKeys = $KEYS)"
start_butlerd "$url_ping" 30
check_workers "$WORKERS"
load_keys "$url_kv" "$KEYS"
echo "   after the API fill:"
report_butlerd_memory
api_pss_kb=$pss_total_kb
verify
info "orderly stop (writes the snapshot)"
stop_butlerd
fill_stop_secs=$stop_secs
snap_size=$(stat -c %s -- "$kv_file")
echo "   stopped in $stop_secs s; snapshot $(mb $((snap_size / 1024))) MB ($(head -c 16 -- "$kv_file" | tr -c '[:print:]' '.'))"

# ---------------------------------------------------------------- restarts
info "$RESTARTS restarts from the snapshot butlerd wrote"
for ((r = 1; r <= RESTARTS; r++)); do
    restart "snapshot, restart $r"
done

if ((json)); then
    info "restart from a JSON snapshot (format version 1) with the same keys"
    python3 - "$kv_file" "$NAMESPACE" "$KEYS" <<'PY'
import json, sys
path, ns, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path + ".new", "w") as f:
    f.write('{"format":"butlerd-kv","version":1,"savedAt":"2026-01-01T00:00:00.000Z",'
            '"namespaces":[{"namespace":%s,"keys":[' % json.dumps(ns))
    f.write(",".join('{"key":"key-%06d","value":"v%015d","expiresAt":null}' % (i, i)
                     for i in range(1, n + 1)))
    f.write("]}]}")
import os
os.chmod(path + ".new", 0o600)
os.rename(path + ".new", path)
PY
    restart "JSON snapshot (version 1)"
fi

# ---------------------------------------------------------------- report
echo
echo "butlerd, $WORKERS workers; $KEYS keys of 10-11 bytes with 16-byte values in 1 namespace;"
echo "slots sized for kvMaxKeyBytes = $KEY_BYTES, kvMaxValueBytes = $VALUE_BYTES"
echo "memory = PSS summed over the master and its children (/proc/PID/smaps_rollup)"
echo
printf '%-28s %11s %11s %13s %12s %9s\n' "" "1st answer" "master CPU" "memory" "per key" "stop"
printf '%-28s %11s %11s %10s MB %6s B/key %7s s\n' "API fill" "" "" "$(mb "$api_pss_kb")" \
    "$(per_key "$api_pss_kb")" "$fill_stop_secs"
for line in "${results[@]}"; do
    echo "$line"
done
echo
echo "(1st answer = exec to the first answer; master CPU = the master's user+system time until"
echo "then; stop = SIGTERM to exit, including the snapshot of the whole store. On a busy host"
echo "compare the best runs and the CPU times: see bench/README.md)"
if grep -qiE ' (warn|error|crit)' "$tmp/butlerd.log"; then
    warn "butlerd logged warnings or errors in the last run; last lines:"
    grep -iE ' (warn|error|crit)' "$tmp/butlerd.log" | tail -n 5 | sed 's/^/   /' >&2
fi
echo "kvsnap: $KEYS keys, API fill PSS $(mb "$api_pss_kb") MB; snapshot $(mb $((snap_size / 1024))) MB"
for line in "${results[@]}"; do
    echo "kvsnap: $line" | tr -s ' '
done
