#!/usr/bin/env bash
# bench/kv.sh: throughput of butlerd's key-value store (GET and POST
# /v4/keyvalues/bench on random preloaded keys) compared with nginx serving
# the /v4/butlerping body, all measured with wrk in the same run.
#
# Usage: bench/kv.sh [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS]
#                    [-r ROUNDS] [-k KEYS] [-R REDIS_PORT]
# Needs the Debian packages wrk and nginx-light (or nginx), plus curl,
# python3 and procps. The butlerd binary is $BUTLERD, or ../src/butlerd
# next to this script; it is copied to the temporary directory first. See
# the "Key-value store" section of bench/README.md for how to read the output.

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

CHECK_SECONDS=1
POST_LUA=$script_dir/kv-post.lua

usage() {
    cat <<EOF
Usage: $0 [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS] [-r ROUNDS] [-k KEYS]
          [-R REDIS_PORT]

Preloads KEYS keys into namespace "$NAMESPACE" of butlerd's key-value store,
then runs wrk in alternating rounds against:
  nginx-ping      GET $PATH_PING on nginx (the reference)
  kv-get          GET /v4/keyvalues/$NAMESPACE?key=<random preloaded key> on butlerd
  kv-post         POST /v4/keyvalues/$NAMESPACE, random preloaded key, 32-byte value
  butlerd-ping    GET $PATH_PING on butlerd (context)
  nginx-ping-lua  GET $PATH_PING?key=<random> on nginx through the same Lua
                  request() code as kv-get (context: wrk's own Lua cost)
and prints requests/s, the ratios kv-get/nginx-ping (goal >= 0.90) and
kv-post/nginx-ping (goal >= 0.85), latency, errors and memory.

  -w WORKERS      butlerd workers and nginx worker_processes (default $WORKERS)
  -d SECONDS      length of each measured wrk run (default $DURATION)
  -c CONNECTIONS  wrk connections (default $CONNECTIONS)
  -t THREADS      wrk threads (default $THREADS)
  -r ROUNDS       measured runs per test, alternating (default $ROUNDS)
  -k KEYS         preloaded keys, key-000001 .. (default $KEYS, at most 999999)
  -R REDIS_PORT   put butlerd's store on the Redis at 127.0.0.1:REDIS_PORT
                  (butlerd.store.backend "redis", a fresh key prefix; the
                  script neither starts nor empties that Redis)

Environment: BUTLERD=path to the binary (default $script_dir/../src/butlerd)
EOF
}

parse_opts 'w:d:c:t:r:k:R:' "$@"

check_opts WORKERS DURATION CONNECTIONS THREADS ROUNDS KEYS REDIS_PORT
# key-%06d keeps every key the same length (10 bytes).
((KEYS <= 999999)) || die "KEYS must be at most 999999, got $KEYS"

# ---------------------------------------------------------------- requirements
need_wrk_nginx
[[ -r $POST_LUA ]] || die "wrk script not found: $POST_LUA"

# ---------------------------------------------------------------- state/cleanup
bench_tmp butlerd-kvbench

copy_butlerd

# ---------------------------------------------------------------- helpers
# kv_client load|verify: POST (201 expected) or GET and compare (200
# expected) every key key-000001 .. key-<KEYS> over 4 keep-alive connections.
kv_client() {
    python3 - "$1" "$port_b" "$NAMESPACE" "$KEYS" <<'PY'
import http.client, json, sys, threading

mode, port, ns, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
nthreads = 4
errors = []

def value(i):
    return "v%031d" % i  # 32 bytes, like kv-post.lua's values

def work(t):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        hdr = {"Content-Type": "application/json"}
        for i in range(t + 1, n + 1, nthreads):
            key = "key-%06d" % i
            if mode == "load":
                body = json.dumps({"key": key, "value": value(i), "ttl": 0})
                c.request("POST", "/v4/keyvalues/" + ns, body, hdr)
                want_status, want = 201, {"namespace": ns, "key": key, "value": value(i), "ttl": 0}
            else:
                c.request("GET", "/v4/keyvalues/%s?key=%s" % (ns, key))
                want_status, want = 200, {"namespace": ns, "key": key, "value": value(i)}
            r = c.getresponse()
            data = r.read()
            if r.status != want_status or json.loads(data) != want:
                errors.append("%s %s: HTTP %d %r" % (mode, key, r.status, data[:200]))
                return
        c.close()
    except Exception as e:  # connection refused, timeout, bad JSON...
        errors.append("%s: %r" % (mode, e))

threads = [threading.Thread(target=work, args=(t,)) for t in range(nthreads)]
for th in threads:
    th.start()
for th in threads:
    th.join()
if errors:
    sys.exit("\n".join(errors[:5]))
PY
}

# check_statuses FILE WANT: the "status NNN: COUNT" lines a wrk script wrote
# in check mode must all be WANT; prints a summary, returns 1 otherwise.
check_statuses() {
    local file=$1 want=$2 summary
    summary=$(awk -v want="$want" '
        /^status [0-9]+: [0-9]+$/ { n[$2 + 0] += $3; total += $3 }
        END {
            s = ""
            for (k in n) s = s (s == "" ? "" : ", ") k ": " n[k]
            printf "%s (%d responses)", s, total
            bad = (total == 0)
            for (k in n) if (k != want) bad = 1
            exit bad
        }' "$file") && {
        printf '%s\n' "$summary"
        return 0
    }
    printf '%s\n' "$summary"
    return 1
}

# ---------------------------------------------------------------- start butlerd
butlerd_nginx_ports butlerd-bench
url_kv="http://127.0.0.1:$port_b/v4/keyvalues/$NAMESPACE"

write_kv_conf "$port_b" "$WORKERS" warn
if [[ -n $REDIS_PORT ]]; then
    conf_redis_store "$REDIS_PORT" "kvbench$$:"
    info "key-value store on the Redis at 127.0.0.1:$REDIS_PORT (key prefix kvbench$$:)"
fi

start_butlerd_workers "$url_b"
[[ -e $shm_path ]] || warn "butlerd's shared memory $shm_path does not exist"

# The exact body and content type butlerd serves; nginx will serve the same.
fetch_butlerd_body "$url_b"

# ---------------------------------------------------------------- start nginx
# Same configuration as bench/ping.sh.
start_nginx "$port_n" "$PATH_PING" "$WORKERS" "$CONNECTIONS"
info "both servers return the same $body_len-byte ping body"

# ---------------------------------------------------------------- wrk scripts
# kv-get: one random preloaded key per request. The same script drives the
# nginx-ping-lua run (nginx's "location =" ignores the query string), which
# shows what wrk's per-request Lua costs on the client side.
cat >"$tmp/kv-get.lua" <<'LUA'
-- written by bench/kv.sh: GET <url path>?key=key-NNNNNN, a random key among
-- KEYS. Arguments: KEYS [check]; "check" counts responses by status.
local threads = {}
function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end
local keys, prefix
function init(args)
   keys = tonumber(args[1]) or 10000
   prefix = wrk.path .. "?key=key-"
   math.randomseed(os.time() * 1000 + (id or 0) * 7919)
   if args[2] == "check" then
      statuses = {}
      response = function(status)
         statuses[status] = (statuses[status] or 0) + 1
      end
   end
end
function request()
   return wrk.format("GET", prefix .. string.format("%06d", math.random(1, keys)))
end
function done()
   local total = {}
   for _, thread in ipairs(threads) do
      local s = thread:get("statuses")
      if type(s) == "table" then
         for status, n in pairs(s) do total[status] = (total[status] or 0) + n end
      end
   end
   for status, n in pairs(total) do
      io.write(string.format("status %d: %d\n", status, n))
   end
end
LUA

# ---------------------------------------------------------------- preload
info "preloading $KEYS keys into namespace \"$NAMESPACE\" (POST, 4 keep-alive connections)"
t0=$(date +%s.%N)
kv_client load || die "preloading the key-value store failed"
t1=$(date +%s.%N)
kv_client verify || die "reading back the preloaded keys failed"
t2=$(date +%s.%N)
awk -v n="$KEYS" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
    printf "   %d keys written in %.2f s and read back (all values checked) in %.2f s\n", n, b - a, c - b }'
