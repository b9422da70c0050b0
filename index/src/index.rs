//! The [`Index`] handle: creating and opening `index.sqlite`, with the checks
//! that turn a damaged or foreign file into a clear error.

use std::cell::OnceCell;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{IndexError, Result, SqlContext};
use crate::schema::{self, APPLICATION_ID, INDEXES, SCHEMA_V1, SCHEMA_VERSION, TABLES};
use crate::write::Pending;

/// Rows buffered before the writer flushes by itself.
pub const DEFAULT_BATCH_ROWS: usize = 10_000;

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// An open `index.sqlite`: the batched writer, the typed queries and the
/// bookmarks of one trace.
///
/// Writes of recorded data (`add_event`, `add_frame`, `add_checkpoint`,
/// `set_vm`, `set_meta`) are buffered and committed by [`flush`](Index::flush)
/// in one transaction; queries see what has been flushed. Bookmarks are
/// written at once. Dropping the index flushes what is left (errors are lost
/// then: call [`close`](Index::close) to see them).
pub struct Index {
    pub(crate) path: PathBuf,
    pub(crate) conn: Connection,
    pub(crate) read_only: bool,
    pub(crate) pending: Pending,
    pub(crate) batch_rows: usize,
    pub(crate) next_event_id: u64,
    /// The separate read-only connection of `query_read_only`, opened on first use.
    pub(crate) sql_conn: OnceCell<Connection>,
    /// The checksums of what replay depends on, kept by an index this
    /// process created (the recorder's), written to `meta` at every flush.
    pub(crate) checksums: Option<crate::checksum::Tracker>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .field("pending_rows", &self.pending.len())
            .finish()
    }
}

impl Index {
    /// Creates a new index at `path` with the current schema, in WAL mode.
    /// Fails if the file exists (an index is never overwritten) or its folder
    /// does not.
    pub fn create(path: impl AsRef<Path>) -> Result<Index> {
        let path = path.as_ref().to_path_buf();
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(IndexError::AlreadyExists { path })
            }
            Err(source) => return Err(IndexError::Io { path, source }),
        }
        match Self::create_schema(&path) {
            Ok(index) => Ok(index),
            Err(e) => {
                // Leave no half-made index behind: a retry would refuse it.
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
                Err(e)
            }
        }
    }

    fn create_schema(path: &Path) -> Result<Index> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).ctx(path, "creating the index")?;
        configure_writer(&conn, path)?;
        let tx = conn.transaction().ctx(path, "creating the schema")?;
        tx.execute_batch(SCHEMA_V1).ctx(path, "creating the schema")?;
        for step in schema::MIGRATIONS {
            tx.execute_batch(step.sql).ctx(path, "creating the schema")?;
        }
        {
            let mut set = tx
                .prepare("INSERT INTO meta(key, value) VALUES (?1, ?2)")
                .ctx(path, "writing meta")?;
            for (k, v) in [
                ("schema_version", SCHEMA_VERSION.to_string()),
                ("vmrr_version", env!("CARGO_PKG_VERSION").to_string()),
                ("created", crate::time::now_rfc3339()),
            ] {
                set.execute((k, v)).ctx(path, "writing meta")?;
            }
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .ctx(path, "setting application_id")?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .ctx(path, "setting user_version")?;
        tx.commit().ctx(path, "creating the schema")?;
        let mut index = Index::from_parts(path.to_path_buf(), conn, false, 1);
        index.checksums = Some(Default::default());
        Ok(index)
    }

    /// Opens an existing index for reading and writing (recording, bookmarks),
    /// checking it first and migrating an older schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Index> {
        Self::open_checked(path.as_ref(), false)
    }

    /// Opens an existing index for reading only (no bookmarks, no writes),
    /// checking it first. A file with an older schema is refused here: open
    /// it read-write once to migrate it.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Index> {
        Self::open_checked(path.as_ref(), true)
    }

    fn open_checked(path: &Path, read_only: bool) -> Result<Index> {
        check_file(path)?;
        let mut conn = if read_only {
            open_reader(path)?
        } else {
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            Connection::open_with_flags(path, flags).ctx(path, "opening the index")?
        };
        conn.busy_timeout(BUSY_TIMEOUT).ctx(path, "opening the index")?;
        quick_check(&conn, path)?;
        let version = schema_version(&conn, path)?;
        if !read_only {
            configure_writer(&conn, path)?;
        }
        if version < SCHEMA_VERSION {
            if read_only {
                return Err(IndexError::OldSchema {
                    path: path.to_path_buf(),
                    version,
                    detail: "open it read-write once (e.g. with `vmrr index TRACE`) to upgrade it".into(),
                });
            }
            migrate(&mut conn, path, version)?;
        }
        check_tables(&conn, path)?;
        let max_id: Option<i64> = conn
            .query_row("SELECT max(id) FROM events", [], |r| r.get(0))
            .ctx(path, "reading the last event id")?;
        let next_event_id = max_id.map_or(1, |m| m.max(0) as u64 + 1);
        Ok(Index::from_parts(
            path.to_path_buf(),
            conn,
            read_only,
            next_event_id,
        ))
    }

    fn from_parts(path: PathBuf, conn: Connection, read_only: bool, next_event_id: u64) -> Index {
        conn.set_prepared_statement_cache_capacity(64);
        Index {
            path,
            conn,
            read_only,
            pending: Pending::default(),
            batch_rows: DEFAULT_BATCH_ROWS,
            next_event_id,
            sql_conn: OnceCell::new(),
            checksums: None,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this index was opened with [`open_read_only`](Index::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Flushes what is buffered, merges the write-ahead log into the database
    /// file (so the file alone is the whole index, ready to be copied) and
    /// closes it, reporting any error.
    pub fn close(mut self) -> Result<()> {
        if !self.read_only {
            self.flush()?;
            let path = self.path.clone();
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .ctx(&path, "merging the write-ahead log")?;
            let _ = self.conn.execute_batch("PRAGMA optimize");
        }
        self.sql_conn.take();
        let path = self.path.clone();
        let conn = std::mem::replace(
            &mut self.conn,
            Connection::open_in_memory().ctx(&path, "closing the index")?,
        );
        conn.close().map_err(|(_, e)| e).ctx(&path, "closing the index")
    }

    pub(crate) fn require_writable(&self, what: &'static str) -> Result<()> {
        if self.read_only {
            Err(IndexError::ReadOnly {
                path: self.path.clone(),
                what,
            })
        } else {
            Ok(())
        }
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        if !self.read_only {
            let _ = self.flush();
        }
    }
}

/// `path` with `suffix` appended (`-wal`, `-shm`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// `file:` URI of `path` with `immutable=1`: every byte that could end the
/// path or start a query is percent-encoded.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(b as char);
        } else {
            uri += &format!("%{b:02X}");
        }
    }
    uri + "?immutable=1"
}

