#!/usr/bin/env bash
# Provision one VM of the ovsmesh Vagrant lab (run as root by the Vagrantfile's shell provisioner).
#
# Usage: provision.sh HOST TRUNK_MAC UPLINK_NIC [DOCKER_CONTAINER...]
# Expects the Vagrantfile's uploads in /tmp/ovsmesh-provision/: ovsmesh.deb (scripts/package.sh; it
# carries ovsmesh.service and ovsmesh.socket, the Docker network plugin's socket), topology.toml.
# Idempotent: `vagrant provision` again changes nothing that is already right.
#
# 1. Open vSwitch and Docker from the distribution (skipped when the box has them);
# 2. the trunk NIC (found by its MAC) named UPLINK_NIC and up at every boot, with no address;
# 3. ovsmesh from its Debian package (binary, unit, man pages, completions), the topology at
#    /etc/ovsmesh/topology.toml and OVSMESH_HOST in /etc/default/ovsmesh;
# 4. a busybox image (`docker import` of busybox-static: nothing is pulled) and the topology's
#    containers on this host (`--net=none`, restarted with the VM);
# 5. what the host looked like before ovsmesh, under /var/lib/ovsmesh-vagrant/before/
#    (scripts/vm-test.sh compares it after `ovsmesh down`);
# 6. the plugin socket (before dockerd at every boot) and the ovsmesh service enabled and started
#    (ready: converged once), then its status; the daemon makes the Docker networks of the topology.
set -euo pipefail

host=$1
trunk_mac=$2
uplink_nic=$3
shift 3
staging=/tmp/ovsmesh-provision
image=ovsmesh-busybox:latest
export DEBIAN_FRONTEND=noninteractive
say() { echo "ovsmesh-provision[$host]: $*"; }

# --- 1. packages -----------------------------------------------------------------------------------
missing=()
for pkg in openvswitch-switch docker.io apparmor busybox-static iptables iproute2 iputils-ping man-db bash-completion; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
systemctl enable --now --quiet openvswitch-switch docker

# --- 2. the trunk NIC --------------------------------------------------------------------------------
current=""
for dev in /sys/class/net/*; do
    if [ "$(cat "$dev/address")" = "$trunk_mac" ]; then current=$(basename "$dev"); fi
done
if [ -z "$current" ]; then
    echo "ovsmesh-provision[$host]: no NIC with MAC $trunk_mac (the trunk network)" >&2
    exit 1
fi
cat > /etc/systemd/network/10-ovsmesh-trunk.link <<EOF
[Match]
MACAddress=$trunk_mac

[Link]
Name=$uplink_nic
EOF
if [ "$current" != "$uplink_nic" ]; then
    ip link set dev "$current" down
    ip link set dev "$current" name "$uplink_nic"
fi
cat > /etc/systemd/system/ovsmesh-trunk-up.service <<EOF
[Unit]
Description=Bring the lab's trunk NIC $uplink_nic up (no address)
Before=ovsmesh.service
After=sys-subsystem-net-devices-$uplink_nic.device
BindsTo=sys-subsystem-net-devices-$uplink_nic.device

[Service]
Type=oneshot
ExecStart=/sbin/ip link set dev $uplink_nic up
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
EOF

# --- 3. ovsmesh --------------------------------------------------------------------------------------
dpkg -i "$staging/ovsmesh.deb" >/dev/null
install -m 0644 "$staging/topology.toml" /etc/ovsmesh/topology.toml
echo "OVSMESH_HOST=$host" > /etc/default/ovsmesh
ovsmesh validate /etc/ovsmesh/topology.toml
systemctl daemon-reload
systemctl enable --now --quiet ovsmesh-trunk-up.service

# --- 4. containers ---------------------------------------------------------------------------------
if ! docker image inspect "$image" >/dev/null 2>&1; then
    rootfs=$(mktemp -d)
    mkdir -p "$rootfs/bin" "$rootfs/tmp"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $("$rootfs/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
    done
    tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
    rm -rf "$rootfs"
fi
for name in "$@"; do
    if [ -z "$(docker ps -aq --filter "name=^${name}\$")" ]; then
        docker run -d --name "$name" --hostname "$name" --net=none --init \
            --restart=unless-stopped --label ovsmesh.vagrant=1 "$image" sleep infinity >/dev/null
    elif [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]; then
        docker start "$name" >/dev/null
    fi
done

# --- 5. the host before ovsmesh (first provisioning only) ------------------------------------------
before=/var/lib/ovsmesh-vagrant/before
if [ ! -d "$before" ] && ! systemctl is-active --quiet ovsmesh; then
    mkdir -p "$before"
    iptables-save | grep -v '^[#:]' | sort > "$before/iptables"
    sysctl -a 2>/dev/null | grep -E '^net\.ipv4\.(ip_forward|conf\.(all|default|eth[0-9]+|lo|docker0)\.forwarding) ' \
        | sort > "$before/forwarding"
    ovs-vsctl list-br > "$before/bridges"
    ip -4 route show table all proto 79 > "$before/routes"
fi

# --- 6. the service ----------------------------------------------------------------------------------
systemctl enable --quiet ovsmesh.socket ovsmesh
systemctl stop ovsmesh
systemctl restart ovsmesh.socket
# Type=notify: this returns once the first reconcile succeeded (the checks after it say why not).
if ! systemctl start ovsmesh; then
    say "ovsmesh did not become ready:"
    journalctl -u ovsmesh -n 30 --no-pager -o cat || true
fi
for _ in $(seq 60); do
    if ovsmesh status --host "$host" /etc/ovsmesh/topology.toml >/dev/null 2>&1; then break; fi
    sleep 2
done
ovsmesh status --host "$host" /etc/ovsmesh/topology.toml || true
say "done"
