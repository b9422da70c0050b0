//! Bringing each VM to where the cursor says, and reading where a VM stands
//! in the cluster order.
//!
//! A VM's state is a function of the cursor (see the module documentation
//! of `session`): the VM the cursor is anchored on stands at exactly its
//! icount; every other VM has run each instruction that starts before the
//! cursor's time, and those that start at that very time when its id is
//! below the cursor's VM (the order breaks ties by VM). Recorded inputs
//! (frames handed to the NIC) are delivered when their position is at or
//! below the cursor.

use vmrr_backend::Machine;

use super::{ix, Cursor, Live, Pos, Session, SessionError, VmId};
use crate::trace::Trace;

/// How far a VM that is not the cursor's runs: every instruction starting
/// before the returned virtual time.
fn time_limit(cursor: &Cursor, vm: VmId) -> u64 {
    let t = cursor.pos.vtime_ns;
    if vm < cursor.pos.vm {
        t.saturating_add(1)
    } else {
        t
    }
}

/// How many of `vm`'s recorded inputs are delivered at `cursor`.
fn inputs_due(trace: &Trace, vm: VmId, cursor: &Cursor) -> usize {
    let inputs = trace.inputs(ix(vm));
    if cursor.anchored && cursor.pos.vm == vm {
        inputs.partition_point(|i| i.icount <= cursor.pos.icount)
    } else {
        inputs.partition_point(|i| Pos::new(vm, i.icount, i.vtime_ns) <= cursor.pos)
    }
}

impl Session {
    /// Brings VM `vm`'s live machine to exactly `icount` (with the inputs
    /// recorded at or before it), through the nearest dense snapshot or
    /// checkpoint when it stands beyond.
    pub(super) fn bring_to_icount(&mut self, vm: VmId, icount: u64, due: usize) -> Result<(), SessionError> {
        let trace = self.trace.clone();
        let w = ix(vm);
        let slot = &mut self.vms[w];
        // Run forward from the live machine only within the target's slice:
        // from further back, the slice's checkpoint (or dense snapshot) is nearer.
        let slice_start = trace
            .checkpoints(w)
            .iter()
            .rev()
            .map(|c| c.icount)
            .find(|&c| c <= icount)
            .unwrap_or(0);
        let stale = slot.live.as_ref().is_some_and(|l| {
            l.machine.icount() > icount || l.next_input > due || l.machine.icount() < slice_start
        });
        if slot.live.is_none() || stale {
            let reuse = slot.live.take().map(|l| l.machine);
            let (machine, next_input) = slot.dense.restore(&trace, w, icount, reuse)?;
            slot.live = Some(Live { machine, next_input });
        }
        if let Some(live) = &mut slot.live {
            if live.machine.icount() < icount || live.next_input < due {
                trace.run_to(w, &mut live.machine, &mut live.next_input, icount, usize::MAX)?;
                slot.dense.note_run(&mut live.machine)?;
            }
        }
        Ok(())
    }

    /// Brings VM `vm`'s live machine to where the cursor puts it.
    pub(super) fn materialise(&mut self, vm: VmId) -> Result<(), SessionError> {
        self.check_vm(vm)?;
        let trace = self.trace.clone();
        let cursor = self.cursor;
        let due = inputs_due(&trace, vm, &cursor);
        if cursor.anchored && cursor.pos.vm == vm {
            self.bring_to_icount(vm, cursor.pos.icount, due)?;
            // A halted VM waits until its next instruction, which the cursor's
            // time names: show it there.
            if let Some(live) = &mut self.vms[ix(vm)].live {
                let m = &mut live.machine;
                if m.is_halted() && m.vtime_ns() < cursor.pos.vtime_ns {
                    m.idle_until(cursor.pos.vtime_ns)
                        .map_err(|e| trace.vm_error(ix(vm), e))?;
                }
            }
            return Ok(());
        }
        let limit = time_limit(&cursor, vm);
        let w = ix(vm);
        let slot = &mut self.vms[w];
        // The last checkpoint whose instructions and inputs all come
        // before the limit (its own clock is past all of them).
        let k = trace
            .checkpoints(w)
            .iter()
            .rposition(|c| c.vtime_ns < limit)
            .unwrap_or(0);
        let checkpoint = trace.checkpoints(w)[k].icount;
        // Replay forward from the live machine only from that checkpoint on.
        let stale = slot.live.as_ref().is_some_and(|l| {
            l.next_input > due
                || l.machine.last_start_ns().is_some_and(|s| s >= limit)
                || l.machine.icount() < checkpoint
        });
        if slot.live.is_none() || stale {
            let reuse = slot.live.take().map(|l| l.machine);
            let (machine, next_input) = slot.dense.restore(&trace, w, checkpoint, reuse)?;
            slot.live = Some(Live { machine, next_input });
        }
        if let Some(live) = &mut slot.live {
            trace.run_to_vtime(w, &mut live.machine, &mut live.next_input, limit)?;
            slot.dense.note_run(&mut live.machine)?;
        }
        Ok(())
    }

