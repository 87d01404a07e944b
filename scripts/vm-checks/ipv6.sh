#!/usr/bin/env bash
# shellcheck disable=SC2154 # $state, $topology and vm, on_all, inside come from scripts/vm-test.sh
# IPv6 checks for the VM suite (issue 21): dual stack on the VLAN networks and the routed network
# across the three VMs on the kernel datapath, first over the IPv4 underlay (GRE), then over an IPv6
# underlay (ip6gre), with the suite's Docker containers (`--net=none`, wired by ovsmesh). Source this
# file from scripts/vm-test.sh, which defines `vm HOST SCRIPT`, `on_all`, `variant`, `inside` (in VM
# scripts), `$state` and `$topology`. Checks print what they saw and return 0 or 1; v6_kernel_shows
# prints what the kernel made of it (for the issue's closing note).
#
# Addresses, all from the documentation prefix 2001:db8::/32: the IPv6 underlay 2001:db8::11-13/64
# on each VM's underlay NIC (next to 203.0.113.11-13/25); blue and red 2001:db8:100::/64 (red repeats
# blue's addresses on other hosts, as in IPv4), blue's gateway6 2001:db8:100::fe on node1; pods
# 2001:db8:1::/64 (node1), :2:: (node2), :3:: (node3), each host's gateway6 its ::1.

