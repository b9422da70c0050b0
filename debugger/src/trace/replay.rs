//! Opening a trace, materialising a VM at any position (seek), and replay
//! with verification against the recorded checkpoints.
//!
//! Each VM replays on its own: its inputs are the frames it received, with the
//! exact (icount, virtual time) at which they were handed over. Checkpoint
//! slices are independent, so they replay in parallel.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use vmrr_backend::regs::{GeneralRegs, Gpr, RFLAGS_HOST_BITS};
use vmrr_backend::{Machine, RunLimit, Stop, VmConfig, VmError};
use vmrr_index::{CheckpointRow, EventFilter, EventKind, EventRow, Index};

use super::checkpoint::{CheckpointFile, PageMap};
use super::pages::PageStore;
use super::{file_hash, TraceError, CLUSTER_FILE, INDEX_FILE, PAGES_DIR};
use crate::cluster::ClusterConfig;

/// A frame handed to a VM: the replay input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Delivered before this instruction.
    pub icount: u64,
    /// At this virtual time.
    pub vtime_ns: u64,
    /// The frame.
    pub frame: Vec<u8>,
}

/// An open trace.
pub struct Trace {
    dir: PathBuf,
    // Behind a lock: a SQLite connection is not shared between threads, and
    // parallel verification only touches it to explain a divergence.
    index: Mutex<Index>,
    config: ClusterConfig,
    store: PageStore,
    checkpoints: Vec<Vec<CheckpointRow>>,
    inputs: Vec<Vec<Input>>,
    complete: bool,
    /// Per VM, the memory page maps of its first checkpoints, built on demand:
    /// map k is map k-1 plus checkpoint k's changes, so restoring checkpoint k
    /// does not re-read all the files before it.
    page_maps: Vec<Mutex<Vec<PageMap>>>,
}

/// Where a replay first disagreed with the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// VM index.
    pub vm: usize,
    /// VM name.
    pub name: String,
    /// The first icount known to differ (an event's, or the checkpoint's).
    pub icount: u64,
    /// What differs, for the user.
    pub detail: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "divergence in VM '{}' at icount {}: {}",
            self.name, self.icount, self.detail
        )
    }
}

/// Outcome of replaying one checkpoint slice.
#[derive(Debug, Clone)]
pub struct SliceResult {
    /// VM index.
    pub vm: usize,
    /// Slice start and end icounts.
    pub from: u64,
    /// End of the slice.
    pub to: u64,
    /// Steps replayed.
    pub steps: u64,
    /// The divergence, if the end state did not match.
    pub divergence: Option<Divergence>,
}

