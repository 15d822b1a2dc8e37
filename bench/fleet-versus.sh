#!/bin/sh
# A fleet of simulated workers (bench/loadgen) against the crawlab-node master and against the
# grpc-go peer master (gomaster), one after the other, ROUNDS times: each run a fresh master on
# 127.0.0.1, WORKERS workers with 5 s heartbeats and node Subscribe open, DURATION seconds timed,
# and 10 s of `perf stat` on the master in the middle of the window (system calls and context
# switches). Prints one line per run: calls/s, heartbeat p50 / p99, errors, workers online,
# master CPU (% of a core), peak RSS and RSS per worker, system calls and switches per heartbeat,
# the load generator's own CPU (% of a core, from the window's start to the end of perf stat).
# Every process it starts is stopped by its pid.
#
#     bench/fleet-versus.sh PEER_BIN_DIR [ROUNDS [WORKERS [DURATION]]]     (3, 10000, 300)
#
# PEER_BIN_DIR holds gomaster (the grpc-go peer's build). The binaries: CRAWLAB_NODE_BIN
# (build/src/crawlab-node) and CRAWLAB_LOADGEN_BIN (build/bench/loadgen). Raw outputs go to a new
# directory under $TMPDIR or /tmp, named on the last line.
set -eu

[ $# -ge 1 ] || {
    echo "usage: fleet-versus.sh PEER_BIN_DIR [ROUNDS [WORKERS [DURATION]]]" >&2
    exit 2
}
peer=$1/gomaster
rounds=${2:-3} n=${3:-10000} dur=${4:-300}
[ "$dur" -ge 30 ] || {
    echo "fleet-versus: DURATION must be 30 s or more (10 s of perf stat in the middle)" >&2
    exit 2
}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CRAWLAB_NODE_BIN:-$root/build/src/crawlab-node}
loadgen=${CRAWLAB_LOADGEN_BIN:-$root/build/bench/loadgen}
for b in "$peer" "$bin" "$loadgen"; do
    [ -x "$b" ] || {
        echo "fleet-versus: $b is not an executable" >&2
        exit 2
    }
done
. "$root/bench/lib.sh"
out=$(mktemp -d "${TMPDIR:-/tmp}/fleet-versus.XXXXXX")
pids=""
scratch=$out/data
bench_traps

key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf %s "$key" >"$out/peer.key"

one_run() { # who (cn|go), round
    who=$1 r=$2 port=$(free_port) run=$out/$1-$2
    rm -rf "$out/data"
    if [ "$who" = cn ]; then
        "$bin" --role=master --listen="127.0.0.1:$port" --data-dir="$out/data" \
            --heartbeat-interval=5s --max-connections=$((n + 1000)) >"$run.master.log" 2>&1 &
        master=$!
        keyf=$out/data/auth.key
        wait_for "$run.master.log" "master listening on" 60
    else
        "$peer" --listen "127.0.0.1:$port" --auth-key "$key" --ping-interval 5 \
            >"$run.master.log" 2>&1 &
        master=$!
        keyf=$out/peer.key
        wait_for "$run.master.log" "listening on" 60
    fi
    pids="$pids $master"
    "$loadgen" --master="127.0.0.1:$port" --auth-key-file="$keyf" --workers="$n" \
        --heartbeat-interval=5 --duration="$dur" --master-pid="$master" \
        >"$run.json" 2>"$run.loadgen.log" &
    lg=$!
    pids="$pids $lg"
    wait_for "$run.loadgen.log" "timing" 600
    lg0=$(cpu_of "$lg")
    t0=$(date +%s.%N)
    sleep $(((dur - 10) / 2))
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$master" -- sleep 10 \
        2>"$run.perf" || true
    lg_cpu=$(echo "scale=1; ($(cpu_of "$lg") - $lg0) * 100 / ($(date +%s.%N) - $t0)" | bc)
    wait "$lg" || echo "fleet-versus: loadgen exited with status $?" >&2
    kill "$master"
    wait "$master" 2>/dev/null || true
    pids=""
    /usr/bin/python3 - "$run" "$who" "$r" "$lg_cpu" <<'EOF'
import json, sys
run, who, r, lg_cpu = sys.argv[1:]
d = json.load(open(run + ".json"))
m = d["master"]
perf = {}
for line in open(run + ".perf"):
    f = line.split(",")
    if len(f) > 2 and f[0].replace(".", "").isdigit():
        perf[f[2]] = float(f[0])
hb = d["calls_per_s"] * 10
per = lambda k: "%.1f" % (perf[k] / hb) if k in perf and hb else "-"
print("%s round %s: %.0f calls/s, heartbeat p50 %.2f / p99 %.1f ms, %d errors, %d online, "
      "master %.1f %% of a core, peak RSS %.0f MiB (%.1f KiB per worker), per heartbeat %s "
      "system calls and %s switches; loadgen %s %% of a core"
      % ("crawlab-node" if who == "cn" else "grpc-go", r, d["calls_per_s"],
         d["latency_us"]["p50"] / 1000, d["latency_us"]["p99"] / 1000,
         sum(d["errors"].values()), d["online"], m["cpu_pct"], m["vmhwm_kib"] / 1024,
         m["rss_kib_per_worker"], per("raw_syscalls:sys_enter"), per("context-switches"), lg_cpu))
EOF
}

for r in $(seq 1 "$rounds"); do
    one_run cn "$r"
    one_run go "$r"
done
echo "raw outputs: $out"
