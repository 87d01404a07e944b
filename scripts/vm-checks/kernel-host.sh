#!/usr/bin/env bash
# Kernel-host checks for the VM suite (issue 11, item 4): one function per fix,
# each proving on a real kernel-datapath host what tests/kernel_host*.rs prove
# in namespaces. Source this file from scripts/vm-test.sh.
#
# Every check takes a RUNNER first: the name of a command that runs one shell
# command line as root on one VM and passes its output and exit status through,
# e.g.
#     node1() { vagrant ssh node1 -c "sudo bash -c $(printf %q "$1")"; }
#     kh_redirects_off node1
# Checks print "ok: ..." or "FAIL: ..." and return 0 or 1. Settings they change
# for the check are put back before they return.
#
# On the VM: KH_OVSMESH (default ovsmesh), KH_TOPOLOGY (default
# /etc/ovsmesh/topology.toml), KH_HOST_ARGS (default empty: --host is the
# hostname), KH_VSCTL (default ovs-vsctl).

KH_OVSMESH=${KH_OVSMESH:-ovsmesh}
KH_TOPOLOGY=${KH_TOPOLOGY:-/etc/ovsmesh/topology.toml}
KH_HOST_ARGS=${KH_HOST_ARGS:-}
KH_VSCTL=${KH_VSCTL:-ovs-vsctl}

kh_ok() { echo "ok: $*"; }
kh_fail() { echo "FAIL: $*"; return 1; }

# `ovsmesh COMMAND [ARGS] TOPOLOGY` on the VM, stderr folded into stdout.
kh_ovsmesh() {
    local run=$1 command=$2
    shift 2
    "$run" "$KH_OVSMESH $command $KH_HOST_ARGS $* $KH_TOPOLOGY 2>&1"
}

kh_sysctl() { "$1" "cat /proc/sys/net/ipv4/conf/$2/$3"; }

# The ICMP OutRedirects counter.
kh_redirects_sent() {
    "$1" "awk '/^Icmp:/ { if (!n) { n = split(\$0, k) } else { split(\$0, v); for (i in k) if (k[i] == \"OutRedirects\") print v[i] } }' /proc/net/snmp"
}

# (a) A host of the tunnel-mode routed overlay: redirects off on all and obr0.
kh_redirects_off() {
    local run=$1 bridge=${2:-obr0} all dev
    all=$(kh_sysctl "$run" all send_redirects)
    dev=$(kh_sysctl "$run" "$bridge" send_redirects)
    [ "$all" = 0 ] && [ "$dev" = 0 ] ||
        kh_fail "send_redirects all=$all $bridge=$dev (want 0 and 0)" || return 1
    kh_ok "send_redirects off on all and $bridge"
}

# (a) Pinging a peer's container from a container here (a hairpin through obr0
# on both hosts) sends no ICMP redirect. PING is a command line run on the VM,
# e.g. "docker exec web ping -c 5 -W 2 172.17.2.2".
kh_no_redirects_sent() {
    local run=$1 ping=$2 before after
    before=$(kh_redirects_sent "$run")
    "$run" "$ping" >/dev/null || kh_fail "ping failed: $ping" || return 1
    after=$(kh_redirects_sent "$run")
    [ "$before" = "$after" ] || kh_fail "OutRedirects $before -> $after during: $ping" || return 1
    kh_ok "no ICMP redirects sent during: $ping"
}

# (a) After `ovsmesh down`: all.send_redirects is back to BEFORE (read before
# the first apply).
kh_redirects_restored() {
    local run=$1 before=$2 now
    now=$(kh_sysctl "$run" all send_redirects)
    [ "$now" = "$before" ] || kh_fail "all.send_redirects is $now after down, was $before" || return 1
    kh_ok "all.send_redirects restored to $before"
}

# (b) An internal interface (obr0, br-phy, a VLAN gateway port) has the
# mtu_request of its path and the kernel device that MTU.
kh_internal_mtu() {
    local run=$1 iface=$2 want=$3 requested device
    requested=$("$run" "$KH_VSCTL get Interface $iface mtu_request")
    device=$("$run" "cat /sys/class/net/$iface/mtu")
    [ "$requested" = "$want" ] && [ "$device" = "$want" ] ||
        kh_fail "$iface: mtu_request=$requested device mtu=$device (want $want)" || return 1
    kh_ok "$iface MTU $want (mtu_request and device)"
}

# (b) The VLAN gateway ports of this host (for kh_internal_mtu).
kh_gateway_ports() {
    "$1" "$KH_VSCTL --bare --columns=name find Interface external_ids:ovsmesh-role=gateway"
}

# (c) With the underlay NIC's MTU lowered below the topology's underlay_mtu,
# status warns (and names the NIC); with it back, the warning is gone.
kh_underlay_mtu_warning() {
    local run=$1 nic=$2 old out
    old=$("$run" "cat /sys/class/net/$nic/mtu")
    "$run" "ip link set $nic mtu $((old - 50))"
    out=$(kh_ovsmesh "$run" status)
    "$run" "ip link set $nic mtu $old"
    grep -q "warning: underlay device $nic has MTU $((old - 50)), smaller than the underlay_mtu" <<<"$out" ||
        kh_fail "no underlay MTU warning with $nic at $((old - 50)): $out" || return 1
    out=$(kh_ovsmesh "$run" status)
    ! grep -q "warning: underlay device $nic" <<<"$out" ||
        kh_fail "underlay MTU warning with $nic back at $old: $out" || return 1
    kh_ok "underlay MTU of $nic read and warned about"
}

