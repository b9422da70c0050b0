/*
 * idt.c - the IDT and the C side of interrupt handling.
 *
 * Vectors 0-31 (CPU exceptions) are fatal: we print
 * "exception N error=E rip=R" on serial and exit with
 * VMRR_EXIT_EXCEPTION_BASE + N, which makes a crash visible both in the
 * serial log and in the exit code.  Vectors 0x20-0x2f are the remapped PIC
 * IRQs, dispatched to handlers registered with irq_set_handler().  All other
 * gates are left not-present; using one raises #GP, which is reported.
 */
#include "vmrr.h"

struct isr_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;  /* pushed by the CPU */
};

struct idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
} __attribute__((packed));

struct idt_ptr {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

#define SEL_CODE64 0x08
#define GATE_INTERRUPT 0x8e  /* present, DPL 0, 64-bit interrupt gate (clears IF) */

extern const uint64_t exc_stubs[32];   /* isr.S */
extern const uint64_t irq_stubs[16];   /* isr.S */

static struct idt_gate idt[256] __attribute__((aligned(16)));
static irq_handler_t irq_handlers[16];

static void set_gate(unsigned vec, uint64_t handler)
{
    struct idt_gate *g = &idt[vec];
    g->offset_lo = handler & 0xffff;
    g->selector = SEL_CODE64;
    g->ist = 0;
    g->type_attr = GATE_INTERRUPT;
    g->offset_mid = (handler >> 16) & 0xffff;
    g->offset_hi = handler >> 32;
    g->reserved = 0;
}

void idt_init(void)
{
    for (unsigned v = 0; v < 32; v++)
        set_gate(v, exc_stubs[v]);
    for (unsigned i = 0; i < 16; i++)
        set_gate(VMRR_IRQ_BASE + i, irq_stubs[i]);

    struct idt_ptr p = { sizeof(idt) - 1, (uint64_t)idt };
    __asm__ volatile("lidt %0" : : "m"(p) : "memory");
}

void irq_set_handler(unsigned irq, irq_handler_t h)
{
    if (irq < 16)
        irq_handlers[irq] = h;
}

/* Called from isr.S for vectors 0-31; never returns. */
void exception_handler(struct isr_frame *f) __attribute__((noreturn));
void exception_handler(struct isr_frame *f)
{
    printf("exception %lu error=0x%lx rip=0x%lx\n",
           (unsigned long)f->vector, (unsigned long)f->error,
           (unsigned long)f->rip);
    exit(VMRR_EXIT_EXCEPTION_BASE + (int)f->vector);
}

/* Called from isr.S for vectors 0x20-0x2f; returns to iretq. */
void irq_dispatch(struct isr_frame *f);
void irq_dispatch(struct isr_frame *f)
{
    unsigned irq = (unsigned)f->vector - VMRR_IRQ_BASE;
    irq_handler_t h = irq_handlers[irq];
    if (h)
        h(irq);
    else
        printf("unhandled irq %u\n", irq);
    /*
     * Acknowledge after the handler so a level can't re-fire while we are
     * still inside it (IF is clear anyway until iretq).  Spurious IRQ 7/15
     * are not filtered: they are masked and emulated PICs do not produce them.
     */
    pic_eoi(irq);
}
