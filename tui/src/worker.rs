//! The worker thread: runs every session operation (a step, a follow, a
//! reverse-continue) off the UI thread, then builds the new [`Snapshot`]
//! while it still holds the session, and hands both back.
//!
//! The UI thread never waits for the session: it draws from its cached
//! state, reads progress from an atomic, and cancels a search through the
//! session's cancel flag, which needs no lock.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use vmrr_debugger::dwarf::Program;
use vmrr_debugger::session::{Breakpoint, Direction, FrameEnd, HitKind, Move, Outcome, Pos, Session, VmId};
use vmrr_index::EventKind;

use crate::analyses::{self, Answer};
use crate::snapshot::{self, Sources};
use crate::state::{MemSource, Snapshot};

/// A session operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Only rebuild the snapshot (after gdb moved the cursor, or the memory view changed).
    Refresh,
    /// A movement of the cursor, performed by the session.
    Move(Move),
    /// Add a breakpoint, or remove it if it is there.
    ToggleBreakpoint {
        /// Its VM.
        vm: VmId,
        /// Where, as the user wrote it (a symbol or an address).
        location: String,
    },
    /// Add a watchpoint on writes, or remove it if it is there.
    ToggleWatchpoint {
        /// Its VM.
        vm: VmId,
        /// What, as the user wrote it (a variable or `0xaddr[:len]`).
        expr: String,
    },
    /// Add a bookmark at the focus VM's position.
    AddBookmark(String),
    /// Rename a bookmark.
    RenameBookmark {
        /// Its name.
        old: String,
        /// The new one.
        new: String,
    },
    /// Delete a bookmark.
    DeleteBookmark(String),
    /// Change the focus VM.
    SetFocus(VmId),
    /// List every call of a function in every VM.
    Calls(String),
    /// Trace the origin of a value of a VM at the cursor.
    Origin {
        /// The VM.
        vm: VmId,
        /// A register, a variable, `name[i]` or `0xaddr[:len]`.
        what: String,
    },
    /// Fork the trace at a virtual time, changed, into a new trace.
    Fork {
        /// The cut's virtual time (the cursor's).
        at_ns: u64,
        /// The changes, as typed (each checked by `Change::parse` already).
        changes: Vec<String>,
        /// The new trace's folder.
        out: PathBuf,
        /// The parent's last virtual time, to measure progress against.
        end_ns: u64,
    },
    /// Compare the trace with another (the one it is opened beside).
    Compare(PathBuf),
    /// Go to where the focus VM first differs from the trace this one is
    /// opened beside; once there, the message is the difference.
    Divergence {
        /// The move there (a goto of the diff's position).
        to: Move,
        /// What differs there, both sides.
        summary: String,
    },
}

impl Job {
    /// What the status bar says while it runs.
    pub fn label(&self) -> &'static str {
        match self {
            Job::Refresh => "refresh",
            Job::Move(Move::Step {
                dir: Direction::Forward,
                ..
            }) => "step",
            Job::Move(Move::Step { .. }) => "step back",
            Job::Move(Move::StepCluster(Direction::Forward)) => "cluster step",
            Job::Move(Move::StepCluster(_)) => "cluster step back",
            Job::Move(Move::StepRange { .. }) => "step",
            Job::Move(Move::Finish { .. }) => "finish",
            Job::Move(Move::Next { .. } | Move::NextLine { .. }) => "next",
            Job::Move(Move::Until { .. }) => "until",
            Job::Move(Move::Goto(_) | Move::GotoEvent(_) | Move::Event { .. }) => "go to",
            Job::Move(Move::Follow { .. }) => "follow frame",
            Job::Move(Move::FollowSegment { .. }) => "follow segment",
            Job::Move(Move::Continue {
                dir: Direction::Forward,
                ..
            }) => "continue",
            Job::Move(Move::Continue { .. }) => "reverse-continue",
            Job::ToggleBreakpoint { .. } => "breakpoint",
            Job::ToggleWatchpoint { .. } => "watchpoint",
            Job::AddBookmark(_) | Job::RenameBookmark { .. } | Job::DeleteBookmark(_) => "bookmark",
            Job::SetFocus(_) => "focus",
            Job::Calls(_) => "calls",
            Job::Origin { .. } => "origin",
            Job::Fork { .. } => "fork",
            Job::Compare(_) => "compare",
            Job::Divergence { .. } => "go to",
        }
    }

    /// Whether it reports progress (a search, an analysis or a fork that
    /// can take seconds); Esc cancels these.
    pub fn has_progress(&self) -> bool {
        matches!(
            self,
            Job::Move(
                Move::Continue { .. }
                    | Move::Finish { .. }
                    | Move::Next { .. }
                    | Move::NextLine { .. }
                    | Move::Until { .. }
            ) | Job::Calls(_)
                | Job::Origin { .. }
                | Job::Fork { .. }
        )
    }
}