# (d) A topology with dst_port: the kernel's tunnel device is vxlan_sys_PORT
# (genev_sys_PORT for Geneve) and the tunnel interfaces carry options:dst_port.
kh_dst_port() {
    local run=$1 encap=$2 port=$3 prefix options
    case $encap in vxlan) prefix=vxlan_sys ;; geneve) prefix=genev_sys ;; *) kh_fail "encap $encap has no port"; return 1 ;; esac
    "$run" "ip -d link show ${prefix}_$port" >/dev/null || kh_fail "no ${prefix}_$port device" || return 1
    options=$("$run" "$KH_VSCTL --bare --columns=options find Interface type=$encap")
    grep -qE "dst_port=\"?$port\b" <<<"$options" || kh_fail "tunnels lack dst_port=$port: $options" || return 1
    kh_ok "$encap tunnels on UDP $port (${prefix}_$port)"
}

# (e) A rule dropping the tunnel protocol on INPUT makes status warn; without
# it, no warning. MATCH is "-p gre" or "-p udp --dport PORT". (Tunnels from
# peers stop for the few seconds this takes.)
kh_input_warning() {
    local run=$1 match=$2 out
    "$run" "iptables -I INPUT 1 $match -j DROP"
    out=$(kh_ovsmesh "$run" status)
    "$run" "iptables -D INPUT $match -j DROP"
    grep -q "warning: the firewall drops .* on INPUT (-A INPUT .*-j DROP)" <<<"$out" ||
        kh_fail "no INPUT warning with '$match -j DROP': $out" || return 1
    out=$(kh_ovsmesh "$run" status)
    ! grep -q "warning: the firewall drops" <<<"$out" || kh_fail "INPUT warning without the rule: $out" || return 1
    kh_ok "INPUT dropping '$match' is warned about"
}

# (f) Before the uplink NIC is attached: with an address on it, apply exits 1
# naming it and changes nothing (OVS and the host's addresses as before).
kh_uplink_refused() {
    local run=$1 nic=$2 address=${3:-198.51.100.250/32} ovs_before addr_before out status
    if "$run" "$KH_VSCTL port-to-br $nic" >/dev/null 2>&1; then
        kh_fail "$nic is already a port; run this check before the first uplink apply"
        return 1
    fi
    "$run" "ip addr add $address dev $nic"
    ovs_before=$("$run" "$KH_VSCTL show")
    addr_before=$("$run" "ip -o -4 addr")
    out=$(kh_ovsmesh "$run" apply)
    status=$?
    local ovs_after addr_after
    ovs_after=$("$run" "$KH_VSCTL show")
    addr_after=$("$run" "ip -o -4 addr")
    "$run" "ip addr del $address dev $nic"
    [ "$status" = 1 ] || kh_fail "apply exited $status with an address on $nic: $out" || return 1
    grep -q "uplink_nic $nic holds" <<<"$out" || kh_fail "refusal does not name $nic: $out" || return 1
    [ "$ovs_before" = "$ovs_after" ] && [ "$addr_before" = "$addr_after" ] ||
        kh_fail "apply changed the host although it refused" || return 1
    kh_ok "uplink $nic with an address refused, nothing changed"
}

# (g) Strict rp_filter on all and obr0 keeps the routed overlay passing (PING
# as for kh_no_redirects_sent), and status has no arp_ignore warning.
kh_strict_rp_filter() {
    local run=$1 ping=$2 bridge=${3:-obr0} all dev rc=0 out
    all=$(kh_sysctl "$run" all rp_filter)
    dev=$(kh_sysctl "$run" "$bridge" rp_filter)
    "$run" "echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter; echo 1 > /proc/sys/net/ipv4/conf/$bridge/rp_filter"
    "$run" "$ping" >/dev/null || rc=1
    "$run" "echo $all > /proc/sys/net/ipv4/conf/all/rp_filter; echo $dev > /proc/sys/net/ipv4/conf/$bridge/rp_filter"
    [ "$rc" = 0 ] || kh_fail "routed overlay broken with rp_filter=1: $ping" || return 1
    out=$(kh_ovsmesh "$run" status)
    ! grep -q "warning: arp_ignore" <<<"$out" || kh_fail "arp_ignore warning: $out" || return 1
    kh_ok "strict rp_filter keeps the routed overlay; arp_ignore fine"
}

# networkd: status warns exactly when systemd-networkd runs without
# ManageForeignRoutes=no (only on hosts with ovsmesh routes).
kh_networkd_warning() {
    local run=$1 out expect=no
    if "$run" "systemctl is-active -q systemd-networkd"; then
        "$run" "cat /etc/systemd/networkd.conf /etc/systemd/networkd.conf.d/*.conf 2>/dev/null | grep -qi '^ManageForeignRoutes *= *no'" || expect=yes
    fi
    out=$(kh_ovsmesh "$run" status)
    if grep -q "warning: systemd-networkd runs with ManageForeignRoutes=yes" <<<"$out"; then
        [ "$expect" = yes ] || kh_fail "networkd warning although networkd keeps foreign routes: $out" || return 1
    else
        [ "$expect" = no ] || kh_fail "no networkd warning although networkd removes foreign routes" || return 1
    fi
    kh_ok "networkd warning matches (expected: $expect)"
}
