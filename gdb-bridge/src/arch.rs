//! The x86-64 register set vmrr shows gdb, and its target description.
//!
//! gdb's built-in amd64 layout expects `fs_base` and `gs_base` and has no
//! control registers, so vmrr describes its own layout: one table
//! ([`REGISTERS`]) gives both the order of the `g` packet and the XML gdb
//! reads, so the two cannot drift apart. The general registers come from
//! the backend's table, which is in gdb's order already.
//!
//! The guests run with general registers only (see the README's host
//! limits), and the engine does not capture x87/SSE state per step: those
//! registers are sent as "unavailable", which gdb prints as
//! `<unavailable>` instead of inventing zeros.

use std::fmt::Write as _;
use std::sync::OnceLock;

use vmrr_backend::regs::{GeneralRegs, Gpr, SystemRegs};

/// Where a register's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A general register or RIP, from the backend's table (gdb's order).
    Gpr(Gpr),
    Eflags,
    /// Segment selector: cs ss ds es fs gs.
    Selector(usize),
    FsBase,
    GsBase,
    Cr0,
    Cr2,
    Cr3,
    Cr4,
    Cr8,
    Efer,
    /// Not captured by the engine (x87, SSE).
    Unavailable,
}

/// One register as gdb sees it.
#[derive(Debug, Clone, Copy)]
struct RegDef {
    name: &'static str,
    bits: usize,
    /// A gdb built-in type or one defined in the XML below.
    ty: &'static str,
    /// The gdb register group, when gdb would not guess it.
    group: Option<&'static str>,
    /// The target-description feature holding it.
    feature: &'static str,
    source: Source,
}

const CORE: &str = "org.gnu.gdb.i386.core";
const SSE: &str = "org.gnu.gdb.i386.sse";
const SEGMENTS: &str = "org.gnu.gdb.i386.segments";
/// Not a feature gdb knows by name: its registers are shown as they are.
const SYSTEM: &str = "org.vmrr.x86.system";

const fn reg(
    name: &'static str,
    bits: usize,
    ty: &'static str,
    feature: &'static str,
    source: Source,
) -> RegDef {
    RegDef {
        name,
        bits,
        ty,
        group: None,
        feature,
        source,
    }
}

const fn grouped(
    name: &'static str,
    bits: usize,
    ty: &'static str,
    group: &'static str,
    feature: &'static str,
) -> RegDef {
    RegDef {
        name,
        bits,
        ty,
        group: Some(group),
        feature,
        source: Source::Unavailable,
    }
}

