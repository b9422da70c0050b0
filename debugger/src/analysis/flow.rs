//! What one step did to a value: which part of a place it wrote, and
//! where it took those bytes from. The data-flow rules of
//! [`super::origin`], one instruction at a time.
//!
//! A copy keeps bytes as they are (`mov`, `push`/`pop`, `movs`, `stos`,
//! `xchg`, a `cmov` whose condition held, the low bytes of a `movzx`), so
//! the chain follows the very bytes asked about. An instruction with one
//! varying input (`add eax, 1`, `bswap`, `shl`) transforms it: the chain
//! follows that input whole. No varying input is a constant; two or more
//! (`add eax, ebx`, `imul`, the flags of `setcc`) mix sources: the chain
//! stops there and names them.

use iced_x86::{ConditionCode, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register};
use vmrr_backend::regs::{Gpr, SubRegister};

pub(crate) use super::loc::{hex_value, parse_reg, reg_bytes, reg_name, Loc};

use super::steps::{is_string, MemOp, SliceSteps, Step};

/// Where the written bytes came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// The same bytes, moved from there.
    Copy(Loc),
    /// One varying input, changed by `op`.
    Transform {
        /// The input (whole).
        from: Loc,
        /// The instruction.
        op: String,
    },
    /// A constant (described).
    Const(String),
    /// Something from outside the program (described).
    Input(String),
    /// Several varying inputs combined by `op`.
    Mix {
        /// The inputs.
        from: Vec<Loc>,
        /// The instruction.
        op: String,
    },
    /// Nothing vmrr can follow (described).
    Unknown(String),
}

/// The part of `target` that step `i` wrote (the instruction, not the card).
pub(crate) fn written(rec: &SliceSteps, i: usize, target: &Loc) -> Option<Loc> {
    let step = &rec.steps[i];
    match target {
        Loc::Mem { .. } => step.mem.iter().filter(|m| m.write).find_map(|m| {
            let pa = m.pa?;
            target.overlap(&Loc::Mem { pa, len: m.len })
        }),
        Loc::Reg { gpr, .. } => {
            let after = rec.regs_after(i);
            if step.interrupt.is_some() || *gpr == Gpr::Rip {
                // The CPU's own writes: a register counts as written when it changed.
                return (after[*gpr] != step.regs[*gpr]).then_some(*target);
            }
            let info = InstructionInfoFactory::new().info(&step.instr).clone();
            if *gpr == Gpr::Rflags {
                return (step.instr.rflags_modified() != 0).then_some(*target);
            }
            if is_cmov(step.instr.mnemonic()) && !condition_holds(&step.instr, step.regs[Gpr::Rflags]) {
                // A cmov that did not move keeps the low 32 bits; only its
                // 32-bit form zeroes the upper half.
                let r = step.instr.op0_register();
                return (r.size() == 4)
                    .then(|| {
                        target.overlap(&Loc::Reg {
                            gpr: *gpr,
                            lo: 4,
                            hi: 8,
                        })
                    })
                    .flatten();
            }
            info.used_registers().iter().find_map(|u| {
                let writes = matches!(
                    u.access(),
                    OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
                );
                let loc = Loc::of_register(u.register()).filter(|_| writes)?;
                // A 32-bit write zeroes the upper half too.
                let loc = match loc {
                    Loc::Reg { gpr, lo: 0, hi: 4 } => Loc::Reg { gpr, lo: 0, hi: 8 },
                    l => l,
                };
                target.overlap(&loc)
            })
        }
    }
}

fn is_cmov(m: Mnemonic) -> bool {
    format!("{m:?}").starts_with("Cmov")
}

fn is_setcc(m: Mnemonic) -> bool {
    format!("{m:?}").starts_with("Set")
}

