//! The trace directory: a self-contained, portable record of a cluster run.
//!
//! ```text
//! trace/
//!   cluster.toml            the configuration, images pointing into images/
//!   images/<vm>.elf         copies of the guest images (blake3 in the index)
//!   index.sqlite            events, frames and their bytes, checkpoints, bookmarks (vmrr-index)
//!   pages/<xx>/<hash>.zst   memory pages, content-addressed, zstd
//!   checkpoints/vm<N>/<icount>.json.zst   vCPU + device state + changed pages
//! ```
//!
//! Copying the folder is enough to replay it elsewhere.

pub mod checkpoint;
mod checks;
pub mod codec;
pub mod exec_index;
pub mod learnt;
mod open;
pub mod output;
pub mod pages;
pub mod pcap;
pub mod record;
mod seek;
pub mod verify;

pub use checks::{check_is_trace, is_writable};
pub use open::{Input, Trace};
pub use record::image_path;
pub use verify::{Divergence, SliceResult};

use std::path::{Path, PathBuf};

use vmrr_backend::VmError;

use crate::cluster::{ClusterError, ConfigError};

/// File names inside a trace.
pub const CLUSTER_FILE: &str = "cluster.toml";
/// The index database.
pub const INDEX_FILE: &str = "index.sqlite";
/// Folder of image copies.
pub const IMAGES_DIR: &str = "images";
/// Folder of the page store.
pub const PAGES_DIR: &str = "pages";
/// Meta key naming how checkpoints' state hashes were computed.
pub const STATE_HASH_META: &str = "state_hash";
/// [`STATE_HASH_META`] value for `Machine::paged_state_hash`; a trace
/// without the key used `Machine::state_hash` (RAM hashed whole).
pub const STATE_HASH_PAGED: &str = "pages";

/// Everything that can go wrong with a trace; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file of the trace is missing or damaged.
    #[error("{path}: {problem}. The trace is damaged; it can be replayed up to the last checkpoint before this point, or recorded again")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The trace's index could not be used.
    #[error("{0}")]
    Index(#[from] vmrr_index::IndexError),
    /// The trace's cluster file is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A guest image does not match the hash recorded for it.
    #[error("{path}: image does not match the one recorded (blake3 {found}, recorded {recorded}); the trace needs the exact image it was recorded with")]
    ImageMismatch {
        /// The image copy.
        path: PathBuf,
        /// Its hash now.
        found: String,
        /// The recorded hash.
        recorded: String,
    },
    /// The folder given as a trace holds neither an index nor a cluster file.
    #[error("{}: not a vmrr trace (it has no index.sqlite and no cluster.toml): give the folder `vmrr record -o` wrote", path.display())]
    NotATrace {
        /// The folder.
        path: PathBuf,
    },
    /// A guest image copy was removed from the trace.
    #[error("{}: the guest image of VM '{vm}' was deleted from the trace; replay needs it: put the exact image back there, or record again", path.display())]
    ImageMissing {
        /// Where the copy should be.
        path: PathBuf,
        /// The VM it belongs to (made printable).
        vm: String,
    },
    /// The folder `record -o` names cannot hold a new trace.
    #[error("cannot record into {}: {problem}", path.display())]
    Output {
        /// The folder.
        path: PathBuf,
        /// Why not, and what to do.
        problem: String,
    },
    /// Copying a guest image into the trace failed (reading was checked
    /// before: this is the write, so the destination is named).
    #[error("cannot copy guest image {} into the trace as {}: {source}", from.display(), to.display())]
    CopyImage {
        /// The image given.
        from: PathBuf,
        /// The copy in the trace.
        to: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A VM name that cannot be a file name in the trace.
    #[error("VM name '{name}' {source}")]
    Name {
        /// The name, made printable.
        name: String,
        /// What is wrong with it.
        #[source]
        source: crate::names::NameError,
    },
    /// A VM could not be built or run (a fault of the run, not of the trace).
    #[error("VM '{vm}': {source}")]
    Vm {
        /// Its name.
        vm: String,
        /// What the engine said.
        #[source]
        source: VmError,
    },
    /// The cluster being recorded failed. (The "VM 'cluster'" prefix is
    /// what recording has always printed before the cluster's own message.)
    #[error("VM 'cluster': {0}")]
    Cluster(#[from] ClusterError),
    /// The request does not fit the trace (unknown VM, position past the end...).
    #[error("{0}")]
    Invalid(String),
}

impl TraceError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> TraceError {
        TraceError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The error for a damaged file of a trace.
pub(crate) fn damaged(path: &Path, problem: impl Into<String>) -> TraceError {
    TraceError::Damaged {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// blake3 hex of a file's contents (a regular file of at most
/// [`MAX_IMAGE_BYTES`](vmrr_backend::input::MAX_IMAGE_BYTES)).
pub fn file_hash(path: &Path) -> Result<String, TraceError> {
    use vmrr_backend::input::{read_limited, InputError, MAX_IMAGE_BYTES};
    let bytes = read_limited(path, "a hashed file", MAX_IMAGE_BYTES).map_err(|e| match e {
        InputError::Io { path, source } => TraceError::Io { path, source },
        other => TraceError::Invalid(other.to_string()),
    })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_cluster_failure_keeps_the_engine_error() {
        let e = TraceError::from(ClusterError::Vm {
            vm: "primary".into(),
            source: VmError::Unsupported("cannot step this".into()),
        });
        assert_eq!(e.to_string(), "VM 'cluster': VM 'primary': cannot step this");
        let cluster = e.source().expect("the cluster error");
        let engine = cluster.source().and_then(|s| s.downcast_ref::<VmError>());
        assert!(matches!(engine, Some(VmError::Unsupported(_))), "{engine:?}");
    }
}
