//! Read-only traces (issue 12): a trace on a read-only mount, or one the
//! user may not write, opens for every command that only reads — `replay
//! --verify`, `events`, `sql`, `tui`, `gdb` — and none of them writes into
//! the folder (no `-wal`/`-shm`, nothing else). The TUI says the trace is
//! read-only and refuses a bookmark with the reason.
//!
//! Needs root (a bind mount; dropping the capability that lets root write
//! anywhere), /dev/kvm and tmux. Fails, never skips, without them.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{require_kvm, require_root, run_with_timeout, vmrr, Outcome, TempDir, VMRR, VMRR_TIMEOUT};
use vmrr_debugger::session::Session;

/// Every file and folder below `dir` with its size, to show nothing changed.
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).expect("metadata");
        out.push((p.clone(), if meta.is_dir() { 0 } else { meta.len() }));
        if meta.is_dir() {
            out.extend(listing(&p));
        }
    }
    out.sort();
    out
}

/// Only the names, relative to `dir`, for comparing two folders.
fn names(dir: &Path) -> Vec<(String, u64)> {
    listing(dir)
        .into_iter()
        .map(|(p, n)| (p.strip_prefix(dir).unwrap_or(&p).display().to_string(), n))
        .collect()
}

/// A read-only bind mount of `source`, unmounted when dropped.
struct ReadOnlyMount {
    point: PathBuf,
}

impl ReadOnlyMount {
    fn new(source: &Path, point: &Path) -> ReadOnlyMount {
        std::fs::create_dir_all(point).expect("mount point");
        let sh = |args: &[&str]| {
            let ok = Command::new("mount").args(args).status().expect("mount");
            assert!(ok.success(), "mount {args:?}");
        };
        sh(&[
            "--bind",
            &source.display().to_string(),
            &point.display().to_string(),
        ]);
        let m = ReadOnlyMount {
            point: point.to_path_buf(),
        };
        sh(&["-o", "remount,ro,bind", &point.display().to_string()]);
        m
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.point).status();
    }
}

/// The pingpong cluster recorded into `dir/t` (two VMs, frames, markers).
fn recorded(dir: &TempDir) -> PathBuf {
    let trace = dir.path().join("t");
    let cluster = Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters/pingpong.toml");
    vmrr([
        "record".as_ref(),
        cluster.as_os_str(),
        "-o".as_ref(),
        trace.as_os_str(),
    ])
    .expect_code(0);
    trace
}

/// The reading commands, each asserted to succeed on `trace`, run through
/// `wrap` (a prefix such as `setpriv ...`, or nothing).
fn read_everything(trace: &Path, wrap: &[&str]) {
    let run = |args: &[&str]| -> Outcome {
        let mut cmd = Command::new(wrap.first().copied().unwrap_or(VMRR));
        if !wrap.is_empty() {
            cmd.args(&wrap[1..]).arg(VMRR);
        }
        cmd.args(args);
        run_with_timeout(&mut cmd, VMRR_TIMEOUT)
    };
    let t = trace.to_str().expect("utf-8 path");
    run(&["replay", t, "--verify"])
        .expect_code(0)
        .expect_stderr(&["verified"]);
    run(&["events", t, "--kind", "marker"])
        .expect_code(0)
        .expect_stdout(&["ping"]);
    run(&["sql", t, "SELECT count(*) FROM frames"]).expect_code(0);
    gdb_serves(trace, wrap);
}

/// `vmrr gdb` opens the trace and answers gdb's first question on its port.
fn gdb_serves(trace: &Path, wrap: &[&str]) {
    let mut cmd = Command::new(wrap.first().copied().unwrap_or(VMRR));
    if !wrap.is_empty() {
        cmd.args(&wrap[1..]).arg(VMRR);
    }
    let mut child = cmd
        .arg("gdb")
        .arg(trace)
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vmrr gdb");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let port = loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                if let Some(port) = line
                    .split("127.0.0.1:")
                    .nth(1)
                    .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|p| p.parse::<u16>().ok())
                {
                    break port;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("vmrr gdb never said where it listens: {err}");
            }
        }
    };
    let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect to vmrr gdb");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    sock.write_all(b"$?#3f").expect("send");
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    let started = Instant::now();
    while !reply.contains(&b'#') && started.elapsed() < Duration::from_secs(20) {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains('$'), "gdb got an answer to '?': {text:?}");
}

