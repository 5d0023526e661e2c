#!/usr/bin/env bash
# bench/udp.sh: butlerd's UDP intake: the highest offered rate (datagrams/s)
# at which no event is lost, for
#   session       session events (portSessionConnectionEvents), MQTT off,
#                 checked with GET /v4/activeusercount == N;
#   session+MQTT  the same with MQTT on, against a mosquitto the script
#                 starts, so every event also publishes its session topic
#                 and every batch the aggregate active-user topics;
#   task          task events (portTaskFailure), MQTT off, checked by
#                 counting the info line butlerd logs per failed event
#                 (spec 6.4);
# compared with a minimal C receiver, bench/udp_sink.c (same 8 MB receive
# buffer, recvmmsg in batches of 32, only counts: the upper bound for any
# receiver on this host). The ratios divide butlerd's lossless rates by the
# sink's, from the same run. Goal: >= 100k/s for session events.
#
# Usage: bench/udp.sh [-n COUNT] [-l "RATE RATE ..."] [-w WORKERS] [-b BATCH]
#   -n COUNT   datagrams per step (default 50000, distinct users / execution IDs)
#   -l LADDER  offered rates per second, ascending (default "50000 100000 200000 400000 800000")
#   -w WORKERS butlerd workers (default 2)
#   -b BATCH   datagrams per sendmmsg call of the sender (default 16)
# All receivers get the same datagrams (made once by udp_flood.py gen) from
# the same C sender, bench/udp_blast.c, paced with clock_gettime; it reports
# the rate it really achieved, and a step where that is below 95 % of the
# offered rate is marked: it was limited by the sender, not the receiver.
# A fresh butlerd is started for every step; the ladder stops for a
# receiver at its first lossy step. Needs cc, python3, curl, procps and
# mosquitto (/usr/sbin/mosquitto, or $MOSQUITTO). See bench/README.md.

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

COUNT=50000
LADDER="50000 100000 200000 400000 800000"
BATCH=16
PYTHON=${PYTHON:-/usr/bin/python3}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
CC=${CC:-cc}
FLOOD=$script_dir/udp_flood.py

