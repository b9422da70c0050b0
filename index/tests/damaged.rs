//! Opening files that are not a good index: each gives its own clear error
//! naming the file, and none panics.

mod common;

use std::io::{Seek, SeekFrom, Write};

use common::*;
use vmrr_index::{EventKind, EventRow, Index, IndexError};

/// An index big enough to have many pages, closed (log merged) at `path`.
fn write_big_index(path: &std::path::Path) {
    let mut index = Index::create(path).unwrap();
    for i in 0..20_000u64 {
        index
            .add_event(
                &EventRow::new((i % 3) as u32, i, i * 10, EventKind::Console).with_text("some console text"),
            )
            .unwrap();
    }
    index.close().unwrap();
}

fn open_both(path: &std::path::Path) -> Vec<IndexError> {
    vec![
        Index::open(path).unwrap_err(),
        Index::open_read_only(path).unwrap_err(),
    ]
}

fn assert_names_file(err: &IndexError, path: &std::path::Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message names the file: {msg}"
    );
}

#[test]
fn missing_file() {
    let s = Scratch::new("missing");
    let path = s.index_path();
    for err in open_both(&path) {
        assert!(matches!(err, IndexError::Missing { .. }), "{err}");
        assert_names_file(&err, &path);
        assert!(err.to_string().contains("no such file"), "{err}");
    }
    assert!(!path.exists(), "opening does not create");
}

#[test]
fn text_file() {
    let s = Scratch::new("text");
    let path = s.index_path();
    std::fs::write(&path, "this is a text file, not a database\n".repeat(100)).unwrap();
    for err in open_both(&path) {
        assert!(matches!(err, IndexError::NotAnIndex { .. }), "{err}");
        assert_names_file(&err, &path);
        let msg = err.to_string();
        assert!(
            msg.contains("not a vmrr index") && msg.contains("the trace is damaged"),
            "{msg}"
        );
    }
}

#[test]
fn empty_file_and_directory() {
    let s = Scratch::new("empty");
    let path = s.index_path();
    std::fs::write(&path, b"").unwrap();
    for err in open_both(&path) {
        assert!(err.to_string().contains("empty"), "{err}");
    }
    let dir = s.path("dir.sqlite");
    std::fs::create_dir(&dir).unwrap();
    for err in open_both(&dir) {
        assert!(err.to_string().contains("directory"), "{err}");
    }
}

#[test]
fn truncated_to_half() {
    let s = Scratch::new("truncated");
    let path = s.index_path();
    write_big_index(&path);
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 100_000);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    for err in open_both(&path) {
        assert!(matches!(err, IndexError::Damaged { .. }), "{err}");
        assert_names_file(&err, &path);
        let msg = err.to_string();
        assert!(
            msg.contains("truncated") && msg.contains("the trace is damaged"),
            "{msg}"
        );
    }
    // shorter than the header
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(50)
        .unwrap();
    for err in open_both(&path) {
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}

#[test]
fn bytes_overwritten_in_the_middle() {
    let s = Scratch::new("overwritten");
    let path = s.index_path();
    write_big_index(&path);
    let len = std::fs::metadata(&path).unwrap().len();
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let middle = (len / 2) / 4096 * 4096;
    f.seek(SeekFrom::Start(middle)).unwrap();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    f.write_all(&garbage).unwrap();
    drop(f);
    for err in open_both(&path) {
        assert!(matches!(err, IndexError::Damaged { .. }), "{err}");
        assert_names_file(&err, &path);
        assert!(err.to_string().contains("the trace is damaged"), "{err}");
    }
}

#[test]
fn newer_schema() {
    let s = Scratch::new("newer");
    let path = s.index_path();
    Index::create(&path).unwrap().close().unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'", [])
            .unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    for err in open_both(&path) {
        assert!(matches!(err, IndexError::TooNew { version: 99, .. }), "{err}");
        assert_names_file(&err, &path);
        assert!(
            err.to_string()
                .ends_with("written by a newer vmrr (schema 99, this vmrr reads up to 3): upgrade vmrr"),
            "{err}"
        );
    }
    // only meta says so: still too new
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
    }
    assert!(matches!(
        Index::open(&path),
        Err(IndexError::TooNew { version: 99, .. })
    ));
}

