//! Errors of one VM: each names the problem and, where there is one, the fix.

use std::path::PathBuf;

/// Everything that can stop a VM from being built or run.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// `/dev/kvm` is missing or cannot be opened.
    #[error("cannot open /dev/kvm: {source}. {hint}")]
    KvmUnavailable {
        /// What the OS said.
        source: std::io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// A KVM ioctl failed where it should not.
    #[error("KVM {what} failed: {source}")]
    Kvm {
        /// Which operation.
        what: &'static str,
        /// The errno.
        source: kvm_ioctls::Error,
    },
    /// The guest image cannot be read.
    #[error("cannot read guest image {path}: {source}. Check the path; the bundled guests are built by `cargo build` into guests/build/")]
    ImageIo {
        /// The image path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The guest image is not something vmrr can boot.
    #[error("guest image {path}: {problem}. {fix}")]
    BadImage {
        /// The image path.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// How to make a bootable image.
        fix: &'static str,
    },
    /// A configuration value is out of range.
    #[error("invalid VM configuration: {0}")]
    Config(String),
    /// Guest memory could not be created or accessed.
    #[error("guest memory: {0}")]
    Memory(String),
    /// The guest ran something this host cannot execute deterministically.
    #[error("{0}")]
    Unsupported(String),
    /// A saved state does not fit this VM.
    #[error("cannot restore state: {0}")]
    Restore(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, VmError>;

/// Wraps a KVM ioctl error with the name of the operation.
pub(crate) fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { what, source }
}
