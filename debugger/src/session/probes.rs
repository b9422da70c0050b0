//! What a search looks for and how one step is checked: the breakpoints and
//! watchpoints that apply to a VM, the memory an instruction touches, and
//! what a hit is.

use iced_x86::{Decoder, DecoderOptions, InstructionInfoFactory, OpAccess};
use vmrr_backend::regs::address_register;
use vmrr_backend::Machine;

use super::{Breakpoint, Pos, VmId, WatchKind, Watchpoint};
use crate::trace::Trace;
use crate::trace::TraceError;

/// What was hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HitKind {
    /// The instruction at this address is about to run.
    Breakpoint {
        /// The breakpoint's address.
        addr: u64,
    },
    /// A watched range was accessed.
    Watch {
        /// The watchpoint.
        watch: Watchpoint,
        /// Its bytes before the access.
        old: Vec<u8>,
        /// Its bytes after.
        new: Vec<u8>,
    },
}

/// A hit and where it happened. For a breakpoint, the position is before the
/// instruction at the breakpoint. For a watchpoint found going forward it is
/// just after the accessing instruction; going backward it is just before it
/// (so the accessing instruction is the next to run), as gdb shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Where.
    pub pos: Pos,
    /// What.
    pub kind: HitKind,
}

/// Where `m` (the machine of VM `vm`) stands.
pub(super) fn pos_of(vm: usize, m: &Machine) -> Pos {
    Pos::new(vm as VmId, m.icount(), m.vtime_ns())
}

/// The breakpoints and watchpoints that apply to one VM.
#[derive(Debug, Clone, Default)]
pub(super) struct Probes {
    pub breakpoints: Vec<u64>,
    pub watchpoints: Vec<Watchpoint>,
}

impl Probes {
    pub fn for_vm(vm: usize, bps: &[Breakpoint], wps: &[Watchpoint]) -> Probes {
        Probes {
            breakpoints: bps
                .iter()
                .filter(|b| b.vm.is_none_or(|v| v as usize == vm))
                .map(|b| b.addr)
                .collect(),
            watchpoints: wps
                .iter()
                .filter(|w| w.vm.is_none_or(|v| v as usize == vm))
                .copied()
                .collect(),
        }
    }

    pub(super) fn needs_decode(&self) -> bool {
        self.watchpoints.iter().any(|w| w.kind != WatchKind::Write)
    }
}

pub(super) fn read_watch(m: &Machine, w: &Watchpoint) -> Vec<u8> {
    let mut buf = vec![0u8; w.len as usize];
    let n = m.read_virt(w.addr, &mut buf);
    buf.truncate(n);
    buf
}

/// The guest-virtual memory the next instruction reads and writes.
fn accesses(m: &Machine) -> Vec<(u64, u64, bool, bool)> {
    let regs = m.regs();
    let sregs = m.sregs();
    let mut bytes = [0u8; 15];
    let n = m.read_virt(regs.rip, &mut bytes);
    let mut decoder = Decoder::with_ip(m.bitness(), &bytes[..n], regs.rip, DecoderOptions::NONE);
    let instr = decoder.decode();
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(&instr);
    let mut out = Vec::new();
    for mem in info.used_memory() {
        let Some(addr) = mem.virtual_address(0, |reg, _, _| address_register(&regs, &sregs, reg)) else {
            continue;
        };
        // rep string instructions report size 0: count RCX elements instead.
        let size = match mem.memory_size().size() {
            0 => regs.rcx.clamp(1, 1 << 20),
            s => s as u64,
        };
        let (read, write) = match mem.access() {
            OpAccess::Read | OpAccess::CondRead => (true, false),
            OpAccess::Write | OpAccess::CondWrite => (false, true),
            OpAccess::ReadWrite | OpAccess::ReadCondWrite => (true, true),
            _ => (false, false),
        };
        out.push((addr, size, read, write));
    }
    out
}

fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

/// Steps `m` once and says what it hit. `pre` is the position before the step.
pub(super) fn step_and_check(
    trace: &Trace,
    vm: usize,
    m: &mut Machine,
    next: &mut usize,
    probes: &Probes,
    old: &mut [Vec<u8>],
    backward: bool,
) -> Result<Option<Hit>, TraceError> {
    let pre = pos_of(vm, m);
    let mut reads = Vec::new();
    if probes.needs_decode() {
        reads = accesses(m);
    }
    trace.run_to(vm, m, next, pre.icount + 1, usize::MAX)?;
    let post = pos_of(vm, m);
    let mut hit = None;
    for (i, w) in probes.watchpoints.iter().enumerate() {
        let now = read_watch(m, w);
        let changed = now != old[i];
        let touched = reads.iter().any(|&(a, len, r, wr)| {
            overlaps(a, len, w.addr, w.len)
                && match w.kind {
                    WatchKind::Read => r,
                    WatchKind::Access => r || wr,
                    WatchKind::Write => false,
                }
        });
        if (w.kind != WatchKind::Read && changed) || touched {
            let pos = if backward { pre } else { post };
            hit = Some(Hit {
                pos,
                kind: HitKind::Watch {
                    watch: *w,
                    old: old[i].clone(),
                    new: now.clone(),
                },
            });
        }
        old[i] = now;
    }
    if hit.is_none() && !backward && post.icount != pre.icount && probes.breakpoints.contains(&m.regs().rip) {
        hit = Some(Hit {
            pos: post,
            kind: HitKind::Breakpoint { addr: m.regs().rip },
        });
    }
    Ok(hit)
}
