//! PVH boot: checks an ELF64 kernel, loads it with linux-loader, writes
//! `hvm_start_info` (memory map, command line) and gives the 32-bit entry state.

use std::io::Cursor;
use std::path::Path;

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_start_info};
use linux_loader::loader::elf::Elf;
use linux_loader::loader::KernelLoader;
use vm_memory::{Bytes, GuestAddress};

use crate::error::{guest_memory, Result, VmError};
use crate::memory::GuestRam;

/// Where `hvm_start_info` goes (below 1 MiB, away from the kernel).
pub const START_INFO_ADDR: u64 = 0x6000;
/// Where the memory map follows it.
pub const MEMMAP_ADDR: u64 = 0x7000;
/// Where the NUL-terminated command line goes.
pub const CMDLINE_ADDR: u64 = 0x2_0000;
/// Kernels must load at or above 1 MiB: below it lie the boot structures.
pub const KERNEL_MIN_ADDR: u64 = 0x10_0000;
/// Start of the legacy hole reported as reserved.
const LOW_RAM_END: u64 = 0x9_fc00;

const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

const FIX: &str = "build a 64-bit ELF kernel with a PVH note (XEN_ELFNOTE_PHYS32_ENTRY), \
linked at or above 1 MiB, as the kit in guests/ does";

/// What loading produced: where to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootInfo {
    /// Physical address of the 32-bit PVH entry point.
    pub entry: u64,
    /// End of the highest loaded segment.
    pub kernel_end: u64,
}

