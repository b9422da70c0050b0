//! Forks of the kvstore demo on real KVM: with no change a fork reproduces
//! its parent exactly from the cut (events, fault events, frames and
//! checkpoint state hashes, compared row by row); the stale read goes away
//! when the late resend is dropped or the partition heals earlier, and
//! appears on kvstore-ok when the partition is added; setting memory at the
//! cut changes the outcome; `diff` names where runs part; bad requests are
//! refused with the reason, writing nothing. Needs /dev/kvm.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use vmrr_backend::rng::SeededRng;
use vmrr_debugger::fork::diff::diff;
use vmrr_debugger::fork::{fork, Change, ForkError, ForkOptions, ForkSummary};
use vmrr_debugger::session::{Direction, Moment, Session, SessionError};
use vmrr_debugger::trace::Trace;
use vmrr_index::{CheckpointRow, EventFilter, EventKind, EventRow, FrameRow, Index};

fn bug() -> &'static Path {
    common::kvstore_bug_trace()
}

fn ok() -> &'static Path {
    static TRACE: OnceLock<PathBuf> = OnceLock::new();
    TRACE.get_or_init(|| common::record_cluster("kvstore-ok", "ok"))
}

/// A fresh output folder name.
fn out(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmrr-dbg-fork-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn try_fork(parent: &Path, at: &str, changes: &[&str], out: &Path) -> Result<ForkSummary, ForkError> {
    let changes: Vec<Change> = changes
        .iter()
        .map(|c| Change::parse(c).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let at = Moment::parse(at).expect("moment");
    fork(
        parent,
        &at,
        &changes,
        out,
        &ForkOptions::default(),
        &AtomicBool::new(false),
        &mut |_| {},
    )
}

fn do_fork(parent: &Path, at: &str, changes: &[&str], tag: &str) -> PathBuf {
    let dir = out(tag);
    try_fork(parent, at, changes, &dir).unwrap_or_else(|e| panic!("fork at {at} {changes:?}: {e}"));
    dir
}

fn index(dir: &Path) -> Index {
    Index::open_read_only(dir.join("index.sqlite")).expect("index")
}

fn events(ix: &Index, vm: u32) -> Vec<EventRow> {
    ix.events_in_window(0, u64::MAX, &EventFilter::all().with_vms(vec![vm]), usize::MAX)
        .expect("events")
}

/// (icount, vtime, kind, value, text, payload) of a row: everything but its id.
type Key = (u64, u64, EventKind, Option<u64>, Option<String>, Option<Vec<u8>>);

fn key(r: &EventRow) -> Key {
    (
        r.icount,
        r.vtime_ns,
        r.kind,
        r.value,
        r.text.clone(),
        r.payload.clone(),
    )
}

fn console_text(rows: &[&EventRow]) -> String {
    rows.iter().filter_map(|r| r.text.clone()).collect()
}

/// Checks, row by row, that the fork in `child` reproduces `parent` from
/// its cut: every VM's events (console as text, a run of bytes being cut in
/// two by the cut), fault events, checkpoints and their state hashes, frames.
fn assert_reproduces(parent: &Path, child: &Path) {
    let (p, c) = (index(parent), index(child));
    let vms = p.vms().expect("vms").len() as u32;
    for vm in 0..vms {
        let cps_c: Vec<CheckpointRow> = c.checkpoints(vm).expect("checkpoints");
        let cps_p: Vec<CheckpointRow> = p.checkpoints(vm).expect("checkpoints");
        let start = &cps_c[0];
        let after = |r: &EventRow| {
            r.icount > start.icount || (r.icount == start.icount && r.vtime_ns >= start.vtime_ns)
        };
        let (ep, ec) = (events(&p, vm), events(&c, vm));
        let pick = |rows: &[EventRow], kinds: &[EventKind], parent: bool| -> Vec<Key> {
            rows.iter()
                .filter(|r| kinds.contains(&r.kind) && (!parent || after(r)))
                .map(key)
                .collect()
        };
        let engine = [
            EventKind::FrameSent,
            EventKind::FrameRecv,
            EventKind::Interrupt,
            EventKind::Marker,
            EventKind::Halt,
            EventKind::Wake,
            EventKind::Tsc,
            EventKind::Rand,
            EventKind::Exit,
            EventKind::Fault,
            EventKind::Stop,
        ];
        let (a, b) = (pick(&ep, &engine, true), pick(&ec, &engine, false));
        assert_eq!(
            a.len(),
            b.len(),
            "VM {vm}: event counts from icount {}",
            start.icount
        );
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                x, y,
                "VM {vm}: first differing event from icount {}",
                start.icount
            );
        }
        let con_p: Vec<&EventRow> = ep
            .iter()
            .filter(|r| r.kind == EventKind::Console && after(r))
            .collect();
        let con_c: Vec<&EventRow> = ec.iter().filter(|r| r.kind == EventKind::Console).collect();
        let (tp, tc) = (console_text(&con_p), console_text(&con_c));
        assert!(
            tc.ends_with(&tp) && tc.len() - tp.len() <= 256,
            "VM {vm}: console after the cut differs:\nparent {tp:?}\nfork   {tc:?}"
        );
        // Checkpoints at the same icounts with the same states (the first,
        // the cut itself, is the fork's own).
        let later_p: Vec<(u64, u64, String)> = cps_p
            .iter()
            .filter(|k| k.icount > start.icount)
            .map(|k| (k.icount, k.vtime_ns, k.state_hash.clone()))
            .collect();
        let later_c: Vec<(u64, u64, String)> = cps_c[1..]
            .iter()
            .filter(|k| k.icount > start.icount)
            .map(|k| (k.icount, k.vtime_ns, k.state_hash.clone()))
            .collect();
        assert_eq!(later_p, later_c, "VM {vm}: checkpoints after the cut");
    }
    // The fork's frames are the parent's, with the same ids and fates.
    let frames = |ix: &Index| -> Vec<FrameRow> { ix.frame_edges(usize::MAX).expect("frames") };
    let fp = frames(&p);
    for f in frames(&c) {
        assert!(fp.contains(&f), "frame {f:?} of the fork is not the parent's");
    }
}

