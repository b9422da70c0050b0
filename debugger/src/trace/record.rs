//! `vmrr record`: runs a cluster and writes its trace as it goes.
//!
//! After every window barrier the window's events go to the index (batched);
//! every `checkpoint_every` steps a VM gets a checkpoint (state + changed
//! pages), and the index is flushed, so an interrupted recording keeps a
//! valid trace up to its last checkpoint.
//!
//! [`record`] starts a cluster at its images' entry points; a fork starts
//! one from a cut of another trace and records on with the same loop
//! ([`run_recording`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vmrr_backend::{EventKind as VmEvent, Machine, Stop};
use vmrr_index::{CheckpointRow, EventKind, EventRow, FrameFate, FrameRow, Index, PacketRow, VmRow};

use super::checkpoint::CheckpointFile;
use super::codec::RowEncoder;
use super::exec_index::slice_row;
use super::learnt::{learnt_to_json, LEARNT_KEY};
use super::output::OutputDir;
use super::pages::{dir_bytes, PageStore, PAGE_BYTES};
use super::{TraceError, CLUSTER_FILE, IMAGES_DIR, INDEX_FILE, PAGES_DIR, STATE_HASH_META, STATE_HASH_PAGED};
use crate::cluster::config::FaultKind;
use crate::cluster::scheduler::Learnt;
use crate::cluster::{Cluster, ClusterConfig, ClusterEvent, ClusterOptions, ClusterStop, FrameRecord};
use vmrr_backend::state::{hex, paged_state_hash};

/// Default steps between two checkpoints of a VM: small enough that seeking
/// anywhere replays at most ~0.09 s at this host's ~120k steps/s, and
/// cheap enough that recording barely notices (a checkpoint hashes only the
/// pages that changed).
pub const DEFAULT_CHECKPOINT_STEPS: u64 = 10_000;

/// How to record.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Steps between two checkpoints of a VM.
    pub checkpoint_every: u64,
    /// Worker threads, as for `run`.
    pub jobs: usize,
    /// Stop each VM after this many steps.
    pub max_steps: u64,
    /// Stop at this virtual time.
    pub max_vtime_ns: u64,
    /// Replace the output folder if it already holds a trace.
    pub force: bool,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            checkpoint_every: DEFAULT_CHECKPOINT_STEPS,
            jobs: usize::MAX,
            max_steps: 100_000_000,
            max_vtime_ns: u64::MAX,
            force: false,
        }
    }
}

/// What the progress display shows.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Steps of every VM so far.
    pub steps: Vec<u64>,
    /// Cluster virtual time.
    pub vtime_ns: u64,
    /// Bytes of the trace directory (approximate while recording).
    pub trace_bytes: u64,
}

/// The result of a recording.
#[derive(Debug, Clone)]
pub struct RecordSummary {
    /// Why the cluster stopped.
    pub stop: ClusterStop,
    /// Per VM: name, steps, virtual time, why it stopped.
    pub vms: Vec<(String, u64, u64, String)>,
    /// Checkpoints written.
    pub checkpoints: usize,
    /// Frames sent (edges recorded).
    pub frames: usize,
    /// Bytes of the finished trace.
    pub trace_bytes: u64,
}

/// Per-VM recording state.
pub(crate) struct VmRecorder {
    /// Page index -> hash of the VM's memory as of its last checkpoint.
    pub(crate) pages: BTreeMap<u64, String>,
    pub(crate) last_checkpoint: Option<u64>,
    /// The icount the next checkpoint is counted from: the last
    /// checkpoint's, or for a fork the parent's last before the cut (so that
    /// the fork takes its checkpoints where the parent took them).
    pub(crate) due_from: u64,
    /// Frames handed to the VM so far (replay inputs consumed).
    pub(crate) inputs: u64,
    /// Its events as index rows.
    pub(crate) rows: RowEncoder,
}

impl VmRecorder {
    /// A VM whose trace has no checkpoint yet.
    pub(crate) fn new(vm: usize) -> VmRecorder {
        VmRecorder {
            pages: BTreeMap::new(),
            last_checkpoint: None,
            due_from: 0,
            inputs: 0,
            rows: RowEncoder::new(vm as u32),
        }
    }
}

fn stop_text(stop: Option<&Stop>) -> String {
    match stop {
        Some(Stop::Limit) => "step limit reached".into(),
        Some(s) => s.to_string(),
        None => "still running when the recording ended".into(),
    }
}

/// The trace's own copy of each image: `images/<name>.elf`.
pub fn image_path(name: &str) -> String {
    format!("{IMAGES_DIR}/{name}.elf")
}

