//! Builds the guest kernels by running `make` in this directory, so that
//! `build/<name>.elf` exists (and is current) whenever the crate is built.
//!
//! The images are written next to the sources (not to OUT_DIR) so scripts,
//! gdb and QEMU can use the same fixed paths; `make` itself decides what is
//! out of date.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    let dir = env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR not set");
    let dir = Path::new(&dir);

    // Re-run when anything make looks at changes: the Makefile, the kit and
    // every program directory (cargo scans a directory recursively, which
    // also catches new files).  Not build/ (make's output) nor src/ (Rust).
    for p in ["build.rs", "Makefile"] {
        println!("cargo:rerun-if-changed={}", dir.join(p).display());
    }
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("read {dir:?}: {e}")));
    for entry in entries.flatten() {
        let name = entry.file_name();
        let skip = matches!(name.to_str(), Some("build" | "src" | "target"))
            || name.to_string_lossy().starts_with('.');
        if !skip && entry.path().is_dir() {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
    println!("cargo:rerun-if-env-changed=GUEST_CC");

    let jobs = env::var("NUM_JOBS").unwrap_or_else(|_| "1".into());
    let mut cmd = Command::new("make");
    cmd.arg("--no-print-directory")
        .arg("-C")
        .arg(dir)
        .arg(format!("-j{jobs}"));
    // Do not inherit a parent make's flags/jobserver (cargo run from make).
    cmd.env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL");

    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => fail(&format!(
            "cannot run `make` ({e}); install gcc and make (scripts/install-deps.sh)"
        )),
    };
    if !out.status.success() {
        fail(&format!(
            "`make -C {}` failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        ));
    }
    // Surface compiler warnings without failing the build.
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        if line.contains("warning") {
            println!("cargo:warning={line}");
        }
    }
}

/// Fails the build with `msg` (no panic backtrace: the message is the point).
fn fail(msg: &str) -> ! {
    eprintln!("vmrr-guests: {msg}");
    std::process::exit(1);
}
