#!/usr/bin/env bash
# bench/ping.sh: GET /v4/butlerping throughput of butlerd compared with
# nginx serving the same bytes, both measured with wrk in the same run.
#
# Usage: bench/ping.sh [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS]
#                      [-r ROUNDS]
# Needs the Debian packages wrk and nginx-light (or nginx), plus curl,
# python3 and procps. The butlerd binary is $BUTLERD, or ../src/butlerd
# next to this script. See bench/README.md for how to read the output.

set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

WORKERS=2
DURATION=10
CONNECTIONS=64
THREADS=2
ROUNDS=2
WARMUP=2
PATH_PING=/v4/butlerping

usage() {
    cat <<EOF
Usage: $0 [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS] [-r ROUNDS]

Measures GET $PATH_PING on butlerd and on nginx serving the same body,
alternating wrk runs between the two, and prints requests/s, their ratio,
latency, errors and the memory of both process groups.

  -w WORKERS      butlerd workers and nginx worker_processes (default $WORKERS)
  -d SECONDS      length of each measured wrk run (default $DURATION)
  -c CONNECTIONS  wrk connections (default $CONNECTIONS)
  -t THREADS      wrk threads (default $THREADS)
  -r ROUNDS       measured runs per server, alternating (default $ROUNDS)

Environment: BUTLERD=path to the binary (default $script_dir/../src/butlerd)
EOF
}

die() {
    printf 'ping.sh: error: %s\n' "$*" >&2
    exit 1
}

warn() {
    printf 'ping.sh: WARNING: %s\n' "$*" >&2
}

info() {
    printf '== %s\n' "$*"
}

is_uint() {
    [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0))
}

while getopts ':w:d:c:t:r:h' opt; do
    case $opt in
        w) WORKERS=$OPTARG ;;
        d) DURATION=$OPTARG ;;
        c) CONNECTIONS=$OPTARG ;;
        t) THREADS=$OPTARG ;;
        r) ROUNDS=$OPTARG ;;
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
    "THREADS:$THREADS" "ROUNDS:$ROUNDS"; do
    is_uint "${pair#*:}" || die "${pair%%:*} must be a positive integer, got '${pair#*:}'"
done
((CONNECTIONS >= THREADS)) || die "wrk needs CONNECTIONS >= THREADS ($CONNECTIONS < $THREADS)"

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
    printf 'ping.sh: missing: %s\n' "${missing_pkgs[*]}" >&2
    printf 'Install them with:\n  apt-get install -y %s\n' "${missing_pkgs[*]}" >&2
    printf '(nginx-light may be replaced by nginx; this script installs nothing itself.)\n' >&2
    exit 1
fi

BUTLERD=${BUTLERD:-$script_dir/../src/butlerd}
[[ -x $BUTLERD ]] || die "butlerd binary not found or not executable: $BUTLERD (build it, or set BUTLERD=/path/to/butlerd)"

nginx_has_e=0
if nginx -h 2>&1 | grep -q -- '-e filename'; then
    nginx_has_e=1
fi

# ---------------------------------------------------------------- state/cleanup
tmp=$(mktemp -d "${TMPDIR:-/tmp}/butlerd-bench.XXXXXX")
butlerd_pid=
nginx_pid=
wrk_pid=
shm_name=
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
    ((rc == 130 || rc == 143)) && printf 'ping.sh: interrupted; stopping the servers\n' >&2
    stop_group butlerd "$butlerd_pid" "${butlerd_workers[@]}"
    # Our uniquely named shared-memory object, if butlerd left it (SIGKILL).
    [[ -n $butlerd_pid && -e /dev/shm${shm_name} ]] && rm -f -- "/dev/shm${shm_name}"
    stop_group nginx "$nginx_pid" "${nginx_workers[@]}"
    rm -rf -- "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

