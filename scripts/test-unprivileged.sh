#!/usr/bin/env bash
# Run the test binaries as an unprivileged user (nobody), without --include-ignored: what a
# contributor's plain `cargo test` runs. Every test that needs root, OVS, Docker or namespaces
# must be #[ignore = "needs ..."]; one that is not fails here. Run as root after the tests were
# built (scripts/test.sh does). Prints the binaries' totals; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
user=nobody
run_as() { setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups \
    env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 "$@"; }
# The tests read fixtures from the source tree and run the built binary: nobody must reach them.
if ! run_as test -r Cargo.toml || ! run_as test -x target; then
    echo "test-unprivileged: $user cannot read $(pwd) (a parent directory is closed): NOT RUN"
    exit 0
fi
mapfile -t binaries < <(cargo test --locked --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"profile":{[^}]*"test":true[^}]*}.*"executable":"\([^"]*\)".*/\1/p')
[ "${#binaries[@]}" -gt 0 ] || { echo "test-unprivileged: no test binaries found"; exit 1; }
passed=0 failed=0 ignored=0 status=0
for binary in "${binaries[@]}"; do
    out=$(run_as timeout 600 "$binary" 2>&1) || { status=1; echo "$out" | grep -E "FAILED|panicked" || true; }
    read -r p f i < <(echo "$out" | awk '/^test result:/ { p += $4; f += $6; i += $8 } END { print p+0, f+0, i+0 }')
    passed=$((passed + p)) failed=$((failed + f)) ignored=$((ignored + i))
done
echo "unprivileged: $passed passed, $failed failed, $ignored ignored (need root: run by --include-ignored)"
exit "$status"
