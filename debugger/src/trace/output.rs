//! The folder `vmrr record` writes: made fresh (or an empty one reused),
//! removed again if the recording fails before it holds anything worth
//! keeping, and replaced only on request and only if it is a trace.
//!
//! A failed `record` used to leave `index.sqlite` and `images/` behind, so
//! the retry was refused with "already exists"; a dangling symbolic link
//! given as `-o` said only "File exists".

use std::path::{Path, PathBuf};

use super::{TraceError, CLUSTER_FILE, IMAGES_DIR, INDEX_FILE, PAGES_DIR};

/// What a trace folder may hold; `--force` replaces a folder holding only
/// these (and at least the index or the cluster file), nothing else.
const TRACE_ENTRIES: [&str; 8] = [
    CLUSTER_FILE,
    INDEX_FILE,
    "index.sqlite-wal",
    "index.sqlite-shm",
    IMAGES_DIR,
    PAGES_DIR,
    "checkpoints",
    "vmrr.gdb",
];

fn refuse(path: &Path, problem: impl Into<String>) -> TraceError {
    TraceError::Output {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// The output folder of a recording in progress. Unless [`keep`](Self::keep)
/// is called, dropping it removes what it created: the folder itself (and
/// the parents it had to make), or, for a folder that existed empty, what
/// was put inside.
#[derive(Debug)]
pub struct OutputDir {
    path: PathBuf,
    /// The topmost folder this recording created, if it created any.
    created: Option<PathBuf>,
    keep: bool,
}

impl OutputDir {
    /// Makes `path` ready to record into: it must not exist, or be an empty
    /// folder. With `force`, an existing trace folder is emptied first.
    pub fn prepare(path: &Path, force: bool) -> Result<OutputDir, TraceError> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if meta.file_type().is_symlink() && std::fs::metadata(path).is_err() {
                let target = std::fs::read_link(path).unwrap_or_default();
                return Err(refuse(
                    path,
                    format!(
                        "it is a symbolic link to {}, which does not exist: create that folder, or choose another -o",
                        target.display()
                    ),
                ));
            }
        }
        let created = match std::fs::metadata(path) {
            Ok(meta) if !meta.is_dir() => {
                return Err(refuse(path, "it exists and is not a folder: choose another -o"))
            }
            Ok(_) => {
                if force {
                    clear_trace(path)?;
                } else if !is_empty(path)? {
                    let hint = if looks_like_trace(path) {
                        " (it holds a trace: add --force to replace it)"
                    } else {
                        ""
                    };
                    return Err(refuse(
                        path,
                        format!("it already exists and is not empty: choose another -o or remove it{hint}"),
                    ));
                }
                None
            }
            Err(_) => {
                let top = topmost_missing(path);
                std::fs::create_dir_all(path).map_err(|e| TraceError::io(path, e))?;
                Some(top)
            }
        };
        let out = OutputDir {
            path: path.to_path_buf(),
            created,
            keep: false,
        };
        for dir in [IMAGES_DIR, PAGES_DIR] {
            let dir = out.path.join(dir);
            std::fs::create_dir(&dir).map_err(|e| TraceError::io(&dir, e))?;
        }
        Ok(out)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recording holds something worth keeping (its first checkpoints):
    /// from now on a failure leaves the trace in place, replayable up to its
    /// last checkpoint.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        match &self.created {
            Some(top) => {
                let _ = std::fs::remove_dir_all(top);
            }
            None => {
                // The folder was there, empty: everything inside is ours.
                if let Ok(entries) = std::fs::read_dir(&self.path) {
                    for e in entries.flatten() {
                        let p = e.path();
                        let _ = if e.file_type().is_ok_and(|t| t.is_dir()) {
                            std::fs::remove_dir_all(&p)
                        } else {
                            std::fs::remove_file(&p)
                        };
                    }
                }
            }
        }
    }
}

fn is_empty(path: &Path) -> Result<bool, TraceError> {
    let mut entries = std::fs::read_dir(path).map_err(|e| TraceError::io(path, e))?;
    Ok(entries.next().is_none())
}

/// Whether `path` holds the index or the cluster file of a trace.
fn looks_like_trace(path: &Path) -> bool {
    path.join(INDEX_FILE).is_file() || path.join(CLUSTER_FILE).is_file()
}

