//! The analyses' cache: SQL tables in the trace's `index.sqlite`, created
//! on first use (`CREATE TABLE IF NOT EXISTS analysis_…`), so that `vmrr
//! sql`, the TUI and gdb read the same rows and a second question is
//! answered without replay. They are caches: vmrr may drop and rebuild
//! them (it does when [`CACHE_VERSION`] changes), and nothing that replay
//! depends on is in them, so the index's checksums do not cover them.
//! `index/SCHEMA.md` documents them.
//!
//! A trace opened read-only (or a file that cannot be written) is read
//! from, when it has rows, but never written: the analysis is computed and
//! not kept.
//!
//! Numbers are SQLite integers (signed 64-bit): a register value ≥ 2^63
//! reads as negative in SQL, its bits intact (as `events.value`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use vmrr_index::{Pos, VmId};

use super::calls::{Arg, Call};
use super::AnalysisError;
use crate::trace::{Trace, INDEX_FILE};

/// Bumped whenever what an analysis computes changes: older rows are dropped.
pub const CACHE_VERSION: i64 = 1;

/// The tables, dropped together when the version changes.
const TABLES: [&str; 7] = [
    "analysis_meta",
    "analysis_done",
    "analysis_calls",
    "analysis_origins",
    "analysis_origin_links",
    "analysis_coverage",
    "analysis_coverage_lines",
];

