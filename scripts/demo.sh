#!/usr/bin/env bash
# The demo, on a fresh Debian machine as root: install what is missing, build, bring up a lab twin
# of topology/lab.toml (three hosts, each its own namespace with its own Open vSwitch; VLAN and
# routed containers), prove it with `ovsmesh check` and print the matrix.
# The lab stays up to explore; remove it with: target/release/ovsmesh lab down topology/lab.toml
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --locked
bin=target/release/ovsmesh
topology=${1:-topology/lab.toml}
prefix=${OVSMESH_LAB_PREFIX:-om}
"$bin" validate "$topology"
"$bin" lab down "$topology" --prefix "$prefix" >/dev/null
echo
start=$(date +%s%N)
"$bin" lab up "$topology" --prefix "$prefix"
echo "lab up took $(( ($(date +%s%N) - start) / 1000000 )) ms"
echo
echo "=== ovsmesh check $topology --lab $prefix"
"$bin" check "$topology" --lab "$prefix"
echo
echo "The lab is still up: ovsmesh lab status $topology --prefix $prefix; ovsmesh lab down $topology --prefix $prefix"
