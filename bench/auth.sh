#!/usr/bin/env bash
# bench/auth.sh: what REST security costs. In one run, with wrk and keep-alive:
#   1. GET /v4/butlerping with an API token checked (butlerd.auth on, scope
#      "ping") against the same without authentication: the cost of auth;
#   2. the same ping over HTTPS against nginx over HTTPS with the same
#      certificate and key: the cost of butlerd's TLS (libmicrohttpd + GnuTLS)
#      next to nginx's (OpenSSL).
#
# Usage: bench/auth.sh [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS]
#                      [-r ROUNDS] [-n TOKENS]
# Needs the Debian packages wrk and nginx-light (or nginx), plus curl, openssl,
# python3 and procps. The butlerd binary is $BUTLERD, or ../src/butlerd next to
# this script. See bench/README.md.

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

TOKENS=10

usage() {
    cat <<EOF
Usage: $0 [-w WORKERS] [-d SECONDS] [-c CONNECTIONS] [-t THREADS] [-r ROUNDS] [-n TOKENS]

Measures GET $PATH_PING on three butlerd instances (plain HTTP, plain HTTP
with an API token checked, HTTPS) and on nginx over HTTPS with the same
certificate, alternating wrk runs, and prints requests/s and two ratios:
token/plain and butlerd-https/nginx-https.

  -w WORKERS      workers of each butlerd and nginx worker_processes (default $WORKERS)
  -d SECONDS      length of each measured wrk run (default $DURATION)
  -c CONNECTIONS  wrk connections, kept alive (default $CONNECTIONS)
  -t THREADS      wrk threads (default $THREADS)
  -r ROUNDS       measured runs per server, alternating (default $ROUNDS)
  -n TOKENS       tokens in butlerd.auth.tokens; the one used is the last (default $TOKENS)

Environment: BUTLERD=path to the binary (default $script_dir/../src/butlerd)
EOF
}

# own_opt LETTER VALUE: this script's options (parse_opts in lib.sh).
own_opt() {
    case $1 in
        n) TOKENS=$2 ;;
        *) return 1 ;;
    esac
}
parse_opts 'w:d:c:t:r:n:' "$@"
check_opts WORKERS DURATION CONNECTIONS THREADS ROUNDS TOKENS
((TOKENS >= 1)) || die "-n needs at least one token"

more_commands=(openssl:openssl)
need_wrk_nginx
bench_tmp butlerd-auth-bench

# The two extra butlerd instances (token, https); lib.sh's cleanup stops the
# first one (butlerd_pid) and nginx.
extra_pids=()
extra_workers=()
auth_cleanup() {
    local rc=$? i
    for i in "${!extra_pids[@]}"; do
        # shellcheck disable=SC2086 # a space-separated list of worker pids
        stop_group butlerd "${extra_pids[$i]}" ${extra_workers[$i]}
    done
    rm -f -- /dev/shm/butlerd-abench-$$-*
    (exit "$rc")
    cleanup
}
trap auth_cleanup EXIT

# ---------------------------------------------------------------- material
info "temp dir $tmp; making a certificate and $TOKENS tokens"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 || die "openssl could not make a certificate"
chmod 600 "$tmp/key.pem"
token_list=""
for ((i = 1; i <= TOKENS; i++)); do
    out=$("$BUTLERD" -k "bench$i") || die "butlerd -k failed"
    token=$(sed -n 's/^token: //p' <<<"$out")
    hash=$(sed -n 's/.*sha256 = "\([0-9a-f]*\)".*/\1/p' <<<"$out")
    token_list+="${token_list:+, }{ name = \"bench$i\"; sha256 = \"$hash\"; scopes = [ \"ping\" ]; }"
done

# ---------------------------------------------------------------- servers
read -r port_plain port_token < <(free_ports python3)
read -r port_https port_nginx < <(free_ports python3)

# conf NAME PORT BUTLER_EXTRA BUTLERD_EXTRA: writes $tmp/NAME.conf
conf() {
    cat >"$tmp/$1.conf" <<EOF
# written by bench/$prog
Butler = {
  restServerConfig = { enable = true; serverHost = "127.0.0.1"; serverPort = $2; $3 };
  restServerEndpointsEnable = { butlerping = true; };
};
butlerd = {
  workers = $WORKERS;
  logging = { destination = "stderr"; level = "warn"; };
  kvPersistence = { file = ""; };
  shm = { name = "/butlerd-abench-$$-$1"; };
  $4
};
EOF
}
conf plain "$port_plain" "" ""
conf token "$port_token" "" "auth = { enable = true; tokens = ( $token_list ); };"
conf https "$port_https" "tls = { enable = true; cert = \"$tmp/cert.pem\"; key = \"$tmp/key.pem\"; };" ""
chmod 600 "$tmp/token.conf"

