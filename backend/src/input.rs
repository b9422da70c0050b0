//! Reading files that come from outside vmrr (guest images, cluster files,
//! the files of a trace): only regular files, and only up to a size limit.
//!
//! Without these checks a FIFO given as an image blocks vmrr forever (opening
//! it waits for a writer) and `/dev/zero` is read until memory runs out; a
//! directory would be reported as "no such file". Every refusal here names
//! the path and what it really is.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest guest image vmrr reads: well above any kernel that fits in the
/// largest guest memory (3 GiB) once its debug sections are counted out.
pub const MAX_IMAGE_BYTES: u64 = 1 << 30;

/// Why a file handed to vmrr cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Nothing is at the path.
    #[error("{}: no such file", path.display())]
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// The path is a symbolic link whose target does not exist.
    #[error("{} is a symbolic link to {}, which does not exist", path.display(), target.display())]
    DanglingLink {
        /// The link.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// The path is something other than a regular file.
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The path given.
        path: PathBuf,
        /// What it is: "a directory", "a named pipe (FIFO)", ...
        kind: &'static str,
    },
    /// The file is larger than vmrr reads for this purpose.
    #[error("{} is larger than {limit} bytes, the limit for {what}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What the file was read as ("a guest image", ...).
        what: &'static str,
        /// The limit in bytes.
        limit: u64,
    },
    /// The operating system refused to open or read it.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

impl InputError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            InputError::Missing { path }
            | InputError::DanglingLink { path, .. }
            | InputError::NotRegular { path, .. }
            | InputError::TooLarge { path, .. }
            | InputError::Io { path, .. } => path,
        }
    }

    /// What is wrong, without the path: "is a directory, not a regular
    /// file", "does not exist", ...
    pub fn problem(&self) -> String {
        match self {
            InputError::Missing { .. } => "does not exist".into(),
            InputError::DanglingLink { target, .. } => {
                format!("is a symbolic link to {}, which does not exist", target.display())
            }
            InputError::NotRegular { kind, .. } => format!("is {kind}, not a regular file"),
            InputError::TooLarge { what, limit, .. } => {
                format!("is larger than {limit} bytes, the limit for {what}")
            }
            InputError::Io { source, .. } => format!("cannot be read ({source})"),
        }
    }

    /// Whether nothing (or a dangling link) is at the path.
    pub fn is_missing(&self) -> bool {
        matches!(self, InputError::Missing { .. } | InputError::DanglingLink { .. })
    }
}

/// What a non-regular file is, in words.
fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Checks that `path` names a regular file (following symbolic links) and
/// returns its metadata. Nothing is opened, so a FIFO cannot block.
pub fn check_regular(path: &Path) -> Result<Metadata, InputError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(match std::fs::read_link(path) {
                Ok(target) => InputError::DanglingLink {
                    path: path.to_path_buf(),
                    target,
                },
                Err(_) => InputError::Missing {
                    path: path.to_path_buf(),
                },
            })
        }
        Err(source) => {
            return Err(InputError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.is_file() {
        return Err(InputError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&meta),
        });
    }
    Ok(meta)
}

/// Opens `path` for reading if it is a regular file. The file is opened
/// non-blocking (a FIFO swapped in after the check cannot block the open)
/// and checked again through the open handle.
pub fn open_regular(path: &Path) -> Result<File, InputError> {
    check_regular(path)?;
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(InputError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&meta),
        });
    }
    Ok(file)
}

/// Reads the whole regular file `path`, refusing it if it holds more than
/// `limit` bytes. `what` names the purpose in the error ("a guest image").
/// The limit holds even for files whose size the OS reports wrongly (those
/// of `/proc`), because at most `limit + 1` bytes are ever read.
pub fn read_limited(path: &Path, what: &'static str, limit: u64) -> Result<Vec<u8>, InputError> {
    let file = open_regular(path)?;
    let too_large = || InputError::TooLarge {
        path: path.to_path_buf(),
        what,
        limit,
    };
    let len = file
        .metadata()
        .map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    if len > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vmrr-input-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = scratch("limit");
        let path = dir.join("f");
        std::fs::write(&path, b"hello").expect("write");
        assert_eq!(read_limited(&path, "a test", 5).expect("read"), b"hello");
        let e = read_limited(&path, "a test", 4).expect_err("too large");
        assert!(
            e.to_string()
                .contains("larger than 4 bytes, the limit for a test"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn special_files_are_named_for_what_they_are() {
        let dir = scratch("special");
        let e = read_limited(&dir, "a test", 10).expect_err("a directory");
        assert!(
            e.to_string().ends_with("is a directory, not a regular file"),
            "{e}"
        );
        let e = read_limited(Path::new("/dev/zero"), "a test", 10).expect_err("a device");
        assert!(e.to_string().contains("is a character device"), "{e}");
        let link = dir.join("link");
        std::os::unix::fs::symlink(dir.join("nowhere"), &link).expect("symlink");
        let e = read_limited(&link, "a test", 10).expect_err("dangling");
        assert!(
            e.is_missing() && e.to_string().contains("which does not exist"),
            "{e}"
        );
        let e = read_limited(&dir.join("absent"), "a test", 10).expect_err("missing");
        assert!(matches!(e, InputError::Missing { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = scratch("fifo");
        let fifo = dir.join("pipe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let e = read_limited(&fifo, "a test", 10).expect_err("a FIFO");
        assert!(e.to_string().contains("is a named pipe (FIFO)"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn proc_files_that_report_size_zero_are_still_limited() {
        // /proc/self/maps says 0 bytes but holds more than 16.
        let e = read_limited(Path::new("/proc/self/maps"), "a test", 16).expect_err("limit");
        assert!(matches!(e, InputError::TooLarge { .. }), "{e}");
    }
}
