/*
 * boot.S - PVH entry: from 32-bit protected mode to kit_entry() in long mode.
 *
 * The VMM (vmrr, or QEMU with -kernel) finds the entry point through the Xen
 * ELF note below and starts us as the PVH boot protocol specifies:
 *   - 32-bit protected mode, paging off, interrupts off;
 *   - CS a flat 32-bit code segment, DS/ES/SS flat 32-bit data segments;
 *   - EBX = physical address of struct hvm_start_info (magic 0x336ec578);
 *   - no stack, no GDT we may rely on, .bss contents undefined.
 *
 * Steps: zero .bss, build page tables identity-mapping the first 1 GiB with
 * 2 MiB pages, enable PAE + EFER.LME + paging, far-jump into the 64-bit code
 * segment, load data segments and a stack, call kit_entry(start_info).
 */

#define XEN_ELFNOTE_PHYS32_ENTRY 18

#define CR0_PE       (1 << 0)
#define CR0_PG       (1 << 31)
#define CR4_PAE      (1 << 5)
#define MSR_EFER     0xc0000080
#define EFER_LME     (1 << 8)

#define PTE_P        (1 << 0)   /* present */
#define PTE_W        (1 << 1)   /* writable */
#define PTE_PS       (1 << 7)   /* 2 MiB page (in a page-directory entry) */

#define SEL_CODE64   0x08
#define SEL_DATA     0x10

#define BOOT_STACK_SIZE 16384

/*
 * The PVH note: a standard ELF note (namesz, descsz, type, name, desc) whose
 * desc is the 32-bit physical address of the entry point.  The section is
 * 4-byte aligned so the PT_NOTE segment is too: QEMU aligns the name size up
 * to the segment's p_align when looking for the desc, and 4 is what the note
 * layout itself uses.
 */
        .section .note.Xen, "a", @note
        .p2align 2
        .long   2f - 1f                 /* namesz */
        .long   4f - 3f                 /* descsz */
        .long   XEN_ELFNOTE_PHYS32_ENTRY
1:      .asciz  "Xen"
2:      .p2align 2
3:      .long   _start32                /* physical == virtual (identity map) */
4:      .p2align 2

/* ------------------------------------------------------------------------ */
        .section .text.boot, "ax", @progbits
        .code32
        .globl  _start32
        .type   _start32, @function
_start32:
        cli
        cld
        movl    %ebx, %esi              /* keep start_info across rep stos */

        /*
         * Zero .bss first, while nothing lives there yet: the page tables and
         * the stack below are in .bss, so zeroing it later in 64-bit mode
         * would wipe live page tables.  The linker script pads .bss to a
         * multiple of 4 KiB, so a dword count is exact.  Loaders usually
         * zero it already; doing it here keeps every run bit-identical.
         */
        movl    $__bss_start, %edi
        movl    $__bss_end, %ecx
        subl    %edi, %ecx
        shrl    $2, %ecx
        xorl    %eax, %eax
        rep stosl

        /* PD: 512 entries of 2 MiB pages covering [0, 1 GiB), identity. */
        movl    $boot_pd, %edi
        movl    $(PTE_P | PTE_W | PTE_PS), %eax
        movl    $512, %ecx
1:      movl    %eax, (%edi)            /* high dword already zero */
        addl    $0x200000, %eax
        addl    $8, %edi
        decl    %ecx
        jnz     1b

        /* PDPT[0] -> PD, PML4[0] -> PDPT.  Everything else not present. */
        movl    $(boot_pd + PTE_P + PTE_W), boot_pdpt
        movl    $(boot_pdpt + PTE_P + PTE_W), boot_pml4

        /* Long mode: PAE, CR3, EFER.LME, then paging (activates LMA). */
        movl    %cr4, %eax
        orl     $CR4_PAE, %eax
        movl    %eax, %cr4

        movl    $boot_pml4, %eax
        movl    %eax, %cr3

        movl    $MSR_EFER, %ecx
        rdmsr
        orl     $EFER_LME, %eax
        wrmsr

        movl    %cr0, %eax
        orl     $(CR0_PG | CR0_PE), %eax
        movl    %eax, %cr0

        /*
         * We are now in compatibility mode (CS is still the 32-bit segment
         * the VMM gave us).  Load our GDT and far-jump to its 64-bit code
         * segment.  The 32-bit lgdt reads a 6-byte pointer; the base is
         * below 4 GiB so it stays valid in long mode.
         */
        lgdt    gdt_ptr
        ljmp    $SEL_CODE64, $_start64
        .size   _start32, . - _start32

        .code64; .cfi_sections .debug_frame     /* unwind info: see below */
        .type   _start64, @function
_start64: .cfi_startproc; .cfi_undefined rip   /* the outermost frame */
        movl    $SEL_DATA, %eax
        movl    %eax, %ds
        movl    %eax, %es
        movl    %eax, %ss
        xorl    %eax, %eax
        movl    %eax, %fs
        movl    %eax, %gs

        movq    $boot_stack_top, %rsp   /* 16-byte aligned */
        xorl    %ebp, %ebp              /* terminates frame-pointer walks */

        movl    %esi, %edi              /* zero-extends: start_info pointer */
        call    kit_entry               /* does not return */
2:      cli
        hlt
        jmp     2b
        .cfi_endproc
        .size   _start64, . - _start64
/*
 * _start64 is the outermost frame: its CFI says the return address is
 * undefined, which is how a debugger knows the backtrace ends there (a zero
 * frame pointer is not enough: gdb would show a bogus
 * "0x0000000000000000 in ?? ()" frame above it).  The kit keeps unwind
 * tables in .debug_frame (.eh_frame is discarded by link.ld).  The
 * directives share lines with the code so that line numbers stay put.
 */

/* ------------------------------------------------------------------------ */
/*
 * GDT: long mode ignores base/limit for code and data, but the descriptors
 * must still be present.  Accessed bits are preset so loading a selector
 * never writes to the table (the CPU would set them otherwise, dirtying a
 * page the debugger tracks).
 */
        .section .rodata
        .p2align 3
        .globl  gdt
gdt:
        .quad   0                       /* 0x00: null */
        .quad   0x00af9b000000ffff      /* 0x08: code, 64-bit (L=1), DPL 0 */
        .quad   0x00cf93000000ffff      /* 0x10: data, writable, DPL 0 */
gdt_end:

        .p2align 3
gdt_ptr:
        .word   gdt_end - gdt - 1
        .quad   gdt

/* ------------------------------------------------------------------------ */
        .section .bss
        .p2align 12
boot_pml4:      .skip 4096
boot_pdpt:      .skip 4096
boot_pd:        .skip 4096

        .p2align 4
        .globl  boot_stack_bottom, boot_stack_top
boot_stack_bottom:
        .skip   BOOT_STACK_SIZE
boot_stack_top:

/* No executable stack (silences ld; the section is discarded anyway). */
        .section .note.GNU-stack, "", @progbits
