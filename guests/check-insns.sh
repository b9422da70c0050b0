#!/usr/bin/env bash
# Disassembles guest images and fails if they contain an instruction the vmrr
# host cannot run in ring 0 (see "Host limits" in the top-level README): anything touching
# x87/MMX/SSE/AVX registers, popcnt, movbe, BMI, int3/int n, rdtscp, ...
#
#   guests/check-insns.sh build/hello.elf build/compute.elf
#
# The 32-bit PVH entry [_start32, _start64) is disassembled as i386, the rest
# of the code as x86-64; a "(bad)" decode anywhere is an error too (data in
# .text, or code in the wrong mode).  One exception: rdrand inside
# kit_rand32() (kit/random.c), which vmrr answers itself (see below).
set -euo pipefail

# Mnemonics (after prefixes) that must not appear.
DENY='^(f.*|emms|femms|ldmxcsr|stmxcsr|xsave.*|xrstor.*|xgetbv|xsetbv|cmpxchg16b|popcnt|crc32.*|andn|bextr|blsi|blsmsk|blsr|tzcnt|lzcnt|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx|adcx|adox|clwb|clflushopt|lar|lsl|verr|verw|rdtscp|stac|clac|clzero|monitor.*|mwait.*|rdpkru|wrpkru|xbegin|xend|xabort|xtest|movbe|rdpid|rdrand|rdseed|int3|int|int1|into|icebp|vmcall|vmmcall|syscall|sysret.*|sysenter|sysexit.*|\(bad\))$'
# Register operands of the vector/x87 units.
DENY_OPERAND='%(xmm|ymm|zmm|mm|st|k)[0-9]|%st\b'
# Allowed in one function only: kit_rand32() (kit/random.c) executes
# rdrand, which vmrr answers from its seeded generator (never the CPU), so
# that lwIP's random numbers are the same on every run.  Anywhere else it is
# a mistake.
ALLOW_IN_FN='kit_rand32'
ALLOW_MNEMONIC='rdrand'

sym() { nm "$1" | awk -v s="$2" '$3 == s { print "0x" $1 }'; }

# objdump lines -> "addr<TAB>mnemonic<TAB>operands<TAB>function", prefixes
# stripped; the function comes from objdump's "<name>:" label lines.
insns() {
    awk -F'\t' '
        /^[0-9a-f]+ <.*>:$/ { fn = $0; sub(/^[0-9a-f]+ </, "", fn); sub(/>:$/, "", fn); next }
        NF >= 2 && $1 ~ /^ *[0-9a-f]+:$/ {
            addr = $1; gsub(/[ :]/, "", addr)
            n = split($NF, w, " ")
            i = 1
            while (i < n && w[i] ~ /^(rep|repz|repnz|repe|repne|lock|cs|ds|es|ss|fs|gs|data16|addr32|notrack|bnd|rex(\.[WRXB]+)?)$/) i++
            ops = ""
            for (j = i + 1; j <= n; j++) ops = ops " " w[j]
            print addr "\t" w[i] "\t" ops "\t" fn
        }'
}

status=0
for elf in "$@"; do
    s32=$(sym "$elf" _start32)
    s64=$(sym "$elf" _start64)
    [ -n "$s32" ] && [ -n "$s64" ] || { echo "$elf: no _start32/_start64 symbols" >&2; status=1; continue; }
    list=$(
        objdump -d -w --no-show-raw-insn -M i386 -j .text \
            --start-address="$s32" --stop-address="$s64" "$elf" | insns
        objdump -d -w --no-show-raw-insn -j .text --start-address="$s64" "$elf" | insns
    )
    total=$(printf "%s\n" "$list" | grep -c . || true)
    bad=$(printf '%s\n' "$list" | awk -F'\t' -v deny="$DENY" -v dop="$DENY_OPERAND" \
        -v afn="$ALLOW_IN_FN" -v amn="$ALLOW_MNEMONIC" '
        $2 == amn && $4 == afn { next }
        $2 ~ deny || $3 ~ dop { print "  " $1 " <" $4 ">: " $2 $3 }')
    if [ -n "$bad" ]; then
        echo "$elf: instructions the vmrr host cannot run:" >&2
        echo "$bad" >&2
        status=1
    else
        echo "$elf: ok ($total instructions checked)"
    fi
done
exit $status
