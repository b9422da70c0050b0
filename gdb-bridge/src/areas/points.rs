//! `Z`/`z`: breakpoints and watchpoints of the `Hg` thread's VM, checked by
//! the engine (nothing is written into guest memory).

use vmrr_debugger::session::{WatchKind, Watchpoint, MAX_WATCH_BYTES};

use crate::proto::packet::{Point, PointKind};
use crate::proto::reply::error;
use crate::state::{lock, BreakKind, Target};

impl Target {
    /// The watchpoint of a `Z2`–`Z4` for the `Hg` VM.
    fn watchpoint(&self, point: Point, kind: WatchKind) -> Watchpoint {
        Watchpoint {
            addr: point.addr,
            len: point.size,
            kind,
            vm: Some(self.general),
        }
    }

    /// `Z`.
    pub(crate) fn insert_point(&mut self, point: Point) -> String {
        let vm = self.general;
        let session = self.session.clone();
        let mut s = lock(&session);
        let watch = match point.kind {
            PointKind::Software | PointKind::Hardware => {
                let kind = if point.kind == PointKind::Software {
                    BreakKind::Software
                } else {
                    BreakKind::Hardware
                };
                self.points.insert_break(&mut s, vm, point.addr, kind);
                return "OK".into();
            }
            PointKind::Write => WatchKind::Write,
            PointKind::Read => WatchKind::Read,
            PointKind::Access => WatchKind::Access,
        };
        if point.size == 0 || point.size > MAX_WATCH_BYTES || point.addr.checked_add(point.size).is_none() {
            // gdb then falls back to a software watchpoint (single-stepping).
            return error(&format!(
                "a vmrr watchpoint covers 1 to {MAX_WATCH_BYTES} bytes within the address space, not {} at {:#x}",
                point.size, point.addr
            ));
        }
        let wp = self.watchpoint(point, watch);
        match self.points.insert_watch(&mut s, wp) {
            Ok(()) => "OK".into(),
            Err(e) => error(&format!("vmrr: {e}")),
        }
    }

    /// `z`. Removing what was never set is an error, as gdbserver answers.
    pub(crate) fn remove_point(&mut self, point: Point) -> String {
        let vm = self.general;
        let session = self.session.clone();
        let mut s = lock(&session);
        let removed = match point.kind {
            PointKind::Software => self
                .points
                .remove_break(&mut s, vm, point.addr, BreakKind::Software),
            PointKind::Hardware => self
                .points
                .remove_break(&mut s, vm, point.addr, BreakKind::Hardware),
            PointKind::Write => self
                .points
                .remove_watch(&mut s, self.watchpoint(point, WatchKind::Write)),
            PointKind::Read => self
                .points
                .remove_watch(&mut s, self.watchpoint(point, WatchKind::Read)),
            PointKind::Access => self
                .points
                .remove_watch(&mut s, self.watchpoint(point, WatchKind::Access)),
        };
        if removed {
            "OK".into()
        } else {
            error(&format!(
                "no such breakpoint or watchpoint at {:#x} in {}",
                point.addr,
                self.label(vm)
            ))
        }
    }
}
