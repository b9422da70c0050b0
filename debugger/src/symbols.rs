//! Symbols of a guest image: its ELF64 `.symtab`, read by hand (no ELF
//! crate needed for this much), for `function+offset` in disassembly and
//! for breakpoints given by name — in the TUI and in gdb monitor commands.
//!
//! A trace keeps copies of its images under `images/<vm>.elf`;
//! [`SymbolTable::for_vm`] reads the one of a VM.

use std::path::Path;

use crate::trace::Trace;
use crate::trace::TraceError;

/// What a symbol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolKind {
    /// Code (`STT_FUNC`).
    Function,
    /// Data (`STT_OBJECT`).
    Object,
    /// Anything else with an address (`STT_NOTYPE` labels of assembly code).
    Other,
}

/// One symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// Its name.
    pub name: String,
    /// Its address (guest-virtual, as linked).
    pub addr: u64,
    /// Its size in bytes (0 when the image does not say, e.g. asm labels).
    pub size: u64,
    /// What it names.
    pub kind: SymbolKind,
}

/// The symbols of one image, sorted by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolTable {
    symbols: Vec<Symbol>,
}

/// Beyond this distance a sizeless symbol is not taken as the one
/// containing an address: `label+0x12345` would mislead more than help.
const SIZELESS_REACH: u64 = 0x1000;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The NUL-terminated string at `at` in a string table.
fn str_at(table: &[u8], at: usize) -> Option<&str> {
    let rest = table.get(at..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// A section header's (type, offset, size, link, entsize). Its contents are
/// not checked here: `.bss` has a size but no bytes in the file.
fn section(b: &[u8], shoff: usize, entsize: usize, i: usize) -> Option<(u32, usize, usize, u32, usize)> {
    let h = shoff.checked_add(i.checked_mul(entsize)?)?;
    let kind = u32_at(b, h + 4)?;
    let offset = usize::try_from(u64_at(b, h + 0x18)?).ok()?;
    let size = usize::try_from(u64_at(b, h + 0x20)?).ok()?;
    let link = u32_at(b, h + 0x28)?;
    let ent = usize::try_from(u64_at(b, h + 0x38)?).ok()?;
    Some((kind, offset, size, link, ent))
}

/// The bytes of a section, if they are inside the file.
fn contents(b: &[u8], offset: usize, size: usize) -> Option<&[u8]> {
    b.get(offset..offset.checked_add(size)?)
}

impl SymbolTable {
    /// Parses the `.symtab` of an ELF64 little-endian image. An image
    /// without one (stripped) gives an empty table; a file that is not
    /// ELF64, or whose tables point outside it, gives an error.
    pub fn from_elf(bytes: &[u8]) -> Result<SymbolTable, String> {
        if bytes.get(..4) != Some(b"\x7fELF") {
            return Err("not an ELF file".into());
        }
        if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
            return Err("not a little-endian ELF64 file".into());
        }
        let bad = || "damaged ELF section table".to_string();
        let shoff = usize::try_from(u64_at(bytes, 0x28).ok_or_else(bad)?).map_err(|_| bad())?;
        let shentsize = u16_at(bytes, 0x3a).ok_or_else(bad)? as usize;
        let shnum = u16_at(bytes, 0x3c).ok_or_else(bad)? as usize;
        if shoff == 0 || shnum == 0 {
            return Ok(SymbolTable::default());
        }
        if shentsize < 0x40 {
            return Err(bad());
        }
        let mut symbols = Vec::new();
        for i in 0..shnum {
            let (kind, offset, size, link, ent) = section(bytes, shoff, shentsize, i).ok_or_else(bad)?;
            const SHT_SYMTAB: u32 = 2;
            if kind != SHT_SYMTAB {
                continue;
            }
            let (_, str_off, str_size, _, _) =
                section(bytes, shoff, shentsize, link as usize).ok_or_else(bad)?;
            let strtab = contents(bytes, str_off, str_size).ok_or_else(bad)?;
            contents(bytes, offset, size).ok_or_else(bad)?;
            let ent = if ent == 0 { 24 } else { ent };
            if ent < 24 {
                return Err(bad());
            }
            for s in 0..size / ent {
                let at = offset + s * ent;
                let (Some(name_off), Some(&info), Some(shndx), Some(addr), Some(sym_size)) = (
                    u32_at(bytes, at),
                    bytes.get(at + 4),
                    u16_at(bytes, at + 6),
                    u64_at(bytes, at + 8),
                    u64_at(bytes, at + 16),
                ) else {
                    return Err(bad());
                };
                const STT_NOTYPE: u8 = 0;
                const STT_OBJECT: u8 = 1;
                const STT_FUNC: u8 = 2;
                let kind = match info & 0xf {
                    STT_FUNC => SymbolKind::Function,
                    STT_OBJECT => SymbolKind::Object,
                    STT_NOTYPE => SymbolKind::Other,
                    // Sections, files, TLS: no place in a code address space.
                    _ => continue,
                };
                // Undefined and absolute symbols are not locations in the image.
                if shndx == 0 || shndx == 0xfff1 {
                    continue;
                }
                let Some(name) = str_at(strtab, name_off as usize) else {
                    continue;
                };
                // Local labels (.L...) and empty names only add noise.
                if name.is_empty() || name.starts_with(".L") {
                    continue;
                }
                symbols.push(Symbol {
                    name: name.to_string(),
                    addr,
                    size: sym_size,
                    kind,
                });
            }
        }
        // Functions first at equal addresses, so an address resolves to code.
        symbols.sort_by(|a, b| {
            (a.addr, a.kind != SymbolKind::Function, &a.name).cmp(&(
                b.addr,
                b.kind != SymbolKind::Function,
                &b.name,
            ))
        });
        symbols.dedup_by(|a, b| a.addr == b.addr && a.name == b.name);
        Ok(SymbolTable { symbols })
    }

    /// Reads the symbols of the ELF image at `path`.
    pub fn load(path: &Path) -> Result<SymbolTable, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        SymbolTable::from_elf(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The symbols of VM `vm`'s image copy inside `trace`.
    pub fn for_vm(trace: &Trace, vm: usize) -> Result<SymbolTable, TraceError> {
        let spec = trace
            .config()
            .vms
            .get(vm)
            .ok_or_else(|| TraceError::Invalid(format!("no VM number {vm} in this trace")))?;
        let path = if spec.image.is_absolute() {
            spec.image.clone()
        } else {
            trace.dir().join(&spec.image)
        };
        SymbolTable::load(&path).map_err(TraceError::Invalid)
    }

    /// Every symbol, by address.
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// Whether the table is empty (e.g. a stripped image).
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The symbol called `name` (a function if several share the name).
    pub fn by_name(&self, name: &str) -> Option<&Symbol> {
        let mut found = self.symbols.iter().filter(|s| s.name == name);
        let first = found.next()?;
        Some(
            std::iter::once(first)
                .chain(found)
                .find(|s| s.kind == SymbolKind::Function)
                .unwrap_or(first),
        )
    }

    /// The symbol containing `addr` and the offset into it: the last symbol
    /// at or before `addr` whose size covers it (or, for a sizeless label,
    /// that is less than 4 KiB before it).
    pub fn containing(&self, addr: u64) -> Option<(&Symbol, u64)> {
        let end = self.symbols.partition_point(|s| s.addr <= addr);
        self.symbols[..end].iter().rev().take(64).find_map(|s| {
            let off = addr - s.addr;
            let inside = if s.size > 0 {
                off < s.size
            } else {
                off < SIZELESS_REACH
            };
            inside.then_some((s, off))
        })
    }

    /// `name+0x1f` (or `name` at offset 0) for an address inside a symbol, or `None`.
    pub fn describe(&self, addr: u64) -> Option<String> {
        self.containing(addr).map(|(s, off)| {
            if off == 0 {
                s.name.clone()
            } else {
                format!("{}+{:#x}", s.name, off)
            }
        })
    }

    /// Parses a location typed by a user: `kv_apply`, `kv_apply+0x10`,
    /// `kv_apply+16`, `0x100490`, or a hex number like `100490`.
    pub fn parse_location(&self, text: &str) -> Result<u64, String> {
        let text = text.trim().trim_start_matches('*');
        if text.is_empty() {
            return Err("give a symbol or an address".into());
        }
        let (base, offset) = match text.split_once('+') {
            Some((b, o)) => (b.trim(), Some(o.trim())),
            None => (text, None),
        };
        let offset = match offset {
            None => 0,
            Some(o) => parse_number(o).ok_or_else(|| format!("'{o}' is not an offset"))?,
        };
        let addr = if let Some(s) = self.by_name(base) {
            s.addr
        } else if let Some(hex) = base.strip_prefix("0x").or_else(|| base.strip_prefix("0X")) {
            u64::from_str_radix(hex, 16).map_err(|_| format!("'{base}' is not an address"))?
        } else if let Ok(v) = u64::from_str_radix(base, 16) {
            v
        } else {
            return Err(format!(
                "no symbol '{base}' in this image (and it is not a hex address)"
            ));
        };
        addr.checked_add(offset)
            .ok_or_else(|| format!("'{text}' is out of range"))
    }
}

/// `0x1f` (hex) or `31` (decimal).
fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with a .symtab of three symbols, built by hand.
    fn tiny_elf() -> Vec<u8> {
        let mut strtab = b"\0func\0data\0label\0".to_vec();
        strtab.resize(24, 0);
        let sym = |name: u32, info: u8, shndx: u16, addr: u64, size: u64| {
            let mut s = Vec::new();
            s.extend_from_slice(&name.to_le_bytes());
            s.push(info);
            s.push(0);
            s.extend_from_slice(&shndx.to_le_bytes());
            s.extend_from_slice(&addr.to_le_bytes());
            s.extend_from_slice(&size.to_le_bytes());
            s
        };
        let mut symtab = vec![0u8; 24]; // the null symbol
        symtab.extend(sym(1, 0x12, 1, 0x1000, 0x20)); // global func
        symtab.extend(sym(6, 0x11, 1, 0x2000, 8)); // global object
        symtab.extend(sym(11, 0x00, 1, 0x1100, 0)); // label
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        let symtab_off = elf.len();
        elf.extend(&symtab);
        let strtab_off = elf.len();
        elf.extend(&strtab);
        let shoff = elf.len();
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        let header = |kind: u32, off: usize, size: usize, link: u32, ent: u64| {
            let mut h = vec![0u8; 64];
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            h[0x28..0x2c].copy_from_slice(&link.to_le_bytes());
            h[0x38..0x40].copy_from_slice(&ent.to_le_bytes());
            h
        };
        elf.extend(header(0, 0, 0, 0, 0));
        elf.extend(header(2, symtab_off, symtab.len(), 2, 24));
        elf.extend(header(3, strtab_off, strtab.len(), 0, 0));
        elf
    }

    #[test]
    fn reads_names_and_resolves_addresses() {
        let t = SymbolTable::from_elf(&tiny_elf()).expect("parse");
        assert_eq!(t.symbols().len(), 3);
        assert_eq!(t.by_name("func").map(|s| s.addr), Some(0x1000));
        assert_eq!(t.describe(0x1000).as_deref(), Some("func"));
        assert_eq!(t.describe(0x101f).as_deref(), Some("func+0x1f"));
        // Past func's size, the sizeless label takes over from 0x1100 on.
        assert_eq!(t.describe(0x1050), None);
        assert_eq!(t.describe(0x1104).as_deref(), Some("label+0x4"));
        assert_eq!(t.describe(0x2004).as_deref(), Some("data+0x4"));
        assert_eq!(t.parse_location("func+0x10"), Ok(0x1010));
        assert_eq!(t.parse_location("func+16"), Ok(0x1010));
        assert_eq!(t.parse_location("0x2000"), Ok(0x2000));
        assert_eq!(t.parse_location("2000"), Ok(0x2000));
        assert!(t.parse_location("nosuch").is_err());
    }

    #[test]
    fn reads_the_kit_images() {
        // The guest kit's images are built by vmrr-guests' build script.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests/build/kvstore.elf");
        if !path.exists() {
            return;
        }
        let t = SymbolTable::load(&path).expect("kvstore.elf");
        let apply = t.by_name("kv_apply").expect("kv_apply");
        assert_eq!(apply.kind, SymbolKind::Function);
        assert_eq!(t.describe(apply.addr + 4), Some("kv_apply+0x4".to_string()));
        assert_eq!(t.by_name("store").map(|s| s.kind), Some(SymbolKind::Object));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(SymbolTable::from_elf(b"").is_err());
        assert!(SymbolTable::from_elf(b"\x7fELF\x01\x01").is_err());
        let mut elf = tiny_elf();
        // Point the section table past the end of the file.
        elf[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(SymbolTable::from_elf(&elf).is_err());
        let mut elf = tiny_elf();
        let len = elf.len();
        elf.truncate(len - 10);
        assert!(SymbolTable::from_elf(&elf).is_err());
    }
}