/// A job with what the snapshot should contain.
#[derive(Debug, Clone)]
pub struct Request {
    /// The operation.
    pub job: Job,
    /// Where the memory view looks.
    pub mem: MemSource,
}

/// A finished job.
#[derive(Debug, Clone)]
pub struct Done {
    /// The job.
    pub job: Job,
    /// What to tell the user (Err: what went wrong).
    pub outcome: Result<String, String>,
    /// The other ends of a frame the user must choose between (empty: none).
    pub choices: Vec<FrameEnd>,
    /// The focus VM afterwards.
    pub snapshot: Snapshot,
    /// The session's breakpoints afterwards.
    pub breakpoints: Vec<Breakpoint>,
    /// The list an analysis answered with, if it was one.
    pub answer: Option<Answer>,
}

/// The worker thread has ended (it panicked, or could not be started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerGone;

/// "No progress reported" in the progress cell.
const NO_PROGRESS: u64 = u64::MAX;

/// The worker thread and its channels.
pub struct Worker {
    tx: Option<Sender<Request>>,
    rx: Receiver<Done>,
    progress: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread.
    pub fn start(session: Arc<Mutex<Session>>, programs: Vec<Arc<Program>>) -> Worker {
        let (tx, jobs) = channel::<Request>();
        let (done, rx) = channel::<Done>();
        let progress = Arc::new(AtomicU64::new(NO_PROGRESS));
        let cell = progress.clone();
        let thread = std::thread::Builder::new()
            .name("vmrr-tui-worker".into())
            .spawn(move || {
                let mut sources = Sources::default();
                for req in jobs {
                    cell.store(NO_PROGRESS, Ordering::Relaxed);
                    // A panic elsewhere (the gdb thread) must not take the UI down with it.
                    let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
                    let (outcome, choices, answer) = execute(&mut s, &req.job, &programs, &cell);
                    let snapshot = snapshot::build(&mut s, &programs, &mut sources, &req.mem);
                    let breakpoints = s.breakpoints().to_vec();
                    drop(s);
                    let result = Done {
                        job: req.job,
                        outcome,
                        choices,
                        snapshot,
                        breakpoints,
                        answer,
                    };
                    if done.send(result).is_err() {
                        break;
                    }
                }
            })
            .ok();
        Worker {
            tx: Some(tx),
            rx,
            progress,
            thread,
        }
    }

    /// Queues a request; false if the worker is gone.
    pub fn submit(&self, req: Request) -> bool {
        self.thread.is_some() && self.tx.as_ref().is_some_and(|tx| tx.send(req).is_ok())
    }

