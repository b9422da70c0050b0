//! Capture and restore of a whole VM, guest pages and the dirty log for
//! incremental checkpoints, and the state hash that proves two executions
//! reached the same point.
//!
//! The snapshot types live beside the impl that fills them: a restore has to
//! set every field of [`Machine`], so the two change together. The crate
//! re-exports this module as `vmrr_backend::state`.

use kvm_bindings::{
    kvm_debugregs, kvm_msr_entry, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave, Msrs,
};
use kvm_ioctls::SyncReg;
use serde::{Deserialize, Serialize};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::{Machine, Stop};
use crate::devices::{Devices, DevicesState};
use crate::error::{guest_memory, kvm, Result, VmError};
use crate::memory;
use crate::regs::RFLAGS_HOST_BITS;
use crate::rng::SeededRng;
use crate::vclock::VClock;

/// Guest pages written since the dirty log was last read, by writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirtyPages {
    /// Written by the guest's instructions or the CPU itself (KVM's log).
    pub guest: Vec<u64>,
    /// Written by the VMM's devices (virtio DMA, the loader).
    pub vmm: Vec<u64>,
}

/// MSRs that carry guest state (the TSC is virtual and not among them).
const SAVED_MSRS: [u32; 13] = [
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0083, // CSTAR
    0xc000_0084, // SFMASK
    0xc000_0100, // FS_BASE
    0xc000_0101, // GS_BASE
    0xc000_0102, // KERNEL_GS_BASE
    0xc000_0103, // TSC_AUX
    0x277,       // PAT
    0x174,       // SYSENTER_CS
    0x175,       // SYSENTER_ESP
    0x176,       // SYSENTER_EIP
    0xc000_0080, // EFER (also in sregs; kept for completeness)
];

/// Everything of the vCPU that KVM holds.
#[derive(Serialize, Deserialize)]
pub struct VcpuState {
    /// General registers, RIP, RFLAGS.
    pub regs: kvm_regs,
    /// Segments, control registers, descriptor tables.
    pub sregs: kvm_sregs,
    /// FPU/SSE state.
    pub xsave: kvm_xsave,
    /// Extended control registers.
    pub xcrs: kvm_xcrs,
    /// The MSRs of [`SAVED_MSRS`].
    pub msrs: Vec<kvm_msr_entry>,
    /// Pending exceptions, interrupt shadow, NMI state.
    pub events: kvm_vcpu_events,
    /// Debug registers.
    pub debugregs: kvm_debugregs,
}

/// A complete snapshot of one VM between two steps.
#[derive(Serialize, Deserialize)]
pub struct MachineState {
    /// Steps executed.
    pub icount: u64,
    /// Virtual clock.
    pub clock: VClock,
    /// `rdrand` generator.
    pub rng: SeededRng,
    /// Halted waiting for an interrupt.
    pub halted: bool,
    /// When the current halt began.
    pub halt_start_ns: u64,
    /// KVM's interrupt readiness from the last real exit.
    pub irq_ready: bool,
    /// Why the VM ended, if it has.
    pub finished: Option<Stop>,
    /// The vCPU.
    pub vcpu: VcpuState,
    /// The devices.
    pub devices: DevicesState,
    /// All of guest RAM.
    pub memory: Vec<u8>,
}

impl Machine {
    /// Captures the whole VM, all of RAM included. Call between steps (any
    /// time `run` has returned).
    pub fn capture(&mut self) -> Result<MachineState> {
        let mut state = self.capture_core()?;
        let size = memory::ram_size(&self.ram) as usize;
        state.memory = vec![0u8; size];
        self.ram
            .read_slice(&mut state.memory, GuestAddress(0))
            .map_err(guest_memory("reading RAM"))?;
        Ok(state)
    }

