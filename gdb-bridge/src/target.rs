//! The gdbstub target: one gdb thread per VM, registers and memory read from
//! the VM materialised at the session's cursor.
//!
//! The session is shared (the TUI may hold it too), so every request locks
//! it only for as long as it takes to answer.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use gdbstub::common::Tid;
use gdbstub::target::ext::base::multithread::{MultiThreadBase, MultiThreadResumeOps};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::BreakpointsOps;
use gdbstub::target::ext::monitor_cmd::MonitorCmdOps;
use gdbstub::target::ext::thread_extra_info::{ThreadExtraInfo, ThreadExtraInfoOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use vmrr_debugger::session::{Session, SessionError, VmId};

use crate::arch::{Regs, VmrrX86_64};
use crate::breakpoints::PointTable;
use crate::packets::ClientView;
use crate::resume::ResumeState;
use crate::Logger;

/// `EFAULT`: what gdb gets for memory it cannot access.
const EFAULT: u8 = 14;

/// Locks the session, also after a panic elsewhere poisoned the lock (the
/// session itself stays consistent: every move sets all of its fields).
pub(crate) fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The gdb thread of VM `vm`.
pub(crate) fn tid_of(vm: VmId) -> Tid {
    Tid::MIN.saturating_add(vm as usize)
}

/// Whether `addr` is a canonical 48-bit x86-64 address.
fn canonical(addr: u64) -> bool {
    let top = (addr as i64) >> 47;
    top == 0 || top == -1
}

/// The state of one gdb connection over a shared session.
pub(crate) struct VmrrTarget {
    /// The session, shared with other views.
    pub(crate) session: Arc<Mutex<Session>>,
    /// Number of VMs (gdb threads 1..=vm_count).
    pub(crate) vm_count: usize,
    /// What gdb said about threads.
    pub(crate) client: ClientView,
    /// gdb's breakpoints and watchpoints, as set in the session.
    pub(crate) points: PointTable,
    /// The resume request being decoded or waiting to run.
    pub(crate) resume: ResumeState,
    /// VMs whose materialised memory gdb changed.
    pub(crate) written: BTreeSet<VmId>,
    /// The thread gdbstub reads registers and memory of (the last `Hg`, or
    /// the thread of the last stop), restored if the stub is rebuilt.
    pub(crate) general: Option<Tid>,
    /// The thread selected in gdb, as far as gdb tells: the thread of the
    /// last stop, or the last `thread N` (see `packets::Noted::Selected`).
    pub(crate) selected: Tid,
    /// Where messages for the person running the server go.
    pub(crate) log: Logger,
}

impl VmrrTarget {
    /// A target over `session`.
    pub(crate) fn new(session: Arc<Mutex<Session>>, log: Logger) -> VmrrTarget {
        let (vm_count, focus) = {
            let s = lock(&session);
            (s.vm_count(), s.focus())
        };
        VmrrTarget {
            session,
            vm_count,
            client: ClientView::default(),
            points: PointTable::default(),
            resume: ResumeState::default(),
            written: BTreeSet::new(),
            general: None,
            selected: tid_of(focus),
            log,
        }
    }

    /// The VM of gdb thread `tid`, if there is one.
    pub(crate) fn vm_of(&self, tid: Tid) -> Option<VmId> {
        let vm = tid.get() - 1;
        (vm < self.vm_count).then_some(vm as VmId)
    }

    /// The VM of `tid`, or a non-fatal error for gdb.
    fn vm_or_err(&self, tid: Tid) -> TargetResult<VmId, Self> {
        self.vm_of(tid).ok_or(TargetError::NonFatal)
    }

    /// Reports a session error to the server's log and turns it into a
    /// non-fatal error for gdb (the next request may well succeed).
    fn fail(&self, what: &str, e: SessionError) -> TargetError<String> {
        (self.log)(&format!("{what}: {e}"));
        TargetError::NonFatal
    }

    /// The user selected `tid` in gdb (`thread N`): it becomes the
    /// session's focus, so that other views and "any thread" resumes follow.
    pub(crate) fn select(&mut self, tid: Tid) {
        if let Some(vm) = self.vm_of(tid) {
            self.selected = tid;
            let mut s = lock(&self.session);
            if s.focus() != vm {
                let _ = s.set_focus(vm);
            }
        }
    }

    /// Brings every VM gdb wrote to back to its recorded memory: a step away
    /// and back restores it from the nearest snapshot, which rewrites every
    /// page the live copy changed. Called before anything moves the cursor,
    /// so replay never runs on memory the recording did not have.
    pub(crate) fn discard_writes(&mut self, s: &mut Session) {
        for vm in std::mem::take(&mut self.written) {
            let outcome = (|| -> Result<(), SessionError> {
                let here = s.position(vm)?.icount;
                let end = s.end_icount(vm);
                let away = if here > 0 { here - 1 } else { end.min(1) };
                if away != here {
                    s.goto(vm, away)?;
                    s.goto(vm, here)?;
                }
                Ok(())
            })();
            if let Err(e) = outcome {
                (self.log)(&format!("restoring the recorded memory of VM {vm}: {e}"));
            }
        }
    }

    /// Removes everything this connection added to the session.
    pub(crate) fn cleanup(&mut self) {
        let session = self.session.clone();
        let mut s = lock(&session);
        self.points.clear(&mut s);
        self.discard_writes(&mut s);
    }
}

impl Target for VmrrTarget {
    type Arch = VmrrX86_64;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    /// Breakpoints are compared with RIP by the engine: gdb must never write
    /// `int3` into guest memory (the recording would no longer replay).
    fn guard_rail_implicit_sw_breakpoints(&self) -> bool {
        false
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadBase for VmrrTarget {
    fn read_registers(&mut self, regs: &mut Regs, tid: Tid) -> TargetResult<(), Self> {
        let vm = self.vm_or_err(tid)?;
        let mut s = lock(&self.session);
        let m = s.machine(vm).map_err(|e| self.fail("reading registers", e))?;
        *regs = Regs::from_kvm(&m.regs(), &m.sregs());
        Ok(())
    }

    /// The registers are those of the recording; gdb may change memory of
    /// the materialised copy but not the vCPU state.
    fn write_registers(&mut self, _regs: &Regs, _tid: Tid) -> TargetResult<(), Self> {
        Err(TargetError::NonFatal)
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        let vm = self.vm_or_err(tid)?;
        if data.is_empty() {
            return Ok(0);
        }
        if !canonical(start) {
            return Err(TargetError::Errno(EFAULT));
        }
        let mut s = lock(&self.session);
        let m = s.machine(vm).map_err(|e| self.fail("reading memory", e))?;
        match m.read_virt(start, data) {
            0 => Err(TargetError::Errno(EFAULT)),
            n => Ok(n),
        }
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        let vm = self.vm_or_err(tid)?;
        if !canonical(start) {
            return Err(TargetError::Errno(EFAULT));
        }
        let session = self.session.clone();
        let mut s = lock(&session);
        let m = s.machine_mut(vm).map_err(|e| self.fail("writing memory", e))?;
        let n = m.write_virt(start, data);
        if n > 0 {
            self.written.insert(vm);
        }
        if n < data.len() {
            return Err(TargetError::Errno(EFAULT));
        }
        Ok(())
    }

    /// VMs in index order, so that gdb numbers its threads like vmrr does
    /// (thread N is VM N-1).
    fn list_active_threads(&mut self, register_thread: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        (0..self.vm_count).for_each(|vm| register_thread(tid_of(vm as VmId)));
        Ok(())
    }

    fn is_thread_alive(&mut self, tid: Tid) -> Result<bool, Self::Error> {
        Ok(self.vm_of(tid).is_some())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }

    fn support_thread_extra_info(&mut self) -> Option<ThreadExtraInfoOps<'_, Self>> {
        Some(self)
    }
}

impl ThreadExtraInfo for VmrrTarget {
    /// `info threads` shows the VM's name and where it stands.
    fn thread_extra_info(&self, tid: Tid, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let Some(vm) = self.vm_of(tid) else {
            return Ok(0);
        };
        let mut s = lock(&self.session);
        let name = s.vm_name(vm).to_string();
        let text = match s.position(vm) {
            Ok(p) => format!(
                "{name}, icount {}, {}",
                p.icount,
                vmrr_debugger::vtime::format_ms(p.vtime_ns)
            ),
            Err(_) => name,
        };
        let n = text.len().min(buf.len());
        buf[..n].copy_from_slice(&text.as_bytes()[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_threads() {
        assert!(canonical(0x10_0000));
        assert!(canonical(0xffff_8000_0000_0000));
        assert!(!canonical(0x0000_8000_0000_0000));
        assert!(!canonical(u64::MAX - (1 << 50)));
        assert_eq!(tid_of(0).get(), 1);
        assert_eq!(tid_of(2).get(), 3);
    }
}
