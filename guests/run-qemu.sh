#!/usr/bin/env bash
# Runs a guest image under QEMU (TCG) and prints its serial output.
#
#   guests/run-qemu.sh <image.elf> [cmdline]
#
# Exit status: the guest's exit(code) (QEMU's isa-debug-exit reports
# (code << 1) | 1, decoded here), so 0 means the guest called exit(0).
# 124: timeout; 125: QEMU stopped without the guest calling exit (e.g. a
# triple fault with -no-reboot); 126: usage, QEMU missing, or QEMU failed.
#
# QEMU's own errors also exit with status 1, which looks exactly like a guest
# exit(0); so QEMU's stderr is captured (the guest's serial output is on
# stdout) and any non-warning line there marks the run as a QEMU failure.
#
# Environment: VMRR_QEMU_TIMEOUT (seconds, default 60), QEMU (binary),
# VMRR_QEMU_ARGS (extra arguments, word-split), e.g. "-s -S" for gdb.
# TCG on purpose: QEMU's own KVM is unusable on the vmrr hosts.
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 <image.elf> [cmdline]" >&2
    exit 126
fi
img=$1
cmdline=${2:-}
qemu=${QEMU:-qemu-system-x86_64}
timeout_s=${VMRR_QEMU_TIMEOUT:-60}

[ -f "$img" ] || { echo "run-qemu: no such image: $img" >&2; exit 126; }
command -v "$qemu" >/dev/null || {
    echo "run-qemu: $qemu not found (run scripts/install-deps.sh)" >&2; exit 126; }

# -nodefaults: no VGA, NIC, floppy or CD-ROM; the only devices are the
# PC's built-ins (PIC, PIT, COM1 via -serial) plus the exit port.
# stdin is /dev/null so QEMU does not put a terminal into raw mode, and the
# guest's bare '\n' line ends print normally.
errlog=$(mktemp)
trap 'rm -f "$errlog"' EXIT
# shellcheck disable=SC2086
timeout --foreground -k 5 "$timeout_s" \
    "$qemu" -M pc -accel tcg -cpu qemu64,+rdrand -m 64M \
    -nodefaults -display none -no-reboot \
    -monitor none -serial stdio \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -kernel "$img" -append "$cmdline" \
    ${VMRR_QEMU_ARGS:-} </dev/null 2>"$errlog"
status=$?
cat "$errlog" >&2

if [ $status -eq 124 ]; then
    echo "run-qemu: timed out after ${timeout_s}s" >&2
    exit 124
fi
if grep -v -q -e 'warning:' "$errlog"; then
    echo "run-qemu: QEMU failed (status $status)" >&2
    exit 126
fi
if [ $((status & 1)) -eq 1 ]; then
    exit $((status >> 1))
fi
echo "run-qemu: QEMU exited with status $status without the guest calling exit()" >&2
exit 125
