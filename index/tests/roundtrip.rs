//! Every row type survives a write, a close and a reopen; the batched writer
//! flushes by itself, on demand, and keeps what was flushed when the process
//! dies.

mod common;

use common::*;
use vmrr_index::{
    EventFilter, EventKind, EventRow, FrameFate, Index, IndexError, Position, VmRow, SCHEMA_VERSION,
};

#[test]
fn every_row_type_round_trips() {
    let s = Scratch::new("roundtrip");
    let path = s.index_path();
    let (index, stored) = build_small(&path);
    index.close().expect("close");
    // The write-ahead log is merged on close: the file alone is the index.
    assert!(!s.path("index.sqlite-wal").exists());

    let index = Index::open_read_only(&path).expect("reopen");
    assert!(index.is_read_only());
    assert_eq!(index.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        index.meta("schema_version").unwrap(),
        Some(SCHEMA_VERSION.to_string())
    );
    assert_eq!(index.meta("cluster").unwrap().as_deref(), Some("pingpong"));
    assert_eq!(index.meta("seed").unwrap().as_deref(), Some("42"));
    assert_eq!(index.meta("nothing").unwrap(), None);
    let keys: Vec<String> = index.meta_all().unwrap().into_iter().map(|(k, _)| k).collect();
    for k in ["cluster", "created", "schema_version", "seed", "vmrr_version"] {
        assert!(keys.iter().any(|x| x == k), "meta has {k}");
    }

    // events: every field, including a value above 2^63 and each kind
    for e in &stored {
        assert_eq!(index.event(e.id).unwrap().as_ref(), Some(e));
    }
    let all = index
        .events_in_window(0, u64::MAX, &EventFilter::all(), usize::MAX)
        .unwrap();
    assert_eq!(all.len(), stored.len());
    assert_eq!(
        index
            .event(stored.iter().find(|e| e.kind == EventKind::Rand).unwrap().id)
            .unwrap()
            .unwrap()
            .value,
        Some(u64::MAX)
    );
    let kinds: std::collections::BTreeSet<EventKind> = all.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), EventKind::ALL.len(), "every kind is in the sample");

    // frames
    for f in small_frames() {
        assert_eq!(index.frame(f.id, f.dst).unwrap(), Some(f));
    }
    // checkpoints
    for vm in 0..3 {
        let expected: Vec<_> = small_checkpoints().into_iter().filter(|c| c.vm == vm).collect();
        assert_eq!(index.checkpoints(vm).unwrap(), expected);
    }
    // vms
    let vms = index.vms().unwrap();
    assert_eq!(vms, (0..3).map(vm_row).collect::<Vec<_>>());
    assert_eq!(index.vm(1).unwrap(), Some(vm_row(1)));
    assert_eq!(index.vm(9).unwrap(), None);

    let stats = index.stats().unwrap();
    assert_eq!(
        (
            stats.vms,
            stats.events,
            stats.frames,
            stats.checkpoints,
            stats.bookmarks
        ),
        (3, stored.len() as u64, small_frames().len() as u64, 12, 0)
    );
}

#[test]
fn bookmarks_round_trip() {
    let s = Scratch::new("bm-roundtrip");
    let path = s.index_path();
    let (index, _) = build_small(&path);
    let b = index
        .add_bookmark("crash", "node 2 dies here", 2, 300, vtime(2, 300))
        .unwrap();
    drop(index);
    let index = Index::open_read_only(&path).unwrap();
    assert_eq!(index.bookmarks().unwrap(), vec![b.clone()]);
    assert_eq!(index.bookmark_by_name("crash").unwrap(), Some(b));
}

#[test]
fn updates_replace_rows() {
    let s = Scratch::new("updates");
    let path = s.index_path();
    let (mut index, _) = build_small(&path);
    // an in-flight frame is delivered later: the same (id, dst) replaces it
    let mut f = small_frames().pop().unwrap();
    assert_eq!(f.fate, FrameFate::InFlight);
    f.fate = FrameFate::Received;
    f.recv_icount = Some(600);
    f.recv_vtime_ns = Some(vtime(2, 600));
    index.add_frame(&f).unwrap();
    // the VM's row is completed at the end of the recording
    let vm = VmRow {
        final_icount: Some(1000),
        final_vtime_ns: Some(vtime(1, 1000)),
        stop: Some("exit(3)".into()),
        ..vm_row(1)
    };
    index.set_vm(&vm).unwrap();
    index.set_meta("seed", "43").unwrap();
    index.flush().unwrap();
    assert_eq!(index.frame(f.id, f.dst).unwrap(), Some(f.clone()));
    assert_eq!(index.frames_received_at(2, 600).unwrap(), vec![f]);
    assert_eq!(index.vm(1).unwrap(), Some(vm));
    assert_eq!(index.vms().unwrap().len(), 3);
    assert_eq!(index.meta("seed").unwrap().as_deref(), Some("43"));
    assert_eq!(index.stats().unwrap().frames, small_frames().len() as u64);
}

