//! Stops found but not yet reported.
//!
//! gdb's all-stop model reports one stop per resume. When a continue finds
//! hits of several VMs at the same virtual time, the first (in the order of
//! travel) is reported and the others wait here; each is reported on a
//! later resume that resumes its VM, as gdb does with simultaneous events
//! of threads. They are dropped when gdb resumes the other way, and when
//! the cursor was moved by something other than gdb's own resumes (a
//! `monitor goto`, another view of the session).
//!
//! While stops are pending, gdb's idea of where each VM stands matters:
//! gdb re-reads a VM's registers only after resuming it, so a VM it did not
//! resume stands, for gdb, where it stood at the last stop that followed a
//! resume of it. The cluster has one cursor, so a step of one VM moves the
//! others a little in the session; a pending stop is reported only where
//! every VM gdb does not hold at a pending stop stands where gdb believes.

use std::collections::{BTreeMap, VecDeque};

use vmrr_debugger::session::{Direction, Hit, VmId};

/// The pending stops of one connection.
#[derive(Debug, Default)]
pub struct Pending {
    /// The direction of the continue that found them.
    dir: Option<Direction>,
    /// In the order they are to be reported.
    hits: VecDeque<Hit>,
    /// Where gdb believes each VM stands (its icount).
    seen: BTreeMap<VmId, u64>,
}

impl Pending {
    /// Keeps `hits` (in report order), found going `dir`.
    pub fn set(&mut self, dir: Direction, hits: impl IntoIterator<Item = Hit>) {
        self.dir = Some(dir);
        self.hits = hits.into_iter().collect();
        self.seen.clear();
    }

    /// Forgets them all.
    pub fn clear(&mut self) {
        self.hits.clear();
        self.seen.clear();
        self.dir = None;
    }

    /// Whether none is left.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// Notes that gdb saw `vm` stop at `icount`.
    pub fn note_seen(&mut self, vm: VmId, icount: u64) {
        self.seen.insert(vm, icount);
    }

    /// Where gdb believes the VMs stand.
    pub fn seen(&self) -> &BTreeMap<VmId, u64> {
        &self.seen
    }

    /// The direction they were found in.
    pub fn direction(&self) -> Option<Direction> {
        self.dir
    }

    /// Removes and returns the first pending stop that `pick` accepts.
    pub fn take_first(&mut self, pick: impl Fn(&Hit) -> bool) -> Option<Hit> {
        let i = self.hits.iter().position(pick)?;
        self.hits.remove(i)
    }

    /// Drops those `keep` rejects.
    pub fn retain(&mut self, keep: impl FnMut(&Hit) -> bool) {
        self.hits.retain(keep);
    }

    /// The VMs holding a pending stop.
    pub fn vms(&self) -> Vec<VmId> {
        self.hits.iter().map(|h| h.pos.vm).collect()
    }
}
