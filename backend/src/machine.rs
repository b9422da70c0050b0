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

use std::path::Path;

use kvm_bindings::{
    kvm_guest_debug, kvm_interrupt, kvm_userspace_memory_region, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP,
};
use kvm_ioctls::{Cap, Kvm, SyncReg, VcpuExit, VcpuFd, VmFd};
use vm_memory::{GuestAddress, GuestMemoryBackend};

use crate::boot;
use crate::config::VmConfig;
use crate::cpuid::{self, CpuidLeaf};
use crate::decode::{self, NextInstr};
use crate::devices::debug_port::DebugAction;
use crate::devices::virtio_net::{RxOutcome, VirtioNet};
use crate::devices::{Devices, PIT_IRQ};
use crate::error::{kvm, Result, VmError};
use crate::events::{Event, EventKind};
use crate::memory::{self, GuestRam, PagingMode};
use crate::quirks::{HostProfile, GUEST_BUILD_ADVICE};
use crate::rng::SeededRng;
use crate::vclock::VClock;

vmm_sys_util::ioctl_iow_nr!(KVM_INTERRUPT, kvm_bindings::KVMIO, 0x86, kvm_interrupt);

const RFLAGS_IF: u64 = 1 << 9;
const RFLAGS_CF: u64 = 1 << 0;
/// Flags `rdrand` clears besides setting CF: PF AF ZF SF OF.
const RFLAGS_RAND_CLEAR: u64 = (1 << 2) | (1 << 4) | (1 << 6) | (1 << 7) | (1 << 11);
const MSR_IA32_TSC: u64 = 0x10;
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
pub struct Machine {
    /// The VM the vCPU and memory slot belong to (dirty logging will use it).
    #[allow(dead_code)]
    pub(crate) vm: VmFd,
    pub(crate) vcpu: VcpuFd,
    pub(crate) ram: GuestRam,
    pub(crate) config: VmConfig,
    pub(crate) devices: Devices,
    pub(crate) clock: VClock,
    pub(crate) rng: SeededRng,
    pub(crate) cpuid: Vec<CpuidLeaf>,
    pub(crate) icount: u64,
    /// The guest executed `hlt` and waits for an interrupt.
    pub(crate) halted: bool,
    /// Virtual time at which the current halt began.
    pub(crate) halt_start_ns: u64,
    /// KVM's `ready_for_interrupt_injection` from the last real exit. Kept by
    /// the engine (and in snapshots) because `kvm_run`'s copy is stale after
    /// an emulated step or a restore.
    pub(crate) irq_ready: bool,
    /// The VM has stopped for good.
    pub(crate) finished: Option<Stop>,
    /// Guest-virtual addresses `run` stops before (the debugger's breakpoints).
    breakpoints: Vec<u64>,
    /// The breakpoint the last `run` stopped at, if it did.
    breakpoint_hit: Option<u64>,
    /// The position breakpoints do not stop at: where they were set, or last hit.
    breakpoints_passed: Option<u64>,
    events: Vec<Event>,
    profile: HostProfile,
}

fn open_kvm() -> Result<Kvm> {
    Kvm::new().map_err(|e| {
        let source = std::io::Error::from_raw_os_error(e.errno());
        let hint = match source.kind() {
            std::io::ErrorKind::NotFound => {
                "This machine has no KVM: enable hardware virtualization (or nested KVM) and load the kvm module"
            }
            std::io::ErrorKind::PermissionDenied => {
                "No permission: add your user to the 'kvm' group (then log in again) or run as root"
            }
            _ => "Check that the kvm module is loaded and /dev/kvm is usable",
        };
        VmError::KvmUnavailable { source, hint }
    })
}

