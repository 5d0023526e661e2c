#!/usr/bin/env bash
# bench/kv.sh: throughput of butlerd's key-value store (GET and POST
# /v4/keyvalues/bench on random preloaded keys) compared with nginx serving
# the /v4/butlerping body, all measured with wrk in the same run.
#
# Usage: bench/kv.sh [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS]
#                    [-r ROUNDS] [-k KEYS]
# Needs the Debian packages wrk and nginx-light (or nginx), plus curl,
# python3 and procps. The butlerd binary is $BUTLERD, or ../src/butlerd
# next to this script; it is copied to the temporary directory first. See
# the "Key-value store" section of bench/README.md for how to read the output.

set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

WORKERS=2
DURATION=10
CONNECTIONS=64
THREADS=2
ROUNDS=2
KEYS=10000
WARMUP=2
CHECK_SECONDS=1
PATH_PING=/v4/butlerping
NAMESPACE=bench
POST_LUA=$script_dir/kv-post.lua

usage() {
    cat <<EOF
Usage: $0 [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS] [-r ROUNDS] [-k KEYS]

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

Environment: BUTLERD=path to the binary (default $script_dir/../src/butlerd)
EOF
}

die() {
    printf 'kv.sh: error: %s\n' "$*" >&2
    exit 1
}

warn() {
    printf 'kv.sh: WARNING: %s\n' "$*" >&2
}

info() {
    printf '== %s\n' "$*"
}

is_uint() {
    [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0))
}

while getopts ':w:d:c:t:r:k:h' opt; do
    case $opt in
        w) WORKERS=$OPTARG ;;
        d) DURATION=$OPTARG ;;
        c) CONNECTIONS=$OPTARG ;;
        t) THREADS=$OPTARG ;;
        r) ROUNDS=$OPTARG ;;
        k) KEYS=$OPTARG ;;
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

for pair in "WORKERS:$WORKERS" "SECONDS:$DURATION" "CONNECTIONS:$CONNECTIONS" \
    "THREADS:$THREADS" "ROUNDS:$ROUNDS" "KEYS:$KEYS"; do
    is_uint "${pair#*:}" || die "${pair%%:*} must be a positive integer, got '${pair#*:}'"
done
((CONNECTIONS >= THREADS)) || die "wrk needs CONNECTIONS >= THREADS ($CONNECTIONS < $THREADS)"
# key-%06d keeps every key the same length (10 bytes).
((KEYS <= 999999)) || die "KEYS must be at most 999999, got $KEYS"

# ---------------------------------------------------------------- requirements
# nginx lives in /usr/sbin, which is not on every user's PATH.
PATH=$PATH:/usr/sbin:/sbin

