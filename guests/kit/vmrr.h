/*
 * vmrr.h - the guest kit's whole API.
 *
 * A guest program is a freestanding x86-64 kernel that boots through the PVH
 * entry point (kit/boot.S), runs entirely in ring 0 with the first 1 GiB
 * identity-mapped, and defines
 *
 *     int kmain(struct hvm_start_info *si);
 *
 * Before kmain runs, the kit has zeroed .bss, loaded the GDT and the IDT
 * (exception handlers print and exit; see "Exceptions" below) and initialised
 * the COM1 serial port.  Interrupts are disabled and the PIC/PIT untouched
 * until the program calls pit_init().  Returning from kmain calls
 * exit(return value).
 *
 * Port ABI (what a VMM has to provide; QEMU provides all but the markers):
 *
 *   0x3f8-0x3ff  COM1, 16550 UART, polled (its IRQ4 is never unmasked)
 *   0x20/0x21    master 8259 PIC, IRQs 0-7  -> vectors 0x20-0x27
 *   0xa0/0xa1    slave  8259 PIC, IRQs 8-15 -> vectors 0x28-0x2f
 *   0x40-0x43    8254 PIT; channel 0 drives IRQ0 (vector 0x20)
 *   0xf4         exit: outl(0xf4, code).  QEMU's isa-debug-exit
 *                (iobase=0xf4,iosize=0x04) exits with status (code<<1)|1.
 *   0xf9         marker name: one outb per byte of the name
 *   0xf8         marker emit: outl(0xf8, value) emits (name, value) and
 *                clears the name buffer.  Nothing listens there under QEMU.
 */
#ifndef VMRR_H
#define VMRR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "x86.h" /* inb/outb/outl, cli/sti/hlt, rdtsc() */

/* ---- port numbers -------------------------------------------------- */

#define VMRR_PORT_COM1        0x3f8
#define VMRR_PORT_PIC1        0x20  /* command; data at +1 */
#define VMRR_PORT_PIC2        0xa0
#define VMRR_PORT_PIT_CH0     0x40
#define VMRR_PORT_PIT_CMD     0x43
#define VMRR_PORT_EXIT        0xf4
#define VMRR_PORT_MARKER      0xf8  /* outl: value, emits the marker */
#define VMRR_PORT_MARKER_NAME 0xf9  /* outb: next byte of the name */

#define VMRR_IRQ_BASE   0x20  /* vector of IRQ0 after pic_init() */
#define VMRR_IRQ_PIT    0
#define VMRR_IRQ_COM1   4

/* Exit code used when a CPU exception kills the guest: base + vector. */
#define VMRR_EXIT_EXCEPTION_BASE 0x40

/* ---- PVH start info (Xen's struct hvm_start_info, version 1) -------- */

#define HVM_START_MAGIC 0x336ec578u

struct hvm_start_info {
    uint32_t magic;          /* HVM_START_MAGIC */
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;  /* NUL-terminated, 0 if none */
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;   /* version >= 1 */
    uint32_t memmap_entries; /* version >= 1 */
    uint32_t reserved;
};

/* Defined by each guest program. */
int kmain(struct hvm_start_info *si);

/* The start info passed by the VMM (NULL if the magic was wrong). */
extern struct hvm_start_info *vmrr_start_info;

/* ---- exit and markers (kit/vmm_ports.c) ----------------------------- */

/* outl(0xf4, code), then cli; hlt forever in case nothing is listening. */
void exit(int code) __attribute__((noreturn));

/*
 * Emit a named marker to the VMM: each byte of `name` to port 0xf9, then
 * `value` to port 0xf8.  Costs strlen(name)+1 port writes; no effect under
 * QEMU.  Use it for values that must not appear in the serial output because
 * they differ between hosts (e.g. rdtsc).
 */
void marker(const char *name, uint32_t value);

/* ---- serial console (kit/serial.c, kit/printf.c) -------------------- */

void serial_init(void);                /* 115200 8N1, FIFO on, no IRQs */
void serial_putc(char c);              /* polls LSR.THRE; '\n' sent as-is */
void serial_puts(const char *s);

/*
 * printf subset: %s %c %d %i %u %x %p %% with optional '-', '0', a width and
 * the length modifiers l / ll / z (so %lx %lu %ld %016lx ...).  Writes to COM1.
 * Returns the number of characters written.
 */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);

/* ---- command line (kit/cmdline.c) ----------------------------------- */

/* The command line from the start info, or "" if there is none. */
const char *cmdline(void);

/*
 * Value of the first whitespace-separated `key=N` token (N decimal, or hex
 * with a 0x prefix), or `dflt` if the key is absent or N is malformed.
 */
uint64_t cmdline_get_u64(const char *key, uint64_t dflt);

/* ---- interrupts (kit/idt.c, kit/pic.c, kit/pit.c) ------------------- */

/* Remap the PICs to vectors 0x20-0x2f and mask every IRQ. */
void pic_init(void);
void pic_unmask(unsigned irq);
void pic_mask(unsigned irq);
void pic_eoi(unsigned irq);

/*
 * Handler for a PIC IRQ (0-15), called with interrupts disabled from the IRQ
 * stub after all general registers are saved; the dispatcher sends the EOI
 * after it returns.  Unhandled IRQs are reported on serial and acknowledged.
 */
typedef void (*irq_handler_t)(unsigned irq);
void irq_set_handler(unsigned irq, irq_handler_t h);

/*
 * pic_init() if not done yet, program PIT channel 0 as a rate generator at
 * `hz` (divisor 1193182/hz rounded; 0 means 1000 Hz), install the tick
 * handler and unmask IRQ0.  Interrupts stay disabled until something sets IF
 * (sleep_ticks() does).
 */
void pit_init(unsigned hz);

/* Timer interrupts seen since pit_init(). */
uint64_t pit_ticks(void);

/*
 * Wait until `n` more ticks have arrived, halting between them with the
 * `sti; hlt` pair.  Restores the caller's interrupt flag on return.
 */
void sleep_ticks(uint64_t n);

/* ---- the C library gcc may call (kit/string.c) ---------------------- */

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

#endif
