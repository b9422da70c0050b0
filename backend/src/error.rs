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
        #[source]
        source: std::io::Error,
    },
    /// The guest image is not a regular file vmrr may read: a directory, a
    /// FIFO, a device, a dangling link, or larger than
    /// [`crate::input::MAX_IMAGE_BYTES`].
    #[error("cannot use guest image: {source}. Give the path of an ELF64 kernel file")]
    ImageInput {
        /// What the file is instead.
        #[source]
        source: crate::input::InputError,
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
    /// Reading or writing guest memory failed.
    #[error("guest memory: {what}: {source}")]
    GuestMemory {
        /// What was being read or written.
        what: String,
        /// What vm-memory said.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
    /// Guest RAM could not be allocated.
    #[error("guest memory: cannot allocate {bytes} bytes: {source}")]
    Allocate {
        /// The size asked for.
        bytes: u64,
        /// What vm-memory said.
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
    /// linux-loader refused to load the image.
    #[error("guest image {path}: linux-loader rejected it: {source}. {fix}")]
    Loader {
        /// The image path.
        path: PathBuf,
        /// What linux-loader said.
        #[source]
        source: linux_loader::loader::Error,
        /// How to make a bootable image.
        fix: &'static str,
    },
    /// The PVH start info could not be written into guest memory.
    #[error("guest memory: writing hvm_start_info: {source}")]
    BootParams {
        /// What linux-loader said.
        #[source]
        source: linux_loader::configurator::Error,
    },
    /// A list handed to KVM (CPUID entries, MSRs) is longer than KVM takes.
    #[error("{context}: {source:?}")]
    KvmList {
        /// The kind of error and the list, e.g. "cannot restore state: MSR list".
        context: &'static str,
        /// What the list wrapper said.
        #[source]
        source: vmm_sys_util::fam::Error,
    },
    /// The engine's state could not be serialised for the state hash.
    #[error("guest memory: hashing state: {source}")]
    HashState {
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// The guest ran something this host cannot execute deterministically.
    #[error("{0}")]
    Unsupported(String),
    /// A saved state does not fit this VM.
    #[error("cannot restore state: {0}")]
    Restore(String),
}

impl From<crate::input::InputError> for VmError {
    /// A missing image keeps the plain "cannot read" message (with its
    /// advice about building the guests); anything else says what it is.
    fn from(e: crate::input::InputError) -> VmError {
        match e {
            crate::input::InputError::Missing { path } => VmError::ImageIo {
                path,
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            },
            crate::input::InputError::Io { path, source } => VmError::ImageIo { path, source },
            other => VmError::ImageInput { source: other },
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, VmError>;

/// Wraps a KVM ioctl error with the name of the operation.
pub(crate) fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { what, source }
}

/// Wraps a guest-memory error with what was being read or written.
pub(crate) fn guest_memory(what: impl Into<String>) -> impl FnOnce(vm_memory::GuestMemoryError) -> VmError {
    let what = what.into();
    move |source| VmError::GuestMemory { what, source }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn wrapped_errors_stay_reachable_and_messages_keep_their_text() {
        let e = guest_memory("reading page 7")(vm_memory::GuestMemoryError::InvalidGuestAddress(
            vm_memory::GuestAddress(0x7000),
        ));
        assert!(e.to_string().starts_with("guest memory: reading page 7: "), "{e}");
        let source = e.source().expect("the vm-memory error is kept");
        assert!(source.downcast_ref::<vm_memory::GuestMemoryError>().is_some());

        let e = VmError::KvmList {
            context: "cannot restore state: MSR list",
            source: vmm_sys_util::fam::Error::SizeLimitExceeded,
        };
        assert_eq!(e.to_string(), "cannot restore state: MSR list: SizeLimitExceeded");
        assert!(e.source().is_some());
    }
}
