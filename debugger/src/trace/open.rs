//! Opening a trace: its index, configuration, images (checked by hash),
//! checkpoints and recorded inputs, and restoring a VM at a checkpoint.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use vmrr_backend::{Machine, VmConfig, VmError};
use vmrr_index::{CheckpointRow, EventFilter, EventKind, EventRow, ExecSliceRow, Index};

use super::checkpoint::{CheckpointFile, PageMap};
use super::pages::{PageStore, PAGE_BYTES};
use super::{damaged, TraceError, CLUSTER_FILE, INDEX_FILE, PAGES_DIR};
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

/// A checkpoint restored into a machine ([`Trace::restore_checkpoint`]).
pub(crate) struct Restored {
    /// The machine, standing at the checkpoint.
    pub(crate) machine: Machine,
    /// The inputs the VM had taken there.
    pub(crate) inputs_consumed: usize,
    /// Its memory as restored (what dense snapshots diff against).
    pub(crate) ram: Vec<u8>,
}

/// Most machines a trace keeps for reuse (one per core of this host and
/// one more: what a parallel search has in flight).
pub const MAX_SPARES: usize = 3;

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
    /// Per VM, its execution index by slice (slice k's row, or `None` where
    /// the trace has none), read on first use.
    exec: Vec<OnceLock<Arc<[Option<ExecSliceRow>]>>>,
    /// Machines kept for reuse (by VM): restoring a checkpoint into one costs
    /// a few milliseconds where building a VM costs tens (see
    /// [`Trace::recycle`]).
    spares: Mutex<Vec<(usize, Machine)>>,
    /// Whether checkpoints hold page-wise state hashes (meta `state_hash`),
    /// which a restore can check without reading RAM again.
    paged_hash: bool,
}

