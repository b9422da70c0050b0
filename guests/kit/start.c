/*
 * start.c - the first C code: finish machine setup, run kmain, exit.
 *
 * Called by boot.S in long mode with .bss zeroed and a stack.  Deliberately
 * does not touch the PIC or PIT: a program that never calls pit_init() (the
 * compute benchmark) runs with no interrupt source at all.
 */
#include "vmrr.h"

void idt_init(void);                    /* idt.c */
void kit_entry(struct hvm_start_info *si) __attribute__((noreturn));

struct hvm_start_info *vmrr_start_info;

void kit_entry(struct hvm_start_info *si)
{
    idt_init();
    serial_init();

    if (si && si->magic == HVM_START_MAGIC)
        vmrr_start_info = si;
    else
        printf("kit: bad hvm_start_info at %p\n", (void *)si);

    exit(kmain(vmrr_start_info));
}
