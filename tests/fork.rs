//! `vmrr fork` and `vmrr diff` end to end on the kvstore-bug demo: a fork
//! that drops the late resend is a trace every command reads (replay
//! --verify, events, sql), shares its parent's pages, and `diff` names
//! backup2 first (summary and JSON, exit status 1); a fork without a change
//! diffs as the same (exit 0); bad requests exit 2 with the reason. Needs
//! /dev/kvm.

mod demo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vmrr<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmrr"))
        .args(args)
        .output()
        .expect("run vmrr")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmrr-fork-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn trace() -> &'static Path {
    demo::kvstore_bug_trace()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn dropping_the_late_resend_from_the_command_line() {
    let new = scratch("drop");
    let o = vmrr(&[
        "fork",
        &s(trace()),
        "--at",
        "122.2ms",
        "drop next frame from primary to backup2",
        "-o",
        &s(&new),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("change: drop next frame from primary to backup2: frame "),
        "{}",
        text(&o)
    );
    assert!(
        err.contains("primary: ") && err.contains("guest exited with value 0"),
        "{}",
        text(&o)
    );

    // An ordinary trace.
    let o = vmrr(&["replay", &s(&new), "--verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = vmrr(&["events", &s(&new), "--vm", "primary", "--kind", "marker,console"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        !stdout(&o).contains("read-stale") && stdout(&o).contains("all 11 reads consistent"),
        "{}",
        text(&o)
    );
    let o = vmrr(&[
        "sql",
        &s(&new),
        "SELECT key, value FROM meta WHERE key LIKE 'fork.%' ORDER BY key",
    ]);
    let meta = stdout(&o);
    let parent = std::fs::canonicalize(trace()).expect("canonical");
    for want in [
        "fork.at\t122.2ms",
        "fork.changes",
        &format!("fork.parent\t{}", parent.display()),
    ] {
        assert!(meta.contains(want), "{want}: {meta}");
    }

    // Pages it shares with its parent are hard links, not copies.
    let linked = walk(&new.join("pages"))
        .into_iter()
        .filter(|p| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(p).map(|m| m.nlink() > 1).unwrap_or(false)
        })
        .count();
    assert!(linked > 0, "no page file of the fork is shared with its parent");

    // Where the runs part: backup2, at the frame's delivery.
    let o = vmrr(&["diff", &s(trace()), &s(&new)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    let first_vm = out
        .lines()
        .find(|l| l.contains("first difference"))
        .unwrap_or_default();
    assert!(
        first_vm.starts_with("backup2") && first_vm.contains("(event)"),
        "{out}"
    );
    assert!(out.contains("only in A: primary kvstore: STALE READ"), "{out}");
    let o = vmrr(&["diff", &s(trace()), &s(&new), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(json["vms"][0]["vm"], "backup2", "{json}");
    assert_eq!(json["vms"][0]["first"]["what"], "event", "{json}");
    let stops = json["outcome"]["stops"].as_array().expect("stops");
    assert!(stops.iter().any(|d| d["vm"] == "primary"), "{json}");
    let _ = std::fs::remove_dir_all(&new);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn a_fork_without_a_change_diffs_as_the_same() {
    let new = scratch("same");
    let o = vmrr(&["fork", &s(trace()), "--at", "primary:50000", "-o", &s(&new)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("primary at icount 50000"),
        "{}",
        text(&o)
    );
    let o = vmrr(&["diff", &s(trace()), &s(&new)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("outcome: the same"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&new);
}

#[test]
fn bad_fork_requests_exit_2_with_the_reason() {
    let t = s(trace());
    let new = scratch("bad");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--at".into(), "100ms".into(), "drop frame 99999".into()],
            "no frame 99999",
        ),
        (vec!["--at".into(), "1s".into()], "the trace ends at"),
        (
            vec!["--at".into(), "100ms".into(), "explode frame 3".into()],
            "A change is one of",
        ),
        (vec!["--at".into(), "nosuchbookmark".into()], "nosuchbookmark"),
        (
            vec!["--at".into(), "100ms".into(), "heal at 50ms".into()],
            "before the fork point",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["fork".to_string(), t.clone()];
        all.extend(args.clone());
        all.extend(["-o".to_string(), s(&new)]);
        let o = vmrr(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{args:?}: {}",
            text(&o)
        );
        assert!(!new.exists(), "{args:?} wrote {}", new.display());
    }
    // -o inside the trace, and -o that holds something.
    let o = vmrr(&["fork", &t, "--at", "100ms", "-o", &s(&trace().join("sub"))]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("inside the trace being forked"),
        "{}",
        text(&o)
    );
    assert!(!trace().join("sub").exists());
    let o = vmrr(&["fork", &t, "--at", "100ms", "-o", &t]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not empty"),
        "{}",
        text(&o)
    );
    // The faults, numbered for `move fault N`.
    let o = vmrr(&["fork", &t, "--list-faults"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stdout(&o).contains("1: partition backup2 at 70.000000 ms"),
        "{}",
        text(&o)
    );
    assert!(stdout(&o).contains("2: heal at 118.000000 ms"), "{}", text(&o));
    // diff of something that is not a trace.
    let o = vmrr(&["diff", &t, "/nonexistent-trace"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
