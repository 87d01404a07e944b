#!/usr/bin/env bash
# The VM suite: ovsmesh on real (virtual) hosts — the kernel datapath, Docker with its default
# firewall, systemd — proven with packets, through `vagrant up` of vagrant/Vagrantfile with the
# libvirt provider. Run as root on a Debian 12 machine; it installs what it needs.
#
# Every VM network lives inside a network namespace this script creates (no NAT, no route out,
# documentation address ranges only); a private libvirtd runs in it with its own mount namespace,
# state under /var/lib/ovsmesh-vm/RUN. QEMU runs in software emulation (TCG): KVM is not needed.
# The box is built by vagrant/box/build.sh and cached in /var/cache/ovsmesh-vm.
# Everything is torn down at the end, also on failure or Ctrl-C.
#
# The guests install ovsmesh from its Debian package (scripts/package.sh), as a user's host would.
# Environment: OVSMESH_DEB (the package for the guests; default: made by scripts/package.sh, which
#              also builds target/release/ovsmesh for the checks run here),
#              OVSMESH_VM_KEEP=1 (debugging: keep the VMs and print how to reach them),
#              OVSMESH_VM_RACE=N (the plugin's race test: N fresh containers, default 15; 50 for
#              the issue's proof), OVSMESH_VM_LATENCY=1 (also 20 runs on Docker's default bridge).
# Prints one line per check with its time, per-step timings, and `N passed, N failed` last.
# Checks are functions run through `check NAME FUNCTION ...`, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -uo pipefail
{ # The whole script is parsed before it runs: editing it during a run cannot derail the run.

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
run_id="ovmvm$$"
ns="$run_id"
upstream="${run_id}up" # an "outside" host on the underlay segment (egress checks)
state="/var/lib/ovsmesh-vm/$run_id"
log="$state/log"
hosts=(node1 node2 node3)
topology="$repo/topology/vagrant.toml"
mkdir -p "$state"
: > "$log"
exec 3>&1 4>&2 # the terminal, for what a trap prints while a check's output goes to the log
deb=${OVSMESH_DEB:+$(realpath -m "$OVSMESH_DEB")}
bin=$(realpath -m "$repo/target/release/ovsmesh")

passed=0
failed=0
suite_start=$SECONDS
step_name=""
step_start=$SECONDS
timings=()

say() { printf 'vm-test: %s\n' "$*"; }
step() {
    end_step
    step_name=$1
    step_start=$SECONDS
    printf '\n== %s (at %d s)\n' "$step_name" "$((SECONDS - suite_start))"
}
end_step() {
    if [ -n "$step_name" ]; then
        timings+=("$(printf '%-44s %5d s' "$step_name" "$((SECONDS - step_start))")")
    fi
    step_name=""
}
# check DESCRIPTION COMMAND...: one pass/fail line with the check's own time.
check() {
    local description=$1 started=$SECONDS
    shift
    echo "--- $description" >> "$log"
    # In the background, so that a signal's trap runs at once (bash defers it past a foreground job).
    "$@" >> "$log" 2>&1 &
    if wait $!; then
        passed=$((passed + 1))
        printf '  PASS %-64s %4d s\n' "$description" "$((SECONDS - started))"
    else
        failed=$((failed + 1))
        printf '  FAIL %-64s %4d s\n' "$description" "$((SECONDS - started))"
        tail -15 "$log" | sed 's/^/       | /'
        return 1
    fi
}
# A step the rest depends on: on failure, stop here (teardown still runs).
must() { check "$@" || finish; }

finish() {
    {
        end_step
        printf '\n== timings\n'
        printf '  %s\n' "${timings[@]}"
        printf '  %-44s %5d s\n' "total" "$((SECONDS - suite_start))"
        [ -s "$state/plugin-figures" ] && { printf '\n== plugin figures\n'; sed 's/^/  /' "$state/plugin-figures"; }
        teardown
        echo "vm: $passed passed, $failed failed"
    } >&3 2>&4
    [ "$failed" -eq 0 ]
    exit
}

# --- host packages -----------------------------------------------------------------------------------
install_packages() {
    local need=() pkg version
    for pkg in qemu-system-x86 qemu-utils debootstrap extlinux syslinux-common fdisk vagrant \
        vagrant-libvirt libvirt-daemon-system libvirt-clients dnsmasq-base shellcheck openssh-client \
        iproute2 iptables git; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
    done
    # qemu-utils from backports conflicts with bookworm's qemu-system-common: take bookworm's.
    if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q bpo; then need+=(qemu-utils); fi
    [ "${#need[@]}" -eq 0 ] && return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || return 1
    version=$(apt-cache madison qemu-utils | awk -F'|' '$3 ~ / bookworm\/main / { gsub(/ /, "", $2); print $2; exit }')
    for i in "${!need[@]}"; do
        if [ "${need[$i]}" = qemu-utils ] && [ -n "$version" ]; then need[i]="qemu-utils=$version"; fi
    done
    echo "installing ${need[*]}"
    # No service may start from these packages (a system libvirtd would bring up its NAT network
    # in the root namespace): the lab starts its own libvirtd. policy-rc.d is the Debian way.
    local guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
        guard=/usr/sbin/policy-rc.d
    fi
    local rc=0
    apt-get install -y -qq --no-install-recommends --allow-downgrades "${need[@]}" || rc=$?
    [ -n "$guard" ] && rm -f "$guard"
    return "$rc"
}

build_package() { # OVSMESH_DEB as given, or made here (with $bin) and named in $state/package.path
    if [ -z "$deb" ]; then
        ./scripts/package.sh > "$state/package.path" || return 1
        deb=$(tail -1 "$state/package.path")
    else
        export PATH="$HOME/.cargo/bin:$PATH"
        nice cargo build --release --locked --bin ovsmesh || return 1
    fi
    [ -f "$deb" ] || { echo "$deb: no package"; return 1; }
    [ -x "$bin" ] || { echo "$bin is not executable"; return 1; }
    dpkg-deb --info "$deb" | grep -E "Package|Version|Depends"
}

# --- the private libvirtd, in the lab's network namespace -------------------------------------------
lv="$state/libvirt"
socket="$lv/run/libvirt-sock"
virsh_() { virsh -q -c "qemu:///system?socket=$socket" "$@"; }

start_libvirtd() {
    ip netns add "$ns" || return 1
    ip -n "$ns" link set lo up
    mkdir -p "$lv"/{etc,lib,log,cache,run}
    cp -a /etc/libvirt/. "$lv/etc/"
    cp -a /var/lib/libvirt/. "$lv/lib/"
    mkdir -p "$lv/lib/images" "$lv/log/qemu" "$lv/cache/qemu"
    rm -f "$lv/etc/qemu/networks/default.xml" "$lv/etc/qemu/networks/autostart/default.xml"
    # root: no re-probe of QEMU on every call (/dev/kvm is 0600); console to files, not virtlogd.
    cat >> "$lv/etc/qemu.conf" <<'EOF'
stdio_handler = "file"
security_driver = "none"
user = "root"
group = "root"
EOF
    mkdir -p /etc/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /run/libvirt # mount points
    ip netns exec "$ns" unshare -m --propagation private sh -c "
        mount --bind '$lv/etc' /etc/libvirt && mount --bind '$lv/lib' /var/lib/libvirt &&
        mount --bind '$lv/log' /var/log/libvirt && mount --bind '$lv/cache' /var/cache/libvirt &&
        mount --bind '$lv/run' /run/libvirt && exec libvirtd -d -p '$state/libvirtd.pid'" || return 1
    for _ in $(seq 50); do
        [ -S "$socket" ] && virsh_ version >/dev/null 2>&1 && break
        sleep 0.2
    done
    virsh_ pool-define-as default dir --target /var/lib/libvirt/images >/dev/null &&
        virsh_ pool-start default >/dev/null
}

# --- Vagrant ------------------------------------------------------------------------------------------
export VAGRANT_HOME="$state/vagrant.d" VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_DEFAULT_PROVIDER=libvirt
export VAGRANT_CWD="$repo/vagrant" VAGRANT_DOTFILE_PATH="$state/dot"
export OVSMESH_BOX=ovsmesh/debian12 OVSMESH_LIBVIRT_SOCKET="$socket" OVSMESH_LIBVIRT_QEMU_TCG=1
export OVSMESH_NET_PREFIX="$run_id" OVSMESH_TOPOLOGY="$topology" OVSMESH_BIN="$bin"
# OVSMESH_DEB is exported once the package is made (below).
vagrant_() { ip netns exec "$ns" vagrant "$@"; }
ssh_config="$state/ssh_config"

# vm HOST SCRIPT: run SCRIPT as root on HOST (bash), output to stdout. In SCRIPT,
# `inside CONTAINER COMMAND...` runs the VM's COMMAND in a container's network namespace (quicker
# than `docker exec` under emulation).
# shellcheck disable=SC2016 # expanded in the VM
guest_functions='inside() { local pid; pid=$(docker inspect -f "{{.State.Pid}}" "$1") || return 1; shift; nsenter -t "$pid" -n "$@"; }'
vm() {
    local host=$1
    shift
    ip netns exec "$ns" ssh -F "$ssh_config" -o ControlMaster=auto -o ControlPath="$state/ssh-%h" \
        -o ControlPersist=900 -o ConnectTimeout=10 -o ServerAliveInterval=5 "$host" sudo bash -s \
        <<<"$guest_functions
$*"
}

teardown() {
    [ -n "${torn_down:-}" ] && return
    torn_down=1
    if [ "${OVSMESH_VM_KEEP:-}" = 1 ]; then
        say "kept: ip netns exec $ns ssh -F $ssh_config node1; state in $state"
        return
    fi
    say "tearing down"
    [ -d "$VAGRANT_DOTFILE_PATH" ] && timeout 180 ip netns exec "$ns" vagrant destroy -f >> "$log" 2>&1
    # Every process left in the lab's namespace was started by this run: libvirtd, dnsmasq, QEMU, ssh.
    local pids
    pids=$(ip netns pids "$ns" 2>/dev/null)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill $pids 2>/dev/null
        sleep 2
        pids=$(ip netns pids "$ns" 2>/dev/null)
        # shellcheck disable=SC2086
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    fi
    ip netns del "$ns" 2>/dev/null
    ip netns del "$upstream" 2>/dev/null
    if [ "$failed" -gt 0 ]; then
        cp "$log" "/var/lib/ovsmesh-vm/$run_id.log" 2>/dev/null && say "log kept in /var/lib/ovsmesh-vm/$run_id.log"
    fi
    rm -rf "$state"
}
trap 'say "interrupted"; failed=$((failed + 1)); finish' INT TERM
trap 'teardown' EXIT

# --- checks run in the VMs ----------------------------------------------------------------------------
on_all() { # on_all SCRIPT (with HOST substituted): run on every VM at once, fail if any fails
    local pids=() host rc=0
    for host in "${hosts[@]}"; do
        vm "$host" "${1//HOST/$host}" > "$state/out.$host" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { rc=1; echo "[${hosts[$i]}] failed:"; }
        sed "s/^/[${hosts[$i]}] /" "$state/out.${hosts[$i]}"
    done
    return "$rc"
}
converged_all() { # every host converged within $1 seconds
    on_all "for i in \$(seq $1); do ovsmesh status --host HOST /etc/ovsmesh/topology.toml >/dev/null 2>&1 && exit 0; sleep 1; done; ovsmesh status --host HOST /etc/ovsmesh/topology.toml"
}
check_all() { on_all "ovsmesh check /etc/ovsmesh/topology.toml --host HOST"; }
push_topology() { # push_topology FILE: the edited topology copied in; the daemon applies it
    "$bin" validate "$1" || return 1
    local host
    for host in "${hosts[@]}"; do
        vm "$host" "echo $(base64 -w0 "$1") | base64 -d > /etc/ovsmesh/topology.toml.new && mv /etc/ovsmesh/topology.toml.new /etc/ovsmesh/topology.toml" || return 1
    done
}
# variant SED_SCRIPT NAME: a copy of the default topology changed by sed
variant() {
    sed "$1" "$topology" > "$state/$2.toml"
    echo "$state/$2.toml"
}
# tcp SRC_HOST SRC_CONTAINER DST_HOST DST_CONTAINER DST_ADDRESS: 1 MiB across, every byte counted
tcp() {
    vm "$3" "rm -f /tmp/rx-$4; pid=\$(docker inspect -f '{{.State.Pid}}' $4)
        nohup nsenter -t \$pid -n busybox nc -l -p 5001 -e sh -c 'wc -c > /tmp/rx-$4' < /dev/null > /dev/null 2>&1 &
        for _ in \$(seq 40); do inside $4 ss -ltn | grep -q ':5001 ' && exit 0; sleep 0.5; done; exit 1" || return 1
    vm "$1" "head -c 1048576 /dev/zero | inside $2 busybox nc $5 5001" || return 1
    local got=""
    for _ in $(seq 10); do
        got=$(vm "$3" "cat /tmp/rx-$4 2>/dev/null")
        [ "$got" = 1048576 ] && return 0
        sleep 1
    done
    echo "received ${got:-nothing} of 1048576 bytes"
    return 1
}
# ping_from HOST CONTAINER ADDRESS: one of three pings answered
ping_from() { vm "$1" "inside $2 ping -c 3 -W 2 $3"; }
kernel_datapath() { # the bridges' ports in the kernel's datapath, GRE as the kernel's flow-based gre_sys
    on_all "test \"\$(ovs-vsctl get bridge ovs0 datapath_type)\" = system && ovs-dpctl show system@ovs-system | grep -q ': obr0 (internal)' && ovs-dpctl show | grep -q ': gre_sys (gre'"
}

# =====================================================================================================
step "set-up: host packages"
must "packages (qemu, libvirt, vagrant, debootstrap, shellcheck)" install_packages
step "set-up: ovsmesh package"
must "Debian package for the guests (scripts/package.sh)" build_package
# (check runs it in a subshell: the path it made is read back from its file)
[ -n "$deb" ] || deb=$(tail -1 "$state/package.path")
export OVSMESH_DEB="$deb"
step "set-up: box (vagrant/box/build.sh, cached)"
must "box built or taken from the cache" sh -c "vagrant/box/build.sh > $state/box.path"
box=$(tail -1 "$state/box.path")
check "shellcheck of the lab's scripts" shellcheck -x vagrant/provision.sh vagrant/box/build.sh scripts/vm-test.sh scripts/vm-checks/kernel-host.sh scripts/vm-checks/git-follow.sh scripts/vm-checks/plugin.sh scripts/vm-checks/ipv6.sh scripts/package.sh scripts/setup-packaging.sh
step "set-up: private libvirtd in namespace $ns"
must "libvirtd running, storage pool defined" start_libvirtd
must "box added to Vagrant" vagrant_ box add --name "$OVSMESH_BOX" "$box"

step "vagrant up (3 VMs, libvirt, provisioning)"
must "vagrant up --provider=libvirt" vagrant_ up --provider=libvirt
must "ssh configuration" sh -c "ip netns exec $ns vagrant ssh-config > $ssh_config"
check "every VM converged after vagrant up" converged_all 60
check "bridges on the kernel datapath (system@ovs-system, gre_sys)" kernel_datapath

step "the Debian package and the hardened Type=notify service"
version_line=$("$bin" --version)
# shellcheck disable=SC2016 # expanded in the VM
check "package installed: --version, man pages, bash completion" on_all "
    dpkg -s ovsmesh | grep -q '^Status: install ok installed' &&
    test \"\$(ovsmesh --version)\" = '$version_line' && echo \"\$(ovsmesh --version)\" &&
    man -w ovsmesh ovsmesh-daemon && man ovsmesh 2>/dev/null | grep -q 'Declarative multi-host' &&
    source /usr/share/bash-completion/completions/ovsmesh && COMP_WORDS=(ovsmesh gr) COMP_CWORD=1 &&
    _ovsmesh ovsmesh gr ovsmesh && test \"\${COMPREPLY[*]}\" = graph &&
    test -f /usr/share/zsh/vendor-completions/_ovsmesh -a -f /usr/share/fish/vendor_completions.d/ovsmesh.fish"
# shellcheck disable=SC2016 # expanded in the VM
# Restarted first: `systemctl restart` returns once the daemon said READY=1, and its journal lines
# are looked for from then on (the VMs' small volatile journal may have rotated the first start away).
check "service: Type=notify, active after READY, status text, watchdog, unit verifies" on_all '
    since=$(date +%s); systemctl restart ovsmesh || { echo "systemctl restart ovsmesh failed"; exit 1; }
    systemctl show -p Type,ActiveState,SubState,WatchdogUSec,StatusText ovsmesh | tee /dev/stderr > /tmp/show &&
    grep -qx Type=notify /tmp/show && grep -qx ActiveState=active /tmp/show &&
    grep -qx WatchdogUSec=2min /tmp/show && grep -q "^StatusText=converged: " /tmp/show ||
        { echo "systemctl show: not as expected"; exit 1; }
    for i in $(seq 30); do
        journalctl -u ovsmesh --since "@$since" -o cat --no-pager | grep -q "systemd watchdog enabled" && break
        if [ "$i" = 30 ]; then
            echo "no \"systemd watchdog enabled\" in the journal since the restart; $(journalctl --disk-usage)"
            journalctl -u ovsmesh --since "@$since" -o cat --no-pager | head -5; exit 1
        fi
        sleep 2
    done
    timeout 120 systemd-analyze verify ovsmesh.service || { echo "systemd-analyze verify ovsmesh.service failed"; exit 1; }'
# CapBnd of the daemon: exactly CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_SYS_ADMIN (21),
# CAP_SYS_PTRACE (19) = 0x283000; no new privileges; /usr read-only for it.
# shellcheck disable=SC2016 # expanded in the VM
check "service is hardened: capability bounding set, NoNewPrivs, read-only /usr" on_all '
    pid=$(systemctl show -p MainPID --value ovsmesh) && grep -E "^(CapBnd|NoNewPrivs)" /proc/$pid/status &&
    grep -qx "CapBnd:	0000000000283000" /proc/$pid/status && grep -qx "NoNewPrivs:	1" /proc/$pid/status &&
    nsenter -t $pid -m sh -c "! touch /usr/ovsmesh-write-test 2>/dev/null" &&
    systemd-analyze security ovsmesh --no-pager | tail -1'
# shellcheck disable=SC2016 # expanded in the VM
# The package enables and starts nothing: after a reinstall the admin starts the plugin socket and
# the service again (the socket first: the service takes it over).
check "dpkg -r stops and removes it (network left), reinstall + start converges again" vm node2 '
    dpkg -r ovsmesh >/dev/null && ! command -v ovsmesh && ! systemctl is-active -q ovsmesh &&
    ! systemctl is-active -q ovsmesh.socket &&
    test ! -e /usr/lib/systemd/system/ovsmesh.service && test -e /etc/ovsmesh/topology.toml &&
    ovs-vsctl br-exists obr0 &&
    dpkg -i /tmp/ovsmesh-provision/ovsmesh.deb >/dev/null && systemctl start ovsmesh.socket ovsmesh &&
    systemctl is-active ovsmesh.socket ovsmesh && ovsmesh status --host node2 /etc/ovsmesh/topology.toml >/dev/null'

step "VLAN networks over GRE, overlapping subnets"
check "check --host on every VM (reachability, isolation by MAC, DF ping)" check_all
check "blue1 -> blue2 ping across GRE" ping_from node1 blue1 192.0.2.2
check "red1 -> red2 ping across GRE (same addresses, other VLAN)" ping_from node1 red1 192.0.2.3
check "TCP 1 MiB blue1 (node1) -> blue2 (node2)" tcp node1 blue1 node2 blue2 192.0.2.2

step "routed overlay across three hosts (GRE)"
check "pod1 -> pod2 ping" ping_from node1 pod1 203.0.113.170
check "pod1 -> pod3 ping" ping_from node1 pod1 203.0.113.200
check "pod2 -> pod3 ping" ping_from node2 pod2 203.0.113.200
check "TCP 1 MiB pod3 (node3) -> pod1 (node1)" tcp node3 pod3 node1 pod1 203.0.113.140
check "ovsmesh's accept rules in DOCKER-USER, status explains them" on_all \
    "iptables -S DOCKER-USER | grep -q -- '-i obr0 -o obr0 .*ovsmesh:vagrant' && ovsmesh status --host HOST /etc/ovsmesh/topology.toml | grep 'firewall  FORWARD policy DROP; .* in DOCKER-USER'"

step "egress = \"nat\" (routed network and VLAN network blue; Docker's default firewall)"
# The upstream: a namespace on this machine plugged into the VMs' underlay segment, 203.0.113.99/25,
# with no route to the container subnets. It counts ICMP by source: from node1's underlay address
# (masqueraded) and from the mesh's own subnets (not masqueraded).
upstream_up() {
    local bridge
    bridge=$(virsh_ net-info "$OVSMESH_NET_PREFIX-underlay" | awk '$1 == "Bridge:" { print $2 }')
    [ -n "$bridge" ] || { echo "no bridge for the underlay network"; return 1; }
    ip netns add "$upstream" &&
        ip -n "$ns" link add "${run_id}u" type veth peer name eth0 netns "$upstream" &&
        ip -n "$ns" link set "${run_id}u" master "$bridge" up &&
        ip -n "$upstream" addr add 203.0.113.99/25 dev eth0 && ip -n "$upstream" link set eth0 up &&
        ip -n "$upstream" link set lo up &&
        ip netns exec "$upstream" iptables -A INPUT -p icmp -s 203.0.113.11 -j ACCEPT &&
        ip netns exec "$upstream" iptables -A INPUT -p icmp -s 203.0.113.128/25 -j ACCEPT &&
        ip netns exec "$upstream" iptables -A INPUT -p icmp -s 192.0.2.0/24 -j ACCEPT && ip -n "$upstream" route
}
# upstream_seen SOURCE: ICMP packets the upstream counted from SOURCE (as its rule names it)
upstream_seen() { ip netns exec "$upstream" iptables -L INPUT -v -n -x | awk -v s="$1" '$8 == s { print $1 }'; }
# egress_from HOST CONTAINER: the container pings the upstream, which sees node1's address only
egress_from() {
    local before after mesh_before mesh_after
    before=$(upstream_seen 203.0.113.11)
    mesh_before=$(( $(upstream_seen 203.0.113.128/25) + $(upstream_seen 192.0.2.0/24) ))
    ping_from "$1" "$2" 203.0.113.99 || return 1
    after=$(upstream_seen 203.0.113.11)
    mesh_after=$(( $(upstream_seen 203.0.113.128/25) + $(upstream_seen 192.0.2.0/24) ))
    echo "upstream counted from 203.0.113.11: $before -> $after; from the mesh's subnets: $mesh_before -> $mesh_after"
    [ "$after" -gt "$before" ] && [ "$mesh_after" = "$mesh_before" ]
}
# keeps_source FROM_HOST FROM DST_HOST DST SOURCE DST_ADDRESS: DST counts FROM's pings by FROM's own address
keeps_source() {
    vm "$3" "inside $4 iptables -I INPUT -p icmp -s $5 -j ACCEPT" || return 1
    ping_from "$1" "$2" "$6"
    local rc=$? count
    count=$(vm "$3" "inside $4 iptables -L INPUT -v -n -x | awk '\$8 == \"$5\" { print \$1; exit }'; inside $4 iptables -D INPUT -p icmp -s $5 -j ACCEPT")
    echo "$4 counted $count packet(s) from $5"
    [ "$rc" = 0 ] && [ "${count:-0}" -gt 0 ]
}
masquerades() { # the nat rules where the networks are routed: pods everywhere, blue on node1 only
    vm node1 "iptables -t nat -S OVSMESH-POSTROUTING | grep -c -- '-j MASQUERADE --random-fully' | grep -qx 2" &&
        vm node2 "iptables -t nat -S OVSMESH-POSTROUTING | grep -c -- '-j MASQUERADE --random-fully' | grep -qx 1"
}
check "upstream namespace on the underlay segment (no route to the containers)" upstream_up
check "MASQUERADE --random-fully for pods on every host, for blue on node1 only" masquerades
check "pod1 (routed, node1) reaches the upstream as 203.0.113.11" egress_from node1 pod1
check "blue2 (VLAN, node2, gateway on node1) reaches the upstream as 203.0.113.11" egress_from node2 blue2
check "pod2 -> pod1 across hosts keeps its source address 203.0.113.170" keeps_source node2 pod2 node1 pod1 203.0.113.170 203.0.113.140
check "blue2 -> pod1 (routed by node1 from VLAN to overlay) keeps its source address 192.0.2.2" keeps_source node2 blue2 node1 pod1 192.0.2.2 203.0.113.140

step "manage_firewall = false"
check "manage_firewall = false copied in, every VM converged" push_topology "$(variant 's/^vlan_transport = "tunnel"$/&\nmanage_firewall = false/; /^egress = /d' nofirewall)"
check "opted out: every VM converged, rules gone" converged_all 60
dropped() { vm node1 "iptables -L FORWARD -v -n -x | awk 'NR == 1 { print \$5 }'"; }
without_rules() {
    local before after
    before=$(dropped)
    ping_from node1 pod1 203.0.113.170 && { echo "pod2 reachable without the rules?"; return 1; }
    after=$(dropped)
    echo "FORWARD policy DROP counted $before -> $after packets"
    [ "$after" -gt "$before" ]
}
check "opted out: routed overlay passes nothing, dropped by Docker's FORWARD policy" without_rules
check "opted out: no ovsmesh rules left, status warns about the DROP policy" on_all \
    "! iptables -S | grep ovsmesh: && ovsmesh status --host HOST /etc/ovsmesh/topology.toml | grep 'warning: .*DROP and manage_firewall = false'"
default_again() { push_topology "$topology" && converged_all 60; }
back_to_default() { push_topology "$topology" && converged_all 60 && ping_from node1 pod1 203.0.113.170; }
check "default topology back: rules back, pod1 -> pod2 again" back_to_default
# A smaller underlay MTU on node2 for a moment: the kernel's GRE answers pod2's don't-fragment
# ping with "fragmentation needed", and pod2 keeps a PMTU exception (route cache) for pod1.
pmtu_exception() {
    vm node2 "pid=\$(docker inspect -f '{{.State.Pid}}' pod2); ip link set eth1 mtu 1400
        nsenter -t \$pid -n ping -c 2 -W 2 -M do -s 1430 203.0.113.140; ip link set eth1 mtu 1500
        nsenter -t \$pid -n ip route show cache table all | grep 'mtu 13'"
}
check "PMTU exception left in pod2 by the kernel tunnel's ICMP" pmtu_exception
check "node2 converged with it (a route-cache exception is not drift)" converged_all 20
check "pod2's route cache flushed (the exception would outlive this step)" vm node2 "inside pod2 ip route flush cache"

step "kernel-host fixes (redirects, internal MTUs, underlay MTU, INPUT, rp_filter, networkd)"
# shellcheck source=scripts/vm-checks/kernel-host.sh
source "$repo/scripts/vm-checks/kernel-host.sh"
n1() { vm node1 "export OVSMESH_HOST=node1; $1"; }
pod1_to_pod2="inside pod1 ping -c 5 -W 2 203.0.113.170"
check "send_redirects off on all and obr0 (obr0 hairpins)" kh_redirects_off n1
check "pod1 -> pod2 through obr0 sends no ICMP redirect" kh_no_redirects_sent n1 "$pod1_to_pod2"
check "obr0 has the routed budget as mtu_request and device MTU" kh_internal_mtu n1 obr0 1458
gateway_mtus() {
    local port rc=0
    for port in $(kh_gateway_ports n1); do kh_internal_mtu n1 "$port" 1454 || rc=1; done
    return "$rc"
}
check "VLAN gateway ports have their network's budget" gateway_mtus
underlay_nic() { vm node1 "ip -o -4 addr show | awk '/ 203\.0\.113\.11\\// { print \$2 }'"; }
check "underlay MTU read from the NIC, warned about when smaller" kh_underlay_mtu_warning n1 "$(underlay_nic)"
check "GRE dropped on INPUT: status warns" kh_input_warning n1 "-p gre"
check "strict rp_filter keeps the routed overlay" kh_strict_rp_filter n1 "$pod1_to_pod2"
check "status warns exactly when networkd would remove ovsmesh's routes" kh_networkd_warning n1

for encap in vxlan geneve; do
    step "$encap (both bridges)"
    port_line=""
    [ "$encap" = vxlan ] && port_line='\ndst_port = 4790' # its own port, off Docker Swarm's vxlan_sys_4789
    check "$encap topology copied in, every VM converged" push_topology "$(variant "s/^encap = \"gre\"/encap = \"$encap\"$port_line/" "$encap")"
    check "$encap: every VM converged" converged_all 60
    check "$encap: check --host on every VM" check_all
    check "$encap: TCP 1 MiB pod1 -> pod2" tcp node1 pod1 node2 pod2 203.0.113.170
    check "$encap: TCP 1 MiB blue3 -> blue1" tcp node3 blue3 node1 blue1 192.0.2.1
    [ "$encap" = vxlan ] && check "vxlan: tunnels on dst_port 4790 (vxlan_sys_4790)" kh_dst_port n1 vxlan 4790
