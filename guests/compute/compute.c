/*
 * compute - the benchmark guest: a deterministic, memory-touching checksum
 * loop with no interrupts and no I/O inside the loop.
 *
 * Each iteration advances a xorshift64 generator, picks a slot of a small
 * table from it, mixes the value into that slot (read-modify-write) and
 * folds a neighbouring slot into an FNV-1a style running hash.  The result
 * depends on every iteration, so the loop cannot be optimised away and any
 * divergence in a replay changes the printed checksum.
 *
 *     cmdline: iters=N   (default 20000)
 */
#include "vmrr.h"

#define TABLE_SLOTS 64                  /* 512 bytes: a few cache lines/pages */
#define FNV_PRIME   0x100000001b3ull
#define FNV_OFFSET  0xcbf29ce484222325ull

static uint64_t table[TABLE_SLOTS];

static uint64_t checksum(uint64_t iters)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;  /* xorshift state, never 0 */
    uint64_t h = FNV_OFFSET;

    for (uint64_t i = 0; i < iters; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned slot = (unsigned)(x >> 58);            /* 0..63 */
        table[slot] = (table[slot] ^ x) * FNV_PRIME;
        h = (h ^ table[(slot + 1) % TABLE_SLOTS]) * FNV_PRIME;
    }
    for (unsigned s = 0; s < TABLE_SLOTS; s++)
        h = (h ^ table[s]) * FNV_PRIME;
    return h;
}

int kmain(struct hvm_start_info *si)
{
    (void)si;
    uint64_t iters = cmdline_get_u64("iters", 20000);
    uint64_t sum = checksum(iters);
    printf("compute: iters=%lu checksum=0x%016lx\n", iters, sum);
    return 0;
}
