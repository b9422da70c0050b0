//! Making a VM: opening KVM, memory slot, vCPU, CPUID, single-stepping on;
//! then either loading an image or restoring a captured state.

use std::path::Path;

use kvm_bindings::{
    kvm_guest_debug, kvm_userspace_memory_region, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP,
};
use kvm_ioctls::{Cap, Kvm, SyncReg};
use vm_memory::{GuestAddress, GuestMemoryBackend};

use super::state::MachineState;
use super::Machine;
use crate::boot;
use crate::config::VmConfig;
use crate::cpuid;
use crate::devices::virtio_net::VirtioNet;
use crate::devices::Devices;
use crate::error::{guest_memory, kvm, Result, VmError};
use crate::memory::{self, GuestRam};
use crate::quirks::HostProfile;
use crate::rng::SeededRng;
use crate::vclock::VClock;

/// Opens `/dev/kvm`, turning the usual failures into advice.
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
    pub fn from_state(config: VmConfig, state: &MachineState) -> Result<Machine> {
        config.validate()?;
        let ram = memory::create_ram(config.mem_bytes)?;
        let mut machine = Machine::with_ram(ram, config)?;
        machine.restore(state)?;
        Ok(machine)
    }

    /// Builds a fresh VM from a state without memory and a separate RAM image
    /// (as checkpoints store them).
    pub fn from_parts(config: VmConfig, state: &MachineState, ram: &[u8]) -> Result<Machine> {
        config.validate()?;
        let guest_ram = memory::create_ram(config.mem_bytes)?;
        let mut machine = Machine::with_ram(guest_ram, config)?;
        machine.restore_with_memory(state, ram)?;
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
            .map_err(guest_memory("no host mapping"))?;
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
            log: Default::default(),
        })
    }
}
