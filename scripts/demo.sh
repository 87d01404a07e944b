#!/usr/bin/env bash
# Set up a Debian machine (as root), build ovsmesh and show what it would make of the lab topology:
# validation, then the plan of every lab host against an empty host.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --locked
bin=target/release/ovsmesh
topology=${1:-topology/lab.toml}
"$bin" validate "$topology"
for host in $(sed -n 's/^\[hosts\.\([^]]*\)\]$/\1/p' "$topology"); do
    echo
    echo "=== ovsmesh plan --host $host $topology --offline"
    "$bin" plan --host "$host" "$topology" --offline || [ $? -eq 2 ]
done
