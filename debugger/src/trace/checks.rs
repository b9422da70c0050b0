//! Checks made when a trace is opened, before anything in it is trusted:
//! that the folder is a trace at all, and that each guest image copy the
//! index names is inside the folder, present, a regular file, and the one
//! recorded.

use std::path::{Component, Path};

use vmrr_backend::input::{check_regular, read_limited, MAX_IMAGE_BYTES};
use vmrr_index::VmRow;

use super::{TraceError, CLUSTER_FILE, INDEX_FILE};
use crate::describe::printable;

/// Refuses a path that is no folder, or a folder that is not a trace (no
/// index and no cluster file: a folder with one of them is a damaged trace,
/// which later checks name).
pub fn check_is_trace(dir: &Path) -> Result<(), TraceError> {
    if !dir.is_dir() {
        return Err(TraceError::Invalid(format!(
            "{} is not a trace directory (record one with `vmrr record CLUSTER.toml -o DIR`)",
            dir.display()
        )));
    }
    let present = |name: &str| std::fs::symlink_metadata(dir.join(name)).is_ok();
    if !present(INDEX_FILE) && !present(CLUSTER_FILE) {
        return Err(TraceError::NotATrace {
            path: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Checks every VM's image copy against the index: a relative path inside
/// the trace, present, a regular file of bounded size, with the recorded hash.
pub(crate) fn check_images(dir: &Path, rows: &[VmRow]) -> Result<(), TraceError> {
    let index = dir.join(INDEX_FILE);
    for row in rows {
        let rel = Path::new(&row.image);
        let inside = !row.image.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(TraceError::Damaged {
                path: index,
                problem: format!(
                    "VM '{}' has the image path '{}', which is not inside the trace",
                    printable(&row.name),
                    printable(&row.image)
                ),
            });
        }
        let path = dir.join(rel);
        let bytes =
            match check_regular(&path).and_then(|_| read_limited(&path, "a guest image", MAX_IMAGE_BYTES)) {
                Ok(bytes) => bytes,
                Err(e) if e.is_missing() => {
                    return Err(TraceError::ImageMissing {
                        path,
                        vm: printable(&row.name),
                    })
                }
                Err(e) => {
                    return Err(TraceError::Damaged {
                        path,
                        problem: format!("the guest image copy {}", e.problem()),
                    })
                }
            };
        let found = blake3::hash(&bytes).to_hex().to_string();
        if found != row.image_hash {
            return Err(TraceError::ImageMismatch {
                path,
                found,
                recorded: row.image_hash.clone(),
            });
        }
    }
    Ok(())
}

/// Whether this user may write the trace folder and its index (access(2):
/// a read-only mount, the permission bits and the user all count).
pub fn is_writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let may_write = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            // SAFETY: a valid NUL-terminated path; access() only reads it.
            .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
    };
    may_write(dir) && may_write(&dir.join(INDEX_FILE))
}
