//! The fork's trace folder: refusing a bad `-o`, and writing what a trace
//! holds besides its run (images, cluster file, the index's VMs and meta).
//! Nothing is written outside the new folder; a fork that fails before its
//! first checkpoint removes the folder it made.

use std::path::{Path, PathBuf};

use vmrr_index::{Index, VmRow};

use super::ForkError;
use crate::cluster::ClusterConfig;
use crate::trace::record::image_path;
use crate::trace::{Trace, TraceError, CLUSTER_FILE, IMAGES_DIR, INDEX_FILE, PAGES_DIR};

/// How `images/` came to hold the parent's image files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shared {
    /// Files hard-linked from the parent (no new bytes).
    pub linked: usize,
    /// Files copied (another file system).
    pub copied: usize,
}

/// `path` made absolute with `..` and `.` resolved through the part that
/// exists (symbolic links included), the rest appended as written.
fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut existing = absolute.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        if name == ".." {
            out.pop();
        } else if name != "." {
            out.push(name);
        }
    }
    out
}

/// Refuses an output folder that exists and is not empty, is not a folder,
/// is a symbolic link, or lies inside the parent trace.
pub(super) fn check(out: &Path, parent: &Path) -> Result<(), ForkError> {
    let refuse = |problem: &str| ForkError::Output {
        path: out.to_path_buf(),
        problem: problem.to_string(),
    };
    if out.as_os_str().is_empty() {
        return Err(refuse("is empty: name a folder for the new trace"));
    }
    if let Ok(meta) = std::fs::symlink_metadata(out) {
        if meta.file_type().is_symlink() {
            return Err(refuse("is a symbolic link: name a plain new folder"));
        }
        if !meta.is_dir() {
            return Err(refuse("exists and is not a folder: choose another -o"));
        }
        let empty = std::fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(refuse(
                "already exists and is not empty: choose another -o or remove it",
            ));
        }
    }
    let parent = resolve(parent);
    let target = resolve(out);
    if target.starts_with(&parent) {
        return Err(refuse(&format!(
            "lies inside the trace being forked ({}): a fork is a trace of its own, beside its parent",
            parent.display()
        )));
    }
    if parent.starts_with(&target) {
        return Err(refuse("contains the trace being forked: choose a new folder"));
    }
    Ok(())
}

/// The new folder while it is being made: removed again on failure unless
/// [`NewFolder::keep`] was called (once the trace replays on its own).
pub(super) struct NewFolder {
    path: PathBuf,
    made: bool,
    keep: bool,
}

impl NewFolder {
    /// Creates `out` (checked by [`check`]) and its `images/` and `pages/`.
    pub(super) fn create(out: &Path) -> Result<NewFolder, ForkError> {
        let made = !out.exists();
        let folder = NewFolder {
            path: out.to_path_buf(),
            made,
            keep: false,
        };
        for dir in [out.to_path_buf(), out.join(IMAGES_DIR), out.join(PAGES_DIR)] {
            std::fs::create_dir_all(&dir).map_err(|e| TraceError::io(&dir, e))?;
        }
        Ok(folder)
    }

    /// Keeps the folder whatever happens next.
    pub(super) fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for NewFolder {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // Only what this fork wrote: the folder was new or empty.
        if self.made {
            let _ = std::fs::remove_dir_all(&self.path);
        } else if let Ok(entries) = std::fs::read_dir(&self.path) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
    }
}

/// Hard-links (or copies) `from` to `to`.
fn link_or_copy(from: &Path, to: &Path, shared: &mut Shared) -> Result<(), TraceError> {
    if std::fs::hard_link(from, to).is_ok() {
        shared.linked += 1;
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| TraceError::io(from, e))?;
    shared.copied += 1;
    Ok(())
}

/// Writes the fork's images (shared with the parent's), its cluster file
/// (`config`, the configuration from the cut on) and its index with the
/// VMs and `meta`; returns the open index.
pub(super) fn write_trace_files(
    out: &Path,
    parent: &Trace,
    config: &ClusterConfig,
    meta: &[(String, String)],
) -> Result<(Index, Shared), ForkError> {
    let mut shared = Shared::default();
    let mut index = Index::create(out.join(INDEX_FILE)).map_err(TraceError::from)?;
    let rows = parent.index().vms().map_err(TraceError::from)?;
    for row in rows {
        let name = config
            .vms
            .get(row.id as usize)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| row.name.clone());
        let rel = image_path(&name);
        link_or_copy(&parent.dir().join(&row.image), &out.join(&rel), &mut shared)?;
        index
            .set_vm(&VmRow {
                image: rel,
                final_icount: None,
                final_vtime_ns: None,
                stop: None,
                ..row
            })
            .map_err(TraceError::from)?;
    }
    let toml = config.to_toml(|i| image_path(&config.vms[i].name));
    let cluster_file = out.join(CLUSTER_FILE);
    std::fs::write(&cluster_file, toml).map_err(|e| TraceError::io(&cluster_file, e))?;
    for (key, value) in meta {
        index.set_meta(key, value).map_err(TraceError::from)?;
    }
    Ok((index, shared))
}
