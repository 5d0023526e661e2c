#!/usr/bin/env bash
# bench/perf.sh: the one command behind the issue-19 table. Measures, side by
# side with nginx serving the same bytes, butlerd's server CPU per request
# (ping, KV GET, KV POST), p99 latency under the same load and the memory of
# all processes under CONNECTIONS keep-alive connections and over a longer
# run; then runs bench/udp_cost.py, bench/keylist.py and bench/taskstart.py
# if they exist, and prints one table of every "ROW" line with its ratio.
#
# Usage: bench/perf.sh [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS]
#                      [-r ROUNDS] [-k KEYS] [-s SOAK_SECONDS] [-n]
# Needs wrk, nginx-light (or nginx), curl, python3 and procps. The butlerd
# binary is $BUTLERD, or ../src/butlerd next to this script; it is copied to
# the temporary directory first. See bench/README.md, "perf.sh".

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=5
SOAK=180
OTHERS=1
POST_LUA=$script_dir/kv-post.lua
GET_LUA=$script_dir/kv-get.lua
OTHER_SCRIPTS=(udp_cost.py keylist.py taskstart.py)

usage() {
    cat <<EOF
Usage: $0 [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS] [-r ROUNDS]
          [-k KEYS] [-s SOAK_SECONDS] [-n]

Runs wrk in interleaved rounds (butlerd, nginx, butlerd, nginx, ...) over
GET $PATH_PING, GET /v4/keyvalues/$NAMESPACE?key=<random> and
POST /v4/keyvalues/$NAMESPACE, nginx returning butlerd's bytes for each, and
prints server CPU per request (utime+stime of all processes / requests
answered), p99 latency and memory, each with the ratio butlerd/nginx; then
a SOAK_SECONDS run of KV POSTs for memory growth, then the other ROW scripts.

  -w WORKERS      butlerd workers and nginx worker_processes (default $WORKERS)
  -d SECONDS      length of each measured wrk run (default $DURATION)
  -c CONNECTIONS  wrk connections, kept alive (default $CONNECTIONS)
  -t THREADS      wrk threads (default $THREADS)
  -r ROUNDS       measured runs per test, interleaved (default $ROUNDS)
  -k KEYS         preloaded keys (default $KEYS, at most 999999)
  -s SECONDS      length of the memory-growth run (default $SOAK; 0 = skip)
  -n              do not run ${OTHER_SCRIPTS[*]}

Environment: BUTLERD=path to the binary (default $script_dir/../src/butlerd)
EOF
}

# own_opt LETTER VALUE: this script's options (parse_opts in lib.sh).
own_opt() {
    case $1 in
        s) SOAK=$2 ;;
        n) OTHERS=0 ;;
        *) return 1 ;;
    esac
}
parse_opts 'w:d:c:t:r:k:s:n' "$@"

check_opts WORKERS DURATION CONNECTIONS THREADS ROUNDS KEYS
[[ $SOAK == 0 ]] || check_uints "SOAK_SECONDS:$SOAK"
((KEYS <= 999999)) || die "KEYS must be at most 999999, got $KEYS"

need_wrk_nginx
[[ -r $POST_LUA ]] || die "wrk script not found: $POST_LUA"
CLK_TCK=$(getconf CLK_TCK)

bench_tmp butlerd-perf
copy_butlerd

# ---------------------------------------------------------------- start butlerd
butlerd_nginx_ports butlerd-perf
url_kv_b="http://127.0.0.1:$port_b/v4/keyvalues/$NAMESPACE"
url_kv_n="http://127.0.0.1:$port_n/v4/keyvalues/$NAMESPACE"

# The configuration of bench/kv.sh.
write_kv_conf "$port_b" "$WORKERS" warn
start_butlerd_workers "$url_b"
sleep 1
idle_rss_b=$(group_rss_kb "$butlerd_pid")

fetch_butlerd_body "$url_b"
ctype_ping=$ctype

load_keys "$url_kv_b" "$KEYS"

