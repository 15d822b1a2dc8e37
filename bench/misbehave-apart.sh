#!/bin/sh
# Misbehaving workers in a load generator of their own: SETS times, a fresh master on 127.0.0.1
# with 1,000 well-behaved workers (bench/loadgen, 5 s heartbeats, 30 s timed), then a fresh master
# with 900 well-behaved workers in one generator and 100 misbehaving ones of KIND in a second
# generator process, each connecting from its own loopback address (127.0.1.1 and up), the master
# with --max-connection-rate=5. With both kinds in one generator, the misbehaving workers' loop
# delays the well-behaved workers' calls and their latency is not the master's alone; apart, it is
# what the master and the machine give them. Prints one line per run: master CPU (% of a core),
# the well-behaved workers' heartbeat p50 / p99 and errors, and the misbehaving generator's own CPU
# (% of a core) and what the master refused. Every process it starts is stopped by its pid.
#
#     bench/misbehave-apart.sh [SETS [KIND]]      (3, reconnect; KIND as loadgen's --misbehave-kind)
#
# The binaries: CRAWLAB_NODE_BIN (build/src/crawlab-node) and CRAWLAB_LOADGEN_BIN
# (build/bench/loadgen). Raw outputs go to a new directory under $TMPDIR or /tmp, named on the
# last line.
set -eu

sets=${1:-3} kind=${2:-reconnect}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CRAWLAB_NODE_BIN:-$root/build/src/crawlab-node}
loadgen=${CRAWLAB_LOADGEN_BIN:-$root/build/bench/loadgen}
. "$root/bench/lib.sh"
out=$(mktemp -d "${TMPDIR:-/tmp}/misbehave-apart.XXXXXX")
pids=""
scratch=$out/data
bench_traps

one_run() { # name, 0 or 1 (misbehaving generator)
    run=$out/$1 apart=$2
    port=$(free_port)
    rm -rf "$out/data"
    limit=""
    [ "$apart" = 1 ] && limit=--max-connection-rate=5
    "$bin" --role=master --listen="127.0.0.1:$port" --data-dir="$out/data" \
        --heartbeat-interval=5s $limit >"$run.master.log" 2>&1 &
    master=$!
    pids=$master
    wait_for "$run.master.log" "master listening on" 60
    good=1000 bad=""
    if [ "$apart" = 1 ]; then
        "$loadgen" --master="127.0.0.1:$port" --auth-key-file="$out/data/auth.key" \
            --workers=100 --first-worker=900 --misbehave=1 --misbehave-kind="$kind" \
            --misbehave-source=127.0.1.1 --duration=3600 >"$run.bad.json" 2>"$run.bad.log" &
        bad=$!
        pids="$pids $bad"
        wait_for "$run.bad.log" "timing" 60
        good=900
    fi
    t0=$(date +%s.%N)
    "$loadgen" --master="127.0.0.1:$port" --auth-key-file="$out/data/auth.key" --workers=$good \
        --heartbeat-interval=5 --duration=30 --master-pid="$master" >"$run.json" 2>"$run.log"
    bad_cpu=-
    if [ -n "$bad" ]; then
        # its CPU over the well-behaved generator's whole run (set-up and window)
        bad_cpu=$(cpu_of "$bad")
        bad_cpu=$(echo "scale=1; $bad_cpu * 100 / ($(date +%s.%N) - $t0)" | bc)
        kill "$bad"
        wait "$bad" || true
    fi
    kill "$master"
    wait "$master" 2>/dev/null || true
    pids=""
    /usr/bin/python3 - "$run" "$1" "$bad_cpu" <<'EOF'
import json, os, sys
run, name, bad_cpu = sys.argv[1:]
d = json.load(open(run + ".json"))
refused = ""
if os.path.exists(run + ".bad.json") and os.path.getsize(run + ".bad.json"):
    b = json.load(open(run + ".bad.json"))["misbehaving"]
    refused = "; misbehaving generator %s %% of a core, %d connections, %d Registers, %d refused" % (
        bad_cpu, b["connects"], b["registers"], b["refused"])
print("%s: master %.1f %% of a core; %d well-behaved: heartbeat p50 %.2f / p99 %.1f ms, %d errors%s"
      % (name, d["master"]["cpu_pct"], d["well_behaved"], d["latency_us"]["p50"] / 1000,
         d["latency_us"]["p99"] / 1000, sum(d["errors"].values()), refused))
EOF
}

for s in $(seq 1 "$sets"); do
    one_run "none-$s" 0
    one_run "$kind-$s" 1
done
echo "raw outputs: $out"
