//! What if: fork a recorded cluster at a moment, change one thing, run on
//! live into a new trace ([`fork`]), and compare two runs ([`diff`]).
//!
//! # The cut
//!
//! A fork at virtual time T starts from the cluster as the recording had it
//! at T: every VM has run each instruction that starts before T (and taken
//! the frames delivered before T), with its devices, timers and generator;
//! the frames sent before T and not yet delivered are in flight with their
//! arrival times; the switch's MAC table, the next frame id, the fault
//! schedule and the seed are where they stood. `12.5ms`, `vm:icount`,
//! `#event` and bookmarks name T as `goto` does (an icount or event: the
//! time its instruction starts).
//!
//! The state is built by restoring every VM at the last window barrier at
//! or before T that the trace names (each checkpoint records the barrier it
//! was taken at), replaying each VM to it, and running the cluster live
//! from there to T. So the fork's windows fall where the recording's did,
//! and with no change it reproduces the parent exactly: the same events at
//! the same positions, checkpoints at the same icounts with the same state
//! hashes, the same frame ids, the same verdicts of a drop fault.
//!
//! # The new trace
//!
//! An ordinary trace (replay, verify, gdb, the TUI, `events`, `sql`) that
//! starts at the cut: each VM keeps its icounts and virtual times, and its
//! first checkpoint is the cut (all its memory listed). Page files the
//! parent has are hard-linked from its store (copied across file systems),
//! as are the images, so a fork costs the pages it writes itself, its
//! checkpoint files and its index. `meta` names the parent, the cut and the
//! changes (`fork.*`, see `index/SCHEMA.md`). The frames table starts with
//! the frames in flight at the cut (sent by the parent, before the trace's
//! start).

pub mod apply;
pub mod change;
mod cut;
pub mod diff;
mod output;
mod start;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use vmrr_backend::VmError;

pub use apply::describe_faults;
pub use change::{Change, ChangeError, FrameSpec, FrameVerb, NewFault, CHANGES_HELP};
pub use output::Shared;

use crate::cluster::{Cluster, ClusterError, ClusterOptions};
use crate::session::{Moment, Session, SessionError};
use crate::trace::record::{
    run_recording, Progress, RecordSummary, Recorder, RunPlan, DEFAULT_CHECKPOINT_STEPS,
};
use crate::trace::{Trace, TraceError, PAGES_DIR};
use crate::vtime::format_ms;

/// How to run a fork; `None` takes the parent's setting.
#[derive(Debug, Clone)]
pub struct ForkOptions {
    /// Stop at this virtual time (default: where the parent was stopped, if it was).
    pub until_ns: Option<u64>,
    /// Stop each VM after this many steps.
    pub max_steps: Option<u64>,
    /// Steps between checkpoints of a VM.
    pub checkpoint_every: Option<u64>,
    /// Worker threads.
    pub jobs: usize,
}

impl Default for ForkOptions {
    fn default() -> Self {
        ForkOptions {
            until_ns: None,
            max_steps: None,
            checkpoint_every: None,
            jobs: usize::MAX,
        }
    }
}

/// Where one VM stands at the cut.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CutVm {
    /// The VM's name.
    pub vm: String,
    /// Its icount at the cut (its first checkpoint in the fork).
    pub icount: u64,
    /// Its virtual time there.
    pub vtime_ns: u64,
}

/// What a fork did.
#[derive(Debug, Clone)]
pub struct ForkSummary {
    /// The cut's virtual time.
    pub at_ns: u64,
    /// The parent's barrier the cut was rebuilt from.
    pub base_ns: u64,
    /// Each VM at the cut.
    pub cut: Vec<CutVm>,
    /// What each change did (frame changes: at the end of the run).
    pub changes: Vec<String>,
    /// Whether the switch's table came from the parent's log (else inferred
    /// from the frames it keeps: traces of older vmrr versions).
    pub switch_exact: bool,
    /// Seconds spent building the cut (before the first checkpoint).
    pub cut_secs: f64,
    /// The run.
    pub record: RecordSummary,
    /// Page files hard-linked from the parent, and their bytes.
    pub pages_shared: (u64, u64),
    /// Page files of the fork's own, and their bytes.
    pub pages_own: (u64, u64),
    /// Images linked or copied.
    pub images: Shared,
}