/// What writes a trace while its cluster runs.
pub(crate) struct Recorder {
    pub(crate) out: PathBuf,
    pub(crate) index: Index,
    pub(crate) store: PageStore,
    pub(crate) vms: Vec<VmRecorder>,
    pub(crate) names: Vec<String>,
    pub(crate) checkpoints: usize,
    /// Frames before this index are final and written.
    pub(crate) frames_final: usize,
    /// Changes of the switch's table already written to `meta`.
    pub(crate) learnt_written: usize,
}

impl Recorder {
    /// A recorder writing into `out`, whose index is open, for VMs `names`.
    pub(crate) fn new(out: &Path, index: Index, names: Vec<String>) -> Result<Recorder, TraceError> {
        Ok(Recorder {
            out: out.to_path_buf(),
            index,
            store: PageStore::open(&out.join(PAGES_DIR))?,
            vms: (0..names.len()).map(VmRecorder::new).collect(),
            names,
            checkpoints: 0,
            frames_final: 0,
            learnt_written: 0,
        })
    }

    pub(crate) fn flush_console(&mut self, vm: usize) -> Result<(), TraceError> {
        if let Some(row) = self.vms[vm].rows.flush() {
            self.index.add_event(&row)?;
        }
        Ok(())
    }

    pub(crate) fn add(&mut self, e: &ClusterEvent) -> Result<(), TraceError> {
        match (&e.event.kind, e.frame) {
            (VmEvent::FrameReceived(_), _) => self.vms[e.vm].inputs += 1,
            // Each frame's bytes once, as sent: lost frames keep theirs too.
            (VmEvent::FrameSent(bytes), Some(id)) => self.index.add_packet(&PacketRow::new(
                id,
                e.vm as u32,
                e.event.icount,
                e.event.vtime_ns,
                bytes,
            ))?,
            _ => {}
        }
        let mut rows = Vec::new();
        self.vms[e.vm].rows.push(&e.event, e.frame, &mut rows);
        for row in &rows {
            self.index.add_event(row)?;
        }
        Ok(())
    }

    /// Writes the frames from the first one still in flight on (the index
    /// replaces rows it already has), then moves past those now final.
    pub(crate) fn write_frames(&mut self, frames: &[FrameRecord]) -> Result<(), TraceError> {
        for f in frames.iter().skip(self.frames_final) {
            let (recv_icount, recv_vtime_ns) = f.received.unzip();
            self.index.add_frame(&FrameRow {
                id: f.id,
                src: f.src as u32,
                dst: f.dst as u32,
                len: f.len as u32,
                sent_icount: f.sent_icount,
                sent_vtime_ns: f.sent_ns,
                arrival_ns: f.arrival_ns,
                recv_icount,
                recv_vtime_ns,
                fate: f.fate,
                payload: None,
            })?;
        }
        while frames
            .get(self.frames_final)
            .is_some_and(|f| f.fate != FrameFate::InFlight)
        {
            self.frames_final += 1;
        }
        Ok(())
    }

    /// Writes the changes of the switch's MAC table learnt since the last
    /// call into `meta` (`switch.learnt`): a fork rebuilds the table from them.
    pub(crate) fn write_learnt(&mut self, learnt: &[Learnt]) -> Result<(), TraceError> {
        if learnt.len() == self.learnt_written {
            return Ok(());
        }
        self.index.set_meta(LEARNT_KEY, &learnt_to_json(learnt))?;
        self.learnt_written = learnt.len();
        Ok(())
    }

