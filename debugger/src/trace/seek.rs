//! Materialising a VM at any position: running a restored machine forward
//! while handing it the recorded inputs (frames) at their exact (icount,
//! virtual time).

use vmrr_backend::{Machine, RunLimit, Stop};

use super::open::{Input, Trace};
use super::TraceError;

impl Trace {
    /// Runs `machine` (which has taken `*next` inputs) to `icount`, delivering
    /// recorded inputs on the way, at most `input_limit` of them in total.
    pub fn run_to(
        &self,
        vm: usize,
        machine: &mut Machine,
        next: &mut usize,
        icount: u64,
        input_limit: usize,
    ) -> Result<Stop, TraceError> {
        let inputs = self.inputs(vm);
        loop {
            let pending = inputs
                .get(*next)
                .filter(|i| *next < input_limit && i.icount <= icount);
            let target = pending.map(|i| i.icount).unwrap_or(icount);
            let stop = machine
                .run(RunLimit::icount(target))
                .map_err(|e| self.vm_error(vm, e))?;
            // A breakpoint stop comes before any input due at that icount.
            if stop.is_final() || machine.breakpoint_hit().is_some() {
                return Ok(stop);
            }
            match pending {
                Some(input) if machine.icount() == input.icount => {
                    self.deliver(vm, machine, input)?;
                    *next += 1;
                }
                _ => return Ok(stop),
            }
        }
    }

    /// Hands `input` to `machine`, which stands at the input's icount: a
    /// halted VM first idles to the input's virtual time, as it did when recorded.
    fn deliver(&self, vm: usize, machine: &mut Machine, input: &Input) -> Result<(), TraceError> {
        machine
            .idle_until(input.vtime_ns)
            .map_err(|e| self.vm_error(vm, e))?;
        machine
            .deliver_frame(&input.frame)
            .map_err(|e| self.vm_error(vm, e))?;
        Ok(())
    }

    /// Runs `machine` up to virtual time `t` (every instruction starting before
    /// `t` executed), delivering the inputs recorded before `t`.
    pub fn run_to_vtime(
        &self,
        vm: usize,
        machine: &mut Machine,
        next: &mut usize,
        t: u64,
    ) -> Result<Stop, TraceError> {
        let inputs = self.inputs(vm);
        while let Some(input) = inputs.get(*next).filter(|i| i.vtime_ns < t) {
            let stop = machine
                .run(RunLimit::icount(input.icount))
                .map_err(|e| self.vm_error(vm, e))?;
            if stop.is_final() || machine.icount() != input.icount {
                return Ok(stop);
            }
            self.deliver(vm, machine, input)?;
            *next += 1;
        }
        machine
            .run(RunLimit {
                icount: self.end_icount(vm),
                vtime_ns: Some(t),
            })
            .map_err(|e| self.vm_error(vm, e))
    }

    /// Materialises `vm` at `icount` (after the inputs delivered there):
    /// restores the nearest checkpoint at or before it and replays forward.
    pub fn seek(&self, vm: usize, icount: u64) -> Result<Machine, TraceError> {
        if icount < self.start_icount(vm) {
            return Err(TraceError::Invalid(format!(
                "icount {icount} is before the start of VM '{}' in this trace ({}): it is a fork; its parent holds the earlier history",
                self.config().vms[vm].name,
                self.start_icount(vm)
            )));
        }
        if icount > self.end_icount(vm) {
            return Err(TraceError::Invalid(format!(
                "icount {icount} is past the end of VM '{}' in this trace ({})",
                self.config().vms[vm].name,
                self.end_icount(vm)
            )));
        }
        let k = self
            .checkpoints(vm)
            .iter()
            .rposition(|c| c.icount <= icount)
            .unwrap_or(0);
        let (mut machine, mut next) = self.machine_at_checkpoint(vm, k)?;
        self.run_to(vm, &mut machine, &mut next, icount, usize::MAX)?;
        Ok(machine)
    }
}
