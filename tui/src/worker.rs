//! The worker thread: runs every session operation (a step, a follow, a
//! reverse-continue) off the UI thread, then builds the new [`Snapshot`]
//! while it still holds the session, and hands both back.
//!
//! The UI thread never waits for the session: it draws from its cached
//! state, reads progress from an atomic, and cancels a search through the
//! session's cancel flag, which needs no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use vmrr_debugger::session::{Breakpoint, Direction, HitKind, Scope, Session, StopReason};
use vmrr_debugger::symbols::SymbolTable;
use vmrr_index::{EventKind, EventRow, FrameFate};

use crate::snapshot;
use crate::state::{MemSource, Snapshot};

/// A session operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Only rebuild the snapshot (after gdb moved the cursor, or the memory view changed).
    Refresh,
    /// One instruction of a VM.
    Step {
        /// Which VM.
        vm: usize,
        /// Which way.
        dir: Direction,
    },
    /// One instruction of the cluster.
    StepCluster(Direction),
    /// To an event's position.
    GotoEvent(u64),
    /// To a VM's icount (the VM becomes the focus).
    Goto {
        /// Which VM.
        vm: usize,
        /// Where.
        icount: u64,
    },
    /// To a virtual time.
    GotoVtime(u64),
    /// Follow a frame: the given frame event, or the frame at the cursor.
    Follow(Option<EventRow>),
    /// Continue (forward or backward) on the focus VM.
    Continue(Direction),
    /// Add a breakpoint, or remove it if it is there.
    ToggleBreakpoint {
        /// Its VM.
        vm: usize,
        /// Its address.
        addr: u64,
        /// How the user wrote it (for the message).
        label: String,
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
    /// Go to a bookmark.
    GotoBookmark(String),
    /// Change the focus VM.
    SetFocus(usize),
}

