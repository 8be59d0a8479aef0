#!/usr/bin/env bash
# Builds an offline Debian 12 (bookworm) base image for the local (QEMU)
# provider, equivalent to Debian's generic cloud image, from Debian packages
# only: no cloud image download, no loop devices, no partition table.
#
# Usage: bash ci/build-image.sh OUT_DIR
#
# OUT_DIR receives:
#   base.qcow2   ext4 filesystem on the whole disk (root=/dev/vda), 8 GiB virtual
#   vmlinuz      the linux-image-cloud-amd64 kernel, for QEMU -kernel
#   initrd.img   its initramfs, for QEMU -initrd
#   cmdline      the kernel command line to pass with -append
#   stamp        hash of this script; a matching stamp means "complete, skip"
#
# Boot (TCG shown; see docs/design/local-provider.md):
#   qemu-system-x86_64 -accel tcg,thread=multi -cpu max -machine q35,vmport=off \
#     -m 2048 -smp 2 -kernel OUT/vmlinuz -initrd OUT/initrd.img \
#     -append "$(cat OUT/cmdline)" -drive if=virtio,file=overlay.qcow2,format=qcow2 ...
#
# Needs root (debootstrap, chroot). Installs debootstrap, qemu-utils and
# e2fsprogs on the host only when missing. The guest image needs no network
# at boot: apt's periodic jobs are masked; package installs are the
# user-data's business.
set -euo pipefail

OUT_DIR=${1:?usage: build-image.sh OUT_DIR}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DISK_SIZE=${DISK_SIZE:-8G}
CMDLINE="root=/dev/vda rw console=ttyS0 panic=-1"
# Packages on top of minbase. No recommends: the list is the image.
PACKAGES=(
  linux-image-cloud-amd64 initramfs-tools zstd
  systemd-sysv udev dbus
  openssh-server sudo
  cloud-init python3-cffi-backend
  curl ca-certificates
  iproute2 netbase e2fsprogs procps less kmod
  nftables
)

SELF_HASH=$( { sha256sum "${BASH_SOURCE[0]}"; echo "${PACKAGES[*]} $SUITE $MIRROR $DISK_SIZE"; } | sha256sum | cut -c1-16)

