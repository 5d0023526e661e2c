#!/usr/bin/env bash
# bench/redis.sh: what the Redis backend of the key-value store costs. One run
# measures GET and POST /v4/keyvalues/bench through a butlerd on shared memory
# and through a butlerd on Redis, and redis-benchmark GET/SET on the same
# Redis (the ceiling), side by side, and prints the ratios and the latency
# Redis adds per request (p50, p99).
#
# Usage: bench/redis.sh [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS]
#                       [-r ROUNDS] [-k KEYS] [-R REDIS_PORT]
# Needs wrk, redis-server, redis-benchmark (Debian: redis-tools), curl,
# python3 and procps. See the "Redis" section of bench/README.md.

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

DURATION=5
POST_LUA=$script_dir/kv-post.lua

usage() {
    cat <<EOF
Usage: $0 [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS] [-r ROUNDS] [-k KEYS]
          [-R REDIS_PORT]

Starts a redis-server of its own (no persistence) and two butlerds with the
same limits: one with the key-value store in shared memory, one with it on
that Redis. Preloads KEYS keys into namespace "$NAMESPACE" of both, then runs,
alternating, ROUNDS times:
  shm-get     wrk GET /v4/keyvalues/$NAMESPACE?key=<random key>, shared memory
  redis-get   the same on the Redis backend
  shm-post    wrk POST /v4/keyvalues/$NAMESPACE, random key, 32-byte value
  redis-post  the same on the Redis backend
  rb-get      redis-benchmark GET  (-c CONNECTIONS, random keys, 32-byte values)
  rb-set      redis-benchmark SET
and prints requests/s, latency p50/p99 and the ratios redis/shm and
redis/redis-benchmark, and the added latency redis - shm.

  -w WORKERS      workers of each butlerd (default $WORKERS)
  -d SECONDS      length of each measured wrk run (default $DURATION)
  -c CONNECTIONS  wrk and redis-benchmark connections (default $CONNECTIONS)
  -t THREADS      wrk threads (default $THREADS)
  -r ROUNDS       measured runs per test, alternating (default $ROUNDS)
  -k KEYS         preloaded keys (default $KEYS, at most 999999)
  -R REDIS_PORT   use the Redis at 127.0.0.1:REDIS_PORT instead of starting one
                  (butlerd's keys go under a fresh prefix and stay there;
                  redis-benchmark writes its own "key:NNN" keys there too)

Environment: BUTLERD=path to the binary (default $script_dir/../src/butlerd)
EOF
}

parse_opts 'w:d:c:t:r:k:R:' "$@"
check_opts WORKERS DURATION CONNECTIONS THREADS ROUNDS KEYS REDIS_PORT
((KEYS >= 1 && KEYS <= 999999)) || die "KEYS must be 1..999999, got $KEYS"

need_commands "(this script installs nothing itself.)" \
    wrk:wrk redis-server:redis-server redis-benchmark:redis-tools redis-cli:redis-tools \
    curl:curl python3:python3 pgrep:procps
find_butlerd
[[ -r $POST_LUA ]] || die "wrk script not found: $POST_LUA"

# ---------------------------------------------------------------- state/cleanup
# lib.sh's cleanup knows one butlerd: the second one and our redis-server are
# stopped here first, by their PIDs.
bredis_pid=
bredis_workers=()
redis_pid=
bench_cleanup() {
    local rc=$?
    set +e
    stop_group "butlerd (Redis backend)" "$bredis_pid" "${bredis_workers[@]}"
    [[ -n $shm_path2 && -e $shm_path2 ]] && rm -f -- "$shm_path2"
    if [[ -n $redis_pid ]] && kill -0 "$redis_pid" 2>/dev/null; then
        kill -TERM "$redis_pid" 2>/dev/null
        wait "$redis_pid" 2>/dev/null
    fi
    (exit "$rc")
    cleanup
}
shm_path2=
bench_tmp butlerd-redisbench
trap bench_cleanup EXIT
copy_butlerd

read -r port_s port_r < <(free_ports python3)
if [[ -z $REDIS_PORT ]]; then
    read -r REDIS_PORT _ < <(free_ports python3)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$tmp" --daemonize no >"$tmp/redis.log" 2>&1 &
    redis_pid=$!
    for ((i = 0; i < 100; i++)); do
        [[ $(redis-cli -p "$REDIS_PORT" PING 2>/dev/null) == PONG ]] && break
        kill -0 "$redis_pid" 2>/dev/null || die "redis-server did not start (see $tmp/redis.log)"
        sleep 0.1
    done
    [[ $(redis-cli -p "$REDIS_PORT" PING 2>/dev/null) == PONG ]] || die "redis-server did not answer"
    redis_what="redis-server $(redis-server --version | awk '{ sub(/^v=/, "", $3); print $3 }') of its own on 127.0.0.1:$REDIS_PORT (pid $redis_pid)"
else
    [[ $(redis-cli -p "$REDIS_PORT" PING 2>/dev/null) == PONG ]] ||
        die "no Redis answers PING on 127.0.0.1:$REDIS_PORT"
    redis_what="the Redis on 127.0.0.1:$REDIS_PORT"
