//! The exact engine: one VM stepped one instruction at a time under KVM.
//!
//! # What one unit of `icount` is
//!
//! `icount` counts *engine steps*: the stops of the vCPU at an instruction
//! boundary. A step is one of
//! * a single-step `KVM_EXIT_DEBUG`;
//! * the I/O or MMIO exit of an `out`/MMIO write (the host completes those
//!   without a debug exit);
//! * an instruction the engine emulates itself (`rdtsc`, `rdtscp`, `rdpid`,
//!   `rdrand`, `rdseed`, `cpuid`, `rdmsr` of the TSC).
//!
//! On this host that is one per instruction, except where the host merges or
//! splits them, always the same way for the same state: `iretq` is merged with
//! the next instruction; a faulting instruction is merged with its handler's
//! first instruction; an injected interrupt's step is its handler's first
//! instruction; a `rep` string instruction takes one step per chunk of at most
//! 1024 iterations plus one. An `in`/MMIO read is one step (its I/O exit is
//! not counted). `hlt` is one step; the idle time after it is not counted but
//! skipped in virtual time. So `icount` is a deterministic, monotonic function
//! of the guest's execution, and the coordinate every other piece uses.
//!
//! # Where each part lives
//!
//! * this file: the [`Machine`] itself, what [`Machine::run`] takes and
//!   returns, and read-only views of the VM;
//! * `build`: making a VM (from an image, or from a captured state);
//! * `run`: the run loop, interrupts from the timer, idling at `hlt`, and
//!   inputs from outside (frames, replay's idle);
//! * `emulate`: the instructions the engine answers itself, and the checks
//!   that refuse what this host cannot step;
//! * `kvm_step`: one step executed by KVM, with the I/O it performs;
//! * [`state`]: capture and restore, guest pages, the dirty log, the state hash.

mod build;
mod emulate;
mod exec_log;
mod hooks;
mod kvm_step;
mod run;
pub mod state;

use kvm_ioctls::{VcpuFd, VmFd};

pub use exec_log::{ExecLog, WORD_BYTES};

use crate::config::VmConfig;
use crate::cpuid::CpuidLeaf;
use crate::devices::Devices;
use crate::events::{Event, EventKind};
use crate::memory::{self, GuestRam, PagingMode};
use crate::quirks::HostProfile;
use crate::regs::GeneralRegs;
use crate::rng::SeededRng;
use crate::vclock::VClock;

/// RFLAGS.IF: the guest accepts interrupts.
const RFLAGS_IF: u64 = 1 << 9;
/// EFER.LMA: long mode is active.
const EFER_LMA: u64 = 1 << 10;

/// How far `run` may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimit {
    /// Stop when `icount` reaches this.
    pub icount: u64,
    /// Stop before an instruction that would start at or after this virtual time.
    pub vtime_ns: Option<u64>,
}

impl RunLimit {
    /// Run until `icount` reaches `n` (or the guest stops by itself).
    pub fn icount(n: u64) -> Self {
        RunLimit {
            icount: n,
            vtime_ns: None,
        }
    }
}

/// Why `run` returned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stop {
    /// The limit was reached; the VM can run on.
    Limit,
    /// The guest wrote this value to the debug-exit port.
    Exited(u32),
    /// `hlt` with interrupts disabled: nothing can ever wake it.
    HaltedForever,
    /// `hlt` with interrupts enabled but no interrupt source that could fire.
    IdleForever,
    /// The guest triple-faulted (KVM shutdown).
    TripleFault,
}

impl Stop {
    /// Whether the VM has ended (anything but `Limit`).
    pub fn is_final(&self) -> bool {
        !matches!(self, Stop::Limit)
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Limit => write!(f, "step limit reached"),
            Stop::Exited(v) => write!(f, "guest exited with value {v}"),
            Stop::HaltedForever => write!(f, "guest halted with interrupts disabled"),
            Stop::IdleForever => write!(f, "guest halted with no interrupt source left to wake it"),
            Stop::TripleFault => write!(f, "guest triple-faulted"),
        }
    }
}

/// One VM: KVM objects, RAM, devices, and the engine's bookkeeping.
///
/// Fields are private to the `machine` module (its files share them); only
/// the vCPU is open to the crate, for the bare speed floor in `floor`.
pub struct Machine {
    /// The VM the vCPU and memory slot belong to: the dirty log is read from it.
    vm: VmFd,
    pub(crate) vcpu: VcpuFd,
    ram: GuestRam,
    config: VmConfig,
    devices: Devices,
    clock: VClock,
    rng: SeededRng,
    cpuid: Vec<CpuidLeaf>,
    icount: u64,
    /// The guest executed `hlt` and waits for an interrupt.
    halted: bool,
    /// Virtual time at which the current halt began.
    halt_start_ns: u64,
    /// KVM's `ready_for_interrupt_injection` from the last real exit. Kept by
    /// the engine (and in snapshots) because `kvm_run`'s copy is stale after
    /// an emulated step or a restore.
    irq_ready: bool,
    /// The VM has stopped for good.
    finished: Option<Stop>,
    /// Guest-virtual addresses `run` stops before (the debugger's breakpoints).
    breakpoints: Vec<u64>,
    /// The breakpoint the last `run` stopped at, if it did.
    breakpoint_hit: Option<u64>,
    /// The position breakpoints do not stop at: where they were set, or last hit.
    breakpoints_passed: Option<u64>,
    events: Vec<Event>,
    profile: HostProfile,
    /// The execution log, when the recorder or indexer turned it on.
    log: exec_log::LogState,
}

