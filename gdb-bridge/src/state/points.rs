//! The breakpoints and watchpoints one gdb connection set, per VM.
//!
//! gdb sets each breakpoint once per inferior, after selecting that
//! inferior's thread with `Hg`, so a breakpoint here belongs to one VM and
//! goes into the session scoped to it. Software and hardware breakpoints
//! are the same thing to the engine (it compares RIP before every step, and
//! nothing is ever written into guest memory); the kind is kept only to
//! tell gdb which one was hit. gdb inserts its points when it resumes and
//! removes them when the target stops.

use std::collections::BTreeMap;

use vmrr_debugger::session::{Breakpoint, Session, SessionError, VmId, Watchpoint};

/// Which kind of breakpoint gdb set (it wants the stop reported the same
/// way: `swbreak` or `hwbreak`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// `break` (`Z0`).
    Software,
    /// `hbreak` (`Z1`).
    Hardware,
}

/// gdb's breakpoints and watchpoints, as set in the session.
#[derive(Debug, Default)]
pub struct PointTable {
    /// (VM, address) → (software set, hardware set).
    breaks: BTreeMap<(VmId, u64), (bool, bool)>,
    /// Watchpoints, each scoped to its VM; gdb may set the same one twice.
    watches: Vec<Watchpoint>,
}

fn engine_breakpoint(vm: VmId, addr: u64) -> Breakpoint {
    Breakpoint { addr, vm: Some(vm) }
}

impl PointTable {
    /// The kind of breakpoint gdb has at `addr` in `vm` (software first).
    pub fn break_kind(&self, vm: VmId, addr: u64) -> Option<BreakKind> {
        match self.breaks.get(&(vm, addr)) {
            Some((true, _)) => Some(BreakKind::Software),
            Some((false, true)) => Some(BreakKind::Hardware),
            _ => None,
        }
    }

    /// Whether gdb has this watchpoint set.
    pub fn has_watch(&self, wp: &Watchpoint) -> bool {
        self.watches.contains(wp)
    }

    /// Sets a breakpoint of `kind` at `addr` in `vm`.
    pub fn insert_break(&mut self, s: &mut Session, vm: VmId, addr: u64, kind: BreakKind) {
        let entry = self.breaks.entry((vm, addr)).or_insert((false, false));
        match kind {
            BreakKind::Software => entry.0 = true,
            BreakKind::Hardware => entry.1 = true,
        }
        s.add_breakpoint(engine_breakpoint(vm, addr));
    }

    /// Clears one; false if gdb had not set it.
    pub fn remove_break(&mut self, s: &mut Session, vm: VmId, addr: u64, kind: BreakKind) -> bool {
        let Some(entry) = self.breaks.get_mut(&(vm, addr)) else {
            return false;
        };
        let flag = match kind {
            BreakKind::Software => &mut entry.0,
            BreakKind::Hardware => &mut entry.1,
        };
        if !std::mem::replace(flag, false) {
            return false;
        }
        // A software and a hardware breakpoint at one address are one
        // engine breakpoint: keep it while either remains.
        if *entry == (false, false) {
            self.breaks.remove(&(vm, addr));
            s.remove_breakpoint(engine_breakpoint(vm, addr));
        }
        true
    }

    /// Sets a watchpoint (scoped to its VM).
    pub fn insert_watch(&mut self, s: &mut Session, wp: Watchpoint) -> Result<(), SessionError> {
        s.add_watchpoint(wp)?;
        self.watches.push(wp);
        Ok(())
    }

    /// Clears a watchpoint; false if gdb had not set it.
    pub fn remove_watch(&mut self, s: &mut Session, wp: Watchpoint) -> bool {
        let Some(i) = self.watches.iter().position(|w| *w == wp) else {
            return false;
        };
        self.watches.remove(i);
        if !self.watches.contains(&wp) {
            s.remove_watchpoint(wp);
        }
        true
    }

    /// Takes every point of `vm` out of the session (gdb detached it).
    pub fn clear_vm(&mut self, s: &mut Session, vm: VmId) {
        let keys: Vec<(VmId, u64)> = self.breaks.keys().filter(|k| k.0 == vm).copied().collect();
        for key in keys {
            self.breaks.remove(&key);
            s.remove_breakpoint(engine_breakpoint(key.0, key.1));
        }
        let (gone, kept): (Vec<Watchpoint>, Vec<Watchpoint>) =
            self.watches.drain(..).partition(|w| w.vm == Some(vm));
        self.watches = kept;
        for wp in gone {
            s.remove_watchpoint(wp);
        }
    }

    /// Takes everything out of the session (the connection ended).
    pub fn clear(&mut self, s: &mut Session) {
        for (vm, addr) in std::mem::take(&mut self.breaks).into_keys() {
            s.remove_breakpoint(engine_breakpoint(vm, addr));
        }
        for wp in std::mem::take(&mut self.watches) {
            s.remove_watchpoint(wp);
        }
    }
}
