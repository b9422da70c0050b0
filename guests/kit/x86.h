/*
 * x86.h - the handful of privileged/port instructions the kit needs, as
 * inline functions.  Kept in one place so that every instruction a guest can
 * execute outside plain gcc-generated code is easy to audit against the list
 * of instructions the vmrr host can run (see "Host limits" in the top-level README).
 */
#ifndef VMRR_X86_H
#define VMRR_X86_H

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void hlt(void) { __asm__ volatile("hlt" ::: "memory"); }

/*
 * `sti` only takes effect after the *next* instruction (the "interrupt
 * shadow"), so `sti; hlt` as one asm block atomically enables interrupts and
 * halts: an interrupt that is already pending is taken after the hlt starts
 * and wakes it, instead of slipping in between and leaving us halted.
 */
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }

static inline uint64_t read_rflags(void)
{
    uint64_t f;
    __asm__ volatile("pushfq; popq %0" : "=r"(f) : : "memory");
    return f;
}

#define RFLAGS_IF (1u << 9)

/*
 * Plain `rdtsc` (never `rdtscp`, which the host cannot run).  Under vmrr the
 * VMM emulates the value so that replays see the same numbers.
 */
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

#endif
