//! Unit tests of the ELF checks in `boot.rs`.

use super::*;

fn elf_with(class: u8, machine: u16) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = class;
    b[5] = 1;
    b[18..20].copy_from_slice(&machine.to_le_bytes());
    b
}

#[test]
fn rejects_non_elf_and_wrong_class() {
    let p = Path::new("x.elf");
    let e = inspect(p, b"hello world", 64 << 20).unwrap_err().to_string();
    assert!(e.contains("not an ELF file"), "{e}");
    let e = inspect(p, &elf_with(1, 3), 64 << 20).unwrap_err().to_string();
    assert!(e.contains("32-bit ELF"), "{e}");
    let e = inspect(p, &elf_with(2, 40), 64 << 20).unwrap_err().to_string();
    assert!(e.contains("machine 40"), "{e}");
    let e = inspect(p, &elf_with(2, 62), 64 << 20).unwrap_err().to_string();
    assert!(e.contains("program header"), "{e}");
    let e = inspect(p, &elf_with(1, 3)[..52], 64 << 20)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("32-bit ELF"),
        "a short ELF32 header is still named ELF32: {e}"
    );
    let e = inspect(p, &elf_with(2, 62)[..40], 64 << 20)
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated (40 of 64"), "{e}");
}

/// One program header for [`image`]: (type, paddr, file bytes, memsz).
struct Ph {
    kind: u32,
    paddr: u64,
    data: Vec<u8>,
    memsz: u64,
}

fn load(paddr: u64, len: usize, memsz: u64) -> Ph {
    Ph {
        kind: PT_LOAD,
        paddr,
        data: vec![0x90; len],
        memsz,
    }
}

fn pvh_note(entry: u32) -> Ph {
    let mut d = Vec::new();
    for v in [4u32, 4, XEN_ELFNOTE_PHYS32_ENTRY] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    d.extend_from_slice(b"Xen\0");
    d.extend_from_slice(&entry.to_le_bytes());
    Ph {
        kind: PT_NOTE,
        paddr: 0,
        memsz: d.len() as u64,
        data: d,
    }
}

/// An ELF64 x86-64 image with these program headers, contents after them.
fn image(phs: &[Ph]) -> Vec<u8> {
    let mut b = elf_with(2, 62);
    b[24..32].copy_from_slice(&0x10_0000u64.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
    let mut offset = 64 + 56 * phs.len();
    let mut headers = Vec::new();
    for p in phs {
        let mut h = vec![0u8; 56];
        h[0..4].copy_from_slice(&p.kind.to_le_bytes());
        h[8..16].copy_from_slice(&(offset as u64).to_le_bytes());
        h[24..32].copy_from_slice(&p.paddr.to_le_bytes());
        h[32..40].copy_from_slice(&(p.data.len() as u64).to_le_bytes());
        h[40..48].copy_from_slice(&p.memsz.to_le_bytes());
        headers.extend(h);
        offset += p.data.len();
    }
    b.extend(headers);
    for p in phs {
        b.extend(&p.data);
    }
    b
}

fn refused(phs: &[Ph]) -> String {
    inspect(Path::new("k.elf"), &image(phs), 64 << 20)
        .expect_err("refused")
        .to_string()
}

#[test]
fn a_well_formed_image_is_accepted() {
    let phs = [
        load(0x10_0000, 64, 64),
        load(0x10_1000, 8, 0x4000),
        pvh_note(0x10_0010),
    ];
    assert_eq!(
        inspect(Path::new("k.elf"), &image(&phs), 64 << 20).ok(),
        Some(0x10_0010)
    );
}

#[test]
fn the_entry_must_lie_in_loaded_bytes() {
    let e = refused(&[load(0x10_0000, 64, 64), pvh_note(0)]);
    assert!(
        e.contains("PVH entry 0x0 is outside") || e.contains("outside every loaded segment"),
        "{e}"
    );
    let e = refused(&[load(0x10_0000, 64, 0x1000), pvh_note(0x10_0800)]);
    assert!(e.contains("zero-filled part (.bss)"), "{e}");
    let e = refused(&[load(0x10_0000, 64, 64), pvh_note(0x20_0000)]);
    assert!(e.contains("outside every loaded segment"), "{e}");
    // One past the last loaded byte is outside too.
    let e = refused(&[load(0x10_0000, 64, 64), pvh_note(0x10_0040)]);
    assert!(e.contains("outside every loaded segment"), "{e}");
}

#[test]
fn overlapping_segments_are_refused() {
    let e = refused(&[
        load(0x10_0000, 64, 0x2000),
        load(0x10_1000, 64, 64),
        pvh_note(0x10_0000),
    ]);
    assert!(
        e.contains("[0x100000, 0x102000) and [0x101000, 0x101040) overlap"),
        "{e}"
    );
}

#[test]
fn a_code_segment_with_memsz_0_is_refused() {
    // The file bytes are there, but nothing is loaded for them.
    let e = refused(&[load(0x10_0000, 64, 0), load(0x20_0000, 8, 8), pvh_note(0x10_0000)]);
    assert!(
        e.contains("more bytes in the file (p_filesz 0x40) than in memory (p_memsz 0x0)"),
        "{e}"
    );
    assert!(!e.contains("truncated"), "{e}");
    // No file bytes either: the entry names the empty segment.
    let e = refused(&[load(0x10_0000, 0, 0), load(0x20_0000, 8, 8), pvh_note(0x10_0000)]);
    assert!(e.contains("p_memsz) is 0"), "{e}");
}

#[test]
fn filesz_beyond_memsz_is_not_called_truncation() {
    let e = refused(&[load(0x10_0000, 64, 32), pvh_note(0x10_0000)]);
    assert!(e.contains("inconsistent") && !e.contains("truncated"), "{e}");
}

#[test]
fn an_elf_entry_below_1_mib_is_named() {
    let mut b = image(&[load(0x10_0000, 64, 64), pvh_note(0x10_0000)]);
    b[24..32].copy_from_slice(&0x1000u64.to_le_bytes());
    let e = inspect(Path::new("k.elf"), &b, 64 << 20)
        .expect_err("refused")
        .to_string();
    assert!(e.contains("e_entry 0x1000"), "{e}");
}
