#!/usr/bin/env bash
# Install what ovsmesh's build, tests and lab need on a Debian machine (run as root).
# Idempotent: installs only what is missing.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
want_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$1"); }

# Open vSwitch (ovsdb-server, ovs-vswitchd; ovs-vsctl only to check results in tests), iproute2, ping,
# Docker and busybox-static (the lab and tests run their own dockerd with an imported busybox image),
# a C toolchain for -sys crates; ovs-docker (openvswitch-common) and the uuidgen it calls, for the
# attach benchmark's side-by-side; iptables (legacy and nft) and nftables (`nft`) for the firewall tests;
# git (its git-daemon too) and ssh-keygen to make and serve the git-source tests' repositories and signed
# commits (the product reads them with gix); Graphviz, whose `dot` the graph tests render with.
for pkg in openvswitch-switch openvswitch-common uuid-runtime iproute2 iputils-ping docker.io busybox-static iptables nftables ca-certificates curl gcc pkg-config git openssh-client graphviz; do want_pkg "$pkg"; done
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# sshd for the ssh:// git test (it runs its own sshd in a lab namespace): installed without starting
# the system's ssh service (policy-rc.d) nor enabling it at boot.
if ! dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q "install ok installed"; then
    echo "setup: installing openssh-server (its service neither started nor enabled)"
    policy=/usr/sbin/policy-rc.d made_policy=
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null; }
    if [ -n "$made_policy" ]; then rm -f "$policy"; fi
    if have systemctl; then systemctl disable --quiet ssh.service 2>/dev/null || true; fi
fi

# Stable Rust with rustfmt and clippy. Debian 12's cargo (1.63) is too old for the dependencies,
# so a machine without a recent toolchain gets one from rustup.
if ! have cargo && [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
if ! have cargo; then
    echo "setup: installing Rust with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if have rustup; then
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
fi
echo "setup: $(cargo --version), $(ovs-vswitchd --version | head -1)"
