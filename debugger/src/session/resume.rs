//! Continue and reverse-continue to breakpoints and watchpoints, and the
//! last write of a range of memory.

use std::sync::atomic::Ordering;

use super::search::{self, Probes};
use super::{
    rounds, Direction, Hit, Pos, Scope, Session, SessionError, StopReason, VmId, WatchKind, Watchpoint,
};

impl Session {
    /// Continues forward or backward until a breakpoint or watchpoint hit in
    /// `scope`, the end of the recording, or cancellation. The first hit in
    /// the cluster order wins (the last one going backward). `progress`
    /// gets the fraction of the search done.
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
        let vms: Vec<VmId> = match scope {
            Scope::Vm(vm) => {
                self.check_vm(vm)?;
                vec![vm]
            }
            Scope::Cluster => self.vm_ids().collect(),
        };
        let mut best: Option<Hit> = None;
        for &vm in &vms {
            let from = self.position(vm)?;
            let probes = Probes::for_vm(vm as usize, &self.breakpoints, &self.watchpoints);
            let hit = match dir {
                Direction::Forward => {
                    let limit = best.as_ref().map(|b| b.pos.vtime_ns);
                    search::forward(
                        &self.trace,
                        vm as usize,
                        from,
                        &probes,
                        limit,
                        &self.cancel,
                        progress,
                    )?
                }
                Direction::Backward => search::backward(
                    &self.trace,
                    vm as usize,
                    from,
                    &probes,
                    self.jobs,
                    &self.cancel,
                    progress,
                )?,
            };
            if self.cancel.load(Ordering::Relaxed) {
                return Ok(StopReason::Cancelled);
            }
            if let Some(hit) = hit {
                let better = match (&best, dir) {
                    (None, _) => true,
                    (Some(b), Direction::Forward) => hit.pos < b.pos,
                    (Some(b), Direction::Backward) => hit.pos > b.pos,
                };
                if better {
                    best = Some(hit);
                }
            }
        }
        match best {
            Some(hit) => {
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
    pub(super) fn find_last_write(
        &mut self,
        vm: VmId,
        addr: u64,
        len: u64,
    ) -> Result<Option<Pos>, SessionError> {
        let from = self.position(vm)?;
        let wp = Watchpoint {
            addr,
            len: len.clamp(1, super::MAX_WATCH_BYTES),
            kind: WatchKind::Write,
            vm: Some(vm),
        };
        let probes = Probes {
            breakpoints: Vec::new(),
            watchpoints: vec![wp],
        };
        self.cancel.store(false, Ordering::Relaxed);
        let hit = search::backward(
            &self.trace,
            vm as usize,
            from,
            &probes,
            self.jobs,
            &self.cancel,
            &|_| {},
        )?;
        Ok(hit.map(|h| h.pos))
    }
}
