#!/bin/sh
# A reconnect storm, measured: a master on 127.0.0.1 with WORKERS simulated workers
# (bench/loadgen --reconnect-storm) is killed with SIGKILL and restarted at the same address with
# the same data directory. Prints loadgen's summary (its "storm" object: the time from the first
# failure a worker saw to each worker registered again with its Subscribe open, p50 and p100), how
# long until the restarted master lists every worker online, and the masters' peak descriptor
# count (/proc/PID/fd, sampled every 0.1 s). Every process it starts is stopped by its pid.
#
#     bench/storm.sh [WORKERS [PEER_BIN_DIR]]          (default 1000)
#
# With PEER_BIN_DIR (the directory holding gomaster, the grpc-go peer master, in-memory) the
# storm is made against gomaster instead, with the same load generator: its summary and the peak
# descriptors are printed, and the master's listing is not (gomaster has none; its nodes are
# forgotten at the kill and registered anew).
#
# The binaries: CRAWLAB_NODE_BIN (build/src/crawlab-node) and CRAWLAB_LOADGEN_BIN
# (build/bench/loadgen). The data goes to a new directory under $TMPDIR or /tmp, removed at the end.
set -eu

n=${1:-1000}
peer=${2:+$2/gomaster}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CRAWLAB_NODE_BIN:-$root/build/src/crawlab-node}
loadgen=${CRAWLAB_LOADGEN_BIN:-$root/build/bench/loadgen}
. "$root/bench/lib.sh"
dir=$(mktemp -d "${TMPDIR:-/tmp}/storm.XXXXXX")
port=$(free_port)
pids=""
scratch=$dir
bench_traps

keyf=$dir/master/auth.key
if [ -n "$peer" ]; then
    [ -x "$peer" ] || {
        echo "storm: $peer is not an executable" >&2
        exit 2
    }
    keyf=$dir/peer.key
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$keyf"
fi

start_master() {
    if [ -n "$peer" ]; then
        "$peer" --listen "127.0.0.1:$port" --auth-key "$(cat "$keyf")" --ping-interval 5 \
            >"$dir/$1.log" 2>&1 &
    else
        "$bin" --role=master --listen="127.0.0.1:$port" --data-dir="$dir/master" \
            --heartbeat-interval=5s --max-connections=$((n + 1000)) >"$dir/$1.log" 2>&1 &
    fi
    master=$!
    pids="$pids $master"
    echo "$master" >"$dir/master.pid"
    wait_for "$dir/$1.log" "listening on" 60
}

online() {
    "$bin" nodes --json --master="127.0.0.1:$port" --admin-key-file="$dir/master/admin.key" |
        /usr/bin/python3 -c 'import json, sys
print(sum(1 for x in json.load(sys.stdin) if x["status"] == "online"))'
}

start_master master1
(
    while :; do
        p=$(cat "$dir/master.pid")
        find "/proc/$p/fd" -mindepth 1 2>/dev/null | wc -l
        sleep 0.1
    done
) >"$dir/fds" &
pids="$pids $!"

"$loadgen" --master="127.0.0.1:$port" --auth-key-file="$keyf" --workers="$n" \
    --reconnect-storm --duration=300 >"$dir/summary.json" 2>"$dir/loadgen.log" &
lg=$!
pids="$pids $lg"
wait_for "$dir/loadgen.log" "ready:" 600

kill -9 "$master"
wait "$master" 2>/dev/null || true
killed=$(date +%s.%N)
start_master master2
# loadgen prints its summary once every worker is back, and holds the fleet up until SIGTERM.
wait_for "$dir/summary.json" "storm" 300

count=
while [ -z "$peer" ] && count=$(online) && [ "$count" -lt "$n" ]; do
    if [ "$(echo "$(date +%s.%N) - $killed > 60" | bc)" -eq 1 ]; then
        echo "storm: the master lists $count of $n workers online 60 s after the kill" >&2
        break
    fi
    sleep 0.1
done
back=$(echo "$(date +%s.%N) - $killed" | bc)
kill "$lg"
wait "$lg" || echo "storm: loadgen exited with status $?" >&2

cat "$dir/summary.json"
[ -n "$peer" ] ||
    echo "master: $count of $n workers online $back s after the kill (polled every 0.1 s)"
echo "master: peak descriptors $(sort -n "$dir/fds" | tail -1) (both masters, sampled every 0.1 s)"
