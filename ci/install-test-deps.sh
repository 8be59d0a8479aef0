#!/usr/bin/env bash
# Installs what the tests need, only what is missing, with one
# `apt-get update` (Debian/Ubuntu). Run as root (or with sudo on PATH).
#
# OpenSSH for the SSH tests (a private sshd and the real ssh-agent);
# cloud-init (with PyYAML, its parser), shellcheck and curl, which check the
# rendered user-data and scripts and run install-agent.sh
# (tests/cloudinit.rs); blkid and mtools, which find and read NoCloud seeds
# as cloud-init would; QEMU (qemu-system-x86_64, from bookworm-backports on
# Debian 12) for the local provider's tests, and debootstrap, qemu-img and
# mkfs.ext4 for the real-VM test's base image (ci/build-image.sh); tmux,
# the real terminal the full-screen views are driven in; qemu-user-static,
# which runs the arm64 agent spuff carries (its tests and a fake arm64 VM);
# with --windows also clang, llvm, mingw-w64 headers
# and Wine for the Windows cross build (ci/windows-cross/setup.sh then finds
# them present).
#
# Usage: bash ci/install-test-deps.sh [--windows]
set -euo pipefail

windows=false
[ "${1:-}" = "--windows" ] && windows=true

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
pairs=(sshd:openssh-server ssh:openssh-client ssh-keygen:openssh-client ssh-agent:openssh-client
       cloud-init:cloud-init shellcheck:shellcheck curl:curl mtype:mtools blkid:util-linux
       debootstrap:debootstrap qemu-img:qemu-utils mkfs.ext4:e2fsprogs tmux:tmux
       qemu-aarch64-static:qemu-user-static)
if $windows; then
  pairs+=(clang:clang llvm-lib:llvm llvm-dlltool:llvm)
  [ -d /usr/x86_64-w64-mingw32/include ] || need+=(mingw-w64-x86-64-dev)
  [ -x /usr/lib/wine/wine64 ] || need+=(wine64)
fi
for pair in "${pairs[@]}"; do
  have "${pair%%:*}" || need+=("${pair#*:}")
done
# paramiko for the hostile SSH server (tests/data/hostile/flood_server.py),
# run with Debian's own python3.
/usr/bin/python3 -c 'import paramiko' >/dev/null 2>&1 || need+=(python3-paramiko)
# QEMU for the local provider's tests. Debian 12's own 7.2 breaks beside the
# qemu-utils 10.x these machines carry: it comes from bookworm-backports.
backports=false
if ! have qemu-system-x86_64; then
  need+=(qemu-system-x86)
  if grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release; then backports=true; fi
fi
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: missing ${need[*]}; install them with your package manager" >&2
  exit 1
fi
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
if $backports && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo 'deb http://deb.debian.org/debian bookworm-backports main' \
    | $sudo tee /etc/apt/sources.list.d/spuff-backports.list >/dev/null
fi
$sudo apt-get update -qq
mapfile -t pkgs < <(printf '%s\n' "${need[@]}" | sort -u)
echo "install-test-deps: installing ${pkgs[*]}" >&2
if $backports; then
  # Only QEMU from backports; everything else stays on bookworm.
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | grep -vx qemu-system-x86)
  $sudo apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86
fi
[ ${#pkgs[@]} -eq 0 ] || $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
