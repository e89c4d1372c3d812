#!/usr/bin/env bash
# THE test command (README.md, .ci/run): every suite of the project, one after another.
# Each suite runs even if an earlier one failed; the exit status is non-zero if any failed.
#   scripts/test.sh            all suites
#   scripts/test.sh rust docs  only these
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(rust chart nix docs static schema)

# The chart and Nix suites run the real binaries; build them once, up front.
cargo build --locked --bins --quiet || { echo "test: cargo build failed"; exit 1; }

passed=0
failed=0
failed_names=()
for suite in "${suites[@]}"; do
  script="scripts/test-$suite.sh"
  [ -x "$script" ] || { echo "test: no such suite: $suite"; exit 2; }
  echo "=== $suite ($script)"
  started=$(date +%s)
  if "$script"; then
    passed=$((passed + 1))
    echo "=== $suite: ok ($(( $(date +%s) - started ))s)"
  else
    failed=$((failed + 1))
    failed_names+=("$suite")
    echo "=== $suite: FAILED ($(( $(date +%s) - started ))s)"
  fi
done

[ "$failed" -eq 0 ] || echo "failed suites: ${failed_names[*]}"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
