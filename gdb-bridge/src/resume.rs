//! Resuming: what gdb's `vCont`, `bs` and `bc` mean for a cluster, running
//! it on the session, and the stop gdb is told about.
//!
//! * A step (`stepi` forward or back) moves one VM by one instruction; the
//!   cursor follows it and the other VMs stand at its virtual time.
//! * A continue covers the VMs gdb resumes: all of them (gdb's default) is
//!   the whole cluster, and the first hit in virtual time wins; one thread
//!   (`set scheduler-locking on`) is that VM alone.
//! * `bs`/`bc` carry no thread. gdb names one with `Hc` only when it
//!   resumes a single thread (scheduler locking); otherwise ("any thread")
//!   `bs` steps the thread selected in gdb as far as gdb says: the thread of
//!   the last stop, or of the last `thread N` (see `packets::Noted`).

use std::sync::Mutex;

use gdbstub::common::{Signal, Tid};
use gdbstub::stub::MultiThreadStopReason;
use gdbstub::target::ext::base::multithread::{
    MultiThreadResume, MultiThreadSchedulerLocking, MultiThreadSchedulerLockingOps, MultiThreadSingleStep,
    MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::reverse_exec::{
    ReplayLogPosition, ReverseCont, ReverseContOps, ReverseStep, ReverseStepOps,
};
use gdbstub::target::ext::breakpoints::WatchKind as GdbWatchKind;
use vmrr_debugger::session::{Direction, Hit, HitKind, Scope, Session, StopReason, VmId, WatchKind};

use crate::breakpoints::BreakKind;
use crate::packets::ThreadRef;
use crate::target::{lock, tid_of, VmrrTarget};

/// A resume gdb asked for, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// One instruction of one VM.
    Step {
        /// The VM.
        vm: VmId,
        /// Which way.
        dir: Direction,
    },
    /// Until a breakpoint or watchpoint hit, or an end of the trace.
    Continue {
        /// The VMs searched.
        scope: Scope,
        /// Which way.
        dir: Direction,
    },
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The step was made.
    Stepped {
        /// The VM stepped.
        vm: VmId,
    },
    /// A breakpoint or watchpoint was hit (the cursor is there).
    Hit(Hit),
    /// The trace ends this way (the cursor stands at that end).
    End {
        /// The VM gdb is told about.
        vm: VmId,
        /// Which end.
        dir: Direction,
    },
    /// gdb interrupted the search; the cursor did not move.
    Cancelled {
        /// The VM gdb is told about.
        vm: VmId,
    },
    /// The session failed; the message is for the user.
    Failed {
        /// The VM gdb is told about.
        vm: VmId,
        /// What went wrong.
        message: String,
    },
}

/// The actions of one `vCont` packet, collected until gdbstub calls `resume`.
#[derive(Debug, Default)]
pub struct ResumeState {
    steps: Vec<Tid>,
    continues: Vec<Tid>,
    locked: bool,
    /// The decoded request, taken by the server once gdbstub is waiting for
    /// a stop.
    pending: Option<Request>,
}

impl ResumeState {
    /// The request waiting to run, if any.
    pub fn take_pending(&mut self) -> Option<Request> {
        self.pending.take()
    }
}

/// Runs `request` on the session. Holds the lock for the whole move (the
/// move must not interleave with another view's); `progress` gets the
/// fraction of a continue's search done.
pub fn execute(session: &Mutex<Session>, request: Request, progress: &(dyn Fn(f64) + Sync)) -> Outcome {
    let mut s = lock(session);
    let focus = s.focus();
    let failed = |vm: VmId, e: vmrr_debugger::session::SessionError| Outcome::Failed {
        vm,
        message: e.to_string(),
    };
    match request {
        Request::Step { vm, dir } => {
            if focus != vm {
                if let Err(e) = s.set_focus(vm) {
                    return failed(focus, e);
                }
            }
            match s.step(vm, dir) {
                Ok(Some(_)) => Outcome::Stepped { vm },
                Ok(None) => Outcome::End { vm, dir },
                Err(e) => failed(vm, e),
            }
        }
        Request::Continue { scope, dir } => {
            if let Scope::Vm(vm) = scope {
                if focus != vm {
                    if let Err(e) = s.set_focus(vm) {
                        return failed(focus, e);
                    }
                }
            }
            match s.continue_(scope, dir, progress) {
                Ok(StopReason::Hit(hit)) => Outcome::Hit(hit),
                Ok(StopReason::EndOfHistory(dir)) => Outcome::End { vm: s.focus(), dir },
                Ok(StopReason::Cancelled) => Outcome::Cancelled { vm: s.focus() },
                Err(e) => failed(s.focus(), e),
            }
        }
    }
}

impl VmrrTarget {
    /// The VM that "any thread" means: the focus.
    fn focus(&self) -> VmId {
        lock(&self.session).focus()
    }