/// Whether the condition of a `cmovcc`/`setcc`/`jcc` holds with `rflags`.
fn condition_holds(instr: &iced_x86::Instruction, rflags: u64) -> bool {
    let f = |bit: u32| rflags & (1 << bit) != 0;
    let (cf, pf, zf, sf, of) = (f(0), f(2), f(6), f(7), f(11));
    match instr.condition_code() {
        ConditionCode::o => of,
        ConditionCode::no => !of,
        ConditionCode::b => cf,
        ConditionCode::ae => !cf,
        ConditionCode::e => zf,
        ConditionCode::ne => !zf,
        ConditionCode::be => cf || zf,
        ConditionCode::a => !cf && !zf,
        ConditionCode::s => sf,
        ConditionCode::ns => !sf,
        ConditionCode::p => pf,
        ConditionCode::np => !pf,
        ConditionCode::l => sf != of,
        ConditionCode::ge => sf == of,
        ConditionCode::le => zf || sf != of,
        ConditionCode::g => !zf && sf == of,
        ConditionCode::None => true,
    }
}

/// An explicit operand of a step: where its bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operand {
    Place(Loc),
    /// Memory that could not be translated, or lies outside guest RAM (a
    /// device register), at this guest-physical (or virtual) address.
    Outside(u64),
    Imm(u64),
}

/// What data flow needs to know about the machine.
pub(crate) struct FlowCtx {
    /// Guest RAM size: physical addresses beyond are device registers.
    pub ram_bytes: u64,
}

/// The memory a step accessed at `va` (read or written as asked), as a place.
fn mem_at(step: &Step, va: u64, len: u64, ctx: &FlowCtx) -> Operand {
    let found: Option<&MemOp> = step.mem.iter().find(|m| m.va <= va && va < m.va + m.len);
    match found.and_then(|m| m.pa.map(|pa| (m, pa + (va - m.va)))) {
        Some((_, pa)) if pa >= ctx.ram_bytes => Operand::Outside(pa),
        Some((m, pa)) => Operand::Place(Loc::Mem {
            pa,
            len: len.min(m.va + m.len - va),
        }),
        None => Operand::Outside(va),
    }
}

/// Explicit operand `op` of step `step`.
fn operand(step: &Step, op: u32, ctx: &FlowCtx) -> Option<Operand> {
    let ins = &step.instr;
    match ins.op_kind(op) {
        OpKind::Register => Loc::of_register(ins.op_register(op)).map(Operand::Place),
        OpKind::Memory => {
            let va = ins.virtual_address(op, 0, |reg, _, _| match reg {
                Register::None | Register::ES | Register::CS | Register::SS | Register::DS => Some(0),
                r => SubRegister::from_iced(r).map(|s| (step.regs[s.gpr] >> s.shift) & mask(s.bits)),
            })?;
            Some(mem_at(step, va, ins.memory_size().size() as u64, ctx))
        }
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
            Some(Operand::Imm(ins.near_branch_target()))
        }
        k if format!("{k:?}").starts_with("Immediate") => ins.try_immediate(op).ok().map(Operand::Imm),
        _ => None,
    }
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Bytes `part` of `dst` copied from `src` (a move, possibly widening).
fn copy(dst: Operand, src: Operand, part: &Loc, step: &Step, extension: &str) -> Source {
    let offset = match (dst, part) {
        (Operand::Place(Loc::Reg { lo, .. }), Loc::Reg { lo: plo, .. }) => u64::from(plo - lo),
        (Operand::Place(Loc::Mem { pa, .. }), Loc::Mem { pa: ppa, .. }) => ppa.saturating_sub(pa),
        _ => 0,
    };
    match src {
        Operand::Imm(v) => Source::Const(format!("{v:#x} (an immediate of {})", step.instr)),
        Operand::Outside(a) => Source::Input(format!("a device register at {a:#x} ({})", step.instr)),
        Operand::Place(from) => {
            let avail = from.len().saturating_sub(offset);
            if avail == 0 {
                return if extension == "sign" {
                    Source::Transform {
                        from,
                        op: format!("sign extension by {}", step.instr),
                    }
                } else {
                    Source::Const(format!("0 (upper bytes zeroed by {})", step.instr))
                };
            }
            let n = part.len().min(avail);
            Source::Copy(match from {
                Loc::Mem { pa, .. } => Loc::Mem {
                    pa: pa + offset,
                    len: n,
                },
                Loc::Reg { gpr, lo, .. } => Loc::Reg {
                    gpr,
                    lo: lo + offset as u8,
                    hi: lo + (offset + n) as u8,
                },
            })
        }
    }
}

