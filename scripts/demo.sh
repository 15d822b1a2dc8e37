#!/bin/sh
# The main job: builds crawlab-node, then runs a real crawl on this machine -- a master, two
# workers (on the embedded default store) and a small shop served locally -- and shows the task
# list, a log and the results. Everything it starts is stopped when it ends.
set -eu
cd "$(dirname "$0")/.."
scripts/bootstrap.sh build
ninja -C build >/dev/null
bin=$(pwd)/build/src/crawlab-node
work=$(mktemp -d /tmp/crawlab-demo.XXXXXX)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "(demo files kept in $work)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Polls a command until it succeeds, for at most 30 s.
wait_for() {
    what=$1
    shift
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 300 ] || { echo "demo: gave up waiting for $what" >&2; exit 1; }
        sleep 0.1
    done
}

port=$(free_port)
site=$(free_port)
# A client command against the demo master: the connection flags go right after the command name;
# clients present the admin key, workers (below) the node key, auth.key.
cli() {
    cmd=$1
    shift
    "$bin" "$cmd" --master=127.0.0.1:$port --admin-key-file="$work/master/admin.key" "$@"
}

echo "== master on 127.0.0.1:$port, workers, and a shop on 127.0.0.1:$site (logs in $work)"
"$bin" --role=master --listen=127.0.0.1:$port --data-dir="$work/master" 2>"$work/master.log" &
pids="$pids $!"
wait_for "the master" cli nodes
for n in 1 2; do
    "$bin" --role=worker --master=127.0.0.1:$port --data-dir="$work/worker-$n" \
        --auth-key-file="$work/master/auth.key" --node-name=worker-$n 2>"$work/worker-$n.log" &
    pids="$pids $!"
done
python3 -m http.server --bind 127.0.0.1 "$site" --directory examples/site \
    >"$work/site.log" 2>&1 &
pids="$pids $!"
online() { [ "$(cli nodes --json | grep -c '"online"')" -eq 2 ]; }
wait_for "two workers online" online
wait_for "the shop" python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$site/')"
cli nodes

echo
echo "== one crawl task per shop section"
for section in books tools music; do
    cli submit --name="crawl-$section" -- \
        python3 "$(pwd)/examples/crawl.py" "http://127.0.0.1:$site/$section/index.html"
done >"$work/tasks.txt"
cat "$work/tasks.txt"
finished() { [ "$(cli tasks --json | grep -c '"status": "finished"')" -eq 3 ]; }
wait_for "the crawls to finish" finished

echo
echo "== tasks"
cli tasks
first=$(head -n 1 "$work/tasks.txt")
echo
echo "== log of $first"
cli logs "$first"
echo
echo "== results"
while read -r id; do cli results "$id"; done <"$work/tasks.txt"
