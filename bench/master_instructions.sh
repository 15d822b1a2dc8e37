#!/bin/bash
# The master's instructions per dispatched task, counted by callgrind: a figure that does not
# move with the machine's load (bench/README.md, "Instructions per task").
#
#   bench/master_instructions.sh [--tasks=N] BIN [BIN...]
#
# For each binary: a master under callgrind and N `true` tasks queued with no worker up; the
# counters are zeroed, one worker (not under callgrind) starts with 8 runners, and the counters
# are dumped once the master has logged every task's end. So the count covers dispatch, the
# claim, the reports, the output streams and the commits of N tasks, and nothing of submitting
# them. Prints one line per binary: total instructions and instructions per task, all threads.
set -euo pipefail

tasks=300
bins=()
for arg in "$@"; do
    case $arg in
    --tasks=*) tasks=${arg#--tasks=} ;;
    -h | --help)
        sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) bins+=("$arg") ;;
    esac
done
[ ${#bins[@]} -gt 0 ] || { echo "usage: $0 [--tasks=N] BIN [BIN...]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "$0: valgrind is needed" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/master-instructions.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Polls (up to 60 s) until the command succeeds.
wait_for() {
    for _ in $(seq 600); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    echo "$0: timed out waiting for: $*" >&2
    exit 1
}

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ended() { [ "$(grep -c 'task [0-9a-f]* finished' "$1")" -ge "$tasks" ]; }

measure() {
    local bin=$1 dir=$work/$2 port
    port=$(free_port)
    mkdir -p "$dir"
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" "$bin" --role=master \
        --data-dir="$dir/m" --listen="127.0.0.1:$port" >"$dir/master.log" 2>&1 &
    local master=$!
    pids+=("$master")
    wait_for grep -q listening "$dir/master.log"
    # The admin key where the binary has one, else the one shared key of older binaries.
    local key=(--auth-key-file="$dir/m/auth.key")
    [ -f "$dir/m/admin.key" ] && key=(--admin-key-file="$dir/m/admin.key")
    for _ in $(seq "$tasks"); do
        "$bin" submit --master="127.0.0.1:$port" "${key[@]}" -- true >/dev/null 2>&1
    done
    callgrind_control -z "$master" >/dev/null 2>&1
    "$bin" --role=worker --master="127.0.0.1:$port" --data-dir="$dir/w" \
        --auth-key-file="$dir/m/auth.key" --max-runners=8 >"$dir/worker.log" 2>&1 &
    local worker=$!
    pids+=("$worker")
    wait_for ended "$dir/master.log"
    callgrind_control -d "$master" >/dev/null 2>&1
    kill "$worker" "$master"
    wait "$worker" "$master" 2>/dev/null || true
    local total
    total=$(callgrind_annotate "$dir"/callgrind.out.* 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    printf '%s  sha256 %s  %d tasks  %s instructions  %d per task\n' "$bin" \
        "$(sha256sum "$bin" | cut -c1-16)" "$tasks" "$total" $((total / tasks))
}

i=0
for bin in "${bins[@]}"; do
    measure "$bin" "run$i"
    i=$((i + 1))
done
