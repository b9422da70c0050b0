//! `query_read_only` (what `vmrr sql` runs): reads work, anything that could
//! write is refused, SQLite's own errors come through.

mod common;

use common::*;
use vmrr_index::{Index, IndexError, SqlValue};

#[test]
fn reads_work_and_render() {
    let s = Scratch::new("sql-read");
    let (index, _) = build_small(&s.index_path());
    let (cols, rows) = index
        .query_read_only("SELECT vm, kind, text, value FROM events WHERE kind = 'console' ORDER BY vm")
        .unwrap();
    assert_eq!(cols, vec!["vm", "kind", "text", "value"]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0], SqlValue::Integer(0));
    assert_eq!(rows[0][2], SqlValue::Text("hello\n".into()));
    assert_eq!(rows[0][3].to_string(), "NULL");
    let (_, rows) = index
        .query_read_only("SELECT payload, len, 1.5 FROM frames WHERE id = 2")
        .unwrap();
    assert_eq!(
        rows[0][0].to_string(),
        "x'02020202020202020202020202020202…' (60 bytes)"
    );
    assert_eq!(rows[0][1].to_string(), "60");
    assert_eq!(rows[0][2].to_string(), "1.5");
    assert_eq!(SqlValue::Blob(vec![0xab, 1]).to_string(), "x'ab01'");
    // introspection is allowed
    let (_, rows) = index.query_read_only("PRAGMA table_info(events)").unwrap();
    assert_eq!(rows.len(), 8);
    let (_, rows) = index.query_read_only("pragma user_version").unwrap();
    assert_eq!(rows, vec![vec![SqlValue::Integer(vmrr_index::SCHEMA_VERSION)]]);
    let (_, rows) = index
        .query_read_only("WITH k AS (SELECT kind FROM events) SELECT count(*) FROM k;")
        .unwrap();
    assert_eq!(rows, vec![vec![SqlValue::Integer(21)]]);
    // row limit
    let limited = index.query_read_only_limited("SELECT id FROM events", 5).unwrap();
    assert_eq!(limited.rows.len(), 5);
    assert!(limited.truncated);
    let all = index
        .query_read_only_limited("SELECT id FROM events", 21)
        .unwrap();
    assert!(!all.truncated);
}

#[test]
fn writes_are_refused() {
    let s = Scratch::new("sql-write");
    let path = s.index_path();
    let (index, _) = build_small(&path);
    let attached = s.path("other.sqlite");
    let statements = [
        "INSERT INTO events(vm, icount, vtime_ns, kind) VALUES (0, 1, 1, 'halt')".to_string(),
        "insert or replace into meta values ('schema_version', '2')".into(),
        "UPDATE events SET vm = 9".into(),
        "DELETE FROM events".into(),
        "WITH x AS (SELECT 1) DELETE FROM events".into(),
        "DROP TABLE events".into(),
        "DROP INDEX events_vtime".into(),
        "CREATE TABLE t(a)".into(),
        "CREATE TEMP TABLE t(a)".into(),
        "ALTER TABLE events ADD COLUMN x".into(),
        format!("ATTACH '{}' AS other", attached.display()),
        format!("  /* sneaky */ attach database '{}' as other", attached.display()),
        "DETACH other".into(),
        "PRAGMA user_version = 7".into(),
        "PRAGMA main.user_version=7".into(),
        "PRAGMA journal_mode = DELETE".into(),
        "PRAGMA query_only = 0".into(),
        "PRAGMA query_only(0)".into(),
        "PRAGMA writable_schema = ON".into(),
        "PRAGMA wal_checkpoint".into(),
        "BEGIN".into(),
        "COMMIT".into(),
        "SAVEPOINT a".into(),
        "VACUUM".into(),
        format!("VACUUM INTO '{}'", s.path("copy.sqlite").display()),
        "REINDEX".into(),
        "ANALYZE".into(),
        "REPLACE INTO bookmarks(name, vm, icount, vtime_ns, created) VALUES ('x', 0, 0, 0, '')".into(),
    ];
    for sql in &statements {
        let err = index.query_read_only(sql).unwrap_err();
        assert!(matches!(err, IndexError::WriteRefused { .. }), "{sql}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("refused") && msg.contains("only reads") && msg.contains("index.sqlite"),
            "{msg}"
        );
    }
    assert!(!attached.exists(), "ATTACH created no file");
    assert!(!s.path("copy.sqlite").exists(), "VACUUM INTO wrote no file");
    // nothing changed
    drop(index);
    let index = Index::open_read_only(&path).unwrap();
    let stats = index.stats().unwrap();
    assert_eq!((stats.events, stats.bookmarks), (21, 0));
    assert_eq!(index.schema_version().unwrap(), vmrr_index::SCHEMA_VERSION);
    assert!(index.query_read_only("SELECT count(*) FROM events").is_ok());
}

#[test]
fn sqlite_errors_come_through() {
    let s = Scratch::new("sql-errors");
    let (index, _) = build_small(&s.index_path());
    let err = index.query_read_only("SELEC * FROM events").unwrap_err();
    assert!(matches!(err, IndexError::Sql { .. }), "{err}");
    assert!(err.to_string().contains("syntax error"), "{err}");
    let err = index.query_read_only("SELECT nope FROM events").unwrap_err();
    assert!(err.to_string().contains("no such column: nope"), "{err}");
    let err = index.query_read_only("SELECT * FROM nowhere").unwrap_err();
    assert!(err.to_string().contains("no such table: nowhere"), "{err}");
    let err = index.query_read_only("SELECT 1; DELETE FROM events").unwrap_err();
    assert!(matches!(err, IndexError::Sql { .. }), "{err}");
    let err = index.query_read_only("  -- nothing\n ").unwrap_err();
    assert!(err.to_string().contains("no SQL statement"), "{err}");
    assert_eq!(index.stats().unwrap().events, 21);
}

#[test]
fn works_on_a_read_only_index() {
    let s = Scratch::new("sql-ro");
    let path = s.index_path();
    drop(build_small(&path).0);
    let index = Index::open_read_only(&path).unwrap();
    let (_, rows) = index.query_read_only("SELECT count(*) FROM frames").unwrap();
    assert_eq!(rows, vec![vec![SqlValue::Integer(6)]]);
    assert!(matches!(
        index.query_read_only("DELETE FROM frames"),
        Err(IndexError::WriteRefused { .. })
    ));
}
