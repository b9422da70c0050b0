//! What this kind of host can and cannot do under single-step, in one place.
//!
//! Measured on nested KVM of the PVM kind (see shared/KVM-HOST-NOTES.md). On a
//! host with real VMX/SVM some of these limits fall away; the engine asks this
//! module rather than hard-coding them.

use crate::decode::NextInstr;

/// The limits of the host the engine runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostProfile {
    /// Ring-3 code can be single-stepped (on PVM it runs natively and cannot).
    pub ring3_steppable: bool,
    /// `iretq` gets no step of its own: the host runs it together with the
    /// instruction it returns to, which would then escape the engine's look
    /// (an `rdtsc` there would read the host TSC).
    pub iret_merges_next: bool,
}

impl HostProfile {
    /// The profile of the PVM hosts vmrr is developed on.
    pub const PVM: HostProfile = HostProfile {
        ring3_steppable: false,
        iret_merges_next: true,
    };

    /// The profile for the current host. Only PVM is measured so far, and its
    /// limits are the safe assumption elsewhere.
    pub fn detect() -> HostProfile {
        HostProfile::PVM
    }

    /// Whether the engine must emulate `next` rather than let KVM run it.
    ///
    /// Time, randomness and CPU identity are always emulated: their host
    /// answers are not deterministic (and `rdtscp`/`rdpid` do not even run
    /// here). `sti` and `hlt` are emulated because this host steps them
    /// inconsistently: `sti; hlt` comes back as one `KVM_EXIT_HLT` on a fresh
    /// vCPU, but after a register restore the pair runs on through the next
    /// instruction as one step (measured). The engine owns interrupt delivery
    /// and idling anyway, so it does both itself.
    pub fn must_emulate(&self, next: NextInstr) -> bool {
        match next {
            NextInstr::Plain | NextInstr::Rdmsr | NextInstr::PrivilegeReturn { .. } => false,
            NextInstr::Iretq => self.iret_merges_next,
            NextInstr::Hlt | NextInstr::Sti => true,
            NextInstr::Rdtsc | NextInstr::Rdtscp | NextInstr::Rdpid(_) => true,
            NextInstr::Random(_) | NextInstr::Cpuid => true,
        }
    }
}

/// The advice given whenever a guest does something this host cannot step.
pub const GUEST_BUILD_ADVICE: &str = "build the guest for baseline x86-64 with general registers only \
(gcc -march=x86-64 -mgeneral-regs-only -mno-red-zone), keep all code in ring 0, and avoid int3/int n \
(see \"Host limits\" in vmrr's README)";
