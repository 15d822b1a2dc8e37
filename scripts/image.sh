#!/bin/sh
# Builds the two OCI images of crawlab-node from scratch with umoci: no base image, no registry.
#   crawlab-node         distroless: /crawlab-node (static, stripped), /etc/passwd and /etc/group
#                        naming the user 65532 it runs as, the volume /data; nothing else
#   crawlab-node-worker  the same plus Debian's busybox-static as /bin/sh and the coreutils (and
#                        grep, sed, awk, find, xargs): the base to extend with a crawler's runtime
# Each becomes an OCI image layout OUT/NAME (tags VERSION and latest) and an archive of it,
# OUT/NAME.oci.tar, which `podman load -i` and `skopeo copy oci-archive:` read. An image is built
# in a directory of its own and moved into place only when complete: a failed build leaves the
# previous image, or none, never a half-made one.
#
# usage: scripts/image.sh [--bin=FILE] [--out=DIR | --roots=DIR]
#   --bin    a statically linked crawlab-node (default build/src/crawlab-node)
#   --out    where the images go (default build/images)
#   --roots  only write the two root file systems, DIR/crawlab-node and DIR/crawlab-node-worker,
#            and no image (the Containerfile's build stage does this; umoci is not needed)
# Prints the compressed size of each image (its blobs: gzip layers, config, manifest).
set -eu
cd "$(dirname "$0")/.."

bin=build/src/crawlab-node
out=build/images
roots=
for arg in "$@"; do
    case "$arg" in
    --bin=*) bin=${arg#--bin=} ;;
    --out=*) out=${arg#--out=} ;;
    --roots=*) roots=${arg#--roots=} ;;
    *) echo "image.sh: unknown argument $arg (usage: scripts/image.sh [--bin=FILE] [--out=DIR | --roots=DIR])" >&2; exit 2 ;;
    esac
done

need() { # command, Debian package
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "image.sh: $1 not found: install Debian's $2 (scripts/bootstrap.sh does, as root)" >&2
    exit 1
}
[ -n "$roots" ] || need umoci umoci
need strip binutils
[ -x /bin/busybox ] || { echo "image.sh: /bin/busybox not found: install Debian's busybox-static (scripts/bootstrap.sh does, as root)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "image.sh: run as root (the images' files are owned by uid 65532)" >&2; exit 1; }
[ -x "$bin" ] || { echo "image.sh: no executable $bin (build it first: ninja -C build)" >&2; exit 1; }
LC_ALL=C ldd "$bin" 2>&1 | grep -q 'not a dynamic executable' ||
    { echo "image.sh: $bin is not statically linked (use the static build)" >&2; exit 1; }
version=$("$bin" --version | sed -n '1s/^crawlab-node \([^ ]*\).*/\1/p')
[ -n "$version" ] || { echo "image.sh: cannot read the version of $bin" >&2; exit 1; }

UID_RUN=65532
# Busybox applets linked into the worker image: a POSIX shell and what a task script expects.
WORKER_APPLETS=$(grep -v '^#' contrib/image/worker-applets.txt)

# The root of the distroless image, in the bundle's rootfs.
distroless_root() { # rootfs
    strip -o "$1/crawlab-node" "$bin"
    chmod 0755 "$1/crawlab-node"
    mkdir -p "$1/etc" "$1/data"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/data:/sbin/nologin\n' \
        $UID_RUN $UID_RUN >"$1/etc/passwd"
    printf 'root:x:0:\nnonroot:x:%s:\n' $UID_RUN >"$1/etc/group"
    chmod 0644 "$1/etc/passwd" "$1/etc/group"
    chown $UID_RUN:$UID_RUN "$1/data"
    chmod 0700 "$1/data"
}

worker_root() { # rootfs
    distroless_root "$1"
    mkdir -p "$1/bin" "$1/tmp"
    chmod 1777 "$1/tmp"
    cp /bin/busybox "$1/bin/busybox"
    for applet in $WORKER_APPLETS; do
        ln -s busybox "$1/bin/$applet"
    done
}

if [ -n "$roots" ]; then
    mkdir -p "$roots/crawlab-node" "$roots/crawlab-node-worker"
    distroless_root "$roots/crawlab-node"
    worker_root "$roots/crawlab-node-worker"
    exit 0
fi

mkdir -p "$out"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

# build NAME ROOTFN ROLE [UMOCI-CONFIG-FLAG...]: the image NAME into $work/NAME, then moved to
# $out/NAME. ROLE is the default command's --role.
build() {
    name=$1 layout=$work/$1 bundle=$work/$1.bundle rootfn=$2 role=$3
    shift 3
    umoci init --layout "$layout"
    umoci new --image "$layout:$version"
    umoci unpack --image "$layout:$version" "$bundle" >/dev/null
    "$rootfn" "$bundle/rootfs"
    umoci repack --image "$layout:$version" --history.created_by "scripts/image.sh" "$bundle"
    umoci config --image "$layout:$version" --no-history --os linux --architecture amd64 \
        --config.user "$UID_RUN:$UID_RUN" --config.entrypoint /crawlab-node \
        --config.cmd "--role=$role" --config.cmd --data-dir=/data \
        --config.workingdir /data --config.volume /data --config.exposedports 9666/tcp "$@"
    umoci tag --image "$layout:$version" latest
    umoci gc --layout "$layout"
    (cd "$layout" && tar --sort=name --owner=0 --group=0 -cf "../$name.oci.tar" .)
    # Complete: replace the previous image of that name.
    rm -rf "$out/$name" "$out/$name.oci.tar"
    mv "$layout" "$out/$name"
    mv "$work/$name.oci.tar" "$out/$name.oci.tar"
    size=$(find "$out/$name/blobs" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
    echo "image.sh: $out/$name ($name:$version, latest): $size bytes compressed"
}

# A container's own network is not the host's: the master listens on all of the container's
# addresses (it warns there while TLS is off; publish the port only to trusted networks).
build crawlab-node distroless_root master --config.cmd --listen=0.0.0.0:9666
build crawlab-node-worker worker_root worker --config.env PATH=/bin