impl Job {
    /// What the status bar says while it runs.
    pub fn label(&self) -> &'static str {
        match self {
            Job::Refresh => "refresh",
            Job::Step {
                dir: Direction::Forward,
                ..
            } => "step",
            Job::Step { .. } => "step back",
            Job::StepCluster(Direction::Forward) => "cluster step",
            Job::StepCluster(_) => "cluster step back",
            Job::GotoEvent(_) | Job::Goto { .. } | Job::GotoVtime(_) => "go to",
            Job::Follow(_) => "follow frame",
            Job::Continue(Direction::Forward) => "continue",
            Job::Continue(_) => "reverse-continue",
            Job::ToggleBreakpoint { .. } => "breakpoint",
            Job::AddBookmark(_) | Job::RenameBookmark { .. } | Job::DeleteBookmark(_) => "bookmark",
            Job::GotoBookmark(_) => "go to bookmark",
            Job::SetFocus(_) => "focus",
        }
    }

    /// Whether it reports progress (a search that can take seconds).
    pub fn has_progress(&self) -> bool {
        matches!(self, Job::Continue(_))
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
    /// The focus VM afterwards.
    pub snapshot: Snapshot,
    /// The session's breakpoints afterwards.
    pub breakpoints: Vec<Breakpoint>,
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
    pub fn start(session: Arc<Mutex<Session>>, symbols: Vec<Arc<SymbolTable>>) -> Worker {
        let (tx, jobs) = channel::<Request>();
        let (done, rx) = channel::<Done>();
        let progress = Arc::new(AtomicU64::new(NO_PROGRESS));
        let cell = progress.clone();
        let thread = std::thread::Builder::new()
            .name("vmrr-tui-worker".into())
            .spawn(move || {
                for req in jobs {
                    cell.store(NO_PROGRESS, Ordering::Relaxed);
                    // A panic elsewhere (the gdb thread) must not take the UI down with it.
                    let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
                    let outcome = execute(&mut s, &req.job, &symbols, &cell);
                    let snapshot = snapshot::build(&mut s, &symbols, &req.mem);
                    let breakpoints = s.breakpoints().to_vec();
                    drop(s);
                    let result = Done {
                        job: req.job,
                        outcome,
                        snapshot,
                        breakpoints,
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

fn describe_pos(s: &Session, vm: usize, icount: u64) -> String {
    format!("{} @ {icount}", s.vm_name(vm))
}

/// Runs one job; the message says what happened.
fn execute(
    s: &mut Session,
    job: &Job,
    symbols: &[Arc<SymbolTable>],
    progress: &AtomicU64,
) -> Result<String, String> {
    let e = |e: vmrr_debugger::session::SessionError| e.to_string();
    match job {
        Job::Refresh => Ok(String::new()),
        Job::Step { vm, dir } => match s.step(*vm, *dir).map_err(e)? {
            Some(_) => Ok(String::new()),
            None if *dir == Direction::Forward => Ok("at the end of the recording".into()),
            None => Ok("at the start of the recording".into()),
        },
        Job::StepCluster(dir) => match s.step_cluster(*dir).map_err(e)? {
            Some(p) => Ok(format!("cluster step: {}", describe_pos(s, p.vm, p.icount))),
            None => Ok("every VM is at the edge of the recording".into()),
        },
        Job::GotoEvent(id) => {
            let p = s.goto_event(*id).map_err(e)?;
            Ok(format!("at event {id}: {}", describe_pos(s, p.vm, p.icount)))
        }
        Job::Goto { vm, icount } => {
            s.set_focus(*vm).map_err(e)?;
            let p = s.goto(*vm, *icount).map_err(e)?;
            Ok(format!("at {}", describe_pos(s, p.vm, p.icount)))
        }
        Job::GotoVtime(t) => {
            s.goto_vtime(*t).map_err(e)?;
            Ok(format!("at {}", crate::format::vtime(*t)))
        }
        Job::Follow(event) => follow(s, event.as_ref()),
        Job::Continue(dir) => {
            let vm = s.focus();
            let report = |f: f64| progress.store(f.to_bits(), Ordering::Relaxed);
            let stop = s.continue_(Scope::Vm(vm), *dir, &report).map_err(e)?;
            Ok(match stop {
                StopReason::Hit(hit) => {
                    let what = match &hit.kind {
                        HitKind::Breakpoint { addr } => {
                            let name = symbols
                                .get(hit.pos.vm)
                                .and_then(|t| t.describe(*addr))
                                .unwrap_or_else(|| format!("{addr:#x}"));
                            format!("breakpoint at {name}")
                        }
                        HitKind::Watch { watch, .. } => format!("watchpoint {:#x}", watch.addr),
                    };
                    format!("{what} hit: {}", describe_pos(s, hit.pos.vm, hit.pos.icount))
                }
                StopReason::EndOfHistory(Direction::Forward) => {
                    "no breakpoint hit: at the end of the recording".into()
                }
                StopReason::EndOfHistory(Direction::Backward) => {
                    "no breakpoint hit: at the start of the recording".into()
                }
                StopReason::Cancelled => "cancelled; the cursor did not move".into(),
            })
        }
        Job::ToggleBreakpoint { vm, addr, label } => {
            let bp = Breakpoint {
                addr: *addr,
                vm: Some(*vm),
            };
            if s.breakpoints().contains(&bp) {
                s.remove_breakpoint(bp);
                Ok(format!("breakpoint at {label} removed"))
            } else {
                s.add_breakpoint(bp);
                Ok(format!("breakpoint at {label} ({addr:#x}) in {}", s.vm_name(*vm)))
            }
        }
        Job::AddBookmark(name) => {
            let b = s.add_bookmark(name, "").map_err(e)?;
            Ok(format!(
                "bookmark '{}' at {}",
                b.name,
                describe_pos(s, b.vm as usize, b.icount)
            ))
        }
        Job::RenameBookmark { old, new } => {
            s.rename_bookmark(old, new).map_err(e)?;
            Ok(format!("bookmark '{old}' renamed to '{}'", new.trim()))
        }
        Job::DeleteBookmark(name) => {
            s.delete_bookmark(name).map_err(e)?;
            Ok(format!("bookmark '{name}' deleted"))
        }
        Job::GotoBookmark(name) => {
            let p = s.goto_bookmark(name).map_err(e)?;
            Ok(format!(
                "at bookmark '{name}': {}",
                describe_pos(s, p.vm, p.icount)
            ))
        }
        Job::SetFocus(vm) => {
            s.set_focus(*vm).map_err(e)?;
            Ok(String::new())
        }
    }
}

/// Follows a frame event to its other end: a send to its (first) receipt,
/// a receipt back to just after its send. Without one, the frame at the
/// cursor (Session::follow_frame).
fn follow(s: &mut Session, event: Option<&EventRow>) -> Result<String, String> {
    let e = |e: vmrr_debugger::session::SessionError| e.to_string();
    let Some(ev) = event.filter(|ev| matches!(ev.kind, EventKind::FrameSent | EventKind::FrameRecv)) else {
        return match s.follow_frame().map_err(e)? {
            Some(p) => Ok(format!(
                "followed the frame to {}",
                describe_pos(s, p.vm, p.icount)
            )),
            None => Err("no frame is sent or received here: select one in the events list".into()),
        };
    };
    let id = ev.value.unwrap_or(0);
    let target = {
        let index = s.trace().index();
        if ev.kind == EventKind::FrameSent {
            let rows = index.frame_receipts_of_send(id).map_err(|e| e.to_string())?;
            match rows.iter().find(|r| r.recv_icount.is_some()) {
                Some(r) => Ok((r.dst as usize, r.recv_icount.unwrap_or(0), "its receipt")),
                None => Err(match rows.first() {
                    Some(r) if r.fate != FrameFate::Received => {
                        format!("frame #{id} never arrived: {}", r.fate)
                    }
                    _ => format!("frame #{id} has no receipt in this trace"),
                }),
            }
        } else {
            match index.frame(id, ev.vm).map_err(|e| e.to_string())? {
                // Stand just after the instruction that sent it.
                Some(r) => Ok((r.src as usize, r.sent_icount + 1, "its send")),
                None => Err(format!("frame #{id} is not in the frames table")),
            }
        }
    };
    let (vm, icount, what) = target?;
    let icount = icount.min(s.end_icount(vm));
    s.set_focus(vm).map_err(e)?;
    let p = s.goto(vm, icount).map_err(e)?;
    Ok(format!(
        "frame #{id}: {what}, {}",
        describe_pos(s, p.vm, p.icount)
    ))
}
