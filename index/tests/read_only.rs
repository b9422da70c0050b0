//! Read-only opens write nothing beside the database: no `-wal`, no `-shm`
//! (a finished index is opened `immutable=1`), so a trace on a read-only
//! mount or of another user opens, and reading a trace leaves it as it was.
//! (Issue 12; the mount and other-user cases run end to end in
//! tests/readonly_trace.rs.)

mod common;

use common::*;
use vmrr_index::{EventFilter, Index};

fn listing(s: &Scratch) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&s.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn reading_a_finished_index_leaves_no_side_files() {
    let s = Scratch::new("ro-quiet");
    let path = s.index_path();
    {
        let mut index = Index::create(&path).unwrap();
        for e in small_events() {
            index.add_event(&e).unwrap();
        }
        index.close().unwrap();
    }
    assert_eq!(listing(&s), vec!["index.sqlite"]);
    let index = Index::open_read_only(&path).unwrap();
    let all = index
        .events_in_window(0, u64::MAX, &EventFilter::all(), usize::MAX)
        .unwrap();
    assert_eq!(all.len(), small_events().len());
    let (_, rows) = index.query_read_only("SELECT count(*) FROM events").unwrap();
    assert_eq!(rows[0][0].to_string(), small_events().len().to_string());
    assert_eq!(listing(&s), vec!["index.sqlite"], "nothing created while open");
    drop(index);
    assert_eq!(listing(&s), vec!["index.sqlite"], "nothing left after");
}

#[test]
fn an_index_with_a_live_log_is_read_with_it() {
    let s = Scratch::new("ro-wal");
    let path = s.index_path();
    let mut writer = Index::create(&path).unwrap();
    for e in small_events() {
        writer.add_event(&e).unwrap();
    }
    writer.flush().unwrap();
    // The writer is still open: its rows are in the log, not yet in the file.
    let reader = Index::open_read_only(&path).unwrap();
    let all = reader
        .events_in_window(0, u64::MAX, &EventFilter::all(), usize::MAX)
        .unwrap();
    assert_eq!(all.len(), small_events().len(), "the log's rows are seen");
    drop(reader);
    writer.close().unwrap();
}