# The KV replies nginx will copy: one GET of a preloaded key, one POST that
# overwrites it with a value of the length kv-post.lua sends.
ctype_get=$(curl -fsS --max-time 5 -o "$tmp/body.get" -w '%{content_type}' "$url_kv_b?key=key-000001") ||
    die "could not GET key-000001"
post_data='{"key":"key-000001","value":"v0000000000000000000000000000001","ttl":0}'
read -r post_status ctype_post < <(curl -sS --max-time 5 -o "$tmp/body.post" \
    -w '%{http_code} %{content_type}\n' -H 'Content-Type: application/json' \
    --data-binary "$post_data" "$url_kv_b") || die "could not POST to $url_kv_b"
[[ $post_status == 201 ]] || die "POST $url_kv_b answered $post_status, expected 201: $(cat "$tmp/body.post")"

# ---------------------------------------------------------------- start nginx
nginx_extra_locations="location = /v4/keyvalues/$NAMESPACE {
            if (\$request_method = POST) {
                return 201 '$(nginx_string "$tmp/body.post")';
            }
            default_type \"$ctype_get\";
            return 200 '$(nginx_string "$tmp/body.get")';
        }"
# nginx takes the type of a "return" inside "if" from the location's
# default_type; both KV replies are JSON.
[[ $ctype_get == "$ctype_post" ]] || warn "GET and POST replies differ in Content-Type ($ctype_get, $ctype_post); nginx sends $ctype_get for both"
ctype=$ctype_ping
start_nginx "$port_n" "$PATH_PING" "$WORKERS" "$CONNECTIONS"
mapfile -t nginx_workers < <(children_of "$nginx_pid")
if ! curl -fsS --max-time 5 -o "$tmp/body.get.n" "$url_kv_n?key=key-000001" ||
    ! cmp -s "$tmp/body.get" "$tmp/body.get.n"; then
    die "nginx's KV GET reply differs from butlerd's"
fi
if ! curl -fsS --max-time 5 -o "$tmp/body.post.n" -H 'Content-Type: application/json' \
    --data-binary "$post_data" "$url_kv_n" ||
    ! cmp -s "$tmp/body.post" "$tmp/body.post.n"; then
    die "nginx's KV POST reply differs from butlerd's"
fi
idle_rss_n=$(group_rss_kb "$nginx_pid")
info "both servers return the same bytes for ping ($body_len), KV GET ($(wc -c <"$tmp/body.get")) and KV POST ($(wc -c <"$tmp/body.post"))"