const DDL: &str = "
CREATE TABLE IF NOT EXISTS analysis_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS analysis_done(
    analysis TEXT NOT NULL, key TEXT NOT NULL, vm INTEGER NOT NULL, slice_icount INTEGER NOT NULL,
    PRIMARY KEY(analysis, key, vm, slice_icount)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS analysis_calls(
    function TEXT NOT NULL, entry_addr INTEGER NOT NULL, vm INTEGER NOT NULL,
    entry_icount INTEGER NOT NULL, entry_vtime_ns INTEGER NOT NULL,
    args TEXT NOT NULL, args_json TEXT NOT NULL, return_addr INTEGER NOT NULL,
    return_icount INTEGER, return_vtime_ns INTEGER, retval INTEGER, ret_text TEXT,
    PRIMARY KEY(function, vm, entry_icount)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS analysis_origins(
    query TEXT PRIMARY KEY, vm INTEGER NOT NULL, icount INTEGER NOT NULL, vtime_ns INTEGER NOT NULL,
    target TEXT NOT NULL, value TEXT NOT NULL, end_kind TEXT NOT NULL, end_text TEXT NOT NULL,
    end_sources TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS analysis_origin_links(
    query TEXT NOT NULL, link INTEGER NOT NULL, vm INTEGER NOT NULL, icount INTEGER NOT NULL,
    vtime_ns INTEGER NOT NULL, vm_name TEXT NOT NULL, rip INTEGER, function TEXT, line TEXT,
    kind TEXT NOT NULL, frame INTEGER, peer INTEGER, what TEXT NOT NULL, dest TEXT NOT NULL,
    src TEXT NOT NULL, flow TEXT NOT NULL, value TEXT, trivial INTEGER NOT NULL, place TEXT NOT NULL,
    PRIMARY KEY(query, link)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS analysis_coverage(
    window TEXT NOT NULL, vm INTEGER NOT NULL, function TEXT NOT NULL, file TEXT,
    addrs_run INTEGER NOT NULL, lines_run INTEGER NOT NULL, lines_total INTEGER NOT NULL,
    PRIMARY KEY(window, vm, function)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS analysis_coverage_lines(
    window TEXT NOT NULL, vm INTEGER NOT NULL, function TEXT NOT NULL, file TEXT NOT NULL,
    line INTEGER NOT NULL,
    PRIMARY KEY(window, vm, function, file, line)) WITHOUT ROWID;
";

/// A connection to the cache tables of one trace.
pub struct Cache {
    conn: Connection,
    path: PathBuf,
    writable: bool,
}

fn int(v: u64) -> i64 {
    v as i64
}

fn unint(v: i64) -> u64 {
    v as u64
}

impl Cache {
    /// Opens the cache of `trace`: for writing when the trace was opened
    /// writable and the file can be written (the tables are created, or
    /// dropped and created again if an older vmrr made them), else for
    /// reading only.
    pub fn open(trace: &Trace) -> Result<Cache, AnalysisError> {
        let path = trace.dir().join(INDEX_FILE);
        let want_write = !trace.index().is_read_only();
        let open = |flags: OpenFlags| -> rusqlite::Result<Connection> {
            let conn = Connection::open_with_flags(&path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
            conn.busy_timeout(Duration::from_secs(10))?;
            Ok(conn)
        };
        if want_write {
            if let Ok(conn) = open(OpenFlags::SQLITE_OPEN_READ_WRITE) {
                let mut cache = Cache {
                    conn,
                    path: path.clone(),
                    writable: true,
                };
                match cache.prepare() {
                    Ok(()) => return Ok(cache),
                    // A file we may not write after all (a read-only
                    // mount): compute without caching.
                    Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ReadOnly => {}
                    Err(e) => return Err(AnalysisError::cache(&path, e)),
                }
            }
        }
        let conn = open(OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| AnalysisError::cache(&path, e))?;
        let cache = Cache {
            conn,
            path,
            writable: false,
        };
        // Rows an older vmrr left are not read.
        if cache.has_tables()? && cache.version()? != Some(CACHE_VERSION) {
            return Ok(Cache {
                writable: false,
                ..Cache::empty(cache)?
            });
        }
        Ok(cache)
    }

    /// A read-only cache that has nothing (an in-memory database).
    fn empty(old: Cache) -> Result<Cache, AnalysisError> {
        let conn = Connection::open_in_memory().map_err(|e| AnalysisError::cache(&old.path, e))?;
        conn.execute_batch(DDL)
            .map_err(|e| AnalysisError::cache(&old.path, e))?;
        Ok(Cache {
            conn,
            path: old.path,
            writable: false,
        })
    }

    /// Whether rows computed now are kept.
    pub fn writable(&self) -> bool {
        self.writable
    }

    fn err(&self, e: rusqlite::Error) -> AnalysisError {
        AnalysisError::cache(&self.path, e)
    }

    fn has_tables(&self) -> Result<bool, AnalysisError> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'analysis_meta'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    fn version(&self) -> Result<Option<i64>, AnalysisError> {
        let v: Option<String> = self
            .conn
            .query_row("SELECT value FROM analysis_meta WHERE key = 'version'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| v.parse().ok()))
    }

    /// Creates the tables, after dropping those of another cache version.
    fn prepare(&mut self) -> rusqlite::Result<()> {
        let version = |conn: &Connection| -> rusqlite::Result<Option<String>> {
            conn.query_row("SELECT value FROM analysis_meta WHERE key = 'version'", [], |r| {
                r.get(0)
            })
            .optional()
            .or_else(|e| match e {
                // No table yet.
                rusqlite::Error::SqliteFailure(..) => Ok(None),
                e => Err(e),
            })
        };
        let current = Some(CACHE_VERSION.to_string());
        if version(&self.conn)? == current {
            return Ok(());
        }
        // Immediate: a read upgraded to a write would fail at once (not
        // wait) if another connection wrote in between.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if version(&tx)? != current {
            for t in TABLES {
                tx.execute_batch(&format!("DROP TABLE IF EXISTS {t}"))?;
            }
            tx.execute_batch(DDL)?;
            tx.execute(
                "INSERT OR REPLACE INTO analysis_meta(key, value) VALUES ('version', ?1)",
                [CACHE_VERSION.to_string()],
            )?;
        }
        tx.commit()
    }

    /// Whether the read-only cache has no tables to read.
    fn absent(&self) -> Result<bool, AnalysisError> {
        Ok(!self.writable && !self.has_tables()?)
    }

    fn calls_key(function: &str, entry: u64) -> String {
        format!("{function}@{entry:#x}")
    }

    /// The slices of `vm` (by checkpoint icount) whose calls of `function`
    /// (entered at `entry`) are cached.
    pub fn calls_done(&self, function: &str, entry: u64, vm: usize) -> Result<BTreeSet<u64>, AnalysisError> {
        if self.absent()? {
            return Ok(BTreeSet::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT slice_icount FROM analysis_done WHERE analysis = 'calls' AND key = ?1 AND vm = ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![Cache::calls_key(function, entry), vm as i64], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map(unint).map_err(|e| self.err(e))).collect()
    }

    /// Keeps the calls entered in `slices` of `vm` (nothing if read-only).
    pub fn store_calls(
        &self,
        function: &str,
        entry: u64,
        vm: usize,
        slices: &[u64],
        calls: &[Call],
    ) -> Result<(), AnalysisError> {
        if !self.writable || slices.is_empty() {
            return Ok(());
        }
        let key = Cache::calls_key(function, entry);
        let write = || -> rusqlite::Result<()> {
            let tx = self.conn.unchecked_transaction()?;
            {
                let mut call = tx.prepare_cached(
                    "INSERT OR REPLACE INTO analysis_calls VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?;
                for c in calls {
                    let args: Vec<String> = c
                        .args
                        .iter()
                        .map(|a| format!("{} = {}", a.name, a.text))
                        .collect();
                    let json = serde_json::to_string(&c.args).unwrap_or_else(|_| "[]".into());
                    call.execute(params![
                        function,
                        int(entry),
                        vm as i64,
                        int(c.entry.icount),
                        int(c.entry.vtime_ns),
                        args.join(", "),
                        json,
                        int(c.return_addr),
                        c.ret.map(|p| int(p.icount)),
                        c.ret.map(|p| int(p.vtime_ns)),
                        c.retval.map(int),
                        c.ret_text,
                    ])?;
                }
                let mut done =
                    tx.prepare_cached("INSERT OR REPLACE INTO analysis_done VALUES ('calls', ?1, ?2, ?3)")?;
                for &s in slices {
                    done.execute(params![key, vm as i64, int(s)])?;
                }
            }
            tx.commit()
        };
        write().map_err(|e| self.err(e))
    }

    /// Every cached call of `function` in `vm` (`None`: no cache to read).
    pub fn calls(&self, function: &str, entry: u64, vm: usize) -> Result<Option<Vec<Call>>, AnalysisError> {
        if self.absent()? {
            return Ok(None);
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT entry_icount, entry_vtime_ns, args_json, return_addr, return_icount, return_vtime_ns,
                        retval, ret_text
                 FROM analysis_calls WHERE function = ?1 AND entry_addr = ?2 AND vm = ?3 ORDER BY entry_icount",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![function, int(entry), vm as i64], |r| {
                let json: String = r.get(2)?;
                let ret = match (r.get::<_, Option<i64>>(4)?, r.get::<_, Option<i64>>(5)?) {
                    (Some(i), Some(t)) => Some(Pos::new(vm as VmId, unint(i), unint(t))),
                    _ => None,
                };
                Ok(Call {
                    vm: vm as VmId,
                    entry: Pos::new(vm as VmId, unint(r.get(0)?), unint(r.get(1)?)),
                    args: serde_json::from_str::<Vec<Arg>>(&json).unwrap_or_default(),
                    return_addr: unint(r.get(3)?),
                    ret,
                    retval: r.get::<_, Option<i64>>(6)?.map(unint),
                    ret_text: r.get(7)?,
                    depth: 0,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The connection, for the other analyses' tables (`origin`, `coverage`).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// An error of this cache's file.
    pub(crate) fn error(&self, e: rusqlite::Error) -> AnalysisError {
        self.err(e)
    }

    /// Whether a read-only cache has no tables (nothing to read).
    pub(crate) fn is_absent(&self) -> Result<bool, AnalysisError> {
        self.absent()
    }
}
