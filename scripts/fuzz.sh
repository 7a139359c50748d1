#!/usr/bin/env bash
# make fuzz: every fuzz target of the tree for FUZZTIME each (default 20s).
# Targets are found, not listed, so a new one is fuzzed without editing this.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-20s}
fail=0
while read -r file name; do
  pkg=$(dirname "$file")
  echo "== $pkg $name ($t)"
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" "$pkg"; then
    fail=1
  fi
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
  grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed "s|^func |$f |"
done)
exit $fail