fi
prefix="redisbench$$:"
info "temp dir $tmp; $redis_what"

# ---------------------------------------------------------------- butlerds
# The same configuration for both; the Redis one adds butlerd.store.
conf_for() { # conf_for PORT SHMNAME
    shm_name=$2
    write_kv_conf "$1" "$WORKERS" warn
}
conf_for "$port_s" "/butlerd-rbench-s$$"
shm_path=/dev/shm${shm_name}.$port_s
info "starting butlerd on shared memory (127.0.0.1:$port_s, $WORKERS workers)"
start_butlerd "http://127.0.0.1:$port_s/v4/butlerping"
check_workers "$WORKERS"

conf_for "$port_r" "/butlerd-rbench-r$$"
shm_path2=/dev/shm${shm_name}.$port_r
conf_redis_store "$REDIS_PORT" "$prefix"
mv "$tmp/butlerd.conf" "$tmp/butlerd-redis.conf"
info "starting butlerd on Redis (127.0.0.1:$port_r, key prefix $prefix)"
"$BUTLERD" -f -c "$tmp/butlerd-redis.conf" 2>"$tmp/butlerd-redis.log" &
bredis_pid=$!
wait_ready "butlerd (Redis backend)" "$bredis_pid" "http://127.0.0.1:$port_r/v4/butlerping" \
    "$tmp/butlerd-redis.log"
mapfile -t bredis_workers < <(children_of "$bredis_pid")

# ---------------------------------------------------------------- preload
# load PORT: POST key-000001 .. key-KEYS (201 each), then GET them back.
load() {
    python3 - "$1" "$NAMESPACE" "$KEYS" <<'PY'
import http.client, json, sys, threading
port, ns, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
errors = []
def work(t, nt=4):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for mode in ("load", "verify"):
            for i in range(t + 1, n + 1, nt):
                key, val = "key-%06d" % i, "v%031d" % i
                if mode == "load":
                    c.request("POST", "/v4/keyvalues/" + ns,
                              json.dumps({"key": key, "value": val, "ttl": 0}),
                              {"Content-Type": "application/json"})
                    want = 201
                else:
                    c.request("GET", "/v4/keyvalues/%s?key=%s" % (ns, key))
                    want = 200
                r = c.getresponse()
                body = r.read()
                if r.status != want or (want == 200 and json.loads(body)["value"] != val):
                    errors.append("%s %s: HTTP %d %r" % (mode, key, r.status, body[:200]))
                    return
    except Exception as e:
        errors.append(repr(e))
ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
if errors:
    sys.exit("\n".join(errors[:5]))
PY
}
info "preloading $KEYS keys into both stores (POST, then GET and compare)"
load "$port_s" || die "preloading the shared-memory store failed"
load "$port_r" || die "preloading the Redis store failed"

cat >"$tmp/kv-get.lua" <<'LUA'
-- written by bench/redis.sh: GET <path>?key=key-NNNNNN, a random key among KEYS.
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
end
function request()
   return wrk.format("GET", prefix .. string.format("%06d", math.random(1, keys)))
end
LUA

# ---------------------------------------------------------------- measuring
# wrk_pcts FILE: "rps p50_ms p99_ms errors" from a wrk --latency output.
wrk_pcts() {
    awk "$wrk_ms_awk"'
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { err += $NF }
        /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        END { if (rps == "") exit 1; printf "%s %.3f %.3f %d\n", rps, p50, p99, err }' "$1"
}

# rb_run OUT: redis-benchmark GET and SET; OUT gets "get|set rps p50 p99 0" lines.
rb_run() {
    local n=$((CONNECTIONS * 3000))
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t get,set -n "$n" -c "$CONNECTIONS" \
        -r "$KEYS" -d 32 --csv >"$1.raw" 2>&1 || die "redis-benchmark failed: $(tail -n 3 "$1.raw")"
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",...
    awk -F'"' '$2 == "GET" || $2 == "SET" {
        printf "%s %s %s %s 0\n", tolower($2), $4, $10, $14 }' "$1.raw" >"$1"
    [[ $(wc -l <"$1") == 2 ]] || die "cannot read redis-benchmark's output: $(head -n 5 "$1.raw")"
}

declare -A best=() allr=() errs=() min50=() min99=()
tests=(shm-get redis-get shm-post redis-post rb-get rb-set)
for t in "${tests[@]}"; do
    best[$t]="0 0 0 0"
    errs[$t]=0
    min50[$t]=1e9
    min99[$t]=1e9