done

step "direct routing (routed network without encapsulation)"
check "direct topology copied in" push_topology "$(variant 's/^mode = "tunnel"/mode = "direct"/' direct)"
check "direct: every VM converged" converged_all 60
check "direct: check --host on every VM" check_all
check "direct: TCP 1 MiB pod2 -> pod3" tcp node2 pod2 node3 pod3 203.0.113.200

step "uplink trunk (a VM NIC on a shared L2 as VLAN trunk)"
check "uplink topology copied in" push_topology "$(variant 's/^vlan_transport = "tunnel"/vlan_transport = "uplink"/; s/^\(underlay_address = .*\)$/\1\nuplink_nic = "trunk0"/' uplink)"
check "uplink: every VM converged" converged_all 60
check "uplink: check --host on every VM" check_all
check "uplink: TCP 1 MiB blue2 -> blue3" tcp node2 blue2 node3 blue3 192.0.2.3

step "IPv6: dual stack over the IPv4 underlay (GRE), then ip6gre and VXLAN over an IPv6 underlay"
# shellcheck source=scripts/vm-checks/ipv6.sh
source "$repo/scripts/vm-checks/ipv6.sh"
check "dual-stack topology copied in (subnet6, gateway6, subnets6, address6)" v6_push "$(v6_dual_topology)"
check "dual stack: every VM converged" converged_all 60
check "dual stack: check --host on every VM, IPv6 probes among them" v6_check_all
check "dual stack: blue1 -> blue3 over IPv6 (VLAN over GRE)" ping_from node1 blue1 2001:db8:100::3
check "dual stack: blue2 -> pod1 over IPv6 (routed by node1's gateway6)" ping_from node2 blue2 2001:db8:1::140
check "dual stack: what the kernel showed on node1 (forwarding, routes, accept_ra, nodad)" v6_kernel_shows
check "IPv6 underlay 2001:db8::11-13/64 on the VMs' underlay NICs, peers reached" v6_underlay_up
check "ip6gre over the IPv6 underlay copied in" v6_push "$(v6_underlay_topology ip6gre)"
check "ip6gre: every VM converged" converged_all 60
check "ip6gre: check --host on every VM, IPv6 probes among them" v6_check_all
check "ip6gre: TCP 1 MiB pod1 -> pod2 over IPv6" tcp node1 pod1 node2 pod2 2001:db8:2::170
check "ip6gre: TCP 1 MiB blue3 -> blue1 over IPv4" tcp node3 blue3 node1 blue1 192.0.2.1
check "ip6gre: what the kernel showed on node1 (tunnel ports, datapath)" v6_kernel_shows ip6gre
check "vxlan over the IPv6 underlay copied in" v6_push "$(v6_underlay_topology vxlan)"
check "vxlan over IPv6: every VM converged" converged_all 60
check "vxlan over IPv6: check --host on every VM, IPv6 probes among them" v6_check_all
check "default topology back (IPv4 only), every VM converged" default_again
check "no 2001:db8 address left in the containers" v6_addresses_gone
check "IPv6 underlay addresses removed" v6_underlay_down

