//! The general registers of the vCPU, listed once: their names and order,
//! where each lives in KVM's `kvm_regs`, and how the registers an
//! instruction names (iced-x86's `Register`, sub-registers included) map
//! onto them.
//!
//! Every view of the registers (the engine's emulated writes, replay's
//! divergence report, the watchpoint search's address arithmetic, the TUI's
//! register pane, gdb's `g` packet) goes through this table instead of
//! spelling the sixteen GPRs out again.
//!
//! The table order is gdb's amd64 order (rax rbx rcx rdx rsi rdi rbp rsp
//! r8..r15 rip eflags), so the gdb bridge can use [`Gpr::index`] as its
//! register number; a register pane shows them in [`Gpr::DISPLAY_ORDER`].

use std::ops::{Index, IndexMut};

use iced_x86::Register;
use kvm_bindings::{kvm_regs, kvm_sregs};

/// RFLAGS bits the host debugger owns (TF for single-stepping, RF): they are
/// not guest state, so hashes and comparisons of guest state leave them out.
pub const RFLAGS_HOST_BITS: u64 = (1 << 8) | (1 << 16);

/// One general register of the table: the sixteen GPRs, RIP and RFLAGS.
/// The discriminant is the position in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gpr {
    /// RAX.
    Rax,
    /// RBX.
    Rbx,
    /// RCX.
    Rcx,
    /// RDX.
    Rdx,
    /// RSI.
    Rsi,
    /// RDI.
    Rdi,
    /// RBP.
    Rbp,
    /// RSP.
    Rsp,
    /// R8.
    R8,
    /// R9.
    R9,
    /// R10.
    R10,
    /// R11.
    R11,
    /// R12.
    R12,
    /// R13.
    R13,
    /// R14.
    R14,
    /// R15.
    R15,
    /// The instruction pointer.
    Rip,
    /// The flags register.
    Rflags,
}

impl Gpr {
    /// Number of registers in the table.
    pub const COUNT: usize = 18;

    /// Every register, in table order (gdb's amd64 order).
    pub const ALL: [Gpr; Gpr::COUNT] = [
        Gpr::Rax,
        Gpr::Rbx,
        Gpr::Rcx,
        Gpr::Rdx,
        Gpr::Rsi,
        Gpr::Rdi,
        Gpr::Rbp,
        Gpr::Rsp,
        Gpr::R8,
        Gpr::R9,
        Gpr::R10,
        Gpr::R11,
        Gpr::R12,
        Gpr::R13,
        Gpr::R14,
        Gpr::R15,
        Gpr::Rip,
        Gpr::Rflags,
    ];

    /// The order a register pane lists them in: where the code and the
    /// stack are first, then the GPRs in their usual reading order, RFLAGS
    /// last.
    pub const DISPLAY_ORDER: [Gpr; Gpr::COUNT] = [
        Gpr::Rip,
        Gpr::Rsp,
        Gpr::Rbp,
        Gpr::Rax,
        Gpr::Rbx,
        Gpr::Rcx,
        Gpr::Rdx,
        Gpr::Rsi,
        Gpr::Rdi,
        Gpr::R8,
        Gpr::R9,
        Gpr::R10,
        Gpr::R11,
        Gpr::R12,
        Gpr::R13,
        Gpr::R14,
        Gpr::R15,
        Gpr::Rflags,
    ];