/// Where the bytes `part`, written by step `i`, came from.
pub(crate) fn source(rec: &SliceSteps, i: usize, part: &Loc, ctx: &FlowCtx) -> Source {
    use Mnemonic as M;
    let step = &rec.steps[i];
    let after = rec.regs_after(i);
    let ins = &step.instr;
    let regs = &step.regs;
    if let Some(v) = step.interrupt {
        return Source::Input(format!(
            "the CPU entering interrupt {v:#x} (its frame and the handler's first push)"
        ));
    }
    let reg = |g: Gpr| Loc::Reg { gpr: g, lo: 0, hi: 8 };
    let flags_of = |what: &str| Source::Mix {
        from: read_sources(step, ctx),
        op: format!("{what} {ins}"),
    };
    if let Loc::Reg { gpr: Gpr::Rflags, .. } = part {
        return flags_of("the flags of");
    }
    if let Loc::Reg { gpr: Gpr::Rip, .. } = part {
        return Source::Unknown(format!("the instruction pointer, set by {ins}"));
    }
    let stack_slot = |va: u64| mem_at(step, va, 8, ctx);
    let mn = ins.mnemonic();
    match mn {
        M::Rdtsc | M::Rdtscp | M::Rdpid => Source::Input(format!("the virtual time-stamp counter ({ins})")),
        M::Rdrand | M::Rdseed => Source::Input(format!("a random number from the trace's seed ({ins})")),
        M::Cpuid => Source::Const("the CPUID table (cpuid)".into()),
        M::Rdmsr => Source::Input(format!("a model-specific register ({ins})")),
        M::In | M::Insb | M::Insw | M::Insd => Source::Input(format!("an I/O port ({ins})")),
        M::Call => match part {
            Loc::Mem { .. } => Source::Const(format!(
                "the return address {:#x}, pushed by {ins}",
                ins.next_ip()
            )),
            _ => Source::Transform {
                from: reg(Gpr::Rsp),
                op: ins.to_string(),
            },
        },
        M::Push | M::Pushfq => match part {
            Loc::Mem { .. } => {
                let size = if mn == M::Pushfq {
                    8
                } else {
                    ins.stack_pointer_increment().unsigned_abs() as u64
                };
                let dst = stack_slot(regs[Gpr::Rsp].wrapping_sub(size));
                let src = if mn == M::Pushfq {
                    Some(Operand::Place(reg(Gpr::Rflags)))
                } else {
                    operand(step, 0, ctx)
                };
                match src {
                    Some(src) => copy(dst, src, part, step, "sign"),
                    None => Source::Unknown(format!("cannot read the operand of {ins}")),
                }
            }
            _ => Source::Transform {
                from: reg(Gpr::Rsp),
                op: ins.to_string(),
            },
        },
        M::Pop | M::Popfq => {
            let dst = if mn == M::Popfq {
                Some(Operand::Place(reg(Gpr::Rflags)))
            } else {
                operand(step, 0, ctx)
            };
            let is_rsp =
                matches!(part, Loc::Reg { gpr: Gpr::Rsp, .. }) && ins.op0_register() != Register::RSP;
            match dst {
                Some(dst) if !is_rsp => copy(dst, stack_slot(regs[Gpr::Rsp]), part, step, ""),
                _ => Source::Transform {
                    from: reg(Gpr::Rsp),
                    op: ins.to_string(),
                },
            }
        }
        M::Leave => match part {
            Loc::Reg { gpr: Gpr::Rbp, .. } => copy(
                Operand::Place(reg(Gpr::Rbp)),
                stack_slot(regs[Gpr::Rbp]),
                part,
                step,
                "",
            ),
            _ => Source::Transform {
                from: reg(Gpr::Rbp),
                op: ins.to_string(),
            },
        },
        _ if is_string(ins) => string_source(step, after, part, ctx),
        M::Xchg => {
            let (a, b) = (operand(step, 0, ctx), operand(step, 1, ctx));
            match (a, b) {
                (Some(a), Some(b)) => {
                    let in_a = matches!(a, Operand::Place(l) if l.overlap(part).is_some());
                    if in_a {
                        copy(a, b, part, step, "")
                    } else {
                        copy(b, a, part, step, "")
                    }
                }
                _ => Source::Unknown(format!("cannot read the operands of {ins}")),
            }
        }
        _ if is_cmov(mn) => match (operand(step, 0, ctx), operand(step, 1, ctx)) {
            (Some(dst), Some(src)) if condition_holds(ins, regs[Gpr::Rflags]) => {
                copy(dst, src, part, step, "")
            }
            _ => Source::Const(format!("0 (upper bytes zeroed by {ins})")),
        },
        _ if is_setcc(mn) => flags_of("a condition on the flags:"),
        M::Bswap => Source::Transform {
            from: operand(step, 0, ctx)
                .and_then(|o| match o {
                    Operand::Place(l) => Some(l),
                    _ => None,
                })
                .unwrap_or(*part),
            op: ins.to_string(),
        },
        M::Mov | M::Movzx | M::Movsx | M::Movsxd => match (operand(step, 0, ctx), operand(step, 1, ctx)) {
            (Some(dst), Some(src)) => {
                let ext = if mn == M::Movzx { "zero" } else { "sign" };
                copy(dst, src, part, step, ext)
            }
            _ => Source::Unknown(format!("cannot read the operands of {ins}")),
        },
        M::Cbw | M::Cwde | M::Cdqe => {
            let half = match mn {
                M::Cbw => 1,
                M::Cwde => 2,
                _ => 4,
            };
            let src = Loc::Reg {
                gpr: Gpr::Rax,
                lo: 0,
                hi: half,
            };
            copy(
                Operand::Place(reg(Gpr::Rax)),
                Operand::Place(src),
                part,
                step,
                "sign",
            )
        }
        M::Xor | M::Sub | M::Sbb
            if ins.op_count() == 2
                && ins.op0_kind() == OpKind::Register
                && ins.op1_kind() == OpKind::Register
                && ins.op0_register() == ins.op1_register() =>
        {
            Source::Const(format!("0 ({ins}: a register cleared)"))
        }
        M::Lea => {
            let from: Vec<Loc> = [ins.memory_base(), ins.memory_index()]
                .into_iter()
                .filter(|r| *r != Register::None && *r != Register::RIP)
                .filter_map(Loc::of_register)
                .collect();
            conclude(from, ins.to_string(), after, part)
        }
        _ => conclude(read_sources(step, ctx), ins.to_string(), after, part),
    }
}

