#!/usr/bin/env bash
# Builds the node image of the VM lab from Debian packages only: Debian's cloud kernel, a
# small busybox initrd that loads the virtio modules, and a debootstrapped ext4 root with
# systemd, sshd, every package a kube-ipsec node installs (so provisioning's package step
# finds them all and is a no-op: the VMs have no mirror) and what the lab observes them with.
#
#   build-image.sh OUT MIRROR DEB_CACHE PACKAGE…      (root; called by src/lab/vm/image.ts)
#
# OUT gets vmlinuz, initrd.gz, disk.img (raw ext4, sparse) and packages.txt. The VM's identity
# (hostname, addresses, ssh host key, authorized key) is not in the image: every boot reads
# it from qemu's fw_cfg (opt/kube-ipsec/seed, see kube-ipsec-vm-seed below), so one image
# serves every node through copy-on-write overlays.
# Tested recipe: shared/lab/vm/build-image.sh (apt: qemu-system-x86 debootstrap busybox-static cpio kmod).
set -euo pipefail
out=${1:?OUT} mirror=${2:?MIRROR} debs=${3:?DEB_CACHE}
shift 3
[ $# -gt 0 ] || { echo "build-image.sh: no packages given" >&2; exit 2; }
packages=("$@")
[ "$(id -u)" = 0 ] || { echo "build-image.sh: run as root (debootstrap)" >&2; exit 1; }
for tool in debootstrap apt-get dpkg-deb depmod cpio gzip mkfs.ext4 busybox; do
	command -v "$tool" >/dev/null || { echo "build-image.sh: $tool is missing (apt-get install debootstrap busybox-static cpio kmod e2fsprogs)" >&2; exit 1; }
done
mkdir -p "$out" "$debs"
work=$out/work
rm -rf "$work"
mkdir -p "$work"
cd "$work"

# --- Kernel: Debian's cloud flavour (virtio, netfilter, XFRM/ESP as modules). ---------------
kernel_package() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image/{print $2; exit}'; }
kpkg=$(kernel_package)
if [ -z "$kpkg" ]; then
	apt-get update -q >&2
	kpkg=$(kernel_package)
fi
[ -n "$kpkg" ] || { echo "build-image.sh: apt knows no linux-image-cloud-amd64 (check sources.list)" >&2; exit 1; }
apt-get download "$kpkg" >/dev/null 2>apt-download.log
dpkg-deb -x "$kpkg"_*.deb k
kver=$(ls k/lib/modules)
depmod -b k "$kver"

# --- Root file system. -------------------------------------------------------------------------
include=$(IFS=,; printf '%s' "${packages[*]}")
debootstrap --variant=minbase --cache-dir="$debs" --include="$include" bookworm root "$mirror" >debootstrap.log 2>&1 ||
	{ tail -20 debootstrap.log >&2; exit 1; }
mkdir -p root/lib/modules
cp -a "k/lib/modules/$kver" root/lib/modules/
# Trimmed: the guest never downloads packages (and has no route to a mirror).
rm -rf root/var/cache/apt/archives/*.deb root/var/lib/apt/lists/*

# Every VM gets its own host key from its seed; none is baked in (they would all share it).
rm -f root/etc/ssh/ssh_host_*
cat >root/etc/ssh/sshd_config.d/kube-ipsec-vm.conf <<'EOF'
# kube-ipsec VM lab: root logs in with the lab's key only.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF

mkdir -p root/usr/local/lib/kube-ipsec-vm
cat >root/usr/local/lib/kube-ipsec-vm/seed <<'EOF'
#!/bin/bash
# This VM's identity from qemu's fw_cfg, applied at every boot before the network and sshd:
# hostname, management and underlay addresses (interfaces found by MAC), default route,
# ssh host key and root's authorized key. Written by `kube-ipsec lab up --vm`.
# Bash builtins wherever possible: under software emulation every process costs ~0.25 s.
set -euo pipefail
modprobe qemu_fw_cfg
seed=/sys/firmware/qemu_fw_cfg/by_name/opt/kube-ipsec/seed/raw
for ((i = 0; i < 100; i++)); do
	[ -r "$seed" ] && break
	sleep 0.05
done
[ -r "$seed" ] || { echo "kube-ipsec-vm-seed: no $seed (qemu was started without -fw_cfg name=opt/kube-ipsec/seed)" >&2; exit 1; }
declare -A v=()
# Split at the first "=" only (base64 values end in "=" padding, which read would eat).
while IFS= read -r line; do
	key=${line%%=*}
	[[ $key =~ ^[A-Z0-9_]+$ && $line == *=* ]] && v[$key]=${line#*=}
done <"$seed"
for key in HOSTNAME MGMT_MAC MGMT_ADDRESS UNDERLAY_MAC UNDERLAY_ADDRESS UNDERLAY_MTU GATEWAY HOST_KEY HOST_KEY_PUB AUTHORIZED_KEY; do
	[ -n "${v[$key]:-}" ] || { echo "kube-ipsec-vm-seed: the seed lacks $key" >&2; exit 1; }
done
ifname() { # the interface with MAC $1 (the initrd loaded virtio_net; allow udev a moment)
	local d address
	for ((i = 0; i < 100; i++)); do
		for d in /sys/class/net/*; do
			read -r address <"$d/address" || continue
			[ "$address" = "$1" ] && { printf '%s' "${d##*/}"; return 0; }
		done
		sleep 0.1
	done
	echo "kube-ipsec-vm-seed: no interface has MAC $1" >&2
	return 1
}
printf '%s\n' "${v[HOSTNAME]}" >/etc/hostname
printf '%s' "${v[HOSTNAME]}" >/proc/sys/kernel/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "${v[HOSTNAME]}" >/etc/hosts
mgmt=$(ifname "${v[MGMT_MAC]}")
underlay=$(ifname "${v[UNDERLAY_MAC]}")
ip -batch - <<EOT
link set lo up
addr replace ${v[MGMT_ADDRESS]} dev $mgmt
link set $mgmt up
link set $underlay mtu ${v[UNDERLAY_MTU]}
addr replace ${v[UNDERLAY_ADDRESS]} dev $underlay
link set $underlay up
route replace default via ${v[GATEWAY]} dev $underlay
EOT
umask 077
base64 -d <<<"${v[HOST_KEY]}" >/etc/ssh/ssh_host_ed25519_key
umask 022
printf '%s\n' "${v[HOST_KEY_PUB]}" >/etc/ssh/ssh_host_ed25519_key.pub
[ -d /root/.ssh ] || mkdir -m 0700 /root/.ssh
printf '%s\n' "${v[AUTHORIZED_KEY]}" >/root/.ssh/authorized_keys
EOF
chmod 0755 root/usr/local/lib/kube-ipsec-vm/seed
cat >root/etc/systemd/system/kube-ipsec-vm-seed.service <<'EOF'
[Unit]
Description=kube-ipsec lab VM identity (hostname, addresses, ssh keys) from qemu fw_cfg
DefaultDependencies=no
After=local-fs.target systemd-modules-load.service
Before=network-pre.target ssh.service sysinit.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/kube-ipsec-vm/seed
StandardOutput=journal+console