    /// Captures everything but RAM (`memory` is left empty): what a
    /// checkpoint stores besides its changed pages.
    pub fn capture_core(&mut self) -> Result<MachineState> {
        let sync = self.vcpu.sync_regs();
        let mut msrs = Msrs::from_entries(
            &SAVED_MSRS
                .iter()
                .map(|&index| kvm_msr_entry {
                    index,
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        )
        .map_err(|source| VmError::KvmList {
            context: "guest memory: MSR list",
            source,
        })?;
        let n = self.vcpu.get_msrs(&mut msrs).map_err(kvm("get MSRs"))?;
        let vcpu = VcpuState {
            // The engine's copies: they include emulated steps not yet pushed to KVM.
            regs: sync.regs,
            sregs: sync.sregs,
            xsave: self.vcpu.get_xsave().map_err(kvm("get xsave"))?,
            xcrs: self.vcpu.get_xcrs().map_err(kvm("get xcrs"))?,
            msrs: msrs.as_slice()[..n].to_vec(),
            events: self.vcpu.get_vcpu_events().map_err(kvm("get vcpu events"))?,
            debugregs: self.vcpu.get_debug_regs().map_err(kvm("get debug regs"))?,
        };
        Ok(MachineState {
            icount: self.icount,
            clock: self.clock,
            rng: self.rng,
            halted: self.halted,
            halt_start_ns: self.halt_start_ns,
            irq_ready: self.irq_ready,
            finished: self.finished.clone(),
            vcpu,
            devices: self.devices.state(),
            memory: Vec::new(),
        })
    }

    /// Puts the VM back exactly as `state` was captured; running on then gives
    /// the same execution as the original did from that point.
    pub fn restore(&mut self, state: &MachineState) -> Result<()> {
        self.restore_with_memory(state, &state.memory)
    }

    /// Restores `state` (whose own `memory` is ignored) with RAM contents `ram`.
    pub fn restore_with_memory(&mut self, state: &MachineState, ram: &[u8]) -> Result<()> {
        if ram.len() as u64 != memory::ram_size(&self.ram) {
            return Err(VmError::Restore(format!(
                "snapshot has {} bytes of RAM, this VM {}",
                ram.len(),
                memory::ram_size(&self.ram)
            )));
        }
        self.restore_core(state)?;
        self.ram
            .write_slice(ram, GuestAddress(0))
            .map_err(guest_memory("writing RAM"))?;
        // The restore itself is not a change since this state.
        self.take_dirty_pages()?;
        Ok(())
    }

    /// Restores everything of `state` but RAM (for callers that put the right
    /// pages back themselves, e.g. by rewriting only the pages that changed).
    pub fn restore_core(&mut self, state: &MachineState) -> Result<()> {
        let v = &state.vcpu;
        self.vcpu.set_sregs(&v.sregs).map_err(kvm("set sregs"))?;
        self.vcpu.set_regs(&v.regs).map_err(kvm("set regs"))?;
        // SAFETY: the xsave area was produced by KVM_GET_XSAVE for a vCPU with the same CPUID.
        unsafe { self.vcpu.set_xsave(&v.xsave) }.map_err(kvm("set xsave"))?;
        self.vcpu.set_xcrs(&v.xcrs).map_err(kvm("set xcrs"))?;
        let msrs = Msrs::from_entries(&v.msrs).map_err(|source| VmError::KvmList {
            context: "cannot restore state: MSR list",
            source,
        })?;
        self.vcpu.set_msrs(&msrs).map_err(kvm("set MSRs"))?;
        self.vcpu
            .set_vcpu_events(&v.events)
            .map_err(kvm("set vcpu events"))?;
        self.vcpu
            .set_debug_regs(&v.debugregs)
            .map_err(kvm("set debug regs"))?;
        let sync = self.vcpu.sync_regs_mut();
        sync.regs = v.regs;
        sync.sregs = v.sregs;
        self.vcpu.clear_sync_dirty_reg(SyncReg::Register);
        self.devices = Devices::from_state(&state.devices);
        self.icount = state.icount;
        self.clock = state.clock;
        self.rng = state.rng;
        self.halted = state.halted;
        self.halt_start_ns = state.halt_start_ns;
        self.irq_ready = state.irq_ready;
        self.finished = state.finished.clone();
        self.take_events();
        Ok(())
    }

    /// Indices of the guest pages written since the last call (by the guest,
    /// through KVM's dirty log, or by the VMM, through the RAM bitmap), sorted.
    pub fn take_dirty_pages(&mut self) -> Result<Vec<u64>> {
        let dirty = self.take_dirty_pages_by_writer()?;
        let mut pages = dirty.guest;
        pages.extend(dirty.vmm);
        pages.sort_unstable();
        pages.dedup();
        Ok(pages)
    }

    /// The guest pages written since the last call, by who wrote them: the
    /// guest's own instructions and the CPU (KVM's dirty log), and the VMM's
    /// devices (the RAM bitmap). Each list sorted.
    pub fn take_dirty_pages_by_writer(&mut self) -> Result<DirtyPages> {
        let size = self.config.mem_bytes as usize;
        let kvm_log = self.vm.get_dirty_log(0, size).map_err(kvm("get dirty log"))?;
        let host_log: Vec<u64> = self
            .ram
            .iter()
            .next()
            .map(|r| {
                let mapping: &vm_memory::MmapRegion<vm_memory::bitmap::AtomicBitmap> = r;
                mapping.bitmap().get_and_reset()
            })
            .unwrap_or_default();
        let mem_bytes = self.config.mem_bytes;
        let pages = |words: &[u64]| -> Vec<u64> {
            let mut out = Vec::new();
            for (w, &bits) in words.iter().enumerate() {
                for b in 0..64 {
                    let page = (w * 64 + b) as u64;
                    if bits & (1 << b) != 0 && page * memory::PAGE_SIZE < mem_bytes {
                        out.push(page);
                    }
                }
            }
            out
        };
        Ok(DirtyPages {
            guest: pages(&kvm_log),
            vmm: pages(&host_log),
        })
    }

    /// Copies guest page `index` into `buf`.
    pub fn read_page(&self, index: u64, buf: &mut [u8; 4096]) -> Result<()> {
        self.ram
            .read_slice(buf, GuestAddress(index * memory::PAGE_SIZE))
            .map_err(guest_memory(format!("reading page {index}")))
    }

    /// Overwrites guest page `index` with `page` (4096 bytes).
    pub fn write_page(&mut self, index: u64, page: &[u8]) -> Result<()> {
        self.ram
            .write_slice(page, GuestAddress(index * memory::PAGE_SIZE))
            .map_err(guest_memory(format!("writing page {index}")))
    }

    /// A blake3 hash of everything the guest can observe: registers, system
    /// registers, devices, clock, generator, and all of RAM. Two executions
    /// with equal hashes are at the same point.
    pub fn state_hash(&self) -> Result<[u8; 32]> {
        let mut h = blake3::Hasher::new();
        h.update(&self.engine_state()?);
        let size = memory::ram_size(&self.ram);
        let mut chunk = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < size {
            let n = chunk.len().min((size - at) as usize);
            self.ram
                .read_slice(&mut chunk[..n], GuestAddress(at))
                .map_err(guest_memory("hashing RAM"))?;
            h.update(&chunk[..n]);
            at += n as u64;
        }
        Ok(*h.finalize().as_bytes())
    }
}

impl Machine {
    /// Everything the guest can observe but RAM, as bytes: what both state
    /// hashes start with. (RFLAGS' TF and RF belong to the host debugger.)
    pub fn engine_state(&self) -> Result<Vec<u8>> {
        let sync = self.vcpu.sync_regs();
        let mut regs = sync.regs;
        regs.rflags &= !RFLAGS_HOST_BITS;
        let engine = (
            self.icount,
            self.clock,
            self.rng,
            self.halted,
            self.irq_ready,
            &regs,
            &sync.sregs,
            self.devices.state(),
        );
        serde_json::to_vec(&engine).map_err(|source| VmError::HashState { source })
    }

    /// The hash of the same state as [`Machine::state_hash`], computed from
    /// RAM page by page (see [`paged_state_hash`]): what a checkpoint
    /// records, since the recorder knows every page's hash already and need
    /// not read RAM again.
    pub fn paged_state_hash(&self) -> Result<[u8; 32]> {
        let size = memory::ram_size(&self.ram);
        let mut page = [0u8; memory::PAGE_SIZE as usize];
        let mut pages = Vec::new();
        let mut at = 0u64;
        while at < size {
            self.ram
                .read_slice(&mut page, GuestAddress(at))
                .map_err(guest_memory("hashing RAM"))?;
            if page.iter().any(|&b| b != 0) {
                pages.push((at / memory::PAGE_SIZE, blake3::hash(&page).to_hex().to_string()));
            }
            at += memory::PAGE_SIZE;
        }
        Ok(paged_state_hash(
            &self.engine_state()?,
            pages.iter().map(|(i, h)| (*i, h.as_str())),
        ))
    }
}

/// A state hash from the engine's state and, in page order, the index and
/// blake3 (hex) of every page of RAM that is not all zeros.
pub fn paged_state_hash<'a>(engine: &[u8], pages: impl Iterator<Item = (u64, &'a str)>) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(engine);
    for (index, hash) in pages {
        h.update(&index.to_le_bytes());
        h.update(hash.as_bytes());
    }
    *h.finalize().as_bytes()
}

/// Lower-case hex of a hash, for printing and comparing.
pub fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
