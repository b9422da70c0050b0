//! Reverse-continue to breakpoints, replaying the trace in long runs.
//!
//! `Session::continue_` searches backward one checkpoint slice per worker,
//! restoring a checkpoint for every slice, in batches that wait for their
//! slowest slice: on a 5M-step trace it takes about 0.7 of a forward replay
//! on two cores. Here the workers take runs of consecutive slices, newest
//! first (short runs near the cursor, so a hit there is still found at once;
//! longer ones further back; short again at the end, so that the workers
//! finish together), and replay each run from one checkpoint without
//! stopping, which gives the same states since replay is deterministic. No
//! worker waits for another, and the search ends as soon as every run newer
//! than the newest hit is done. Across VMs, a VM's runs that end before a
//! hit already found in another VM are skipped.
//!
//! It handles breakpoints only (the engine checks them between steps at full
//! speed); with watchpoints `search::backward` runs, one slice per worker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::probes::pos_of;
use super::{Direction, Hit, HitKind, Scope, Session, SessionError, StopReason, VmId};
use crate::trace::Trace;
use crate::trace::TraceError;
use vmrr_backend::Machine;

/// Steps between two looks at the cancel flag.
const CHUNK: u64 = 50_000;

/// Reverse-continues `s` in `scope` if only breakpoints apply there;
/// `None` if a watchpoint does (the caller then uses `Session::continue_`).
/// Moves the cursor like `Session::continue_`: to the hit, or to the start.
pub(super) fn continue_backward(
    s: &mut Session,
    scope: Scope,
    cancel: &AtomicBool,
    progress: &(dyn Fn(f64) + Sync),
) -> Option<Result<StopReason, SessionError>> {
    let vms: Vec<VmId> = match scope {
        Scope::Vm(vm) => vec![vm],
        Scope::Cluster => s.vm_ids().collect(),
    };
    let applies = |vm: VmId, only: Option<VmId>| only.is_none_or(|v| v == vm);
    if s.watchpoints()
        .iter()
        .any(|w| vms.iter().any(|&vm| applies(vm, w.vm)))
    {
        return None;
    }
    Some(search(s, scope, &vms, cancel, progress))
}

