#!/usr/bin/env bash
# bench/cpu_ab.sh: server CPU per request of two butlerd binaries, side by
# side in the same run: an older build (OLD) and the current one, each with
# the configuration of bench/kv.sh, answering the same wrk scripts in
# interleaved rounds (old, new, new, old, old, new, ... so neither always runs
# first). For ping, KV GET and KV POST it prints every run and the median and
# spread of the CPU per request of each binary, and the ratio new/old.
#
# Usage: bench/cpu_ab.sh -o OLD_BUTLERD [-w WORKERS] [-d SECONDS] [-c CONNECTIONS]
#                        [-t THREADS] [-r ROUNDS] [-k KEYS]
# The new binary is $BUTLERD, or ../src/butlerd next to this script. Both are
# copied to the temporary directory first. See bench/README.md, "perf.sh".

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=6
DURATION=5
OLD=
POST_LUA=$script_dir/kv-post.lua
GET_LUA=$script_dir/kv-get.lua

usage() {
    cat <<EOF
Usage: $0 -o OLD_BUTLERD [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS]
          [-r ROUNDS] [-k KEYS]

Runs OLD_BUTLERD and the current butlerd side by side and measures the CPU
per request (utime+stime of all processes / requests answered) of each for
GET $PATH_PING, GET /v4/keyvalues/$NAMESPACE?key=<random> and
POST /v4/keyvalues/$NAMESPACE, in interleaved wrk runs.

  -o OLD_BUTLERD  the binary to compare with (copy it aside before rebuilding)
  -w WORKERS      workers of each butlerd (default $WORKERS)
  -d SECONDS      length of each measured wrk run (default $DURATION)
  -c CONNECTIONS  wrk connections, kept alive (default $CONNECTIONS)
  -t THREADS      wrk threads (default $THREADS)
  -r ROUNDS       measured runs per test and binary (default $ROUNDS)
  -k KEYS         preloaded keys (default $KEYS, at most 999999)

Environment: BUTLERD=path to the new binary (default $script_dir/../src/butlerd)
EOF
}

own_opt() {
    case $1 in
        o) OLD=$2 ;;
        *) return 1 ;;
    esac
}
parse_opts 'o:w:d:c:t:r:k:' "$@"

check_opts WORKERS DURATION CONNECTIONS THREADS ROUNDS KEYS
((KEYS <= 999999)) || die "KEYS must be at most 999999, got $KEYS"
[[ -n $OLD ]] || die "-o OLD_BUTLERD is required (see -h)"
[[ -x $OLD ]] || die "not an executable file: $OLD"
need_wrk_nginx
[[ -r $POST_LUA ]] || die "wrk script not found: $POST_LUA"
CLK_TCK=$(getconf CLK_TCK)

bench_tmp butlerd-cpuab
copy_butlerd
cp -- "$OLD" "$tmp/butlerd.old"

# The old butlerd is stopped by our own trap; lib.sh's cleanup stops the
# new one (butlerd_pid) and removes the temporary directory.
old_pid=''
old_workers=()
old_shm_path=''
cleanup_ab() {
    local rc=$?
    set +e
    stop_group "old butlerd" "$old_pid" "${old_workers[@]}"
    [[ -n $old_shm_path && -e $old_shm_path ]] && rm -f -- "$old_shm_path"
    (exit "$rc")
    cleanup
}
trap cleanup_ab EXIT

read -r port_o port_b < <(free_ports python3)
shm_name=/butlerd-cpuab-$$
old_shm_path=/dev/shm${shm_name}.$port_o
shm_path=/dev/shm${shm_name}.$port_b
info "temp dir $tmp; old butlerd ($OLD) on 127.0.0.1:$port_o, new ($BUTLERD_SRC) on 127.0.0.1:$port_b"

# ---------------------------------------------------------------- start both
# start_one PORT BINARY: the configuration of bench/kv.sh on PORT, the keys
# preloaded; sets butlerd_pid and butlerd_workers.
start_one() {
    local port=$1 bin=$2
    write_kv_conf "$port" "$WORKERS" warn
    mv -- "$tmp/butlerd.conf" "$tmp/butlerd.$port.conf"
    "$bin" -f -c "$tmp/butlerd.$port.conf" 2>"$tmp/butlerd.$port.log" &
    butlerd_pid=$!
    wait_ready butlerd "$butlerd_pid" "http://127.0.0.1:$port$PATH_PING" "$tmp/butlerd.$port.log"
    mapfile -t butlerd_workers < <(children_of "$butlerd_pid")
    check_workers "$WORKERS"
    load_keys "http://127.0.0.1:$port/v4/keyvalues/$NAMESPACE" "$KEYS"
}
start_one "$port_o" "$tmp/butlerd.old"
old_pid=$butlerd_pid old_workers=("${butlerd_workers[@]}")
butlerd_pid=
start_one "$port_b" "$BUTLERD"

