//! Finding the next or previous breakpoint or watchpoint hit of one VM,
//! replaying only the checkpoint slices that can hold it.
//!
//! The execution index says, per slice, which instruction addresses ran and
//! which memory was written. A slice whose index shows none of the
//! breakpoints' addresses and none of the watched memory cannot hold a hit,
//! and is skipped; every other slice — and every slice the trace has no
//! index for — is replayed exactly. So the index only ever removes work: the
//! stop is always found by replay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use vmrr_backend::Machine;
use vmrr_index::ExecSliceRow;

use super::dense::{DenseCache, DENSE_STEPS};
use super::probes::{pos_of, read_watch, step_and_check, Hit, HitKind, Probes};
use super::WatchKind;
use crate::trace::Trace;
use crate::trace::TraceError;

/// Steps run between two looks at the cancel flag on the fast paths.
const CHUNK: u64 = 50_000;

/// Which slices of one VM can hold a hit of some probes.
pub(super) struct SliceFilter {
    /// The execution index, slice by slice.
    rows: Arc<[Option<ExecSliceRow>]>,
    /// Breakpoint addresses, sorted.
    addrs: Vec<u64>,
    /// Guest-physical ranges of the write watchpoints.
    writes: Vec<(u64, u64)>,
    /// Something the index cannot answer (a read watchpoint, a watched
    /// address that does not translate): every slice is a candidate.
    blind: bool,
}

impl SliceFilter {
    /// The filter for `probes` of `vm`; `m` (the VM at the cursor)
    /// translates watched addresses through its page tables.
    pub(super) fn new(
        trace: &Trace,
        vm: usize,
        probes: &Probes,
        m: &Machine,
    ) -> Result<SliceFilter, TraceError> {
        let mut addrs = probes.breakpoints.clone();
        addrs.sort_unstable();
        addrs.dedup();
        let mut writes = Vec::new();
        let mut blind = false;
        for w in &probes.watchpoints {
            if w.kind != WatchKind::Write {
                blind = true;
                continue;
            }
            // Page by page: each may map elsewhere.
            let end = w.addr.saturating_add(w.len);
            let mut at = w.addr;
            while at < end {
                let page_end = (at | 0xfff).saturating_add(1).min(end);
                match m.translate(at) {
                    Some(pa) => writes.push((pa, page_end - at)),
                    None => blind = true,
                }
                if page_end <= at {
                    break;
                }
                at = page_end;
            }
        }
        Ok(SliceFilter {
            rows: trace.exec_index(vm)?,
            addrs,
            writes,
            blind,
        })
    }

    /// Whether slice `k` must be replayed.
    pub(super) fn may_hit(&self, k: usize) -> bool {
        match self.rows.get(k) {
            Some(Some(row)) if !self.blind => {
                row.ran_any(&self.addrs) || self.writes.iter().any(|&(pa, len)| row.may_write(pa, len))
            }
            _ => true,
        }
    }

    /// Whether the index answers for every slice (else searches fall back,
    /// in part, to replaying everything).
    pub(super) fn complete(&self) -> bool {
        !self.blind && self.rows.iter().all(Option::is_some)
    }
}

/// Runs `m` forward from where it stands until the first hit before `end`,
/// `vtime_limit`, or cancellation. The machine is left where it stopped.
#[allow(clippy::too_many_arguments)]
fn run_until_hit(
    trace: &Trace,
    vm: usize,
    m: &mut Machine,
    next: &mut usize,
    probes: &Probes,
    end: u64,
    vtime_limit: Option<u64>,
    cancel: &AtomicBool,
) -> Result<Option<Hit>, TraceError> {
    let past_limit = |m: &Machine| vtime_limit.is_some_and(|t| m.vtime_ns() > t);
    if probes.watchpoints.is_empty() {
        // Breakpoints only: the engine checks them between steps at full speed.
        m.set_breakpoints(&probes.breakpoints);
        let found = loop {
            if m.icount() >= end || m.finished().is_some() {
                break None;
            }
            let before = m.icount();
            trace.run_to(vm, m, next, end.min(before + CHUNK), usize::MAX)?;
            if let Some(addr) = m.breakpoint_hit() {
                break Some(Hit {
                    pos: pos_of(vm, m),
                    kind: HitKind::Breakpoint { addr },
                });
            }
            if cancel.load(Ordering::Relaxed) || m.icount() == before || past_limit(m) {
                break None;
            }
        };
        m.set_breakpoints(&[]);
        return Ok(found);
    }
    let mut old: Vec<Vec<u8>> = probes.watchpoints.iter().map(|w| read_watch(m, w)).collect();
    while m.icount() < end {
        if let Some(hit) = step_and_check(trace, vm, m, next, probes, &mut old, false)? {
            return Ok(Some(hit));
        }
        if m.finished().is_some() || past_limit(m) {
            return Ok(None);
        }
        if m.icount().is_multiple_of(4096) && cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
    }
    Ok(None)
}