check_alive butlerd "$butlerd_pid" "$tmp/butlerd.log"

# ---------------------------------------------------------------- tests
tests=(nginx-ping kv-get kv-post butlerd-ping nginx-ping-lua)
# test_args NAME: sets t_url, t_pid, t_log, t_opts (wrk options + script args).
test_args() {
    case $1 in
        nginx-ping)
            t_url=$url_n t_pid=$nginx_pid t_log=$tmp/nginx-error.log
            t_opts=()
            ;;
        nginx-ping-lua)
            t_url=$url_n t_pid=$nginx_pid t_log=$tmp/nginx-error.log
            t_opts=(-s "$tmp/kv-get.lua" -- "$KEYS")
            ;;
        kv-get)
            t_url=$url_kv t_pid=$butlerd_pid t_log=$tmp/butlerd.log
            t_opts=(-s "$tmp/kv-get.lua" -- "$KEYS")
            ;;
        kv-post)
            t_url=$url_kv t_pid=$butlerd_pid t_log=$tmp/butlerd.log
            t_opts=(-s "$POST_LUA" -- "$KEYS")
            ;;
        butlerd-ping)
            t_url=$url_b t_pid=$butlerd_pid t_log=$tmp/butlerd.log
            t_opts=()
            ;;
        *) die "unknown test $1" ;;
    esac
}