log() { printf '[build-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

complete() {
  [[ -s "$OUT_DIR/base.qcow2" && -s "$OUT_DIR/vmlinuz" && -s "$OUT_DIR/initrd.img" \
     && -s "$OUT_DIR/cmdline" && -f "$OUT_DIR/stamp" ]] \
    && [[ "$(cat "$OUT_DIR/stamp")" == "$SELF_HASH" ]]
}

show() {
  log "image in $OUT_DIR (key $SELF_HASH):"
  ls -l "$OUT_DIR"/base.qcow2 "$OUT_DIR"/vmlinuz "$OUT_DIR"/initrd.img >&2
  qemu-img info "$OUT_DIR/base.qcow2" | grep -E 'virtual size|disk size' >&2
}

if complete; then
  log "cached: $OUT_DIR holds a complete image for this script ($SELF_HASH); nothing to do"
  show
  exit 0
fi

if [[ $EUID -ne 0 ]]; then
  log "must run as root (debootstrap and chroot)"
  exit 1
fi

# --- host tools, only when missing -------------------------------------------
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if ((${#need[@]})); then
  log "installing on the host: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

T0=$SECONDS
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/spuff-image.XXXXXX")
ROOT="$WORK/root"
MOUNTS=()

cleanup() {
  local m
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    m=${MOUNTS[i]}
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# --- 1. debootstrap minbase ---------------------------------------------------
log "debootstrap --variant=minbase $SUITE"
t=$SECONDS
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
  tail -30 "$WORK/debootstrap.log" >&2
  exit 1
}
log "debootstrap done in $((SECONDS - t)) s"

for d in proc sys dev dev/pts; do
  mount --bind "/$d" "$ROOT/$d"
  MOUNTS+=("$ROOT/$d")
done

# No daemon starts inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod +x "$ROOT/usr/sbin/policy-rc.d"

# fstab before the kernel: initramfs-tools adds fsck.ext4 for a root in fstab.
echo 'LABEL=root / ext4 rw,discard,errors=remount-ro 0 1' >"$ROOT/etc/fstab"

# The initramfs: gzip (every kernel and QEMU reads it), modules for virtio.
mkdir -p "$ROOT/etc/initramfs-tools/conf.d"
printf 'COMPRESS=gzip\n' >"$ROOT/etc/initramfs-tools/conf.d/spuff.conf"
printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' >>"$ROOT/etc/initramfs-tools/modules"

# --- 2. packages ----------------------------------------------------------------
log "apt-get install ${PACKAGES[*]}"
t=$SECONDS
cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
chroot "$ROOT" apt-get update -qq >"$WORK/apt.log" 2>&1
if ! chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$WORK/apt.log" 2>&1; then
  tail -40 "$WORK/apt.log" >&2
  exit 1
fi
log "packages installed in $((SECONDS - t)) s"

# --- 3. configuration -----------------------------------------------------------
log "configuring"
echo localhost >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
echo 'LANG=C.UTF-8' >"$ROOT/etc/default/locale"

# Network: systemd-networkd, DHCP on any ethernet NIC (QEMU user net gives
# 10.0.2.15). cloud-init renders its own networkd file (10-cloud-init-*)
# when it sees networkd as the only renderer; this is the fallback.
mkdir -p "$ROOT/etc/systemd/network"
cat >"$ROOT/etc/systemd/network/99-spuff-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
chroot "$ROOT" systemctl enable systemd-networkd.service >/dev/null 2>&1
# Nothing waits for "online" (no network-online target needs the internet).
chroot "$ROOT" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1

# Not needed on a throwaway VM; 3 s of boot under TCG.
chroot "$ROOT" systemctl mask e2scrub_reap.service >/dev/null 2>&1 || true

# Nothing reaches for the internet at boot.
chroot "$ROOT" systemctl mask apt-daily.timer apt-daily-upgrade.timer \
  apt-daily.service apt-daily-upgrade.service >/dev/null 2>&1 || true
mkdir -p "$ROOT/etc/apt/apt.conf.d"
printf 'APT::Periodic::Enable "0";\nAPT::Periodic::Update-Package-Lists "0";\nAPT::Periodic::Unattended-Upgrade "0";\n' \
  >"$ROOT/etc/apt/apt.conf.d/02-spuff-periodic"

# cloud-init: NoCloud only (no probing of cloud metadata services), C.UTF-8.
mkdir -p "$ROOT/etc/cloud/cloud.cfg.d"
cat >"$ROOT/etc/cloud/cloud.cfg.d/01-spuff-offline.cfg" <<'EOF'
datasource_list: [NoCloud, None]
locale: C.UTF-8
# sudo resolves the hostname cloud-init sets; there is no DNS offline.
manage_etc_hosts: true
# No grub on this image (direct kernel boot): skip the module (1 s under TCG).
grub_dpkg:
  enabled: false
EOF

# Every VM gets its own identity: no host keys, no machine-id, no logs.
rm -f "$ROOT"/etc/ssh/ssh_host_*
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
rm -f "$ROOT/usr/sbin/policy-rc.d"
chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log "$ROOT"/var/cache/debconf/*-old \
  "$ROOT"/var/lib/cloud/* "$ROOT"/tmp/* "$ROOT"/root/.bash_history

# Kernel and initramfs for direct kernel boot.
cp -L "$ROOT/vmlinuz" "$WORK/vmlinuz"
cp -L "$ROOT/initrd.img" "$WORK/initrd.img"

for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}"; done
MOUNTS=()

# --- 4. filesystem and image ----------------------------------------------------
log "mkfs.ext4 -d (rootfs $(du -sh --one-file-system "$ROOT" | cut -f1))"
t=$SECONDS
truncate -s "$DISK_SIZE" "$WORK/root.raw"
mkfs.ext4 -q -F -L root -E root_owner=0:0 -d "$ROOT" "$WORK/root.raw"
qemu-img convert -c -O qcow2 "$WORK/root.raw" "$WORK/base.qcow2"
log "filesystem and qcow2 in $((SECONDS - t)) s"

# Publish atomically enough: files first, stamp last.
rm -f "$OUT_DIR/stamp"
mv "$WORK/base.qcow2" "$WORK/vmlinuz" "$WORK/initrd.img" "$OUT_DIR/"
echo "$CMDLINE" >"$OUT_DIR/cmdline"
echo "$SELF_HASH" >"$OUT_DIR/stamp"
log "built in $((SECONDS - T0)) s"
show
