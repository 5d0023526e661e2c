#!/usr/bin/env bash
# bench/kvmem.sh: memory used by butlerd's key-value store when it holds
# KEYS keys. Starts butlerd with 1 worker and kvMaxKeys = KEYS, loads
# key-000001 .. key-<KEYS> (16-byte values) with wrk, checks a sample of
# them, and reports the shared-memory segment's size and allocated pages,
# the RSS/PSS of master and worker, and the bytes used per stored key.
#
# Usage: bench/kvmem.sh [-n KEYS] [-c CONNECTIONS] [-t THREADS] [-L]
# Needs the Debian package wrk, plus curl, python3 and procps. The butlerd
# binary is $BUTLERD, or ../src/butlerd next to this script; it is copied to
# the temporary directory first. See bench/README.md ("Key-value store").

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

KEYS=1000000
CONNECTIONS=32
SAMPLE=2000
check_keylist=1
KEY_BYTES=64
VALUE_BYTES=64

usage() {
    cat <<EOF
Usage: $0 [-n KEYS] [-c CONNECTIONS] [-t THREADS] [-L]

Starts butlerd (1 worker; kvMaxKeys = maxKeysPerNamespace = KEYS,
kvMaxKeyBytes = $KEY_BYTES, kvMaxValueBytes = $VALUE_BYTES), writes KEYS keys key-000001 ..
with 16-byte values into namespace "$NAMESPACE" with wrk (each key exactly once),
checks $SAMPLE of them and the key count, and reports the memory used.
The memory is measured right after the load, before the checks.

  -n KEYS         keys to store (default $KEYS)
  -c CONNECTIONS  wrk connections used for loading (default $CONNECTIONS)
  -t THREADS      wrk threads used for loading (default $THREADS)
  -L              skip the key-count check through GET /v4/keylist/$NAMESPACE (which
                  takes about 12 s and 900 MB of worker heap for 1000000 keys)

Environment: BUTLERD=path to the binary (default $script_dir/../src/butlerd)
EOF
}

# own_opt LETTER VALUE: this script's options (parse_opts in lib.sh).
own_opt() {
    case $1 in
        n) KEYS=$2 ;;
        L) check_keylist=0 ;;
        *) return 1 ;;
    esac
}
parse_opts 'n:c:t:L' "$@"

check_opts KEYS CONNECTIONS THREADS
check_load_keys

need_commands "" wrk:wrk curl:curl python3:python3 pgrep:procps
find_butlerd

# ---------------------------------------------------------------- state/cleanup
stopping=butlerd
client_kill=1
bench_tmp butlerd-kvmem
copy_butlerd

# ---------------------------------------------------------------- start butlerd
read -r port _ < <(free_ports python3)
shm_name=/butlerd-kvmem-$$
shm_path=/dev/shm${shm_name}.$port
url_ping="http://127.0.0.1:$port/v4/butlerping"
url_kv="http://127.0.0.1:$port/v4/keyvalues/$NAMESPACE"

info "temp dir $tmp; butlerd on 127.0.0.1:$port"
write_kv_conf "$port" 1 info "$KEY_BYTES" "$VALUE_BYTES"

info "starting butlerd (copy of $BUTLERD_SRC, 1 worker, kvMaxKeys = $KEYS)"
# A large segment takes a moment to initialise: wait up to 30 s.
start_butlerd "$url_ping" 30
check_workers 1 "1 worker"
sed -n 's/.*\(created shared memory.*\)/   butlerd: \1/p' "$tmp/butlerd.log"

shm_usage
empty_size=$shm_size empty_used_kb=$shm_used_kb
echo "   empty store: segment $(mb $((empty_size / 1024))) MB, $(mb "$empty_used_kb") MB allocated"
echo "   empty store, butlerd processes:"
report_butlerd_memory
empty_mem=$mem_summary

# ---------------------------------------------------------------- load
load_keys "$url_kv" "$KEYS"

report_butlerd_memory >"$tmp/mem.loaded"
loaded_mem=$mem_summary

# ---------------------------------------------------------------- verify
if ((check_keylist)); then
    info "checking the key count (GET /v4/keylist/$NAMESPACE) and $SAMPLE keys (GET, values compared)"
else
    info "checking $SAMPLE keys (GET, values compared)"
fi
python3 - "$port" "$NAMESPACE" "$KEYS" "$SAMPLE" "$check_keylist" <<'PY' || die "verification failed"
import http.client, json, random, sys, time

