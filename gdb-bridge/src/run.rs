//! Running one resume on the session: the only place the bridge moves the
//! cursor for gdb's `vCont`, `c`, `s`, `bc` and `bs`. It runs on a worker
//! thread while the connection watches for gdb's Ctrl-C, and holds the
//! session's lock for the whole move (a move must not interleave with
//! another view's).

use std::sync::Mutex;

use vmrr_debugger::session::{Direction, Hit, Move, Outcome, Scope, Session, Stops, VmId};

use crate::state::lock;

/// A resume gdb asked for, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// One instruction of one VM.
    Step {
        /// The VM.
        vm: VmId,
        /// Which way.
        dir: Direction,
    },
    /// Steps of one VM while its program counter stays in `[start, end)`.
    Range {
        /// The VM.
        vm: VmId,
        /// First address of the range.
        start: u64,
        /// Just past its end.
        end: u64,
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
pub(crate) enum Ran {
    /// The VM stepped.
    Moved {
        /// Which.
        vm: VmId,
    },
    /// Every hit at the moment the continue stopped, in the order of travel.
    Hits(Vec<Hit>),
    /// The trace ends that way; the cursor is at that end.
    End {
        /// The VM gdb is told about.
        vm: VmId,
        /// Which end.
        dir: Direction,
    },
    /// gdb interrupted it; the cursor did not move.
    Cancelled,
    /// The session failed; the message is for the user.
    Failed(String),
}

/// Runs `request`; `progress` gets the fraction of a search done.
pub(crate) fn execute(session: &Mutex<Session>, request: Request, progress: &(dyn Fn(f64) + Sync)) -> Ran {
    let mut s = lock(session);
    let outcome = match request {
        Request::Step { vm, dir } => s.perform(&Move::Step { vm, dir }, progress),
        Request::Range { vm, start, end } => s.perform(&Move::StepRange { vm, start, end }, progress),
        Request::Continue { scope, dir } => {
            return match s.continue_all(scope, dir, progress) {
                Ok(Stops::Hits(hits)) => Ran::Hits(hits),
                Ok(Stops::End(dir)) => Ran::End {
                    vm: match scope {
                        Scope::Vm(vm) => vm,
                        Scope::Cluster => s.focus(),
                    },
                    dir,
                },
                Ok(Stops::Cancelled) => Ran::Cancelled,
                Err(e) => Ran::Failed(e.to_string()),
            };
        }
    };
    let vm = match request {
        Request::Step { vm, .. } | Request::Range { vm, .. } => vm,
        Request::Continue { .. } => s.focus(),
    };
    match outcome {
        Ok(Outcome::End(dir)) => Ran::End { vm, dir },
        Ok(Outcome::Cancelled) => Ran::Cancelled,
        Ok(Outcome::Hit(hit)) => Ran::Hits(vec![hit]),
        Ok(_) => Ran::Moved { vm },
        Err(e) => Ran::Failed(e.to_string()),
    }
}
