//! The demo trace most end-to-end tests work on: clusters/kvstore-bug.toml
//! recorded once per test binary, and symbol addresses of its guest image.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The kvstore-bug trace, recorded once per test binary (into
/// `<tmp>/vmrr-<binary>-<pid>/kv-trace`).
pub fn kvstore_bug_trace() -> &'static Path {
    static TRACE: OnceLock<PathBuf> = OnceLock::new();
    TRACE.get_or_init(|| record_demo("kvstore-bug.toml", "kv-trace"))
}

/// The tcpkv-bug trace (lwIP's TCP in four VMs, ~1 M steps in all),
/// recorded once per test binary (into `<tmp>/vmrr-<binary>-<pid>/tcpkv-trace`).
pub fn tcpkv_bug_trace() -> &'static Path {
    static TRACE: OnceLock<PathBuf> = OnceLock::new();
    TRACE.get_or_init(|| record_demo("tcpkv-bug.toml", "tcpkv-trace"))
}

/// Records `clusters/<cluster>` into `<tmp>/vmrr-<binary>-<pid>/<name>`.
pub fn record_demo(cluster: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vmrr-{}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let out = dir.join(name);
    let _ = std::fs::remove_dir_all(&out);
    let cluster = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clusters")
        .join(cluster);
    let o = Command::new(env!("CARGO_BIN_EXE_vmrr"))
        .arg("record")
        .arg(&cluster)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run vmrr record");
    assert_eq!(
        o.status.code(),
        Some(0),
        "vmrr record failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Address of `name` in guests/build/kvstore.elf, through vmrr's own ELF reader.
pub fn kvstore_symbol(name: &str) -> u64 {
    let table = vmrr_debugger::symbols::SymbolTable::load(&vmrr_guests::image("kvstore"))
        .unwrap_or_else(|e| panic!("kvstore symbols: {e}"));
    table
        .by_name(name)
        .map(|s| s.addr)
        .unwrap_or_else(|| panic!("no symbol {name}"))
}
