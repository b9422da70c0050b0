//! The time-travel `Session` over a trace: a cluster cursor and a focus VM,
//! stepping both ways, continue and reverse-continue to breakpoints and
//! watchpoints, going to positions, events and bookmarks, following frames.
//!
//! The gdb bridge and the TUI are two views of one `Session`; neither holds
//! time-travel logic of its own.
//!
//! Positions: a VM stands *at* icount n when its instructions 0..n have run
//! (and the inputs recorded at n were delivered). The cluster cursor is a
//! virtual time T; the VMs other than the one just moved stand at their
//! first instruction boundary at or after T, so every instruction starting
//! before T has run in every VM — a consistent cut, since a frame received
//! before T was sent at least one link latency earlier.

mod dense;
mod rounds;
mod search;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vmrr_backend::Machine;
use vmrr_index::BookmarkRow;

use crate::trace::replay::Trace;
use crate::trace::TraceError;
use dense::DenseCache;
pub use search::{Hit, HitKind};

/// Which way to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Towards the end of the trace.
    Forward,
    /// Towards its start.
    Backward,
}

/// Which VMs a continue considers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only this VM.
    Vm(usize),
    /// Any VM of the cluster.
    Cluster,
}

/// A position of one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// VM index.
    pub vm: usize,
    /// Instructions executed.
    pub icount: u64,
    /// Virtual time there.
    pub vtime_ns: u64,
}

/// A breakpoint: stop before executing the instruction at `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breakpoint {
    /// Guest-virtual address.
    pub addr: u64,
    /// Only in this VM (None: any).
    pub vm: Option<usize>,
}

/// What a watchpoint watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    /// A write that changes the value.
    Write,
    /// A read.
    Read,
    /// A read or a write.
    Access,
}

/// A watchpoint on guest-virtual memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchpoint {
    /// Start address.
    pub addr: u64,
    /// Bytes watched (1..=4096).
    pub len: u64,
    /// What triggers it.
    pub kind: WatchKind,
    /// Only in this VM (None: any).
    pub vm: Option<usize>,
}

/// Why a continue stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// A breakpoint or watchpoint was hit.
    Hit(Hit),
    /// The start (reverse) or the end (forward) of the recording.
    EndOfHistory(Direction),
    /// The user cancelled the search; the cursor did not move.
    Cancelled,
}

/// Errors of a session: a trace problem or a request that does not fit.
pub type SessionError = TraceError;

/// Where each VM stands.
enum Target {
    /// Exactly this icount.
    Icount(u64),
    /// The first boundary at or after this virtual time.
    Vtime(u64),
}

/// One VM's live machine (materialised lazily) and what it has consumed.
struct Live {
    machine: Machine,
    next_input: usize,
}

struct VmCursor {
    target: Target,
    live: Option<Live>,
    dense: DenseCache,
}

/// A time-travel session over one trace.
pub struct Session {
    trace: Arc<Trace>,
    focus: usize,
    cursor_vtime: u64,
    vms: Vec<VmCursor>,
    breakpoints: Vec<Breakpoint>,
    watchpoints: Vec<Watchpoint>,
    cancel: Arc<AtomicBool>,
    /// Bumped at every move, so views know when to redraw.
    generation: u64,
    jobs: usize,
}

impl Session {
    /// Opens a trace (writable, for bookmarks) with the cursor at its start.
    pub fn open(dir: &Path) -> Result<Session, SessionError> {
        let trace = Arc::new(Trace::open(dir, true)?);
        let n = trace.config().vms.len();
        Ok(Session {
            vms: (0..n)
                .map(|_| VmCursor {
                    target: Target::Icount(0),
                    live: None,
                    dense: DenseCache::default(),
                })
                .collect(),
            trace,
            focus: 0,
            cursor_vtime: 0,
            breakpoints: Vec::new(),
            watchpoints: Vec::new(),
            cancel: Arc::new(AtomicBool::new(false)),
            generation: 0,
            jobs: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })
    }

    /// The trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Number of VMs.
    pub fn vm_count(&self) -> usize {
        self.vms.len()
    }