step "default topology back: check and status on every VM"
check "default topology copied in" push_topology "$topology"
check "status converged on every VM" converged_all 60
check "check --host exit 0 on every VM" check_all

step "Docker networks: docker run --network through the plugin (ovsmesh.socket)"
# shellcheck source=scripts/vm-checks/plugin.sh
source "$repo/scripts/vm-checks/plugin.sh"
check "Docker networks blue, pods, red made by the daemon on every VM" pl_networks
check "pooled address on node2 (192.0.2.96), reached from red1 on node1" pl_pooled
check "refused addresses: Docker prints why (declared on node2, node2's pool)" pl_refused
check "race: ${OVSMESH_VM_RACE:-15} fresh containers, address and first packet to red2; start latency" pl_race
plugin_variant() { # the default topology, declaring web1 (192.0.2.10 on red) on node1
    { cat "$topology"; printf '\n[containers.web1]\nhost = "node1"\nnetns = "web1"\nnetwork = "red"\naddress = "192.0.2.10"\nmac = "02:00:5e:00:02:0a"\nmtu = 1400\nroutes = [{ to = "198.51.100.0/24", via = "192.0.2.9" }]\n'; } > "$state/plugin.toml"
    push_topology "$state/plugin.toml" && converged_all 60
}
check "topology declaring web1 (192.0.2.10 on node1) copied in, converged" plugin_variant
check "declared --ip: the entry's MAC, MTU, routes; restart keeps them; rm removes veth and port" pl_declared
check "default topology back, converged" default_again
check "docker restart of a pooled container keeps address and MAC" pl_restart_keeps
check "routed network: node1's subnet and gateway, reached from pod2 on node2" pl_routed
check "systemctl restart ovsmesh: no packet lost; the next docker run's first packet reaches pod2 (routed)" pl_daemon_restart
check "systemctl restart docker: the --restart=always container is back, networked" pl_docker_restart
check "a --restart=always container on node3 before its reboot" pl_before_reboot
check "status converged on every VM with the plugin's containers" converged_all 60

