/*
 * isr.S - interrupt entry stubs: the 32 CPU exceptions and the 16 PIC IRQs.
 *
 * Every stub leaves the same frame on the stack (struct isr_frame in idt.c):
 *
 *     r15 ... rax      15 general registers, pushed by isr_common
 *     vector           pushed by the stub
 *     error            CPU error code, or 0 pushed by the stub when the CPU
 *                      does not push one (so the layout is uniform)
 *     rip cs rflags rsp ss   pushed by the CPU
 *
 * The CPU aligns RSP to 16 before pushing its 5 words; 5 + error + vector +
 * 15 registers = 22 words, so RSP is 16-byte aligned again at the C call as
 * the ABI requires.  The handler runs with IF=0 (interrupt gates).
 */

        .text

.macro EXC_STUB v
        .p2align 4
exc_stub_\v:
        /* the CPU pushes an error code only for these vectors */
        .if !((\v == 8) || (\v == 10) || (\v == 11) || (\v == 12) || (\v == 13) || (\v == 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30))
        pushq   $0                      /* dummy error code */
        .endif
        pushq   $\v
        jmp     exc_common
.endm

.macro IRQ_STUB v
        .p2align 4
irq_stub_\v:
        pushq   $0                      /* dummy error code */
        pushq   $\v
        jmp     irq_common
.endm

.macro SAVE_GPRS
        pushq   %rax
        pushq   %rbx
        pushq   %rcx
        pushq   %rdx
        pushq   %rsi
        pushq   %rdi
        pushq   %rbp
        pushq   %r8
        pushq   %r9
        pushq   %r10
        pushq   %r11
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
.endm

.macro RESTORE_GPRS
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %r11
        popq    %r10
        popq    %r9
        popq    %r8
        popq    %rbp
        popq    %rdi
        popq    %rsi
        popq    %rdx
        popq    %rcx
        popq    %rbx
        popq    %rax
.endm

        .irp    v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        EXC_STUB \v
        .endr

        .irp    v, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
        IRQ_STUB \v
        .endr

/* Exceptions are fatal: exception_handler() prints and exits, never returns. */
        .p2align 4
exc_common:
        cld
        SAVE_GPRS
        movq    %rsp, %rdi
        call    exception_handler
1:      cli
        hlt
        jmp     1b

/* IRQs return to the interrupted code with every register as it was. */
        .p2align 4
irq_common:
        cld
        SAVE_GPRS
        movq    %rsp, %rdi
        call    irq_dispatch
        RESTORE_GPRS
        addq    $16, %rsp               /* vector + error code */
        iretq

/* Tables of stub addresses, read by idt_init(). */
        .section .rodata
        .p2align 3
        .globl  exc_stubs
exc_stubs:
        .irp    v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad   exc_stub_\v
        .endr

        .globl  irq_stubs
irq_stubs:
        .irp    v, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
        .quad   irq_stub_\v
        .endr

/* No executable stack (silences ld; the section is discarded anyway). */
        .section .note.GNU-stack, "", @progbits
