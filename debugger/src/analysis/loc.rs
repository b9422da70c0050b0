//! Places a value lives — guest-physical bytes, or bytes of a register —
//! and how a person names them.

use iced_x86::Register;
use vmrr_backend::regs::{Gpr, SubRegister};

/// A place a value lives: guest-physical memory, or bytes `lo..hi` of a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Guest-physical bytes `[pa, pa + len)`.
    Mem {
        /// Address.
        pa: u64,
        /// Bytes.
        len: u64,
    },
    /// Bytes `lo..hi` of a register (0 is the least significant).
    Reg {
        /// The register.
        gpr: Gpr,
        /// First byte.
        lo: u8,
        /// End byte (exclusive).
        hi: u8,
    },
}

impl Loc {
    /// Bytes.
    pub fn len(&self) -> u64 {
        match *self {
            Loc::Mem { len, .. } => len,
            Loc::Reg { lo, hi, .. } => u64::from(hi - lo),
        }
    }

    /// A whole register as an instruction names it (`edx`, `al`, `ah`).
    pub(crate) fn of_register(reg: Register) -> Option<Loc> {
        let sub = SubRegister::from_iced(reg)?;
        let lo = (sub.shift / 8) as u8;
        Some(Loc::Reg {
            gpr: sub.gpr,
            lo,
            hi: lo + (sub.bits / 8) as u8,
        })
    }

    /// The part of `self` that `other` covers, if any.
    pub(crate) fn overlap(&self, other: &Loc) -> Option<Loc> {
        match (*self, *other) {
            (Loc::Mem { pa, len }, Loc::Mem { pa: p2, len: l2 }) => {
                let lo = pa.max(p2);
                let hi = (pa + len).min(p2 + l2);
                (lo < hi).then_some(Loc::Mem { pa: lo, len: hi - lo })
            }
            (
                Loc::Reg { gpr, lo, hi },
                Loc::Reg {
                    gpr: g2,
                    lo: l2,
                    hi: h2,
                },
            ) if gpr == g2 => {
                let (a, b) = (lo.max(l2), hi.min(h2));
                (a < b).then_some(Loc::Reg { gpr, lo: a, hi: b })
            }
            _ => None,
        }
    }
}

/// The names of each general register at each width: 64, 32, 16, low 8, high 8.
const NAMES: [[&str; 5]; 16] = [
    ["rax", "eax", "ax", "al", "ah"],
    ["rbx", "ebx", "bx", "bl", "bh"],
    ["rcx", "ecx", "cx", "cl", "ch"],
    ["rdx", "edx", "dx", "dl", "dh"],
    ["rsi", "esi", "si", "sil", ""],
    ["rdi", "edi", "di", "dil", ""],
    ["rbp", "ebp", "bp", "bpl", ""],
    ["rsp", "esp", "sp", "spl", ""],
    ["r8", "r8d", "r8w", "r8b", ""],
    ["r9", "r9d", "r9w", "r9b", ""],
    ["r10", "r10d", "r10w", "r10b", ""],
    ["r11", "r11d", "r11w", "r11b", ""],
    ["r12", "r12d", "r12w", "r12b", ""],
    ["r13", "r13d", "r13w", "r13b", ""],
    ["r14", "r14d", "r14w", "r14b", ""],
    ["r15", "r15d", "r15w", "r15b", ""],
];

/// A register's bytes as a person names them (`edx`, `ah`, `rax[2..4]`).
pub(crate) fn reg_name(gpr: Gpr, lo: u8, hi: u8) -> String {
    let i = gpr.index();
    let width = match (lo, hi) {
        (0, 8) => Some(0),
        (0, 4) => Some(1),
        (0, 2) => Some(2),
        (0, 1) => Some(3),
        (1, 2) => Some(4),
        _ => None,
    };
    match (NAMES.get(i), width) {
        (Some(names), Some(w)) if !names[w].is_empty() => names[w].to_string(),
        _ if (lo, hi) == (0, 8) => gpr.name().to_string(),
        _ => format!("{}[{lo}..{hi}]", gpr.name()),
    }
}

/// The register a person names (`rax`, `edx`, `dl`, `r8d`, `rip`, `rflags`).
pub(crate) fn parse_reg(name: &str) -> Option<Loc> {
    let name = name.trim().trim_start_matches('$').to_ascii_lowercase();
    if let Some(g) = Gpr::from_name(&name) {
        return Some(Loc::Reg { gpr: g, lo: 0, hi: 8 });
    }
    for (i, names) in NAMES.iter().enumerate() {
        if let Some(w) = names.iter().position(|n| !n.is_empty() && *n == name) {
            let (lo, hi) = [(0, 8), (0, 4), (0, 2), (0, 1), (1, 2)][w];
            return Some(Loc::Reg {
                gpr: Gpr::ALL[i],
                lo,
                hi,
            });
        }
    }
    None
}

/// The value of bytes `lo..hi` of a register (low bytes first).
pub(crate) fn reg_bytes(value: u64, lo: u8, hi: u8) -> Vec<u8> {
    value.to_le_bytes()[lo as usize..hi as usize].to_vec()
}

/// Bytes (little-endian) as one hexadecimal number.
pub(crate) fn hex_value(bytes: &[u8]) -> String {
    let mut v = 0u128;
    for (i, b) in bytes.iter().take(16).enumerate() {
        v |= u128::from(*b) << (8 * i);
    }
    format!("{v:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_are_named_as_instructions_name_them() {
        for name in [
            "rax", "eax", "ax", "al", "ah", "r8d", "dil", "rflags", "rip", "r15",
        ] {
            let Some(Loc::Reg { gpr, lo, hi }) = parse_reg(name) else {
                panic!("{name}");
            };
            assert_eq!(reg_name(gpr, lo, hi), name);
        }
        assert_eq!(parse_reg("xmm0"), None);
        assert_eq!(reg_name(Gpr::Rax, 2, 4), "rax[2..4]");
    }

    #[test]
    fn overlaps() {
        let a = Loc::Mem { pa: 100, len: 8 };
        assert_eq!(
            a.overlap(&Loc::Mem { pa: 104, len: 8 }),
            Some(Loc::Mem { pa: 104, len: 4 })
        );
        assert_eq!(a.overlap(&Loc::Mem { pa: 108, len: 8 }), None);
        let r = Loc::Reg {
            gpr: Gpr::Rdx,
            lo: 0,
            hi: 8,
        };
        assert_eq!(
            r.overlap(&Loc::Reg {
                gpr: Gpr::Rdx,
                lo: 1,
                hi: 2
            }),
            Some(Loc::Reg {
                gpr: Gpr::Rdx,
                lo: 1,
                hi: 2
            })
        );
        assert_eq!(r.overlap(&a), None);
        assert_eq!(hex_value(&[0x1f, 0, 0, 0]), "0x1f");
    }
}
