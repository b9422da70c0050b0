//! The one error type of the index. Every message names the database file and
//! says what is wrong with it, in words a user can act on.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

use crate::schema::SCHEMA_VERSION;

/// Everything that can go wrong with a trace's index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The index file does not exist.
    #[error("{}: no such file: the trace has no index (is this a trace directory? was the recording started?)", path.display())]
    Missing {
        /// The file that was looked for.
        path: PathBuf,
    },

    /// `Index::create` was asked to create a file that already exists.
    #[error("{}: already exists: refusing to overwrite an existing index (record into a new trace directory)", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// The file could not be read or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// The file is not an SQLite database at all (text, garbage, empty, or a
    /// different kind of database).
    #[error("{}: not a vmrr index ({detail}): the trace is damaged", path.display())]
    NotAnIndex {
        /// The file concerned.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },

    /// The file is an SQLite database but truncated, corrupt, or missing parts
    /// of the schema.
    #[error("{}: the trace is damaged: {detail}", path.display())]
    Damaged {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong, as precisely as SQLite or the checks could tell.
        detail: String,
    },

    /// The index was written by a newer vmrr with a schema this build cannot read.
    #[error(
        "{}: written by a newer vmrr (schema {version}, this vmrr reads up to {}): upgrade vmrr",
        path.display(),
        SCHEMA_VERSION
    )]
    TooNew {
        /// The file concerned.
        path: PathBuf,
        /// The schema version found in the file.
        version: i64,
    },

    /// The index has an older schema that cannot be used as it is: it has no
    /// migration path, or it was opened read-only and would need migrating.
    #[error("{}: written with schema {version}, which this vmrr cannot use as it is: {detail}", path.display())]
    OldSchema {
        /// The file concerned.
        path: PathBuf,
        /// The schema version found in the file.
        version: i64,
        /// Why it cannot be used, and what to do.
        detail: String,
    },

    /// The index has a write-ahead log (`-wal`) that SQLite cannot read here:
    /// its `-shm` is missing and the folder is read-only, so it cannot be
    /// made. The log holds rows the file lacks (a recording killed before it
    /// merged its log, or one still running).
    #[error("{}: its write-ahead log (index.sqlite-wal) was never merged (the recording was killed or is still running) and cannot be read in a read-only folder without index.sqlite-shm: copy the trace somewhere writable to read it", path.display())]
    UnreadableLog {
        /// The database file.
        path: PathBuf,
    },

    /// A write was attempted on an index opened with `Index::open_read_only`
    /// (by a command that only reads, or because the trace is on a
    /// read-only mount or not writable by this user).
    #[error("cannot {what}: {} is open read-only (read-only mount, no write permission, or a command that only reads)", path.display())]
    ReadOnly {
        /// The file concerned.
        path: PathBuf,
        /// The write that was refused.
        what: &'static str,
    },

    /// A number does not fit the SQLite column meant to hold it (SQLite
    /// integers are signed 64-bit; coordinates must stay below 2^63).
    #[error("{}: cannot store {what} = {value}: larger than the largest SQLite integer (2^63 - 1)", path.display())]
    OutOfRange {
        /// The file concerned.
        path: PathBuf,
        /// Which field.
        what: &'static str,
        /// The value refused.
        value: u64,
    },

    /// A bookmark with this name exists already.
    #[error("{}: a bookmark named '{name}' already exists (pick another name, or rename or delete that one)", path.display())]
    DuplicateBookmark {
        /// The file concerned.
        path: PathBuf,
        /// The name in use.
        name: String,
    },

    /// No bookmark has this name.
    #[error("{}: no bookmark named '{name}'", path.display())]
    NoSuchBookmark {
        /// The file concerned.
        path: PathBuf,
        /// The name looked for.
        name: String,
    },

    /// A bookmark name is empty or only white space.
    #[error("{}: a bookmark needs a non-empty name", path.display())]
    EmptyBookmarkName {
        /// The file concerned.
        path: PathBuf,
    },

    /// A bookmark name holds a control character or is too long. (Spaces,
    /// `#` and any other printable character are fine.)
    #[error("{}: a bookmark name {problem}", path.display())]
    BadBookmarkName {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong, without repeating the name (it may hold the
        /// control characters this is about).
        problem: String,
    },

    /// `query_read_only` refused a statement because it could change the
    /// trace or the connection.
    #[error("{}: refused: `{statement}` {reason}; `vmrr sql` only reads the trace", path.display())]
    WriteRefused {
        /// The file concerned.
        path: PathBuf,
        /// The statement's first words.
        statement: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// `query_read_only` got SQL that SQLite rejected (syntax error, unknown
    /// table or column, several statements...); `message` is SQLite's.
    #[error("{}: {message}", path.display())]
    Sql {
        /// The file concerned.
        path: PathBuf,
        /// SQLite's message.
        message: String,
    },

    /// Any other SQLite failure (disk full, locked for too long, ...).
    #[error("{}: {context}: {source}", path.display())]
    Sqlite {
        /// The file concerned.
        path: PathBuf,
        /// What the index was doing.
        context: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

impl IndexError {
    /// Whether this says that the index file is damaged (truncated,
    /// corrupt, a missing table, an unreadable value), as opposed to a
    /// request that does not fit or a file that is not an index at all.
    pub fn is_damage(&self) -> bool {
        matches!(self, IndexError::Damaged { .. })
    }
}

/// Result with an [`IndexError`].
pub type Result<T> = std::result::Result<T, IndexError>;

/// Classifies a rusqlite error: corruption and unreadable values become
/// [`IndexError::Damaged`], the rest [`IndexError::Sqlite`].
pub(crate) fn sql_error(path: &Path, context: &'static str, e: rusqlite::Error) -> IndexError {
    let damaged = |detail: String| IndexError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::DatabaseCorrupt => {
            damaged(format!("{context}: {e}"))
        }
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::NotADatabase => IndexError::NotAnIndex {
            path: path.to_path_buf(),
            detail: format!("{context}: {e}"),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => damaged(format!("{context}: unexpected value: {e}")),
        _ => IndexError::Sqlite {
            path: path.to_path_buf(),
            context,
            source: e,
        },
    }
}

/// Shorthand to map a rusqlite result with [`sql_error`].
pub(crate) trait SqlContext<T> {
    /// Maps the error, naming `path` and what was being done.
    fn ctx(self, path: &Path, context: &'static str) -> Result<T>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn ctx(self, path: &Path, context: &'static str) -> Result<T> {
        self.map_err(|e| sql_error(path, context, e))
    }
}
