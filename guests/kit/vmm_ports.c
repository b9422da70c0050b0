/*
 * vmm_ports.c - talking to the VMM through I/O ports: exit and markers.
 *
 * Exit (0xf4) matches QEMU's isa-debug-exit device, so the same image runs
 * under vmrr and QEMU.  Markers (name bytes on 0xf9, value on 0xf8) are a
 * vmrr extension: cheap, named events that a debugger can search for or stop
 * at; nothing decodes those ports under QEMU, so writes there are dropped.
 */
#include "vmrr.h"

void exit(int code)
{
    outl(VMRR_PORT_EXIT, (uint32_t)code);
    /* No exit device: park the CPU with interrupts off. */
    for (;;) {
        cli();
        hlt();
    }
}

void marker(const char *name, uint32_t value)
{
    while (*name)
        outb(VMRR_PORT_MARKER_NAME, (uint8_t)*name++);
    outl(VMRR_PORT_MARKER, value);
}
