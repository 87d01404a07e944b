#!/usr/bin/env bash
# The fleet follows git (issue 20), for the VM suite: three VMs' daemons follow one repository
# served by `git daemon` from the lab host (inside the lab's namespace, on its address on the
# management network), only commits signed by the suite's key are applied, a bad commit reaches
# none, a commit that cuts the hosts off each other is rolled back wherever it reached, and
# `ovsmesh fleet status` on node1 shows it. Source this file from scripts/vm-test.sh: it uses its
# `vm`, `on_all`, `$ns`, `$state`, `$bin` and `$hosts`. Each gf_* check returns 0 or 1 and prints
# what it saw; times are printed as "... in N s".
# shellcheck disable=SC2154 # ns, state, hosts: set by scripts/vm-test.sh
#
# The daemons are switched to git through /etc/default/ovsmesh (OVSMESH_GIT and friends, read by
# the unit), and back to the file by gf_back_to_file. Checks run in subshells: what one learns
# for the next (the URL, the last good commit) is kept in files under $gf_dir.

gf_dir="$state/git"
gf_repo="$gf_dir/mesh.git"
gf_work="$gf_dir/work"
gf_key="$gf_dir/ops"
gf_poll=3s
gf_window=20s

gf_set() { echo "$2" > "$gf_dir/$1"; }
gf_get() { cat "$gf_dir/$1"; }
gf_git() { git -C "$gf_work" -c user.name=ovsmesh-vm-test -c user.email=ops@example.org "$@"; }

# gf_commit FILE [unsigned]: commit FILE as topology.toml (signed by the suite's key unless
# "unsigned"), push it; prints the commit id.
gf_commit() {
    cp "$1" "$gf_work/topology.toml"
    gf_git add topology.toml
    if [ "${2:-}" = unsigned ]; then
        gf_git commit -q --allow-empty -m "topology: $(basename "$1")" || return 1
    else
        gf_git -c gpg.format=ssh -c user.signingkey="$gf_key" commit -q -S --allow-empty \
            -m "topology: $(basename "$1")" || return 1
    fi
    gf_git push -q origin HEAD:main || return 1
    gf_git rev-parse HEAD
}

# The lab host's address on the management network (the VMs reach it there).
gf_address() {
    ip -n "$ns" -4 -o addr show | awk '{ split($4, a, "/"); split(a[1], o, ".") }
        o[1] == 198 && o[2] == 51 && o[3] == 100 && o[4] < 128 { print a[1]; exit }'
}

# gf_serve TOPOLOGY: the repository with its first commit, the key, git daemon in the namespace.
gf_serve() {
    local address
    address=$(gf_address)
    [ -n "$address" ] || { echo "no lab address on 198.51.100.0/25"; return 1; }
    mkdir -p "$gf_repo" "$gf_work"
    git -C "$gf_repo" init -q --bare -b main && git -C "$gf_work" init -q -b main &&
        gf_git remote add origin "$gf_repo" || return 1
    ssh-keygen -q -t ed25519 -N '' -C ops@example.org -f "$gf_key" || return 1
    printf 'ops@example.org namespaces="git" %s\n' "$(cat "$gf_key.pub")" > "$gf_dir/allowed_signers"
    local first
    first=$(gf_commit "$1") || return 1
    gf_set good "$first"
    gf_set url "git://$address/mesh.git"
    ip netns exec "$ns" "$(git --exec-path)/git-daemon" --export-all --reuseaddr --detach \
        --listen="$address" --base-path="$gf_dir" --pid-file="$gf_dir/daemon.pid" "$gf_dir" || return 1
    echo "serving $(gf_get url), first commit $first"
}

# Every daemon follows the repository (signed commits only, a short poll, metrics on all addresses
# for fleet status).
gf_follow() {
    local signers host url
    signers=$(base64 -w0 "$gf_dir/allowed_signers")
    url=$(gf_get url)
    for host in "${hosts[@]}"; do
        vm "$host" "echo $signers | base64 -d > /etc/ovsmesh/allowed_signers
            cat > /etc/default/ovsmesh <<EOF
OVSMESH_HOST=$host
OVSMESH_GIT=$url
OVSMESH_GIT_POLL=$gf_poll
OVSMESH_ROLLBACK_WINDOW=$gf_window
OVSMESH_ALLOWED_SIGNERS=/etc/ovsmesh/allowed_signers
OVSMESH_METRICS=0.0.0.0:9475
EOF
            systemctl restart ovsmesh" || return 1
    done
}

# gf_fleet_until SECONDS AWK: `ovsmesh fleet status` on node1 until every host's line matches the
# awk condition; prints the last answer and how long it took.
gf_fleet_until() {
    local started=$SECONDS out
    while [ $((SECONDS - started)) -lt "$1" ]; do
        out=$(vm node1 "ovsmesh fleet status /etc/ovsmesh/topology.toml 2>&1")
        if printf '%s\n' "$out" | awk -v n="${#hosts[@]}" "$2 { m++ } END { exit m != n }"; then
            printf '%s\n' "$out"
            echo "fleet as expected in $((SECONDS - started)) s"
            return 0
        fi
        sleep 1
    done
    printf '%s\n' "$out"
    echo "fleet not as expected after $1 s"
    return 1
}

# gf_on_good: every host applied the last good commit (converged, not on probation).
gf_on_good() {
    local good
    good=$(gf_get good)
    gf_fleet_until 120 "/ commit ${good:0:12} +converged,/"
}

# gf_edit_reaches_all FILE: push once, time until all three run it.
gf_edit_reaches_all() {
    local commit started=$SECONDS
    commit=$(gf_commit "$1") || return 1
    gf_set good "$commit"
    gf_on_good || return 1
    echo "signed edit $commit pushed once -> on all ${#hosts[@]} VMs in $((SECONDS - started)) s"
}

# gf_bad_everywhere VERDICT SECONDS FILE [unsigned]: the commit is refused (VERDICT "refused") or
# applied and rolled back ("rolled-back") on every host within SECONDS; all stay on the good commit.
gf_bad_everywhere() {
    local verdict=$1 seconds=$2 commit good started=$SECONDS
    shift 2
    good=$(gf_get good)
    commit=$(gf_commit "$@") || return 1
    gf_fleet_until "$seconds" "/ commit ${good:0:12} +converged,.*, $verdict ${commit:0:12}/" || return 1
    echo "bad commit $commit: $verdict on all ${#hosts[@]} VMs in $((SECONDS - started)) s"
    on_all "ovsmesh status --host HOST | grep -E '${verdict/-/ } +${commit:0:12}'"
}

# Back to the topology file (the service's default), with the text the fleet runs now.
gf_back_to_file() {
    local text host
    text=$(git -C "$gf_work" show "$(gf_get good):topology.toml" | base64 -w0) || return 1
    for host in "${hosts[@]}"; do
        vm "$host" "echo $text | base64 -d > /etc/ovsmesh/topology.toml
            echo OVSMESH_HOST=$host > /etc/default/ovsmesh; systemctl restart ovsmesh" || return 1
    done
}