    /// Position in the table ([`Gpr::ALL`]): also the index into a
    /// [`GeneralRegs`] and gdb's register number.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The lower-case name: `rax` … `r15`, `rip`, `rflags`.
    pub const fn name(self) -> &'static str {
        match self {
            Gpr::Rax => "rax",
            Gpr::Rbx => "rbx",
            Gpr::Rcx => "rcx",
            Gpr::Rdx => "rdx",
            Gpr::Rsi => "rsi",
            Gpr::Rdi => "rdi",
            Gpr::Rbp => "rbp",
            Gpr::Rsp => "rsp",
            Gpr::R8 => "r8",
            Gpr::R9 => "r9",
            Gpr::R10 => "r10",
            Gpr::R11 => "r11",
            Gpr::R12 => "r12",
            Gpr::R13 => "r13",
            Gpr::R14 => "r14",
            Gpr::R15 => "r15",
            Gpr::Rip => "rip",
            Gpr::Rflags => "rflags",
        }
    }

    /// The register called `name` (as [`Gpr::name`] spells it).
    pub fn from_name(name: &str) -> Option<Gpr> {
        Gpr::ALL.into_iter().find(|g| g.name() == name)
    }

    /// Its value in KVM's register block.
    pub fn get(self, regs: &kvm_regs) -> u64 {
        match self {
            Gpr::Rax => regs.rax,
            Gpr::Rbx => regs.rbx,
            Gpr::Rcx => regs.rcx,
            Gpr::Rdx => regs.rdx,
            Gpr::Rsi => regs.rsi,
            Gpr::Rdi => regs.rdi,
            Gpr::Rbp => regs.rbp,
            Gpr::Rsp => regs.rsp,
            Gpr::R8 => regs.r8,
            Gpr::R9 => regs.r9,
            Gpr::R10 => regs.r10,
            Gpr::R11 => regs.r11,
            Gpr::R12 => regs.r12,
            Gpr::R13 => regs.r13,
            Gpr::R14 => regs.r14,
            Gpr::R15 => regs.r15,
            Gpr::Rip => regs.rip,
            Gpr::Rflags => regs.rflags,
        }
    }

    /// Sets the whole 64-bit register in KVM's register block.
    pub fn set(self, regs: &mut kvm_regs, value: u64) {
        *self.slot(regs) = value;
    }

    /// Where it lives in KVM's register block.
    fn slot(self, regs: &mut kvm_regs) -> &mut u64 {
        match self {
            Gpr::Rax => &mut regs.rax,
            Gpr::Rbx => &mut regs.rbx,
            Gpr::Rcx => &mut regs.rcx,
            Gpr::Rdx => &mut regs.rdx,
            Gpr::Rsi => &mut regs.rsi,
            Gpr::Rdi => &mut regs.rdi,
            Gpr::Rbp => &mut regs.rbp,
            Gpr::Rsp => &mut regs.rsp,
            Gpr::R8 => &mut regs.r8,
            Gpr::R9 => &mut regs.r9,
            Gpr::R10 => &mut regs.r10,
            Gpr::R11 => &mut regs.r11,
            Gpr::R12 => &mut regs.r12,
            Gpr::R13 => &mut regs.r13,
            Gpr::R14 => &mut regs.r14,
            Gpr::R15 => &mut regs.r15,
            Gpr::Rip => &mut regs.rip,
            Gpr::Rflags => &mut regs.rflags,
        }
    }

    /// The table entry for a 64-bit iced-x86 register (`RAX` … `R15`, `RIP`).
    fn from_iced_full(reg: Register) -> Option<Gpr> {
        use Register as R;
        Some(match reg {
            R::RAX => Gpr::Rax,
            R::RBX => Gpr::Rbx,
            R::RCX => Gpr::Rcx,
            R::RDX => Gpr::Rdx,
            R::RSI => Gpr::Rsi,
            R::RDI => Gpr::Rdi,
            R::RBP => Gpr::Rbp,
            R::RSP => Gpr::Rsp,
            R::R8 => Gpr::R8,
            R::R9 => Gpr::R9,
            R::R10 => Gpr::R10,
            R::R11 => Gpr::R11,
            R::R12 => Gpr::R12,
            R::R13 => Gpr::R13,
            R::R14 => Gpr::R14,
            R::R15 => Gpr::R15,
            R::RIP => Gpr::Rip,
            _ => return None,
        })
    }
}

/// A register as an instruction names it: some bits of one table entry
/// (`EAX` is the low 32 bits of RAX, `AH` bits 8..16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRegister {
    /// The table entry it is part of.
    pub gpr: Gpr,
    /// Its width: 8, 16, 32 or 64.
    pub bits: u32,
    /// Its lowest bit within the entry: 8 for AH, CH, DH and BH, else 0.
    pub shift: u32,
}

