#!/usr/bin/env bash
# The walls between src/ layers, checked on the sources (CTest: layers.*). Usage:
#   tests/check_layers.sh <repository root>
# 1. Every `#include "<layer>/..."` in src/<L>/ names L itself or a layer L links, directly or
#    through the layers it links: the `LINKS memtax_*` of `memtax_layer(L ...)` in CMakeLists.txt.
#    (Every library adds src/ to its include path, so the compiler alone would accept any include.)
# 2. src/README.md's table lists, for each layer, exactly the memtax layers CMakeLists.txt links.
# 3. No command-line flag is named below cli/: the engine names fields (`deployment.tp`), and
#    cli/commands.cpp maps them to flags.
# Prints one line per violation (file:line: what) and exits 1 if there is any.
set -euo pipefail
root=${1:-.}
cd "$root"
fail=0

# name -> direct memtax links, from the memtax_layer(...) calls (which may span lines).
declare -A links
while IFS= read -r call; do
    name=$(sed -E 's/^memtax_layer\(([a-z_]+).*/\1/' <<<"$call")
    deps=$( (grep -oE 'memtax_[a-z_]+' <<<"${call#*LINKS}" || true) | sed 's/^memtax_//' | tr '\n' ' ')
    links[$name]=$deps
done < <(awk '/^memtax_layer\(/ {buf=""; on=1} on {buf=buf" "$0} on && /\)[[:space:]]*$/ {print substr(buf,2); on=0}' CMakeLists.txt)
[ ${#links[@]} -gt 0 ] || { echo "CMakeLists.txt: no memtax_layer(...) calls found"; exit 1; }

# The layers a layer may include: itself and the transitive closure of its links.
closure() {
    local seen=" $1 " queue=($1) l d
    while ((${#queue[@]})); do
        l=${queue[0]}; queue=("${queue[@]:1}")
        for d in ${links[$l]:-}; do
            [[ $seen == *" $d "* ]] || { seen+="$d "; queue+=("$d"); }
        done
    done
    echo "$seen"
}

for dir in src/*/; do
    layer=$(basename "$dir")
    if [ -z "${links[$layer]+x}" ]; then echo "$dir: a folder under src/ with no memtax_layer($layer ...) in CMakeLists.txt"; fail=1; continue; fi
    allowed=$(closure "$layer")
    while IFS=: read -r file line inc; do
        target=$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<<"$inc")
        if [[ $allowed != *" $target "* ]]; then
            echo "$file:$line: $layer includes $target/, which it does not link (allowed: $allowed)"
            fail=1
        fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include "[a-z_]+/' "$dir"* || true)
done

# src/README.md: | `layer/` | owns | links | — the memtax layers in the last column.
for layer in "${!links[@]}"; do
    row=$(grep -E "^\| \`$layer/\` \|" src/README.md || true)
    if [ -z "$row" ]; then echo "src/README.md: no row for $layer/"; fail=1; continue; fi
    documented=$(awk -F'|' '{print $(NF-1)}' <<<"$row" | grep -oE '\b[a-z_]+\b' | while read -r w; do
        if [ -n "${links[$w]+x}" ]; then echo "$w"; fi; done | sort | tr '\n' ' ')
    built=$(tr ' ' '\n' <<<"${links[$layer]}" | grep -v '^$' | sort | tr '\n' ' ' || true)
    if [ "$documented" != "$built" ]; then
        echo "src/README.md: $layer/ links \"$documented\" there but \"$built\" in CMakeLists.txt"
        fail=1
    fi
done

# Flags below cli/: a string literal holding --word (comments are allowed to name a flag). A
# runtime family's launch line names that runtime's flags, not memtax's: such lines say so
# with the comment "// the runtime's own flags".
while IFS=: read -r file line text; do
    [[ $text =~ ^[[:space:]]*// ]] && continue
    echo "$file:$line: a command-line flag named below cli/ (name the field; cli/commands.cpp maps it): ${text#"${text%%[![:space:]]*}"}"
    fail=1
done < <(grep -rnE '"[^"]*--[a-z]|"--"' src --include='*.cpp' --include='*.hpp' | grep -v '^src/cli/' |
         grep -v "// the runtime's own flags" || true)

[ $fail = 0 ] && echo "layers: includes follow the links of CMakeLists.txt, src/README.md matches them, no flag below cli/"
exit $fail