# start NAME URL [HEADER]: starts one butlerd, waits until URL answers 200;
# sets started_pid and started_workers.
start() {
    local name=$1 url=$2 pid i
    local -a hdr=()
    [[ -z ${3:-} ]] || hdr=(-H "$3")
    "$BUTLERD" -f -c "$tmp/$name.conf" 2>"$tmp/$name.log" &
    pid=$!
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$tmp/$name.log" >&2
            die "butlerd ($name) did not start"
        fi
        if curl -kfsS --max-time 1 -o /dev/null "${hdr[@]}" "$url" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    ((i < 100)) || die "butlerd ($name) did not answer $url"
    started_pid=$pid
    started_workers=$(children_of "$pid" | tr '\n' ' ')
}

url_plain="http://127.0.0.1:$port_plain$PATH_PING"
url_token="http://127.0.0.1:$port_token$PATH_PING"
url_https="https://127.0.0.1:$port_https$PATH_PING"
auth_header="Authorization: Bearer $token"

info "starting butlerd x 3 ($BUTLERD, $WORKERS workers each)"
start plain "$url_plain"
butlerd_pid=$started_pid
mapfile -t butlerd_workers < <(children_of "$butlerd_pid")
start token "$url_token" "$auth_header"
extra_pids+=("$started_pid")
extra_workers+=("$started_workers")
token_pid=$started_pid
start https "$url_https"
extra_pids+=("$started_pid")
extra_workers+=("$started_workers")
https_pid=$started_pid

code=$(curl -s -o /dev/null -w '%{http_code}' "$url_token")
[[ $code == 401 ]] || die "the token instance answered $code without a token, not 401"

fetch_butlerd_body "$url_https"
nginx_tls_cert=$tmp/cert.pem
nginx_tls_key=$tmp/key.pem
start_nginx "$port_nginx" "$PATH_PING" "$WORKERS" "$CONNECTIONS"
url_nginx="https://127.0.0.1:$port_nginx$PATH_PING"
info "nginx serves the same $body_len-byte body over HTTPS"

# test_args NAME: t_url, t_pid, t_log, t_opts for warm_up and measure (lib.sh).
test_args() {
    t_opts=()
    case $1 in
        plain) t_url=$url_plain t_pid=$butlerd_pid t_log=$tmp/plain.log ;;
        token)
            t_url=$url_token t_pid=$token_pid t_log=$tmp/token.log
            t_opts=(-H "$auth_header")
            ;;
        https) t_url=$url_https t_pid=$https_pid t_log=$tmp/https.log ;;
        nginx-https) t_url=$url_nginx t_pid=$nginx_pid t_log=$tmp/nginx-error.log ;;
    esac
}

names=(plain token https nginx-https)
info "warm-up: ${WARMUP} s each"
warm_up "${names[@]}"
info "measuring: $ROUNDS x ${DURATION} s per server, alternating; wrk -t $THREADS -c $CONNECTIONS"
measure 11 "${names[@]}"

rps() {
    local r
    read -r r _ <<<"${best_line[$1]}"
    echo "$r"
}
ratio_auth=$(ratio "$(rps token)" "$(rps plain)")
ratio_tls=$(ratio "$(rps https)" "$(rps nginx-https)")

echo
echo "GET $PATH_PING, $body_len-byte body; wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s, keep-alive;"
echo "$WORKERS workers each; $TOKENS tokens configured; best of $ROUNDS runs"
host_line
echo
result_table "${names[@]}"
for name in "${names[@]}"; do
    warn_runs "$name" "something else was using the CPUs or $name is unsteady; rerun on a quiet machine or with -r 5"
done
for name in plain token https; do
    warn_log "butlerd ($name)" log "$tmp/$name.log"
done
warn_log nginx "error log" "$tmp/nginx-error.log"

echo "requests/s plain: $(printf '%.1f' "$(rps plain)")"
echo "requests/s token: $(printf '%.1f' "$(rps token)")"
echo "requests/s https: $(printf '%.1f' "$(rps https)")"
echo "requests/s nginx-https: $(printf '%.1f' "$(rps nginx-https)")"
echo "ratio token/plain (cost of the token check): $ratio_auth"
echo "ratio butlerd-https/nginx-https: $ratio_tls"
