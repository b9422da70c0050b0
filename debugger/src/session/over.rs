//! Moves that run until a frame returns: `finish` (until the current
//! function returns), `next` (one instruction or source range, with calls
//! run through) and `until` (to an address or the frame's return). Each is a
//! continue to a temporary breakpoint with the stack pointer checked, so it
//! is as fast as a continue: the execution index skips the slices between.

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic};
use vmrr_backend::Machine;

use super::{Breakpoint, Direction, Hit, HitKind, Pos, Scope, Session, SessionError, StopReason, VmId};
use crate::dwarf::{MachineTarget, Program};

/// Where a frame returns to: the return address, and the stack pointer
/// just after the return (the frame's canonical frame address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturnSite {
    /// The address execution continues at.
    pub addr: u64,
    /// RSP once the frame has returned.
    pub cfa: u64,
}

/// The instruction at `addr` of `m`.
fn instruction_at(m: &Machine, addr: u64) -> Instruction {
    let mut bytes = [0u8; 15];
    let n = m.read_virt(addr, &mut bytes);
    Decoder::with_ip(m.bitness(), &bytes[..n], addr, DecoderOptions::NONE).decode()
}

fn read_u64(m: &Machine, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    (m.read_virt(addr, &mut b) == 8).then(|| u64::from_le_bytes(b))
}

/// Where the function `m` stands in returns to: from the image's
/// call-frame information when `program` has it (exact at every address,
/// also in a function without a frame of its own, such as one ending in a
/// tail call), else from the frame-pointer chain (the kit's guests keep
/// frame pointers): at the entry's `push rbp` and at a `ret` the return
/// address is at RSP; right after `push rbp`, at RSP+8; elsewhere at RBP+8.
pub fn return_site(m: &Machine, program: Option<&Program>) -> Option<ReturnSite> {
    if let Some((addr, cfa)) = program.and_then(|p| p.return_site(&MachineTarget(m))) {
        return Some(ReturnSite { addr, cfa });
    }
    let regs = m.regs();
    let here = instruction_at(m, regs.rip);
    let at_rsp = |off: u64| {
        read_u64(m, regs.rsp.wrapping_add(off)).map(|addr| ReturnSite {
            addr,
            cfa: regs.rsp.wrapping_add(off + 8),
        })
    };
    if here.mnemonic() == Mnemonic::Ret
        || (here.mnemonic() == Mnemonic::Push && here.op0_register() == iced_x86::Register::RBP)
    {
        return at_rsp(0);
    }
    let mut prev = [0u8; 1];
    let after_push_rbp = m.read_virt(regs.rip.wrapping_sub(1), &mut prev) == 1
        && prev[0] == 0x55
        && here.mnemonic() == Mnemonic::Mov
        && here.op0_register() == iced_x86::Register::RBP
        && here.op1_register() == iced_x86::Register::RSP;
    if after_push_rbp {
        return at_rsp(8);
    }
    read_u64(m, regs.rbp.wrapping_add(8)).map(|addr| ReturnSite {
        addr,
        cfa: regs.rbp.wrapping_add(16),
    })
}

/// How a run to a return ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Returned {
    /// The frame returned: the VM stands at the return address.
    Yes(Pos),
    /// Something else stopped it first (a breakpoint or watchpoint of the
    /// user, the end of the recording, a cancel).
    No(StopReason),
}