/// The registers in `g`-packet order. gdb's amd64 code looks the core,
/// SSE and segment registers up by these names.
const REGISTERS: &[RegDef] = &[
    reg("rax", 64, "int64", CORE, Source::Gpr(Gpr::Rax)),
    reg("rbx", 64, "int64", CORE, Source::Gpr(Gpr::Rbx)),
    reg("rcx", 64, "int64", CORE, Source::Gpr(Gpr::Rcx)),
    reg("rdx", 64, "int64", CORE, Source::Gpr(Gpr::Rdx)),
    reg("rsi", 64, "int64", CORE, Source::Gpr(Gpr::Rsi)),
    reg("rdi", 64, "int64", CORE, Source::Gpr(Gpr::Rdi)),
    reg("rbp", 64, "data_ptr", CORE, Source::Gpr(Gpr::Rbp)),
    reg("rsp", 64, "data_ptr", CORE, Source::Gpr(Gpr::Rsp)),
    reg("r8", 64, "int64", CORE, Source::Gpr(Gpr::R8)),
    reg("r9", 64, "int64", CORE, Source::Gpr(Gpr::R9)),
    reg("r10", 64, "int64", CORE, Source::Gpr(Gpr::R10)),
    reg("r11", 64, "int64", CORE, Source::Gpr(Gpr::R11)),
    reg("r12", 64, "int64", CORE, Source::Gpr(Gpr::R12)),
    reg("r13", 64, "int64", CORE, Source::Gpr(Gpr::R13)),
    reg("r14", 64, "int64", CORE, Source::Gpr(Gpr::R14)),
    reg("r15", 64, "int64", CORE, Source::Gpr(Gpr::R15)),
    reg("rip", 64, "code_ptr", CORE, Source::Gpr(Gpr::Rip)),
    reg("eflags", 32, "vmrr_eflags", CORE, Source::Eflags),
    reg("cs", 32, "int32", CORE, Source::Selector(0)),
    reg("ss", 32, "int32", CORE, Source::Selector(1)),
    reg("ds", 32, "int32", CORE, Source::Selector(2)),
    reg("es", 32, "int32", CORE, Source::Selector(3)),
    reg("fs", 32, "int32", CORE, Source::Selector(4)),
    reg("gs", 32, "int32", CORE, Source::Selector(5)),
    grouped("st0", 80, "i387_ext", "float", CORE),
    grouped("st1", 80, "i387_ext", "float", CORE),
    grouped("st2", 80, "i387_ext", "float", CORE),
    grouped("st3", 80, "i387_ext", "float", CORE),
    grouped("st4", 80, "i387_ext", "float", CORE),
    grouped("st5", 80, "i387_ext", "float", CORE),
    grouped("st6", 80, "i387_ext", "float", CORE),
    grouped("st7", 80, "i387_ext", "float", CORE),
    grouped("fctrl", 32, "int", "float", CORE),
    grouped("fstat", 32, "int", "float", CORE),
    grouped("ftag", 32, "int", "float", CORE),
    grouped("fiseg", 32, "int", "float", CORE),
    grouped("fioff", 32, "int", "float", CORE),
    grouped("foseg", 32, "int", "float", CORE),
    grouped("fooff", 32, "int", "float", CORE),
    grouped("fop", 32, "int", "float", CORE),
    grouped("xmm0", 128, "vec128", "vector", SSE),
    grouped("xmm1", 128, "vec128", "vector", SSE),
    grouped("xmm2", 128, "vec128", "vector", SSE),
    grouped("xmm3", 128, "vec128", "vector", SSE),
    grouped("xmm4", 128, "vec128", "vector", SSE),
    grouped("xmm5", 128, "vec128", "vector", SSE),
    grouped("xmm6", 128, "vec128", "vector", SSE),
    grouped("xmm7", 128, "vec128", "vector", SSE),
    grouped("xmm8", 128, "vec128", "vector", SSE),
    grouped("xmm9", 128, "vec128", "vector", SSE),
    grouped("xmm10", 128, "vec128", "vector", SSE),
    grouped("xmm11", 128, "vec128", "vector", SSE),
    grouped("xmm12", 128, "vec128", "vector", SSE),
    grouped("xmm13", 128, "vec128", "vector", SSE),
    grouped("xmm14", 128, "vec128", "vector", SSE),
    grouped("xmm15", 128, "vec128", "vector", SSE),
    grouped("mxcsr", 32, "int", "vector", SSE),
    reg("fs_base", 64, "int64", SEGMENTS, Source::FsBase),
    reg("gs_base", 64, "int64", SEGMENTS, Source::GsBase),
    reg("cr0", 64, "vmrr_cr0", SYSTEM, Source::Cr0),
    reg("cr2", 64, "int64", SYSTEM, Source::Cr2),
    reg("cr3", 64, "int64", SYSTEM, Source::Cr3),
    reg("cr4", 64, "vmrr_cr4", SYSTEM, Source::Cr4),
    reg("cr8", 64, "int64", SYSTEM, Source::Cr8),
    reg("efer", 64, "vmrr_efer", SYSTEM, Source::Efer),
];