#[test]
fn a_trace_on_a_read_only_mount_opens_for_every_reading_command() {
    require_root("a read-only bind mount");
    require_kvm();
    let dir = TempDir::new("ro-mount");
    let trace = recorded(&dir);
    let before = names(&trace);
    let mount = ReadOnlyMount::new(&trace, &dir.path().join("ro"));
    read_everything(&mount.point, &[]);

    // The Session (TUI, gdb) falls back to read-only; a bookmark says why not.
    let mut session = Session::open(&mount.point).expect("open on a read-only mount");
    assert!(session.is_read_only());
    let err = session
        .add_bookmark("late #5", "")
        .expect_err("read-only")
        .to_string();
    assert!(
        err.contains("cannot add bookmarks") && err.contains("read-only"),
        "{err}"
    );
    assert!(session.bookmarks().expect("list").is_empty());
    drop(session);

    tui_says_read_only(&mount.point);
    drop(mount);
    assert_eq!(names(&trace), before, "nothing written into the trace");
}

#[test]
fn a_trace_the_user_may_not_write_opens_and_stays_untouched() {
    require_root("changing owners and dropping capabilities");
    require_kvm();
    let dir = TempDir::new("ro-user");
    let trace = recorded(&dir);
    for (cmd, args) in [("chown", ["-R", "nobody:nogroup"]), ("chmod", ["-R", "a-w"])] {
        let ok = Command::new(cmd).args(args).arg(&trace).status().expect(cmd);
        assert!(ok.success(), "{cmd}");
    }
    let before = names(&trace);
    // Root without the capabilities that let it write anywhere: the trace
    // belongs to nobody and is read-only for everyone else, yet /dev/kvm
    // (root's) still opens.
    let drop_caps = [
        "setpriv",
        "--bounding-set=-dac_override,-dac_read_search,-fowner",
        "--inh-caps=-dac_override,-dac_read_search,-fowner",
        "--",
    ];
    let probe = Command::new("setpriv")
        .args(&drop_caps[1..])
        .args(["touch", &trace.join("probe").display().to_string()])
        .status()
        .expect("setpriv");
    assert!(!probe.success(), "the trace must not be writable under setpriv");
    read_everything(&trace, &drop_caps);

    // A real other user: events and sql need no KVM.
    let bin_dir = TempDir::new("ro-user-bin");
    let bin = bin_dir.path().join("vmrr");
    std::fs::copy(VMRR, &bin).expect("copy vmrr");
    for p in [bin_dir.path(), bin.as_path(), dir.path()] {
        let ok = Command::new("chmod").arg("a+rx").arg(p).status().expect("chmod");
        assert!(ok.success());
    }
    let t = trace.display().to_string();
    for args in [
        vec!["events", &t, "--limit", "5"],
        vec!["sql", &t, "SELECT count(*) FROM events"],
    ] {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "nobody", "--"]).arg(&bin).args(&args);
        run_with_timeout(&mut cmd, VMRR_TIMEOUT).expect_code(0);
    }
    assert_eq!(names(&trace), before, "nothing written into the trace");
    let _ = Command::new("chmod").args(["-R", "u+w"]).arg(dir.path()).status();
}

/// Reading a writable trace leaves no `-wal`/`-shm` (or anything) behind.
#[test]
fn reading_a_writable_trace_leaves_nothing_behind() {
    require_kvm();
    let dir = TempDir::new("rw-quiet");
    let trace = recorded(&dir);
    let before = names(&trace);
    let t = trace.to_str().expect("utf-8");
    vmrr(["replay", t, "--verify"]).expect_code(0);
    vmrr(["events", t, "--limit", "3"]).expect_code(0);
    vmrr(["sql", t, "SELECT count(*) FROM events"]).expect_code(0);
    assert_eq!(names(&trace), before);
}

