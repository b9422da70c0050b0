/*
 * motion - the guest of the motion benchmark (benches/motion.rs): a long,
 * single-VM run with landmarks at known distances, so that continue,
 * reverse-continue, watchpoints, finish and next can be timed near and far.
 *
 *     cmdline: rounds=N   (default 170: about 20 million instructions)
 *
 * Each round calls tick() once and then runs about 120 000 instructions of
 * filler, which calls tock() every ~15 000. One-off landmarks: at_start()
 * first, quarter() at a quarter of the rounds, three_quarters() at three
 * quarters, at_end() last; long_call() (about a million instructions) and
 * medium_call() (about 100 000) once, in the middle. `rare` is written at
 * the start and at the end only. No interrupts, no I/O inside the loop.
 */
#include "vmrr.h"

#define FILLER_CHUNKS 8          /* tock() calls per round */
#define CHUNK_ITERS 1250         /* 12 instructions each: 15 000 per chunk */
#define LONG_ITERS 85000         /* ~1 000 000 instructions */
#define MEDIUM_ITERS 8500        /* ~100 000 instructions */

volatile uint64_t sink;
volatile uint64_t rare;

/* The same mixing loop everywhere: `n` rounds of xorshift. */
static __attribute__((noinline)) uint64_t work(uint64_t x, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

__attribute__((noinline)) void at_start(void) { sink ^= 1; }
__attribute__((noinline)) void quarter(void) { sink ^= 4; }
__attribute__((noinline)) void three_quarters(void) { sink ^= 8; }
__attribute__((noinline)) void at_end(void) { sink ^= 2; }
__attribute__((noinline)) void tick(uint64_t i) { sink += i; }
__attribute__((noinline)) void tock(void) { sink += 3; }
__attribute__((noinline)) uint64_t long_call(uint64_t x) { return work(x, LONG_ITERS); }
__attribute__((noinline)) uint64_t medium_call(uint64_t x) { return work(x, MEDIUM_ITERS); }

int kmain(struct hvm_start_info *si)
{
    (void)si;
    uint64_t rounds = cmdline_get_u64("rounds", 170);
    uint64_t x = 0x9e3779b97f4a7c15ull;

    at_start();
    rare = 1;
    for (uint64_t r = 0; r < rounds; r++) {
        tick(r);
        for (int c = 0; c < FILLER_CHUNKS; c++) {
            x = work(x, CHUNK_ITERS);
            tock();
        }
        if (r == rounds / 4)
            quarter();
        if (r == rounds / 2) {
            x = long_call(x);
            x = medium_call(x);
        }
        if (r == rounds * 3 / 4)
            three_quarters();
    }
    rare = 2;
    at_end();
    printf("motion: rounds=%lu x=0x%016lx\n", rounds, x);
    return 0;
}
