/*
 * originprobe - the guest of the analysis tests and benchmark
 * (debugger/tests/analysis.rs, benches/analysis.rs): values whose origin
 * is known, moved in known ways.
 *
 *     cmdline: mode=0                  (default) one VM: a value copied
 *                                      through locals, a call, a struct and
 *                                      memcpy (rep movsb); `result` ends up
 *                                      holding it plus one, `mixed` a sum of
 *                                      two sources
 *              id=0 mode=1 rounds=N every=K
 *                                      the sender: N rounds of ~100 000
 *                                      instructions of mixing; every K rounds
 *                                      it calls rare_event() and sends the
 *                                      round's value to node 1
 *              id=1 mode=2 rounds=N every=K
 *                                      the receiver: N rounds of mixing,
 *                                      looking for frames between rounds;
 *                                      keeps the last value received in
 *                                      `last_value`, then waits for the rest
 *
 * clusters/originprobe.toml runs the sender and the receiver with
 * rounds=115 every=10: about 21 million steps in all.
 */
#include "vmrr.h"

#define ROUND_ITERS 8300        /* 12 instructions each: ~100 000 per round */

struct box {
    uint64_t pad;
    uint32_t v;
    uint32_t w;
};

/* In .data: the image's own bytes, never written at run time. */
uint32_t seed = 0x5eed1234;
struct box box_a, box_b;
volatile uint32_t result, mixed;
volatile uint32_t last_value;
volatile uint64_t sink;

/* A message on the wire. */
struct msg {
    uint32_t magic;
    uint32_t round;
    uint32_t value;
};

#define MSG_MAGIC 0x0419b0be

static __attribute__((noinline)) uint64_t work(uint64_t x, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

/* One hop through a call: the value is read and written through pointers. */
static __attribute__((noinline)) void hop(volatile uint32_t *to, const volatile uint32_t *from)
{
    *to = *from;
}

/* Called rarely, so that its calls are found in few slices. */
__attribute__((noinline)) void rare_event(uint32_t round, uint32_t value)
{
    sink += round ^ value;
}

static int local_chain(void)
{
    volatile uint32_t l1, l2, l3;
    l1 = seed;                              /* .data -> stack */
    l2 = l1;                                /* stack -> stack */
    hop(&l3, &l2);                          /* through a call */
    box_a.v = l3;                           /* stack -> a global struct */
    box_a.w = 7;
    memcpy(&box_b, &box_a, sizeof box_a);   /* rep movsb */
    result = box_b.v + 1;                   /* one source: a transform */
    mixed = box_b.v + l1;                   /* two sources: a mix */
    marker("probe", result);
    printf("originprobe: result=0x%x mixed=0x%x\n", (unsigned)result, (unsigned)mixed);
    return 0;
}

static int sender(uint64_t rounds, uint64_t every)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (uint64_t r = 1; r <= rounds; r++) {
        x = work(x, ROUND_ITERS);
        if (r % every == 0) {
            struct msg m = { MSG_MAGIC, (uint32_t)r, (uint32_t)x };
            rare_event((uint32_t)r, m.value);
            net_send(1, &m, sizeof m);
        }
    }
    printf("originprobe: sent %u values\n", (unsigned)(rounds / every));
    return 0;
}

static int receiver(uint64_t rounds, uint64_t every)
{
    uint64_t x = 0x51ed270b9c3a1f05ull;
    uint64_t want = rounds / every, got = 0;
    struct msg m;
    int src;
    for (uint64_t r = 1; r <= rounds || got < want; r++) {
        if (r <= rounds)
            x = work(x, ROUND_ITERS);
        /* Past the last round, wait (up to a second) for what is missing. */
        uint64_t wait = r <= rounds ? 0 : 1000;
        if (net_recv(&m, sizeof m, &src, wait) == (int)sizeof m && m.magic == MSG_MAGIC) {
            last_value = m.value;
            got++;
        } else if (r > rounds) {
            break;
        }
    }
    sink = x;
    printf("originprobe: received %u of %u values, last 0x%x\n", (unsigned)got, (unsigned)want,
           (unsigned)last_value);
    return got == want ? 0 : 1;
}

int kmain(struct hvm_start_info *si)
{
    (void)si;
    uint64_t mode = cmdline_get_u64("mode", 0);
    if (mode == 0)
        return local_chain();
    uint64_t rounds = cmdline_get_u64("rounds", 110);
    uint64_t every = cmdline_get_u64("every", 10);
    if (every == 0)
        every = 1;
    if (net_init() < 0)
        return 2;
    return mode == 1 ? sender(rounds, every) : receiver(rounds, every);
}
