#!/usr/bin/env bash
# The README's test command: installs what the tests need (only what is
# missing), builds the VM agents spuff carries, and runs the whole test
# suite. Once the tools and agents are there, `cargo test --workspace`
# alone is the same run but for the arm64 agent's unit tests.
#
# Usage: bash ci/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-test-deps.sh

# The real-VM test (tests/local_vm.rs) boots the local provider's offline
# base image: built once from Debian packages and kept between runs (the
# script skips a complete image whose stamp matches).
image_dir=${SPUFF_TEST_IMAGE:-/var/cache/spuff-ci/image}
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
if [ -n "$sudo" ] && ! command -v sudo >/dev/null 2>&1; then
  echo "ci/test.sh: building the VM image needs root; the real-VM test will be skipped" >&2
else
  $sudo bash ci/build-image.sh "$image_dir"
  export SPUFF_TEST_IMAGE=$image_dir
fi
# The VM agents spuff carries (static musl builds for x86_64 and aarch64),
# so that the tests build the spuff users get.
bash ci/build-agents.sh
cargo test --workspace "$@"
# The arm64 agent's own unit tests, under QEMU's user-mode emulator (its
# binary is run under it by vm_up's arm64 test too).
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static \
  cargo test -p spuff-agent --target aarch64-unknown-linux-musl --lib --bins
