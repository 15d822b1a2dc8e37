#!/bin/sh
# Builds crawlab-node twice and runs every test against each build:
#   build       the static release binary (what ships)
#   build-asan  AddressSanitizer + UndefinedBehaviorSanitizer (sanitizers need a dynamic build)
# Installs missing Debian packages first (as root). Exits non-zero if any test fails.
set -eu
cd "$(dirname "$0")/.."
scripts/bootstrap.sh build build-asan

# UBSan findings fail the run; LeakSanitizer ignores what gRPC keeps for the process lifetime.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0"

status=0
for dir in build build-asan; do
    echo "== $dir"
    ninja -C "$dir"
    meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
done

# One closing line over both runs, from meson's own JSON record of each test.
/usr/bin/python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line).get("result")
        if r == "OK":
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