    /// The VM of a thread gdb named in a resume, or the focus for one that
    /// does not exist.
    fn vm_or_focus(&self, tid: Tid) -> VmId {
        self.vm_of(tid).unwrap_or_else(|| self.focus())
    }

    /// What gdb is told about `outcome`.
    pub(crate) fn stop_reason(&self, outcome: &Outcome) -> MultiThreadStopReason<u64> {
        match outcome {
            Outcome::Stepped { vm } => MultiThreadStopReason::SignalWithThread {
                tid: tid_of(*vm),
                signal: Signal::SIGTRAP,
            },
            Outcome::Hit(hit) => {
                let tid = tid_of(hit.pos.vm);
                match &hit.kind {
                    HitKind::Breakpoint { addr } => match self.points.kind_at(*addr) {
                        Some(BreakKind::Software) => MultiThreadStopReason::SwBreak(tid),
                        Some(BreakKind::Hardware) => MultiThreadStopReason::HwBreak(tid),
                        // Set by another view of the session: a plain trap.
                        None => MultiThreadStopReason::SignalWithThread {
                            tid,
                            signal: Signal::SIGTRAP,
                        },
                    },
                    HitKind::Watch { watch, .. } => MultiThreadStopReason::Watch {
                        tid,
                        kind: match watch.kind {
                            WatchKind::Write => GdbWatchKind::Write,
                            WatchKind::Read => GdbWatchKind::Read,
                            WatchKind::Access => GdbWatchKind::ReadWrite,
                        },
                        addr: watch.addr,
                    },
                }
            }
            // gdb prints "No more reverse-execution history." for both ends.
            Outcome::End { vm, dir } => MultiThreadStopReason::ReplayLog {
                tid: Some(tid_of(*vm)),
                pos: match dir {
                    Direction::Backward => ReplayLogPosition::Begin,
                    Direction::Forward => ReplayLogPosition::End,
                },
            },
            Outcome::Cancelled { vm } => MultiThreadStopReason::SignalWithThread {
                tid: tid_of(*vm),
                signal: Signal::SIGINT,
            },
            // The message went to gdb's console; the stop says the move did not happen.
            Outcome::Failed { vm, .. } => MultiThreadStopReason::SignalWithThread {
                tid: tid_of(*vm),
                signal: Signal::SIGSTOP,
            },
        }
    }
}

impl MultiThreadResume for VmrrTarget {
    fn resume(&mut self) -> Result<(), Self::Error> {
        let r = &self.resume;
        let request = if let Some(&tid) = r.steps.first() {
            Request::Step {
                vm: self.vm_or_focus(tid),
                dir: Direction::Forward,
            }
        } else if let (true, [tid]) = (r.locked, r.continues.as_slice()) {
            Request::Continue {
                scope: Scope::Vm(self.vm_or_focus(*tid)),
                dir: Direction::Forward,
            }
        } else {
            Request::Continue {
                scope: Scope::Cluster,
                dir: Direction::Forward,
            }
        };
        self.resume.pending = Some(request);
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.resume = ResumeState::default();
        Ok(())
    }

    /// Signals are ignored: a replay cannot deliver what was not recorded.
    fn set_resume_action_continue(&mut self, tid: Tid, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.resume.continues.push(tid);
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_reverse_step(&mut self) -> Option<ReverseStepOps<'_, Tid, Self>> {
        Some(self)
    }

    fn support_reverse_cont(&mut self) -> Option<ReverseContOps<'_, Tid, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSingleStep for VmrrTarget {
    fn set_resume_action_step(&mut self, tid: Tid, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.resume.steps.push(tid);
        Ok(())
    }
}

impl MultiThreadSchedulerLocking for VmrrTarget {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        self.resume.locked = true;
        Ok(())
    }
}

impl ReverseStep<Tid> for VmrrTarget {
    /// gdbstub's `tid` is its own idea of the continue thread, which it
    /// resets at every stop while gdb keeps its cached `Hc`: vmrr goes by
    /// what gdb last sent.
    fn reverse_step(&mut self, _tid: Tid) -> Result<(), Self::Error> {
        let vm = match self.client.continue_thread {
            ThreadRef::Id(tid) => self.vm_or_focus(tid),
            ThreadRef::Any | ThreadRef::All => self.vm_or_focus(self.selected),
        };
        self.resume.pending = Some(Request::Step {
            vm,
            dir: Direction::Backward,
        });
        Ok(())
    }
}

impl ReverseCont<Tid> for VmrrTarget {
    fn reverse_cont(&mut self) -> Result<(), Self::Error> {
        let scope = match self.client.continue_thread {
            ThreadRef::Id(tid) => Scope::Vm(self.vm_or_focus(tid)),
            ThreadRef::Any | ThreadRef::All => Scope::Cluster,
        };
        self.resume.pending = Some(Request::Continue {
            scope,
            dir: Direction::Backward,
        });
        Ok(())
    }
}
