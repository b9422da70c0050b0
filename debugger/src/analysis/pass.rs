//! The framework every analysis runs on: code that watches the exact
//! replay of checkpoint slices and turns what it sees into rows.
//!
//! A [`SliceJob`] is one VM replayed from one checkpoint over a range of
//! icounts. [`Observer`]s ride along: each names the addresses it wants to
//! stop before (the replay then runs at the engine's full speed between
//! them, the breakpoints checked inside the engine), or asks to see every
//! step (each instruction stepped alone, with the events it produced and
//! the network card's memory accesses). Several observers — of several
//! analyses — share one replay, and jobs run on `jobs` threads at once, so
//! slices × VMs are replayed in parallel (pRnR's "multi-dimension parallel
//! replay"). [`run_analyses`] plans the jobs: only the slices an analysis
//! says can matter (from the execution index) are replayed.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use vmrr_backend::devices::virtio_net::DmaAccess;
use vmrr_backend::{Event, Machine};
use vmrr_index::{ExecSliceRow, Pos, VmId};

use super::AnalysisError;
use crate::trace::checkpoint::CheckpointFile;
use crate::trace::Trace;

/// Steps run at full speed between two looks at the cancel flag.
const CHUNK: u64 = 50_000;

/// One VM replayed from checkpoint `slice` over icounts `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceJob {
    /// The VM (its index in the trace).
    pub vm: usize,
    /// The checkpoint the replay starts from.
    pub slice: usize,
    /// First icount observed (at or after the checkpoint's).
    pub from: u64,
    /// Where the replay ends (exclusive).
    pub to: u64,
}

/// The replay as an observer sees it: a VM standing before an instruction
/// (or at the end of its job).
pub struct Here<'a> {
    /// The VM.
    pub vm: usize,
    /// Its machine: registers and memory as they are here.
    pub machine: &'a Machine,
}

impl Here<'_> {
    /// Where the VM stands.
    pub fn pos(&self) -> Pos {
        Pos::new(self.vm as VmId, self.machine.icount(), self.machine.vtime_ns())
    }
}

/// What one step did, for observers that see every step.
#[derive(Debug, Clone, Default)]
pub struct StepOutcome {
    /// The step's icount (the position before it).
    pub icount: u64,
    /// The events it produced (an `Interrupt` means the step delivered one).
    pub events: Vec<Event>,
    /// The network card's accesses to guest memory during the step.
    pub dma: Vec<DmaAccess>,
}

/// Code that watches a replay. Every method but `finish` has a default
/// that ignores what it is told.
pub trait Observer: Send {
    /// Addresses to stop before (asked at the start, and again whenever
    /// [`Observer::at`] says they changed).
    fn breakpoints(&self) -> Vec<u64> {
        Vec::new()
    }

    /// Whether [`Observer::at`] and [`Observer::after`] must see every step.
    /// One such observer makes the whole job step instruction by instruction.
    fn every_step(&self) -> bool {
        false
    }

    /// The VM stands before an instruction: at one of this observer's
    /// breakpoints, or before every step. Returns whether its breakpoints changed.
    fn at(&mut self, _here: &Here<'_>) -> bool {
        false
    }