/// A string instruction's bytes: `movs` copies RSI's element to RDI's,
/// `stos` stores AL/AX/EAX/RAX; the registers it steps are transformed.
fn string_source(step: &Step, after: &vmrr_backend::GeneralRegs, part: &Loc, ctx: &FlowCtx) -> Source {
    use Mnemonic as M;
    let ins = &step.instr;
    let regs = &step.regs;
    let Loc::Mem { pa, len } = *part else {
        let Loc::Reg { gpr, .. } = *part else {
            return Source::Unknown(ins.to_string());
        };
        if matches!(ins.mnemonic(), M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq) && gpr == Gpr::Rax {
            // The last element loaded: just behind where RSI stands now.
            let size = u64::from(ins.memory_size().size() as u32).max(1);
            let va = if after[Gpr::Rsi] >= regs[Gpr::Rsi] {
                after[Gpr::Rsi] - size
            } else {
                after[Gpr::Rsi] + size
            };
            let src = mem_at(step, va, size, ctx);
            return copy(
                Operand::Place(Loc::Reg { gpr, lo: 0, hi: 8 }),
                src,
                part,
                step,
                "",
            );
        }
        return Source::Transform {
            from: *part,
            op: ins.to_string(),
        };
    };
    // The virtual address of the first byte asked about.
    let Some(w) = step
        .mem
        .iter()
        .find(|m| m.write && m.pa.is_some_and(|p| p <= pa && pa < p + m.len))
    else {
        return Source::Unknown(ins.to_string());
    };
    let va = w.va + (pa - w.pa.unwrap_or(pa));
    let n = len.min(w.va + w.len - va);
    match ins.mnemonic() {
        M::Movsb | M::Movsw | M::Movsd | M::Movsq => {
            let src_va = va.wrapping_sub(regs[Gpr::Rdi]).wrapping_add(regs[Gpr::Rsi]);
            match step
                .mem
                .iter()
                .find(|m| m.read && m.va <= src_va && src_va < m.va + m.len)
            {
                Some(r) => match r.pa {
                    Some(p) => Source::Copy(Loc::Mem {
                        pa: p + (src_va - r.va),
                        len: n.min(r.va + r.len - src_va),
                    }),
                    None => Source::Unknown(format!("{ins} read unmapped memory at {src_va:#x}")),
                },
                None => Source::Unknown(format!("{ins}: no source at {src_va:#x}")),
            }
        }
        M::Stosb | M::Stosw | M::Stosd | M::Stosq => {
            let size = u64::from(ins.memory_size().size() as u32).max(1);
            let lo = (va.wrapping_sub(regs[Gpr::Rdi]) % size) as u8;
            let hi = (u64::from(lo) + n).min(size) as u8;
            Source::Copy(Loc::Reg {
                gpr: Gpr::Rax,
                lo,
                hi,
            })
        }
        _ => Source::Unknown(ins.to_string()),
    }
}

