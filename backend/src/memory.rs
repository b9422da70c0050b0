//! Guest RAM and the guest's view of it: physical reads and a page-table walk.

use vm_memory::bitmap::AtomicBitmap;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::error::{Result, VmError};

/// Guest RAM: one region from physical address 0. The bitmap records pages
/// the VMM itself writes (loader, virtio), which KVM's dirty log cannot see.
pub type GuestRam = GuestMemoryMmap<AtomicBitmap>;

/// Size of a guest page, the unit of dirty tracking and of the page store.
pub const PAGE_SIZE: u64 = 4096;

/// Allocates `bytes` of zeroed guest RAM at physical address 0.
pub fn create_ram(bytes: u64) -> Result<GuestRam> {
    let len = usize::try_from(bytes).map_err(|_| VmError::Memory("size too large".into()))?;
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), len)])
        .map_err(|source| VmError::Allocate { bytes, source })
}

/// Size of the single RAM region.
pub fn ram_size(ram: &GuestRam) -> u64 {
    ram.iter().map(vm_memory::GuestMemoryRegion::len).sum()
}

/// The registers that decide how a guest-virtual address maps to physical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PagingMode {
    /// CR0 (PG, WP).
    pub cr0: u64,
    /// CR3: the page-table root.
    pub cr3: u64,
    /// CR4 (PAE, PSE, LA57).
    pub cr4: u64,
    /// EFER (LMA).
    pub efer: u64,
}

const CR0_PG: u64 = 1 << 31;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;
const PTE_P: u64 = 1;
const PTE_PS: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Why an address has no physical translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranslateError {
    /// A page-table entry on the way is not present.
    NotMapped,
    /// A page-table entry points outside guest RAM.
    TableOutsideRam,
    /// 5-level paging, which vmrr does not walk.
    Unsupported,
}

/// Translates a guest-virtual (linear) address with the guest's own page tables.
pub fn translate(ram: &GuestRam, mode: &PagingMode, va: u64) -> std::result::Result<u64, TranslateError> {
    if mode.cr0 & CR0_PG == 0 {
        return Ok(va & 0xffff_ffff);
    }
    let read = |pa: u64| -> std::result::Result<u64, TranslateError> {
        ram.read_obj::<u64>(GuestAddress(pa))
            .map_err(|_| TranslateError::TableOutsideRam)
    };
    if mode.efer & EFER_LMA != 0 {
        if mode.cr4 & CR4_LA57 != 0 {
            return Err(TranslateError::Unsupported);
        }
        let mut table = mode.cr3 & ADDR_MASK;
        for level in (0..4).rev() {
            let shift = 12 + 9 * level;
            let entry = read(table + ((va >> shift) & 0x1ff) * 8)?;
            if entry & PTE_P == 0 {
                return Err(TranslateError::NotMapped);
            }
            if level == 0 || (level <= 2 && entry & PTE_PS != 0) {
                let page_mask = (1u64 << shift) - 1;
                return Ok((entry & ADDR_MASK & !page_mask) | (va & page_mask));
            }
            table = entry & ADDR_MASK;
        }
        Err(TranslateError::NotMapped)
    } else if mode.cr4 & CR4_PAE != 0 {
        let va = va & 0xffff_ffff;
        let pdpte = read((mode.cr3 & 0xffff_ffe0) + ((va >> 30) & 3) * 8)?;
        if pdpte & PTE_P == 0 {
            return Err(TranslateError::NotMapped);
        }
        let pde = read((pdpte & ADDR_MASK) + ((va >> 21) & 0x1ff) * 8)?;
        if pde & PTE_P == 0 {
            return Err(TranslateError::NotMapped);
        }
        if pde & PTE_PS != 0 {
            return Ok((pde & ADDR_MASK & !0x1f_ffff) | (va & 0x1f_ffff));
        }
        let pte = read((pde & ADDR_MASK) + ((va >> 12) & 0x1ff) * 8)?;
        if pte & PTE_P == 0 {
            return Err(TranslateError::NotMapped);
        }
        Ok((pte & ADDR_MASK) | (va & 0xfff))
    } else {
        let va = va & 0xffff_ffff;
        let read32 = |pa: u64| read(pa).map(|v| v & 0xffff_ffff);
        let pde = read32((mode.cr3 & 0xffff_f000) + ((va >> 22) & 0x3ff) * 4)?;
        if pde & PTE_P == 0 {
            return Err(TranslateError::NotMapped);
        }
        if pde & PTE_PS != 0 && mode.cr4 & CR4_PSE != 0 {
            return Ok((pde & 0xffc0_0000) | (va & 0x3f_ffff));
        }
        let pte = read32((pde & 0xffff_f000) + ((va >> 12) & 0x3ff) * 4)?;
        if pte & PTE_P == 0 {
            return Err(TranslateError::NotMapped);
        }
        Ok((pte & 0xffff_f000) | (va & 0xfff))
    }
}

/// Reads guest-virtual memory into `buf`, page by page. Returns how many bytes
/// could be read before the first unmapped page, or the end of the address
/// space: a read at `0xffff_ffff_ffff_fff8` never goes on at address 0.
pub fn read_virt(ram: &GuestRam, mode: &PagingMode, va: u64, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let Some(addr) = va.checked_add(done as u64) else {
            break;
        };
        let Ok(pa) = translate(ram, mode, addr) else {
            break;
        };
        let in_page = (4096 - (addr & 0xfff)) as usize;
        let n = in_page.min(buf.len() - done);
        if ram
            .read_slice(&mut buf[done..done + n], GuestAddress(pa))
            .is_err()
        {
            break;
        }
        done += n;
    }
    done
}

