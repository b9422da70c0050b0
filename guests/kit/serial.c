/*
 * serial.c - COM1 (16550 UART at 0x3f8), polled output only.
 *
 * Polling keeps the guest deterministic and simple: we never enable the
 * UART's interrupt (IER = 0, MCR.OUT2 = 0), so IRQ4 never fires.  Each byte
 * costs one or more `in` from LSR (until THR is empty) plus one `out`.
 * '\n' is sent as a single byte (no '\r'), so the byte stream a VMM records
 * is exactly what the program printed.
 */
#include "vmrr.h"

#define COM1 VMRR_PORT_COM1
#define THR 0   /* transmit holding register (DLAB=0) */
#define DLL 0   /* divisor latch low  (DLAB=1) */
#define IER 1   /* interrupt enable   (DLAB=0) */
#define DLM 1   /* divisor latch high (DLAB=1) */
#define FCR 2   /* FIFO control */
#define LCR 3   /* line control */
#define MCR 4   /* modem control */
#define LSR 5   /* line status */

#define LCR_DLAB 0x80
#define LCR_8N1  0x03
#define LSR_THRE 0x20   /* transmit holding register empty */

void serial_init(void)
{
    outb(COM1 + IER, 0x00);         /* no UART interrupts */
    outb(COM1 + LCR, LCR_DLAB);     /* expose the divisor latch */
    outb(COM1 + DLL, 1);            /* 115200 baud = 115200 / 1 */
    outb(COM1 + DLM, 0);
    outb(COM1 + LCR, LCR_8N1);      /* 8 data bits, no parity, 1 stop; DLAB off */
    outb(COM1 + FCR, 0xc7);         /* enable + clear FIFOs, 14-byte threshold */
    outb(COM1 + MCR, 0x03);         /* DTR + RTS; OUT2 off keeps IRQ4 disconnected */
}

void serial_putc(char c)
{
    while (!(inb(COM1 + LSR) & LSR_THRE))
        ;
    outb(COM1 + THR, (uint8_t)c);
}

void serial_puts(const char *s)
{
    while (*s)
        serial_putc(*s++);
}
