#!/bin/sh
# Runs the commands of README.md's "Install" section for real, on a machine that has neither
# systemd as its init nor a container registry, and checks what they promise:
#   systemd    a Debian bookworm root made by mmdebstrap, crawlab-node put into it with the
#              README's `meson install` (--destdir), booted with systemd-nspawn. Inside, the
#              README's systemd lines word for word (read from README.md), then: both units
#              active, `systemctl start` returning only once the master listens and the worker
#              registered, a task that logs and returns an item as the worker's user, a worker
#              that waits for its master, a crash restarted, and a unit that cannot start
#              (read-only data directory, bad flag) failed with its reason and not restarted.
#   container  a local debian:bookworm image made by mmdebstrap (no registry), the README's two
#              `podman build` lines on a clean copy of the committed tree (git archive HEAD),
#              then a master and a worker from the built images, each in a container of its own,
#              running such a task; then the same with scripts/image.sh's images, copied into
#              podman's storage with the README's skopeo line.
#
# NOT part of CI (.ci/run never calls it): it needs root, the network to Debian's archive, about
# 10 minutes and 3 GB (podman's build stage and its cache). It installs the Debian packages it
# needs, builds build/ with scripts/bootstrap.sh when there is none, and removes what it made
# (the nspawn root, containers, volumes) except the two images built from the Containerfile and
# the debian:bookworm image, which a second run reuses.
#
# usage: scripts/try-install.sh [systemd] [container]      (default: both)
set -eu
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "try-install: run as root" >&2; exit 1; }
[ $# -gt 0 ] || set -- systemd container
for part in "$@"; do
    case "$part" in
    systemd | container) ;;
    *) echo "try-install: unknown part $part (usage: scripts/try-install.sh [systemd] [container])" >&2; exit 2 ;;
    esac
done

say() { echo "try-install: $*"; }
fail() { echo "try-install: FAILED: $*" >&2; exit 1; }
check() { # description, command...: the command must succeed
    what=$1
    shift
    "$@" || fail "$what"
    say "ok: $what"
}
elapsed() { # start (date +%s): seconds since
    echo $(($(date +%s) - $1))
}

