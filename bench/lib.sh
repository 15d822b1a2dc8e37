# Shell helpers shared by the bench scripts that start masters and load generators (storm.sh,
# fleet-versus.sh, misbehave-apart.sh), which source this file. A script keeps the pids it must
# stop in $pids and the directory to remove at its end in $scratch; bench_traps stops and removes
# them on exit, an interrupt or a termination.

bench_cleanup() {
    for p in $pids; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$scratch"
}

bench_traps() {
    trap bench_cleanup EXIT
    trap 'exit 1' INT TERM
}

# Waits until FILE has a line with TEXT, for at most SECONDS; else exits 1 with the file's end.
wait_for() {
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt $(($3 * 10)) ]; then
            echo "${0##*/}: no \"$2\" in $1 after $3 s" >&2
            tail -5 "$1" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# A free TCP port on 127.0.0.1.
free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A process's user + system CPU time, in seconds.
cpu_of() {
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}