step "service: docker restart"
mac_ip() { vm node2 "inside pod2 ip -o link show eth1 | grep -o 'link/ether [0-9a-f:]*'; inside pod2 ip -4 -o addr show eth1 | awk '{print \$4}'"; }
before_restart=$(mac_ip 2>/dev/null)
restart_pod2() {
    vm node2 "docker restart pod2" >/dev/null || return 1
    local started=$SECONDS
    for _ in $(seq 60); do
        if ping_from node1 pod1 203.0.113.170 2>/dev/null; then
            echo "pod2 reachable $((SECONDS - started)) s after docker restart"
            return 0
        fi
    done
    return 1
}
check "docker restart pod2 -> reachable again from pod1" restart_pod2
same_identity() { local now; now=$(mac_ip); echo "before: $before_restart / after: $now"; [ -n "$now" ] && [ "$now" = "$before_restart" ]; }
check "pod2 has the same MAC and address after the restart" same_identity

step "service: systemctl restart openvswitch-switch"
check "openvswitch-switch restarted on node2" vm node2 "systemctl restart openvswitch-switch"
check "node2 re-converged" converged_all 90
check "check --host on every VM after the OVS restart" check_all

step "service: VM reboot"
reboot_node3() { # back means a new boot id: the old system may answer SSH while it shuts down
    local boot now started=$SECONDS
    boot=$(vm node3 "cat /proc/sys/kernel/random/boot_id") || return 1
    vm node3 "systemd-run --on-active=1 systemctl reboot" >/dev/null 2>&1
    while [ $((SECONDS - started)) -lt 600 ]; do
        sleep 5
        ip netns exec "$ns" ssh -F "$ssh_config" -o ControlPath="$state/ssh-%h" -O exit node3 >/dev/null 2>&1
        now=$(vm node3 "cat /proc/sys/kernel/random/boot_id" 2>/dev/null) || continue
        if [ -n "$now" ] && [ "$now" != "$boot" ]; then
            echo "node3 back on SSH $((SECONDS - started)) s after the reboot"
            return 0
        fi
    done
    return 1
}
check "node3 rebooted (new boot id) and back on SSH" reboot_node3
check "every VM converged after the reboot (no manual step)" converged_all 120
check "node3's --restart=always plugin container back after the reboot, reachable" pl_after_reboot
check "check --host on every VM after the reboot" check_all