impl Trace {
    /// Opens the trace in `dir`, checking its index and its images' hashes.
    /// `writable` opens the index for bookmarks.
    pub fn open(dir: &Path, writable: bool) -> Result<Trace, TraceError> {
        super::checks::check_is_trace(dir)?;
        let index_path = dir.join(INDEX_FILE);
        if !index_path.is_file() {
            return Err(damaged(&index_path, "the index is missing"));
        }
        let index = if writable {
            Index::open(&index_path)?
        } else {
            Index::open_read_only(&index_path)?
        };
        // What replay depends on must be what was recorded, before any of
        // it is shown: a mismatch is damage, named now.
        index.verify_checksums()?;
        let rows = index.vms()?;
        // Before the cluster file, whose own check would call a missing copy
        // "no such file ... build the guests".
        super::checks::check_images(dir, &rows)?;
        let config = ClusterConfig::load(&dir.join(CLUSTER_FILE))?;
        if rows.len() != config.vms.len() {
            return Err(damaged(
                &dir.join(CLUSTER_FILE),
                format!("lists {} VMs but the index has {}", config.vms.len(), rows.len()),
            ));
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
        let paged_hash = index.meta(super::STATE_HASH_META)?.as_deref() == Some(super::STATE_HASH_PAGED);
        let config_len = config.vms.len();
        Ok(Trace {
            dir: dir.to_path_buf(),
            store: PageStore::open(&dir.join(PAGES_DIR))?,
            index: Mutex::new(index),
            config,
            checkpoints,
            page_maps: (0..config_len).map(|_| Mutex::new(Vec::new())).collect(),
            exec: (0..config_len).map(|_| OnceLock::new()).collect(),
            inputs,
            complete,
            paged_hash,
            spares: Mutex::new(Vec::new()),
        })
    }

    /// The execution index of `vm`, by checkpoint slice: entry k describes
    /// the slice from checkpoint k to k+1, `None` where the trace lacks it
    /// (recorded by an older vmrr: `vmrr index` builds it).
    pub fn exec_index(&self, vm: usize) -> Result<Arc<[Option<ExecSliceRow>]>, TraceError> {
        if let Some(rows) = self.exec[vm].get() {
            return Ok(rows.clone());
        }
        let rows = self.index().exec_slices(vm as u32)?;
        let cps = &self.checkpoints[vm];
        let by_slice: Arc<[Option<ExecSliceRow>]> = (0..cps.len().saturating_sub(1))
            .map(|k| {
                rows.iter()
                    .find(|r| r.icount == cps[k].icount && r.end_icount == cps[k + 1].icount)
                    .cloned()
            })
            .collect();
        Ok(self.exec[vm].get_or_init(|| by_slice).clone())
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

    /// First icount of `vm` in the trace (its first checkpoint): 0, or for a
    /// fork the VM's icount at the cut (a fork keeps its parent's icounts).
    pub fn start_icount(&self, vm: usize) -> u64 {
        self.checkpoints[vm].first().map(|c| c.icount).unwrap_or(0)
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
            let file = CheckpointFile::read(&self.dir, Path::new(&row.manifest), row.file_hash.as_deref())?;
            if file.icount != row.icount || file.vm != vm {
                return Err(damaged(
                    &self.dir.join(&row.manifest),
                    "checkpoint file does not match its index entry",
                ));
            }
            // Named here, with the file, rather than when memory is built.
            let mem_bytes = self.config.vms[vm].config.mem_bytes;
            let pages = mem_bytes / PAGE_BYTES as u64;
            if let Some((index, _)) = file.changed.iter().find(|(i, _)| *i >= pages) {
                return Err(damaged(
                    &self.dir.join(&row.manifest),
                    format!("it writes page {index}, outside the VM's {mem_bytes} bytes of memory"),
                ));
            }
            Ok(file)
        };
        let mut maps = self.page_maps[vm].lock().unwrap_or_else(|p| p.into_inner());
        // The file of checkpoint k, if building the maps read it already.
        let mut file_k = None;
        while maps.len() <= k {
            let i = maps.len();
            let file = read(&rows[i])?;
            let mut map = maps.last().cloned().unwrap_or_default();
            map.apply(&file);
            maps.push(map);
            if i == k {
                file_k = Some(file);
            }
        }
        let map = maps[k].clone();
        drop(maps);
        let file = match file_k {
            Some(file) => file,
            None => read(row)?,
        };
        Ok((file, map))
    }

    /// The memory of `vm` at its checkpoint `k`, as a page map (a fork's
    /// first checkpoint starts from it).
    pub fn page_map(&self, vm: usize, k: usize) -> Result<PageMap, TraceError> {
        Ok(self.checkpoint_with_map(vm, k)?.1)
    }

    /// Checkpoint `k` of `vm` with the full memory image it stands for.
    pub fn checkpoint_state(&self, vm: usize, k: usize) -> Result<(CheckpointFile, Vec<u8>), TraceError> {
        let (file, map) = self.checkpoint_with_map(vm, k)?;
        let ram = map.materialise(&self.store, self.config.vms[vm].config.mem_bytes)?;
        Ok((file, ram))
    }

    /// A VM at checkpoint `k` of `vm` (a kept machine restored into, or a
    /// new one), and how many inputs it has taken.
    pub fn machine_at_checkpoint(&self, vm: usize, k: usize) -> Result<(Machine, usize), TraceError> {
        let restored = self.restore_checkpoint(vm, k, None)?;
        Ok((restored.machine, restored.inputs_consumed))
    }

    /// Restores checkpoint `k` of `vm` into `reuse`, else a kept machine,
    /// else a new one, and checks the state against the index's hash. The
    /// checkpoint file is read once for all of it.
    pub(crate) fn restore_checkpoint(
        &self,
        vm: usize,
        k: usize,
        reuse: Option<Machine>,
    ) -> Result<Restored, TraceError> {
        let (file, map) = self.checkpoint_with_map(vm, k)?;
        let ram = map.materialise(&self.store, self.config.vms[vm].config.mem_bytes)?;
        let machine = match reuse.or_else(|| self.spare(vm)) {
            Some(mut m) => {
                m.restore_with_memory(&file.state, &ram)
                    .map_err(|e| self.vm_error(vm, e))?;
                m
            }
            None => Machine::from_parts(self.vm_config(vm), &file.state, &ram)
                .map_err(|e| self.vm_error(vm, e))?,
        };
        self.check_restored(vm, k, &machine, &map)?;
        Ok(Restored {
            machine,
            inputs_consumed: file.inputs_consumed as usize,
            ram,
        })
    }

    /// Whether the checkpoints' state hashes are page-wise (meta `state_hash`).
    pub(crate) fn paged_hash(&self) -> bool {
        self.paged_hash
    }

    /// A machine of `vm` kept by [`Trace::recycle`], if there is one: the
    /// caller restores a state into it (all of it, RAM included).
    pub fn spare(&self, vm: usize) -> Option<Machine> {
        let mut spares = self.spares.lock().unwrap_or_else(|p| p.into_inner());
        let i = spares.iter().position(|(v, _)| *v == vm)?;
        Some(spares.swap_remove(i).1)
    }

    /// Keeps a machine of `vm` that is no longer needed, for the next restore
    /// of that VM (searches and verification replay slice after slice).
    /// Its breakpoints and logs are cleared; at most [`MAX_SPARES`] are
    /// kept in all, since each holds its VM's memory.
    pub fn recycle(&self, vm: usize, mut machine: Machine) {
        machine.reset_aids();
        let mut spares = self.spares.lock().unwrap_or_else(|p| p.into_inner());
        if spares.len() >= MAX_SPARES {
            spares.remove(0);
        }
        spares.push((vm, machine));
    }

    /// Checks a VM just restored from checkpoint `k` against the state hash
    /// the index holds for it: a checkpoint edited but still valid (its file
    /// hash sealed again, a register changed) is damage, named before any
    /// view shows that state. Needs page-wise hashes (every trace recorded
    /// since they exist): the pages' own hashes stand for RAM, so the check
    /// costs the engine state's serialisation, not a pass over RAM. Older
    /// traces are checked by `replay --verify` only.
    fn check_restored(
        &self,
        vm: usize,
        k: usize,
        machine: &Machine,
        map: &PageMap,
    ) -> Result<(), TraceError> {
        if !self.paged_hash {
            return Ok(());
        }
        let Some(row) = self.checkpoints[vm].get(k) else {
            return Ok(());
        };
        let engine = machine.engine_state().map_err(|e| self.vm_error(vm, e))?;
        let pages = map.0.iter().map(|(i, h)| (*i, h.as_str()));
        let hash = vmrr_backend::state::hex(&vmrr_backend::state::paged_state_hash(&engine, pages));
        if hash != row.state_hash {
            return Err(damaged(
                &self.dir.join(&row.manifest),
                format!(
                    "the state restored from checkpoint {k} of VM '{}' (icount {}) has hash {}…, \
                     the index recorded {}…: the checkpoint or its index row was changed",
                    self.config.vms[vm].name,
                    row.icount,
                    hash.get(..12).unwrap_or(&hash),
                    row.state_hash.get(..12).unwrap_or(&row.state_hash)
                ),
            ));
        }
        Ok(())
    }
}