fn search(
    s: &mut Session,
    scope: Scope,
    vms: &[VmId],
    cancel: &AtomicBool,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<StopReason, SessionError> {
    let jobs = s.jobs;
    let mut starts = Vec::new();
    for &vm in vms {
        starts.push((vm, s.position(vm)?));
    }
    let mut best: Option<Hit> = None;
    for (i, &(vm, from)) in starts.iter().enumerate() {
        let mut bps: Vec<u64> = s
            .breakpoints()
            .iter()
            .filter(|b| b.vm.is_none_or(|v| v == vm))
            .map(|b| b.addr)
            .collect();
        bps.sort_unstable();
        bps.dedup();
        if bps.is_empty() {
            continue;
        }
        let older_than = best.as_ref().map(|b| b.pos.vtime_ns);
        let share = |f: f64| progress((i as f64 + f) / starts.len() as f64);
        let found = search_vm(
            s.trace(),
            vm as usize,
            from.icount,
            &bps,
            jobs,
            older_than,
            cancel,
            &share,
        )?;
        if cancel.load(Ordering::Relaxed) {
            return Ok(StopReason::Cancelled);
        }
        if let Some(hit) = found {
            if best.as_ref().is_none_or(|b| hit.pos > b.pos) {
                best = Some(hit);
            }
        }
    }
    match best {
        Some(hit) => {
            s.goto(hit.pos.vm, hit.pos.icount)?;
            Ok(StopReason::Hit(hit))
        }
        None => {
            match scope {
                Scope::Vm(vm) => {
                    s.goto(vm, s.start_icount(vm))?;
                }
                Scope::Cluster => s.goto_vtime(0)?,
            }
            Ok(StopReason::EndOfHistory(Direction::Backward))
        }
    }
}

/// Cuts slices `0..count` into runs of consecutive slices, newest first:
/// short runs first (a hit near the cursor is found at once), doubling
/// every `jobs` runs, but never more than a share of what is left, so that
/// the workers finish together.
fn plan(count: usize, jobs: usize) -> Vec<(usize, usize)> {
    let mut units = Vec::new();
    let mut hi = count;
    while hi > 0 {
        let growth = 1usize << (units.len() / jobs).min(30);
        let share = (hi / (2 * jobs)).max(1);
        let size = growth.min(share).min(hi);
        units.push((hi - size, hi));
        hi -= size;
    }
    units
}

/// What became of one run of slices.
enum Unit {
    /// Not replayed (yet, or ever: older than the answer).
    Pending,
    /// Replayed: its last hit, if any.
    Done(Result<Option<Hit>, TraceError>),
}

/// The answer, once every run newer than the first one with a hit (or an
/// error) has been replayed: `Some(answer)`; `None` while it is not known.
fn settled(units: &[Unit]) -> Option<Result<Option<Hit>, TraceError>> {
    for unit in units {
        match unit {
            Unit::Pending => return None,
            Unit::Done(Ok(None)) => {}
            Unit::Done(Ok(Some(hit))) => return Some(Ok(Some(hit.clone()))),
            Unit::Done(Err(e)) => return Some(Err(TraceError::Invalid(e.to_string()))),
        }
    }
    Some(Ok(None))
}

/// The last breakpoint hit of `vm` strictly before `from`. The workers take
/// runs of slices newest first, each replayed from one checkpoint; the
/// search ends as soon as the newest run with a hit is known. Runs that end
/// before `older_than` are not searched.
#[allow(clippy::too_many_arguments)]
fn search_vm(
    trace: &Trace,
    vm: usize,
    from: u64,
    bps: &[u64],
    jobs: usize,
    older_than: Option<u64>,
    cancel: &AtomicBool,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<Option<Hit>, TraceError> {
    let cps = trace.checkpoints(vm);
    // Slice k runs from checkpoint k to checkpoint k+1, the last one to `from`.
    let Some(last) = cps.iter().rposition(|c| c.icount < from) else {
        return Ok(None);
    };
    let count = last + 1;
    let slice_end = |k: usize| if k >= last { from } else { cps[k + 1].icount };
    let slice_end_vtime = |k: usize| cps.get(k + 1).map(|c| c.vtime_ns).unwrap_or(u64::MAX);
    let mut runs = plan(count, jobs.max(1));
    // Nothing older than a hit found in another VM can be the answer.
    if let Some(t) = older_than {
        runs.retain(|&(_, hi)| slice_end_vtime(hi - 1) >= t);
    }
    let units: Mutex<Vec<Unit>> = Mutex::new(runs.iter().map(|_| Unit::Pending).collect());
    let next = AtomicUsize::new(0);
    let known = AtomicBool::new(false);
    let slices_done = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, runs.len().max(1)) {
            scope.spawn(|| loop {
                if known.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
                    return;
                }
                let u = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(lo, hi)) = runs.get(u) else {
                    return;
                };
                let stop = || cancel.load(Ordering::Relaxed) || known.load(Ordering::Relaxed);
                let r = scan(trace, vm, lo, slice_end(hi - 1), bps, &stop);
                let done = slices_done.fetch_add(hi - lo, Ordering::Relaxed) + hi - lo;
                progress(done as f64 / count as f64);
                if let Ok(mut all) = units.lock() {
                    all[u] = Unit::Done(r);
                    if settled(&all).is_some() {
                        known.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    if cancel.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let units = units.into_inner().unwrap_or_default();
    settled(&units).unwrap_or(Ok(None))
}

/// Replays from checkpoint `k` to `end` and returns the last breakpoint hit
/// before `end`: a position whose next instruction is at a breakpoint.
fn scan(
    trace: &Trace,
    vm: usize,
    k: usize,
    end: u64,
    bps: &[u64],
    stop: &dyn Fn() -> bool,
) -> Result<Option<Hit>, TraceError> {
    let (mut m, mut next) = trace.machine_at_checkpoint(vm, k)?;
    let inputs = trace.inputs(vm);
    let hit_at = |m: &Machine| -> Option<Hit> {
        let rip = m.regs().rip;
        (m.icount() < end && !m.is_halted() && bps.binary_search(&rip).is_ok()).then(|| Hit {
            pos: pos_of(vm, m),
            kind: HitKind::Breakpoint { addr: rip },
        })
    };
    let mut last = hit_at(&m);
    m.set_breakpoints(bps);
    while m.icount() < end && m.finished().is_none() {
        let before = m.icount();
        // Stop at each input and at each chunk, and check those positions here
        // too: a hit found either way is recorded once, as the last one.
        let next_input = inputs[next.min(inputs.len())..]
            .iter()
            .map(|i| i.icount)
            .find(|&i| i > before)
            .unwrap_or(u64::MAX);
        let stop_at = end.min(before.saturating_add(CHUNK)).min(next_input);
        trace.run_to(vm, &mut m, &mut next, stop_at, usize::MAX)?;
        if let Some(hit) = hit_at(&m) {
            last = Some(hit);
        }
        if m.icount() == before || stop() {
            break;
        }
    }
    // Cut short: what it found is not the last hit of its run.
    Ok(if stop() { None } else { last })
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn runs_cover_every_slice_newest_first() {
        for (count, jobs) in [(1, 2), (2, 2), (7, 1), (266, 2), (1000, 8)] {
            let runs = plan(count, jobs);
            let mut hi = count;
            for &(lo, top) in &runs {
                assert_eq!(top, hi, "{count} slices, {jobs} jobs: {runs:?}");
                assert!(lo < top);
                hi = lo;
            }
            assert_eq!(hi, 0);
        }
        let runs = plan(266, 2);
        // Short runs near the cursor, long ones in the middle, short at the end.
        assert_eq!(runs[0], (265, 266));
        assert!(runs.iter().map(|r| r.1 - r.0).max() > Some(16));
        assert_eq!(runs.last().map(|r| r.1 - r.0), Some(1));
        assert!(
            runs.len() < 40,
            "{} runs: one checkpoint restore each",
            runs.len()
        );
    }
}