/// The varying inputs of a step: explicit operands it reads (not the
/// registers of an address), and registers it reads implicitly (`mul`'s
/// RAX, the count in CL), plus the carry of `adc`/`sbb`.
fn read_sources(step: &Step, ctx: &FlowCtx) -> Vec<Loc> {
    let ins = &step.instr;
    let info = InstructionInfoFactory::new().info(ins).clone();
    let mut addressing: Vec<Register> = vec![Register::RSP, Register::RIP];
    let mut out: Vec<Loc> = Vec::new();
    let push = |l: Loc, out: &mut Vec<Loc>| {
        if !out.contains(&l) {
            out.push(l);
        }
    };
    for op in 0..ins.op_count() {
        let reads = matches!(
            info.op_access(op),
            OpAccess::Read | OpAccess::CondRead | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        );
        if ins.op_kind(op) == OpKind::Memory {
            addressing.extend([ins.memory_base(), ins.memory_index()]);
        }
        if !reads {
            continue;
        }
        match operand(step, op, ctx) {
            Some(Operand::Place(l)) => push(l, &mut out),
            Some(Operand::Outside(_)) | Some(Operand::Imm(_)) | None => {}
        }
    }
    let explicit: Vec<Register> = (0..ins.op_count())
        .filter(|&op| ins.op_kind(op) == OpKind::Register)
        .map(|op| ins.op_register(op).full_register())
        .collect();
    for u in info.used_registers() {
        let reads = matches!(
            u.access(),
            OpAccess::Read | OpAccess::CondRead | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        );
        let full = u.register().full_register();
        if !reads || explicit.contains(&full) || addressing.iter().any(|a| a.full_register() == full) {
            continue;
        }
        if let Some(l) = Loc::of_register(u.register()) {
            push(l, &mut out);
        }
    }
    if matches!(
        ins.mnemonic(),
        Mnemonic::Adc | Mnemonic::Sbb | Mnemonic::Rcl | Mnemonic::Rcr
    ) {
        push(
            Loc::Reg {
                gpr: Gpr::Rflags,
                lo: 0,
                hi: 8,
            },
            &mut out,
        );
    }
    out
}

/// None, one or several varying inputs: a constant, a transform, a mix.
fn conclude(from: Vec<Loc>, op: String, after: &vmrr_backend::GeneralRegs, part: &Loc) -> Source {
    match from.len() {
        0 => Source::Const(match *part {
            Loc::Reg { gpr, lo, hi } => {
                let v = reg_bytes(after[gpr], lo, hi);
                format!("{} (computed by {op} from constants)", hex_value(&v))
            }
            Loc::Mem { .. } => format!("an immediate of {op}"),
        }),
        1 => Source::Transform { from: from[0], op },
        _ => Source::Mix { from, op },
    }
}
