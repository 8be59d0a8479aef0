#!/usr/bin/env bash
# The README's test command: installs what the tests need (only what is
# missing) and runs the whole test suite. Once the tools are there,
# `cargo test --workspace` alone is the same run.
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
cargo test --workspace "$@"