/// Removes a trace's files from `path` (`--force`), refusing a folder that
/// holds anything a trace does not: `--force` must never empty a home folder.
fn clear_trace(path: &Path) -> Result<(), TraceError> {
    if is_empty(path)? {
        return Ok(());
    }
    let entries: Vec<std::fs::DirEntry> = std::fs::read_dir(path)
        .map_err(|e| TraceError::io(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| TraceError::io(path, e))?;
    let foreign: Vec<String> = entries
        .iter()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !TRACE_ENTRIES.contains(&n.as_str()))
        .collect();
    if !looks_like_trace(path) || !foreign.is_empty() {
        let what = if foreign.is_empty() {
            "it holds no index.sqlite or cluster.toml".to_string()
        } else {
            format!(
                "it holds {} besides trace files",
                foreign
                    .iter()
                    .take(3)
                    .map(|n| crate::describe::printable(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(refuse(
            path,
            format!("--force replaces only a trace folder, and this is not one ({what}): remove it yourself or choose another -o"),
        ));
    }
    for e in entries {
        let p = e.path();
        let is_dir = e.file_type().map_err(|err| TraceError::io(&p, err))?.is_dir();
        let result = if is_dir {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        result.map_err(|err| TraceError::io(&p, err))?;
    }
    Ok(())
}

/// The topmost of `path` and its ancestors that does not exist yet: what
/// `create_dir_all(path)` creates, and a failed recording removes.
fn topmost_missing(path: &Path) -> PathBuf {
    let mut top = path.to_path_buf();
    let mut cur = path;
    while let Some(parent) = cur.parent() {
        if parent.as_os_str().is_empty() || std::fs::symlink_metadata(parent).is_ok() {
            break;
        }
        top = parent.to_path_buf();
        cur = parent;
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vmrr-output-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch");
        dir
    }

    #[test]
    fn a_failed_recording_removes_the_folders_it_made() {
        let dir = scratch("made");
        let out = dir.join("a/b/trace");
        let guard = OutputDir::prepare(&out, false).expect("prepare");
        std::fs::write(out.join(INDEX_FILE), b"x").expect("write");
        drop(guard);
        assert!(!dir.join("a").exists(), "the parents it made go too");
        assert!(is_empty(&dir).expect("read"), "the folder above is as it was");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_empty_folder_is_reused_and_emptied_again() {
        let dir = scratch("empty");
        let guard = OutputDir::prepare(&dir, false).expect("prepare");
        std::fs::write(dir.join(INDEX_FILE), b"x").expect("write");
        drop(guard);
        assert!(dir.is_dir() && is_empty(&dir).expect("read"), "kept, empty");
        let mut guard = OutputDir::prepare(&dir, false).expect("prepare");
        guard.keep();
        drop(guard);
        assert!(dir.join(IMAGES_DIR).is_dir(), "kept");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn force_replaces_a_trace_and_nothing_else() {
        let dir = scratch("force");
        std::fs::create_dir(dir.join(IMAGES_DIR)).expect("mkdir");
        std::fs::write(dir.join(INDEX_FILE), b"x").expect("write");
        let e = OutputDir::prepare(&dir, false)
            .expect_err("not empty")
            .to_string();
        assert!(e.contains("add --force"), "{e}");
        let mut guard = OutputDir::prepare(&dir, true).expect("force");
        guard.keep();
        assert!(!dir.join(INDEX_FILE).exists());
        std::fs::write(dir.join("thesis.tex"), b"precious").expect("write");
        let e = OutputDir::prepare(&dir, true)
            .expect_err("foreign file")
            .to_string();
        assert!(e.contains("thesis.tex") && e.contains("not one"), "{e}");
        assert!(dir.join("thesis.tex").exists(), "nothing removed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_dangling_link_or_a_file_is_named() {
        let dir = scratch("link");
        let link = dir.join("out");
        std::os::unix::fs::symlink(dir.join("missing"), &link).expect("symlink");
        let e = OutputDir::prepare(&link, false)
            .expect_err("dangling")
            .to_string();
        assert!(
            e.contains("symbolic link to") && e.contains("does not exist"),
            "{e}"
        );
        let file = dir.join("file");
        std::fs::write(&file, b"x").expect("write");
        let e = OutputDir::prepare(&file, false).expect_err("a file").to_string();
        assert!(e.contains("not a folder"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
