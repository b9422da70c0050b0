//! Where the bundled guest kernels are. The build script compiles them with
//! the machine's gcc into `guests/build/`, so these paths exist after any
//! `cargo build` of a crate that depends on this one.

use std::path::PathBuf;

/// Folder holding the built guest images.
pub const BUILD_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/build");

/// Path of the built image called `name` (e.g. `"hello"` gives `guests/build/hello.elf`).
pub fn image(name: &str) -> PathBuf {
    PathBuf::from(BUILD_DIR).join(format!("{name}.elf"))
}