#[test]
fn batches_flush_by_themselves_and_on_demand() {
    let s = Scratch::new("batching");
    let path = s.index_path();
    let mut index = Index::create(&path).unwrap();
    index.set_batch_rows(10_000);
    let n = 25_000u64;
    for i in 0..n {
        let id = index
            .add_event(&EventRow::new((i % 3) as u32, i, i * 10, EventKind::Tsc).with_value(i))
            .unwrap();
        assert_eq!(id, i + 1, "ids are given in order from 1");
    }
    // two automatic flushes of 10 000 rows; the rest waits
    assert_eq!(index.pending_rows(), 5_000);
    assert_eq!(index.stats().unwrap().events, 20_000);
    index.flush().unwrap();
    assert_eq!(index.pending_rows(), 0);
    assert_eq!(index.stats().unwrap().events, n);
    // flushing with nothing buffered is a no-op
    index.flush().unwrap();
    index.close().unwrap();

    let mut index = Index::open(&path).unwrap();
    assert_eq!(index.stats().unwrap().events, n);
    assert_eq!(
        index.count_events(&EventFilter::all().with_vms([1u32])).unwrap(),
        n / 3
    );
    // ids continue after a reopen
    let id = index
        .add_event(&EventRow::new(0, n, n * 10, EventKind::Halt))
        .unwrap();
    assert_eq!(id, n + 1);
    drop(index); // dropping flushes what is buffered
    let index = Index::open_read_only(&path).unwrap();
    assert_eq!(index.stats().unwrap().events, n + 1);
    assert_eq!(index.event(n + 1).unwrap().unwrap().kind, EventKind::Halt);
}