fn damaged(path: &Path, problem: impl Into<String>) -> TraceError {
    TraceError::Damaged {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

impl Trace {
    /// Opens the trace in `dir`, checking its index and its images' hashes.
    /// `writable` opens the index for bookmarks.
    pub fn open(dir: &Path, writable: bool) -> Result<Trace, TraceError> {
        if !dir.is_dir() {
            return Err(TraceError::Invalid(format!(
                "{} is not a trace directory (record one with `vmrr record CLUSTER.toml -o DIR`)",
                dir.display()
            )));
        }
        let index_path = dir.join(INDEX_FILE);
        if !index_path.is_file() {
            return Err(damaged(&index_path, "the index is missing"));
        }
        let index = if writable {
            Index::open(&index_path)?
        } else {
            Index::open_read_only(&index_path)?
        };
        let config = ClusterConfig::load(&dir.join(CLUSTER_FILE))?;
        let rows = index.vms()?;
        if rows.len() != config.vms.len() {
            return Err(damaged(
                &dir.join(CLUSTER_FILE),
                format!("lists {} VMs but the index has {}", config.vms.len(), rows.len()),
            ));
        }
        for row in &rows {
            let path = dir.join(&row.image);
            let found = file_hash(&path).map_err(|_| damaged(&path, "the guest image copy is missing"))?;
            if found != row.image_hash {
                return Err(TraceError::ImageMismatch {
                    path,
                    found,
                    recorded: row.image_hash.clone(),
                });
            }
        }
        let mut checkpoints = Vec::new();
        let mut inputs = Vec::new();
        for vm in 0..config.vms.len() {
            let cps = index.checkpoints(vm as u32)?;
            if cps.is_empty() {
                return Err(damaged(
                    &index_path,
                    format!("VM '{}' has no checkpoint", config.vms[vm].name),
                ));
            }
            checkpoints.push(cps);
            let filter = EventFilter::all()
                .with_vms(vec![vm as u32])
                .with_kinds(vec![EventKind::FrameRecv]);
            let rows = index.events_in_window(0, u64::MAX, &filter, usize::MAX)?;
            let mut list: Vec<Input> = rows
                .into_iter()
                .map(|r: EventRow| Input {
                    icount: r.icount,
                    vtime_ns: r.vtime_ns,
                    frame: r.payload.unwrap_or_default(),
                })
                .collect();
            list.sort_by_key(|i| (i.icount, i.vtime_ns));
            inputs.push(list);
        }
        let complete = index.meta("status")?.as_deref() == Some("complete");
        let config_len = config.vms.len();
        Ok(Trace {
            dir: dir.to_path_buf(),
            store: PageStore::open(&dir.join(PAGES_DIR))?,
            index: Mutex::new(index),
            config,
            checkpoints,
            page_maps: (0..config_len).map(|_| Mutex::new(Vec::new())).collect(),
            inputs,
            complete,
        })
    }

    /// The trace folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index (locked for the caller's use).
    pub fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The recorded configuration (images inside the trace).
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Whether the recording finished (false: interrupted or killed; replay
    /// reaches its last checkpoint).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Index of the VM called `name`.
    pub fn vm_by_name(&self, name: &str) -> Result<usize, TraceError> {
        self.config
            .vms
            .iter()
            .position(|v| v.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.config.vms.iter().map(|v| v.name.as_str()).collect();
                TraceError::Invalid(format!(
                    "no VM '{name}' in this trace (it has: {})",
                    names.join(", ")
                ))
            })
    }

    /// A request that does not fit this trace.
    pub fn invalid(&self, message: String) -> TraceError {
        TraceError::Invalid(message)
    }

    /// The checkpoints of `vm`, in icount order.
    pub fn checkpoints(&self, vm: usize) -> &[CheckpointRow] {
        &self.checkpoints[vm]
    }

    /// The recorded inputs of `vm`.
    pub fn inputs(&self, vm: usize) -> &[Input] {
        &self.inputs[vm]
    }

    /// Last replayable icount of `vm` (its last checkpoint).
    pub fn end_icount(&self, vm: usize) -> u64 {
        self.checkpoints[vm].last().map(|c| c.icount).unwrap_or(0)
    }

    /// The configuration `vm` was recorded with (its NIC included).
    pub fn vm_config(&self, vm: usize) -> VmConfig {
        let spec = &self.config.vms[vm];
        VmConfig {
            nic_mac: Some(spec.mac),
            ..spec.config.clone()
        }
    }

    /// An engine error of VM `vm`, named.
    pub fn vm_error(&self, vm: usize, source: VmError) -> TraceError {
        TraceError::Vm {
            vm: self.config.vms[vm].name.clone(),
            source,
        }
    }

    /// Checkpoint `k` of `vm` and its memory page map.
    fn checkpoint_with_map(&self, vm: usize, k: usize) -> Result<(CheckpointFile, PageMap), TraceError> {
        let rows = &self.checkpoints[vm];
        let row = rows
            .get(k)
            .ok_or_else(|| TraceError::Invalid(format!("VM {vm} has no checkpoint {k}")))?;
        let read = |row: &CheckpointRow| -> Result<CheckpointFile, TraceError> {
            let file = CheckpointFile::read(&self.dir, Path::new(&row.manifest))?;
            if file.icount != row.icount || file.vm != vm {
                return Err(damaged(
                    &self.dir.join(&row.manifest),
                    "checkpoint file does not match its index entry",
                ));
            }
            Ok(file)
        };
        let mut maps = self.page_maps[vm].lock().unwrap_or_else(|p| p.into_inner());
        while maps.len() <= k {
            let i = maps.len();
            let file = read(&rows[i])?;
            let mut map = maps.last().cloned().unwrap_or_default();
            map.apply(&file);
            maps.push(map);
        }
        let map = maps[k].clone();
        drop(maps);
        Ok((read(row)?, map))
    }

    /// Checkpoint `k` of `vm` with the full memory image it stands for.
    pub fn checkpoint_state(&self, vm: usize, k: usize) -> Result<(CheckpointFile, Vec<u8>), TraceError> {
        let (file, map) = self.checkpoint_with_map(vm, k)?;
        let ram = map.materialise(&self.store, self.config.vms[vm].config.mem_bytes)?;
        Ok((file, ram))
    }

    /// A fresh VM at checkpoint `k` of `vm`, and how many inputs it has taken.
    pub fn machine_at_checkpoint(&self, vm: usize, k: usize) -> Result<(Machine, usize), TraceError> {
        let (file, ram) = self.checkpoint_state(vm, k)?;
        let machine =
            Machine::from_parts(self.vm_config(vm), &file.state, &ram).map_err(|e| self.vm_error(vm, e))?;
        Ok((machine, file.inputs_consumed as usize))
    }

    /// Runs `machine` (which has taken `*next` inputs) to `icount`, delivering
    /// recorded inputs on the way, at most `input_limit` of them in total.
    pub fn run_to(
        &self,
        vm: usize,
        machine: &mut Machine,
        next: &mut usize,
        icount: u64,
        input_limit: usize,
    ) -> Result<Stop, TraceError> {
        let inputs = &self.inputs[vm];
        loop {
            let pending = inputs
                .get(*next)
                .filter(|i| *next < input_limit && i.icount <= icount);
            let target = pending.map(|i| i.icount).unwrap_or(icount);
            let stop = machine
                .run(RunLimit::icount(target))
                .map_err(|e| self.vm_error(vm, e))?;
            // A breakpoint stop comes before any input due at that icount.
            if stop.is_final() || machine.breakpoint_hit().is_some() {
                return Ok(stop);
            }
            match pending {
                Some(input) if machine.icount() == input.icount => {
                    self.deliver(vm, machine, input)?;
                    *next += 1;
                }
                _ => return Ok(stop),
            }
        }
    }

    /// Hands `input` to `machine`, which stands at the input's icount: a
    /// halted VM first idles to the input's virtual time, as it did when recorded.
    fn deliver(&self, vm: usize, machine: &mut Machine, input: &Input) -> Result<(), TraceError> {
        machine
            .idle_until(input.vtime_ns)
            .map_err(|e| self.vm_error(vm, e))?;
        machine
            .deliver_frame(&input.frame)
            .map_err(|e| self.vm_error(vm, e))?;
        Ok(())
    }

    /// Runs `machine` up to virtual time `t` (every instruction starting before
    /// `t` executed), delivering the inputs recorded before `t`.
    pub fn run_to_vtime(
        &self,
        vm: usize,
        machine: &mut Machine,
        next: &mut usize,
        t: u64,
    ) -> Result<Stop, TraceError> {
        let inputs = &self.inputs[vm];
        while let Some(input) = inputs.get(*next).filter(|i| i.vtime_ns < t) {
            let stop = machine
                .run(RunLimit::icount(input.icount))
                .map_err(|e| self.vm_error(vm, e))?;
            if stop.is_final() || machine.icount() != input.icount {
                return Ok(stop);
            }
            self.deliver(vm, machine, input)?;
            *next += 1;
        }
        machine
            .run(RunLimit {
                icount: self.end_icount(vm),
                vtime_ns: Some(t),
            })
            .map_err(|e| self.vm_error(vm, e))
    }

    /// Materialises `vm` at `icount` (after the inputs delivered there):
    /// restores the nearest checkpoint at or before it and replays forward.
    pub fn seek(&self, vm: usize, icount: u64) -> Result<Machine, TraceError> {
        if icount > self.end_icount(vm) {
            return Err(TraceError::Invalid(format!(
                "icount {icount} is past the end of VM '{}' in this trace ({})",
                self.config.vms[vm].name,
                self.end_icount(vm)
            )));
        }
        let k = self.checkpoints[vm]
            .iter()
            .rposition(|c| c.icount <= icount)
            .unwrap_or(0);
        let (mut machine, mut next) = self.machine_at_checkpoint(vm, k)?;
        self.run_to(vm, &mut machine, &mut next, icount, usize::MAX)?;
        Ok(machine)
    }

    /// Replays slice `k` of `vm` (checkpoint k to k+1) and compares the end
    /// state with the recorded one.
    pub fn replay_slice(&self, vm: usize, k: usize) -> Result<SliceResult, TraceError> {
        let cps = &self.checkpoints[vm];
        let (Some(from), Some(to)) = (cps.get(k), cps.get(k + 1)) else {
            return Err(TraceError::Invalid(format!("VM {vm} has no slice {k}")));
        };
        let (mut machine, mut next) = self.machine_at_checkpoint(vm, k)?;
        let end_file = CheckpointFile::read(&self.dir, Path::new(&to.manifest))?;
        let limit = end_file.inputs_consumed as usize;
        let mut produced = Vec::new();
        let outcome = (|| -> Result<(), TraceError> {
            self.run_to(vm, &mut machine, &mut next, to.icount, limit)?;
            produced = machine.take_events();
            machine
                .idle_until(end_file.vtime_ns)
                .map_err(|e| self.vm_error(vm, e))?;
            Ok(())
        })();
        let steps = machine.icount().saturating_sub(from.icount);
        let hash = vmrr_backend::state::hex(&machine.state_hash().map_err(|e| self.vm_error(vm, e))?);
        let divergence = match outcome {
            Err(e) => Some(self.explain(
                vm,
                from,
                to,
                &produced,
                &machine,
                &end_file,
                format!("replay failed: {e}"),
            )?),
            Ok(()) if hash != to.state_hash || machine.icount() != to.icount || next != limit => {
                Some(self.explain(vm, from, to, &produced, &machine, &end_file, String::new())?)
            }
            Ok(()) => None,
        };
        Ok(SliceResult {
            vm,
            from: from.icount,
            to: to.icount,
            steps,
            divergence,
        })
    }

    /// Says precisely how a slice's replay differs: the first event that
    /// differs from the recording, else the registers and pages at its end.
    #[allow(clippy::too_many_arguments)]
    fn explain(
        &self,
        vm: usize,
        from: &CheckpointRow,
        to: &CheckpointRow,
        produced: &[vmrr_backend::Event],
        machine: &Machine,
        end: &CheckpointFile,
        prefix: String,
    ) -> Result<Divergence, TraceError> {
        let name = self.config.vms[vm].name.clone();
        let recorded = self.recorded_events(vm, from.icount, to.icount)?;
        let replayed: Vec<(u64, String)> = produced.iter().filter_map(describe).collect();
        for (i, r) in recorded.iter().enumerate() {
            let at = |icount: u64| {
                if icount == u64::MAX {
                    String::new()
                } else {
                    format!(" at icount {icount}")
                }
            };
            let sep = if prefix.is_empty() { "" } else { "; " };
            match replayed.get(i) {
                Some(p) if p.1 == r.1 => continue,
                Some(p) => {
                    return Ok(Divergence {
                        vm,
                        name,
                        icount: p.0,
                        detail: format!(
                            "{prefix}{sep}recorded {}{}, replay gave {}{}",
                            r.1,
                            at(r.0),
                            p.1,
                            at(p.0)
                        ),
                    });
                }
                None => {
                    return Ok(Divergence {
                        vm,
                        name,
                        icount: r.0,
                        detail: format!(
                            "{prefix}{sep}recorded {}{}, replay produced nothing there",
                            r.1,
                            at(r.0)
                        ),
                    });
                }
            }
        }
        // Same events: compare the end states.
        // Host-owned RFLAGS bits (TF, RF) are not the guest's: leave them out.
        let guest_view = |mut regs: GeneralRegs| {
            regs[Gpr::Rflags] &= !RFLAGS_HOST_BITS;
            regs
        };
        let now = guest_view(machine.general_regs());
        let want = guest_view(GeneralRegs::from_kvm(&end.state.vcpu.regs));
        let diffs: Vec<String> = Gpr::DISPLAY_ORDER
            .into_iter()
            .filter(|&g| now[g] != want[g])
            .map(|g| format!("{} {:#x} (recorded {:#x})", g.name(), now[g], want[g]))
            .collect();
        let k = self.checkpoints[vm]
            .iter()
            .position(|c| c.icount == to.icount)
            .unwrap_or(0);
        let (_, ram) = self.checkpoint_state(vm, k)?;
        let mut pages = Vec::new();
        let mut page = [0u8; 4096];
        for (i, want) in ram.chunks(4096).enumerate() {
            if machine.read_page(i as u64, &mut page).is_ok() && page[..] != *want {
                pages.push(format!("{:#x}", i * 4096));
            }
        }
        let mut detail = prefix;
        if machine.icount() != to.icount {
            detail += &format!(
                "{}replay stopped at icount {} instead of {}",
                if detail.is_empty() { "" } else { "; " },
                machine.icount(),
                to.icount
            );
        }
        detail += &format!(
            "{}state at the checkpoint differs: registers [{}], pages [{}]{}",
            if detail.is_empty() { "" } else { "; " },
            if diffs.is_empty() {
                "none".into()
            } else {
                diffs.join(", ")
            },
            pages.iter().take(8).cloned().collect::<Vec<_>>().join(", "),
            if pages.len() > 8 {
                format!(" and {} more", pages.len() - 8)
            } else {
                String::new()
            }
        );
        Ok(Divergence {
            vm,
            name,
            icount: to.icount.min(machine.icount()),
            detail,
        })
    }

    /// The recorded events of `vm` in (from, to], as comparable descriptions.
    fn recorded_events(&self, vm: usize, from: u64, to: u64) -> Result<Vec<(u64, String)>, TraceError> {
        let rows = self.index().events_of_vm_around(vm as u32, from, 0, usize::MAX)?;
        let mut out = Vec::new();
        for r in rows {
            if r.icount < from || r.icount > to {
                continue;
            }
            match r.kind {
                EventKind::Console => {
                    let bytes = r
                        .payload
                        .clone()
                        .unwrap_or_else(|| r.text.clone().unwrap_or_default().into_bytes());
                    for (i, b) in bytes.iter().enumerate() {
                        // A run's bytes came from consecutive output steps; only the first's icount is stored.
                        out.push((if i == 0 { r.icount } else { u64::MAX }, console_text(*b)));
                    }
                }
                EventKind::Interrupt => {
                    out.push((r.icount, format!("interrupt {:#x}", r.value.unwrap_or(0))))
                }
                EventKind::FrameSent => out.push((r.icount, "frame sent".into())),
                EventKind::Marker => out.push((
                    r.icount,
                    format!(
                        "marker {} {}",
                        r.text.clone().unwrap_or_default(),
                        r.value.unwrap_or(0)
                    ),
                )),
                EventKind::Exit => out.push((r.icount, format!("exit {}", r.value.unwrap_or(0)))),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Replays every slice of the chosen VMs on `jobs` threads; returns the
    /// results ordered by VM and icount.
    pub fn verify(
        &self,
        vms: &[usize],
        jobs: usize,
        on_done: &(dyn Fn(&SliceResult) + Sync),
    ) -> Result<Vec<SliceResult>, TraceError> {
        let work: Vec<(usize, usize)> = vms
            .iter()
            .flat_map(|&vm| (0..self.checkpoints[vm].len().saturating_sub(1)).map(move |k| (vm, k)))
            .collect();
        let results: Mutex<Vec<Result<SliceResult, TraceError>>> = Mutex::new(Vec::new());
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..jobs.clamp(1, work.len().max(1)) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(vm, k)) = work.get(i) else { break };
                    let r = self.replay_slice(vm, k);
                    if let Ok(done) = &r {
                        on_done(done);
                    }
                    if let Ok(mut all) = results.lock() {
                        all.push(r);
                    }
                });
            }
        });
        let mut out = Vec::new();
        for r in results.into_inner().unwrap_or_default() {
            out.push(r?);
        }
        out.sort_by_key(|r| (r.vm, r.from));
        Ok(out)
    }
}

/// A console byte as the user would read it: `console '9'` or `console 0x0a`.
fn console_text(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("console '{}'", b as char)
    } else {
        format!("console {b:#04x}")
    }
}

/// A comparable description of an engine event (the kinds the index keeps per step).
fn describe(e: &vmrr_backend::Event) -> Option<(u64, String)> {
    use vmrr_backend::EventKind as K;
    Some(match &e.kind {
        K::Console(b) => (e.icount, console_text(*b)),
        K::Interrupt(v) => (e.icount, format!("interrupt {v:#x}")),
        K::FrameSent(_) => (e.icount, "frame sent".into()),
        K::Marker { name, value } => (e.icount, format!("marker {name} {value}")),
        K::Exit(v) => (e.icount, format!("exit {v}")),
        _ => return None,
    })
}