#[test]
fn forks_without_a_change_reproduce_the_original_at_ten_random_moments() {
    let trace = Trace::open(bug(), false).expect("open");
    let end = (0..3)
        .map(|vm| trace.checkpoints(vm).last().map_or(0, |c| c.vtime_ns))
        .max()
        .unwrap_or(0);
    drop(trace);
    let mut rng = SeededRng::new(2026);
    let mut moments: Vec<u64> = (0..10).map(|_| rng.below(end)).collect();
    moments.sort_unstable();
    // And inside a console line: the fork's first row continues it.
    let line = events(&index(bug()), 0)
        .into_iter()
        .find(|r| {
            r.kind == EventKind::Console
                && r.vtime_ns > 150_000_000
                && r.text.as_ref().is_some_and(|t| t.len() > 20)
        })
        .expect("a console line");
    moments.push(line.vtime_ns + 100);
    for (i, t) in moments.into_iter().enumerate() {
        let at = format!("{t}ns");
        let dir = do_fork(bug(), &at, &[], &format!("same{i}"));
        assert_reproduces(bug(), &dir);
        let report = diff(bug(), &dir).expect("diff");
        assert!(report.identical(), "fork at {at}:\n{}", report.summary());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_fork_replays_verifies_and_starts_its_history_at_the_cut() {
    let dir = do_fork(bug(), "100ms", &[], "session");
    let trace = Trace::open(&dir, false).expect("open the fork");
    let results = trace.verify(&[0, 1, 2], 2, &|_| {}).expect("verify");
    assert!(
        results
            .iter()
            .all(|r| r.divergence.is_none() && r.damage.is_none()),
        "{results:?}"
    );
    drop(trace);
    let mut s = Session::open(&dir).expect("session");
    let start = s.start_icount(2);
    assert!(start > 0, "the fork keeps the parent's icounts");
    s.goto(2, start).expect("goto the start");
    assert_eq!(
        s.step(2, Direction::Backward).expect("step"),
        None,
        "nothing before the cut"
    );
    match s.goto(2, start - 1) {
        Err(SessionError::BeforeStart {
            icount, start: at, ..
        }) => assert_eq!((icount, at), (start - 1, start)),
        other => panic!("expected BeforeStart, got {other:?}"),
    }
    s.goto_vtime(0).expect("time 0");
    assert_eq!(s.machine(2).expect("machine").icount(), start);
    assert_eq!(s.step_cluster(Direction::Backward).expect("step"), None);
    // A fork of the fork, before the fork's first barrier, is the original too.
    let grandchild = do_fork(&dir, "100.01ms", &[], "session2");
    assert_reproduces(bug(), &grandchild);
}

/// The primary's console and its exit.
fn outcome(dir: &Path) -> (String, String) {
    let ix = index(dir);
    let console: String = events(&ix, 0)
        .iter()
        .filter(|r| r.kind == EventKind::Console)
        .filter_map(|r| r.text.clone())
        .collect();
    let stop = ix.vm(0).expect("vm").and_then(|v| v.stop).unwrap_or_default();
    (console, stop)
}

/// The late resend of write #5 to backup2: the primary's first frame to it
/// after its `resend = 5` marker.
fn late_resend(trace: &Path) -> FrameRow {
    let ix = index(trace);
    let marker = events(&ix, 0)
        .into_iter()
        .find(|r| r.kind == EventKind::Marker && r.text.as_deref() == Some("resend") && r.value == Some(5))
        .expect("the primary's resend = 5 marker");
    ix.frame_edges(usize::MAX)
        .expect("frames")
        .into_iter()
        .find(|f| f.src == 0 && f.dst == 2 && f.sent_icount > marker.icount)
        .expect("the resent write")
}

#[test]
fn dropping_the_late_resend_removes_the_stale_read_and_diff_names_backup2() {
    let (console, stop) = outcome(bug());
    assert!(console.contains("STALE READ key=3"), "{console}");
    assert_eq!(stop, "guest exited with value 1");
    let f = late_resend(bug());
    // Just after its send: the frame is on its way.
    let at = format!("{}ns", f.sent_vtime_ns + 1000);
    for (tag, change) in [
        ("by-id", format!("drop frame {}", f.id)),
        ("next", "drop next frame from primary to backup2".into()),
    ] {
        let dir = do_fork(bug(), &at, &[&change], tag);
        let (console, stop) = outcome(&dir);
        assert!(!console.contains("STALE"), "{change}: {console}");
        assert!(console.contains("all 11 reads consistent"), "{change}: {console}");
        assert_eq!(stop, "guest exited with value 0", "{change}");
        let report = diff(bug(), &dir).expect("diff");
        let first = &report.vms[0];
        let d = first.first.as_ref().expect("a difference");
        assert_eq!(first.vm, "backup2", "{}", report.summary());
        assert_eq!(
            (d.icount, d.what.as_str()),
            (f.recv_icount.expect("received"), "event"),
            "{}",
            report.summary()
        );
        assert!(d.a.contains(&format!("frame #{}", f.id)), "{}", report.summary());
        assert!(
            report
                .outcome
                .frames
                .iter()
                .any(|x| x.a.starts_with("received") && x.b.starts_with("dropped")),
            "{}",
            report.summary()
        );
        assert!(
            report
                .outcome
                .markers
                .iter()
                .any(|m| m.side == "A" && m.text.starts_with("read-stale")),
            "{}",
            report.summary()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn healing_the_partition_earlier_removes_the_stale_read() {
    let dir = do_fork(bug(), "100ms", &["move fault 2 to 110ms"], "heal");
    let (console, stop) = outcome(&dir);
    assert!(!console.contains("STALE"), "{console}");
    assert_eq!(stop, "guest exited with value 0");
    let config = std::fs::read_to_string(dir.join("cluster.toml")).expect("cluster.toml");
    assert!(config.contains("at_us = 110000"), "{config}");
}

#[test]
fn adding_the_partition_to_kvstore_ok_makes_the_stale_read_appear() {
    let (console, stop) = outcome(ok());
    assert!(!console.contains("STALE"), "{console}");
    assert_eq!(stop, "guest exited with value 0");
    let dir = do_fork(
        ok(),
        "60ms",
        &["partition backup2 at 70ms", "heal at 118ms"],
        "partition",
    );
    let (console, stop) = outcome(&dir);
    assert!(console.contains("STALE READ key=3 got=31 want=32"), "{console}");
    assert_eq!(stop, "guest exited with value 1");
    // It is the run of kvstore-bug.toml from there on.
    let report = diff(bug(), &dir).expect("diff");
    assert!(report.identical(), "{}", report.summary());
}

#[test]
fn setting_memory_at_the_cut_changes_the_outcome() {
    let dir = do_fork(ok(), "130ms", &["set backup2 store[3] = 99"], "poke");
    let (console, stop) = outcome(&dir);
    assert!(console.contains("STALE READ key=3 got=99 want=32"), "{console}");
    assert_eq!(stop, "guest exited with value 1");
    let report = diff(ok(), &dir).expect("diff");
    let backup2 = report.vms.iter().find(|v| v.vm == "backup2").expect("backup2");
    let d = backup2.first.as_ref().expect("a difference");
    assert_eq!(
        (d.what.as_str(), d.icount),
        ("state", backup2.from_icount),
        "{}",
        report.summary()
    );
    let addr = common::kvstore_symbol("store") + 3 * 4;
    assert!(d.b.contains(&format!("{addr:#x}: 63")), "{}", report.summary());
    // A register too: the fork starts from it.
    let dir = do_fork(ok(), "130ms", &["set backup1 rbx = 0x1234"], "reg");
    let trace = Trace::open(&dir, false).expect("open");
    let (file, _) = trace.checkpoint_state(1, 0).expect("first checkpoint");
    assert_eq!(file.state.vcpu.regs.rbx, 0x1234);
}

#[test]
fn bad_requests_name_the_problem_and_write_nothing() {
    let check = |at: &str, changes: &[&str], out: &Path, want: &str| {
        let e = try_fork(bug(), at, changes, out)
            .expect_err("refused")
            .to_string();
        assert!(e.contains(want), "{at} {changes:?}: {e}");
        assert!(
            !out.exists()
                || std::fs::read_dir(out)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false),
            "{} was written",
            out.display()
        );
    };
    let fresh = out("bad");
    check(
        "100ms",
        &["drop frame 9999"],
        &fresh,
        "no frame 9999 in this trace",
    );
    check("100ms", &["drop frame 3"], &fresh, "was delivered to primary");
    check("10s", &[], &fresh, "the trace ends at");
    check("100ms", &["heal at 90ms"], &fresh, "before the fork point");
    check(
        "100ms",
        &["partition nosuchvm at 120ms"],
        &fresh,
        "no VM 'nosuchvm'",
    );
    check("100ms", &["move fault 7 to 120ms"], &fresh, "no fault 7");
    check(
        "100ms",
        &["set backup2 nosuchvariable = 1"],
        &fresh,
        "nosuchvariable",
    );
    check(
        "100ms",
        &[],
        &bug().join("inside"),
        "inside the trace being forked",
    );
    let taken = out("taken");
    std::fs::create_dir_all(&taken).expect("mkdir");
    std::fs::write(taken.join("x"), "x").expect("write");
    let e = try_fork(bug(), "100ms", &[], &taken)
        .expect_err("refused")
        .to_string();
    assert!(e.contains("already exists and is not empty"), "{e}");
    assert_eq!(
        std::fs::read_dir(&taken).expect("dir").count(),
        1,
        "nothing added"
    );
    let _ = std::fs::remove_dir_all(&taken);
}

#[test]
fn a_drop_fault_continues_its_seeded_choices_and_a_new_seed_changes_them() {
    // pingpong with half the frames dropped between the two VMs.
    let dir = out("pp-src");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let text = std::fs::read_to_string(common::cluster_file("pingpong")).expect("pingpong.toml");
    let image = vmrr_guests::image("pingpong");
    let text = text.replace("../guests/build/pingpong.elf", &image.display().to_string())
        + "\n[[fault]]\nat_us = 1000\nkind = \"drop\"\nbetween = [\"ping\", \"pong\"]\nfraction = 0.5\nuntil_us = 400000\n";
    let file = dir.join("pp.toml");
    std::fs::write(&file, text).expect("write");
    let config = vmrr_debugger::cluster::ClusterConfig::load(&file).expect("config");
    let parent = out("pp");
    vmrr_debugger::trace::record::record(
        &config,
        &parent,
        &Default::default(),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .expect("record");
    let dropped = |t: &Path| -> Vec<(u32, u64)> {
        index(t)
            .frame_edges(usize::MAX)
            .expect("frames")
            .into_iter()
            .filter(|f| f.fate == vmrr_index::FrameFate::Dropped)
            .map(|f| (f.src, f.sent_icount))
            .collect()
    };
    assert!(dropped(&parent).len() >= 3, "the fault drops frames");
    for at in ["30ms", "120ms", "260ms"] {
        let child = do_fork(&parent, at, &[], &format!("pp{at}"));
        assert_reproduces(&parent, &child);
    }
    let child = do_fork(&parent, "20ms", &["seed 7"], "pp-seed");
    // The parent's drops after the cut (the fork has only those).
    let later = |v: Vec<(u32, u64)>, t: &Path| -> Vec<(u32, u64)> {
        let ix = index(t);
        v.into_iter()
            .filter(|(src, icount)| {
                ix.frames_sent_at(*src, *icount)
                    .expect("frames")
                    .iter()
                    .all(|f| f.sent_vtime_ns >= 20_000_000)
            })
            .collect()
    };
    assert_ne!(
        later(dropped(&parent), &parent),
        dropped(&child),
        "another seed, other drops"
    );
    let report = diff(&parent, &child).expect("diff");
    let first = report
        .vms
        .iter()
        .find_map(|v| v.first.clone())
        .expect("a difference");
    assert!(first.a.contains("rdrand generator"), "{}", report.summary());
}
