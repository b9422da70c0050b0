//! Unwinding the stack with the call-frame information of `.debug_frame`
//! (the kit emits it), or with the frame-pointer chain where an address has
//! none (the kit's assembly: boot and interrupt stubs).

use gimli::{CfaRule, RegisterRule, UnwindSection};

use super::{Debug, Target};

/// DWARF numbers of the registers a frame keeps: 0–15 and 16 (the return
/// address, i.e. the frame's pc).
const NREGS: usize = 17;
const RBP: u16 = 6;
const RSP: u16 = 7;
const RIP: u16 = 16;
/// Registers a callee must preserve (System V x86-64): rbx, rbp, r12–r15.
/// Without a CFI rule they keep their value across a call; the others are
/// unknown in a caller's frame.
const CALLEE_SAVED: [u16; 6] = [3, 6, 12, 13, 14, 15];

/// The registers of one frame that are known, by DWARF number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameRegs(pub [Option<u64>; NREGS]);

impl FrameRegs {
    /// The value of DWARF register `reg`, if known in this frame.
    pub fn get(&self, reg: u16) -> Option<u64> {
        self.0.get(reg as usize).copied().flatten()
    }
}

/// One physical frame: a function activation on the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysicalFrame {
    /// Its pc: the next instruction (frame 0) or the return address.
    pub pc: u64,
    /// Its canonical frame address (the caller's rsp before the call), if known.
    pub cfa: Option<u64>,
    /// Its known registers.
    pub regs: FrameRegs,
}

fn read_u64(target: &dyn Target, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    (target.read(addr, &mut b) == 8).then(|| u64::from_le_bytes(b))
}

/// The CFA and the caller's registers from the CFI row covering `lookup`.
fn step_cfi(debug: &Debug, regs: &FrameRegs, lookup: u64, target: &dyn Target) -> Option<(u64, FrameRegs)> {
    let bases = gimli::BaseAddresses::default();
    let mut ctx = gimli::UnwindContext::new();
    let row = debug
        .frame
        .unwind_info_for_address(&bases, &mut ctx, lookup, |section, bases, offset| {
            section.cie_from_offset(bases, offset)
        })
        .ok()?;
    let cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            regs.get(register.0)?.checked_add_signed(*offset)?
        }
        CfaRule::Expression(_) => return None,
    };
    let mut caller = FrameRegs::default();
    for r in CALLEE_SAVED {
        caller.0[r as usize] = regs.get(r);
    }
    for r in 0..NREGS as u16 {
        let rule = row.register(gimli::Register(r));
        let value = match rule {
            None => continue,
            Some(RegisterRule::Undefined) => None,
            Some(RegisterRule::SameValue) => regs.get(r),
            Some(RegisterRule::Offset(n)) => read_u64(target, cfa.checked_add_signed(n)?),
            Some(RegisterRule::ValOffset(n)) => cfa.checked_add_signed(n),
            Some(RegisterRule::Register(other)) => regs.get(other.0),
            Some(RegisterRule::Constant(v)) => Some(v),
            Some(_) => None,
        };
        caller.0[r as usize] = value;
    }
    caller.0[RSP as usize] = Some(cfa);
    Some((cfa, caller))
}

/// The caller's registers by the frame-pointer chain: `[rbp]` is the
/// caller's rbp and `[rbp+8]` the return address.
fn step_frame_pointer(regs: &FrameRegs, target: &dyn Target) -> Option<(u64, FrameRegs)> {
    let rbp = regs.get(RBP).filter(|&v| v != 0)?;
    let mut caller = FrameRegs::default();
    for r in CALLEE_SAVED {
        caller.0[r as usize] = regs.get(r);
    }
    caller.0[RBP as usize] = Some(read_u64(target, rbp)?);
    caller.0[RIP as usize] = Some(read_u64(target, rbp.checked_add(8)?)?);
    let cfa = rbp.checked_add(16)?;
    caller.0[RSP as usize] = Some(cfa);
    Some((cfa, caller))
}

/// At most `depth` frames from the target's registers outwards. Stops at a
/// return address of 0, a stack that does not grow towards the caller, or
/// a frame nothing can unwind.
pub(crate) fn unwind(debug: &Debug, target: &dyn Target, depth: usize) -> Vec<PhysicalFrame> {
    let mut regs = FrameRegs::default();
    for r in 0..NREGS as u16 {
        regs.0[r as usize] = target.dwarf_reg(r);
    }
    let mut frames: Vec<PhysicalFrame> = Vec::new();
    while frames.len() < depth.max(1) {
        let Some(pc) = regs.get(RIP) else {
            break;
        };
        let lookup = if frames.is_empty() { pc } else { pc.wrapping_sub(1) };
        let step = step_cfi(debug, &regs, lookup, target).or_else(|| step_frame_pointer(&regs, target));
        frames.push(PhysicalFrame {
            pc,
            cfa: step.as_ref().map(|(cfa, _)| *cfa),
            regs,
        });
        let Some((_, caller)) = step else {
            break;
        };
        let (Some(ra), Some(sp), Some(old_sp)) = (caller.get(RIP), caller.get(RSP), regs.get(RSP)) else {
            break;
        };
        // A garbage chain must end, not loop: the stack grows down, so
        // each caller's frame is above its callee's.
        if ra == 0 || sp <= old_sp {
            break;
        }
        regs = caller;
    }
    frames
}
