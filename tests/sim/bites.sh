#!/usr/bin/env bash
# Proves the simulation bites: puts each known defect back (tests/sim/planted/*.patch), one at
# a time, runs seeds from 0 until the first failure, reports how many seeds that took, and
# takes the defect out again. `make sim-bites`. Needs a clean work tree for the patched files.
set -euo pipefail
cd "$(dirname "$0")/../.."
MAX=${MAX_SEEDS:-20000}
SIM="${CARGO_TARGET_DIR:-target}/debug/sim"
status=0
for patch in tests/sim/planted/*.patch; do
  name=$(basename "$patch" .patch)
  git apply "$patch"
  trap 'git apply -R "$patch" 2>/dev/null || true' EXIT
  cargo build --quiet -p sim --bin sim
  out=$(SEEDS=$MAX "$SIM" 2>&1 || true)
  git apply -R "$patch"
  trap - EXIT
  seed=$(printf '%s\n' "$out" | sed -n 's/^seed \([0-9]*\) failed.*/\1/p' | head -1)
  if [[ -n $seed ]]; then
    first=$(printf '%s\n' "$out" | sed -n 's/^  - //p' | head -1)
    printf '%-45s caught at seed %6s (%s seeds): %s\n' "$name" "$seed" "$((seed + 1))" "${first:0:150}"
  else
    printf '%-45s NOT caught in %s seeds\n' "$name" "$MAX"
    status=1
  fi
done
cargo build --quiet -p sim --bin sim
exit $status