/// A flags type of the XML: its name, size in bytes, and named bits.
type FlagType = (&'static str, usize, &'static [(&'static str, u32)]);

/// Flag types so that gdb prints `[ ZF IF ]` rather than a bare number.
const FLAG_TYPES: &[FlagType] = &[
    (
        "vmrr_eflags",
        4,
        &[
            ("CF", 0),
            ("PF", 2),
            ("AF", 4),
            ("ZF", 6),
            ("SF", 7),
            ("TF", 8),
            ("IF", 9),
            ("DF", 10),
            ("OF", 11),
            ("NT", 14),
            ("RF", 16),
            ("VM", 17),
            ("AC", 18),
            ("VIF", 19),
            ("VIP", 20),
            ("ID", 21),
        ],
    ),
    (
        "vmrr_cr0",
        8,
        &[
            ("PE", 0),
            ("MP", 1),
            ("EM", 2),
            ("TS", 3),
            ("ET", 4),
            ("NE", 5),
            ("WP", 16),
            ("AM", 18),
            ("NW", 29),
            ("CD", 30),
            ("PG", 31),
        ],
    ),
    (
        "vmrr_cr4",
        8,
        &[
            ("VME", 0),
            ("PVI", 1),
            ("TSD", 2),
            ("DE", 3),
            ("PSE", 4),
            ("PAE", 5),
            ("MCE", 6),
            ("PGE", 7),
            ("PCE", 8),
            ("OSFXSR", 9),
            ("OSXMMEXCPT", 10),
            ("UMIP", 11),
            ("LA57", 12),
            ("FSGSBASE", 16),
            ("PCIDE", 17),
            ("OSXSAVE", 18),
            ("SMEP", 20),
            ("SMAP", 21),
            ("PKE", 22),
        ],
    ),
    (
        "vmrr_efer",
        8,
        &[("SCE", 0), ("LME", 8), ("LMA", 10), ("NXE", 11)],
    ),
];

/// Builds the target description from [`REGISTERS`] and [`FLAG_TYPES`].
fn build_xml() -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n<target version=\"1.0\">\n\
         <architecture>i386:x86-64</architecture>\n",
    );
    let mut features: Vec<&str> = Vec::new();
    for r in REGISTERS {
        if !features.contains(&r.feature) {
            features.push(r.feature);
        }
    }
    for feature in features {
        let _ = writeln!(xml, "<feature name=\"{feature}\">");
        // Each type goes into the first feature whose registers use it.
        for (name, size, bits) in FLAG_TYPES {
            let used_here = REGISTERS.iter().any(|r| r.feature == feature && r.ty == *name);
            if used_here {
                let _ = writeln!(xml, "  <flags id=\"{name}\" size=\"{size}\">");
                for (field, bit) in *bits {
                    let _ = writeln!(xml, "    <field name=\"{field}\" start=\"{bit}\" end=\"{bit}\"/>");
                }
                xml.push_str("  </flags>\n");
            }
        }
        if feature == SSE {
            // The union gdb shows for an XMM register.
            for (id, ty, count) in [
                ("vmrr_v4f", "ieee_single", 4),
                ("vmrr_v2d", "ieee_double", 2),
                ("vmrr_v16i8", "int8", 16),
                ("vmrr_v8i16", "int16", 8),
                ("vmrr_v4i32", "int32", 4),
                ("vmrr_v2i64", "int64", 2),
            ] {
                let _ = writeln!(xml, "  <vector id=\"{id}\" type=\"{ty}\" count=\"{count}\"/>");
            }
            xml.push_str("  <union id=\"vec128\">\n");
            for (field, ty) in [
                ("v4_float", "vmrr_v4f"),
                ("v2_double", "vmrr_v2d"),
                ("v16_int8", "vmrr_v16i8"),
                ("v8_int16", "vmrr_v8i16"),
                ("v4_int32", "vmrr_v4i32"),
                ("v2_int64", "vmrr_v2i64"),
                ("uint128", "uint128"),
            ] {
                let _ = writeln!(xml, "    <field name=\"{field}\" type=\"{ty}\"/>");
            }
            xml.push_str("  </union>\n");
        }
        for (n, r) in REGISTERS.iter().enumerate().filter(|(_, r)| r.feature == feature) {
            let group = r.group.map(|g| format!(" group=\"{g}\"")).unwrap_or_default();
            let _ = writeln!(
                xml,
                "  <reg name=\"{}\" bitsize=\"{}\" type=\"{}\" regnum=\"{n}\"{group}/>",
                r.name, r.bits, r.ty
            );
        }
        xml.push_str("</feature>\n");
    }
    xml.push_str("</target>\n");
    xml
}

/// The target description XML gdb reads with `qXfer:features:read`.
pub fn target_xml() -> &'static str {
    static XML: OnceLock<String> = OnceLock::new();
    XML.get_or_init(build_xml)
}