usage() {
    sed -n '2,28p' "$0"
}
# own_opt LETTER VALUE: this script's options (parse_opts in lib.sh).
own_opt() {
    case $1 in
        n) COUNT=$2 ;;
        l) LADDER=$2 ;;
        b) BATCH=$2 ;;
        *) return 1 ;;
    esac
}
parse_opts 'n:l:w:b:' "$@"
check_opts COUNT WORKERS BATCH
((BATCH <= 1024)) || die "BATCH must be at most 1024"
[[ -n ${LADDER// /} ]] || die "the ladder is empty"
for r in $LADDER; do check_uints "RATE:$r"; done

need_commands "(this script installs nothing itself.)" "$PYTHON:python3" "$CC:gcc" curl:curl \
    pgrep:procps timeout:coreutils
[[ -x $MOSQUITTO ]] || die "mosquitto not found at $MOSQUITTO (apt-get install -y mosquitto, or set MOSQUITTO=/path/to/mosquitto)"
find_butlerd
bench_tmp butlerd-udpbench

mosq_pid=
mosq_port=
blast_pid=

# On exit: the sender, butlerd, then mosquitto (so butlerd does not log the
# broker going away), then lib.sh's cleanup (sink, leftovers, temp dir).
udp_cleanup() {
    local rc=$?
    set +e
    if [[ -n $blast_pid ]]; then
        kill -TERM "$blast_pid" 2>/dev/null
        wait "$blast_pid" 2>/dev/null
        blast_pid=
    fi
    stop_group butlerd "$butlerd_pid" "${butlerd_workers[@]}"
    butlerd_pid=
    [[ -n $shm_path && -e $shm_path ]] && rm -f -- "$shm_path"
    stop_group mosquitto "$mosq_pid"
    mosq_pid=
    (exit "$rc")
    cleanup
}
trap udp_cleanup EXIT

copy_butlerd
info "butlerd: $BUTLERD_SRC, modified $(date -r "$BUTLERD_SRC" '+%Y-%m-%d %H:%M:%S %z'), sha256 $(sha256sum <"$BUTLERD" | cut -c1-12) (a private copy is run)"

# ---------------------------------------------------------------- tools
info "compiling udp_sink.c and udp_blast.c with $CC -O2"
for t in udp_sink udp_blast; do
    "$CC" -O2 -Wall -o "$tmp/$t" "$script_dir/$t.c" 2>"$tmp/$t.cc.log" || {
        cat "$tmp/$t.cc.log" >&2
        die "could not compile $script_dir/$t.c"
    }
done

# The datagrams: the same session stream for the sink and both session
# columns; task events tagged with the script's PID so that the count of
# butlerd's log lines cannot pick up anything else.
task_tag=T$$
"$PYTHON" "$FLOOD" gen --count "$COUNT" --kind session --tag S >"$tmp/session.dgrams"
"$PYTHON" "$FLOOD" gen --count "$COUNT" --kind task --tag "$task_tag" >"$tmp/task.dgrams"

# ---------------------------------------------------------------- helpers
udp_ports() {
    "$PYTHON" - <<'PY'
import socket
ss = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
PY
}

# udp_sock_stat PORT: "RX_QUEUE_BYTES DROPS" of the UDP socket bound to
# 127.0.0.1:PORT, from /proc/net/udp ("- -" if there is none).
udp_sock_stat() {
    local hex rxq drops
    hex=$(printf '%04X' "$1")
    read -r rxq drops < <(awk -v a="0100007F:$hex" '
        $2 == a { split($5, q, ":"); print q[2], $NF; found = 1; exit }
        END { if (!found) print "- -" }' /proc/net/udp 2>/dev/null || echo "- -")
    if [[ $rxq =~ ^[0-9A-Fa-f]+$ ]]; then
        echo "$((16#$rxq)) $drops"
    else
        echo "- -"
    fi
}

# wait_drained PORT: until the socket's receive queue is empty (at most 10 s).
wait_drained() {
    local rxq drops i
    for ((i = 0; i < 100; i++)); do
        read -r rxq drops < <(udp_sock_stat "$1")
        [[ $rxq == 0 || $rxq == - ]] && return 0
        sleep 0.1
    done
    warn "the receive queue of 127.0.0.1:$1 still holds $rxq bytes after 10 s"
}

# blast PORT RATE FILE: the paced sender, in the background so that Ctrl-C
# is handled at once; bounded by timeout. Sets sent_rate and send_errors.
blast() {
    local out=$tmp/blast.out rc=0 secs
    secs=$((COUNT / $2 + 30))
    timeout -k 5 "$secs" "$tmp/udp_blast" -p "$1" -r "$2" -f "$3" -n "$COUNT" -b "$BATCH" \
        >"$out" 2>&1 &
    blast_pid=$!
    wait "$blast_pid" || rc=$?
    blast_pid=
    if ((rc != 0)) || ! grep -q '^sent ' "$out"; then
        cat "$out" >&2
        die "udp_blast failed (exit status $rc)"
    fi
    read -r _ _ _ sent_rate _ send_errors <"$out"
    sent_rate=$(printf '%.0f' "$sent_rate")
    ((send_errors == 0)) || warn "the sender had $send_errors send errors (those datagrams were not sent)"
}

# cpu_ns PID: CPU time (ns) used so far by all threads of PID, from
# /proc/PID/task/TID/schedstat (0 if it is gone).
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

# per_dgram NS COUNT: microseconds per datagram, 2 decimals ("-" if COUNT is 0).
per_dgram() {
    awk -v n="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.2f", n / c / 1000; else printf "-" }'
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
    { grep -o "$task_tag-[0-9]*" "$tmp/butlerd.log" || true; } | sort -u | wc -l
}

# butlerd_stats PATH...: values from `butlerd -S` (dotted paths into its
# JSON, e.g. mqtt.published), on one line.
butlerd_stats() {
    timeout 10 "$BUTLERD" -S -c "$tmp/butlerd.conf" 2>/dev/null | "$PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
out = []
for p in sys.argv[1:]:
    v = d
    for k in p.split("."):
        v = v[k]
    out.append(str(v))
print(" ".join(out))' "$@"
}

# wait_mqtt_idle: until butlerd has received back (through its qliksense/#
# subscription) no new message for 1 s, at most 30 s: its publishing is over.
wait_mqtt_idle() {
    local v last=-1 same=0 i
    for ((i = 0; i < 150; i++)); do
        v=$(butlerd_stats mqtt.received || true)
        if [[ $v == "$last" ]]; then
            same=$((same + 1))
            ((same < 5)) || return 0
        else
            same=0
        fi
        last=$v
        sleep 0.2
    done
}

# ---------------------------------------------------------------- mosquitto
start_mosquitto() {
    local i
    read -r mosq_port _ < <(free_ports "$PYTHON")
    {
        echo "# written by bench/$prog"
        echo "listener $mosq_port 127.0.0.1"
        echo "allow_anonymous true"
        echo "persistence false"
        echo "log_dest file $tmp/mosquitto.log"
        echo "log_type error"
        echo "log_type warning"
        echo "log_type notice"
        echo "log_type information"
        echo "connection_messages true"
        # as root, mosquitto 2 would switch to user "mosquitto", which cannot
        # write the log in our temporary directory
        if ((EUID == 0)); then echo "user $(id -un)"; fi
    } >"$tmp/mosquitto.conf"
    "$MOSQUITTO" -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.out" 2>&1 &
    mosq_pid=$!
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$mosq_pid" 2>/dev/null; then
            cat "$tmp/mosquitto.out" "$tmp/mosquitto.log" >&2 2>/dev/null || true
            die "mosquitto exited during start-up"
        fi
        if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$mosq_port" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "mosquitto did not accept connections on 127.0.0.1:$mosq_port within 10 s"
}

# ---------------------------------------------------------------- butlerd
# start_udp_butlerd LEVEL [mqtt]: fresh butlerd with both UDP sockets (and
# MQTT to our mosquitto); sets port_b, port_t, port_s.
start_udp_butlerd() {
    local mqtt_lines="" i c
    read -r port_b _ < <(free_ports "$PYTHON")
    read -r port_t port_s < <(udp_ports)
    shm_name=/butlerd-udpbench-$$
    shm_path=/dev/shm${shm_name}.$port_b
    if [[ ${2:-} == mqtt ]]; then
        mqtt_lines="
  mqttConfig = {
    enable = true;
    brokerHost = \"127.0.0.1\";
    brokerPort = $mosq_port;
  };"
    fi
    write_butlerd_conf "$port_b" "$WORKERS" "$1" "    activeUserCount = true;
    activeUsers = true;" "  udpServerConfig = {
    enable = true;
    serverHost = \"127.0.0.1\";
    portTaskFailure = $port_t;
    portSessionConnectionEvents = $port_s;
    messageQueue = { maxSize = $((COUNT + 10)); maxConcurrent = 10; };
  };$mqtt_lines" "    maxActiveUsers = $((COUNT + 10));"
    start_butlerd "http://127.0.0.1:$port_b/v4/butlerping"
    if [[ ${2:-} == mqtt ]]; then
        # publications made before the connection would be dropped, not measured
        for ((i = 0; i < 100; i++)); do
            c=$(butlerd_stats mqtt.connects || true)
            ((${c:-0} >= 1)) && return 0
            sleep 0.1
        done
        tail -n 20 "$tmp/butlerd.log" >&2
        die "butlerd did not connect to mosquitto on 127.0.0.1:$mosq_port within 10 s"
    fi
}

stop_udp_butlerd() {
    stop_group butlerd "$butlerd_pid" "${butlerd_workers[@]}"
    butlerd_pid=
    [[ -e $shm_path ]] && rm -f -- "$shm_path"
    true
}

# ---------------------------------------------------------------- receivers
# Each run_* sets got (datagrams/events that arrived), sent_rate, drops (the
# kernel's count of datagrams dropped at the receiving socket, queue full),
# cpu (CPU time of the receiving process, all threads, from the start of the
# sending until it was done, per datagram it read, in microseconds; for
# butlerd the master, which does all UDP and MQTT work) and extra (more
# detail for the step's line).

run_sink() {
    local i port
    rm -f "$tmp/sink.ready"
    "$tmp/udp_sink" 0 "$tmp/sink.ready" 600 >"$tmp/sink.out" 2>&1 &
    client_pid=$!
    for ((i = 0; i < 100; i++)); do
        [[ -e $tmp/sink.ready ]] && break
        kill -0 "$client_pid" 2>/dev/null || break
        sleep 0.05
    done
    [[ -e $tmp/sink.ready ]] || {
        cat "$tmp/sink.out" >&2
        die "udp_sink did not start"
    }
    read -r port sink_rcvbuf <"$tmp/sink.ready"
    c0=$(cpu_ns "$client_pid")
    blast "$port" "$1" "$tmp/session.dgrams"
    wait_drained "$port"
    c1=$(cpu_ns "$client_pid")
    read -r _ drops < <(udp_sock_stat "$port")
    stop_client
    got=$(awk '$1 == "received" { print $2 }' "$tmp/sink.out")
    [[ -n $got ]] || {
        cat "$tmp/sink.out" >&2
        die "udp_sink printed no count"
    }
    cpu=$(per_dgram $((c1 - c0)) "$got")
    extra="  (SO_RCVBUF $sink_rcvbuf bytes)"
}

run_session() { # RATE [mqtt]
    local rcvd pub nc pf echo
    start_udp_butlerd warn "${2:-}"
    c0=$(cpu_ns "$butlerd_pid")
    blast "$port_s" "$1" "$tmp/session.dgrams"
    got=$(wait_stable count_users)
    [[ ${2:-} != mqtt ]] || wait_mqtt_idle
    c1=$(cpu_ns "$butlerd_pid")
    check_alive butlerd "$butlerd_pid" "$tmp/butlerd.log"
    read -r _ drops < <(udp_sock_stat "$port_s")
    if [[ ${2:-} == mqtt ]]; then
        read -r rcvd pub nc pf echo < <(butlerd_stats udp.sessionEvents.received mqtt.published \
            mqtt.notConnected mqtt.publishFailed mqtt.received || echo "? ? ? ? ?")
        extra="  butlerd read $rcvd; MQTT published $pub, echoed back $echo, not connected $nc, failed $pf"
        if [[ $nc != 0 || $pf != 0 ]]; then
            warn "butlerd dropped MQTT publications (not connected $nc, failed $pf)"
        fi
    else
        read -r rcvd < <(butlerd_stats udp.sessionEvents.received || echo "?")
        extra="  butlerd read $rcvd"
    fi
    cpu=$(per_dgram $((c1 - c0)) "$rcvd")
    warn_log butlerd "log" "$tmp/butlerd.log"
    stop_udp_butlerd
}

run_task() {
    local rcvd
    start_udp_butlerd info
    c0=$(cpu_ns "$butlerd_pid")
    blast "$port_t" "$1" "$tmp/task.dgrams"
    got=$(wait_stable count_task_lines)
    c1=$(cpu_ns "$butlerd_pid")
    check_alive butlerd "$butlerd_pid" "$tmp/butlerd.log"
    read -r _ drops < <(udp_sock_stat "$port_t")
    read -r rcvd < <(butlerd_stats udp.taskEvents.received || echo "?")
    extra="  butlerd read $rcvd"
    cpu=$(per_dgram $((c1 - c0)) "$rcvd")
    stop_udp_butlerd
}

# ---------------------------------------------------------------- the ladder
cols=(sink sess mqtt task)
declare -A title=([sink]="C sink" [sess]="session" [mqtt]="session+MQTT" [task]="task")
declare -A res=() ach=() best=() best_step=() lossy=() short=() cpu_us=()
for c in "${cols[@]}"; do
    best[$c]=0
    best_step[$c]=0
    lossy[$c]=0
done

start_mosquitto
info "temp dir $tmp; $COUNT datagrams per step; ladder: $LADDER; butlerd $WORKERS worker(s); sender batches of $BATCH; mosquitto $("$MOSQUITTO" -h 2>&1 | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p') on 127.0.0.1:$mosq_port"

for rate in $LADDER; do
    info "offered $rate/s"
    for c in "${cols[@]}"; do
        ((!lossy[$c])) || continue
        case $c in
            sink) run_sink "$rate" ;;
            sess) run_session "$rate" ;;
            mqtt) run_session "$rate" mqtt ;;
            task) run_task "$rate" ;;
        esac
        res[$c.$rate]=$got
        ach[$c.$rate]=$sent_rate
        cpu_us[$c.$rate]=$cpu
        if ((sent_rate * 100 < rate * 95)); then short[$c.$rate]=1; fi
        printf '   %-13s %7s/%s  sent at %7s/s%s  kernel drops %s  CPU %s us/datagram%s\n' "${title[$c]}" \
            "$got" "$COUNT" "$sent_rate" "$( ((${short[$c.$rate]:-0})) && echo ' (sender-limited)')" \
            "$drops" "$cpu" "$extra"
        if ((got == COUNT)); then
            # lossless at what was really offered
            eff=$((sent_rate < rate ? sent_rate : rate))
            if ((eff > best[$c])); then
                best[$c]=$eff
                best_step[$c]=$rate
            fi
        else
            lossy[$c]=1
        fi
    done
    all=1
    for c in "${cols[@]}"; do ((lossy[$c])) || all=0; done
    ((all)) && break
