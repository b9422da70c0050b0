//! gdb's breakpoints and watchpoints, kept by the engine.
//!
//! Software and hardware breakpoints are the same thing here: the engine
//! compares RIP before every step (`Session::add_breakpoint`), so nothing is
//! ever written into guest memory. They apply to every VM, as gdb's
//! breakpoints apply to every thread (`break X thread N` is filtered by gdb
//! itself). gdb inserts its breakpoints when it resumes and removes them when
//! the target stops, so they are in the session only while gdb runs it.

use std::collections::BTreeSet;

use gdbstub::target::ext::breakpoints::{
    Breakpoints, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps, SwBreakpoint, SwBreakpointOps,
    WatchKind as GdbWatchKind,
};
use gdbstub::target::TargetResult;
use vmrr_debugger::session::{Breakpoint, Session, WatchKind, Watchpoint};

use crate::target::{lock, VmrrTarget};

/// Which kind of breakpoint gdb set at an address (it wants the stop
/// reported the same way: `swbreak` or `hwbreak`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// `break`.
    Software,
    /// `hbreak`.
    Hardware,
}

/// The breakpoints and watchpoints this gdb connection set in the session.
#[derive(Debug, Default)]
pub struct PointTable {
    sw: BTreeSet<u64>,
    hw: BTreeSet<u64>,
    watches: Vec<Watchpoint>,
}

fn engine_breakpoint(addr: u64) -> Breakpoint {
    Breakpoint { addr, vm: None }
}

impl PointTable {
    /// The kind of breakpoint gdb has at `addr`, if any (software first).
    pub fn kind_at(&self, addr: u64) -> Option<BreakKind> {
        if self.sw.contains(&addr) {
            Some(BreakKind::Software)
        } else if self.hw.contains(&addr) {
            Some(BreakKind::Hardware)
        } else {
            None
        }
    }

    fn add(&mut self, s: &mut Session, addr: u64, kind: BreakKind) -> bool {
        let known = self.kind_at(addr).is_some();
        let set = match kind {
            BreakKind::Software => &mut self.sw,
            BreakKind::Hardware => &mut self.hw,
        };
        set.insert(addr);
        if !known {
            s.add_breakpoint(engine_breakpoint(addr));
        }
        true
    }

    fn remove(&mut self, s: &mut Session, addr: u64, kind: BreakKind) -> bool {
        let set = match kind {
            BreakKind::Software => &mut self.sw,
            BreakKind::Hardware => &mut self.hw,
        };
        if !set.remove(&addr) {
            return false;
        }
        // A software and a hardware breakpoint at one address are one
        // engine breakpoint: keep it while either remains.
        if self.kind_at(addr).is_none() {
            s.remove_breakpoint(engine_breakpoint(addr));
        }
        true
    }

    fn add_watch(&mut self, s: &mut Session, wp: Watchpoint) -> bool {
        if s.add_watchpoint(wp).is_err() {
            return false;
        }
        self.watches.push(wp);
        true
    }

    fn remove_watch(&mut self, s: &mut Session, wp: Watchpoint) -> bool {
        let Some(i) = self.watches.iter().position(|w| *w == wp) else {
            return false;
        };
        self.watches.remove(i);
        if !self.watches.contains(&wp) {
            s.remove_watchpoint(wp);
        }
        true
    }

    /// Takes everything out of the session (the connection ended).
    pub fn clear(&mut self, s: &mut Session) {
        for addr in std::mem::take(&mut self.sw).union(&std::mem::take(&mut self.hw)) {
            s.remove_breakpoint(engine_breakpoint(*addr));
        }
        for wp in std::mem::take(&mut self.watches) {
            s.remove_watchpoint(wp);
        }
    }
}

fn watchpoint(addr: u64, len: u64, kind: GdbWatchKind) -> Watchpoint {
    Watchpoint {
        addr,
        len,
        kind: match kind {
            GdbWatchKind::Write => WatchKind::Write,
            GdbWatchKind::Read => WatchKind::Read,
            GdbWatchKind::ReadWrite => WatchKind::Access,
        },
        vm: None,
    }
}

impl Breakpoints for VmrrTarget {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for VmrrTarget {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .points
            .add(&mut lock(&self.session), addr, BreakKind::Software))
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .points
            .remove(&mut lock(&self.session), addr, BreakKind::Software))
    }
}

impl HwBreakpoint for VmrrTarget {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .points
            .add(&mut lock(&self.session), addr, BreakKind::Hardware))
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .points
            .remove(&mut lock(&self.session), addr, BreakKind::Hardware))
    }
}

impl HwWatchpoint for VmrrTarget {
    /// Any length the engine watches (1 to 4096 bytes); gdb gets an error
    /// for others and falls back to a software watchpoint.
    fn add_hw_watchpoint(&mut self, addr: u64, len: u64, kind: GdbWatchKind) -> TargetResult<bool, Self> {
        Ok(self
            .points
            .add_watch(&mut lock(&self.session), watchpoint(addr, len, kind)))
    }

    fn remove_hw_watchpoint(&mut self, addr: u64, len: u64, kind: GdbWatchKind) -> TargetResult<bool, Self> {
        Ok(self
            .points
            .remove_watch(&mut lock(&self.session), watchpoint(addr, len, kind)))
    }
}
