#!/usr/bin/env bash
# bench/udp.sh: butlerd's UDP intake: the highest offered rate (datagrams/s)
# at which no event is lost, for session events (portSessionConnectionEvents,
# checked with GET /v4/activeusercount == N) and task events (portTaskFailure,
# MQTT off, checked by counting the info line butlerd logs per failed event,
# spec 6.4), compared with a trivial python3 UDP sink receiving the same
# paced stream (the reference; reported as a ratio). Goal: >= 100k/s for
# session events.
#
# Usage: bench/udp.sh [-n COUNT] [-l "RATE RATE ..."] [-w WORKERS]
#   -n COUNT   datagrams per step (default 50000, distinct users / execution IDs)
#   -l LADDER  offered rates per second, ascending (default "25000 50000 100000 200000 400000")
#   -w WORKERS butlerd workers (default 2)
# A fresh butlerd is started for every step. The ladder stops for a server
# at its first lossy step. The sender (python3, one core) reports the rate
# it really achieved; when that is well below the offered rate, the step is
# limited by the sender, not by the receiver.

set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
prog=udp.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$script_dir/lib.sh"

COUNT=50000
LADDER="25000 50000 100000 200000 400000"
WORKERS=2
PYTHON=${PYTHON:-/usr/bin/python3}
FLOOD=$script_dir/udp_flood.py

while getopts ':n:l:w:h' opt; do
    case $opt in
        n) COUNT=$OPTARG ;;
        l) LADDER=$OPTARG ;;
        w) WORKERS=$OPTARG ;;
        h)
            sed -n '2,20p' "$0"
            exit 0
            ;;
        :) die "option -$OPTARG needs a value (see -h)" ;;
        *) die "unknown option -$OPTARG (see -h)" ;;
    esac
done
check_uints "COUNT:$COUNT" "WORKERS:$WORKERS"
for r in $LADDER; do check_uints "RATE:$r"; done

need_commands "(this script installs nothing itself.)" "$PYTHON:python3" curl:curl pgrep:procps
find_butlerd
bench_tmp butlerd-udpbench
copy_butlerd

udp_ports() {
    "$PYTHON" - <<'PY'
import socket
ss = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
PY
}

# start_udp_butlerd LEVEL: fresh butlerd with both UDP sockets; sets port_b, port_t, port_s
start_udp_butlerd() {
    read -r port_b _ < <(free_ports "$PYTHON")
    read -r port_t port_s < <(udp_ports)
    shm_name=/butlerd-udpbench-$$
    shm_path=/dev/shm${shm_name}.$port_b
    write_butlerd_conf "$port_b" "$WORKERS" "$1" "    activeUserCount = true;
    activeUsers = true;" "  udpServerConfig = {
    enable = true;
    serverHost = \"127.0.0.1\";
    portTaskFailure = $port_t;
    portSessionConnectionEvents = $port_s;
    messageQueue = { maxSize = $((COUNT + 10)); maxConcurrent = 10; };
  };" "    maxActiveUsers = $((COUNT + 10));"
    start_butlerd "http://127.0.0.1:$port_b/v4/butlerping"
}

stop_udp_butlerd() {
    stop_group butlerd "$butlerd_pid" "${butlerd_workers[@]}"
    butlerd_pid=
    [[ -e $shm_path ]] && rm -f -- "$shm_path"
    true
}

# wait_stable CMD: run CMD (prints a number) until it reaches COUNT or stays
# the same for 2 s (at most 60 s); prints the last value.
wait_stable() {
    local v last=-1 same=0 i
    for ((i = 0; i < 600; i++)); do
        v=$("$@" || true)
        v=${v:-0}
        if ((v >= COUNT)); then break; fi
        if ((v == last)); then
            same=$((same + 1))
            ((same < 20)) || break
        else
            same=0
        fi
        last=$v
        sleep 0.1
    done
    echo "$v"
}

count_users() {
    curl -fsS --max-time 5 "http://127.0.0.1:$port_b/v4/activeusercount" |
        sed -n 's/.*"response":\([0-9]*\).*/\1/p'
}