# run KIND WHICH OUT: one wrk run of KIND (ping, get, post) against WHICH (old,
# new); appends the CPU per request (us) to $tmp/runs.KIND-WHICH.
run() {
    local kind=$1 which=$2 out=$3 port pid t0 t1 n rc=0
    local -a opts=()
    if [[ $which == old ]]; then port=$port_o pid=$old_pid; else port=$port_b pid=$butlerd_pid; fi
    case $kind in
        ping) url=http://127.0.0.1:$port$PATH_PING ;;
        get) url=http://127.0.0.1:$port/v4/keyvalues/$NAMESPACE opts=(-s "$GET_LUA") ;;
        post) url=http://127.0.0.1:$port/v4/keyvalues/$NAMESPACE opts=(-s "$POST_LUA") ;;
    esac
    t0=$(group_cpu_ticks "$pid")
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" "${opts[@]}" "$url" -- "$KEYS" >"$out" 2>&1 || rc=$?
    t1=$(group_cpu_ticks "$pid")
    ((rc == 0)) || {
        cat "$out" >&2
        die "wrk failed against $url (exit status $rc)"
    }
    check_alive "$which butlerd" "$pid" "$tmp/butlerd.$port.log"
    if grep -q 'Non-2xx\|Socket errors' "$out"; then
        warn "$kind-$which: $(grep 'Non-2xx\|Socket errors' "$out" | tr '\n' ' ')"
    fi
    n=$(wrk_requests "$out") || die "no request count in wrk's output for $kind-$which"
    awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v n="$n" \
        'BEGIN { printf "%.3f\n", (b - a) / hz * 1e6 / n }' >>"$tmp/runs.$kind-$which"
}

info "warm-up: ${WARMUP} s of each test on each binary"
DURATION_SAVED=$DURATION
DURATION=$WARMUP
for kind in ping get post; do
    for which in old new; do
        run "$kind" "$which" "$tmp/warm.out"
        rm -f "$tmp/runs.$kind-$which"
    done
done
DURATION=$DURATION_SAVED

info "measuring: $ROUNDS rounds of ${DURATION} s per test and binary; wrk -t $THREADS -c $CONNECTIONS keep-alive"
for ((round = 1; round <= ROUNDS; round++)); do
    for kind in ping get post; do
        if ((round % 2)); then order=(old new); else order=(new old); fi
        for which in "${order[@]}"; do
            run "$kind" "$which" "$tmp/wrk.$kind.$which.$round"
            printf '   round %d %-4s %-3s CPU %8s us/request  %s req/s\n' "$round" "$kind" "$which" \
                "$(tail -n 1 "$tmp/runs.$kind-$which")" \
                "$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$tmp/wrk.$kind.$which.$round")"
        done
    done
done

# stats KIND-WHICH: "median min max" of the runs.
stats() {
    sort -g "$tmp/runs.$1" | awk '{ v[NR] = $1 } END {
        printf "%.2f %.2f %.2f\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }'
}

# paired KIND: "median min max" of new/old within each round (the two runs of a
# round are next to each other, under about the same load of the host).
paired() {
    paste "$tmp/runs.$1-new" "$tmp/runs.$1-old" | awk '{ printf "%.4f\n", $1 / $2 }' | sort -g |
        awk '{ v[NR] = $1 } END {
            printf "%.3f %.3f %.3f\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }'
}

echo
echo "CPU us/request, median [min-max] of $ROUNDS interleaved rounds of ${DURATION} s, $WORKERS workers each;"
echo "new/old: of the medians, and the median [min-max] of the ratios within each round:"
printf '%-5s %-22s %-22s %-8s %s\n' test old new new/old "per round"
for kind in ping get post; do
    read -r om omin omax < <(stats "$kind-old")
    read -r nm nmin nmax < <(stats "$kind-new")
    read -r pm pmin pmax < <(paired "$kind")
    printf '%-5s %-22s %-22s %-8s %s\n' "$kind" "$om [$omin-$omax]" "$nm [$nmin-$nmax]" \
        "$(ratio "$nm" "$om")" "$pm [$pmin-$pmax]"
    echo "ROW cpu_us_per_request_${kind}_vs_old butlerd=$nm reference=$om ratio=$(ratio "$nm" "$om") goal=<1"
done
host_line