/// Register values in [`REGISTERS`] order; `None` is unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    values: Vec<Option<u128>>,
}

impl Default for Regs {
    fn default() -> Self {
        Regs {
            values: vec![None; REGISTERS.len()],
        }
    }
}

impl Regs {
    /// The registers of a vCPU: its general and its system registers.
    pub fn of(general: &GeneralRegs, system: &SystemRegs) -> Regs {
        let values = REGISTERS
            .iter()
            .map(|r| {
                let v: u64 = match r.source {
                    Source::Gpr(g) => general[g],
                    Source::Eflags => general[Gpr::Rflags] & 0xffff_ffff,
                    Source::Selector(i) => u64::from(system.selectors[i]),
                    Source::FsBase => system.fs_base,
                    Source::GsBase => system.gs_base,
                    Source::Cr0 => system.cr0,
                    Source::Cr2 => system.cr2,
                    Source::Cr3 => system.cr3,
                    Source::Cr4 => system.cr4,
                    Source::Cr8 => system.cr8,
                    Source::Efer => system.efer,
                    Source::Unavailable => return None,
                };
                Some(u128::from(v))
            })
            .collect();
        Regs { values }
    }

    /// The value of the register called `name`, if available.
    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<u128> {
        let i = REGISTERS.iter().position(|r| r.name == name)?;
        self.values.get(i).copied().flatten()
    }

    /// Register number `n` as the `p` packet gives it: little-endian hex,
    /// `xx` per byte when unavailable; `None` for a number not in the
    /// description.
    pub fn hex_of(&self, n: usize) -> Option<String> {
        let r = REGISTERS.get(n)?;
        let bytes = r.bits / 8;
        Some(match self.values.get(n).copied().flatten() {
            Some(v) => v.to_le_bytes()[..bytes]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            None => "xx".repeat(bytes),
        })
    }

    /// Every register in order, as the `g` packet gives them.
    pub fn hex_all(&self) -> String {
        (0..REGISTERS.len()).filter_map(|n| self.hex_of(n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_packet_size_matches_the_description() {
        let bits: usize = REGISTERS.iter().map(|r| r.bits).sum();
        assert_eq!(Regs::default().hex_all().len() * 4, bits);
        let xml = target_xml();
        assert_eq!(xml.matches("<reg ").count(), REGISTERS.len());
        assert!(xml.contains("name=\"fs_base\""));
        assert!(xml.contains("name=\"cr3\""));
        assert_eq!(Regs::default().hex_of(REGISTERS.len()), None);
    }

    #[test]
    fn values_land_in_place() {
        let mut general = GeneralRegs::default();
        general[Gpr::Rip] = 0x1234;
        general[Gpr::Rsp] = 0x8000;
        general[Gpr::Rflags] = 0x246;
        let system = SystemRegs {
            fs_base: 0xfeed,
            cr3: 0x1000,
            ..Default::default()
        };
        let r = Regs::of(&general, &system);
        assert_eq!(r.get("rip"), Some(0x1234));
        assert_eq!(r.get("rsp"), Some(0x8000));
        assert_eq!(r.get("fs_base"), Some(0xfeed));
        assert_eq!(r.get("cr3"), Some(0x1000));
        assert_eq!(r.get("xmm0"), None);
        // rip is register 16, eflags 17 (32 bits), st0 24 (unavailable).
        assert_eq!(r.hex_of(16).as_deref(), Some("3412000000000000"));
        assert_eq!(r.hex_of(17).as_deref(), Some("46020000"));
        assert_eq!(r.hex_of(24).as_deref(), Some("xxxxxxxxxxxxxxxxxxxx"));
    }
}