impl SubRegister {
    /// The part of the table an iced-x86 register is: any width of the
    /// sixteen GPRs (`AL`, `AH`, `AX`, `EAX`, `RAX`, …, `R15L` … `R15`) and
    /// `EIP`/`RIP`. `None` for anything else (segment, vector, control
    /// registers, `Register::None`).
    pub fn from_iced(reg: Register) -> Option<SubRegister> {
        use Register as R;
        let gpr = Gpr::from_iced_full(reg.full_register())?;
        let shift = if matches!(reg, R::AH | R::CH | R::DH | R::BH) {
            8
        } else {
            0
        };
        Some(SubRegister {
            gpr,
            bits: 8 * reg.size() as u32,
            shift,
        })
    }

    /// The bits of this part, in place (before shifting down).
    fn mask(self) -> u64 {
        let low = if self.bits >= 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        };
        low << self.shift
    }

    /// Its value as the instruction sees it, zero-extended.
    pub fn read(self, regs: &kvm_regs) -> u64 {
        (self.gpr.get(regs) & self.mask()) >> self.shift
    }

    /// Writes `value` (its low `bits` bits) with the x86 width rules: a
    /// 32-bit write zeroes the upper half of the 64-bit register, 8- and
    /// 16-bit writes keep the other bits.
    pub fn write(self, regs: &mut kvm_regs, value: u64) {
        let slot = self.gpr.slot(regs);
        *slot = match self.bits {
            64 => value,
            32 => value & 0xffff_ffff,
            _ => (*slot & !self.mask()) | ((value << self.shift) & self.mask()),
        };
    }
}

/// The value an address computation reads from `reg`: any width of a
/// general register or RIP, and the segment bases (only FS and GS have one
/// in long mode; the others count as 0). `None` for registers that never
/// form an address.
pub fn address_register(regs: &kvm_regs, sregs: &kvm_bindings::kvm_sregs, reg: Register) -> Option<u64> {
    match reg {
        Register::FS => Some(sregs.fs.base),
        Register::GS => Some(sregs.gs.base),
        Register::ES | Register::CS | Register::SS | Register::DS | Register::None => Some(0),
        r => SubRegister::from_iced(r).map(|s| s.read(regs)),
    }
}

/// The values of all general registers, in table order ([`Gpr::ALL`]):
/// plain data a view can keep, compare and draw without depending on
/// kvm-bindings. Index it with a [`Gpr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct GeneralRegs(pub [u64; Gpr::COUNT]);

impl GeneralRegs {
    /// The values in KVM's register block.
    pub fn from_kvm(regs: &kvm_regs) -> GeneralRegs {
        GeneralRegs(Gpr::ALL.map(|g| g.get(regs)))
    }

    /// The value of the register called `name` ([`Gpr::name`]), if there is one.
    pub fn get(&self, name: &str) -> Option<u64> {
        Gpr::from_name(name).map(|g| self[g])
    }

    /// RIP.
    pub fn rip(&self) -> u64 {
        self[Gpr::Rip]
    }

    /// Every register with its value, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (Gpr, u64)> + '_ {
        Gpr::ALL.into_iter().map(|g| (g, self[g]))
    }
}

impl Index<Gpr> for GeneralRegs {
    type Output = u64;

    fn index(&self, gpr: Gpr) -> &u64 {
        &self.0[gpr.index()]
    }
}

impl IndexMut<Gpr> for GeneralRegs {
    fn index_mut(&mut self, gpr: Gpr) -> &mut u64 {
        &mut self.0[gpr.index()]
    }
}

/// The system registers a debugger shows (segment selectors, the FS and GS
/// bases, control registers, EFER), as plain data: what the gdb bridge
/// reports without depending on kvm-bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SystemRegs {
    /// Selectors of CS, SS, DS, ES, FS and GS, in that order (gdb's).
    pub selectors: [u16; 6],
    /// FS base.
    pub fs_base: u64,
    /// GS base.
    pub gs_base: u64,
    /// CR0.
    pub cr0: u64,
    /// CR2.
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8.
    pub cr8: u64,
    /// EFER.
    pub efer: u64,
}

