/*
 * probe - exercises the engine's edge cases, one per run, chosen by the
 * command line `test=NAME`.  A test guest for vmrr's own test suite: some
 * cases deliberately run instructions this host cannot step (popcnt, int3,
 * ring 3), so it is built but not part of `make check`.
 *
 *   cpuid   print the CPU identity the VMM presents
 *   rdrand  two rdrand and one rdseed values (seeded by the VMM)
 *   rdtscp  rdtscp and rdmsr(TSC): virtual time, TSC_AUX
 *   rep     rep movsb / rep stosq across several 1024-iteration chunks
 *   ud2     an invalid opcode: the kit's handler prints and exits 0x46
 *   clihlt  cli; hlt: halts forever
 *   popcnt  an instruction the host's ring-0 emulator cannot run
 *   int3    likewise
 *   ring3   iretq into ring 3, which the host cannot single-step
 */
#include "vmrr.h"

static int streq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

/* The value of `test=` on the command line, copied into `out`. */
static void test_name(char *out, size_t size)
{
    const char *c = cmdline();
    size_t n = 0;
    while (*c) {
        if (c[0] == 't' && c[1] == 'e' && c[2] == 's' && c[3] == 't' && c[4] == '=') {
            c += 5;
            while (*c && *c != ' ' && n + 1 < size)
                out[n++] = *c++;
            break;
        }
        while (*c && *c != ' ')
            c++;
        while (*c == ' ')
            c++;
    }
    out[n] = 0;
}

static void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static void test_cpuid(void)
{
    uint32_t a, b, c, d;
    char vendor[13];
    cpuid(0, &a, &b, &c, &d);
    for (int i = 0; i < 4; i++) {
        vendor[i] = (char)(b >> (8 * i));
        vendor[4 + i] = (char)(d >> (8 * i));
        vendor[8 + i] = (char)(c >> (8 * i));
    }
    vendor[12] = 0;
    printf("cpuid: max=%u vendor=%s\n", a, vendor);
    cpuid(1, &a, &b, &c, &d);
    printf("cpuid 1: eax=%x ecx=%x edx=%x\n", a, c, d);
    cpuid(0x80000001, &a, &b, &c, &d);
    printf("cpuid 80000001: ecx=%x edx=%x\n", c, d);
}

static void test_rdrand(void)
{
    uint64_t v1, v2, v3;
    uint8_t ok1, ok2, ok3;
    __asm__ volatile("rdrand %0; setc %1" : "=r"(v1), "=qm"(ok1) :: "cc");
    __asm__ volatile("rdrand %0; setc %1" : "=r"(v2), "=qm"(ok2) :: "cc");
    __asm__ volatile("rdseed %0; setc %1" : "=r"(v3), "=qm"(ok3) :: "cc");
    printf("rdrand: %lx %d %lx %d rdseed: %lx %d\n", v1, ok1, v2, ok2, v3, ok3);
}

static void test_rdtscp(void)
{
    uint32_t lo, hi, aux, mlo, mhi;
    __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
    __asm__ volatile("rdmsr" : "=a"(mlo), "=d"(mhi) : "c"(0x10));
    uint64_t t1 = ((uint64_t)hi << 32) | lo, t2 = ((uint64_t)mhi << 32) | mlo;
    printf("rdtscp: aux=%u later=%d\n", aux, t2 > t1);
    marker("rdtscp", lo);
}

static uint8_t src[5000], dst[5000];
static uint64_t words[3000];

static void test_rep(void)
{
    for (int i = 0; i < 5000; i++)
        src[i] = (uint8_t)(i * 7);
    size_t n = sizeof src;
    void *d = dst;
    const void *s = src;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory");
    uint64_t fill = 0x0123456789abcdefull, count = 3000;
    void *w = words;
    __asm__ volatile("rep stosq" : "+D"(w), "+c"(count) : "a"(fill) : "memory");
    uint64_t sum = 0;
    for (int i = 0; i < 5000; i++)
        sum = sum * 31 + dst[i];
    for (int i = 0; i < 3000; i++)
        sum ^= words[i] + (uint64_t)i;
    printf("rep: sum=%lx\n", sum);
}

/* A GDT with ring-3 segments, so that iretq can really reach ring 3. */
static uint64_t user_gdt[] = {
    0,
    0x00af9b000000ffffull, /* 0x08 kernel code */
    0x00cf93000000ffffull, /* 0x10 kernel data */
    0x00aff3000000ffffull, /* 0x18 user data, DPL 3 */
    0x00affb000000ffffull, /* 0x20 user code, DPL 3, 64-bit */
};
static uint8_t user_stack[4096] __attribute__((aligned(16)));

static void user_code(void)
{
    for (;;)
        ;
}

static void test_ring3(void)
{
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } ptr = {
        sizeof user_gdt - 1, (uint64_t)user_gdt
    };
    __asm__ volatile("lgdt %0" :: "m"(ptr));
    uint64_t rsp = (uint64_t)(user_stack + sizeof user_stack);
    __asm__ volatile(
        "pushq $0x1b\n\t"   /* ss: user data | RPL 3 */
        "pushq %0\n\t"      /* rsp */
        "pushq $0x2\n\t"    /* rflags */
        "pushq $0x23\n\t"   /* cs: user code | RPL 3 */
        "pushq %1\n\t"      /* rip */
        "iretq"
        :: "r"(rsp), "r"((uint64_t)user_code) : "memory");
}

int kmain(struct hvm_start_info *si)
{
    (void)si;
    char name[16];
    test_name(name, sizeof name);
    printf("probe %s\n", name);
    if (streq(name, "cpuid")) {
        test_cpuid();
    } else if (streq(name, "rdrand")) {
        test_rdrand();
    } else if (streq(name, "rdtscp")) {
        test_rdtscp();
    } else if (streq(name, "rep")) {
        test_rep();
    } else if (streq(name, "ud2")) {
        __asm__ volatile("ud2");
    } else if (streq(name, "clihlt")) {
        __asm__ volatile("cli; hlt");
    } else if (streq(name, "popcnt")) {
        uint64_t r, x = 0xff;
        __asm__ volatile("popcnt %1, %0" : "=r"(r) : "r"(x));
        printf("popcnt: %lu\n", r);
    } else if (streq(name, "int3")) {
        __asm__ volatile("int3");
    } else if (streq(name, "ring3")) {
        test_ring3();
    } else {
        printf("unknown test '%s'\n", name);
        return 1;
    }
    printf("probe done\n");
    return 0;
}