step "service: topology edit copied in"
check "edited topology (pod3 moves to .201) copied in" push_topology "$(variant 's/^address = "203.0.113.200"/address = "203.0.113.201"/' edit)"
check "edit: every VM converged" converged_all 60
check "edit: pod1 reaches pod3 at its new address" ping_from node1 pod1 203.0.113.201
check "edit: check --host on every VM" check_all

step "git: three VMs follow one repository (signed commits, refused, rolled back)"
# shellcheck source=scripts/vm-checks/git-follow.sh
source "$repo/scripts/vm-checks/git-follow.sh"
current=$(variant 's/^address = "203.0.113.200"/address = "203.0.113.201"/' gf-current) # what the VMs run
must "repository served by git daemon from the lab host, signing key made" gf_serve "$current"
check "every daemon follows it (--git, --allowed-signers, poll $gf_poll)" gf_follow
check "every VM on the first commit (fleet status on node1)" gf_on_good
check "a signed edit pushed once reaches all three (pod3 back to .200)" gf_edit_reaches_all "$topology"
check "git edit: pod1 reaches pod3 at .200" ping_from node1 pod1 203.0.113.200
check "an invalid signed commit is refused everywhere" gf_bad_everywhere refused 120 "$(variant 's/^vlan = 100$/vlan = 5000/' gf-invalid)"
check "an unsigned commit is refused everywhere" gf_bad_everywhere refused 120 "$(variant 's/^encap = "gre"/encap = "vxlan"/' gf-unsigned)" unsigned
check "a commit cutting node1 off its peers is rolled back everywhere" gf_bad_everywhere rolled-back 180 "$(variant 's|^underlay_address = "203.0.113.11/25"|underlay_address = "203.0.113.21/25"|' gf-cut)"
check "after the rollback: pod1 -> pod2" ping_from node1 pod1 203.0.113.170
check "the ref moves on: a signed good commit reaches all three" gf_edit_reaches_all "$(variant 's/^\[mesh\]$/# moved on\n&/' gf-next)"
check "daemons back to the topology file" gf_back_to_file
check "file again: every VM converged" converged_all 60

