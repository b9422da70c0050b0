/*
 * pit.c - 8254 PIT channel 0 as the tick source, and sleep_ticks().
 *
 * Channel 0 in mode 2 (rate generator) raises IRQ0 every `divisor` input
 * clocks of 1.193182 MHz.  The IRQ handler only counts; the dispatcher in
 * idt.c sends the EOI.  Programs print loop counters rather than raw tick
 * counts, so their output does not depend on how fast the host delivers
 * ticks.
 */
#include "vmrr.h"

#define PIT_INPUT_HZ 1193182u
#define PIT_CH0_LOHI_MODE2 0x34   /* channel 0, lobyte/hibyte, mode 2, binary */

static volatile uint64_t ticks;
static int pic_ready;

static void pit_irq(unsigned irq)
{
    (void)irq;
    ticks++;
}

void pit_init(unsigned hz)
{
    if (hz == 0)
        hz = 1000;
    uint32_t div = (PIT_INPUT_HZ + hz / 2) / hz;   /* rounded */
    if (div < 1)
        div = 1;
    if (div > 65536)
        div = 65536;                              /* written as 0 */

    if (!pic_ready) {
        pic_init();
        pic_ready = 1;
    }
    irq_set_handler(VMRR_IRQ_PIT, pit_irq);

    outb(VMRR_PORT_PIT_CMD, PIT_CH0_LOHI_MODE2);
    outb(VMRR_PORT_PIT_CH0, div & 0xff);
    outb(VMRR_PORT_PIT_CH0, (div >> 8) & 0xff);
    pic_unmask(VMRR_IRQ_PIT);
}

uint64_t pit_ticks(void)
{
    return ticks;
}

void sleep_ticks(uint64_t n)
{
    int was_enabled = (read_rflags() & RFLAGS_IF) != 0;
    uint64_t start = ticks;

    /*
     * Test the counter with interrupts off, then `sti; hlt`: the tick that
     * ends the wait is either already counted (we leave) or arrives after
     * the hlt started and wakes it.  Without the cli, a tick landing between
     * the test and the hlt could leave us halted for a whole extra period.
     */
    for (;;) {
        cli();
        if (ticks - start >= n)
            break;
        sti_hlt();
    }
    if (was_enabled)
        sti();
}
