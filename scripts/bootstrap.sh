#!/bin/sh
# Installs the Debian packages that are missing (as root), then configures the build directories:
#   build       the release build: one statically linked crawlab-node
#   build-asan  a dynamic build with AddressSanitizer and UndefinedBehaviorSanitizer
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

[ $# -gt 0 ] || set -- build
for dir in "$@"; do
    [ -f "$dir/build.ninja" ] && continue
    case "$dir" in
    build) meson setup build --wrap-mode=nodownload ;;
    build-asan)
        meson setup build-asan --wrap-mode=nodownload -Dstatic_binary=false \
            -Db_sanitize=address,undefined -Db_lundef=false ;;
    build-fuzz)
        CC=clang CXX=clang++ meson setup build-fuzz --wrap-mode=nodownload -Dfuzz=true \
            -Dtests=false -Dstatic_binary=false -Db_sanitize=address,undefined -Db_lundef=false ;;
    *) echo "bootstrap: unknown build directory $dir" >&2; exit 2 ;;
    esac
done
