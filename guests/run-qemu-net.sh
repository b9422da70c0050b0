#!/usr/bin/env bash
# Runs several guests under QEMU (microvm, TCG), each with a virtio-net
# device, all on one loopback-only multicast "switch", and prints every
# console line prefixed with the VM's name.  For cross-checking the network
# guests (pingpong, kvstore) outside vmrr.
#
#   guests/run-qemu-net.sh clusters/pingpong.toml
#   guests/run-qemu-net.sh NAME IMAGE CMDLINE [NAME IMAGE CMDLINE ...]
#
# With a cluster file, the [[vm]] entries' name, image (relative to the
# file) and cmdline are used; [network], [[link]] and [[fault]] are ignored
# (QEMU's network has no virtual time: latencies and faults cannot be
# reproduced).  The N-th VM (from 0) gets MAC 52:54:00:12:34:<N+1>, like
# vmrr's default; a `mac = "..."` line in the cluster file overrides it.
#
# How the machine is set up, and why:
#   -M microvm,ioapic2=off   eight virtio-mmio transports at 0xfeb00000 +
#                            0x200*i; the first virtio device sits in the
#                            last one (0xfeb00e00).
#   ACPI stays on            with acpi=off microvm would append the
#                            virtio_mmio.device= token itself
#                            (auto-kernel-cmdline), but then the firmware
#                            leaves the LAPIC's LINT0 masked and no 8259
#                            interrupt (the PIT tick) reaches the CPU.  So
#                            this script appends one token per transport;
#                            the guest probes them all.  Their IRQs are
#                            IOAPIC GSIs, never 8259 lines; the tokens say
#                            16+i, which is all the guest needs to know: it
#                            does not take the interrupt and polls the rings
#                            whenever it wakes (at least every PIT tick).
#   -global virtio-mmio.force-legacy=false
#                            QEMU's virtio-mmio is legacy (version 1) by
#                            default; the kit drives version 2 only.
#   -netdev socket,mcast=230.0.0.1:PORT,localaddr=127.0.0.1
#                            every VM hears every frame, on loopback only;
#                            the guest filters by MAC (and drops its own
#                            frames, which multicast loops back).
#   isa-debug-exit at 0xf4   the guest's exit(code) ends QEMU with status
#                            (code << 1) | 1, decoded here.
#
# Exit status: 0 if every guest called exit(0); 1 if some guest exited
# with another code; 124 if some QEMU timed out (VMRR_QEMU_TIMEOUT seconds,
# default 60); 125 if some QEMU stopped without a guest exit; 126 on usage
# errors or a QEMU failure.  Environment: QEMU (binary), VMRR_QEMU_TIMEOUT,
# VMRR_NET_PORT (UDP port of the multicast group; default derived from the
# PID so that parallel runs do not hear each other), VMRR_QEMU_ARGS (extra
# arguments for every instance).
set -u

usage() {
    echo "usage: $0 CLUSTER.toml" >&2
    echo "       $0 NAME IMAGE CMDLINE [NAME IMAGE CMDLINE ...]" >&2
    exit 126
}

qemu=${QEMU:-qemu-system-x86_64}
timeout_s=${VMRR_QEMU_TIMEOUT:-60}
port=${VMRR_NET_PORT:-$((20000 + $$ % 20000))}
command -v "$qemu" >/dev/null || {
    echo "run-qemu-net: $qemu not found (run scripts/install-deps.sh)" >&2; exit 126; }

names=() images=() cmdlines=() macs=()

