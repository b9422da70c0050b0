//! Breakpoints and watchpoints of a session: what a continue stops at.
//! The engine checks them (nothing is written into guest memory).

use super::{Session, SessionError, VmId};

/// A breakpoint: stop before executing the instruction at `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Breakpoint {
    /// Guest-virtual address.
    pub addr: u64,
    /// Only in this VM (None: any).
    pub vm: Option<VmId>,
}

/// What a watchpoint watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchKind {
    /// A write that changes the value.
    Write,
    /// A read.
    Read,
    /// A read or a write.
    Access,
}

/// A watchpoint on guest-virtual memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Watchpoint {
    /// Start address.
    pub addr: u64,
    /// Bytes watched (1..=4096).
    pub len: u64,
    /// What triggers it.
    pub kind: WatchKind,
    /// Only in this VM (None: any).
    pub vm: Option<VmId>,
}

/// Most bytes one watchpoint covers.
pub const MAX_WATCH_BYTES: u64 = 4096;

impl Session {
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

    /// Adds a watchpoint (no duplicates).
    pub fn add_watchpoint(&mut self, wp: Watchpoint) -> Result<(), SessionError> {
        if wp.len == 0 || wp.len > MAX_WATCH_BYTES {
            return Err(SessionError::WatchLength(wp.len));
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
}
