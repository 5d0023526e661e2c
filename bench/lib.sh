# shellcheck shell=bash
# The variables below are read or set by the scripts that source this file:
# shellcheck disable=SC2034,SC2154
# bench/lib.sh: the pieces the benchmark scripts in bench/ share. Sourced,
# never run, as the first thing a script does; it sets
#   script_dir  the directory of the scripts (bench/)
#   prog        the script's own name, for messages ("ping.sh")
#   the defaults of the options parse_opts knows, which a script changes
#   after sourcing where its own differ: WORKERS=2 DURATION=10
#   CONNECTIONS=64 THREADS=2 ROUNDS=2 KEYS=10000 REDIS_PORT= (none), and
#   WARMUP=2 (seconds of wrk warm-up), PATH_PING, NAMESPACE (of the KV tests)
# and afterwards the script uses these globals, which the functions below
# fill in or read:
#   tmp             the temporary directory (bench_tmp)
#   butlerd_pid     butlerd's master, butlerd_workers its workers (start_butlerd)
#   shm_name        the shared-memory name written into butlerd.conf
#   shm_path        the object cleanup removes if butlerd left it behind
#   kv_file         butlerd's kvPersistence.file (write_butlerd_conf), "" = none
#   nginx_pid       nginx's master, nginx_workers its workers (start_nginx)
#   sim_pid         the Qlik Sense simulator (task.sh)
#   client_pid      the client (wrk, python) running in the background
#   stopping        what "interrupted; stopping ..." names (default "the servers")
#   client_kill     1: cleanup SIGKILLs a client still there 10 s after SIGTERM
#   more_commands   COMMAND:PACKAGE pairs need_wrk_nginx checks too
# The scripts run with set -euo pipefail.

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
prog=${BASH_SOURCE[-1]##*/}

WORKERS=2
DURATION=10
CONNECTIONS=64
THREADS=2
ROUNDS=2
KEYS=10000
REDIS_PORT=
WARMUP=2
PATH_PING=/v4/butlerping
NAMESPACE=bench

butlerd_pid=
butlerd_workers=()
nginx_pid=
nginx_workers=()
sim_pid=
client_pid=
shm_name=
shm_path=
kv_file=
stopping="the servers"
client_kill=0
more_commands=()

# ---------------------------------------------------------------- messages
die() {
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit 1
}

warn() {
    printf '%s: WARNING: %s\n' "$prog" "$*" >&2
}

info() {
    printf '== %s\n' "$*"
}

is_uint() {
    [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0))
}

# check_uints NAME:VALUE...: each VALUE must be a positive integer.
check_uints() {
    local pair
    for pair in "$@"; do
        is_uint "${pair#*:}" || die "${pair%%:*} must be a positive integer, got '${pair#*:}'"
    done
}

# ---------------------------------------------------------------- options
# The options most scripts share, each filling its global (the defaults are
# the script's own, set before parse_opts):
#   -w WORKERS  -d DURATION  -c CONNECTIONS  -t THREADS  -r ROUNDS  -k KEYS
#   -R REDIS_PORT
# parse_opts SPEC ARGS...: getopts SPEC (without the leading ':' and the 'h',
# which are added) over ARGS. Every letter is first offered to the script's
# own_opt LETTER VALUE, if it defines one; when own_opt returns 1 (or there is
# none), a letter of the list above sets its variable. -h calls the script's
# usage and exits 0; an unknown option, a missing value or an argument left
# over is an error.
parse_opts() {
    local spec=$1 opt OPTARG OPTIND=1
    shift
    while getopts ":${spec}h" opt; do
        case $opt in
            h)
                usage
                exit 0
                ;;
            :) die "option -$OPTARG needs a value (see -h)" ;;
            \?) die "unknown option -$OPTARG (see -h)" ;;
            *)
                if declare -F own_opt >/dev/null && own_opt "$opt" "${OPTARG:-}"; then
                    continue
                fi
                case $opt in
                    w) WORKERS=$OPTARG ;;
                    d) DURATION=$OPTARG ;;
                    c) CONNECTIONS=$OPTARG ;;
                    t) THREADS=$OPTARG ;;
                    r) ROUNDS=$OPTARG ;;
                    k) KEYS=$OPTARG ;;
                    R) REDIS_PORT=$OPTARG ;;
                    *) die "bench/lib.sh: option -$opt has no handler" ;;
                esac
                ;;
        esac
    done
    shift $((OPTIND - 1))
    (($# == 0)) || die "unexpected argument: $1 (see -h)"
}

# check_opts ITEM...: each ITEM is a variable name (DURATION is called
# SECONDS in the message) or a NAME:VALUE pair, and must hold a positive
# integer, checked in the order given; REDIS_PORT only when it is set. With
# THREADS among them, wrk's CONNECTIONS >= THREADS is checked last.
check_opts() {
    local item
    local -a pairs=()
    for item in "$@"; do
        case $item in
            *:*) pairs+=("$item") ;;
            DURATION) pairs+=("SECONDS:$DURATION") ;;
            REDIS_PORT) ;;
            *) pairs+=("$item:${!item}") ;;
        esac
    done
    check_uints "${pairs[@]}"
    if [[ " $* " == *" REDIS_PORT "* && -n $REDIS_PORT ]]; then
        check_uints "REDIS_PORT:$REDIS_PORT"
    fi
    if [[ " $* " == *" THREADS "* ]]; then
        ((CONNECTIONS >= THREADS)) || die "wrk needs CONNECTIONS >= THREADS ($CONNECTIONS < $THREADS)"
    fi
}