port, ns, n, sample = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

if sys.argv[5] == "1":
    t = time.monotonic()
    c.request("GET", "/v4/keylist/" + ns)
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit("keylist: HTTP %d %r" % (r.status, data[:200]))
    keys = json.loads(data)["keys"]
    names = set(k["key"] for k in keys)
    want = set("key-%06d" % i for i in range(1, n + 1))
    if len(keys) != n or names != want:
        sys.exit("keylist: %d keys (%d distinct), %d expected ones missing, %d unexpected"
                 % (len(keys), len(names), len(want - names), len(names - want)))
    print("   keylist: %d keys, exactly key-%06d .. key-%06d (%.1f MB reply in %.2f s)"
          % (n, 1, n, len(data) / 1048576, time.monotonic() - t))

rng = random.Random(12345)
idx = sorted(set([1, n] + [rng.randint(1, n) for _ in range(sample)]))
for i in idx:
    key = "key-%06d" % i
    c.request("GET", "/v4/keyvalues/%s?key=%s" % (ns, key))
    r = c.getresponse()
    data = r.read()
    want = {"namespace": ns, "key": key, "value": "v%015d" % i}
    if r.status != 200 or json.loads(data) != want:
        sys.exit("GET %s: HTTP %d %r" % (key, r.status, data[:200]))
c.request("GET", "/v4/keyvalues/%s?key=key-%06d" % (ns, n + 1))
r = c.getresponse()
r.read()
if r.status != 400:
    sys.exit("GET key-%06d (never written): HTTP %d, expected 400" % (n + 1, r.status))
print("   %d sampled keys read back with the right values; key-%06d absent as expected"
      % (len(idx), n + 1))
PY
check_alive butlerd "$butlerd_pid" "$tmp/butlerd.log"

# ---------------------------------------------------------------- report
shm_usage
echo
echo "butlerd, 1 worker; $KEYS keys of 10-11 bytes with 16-byte values in 1 namespace;"
echo "slots sized for kvMaxKeyBytes = $KEY_BYTES, kvMaxValueBytes = $VALUE_BYTES, kvMaxKeys = $KEYS"
echo
echo "shared memory $shm_path:"
printf '   %-36s %14s bytes  %9s MB\n' "segment size (ls -l, address space)" "$shm_size" "$(mb $((shm_size / 1024)))"
printf '   %-36s %14s bytes  %9s MB\n' "allocated, empty store (du)" "$((empty_used_kb * 1024))" "$(mb "$empty_used_kb")"
printf '   %-36s %14s bytes  %9s MB\n' "allocated, $KEYS keys (du)" "$((shm_used_kb * 1024))" "$(mb "$shm_used_kb")"
((shm_size == empty_size)) || warn "the segment's size changed from $empty_size to $shm_size bytes"
echo
echo "butlerd processes after the load (RSS/PSS include the shared memory they touched):"
cat "$tmp/mem.loaded"
echo "   empty store, before the load: $empty_mem"
if ((check_keylist)); then
    report_butlerd_memory >"$tmp/mem.checked"
    echo "   after the checks (GET /v4/keylist builds the whole reply in the worker's heap):"
    echo "   $mem_summary; worker RssAnon $(mb "$(status_kb "${butlerd_workers[0]:-0}" RssAnon)") MB"
fi
echo

per_key=$(awk -v u="$shm_used_kb" -v n="$KEYS" 'BEGIN { printf "%.1f", u * 1024 / n }')
per_key_delta=$(awk -v u="$shm_used_kb" -v e="$empty_used_kb" -v n="$KEYS" 'BEGIN { printf "%.1f", (u - e) * 1024 / n }')
per_key_space=$(awk -v s="$shm_size" -v n="$KEYS" 'BEGIN { printf "%.1f", s / n }')
echo "per stored key: $per_key bytes of allocated shared memory ($per_key_delta bytes more than the"
echo "empty store's), $per_key_space bytes of address space"
if grep -qiE ' (warn|error|crit)' "$tmp/butlerd.log"; then
    warn "butlerd logged warnings or errors; last lines:"
    grep -iE ' (warn|error|crit)' "$tmp/butlerd.log" | tail -n 5 | sed 's/^/   /' >&2
fi
echo "butlerd memory: master+1 worker $loaded_mem (after the load)"
echo "kv memory: $KEYS keys, shm used $(mb "$shm_used_kb") MB, $per_key bytes/key"
