#!/usr/bin/env bash
# The project's layout (.clang-format) over every tracked C++ and CUDA source.
#   scripts/format.sh           rewrite the files in place
#   scripts/format.sh --check   change nothing; list the files that differ and exit 1 if any does
set -euo pipefail
cd "$(dirname "$0")/.."
cf=${CLANG_FORMAT:-clang-format}
mapfile -t files < <(git ls-files 'src/*.cpp' 'src/*.hpp' 'tests/*.cpp' 'tests/*.hpp' 'bench/*.cpp' 'kernels/*.cu' 'kernels/*.cuh' 2>/dev/null ||
                     find src tests bench kernels -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh')
if [ "${1:-}" = --check ]; then
    bad=0
    for f in "${files[@]}"; do
        if ! "$cf" --dry-run --Werror "$f" >/dev/null 2>&1; then echo "$f: not as .clang-format writes it (run scripts/format.sh)"; bad=1; fi
    done
    [ $bad = 0 ] && echo "format: ${#files[@]} sources as .clang-format writes them"
    exit $bad
fi
"$cf" -i "${files[@]}"
