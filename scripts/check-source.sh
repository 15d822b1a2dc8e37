#!/bin/sh
# Source checks that need no build (run by scripts/test.sh):
#   - every C file is formatted as .clang-format says;
#   - no source file reaches another layer by a relative include ("../x/y.h"): each layer's
#     include view (src/layer_view.py) is what decides what it may see;
#   - nothing cites a document that is not in the repository.
# Files not committed yet are checked too (untracked ones that .gitignore does not exclude).
set -eu
cd "$(dirname "$0")/.."
status=0

files=$(git ls-files --cached --others --exclude-standard '*.c' '*.cc' '*.h' | grep -v '^subprojects/')
# shellcheck disable=SC2086
clang-format --dry-run -Werror $files || {
    echo "check-source: files above differ from .clang-format (fix: clang-format -i FILE)" >&2
    status=1
}

if git grep --untracked -n '#include "\.\./' -- src; then
    echo "check-source: relative includes above bypass the layer views" >&2
    status=1
fi

# The names of the design documents kept outside the repository, and the folder holding them.
outside='PROTOCOL[.]md|DESIGN[.]md|FIELD-NOTE[S]|STYLE[.]md|[.][.]/sha[r]ed/'
if git grep --untracked -nE "$outside" -- ':!subprojects'; then
    echo "check-source: the lines above cite documents that are not in the repository" >&2
    status=1
fi

[ $status -eq 0 ] && echo "check-source: format, includes and references clean"
exit $status
