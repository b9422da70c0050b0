#!/usr/bin/env bash
# The demo command of the README: builds vmrr and the guest kit, then runs the
# bundled guests under the exact engine, each twice, to show that the console
# and the final state hash come out identical.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release
vmrr=target/release/vmrr
for run in 1 2; do
    echo "== hello, run $run"
    "$vmrr" run guests/build/hello.elf --cmdline "demo run $run" --hash
done
echo "== compute"
"$vmrr" run guests/build/compute.elf --cmdline "iters=5000" --hash