/// A read-only connection that writes nothing into the trace folder.
///
/// A WAL database read the ordinary way needs `-wal` and `-shm` files beside
/// it, and creates them: on a read-only mount, or for a user who may not
/// write the folder, the open fails, and everywhere else a read-only command
/// leaves them behind. A finished trace has no such files (closing the
/// recorder merges the log), so it is opened `immutable=1`: SQLite then reads
/// the file alone, with no lock and no side file. When a `-wal` or `-shm` is
/// there (a recording in progress, or one killed before it merged its log),
/// the log may hold committed rows the file lacks, so the ordinary read-only
/// open is used: it reads them, and sees a writer's progress.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let what = "opening the index";
    let quiet = ["-wal", "-shm"]
        .iter()
        .all(|s| std::fs::symlink_metadata(sidecar(path, s)).is_err());
    if quiet {
        return Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
            .ctx(path, what);
    }
    let conn = Connection::open_with_flags(path, flags).ctx(path, what)?;
    // The log is opened at the first read: try one now, to name the one
    // case that cannot work (a log without its -shm in a folder that cannot
    // get one) instead of SQLite's "unable to open database file".
    match conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0)) {
        Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::CannotOpen => {
            Err(IndexError::UnreadableLog {
                path: path.to_path_buf(),
            })
        }
        _ => Ok(conn),
    }
}