/// One VM's search: what to look for, where the index allows it, and how
/// to stop and report.
pub(super) struct Search<'a> {
    /// The trace.
    pub trace: &'a Trace,
    /// The VM (as a trace index).
    pub vm: usize,
    /// What counts as a hit.
    pub probes: &'a Probes,
    /// Which slices can hold one.
    pub filter: &'a SliceFilter,
    /// Set from another thread to stop.
    pub cancel: &'a AtomicBool,
    /// Gets the fraction done.
    pub progress: &'a (dyn Fn(f64) + Sync),
}

impl Search<'_> {
    /// The first hit after where `start` stands (its machine and the inputs it
    /// has taken), replaying only the slices the filter admits, none that
    /// starts after `vtime_limit`. Returns the hit with the machine standing at
    /// it, so the caller moves there without replaying again.
    pub(super) fn forward(
        &self,
        start: (Machine, usize),
        vtime_limit: Option<u64>,
    ) -> Result<Option<(Hit, Machine, usize)>, TraceError> {
        let Search {
            trace,
            vm,
            probes,
            filter,
            cancel,
            progress,
        } = *self;
        let cps = trace.checkpoints(vm);
        let from = start.0.icount();
        let first = cps.iter().rposition(|c| c.icount <= from).unwrap_or(0);
        let slices = cps.len().saturating_sub(1);
        let mut start = Some(start);
        for k in first..slices {
            if cancel.load(Ordering::Relaxed) || vtime_limit.is_some_and(|t| cps[k].vtime_ns > t) {
                break;
            }
            if !filter.may_hit(k) {
                continue;
            }
            let (mut m, mut next) = match start.take() {
                Some(s) if k == first => s,
                _ => trace.machine_at_checkpoint(vm, k)?,
            };
            let end = cps[k + 1].icount;
            if let Some(hit) = run_until_hit(trace, vm, &mut m, &mut next, probes, end, vtime_limit, cancel)?
            {
                return Ok(Some((hit, m, next)));
            }
            trace.recycle(vm, m);
            progress((k + 1 - first) as f64 / (slices - first).max(1) as f64);
        }
        Ok(None)
    }

    /// The last hit strictly before icount `from`, replaying the slices the
    /// filter admits, newest first, `jobs` at a time. The hit comes with the
    /// machine that found it and the dense snapshots it kept on the way, so
    /// the caller moves there replaying at most `DENSE_STEPS`.
    pub(super) fn backward(&self, from: u64, jobs: usize) -> Result<Option<(Hit, Found)>, TraceError> {
        backward_all(&[(self, from)], jobs, self.progress)
    }

    /// The slices this search must replay backward from icount `from`:
    /// (checkpoint, end of the span, a bound on the virtual time of any hit
    /// in it), newest first.
    fn slices_before(&self, from: u64) -> Vec<(usize, u64, u64)> {
        let cps = self.trace.checkpoints(self.vm);
        (0..cps.len())
            .rev()
            .filter(|&k| cps[k].icount < from && self.filter.may_hit(k))
            .map(|k| {
                let next = cps.get(k + 1);
                let end = next.map(|c| c.icount).unwrap_or(u64::MAX).min(from);
                (k, end, next.map(|c| c.vtime_ns).unwrap_or(u64::MAX))
            })
            .collect()
    }
}

