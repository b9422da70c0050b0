//! The trace directory: a self-contained, portable record of a cluster run.
//!
//! ```text
//! trace/
//!   cluster.toml            the configuration, images pointing into images/
//!   images/<vm>.elf         copies of the guest images (blake3 in the index)
//!   index.sqlite            events, frames, checkpoints, bookmarks (vmrr-index)
//!   pages/<xx>/<hash>.zst   memory pages, content-addressed, zstd
//!   checkpoints/vm<N>/<icount>.json.zst   vCPU + device state + changed pages
//! ```
//!
//! Copying the folder is enough to replay it elsewhere.

pub mod checkpoint;
pub mod codec;
pub mod exec_index;
pub mod learnt;
mod open;
pub mod pages;
pub mod record;
mod seek;
pub mod verify;

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

/// blake3 hex of a file's contents.
pub fn file_hash(path: &Path) -> Result<String, TraceError> {
    let bytes = std::fs::read(path).map_err(|e| TraceError::io(path, e))?;
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
