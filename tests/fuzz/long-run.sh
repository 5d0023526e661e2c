#!/bin/sh
# The long fuzzing runs recorded in README.md: each harness in turn (the machine is
# shared, so one at a time) until RUNS executions or SECONDS seconds, whichever
# comes first, then one summary line per harness.
#   tests/fuzz/long-run.sh BUILDDIR OUTDIR [SECONDS [RUNS [NAMES...]]]
# BUILDDIR is a build configured with CC=clang ./configure --enable-fuzzing. The
# corpus grown by a run stays in OUTDIR/NAME, crashes go to OUTDIR/NAME-crash-*.
set -u
build=$1 out=$2 secs=${3:-3600} runs=${4:-10000000}
shift 4 2>/dev/null || shift $#
src=$(cd "$(dirname "$0")" && pwd)
names=${*:-qs schema task_body qrs_filter udp base62 fspath cfg engine}
mkdir -p "$out"
for n in $names; do
    mkdir -p "$out/$n"
    start=$(date +%s)
    LSAN_OPTIONS=suppressions=$src/lsan.supp \
        "$build/tests/fuzz/fuzz_$n" -max_total_time="$secs" -runs="$runs" -print_final_stats=1 \
        -artifact_prefix="$out/$n-" $(cat "$src/$n.options" 2>/dev/null) \
        "$out/$n" "$src/corpus/$n" >"$out/$n.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$n.log")
    cov=$(grep -E '^#[0-9]+' "$out/$n.log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    crashes=$(ls "$out/$n"-crash-* "$out/$n"-leak-* "$out/$n"-timeout-* "$out/$n"-oom-* 2>/dev/null | wc -l)
    echo "$n: rc=$rc execs=${execs:-?} cov=${cov:-?} seconds=$(( $(date +%s) - start )) artifacts=$crashes corpus=$(ls "$out/$n" | wc -l)"
done