/// The last hit in cluster order over several VMs' searches, each before
/// its own icount. Their candidate slices are merged newest first (by the
/// virtual time each ends at) and replayed `jobs` at a time; once the best
/// hit so far is later than every slice left can reach, the search stops —
/// so a cluster search costs about what the nearest VM's does.
pub(super) fn backward_all(
    searches: &[(&Search<'_>, u64)],
    jobs: usize,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<Option<(Hit, Found)>, TraceError> {
    // (search, checkpoint, span end, vtime bound), latest bound first.
    let mut slices: Vec<(usize, usize, u64, u64)> = Vec::new();
    for (i, (search, from)) in searches.iter().enumerate() {
        slices.extend(
            search
                .slices_before(*from)
                .into_iter()
                .map(|(k, end, bound)| (i, k, end, bound)),
        );
    }
    // Stable: one VM's slices keep their newest-first order among equals.
    slices.sort_by_key(|&(i, _, _, bound)| (std::cmp::Reverse(bound), i));
    let total = slices.len().max(1);
    let mut best: Option<(Hit, Found)> = None;
    for (batch_no, batch) in slices.chunks(jobs.max(1)).enumerate() {
        if let Some((b, _)) = &best {
            // Nothing left can reach later than the best hit.
            if batch[0].3 < b.pos.vtime_ns {
                break;
            }
        }
        let results: Mutex<Vec<SliceOutcome>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for (slot, &(i, k, end, _)) in batch.iter().enumerate() {
                let results = &results;
                let search = searches[i].0;
                scope.spawn(move || {
                    let r = scan_slice(search.trace, search.vm, k, end, search.probes, search.cancel);
                    if let Ok(mut all) = results.lock() {
                        all.push((slot, r));
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_default();
        results.sort_by_key(|(slot, _)| *slot);
        for (_, r) in results {
            if let Some((hit, found)) = r? {
                if best.as_ref().is_none_or(|(b, _)| hit.pos > b.pos) {
                    if let Some((old, lost)) = best.replace((hit, found)) {
                        searches[0].0.trace.recycle(old.pos.vm as usize, lost.machine);
                    }
                } else {
                    searches[0].0.trace.recycle(hit.pos.vm as usize, found.machine);
                }
            }
        }
        let cancelled = searches.iter().any(|(s, _)| s.cancel.load(Ordering::Relaxed));
        if cancelled {
            return Ok(None);
        }
        progress(((batch_no + 1) * jobs.max(1)).min(total) as f64 / total as f64);
    }
    Ok(best)
}

/// What a backward search leaves besides its hit: the machine that scanned
/// the hit's slice (standing at the slice's end), the inputs it consumed,
/// and the dense snapshots it kept of that slice.
pub(super) struct Found {
    /// The machine, at the end of the scanned span.
    pub machine: Machine,
    /// Inputs it has consumed.
    pub next_input: usize,
    /// Snapshots of the slice, following `machine`.
    pub dense: DenseCache,
}

/// A slice's place in its batch, and its last hit.
type SliceOutcome = (usize, Result<Option<(Hit, Found)>, TraceError>);

/// Replays slice `k` from its checkpoint up to `end` and returns its last
/// hit, keeping dense snapshots on the way.
fn scan_slice(
    trace: &Trace,
    vm: usize,
    k: usize,
    end: u64,
    probes: &Probes,
    cancel: &AtomicBool,
) -> Result<Option<(Hit, Found)>, TraceError> {
    let (mut dense, mut m, mut next) = DenseCache::for_slice(trace, vm, k)?;
    let mut last = None;
    if probes.watchpoints.is_empty() {
        // Breakpoints only: let the engine stop at each hit; keep the last.
        let hit_here = |m: &Machine| Hit {
            pos: pos_of(vm, m),
            kind: HitKind::Breakpoint { addr: m.regs().rip },
        };
        if m.icount() < end && !m.is_halted() && probes.breakpoints.contains(&m.regs().rip) {
            last = Some(hit_here(&m));
        }
        m.set_breakpoints(&probes.breakpoints);
        while m.icount() < end && m.finished().is_none() {
            let before = m.icount();
            trace.run_to(vm, &mut m, &mut next, end.min(before + DENSE_STEPS), usize::MAX)?;
            if m.breakpoint_hit().is_some() && m.icount() < end {
                last = Some(hit_here(&m));
            }
            dense.keep_up(trace, vm, &mut m, next)?;
            if m.icount() == before || cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        m.set_breakpoints(&[]);
    } else {
        let mut old: Vec<Vec<u8>> = probes.watchpoints.iter().map(|w| read_watch(&m, w)).collect();
        while m.icount() < end && m.finished().is_none() {
            // A breakpoint hit is a position before the instruction at it.
            if !m.is_halted() && probes.breakpoints.contains(&m.regs().rip) {
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
            dense.keep_up(trace, vm, &mut m, next)?;
            if m.icount().is_multiple_of(4096) && cancel.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    if cancel.load(Ordering::Relaxed) || last.is_none() {
        trace.recycle(vm, m);
        return Ok(None);
    }
    Ok(last.map(|hit| {
        (
            hit,
            Found {
                machine: m,
                next_input: next,
                dense,
            },
        )
    }))
}