    /// Name of VM `vm`.
    pub fn vm_name(&self, vm: usize) -> &str {
        self.trace
            .config()
            .vms
            .get(vm)
            .map(|v| v.name.as_str())
            .unwrap_or("?")
    }

    /// Index of the VM called `name`.
    pub fn vm_by_name(&self, name: &str) -> Result<usize, SessionError> {
        self.trace.vm_by_name(name)
    }

    /// The focus VM.
    pub fn focus(&self) -> usize {
        self.focus
    }

    /// Changes the focus VM (the cursor stays).
    pub fn set_focus(&mut self, vm: usize) -> Result<(), SessionError> {
        self.check_vm(vm)?;
        self.focus = vm;
        self.generation += 1;
        Ok(())
    }

    /// The cluster cursor's virtual time.
    pub fn cursor_vtime(&self) -> u64 {
        self.cursor_vtime
    }

    /// Changes every time the cursor, focus or breakpoints change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A flag that cancels a running search when set (from another thread,
    /// e.g. gdb's Ctrl-C or the TUI's Esc).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Threads used by reverse searches.
    pub fn set_jobs(&mut self, jobs: usize) {
        self.jobs = jobs.max(1);
    }

    /// Last icount of `vm` in the trace.
    pub fn end_icount(&self, vm: usize) -> u64 {
        self.trace.end_icount(vm)
    }

    fn check_vm(&self, vm: usize) -> Result<(), SessionError> {
        if vm < self.vms.len() {
            Ok(())
        } else {
            Err(TraceError::Invalid(format!(
                "no VM number {vm}: this trace has {}",
                self.vms.len()
            )))
        }
    }

    /// Brings VM `vm`'s live machine to where its cursor says.
    fn materialise(&mut self, vm: usize) -> Result<(), SessionError> {
        self.check_vm(vm)?;
        let trace = self.trace.clone();
        let cursor = &mut self.vms[vm];
        match cursor.target {
            Target::Icount(n) => {
                let ahead = cursor.live.as_ref().is_some_and(|l| l.machine.icount() > n);
                if cursor.live.is_none() || ahead {
                    let (machine, next_input) =
                        cursor
                            .dense
                            .restore(&trace, vm, n, cursor.live.take().map(|l| l.machine))?;
                    cursor.live = Some(Live { machine, next_input });
                }
                if let Some(live) = &mut cursor.live {
                    if live.machine.icount() < n {
                        trace.run_to(vm, &mut live.machine, &mut live.next_input, n, usize::MAX)?;
                        cursor.dense.note_run(&mut live.machine)?;
                    }
                }
            }
            Target::Vtime(t) => {
                let behind = cursor.live.as_ref().is_some_and(|l| l.machine.vtime_ns() > t);
                if cursor.live.is_none() || behind {
                    let k = trace
                        .checkpoints(vm)
                        .iter()
                        .rposition(|c| c.vtime_ns <= t)
                        .unwrap_or(0);
                    let at = trace.checkpoints(vm)[k].icount;
                    let (machine, next_input) =
                        cursor
                            .dense
                            .restore(&trace, vm, at, cursor.live.take().map(|l| l.machine))?;
                    cursor.live = Some(Live { machine, next_input });
                }
                if let Some(live) = &mut cursor.live {
                    if live.machine.vtime_ns() < t {
                        trace.run_to_vtime(vm, &mut live.machine, &mut live.next_input, t)?;
                        cursor.dense.note_run(&mut live.machine)?;
                    }
                    cursor.target = Target::Icount(live.machine.icount());
                }
            }
        }
        Ok(())
    }

    /// VM `vm` at the cursor (materialised on demand).
    pub fn machine(&mut self, vm: usize) -> Result<&Machine, SessionError> {
        self.materialise(vm)?;
        self.vms[vm]
            .live
            .as_ref()
            .map(|l| &l.machine)
            .ok_or_else(|| TraceError::Invalid(format!("VM {vm} could not be materialised")))
    }

    /// VM `vm` at the cursor, mutably (gdb memory writes change this copy only:
    /// moving the cursor replays from the recording again).
    pub fn machine_mut(&mut self, vm: usize) -> Result<&mut Machine, SessionError> {
        self.materialise(vm)?;
        self.vms[vm]
            .live
            .as_mut()
            .map(|l| &mut l.machine)
            .ok_or_else(|| TraceError::Invalid(format!("VM {vm} could not be materialised")))
    }