    /// Checkpoints VM `vm` where it stands: core state, changed pages, file,
    /// index row. `cluster_ns` is the cluster's time when it stands at a barrier.
    pub(crate) fn checkpoint(
        &mut self,
        vm: usize,
        machine: &mut Machine,
        cluster_ns: Option<u64>,
    ) -> Result<(), TraceError> {
        let name = self.names[vm].clone();
        let err = |source: vmrr_backend::VmError| TraceError::Vm {
            vm: name.clone(),
            source,
        };
        let icount = machine.icount();
        if self.vms[vm].last_checkpoint == Some(icount) {
            return Ok(());
        }
        self.flush_console(vm)?;
        let by_writer = machine.take_dirty_pages_by_writer().map_err(err)?;
        let log = machine.take_exec_log();
        if let Some(start) = self.vms[vm].last_checkpoint {
            // The execution index of the slice that ends here.
            self.index
                .add_exec_slice(&slice_row(vm as u32, start, icount, log, &by_writer))?;
        }
        let mut dirty = by_writer.guest;
        dirty.extend(by_writer.vmm);
        dirty.sort_unstable();
        dirty.dedup();
        let state = machine.capture_core().map_err(err)?;

        let mut changed = Vec::new();
        let mut zeroed = Vec::new();
        let mut page = [0u8; PAGE_BYTES];
        for index in dirty {
            machine.read_page(index, &mut page).map_err(err)?;
            if page.iter().all(|&b| b == 0) {
                if self.vms[vm].pages.remove(&index).is_some() {
                    zeroed.push(index);
                }
                continue;
            }
            let h = self.store.put(&page)?;
            if self.vms[vm].pages.get(&index) != Some(&h) {
                self.vms[vm].pages.insert(index, h.clone());
                changed.push((index, h));
            }
        }
        // The recorder already knows every page's hash: hashing them (not
        // RAM) keeps a checkpoint's cost proportional to what changed.
        let engine = machine.engine_state().map_err(err)?;
        let pages = self.vms[vm].pages.iter().map(|(i, h)| (*i, h.as_str()));
        let hash = hex(&paged_state_hash(&engine, pages));
        let file = CheckpointFile {
            vm,
            icount,
            vtime_ns: machine.vtime_ns(),
            state_hash: hash,
            inputs_consumed: self.vms[vm].inputs,
            state,
            changed,
            zeroed,
            cluster_ns,
        };
        self.write_checkpoint(file)
    }

    /// Writes a checkpoint's file and its index rows (the checkpoint and its
    /// event), and counts the next checkpoint of its VM from there.
    pub(crate) fn write_checkpoint(&mut self, file: CheckpointFile) -> Result<(), TraceError> {
        let (vm, icount) = (file.vm, file.icount);
        let (rel, file_hash) = file.write(&self.out)?;
        self.index.add_checkpoint(&CheckpointRow {
            vm: vm as u32,
            icount,
            vtime_ns: file.vtime_ns,
            state_hash: file.state_hash.clone(),
            manifest: rel.to_string_lossy().into_owned(),
            file_hash: Some(file_hash),
        })?;
        self.index.add_event(&EventRow::new(
            vm as u32,
            icount,
            file.vtime_ns,
            EventKind::Checkpoint,
        ))?;
        self.vms[vm].last_checkpoint = Some(icount);
        self.vms[vm].due_from = icount;
        self.checkpoints += 1;
        Ok(())
    }
}

/// A fault as text for the index, and the VMs it touches. Its event stands
/// at the fault's virtual time and at each VM's icount at the window barrier
/// after it (faults act on frames, not on instructions).
pub(crate) fn describe_fault(config: &ClusterConfig, kind: &FaultKind) -> (String, Vec<usize>) {
    let name = |i: usize| config.vms.get(i).map(|v| v.name.clone()).unwrap_or_default();
    match kind {
        FaultKind::Partition(group) => {
            let names: Vec<String> = group.iter().map(|&i| name(i)).collect();
            (
                format!("partition: {} cut off", names.join(", ")),
                (0..config.vms.len()).collect(),
            )
        }
        FaultKind::Heal => ("heal: partitions removed".into(), (0..config.vms.len()).collect()),
        FaultKind::Drop {
            between, fraction, ..
        } => (
            format!(
                "drop {:.0}% between {} and {}",
                fraction * 100.0,
                name(between.0),
                name(between.1)
            ),
            vec![between.0, between.1],
        ),
        FaultKind::Delay {
            between, extra_ns, ..
        } => (
            format!(
                "delay +{} µs between {} and {}",
                extra_ns / 1000,
                name(between.0),
                name(between.1)
            ),
            vec![between.0, between.1],
        ),
    }
}

/// Reads and checks every VM's name and image before anything is written,
/// so that a bad image is named as the user gave it (not as the trace's
/// copy) and a failed check leaves no folder behind. Returns each VM's
/// image bytes, read once per distinct file.
fn preflight(config: &ClusterConfig) -> Result<Vec<std::sync::Arc<Vec<u8>>>, TraceError> {
    let mut read: BTreeMap<&Path, std::sync::Arc<Vec<u8>>> = BTreeMap::new();
    let mut images = Vec::new();
    for vm in &config.vms {
        // The name becomes images/<name>.elf: it must be a plain file name.
        crate::names::check_vm_name(&vm.name).map_err(|source| TraceError::Name {
            name: crate::describe::printable(&vm.name),
            source,
        })?;
        let err = |source| TraceError::Vm {
            vm: vm.name.clone(),
            source,
        };
        let bytes = match read.get(vm.image.as_path()) {
            Some(bytes) => bytes.clone(),
            None => {
                let bytes = std::sync::Arc::new(vmrr_backend::boot::read_image(&vm.image).map_err(err)?);
                read.insert(&vm.image, bytes.clone());
                bytes
            }
        };
        vmrr_backend::boot::inspect(&vm.image, &bytes, vm.config.mem_bytes).map_err(err)?;
        images.push(bytes);
    }
    Ok(images)
}

