//! One step executed by KVM: run the vCPU until the instruction is complete,
//! serve the port and MMIO I/O it does on the way, and collect what the
//! devices produced. Also the interrupt injection that precedes such a step.

use kvm_bindings::kvm_interrupt;
use kvm_ioctls::VcpuExit;

use super::{Machine, Stop};
use crate::devices::debug_port::DebugAction;
use crate::error::{kvm, Result, VmError};
use crate::events::EventKind;
use crate::quirks::GUEST_BUILD_ADVICE;

vmm_sys_util::ioctl_iow_nr!(KVM_INTERRUPT, kvm_bindings::KVMIO, 0x86, kvm_interrupt);

/// `EINTR`: a signal interrupted `KVM_RUN`; run again.
const EINTR: i32 = 4;
/// `EAGAIN`: `KVM_RUN` asks to be retried.
const EAGAIN: i32 = 11;

impl Machine {
    /// Queues interrupt `vector` for the vCPU; the next KVM step delivers it.
    pub(super) fn inject(&mut self, vector: u8) -> Result<()> {
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

    /// Runs the vCPU until the current instruction is complete, serving its
    /// I/O on the way.
    pub(super) fn kvm_step(&mut self) -> Result<Option<Stop>> {
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
                Err(e) if e.errno() == EINTR || e.errno() == EAGAIN => {}
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
}
