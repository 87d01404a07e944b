#!/usr/bin/env bash
# Set up a Debian machine (as root) and run every check CI runs: format, lints, tests, benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --no-fail-fast 2>&1 | tee target/test-output.txt
echo "--- benchmarks (figures only, no pass/fail)"
cargo bench --locked --bench validate_plan 2>&1 | grep -E '^validate_plan:'
cargo bench --locked --bench ovsdb_apply 2>&1 | grep -E '^ovsdb_apply:'
# The last line CI reads: totals of every test binary.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' target/test-output.txt