/// Records `config` into the new trace folder `out`. `interrupted` stops the
/// recording cleanly at the next barrier (Ctrl-C); `progress` is called about
/// twice a second.
pub fn record(
    config: &ClusterConfig,
    out: &Path,
    options: &RecordOptions,
    interrupted: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RecordSummary, TraceError> {
    let images = preflight(config)?;
    // Declared before everything that writes into it, so that on an early
    // failure those are closed first and the folder then removed.
    let mut folder = OutputDir::prepare(out, options.force)?;
    // The trace is self-contained: it runs its own copies of the images.
    let mut traced = config.clone();
    let mut index = Index::create(out.join(INDEX_FILE))?;
    for (i, vm) in config.vms.iter().enumerate() {
        let rel = image_path(&vm.name);
        let copy = out.join(&rel);
        std::fs::write(&copy, &*images[i]).map_err(|source| TraceError::CopyImage {
            from: vm.image.clone(),
            to: copy.clone(),
            source,
        })?;
        traced.vms[i].image = copy.clone();
        let mac: Vec<String> = vm.mac.iter().map(|b| format!("{b:02x}")).collect();
        index.set_vm(&VmRow {
            id: i as u32,
            name: vm.name.clone(),
            image: rel,
            image_hash: blake3::hash(&images[i]).to_hex().to_string(),
            mem_bytes: vm.config.mem_bytes,
            cmdline: vm.config.cmdline.clone(),
            instr_per_us: vm.config.instr_per_us,
            mac: mac.join(":"),
            final_icount: None,
            final_vtime_ns: None,
            stop: None,
        })?;
    }
    let toml = config.to_toml(|i| image_path(&config.vms[i].name));
    let cluster_file = out.join(CLUSTER_FILE);
    std::fs::write(&cluster_file, toml).map_err(|e| TraceError::io(&cluster_file, e))?;
    index.set_meta("status", "recording")?;
    index.set_meta("vmrr_version", env!("CARGO_PKG_VERSION"))?;
    index.set_meta("seed", &config.seed.to_string())?;
    index.set_meta("checkpoint_every", &options.checkpoint_every.to_string())?;
    index.set_meta(STATE_HASH_META, STATE_HASH_PAGED)?;
    index.set_meta("source", &config.file.display().to_string())?;
    // A fork of this trace runs on with the same limits.
    index.set_meta("max_steps", &options.max_steps.to_string())?;
    if options.max_vtime_ns != u64::MAX {
        index.set_meta("max_vtime_ns", &options.max_vtime_ns.to_string())?;
    }

    let cluster_options = ClusterOptions {
        jobs: options.jobs,
        max_steps: options.max_steps,
        max_vtime_ns: options.max_vtime_ns,
        host_jitter: false,
    };
    let mut cluster = Cluster::new(traced, cluster_options)?;
    let n = config.vms.len();
    let names = config.vms.iter().map(|v| v.name.clone()).collect();
    let mut rec = Recorder::new(out, index, names)?;
    // Checkpoint 0: the booted images (the loader's pages are in the dirty
    // log). From there on the engine logs what each VM runs and writes.
    for vm in 0..n {
        rec.checkpoint(vm, cluster.machine_mut(vm), Some(0))?;
        cluster.machine_mut(vm).set_exec_log(true);
    }
    rec.index.flush()?;
    // From here the trace replays (to its last checkpoint) whatever happens.
    folder.keep();
    let plan = RunPlan {
        checkpoint_every: options.checkpoint_every,
        faults_logged: 0,
        last_meta: None,
    };
    run_recording(rec, &mut cluster, &plan, interrupted, progress)
}

/// What gives the `meta` entries written when a run is over.
pub(crate) type LastMeta<'a> = dyn Fn(&Cluster) -> Vec<(String, String)> + 'a;

/// Where a recording's loop starts: the state a fresh recording starts
/// from, or a fork's at its cut.
pub(crate) struct RunPlan<'a> {
    /// Steps between two checkpoints of a VM.
    pub(crate) checkpoint_every: u64,
    /// Faults of the schedule whose events are already written (or belong
    /// to the parent of a fork).
    pub(crate) faults_logged: usize,
    /// `meta` entries to write when the run is over (a fork's account of
    /// its changes), from the cluster as it ended.
    pub(crate) last_meta: Option<&'a LastMeta<'a>>,
}

