//! The run loop: breakpoints, timer interrupts, idling at `hlt`, choosing
//! how each step is taken, and the inputs that arrive from outside between
//! steps (frames, and replay's wait for one).

use super::{Machine, RunLimit, Stop, RFLAGS_IF};
use crate::decode::{self, NextInstr};
use crate::devices::virtio_net::RxOutcome;
use crate::devices::PIT_IRQ;
use crate::error::{Result, VmError};
use crate::events::{Event, EventKind};

impl Machine {
    /// Runs until the limit or until the guest stops for good.
    pub fn run(&mut self, limit: RunLimit) -> Result<Stop> {
        if let Some(stop) = &self.finished {
            return Ok(stop.clone());
        }
        self.breakpoint_hit = None;
        loop {
            if self.icount >= limit.icount {
                return Ok(Stop::Limit);
            }
            let now = self.clock.now_ns(self.icount);
            if limit.vtime_ns.is_some_and(|t| now >= t) {
                return Ok(Stop::Limit);
            }
            // Breakpoints stop before the instruction at them, except at the
            // position where they were set or last reported (so a search can
            // leave a breakpoint). Every other position is checked, also the
            // first of a run: callers split runs at inputs and chunks.
            if !self.breakpoints.is_empty() && self.breakpoints_passed != Some(self.icount) && !self.halted {
                let rip = self.vcpu.sync_regs().regs.rip;
                if self.breakpoints.contains(&rip) {
                    self.breakpoint_hit = Some(rip);
                    self.breakpoints_passed = Some(self.icount);
                    return Ok(Stop::Limit);
                }
            }
            self.deliver_timer(now);
            let outcome = if self.halted {
                match self.idle(limit.vtime_ns) {
                    // Woken: the interrupt is taken at once, as the loop's next
                    // round would, so that no stop (a breakpoint at the address
                    // after `hlt`, which is not what runs next) falls between
                    // the wake and the instruction it wakes for.
                    Ok(None) if !self.halted => {
                        self.deliver_timer(self.clock.now_ns(self.icount));
                        self.step()
                    }
                    other => other,
                }
            } else {
                self.step()
            };
            match outcome {
                Ok(None) => {}
                Ok(Some(Stop::Limit)) => return Ok(Stop::Limit),
                Ok(Some(stop)) => {
                    self.finished = Some(stop.clone());
                    return Ok(stop);
                }
                Err(e) => {
                    self.finished = Some(Stop::TripleFault);
                    return Err(e);
                }
            }
        }
    }

    /// For replay: a halted VM waits until virtual time `t` exactly as it did
    /// in the recording before an input arrived there (the same idle path,
    /// timer edges included). No effect on a running VM. An error if the VM
    /// wakes and executes an instruction on the way: the replay has diverged.
    pub fn idle_until(&mut self, t: u64) -> Result<()> {
        if !self.halted || self.clock.now_ns(self.icount) >= t {
            return Ok(());
        }
        let at = self.icount;
        self.run(RunLimit {
            icount: at + 1,
            vtime_ns: Some(t),
        })?;
        if self.icount != at {
            return Err(VmError::Unsupported(format!(
                "replay diverged: the VM woke and ran at icount {at} before virtual time {t} ns, where the recording delivered an input"
            )));
        }
        Ok(())
    }

    /// Hands an Ethernet frame to the NIC now, before instruction `icount`.
    /// Returns false if the NIC had to drop it (no receive buffers and a full
    /// backlog). An error if the VM has no NIC.
    pub fn deliver_frame(&mut self, frame: &[u8]) -> Result<bool> {
        let Some(net) = &mut self.devices.net else {
            return Err(VmError::Config("this VM has no NIC to deliver a frame to".into()));
        };
        let outcome = net.receive(&self.ram, frame);
        self.devices.route_net_irq();
        self.push(EventKind::FrameReceived(frame.to_vec()));
        Ok(!matches!(outcome, RxOutcome::Dropped))
    }