# check_load_keys: the KEYS limit of the scripts that load a store of
# KEYS keys with load_keys (butlerd's kvMaxKeys), and no more wrk threads
# or connections than keys.
check_load_keys() {
    ((KEYS <= 100000000)) || die "KEYS must be at most 100000000 (butlerd's kvMaxKeys limit)"
    ((THREADS <= KEYS)) || THREADS=$KEYS
    ((CONNECTIONS <= KEYS)) || CONNECTIONS=$KEYS
}

# need_commands NOTE COMMAND:PACKAGE...: exit with an apt-get hint naming the
# package of each missing command, then NOTE (a line, if not empty).
need_commands() {
    local note=$1 pair
    shift
    local -a missing_pkgs=()
    for pair in "$@"; do
        command -v "${pair%:*}" >/dev/null 2>&1 || missing_pkgs+=("${pair##*:}")
    done
    if ((${#missing_pkgs[@]} > 0)); then
        printf '%s: missing: %s\n' "$prog" "${missing_pkgs[*]}" >&2
        printf 'Install them with:\n  apt-get install -y %s\n' "${missing_pkgs[*]}" >&2
        [[ -z $note ]] || printf '%s\n' "$note" >&2
        exit 1
    fi
}

# need_wrk_nginx: what the scripts comparing butlerd with nginx under wrk
# need, plus the COMMAND:PACKAGE pairs in the array more_commands (checked
# after curl), and the butlerd binary. nginx lives in /usr/sbin, which is not on every
# user's PATH: it is added.
need_wrk_nginx() {
    PATH=$PATH:/usr/sbin:/sbin
    need_commands "(nginx-light may be replaced by nginx; this script installs nothing itself.)" \
        wrk:wrk nginx:nginx-light curl:curl "${more_commands[@]}" python3:python3 pgrep:procps
    find_butlerd
}

# find_butlerd: sets BUTLERD ($BUTLERD, or ../src/butlerd next to bench/).
find_butlerd() {
    BUTLERD=${BUTLERD:-$script_dir/../src/butlerd}
    [[ -x $BUTLERD ]] || die "butlerd binary not found or not executable: $BUTLERD (build it, or set BUTLERD=/path/to/butlerd)"
}

# ---------------------------------------------------------------- state/cleanup
# stop_group NAME MASTER_PID WORKER_PID...: SIGTERM the process we started,
# wait up to 10 s, then SIGKILL it and any recorded worker PID that outlived
# it and is still the same program (checked through /proc/PID/exe).
stop_group() {
    local name=$1 master=$2 exe pid i
    shift 2
    [[ -n $master ]] || return 0
    exe=$(readlink "/proc/$master/exe" 2>/dev/null || true)
    if kill -0 "$master" 2>/dev/null; then
        kill -TERM "$master" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$master" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$master" 2>/dev/null; then
            warn "$name (pid $master) ignored SIGTERM for 10 s; sending SIGKILL"
            kill -KILL "$master" 2>/dev/null || true
        fi
    fi
    wait "$master" 2>/dev/null || true
    for pid in "$@"; do
        if [[ -n $exe && $(readlink "/proc/$pid/exe" 2>/dev/null || true) == "$exe" ]]; then
            warn "$name worker $pid survived its master; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

# stop_client [kill]: SIGTERM the background client and wait for it; with
# "kill", SIGKILL it if it is still there after 10 s.
stop_client() {
    local i
    [[ -n $client_pid ]] || return 0
    kill -TERM "$client_pid" 2>/dev/null || true
    if [[ ${1:-} == kill ]]; then
        for ((i = 0; i < 100; i++)); do
            kill -0 "$client_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$client_pid" 2>/dev/null || true
    fi
    wait "$client_pid" 2>/dev/null || true
    client_pid=
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if ((client_kill)); then
        stop_client kill
    else
        stop_client
    fi
    ((rc == 130 || rc == 143)) && printf '%s: interrupted; stopping %s\n' "$prog" "$stopping" >&2
    stop_group butlerd "$butlerd_pid" "${butlerd_workers[@]}"
    # butlerd unlinks its shared memory on an orderly exit; remove our uniquely
    # named object if it is still there (SIGKILL, crash).
    [[ -n $shm_path && -e $shm_path ]] && rm -f -- "$shm_path"
    stop_group nginx "$nginx_pid" "${nginx_workers[@]}"
    stop_group simulator "$sim_pid"
    rm -rf -- "$tmp"
    exit "$rc"
}

# bench_tmp PREFIX: creates $tmp and sets the traps that clean up on exit.
bench_tmp() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# copy_butlerd: the binary may be rebuilt while we run: use a private copy.
# Sets BUTLERD_SRC to the original.
copy_butlerd() {
    cp -- "$BUTLERD" "$tmp/butlerd"
    BUTLERD_SRC=$BUTLERD
    BUTLERD=$tmp/butlerd
}

# ---------------------------------------------------------------- processes
# free_ports PYTHON: two distinct free TCP ports on 127.0.0.1: bind both to
# port 0 at the same time so the kernel hands out different ones, then
# release them.
free_ports() {
    "$1" - <<'PY'
import socket
socks = []
for _ in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# wait_ready NAME PID URL LOG [SECONDS]: poll URL for up to SECONDS (10)
# while PID is alive.
wait_ready() {
    local name=$1 pid=$2 url=$3 log=$4 secs=${5:-10} i
    for ((i = 0; i < secs * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            printf '%s exited during start-up; its log (%s):\n' "$name" "$log" >&2
            tail -n 30 "$log" >&2 || true
            die "$name did not start"
        fi
        if curl -kfsS --max-time 1 -o /dev/null "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    printf '%s log (%s):\n' "$name" "$log" >&2
    tail -n 30 "$log" >&2 || true
    curl -sS --max-time 1 -o /dev/null "$url" >&2 || true
    die "$name did not answer $url within $secs s"
}

# check_alive NAME PID LOG: fail loudly if a server died.
check_alive() {
    local name=$1 pid=$2 log=$3
    if ! kill -0 "$pid" 2>/dev/null; then
        printf '%s log (%s):\n' "$name" "$log" >&2
        tail -n 30 "$log" >&2 || true
        die "$name (pid $pid) died during the benchmark"
    fi
}

children_of() {
    pgrep -P "$1" || true
}

# ---------------------------------------------------------------- butlerd
# write_butlerd_conf PORT WORKERS LEVEL ENDPOINTS BUTLER SHM: butlerd.conf in
# $tmp with the REST server on 127.0.0.1:PORT, butlerping enabled, logging to
# stderr at LEVEL, the key-value snapshot file $kv_file (none if empty; written
# only at an orderly stop) and shared memory $shm_name.
# ENDPOINTS, BUTLER and SHM are extra lines (or empty) for the end of
# restServerEndpointsEnable, of Butler and of shm.
write_butlerd_conf() {
    local port=$1 workers=$2 level=$3 endpoints=$4 butler=$5 shm=$6
    {
        cat <<EOF
# written by bench/$prog
Butler = {
  restServerConfig = {
    enable = true;
    serverHost = "127.0.0.1";
    serverPort = $port;
  };
  restServerEndpointsEnable = {
    butlerping = true;
EOF
        [[ -z $endpoints ]] || printf '%s\n' "$endpoints"
        echo "  };"
        [[ -z $butler ]] || printf '%s\n' "$butler"
        cat <<EOF
};
butlerd = {
  workers = $workers;
  logging = {
    destination = "stderr";
    level = "$level";
  };
  kvPersistence = {
    file = "$kv_file";
    intervalSeconds = 0;
  };
  shm = {
    name = "$shm_name";
EOF
        [[ -z $shm ]] || printf '%s\n' "$shm"
        echo "  };"
        echo "};"
    } >"$tmp/butlerd.conf"
}

# write_kv_conf PORT WORKERS LEVEL [KEY_BYTES VALUE_BYTES]: write_butlerd_conf
# with the key-value store on, room for $KEYS keys in one namespace (and in
# all), keys and values of up to KEY_BYTES and VALUE_BYTES (64 each).
write_kv_conf() {
    write_butlerd_conf "$1" "$2" "$3" "    keyValueStore = true;" \
        "  keyValueStore = {
    maxKeysPerNamespace = $KEYS;
  };" \
        "    kvMaxKeys = $KEYS;
    kvMaxKeyBytes = ${4:-64};
    kvMaxValueBytes = ${5:-64};
    kvMaxNamespaces = 100;"
}

# conf_redis_store PORT PREFIX: puts the key-value store of $tmp/butlerd.conf
# on the Redis at 127.0.0.1:PORT under key prefix PREFIX (butlerd.store goes
# in right after "butlerd = {").
conf_redis_store() {
    sed -i "/^butlerd = {\$/a\\
  store = { backend = \"redis\"; redis = { port = $1; keyPrefix = \"$2\"; }; };" \
        "$tmp/butlerd.conf"
}

# butlerd_nginx_ports SHM: two free ports, port_b for butlerd and port_n for
# nginx; shm_name /SHM-<our PID> (a name of our own, so a butlerd already
# running here, default "/butlerd", is never touched; butlerd appends
# ".PORT") and shm_path; url_b and url_n, the ping URLs of both. Says where
# they run.
butlerd_nginx_ports() {
    read -r port_b port_n < <(free_ports python3)
    shm_name=/$1-$$
    shm_path=/dev/shm${shm_name}.$port_b
    url_b="http://127.0.0.1:$port_b$PATH_PING"
    url_n="http://127.0.0.1:$port_n$PATH_PING"
    info "temp dir $tmp; butlerd on 127.0.0.1:$port_b, nginx on 127.0.0.1:$port_n"
}

# start_butlerd_workers URL: start_butlerd with $WORKERS workers, saying so
# first, and a warning unless all of them run.
start_butlerd_workers() {
    if [[ -n ${BUTLERD_SRC:-} ]]; then
        info "starting butlerd (copy of $BUTLERD_SRC, $WORKERS workers)"
    else
        info "starting butlerd ($BUTLERD, $WORKERS workers)"
    fi
    start_butlerd "$1"
    check_workers "$WORKERS"
}

# start_butlerd URL [SECONDS]: starts $BUTLERD with $tmp/butlerd.conf, logging
# to $tmp/butlerd.log, waits for URL to answer and records the workers.
start_butlerd() {
    "$BUTLERD" -f -c "$tmp/butlerd.conf" 2>"$tmp/butlerd.log" &
    butlerd_pid=$!
    wait_ready butlerd "$butlerd_pid" "$1" "$tmp/butlerd.log" "${2:-10}"
    mapfile -t butlerd_workers < <(children_of "$butlerd_pid")
}

# check_workers N [WHAT]: warn unless butlerd has N workers (WHAT: "N workers").
check_workers() {
    if ((${#butlerd_workers[@]} != $1)); then
        warn "butlerd master $butlerd_pid has ${#butlerd_workers[@]} child processes, expected ${2:-$1 workers}"
    fi
}

# report_butlerd_memory: per-process table of butlerd (RSS, PSS, RssAnon,
# RssShmem of the master and its children); sets mem_summary and pss_total_kb.
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
    pss_total_kb=$pss_sum
}

# load_keys URL KEYS: POSTs key-000001 .. key-<KEYS> with 16-byte values
# (v000000000000001 ...) to URL (/v4/keyvalues/NS) with wrk, $THREADS threads
# and $CONNECTIONS connections, each key exactly once; fails unless every key
# was answered 201. Sets load_secs.
# Each wrk thread owns a contiguous range of keys and POSTs each of them
# once (the request() that wrk calls once before the run to check the
# script is answered with a peek, not a new key). A thread that has its
# whole range answered writes TMP/done.ID and stops; once every thread has,
# the script ends wrk with SIGINT (wrk otherwise runs for its full -d).
# Requests issued after a thread's range is used up are GET /v4/butlerping.
load_keys() {
    local url_kv=$1 KEYS=$2 cap t0 t1 all_done ndone i created other
    rm -f -- "$tmp"/done.*
    cat >"$tmp/load.lua" <<'LUA'
-- written by load_keys in bench/lib.sh. Arguments: KEYS THREADS DONE_DIR
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
    load_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
}

# ---------------------------------------------------------------- nginx
# fetch_butlerd_body URL: the exact body (to $tmp/body.butlerd) and content
# type butlerd serves at URL; sets ctype and body_len.
fetch_butlerd_body() {
    ctype=$(curl -kfsS --max-time 5 -o "$tmp/body.butlerd" -w '%{content_type}' "$1") ||
        die "could not fetch $1"
    [[ -n $ctype ]] || ctype="application/json; charset=utf-8"
    [[ $ctype != *'"'* && $ctype != *'$'* && $ctype != *\\* ]] ||
        die "butlerd's Content-Type cannot be written into nginx.conf: $ctype"
    body_len=$(wc -c <"$tmp/body.butlerd")
}

# nginx_string FILE: FILE's bytes as the inside of an nginx single-quoted
# string: \ ' and control characters escaped; nginx has no escape for '$',
# so it becomes ${bench_dollar}, which start_nginx defines when it is used.
nginx_string() {
    python3 - "$1" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
if b"\0" in data:
    sys.exit("body contains a NUL byte, which nginx.conf cannot hold")
out = []
for ch in data.decode("latin-1"):
    if ch == "\\": out.append("\\\\")
    elif ch == "'": out.append("\\'")
    elif ch == "\n": out.append("\\n")
    elif ch == "\r": out.append("\\r")
    elif ch == "\t": out.append("\\t")
    elif ch == "$": out.append("${bench_dollar}")
    else: out.append(ch)
sys.stdout.buffer.write("".join(out).encode("latin-1"))
PY
}

# start_nginx PORT PATH WORKERS CONNECTIONS: nginx on 127.0.0.1:PORT serving
# the bytes of $tmp/body.butlerd with type $ctype at PATH, WORKERS workers;
# checks that it serves the same bytes as butlerd. With nginx_tls_cert and
# nginx_tls_key set (PEM files) it serves HTTPS, TLS 1.2 and 1.3, instead.
# nginx_extra_locations, if set, goes into the server block as it is (more
# location blocks; nginx_string escapes their bodies).
start_nginx() {
    local port=$1 path=$2 workers=$3 conns=$4 url body_escaped dollar_geo user_line
    local listen_opts="" tls_lines=""
    url="http://127.0.0.1:$port$path"
    if [[ -n ${nginx_tls_cert:-} ]]; then
        url="https://127.0.0.1:$port$path"
        listen_opts=" ssl"
        tls_lines="ssl_certificate \"$nginx_tls_cert\"; ssl_certificate_key \"$nginx_tls_key\"; ssl_protocols TLSv1.2 TLSv1.3;"
    fi
    body_escaped=$(nginx_string "$tmp/body.butlerd")
    dollar_geo=
    if [[ $body_escaped${nginx_extra_locations:-} == *"\${bench_dollar}"* ]]; then
        dollar_geo="geo \$bench_dollar { default \"\$\"; }"
    fi

    # Run nginx as the current user: as root the workers would otherwise switch
    # to "nobody"; as another user the directive is meaningless and omitted.
    user_line=
    if ((EUID == 0)); then
        user_line="user $(id -un) $(id -gn);"
    fi

    cat >"$tmp/nginx.conf" <<EOF
# written by bench/$prog
$user_line
daemon off;
master_process on;
worker_processes $workers;
pid "$tmp/nginx.pid";
lock_file "$tmp/nginx.lock";
error_log "$tmp/nginx-error.log" warn;

events {
    worker_connections $((conns + 512));
}

http {
    access_log off;
    server_tokens off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path "$tmp/client_body_temp";
    proxy_temp_path "$tmp/proxy_temp";
    fastcgi_temp_path "$tmp/fastcgi_temp";
    uwsgi_temp_path "$tmp/uwsgi_temp";
    scgi_temp_path "$tmp/scgi_temp";
    $dollar_geo

    server {
        listen 127.0.0.1:$port$listen_opts;
        $tls_lines
        location = $path {
            default_type "$ctype";
            return 200 '$body_escaped';
        }
        ${nginx_extra_locations:-}
        location / {
            return 404;
        }
    }
}
EOF

    local -a nginx_args=(-c "$tmp/nginx.conf" -p "$tmp/")
    if nginx -h 2>&1 | grep -q -- '-e filename'; then
        nginx_args+=(-e "$tmp/nginx-error.log")
    fi
    if ! nginx -t -q "${nginx_args[@]}" >"$tmp/nginx-t.log" 2>&1; then
        cat "$tmp/nginx-t.log" >&2
        die "nginx rejected the generated configuration ($tmp/nginx.conf)"
    fi

    info "starting nginx ($(nginx -v 2>&1 | sed 's/^nginx version: //'), $workers workers)"
    nginx "${nginx_args[@]}" >>"$tmp/nginx-error.log" 2>&1 &
    nginx_pid=$!
    wait_ready nginx "$nginx_pid" "$url" "$tmp/nginx-error.log"
    mapfile -t nginx_workers < <(children_of "$nginx_pid")

    curl -kfsS --max-time 5 -o "$tmp/body.nginx" "$url" || die "could not fetch $url"
    cmp -s "$tmp/body.butlerd" "$tmp/body.nginx" ||
        die "nginx does not serve the same bytes as butlerd (compare $tmp/body.butlerd and $tmp/body.nginx)"
}

# ---------------------------------------------------------------- wrk
# run_wrk OUTFILE SECONDS URL [ARGS...]: one wrk run with $THREADS threads and
# $CONNECTIONS connections, raw output kept in OUTFILE; ARGS (for example -s
# SCRIPT) go before the URL, and script arguments can follow as "-- ARG...".
run_wrk() {
    local out=$1 secs=$2 url=$3 rc=0
    shift 3
    local -a opts=() script_args=()
    while (($# > 0)) && [[ $1 != -- ]]; do
        opts+=("$1")
        shift
    done
    if (($# > 0)); then
        script_args=("$@")
    fi
    # In the background so that Ctrl-C runs the INT trap at once (a trap
    # waits for a foreground command to finish); cleanup stops wrk by PID.
    wrk --latency -t "$THREADS" -c "$CONNECTIONS" -d "${secs}s" "${opts[@]}" "$url" \
        "${script_args[@]}" >"$out" 2>&1 &
    client_pid=$!
    wait "$client_pid" || rc=$?
    client_pid=
    if ((rc != 0)); then
        cat "$out" >&2
        die "wrk failed against $url (exit status $rc)"
    fi
}

# wrk_ms_awk: an awk function ms(V) that turns one of wrk's times ("812.5us",
# "3.2ms", "1.1s", "2m") into milliseconds.
wrk_ms_awk='
        function ms(v,   n) {
            n = v + 0
            if (v ~ /us$/) return n / 1000
            if (v ~ /ms$/) return n
            if (v ~ /m$/) return n * 60000
            if (v ~ /s$/) return n * 1000
            return n
        }'

# parse_wrk FILE: prints "reqs lat_avg_ms lat_p99_ms non2xx sockerr".
parse_wrk() {
    awk "$wrk_ms_awk"'
        $1 == "Latency" && avg == "" { avg = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ {
            gsub(/,/, "")
            sock = $4 + $6 + $8 + $10
        }
        END {
            if (rps == "") exit 1
            printf "%s %.3f %.3f %d %d\n", rps, avg, p99, non2xx, sock
        }' "$1"
}

# The load functions below call the script's test_args NAME, which sets
# t_url, t_pid, t_log and t_opts (wrk options + script arguments).

# warm_up NAME...: one $WARMUP s wrk run of each test.
warm_up() {
    local name
    for name in "$@"; do
        test_args "$name"
        run_wrk "$tmp/warm.$name" "$WARMUP" "$t_url" "${t_opts[@]}"
        check_alive "$name" "$t_pid" "$t_log"
    done
}

# measure WIDTH NAME...: $ROUNDS rounds of $DURATION s wrk runs, alternating
# the tests; prints a line per run (names padded to WIDTH) and fills best_rps,
# best_line (parse_wrk's line of the best run), runs (" / "-separated req/s),
# all_rps and errs, all indexed by test name.
measure() {
    local width=$1 round name out line rps lat p99 non2xx sock
    shift
    declare -gA best_rps=() best_line=() runs=() all_rps=() errs=()
    for name in "$@"; do
        best_rps[$name]=0
        errs[$name]=0
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for name in "$@"; do
            test_args "$name"
            out=$tmp/wrk.$name.$round
            run_wrk "$out" "$DURATION" "$t_url" "${t_opts[@]}"
            check_alive "$name" "$t_pid" "$t_log"
            line=$(parse_wrk "$out") || {
                cat "$out" >&2
                die "could not parse wrk output for $name"
            }
            read -r rps lat p99 non2xx sock <<<"$line"
            printf '   round %d %-*s %12.1f req/s   latency avg %8.3f ms  p99 %8.3f ms   non-2xx %d  socket errors %d\n' \
                "$round" "$width" "$name" "$rps" "$lat" "$p99" "$non2xx" "$sock"
            if ((non2xx + sock > 0)); then
                errs[$name]=$((errs[$name] + non2xx + sock))
                sed -n '/Socket errors\|Non-2xx/p' "$out" | sed 's/^/      wrk: /'
            fi
            runs[$name]+="${runs[$name]:+ / }$(printf '%.0f' "$rps")"
            all_rps[$name]+=" $rps"
            if awk -v a="$rps" -v b="${best_rps[$name]}" 'BEGIN { exit !(a > b) }'; then
                best_rps[$name]=$rps
                best_line[$name]=$line
            fi
        done
    done
}

# result_table NAME...: the table of the best runs, a column per test.
result_table() {
    local cw=14 name
    local -a tests=("$@") c_rps c_lat c_p99 c_non c_sock c_runs=() c_errs=()
    for name in "${tests[@]}"; do
        ((${#runs[$name]} < cw)) || cw=$((${#runs[$name]} + 1))
        ((${#name} < cw)) || cw=$((${#name} + 1))
    done
    row() {
        local label=$1 v
        shift
        printf '%-26s' "$label"
        for v in "$@"; do
            printf ' %*s' "$cw" "$v"
        done
        echo
    }
    col() { # col FIELD(1-5) [printf format]: that field of each test's best line
        local f=$1 fmt=${2:-%s} name v
        local -a l
        for name in "${tests[@]}"; do
            read -r -a l <<<"${best_line[$name]}"
            v=${l[$((f - 1))]}
            # shellcheck disable=SC2059 # the format is ours
            printf "$fmt\n" "$v"
        done
    }
    mapfile -t c_rps < <(col 1 %.1f)
    mapfile -t c_lat < <(col 2)
    mapfile -t c_p99 < <(col 3)
    mapfile -t c_non < <(col 4)
    mapfile -t c_sock < <(col 5)
    for name in "${tests[@]}"; do
        c_runs+=("${runs[$name]}")
        c_errs+=("${errs[$name]}")
    done
    row "" "${tests[@]}"
    row "requests/s (best)" "${c_rps[@]}"
    row "requests/s (all runs)" "${c_runs[@]}"
    row "latency avg (ms)" "${c_lat[@]}"
    row "latency p99 (ms)" "${c_p99[@]}"
    row "non-2xx/3xx (best run)" "${c_non[@]}"
    row "socket errors (best run)" "${c_sock[@]}"
    row "errors (all runs)" "${c_errs[@]}"
    echo
}

# warn_runs NAME ADVICE: warn when the measured runs of NAME differ by more
# than 10% ((max - min) / max; ADVICE follows the numbers) or had errors.
warn_runs() {
    local name=$1 advice=$2 spread
    spread=$(awk -v l="${all_rps[$name]}" 'BEGIN {
        n = split(l, v, " "); lo = hi = v[1]
        for (i = 2; i <= n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
        printf "%.0f", (hi > 0 ? 100 * (hi - lo) / hi : 0) }')
    if ((spread > 10)); then
        warn "the $name runs differ by $spread% (${runs[$name]} req/s): $advice"
    fi
    if ((errs[$name] > 0)); then
        warn "$name had ${errs[$name]} non-2xx responses or socket errors across the measured runs; its numbers are suspect"
    fi
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'
}

# ---------------------------------------------------------------- report
cpu_model() {
    awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true
}

# host_line: "host: N CPUs (model), wrk on the same host".
host_line() {
    local model
    model=$(cpu_model)
    echo "host: $(nproc) CPUs${model:+ ($model)}, wrk on the same host"
}

# warn_log NAME WHAT LOG: warn with LOG's last lines if NAME wrote to it.
warn_log() {
    if [[ -s $3 ]]; then
        warn "$1 wrote to its $2 (level warn); last lines:"
        tail -n 5 "$3" | sed 's/^/   /' >&2
    fi
}

# status_kb PID FIELD: a kB field of /proc/PID/status (VmRSS, RssShmem...).
status_kb() {
    awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0
}
pss_kb() {
    local f=/proc/$1/smaps_rollup
    [[ -r $f ]] || f=/proc/$1/smaps
    awk '/^Pss:/ { s += $2 } END { print s + 0 }' "$f" 2>/dev/null || echo 0
}

mb() {
    awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'
}

# report_memory NAME MASTER_PID: per-process table, sets mem_summary.
mem_summary=
report_memory() {
    local name=$1 master=$2 pid rss pss rss_sum=0 pss_sum=0 n=0
    local -a kids
    mapfile -t kids < <(children_of "$master")
    printf '%-8s %-7s %8s %10s %10s\n' "$name" role pid "RSS MB" "PSS MB"
    for pid in "$master" "${kids[@]}"; do
        rss=$(status_kb "$pid" VmRSS)
        pss=$(pss_kb "$pid")
        rss_sum=$((rss_sum + rss))
        pss_sum=$((pss_sum + pss))
        if [[ $pid == "$master" ]]; then
            printf '%-8s %-7s %8s %10s %10s\n' "" master "$pid" "$(mb "$rss")" "$(mb "$pss")"
        else
            n=$((n + 1))
            printf '%-8s %-7s %8s %10s %10s\n' "" "worker" "$pid" "$(mb "$rss")" "$(mb "$pss")"
        fi
    done
    printf '%-8s %-7s %8s %10s %10s\n\n' "" total "" "$(mb "$rss_sum")" "$(mb "$pss_sum")"
    mem_summary="$name memory: master+$n workers RSS $(mb "$rss_sum") MB, PSS $(mb "$pss_sum") MB"
}

# report_servers_memory: the tables of butlerd and nginx; sets butlerd_mem
# and nginx_mem to their summaries.
report_servers_memory() {
    echo "memory after the load (VmRSS from /proc/PID/status, Pss from /proc/PID/smaps_rollup):"
    report_memory butlerd "$butlerd_pid"
    butlerd_mem=$mem_summary
    report_memory nginx "$nginx_pid"
    nginx_mem=$mem_summary
}

# shm_usage: sets shm_size (bytes, the segment's length = address space)
# and shm_used_kb (tmpfs pages actually allocated, from du) of $shm_path.
shm_usage() {
    [[ -e $shm_path ]] || die "shared memory $shm_path does not exist"
    shm_size=$(stat -c %s -- "$shm_path")
    shm_used_kb=$(du -k -- "$shm_path" | awk '{ print $1 }')
}

# ---------------------------------------------------------------- CPU and RSS of a process group
# group_pids MASTER: the master and its children, one per line.
group_pids() {
    echo "$1"
    children_of "$1"
}

# group_cpu_ticks MASTER: utime + stime (clock ticks, all threads) of the
# master and its children from /proc/PID/stat. The fields are counted after
# the last ")", since the command name may hold spaces.
group_cpu_ticks() {
    local pid sum=0 rest
    local -a f
    for pid in $(group_pids "$1"); do
        rest=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${rest##*) }
        read -r -a f <<<"$rest"
        # f[0] is field 3 (state): utime is field 14, stime field 15
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}

# group_rss_kb MASTER: VmRSS summed over the master and its children.
group_rss_kb() {
    local pid sum=0
    for pid in $(group_pids "$1"); do
        sum=$((sum + $(status_kb "$pid" VmRSS)))
    done
    echo "$sum"
}

# group_pss_kb MASTER: Pss summed over the master and its children.
group_pss_kb() {
    local pid sum=0
    for pid in $(group_pids "$1"); do
        sum=$((sum + $(pss_kb "$pid")))
    done
    echo "$sum"
}

# wrk_requests FILE: the number of requests wrk completed ("N requests in").
wrk_requests() {
    awk '$2 == "requests" && $3 == "in" { print $1; found = 1 } END { exit !found }' "$1"
}
