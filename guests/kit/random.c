/*
 * random.c - kit_rand32(): random numbers for guests (lwIP's initial
 * sequence numbers and ports), from `rdrand`.
 *
 * Why rdrand, in a debugger that must replay exactly: vmrr never lets the
 * instruction reach the CPU.  Its engine decodes every instruction before
 * stepping it and answers rdrand/rdseed from a generator seeded by the
 * cluster file's `seed` (mixed with the VM's index), and records nothing
 * else, because the answer is a function of the seed: the same run gives the
 * same numbers, replay included.  vmrr's CPUID hides RDRAND anyway (a real
 * program would look), so the kit does not ask CPUID and just executes it.
 *
 * This is the one function in the kit that executes rdrand, and the
 * instruction audit (check-insns.sh) allows it nowhere else.  Like
 * stdlib.c it is linked only into the images that use it (KIT_OPT_SRCS in
 * the Makefile), so the other images keep their layout.  Under QEMU
 * the CPU model must offer it: run-qemu*.sh use `-cpu qemu64,+rdrand`
 * (TCG implements it); without it the guest stops with exception 6.
 */
#include "vmrr.h"

uint32_t kit_rand32(void)
{
    /* rdrand may report "no value yet" (CF=0) on real hardware; Intel's
     * guidance is to retry up to 10 times.  vmrr and QEMU always set CF. */
    for (int i = 0; i < 10; i++) {
        uint32_t v;
        uint8_t ok;
        __asm__ volatile("rdrand %0; setc %1" : "=r"(v), "=qm"(ok) : : "cc");
        if (ok)
            return v;
    }
    /* Not secret material here: a weaker number beats stopping the guest. */
    uint64_t t = rdtsc();
    t ^= t >> 33;
    t *= 0xff51afd7ed558ccdull;
    return (uint32_t)(t ^ (t >> 29));
}
