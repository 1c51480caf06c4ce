#!/usr/bin/env bash
# Regenerates the measured-vs-predicted sections of docs/accuracy.md from the recorded device
# measurements: everything between a "<!-- BEGIN memtax validate ... -->" line and its
# "<!-- END -->" is replaced by that command's Markdown output; the prose around the blocks is
# kept. tests/test_accuracy_doc.cpp fails when the file is not current.
# Usage: scripts/gen-accuracy.sh [path/to/memtax]   (default: build/memtax)
set -euo pipefail
cd "$(dirname "$0")/.."
memtax="${1:-build/memtax}"
doc=docs/accuracy.md
tmp="$(mktemp "docs/.accuracy.md.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
skip=0
while IFS= read -r line || [ -n "$line" ]; do
  if [[ "$line" =~ ^\<\!--\ BEGIN\ memtax\ (validate\ .*)\ --\>$ ]]; then
    printf '%s\n\n' "$line" >> "$tmp"
    # validate exits 1 when a case misses its check; the table says which, so keep its output.
    # shellcheck disable=SC2086
    "$memtax" ${BASH_REMATCH[1]} >> "$tmp" || [ $? -eq 1 ]
    printf '\n' >> "$tmp"
    skip=1
    continue
  fi
  if [[ "$line" == "<!-- END -->" ]]; then skip=0; fi
  [ "$skip" -eq 1 ] && continue
  printf '%s\n' "$line" >> "$tmp"
done < "$doc"
mv "$tmp" "$doc"
trap - EXIT
echo "wrote $doc"
