#!/bin/sh
# Log reading through the store at two commits, in one run: bench/logread.c, built against the
# store of an older commit (its sources exported and built in a directory of their own) and of the
# work tree, writes a log of MB megabytes and times reading it back. Prints figures; never fails
# because something is slow. See bench/README.md.
#
#     bench/logread.sh [--old=COMMIT] [--mb=MB] [--dir=DIR]
#
# --old: the commit to compare with (9935112, the last one that read logs from byte 0);
# --mb: the log's size (400); --dir: where the builds and the data go (a new directory under
# $TMPDIR or /tmp, removed at the end). Needs git, meson, ninja, cc and the project's packages.
set -eu

old=9935112
mb=400
parent=${TMPDIR:-/tmp}
for arg in "$@"; do
    case $arg in
    --old=*) old=${arg#--old=} ;;
    --mb=*) mb=${arg#--mb=} ;;
    --dir=*) parent=${arg#--dir=} ;;
    *)
        echo "usage: $0 [--old=COMMIT] [--mb=MB] [--dir=DIR]" >&2
        exit 2
        ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "$parent/logread.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# Builds the store's layer of the source tree $1 in $2 with the layers it uses, and links
# bench/logread.c against them.
build() {
    # The store needs neither the subprojects (an exported tree has none of their sources) nor TLS.
    meson setup "$2" "$1" --wrap-mode=nodownload -Dtests=false -Dstatic_binary=false \
        -Dwolfssl=system -Dlibpq=disabled >/dev/null
    ninja -C "$2" src/libcrawlab-store.a src/libcrawlab-core.a src/libcrawlab-runtime.a >/dev/null
    # shellcheck disable=SC2046 # one word per library
    cc -O2 -std=gnu11 -D_GNU_SOURCE -I"$1/src" "$root/bench/logread.c" \
        -Wl,--start-group "$2"/src/libcrawlab-*.a -Wl,--end-group \
        $(pkg-config --libs sqlite3 jansson) -lpthread -lm -o "$2/logread"
}

# Runs the program built for side $1 (old or new), labelled $2, on a data dir it then removes.
run() {
    "$work/$1-build/logread" "$work/$1-data" "$mb" "$2"
    rm -rf "$work/$1-data"
}

old_label="old $(git -C "$root" rev-parse --short "$old")"
new_label="new $(git -C "$root" rev-parse --short HEAD)"
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
    new_label="$new_label+changes"
fi
mkdir "$work/old-src"
git -C "$root" archive "$old" | tar -x -C "$work/old-src"
echo "building $old_label and $new_label (debugoptimized, as meson configures build/) ..."
build "$work/old-src" "$work/old-build"
build "$root" "$work/new-build"

echo "$(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); data under $work"
run old "$old_label"
run new "$new_label"
