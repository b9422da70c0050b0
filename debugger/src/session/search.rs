//! Finding the next or previous breakpoint or watchpoint hit of one VM.
//!
//! Forward runs the live machine step by step. Backward searches the
//! checkpoint slices before the cursor, newest first, several at a time in
//! parallel, each from its own freshly restored machine; the newest slice
//! with a hit holds the answer (its last hit).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use iced_x86::{Decoder, DecoderOptions, InstructionInfoFactory, OpAccess, Register};
use vmrr_backend::regs::SubRegister;
use vmrr_backend::Machine;

use super::{Breakpoint, Pos, VmId, WatchKind, Watchpoint};
use crate::trace::Trace;
use crate::trace::TraceError;

/// Steps run between two looks at the cancel flag on the fast paths.
const CHUNK: u64 = 50_000;

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

    fn needs_decode(&self) -> bool {
        self.watchpoints.iter().any(|w| w.kind != WatchKind::Write)
    }
}

fn read_watch(m: &Machine, w: &Watchpoint) -> Vec<u8> {
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
    // Address registers: any width of a GPR or RIP, and segment bases
    // (only FS and GS have one in long mode).
    let value = |reg: Register| -> Option<u64> {
        use Register as R;
        if let Some(part) = SubRegister::from_iced(reg) {
            return Some(part.read(&regs));
        }
        match reg {
            R::FS => Some(sregs.fs.base),
            R::GS => Some(sregs.gs.base),
            R::ES | R::CS | R::SS | R::DS | R::None => Some(0),
            _ => None,
        }
    };
    let mut out = Vec::new();
    for mem in info.used_memory() {
        let Some(addr) = mem.virtual_address(0, |reg, _, _| value(reg)) else {
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
fn step_and_check(
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

/// Runs `m` forward from where it stands until the first hit, the end of the
/// trace, `vtime_limit`, or cancellation. The machine is left where it stopped.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_live(
    trace: &Trace,
    vm: usize,
    m: &mut Machine,
    next: &mut usize,
    probes: &Probes,
    vtime_limit: Option<u64>,
    cancel: &AtomicBool,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<Option<Hit>, TraceError> {
    let end = trace.end_icount(vm);
    let start = m.icount();
    if probes.watchpoints.is_empty() && vtime_limit.is_none() {
        // Breakpoints only: the engine checks them between steps at full speed.
        m.set_breakpoints(&probes.breakpoints);
        while m.icount() < end && m.finished().is_none() {
            let chunk_end = end.min(m.icount() + CHUNK);
            let before = m.icount();
            trace.run_to(vm, m, next, chunk_end, usize::MAX)?;
            if let Some(addr) = m.breakpoint_hit() {
                m.set_breakpoints(&[]);
                let pos = pos_of(vm, m);
                return Ok(Some(Hit {
                    pos,
                    kind: HitKind::Breakpoint { addr },
                }));
            }
            if cancel.load(Ordering::Relaxed) || m.icount() == before {
                break;
            }
            progress((m.icount() - start) as f64 / (end - start).max(1) as f64);
        }
        m.set_breakpoints(&[]);
        return Ok(None);
    }
    let mut old: Vec<Vec<u8>> = probes.watchpoints.iter().map(|w| read_watch(m, w)).collect();
    while m.icount() < end {
        if let Some(hit) = step_and_check(trace, vm, m, next, probes, &mut old, false)? {
            return Ok(Some(hit));
        }
        if m.finished().is_some() || vtime_limit.is_some_and(|t| m.vtime_ns() > t) {
            return Ok(None);
        }
        if m.icount().is_multiple_of(4096) {
            if cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            progress((m.icount() - start) as f64 / (end - start).max(1) as f64);
        }
    }
    Ok(None)
}

/// Forward search from `from` on a machine of its own.
pub(super) fn forward(
    trace: &Trace,
    vm: usize,
    from: Pos,
    probes: &Probes,
    vtime_limit: Option<u64>,
    cancel: &AtomicBool,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<Option<Hit>, TraceError> {
    let mut m = trace.seek(vm, from.icount)?;
    // seek delivered every input recorded at or before `from`.
    let mut next = trace
        .inputs(vm)
        .iter()
        .take_while(|i| i.icount <= from.icount)
        .count();
    forward_live(
        trace,
        vm,
        &mut m,
        &mut next,
        probes,
        vtime_limit,
        cancel,
        progress,
    )
}

/// The last hit of `vm` strictly before `from`, searching the checkpoint
/// slices newest first, `jobs` at a time.
pub(super) fn backward(
    trace: &Trace,
    vm: usize,
    from: Pos,
    probes: &Probes,
    jobs: usize,
    cancel: &AtomicBool,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<Option<Hit>, TraceError> {
    let cps = trace.checkpoints(vm);
    // (checkpoint index, slice start, slice end), newest first.
    let slices: Vec<(usize, u64, u64)> = (0..cps.len())
        .rev()
        .filter(|&k| cps[k].icount < from.icount)
        .map(|k| {
            (
                k,
                cps[k].icount,
                cps.get(k + 1)
                    .map(|c| c.icount)
                    .unwrap_or(u64::MAX)
                    .min(from.icount),
            )
        })
        .collect();
    let total = slices.len().max(1);
    for (batch_no, batch) in slices.chunks(jobs.max(1)).enumerate() {
        let results: Mutex<Vec<SliceOutcome>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for (i, &(k, start, end)) in batch.iter().enumerate() {
                let results = &results;
                scope.spawn(move || {
                    let r = scan_slice(trace, vm, k, start, end, probes, cancel);
                    if let Ok(mut all) = results.lock() {
                        all.push((i, r));
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_default();
        results.sort_by_key(|(i, _)| *i);
        for (_, r) in results {
            if let Some(hit) = r? {
                return Ok(Some(hit));
            }
        }
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        progress(((batch_no + 1) * jobs.max(1)).min(total) as f64 / total as f64);
    }
    Ok(None)
}

/// A slice's place in its batch, and its last hit.
type SliceOutcome = (usize, Result<Option<Hit>, TraceError>);

/// Replays slice `[start, end)` from checkpoint `k` and returns its last hit.
fn scan_slice(
    trace: &Trace,
    vm: usize,
    k: usize,
    start: u64,
    end: u64,
    probes: &Probes,
    cancel: &AtomicBool,
) -> Result<Option<Hit>, TraceError> {
    let (mut m, mut next) = trace.machine_at_checkpoint(vm, k)?;
    debug_assert_eq!(m.icount(), start);
    if probes.watchpoints.is_empty() {
        // Breakpoints only: let the engine stop at each hit; keep the last.
        let mut last = None;
        let hit_here = |m: &Machine| Hit {
            pos: pos_of(vm, m),
            kind: HitKind::Breakpoint { addr: m.regs().rip },
        };
        if m.icount() < end && probes.breakpoints.contains(&m.regs().rip) {
            last = Some(hit_here(&m));
        }
        m.set_breakpoints(&probes.breakpoints);
        while m.icount() < end && m.finished().is_none() {
            let before = m.icount();
            trace.run_to(vm, &mut m, &mut next, end.min(before + CHUNK), usize::MAX)?;
            if m.breakpoint_hit().is_some() && m.icount() < end {
                last = Some(hit_here(&m));
            }
            if m.icount() == before || cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        return Ok(if cancel.load(Ordering::Relaxed) {
            None
        } else {
            last
        });
    }
    let mut old: Vec<Vec<u8>> = probes.watchpoints.iter().map(|w| read_watch(&m, w)).collect();
    let mut last = None;
    while m.icount() < end && m.finished().is_none() {
        // A breakpoint hit is a position before the instruction at it.
        if probes.breakpoints.contains(&m.regs().rip) {
            last = Some(Hit {
                pos: pos_of(vm, &m),
                kind: HitKind::Breakpoint { addr: m.regs().rip },
            });
        }
        let before = m.icount();
        if let Some(hit) = step_and_check(trace, vm, &mut m, &mut next, probes, &mut old, true)? {
            last = Some(hit);
        }
        if m.icount() == before {
            break;
        }
        if m.icount().is_multiple_of(4096) && cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
    }
    Ok(last)
}