    /// Where VM `vm` stands.
    pub fn position(&mut self, vm: usize) -> Result<Pos, SessionError> {
        let m = self.machine(vm)?;
        Ok(Pos {
            vm,
            icount: m.icount(),
            vtime_ns: m.vtime_ns(),
        })
    }

    /// Puts VM `vm` at `icount`; the cluster cursor follows it and the other
    /// VMs stand at its virtual time.
    pub fn goto(&mut self, vm: usize, icount: u64) -> Result<Pos, SessionError> {
        self.check_vm(vm)?;
        if icount > self.end_icount(vm) {
            return Err(TraceError::Invalid(format!(
                "icount {icount} is past the end of VM '{}' ({})",
                self.vm_name(vm),
                self.end_icount(vm)
            )));
        }
        self.vms[vm].target = Target::Icount(icount);
        let pos = self.position(vm)?;
        self.cursor_vtime = pos.vtime_ns;
        for (other, cursor) in self.vms.iter_mut().enumerate() {
            if other != vm {
                cursor.target = Target::Vtime(pos.vtime_ns);
            }
        }
        self.generation += 1;
        Ok(pos)
    }

    /// Moves the cluster cursor to virtual time `t`: every VM at its first
    /// instruction boundary at or after `t`.
    pub fn goto_vtime(&mut self, t: u64) -> Result<(), SessionError> {
        for cursor in &mut self.vms {
            cursor.target = Target::Vtime(t);
        }
        self.cursor_vtime = t;
        self.generation += 1;
        Ok(())
    }

    /// Goes to the position of event `id` (its VM becomes the focus).
    pub fn goto_event(&mut self, id: u64) -> Result<Pos, SessionError> {
        let event = self
            .trace
            .index()
            .event(id)?
            .ok_or_else(|| TraceError::Invalid(format!("no event {id} in this trace")))?;
        self.focus = event.vm as usize;
        self.goto(event.vm as usize, event.icount)
    }

    /// One instruction of VM `vm`, forward or back; the cursor follows.
    /// `None` at the ends of the trace.
    pub fn step(&mut self, vm: usize, dir: Direction) -> Result<Option<Pos>, SessionError> {
        let here = self.position(vm)?;
        let to = match dir {
            Direction::Forward if here.icount < self.end_icount(vm) => here.icount + 1,
            Direction::Backward if here.icount > 0 => here.icount - 1,
            _ => return Ok(None),
        };
        self.goto(vm, to).map(Some)
    }

    /// One instruction of the cluster: the next (or previous) instruction in
    /// the total order (virtual time, VM, icount).
    pub fn step_cluster(&mut self, dir: Direction) -> Result<Option<Pos>, SessionError> {
        let mut best: Option<(u64, usize)> = None;
        for vm in 0..self.vms.len() {
            let p = self.position(vm)?;
            let candidate = match dir {
                Direction::Forward if p.icount < self.end_icount(vm) => p.vtime_ns,
                Direction::Backward if p.icount > 0 => p.vtime_ns,
                _ => continue,
            };
            let better = match (best, dir) {
                (None, _) => true,
                (Some((t, _)), Direction::Forward) => candidate < t,
                (Some((t, _)), Direction::Backward) => candidate >= t,
            };
            if better {
                best = Some((candidate, vm));
            }
        }
        match best {
            Some((_, vm)) => {
                self.focus = vm;
                self.step(vm, dir)
            }
            None => Ok(None),
        }
    }

    /// The breakpoints.
    pub fn breakpoints(&self) -> &[Breakpoint] {
        &self.breakpoints
    }

    /// Adds a breakpoint (no duplicates).
    pub fn add_breakpoint(&mut self, bp: Breakpoint) {
        if !self.breakpoints.contains(&bp) {
            self.breakpoints.push(bp);
            self.generation += 1;
        }
    }

    /// Removes a breakpoint; false if there was none.
    pub fn remove_breakpoint(&mut self, bp: Breakpoint) -> bool {
        let before = self.breakpoints.len();
        self.breakpoints.retain(|b| *b != bp);
        self.generation += 1;
        before != self.breakpoints.len()
    }

