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

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

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

parse_opts 'w:d:c:t:r:' "$@"

check_opts WORKERS DURATION CONNECTIONS THREADS ROUNDS

# ---------------------------------------------------------------- requirements
need_wrk_nginx

# ---------------------------------------------------------------- state/cleanup
bench_tmp butlerd-bench

# ---------------------------------------------------------------- start butlerd
butlerd_nginx_ports butlerd-bench
write_butlerd_conf "$port_b" "$WORKERS" warn "" "" ""
start_butlerd_workers "$url_b"

# The exact body and content type butlerd serves; nginx will serve the same.
fetch_butlerd_body "$url_b"
info "butlerd answers $body_len bytes, Content-Type: $ctype"

# ---------------------------------------------------------------- start nginx
start_nginx "$port_n" "$PATH_PING" "$WORKERS" "$CONNECTIONS"
info "both servers return the same $body_len-byte body"

# ---------------------------------------------------------------- load
# test_args NAME: sets t_url, t_pid, t_log, t_opts (see lib.sh).
test_args() {
    t_opts=()
    if [[ $1 == butlerd ]]; then
        t_url=$url_b t_pid=$butlerd_pid t_log=$tmp/butlerd.log
    else
        t_url=$url_n t_pid=$nginx_pid t_log=$tmp/nginx-error.log
    fi
}

info "warm-up: ${WARMUP} s each"
warm_up butlerd nginx

info "measuring: $ROUNDS x ${DURATION} s per server, alternating; wrk -t $THREADS -c $CONNECTIONS"
measure 8 butlerd nginx

read -r b_rps _ <<<"${best_line[butlerd]}"
read -r n_rps _ <<<"${best_line[nginx]}"
ratio=$(ratio "$b_rps" "$n_rps")

# ---------------------------------------------------------------- report
echo
echo "GET $PATH_PING, $body_len-byte body; wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s, keep-alive;"
echo "$WORKERS workers each; best of $ROUNDS runs (the latency columns belong to that run)"
host_line
echo
result_table butlerd nginx

for name in butlerd nginx; do
    warn_runs "$name" "either something else was using the CPUs or $name's throughput is unsteady; the ratio is uncertain, rerun on a quiet machine or with more rounds (-r 5)"
done
warn_log butlerd log "$tmp/butlerd.log"
warn_log nginx "error log" "$tmp/nginx-error.log"

report_servers_memory

echo "requests/s butlerd: $(printf '%.1f' "$b_rps")"
echo "requests/s nginx: $(printf '%.1f' "$n_rps")"
echo "ratio butlerd/nginx: $ratio"
echo "$butlerd_mem"
echo "$nginx_mem"
