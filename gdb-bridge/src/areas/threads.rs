//! Threads: which one gdb reads (`Hg`) and resumes (`Hc`), the thread list
//! (`qfThreadInfo`), `T` (is it alive), `qC` and the text `info threads`
//! shows.

use vmrr_debugger::session::VmId;
use vmrr_debugger::vtime::format_ms;

use crate::proto::hex;
use crate::proto::packet::ThreadOp;
use crate::proto::reply::error;
use crate::proto::thread_id::ThreadId;
use crate::state::{lock, Target, Threads};

impl Target {
    /// `Hg`/`Hc`. "Any" keeps the current choice (gdb sends `Hgp0.0` after
    /// attaching and expects the thread of the attach to stay current).
    pub(crate) fn set_thread(&mut self, op: ThreadOp, id: ThreadId) -> String {
        let threads = match self.resolve(id) {
            Ok(t) => t,
            Err(e) => return error(&e),
        };
        match (op, threads) {
            (ThreadOp::General, Threads::One(vm)) => self.general = vm,
            (ThreadOp::General, Threads::Any) => {}
            (ThreadOp::General, Threads::All) => {
                return error("registers and memory belong to one thread: select one, not all")
            }
            (ThreadOp::Continue, Threads::One(vm)) => self.cont = Some(vm),
            (ThreadOp::Continue, Threads::Any | Threads::All) => self.cont = None,
        }
        "OK".into()
    }

    /// `T`: gdb asks before switching to a thread (`thread N`, `inferior
    /// N`), so the answer also makes that VM the session's focus (the other
    /// views follow gdb's selection).
    pub(crate) fn thread_alive(&mut self, id: ThreadId) -> String {
        match self.resolve(id) {
            Ok(Threads::One(vm)) => {
                self.selected = vm;
                let mut s = lock(&self.session);
                if s.focus() != vm {
                    let _ = s.set_focus(vm);
                }
                "OK".into()
            }
            Ok(_) => error("name one thread"),
            Err(e) => error(&e),
        }
    }

    /// `qC`: the thread of the last stop or `Hg`.
    pub(crate) fn current_thread(&self) -> String {
        format!("QC{}", self.thread_of(self.general))
    }

    /// `qfThreadInfo`: every attached VM's thread, in VM order (gdb numbers
    /// inferiors in the order it first sees them). A detached VM must not
    /// be listed, or gdb would add it again.
    pub(crate) fn thread_list(&self) -> String {
        let threads: Vec<String> = self.attached().into_iter().map(|vm| self.thread_of(vm)).collect();
        if threads.is_empty() {
            "l".into()
        } else {
            format!("m{}", threads.join(","))
        }
    }

    /// What `info threads` shows after the thread: the VM's name and where
    /// it stands.
    pub(crate) fn describe_vm(&self, vm: VmId) -> String {
        let name = self
            .vms
            .get(vm as usize)
            .map(|v| v.name.clone())
            .unwrap_or_default();
        let mut s = lock(&self.session);
        match s.position(vm) {
            Ok(p) => format!("{name}, icount {}, {}", p.icount, format_ms(p.vtime_ns)),
            Err(_) => name,
        }
    }

    /// `qThreadExtraInfo`.
    pub(crate) fn extra_info(&self, id: ThreadId) -> String {
        match self.resolve(id) {
            Ok(Threads::One(vm)) => hex::encode(self.describe_vm(vm).as_bytes()),
            Ok(_) => error("name one thread"),
            Err(e) => error(&e),
        }
    }
}