step "down leaves each VM as it was"
check "ovsmesh down refuses while a Docker endpoint exists (exit 1)" pl_down_refused
check "the plugin's containers removed one at a time, their ports gone" pl_remove_containers
# The socket first: a connection to it would start the service again.
down_all() { on_all "systemctl stop ovsmesh.socket ovsmesh && ovsmesh down --host HOST /etc/ovsmesh/topology.toml"; }
check "service stopped, ovsmesh down on every VM" down_all
as_before() {
    # shellcheck disable=SC2016 # expanded in the VM
    on_all '
        b=/var/lib/ovsmesh-vagrant/before; rc=0
        test -z "$(ovs-vsctl --bare --columns=_uuid find port external_ids:ovsmesh-mesh=vagrant)" || { echo "owned ports left"; rc=1; }
        diff <(ovs-vsctl list-br) $b/bridges || rc=1
        diff <(ip -4 route show table all proto 79) $b/routes || rc=1
        diff <(iptables-save | grep -v "^[#:]" | sort) $b/iptables || rc=1
        diff <(sysctl -a 2>/dev/null | grep -E "^net\.ipv4\.(ip_forward|conf\.(all|default|eth[0-9]+|lo|docker0)\.forwarding) " | sort) $b/forwarding || rc=1
        exit $rc'
}
check "no owned objects; bridges, routes, firewall, forwarding as before" as_before
check "send_redirects back to the kernel's default after down" kh_redirects_restored n1 1

finish
}