    /// In every-step jobs: recorded input `input` (a frame) was handed to
    /// the VM's card here, which wrote `dma` into guest memory.
    fn delivered(&mut self, _here: &Here<'_>, _input: usize, _dma: &[DmaAccess]) {}

    /// In every-step jobs: the step `step.icount` just ran; `here` is after it.
    fn after(&mut self, _here: &Here<'_>, _step: &StepOutcome) {}

    /// The job is over (`here` is where it ended): the observer's result.
    fn finish(self: Box<Self>, here: &Here<'_>) -> Box<dyn Any + Send>;
}

/// A job and the observers that ride on it.
pub struct Work {
    /// What to replay.
    pub job: SliceJob,
    /// Who watches.
    pub observers: Vec<Box<dyn Observer>>,
}

/// A job and its observers' results, in the order the observers were given.
pub struct JobResult {
    /// What was replayed.
    pub job: SliceJob,
    /// One result per observer.
    pub outputs: Vec<Box<dyn Any + Send>>,
}

/// How far a pass has come: jobs done of jobs planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Jobs finished.
    pub done: usize,
    /// Jobs in the pass.
    pub total: usize,
}

/// How a pass runs.
pub struct PassOptions<'a> {
    /// Threads replaying at once.
    pub jobs: usize,
    /// Set from another thread to stop (the pass then fails with
    /// [`AnalysisError::Cancelled`]).
    pub cancel: &'a AtomicBool,
    /// Told after each job.
    pub progress: &'a (dyn Fn(Progress) + Sync),
}

impl PassOptions<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Runs every job on `opts.jobs` threads; results in the order of `work`.
pub fn run_jobs(
    trace: &Trace,
    work: Vec<Work>,
    opts: &PassOptions<'_>,
) -> Result<Vec<JobResult>, AnalysisError> {
    let total = work.len();
    let slots: Vec<Mutex<Option<Work>>> = work.into_iter().map(|w| Mutex::new(Some(w))).collect();
    let results: Vec<Mutex<Option<JobResult>>> = (0..total).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failure: Mutex<Option<AnalysisError>> = Mutex::new(None);
    // A failure stops the other threads without touching the caller's flag.
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.clamp(1, total.max(1)) {
            scope.spawn(|| loop {
                if opts.cancelled() || stop.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = slots.get(i) else {
                    return;
                };
                let Some(work) = slot.lock().ok().and_then(|mut s| s.take()) else {
                    return;
                };
                match replay(trace, work, opts.cancel) {
                    Ok(result) => {
                        if let Ok(mut r) = results[i].lock() {
                            *r = Some(result);
                        }
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        (opts.progress)(Progress { done: n, total });
                    }
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        stop.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or(None) {
        return Err(e);
    }
    // Every job done is an answer, even if the flag came late; a job
    // missing was stopped by it.
    results
        .into_iter()
        .map(|r| r.into_inner().ok().flatten().ok_or(AnalysisError::Cancelled))
        .collect()
}

/// An analysis as the planner sees it: which slices can matter, and the
/// observer that watches one.
pub trait Analysis: Sync {
    /// Whether slice `slice` of `vm` can hold something for this analysis,
    /// given its execution-index row (`None`: the trace has none, so it can).
    fn wants(&self, vm: usize, slice: usize, row: Option<&ExecSliceRow>) -> bool;

    /// The observer for one job.
    fn observer(&self, job: &SliceJob) -> Box<dyn Observer>;
}

/// Which part of the trace a pass covers: per VM, a range of icounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The VM.
    pub vm: usize,
    /// First icount.
    pub from: u64,
    /// Last icount (exclusive).
    pub to: u64,
}

/// One job's result for one analysis.
pub type Found = (SliceJob, Box<dyn Any + Send>);

/// Replays, once, every slice within `spans` that at least one of
/// `analyses` wants, with the observers of all that want it. Returns, per
/// analysis, its (job, result) pairs in trace order.
pub fn run_analyses(
    trace: &Trace,
    analyses: &[&dyn Analysis],
    spans: &[Span],
    opts: &PassOptions<'_>,
) -> Result<Vec<Vec<Found>>, AnalysisError> {
    let mut work = Vec::new();
    let mut who: Vec<Vec<usize>> = Vec::new();
    for span in spans {
        let rows = trace.exec_index(span.vm)?;
        for job in slice_jobs(trace, span) {
            let row = rows.get(job.slice).and_then(Option::as_ref);
            let wanting: Vec<usize> = (0..analyses.len())
                .filter(|&a| analyses[a].wants(job.vm, job.slice, row))
                .collect();
            if wanting.is_empty() {
                continue;
            }
            work.push(Work {
                job,
                observers: wanting.iter().map(|&a| analyses[a].observer(&job)).collect(),
            });
            who.push(wanting);
        }
    }
    let results = run_jobs(trace, work, opts)?;
    let mut out: Vec<Vec<Found>> = analyses.iter().map(|_| Vec::new()).collect();
    for (result, wanting) in results.into_iter().zip(who) {
        for (output, a) in result.outputs.into_iter().zip(wanting) {
            out[a].push((result.job, output));
        }
    }
    Ok(out)
}

/// The jobs that cover `span`: one per checkpoint slice it overlaps.
pub fn slice_jobs(trace: &Trace, span: &Span) -> Vec<SliceJob> {
    let cps = trace.checkpoints(span.vm);
    (0..cps.len().saturating_sub(1))
        .filter_map(|k| {
            let from = cps[k].icount.max(span.from);
            let to = cps[k + 1].icount.min(span.to);
            (from < to).then_some(SliceJob {
                vm: span.vm,
                slice: k,
                from,
                to,
            })
        })
        .collect()
}

/// How many recorded inputs `vm` has taken when it stands at `icount`
/// at the end of a job from checkpoint `slice`: at the next checkpoint,
/// what that checkpoint took (an input at exactly its icount may come
/// before or after it); elsewhere, every input due there (as a session
/// standing there has taken them).
fn inputs_at_end(trace: &Trace, vm: usize, slice: usize, icount: u64) -> Result<usize, AnalysisError> {
    let cps = trace.checkpoints(vm);
    if let Some(cp) = cps.get(slice + 1).filter(|c| c.icount == icount) {
        let file = CheckpointFile::read(
            trace.dir(),
            std::path::Path::new(&cp.manifest),
            cp.file_hash.as_deref(),
        )?;
        return Ok(file.inputs_consumed as usize);
    }
    Ok(trace.inputs(vm).partition_point(|i| i.icount <= icount))
}

/// Replays one job with its observers.
fn replay(trace: &Trace, work: Work, cancel: &AtomicBool) -> Result<JobResult, AnalysisError> {
    let Work { job, mut observers } = work;
    let vm = job.vm;
    let (mut m, mut next) = trace.machine_at_checkpoint(vm, job.slice)?;
    let every = observers.iter().any(|o| o.every_step());
    if m.icount() < job.from {
        // Inputs due at `from` itself are handed over (and seen) by the job.
        let limit = trace
            .inputs(vm)
            .partition_point(|i| i.icount < job.from)
            .max(next);
        trace.run_to(vm, &mut m, &mut next, job.from, limit)?;
        m.take_events();
    }
    if every {
        m.set_dma_log(true);
        step_by_step(trace, &job, &mut m, &mut next, &mut observers, cancel)?;
    } else {
        at_breakpoints(trace, &job, &mut m, &mut next, &mut observers, cancel)?;
    }
    let here = Here { vm, machine: &m };
    let outputs = observers.into_iter().map(|o| o.finish(&here)).collect();
    trace.recycle(vm, m);
    Ok(JobResult { job, outputs })
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v.dedup();
    v
}

/// Breakpoints only: the engine runs at full speed between stops.
fn at_breakpoints(
    trace: &Trace,
    job: &SliceJob,
    m: &mut Machine,
    next: &mut usize,
    observers: &mut [Box<dyn Observer>],
    cancel: &AtomicBool,
) -> Result<(), AnalysisError> {
    let mut sets: Vec<Vec<u64>> = observers.iter().map(|o| sorted(o.breakpoints())).collect();
    let union = |sets: &[Vec<u64>]| sorted(sets.concat());
    m.set_breakpoints(&union(&sets));
    // The engine does not stop where breakpoints are set: look here by hand.
    let mut look = |m: &mut Machine, sets: &mut Vec<Vec<u64>>| {
        if m.is_halted() {
            return;
        }
        let rip = m.regs().rip;
        let mut changed = false;
        for (o, set) in observers.iter_mut().zip(sets.iter()) {
            if set.binary_search(&rip).is_ok() {
                changed |= o.at(&Here {
                    vm: job.vm,
                    machine: m,
                });
            }
        }
        if changed {
            *sets = observers.iter().map(|o| sorted(o.breakpoints())).collect();
            m.set_breakpoints(&union(sets));
        }
    };
    if m.icount() < job.to {
        look(m, &mut sets);
    }
    let result = loop {
        if m.icount() >= job.to || m.finished().is_some() {
            break Ok(());
        }
        if cancel.load(Ordering::Relaxed) {
            break Err(AnalysisError::Cancelled);
        }
        let before = m.icount();
        if let Err(e) = trace.run_to(job.vm, m, next, job.to.min(before + CHUNK), usize::MAX) {
            break Err(e.into());
        }
        // Nobody reads them here; they would only pile up.
        m.take_events();
        if m.breakpoint_hit().is_some() && m.icount() < job.to {
            look(m, &mut sets);
        } else if m.icount() == before {
            break Ok(());
        }
    };
    m.set_breakpoints(&[]);
    result
}

/// Every step seen: each instruction stepped alone, inputs handed over one
/// at a time so that each one's memory writes are told apart.
fn step_by_step(
    trace: &Trace,
    job: &SliceJob,
    m: &mut Machine,
    next: &mut usize,
    observers: &mut [Box<dyn Observer>],
    cancel: &AtomicBool,
) -> Result<(), AnalysisError> {
    let vm = job.vm;
    let inputs = trace.inputs(vm);
    let end_inputs = inputs_at_end(trace, vm, job.slice, job.to)?;
    let sets: Vec<Vec<u64>> = observers.iter().map(|o| sorted(o.breakpoints())).collect();
    let every: Vec<bool> = observers.iter().map(|o| o.every_step()).collect();
    loop {
        let limit = if m.icount() >= job.to {
            end_inputs
        } else {
            usize::MAX
        };
        while *next < limit.min(inputs.len()) && inputs[*next].icount == m.icount() {
            let input = *next;
            trace.run_to(vm, m, next, m.icount(), input + 1)?;
            m.take_events();
            let dma = m.take_dma_log();
            let here = Here { vm, machine: m };
            for o in observers.iter_mut() {
                o.delivered(&here, input, &dma);
            }
        }
        if m.icount() >= job.to || m.finished().is_some() {
            return Ok(());
        }
        let before = m.icount();
        if before.is_multiple_of(4096) && cancel.load(Ordering::Relaxed) {
            return Err(AnalysisError::Cancelled);
        }
        {
            let here = Here { vm, machine: m };
            let rip = if m.is_halted() { None } else { Some(m.regs().rip) };
            for ((o, set), all) in observers.iter_mut().zip(&sets).zip(&every) {
                if *all || rip.is_some_and(|r| set.binary_search(&r).is_ok()) {
                    o.at(&here);
                }
            }
        }
        // No inputs here: they were handed over above, one by one.
        trace.run_to(vm, m, next, before + 1, *next)?;
        let outcome = StepOutcome {
            icount: before,
            events: m.take_events(),
            dma: m.take_dma_log(),
        };
        if m.icount() == before {
            return Ok(());
        }
        let here = Here { vm, machine: m };
        for o in observers.iter_mut() {
            o.after(&here, &outcome);
        }
    }
}