need_packages() {
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    say "installing$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# Everything made here goes under $work, removed on exit (once nothing is mounted there).
work=$(mktemp -d /var/tmp/crawlab-try.XXXXXX)
nspawn_pid=""
containers=""
volumes=""
cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true # nspawn halts the container
        timeout 30 sh -c "while kill -0 $nspawn_pid 2>/dev/null; do sleep 0.2; done" ||
            kill -KILL "$nspawn_pid" 2>/dev/null || true
    fi
    for c in $containers; do podman rm -f -t 5 "$c" >/dev/null 2>&1 || true; done
    for v in $volumes; do podman volume rm -f "$v" >/dev/null 2>&1 || true; done
    if grep -q " $work" /proc/mounts; then
        echo "try-install: something is still mounted under $work: left in place" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The release build (static) that `meson install` and scripts/image.sh take.
[ -f build/build.ninja ] || scripts/bootstrap.sh build
nice -n 10 ninja -C build >/dev/null
[ -x build/src/crawlab-node ] || fail "no build/src/crawlab-node"

# ---------------------------------------------------------------------------------------------
# systemd

# The README's systemd block (the ```sh block after "**systemd.**"), split where the worker is
# started: the worker's two variables go into /etc/default/crawlab-node in between, as its
# comment says.
readme_systemd_block() {
    awk '/^\*\*systemd\.\*\*/ { found = 1 } found && /^```sh/ { inside = 1; next }
         inside && /^```/ { exit } inside { print }' README.md
}

in_root() { # command...: run inside the booted container, in all the namespaces of its init
    nsenter -t "$init_pid" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 "$@"
}

unit_state() { # unit: its state and its main process' exit status
    echo "$(in_root systemctl show -P ActiveState "$1") $(in_root systemctl show -P ExecMainStatus "$1")"
}

wait_for() { # seconds, description, shell condition run inside the container
    in_root timeout "$1" sh -c "until $3; do sleep 0.2; done" || fail "$2 (waited $1 s)"
    say "ok: $2"
}

try_systemd() {
    need_packages mmdebstrap systemd-container
    root=$work/root
    t=$(date +%s)
    nice -n 10 mmdebstrap --quiet --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2 \
        bookworm "$root" || fail "mmdebstrap"
    say "mmdebstrap (minbase, systemd): $(elapsed "$t") s"
    meson install -C build --skip-subprojects --quiet --destdir "$root" >/dev/null

    block=$(readme_systemd_block)
    [ -n "$block" ] || fail "no systemd block in README.md"
    printf '#!/bin/sh\nset -ex\ncd /root\n%s\n' "$(echo "$block" | sed '/^systemctl enable --now crawlab-node-worker/,$d')" \
        >"$root/root/readme-master.sh"
    printf '#!/bin/sh\nset -ex\ncd /root\n%s\n' "$(echo "$block" | sed -n '/^systemctl enable --now crawlab-node-worker/,$p')" \
        >"$root/root/readme-worker.sh"
    chmod 0755 "$root/root/readme-master.sh" "$root/root/readme-worker.sh"

    # --keep-unit and --register=no: this machine has no systemd (nor its bus) to create a scope
    # or register the machine with.
    t=$(date +%s)
    systemd-nspawn --quiet --keep-unit --register=no --boot --console=pipe -M crawlab-try \
        -D "$root" >"$work/console.log" 2>&1 </dev/null &
    nspawn_pid=$!
    # The container's init: nspawn's child once it has become systemd (before that it is nspawn
    # still setting up the container's root, where nsenter would see the wrong one).
    init_pid=""
    for _ in $(seq 100); do
        init_pid=$(pgrep -P "$nspawn_pid" -x systemd) && break
        sleep 0.1
    done
    [ -n "$init_pid" ] || fail "systemd-nspawn started no init (see below)$(cat "$work/console.log")"
    state=$(in_root timeout 120 sh -c 'until [ -S /run/systemd/private ]; do sleep 0.2; done
        systemctl is-system-running --wait') || true
    [ "$state" = running ] || fail "the container's systemd is $state, not running"
    say "ok: systemd booted as PID 1 of the container in $(elapsed "$t") s ($(in_root systemctl --version | head -1))"

    say "README's lines, up to the master:"
    in_root /root/readme-master.sh
    # enable --now returned: the master said READY=1, and it does so once it listens.
    check "master active once start returned" test "$(in_root systemctl is-active crawlab-node-master)" = active
    check "master listening once start returned" in_root sh -c "ss -ltnH 'sport = :9666' | grep -q ."
    in_root sh -c 'printf "CRAWLAB_GRPC_HOST=127.0.0.1\nCRAWLAB_AUTH_KEY=%s\n" "$(cat /var/lib/crawlab-node/auth.key)" >>/etc/default/crawlab-node'
    say "README's lines, the worker:"
    in_root /root/readme-worker.sh
    check "worker active once start returned" test "$(in_root systemctl is-active crawlab-node-worker)" = active
    # Registered before start returned: the master lists it online at once.
    admin='CRAWLAB_ADMIN_KEY=$(cat /var/lib/crawlab-node/admin.key); export CRAWLAB_ADMIN_KEY'
    check "worker registered once start returned" in_root sh -c "$admin; crawlab-node nodes | grep -q ' online '"

    in_root sh -c "$admin"'
        id=$(crawlab-node submit --name=try -- sh -c '\''echo "hello from $(id -un)"; touch /etc/x 2>&1 | sed "s/^touch: //"; cat /var/lib/crawlab-node/admin.key 2>&1 | sed "s/^cat: //"; echo "{\"type\":\"data\",\"ipc\":true,\"payload\":{\"ok\":1}}"'\'')
        crawlab-node logs --follow "$id" >/tmp/logs
        crawlab-node results "$id" >/tmp/results
        crawlab-node tasks >/tmp/tasks; grep -q "^$id .* finished " /tmp/tasks' || fail "task did not finish"
    in_root cat /tmp/logs /tmp/results
    check "task ran as the worker's user" in_root grep -qx 'hello from crawlab-node-worker' /tmp/logs
    check "task cannot write /etc" in_root grep -q "cannot touch '/etc/x': Read-only file system" /tmp/logs
    check "task cannot read the master's keys" in_root grep -q 'admin.key: Permission denied' /tmp/logs
    check "task returned its item" in_root grep -qx '{"ok":1}' /tmp/results

    # A worker whose master is down is "activating" until it first registers.
    in_root systemctl stop crawlab-node-master
    in_root systemctl restart --no-block crawlab-node-worker
    wait_for 30 "worker without its master keeps dialling it" \
        'journalctl -o cat _SYSTEMD_INVOCATION_ID=$(systemctl show -P InvocationID crawlab-node-worker) | grep -q "cannot connect"'
    check "worker without its master is activating" test "$(in_root systemctl is-active crawlab-node-worker)" = activating
    in_root systemctl start crawlab-node-master
    wait_for 30 "worker active once its master is back" "systemctl is-active -q crawlab-node-worker"

    # A crash (a signal) is restarted.
    in_root sh -c 'kill -SEGV $(systemctl show -P MainPID crawlab-node-master)'
    wait_for 30 "master restarted after SIGSEGV" \
        '[ "$(systemctl show -P NRestarts crawlab-node-master)" = 1 ] && systemctl is-active -q crawlab-node-master'

    # A start that cannot succeed fails with its reason, and is not restarted (auto-restart
    # would show as "activating").
    in_root sh -c 'mkdir -p /run/systemd/system/crawlab-node-master.service.d &&
        printf "[Service]\nReadOnlyPaths=/var/lib/crawlab-node\n" >/run/systemd/system/crawlab-node-master.service.d/ro.conf &&
        systemctl daemon-reload'
    in_root systemctl restart crawlab-node-master 2>/dev/null && fail "master started with a read-only data directory"
    check "read-only data directory: failed with status 1, not restarted" \
        test "$(unit_state crawlab-node-master)" = "failed 1"
    check "read-only data directory: the journal says why" \
        in_root journalctl -u crawlab-node-master -n 1 -o cat --grep 'cannot open the store'
    in_root sh -c 'rm -r /run/systemd/system/crawlab-node-master.service.d &&
        echo CRAWLAB_MASTER_OPTS=--no-such-flag >>/etc/default/crawlab-node && systemctl daemon-reload'
    in_root systemctl restart crawlab-node-master 2>/dev/null && fail "master started with a bad flag"
    check "bad flag: failed with status 2, not restarted" \
        test "$(unit_state crawlab-node-master)" = "failed 2"
    check "bad flag: the journal says which" \
        in_root journalctl -u crawlab-node-master -n 1 -o cat --grep 'unknown option'

    in_root systemctl poweroff
    timeout 60 sh -c "while kill -0 $nspawn_pid 2>/dev/null; do sleep 0.2; done" || fail "container did not power off"
    nspawn_pid=""
    say "systemd: all checks passed"
}

# ---------------------------------------------------------------------------------------------
# container

# This machine (a container itself) has cgroup v1 with a controller on the v2 hierarchy, which
# crun refuses ("cgroups in hybrid mode not supported"), and no CAP_SYS_RESOURCE, so podman's
# default limits (nofile, nproc above its own) cannot be set: builds use chroot isolation, runs
# runc and limits that are no higher than podman's own. A normal host needs none of this.
export BUILDAH_ISOLATION=chroot
run_opts="--runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096"

# cluster MASTER-IMAGE WORKER-IMAGE: a master and a worker, each from its image in a container of
# its own on podman's network, and a task run on the worker, logging and returning an item.
cluster() {
    m=crawlab-try-master w=crawlab-try-worker
    containers="$m $w" volumes="$m $w"
    podman run -d --name "$m" $run_opts -v "$m:/data" "$1" >/dev/null
    timeout 30 sh -c "until podman logs $m 2>&1 | grep -q 'master listening'; do sleep 0.2; done" ||
        fail "no master listening in $1: $(podman logs "$m" 2>&1)"
    ip=$(podman inspect -f '{{.NetworkSettings.IPAddress}}' "$m")
    key=$(cat "$(podman volume inspect -f '{{.Mountpoint}}' "$m")/auth.key")
    podman run -d --name "$w" $run_opts -v "$w:/data" -e CRAWLAB_GRPC_HOST="$ip" \
        -e CRAWLAB_AUTH_KEY="$key" "$2" >/dev/null
    timeout 30 sh -c "until podman logs $w 2>&1 | grep -q 'registered with the master'; do sleep 0.2; done" ||
        fail "worker from $2 did not register: $(podman logs "$w" 2>&1)"
    say "ok: worker from $2 registered with the master from $1 at $ip"
    # The client is the distroless image's own binary, with the admin key in its volume.
    client="podman exec $m /crawlab-node"
    k=--admin-key-file=/data/admin.key
    id=$($client submit $k --name=try -- sh -c 'echo "hello from $(id -u) in $(pwd)"; ls /bin/sh
        echo "{\"type\":\"data\",\"ipc\":true,\"payload\":{\"shell\":\"busybox\"}}"')
    logs=$($client logs $k --follow "$id")
    results=$($client results $k "$id")
    echo "$logs"
    echo "$results"
    check "task finished" sh -c "$client tasks $k | grep -q '^$id .* finished '"
    check "task ran as 65532 in its task directory in the volume" \
        test "$(echo "$logs" | head -1)" = "hello from 65532 in /data/tasks/$id"
    check "task found busybox's sh" test "$(echo "$logs" | tail -1)" = /bin/sh
    check "task returned its item" test "$results" = '{"shell":"busybox"}'
    podman rm -f -t 5 "$m" "$w" >/dev/null
    podman volume rm -f "$m" "$w" >/dev/null
    containers="" volumes=""
}

try_container() {
    need_packages podman runc mmdebstrap skopeo umoci busybox-static
    # The Containerfile's build stage starts from debian:bookworm: made here from the archive.
    if ! podman image exists debian:bookworm; then
        t=$(date +%s)
        nice -n 10 mmdebstrap --quiet --variant=minbase bookworm "$work/bookworm.tar" ||
            fail "mmdebstrap"
        podman import -q "$work/bookworm.tar" debian:bookworm >/dev/null
        rm -f "$work/bookworm.tar"
        say "debian:bookworm from mmdebstrap (minbase), imported: $(elapsed "$t") s"
    fi
    # A clean checkout of the committed tree: what a user who clones the repository builds.
    mkdir "$work/src"
    git archive HEAD | tar -x -C "$work/src"
    for target in crawlab-node crawlab-node-worker; do
        t=$(date +%s)
        (cd "$work/src" && nice -n 10 podman build --target $target -t $target . >"$work/build-$target.log" 2>&1) ||
            fail "podman build --target $target: $(tail -20 "$work/build-$target.log")"
        say "ok: podman build --target $target -t $target . ($(elapsed "$t") s)"
    done
    check "the distroless image's binary has wolfSSL's assembly" \
        sh -c "podman run --rm $run_opts crawlab-node --version | grep -q 'assembly on'"
    cluster crawlab-node crawlab-node-worker

    # scripts/image.sh's images, into podman's storage as the README says.
    scripts/image.sh --out="$work/images"
    for name in crawlab-node crawlab-node-worker; do
        skopeo copy -q "oci-archive:$work/images/$name.oci.tar:latest" \
            "containers-storage:localhost/crawlab-try-$name:latest"
    done
    cluster crawlab-try-crawlab-node crawlab-try-crawlab-node-worker
    podman rmi localhost/crawlab-try-crawlab-node:latest localhost/crawlab-try-crawlab-node-worker:latest >/dev/null
    say "container: all checks passed"
}

for part in "$@"; do
    "try_$part"
done