fn bad(path: &Path, problem: impl Into<String>) -> VmError {
    VmError::BadImage {
        path: path.to_path_buf(),
        problem: problem.into(),
        fix: FIX,
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// One program header, the fields vmrr checks.
struct Phdr {
    kind: u32,
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

/// Bytes of one ELF64 program header.
const PHDR_BYTES: u64 = 56;

/// One `PT_LOAD` segment: consistent sizes, inside the file, above the boot
/// area and inside guest memory.
fn check_segment(path: &Path, image: &[u8], p: &Phdr, mem_bytes: u64) -> Result<()> {
    if p.filesz > p.memsz {
        return Err(bad(
            path,
            format!(
                "segment at {:#x} has more bytes in the file (p_filesz {:#x}) than in memory (p_memsz {:#x}): \
                 its program header is inconsistent",
                p.paddr, p.filesz, p.memsz
            ),
        ));
    }
    if p.offset
        .checked_add(p.filesz)
        .is_none_or(|e| e > image.len() as u64)
    {
        return Err(bad(
            path,
            format!(
                "segment at {:#x} claims {} file bytes past the end of the file (truncated?)",
                p.paddr, p.filesz
            ),
        ));
    }
    if p.memsz == 0 {
        return Ok(());
    }
    let end = p.paddr.saturating_add(p.memsz);
    if p.paddr < KERNEL_MIN_ADDR {
        return Err(bad(
            path,
            format!(
                "segment at physical {:#x} overlaps the boot area below 1 MiB",
                p.paddr
            ),
        ));
    }
    if end > mem_bytes {
        return Err(VmError::BadImage {
            path: path.to_path_buf(),
            problem: format!(
                "segment [{:#x}, {:#x}) lies outside guest memory ({} MiB)",
                p.paddr,
                end,
                mem_bytes >> 20
            ),
            fix: "give the VM more memory (--mem) or link the kernel lower",
        });
    }
    Ok(())
}

/// No two loaded segments share an address: the later one would silently
/// overwrite the earlier.
fn check_overlaps(path: &Path, loads: &[&Phdr]) -> Result<()> {
    let mut spans: Vec<(u64, u64)> = loads
        .iter()
        .filter(|p| p.memsz > 0)
        .map(|p| (p.paddr, p.paddr.saturating_add(p.memsz)))
        .collect();
    spans.sort_unstable();
    // Sorted by start, two spans overlap only if some neighbours do.
    for pair in spans.windows(2) {
        let ((a, a_end), (b, b_end)) = (pair[0], pair[1]);
        if b < a_end {
            return Err(bad(
                path,
                format!("segments [{a:#x}, {a_end:#x}) and [{b:#x}, {b_end:#x}) overlap"),
            ));
        }
    }
    Ok(())
}

/// Every `PT_NOTE` can be walked note by note inside the file, as
/// linux-loader walks it (it fails on a header it cannot read, even in a
/// note segment that holds no PVH note).
fn check_notes(path: &Path, image: &[u8], phdrs: &[Phdr]) -> Result<()> {
    let len = image.len() as u64;
    let past_end = |at: u64| {
        bad(
            path,
            format!("an ELF note at file offset {at:#x} lies past the end of the file (truncated?)"),
        )
    };
    for p in phdrs.iter().filter(|p| p.kind == PT_NOTE) {
        let mut read = 0u64;
        while read < p.filesz {
            let at = p.offset.saturating_add(read);
            if at.saturating_add(12) > len {
                return Err(past_end(at));
            }
            let o = at as usize;
            let (namesz, descsz) = (u64::from(u32_at(image, o)), u64::from(u32_at(image, o + 4)));
            if u32_at(image, o + 8) == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 {
                if at + 16 > len {
                    return Err(past_end(at));
                }
                if &image[o + 12..o + 16] == b"Xen\0" {
                    if descsz < 4 {
                        return Err(bad(
                            path,
                            format!("PVH note has a {descsz}-byte entry; expected 4 or 8"),
                        ));
                    }
                    if at + 20 > len {
                        return Err(past_end(at));
                    }
                    break;
                }
            }
            // Both sizes are u32: the sum cannot overflow a u64.
            read += 12 + namesz.div_ceil(4) * 4 + descsz.div_ceil(4) * 4;
        }
    }
    Ok(())
}

/// The PVH entry lies in bytes loaded from the file: anywhere else the
/// guest would run zeros (and the engine would blame the host for them).
fn check_entry(path: &Path, entry: u64, loads: &[&Phdr]) -> Result<()> {
    let within = |p: &Phdr, len: u64| entry >= p.paddr && entry - p.paddr < len;
    if loads.iter().any(|p| within(p, p.filesz)) {
        return Ok(());
    }
    let problem = if let Some(p) = loads.iter().find(|p| within(p, p.memsz)) {
        format!(
            "PVH entry {entry:#x} lies in the zero-filled part (.bss) of the segment at {:#x}, \
             where no code is loaded",
            p.paddr
        )
    } else if let Some(p) = loads.iter().find(|p| p.paddr == entry && p.memsz == 0) {
        format!(
            "PVH entry {entry:#x} is in the segment at {:#x}, whose size in memory (p_memsz) is 0: \
             nothing is loaded there",
            p.paddr
        )
    } else {
        format!("PVH entry {entry:#x} lies outside every loaded segment: the guest would run no code of the image")
    };
    Err(bad(path, problem))
}

/// Checks the ELF headers against guest memory and finds the PVH entry.
/// Every failure names what is wrong, so the user need not run `readelf`.
pub fn inspect(path: &Path, image: &[u8], mem_bytes: u64) -> Result<u64> {
    if image.len() < 4 || &image[..4] != b"\x7fELF" {
        return Err(bad(path, "not an ELF file (no \\x7fELF magic)"));
    }
    match image.get(4) {
        Some(2) => {}
        Some(1) => {
            return Err(bad(
                path,
                "is a 32-bit ELF (ELFCLASS32); vmrr boots ELF64 kernels",
            ))
        }
        Some(c) => return Err(bad(path, format!("unknown ELF class {c}"))),
        None => return Err(bad(path, "ELF header truncated (no class byte)")),
    }
    if image.len() < 64 {
        return Err(bad(
            path,
            format!("ELF header truncated ({} of 64 bytes)", image.len()),
        ));
    }
    if image[5] != 1 {
        return Err(bad(path, "is big-endian; x86-64 kernels are little-endian"));
    }
    if u16_at(image, 18) != 62 {
        return Err(bad(
            path,
            format!("is for machine {} rather than x86-64 (62)", u16_at(image, 18)),
        ));
    }
    let phoff = u64_at(image, 32);
    let phentsize = u16_at(image, 54) as u64;
    let phnum = u16_at(image, 56) as u64;
    // linux-loader reads the table as packed 56-byte entries whatever the
    // header says: any other size would load something not checked here.
    if phentsize != PHDR_BYTES {
        return Err(bad(
            path,
            format!("program header size {phentsize} is not the ELF64 size ({PHDR_BYTES})"),
        ));
    }
    if phoff < 64 {
        return Err(bad(
            path,
            format!("its program header table (e_phoff {phoff:#x}) overlaps the 64-byte ELF header"),
        ));
    }
    let table_end = phoff.checked_add(phentsize.saturating_mul(phnum));
    if phnum == 0 || table_end.is_none_or(|end| end > image.len() as u64) {
        return Err(bad(
            path,
            "program header table is missing or lies past the end of the file (truncated?)",
        ));
    }
    let mut phdrs = Vec::new();
    for i in 0..phnum {
        let o = (phoff + i * phentsize) as usize;
        phdrs.push(Phdr {
            kind: u32_at(image, o),
            offset: u64_at(image, o + 8),
            paddr: u64_at(image, o + 24),
            filesz: u64_at(image, o + 32),
            memsz: u64_at(image, o + 40),
        });
    }
    let loads: Vec<&Phdr> = phdrs.iter().filter(|p| p.kind == PT_LOAD).collect();
    for p in &loads {
        check_segment(path, image, p, mem_bytes)?;
    }
    if !loads.iter().any(|p| p.memsz > 0) {
        return Err(bad(path, "has no loadable segment"));
    }
    check_overlaps(path, &loads)?;
    // Not the entry vmrr uses (that is the PVH note's), but linux-loader
    // refuses an image whose ELF entry lies below the kernel area.
    let e_entry = u64_at(image, 24);
    if e_entry < KERNEL_MIN_ADDR {
        return Err(bad(
            path,
            format!("its ELF entry point (e_entry {e_entry:#x}) lies below 1 MiB, in the boot area"),
        ));
    }
    check_notes(path, image, &phdrs)?;
    // Every PT_NOTE is searched: linux-loader keeps only the last one.
    for p in phdrs.iter().filter(|p| p.kind == PT_NOTE) {
        let start = p.offset as usize;
        let end = (p.offset.saturating_add(p.filesz) as usize).min(image.len());
        let mut o = start;
        while o + 12 <= end {
            let namesz = u32_at(image, o) as usize;
            let descsz = u32_at(image, o + 4) as usize;
            let kind = u32_at(image, o + 8);
            let name_at = o + 12;
            let desc_at = name_at + namesz.div_ceil(4) * 4;
            let next = desc_at + descsz.div_ceil(4) * 4;
            if next > end {
                break;
            }
            if kind == XEN_ELFNOTE_PHYS32_ENTRY && namesz >= 3 && &image[name_at..name_at + 3] == b"Xen" {
                let entry = match descsz {
                    4 => u32_at(image, desc_at) as u64,
                    8 => u64_at(image, desc_at),
                    _ => {
                        return Err(bad(
                            path,
                            format!("PVH note has a {descsz}-byte entry; expected 4 or 8"),
                        ))
                    }
                };
                if entry >= mem_bytes || entry >= 1 << 32 {
                    return Err(bad(
                        path,
                        format!("PVH entry {entry:#x} is outside guest memory or not 32-bit"),
                    ));
                }
                check_entry(path, entry, &loads)?;
                return Ok(entry);
            }
            o = next;
        }
    }
    Err(bad(path, "has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)"))
}

/// Reads a guest image: a regular file of at most
/// [`MAX_IMAGE_BYTES`](crate::input::MAX_IMAGE_BYTES).
pub fn read_image(path: &Path) -> Result<Vec<u8>> {
    Ok(crate::input::read_limited(
        path,
        "a guest image",
        crate::input::MAX_IMAGE_BYTES,
    )?)
}

/// Loads the kernel, writes the PVH start info and command line.
pub fn load_kernel(ram: &GuestRam, path: &Path, mem_bytes: u64, cmdline: &str) -> Result<BootInfo> {
    let image = read_image(path)?;
    load_image(ram, path, &image, mem_bytes, cmdline)
}

/// Checks and loads the bytes of a kernel image (`path` names it in
/// errors), writes the PVH start info and command line. Bytes from outside:
/// nothing here may panic.
pub fn load_image(
    ram: &GuestRam,
    path: &Path,
    image: &[u8],
    mem_bytes: u64,
    cmdline: &str,
) -> Result<BootInfo> {
    let entry = inspect(path, image, mem_bytes)?;
    // The loader reads the bytes already checked, not the file again: what
    // is loaded is what was inspected.
    let mut cursor = Cursor::new(image);
    let loaded =
        Elf::load(ram, None, &mut cursor, Some(GuestAddress(KERNEL_MIN_ADDR))).map_err(|source| {
            VmError::Loader {
                path: path.to_path_buf(),
                source,
                fix: FIX,
            }
        })?;

    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.push(0);
    ram.write_slice(&bytes, GuestAddress(CMDLINE_ADDR))
        .map_err(guest_memory("writing the command line"))?;

    let memmap = [
        hvm_memmap_table_entry {
            addr: 0,
            size: LOW_RAM_END,
            type_: E820_RAM,
            reserved: 0,
        },
        hvm_memmap_table_entry {
            addr: LOW_RAM_END,
            size: KERNEL_MIN_ADDR - LOW_RAM_END,
            type_: E820_RESERVED,
            reserved: 0,
        },
        hvm_memmap_table_entry {
            addr: KERNEL_MIN_ADDR,
            size: mem_bytes - KERNEL_MIN_ADDR,
            type_: E820_RAM,
            reserved: 0,
        },
    ];
    let start_info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: CMDLINE_ADDR,
        memmap_paddr: MEMMAP_ADDR,
        memmap_entries: memmap.len() as u32,
        ..Default::default()
    };
    let mut params = BootParams::new(&start_info, GuestAddress(START_INFO_ADDR));
    params.set_sections(&memmap, GuestAddress(MEMMAP_ADDR));
    PvhBootConfigurator::write_bootparams(&params, ram).map_err(|source| VmError::BootParams { source })?;
    Ok(BootInfo {
        entry,
        kernel_end: loaded.kernel_end,
    })
}

fn flat_segment(selector: u16, type_: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// The PVH entry state: 32-bit flat protected mode, paging off, EBX = start_info.
pub fn entry_state(entry: u64, sregs: &mut kvm_sregs) -> kvm_regs {
    sregs.cs = flat_segment(0x10, 0xb); // execute/read, accessed
    let data = flat_segment(0x18, 0x3); // read/write, accessed
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = kvm_segment {
        type_: 0xb,
        present: 1,
        limit: 0x67,
        s: 0,
        db: 0,
        g: 0,
        ..data
    };
    sregs.cr0 = 0x11; // PE | ET
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
    kvm_regs {
        rip: entry,
        rbx: START_INFO_ADDR,
        rflags: 0x2,
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "boot_tests.rs"]
mod tests;
