//! Stepping: one instruction of one VM, or of the whole cluster, either way.

use super::{Direction, Pos, Session, SessionError, VmId};

impl Session {
    /// Goes to instruction `icount` of `vm`: that VM stands before it (with
    /// the frames delivered there) and becomes the focus; the other VMs
    /// follow the cursor.
    pub fn goto(&mut self, vm: VmId, icount: u64) -> Result<Pos, SessionError> {
        let pos = self.anchor(vm, icount, None)?;
        self.focus = vm;
        Ok(pos)
    }

    /// Moves the cursor to virtual time `t`: every VM has run each
    /// instruction that starts before `t`. The focus stays.
    pub fn goto_vtime(&mut self, t: u64) -> Result<(), SessionError> {
        self.set_time(t);
        Ok(())
    }

    /// One instruction of VM `vm`, forward or back; the cursor follows it.
    /// `None` at the ends of its recording.
    pub fn step(&mut self, vm: VmId, dir: Direction) -> Result<Option<Pos>, SessionError> {
        let here = self.machine(vm)?.icount();
        let to = match dir {
            Direction::Forward if here < self.end_icount(vm) => here + 1,
            Direction::Backward if here > self.start_icount(vm) => here - 1,
            _ => return Ok(None),
        };
        self.goto(vm, to).map(Some)
    }

    /// One instruction of the cluster: forward, the instruction with the
    /// least key not yet run; backward, undoes the one with the greatest key
    /// that has run. The VM that moved becomes the focus. `None` when no VM
    /// can move that way.
    pub fn step_cluster(&mut self, dir: Direction) -> Result<Option<Pos>, SessionError> {
        match dir {
            Direction::Forward => self.step_cluster_forward(),
            Direction::Backward => self.step_cluster_backward(),
        }
    }

    fn step_cluster_forward(&mut self) -> Result<Option<Pos>, SessionError> {
        let mut next: Vec<Pos> = Vec::new();
        for vm in self.vm_ids().collect::<Vec<_>>() {
            if let Some(p) = self.next_start(vm)? {
                next.push(p);
            }
        }
        next.sort();
        let Some(&first) = next.first() else {
            return Ok(None);
        };
        // Run that instruction; the cursor then stands before the next one
        // in the order: the mover's own next, or another VM's if it comes first.
        let vm = first.vm;
        let due = self
            .trace
            .inputs(vm as usize)
            .partition_point(|i| i.icount <= first.icount + 1);
        self.bring_to_icount(vm, first.icount + 1, due)?;
        let mover_next = self.next_start_of_live(vm)?;
        let cursor = next.iter().skip(1).copied().chain(mover_next).min();
        match cursor {
            Some(c) => self.anchor(c.vm, c.icount, None)?,
            // Nothing runs after it: stand where the mover stands.
            None => self.anchor(vm, first.icount + 1, None)?,
        };
        self.focus = vm;
        self.position(vm).map(Some)
    }

    fn step_cluster_backward(&mut self) -> Result<Option<Pos>, SessionError> {
        let mut last: Option<Pos> = None;
        for vm in self.vm_ids().collect::<Vec<_>>() {
            if let Some(p) = self.last_start(vm)? {
                last = last.max(Some(p));
            }
        }
        let Some(last) = last else {
            return Ok(None);
        };
        self.anchor(last.vm, last.icount, None)?;
        self.focus = last.vm;
        Ok(Some(last))
    }
}

impl Session {
    /// Steps VM `vm` until its next instruction lies outside `[start, end)`
    /// (at least one step), the end of its recording, or cancellation: what
    /// gdb's range stepping (`vCont;r`) asks for. Calls inside the range are
    /// stepped into, as gdb expects; it steps over them itself. Returns where
    /// the VM stands, `None` if it could not move at all.
    pub fn step_range(&mut self, vm: VmId, start: u64, end: u64) -> Result<Option<Pos>, SessionError> {
        use std::sync::atomic::Ordering;
        self.cancel.store(false, Ordering::Relaxed);
        let first = self.machine(vm)?.icount();
        let last = self.end_icount(vm);
        if first >= last {
            return Ok(None);
        }
        let mut here = first;
        loop {
            here += 1;
            let due = self
                .trace
                .inputs(vm as usize)
                .partition_point(|i| i.icount <= here);
            self.bring_to_icount(vm, here, due)?;
            let m = &self.live(vm)?.machine;
            let rip = m.regs().rip;
            let stopped = m.finished().is_some() || m.icount() != here;
            if stopped || here >= last || !(start..end).contains(&rip) || self.cancel.load(Ordering::Relaxed)
            {
                break;
            }
        }
        let here = self.live(vm)?.machine.icount();
        self.goto(vm, here).map(Some)
    }
}
