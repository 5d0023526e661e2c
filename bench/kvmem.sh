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

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
prog=kvmem.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$script_dir/lib.sh"

KEYS=1000000
CONNECTIONS=32
THREADS=2
SAMPLE=2000
check_keylist=1
NAMESPACE=bench
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

while getopts ':n:c:t:Lh' opt; do
    case $opt in
        n) KEYS=$OPTARG ;;
        c) CONNECTIONS=$OPTARG ;;
        t) THREADS=$OPTARG ;;
        L) check_keylist=0 ;;
        h)
            usage
            exit 0
            ;;
        :) die "option -$OPTARG needs a value (see -h)" ;;
        *) die "unknown option -$OPTARG (see -h)" ;;
    esac
done
shift $((OPTIND - 1))
(($# == 0)) || die "unexpected argument: $1 (see -h)"

check_uints "KEYS:$KEYS" "CONNECTIONS:$CONNECTIONS" "THREADS:$THREADS"
((CONNECTIONS >= THREADS)) || die "wrk needs CONNECTIONS >= THREADS ($CONNECTIONS < $THREADS)"
((KEYS <= 100000000)) || die "KEYS must be at most 100000000 (butlerd's kvMaxKeys limit)"
((THREADS <= KEYS)) || THREADS=$KEYS
((CONNECTIONS <= KEYS)) || CONNECTIONS=$KEYS

need_commands "" wrk:wrk curl:curl python3:python3 pgrep:procps
find_butlerd

# ---------------------------------------------------------------- state/cleanup
stopping=butlerd
client_kill=1
bench_tmp butlerd-kvmem
copy_butlerd

# ---------------------------------------------------------------- helpers
# report_butlerd_memory: per-process table of butlerd; sets mem_summary.
report_butlerd_memory() {
    local pid rss pss anon shmem rss_sum=0 pss_sum=0 role
    local -a kids
    mapfile -t kids < <(children_of "$butlerd_pid")
    printf '   %-7s %8s %9s %9s %11s %12s\n' role pid "RSS MB" "PSS MB" "RssAnon MB" "RssShmem MB"
    for pid in "$butlerd_pid" "${kids[@]}"; do
        rss=$(status_kb "$pid" VmRSS)
        anon=$(status_kb "$pid" RssAnon)
        shmem=$(status_kb "$pid" RssShmem)
        pss=$(pss_kb "$pid")
        rss_sum=$((rss_sum + rss))
        pss_sum=$((pss_sum + pss))
        role=worker
        [[ $pid == "$butlerd_pid" ]] && role=master
        printf '   %-7s %8s %9s %9s %11s %12s\n' "$role" "$pid" "$(mb "$rss")" "$(mb "$pss")" \
            "$(mb "$anon")" "$(mb "$shmem")"
    done
    printf '   %-7s %8s %9s %9s\n' total "" "$(mb "$rss_sum")" "$(mb "$pss_sum")"
    mem_summary="RSS $(mb "$rss_sum") MB, PSS $(mb "$pss_sum") MB"
}

# ---------------------------------------------------------------- start butlerd
read -r port _ < <(free_ports python3)
shm_name=/butlerd-kvmem-$$
shm_path=/dev/shm${shm_name}.$port
url_ping="http://127.0.0.1:$port/v4/butlerping"
url_kv="http://127.0.0.1:$port/v4/keyvalues/$NAMESPACE"

info "temp dir $tmp; butlerd on 127.0.0.1:$port"
write_butlerd_conf "$port" 1 info "    keyValueStore = true;" \
    "  keyValueStore = {
    maxKeysPerNamespace = $KEYS;
  };" \
    "    kvMaxKeys = $KEYS;
    kvMaxKeyBytes = $KEY_BYTES;
    kvMaxValueBytes = $VALUE_BYTES;
    kvMaxNamespaces = 100;"

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
# Each wrk thread owns a contiguous range of keys and POSTs each of them
# once (the request() that wrk calls once before the run to check the
# script is answered with a peek, not a new key). A thread that has its
# whole range answered writes TMP/done.ID and stops; once every thread has,
# the script ends wrk with SIGINT (wrk otherwise runs for its full -d).
# Requests issued after a thread's range is used up are GET /v4/butlerping.
cat >"$tmp/load.lua" <<'LUA'
-- written by bench/kvmem.sh. Arguments: KEYS THREADS DONE_DIR
local threads = {}
function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end
local n, nthreads, dir, hi, nextk, share, peek, path, headers, ping, finished
function init(args)
   n, nthreads, dir = tonumber(args[1]), tonumber(args[2]), args[3]
   local lo = math.floor((id - 1) * n / nthreads) + 1
   hi = math.floor(id * n / nthreads)
   nextk, share = lo, hi - lo + 1
   peek = (id == 1) -- wrk checks the request() of its first thread once
   path = wrk.path
   headers = { ["Content-Type"] = "application/json" }
   ping = wrk.format("GET", "/v4/butlerping")
   created, bad, badstatus = 0, 0, {}
end
function request()
   if nextk > hi then return ping end
   local k = nextk
   if peek then peek = false else nextk = nextk + 1 end
   return wrk.format("POST", path, headers,
                     string.format('{"key":"key-%06d","value":"v%015d","ttl":0}', k, k))
end
function response(status)
   if status == 201 then
      created = created + 1
   elseif status ~= 200 then
      bad = bad + 1
      badstatus[status] = (badstatus[status] or 0) + 1
   end
   if not finished and created + bad >= share then
      finished = true
      local f = io.open(dir .. "/done." .. id, "w")
      if f then f:close() end
      wrk.thread:stop()
   end
end
function done()
   local c, b, s = 0, 0, {}
   for _, t in ipairs(threads) do
      c = c + (t:get("created") or 0)
      b = b + (t:get("bad") or 0)
      for status, k in pairs(t:get("badstatus") or {}) do
         s[status] = (s[status] or 0) + k
      end
   end
   io.write(string.format("loader created: %d\nloader other: %d\n", c, b))
   for status, k in pairs(s) do
      io.write(string.format("loader status %d: %d\n", status, k))
   end
end
LUA

# Hard limit for the load: 60 s plus 0.5 ms per key (wrk normally loads
# 20000+ keys/s, so this is only reached when something is wrong).
cap=$((60 + KEYS / 2000))
info "loading $KEYS keys with wrk -t $THREADS -c $CONNECTIONS (POST, 16-byte values; limit $cap s)"
t0=$(date +%s.%N)
wrk -t "$THREADS" -c "$CONNECTIONS" -d "${cap}s" -s "$tmp/load.lua" "$url_kv" \
    -- "$KEYS" "$THREADS" "$tmp" >"$tmp/load.out" 2>&1 &
client_pid=$!
all_done=0
while kill -0 "$client_pid" 2>/dev/null; do
    ndone=0
    for ((i = 1; i <= THREADS; i++)); do
        [[ -e $tmp/done.$i ]] && ndone=$((ndone + 1))
    done
    if ((ndone == THREADS)); then
        all_done=1
        kill -INT "$client_pid" 2>/dev/null || true
        break
    fi
    sleep 0.1
done
t1=$(date +%s.%N)
# wrk prints its summary and exits at once on SIGINT; give it 10 s.
for ((i = 0; i < 100; i++)); do
    kill -0 "$client_pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$client_pid" 2>/dev/null && warn "wrk did not exit 10 s after SIGINT"
stop_client kill
check_alive butlerd "$butlerd_pid" "$tmp/butlerd.log"
created=$(awk '/^loader created:/ { print $3 }' "$tmp/load.out")
other=$(awk '/^loader other:/ { print $3 }' "$tmp/load.out")
if [[ -z $created ]]; then
    cat "$tmp/load.out" >&2
    die "could not read the loader's counts from wrk's output (above)"
fi
awk -v n="$created" -v a="$t0" -v b="$t1" 'BEGIN {
    printf "   %d keys created (201) in %.1f s, %.0f keys/s\n", n, b - a, n / (b - a) }'
if ((!all_done || created != KEYS || other != 0)); then
    sed -n '/^loader status/p; /Socket errors/p; /Non-2xx/p' "$tmp/load.out" | sed 's/^/   /' >&2
    tail -n 5 "$tmp/butlerd.log" >&2
    die "the load did not complete: $created of $KEYS keys answered 201, $other other statuses$( ((all_done)) || echo ", and wrk ran into its $cap s limit")"
fi

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
