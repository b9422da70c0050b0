//! Recording and replay: a recorded trace replays with every checkpoint's
//! state hash matching; a perturbed input is reported as a divergence at the
//! right VM and icount; seeking anywhere equals a straight replay; frames link
//! sends to receipts; damaged traces give clear errors; a killed recording
//! still replays to its last checkpoint. Needs /dev/kvm.

mod common;
mod demo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::copy_dir;
use vmrr_backend::rng::SeededRng;
use vmrr_debugger::trace::Trace;

fn vmrr(args: &[&str]) -> Output {
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

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmrr-trace-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The kvstore-bug cluster, recorded once per test run.
fn recorded() -> &'static Path {
    demo::kvstore_bug_trace()
}

fn copy_of(name: &str) -> PathBuf {
    let dir = scratch(name);
    copy_dir(recorded(), &dir);
    dir
}

#[test]
fn replay_verify_matches_every_checkpoint() {
    let o = vmrr(&[
        "replay",
        recorded().to_str().unwrap_or_default(),
        "--verify",
        "--jobs",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("verified"), "{err}");
    for vm in ["primary", "backup1", "backup2"] {
        assert!(err.contains(&format!("{vm}: replayed to icount")), "{err}");
    }
    let trace = Trace::open(recorded(), false).expect("open");
    assert!(trace.is_complete());
    assert!(trace.checkpoints(0).len() >= 4, "checkpoints every 10000 steps");
}

#[test]
fn perturbed_input_is_reported_at_the_right_vm_and_icount() {
    let dir = copy_of("perturbed");
    let db = dir.join("index.sqlite");
    let conn = rusqlite::Connection::open(&db).expect("open index");
    // Change one byte of a frame received by backup2 (vm 2) after its first checkpoint.
    let (id, icount): (i64, i64) = conn
        .query_row(
            "SELECT id, icount FROM events WHERE vm = 2 AND kind = 'frame_recv' AND icount > 20000 ORDER BY icount LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a frame received by backup2");
    let mut payload: Vec<u8> = conn
        .query_row("SELECT payload FROM events WHERE id = ?1", [id], |r| r.get(0))
        .expect("payload");
    let last = payload.len() - 1;
    payload[last] ^= 0x5a;
    conn.execute(
        "UPDATE events SET payload = ?1 WHERE id = ?2",
        rusqlite::params![payload, id],
    )
    .expect("update");
    drop(conn);
    // As it is, the edit is damage: the input no longer matches its checksum.
    let e = replay_error(&dir, EXIT_DAMAGED);
    assert!(
        e.contains("index.sqlite") && e.contains("frames handed to the VMs"),
        "{e}"
    );
    // Sealed again (as if the recording had carried that byte), the guest
    // diverges, and the report names where.
    vmrr_index::Index::open(&db)
        .and_then(|mut i| i.seal_checksums())
        .expect("reseal");
    let o = vmrr(&["replay", dir.to_str().unwrap_or_default(), "--verify"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("divergence in VM 'backup2'"), "{err}");
    let at: u64 = err
        .split("divergence in VM 'backup2' at icount ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no icount in: {err}"));
    assert!(
        at >= icount as u64,
        "divergence at {at} reported before the perturbed input at {icount}"
    );
    let trace = Trace::open(&dir, false).expect("open");
    let next_cp = trace
        .checkpoints(2)
        .iter()
        .map(|c| c.icount)
        .find(|&c| c >= icount as u64)
        .expect("a later checkpoint");
    assert!(
        at <= next_cp,
        "divergence at {at} is after the checkpoint {next_cp} that follows the input"
    );
    assert!(
        !err.contains("VM 'primary'") && !err.contains("VM 'backup1'"),
        "only backup2 diverges: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn seeking_anywhere_equals_a_straight_replay() {
    let trace = Trace::open(recorded(), false).expect("open");
    // 100 positions spread over the three VMs from a fixed-seed generator.
    let mut rng = SeededRng::new(0x2545_f491_4f6c_dd1d);
    let mut positions: Vec<(usize, u64)> = (0..100)
        .map(|_| {
            let vm = rng.below(3) as usize;
            (vm, rng.below(trace.end_icount(vm) + 1))
        })
        .collect();
    positions.sort();
    for vm in 0..3 {
        // The straight run: from the boot checkpoint, no other checkpoint used.
        let (mut straight, mut next) = trace.machine_at_checkpoint(vm, 0).expect("boot state");
        for &(_, icount) in positions.iter().filter(|p| p.0 == vm) {
            trace
                .run_to(vm, &mut straight, &mut next, icount, usize::MAX)
                .expect("straight replay");
            let seeked = trace.seek(vm, icount).expect("seek");
            assert_eq!(seeked.icount(), straight.icount(), "vm {vm} icount {icount}");
            assert_eq!(
                seeked.state_hash().expect("hash"),
                straight.state_hash().expect("hash"),
                "vm {vm}: seek to {icount} differs from the straight replay"
            );
        }
    }
    let past = trace
        .seek(0, trace.end_icount(0) + 1)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(past.contains("past the end"), "{past}");
}

#[test]
fn every_received_frame_links_to_its_send() {
    let o = vmrr(&[
        "sql",
        recorded().to_str().unwrap_or_default(),
        "SELECT count(*) FROM events r WHERE r.kind = 'frame_recv' AND NOT EXISTS (\
           SELECT 1 FROM frames f JOIN events s ON s.kind = 'frame_sent' AND s.vm = f.src \
             AND s.icount = f.sent_icount AND s.value = f.id \
           WHERE f.id = r.value AND f.dst = r.vm AND f.recv_icount = r.icount AND f.fate = 'received')",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().nth(1),
        Some("0"),
        "{}",
        text(&o)
    );
    let o = vmrr(&[
        "sql",
        recorded().to_str().unwrap_or_default(),
        "SELECT count(*) FROM frames WHERE fate = 'received'",
    ]);
    let n: u64 = String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!(n > 50, "{}", text(&o));
    let o = vmrr(&[
        "sql",
        recorded().to_str().unwrap_or_default(),
        "SELECT count(*) FROM frames WHERE fate = 'partitioned'",
    ]);
    let n: u64 = String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!(n > 0, "the partition shows in the frame table: {}", text(&o));
}

#[test]
fn events_and_sql_queries() {
    let t = recorded().to_str().unwrap_or_default();
    let o = vmrr(&[
        "events", t, "--vm", "primary", "--kind", "marker", "--from", "100ms", "--to", "200ms",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines().count() > 0 && out.lines().all(|l| l.contains("primary") && l.contains("marker")),
        "{out}"
    );
    // The partition and the heal of kvstore-bug.toml, on each of the three VMs.
    let o = vmrr(&["events", t, "--kind", "fault"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.matches("partition: backup2 cut off").count(), 3, "{out}");
    assert_eq!(out.matches("heal").count(), 3, "{out}");
    assert!(
        out.lines().next().is_some_and(|l| l.contains("70.000000 ms")),
        "{out}"
    );
    let o = vmrr(&["events", t, "--kind", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown event kind 'bogus'"),
        "{}",
        text(&o)
    );
    let o = vmrr(&["events", t, "--vm", "nobody"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no VM 'nobody'"),
        "{}",
        text(&o)
    );
    for bad in [
        "DELETE FROM events",
        "DROP TABLE events",
        "INSERT INTO meta VALUES ('a','b')",
        "PRAGMA user_version = 3",
    ] {
        let o = vmrr(&["sql", t, bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
    }
    let o = vmrr(&["sql", t, "SELEC nonsense"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// Exit status of a damaged trace (never the divergence's 5).
const EXIT_DAMAGED: i32 = 6;

/// `replay --verify` on `dir` fails with exit status `status`; its message.
fn replay_error(dir: &Path, status: i32) -> String {
    let o = vmrr(&["replay", dir.to_str().unwrap_or_default(), "--verify"]);
    assert_eq!(o.status.code(), Some(status), "{}", text(&o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn damaged_traces_give_clear_errors() {
    // Truncated index.
    let dir = copy_of("truncated");
    let db = dir.join("index.sqlite");
    let len = std::fs::metadata(&db).expect("db").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate");
    let e = replay_error(&dir, EXIT_DAMAGED);
    assert!(e.contains("index.sqlite"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);

    // A missing and a damaged memory page.
    let dir = copy_of("pages");
    let mut pages: Vec<PathBuf> = Vec::new();
    for sub in std::fs::read_dir(dir.join("pages")).expect("pages").flatten() {
        for f in std::fs::read_dir(sub.path()).expect("page dir").flatten() {
            pages.push(f.path());
        }
    }
    pages.sort();
    std::fs::remove_file(&pages[0]).expect("remove page");
    let e = replay_error(&dir, EXIT_DAMAGED);
    assert!(
        e.contains("memory page is missing") && e.contains("damaged"),
        "{e}"
    );
    copy_dir(&recorded().join("pages"), &dir.join("pages"));
    std::fs::write(&pages[1], b"not zstd").expect("damage page");
    let e = replay_error(&dir, EXIT_DAMAGED);
    assert!(
        e.contains(&pages[1].display().to_string()) && e.contains("does not decompress"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // An image that is not the recorded one.
    let dir = copy_of("image");
    let image = dir.join("images/backup1.elf");
    let mut bytes = std::fs::read(&image).expect("image");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&image, bytes).expect("write image");
    let e = replay_error(&dir, EXIT_DAMAGED);
    assert!(
        e.contains("backup1.elf") && e.contains("does not match the one recorded"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // A trace written by a newer vmrr.
    let dir = copy_of("newer");
    let conn = rusqlite::Connection::open(dir.join("index.sqlite")).expect("open");
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'", [])
        .expect("update");
    conn.execute_batch("PRAGMA user_version = 99").expect("pragma");
    drop(conn);
    let e = replay_error(&dir, 2);
    assert!(e.contains("newer vmrr"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);

    // Not a trace at all.
    let e = replay_error(Path::new("/tmp/definitely-not-a-trace-dir"), 2);
    assert!(e.contains("not a trace directory"), "{e}");
}

#[test]
fn killed_recording_replays_to_its_last_checkpoint() {
    let out = scratch("killed");
    let cluster = Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters/kvstore-ok.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmrr"))
        .args([
            "record",
            cluster.to_str().unwrap_or_default(),
            "-o",
            out.to_str().unwrap_or_default(),
            "--checkpoint-every",
            "10000",
        ])
        .spawn()
        .expect("start recording");
    // Wait until the index holds a few checkpoints of vm 0 (their files are
    // written before their rows are committed: counting files races), then
    // kill -9 mid-run.
    let started = std::time::Instant::now();
    let index = out.join("index.sqlite");
    let checkpoints = || -> i64 {
        let Ok(conn) =
            rusqlite::Connection::open_with_flags(&index, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        else {
            return 0;
        };
        conn.query_row("SELECT COUNT(*) FROM checkpoints WHERE vm = 0", [], |r| r.get(0))
            .unwrap_or(0)
    };
    while checkpoints() < 3 && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(
        checkpoints() >= 3,
        "the recording made checkpoints before it was killed"
    );
    let o = vmrr(&["replay", out.to_str().unwrap_or_default(), "--verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("did not finish") && err.contains("verified"),
        "{err}"
    );
    let trace = Trace::open(&out, false).expect("open killed trace");
    assert!(!trace.is_complete());
    assert!(
        trace.end_icount(0) >= 20_000,
        "replayable up to the last checkpoint: {}",
        trace.end_icount(0)
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// Changes to a trace that still parse — an edited checkpoint, deleted or
/// edited rows — are named as damage (exit status 6), before anything is
/// shown from them, and never as a divergence of the guest.
#[test]
fn tampering_is_named_as_damage_not_divergence() {
    let sql = |dir: &Path, statement: &str| {
        let conn = rusqlite::Connection::open(dir.join("index.sqlite")).expect("open index");
        conn.execute_batch(statement).expect(statement);
    };
    // A checkpoint edited but still valid zstd and JSON: RAX's low byte = 0x41.
    let dir = copy_of("edited-checkpoint");
    let rel: String = rusqlite::Connection::open(dir.join("index.sqlite"))
        .and_then(|c| {
            c.query_row(
                "SELECT manifest FROM checkpoints WHERE vm = 0 ORDER BY icount DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
        })
        .expect("last checkpoint");
    let path = dir.join(&rel);
    let json = zstd::decode_all(&std::fs::read(&path).expect("read")[..]).expect("zstd");
    let mut value: serde_json::Value = serde_json::from_slice(&json).expect("json");
    // kvm_regs is stored as its bytes: byte 0 is the low byte of RAX.
    value["state"]["vcpu"]["regs"][0] = serde_json::json!(0x41);
    let packed = zstd::encode_all(&serde_json::to_vec(&value).expect("json")[..], 3).expect("zstd");
    std::fs::write(&path, packed).expect("write");
    let e = replay_error(&dir, EXIT_DAMAGED);
    assert!(
        e.contains(&rel) && e.contains("changed after it was recorded"),
        "{e}"
    );
    let mut s = vmrr_debugger::session::Session::open(&dir).expect("opens: the damage is in a later file");
    let end = s.end_icount(0);
    let err = s.goto(0, end).expect_err("the edited checkpoint is refused");
    assert!(err.to_string().contains("changed after it was recorded"), "{err}");
    drop(s);
    // The same edit by someone who also rewrote the file's hash in the index
    // and sealed the checksums again: restoring the checkpoint rebuilds a
    // state whose hash is not the one recorded, which is damage too.
    let hash = vmrr_debugger::trace::file_hash(&path).expect("hash");
    sql(
        &dir,
        &format!("UPDATE checkpoints SET file_hash = '{hash}' WHERE manifest = '{rel}'"),
    );
    vmrr_index::Index::open(dir.join("index.sqlite"))
        .and_then(|mut i| i.seal_checksums())
        .expect("reseal");
    let mut s = vmrr_debugger::session::Session::open(&dir).expect("opens");
    let err = s.goto(0, end).expect_err("the restored state is refused");
    assert!(
        err.to_string().contains("the state restored from checkpoint")
            && err
                .to_string()
                .contains("the checkpoint or its index row was changed"),
        "{err}"
    );
    drop(s);
    let e = replay_error(&dir, EXIT_DAMAGED);
    assert!(e.contains(&rel), "{e}");
    // A page far beyond the VM's memory, the file's hash rewritten and the
    // checksums sealed again: the file that holds it is named.
    let mut value: serde_json::Value = serde_json::from_slice(&json).expect("json");
    let first = value["changed"][0].clone();
    value["changed"][0] = serde_json::json!([1u64 << 40, first[1].clone()]);
    let packed = zstd::encode_all(&serde_json::to_vec(&value).expect("json")[..], 3).expect("zstd");
    std::fs::write(&path, packed).expect("write");
    let hash = vmrr_debugger::trace::file_hash(&path).expect("hash");
    sql(
        &dir,
        &format!("UPDATE checkpoints SET file_hash = '{hash}' WHERE manifest = '{rel}'"),
    );
    vmrr_index::Index::open(dir.join("index.sqlite"))
        .and_then(|mut i| i.seal_checksums())
        .expect("reseal");
    let e = replay_error(&dir, EXIT_DAMAGED);
    assert!(
        e.contains(&rel) && e.contains("writes page 1099511627776, outside the VM's"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // Rows replay depends on: deleted or edited, caught when the trace opens.
    for (name, statement, table) in [
        ("no-events", "DELETE FROM events", "frames handed to the VMs"),
        ("no-frames", "DELETE FROM frames", "the frames table"),
        (
            "zero-payloads",
            "UPDATE events SET payload = zeroblob(length(payload)) WHERE kind = 'frame_recv'",
            "frames handed to the VMs",
        ),
        (
            "state-hash",
            "UPDATE checkpoints SET state_hash = 'feed' WHERE vm = 1 AND icount > 0",
            "the checkpoints table",
        ),
        (
            "no-checkpoint",
            "DELETE FROM checkpoints WHERE vm = 2 AND icount > 0 AND icount < 30000",
            "the checkpoints table",
        ),
        (
            "packet-bytes",
            "UPDATE packets SET bytes = zeroblob(length(bytes)) WHERE id = 3",
            "the packets table",
        ),
    ] {
        let dir = copy_of(name);
        sql(&dir, statement);
        let e = replay_error(&dir, EXIT_DAMAGED);
        assert!(e.contains("index.sqlite") && e.contains(table), "{name}: {e}");
        let o = vmrr(&["events", dir.to_str().unwrap_or_default()]);
        assert_eq!(o.status.code(), Some(EXIT_DAMAGED), "{name}: {}", text(&o));
        assert!(
            vmrr_debugger::session::Session::open(&dir).is_err(),
            "{name}: the TUI and gdb refuse it"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    // A frame's bytes edited and the checksums sealed again: the replay
    // sends other bytes, so verification names the packets table.
    let dir = copy_of("packet-resealed");
    sql(
        &dir,
        "UPDATE packets SET bytes = zeroblob(length(bytes)) WHERE id = 3",
    );
    vmrr_index::Index::open(dir.join("index.sqlite"))
        .and_then(|mut i| i.seal_checksums())
        .expect("seal");
    let e = replay_error(&dir, EXIT_DAMAGED);
    assert!(
        e.contains("at icount") && e.contains("packets table was edited or damaged"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // Rows replay does not depend on (28 interrupts inside one slice): the
    // VM replays exactly, so verification names the events table as damaged.
    let dir = copy_of("interrupts");
    sql(
        &dir,
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE vm = 1 AND kind = 'interrupt' \
         AND icount > 20100 ORDER BY id LIMIT 28)",
    );
    let e = replay_error(&dir, EXIT_DAMAGED);
    assert!(
        e.contains("the events of VM 'backup1'") && e.contains("events table was edited or damaged"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
