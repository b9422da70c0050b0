//! Registers: `g` and `p` read those of the `Hg` thread's VM at the
//! cursor; `G` and `P` are refused, with the reason (gdb 13 prints the
//! text of a failed register write).

use vmrr_debugger::session::VmId;

use crate::arch::Regs;
use crate::proto::reply::error;
use crate::state::{lock, Target};

/// Why nothing of a recording can be changed, and what to do instead.
pub(crate) const WHY_NO_WRITES: &str = "a recording cannot change. Go where it has the values you want \
     (reverse-continue, watch, monitor goto), or run on with the value changed: \
     monitor fork NEW set VM VAR = VALUE";

impl Target {
    /// The registers of `vm` at the cursor, or the error reply.
    fn registers(&self, vm: VmId) -> Result<Regs, String> {
        let mut s = lock(&self.session);
        let m = s.machine(vm).map_err(|e| {
            (self.log)(&format!("reading the registers of {}: {e}", self.label(vm)));
            error(&format!("vmrr: {e}"))
        })?;
        Ok(Regs::of(&m.general_regs(), &m.system_regs()))
    }

    /// `g`.
    pub(crate) fn read_registers(&self) -> String {
        match self.registers(self.general) {
            Ok(regs) => regs.hex_all(),
            Err(reply) => reply,
        }
    }

    /// `p N`.
    pub(crate) fn read_register(&self, n: u64) -> String {
        let regs = match self.registers(self.general) {
            Ok(regs) => regs,
            Err(reply) => return reply,
        };
        usize::try_from(n)
            .ok()
            .and_then(|n| regs.hex_of(n))
            .unwrap_or_else(|| error(&format!("no register {n:x} in vmrr's target description")))
    }

    /// `G`, `P`: refused. This is also what `call`, `return` and `jump`
    /// run into first, so the message names them.
    pub(crate) fn refuse_register_write(&self) -> String {
        error(&format!(
            "vmrr: registers of {} not changed (nor can call, return or jump run): {WHY_NO_WRITES}.",
            self.label(self.general)
        ))
    }
}
