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

/* ---- optional kit objects, linked only where used (KIT_OPT_SRCS) ---- */

int atoi(const char *s);                  /* kit/stdlib.c: for lwIP */

/*
 * kit/random.c: 32 random bits from `rdrand`.  Under vmrr the instruction
 * is answered from a generator seeded by the cluster's seed, so runs and
 * replays see the same numbers; under QEMU the CPU model needs +rdrand
 * (run-qemu*.sh pass it).
 */
uint32_t kit_rand32(void);

/* ==== networking (kit/mmio.c, kit/virtio_net.c, kit/net.c) ============
 *
 * A virtio-net device on the virtio-mmio transport, modern (version 2)
 * only, found through `virtio_mmio.device=<size>@<base>:<irq>` tokens on the
 * command line (vmrr: 4K@0xd0000000:5).  Programs normally use only the
 * frame layer (net_*); the driver calls are its building blocks.
 */

/*
 * Identity-map the 2 MiB pages covering [paddr, paddr+size) when they lie
 * in [1 GiB, 4 GiB) (boot.S maps only the first GiB), cache-disabled.
 * 0 on success, -1 if the range reaches beyond 4 GiB.
 */
int mmio_map(uint64_t paddr, uint64_t size);

/*
 * Driver (kit/virtio_net.c).  virtio_net_init() probes every
 * virtio_mmio.device= token, brings up the first network device (features
 * VERSION_1 and MAC only; RX queue 0, TX queue 1), installs an IRQ handler
 * when the IRQ is an 8259 line (< 16), and returns 0, or prints why not and
 * returns -1.  Call pic_init()/pit_init() first (net_init() does).
 */
int virtio_net_init(void);
int virtio_net_ready(void);
int virtio_net_mac(uint8_t mac[6]);       /* -1 if the device has no MAC feature */
uint64_t virtio_net_base(void);
unsigned virtio_net_irq(void);
int virtio_net_irq_on_pic(void);          /* 0: polled on every wake-up only */
uint64_t virtio_net_irq_count(void);
/* Queue one frame (Ethernet header included, no virtio header); copies it.
 * Sleeps (sti; hlt) while all TX buffers are in flight.  -1 if too long. */
int virtio_net_send(const void *frame, size_t len);
/* Next received frame, in place: returns a buffer id (>= 0) to hand back
 * with virtio_net_rx_release(), or -1 if nothing has arrived. */
int virtio_net_rx_next(const uint8_t **frame, size_t *len);
void virtio_net_rx_release(int id);

/*
 * Frame layer (kit/net.c).  Node N (cmdline `id=N`) has MAC
 * 52:54:00:12:34:NN with NN = N + 1; frames have ethertype 0x88B5 and carry
 * a 2-byte payload length.  net_init() starts the PIT at 1000 Hz (a tick is
 * a millisecond of virtual time), brings the device up and prints one line
 * naming the node, or prints "net: no virtio-net device" and returns -1.
 */
#define NET_ETHERTYPE   0x88b5
#define NET_BROADCAST   (-1)
#define NET_MAX_PAYLOAD 1498
#define NET_FOREVER     (~(uint64_t)0)

int net_init(void);
int net_node_id(void);                    /* -1 before net_init() succeeded */
void net_node_mac(int node, uint8_t mac[6]);   /* node < 0: broadcast */

/* Send `len` bytes to node `dst` or NET_BROADCAST; 0, or -1 if too long. */
int net_send(int dst, const void *payload, size_t len);

/*
 * Wait up to `timeout_ticks` PIT ticks (NET_FOREVER: no limit; 0: just
 * look) for a frame addressed to us.  Copies at most `cap` payload bytes to
 * `buf`, stores the sender's node id (-1 if unknown) in *src when src is not
 * NULL, and returns the number of bytes copied; -1 on timeout.  Sleeps with
 * `sti; hlt` while waiting; restores the caller's interrupt flag.
 */
int net_recv(void *buf, size_t cap, int *src, uint64_t timeout_ticks);

struct net_stats {
    uint64_t tx;            /* frames sent */
    uint64_t rx;            /* frames delivered by net_recv() */
    uint64_t rx_dropped;    /* frames not for us (other ethertype, MAC, own) */
};
void net_get_stats(struct net_stats *s);

/* ==== end of networking ============================================== */

#endif
