//! `vmrr calls`, `vmrr origin` and `vmrr coverage` on the recorded demo:
//! what a user types in the walkthrough prints the stale write and its
//! chain into primary, answers come back from the trace's cache, a
//! read-only trace is analysed without being written, and bad input gets
//! one clear error line. Needs /dev/kvm.

mod common;
mod demo;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{copy_dir, vmrr};

/// A fresh copy of the demo trace (each test its own cache).
fn copy_of(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmrr-analysis-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(demo::kvstore_bug_trace(), &dir);
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

#[test]
fn calls_list_every_application_and_the_stale_one() {
    let t = copy_of("calls");
    let o = vmrr(["calls", s(&t), "kv_apply"]);
    o.expect_code(0).expect_stdout(&[
        "void kv_apply(uint32_t seq, uint8_t key, uint32_t val): 20 calls",
        "seq = 5, key = 3, val = 31",
        "seq = 9, key = 3, val = 32",
    ]);
    // The window around the heal, one VM: #9 then the late #5..#8.
    let w = vmrr([
        "calls",
        s(&t),
        "kv_apply",
        "--vm",
        "backup2",
        "--from",
        "122ms",
        "--to",
        "123ms",
    ]);
    w.expect_code(0).expect_stdout(&["5 calls (replayed 0 of"]);
    let rows: Vec<&str> = w.stdout.lines().filter(|l| l.starts_with("backup2")).collect();
    assert_eq!(rows.len(), 5, "{}", w.describe());
    assert!(
        rows[0].contains("seq = 9") && rows[1].contains("seq = 5"),
        "{}",
        w.describe()
    );
    // With the tree: what each call called.
    let tree = vmrr([
        "calls",
        s(&t),
        "kv_apply",
        "--vm",
        "backup2",
        "--from",
        "122.2ms",
        "--to",
        "122.22ms",
        "--tree",
    ]);
    tree.expect_code(0)
        .expect_stdout(&["marker backup2:", "vprintf backup2:"]);
    // The rows are in the trace for SQL.
    let q = vmrr([
        "sql",
        s(&t),
        "SELECT count(*) FROM analysis_calls WHERE function = 'kv_apply'",
    ]);
    q.expect_code(0).expect_stdout(&["20"]);
}

#[test]
fn origin_of_the_stale_value_reaches_primary() {
    let t = copy_of("origin");
    let o = vmrr(["origin", s(&t), "backup2:store[3]", "--at", "end"]);
    o.expect_code(0).expect_stdout(&[
        "origin of store[3]: 0x10622c (store+0xc) in backup2",
        "= 0x1f",
        "kv_apply+0x1a (kvstore.c:369)",
        "virtio-net wrote frame #",
        "from primary into a receive buffer",
        "virtio-net read frame #",
        "primary:",
        "tx_buf",
        "never written since the trace began",
    ]);
    // Cached: the same answer, read back.
    let again = vmrr(["origin", s(&t), "backup2:store[3]", "--at", "end"]);
    again.expect_code(0);
    assert_eq!(again.stdout, o.stdout);
    let links = vmrr([
        "sql",
        s(&t),
        "SELECT count(*) FROM analysis_origin_links WHERE kind = 'sent'",
    ]);
    links.expect_code(0).expect_stdout(&["1"]);
    // A register, and raw bytes.
    vmrr(["origin", s(&t), "backup2:rax", "--at", "backup2:38711"]).expect_code(0);
    vmrr(["origin", s(&t), "backup2:0x10622c:4", "--at", "end"])
        .expect_code(0)
        .expect_stdout(&["kv_apply+0x1a"]);
}

#[test]
fn coverage_names_functions_and_lines() {
    let t = copy_of("coverage");
    let o = vmrr([
        "coverage",
        s(&t),
        "--vm",
        "backup2",
        "--from",
        "120ms",
        "--to",
        "125ms",
        "--lines",
    ]);
    o.expect_code(0)
        .expect_stdout(&["kv_apply", "kvstore.c:369", "ask_resend"]);
}

#[test]
fn a_read_only_trace_is_analysed_but_not_written() {
    if common::euid() == 0 {
        // Root writes through any permission: make the file immutable instead
        // is not portable; check the library's read-only path instead.
        let t = copy_of("ro-root");
        let mut session = vmrr_debugger::session::Session::open_read_only(&t).expect("open");
        let calls = session
            .calls(
                &vmrr_debugger::analysis::CallQuery {
                    function: "kv_apply".into(),
                    vms: vec![],
                    from: None,
                    to: None,
                },
                &|_| {},
            )
            .expect("calls");
        assert_eq!(calls.calls.len(), 20);
        let conn = rusqlite::Connection::open(t.join("index.sqlite")).expect("sqlite");
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'analysis_%'",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(n, 0, "a read-only trace must not be written");
        return;
    }
    let t = copy_of("ro");
    let mut perms = std::fs::metadata(&t).expect("meta").permissions();
    perms.set_mode(0o555);
    std::fs::set_permissions(&t, perms.clone()).expect("chmod");
    let index = t.join("index.sqlite");
    let mut ip = std::fs::metadata(&index).expect("meta").permissions();
    ip.set_mode(0o444);
    std::fs::set_permissions(&index, ip).expect("chmod");
    let o = vmrr(["calls", s(&t), "kv_apply"]);
    o.expect_code(0)
        .expect_stdout(&["20 calls"])
        .expect_stderr(&["results are not cached"]);
    perms.set_mode(0o755);
    let _ = std::fs::set_permissions(&t, perms);
}

#[test]
fn bad_requests_get_one_clear_line() {
    let t = demo::kvstore_bug_trace();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["calls", s(t), "kv_aply"],
            "no function 'kv_aply' in the image of primary, backup1, backup2 (did you mean kv_apply?)",
        ),
        (
            vec!["calls", s(t), "kv_apply", "--vm", "backup9"],
            "no VM 'backup9'",
        ),
        (
            vec!["calls", s(t), "kv_apply", "--from", "#999999"],
            "no event #999999",
        ),
        (
            vec!["origin", s(t), "backup2:0xdead00000000:4", "--at", "end"],
            "address 0xdead00000000 is not mapped in VM 'backup2'",
        ),
        (
            vec!["origin", s(t), "backup2:store[3]", "--at", "backup2:99999999"],
            "icount 99999999 is past the end of VM 'backup2'",
        ),
        (
            vec!["origin", s(t), "store[3]"],
            "write VM:ADDR[:LEN], VM:VARIABLE or VM:REGISTER",
        ),
        (
            vec!["origin", s(t), "backup2:nosuchvar", "--at", "end"],
            "no variable 'nosuchvar'",
        ),
        (
            vec!["origin", s(t), "backup2:0x10622c:0", "--at", "end"],
            "the origin of 1 to 64 bytes",
        ),
        (
            vec!["origin", s(t), "backup2:0xfffffffffffffffc:8", "--at", "end"],
            "8 bytes at 0xfffffffffffffffc run past the end of the address space",
        ),
        (
            vec!["calls", s(t), "kv_apply", "--from", "99999999999999999999ms"],
            "is not a time vmrr can hold",
        ),
        (
            vec!["calls", s(t), "kv_apply", "--from", "5ms", "--to", "1ms"],
            "the window ends (--to 1ms) before it starts (--from 5ms)",
        ),
        (
            vec!["calls", "/nonexistent/trace", "kv_apply"],
            "is not a trace directory",
        ),
        (vec!["calls", s(t)], "name a function, or give --tree"),
    ];
    for (args, needle) in cases {
        let o = vmrr(&args);
        o.expect_code(2);
        let line = o.error_line();
        assert!(
            line.contains(needle),
            "{needle:?} not in {line:?}\n{}",
            o.describe()
        );
    }
}