/// `vmrr tui` on a read-only trace: a note at start, and `m` (bookmark)
/// refused with the reason.
fn tui_says_read_only(trace: &Path) {
    let socket = format!("vmrr-ro-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .expect("tmux")
    };
    let command = format!("{VMRR} tui {}; sleep 60", trace.display());
    let o = tmux(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "main",
        "-x",
        "160",
        "-y",
        "40",
        &command,
    ]);
    assert!(o.status.success(), "tmux: {}", String::from_utf8_lossy(&o.stderr));
    let screen = || String::from_utf8_lossy(&tmux(&["capture-pane", "-t", "main", "-p"]).stdout).into_owned();
    let wait_for = |text: &str| {
        let started = Instant::now();
        loop {
            let s = screen();
            if s.contains(text) {
                return s;
            }
            if started.elapsed() > Duration::from_secs(30) {
                tmux(&["kill-server"]);
                panic!("the TUI never showed {text:?}:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("read-only trace");
    tmux(&["send-keys", "-t", "main", "m"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux(&["send-keys", "-t", "main", "-l", "late #5"]);
    tmux(&["send-keys", "-t", "main", "Enter"]);
    wait_for("cannot add bookmarks");
    tmux(&["send-keys", "-t", "main", "q"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux(&["kill-server"]);
}

/// A recording killed before it merged its log, copied without the `-shm`
/// onto a read-only mount: SQLite cannot read the log there, and vmrr says
/// so instead of "unable to open database file".
#[test]
fn a_killed_recordings_log_on_a_read_only_mount_is_explained() {
    require_root("a read-only bind mount");
    require_kvm();
    let dir = TempDir::new("ro-wal");
    let trace = dir.path().join("t");
    let image = vmrr_guests::image("compute");
    let mut child = Command::new(VMRR)
        .arg("record")
        .arg(&image)
        .args(["--cmdline", "iters=100000000", "--checkpoint-every", "5000", "-o"])
        .arg(&trace)
        .stderr(Stdio::null())
        .spawn()
        .expect("start record");
    let started = Instant::now();
    let count = || {
        std::fs::read_dir(trace.join("checkpoints/vm0"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    while count() < 3 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(trace.join("index.sqlite-wal").exists(), "the log is left");
    let _ = std::fs::remove_file(trace.join("index.sqlite-shm"));
    let mount = ReadOnlyMount::new(&trace, &dir.path().join("ro"));
    let o = vmrr([
        "sql".as_ref(),
        mount.point.as_os_str(),
        "SELECT count(*) FROM checkpoints".as_ref(),
    ]);
    o.expect_code(2);
    assert!(
        o.error_line().contains("write-ahead log")
            && o.error_line().contains("copy the trace somewhere writable"),
        "{}",
        o.describe()
    );
    drop(mount);
    // With its -shm (or anywhere writable) the same trace reads, log included.
    let o = vmrr([
        "sql".as_ref(),
        trace.as_os_str(),
        "SELECT count(*) FROM checkpoints".as_ref(),
    ]);
    o.expect_code(0);
}

/// `vmrr index` on a read-only trace: a complete index is reported as
/// such; a missing one is refused with the reason and the way out, never
/// with SQLite's "unable to open database file".
#[test]
fn vmrr_index_on_a_read_only_trace_says_what_to_do() {
    require_root("a read-only bind mount");
    require_kvm();
    let dir = TempDir::new("ro-index");
    let trace = recorded(&dir);
    let point = dir.path().join("ro");
    {
        let mount = ReadOnlyMount::new(&trace, &point);
        vmrr(["index".as_ref(), mount.point.as_os_str()])
            .expect_code(0)
            .expect_stderr(&["is complete"]);
    }
    // As if recorded by a vmrr without the execution index.
    let conn = rusqlite::Connection::open(trace.join("index.sqlite")).expect("open index");
    conn.execute("DELETE FROM exec_slices WHERE vm = 1", [])
        .expect("delete rows");
    drop(conn);
    let before = names(&trace);
    let mount = ReadOnlyMount::new(&trace, &point);
    let o = vmrr(["index".as_ref(), mount.point.as_os_str()]);
    o.expect_code(2)
        .expect_stderr(&["is read-only", "lacks", "cp -r", "vmrr index COPY"]);
    assert!(!o.stderr.contains("unable to open"), "{}", o.describe());
    drop(mount);
    assert_eq!(names(&trace), before, "nothing written into the trace");
}