count_task_lines() {
    { grep -o "$tag-[0-9]*" "$tmp/butlerd.log" || true; } | sort -u | wc -l
}

send_step() { # KIND PORT RATE TAG -> "achieved rate"
    "$PYTHON" "$FLOOD" send --port "$2" --rate "$3" --count "$COUNT" --kind "$1" --tag "$4" |
        awk '{ printf "%.0f", $4 }'
}

declare -A res=() ach=()
best_ref=0 best_sess=0 best_task=0
done_ref=0 done_sess=0 done_task=0
info "temp dir $tmp; $COUNT datagrams per step; ladder: $LADDER; butlerd $WORKERS worker(s)"
step=0
for rate in $LADDER; do
    step=$((step + 1))
    # reference: the python3 sink
    if ((!done_ref)); then
        read -r p _ < <(udp_ports)
        rm -f "$tmp/sink.ready"
        "$PYTHON" "$FLOOD" sink --port "$p" --count "$COUNT" --ready "$tmp/sink.ready" >"$tmp/sink.out" &
        client_pid=$!
        for ((i = 0; i < 100; i++)); do [[ -e $tmp/sink.ready ]] && break; sleep 0.05; done
        ach[ref.$rate]=$(send_step session "$p" "$rate" "R$step")
        wait "$client_pid" || true
        client_pid=
        got=$(awk '{ print $2 }' "$tmp/sink.out")
        res[ref.$rate]=$got
        if ((got == COUNT)); then best_ref=$rate; else done_ref=1; fi
    fi
    if ((!done_sess)); then
        start_udp_butlerd warn
        ach[sess.$rate]=$(send_step session "$port_s" "$rate" "S$step")
        got=$(wait_stable count_users)
        check_alive butlerd "$butlerd_pid" "$tmp/butlerd.log"
        stop_udp_butlerd
        res[sess.$rate]=$got
        if ((got == COUNT)); then best_sess=$rate; else done_sess=1; fi
    fi
    if ((!done_task)); then
        start_udp_butlerd info
        tag=T$step-$$
        ach[task.$rate]=$(send_step task "$port_t" "$rate" "$tag")
        got=$(wait_stable count_task_lines)
        check_alive butlerd "$butlerd_pid" "$tmp/butlerd.log"
        stop_udp_butlerd
        res[task.$rate]=$got
        if ((got == COUNT)); then best_task=$rate; else done_task=1; fi
    fi
    printf '   rate %8d/s  sink %7s (sent at %s/s)  session %7s (sent at %s/s)  task %7s (sent at %s/s)\n' \
        "$rate" "${res[ref.$rate]:--}" "${ach[ref.$rate]:--}" "${res[sess.$rate]:--}" \
        "${ach[sess.$rate]:--}" "${res[task.$rate]:--}" "${ach[task.$rate]:--}"
    ((done_ref && done_sess && done_task)) && break
done

echo
host_line | sed 's/wrk on/sender on/'
printf '%-12s %14s %14s %14s\n' "offered/s" "python3 sink" "session" "task"
for rate in $LADDER; do
    [[ -n ${res[ref.$rate]:-}${res[sess.$rate]:-}${res[task.$rate]:-} ]] || continue
    printf '%-12s %14s %14s %14s\n' "$rate" "${res[ref.$rate]:--}/$COUNT" \
        "${res[sess.$rate]:--}/$COUNT" "${res[task.$rate]:--}/$COUNT"
done
echo
((done_ref)) || warn "the python3 sink lost nothing up to the top of the ladder: extend it (-l)"
echo "lossless rate python3-sink: $best_ref"
echo "lossless rate session: $best_sess (goal >= 100000: $( ((best_sess >= 100000)) && echo met || echo NOT met))"
echo "lossless rate task: $best_task"
echo "ratio session/sink: $(ratio "$best_sess" "$best_ref")"
echo "ratio task/sink: $(ratio "$best_task" "$best_ref")"
