//! The time-travel `Session` over a trace: one cluster cursor, a focus VM,
//! and every movement a view can ask for, as a [`Move`] performed by
//! [`Session::perform`].
//!
//! The gdb bridge and the TUI are two views of one `Session`; they translate
//! keys and packets into moves and draw the outcome. Where the cursor lands
//! is decided here and nowhere else.
//!
//! # The cursor
//!
//! The cursor is a [`Pos`] in the cluster order (defined once, in
//! `vmrr_index::pos`): instruction `i` of a VM has the key `(start time of i,
//! VM, i)`, and at the cursor every instruction whose key is below it has
//! run, and no other. A halted VM's next instruction starts when it wakes,
//! so halted VMs are ordered by their wake time, not by "now". Frames
//! delivered between instructions count as done when their key is at or
//! below the cursor. So every VM's state follows from the cursor alone, and
//! the cut is consistent: a frame received before the cursor was sent at
//! least one link latency earlier.
//!
//! After `goto(vm, n)` the cursor is the key of instruction `n` of `vm`: that
//! VM stands before it, with the frames delivered at `n`. Stepping the
//! cluster runs exactly the next instruction in the order (the one with the
//! least key) and stepping back undoes exactly the last one, so the two undo
//! each other.

mod analyses;
mod bookmarks;
mod cursor;
mod dense;
mod error;
mod events;
mod follow;
pub mod moment;
mod moves;
mod over;
mod points;
mod probes;
mod resume;
mod rounds;
mod search;
mod simultaneous;
mod source;
mod step;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use crate::dwarf::Program;
use crate::trace::Trace;
use dense::DenseCache;
pub use error::SessionError;
pub use follow::{EndKind, FrameEnd, SegmentLink};
pub use moment::{Moment, MomentError, MOMENT_HELP};
pub use moves::{Move, Outcome};
pub use over::{return_site, ReturnSite, Returned};
pub use points::{Breakpoint, WatchKind, Watchpoint, MAX_WATCH_BYTES};
pub use probes::{Hit, HitKind};
pub use simultaneous::Stops;
pub use source::MAX_FRAMES;
pub use vmrr_index::{Pos, VmId};

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
    Vm(VmId),
    /// Any VM of the cluster.
    Cluster,
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

/// One VM's live machine (materialised lazily) and how many recorded
/// inputs it has taken.
struct Live {
    machine: vmrr_backend::Machine,
    next_input: usize,
}

/// What the session keeps per VM: its live machine and the dense snapshots
/// that make stepping back within a slice instant.
#[derive(Default)]
struct VmSlot {
    live: Option<Live>,
    dense: DenseCache,
}

/// The cluster cursor (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    /// The cut.
    pos: Pos,
    /// Whether `pos` is exactly the key of instruction `pos.icount` of
    /// `pos.vm` (that VM then stands at that icount); a bare time is not.
    anchored: bool,
    /// The event the cursor stands on (after going to an event or
    /// following a frame), so views select that one among events at the
    /// same position.
    event: Option<u64>,
}

/// A time-travel session over one trace.
pub struct Session {
    trace: Arc<Trace>,
    focus: VmId,
    cursor: Cursor,
    vms: Vec<VmSlot>,
    breakpoints: Vec<Breakpoint>,
    watchpoints: Vec<Watchpoint>,
    cancel: Arc<AtomicBool>,
    /// Bumped at every move, so views know when to redraw.
    generation: u64,
    jobs: usize,
    /// Each VM's image with its debug information, read on first use
    /// (`None`: the image has none, or could not be read).
    programs: Vec<OnceLock<Option<Arc<Program>>>>,
    /// The VMs' images as analyses name code, read on first use.
    images: OnceLock<Arc<crate::analysis::Images>>,
}

/// A VM id as an index into per-VM tables.
fn ix(vm: VmId) -> usize {
    vm as usize
}

impl Session {
    /// Opens a trace with the cursor at its start.
    ///
    /// The index is opened writable, for bookmarks, only when the trace may
    /// be written ([`crate::trace::is_writable`]); a trace on a read-only
    /// mount or not writable by this user opens read-only
    /// ([`Session::is_read_only`]), and adding a bookmark then says why not.
    pub fn open(dir: &Path) -> Result<Session, SessionError> {
        Session::open_with(dir, crate::trace::is_writable(dir))
    }

    /// Opens a trace read-only even where it could be written (no
    /// bookmarks can be added, analyses are not cached) with the cursor at
    /// its start.
    pub fn open_read_only(dir: &Path) -> Result<Session, SessionError> {
        Session::open_with(dir, false)
    }

