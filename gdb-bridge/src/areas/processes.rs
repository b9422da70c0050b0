//! Processes: gdb detaches from VMs (`detach`, and on quitting), "kills"
//! them (a recording cannot be killed: the VM only leaves gdb's view), and
//! attaches to them again. Nothing can be started (`run`).

use vmrr_debugger::session::VmId;

use crate::proto::reply::{error, Reason, StopReply, SIGTRAP};
use crate::state::{lock, pid_of, Target};

impl Target {
    /// Takes `vm` out of gdb's view: its points leave the session and its
    /// pending stops are forgotten.
    fn drop_vm(&mut self, vm: VmId) {
        let session = self.session.clone();
        self.points.clear_vm(&mut lock(&session), vm);
        self.pending.retain(|h| h.pos.vm != vm);
        self.vms[vm as usize].attached = false;
    }

    /// The attached VM of process `pid`, or the error reply.
    fn attached_vm(&self, pid: u64) -> Result<VmId, String> {
        match self.vm_of_pid(pid) {
            Some(vm) if self.vms[vm as usize].attached => Ok(vm),
            Some(vm) => Err(error(&format!("{} is not attached", self.label(vm)))),
            None => Err(error(&format!("no process {pid:x} in this trace"))),
        }
    }

    /// `D` (every VM) or `D;PID`.
    pub(crate) fn detach(&mut self, pid: Option<u64>) -> String {
        match pid {
            None => {
                for vm in self.attached() {
                    self.drop_vm(vm);
                }
            }
            Some(pid) => match self.attached_vm(pid) {
                Ok(vm) => self.drop_vm(vm),
                Err(reply) => return reply,
            },
        }
        "OK".into()
    }

    /// `vKill;PID`: the same as detaching (the recording stays as it is).
    pub(crate) fn kill(&mut self, pid: u64) -> String {
        self.detach(Some(pid))
    }

    /// `vAttach;PID`: the VM comes back into gdb's view, standing where the
    /// cursor puts it.
    pub(crate) fn attach(&mut self, pid: u64) -> String {
        let Some(vm) = self.vm_of_pid(pid) else {
            return error(&format!("no process {pid:x} in this trace"));
        };
        if self.vms[vm as usize].attached {
            return error(&format!("{} is attached already", self.label(vm)));
        }
        self.vms[vm as usize].attached = true;
        self.general = vm;
        StopReply {
            signal: SIGTRAP,
            pid: pid_of(vm),
            tid: 1,
            reason: Reason::Signal,
        }
        .format(self.multiprocess)
    }

    /// `vRun`: refused.
    pub(crate) fn refuse_run(&self) -> String {
        error(
            "vmrr serves a recording: nothing can be started. `monitor goto start` goes to its beginning; \
             `vmrr record` makes a new recording",
        )
    }
}