/// WAL (readers never block the recorder and an interrupted recording keeps
/// every committed batch) and `synchronous = NORMAL` (commits do not wait for
/// the disk; a crash of the process loses nothing committed).
fn configure_writer(conn: &Connection, path: &Path) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .ctx(path, "configuring the index")?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .ctx(path, "switching to WAL mode")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(IndexError::Damaged {
            path: path.to_path_buf(),
            detail: format!("cannot switch to WAL journal mode (got '{mode}')"),
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .ctx(path, "configuring the index")?;
    Ok(())
}

/// Checks, before SQLite sees it, that `path` is a regular file that starts
/// like an SQLite database and is not shorter than its header says.
fn check_file(path: &Path) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IndexError::Missing {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(IndexError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let not_an_index = |detail: &str| IndexError::NotAnIndex {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    if meta.is_dir() {
        return Err(not_an_index("it is a directory"));
    }
    if meta.len() == 0 {
        return Err(not_an_index("the file is empty"));
    }
    let mut header = [0u8; 100];
    let n = read_prefix(path, &mut header)?;
    if n < SQLITE_MAGIC.len() || &header[..SQLITE_MAGIC.len()] != SQLITE_MAGIC {
        return Err(not_an_index("it does not start with the SQLite header"));
    }
    if n < header.len() {
        return Err(IndexError::Damaged {
            path: path.to_path_buf(),
            detail: format!("truncated: only {n} bytes, shorter than the 100-byte database header"),
        });
    }
    // The page count in the header is valid when the change counter matches
    // "version-valid-for". With a write-ahead log present the file may lag
    // the header until the log is merged, so only judge a file without one.
    let be32 = |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536u64,
        s => u64::from(s),
    };
    let pages = u64::from(be32(28));
    let wal_present = std::fs::metadata(sidecar(path, "-wal"))
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    if be32(24) == be32(92) && pages > 0 && !wal_present {
        let expected = pages.saturating_mul(page_size);
        if meta.len() < expected {
            return Err(IndexError::Damaged {
                path: path.to_path_buf(),
                detail: format!(
                    "truncated: the file has {} bytes, its header says {pages} pages of {page_size} bytes ({expected} bytes)",
                    meta.len()
                ),
            });
        }
    }
    Ok(())
}

fn read_prefix(path: &Path, buf: &mut [u8]) -> Result<usize> {
    let io = |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(n)
}

/// `PRAGMA quick_check`: every page and index entry well formed.
fn quick_check(conn: &Connection, path: &Path) -> Result<()> {
    let mut stmt = conn
        .prepare("PRAGMA quick_check(5)")
        .ctx(path, "checking the index")?;
    let problems = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
        .ctx(path, "checking the index")?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    let lines: Vec<&str> = problems
        .iter()
        .flat_map(|p| p.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("*** in database"))
        .collect();
    Err(IndexError::Damaged {
        path: path.to_path_buf(),
        detail: format!("the integrity check failed: {}", lines.join("; ")),
    })
}

/// Reads the schema version (`meta.schema_version`, and `user_version` too)
/// and refuses a file that is no vmrr index or is too new.
fn schema_version(conn: &Connection, path: &Path) -> Result<i64> {
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .ctx(path, "reading the application id")?;
    let user_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .ctx(path, "reading the schema version")?;
    if app_id != APPLICATION_ID && app_id != 0 {
        return Err(IndexError::NotAnIndex {
            path: path.to_path_buf(),
            detail: format!("an SQLite database of another application (id {app_id:#x})"),
        });
    }
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ctx(path, "reading the schema")?
        > 0;
    if !has_meta {
        return Err(IndexError::NotAnIndex {
            path: path.to_path_buf(),
            detail: "an SQLite database without vmrr's meta table".into(),
        });
    }
    let text: Option<Option<String>> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| {
            r.get::<_, Option<String>>(0)
        })
        .optional()
        .ctx(path, "reading the schema version")?;
    let damaged = |detail: String| IndexError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let text = text
        .flatten()
        .ok_or_else(|| damaged("meta has no schema_version".into()))?;
    let version: i64 = text
        .trim()
        .parse()
        .map_err(|_| damaged(format!("meta.schema_version is '{text}', not a number")))?;
    let newest = version.max(user_version);
    if newest > SCHEMA_VERSION {
        return Err(IndexError::TooNew {
            path: path.to_path_buf(),
            version: newest,
        });
    }
    if version != user_version {
        return Err(damaged(format!(
            "meta.schema_version is {version} but PRAGMA user_version is {user_version}"
        )));
    }
    if version < 1 {
        return Err(damaged(format!("schema version {version} does not exist")));
    }
    Ok(version)
}

/// Brings an older schema up to [`SCHEMA_VERSION`], one transaction per step.
fn migrate(conn: &mut Connection, path: &Path, from: i64) -> Result<()> {
    let steps = schema::migration_path(from).map_err(|stuck| IndexError::OldSchema {
        path: path.to_path_buf(),
        version: from,
        detail: format!("this vmrr has no migration from schema {stuck}; record the trace again"),
    })?;
    for step in steps {
        let to = step.from + 1;
        let tx = conn.transaction().ctx(path, "migrating the schema")?;
        tx.execute_batch(step.sql).ctx(path, "migrating the schema")?;
        tx.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?1)",
            [to.to_string()],
        )
        .ctx(path, "migrating the schema")?;
        tx.pragma_update(None, "user_version", to)
            .ctx(path, "migrating the schema")?;
        tx.commit().ctx(path, "migrating the schema")?;
    }
    Ok(())
}

/// Every table of the schema, and every index the queries name, is there.
fn check_tables(conn: &Connection, path: &Path) -> Result<()> {
    let mut stmt = conn
        .prepare("SELECT count(*) FROM sqlite_schema WHERE type = ?1 AND name = ?2")
        .ctx(path, "reading the schema")?;
    let wanted = TABLES
        .iter()
        .map(|t| ("table", *t))
        .chain(INDEXES.iter().map(|i| ("index", *i)));
    for (kind, name) in wanted {
        let n: i64 = stmt
            .query_row([kind, name], |r| r.get(0))
            .ctx(path, "reading the schema")?;
        if n == 0 {
            return Err(IndexError::Damaged {
                path: path.to_path_buf(),
                detail: format!("the {kind} '{name}' is missing"),
            });
        }
    }
    Ok(())
}