missing_pkgs=()
command -v wrk >/dev/null 2>&1 || missing_pkgs+=(wrk)
command -v nginx >/dev/null 2>&1 || missing_pkgs+=(nginx-light)
command -v curl >/dev/null 2>&1 || missing_pkgs+=(curl)
command -v python3 >/dev/null 2>&1 || missing_pkgs+=(python3)
command -v pgrep >/dev/null 2>&1 || missing_pkgs+=(procps)
if ((${#missing_pkgs[@]} > 0)); then
    printf 'kv.sh: missing: %s\n' "${missing_pkgs[*]}" >&2
    printf 'Install them with:\n  apt-get install -y %s\n' "${missing_pkgs[*]}" >&2
    printf '(nginx-light may be replaced by nginx; this script installs nothing itself.)\n' >&2
    exit 1
fi

BUTLERD=${BUTLERD:-$script_dir/../src/butlerd}
[[ -x $BUTLERD ]] || die "butlerd binary not found or not executable: $BUTLERD (build it, or set BUTLERD=/path/to/butlerd)"
[[ -r $POST_LUA ]] || die "wrk script not found: $POST_LUA"

nginx_has_e=0
if nginx -h 2>&1 | grep -q -- '-e filename'; then
    nginx_has_e=1
fi

# ---------------------------------------------------------------- state/cleanup
tmp=$(mktemp -d "${TMPDIR:-/tmp}/butlerd-kvbench.XXXXXX")
butlerd_pid=
nginx_pid=
wrk_pid=
shm_path=
butlerd_workers=()
nginx_workers=()

# stop_group NAME MASTER_PID WORKER_PID...: SIGTERM the master we started, wait
# up to 10 s, then SIGKILL it and any recorded worker PID that outlived it and is
# still the same program (checked through /proc/PID/exe).
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

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n $wrk_pid ]]; then
        kill -TERM "$wrk_pid" 2>/dev/null
        wait "$wrk_pid" 2>/dev/null
    fi
    ((rc == 130 || rc == 143)) && printf 'kv.sh: interrupted; stopping the servers\n' >&2
    stop_group butlerd "$butlerd_pid" "${butlerd_workers[@]}"
    # butlerd unlinks its shared memory on an orderly exit; remove our uniquely
    # named object if it is still there (SIGKILL, crash).
    [[ -n $shm_path && -e $shm_path ]] && rm -f -- "$shm_path"
    stop_group nginx "$nginx_pid" "${nginx_workers[@]}"
    rm -rf -- "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The binary may be rebuilt while we run: use a private copy.
cp -- "$BUTLERD" "$tmp/butlerd"
BUTLERD_SRC=$BUTLERD
BUTLERD=$tmp/butlerd

# ---------------------------------------------------------------- helpers
# Two distinct free TCP ports on 127.0.0.1: bind both to port 0 at the same
# time so the kernel hands out different ones, then release them.
free_ports() {
    python3 - <<'PY'
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

# wait_ready NAME PID URL LOG: poll URL for up to 10 s while PID is alive.
wait_ready() {
    local name=$1 pid=$2 url=$3 log=$4 i
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            printf '%s exited during start-up; its log (%s):\n' "$name" "$log" >&2
            tail -n 30 "$log" >&2 || true
            die "$name did not start"
        fi
        if curl -fsS --max-time 1 -o /dev/null "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    printf '%s log (%s):\n' "$name" "$log" >&2
    tail -n 30 "$log" >&2 || true
    curl -sS --max-time 1 -o /dev/null "$url" >&2 || true
    die "$name did not answer $url within 10 s"
}

# check_alive NAME PID LOG: fail loudly if a server died under load.
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

# run_wrk OUTFILE SECONDS URL [ARGS...]: one wrk run, raw output kept in
# OUTFILE; ARGS (for example -s SCRIPT) go before the URL, and script
# arguments can follow as "-- ARG...".
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
    wrk_pid=$!
    wait "$wrk_pid" || rc=$?
    wrk_pid=
    if ((rc != 0)); then
        cat "$out" >&2
        die "wrk failed against $url (exit status $rc)"
    fi
}

# parse_wrk FILE: prints "reqs lat_avg_ms lat_p99_ms non2xx sockerr".
parse_wrk() {
    awk '
        function ms(v,   n) {
            n = v + 0
            if (v ~ /us$/) return n / 1000
            if (v ~ /ms$/) return n
            if (v ~ /m$/) return n * 60000
            if (v ~ /s$/) return n * 1000
            return n
        }
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

rss_kb() {
    awk '/^VmRSS:/ { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0
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
        rss=$(rss_kb "$pid")
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
read -r port_b port_n < <(free_ports)
# A shared-memory name of our own, so a butlerd already running on this
# machine (default "/butlerd") is never touched. butlerd appends ".PORT".
shm_name=/butlerd-bench-$$
shm_path=/dev/shm${shm_name}.$port_b
url_b="http://127.0.0.1:$port_b$PATH_PING"
url_n="http://127.0.0.1:$port_n$PATH_PING"
url_kv="http://127.0.0.1:$port_b/v4/keyvalues/$NAMESPACE"

info "temp dir $tmp; butlerd on 127.0.0.1:$port_b, nginx on 127.0.0.1:$port_n"

cat >"$tmp/butlerd.conf" <<EOF
# written by bench/kv.sh
Butler = {
  restServerConfig = {
    enable = true;
    serverHost = "127.0.0.1";
    serverPort = $port_b;
  };
  restServerEndpointsEnable = {
    butlerping = true;
    keyValueStore = true;
  };
  keyValueStore = {
    maxKeysPerNamespace = $KEYS;
  };
};
butlerd = {
  workers = $WORKERS;
  logging = {
    destination = "stderr";
    level = "warn";
  };
  kvPersistence = {
    file = "";
  };
  shm = {
    name = "$shm_name";
    kvMaxKeys = $KEYS;
    kvMaxKeyBytes = 64;
    kvMaxValueBytes = 64;
    kvMaxNamespaces = 100;
  };
};
EOF

info "starting butlerd (copy of $BUTLERD_SRC, $WORKERS workers)"
"$BUTLERD" -f -c "$tmp/butlerd.conf" 2>"$tmp/butlerd.log" &
butlerd_pid=$!
wait_ready butlerd "$butlerd_pid" "$url_b" "$tmp/butlerd.log"
mapfile -t butlerd_workers < <(children_of "$butlerd_pid")
if ((${#butlerd_workers[@]} != WORKERS)); then
    warn "butlerd master $butlerd_pid has ${#butlerd_workers[@]} child processes, expected $WORKERS workers"
fi
[[ -e $shm_path ]] || warn "butlerd's shared memory $shm_path does not exist"

# The exact body and content type butlerd serves; nginx will serve the same.
ctype=$(curl -fsS --max-time 5 -o "$tmp/body.butlerd" -w '%{content_type}' "$url_b") ||
    die "could not fetch $url_b"
[[ -n $ctype ]] || ctype="application/json; charset=utf-8"
[[ $ctype != *'"'* && $ctype != *'$'* && $ctype != *\\* ]] ||
    die "butlerd's Content-Type cannot be written into nginx.conf: $ctype"
body_len=$(wc -c <"$tmp/body.butlerd")

# ---------------------------------------------------------------- start nginx
# Same configuration as bench/ping.sh. The body as an nginx single-quoted
# string: escape \ and ' and control characters; nginx has no escape for
# '$', so route it through a variable.
body_escaped=$(python3 - "$tmp/body.butlerd" <<'PY'
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
)
dollar_geo=
if [[ $body_escaped == *"\${bench_dollar}"* ]]; then
    dollar_geo="geo \$bench_dollar { default \"\$\"; }"
fi

user_line=
if ((EUID == 0)); then
    user_line="user $(id -un) $(id -gn);"
fi

cat >"$tmp/nginx.conf" <<EOF
# written by bench/kv.sh (same as bench/ping.sh)
$user_line
daemon off;
master_process on;
worker_processes $WORKERS;
pid "$tmp/nginx.pid";
lock_file "$tmp/nginx.lock";
error_log "$tmp/nginx-error.log" warn;

events {
    worker_connections $((CONNECTIONS + 512));
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
        listen 127.0.0.1:$port_n;
        location = $PATH_PING {
            default_type "$ctype";
            return 200 '$body_escaped';
        }
        location / {
            return 404;
        }
    }
}
EOF

nginx_args=(-c "$tmp/nginx.conf" -p "$tmp/")
if ((nginx_has_e)); then
    nginx_args+=(-e "$tmp/nginx-error.log")
fi
if ! nginx -t -q "${nginx_args[@]}" >"$tmp/nginx-t.log" 2>&1; then
    cat "$tmp/nginx-t.log" >&2
    die "nginx rejected the generated configuration ($tmp/nginx.conf)"
fi

info "starting nginx ($(nginx -v 2>&1 | sed 's/^nginx version: //'), $WORKERS workers)"
nginx "${nginx_args[@]}" >>"$tmp/nginx-error.log" 2>&1 &
nginx_pid=$!
wait_ready nginx "$nginx_pid" "$url_n" "$tmp/nginx-error.log"
mapfile -t nginx_workers < <(children_of "$nginx_pid")

curl -fsS --max-time 5 -o "$tmp/body.nginx" "$url_n" || die "could not fetch $url_n"
cmp -s "$tmp/body.butlerd" "$tmp/body.nginx" ||
    die "nginx does not serve the same bytes as butlerd (compare $tmp/body.butlerd and $tmp/body.nginx)"
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
for name in nginx-ping kv-get kv-post; do
    test_args "$name"
    run_wrk "$tmp/warm.$name" "$WARMUP" "$t_url" "${t_opts[@]}"
    check_alive "$name" "$t_pid" "$t_log"
done

info "measuring: $ROUNDS x ${DURATION} s per test, alternating ${tests[*]}; wrk -t $THREADS -c $CONNECTIONS"
declare -A best_rps=() best_line=() runs=() all_rps=() errs=()
for name in "${tests[@]}"; do
    best_rps[$name]=0
    errs[$name]=0
done
for ((round = 1; round <= ROUNDS; round++)); do
    for name in "${tests[@]}"; do
        test_args "$name"
        out=$tmp/wrk.$name.$round
        run_wrk "$out" "$DURATION" "$t_url" "${t_opts[@]}"
        check_alive "$name" "$t_pid" "$t_log"
        line=$(parse_wrk "$out") || {
            cat "$out" >&2
            die "could not parse wrk output for $name"
        }
        read -r rps lat p99 non2xx sock <<<"$line"
        printf '   round %d %-14s %12.1f req/s   latency avg %8.3f ms  p99 %8.3f ms   non-2xx %d  socket errors %d\n' \
            "$round" "$name" "$rps" "$lat" "$p99" "$non2xx" "$sock"
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

# ---------------------------------------------------------------- report
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'
}

echo
echo "wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s, keep-alive; $WORKERS workers each; best of $ROUNDS runs"
echo "(the latency columns belong to that run); $KEYS preloaded keys of 10 bytes, 32-byte values,"
echo "namespace \"$NAMESPACE\"; kvMaxKeyBytes = kvMaxValueBytes = 64"
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo "host: $(nproc) CPUs${cpu_model:+ ($cpu_model)}, wrk on the same host"
echo
cw=14
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
c_runs=() c_errs=()
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
    spread=$(awk -v l="${all_rps[$name]}" 'BEGIN {
        n = split(l, v, " "); lo = hi = v[1]
        for (i = 2; i <= n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
        printf "%.0f", (hi > 0 ? 100 * (hi - lo) / hi : 0) }')
    if ((spread > 10)); then
        warn "the $name runs differ by $spread% (${runs[$name]} req/s): the ratios are uncertain; rerun on a quiet machine or with more rounds (-r 5)"
    fi
    if ((errs[$name] > 0)); then
        warn "$name had ${errs[$name]} non-2xx responses or socket errors across the measured runs; its numbers are suspect"
    fi
done
((status_ok)) || warn "the status check found unexpected status codes (GET must be 200, POST 201); the KV numbers are suspect"
if [[ -s $tmp/butlerd.log ]]; then
    warn "butlerd wrote to its log (level warn); last lines:"
    tail -n 5 "$tmp/butlerd.log" | sed 's/^/   /' >&2
fi
if [[ -s $tmp/nginx-error.log ]]; then
    warn "nginx wrote to its error log (level warn); last lines:"
    tail -n 5 "$tmp/nginx-error.log" | sed 's/^/   /' >&2
fi

echo "memory after the load (VmRSS from /proc/PID/status, Pss from /proc/PID/smaps_rollup):"
report_memory butlerd "$butlerd_pid"
butlerd_mem=$mem_summary
report_memory nginx "$nginx_pid"
nginx_mem=$mem_summary
if [[ -e $shm_path ]]; then
    shm_size=$(stat -c %s -- "$shm_path")
    shm_used_kb=$(du -k -- "$shm_path" | awk '{ print $1 }')
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
