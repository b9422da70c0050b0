//! Source-level requests on a session: the call stack with its variables
//! at the cursor, breakpoints at `file:line` or a function, watchpoints on
//! a variable. The DWARF is read by [`crate::dwarf::Program`]; the views
//! (the TUI, the gdb bridge) pass the VM's program so each reads it once.

use super::{Breakpoint, Session, SessionError, VmId, WatchKind, Watchpoint};
use crate::dwarf::{parse_watch, FunctionScope, MachineTarget, Program, Resolved};

/// Physical frames unwound at most.
pub const MAX_FRAMES: usize = 32;

impl Session {
    /// VM `vm`'s call stack at the cursor, innermost scope first (inlined
    /// functions before the function they were inlined into), with each
    /// scope's arguments and locals.
    pub fn source_stack(&mut self, vm: VmId, program: &Program) -> Result<Vec<FunctionScope>, SessionError> {
        let m = self.machine(vm)?;
        Ok(program.stack(&MachineTarget(m), MAX_FRAMES))
    }

    /// Adds breakpoints in `vm` at a location (`kvstore.c:369`, `kv_apply`,
    /// `0x100490`), or removes them if they are all there already. Returns
    /// whether they were added, and what the location resolved to.
    pub fn toggle_breakpoint_at(
        &mut self,
        vm: VmId,
        program: &Program,
        location: &str,
    ) -> Result<(bool, Resolved), SessionError> {
        self.check_vm(vm)?;
        let resolved = program.resolve_location(location)?;
        let bps: Vec<Breakpoint> = resolved
            .addrs
            .iter()
            .map(|&addr| Breakpoint { addr, vm: Some(vm) })
            .collect();
        let all_there = bps.iter().all(|b| self.breakpoints().contains(b));
        for b in bps {
            if all_there {
                self.remove_breakpoint(b);
            } else {
                self.add_breakpoint(b);
            }
        }
        Ok((!all_there, resolved))
    }

    /// Adds a watchpoint on writes in `vm` to what `expr` names (a variable
    /// in scope at the cursor, a global, `name[i]`, `0xaddr[:len]`), or
    /// removes it if it is there. Returns whether it was added, the
    /// watchpoint and the name it was given.
    pub fn toggle_watch_expr(
        &mut self,
        vm: VmId,
        program: &Program,
        expr: &str,
    ) -> Result<(bool, Watchpoint, String), SessionError> {
        let parsed = parse_watch(expr)?;
        let stack = self.source_stack(vm, program)?;
        let (addr, len, label) = program.resolve_watch(&parsed, &stack)?;
        let wp = Watchpoint {
            addr,
            len,
            kind: WatchKind::Write,
            vm: Some(vm),
        };
        if self.watchpoints().contains(&wp) {
            self.remove_watchpoint(wp);
            Ok((false, wp, label))
        } else {
            self.add_watchpoint(wp)?;
            Ok((true, wp, label))
        }
    }
}