done

# ---------------------------------------------------------------- report
echo
host_line | sed 's/wrk on the same host/sender (udp_blast) on the same host/'
printf '%-10s' "offered/s"
for c in "${cols[@]}"; do printf ' %15s' "${title[$c]}"; done
echo
notes=()
for rate in $LADDER; do
    line=$(printf '%-10s' "$rate")
    any=0
    for c in "${cols[@]}"; do
        cell=-
        if [[ -n ${res[$c.$rate]:-} ]]; then
            any=1
            cell=${res[$c.$rate]}/$COUNT
            if ((${short[$c.$rate]:-0})); then
                cell+="*"
                notes+=("$rate ${title[$c]}: ${ach[$c.$rate]}/s")
            fi
        fi
        line+=$(printf ' %15s' "$cell")
    done
    ((any)) && echo "$line"
done
if ((${#notes[@]} > 0)); then
    printf '* the sender reached only (offered, receiver: achieved):\n'
    printf '    %s\n' "${notes[@]}"
fi
echo
echo "CPU time per datagram read, us (receiving process, all threads; butlerd: the master):"
printf '%-10s' "offered/s"
for c in "${cols[@]}"; do printf ' %15s' "${title[$c]}"; done
echo
for rate in $LADDER; do
    [[ -n ${res[sink.$rate]:-}${res[sess.$rate]:-}${res[mqtt.$rate]:-}${res[task.$rate]:-} ]] || continue
    printf '%-10s' "$rate"
    for c in "${cols[@]}"; do printf ' %15s' "${cpu_us[$c.$rate]:--}"; done
    echo
done
echo
if ((!lossy[sink])); then
    warn "the C sink lost nothing up to the top of the ladder: its lossless rate is a lower bound, and the ratios below upper bounds; extend the ladder (-l) if the sender can"
fi
for c in "${cols[@]}"; do
    ((lossy[$c])) || [[ $c == sink ]] || warn "${title[$c]} lost nothing up to the top of the ladder: extend it (-l)"
done
for c in "${cols[@]}"; do
    x="lossless rate ${title[$c]}: ${best[$c]}"
    if ((best_step[$c] && best[$c] < best_step[$c])); then
        x+=" (step ${best_step[$c]}, sender-limited)"
    fi
    ((lossy[$c])) || x+=" (no loss up to the top of the ladder)"
    [[ $c != sess ]] || x+=" (goal >= 100000: $( ((best[sess] >= 100000)) && echo met || echo NOT met))"
    echo "$x"
done
# ratio_line COL: butlerd's lossless rate over the sink's, and what it means
# when one side lost nothing (its lossless rate is then only a lower bound).
ratio_line() {
    local c=$1 r note=""
    r=$(ratio "${best[$c]}" "${best[sink]}")
    if ((!lossy[sink] && !lossy[$c])); then
        r=n/a
        note=" (neither lost a datagram up to the top of the ladder: only the sender's limit was measured)"
    elif ((!lossy[sink])); then
        note=" (an upper bound: the sink lost nothing up to the top of the ladder)"
    elif ((!lossy[$c])); then
        note=" (a lower bound: ${title[$c]} lost nothing up to the top of the ladder)"
    fi
    echo "ratio ${title[$c]}/sink: $r$note"
}
ratio_line sess
ratio_line mqtt
ratio_line task
first=${LADDER%% *}
x="CPU per datagram at $first/s:"
for c in "${cols[@]}"; do
    v=${cpu_us[$c.$first]:--}
    x+=" ${title[$c]} $v us"
    if [[ $c != sink && $v != - && ${cpu_us[sink.$first]:--} != - ]]; then
        x+=" ($(awk -v a="$v" -v b="${cpu_us[sink.$first]}" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }') x sink)"
    fi
    [[ $c == task ]] || x+=","
done
echo "$x"
