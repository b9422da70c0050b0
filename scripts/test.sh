#!/usr/bin/env bash
# The test command of the README, and what CI runs (.ci/run calls it).
# Installs what is missing (gcc, gdb, tmux, qemu), then checks formatting and
# lints, then runs every test of the workspace: unit tests and the end-to-end
# tests on real KVM guests, real gdb, real QEMU. Needs /dev/kvm: the KVM
# tests fail (they are never skipped) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
if [ ! -e /dev/kvm ]; then
    echo "test: /dev/kvm is missing: the end-to-end tests need KVM and will fail" >&2
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo test --workspace --release