impl Session {
    /// Continues `vm` forward to `site` — a return — or to `extra`, also
    /// stopping at the user's breakpoints and watchpoints on the way, as
    /// gdb's `finish` does. A stop at the return address with another RSP is
    /// a deeper instance of the same code (recursion, a loop calling it):
    /// the search goes on.
    fn run_to_return(
        &mut self,
        vm: VmId,
        site: ReturnSite,
        extra: Option<u64>,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<Returned, SessionError> {
        let temporary: Vec<Breakpoint> = [Some(site.addr), extra]
            .into_iter()
            .flatten()
            .map(|addr| Breakpoint { addr, vm: Some(vm) })
            .filter(|b| !self.breakpoints.contains(b))
            .collect();
        self.breakpoints.extend(temporary.iter().copied());
        let ours = |addr: u64| temporary.iter().any(|b| b.addr == addr);
        let result = (|| loop {
            let stop = self.continue_(Scope::Vm(vm), Direction::Forward, progress)?;
            let StopReason::Hit(Hit {
                pos,
                kind: HitKind::Breakpoint { addr },
            }) = &stop
            else {
                return Ok(Returned::No(stop));
            };
            if !ours(*addr) {
                return Ok(Returned::No(stop));
            }
            if *addr == site.addr && self.machine(vm)?.regs().rsp != site.cfa && Some(*addr) != extra {
                continue;
            }
            return Ok(Returned::Yes(*pos));
        })();
        self.breakpoints.retain(|b| !temporary.contains(b));
        self.generation += 1;
        result
    }

    /// `finish`: runs `vm` until the function it stands in returns (or a
    /// breakpoint or watchpoint stops it first).
    pub fn finish(&mut self, vm: VmId, progress: &(dyn Fn(f64) + Sync)) -> Result<Returned, SessionError> {
        let program = self.program(vm);
        let site = return_site(self.machine(vm)?, program.as_deref()).ok_or_else(|| {
            SessionError::NoFrame(
                "cannot tell where this function returns: no frame pointer chain here".into(),
            )
        })?;
        self.run_to_return(vm, site, None, progress)
    }

    /// `until`/`advance`: runs `vm` to `addr`, or until the current function
    /// returns, whichever comes first.
    pub fn until(
        &mut self,
        vm: VmId,
        addr: u64,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<Returned, SessionError> {
        let program = self.program(vm);
        match return_site(self.machine(vm)?, program.as_deref()) {
            Some(site) => self.run_to_return(vm, site, Some(addr), progress),
            None => {
                // No frame to return from: just the address.
                let site = ReturnSite { addr, cfa: 0 };
                let bp = Breakpoint { addr, vm: Some(vm) };
                let added = !self.breakpoints.contains(&bp);
                if added {
                    self.breakpoints.push(bp);
                }
                let stop = self.continue_(Scope::Vm(vm), Direction::Forward, progress);
                if added {
                    self.breakpoints.retain(|b| *b != bp);
                }
                Ok(match stop? {
                    StopReason::Hit(Hit {
                        pos,
                        kind: HitKind::Breakpoint { addr },
                    }) if addr == site.addr => Returned::Yes(pos),
                    other => Returned::No(other),
                })
            }
        }
    }

    /// `next`: steps `vm` one instruction, running a call through to its
    /// return; with `range`, keeps going while the next instruction is in
    /// it (a source line). A breakpoint or watchpoint inside a call stops it
    /// there.
    pub fn next(
        &mut self,
        vm: VmId,
        range: Option<(u64, u64)>,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<Returned, SessionError> {
        loop {
            let m = self.machine(vm)?;
            let regs = m.regs();
            let instr = instruction_at(m, regs.rip);
            if matches!(
                instr.flow_control(),
                FlowControl::Call | FlowControl::IndirectCall
            ) {
                let site = ReturnSite {
                    addr: instr.next_ip(),
                    cfa: regs.rsp,
                };
                if let Returned::No(stop) = self.run_to_return(vm, site, None, progress)? {
                    return Ok(Returned::No(stop));
                }
            } else if self.step(vm, Direction::Forward)?.is_none() {
                return Ok(Returned::No(StopReason::EndOfHistory(Direction::Forward)));
            }
            let rip = self.machine(vm)?.regs().rip;
            match range {
                Some((start, end)) if (start..end).contains(&rip) => continue,
                _ => return self.position(vm).map(Returned::Yes),
            }
        }
    }

    /// `next` over the source line `vm` stands on (the step-over key of the
    /// TUI): the line's range from the image's line table, or one
    /// instruction where there is no line information.
    pub fn next_line(&mut self, vm: VmId, progress: &(dyn Fn(f64) + Sync)) -> Result<Returned, SessionError> {
        let rip = self.machine(vm)?.regs().rip;
        let range = self.program(vm).and_then(|p| p.line_range(rip));
        self.next(vm, range, progress)
    }
}
