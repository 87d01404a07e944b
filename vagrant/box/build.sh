#!/usr/bin/env bash
# Build the Vagrant box of the VM lab locally: Debian 12 (bookworm) for the libvirt provider, made
# with debootstrap from Debian's archive and nothing else (no Vagrant Cloud, no image download).
#
# The box already holds what provisioning would install (Open vSwitch, Docker, busybox-static), so a
# lab without internet needs nothing more. It is cached under $OVSMESH_VM_CACHE/box/HASH/, HASH being
# the SHA-256 of its inputs (this script, the mirror, Vagrant's insecure public key); a second run
# with the same inputs prints the cached box at once. Older boxes are removed.
#
# Usage: vagrant/box/build.sh        (root; prints the path of the .box file as its last line)
# Environment: OVSMESH_VM_CACHE (default /var/cache/ovsmesh-vm),
#              OVSMESH_MIRROR (default: this machine's Debian mirror, else http://deb.debian.org/debian).
# Needs: debootstrap, qemu-utils, extlinux, syslinux-common, fdisk, vagrant (for its public key).
set -euo pipefail

SUITE=bookworm
BOX_NAME=ovsmesh-debian12.box
# Everything the lab's provisioning would otherwise install, and what Vagrant needs of a guest.
PACKAGES=linux-image-amd64,systemd-sysv,udev,kmod,dbus,openssh-server,openssh-sftp-server,sudo,\
openvswitch-switch,docker.io,apparmor,busybox-static,iproute2,iputils-ping,iptables,procps,netbase,\
ethtool,ca-certificates,less,man-db,bash-completion

here=$(cd "$(dirname "$0")" && pwd)
cache=${OVSMESH_VM_CACHE:-/var/cache/ovsmesh-vm}
log() { echo "box: $*" >&2; }

# The mirror this machine's apt uses for the main suite (deb822 or one-line format).
detect_mirror() {
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ { u = $2 } /^Suites:/ && / '"$SUITE"'( |$)/ { print u; exit }' \
            /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $3 == "'"$SUITE"'" { print $2; exit }' /etc/apt/sources.list)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

mirror=${OVSMESH_MIRROR:-$(detect_mirror)}
pubkey=$(find /usr/share/rubygems-integration/all/gems -path "*/vagrant-*/keys/vagrant.pub" 2>/dev/null | sort | head -1 || true)
if [ -z "$pubkey" ]; then
    echo "box: Vagrant's insecure public key not found: apt-get install vagrant" >&2
    exit 1
fi
for tool in debootstrap qemu-img extlinux sfdisk mkfs.ext4 losetup; do
    command -v "$tool" >/dev/null || { echo "box: $tool is missing (see the header of $0)" >&2; exit 1; }
done

hash=$( { sha256sum < "$here/build.sh"; echo "$mirror"; sha256sum < "$pubkey"; } | sha256sum | cut -c1-16)
out="$cache/box/$hash"
mkdir -p "$cache/box"
exec 9>"$cache/box/.lock"
flock 9
if [ -f "$out/$BOX_NAME" ]; then
    log "cached ($hash)"
    echo "$out/$BOX_NAME"
    exit 0
fi

work=$(mktemp -d "$cache/box/build.XXXXXX")
root="$work/root"
mnt="$work/mnt"
loop=""
cleanup() {
    mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
    [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

start=$SECONDS
log "debootstrap $SUITE from $mirror"
debootstrap --variant=minbase --components=main --include="$PACKAGES" \
    "$SUITE" "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
log "debootstrap done in $((SECONDS - start)) s"

# --- the guest's configuration -------------------------------------------------------------------
echo ovsmesh-box > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tovsmesh-box\n' > "$root/etc/hosts"
echo 'LABEL=vmroot / ext4 errors=remount-ro 0 1' > "$root/etc/fstab"
: > "$root/etc/resolv.conf"
# A fresh identity per VM: machine-id and SSH host keys are made at first boot.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
cat > "$root/etc/systemd/system/ssh-hostkeys.service" <<'EOF'
[Unit]
Description=Generate SSH host keys on first boot
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
EOF
# The management NIC (first) takes DHCP; Vagrant configures the others through systemd-networkd.
cat > "$root/etc/systemd/network/10-mgmt.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4
EOF
chroot "$root" systemctl enable --quiet systemd-networkd ssh-hostkeys.service
chroot "$root" systemctl mask --quiet systemd-networkd-wait-online.service apt-daily.timer \
    apt-daily-upgrade.timer
# The user Vagrant logs in as, with its well-known insecure key (a lab box, not for production).
chroot "$root" useradd --create-home --shell /bin/bash vagrant
install -d -m 0700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
install -m 0600 -o 1000 -g 1000 "$pubkey" "$root/home/vagrant/.ssh/authorized_keys"
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
echo 'UseDNS no' > "$root/etc/ssh/sshd_config.d/vagrant.conf"
rm -f "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*_Packages

# --- a bootable disk: one DOS partition, ext4 (^64bit: extlinux 6.04), extlinux ------------------
kernel=$(find "$root/boot" -maxdepth 1 -name "vmlinuz-*" -printf "%f\n" | sort -V | tail -1)
initrd=$(find "$root/boot" -maxdepth 1 -name "initrd.img-*" -printf "%f\n" | sort -V | tail -1)
mkdir -p "$root/boot/extlinux"
cat > "$root/boot/extlinux/extlinux.conf" <<EOF
DEFAULT debian
TIMEOUT 1
LABEL debian
    LINUX /boot/$kernel
    INITRD /boot/$initrd
    APPEND root=LABEL=vmroot ro console=tty0 console=ttyS0,115200 net.ifnames=0 quiet
EOF
raw="$work/disk.raw"
truncate -s 8G "$raw"
echo '2048,,L,*' | sfdisk --quiet "$raw"
loop=$(losetup --show -f -o $((2048 * 512)) "$raw")
mkfs.ext4 -q -L vmroot -O ^64bit -E root_owner=0:0 -d "$root" "$loop"
mkdir -p "$mnt"
mount "$loop" "$mnt"
extlinux --install "$mnt/boot/extlinux" >/dev/null 2>&1
umount "$mnt"
losetup -d "$loop"
loop=""
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$raw" bs=440 count=1 conv=notrunc status=none
mkdir -p "$work/box"
qemu-img convert -c -O qcow2 "$raw" "$work/box/box.img"
rm -f "$raw"

# --- the box: qcow2 + metadata + provider defaults -----------------------------------------------
echo '{"provider":"libvirt","format":"qcow2","virtual_size":8}' > "$work/box/metadata.json"
cat > "$work/box/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.driver = "qemu"
  end
end
EOF
tar -C "$work/box" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -cf "$work/$BOX_NAME" metadata.json Vagrantfile box.img
mkdir -p "$out"
mv "$work/$BOX_NAME" "$out/$BOX_NAME"
find "$cache/box" -mindepth 1 -maxdepth 1 -type d ! -name "$hash" ! -path "$work" -exec rm -rf {} +
log "built $out/$BOX_NAME ($(du -h "$out/$BOX_NAME" | cut -f1)) in $((SECONDS - start)) s"
echo "$out/$BOX_NAME"
