#!/usr/bin/env bash
# What building the Debian package needs (sourced by scripts/package.sh; run as root): dpkg-dev
# (dpkg-shlibdeps, for the libc dependency) and cargo-deb at a pinned version, built once with
# `cargo install --locked` and kept in ~/.cargo/bin (a few minutes the first time, nothing after).
set -euo pipefail
CARGO_DEB_VERSION=3.8.0
if ! dpkg-query -W -f='${Status}' dpkg-dev 2>/dev/null | grep -q "install ok installed"; then
    echo "setup-packaging: installing dpkg-dev" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null; }
fi
export PATH="$HOME/.cargo/bin:$PATH"
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    echo "setup-packaging: cargo install --locked cargo-deb@$CARGO_DEB_VERSION" >&2
    nice cargo install --quiet --locked "cargo-deb@$CARGO_DEB_VERSION" >&2
fi