if [ $# -eq 1 ] && [[ $1 == *.toml ]]; then
    toml=$1
    [ -f "$toml" ] || { echo "run-qemu-net: no such file: $toml" >&2; exit 126; }
    dir=$(cd "$(dirname "$toml")" && pwd)
    # The subset of TOML the cluster files use: [[vm]] tables with
    # `key = "string"` lines.  Prints name<TAB>image<TAB>cmdline<TAB>mac.
    vms=$(awk '
        function flush() { if (invm) print name "\t" image "\t" cmdline "\t" mac }
        function strval(s) {
            sub(/^[^=]*=[ \t]*"/, "", s); sub(/"[ \t]*(#.*)?$/, "", s); return s }
        /^[ \t]*\[\[vm\]\][ \t]*(#.*)?$/ { flush(); invm = 1; name = image = cmdline = mac = ""; next }
        /^[ \t]*\[/ { flush(); invm = 0; next }
        invm && /^[ \t]*name[ \t]*=/    { name = strval($0) }
        invm && /^[ \t]*image[ \t]*=/   { image = strval($0) }
        invm && /^[ \t]*cmdline[ \t]*=/ { cmdline = strval($0) }
        invm && /^[ \t]*mac[ \t]*=/     { mac = strval($0) }
        END { flush() }' "$toml")
    while IFS=$'\t' read -r n i c m; do
        [ -n "$n" ] || continue
        [[ $i == /* ]] || i="$dir/$i"
        names+=("$n"); images+=("$i"); cmdlines+=("$c"); macs+=("$m")
    done <<<"$vms"
    if grep -q '^[[:space:]]*\[\[fault\]\]' "$toml"; then
        echo "run-qemu-net: note: $toml has [[fault]] entries; QEMU ignores them" >&2
    fi
else
    [ $# -ge 3 ] && [ $(($# % 3)) -eq 0 ] || usage
    while [ $# -gt 0 ]; do
        names+=("$1"); images+=("$2"); cmdlines+=("$3"); macs+=("")
        shift 3
    done
fi
[ ${#names[@]} -ge 1 ] || { echo "run-qemu-net: no VMs" >&2; exit 126; }

# The virtio-mmio transports of microvm (ioapic2=off), one token each.
tokens=""
for i in 0 1 2 3 4 5 6 7; do
    tokens+=" virtio_mmio.device=512@0x$(printf %x $((0xfeb00000 + 0x200 * i))):$((16 + i))"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run_one() {     # index
    local i=$1 name=${names[$1]} img=${images[$1]} mac=${macs[$1]}
    [ -n "$mac" ] || mac=$(printf '52:54:00:12:34:%02x' $((i + 1)))
    # shellcheck disable=SC2086
    timeout --foreground -k 5 "$timeout_s" \
        "$qemu" -M microvm,ioapic2=off -accel tcg -cpu qemu64,+rdrand -m 64M \
        -nodefaults -display none -no-reboot -monitor none -serial stdio \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
        -global virtio-mmio.force-legacy=false \
        -netdev socket,id=n0,mcast=230.0.0.1:$port,localaddr=127.0.0.1 \
        -device virtio-net-device,netdev=n0,mac=$mac \
        -kernel "$img" -append "${cmdlines[$i]}$tokens" \
        ${VMRR_QEMU_ARGS:-} </dev/null 2>"$work/$i.err"
    echo $? >"$work/$i.rc"
}

for i in "${!names[@]}"; do
    [ -f "${images[$i]}" ] || { echo "run-qemu-net: no such image: ${images[$i]}" >&2; exit 126; }
done
echo "run-qemu-net: ${#names[@]} VMs on 230.0.0.1:$port (loopback)" >&2
pids=()
for i in "${!names[@]}"; do
    run_one "$i" | sed -u "s/^/[${names[$i]}] /" &
    pids+=($!)
done
wait "${pids[@]}"

status=0
for i in "${!names[@]}"; do
    name=${names[$i]}
    rc=$(cat "$work/$i.rc" 2>/dev/null || echo 126)
    grep -v -e '^$' "$work/$i.err" | sed "s/^/[$name] qemu: /" >&2
    if [ "$rc" -eq 124 ]; then
        what="timed out after ${timeout_s}s"; [ $status -lt 124 ] && status=124
    elif grep -v -q -e 'warning:' -e '^$' "$work/$i.err" || [ "$rc" -eq 126 ]; then
        what="QEMU failed (status $rc)"; status=126
    elif [ $((rc & 1)) -eq 1 ]; then
        code=$((rc >> 1)); what="exit $code"
        [ $code -ne 0 ] && [ $status -eq 0 ] && status=1
    else
        what="QEMU stopped without a guest exit (status $rc)"; [ $status -lt 125 ] && status=125
    fi
    echo "run-qemu-net: $name: $what" >&2
done
exit $status
