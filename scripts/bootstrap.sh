#!/bin/sh
# Installs the Debian packages that are missing (as root), then configures the build directories:
#   build       the release build: one statically linked crawlab-node, with wolfSSL and libpq
#               built from Debian's source (fetched into subprojects/ first, as root)
#   build-asan  a dynamic build with AddressSanitizer and UndefinedBehaviorSanitizer, linking the
#               dependencies' archives (-Dprefer_static=true: its processes start faster)
#   build-fuzz  clang, the libFuzzer targets of tests/fuzz only (scripts/fuzz.sh)
# usage: scripts/bootstrap.sh [build|build-asan|build-fuzz]...   (default: build)
set -eu
cd "$(dirname "$0")/.."

missing=""
for p in $(grep -v '^#' scripts/debian-packages.txt); do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: missing Debian packages:$missing (run as root, or install them)" >&2
        exit 1
    fi
    echo "bootstrap: installing$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# A subproject's source (subprojects/README.md): Debian's source package $2 at the version of the
# installed binary package $3, through a deb-src entry for the same archive and suites as the deb
# entries, as subprojects/$1.wrap's tarball and packagefiles/$1-debian.patch (Debian's patch
# series, concatenated in its order). apt checks the files against the archive's signed index;
# meson checks the tarball against the wrap. Returns 1 when it is missing and only root could
# fetch it.
debian_source() {
    wrap=$1 source=$2 binary=$3
    tarball=subprojects/packagecache/$(sed -n 's/^source_filename = //p' "subprojects/$wrap.wrap")
    patchfile=subprojects/packagefiles/$wrap-debian.patch
    [ -f "$tarball" ] && [ -f "$patchfile" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: the source of $wrap is not in subprojects/ and only root can fetch it" \
            "(apt-get source)" >&2
        return 1
    fi
    if ! apt-cache showsrc "$source" 2>/dev/null | grep -q "^Package: $source\$"; then
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] && grep -q '^Types: deb$' "$f" || continue
            sed 's/^Types: deb$/Types: deb-src/' "$f" \
                >"/etc/apt/sources.list.d/crawlab-node-src-$(basename "$f")"
        done
        if [ -f /etc/apt/sources.list ]; then
            sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >/etc/apt/sources.list.d/crawlab-node-src.list
        fi
        apt-get update -qq
    fi
    version=$(dpkg-query -W -f='${Version}' "$binary")
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get source -qq --download-only "$source=$version" >/dev/null 2>&1) || {
        rm -rf "$tmp"
        echo "bootstrap: apt-get source $source=$version failed (is there a deb-src entry?)" >&2
        exit 1
    }
    mkdir -p subprojects/packagecache
    cp "$tmp/$(basename "$tarball")" "$tarball"
    tar -xJf "$tmp/${source}_"*.debian.tar.xz -C "$tmp" debian/patches
    for patch in $(grep -v '^#' "$tmp/debian/patches/series"); do
        cat "$tmp/debian/patches/$patch"
        echo
    done >"$patchfile"
    rm -rf "$tmp"
    echo "bootstrap: the source of Debian's $source $version in subprojects/ ($wrap)"
}

[ $# -gt 0 ] || set -- build
todo=""
for dir in "$@"; do
    if [ "$dir" = build ]; then
        # Without its source, a new build links Debian's wolfSSL and leaves out libpq.
        debian_source wolfssl wolfssl libwolfssl-dev && wolfssl=subproject || wolfssl=system
        debian_source libpq postgresql-15 postgresql-15 && libpq=enabled || libpq=disabled
    fi
    case "$dir" in
    build | build-asan | build-fuzz) [ -f "$dir/build.ninja" ] || todo="$todo $dir" ;;
    *) echo "bootstrap: unknown build directory $dir" >&2; exit 2 ;;
    esac
done
[ -n "$todo" ] || exit 0

# The subprojects whose source is here are unpacked and patched once, from subprojects/packagecache
# (meson checks each tarball against its wrap and downloads nothing it has), so that the set-ups
# below can run side by side: each runs wolfSSL's and libpq's own configure scripts, about a
# minute of one core each.
for wrap in wolfssl libpq; do
    tarball=subprojects/packagecache/$(sed -n 's/^source_filename = //p' "subprojects/$wrap.wrap")
    if [ -f "$tarball" ]; then
        meson subprojects download "$wrap" >/dev/null
    fi
done

set_up() {
    case "$1" in
    build) meson setup build --wrap-mode=nodownload -Dwerror=true -Dwolfssl=$wolfssl -Dlibpq=$libpq ;;
    # The sanitizer builds link Debian's wolfSSL: its code is not instrumented either way, and
    # a second wolfSSL build would only cost time (it also keeps -Dwolfssl=system tested).
    build-asan)
        meson setup build-asan --wrap-mode=nodownload -Dwerror=true -Dstatic_binary=false \
            -Dprefer_static=true -Dwolfssl=system -Db_sanitize=address,undefined -Db_lundef=false ;;
    build-fuzz)
        CC=clang CXX=clang++ meson setup build-fuzz --wrap-mode=nodownload -Dfuzz=true -Dlibpq=disabled \
            -Dtests=false -Dstatic_binary=false -Dwolfssl=system -Db_sanitize=address,undefined \
            -Db_lundef=false ;;
    esac
}

# All at once, each into a log of its own, printed in order when it is done.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=""
for dir in $todo; do
    set_up "$dir" >"$logs/$dir" 2>&1 &
    pids="$pids $!"
done
# shellcheck disable=SC2086 # one word per pid
set -- $pids
failed=""
for dir in $todo; do
    wait "$1" || failed="$failed $dir"
    shift
    cat "$logs/$dir"
done
if [ -n "$failed" ]; then
    echo "bootstrap: meson setup failed for:$failed" >&2
    exit 1
fi