# Status check: a short run of each butlerd KV test with the Lua scripts in
# "check" mode, which count every response by status code (slower, so not
# used for the measured runs, where wrk only counts non-2xx/3xx).
info "status check: ${CHECK_SECONDS} s of kv-get (want 200) and kv-post (want 201)"
status_ok=1
run_wrk "$tmp/check.get" "$CHECK_SECONDS" "$url_kv" -s "$tmp/kv-get.lua" -- "$KEYS" check
printf '   kv-get  statuses: '
check_statuses "$tmp/check.get" 200 || {
    status_ok=0
    warn "kv-get got statuses other than 200 (see above)"
}
run_wrk "$tmp/check.post" "$CHECK_SECONDS" "$url_kv" -s "$POST_LUA" -- "$KEYS" check
printf '   kv-post statuses: '
check_statuses "$tmp/check.post" 201 || {
    status_ok=0
    warn "kv-post got statuses other than 201 (see above)"
}
check_alive butlerd "$butlerd_pid" "$tmp/butlerd.log"

info "warm-up: ${WARMUP} s each of nginx-ping, kv-get, kv-post"
warm_up nginx-ping kv-get kv-post

info "measuring: $ROUNDS x ${DURATION} s per test, alternating ${tests[*]}; wrk -t $THREADS -c $CONNECTIONS"
measure 14 "${tests[@]}"

# ---------------------------------------------------------------- report
echo
echo "wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s, keep-alive; $WORKERS workers each; best of $ROUNDS runs"
echo "(the latency columns belong to that run); $KEYS preloaded keys of 10 bytes, 32-byte values,"
echo "namespace \"$NAMESPACE\"; kvMaxKeyBytes = kvMaxValueBytes = 64"
host_line
echo
result_table "${tests[@]}"

r_get=$(ratio "${best_rps[kv-get]}" "${best_rps[nginx-ping]}")
r_post=$(ratio "${best_rps[kv-post]}" "${best_rps[nginx-ping]}")
r_ping=$(ratio "${best_rps[butlerd-ping]}" "${best_rps[nginx-ping]}")
r_lua=$(ratio "${best_rps[nginx-ping-lua]}" "${best_rps[nginx-ping]}")
r_get_lua=$(ratio "${best_rps[kv-get]}" "${best_rps[nginx-ping-lua]}")
r_post_lua=$(ratio "${best_rps[kv-post]}" "${best_rps[nginx-ping-lua]}")
goal() { # goal RATIO MIN
    awk -v r="$1" -v g="$2" 'BEGIN { print (r >= g ? "met" : "NOT met") }'
}
echo "ratios (best runs):"
printf '   %-34s %s   (goal >= 0.90: %s)\n' "kv-get / nginx-ping" "$r_get" "$(goal "$r_get" 0.90)"
printf '   %-34s %s   (goal >= 0.85: %s)\n' "kv-post / nginx-ping" "$r_post" "$(goal "$r_post" 0.85)"
printf '   %-34s %s\n' "butlerd-ping / nginx-ping" "$r_ping"
printf '   %-34s %s   (cost of wrk'"'"'s Lua request())\n' "nginx-ping-lua / nginx-ping" "$r_lua"
printf '   %-34s %s\n' "kv-get / nginx-ping-lua" "$r_get_lua"
printf '   %-34s %s\n' "kv-post / nginx-ping-lua" "$r_post_lua"
echo

for name in "${tests[@]}"; do
    warn_runs "$name" "the ratios are uncertain; rerun on a quiet machine or with more rounds (-r 5)"
done
((status_ok)) || warn "the status check found unexpected status codes (GET must be 200, POST 201); the KV numbers are suspect"
warn_log butlerd log "$tmp/butlerd.log"
warn_log nginx "error log" "$tmp/nginx-error.log"

report_servers_memory
if [[ -e $shm_path ]]; then
    shm_usage
    echo "butlerd shared memory $shm_path: $(mb $((shm_size / 1024))) MB address space, $(mb "$shm_used_kb") MB in use (du)"
    echo "(the shared memory is counted in the RSS/PSS of the processes that touched it)"
    echo
fi

for name in "${tests[@]}"; do
    echo "requests/s $name: $(printf '%.1f' "${best_rps[$name]}")"
done
echo "$butlerd_mem"
echo "$nginx_mem"
echo "ratio butlerd-ping/nginx-ping: $r_ping"
echo "ratio kv-get/nginx-ping: $r_get"
echo "ratio kv-post/nginx-ping: $r_post"
