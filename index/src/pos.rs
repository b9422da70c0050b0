//! Positions and the one order of the whole cluster.
//!
//! Every place of vmrr that compares two moments — the scheduler merging
//! events, the index seeking the next event, the Session stepping the
//! cluster, the views deciding what has happened — uses [`Pos`] and its
//! derived `Ord`. The order is written here once: virtual time, then VM id,
//! then icount. It lives in the index crate because that is the lowest crate
//! that stores positions; the debugger re-exports it.
//!
//! # What a position means
//!
//! `Pos { vtime_ns, vm, icount }` stands *before* instruction `icount` of
//! `vm`, which starts at virtual time `vtime_ns`. Instruction `i` of a VM has
//! the key `(start time of i, vm, i)`, and the events it causes (console
//! output, a frame sent, a marker) carry that key. A halted VM's next
//! instruction starts when it wakes, so its key holds the wake time.
//!
//! At a cursor `c`, an instruction has run when its key is `< c`. Things that
//! happen *between* instructions — a frame handed to the NIC, a checkpoint
//! taken, a fault, the VM stopping — carry the key of the boundary where they
//! happened and count as done when their key is `<= c`: a VM standing at
//! icount `n` has received the frames delivered there (see
//! [`EventKind::at_boundary`]).

use std::fmt;

use crate::rows::{EventKind, EventRow, VmId};

/// A position of one VM in the cluster: before instruction `icount`, at
/// virtual time `vtime_ns`. The derived order *is* the cluster order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Virtual time at which the instruction at `icount` starts.
    pub vtime_ns: u64,
    /// The VM (its position in the cluster configuration).
    pub vm: VmId,
    /// Instructions of `vm` executed before this position.
    pub icount: u64,
}

impl Pos {
    /// The position before instruction `icount` of `vm`, starting at `vtime_ns`.
    pub fn new(vm: VmId, icount: u64, vtime_ns: u64) -> Pos {
        Pos { vtime_ns, vm, icount }
    }

    /// The earliest position at virtual time `t`: a cursor there has run
    /// every instruction that starts before `t` and none that starts at `t`.
    pub fn time(t: u64) -> Pos {
        Pos {
            vtime_ns: t,
            vm: 0,
            icount: 0,
        }
    }

    /// Whether an event at `key` of kind `kind` has happened at cursor `self`
    /// (see the module documentation: instructions before the cursor, and
    /// boundary events at or before it).
    pub fn has_happened(self, key: Pos, kind: EventKind) -> bool {
        key < self || (key == self && kind.at_boundary())
    }
}

impl fmt::Display for Pos {
    /// `vm2:45000 @ 122.219691 ms` (VM by id: views name VMs themselves).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vm{}:{} @ {}.{:06} ms",
            self.vm,
            self.icount,
            self.vtime_ns / 1_000_000,
            self.vtime_ns % 1_000_000
        )
    }
}

/// A place in the order of *events*: a [`Pos`], and optionally one event
/// at that position. Events at one position are ordered by id (the order
/// the recorder added them), so `(pos, event)` orders every event of a
/// trace. [`Position::at`] stands before all events of its position;
/// [`Position::of_event`] stands *on* an event: it and the ones before are behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The position.
    pub pos: Pos,
    /// The event the position stands on, if any.
    pub event: Option<u64>,
}

impl Position {
    /// Before instruction `icount` of `vm`, at virtual time `vtime_ns`.
    pub fn at(vm: VmId, icount: u64, vtime_ns: u64) -> Position {
        Position {
            pos: Pos::new(vm, icount, vtime_ns),
            event: None,
        }
    }

    /// On `event`.
    pub fn of_event(event: &EventRow) -> Position {
        Position {
            pos: event.pos(),
            event: Some(event.id),
        }
    }
}

impl From<Pos> for Position {
    fn from(pos: Pos) -> Position {
        Position { pos, event: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_time_then_vm_then_icount() {
        let a = Pos::new(2, 10, 100);
        let b = Pos::new(0, 900, 101);
        let c = Pos::new(1, 5, 100);
        let mut v = vec![b, a, c];
        v.sort();
        assert_eq!(v, vec![c, a, b]);
        assert!(Pos::time(100) < c);
        assert!(Position::at(1, 5, 100) < Position::of_event(&EventRow::new(1, 5, 100, EventKind::Marker)));
    }

    #[test]
    fn boundary_events_happen_at_the_cursor() {
        let here = Pos::new(1, 50, 1000);
        assert!(here.has_happened(here, EventKind::FrameRecv));
        assert!(!here.has_happened(here, EventKind::Console));
        assert!(here.has_happened(Pos::new(2, 7, 999), EventKind::Console));
        assert!(!here.has_happened(Pos::new(0, 7, 1001), EventKind::FrameRecv));
    }
}
