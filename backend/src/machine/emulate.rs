//! The instructions the engine answers itself instead of letting KVM run
//! them (time, randomness, CPU identity, and what this host steps
//! inconsistently: `sti`, `hlt`, same-ring `iretq`), and the checks that
//! refuse what this host cannot step at all.

use iced_x86::Register;
use kvm_ioctls::SyncReg;

use super::{Machine, Stop, RFLAGS_IF};
use crate::cpuid;
use crate::decode::{self, NextInstr, Peeked};
use crate::error::{Result, VmError};
use crate::events::EventKind;
use crate::quirks::GUEST_BUILD_ADVICE;
use crate::regs::SubRegister;

/// RFLAGS.CF: `rdrand`/`rdseed` set it to say the value is valid.
const RFLAGS_CF: u64 = 1 << 0;
/// Flags `rdrand` clears besides setting CF: PF AF ZF SF OF.
const RFLAGS_RAND_CLEAR: u64 = (1 << 2) | (1 << 4) | (1 << 6) | (1 << 7) | (1 << 11);
/// The TSC's MSR number: an `rdmsr` of it is a time read like `rdtsc`.
const MSR_IA32_TSC: u64 = 0x10;

impl Machine {
    /// Emulates `next`, which the host profile says KVM must not run; falls
    /// back to a KVM step for the kinds that turn out to need one (an
    /// `iretq` the engine does not handle).
    pub(super) fn emulate(&mut self, next: Peeked) -> Result<Option<Stop>> {
        match next.kind {
            NextInstr::Rdtsc => self.emulate_tsc(next.len, false),
            NextInstr::Rdtscp => self.emulate_tsc(next.len, true),
            NextInstr::Rdpid(reg) => self.emulate_write_reg(next.len, reg, 0, 0),
            NextInstr::Random(reg) => {
                let v = self.rng.next_u64();
                self.push(EventKind::RandomRead(v));
                self.emulate_write_reg(next.len, reg, v, RFLAGS_CF);
            }
            NextInstr::Cpuid => self.emulate_cpuid(next.len),
            NextInstr::Sti => {
                self.vcpu.sync_regs_mut().regs.rflags |= RFLAGS_IF;
                self.finish_emulated(next.len);
                // The interrupt shadow: the instruction after `sti` runs
                // before any interrupt is taken.
                self.irq_ready = false;
                return Ok(None);
            }
            NextInstr::Hlt => {
                self.finish_emulated(next.len);
                self.enter_halt();
            }
            NextInstr::Iretq => {
                if !self.emulate_iretq()? {
                    return self.kvm_step();
                }
            }
            NextInstr::Plain | NextInstr::Rdmsr | NextInstr::PrivilegeReturn { .. } => {
                return self.kvm_step()
            }
        }
        self.after_emulated();
        Ok(None)
    }

    /// Whether the `rdmsr` about to run reads the TSC.
    pub(super) fn reads_tsc_msr(&self) -> bool {
        self.vcpu.sync_regs().regs.rcx & 0xffff_ffff == MSR_IA32_TSC
    }

    /// After an emulated instruction any interrupt shadow has passed, so
    /// readiness for an interrupt is just IF. (KVM's own flag is stale: it
    /// saw no instruction.)
    pub(super) fn after_emulated(&mut self) {
        self.irq_ready = self.vcpu.sync_regs().regs.rflags & RFLAGS_IF != 0;
    }

