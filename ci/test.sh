#!/usr/bin/env bash
# The README's test command: installs what the tests need (only what is
# missing) and runs the whole test suite. Once the tools are there,
# `cargo test --workspace` alone is the same run.
#
# Usage: bash ci/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-test-deps.sh
cargo test --workspace "$@"
