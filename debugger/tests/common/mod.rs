//! What the debugger's tests share: the kvstore-bug demo recorded once per
//! test binary, through the library (no `vmrr` binary needed), and symbol
//! addresses of its guest image. Needs /dev/kvm.
#![allow(dead_code)]

pub mod brute;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use vmrr_debugger::cluster::ClusterConfig;
use vmrr_debugger::trace::record::{record, RecordOptions};

/// The workspace's `clusters/NAME.toml`.
pub fn cluster_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../clusters")
        .join(format!("{name}.toml"))
}

/// Records `clusters/NAME.toml` into a fresh folder under the temp dir.
pub fn record_cluster(name: &str, tag: &str) -> PathBuf {
    // The images the cluster file names are built by the guests crate.
    assert!(vmrr_guests::image("kvstore").is_file(), "guest images not built");
    let dir = std::env::temp_dir().join(format!(
        "vmrr-dbg-{}-{}-{tag}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ClusterConfig::load(&cluster_file(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    record(
        &config,
        &dir,
        &RecordOptions::default(),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("recording {name}: {e}"));
    dir
}

/// The kvstore-bug trace, recorded once per test binary.
pub fn kvstore_bug_trace() -> &'static Path {
    static TRACE: OnceLock<PathBuf> = OnceLock::new();
    TRACE.get_or_init(|| record_cluster("kvstore-bug", "kv"))
}

/// Address of `name` in guests/build/kvstore.elf.
pub fn kvstore_symbol(name: &str) -> u64 {
    let table = vmrr_debugger::symbols::SymbolTable::load(&vmrr_guests::image("kvstore"))
        .unwrap_or_else(|e| panic!("kvstore symbols: {e}"));
    table
        .by_name(name)
        .map(|s| s.addr)
        .unwrap_or_else(|| panic!("no symbol {name}"))
}
