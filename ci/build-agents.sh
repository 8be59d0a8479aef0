#!/usr/bin/env bash
# Builds the VM agents spuff carries (issue 18): static Linux (musl) builds
# of spuff-agent for x86_64 and aarch64 with the `agent` profile, each
# gzip-compressed beside its SHA-256 and size, in target/agents (or
# $SPUFF_AGENTS_DIR). spuff's build.rs embeds what it finds there: run this,
# then build or install spuff. Needs rustup (it adds the two musl targets
# when missing); no C toolchain: the agent is pure Rust, and aarch64 links
# with the toolchain's own rust-lld.
#
# The same sources give the same bytes: --locked, paths remapped, gzip
# without a timestamp (docs/performance.md has the sizes).
#
# Usage: bash ci/build-agents.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${SPUFF_AGENTS_DIR:-$root/target/agents}
mkdir -p "$out"

installed=$(rustup target list --installed)
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  grep -qx "$target" <<<"$installed" || rustup target add "$target"
done

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
cargo_home=${CARGO_HOME:-$HOME/.cargo}
# With --target, RUSTFLAGS reach only the agent's own crates, not build
# scripts; the remaps keep this machine's paths out of the binaries.
export RUSTFLAGS="--remap-path-prefix=$root=/spuff --remap-path-prefix=$cargo_home=/cargo"
for arch in x86_64 aarch64; do
  target=$arch-unknown-linux-musl
  cargo build --locked --profile agent -p spuff-agent --target "$target"
  bin=${CARGO_TARGET_DIR:-target}/$target/agent/spuff-agent
  gzip -9nc "$bin" >"$out/spuff-agent-$arch.gz.tmp"
  sha256sum "$bin" | cut -d' ' -f1 >"$out/spuff-agent-$arch.sha256.tmp"
  stat -c %s "$bin" >"$out/spuff-agent-$arch.size.tmp"
  for ext in gz sha256 size; do
    mv -f "$out/spuff-agent-$arch.$ext.tmp" "$out/spuff-agent-$arch.$ext"
  done
  echo "build-agents: $arch $(cat "$out/spuff-agent-$arch.size") bytes," \
    "$(stat -c %s "$out/spuff-agent-$arch.gz") compressed," \
    "sha256 $(cat "$out/spuff-agent-$arch.sha256")" >&2
done