    /// The watchpoints.
    pub fn watchpoints(&self) -> &[Watchpoint] {
        &self.watchpoints
    }

    /// Adds a watchpoint.
    pub fn add_watchpoint(&mut self, wp: Watchpoint) -> Result<(), SessionError> {
        if wp.len == 0 || wp.len > 4096 {
            return Err(TraceError::Invalid(format!(
                "a watchpoint covers 1 to 4096 bytes, not {}",
                wp.len
            )));
        }
        if !self.watchpoints.contains(&wp) {
            self.watchpoints.push(wp);
            self.generation += 1;
        }
        Ok(())
    }

    /// Removes a watchpoint; false if there was none.
    pub fn remove_watchpoint(&mut self, wp: Watchpoint) -> bool {
        let before = self.watchpoints.len();
        self.watchpoints.retain(|w| *w != wp);
        self.generation += 1;
        before != self.watchpoints.len()
    }

    /// Continues forward or backward until a breakpoint or watchpoint hit in
    /// `scope`, the end of the recording, or cancellation. `progress` gets
    /// the fraction of the search done.
    pub fn continue_(
        &mut self,
        scope: Scope,
        dir: Direction,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<StopReason, SessionError> {
        self.cancel.store(false, Ordering::Relaxed);
        if dir == Direction::Backward {
            // Breakpoints only: replay long runs of slices per core.
            let cancel = self.cancel.clone();
            if let Some(result) = rounds::continue_backward(self, scope, &cancel, progress) {
                return result;
            }
        }
        let vms: Vec<usize> = match scope {
            Scope::Vm(vm) => {
                self.check_vm(vm)?;
                vec![vm]
            }
            Scope::Cluster => (0..self.vms.len()).collect(),
        };
        let mut best: Option<Hit> = None;
        for &vm in &vms {
            let from = self.position(vm)?;
            let probes = search::Probes::for_vm(vm, &self.breakpoints, &self.watchpoints);
            let hit = match dir {
                Direction::Forward => {
                    let limit = best.as_ref().map(|b| b.pos.vtime_ns);
                    search::forward(&self.trace, vm, from, &probes, limit, &self.cancel, progress)?
                }
                Direction::Backward => {
                    search::backward(&self.trace, vm, from, &probes, self.jobs, &self.cancel, progress)?
                }
            };
            if self.cancel.load(Ordering::Relaxed) {
                return Ok(StopReason::Cancelled);
            }
            if let Some(hit) = hit {
                let better = match (&best, dir) {
                    (None, _) => true,
                    (Some(b), Direction::Forward) => {
                        (hit.pos.vtime_ns, hit.pos.vm) < (b.pos.vtime_ns, b.pos.vm)
                    }
                    (Some(b), Direction::Backward) => {
                        (hit.pos.vtime_ns, hit.pos.vm) > (b.pos.vtime_ns, b.pos.vm)
                    }
                };
                if better {
                    best = Some(hit);
                }
            }
        }
        match best {
            Some(hit) => {
                self.focus = hit.pos.vm;
                self.goto(hit.pos.vm, hit.pos.icount)?;
                Ok(StopReason::Hit(hit))
            }
            None => {
                // No hit: stand at the end (or start) of the recording, as gdb expects.
                match (dir, scope) {
                    (Direction::Forward, Scope::Vm(vm)) => {
                        self.goto(vm, self.end_icount(vm))?;
                    }
                    (Direction::Backward, Scope::Vm(vm)) => {
                        self.goto(vm, 0)?;
                    }
                    (Direction::Backward, Scope::Cluster) => self.goto_vtime(0)?,
                    (Direction::Forward, Scope::Cluster) => {
                        let vm = self.focus;
                        self.goto(vm, self.end_icount(vm))?;
                    }
                }
                Ok(StopReason::EndOfHistory(dir))
            }
        }
    }

    /// The last instruction of `vm` before the cursor that wrote (changed)
    /// guest-virtual bytes `[addr, addr + len)`; the cursor does not move.
    pub fn last_write(&mut self, vm: usize, addr: u64, len: u64) -> Result<Option<Pos>, SessionError> {
        let from = self.position(vm)?;
        let wp = Watchpoint {
            addr,
            len: len.clamp(1, 4096),
            kind: WatchKind::Write,
            vm: Some(vm),
        };
        let probes = search::Probes {
            breakpoints: Vec::new(),
            watchpoints: vec![wp],
        };
        self.cancel.store(false, Ordering::Relaxed);
        let hit = search::backward(&self.trace, vm, from, &probes, self.jobs, &self.cancel, &|_| {})?;
        Ok(hit.map(|h| h.pos))
    }

    /// For a frame sent or received by `vm` at `icount`: the other end(s).
    /// From a send: the receipts (possibly several for a flooded frame); from
    /// a receipt: the send.
    pub fn frame_other_ends(&self, vm: usize, icount: u64) -> Result<Vec<Pos>, SessionError> {
        let index = self.trace.index();
        let mut out = Vec::new();
        for f in index.frames_received_at(vm as u32, icount)? {
            out.push(Pos {
                vm: f.src as usize,
                icount: f.sent_icount,
                vtime_ns: f.sent_vtime_ns,
            });
        }
        if out.is_empty() {
            for f in index.frames_sent_at(vm as u32, icount)? {
                if let (Some(i), Some(t)) = (f.recv_icount, f.recv_vtime_ns) {
                    out.push(Pos {
                        vm: f.dst as usize,
                        icount: i,
                        vtime_ns: t,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Follows the frame sent or received by the focus VM exactly at the
    /// cursor to its other end (the first receipt of a flooded frame).
    pub fn follow_frame(&mut self) -> Result<Option<Pos>, SessionError> {
        let here = self.position(self.focus)?;
        // A frame is received *at* icount n, but sent by the instruction n-1
        // that notified the queue (the cursor stands after it).
        let mut ends = self.frame_other_ends(here.vm, here.icount)?;
        if ends.is_empty() && here.icount > 0 {
            ends = self.frame_other_ends(here.vm, here.icount - 1)?;
        }
        match ends.first().copied() {
            Some(p) => {
                self.focus = p.vm;
                // Stand after the sending instruction, or at the receipt.
                let icount = self.receipt_or_after_send(p);
                self.goto(p.vm, icount).map(Some)
            }
            None => Ok(None),
        }
    }

    fn receipt_or_after_send(&self, p: Pos) -> u64 {
        let index = self.trace.index();
        let is_send = index
            .frames_sent_at(p.vm as u32, p.icount)
            .map(|f| !f.is_empty())
            .unwrap_or(false);
        if is_send {
            (p.icount + 1).min(self.end_icount(p.vm))
        } else {
            p.icount
        }
    }

    /// Adds a bookmark at the focus VM's position.
    pub fn add_bookmark(&mut self, name: &str, note: &str) -> Result<BookmarkRow, SessionError> {
        let p = self.position(self.focus)?;
        let row = self
            .trace
            .index()
            .add_bookmark(name, note, p.vm as u32, p.icount, p.vtime_ns)?;
        self.generation += 1;
        Ok(row)
    }

    /// All bookmarks.
    pub fn bookmarks(&self) -> Result<Vec<BookmarkRow>, SessionError> {
        Ok(self.trace.index().bookmarks()?)
    }

    /// Goes to a bookmark.
    pub fn goto_bookmark(&mut self, name: &str) -> Result<Pos, SessionError> {
        let b = self
            .trace
            .index()
            .bookmark_by_name(name)?
            .ok_or_else(|| TraceError::Invalid(format!("no bookmark called '{name}'")))?;
        self.focus = b.vm as usize;
        self.goto(b.vm as usize, b.icount)
    }

    /// Renames a bookmark.
    pub fn rename_bookmark(&mut self, old: &str, new: &str) -> Result<(), SessionError> {
        self.trace.index().rename_bookmark(old, new)?;
        self.generation += 1;
        Ok(())
    }

    /// Deletes a bookmark.
    pub fn delete_bookmark(&mut self, name: &str) -> Result<(), SessionError> {
        self.trace.index().delete_bookmark(name)?;
        self.generation += 1;
        Ok(())
    }
}
