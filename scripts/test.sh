#!/bin/sh
# Builds crawlab-node and runs every test:
#   build       the static release binary (what ships): unit and integration tests, and
#               bench/bench.py --quick as a smoke test (suite bench: it fails on errors, never on
#               a figure; bench/meson.build defines it in unsanitized builds only)
#   build-asan  AddressSanitizer + UndefinedBehaviorSanitizer (sanitizers need a dynamic build):
#               the same tests again
#   build, on PostgreSQL  the integration tests that run a master (suite 'stores') once more
#               with every master's rows in PostgreSQL (CRAWLAB_IT_STORE=postgres: Debian's
#               server, started by the tests as an unprivileged user), when libpq is built in
#   build-fuzz  the libFuzzer targets, each run for FUZZ_SECONDS (default 30) from its seed corpus,
#               all at once (FUZZ_PARALLEL, default 1: they share the cores for those seconds)
# Source checks come first (format, layer includes, references: scripts/check-source.sh); both
# builds are configured with -Dwerror=true, so a warning fails the run.
# Installs missing Debian packages first (as root). Exits non-zero if any test fails.
set -eu
cd "$(dirname "$0")/.."
scripts/bootstrap.sh build build-asan build-fuzz

status=0
echo "== source checks"
scripts/check-source.sh || status=1

# UBSan findings fail the run; LeakSanitizer ignores what gRPC keeps for the process lifetime.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0"

for dir in build build-asan; do
    echo "== $dir"
    ninja -C "$dir"
    meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
done

logs="build/meson-logs/testlog.json build-asan/meson-logs/testlog.json"
if [ -x build/tests/unit/test_store_pg ]; then
    echo "== build, every master on PostgreSQL"
    CRAWLAB_IT_STORE=postgres meson test -C build --suite stores --print-errorlogs \
        --num-processes 2 --logbase testlog-postgres || status=1
    logs="$logs build/meson-logs/testlog-postgres.json"
fi

echo "== build-fuzz"
fuzz=passed
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1} scripts/fuzz.sh "${FUZZ_SECONDS:-30}" || { fuzz=FAILED; status=1; }

# One closing line over every run, from meson's own JSON record of each test.
/usr/bin/python3 - "$fuzz" $logs <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[2:]:
    for line in open(path):
        r = json.loads(line).get("result")
        if r == "OK":
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"fuzzing: {sys.argv[1]}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