/// What stops a fork.
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    /// The parent trace could not be read (or the new one written).
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The moment could not be found in the parent.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A change does not fit the trace or the cut.
    #[error("cannot make the change '{change}': {problem}")]
    BadChange {
        /// The change, as understood.
        change: String,
        /// Why, and what to do instead.
        problem: String,
    },
    /// The fork point does not fit the trace.
    #[error("cannot fork at {moment}: {problem}")]
    BadMoment {
        /// The moment as written.
        moment: String,
        /// Why.
        problem: String,
    },
    /// The output folder cannot be used.
    #[error("{path}: {problem}")]
    Output {
        /// The folder given with -o.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A VM's state could not be changed.
    #[error("VM '{vm}': {source}")]
    Vm {
        /// Its name.
        vm: String,
        /// What the engine said.
        #[source]
        source: VmError,
    },
    /// The cluster failed while running to the cut.
    #[error("{0}")]
    Cluster(#[from] ClusterError),
}

impl From<vmrr_index::IndexError> for ForkError {
    fn from(e: vmrr_index::IndexError) -> ForkError {
        ForkError::Trace(TraceError::Index(e))
    }
}

/// The virtual time a moment names in `parent`, and the trace.
fn resolve(parent: &Path, at: &Moment) -> Result<(Trace, u64), ForkError> {
    let at_ns = match at {
        Moment::Time(t) => *t,
        Moment::Start => 0,
        _ => {
            // Every other form means what `goto` makes of it: the cursor's time.
            let mut session = Session::open(parent)?;
            session.goto_moment(at)?;
            session.cursor_vtime()
        }
    };
    Ok((Trace::open(parent, false)?, at_ns))
}

/// The last virtual time the trace covers.
fn end_ns(trace: &Trace) -> Result<u64, TraceError> {
    let rows = trace.index().vms()?;
    Ok((0..trace.config().vms.len())
        .map(|vm| {
            let last = trace.checkpoints(vm).last().map_or(0, |c| c.vtime_ns);
            rows.get(vm)
                .and_then(|r| r.final_vtime_ns)
                .unwrap_or(last)
                .max(last)
        })
        .max()
        .unwrap_or(0))
}

/// A number from the parent's `meta`.
fn meta_u64(trace: &Trace, key: &str) -> Result<Option<u64>, TraceError> {
    Ok(trace.index().meta(key)?.and_then(|v| v.parse().ok()))
}

/// Page files of `dir` shared with another folder (more than one link) and
/// not: (files, bytes) each.
fn page_sharing(dir: &Path) -> ((u64, u64), (u64, u64)) {
    use std::os::unix::fs::MetadataExt;
    let mut shared = (0, 0);
    let mut own = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.nlink() > 1 => shared = (shared.0 + 1, shared.1 + m.len()),
                Ok(m) => own = (own.0 + 1, own.1 + m.len()),
                Err(_) => {}
            }
        }
    }
    (shared, own)
}