    fn open_with(dir: &Path, writable: bool) -> Result<Session, SessionError> {
        let trace = Arc::new(Trace::open(dir, writable)?);
        let n = trace.config().vms.len();
        Ok(Session {
            vms: (0..n).map(|_| VmSlot::default()).collect(),
            trace,
            focus: 0,
            cursor: Cursor {
                pos: Pos::time(0),
                anchored: false,
                event: None,
            },
            breakpoints: Vec::new(),
            watchpoints: Vec::new(),
            cancel: Arc::new(AtomicBool::new(false)),
            generation: 0,
            jobs: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            programs: (0..n).map(|_| OnceLock::new()).collect(),
            images: OnceLock::new(),
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

    /// Every VM id, in order.
    pub fn vm_ids(&self) -> impl Iterator<Item = VmId> {
        0..self.vms.len() as VmId
    }

    /// A function naming VMs (`?` for an unknown one) that does not borrow
    /// the session: what the analyses' text formatters take.
    pub fn vm_namer(&self) -> impl Fn(VmId) -> String + use<> {
        // Printable: a name from an edited index must not reach a terminal raw.
        let names: Vec<String> = self
            .vm_ids()
            .map(|v| crate::describe::printable(self.vm_name(v)))
            .collect();
        move |vm: VmId| names.get(ix(vm)).cloned().unwrap_or_else(|| "?".into())
    }

    /// Name of VM `vm` (`?` for an id that does not exist).
    pub fn vm_name(&self, vm: VmId) -> &str {
        self.trace
            .config()
            .vms
            .get(ix(vm))
            .map(|v| v.name.as_str())
            .unwrap_or("?")
    }

    /// The VM a person means by `text`: its name, or its number counted from
    /// 1 (as gdb numbers inferiors and the TUI's keys 1–9 pick VMs). A name
    /// wins over a number.
    pub fn vm_by_name(&self, text: &str) -> Result<VmId, SessionError> {
        let text = text.trim();
        let vms = &self.trace.config().vms;
        if let Some(i) = vms.iter().position(|v| v.name == text) {
            return Ok(i as VmId);
        }
        match text.parse::<usize>() {
            Ok(n) if (1..=vms.len()).contains(&n) => Ok((n - 1) as VmId),
            _ => Err(SessionError::NoSuchVm {
                name: text.to_string(),
                known: vms.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// The focus VM: the one the views show and "the VM" of a command
    /// that names none.
    pub fn focus(&self) -> VmId {
        self.focus
    }

    /// Changes the focus VM (the cursor stays).
    pub fn set_focus(&mut self, vm: VmId) -> Result<(), SessionError> {
        self.check_vm(vm)?;
        if self.focus != vm {
            self.focus = vm;
            self.generation += 1;
        }
        Ok(())
    }

    /// The cluster cursor.
    pub fn cursor(&self) -> Pos {
        self.cursor.pos
    }

    /// The cluster cursor's virtual time.
    pub fn cursor_vtime(&self) -> u64 {
        self.cursor.pos.vtime_ns
    }

    /// The event the cursor stands on, if the last move went to one.
    pub fn cursor_event(&self) -> Option<u64> {
        self.cursor.event
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

    /// Threads used by searches.
    pub fn set_jobs(&mut self, jobs: usize) {
        self.jobs = jobs.max(1);
    }

    /// VM `vm`'s image with its debug information (line tables, call-frame
    /// information, variables), read once; `None` if it has none.
    pub fn program(&self, vm: VmId) -> Option<Arc<Program>> {
        self.programs
            .get(ix(vm))?
            .get_or_init(|| Program::for_vm(&self.trace, ix(vm)).ok().map(Arc::new))
            .clone()
    }

    /// First icount of `vm` in the trace: 0, or for a fork its cut.
    pub fn start_icount(&self, vm: VmId) -> u64 {
        self.trace.start_icount(ix(vm))
    }

    /// Last icount of `vm` in the trace (its last checkpoint).
    pub fn end_icount(&self, vm: VmId) -> u64 {
        self.trace.end_icount(ix(vm))
    }

    fn check_vm(&self, vm: VmId) -> Result<(), SessionError> {
        if ix(vm) < self.vms.len() {
            Ok(())
        } else {
            Err(SessionError::NoSuchVm {
                name: format!("number {}", u64::from(vm) + 1),
                known: self
                    .trace
                    .config()
                    .vms
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }
}