    /// Raises IRQ 0 for every PIT edge due by `now` (edges coalesce, as on hardware).
    fn deliver_timer(&mut self, now: u64) {
        if self.devices.pit.next_irq_ns().is_some_and(|t| t <= now) && self.devices.pit.take_irqs(now) > 0 {
            self.devices.pic.raise_irq(PIT_IRQ);
        }
    }

    /// The guest is halted: wake it if an interrupt can be delivered, or skip
    /// virtual time to the next timer edge.
    fn idle(&mut self, vlimit: Option<u64>) -> Result<Option<Stop>> {
        if self.regs().rflags & RFLAGS_IF == 0 {
            return Ok(Some(Stop::HaltedForever));
        }
        if self.irq_ready && self.devices.pic.has_pending() {
            self.halted = false;
            let idle_ns = self.clock.now_ns(self.icount).saturating_sub(self.halt_start_ns);
            self.push(EventKind::Wake { idle_ns });
            return Ok(None);
        }
        // With a NIC, a frame may come later: wait out the window instead.
        let can_be_woken_from_outside = self.devices.net.is_some();
        let Some(next) = self.devices.pit.next_irq_ns() else {
            return Ok(Some(match vlimit {
                Some(limit) if can_be_woken_from_outside => {
                    self.clock.skip_to(self.icount, limit);
                    Stop::Limit
                }
                _ => Stop::IdleForever,
            }));
        };
        if let Some(limit) = vlimit {
            if next >= limit {
                self.clock.skip_to(self.icount, limit);
                return Ok(Some(Stop::Limit));
            }
        }
        self.clock.skip_to(self.icount, next);
        self.deliver_timer(next);
        if !self.devices.pic.has_pending() && !can_be_woken_from_outside {
            // The only wake-up source fired into a masked line; it will keep
            // doing so, and nothing else can wake this VM.
            return Ok(Some(Stop::IdleForever));
        }
        Ok(None)
    }

    /// Executes one step: an interrupt delivery, an emulated instruction, or one KVM single-step.
    fn step(&mut self) -> Result<Option<Stop>> {
        let regs = self.vcpu.sync_regs().regs;
        // Every boundary a step starts from is one a breakpoint can stop at.
        self.log_rip(regs.rip);
        if self.irq_ready && regs.rflags & RFLAGS_IF != 0 && self.devices.pic.has_pending() {
            if let Some(vector) = self.devices.pic.acknowledge() {
                self.inject(vector)?;
                self.push(EventKind::Interrupt(vector));
                let stop = self.kvm_step();
                self.log_after_step(&regs, None);
                self.log_handler_entry(vector, regs.rsp);
                return stop;
            }
        }
        let rip = regs.rip;
        let mut bytes = [0u8; 15];
        let n = self.read_virt(rip, &mut bytes);
        if n == 0 {
            // Let KVM raise the page fault the guest would get.
            let stop = self.kvm_step();
            self.log_after_step(&regs, None);
            return stop;
        }
        let instr = decode::instruction(&bytes[..n], rip, self.bitness());
        let next = decode::classify(&instr);
        match next.kind {
            NextInstr::PrivilegeReturn { cs_offset } => self.check_stays_in_ring0(cs_offset)?,
            NextInstr::Iretq => self.check_stays_in_ring0(Some(8))?,
            _ => {}
        }
        if !self.profile.must_emulate(next.kind) {
            if next.kind == NextInstr::Rdmsr && self.reads_tsc_msr() {
                self.emulate_tsc(next.len, false);
                self.after_emulated();
                return Ok(None);
            }
            self.log_writes_of(&instr, None);
            let stop = self.kvm_step();
            self.log_after_step(&regs, Some(&instr));
            return stop;
        }
        self.emulate(next)
    }

    /// The step just completed was a `hlt`: idle from here until an interrupt.
    pub(super) fn enter_halt(&mut self) {
        self.halted = true;
        self.halt_start_ns = self.clock.now_ns(self.icount);
        self.events.push(Event {
            icount: self.icount - 1,
            vtime_ns: self.clock.now_ns(self.icount - 1),
            kind: EventKind::Halt,
        });
    }
}
