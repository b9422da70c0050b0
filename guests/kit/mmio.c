/*
 * mmio.c - identity-map device registers that lie above the first 1 GiB.
 *
 * boot.S identity-maps [0, 1 GiB) with 2 MiB pages through PML4[0] ->
 * PDPT[0] -> one page directory.  Device MMIO windows live higher up
 * (vmrr's virtio-mmio device at 0xd0000000, QEMU microvm's transports at
 * 0xfeb00000), so mmio_map() adds, at run time, the 2 MiB pages that cover a
 * window in [1 GiB, 4 GiB): it fills PDPT[1..3] of the *live* tables (found
 * through CR3) with page directories of its own, one per GiB that is needed,
 * and marks the device pages cache-disabled (PCD|PWT), as device memory
 * should be (not needed for correctness under an emulated device, but
 * right).  boot.S is left untouched; if it ever maps that range itself (a
 * present PDPT entry, with or without a 1 GiB page), mmio_map() reuses it.
 *
 * Only the page-table words change; the entries were not present before, so
 * no TLB entry can be stale, but CR3 is reloaded anyway to flush any cached
 * paging-structure entries (cheap: a handful of exits, once per device).
 */
#include "vmrr.h"

#define PTE_P   (1ull << 0)
#define PTE_W   (1ull << 1)
#define PTE_PWT (1ull << 3)
#define PTE_PCD (1ull << 4)
#define PTE_PS  (1ull << 7)
#define PTE_ADDR_MASK 0x000ffffffffff000ull

#define GIB       (1ull << 30)
#define PAGE_2M   (1ull << 21)

/* Page directories for GiB 1, 2 and 3 (index 0 is boot.S's). */
static uint64_t mmio_pd[3][512] __attribute__((aligned(4096)));

static inline uint64_t read_cr3(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}

static inline void write_cr3(uint64_t v)
{
    __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory");
}

int mmio_map(uint64_t paddr, uint64_t size)
{
    if (size == 0)
        size = 1;
    uint64_t end = paddr + size;            /* exclusive */
    if (end < paddr || end > 4 * GIB)
        return -1;                          /* beyond what PDPT[0..3] covers */
    if (end <= GIB)
        return 0;                           /* boot.S maps it already */

    /* The tables live in the identity-mapped first GiB, so physical
     * addresses are usable as pointers. */
    uint64_t *pml4 = (uint64_t *)(uintptr_t)(read_cr3() & PTE_ADDR_MASK);
    if (!(pml4[0] & PTE_P))
        return -1;
    uint64_t *pdpt = (uint64_t *)(uintptr_t)(pml4[0] & PTE_ADDR_MASK);

    int changed = 0;
    uint64_t first = paddr < GIB ? GIB : paddr & ~(PAGE_2M - 1);
    for (uint64_t page = first; page < end; page += PAGE_2M) {
        unsigned g = (unsigned)(page / GIB);           /* 1..3 */
        unsigned i = (unsigned)((page % GIB) / PAGE_2M);
        uint64_t *pd;
        if (!(pdpt[g] & PTE_P)) {
            pd = mmio_pd[g - 1];
            pdpt[g] = (uint64_t)(uintptr_t)pd | PTE_P | PTE_W;
            changed = 1;
        } else if (pdpt[g] & PTE_PS) {
            continue;                       /* a 1 GiB page covers it */
        } else {
            pd = (uint64_t *)(uintptr_t)(pdpt[g] & PTE_ADDR_MASK);
        }
        if (!(pd[i] & PTE_P)) {
            pd[i] = page | PTE_P | PTE_W | PTE_PS | PTE_PCD | PTE_PWT;
            changed = 1;
        }
    }
    if (changed)
        write_cr3(read_cr3());
    return 0;
}