impl Machine {
    /// Steps executed so far.
    pub fn icount(&self) -> u64 {
        self.icount
    }

    /// Virtual time now, in nanoseconds.
    pub fn vtime_ns(&self) -> u64 {
        self.clock.now_ns(self.icount)
    }

    /// Virtual time at which the last executed instruction (number
    /// `icount - 1`) started; `None` before the first. The clock only moves
    /// while halted between instructions, so this is the time now minus the
    /// idle time spent at the current position and minus the instruction's
    /// own duration. (A run never returns between a wake and the instruction
    /// it wakes for, so "not halted" means "no idle time here".)
    pub fn last_start_ns(&self) -> Option<u64> {
        let last = self.icount.checked_sub(1)?;
        let idle_here = if self.halted {
            self.clock.now_ns(self.icount).saturating_sub(self.halt_start_ns)
        } else {
            0
        };
        Some(self.clock.now_ns(last).saturating_sub(idle_here))
    }

    /// The configuration the VM was built with.
    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    /// Guest RAM.
    pub fn ram(&self) -> &GuestRam {
        &self.ram
    }

    /// The general registers as of the last step.
    pub fn regs(&self) -> kvm_bindings::kvm_regs {
        self.vcpu.sync_regs().regs
    }

    /// The general registers as of the last step, as plain values in table
    /// order ([`crate::regs::Gpr::ALL`]): what a view keeps without
    /// depending on KVM's types.
    pub fn general_regs(&self) -> GeneralRegs {
        GeneralRegs::from_kvm(&self.vcpu.sync_regs().regs)
    }

    /// The system registers as of the last step.
    pub fn sregs(&self) -> kvm_bindings::kvm_sregs {
        self.vcpu.sync_regs().sregs
    }

    /// The system registers a debugger shows, as plain values (see
    /// [`crate::regs::SystemRegs`]).
    pub fn system_regs(&self) -> crate::regs::SystemRegs {
        crate::regs::SystemRegs::from_kvm(&self.vcpu.sync_regs().sregs)
    }

    /// Whether the guest is halted waiting for an interrupt.
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// Why the VM ended, if it has.
    pub fn finished(&self) -> Option<&Stop> {
        self.finished.as_ref()
    }

    /// Sets the addresses `run` stops before (replacing any earlier set).
    /// Checked by the engine between steps, so a search for a breakpoint
    /// costs no more than plain execution.
    pub fn set_breakpoints(&mut self, addrs: &[u64]) {
        self.breakpoints = addrs.to_vec();
        // Standing on a breakpoint does not hit it: runs leave it first.
        self.breakpoints_passed = Some(self.icount);
    }

    /// Forgets everything a debugger set on this machine (breakpoints, the
    /// execution and DMA logs, pending events), as a freshly built one
    /// has none: a machine kept for reuse is restored into, then run by
    /// someone who did not set them.
    pub fn reset_aids(&mut self) {
        self.breakpoints.clear();
        self.breakpoint_hit = None;
        self.breakpoints_passed = None;
        self.events.clear();
        self.log = Default::default();
    }

    /// The breakpoint the last `run` stopped before, if that is why it stopped.
    pub fn breakpoint_hit(&self) -> Option<u64> {
        self.breakpoint_hit
    }

    /// Virtual time of the next timer interrupt, if a timer is running.
    pub fn next_timer_ns(&self) -> Option<u64> {
        self.devices.pit.next_irq_ns()
    }

    /// Takes the events produced since the last call, in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The paging registers, for reading guest-virtual memory.
    pub fn paging(&self) -> PagingMode {
        let s = &self.vcpu.sync_regs().sregs;
        PagingMode {
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer,
        }
    }

    /// Code size of the current mode: 64, 32 or 16.
    pub fn bitness(&self) -> u32 {
        let s = &self.vcpu.sync_regs().sregs;
        if s.efer & EFER_LMA != 0 && s.cs.l != 0 {
            64
        } else if s.cs.db != 0 {
            32
        } else {
            16
        }
    }

    /// Reads guest-virtual memory at `va` through the guest's page tables;
    /// returns how many bytes were readable.
    pub fn read_virt(&self, va: u64, buf: &mut [u8]) -> usize {
        memory::read_virt(&self.ram, &self.paging(), va, buf)
    }

    /// Writes guest-virtual memory at `va` through the guest's page tables
    /// (a debugger changing its copy of the VM); returns how many bytes were
    /// writable. Nothing records the change: replaying from a checkpoint or
    /// snapshot brings back the recorded contents.
    pub fn write_virt(&mut self, va: u64, data: &[u8]) -> usize {
        memory::write_virt(&self.ram, &self.paging(), va, data)
    }

    /// The guest-physical address of guest-virtual `va` through the page
    /// tables as they are now; `None` where it is not mapped.
    pub fn translate(&self, va: u64) -> Option<u64> {
        memory::translate(&self.ram, &self.paging(), va).ok()
    }

    /// Records an event at the current position.
    fn push(&mut self, kind: EventKind) {
        let vtime_ns = self.clock.now_ns(self.icount);
        self.events.push(Event {
            icount: self.icount,
            vtime_ns,
            kind,
        });
    }
}