done
record() { # record NAME "rps p50 p99 err"
    local name=$1 line=$2 rps p50 p99 err
    read -r rps p50 p99 err <<<"$line"
    printf '   round %d %-11s %10.1f req/s   p50 %7.3f ms   p99 %7.3f ms   errors %d\n' \
        "$round" "$name" "$rps" "$p50" "$p99" "$err"
    allr[$name]+="${allr[$name]:+ / }$(printf '%.0f' "$rps")"
    errs[$name]=$((errs[$name] + err))
    if awk -v a="$rps" -v b="${best[$name]%% *}" 'BEGIN { exit !(a > b) }'; then
        best[$name]=$line
    fi
    # Latency from the quietest run of each test: on a shared host one
    # disturbed run would otherwise decide the p99.
    min50[$name]=$(awk -v a="$p50" -v b="${min50[$name]}" 'BEGIN { print (a < b ? a : b) }')
    min99[$name]=$(awk -v a="$p99" -v b="${min99[$name]}" 'BEGIN { print (a < b ? a : b) }')
}
wrk_test() { # wrk_test NAME SECONDS
    local url opts=()
    case $1 in
        shm-get) url="http://127.0.0.1:$port_s/v4/keyvalues/$NAMESPACE" opts=(-s "$tmp/kv-get.lua") ;;
        redis-get) url="http://127.0.0.1:$port_r/v4/keyvalues/$NAMESPACE" opts=(-s "$tmp/kv-get.lua") ;;
        shm-post) url="http://127.0.0.1:$port_s/v4/keyvalues/$NAMESPACE" opts=(-s "$POST_LUA") ;;
        redis-post) url="http://127.0.0.1:$port_r/v4/keyvalues/$NAMESPACE" opts=(-s "$POST_LUA") ;;
    esac
    run_wrk "$tmp/wrk.$1" "$2" "$url" "${opts[@]}" -- "$KEYS"
    check_alive "butlerd (shared memory)" "$butlerd_pid" "$tmp/butlerd.log"
    check_alive "butlerd (Redis backend)" "$bredis_pid" "$tmp/butlerd-redis.log"
}

info "warm-up: ${WARMUP} s of each wrk test"
for t in shm-get redis-get shm-post redis-post; do
    wrk_test "$t" "$WARMUP"
done
info "measuring: $ROUNDS rounds of ${tests[*]}; wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s"
for ((round = 1; round <= ROUNDS; round++)); do
    for t in shm-get redis-get shm-post redis-post; do
        wrk_test "$t" "$DURATION"
        record "$t" "$(wrk_pcts "$tmp/wrk.$t")" || die "cannot read wrk's output for $t"
    done
    rb_run "$tmp/rb.$round"
    record rb-get "$(awk '$1 == "get" { print $2, $3, $4, $5 }' "$tmp/rb.$round")"
    record rb-set "$(awk '$1 == "set" { print $2, $3, $4, $5 }' "$tmp/rb.$round")"
done

# ---------------------------------------------------------------- report
field() { # field NAME N: 1 the best req/s, 2 and 3 the lowest p50 and p99 of NAME's runs
    local -a l
    read -r -a l <<<"${best[$1]}"
    case $2 in
        1) printf '%s' "${l[0]}" ;;
        2) printf '%s' "${min50[$1]}" ;;
        3) printf '%s' "${min99[$1]}" ;;
    esac
}
echo
echo "wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s keep-alive, $WORKERS workers per butlerd;"
echo "redis-benchmark -c $CONNECTIONS -r $KEYS -d 32 (no pipelining); $ROUNDS runs each: the best"
echo "req/s, and the lowest p50 and p99 of the runs;"
echo "$KEYS keys of 10 bytes, 32-byte values; $redis_what"
host_line
echo
printf '%-12s %12s %10s %10s   %s\n' test "req/s" "p50 ms" "p99 ms" "all runs (req/s)"
for t in "${tests[@]}"; do
    printf '%-12s %12.1f %10.3f %10.3f   %s\n' "$t" "$(field "$t" 1)" "$(field "$t" 2)" \
        "$(field "$t" 3)" "${allr[$t]}"
done
echo
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f", a - b }'; }
echo "ratios (best req/s):"
printf '   %-28s %s\n' "redis-get / shm-get" "$(ratio "$(field redis-get 1)" "$(field shm-get 1)")"
printf '   %-28s %s\n' "redis-post / shm-post" "$(ratio "$(field redis-post 1)" "$(field shm-post 1)")"
printf '   %-28s %s\n' "redis-get / rb-get" "$(ratio "$(field redis-get 1)" "$(field rb-get 1)")"
printf '   %-28s %s\n' "redis-post / rb-set" "$(ratio "$(field redis-post 1)" "$(field rb-set 1)")"
echo "latency Redis adds per request (redis - shm, same load, lowest of the runs):"
printf '   %-28s p50 %s ms   p99 %s ms\n' "GET" "$(sub "$(field redis-get 2)" "$(field shm-get 2)")" \
    "$(sub "$(field redis-get 3)" "$(field shm-get 3)")"
printf '   %-28s p50 %s ms   p99 %s ms\n' "POST" "$(sub "$(field redis-post 2)" "$(field shm-post 2)")" \
    "$(sub "$(field redis-post 3)" "$(field shm-post 3)")"
for t in "${tests[@]}"; do
    ((errs[$t] == 0)) || warn "$t had ${errs[$t]} non-2xx responses or socket errors; its numbers are suspect"
done
warn_log butlerd log "$tmp/butlerd.log"
warn_log "butlerd (Redis backend)" log "$tmp/butlerd-redis.log"