/// Runs `cluster` to its end, writing its events, frames and checkpoints
/// with `rec`, then the final checkpoints and the trace's status.
pub(crate) fn run_recording(
    mut rec: Recorder,
    cluster: &mut Cluster,
    plan: &RunPlan<'_>,
    interrupted: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RecordSummary, TraceError> {
    let out = rec.out.clone();
    let out = out.as_path();
    let n = rec.vms.len();
    let mut failure: Option<TraceError> = None;
    let mut last_progress = Instant::now();
    let mut faults_logged = plan.faults_logged;
    let every = plan.checkpoint_every.max(1);
    let stop = cluster
        .run(|c| {
            let mut step = || -> Result<(), TraceError> {
                for e in c.take_events() {
                    rec.add(&e)?;
                }
                // Faults that took effect in this window, on every VM they touch.
                while let Some(f) = c
                    .config()
                    .faults
                    .get(faults_logged)
                    .filter(|f| f.at_ns < c.vtime_ns())
                {
                    let (text, vms) = describe_fault(c.config(), &f.kind);
                    for vm in vms {
                        let m = c.machine(vm);
                        let row = EventRow::new(vm as u32, m.icount(), f.at_ns, EventKind::Fault)
                            .with_text(text.clone());
                        rec.index.add_event(&row)?;
                    }
                    faults_logged += 1;
                }
                let mut flushed = false;
                for vm in 0..n {
                    let icount = c.machine(vm).icount();
                    let due = icount >= rec.vms[vm].due_from.saturating_add(every);
                    if due && c.vm_stop(vm).is_none() {
                        let at = Some(c.vtime_ns());
                        rec.checkpoint(vm, c.machine_mut(vm), at)?;
                        // (A fork's first checkpoint may already stand here.)
                        rec.vms[vm].due_from = icount;
                        flushed = true;
                    }
                }
                if flushed {
                    rec.write_frames(c.frames())?;
                    rec.write_learnt(c.learnt())?;
                    rec.index.flush()?;
                }
                Ok(())
            };
            if let Err(e) = step() {
                failure = Some(e);
                return false;
            }
            if last_progress.elapsed() >= Duration::from_millis(500) {
                last_progress = Instant::now();
                progress(&Progress {
                    steps: (0..n).map(|i| c.machine(i).icount()).collect(),
                    vtime_ns: c.vtime_ns(),
                    trace_bytes: dir_bytes(out),
                });
            }
            !interrupted.load(Ordering::Relaxed)
        })
        .map_err(TraceError::Cluster)?;
    if let Some(e) = failure {
        return Err(e);
    }

    // Final checkpoints, so the whole run can be replayed and verified.
    let mut vms = Vec::new();
    for vm in 0..n {
        rec.flush_console(vm)?;
        let at = Some(cluster.vtime_ns());
        rec.checkpoint(vm, cluster.machine_mut(vm), at)?;
        let machine = cluster.machine(vm);
        let why = stop_text(cluster.vm_stop(vm));
        rec.index.add_event(
            &EventRow::new(vm as u32, machine.icount(), machine.vtime_ns(), EventKind::Stop)
                .with_text(why.clone()),
        )?;
        let mut row = rec
            .index
            .vm(vm as u32)?
            .ok_or_else(|| TraceError::Invalid(format!("VM {vm} missing from the index")))?;
        row.final_icount = Some(machine.icount());
        row.final_vtime_ns = Some(machine.vtime_ns());
        row.stop = Some(why.clone());
        rec.index.set_vm(&row)?;
        vms.push((rec.names[vm].clone(), machine.icount(), machine.vtime_ns(), why));
    }
    rec.write_frames(cluster.frames())?;
    rec.write_learnt(cluster.learnt())?;
    let status = if stop == ClusterStop::Interrupted {
        "interrupted"
    } else {
        "complete"
    };
    rec.index.set_meta("status", status)?;
    for (key, value) in plan.last_meta.map(|f| f(cluster)).unwrap_or_default() {
        rec.index.set_meta(&key, &value)?;
    }
    rec.index.flush()?;
    let checkpoints = rec.checkpoints;
    let frames = cluster.frames().len();
    rec.index.close()?;
    Ok(RecordSummary {
        stop,
        vms,
        checkpoints,
        frames,
        trace_bytes: dir_bytes(out),
    })
}