# ---------------------------------------------------------------- load
# test NAME = KIND-SERVER; both servers get the same wrk script.
tests=(ping-butlerd ping-nginx get-butlerd get-nginx post-butlerd post-nginx)
test_args() {
    case ${1%-*} in
        ping) t_url=$url_b t_opts=() ;;
        get) t_url=$url_kv_b t_opts=(-s "$GET_LUA" -- "$KEYS") ;;
        post) t_url=$url_kv_b t_opts=(-s "$POST_LUA" -- "$KEYS") ;;
        *) die "unknown test $1" ;;
    esac
    if [[ ${1##*-} == nginx ]]; then
        t_url=${t_url/:$port_b\//:$port_n/}
        t_pid=$nginx_pid t_log=$tmp/nginx-error.log
    else
        t_pid=$butlerd_pid t_log=$tmp/butlerd.log
    fi
}

# measure_run NAME OUT: one wrk run; appends "cpu_us p99_ms rss_kb rps errs
# pss_kb" to $tmp/runs.NAME. RSS and PSS are sampled half way through the run.
measure_run() {
    local name=$1 out=$2 t0 t1 n rss pss line rps lat p99 non2xx sock rc=0
    test_args "$name"
    t0=$(group_cpu_ticks "$t_pid")
    wrk --latency -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" "${t_opts[@]:0:2}" \
        "$t_url" "${t_opts[@]:2}" >"$out" 2>&1 &
    client_pid=$!
    sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"
    rss=$(group_rss_kb "$t_pid")
    pss=$(group_pss_kb "$t_pid")
    wait "$client_pid" || rc=$?
    client_pid=
    t1=$(group_cpu_ticks "$t_pid")
    ((rc == 0)) || {
        cat "$out" >&2
        die "wrk failed against $t_url (exit status $rc)"
    }
    check_alive "$name" "$t_pid" "$t_log"
    n=$(wrk_requests "$out") || die "no request count in wrk's output for $name"
    line=$(parse_wrk "$out") || die "could not parse wrk output for $name"
    read -r rps lat p99 non2xx sock <<<"$line"
    awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v n="$n" -v p="$p99" -v r="$rss" \
        -v q="$rps" -v e=$((non2xx + sock)) -v s="$pss" \
        'BEGIN { printf "%.3f %.3f %d %.0f %d %d\n", (b - a) / hz * 1e6 / n, p, r, q, e, s }' \
        >>"$tmp/runs.$name"
}

# median NAME FIELD: the median of FIELD over the runs of NAME.
median() {
    awk -v f="$2" '{ print $f }' "$tmp/runs.$1" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
maximum() {
    awk -v f="$2" 'NR == 1 || $f > m { m = $f } END { print m }' "$tmp/runs.$1"
}

info "warm-up: ${WARMUP} s of each test"
DURATION_SAVED=$DURATION
DURATION=$WARMUP
for name in "${tests[@]}"; do
    measure_run "$name" "$tmp/warm.$name"
    rm -f "$tmp/runs.$name"
done
DURATION=$DURATION_SAVED

info "measuring: $ROUNDS rounds of ${DURATION} s per test, interleaved ${tests[*]}; wrk -t $THREADS -c $CONNECTIONS keep-alive"
for ((round = 1; round <= ROUNDS; round++)); do
    for name in "${tests[@]}"; do
        measure_run "$name" "$tmp/wrk.$name.$round"
        read -r cpu p99 rss rps errs _ < <(tail -n 1 "$tmp/runs.$name")
        printf '   round %d %-13s %9s req/s  CPU %7s us/request  p99 %7s ms  RSS %6s MB  errors %s\n' \
            "$round" "$name" "$rps" "$cpu" "$p99" "$(mb "$rss")" "$errs"
        ((errs == 0)) || warn "$name had $errs non-2xx responses or socket errors in round $round; its numbers are suspect"
    done
done

# ---------------------------------------------------------------- memory growth
soak_line=
if ((SOAK > 0)); then
    info "memory growth: ${SOAK} s of KV POST on butlerd, RSS of all processes every $((SOAK / 6 > 0 ? SOAK / 6 : 1)) s"
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "${SOAK}s" -s "$POST_LUA" "$url_kv_b" -- "$KEYS" \
        >"$tmp/soak.out" 2>&1 &
    client_pid=$!
    samples=()
    step=$((SOAK / 6 > 0 ? SOAK / 6 : 1))
    for ((i = 0; i < 6; i++)); do
        sleep "$step"
        kill -0 "$client_pid" 2>/dev/null || break
        samples+=("$(group_rss_kb "$butlerd_pid")")
    done
    wait "$client_pid" || true
    client_pid=
    check_alive butlerd "$butlerd_pid" "$tmp/butlerd.log"
    printf '   RSS samples (MB):'
    for s in "${samples[@]}"; do printf ' %s' "$(mb "$s")"; done
    echo
    # The first sample is after SOAK/6 s of load: the pools are grown by then.
    if ((${#samples[@]} >= 2)); then
        soak_line="ROW rss_growth_mb_soak butlerd=$(mb $((samples[-1] - samples[0]))) reference=0 ratio=- goal=<=0.5MB over ${SOAK}s"
    fi
fi

# ---------------------------------------------------------------- rows
rows=()
for kind in ping get post; do
    b=$(median "$kind-butlerd" 1)
    n=$(median "$kind-nginx" 1)
    label=$kind
    [[ $kind == ping ]] || label=kv_$kind
    rows+=("ROW cpu_us_per_request_$label butlerd=$b reference=$n ratio=$(ratio "$b" "$n") goal=<=1.05")
done
for kind in ping get post; do
    b=$(median "$kind-butlerd" 2)
    n=$(median "$kind-nginx" 2)
    label=$kind
    [[ $kind == ping ]] || label=kv_$kind
    rows+=("ROW p99_ms_$label butlerd=$b reference=$n ratio=$(ratio "$b" "$n") goal=<=1.2")
done
rb=0 rn=0
for kind in ping get post; do
    v=$(maximum "$kind-butlerd" 3)
    ((v > rb)) && rb=$v
    v=$(maximum "$kind-nginx" 3)
    ((v > rn)) && rn=$v
done
rows+=("ROW rss_mb_under_load butlerd=$(mb "$rb") reference=$(mb "$rn") ratio=$(ratio "$rb" "$rn") goal=<=20MB")
pb=0 pn=0
for kind in ping get post; do
    v=$(maximum "$kind-butlerd" 6)
    ((v > pb)) && pb=$v
    v=$(maximum "$kind-nginx" 6)
    ((v > pn)) && pn=$v
done
# PSS splits each shared page (libraries, copy-on-write, the store) among the
# processes that map it: what the group really costs the machine.
rows+=("ROW pss_mb_under_load butlerd=$(mb "$pb") reference=$(mb "$pn") ratio=$(ratio "$pb" "$pn") goal=-")
if [[ -e $shm_path ]]; then
    shm_usage
    rows+=("ROW store_shm_mb_in_use butlerd=$(mb "$shm_used_kb") reference=0 ratio=- goal=-")
fi
rows+=("ROW rss_mb_idle butlerd=$(mb "$idle_rss_b") reference=$(mb "$idle_rss_n") ratio=$(ratio "$idle_rss_b" "$idle_rss_n") goal=-")
[[ -z $soak_line ]] || rows+=("$soak_line")

echo
echo "wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s keep-alive, $ROUNDS interleaved rounds, $WORKERS workers each;"
echo "medians of the rounds; CPU = utime+stime of all server processes / requests answered;"
echo "RSS = VmRSS summed over all server processes, the largest sample half way through a run"
echo "(butlerd's shared-memory store counts in the RSS of every process that touched it; PSS"
echo "divides each shared page among them)"
host_line
warn_log butlerd log "$tmp/butlerd.log"
warn_log nginx "error log" "$tmp/nginx-error.log"
printf '%s\n' "${rows[@]}"

# Stop our servers before the other scripts start theirs.
stop_group butlerd "$butlerd_pid" "${butlerd_workers[@]}"
butlerd_pid=
stop_group nginx "$nginx_pid" "${nginx_workers[@]}"
nginx_pid=

# ---------------------------------------------------------------- other rows
if ((OTHERS)); then
    for s in "${OTHER_SCRIPTS[@]}"; do
        [[ -r $script_dir/$s ]] || {
            info "$s not found: its rows are left out"
            continue
        }
        info "running $s"
        rc=0
        BUTLERD=$BUTLERD_SRC /usr/bin/python3 "$script_dir/$s" >"$tmp/other.out" 2>"$tmp/other.err" || rc=$?
        grep '^ROW ' "$tmp/other.out" || true
        mapfile -t more < <(grep '^ROW ' "$tmp/other.out" || true)
        rows+=("${more[@]}")
        if ((rc != 0 || ${#more[@]} == 0)); then
            warn "$s exited with status $rc and printed ${#more[@]} ROW lines; its last lines:"
            tail -n 5 "$tmp/other.err" "$tmp/other.out" | sed 's/^/   /' >&2
        fi
    done
fi

# ---------------------------------------------------------------- table
echo
printf '%s\n' "${rows[@]}" | awk '
    function val(k,   i) {
        for (i = 3; i <= NF; i++) if (index($i, k "=") == 1) return substr($i, length(k) + 2)
        return "-"
    }
    BEGIN { printf "%-34s %12s %12s %8s  %s\n", "row", "butlerd", "reference", "ratio", "goal" }
    {
        g = val("goal")
        for (i = 3; i <= NF; i++) if (index($i, "goal=") == 1) { g = substr($0, index($0, "goal=") + 5); break }
        printf "%-34s %12s %12s %8s  %s\n", $2, val("butlerd"), val("reference"), val("ratio"), g
    }'