impl SystemRegs {
    /// The values in KVM's system register block.
    pub fn from_kvm(s: &kvm_sregs) -> SystemRegs {
        SystemRegs {
            selectors: [s.cs, s.ss, s.ds, s.es, s.fs, s.gs].map(|seg| seg.selector),
            fs_base: s.fs.base,
            gs_base: s.gs.base,
            cr0: s.cr0,
            cr2: s.cr2,
            cr3: s.cr3,
            cr4: s.cr4,
            cr8: s.cr8,
            efer: s.efer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_order_names_and_kvm_fields_agree() {
        for (i, g) in Gpr::ALL.into_iter().enumerate() {
            assert_eq!(g.index(), i);
            assert_eq!(Gpr::from_name(g.name()), Some(g));
            let mut r = kvm_regs::default();
            g.set(&mut r, 0x1000 + i as u64);
            // Exactly one field of kvm_regs changed, and it is this one.
            let values = GeneralRegs::from_kvm(&r);
            for (h, v) in values.iter() {
                assert_eq!(v, if h == g { 0x1000 + i as u64 } else { 0 }, "{}", h.name());
            }
        }
        let mut display = Gpr::DISPLAY_ORDER;
        display.sort();
        assert_eq!(display, Gpr::ALL);
        assert_eq!(Gpr::from_name("eflags"), None);
    }

    #[test]
    fn general_regs_round_trip() {
        let r = kvm_regs {
            rax: 1,
            rsp: 2,
            r15: 3,
            rip: 4,
            rflags: 0x202,
            ..Default::default()
        };
        let g = GeneralRegs::from_kvm(&r);
        assert_eq!((g[Gpr::Rax], g[Gpr::Rsp], g[Gpr::R15], g.rip()), (1, 2, 3, 4));
        assert_eq!(g.get("rflags"), Some(0x202));
        assert_eq!(g.get("cr3"), None);
        let mut back = kvm_regs::default();
        for (gpr, value) in g.iter() {
            gpr.set(&mut back, value);
        }
        assert_eq!(GeneralRegs::from_kvm(&back), g);
    }

    #[test]
    fn register_width_rules() {
        let write = |r: &mut kvm_regs, reg: Register, value: u64| {
            SubRegister::from_iced(reg).expect("a GPR").write(r, value)
        };
        let mut r = kvm_regs {
            rax: u64::MAX,
            rcx: u64::MAX,
            rdx: u64::MAX,
            ..Default::default()
        };
        write(&mut r, Register::EAX, 0x1_2345_6789);
        assert_eq!(r.rax, 0x2345_6789);
        write(&mut r, Register::CX, 0x1234);
        assert_eq!(r.rcx, 0xffff_ffff_ffff_1234);
        write(&mut r, Register::R9, 7);
        assert_eq!(r.r9, 7);
        write(&mut r, Register::DH, 0x1ab);
        assert_eq!(r.rdx, 0xffff_ffff_ffff_abff);
        write(&mut r, Register::R10L, 0x1ff);
        assert_eq!(r.r10, 0xff);
    }

    #[test]
    fn sub_register_reads() {
        let r = kvm_regs {
            rax: 0x1122_3344_5566_7788,
            rip: 0xffff_ffff_8000_1000,
            ..Default::default()
        };
        let read = |reg: Register| SubRegister::from_iced(reg).map(|s| s.read(&r));
        assert_eq!(read(Register::RAX), Some(0x1122_3344_5566_7788));
        assert_eq!(read(Register::EAX), Some(0x5566_7788));
        assert_eq!(read(Register::AX), Some(0x7788));
        assert_eq!(read(Register::AL), Some(0x88));
        assert_eq!(read(Register::AH), Some(0x77));
        assert_eq!(read(Register::EIP), Some(0x8000_1000));
        assert_eq!(read(Register::RIP), Some(0xffff_ffff_8000_1000));
        assert_eq!(read(Register::FS), None);
        assert_eq!(read(Register::XMM0), None);
        assert_eq!(read(Register::None), None);
    }
}
