//! Every hit at the moment a continue stops: VMs that boot in lockstep (the
//! same image, the same rate) reach a breakpoint at the same virtual time,
//! and a debugger that shows a cluster must report each of them, not only
//! the first in the cluster order.
//!
//! [`Session::continue_`] finds the first hit in the cluster order (the last
//! one going backward) and puts the cursor there. At that cursor every other
//! VM stands right next to the winning time, so the hits the other VMs make
//! at that very time are found by looking at one or two instructions of
//! each, not by searching again: going forward, a VM ordered after the
//! winner has run everything that starts before the winning time, so its
//! hit at that time lies in its last instruction or the one it stands
//! before; going backward, a VM ordered before the winner has run
//! everything that starts at or before it, so its hit is the last
//! instruction it ran.

use std::sync::atomic::Ordering;

use super::probes::{pos_of, Probes};
use super::search::{Search, SliceFilter};
use super::{ix, Direction, Hit, HitKind, Pos, Scope, Session, SessionError, StopReason, VmId};

/// How a continue that reports every simultaneous hit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stops {
    /// The hits at the moment the continue stopped, in the order of travel:
    /// cluster order going forward, reverse cluster order going backward.
    /// The cursor is at the first; each other VM stands at or next to its
    /// own (see [`Session::continue_all`]).
    Hits(Vec<Hit>),
    /// No hit: the cursor is at the start (backward) or the end (forward).
    End(Direction),
    /// The search was cancelled before it found a hit; the cursor did not
    /// move. (A cancel while the other VMs' hits at the winning time are
    /// looked for returns the hits found so far.)
    Cancelled,
}

impl Session {
    /// Continues like [`Session::continue_`], and also returns the hits that
    /// the other VMs of `scope` make at the same virtual time, in the order
    /// of travel. The cursor stands at the first hit. Going forward, a VM
    /// whose breakpoint comes at that time stands before it; a VM whose
    /// watchpoint fired at that time has just made the access. Going
    /// backward, the other VMs have run the instruction of their hit: the
    /// cursor reaches each by going to that hit's position.
    pub fn continue_all(
        &mut self,
        scope: Scope,
        dir: Direction,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<Stops, SessionError> {
        let vms: Vec<VmId> = match scope {
            Scope::Vm(vm) => vec![vm],
            Scope::Cluster => self.vm_ids().collect(),
        };
        // Where each VM stood: a hit found below must come after it
        // (forward), as the continue's own search requires.
        let mut starts = Vec::with_capacity(vms.len());
        for &vm in &vms {
            starts.push(self.position(vm)?);
        }
        let first = match self.continue_(scope, dir, progress)? {
            StopReason::Hit(hit) => hit,
            StopReason::EndOfHistory(dir) => return Ok(Stops::End(dir)),
            StopReason::Cancelled => return Ok(Stops::Cancelled),
        };
        let t = first.pos.vtime_ns;
        let winner = first.pos.vm;
        let mut hits = vec![first];
        let others: Vec<(VmId, Pos)> = match dir {
            Direction::Forward => vms
                .iter()
                .zip(&starts)
                .filter(|(vm, _)| **vm > winner)
                .map(|(vm, p)| (*vm, *p))
                .collect(),
            Direction::Backward => vms
                .iter()
                .zip(&starts)
                .rev()
                .filter(|(vm, _)| **vm < winner)
                .map(|(vm, p)| (*vm, *p))
                .collect(),
        };
        for (vm, start) in others {
            let hit = match dir {
                Direction::Forward => self.forward_hit_at(vm, t, start)?,
                Direction::Backward => self.backward_hit_at(vm, t)?,
            };
            if self.cancel.load(Ordering::Relaxed) {
                // The cursor is at the first hit already: report what was
                // found rather than a cancelled search.
                break;
            }
            hits.extend(hit);
        }
        Ok(Stops::Hits(hits))
    }

    /// The hit VM `vm` makes at time `t` going forward, if any, given that
    /// the cursor is at a hit at `t` of a VM ordered before it and that `vm`
    /// stood at `start` when the continue began.
    fn forward_hit_at(&mut self, vm: VmId, t: u64, start: Pos) -> Result<Option<Hit>, SessionError> {
        let probes = Probes::for_vm(ix(vm), &self.breakpoints, &self.watchpoints);
        if probes.breakpoints.is_empty() && probes.watchpoints.is_empty() {
            return Ok(None);
        }
        // `vm` has run every instruction that starts before `t`: a hit at `t`
        // is made by its last one (a watchpoint, reported after the access)
        // or lies right after it (a breakpoint at the instruction it stands
        // before). Replaying from that last instruction up to `t` finds both.
        let Some(last) = self.last_start(vm)? else {
            return Ok(None);
        };
        if last.icount < start.icount {
            // Already run when the continue began: not a new hit.
            return Ok(None);
        }
        let trace = self.trace.clone();
        let filter = SliceFilter::new(&trace, ix(vm), &probes, self.machine(vm)?)?;
        let due = trace.inputs(ix(vm)).partition_point(|i| i.icount <= last.icount);
        self.bring_to_icount(vm, last.icount, due)?;
        // The search runs the live machine itself (as `continue_` does); the
        // next materialisation starts afresh.
        let Some(live) = self.vms[ix(vm)].live.take() else {
            return Ok(None);
        };
        self.vms[ix(vm)].dense.forget();
        let search = Search {
            trace: &trace,
            vm: ix(vm),
            probes: &probes,
            filter: &filter,
            cancel: &self.cancel,
            progress: &|_| {},
        };
        let found = search.forward((live.machine, live.next_input), Some(t))?;
        Ok(found.map(|(hit, _, _)| hit).filter(|h| h.pos.vtime_ns == t))
    }

    /// The hit VM `vm` makes at time `t` going backward, if any, given that
    /// the cursor is at a hit at `t` of a VM ordered after it.
    fn backward_hit_at(&mut self, vm: VmId, t: u64) -> Result<Option<Hit>, SessionError> {
        let probes = Probes::for_vm(ix(vm), &self.breakpoints, &self.watchpoints);
        if probes.breakpoints.is_empty() && probes.watchpoints.is_empty() {
            return Ok(None);
        }
        // `vm` has run every instruction that starts at or before `t`: a hit
        // at `t` is its last instruction.
        let Some(last) = self.last_start(vm)? else {
            return Ok(None);
        };
        if last.vtime_ns != t {
            return Ok(None);
        }
        let trace = self.trace.clone();
        let due = trace.inputs(ix(vm)).partition_point(|i| i.icount <= last.icount);
        self.bring_to_icount(vm, last.icount, due)?;
        let machine = &self.live(vm)?.machine;
        let rip = machine.regs().rip;
        let here = pos_of(ix(vm), machine);
        if probes.breakpoints.contains(&rip) && here.vtime_ns == t {
            return Ok(Some(Hit {
                pos: here,
                kind: HitKind::Breakpoint { addr: rip },
            }));
        }
        if probes.watchpoints.is_empty() {
            return Ok(None);
        }
        // A watchpoint: the search replays the slice holding that instruction.
        let filter = SliceFilter::new(&trace, ix(vm), &probes, self.machine(vm)?)?;
        let search = Search {
            trace: &trace,
            vm: ix(vm),
            probes: &probes,
            filter: &filter,
            cancel: &self.cancel,
            progress: &|_| {},
        };
        let found = search.backward(last.icount + 1, self.jobs)?;
        Ok(found
            .map(|(hit, _)| hit)
            .filter(|h| h.pos.icount == last.icount && h.pos.vtime_ns == t))
    }
}