impl Machine {
    /// Builds a VM, loads `image` (ELF64 with a PVH note) and leaves it at its entry point.
    pub fn new(image: &Path, config: VmConfig) -> Result<Machine> {
        config.validate()?;
        // Read and check the image before touching KVM: a bad image is the
        // likelier mistake and deserves the first, clearest error.
        let ram = memory::create_ram(config.mem_bytes)?;
        let mut cmdline = config.cmdline.clone();
        if config.nic_mac.is_some() {
            // Announce the NIC the way Linux and the guest kit look for it.
            cmdline = format!("{} {}", cmdline.trim_end(), VirtioNet::cmdline_token())
                .trim_start()
                .to_string();
        }
        let boot = boot::load_kernel(&ram, image, config.mem_bytes, &cmdline)?;
        let mut machine = Machine::with_ram(ram, config)?;
        let mut sregs = machine.vcpu.get_sregs().map_err(kvm("get sregs"))?;
        let regs = boot::entry_state(boot.entry, &mut sregs);
        machine.vcpu.set_sregs(&sregs).map_err(kvm("set sregs"))?;
        machine.vcpu.set_regs(&regs).map_err(kvm("set regs"))?;
        // kvm_run's copies are filled only at the first exit; seed them now so
        // the engine can peek at the entry instruction.
        let s = machine.vcpu.sync_regs_mut();
        s.regs = regs;
        s.sregs = sregs;
        Ok(machine)
    }

    /// Builds a fresh VM and restores `state` into it: the result runs on
    /// exactly as the VM the state was captured from.
    pub fn from_state(config: VmConfig, state: &crate::state::MachineState) -> Result<Machine> {
        config.validate()?;
        let ram = memory::create_ram(config.mem_bytes)?;
        let mut machine = Machine::with_ram(ram, config)?;
        machine.restore(state)?;
        Ok(machine)
    }

    /// Builds a fresh VM from a state without memory plus the pages that are
    /// not zero (a fresh VM's RAM is zero): restoring a checkpoint this way
    /// writes a few hundred pages instead of all of RAM.
    pub fn from_core_and_pages<'a>(
        config: VmConfig,
        state: &crate::state::MachineState,
        pages: impl Iterator<Item = (u64, &'a [u8])>,
    ) -> Result<Machine> {
        config.validate()?;
        let guest_ram = memory::create_ram(config.mem_bytes)?;
        let mut machine = Machine::with_ram(guest_ram, config)?;
        machine.restore_core(state)?;
        for (index, page) in pages {
            machine.write_page(index, page)?;
        }
        machine.take_dirty_pages()?;
        Ok(machine)
    }

    /// KVM VM + vCPU over `ram`, CPUID set, single-stepping on; registers as KVM made them.
    fn with_ram(ram: GuestRam, config: VmConfig) -> Result<Machine> {
        let kvm_sys = open_kvm()?;
        if !kvm_sys.check_extension(Cap::SyncRegs) {
            return Err(VmError::Unsupported(
                "this KVM lacks KVM_CAP_SYNC_REGS, which the engine needs to step at full speed".into(),
            ));
        }
        let vm = kvm_sys.create_vm().map_err(kvm("create VM"))?;
        // Needed by Intel VMX for real-mode emulation; other hosts may refuse it harmlessly.
        let _ = vm.set_tss_address(0xfffb_d000);
        let host = ram
            .get_host_address(GuestAddress(0))
            .map_err(|e| VmError::Memory(format!("no host mapping: {e}")))?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            // Dirty logging lets checkpoints store only the pages written since the last one.
            flags: kvm_bindings::KVM_MEM_LOG_DIRTY_PAGES,
            guest_phys_addr: 0,
            memory_size: config.mem_bytes,
            userspace_addr: host as u64,
        };
        // SAFETY: the region is the whole of `ram`, which lives as long as the
        // VM (both are fields of the returned Machine, and the VM fd is dropped first).
        unsafe { vm.set_user_memory_region(region) }.map_err(kvm("set memory region"))?;