/// Forks the trace `parent` at `at`: builds the cluster's state there,
/// makes `changes`, and runs it live into the new trace `out` (which must
/// not exist, or be empty, and lie outside `parent`). `interrupted` stops
/// the run cleanly at the next barrier; `progress` is called about twice a
/// second while it runs.
pub fn fork(
    parent: &Path,
    at: &Moment,
    changes: &[Change],
    out: &Path,
    options: &ForkOptions,
    interrupted: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ForkSummary, ForkError> {
    output::check(out, parent)?;
    let started = Instant::now();
    let (trace, at_ns) = resolve(parent, at)?;
    let end = end_ns(&trace)?;
    if at_ns > end {
        return Err(ForkError::BadMoment {
            moment: at.to_string(),
            problem: format!(
                "the trace ends at {} (virtual time {}): choose a moment before",
                format_ms(end),
                format_ms(at_ns)
            ),
        });
    }
    let frames = trace.index().frame_edges(usize::MAX)?;
    let plan = apply::plan(&trace, changes, &frames, at_ns)?;

    let parent_max_steps = meta_u64(&trace, "max_steps")?.unwrap_or(100_000_000);
    let parent_until = meta_u64(&trace, "max_vtime_ns")?.unwrap_or(u64::MAX);
    let every = options
        .checkpoint_every
        .or(meta_u64(&trace, "checkpoint_every")?)
        .unwrap_or(DEFAULT_CHECKPOINT_STEPS);
    let base = cut::choose_base(&trace, at_ns)?;
    let state = cut::base_state(&trace, &base, parent_max_steps)?;
    let cluster_options = ClusterOptions {
        jobs: options.jobs,
        max_steps: parent_max_steps,
        max_vtime_ns: parent_until,
        host_jitter: false,
    };
    let mut cluster = Cluster::from_cut(trace.config().clone(), cluster_options, state.cut);
    if let Some(stop) = cluster.advance_to(at_ns)? {
        return Err(ForkError::BadMoment {
            moment: at.to_string(),
            problem: format!("the cluster had stopped by then ({stop:?}): choose an earlier moment"),
        });
    }
    // What happened before the cut is the parent's.
    drop(cluster.take_events());
    cluster.forget_settled_frames();
    let fork_due = cut::fork_start(&trace)?.map(|s| s.due);
    let due = start::due_points(&trace, &cluster, cluster.vtime_ns(), fork_due.as_deref())?;
    // The fork's own log of the switch starts with the table at the cut.
    cluster.restart_switch_log();
    let (window_ns, next_frame_id) = (cluster.vtime_ns(), cluster.next_frame_id());
    let mut done = apply::apply(&mut cluster, &plan)?;
    cluster.set_limits(
        options.max_steps.unwrap_or(parent_max_steps),
        options.until_ns.unwrap_or(parent_until),
    );
    let n = trace.config().vms.len();
    let cut: Vec<CutVm> = (0..n)
        .map(|vm| CutVm {
            vm: trace.config().vms[vm].name.clone(),
            icount: cluster.machine(vm).icount(),
            vtime_ns: cluster.machine(vm).vtime_ns(),
        })
        .collect();

    // The new trace.
    let mut folder = output::NewFolder::create(out)?;
    let parent_dir = std::fs::canonicalize(parent).map_err(|e| TraceError::io(parent, e))?;
    // (One lock of the parent's index at a time.)
    let source = trace.index().meta("source")?.unwrap_or_default();
    let created = trace.index().meta("created")?.unwrap_or_default();
    let mut meta: Vec<(String, String)> = vec![
        ("status".into(), "recording".into()),
        ("vmrr_version".into(), env!("CARGO_PKG_VERSION").into()),
        ("seed".into(), plan.seed.to_string()),
        ("checkpoint_every".into(), every.to_string()),
        (
            crate::trace::STATE_HASH_META.into(),
            crate::trace::STATE_HASH_PAGED.into(),
        ),
        ("source".into(), source),
        (
            "max_steps".into(),
            options.max_steps.unwrap_or(parent_max_steps).to_string(),
        ),
        ("fork.parent".into(), parent_dir.display().to_string()),
        ("fork.parent_created".into(), created),
        ("fork.at".into(), at.to_string()),
        ("fork.at_ns".into(), at_ns.to_string()),
        ("fork.base_ns".into(), base.vtime_ns.to_string()),
        // What a fork of this fork needs to start where this one did.
        ("fork.window_ns".into(), window_ns.to_string()),
        ("fork.next_frame_id".into(), next_frame_id.to_string()),
        ("fork.due".into(), json(&due)),
        ("fork.cut".into(), json(&cut)),
        (
            "fork.changes".into(),
            json(&changes.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
        ),
        (
            "fork.switch".into(),
            if state.switch_exact { "logged" } else { "inferred" }.into(),
        ),
    ];
    let until = options.until_ns.unwrap_or(parent_until);
    if until != u64::MAX {
        meta.push(("max_vtime_ns".into(), until.to_string()));
    }
    let config = cluster.config().clone();
    let (index, images) = output::write_trace_files(out, &trace, &config, &meta)?;
    let names = config.vms.iter().map(|v| v.name.clone()).collect();
    let mut rec = Recorder::new(out, index, names)?;
    rec.store = rec.store.clone().sharing_with(&parent_dir.join(PAGES_DIR));
    for (vm, (base_map, due_from)) in state.base_maps.iter().zip(due).enumerate() {
        start::first_checkpoint(&mut rec, vm, cluster.machine_mut(vm), base_map)?;
        cluster.machine_mut(vm).set_exec_log(true);
        rec.vms[vm].due_from = due_from;
    }
    let faults_logged = start::faults_at_start(&mut rec, &cluster, at_ns)?;
    rec.index.flush()?;
    // From here the new trace replays (to its last checkpoint) whatever happens.
    folder.keep();
    let cut_secs = started.elapsed().as_secs_f64();
    // What the frame changes did is known when the run is over.
    let frame_notes = |c: &Cluster| -> Vec<String> {
        let name = |vm: usize| config.vms.get(vm).map(|v| v.name.clone()).unwrap_or_default();
        plan.frames
            .iter()
            .zip(c.frame_edits())
            .map(|((text, _), edit)| {
                if edit.applied.is_empty() {
                    return format!(
                        "{text}: not applied (no such frame was sent in this run: it diverged before)"
                    );
                }
                let list: Vec<String> = edit
                    .applied
                    .iter()
                    .map(|(id, dst)| format!("frame {id} to {}", name(*dst)))
                    .collect();
                format!("{text}: {}", list.join(", "))
            })
            .collect()
    };
    done.retain(|d| !plan.frames.iter().any(|(t, _)| d.starts_with(t.as_str())));
    let applied = |c: &Cluster| -> Vec<(String, String)> {
        let all: Vec<String> = done.iter().cloned().chain(frame_notes(c)).collect();
        vec![("fork.applied".to_string(), json(&all))]
    };
    let plan_run = RunPlan {
        checkpoint_every: every,
        faults_logged,
        last_meta: Some(&applied),
    };
    let record = run_recording(rec, &mut cluster, &plan_run, interrupted, progress)?;
    let changes: Vec<String> = done.iter().cloned().chain(frame_notes(&cluster)).collect();
    let (pages_shared, pages_own) = page_sharing(&out.join(PAGES_DIR));
    Ok(ForkSummary {
        at_ns,
        base_ns: base.vtime_ns,
        cut,
        changes,
        switch_exact: state.switch_exact,
        cut_secs,
        record,
        pages_shared,
        pages_own,
        images,
    })
}

/// A value as JSON text, for `meta`.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