# run_wrk OUTFILE URL SECONDS: one wrk run, raw output kept in OUTFILE.
run_wrk() {
    local out=$1 url=$2 secs=$3 rc=0
    # In the background so that Ctrl-C runs the INT trap at once (a trap
    # waits for a foreground command to finish); cleanup stops wrk by PID.
    wrk --latency -t "$THREADS" -c "$CONNECTIONS" -d "${secs}s" "$url" >"$out" 2>&1 &
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

# mem_kb PID FIELD: VmRSS (from status) or Pss (from smaps_rollup) in kB.
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

# ---------------------------------------------------------------- start butlerd
read -r port_b port_n < <(free_ports)
# A shared-memory name of our own, so a butlerd already running on this
# machine (default "/butlerd") is never touched.
shm_name=/butlerd-bench-$$
url_b="http://127.0.0.1:$port_b$PATH_PING"
url_n="http://127.0.0.1:$port_n$PATH_PING"

info "temp dir $tmp; butlerd on 127.0.0.1:$port_b, nginx on 127.0.0.1:$port_n"

cat >"$tmp/butlerd.conf" <<EOF
# written by bench/ping.sh
Butler = {
  restServerConfig = {
    enable = true;
    serverHost = "127.0.0.1";
    serverPort = $port_b;
  };
  restServerEndpointsEnable = {
    butlerping = true;
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
  };
};
EOF

info "starting butlerd ($BUTLERD, $WORKERS workers)"
"$BUTLERD" -f -c "$tmp/butlerd.conf" 2>"$tmp/butlerd.log" &
butlerd_pid=$!
wait_ready butlerd "$butlerd_pid" "$url_b" "$tmp/butlerd.log"
mapfile -t butlerd_workers < <(children_of "$butlerd_pid")
if ((${#butlerd_workers[@]} != WORKERS)); then
    warn "butlerd master $butlerd_pid has ${#butlerd_workers[@]} child processes, expected $WORKERS workers"
fi

# The exact body and content type butlerd serves; nginx will serve the same.
ctype=$(curl -fsS --max-time 5 -o "$tmp/body.butlerd" -w '%{content_type}' "$url_b") ||
    die "could not fetch $url_b"
[[ -n $ctype ]] || ctype="application/json; charset=utf-8"
[[ $ctype != *'"'* && $ctype != *'$'* && $ctype != *\\* ]] ||
    die "butlerd's Content-Type cannot be written into nginx.conf: $ctype"
body_len=$(wc -c <"$tmp/body.butlerd")
info "butlerd answers $body_len bytes, Content-Type: $ctype"

# ---------------------------------------------------------------- start nginx
# The body as an nginx single-quoted string: escape \ and ' and control
# characters; nginx has no escape for '$', so route it through a variable.
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

# Run nginx as the current user: as root the workers would otherwise switch
# to "nobody"; as another user the directive is meaningless and omitted.
user_line=
if ((EUID == 0)); then
    user_line="user $(id -un) $(id -gn);"
fi

cat >"$tmp/nginx.conf" <<EOF
# written by bench/ping.sh
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
info "both servers return the same $body_len-byte body"

# ---------------------------------------------------------------- load
info "warm-up: ${WARMUP} s each"
run_wrk "$tmp/warm.butlerd" "$url_b" "$WARMUP"
check_alive butlerd "$butlerd_pid" "$tmp/butlerd.log"
run_wrk "$tmp/warm.nginx" "$url_n" "$WARMUP"
check_alive nginx "$nginx_pid" "$tmp/nginx-error.log"

info "measuring: $ROUNDS x ${DURATION} s per server, alternating; wrk -t $THREADS -c $CONNECTIONS"
declare -A best_rps=([butlerd]=0 [nginx]=0) best_line=() runs=() all_rps=() errs=([butlerd]=0 [nginx]=0)
for ((round = 1; round <= ROUNDS; round++)); do
    for name in butlerd nginx; do
        if [[ $name == butlerd ]]; then
            url=$url_b pid=$butlerd_pid log=$tmp/butlerd.log
        else
            url=$url_n pid=$nginx_pid log=$tmp/nginx-error.log
        fi
        out=$tmp/wrk.$name.$round
        run_wrk "$out" "$url" "$DURATION"
        check_alive "$name" "$pid" "$log"
        line=$(parse_wrk "$out") || {
            cat "$out" >&2
            die "could not parse wrk output for $name"
        }
        read -r rps lat p99 non2xx sock <<<"$line"
        printf '   round %d %-8s %12.1f req/s   latency avg %8.3f ms  p99 %8.3f ms   non-2xx %d  socket errors %d\n' \
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

read -r b_rps b_lat b_p99 b_non2xx b_sock <<<"${best_line[butlerd]}"
read -r n_rps n_lat n_p99 n_non2xx n_sock <<<"${best_line[nginx]}"
ratio=$(awk -v a="$b_rps" -v b="$n_rps" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')

# ---------------------------------------------------------------- report
echo
echo "GET $PATH_PING, $body_len-byte body; wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s, keep-alive;"
echo "$WORKERS workers each; best of $ROUNDS runs (the latency columns belong to that run)"
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo "host: $(nproc) CPUs${cpu_model:+ ($cpu_model)}, wrk on the same host"
echo
# Column width: 14, or wider when the list of all runs needs it.
cw=14
for name in butlerd nginx; do
    ((${#runs[$name]} < cw)) || cw=$((${#runs[$name]} + 1))
done
row() {
    printf '%-26s %*s %*s\n' "$1" "$cw" "$2" "$cw" "$3"
}
row "" butlerd nginx
row "requests/s (best)" "$(printf '%.1f' "$b_rps")" "$(printf '%.1f' "$n_rps")"
row "requests/s (all runs)" "${runs[butlerd]}" "${runs[nginx]}"
row "latency avg (ms)" "$b_lat" "$n_lat"
row "latency p99 (ms)" "$b_p99" "$n_p99"
row "non-2xx/3xx (best run)" "$b_non2xx" "$n_non2xx"
row "socket errors (best run)" "$b_sock" "$n_sock"
row "errors (all runs)" "${errs[butlerd]}" "${errs[nginx]}"
echo

for name in butlerd nginx; do
    # (max - min) / max over the measured runs, in per cent.
    spread=$(awk -v l="${all_rps[$name]}" 'BEGIN {
        n = split(l, v, " "); lo = hi = v[1]
        for (i = 2; i <= n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
        printf "%.0f", (hi > 0 ? 100 * (hi - lo) / hi : 0) }')
    if ((spread > 10)); then
        warn "the $name runs differ by $spread% (${runs[$name]} req/s): either something else was using the CPUs or $name's throughput is unsteady; the ratio is uncertain, rerun on a quiet machine or with more rounds (-r 5)"
    fi
    if ((errs[$name] > 0)); then
        warn "$name had ${errs[$name]} non-2xx responses or socket errors across the measured runs; its numbers are suspect"
    fi
done
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

echo "requests/s butlerd: $(printf '%.1f' "$b_rps")"
echo "requests/s nginx: $(printf '%.1f' "$n_rps")"
echo "ratio butlerd/nginx: $ratio"
echo "$butlerd_mem"
echo "$nginx_mem"
