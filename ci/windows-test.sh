#!/usr/bin/env bash
# Build the workspace's tests for x86_64-pc-windows-msvc and run them under Wine,
# against this machine's OpenSSH sshd through the sshd broker (docs/windows.md).
# Sets up what is missing first: the target's Rust std, then clang/llvm/mingw
# headers/Wine (ci/windows-cross/setup.sh, apt-get only when missing).
#
# Usage: bash ci/windows-test.sh [extra cargo test arguments]
# Env:   SPUFF_WINCROSS_DIR  setup directory (default $HOME/.cache/wincross)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-pc-windows-msvc
WINCROSS=${SPUFF_WINCROSS_DIR:-$HOME/.cache/wincross}
started=$(date +%s)
say() { echo "windows-test: $* ($(($(date +%s) - started))s)" >&2; }

# The target's std (CI images may have only the host's).
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/$TARGET/lib" ]; then
  rustup target add "$TARGET"
fi

# spuff.exe carries the same Linux agents as the Linux build (cached when
# ci/test.sh built them already).
bash ci/build-agents.sh

# The broker is the Linux integration-test binary (the ignored test
# `sshd_broker`): build it, or find it if `cargo test --workspace` already did.
broker_bin=$(cargo test --test tests --no-run --message-format=json \
  | grep '"name":"tests"' | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | tail -n1)
[ -x "$broker_bin" ] || { echo "windows-test: cannot find the Linux test binary" >&2; exit 1; }

bash ci/windows-cross/setup.sh "$WINCROSS"
# shellcheck disable=SC1091
. "$WINCROSS/env.sh"
say "toolchain ready"

# Build first, so that the broker does not sit through the build.
cargo test --workspace --target "$TARGET" --no-run "$@"
say "built"

# Start the broker (native, on 127.0.0.1) and pass its address to the Windows tests.
tmp=$(mktemp -d)
broker_pid=
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
SPUFF_BROKER_LISTEN=127.0.0.1:0 SPUFF_BROKER_ADDR_FILE="$tmp/addr" \
  "$broker_bin" --ignored --exact sshd_broker --nocapture </dev/null >"$tmp/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 1 600); do
  [ -s "$tmp/addr" ] && break
  if ! kill -0 "$broker_pid" 2>/dev/null; then
    echo "windows-test: the sshd broker exited:" >&2; cat "$tmp/broker.log" >&2; exit 1
  fi
  sleep 0.1
done
[ -s "$tmp/addr" ] || { echo "windows-test: the sshd broker did not start" >&2; cat "$tmp/broker.log" >&2; exit 1; }
SPUFF_TEST_BROKER=$(cat "$tmp/addr")
export SPUFF_TEST_BROKER

# The test .exe files run under wine64 (CARGO_TARGET_..._RUNNER from env.sh).
status=0
timeout 40m cargo test --workspace --target "$TARGET" "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "windows-test: failed ($status); sshd broker log:" >&2
  tail -n 50 "$tmp/broker.log" >&2
fi
say "done"
exit "$status"
