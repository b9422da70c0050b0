#!/usr/bin/env bash
# The demo command of the README: installs what is missing, builds vmrr and
# the guest kit, records the kvstore-bug cluster (a replicated store whose
# backup serves a stale read after a partition) and opens the trace in the
# terminal UI. Press ? there for the keys, q to quit; guests/README.md walks
# from the STALE READ back to the late write.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release
vmrr=target/release/vmrr
trace=target/demo-trace

# Recreated each time: `vmrr record` wants a new (or empty) folder.
rm -rf "$trace"
"$vmrr" record clusters/kvstore-bug.toml -o "$trace"

if [ ! -t 0 ] || [ ! -t 1 ]; then
    echo "demo: not a terminal; open the trace yourself with: $vmrr tui $trace" >&2
    exit 0
fi
exec "$vmrr" tui "$trace"
