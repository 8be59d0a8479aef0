#!/usr/bin/env bash
# Installs what the tests need, only what is missing, with one
# `apt-get update` (Debian/Ubuntu). Run as root (or with sudo on PATH).
#
# OpenSSH for the SSH tests (a private sshd and the real ssh-agent);
# cloud-init (with PyYAML, its parser), shellcheck and curl, which check the
# rendered user-data and scripts and run install-agent.sh
# (tests/cloudinit.rs); blkid and mtools, which find and read NoCloud seeds
# as cloud-init would; with --windows also clang, llvm, mingw-w64 headers
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
       cloud-init:cloud-init shellcheck:shellcheck curl:curl mtype:mtools blkid:util-linux)
if $windows; then
  pairs+=(clang:clang llvm-lib:llvm llvm-dlltool:llvm)
  [ -d /usr/x86_64-w64-mingw32/include ] || need+=(mingw-w64-x86-64-dev)
  [ -x /usr/lib/wine/wine64 ] || need+=(wine64)
fi
for pair in "${pairs[@]}"; do
  have "${pair%%:*}" || need+=("${pair#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: missing ${need[*]}; install them with your package manager" >&2
  exit 1
fi
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
mapfile -t pkgs < <(printf '%s\n' "${need[@]}" | sort -u)
echo "install-test-deps: installing ${pkgs[*]}" >&2
$sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
