//! Continue and reverse-continue to breakpoints and watchpoints, and the
//! last write of a range of memory, replaying only the checkpoint slices
//! the execution index says can hold a hit.

use std::sync::atomic::Ordering;

use super::dense::DenseCache;
use super::probes::Probes;
use super::search::{backward_all, Found, Search, SliceFilter};
use super::{
    ix, rounds, Direction, Hit, Live, Pos, Scope, Session, SessionError, StopReason, VmId, WatchKind,
};
use super::{Watchpoint, MAX_WATCH_BYTES};

impl Session {
    /// The probes that apply to `vm`, and which of its slices can hold a hit.
    fn probes_of(&mut self, vm: VmId) -> Result<(Probes, SliceFilter), SessionError> {
        let probes = Probes::for_vm(ix(vm), &self.breakpoints, &self.watchpoints);
        let trace = self.trace.clone();
        let filter = SliceFilter::new(&trace, ix(vm), &probes, self.machine(vm)?)?;
        Ok((probes, filter))
    }

    /// Whether the trace's execution index covers every slice of `vm` (else
    /// searches replay what it does not cover: correct, but slower; `vmrr
    /// index` builds it).
    pub fn has_exec_index(&self, vm: VmId) -> Result<bool, SessionError> {
        Ok(self.trace.exec_index(ix(vm))?.iter().all(Option::is_some))
    }

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
        let vms: Vec<VmId> = match scope {
            Scope::Vm(vm) => {
                self.check_vm(vm)?;
                vec![vm]
            }
            Scope::Cluster => self.vm_ids().collect(),
        };
        let mut filters = Vec::new();
        for &vm in &vms {
            filters.push((vm, self.probes_of(vm)?));
        }
        let searched = filters.len().max(1) as f64;
        let best = match dir {
            Direction::Backward => {
                let unindexed_breakpoints_only = filters
                    .iter()
                    .all(|(_, (p, f))| p.watchpoints.is_empty() && !f.complete());
                if unindexed_breakpoints_only {
                    // No index: replay long runs of slices per core instead.
                    let cancel = self.cancel.clone();
                    if let Some(result) = rounds::continue_backward(self, scope, &cancel, progress) {
                        return result;
                    }
                }
                // Every VM's slices in one newest-first sweep: the search
                // stops as soon as no slice left can beat the best hit.
                let trace = self.trace.clone();
                let probed = |p: &Probes| !(p.breakpoints.is_empty() && p.watchpoints.is_empty());
                let mut froms = Vec::new();
                for (vm, (probes, _)) in &filters {
                    if probed(probes) {
                        froms.push(self.position(*vm)?.icount);
                    }
                }
                let searches: Vec<Search<'_>> = filters
                    .iter()
                    .filter(|(_, (probes, _))| probed(probes))
                    .map(|(vm, (probes, filter))| Search {
                        trace: &trace,
                        vm: ix(*vm),
                        probes,
                        filter,
                        cancel: &self.cancel,
                        progress,
                    })
                    .collect();
                let pairs: Vec<(&Search<'_>, u64)> = searches.iter().zip(froms).collect();
                backward_all(&pairs, self.jobs, progress)?.map(|(hit, found)| (hit, Some(found)))
            }
            Direction::Forward => {
                let mut best: Option<(Hit, Option<Found>)> = None;
                for (i, (vm, (probes, filter))) in filters.iter().enumerate() {
                    if probes.breakpoints.is_empty() && probes.watchpoints.is_empty() {
                        continue;
                    }
                    self.materialise(*vm)?;
                    // The search runs the live machine itself: the span is replayed once.
                    let Some(live) = self.vms[ix(*vm)].live.take() else {
                        continue;
                    };
                    self.vms[ix(*vm)].dense.forget();
                    let limit = best.as_ref().map(|(b, _)| b.pos.vtime_ns);
                    let share = |f: f64| progress((i as f64 + f) / searched);
                    let trace = self.trace.clone();
                    let start = (live.machine, live.next_input);
                    let search = Search {
                        trace: &trace,
                        vm: ix(*vm),
                        probes,
                        filter,
                        cancel: &self.cancel,
                        progress: &share,
                    };
                    let found = search.forward(start, limit)?;
                    if let Some((hit, machine, next_input)) = found {
                        if best.as_ref().is_none_or(|(b, _)| hit.pos < b.pos) {
                            let found = Found {
                                machine,
                                next_input,
                                dense: DenseCache::default(),
                            };
                            best = Some((hit, Some(found)));
                        }
                    }
                }
                best
            }
        };
        if self.cancel.load(Ordering::Relaxed) {
            return Ok(StopReason::Cancelled);
        }
        match best {
            Some((hit, found)) => {
                if let Some(Found {
                    machine,
                    next_input,
                    dense,
                }) = found
                {
                    // The search's machine (and its snapshots) replace the
                    // live ones: the move there replays little or nothing.
                    let slot = &mut self.vms[ix(hit.pos.vm)];
                    if let Some(old) = slot.live.replace(Live { machine, next_input }) {
                        // Kept for the next search's restore.
                        self.trace.recycle(ix(hit.pos.vm), old.machine);
                    }
                    slot.dense = dense;
                }
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
                        self.goto(vm, self.start_icount(vm))?;
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
        let from = self.position(vm)?.icount;
        let probes = Probes {
            breakpoints: Vec::new(),
            watchpoints: vec![Watchpoint {
                addr,
                len: len.clamp(1, MAX_WATCH_BYTES),
                kind: WatchKind::Write,
                vm: Some(vm),
            }],
        };
        let trace = self.trace.clone();
        let filter = SliceFilter::new(&trace, ix(vm), &probes, self.machine(vm)?)?;
        self.cancel.store(false, Ordering::Relaxed);
        let search = Search {
            trace: &trace,
            vm: ix(vm),
            probes: &probes,
            filter: &filter,
            cancel: &self.cancel,
            progress: &|_| {},
        };
        let found = search.backward(from, self.jobs)?;
        Ok(found.map(|(hit, _)| hit.pos))
    }
}
