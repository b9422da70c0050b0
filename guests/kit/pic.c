/*
 * pic.c - the two cascaded 8259 PICs.
 *
 * After reset the master PIC delivers IRQ0-7 on vectors 8-15, on top of the
 * CPU exceptions, so we remap: master -> 0x20-0x27, slave -> 0x28-0x2f.
 * Every IRQ starts masked; pic_unmask() opens the ones a program uses (and
 * the cascade line IRQ2 when a slave IRQ is needed).  No delay writes to
 * port 0x80 between the ICWs: emulated PICs do not need them and every port
 * write is a VM exit.
 */
#include "vmrr.h"

#define PIC1_CMD  VMRR_PORT_PIC1
#define PIC1_DATA (VMRR_PORT_PIC1 + 1)
#define PIC2_CMD  VMRR_PORT_PIC2
#define PIC2_DATA (VMRR_PORT_PIC2 + 1)

#define ICW1_INIT_ICW4 0x11   /* edge-triggered, cascade, ICW4 follows */
#define ICW4_8086      0x01
#define OCW2_EOI       0x20   /* non-specific end of interrupt */

static uint8_t mask1 = 0xff, mask2 = 0xff;

void pic_init(void)
{
    mask1 = mask2 = 0xff;
    outb(PIC1_CMD, ICW1_INIT_ICW4);
    outb(PIC2_CMD, ICW1_INIT_ICW4);
    outb(PIC1_DATA, VMRR_IRQ_BASE);       /* ICW2: vector base */
    outb(PIC2_DATA, VMRR_IRQ_BASE + 8);
    outb(PIC1_DATA, 1 << 2);              /* ICW3: slave on master's IRQ2 */
    outb(PIC2_DATA, 2);                   /* ICW3: slave's cascade identity */
    outb(PIC1_DATA, ICW4_8086);
    outb(PIC2_DATA, ICW4_8086);
    outb(PIC1_DATA, mask1);               /* OCW1: mask everything */
    outb(PIC2_DATA, mask2);
}

void pic_unmask(unsigned irq)
{
    if (irq < 8) {
        mask1 &= ~(1u << irq);
    } else if (irq < 16) {
        mask2 &= ~(1u << (irq - 8));
        outb(PIC2_DATA, mask2);
        mask1 &= ~(1u << 2);              /* cascade */
    }
    outb(PIC1_DATA, mask1);
}

void pic_mask(unsigned irq)
{
    if (irq < 8) {
        mask1 |= 1u << irq;
        outb(PIC1_DATA, mask1);
    } else if (irq < 16) {
        mask2 |= 1u << (irq - 8);
        outb(PIC2_DATA, mask2);
    }
}

void pic_eoi(unsigned irq)
{
    if (irq >= 8)
        outb(PIC2_CMD, OCW2_EOI);
    outb(PIC1_CMD, OCW2_EOI);
}
