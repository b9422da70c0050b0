//! The speed floor the engine is measured against: a bare KVM single-step
//! loop with registers read through `KVM_CAP_SYNC_REGS`, doing nothing else.
//!
//! Benchmarks run it on the same guest, in the same process, right before the
//! engine, and report the engine's rate as a ratio of this one.

use std::time::Instant;

use kvm_ioctls::VcpuExit;

use crate::error::{Result, VmError};
use crate::machine::Machine;

/// Result of one floor run.
#[derive(Debug, Clone, Copy)]
pub struct FloorRun {
    /// Single-step exits taken.
    pub steps: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl FloorRun {
    /// Steps per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.steps as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Single-steps `vm` `steps` times with nothing but `KVM_RUN` and a read of
/// RIP from the sync-regs area (port reads answer 0xff; writes are ignored).
/// The VM is consumed in the sense that its engine bookkeeping is now stale:
/// use a fresh Machine afterwards.
pub fn bare_single_steps(vm: &mut Machine, steps: u64) -> Result<FloorRun> {
    // Bare means general registers only: the engine also syncs the system
    // registers every step, and that cost belongs to the engine's side.
    vm.vcpu.clear_sync_valid_reg(kvm_ioctls::SyncReg::SystemRegister);
    let started = Instant::now();
    let mut done = 0;
    let mut checksum = 0u64;
    while done < steps {
        match vm.vcpu.run() {
            Ok(VcpuExit::Debug(_)) | Ok(VcpuExit::IoOut(..)) | Ok(VcpuExit::MmioWrite(..)) => done += 1,
            Ok(VcpuExit::IoIn(_, data)) | Ok(VcpuExit::MmioRead(_, data)) => data.fill(0xff),
            Ok(VcpuExit::Intr) => {}
            Ok(other) => {
                return Err(VmError::Unsupported(format!(
                    "floor loop: unexpected exit {other:?}"
                )))
            }
            Err(e) if e.errno() == 4 || e.errno() == 11 => {}
            Err(e) => {
                return Err(VmError::Kvm {
                    what: "KVM_RUN",
                    source: e,
                })
            }
        }
        // Read what the engine reads each step, so the floor pays for it too.
        checksum = checksum.wrapping_add(vm.vcpu.sync_regs_mut().regs.rip);
    }
    std::hint::black_box(checksum);
    Ok(FloorRun {
        steps: done,
        seconds: started.elapsed().as_secs_f64(),
    })
}