/// Writes `data` to guest-virtual memory at `va`, page by page, through the
/// guest's page tables. Returns how many bytes were written before the first
/// unmapped page (or the end of the address space, as for reads). The RAM
/// bitmap records the pages, as for any VMM write.
pub fn write_virt(ram: &GuestRam, mode: &PagingMode, va: u64, data: &[u8]) -> usize {
    let mut done = 0;
    while done < data.len() {
        let Some(addr) = va.checked_add(done as u64) else {
            break;
        };
        let Ok(pa) = translate(ram, mode, addr) else {
            break;
        };
        let in_page = (4096 - (addr & 0xfff)) as usize;
        let n = in_page.min(data.len() - done);
        if ram.write_slice(&data[done..done + n], GuestAddress(pa)).is_err() {
            break;
        }
        done += n;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_walk_with_2m_and_4k_pages() {
        let ram = create_ram(8 << 20).unwrap();
        // PML4 at 0x1000 -> PDPT at 0x2000 -> PD at 0x3000; PD[0] = 2 MiB page at 0,
        // PD[1] -> PT at 0x4000 whose entry 5 maps to 0x7000.
        ram.write_obj(0x2000u64 | 3, GuestAddress(0x1000)).unwrap();
        ram.write_obj(0x3000u64 | 3, GuestAddress(0x2000)).unwrap();
        ram.write_obj(0x83u64, GuestAddress(0x3000)).unwrap();
        ram.write_obj(0x4000u64 | 3, GuestAddress(0x3008)).unwrap();
        ram.write_obj(0x7000u64 | 3, GuestAddress(0x4000 + 5 * 8))
            .unwrap();
        let mode = PagingMode {
            cr0: CR0_PG | 1,
            cr3: 0x1000,
            cr4: CR4_PAE,
            efer: EFER_LMA | (1 << 8),
        };
        assert_eq!(translate(&ram, &mode, 0x1234), Ok(0x1234));
        assert_eq!(translate(&ram, &mode, 0x20_5abc), Ok(0x7abc));
        assert_eq!(translate(&ram, &mode, 0x20_6000), Err(TranslateError::NotMapped));
        assert_eq!(translate(&ram, &mode, 1 << 39), Err(TranslateError::NotMapped));
    }

    #[test]
    fn virtual_writes_stop_at_the_first_unmapped_page() {
        let ram = create_ram(8 << 20).unwrap();
        // PML4 -> PDPT -> PD; PD[0] maps the first 2 MiB, nothing above.
        ram.write_obj(0x2000u64 | 3, GuestAddress(0x1000)).unwrap();
        ram.write_obj(0x3000u64 | 3, GuestAddress(0x2000)).unwrap();
        ram.write_obj(0x83u64, GuestAddress(0x3000)).unwrap();
        let mode = PagingMode {
            cr0: CR0_PG | 1,
            cr3: 0x1000,
            cr4: CR4_PAE,
            efer: EFER_LMA | (1 << 8),
        };
        assert_eq!(write_virt(&ram, &mode, 0x10_0000, &[1, 2, 3]), 3);
        let mut back = [0u8; 3];
        assert_eq!(read_virt(&ram, &mode, 0x10_0000, &mut back), 3);
        assert_eq!(back, [1, 2, 3]);
        assert_eq!(write_virt(&ram, &mode, 0x1f_fffe, &[9; 4]), 2);
        assert_eq!(write_virt(&ram, &mode, 1 << 40, &[9; 4]), 0);
    }

    #[test]
    fn accesses_stop_at_the_end_of_the_address_space() {
        let ram = create_ram(8 << 20).unwrap();
        // PML4[0] maps the first 2 MiB at 0; PML4[511] maps the top 2 MiB of
        // the address space onto 2..4 MiB.
        ram.write_obj(0x2000u64 | 3, GuestAddress(0x1000)).unwrap();
        ram.write_obj(0x5000u64 | 3, GuestAddress(0x1000 + 511 * 8))
            .unwrap();
        ram.write_obj(0x3000u64 | 3, GuestAddress(0x2000)).unwrap();
        ram.write_obj(0x83u64, GuestAddress(0x3000)).unwrap();
        ram.write_obj(0x6000u64 | 3, GuestAddress(0x5000 + 511 * 8))
            .unwrap();
        ram.write_obj(0x20_0083u64, GuestAddress(0x6000 + 511 * 8))
            .unwrap();
        let mode = PagingMode {
            cr0: CR0_PG | 1,
            cr3: 0x1000,
            cr4: CR4_PAE,
            efer: EFER_LMA | (1 << 8),
        };
        let top = 0xffff_ffff_ffff_fff8;
        assert_eq!(translate(&ram, &mode, top), Ok(0x3f_fff8));
        let mut buf = [0u8; 16];
        assert_eq!(read_virt(&ram, &mode, top, &mut buf), 8, "not continued at 0");
        assert_eq!(write_virt(&ram, &mode, top, &[7; 16]), 8);
        let mut low = [0u8; 8];
        assert_eq!(read_virt(&ram, &mode, 0, &mut low), 8);
        assert_ne!(low, [7; 8], "address 0 untouched");
    }

    #[test]
    fn paging_off_is_identity() {
        let ram = create_ram(4 << 20).unwrap();
        let mode = PagingMode::default();
        assert_eq!(translate(&ram, &mode, 0x10_0000), Ok(0x10_0000));
        let mut buf = [0u8; 8];
        assert_eq!(read_virt(&ram, &mode, 0x1000, &mut buf), 8);
        assert_eq!(read_virt(&ram, &mode, (4 << 20) - 4, &mut buf), 4);
    }
}