[Install]
WantedBy=sysinit.target
EOF
chroot root systemctl enable kube-ipsec-vm-seed.service ssh.service >/dev/null 2>&1
# Services of the node's packages start when provisioning configured them, in bring-up order
# (as on a fresh box whose packages were installed with policy-rc.d); timers and consoles a
# lab VM does not need are off.
for unit in strongswan-starter.service docker.service docker.socket containerd.service \
	apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer getty@tty1.service; do
	chroot root systemctl disable "$unit" >/dev/null 2>&1 || true
done
mkdir -p root/etc/systemd/journald.conf.d root/etc/systemd/system.conf.d root/etc/modprobe.d
printf '[Journal]\nStorage=volatile\n' >root/etc/systemd/journald.conf.d/kube-ipsec-vm.conf
printf '[Manager]\nDefaultTimeoutStopSec=20s\n' >root/etc/systemd/system.conf.d/kube-ipsec-vm.conf
# qemu's "max" CPU advertises SVM/VMX: no nested hypervisor in a lab node.
printf 'blacklist kvm\nblacklist kvm_amd\nblacklist kvm_intel\n' >root/etc/modprobe.d/kube-ipsec-vm.conf
printf '/dev/vda / ext4 defaults,noatime 0 0\n' >root/etc/fstab
printf 'kube-ipsec-node\n' >root/etc/hostname
printf '127.0.0.1 localhost\n' >root/etc/hosts
# shellcheck disable=SC2016 # dpkg-query expands these itself
chroot root dpkg-query -W -f='${Package} ${Version}\n' >"$out/packages.txt"

# --- initrd: the cloud kernel has virtio as modules; load them, then switch_root. -------------
# In dependency order (virtio_net needs net_failover, which needs failover).
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk failover net_failover virtio_net"
mkdir -p ird/bin ird/proc ird/dev ird/newroot ird/m
cp "$(command -v busybox)" ird/bin/
for m in $mods; do
	cp "$(find "k/lib/modules/$kver" -name "$m.ko*" | head -1)" ird/m/
done
cat >ird/init <<EOF
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
for m in $mods; do /bin/busybox insmod /m/\$m.ko; done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; /bin/busybox sleep 0.1; done
/bin/busybox mount -t ext4 -o noatime /dev/vda /newroot || { echo "kube-ipsec initrd: cannot mount /dev/vda"; exec /bin/busybox sh; }
/bin/busybox umount /proc
exec /bin/busybox switch_root /newroot /sbin/init
EOF
chmod +x ird/init
(cd ird && find . | cpio -o -H newc 2>/dev/null | gzip -1 >"$out/initrd.gz")
cp "k/boot/vmlinuz-$kver" "$out/vmlinuz"
rm -f "$out/disk.img"
truncate -s 4G "$out/disk.img"
mkfs.ext4 -q -F -L kube-ipsec-node -d root "$out/disk.img"
cd "$out"
rm -rf "$work"
echo "kernel $kver"
