#!/usr/bin/env bash
# Regenerates the measured-vs-predicted sections of README.md and docs/*.md from the recorded
# device measurements: everything between a "<!-- BEGIN memtax validate|accuracy ... -->" line and
# its "<!-- END -->" is replaced by that command's Markdown output; the prose around the blocks is
# kept. tests/test_accuracy_doc.cpp fails when a file is not current.
# Usage: scripts/gen-accuracy.sh [path/to/memtax]   (default: build/memtax)
set -euo pipefail
cd "$(dirname "$0")/.."
memtax="${1:-build/memtax}"
for doc in README.md docs/*.md; do
  grep -q '^<!-- BEGIN memtax ' "$doc" || continue
  tmp="$(mktemp "$(dirname "$doc")/.gen.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  skip=0
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ "$line" =~ ^\<\!--\ BEGIN\ memtax\ ((validate|accuracy)\ .*)\ --\>$ ]]; then
      printf '%s\n\n' "$line" >> "$tmp"
      # validate and accuracy exit 1 when a case or a bar misses; the table says which, so keep it.
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
done