    /// VM `vm` at the cursor (materialised on demand).
    pub fn machine(&mut self, vm: VmId) -> Result<&Machine, SessionError> {
        self.materialise(vm)?;
        Ok(&self.live(vm)?.machine)
    }

    /// VM `vm` at the cursor, mutably. A change made through it is not
    /// recorded: any move replays from the recording again.
    pub fn machine_mut(&mut self, vm: VmId) -> Result<&mut Machine, SessionError> {
        self.materialise(vm)?;
        let trace = self.trace.clone();
        self.vms[ix(vm)]
            .live
            .as_mut()
            .map(|l| &mut l.machine)
            .ok_or_else(|| trace.invalid(format!("VM {vm} could not be materialised")).into())
    }

    pub(super) fn live(&self, vm: VmId) -> Result<&Live, SessionError> {
        self.vms[ix(vm)].live.as_ref().ok_or_else(|| {
            self.trace
                .invalid(format!("VM {vm} could not be materialised"))
                .into()
        })
    }

    /// When the live machine of `vm` (as it stands) runs its next
    /// instruction: now, or for a halted VM when it wakes (the wake the
    /// recording holds). `None` at the end of its recording or when it
    /// never wakes again.
    pub(super) fn next_start_of_live(&self, vm: VmId) -> Result<Option<Pos>, SessionError> {
        let m = &self.live(vm)?.machine;
        let icount = m.icount();
        if m.finished().is_some() || icount >= self.end_icount(vm) {
            return Ok(None);
        }
        if !m.is_halted() {
            return Ok(Some(Pos::new(vm, icount, m.vtime_ns())));
        }
        let wake = self.trace.index().wake_at(vm, icount)?;
        Ok(wake.map(|t| Pos::new(vm, icount, t)))
    }

    /// The key of `vm`'s next instruction at the cursor (see
    /// [`next_start_of_live`](Self::next_start_of_live)).
    pub(super) fn next_start(&mut self, vm: VmId) -> Result<Option<Pos>, SessionError> {
        self.materialise(vm)?;
        self.next_start_of_live(vm)
    }

    /// The key of the last instruction `vm` has run at the cursor, `None`
    /// at its start.
    pub(super) fn last_start(&mut self, vm: VmId) -> Result<Option<Pos>, SessionError> {
        let start = self.start_icount(vm);
        let m = self.machine(vm)?;
        // Before a fork's first instruction lies its parent's history.
        if m.icount() <= start {
            return Ok(None);
        }
        Ok(m.last_start_ns().map(|t| Pos::new(vm, m.icount() - 1, t)))
    }

    /// Where VM `vm` stands in the cluster order: before its next
    /// instruction, at the time that instruction starts (for the VM the
    /// cursor is anchored on, the cursor itself).
    pub fn position(&mut self, vm: VmId) -> Result<Pos, SessionError> {
        if self.cursor.anchored && self.cursor.pos.vm == vm {
            self.materialise(vm)?;
            return Ok(self.cursor.pos);
        }
        match self.next_start(vm)? {
            Some(p) => Ok(p),
            None => {
                let m = &self.live(vm)?.machine;
                Ok(Pos::new(vm, m.icount(), m.vtime_ns()))
            }
        }
    }

    /// Puts the cursor on instruction `icount` of `vm` (that VM stands
    /// before it); every other VM follows the cursor. Returns the cursor.
    pub(super) fn anchor(&mut self, vm: VmId, icount: u64, event: Option<u64>) -> Result<Pos, SessionError> {
        self.check_vm(vm)?;
        let (start, end) = (self.start_icount(vm), self.end_icount(vm));
        if icount < start {
            return Err(SessionError::BeforeStart {
                vm: self.vm_name(vm).to_string(),
                icount,
                start,
            });
        }
        if icount > end {
            return Err(SessionError::PastEnd {
                vm: self.vm_name(vm).to_string(),
                icount,
                end,
            });
        }
        let due = self.trace.inputs(ix(vm)).partition_point(|i| i.icount <= icount);
        self.bring_to_icount(vm, icount, due)?;
        let pos = match self.next_start_of_live(vm)? {
            Some(p) => p,
            None => Pos::new(vm, icount, self.live(vm)?.machine.vtime_ns()),
        };
        self.cursor = Cursor {
            pos,
            anchored: true,
            event,
        };
        self.generation += 1;
        Ok(pos)
    }

    /// Puts the cursor at virtual time `t`: every VM has run the
    /// instructions that start before `t`.
    pub(super) fn set_time(&mut self, t: u64) {
        self.cursor = Cursor {
            pos: Pos::time(t),
            anchored: false,
            event: None,
        };
        self.generation += 1;
    }
}