# sed script: topology/vagrant.toml with IPv6 beside every IPv4 subnet, gateway and container address.
v6_dual_sed() {
    local entry name address
    printf '%s\n' \
        '/^subnet = "192\.0\.2\.0\/24"$/a subnet6 = "2001:db8:100::/64"' \
        '/^gateway = { host = "node1", address = "192\.0\.2\.254" }$/a gateway6 = { host = "node1", address = "2001:db8:100::fe" }' \
        '/^subnets = /a subnets6 = { node1 = "2001:db8:1::/64", node2 = "2001:db8:2::/64", node3 = "2001:db8:3::/64" }'
    for entry in blue1=2001:db8:100::1 blue2=2001:db8:100::2 blue3=2001:db8:100::3 \
        red1=2001:db8:100::2 red2=2001:db8:100::3 red3=2001:db8:100::1 \
        pod1=2001:db8:1::140 pod2=2001:db8:2::170 pod3=2001:db8:3::200; do
        name=${entry%%=*}
        address=${entry#*=}
        printf '/^\\[containers\\.%s\\]$/,/^address = / s/^address = .*/&\\naddress6 = "%s"/\n' "$name" "$address"
    done
}
# sed script: the tunnels over the IPv6 underlay with ENCAP (ip6gre, vxlan, geneve).
v6_underlay_sed() {
    printf '%s\n' "s/^encap = \"gre\"$/encap = \"$1\"\\nunderlay = \"ipv6\"/" \
        's|^underlay_address = "203\.0\.113\.1\([1-3]\)/25"$|&\nunderlay_address6 = "2001:db8::1\1/64"|'
}
v6_dual_topology() { variant "$(v6_dual_sed)" ipv6-dual; }
v6_underlay_topology() { variant "$(v6_dual_sed; v6_underlay_sed "$1")" "ipv6-$1"; }

# The topology the VMs run has IPv6 everywhere: print it (the diff to the default) and validate.
v6_push() {
    diff "$topology" "$1"
    push_topology "$1"
}

# `ovsmesh check --host` passes on every VM and really probed IPv6: at least 6 reachable IPv6 pairs
# (each host's blue, red and pods member to its two peers) and 2 isolated ones per host.
v6_check_all() {
    # shellcheck disable=SC2016 # expanded in the VM
    on_all 'ovsmesh check /etc/ovsmesh/topology.toml --host HOST > /tmp/v6-check; rc=$?; cat /tmp/v6-check
        ok=$(grep -E "^[^ ]+/6 " /tmp/v6-check | grep -o " ok" | wc -l)
        iso=$(grep -E "^[^ ]+/6 " /tmp/v6-check | grep -o " iso" | wc -l)
        echo "IPv6 rows: $ok reachable, $iso isolated as expected"
        [ "$rc" = 0 ] && [ "$ok" -ge 6 ] && [ "$iso" -ge 2 ]'
}

# The IPv6 underlay: 2001:db8::1N/64 on the NIC holding 203.0.113.1N (no DAD: usable at once),
# and each VM reaches the other two by it.
v6_underlay_up() {
    # shellcheck disable=SC2016 # expanded in the VM
    on_all 'h=HOST; n=${h#node}
        nic=$(ip -o -4 addr show | awk "/ 203\\.0\\.113\\.1$n\\// { print \$2 }")
        [ -n "$nic" ] || { echo "no underlay NIC"; exit 1; }
        echo "$nic: disable_ipv6=$(cat /proc/sys/net/ipv6/conf/$nic/disable_ipv6)"
        sysctl -qw net.ipv6.conf.$nic.disable_ipv6=0
        ip -6 addr replace 2001:db8::1$n/64 dev $nic nodad && ip -6 addr show dev $nic
        for peer in 11 12 13; do
            [ "$peer" = "1$n" ] || ping -6 -c 2 -W 2 2001:db8::$peer >/dev/null || { echo "2001:db8::$peer unreachable"; exit 1; }
        done; echo "peers reached over IPv6"'
}
v6_underlay_down() {
    # shellcheck disable=SC2016 # expanded in the VM
    on_all 'h=HOST; n=${h#node}; nic=$(ip -o -6 addr show | awk "/ 2001:db8::1$n\\// { print \$2 }")
        [ -z "$nic" ] || ip -6 addr del 2001:db8::1$n/64 dev $nic'
}

# What the kernel showed on node1 (printed for the closing note), with the facts asserted:
# IPv6 forwarding on, the container's interface with accept_ra=0 and its address without DAD
# (nodad), the default route via the host's gateway6 with metric 1, the host's IPv6 routes with
# protocol 79 and a metric; with ENCAP (ip6gre) the tunnel ports' type and options and
# the kernel's datapath port.
v6_kernel_shows() {
    local encap=${1:-}
    # shellcheck disable=SC2016 # expanded in the VM
    vm node1 'rc=0
        fail() { echo "FAIL: $*"; rc=1; }
        echo "# sysctl net.ipv6.conf.all.forwarding"; sysctl net.ipv6.conf.all.forwarding | tee /tmp/v6-fwd
        grep -q "= 1$" /tmp/v6-fwd || fail "IPv6 forwarding off"
        echo "# ip -6 route show table all | grep 2001:db8 (host)"; ip -6 route show table all | grep 2001:db8 | tee /tmp/v6-routes
        grep -qE "^2001:db8:.* proto (79|ovsmesh) metric [0-9]+ " /tmp/v6-routes || fail "no IPv6 route with protocol 79 and a metric"
        echo "# pod1: accept_ra on eth1"; inside pod1 cat /proc/sys/net/ipv6/conf/eth1/accept_ra | tee /tmp/v6-ra
        grep -qx 0 /tmp/v6-ra || fail "accept_ra is not 0"
        echo "# pod1: ip -6 addr show eth1"; inside pod1 ip -6 addr show dev eth1 | tee /tmp/v6-addr
        grep -A1 "inet6 2001:db8:1::140/64" /tmp/v6-addr | grep -q nodad || fail "2001:db8:1::140 without nodad"
        ! grep -q tentative /tmp/v6-addr || echo "note: a tentative address (the kernel link-local)"
        echo "# pod1: ip -6 route"; inside pod1 ip -6 route | tee /tmp/v6-croutes
        grep -qE "^default via 2001:db8:1::1 dev eth1 proto (79|[a-z]+) metric 1 " /tmp/v6-croutes || fail "no default route via 2001:db8:1::1 metric 1"
        echo "# blue1: ip -6 route"; inside blue1 ip -6 route
        exit $rc' || return 1
    [ -n "$encap" ] || return 0
    # shellcheck disable=SC2016 # expanded in the VM
    vm node1 "rc=0
        echo '# ovs-vsctl --columns=name,type,options find Interface type=$encap'
        ovs-vsctl --columns=name,type,options find Interface type=$encap | tee /tmp/v6-ports
        [ \"\$(grep -c 'remote_ip=\"\\?2001:db8::1[23]' /tmp/v6-ports)\" -ge 2 ] || { echo 'FAIL: no $encap ports to 2001:db8::12/13'; rc=1; }
        echo '# ovs-dpctl show'; ovs-dpctl show | tee /tmp/v6-dp
        grep -q '$encap' /tmp/v6-dp || { echo 'FAIL: no $encap port in the kernel datapath'; rc=1; }
        echo '# ip -d link show type ${encap}tap'; ip -d link show type ${encap}tap 2>/dev/null || ip -d link show | grep -A2 '$encap'
        exit \$rc"
}

# After going back: no address of the 2001:db8 prefixes left in the containers.
v6_addresses_gone() {
    # shellcheck disable=SC2016 # expanded in the VM
    on_all 'rc=0; for c in $(docker ps --format "{{.Names}}" --filter label=ovsmesh.vagrant=1); do
            if inside $c ip -6 -o addr show | grep "2001:db8:"; then echo "$c still has IPv6"; rc=1; fi
        done; exit $rc'
}