        let mut vcpu = vm.create_vcpu(0).map_err(kvm("create vCPU"))?;
        let table = cpuid::table();
        vcpu.set_cpuid2(&cpuid::to_kvm(&table)?)
            .map_err(kvm("set CPUID"))?;
        let debug = kvm_guest_debug {
            control: KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP,
            ..Default::default()
        };
        vcpu.set_guest_debug(&debug).map_err(kvm("enable single-step"))?;
        vcpu.set_sync_valid_reg(SyncReg::Register);
        vcpu.set_sync_valid_reg(SyncReg::SystemRegister);
        Ok(Machine {
            vm,
            vcpu,
            ram,
            clock: VClock::new(config.instr_per_us),
            rng: SeededRng::new(config.seed),
            devices: Devices {
                net: config.nic_mac.map(VirtioNet::new),
                ..Devices::default()
            },
            config,
            cpuid: table,
            icount: 0,
            halted: false,
            halt_start_ns: 0,
            irq_ready: false,
            finished: None,
            breakpoints: Vec::new(),
            breakpoint_hit: None,
            breakpoints_passed: None,
            events: Vec::new(),
            profile: HostProfile::detect(),
        })
    }

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

    /// The system registers as of the last step.
    pub fn sregs(&self) -> kvm_bindings::kvm_sregs {
        self.vcpu.sync_regs().sregs
    }

    /// Whether the guest is halted waiting for an interrupt.
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// Why the VM ended, if it has.
    pub fn finished(&self) -> Option<&Stop> {
        self.finished.as_ref()
    }

    /// Indices of the guest pages written since the last call (by the guest,
    /// through KVM's dirty log, or by the VMM, through the RAM bitmap), sorted.
    pub fn take_dirty_pages(&mut self) -> Result<Vec<u64>> {
        let size = self.config.mem_bytes as usize;
        let kvm_log = self.vm.get_dirty_log(0, size).map_err(kvm("get dirty log"))?;
        let mut pages = Vec::new();
        let host_log: Vec<u64> = self
            .ram
            .iter()
            .next()
            .map(|r| {
                let mapping: &vm_memory::MmapRegion<vm_memory::bitmap::AtomicBitmap> = r;
                mapping.bitmap().get_and_reset()
            })
            .unwrap_or_default();
        let words = kvm_log.len().max(host_log.len());
        for w in 0..words {
            let bits = kvm_log.get(w).copied().unwrap_or(0) | host_log.get(w).copied().unwrap_or(0);
            for b in 0..64 {
                if bits & (1 << b) != 0 {
                    let page = (w * 64 + b) as u64;
                    if page * memory::PAGE_SIZE < self.config.mem_bytes {
                        pages.push(page);
                    }
                }
            }
        }
        Ok(pages)
    }

    /// Copies guest page `index` into `buf`.
    pub fn read_page(&self, index: u64, buf: &mut [u8; 4096]) -> Result<()> {
        use vm_memory::Bytes;
        self.ram
            .read_slice(buf, GuestAddress(index * memory::PAGE_SIZE))
            .map_err(|e| VmError::Memory(format!("reading page {index}: {e}")))
    }

    /// For replay: a halted VM waits until virtual time `t` exactly as it did
    /// in the recording before an input arrived there (the same idle path,
    /// timer edges included). No effect on a running VM. An error if the VM
    /// wakes and executes an instruction on the way: the replay has diverged.
    pub fn idle_until(&mut self, t: u64) -> Result<()> {
        if !self.halted || self.clock.now_ns(self.icount) >= t {
            return Ok(());
        }
        let at = self.icount;
        self.run(RunLimit {
            icount: at + 1,
            vtime_ns: Some(t),
        })?;
        if self.icount != at {
            return Err(VmError::Unsupported(format!(
                "replay diverged: the VM woke and ran at icount {at} before virtual time {t} ns, where the recording delivered an input"
            )));
        }
        Ok(())
    }

    /// Builds a fresh VM from a state without memory and a separate RAM image
    /// (as checkpoints store them).
    pub fn from_parts(config: VmConfig, state: &crate::state::MachineState, ram: &[u8]) -> Result<Machine> {
        config.validate()?;
        let guest_ram = memory::create_ram(config.mem_bytes)?;
        let mut machine = Machine::with_ram(guest_ram, config)?;
        machine.restore_with_memory(state, ram)?;
        Ok(machine)
    }

    /// Sets the addresses `run` stops before (replacing any earlier set).
    /// Checked by the engine between steps, so a search for a breakpoint
    /// costs no more than plain execution.
    pub fn set_breakpoints(&mut self, addrs: &[u64]) {
        self.breakpoints = addrs.to_vec();
        // Standing on a breakpoint does not hit it: runs leave it first.
        self.breakpoints_passed = Some(self.icount);
    }

    /// The breakpoint the last `run` stopped before, if that is why it stopped.
    pub fn breakpoint_hit(&self) -> Option<u64> {
        self.breakpoint_hit
    }

    /// Virtual time of the next timer interrupt, if a timer is running.
    pub fn next_timer_ns(&self) -> Option<u64> {
        self.devices.pit.next_irq_ns()
    }

    /// Hands an Ethernet frame to the NIC now, before instruction `icount`.
    /// Returns false if the NIC had to drop it (no receive buffers and a full
    /// backlog). An error if the VM has no NIC.
    pub fn deliver_frame(&mut self, frame: &[u8]) -> Result<bool> {
        let Some(net) = &mut self.devices.net else {
            return Err(VmError::Config("this VM has no NIC to deliver a frame to".into()));
        };
        let outcome = net.receive(&self.ram, frame);
        self.devices.route_net_irq();
        self.push(EventKind::FrameReceived(frame.to_vec()));
        Ok(!matches!(outcome, RxOutcome::Dropped))
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

    fn push(&mut self, kind: EventKind) {
        let vtime_ns = self.clock.now_ns(self.icount);
        self.events.push(Event {
            icount: self.icount,
            vtime_ns,
            kind,
        });
    }

    /// Runs until the limit or until the guest stops for good.
    pub fn run(&mut self, limit: RunLimit) -> Result<Stop> {
        if let Some(stop) = &self.finished {
            return Ok(stop.clone());
        }
        self.breakpoint_hit = None;
        loop {
            if self.icount >= limit.icount {
                return Ok(Stop::Limit);
            }
            let now = self.clock.now_ns(self.icount);
            if limit.vtime_ns.is_some_and(|t| now >= t) {
                return Ok(Stop::Limit);
            }
            // Breakpoints stop before the instruction at them, except at the
            // position where they were set or last reported (so a search can
            // leave a breakpoint). Every other position is checked, also the
            // first of a run: callers split runs at inputs and chunks.
            if !self.breakpoints.is_empty() && self.breakpoints_passed != Some(self.icount) && !self.halted {
                let rip = self.vcpu.sync_regs().regs.rip;
                if self.breakpoints.contains(&rip) {
                    self.breakpoint_hit = Some(rip);
                    self.breakpoints_passed = Some(self.icount);
                    return Ok(Stop::Limit);
                }
            }
            self.deliver_timer(now);
            let outcome = if self.halted {
                match self.idle(limit.vtime_ns) {
                    // Woken: the interrupt is taken at once, as the loop's next
                    // round would, so that no stop (a breakpoint at the address
                    // after `hlt`, which is not what runs next) falls between
                    // the wake and the instruction it wakes for.
                    Ok(None) if !self.halted => {
                        self.deliver_timer(self.clock.now_ns(self.icount));
                        self.step()
                    }
                    other => other,
                }
            } else {
                self.step()
            };
            match outcome {
                Ok(None) => {}
                Ok(Some(Stop::Limit)) => return Ok(Stop::Limit),
                Ok(Some(stop)) => {
                    self.finished = Some(stop.clone());
                    return Ok(stop);
                }
                Err(e) => {
                    self.finished = Some(Stop::TripleFault);
                    return Err(e);
                }
            }
        }
    }

    /// Raises IRQ 0 for every PIT edge due by `now` (edges coalesce, as on hardware).
    fn deliver_timer(&mut self, now: u64) {
        if self.devices.pit.next_irq_ns().is_some_and(|t| t <= now) && self.devices.pit.take_irqs(now) > 0 {
            self.devices.pic.raise_irq(PIT_IRQ);
        }
    }

    /// The guest is halted: wake it if an interrupt can be delivered, or skip
    /// virtual time to the next timer edge.
    fn idle(&mut self, vlimit: Option<u64>) -> Result<Option<Stop>> {
        if self.regs().rflags & RFLAGS_IF == 0 {
            return Ok(Some(Stop::HaltedForever));
        }
        if self.irq_ready && self.devices.pic.has_pending() {
            self.halted = false;
            let idle_ns = self.clock.now_ns(self.icount).saturating_sub(self.halt_start_ns);
            self.push(EventKind::Wake { idle_ns });
            return Ok(None);
        }
        // With a NIC, a frame may come later: wait out the window instead.
        let can_be_woken_from_outside = self.devices.net.is_some();
        let Some(next) = self.devices.pit.next_irq_ns() else {
            return Ok(Some(match vlimit {
                Some(limit) if can_be_woken_from_outside => {
                    self.clock.skip_to(self.icount, limit);
                    Stop::Limit
                }
                _ => Stop::IdleForever,
            }));
        };
        if let Some(limit) = vlimit {
            if next >= limit {
                self.clock.skip_to(self.icount, limit);
                return Ok(Some(Stop::Limit));
            }
        }
        self.clock.skip_to(self.icount, next);
        self.deliver_timer(next);
        if !self.devices.pic.has_pending() && !can_be_woken_from_outside {
            // The only wake-up source fired into a masked line; it will keep
            // doing so, and nothing else can wake this VM.
            return Ok(Some(Stop::IdleForever));
        }
        Ok(None)
    }

    /// Executes one step: an interrupt delivery, an emulated instruction, or one KVM single-step.
    fn step(&mut self) -> Result<Option<Stop>> {
        let rflags = self.vcpu.sync_regs().regs.rflags;
        if self.irq_ready && rflags & RFLAGS_IF != 0 && self.devices.pic.has_pending() {
            if let Some(vector) = self.devices.pic.acknowledge() {
                self.inject(vector)?;
                self.push(EventKind::Interrupt(vector));
                return self.kvm_step();
            }
        }
        let rip = self.vcpu.sync_regs().regs.rip;
        let mut bytes = [0u8; 15];
        let n = self.read_virt(rip, &mut bytes);
        if n == 0 {
            // Let KVM raise the page fault the guest would get.
            return self.kvm_step();
        }
        let next = decode::peek(&bytes[..n], rip, self.bitness());
        match next.kind {
            NextInstr::PrivilegeReturn { cs_offset } => self.check_stays_in_ring0(cs_offset)?,
            NextInstr::Iretq => self.check_stays_in_ring0(Some(8))?,
            _ => {}
        }
        if !self.profile.must_emulate(next.kind) {
            if next.kind == NextInstr::Rdmsr && self.vcpu.sync_regs().regs.rcx & 0xffff_ffff == MSR_IA32_TSC {
                self.emulate_tsc(next.len, false);
                self.after_emulated();
                return Ok(None);
            }
            return self.kvm_step();
        }
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

    /// After an emulated instruction any interrupt shadow has passed, so
    /// readiness for an interrupt is just IF. (KVM's own flag is stale: it
    /// saw no instruction.)
    fn after_emulated(&mut self) {
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

    /// The step just completed was a `hlt`: idle from here until an interrupt.
    fn enter_halt(&mut self) {
        self.halted = true;
        self.halt_start_ns = self.clock.now_ns(self.icount);
        self.events.push(Event {
            icount: self.icount - 1,
            vtime_ns: self.clock.now_ns(self.icount - 1),
            kind: EventKind::Halt,
        });
    }

    fn inject(&mut self, vector: u8) -> Result<()> {
        let irq = kvm_interrupt { irq: vector as u32 };
        // SAFETY: KVM_INTERRUPT reads one kvm_interrupt from the pointer, which is valid.
        let ret = unsafe { vmm_sys_util::ioctl::ioctl_with_ref(&self.vcpu, KVM_INTERRUPT(), &irq) };
        if ret < 0 {
            return Err(VmError::Kvm {
                what: "inject interrupt",
                source: kvm_ioctls::Error::last(),
            });
        }
        Ok(())
    }

    /// Finishes an emulated instruction: RIP past it, one step counted.
    fn finish_emulated(&mut self, len: u64) {
        let r = &mut self.vcpu.sync_regs_mut().regs;
        r.rip = r.rip.wrapping_add(len);
        self.vcpu.set_sync_dirty_reg(SyncReg::Register);
        self.icount += 1;
    }

    fn emulate_tsc(&mut self, len: u64, with_aux: bool) {
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

    fn emulate_write_reg(&mut self, len: u64, reg: iced_x86::Register, value: u64, set_flags: u64) {
        let r = &mut self.vcpu.sync_regs_mut().regs;
        write_gpr(r, reg, value);
        if set_flags != 0 {
            r.rflags = (r.rflags & !RFLAGS_RAND_CLEAR) | set_flags;
        }
        self.finish_emulated(len);
    }

    fn emulate_cpuid(&mut self, len: u64) {
        let r = &mut self.vcpu.sync_regs_mut().regs;
        let out = cpuid::lookup(&self.cpuid, r.rax as u32, r.rcx as u32);
        r.rax = out[0] as u64;
        r.rbx = out[1] as u64;
        r.rcx = out[2] as u64;
        r.rdx = out[3] as u64;
        self.finish_emulated(len);
    }

    /// Runs the vCPU until the current instruction is complete, serving its
    /// I/O on the way.
    fn kvm_step(&mut self) -> Result<Option<Stop>> {
        let now = self.clock.now_ns(self.icount);
        let mut stop = None;
        let mut halted = false;
        loop {
            match self.vcpu.run() {
                Ok(VcpuExit::Debug(_)) => break,
                Ok(VcpuExit::IoOut(port, data)) => {
                    let mut copy = [0u8; 8];
                    let n = data.len().min(8);
                    copy[..n].copy_from_slice(&data[..n]);
                    match self.devices.port_write(port, &copy[..n], now) {
                        DebugAction::None => {}
                        DebugAction::Exit(v) => {
                            self.push(EventKind::Exit(v));
                            stop = Some(Stop::Exited(v));
                        }
                        DebugAction::Marker(name, value) => self.push(EventKind::Marker { name, value }),
                    }
                    break;
                }
                Ok(VcpuExit::IoIn(port, data)) => self.devices.port_read(port, data, now),
                Ok(VcpuExit::MmioRead(addr, data)) => self.devices.mmio_read(addr, data),
                Ok(VcpuExit::MmioWrite(addr, data)) => {
                    self.devices.mmio_write(&self.ram, addr, data);
                    break;
                }
                // Under single-step `hlt` normally completes as a plain step,
                // but `sti; hlt` comes back as one KVM_EXIT_HLT (measured):
                // the pair is one step, and the VM is now halted.
                Ok(VcpuExit::Hlt) => {
                    halted = true;
                    break;
                }
                Ok(VcpuExit::Shutdown) => {
                    stop = Some(Stop::TripleFault);
                    break;
                }
                Ok(VcpuExit::InternalError) => return Err(self.cannot_execute()),
                Ok(VcpuExit::Intr) => {}
                Ok(other) => {
                    let what = format!("{other:?}");
                    return Err(VmError::Unsupported(format!(
                        "unexpected KVM exit {what} at rip {:#x} (icount {})",
                        self.vcpu.sync_regs().regs.rip,
                        self.icount
                    )));
                }
                Err(e) if e.errno() == libc_eintr() || e.errno() == libc_eagain() => {}
                Err(e) => {
                    return Err(VmError::Kvm {
                        what: "KVM_RUN",
                        source: e,
                    })
                }
            }
        }
        for byte in self.devices.com1.take_output() {
            self.push(EventKind::Console(byte));
        }
        if let Some(net) = &mut self.devices.net {
            for frame in net.take_tx() {
                self.push(EventKind::FrameSent(frame));
            }
        }
        self.irq_ready = self.vcpu.get_kvm_run().ready_for_interrupt_injection != 0;
        self.icount += 1;
        if halted {
            // KVM marked the vCPU halted; the engine does the waiting itself,
            // and a vCPU left halted makes the host report the handler's
            // `iretq` as another hlt exit (measured). Make it runnable again.
            let runnable = kvm_bindings::kvm_mp_state {
                mp_state: kvm_bindings::KVM_MP_STATE_RUNNABLE,
            };
            self.vcpu.set_mp_state(runnable).map_err(kvm("set mp_state"))?;
            self.enter_halt();
        }
        if let Some(stop) = stop {
            return Ok(Some(stop));
        }
        let cs = self.vcpu.sync_regs().sregs.cs;
        if !self.profile.ring3_steppable && cs.selector & 3 != 0 {
            return Err(VmError::Unsupported(format!(
                "the guest entered ring {} at rip {:#x} (icount {}): this host cannot single-step \
                 ring-3 code, so its execution would not be recorded exactly. Fix: {GUEST_BUILD_ADVICE}",
                cs.selector & 3,
                self.vcpu.sync_regs().regs.rip,
                self.icount
            )));
        }
        Ok(None)
    }

    /// Refuses to run an `iret`/far `ret`/`sysret` that would enter ring 3.
    /// Checked before the instruction runs: on this host ring-3 code runs
    /// natively and may never give the engine an exit to notice it by.
    fn check_stays_in_ring0(&self, cs_offset: Option<u64>) -> Result<()> {
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
    fn cannot_execute(&self) -> VmError {
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

fn libc_eintr() -> i32 {
    4
}
fn libc_eagain() -> i32 {
    11
}

/// Writes `value` into the general register `reg` with x86 width rules:
/// 32-bit writes zero the upper half, 8/16-bit writes keep the rest.
fn write_gpr(r: &mut kvm_bindings::kvm_regs, reg: iced_x86::Register, value: u64) {
    use iced_x86::Register as R;
    let full = reg.full_register();
    let slot = match full {
        R::RAX => &mut r.rax,
        R::RBX => &mut r.rbx,
        R::RCX => &mut r.rcx,
        R::RDX => &mut r.rdx,
        R::RSI => &mut r.rsi,
        R::RDI => &mut r.rdi,
        R::RSP => &mut r.rsp,
        R::RBP => &mut r.rbp,
        R::R8 => &mut r.r8,
        R::R9 => &mut r.r9,
        R::R10 => &mut r.r10,
        R::R11 => &mut r.r11,
        R::R12 => &mut r.r12,
        R::R13 => &mut r.r13,
        R::R14 => &mut r.r14,
        R::R15 => &mut r.r15,
        _ => return,
    };
    *slot = match reg.size() {
        8 => value,
        4 => value & 0xffff_ffff,
        2 => (*slot & !0xffff) | (value & 0xffff),
        _ => (*slot & !0xff) | (value & 0xff),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_width_rules() {
        let mut r = kvm_bindings::kvm_regs {
            rax: u64::MAX,
            rcx: u64::MAX,
            ..Default::default()
        };
        write_gpr(&mut r, iced_x86::Register::EAX, 0x1_2345_6789);
        assert_eq!(r.rax, 0x2345_6789);
        write_gpr(&mut r, iced_x86::Register::CX, 0x1234);
        assert_eq!(r.rcx, 0xffff_ffff_ffff_1234);
        write_gpr(&mut r, iced_x86::Register::R9, 7);
        assert_eq!(r.r9, 7);
    }
}
