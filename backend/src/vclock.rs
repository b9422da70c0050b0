//! Virtual time: a pure function of the instruction count plus skipped idle time.
//!
//! Nothing here reads a host clock. `vtime_ns = icount * 1000 / rate + idle_ns`,
//! computed with integer math so every host gets the same answer.

use serde::{Deserialize, Serialize};

/// The virtual clock of one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VClock {
    /// Instructions per virtual microsecond (the configured CPU rate).
    pub instr_per_us: u64,
    /// Nanoseconds skipped while the VM was halted waiting for an interrupt.
    pub idle_ns: u64,
}

impl VClock {
    /// A clock at time zero for the given rate (must be non-zero; checked by `VmConfig`).
    pub fn new(instr_per_us: u64) -> Self {
        VClock {
            instr_per_us: instr_per_us.max(1),
            idle_ns: 0,
        }
    }

    /// Virtual nanoseconds at the given instruction count.
    pub fn now_ns(&self, icount: u64) -> u64 {
        let busy = (icount as u128 * 1000) / self.instr_per_us as u128;
        (busy as u64).saturating_add(self.idle_ns)
    }

    /// Skips idle time forward so that `now_ns(icount) == target_ns` (never backwards).
    pub fn skip_to(&mut self, icount: u64, target_ns: u64) {
        let now = self.now_ns(icount);
        if target_ns > now {
            self.idle_ns += target_ns - now;
        }
    }

    /// The value `rdtsc` returns: the virtual TSC runs at 1 GHz, so it equals virtual ns.
    pub fn tsc(&self, icount: u64) -> u64 {
        self.now_ns(icount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_integer_and_monotonic() {
        let mut c = VClock::new(3);
        assert_eq!(c.now_ns(0), 0);
        assert_eq!(c.now_ns(3), 1000);
        assert_eq!(c.now_ns(4), 1333);
        c.skip_to(4, 5000);
        assert_eq!(c.now_ns(4), 5000);
        c.skip_to(4, 10);
        assert_eq!(c.now_ns(4), 5000, "skip_to never goes back");
        assert_eq!(c.now_ns(7), 6000);
    }
}