    /// A finished job, if there is one; `Err` when the worker thread is gone.
    pub fn try_done(&self) -> Result<Option<Done>, WorkerGone> {
        match self.rx.try_recv() {
            Ok(d) => Ok(Some(d)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(WorkerGone),
        }
    }

    /// Waits for the next finished job, at most `timeout`.
    pub fn wait_done(&self, timeout: std::time::Duration) -> Option<Done> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The running job's progress, if it reports one.
    pub fn progress(&self) -> Option<f64> {
        match self.progress.load(Ordering::Relaxed) {
            NO_PROGRESS => None,
            bits => Some(f64::from_bits(bits).clamp(0.0, 1.0)),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once its job is done.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn describe_pos(s: &Session, p: Pos) -> String {
    format!("{} @ {}", s.vm_name(p.vm), p.icount)
}

/// What a job hands back: its message, the receivers to choose between,
/// an analysis's list.
type Executed = (Result<String, String>, Vec<FrameEnd>, Option<Answer>);

/// Runs one job; the message says what happened. A frame with several
/// receivers comes back as the choices, for the user to pick one.
fn execute(s: &mut Session, job: &Job, programs: &[Arc<Program>], progress: &AtomicU64) -> Executed {
    let e = |e: vmrr_debugger::session::SessionError| e.to_string();
    let report = |f: f64| progress.store(f.to_bits(), Ordering::Relaxed);
    let answered = |r: Result<(String, Answer), vmrr_debugger::session::SessionError>| match r {
        Ok((text, answer)) => (Ok(text), Vec::new(), Some(answer)),
        Err(err) => (Err(err.to_string()), Vec::new(), None),
    };
    let text = match job {
        Job::Calls(function) => return answered(analyses::calls(s, function, &report)),
        Job::Origin { vm, what } => return answered(analyses::origin(s, *vm, what, &report)),
        Job::Compare(other) => {
            return match analyses::compare(s, other) {
                Ok((text, answer)) => (Ok(text), Vec::new(), Some(answer)),
                Err(err) => (Err(err), Vec::new(), None),
            }
        }
        Job::Fork {
            at_ns,
            changes,
            out,
            end_ns,
        } => analyses::fork_here(s, *at_ns, changes, out, *end_ns, &report),
        Job::Refresh => Ok(String::new()),
        Job::Divergence { to, summary } => match s.perform(to, &report) {
            Ok(Outcome::Moved { .. }) => Ok(summary.clone()),
            Ok(outcome) => Ok(describe_outcome(s, to, &outcome, programs)),
            Err(err) => Err(e(err)),
        },
        Job::Move(mv) => match s.perform(mv, &report) {
            Ok(Outcome::Choose(ends)) => {
                let names: Vec<String> = ends
                    .iter()
                    .enumerate()
                    .map(|(i, end)| format!("{} {}", i + 1, s.vm_name(end.vm)))
                    .collect();
                let text = format!(
                    "frame #{} reached several VMs: press {} (Esc: stay)",
                    ends.first().map(|e| e.frame).unwrap_or(0),
                    names.join(", ")
                );
                return (Ok(text), ends, None);
            }
            Ok(outcome) => Ok(describe_outcome(s, mv, &outcome, programs)),
            Err(err) => Err(e(err)),
        },
        Job::ToggleBreakpoint { vm, location } => {
            let program = programs.get(*vm as usize).cloned().unwrap_or_default();
            s.toggle_breakpoint_at(*vm, &program, location)
                .map_err(e)
                .map(|(added, r)| {
                    let addrs: Vec<String> = r.addrs.iter().map(|a| format!("{a:#x}")).collect();
                    if added {
                        format!(
                            "breakpoint at {} ({}) in {}",
                            r.label,
                            addrs.join(", "),
                            s.vm_name(*vm)
                        )
                    } else {
                        format!("breakpoint at {} removed", r.label)
                    }
                })
        }
        Job::ToggleWatchpoint { vm, expr } => {
            let program = programs.get(*vm as usize).cloned().unwrap_or_default();
            s.toggle_watch_expr(*vm, &program, expr)
                .map_err(e)
                .map(|(added, wp, label)| {
                    if added {
                        format!(
                            "watching writes to {label} ({:#x}, {} bytes) in {}: c / C to find them",
                            wp.addr,
                            wp.len,
                            s.vm_name(*vm)
                        )
                    } else {
                        format!("watchpoint on {label} removed")
                    }
                })
        }
        Job::AddBookmark(name) => s.add_bookmark(name, "").map_err(e).map(|b| {
            format!(
                "bookmark '{}' at {}",
                b.name,
                describe_pos(s, Pos::new(b.vm, b.icount, b.vtime_ns))
            )
        }),
        Job::RenameBookmark { old, new } => s
            .rename_bookmark(old, new)
            .map_err(e)
            .map(|_| format!("bookmark '{old}' renamed to '{}'", new.trim())),
        Job::DeleteBookmark(name) => s
            .delete_bookmark(name)
            .map_err(e)
            .map(|_| format!("bookmark '{name}' deleted")),
        Job::SetFocus(vm) => s.set_focus(*vm).map_err(e).map(|_| String::new()),
    };
    (text, Vec::new(), None)
}

/// What to tell the user about a move's outcome.
fn describe_outcome(s: &Session, mv: &Move, outcome: &Outcome, programs: &[Arc<Program>]) -> String {
    match (mv, outcome) {
        (Move::Step { .. }, Outcome::Moved { .. }) => String::new(),
        (Move::StepCluster(_), Outcome::Moved { pos, .. }) => {
            format!("cluster step: {}", describe_pos(s, *pos))
        }
        (Move::Follow { .. }, Outcome::Moved { pos, event }) => {
            let end = event.and_then(|id| s.trace().index().event(id).ok().flatten());
            match end {
                Some(e) => format!(
                    "frame #{}: its {}, {}",
                    e.value.unwrap_or(0),
                    if e.kind == EventKind::FrameSent {
                        "send"
                    } else {
                        "receipt"
                    },
                    describe_pos(s, *pos)
                ),
                None => format!("followed the frame to {}", describe_pos(s, *pos)),
            }
        }
        (Move::FollowSegment { to, .. }, Outcome::Moved { pos, event }) => {
            let frame = event
                .and_then(|id| s.trace().index().event(id).ok().flatten())
                .and_then(|e| e.value);
            match frame {
                Some(f) => format!("{}: frame #{f}'s send, {}", to.name(), describe_pos(s, *pos)),
                None => format!("{}: {}", to.name(), describe_pos(s, *pos)),
            }
        }
        (_, Outcome::Moved { pos, event: Some(id) }) => format!("at event #{id}: {}", describe_pos(s, *pos)),
        (_, Outcome::Moved { pos, .. }) => format!("at {}", describe_pos(s, *pos)),
        (
            Move::Step { .. } | Move::StepCluster(_) | Move::StepRange { .. },
            Outcome::End(Direction::Forward),
        ) => "at the end of the recording".into(),
        (Move::Step { .. } | Move::StepCluster(_), Outcome::End(Direction::Backward)) => {
            "at the start of the recording".into()
        }
        (_, Outcome::End(Direction::Forward)) => "no breakpoint hit: at the end of the recording".into(),
        (_, Outcome::End(Direction::Backward)) => "no breakpoint hit: at the start of the recording".into(),
        (_, Outcome::NoEvent(Direction::Forward)) => "no later event in this list".into(),
        (_, Outcome::NoEvent(Direction::Backward)) => "no earlier event in this list".into(),
        (_, Outcome::Cancelled) => "cancelled; the cursor did not move".into(),
        (_, Outcome::Choose(_)) => String::new(),
        (_, Outcome::Hit(hit)) => {
            let what = match &hit.kind {
                HitKind::Breakpoint { addr } => {
                    let name = programs
                        .get(hit.pos.vm as usize)
                        .map(|p| crate::format::code_place(p, *addr))
                        .unwrap_or_else(|| format!("{addr:#x}"));
                    format!("breakpoint at {name}")
                }
                HitKind::Watch { watch, old, new } => {
                    let le = |b: &[u8]| b.iter().rev().fold(0u64, |v, x| (v << 8) | u64::from(*x));
                    let change = if watch.len <= 8 {
                        format!(" {} → {}", le(old), le(new))
                    } else {
                        String::new()
                    };
                    format!("watchpoint {:#x}{change}", watch.addr)
                }
            };
            format!("{what} hit: {}", describe_pos(s, hit.pos))
        }
    }
}