#[test]
fn an_interrupted_recording_keeps_what_was_flushed() {
    let s = Scratch::new("interrupted");
    let path = s.index_path();
    let mut index = Index::create(&path).unwrap();
    for i in 0..1000u64 {
        index
            .add_event(&ev(0, i, EventKind::Console).with_text("x"))
            .unwrap();
    }
    index.flush().unwrap(); // "at a checkpoint"
    for i in 1000..1500u64 {
        index
            .add_event(&ev(0, i, EventKind::Console).with_text("y"))
            .unwrap();
    }
    // The process dies: no flush, no close, the write-ahead log is left behind.
    std::mem::forget(index);
    assert!(s.path("index.sqlite-wal").exists());

    let index = Index::open_read_only(&path).unwrap();
    assert_eq!(index.stats().unwrap().events, 1000);
    let last = index
        .prev_event_before(
            Some(0),
            Position::at(0, u64::MAX >> 2, u64::MAX >> 2),
            &EventFilter::all(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(last.icount, 999);
}

#[test]
fn a_reader_sees_what_the_recorder_flushed() {
    let s = Scratch::new("live");
    let path = s.index_path();
    let mut writer = Index::create(&path).unwrap();
    writer.add_event(&ev(0, 1, EventKind::Halt)).unwrap();
    writer.flush().unwrap();
    let reader = Index::open_read_only(&path).unwrap();
    assert_eq!(reader.stats().unwrap().events, 1);
    writer
        .add_event(&ev(0, 2, EventKind::Wake).with_value(5))
        .unwrap();
    assert_eq!(reader.stats().unwrap().events, 1, "not flushed yet");
    writer.flush().unwrap();
    assert_eq!(reader.stats().unwrap().events, 2);
}

#[test]
fn coordinates_beyond_sqlite_integers_are_refused() {
    let s = Scratch::new("range");
    let mut index = Index::create(s.index_path()).unwrap();
    let err = index
        .add_event(&EventRow::new(0, u64::MAX, 0, EventKind::Halt))
        .unwrap_err();
    assert!(
        matches!(
            err,
            IndexError::OutOfRange {
                what: "event icount",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("index.sqlite"), "{err}");
    assert_eq!(index.pending_rows(), 0);
    // a value is stored bit for bit, so any u64 is fine
    index
        .add_event(&EventRow::new(0, 1, 10, EventKind::Rand).with_value(u64::MAX - 1))
        .unwrap();
}

#[test]
fn a_read_only_index_refuses_writes() {
    let s = Scratch::new("ro-writes");
    let path = s.index_path();
    drop(build_small(&path).0);
    let mut index = Index::open_read_only(&path).unwrap();
    let err = index.add_event(&ev(0, 1, EventKind::Halt)).unwrap_err();
    assert!(matches!(err, IndexError::ReadOnly { .. }), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(index.set_meta("a", "b").is_err());
    assert!(index.add_bookmark("x", "", 0, 0, 0).is_err());
}

#[test]
fn event_kinds_and_fates_parse_back() {
    for k in EventKind::ALL {
        assert_eq!(k.as_str().parse::<EventKind>(), Ok(k));
        assert_eq!(k.to_string(), k.as_str());
    }
    for f in FrameFate::ALL {
        assert_eq!(f.as_str().parse::<FrameFate>(), Ok(f));
    }
    let err = "teleport".parse::<EventKind>().unwrap_err();
    assert_eq!(err.to_string(), "unknown event kind 'teleport'");
    assert!("lost".parse::<FrameFate>().is_err());
}

/// The child half of `a_killed_recorder_keeps_what_was_flushed`: records,
/// flushes, buffers more and aborts without unwinding.
#[test]
#[ignore = "run as a child process by a_killed_recorder_keeps_what_was_flushed"]
fn killed_recorder_child() {
    let Some(path) = std::env::var_os("VMRR_INDEX_KILL_CHILD") else {
        return;
    };
    let mut index = Index::create(std::path::PathBuf::from(path)).unwrap();
    for i in 0..2000u64 {
        index.add_event(&ev(1, i, EventKind::Tsc).with_value(i)).unwrap();
    }
    index.flush().unwrap();
    for i in 2000..2100u64 {
        index.add_event(&ev(1, i, EventKind::Tsc).with_value(i)).unwrap();
    }
    std::process::abort();
}

#[test]
fn a_killed_recorder_keeps_what_was_flushed() {
    let s = Scratch::new("killed");
    let path = s.index_path();
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "killed_recorder_child",
            "--ignored",
            "--test-threads=1",
        ])
        .env("VMRR_INDEX_KILL_CHILD", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child aborts");
    let index = Index::open(&path).unwrap();
    assert_eq!(index.stats().unwrap().events, 2000);
    assert_eq!(index.event(2000).unwrap().unwrap().icount, 1999);
}

/// A schema-1 index (recorded before the execution index) is migrated when
/// opened for writing: the new table and column appear, old rows stay.
#[test]
fn schema_1_migrates_to_the_execution_index() {
    let s = Scratch::new("migrate");
    let path = s.index_path();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(vmrr_index::schema::SCHEMA_V1).unwrap();
        conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '1')", [])
            .unwrap();
        conn.execute(
            "INSERT INTO checkpoints(vm, icount, vtime_ns, state_hash, manifest) VALUES (0, 0, 0, 'h', 'm')",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "application_id", 0x766d_7272).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let err = Index::open_read_only(&path).unwrap_err();
    assert!(matches!(err, IndexError::OldSchema { version: 1, .. }), "{err}");
    let mut index = Index::open(&path).unwrap();
    assert_eq!(index.schema_version().unwrap(), SCHEMA_VERSION);
    let cps = index.checkpoints(0).unwrap();
    assert_eq!((cps.len(), cps[0].file_hash.clone()), (1, None));
    assert!(index.exec_slices(0).unwrap().is_empty());
    let row = vmrr_index::ExecSliceRow {
        vm: 0,
        icount: 0,
        end_icount: 100,
        addrs: vec![0x100000, 0x100003],
        words: vec![7],
        pages: vec![],
    };
    index.add_exec_slice(&row).unwrap();
    index.flush().unwrap();
    assert_eq!(index.exec_slices(0).unwrap(), vec![row]);
}