#[test]
fn older_or_nonsense_schema() {
    let s = Scratch::new("older");
    let path = s.index_path();
    Index::create(&path).unwrap().close().unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'", [])
            .unwrap();
        conn.pragma_update(None, "user_version", 0).unwrap();
    }
    for err in open_both(&path) {
        assert!(matches!(err, IndexError::Damaged { .. }), "{err}");
        assert!(
            err.to_string().contains("schema version 0 does not exist"),
            "{err}"
        );
    }
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE meta SET value = 'one' WHERE key = 'schema_version'", [])
            .unwrap();
    }
    assert!(Index::open(&path)
        .unwrap_err()
        .to_string()
        .contains("not a number"));
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'", [])
            .unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch("DROP TABLE frames").unwrap();
    }
    let err = Index::open(&path).unwrap_err();
    assert!(err.to_string().contains("the table 'frames' is missing"), "{err}");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE frames(id, src, dst, len, sent_icount, sent_vtime_ns, arrival_ns, recv_icount, \
             recv_vtime_ns, fate, payload); DROP INDEX events_kind;",
        )
        .unwrap();
    }
    let err = Index::open_read_only(&path).unwrap_err();
    assert!(
        err.to_string().contains("the index 'events_kind' is missing"),
        "{err}"
    );
}

#[test]
fn another_sqlite_database() {
    let s = Scratch::new("foreign");
    let path = s.index_path();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE recipes(name TEXT); INSERT INTO recipes VALUES ('bread');")
            .unwrap();
    }
    for err in open_both(&path) {
        assert!(matches!(err, IndexError::NotAnIndex { .. }), "{err}");
        assert!(err.to_string().contains("without vmrr's meta table"), "{err}");
    }
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "application_id", 1234).unwrap();
    }
    let err = Index::open(&path).unwrap_err();
    assert!(err.to_string().contains("another application"), "{err}");
}

/// An unknown kind is not damage (kinds are free text, SCHEMA.md: a newer
/// vmrr may add some): the typed queries pass over it. A value that cannot
/// be a coordinate is damage.
#[test]
fn unknown_kind_is_passed_over_and_a_bad_value_is_damage() {
    let s = Scratch::new("unknown-kind");
    let path = s.index_path();
    drop(build_small(&path).0);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO events(id, vm, icount, vtime_ns, kind) VALUES (1000, 0, 5, 50, 'teleport')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO events(id, vm, icount, vtime_ns, kind) VALUES (1001, 0, -5, 60, 'halt')",
            [],
        )
        .unwrap();
    }
    let index = Index::open_read_only(&path).unwrap();
    assert_eq!(index.event(1000).unwrap(), None);
    assert_eq!(index.unknown_kinds().unwrap(), vec![("teleport".to_string(), 1)]);
    let err = index.event(1001).unwrap_err();
    assert!(matches!(err, IndexError::Damaged { .. }), "{err}");
    // plain SQL still shows it
    let (_, rows) = index
        .query_read_only("SELECT kind FROM events WHERE id = 1000")
        .unwrap();
    assert_eq!(rows[0][0].to_string(), "teleport");
}

#[test]
fn create_refuses_an_existing_file() {
    let s = Scratch::new("exists");
    let path = s.index_path();
    std::fs::write(&path, b"precious").unwrap();
    let err = Index::create(&path).unwrap_err();
    assert!(matches!(err, IndexError::AlreadyExists { .. }), "{err}");
    assert_names_file(&err, &path);
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious", "left untouched");
    // an existing index too
    let other = s.path("other.sqlite");
    Index::create(&other).unwrap().close().unwrap();
    assert!(matches!(
        Index::create(&other),
        Err(IndexError::AlreadyExists { .. })
    ));
    assert!(Index::open(&other).is_ok());
}

#[test]
fn create_in_a_missing_directory() {
    let s = Scratch::new("nodir");
    let path = s.path("no/such/dir/index.sqlite");
    let err = Index::create(&path).unwrap_err();
    assert!(matches!(err, IndexError::Io { .. }), "{err}");
    assert_names_file(&err, &path);
}
