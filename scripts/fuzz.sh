#!/bin/sh
# Builds the libFuzzer targets of tests/fuzz (build-fuzz: clang, ASan + UBSan) and runs each one for
# a number of seconds. Exits non-zero when a target finds a crash, a leak or undefined behaviour;
# the input that did it is kept in build-fuzz/artifacts/.
#
# usage: scripts/fuzz.sh [seconds] [target...]    (default: 30 seconds, every target)
#   FUZZ_PARALLEL=1   run the targets at the same time instead of one after the other
#
# The seed corpora in tests/fuzz/corpus/<target>/ are only read; what a run learns goes to
# build-fuzz/corpus/<target>/, so the next run starts from there.
set -eu
cd "$(dirname "$0")/.."

seconds=${1:-30}
[ $# -gt 0 ] && shift
targets=${*:-fuzz_requests fuzz_lines fuzz_ingest}
parallel=${FUZZ_PARALLEL:-0}

scripts/bootstrap.sh build-fuzz
ninja_targets=""
for t in $targets; do ninja_targets="$ninja_targets tests/fuzz/$t"; done
# shellcheck disable=SC2086 # one word per target
ninja -C build-fuzz $ninja_targets

export ASAN_OPTIONS="detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
mkdir -p build-fuzz/artifacts build-fuzz/logs

# One target: fuzz for $seconds, then print libFuzzer's final statistics.
run() {
    t=$1
    mkdir -p "build-fuzz/corpus/$t"
    dict=""
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
    # shellcheck disable=SC2086
    if "build-fuzz/tests/fuzz/$t" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="build-fuzz/artifacts/$t-" $dict \
        "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"build-fuzz/logs/$t.log" 2>&1; then
        echo "== $t: ok"
        grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' \
            "build-fuzz/logs/$t.log" || true
    else
        echo "== $t: FAILED (build-fuzz/logs/$t.log, artifacts in build-fuzz/artifacts/)"
        tail -n 40 "build-fuzz/logs/$t.log"
        return 1
    fi
}

status=0
if [ "$parallel" = 1 ]; then
    pids=""
    for t in $targets; do
        run "$t" >"build-fuzz/logs/$t.summary" 2>&1 &
        pids="$pids $!"
    done
    for p in $pids; do wait "$p" || status=1; done
    for t in $targets; do cat "build-fuzz/logs/$t.summary"; done
else
    for t in $targets; do run "$t" || status=1; done
fi
exit $status
