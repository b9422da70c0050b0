//! Checkpoint files: a VM's vCPU and device state at one icount, plus the
//! pages that changed since its previous checkpoint (by hash, in the page
//! store). A VM's memory at checkpoint k is the union of the changes of its
//! checkpoints 0..=k over zeroed RAM.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vmrr_backend::MachineState;

use super::pages::{PageStore, PAGE_BYTES};
use super::TraceError;

/// Largest checkpoint file read, and largest JSON it may unpack to: a 3 GiB
/// VM that changed every page lists 786 432 of them, about 80 MB of JSON.
pub const MAX_CHECKPOINT_BYTES: u64 = 256 << 20;

/// What one checkpoint file holds.
#[derive(Serialize, Deserialize)]
pub struct CheckpointFile {
    /// VM index.
    pub vm: usize,
    /// Where it was taken.
    pub icount: u64,
    /// Virtual time there.
    pub vtime_ns: u64,
    /// The VM's state hash there (`Machine::state_hash`), for verification.
    pub state_hash: String,
    /// How many recorded inputs (received frames) the VM had taken by then:
    /// an input at exactly this icount may come before or after the checkpoint.
    pub inputs_consumed: u64,
    /// Everything but memory.
    pub state: MachineState,
    /// Pages written since the previous checkpoint: (page index, hash).
    pub changed: Vec<(u64, String)>,
    /// Pages that became all zeros since the previous checkpoint.
    pub zeroed: Vec<u64>,
}

/// File name of the checkpoint of `vm` at `icount`, relative to the trace.
pub fn relative_path(vm: usize, icount: u64) -> PathBuf {
    PathBuf::from("checkpoints")
        .join(format!("vm{vm}"))
        .join(format!("{icount:012}.json.zst"))
}

impl CheckpointFile {
    /// Writes the file (temporary name, then rename); returns its path
    /// relative to the trace and the blake3 of its bytes (kept in the index,
    /// so that an edited file is named as damaged when it is read).
    pub fn write(&self, trace: &Path) -> Result<(PathBuf, String), TraceError> {
        let rel = relative_path(self.vm, self.icount);
        let path = trace.join(&rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| TraceError::io(dir, e))?;
        }
        let json = serde_json::to_vec(self).map_err(|e| TraceError::Damaged {
            path: path.clone(),
            problem: format!("cannot encode checkpoint: {e}"),
        })?;
        let packed = zstd::encode_all(&json[..], 3).map_err(|e| TraceError::io(&path, e))?;
        let hash = blake3::hash(&packed).to_hex().to_string();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, packed).map_err(|e| TraceError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| TraceError::io(&path, e))?;
        Ok((rel, hash))
    }

    /// Reads a checkpoint file (a regular file of at most
    /// [`MAX_CHECKPOINT_BYTES`]), checking it against the hash the index
    /// holds for it (`None`: a checkpoint recorded before hashes were kept).
    pub fn read(trace: &Path, rel: &Path, hash: Option<&str>) -> Result<CheckpointFile, TraceError> {
        let path = trace.join(rel);
        let damaged = |problem: String| TraceError::Damaged {
            path: path.clone(),
            problem,
        };
        let packed = vmrr_backend::input::read_limited(&path, "a checkpoint file", MAX_CHECKPOINT_BYTES)
            .map_err(|e| {
                damaged(format!(
                    "checkpoint is missing or unreadable (it {})",
                    e.problem()
                ))
            })?;
        if let Some(want) = hash {
            let found = blake3::hash(&packed).to_hex().to_string();
            if found != want {
                return Err(damaged(format!(
                    "the checkpoint file was changed after it was recorded (blake3 {found}, the index says {want})"
                )));
            }
        }
        CheckpointFile::decode(&path, &packed)
    }

    /// Decodes the bytes of a checkpoint file (zstd, then JSON), unpacking
    /// at most [`MAX_CHECKPOINT_BYTES`]; `path` names the file in errors.
    /// Bytes from outside: nothing here may panic or allocate without bound.
    pub fn decode(path: &Path, packed: &[u8]) -> Result<CheckpointFile, TraceError> {
        let damaged = |problem: String| TraceError::Damaged {
            path: path.to_path_buf(),
            problem,
        };
        let json = super::pages::unpack_limited(packed, MAX_CHECKPOINT_BYTES)
            .map_err(|e| damaged(format!("checkpoint does not decompress ({e})")))?;
        serde_json::from_slice(&json).map_err(|e| damaged(format!("checkpoint is not readable ({e})")))
    }
}

/// A VM's memory as a page map: page index -> hash (zero pages absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageMap(pub BTreeMap<u64, String>);

impl PageMap {
    /// Applies one checkpoint's changes.
    pub fn apply(&mut self, file: &CheckpointFile) {
        for (index, hash) in &file.changed {
            self.0.insert(*index, hash.clone());
        }
        for index in &file.zeroed {
            self.0.remove(index);
        }
    }

    /// Builds the RAM image of `mem_bytes` bytes.
    pub fn materialise(&self, store: &PageStore, mem_bytes: u64) -> Result<Vec<u8>, TraceError> {
        let mut ram = vec![0u8; mem_bytes as usize];
        for (index, hash) in &self.0 {
            // The index comes from a file: no multiplication may wrap.
            let slot = usize::try_from(*index)
                .ok()
                .and_then(|i| i.checked_mul(PAGE_BYTES))
                .and_then(|at| ram.get_mut(at..at.checked_add(PAGE_BYTES)?));
            let Some(slot) = slot else {
                return Err(TraceError::Invalid(format!(
                    "page {index} lies outside the VM's {mem_bytes} bytes"
                )));
            };
            slot.copy_from_slice(&store.get(hash)?);
        }
        Ok(ram)
    }
}