    /// Emulates a 64-bit `iretq` that returns to the same CS and SS (ring 0
    /// to ring 0, the only kind the kit's kernels use): pops RIP, CS, RFLAGS,
    /// RSP, SS. Returns false, changing nothing, for any other kind.
    fn emulate_iretq(&mut self) -> Result<bool> {
        let regs = self.vcpu.sync_regs().regs;
        let sregs = self.vcpu.sync_regs().sregs;
        if self.bitness() != 64 {
            return Ok(false);
        }
        let mut frame = [0u8; 40];
        if self.read_virt(regs.rsp, &mut frame) < frame.len() {
            return Ok(false);
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&frame[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let (rip, cs, rflags, rsp, ss) = (word(0), word(1) as u16, word(2), word(3), word(4) as u16);
        if cs != sregs.cs.selector || ss != sregs.ss.selector || cs & 3 != 0 {
            return Ok(false);
        }
        let r = &mut self.vcpu.sync_regs_mut().regs;
        r.rip = rip;
        // Bit 1 always reads as one; VM and VIF/VIP have no meaning in long mode.
        r.rflags = (rflags | 0x2) & !((1 << 17) | (1 << 19) | (1 << 20));
        r.rsp = rsp;
        self.vcpu.set_sync_dirty_reg(SyncReg::Register);
        self.icount += 1;
        Ok(true)
    }

    /// Finishes an emulated instruction: RIP past it, one step counted.
    fn finish_emulated(&mut self, len: u64) {
        let r = &mut self.vcpu.sync_regs_mut().regs;
        r.rip = r.rip.wrapping_add(len);
        self.vcpu.set_sync_dirty_reg(SyncReg::Register);
        self.icount += 1;
    }

    /// `rdtsc` (and `rdmsr` of the TSC), or `rdtscp` with `with_aux`:
    /// EDX:EAX get the virtual TSC.
    pub(super) fn emulate_tsc(&mut self, len: u64, with_aux: bool) {
        let tsc = self.clock.tsc(self.icount);
        self.push(EventKind::TscRead(tsc));
        let r = &mut self.vcpu.sync_regs_mut().regs;
        r.rax = tsc & 0xffff_ffff;
        r.rdx = tsc >> 32;
        if with_aux {
            r.rcx = 0; // TSC_AUX: the id of the only CPU.
        }
        self.finish_emulated(len);
    }

    /// An instruction whose only effect is `value` in register `reg` (and
    /// `set_flags`, if any, in RFLAGS the way `rdrand` sets them). A `reg`
    /// that is not a general register (the decoder never gives one) is left
    /// alone.
    fn emulate_write_reg(&mut self, len: u64, reg: Register, value: u64, set_flags: u64) {
        let r = &mut self.vcpu.sync_regs_mut().regs;
        if let Some(target) = SubRegister::from_iced(reg) {
            target.write(r, value);
        }
        if set_flags != 0 {
            r.rflags = (r.rflags & !RFLAGS_RAND_CLEAR) | set_flags;
        }
        self.finish_emulated(len);
    }

    /// `cpuid`, answered from the fixed table.
    fn emulate_cpuid(&mut self, len: u64) {
        let r = &mut self.vcpu.sync_regs_mut().regs;
        let out = cpuid::lookup(&self.cpuid, r.rax as u32, r.rcx as u32);
        r.rax = out[0] as u64;
        r.rbx = out[1] as u64;
        r.rcx = out[2] as u64;
        r.rdx = out[3] as u64;
        self.finish_emulated(len);
    }

    /// Refuses to run an `iret`/far `ret`/`sysret` that would enter ring 3.
    /// Checked before the instruction runs: on this host ring-3 code runs
    /// natively and may never give the engine an exit to notice it by.
    pub(super) fn check_stays_in_ring0(&self, cs_offset: Option<u64>) -> Result<()> {
        if self.profile.ring3_steppable {
            return Ok(());
        }
        let target_rpl = match cs_offset {
            None => 3,
            Some(off) => {
                let rsp = self.vcpu.sync_regs().regs.rsp;
                let mut cs = [0u8; 2];
                if self.read_virt(rsp.wrapping_add(off), &mut cs) < 2 {
                    // Unreadable stack: the instruction will fault in ring 0.
                    return Ok(());
                }
                u16::from_le_bytes(cs) & 3
            }
        };
        if target_rpl == 0 {
            return Ok(());
        }
        let rip = self.vcpu.sync_regs().regs.rip;
        Err(VmError::Unsupported(format!(
            "the guest is about to enter ring {target_rpl} at rip {rip:#x} (icount {}): this host cannot \
             single-step ring-3 code, so its execution would not be recorded exactly. Fix: {GUEST_BUILD_ADVICE}",
            self.icount
        )))
    }

    /// The error for an instruction the host failed to execute, naming it.
    pub(super) fn cannot_execute(&self) -> VmError {
        let rip = self.vcpu.sync_regs().regs.rip;
        let mut bytes = [0u8; 15];
        let n = self.read_virt(rip, &mut bytes);
        let bitness = self.bitness();
        let len = decode::length(&bytes[..n], rip, bitness).max(1).min(n.max(1));
        let shown = &bytes[..len.min(n)];
        let hex: Vec<String> = shown.iter().map(|b| format!("{b:02x}")).collect();
        VmError::Unsupported(format!(
            "the host cannot execute the guest instruction at rip {rip:#x} (icount {}): `{}` (bytes {}). \
             Fix: {GUEST_BUILD_ADVICE}",
            self.icount,
            decode::disassemble(&bytes[..n], rip, bitness),
            if hex.is_empty() {
                "unreadable".to_string()
            } else {
                hex.join(" ")
            },
        ))
    }
}
