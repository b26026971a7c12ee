#!/usr/bin/env bash
# Builds kube-ipsec's Debian 12 node images from Debian packages only, from one
# debootstrapped root with systemd, sshd, Debian's cloud kernel, every package a kube-ipsec
# node installs (so provisioning's package step finds them all and is a no-op: the VMs have
# no mirror) and what the checks observe a node with. Two images come out of that root:
#
#  - the VM lab's: the kernel, a small busybox initrd that loads the virtio modules, and a raw
#    ext4 root (direct kernel boot). The VM's identity (hostname, addresses, ssh host key,
#    authorized key) is not in it: every boot reads it from qemu's fw_cfg (opt/kube-ipsec/seed,
#    see kube-ipsec-vm-seed below), so one image serves every node through overlays.
#  - a Vagrant box for vagrant-libvirt (libvirt.box): a partitioned qcow2 disk that boots by
#    itself (GRUB, Debian's initramfs), with the `vagrant` user (sudo, Vagrant's insecure
#    keys), ssh host keys generated at first boot, DHCP on the first NIC (eth0) through
#    systemd-networkd, and an empty machine-id (each VM makes its own, so DHCP client ids
#    differ).
#
#   build-image.sh OUT MIRROR DEB_CACHE PACKAGE…      (root; called by src/lab/vm/image.ts)
#
# OUT gets vmlinuz, initrd.gz, disk.img (raw ext4, sparse), libvirt.box and packages.txt.
# Tested recipe: shared/lab/vm/build-image.sh (apt: qemu-system-x86 debootstrap busybox-static cpio kmod);
# the box's disk is assembled without loop devices: sfdisk on a file, mkfs.ext4 -d at the
# partition's offset, GRUB's boot.img and a core.img from grub-mkimage (apt: fdisk grub-pc-bin).
set -euo pipefail
out=${1:?OUT} mirror=${2:?MIRROR} debs=${3:?DEB_CACHE}
shift 3
[ $# -gt 0 ] || { echo "build-image.sh: no packages given" >&2; exit 2; }
packages=("$@")
[ "$(id -u)" = 0 ] || { echo "build-image.sh: run as root (debootstrap)" >&2; exit 1; }
for tool in debootstrap cpio gzip mkfs.ext4 busybox sfdisk grub-mkimage qemu-img tar; do
	command -v "$tool" >/dev/null || { echo "build-image.sh: $tool is missing (apt-get install debootstrap busybox-static cpio kmod e2fsprogs fdisk grub-pc-bin qemu-utils)" >&2; exit 1; }
done
grub_dir=/usr/lib/grub/i386-pc
[ -f "$grub_dir/boot.img" ] || { echo "build-image.sh: $grub_dir/boot.img is missing (apt-get install grub-pc-bin)" >&2; exit 1; }
mkdir -p "$out" "$debs"
work=$out/work
rm -rf "$work"
mkdir -p "$work"
cd "$work"

# --- Root file system, shared by both images. ------------------------------------------------
# The kernel is one of the packages (Debian's cloud flavour: virtio, netfilter, XFRM/ESP as
# modules), installed by dpkg with its initramfs, so the box is an ordinary Debian system.
include=$(IFS=,; printf '%s' "${packages[*]}")
debootstrap --variant=minbase --cache-dir="$debs" --include="$include" bookworm root "$mirror" >debootstrap.log 2>&1 ||
	{ tail -20 debootstrap.log >&2; exit 1; }
kver=$(ls root/lib/modules)
if [ "$(wc -w <<<"$kver")" != 1 ] || [ ! -f "root/boot/vmlinuz-$kver" ] || [ ! -f "root/boot/initrd.img-$kver" ]; then
	echo "build-image.sh: expected one kernel with its initramfs in the root, found: $kver" >&2
	exit 1
fi
# Trimmed: the guest never downloads packages (and has no route to a mirror).
rm -rf root/var/cache/apt/archives/*.deb root/var/lib/apt/lists/*
# No VM shares a host key: the lab's VMs get theirs from their seed, a box's are made at first boot.
rm -f root/etc/ssh/ssh_host_*
mkdir -p root/etc/systemd/journald.conf.d root/etc/systemd/system.conf.d root/etc/modprobe.d
printf '[Journal]\nStorage=volatile\n' >root/etc/systemd/journald.conf.d/kube-ipsec-vm.conf
printf '[Manager]\nDefaultTimeoutStopSec=20s\n' >root/etc/systemd/system.conf.d/kube-ipsec-vm.conf
# qemu's "max" CPU advertises SVM/VMX: no nested hypervisor in a node.
printf 'blacklist kvm\nblacklist kvm_amd\nblacklist kvm_intel\n' >root/etc/modprobe.d/kube-ipsec-vm.conf
# Services of the node's packages start when provisioning configured them, in bring-up order
# (as on a fresh machine whose packages were installed with policy-rc.d); timers a node does
# not need are off.
for unit in strongswan-starter.service docker.service docker.socket containerd.service \
	apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer; do
	chroot root systemctl disable "$unit" >/dev/null 2>&1 || true
done
# shellcheck disable=SC2016 # dpkg-query expands these itself
chroot root dpkg-query -W -f='${Package} ${Version}\n' >"$out/packages.txt"
cp -a root box

# --- The VM lab's image: identity from the seed, root logs in with the lab's key. ----------
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
# A regular file (the image's is resolved's stub symlink, dangling with resolved off): the
# kubelet reads it for pods, and CoreDNS forwards names outside the cluster to the router.
rm -f /etc/resolv.conf
printf 'nameserver %s\n' "${v[GATEWAY]}" >/etc/resolv.conf
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
# The seed configures the network; no DNS (no route out); no console login on a lab VM.
for unit in systemd-resolved.service getty@tty1.service; do
	chroot root systemctl disable "$unit" >/dev/null 2>&1 || true
done
printf '/dev/vda / ext4 defaults,noatime 0 0\n' >root/etc/fstab
printf 'kube-ipsec-node\n' >root/etc/hostname
printf '127.0.0.1 localhost\n' >root/etc/hosts

# --- initrd: the cloud kernel has virtio as modules; load them, then switch_root. -------------
# In dependency order (virtio_net needs net_failover, which needs failover).
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk failover net_failover virtio_net"
mkdir -p ird/bin ird/proc ird/dev ird/newroot ird/m
cp "$(command -v busybox)" ird/bin/
for m in $mods; do
	cp "$(find "root/lib/modules/$kver" -name "$m.ko*" | head -1)" ird/m/
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
cp "root/boot/vmlinuz-$kver" "$out/vmlinuz"
rm -f "$out/disk.img"
truncate -s 4G "$out/disk.img"
mkfs.ext4 -q -F -L kube-ipsec-node -d root "$out/disk.img"

# --- The Vagrant box: the same root as a Vagrant base box for vagrant-libvirt. ---------------
# What Vagrant needs of a base box (https://developer.hashicorp.com/vagrant/docs/boxes/base):
# a `vagrant` user with passwordless sudo and Vagrant's insecure public keys (Vagrant swaps
# them for a key of the machine's own at the first `up`), sshd, and DHCP on the first NIC:
# vagrant-libvirt learns the VM's address from libvirt's DHCP leases.
chroot box useradd --create-home --shell /bin/bash --user-group vagrant
chroot box usermod --password '*' vagrant # no password login; keys only
install -d -m 0700 box/home/vagrant/.ssh
# keys/vagrant.pub (RSA; Vagrant up to 2.3) and keys/vagrant.pub.ed25519 (newer Vagrant) of hashicorp/vagrant.
cat >box/home/vagrant/.ssh/authorized_keys <<'EOF'
ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN1YdxBpNlzxDqfJyw/QKow1F+wvG9hXGoqiysfJOn5Y vagrant insecure public key
EOF
chmod 0600 box/home/vagrant/.ssh/authorized_keys
chroot box chown -R vagrant:vagrant /home/vagrant/.ssh
printf 'vagrant ALL=(ALL) NOPASSWD: ALL\n' >box/etc/sudoers.d/vagrant
chmod 0440 box/etc/sudoers.d/vagrant
# Host keys: Ed25519 and ECDSA, made at first boot. An RSA key (ssh-keygen -A makes one) took
# 21 s of a first boot under software emulation; these two take well under a second, and
# every client of today speaks them (OpenSSH, Vagrant's net-ssh with ed25519).
cat >box/etc/ssh/sshd_config.d/kube-ipsec-box.conf <<'EOF'
# kube-ipsec box: keys only (Vagrant's, then the machine's own).
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
EOF
cat >box/etc/systemd/system/kube-ipsec-ssh-hostkeys.service <<'EOF'
[Unit]
Description=ssh host keys of this machine (made at its first boot)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N "" -f /etc/ssh/ssh_host_ecdsa_key

[Install]
WantedBy=ssh.service
EOF
# eth0 (net.ifnames=0 below) is Vagrant's management NIC; Vagrant writes its own
# 50-vagrant-eth1.network for the private network. DHCP client id = MAC, as libvirt's dnsmasq
# leases are looked up by MAC.
cat >box/etc/systemd/network/10-kube-ipsec-eth0.network <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4

[DHCPv4]
ClientIdentifier=mac
EOF
# Each machine makes its own machine id at first boot. systemd then applies presets
# ("first boot"): this box's policy enables what it needs and nothing else, so the node's
# services stay off until provisioning configured them.
: >box/etc/machine-id
rm -f box/var/lib/dbus/machine-id
mkdir -p box/etc/systemd/system-preset
cat >box/etc/systemd/system-preset/00-kube-ipsec-box.preset <<'EOF'
enable ssh.service
enable kube-ipsec-ssh-hostkeys.service
enable systemd-networkd.service
enable systemd-resolved.service
enable getty@.service
enable serial-getty@.service
enable remote-fs.target
enable machines.target
enable reboot.target
disable *
EOF
chroot box systemctl enable ssh.service kube-ipsec-ssh-hostkeys.service systemd-networkd.service systemd-resolved.service >/dev/null 2>&1
printf 'kube-ipsec-box\n' >box/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 kube-ipsec-box\n' >box/etc/hosts
# Standalone use of the box: its default synced folder is rsync (no NFS, no 9p needed).
cat >"$work/Vagrantfile" <<'EOF'
# kube-ipsec box (Debian 12, vagrant-libvirt): see kube-ipsec's docs/getting-started.md.
Vagrant.configure("2") do |config|
  config.vm.synced_folder ".", "/vagrant", type: "rsync"
end
EOF

# The disk: one MBR partition at 1 MiB holding the root, GRUB in the MBR and the gap before it.
# GRUB finds its root by file system UUID and boots /vmlinuz and /initrd.img, the links that
# Debian's kernel packages keep pointing at the newest kernel.
uuid=$(cat /proc/sys/kernel/random/uuid)
if [ ! -e box/vmlinuz ] || [ ! -e box/initrd.img ]; then
	echo "build-image.sh: the kernel package made no /vmlinuz and /initrd.img links" >&2
	exit 1
fi
printf 'UUID=%s / ext4 defaults,noatime,errors=remount-ro 0 1\n' "$uuid" >box/etc/fstab
mkdir -p box/boot/grub/i386-pc
cp "$grub_dir"/*.mod "$grub_dir"/*.lst box/boot/grub/i386-pc/
cat >box/boot/grub/grub.cfg <<EOF
set timeout=0
menuentry 'Debian GNU/Linux 12 (kube-ipsec box)' {
	search --no-floppy --fs-uuid --set=root $uuid
	linux /vmlinuz root=UUID=$uuid ro console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0 quiet
	initrd /initrd.img
}
EOF
cat >grub-early.cfg <<EOF
search --no-floppy --fs-uuid --set=root $uuid
set prefix=(\$root)/boot/grub
EOF
grub-mkimage -O i386-pc -o core.img -c grub-early.cfg -p /boot/grub \
	biosdisk part_msdos ext2 search search_fs_uuid configfile normal linux gzio echo test
disk_mib=8192
start=2048 # sectors of 512 bytes: the partition starts at 1 MiB
truncate -s "${disk_mib}M" box.raw
printf 'label: dos\nstart=%s, type=83, bootable\n' "$start" | sfdisk --quiet box.raw
mkfs.ext4 -q -F -L kube-ipsec-root -U "$uuid" -E offset=$((start * 512)) -d box box.raw $(((disk_mib * 1024) - (start / 2)))k
# boot.img's code (its first 440 bytes, before the partition table) loads core.img from
# sector 1, where grub-mkimage expects it; core.img fits the gap before the partition.
[ "$(stat -c %s core.img)" -lt $(((start - 1) * 512)) ] || { echo "build-image.sh: core.img does not fit before the partition" >&2; exit 1; }
dd if="$grub_dir/boot.img" of=box.raw bs=440 count=1 conv=notrunc status=none
dd if=core.img of=box.raw bs=512 seek=1 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 -c box.raw box.img
# kube_ipsec_recipe: which recipe made the box (vagrant-libvirt reads only the first three).
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%s,"kube_ipsec_recipe":"%s"}\n' $((disk_mib / 1024)) "${KUBE_IPSEC_IMAGE_KEY:-unknown}" >metadata.json
tar -cf "$out/libvirt.box" metadata.json Vagrantfile box.img

cd "$out"
rm -rf "$work"
echo "kernel $kver"
